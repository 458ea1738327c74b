//! The TOML configuration file. Every key is optional except where noted; command-line flags
//! override the file. Unknown keys are refused (a typo should not be silently ignored).
//!
//! ```toml
//! brokers = ["127.0.0.1:9092"]
//! client_id = "wasmkafka"
//!
//! [net]
//! connect_timeout_ms = 10000
//! request_timeout_ms = 30000
//! idle_timeout_ms = 540000
//! max_frame_bytes = 104857600
//! reconnect_backoff_ms = 50
//! reconnect_backoff_max_ms = 1000
//! broker_compat = "kafka"    # or "tansu-0.6": Fetch v11, subscriptions without generation
//! metadata_min_age_ms = 1000     # no two metadata refreshes for the same topics closer
//!                                # together than this (no spinning while a leader is
//!                                # elected); an answer younger than this is reused
//! metadata_max_age_ms = 300000   # refresh at least this often (Kafka's metadata.max.age.ms):
//!                                # new partitions and topics matching a pattern show up
//!
//! [consumer]
//! topics = ["events"]
//! topic_pattern = "^events-.*"   # with a group: also every topic whose name matches (regex
//!                                # crate syntax, anywhere in the name unless anchored with ^
//!                                # and $; internal topics never match), followed as topics
//!                                # come and go
//! group = "my-group"
//! from = "earliest"          # the reset policy: where to start without a committed offset and
//!                            # where an out-of-range offset goes: earliest | latest | none |
//!                            # by_duration:<ISO-8601 duration>, e.g. by_duration:P1D
//! isolation_level = "read_uncommitted"   # or read_committed (hide aborted transactions)
//! fetch_max_wait_ms = 500
//! fetch_min_bytes = 1
//! # fetch_max_bytes = 2097152  # one Fetch answer, at most. Unset (the default), it follows
//!                              # the round trip to the leader: 2 MiB near the broker (leaner:
//!                              # the consumer holds about two answers), plus 1 MiB per ms of
//!                              # round trip beyond 5 ms, up to 50 MiB (Kafka's clients' fixed
//!                              # default); see fetch/size.rs and BENCHMARKS.md
//! max_partition_fetch_bytes = 1048576
//! max_buffered_bytes = 67108864   # fetched batches held for the application, at most
//!                                 # (plus one answer per broker in flight)
//! retry_backoff_ms = 100     # failed fetches, ListOffsets and metadata refreshes back off
//! retry_backoff_max_ms = 1000
//! max_poll_records = 10000   # records one poll hands over (`run` writes, flushes and commits
//!                            # in batches of at most this many)
//!
//! # with a group:
//! assignors = ["range", "cooperative-sticky"]   # preference order; cooperative rebalancing
//!                                               # only when every one is cooperative
//! group_instance_id = "host-1"   # static membership (KIP-345)
//! session_timeout_ms = 45000
//! rebalance_timeout_ms = 60000
//! heartbeat_interval_ms = 3000
//! max_poll_interval_ms = 300000
//! auto_commit_interval_ms = 5000   # 0 turns auto-commit off (then nothing is committed)
//! commit_timeout_ms = 60000        # how long a commit retries transient errors
//! shutdown_timeout_ms = 30000      # a clean stop (commit, leave) gives up after this
//! rack = "eu-1a"   # client.rack: rack-aware assignors; fetches from a replica in this rack
//!                  # where the brokers pick one (KIP-392)
//! group_protocol = "classic"   # or "consumer": KIP-848, the broker assigns (Kafka 4.0+);
//!                              # consumer.assignors and assignor plugins are classic only
//! # group_remote_assignor = "uniform"   # consumer protocol: the broker's assignor
//!                                       # (uniform or range); unset: the broker's default
//!
//! [metrics]
//! listen = "127.0.0.1:9464"   # Prometheus /metrics, /healthz, /readyz (also --metrics)
//!
//! [security]
//! protocol = "SASL_SSL"       # PLAINTEXT (default) | SSL | SASL_PLAINTEXT | SASL_SSL
//! ca_file = "ca.pem"          # CAs to trust (PEM); the system's trust store when unset
//! cert_file = "client.pem"    # a client certificate (PEM), for brokers that require one
//! key_file = "client.key"     # its private key (PEM; encrypted PKCS#8 needs key_password)
//! # keystore_file = "client.p12"   # or the certificate and key from a PKCS#12 keystore
//! # keystore_password_file = "/run/secrets/keystore"   # or keystore_password = "..."
//! # key_password_file = "/run/secrets/key"   # or key_password: the key's own password
//! #                                          # (default: the keystore's)
//! # truststore_file = "truststore.p12"       # or the CAs from a PKCS#12 truststore
//! # truststore_password = "..."              # or truststore_password_file
//! verify_hostname = true      # the broker's certificate must name the host connected to
//! sasl_mechanism = "SCRAM-SHA-512"   # PLAIN | SCRAM-SHA-256 | SCRAM-SHA-512
//! sasl_username = "alice"
//! sasl_password_file = "/run/secrets/kafka"   # or sasl_password = "..." (kept out of logs)
//! # sasl_mechanism = "OAUTHBEARER"   # a token instead of a user and password (config/oauth.rs):
//! # oauth_token_endpoint = "https://idp.example.com/oauth2/token"   # client credentials
//! # oauth_client_id = "orders-consumer"
//! # oauth_client_secret_file = "/run/secrets/oauth"   # or oauth_client_secret = "..."
//! # oauth_scope = "kafka"
//! # oauth_unsecured_claims = { sub = "alice" }   # or an unsigned token (unsecured validator)
//!
//! [plugins]
//! assignor_fallback = "range"  # when the chosen assignor fails or answers nonsense
//! deadline_ms = 1000           # per call
//! memory_bytes = 67108864      # per instance
//! max_file_bytes = 33554432
//! cache_dir = "/var/cache/wasmkafka"   # compiled plugins (private: owned by this user, 0700)
//! cache_max_bytes = 268435456  # least recently used entries go beyond this
//!
//! [[plugins.assignors]]         # in consumer.assignors by its name, or (unnamed) before them
//! path = "plugins/weighted.wasm"
//! settings = { weight = "3" }
//! # sha256 = "..."              # pin: any other build of the file is refused
//!
//! [plugins.reset_policy]        # consumer.from decides when it fails
//! path = "plugins/rewind.wasm"
//! settings = { records = "500" }
//! ```

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;

