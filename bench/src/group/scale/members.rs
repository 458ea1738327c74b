//! The members of one `group-scale` group: processes (ours, `wasmkafka run --group`; or
//! librdkafka's, a Python process each) or the threads of one JVM (Java's), and how one
//! joins and one leaves.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use wasmkafka_tests::kafka::jars::java_with_tools_log;
use wasmkafka_tests::kafka::process::spawn_tied;

use super::super::member::{Launcher, Member, Output, CONSUMER_PROTOCOL};
use super::kinds::{Client, Kind, Protocol};
use super::Ctx;

/// The most a member that was asked to stop may take to exit before it is killed.
const EXIT_LIMIT: Duration = Duration::from_secs(30);

/// The members of one group.
pub enum Members {
    /// A process per member, with its index; and when the one that left exited.
    Processes {
        running: Vec<(usize, Member)>,
        exited: Option<Arc<OnceLock<Instant>>>,
    },
    Java(JavaGroup),
}

impl Members {
    /// Starts members 0..count.
    pub fn start(
        ctx: &Ctx,
        kind: Kind,
        group: &str,
        count: usize,
        output: Arc<dyn Output>,
    ) -> Result<Members> {
        if kind.client() == Client::Java {
            let mut java = JavaGroup::start(ctx, kind, group, output)?;
            java.send(&format!("start {count}"))?;
            return Ok(Members::Java(java));
        }
        let running = (0..count)
            .map(|index| Ok((index, process(ctx, kind, group, index, output.clone())?)))
            .collect::<Result<_>>()?;
        Ok(Members::Processes {
            running,
            exited: None,
        })
    }

    /// Starts member number `index`.
    pub fn join(
        &mut self,
        ctx: &Ctx,
        kind: Kind,
        group: &str,
        index: usize,
        output: Arc<dyn Output>,
    ) -> Result<()> {
        match self {
            Members::Processes { running, .. } => {
                running.push((index, process(ctx, kind, group, index, output)?))
            }
            Members::Java(java) => java.send("join")?,
        }
        Ok(())
    }

    /// Stops member number `index` cleanly: SIGTERM to its process, or its thread closes its
    /// consumer. Either leaves the group.
    pub fn leave(&mut self, index: usize) -> Result<()> {
        match self {
            Members::Processes { running, exited } => {
                let at = running
                    .iter()
                    .position(|(i, _)| *i == index)
                    .with_context(|| format!("no member {index}"))?;
                let (_, mut member) = running.remove(at);
                member.terminate()?;
                let done = Arc::new(OnceLock::new());
                *exited = Some(done.clone());
                std::thread::spawn(move || {
                    let started = Instant::now();
                    while started.elapsed() < EXIT_LIMIT {
                        if member.exited().is_some() {
                            let _ = done.set(Instant::now());
                            return;
                        }
                        std::thread::sleep(Duration::from_millis(5));
                    }
                    // Dropping it kills it.
                });
            }
            Members::Java(java) => java.send(&format!("leave {index}"))?,
        }
        Ok(())
    }

    /// When the member that left exited (processes only).
    pub fn left_exit(&self) -> Option<Instant> {
        match self {
            Members::Processes { exited, .. } => exited.as_ref()?.get().copied(),
            Members::Java(_) => None,
        }
    }

    /// Fails when a member's process exited (one that was asked to leave apart).
    pub fn check(&mut self) -> Result<()> {
        match self {
            Members::Processes { running, .. } => {
                for (index, member) in running.iter_mut() {
                    if let Some(status) = member.exited() {
                        bail!("member {index} exited ({status}); see its log");
                    }
                }
            }
            Members::Java(java) => {
                if let Some(status) = java.child.try_wait()? {
                    bail!("the Java members' JVM exited ({status}); see its log");
                }
            }
        }
        Ok(())
    }

