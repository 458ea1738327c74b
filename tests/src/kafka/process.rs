//! Child processes that never outlive the test process.
//!
//! Every child is spawned with `PR_SET_PDEATHSIG(SIGKILL)`: the kernel kills it when the thread
//! that spawned it ends. Test threads end after each test, and a shared broker must outlive
//! the test that started it, so children are spawned from one thread that lives as long as the
//! process: it ends only when the process does — normally, by a panic, or by SIGKILL — and then
//! the kernel kills the brokers. `Drop` stops them earlier when a fixture goes out of scope.

use std::io;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command};
use std::sync::mpsc;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

type SpawnRequest = (Command, mpsc::Sender<io::Result<Child>>);

/// Spawns `command` so that it dies with this process (see the module docs).
pub fn spawn_tied(mut command: Command) -> io::Result<Child> {
    static SPAWNER: OnceLock<Mutex<mpsc::Sender<SpawnRequest>>> = OnceLock::new();
    let spawner = SPAWNER.get_or_init(|| {
        let (requests, incoming) = mpsc::channel::<SpawnRequest>();
        std::thread::Builder::new()
            .name("child-spawner".into())
            .spawn(move || {
                // Lives until the process ends: the sender is in a static, never dropped.
                for (mut command, reply) in incoming {
                    let _ = reply.send(command.spawn());
                }
            })
            .expect("cannot start the child-spawner thread");
        Mutex::new(requests)
    });
    let parent = std::process::id() as libc::pid_t;
    // SAFETY: prctl and getppid are async-signal-safe; nothing here allocates.
    unsafe {
        command.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(io::Error::last_os_error());
            }
            // The parent may have died between fork and prctl.
            if libc::getppid() != parent {
                libc::_exit(1);
            }
            Ok(())
        });
    }
    let (reply, answer) = mpsc::channel();
    spawner
        .lock()
        .unwrap()
        .send((command, reply))
        .map_err(|_| io::Error::other("the child-spawner thread is gone"))?;
    answer
        .recv()
        .map_err(|_| io::Error::other("the child-spawner thread is gone"))?
}

/// Sends `signal` to a child that may have exited already.
pub fn signal(child: &Child, signal: libc::c_int) {
    // SAFETY: kill with a pid we own; a reaped pid is not reused while `child` is unreaped.
    unsafe {
        libc::kill(child.id() as libc::pid_t, signal);
    }
}

/// SIGTERM, then SIGKILL if the child has not exited within `grace`; reaps it.
pub fn terminate(child: &mut Child, grace: Duration) {
    signal(child, libc::SIGTERM);
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    kill(child);
}

/// SIGKILL and reap.
pub fn kill(child: &mut Child) {
    let _ = child.kill();
    let _ = child.wait();
}
