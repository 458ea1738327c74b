//! TLS and SASL against Apache Kafka (`SecureKafka`: SASL_PLAINTEXT, SASL_SSL and an SSL
//! listener that requires a client certificate; SASL sessions of 3 s, so the longer tests
//! cross session renewals). Success with every mechanism, a wrong password, an unknown CA and
//! a missing client certificate, through the library and through `wasmkafka run`.

use std::io::Write;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use wasmkafka::client::ClientError;
use wasmkafka::net::NetError;
use wasmkafka_tests::bounded::output_or_kill_after;
use wasmkafka_tests::kafka::secure::{
    client_with_properties, SecureKafka, PASSWORD, REVOCABLE_PASSWORD, REVOCABLE_USER,
    SHARED_SESSION_LIFETIME_MS, USER,
};
use wasmkafka_tests::records::{
    earliest_consumer, numbered_texts, produce_numbered, produce_while_reading, read_from_earliest,
    values,
};

fn sasl(mechanism: &str, protocol: &str, password: &str) -> Vec<(&'static str, String)> {
    vec![
        ("security.protocol", protocol.to_string()),
        ("sasl.mechanism", mechanism.to_string()),
        ("sasl.username", USER.to_string()),
        ("sasl.password", password.to_string()),
    ]
}

fn refs<'a>(pairs: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    pairs.iter().map(|(k, v)| (*k, v.as_str())).collect()
}

async fn produce(broker: &SecureKafka, topic: &str, values: std::ops::Range<i64>) {
    produce_numbered(&broker.kafka, topic, values).await;
}

#[tokio::test]
async fn every_mechanism_on_both_sasl_listeners_reads_the_records() {
    let broker = SecureKafka::shared();
    broker
        .kafka
        .create_topic("secure-all", 1, &[])
        .await
        .unwrap();
    produce(broker, "secure-all", 0..20).await;
    let expected = numbered_texts(20);
    let ca = broker.ca_file.display().to_string();
    for (protocol, addr) in [
        ("SASL_PLAINTEXT", &broker.sasl_plaintext),
        ("SASL_SSL", &broker.sasl_ssl),
    ] {
        for mechanism in ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] {
            let mut properties = sasl(mechanism, protocol, PASSWORD);
            if protocol == "SASL_SSL" {
                properties.push(("ssl.ca.location", ca.clone()));
            }
            let client = client_with_properties(addr, &refs(&properties));
            // Kafka answers Metadata with the addresses of the listener asked: the consumer
            // then reaches the broker on that listener, by its id.
            let metadata = client.refresh_metadata().await.unwrap();
            let advertised: Vec<String> = metadata.brokers.values().map(|b| b.address()).collect();
            assert_eq!(advertised, vec![addr.to_string()], "{protocol} {mechanism}");
            let records = read_from_earliest(client, "secure-all", 20).await;
            assert_eq!(values(&records), expected, "{protocol} {mechanism}");
        }
    }
}

#[tokio::test]
async fn a_sasl_session_is_renewed_before_the_broker_ends_it() {
    let broker = SecureKafka::shared();
    broker
        .kafka
        .create_topic("secure-renew", 1, &[])
        .await
        .unwrap();
    let mut properties = sasl("SCRAM-SHA-512", "SASL_SSL", PASSWORD);
    properties.push(("ssl.ca.location", broker.ca_file.display().to_string()));
    let client = client_with_properties(&broker.sasl_ssl, &refs(&properties));
    let pool = client.pool().clone();
    let consumer = earliest_consumer(client);
    consumer
        .assign_topics(&["secure-renew".to_string()])
        .await
        .unwrap();
    // Records keep coming for three session lifetimes; the consumer reads them as they come.
    let run_for = Duration::from_millis(3 * SHARED_SESSION_LIFETIME_MS);
    let started = Instant::now();
    let (received, next) = produce_while_reading(
        &broker.kafka,
        &consumer,
        "secure-renew",
        run_for,
        Duration::from_millis(200),
    )
    .await;
    assert_eq!(values(&received), numbered_texts(next));
    let stats = consumer.stats();
    assert_eq!(stats.failed_fetches, 0, "{stats:?}");
    // The bootstrap connection, the Default and Fetch connections to the broker, and the Fetch
    // connection replaced at 85% of every 3 s session (at 2.55 s, 5.1 s, 7.65 s): without the
    // renewals, the broker closes the connection at the first request after 3 s and a fetch
    // fails.
    let connects = pool.stats().connects;
    assert!(
        connects >= 3 + 2,
        "{connects} connects in {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn a_wrong_password_is_reported_once_with_the_reason() {
    let broker = SecureKafka::shared();
    let client = client_with_properties(
        &broker.sasl_plaintext,
        &refs(&sasl("SCRAM-SHA-256", "SASL_PLAINTEXT", "not-the-password")),
    );
    let started = Instant::now();
    let error = client.refresh_metadata().await.unwrap_err();
    assert!(
        matches!(
            &error,
            ClientError::Net(NetError::Authentication { mechanism, username, .. })
                if mechanism == "SCRAM-SHA-256" && username == USER
        ),
        "{error}"
    );
    let message = error.to_string();
    assert!(message.contains("invalid credentials"), "{message}");
    assert!(message.contains(&broker.sasl_plaintext), "{message}");
    // One attempt: no retry loop behind the error.
    assert_eq!(client.pool().stats().connect_attempts, 1);
    assert!(started.elapsed() < Duration::from_secs(10));

    // The binary says the same and exits.
    let output = wasmkafka(&[
        "run",
        "--brokers",
        &broker.sasl_plaintext,
        "--topic",
        "secure-all",
        "-X",
        "security.protocol=SASL_PLAINTEXT",
        "-X",
        "sasl.mechanism=SCRAM-SHA-256",
        "-X",
        &format!("sasl.username={USER}"),
        "-X",
        "sasl.password=not-the-password",
    ]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "SASL SCRAM-SHA-256 authentication as `{USER}` failed at {}",
            broker.sasl_plaintext
        )),
        "{stderr}"
    );
    assert!(
        !stderr.contains("not-the-password"),
        "the password leaked: {stderr}"
    );
}

