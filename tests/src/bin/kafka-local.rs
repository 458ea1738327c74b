//! A local Apache Kafka for scripts (the demo, setup), through the same harness as the tests.
//!
//!   kafka-local fetch                      fetch and cache what the tests need: the Kafka
//!                                          jars of every known version (Maven Central) and
//!                                          the Python venvs with confluent-kafka and
//!                                          componentize-py (PyPI)
//!   kafka-local versions                   the known Kafka versions, oldest first, one a line
//!   kafka-local version                    the version this environment selects
//!                                          (WASMKAFKA_KAFKA_VERSION, else the default)
//!   kafka-local run [--nodes N] [--ready-file FILE] [--set KEY=VALUE]...
//!                                          start N nodes (default 1) of the selected version
//!                                          on free loopback ports,
//!                                          print `ready <bootstrap>`, write the bootstrap list
//!                                          to FILE (--set: a broker setting over
//!                                          tests/kafka/node.properties), and run until
//!                                          SIGTERM/SIGINT; the nodes
//!                                          and their data go with this process.
//!   kafka-local create-topic BROKERS NAME PARTITIONS
//!                                          create a topic (the cluster's replication factor)

use anyhow::{bail, Context, Result};
use wasmkafka::client::Client;
use wasmkafka::net::PoolOptions;
use wasmkafka_tests::kafka::{admin, jars, versions, Kafka, KafkaOptions};

#[tokio::main]
async fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("fetch") => {
            for version in versions::KNOWN {
                let lib = jars::kafka_lib_of(version)?;
                println!("Apache Kafka {} jars in {}", version.kafka, lib.display());
            }
            let python = wasmkafka_tests::python::python()?;
            println!(
                "Python with confluent-kafka {} at {}",
                wasmkafka_tests::python::CONFLUENT_KAFKA_VERSION,
                python.display()
            );
            let componentize = wasmkafka_tests::python::componentize_py()?;
            println!(
                "componentize-py (Python plugins) at {}",
                componentize.display()
            );
            Ok(())
        }
        Some("versions") => {
            for version in versions::KNOWN {
                println!("{}", version.kafka);
            }
            Ok(())
        }
        Some("version") => {
            println!("{}", jars::kafka_version());
            Ok(())
        }
        Some("run") => run(&args[1..]).await,
        Some("create-topic") => {
            let [brokers, name, partitions] = &args[1..] else {
                bail!("usage: kafka-local create-topic BROKERS NAME PARTITIONS");
            };
            let partitions = partitions.parse().context("PARTITIONS is a number")?;
            let client = Client::new(
                brokers.split(',').map(str::to_string).collect(),
                PoolOptions::default(),
            );
            admin::create_topic(&client, name, partitions, &[]).await?;
            println!("created topic {name} with {partitions} partitions");
            Ok(())
        }
        _ => bail!(
            "usage: kafka-local fetch | versions | version | \
             run [--nodes N] [--ready-file FILE] [--set KEY=VALUE]... | \
             create-topic BROKERS NAME PARTITIONS"
        ),
    }
}

async fn run(args: &[String]) -> Result<()> {
    let mut nodes = 1;
    let mut ready_file = None;
    let mut overrides = Vec::new();
    let mut rest = args.iter();
    while let Some(flag) = rest.next() {
        let value = rest
            .next()
            .with_context(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--nodes" => nodes = value.parse().context("--nodes takes a number")?,
            "--ready-file" => ready_file = Some(value.clone()),
            "--set" => {
                let (key, value) = value
                    .split_once('=')
                    .context("--set takes KEY=VALUE (a broker setting)")?;
                overrides.push((key.to_string(), value.to_string()));
            }
            _ => bail!("unknown flag {flag}"),
        }
    }
    let kafka = Kafka::start_with(KafkaOptions {
        nodes,
        overrides,
        ..KafkaOptions::default()
    })
    .await?;
    eprintln!("Apache Kafka {}", jars::kafka_version());
    println!("ready {}", kafka.addr());
    if let Some(file) = ready_file {
        std::fs::write(&file, kafka.addr()).with_context(|| format!("cannot write {file}"))?;
    }
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate.recv() => {}
    }
    drop(kafka);
    Ok(())
}
