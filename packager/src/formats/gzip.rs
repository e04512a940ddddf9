//! gzip on every core, as one ordinary gzip member (the way pigz does it).
//!
//! The stream is cut into fixed 128 KiB chunks (small enough that a 3 MiB
//! kernel keeps two cores evenly busy: 512 KiB chunks left one core idle
//! for a third of the time; big enough that the per-chunk cost is noise,
//! pigz uses the same size). Each is deflated on its
//! own with the 32 KiB before it as the preset dictionary (so matches reach
//! back across the cut and the ratio equals one-thread gzip's) and ended
//! with a sync flush, which byte-aligns it; only the last chunk ends with a
//! final block. The pieces concatenate to one valid deflate stream, and the
//! per-chunk CRC-32s combine into the member's CRC. Every gzip reader (GNU
//! gzip, Python's gzip, Go's compress/gzip) sees a plain single-member file;
//! the chunking depends on the stream alone, not on the thread count.

use std::io::{self, Write};

use flate2::{Compress, Compression, Crc, FlushCompress, Status};

use super::parallel;

const CHUNK: usize = 128 * 1024;
const DICT: usize = 32 * 1024;

/// Writes the `len`-byte stream that `fill(pos, buf)` produces as a gzip
/// file; `done(n)` is told after each `n` bytes of input are written out.
pub(crate) fn write(
    len: u64,
    fill: impl Fn(u64, &mut [u8]) + Sync,
    level: Compression,
    out: &mut impl Write,
    mut done: impl FnMut(u64),
) -> io::Result<()> {
    // Header: no name, no time (mtime 0 means none), OS 3 (Unix) as GNU
    // gzip writes it.
    out.write_all(&[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3])?;
    let chunks = len.div_ceil(CHUNK as u64).max(1) as usize;
    let mut crc = Crc::new();
    parallel::ordered(
        chunks,
        |i| {
            let start = i as u64 * CHUNK as u64;
            let end = (start + CHUNK as u64).min(len);
            let dict = (start as usize).min(DICT);
            let mut buf = vec![0u8; dict + (end - start) as usize];
            fill(start - dict as u64, &mut buf);
            deflate_chunk(&buf[..dict], &buf[dict..], level, i + 1 == chunks)
        },
        |_, chunk| {
            let (bytes, chunk_crc) = chunk?;
            out.write_all(&bytes)?;
            crc.combine(&chunk_crc);
            done(chunk_crc.amount() as u64);
            Ok(())
        },
    )?;
    let mut trailer = [0u8; 8];
    trailer[..4].copy_from_slice(&crc.sum().to_le_bytes());
    // ISIZE is the input length modulo 2^32 (RFC 1952).
    trailer[4..].copy_from_slice(&(len as u32).to_le_bytes());
    out.write_all(&trailer)
}

/// Raw deflate of `data`, primed with `dict`; sync-flushed unless `last`.
fn deflate_chunk(
    dict: &[u8],
    data: &[u8],
    level: Compression,
    last: bool,
) -> io::Result<(Vec<u8>, Crc)> {
    let mut crc = Crc::new();
    crc.update(data);
    let mut c = Compress::new(level, false);
    if !dict.is_empty() {
        c.set_dictionary(dict)
            .map_err(|e| io::Error::other(format!("setting the deflate dictionary: {e}")))?;
    }
    let mut out = Vec::with_capacity(data.len() / 2 + 1024);
    deflate_into(&mut c, data, &mut out, last)?;
    Ok((out, crc))
}

/// Feeds all of `data` to `c`, appending to `out`, then flushes: a final
/// block if `finish`, a sync flush (byte-aligned, not final) otherwise.
pub(crate) fn deflate_into(
    c: &mut Compress,
    data: &[u8],
    out: &mut Vec<u8>,
    finish: bool,
) -> io::Result<()> {
    let flush = if finish {
        FlushCompress::Finish
    } else {
        FlushCompress::Sync
    };
    let start_in = c.total_in();
    loop {
        if out.capacity() - out.len() < 64 {
            out.reserve(out.capacity().max(4096));
        }
        let consumed = (c.total_in() - start_in) as usize;
        let status = c
            .compress_vec(&data[consumed..], out, flush)
            .map_err(|e| io::Error::other(format!("deflate failed: {e}")))?;
        let all_in = (c.total_in() - start_in) as usize == data.len();
        // A flush is complete when the compressor stopped with room to
        // spare in the output (zlib's contract); Finish ends in StreamEnd.
        match status {
            Status::StreamEnd => return Ok(()),
            _ if all_in && !finish && out.len() < out.capacity() => return Ok(()),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn sample(len: usize) -> Vec<u8> {
        // Compressible, with repeats far apart to cross chunk boundaries.
        let mut x = 1u32;
        (0..len)
            .map(|i| {
                x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
                if (i / 1000) % 3 == 0 {
                    b"bootpack "[i % 9]
                } else {
                    (x >> 24) as u8 % 16
                }
            })
            .collect()
    }

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        write(
            data.len() as u64,
            |pos, buf| buf.copy_from_slice(&data[pos as usize..pos as usize + buf.len()]),
            Compression::default(),
            &mut out,
            |_| {},
        )
        .unwrap();
        out
    }

    #[test]
    fn one_member_that_any_gzip_reader_reads() {
        for len in [0, 1, CHUNK - 1, CHUNK, 3 * CHUNK + 77] {
            let data = sample(len);
            let gz = gzip(&data);
            // MultiGzDecoder would also accept several members; GzDecoder
            // proves it is exactly one.
            let mut back = Vec::new();
            let mut d = flate2::read::GzDecoder::new(&gz[..]);
            d.read_to_end(&mut back).unwrap();
            assert_eq!(back, data, "length {len}");
            assert_eq!(&gz[gz.len() - 4..], &(len as u32).to_le_bytes());
            assert_eq!(gzip(&data), gz, "reproducible");
        }
    }

    #[test]
    fn the_dictionary_keeps_the_ratio_of_a_single_stream() {
        let data = sample(4 * CHUNK);
        let mut one = flate2::write::GzEncoder::new(Vec::new(), Compression::default());
        one.write_all(&data).unwrap();
        let one = one.finish().unwrap();
        let ours = gzip(&data);
        assert!(
            ours.len() as f64 <= one.len() as f64 * 1.01,
            "{} vs {}",
            ours.len(),
            one.len()
        );
    }
}
