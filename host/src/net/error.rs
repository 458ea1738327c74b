//! Typed errors of the wire client, below everything that produces them (frames, transport,
//! connections). They are `Clone` because one connection failure is handed to every request
//! that was in flight on that connection.

use std::time::Duration;

use super::oauth::TokenError;

/// Something went wrong talking to a broker.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum NetError {
    /// The TCP connect, the TLS handshake, or the ApiVersions or SASL exchange that follows
    /// failed; `cause` says which and why.
    #[error("cannot connect to broker {broker} at {addr} (is the broker running and is the address right?)")]
    Connect {
        broker: i32,
        addr: String,
        #[source]
        cause: ConnectCause,
    },
    /// TLS failed in a way retrying does not fix: an untrusted or mismatched certificate, an
    /// alert from the broker.
    #[error("TLS with the broker at {addr} failed: {reason}")]
    Tls { addr: String, reason: String },
    /// The broker refused the SASL credentials or mechanism.
    #[error("SASL {mechanism} authentication as `{username}` failed at {addr}: {reason}. Check the user and password (security.sasl_username / security.sasl_password, or sasl.username / sasl.password) and that the broker has this user for {mechanism}")]
    Authentication {
        addr: String,
        mechanism: String,
        username: String,
        reason: String,
    },
    /// The broker refused the OAUTHBEARER token, or does not offer the mechanism.
    #[error("SASL OAUTHBEARER authentication as `{principal}` failed at {addr}: {reason}")]
    OAuthBearer {
        addr: String,
        /// The token's principal (its `sub`), or the client id.
        principal: String,
        reason: String,
    },
    /// OAUTHBEARER has no token to send: the token endpoint failed (boxed: it is the largest
    /// variant).
    #[error("no OAUTHBEARER token for the broker at {addr}: {error}")]
    OAuthToken {
        addr: String,
        error: Box<TokenError>,
    },
    /// The pool has no address for this broker id.
    #[error("no address known for broker {0}: refresh the cluster metadata")]
    UnknownBroker(i32),
    /// No answer within the request timeout; the connection was closed.
    #[error("{api} request (correlation id {correlation_id}) to {addr} got no answer within {timeout:?}; the connection was closed")]
    RequestTimeout {
        addr: String,
        api: String,
        correlation_id: i32,
        timeout: Duration,
    },
    /// The connection is gone; the request may or may not have reached the broker.
    #[error("connection to {addr} closed: {reason}")]
    Closed { addr: String, reason: CloseReason },
    /// The broker does not speak any version of this API that the client speaks.
    #[error("broker at {addr} does not support {api} in a version this client speaks (client {client_min}..{client_max}, broker {broker_range})")]
    UnsupportedVersion {
        addr: String,
        api: String,
        client_min: i16,
        client_max: i16,
        broker_range: String,
    },
    /// The request could not be encoded (a bug or an invalid field for the chosen version).
    #[error("cannot encode {api} v{version} request: {reason}")]
    Encode {
        api: String,
        version: i16,
        reason: String,
    },
    /// The response frame could not be decoded as the expected message.
    #[error("cannot decode {api} v{version} response from {addr}: {reason}")]
    Decode {
        addr: String,
        api: String,
        version: i16,
        reason: String,
    },
}

