//! Kafka's own property names, accepted where a user reaches for them: as keys of the config
//! file (`"bootstrap.servers" = "a:9092,b:9092"`, `"group.id" = "g"`) and as `-X key=value`
//! flags, the way kcat takes them. `-X` also takes this file's own keys, dotted
//! (`-X consumer.max_poll_records=500`).
//!
//! Everything goes through the TOML table before it is deserialized, so one path checks types
//! and unknown keys, and an unknown key is answered with the nearest known one.

use toml::{Table, Value};

use super::ConfigError;
use crate::net::keystore::{kind_of_file, FileKind, JKS_CONVERSION};

/// How a property's text becomes a TOML value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Int,
    Float,
    Bool,
    Str,
    /// Comma separated.
    List,
}

/// Kafka (Java and librdkafka) names and where they go.
const ALIASES: &[(&str, &str, Kind)] = &[
    ("bootstrap.servers", "brokers", Kind::List),
    ("metadata.broker.list", "brokers", Kind::List),
    ("client.id", "client_id", Kind::Str),
    ("group.id", "consumer.group", Kind::Str),
    ("group.instance.id", "consumer.group_instance_id", Kind::Str),
    ("client.rack", "consumer.rack", Kind::Str),
    ("group.protocol", "consumer.group_protocol", Kind::Str),
    (
        "group.remote.assignor",
        "consumer.group_remote_assignor",
        Kind::Str,
    ),
    ("auto.offset.reset", "consumer.from", Kind::Str),
    ("isolation.level", "consumer.isolation_level", Kind::Str),
    (
        "partition.assignment.strategy",
        "consumer.assignors",
        Kind::List,
    ),
    (
        "auto.commit.interval.ms",
        "consumer.auto_commit_interval_ms",
        Kind::Int,
    ),
    (
        "session.timeout.ms",
        "consumer.session_timeout_ms",
        Kind::Int,
    ),
    (
        "heartbeat.interval.ms",
        "consumer.heartbeat_interval_ms",
        Kind::Int,
    ),
    (
        "max.poll.interval.ms",
        "consumer.max_poll_interval_ms",
        Kind::Int,
    ),
    ("max.poll.records", "consumer.max_poll_records", Kind::Int),
    ("fetch.min.bytes", "consumer.fetch_min_bytes", Kind::Int),
    ("fetch.max.bytes", "consumer.fetch_max_bytes", Kind::Int),
    ("fetch.max.wait.ms", "consumer.fetch_max_wait_ms", Kind::Int),
    ("fetch.wait.max.ms", "consumer.fetch_max_wait_ms", Kind::Int),
    (
        "max.partition.fetch.bytes",
        "consumer.max_partition_fetch_bytes",
        Kind::Int,
    ),
    ("retry.backoff.ms", "consumer.retry_backoff_ms", Kind::Int),
    (
        "retry.backoff.max.ms",
        "consumer.retry_backoff_max_ms",
        Kind::Int,
    ),
    ("metadata.max.age.ms", "net.metadata_max_age_ms", Kind::Int),
    (
        "topic.metadata.refresh.interval.ms",
        "net.metadata_max_age_ms",
        Kind::Int,
    ),
    ("request.timeout.ms", "net.request_timeout_ms", Kind::Int),
    (
        "socket.connection.setup.timeout.ms",
        "net.connect_timeout_ms",
        Kind::Int,
    ),
    (
        "reconnect.backoff.ms",
        "net.reconnect_backoff_ms",
        Kind::Int,
    ),
    (
        "reconnect.backoff.max.ms",
        "net.reconnect_backoff_max_ms",
        Kind::Int,
    ),
    ("connections.max.idle.ms", "net.idle_timeout_ms", Kind::Int),
    ("ssl.ca.location", "security.ca_file", Kind::Str),
    // Either security.ca_file (a PEM file) or security.truststore_file (PKCS#12), by content:
    // see `store_location`.
    ("ssl.truststore.location", "security.ca_file", Kind::Str),
    (
        "ssl.truststore.password",
        "security.truststore_password",
        Kind::Str,
    ),
    // PKCS#12, or a PEM file holding the key and its chain (security.cert_file and key_file).
    ("ssl.keystore.location", "security.keystore_file", Kind::Str),
    (
        "ssl.keystore.password",
        "security.keystore_password",
        Kind::Str,
    ),
    ("ssl.key.password", "security.key_password", Kind::Str),
    ("ssl.certificate.location", "security.cert_file", Kind::Str),
    ("ssl.key.location", "security.key_file", Kind::Str),
    ("sasl.mechanism", "security.sasl_mechanism", Kind::Str),
    ("sasl.mechanisms", "security.sasl_mechanism", Kind::Str),
    ("sasl.username", "security.sasl_username", Kind::Str),
    ("sasl.password", "security.sasl_password", Kind::Str),
    (
        "sasl.oauthbearer.token.endpoint.url",
        "security.oauth_token_endpoint",
        Kind::Str,
    ),
    (
        "sasl.oauthbearer.client.credentials.client.id",
        "security.oauth_client_id",
        Kind::Str,
    ),
    (
        "sasl.oauthbearer.client.credentials.client.secret",
        "security.oauth_client_secret",
        Kind::Str,
    ),
    // librdkafka's names for the same.
    (
        "sasl.oauthbearer.client.id",
        "security.oauth_client_id",
        Kind::Str,
    ),
    (
        "sasl.oauthbearer.client.secret",
        "security.oauth_client_secret",
        Kind::Str,
    ),
    ("sasl.oauthbearer.scope", "security.oauth_scope", Kind::Str),
    (
        "sasl.oauthbearer.header.urlencode",
        "security.oauth_header_urlencode",
        Kind::Bool,
    ),
    (
        "sasl.login.refresh.window.factor",
        "security.oauth_refresh_window_factor",
        Kind::Float,
    ),
    (
        "sasl.login.refresh.window.jitter",
        "security.oauth_refresh_window_jitter",
        Kind::Float,
    ),
    (
        "sasl.login.refresh.min.period.seconds",
        "security.oauth_refresh_min_period_seconds",
        Kind::Int,
    ),
    (
        "sasl.login.refresh.buffer.seconds",
        "security.oauth_refresh_buffer_seconds",
        Kind::Int,
    ),
    (
        "sasl.login.connect.timeout.ms",
        "security.oauth_connect_timeout_ms",
        Kind::Int,
    ),
    (
        "sasl.login.read.timeout.ms",
        "security.oauth_read_timeout_ms",
        Kind::Int,
    ),
    (
        "sasl.login.retry.backoff.ms",
        "security.oauth_retry_backoff_ms",
        Kind::Int,
    ),
    (
        "sasl.login.retry.backoff.max.ms",
        "security.oauth_retry_backoff_max_ms",
        Kind::Int,
    ),
];

