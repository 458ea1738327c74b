//! `[security]`: TLS and SASL settings, and how they become the connection's `Security`.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Deserialize;

use crate::net::security::Pkcs12File;
use crate::net::{
    Sasl, SaslCredentials, SaslMechanism, Secret, Security, SecurityProtocol, Tls, TlsFiles,
};

use super::ConfigError;

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
pub(super) fn secret(
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
    pub(super) fn protocol(&self) -> Result<SecurityProtocol, ConfigError> {
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
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
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
