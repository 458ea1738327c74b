//! OAUTHBEARER tokens (RFC 7628, KIP-255, KIP-768): where they come from, how long one is
//! used, and what goes wrong getting one. The SASL message that carries a token is in
//! `sasl.rs`.
//!
//! A [`TokenSource`] is built once from the config and shared by every connection of the pool
//! (it is an `Arc` inside). It gets its tokens either from an OAuth 2 token endpoint with the
//! client-credentials grant (RFC 6749 §4.4: a POST of `grant_type=client_credentials`, the
//! client id and secret in HTTP Basic authentication, `access_token` and `expires_in` read from
//! the JSON answer), or makes an unsecured JWT (`alg: none`) itself, as Kafka's
//! `OAuthBearerUnsecuredLoginCallbackHandler` does, for brokers that run Kafka's unsecured
//! validator (tests, development).
//!
//! Invariants:
//! - One request to the token endpoint at a time. A caller that arrives while one is under way
//!   waits for it only when it has no valid token to use meanwhile, and shares its answer,
//!   success or failure: connects that fail together cost one round of retries, not one each.
//! - A token is handed out until its refresh time, Kafka's `sasl.login.refresh.*` rule (by
//!   default 80% of its lifetime plus up to 5% jitter, see [`refresh_time`]); the first caller
//!   after that fetches a new one. The pool replaces a connection at 85% of the session
//!   lifetime the broker gave it, which the broker caps at the token's remaining life, so the
//!   replacement connection authenticates with a fresh token (KIP-368).
//! - Failures that may heal (the endpoint unreachable or timing out, a 5xx answer) are retried
//!   with exponential backoff for up to `retry_backoff_max`, as Kafka's client does; after that
//!   the current token is still handed out while it has not expired (with a warning), and the
//!   next attempt waits `retry_backoff_max`. A refusal (4xx: a wrong secret, an unknown client
//!   or scope), an answer without a token or a TLS failure (an `https` endpoint whose
//!   certificate the configured CAs do not accept) is not retried: [`TokenError::is_fatal`].
//! - The client secret and the tokens never appear in `Debug` output or logs.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;

use super::backoff::unit_random;
use super::secret::Secret;
use crate::error_chain::Chain;

/// Everything OAUTHBEARER needs: where tokens come from, the SASL extensions sent beside
/// them, and when a token is replaced.
#[derive(Debug, Clone, PartialEq)]
pub struct OAuthBearerConfig {
    pub provider: TokenProvider,
    /// SASL extensions (KIP-342) sent with every token: Kafka's JAAS `extension_<key>` options
    /// (Confluent Cloud's `logicalCluster` and `identityPoolId`, for instance). Keys are
    /// letters only and never `auth`; values are printable ASCII.
    pub extensions: BTreeMap<String, String>,
    pub refresh: RefreshConfig,
}

/// Where tokens come from.
#[derive(Debug, Clone, PartialEq)]
pub enum TokenProvider {
    /// An OAuth 2 token endpoint, client-credentials grant.
    ClientCredentials(ClientCredentials),
    /// An unsecured JWT made here (`alg: none`): only for a broker that runs Kafka's
    /// unsecured validator.
    Unsecured(UnsecuredJwt),
}

/// The client-credentials grant against a token endpoint (Kafka's
/// `sasl.oauthbearer.token.endpoint.url` and `sasl.oauthbearer.client.credentials.*`).
#[derive(Debug, Clone, PartialEq)]
pub struct ClientCredentials {
    /// `http://` or `https://`.
    pub endpoint: String,
    pub client_id: String,
    pub client_secret: Secret,
    /// `scope` of the request, when set.
    pub scope: Option<String>,
    /// URL-encode the id and secret inside the Basic credentials (RFC 6749 §2.3.1; Kafka's
    /// `sasl.oauthbearer.header.urlencode`, off by default as there).
    pub urlencode_header: bool,
    pub connect_timeout: Duration,
    pub read_timeout: Duration,
    /// The first retry's wait; each next one doubles (`sasl.login.retry.backoff.ms`).
    pub retry_backoff: Duration,
    /// How long one fetch retries in all (`sasl.login.retry.backoff.max.ms`).
    pub retry_backoff_max: Duration,
}

