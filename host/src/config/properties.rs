//! Kafka's own property names, accepted where a user reaches for them: as keys of the config
//! file (`"bootstrap.servers" = "a:9092,b:9092"`, `"group.id" = "g"`) and as `-X key=value`
//! flags, the way kcat takes them. `-X` also takes this file's own keys, dotted
//! (`-X consumer.max_poll_records=500`).
//!
//! Everything goes through the TOML table before it is deserialized, so one path checks types
//! and unknown keys, and an unknown key is answered with the nearest known one.

use toml::{Table, Value};

use super::ConfigError;

/// How a property's text becomes a TOML value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Int,
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
    ("ssl.truststore.location", "security.ca_file", Kind::Str),
    ("ssl.certificate.location", "security.cert_file", Kind::Str),
    ("ssl.key.location", "security.key_file", Kind::Str),
    ("sasl.mechanism", "security.sasl_mechanism", Kind::Str),
    ("sasl.mechanisms", "security.sasl_mechanism", Kind::Str),
    ("sasl.username", "security.sasl_username", Kind::Str),
    ("sasl.password", "security.sasl_password", Kind::Str),
];

/// Kafka names with a value of their own shape (handled in [`apply`]).
const SPECIAL: &[&str] = &[
    "enable.auto.commit",
    "ssl.endpoint.identification.algorithm",
    "sasl.jaas.config",
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
        "sasl.jaas.config" => {
            let (username, password) = jaas_credentials(value).map_err(invalid)?;
            let security = section(table, "security").map_err(invalid)?;
            security.insert("sasl_username".into(), Value::String(username));
            security.insert("sasl_password".into(), Value::String(password));
            return Ok(());
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
        if let Some(problem) = unsupported(key) {
            return Err(invalid(problem.to_string()));
        }
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
/// Settings it cannot honour (key stores) are still refused.
pub fn apply_from_file(table: &mut Table, key: &str, value: &str) -> Result<(), ConfigError> {
    let known = SPECIAL.contains(&key)
        || ALIASES.iter().any(|(name, _, _)| *name == key)
        || !key.contains('.')
        || key.split('.').next().is_some_and(is_section);
    if !known && unsupported(key).is_none() {
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

/// The user name and password of a Java client's `sasl.jaas.config`
/// (`org.apache.kafka.common.security.scram.ScramLoginModule required username="u"
/// password="p";`). The login module is not checked: `sasl.mechanism` says which one is used.
fn jaas_credentials(text: &str) -> Result<(String, String), String> {
    let option = |name: &str| -> Option<String> {
        let start = text.find(&format!("{name}=\""))? + name.len() + 2;
        let rest = &text[start..];
        let mut value = String::new();
        let mut chars = rest.chars();
        while let Some(c) = chars.next() {
            match c {
                '\\' => value.push(chars.next()?),
                '"' => return Some(value),
                other => value.push(other),
            }
        }
        None
    };
    match (option("username"), option("password")) {
        (Some(username), Some(password)) => Ok((username, password)),
        _ => Err(
            "expected a login module with username=\"...\" password=\"...\" (PLAIN or SCRAM); \
             or set sasl.username and sasl.password"
                .into(),
        ),
    }
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

/// Kafka properties that change what a connection is, which this consumer cannot honour
/// yet: refused, since ignoring them would connect differently than the file says.
fn unsupported(key: &str) -> Option<&'static str> {
    match key {
        "ssl.keystore.location"
        | "ssl.keystore.password"
        | "ssl.keystore.type"
        | "ssl.key.password" => Some(
            "Java key stores (JKS, PKCS#12) are not supported yet: convert the key store to PEM \
             (openssl pkcs12 -in store.p12 -out client.pem -nodes) and set \
             ssl.certificate.location and ssl.key.location",
        ),
        "ssl.truststore.type" | "ssl.truststore.password" => Some(
            "Java trust stores (JKS, PKCS#12) are not supported yet: export the CA certificates \
             to a PEM file and set ssl.truststore.location (or ssl.ca.location) to it",
        ),
        _ => None,
    }
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
