//! A Java client (`kafka-clients`, from the same cached Kafka classpath) as a consumer group
//! member for the interop tests: `tests/java/GroupMember.java`, run with Java's source launcher.
//! Its JSON lines (assignments, records, committed offsets) are collected on a thread.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde_json::Value;

use crate::kafka::jars::{java_with_tools_log, kafka_lib};
use crate::kafka::process::{kill, spawn_tied};

/// What the Java member printed so far.
#[derive(Debug, Default)]
struct Heard {
    assignment: BTreeSet<i32>,
    assigned_events: Vec<Vec<i32>>,
    revoked_events: Vec<Vec<i32>>,
    records: Vec<(i32, i64)>,
    committed: Option<Value>,
    closed: bool,
}

/// A running Java group member. Killed on drop.
pub struct JavaMember {
    child: Child,
    stdin: Option<ChildStdin>,
    heard: Arc<Mutex<Heard>>,
}

fn partitions(value: &Value) -> Vec<i32> {
    value["partitions"]
        .as_array()
        .map(|list| {
            list.iter()
                .filter_map(|p| p.as_i64())
                .map(|p| p as i32)
                .collect()
        })
        .unwrap_or_default()
}

/// `java` on the Kafka classpath, with the tools' log configuration.
fn kafka_java() -> Result<Command> {
    Ok(java_with_tools_log(format!("{}/*", kafka_lib()?.display())))
}

/// `java` running `tests/java/FILE` with the source launcher (see [`kafka_java`]).
fn source_command(file: &str) -> Result<Command> {
    source_command_with(file, &[])
}

/// [`source_command`] with more JVM options (`-Dname=value`) before the file.
fn source_command_with(file: &str, jvm_options: &[String]) -> Result<Command> {
    let mut command = kafka_java()?;
    command.args(jvm_options).arg(
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("java")
            .join(file),
    );
    Ok(command)
}

impl JavaMember {
    /// Starts a classic-protocol member of `group` subscribed to `topic` with `assignor`: a
    /// comma-separated list in preference order (`range`, `roundrobin`, `sticky`,
    /// `cooperative-sticky`).
    pub fn start(bootstrap: &str, group: &str, topic: &str, assignor: &str) -> Result<JavaMember> {
        JavaMember::start_with_protocol(bootstrap, group, topic, assignor, "classic")
    }

    /// [`JavaMember::start`] with `group.protocol` set: `classic` or `consumer` (KIP-848,
    /// where the broker assigns and `assignor` is not sent).
    pub fn start_with_protocol(
        bootstrap: &str,
        group: &str,
        topic: &str,
        assignor: &str,
        protocol: &str,
    ) -> Result<JavaMember> {
        JavaMember::start_with_jvm_options(bootstrap, group, topic, assignor, protocol, None, &[])
    }

