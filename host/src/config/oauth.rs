//! `[security]`'s OAUTHBEARER keys: their checks and the [`TokenSource`] they make.
//!
//! ```toml
//! [security]
//! protocol = "SASL_SSL"
//! sasl_mechanism = "OAUTHBEARER"
//! oauth_token_endpoint = "https://idp.example.com/realms/kafka/protocol/openid-connect/token"
//! oauth_client_id = "orders-consumer"
//! oauth_client_secret_file = "/run/secrets/oauth"   # or oauth_client_secret = "..."
//! oauth_scope = "kafka"                              # optional
//! oauth_extensions = { logicalCluster = "lkc-1" }    # optional SASL extensions
//! # for a broker with Kafka's unsecured validator (tests, development) instead of the above:
//! # oauth_unsecured_claims = { sub = "alice" }
//! ```
//!
//! Kafka's names map onto these in `properties.rs` (`sasl.oauthbearer.token.endpoint.url`,
//! `sasl.oauthbearer.client.credentials.client.id` / `.client.secret`, `sasl.oauthbearer.scope`,
//! `sasl.login.refresh.*`, `sasl.login.retry.backoff.*`, and `clientId`, `clientSecret`,
//! `scope`, `extension_*`, `unsecuredLogin*` in `sasl.jaas.config`).

use std::time::Duration;

use super::security::secret;
use super::{ConfigError, SecurityConfig};
use crate::net::oauth::{
    ClientCredentials, OAuthBearerConfig, RefreshConfig, TokenProvider, UnsecuredJwt,
};
use crate::net::security::token_endpoint_tls;
use crate::net::{TlsFiles, TokenSource};

fn invalid(key: &'static str, problem: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key,
        problem: problem.into(),
    }
}

