//! `--capture`: each record's latency split where it crosses the wire, from a loopback
//! capture (`tcpdump`) of the broker's port taken while the consumers run.
//!
//! For a record stamped `S` when it was handed to the producer, the capture gives `P`, the
//! first packet to the broker that carries the stamp (the produce request), and `A`, the first
//! packet from the broker to the consumer's connection that carries it (the fetch answer); the
//! reader gives `O`, when the line arrived. The legs:
//! - **producer**: `P - S`, the bench's own producer (the same for every consumer);
//! - **no fetch waiting**: when no fetch of the consumer's connection was at the broker as the
//!   record arrived there, the time until the next one came (`F - P`; else 0);
//! - **broker**: `A - max(P, F)`, from the record (or the fetch, when it came later) reaching the
//!   broker to the answer leaving it: the append, the delayed fetch's completion, the answer;
//! - **consumer**: `O - A`, reading and decoding the answer, writing the line and the reader's
//!   wake-up: the part a consumer's own code decides.
//!
//! A loopback packet is seen once, at the moment it is sent, so the clocks are one: the
//! capture's, the stamps' and the reader's are all the system's real-time clock.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{bail, Context, Result};

use super::quantile;

/// The digits of a stamp (nanoseconds since the epoch, from 2001 to 2286).
const STAMP_DIGITS: usize = 19;

/// A running `tcpdump` of the broker's port, into a file of its own.
pub struct Capture {
    child: Child,
    path: PathBuf,
    port: u16,
}

