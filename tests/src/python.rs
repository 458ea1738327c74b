//! Python with confluent-kafka (librdkafka), for tests that put wasmkafka beside another
//! client: a venv created once under [`cache_dir`]`/python/` (pip install from PyPI), and the
//! small scripts in `tests/python/` run as child processes that talk JSON lines on stdout.
//!
//! The venv is shared by every test process: one creates it ([`fill_once`]), the others wait
//! and reuse it. Its folder is
//! named after the pinned version, so a new pin gets a new venv.

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use serde_json::Value;
use tokio::sync::mpsc;

use crate::cache::{cache_dir, fill_once, run_checked};
use crate::kafka::process;

/// The confluent-kafka release the venv installs (it bundles its librdkafka).
pub const CONFLUENT_KAFKA_VERSION: &str = "2.16.1";

/// `tests/python/`: the scripts.
pub fn scripts_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("python")
}

/// The interpreter that creates the venv: `$WASMKAFKA_PYTHON`, else `python3`.
fn base_python() -> PathBuf {
    std::env::var_os("WASMKAFKA_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("python3"))
}

/// The venv's `python`, with confluent-kafka installed (created on first use; safe to call
/// from several processes at once).
pub fn python() -> Result<PathBuf> {
    static PYTHON: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    PYTHON
        .get_or_init(|| create_venv().map_err(|error| format!("{error:#}")))
        .clone()
        .map_err(anyhow::Error::msg)
}

/// [`python`] off the async runtime: the first call may install for a while, and a test's
/// runtime blocked that long starves its group members' heartbeats. Call it before starting
/// members; [`Script::spawn`] then finds the venv ready.
pub async fn ready() -> Result<PathBuf> {
    tokio::task::spawn_blocking(python)
        .await
        .context("the venv task panicked")?
}

fn create_venv() -> Result<PathBuf> {
    venv(
        &format!("confluent-kafka-{CONFLUENT_KAFKA_VERSION}"),
        &[format!("confluent-kafka=={CONFLUENT_KAFKA_VERSION}")],
        "confluent_kafka",
    )
}

/// The venv's `componentize-py` (Python plugins, `wasmkafka plugin new --lang python`), at
/// the release the scaffold's README installs (made once, in the cache).
pub fn componentize_py() -> Result<PathBuf> {
    let version = wasmkafka::cli::scaffold::python::COMPONENTIZE_PY;
    let python = venv(
        &format!("componentize-py-{version}"),
        &[format!("componentize-py=={version}")],
        "componentize_py",
    )?;
    Ok(python.with_file_name("componentize-py"))
}

/// A venv in the cache (`<cache>/python/<folder>`, made once, safe from several processes at
/// once) with `packages` (pip requirements) installed and `import` importable; its `python`.
/// Name the folder after the pins, so a new pin gets a new venv.
pub fn venv(folder: &str, packages: &[String], import: &str) -> Result<PathBuf> {
    let venv = cache_dir().join("python").join(folder);
    let what = format!("a Python venv with {} (PyPI)", packages.join(", "));
    fill_once(&venv, &what, |venv| {
        run_checked(
            Command::new(base_python()).args(["-m", "venv"]).arg(venv),
            "create the venv (Debian: apt install python3-venv; or set WASMKAFKA_PYTHON)",
        )?;
        run_checked(
            Command::new(venv.join("bin/pip"))
                .args(["install", "--quiet", "--disable-pip-version-check"])
                .args(packages),
            &format!("pip install {}", packages.join(" ")),
        )?;
        run_checked(
            Command::new(venv.join("bin/python")).args(["-c", &format!("import {import}")]),
            &format!("import {import}"),
        )
    })?;
    Ok(venv.join("bin/python"))
}

/// A script from `tests/python/` running in the venv. Each line it prints is one event (a
/// JSON value; a line that is not JSON arrives as a string). The script dies with the test
/// process, and is killed when this is dropped.
pub struct Script {
    name: String,
    child: Child,
    stdin: Option<ChildStdin>,
    events: mpsc::UnboundedReceiver<Value>,
    stderr: Arc<Mutex<String>>,
}

impl Script {
    /// Starts `tests/python/<name>` with `args` (blocks while the venv is first created: in
    /// an async test, await [`ready`] first).
    pub fn spawn(name: &str, args: &[&str]) -> Result<Script> {
        let mut command = Command::new(python()?);
        command
            .arg(scripts_dir().join(name))
            .args(args)
            .env("PYTHONUNBUFFERED", "1")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child =
            process::spawn_tied(command).with_context(|| format!("cannot start {name}"))?;
        let stdout = child.stdout.take().expect("stdout is piped");
        let stderr = child.stderr.take().expect("stderr is piped");
        let (sender, events) = mpsc::unbounded_channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let event = serde_json::from_str(&line).unwrap_or(Value::String(line));
                if sender.send(event).is_err() {
                    break;
                }
            }
        });
        let log = Arc::new(Mutex::new(String::new()));
        let tail = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                let mut tail = tail.lock().unwrap();
                tail.push_str(&line);
                tail.push('\n');
                if tail.len() > 20_000 {
                    let cut = tail.len() - 10_000;
                    let cut = (cut..tail.len())
                        .find(|i| tail.is_char_boundary(*i))
                        .unwrap_or(0);
                    tail.drain(..cut);
                }
            }
        });
        Ok(Script {
            name: name.to_string(),
            stdin: child.stdin.take(),
            child,
            events,
            stderr: log,
        })
    }

    /// The last lines the script wrote to stderr.
    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// The next event; `None` once the script closed its stdout. Fails after `timeout`.
    pub async fn next(&mut self, timeout: Duration) -> Result<Option<Value>> {
        match tokio::time::timeout(timeout, self.events.recv()).await {
            Ok(event) => Ok(event),
            Err(_) => bail!(
                "{} printed nothing for {timeout:?}; its stderr:\n{}",
                self.name,
                self.stderr()
            ),
        }
    }

    /// An event that has arrived already, if any (does not wait).
    pub fn try_next(&mut self) -> Option<Value> {
        self.events.try_recv().ok()
    }

    /// The next event whose `"event"` field is `kind`, skipping others; fails if the script
    /// ends first or after `timeout`.
    pub async fn expect(&mut self, kind: &str, timeout: Duration) -> Result<Value> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.next(left).await? {
                Some(event) if event["event"] == kind => return Ok(event),
                Some(_) => {}
                None => bail!(
                    "{} ended before a {kind} event; its stderr:\n{}",
                    self.name,
                    self.stderr()
                ),
            }
        }
    }

    /// Writes one line to the script's stdin.
    pub fn send(&mut self, line: &str) -> Result<()> {
        let stdin = self.stdin.as_mut().context("stdin is closed")?;
        writeln!(stdin, "{line}")?;
        stdin.flush()?;
        Ok(())
    }

    /// Closes stdin, reads every remaining event and waits for a successful exit.
    pub async fn finish(mut self, timeout: Duration) -> Result<Vec<Value>> {
        self.stdin = None;
        let deadline = tokio::time::Instant::now() + timeout;
        let mut events = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.next(left).await? {
                Some(event) => events.push(event),
                None => break,
            }
        }
        loop {
            if let Some(status) = self.child.try_wait()? {
                if !status.success() {
                    bail!(
                        "{} exited with {status}; its stderr:\n{}",
                        self.name,
                        self.stderr()
                    );
                }
                return Ok(events);
            }
            if tokio::time::Instant::now() > deadline {
                bail!("{} did not exit within {timeout:?}", self.name);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Runs a script to its end; returns every event.
    pub async fn run(name: &str, args: &[&str], timeout: Duration) -> Result<Vec<Value>> {
        Script::spawn(name, args)?.finish(timeout).await
    }
}

impl Drop for Script {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            process::kill(&mut self.child);
        }
    }
}
