//! TLS material the way Java shops keep it, against Apache Kafka's SSL listener that requires
//! a client certificate (`SecureKafka`): a PKCS#12 keystore and truststore made by Java's
//! `keytool` from the fixture's PEM files, given as `[security]` keys and as a Java
//! `client.properties`; an encrypted PKCS#8 key (`openssl pkcs8 -topk8 -v2 aes-256-cbc`, or
//! the `pkcs8` crate without openssl). A wrong keystore password, a wrong key password and a
//! JKS keystore each stop `wasmkafka` with the setting to look at.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use wasmkafka_tests::bounded::BoundedOutput;
use wasmkafka_tests::kafka::jars::java;
use wasmkafka_tests::kafka::secure::SecureKafka;
use wasmkafka_tests::records::produce_numbered;

const STORE_PASSWORD: &str = "keystore-secret-1";
const TRUST_PASSWORD: &str = "truststore-secret-2";
const KEY_PASSWORD: &str = "pem-key-secret-3";

async fn produce(broker: &SecureKafka, topic: &str, count: i64) {
    broker.kafka.create_topic(topic, 1, &[]).await.unwrap();
    produce_numbered(&broker.kafka, topic, 0..count).await;
}

/// `keytool` beside the `java` the Kafka fixture runs (the JDK's bin directory), else the
/// one on PATH.
fn keytool() -> PathBuf {
    let java = java();
    let beside = java.with_file_name("keytool");
    if java.is_absolute() && beside.exists() {
        return beside;
    }
    std::fs::canonicalize(which("java").unwrap_or(java))
        .ok()
        .map(|java| java.with_file_name("keytool"))
        .filter(|keytool| keytool.exists())
        .unwrap_or_else(|| PathBuf::from("keytool"))
}

fn which(program: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(program))
            .find(|path| path.is_file())
    })
}

