//! SASL/OAUTHBEARER against Apache Kafka (`OAuthKafka`): tokens from the local OIDC provider
//! (`Oidc`, client credentials, RS256) checked by Kafka's `OAuthBearerValidatorCallbackHandler`
//! against the provider's JWKS, and unsecured tokens on Kafka's unsecured validator. Through
//! the library and through `wasmkafka run` with a TOML config and a Java `client.properties`;
//! short-lived tokens refreshed while a connection re-authenticates; a wrong secret, an
//! unreachable endpoint and an expired token, each with its error. The README's first
//! example (a Java team's `client.properties` for SASL_SSL + OAUTHBEARER with an `https`
//! token endpoint and a PKCS#12 truststore) runs as written, alone and in one group with a
//! Java consumer reading the same file; an endpoint the truststore does not trust is refused.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use wasmkafka::client::ClientError;
use wasmkafka::net::{NetError, TokenError};
use wasmkafka_tests::bounded::output_or_kill_after;
use wasmkafka_tests::cli_member::CliMember;
use wasmkafka_tests::java::JavaMember;
use wasmkafka_tests::kafka::admin::{offsets_written, value_record};
use wasmkafka_tests::kafka::oauth::{OAuthKafka, TRUSTSTORE_PASSWORD};
use wasmkafka_tests::kafka::secure::client_with_properties;
use wasmkafka_tests::readme::readme_block;
use wasmkafka_tests::records::{
    earliest_consumer, numbered_texts, produce_numbered, produce_while_reading, read_from_earliest,
    values,
};

const SECRET: &str = "client-secret";

/// Kafka 4.x's client-credentials properties for `client_id` on `protocol`.
fn oidc_properties(
    broker: &OAuthKafka,
    protocol: &str,
    client_id: &str,
    secret: &str,
) -> Vec<(&'static str, String)> {
    let mut properties = vec![
        ("security.protocol", protocol.to_string()),
        ("sasl.mechanism", "OAUTHBEARER".to_string()),
        (
            "sasl.oauthbearer.token.endpoint.url",
            broker.oidc.token_url(),
        ),
        (
            "sasl.oauthbearer.client.credentials.client.id",
            client_id.to_string(),
        ),
        (
            "sasl.oauthbearer.client.credentials.client.secret",
            secret.to_string(),
        ),
        ("sasl.oauthbearer.scope", "kafka".to_string()),
    ];
    if protocol == "SASL_SSL" {
        properties.push(("ssl.ca.location", broker.ca_file.display().to_string()));
    }
    properties
}

async fn produce(broker: &OAuthKafka, topic: &str, values: std::ops::Range<i64>) {
    produce_numbered(&broker.kafka, topic, values).await;
}

#[tokio::test]
async fn tokens_from_the_provider_pass_kafkas_oidc_validator_on_both_listeners() {
    let broker = OAuthKafka::shared();
    broker
        .kafka
        .create_topic("oauth-all", 1, &[])
        .await
        .unwrap();
    produce(broker, "oauth-all", 0..20).await;
    for (protocol, addr) in [
        ("SASL_PLAINTEXT", &broker.oidc_plaintext),
        ("SASL_SSL", &broker.oidc_ssl),
    ] {
        let client_id = format!("lib-{}", protocol.to_ascii_lowercase());
        broker
            .oidc
            .add_client(&client_id, SECRET, Duration::from_secs(300));
        let client =
            client_with_properties(addr, &oidc_properties(broker, protocol, &client_id, SECRET));
        let metadata = client.refresh_metadata().await.unwrap();
        let advertised: Vec<String> = metadata.brokers.values().map(|b| b.address()).collect();
        assert_eq!(advertised, vec![addr.to_string()], "{protocol}");
        let records = read_from_earliest(client, "oauth-all", 20).await;
        assert_eq!(values(&records), numbered_texts(20), "{protocol}");
        // One token serves every connection of the client (bootstrap, metadata, fetch).
        assert_eq!(broker.oidc.granted(&client_id), 1, "{protocol}");
        assert_eq!(broker.oidc.scopes(&client_id), ["kafka"], "{protocol}");
    }
    // The broker checked the signatures with the provider's keys.
    assert!(broker.oidc.jwks_requests() >= 1);
}

