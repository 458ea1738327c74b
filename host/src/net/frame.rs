//! Length-prefixed framing: every Kafka request and response is a big-endian `i32` size followed
//! by that many bytes.
//!
//! Invariant: a claimed size is never trusted for allocation. Frames over `max_frame_bytes` are
//! refused before reading their body, and the buffer for an accepted frame grows with the bytes
//! that actually arrive, so a peer that claims 100 MiB and sends ten bytes costs ten bytes.

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt};

/// How much the body buffer grows per read at most.
const READ_CHUNK: usize = 64 * 1024;

/// Why a frame could not be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FrameError {
    /// The peer closed the stream cleanly between frames.
    #[error("the peer closed the connection")]
    Eof,
    /// The stream ended inside a frame (after `read` of `expected` bytes).
    #[error("the connection closed mid-frame after {read} of {expected} bytes")]
    Truncated { read: usize, expected: usize },
    /// The size prefix is negative.
    #[error("invalid frame size prefix {0}")]
    NegativeSize(i32),
    /// The size prefix is larger than the configured limit.
    #[error("frame of {claimed} bytes is over the {limit}-byte limit")]
    TooLarge { claimed: usize, limit: usize },
    /// TLS failed on an established connection (an alert from the broker, such as one
    /// refusing the client certificate after a TLS 1.3 handshake).
    #[error("TLS: {0}")]
    Tls(String),
    /// Any other I/O failure.
    #[error("I/O error: {0}")]
    Io(String),
}

fn io_error(error: std::io::Error) -> FrameError {
    match error
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
    {
        Some(tls) => FrameError::Tls(super::transport::describe_tls_error(tls)),
        None => FrameError::Io(error.to_string()),
    }
}

/// Reads one frame body (without its size prefix).
pub async fn read_frame<R>(reader: &mut R, max_frame_bytes: usize) -> Result<Bytes, FrameError>
where
    R: AsyncRead + Unpin,
{
    let mut prefix = [0u8; 4];
    let mut got = 0;
    while got < prefix.len() {
        let n = reader.read(&mut prefix[got..]).await.map_err(io_error)?;
        if n == 0 {
            return Err(if got == 0 {
                FrameError::Eof
            } else {
                FrameError::Truncated {
                    read: got,
                    expected: 4,
                }
            });
        }
        got += n;
    }
    let size = i32::from_be_bytes(prefix);
    if size < 0 {
        return Err(FrameError::NegativeSize(size));
    }
    let size = size as usize;
    if size > max_frame_bytes {
        return Err(FrameError::TooLarge {
            claimed: size,
            limit: max_frame_bytes,
        });
    }
    let mut body = BytesMut::with_capacity(size.min(READ_CHUNK));
    while body.len() < size {
        let want = (size - body.len()).min(READ_CHUNK);
        body.reserve(want);
        let n = (&mut *reader)
            .take(want as u64)
            .read_buf(&mut body)
            .await
            .map_err(io_error)?;
        if n == 0 {
            return Err(FrameError::Truncated {
                read: body.len(),
                expected: size,
            });
        }
    }
    Ok(body.freeze())
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
        let mut reader = bytes;
        read_frame(&mut reader, max).await
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

    #[test]
    fn frames_carry_their_size() {
        let mut buf = buffer_for_frame();
        buf.extend_from_slice(b"hello");
        assert_eq!(&frame_with_size(buf).unwrap()[..], b"\0\0\0\x05hello");
    }
}
