//! The byte stream under a connection: TCP, wrapped in TLS when the security protocol says so,
//! split into the halves the reader and writer tasks own.

use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

use super::error::{describe_tls_error, ConnectCause, NetError};
use super::security::Security;

pub type ReadHalf = Box<dyn AsyncRead + Send + Unpin>;
pub type WriteHalf = Box<dyn AsyncWrite + Send + Unpin>;

/// Opens the stream to `addr` (`host:port`) within `timeout`: the TCP connect and, with TLS,
/// the handshake. A certificate the client does not trust, or a TLS alert from the broker, is
/// [`NetError::Tls`] (it does not heal by retrying); anything else is [`NetError::Connect`].
pub async fn open(
    broker: i32,
    addr: &str,
    security: &Security,
    timeout: Duration,
) -> Result<(ReadHalf, WriteHalf), NetError> {
    let connect_error = |cause: ConnectCause| NetError::connect(broker, addr, cause);
    let opened = tokio::time::timeout(timeout, async {
        let stream = TcpStream::connect(addr)
            .await
            .map_err(|e| connect_error(ConnectCause::Tcp(e.into())))?;
        let _ = stream.set_nodelay(true);
        let Some(tls) = &security.tls else {
            let (read, write) = stream.into_split();
            return Ok((Box::new(read) as ReadHalf, Box::new(write) as WriteHalf));
        };
        let server_name = server_name(addr).map_err(|reason| NetError::Tls {
            addr: addr.to_string(),
            reason,
        })?;
        let stream = tls
            .connector()
            .connect(server_name, stream)
            .await
            .map_err(|error| handshake_error(broker, addr, error))?;
        let (read, write) = tokio::io::split(stream);
        Ok((Box::new(read) as ReadHalf, Box::new(write) as WriteHalf))
    })
    .await;
    opened.unwrap_or_else(|_| Err(connect_error(ConnectCause::TimedOut(timeout))))
}

/// The name the broker's certificate must carry: the host part of `addr` (an IP address is
/// checked against the certificate's IP addresses).
fn server_name(addr: &str) -> Result<rustls::pki_types::ServerName<'static>, String> {
    let host = addr.rsplit_once(':').map_or(addr, |(host, _)| host);
    let host = host.trim_start_matches('[').trim_end_matches(']');
    rustls::pki_types::ServerName::try_from(host.to_string())
        .map_err(|e| format!("`{host}` is not a valid TLS server name: {e}"))
}

/// A rustls error (untrusted or mismatched certificate, an alert) is final; an I/O error during
/// the handshake (the peer went away) may heal. A peer that closes during the handshake is
/// often a listener that does not speak TLS: say so.
fn handshake_error(broker: i32, addr: &str, error: std::io::Error) -> NetError {
    if let Some(tls) = error
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
    {
        return NetError::Tls {
            addr: addr.to_string(),
            reason: describe_tls_error(tls),
        };
    }
    let listener_not_tls = error.kind() == std::io::ErrorKind::UnexpectedEof;
    let cause = ConnectCause::TlsHandshake {
        error: error.into(),
        listener_not_tls,
    };
    NetError::connect(broker, addr, cause)
}
