//! End-to-end record latency (`wasmkafka-bench latency`): from the moment a record is handed
//! to the producer to the moment its line arrives on the consumer's stdout, at steady rates
//! well below the ceiling.
//!
//! First a warm-up (`--warm-up S`, 30 s unless set; 0 skips it): the first consumer (every
//! consumer with `--together`) through the steps below at the first rate, not measured. The
//! broker has just started, and its first seconds of produce and fetch run before its JIT
//! has compiled them. Without the warm-up, in a 10-round run the consumer first in round 1
//! (ours) had a p99 of 11.1 ms against 2.4-4.2 ms in its 9 other rounds, and the second
//! (the rdkafka crate) 8.0 ms. With 10 s of warm-up, round 1 was still the highest p99 of
//! three consumers of the next run (7.1, 5.7 and 4.7 ms), hence 30 s.
//!
//! Then for each rate, round and consumer (the order rotating round by round), on a fresh topic:
//! 1. The consumer starts from offset 0 of every partition with `BENCH_FLUSH_EACH_POLL=1`
//!    (the peers flush after every poll; `wasmkafka run` always does) and its stdout piped
//!    here.
//! 2. Probe records go out every 100 ms until the consumer prints one: it is up and fetching.
//!    One more second passes (connections warm, the JVM's first compilations done).
//! 3. The paced phase: every partition gets `rate / partitions` records a second, each record's
//!    value its send time in nanoseconds since the epoch (padded with spaces to 100 bytes).
//!    One task per partition sends the records due, waits for the acknowledgement and sends the
//!    next due ones (at high rates that batches what fell due meanwhile), so a record waits in
//!    the producer at most one round trip and its stamp is taken just before it is sent.
//! 4. Two seconds to drain, then the consumer is killed.
//!
//! With `--low-latency` each consumer runs with its client's documented low-latency settings:
//! the broker's fetch wait (`fetch.max.wait.ms` and its equivalents) down to 10 ms, and
//! librdkafka's fetch error backoff too (its wiki's "How to decrease message latency").
//!
//! With `--together`, every consumer of a round reads the same topic at the same time: one
//! paced producer feeds them all, so each sees the same broker, the same records and the same
//! load on the machine at the same moment. On a machine that is busy with something else the
//! one-after-another runs measure the machine's mood as much as the consumers; side by side
//! they share it.
//!
//! With `--capture`, `tcpdump` records the broker's port on loopback during each run, and
//! every record's latency is split where it crosses the wire: the producer's part, the wait
//! for a fetch when none was at the broker, the broker's part and the consumer's own part
//! ([`wire`]). A table per rate shows the legs. It needs root (or `CAP_NET_RAW`) and tcpdump.
//!
//! A reader thread takes the clock when each chunk of stdout arrives and subtracts the stamps
//! of the lines in it. Every latency of the paced phase is kept (no histogram buckets: the
//! percentiles are exact). Records of the paced phase never read count as lost.

use std::io::Read;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context, Result};
use bytes::Bytes;
use kafka_protocol::records::Compression;
use wasmkafka::client::Client;
use wasmkafka::produce::{produce_batch, OutgoingRecord};
use wasmkafka_tests::kafka::Kafka;

use crate::peers::{Peer, Tools};

pub mod report;
pub mod wire;

/// The bytes of each record's value: the stamp, then spaces.
const VALUE_BYTES: usize = 100;
/// How long the paced phase may wait for the consumer to print its first probe.
const READY_LIMIT: Duration = Duration::from_secs(60);
/// After the paced phase: the time the consumer has to print the last records.
const DRAIN: Duration = Duration::from_secs(2);

/// `wasmkafka-bench latency` options.
#[derive(Debug, Clone)]
pub struct Options {
    pub rounds: usize,
    /// Records per second over all partitions.
    pub rates: Vec<u64>,
    /// Length of the paced phase.
    pub seconds: u64,
    pub partitions: i32,
    pub peers: Vec<Peer>,
    /// Every consumer of a round on one topic at once.
    pub together: bool,
    /// Each consumer with its documented low-latency settings (the broker's fetch wait down to
    /// 10 ms; see `bench/peers`), where the default run keeps every client's defaults.
    pub low_latency: bool,
    /// Length of the unmeasured paced phase before the first round (0: none).
    pub warm_up: u64,
    /// Each record's latency split where it crosses the wire, from a loopback capture of the
    /// broker's port (`tcpdump`; see [`wire`]).
    pub capture: bool,
}

