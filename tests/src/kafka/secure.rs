//! A single Kafka node with secured listeners beside its PLAINTEXT one (which the harness and
//! the admin helpers keep using):
//!
//! - `SASL_PLAINTEXT` and `SASL_SSL` with PLAIN, SCRAM-SHA-256 and SCRAM-SHA-512 for one user
//!   (the SCRAM credentials are created by `StorageTool format --add-scram`, Kafka's own tooling;
//!   PLAIN users live in the listener's JAAS config);
//! - `SSL` that requires a client certificate.
//!
//! The certificates are made by the fixture (rcgen): a CA, the broker's certificate for
//! `localhost` and `127.0.0.1`, a client certificate, and a second CA that signed nothing the
//! broker uses (for "unknown CA" tests). Kafka reads them as PEM files.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, KeyUsagePurpose,
};

use wasmkafka::client::Client;
use wasmkafka::cluster::MetadataOptions;
use wasmkafka::config::Config;

use super::{free_port, start_shared, Kafka, KafkaOptions};

pub const USER: &str = "alice";
pub const PASSWORD: &str = "alice-secret";
/// A second SCRAM user, for a test that deletes its credentials (the other tests use
/// [`USER`] concurrently).
pub const REVOCABLE_USER: &str = "bob";
pub const REVOCABLE_PASSWORD: &str = "bob-secret";
/// `connections.max.reauth.ms` of [`SecureKafka::shared`].
pub const SHARED_SESSION_LIFETIME_MS: u64 = 3_000;

/// Broker settings that turn authorization on (KRaft's `StandardAuthorizer`): the SASL users
/// get only what ACLs allow them (see [`super::admin::allow`]). `ANONYMOUS`, every client of
/// the PLAINTEXT listeners, is a super user: the controller and the broker register over
/// them, and the harness's admin helpers keep working.
pub const AUTHORIZATION: [(&str, &str); 3] = [
    (
        "authorizer.class.name",
        "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
    ),
    ("allow.everyone.if.no.acl.found", "false"),
    ("super.users", "User:ANONYMOUS"),
];

/// The node and the files a client needs.
pub struct SecureKafka {
    pub kafka: Kafka,
    /// `127.0.0.1:port` of each secured listener.
    pub sasl_plaintext: String,
    pub sasl_ssl: String,
    /// TLS with a client certificate required.
    pub ssl: String,
    pub ca_file: PathBuf,
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
    /// A CA that did not sign the broker's certificate.
    pub other_ca_file: PathBuf,
    _files: tempfile::TempDir,
}

impl SecureKafka {
    /// The secured broker this test binary shares (started on first use). Its SASL sessions
    /// last [`SHARED_SESSION_LIFETIME_MS`] (`connections.max.reauth.ms`), so every test over
    /// SASL also crosses session renewals (KIP-368).
    pub fn shared() -> &'static SecureKafka {
        static SHARED: std::sync::OnceLock<SecureKafka> = std::sync::OnceLock::new();
        SHARED.get_or_init(|| {
            start_shared("the secured Kafka broker", || async {
                let lifetime = SHARED_SESSION_LIFETIME_MS.to_string();
                SecureKafka::start(&[("connections.max.reauth.ms", &lifetime)]).await
            })
        })
    }

    /// A secured broker with [`AUTHORIZATION`] on that this test binary shares (started on
    /// first use): its SASL users may do only what ACLs allow.
    pub fn shared_with_authorization() -> &'static SecureKafka {
        static SHARED: std::sync::OnceLock<SecureKafka> = std::sync::OnceLock::new();
        SHARED.get_or_init(|| {
            start_shared("the authorizing Kafka broker", || async {
                SecureKafka::start(&AUTHORIZATION).await
            })
        })
    }

    /// Starts the node; `overrides` are appended to its config (after the listeners').
    pub async fn start(overrides: &[(&str, &str)]) -> Result<SecureKafka> {
        let files = tempfile::tempdir()?;
        let certs = write_certificates(files.path())?;
        let ports = [free_port()?, free_port()?, free_port()?];
        let [sasl_plaintext, sasl_ssl, ssl] = ports.map(|port| format!("127.0.0.1:{port}"));
        let secured =
            format!("SASL_PLAINTEXT://{sasl_plaintext},SASL_SSL://{sasl_ssl},SSL://{ssl}");
        let plain_users = format!(
            r#"org.apache.kafka.common.security.plain.PlainLoginModule required user_{USER}="{PASSWORD}";"#
        );
        let scram = "org.apache.kafka.common.security.scram.ScramLoginModule required;";
        let mut settings = secured_listener_settings(
            &secured,
            "SASL_PLAINTEXT:SASL_PLAINTEXT,SASL_SSL:SASL_SSL,SSL:SSL",
            &certs,
        );
        settings.extend([
            (
                "sasl.enabled.mechanisms".into(),
                "PLAIN,SCRAM-SHA-256,SCRAM-SHA-512".into(),
            ),
            (
                "listener.name.ssl.ssl.client.auth".into(),
                "required".into(),
            ),
        ]);
        for listener in ["sasl_plaintext", "sasl_ssl"] {
            settings.push((
                format!("listener.name.{listener}.plain.sasl.jaas.config"),
                plain_users.clone(),
            ));
            for mechanism in ["scram-sha-256", "scram-sha-512"] {
                settings.push((
                    format!("listener.name.{listener}.{mechanism}.sasl.jaas.config"),
                    scram.into(),
                ));
            }
        }
        settings.extend(
            overrides
                .iter()
                .map(|(key, value)| (key.to_string(), value.to_string())),
        );
        let format_args = ["SCRAM-SHA-256", "SCRAM-SHA-512"]
            .iter()
            .flat_map(|mechanism| {
                [(USER, PASSWORD), (REVOCABLE_USER, REVOCABLE_PASSWORD)]
                    .into_iter()
                    .flat_map(move |(user, password)| {
                        [
                            "--add-scram".to_string(),
                            format!("{mechanism}=[name={user},password={password}]"),
                        ]
                    })
            })
            .collect();
        let kafka = Kafka::start_with(KafkaOptions {
            nodes: 1,
            overrides: settings,
            format_args,
            ..KafkaOptions::default()
        })
        .await
        .context("cannot start Kafka with SASL and SSL listeners")?;
        Ok(SecureKafka {
            kafka,
            sasl_plaintext,
            sasl_ssl,
            ssl,
            ca_file: certs.ca,
            client_cert: certs.client_cert,
            client_key: certs.client_key,
            other_ca_file: certs.other_ca,
            _files: files,
        })
    }
}