#[tokio::test]
async fn an_unknown_ca_is_reported_with_the_fix() {
    let broker = SecureKafka::shared();
    let mut properties = sasl("PLAIN", "SASL_SSL", PASSWORD);
    properties.push((
        "ssl.ca.location",
        broker.other_ca_file.display().to_string(),
    ));
    let client = client_with_properties(&broker.sasl_ssl, &refs(&properties));
    let error = client.refresh_metadata().await.unwrap_err();
    assert!(
        matches!(&error, ClientError::Net(NetError::Tls { .. })),
        "{error}"
    );
    let message = error.to_string();
    assert!(
        message.contains("not signed by a trusted CA (UnknownIssuer)"),
        "{message}"
    );
    assert_eq!(client.pool().stats().connect_attempts, 1);

    let output = wasmkafka(&[
        "metadata",
        "--brokers",
        &broker.sasl_ssl,
        "-X",
        "security.protocol=SASL_SSL",
        "-X",
        "sasl.mechanism=PLAIN",
        "-X",
        &format!("sasl.username={USER}"),
        "-X",
        &format!("sasl.password={PASSWORD}"),
        "-X",
        &format!("ssl.ca.location={}", broker.other_ca_file.display()),
    ]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "TLS with the broker at {} failed",
            broker.sasl_ssl
        )),
        "{stderr}"
    );
    assert!(
        stderr.contains("security.ca_file / ssl.ca.location"),
        "{stderr}"
    );
}

