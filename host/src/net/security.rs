//! How connections are secured: TLS (rustls) and SASL credentials, as one [`Security`] value
//! built once from the config and shared by every connection of the pool.
//!
//! Invariants:
//! - Certificates and keys are read and checked when the value is built (at start-up), so a
//!   missing or unreadable file is a config error, never a failure on the first connect.
//! - A password never appears in `Debug` output or logs: it is a [`Secret`].

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, RootCertStore, SignatureScheme};

use super::keystore;
use super::oauth::TokenSource;
pub use super::secret::{Secret, TlsSetupError};

/// Kafka's `security.protocol`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum SecurityProtocol {
    #[default]
    Plaintext,
    Ssl,
    SaslPlaintext,
    SaslSsl,
}

impl SecurityProtocol {
    pub const NAMES: &'static str = "PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL";

    /// Parses Kafka's name, in any case.
    pub fn from_name(name: &str) -> Option<SecurityProtocol> {
        Some(match name.to_ascii_uppercase().as_str() {
            "PLAINTEXT" => SecurityProtocol::Plaintext,
            "SSL" => SecurityProtocol::Ssl,
            "SASL_PLAINTEXT" => SecurityProtocol::SaslPlaintext,
            "SASL_SSL" => SecurityProtocol::SaslSsl,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            SecurityProtocol::Plaintext => "PLAINTEXT",
            SecurityProtocol::Ssl => "SSL",
            SecurityProtocol::SaslPlaintext => "SASL_PLAINTEXT",
            SecurityProtocol::SaslSsl => "SASL_SSL",
        }
    }

    pub fn uses_tls(self) -> bool {
        matches!(self, SecurityProtocol::Ssl | SecurityProtocol::SaslSsl)
    }

    pub fn uses_sasl(self) -> bool {
        matches!(
            self,
            SecurityProtocol::SaslPlaintext | SecurityProtocol::SaslSsl
        )
    }
}

/// The SASL mechanisms this client speaks (Kafka's `sasl.mechanism`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SaslMechanism {
    Plain,
    ScramSha256,
    ScramSha512,
    /// A bearer token (RFC 7628, KIP-255) from [`TokenSource`].
    OAuthBearer,
}

impl SaslMechanism {
    pub const NAMES: &'static str = "PLAIN, SCRAM-SHA-256, SCRAM-SHA-512 or OAUTHBEARER";

    pub fn from_name(name: &str) -> Option<SaslMechanism> {
        Some(match name.to_ascii_uppercase().as_str() {
            "PLAIN" => SaslMechanism::Plain,
            "SCRAM-SHA-256" => SaslMechanism::ScramSha256,
            "SCRAM-SHA-512" => SaslMechanism::ScramSha512,
            "OAUTHBEARER" => SaslMechanism::OAuthBearer,
            _ => return None,
        })
    }

    /// The name on the wire (SaslHandshake) and in Kafka's configs.
    pub fn name(self) -> &'static str {
        match self {
            SaslMechanism::Plain => "PLAIN",
            SaslMechanism::ScramSha256 => "SCRAM-SHA-256",
            SaslMechanism::ScramSha512 => "SCRAM-SHA-512",
            SaslMechanism::OAuthBearer => "OAUTHBEARER",
        }
    }
}

impl std::fmt::Display for SaslMechanism {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// How every connection authenticates with SASL.
#[derive(Debug, Clone)]
pub enum Sasl {
    /// PLAIN or SCRAM: a user and a password.
    Password(SaslCredentials),
    /// OAUTHBEARER: tokens from one source shared by every connection.
    OAuthBearer(TokenSource),
}

impl Sasl {
    pub fn mechanism(&self) -> SaslMechanism {
        match self {
            Sasl::Password(credentials) => credentials.mechanism,
            Sasl::OAuthBearer(_) => SaslMechanism::OAuthBearer,
        }
    }
}

/// A user and password for PLAIN or SCRAM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SaslCredentials {
    pub mechanism: SaslMechanism,
    pub username: String,
    pub password: Secret,
}

