//! SASL authentication of a new connection (KIP-43, KIP-152, KIP-368): SaslHandshake v1
//! names the mechanism, then SaslAuthenticate carries the mechanism's messages until it is
//! done. The mechanisms themselves (PLAIN, SCRAM-SHA-256/512 with the server's signature
//! checked) come from `rsasl`.
//!
//! Runs right after ApiVersions, before any other request: until it succeeds, Kafka answers
//! nothing else on the connection.

use std::io::Cursor;
use std::time::Duration;

use std::future::Future;

use bytes::Bytes;
use kafka_protocol::messages::{
    SaslAuthenticateRequest, SaslAuthenticateResponse, SaslHandshakeRequest, SaslHandshakeResponse,
};
use kafka_protocol::protocol::StrBytes;
use rsasl::prelude::{Mechname, SASLClient, SASLConfig};

use super::error::NetError;
use super::security::SaslCredentials;

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
/// (`connections.max.reauth.ms`), after which it expects the client to authenticate again.
pub async fn authenticate(
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

    let handshake =
        SaslHandshakeRequest::default().with_mechanism(StrBytes::from_static_str(mechanism.name()));
    let answer = connection.handshake(handshake).await?;
    if answer.error_code == UNSUPPORTED_SASL_MECHANISM {
        let enabled: Vec<&str> = answer.mechanisms.iter().map(|m| m.as_str()).collect();
        return Err(failed(format!(
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
        return Err(failed(format!(
            "SaslHandshake answered {} (is this listener SASL_PLAINTEXT or SASL_SSL?)",
            error_name(answer.error_code)
        )));
    }

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
                let reason = answer
                    .error_message
                    .as_ref()
                    .map(|m| m.to_string())
                    .unwrap_or_else(|| error_name(answer.error_code));
                return Err(failed(reason));
            }
            if answer.session_lifetime_ms > 0 {
                lifetime = Some(Duration::from_millis(answer.session_lifetime_ms as u64));
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

fn error_name(code: i16) -> String {
    match kafka_protocol::error::ResponseError::try_from_code(code) {
        Some(error) => format!("{error:?} ({code})"),
        None => format!("error code {code}"),
    }
}