/// The Java classes Kafka's OAUTHBEARER settings may name that do what this consumer does
/// itself (`sasl.login.callback.handler.class`, `sasl.oauthbearer.jwt.retriever.class`):
/// accepted and otherwise ignored.
const OAUTH_CLASSES: &[&str] = &[
    "org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginCallbackHandler",
    "org.apache.kafka.common.security.oauthbearer.secured.OAuthBearerLoginCallbackHandler",
    "org.apache.kafka.common.security.oauthbearer.internals.unsecured.OAuthBearerUnsecuredLoginCallbackHandler",
    "org.apache.kafka.common.security.oauthbearer.DefaultJwtRetriever",
    "org.apache.kafka.common.security.oauthbearer.ClientCredentialsJwtRetriever",
];

/// Kafka names with a value of their own shape (handled in [`apply`]).
const SPECIAL: &[&str] = &[
    "enable.auto.commit",
    "ssl.endpoint.identification.algorithm",
    "sasl.jaas.config",
    "ssl.keystore.type",
    "ssl.truststore.type",
    "sasl.oauthbearer.extensions",
    "sasl.oauthbearer.method",
    "sasl.login.callback.handler.class",
    "sasl.oauthbearer.jwt.retriever.class",
];

/// This file's keys that hold lists (a comma separated `-X` value becomes a list).
const LIST_KEYS: &[&str] = &["brokers", "consumer.topics", "consumer.assignors"];