impl Capture {
    /// Starts capturing TCP on loopback to or from `port` (root, or `CAP_NET_RAW`, and
    /// `tcpdump` on the path), into a file in the temporary directory.
    pub fn start(port: u16) -> Result<Capture> {
        let path =
            std::env::temp_dir().join(format!("wasmkafka-bench-{}.pcap", std::process::id()));
        let path = path.as_path();
        let mut command = Command::new("tcpdump");
        // As root, tcpdump writes as its own user unless told otherwise; the file is ours.
        // SAFETY: geteuid only reads the process's user id.
        if unsafe { libc::geteuid() } == 0 {
            command.args(["-Z", "root"]);
        }
        let child = command
            .args(["-i", "lo", "-s", "0", "-B", "65536", "-U", "-n"])
            .args(["--time-stamp-precision", "nano", "-w"])
            .arg(path)
            .args(["tcp", "port", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context(
                "cannot start tcpdump for --capture (install it: apt-get install tcpdump; \
                 capturing needs root or CAP_NET_RAW)",
            )?;
        let mut capture = Capture {
            child,
            path: path.to_path_buf(),
            port,
        };
        // It writes the file's header once it listens.
        for _ in 0..100 {
            if std::fs::metadata(path).is_ok_and(|m| m.len() >= 24) {
                return Ok(capture);
            }
            if let Some(status) = capture.child.try_wait()? {
                bail!("tcpdump ended at once ({status}): --capture needs root or CAP_NET_RAW");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        bail!("tcpdump wrote no capture to {} within 5 s", path.display())
    }

    /// Stops the capture (SIGINT: tcpdump writes what it holds and ends) and reads it; the
    /// file is gone afterwards.
    pub fn finish(mut self) -> Result<Wire> {
        // SAFETY: `kill` with a child's pid and a signal number has no memory effects.
        unsafe {
            libc::kill(self.child.id() as libc::pid_t, libc::SIGINT);
        }
        self.child.wait().context("tcpdump")?;
        let bytes = std::fs::read(&self.path)
            .with_context(|| format!("cannot read {}", self.path.display()))?;
        Ok(Wire::new(&read_capture(&bytes, self.port)?))
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.path);
    }
}

/// One TCP segment with a payload, as the split needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment {
    /// Nanoseconds since the epoch.
    pub at: u64,
    /// From the broker (else to it).
    pub from_broker: bool,
    /// The client's port: the connection.
    pub client_port: u16,
    /// To the broker, and it starts a Fetch request (API key 1).
    pub fetch_request: bool,
    /// The stamps in its payload.
    pub stamps: Vec<u64>,
}

/// The TCP segments with a payload of a `tcpdump -w` file of loopback (Ethernet frames,
/// IPv4) to or from `broker_port`.
pub fn read_capture(bytes: &[u8], broker_port: u16) -> Result<Vec<Segment>> {
    if bytes.len() < 24 {
        bail!("a capture file starts with 24 bytes of header");
    }
    let nanos = match u32::from_le_bytes(bytes[0..4].try_into().expect("4 bytes")) {
        0xa1b2_3c4d => true,
        0xa1b2_c3d4 => false,
        other => bail!("not a little-endian pcap file (magic {other:#x})"),
    };
    let link = u32::from_le_bytes(bytes[20..24].try_into().expect("4 bytes"));
    if link != 1 {
        bail!("link type {link}: capture loopback with -i lo (Ethernet frames)");
    }
    let u32_at = |at: usize| u32::from_le_bytes(bytes[at..at + 4].try_into().expect("4 bytes"));
    let mut segments = Vec::new();
    let mut at = 24;
    while at + 16 <= bytes.len() {
        let seconds = u64::from(u32_at(at));
        let fraction = u64::from(u32_at(at + 4));
        let length = u32_at(at + 8) as usize;
        let frame = bytes.get(at + 16..at + 16 + length).unwrap_or_default();
        at += 16 + length;
        let time = seconds * 1_000_000_000 + if nanos { fraction } else { fraction * 1_000 };
        if let Some(segment) = segment(frame, time, broker_port) {
            segments.push(segment);
        }
    }
    Ok(segments)
}

/// An Ethernet frame's TCP segment to or from `broker_port`, when it has a payload.
fn segment(frame: &[u8], at: u64, broker_port: u16) -> Option<Segment> {
    if frame.get(12..14)? != [0x08, 0x00] {
        return None;
    }
    let ip = frame.get(14..)?;
    let ip_header = usize::from(ip.first()? & 0x0f) * 4;
    if *ip.get(9)? != 6 {
        return None;
    }
    let tcp = ip.get(ip_header..)?;
    let source = u16::from_be_bytes([*tcp.first()?, *tcp.get(1)?]);
    let destination = u16::from_be_bytes([*tcp.get(2)?, *tcp.get(3)?]);
    let payload = tcp.get(usize::from(tcp.get(12)? >> 4) * 4..)?;
    if payload.is_empty() {
        return None;
    }
    let (from_broker, client_port) = if source == broker_port {
        (true, destination)
    } else if destination == broker_port {
        (false, source)
    } else {
        return None;
    };
    Some(Segment {
        at,
        from_broker,
        client_port,
        fetch_request: !from_broker && payload.get(4..6) == Some(&[0, 1]),
        stamps: stamps_in(payload),
    })
}

/// Every run of exactly [`STAMP_DIGITS`] ASCII digits.
fn stamps_in(payload: &[u8]) -> Vec<u64> {
    let mut found = Vec::new();
    let mut run_start = None;
    for (i, byte) in payload.iter().chain(std::iter::once(&b' ')).enumerate() {
        match (byte.is_ascii_digit(), run_start) {
            (true, None) => run_start = Some(i),
            (false, Some(start)) => {
                if i - start == STAMP_DIGITS {
                    let digits = std::str::from_utf8(&payload[start..i]).expect("ASCII digits");
                    found.extend(digits.parse::<u64>().ok());
                }
                run_start = None;
            }
            _ => {}
        }
    }
    found
}

/// The legs of a consumer's records (nanoseconds, each sorted), and how many found a fetch
/// waiting at the broker.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Split {
    pub producer: Vec<u64>,
    pub no_fetch_waiting: Vec<u64>,
    pub broker: Vec<u64>,
    pub consumer: Vec<u64>,
    pub fetch_waiting: usize,
}

impl Split {
    pub fn records(&self) -> usize {
        self.consumer.len()
    }