/// An unsecured JWT, as Kafka's `unsecuredLogin*` JAAS options describe it.
#[derive(Debug, Clone, PartialEq)]
pub struct UnsecuredJwt {
    /// The claim that names the principal (`unsecuredLoginPrincipalClaimName`, `sub`).
    pub principal_claim: String,
    /// Claims beside `iat` and `exp` (`unsecuredLoginStringClaim_<name>`,
    /// `unsecuredLoginNumberClaim_<name>`); the principal claim is one of them.
    pub claims: BTreeMap<String, serde_json::Value>,
    /// `unsecuredLoginLifetimeSeconds` (an hour by default).
    pub lifetime: Duration,
}

/// When a token is replaced: Kafka's `sasl.login.refresh.*` settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RefreshConfig {
    /// Share of the lifetime after which the token is replaced (0.5..=1.0).
    pub window_factor: f64,
    /// Up to this share of the lifetime is added at random (0..=0.25).
    pub window_jitter: f64,
    /// No refresh sooner than this after the token arrived...
    pub min_period: Duration,
    /// ...and none closer to its expiry than this, when the lifetime leaves room for both.
    pub buffer: Duration,
}

impl Default for RefreshConfig {
    fn default() -> Self {
        RefreshConfig {
            window_factor: 0.8,
            window_jitter: 0.05,
            min_period: Duration::from_secs(60),
            buffer: Duration::from_secs(300),
        }
    }
}

/// When to replace a token valid from `start` (its `iat`; `now` when it has none) until
/// `expiry`, seen at `now`; `jitter` in [0, 1) draws the random share. Kafka's rule
/// (`ExpiringCredentialRefreshingLogin`): the window factor plus jitter of the lifetime, moved
/// back to keep `buffer` before the expiry and forward to keep `min_period` after now, unless
/// the remaining life is shorter than both together, when only the share counts. A token
/// already expired is replaced at once.
pub fn refresh_time(
    now: SystemTime,
    start: Option<SystemTime>,
    expiry: SystemTime,
    config: &RefreshConfig,
    jitter: f64,
) -> SystemTime {
    let Ok(remaining) = expiry.duration_since(now) else {
        return now;
    };
    let share = config.window_factor + config.window_jitter * jitter;
    if config.min_period + config.buffer > remaining {
        return now + remaining.mul_f64(share);
    }
    let start = start.unwrap_or(now).min(now);
    let lifetime = expiry.duration_since(start).unwrap_or_default();
    let proposed = start + lifetime.mul_f64(share);
    let buffer_begins = expiry - config.buffer;
    if proposed > buffer_begins {
        return buffer_begins;
    }
    proposed.max(now + config.min_period)
}

/// A token and what the client knows of it.
#[derive(Clone)]
pub struct Token {
    value: Arc<str>,
    /// Whom it names: its `sub` claim (the principal claim of an unsecured one); the client
    /// id when it has none.
    pub principal: String,
    /// Its `iat` claim, when it has one.
    pub issued_at: Option<SystemTime>,
    /// Its `exp` claim; `expires_in` after it arrived for a token that is not a JWT.
    pub expires_at: SystemTime,
}

