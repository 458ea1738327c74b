//! The codec of a batch's records section.
//!
//! lz4 and zstd, the codecs Kafka users pick for throughput, are decompressed here without
//! per-batch set-up, into one scratch buffer per thread, and the records are then copied out
//! into an allocation of exactly their size:
//! - a decoder per batch (what a streaming reader does) allocated and faulted in fresh internal
//!   buffers a thousand times per million records, about a third of the consumer's time on lz4
//!   batches, measured with perf;
//! - decompressing straight into a growing buffer left up to half of it unused, and the
//!   records keep their batch's buffer alive until they are written: zstd batches held 47 MB
//!   at the peak against 28 MB for lz4.
//!
//! The lz4 frame is walked block by block; zstd decompresses in one shot with a reused context
//! (no window buffer of its own: the output is the window). gzip, snappy and linked-block lz4
//! frames go through kafka-protocol's (vendored, bounded) decompressors.
//!
//! Invariant: output never exceeds [`MAX_DECOMPRESSED_BATCH_BYTES`], and the scratch buffer
//! grows with what the input can expand to, so a small hostile batch cannot make a large
//! allocation. Checksums inside the lz4 frame are not verified: the batch's CRC-32C already
//! covered these bytes.

use std::cell::RefCell;

use bytes::Bytes;
use kafka_protocol::compression::{Decompressor, Gzip, Lz4, Snappy, MAX_DECOMPRESSED_BATCH_BYTES};
use zstd::zstd_safe::{self, zstd_sys, DCtx};

const NONE: u8 = 0;
const GZIP: u8 = 1;
const SNAPPY: u8 = 2;
const LZ4: u8 = 3;
const ZSTD: u8 = 4;

/// The records section, decompressed when the codec says so (uncompressed: the same bytes).
pub(super) fn decompress(compression: u8, mut section: Bytes) -> Result<Bytes, String> {
    match compression {
        NONE => Ok(section),
        LZ4 => match with_scratch(|scratch| lz4_frame(&section, scratch))? {
            (true, records) => Ok(records),
            (false, _) => through_kafka_protocol::<Lz4>(&mut section),
        },
        ZSTD => Ok(with_scratch(|scratch| zstd(&section, scratch))?.1),
        GZIP => through_kafka_protocol::<Gzip>(&mut section),
        SNAPPY => through_kafka_protocol::<Snappy>(&mut section),
        other => Err(format!("unknown compression codec {other}")),
    }
}

fn through_kafka_protocol<D>(section: &mut Bytes) -> Result<Bytes, String>
where
    D: Decompressor<Bytes, Buf = Bytes>,
{
    D::decompress(section, |records| Ok(records.clone())).map_err(|error| format!("{error:#}"))
}

