//! A `wasmkafka run` process as a test sees it: the records it printed (JSON lines, read by a
//! thread as they come, optionally at a slow reader's pace), its log, signals, and its end
//! within a bound. The binary's path comes from the caller (`env!("CARGO_BIN_EXE_wasmkafka")`
//! exists only in the host crate's tests).

use std::ffi::OsStr;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, ChildStderr, ChildStdout, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// (partition, offset) of a printed JSON record.
pub type Printed = (i64, i64);

/// A running `wasmkafka run`; killed on drop if it is still running.
pub struct CliMember {
    name: String,
    child: Child,
    printed: Arc<Mutex<Vec<Printed>>>,
    log: Arc<Mutex<String>>,
    readers: Vec<JoinHandle<()>>,
}

impl CliMember {
    /// Starts `binary run ARGS --format json` with an `info` log; `name` labels its
    /// failures. The reader pauses `pace.1` after every `pace.0` lines (0: never).
    pub fn start<S: AsRef<OsStr>>(
        name: &str,
        binary: &Path,
        args: &[S],
        pace: (usize, Duration),
    ) -> CliMember {
        CliMember::start_in(name, binary, None, args, pace)
    }

    /// [`CliMember::start`] with `dir` as the working directory (relative paths in a config
    /// resolve there).
    pub fn start_in<S: AsRef<OsStr>>(
        name: &str,
        binary: &Path,
        dir: Option<&Path>,
        args: &[S],
        pace: (usize, Duration),
    ) -> CliMember {
        let mut command = Command::new(binary);
        if let Some(dir) = dir {
            command.current_dir(dir);
        }
        let mut child = command
            .arg("run")
            .args(args)
            .args(["--format", "json", "--no-progress"])
            .env("WASMKAFKA_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|error| panic!("cannot start {}: {error}", binary.display()));
        let printed = Arc::new(Mutex::new(Vec::new()));
        let log = Arc::new(Mutex::new(String::new()));
        let readers = vec![
            read_records(child.stdout.take().unwrap(), printed.clone(), pace),
            read_log(child.stderr.take().unwrap(), log.clone()),
        ];
        CliMember {
            name: name.to_string(),
            child,
            printed,
            log,
            readers,
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The records printed so far.
    pub fn printed(&self) -> Vec<Printed> {
        self.printed.lock().unwrap().clone()
    }

    pub fn printed_count(&self) -> usize {
        self.printed.lock().unwrap().len()
    }

    /// The log so far (stderr).
    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// How many log lines so far contain `text`.
    pub fn log_count(&self, text: &str) -> usize {
        self.log().lines().filter(|l| l.contains(text)).count()
    }

    /// True while the process runs.
    pub fn running(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }

    /// Waits until `done` holds; panics with the log after `timeout` or when the process
    /// ended first.
    pub fn wait_until(&mut self, what: &str, timeout: Duration, done: impl Fn(&CliMember) -> bool) {
        let deadline = Instant::now() + timeout;
        while !done(self) {
            if Instant::now() > deadline || !self.running() {
                let _ = self.child.kill();
                panic!(
                    "{}: waiting for {what}: printed {}; log:\n{}",
                    self.name,
                    self.printed_count(),
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Waits until it printed at least `count` records.
    pub fn wait_for_printed(&mut self, count: usize, timeout: Duration) {
        self.wait_until(&format!("{count} records"), timeout, |m| {
            m.printed_count() >= count
        });
    }

    /// Waits until the log has a line containing `text`.
    pub fn wait_for_log(&mut self, text: &str, timeout: Duration) {
        self.wait_until(&format!("`{text}` in the log"), timeout, |m| {
            m.log().contains(text)
        });
    }

    /// Sends a signal by name (`TERM`, `INT`, `KILL`).
    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .args([&format!("-{name}"), &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success(), "kill -{name} {}", self.child.id());
    }

    /// Waits for the process to end (panics with the log after `timeout`) and drains its
    /// output: everything it wrote counts as printed. Returns the status, how long the wait
    /// took, the log and the records.
    pub fn finish(mut self, timeout: Duration) -> Finished {
        let started = Instant::now();
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            if started.elapsed() > timeout {
                let _ = self.child.kill();
                panic!(
                    "{} did not exit within {timeout:?}; log:\n{}",
                    self.name,
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        let took = started.elapsed();
        for reader in self.readers.drain(..) {
            reader.join().unwrap();
        }
        Finished {
            status,
            took,
            log: self.log(),
            printed: std::mem::take(&mut *self.printed.lock().unwrap()),
        }
    }

    /// SIGTERM, then [`CliMember::finish`] within `timeout`; panics (with the log) unless it
    /// exits 0: the clean stop every group member owes.
    pub fn stop_cleanly(self, timeout: Duration) -> Finished {
        self.signal("TERM");
        let finished = self.finish(timeout);
        assert!(
            finished.status.success(),
            "SIGTERM: {}\n{}",
            finished.status,
            finished.log
        );
        finished
    }

    /// SIGKILL, then [`CliMember::finish`].
    pub fn kill(mut self) -> Finished {
        let _ = self.child.kill();
        self.finish(Duration::from_secs(10))
    }
}

impl Drop for CliMember {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `run` arguments for a member of `group` reading `topic` with `config`, then `extra`.
pub fn group_member_args(
    config: &str,
    brokers: &str,
    topic: &str,
    group: &str,
    extra: &[&str],
) -> Vec<String> {
    let mut args: Vec<String> = [
        "--config",
        config,
        "--brokers",
        brokers,
        "--topic",
        topic,
        "--group",
        group,
    ]
    .iter()
    .map(|a| a.to_string())
    .collect();
    args.extend(extra.iter().map(|a| a.to_string()));
    args
}

/// How a member ended.
#[derive(Debug)]
pub struct Finished {
    pub status: ExitStatus,
    pub took: Duration,
    pub log: String,
    pub printed: Vec<Printed>,
}

/// Reads JSON records from stdout, pausing `pace.1` after every `pace.0` lines.
fn read_records(
    stdout: ChildStdout,
    sink: Arc<Mutex<Vec<Printed>>>,
    (every, pause): (usize, Duration),
) -> JoinHandle<()> {
    std::thread::spawn(move || {
        let mut stdout = BufReader::new(stdout);
        let mut line = String::new();
        for n in 0.. {
            line.clear();
            if stdout.read_line(&mut line).unwrap_or(0) == 0 {
                break;
            }
            // A line cut short by SIGKILL was not printed.
            let Some(json) = line.strip_suffix('\n') else {
                break;
            };
            let record: serde_json::Value = serde_json::from_str(json).unwrap();
            sink.lock().unwrap().push((
                record["partition"].as_i64().unwrap(),
                record["offset"].as_i64().unwrap(),
            ));
            if every > 0 && n % every == every - 1 {
                std::thread::sleep(pause);
            }
        }
    })
}

fn read_log(stderr: ChildStderr, sink: Arc<Mutex<String>>) -> JoinHandle<()> {
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            let mut log = sink.lock().unwrap();
            log.push_str(&line);
            log.push('\n');
        }
    })
}