impl Token {
    /// The token itself, for the one place that sends it.
    pub fn expose(&self) -> &str {
        &self.value
    }
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Token")
            .field("value", &"***")
            .field("principal", &self.principal)
            .field("issued_at", &self.issued_at)
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

/// Why no token could be had.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum TokenError {
    /// The endpoint refused the request (4xx): the credentials, the client or the scope.
    #[error(
        "the token endpoint {url} refused client `{client_id}`: HTTP {status}{detail}. {hint}"
    )]
    Refused {
        url: String,
        client_id: String,
        status: u16,
        /// `: <error> (<error_description>)` from the answer, when it has them.
        detail: String,
        hint: String,
    },
    /// No answer: connection refused, a timeout, a TLS failure.
    #[error("cannot reach the token endpoint {url} for client `{client_id}`: {reason} (is the identity provider up, and is sasl.oauthbearer.token.endpoint.url / security.oauth_token_endpoint right?)")]
    Unreachable {
        url: String,
        client_id: String,
        reason: String,
    },
    /// The TLS handshake with an `https` endpoint failed: most often its certificate is not
    /// signed by a CA the client trusts (the brokers' CAs, or the system's).
    #[error("the token endpoint {url} cannot be trusted (client `{client_id}`): {reason}")]
    Tls {
        url: String,
        client_id: String,
        reason: String,
    },
    /// A 5xx answer, or another status that is neither success nor refusal.
    #[error("the token endpoint {url} failed for client `{client_id}`: HTTP {status}{detail}")]
    Failed {
        url: String,
        client_id: String,
        status: u16,
        detail: String,
    },
    /// A success answer without a usable token.
    #[error(
        "the token endpoint {url} answered client `{client_id}` without a usable token: {reason}"
    )]
    BadAnswer {
        url: String,
        client_id: String,
        reason: String,
    },
}

impl TokenError {
    /// True for failures no retry heals: the endpoint refused the client, answered
    /// nonsense or failed the TLS handshake.
    pub fn is_fatal(&self) -> bool {
        matches!(
            self,
            TokenError::Refused { .. } | TokenError::BadAnswer { .. } | TokenError::Tls { .. }
        )
    }
}

/// Tokens for every connection of a pool; cheap to clone.
#[derive(Clone)]
pub struct TokenSource {
    inner: Arc<Inner>,
}

struct Inner {
    config: OAuthBearerConfig,
    /// Set for [`TokenProvider::ClientCredentials`].
    http: Option<reqwest::Client>,
    state: Mutex<State>,
    /// Held while a token is fetched (single flight).
    fetching: tokio::sync::Mutex<()>,
    /// Tokens fetched or made, for statistics and tests.
    tokens: AtomicU64,
}

#[derive(Default)]
struct State {
    current: Option<Current>,
    /// The last fetch that failed, and when: callers that queued behind it share it.
    last_failure: Option<(Instant, TokenError)>,
}

struct Current {
    token: Token,
    /// When the next caller fetches a new token.
    refresh_at: Instant,
}

impl std::fmt::Debug for TokenSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenSource")
            .field("config", &self.inner.config)
            .finish()
    }
}

impl TokenSource {
    /// A source for `config`. `tls` secures an `https://` token endpoint (the trust settings
    /// of `[security]`: `security::token_endpoint_tls`).
    pub fn new(
        config: OAuthBearerConfig,
        tls: rustls::ClientConfig,
    ) -> Result<TokenSource, String> {
        let http = match &config.provider {
            TokenProvider::ClientCredentials(grant) => {
                let builder = reqwest::Client::builder()
                    .connect_timeout(grant.connect_timeout)
                    .read_timeout(grant.read_timeout)
                    .user_agent(concat!("wasmkafka/", env!("CARGO_PKG_VERSION")))
                    .tls_backend_preconfigured(tls);
                Some(
                    builder
                        .build()
                        .map_err(|e| format!("cannot make the HTTP client: {e}"))?,
                )
            }
            TokenProvider::Unsecured(_) => None,
        };
        Ok(TokenSource {
            inner: Arc::new(Inner {
                config,
                http,
                state: Mutex::new(State::default()),
                fetching: tokio::sync::Mutex::new(()),
                tokens: AtomicU64::new(0),
            }),
        })
    }

    pub fn config(&self) -> &OAuthBearerConfig {
        &self.inner.config
    }

    /// Whom errors name before a token is known: the client id, or the unsecured token's
    /// principal.
    pub fn who(&self) -> String {
        match &self.inner.config.provider {
            TokenProvider::ClientCredentials(grant) => grant.client_id.clone(),
            TokenProvider::Unsecured(jwt) => jwt.principal().unwrap_or_default(),
        }
    }