/// Tokens that live 6 s: the broker gives each session the token's remaining life, the pool
/// replaces a connection at 85% of it, and the replacement authenticates with a token fetched
/// after 80-85% of the previous one's life. Consumption goes on across four lifetimes with no
/// failed fetch.
#[tokio::test]
async fn short_lived_tokens_are_refreshed_and_connections_reauthenticate() {
    let broker = OAuthKafka::shared();
    broker
        .kafka
        .create_topic("oauth-refresh", 1, &[])
        .await
        .unwrap();
    let lifetime = Duration::from_secs(6);
    broker.oidc.add_client("refresh", SECRET, lifetime);
    let client = client_with_properties(
        &broker.oidc_ssl,
        &oidc_properties(broker, "SASL_SSL", "refresh", SECRET),
    );
    let pool = client.pool().clone();
    let consumer = earliest_consumer(client);
    consumer
        .assign_topics(&["oauth-refresh".to_string()])
        .await
        .unwrap();
    let run_for = lifetime * 4;
    let started = Instant::now();
    let (received, next) = produce_while_reading(
        &broker.kafka,
        &consumer,
        "oauth-refresh",
        run_for,
        Duration::from_millis(300),
    )
    .await;
    assert_eq!(values(&received), numbered_texts(next));
    let stats = consumer.stats();
    assert_eq!(stats.failed_fetches, 0, "{stats:?}");
    let granted = broker.oidc.granted("refresh");
    assert!(
        (4..=12).contains(&granted),
        "{granted} tokens in {:?}",
        started.elapsed()
    );
    // The fetch connection alone is replaced at least once per token lifetime.
    let connects = pool.stats().connects;
    assert!(
        connects >= 3 + 3,
        "{connects} connects in {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn a_wrong_secret_is_reported_with_the_endpoint_and_the_client() {
    let broker = OAuthKafka::shared();
    broker
        .oidc
        .add_client("wrong-secret", SECRET, Duration::from_secs(300));
    let client = client_with_properties(
        &broker.oidc_plaintext,
        &oidc_properties(broker, "SASL_PLAINTEXT", "wrong-secret", "not-the-secret"),
    );
    let started = Instant::now();
    let error = client.refresh_metadata().await.unwrap_err();
    assert!(
        matches!(
            &error,
            ClientError::Net(NetError::OAuthToken { error, .. })
                if matches!(**error, TokenError::Refused { status: 401, .. })
        ),
        "{error}"
    );
    let message = error.to_string();
    for part in [
        broker.oidc.token_url().as_str(),
        "client `wrong-secret`",
        "invalid_client",
        "Check the client id and secret",
    ] {
        assert!(message.contains(part), "`{part}` in {message}");
    }
    // Refused once: no retry, no second broker.
    assert_eq!(broker.oidc.refused("wrong-secret"), 1);
    assert!(started.elapsed() < Duration::from_secs(5));

    // The binary says the same, prints nothing and exits non-zero.
    broker
        .kafka
        .create_topic("oauth-wrong", 1, &[])
        .await
        .unwrap();
    produce(broker, "oauth-wrong", 0..3).await;
    let mut args = vec![
        "run".to_string(),
        "--brokers".into(),
        broker.oidc_plaintext.clone(),
        "--topic".into(),
        "oauth-wrong".into(),
        "--from".into(),
        "earliest".into(),
    ];
    for (key, value) in oidc_properties(broker, "SASL_PLAINTEXT", "wrong-secret", "not-the-secret")
    {
        args.push("-X".into());
        args.push(format!("{key}={value}"));
    }
    let output = wasmkafka(&args.iter().map(String::as_str).collect::<Vec<_>>());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert!(output.stdout.is_empty(), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "the token endpoint {} refused client `wrong-secret`: HTTP 401: invalid_client",
            broker.oidc.token_url()
        )),
        "{stderr}"
    );
    assert!(
        !stderr.contains("not-the-secret"),
        "the secret leaked: {stderr}"
    );
}