/// The broker settings a node with secured listeners starts from: the harness's PLAINTEXT and
/// CONTROLLER listeners beside `secured` (`NAME://127.0.0.1:port,…`, advertised as they
/// are), each secured listener's security protocol from `security_protocols`
/// (`NAME:PROTOCOL,…`), and TLS from `certs` (the broker's PEM key store, the CA as its PEM
/// trust store).
pub(super) fn secured_listener_settings(
    secured: &str,
    security_protocols: &str,
    certs: &CertificateFiles,
) -> Vec<(String, String)> {
    vec![
        (
            "listeners".into(),
            format!(
                "PLAINTEXT://127.0.0.1:@PORT@,CONTROLLER://127.0.0.1:@CONTROLLER_PORT@,{secured}"
            ),
        ),
        (
            "advertised.listeners".into(),
            format!("PLAINTEXT://127.0.0.1:@PORT@,{secured}"),
        ),
        (
            "listener.security.protocol.map".into(),
            format!("CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT,{security_protocols}"),
        ),
        ("ssl.keystore.type".into(), "PEM".into()),
        (
            "ssl.keystore.location".into(),
            certs.broker_keystore.display().to_string(),
        ),
        ("ssl.truststore.type".into(), "PEM".into()),
        (
            "ssl.truststore.location".into(),
            certs.ca.display().to_string(),
        ),
    ]
}

/// A client of `addr` configured through Kafka's property names (`security.protocol`,
/// `sasl.mechanism`, `ssl.ca.location`, …), as a user would write them.
pub fn client_with_properties<K: AsRef<str>, V: AsRef<str>>(
    addr: &str,
    properties: &[(K, V)],
) -> Client {
    let properties: Vec<(String, String)> = properties
        .iter()
        .map(|(k, v)| (k.as_ref().to_string(), v.as_ref().to_string()))
        .collect();
    let config = Config::parse_with("", &properties).expect("a valid config");
    Client::with_metadata_options(
        vec![addr.to_string()],
        config.pool_options().expect("a valid security config"),
        MetadataOptions::default(),
    )
}

pub(super) struct CertificateFiles {
    pub(super) ca: PathBuf,
    pub(super) broker_keystore: PathBuf,
    pub(super) client_cert: PathBuf,
    pub(super) client_key: PathBuf,
    pub(super) other_ca: PathBuf,
}

fn new_ca(name: &str) -> Result<CertifiedIssuer<'static, KeyPair>> {
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    params.distinguished_name.push(DnType::CommonName, name);
    Ok(CertifiedIssuer::self_signed(params, KeyPair::generate()?)?)
}

pub(super) fn write_certificates(dir: &Path) -> Result<CertificateFiles> {
    let ca = new_ca("wasmkafka test CA")?;
    let other = new_ca("an unrelated CA")?;

    let mut broker = CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".into()])?;
    broker
        .distinguished_name
        .push(DnType::CommonName, "localhost");
    let broker_key = KeyPair::generate()?;
    let broker_cert = broker.signed_by(&broker_key, &ca)?;

    let mut client = CertificateParams::new(Vec::<String>::new())?;
    client
        .distinguished_name
        .push(DnType::CommonName, "wasmkafka-client");
    let client_key = KeyPair::generate()?;
    let client_cert = client.signed_by(&client_key, &ca)?;

    let files = CertificateFiles {
        ca: dir.join("ca.pem"),
        broker_keystore: dir.join("broker.pem"),
        client_cert: dir.join("client.pem"),
        client_key: dir.join("client.key"),
        other_ca: dir.join("other-ca.pem"),
    };
    std::fs::write(&files.ca, ca.pem())?;
    std::fs::write(&files.other_ca, other.pem())?;
    // Kafka's PEM key store: the private key (PKCS#8) and the certificate chain in one file.
    std::fs::write(
        &files.broker_keystore,
        format!(
            "{}{}{}",
            broker_key.serialize_pem(),
            broker_cert.pem(),
            ca.pem()
        ),
    )?;
    std::fs::write(&files.client_cert, client_cert.pem())?;
    std::fs::write(&files.client_key, client_key.serialize_pem())?;
    Ok(files)
}