/// The consumers compared by default: every peer that prints values (the JSON variants print
/// the same records through another formatter; aiokafka is an asyncio library whose numbers
/// say more about Python than about fetching).
pub const DEFAULT_PEERS: [Peer; 5] = [
    Peer::WasmkafkaRaw,
    Peer::RdkafkaRaw,
    Peer::FranzGo,
    Peer::Java,
    Peer::ConfluentPython,
];

const USAGE: &str = "usage: wasmkafka-bench latency [--rounds N] [--rate R]... [--seconds S] \
                     [--partitions P] [--peer ID]... [--together] [--low-latency] \
                     [--warm-up S] [--capture]";

/// Parses the arguments after `latency`.
pub fn options(mut args: impl Iterator<Item = String>) -> Result<Options> {
    let mut options = Options {
        rounds: 3,
        rates: Vec::new(),
        seconds: 20,
        partitions: 4,
        peers: Vec::new(),
        together: false,
        low_latency: false,
        warm_up: 30,
        capture: false,
    };
    while let Some(arg) = args.next() {
        let mut value = || args.next().with_context(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--rounds" => options.rounds = value()?.parse().context("--rounds N")?,
            "--rate" => options.rates.push(value()?.parse().context("--rate R")?),
            "--seconds" => options.seconds = value()?.parse().context("--seconds S")?,
            "--partitions" => options.partitions = value()?.parse().context("--partitions P")?,
            "--peer" => options.peers.push(Peer::by_id(&value()?)?),
            "--together" => options.together = true,
            "--low-latency" => options.low_latency = true,
            "--warm-up" => options.warm_up = value()?.parse().context("--warm-up S")?,
            "--capture" => options.capture = true,
            other => bail!("unknown argument `{other}`; {USAGE}"),
        }
    }
    if options.rounds == 0 || options.seconds == 0 || options.partitions < 1 {
        bail!("--rounds, --seconds and --partitions must be at least 1; {USAGE}");
    }
    if options.rates.is_empty() {
        options.rates = vec![1_000, 10_000];
    }
    if options.rates.contains(&0) {
        bail!("--rate must be at least 1; {USAGE}");
    }
    if options.peers.is_empty() {
        options.peers = DEFAULT_PEERS.to_vec();
    }
    Ok(options)
}

/// The samples of one rate, by consumer.
pub type RateResults = (u64, Vec<(Peer, Vec<Sample>)>);

/// One consumer's run at one rate.
#[derive(Debug, Clone)]
pub struct Sample {
    /// Latencies of the paced phase, in nanoseconds, sorted.
    pub latencies: Vec<u64>,
    pub produced: u64,
    /// With `--capture`: the latencies split at the wire.
    pub split: Option<wire::Split>,
}

impl Sample {
    /// The latency at quantile `q` (0..=1), in milliseconds.
    pub fn quantile_ms(&self, q: f64) -> Option<f64> {
        quantile(&self.latencies, q).map(|ns| ns as f64 / 1e6)
    }
}

/// The value at quantile `q` of sorted `values` (nearest rank).
pub fn quantile(values: &[u64], q: f64) -> Option<u64> {
    if values.is_empty() {
        return None;
    }
    let rank = (q * values.len() as f64).ceil() as usize;
    Some(values[rank.clamp(1, values.len()) - 1])
}

