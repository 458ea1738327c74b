//! SASL authentication of a new connection (KIP-43, KIP-152, KIP-368): SaslHandshake v1
//! names the mechanism, then SaslAuthenticate carries the mechanism's messages until it is
//! done. PLAIN and SCRAM-SHA-256/512 (with the server's signature checked) come from `rsasl`;
//! OAUTHBEARER (RFC 7628, KIP-255) is one message built here around a token from
//! [`TokenSource`].
//!
//! Runs right after ApiVersions, before any other request: until it succeeds, Kafka answers
//! nothing else on the connection.

use std::collections::BTreeMap;
use std::future::Future;
use std::io::Cursor;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use kafka_protocol::messages::{
    SaslAuthenticateRequest, SaslAuthenticateResponse, SaslHandshakeRequest, SaslHandshakeResponse,
};
use kafka_protocol::protocol::StrBytes;
use rsasl::prelude::{Mechname, SASLClient, SASLConfig};

use super::error::NetError;
use super::oauth::{Token, TokenSource};
use super::security::{Sasl, SaslCredentials, SaslMechanism};

/// What the exchange needs of a connection: its address (for messages) and the two SASL
/// requests. The connection implements it; this module does not import the connection.
pub trait SaslPeer {
    fn addr(&self) -> &str;
    /// SaslHandshake, at version 1 (the mechanism's messages then travel in
    /// SaslAuthenticate).
    fn handshake(
        &self,
        request: SaslHandshakeRequest,
    ) -> impl Future<Output = Result<SaslHandshakeResponse, NetError>> + Send;
    fn authenticate(
        &self,
        request: SaslAuthenticateRequest,
    ) -> impl Future<Output = Result<SaslAuthenticateResponse, NetError>> + Send;
}

const UNSUPPORTED_SASL_MECHANISM: i16 = 33;

/// Authenticates `connection`. Returns the session lifetime the broker gave
/// (`connections.max.reauth.ms`, capped for OAUTHBEARER at the token's remaining life), after
/// which it expects the client to authenticate again.
pub async fn authenticate(
    connection: &impl SaslPeer,
    sasl: &Sasl,
) -> Result<Option<Duration>, NetError> {
    match sasl {
        Sasl::Password(credentials) => authenticate_password(connection, credentials).await,
        Sasl::OAuthBearer(source) => authenticate_oauthbearer(connection, source).await,
    }
}

/// SaslHandshake v1 for `mechanism`; the reason when the broker does not take it.
async fn handshake(
    connection: &impl SaslPeer,
    mechanism: SaslMechanism,
) -> Result<Result<(), String>, NetError> {
    let handshake =
        SaslHandshakeRequest::default().with_mechanism(StrBytes::from_static_str(mechanism.name()));
    let answer = connection.handshake(handshake).await?;
    if answer.error_code == UNSUPPORTED_SASL_MECHANISM {
        let enabled: Vec<&str> = answer.mechanisms.iter().map(|m| m.as_str()).collect();
        return Ok(Err(format!(
            "the broker does not offer {mechanism} on this listener; it offers {}. Set \
             security.sasl_mechanism (sasl.mechanism) to one of them",
            if enabled.is_empty() {
                "none".to_string()
            } else {
                enabled.join(", ")
            }
        )));
    }
    if answer.error_code != 0 {
        return Ok(Err(format!(
            "SaslHandshake answered {} (is this listener SASL_PLAINTEXT or SASL_SSL?)",
            error_name(answer.error_code)
        )));
    }
    Ok(Ok(()))
}

async fn authenticate_password(
    connection: &impl SaslPeer,
    credentials: &SaslCredentials,
) -> Result<Option<Duration>, NetError> {
    let mechanism = credentials.mechanism;
    let failed = |reason: String| NetError::Authentication {
        addr: connection.addr().to_string(),
        mechanism: mechanism.name().to_string(),
        username: credentials.username.clone(),
        reason,
    };
    handshake(connection, mechanism).await?.map_err(failed)?;

    let config = SASLConfig::with_credentials(
        None,
        credentials.username.clone(),
        credentials.password.expose().to_string(),
    )
    .map_err(|e| failed(e.to_string()))?;
    let name = Mechname::parse(mechanism.name().as_bytes()).map_err(|e| failed(e.to_string()))?;
    let mut session = SASLClient::new(config)
        .start_suggested(&[name])
        .map_err(|e| failed(e.to_string()))?;

    // Client-first mechanisms: the first step has no input. Each message goes out in a
    // SaslAuthenticate; its answer is the next step's input. The exchange ends when a step
    // sends nothing more (SCRAM: after checking the server's final message).
    let mut input: Option<Bytes> = None;
    let mut lifetime = None;
    loop {
        let mut output = Cursor::new(Vec::new());
        let state = session
            .step(input.as_deref(), &mut output)
            .map_err(|e| failed(format!("the exchange failed on our side: {e}")))?;
        if state.has_sent_message() {
            let request = SaslAuthenticateRequest::default()
                .with_auth_bytes(Bytes::from(output.into_inner()));
            let answer = connection.authenticate(request).await?;
            if answer.error_code != 0 {
                return Err(failed(broker_reason(&answer)));
            }
            if let Some(given) = session_lifetime(&answer) {
                lifetime = Some(given);
            }
            input = Some(answer.auth_bytes);
        }
        if state.is_finished() {
            // A mechanism that finished while sending its last message expects nothing back;
            // one that finished on the server's message sent nothing.
            break;
        }
    }
    tracing::debug!(addr = connection.addr(), %mechanism, user = %credentials.username, ?lifetime, "authenticated");
    Ok(lifetime)
}

