//! A single Kafka node with SASL/OAUTHBEARER listeners beside its PLAINTEXT one, configured
//! as Kafka documents it:
//!
//! - `OIDC` (SASL_PLAINTEXT) and `OIDC_SSL` (SASL_SSL): Kafka's
//!   `OAuthBearerValidatorCallbackHandler` with its `BrokerJwtValidator` checks each token's
//!   RS256 signature against the local provider's JWKS ([`Oidc`]), its expiry, audience and
//!   issuer;
//! - `UNSECURED` (SASL_PLAINTEXT): Kafka's default unsecured validator, for `alg: none` tokens.
//!
//! Kafka 4.x fetches only URLs listed in the JVM's `org.apache.kafka.sasl.oauthbearer.allowed.urls`
//! system property, so the node's JVM gets it. `connections.max.reauth.ms` is on (60 s), so
//! the broker gives each session the token's remaining life as its lifetime (KIP-368) and closes
//! a connection whose session ended.
//!
//! The provider's token endpoint is also served over HTTPS for clients of this node: once
//! with the broker's own certificate (from the test CA, so the CA file and the PKCS#12
//! truststore trust both), once with a self-signed certificate nothing trusts.

use std::path::PathBuf;

use anyhow::{Context, Result};

use super::jars::java;
use super::secure::{secured_listener_settings, write_certificates};
use super::{free_port, start_shared, Kafka, KafkaOptions};
use crate::bounded::BoundedOutput;
use crate::oidc::{Oidc, AUDIENCE};

const LOGIN_MODULE: &str = "org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule";
const VALIDATOR: &str =
    "org.apache.kafka.common.security.oauthbearer.OAuthBearerValidatorCallbackHandler";
const BROKER_VALIDATOR: &str = "org.apache.kafka.common.security.oauthbearer.BrokerJwtValidator";
/// `connections.max.reauth.ms` of the node.
pub const MAX_REAUTH_MS: u64 = 60_000;
/// The password of [`OAuthKafka::truststore`].
pub const TRUSTSTORE_PASSWORD: &str = "truststore-password";

/// The node, its provider and the files a client needs.
pub struct OAuthKafka {
    pub kafka: Kafka,
    pub oidc: &'static Oidc,
    /// `127.0.0.1:port` of each OAUTHBEARER listener.
    pub oidc_plaintext: String,
    pub oidc_ssl: String,
    pub unsecured: String,
    /// The CA of the broker's certificate (for `OIDC_SSL`).
    pub ca_file: PathBuf,
    /// The same CA in a PKCS#12 truststore made by the JDK's keytool, as a Java team has it
    /// (password [`TRUSTSTORE_PASSWORD`]).
    pub truststore: PathBuf,
    /// The provider's token endpoint over HTTPS with a certificate from the test CA.
    pub https_token_url: String,
    /// The same over HTTPS with a self-signed certificate (trusted by nothing).
    pub untrusted_token_url: String,
    /// That self-signed certificate (PEM): a test that trusts it stands in for a provider
    /// with a certificate from a public CA.
    pub untrusted_cert: PathBuf,
    _files: tempfile::TempDir,
}

