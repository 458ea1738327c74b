//! `run`'s stdout, written so that a slow reader never holds up the runtime's workers and a
//! small poll costs no thread hand-over.
//!
//! A write to stdout blocks while its reader is slow, and `run` is a task on the runtime's
//! workers (see [`super::execute`]): a blocked worker would hold up the tasks beside it (the
//! fetch driver the poll just woke, heartbeats). So a poll's lines are formatted and written
//! in `block_in_place`, which first hands the worker's other tasks to another thread. That
//! hand-over wakes a thread, so a small poll (lines of about [`ATOMIC_WRITE`] bytes or less)
//! whose write cannot block stays on the worker: its lines are formatted into memory, and go
//! out straight from the worker when
//! - stdout is **a pipe** (the usual reader: `| jq`, a collector), the lines are at most
//!   [`ATOMIC_WRITE`] bytes and `poll` says the pipe has room now: Linux then has a free page
//!   for them, and the write copies into it and returns;
//! - or stdout is **a regular file**.
//!
//! Anything else (a terminal, which `^S` can stop; a socket), a full pipe and larger polls go
//! through `block_in_place`, one hand-over per poll.
//!
//! Measured at 1,000 records/s (BENCHMARKS.md, "Where the time goes"): our part of a
//! record's latency, from the fetch answer leaving the broker to the line reaching the reader.

use std::io::{self, BufWriter, Stdout, Write};

/// The most one write puts on a pipe without waiting, given room for one write (Linux's
/// `PIPE_BUF`, one page); also the size of the lines of a poll that stays on the worker.
pub const ATOMIC_WRITE: usize = 4096;

/// What stdout is, as far as blocking goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Pipe,
    File,
    Other,
}

/// Stdout behind a buffer of `capacity` bytes; see the module.
pub struct StdoutWriter {
    out: BufWriter<Stdout>,
    kind: Kind,
}

impl StdoutWriter {
    pub fn new(capacity: usize) -> StdoutWriter {
        let stdout = io::stdout();
        let kind = kind_of(&stdout);
        StdoutWriter {
            out: BufWriter::with_capacity(capacity, stdout),
            kind,
        }
    }

    /// Whether a poll whose lines come to about `size` bytes is formatted into memory on the
    /// worker ([`Self::write_small`]) rather than in `block_in_place` ([`Self::write_large`]).
    pub fn is_small(&self, size: usize) -> bool {
        size <= ATOMIC_WRITE && self.kind != Kind::Other
    }

    /// Writes a small poll's formatted lines: straight from the worker when that cannot block.
    pub fn write_small(&mut self, lines: &[u8]) -> io::Result<()> {
        let Self { out, kind } = self;
        // The buffer is empty between polls: every poll ends with a flush.
        let stdout = out.get_ref();
        let write = || {
            let mut stdout = stdout.lock();
            stdout.write_all(lines)?;
            stdout.flush()
        };
        if cannot_block(*kind, lines.len(), || has_room(stdout)) {
            write()
        } else {
            blocking(write)
        }
    }

    /// Formats and writes a poll's lines through the buffer in `block_in_place`, and flushes.
    pub fn write_large<T>(
        &mut self,
        format: impl FnOnce(&mut BufWriter<Stdout>) -> io::Result<T>,
    ) -> io::Result<T> {
        let out = &mut self.out;
        blocking(|| {
            let formatted = format(out)?;
            out.flush()?;
            Ok(formatted)
        })
    }
}

/// Runs a write that may block in `block_in_place` on a multi-threaded runtime (see the
/// module); elsewhere (a test, the current-thread runtime) as it is.
fn blocking<T>(write: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current().map(|handle| handle.runtime_flavor()) {
        Ok(tokio::runtime::RuntimeFlavor::MultiThread) => tokio::task::block_in_place(write),
        _ => write(),
    }
}

#[cfg(unix)]
fn kind_of(fd: &impl std::os::fd::AsFd) -> Kind {
    use rustix::fs::FileType;
    match rustix::fs::fstat(fd).map(|stat| FileType::from_raw_mode(stat.st_mode)) {
        Ok(FileType::Fifo) => Kind::Pipe,
        Ok(FileType::RegularFile) => Kind::File,
        _ => Kind::Other,
    }
}

#[cfg(not(unix))]
fn kind_of(_: &Stdout) -> Kind {
    Kind::Other
}

/// A write of `len` bytes to stdout of `kind` returns without waiting for a reader
/// (`has_room`: a pipe has room for one write now).
fn cannot_block(kind: Kind, len: usize, has_room: impl FnOnce() -> bool) -> bool {
    match kind {
        Kind::File => true,
        Kind::Pipe => len <= ATOMIC_WRITE && has_room(),
        Kind::Other => false,
    }
}

/// The pipe has room for a write now (`poll` with no wait).
#[cfg(unix)]
fn has_room(fd: &impl std::os::fd::AsFd) -> bool {
    use rustix::event::{poll, PollFd, PollFlags, Timespec};
    let mut fds = [PollFd::new(fd, PollFlags::OUT)];
    let now = Timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    matches!(poll(&mut fds, Some(&now)), Ok(1)) && fds[0].revents().contains(PollFlags::OUT)
}

#[cfg(not(unix))]
fn has_room(_: &Stdout) -> bool {
    false
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn a_pipe_has_room_until_it_is_full_and_again_once_its_reader_takes_a_page() {
        let (mut reader, mut writer) = std::io::pipe().expect("pipe");
        assert!(has_room(&writer), "an empty pipe has room");
        // Linux's default pipe holds 16 pages: this write fills it without waiting.
        writer.write_all(&vec![b'x'; 16 * 4096]).expect("fill");
        assert!(!has_room(&writer), "a full pipe has no room");
        assert!(!cannot_block(Kind::Pipe, 10, || has_room(&writer)));
        let mut page = vec![0; 4096];
        reader.read_exact(&mut page).expect("read a page");
        assert!(has_room(&writer), "a page read makes room");
        assert!(cannot_block(Kind::Pipe, ATOMIC_WRITE, || has_room(&writer)));
        assert!(
            !cannot_block(Kind::Pipe, ATOMIC_WRITE + 1, || has_room(&writer)),
            "more than a page may wait, room or not"
        );
    }

    #[test]
    fn files_never_wait_and_other_kinds_always_may() {
        assert!(cannot_block(Kind::File, 1 << 20, || false));
        assert!(!cannot_block(Kind::Other, 1, || true));
    }

    #[test]
    fn stdout_of_a_pipe_or_a_file_is_told_apart_from_others() {
        let (_reader, writer) = std::io::pipe().expect("pipe");
        assert_eq!(kind_of(&writer), Kind::Pipe);
        let file = tempfile::tempfile().expect("file");
        assert_eq!(kind_of(&file), Kind::File);
        let null = std::fs::File::options()
            .write(true)
            .open("/dev/null")
            .expect("null");
        assert_eq!(kind_of(&null), Kind::Other);
    }
}