#[tokio::test]
async fn an_unreachable_token_endpoint_is_reported_after_bounded_retries() {
    let broker = OAuthKafka::shared();
    let port = wasmkafka_tests::kafka::free_port().unwrap();
    let url = format!("http://127.0.0.1:{port}/token");
    let output_started = Instant::now();
    let output = wasmkafka(&[
        "metadata",
        "--brokers",
        &broker.oidc_plaintext,
        "-X",
        "security.protocol=SASL_PLAINTEXT",
        "-X",
        "sasl.mechanism=OAUTHBEARER",
        "-X",
        &format!("sasl.oauthbearer.token.endpoint.url={url}"),
        "-X",
        "sasl.oauthbearer.client.credentials.client.id=nobody",
        "-X",
        "sasl.oauthbearer.client.credentials.client.secret=s",
        "-X",
        "sasl.login.retry.backoff.max.ms=2000",
    ]);
    let elapsed = output_started.elapsed();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "cannot reach the token endpoint {url} for client `nobody`"
        )),
        "{stderr}"
    );
    assert!(stderr.contains("is the identity provider up"), "{stderr}");
    // Retried for sasl.login.retry.backoff.max.ms (2 s), then reported.
    assert!(
        elapsed >= Duration::from_secs(2) && elapsed < Duration::from_secs(20),
        "{elapsed:?}: {stderr}"
    );
}

#[tokio::test]
async fn an_expired_token_is_refused_by_the_broker_with_the_reason() {
    let broker = OAuthKafka::shared();
    broker
        .oidc
        .add_client("expired", SECRET, Duration::from_secs(300));
    broker
        .oidc
        .issue_expired("expired", Duration::from_secs(120));
    let client = client_with_properties(
        &broker.oidc_plaintext,
        &oidc_properties(broker, "SASL_PLAINTEXT", "expired", SECRET),
    );
    let error = client.refresh_metadata().await.unwrap_err();
    assert!(
        matches!(&error, ClientError::Net(NetError::OAuthBearer { principal, .. }) if principal == "expired"),
        "{error}"
    );
    let message = error.to_string();
    for part in [
        "SASL OAUTHBEARER authentication as `expired` failed at",
        "the broker refused the token: {\"status\":\"invalid_token\"}",
        "the token expired 12",
    ] {
        assert!(message.contains(part), "`{part}` in {message}");
    }
    assert_eq!(client.pool().stats().connect_attempts, 1, "{message}");
}

#[tokio::test]
async fn unsecured_tokens_pass_kafkas_unsecured_validator() {
    let broker = OAuthKafka::shared();
    broker
        .kafka
        .create_topic("oauth-unsecured", 1, &[])
        .await
        .unwrap();
    produce(broker, "oauth-unsecured", 0..5).await;
    let jaas = "org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule required \
                unsecuredLoginStringClaim_sub=\"alice\";";
    let client = client_with_properties(
        &broker.unsecured,
        &[
            ("security.protocol", "SASL_PLAINTEXT"),
            ("sasl.mechanism", "OAUTHBEARER"),
            ("sasl.jaas.config", jaas),
        ],
    );
    let records = read_from_earliest(client, "oauth-unsecured", 5).await;
    assert_eq!(values(&records), numbered_texts(5));

    // The OIDC listener refuses the same unsigned token.
    let refused = client_error(&broker.oidc_plaintext, jaas).await;
    assert!(
        refused.contains("SASL OAUTHBEARER authentication as `alice` failed"),
        "{refused}"
    );
}