    /// Tokens fetched (or made) so far.
    pub fn tokens_fetched(&self) -> u64 {
        self.inner.tokens.load(Ordering::Relaxed)
    }

    /// A token to authenticate with now: the current one until its refresh time, else a new
    /// one (see the module's invariants).
    pub async fn token(&self) -> Result<Token, TokenError> {
        let arrived = Instant::now();
        let usable = {
            let state = self.state();
            match &state.current {
                Some(current) if Instant::now() < current.refresh_at => {
                    return Ok(current.token.clone())
                }
                Some(current) if current.token.expires_at > SystemTime::now() => {
                    Some(current.token.clone())
                }
                _ => None,
            }
        };
        // Past its refresh time: one caller fetches; the others keep using a token that has
        // not expired, or wait for the fetch.
        let _fetching = match (&usable, self.inner.fetching.try_lock()) {
            (_, Ok(guard)) => guard,
            (Some(token), Err(_)) => return Ok(token.clone()),
            (None, Err(_)) => self.inner.fetching.lock().await,
        };
        {
            let state = self.state();
            if let Some(current) = &state.current {
                if Instant::now() < current.refresh_at {
                    return Ok(current.token.clone());
                }
            }
            if let Some((failed_at, error)) = &state.last_failure {
                if *failed_at >= arrived {
                    return Err(error.clone());
                }
            }
        }
        let fetched = self.fetch().await;
        let mut state = self.state();
        match fetched {
            Ok(token) => {
                self.inner.tokens.fetch_add(1, Ordering::Relaxed);
                let now = SystemTime::now();
                let refresh = refresh_time(
                    now,
                    token.issued_at,
                    token.expires_at,
                    &self.inner.config.refresh,
                    unit_random(),
                );
                let wait = refresh.duration_since(now).unwrap_or_default();
                tracing::debug!(principal = %token.principal, expires_in = ?token.expires_at.duration_since(now).ok(), refresh_in = ?wait, "OAUTHBEARER token");
                state.current = Some(Current {
                    token: token.clone(),
                    refresh_at: Instant::now() + wait,
                });
                state.last_failure = None;
                Ok(token)
            }
            Err(error) => {
                state.last_failure = Some((Instant::now(), error.clone()));
                let retry_later = self.retry_backoff_max();
                match state.current.as_mut() {
                    Some(current)
                        if !error.is_fatal() && current.token.expires_at > SystemTime::now() =>
                    {
                        tracing::warn!(error = %Chain(&error), retry_in = ?retry_later, "cannot refresh the OAUTHBEARER token; the current one is used until it expires");
                        current.refresh_at = Instant::now() + retry_later;
                        Ok(current.token.clone())
                    }
                    _ => Err(error),
                }
            }
        }
    }

    /// Drops `token` (the broker refused it): the next caller gets a new one.
    pub fn forget(&self, token: &Token) {
        let mut state = self.state();
        if state
            .current
            .as_ref()
            .is_some_and(|current| Arc::ptr_eq(&current.token.value, &token.value))
        {
            state.current = None;
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.inner.state.lock().expect("token state poisoned")
    }

    fn retry_backoff_max(&self) -> Duration {
        match &self.inner.config.provider {
            TokenProvider::ClientCredentials(grant) => grant.retry_backoff_max,
            TokenProvider::Unsecured(_) => Duration::ZERO,
        }
    }

    async fn fetch(&self) -> Result<Token, TokenError> {
        let grant = match &self.inner.config.provider {
            TokenProvider::Unsecured(jwt) => return Ok(jwt.make(SystemTime::now())),
            TokenProvider::ClientCredentials(grant) => grant,
        };
        let http = self.inner.http.as_ref().expect("made with the grant");
        // Kafka's retry: waits doubling from retry_backoff, until retry_backoff_max has
        // passed in all.
        let give_up_at = Instant::now() + grant.retry_backoff_max;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let error = match request_token(http, grant).await {
                Ok(token) => return Ok(token),
                Err(error) if error.is_fatal() => return Err(error),
                Err(error) => error,
            };
            let wait = grant
                .retry_backoff
                .saturating_mul(1 << (attempt - 1).min(20))
                .min(give_up_at.saturating_duration_since(Instant::now()));
            if wait.is_zero() {
                return Err(error);
            }
            tracing::debug!(error = %Chain(&error), attempt, retry_in = ?wait, "token request failed");
            tokio::time::sleep(wait).await;
        }
    }
}