    /// A leg's quantile in microseconds.
    pub fn us(leg: &[u64], q: f64) -> f64 {
        quantile(leg, q).map_or(f64::NAN, |ns| ns as f64 / 1e3)
    }
}

/// What the capture says of each stamp and connection.
pub struct Wire {
    /// Each stamp's first packet to the broker.
    produced: HashMap<u64, u64>,
    /// By client port: each stamp's first packet from the broker to it.
    answered: HashMap<u16, HashMap<u64, u64>>,
    /// By client port: when its fetch requests went out, in order.
    fetches: HashMap<u16, Vec<u64>>,
    /// By client port: when the broker sent it something, in order.
    answers: HashMap<u16, Vec<u64>>,
}

impl Wire {
    pub fn new(segments: &[Segment]) -> Wire {
        let mut wire = Wire {
            produced: HashMap::new(),
            answered: HashMap::new(),
            fetches: HashMap::new(),
            answers: HashMap::new(),
        };
        for segment in segments {
            if segment.from_broker {
                wire.answers
                    .entry(segment.client_port)
                    .or_default()
                    .push(segment.at);
                let answered = wire.answered.entry(segment.client_port).or_default();
                for stamp in &segment.stamps {
                    answered.entry(*stamp).or_insert(segment.at);
                }
            } else {
                if segment.fetch_request {
                    wire.fetches
                        .entry(segment.client_port)
                        .or_default()
                        .push(segment.at);
                }
                for stamp in &segment.stamps {
                    wire.produced.entry(*stamp).or_insert(segment.at);
                }
            }
        }
        wire
    }

    /// The consumer's connection: of those the broker sent most of `arrivals`' stamps, the one
    /// whose answers every line followed, and closest (with `--together` every consumer's
    /// connection carries every stamp).
    fn connection_of(&self, arrivals: &[(u64, u64)]) -> Option<u16> {
        let mut best: Option<((usize, i64), u16)> = None;
        for (port, answered) in &self.answered {
            let mut gaps: Vec<i64> = arrivals
                .iter()
                .filter_map(|(stamp, out)| answered.get(stamp).map(|at| *out as i64 - *at as i64))
                .collect();
            if gaps.is_empty() || gaps.len() * 2 < arrivals.len() {
                continue;
            }
            gaps.sort_unstable();
            let before = gaps.iter().filter(|gap| **gap >= 0).count() * 1000 / gaps.len();
            let key = (before, -gaps[gaps.len() / 2]);
            if best.is_none_or(|(b, _)| key > b) {
                best = Some((key, *port));
            }
        }
        best.map(|(_, port)| port)
    }

