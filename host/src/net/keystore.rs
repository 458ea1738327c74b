//! TLS material the way Java shops keep it: PKCS#12 keystores (a client certificate chain and
//! its key) and truststores (CA certificates), read with `p12-keystore`, and PEM private keys
//! encrypted as PKCS#8 (`-----BEGIN ENCRYPTED PRIVATE KEY-----`, PBES2), decrypted with
//! RustCrypto's `pkcs8`.
//!
//! Every error names the file and the setting to look at; a password is never part of one.
//! Java's own JKS format is refused with the `keytool` command that converts it.

use std::io::Read;
use std::path::Path;

use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

use super::secret::{Secret, TlsSetupError};

/// The command that turns a Java keystore (JKS) into PKCS#12.
pub const JKS_CONVERSION: &str =
    "keytool -importkeystore -srckeystore k.jks -destkeystore k.p12 -deststoretype PKCS12";

/// What the first bytes of a TLS file say it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    /// Text starting with `-----BEGIN` (after blank space).
    Pem,
    /// Java's JKS or JCEKS key store (magic `FEEDFEED` or `CECECECE`).
    Jks,
    /// Anything else: PKCS#12 is DER, a SEQUENCE.
    Other,
}

/// Sorts bytes read from the start of a file (a few hundred are enough).
pub fn kind_of(bytes: &[u8]) -> FileKind {
    if bytes.starts_with(&[0xFE, 0xED, 0xFE, 0xED]) || bytes.starts_with(&[0xCE, 0xCE, 0xCE, 0xCE])
    {
        return FileKind::Jks;
    }
    let text = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let start = text
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(text.len());
    if text[start..].starts_with(b"-----BEGIN") {
        FileKind::Pem
    } else {
        FileKind::Other
    }
}

/// The kind of the file at `path`, from its first bytes; `None` when it cannot be read.
pub fn kind_of_file(path: &Path) -> Option<FileKind> {
    let mut head = Vec::with_capacity(256);
    std::fs::File::open(path)
        .ok()?
        .take(256)
        .read_to_end(&mut head)
        .ok()?;
    Some(kind_of(&head))
}

/// A client certificate chain (leaf first) and its key.
pub struct Identity {
    pub chain: Vec<CertificateDer<'static>>,
    pub key: PrivateKeyDer<'static>,
}

fn error(what: String, reason: impl Into<String>) -> TlsSetupError {
    TlsSetupError {
        what,
        reason: reason.into(),
    }
}

fn read(path: &Path, what: &str) -> Result<Vec<u8>, TlsSetupError> {
    std::fs::read(path).map_err(|e| error(format!("{what} {}", path.display()), e.to_string()))
}

/// Opens a PKCS#12 file (an empty password when none is set), linking each key to its
/// certificate chain.
fn open(
    bytes: &[u8],
    password: Option<&Secret>,
) -> Result<p12_keystore::KeyStore, p12_keystore::error::Error> {
    p12_keystore::KeyStore::from_pkcs12(
        bytes,
        password.map_or("", Secret::expose),
        p12_keystore::Pkcs12ImportPolicy::Strict,
    )
}

/// Every certificate of a PKCS#12 file.
fn open_certificates(
    bytes: &[u8],
    password: Option<&Secret>,
) -> Result<p12_keystore::Pkcs12Archive, p12_keystore::error::Error> {
    p12_keystore::Pkcs12Archive::from_pkcs12(bytes, password.map_or("", Secret::expose))
}

fn refuse_other_formats(
    kind: FileKind,
    what: &dyn Fn() -> String,
    pem_hint: &str,
) -> Result<(), TlsSetupError> {
    match kind {
        FileKind::Jks => Err(error(
            what(),
            format!(
                "a JKS key store, which is not supported: convert it to PKCS#12 \
                 (`{JKS_CONVERSION}`) and set the type to PKCS12"
            ),
        )),
        FileKind::Pem => Err(error(
            what(),
            format!("a PEM file, not a PKCS#12 store: {pem_hint}"),
        )),
        FileKind::Other => Ok(()),
    }
}