/// Why a connection could not be opened: the source of [`NetError::Connect`].
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum ConnectCause {
    /// Resolving the address or the TCP connect failed.
    #[error("TCP connect failed")]
    Tcp(#[source] IoFailure),
    /// The TCP connect and the TLS handshake did not finish within the connect timeout.
    #[error("no answer within {0:?}")]
    TimedOut(Duration),
    /// The TLS handshake broke off (not a certificate or an alert: those are
    /// [`NetError::Tls`]).
    #[error("the TLS handshake broke off{}", if *.listener_not_tls { " (the broker closed the connection during the TLS handshake: is this listener SSL or SASL_SSL?)" } else { "" })]
    TlsHandshake {
        #[source]
        error: IoFailure,
        /// The peer closed the connection in the handshake: often a listener without TLS.
        listener_not_tls: bool,
    },
    /// The first request on the new connection failed.
    #[error("the ApiVersions handshake failed")]
    ApiVersions(#[source] Box<NetError>),
    /// The SASL exchange failed for a reason other than the credentials (a dropped
    /// connection, a timeout).
    #[error("the SASL exchange failed")]
    Sasl(#[source] Box<NetError>),
}

pub use crate::error_chain::IoFailure;

/// Why a connection was closed. Every reason that comes from the peer is a typed variant, so
/// the pool and the tests can tell a garbage frame from a timeout or a clean shutdown.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum CloseReason {
    #[error("the broker closed the connection")]
    PeerClosed,
    #[error(
        "the broker closed the connection in the middle of a response ({read} of {expected} bytes)"
    )]
    Truncated { read: usize, expected: usize },
    #[error("the broker sent a frame of {claimed} bytes, over the {limit}-byte limit (net.max_frame_bytes)")]
    FrameTooLarge { claimed: usize, limit: usize },
    #[error("the broker sent an invalid frame: {0}")]
    InvalidFrame(String),
    #[error("the broker answered correlation id {got} but {expected} was next in line")]
    CorrelationMismatch { expected: i32, got: i32 },
    #[error("the broker sent a response (correlation id {0}) to no outstanding request")]
    UnexpectedResponse(i32),
    #[error("a request timed out")]
    RequestTimedOut,
    #[error("idle for longer than net.idle_timeout_ms")]
    Idle,
    #[error("closed by the client")]
    ClosedByClient,
    #[error("TLS: {0}")]
    Tls(String),
    #[error("I/O error")]
    Io(#[source] IoFailure),
}

impl From<FrameError> for CloseReason {
    fn from(error: FrameError) -> Self {
        match error {
            FrameError::Eof => CloseReason::PeerClosed,
            FrameError::Truncated { read, expected } => CloseReason::Truncated { read, expected },
            FrameError::NegativeSize(size) => {
                CloseReason::InvalidFrame(format!("negative size prefix {size}"))
            }
            FrameError::TooLarge { claimed, limit } => {
                CloseReason::FrameTooLarge { claimed, limit }
            }
            FrameError::Tls(message) => CloseReason::Tls(message),
            FrameError::Io(message) => CloseReason::Io(message),
        }
    }
}

impl NetError {
    /// A failed connect to `broker` at `addr`, for `cause`.
    pub fn connect(broker: i32, addr: &str, cause: ConnectCause) -> NetError {
        NetError::Connect {
            broker,
            addr: addr.to_string(),
            cause,
        }
    }

    /// True for failures that no retry heals (credentials, certificates): they go to the user
    /// instead of into a retry loop.
    pub fn is_fatal(&self) -> bool {
        match self {
            NetError::Tls { .. }
            | NetError::Authentication { .. }
            | NetError::OAuthBearer { .. } => true,
            NetError::OAuthToken { error, .. } => error.is_fatal(),
            _ => false,
        }
    }

    /// True when the failure is not the broker's: every broker would fail the same way (the
    /// token endpoint), so asking another one does not help.
    pub fn is_local(&self) -> bool {
        matches!(self, NetError::OAuthToken { .. })
    }

    /// True when the failure says nothing about the request itself and a retry on a new
    /// connection may succeed.
    pub fn is_retriable(&self) -> bool {
        matches!(
            self,
            NetError::Connect { .. } | NetError::RequestTimeout { .. } | NetError::Closed { .. }
        )
    }
}

/// Why a frame could not be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FrameError {
    /// The peer closed the stream cleanly between frames.
    #[error("the peer closed the connection")]
    Eof,
    /// The stream ended inside a frame (after `read` of `expected` bytes).
    #[error("the connection closed mid-frame after {read} of {expected} bytes")]
    Truncated { read: usize, expected: usize },
    /// The size prefix is negative.
    #[error("invalid frame size prefix {0}")]
    NegativeSize(i32),
    /// The size prefix is larger than the configured limit.
    #[error("frame of {claimed} bytes is over the {limit}-byte limit")]
    TooLarge { claimed: usize, limit: usize },
    /// TLS failed on an established connection (an alert from the broker, such as one
    /// refusing the client certificate after a TLS 1.3 handshake).
    #[error("TLS: {0}")]
    Tls(String),
    /// Any other I/O failure.
    #[error("I/O error")]
    Io(#[source] IoFailure),
}

/// A rustls error in words, with what to do about it.
pub fn describe_tls_error(error: &rustls::Error) -> String {
    use rustls::CertificateError;
    match error {
        rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer) => {
            "the broker's certificate is not signed by a trusted CA (UnknownIssuer): name the \
             CA that signed it with security.ca_file / ssl.ca.location"
                .into()
        }
        rustls::Error::InvalidCertificate(
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
        ) => format!(
            "the broker's certificate does not name the host connected to ({error}): connect \
             by a name it carries, or turn the check off with security.verify_hostname = false \
             (ssl.endpoint.identification.algorithm=)"
        ),
        rustls::Error::InvalidCertificate(
            CertificateError::Expired | CertificateError::ExpiredContext { .. },
        ) => format!("the broker's certificate has expired ({error})"),
        rustls::Error::AlertReceived(alert) => format!(
            "the broker refused the handshake with alert {alert:?} (a broker that requires a \
             client certificate answers this way when none or an untrusted one is sent: see \
             security.cert_file / ssl.certificate.location)"
        ),
        other => other.to_string(),
    }
}
