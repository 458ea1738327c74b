//! Time to first record (`wasmkafka-bench startup`): from the moment a consumer process is
//! started to the moment its first record arrives on its stdout, on a topic that already
//! holds records.
//!
//! Each round starts every consumer in every way it can start, the order rotating round by
//! round:
//! - **assigned**: no group, every partition from offset 0 (what the throughput runs do);
//! - **group**: a fresh consumer group (so no committed offsets: the reset policy decides),
//!   subscribed to the topic: `wasmkafka run --group`, the peers with `BENCH_GROUP` (see
//!   `bench/peers`);
//! - ours only, **group + Wasm plugins**: the same with a Wasm assignor and a Wasm reset policy
//!   from the config file, first with an empty compile cache (**cold**: the plugins are
//!   compiled), then again with the cache that run filled (**warm**: loaded from it).
//!
//! A first, uncounted round warms up: the broker creates `__consumer_offsets` for the first
//! group it sees, and each binary's first start reads it from disk.
//!
//! The clock starts just before the process is spawned (so a JVM's or an interpreter's own
//! start counts, as a user waits for it) and stops when the first bytes of stdout arrive; the
//! process is then killed. Times are medians over the rounds, with their range.

use std::fmt::Write as _;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use bytes::Bytes;
use kafka_protocol::records::Compression;
use wasmkafka::produce::{produce_batch, OutgoingRecord};
use wasmkafka_tests::kafka::Kafka;

// The consumers compared by default are those of `latency`: the ones that print values.
use crate::latency::DEFAULT_PEERS;
use crate::peers::{Peer, Tools};
use crate::report::median;

const TOPIC: &str = "startup";
const PARTITIONS: i32 = 4;
const RECORDS_PER_PARTITION: usize = 250;
/// The most a consumer may take to print its first record.
const FIRST_RECORD_LIMIT: Duration = Duration::from_secs(120);

const USAGE: &str = "usage: wasmkafka-bench startup [--rounds N] [--peer ID]...";

/// `wasmkafka-bench startup` options.
#[derive(Debug, Clone)]
pub struct Options {
    pub rounds: usize,
    pub peers: Vec<Peer>,
}

/// Parses the arguments after `startup`.
pub fn options(mut args: impl Iterator<Item = String>) -> Result<Options> {
    let mut options = Options {
        rounds: 5,
        peers: Vec::new(),
    };
    while let Some(arg) = args.next() {
        let mut value = || args.next().with_context(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--rounds" => options.rounds = value()?.parse().context("--rounds N")?,
            "--peer" => options.peers.push(Peer::by_id(&value()?)?),
            other => bail!("unknown argument `{other}`; {USAGE}"),
        }
    }
    if options.rounds == 0 {
        bail!("--rounds must be at least 1; {USAGE}");
    }
    if options.peers.is_empty() {
        options.peers = DEFAULT_PEERS.to_vec();
    }
    Ok(options)
}

/// How a consumer starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Start {
    Assigned,
    Group,
    /// Ours, with a Wasm assignor and reset policy, compiling them.
    PluginsCold,
    /// Ours, with the same plugins loaded from the compile cache.
    PluginsWarm,
}

impl Start {
    const ALL: [Start; 4] = [
        Start::Assigned,
        Start::Group,
        Start::PluginsCold,
        Start::PluginsWarm,
    ];

    fn title(self) -> &'static str {
        match self {
            Start::Assigned => "assigned, no group",
            Start::Group => "new group",
            Start::PluginsCold => "new group, Wasm plugins, cache cold",
            Start::PluginsWarm => "new group, Wasm plugins, cache warm",
        }
    }

    fn applies_to(self, peer: Peer) -> bool {
        match self {
            Start::Assigned | Start::Group => true,
            Start::PluginsCold | Start::PluginsWarm => peer.is_ours(),
        }
    }
}

/// Milliseconds to the first record, per consumer and way of starting, over the rounds.
pub type Results = Vec<(Peer, Vec<(Start, Vec<f64>)>)>;

