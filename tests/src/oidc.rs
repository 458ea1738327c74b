//! A small OIDC provider for the OAUTHBEARER tests, over HTTP on loopback, and over HTTPS
//! on further ports ([`Oidc::serve_https`], with a certificate the caller gives):
//!
//! - `POST /token`: the client-credentials grant (RFC 6749 §4.4). The client authenticates
//!   with HTTP Basic; the answer is `{"access_token", "token_type", "expires_in"}` with an
//!   RS256-signed JWT (`iss` this server, `aud` [`AUDIENCE`], `sub` the client id, `iat`,
//!   `nbf`, `exp`, `scope`). A wrong secret or an unknown client gets 401 `invalid_client`.
//! - `GET /jwks`: the public key as a JWK set, for Kafka's `OAuthBearerValidatorCallbackHandler`.
//!
//! Each test registers its own client ([`Oidc::add_client`]) with the lifetime its tokens get,
//! and can have it issue tokens that expired before they were issued (to see the broker refuse
//! them); tokens granted and requests refused are counted per client. The server runs on a
//! thread of its own, so it outlives each test's runtime (the shared broker reads its JWKS).
//! Every port serves the same clients and keys, and every token names the HTTP address as
//! its `iss` (the broker's `sasl.oauthbearer.expected.issuer`), whichever port issued it.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use rsa::pkcs1v15::SigningKey;
use rsa::sha2::Sha256;
use rsa::signature::{SignatureEncoding, Signer};
use rsa::traits::PublicKeyParts;
use rsa::Generate;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::{AsyncRead, AsyncWrite};

/// The `aud` of every token (the broker's `sasl.oauthbearer.expected.audience`).
pub const AUDIENCE: &str = "kafka";
const KEY_ID: &str = "wasmkafka-test-key";

/// What a client's tokens look like, and what it has asked.
#[derive(Debug, Clone)]
struct ClientState {
    secret: String,
    lifetime: Duration,
    /// Issue tokens whose `exp` lies this far in the past.
    expired_by: Option<Duration>,
    granted: usize,
    refused: usize,
    scopes: Vec<String>,
}

struct Shared {
    key: SigningKey<Sha256>,
    jwks: String,
    issuer: String,
    clients: Mutex<HashMap<String, ClientState>>,
    jwks_requests: std::sync::atomic::AtomicUsize,
}

/// The running provider.
pub struct Oidc {
    addr: SocketAddr,
    shared: Arc<Shared>,
}

