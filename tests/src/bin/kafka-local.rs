//! A local Apache Kafka for scripts (the demo, setup), through the same harness as the tests.
//!
//!   kafka-local fetch                      fetch and cache the Kafka jars (Maven Central)
//!   kafka-local run [--nodes N] [--ready-file FILE]
//!                                          start N nodes (default 1) on free loopback ports,
//!                                          print `ready <bootstrap>`, write the bootstrap list
//!                                          to FILE, and run until SIGTERM/SIGINT; the nodes
//!                                          and their data go with this process.

use anyhow::{bail, Context, Result};
use wasmkafka_tests::kafka::{jars, Kafka, KafkaOptions};

#[tokio::main]
async fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("fetch") => {
            let lib = jars::kafka_lib()?;
            println!(
                "Apache Kafka {} jars in {}",
                jars::kafka_version(),
                lib.display()
            );
            Ok(())
        }
        Some("run") => run(&args[1..]).await,
        _ => bail!("usage: kafka-local fetch | kafka-local run [--nodes N] [--ready-file FILE]"),
    }
}

async fn run(args: &[String]) -> Result<()> {
    let mut nodes = 1;
    let mut ready_file = None;
    let mut rest = args.iter();
    while let Some(flag) = rest.next() {
        let value = rest
            .next()
            .with_context(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--nodes" => nodes = value.parse().context("--nodes takes a number")?,
            "--ready-file" => ready_file = Some(value.clone()),
            _ => bail!("unknown flag {flag}"),
        }
    }
    let kafka = Kafka::start_with(KafkaOptions {
        nodes,
        ..KafkaOptions::default()
    })
    .await?;
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
