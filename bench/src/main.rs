//! `wasmkafka-bench`: starts Apache Kafka (the test harness's single node), loads each
//! workload once, then runs every consumer on it in the same run, alternating their order
//! round by round, and reports medians and spread: records/s (wall time from process start to
//! exit, start-up included), CPU seconds per million records (user + system of the process)
//! and peak RSS. Run it through `scripts/bench.sh`, which builds the release binaries first.
//!
//! Usage: wasmkafka-bench [--rounds N] [--workload NAME]... [--peer ID]... [--out FILE.md]
//!                        [--rtt-ms MS]   (every connection through a proxy that adds MS
//!                                         per round trip: a slow link, see delay.rs)
//!                        [--hold]   (keep the broker up afterwards, for profiling)
//!        wasmkafka-bench decode   (decode + write on one thread, no network: see decode.rs)
//!        wasmkafka-bench plugins  (Wasm against native assign and reset, plugin loading)
//!        wasmkafka-bench group [--rounds N]   (`run --group` members: first record,
//!                                  rebalances while idle and while records flow, commit
//!                                  latency while reading and while fetches long-poll)
//!        wasmkafka-bench group-scale [--rounds N] [--members 1,10,50] [--partitions P]
//!                                  [--consumer ID]... [--event join|leave|both]
//!                                  [--broker-heartbeat-ms MS] [--pace-ms MS]   (a group of
//!                                  N settling after one more member joins, and N + 1 after
//!                                  one leaves, and how long each partition stops: ours,
//!                                  the Java client and librdkafka, eager, cooperative and
//!                                  KIP-848; see group/scale.rs)
//!        wasmkafka-bench rebalance [same options]   (group-scale with --members 4: a
//!                                  rebalance in a group of 4, join and leave)
//!        wasmkafka-bench latency [--rounds N] [--rate R]... [--seconds S] [--partitions P]
//!                                [--peer ID]... [--together] [--low-latency] [--warm-up S]
//!                                [--capture]
//!                                [--plot FILE.svg]
//!                                  (end-to-end record latency at steady rates, every
//!                                  consumer on the same broker, one after another or with
//!                                  --together at once; see latency/mod.rs)
//!        wasmkafka-bench startup [--rounds N] [--peer ID]...   (process start to the first
//!                                  record: assigned, in a new group, and ours with Wasm
//!                                  plugins, compile cache cold and warm; see startup.rs)

mod decode;
mod group;
mod latency;
mod measure;
mod peers;
mod plugins;
mod report;
mod startup;
mod workload;

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use wasmkafka_tests::delay::{self, DelayProxy};
use wasmkafka_tests::kafka::{Kafka, KafkaOptions};

use group::scale::kinds::Client;
use measure::measure;
use peers::{Peer, Tools};
use report::{Report, Run};
use workload::Workload;

/// No consumer may take longer than this for one workload.
const RUN_LIMIT: Duration = Duration::from_secs(600);

struct Options {
    rounds: usize,
    workloads: Vec<Workload>,
    peers: Vec<Peer>,
    out: Option<PathBuf>,
    /// A round trip added to every connection of the consumers (none when zero).
    rtt: Duration,
    /// Keep the broker and its topics after the runs, for profiling by hand.
    hold: bool,
}

fn options() -> Result<Options> {
    let mut options = Options {
        rounds: 3,
        workloads: Vec::new(),
        peers: Vec::new(),
        out: None,
        rtt: Duration::ZERO,
        hold: false,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().with_context(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--rounds" => options.rounds = value()?.parse().context("--rounds N")?,
            "--workload" => {
                let name = value()?;
                let workload = Workload::all()
                    .into_iter()
                    .find(|w| w.name == name)
                    .with_context(|| {
                        let names: Vec<_> = Workload::all().iter().map(|w| w.name).collect();
                        format!("no workload `{name}`; there are {}", names.join(", "))
                    })?;
                options.workloads.push(workload);
            }
            "--peer" => options.peers.push(Peer::by_id(&value()?)?),
            "--out" => options.out = Some(value()?.into()),
            "--rtt-ms" => {
                options.rtt = Duration::from_millis(value()?.parse().context("--rtt-ms MS")?)
            }
            "--hold" => options.hold = true,
            other => bail!(
                "unknown argument `{other}`; usage: wasmkafka-bench [--rounds N] \
                 [--workload NAME]... [--peer ID]... [--out FILE.md] [--rtt-ms MS] [--hold]"
            ),
        }
    }
    if options.workloads.is_empty() {
        options.workloads = Workload::all();
    }
    if options.peers.is_empty() {
        options.peers = Peer::ALL.to_vec();
    }
    Ok(options)
}