    /// Splits one consumer's records: `arrivals` are its (stamp, line arrived) pairs.
    pub fn split(&self, arrivals: &[(u64, u64)]) -> Option<Split> {
        let port = self.connection_of(arrivals)?;
        let answered = &self.answered[&port];
        let empty = Vec::new();
        let fetches = self.fetches.get(&port).unwrap_or(&empty);
        let answers = self.answers.get(&port).unwrap_or(&empty);
        let mut split = Split::default();
        for (stamp, out) in arrivals {
            let (Some(&produced), Some(&answer)) = (self.produced.get(stamp), answered.get(stamp))
            else {
                continue;
            };
            // The last fetch sent before the record reached the broker, and whether the
            // broker had answered it by then.
            let sent = fetches.partition_point(|at| *at <= produced);
            let waiting = sent > 0 && {
                let last = fetches[sent - 1];
                let next_answer = answers.partition_point(|at| *at <= last);
                answers.get(next_answer).is_none_or(|at| *at > produced)
            };
            let fetch_at = match fetches.get(sent) {
                Some(next) if !waiting => *next,
                _ => produced,
            };
            split.fetch_waiting += usize::from(waiting);
            split.producer.push(produced.saturating_sub(*stamp));
            split.no_fetch_waiting.push(fetch_at - produced);
            split
                .broker
                .push(answer.saturating_sub(fetch_at.max(produced)));
            split.consumer.push(out.saturating_sub(answer));
        }
        for leg in [
            &mut split.producer,
            &mut split.no_fetch_waiting,
            &mut split.broker,
            &mut split.consumer,
        ] {
            leg.sort_unstable();
        }
        Some(split)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BROKER: u16 = 9092;
    const STAMP: u64 = 1_796_000_000_000_000_000;

    /// A pcap file (nanosecond stamps, Ethernet) of these TCP segments.
    fn pcap(segments: &[(u64, u16, u16, Vec<u8>)]) -> Vec<u8> {
        let mut file = Vec::new();
        file.extend(0xa1b2_3c4du32.to_le_bytes());
        file.extend(2u16.to_le_bytes());
        file.extend(4u16.to_le_bytes());
        file.extend([0; 8]);
        file.extend(65535u32.to_le_bytes());
        file.extend(1u32.to_le_bytes());
        for (at, source, destination, payload) in segments {
            let mut frame = vec![0; 12];
            frame.extend([0x08, 0x00]);
            let mut ip = vec![0x45, 0, 0, 0, 0, 0, 0, 0, 64, 6, 0, 0];
            ip.extend([127, 0, 0, 1, 127, 0, 0, 1]);
            frame.extend(ip);
            frame.extend(source.to_be_bytes());
            frame.extend(destination.to_be_bytes());
            frame.extend([0; 8]);
            frame.extend([0x50, 0x18, 0, 0, 0, 0, 0, 0]);
            frame.extend(payload);
            file.extend(((at / 1_000_000_000) as u32).to_le_bytes());
            file.extend(((at % 1_000_000_000) as u32).to_le_bytes());
            file.extend((frame.len() as u32).to_le_bytes());
            file.extend((frame.len() as u32).to_le_bytes());
            file.extend(frame);
        }
        file
    }

    fn value(stamp: u64) -> Vec<u8> {
        let mut payload = b"\0\0\0\x40\0\x00 header".to_vec();
        payload.extend(format!("{stamp}        ").bytes());
        payload
    }

    fn fetch_request() -> Vec<u8> {
        vec![0, 0, 0, 40, 0, 1, 0, 17]
    }

    #[test]
    fn stamps_are_runs_of_nineteen_digits() {
        let payload = format!("x{STAMP} {} 12345678901234567890 {}", STAMP + 1, STAMP + 2);
        assert_eq!(
            stamps_in(payload.as_bytes()),
            vec![STAMP, STAMP + 1, STAMP + 2]
        );
    }

    #[test]
    fn a_record_is_split_into_the_producer_the_broker_and_the_consumer() {
        let ms = 1_000_000;
        let file = pcap(&[
            // A fetch waits at the broker; the record arrives 50 us after its stamp; the
            // broker answers 0.9 ms later.
            (STAMP - 5 * ms, 40000, BROKER, fetch_request()),
            (STAMP + 50_000, 50000, BROKER, value(STAMP)),
            (STAMP + 950_000, BROKER, 40000, value(STAMP)),
            // The next record arrives while no fetch waits: the next fetch comes 0.2 ms
            // later, and is answered at once (0.1 ms).
            (
                STAMP + 10 * ms + 10_000,
                50000,
                BROKER,
                value(STAMP + 10 * ms),
            ),
            (STAMP + 10 * ms + 210_000, 40000, BROKER, fetch_request()),
            (
                STAMP + 10 * ms + 310_000,
                BROKER,
                40000,
                value(STAMP + 10 * ms),
            ),
            // Another connection (another consumer, later) gets the first record too.
            (STAMP + 2 * ms, BROKER, 40001, value(STAMP)),
        ]);
        let segments = read_capture(&file, BROKER).expect("a capture");
        assert_eq!(segments.len(), 7);
        assert!(segments[0].fetch_request && !segments[1].fetch_request);
        let wire = Wire::new(&segments);
        let arrivals = [
            (STAMP, STAMP + 1_150_000),
            (STAMP + 10 * ms, STAMP + 10 * ms + 500_000),
        ];
        let split = wire.split(&arrivals).expect("the consumer's connection");
        assert_eq!(split.records(), 2);
        assert_eq!(split.fetch_waiting, 1);
        assert_eq!(split.producer, vec![10_000, 50_000]);
        assert_eq!(split.no_fetch_waiting, vec![0, 200_000]);
        assert_eq!(split.broker, vec![100_000, 900_000]);
        assert_eq!(split.consumer, vec![190_000, 200_000]);
    }

    #[test]
    fn the_consumers_connection_is_the_one_its_lines_follow() {
        let file = pcap(&[
            (STAMP + 10, 50000, BROKER, value(STAMP)),
            (STAMP + 100, BROKER, 40001, value(STAMP)),
            (STAMP + 300, BROKER, 40002, value(STAMP)),
        ]);
        let wire = Wire::new(&read_capture(&file, BROKER).expect("a capture"));
        // Its line came after both answers: the closer one is its own.
        assert_eq!(wire.connection_of(&[(STAMP, STAMP + 350)]), Some(40002));
        // Its line came before the second answer: the first is its own.
        assert_eq!(wire.connection_of(&[(STAMP, STAMP + 200)]), Some(40001));
    }

    #[test]
    fn a_file_that_is_not_a_capture_is_refused() {
        assert!(read_capture(b"not a pcap file at all, really", BROKER).is_err());
        let mut file = pcap(&[]);
        file[20] = 113; // Linux cooked capture (-i any)
        assert!(read_capture(&file, BROKER).is_err());
    }
}