/// Says why a PKCS#12 file did not open, naming the password's setting.
fn open_error(e: p12_keystore::error::Error, password_set: bool, setting: &str) -> String {
    match e {
        p12_keystore::error::Error::MacError(_) if password_set => {
            format!("wrong password: {setting} does not open it (its integrity check fails)")
        }
        p12_keystore::error::Error::MacError(_) => {
            format!("it is protected by a password: set {setting}")
        }
        p12_keystore::error::Error::DerError(e) => {
            format!("not a PKCS#12 file ({e}); PKCS#12 (.p12, .pfx) or PEM is expected")
        }
        other => format!("cannot be read: {other}"),
    }
}

/// Reads the client identity from a PKCS#12 keystore (Kafka's `ssl.keystore.location`).
/// The store opens with `store_password`; its key is held under the same password (keytool
/// and openssl make them so), so a different `key_password` is a wrong key password, as it is
/// for Java's client.
pub fn read_keystore(
    path: &Path,
    store_password: Option<&Secret>,
    key_password: Option<&Secret>,
) -> Result<Identity, TlsSetupError> {
    let what = || format!("the keystore {}", path.display());
    let bytes = read(path, "the keystore")?;
    refuse_other_formats(
        kind_of(&bytes),
        &what,
        "set security.cert_file and security.key_file (ssl.certificate.location, \
         ssl.key.location) to it, or ssl.keystore.type=PEM",
    )?;
    let store_setting = "security.keystore_password (ssl.keystore.password)";
    let key_setting = "security.key_password (ssl.key.password)";
    let store = match open(&bytes, store_password) {
        Ok(store) => store,
        Err(
            e @ (p12_keystore::error::Error::MacError(_) | p12_keystore::error::Error::DerError(_)),
        ) => {
            return Err(error(
                what(),
                open_error(e, store_password.is_some(), store_setting),
            ))
        }
        Err(e) => {
            // The integrity check passed (or there is none) but a bag did not decrypt: a key
            // held under its own password, when one is given.
            match key_password.filter(|k| Some(*k) != store_password) {
                Some(key_password) => open(&bytes, Some(key_password)).map_err(|_| {
                    error(
                        what(),
                        format!(
                            "wrong key password: {key_setting} does not open the private \
                                 key in it ({e})"
                        ),
                    )
                })?,
                None => {
                    return Err(error(
                        what(),
                        format!(
                            "its private key does not open with {store_setting} ({e}): wrong \
                             password? If the key has a password of its own, set {key_setting}"
                        ),
                    ))
                }
            }
        }
    };
    if let Some(key_password) = key_password {
        if Some(key_password) != store_password && store_password.is_some() {
            return Err(error(
                what(),
                format!(
                    "wrong key password: {key_setting} does not open the private key in it \
                     (a PKCS#12 keystore keeps its key under the keystore password; leave \
                     {key_setting} unset or give it the keystore password)"
                ),
            ));
        }
    }
    let Some((_alias, chain)) = store.private_key_chain() else {
        return Err(error(
            what(),
            "no private key with its certificate in it (a truststore? name it in \
             security.truststore_file / ssl.truststore.location)",
        ));
    };
    Ok(Identity {
        chain: chain
            .certs()
            .iter()
            .map(|c| CertificateDer::from(c.as_der().to_vec()))
            .collect(),
        key: PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(chain.key().as_der().to_vec())),
    })
}

/// Reads the CA certificates of a PKCS#12 truststore (Kafka's `ssl.truststore.location`):
/// every certificate in it is trusted (keytool marks them trusted; openssl does not mark
/// them at all).
pub fn read_truststore(
    path: &Path,
    password: Option<&Secret>,
) -> Result<Vec<CertificateDer<'static>>, TlsSetupError> {
    let what = || format!("the truststore {}", path.display());
    let bytes = read(path, "the truststore")?;
    refuse_other_formats(
        kind_of(&bytes),
        &what,
        "set security.ca_file (ssl.ca.location) to it",
    )?;
    let setting = "security.truststore_password (ssl.truststore.password)";
    let archive = open_certificates(&bytes, password)
        .map_err(|e| error(what(), open_error(e, password.is_some(), setting)))?;
    let certs: Vec<CertificateDer<'static>> = archive
        .certs
        .iter()
        .map(|c| CertificateDer::from(c.cert.as_der().to_vec()))
        .collect();
    if certs.is_empty() {
        return Err(error(what(), "no certificate in it"));
    }
    Ok(certs)
}

