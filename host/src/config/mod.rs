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

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;

pub mod layers;
mod oauth;
mod properties;

use crate::cluster::MetadataOptions;
use crate::fetch::{FetchOptions, FetchSize, IsolationLevel};
use crate::group::{Assignor, Builtin, GroupOptions, GroupProtocol, TopicPattern};
use crate::net::security::Pkcs12File;
use crate::net::{
    BrokerCompat, ConnectionOptions, PoolOptions, Sasl, SaslCredentials, SaslMechanism, Secret,
    Security, SecurityProtocol, Tls, TlsFiles, TlsSetupError,
};
use crate::plugin::{CompileCache, PluginLimits, Sha256Digest};
use crate::policy::ResetPolicySpec;

/// A configuration problem, with the key it concerns and what to do.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    #[error("cannot read config file {path}: {reason}")]
    Read { path: String, reason: String },
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

/// `[security]`: TLS and SASL for every broker connection (Kafka's `security.protocol`,
/// `ssl.*` and `sasl.*` properties land here).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SecurityConfig {
    pub protocol: String,
    pub ca_file: Option<PathBuf>,
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
    pub keystore_file: Option<PathBuf>,
    pub keystore_password: Option<Secret>,
    pub keystore_password_file: Option<PathBuf>,
    pub key_password: Option<Secret>,
    pub key_password_file: Option<PathBuf>,
    pub truststore_file: Option<PathBuf>,
    pub truststore_password: Option<Secret>,
    pub truststore_password_file: Option<PathBuf>,
    pub verify_hostname: bool,
    pub sasl_mechanism: Option<String>,
    pub sasl_username: Option<String>,
    pub sasl_password: Option<Secret>,
    pub sasl_password_file: Option<PathBuf>,
    /// OAUTHBEARER (`sasl_mechanism = "OAUTHBEARER"`): see `host/src/config/oauth.rs` and the
    /// README's "TLS and SASL" section.
    pub oauth_token_endpoint: Option<String>,
    pub oauth_client_id: Option<String>,
    pub oauth_client_secret: Option<Secret>,
    pub oauth_client_secret_file: Option<PathBuf>,
    pub oauth_scope: Option<String>,
    pub oauth_extensions: BTreeMap<String, String>,
    pub oauth_header_urlencode: bool,
    pub oauth_unsecured_claims: BTreeMap<String, serde_json::Value>,
    pub oauth_unsecured_principal_claim: String,
    pub oauth_unsecured_lifetime_seconds: u64,
    pub oauth_refresh_window_factor: f64,
    pub oauth_refresh_window_jitter: f64,
    pub oauth_refresh_min_period_seconds: u64,
    pub oauth_refresh_buffer_seconds: u64,
    pub oauth_connect_timeout_ms: u64,
    pub oauth_read_timeout_ms: u64,
    pub oauth_retry_backoff_ms: u64,
    pub oauth_retry_backoff_max_ms: u64,
}

impl Default for SecurityConfig {
    fn default() -> Self {
        SecurityConfig {
            protocol: "PLAINTEXT".into(),
            ca_file: None,
            cert_file: None,
            key_file: None,
            keystore_file: None,
            keystore_password: None,
            keystore_password_file: None,
            key_password: None,
            key_password_file: None,
            truststore_file: None,
            truststore_password: None,
            truststore_password_file: None,
            verify_hostname: true,
            sasl_mechanism: None,
            sasl_username: None,
            sasl_password: None,
            sasl_password_file: None,
            oauth_token_endpoint: None,
            oauth_client_id: None,
            oauth_client_secret: None,
            oauth_client_secret_file: None,
            oauth_scope: None,
            oauth_extensions: BTreeMap::new(),
            oauth_header_urlencode: false,
            oauth_unsecured_claims: BTreeMap::new(),
            oauth_unsecured_principal_claim: "sub".into(),
            oauth_unsecured_lifetime_seconds: 3600,
            oauth_refresh_window_factor: 0.8,
            oauth_refresh_window_jitter: 0.05,
            oauth_refresh_min_period_seconds: 60,
            oauth_refresh_buffer_seconds: 300,
            oauth_connect_timeout_ms: 10_000,
            oauth_read_timeout_ms: 10_000,
            oauth_retry_backoff_ms: 100,
            oauth_retry_backoff_max_ms: 10_000,
        }
    }
}

/// A password given as a value or in a file (a mounted secret: a trailing newline is dropped).
fn secret(
    value: &Option<Secret>,
    file: &Option<PathBuf>,
    file_key: &'static str,
) -> Result<Option<Secret>, ConfigError> {
    match (value, file) {
        (Some(value), _) => Ok(Some(value.clone())),
        (None, Some(path)) => {
            let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Invalid {
                key: file_key,
                problem: format!("cannot read {}: {e}", path.display()),
            })?;
            Ok(Some(Secret::new(text.trim_end_matches(['\n', '\r']))))
        }
        (None, None) => Ok(None),
    }
}

impl SecurityConfig {
    fn protocol(&self) -> Result<SecurityProtocol, ConfigError> {
        SecurityProtocol::from_name(&self.protocol).ok_or_else(|| ConfigError::Invalid {
            key: "security.protocol",
            problem: format!(
                "`{}` is not a security protocol; use {}",
                self.protocol,
                SecurityProtocol::NAMES
            ),
        })
    }

