//! Processes a test starts never outlive a bound: `Command::bounded_output` is
//! `Command::output` that kills the process and fails the test, with what it printed, once
//! [`PROCESS_BOUND`] has passed (a hung command would otherwise hang the whole test run).

use std::io::Read;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The longest a command a test runs to its end may take.
pub const PROCESS_BOUND: Duration = Duration::from_secs(180);

/// [`Command::output`] within a bound.
pub trait BoundedOutput {
    /// Within [`PROCESS_BOUND`].
    fn bounded_output(&mut self) -> std::io::Result<Output> {
        self.output_within(PROCESS_BOUND)
    }

    /// Within `bound` (a build, say, which may take longer on a cold machine).
    fn output_within(&mut self, bound: Duration) -> std::io::Result<Output>;
}

/// Asserts that `output`'s process exited 0; the failure starts with `context` (when not
/// empty), then gives the exit status and the process's stderr.
pub fn assert_succeeded(output: &Output, context: &str) {
    let context = if context.is_empty() {
        String::new()
    } else {
        format!("{context}: ")
    };
    assert!(
        output.status.success(),
        "{context}{}: {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Runs `command` with its stdout and stderr piped until it ends or `limit` has passed, then
/// kills it; its output either way (a test of a command that must give up on its own then
/// sees it did not).
pub fn output_or_kill_after(command: &mut Command, limit: Duration) -> Output {
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + limit;
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.wait_with_output().unwrap()
}

impl BoundedOutput for Command {
    fn output_within(&mut self, bound: Duration) -> std::io::Result<Output> {
        let mut child = self
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()?;
        let drain = |stream: Option<Box<dyn Read + Send>>| {
            std::thread::spawn(move || {
                let mut bytes = Vec::new();
                if let Some(mut stream) = stream {
                    let _ = stream.read_to_end(&mut bytes);
                }
                bytes
            })
        };
        let stdout = drain(
            child
                .stdout
                .take()
                .map(|s| Box::new(s) as Box<dyn Read + Send>),
        );
        let stderr = drain(
            child
                .stderr
                .take()
                .map(|s| Box::new(s) as Box<dyn Read + Send>),
        );
        let started = Instant::now();
        let status = loop {
            if let Some(status) = child.try_wait()? {
                break status;
            }
            if started.elapsed() > bound {
                let _ = child.kill();
                let _ = child.wait();
                let stdout = stdout.join().unwrap_or_default();
                let stderr = stderr.join().unwrap_or_default();
                panic!(
                    "{self:?} did not end within {bound:?}; stdout:\n{}\nstderr:\n{}",
                    String::from_utf8_lossy(&stdout),
                    String::from_utf8_lossy(&stderr)
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        Ok(Output {
            status,
            stdout: stdout.join().unwrap_or_default(),
            stderr: stderr.join().unwrap_or_default(),
        })
    }
}
