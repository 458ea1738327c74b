//! The wire client: framing, connections, version negotiation and the per-(broker, purpose)
//! connection pool.

pub mod backoff;
pub mod connection;
pub mod error;
pub mod frame;
pub mod keystore;
pub mod oauth;
pub mod pool;
pub mod sasl;
pub mod secret;
pub mod security;
pub mod transport;
pub mod versions;

pub use backoff::Backoff;
pub use connection::{Connection, ConnectionOptions, SendOptions};
pub use error::{CloseReason, ConnectCause, IoFailure, NetError};
pub use oauth::{OAuthBearerConfig, TokenError, TokenSource};
pub use pool::{ConnKey, Pool, PoolOptions, PoolStats, Purpose};
pub use security::{
    Sasl, SaslCredentials, SaslMechanism, Secret, Security, SecurityProtocol, Tls, TlsFiles,
    TlsSetupError,
};
pub use versions::BrokerCompat;