/// Runs every consumer at every rate, `rounds` times: the samples by rate and peer, in the
/// order of `options.rates` and `options.peers`.
pub async fn run(tools: &Tools, kafka: &Kafka, options: &Options) -> Result<Vec<RateResults>> {
    warm_up(tools, kafka, options).await?;
    let mut results = Vec::new();
    for &rate in &options.rates {
        let mut by_peer: Vec<(Peer, Vec<Sample>)> =
            options.peers.iter().map(|p| (*p, Vec::new())).collect();
        for round in 0..options.rounds {
            if options.together {
                let topic = format!("latency-{rate}-{round}-together");
                kafka
                    .create_topic(&topic, options.partitions, &[])
                    .await
                    .with_context(|| format!("cannot create {topic}"))?;
                eprintln!(
                    "latency: every consumer at once at {rate} records/s, round {}",
                    round + 1
                );
                let samples = together_run(tools, kafka, &topic, rate, options).await?;
                for ((peer, slot), sample) in by_peer.iter_mut().zip(samples) {
                    log_sample(*peer, &sample);
                    slot.push(sample);
                }
                continue;
            }
            let mut order = options.peers.clone();
            order.rotate_left(round % options.peers.len());
            for peer in order {
                let topic = format!("latency-{rate}-{round}-{}", peer.id());
                kafka
                    .create_topic(&topic, options.partitions, &[])
                    .await
                    .with_context(|| format!("cannot create {topic}"))?;
                eprintln!(
                    "latency: {} at {rate} records/s, round {}",
                    peer.name(),
                    round + 1
                );
                let samples =
                    together_run(tools, kafka, &topic, rate, &only(peer, options)).await?;
                let sample = samples
                    .into_iter()
                    .next()
                    .expect("one consumer, one sample");
                log_sample(peer, &sample);
                by_peer
                    .iter_mut()
                    .find(|(p, _)| *p == peer)
                    .expect("every peer has a slot")
                    .1
                    .push(sample);
            }
        }
        results.push((rate, by_peer));
    }
    Ok(results)
}

/// The unmeasured run before the first round (see the module's steps).
async fn warm_up(tools: &Tools, kafka: &Kafka, options: &Options) -> Result<()> {
    let (Some(&rate), Some(&first)) = (options.rates.first(), options.peers.first()) else {
        return Ok(());
    };
    if options.warm_up == 0 {
        return Ok(());
    }
    let topic = "latency-warm-up";
    kafka
        .create_topic(topic, options.partitions, &[])
        .await
        .with_context(|| format!("cannot create {topic}"))?;
    let warming = Options {
        seconds: options.warm_up,
        peers: if options.together {
            options.peers.clone()
        } else {
            vec![first]
        },
        ..options.clone()
    };
    eprintln!(
        "latency: warm-up, {} s at {rate} records/s (not measured)",
        options.warm_up
    );
    together_run(tools, kafka, topic, rate, &warming).await?;
    Ok(())
}

/// `options` with `peer` as its only consumer.
fn only(peer: Peer, options: &Options) -> Options {
    Options {
        peers: vec![peer],
        ..options.clone()
    }
}

fn log_sample(peer: Peer, sample: &Sample) {
    eprintln!(
        "  {}: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms, {} of {} read",
        peer.name(),
        sample.quantile_ms(0.5).unwrap_or(f64::NAN),
        sample.quantile_ms(0.99).unwrap_or(f64::NAN),
        sample.quantile_ms(1.0).unwrap_or(f64::NAN),
        sample.latencies.len(),
        sample.produced
    );
}

