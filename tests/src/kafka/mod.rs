//! The broker of record for the tests: Apache Kafka (4.x, KRaft) from its Maven Central jars,
//! run with the machine's Java 17. The version is [`versions::selected`]
//! (`WASMKAFKA_KAFKA_VERSION`, else [`versions::DEFAULT`]).
//!
//! - [`Kafka::shared`]: one single-node broker per test binary, for tests that use their own
//!   topics and groups (start-up costs seconds of both cores; share it where you can).
//! - [`Kafka::start`] / [`Kafka::start_with`]: a broker of the test's own, for tests that
//!   restart it, kill it or need other broker settings; [`Kafka::cluster`] for three nodes.
//!
//! Every node runs in a folder under `$TMPDIR/wasmkafka-kafka/`, is killed when its fixture is
//! dropped (also on a panic) and, through [`process::spawn_tied`], when the test process
//! itself dies, even by SIGKILL. Folders left by dead test processes are removed at the next
//! start.

pub mod admin;
pub mod jars;
pub mod node;
pub mod oauth;
pub mod process;
pub mod secure;
pub mod versions;

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use wasmkafka::client::Client;
use wasmkafka::cluster::MetadataOptions;
use wasmkafka::net::PoolOptions;

/// The metadata refresh floor of [`Kafka::client`].
pub const TEST_METADATA_MIN_AGE: Duration = Duration::from_millis(100);

pub use admin::TopicConfig;
use node::{Node, NodeSpec};

/// How a test broker or cluster is set up.
#[derive(Debug, Clone, Default)]
pub struct KafkaOptions {
    /// Number of combined broker + controller nodes (1 when 0).
    pub nodes: usize,
    /// Broker settings appended to every node's config.
    pub overrides: Vec<(String, String)>,
    /// Extra arguments of `StorageTool format` (`--add-scram ...` creates SCRAM users).
    pub format_args: Vec<String>,
    /// Extra options of the broker's JVM (`-Dname=value` system properties).
    pub jvm_options: Vec<String>,
}

/// A running single node or cluster. Its nodes are killed and its folder removed on drop.
pub struct Kafka {
    nodes: Vec<Node>,
    dir: PathBuf,
}

