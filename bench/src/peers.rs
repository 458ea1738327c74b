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
    /// The static musl build (`scripts/release.sh`), beside the glibc one; only with `--peer`.
    WasmkafkaMuslRaw,
    WasmkafkaMuslJson,
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

    /// Every peer `--peer` can name: the default set, then the musl builds.
    pub fn named() -> impl Iterator<Item = Peer> {
        Peer::ALL
            .into_iter()
            .chain([Peer::WasmkafkaMuslRaw, Peer::WasmkafkaMuslJson])
    }

    pub fn name(self) -> &'static str {
        match self {
            Peer::WasmkafkaRaw => "wasmkafka raw",
            Peer::WasmkafkaJson => "wasmkafka json",
            Peer::WasmkafkaMuslRaw => "wasmkafka musl raw",
            Peer::WasmkafkaMuslJson => "wasmkafka musl json",
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
            Peer::WasmkafkaMuslRaw => "wasmkafka-musl-raw",
            Peer::WasmkafkaMuslJson => "wasmkafka-musl-json",
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

    /// Another build of wasmkafka: a row with ratios (the glibc build's over it), never "the
    /// best peer".
    pub fn is_our_other_build(self) -> bool {
        matches!(self, Peer::WasmkafkaMuslRaw | Peer::WasmkafkaMuslJson)
    }

    pub fn writes_json(self) -> bool {
        matches!(
            self,
            Peer::WasmkafkaJson | Peer::WasmkafkaMuslJson | Peer::RdkafkaJson
        )
    }

    /// The peer with this [`Peer::id`].
    pub fn by_id(id: &str) -> Result<Peer> {
        match Peer::named().find(|p| p.id() == id) {
            Some(peer) => Ok(peer),
            None => {
                let ids: Vec<_> = Peer::named().map(|p| p.id()).collect();
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
            Peer::WasmkafkaRaw
            | Peer::WasmkafkaJson
            | Peer::WasmkafkaMuslRaw
            | Peer::WasmkafkaMuslJson => {
                let binary = if self.is_our_other_build() {
                    tools.wasmkafka_musl.as_ref()
                } else {
                    Some(&tools.wasmkafka)
                };
                let mut command = Command::new(binary.expect("prepared for this peer"));
                command
                    .args(["run", "--brokers", brokers, "--topic", topic])
                    .args(["--from", "earliest", "--count", &count, "--no-progress"])
                    .args(["--format", if self.writes_json() { "json" } else { "raw" }])
                    .env("WASMKAFKA_LOG", "warn");
                command
            }
            Peer::RdkafkaRaw | Peer::RdkafkaJson => {
                let mut command = Command::new(tools.rdkafka.as_ref().expect("prepared"));
                command
                    .args(peer_args)
                    .arg(if self.writes_json() { "json" } else { "raw" });
                command
            }
            Peer::FranzGo => {
                let mut command = Command::new(tools.franz_go.as_ref().expect("prepared"));
                command.args(peer_args);
                command
            }
            Peer::Java => {
                let mut command = Command::new(java());
                command
                    .arg("-cp")
                    .arg(tools.java_classpath.as_ref().expect("prepared"))
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
                let mut command = Command::new(tools.python.as_ref().expect("prepared"));
                command
                    .arg(tools.peers_dir.join("python").join(script))
                    .args(peer_args);
                command
            }
        }
    }
}

/// The built peers: only those of the peers in the run (None for the others).
pub struct Tools {
    pub wasmkafka: PathBuf,
    pub wasmkafka_musl: Option<PathBuf>,
    pub rdkafka: Option<PathBuf>,
    pub franz_go: Option<PathBuf>,
    pub java_classpath: Option<String>,
    pub python: Option<PathBuf>,
    pub peers_dir: PathBuf,
}

impl Tools {
    /// Finds the release binaries (built by `scripts/bench.sh`; the musl one by
    /// `scripts/release.sh`), builds the Go and Java peers into `out`, and makes the Python
    /// venv once: each only when one of `peers` needs it.
    pub fn prepare(repo: &Path, out: &Path, peers: &[Peer]) -> Result<Tools> {
        let built = |name: &str| release_binary(repo, name);
        let needs = |wanted: &[Peer]| peers.iter().any(|p| wanted.contains(p));
        let peers_dir = repo.join("bench/peers");
        std::fs::create_dir_all(out)?;

        let franz_go = if needs(&[Peer::FranzGo]) {
            let binary = out.join("franz-go-consume");
            run_checked(
                Command::new("go")
                    .args(["build", "-o"])
                    .arg(&binary)
                    .arg(".")
                    .current_dir(peers_dir.join("franz-go")),
                "build the franz-go peer (go build; Go from go.dev)",
            )?;
            Some(binary)
        } else {
            None
        };
        let java_classpath = if needs(&[Peer::Java]) {
            Some(compile_java(repo, out, "Consume.java")?)
        } else {
            None
        };
        let wasmkafka_musl = if needs(&[Peer::WasmkafkaMuslRaw, Peer::WasmkafkaMuslJson]) {
            Some(musl_release_binary(repo)?)
        } else {
            None
        };

        Ok(Tools {
            wasmkafka: built("wasmkafka")?,
            wasmkafka_musl,
            rdkafka: if needs(&[Peer::RdkafkaRaw, Peer::RdkafkaJson]) {
                Some(built("rdkafka-consume")?)
            } else {
                None
            },
            franz_go,
            java_classpath,
            python: if needs(&[Peer::ConfluentPython, Peer::Aiokafka]) {
                Some(python_with_peers()?)
            } else {
                None
            },
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

/// The static musl build's release binary, `<target dir>/x86_64-unknown-linux-musl/release`,
/// beside this harness's `<target dir>/release`.
fn musl_release_binary(repo: &Path) -> Result<PathBuf> {
    let glibc = release_binary(repo, "wasmkafka")?;
    let target_dir = glibc
        .parent()
        .and_then(Path::parent)
        .expect("<target dir>/release/wasmkafka");
    let path = target_dir.join("x86_64-unknown-linux-musl/release/wasmkafka");
    if !path.exists() {
        bail!(
            "{} is missing: run scripts/release.sh (it builds the musl release binary)",
            path.display()
        );
    }
    Ok(path)
}

/// A venv with confluent-kafka and aiokafka, made once in the cache.
pub fn python_with_peers() -> Result<PathBuf> {
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