    /// [`JavaMember::start_with_protocol`], then a `properties` file over those settings (as
    /// a Java application loads its client.properties), in a JVM started with `jvm_options`
    /// (system properties such as `-Dorg.apache.kafka.sasl.oauthbearer.allowed.urls=...` or
    /// `-Djavax.net.ssl.trustStore=...`, as a Java application's launch script sets them;
    /// none for a plain JVM).
    pub fn start_with_jvm_options(
        bootstrap: &str,
        group: &str,
        topic: &str,
        assignor: &str,
        protocol: &str,
        properties: Option<&std::path::Path>,
        jvm_options: &[String],
    ) -> Result<JavaMember> {
        let mut command = source_command_with("GroupMember.java", jvm_options)?;
        command
            .args([bootstrap, group, topic, assignor, protocol])
            .args(properties)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        let mut child = spawn_tied(command).context("cannot start the Java group member")?;
        let stdout = child.stdout.take().expect("piped stdout");
        let heard = Arc::new(Mutex::new(Heard::default()));
        let sink = heard.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let Ok(event) = serde_json::from_str::<Value>(&line) else {
                    eprintln!("java member: {line}");
                    continue;
                };
                let mut heard = sink.lock().unwrap();
                match event["event"].as_str() {
                    Some("assigned") => {
                        let added = partitions(&event);
                        heard.assignment.extend(added.iter().copied());
                        heard.assigned_events.push(added);
                    }
                    Some("revoked") | Some("lost") => {
                        let removed = partitions(&event);
                        for partition in &removed {
                            heard.assignment.remove(partition);
                        }
                        heard.revoked_events.push(removed);
                    }
                    Some("record") => {
                        let partition = event["partition"].as_i64().unwrap_or(-1) as i32;
                        let offset = event["offset"].as_i64().unwrap_or(-1);
                        heard.records.push((partition, offset));
                    }
                    Some("committed") => heard.committed = Some(event["partitions"].clone()),
                    Some("closed") => heard.closed = true,
                    _ => {}
                }
            }
        });
        let stdin = child.stdin.take();
        Ok(JavaMember {
            child,
            stdin,
            heard,
        })
    }

    /// The partitions the member holds now (by its rebalance listener).
    pub fn assignment(&self) -> BTreeSet<i32> {
        self.heard.lock().unwrap().assignment.clone()
    }

    /// Every partition set its listener was told it lost or gave up, in order.
    pub fn revocations(&self) -> Vec<Vec<i32>> {
        self.heard.lock().unwrap().revoked_events.clone()
    }

    /// Every (partition, offset) it printed, in order.
    pub fn records(&self) -> Vec<(i32, i64)> {
        self.heard.lock().unwrap().records.clone()
    }

    /// Whether it exited its poll loop.
    pub fn has_exited(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(Some(_)))
    }

    /// What `committed()` reads for its assigned partitions: partition -> offset.
    pub fn committed(&mut self, timeout: Duration) -> Result<Vec<(i32, i64)>> {
        self.heard.lock().unwrap().committed = None;
        self.command("committed")?;
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(value) = self.heard.lock().unwrap().committed.clone() {
                let mut offsets: Vec<(i32, i64)> = value
                    .as_object()
                    .map(|map| {
                        map.iter()
                            .map(|(p, o)| (p.parse().unwrap_or(-1), o.as_i64().unwrap_or(-1)))
                            .collect()
                    })
                    .unwrap_or_default();
                offsets.sort();
                return Ok(offsets);
            }
            if Instant::now() > deadline {
                bail!("the Java member did not print its committed offsets");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Leaves the group (`close()`) and waits for the process to exit.
    pub fn stop(&mut self, timeout: Duration) -> Result<()> {
        self.command("stop")?;
        let deadline = Instant::now() + timeout;
        while !self.has_exited() {
            if Instant::now() > deadline {
                kill(&mut self.child);
                bail!("the Java member did not stop within {timeout:?}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    }

    fn command(&mut self, line: &str) -> Result<()> {
        let stdin = self
            .stdin
            .as_mut()
            .context("the Java member's input is closed")?;
        writeln!(stdin, "{line}")?;
        stdin.flush()?;
        Ok(())
    }
}

impl Drop for JavaMember {
    fn drop(&mut self) {
        kill(&mut self.child);
    }
}

/// Runs a Java source file of `tests/java/` on the Kafka classpath to its end and returns the
/// JSON lines it printed; an error when it fails or outlives `timeout`.
pub async fn run_source(file: &str, args: &[&str], timeout: Duration) -> Result<Vec<Value>> {
    let mut command = source_command(file)?;
    command
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    let mut child = spawn_tied(command).with_context(|| format!("cannot start {file}"))?;
    let stdout = child.stdout.take().expect("piped stdout");
    let lines = std::thread::spawn(move || {
        BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            .filter_map(|line| serde_json::from_str::<Value>(&line).ok())
            .collect::<Vec<_>>()
    });
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if Instant::now() > deadline {
            kill(&mut child);
            bail!("{file} did not finish within {timeout:?}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let events = lines.join().expect("the reader thread");
    if !status.success() {
        bail!("{file} failed ({status}); it printed {events:?}");
    }
    Ok(events)
}

/// Runs one of Kafka's own command-line tools (a main class on the Kafka classpath, e.g.
/// `org.apache.kafka.tools.consumer.group.ConsumerGroupCommand`) to its end and returns its
/// stdout; an error when it fails or outlives `timeout`.
pub fn kafka_tool(class: &str, args: &[&str], timeout: Duration) -> Result<String> {
    let mut command = kafka_java()?;
    command
        .arg(class)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = spawn_tied(command).with_context(|| format!("cannot start {class}"))?;
    let started = Instant::now();
    loop {
        if child.try_wait()?.is_some() {
            break;
        }
        if started.elapsed() > timeout {
            kill(&mut child);
            bail!("{class} {args:?} did not end within {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let output = child.wait_with_output()?;
    if !output.status.success() {
        bail!(
            "{class} {args:?}: {}\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}
