//! The Apache Kafka harness itself: a shared broker of the selected version that creates
//! topics and deletes records, and brokers that never outlive the test process, even when it
//! is SIGKILLed.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use wasmkafka::produce::OutgoingRecord;
use wasmkafka_tests::kafka::{versions, Kafka};

fn records(count: usize) -> Vec<OutgoingRecord> {
    (0..count)
        .map(|i| OutgoingRecord {
            value: Some(Bytes::from(format!("record-{i}"))),
            ..OutgoingRecord::default()
        })
        .collect()
}

#[tokio::test]
async fn shared_broker_creates_topics_with_configs_and_deletes_records() {
    let kafka = Kafka::shared();
    kafka
        .create_topic("harness-topic", 2, &[("retention.ms", "3600000")])
        .await
        .unwrap();
    let client = kafka.client();
    let metadata = client.refresh_metadata().await.unwrap();
    assert_eq!(metadata.topics["harness-topic"].partitions.len(), 2);
    let first = kafka
        .produce(&client, "harness-topic", 1, &records(10), 4)
        .await
        .unwrap();
    assert_eq!(first, 0);
    let log_start = kafka.delete_records("harness-topic", 1, 6).await.unwrap();
    assert_eq!(log_start, 6);
    // Creating it again is refused with the broker's reason.
    let again = kafka
        .create_topic("harness-topic", 2, &[])
        .await
        .unwrap_err();
    assert!(
        format!("{again:#}").contains("TopicAlreadyExists"),
        "{again:#}"
    );
}

/// The broker is the version `WASMKAFKA_KAFKA_VERSION` selects (the default when unset): the
/// running JVM announces its own version in `server.log` (AppInfoParser's "Kafka version: X",
/// read from the jar it runs), and its classpath holds that release's broker jar and no other.
#[tokio::test]
async fn the_broker_is_the_selected_kafka_version() {
    let kafka = Kafka::shared();
    let expected = versions::selected().kafka;
    let log = kafka.server_log(1);
    let announced: BTreeSet<&str> = log
        .lines()
        .filter_map(|line| line.split("Kafka version: ").nth(1))
        .filter_map(|rest| rest.split_whitespace().next())
        .collect();
    assert_eq!(
        announced,
        BTreeSet::from([expected]),
        "the versions the broker announces in its server.log (left) against the selected one"
    );

    let pid = kafka.pids()[0];
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap();
    let args: Vec<String> = cmdline
        .split(|byte| *byte == 0)
        .map(|arg| String::from_utf8_lossy(arg).into_owned())
        .collect();
    let classpath = args
        .iter()
        .position(|arg| arg == "-cp")
        .map(|at| &args[at + 1])
        .expect("the broker JVM has -cp");
    let folder = PathBuf::from(classpath.trim_end_matches("/*"));
    let broker_jars: Vec<String> = std::fs::read_dir(&folder)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.starts_with("kafka_2.13-"))
        .collect();
    assert_eq!(
        broker_jars,
        vec![format!("kafka_2.13-{expected}.jar")],
        "broker jars in {}",
        folder.display()
    );
}

/// Run by `brokers_die_with_a_sigkilled_test_process` in a child process: starts a broker,
/// prints its JVM's pid and waits to be killed.
#[tokio::test]
#[ignore = "a helper the harness test runs in a child process"]
async fn child_holds_a_broker() {
    if std::env::var_os("WASMKAFKA_HARNESS_CHILD").is_none() {
        return;
    }
    let kafka = Kafka::start().await.unwrap();
    println!("broker-pids {:?}", kafka.pids());
    tokio::time::sleep(Duration::from_secs(120)).await;
}

fn alive(pid: u32) -> bool {
    // A zombie has died; its parent has not reaped it yet.
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|stat| {
            !stat
                .rsplit(')')
                .next()
                .unwrap_or("")
                .trim_start()
                .starts_with('Z')
        })
        .unwrap_or(false)
}

#[test]
fn brokers_die_with_a_sigkilled_test_process() {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "child_holds_a_broker",
            "--ignored",
            "--nocapture",
        ])
        .env("WASMKAFKA_HARNESS_CHILD", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut pids = None;
    for line in BufReader::new(child.stdout.take().unwrap()).lines() {
        let line = line.unwrap();
        if let Some(list) = line.strip_prefix("broker-pids ") {
            let list: Vec<u32> = list
                .trim_matches(|c| c == '[' || c == ']')
                .split(',')
                .map(|pid| pid.trim().parse().unwrap())
                .collect();
            pids = Some(list);
            break;
        }
    }
    let pids = pids.expect("the child printed its broker's pid");
    assert_eq!(pids.len(), 1);
    assert!(
        alive(pids[0]),
        "the broker runs while its test process runs"
    );
    child.kill().unwrap(); // SIGKILL: no destructor runs in the child
    child.wait().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while alive(pids[0]) {
        assert!(
            Instant::now() < deadline,
            "broker {} outlived its SIGKILLed test process",
            pids[0]
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}