#[tokio::test]
async fn run_reads_over_sasl_ssl_from_a_config_file_with_a_password_file() {
    let broker = SecureKafka::shared();
    broker
        .kafka
        .create_topic("secure-cli", 1, &[])
        .await
        .unwrap();
    produce(broker, "secure-cli", 0..5).await;
    let dir = tempfile::tempdir().unwrap();
    let password_file = dir.path().join("password");
    std::fs::write(&password_file, format!("{PASSWORD}\n")).unwrap();
    let config = dir.path().join("wasmkafka.toml");
    let mut file = std::fs::File::create(&config).unwrap();
    write!(
        file,
        r#"
brokers = ["{addr}"]
[security]
protocol = "SASL_SSL"
ca_file = "{ca}"
sasl_mechanism = "SCRAM-SHA-512"
sasl_username = "{USER}"
sasl_password_file = "{password}"
"#,
        addr = broker.sasl_ssl,
        ca = broker.ca_file.display(),
        password = password_file.display(),
    )
    .unwrap();
    let output = wasmkafka(&[
        "run",
        "--config",
        config.to_str().unwrap(),
        "--topic",
        "secure-cli",
        "--exit-at-end",
        "--format",
        "raw",
    ]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert_eq!(
        String::from_utf8_lossy(&output.stdout),
        "v0\nv1\nv2\nv3\nv4\n"
    );
}

#[tokio::test]
async fn an_ssl_listener_that_requires_a_client_certificate() {
    let broker = SecureKafka::shared();
    broker
        .kafka
        .create_topic("secure-mtls", 1, &[])
        .await
        .unwrap();
    produce(broker, "secure-mtls", 0..3).await;
    let ca = format!("ssl.ca.location={}", broker.ca_file.display());
    let with_certificate = wasmkafka(&[
        "run",
        "--brokers",
        &broker.ssl,
        "--topic",
        "secure-mtls",
        "--exit-at-end",
        "--format",
        "raw",
        "-X",
        "security.protocol=SSL",
        "-X",
        &ca,
        "-X",
        &format!("ssl.certificate.location={}", broker.client_cert.display()),
        "-X",
        &format!("ssl.key.location={}", broker.client_key.display()),
    ]);
    let stderr = String::from_utf8_lossy(&with_certificate.stderr);
    assert!(with_certificate.status.success(), "{stderr}");
    assert_eq!(
        String::from_utf8_lossy(&with_certificate.stdout),
        "v0\nv1\nv2\n"
    );

    let started = Instant::now();
    let without = wasmkafka(&[
        "metadata",
        "--brokers",
        &broker.ssl,
        "-X",
        "security.protocol=SSL",
        "-X",
        &ca,
    ]);
    let stderr = String::from_utf8_lossy(&without.stderr);
    assert!(!without.status.success(), "{stderr}");
    assert!(
        stderr.contains(&format!("TLS with the broker at {} failed", broker.ssl)),
        "{stderr}"
    );
    assert!(
        stderr.contains("security.cert_file / ssl.certificate.location"),
        "{stderr}"
    );
    assert!(started.elapsed() < Duration::from_secs(30), "{stderr}");
}

/// Deletes `user`'s SCRAM-SHA-512 credential (AlterUserScramCredentials, as `alice`).
async fn delete_scram_credential(broker: &SecureKafka, user: &str) {
    use kafka_protocol::messages::alter_user_scram_credentials_request::ScramCredentialDeletion;
    use kafka_protocol::messages::AlterUserScramCredentialsRequest;
    use kafka_protocol::protocol::StrBytes;
    use wasmkafka::net::Purpose;
    let admin = client_with_properties(
        &broker.sasl_plaintext,
        &refs(&sasl("SCRAM-SHA-512", "SASL_PLAINTEXT", PASSWORD)),
    );
    let metadata = admin.refresh_metadata().await.unwrap();
    let node = *metadata.brokers.keys().next().expect("one broker");
    let request = AlterUserScramCredentialsRequest::default().with_deletions(vec![
        ScramCredentialDeletion::default()
            .with_name(StrBytes::from_string(user.to_string()))
            .with_mechanism(2), // SCRAM-SHA-512
    ]);
    let response = admin.send(node, Purpose::Default, &request).await.unwrap();
    assert!(
        response.results.iter().all(|r| r.error_code == 0),
        "{response:?}"
    );
    admin.close();
}

/// A credential revoked while `run` reads: the broker refuses the next session renewal (3 s
/// sessions), which no retry heals, so the run stops with the broker's reason instead of
/// retrying for ever. What it printed before stays printed.
#[tokio::test]
async fn a_credential_revoked_mid_run_stops_the_run_with_the_reason() {
    use std::io::{BufRead, BufReader};
    let broker = SecureKafka::shared();
    broker
        .kafka
        .create_topic("secure-revoked", 1, &[])
        .await
        .unwrap();
    produce(broker, "secure-revoked", 0..3).await;
    let mut child = Command::new(env!("CARGO_BIN_EXE_wasmkafka"))
        .args([
            "run",
            "--brokers",
            &broker.sasl_plaintext,
            "--topic",
            "secure-revoked",
        ])
        .args(["--from", "earliest", "--format", "raw", "--no-progress"])
        .args(["-X", "security.protocol=SASL_PLAINTEXT"])
        .args(["-X", "sasl.mechanism=SCRAM-SHA-512"])
        .args(["-X", &format!("sasl.username={REVOCABLE_USER}")])
        .args(["-X", &format!("sasl.password={REVOCABLE_PASSWORD}")])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Lines arrive on a thread, so waiting for them is bounded.
    let (lines, arrived) = std::sync::mpsc::channel();
    let stdout = BufReader::new(child.stdout.take().unwrap());
    let reader = std::thread::spawn(move || {
        for line in stdout.lines().map_while(Result::ok) {
            if lines.send(line).is_err() {
                break;
            }
        }
    });
    let mut printed = Vec::new();
    for _ in 0..3 {
        match arrived.recv_timeout(Duration::from_secs(60)) {
            Ok(line) => printed.push(line),
            Err(error) => {
                let _ = child.kill();
                panic!("after {printed:?}: {error}");
            }
        }
    }
    assert_eq!(printed, ["v0", "v1", "v2"]);
    delete_scram_credential(broker, REVOCABLE_USER).await;
    let revoked = Instant::now();
    let deadline = revoked + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("run still going 30 s after its credential was deleted");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let output = child.wait_with_output().unwrap();
    reader.join().unwrap();
    let more: Vec<String> = arrived.try_iter().collect();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "SASL SCRAM-SHA-512 authentication as `{REVOCABLE_USER}` failed"
        )),
        "{stderr}"
    );
    assert!(!stderr.contains(REVOCABLE_PASSWORD), "{stderr}");
    assert!(more.is_empty(), "nothing more to print: {more:?}");
    println!(
        "stopped {:?} after the credential was deleted",
        revoked.elapsed()
    );
}

/// Bounded: a failure must end the process, not leave it retrying.
fn wasmkafka(args: &[&str]) -> Output {
    output_or_kill_after(
        Command::new(env!("CARGO_BIN_EXE_wasmkafka")).args(args),
        Duration::from_secs(60),
    )
}