/// Sets one property (`-X key=value`, or a dotted key of the file) in `table`.
pub fn apply(table: &mut Table, key: &str, value: &str) -> Result<(), ConfigError> {
    let invalid = |problem: String| ConfigError::Property {
        key: key.to_string(),
        problem,
    };
    match key {
        "enable.auto.commit" => {
            let enabled = parse_bool(value).ok_or_else(|| invalid("true or false".into()))?;
            let consumer = section(table, "consumer").map_err(invalid)?;
            if !enabled {
                consumer.insert("auto_commit_interval_ms".into(), Value::Integer(0));
            } else if consumer.get("auto_commit_interval_ms") == Some(&Value::Integer(0)) {
                consumer.remove("auto_commit_interval_ms");
            }
            return Ok(());
        }
        "ssl.endpoint.identification.algorithm" => {
            let verify = match value.trim().to_ascii_lowercase().as_str() {
                "https" => true,
                "" | "none" => false,
                _ => {
                    return Err(invalid(
                        "`https` (check the host name) or empty (do not)".into(),
                    ))
                }
            };
            let security = section(table, "security").map_err(invalid)?;
            security.insert("verify_hostname".into(), Value::Boolean(verify));
            return Ok(());
        }
        "ssl.keystore.type" | "ssl.truststore.type" => {
            return store_type(value).map_err(invalid);
        }
        "ssl.keystore.location" | "ssl.truststore.location" => {
            let targets = store_location(key, value).map_err(invalid)?;
            let security = section(table, "security").map_err(invalid)?;
            for target in targets {
                security.insert((*target).into(), Value::String(value.to_string()));
            }
            return Ok(());
        }
        "sasl.jaas.config" => {
            let jaas = Jaas::parse(value).map_err(invalid)?;
            let security = section(table, "security").map_err(invalid)?;
            if jaas.module.ends_with("OAuthBearerLoginModule") {
                return jaas_oauth(&jaas, security).map_err(invalid);
            }
            match (jaas.option("username"), jaas.option("password")) {
                (Some(username), Some(password)) => {
                    security.insert("sasl_username".into(), Value::String(username.into()));
                    security.insert("sasl_password".into(), Value::String(password.into()));
                }
                _ => {
                    return Err(invalid(
                        "expected a login module with username=\"...\" password=\"...\" \
                         (PLAIN or SCRAM), or OAuthBearerLoginModule; or set sasl.username and \
                         sasl.password"
                            .into(),
                    ))
                }
            }
            return Ok(());
        }
        "sasl.oauthbearer.extensions" => {
            // librdkafka's form: key=value,key=value.
            let security = section(table, "security").map_err(invalid)?;
            let extensions = section(security, "oauth_extensions").map_err(invalid)?;
            for pair in value.split(',').map(str::trim).filter(|p| !p.is_empty()) {
                let (name, value) = pair
                    .split_once('=')
                    .ok_or_else(|| invalid(format!("`{pair}` is not key=value")))?;
                extensions.insert(name.trim().into(), Value::String(value.trim().into()));
            }
            return Ok(());
        }
        "sasl.oauthbearer.method" => {
            // librdkafka: `oidc` is the token endpoint (set its URL), `default` the unsecured
            // token; which one is used follows from the keys that are set.
            return match value.trim().to_ascii_lowercase().as_str() {
                "oidc" | "default" => Ok(()),
                _ => Err(invalid("`oidc` or `default`".into())),
            };
        }
        "sasl.login.callback.handler.class" | "sasl.oauthbearer.jwt.retriever.class" => {
            return if OAUTH_CLASSES.contains(&value.trim()) {
                Ok(())
            } else {
                Err(invalid(format!(
                    "`{value}` is a Java class this consumer cannot run; it gets tokens from \
                     sasl.oauthbearer.token.endpoint.url (client credentials) or makes an \
                     unsecured one (unsecuredLogin* in sasl.jaas.config)"
                )))
            };
        }
        _ => {}
    }
    if let Some((_, target, kind)) = ALIASES.iter().find(|(name, _, _)| *name == key) {
        let value = match (*target, value) {
            ("consumer.from", "smallest" | "beginning") => "earliest",
            ("consumer.from", "largest" | "end") => "latest",
            _ => value,
        };
        let converted = convert(value, *kind, target).map_err(invalid)?;
        return set(table, target, converted).map_err(invalid);
    }
    if key.contains('.') && !key.split('.').next().is_some_and(is_section) {
        return Err(invalid(unknown_key(key)));
    }
    let kind = if LIST_KEYS.contains(&key) {
        Kind::List
    } else if value.parse::<i64>().is_ok() {
        Kind::Int
    } else {
        Kind::Str
    };
    let converted = match value {
        "true" | "false" if kind == Kind::Str => Value::Boolean(value == "true"),
        _ => convert(value, kind, key).map_err(invalid)?,
    };
    set(table, key, converted).map_err(invalid)
}

/// [`apply`] for a Java client's properties file: a Kafka property this consumer does not
/// use (`key.deserializer`, `interceptor.classes`, ...) is named once in the log and ignored,
/// as the Java client does, so a file shared with Java applications works as it stands.
/// Settings it cannot honour (a JKS key store) are still refused.
pub fn apply_from_file(table: &mut Table, key: &str, value: &str) -> Result<(), ConfigError> {
    let known = SPECIAL.contains(&key)
        || ALIASES.iter().any(|(name, _, _)| *name == key)
        || !key.contains('.')
        || key.split('.').next().is_some_and(is_section);
    if !known {
        warn_once(key);
        return Ok(());
    }
    apply(table, key, value)
}