/// OAUTHBEARER: the client's one message carries the token (and any extensions). The broker
/// answers success with empty bytes, or a JSON error (RFC 7628 §3.2.2) that the client
/// acknowledges with a single %x01 before the broker fails the exchange.
async fn authenticate_oauthbearer(
    connection: &impl SaslPeer,
    source: &TokenSource,
) -> Result<Option<Duration>, NetError> {
    let addr = connection.addr().to_string();
    let failed = |principal: String, reason: String| NetError::OAuthBearer {
        addr: addr.clone(),
        principal,
        reason,
    };
    handshake(connection, SaslMechanism::OAuthBearer)
        .await?
        .map_err(|reason| failed(source.who(), reason))?;
    let token = source.token().await.map_err(|error| NetError::OAuthToken {
        addr: addr.clone(),
        error: Box::new(error),
    })?;
    let message = initial_response(&token, &source.config().extensions);
    let answer = connection
        .authenticate(SaslAuthenticateRequest::default().with_auth_bytes(message))
        .await?;
    if answer.error_code != 0 {
        source.forget(&token);
        return Err(failed(
            token.principal.clone(),
            refusal(&broker_reason(&answer), &token),
        ));
    }
    if !answer.auth_bytes.is_empty() {
        let server_error = String::from_utf8_lossy(&answer.auth_bytes).into_owned();
        let acknowledged = connection
            .authenticate(
                SaslAuthenticateRequest::default().with_auth_bytes(Bytes::from_static(&[0x01])),
            )
            .await?;
        let reason = if acknowledged.error_code != 0 {
            broker_reason(&acknowledged)
        } else {
            server_error
        };
        source.forget(&token);
        return Err(failed(token.principal.clone(), refusal(&reason, &token)));
    }
    let lifetime = session_lifetime(&answer);
    tracing::debug!(%addr, principal = %token.principal, ?lifetime, "authenticated with OAUTHBEARER");
    Ok(lifetime)
}

/// The client's initial response (RFC 7628 §3.1, as Kafka's
/// `OAuthBearerClientInitialResponse` writes it): `n,,` then `auth=Bearer <token>` and each
/// extension `key=value`, every one followed by %x01, and a final %x01.
pub fn initial_response(token: &Token, extensions: &BTreeMap<String, String>) -> Bytes {
    let mut message = format!("n,,\u{1}auth=Bearer {}", token.expose());
    for (key, value) in extensions {
        message.push('\u{1}');
        message.push_str(key);
        message.push('=');
        message.push_str(value);
    }
    message.push_str("\u{1}\u{1}");
    Bytes::from(message)
}

/// The broker's refusal of a token, with what is known of the token and where to look.
fn refusal(broker_says: &str, token: &Token) -> String {
    let expiry = match token.expires_at.duration_since(SystemTime::now()) {
        Err(past) => format!(
            "; the token expired {} s ago, by its exp claim (compare the clocks of this host, \
             the broker and the identity provider, and the lifetime the provider gives tokens)",
            past.duration().as_secs()
        ),
        Ok(_) => String::new(),
    };
    format!(
        "the broker refused the token: {broker_says}{expiry}. The broker's log names the \
         cause: an expired token, a signing key missing from the broker's \
         sasl.oauthbearer.jwks.endpoint.url, or an audience or issuer other than its \
         sasl.oauthbearer.expected.audience / expected.issuer"
    )
}

fn broker_reason(answer: &SaslAuthenticateResponse) -> String {
    answer
        .error_message
        .as_ref()
        .map(|m| m.to_string())
        .unwrap_or_else(|| error_name(answer.error_code))
}

fn session_lifetime(answer: &SaslAuthenticateResponse) -> Option<Duration> {
    (answer.session_lifetime_ms > 0)
        .then(|| Duration::from_millis(answer.session_lifetime_ms as u64))
}

fn error_name(code: i16) -> String {
    match kafka_protocol::error::ResponseError::try_from_code(code) {
        Some(error) => format!("{error:?} ({code})"),
        None => format!("error code {code}"),
    }
}