mod consumer;
pub mod layers;
mod net;
mod oauth;
mod plugins;
mod properties;
mod security;

pub use consumer::ConsumerConfig;
pub use net::NetConfig;
pub use plugins::{PluginRef, PluginsConfig};
pub use security::SecurityConfig;

use crate::cluster::MetadataOptions;
use crate::fetch::{FetchOptions, FetchSize};
use crate::group::{Assignor, Builtin, GroupOptions, GroupProtocol, TopicPattern};
use crate::net::{ConnectionOptions, PoolOptions, TlsSetupError};

/// A configuration problem, with the key it concerns and what to do.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    #[error("cannot read config file {path}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("config file {path} is not valid: {reason}")]
    Parse { path: String, reason: String },
    #[error("invalid value for `{key}`: {problem}")]
    Invalid { key: &'static str, problem: String },
    #[error("property `{key}`: {problem}")]
    Property { key: String, problem: String },
    #[error("TLS setup ([security]): {0}")]
    Tls(#[from] TlsSetupError),
}

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub brokers: Vec<String>,
    #[serde(default = "default_client_id")]
    pub client_id: String,
    #[serde(default)]
    pub net: NetConfig,
    #[serde(default)]
    pub consumer: ConsumerConfig,
    #[serde(default)]
    pub plugins: PluginsConfig,
    #[serde(default)]
    pub metrics: MetricsConfig,
    #[serde(default)]
    pub security: SecurityConfig,
}

/// `[metrics]`: where `run` serves `/metrics`, `/healthz` and `/readyz`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsConfig {
    /// `HOST:PORT` to listen on (`--metrics`); nothing is served without it.
    pub listen: Option<String>,
}

fn default_client_id() -> String {
    "wasmkafka".to_string()
}