/// Moves every Kafka-named key at the top of a config file into place (a file may say
/// `"group.id" = "g"`). A key given both ways is an error.
pub fn resolve_aliases(table: &mut Table) -> Result<(), ConfigError> {
    let aliased: Vec<String> = table.keys().filter(|k| k.contains('.')).cloned().collect();
    for key in aliased {
        let value = table.remove(&key).expect("listed above");
        let text = match &value {
            Value::String(s) => s.clone(),
            Value::Integer(i) => i.to_string(),
            Value::Boolean(b) => b.to_string(),
            Value::Array(items) => items
                .iter()
                .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_string))
                .collect::<Vec<_>>()
                .join(","),
            other => other.to_string(),
        };
        if let Some((_, target, _)) = ALIASES.iter().find(|(name, _, _)| *name == key) {
            if get(table, target).is_some() {
                return Err(ConfigError::Property {
                    key,
                    problem: format!("`{target}` is set too; keep one of them"),
                });
            }
        }
        apply(table, &key, &text)?;
    }
    Ok(())
}

fn is_section(name: &str) -> bool {
    matches!(
        name,
        "net" | "consumer" | "plugins" | "metrics" | "security"
    )
}

/// A Java client's `sasl.jaas.config`: `<LoginModule class> <flag> key="value" key=value ;`
/// (quoted values may escape with a backslash).
struct Jaas {
    module: String,
    options: Vec<(String, String)>,
}

impl Jaas {
    fn parse(text: &str) -> Result<Jaas, String> {
        let mut chars = text.trim().trim_end_matches(';').chars().peekable();
        let word = |chars: &mut std::iter::Peekable<std::str::Chars>| {
            while chars.next_if(|c| c.is_whitespace()).is_some() {}
            let mut word = String::new();
            while let Some(c) = chars.next_if(|c| !c.is_whitespace()) {
                word.push(c);
            }
            word
        };
        let module = word(&mut chars);
        let _flag = word(&mut chars);
        if module.is_empty() {
            return Err("expected `<LoginModule class> required key=\"value\" ...;`".into());
        }
        let mut options = Vec::new();
        loop {
            while chars.next_if(|c| c.is_whitespace() || *c == ';').is_some() {}
            if chars.peek().is_none() {
                break;
            }
            let mut key = String::new();
            while let Some(c) = chars.next_if(|c| *c != '=' && !c.is_whitespace()) {
                key.push(c);
            }
            if chars.next() != Some('=') {
                return Err(format!("option `{key}` has no value (key=\"value\")"));
            }
            let mut value = String::new();
            if chars.next_if_eq(&'"').is_some() {
                loop {
                    match chars.next() {
                        Some('\\') => value.extend(chars.next()),
                        Some('"') => break,
                        Some(c) => value.push(c),
                        None => return Err(format!("option `{key}`: the quote is not closed")),
                    }
                }
            } else {
                while let Some(c) = chars.next_if(|c| !c.is_whitespace() && *c != ';') {
                    value.push(c);
                }
            }
            options.push((key, value));
        }
        Ok(Jaas { module, options })
    }

    fn option(&self, name: &str) -> Option<&str> {
        self.options
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }
}

/// `OAuthBearerLoginModule`'s options into `[security]`: `clientId`, `clientSecret`, `scope`,
/// `extension_<name>` (the token endpoint), `unsecuredLogin*` (an unsecured token). A key
/// already set by its own property stays: Kafka's properties win over these JAAS options.
fn jaas_oauth(jaas: &Jaas, security: &mut Table) -> Result<(), String> {
    let set = |table: &mut Table, key: &str, value: Value| {
        table.entry(key.to_string()).or_insert(value);
    };
    for (option, value) in &jaas.options {
        let text = || Value::String(value.clone());
        match option.as_str() {
            "clientId" => set(security, "oauth_client_id", text()),
            "clientSecret" => set(security, "oauth_client_secret", text()),
            "scope" => set(security, "oauth_scope", text()),
            "unsecuredLoginPrincipalClaimName" => {
                set(security, "oauth_unsecured_principal_claim", text())
            }
            "unsecuredLoginLifetimeSeconds" => {
                let seconds = value.parse().map_err(|_| {
                    format!("unsecuredLoginLifetimeSeconds `{value}` is not a whole number")
                })?;
                set(
                    security,
                    "oauth_unsecured_lifetime_seconds",
                    Value::Integer(seconds),
                )
            }
            other => {
                let (table, name, value) = if let Some(name) = other
                    .strip_prefix("extension_")
                    .or_else(|| other.strip_prefix("unsecuredLoginExtension_"))
                {
                    ("oauth_extensions", name, text())
                } else if let Some(name) = other.strip_prefix("unsecuredLoginStringClaim_") {
                    ("oauth_unsecured_claims", name, text())
                } else if let Some(name) = other.strip_prefix("unsecuredLoginNumberClaim_") {
                    let number = value
                        .parse::<i64>()
                        .map(Value::Integer)
                        .or_else(|_| value.parse::<f64>().map(Value::Float))
                        .map_err(|_| format!("{other} `{value}` is not a number"))?;
                    ("oauth_unsecured_claims", name, number)
                } else if other.starts_with("unsecuredLogin") {
                    return Err(format!(
                        "the JAAS option {other} is not supported (unsecuredLoginStringClaim_*, \
                         unsecuredLoginNumberClaim_*, unsecuredLoginPrincipalClaimName, \
                         unsecuredLoginLifetimeSeconds and unsecuredLoginExtension_* are)"
                    ));
                } else {
                    warn_once(&format!("sasl.jaas.config option {other}"));
                    continue;
                };
                set(section(security, table)?, name, value);
            }
        }
    }
    Ok(())
}

