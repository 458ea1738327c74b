//! The consumers compared, and how each one is built and started. Every one reads the same
//! records from offset 0 of every partition, without a group, and writes them to stdout
//! (which the harness sends to /dev/null): the value and a newline, or for the `json` ones a
//! JSON object per record.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Result};
use wasmkafka_tests::cache::run_checked;
use wasmkafka_tests::kafka::jars::{java, kafka_lib};
use wasmkafka_tests::python::venv;

use crate::workload::Workload;

/// Pinned so a run can be repeated (confluent-kafka bundles librdkafka 2.16.0).
pub const CONFLUENT_KAFKA_VERSION: &str = "2.16.1";
pub const AIOKAFKA_VERSION: &str = "0.14.0";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Peer {
    WasmkafkaRaw,
    WasmkafkaJson,
    RdkafkaRaw,
    RdkafkaJson,
    ConfluentPython,
    FranzGo,
    Java,
    Aiokafka,
}

impl Peer {
    pub const ALL: [Peer; 8] = [
        Peer::WasmkafkaRaw,
        Peer::WasmkafkaJson,
        Peer::RdkafkaRaw,
        Peer::RdkafkaJson,
        Peer::FranzGo,
        Peer::Java,
        Peer::ConfluentPython,
        Peer::Aiokafka,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Peer::WasmkafkaRaw => "wasmkafka raw",
            Peer::WasmkafkaJson => "wasmkafka json",
            Peer::RdkafkaRaw => "rdkafka crate raw",
            Peer::RdkafkaJson => "rdkafka crate json",
            Peer::ConfluentPython => "confluent-kafka (Python)",
            Peer::FranzGo => "franz-go",
            Peer::Java => "Java kafka-clients",
            Peer::Aiokafka => "aiokafka",
        }
    }

    /// A short name for `--peer`.
    pub fn id(self) -> &'static str {
        match self {
            Peer::WasmkafkaRaw => "wasmkafka-raw",
            Peer::WasmkafkaJson => "wasmkafka-json",
            Peer::RdkafkaRaw => "rdkafka-raw",
            Peer::RdkafkaJson => "rdkafka-json",
            Peer::ConfluentPython => "confluent-kafka",
            Peer::FranzGo => "franz-go",
            Peer::Java => "java",
            Peer::Aiokafka => "aiokafka",
        }
    }

    pub fn is_ours(self) -> bool {
        matches!(self, Peer::WasmkafkaRaw | Peer::WasmkafkaJson)
    }

    pub fn writes_json(self) -> bool {
        matches!(self, Peer::WasmkafkaJson | Peer::RdkafkaJson)
    }

    /// The peer with this [`Peer::id`].
    pub fn by_id(id: &str) -> Result<Peer> {
        match Peer::ALL.into_iter().find(|p| p.id() == id) {
            Some(peer) => Ok(peer),
            None => {
                let ids: Vec<_> = Peer::ALL.iter().map(|p| p.id()).collect();
                bail!("no peer `{id}`; there are {}", ids.join(", "))
            }
        }
    }

    /// The command that reads `workload` from offset 0 of every partition.
    pub fn command(self, tools: &Tools, brokers: &str, workload: &Workload) -> Command {
        self.command_for(
            tools,
            brokers,
            &workload.topic,
            workload.partitions,
            workload.records,
        )
    }

    /// The command that reads `count` records of `topic` from offset 0 of partitions
    /// 0..`partitions`, writing each to stdout.
    pub fn command_for(
        self,
        tools: &Tools,
        brokers: &str,
        topic: &str,
        partitions: i32,
        count: u64,
    ) -> Command {
        let partitions = partitions.to_string();
        let count = count.to_string();
        let peer_args = [brokers, topic, &partitions, &count];
        match self {
            Peer::WasmkafkaRaw | Peer::WasmkafkaJson => {
                let mut command = Command::new(&tools.wasmkafka);
                command
                    .args(["run", "--brokers", brokers, "--topic", topic])
                    .args(["--from", "earliest", "--count", &count, "--no-progress"])
                    .args(["--format", if self.writes_json() { "json" } else { "raw" }])
                    .env("WASMKAFKA_LOG", "warn");
                command
            }
            Peer::RdkafkaRaw | Peer::RdkafkaJson => {
                let mut command = Command::new(&tools.rdkafka);
                command
                    .args(peer_args)
                    .arg(if self.writes_json() { "json" } else { "raw" });
                command
            }
            Peer::FranzGo => {
                let mut command = Command::new(&tools.franz_go);
                command.args(peer_args);
                command
            }
            Peer::Java => {
                let mut command = Command::new(java());
                command
                    .arg("-cp")
                    .arg(&tools.java_classpath)
                    .arg("Consume")
                    .args(peer_args);
                command
            }
            Peer::ConfluentPython | Peer::Aiokafka => {
                let script = if self == Peer::Aiokafka {
                    "aiokafka_consume.py"
                } else {
                    "confluent_consume.py"
                };
                let mut command = Command::new(&tools.python);
                command
                    .arg(tools.peers_dir.join("python").join(script))
                    .args(peer_args);
                command
            }
        }
    }
}