    /// Checks that the settings fit the protocol (no TLS file without TLS, no credentials
    /// without SASL, everything SASL needs when it is on). Files are read by
    /// [`SecurityConfig::build`].
    fn validate(&self) -> Result<(), ConfigError> {
        let protocol = self.protocol()?;
        let invalid = |key: &'static str, problem: String| ConfigError::Invalid { key, problem };
        let tls_keys = [
            ("security.ca_file", self.ca_file.is_some()),
            ("security.cert_file", self.cert_file.is_some()),
            ("security.key_file", self.key_file.is_some()),
            ("security.keystore_file", self.keystore_file.is_some()),
            ("security.truststore_file", self.truststore_file.is_some()),
            (
                "security.keystore_password",
                self.keystore_password.is_some(),
            ),
            (
                "security.keystore_password_file",
                self.keystore_password_file.is_some(),
            ),
            ("security.key_password", self.key_password.is_some()),
            (
                "security.key_password_file",
                self.key_password_file.is_some(),
            ),
            (
                "security.truststore_password",
                self.truststore_password.is_some(),
            ),
            (
                "security.truststore_password_file",
                self.truststore_password_file.is_some(),
            ),
            ("security.verify_hostname", !self.verify_hostname),
        ];
        if !protocol.uses_tls() {
            if let Some((key, _)) = tls_keys.iter().find(|(_, set)| *set) {
                return Err(invalid(
                    key,
                    format!(
                        "is set but security.protocol is {}, which does not use TLS: use SSL \
                         or SASL_SSL",
                        protocol.name()
                    ),
                ));
            }
        }
        if self.cert_file.is_some() != self.key_file.is_some() {
            return Err(invalid(
                "security.cert_file",
                "a client certificate needs its key: set both security.cert_file and \
                         security.key_file (ssl.certificate.location, ssl.key.location), or neither"
                    .into(),
            ));
        }
        self.validate_stores()?;
        let sasl_keys = [
            ("security.sasl_mechanism", self.sasl_mechanism.is_some()),
            ("security.sasl_username", self.sasl_username.is_some()),
            ("security.sasl_password", self.sasl_password.is_some()),
            (
                "security.sasl_password_file",
                self.sasl_password_file.is_some(),
            ),
        ];
        if !protocol.uses_sasl() {
            if let Some((key, _)) = sasl_keys.iter().find(|(_, set)| *set) {
                return Err(invalid(
                    key,
                    format!(
                        "is set but security.protocol is {}, which does not use SASL: use \
                         SASL_PLAINTEXT or SASL_SSL",
                        protocol.name()
                    ),
                ));
            }
            return self.no_oauth_keys(&format!("security.protocol is {}", protocol.name()));
        }
        let mechanism = self.sasl_mechanism.as_deref().ok_or_else(|| {
            invalid(
                "security.sasl_mechanism",
                format!(
                    "security.protocol {} needs a mechanism: {} (sasl.mechanism)",
                    protocol.name(),
                    SaslMechanism::NAMES
                ),
            )
        })?;
        match SaslMechanism::from_name(mechanism) {
            None => {
                return Err(invalid(
                    "security.sasl_mechanism",
                    format!(
                        "`{mechanism}` is not supported; use {} (GSSAPI is not)",
                        SaslMechanism::NAMES
                    ),
                ))
            }
            Some(SaslMechanism::OAuthBearer) => return self.validate_oauth(),
            Some(other) => self.no_oauth_keys(&format!("security.sasl_mechanism is {other}"))?,
        }
        if self.sasl_username.as_deref().unwrap_or("").is_empty() {
            return Err(invalid(
                "security.sasl_username",
                format!(
                    "security.protocol {} needs a user name (sasl.username)",
                    protocol.name()
                ),
            ));
        }
        match (&self.sasl_password, &self.sasl_password_file) {
            (Some(_), Some(_)) => Err(invalid(
                "security.sasl_password",
                "set security.sasl_password or security.sasl_password_file, not both".into(),
            )),
            (None, None) => Err(invalid(
                "security.sasl_password",
                format!(
                    "security.protocol {} needs a password: security.sasl_password_file (a file \
                         holding it) or security.sasl_password (sasl.password)",
                    protocol.name()
                ),
            )),
            _ => Ok(()),
        }
    }