fn run_tool(program: &Path, args: &[&str]) {
    let output = Command::new(program)
        .args(args)
        .output_within(Duration::from_secs(60))
        .unwrap_or_else(|e| panic!("{} {args:?}: {e}", program.display()));
    assert!(
        output.status.success(),
        "{} {args:?}: {}{}",
        program.display(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// The stores, as an operator has them: `client.p12` (the client certificate, its CA and its
/// key, written by keytool), `truststore.p12` (the CA, imported by keytool) and `client.jks`.
struct Stores {
    keystore: PathBuf,
    truststore: PathBuf,
    jks: PathBuf,
}

fn make_stores(broker: &SecureKafka, dir: &Path) -> Stores {
    // keytool does not read PEM keys: the first PKCS#12 file is written here (p12-keystore),
    // then keytool imports it into a keystore of Java's own making.
    let chain: Vec<p12_keystore::Certificate> = CertificateDer::pem_file_iter(&broker.client_cert)
        .unwrap()
        .chain(CertificateDer::pem_file_iter(&broker.ca_file).unwrap())
        .map(|cert| p12_keystore::Certificate::from_der(&cert.unwrap()).unwrap())
        .collect();
    let key = PrivateKeyDer::from_pem_file(&broker.client_key).unwrap();
    let key = p12_keystore::PrivateKey::from_der(key.secret_der()).unwrap();
    let mut store = p12_keystore::KeyStore::new();
    store.add_entry(
        "client",
        p12_keystore::KeyStoreEntry::PrivateKeyChain(p12_keystore::PrivateKeyChain::new(
            b"client".to_vec(),
            key,
            chain,
        )),
    );
    let seed = dir.join("seed.p12");
    std::fs::write(&seed, store.writer("seed-password").write().unwrap()).unwrap();

    let keytool = keytool();
    let stores = Stores {
        keystore: dir.join("client.p12"),
        truststore: dir.join("truststore.p12"),
        jks: dir.join("client.jks"),
    };
    for (dest, kind) in [(&stores.keystore, "PKCS12"), (&stores.jks, "JKS")] {
        run_tool(
            &keytool,
            &[
                "-importkeystore",
                "-noprompt",
                "-srckeystore",
                seed.to_str().unwrap(),
                "-srcstoretype",
                "PKCS12",
                "-srcstorepass",
                "seed-password",
                "-destkeystore",
                dest.to_str().unwrap(),
                "-deststoretype",
                kind,
                "-deststorepass",
                STORE_PASSWORD,
                "-destkeypass",
                STORE_PASSWORD,
            ],
        );
    }
    run_tool(
        &keytool,
        &[
            "-importcert",
            "-noprompt",
            "-alias",
            "ca",
            "-file",
            broker.ca_file.to_str().unwrap(),
            "-keystore",
            stores.truststore.to_str().unwrap(),
            "-storetype",
            "PKCS12",
            "-storepass",
            TRUST_PASSWORD,
        ],
    );
    // What keytool wrote is PKCS#12 (DER), not PEM, and JKS starts with its magic.
    assert_eq!(std::fs::read(&stores.keystore).unwrap()[0], 0x30);
    assert_eq!(
        std::fs::read(&stores.jks).unwrap()[..4],
        [0xFE, 0xED, 0xFE, 0xED]
    );
    stores
}

fn wasmkafka(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_wasmkafka"))
        .args(args)
        .output_within(Duration::from_secs(60))
        .unwrap()
}

fn consume_args<'a>(broker: &'a SecureKafka, topic: &'a str) -> Vec<&'a str> {
    vec![
        "run",
        "--brokers",
        &broker.ssl,
        "--topic",
        topic,
        "--exit-at-end",
        "--format",
        "raw",
        "--no-progress",
    ]
}

fn assert_consumed(output: &Output, expected: &str) {
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert_eq!(
        String::from_utf8_lossy(&output.stdout),
        expected,
        "{stderr}"
    );
}

fn assert_refused(output: &Output, words: &[&str], secrets: &[&str]) {
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    for words in words {
        assert!(stderr.contains(words), "missing `{words}` in: {stderr}");
    }
    for secret in secrets {
        assert!(!stderr.contains(secret), "a password in: {stderr}");
    }
}

#[tokio::test]
async fn pkcs12_stores_made_by_keytool_as_toml_keys_and_as_client_properties() {
    let broker = SecureKafka::shared();
    let topic = "keystores-p12";
    produce(broker, topic, 3).await;
    let dir = tempfile::tempdir().unwrap();
    let stores = make_stores(broker, dir.path());

    // (a) [security] keys, the keystore password in a file (a mounted secret).
    let password_file = dir.path().join("keystore-password");
    std::fs::write(&password_file, format!("{STORE_PASSWORD}\n")).unwrap();
    let toml = dir.path().join("wasmkafka.toml");
    std::fs::write(
        &toml,
        format!(
            "[security]\nprotocol = \"SSL\"\nkeystore_file = {:?}\nkeystore_password_file = \
             {:?}\ntruststore_file = {:?}\ntruststore_password = {:?}\n",
            stores.keystore, password_file, stores.truststore, TRUST_PASSWORD
        ),
    )
    .unwrap();
    let mut args = consume_args(broker, topic);
    args.extend(["--config", toml.to_str().unwrap()]);
    assert_consumed(&wasmkafka(&args), "v0\nv1\nv2\n");

    // (b) A Java client's properties file, as it stands.
    let properties = dir.path().join("client.properties");
    std::fs::write(
        &properties,
        format!(
            "bootstrap.servers={}\nsecurity.protocol=SSL\n\
             ssl.keystore.type=PKCS12\nssl.keystore.location={}\n\
             ssl.keystore.password={STORE_PASSWORD}\nssl.key.password={STORE_PASSWORD}\n\
             ssl.truststore.type=pkcs12\nssl.truststore.location={}\n\
             ssl.truststore.password={TRUST_PASSWORD}\n\
             key.deserializer=org.apache.kafka.common.serialization.StringDeserializer\n",
            broker.ssl,
            stores.keystore.display(),
            stores.truststore.display()
        ),
    )
    .unwrap();
    let run = |extra: &[&str]| {
        let mut args = vec![
            "run",
            "--config",
            properties.to_str().unwrap(),
            "--topic",
            topic,
            "--exit-at-end",
            "--format",
            "raw",
            "--no-progress",
        ];
        args.extend(extra);
        wasmkafka(&args)
    };
    assert_consumed(&run(&[]), "v0\nv1\nv2\n");

    // `config show` says where each setting came from and never prints a password.
    let shown = wasmkafka(&["config", "show", "--config", properties.to_str().unwrap()]);
    let stdout = String::from_utf8_lossy(&shown.stdout);
    assert!(shown.status.success(), "{stdout}");
    for key in [
        "security.keystore_password = \"***\"",
        "security.key_password = \"***\"",
        "security.truststore_password = \"***\"",
        &format!("security.keystore_file = {:?}", stores.keystore),
        &format!("security.truststore_file = {:?}", stores.truststore),
    ] {
        assert!(stdout.contains(key), "missing `{key}` in:\n{stdout}");
    }
    assert!(
        !stdout.contains(STORE_PASSWORD) && !stdout.contains(TRUST_PASSWORD),
        "{stdout}"
    );

    // A PEM CA file under ssl.truststore.location works as before (told apart by content;
    // a PEM trust store has no password, as in Kafka).
    let pem_trust = dir.path().join("pem-trust.properties");
    std::fs::write(
        &pem_trust,
        format!(
            "bootstrap.servers={}\nsecurity.protocol=SSL\n\
             ssl.keystore.location={}\nssl.keystore.password={STORE_PASSWORD}\n\
             ssl.truststore.location={}\n",
            broker.ssl,
            stores.keystore.display(),
            broker.ca_file.display()
        ),
    )
    .unwrap();
    let mut args = consume_args(broker, topic);
    args.extend(["--config", pem_trust.to_str().unwrap()]);
    assert_consumed(&wasmkafka(&args), "v0\nv1\nv2\n");

    // A wrong keystore password.
    assert_refused(
        &run(&["-X", "ssl.keystore.password=not-the-password"]),
        &[
            &format!("the keystore {}", stores.keystore.display()),
            "wrong password: security.keystore_password (ssl.keystore.password) does not open it",
        ],
        &["not-the-password", STORE_PASSWORD],
    );
    // A wrong key password (keytool keeps the key under the store password, as Java's client
    // expects).
    assert_refused(
        &run(&["-X", "ssl.key.password=not-the-key-password"]),
        &[
            &format!("the keystore {}", stores.keystore.display()),
            "wrong key password: security.key_password (ssl.key.password) does not open the \
             private key",
        ],
        &["not-the-key-password", STORE_PASSWORD],
    );
    // A wrong truststore password.
    assert_refused(
        &run(&["-X", "ssl.truststore.password=not-the-trust-password"]),
        &[
            &format!("the truststore {}", stores.truststore.display()),
            "wrong password: security.truststore_password (ssl.truststore.password)",
        ],
        &["not-the-trust-password", TRUST_PASSWORD],
    );
    // A JKS keystore: by its content, and by its declared type.
    let conversion =
        "keytool -importkeystore -srckeystore k.jks -destkeystore k.p12 -deststoretype PKCS12";
    assert_refused(
        &run(&[
            "-X",
            &format!("ssl.keystore.location={}", stores.jks.display()),
        ]),
        &[
            "property `ssl.keystore.location`: a JKS key store is not supported",
            conversion,
        ],
        &[STORE_PASSWORD],
    );
    assert_refused(
        &run(&["-X", "ssl.keystore.type=JKS"]),
        &[
            "property `ssl.keystore.type`: a JKS key store is not supported",
            conversion,
        ],
        &[STORE_PASSWORD],
    );
    // As a [security] key, read when the files are.
    std::fs::write(
        &toml,
        format!(
            "[security]\nprotocol = \"SSL\"\nkeystore_file = {:?}\nkeystore_password = {:?}\n\
             ca_file = {:?}\n",
            stores.jks, STORE_PASSWORD, broker.ca_file
        ),
    )
    .unwrap();
    let mut args = consume_args(broker, topic);
    args.extend(["--config", toml.to_str().unwrap()]);
    assert_refused(
        &wasmkafka(&args),
        &[
            &format!("the keystore {}", stores.jks.display()),
            "a JKS key store, which is not supported",
            conversion,
        ],
        &[STORE_PASSWORD],
    );
}

/// `client-enc.key`: the fixture's client key, encrypted as PKCS#8 with PBES2 (AES-256-CBC).
fn encrypt_key(broker: &SecureKafka, dir: &Path) -> PathBuf {
    let out = dir.join("client-enc.key");
    match which("openssl") {
        Some(openssl) => run_tool(
            &openssl,
            &[
                "pkcs8",
                "-topk8",
                "-v2",
                "aes-256-cbc",
                "-in",
                broker.client_key.to_str().unwrap(),
                "-out",
                out.to_str().unwrap(),
                "-passout",
                &format!("pass:{KEY_PASSWORD}"),
            ],
        ),
        None => {
            let key = PrivateKeyDer::from_pem_file(&broker.client_key).unwrap();
            let info = pkcs8::PrivateKeyInfoRef::try_from(key.secret_der()).unwrap();
            let params = pkcs8::pkcs5::pbes2::Parameters::generate_pbkdf2_sha256_aes256cbc(
                100_000, &[7u8; 16], [9u8; 16],
            )
            .unwrap();
            let encrypted = info.encrypt_with_params(params, KEY_PASSWORD).unwrap();
            std::fs::write(
                &out,
                encrypted
                    .to_pem("ENCRYPTED PRIVATE KEY", pkcs8::LineEnding::LF)
                    .unwrap()
                    .as_bytes(),
            )
            .unwrap();
        }
    }
    let text = std::fs::read_to_string(&out).unwrap();
    assert!(
        text.starts_with("-----BEGIN ENCRYPTED PRIVATE KEY-----"),
        "{text}"
    );
    out
}

#[tokio::test]
async fn an_encrypted_pkcs8_key_opens_with_ssl_key_password() {
    let broker = SecureKafka::shared();
    let topic = "keystores-pkcs8";
    produce(broker, topic, 2).await;
    let dir = tempfile::tempdir().unwrap();
    let key = encrypt_key(broker, dir.path());
    let ca = format!("ssl.ca.location={}", broker.ca_file.display());
    let cert = format!("ssl.certificate.location={}", broker.client_cert.display());
    let key_location = format!("ssl.key.location={}", key.display());
    let run = |extra: &[&str]| {
        let mut args = consume_args(broker, topic);
        args.extend([
            "-X",
            "security.protocol=SSL",
            "-X",
            &ca,
            "-X",
            &cert,
            "-X",
            &key_location,
        ]);
        args.extend(extra);
        wasmkafka(&args)
    };
    assert_consumed(
        &run(&["-X", &format!("ssl.key.password={KEY_PASSWORD}")]),
        "v0\nv1\n",
    );
    // From a file, as the other passwords.
    let password_file = dir.path().join("key-password");
    std::fs::write(&password_file, format!("{KEY_PASSWORD}\n")).unwrap();
    assert_consumed(
        &run(&[
            "-X",
            &format!("security.key_password_file={}", password_file.display()),
        ]),
        "v0\nv1\n",
    );
    assert_refused(
        &run(&[]),
        &[
            &format!("the client key {}", key.display()),
            "the key is encrypted (-----BEGIN ENCRYPTED PRIVATE KEY-----): set \
             security.key_password (ssl.key.password) or security.key_password_file",
        ],
        &[KEY_PASSWORD],
    );
    assert_refused(
        &run(&["-X", "ssl.key.password=not-the-key-password"]),
        &[
            &format!("the client key {}", key.display()),
            "wrong password: security.key_password (ssl.key.password) does not decrypt it",
        ],
        &["not-the-key-password", KEY_PASSWORD],
    );
}
