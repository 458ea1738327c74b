//! The Apache Kafka versions the tests run: the one place that names them. The harness runs
//! the version [`selected`] by `WASMKAFKA_KAFKA_VERSION` (unset: [`DEFAULT`]);
//! `scripts/test.sh` runs everything on the default and the group and fetch suites again on
//! the [`newest`]. `kafka-local versions` lists [`KNOWN`] for scripts.
//!
//! Each version carries what its jars need beside the Kafka artifacts
//! (`tests/kafka/pom.xml` takes them as `-D` properties): the log4j2 version its
//! `kafka-server` POM names, and the SLF4J binding that matches its `slf4j-api` (no Kafka POM
//! names the binding: it ships only in the release tarball).

use std::sync::OnceLock;

/// One Apache Kafka release and the logging jars its classpath needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KafkaVersion {
    /// `org.apache.kafka:kafka_2.13` version.
    pub kafka: &'static str,
    /// `org.apache.logging.log4j` version (log4j-core and the binding), as the release's
    /// `kafka-server` POM names it.
    pub log4j2: &'static str,
    /// `slf4j-api` version of the release (its `kafka-clients` POM).
    pub slf4j: &'static str,
    /// The log4j2 binding for that SLF4J: `log4j-slf4j-impl` for slf4j 1.7,
    /// `log4j-slf4j2-impl` for slf4j 2.
    pub log4j_binding: &'static str,
}

/// Every version the tests know, oldest first.
pub const KNOWN: &[KafkaVersion] = &[
    // kafka-server 4.1.1 POM: log4j-core 2.24.3; slf4j-api 1.7.36.
    KafkaVersion {
        kafka: "4.1.1",
        log4j2: "2.24.3",
        slf4j: "1.7.36",
        log4j_binding: "log4j-slf4j-impl",
    },
    // The newest 4.x on Maven Central when this was written: its kafka-server POM names
    // log4j-core 2.25.5; slf4j-api is still 1.7.36.
    KafkaVersion {
        kafka: "4.4.0",
        log4j2: "2.25.5",
        slf4j: "1.7.36",
        log4j_binding: "log4j-slf4j-impl",
    },
];

/// The version a test process runs when `WASMKAFKA_KAFKA_VERSION` is unset.
pub const DEFAULT: &str = "4.1.1";

/// The environment variable that picks the version of a test process.
pub const ENV: &str = "WASMKAFKA_KAFKA_VERSION";

/// The known version named `kafka` (e.g. "4.4.0").
pub fn find(kafka: &str) -> Option<&'static KafkaVersion> {
    KNOWN.iter().find(|version| version.kafka == kafka)
}

/// The default version ([`DEFAULT`]).
pub fn default_version() -> &'static KafkaVersion {
    find(DEFAULT).expect("DEFAULT is one of KNOWN")
}

/// The newest known version (the last of [`KNOWN`]).
pub fn newest() -> &'static KafkaVersion {
    KNOWN.last().expect("KNOWN is not empty")
}

/// The version named by the value of `WASMKAFKA_KAFKA_VERSION` (`None` or empty: the
/// default). Panics on a version the tests do not know, listing the known ones.
pub fn choose(value: Option<&str>) -> &'static KafkaVersion {
    match value.map(str::trim) {
        None | Some("") => default_version(),
        Some(name) => find(name).unwrap_or_else(|| {
            let known: Vec<&str> = KNOWN.iter().map(|version| version.kafka).collect();
            panic!(
                "{ENV}={name:?} is not a Kafka version the tests know; known: {} \
                 (tests/src/kafka/versions.rs)",
                known.join(", ")
            )
        }),
    }
}

/// The version this process runs: `WASMKAFKA_KAFKA_VERSION`, else [`DEFAULT`]. Read once.
pub fn selected() -> &'static KafkaVersion {
    static SELECTED: OnceLock<&'static KafkaVersion> = OnceLock::new();
    SELECTED.get_or_init(|| {
        let value = std::env::var_os(ENV).map(|value| value.to_string_lossy().into_owned());
        choose(value.as_deref())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unset_or_empty_is_the_default_and_names_pick_their_version() {
        assert_eq!(choose(None).kafka, DEFAULT);
        assert_eq!(choose(Some("")).kafka, DEFAULT);
        for version in KNOWN {
            assert_eq!(choose(Some(version.kafka)), version);
        }
    }

    #[test]
    fn an_unknown_version_panics_listing_the_known_ones() {
        let panic = std::panic::catch_unwind(|| choose(Some("3.9.0"))).unwrap_err();
        let message = panic.downcast_ref::<String>().unwrap();
        assert!(message.contains("\"3.9.0\""), "{message}");
        for version in KNOWN {
            assert!(message.contains(version.kafka), "{message}");
        }
    }

    #[test]
    fn known_versions_are_distinct_and_oldest_first() {
        let parse = |name: &str| -> Vec<u32> {
            name.split('.').map(|part| part.parse().unwrap()).collect()
        };
        for pair in KNOWN.windows(2) {
            assert!(parse(pair[0].kafka) < parse(pair[1].kafka), "{pair:?}");
        }
        assert!(find(DEFAULT).is_some());
    }
}