impl Oidc {
    /// The provider this test binary shares (started on first use).
    pub fn shared() -> &'static Oidc {
        static SHARED: OnceLock<Oidc> = OnceLock::new();
        SHARED.get_or_init(|| Oidc::start().expect("cannot start the OIDC provider"))
    }

    /// Makes a signing key and serves on a free loopback port.
    pub fn start() -> Result<Oidc> {
        let private = rsa::PrivateKey::generate();
        let public = private.to_public_key();
        let jwks = serde_json::json!({
            "keys": [{
                "kty": "RSA",
                "use": "sig",
                "alg": "RS256",
                "kid": KEY_ID,
                "n": URL_SAFE_NO_PAD.encode(public.n_bytes()),
                "e": URL_SAFE_NO_PAD.encode(public.e_bytes()),
            }]
        })
        .to_string();
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            key: SigningKey::new(private),
            jwks,
            issuer: format!("http://{addr}"),
            clients: Mutex::new(HashMap::new()),
            jwks_requests: Default::default(),
        });
        spawn_server(listener, shared.clone(), None)?;
        Ok(Oidc { addr, shared })
    }

    /// Serves the same endpoints over TLS on another free loopback port, with the first
    /// private key and the certificates (leaf first) found in the PEM files; returns
    /// `https://127.0.0.1:PORT` (append `/token`).
    pub fn serve_https(&self, certificates: &Path, key: &Path) -> Result<String> {
        let chain = CertificateDer::pem_file_iter(certificates)
            .with_context(|| format!("cannot read {}", certificates.display()))?
            .collect::<Result<Vec<_>, _>>()
            .with_context(|| format!("cannot read {}", certificates.display()))?;
        let key = PrivateKeyDer::from_pem_file(key)
            .with_context(|| format!("no private key in {}", key.display()))?;
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(chain, key)?;
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        spawn_server(listener, self.shared.clone(), Some(acceptor))?;
        Ok(format!("https://{addr}"))
    }

    /// `http://127.0.0.1:PORT`, the tokens' `iss`.
    pub fn issuer(&self) -> &str {
        &self.shared.issuer
    }

    pub fn token_url(&self) -> String {
        format!("{}/token", self.shared.issuer)
    }

    pub fn jwks_url(&self) -> String {
        format!("{}/jwks", self.shared.issuer)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Registers (or resets) a client whose tokens live `lifetime`.
    pub fn add_client(&self, id: &str, secret: &str, lifetime: Duration) {
        self.clients().insert(
            id.to_string(),
            ClientState {
                secret: secret.to_string(),
                lifetime,
                expired_by: None,
                granted: 0,
                refused: 0,
                scopes: Vec::new(),
            },
        );
    }

    /// From now on, `id`'s tokens have an `exp` `by` in the past (`expires_in` still says
    /// they live their lifetime, as a provider with a wrong clock would).
    pub fn issue_expired(&self, id: &str, by: Duration) {
        if let Some(client) = self.clients().get_mut(id) {
            client.expired_by = Some(by);
        }
    }

    /// Times the JWKS was fetched (by the broker).
    pub fn jwks_requests(&self) -> usize {
        self.shared
            .jwks_requests
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Tokens granted to `id`.
    pub fn granted(&self, id: &str) -> usize {
        self.clients().get(id).map_or(0, |c| c.granted)
    }

    /// Requests for `id` refused (wrong secret).
    pub fn refused(&self, id: &str) -> usize {
        self.clients().get(id).map_or(0, |c| c.refused)
    }

    /// The `scope` of each request `id` made that had one.
    pub fn scopes(&self, id: &str) -> Vec<String> {
        self.clients()
            .get(id)
            .map_or_else(Vec::new, |c| c.scopes.clone())
    }

    fn clients(&self) -> std::sync::MutexGuard<'_, HashMap<String, ClientState>> {
        self.shared.clients.lock().expect("clients lock")
    }
}

/// Serves `listener` on a thread (and runtime) of its own; over TLS with `tls`.
fn spawn_server(
    listener: std::net::TcpListener,
    shared: Arc<Shared>,
    tls: Option<tokio_rustls::TlsAcceptor>,
) -> Result<()> {
    std::thread::Builder::new()
        .name("oidc".into())
        .spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime")
                .block_on(serve(listener, shared, tls))
        })
        .context("cannot start the OIDC thread")?;
    Ok(())
}

async fn serve(
    listener: std::net::TcpListener,
    shared: Arc<Shared>,
    tls: Option<tokio_rustls::TlsAcceptor>,
) {
    let listener = tokio::net::TcpListener::from_std(listener).expect("a tokio listener");
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let shared = shared.clone();
        let tls = tls.clone();
        tokio::spawn(async move {
            match tls {
                // A client that refuses the certificate ends the handshake: nothing to serve.
                Some(tls) => {
                    if let Ok(stream) = tls.accept(stream).await {
                        serve_connection(stream, shared).await;
                    }
                }
                None => serve_connection(stream, shared).await,
            }
        });
    }
}

async fn serve_connection<S>(stream: S, shared: Arc<Shared>)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |request| {
        let shared = shared.clone();
        async move { Ok::<_, std::convert::Infallible>(answer(&shared, request).await) }
    });
    let _ = hyper::server::conn::http1::Builder::new()
        .serve_connection(TokioIo::new(stream), service)
        .await;
}

fn json(status: StatusCode, body: serde_json::Value) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body.to_string())))
        .expect("a response")
}

async fn answer(shared: &Shared, request: Request<Incoming>) -> Response<Full<Bytes>> {
    match (request.method().as_str(), request.uri().path()) {
        ("GET", "/jwks") => {
            shared
                .jwks_requests
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            Response::builder()
                .header("content-type", "application/json")
                .body(Full::new(Bytes::from(shared.jwks.clone())))
                .expect("a response")
        }
        ("POST", "/token") => token(shared, request).await,
        _ => json(
            StatusCode::NOT_FOUND,
            serde_json::json!({"error": "not_found"}),
        ),
    }
}

