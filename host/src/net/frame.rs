//! Length-prefixed framing: every Kafka request and response is a big-endian `i32` size followed
//! by that many bytes.
//!
//! Invariant: a claimed size is trusted for allocation only as far as the peer has proven it.
//! Frames over `max_frame_bytes` are refused before reading their body; below that, the buffer
//! grows with the bytes that actually arrive, or at once to the size of the largest frame this
//! connection has already delivered whole. A peer that claims 100 MiB and sends ten bytes costs
//! one read chunk (64 KiB) and the rounding of a new buffer, plus what it proved before.
//!
//! The reader keeps one receive buffer per connection and reads as much as the socket has
//! (a following frame's first bytes included). Frames are slices of it, so it is shared until
//! the records in them are gone. Before a frame's first bytes arrive, a buffer no frame shares
//! any more is reclaimed from its start; where the room left may be too small, the first read
//! takes at most 64 KiB, and a frame that does not fit moves with that much to a new buffer,
//! rounded up so that the next, slightly larger frame fits it too. (Filling what room was
//! left and moving then copied a third of all fetched bytes on 1 KB records.)

use bytes::{Buf, Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt};

use super::error::{describe_tls_error, FrameError};

/// How much the buffer grows per read until the peer has proven larger frames.
const READ_CHUNK: usize = 64 * 1024;
/// The buffer grows when less than this is free for the next read.
const MIN_READ: usize = 4096;

fn io_error(error: std::io::Error) -> FrameError {
    match error
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
    {
        Some(tls) => FrameError::Tls(describe_tls_error(tls)),
        None => FrameError::Io(error.into()),
    }
}

/// Reads frames from one stream, keeping its receive buffer between frames.
pub struct FrameReader<R> {
    reader: R,
    buffer: BytesMut,
    max_frame_bytes: usize,
    /// The largest frame delivered whole so far: the size the buffer may grow to at once.
    proven: usize,
}

impl<R: AsyncRead + Unpin> FrameReader<R> {
    pub fn new(reader: R, max_frame_bytes: usize) -> Self {
        Self {
            reader,
            buffer: BytesMut::new(),
            max_frame_bytes,
            proven: 0,
        }
    }

    /// Reads the next frame body (without its size prefix). Cancel-safe: bytes read before a
    /// cancellation stay in the buffer for the next call.
    pub async fn next(&mut self) -> Result<Bytes, FrameError> {
        while self.buffer.len() < 4 {
            if self.fill_prefix().await? == 0 {
                return Err(if self.buffer.is_empty() {
                    FrameError::Eof
                } else {
                    FrameError::Truncated {
                        read: self.buffer.len(),
                        expected: 4,
                    }
                });
            }
        }
        let size = i32::from_be_bytes(self.buffer[..4].try_into().expect("4 bytes"));
        if size < 0 {
            return Err(FrameError::NegativeSize(size));
        }
        let size = size as usize;
        if size > self.max_frame_bytes {
            return Err(FrameError::TooLarge {
                claimed: size,
                limit: self.max_frame_bytes,
            });
        }
        self.make_room_for(4 + size);
        while self.buffer.len() < 4 + size {
            let missing = 4 + size - self.buffer.len();
            if self.fill(missing).await? == 0 {
                return Err(FrameError::Truncated {
                    read: self.buffer.len() - 4,
                    expected: size,
                });
            }
        }
        self.buffer.advance(4);
        self.proven = self.proven.max(size);
        Ok(self.buffer.split_to(size).freeze())
    }

    /// Reads while the next frame's size is unknown. When the buffer may be too small for it
    /// (less room than the largest frame proven), it is first reclaimed from its start if no
    /// frame shares it any more (nothing of the next frame is in it yet), and a read takes at
    /// most [`READ_CHUNK`]: if the frame does not fit, little of it has to move.
    async fn fill_prefix(&mut self) -> Result<usize, FrameError> {
        let fits_any = 4 + self.proven;
        if self.buffer.is_empty() && self.buffer.capacity() < fits_any {
            // Reclaimed or not, the reads below take what room there is.
            let _ = self.buffer.try_reclaim(fits_any);
        }
        if self.buffer.capacity() - self.buffer.len() < MIN_READ {
            self.grow(fits_any);
        }
        let room = self.buffer.capacity() - self.buffer.len();
        let limit = if room >= fits_any { room } else { READ_CHUNK };
        (&mut self.reader)
            .take(limit as u64)
            .read_buf(&mut self.buffer)
            .await
            .map_err(io_error)
    }