/// The built peers.
pub struct Tools {
    pub wasmkafka: PathBuf,
    pub rdkafka: PathBuf,
    pub franz_go: PathBuf,
    pub java_classpath: String,
    pub python: PathBuf,
    pub peers_dir: PathBuf,
}

impl Tools {
    /// Finds the release binaries (built by `scripts/bench.sh`), builds the Go and Java peers
    /// into `out`, and makes the Python venv once.
    pub fn prepare(repo: &Path, out: &Path) -> Result<Tools> {
        let built = |name: &str| release_binary(repo, name);
        let peers_dir = repo.join("bench/peers");
        std::fs::create_dir_all(out)?;

        let franz_go = out.join("franz-go-consume");
        run_checked(
            Command::new("go")
                .args(["build", "-o"])
                .arg(&franz_go)
                .arg(".")
                .current_dir(peers_dir.join("franz-go")),
            "build the franz-go peer (go build; Go from go.dev)",
        )?;

        let java_classpath = compile_java(repo, out, "Consume.java")?;

        Ok(Tools {
            wasmkafka: built("wasmkafka")?,
            rdkafka: built("rdkafka-consume")?,
            franz_go,
            java_classpath,
            python: python_with_peers()?,
            peers_dir,
        })
    }
}

/// Compiles `bench/peers/java/SOURCE` against the Kafka jars (kafka-clients of the broker's
/// version) into `out/java`: the classpath to run it with.
pub fn compile_java(repo: &Path, out: &Path, source: &str) -> Result<String> {
    let lib = kafka_lib()?;
    let classes = out.join("java");
    std::fs::create_dir_all(&classes)?;
    run_checked(
        Command::new(java().with_file_name("javac"))
            .arg("-cp")
            .arg(format!("{}/*", lib.display()))
            .arg("-d")
            .arg(&classes)
            .arg(repo.join("bench/peers/java").join(source)),
        &format!("compile the Java peer {source} (javac from JDK 17)"),
    )?;
    Ok(format!("{}:{}/*", classes.display(), lib.display()))
}

/// A release binary of the workspace: beside this harness's own binary (cargo builds all of
/// them into one directory, whatever `CARGO_TARGET_DIR` says), else in `target/release`.
pub fn release_binary(repo: &Path, name: &str) -> Result<PathBuf> {
    let release = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(Path::to_path_buf))
        .unwrap_or_else(|| repo.join("target/release"));
    let path = release.join(name);
    if !path.exists() {
        bail!(
            "{} is missing: run scripts/bench.sh (it builds the release binaries)",
            path.display()
        );
    }
    Ok(path)
}

/// A venv with confluent-kafka and aiokafka, made once in the cache.
fn python_with_peers() -> Result<PathBuf> {
    venv(
        &format!(
            "bench-confluent-kafka-{CONFLUENT_KAFKA_VERSION}-aiokafka-{AIOKAFKA_VERSION}-lz4-zstd"
        ),
        &[
            format!("confluent-kafka=={CONFLUENT_KAFKA_VERSION}"),
            // aiokafka decodes lz4 and zstd batches only with these extras.
            format!("aiokafka[lz4,zstd]=={AIOKAFKA_VERSION}"),
        ],
        "aiokafka",
    )
}