    /// The resident memory of every running member's process.
    pub fn rss_bytes(&self) -> u64 {
        match self {
            Members::Processes { running, .. } => {
                running.iter().map(|(_, m)| rss_of(m.pid())).sum()
            }
            Members::Java(java) => rss_of(java.child.id()),
        }
    }
}

/// Starts member `index` as a process of its own.
fn process(
    ctx: &Ctx,
    kind: Kind,
    group: &str,
    index: usize,
    output: Arc<dyn Output>,
) -> Result<Member> {
    match kind.client() {
        Client::Ours => launcher(ctx, kind, group).start(index, output),
        Client::Rdkafka => {
            let python = ctx
                .python
                .context("the librdkafka members need the Python venv")?;
            let log = ctx.logs.join(format!("{group}-{index}.log"));
            let mut command = Command::new(python);
            command
                .arg(ctx.peers_dir.join("python/group_member.py"))
                .args([ctx.brokers.as_str(), ctx.topic.as_str(), group])
                .arg(match kind.protocol() {
                    Protocol::Eager => "eager",
                    Protocol::Cooperative => "cooperative",
                    Protocol::Consumer => "consumer",
                })
                .stderr(std::fs::File::create(&log)?);
            Member::spawn(command, index, output)
        }
        Client::Java => bail!("a Java member is a thread of the JVM"),
    }
}

fn launcher<'a>(ctx: &'a Ctx, kind: Kind, group: &'a str) -> Launcher<'a> {
    Launcher {
        wasmkafka: ctx.wasmkafka,
        brokers: &ctx.brokers,
        topic: &ctx.topic,
        group,
        assignor: match kind.protocol() {
            Protocol::Eager => "range",
            Protocol::Cooperative => "cooperative-sticky",
            Protocol::Consumer => CONSUMER_PROTOCOL,
        },
        from: "latest",
        fetch_max_wait_ms: None,
        logs: Some(&ctx.logs),
    }
}

/// A process's resident set (VmRSS), 0 when it cannot be read.
fn rss_of(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|status| {
            let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
            let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
            Some(kib * 1024)
        })
        .unwrap_or(0)
}

/// The JVM of `GroupScale.java`, its members as threads. Killed on drop.
pub struct JavaGroup {
    child: Child,
    stdin: ChildStdin,
}

impl JavaGroup {
    fn start(ctx: &Ctx, kind: Kind, group: &str, output: Arc<dyn Output>) -> Result<JavaGroup> {
        let log = ctx.logs.join(format!("{group}.log"));
        let mut command = java_with_tools_log(ctx.java_classpath);
        command
            .arg("GroupScale")
            .args([ctx.brokers.as_str(), ctx.topic.as_str(), group])
            .arg(match kind.protocol() {
                Protocol::Eager => "eager",
                Protocol::Cooperative => "classic",
                Protocol::Consumer => "consumer",
            })
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log)?);
        let mut child = spawn_tied(command).context("cannot start the Java members (java 17)")?;
        let stdout = child.stdout.take().expect("piped");
        let stdin = child.stdin.take().expect("piped");
        std::thread::spawn(move || {
            let mut reader = BufReader::with_capacity(1 << 16, stdout);
            let mut line = Vec::new();
            while reader.read_until(b'\n', &mut line).is_ok_and(|n| n > 0) {
                let text = line.strip_suffix(b"\n").unwrap_or(&line);
                if let Some(space) = text.iter().position(|b| *b == b' ') {
                    let member = std::str::from_utf8(&text[..space])
                        .ok()
                        .and_then(|m| m.parse().ok());
                    if let Some(member) = member {
                        output.record(member, &text[space + 1..]);
                    }
                }
                line.clear();
            }
        });
        Ok(JavaGroup { child, stdin })
    }

    fn send(&mut self, command: &str) -> Result<()> {
        writeln!(self.stdin, "{command}")?;
        self.stdin.flush()?;
        Ok(())
    }
}

impl Drop for JavaGroup {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