impl Config {
    /// Reads and validates a config file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        Config::load_with(Some(path), &[])
    }

    /// Parses and validates config text.
    pub fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse_with(text, &[])
    }

    /// Parses config text, with Kafka-named keys moved into place and `properties`
    /// (`-X key=value`: Kafka names or this file's dotted keys) applied on top; validates it.
    pub fn parse_with(text: &str, properties: &[(String, String)]) -> Result<Config, ConfigError> {
        let parse_error = |reason: String| ConfigError::Parse {
            path: "<text>".into(),
            reason: properties::with_suggestion(reason),
        };
        let mut table: toml::Table =
            toml::from_str(text).map_err(|e| parse_error(e.to_string()))?;
        properties::resolve_aliases(&mut table)?;
        for (key, value) in properties {
            properties::apply(&mut table, key, value)?;
        }
        let config: Config = toml::Value::Table(table)
            .try_into()
            .map_err(|e: toml::de::Error| parse_error(e.to_string()))?;
        config.validate()?;
        Ok(config)
    }

    /// A config file (TOML, or a Java client's properties file; or the defaults) with
    /// `properties` applied (see [`Config::parse_with`] and [`layers`]).
    pub fn load_with(
        path: Option<&Path>,
        properties: &[(String, String)],
    ) -> Result<Config, ConfigError> {
        let layers = layers::Layers {
            file: path.map(Path::to_path_buf),
            env: Vec::new(),
            flags: properties.to_vec(),
        };
        Ok(layers.load()?.config)
    }

    /// Checks values that parse but make no sense. Brokers are checked by [`Config::require_brokers`]
    /// because they may come from the command line.
    pub fn validate(&self) -> Result<(), ConfigError> {
        for broker in &self.brokers {
            validate_broker_address(broker)?;
        }
        let positive = [
            ("net.connect_timeout_ms", self.net.connect_timeout_ms),
            ("net.request_timeout_ms", self.net.request_timeout_ms),
            ("net.idle_timeout_ms", self.net.idle_timeout_ms),
            ("net.reconnect_backoff_ms", self.net.reconnect_backoff_ms),
            ("net.metadata_min_age_ms", self.net.metadata_min_age_ms),
            ("net.metadata_max_age_ms", self.net.metadata_max_age_ms),
            (
                "net.reconnect_backoff_max_ms",
                self.net.reconnect_backoff_max_ms,
            ),
            ("consumer.retry_backoff_ms", self.consumer.retry_backoff_ms),
            ("plugins.deadline_ms", self.plugins.deadline_ms),
            (
                "consumer.session_timeout_ms",
                self.consumer.session_timeout_ms,
            ),
            (
                "consumer.rebalance_timeout_ms",
                self.consumer.rebalance_timeout_ms,
            ),
            (
                "consumer.heartbeat_interval_ms",
                self.consumer.heartbeat_interval_ms,
            ),
            (
                "consumer.max_poll_interval_ms",
                self.consumer.max_poll_interval_ms,
            ),
            (
                "consumer.retry_backoff_max_ms",
                self.consumer.retry_backoff_max_ms,
            ),
            (
                "consumer.commit_timeout_ms",
                self.consumer.commit_timeout_ms,
            ),
            ("consumer.max_poll_records", self.consumer.max_poll_records),
            (
                "consumer.max_buffered_bytes",
                self.consumer.max_buffered_bytes,
            ),
            (
                "consumer.shutdown_timeout_ms",
                self.consumer.shutdown_timeout_ms,
            ),
        ];
        for (key, value) in positive {
            if value == 0 {
                return Err(ConfigError::Invalid {
                    key,
                    problem: "must be greater than 0".into(),
                });
            }
        }
        if self.net.max_frame_bytes < 1024 {
            return Err(ConfigError::Invalid {
                key: "net.max_frame_bytes",
                problem: format!("{} is too small (at least 1024)", self.net.max_frame_bytes),
            });
        }
        if self.net.metadata_min_age_ms > self.net.metadata_max_age_ms {
            return Err(ConfigError::Invalid {
                key: "net.metadata_min_age_ms",
                problem: format!(
                    "{} must not be above net.metadata_max_age_ms ({}): the floor under \
                     refreshes cannot be higher than the ceiling",
                    self.net.metadata_min_age_ms, self.net.metadata_max_age_ms
                ),
            });
        }
        self.topic_pattern()?;
        if self.consumer.fetch_max_wait_ms >= self.net.request_timeout_ms {
            return Err(ConfigError::Invalid {
                key: "consumer.fetch_max_wait_ms",
                problem: format!(
                    "{} must be below net.request_timeout_ms ({}) or every idle long poll times out",
                    self.consumer.fetch_max_wait_ms, self.net.request_timeout_ms
                ),
            });
        }
        if self.consumer.heartbeat_interval_ms >= self.consumer.session_timeout_ms {
            return Err(ConfigError::Invalid {
                key: "consumer.heartbeat_interval_ms",
                problem: format!(
                    "{} must be below consumer.session_timeout_ms ({}); a third of it is usual",
                    self.consumer.heartbeat_interval_ms, self.consumer.session_timeout_ms
                ),
            });
        }
        if self.consumer.assignors.is_empty() {
            return Err(ConfigError::Invalid {
                key: "consumer.assignors",
                problem:
                    "name at least one assignor (range, roundrobin, sticky, cooperative-sticky)"
                        .into(),
            });
        }
        self.validate_group_protocol()?;
        if Builtin::from_name(&self.plugins.assignor_fallback).is_none() {
            return Err(ConfigError::Invalid {
                key: "plugins.assignor_fallback",
                problem: format!(
                    "`{}` is not a built-in assignor; use range, roundrobin, sticky or cooperative-sticky",
                    self.plugins.assignor_fallback
                ),
            });
        }
        // Other names may belong to plugins: they are checked once the plugins are loaded
        // (`group::assignor::vote_order`), where the plugins' names are known.
        if self.plugins.assignors.is_empty() {
            for name in &self.consumer.assignors {
                if Builtin::from_name(name).is_none() {
                    return Err(ConfigError::Invalid {
                        key: "consumer.assignors",
                        problem: format!(
                            "`{name}` is not an assignor; use range, roundrobin, sticky or \
                             cooperative-sticky, or load a plugin of that name \
                             ([[plugins.assignors]])"
                        ),
                    });
                }
            }
        }
        self.security.validate()?;
        if self
            .consumer
            .fetch_max_bytes
            .is_some_and(|bytes| bytes <= 0)
            || self.consumer.max_partition_fetch_bytes <= 0
        {
            return Err(ConfigError::Invalid {
                key: "consumer.fetch_max_bytes",
                problem: "fetch_max_bytes and max_partition_fetch_bytes must be positive".into(),
            });
        }
        Ok(())
    }

    /// The group protocol named, and what it cannot go with: under the consumer protocol
    /// the broker assigns, so client-side assignors (built-in choices or Wasm plugins) have
    /// no say; naming them is refused rather than silently ignored.
    fn validate_group_protocol(&self) -> Result<(), ConfigError> {
        let consumer = &self.consumer;
        let protocol = GroupProtocol::from_name(&consumer.group_protocol).ok_or_else(|| {
            ConfigError::Invalid {
                key: "consumer.group_protocol",
                problem: format!(
                    "`{}` is not a group protocol; use classic (JoinGroup/SyncGroup, the \
                     default) or consumer (KIP-848, Kafka 4.0+)",
                    consumer.group_protocol
                ),
            }
        })?;
        if protocol == GroupProtocol::Classic {
            if let Some(assignor) = &consumer.group_remote_assignor {
                return Err(ConfigError::Invalid {
                    key: "consumer.group_remote_assignor",
                    problem: format!(
                        "`{assignor}` is the broker's assignor under group_protocol = \
                         \"consumer\"; with classic, members assign: choose with \
                         consumer.assignors instead"
                    ),
                });
            }
            return Ok(());
        }
        if !self.plugins.assignors.is_empty() {
            return Err(ConfigError::Invalid {
                key: "plugins.assignors",
                problem: "assignor plugins run in the group's leader, which only the classic \
                          protocol has; under group_protocol = \"consumer\" the broker \
                          assigns (consumer.group_remote_assignor: uniform or range). Use \
                          group_protocol = \"classic\" to keep the plugin, or drop it \
                          (`wasmkafka assign-sim` compares assignors before a move)"
                    .into(),
            });
        }
        if consumer.assignors != ConsumerConfig::default().assignors {
            return Err(ConfigError::Invalid {
                key: "consumer.assignors",
                problem: format!(
                    "{:?} only apply under the classic protocol; under group_protocol = \
                     \"consumer\" the broker assigns: choose its assignor with \
                     consumer.group_remote_assignor (uniform or range), or leave \
                     consumer.assignors unset",
                    consumer.assignors
                ),
            });
        }
        Ok(())
    }

    /// Errors when no broker was given anywhere.
    pub fn require_brokers(&self) -> Result<&[String], ConfigError> {
        if self.brokers.is_empty() {
            return Err(ConfigError::Invalid {
                key: "brokers",
                problem:
                    "no broker given: pass --brokers HOST:PORT or set `brokers` in the config file"
                        .into(),
            });
        }
        Ok(&self.brokers)
    }

    /// The compiled `consumer.topic_pattern`, if one is set.
    pub fn topic_pattern(&self) -> Result<Option<TopicPattern>, ConfigError> {
        let Some(pattern) = &self.consumer.topic_pattern else {
            return Ok(None);
        };
        TopicPattern::new(pattern)
            .map(Some)
            .map_err(|error| ConfigError::Invalid {
                key: "consumer.topic_pattern",
                problem: format!("`{pattern}` is not a valid regular expression: {error}"),
            })
    }

    /// The metadata refresh floor and ceiling.
    pub fn metadata_options(&self) -> MetadataOptions {
        MetadataOptions {
            min_age: Duration::from_millis(self.net.metadata_min_age_ms),
            max_age: Duration::from_millis(self.net.metadata_max_age_ms),
        }
    }

    /// The fetcher's settings.
    pub fn fetch_options(&self) -> FetchOptions {
        let consumer = &self.consumer;
        FetchOptions {
            max_wait: Duration::from_millis(consumer.fetch_max_wait_ms),
            min_bytes: consumer.fetch_min_bytes,
            max_bytes: consumer
                .fetch_max_bytes
                .map_or(FetchSize::FollowsLink, FetchSize::Fixed),
            partition_max_bytes: consumer.max_partition_fetch_bytes,
            max_buffered_bytes: usize::try_from(consumer.max_buffered_bytes).unwrap_or(usize::MAX),
            isolation: consumer.isolation_level,
            retry_backoff: Duration::from_millis(consumer.retry_backoff_ms),
            retry_backoff_max: Duration::from_millis(consumer.retry_backoff_max_ms),
            group: consumer.group.clone(),
            rack: consumer.rack.clone(),
        }
    }

    /// The group's settings, when a group is configured.
    pub fn group_options(&self) -> Option<GroupOptions> {
        let consumer = &self.consumer;
        let group = consumer.group.clone()?;
        Some(GroupOptions {
            instance_id: consumer.group_instance_id.clone(),
            session_timeout: Duration::from_millis(consumer.session_timeout_ms),
            rebalance_timeout: Duration::from_millis(consumer.rebalance_timeout_ms),
            heartbeat_interval: Duration::from_millis(consumer.heartbeat_interval_ms),
            max_poll_interval: Duration::from_millis(consumer.max_poll_interval_ms),
            auto_commit_interval: (consumer.auto_commit_interval_ms > 0)
                .then(|| Duration::from_millis(consumer.auto_commit_interval_ms)),
            commit_timeout: Duration::from_millis(consumer.commit_timeout_ms),
            rack: consumer.rack.clone(),
            fallback_assignor: Builtin::from_name(&self.plugins.assignor_fallback)
                .unwrap_or(Builtin::Range),
            subscription_generation: self.net.broker_compat.subscription_generation(),
            // Checked by `validate`.
            protocol: GroupProtocol::from_name(&consumer.group_protocol).unwrap_or_default(),
            remote_assignor: consumer.group_remote_assignor.clone(),
            // Checked by `validate`.
            topic_pattern: self.topic_pattern().ok().flatten(),
            ..GroupOptions::new(group, consumer.topics.clone())
        })
    }

    /// The configured assignors, in preference order (names were checked by `validate`).
    pub fn assignors(&self) -> Vec<Arc<dyn Assignor>> {
        self.consumer
            .assignors
            .iter()
            .filter_map(|name| Builtin::from_name(name))
            .map(Builtin::into_assignor)
            .collect()
    }

    /// The pool's settings; reads the TLS files and the password file (`[security]`).
    pub fn pool_options(&self) -> Result<PoolOptions, ConfigError> {
        Ok(PoolOptions {
            connection: ConnectionOptions {
                client_id: self.client_id.clone(),
                connect_timeout: Duration::from_millis(self.net.connect_timeout_ms),
                request_timeout: Duration::from_millis(self.net.request_timeout_ms),
                max_frame_bytes: self.net.max_frame_bytes,
                compat: self.net.broker_compat,
                security: self.security.build()?,
            },
            idle_timeout: Duration::from_millis(self.net.idle_timeout_ms),
            reconnect_backoff: Duration::from_millis(self.net.reconnect_backoff_ms),
            reconnect_backoff_max: Duration::from_millis(self.net.reconnect_backoff_max_ms),
        })
    }
}

/// A broker address must be HOST:PORT with a numeric port.
pub fn validate_broker_address(broker: &str) -> Result<(), ConfigError> {
    let invalid = |problem: String| ConfigError::Invalid {
        key: "brokers",
        problem,
    };
    let (host, port) = broker
        .rsplit_once(':')
        .ok_or_else(|| invalid(format!("`{broker}` is not HOST:PORT")))?;
    if host.is_empty() {
        return Err(invalid(format!("`{broker}` has no host")));
    }
    port.parse::<u16>()
        .ok()
        .filter(|p| *p != 0)
        .ok_or_else(|| invalid(format!("`{broker}` has no valid port (1-65535)")))?;
    Ok(())
}

#[cfg(test)]
mod tests;
