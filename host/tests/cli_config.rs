//! The config habits operators bring: a Java client's properties file (`--config` / `-F`),
//! `WASMKAFKA_*` environment overrides, a default config file, and `config show`.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use wasmkafka_tests::bounded::BoundedOutput;
use wasmkafka_tests::cli_member::CliMember;
use wasmkafka_tests::java::JavaMember;
use wasmkafka_tests::kafka::admin::{offsets_written, value_record};
use wasmkafka_tests::kafka::Kafka;

fn wasmkafka() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_wasmkafka"))
}

/// A Java team's client.properties, for a group on `bootstrap`.
fn java_properties(bootstrap: &str, group: &str) -> String {
    format!(
        "# client.properties, as a Java consumer uses it\n\
         bootstrap.servers={bootstrap}\n\
         group.id={group}\n\
         client.id=shared-client\n\
         auto.offset.reset=earliest\n\
         enable.auto.commit=true\n\
         partition.assignment.strategy=org.apache.kafka.clients.consumer.RangeAssignor\n\
         session.timeout.ms=10000\n\
         heartbeat.interval.ms=300\n\
         key.deserializer=org.apache.kafka.common.serialization.StringDeserializer\n\
         value.deserializer=org.apache.kafka.common.serialization.StringDeserializer\n\
         interceptor.classes=\n"
    )
}

/// One properties file, read by the Java client and by `wasmkafka run --config`: both join
/// the group the file names, each holds a share, and every record is read. The Java-only
/// properties (deserializers, interceptors) are named once in a warning and ignored.
#[tokio::test(flavor = "multi_thread")]
async fn one_properties_file_serves_a_java_consumer_and_wasmkafka_in_one_group() {
    let broker = Kafka::shared();
    let topic = "config-properties";
    broker.create_topic(topic, 4, &[]).await.unwrap();
    let firsts = broker
        .produce_to_each_partition(topic, 4, 10, 10, |partition, n| {
            value_record(format!("{partition}-{n}"), None)
        })
        .await
        .unwrap();
    let written = offsets_written(&firsts, 10);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("client.properties");
    std::fs::write(
        &file,
        java_properties(&broker.addr(), "config-properties-g"),
    )
    .unwrap();

    let mut java = JavaMember::start_with_jvm_options(
        &broker.addr(),
        "config-properties-g",
        topic,
        "range",
        "classic",
        Some(&file),
        &[],
    )
    .unwrap();
    let args = ["--config", file.to_str().unwrap(), "--topic", topic];
    let mut ours = CliMember::start("wasmkafka", wasmkafka(), &args, (0, Duration::ZERO));
    ours.wait_until(
        "both members holding a share and every record read",
        Duration::from_secs(60),
        |member| {
            let java_records = java.records();
            let read: std::collections::BTreeSet<(i64, i64)> = member
                .printed()
                .into_iter()
                .chain(java_records.iter().map(|(p, o)| (*p as i64, *o)))
                .collect();
            !java.assignment().is_empty()
                && !member.printed().is_empty()
                && written.iter().all(|r| read.contains(r))
        },
    );
    java.stop(Duration::from_secs(20)).unwrap();
    let finished = ours.stop_cleanly(Duration::from_secs(20));
    let warned = finished
        .log
        .lines()
        .filter(|l| l.contains("ignoring a Kafka property") && l.contains("key.deserializer"))
        .count();
    assert_eq!(warned, 1, "{}", finished.log);
    assert!(
        finished.log.contains("interceptor.classes"),
        "{}",
        finished.log
    );
}

/// `config show` names where each setting came from (file, environment, flag), masks the
/// password, and finds the default config file when no file is given.
#[test]
fn config_show_names_each_settings_origin_and_masks_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("client.properties");
    std::fs::write(
        &file,
        "bootstrap.servers=k1:9092,k2:9092\n\
         group.id=from-file\n\
         security.protocol=SASL_SSL\n\
         sasl.mechanism=SCRAM-SHA-256\n\
         sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required \
         username=\"alice\" password=\"s3cret-value\";\n",
    )
    .unwrap();
    let home = tempfile::tempdir().unwrap();
    let output = Command::new(wasmkafka())
        .args(["config", "show", "-F"])
        .arg(&file)
        .args(["-X", "client.id=from-flag"])
        .env("WASMKAFKA_CONSUMER_MAX_POLL_RECORDS", "7")
        .env("WASMKAFKA_CONSUMER_GROUP", "from-env")
        .env("XDG_CONFIG_HOME", home.path())
        .bounded_output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let line = |key: &str| {
        stdout
            .lines()
            .find(|l| l.starts_with(&format!("{key} = ")))
            .unwrap_or_else(|| panic!("no `{key}` in:\n{stdout}"))
            .to_string()
    };
    let origin = format!("# {}", file.display());
    assert!(
        line("brokers").contains("[\"k1:9092\", \"k2:9092\"]")
            && line("brokers").ends_with(&origin),
        "{stdout}"
    );
    assert!(
        line("consumer.group").contains("\"from-env\"")
            && line("consumer.group").ends_with("# $WASMKAFKA_CONSUMER_GROUP"),
        "{stdout}"
    );
    assert!(
        line("consumer.max_poll_records").contains("= 7"),
        "{stdout}"
    );
    assert!(line("client_id").ends_with("# -X"), "{stdout}");
    assert!(
        line("security.sasl_password").contains("\"***\""),
        "{stdout}"
    );
    assert!(!stdout.contains("s3cret-value"), "{stdout}");

    // No file given: the default one, in the platform's config directory.
    std::fs::create_dir_all(home.path().join("wasmkafka")).unwrap();
    let default = home.path().join("wasmkafka/config.toml");
    std::fs::write(&default, "brokers = [\"d:9092\"]\n").unwrap();
    let output = Command::new(wasmkafka())
        .args(["config", "show"])
        .env("XDG_CONFIG_HOME", home.path())
        .env_remove("WASMKAFKA_CONFIG")
        .bounded_output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains(&format!("# config file: {}", default.display()))
            && stdout.contains("brokers = [\"d:9092\"]"),
        "{stdout}"
    );
}

/// A key store in a properties file is refused with the way to convert it, and a bad
/// environment value names its variable.
#[test]
fn what_cannot_be_honoured_is_refused_with_the_fix() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("client.properties");
    std::fs::write(
        &file,
        "bootstrap.servers=k:9092\nssl.keystore.location=/etc/kafka/client.jks\n",
    )
    .unwrap();
    let output = Command::new(wasmkafka())
        .args(["metadata", "--config"])
        .arg(&file)
        .bounded_output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(
        stderr.contains("a JKS key store is not supported")
            && stderr.contains("keytool -importkeystore"),
        "{stderr}"
    );

    let output = Command::new(wasmkafka())
        .args(["metadata", "--brokers", "k:9092"])
        .env("WASMKAFKA_CONSUMER_MAX_POLL_RECORDS", "many")
        .bounded_output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(
        stderr.contains("$WASMKAFKA_CONSUMER_MAX_POLL_RECORDS"),
        "{stderr}"
    );
}