    /// Once a frame's size is known: if it does not fit, makes room for it (as far as the peer
    /// has proven) before reading on, so that what moves is at most one read.
    fn make_room_for(&mut self, frame_end: usize) {
        if self.buffer.capacity() < frame_end {
            let trusted = frame_end.min((4 + self.proven).max(READ_CHUNK));
            self.grow(trusted);
        }
    }

    /// Room for `target` bytes from the buffer's start: in place when no frame shares the
    /// buffer any more and what is in it can move to its front without overlapping itself
    /// (`BytesMut::try_reclaim`), else in a new buffer that what is in it is copied to. New
    /// buffers are rounded up to [`READ_CHUNK`] with room to spare, so that frames a few bytes
    /// larger than the last still fit and a freed buffer is the size the next one asks the
    /// allocator for.
    fn grow(&mut self, target: usize) {
        let len = self.buffer.len();
        if self.buffer.capacity() >= target || self.buffer.try_reclaim(target - len) {
            return;
        }
        let size = if target <= READ_CHUNK {
            READ_CHUNK
        } else {
            (target + MIN_READ).next_multiple_of(READ_CHUNK)
        };
        let mut fresh = BytesMut::with_capacity(size);
        fresh.extend_from_slice(&self.buffer);
        self.buffer = fresh;
    }

    /// One read into the buffer, with room for `missing` bytes where the peer has proven it
    /// (else for [`READ_CHUNK`]); returns how many bytes came.
    async fn fill(&mut self, missing: usize) -> Result<usize, FrameError> {
        let room = missing.min(READ_CHUNK.max(self.proven));
        // Grow only when the space left is too small for a useful read.
        if self.buffer.capacity() - self.buffer.len() < room.min(MIN_READ) {
            self.buffer.reserve(room);
        }
        self.reader
            .read_buf(&mut self.buffer)
            .await
            .map_err(io_error)
    }
}

/// Prepends the size prefix to an encoded message.
pub fn frame_with_size(mut buf: BytesMut) -> Result<Bytes, FrameError> {
    let size = buf.len() - 4;
    let size = i32::try_from(size).map_err(|_| FrameError::TooLarge {
        claimed: size,
        limit: i32::MAX as usize,
    })?;
    buf[..4].copy_from_slice(&size.to_be_bytes());
    Ok(buf.freeze())
}