/// One POST to the token endpoint.
async fn request_token(
    http: &reqwest::Client,
    grant: &ClientCredentials,
) -> Result<Token, TokenError> {
    let url = || grant.endpoint.clone();
    let client_id = || grant.client_id.clone();
    let unreachable = |error: reqwest::Error| match tls_error(&error) {
        Some(tls) => TokenError::Tls {
            url: url(),
            client_id: client_id(),
            reason: describe_endpoint_tls_error(tls),
        },
        None => TokenError::Unreachable {
            url: url(),
            client_id: client_id(),
            reason: error_chain(&error),
        },
    };
    let mut form = vec![("grant_type", "client_credentials")];
    if let Some(scope) = &grant.scope {
        form.push(("scope", scope));
    }
    let (id, secret) = if grant.urlencode_header {
        (
            form_urlencode(&grant.client_id),
            form_urlencode(grant.client_secret.expose()),
        )
    } else {
        (
            grant.client_id.clone(),
            grant.client_secret.expose().to_string(),
        )
    };
    let response = http
        .post(&grant.endpoint)
        .basic_auth(id, Some(secret))
        .header(reqwest::header::ACCEPT, "application/json")
        .header(reqwest::header::CACHE_CONTROL, "no-cache")
        .form(&form)
        .send()
        .await
        .map_err(unreachable)?;
    let status = response.status();
    let body = response.bytes().await.map_err(unreachable)?;
    if status.is_client_error() {
        let (code, description) = error_fields(&body);
        return Err(TokenError::Refused {
            url: url(),
            client_id: client_id(),
            status: status.as_u16(),
            detail: detail(code.as_deref(), description.as_deref()),
            hint: refusal_hint(status.as_u16(), code.as_deref()),
        });
    }
    if !status.is_success() {
        let (code, description) = error_fields(&body);
        return Err(TokenError::Failed {
            url: url(),
            client_id: client_id(),
            status: status.as_u16(),
            detail: detail(code.as_deref(), description.as_deref()),
        });
    }
    read_token(&body, &grant.client_id, SystemTime::now()).map_err(|reason| TokenError::BadAnswer {
        url: url(),
        client_id: client_id(),
        reason,
    })
}

/// The token of a success answer: `access_token`, its lifetime from the JWT's `exp` claim (as
/// Kafka reads it) or else from `expires_in`, its principal from `sub`.
fn read_token(body: &[u8], client_id: &str, now: SystemTime) -> Result<Token, String> {
    let answer: serde_json::Value = serde_json::from_slice(body)
        .map_err(|e| format!("the answer is not JSON ({e}): {}", shorten(body)))?;
    let value = answer
        .get("access_token")
        .and_then(|v| v.as_str())
        .filter(|v| !v.is_empty())
        .ok_or_else(|| "the answer has no access_token".to_string())?;
    if !value
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"-._~+/=".contains(&b))
    {
        return Err("the access_token has characters a bearer token cannot carry".into());
    }
    let claims = jwt_claims(value);
    let claim_time = |name: &str| {
        claims
            .as_ref()
            .and_then(|c| c.get(name))
            .and_then(|v| v.as_f64())
            .filter(|secs| *secs >= 0.0)
            .map(|secs| UNIX_EPOCH + Duration::from_secs_f64(secs))
    };
    let expires_in = answer
        .get("expires_in")
        .and_then(|v| v.as_f64().or_else(|| v.as_str()?.parse().ok()))
        .filter(|secs| *secs >= 0.0)
        .map(|secs| now + Duration::from_secs_f64(secs));
    let expires_at = claim_time("exp").or(expires_in).ok_or_else(|| {
        "the token has no exp claim and the answer no expires_in: its lifetime is unknown"
            .to_string()
    })?;
    let principal = claims
        .as_ref()
        .and_then(|c| c.get("sub"))
        .and_then(|v| v.as_str())
        .unwrap_or(client_id)
        .to_string();
    Ok(Token {
        value: value.into(),
        principal,
        issued_at: claim_time("iat"),
        expires_at,
    })
}

