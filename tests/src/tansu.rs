//! Tansu, a secondary compatibility target (Apache Kafka is the broker of record: see
//! [`crate::kafka`]). A Tansu broker on a free loopback port with SQLite storage in a temp
//! dir; it is used only where a `tansu` binary is found ($TANSU_BIN, PATH, ~/.cargo/bin):
//! nothing installs it (`cargo install --locked tansu --version 0.6.0 --features
//! dynostore,libsql` does). The broker is killed when the fixture is dropped, also when the
//! test panics, and with the test process (see [`crate::kafka::process::spawn_tied`]).

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use tempfile::TempDir;

use wasmkafka::client::Client;
use wasmkafka::net::{BrokerCompat, Connection, ConnectionOptions, PoolOptions};

use crate::kafka::free_port;
use crate::kafka::process::spawn_tied;

/// A running Tansu broker. Killed on drop.
pub struct Tansu {
    child: Option<Child>,
    dir: TempDir,
    port: u16,
    binary: PathBuf,
}

impl Tansu {
    /// Starts a broker on a free port in a fresh temp dir, or `None` when no `tansu` binary
    /// is installed.
    pub async fn start_if_installed() -> Result<Option<Tansu>> {
        let Some(binary) = find_tansu() else {
            return Ok(None);
        };
        let dir = tempfile::Builder::new()
            .prefix("wasmkafka-tansu-")
            .tempdir()?;
        let port = free_port()?;
        let mut broker = Tansu {
            child: None,
            dir,
            port,
            binary,
        };
        broker.spawn().await?;
        Ok(Some(broker))
    }

    /// `127.0.0.1:port`.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn url(&self) -> String {
        format!("tcp://127.0.0.1:{}", self.port)
    }

    /// The broker's log (stdout and stderr).
    pub fn log(&self) -> String {
        let mut text = String::new();
        if let Ok(mut file) = File::open(self.dir.path().join("tansu.log")) {
            let _ = file.read_to_string(&mut text);
        }
        text
    }

    /// A client bootstrapped at this broker, with the Tansu 0.6 compatibility switch.
    pub fn client(&self) -> Client {
        let mut options = PoolOptions::default();
        options.connection.compat = BrokerCompat::Tansu06;
        Client::new(vec![self.addr()], options)
    }

    async fn spawn(&mut self) -> Result<()> {
        let log = File::options()
            .create(true)
            .append(true)
            .open(self.dir.path().join("tansu.log"))?;
        let url = self.url();
        let mut command = Command::new(&self.binary);
        command
            .current_dir(self.dir.path())
            .args([
                "broker",
                "--listener-url",
                &url,
                "--advertised-listener-url",
                &url,
                // A relative path: `sqlite:///abs` is misread by this Tansu version.
                "--storage-engine",
                "sqlite://tansu.db",
            ])
            .env(
                "RUST_LOG",
                std::env::var("TANSU_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        let child = spawn_tied(command)
            .with_context(|| format!("cannot start {}", self.binary.display()))?;
        self.child = Some(child);
        self.wait_ready().await
    }

    /// Waits until the broker answers an ApiVersions handshake.
    async fn wait_ready(&mut self) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(60);
        let options = ConnectionOptions {
            connect_timeout: Duration::from_secs(2),
            request_timeout: Duration::from_secs(5),
            ..ConnectionOptions::default()
        };
        loop {
            if let Some(child) = self.child.as_mut() {
                if let Some(status) = child.try_wait()? {
                    bail!(
                        "tansu exited with {status} during start-up; log:\n{}",
                        self.log()
                    );
                }
            }
            if let Ok(connection) = Connection::connect(0, &self.addr(), options.clone()).await {
                connection.close(wasmkafka::net::CloseReason::ClosedByClient);
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("tansu did not answer within 60 s; log:\n{}", self.log());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Stops the broker (kill and reap). Idempotent.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Stops and starts the broker on the same port and storage (runs compaction and retention).
    pub async fn restart(&mut self) -> Result<()> {
        self.stop();
        self.spawn().await
    }

    /// Creates a topic with `tansu topic create`.
    pub fn create_topic(
        &self,
        name: &str,
        partitions: i32,
        configs: &[(&str, &str)],
    ) -> Result<()> {
        let mut command = Command::new(&self.binary);
        command
            .current_dir(self.dir.path())
            .args(["topic", "create", "--broker", &self.url()])
            .args(["--partitions", &partitions.to_string()]);
        for (key, value) in configs {
            command.args(["--config", &format!("{key}={value}")]);
        }
        let output = command
            .arg(name)
            .output()
            .context("cannot run tansu topic create")?;
        if !output.status.success() {
            bail!(
                "tansu topic create {name} failed: {}{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            );
        }
        Ok(())
    }
}

impl Drop for Tansu {
    fn drop(&mut self) {
        self.stop();
    }
}

/// `$TANSU_BIN`, then `tansu` on PATH, then in ~/.cargo/bin.
pub fn find_tansu() -> Option<PathBuf> {
    if let Ok(path) = std::env::var("TANSU_BIN") {
        return Some(PathBuf::from(path));
    }
    let on_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join("tansu"))
            .find(|candidate| is_executable(candidate))
    });
    on_path.or_else(|| {
        let home = std::env::var_os("CARGO_HOME")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")))?;
        let candidate = home.join("bin").join("tansu");
        is_executable(&candidate).then_some(candidate)
    })
}

fn is_executable(path: &Path) -> bool {
    path.is_file()
}