/// Runs `options.peers` on `topic` at once (one of them, or all with `--together`): a sample
/// per consumer, in their order.
async fn together_run(
    tools: &Tools,
    kafka: &Kafka,
    topic: &str,
    rate: u64,
    options: &Options,
) -> Result<Vec<Sample>> {
    let capture = if options.capture {
        Some(wire::Capture::start(broker_port(kafka)?)?)
    } else {
        None
    };
    let mut consumers = Vec::new();
    for &peer in &options.peers {
        // Far more than the run produces: the consumer runs until it is killed.
        let mut command =
            peer.command_for(tools, &kafka.addr(), topic, options.partitions, 1 << 40);
        if options.low_latency {
            command.env("BENCH_LOW_LATENCY", "1");
            if peer.is_ours() {
                command.args(["-X", "fetch.max.wait.ms=10"]);
            }
        }
        command
            .env("BENCH_FLUSH_EACH_POLL", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        consumers.push(Consumer::spawn(command, peer)?);
    }
    let result = async {
        let client = kafka.client();
        wait_until_reading(&client, topic, options.partitions, &consumers).await?;
        tokio::time::sleep(Duration::from_secs(1)).await;
        let phase_start = now_ns();
        for consumer in &consumers {
            consumer.reader.measure_from(phase_start);
        }
        let produced =
            produce_paced(&client, topic, options.partitions, rate, options.seconds).await?;
        tokio::time::sleep(DRAIN).await;
        client.close();
        anyhow::Ok(produced)
    }
    .await;
    let arrivals: Vec<Vec<(u64, u64)>> = consumers.iter_mut().map(|c| c.stop()).collect();
    let produced = result?;
    let wire = capture.map(wire::Capture::finish).transpose()?;
    Ok(arrivals
        .into_iter()
        .map(|arrivals| {
            let split = wire.as_ref().and_then(|wire| wire.split(&arrivals));
            let mut latencies: Vec<u64> = arrivals
                .iter()
                .map(|(stamp, arrived)| arrived.saturating_sub(*stamp))
                .collect();
            latencies.sort_unstable();
            Sample {
                latencies,
                produced,
                split,
            }
        })
        .collect())
}

/// The port of the broker the consumers read from (a single node).
fn broker_port(kafka: &Kafka) -> Result<u16> {
    let addr = kafka.addrs().into_iter().next().context("a broker")?;
    addr.rsplit(':')
        .next()
        .and_then(|port| port.parse().ok())
        .with_context(|| format!("no port in {addr}"))
}

/// Sends a probe record to every partition every 100 ms until every consumer printed a line.
async fn wait_until_reading(
    client: &Client,
    topic: &str,
    partitions: i32,
    consumers: &[Consumer],
) -> Result<()> {
    let started = Instant::now();
    while let Some(waiting) = consumers.iter().find(|c| c.reader.lines() == 0) {
        if started.elapsed() > READY_LIMIT {
            bail!(
                "{} printed nothing within {READY_LIMIT:?}",
                waiting.peer.name()
            );
        }
        if let Some(ended) = consumers.iter().find(|c| c.reader.ended()) {
            bail!("{} exited before it printed anything", ended.peer.name());
        }
        for partition in 0..partitions {
            let probe = [stamped_record(now_ns())];
            produce_batch(client, topic, partition, &probe, Compression::None)
                .await
                .with_context(|| format!("cannot produce to {topic}/{partition}"))?;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(())
}

/// The paced phase: `rate` records a second over all partitions for `seconds`; returns how
/// many were sent.
async fn produce_paced(
    client: &Client,
    topic: &str,
    partitions: i32,
    rate: u64,
    seconds: u64,
) -> Result<u64> {
    let started = Instant::now();
    let per_partition = rate as f64 / partitions as f64;
    let total = (per_partition * seconds as f64).round() as u64;
    let mut tasks = Vec::new();
    for partition in 0..partitions {
        let (client, topic) = (client.clone(), topic.to_string());
        tasks.push(tokio::spawn(async move {
            let mut sent = 0u64;
            while sent < total {
                let due = ((started.elapsed().as_secs_f64() * per_partition) as u64).min(total);
                if due <= sent {
                    let next = Duration::from_secs_f64((sent + 1) as f64 / per_partition);
                    tokio::time::sleep_until((started + next).into()).await;
                    continue;
                }
                let stamp = now_ns();
                let records: Vec<OutgoingRecord> =
                    (sent..due).map(|_| stamped_record(stamp)).collect();
                produce_batch(&client, &topic, partition, &records, Compression::None)
                    .await
                    .with_context(|| format!("cannot produce to {topic}/{partition}"))?;
                sent = due;
            }
            anyhow::Ok(sent)
        }));
    }
    let mut produced = 0;
    for task in tasks {
        produced += task.await??;
    }
    Ok(produced)
}

fn stamped_record(stamp_ns: u64) -> OutgoingRecord {
    let value = format!("{stamp_ns:<VALUE_BYTES$}");
    OutgoingRecord {
        key: None,
        value: Some(Bytes::from(value)),
        headers: Vec::new(),
        timestamp: None,
    }
}

fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("the clock is after 1970")
        .as_nanos() as u64
}

/// The consumer under test and the thread reading its stdout.
struct Consumer {
    peer: Peer,
    child: Child,
    reader: Arc<Reader>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Consumer {
    fn spawn(mut command: Command, peer: Peer) -> Result<Consumer> {
        let mut child = command
            .spawn()
            .with_context(|| format!("cannot start {}", peer.name()))?;
        let stdout = child.stdout.take().expect("stdout is piped");
        let reader = Arc::new(Reader::default());
        let thread = std::thread::spawn({
            let reader = reader.clone();
            move || reader.read_all(stdout)
        });
        Ok(Consumer {
            peer,
            child,
            reader,
            thread: Some(thread),
        })
    }

    /// Kills the consumer: the stamps it printed in the paced phase, each with the moment its
    /// line arrived, in arrival order.
    fn stop(&mut self) -> Vec<(u64, u64)> {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        std::mem::take(&mut *self.reader.arrivals.lock().expect("lock"))
    }
}

impl Drop for Consumer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What the reader thread found.
#[derive(Default)]
struct Reader {
    lines: AtomicU64,
    ended: AtomicBool,
    /// Stamps at or after this count (0: none yet).
    measure_from: AtomicU64,
    /// Per line of the paced phase: its stamp and when it arrived.
    arrivals: Mutex<Vec<(u64, u64)>>,
}

impl Reader {
    fn lines(&self) -> u64 {
        self.lines.load(Ordering::Acquire)
    }

    fn ended(&self) -> bool {
        self.ended.load(Ordering::Acquire)
    }

    fn measure_from(&self, stamp_ns: u64) {
        self.measure_from.store(stamp_ns, Ordering::Release);
    }

    fn read_all(&self, mut stdout: impl Read) {
        let mut buffer = vec![0u8; 1 << 16];
        let mut partial: Vec<u8> = Vec::new();
        loop {
            let read = match stdout.read(&mut buffer) {
                Ok(0) | Err(_) => break,
                Ok(read) => read,
            };
            let arrived = now_ns();
            partial.extend_from_slice(&buffer[..read]);
            let Some(last_newline) = partial.iter().rposition(|b| *b == b'\n') else {
                continue;
            };
            let from = self.measure_from.load(Ordering::Acquire);
            let mut found = Vec::new();
            let mut lines = 0;
            for line in partial[..last_newline].split(|b| *b == b'\n') {
                lines += 1;
                let Some(stamp) = parse_stamp(line) else {
                    continue;
                };
                if from > 0 && stamp >= from {
                    found.push((stamp, arrived));
                }
            }
            partial.drain(..=last_newline);
            self.lines.fetch_add(lines, Ordering::AcqRel);
            if !found.is_empty() {
                self.arrivals.lock().expect("lock").extend(found);
            }
        }
        self.ended.store(true, Ordering::Release);
    }
}

/// The stamp at the start of a line (the value as the consumer printed it).
fn parse_stamp(line: &[u8]) -> Option<u64> {
    let digits = line.iter().take_while(|b| b.is_ascii_digit()).count();
    std::str::from_utf8(&line[..digits]).ok()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_are_nearest_rank() {
        let values: Vec<u64> = (1..=100).collect();
        assert_eq!(quantile(&values, 0.5), Some(50));
        assert_eq!(quantile(&values, 0.99), Some(99));
        assert_eq!(quantile(&values, 0.999), Some(100));
        assert_eq!(quantile(&values, 0.0), Some(1));
        assert_eq!(quantile(&values, 1.0), Some(100));
        assert_eq!(quantile(&[], 0.5), None);
    }

    #[test]
    fn a_stamped_value_parses_back() {
        let record = stamped_record(1_733_000_000_123_456_789);
        let value = record.value.unwrap();
        assert_eq!(value.len(), VALUE_BYTES);
        assert_eq!(parse_stamp(&value), Some(1_733_000_000_123_456_789));
        assert_eq!(parse_stamp(b"not a stamp"), None);
    }

    #[test]
    fn options_default_to_two_rates_and_five_peers() {
        let options = options(std::iter::empty()).unwrap();
        assert_eq!(options.rates, [1_000, 10_000]);
        assert_eq!(options.peers.len(), 5);
        let options = options_of(&["--rate", "3000", "--peer", "java", "--seconds", "5"]);
        assert_eq!(options.rates, [3_000]);
        assert_eq!(options.peers, [Peer::Java]);
        assert_eq!(options.seconds, 5);
        assert!(!options.together);
        assert!(options_of(&["--together"]).together);
        assert!(!options.low_latency && options_of(&["--low-latency"]).low_latency);
        assert_eq!(options.warm_up, 30);
        assert_eq!(options_of(&["--warm-up", "0"]).warm_up, 0);
        assert!(!options.capture && options_of(&["--capture"]).capture);
        assert!(super::options(["--rate", "0"].iter().map(|s| s.to_string())).is_err());
    }

    fn options_of(args: &[&str]) -> Options {
        options(args.iter().map(|s| s.to_string())).unwrap()
    }
}