impl Kafka {
    /// The broker this test binary shares: started on first use, stopped when the process
    /// ends. Use distinct topic and group names per test.
    pub fn shared() -> &'static Kafka {
        static SHARED: OnceLock<Kafka> = OnceLock::new();
        SHARED.get_or_init(|| start_shared("the shared Kafka broker", Kafka::start))
    }

    /// A single node of the test's own.
    pub async fn start() -> Result<Kafka> {
        Kafka::start_with(KafkaOptions::default()).await
    }

    /// A three-node cluster (replication factor 3, min ISR 2 for internal topics).
    pub async fn cluster() -> Result<Kafka> {
        Kafka::start_with(KafkaOptions {
            nodes: 3,
            ..KafkaOptions::default()
        })
        .await
    }

    /// Starts the nodes. A node that exits during start-up (a port taken between choosing it
    /// and binding it, by another process on the machine) gets two more tries, each on fresh
    /// ports in a fresh folder; the error of the last one is returned.
    pub async fn start_with(options: KafkaOptions) -> Result<Kafka> {
        const ATTEMPTS: usize = 3;
        let mut attempt = 1;
        loop {
            match Kafka::start_once(options.clone()).await {
                Err(error)
                    if attempt < ATTEMPTS && format!("{error:#}").contains("during start-up") =>
                {
                    eprintln!("Kafka start-up attempt {attempt} of {ATTEMPTS} failed; trying again on new ports: {}",
                        format!("{error:#}").lines().take(3).collect::<Vec<_>>().join(" | "));
                    attempt += 1;
                }
                result => return result,
            }
        }
    }

    async fn start_once(options: KafkaOptions) -> Result<Kafka> {
        let count = options.nodes.max(1);
        let dir = fresh_dir()?;
        let ports: Vec<(u16, u16)> = (0..count)
            .map(|_| Ok((free_port()?, free_port()?)))
            .collect::<Result<_>>()?;
        let voters = ports
            .iter()
            .enumerate()
            .map(|(index, (_, controller))| format!("{}@127.0.0.1:{controller}", index + 1))
            .collect::<Vec<_>>()
            .join(",");
        let started = Instant::now();
        let mut nodes = Vec::new();
        let mut formats = Vec::new();
        for (index, (port, controller_port)) in ports.into_iter().enumerate() {
            let node_id = index as i32 + 1;
            let spec = NodeSpec {
                node_id,
                port,
                controller_port,
                voters: voters.clone(),
                cluster_size: count,
                overrides: options.overrides.clone(),
                format_args: options.format_args.clone(),
                jvm_options: options.jvm_options.clone(),
            };
            let (node, format) = Node::prepare(spec, dir.join(format!("node-{node_id}")))?;
            nodes.push(node);
            formats.push(format);
        }
        let mut kafka = Kafka { nodes, dir };
        for (node, format) in kafka.nodes.iter().zip(formats) {
            node.finish_format(format)?;
        }
        for node in &mut kafka.nodes {
            node.spawn()?;
        }
        kafka.wait_ready(Duration::from_secs(120)).await?;
        tracing::info!(
            nodes = count,
            version = jars::kafka_version(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "kafka started"
        );
        Ok(kafka)
    }

    /// The bootstrap list: every node's `127.0.0.1:port`, comma-separated (as `--brokers`
    /// takes it).
    pub fn addr(&self) -> String {
        self.addrs().join(",")
    }

    /// Every node's `127.0.0.1:port`.
    pub fn addrs(&self) -> Vec<String> {
        self.nodes.iter().map(Node::addr).collect()
    }

    /// A node's address by node id (1-based).
    pub fn node_addr(&self, node_id: i32) -> String {
        self.node(node_id).addr()
    }

    /// A client bootstrapped at every node, with a short metadata refresh floor
    /// ([`TEST_METADATA_MIN_AGE`]): the admin helpers poll metadata while topics are created
    /// and leaders elected, and the default floor (1 s) would slow every one of them.
    pub fn client(&self) -> Client {
        self.client_with(MetadataOptions {
            min_age: TEST_METADATA_MIN_AGE,
            ..MetadataOptions::default()
        })
    }

    /// A client bootstrapped at every node with these metadata ages.
    pub fn client_with(&self, metadata: MetadataOptions) -> Client {
        Client::with_metadata_options(self.addrs(), PoolOptions::default(), metadata)
    }

    /// The process ids of the running nodes' JVMs.
    pub fn pids(&self) -> Vec<u32> {
        self.nodes.iter().filter_map(Node::pid).collect()
    }

    /// Node ids, 1-based.
    pub fn node_ids(&self) -> Vec<i32> {
        self.nodes.iter().map(|node| node.spec.node_id).collect()
    }

    /// SIGKILLs one node: it vanishes as in a crash (data kept for [`Kafka::start_node`]).
    pub fn kill_node(&mut self, node_id: i32) {
        self.node_mut(node_id).kill();
    }

    /// Starts a killed or stopped node again and waits until the cluster lists it.
    pub async fn start_node(&mut self, node_id: i32) -> Result<()> {
        self.node_mut(node_id).spawn()?;
        self.wait_ready(Duration::from_secs(120)).await
    }

    /// Stops every node cleanly and starts them again on the same ports and data; waits until
    /// every partition has a leader again.
    pub async fn restart(&mut self) -> Result<()> {
        for node in &mut self.nodes {
            node.stop();
        }
        for node in &mut self.nodes {
            node.spawn()?;
        }
        self.wait_ready(Duration::from_secs(120)).await?;
        admin::wait_for_leaders(&self.client(), None, Duration::from_secs(60)).await
    }

    /// The tail of every running node's logs, for a failure message.
    pub fn logs(&self) -> String {
        self.nodes
            .iter()
            .map(|node| node.log_tail(6000))
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// One node's whole `server.log`.
    pub fn server_log(&self, node_id: i32) -> String {
        self.node(node_id).server_log()
    }

    fn node(&self, node_id: i32) -> &Node {
        self.nodes
            .iter()
            .find(|node| node.spec.node_id == node_id)
            .unwrap_or_else(|| panic!("no Kafka node {node_id}"))
    }

    fn node_mut(&mut self, node_id: i32) -> &mut Node {
        self.nodes
            .iter_mut()
            .find(|node| node.spec.node_id == node_id)
            .unwrap_or_else(|| panic!("no Kafka node {node_id}"))
    }

    /// Waits until every running node is listed in a Metadata answer.
    async fn wait_ready(&mut self, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        let running: Vec<i32> = self
            .nodes
            .iter()
            .filter(|node| node.is_running())
            .map(|node| node.spec.node_id)
            .collect();
        loop {
            for node in &mut self.nodes {
                if let Some(status) = node.exited() {
                    bail!(
                        "Kafka node {} exited with {status} during start-up: {}\n{}",
                        node.spec.node_id,
                        node.first_errors(),
                        node.log_tail(8000)
                    );
                }
            }
            let client = Client::new(
                running.iter().map(|id| self.node(*id).addr()).collect(),
                PoolOptions::default(),
            );
            let listed = tokio::time::timeout(Duration::from_secs(5), client.refresh_metadata())
                .await
                .ok()
                .and_then(Result::ok)
                .map(|metadata| running.iter().all(|id| metadata.brokers.contains_key(id)));
            client.close();
            if listed == Some(true) {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!(
                    "Kafka did not list nodes {running:?} within {timeout:?}:\n{}",
                    self.logs()
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

impl Drop for Kafka {
    fn drop(&mut self) {
        for node in &mut self.nodes {
            node.kill();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Starts a fixture a whole test binary shares, on a thread of its own with a runtime of its
/// own: the first caller may be inside a runtime (a `#[tokio::test]`) or not. Panics with
/// `what` and the error when it cannot start.
pub(crate) fn start_shared<T, F>(what: &str, start: impl FnOnce() -> F + Send + 'static) -> T
where
    T: Send + 'static,
    F: std::future::Future<Output = Result<T>>,
{
    std::thread::spawn(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime")
            .block_on(start())
    })
    .join()
    .expect("the start-up thread panicked")
    .unwrap_or_else(|error| panic!("cannot start {what}: {error:#}"))
}

/// A port that was free a moment ago and that this process was not given before. The kernel
/// may hand a port it just released out again at once: two listeners of one node would then
/// share a port, which Kafka refuses when it formats the node's storage.
pub fn free_port() -> Result<u16> {
    static GIVEN: Mutex<BTreeSet<u16>> = Mutex::new(BTreeSet::new());
    for _ in 0..1_000 {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        if GIVEN.lock().expect("the port registry").insert(port) {
            return Ok(port);
        }
    }
    bail!("no loopback port this process was not given before, in 1,000 tries")
}

/// `$TMPDIR/wasmkafka-kafka/<pid>-<n>`, after removing the folders of dead test processes.
fn fresh_dir() -> Result<PathBuf> {
    static SEQUENCE: AtomicUsize = AtomicUsize::new(0);
    let root = std::env::temp_dir().join("wasmkafka-kafka");
    std::fs::create_dir_all(&root)?;
    for entry in std::fs::read_dir(&root)?.filter_map(|entry| entry.ok()) {
        let name = entry.file_name().to_string_lossy().into_owned();
        let pid = name
            .split('-')
            .next()
            .and_then(|pid| pid.parse::<u32>().ok());
        if let Some(pid) = pid {
            if !PathBuf::from(format!("/proc/{pid}")).exists() {
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
    }
    let dir = root.join(format!(
        "{}-{}",
        std::process::id(),
        SEQUENCE.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    Ok(dir)
}