    /// Key and trust stores and their passwords: one source of each, and no password without
    /// what it opens.
    fn validate_stores(&self) -> Result<(), ConfigError> {
        let invalid = |key: &'static str, problem: &str| {
            Err(ConfigError::Invalid {
                key,
                problem: problem.to_string(),
            })
        };
        if self.keystore_file.is_some() && (self.cert_file.is_some() || self.key_file.is_some()) {
            return invalid(
                "security.keystore_file",
                "the client certificate comes from a keystore or from security.cert_file and \
                 security.key_file, not both",
            );
        }
        if self.truststore_file.is_some() && self.ca_file.is_some() {
            return invalid(
                "security.truststore_file",
                "the CAs come from a truststore (PKCS#12) or from security.ca_file (PEM), not \
                 both",
            );
        }
        let pairs = [
            (
                "security.keystore_password",
                self.keystore_password.is_some(),
                self.keystore_password_file.is_some(),
            ),
            (
                "security.key_password",
                self.key_password.is_some(),
                self.key_password_file.is_some(),
            ),
            (
                "security.truststore_password",
                self.truststore_password.is_some(),
                self.truststore_password_file.is_some(),
            ),
        ];
        for (key, value, file) in pairs {
            if value && file {
                return Err(ConfigError::Invalid {
                    key,
                    problem: format!("set {key} or {key}_file, not both"),
                });
            }
        }
        let keystore_password =
            self.keystore_password.is_some() || self.keystore_password_file.is_some();
        if keystore_password && self.keystore_file.is_none() {
            return invalid(
                "security.keystore_password",
                "a keystore password without a keystore: set security.keystore_file \
                 (ssl.keystore.location, a PKCS#12 file); a PEM key store needs no password \
                 (an encrypted key's is ssl.key.password)",
            );
        }
        let truststore_password =
            self.truststore_password.is_some() || self.truststore_password_file.is_some();
        if truststore_password && self.truststore_file.is_none() {
            return invalid(
                "security.truststore_password",
                "a truststore password without a truststore: set security.truststore_file \
                 (ssl.truststore.location, a PKCS#12 file); a PEM CA file needs no password",
            );
        }
        let key_password = self.key_password.is_some() || self.key_password_file.is_some();
        if key_password && self.keystore_file.is_none() && self.key_file.is_none() {
            return invalid(
                "security.key_password",
                "a key password without a key: set security.keystore_file or \
                 security.key_file",
            );
        }
        Ok(())
    }

    /// The connections' [`Security`]: reads the password files and the TLS files (so a
    /// missing file is reported at start-up).
    pub fn build(&self) -> Result<Security, ConfigError> {
        self.validate()?;
        let protocol = self.protocol()?;
        let tls = if protocol.uses_tls() {
            let keystore_password = secret(
                &self.keystore_password,
                &self.keystore_password_file,
                "security.keystore_password_file",
            )?;
            let key_password = secret(
                &self.key_password,
                &self.key_password_file,
                "security.key_password_file",
            )?
            .or_else(|| {
                keystore_password
                    .clone()
                    .filter(|_| self.key_file.is_none())
            });
            let truststore_password = secret(
                &self.truststore_password,
                &self.truststore_password_file,
                "security.truststore_password_file",
            )?;
            Some(Tls::new(TlsFiles {
                ca_file: self.ca_file.clone(),
                truststore: self.truststore_file.clone().map(|path| Pkcs12File {
                    path,
                    password: truststore_password,
                }),
                cert_file: self.cert_file.clone(),
                key_file: self.key_file.clone(),
                keystore: self.keystore_file.clone().map(|path| Pkcs12File {
                    path,
                    password: keystore_password,
                }),
                key_password,
                verify_hostname: self.verify_hostname,
            })?)
        } else {
            None
        };
        let sasl = if protocol.uses_sasl()
            && SaslMechanism::from_name(self.sasl_mechanism.as_deref().unwrap_or_default())
                == Some(SaslMechanism::OAuthBearer)
        {
            Some(Sasl::OAuthBearer(
                self.token_source(tls.as_ref().map(|tls| tls.files()))?,
            ))
        } else if protocol.uses_sasl() {
            let password = secret(
                &self.sasl_password,
                &self.sasl_password_file,
                "security.sasl_password_file",
            )?
            .expect("checked by validate");
            Some(Sasl::Password(SaslCredentials {
                mechanism: SaslMechanism::from_name(
                    self.sasl_mechanism.as_deref().unwrap_or_default(),
                )
                .expect("checked by validate"),
                username: self.sasl_username.clone().unwrap_or_default(),
                password,
            }))
        } else {
            None
        };
        Ok(Security {
            protocol,
            tls,
            sasl,
        })
    }
}

/// `[metrics]`: where `run` serves `/metrics`, `/healthz` and `/readyz`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsConfig {
    /// `HOST:PORT` to listen on (`--metrics`); nothing is served without it.
    pub listen: Option<String>,
}

/// `[plugins]`: Wasm assignors and a Wasm reset policy, and the limits every call runs under.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PluginsConfig {
    /// Where compiled plugins are cached (default: $XDG_CACHE_HOME or ~/.cache, /wasmkafka/plugins).
    pub cache_dir: Option<PathBuf>,
    /// The cache's size bound; the least recently used entries go beyond it.
    pub cache_max_bytes: u64,
    pub deadline_ms: u64,
    pub memory_bytes: usize,
    pub max_file_bytes: usize,
    /// Assignor plugins: each takes its place in the vote where `consumer.assignors` names it
    /// (by the name the plugin gives itself), or before the named ones when it is not named.
    pub assignors: Vec<PluginRef>,
    /// A reset-policy plugin; when it fails, `consumer.from` decides.
    pub reset_policy: Option<PluginRef>,
    /// The built-in assignor used when the chosen one fails or answers an invalid assignment.
    pub assignor_fallback: String,
}

/// One plugin file and the settings handed to it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PluginRef {
    pub path: PathBuf,
    #[serde(default)]
    pub settings: BTreeMap<String, String>,
    /// The SHA-256 the file must have (`sha256sum`, `wasmkafka plugin check`): any other
    /// build is refused, at start and when the file changes while running.
    #[serde(default)]
    pub sha256: Option<Sha256Digest>,
}

impl Default for PluginsConfig {
    fn default() -> Self {
        let limits = PluginLimits::default();
        PluginsConfig {
            cache_dir: None,
            cache_max_bytes: crate::plugin::cache::DEFAULT_MAX_BYTES,
            deadline_ms: limits.deadline.as_millis() as u64,
            memory_bytes: limits.memory_bytes,
            max_file_bytes: limits.max_file_bytes,
            assignors: Vec::new(),
            reset_policy: None,
            assignor_fallback: "range".into(),
        }
    }
}

impl PluginsConfig {
    pub fn limits(&self) -> PluginLimits {
        PluginLimits {
            deadline: Duration::from_millis(self.deadline_ms),
            memory_bytes: self.memory_bytes,
            max_file_bytes: self.max_file_bytes,
        }
    }

    /// The compile cache: `cache_dir` (or the default place), bounded by `cache_max_bytes`.
    pub fn cache(&self) -> Option<CompileCache> {
        self.cache_dir()
            .map(|dir| CompileCache::new(dir).with_max_bytes(self.cache_max_bytes))
    }

    pub fn cache_dir(&self) -> Option<PathBuf> {
        self.cache_dir.clone().or_else(|| {
            std::env::var_os("XDG_CACHE_HOME")
                .map(PathBuf::from)
                .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
                .map(|base| base.join("wasmkafka/plugins"))
        })
    }