/// A PKCS#12 file and the password that opens it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pkcs12File {
    pub path: PathBuf,
    pub password: Option<Secret>,
}

/// Where TLS trust and identity come from: PEM files or PKCS#12 stores.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsFiles {
    /// CA certificates to trust (PEM); the system's trust store when neither this nor
    /// `truststore` is set.
    pub ca_file: Option<PathBuf>,
    /// CA certificates to trust, from a PKCS#12 truststore.
    pub truststore: Option<Pkcs12File>,
    /// Client certificate chain (for brokers that require client authentication).
    pub cert_file: Option<PathBuf>,
    /// The client certificate's private key (PKCS#8, PKCS#1 or SEC1; PKCS#8 may be encrypted
    /// with `key_password`).
    pub key_file: Option<PathBuf>,
    /// The client certificate and key from a PKCS#12 keystore (instead of the two files).
    pub keystore: Option<Pkcs12File>,
    /// The private key's password (an encrypted PEM key; a keystore's key, which defaults to
    /// the keystore's password).
    pub key_password: Option<Secret>,
    /// Check that the broker's certificate names the host connected to (Kafka's
    /// `ssl.endpoint.identification.algorithm=https`, the default).
    pub verify_hostname: bool,
}

/// TLS, ready to wrap connections: the rustls client config built from [`TlsFiles`].
#[derive(Clone)]
pub struct Tls {
    connector: tokio_rustls::TlsConnector,
    files: TlsFiles,
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tls").field("files", &self.files).finish()
    }
}

impl Tls {
    /// Reads the CA, certificate and key files and builds the client config.
    pub fn new(files: TlsFiles) -> Result<Tls, TlsSetupError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let roots = Arc::new(match (&files.ca_file, &files.truststore) {
            (Some(path), _) => roots_from_file(path)?,
            (None, Some(store)) => roots_from_truststore(store)?,
            (None, None) => system_roots()?,
        });
        let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| setup_error("TLS protocol versions", e))?;
        let builder = if files.verify_hostname {
            builder.with_root_certificates(roots)
        } else {
            let verifier = WebPkiServerVerifier::builder_with_provider(roots, provider)
                .build()
                .map_err(|e| setup_error("the CA certificates", e))?;
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AnyHostname(verifier)))
        };
        let identity = match (&files.keystore, &files.cert_file, &files.key_file) {
            (Some(store), None, None) => Some(keystore::read_keystore(
                &store.path,
                store.password.as_ref(),
                files.key_password.as_ref(),
            )?),
            (None, Some(cert), Some(key)) => Some(keystore::Identity {
                chain: certificates(cert)?,
                key: keystore::read_pem_key(key, files.key_password.as_ref())?,
            }),
            (None, None, None) => None,
            (Some(_), _, _) => {
                return Err(TlsSetupError {
                    what: "the client certificate".into(),
                    reason: "set a keystore or a certificate file and a key file, not both".into(),
                })
            }
            _ => {
                return Err(TlsSetupError {
                    what: "the client certificate".into(),
                    reason: "set both the certificate file and the key file, or neither".into(),
                })
            }
        };
        let config = match identity {
            Some(identity) => builder
                .with_client_auth_cert(identity.chain, identity.key)
                .map_err(|e| setup_error("the client certificate and key", e))?,
            None => builder.with_no_client_auth(),
        };
        Ok(Tls {
            connector: tokio_rustls::TlsConnector::from(Arc::new(config)),
            files,
        })
    }

    pub fn connector(&self) -> &tokio_rustls::TlsConnector {
        &self.connector
    }

    pub fn files(&self) -> &TlsFiles {
        &self.files
    }
}

fn setup_error(what: &str, error: impl std::fmt::Display) -> TlsSetupError {
    TlsSetupError {
        what: what.to_string(),
        reason: error.to_string(),
    }
}