async fn token(shared: &Shared, request: Request<Incoming>) -> Response<Full<Bytes>> {
    let credentials = request
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|v| STANDARD.decode(v).ok())
        .and_then(|v| String::from_utf8(v).ok())
        .and_then(|v| {
            v.split_once(':')
                .map(|(i, s)| (i.to_string(), s.to_string()))
        });
    let body = match request.into_body().collect().await {
        Ok(body) => body.to_bytes(),
        Err(_) => Bytes::new(),
    };
    let form = form_decode(&String::from_utf8_lossy(&body));
    let field = |name: &str| {
        form.iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.clone())
    };
    if field("grant_type").as_deref() != Some("client_credentials") {
        return json(
            StatusCode::BAD_REQUEST,
            serde_json::json!({"error": "unsupported_grant_type"}),
        );
    }
    let Some((id, secret)) = credentials else {
        return json(
            StatusCode::UNAUTHORIZED,
            serde_json::json!({"error": "invalid_client", "error_description": "no client authentication"}),
        );
    };
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after 1970");
    let (lifetime, expired_by, scope) = {
        let mut clients = shared.clients.lock().expect("clients lock");
        match clients.get_mut(&id) {
            Some(client) if client.secret == secret => {
                client.granted += 1;
                let scope = field("scope");
                client.scopes.extend(scope.clone());
                (client.lifetime, client.expired_by, scope)
            }
            found => {
                if let Some(client) = found {
                    client.refused += 1;
                }
                return json(
                    StatusCode::UNAUTHORIZED,
                    serde_json::json!({"error": "invalid_client", "error_description": "Invalid client or Invalid client credentials"}),
                );
            }
        }
    };
    let (issued, expires) = match expired_by {
        Some(by) => (now - lifetime - by, now - by),
        None => (now, now + lifetime),
    };
    let header = serde_json::json!({"alg": "RS256", "typ": "JWT", "kid": KEY_ID});
    let mut claims = serde_json::json!({
        "iss": shared.issuer,
        "aud": AUDIENCE,
        "sub": id,
        "iat": issued.as_secs(),
        "nbf": issued.as_secs(),
        "exp": expires.as_secs(),
        "jti": format!("{}-{}", id, now.as_nanos()),
    });
    if let Some(scope) = &scope {
        claims["scope"] = scope.clone().into();
    }
    let signed = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let signature = shared.key.sign(signed.as_bytes()).to_bytes();
    let jwt = format!("{signed}.{}", URL_SAFE_NO_PAD.encode(signature));
    json(
        StatusCode::OK,
        serde_json::json!({
            "access_token": jwt,
            "token_type": "Bearer",
            "expires_in": lifetime.as_secs(),
        }),
    )
}

/// `application/x-www-form-urlencoded` pairs.
fn form_decode(body: &str) -> Vec<(String, String)> {
    let decode = |text: &str| {
        let bytes = text.as_bytes();
        let mut out = Vec::with_capacity(bytes.len());
        let mut i = 0;
        while i < bytes.len() {
            match bytes[i] {
                b'+' => out.push(b' '),
                b'%' if i + 2 < bytes.len() => {
                    let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
                    match u8::from_str_radix(hex, 16) {
                        Ok(byte) => {
                            out.push(byte);
                            i += 2;
                        }
                        Err(_) => out.push(b'%'),
                    }
                }
                other => out.push(other),
            }
            i += 1;
        }
        String::from_utf8_lossy(&out).into_owned()
    };
    body.split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| match pair.split_once('=') {
            Some((key, value)) => (decode(key), decode(value)),
            None => (decode(pair), String::new()),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_bodies_decode() {
        assert_eq!(
            form_decode("grant_type=client_credentials&scope=kafka+read%3Aall"),
            [
                ("grant_type".to_string(), "client_credentials".to_string()),
                ("scope".to_string(), "kafka read:all".to_string()),
            ]
        );
    }
}