/// The claims of a JWT (not verified: the broker does that); `None` for an opaque token.
pub fn jwt_claims(token: &str) -> Option<serde_json::Map<String, serde_json::Value>> {
    let mut parts = token.split('.');
    let (_header, payload) = (parts.next()?, parts.next()?);
    parts.next()?;
    let bytes = URL_SAFE_NO_PAD.decode(payload.trim_end_matches('=')).ok()?;
    match serde_json::from_slice(&bytes).ok()? {
        serde_json::Value::Object(claims) => Some(claims),
        _ => None,
    }
}

impl UnsecuredJwt {
    /// The principal claim's value.
    pub fn principal(&self) -> Option<String> {
        match self.claims.get(&self.principal_claim)? {
            serde_json::Value::String(name) => Some(name.clone()),
            other => Some(other.to_string()),
        }
    }

    /// The token, as Kafka's unsecured login makes it: `{"alg":"none"}`, the claims with `iat`
    /// and `exp` in (fractional) seconds, and an empty signature.
    pub fn make(&self, now: SystemTime) -> Token {
        let issued = now.duration_since(UNIX_EPOCH).unwrap_or_default();
        let expires = issued + self.lifetime;
        let mut claims = serde_json::Map::new();
        for (name, value) in &self.claims {
            claims.insert(name.clone(), value.clone());
        }
        claims.insert("iat".into(), seconds(issued));
        claims.insert("exp".into(), seconds(expires));
        let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none"}"#);
        let payload = URL_SAFE_NO_PAD.encode(serde_json::Value::Object(claims).to_string());
        Token {
            value: format!("{header}.{payload}.").into(),
            principal: self.principal().unwrap_or_default(),
            issued_at: Some(now),
            expires_at: now + self.lifetime,
        }
    }
}

fn seconds(since_epoch: Duration) -> serde_json::Value {
    serde_json::Number::from_f64((since_epoch.as_millis() as f64) / 1000.0)
        .map_or(serde_json::Value::Null, serde_json::Value::Number)
}

/// `error` and `error_description` of an error answer (RFC 6749 §5.2), when it has them.
fn error_fields(body: &[u8]) -> (Option<String>, Option<String>) {
    let Ok(answer) = serde_json::from_slice::<serde_json::Value>(body) else {
        return (None, (!body.is_empty()).then(|| shorten(body)));
    };
    let field = |name: &str| {
        answer
            .get(name)
            .and_then(|v| v.as_str())
            .map(str::to_string)
    };
    (field("error"), field("error_description"))
}

fn detail(code: Option<&str>, description: Option<&str>) -> String {
    match (code, description) {
        (Some(code), Some(description)) => format!(": {code} ({description})"),
        (Some(one), None) | (None, Some(one)) => format!(": {one}"),
        (None, None) => String::new(),
    }
}

/// What to do about a refusal, by its `error` code (RFC 6749 §5.2).
fn refusal_hint(status: u16, code: Option<&str>) -> String {
    match code {
        Some("invalid_scope") => {
            "Check the scope (sasl.oauthbearer.scope / security.oauth_scope): \
                                  the identity provider does not grant it to this client"
                .into()
        }
        Some("unauthorized_client") | Some("unsupported_grant_type") => {
            "The identity provider does not let this client use the client-credentials grant \
             (in Keycloak: enable the client's service accounts)"
                .into()
        }
        Some("invalid_client") | None if status == 401 || code.is_some() => {
            "Check the client id and secret (sasl.oauthbearer.client.credentials.client.id and \
             .client.secret, or clientId and clientSecret in sasl.jaas.config; \
             security.oauth_client_id and security.oauth_client_secret)"
                .into()
        }
        _ => "The identity provider refused the request; its answer above says why".into(),
    }
}