/// A buffer with room reserved for the size prefix that [`frame_with_size`] fills in.
pub fn buffer_for_frame() -> BytesMut {
    let mut buf = BytesMut::with_capacity(256);
    buf.extend_from_slice(&[0, 0, 0, 0]);
    buf
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn read(bytes: &[u8], max: usize) -> Result<Bytes, FrameError> {
        FrameReader::new(bytes, max).next().await
    }

    #[tokio::test]
    async fn reads_a_whole_frame() {
        let frame = [0, 0, 0, 3, b'a', b'b', b'c'];
        assert_eq!(read(&frame, 10).await.unwrap(), Bytes::from_static(b"abc"));
    }

    #[tokio::test]
    async fn refuses_oversized_prefix_without_reading_body() {
        let frame = [0x7f, 0xff, 0xff, 0xff, 1, 2, 3];
        assert_eq!(
            read(&frame, 1024).await,
            Err(FrameError::TooLarge {
                claimed: i32::MAX as usize,
                limit: 1024
            })
        );
    }

    #[tokio::test]
    async fn reports_truncation_and_negative_sizes() {
        assert_eq!(
            read(&[0, 0, 0, 9, 1, 2], 100).await,
            Err(FrameError::Truncated {
                read: 2,
                expected: 9
            })
        );
        assert_eq!(
            read(&[0, 0], 100).await,
            Err(FrameError::Truncated {
                read: 2,
                expected: 4
            })
        );
        assert_eq!(read(&[], 100).await, Err(FrameError::Eof));
        assert_eq!(
            read(&[0xff, 0xff, 0xff, 0xfe], 100).await,
            Err(FrameError::NegativeSize(-2))
        );
    }

    fn framed(body: &[u8]) -> Vec<u8> {
        let mut bytes = (body.len() as u32).to_be_bytes().to_vec();
        bytes.extend_from_slice(body);
        bytes
    }

    #[tokio::test]
    async fn frames_that_share_a_read_and_frames_split_over_many() {
        // Two frames in one read.
        let mut both = framed(b"first");
        both.extend(framed(b"second"));
        let mut frames = FrameReader::new(&both[..], 100);
        assert_eq!(frames.next().await.unwrap(), Bytes::from_static(b"first"));
        assert_eq!(frames.next().await.unwrap(), Bytes::from_static(b"second"));
        assert_eq!(frames.next().await, Err(FrameError::Eof));
        // One frame trickling in 7 bytes at a time through a small pipe.
        let body: Vec<u8> = (0..200_000u32).map(|i| i as u8).collect();
        let (mut write, read) = tokio::io::duplex(7);
        let sent = framed(&body);
        let writer = tokio::spawn(async move {
            use tokio::io::AsyncWriteExt;
            write.write_all(&sent).await.unwrap();
        });
        let mut frames = FrameReader::new(read, 1 << 20);
        assert_eq!(frames.next().await.unwrap(), body);
        writer.await.unwrap();
    }

    #[tokio::test]
    async fn the_buffer_grows_only_as_far_as_the_peer_has_proven() {
        // A claim of 100 MiB with ten bytes behind it: one read chunk, not the claim.
        let mut lying = (100u32 << 20).to_be_bytes().to_vec();
        lying.extend([0; 10]);
        let mut frames = FrameReader::new(&lying[..], 200 << 20);
        assert!(matches!(
            frames.next().await,
            Err(FrameError::Truncated { read: 10, .. })
        ));
        assert!(
            frames.buffer.capacity() <= READ_CHUNK,
            "{}",
            frames.buffer.capacity()
        );
        // After a whole 1 MiB frame, the next one's buffer is reserved at once and, the first
        // frame being gone, it is the same allocation.
        let body = vec![7u8; 1 << 20];
        let mut two = framed(&body);
        two.extend(framed(&body));
        let mut frames = FrameReader::new(&two[..], 2 << 20);
        let first = frames.next().await.unwrap();
        let first_at = first.as_ptr();
        assert_eq!(frames.proven, 1 << 20);
        drop(first);
        let second = frames.next().await.unwrap();
        assert_eq!(second.len(), 1 << 20);
        assert_eq!(
            second.as_ptr(),
            first_at,
            "the receive buffer was reclaimed, not reallocated"
        );
    }

    #[tokio::test]
    async fn a_frame_a_little_larger_than_the_last_reuses_its_buffer() {
        // Fetch answers vary by a few hundred bytes. The first is held while the second
        // arrives, so the second gets a buffer of its own; once both are gone, the third,
        // 200 bytes larger, is read into that buffer from its start instead of a copy.
        let bodies: Vec<Vec<u8>> = [0, 0, 200]
            .iter()
            .enumerate()
            .map(|(n, extra)| (0..(1 << 20) + extra).map(|i| (i * 7 + n) as u8).collect())
            .collect();
        let stream: Vec<u8> = bodies.iter().flat_map(|body| framed(body)).collect();
        let mut frames = FrameReader::new(&stream[..], 2 << 20);
        let first = frames.next().await.unwrap();
        let second = frames.next().await.unwrap();
        assert_eq!((&first[..], &second[..]), (&bodies[0][..], &bodies[1][..]));
        let second_at = second.as_ptr();
        drop((first, second));
        let third = frames.next().await.unwrap();
        assert_eq!(&third[..], &bodies[2][..], "the third frame's bytes");
        assert_eq!(
            third.as_ptr(),
            second_at,
            "the third frame was moved to a new buffer"
        );
    }

    #[test]
    fn frames_carry_their_size() {
        let mut buf = buffer_for_frame();
        buf.extend_from_slice(b"hello");
        assert_eq!(&frame_with_size(buf).unwrap()[..], b"\0\0\0\x05hello");
    }
}