fn parse_bool(text: &str) -> Option<bool> {
    match text.to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" => Some(true),
        "false" | "0" | "no" => Some(false),
        _ => None,
    }
}

fn convert(value: &str, kind: Kind, target: &str) -> Result<Value, String> {
    Ok(match kind {
        Kind::Int => Value::Integer(
            value
                .trim()
                .parse()
                .map_err(|_| format!("`{value}` is not a whole number"))?,
        ),
        Kind::Float => Value::Float(
            value
                .trim()
                .parse()
                .map_err(|_| format!("`{value}` is not a number"))?,
        ),
        Kind::Bool => {
            Value::Boolean(parse_bool(value).ok_or_else(|| format!("`{value}`: true or false"))?)
        }
        Kind::Str => Value::String(value.to_string()),
        Kind::List => Value::Array(
            value
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(|item| {
                    let item = if target == "consumer.assignors" {
                        assignor_name(item)
                    } else {
                        item
                    };
                    Value::String(item.to_string())
                })
                .collect(),
        ),
    })
}

/// The Java client's assignor class names as this consumer's assignor names.
fn assignor_name(name: &str) -> &str {
    match name.rsplit('.').next().unwrap_or(name) {
        "RangeAssignor" => "range",
        "RoundRobinAssignor" => "roundrobin",
        "StickyAssignor" => "sticky",
        "CooperativeStickyAssignor" => "cooperative-sticky",
        _ => name,
    }
}

fn section<'a>(table: &'a mut Table, name: &str) -> Result<&'a mut Table, String> {
    table
        .entry(name.to_string())
        .or_insert_with(|| Value::Table(Table::new()))
        .as_table_mut()
        .ok_or_else(|| format!("`{name}` is not a table"))
}

fn set(table: &mut Table, path: &str, value: Value) -> Result<(), String> {
    match path.split_once('.') {
        None => {
            table.insert(path.to_string(), value);
            Ok(())
        }
        Some((head, rest)) => set(section(table, head)?, rest, value),
    }
}

fn get<'a>(table: &'a Table, path: &str) -> Option<&'a Value> {
    match path.split_once('.') {
        None => table.get(path),
        Some((head, rest)) => get(table.get(head)?.as_table()?, rest),
    }
}

/// `ssl.keystore.type` / `ssl.truststore.type`: PKCS12 and PEM are read (the files are told
/// apart by content, so the type only has to be one of them); JKS is refused with the command
/// that converts it.
fn store_type(value: &str) -> Result<(), String> {
    match value.trim().to_ascii_uppercase().as_str() {
        "PKCS12" | "PEM" => Ok(()),
        "JKS" | "JCEKS" => Err(jks_refusal()),
        _ => Err(format!(
            "`{value}` is not supported: PKCS12 or PEM (a JKS store converts with `{}`)",
            JKS_CONVERSION
        )),
    }
}

fn jks_refusal() -> String {
    format!(
        "a JKS key store is not supported: convert it to PKCS#12 with `{JKS_CONVERSION}` and \
         set the type to PKCS12"
    )
}

/// Where a Java store location goes, by the file's content (a PEM file starts with
/// `-----BEGIN`): `ssl.truststore.location` to `security.ca_file` (PEM) or
/// `security.truststore_file` (PKCS#12); `ssl.keystore.location` to `security.cert_file` and
/// `security.key_file` (PEM: key and chain in one file, Kafka's PEM key store) or
/// `security.keystore_file`. A file that cannot be read yet goes by its extension (.jks:
/// refused; .p12, .pfx: PKCS#12; otherwise PEM for a truststore, PKCS#12 for a keystore), and
/// is reported when the files are read.
fn store_location(key: &str, value: &str) -> Result<&'static [&'static str], String> {
    let kind = kind_of_file(std::path::Path::new(value)).unwrap_or_else(|| {
        let lower = value.to_ascii_lowercase();
        if lower.ends_with(".jks") {
            FileKind::Jks
        } else if lower.ends_with(".p12")
            || lower.ends_with(".pfx")
            || key == "ssl.keystore.location"
        {
            FileKind::Other
        } else {
            FileKind::Pem
        }
    });
    Ok(match (key, kind) {
        (_, FileKind::Jks) => return Err(jks_refusal()),
        ("ssl.truststore.location", FileKind::Pem) => &["ca_file"],
        ("ssl.truststore.location", FileKind::Other) => &["truststore_file"],
        (_, FileKind::Pem) => &["cert_file", "key_file"],
        (_, FileKind::Other) => &["keystore_file"],
    })
}

