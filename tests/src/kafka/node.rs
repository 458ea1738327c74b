//! One Apache Kafka node: a combined broker + controller JVM of the selected version
//! ([`super::versions::selected`]) with its own folder (config, data, logs) and loopback ports. The node's config is `tests/kafka/node.properties` with the
//! `@NAMES@` filled in and a test's overrides appended.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{bail, Context, Result};

use super::jars::{java, kafka_files, kafka_lib, kafka_version};
use super::process::{kill, spawn_tied, terminate};

/// Every test cluster uses this id (16 bytes, base64url): storage is formatted per node anyway.
pub const CLUSTER_ID: &str = "d2FzbWthZmthLXRlc3RzMQ";

/// Where a node listens and what it shares with the other nodes of its cluster.
#[derive(Debug, Clone)]
pub struct NodeSpec {
    pub node_id: i32,
    pub port: u16,
    pub controller_port: u16,
    /// `controller.quorum.voters` of the whole cluster.
    pub voters: String,
    /// How many nodes the cluster has (sets replication factors).
    pub cluster_size: usize,
    /// `key=value` lines appended to the config (later keys win in a properties file).
    pub overrides: Vec<(String, String)>,
    /// Extra arguments of `StorageTool format`.
    pub format_args: Vec<String>,
    /// Extra options of the broker's JVM.
    pub jvm_options: Vec<String>,
}

/// A node's process and folder. The process is killed on drop; the folder belongs to the
/// cluster.
pub struct Node {
    pub spec: NodeSpec,
    dir: PathBuf,
    child: Option<Child>,
}

impl Node {
    /// Writes the config and formats the storage (not started yet). Returns the `StorageTool`
    /// process, which the caller waits for: a cluster formats its nodes side by side.
    pub fn prepare(spec: NodeSpec, dir: PathBuf) -> Result<(Node, Child)> {
        std::fs::create_dir_all(dir.join("logs"))?;
        let node = Node {
            spec,
            dir,
            child: None,
        };
        std::fs::write(node.config_path(), node.render_config()?)?;
        let mut command = node.jvm(&["-Xmx128m"], "tools-log4j2.properties")?;
        command
            .args(["kafka.tools.StorageTool", "format", "-t", CLUSTER_ID, "-c"])
            .arg(node.config_path())
            .args(&node.spec.format_args)
            .stdout(Stdio::null())
            .stderr(File::create(node.dir.join("logs/format.log"))?);
        let format = spawn_tied(command).context("cannot run java (is Java 17 installed?)")?;
        Ok((node, format))
    }

    /// Waits for the `StorageTool format` started by [`Node::prepare`].
    pub fn finish_format(&self, mut format: Child) -> Result<()> {
        let status = format.wait()?;
        if !status.success() {
            bail!(
                "formatting the storage of Kafka node {} (Apache Kafka {}) failed ({status}):\n{}",
                self.spec.node_id,
                kafka_version(),
                read_tail(&self.dir.join("logs/format.log"), 4000)
            );
        }
        Ok(())
    }

    /// Starts the broker JVM (after a format, or again after a stop: data is kept).
    pub fn spawn(&mut self) -> Result<()> {
        assert!(self.child.is_none(), "node {} runs", self.spec.node_id);
        let logs = self.dir.join("logs");
        let mut command = self.jvm(
            &[
                "-Xms64m",
                "-Xmx512m",
                "-XX:+UseSerialGC",
                "-XX:+ExitOnOutOfMemoryError",
            ],
            "log4j2.properties",
        )?;
        command
            .args(&self.spec.jvm_options)
            .arg(format!("-Dkafka.logs.dir={}", logs.display()))
            .arg("kafka.Kafka")
            .arg(self.config_path())
            .stdout(
                File::options()
                    .create(true)
                    .append(true)
                    .open(logs.join("stdout.log"))?,
            )
            .stderr(
                File::options()
                    .create(true)
                    .append(true)
                    .open(logs.join("stdout.log"))?,
            );
        self.child = Some(spawn_tied(command).context("cannot start the Kafka broker JVM")?);
        Ok(())
    }

