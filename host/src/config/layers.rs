//! Where a config comes from. Layers, lowest first, each over the one before:
//!
//! 1. the defaults;
//! 2. a file: this project's TOML, or a Java client's `.properties` file (`--config` or `-F`,
//!    told apart by extension, else by content); without one, `$WASMKAFKA_CONFIG` or the
//!    default file (`$XDG_CONFIG_HOME/wasmkafka/config.toml`, `~/.config/...`) if it exists;
//! 3. `WASMKAFKA_*` environment variables: `WASMKAFKA_BROKERS`, `WASMKAFKA_CLIENT_ID`, and
//!    `WASMKAFKA_<SECTION>_<KEY>` for the keys of `[net]`, `[consumer]`, `[security]`,
//!    `[plugins]` and `[metrics]` (`WASMKAFKA_CONSUMER_GROUP=g`); other `WASMKAFKA_*` names
//!    (`WASMKAFKA_LOG`) are not config keys and are left alone;
//! 4. `-X key=value` flags.
//!
//! Every layer goes through the one TOML table (so types and unknown keys are checked in one
//! place), and the layer that last set each key is kept for `wasmkafka config show`.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use toml::{Table, Value};

use super::{properties, Config, ConfigError};

/// The environment variable naming a config file when `--config` is not given.
pub const CONFIG_ENV: &str = "WASMKAFKA_CONFIG";
/// The prefix of environment overrides.
const ENV_PREFIX: &str = "WASMKAFKA_";
/// The sections a `WASMKAFKA_<SECTION>_<KEY>` variable may name.
const SECTIONS: &[&str] = &["net", "consumer", "plugins", "metrics", "security"];
/// Top-level keys a variable may name.
const TOP_LEVEL: &[&str] = &["brokers", "client_id"];

/// Which layer set a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// A config file (TOML or Java properties).
    File(PathBuf),
    /// An environment variable, by name.
    Environment(String),
    /// A `-X` flag.
    Flag,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::File(path) => write!(f, "{}", path.display()),
            Origin::Environment(name) => write!(f, "${name}"),
            Origin::Flag => f.write_str("-X"),
        }
    }
}

/// The layers above the defaults.
#[derive(Debug, Clone, Default)]
pub struct Layers {
    pub file: Option<PathBuf>,
    /// `(name, value)` of the environment variables to consider.
    pub env: Vec<(String, String)>,
    /// `-X` flags, as `(key, value)`.
    pub flags: Vec<(String, String)>,
}

/// A config, and for each key a layer set (dotted): its value and the layer.
#[derive(Debug, Clone)]
pub struct Layered {
    pub config: Config,
    pub origins: BTreeMap<String, Origin>,
    /// The value of every key a layer set (tables of `plugins` whole).
    pub values: BTreeMap<String, Value>,
    /// The file used, if any.
    pub file: Option<PathBuf>,
}

impl Layers {
    /// The command line's layers: `file`, or else `$WASMKAFKA_CONFIG` or the default file if
    /// it exists; this process's `WASMKAFKA_*` variables; the `-X` flags.
    pub fn for_command_line(file: Option<PathBuf>, flags: Vec<(String, String)>) -> Layers {
        let env: Vec<(String, String)> = std::env::vars()
            .filter(|(name, _)| name.starts_with(ENV_PREFIX))
            .collect();
        let file = file
            .or_else(|| {
                env.iter()
                    .find(|(name, _)| name == CONFIG_ENV)
                    .map(|(_, value)| PathBuf::from(value))
            })
            .or_else(|| default_file().filter(|path| path.exists()));
        Layers { file, env, flags }
    }

    /// Builds the config, layer over layer, and validates it.
    pub fn load(&self) -> Result<Layered, ConfigError> {
        let mut table = Table::new();
        let mut origins = BTreeMap::new();
        if let Some(path) = &self.file {
            let before = flatten(&table);
            table = read_file(path)?;
            record(&before, &table, Origin::File(path.clone()), &mut origins);
        }
        for (name, value) in &self.env {
            let Some(key) = env_key(name) else { continue };
            let before = flatten(&table);
            properties::apply(&mut table, &key, value).map_err(|error| match error {
                ConfigError::Property { problem, .. } => ConfigError::Property {
                    key: format!("{key} (from ${name})"),
                    problem,
                },
                other => other,
            })?;
            record(
                &before,
                &table,
                Origin::Environment(name.clone()),
                &mut origins,
            );
        }
        for (key, value) in &self.flags {
            let before = flatten(&table);
            properties::apply(&mut table, key, value)?;
            record(&before, &table, Origin::Flag, &mut origins);
        }
        let source = self
            .file
            .as_ref()
            .map_or("<settings>".to_string(), |p| p.display().to_string());
        let values = flatten(&table);
        let config: Config = Value::Table(table)
            .try_into()
            .map_err(|e: toml::de::Error| {
                let mut reason = properties::with_suggestion(e.to_string());
                // Name the layer that set the key the error is about.
                if let Some((key, origin)) = origins
                    .iter()
                    .filter(|(key, _)| reason.contains(key.as_str()))
                    .max_by_key(|(key, _)| key.len())
                {
                    reason.push_str(&format!(" (`{key}` is set by {origin})"));
                }
                ConfigError::Parse {
                    path: source,
                    reason,
                }
            })?;
        config.validate()?;
        Ok(Layered {
            config,
            origins,
            values,
            file: self.file.clone(),
        })
    }
}