async fn client_error(addr: &str, jaas: &str) -> String {
    let client = client_with_properties(
        addr,
        &[
            ("security.protocol", "SASL_PLAINTEXT"),
            ("sasl.mechanism", "OAUTHBEARER"),
            ("sasl.jaas.config", jaas),
        ],
    );
    client.refresh_metadata().await.unwrap_err().to_string()
}

/// `wasmkafka run` as a user would start it: a TOML config with the secret in a file, and
/// the Java team's `client.properties` (Kafka 4.x's property names and the JAAS form).
#[tokio::test]
async fn run_reads_with_a_toml_config_and_with_a_client_properties_file() {
    let broker = OAuthKafka::shared();
    broker
        .kafka
        .create_topic("oauth-cli", 1, &[])
        .await
        .unwrap();
    produce(broker, "oauth-cli", 0..5).await;
    broker
        .oidc
        .add_client("cli-toml", SECRET, Duration::from_secs(300));
    broker
        .oidc
        .add_client("cli-properties", SECRET, Duration::from_secs(300));
    let dir = tempfile::tempdir().unwrap();
    let secret_file = dir.path().join("oauth-secret");
    std::fs::write(&secret_file, format!("{SECRET}\n")).unwrap();
    let toml = dir.path().join("wasmkafka.toml");
    std::fs::write(
        &toml,
        format!(
            r#"brokers = ["{addr}"]
[security]
protocol = "SASL_SSL"
ca_file = "{ca}"
sasl_mechanism = "OAUTHBEARER"
oauth_token_endpoint = "{url}"
oauth_client_id = "cli-toml"
oauth_client_secret_file = "{secret}"
oauth_scope = "kafka"
"#,
            addr = broker.oidc_ssl,
            ca = broker.ca_file.display(),
            url = broker.oidc.token_url(),
            secret = secret_file.display(),
        ),
    )
    .unwrap();
    let properties = dir.path().join("client.properties");
    std::fs::write(
        &properties,
        format!(
            "bootstrap.servers={addr}\n\
             security.protocol=SASL_SSL\n\
             ssl.truststore.type=PEM\n\
             ssl.truststore.location={ca}\n\
             sasl.mechanism=OAUTHBEARER\n\
             sasl.login.callback.handler.class=org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginCallbackHandler\n\
             sasl.oauthbearer.token.endpoint.url={url}\n\
             sasl.jaas.config=org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule required \\\n\
             \x20   clientId=\"cli-properties\" clientSecret=\"{SECRET}\" scope=\"kafka\";\n\
             key.deserializer=org.apache.kafka.common.serialization.StringDeserializer\n",
            addr = broker.oidc_ssl,
            ca = broker.ca_file.display(),
            url = broker.oidc.token_url(),
        ),
    )
    .unwrap();
    for (config, client_id) in [(&toml, "cli-toml"), (&properties, "cli-properties")] {
        let output = wasmkafka(&[
            "run",
            "--config",
            config.to_str().unwrap(),
            "--topic",
            "oauth-cli",
            "--exit-at-end",
            "--format",
            "raw",
        ]);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(output.status.success(), "{client_id}: {stderr}");
        assert_eq!(
            String::from_utf8_lossy(&output.stdout),
            "v0\nv1\nv2\nv3\nv4\n",
            "{client_id}"
        );
        assert!(broker.oidc.granted(client_id) >= 1, "{client_id}");
        assert!(!stderr.contains(SECRET), "the secret leaked: {stderr}");
    }
}