impl OAuthKafka {
    /// The node this test binary shares, on the shared [`Oidc`] provider (started on first
    /// use).
    pub fn shared() -> &'static OAuthKafka {
        static SHARED: std::sync::OnceLock<OAuthKafka> = std::sync::OnceLock::new();
        SHARED.get_or_init(|| {
            start_shared("the OAUTHBEARER Kafka broker", || async {
                OAuthKafka::start(Oidc::shared()).await
            })
        })
    }

    pub async fn start(oidc: &'static Oidc) -> Result<OAuthKafka> {
        let files = tempfile::tempdir()?;
        let certs = write_certificates(files.path())?;
        let https_token_url = format!(
            "{}/token",
            oidc.serve_https(&certs.broker_keystore, &certs.broker_keystore)?
        );
        let untrusted_token_url = format!("{}/token", self_signed_endpoint(oidc, files.path())?);
        let untrusted_cert = files.path().join("self-signed.pem");
        let truststore = files.path().join("truststore.p12");
        pkcs12_truststore(&certs.ca, &truststore)?;
        let ports = [free_port()?, free_port()?, free_port()?];
        let [oidc_plaintext, oidc_ssl, unsecured] = ports.map(|port| format!("127.0.0.1:{port}"));
        let secured =
            format!("OIDC://{oidc_plaintext},OIDC_SSL://{oidc_ssl},UNSECURED://{unsecured}");
        let mut settings = secured_listener_settings(
            &secured,
            "OIDC:SASL_PLAINTEXT,OIDC_SSL:SASL_SSL,UNSECURED:SASL_PLAINTEXT",
            &certs,
        );
        settings.extend([
            ("sasl.enabled.mechanisms".into(), "OAUTHBEARER".into()),
            (
                "connections.max.reauth.ms".into(),
                MAX_REAUTH_MS.to_string(),
            ),
        ]);
        for listener in ["oidc", "oidc_ssl"] {
            settings.push((
                format!("listener.name.{listener}.oauthbearer.sasl.jaas.config"),
                format!("{LOGIN_MODULE} required ;"),
            ));
            settings.push((
                format!("listener.name.{listener}.oauthbearer.sasl.server.callback.handler.class"),
                VALIDATOR.into(),
            ));
        }
        // The validator's settings (broker-wide: the unsecured listener's handler ignores
        // them). Kafka 4.1.1's handler makes its default validator (`DefaultJwtValidator`)
        // without the JWKS, and that one checks neither signatures nor expiry; naming the
        // broker's validator, as 4.1's `sasl.oauthbearer.jwt.validator.class` allows, makes it
        // fetch the JWKS and check both.
        for (key, value) in [
            (
                "sasl.oauthbearer.jwt.validator.class",
                BROKER_VALIDATOR.to_string(),
            ),
            ("sasl.oauthbearer.jwks.endpoint.url", oidc.jwks_url()),
            ("sasl.oauthbearer.expected.audience", AUDIENCE.to_string()),
            (
                "sasl.oauthbearer.expected.issuer",
                oidc.issuer().to_string(),
            ),
        ] {
            settings.push((key.to_string(), value));
        }
        settings.push((
            "listener.name.unsecured.oauthbearer.sasl.jaas.config".into(),
            format!(r#"{LOGIN_MODULE} required unsecuredLoginStringClaim_sub="broker";"#),
        ));
        let kafka = Kafka::start_with(KafkaOptions {
            nodes: 1,
            overrides: settings,
            jvm_options: vec![format!(
                "-Dorg.apache.kafka.sasl.oauthbearer.allowed.urls={},{}",
                oidc.jwks_url(),
                oidc.token_url()
            )],
            ..KafkaOptions::default()
        })
        .await
        .context("cannot start Kafka with OAUTHBEARER listeners")?;
        Ok(OAuthKafka {
            kafka,
            oidc,
            oidc_plaintext,
            oidc_ssl,
            unsecured,
            ca_file: certs.ca,
            truststore,
            https_token_url,
            untrusted_token_url,
            untrusted_cert,
            _files: files,
        })
    }
}

/// Serves `oidc` over HTTPS with a self-signed certificate for 127.0.0.1 written into `dir`.
fn self_signed_endpoint(oidc: &Oidc, dir: &std::path::Path) -> Result<String> {
    let certified = rcgen::generate_simple_self_signed(vec!["127.0.0.1".into()])?;
    let (cert, key) = (dir.join("self-signed.pem"), dir.join("self-signed.key"));
    std::fs::write(&cert, certified.cert.pem())?;
    std::fs::write(&key, certified.signing_key.serialize_pem())?;
    oidc.serve_https(&cert, &key)
}

/// `keytool -importcert` of the CA into a new PKCS#12 truststore at `store`.
fn pkcs12_truststore(ca: &std::path::Path, store: &std::path::Path) -> Result<()> {
    // keytool sits beside the `java` the node runs (the JDK's bin directory), else on PATH.
    let java = java();
    let keytool = std::fs::canonicalize(&java)
        .or_else(|_| which_java().context("no java on PATH"))
        .map(|java| java.with_file_name("keytool"))
        .ok()
        .filter(|keytool| keytool.exists())
        .unwrap_or_else(|| PathBuf::from("keytool"));
    let output = std::process::Command::new(&keytool)
        .args([
            "-importcert",
            "-noprompt",
            "-alias",
            "ca",
            "-storetype",
            "PKCS12",
        ])
        .arg("-file")
        .arg(ca)
        .arg("-keystore")
        .arg(store)
        .args(["-storepass", TRUSTSTORE_PASSWORD])
        .output_within(std::time::Duration::from_secs(60))
        .with_context(|| format!("cannot run {}", keytool.display()))?;
    anyhow::ensure!(
        output.status.success(),
        "{} -importcert: {}",
        keytool.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(())
}

fn which_java() -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join("java"))
        .find(|path| path.is_file())
        .and_then(|path| std::fs::canonicalize(path).ok())
}