/// A reqwest error with its causes (`error sending request: ... Connection refused`).
/// The rustls error somewhere in `error`'s causes. I/O errors carry it inside, nested
/// (hyper-rustls wraps tokio-rustls's), where `source()` does not lead.
fn tls_error(error: &reqwest::Error) -> Option<&rustls::Error> {
    fn inside<'a>(error: &'a (dyn std::error::Error + 'static)) -> Option<&'a rustls::Error> {
        if let Some(tls) = error.downcast_ref::<rustls::Error>() {
            return Some(tls);
        }
        let io = error.downcast_ref::<std::io::Error>()?.get_ref()?;
        inside(io)
    }
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(current) = cause {
        if let Some(tls) = inside(current) {
            return Some(tls);
        }
        cause = current.source();
    }
    None
}

/// A TLS failure with the token endpoint in words, with what to do about it.
fn describe_endpoint_tls_error(error: &rustls::Error) -> String {
    use rustls::CertificateError;
    match error {
        rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer) => {
            "its certificate is not signed by a trusted CA (UnknownIssuer). The endpoint is \
             checked against the brokers' CAs: ssl.truststore.location / ssl.ca.location \
             (security.truststore_file / ca_file), or the system's when none is named; add \
             the CA that signed the endpoint's certificate there"
                .into()
        }
        rustls::Error::InvalidCertificate(
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
        ) => format!(
            "its certificate does not name the host in the URL ({error}): use a URL with a \
             name the certificate carries"
        ),
        rustls::Error::InvalidCertificate(
            CertificateError::Expired | CertificateError::ExpiredContext { .. },
        ) => format!("its certificate has expired ({error})"),
        other => format!("the TLS handshake failed: {other}"),
    }
}