/// Logs, once per key and process, that a Kafka property is ignored.
fn warn_once(key: &str) {
    static WARNED: std::sync::Mutex<std::collections::BTreeSet<String>> =
        std::sync::Mutex::new(std::collections::BTreeSet::new());
    let first = WARNED
        .lock()
        .map(|mut warned| warned.insert(key.to_string()))
        .unwrap_or(true);
    if first {
        tracing::warn!(property = key, hint = %unknown_key(key), "ignoring a Kafka property this consumer does not use");
    }
}

/// "unknown property", with the nearest Kafka name when one is close.
fn unknown_key(key: &str) -> String {
    let names = ALIASES
        .iter()
        .map(|(name, _, _)| *name)
        .chain(SPECIAL.iter().copied())
        .chain(["security.protocol"]);
    match nearest(key, names) {
        Some(near) => format!("unknown property; did you mean `{near}`?"),
        None => "unknown property (Kafka names such as group.id, or this file's keys such as \
                 consumer.max_poll_records)"
            .to_string(),
    }
}

/// The candidate closest to `key`, if it is close enough to be a typo.
pub fn nearest<'a>(key: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    candidates
        .into_iter()
        .map(|candidate| (strsim::jaro_winkler(key, candidate), candidate))
        .filter(|(score, _)| *score > 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, candidate)| candidate)
}