/// Loads the topic, then starts every consumer every way, `rounds` times.
pub async fn run(tools: &Tools, kafka: &Kafka, options: &Options, out: &Path) -> Result<Results> {
    load_topic(kafka).await?;
    let plugins = PluginFiles::find(tools)?;
    let mut results: Results = options
        .peers
        .iter()
        .map(|peer| {
            let starts = Start::ALL.iter().filter(|s| s.applies_to(*peer));
            (*peer, starts.map(|s| (*s, Vec::new())).collect())
        })
        .collect();
    // Round 0 warms up and is not counted: the broker creates __consumer_offsets for the
    // first group, and the first start of each binary reads it from disk.
    for round in 0..=options.rounds {
        let mut order = options.peers.clone();
        order.rotate_left(round % options.peers.len());
        for peer in order {
            let cache = out.join(format!("startup-cache-{round}-{}", peer.id()));
            let _ = std::fs::remove_dir_all(&cache);
            for start in Start::ALL.into_iter().filter(|s| s.applies_to(peer)) {
                let group = format!("startup-{round}-{}-{start:?}", peer.id());
                let mut command = peer.command_for(
                    tools,
                    &kafka.addr(),
                    TOPIC,
                    PARTITIONS,
                    (RECORDS_PER_PARTITION * PARTITIONS as usize) as u64,
                );
                match start {
                    Start::Assigned => {}
                    Start::Group if !peer.is_ours() => {
                        command.env("BENCH_GROUP", &group);
                    }
                    Start::Group => {
                        command.args(["--group", &group]);
                    }
                    Start::PluginsCold | Start::PluginsWarm => {
                        let config = plugins.config(out, &cache)?;
                        command
                            .args(["--group", &group])
                            .arg("--config")
                            .arg(config);
                    }
                }
                let took = first_record(command, peer)
                    .with_context(|| format!("{} ({})", peer.name(), start.title()))?;
                eprintln!(
                    "startup: {} ({}), {}: {:.0} ms",
                    peer.name(),
                    start.title(),
                    match round {
                        0 => "warm-up, not counted".to_string(),
                        round => format!("round {round}"),
                    },
                    took.as_secs_f64() * 1e3
                );
                if round == 0 {
                    continue;
                }
                let (_, starts) = results
                    .iter_mut()
                    .find(|(p, _)| *p == peer)
                    .expect("every peer has a slot");
                let (_, times) = starts
                    .iter_mut()
                    .find(|(s, _)| *s == start)
                    .expect("every start of the peer has a slot");
                times.push(took.as_secs_f64() * 1e3);
            }
            let _ = std::fs::remove_dir_all(&cache);
        }
    }
    Ok(results)
}

/// Starts `command` and waits for the first bytes on its stdout; kills it then.
fn first_record(mut command: Command, peer: Peer) -> Result<Duration> {
    command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let started = Instant::now();
    let mut child = command
        .spawn()
        .with_context(|| format!("cannot start {}", peer.name()))?;
    let mut stdout = child.stdout.take().expect("stdout is piped");
    let mut stderr = child.stderr.take().expect("stderr is piped");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut byte = [0u8; 1];
        let _ = tx.send(stdout.read(&mut byte).map(|n| (n, Instant::now())));
        // Keep the pipe open (and drained) until the process is killed.
        let _ = std::io::copy(&mut stdout, &mut std::io::sink());
    });
    let stderr_thread = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text);
        text
    });
    let first = rx.recv_timeout(FIRST_RECORD_LIMIT);
    let _ = child.kill();
    let _ = child.wait();
    let stderr = stderr_thread.join().unwrap_or_default();
    match first {
        Ok(Ok((n, at))) if n > 0 => Ok(at - started),
        Ok(_) => bail!("exited before it printed a record; its stderr:\n{stderr}"),
        Err(_) => bail!("printed nothing within {FIRST_RECORD_LIMIT:?}; its stderr:\n{stderr}"),
    }
}

async fn load_topic(kafka: &Kafka) -> Result<()> {
    kafka
        .create_topic(TOPIC, PARTITIONS, &[])
        .await
        .with_context(|| format!("cannot create {TOPIC}"))?;
    let client = kafka.client();
    let records: Vec<OutgoingRecord> = (0..RECORDS_PER_PARTITION)
        .map(|i| OutgoingRecord {
            key: None,
            value: Some(Bytes::from(format!("{i:<100}"))),
            headers: Vec::new(),
            timestamp: None,
        })
        .collect();
    for partition in 0..PARTITIONS {
        produce_batch(&client, TOPIC, partition, &records, Compression::None)
            .await
            .with_context(|| format!("cannot produce to {TOPIC}/{partition}"))?;
    }
    client.close();
    Ok(())
}

/// The plugins of the Wasm start: the repository's round-robin assignor and earliest reset
/// policy (built by `scripts/build-plugins.sh`).
struct PluginFiles {
    assignor: PathBuf,
    reset: PathBuf,
}

impl PluginFiles {
    fn find(tools: &Tools) -> Result<PluginFiles> {
        let dir = tools.peers_dir.join("../../target/wasm32-wasip2/release");
        let file = |name: &str| {
            let path = dir.join(name);
            match path.canonicalize() {
                Ok(path) => Ok(path),
                Err(_) => bail!(
                    "{} is missing: build the plugins first (scripts/build-plugins.sh)",
                    path.display()
                ),
            }
        };
        Ok(PluginFiles {
            assignor: file("assignor_roundrobin.wasm")?,
            reset: file("reset_earliest.wasm")?,
        })
    }

