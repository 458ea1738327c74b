//! One run of one consumer as a child process: wall time, CPU time (user + system, from the
//! kernel's accounting of the child) and peak RSS, read with `wait4`.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

#[derive(Debug, Clone, Copy)]
pub struct Measured {
    pub wall: Duration,
    pub cpu: Duration,
    pub max_rss_bytes: u64,
}

/// Runs `command` with stdout to /dev/null and stderr to `log`, waits at most `limit`.
/// Fails when it exits non-zero or runs over (then it is killed).
pub fn measure(mut command: Command, log: &Path, limit: Duration) -> Result<Measured> {
    let stderr = std::fs::File::create(log)?;
    command
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(stderr);
    let started = Instant::now();
    let child = command
        .spawn()
        .with_context(|| format!("cannot start {command:?}"))?;
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    loop {
        // SAFETY: `status` and `usage` are valid for writes; `pid` is our child, which
        // `Child` never waits for (we reap it here).
        let reaped = unsafe { libc::wait4(pid, &mut status, libc::WNOHANG, &mut usage) };
        if reaped == pid {
            break;
        }
        if reaped < 0 {
            bail!("wait4 failed: {}", std::io::Error::last_os_error());
        }
        if started.elapsed() > limit {
            unsafe { libc::kill(pid, libc::SIGKILL) };
            let _ = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
            bail!(
                "{command:?} ran over {limit:?}; its stderr is in {}",
                log.display()
            );
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    let wall = started.elapsed();
    if !(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0) {
        bail!(
            "{command:?} failed (wait status {status}): {}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
    }
    let time = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    Ok(Measured {
        wall,
        cpu: time(usage.ru_utime) + time(usage.ru_stime),
        // Linux reports ru_maxrss in KiB.
        max_rss_bytes: usage.ru_maxrss as u64 * 1024,
    })
}