impl SecurityConfig {
    /// The OAUTHBEARER keys that are set, by name.
    fn oauth_keys_set(&self) -> Vec<&'static str> {
        let defaults = SecurityConfig::default();
        [
            (
                "security.oauth_token_endpoint",
                self.oauth_token_endpoint.is_some(),
            ),
            ("security.oauth_client_id", self.oauth_client_id.is_some()),
            (
                "security.oauth_client_secret",
                self.oauth_client_secret.is_some(),
            ),
            (
                "security.oauth_client_secret_file",
                self.oauth_client_secret_file.is_some(),
            ),
            ("security.oauth_scope", self.oauth_scope.is_some()),
            (
                "security.oauth_extensions",
                !self.oauth_extensions.is_empty(),
            ),
            (
                "security.oauth_unsecured_claims",
                !self.oauth_unsecured_claims.is_empty(),
            ),
            (
                "security.oauth_header_urlencode",
                self.oauth_header_urlencode,
            ),
        ]
        .into_iter()
        .filter(|(_, set)| *set)
        .map(|(key, _)| key)
        .chain(
            (self.oauth_unsecured_principal_claim != defaults.oauth_unsecured_principal_claim)
                .then_some("security.oauth_unsecured_principal_claim"),
        )
        .collect()
    }

    /// Refuses OAUTHBEARER keys when the mechanism is another (`why` says what is set).
    pub(super) fn no_oauth_keys(&self, why: &str) -> Result<(), ConfigError> {
        match self.oauth_keys_set().first() {
            Some(key) => Err(invalid(
                key,
                format!("is set but {why}: OAUTHBEARER keys need sasl_mechanism = \"OAUTHBEARER\""),
            )),
            None => Ok(()),
        }
    }

    /// Checks the OAUTHBEARER keys: one token source, complete, and values in Kafka's ranges.
    pub(super) fn validate_oauth(&self) -> Result<(), ConfigError> {
        for (key, set) in [
            ("security.sasl_username", self.sasl_username.is_some()),
            (
                "security.sasl_password",
                self.sasl_password.is_some() || self.sasl_password_file.is_some(),
            ),
        ] {
            if set {
                return Err(invalid(
                    key,
                    "OAUTHBEARER authenticates with a token, not a user and password: set \
                     security.oauth_client_id and oauth_client_secret (the identity provider's \
                     client) instead",
                ));
            }
        }
        let unsecured = !self.oauth_unsecured_claims.is_empty();
        match (&self.oauth_token_endpoint, unsecured) {
            (Some(_), true) => {
                return Err(invalid(
                    "security.oauth_unsecured_claims",
                    "an unsecured token is made here, so it cannot come with a token endpoint: \
                     set security.oauth_token_endpoint or security.oauth_unsecured_claims",
                ))
            }
            (None, false) => {
                return Err(invalid(
                    "security.oauth_token_endpoint",
                    "OAUTHBEARER needs a token: set security.oauth_token_endpoint \
                     (sasl.oauthbearer.token.endpoint.url) with oauth_client_id and \
                     oauth_client_secret; or, for a broker with Kafka's unsecured validator \
                     only, security.oauth_unsecured_claims = { sub = \"...\" } \
                     (unsecuredLoginStringClaim_sub in sasl.jaas.config)",
                ))
            }
            (Some(url), false) => self.validate_client_credentials(url)?,
            (None, true) => {
                if !self
                    .oauth_unsecured_claims
                    .contains_key(&self.oauth_unsecured_principal_claim)
                {
                    return Err(invalid(
                        "security.oauth_unsecured_claims",
                        format!(
                            "an unsecured token needs its principal claim `{}` \
                             (unsecuredLoginStringClaim_{} in sasl.jaas.config)",
                            self.oauth_unsecured_principal_claim,
                            self.oauth_unsecured_principal_claim
                        ),
                    ));
                }
            }
        }
        for (key, value) in &self.oauth_extensions {
            if !key.chars().all(|c| c.is_ascii_alphabetic()) || key.is_empty() || key == "auth" {
                return Err(invalid(
                    "security.oauth_extensions",
                    format!("`{key}`: an extension's name is letters only, and not `auth`"),
                ));
            }
            if value.is_empty()
                || !value
                    .bytes()
                    .all(|b| (0x21..=0x7e).contains(&b) || b" \t\r\n".contains(&b))
            {
                return Err(invalid(
                    "security.oauth_extensions",
                    format!("`{key}`: an extension's value is printable ASCII, not empty"),
                ));
            }
        }
        let ranges = [
            (
                "security.oauth_refresh_window_factor",
                self.oauth_refresh_window_factor,
                0.5,
                1.0,
            ),
            (
                "security.oauth_refresh_window_jitter",
                self.oauth_refresh_window_jitter,
                0.0,
                0.25,
            ),
            (
                "security.oauth_refresh_min_period_seconds",
                self.oauth_refresh_min_period_seconds as f64,
                0.0,
                900.0,
            ),
            (
                "security.oauth_refresh_buffer_seconds",
                self.oauth_refresh_buffer_seconds as f64,
                0.0,
                3600.0,
            ),
        ];
        for (key, value, low, high) in ranges {
            if !(low..=high).contains(&value) {
                return Err(invalid(
                    key,
                    format!("{value} is outside {low}..={high} (Kafka's range)"),
                ));
            }
        }
        Ok(())
    }

    fn validate_client_credentials(&self, url: &str) -> Result<(), ConfigError> {
        let scheme_ok = url.starts_with("https://") || url.starts_with("http://");
        if !scheme_ok || reqwest::Url::parse(url).is_err() {
            return Err(invalid(
                "security.oauth_token_endpoint",
                format!("`{url}` is not an http:// or https:// URL"),
            ));
        }
        if self.oauth_client_id.as_deref().unwrap_or("").is_empty() {
            return Err(invalid(
                "security.oauth_client_id",
                "the token endpoint needs the client id \
                 (sasl.oauthbearer.client.credentials.client.id, or clientId in sasl.jaas.config)",
            ));
        }
        match (&self.oauth_client_secret, &self.oauth_client_secret_file) {
            (Some(_), Some(_)) => Err(invalid(
                "security.oauth_client_secret",
                "set security.oauth_client_secret or security.oauth_client_secret_file, not both",
            )),
            (None, None) => Err(invalid(
                "security.oauth_client_secret",
                "the token endpoint needs the client secret: security.oauth_client_secret_file \
                 (a file holding it) or security.oauth_client_secret \
                 (sasl.oauthbearer.client.credentials.client.secret, or clientSecret in \
                 sasl.jaas.config)",
            )),
            _ => Ok(()),
        }
    }

    /// The token source of a validated OAUTHBEARER config; `tls` are the broker's TLS files,
    /// whose CAs an `https://` token endpoint is checked against (the system's without them).
    pub(super) fn token_source(&self, tls: Option<&TlsFiles>) -> Result<TokenSource, ConfigError> {
        let provider = match &self.oauth_token_endpoint {
            Some(endpoint) => TokenProvider::ClientCredentials(ClientCredentials {
                endpoint: endpoint.clone(),
                client_id: self.oauth_client_id.clone().unwrap_or_default(),
                client_secret: secret(
                    &self.oauth_client_secret,
                    &self.oauth_client_secret_file,
                    "security.oauth_client_secret_file",
                )?
                .expect("checked by validate_oauth"),
                scope: self.oauth_scope.clone().filter(|s| !s.is_empty()),
                urlencode_header: self.oauth_header_urlencode,
                connect_timeout: Duration::from_millis(self.oauth_connect_timeout_ms),
                read_timeout: Duration::from_millis(self.oauth_read_timeout_ms),
                retry_backoff: Duration::from_millis(self.oauth_retry_backoff_ms),
                retry_backoff_max: Duration::from_millis(self.oauth_retry_backoff_max_ms),
            }),
            None => TokenProvider::Unsecured(UnsecuredJwt {
                principal_claim: self.oauth_unsecured_principal_claim.clone(),
                claims: self.oauth_unsecured_claims.clone(),
                lifetime: Duration::from_secs(self.oauth_unsecured_lifetime_seconds),
            }),
        };
        let https = self
            .oauth_token_endpoint
            .as_deref()
            .is_some_and(|url| url.starts_with("https://"));
        let tls = token_endpoint_tls(tls, https)?;
        let config = OAuthBearerConfig {
            provider,
            extensions: self.oauth_extensions.clone(),
            refresh: RefreshConfig {
                window_factor: self.oauth_refresh_window_factor,
                window_jitter: self.oauth_refresh_window_jitter,
                min_period: Duration::from_secs(self.oauth_refresh_min_period_seconds),
                buffer: Duration::from_secs(self.oauth_refresh_buffer_seconds),
            },
        };
        TokenSource::new(config, tls)
            .map_err(|problem| invalid("security.oauth_token_endpoint", problem))
    }
}