/// A deserialization error, with a suggestion when it names an unknown field: toml says
/// "unknown field `x`, expected one of `a`, `b`" and this adds "did you mean `a`?".
pub fn with_suggestion(message: String) -> String {
    let Some(rest) = message.split("unknown field `").nth(1) else {
        return message;
    };
    let Some((field, expected)) = rest.split_once('`') else {
        return message;
    };
    let candidates: Vec<&str> = expected.split('`').skip(1).step_by(2).collect();
    let alias = ALIASES
        .iter()
        .find(|(name, _, _)| name.replace('.', "_") == field);
    match (nearest(field, candidates.iter().copied()), alias) {
        (_, Some((name, target, _))) => {
            format!("{message}\n(the Kafka property `{name}` is `{target}` here)")
        }
        (Some(near), None) => format!("{message}\n(did you mean `{near}`?)"),
        (None, None) => message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(pairs: &[(&str, &str)]) -> Result<Table, ConfigError> {
        let mut table = Table::new();
        for (key, value) in pairs {
            apply(&mut table, key, value)?;
        }
        Ok(table)
    }

    #[test]
    fn kafka_names_land_where_this_file_keeps_them() {
        let table = table(&[
            ("bootstrap.servers", "a:9092, b:9092"),
            ("group.id", "g"),
            ("auto.offset.reset", "smallest"),
            ("enable.auto.commit", "false"),
            (
                "partition.assignment.strategy",
                "org.apache.kafka.clients.consumer.CooperativeStickyAssignor,range",
            ),
            ("max.poll.records", "500"),
            ("consumer.rack", "r1"),
            ("net.metadata_min_age_ms", "200"),
        ])
        .unwrap();
        let text = toml::to_string(&table).unwrap();
        let config: crate::config::Config = toml::from_str(&text).unwrap();
        assert_eq!(config.brokers, ["a:9092", "b:9092"]);
        assert_eq!(config.consumer.group.as_deref(), Some("g"));
        assert_eq!(config.consumer.auto_commit_interval_ms, 0);
        assert_eq!(config.consumer.assignors, ["cooperative-sticky", "range"]);
        assert_eq!(config.consumer.max_poll_records, 500);
        assert_eq!(config.consumer.rack.as_deref(), Some("r1"));
        assert_eq!(config.net.metadata_min_age_ms, 200);
        assert_eq!(config.consumer.from.to_string(), "earliest");
    }

    #[test]
    fn security_properties_land_in_security() {
        let table = table(&[
            ("security.protocol", "sasl_ssl"),
            ("ssl.ca.location", "/etc/ca.pem"),
            ("ssl.endpoint.identification.algorithm", ""),
            ("sasl.mechanism", "SCRAM-SHA-512"),
            (
                "sasl.jaas.config",
                r#"org.apache.kafka.common.security.scram.ScramLoginModule required username="alice" password="p\"w";"#,
            ),
        ])
        .unwrap();
        let text = toml::to_string(&table).unwrap();
        let config: crate::config::Config = toml::from_str(&text).unwrap();
        let security = &config.security;
        assert_eq!(security.protocol, "sasl_ssl");
        assert_eq!(security.ca_file.as_deref(), Some("/etc/ca.pem".as_ref()));
        assert!(!security.verify_hostname);
        assert_eq!(security.sasl_mechanism.as_deref(), Some("SCRAM-SHA-512"));
        assert_eq!(security.sasl_username.as_deref(), Some("alice"));
        assert_eq!(
            security.sasl_password.as_ref().map(|p| p.expose()),
            Some("p\"w")
        );
        assert_eq!(format!("{:?}", security.sasl_password), "Some(***)");

        let error =
            super::super::Config::parse_with("", &[("sasl.jaas.config".into(), "x".into())])
                .unwrap_err()
                .to_string();
        assert!(
            error.contains("username=\"...\" password=\"...\""),
            "{error}"
        );
    }

    /// Kafka 4.x's OAUTHBEARER properties, the JAAS options of `OAuthBearerLoginModule`
    /// (the property wins where both are set, as in Kafka), and the unsecured form.
    #[test]
    fn oauthbearer_properties_and_jaas_options_land_in_security() {
        let config = |pairs: &[(&str, &str)]| {
            let text = toml::to_string(&table(pairs).unwrap()).unwrap();
            toml::from_str::<crate::config::Config>(&text)
                .unwrap()
                .security
        };
        let jaas = r#"org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule required clientId="from-jaas" clientSecret="s\"x" scope=kafka extension_logicalCluster="lkc-1" ;"#;
        let s = config(&[
            ("sasl.mechanism", "OAUTHBEARER"),
            ("sasl.oauthbearer.token.endpoint.url", "https://idp/token"),
            ("sasl.jaas.config", jaas),
            (
                "sasl.oauthbearer.client.credentials.client.id",
                "from-property",
            ),
            (
                "sasl.login.callback.handler.class",
                "org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginCallbackHandler",
            ),
            ("sasl.login.refresh.window.factor", "0.9"),
            ("sasl.login.retry.backoff.max.ms", "2000"),
            ("sasl.oauthbearer.header.urlencode", "true"),
        ]);
        assert_eq!(s.oauth_token_endpoint.as_deref(), Some("https://idp/token"));
        assert_eq!(s.oauth_client_id.as_deref(), Some("from-property"));
        assert_eq!(
            s.oauth_client_secret.as_ref().map(|p| p.expose()),
            Some("s\"x")
        );
        assert_eq!(s.oauth_scope.as_deref(), Some("kafka"));
        assert_eq!(s.oauth_extensions["logicalCluster"], "lkc-1");
        assert_eq!(s.oauth_refresh_window_factor, 0.9);
        assert_eq!(s.oauth_retry_backoff_max_ms, 2000);
        assert!(s.oauth_header_urlencode);
        assert!(!format!("{s:?}").contains("s\"x"));

        let s = config(&[(
            "sasl.jaas.config",
            r#"org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule required unsecuredLoginStringClaim_sub="alice" unsecuredLoginNumberClaim_level="3" unsecuredLoginLifetimeSeconds="60";"#,
        )]);
        assert_eq!(s.oauth_unsecured_claims["sub"], "alice");
        assert_eq!(s.oauth_unsecured_claims["level"], 3);
        assert_eq!(s.oauth_unsecured_lifetime_seconds, 60);

        let s = config(&[("sasl.oauthbearer.extensions", "a=1, b=2")]);
        assert_eq!(s.oauth_extensions.len(), 2);

        let error = table(&[("sasl.login.callback.handler.class", "com.example.Mine")])
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("a Java class this consumer cannot run"),
            "{error}"
        );
    }

    /// The property paths' own refusals, with their messages.
    #[test]
    fn property_values_that_do_not_fit_are_refused() {
        let cases = [
            (
                ("enable.auto.commit", "sometimes"),
                "property `enable.auto.commit`: true or false",
            ),
            (
                ("ssl.endpoint.identification.algorithm", "dns"),
                "property `ssl.endpoint.identification.algorithm`: `https` (check the host \
                 name) or empty (do not)",
            ),
            (
                ("fetch.min.bytes", "1k"),
                "property `fetch.min.bytes`: `1k` is not a whole number",
            ),
            (
                ("nonsense.key", "1"),
                "property `nonsense.key`: unknown property (Kafka names such as group.id, or \
                 this file's keys such as consumer.max_poll_records)",
            ),
        ];
        for ((key, value), expected) in cases {
            let error = table(&[(key, value)]).unwrap_err().to_string();
            assert_eq!(error, expected);
        }
        // A file that names one setting both ways.
        let mut file: Table =
            toml::from_str("\"group.id\" = \"a\"\n[consumer]\ngroup = \"b\"").unwrap();
        let error = resolve_aliases(&mut file).unwrap_err().to_string();
        assert_eq!(
            error,
            "property `group.id`: `consumer.group` is set too; keep one of them"
        );
    }

    /// Java store locations go by the file's content; PKCS12 and PEM types are accepted,
    /// JKS is refused with the keytool command; passwords land as secrets.
    #[test]
    fn key_and_trust_stores_go_where_their_content_says() {
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, bytes: &[u8]| {
            let path = dir.path().join(name);
            std::fs::write(&path, bytes).unwrap();
            path.display().to_string()
        };
        let pem = write("ca.crt", b"-----BEGIN CERTIFICATE-----\nAA==\n");
        let p12 = write("store.bin", &[0x30, 0x82, 0x0a, 0x01]);
        let jks = write("store.dat", &[0xFE, 0xED, 0xFE, 0xED, 0, 0, 0, 2]);
        let security = |pairs: &[(&str, &str)]| {
            let mut pairs = pairs.to_vec();
            pairs.push(("security.protocol", "SSL"));
            let text = toml::to_string(&table(&pairs).unwrap()).unwrap();
            let config: crate::config::Config = toml::from_str(&text).unwrap();
            config.security
        };
        let s = security(&[("ssl.truststore.location", &pem)]);
        assert_eq!(s.ca_file.as_deref(), Some(pem.as_ref()));
        assert_eq!(s.truststore_file, None);
        let s = security(&[
            ("ssl.truststore.location", &p12),
            ("ssl.truststore.type", "pkcs12"),
            ("ssl.truststore.password", "t-secret"),
        ]);
        assert_eq!(s.truststore_file.as_deref(), Some(p12.as_ref()));
        assert_eq!(s.ca_file, None);
        assert_eq!(
            s.truststore_password.as_ref().map(|p| p.expose()),
            Some("t-secret")
        );
        let s = security(&[
            ("ssl.keystore.type", "PKCS12"),
            ("ssl.keystore.location", &p12),
            ("ssl.keystore.password", "k-secret"),
            ("ssl.key.password", "key-secret"),
        ]);
        assert_eq!(s.keystore_file.as_deref(), Some(p12.as_ref()));
        assert_eq!(s.cert_file, None);
        let shown = format!("{s:?}");
        assert!(
            !shown.contains("k-secret") && !shown.contains("key-secret"),
            "{shown}"
        );
        // Kafka's PEM key store: the key and its chain in one file.
        let s = security(&[
            ("ssl.keystore.type", "PEM"),
            ("ssl.keystore.location", &pem),
        ]);
        assert_eq!(s.cert_file.as_deref(), Some(pem.as_ref()));
        assert_eq!(s.key_file.as_deref(), Some(pem.as_ref()));
        assert_eq!(s.keystore_file, None);
        // A file not there (yet) goes by its extension.
        let s = security(&[("ssl.truststore.location", "/nowhere/trust.p12")]);
        assert_eq!(
            s.truststore_file.as_deref(),
            Some("/nowhere/trust.p12".as_ref())
        );
        let s = security(&[("ssl.truststore.location", "/nowhere/ca.pem")]);
        assert_eq!(s.ca_file.as_deref(), Some("/nowhere/ca.pem".as_ref()));

        let conversion = "convert it to PKCS#12 with `keytool -importkeystore -srckeystore k.jks \
                          -destkeystore k.p12 -deststoretype PKCS12` and set the type to PKCS12";
        for (key, value) in [
            ("ssl.keystore.location", jks.as_str()),
            ("ssl.truststore.location", jks.as_str()),
            ("ssl.keystore.type", "JKS"),
            ("ssl.truststore.type", "jks"),
        ] {
            let error = table(&[(key, value)]).unwrap_err().to_string();
            assert_eq!(
                error,
                format!("property `{key}`: a JKS key store is not supported: {conversion}")
            );
        }
        let error = table(&[("ssl.truststore.type", "BCFKS")])
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("`BCFKS` is not supported: PKCS12 or PEM"),
            "{error}"
        );
    }

    #[test]
    fn typos_get_the_nearest_name() {
        let error = table(&[("group.idd", "g")]).unwrap_err().to_string();
        assert!(error.contains("did you mean `group.id`?"), "{error}");
        let error = table(&[("max.poll.records", "many")])
            .unwrap_err()
            .to_string();
        assert!(error.contains("not a whole number"), "{error}");
        let error = table(&[("sasl.mechanisim", "PLAIN")])
            .unwrap_err()
            .to_string();
        assert!(error.contains("did you mean `sasl.mechanism`?"), "{error}");
        let message = with_suggestion(
            "unknown field `conusmer`, expected one of `brokers`, `consumer`, `net`".into(),
        );
        assert!(message.ends_with("(did you mean `consumer`?)"), "{message}");
        let message =
            with_suggestion("unknown field `group_id`, expected one of `topics`, `group`".into());
        assert!(
            message.contains("`group.id` is `consumer.group`"),
            "{message}"
        );
    }
}