/// The default config file: `$XDG_CONFIG_HOME/wasmkafka/config.toml`, or
/// `~/.config/wasmkafka/config.toml`.
pub fn default_file() -> Option<PathBuf> {
    std::env::var_os("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .filter(|dir| dir.is_absolute())
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".config")))
        .map(|dir| dir.join("wasmkafka/config.toml"))
}

/// The dotted config key a `WASMKAFKA_*` variable sets, or `None` for a variable that is not
/// a config key (`WASMKAFKA_LOG`, `WASMKAFKA_CONFIG`).
pub fn env_key(name: &str) -> Option<String> {
    let rest = name.strip_prefix(ENV_PREFIX)?.to_ascii_lowercase();
    if TOP_LEVEL.contains(&rest.as_str()) {
        return Some(rest);
    }
    let (section, key) = rest.split_once('_')?;
    (SECTIONS.contains(&section) && !key.is_empty()).then(|| format!("{section}.{key}"))
}

/// A config file as a table: TOML, or a Java properties file (by extension, else by content).
fn read_file(path: &Path) -> Result<Table, ConfigError> {
    let bytes = std::fs::read(path).map_err(|source| ConfigError::Read {
        path: path.display().to_string(),
        source,
    })?;
    let invalid = |reason: String| ConfigError::Parse {
        path: path.display().to_string(),
        reason,
    };
    if is_properties(path, &bytes) {
        let mut table = Table::new();
        let mut pairs = Vec::new();
        java_properties::PropertiesIter::new(bytes.as_slice())
            .read_into(|key, value| pairs.push((key, value)))
            .map_err(|e| invalid(format!("not a valid properties file: {e}")))?;
        for (key, value) in pairs {
            properties::apply_from_file(&mut table, &key, &value)?;
        }
        return Ok(table);
    }
    let text = String::from_utf8(bytes).map_err(|_| invalid("not UTF-8 text".into()))?;
    let mut table: Table =
        toml::from_str(&text).map_err(|e| invalid(properties::with_suggestion(e.to_string())))?;
    properties::resolve_aliases(&mut table)?;
    Ok(table)
}

/// A Java properties file: by its extension (`.properties`, `.props`, `.conf`), or, without a
/// telling one, text that is not TOML and whose first setting reads `key=value` or
/// `key: value` with a dotted key (`bootstrap.servers=...`).
fn is_properties(path: &Path, bytes: &[u8]) -> bool {
    match path.extension().and_then(|e| e.to_str()) {
        Some("properties" | "props" | "conf") => return true,
        Some("toml") => return false,
        _ => {}
    }
    let Ok(text) = std::str::from_utf8(bytes) else {
        return true;
    };
    if toml::from_str::<Table>(text).is_ok() {
        return false;
    }
    text.lines()
        .map(str::trim)
        .find(|line| !line.is_empty() && !line.starts_with('#') && !line.starts_with('!'))
        .and_then(|line| line.split_once(['=', ':']))
        .is_some_and(|(key, _)| {
            let key = key.trim();
            key.contains('.') && !key.contains([' ', '"', '['])
        })
}

/// Every leaf of `table` by its dotted key.
fn flatten(table: &Table) -> BTreeMap<String, Value> {
    fn walk(prefix: &str, table: &Table, out: &mut BTreeMap<String, Value>) {
        for (key, value) in table {
            let dotted = if prefix.is_empty() {
                key.clone()
            } else {
                format!("{prefix}.{key}")
            };
            match value {
                Value::Table(inner) if !dotted.starts_with("plugins.") => walk(&dotted, inner, out),
                other => {
                    out.insert(dotted, other.clone());
                }
            }
        }
    }
    let mut out = BTreeMap::new();
    walk("", table, &mut out);
    out
}