fn certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsSetupError> {
    let what = || format!("the certificate file {}", path.display());
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| TlsSetupError {
            what: what(),
            reason: e.to_string(),
        })?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsSetupError {
            what: what(),
            reason: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(TlsSetupError {
            what: what(),
            reason: "no PEM certificate (-----BEGIN CERTIFICATE-----) in it; a PKCS#12 store \
                     (.p12, .pfx) is read from security.truststore_file or \
                     security.keystore_file, a JKS one must be converted to PKCS#12 first"
                .into(),
        });
    }
    Ok(certs)
}

fn roots_from_file(path: &Path) -> Result<RootCertStore, TlsSetupError> {
    let mut roots = RootCertStore::empty();
    for cert in certificates(path)? {
        roots.add(cert).map_err(|e| TlsSetupError {
            what: format!("the CA file {}", path.display()),
            reason: e.to_string(),
        })?;
    }
    Ok(roots)
}

fn roots_from_truststore(store: &Pkcs12File) -> Result<RootCertStore, TlsSetupError> {
    let mut roots = RootCertStore::empty();
    for cert in keystore::read_truststore(&store.path, store.password.as_ref())? {
        roots.add(cert).map_err(|e| TlsSetupError {
            what: format!("the truststore {}", store.path.display()),
            reason: e.to_string(),
        })?;
    }
    Ok(roots)
}

fn system_roots() -> Result<RootCertStore, TlsSetupError> {
    let found = rustls_native_certs::load_native_certs();
    let mut roots = RootCertStore::empty();
    let (added, _ignored) = roots.add_parsable_certificates(found.certs);
    if added == 0 {
        return Err(TlsSetupError {
            what: "the system's trust store".into(),
            reason: format!(
                "no CA certificate found ({}); name a CA file (security.ca_file / ssl.ca.location)",
                found
                    .errors
                    .first()
                    .map(|e| e.to_string())
                    .unwrap_or_else(|| "it is empty".into())
            ),
        });
    }
    Ok(roots)
}

/// Verifies the chain and signatures as usual but accepts a certificate for another name
/// (`ssl.endpoint.identification.algorithm=` empty, as Kafka's clients allow).
#[derive(Debug)]
struct AnyHostname(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for AnyHostname {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
        {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

/// How every connection of a pool is secured.
#[derive(Debug, Clone, Default)]
pub struct Security {
    pub protocol: SecurityProtocol,
    /// Set when the protocol uses TLS.
    pub tls: Option<Tls>,
    /// Set when the protocol uses SASL.
    pub sasl: Option<Sasl>,
}

/// The TLS client config for an identity provider's token endpoint: the CAs `files` name (the
/// broker's trust settings) and the system's; the host name always checked; no client
/// certificate. Both, because a cluster behind a private CA often has its tokens from a
/// provider with a public certificate (the Java client checks the endpoint against the JVM's
/// own trust store). For an `http://` endpoint (`https` false) no CA is read: the config only
/// stands in for reqwest's own, which would bring a second crypto provider.
pub fn token_endpoint_tls(
    files: Option<&TlsFiles>,
    https: bool,
) -> Result<rustls::ClientConfig, TlsSetupError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let configured = match files.map(|f| (&f.ca_file, &f.truststore)) {
        _ if !https => None,
        Some((Some(path), _)) => Some(roots_from_file(path)?),
        Some((None, Some(store))) => Some(roots_from_truststore(store)?),
        _ => None,
    };
    let roots = match configured {
        _ if !https => RootCertStore::empty(),
        // The system's CAs beside the configured ones, when it has any.
        Some(mut roots) => {
            if let Ok(system) = system_roots() {
                roots.roots.extend(system.roots);
            }
            roots
        }
        None => system_roots()?,
    };
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| setup_error("TLS protocol versions", e))?
        .with_root_certificates(roots)
        .with_no_client_auth())
}