    /// Whether the JVM exited; its status if so.
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child
            .as_mut()
            .and_then(|child| child.try_wait().ok().flatten())
    }

    /// The JVM's process id while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// A clean shutdown (SIGTERM: controlled shutdown, logs flushed); SIGKILL after 20 s.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            terminate(&mut child, Duration::from_secs(20));
        }
    }

    /// SIGKILL: the node vanishes as in a crash.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            kill(&mut child);
        }
    }

    /// `127.0.0.1:port` of the broker listener.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.spec.port)
    }

    /// The last `bytes` of the broker's log (`server.log`) and its stdout/stderr.
    pub fn log_tail(&self, bytes: u64) -> String {
        let logs = self.dir.join("logs");
        format!(
            "--- node {} (harness runs Apache Kafka {}) server.log\n{}\n--- stdout/stderr\n{}",
            self.spec.node_id,
            kafka_version(),
            read_tail(&logs.join("server.log"), bytes),
            read_tail(&logs.join("stdout.log"), bytes / 4)
        )
    }

    /// The first ERROR or FATAL lines of `server.log` (why a node stopped, before the
    /// shutdown lines that follow).
    pub fn first_errors(&self) -> String {
        let errors: Vec<String> = self
            .server_log()
            .lines()
            .filter(|line| line.contains(" ERROR ") || line.contains(" FATAL "))
            .take(3)
            .map(str::to_string)
            .collect();
        if errors.is_empty() {
            "no ERROR line in server.log".to_string()
        } else {
            errors.join("\n")
        }
    }

    /// The whole `server.log`.
    pub fn server_log(&self) -> String {
        std::fs::read_to_string(self.dir.join("logs/server.log")).unwrap_or_default()
    }

    fn config_path(&self) -> PathBuf {
        self.dir.join("server.properties")
    }

    /// The template with the test's overrides appended, then the placeholders filled in (an
    /// override may use them too, e.g. `@PORT@` in `listeners`).
    fn render_config(&self) -> Result<String> {
        let spec = &self.spec;
        let mut config = std::fs::read_to_string(kafka_files().join("node.properties"))?;
        config.push_str("\n# overrides of this test\n");
        for (key, value) in &spec.overrides {
            config.push_str(&format!("{key}={value}\n"));
        }
        let config = config
            .replace("@NODE_ID@", &spec.node_id.to_string())
            .replace("@VOTERS@", &spec.voters)
            .replace("@CONTROLLER_PORT@", &spec.controller_port.to_string())
            .replace("@PORT@", &spec.port.to_string())
            .replace("@DATA_DIR@", &self.dir.join("data").display().to_string())
            .replace("@REPLICATION@", &spec.cluster_size.min(3).to_string())
            .replace("@MIN_ISR@", &spec.cluster_size.min(2).to_string())
            .replace(
                "@INTERNAL_PARTITIONS@",
                &spec.cluster_size.min(3).to_string(),
            );
        let parts: Vec<&str> = config.split('@').collect();
        let unfilled = parts[1..parts.len().saturating_sub(1)].iter().find(|name| {
            !name.is_empty() && name.chars().all(|c| c.is_ascii_uppercase() || c == '_')
        });
        if let Some(name) = unfilled {
            bail!(
                "tests/kafka/node.properties has a placeholder the harness does not fill: @{name}@"
            );
        }
        Ok(config)
    }

    fn jvm(&self, options: &[&str], log4j: &str) -> Result<Command> {
        let lib = kafka_lib()?;
        let mut command = Command::new(java());
        command
            .current_dir(&self.dir)
            .args(options)
            .arg(format!(
                "-Dlog4j2.configurationFile={}",
                kafka_files().join(log4j).display()
            ))
            .arg("-cp")
            .arg(format!("{}/*", lib.display()))
            .stdin(Stdio::null());
        Ok(command)
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill();
    }
}

fn read_tail(path: &Path, bytes: u64) -> String {
    let Ok(mut file) = File::open(path) else {
        return format!("({} is missing)", path.display());
    };
    let length = file.metadata().map(|m| m.len()).unwrap_or(0);
    let _ = file.seek(SeekFrom::Start(length.saturating_sub(bytes)));
    let mut text = Vec::new();
    let _ = file.read_to_end(&mut text);
    String::from_utf8_lossy(&text).into_owned()
}