/// Records `origin` for every key whose value differs between `before` and `table`.
fn record(
    before: &BTreeMap<String, Value>,
    table: &Table,
    origin: Origin,
    origins: &mut BTreeMap<String, Origin>,
) {
    for (key, value) in flatten(table) {
        if before.get(&key) != Some(&value) {
            origins.insert(key, origin.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn environment_names_map_to_keys_or_are_left_alone() {
        assert_eq!(env_key("WASMKAFKA_BROKERS").as_deref(), Some("brokers"));
        assert_eq!(env_key("WASMKAFKA_CLIENT_ID").as_deref(), Some("client_id"));
        assert_eq!(
            env_key("WASMKAFKA_CONSUMER_MAX_POLL_RECORDS").as_deref(),
            Some("consumer.max_poll_records")
        );
        assert_eq!(
            env_key("WASMKAFKA_SECURITY_SASL_PASSWORD").as_deref(),
            Some("security.sasl_password")
        );
        for other in [
            "WASMKAFKA_LOG",
            "WASMKAFKA_CONFIG",
            "WASMKAFKA_KAFKA_VERSION",
            "WASMKAFKA_CONSUMER",
            "OTHER_BROKERS",
        ] {
            assert_eq!(env_key(other), None, "{other}");
        }
    }

    #[test]
    fn layers_apply_in_order_and_each_key_keeps_its_origin() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("client.properties");
        std::fs::write(
            &file,
            "# from the Java team\nbootstrap.servers=a:9092,b:9092\ngroup.id=from-file\n\
             key.deserializer=org.apache.kafka.common.serialization.StringDeserializer\n\
             max.poll.records : 100\nclient.id=java\n",
        )
        .unwrap();
        let layers = Layers {
            file: Some(file.clone()),
            env: vec![
                ("WASMKAFKA_CONSUMER_GROUP".into(), "from-env".into()),
                ("WASMKAFKA_LOG".into(), "debug".into()),
            ],
            flags: vec![("client.id".into(), "flag".into())],
        };
        let layered = layers.load().unwrap();
        let config = &layered.config;
        assert_eq!(config.brokers, ["a:9092", "b:9092"]);
        assert_eq!(config.consumer.group.as_deref(), Some("from-env"));
        assert_eq!(config.consumer.max_poll_records, 100);
        assert_eq!(config.client_id, "flag");
        let origins = &layered.origins;
        assert_eq!(origins["brokers"], Origin::File(file.clone()));
        assert_eq!(origins["consumer.max_poll_records"], Origin::File(file));
        assert_eq!(
            origins["consumer.group"],
            Origin::Environment("WASMKAFKA_CONSUMER_GROUP".into())
        );
        assert_eq!(origins["client_id"], Origin::Flag);
    }

    #[test]
    fn a_file_is_toml_or_properties_by_extension_else_by_content() {
        let dir = tempfile::tempdir().unwrap();
        let cases = [
            ("a.properties", "group.id=g\n", true),
            ("a.toml", "brokers = [\"x:1\"]\n", false),
            ("client.cfg", "bootstrap.servers=x:1\ngroup.id=g\n", true),
            ("client.cfg", "# kcat\nbootstrap.servers: x:1\n", true),
            ("client.cfg", "[consumer]\ngroup = \"g\"\n", false),
            ("client.cfg", "brokers = [\"x:1\"]\n", false),
        ];
        for (name, text, properties) in cases {
            let path = dir.path().join(name);
            std::fs::write(&path, text).unwrap();
            assert_eq!(
                is_properties(&path, text.as_bytes()),
                properties,
                "{name}: {text}"
            );
        }
    }

    #[test]
    fn a_properties_file_refuses_jks_stores_and_a_bad_env_value_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("client.properties");
        std::fs::write(
            &file,
            "ssl.keystore.location=/etc/kafka/client.jks\nssl.keystore.type=JKS\n",
        )
        .unwrap();
        let error = Layers {
            file: Some(file),
            ..Layers::default()
        }
        .load()
        .unwrap_err()
        .to_string();
        assert!(
            error.contains(
                "a JKS key store is not supported: convert it to PKCS#12 with \
                 `keytool -importkeystore -srckeystore k.jks -destkeystore k.p12 \
                 -deststoretype PKCS12`"
            ),
            "{error}"
        );
        let error = Layers {
            env: vec![("WASMKAFKA_CONSUMER_MAX_POLL_RECORDS".into(), "many".into())],
            ..Layers::default()
        }
        .load()
        .unwrap_err()
        .to_string();
        assert!(
            error.contains("$WASMKAFKA_CONSUMER_MAX_POLL_RECORDS"),
            "{error}"
        );
    }
}