fn main() -> Result<()> {
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if args.get(1).is_some_and(|a| a == "launch") && args.len() > 3 {
        // Before any runtime: the launcher must stay small (see measure.rs).
        measure::launch(&args[2], &args[3], &args[4..]);
    }
    tokio::runtime::Runtime::new()?.block_on(run())
}

async fn run() -> Result<()> {
    if std::env::args().nth(1).as_deref() == Some("decode") {
        println!("{}", decode::run()?);
        return Ok(());
    }
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("bench/ is in the repository")
        .to_path_buf();
    if std::env::args().nth(1).as_deref() == Some("plugins") {
        let text = tokio::task::spawn_blocking({
            let repo = repo.clone();
            move || plugins::run(&repo)
        })
        .await??;
        println!("{text}");
        return Ok(());
    }
    if std::env::args().nth(1).as_deref() == Some("group") {
        let rounds = group::rounds_option(std::env::args().skip(2))?;
        let wasmkafka = peers::release_binary(&repo, "wasmkafka")?;
        eprintln!("starting Apache Kafka");
        let kafka = Kafka::start().await?;
        println!("{}", group::run(&wasmkafka, &kafka, rounds).await?);
        return Ok(());
    }
    let out_dir = repo.join("target/bench");
    let scale = match std::env::args().nth(1).as_deref() {
        Some("group-scale") => Some(group::scale::options(std::env::args().skip(2))?),
        Some("rebalance") => Some(group::scale::rebalance_options(std::env::args().skip(2))?),
        _ => None,
    };
    if let Some(options) = scale {
        let wasmkafka = peers::release_binary(&repo, "wasmkafka")?;
        let java_classpath = tokio::task::spawn_blocking({
            let (repo, out_dir) = (repo.clone(), out_dir.clone());
            move || peers::compile_java(&repo, &out_dir, "GroupScale.java")
        })
        .await??;
        let python = if options.kinds.iter().any(|k| k.client() == Client::Rdkafka) {
            Some(tokio::task::spawn_blocking(peers::python_with_peers).await??)
        } else {
            None
        };
        eprintln!(
            "starting Apache Kafka (Kafka's default group settings; \
             group.consumer.heartbeat.interval.ms {})",
            options
                .heartbeat_ms
                .map_or("5000, the default".into(), |ms| ms.to_string())
        );
        let kafka = Kafka::start_with(KafkaOptions {
            overrides: group::scale::broker_overrides(&options),
            ..KafkaOptions::default()
        })
        .await?;
        let programs = group::scale::Programs {
            wasmkafka: &wasmkafka,
            java_classpath: &java_classpath,
            python: python.as_deref(),
            peers_dir: &repo.join("bench/peers"),
        };
        let text = group::scale::run(&programs, &kafka, &options, &out_dir).await?;
        println!("{text}");
        return Ok(());
    }
    if std::env::args().nth(1).as_deref() == Some("startup") {
        let options = startup::options(std::env::args().skip(2))?;
        let tools = prepare_tools(&repo, &out_dir, &options.peers).await?;
        eprintln!("starting Apache Kafka");
        let kafka = Kafka::start().await?;
        let results = startup::run(&tools, &kafka, &options, &out_dir).await?;
        println!("{}", startup::markdown(&results, options.rounds));
        return Ok(());
    }
    if std::env::args().nth(1).as_deref() == Some("latency") {
        let mut args: Vec<String> = std::env::args().skip(2).collect();
        let plot = match args.iter().position(|a| a == "--plot") {
            Some(at) => {
                let path = args.get(at + 1).context("--plot needs a file")?.into();
                args.drain(at..=at + 1);
                path
            }
            None => out_dir.join("latency.svg"),
        };
        let options = latency::options(args.into_iter())?;
        let tools = prepare_tools(&repo, &out_dir, &options.peers).await?;
        eprintln!("starting Apache Kafka");
        let kafka = Kafka::start().await?;
        let results = latency::run(&tools, &kafka, &options).await?;
        latency::report::svg(&results, &plot)?;
        if options.together {
            println!("Every consumer of a round read the same topic at the same time.\n");
        }
        if options.low_latency {
            println!("Every consumer with its documented low-latency settings.\n");
        }
        println!(
            "{}",
            latency::report::markdown(
                &results,
                options.rounds,
                options.seconds,
                options.partitions
            )
        );
        if options.capture {
            println!("{}", latency::report::wire_markdown(&results));
        }
        eprintln!("plot: {}", plot.display());
        return Ok(());
    }
    let options = options()?;
    let tools = prepare_tools(&repo, &out_dir, &options.peers).await?;
    eprintln!("starting Apache Kafka");
    let (kafka, proxy) = start_kafka(options.rtt).await?;
    let brokers = match &proxy {
        Some(proxy) => format!("127.0.0.1:{}", proxy.port()),
        None => kafka.addr(),
    };
    let mut report = Report::new(options.rounds);
    for workload in &options.workloads {
        eprintln!("loading {}: {}", workload.name, workload.describe());
        if let Some(proxy) = &proxy {
            proxy.set_one_way_delay(Duration::ZERO);
        }
        workload.load(&kafka).await?;
        if let Some(proxy) = &proxy {
            proxy.set_one_way_delay(options.rtt / 2);
        }
        for round in 0..options.rounds {
            // Alternate the order so no consumer always runs first (page cache, JIT'd broker).
            let mut order = options.peers.clone();
            let peers = order.len();
            order.rotate_left(round % peers);
            for peer in order {
                let command = peer.command(&tools, &brokers, workload);
                let log = out_dir.join(format!("{}-{}.log", workload.name, peer.id()));
                let measured =
                    match tokio::task::spawn_blocking(move || measure(command, &log, RUN_LIMIT))
                        .await?
                    {
                        Ok(measured) => measured,
                        Err(error) => {
                            // One consumer failing does not end the run: the report says so.
                            let first = format!("{error:#}");
                            let first = first.lines().next().unwrap_or_default().to_string();
                            eprintln!("  round {} {:<26} FAILED: {first}", round + 1, peer.name());
                            report.fail(workload.name, peer, first);
                            continue;
                        }
                    };
                eprintln!(
                    "  round {} {:<26} {:>8.2} s wall {:>7.2} s cpu {:>6.0} MB",
                    round + 1,
                    peer.name(),
                    measured.wall.as_secs_f64(),
                    measured.cpu.as_secs_f64(),
                    measured.max_rss_bytes as f64 / 1e6
                );
                report.add(Run {
                    workload: workload.clone(),
                    peer,
                    measured,
                });
            }
        }
    }
    let mut machine = machine();
    if proxy.is_some() {
        machine += &format!(
            "; every connection of the consumers through a proxy that adds {} ms per round trip",
            options.rtt.as_millis()
        );
    }
    let text = report.markdown(&machine);
    println!("{text}");
    if let Some(out) = options.out {
        std::fs::write(&out, &text).with_context(|| format!("cannot write {}", out.display()))?;
    }
    if options.hold {
        eprintln!("the broker stays up at {brokers} with the topics loaded; Ctrl-C ends it");
        tokio::signal::ctrl_c().await?;
    }
    Ok(())
}

/// [`Tools::prepare`] for `peers` on a blocking thread (it builds and downloads).
async fn prepare_tools(repo: &Path, out_dir: &Path, peers: &[Peer]) -> Result<Tools> {
    let (repo, out_dir, peers) = (repo.to_path_buf(), out_dir.to_path_buf(), peers.to_vec());
    tokio::task::spawn_blocking(move || Tools::prepare(&repo, &out_dir, &peers)).await?
}

/// Starts the broker. With a round trip to add, the broker advertises a [`DelayProxy`]'s port
/// (loading goes through it too, with no delay), so every connection a client opens after its
/// first metadata answer crosses the proxy.
async fn start_kafka(rtt: Duration) -> Result<(Kafka, Option<DelayProxy>)> {
    if rtt.is_zero() {
        return Ok((Kafka::start().await?, None));
    }
    let proxy = DelayProxy::listen().await?;
    let kafka = delay::kafka_behind(&proxy).await?;
    Ok((kafka, Some(proxy)))
}

/// CPU model and count, for the report.
fn machine() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|line| line.strip_prefix("model name"))
        .map(|rest| rest.trim_start_matches([' ', '\t', ':']).to_string())
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    format!("{cores} cores, {model}")
}
