//! One run of one consumer as a child process: wall time, CPU time (user + system, from the
//! kernel's accounting of the child) and peak RSS, read with `wait4`.
//!
//! The consumer is started by a small launcher (this binary, `launch` mode) rather than by
//! the harness itself: Linux carries a process's peak RSS across fork and exec, so a child
//! forked from the harness (which holds the loaded workload) would report at least the
//! harness's size. The launcher is a few MB, which is the floor of what is reported.

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
pub fn measure(command: Command, log: &Path, limit: Duration) -> Result<Measured> {
    let stderr = std::fs::File::create(log)?;
    let usage_file = log.with_extension("usage");
    let _ = std::fs::remove_file(&usage_file);
    let mut launcher = Command::new(std::env::current_exe()?);
    launcher
        .arg("launch")
        .arg(&usage_file)
        .arg(command.get_program())
        .args(command.get_args())
        .envs(
            command
                .get_envs()
                .filter_map(|(key, value)| Some((key, value?))),
        )
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(stderr);
    let started = Instant::now();
    let mut child = launcher
        .spawn()
        .with_context(|| format!("cannot start {command:?}"))?;
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if started.elapsed() > limit {
            // The launcher takes the consumer with it (it is its parent; see `launch`).
            let _ = child.kill();
            let _ = child.wait();
            bail!(
                "{command:?} ran over {limit:?}; its stderr is in {}",
                log.display()
            );
        }
        std::thread::sleep(Duration::from_millis(2));
    };
    let wall = started.elapsed();
    if !status.success() {
        bail!(
            "{command:?} failed ({status}): {}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
    }
    let usage = std::fs::read_to_string(&usage_file)
        .with_context(|| format!("the launcher left no {}", usage_file.display()))?;
    let numbers: Vec<u64> = usage
        .split_whitespace()
        .map(|n| n.parse().context("a number"))
        .collect::<Result<_>>()?;
    let [cpu_micros, max_rss_kib] = numbers[..] else {
        bail!("{} holds `{usage}`", usage_file.display());
    };
    Ok(Measured {
        wall,
        cpu: Duration::from_micros(cpu_micros),
        max_rss_bytes: max_rss_kib * 1024,
    })
}

/// `launch USAGE_FILE PROGRAM ARGS...`: runs the program with this process's stdio, waits for
/// it with `wait4`, writes its CPU time (µs, user + system) and peak RSS (KiB) to USAGE_FILE,
/// and exits with its status. Runs before any runtime starts, so this process stays small.
pub fn launch(
    usage_file: &std::ffi::OsStr,
    program: &std::ffi::OsStr,
    args: &[std::ffi::OsString],
) -> ! {
    let mut command = Command::new(program);
    command.args(args);
    // SAFETY: prctl is async-signal-safe. The consumer dies with the launcher, so a run the
    // harness kills leaves nothing behind.
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(&mut command, || {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
    let child = match command.spawn() {
        Ok(child) => child,
        Err(error) => {
            eprintln!("cannot start {}: {error}", program.to_string_lossy());
            std::process::exit(127)
        }
    };
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: valid pointers; `pid` is our child, which `Child` never waits for.
    if unsafe { libc::wait4(pid, &mut status, 0, &mut usage) } != pid {
        eprintln!("wait4 failed: {}", std::io::Error::last_os_error());
        std::process::exit(126);
    }
    let micros = |t: libc::timeval| t.tv_sec as u64 * 1_000_000 + t.tv_usec as u64;
    let line = format!(
        "{} {}\n",
        micros(usage.ru_utime) + micros(usage.ru_stime),
        // Linux reports ru_maxrss in KiB.
        usage.ru_maxrss
    );
    if let Err(error) = std::fs::write(usage_file, line) {
        eprintln!("cannot write {}: {error}", usage_file.to_string_lossy());
        std::process::exit(126);
    }
    if libc::WIFEXITED(status) {
        std::process::exit(libc::WEXITSTATUS(status));
    }
    std::process::exit(128 + libc::WTERMSIG(status))
}