    pub fn is_empty(&self) -> bool {
        self.assignors.is_empty() && self.reset_policy.is_none()
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NetConfig {
    pub connect_timeout_ms: u64,
    pub request_timeout_ms: u64,
    pub idle_timeout_ms: u64,
    pub max_frame_bytes: usize,
    pub reconnect_backoff_ms: u64,
    pub reconnect_backoff_max_ms: u64,
    pub broker_compat: BrokerCompat,
    pub metadata_min_age_ms: u64,
    pub metadata_max_age_ms: u64,
}

impl Default for NetConfig {
    fn default() -> Self {
        Self {
            connect_timeout_ms: 10_000,
            request_timeout_ms: 30_000,
            idle_timeout_ms: 540_000,
            max_frame_bytes: 100 * 1024 * 1024,
            reconnect_backoff_ms: 50,
            reconnect_backoff_max_ms: 1_000,
            broker_compat: BrokerCompat::Kafka,
            metadata_min_age_ms: MetadataOptions::default().min_age.as_millis() as u64,
            metadata_max_age_ms: MetadataOptions::default().max_age.as_millis() as u64,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ConsumerConfig {
    pub topics: Vec<String>,
    /// A regex: with a group, the member also subscribes to every matching topic.
    pub topic_pattern: Option<String>,
    pub group: Option<String>,
    pub from: ResetPolicySpec,
    pub isolation_level: IsolationLevel,
    pub fetch_max_wait_ms: u64,
    pub fetch_min_bytes: i32,
    /// Unset: the answer's size follows the round trip to the leader (`fetch::size`).
    pub fetch_max_bytes: Option<i32>,
    pub max_partition_fetch_bytes: i32,
    pub max_buffered_bytes: u64,
    pub retry_backoff_ms: u64,
    pub retry_backoff_max_ms: u64,
    pub max_poll_records: u64,
    pub assignors: Vec<String>,
    pub group_instance_id: Option<String>,
    pub session_timeout_ms: u64,
    pub rebalance_timeout_ms: u64,
    pub heartbeat_interval_ms: u64,
    pub max_poll_interval_ms: u64,
    pub auto_commit_interval_ms: u64,
    pub commit_timeout_ms: u64,
    pub shutdown_timeout_ms: u64,
    pub rack: Option<String>,
    /// `classic` or `consumer` (KIP-848); checked by `validate`.
    pub group_protocol: String,
    pub group_remote_assignor: Option<String>,
}

impl Default for ConsumerConfig {
    /// One source for each default: the fetch and group settings come from the library's
    /// own option types ([`FetchOptions::default`], [`GroupOptions::new`]), so a default
    /// changed there is the config's default too (the README's list is checked by a test).
    fn default() -> Self {
        let fetch = FetchOptions::default();
        let group = GroupOptions::new("", Vec::new());
        let ms = |duration: Duration| duration.as_millis() as u64;
        Self {
            topics: Vec::new(),
            topic_pattern: None,
            group: None,
            from: ResetPolicySpec::Earliest,
            isolation_level: fetch.isolation,
            fetch_max_wait_ms: ms(fetch.max_wait),
            fetch_min_bytes: fetch.min_bytes,
            fetch_max_bytes: match fetch.max_bytes {
                FetchSize::Fixed(bytes) => Some(bytes),
                FetchSize::FollowsLink => None,
            },
            max_partition_fetch_bytes: fetch.partition_max_bytes,
            max_buffered_bytes: fetch.max_buffered_bytes as u64,
            retry_backoff_ms: ms(fetch.retry_backoff),
            retry_backoff_max_ms: ms(fetch.retry_backoff_max),
            max_poll_records: 10_000,
            assignors: vec!["range".into(), "cooperative-sticky".into()],
            group_instance_id: group.instance_id,
            session_timeout_ms: ms(group.session_timeout),
            rebalance_timeout_ms: ms(group.rebalance_timeout),
            heartbeat_interval_ms: ms(group.heartbeat_interval),
            max_poll_interval_ms: ms(group.max_poll_interval),
            auto_commit_interval_ms: group.auto_commit_interval.map_or(0, ms),
            commit_timeout_ms: ms(group.commit_timeout),
            shutdown_timeout_ms: 30_000,
            rack: group.rack,
            group_protocol: group.protocol.name().to_string(),
            group_remote_assignor: group.remote_assignor,
        }
    }
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
mod tests {
    use super::*;

    #[test]
    fn fetch_answers_follow_the_link_unless_their_size_is_set() {
        let unset = Config::parse("").unwrap();
        assert_eq!(unset.fetch_options().max_bytes, FetchSize::FollowsLink);
        let in_file = Config::parse("[consumer]\nfetch_max_bytes = 4194304").unwrap();
        assert_eq!(
            in_file.fetch_options().max_bytes,
            FetchSize::Fixed(4_194_304)
        );
        let as_property =
            Config::parse_with("", &[("fetch.max.bytes".into(), "8388608".into())]).unwrap();
        assert_eq!(
            as_property.fetch_options().max_bytes,
            FetchSize::Fixed(8_388_608)
        );
    }

    #[test]
    fn parses_a_full_config() {
        let config = Config::parse(
            r#"
            brokers = ["127.0.0.1:9092"]
            [net]
            request_timeout_ms = 5000
            [consumer]
            topics = ["a", "b"]
            from = "by_duration:PT2H"
            isolation_level = "read_committed"
            "#,
        )
        .unwrap();
        assert_eq!(config.brokers, ["127.0.0.1:9092"]);
        assert_eq!(config.net.request_timeout_ms, 5000);
        assert_eq!(config.net.connect_timeout_ms, 10_000);
        assert_eq!(config.consumer.topics, ["a", "b"]);
        assert_eq!(
            config.consumer.from,
            ResetPolicySpec::ByDuration(Duration::from_secs(7200))
        );
        assert_eq!(
            config.consumer.isolation_level,
            IsolationLevel::ReadCommitted
        );
    }

    #[test]
    fn the_tansu_switch_reaches_connections_and_groups() {
        let kafka = Config::parse("[consumer]\ngroup = \"g\"\ntopics = [\"t\"]").unwrap();
        assert_eq!(
            kafka.pool_options().unwrap().connection.compat,
            BrokerCompat::Kafka
        );
        assert!(kafka.group_options().unwrap().subscription_generation);
        let tansu = Config::parse(
            "[net]\nbroker_compat = \"tansu-0.6\"\n[consumer]\ngroup = \"g\"\ntopics = [\"t\"]",
        )
        .unwrap();
        assert_eq!(
            tansu.pool_options().unwrap().connection.compat,
            BrokerCompat::Tansu06
        );
        assert!(!tansu.group_options().unwrap().subscription_generation);
        let error = Config::parse("[net]\nbroker_compat = \"tansu\"")
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("broker_compat") && error.contains("tansu-0.6"),
            "{error}"
        );
    }

    #[test]
    fn the_group_protocol_is_chosen_by_our_key_or_kafkas() {
        let config =
            Config::parse("[consumer]\ngroup = \"g\"\ngroup_protocol = \"consumer\"").unwrap();
        let options = config.group_options().unwrap();
        assert_eq!(options.protocol, GroupProtocol::Consumer);
        assert_eq!(options.remote_assignor, None);
        let properties = [
            ("group.id".to_string(), "g".to_string()),
            ("group.protocol".to_string(), "CONSUMER".to_string()),
            ("group.remote.assignor".to_string(), "range".to_string()),
        ];
        let options = Config::parse_with("", &properties)
            .unwrap()
            .group_options()
            .unwrap();
        assert_eq!(options.protocol, GroupProtocol::Consumer);
        assert_eq!(options.remote_assignor.as_deref(), Some("range"));
        let classic = Config::parse("[consumer]\ngroup = \"g\"").unwrap();
        assert_eq!(
            classic.group_options().unwrap().protocol,
            GroupProtocol::Classic
        );
    }

    #[test]
    fn what_the_consumer_protocol_cannot_honour_is_refused_with_the_reason() {
        let refusal = |text: &str| Config::parse(text).unwrap_err().to_string();
        let error = refusal("[consumer]\ngroup_protocol = \"next\"");
        assert!(
            error.contains("consumer.group_protocol") && error.contains("classic"),
            "{error}"
        );
        let error = refusal(
            "[consumer]\ngroup_protocol = \"consumer\"\n\
             [[plugins.assignors]]\npath = \"fair.wasm\"",
        );
        assert!(
            error.contains("plugins.assignors")
                && error.contains("broker")
                && error.contains("classic"),
            "{error}"
        );
        let error =
            refusal("[consumer]\ngroup_protocol = \"consumer\"\nassignors = [\"roundrobin\"]");
        assert!(
            error.contains("consumer.assignors") && error.contains("group_remote_assignor"),
            "{error}"
        );
        let error = refusal("[consumer]\ngroup_remote_assignor = \"uniform\"");
        assert!(
            error.contains("consumer.group_remote_assignor") && error.contains("classic"),
            "{error}"
        );
    }

    #[test]
    fn refuses_unknown_keys_and_names_them() {
        let error = Config::parse("[net]\nrequest_timout_ms = 5")
            .unwrap_err()
            .to_string();
        assert!(error.contains("request_timout_ms"), "{error}");
    }

    #[test]
    fn refuses_bad_values_with_the_key() {
        let error = Config::parse("brokers = [\"localhost\"]")
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("brokers") && error.contains("HOST:PORT"),
            "{error}"
        );
        let error = Config::parse("[net]\nrequest_timeout_ms = 0")
            .unwrap_err()
            .to_string();
        assert!(error.contains("net.request_timeout_ms"), "{error}");
        let error = Config::parse("[consumer]\nfetch_max_wait_ms = 40000")
            .unwrap_err()
            .to_string();
        assert!(error.contains("consumer.fetch_max_wait_ms"), "{error}");
        let error = Config::parse("[consumer]\nfrom = \"oldest\"")
            .unwrap_err()
            .to_string();
        assert!(error.contains("earliest, latest, none"), "{error}");
        let error = Config::parse("[consumer]\nassignors = [\"fair\"]")
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("consumer.assignors") && error.contains("`fair`"),
            "{error}"
        );
        let error = Config::parse("[plugins]\nassignor_fallback = \"magic\"")
            .unwrap_err()
            .to_string();
        assert!(error.contains("plugins.assignor_fallback"), "{error}");
        let error = Config::parse("[consumer]\nheartbeat_interval_ms = 50000")
            .unwrap_err()
            .to_string();
        assert!(error.contains("consumer.heartbeat_interval_ms"), "{error}");
        let error = Config::default().require_brokers().unwrap_err().to_string();
        assert!(error.contains("--brokers"), "{error}");
    }

    #[test]
    fn metadata_ages_and_the_topic_pattern_are_checked() {
        let config = Config::parse(
            "[net]\nmetadata_min_age_ms = 200\nmetadata_max_age_ms = 2000\n\
             [consumer]\ngroup = \"g\"\ntopic_pattern = \"^events-.*\"",
        )
        .unwrap();
        assert_eq!(
            config.metadata_options(),
            MetadataOptions {
                min_age: Duration::from_millis(200),
                max_age: Duration::from_secs(2),
            }
        );
        let pattern = config.group_options().unwrap().topic_pattern.unwrap();
        assert!(pattern.matches("events-1") && !pattern.matches("other"));
        assert_eq!(
            Config::default().metadata_options(),
            MetadataOptions::default()
        );
        for (text, key) in [
            ("[net]\nmetadata_min_age_ms = 0", "net.metadata_min_age_ms"),
            ("[net]\nmetadata_max_age_ms = 0", "net.metadata_max_age_ms"),
            (
                "[net]\nmetadata_min_age_ms = 5000\nmetadata_max_age_ms = 4000",
                "net.metadata_min_age_ms",
            ),
            (
                "[consumer]\ntopic_pattern = \"(unclosed\"",
                "consumer.topic_pattern",
            ),
        ] {
            let error = Config::parse(text).unwrap_err().to_string();
            assert!(error.contains(key), "{text}: {error}");
        }
    }

    /// Every way a config can be refused, with the message the user reads (the key, what is
    /// wrong, and what to do).
    #[test]
    fn every_error_path_has_its_message() {
        let zero_keys = [
            ("net", "connect_timeout_ms"),
            ("net", "request_timeout_ms"),
            ("net", "idle_timeout_ms"),
            ("net", "reconnect_backoff_ms"),
            ("net", "reconnect_backoff_max_ms"),
            ("consumer", "retry_backoff_ms"),
            ("consumer", "retry_backoff_max_ms"),
            ("plugins", "deadline_ms"),
            ("consumer", "session_timeout_ms"),
            ("consumer", "rebalance_timeout_ms"),
            ("consumer", "max_poll_interval_ms"),
            ("consumer", "commit_timeout_ms"),
            ("consumer", "max_poll_records"),
            ("consumer", "max_buffered_bytes"),
            ("consumer", "shutdown_timeout_ms"),
        ];
        for (section, key) in zero_keys {
            let error = Config::parse(&format!("[{section}]\n{key} = 0"))
                .unwrap_err()
                .to_string();
            assert_eq!(
                error,
                format!("invalid value for `{section}.{key}`: must be greater than 0")
            );
        }
        let cases: &[(&str, &str)] = &[
            (
                "brokers = [\"localhost\"]",
                "invalid value for `brokers`: `localhost` is not HOST:PORT",
            ),
            (
                "brokers = [\":9092\"]",
                "invalid value for `brokers`: `:9092` has no host",
            ),
            (
                "brokers = [\"h:0\"]",
                "invalid value for `brokers`: `h:0` has no valid port (1-65535)",
            ),
            (
                "[net]\nmax_frame_bytes = 10",
                "invalid value for `net.max_frame_bytes`: 10 is too small (at least 1024)",
            ),
            (
                "[net]\nmetadata_min_age_ms = 5000\nmetadata_max_age_ms = 4000",
                "invalid value for `net.metadata_min_age_ms`: 5000 must not be above \
                 net.metadata_max_age_ms (4000): the floor under refreshes cannot be higher than \
                 the ceiling",
            ),
            (
                "[consumer]\nfetch_max_wait_ms = 40000",
                "invalid value for `consumer.fetch_max_wait_ms`: 40000 must be below \
                 net.request_timeout_ms (30000) or every idle long poll times out",
            ),
            (
                "[consumer]\nheartbeat_interval_ms = 50000",
                "invalid value for `consumer.heartbeat_interval_ms`: 50000 must be below \
                 consumer.session_timeout_ms (45000); a third of it is usual",
            ),
            (
                "[consumer]\nassignors = []",
                "invalid value for `consumer.assignors`: name at least one assignor (range, \
                 roundrobin, sticky, cooperative-sticky)",
            ),
            (
                "[consumer]\nassignors = [\"fair\"]",
                "invalid value for `consumer.assignors`: `fair` is not an assignor; use range, \
                 roundrobin, sticky or cooperative-sticky, or load a plugin of that name \
                 ([[plugins.assignors]])",
            ),
            (
                "[plugins]\nassignor_fallback = \"magic\"",
                "invalid value for `plugins.assignor_fallback`: `magic` is not a built-in \
                 assignor; use range, roundrobin, sticky or cooperative-sticky",
            ),
            (
                "[consumer]\nfetch_max_bytes = -1",
                "invalid value for `consumer.fetch_max_bytes`: fetch_max_bytes and \
                 max_partition_fetch_bytes must be positive",
            ),
            (
                "[security]\nprotocol = \"TLS\"",
                "invalid value for `security.protocol`: `TLS` is not a security protocol; use \
                 PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL",
            ),
            (
                "[security]\nca_file = \"ca.pem\"",
                "invalid value for `security.ca_file`: is set but security.protocol is \
                 PLAINTEXT, which does not use TLS: use SSL or SASL_SSL",
            ),
            (
                "[security]\nprotocol = \"SASL_PLAINTEXT\"\nverify_hostname = false",
                "invalid value for `security.verify_hostname`: is set but security.protocol is \
                 SASL_PLAINTEXT, which does not use TLS: use SSL or SASL_SSL",
            ),
            (
                "[security]\nprotocol = \"SSL\"\ncert_file = \"c.pem\"",
                "invalid value for `security.cert_file`: a client certificate needs its key: \
                 set both security.cert_file and security.key_file (ssl.certificate.location, \
                 ssl.key.location), or neither",
            ),
            (
                "[security]\nprotocol = \"SSL\"\nsasl_username = \"u\"",
                "invalid value for `security.sasl_username`: is set but security.protocol is \
                 SSL, which does not use SASL: use SASL_PLAINTEXT or SASL_SSL",
            ),
            (
                "[security]\nprotocol = \"SASL_SSL\"",
                "invalid value for `security.sasl_mechanism`: security.protocol SASL_SSL needs \
                 a mechanism: PLAIN, SCRAM-SHA-256, SCRAM-SHA-512 or OAUTHBEARER (sasl.mechanism)",
            ),
            (
                "[security]\nprotocol = \"SASL_SSL\"\nsasl_mechanism = \"GSSAPI\"",
                "invalid value for `security.sasl_mechanism`: `GSSAPI` is not supported; use \
                 PLAIN, SCRAM-SHA-256, SCRAM-SHA-512 or OAUTHBEARER (GSSAPI is not)",
            ),
            (
                "[security]\nprotocol = \"SASL_SSL\"\nsasl_mechanism = \"OAUTHBEARER\"",
                "invalid value for `security.oauth_token_endpoint`: OAUTHBEARER needs a token: \
                 set security.oauth_token_endpoint (sasl.oauthbearer.token.endpoint.url) with \
                 oauth_client_id and oauth_client_secret; or, for a broker with Kafka's \
                 unsecured validator only, security.oauth_unsecured_claims = { sub = \"...\" } \
                 (unsecuredLoginStringClaim_sub in sasl.jaas.config)",
            ),
            (
                "[security]\nprotocol = \"SASL_SSL\"\nsasl_mechanism = \"OAUTHBEARER\"\n\
                 oauth_token_endpoint = \"ftp://idp/token\"",
                "invalid value for `security.oauth_token_endpoint`: `ftp://idp/token` is not an \
                 http:// or https:// URL",
            ),
            (
                "[security]\nprotocol = \"SASL_SSL\"\nsasl_mechanism = \"OAUTHBEARER\"\n\
                 oauth_token_endpoint = \"https://idp/token\"\noauth_client_id = \"c\"",
                "invalid value for `security.oauth_client_secret`: the token endpoint needs the \
                 client secret: security.oauth_client_secret_file (a file holding it) or \
                 security.oauth_client_secret (sasl.oauthbearer.client.credentials.client.secret, \
                 or clientSecret in sasl.jaas.config)",
            ),
            (
                "[security]\nprotocol = \"SASL_SSL\"\nsasl_mechanism = \"OAUTHBEARER\"\n\
                 oauth_unsecured_claims = { name = \"alice\" }",
                "invalid value for `security.oauth_unsecured_claims`: an unsecured token needs \
                 its principal claim `sub` (unsecuredLoginStringClaim_sub in sasl.jaas.config)",
            ),
            (
                "[security]\nprotocol = \"SASL_SSL\"\nsasl_mechanism = \"OAUTHBEARER\"\n\
                 oauth_unsecured_claims = { sub = \"alice\" }\nsasl_username = \"alice\"",
                "invalid value for `security.sasl_username`: OAUTHBEARER authenticates with a \
                 token, not a user and password: set security.oauth_client_id and \
                 oauth_client_secret (the identity provider's client) instead",
            ),
            (
                "[security]\nprotocol = \"SASL_SSL\"\nsasl_mechanism = \"OAUTHBEARER\"\n\
                 oauth_unsecured_claims = { sub = \"alice\" }\n\
                 oauth_extensions = { auth = \"x\" }",
                "invalid value for `security.oauth_extensions`: `auth`: an extension's name is \
                 letters only, and not `auth`",
            ),
            (
                "[security]\nprotocol = \"SASL_SSL\"\nsasl_mechanism = \"OAUTHBEARER\"\n\
                 oauth_unsecured_claims = { sub = \"alice\" }\n\
                 oauth_refresh_window_factor = 0.2",
                "invalid value for `security.oauth_refresh_window_factor`: 0.2 is outside \
                 0.5..=1 (Kafka's range)",
            ),
            (
                "[security]\nprotocol = \"SASL_SSL\"\nsasl_mechanism = \"PLAIN\"\n\
                 sasl_username = \"u\"\nsasl_password = \"p\"\noauth_client_id = \"c\"",
                "invalid value for `security.oauth_client_id`: is set but \
                 security.sasl_mechanism is PLAIN: OAUTHBEARER keys need sasl_mechanism = \
                 \"OAUTHBEARER\"",
            ),
            (
                "[security]\nprotocol = \"SASL_SSL\"\nsasl_mechanism = \"PLAIN\"",
                "invalid value for `security.sasl_username`: security.protocol SASL_SSL needs \
                 a user name (sasl.username)",
            ),
            (
                "[security]\nprotocol = \"SASL_SSL\"\nsasl_mechanism = \"PLAIN\"\n\
                 sasl_username = \"u\"",
                "invalid value for `security.sasl_password`: security.protocol SASL_SSL needs a \
                 password: security.sasl_password_file (a file holding it) or \
                 security.sasl_password (sasl.password)",
            ),
            (
                "[security]\nprotocol = \"SASL_SSL\"\nsasl_mechanism = \"PLAIN\"\n\
                 sasl_username = \"u\"\nsasl_password = \"p\"\nsasl_password_file = \"f\"",
                "invalid value for `security.sasl_password`: set security.sasl_password or \
                 security.sasl_password_file, not both",
            ),
            (
                "[security]\nkeystore_file = \"k.p12\"",
                "invalid value for `security.keystore_file`: is set but security.protocol is \
                 PLAINTEXT, which does not use TLS: use SSL or SASL_SSL",
            ),
            (
                "[security]\nprotocol = \"SSL\"\nkeystore_file = \"k.p12\"\n\
                 cert_file = \"c.pem\"\nkey_file = \"c.key\"",
                "invalid value for `security.keystore_file`: the client certificate comes from \
                 a keystore or from security.cert_file and security.key_file, not both",
            ),
            (
                "[security]\nprotocol = \"SSL\"\ntruststore_file = \"t.p12\"\n\
                 ca_file = \"ca.pem\"",
                "invalid value for `security.truststore_file`: the CAs come from a truststore \
                 (PKCS#12) or from security.ca_file (PEM), not both",
            ),
            (
                "[security]\nprotocol = \"SSL\"\nkeystore_file = \"k.p12\"\n\
                 keystore_password = \"p\"\nkeystore_password_file = \"f\"",
                "invalid value for `security.keystore_password`: set \
                 security.keystore_password or security.keystore_password_file, not both",
            ),
            (
                "[security]\nprotocol = \"SSL\"\nkeystore_password = \"p\"",
                "invalid value for `security.keystore_password`: a keystore password without a \
                 keystore: set security.keystore_file (ssl.keystore.location, a PKCS#12 file); \
                 a PEM key store needs no password (an encrypted key's is ssl.key.password)",
            ),
            (
                "[security]\nprotocol = \"SSL\"\nca_file = \"ca.pem\"\n\
                 truststore_password = \"p\"",
                "invalid value for `security.truststore_password`: a truststore password \
                 without a truststore: set security.truststore_file (ssl.truststore.location, \
                 a PKCS#12 file); a PEM CA file needs no password",
            ),
            (
                "[security]\nprotocol = \"SSL\"\nkey_password_file = \"f\"",
                "invalid value for `security.key_password`: a key password without a key: set \
                 security.keystore_file or security.key_file",
            ),
        ];
        for (text, expected) in cases {
            let error = Config::parse(text).unwrap_err().to_string();
            assert_eq!(&error, expected, "{text}");
        }
        // Pattern and reset-policy texts come from their parsers; the key leads.
        let error = Config::parse("[consumer]\ntopic_pattern = \"(unclosed\"")
            .unwrap_err()
            .to_string();
        assert!(
            error.starts_with(
                "invalid value for `consumer.topic_pattern`: `(unclosed` is not a valid regular \
                 expression: "
            ),
            "{error}"
        );
        let error = Config::parse("[consumer]\nfrom = \"oldest\"")
            .unwrap_err()
            .to_string();
        assert!(
            error.starts_with("config file <text> is not valid: ")
                && error.contains("earliest, latest, none"),
            "{error}"
        );
        let error = Config::default().require_brokers().unwrap_err().to_string();
        assert_eq!(
            error,
            "invalid value for `brokers`: no broker given: pass --brokers HOST:PORT or set \
             `brokers` in the config file"
        );
        let error = Config::load(Path::new("/nonexistent/wasmkafka.toml"))
            .unwrap_err()
            .to_string();
        assert_eq!(
            error,
            "cannot read config file /nonexistent/wasmkafka.toml: No such file or directory (os \
             error 2)"
        );
    }

    /// The files `[security]` names are read at start-up: a missing or wrong one is refused
    /// there, with the file and the fix.
    #[test]
    fn security_files_are_checked_when_the_pool_is_built() {
        let dir = tempfile::tempdir().unwrap();
        let not_pem = dir.path().join("truststore.jks");
        std::fs::write(&not_pem, b"\xfe\xed\xfe\xed").unwrap();
        let missing = dir.path().join("missing.pem");
        let build = |text: String| {
            Config::parse(&text)
                .unwrap()
                .pool_options()
                .unwrap_err()
                .to_string()
        };
        let error = build(format!(
            "[security]\nprotocol = \"SSL\"\nca_file = \"{}\"",
            not_pem.display()
        ));
        assert_eq!(
            error,
            format!(
                "TLS setup ([security]): the certificate file {}: no PEM certificate \
                 (-----BEGIN CERTIFICATE-----) in it; a PKCS#12 store (.p12, .pfx) is read \
                 from security.truststore_file or security.keystore_file, a JKS one must be \
                 converted to PKCS#12 first",
                not_pem.display()
            )
        );
        // A JKS store named as a keystore, and a file that is not PKCS#12 as a truststore.
        let error = build(format!(
            "[security]\nprotocol = \"SSL\"\nkeystore_file = \"{}\"",
            not_pem.display()
        ));
        assert_eq!(
            error,
            format!(
                "TLS setup ([security]): the keystore {}: a JKS key store, which is not \
                 supported: convert it to PKCS#12 (`keytool -importkeystore -srckeystore k.jks \
                 -destkeystore k.p12 -deststoretype PKCS12`) and set the type to PKCS12",
                not_pem.display()
            )
        );
        let garbage = dir.path().join("truststore.p12");
        std::fs::write(&garbage, b"\x30\x03\x01\x02").unwrap();
        let error = build(format!(
            "[security]\nprotocol = \"SSL\"\ntruststore_file = \"{}\"\n\
             truststore_password = \"p\"",
            garbage.display()
        ));
        assert!(
            error.starts_with(&format!(
                "TLS setup ([security]): the truststore {}: not a PKCS#12 file (",
                garbage.display()
            )),
            "{error}"
        );
        assert!(!error.contains("\"p\""), "{error}");
        let error = build(format!(
            "[security]\nprotocol = \"SSL\"\nca_file = \"{}\"",
            missing.display()
        ));
        assert!(
            error.starts_with(&format!(
                "TLS setup ([security]): the certificate file {}: ",
                missing.display()
            )),
            "{error}"
        );
        let error = build(format!(
            "[security]\nprotocol = \"SASL_PLAINTEXT\"\nsasl_mechanism = \"PLAIN\"\n\
             sasl_username = \"u\"\nsasl_password_file = \"{}\"",
            missing.display()
        ));
        assert_eq!(
            error,
            format!(
                "invalid value for `security.sasl_password_file`: cannot read {}: No such file \
                 or directory (os error 2)",
                missing.display()
            )
        );
    }
}