const ENCRYPTED_BEGIN: &str = "-----BEGIN ENCRYPTED PRIVATE KEY-----";
const ENCRYPTED_END: &str = "-----END ENCRYPTED PRIVATE KEY-----";

/// Reads a PEM private key: PKCS#8, PKCS#1 or SEC1, or PKCS#8 encrypted with a password
/// (`-----BEGIN ENCRYPTED PRIVATE KEY-----`, Kafka's `ssl.key.password`).
pub fn read_pem_key(
    path: &Path,
    password: Option<&Secret>,
) -> Result<PrivateKeyDer<'static>, TlsSetupError> {
    use rustls::pki_types::pem::PemObject;
    let what = || format!("the client key {}", path.display());
    let bytes = read(path, "the client key")?;
    let text = String::from_utf8_lossy(&bytes);
    let setting = "security.key_password (ssl.key.password)";
    if let Some(start) = text.find(ENCRYPTED_BEGIN) {
        let Some(end) = text[start..].find(ENCRYPTED_END) else {
            return Err(error(
                what(),
                format!("{ENCRYPTED_BEGIN} without its end line"),
            ));
        };
        let block = &text[start..start + end + ENCRYPTED_END.len()];
        let Some(password) = password else {
            return Err(error(
                what(),
                format!(
                    "the key is encrypted ({ENCRYPTED_BEGIN}): set {setting} or \
                     security.key_password_file to its password"
                ),
            ));
        };
        let (_label, der) = pkcs8::der::pem::decode_vec(block.as_bytes())
            .map_err(|e| error(what(), format!("not a valid PEM block: {e}")))?;
        let info = pkcs8::EncryptedPrivateKeyInfoRef::try_from(der.as_slice())
            .map_err(|e| error(what(), format!("not an encrypted PKCS#8 key: {e}")))?;
        let document = info.decrypt(password.expose()).map_err(|e| {
            error(
                what(),
                format!(
                    "wrong password: {setting} does not decrypt it ({e}; PBES2 with PBKDF2 and \
                     AES is read: `openssl pkcs8 -topk8 -v2 aes-256-cbc` makes it)"
                ),
            )
        })?;
        return Ok(PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(
            document.as_bytes().to_vec(),
        )));
    }
    if text.contains("Proc-Type: 4,ENCRYPTED") {
        return Err(error(
            what(),
            "an OpenSSL legacy encrypted key (Proc-Type: 4,ENCRYPTED), which is not read: \
             convert it with `openssl pkcs8 -topk8 -v2 aes-256-cbc -in old.key -out new.key`",
        ));
    }
    PrivateKeyDer::from_pem_slice(&bytes).map_err(|e| {
        error(
            what(),
            format!(
                "{e} (a PEM private key is expected: PKCS#8, PKCS#1 or SEC1, or encrypted \
                 PKCS#8 with {setting})"
            ),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_by_content() {
        assert_eq!(kind_of(b"\n -----BEGIN CERTIFICATE-----"), FileKind::Pem);
        assert_eq!(
            kind_of(b"\xEF\xBB\xBF-----BEGIN PRIVATE KEY"),
            FileKind::Pem
        );
        assert_eq!(kind_of(&[0xFE, 0xED, 0xFE, 0xED, 0, 0]), FileKind::Jks);
        assert_eq!(kind_of(&[0x30, 0x82, 0x0a, 0x01]), FileKind::Other);
        assert_eq!(kind_of(b""), FileKind::Other);
    }
}