/// `run` keeps reading across token lifetimes in a process of its own; the log shows
/// nothing failed.
#[tokio::test]
async fn run_keeps_reading_across_token_lifetimes() {
    let broker = OAuthKafka::shared();
    broker
        .kafka
        .create_topic("oauth-cli-long", 1, &[])
        .await
        .unwrap();
    broker
        .oidc
        .add_client("cli-long", SECRET, Duration::from_secs(5));
    let mut command = Command::new(env!("CARGO_BIN_EXE_wasmkafka"));
    command
        .args(["run", "--brokers", &broker.oidc_plaintext])
        .args(["--topic", "oauth-cli-long", "--from", "earliest"])
        .args(["--format", "raw", "--no-progress"]);
    for (key, value) in oidc_properties(broker, "SASL_PLAINTEXT", "cli-long", SECRET) {
        command.args(["-X", &format!("{key}={value}")]);
    }
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (lines, arrived) = std::sync::mpsc::channel();
    let stdout = BufReader::new(child.stdout.take().unwrap());
    let reader = std::thread::spawn(move || {
        for line in stdout.lines().map_while(Result::ok) {
            if lines.send(line).is_err() {
                break;
            }
        }
    });
    let started = Instant::now();
    let mut next = 0;
    let mut printed = Vec::new();
    while started.elapsed() < Duration::from_secs(16) {
        produce(broker, "oauth-cli-long", next..next + 3).await;
        next += 3;
        tokio::time::sleep(Duration::from_millis(500)).await;
        printed.extend(arrived.try_iter());
        if let Some(status) = child.try_wait().unwrap() {
            panic!("run ended early ({status}) after {printed:?}");
        }
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    while printed.len() < next as usize && Instant::now() < deadline {
        if let Ok(line) = arrived.recv_timeout(Duration::from_millis(200)) {
            printed.push(line);
        }
    }
    let _ = child.kill();
    let output = child.wait_with_output().unwrap();
    reader.join().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(printed, numbered_texts(next), "{stderr}");
    let granted = broker.oidc.granted("cli-long");
    assert!(granted >= 3, "{granted} tokens: {stderr}");
}

/// The README's first `client.properties` ("From your Java team's client.properties"), with
/// only what a user puts in its place: the brokers (the `OIDC_SSL` listener), the truststore
/// and its password, the token endpoint, the client id and its secret. Written to
/// `dir/client.properties`.
fn readme_client_properties(
    broker: &OAuthKafka,
    dir: &Path,
    client_id: &str,
    token_url: &str,
) -> PathBuf {
    let mut text = readme_block("properties", "bootstrap.servers=");
    let truststore = broker.truststore.display().to_string();
    for (from, to) in [
        (
            "kafka-1.example.com:9093,kafka-2.example.com:9093",
            broker.oidc_ssl.as_str(),
        ),
        ("/etc/kafka/truststore.p12", truststore.as_str()),
        ("=changeit", &format!("={TRUSTSTORE_PASSWORD}")),
        (
            "https://idp.example.com/realms/kafka/protocol/openid-connect/token",
            token_url,
        ),
        (
            "clientId=\"orders-audit\"",
            &format!("clientId=\"{client_id}\""),
        ),
        (
            "clientSecret=\"s3cr3t\"",
            &format!("clientSecret=\"{SECRET}\""),
        ),
    ] {
        assert!(
            text.contains(from),
            "the README's client.properties no longer has `{from}`:\n{text}"
        );
        text = text.replace(from, to);
    }
    let file = dir.join("client.properties");
    std::fs::write(&file, text).unwrap();
    file
}

/// The README's command after `wasmkafka run`, split at spaces (it has no quotes).
fn readme_run_args() -> Vec<String> {
    let block = readme_block("sh", "-F client.properties");
    let line = block
        .lines()
        .find(|line| line.starts_with("wasmkafka run "))
        .unwrap_or_else(|| panic!("no `wasmkafka run` line in:\n{block}"));
    line.split_whitespace().skip(2).map(String::from).collect()
}

/// `count` records on each of `partitions` partitions of `topic`: their (partition, offset).
async fn produce_everywhere(
    broker: &OAuthKafka,
    topic: &str,
    partitions: i32,
    count: i64,
) -> Vec<(i64, i64)> {
    let firsts = broker
        .kafka
        .produce_to_each_partition(topic, partitions, count, 10, |partition, n| {
            value_record(format!("{partition}-{n}"), None)
        })
        .await
        .unwrap();
    offsets_written(&firsts, count)
}

/// The README's first example as a user runs it: its `client.properties` (SASL_SSL,
/// OAUTHBEARER with an `https` token endpoint, a PKCS#12 truststore made by keytool) in the
/// working directory and its command, unchanged. The token endpoint's certificate comes from
/// the test CA, which only the truststore holds: the endpoint is checked against the
/// truststore. Every record of every partition is printed, then SIGTERM ends it cleanly.
#[tokio::test(flavor = "multi_thread")]
async fn the_readme_client_properties_example_reads_every_record() {
    let broker = OAuthKafka::shared();
    assert!(broker.https_token_url.starts_with("https://"));
    let args = readme_run_args();
    assert_eq!(
        args,
        [
            "-F",
            "client.properties",
            "--topic",
            "orders",
            "--group",
            "orders-audit"
        ]
    );
    broker.kafka.create_topic("orders", 3, &[]).await.unwrap();
    let written = produce_everywhere(broker, "orders", 3, 10).await;
    broker
        .oidc
        .add_client("orders-audit", SECRET, Duration::from_secs(300));
    let dir = tempfile::tempdir().unwrap();
    readme_client_properties(broker, dir.path(), "orders-audit", &broker.https_token_url);
    let mut ours = CliMember::start_in(
        "the README's command",
        Path::new(env!("CARGO_BIN_EXE_wasmkafka")),
        Some(dir.path()),
        &args,
        (0, Duration::ZERO),
    );
    ours.wait_until("every record printed", Duration::from_secs(60), |member| {
        let printed: BTreeSet<(i64, i64)> = member.printed().into_iter().collect();
        written.iter().all(|record| printed.contains(record))
    });
    let finished = ours.stop_cleanly(Duration::from_secs(20));
    assert!(broker.oidc.granted("orders-audit") >= 1, "{}", finished.log);
    for secret in [SECRET, TRUSTSTORE_PASSWORD] {
        assert!(!finished.log.contains(secret), "{}", finished.log);
    }
}

/// The same file with an `https` token endpoint whose certificate nothing trusts
/// (self-signed): the command ends at once, naming the endpoint, the certificate problem and
/// where the trusted CAs come from; no token is asked for.
#[tokio::test]
async fn a_token_endpoint_the_truststore_does_not_trust_is_refused() {
    let broker = OAuthKafka::shared();
    broker
        .oidc
        .add_client("orders-untrusted", SECRET, Duration::from_secs(300));
    let dir = tempfile::tempdir().unwrap();
    let file = readme_client_properties(
        broker,
        dir.path(),
        "orders-untrusted",
        &broker.untrusted_token_url,
    );
    let started = Instant::now();
    let output = wasmkafka(&["metadata", "-F", file.to_str().unwrap()]);
    let elapsed = started.elapsed();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    for part in [
        format!(
            "the token endpoint {} cannot be trusted (client `orders-untrusted`)",
            broker.untrusted_token_url
        )
        .as_str(),
        "its certificate is not signed by a trusted CA (UnknownIssuer)",
        "ssl.truststore.location",
    ] {
        assert!(stderr.contains(part), "`{part}` in {stderr}");
    }
    assert_eq!(broker.oidc.granted("orders-untrusted"), 0);
    // Not retried: no retry makes the certificate trusted.
    assert!(elapsed < Duration::from_secs(5), "{elapsed:?}: {stderr}");
}

/// A truststore for the brokers' private CA does not shut out the system's CAs for the token
/// endpoint: a cluster behind a private CA often gets its tokens from a provider with a public
/// certificate. The self-signed endpoint stands in for that provider, and `SSL_CERT_FILE`
/// (read by the system trust store loader) for the system's CAs.
#[tokio::test]
async fn a_token_endpoint_the_system_trusts_is_trusted_beside_the_truststore() {
    let broker = OAuthKafka::shared();
    broker
        .oidc
        .add_client("orders-public-idp", SECRET, Duration::from_secs(300));
    let dir = tempfile::tempdir().unwrap();
    let file = readme_client_properties(
        broker,
        dir.path(),
        "orders-public-idp",
        &broker.untrusted_token_url,
    );
    let output = wasmkafka_with_env(
        &["metadata", "-F", file.to_str().unwrap()],
        &[("SSL_CERT_FILE", &broker.untrusted_cert)],
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert_eq!(broker.oidc.granted("orders-public-idp"), 1, "{stderr}");
}

/// A Java consumer (kafka-clients, in a JVM started as Kafka 4.x requires for an OAuth
/// endpoint: the URL allowed, the CA in the JVM's trust store) and `wasmkafka run` read the
/// README's `client.properties` (other topic, group and client id) and join one group on the
/// `OIDC_SSL` listener: each holds a share and every record is read.
#[tokio::test(flavor = "multi_thread")]
async fn a_java_consumer_and_wasmkafka_share_a_group_from_the_readme_client_properties() {
    let broker = OAuthKafka::shared();
    let (topic, group) = ("orders-java", "orders-java-audit");
    broker.kafka.create_topic(topic, 4, &[]).await.unwrap();
    let written = produce_everywhere(broker, topic, 4, 10).await;
    broker
        .oidc
        .add_client("orders-java", SECRET, Duration::from_secs(300));
    let dir = tempfile::tempdir().unwrap();
    let file = readme_client_properties(broker, dir.path(), "orders-java", &broker.https_token_url);
    let args: Vec<String> = readme_run_args()
        .into_iter()
        .map(|arg| match arg.as_str() {
            "orders" => topic.to_string(),
            "orders-audit" => group.to_string(),
            _ => arg,
        })
        .collect();
    let mut java = JavaMember::start_with_jvm_options(
        &broker.oidc_ssl,
        group,
        topic,
        "range",
        "classic",
        Some(&file),
        &[
            format!(
                "-Dorg.apache.kafka.sasl.oauthbearer.allowed.urls={}",
                broker.https_token_url
            ),
            format!("-Djavax.net.ssl.trustStore={}", broker.truststore.display()),
            format!("-Djavax.net.ssl.trustStorePassword={TRUSTSTORE_PASSWORD}"),
            "-Djavax.net.ssl.trustStoreType=PKCS12".to_string(),
        ],
    )
    .unwrap();
    let mut ours = CliMember::start_in(
        "wasmkafka",
        Path::new(env!("CARGO_BIN_EXE_wasmkafka")),
        Some(dir.path()),
        &args,
        (0, Duration::ZERO),
    );
    ours.wait_until(
        "both members holding a share and every record read",
        Duration::from_secs(90),
        |member| {
            let read: BTreeSet<(i64, i64)> = member
                .printed()
                .into_iter()
                .chain(java.records().iter().map(|(p, o)| (*p as i64, *o)))
                .collect();
            !java.assignment().is_empty()
                && !member.printed().is_empty()
                && written.iter().all(|record| read.contains(record))
        },
    );
    java.stop(Duration::from_secs(20)).unwrap();
    let finished = ours.stop_cleanly(Duration::from_secs(20));
    // A token for each client, from the same endpoint.
    assert!(broker.oidc.granted("orders-java") >= 2, "{}", finished.log);
}

fn wasmkafka(args: &[&str]) -> Output {
    wasmkafka_with_env(args, &[])
}

/// Bounded: a failure must end the process, not leave it retrying.
fn wasmkafka_with_env(args: &[&str], env: &[(&str, &std::path::Path)]) -> Output {
    output_or_kill_after(
        Command::new(env!("CARGO_BIN_EXE_wasmkafka"))
            .args(args)
            .envs(env.iter().copied()),
        Duration::from_secs(60),
    )
}