fn error_chain(error: &reqwest::Error) -> String {
    let mut text = if error.is_timeout() {
        "timed out".to_string()
    } else {
        error.to_string()
    };
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

fn shorten(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    match text.char_indices().nth(200) {
        Some((cut, _)) => format!("{}...", &text[..cut]),
        None => text.to_string(),
    }
}

/// application/x-www-form-urlencoded, as Java's `URLEncoder` does it (what Kafka sends with
/// `sasl.oauthbearer.header.urlencode`).
fn form_urlencode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        match byte {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'.' | b'-' | b'*' | b'_' => {
                out.push(byte as char)
            }
            b' ' => out.push('+'),
            other => out.push_str(&format!("%{other:02X}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    /// Kafka's rule, case by case (ExpiringCredentialRefreshingLogin's defaults: 0.8, 0.05,
    /// 60 s, 300 s).
    #[test]
    fn refresh_follows_kafkas_window_buffer_and_minimum_period() {
        let config = RefreshConfig::default();
        // An hour-long token: 80% of it, up to 85% with the jitter.
        let start = at(1_000_000);
        let expiry = start + Duration::from_secs(3600);
        assert_eq!(
            refresh_time(start, Some(start), expiry, &config, 0.0),
            start + Duration::from_secs(2880)
        );
        assert_eq!(
            refresh_time(start, Some(start), expiry, &config, 0.999_999),
            start + Duration::from_secs_f64(3600.0 * (0.8 + 0.05 * 0.999_999))
        );
        // Ten minutes: 80% would fall inside the five-minute buffer, so the buffer wins.
        let expiry = start + Duration::from_secs(600);
        assert_eq!(
            refresh_time(start, Some(start), expiry, &config, 0.5),
            start + Duration::from_secs(300)
        );
        // A token whose start lies long ago: never sooner than the minimum period from now.
        let now = start + Duration::from_secs(2000);
        let expiry = start + Duration::from_secs(10_000);
        let long_ago = start - Duration::from_secs(100_000);
        assert_eq!(
            refresh_time(now, Some(long_ago), expiry, &config, 0.0),
            now + Duration::from_secs(60)
        );
        // Shorter than minimum period and buffer together: only the share counts.
        let expiry = start + Duration::from_secs(10);
        assert_eq!(
            refresh_time(start, Some(start), expiry, &config, 0.0),
            start + Duration::from_secs(8)
        );
        // Expired already: at once.
        assert_eq!(
            refresh_time(expiry + Duration::from_secs(1), None, expiry, &config, 0.3),
            expiry + Duration::from_secs(1)
        );
    }

    #[test]
    fn a_token_answer_is_read_from_its_claims_or_expires_in() {
        let now = at(1_700_000_000);
        let payload = URL_SAFE_NO_PAD.encode(r#"{"sub":"svc","iat":1700000000,"exp":1700000300}"#);
        let jwt = format!("eyJhbGciOiJSUzI1NiJ9.{payload}.c2ln");
        let body = format!(r#"{{"access_token":"{jwt}","expires_in":999,"token_type":"Bearer"}}"#);
        let token = read_token(body.as_bytes(), "client", now).unwrap();
        assert_eq!(token.principal, "svc");
        assert_eq!(token.expires_at, at(1_700_000_300));
        assert_eq!(token.issued_at, Some(now));
        assert_eq!(format!("{token:?}").matches("***").count(), 1);
        assert!(!format!("{token:?}").contains(&jwt));

        let opaque = read_token(
            br#"{"access_token":"abc","expires_in":"60"}"#,
            "client",
            now,
        )
        .unwrap();
        assert_eq!(opaque.principal, "client");
        assert_eq!(opaque.expires_at, now + Duration::from_secs(60));

        for (body, expected) in [
            (&b"<html>"[..], "the answer is not JSON"),
            (br#"{"token_type":"Bearer"}"#, "no access_token"),
            (br#"{"access_token":"abc"}"#, "lifetime is unknown"),
            (br#"{"access_token":"a b","expires_in":5}"#, "cannot carry"),
        ] {
            let error = read_token(body, "client", now).unwrap_err();
            assert!(error.contains(expected), "{error}");
        }
    }

    #[test]
    fn an_unsecured_token_is_what_kafkas_unsecured_login_makes() {
        let jwt = UnsecuredJwt {
            principal_claim: "sub".into(),
            claims: [("sub".to_string(), serde_json::json!("alice"))].into(),
            lifetime: Duration::from_secs(3600),
        };
        let token = jwt.make(at(1_700_000_000) + Duration::from_millis(250));
        let (header, rest) = token.expose().split_once('.').unwrap();
        assert_eq!(
            URL_SAFE_NO_PAD.decode(header).unwrap(),
            br#"{"alg":"none"}"#
        );
        assert!(rest.ends_with('.'), "an empty signature: {rest}");
        let claims = jwt_claims(token.expose()).unwrap();
        assert_eq!(claims["sub"], "alice");
        assert_eq!(claims["iat"].as_f64(), Some(1_700_000_000.25));
        assert_eq!(claims["exp"].as_f64(), Some(1_700_003_600.25));
        assert_eq!(token.principal, "alice");
    }

    #[test]
    fn refusals_say_what_to_check() {
        let (code, description) = error_fields(
            br#"{"error":"invalid_client","error_description":"Invalid client credentials"}"#,
        );
        assert_eq!(
            detail(code.as_deref(), description.as_deref()),
            ": invalid_client (Invalid client credentials)"
        );
        assert!(refusal_hint(401, code.as_deref()).contains("client id and secret"));
        assert!(refusal_hint(400, Some("invalid_scope")).contains("sasl.oauthbearer.scope"));
        assert!(refusal_hint(401, None).contains("client id and secret"));
        assert!(refusal_hint(404, None).contains("says why"));
        assert_eq!(form_urlencode("a b:c/ü*"), "a+b%3Ac%2F%C3%BC*");
    }
}