thread_local! {
    /// Where this thread decompresses; it keeps its capacity for the next batch, up to
    /// [`SCRATCH_KEPT_BYTES`].
    static SCRATCH: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// A scratch buffer larger than this (after a batch far above Kafka's default 1 MB
/// `max.message.bytes`) is freed after use rather than kept by the thread.
const SCRATCH_KEPT_BYTES: usize = 8 << 20;

/// Runs `decompress` into this thread's (cleared) scratch buffer and copies what it wrote
/// into an allocation of its own size.
fn with_scratch<R>(
    decompress: impl FnOnce(&mut Vec<u8>) -> Result<R, String>,
) -> Result<(R, Bytes), String> {
    SCRATCH.with(|scratch| {
        let mut scratch = scratch.borrow_mut();
        scratch.clear();
        let result = decompress(&mut scratch);
        let records = Bytes::copy_from_slice(&scratch);
        if scratch.capacity() > SCRATCH_KEPT_BYTES {
            *scratch = Vec::new();
        }
        Ok((result?, records))
    })
}

const LZ4_MAGIC: u32 = 0x184D_2204;
/// LZ4 expands at most 255:1 (one token byte per 255 output bytes, plus a little).
const LZ4_MAX_RATIO: usize = 255;

/// An lz4 frame (the format Kafka's clients write) decompressed block by block into `out`;
/// false (and nothing written) for a frame of linked blocks, which only a streaming decoder
/// can follow.
fn lz4_frame(frame: &[u8], out: &mut Vec<u8>) -> Result<bool, String> {
    let corrupt = |what: &str| format!("lz4 frame: {what}");
    if frame.len() < 7 || u32::from_le_bytes(frame[..4].try_into().expect("4 bytes")) != LZ4_MAGIC {
        return Err(corrupt("no frame header"));
    }
    let flags = frame[4];
    if flags >> 6 != 0b01 {
        return Err(corrupt("unsupported frame version"));
    }
    let independent = flags & 0b0010_0000 != 0;
    let block_checksums = flags & 0b0001_0000 != 0;
    let content_size = flags & 0b0000_1000 != 0;
    let dictionary = flags & 0b0000_0001 != 0;
    if !independent {
        return Ok(false);
    }
    if dictionary {
        return Err(corrupt("a dictionary id, which Kafka never writes"));
    }
    let block_max = match (frame[5] >> 4) & 0b111 {
        4 => 64 << 10,
        5 => 256 << 10,
        6 => 1 << 20,
        7 => 4 << 20,
        _ => return Err(corrupt("invalid block maximum size")),
    };
    // Magic, FLG, BD, the optional content size, the header checksum.
    let mut at = 4 + 2 + if content_size { 8 } else { 0 } + 1;
    loop {
        let Some(size) = frame.get(at..at + 4) else {
            return Err(corrupt("ends before its end mark"));
        };
        let size = u32::from_le_bytes(size.try_into().expect("4 bytes"));
        at += 4;
        if size == 0 {
            return Ok(true); // the end mark; a content checksum may follow
        }
        let stored = size & 0x8000_0000 != 0;
        let length = (size & 0x7fff_ffff) as usize;
        let Some(block) = frame.get(at..at.saturating_add(length)) else {
            return Err(corrupt("a block runs past the frame"));
        };
        at += length + if block_checksums { 4 } else { 0 };
        let room = if stored {
            length
        } else {
            block_max.min(length.saturating_mul(LZ4_MAX_RATIO).saturating_add(16))
        };
        if out.len() + room > MAX_DECOMPRESSED_BATCH_BYTES {
            return Err(format!(
                "lz4 batch decompresses to more than {MAX_DECOMPRESSED_BATCH_BYTES} bytes"
            ));
        }
        if stored {
            out.extend_from_slice(block);
            continue;
        }
        out.reserve(room);
        let spare = out.spare_capacity_mut();
        // SAFETY: LZ4_decompress_safe reads exactly `block.len()` bytes from `block` and writes
        // at most `room` bytes to `spare`, which has at least that much capacity; it never
        // reads or writes out of bounds whatever the input. On success it returns how many
        // bytes it wrote, all initialized, so the length may grow by that much.
        let written = unsafe {
            lz4_sys::LZ4_decompress_safe(
                block.as_ptr().cast(),
                spare.as_mut_ptr().cast(),
                i32::try_from(block.len()).map_err(|_| corrupt("block too large"))?,
                i32::try_from(room).expect("at most 4 MiB"),
            )
        };
        let written = usize::try_from(written).map_err(|_| corrupt("a corrupt block"))?;
        // SAFETY: see above; `written <= room <= spare capacity`.
        unsafe { out.set_len(out.len() + written) };
    }
}

thread_local! {
    /// One zstd decompression context per thread.
    static ZSTD_CONTEXT: RefCell<Option<DCtx<'static>>> = const { RefCell::new(None) };
}

/// A zstd batch (one or more frames) decompressed into `out` in one shot, with this thread's
/// context. When every frame states its size, `out` is that size; a valid batch fills it
/// exactly. Otherwise (Kafka's producers mostly stream their frames) `out` starts at 4x the
/// input and doubles while the output does not fit (each try starts over: the output of a
/// batch that does not fit is not kept). Either way it never grows past what the frames'
/// blocks can hold ([`zstd_sizes`]): a stated size is a claim, not an allocation.
fn zstd(compressed: &[u8], out: &mut Vec<u8>) -> Result<(), String> {
    let too_large =
        || format!("zstd batch decompresses to more than {MAX_DECOMPRESSED_BATCH_BYTES} bytes");
    let ZstdSizes { bound, stated } = zstd_sizes(compressed)?;
    let limit = bound.min(MAX_DECOMPRESSED_BATCH_BYTES);
    let mut room = match stated {
        Some(stated) => {
            if stated > bound {
                return Err(format!(
                    "zstd frames state {stated} bytes; their blocks hold at most {bound}"
                ));
            }
            if stated > MAX_DECOMPRESSED_BATCH_BYTES {
                return Err(too_large());
            }
            stated
        }
        None => compressed.len().saturating_mul(4).max(1 << 12).min(limit),
    };
    ZSTD_CONTEXT.with(|context| {
        let mut context = context.borrow_mut();
        let context = context.get_or_insert_with(DCtx::create);
        loop {
            out.clear();
            out.reserve(room);
            match context.decompress(out, compressed) {
                Ok(_) => return Ok(()),
                Err(code) if too_small(code) && room < limit => {
                    room = room.saturating_mul(2).min(limit);
                }
                Err(code) if too_small(code) && limit == MAX_DECOMPRESSED_BATCH_BYTES => {
                    return Err(too_large())
                }
                Err(code) => return Err(format!("zstd: {}", zstd_safe::get_error_name(code))),
            }
        }
    })
}

const ZSTD_MAGIC: u32 = 0xFD2F_B528;
/// Skippable frames carry no data for us: magic 0x184D2A50 to 0x184D2A5F, a size, bytes.
const ZSTD_SKIPPABLE_MASK: u32 = 0xFFFF_FFF0;
const ZSTD_SKIPPABLE_MAGIC: u32 = 0x184D_2A50;
/// No zstd block decompresses to more than 128 KiB.
const ZSTD_BLOCK_MAX: usize = 128 << 10;

/// What zstd frames say about their output, read from their headers alone (RFC 8878).
struct ZstdSizes {
    /// The most the blocks can decompress to: raw and RLE blocks give exactly their size, a
    /// compressed block at most 128 KiB.
    bound: usize,
    /// The sum of the frames' content sizes, when every frame states one.
    stated: Option<usize>,
}

/// Walks `compressed` (frames back to back) frame by frame and block by block; structure that
/// runs past the input is an error.
fn zstd_sizes(compressed: &[u8]) -> Result<ZstdSizes, String> {
    let corrupt = |what: &str| format!("zstd frame: {what}");
    let u32_at = |at: usize| {
        compressed
            .get(at..at + 4)
            .map(|b| u32::from_le_bytes(b.try_into().expect("4 bytes")))
            .ok_or_else(|| corrupt("ends inside a header"))
    };
    let mut at = 0;
    let mut bound = 0usize;
    let mut stated = Some(0usize);
    while at < compressed.len() {
        let magic = u32_at(at)?;
        if magic & ZSTD_SKIPPABLE_MASK == ZSTD_SKIPPABLE_MAGIC {
            at += 8 + u32_at(at + 4)? as usize;
            continue;
        }
        if magic != ZSTD_MAGIC {
            return Err(corrupt("no frame magic"));
        }
        let descriptor = *compressed
            .get(at + 4)
            .ok_or_else(|| corrupt("ends inside a header"))?;
        let single_segment = descriptor & 0b0010_0000 != 0;
        let checksum = descriptor & 0b0000_0100 != 0;
        let dictionary_id = [0, 1, 2, 4][usize::from(descriptor & 0b11)];
        let size_field = match descriptor >> 6 {
            0 if single_segment => 1,
            0 => 0,
            1 => 2,
            2 => 4,
            _ => 8,
        };
        at += 5 + usize::from(!single_segment) + dictionary_id;
        let field = compressed
            .get(at..at + size_field)
            .ok_or_else(|| corrupt("ends inside a header"))?;
        let mut content_size = field
            .iter()
            .rev()
            .fold(0u64, |size, byte| size << 8 | u64::from(*byte));
        if size_field == 2 {
            content_size += 256;
        }
        stated = match (stated, size_field) {
            (Some(sum), 1..) => {
                Some(sum.saturating_add(usize::try_from(content_size).unwrap_or(usize::MAX)))
            }
            _ => None,
        };
        at += size_field;
        loop {
            let header = compressed
                .get(at..at + 3)
                .ok_or_else(|| corrupt("ends inside a block header"))?;
            let header =
                u32::from(header[0]) | u32::from(header[1]) << 8 | u32::from(header[2]) << 16;
            let last = header & 1 != 0;
            let size = (header >> 3) as usize;
            at += 3;
            let (input, output) = match (header >> 1) & 0b11 {
                0 => (size, size),
                1 => (1, size),
                2 => (size, ZSTD_BLOCK_MAX),
                _ => return Err(corrupt("a reserved block type")),
            };
            at = at.saturating_add(input);
            if at > compressed.len() {
                return Err(corrupt("a block runs past the input"));
            }
            bound = bound.saturating_add(output);
            if last {
                break;
            }
        }
        if checksum {
            at += 4;
        }
    }
    if at > compressed.len() {
        return Err(corrupt("ends inside a frame"));
    }
    Ok(ZstdSizes { bound, stated })
}

fn too_small(code: usize) -> bool {
    // SAFETY: ZSTD_getErrorCode only classifies the number it is given.
    let code = unsafe { zstd_sys::ZSTD_getErrorCode(code) };
    code == zstd_sys::ZSTD_ErrorCode::ZSTD_error_dstSize_tooSmall
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use lz4::{BlockMode, BlockSize, ContentChecksum};

    use super::*;

    fn lz4(frame: &[u8]) -> Result<Option<Vec<u8>>, String> {
        let mut out = Vec::new();
        Ok(lz4_frame(frame, &mut out)?.then_some(out))
    }

    fn unzstd(compressed: &[u8]) -> Result<Vec<u8>, String> {
        let mut out = Vec::new();
        zstd(compressed, &mut out).map(|()| out)
    }

    /// Text-like bytes that compress, then random bytes that do not (lz4 stores such blocks
    /// as they are).
    fn sample() -> Vec<u8> {
        let mut bytes: Vec<u8> = (0..400_000u32)
            .flat_map(|i| format!("record {i} of many; ").into_bytes())
            .take(500_000)
            .collect();
        let mut state = 0x2545_f491_4f6c_dd1du64;
        bytes.extend((0..300_000).map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        }));
        bytes
    }

    fn lz4_encode(data: &[u8], size: BlockSize, mode: BlockMode, checksums: bool) -> Vec<u8> {
        let mut builder = lz4::EncoderBuilder::new();
        builder.block_size(size).block_mode(mode);
        if checksums {
            builder
                .checksum(ContentChecksum::ChecksumEnabled)
                .block_checksum(lz4::liblz4::BlockChecksum::BlockChecksumEnabled)
                .content_size(data.len() as u64);
        } else {
            builder.checksum(ContentChecksum::NoChecksum);
        }
        let mut encoder = builder.build(Vec::new()).unwrap();
        encoder.write_all(data).unwrap();
        let (frame, result) = encoder.finish();
        result.unwrap();
        frame
    }

    #[test]
    fn lz4_frames_of_every_block_size_and_checksum_option() {
        let data = sample();
        for size in [
            BlockSize::Max64KB,
            BlockSize::Max256KB,
            BlockSize::Max1MB,
            BlockSize::Max4MB,
        ] {
            for checksums in [false, true] {
                let frame = lz4_encode(&data, size.clone(), BlockMode::Independent, checksums);
                let decoded = lz4(&frame).unwrap().expect("independent blocks");
                assert!(decoded == data, "{size:?}, checksums {checksums}");
            }
        }
    }

    #[test]
    fn linked_lz4_blocks_go_to_the_streaming_decoder() {
        let data = sample();
        let frame = lz4_encode(&data, BlockSize::Max64KB, BlockMode::Linked, false);
        assert_eq!(lz4(&frame), Ok(None));
        let decoded = decompress(LZ4, Bytes::from(frame)).unwrap();
        assert!(decoded == data);
    }

    #[test]
    fn broken_lz4_frames_are_errors() {
        let frame = lz4_encode(&sample(), BlockSize::Max64KB, BlockMode::Independent, false);
        for cut in [3, 6, 11, 100, frame.len() - 4] {
            assert!(lz4(&frame[..cut]).is_err(), "cut at {cut}");
        }
        // A 4 MiB block size with one 5-byte block: room for 255 x 5 + 16 bytes, not 4 MiB,
        // and a block that does not decode is an error.
        let mut tiny = vec![0x04, 0x22, 0x4d, 0x18, 0b0110_0000, 0b0111_0000, 0];
        tiny.extend(5u32.to_le_bytes());
        tiny.extend([0xff; 5]);
        tiny.extend(0u32.to_le_bytes());
        assert_eq!(lz4(&tiny), Err("lz4 frame: a corrupt block".into()));
        // A stored block is copied as it is.
        let mut stored = tiny[..7].to_vec();
        stored.extend((3u32 | 0x8000_0000).to_le_bytes());
        stored.extend(b"abc");
        stored.extend(0u32.to_le_bytes());
        assert_eq!(lz4(&stored), Ok(Some(b"abc".to_vec())));
    }

    /// A single-segment zstd frame stating `content_size` (8-byte field) around `blocks`.
    fn zstd_frame(content_size: u64, blocks: &[(u8, u32, &[u8])]) -> Vec<u8> {
        let mut frame = ZSTD_MAGIC.to_le_bytes().to_vec();
        frame.push(0b1110_0000);
        frame.extend(content_size.to_le_bytes());
        for (index, (kind, size, content)) in blocks.iter().enumerate() {
            let last = u32::from(index + 1 == blocks.len());
            let header = last | u32::from(*kind) << 1 | size << 3;
            frame.extend(&header.to_le_bytes()[..3]);
            frame.extend(*content);
        }
        frame
    }

    #[test]
    fn zstd_block_headers_bound_what_a_frame_may_claim() {
        // A raw block and an RLE block, read by zstd itself: the walk agrees with it.
        let frame = zstd_frame(1005, &[(0, 5, b"hello"), (1, 1000, b"a")]);
        let mut expected = b"hello".to_vec();
        expected.extend([b'a'; 1000]);
        assert!(unzstd(&frame).unwrap() == expected);
        // The same blocks stating 1 GiB: refused from the headers, nothing that large reserved.
        let lying = zstd_frame(1 << 30, &[(0, 5, b"hello"), (1, 1000, b"a")]);
        let mut out = Vec::new();
        assert_eq!(
            zstd(&lying, &mut out),
            Err("zstd frames state 1073741824 bytes; their blocks hold at most 1005".into())
        );
        assert!(out.capacity() < 1 << 20, "{}", out.capacity());
        // Blocks that run past the input, and a reserved block type.
        assert_eq!(
            unzstd(&zstd_frame(5, &[(0, 50, b"hello")])),
            Err("zstd frame: a block runs past the input".into())
        );
        assert_eq!(
            unzstd(&zstd_frame(5, &[(3, 5, b"hello")])),
            Err("zstd frame: a reserved block type".into())
        );
    }

    #[test]
    fn a_scratch_buffer_grown_by_a_huge_batch_is_not_kept() {
        let kept = || SCRATCH.with(|scratch| scratch.borrow().capacity());
        let small = zstd::encode_all(&sample()[..], 3).unwrap();
        let (_, records) = with_scratch(|scratch| zstd(&small, scratch)).unwrap();
        assert_eq!(records.len(), sample().len());
        assert!(kept() >= records.len(), "kept for the next batch");
        let huge = zstd::encode_all(&vec![b'a'; 20 << 20][..], 3).unwrap();
        let (_, records) = with_scratch(|scratch| zstd(&huge, scratch)).unwrap();
        assert_eq!(records.len(), 20 << 20);
        assert_eq!(kept(), 0);
    }

    #[test]
    fn zstd_batches_of_one_or_more_frames_with_one_context_per_thread() {
        let data = sample();
        let mut two_frames = zstd::encode_all(&data[..], 3).unwrap();
        two_frames.extend(zstd::encode_all(&b"and a second frame"[..], 1).unwrap());
        for _ in 0..3 {
            let mut expected = data.clone();
            expected.extend(b"and a second frame");
            assert!(unzstd(&two_frames).unwrap() == expected);
        }
        let one = zstd::encode_all(&data[..], 3).unwrap();
        assert!(unzstd(&one[..one.len() - 10]).is_err());
        // The context is reset after a failure: the next batch decodes.
        assert!(unzstd(&one).unwrap() == data);
        assert!(unzstd(b"not zstd at all").is_err());
    }
}