    /// A config file naming the plugins and a compile cache in `cache` (created private, as
    /// the cache requires).
    fn config(&self, out: &Path, cache: &Path) -> Result<PathBuf> {
        create_private_dir(cache)?;
        let mut text = String::new();
        writeln!(
            text,
            "[plugins]\ncache_dir = {:?}\n",
            cache.display().to_string()
        )?;
        writeln!(
            text,
            "[[plugins.assignors]]\npath = {:?}\n",
            self.assignor.display().to_string()
        )?;
        writeln!(
            text,
            "[plugins.reset_policy]\npath = {:?}",
            self.reset.display().to_string()
        )?;
        let path = out.join("startup-plugins.toml");
        std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))?;
        Ok(path)
    }
}

fn create_private_dir(dir: &Path) -> Result<()> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("cannot create {}", dir.display()))?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    Ok(())
}

/// The results as a markdown table: a row per consumer, a column per way of starting.
pub fn markdown(results: &Results, rounds: usize) -> String {
    let mut text = format!(
        "#### Time to first record, ms ({PARTITIONS} partitions x {RECORDS_PER_PARTITION} \
         records already there; median (min-max) of {rounds} rounds)\n\n| consumer |"
    );
    let columns: Vec<Start> = Start::ALL
        .into_iter()
        .filter(|s| results.iter().any(|(p, _)| s.applies_to(*p)))
        .collect();
    for start in &columns {
        let _ = write!(text, " {} |", start.title());
    }
    text.push_str("\n|---|");
    text.push_str(&"---:|".repeat(columns.len()));
    text.push('\n');
    for (peer, starts) in results {
        let _ = write!(text, "| {} |", peer.name());
        for start in &columns {
            let cell = starts
                .iter()
                .find(|(s, _)| s == start)
                .filter(|(_, times)| !times.is_empty())
                .map_or("-".to_string(), |(_, times)| cell(times));
            let _ = write!(text, " {cell} |");
        }
        text.push('\n');
    }
    text
}

fn cell(times: &[f64]) -> String {
    let low = times.iter().copied().fold(f64::INFINITY, f64::min);
    let high = times.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let middle = median(times.to_vec());
    if times.len() == 1 {
        format!("{middle:.0}")
    } else {
        format!("{middle:.0} ({low:.0}-{high:.0})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_default_to_five_rounds_and_the_value_printing_peers() {
        let options = options(std::iter::empty()).unwrap();
        assert_eq!(options.rounds, 5);
        assert_eq!(options.peers, DEFAULT_PEERS.to_vec());
        let named = super::options(
            ["--peer", "java", "--rounds", "2"]
                .map(String::from)
                .into_iter(),
        )
        .unwrap();
        assert_eq!((named.rounds, named.peers), (2, vec![Peer::Java]));
        assert!(super::options(["--rounds", "0"].map(String::from).into_iter()).is_err());
        assert!(super::options(["--bogus"].map(String::from).into_iter()).is_err());
    }

    #[test]
    fn the_table_has_the_plugin_columns_only_for_ours_and_medians_with_ranges() {
        let results: Results = vec![
            (
                Peer::WasmkafkaRaw,
                vec![
                    (Start::Assigned, vec![30.0, 10.0, 20.0]),
                    (Start::Group, vec![100.0]),
                    (Start::PluginsCold, vec![900.0]),
                    (Start::PluginsWarm, vec![]),
                ],
            ),
            (
                Peer::Java,
                vec![(Start::Assigned, vec![400.0]), (Start::Group, vec![3000.0])],
            ),
        ];
        let table = markdown(&results, 3);
        assert!(table.contains(
            "| consumer | assigned, no group | new group | new group, Wasm plugins, cache cold \
             | new group, Wasm plugins, cache warm |"
        ));
        assert!(
            table.contains("| wasmkafka raw | 20 (10-30) | 100 | 900 | - |"),
            "{table}"
        );
        assert!(
            table.contains("| Java kafka-clients | 400 | 3000 | - | - |"),
            "{table}"
        );
    }

    #[test]
    fn the_plugin_config_names_both_plugins_and_a_private_cache() {
        let dir = std::env::temp_dir().join(format!("startup-config-{}", std::process::id()));
        let files = PluginFiles {
            assignor: "/p/assignor_roundrobin.wasm".into(),
            reset: "/p/reset_earliest.wasm".into(),
        };
        let cache = dir.join("cache");
        let path = files.config(&dir, &cache).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let config = wasmkafka::config::Config::parse(&text);
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&cache).unwrap().permissions().mode();
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(config.is_ok(), "{text}: {:?}", config.err());
        assert!(text.contains("assignor_roundrobin.wasm") && text.contains("reset_earliest.wasm"));
        assert_eq!(mode & 0o777, 0o700);
    }
}
