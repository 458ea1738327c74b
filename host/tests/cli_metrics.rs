//! `wasmkafka run --metrics`: a scrape during a real consumption on Apache Kafka. `/readyz`
//! says 503 while the group has nothing for the member and flips to 200 once partitions are
//! assigned and fetched; `/metrics` counts exactly the records printed and the lag falls to 0.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use wasmkafka::produce::OutgoingRecord;
use wasmkafka_tests::kafka::{free_port, Kafka};
use wasmkafka_tests::metrics::{get, sample};

fn wait_until(what: &str, timeout: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scrape_counts_what_was_printed_and_readyz_flips_with_the_assignment() {
    let broker = Kafka::shared();
    let port = free_port().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("wasmkafka.toml");
    // New topics matching the pattern are noticed within a second.
    std::fs::write(&config, "[net]\nmetadata_max_age_ms = 1000\n").unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_wasmkafka"))
        .args(["run", "--config", config.to_str().unwrap()])
        .args(["--brokers", &broker.addr(), "--group", "metrics-group"])
        .args(["--topic-pattern", "^metricsready-"])
        .args(["--from", "earliest", "--format", "raw"])
        .args(["--metrics", &format!("127.0.0.1:{port}")])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let printed = Arc::new(AtomicUsize::new(0));
    let stdout = child.stdout.take().unwrap();
    let counter = printed.clone();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            if line.is_err() {
                break;
            }
            counter.fetch_add(1, Ordering::SeqCst);
        }
    });

    wait_until("/healthz", Duration::from_secs(30), || {
        get(port, "/healthz").is_some_and(|(status, _)| status == 200)
    });
    // No topic matches yet: the member is in the group with nothing assigned.
    std::thread::sleep(Duration::from_secs(2));
    let (status, body) = get(port, "/readyz").unwrap();
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("no partitions assigned"), "{body}");

    broker.create_topic("metricsready-1", 2, &[]).await.unwrap();
    let client = broker.client();
    for partition in [0, 1] {
        let records: Vec<OutgoingRecord> = (0..250)
            .map(|i| OutgoingRecord {
                key: Some(Bytes::from(format!("k{i}"))),
                value: Some(Bytes::from(format!("value-{partition}-{i:04}"))),
                headers: Vec::new(),
                timestamp: None,
            })
            .collect();
        broker
            .produce(&client, "metricsready-1", partition, &records, 50)
            .await
            .unwrap();
    }
    client.close();

    wait_until("/readyz to say 200", Duration::from_secs(60), || {
        get(port, "/readyz").is_some_and(|(status, _)| status == 200)
    });
    let mut last = String::new();
    wait_until(
        "every record printed, counted, and no lag",
        Duration::from_secs(60),
        || {
            let Some((200, text)) = get(port, "/metrics") else {
                return false;
            };
            last = text;
            let counted = sample(
                &last,
                "wasmkafka_records_consumed_total{topic=\"metricsready-1\"}",
            );
            counted == Some(500.0)
                && printed.load(Ordering::SeqCst) == 500
                && sample(&last, "wasmkafka_consumer_lag_max") == Some(0.0)
                // `run` commits what it wrote, in the background after each batch.
                && sample(&last, "wasmkafka_commits_total").is_some_and(|c| c >= 1.0)
        },
    );
    // Values are "value-P-NNNN" (12 bytes); keys "k0".."k249", per partition.
    let key_bytes: usize = (0..250)
        .map(|i: usize| format!("k{i}").len())
        .sum::<usize>()
        * 2;
    let value_bytes = 500 * "value-0-0000".len();
    assert_eq!(
        sample(
            &last,
            "wasmkafka_consumed_bytes_total{topic=\"metricsready-1\"}"
        ),
        Some((key_bytes + value_bytes) as f64)
    );
    for partition in [0, 1] {
        let name =
            format!("wasmkafka_consumer_lag{{topic=\"metricsready-1\",partition=\"{partition}\"}}");
        assert_eq!(sample(&last, &name), Some(0.0), "{last}");
    }
    assert_eq!(sample(&last, "wasmkafka_assigned_partitions"), Some(2.0));
    assert!(sample(&last, "wasmkafka_fetch_requests_total").unwrap() >= 1.0);
    // Joined with nothing, then rejoined when the topic appeared: two rebalances, each timed.
    let rebalances = sample(&last, "wasmkafka_rebalances_total").unwrap();
    assert!(rebalances >= 2.0, "{last}");
    assert_eq!(
        sample(&last, "wasmkafka_rebalance_duration_seconds_count"),
        Some(rebalances)
    );
    assert_eq!(
        sample(&last, "wasmkafka_partitions_assigned_total"),
        Some(2.0)
    );
    assert_eq!(sample(&last, "wasmkafka_partitions_lost_total"), Some(0.0));
    // Both partitions started without a committed offset: the reset policy placed them.
    assert_eq!(
        sample(
            &last,
            "wasmkafka_resets_total{reason=\"no_committed_offset\",policy=\"earliest\",outcome=\"resolved\"}"
        ),
        Some(2.0),
        "{last}"
    );
    assert!(sample(&last, "wasmkafka_fetch_duration_seconds_count").unwrap() >= 1.0);
    assert!(sample(&last, "wasmkafka_fetched_bytes_total").unwrap() >= value_bytes as f64);
    // Every commit attempt is timed.
    let commits = sample(&last, "wasmkafka_commits_total").unwrap();
    let commit_failures = sample(&last, "wasmkafka_commit_failures_total").unwrap();
    assert_eq!(
        sample(&last, "wasmkafka_commit_duration_seconds_count"),
        Some(commits + commit_failures)
    );
    assert!(
        last.lines()
            .any(|l| l.starts_with("wasmkafka_connections{") && l.contains("purpose=\"fetch\"")),
        "{last}"
    );
    assert!(
        last.trim_end().ends_with("# EOF"),
        "OpenMetrics text ends with # EOF"
    );

    // A clean stop.
    let sent = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
    let status = child.wait().unwrap();
    assert!(status.success(), "{status:?}");
    reader.join().unwrap();
}
