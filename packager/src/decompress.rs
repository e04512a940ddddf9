//! Compressed kernels and modules, decompressed at pack time.
//!
//! GRUB opens every kernel and module through its decompression filters, so
//! `multiboot /boot/xen.gz` boots the kernel inside the gzip file; Debian
//! ships Xen that way. bootpack does the same on the host, before the
//! Multiboot header search, and stores the decompressed bytes: stage 2 stays
//! a plain copier.
//!
//! The format is recognised by its magic bytes, never by the file name, as
//! GRUB does: gzip (`1f 8b`), xz (`fd 37 7a 58 5a 00`) and zstd
//! (`28 b5 2f fd`). GRUB 2.06 has no zstd file filter (zstd is only for
//! btrfs there); bootpack decompresses it anyway since kernels are
//! distributed that way too. lzop (`89 4c 5a 4f ...`), which GRUB reads, is
//! recognised and refused with a message: no well-kept pure-Rust lzop
//! reader exists.
//!
//! A file must hold exactly one compressed stream and nothing after it.
//! GRUB finds a gzip file's size in its last 4 bytes and an xz file's index
//! from its last 12, so after a second gzip member or xz stream, or
//! trailing bytes, GRUB would load something other than what `zcat` shows.
//! Rather than guess, bootpack names the offset and says what to do.
//!
//! The output is bounded ([`LIMIT`], 4 GiB: nothing larger can be loaded
//! below 4 GiB), so a decompression bomb ends in an error, not in memory
//! exhaustion.

use std::io::{self, Cursor, Read};

use flate2::bufread::GzDecoder;
use xz4rust::{XzDecoder, XzNextBlockResult};

/// Most bytes a compressed file may decompress to: 4 GiB. A kernel loads
/// below 4 GiB and a module must be smaller than 4 GiB, so nothing larger
/// could boot.
pub const LIMIT: u64 = 4 << 30;

/// A compression format bootpack decompresses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    /// gzip (RFC 1952), one member.
    Gzip,
    /// xz (the .xz container, LZMA2 with optional BCJ filters), one stream.
    Xz,
    /// zstd (RFC 8878), one frame.
    Zstd,
}

impl Compression {
    /// The name users know it by ("gzip", "xz", "zstd").
    pub fn name(self) -> &'static str {
        match self {
            Compression::Gzip => "gzip",
            Compression::Xz => "xz",
            Compression::Zstd => "zstd",
        }
    }

    /// The command that decompresses it to stdout (for messages).
    fn tool(self) -> &'static str {
        match self {
            Compression::Gzip => "gzip -dc",
            Compression::Xz => "xz -dc",
            Compression::Zstd => "zstd -dc",
        }
    }

    /// What one unit of the format is called (a second one is refused).
    fn unit(self) -> &'static str {
        match self {
            Compression::Gzip => "member",
            Compression::Xz => "stream",
            Compression::Zstd => "frame",
        }
    }

    /// Its code in the record's flags (bits 8-11,
    /// `record::FLAG_KERNEL_COMPRESSION_MASK`).
    pub fn code(self) -> u32 {
        match self {
            Compression::Gzip => 1,
            Compression::Xz => 2,
            Compression::Zstd => 3,
        }
    }

    /// The format with record flag code `code`, if any.
    pub fn from_code(code: u32) -> Option<Self> {
        match code {
            1 => Some(Compression::Gzip),
            2 => Some(Compression::Xz),
            3 => Some(Compression::Zstd),
            _ => None,
        }
    }

    fn magic(self) -> &'static [u8] {
        match self {
            Compression::Gzip => GZIP_MAGIC,
            Compression::Xz => XZ_MAGIC,
            Compression::Zstd => ZSTD_MAGIC,
        }
    }
}

impl std::fmt::Display for Compression {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

const GZIP_MAGIC: &[u8] = &[0x1f, 0x8b];
const XZ_MAGIC: &[u8] = &[0xfd, b'7', b'z', b'X', b'Z', 0];
const ZSTD_MAGIC: &[u8] = &[0x28, 0xb5, 0x2f, 0xfd];
const LZOP_MAGIC: &[u8] = &[0x89, b'L', b'Z', b'O', 0, 0x0d, 0x0a, 0x1a, 0x0a];

/// Why a compressed file cannot be decompressed. Offsets are in the
/// compressed file; the caller adds its name.
#[derive(Debug, thiserror::Error)]
pub enum DecompressError {
    /// The data ends before the stream does.
    #[error("is {format}-compressed but its data ends early, at offset {offset:#x} (the file's end): the file is truncated or damaged; copy or download it again")]
    Truncated {
        /// The format.
        format: Compression,
        /// Where the data ends.
        offset: u64,
    },
    /// The data or a checksum is damaged.
    #[error("is {format}-compressed but its data is damaged at or before offset {offset:#x} ({detail}); copy or download it again ({tool} checks it)", tool = format.tool())]
    Corrupt {
        /// The format.
        format: Compression,
        /// Where the damage was found (it may lie before).
        offset: u64,
        /// What the decoder said.
        detail: String,
    },
    /// A second member, stream or frame follows the first.
    #[error("is {format}-compressed and a second {format} {unit} starts at offset {offset:#x}; GRUB reads only one, so bootpack does not guess: decompress it yourself ({tool} FILE > OUT) and pack that", unit = format.unit(), tool = format.tool())]
    SecondStream {
        /// The format.
        format: Compression,
        /// Where the second one starts.
        offset: u64,
    },
    /// Bytes that are not compressed data follow the stream.
    #[error("is {format}-compressed but {len} bytes that are not {format} data follow its end at offset {offset:#x}: the file is damaged or more than one file; decompress it yourself ({tool} FILE > OUT) and pack that", tool = format.tool())]
    Trailing {
        /// The format.
        format: Compression,
        /// Where the compressed data ends.
        offset: u64,
        /// How many bytes follow it.
        len: u64,
    },
    /// It decompresses to more than bootpack can load.
    #[error("is {format}-compressed and decompresses to more than {} GiB, the limit (nothing larger can be loaded below 4 GiB): it is not a kernel or module, or a decompression bomb", limit >> 30)]
    TooLarge {
        /// The format.
        format: Compression,
        /// The most bytes bootpack decompresses.
        limit: u64,
    },
    /// lzop, which bootpack recognises but does not decompress.
    #[error("is lzop-compressed, which bootpack does not decompress; decompress it first (lzop -dc FILE > OUT) and pack that")]
    Lzop,
}

/// What was decompressed at pack time: the format and both sizes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Decompressed {
    /// The format it was in.
    pub format: Compression,
    /// Bytes of the compressed file.
    pub compressed_bytes: u64,
    /// Bytes after decompression.
    pub bytes: u64,
}

impl std::fmt::Display for Decompressed {
    /// "decompressed from gzip, 1.2 MiB -> 3.4 MiB"
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        let mib = |b: u64| b as f64 / (1u64 << 20) as f64;
        write!(
            f,
            "decompressed from {}, {:.1} MiB -> {:.1} MiB",
            self.format,
            mib(self.compressed_bytes),
            mib(self.bytes)
        )
    }
}

/// What [`unpack`] found and did.
#[derive(Clone, Debug)]
pub struct Unpacked {
    /// The format it was in.
    pub format: Compression,
    /// Bytes of the compressed file.
    pub compressed_len: u64,
    /// The decompressed bytes.
    pub bytes: Vec<u8>,
}

impl Unpacked {
    /// The format and sizes, without the bytes.
    pub fn summary(&self) -> Decompressed {
        Decompressed {
            format: self.format,
            compressed_bytes: self.compressed_len,
            bytes: self.bytes.len() as u64,
        }
    }
}

/// The compression format `bytes` start with, if any.
pub fn detect(bytes: &[u8]) -> Option<Compression> {
    [Compression::Gzip, Compression::Xz, Compression::Zstd]
        .into_iter()
        .find(|c| bytes.starts_with(c.magic()))
}

/// Whether `bytes` start like a compressed file, of a format bootpack
/// decompresses or of one it recognises to refuse (lzop).
pub fn looks_compressed(bytes: &[u8]) -> bool {
    detect(bytes).is_some() || bytes.starts_with(LZOP_MAGIC)
}

/// Decompresses `bytes` if they start with a known compression magic
/// (`None`: not compressed, use them as they are), with output bounded by
/// [`LIMIT`].
pub fn unpack(bytes: &[u8]) -> Result<Option<Unpacked>, DecompressError> {
    unpack_bounded(bytes, LIMIT)
}

/// [`unpack`] with output bounded by `limit` bytes.
pub fn unpack_bounded(bytes: &[u8], limit: u64) -> Result<Option<Unpacked>, DecompressError> {
    if bytes.starts_with(LZOP_MAGIC) {
        return Err(DecompressError::Lzop);
    }
    let Some(format) = detect(bytes) else {
        return Ok(None);
    };
    let mut out = Vec::new();
    let end = match format {
        Compression::Gzip => gunzip(bytes, limit, &mut out)?,
        Compression::Xz => unxz(bytes, limit, &mut out)?,
        Compression::Zstd => unzstd(bytes, limit, &mut out)?,
    };
    let rest = &bytes[end..];
    if !rest.is_empty() {
        let offset = end as u64;
        return Err(if rest.starts_with(format.magic()) {
            DecompressError::SecondStream { format, offset }
        } else {
            DecompressError::Trailing {
                format,
                offset,
                len: rest.len() as u64,
            }
        });
    }
    Ok(Some(Unpacked {
        format,
        compressed_len: bytes.len() as u64,
        bytes: out,
    }))
}

/// Reads `reader` into `out` up to `limit` bytes; more is
/// [`DecompressError::TooLarge`] (carried in the `io::Error`).
fn drain(
    format: Compression,
    mut reader: impl Read,
    limit: u64,
    out: &mut Vec<u8>,
) -> Result<(), io::Error> {
    let got = (&mut reader).take(limit + 1).read_to_end(out)?;
    if got as u64 > limit {
        return Err(io::Error::other(TooLarge(format, limit)));
    }
    Ok(())
}

/// Carries [`DecompressError::TooLarge`] through an `io::Error`.
#[derive(Debug)]
struct TooLarge(Compression, u64);

impl std::fmt::Display for TooLarge {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        write!(f, "over {} bytes", self.1)
    }
}

impl std::error::Error for TooLarge {}

/// Turns a decoder's error at input offset `offset` of `total` into a
/// [`DecompressError`]: input used up means the file ends early.
fn classify(format: Compression, e: io::Error, offset: u64, total: u64) -> DecompressError {
    if let Some(TooLarge(format, limit)) = e.get_ref().and_then(|i| i.downcast_ref::<TooLarge>()) {
        return DecompressError::TooLarge {
            format: *format,
            limit: *limit,
        };
    }
    // flate2 says UnexpectedEof; ruzstd says "failed to fill whole
    // buffer" with its input used up.
    let ended = e.kind() == io::ErrorKind::UnexpectedEof
        || (offset >= total && e.kind() == io::ErrorKind::Other);
    if ended {
        DecompressError::Truncated {
            format,
            offset: total,
        }
    } else {
        DecompressError::Corrupt {
            format,
            offset,
            detail: e.to_string(),
        }
    }
}

/// One gzip member; returns where it ends. flate2 checks the trailer's
/// CRC-32 and length.
fn gunzip(bytes: &[u8], limit: u64, out: &mut Vec<u8>) -> Result<usize, DecompressError> {
    let format = Compression::Gzip;
    // The bufread decoder consumes exactly the member's bytes from the
    // cursor, so its position afterwards is where the member ends.
    let mut d = GzDecoder::new(Cursor::new(bytes));
    let r = drain(format, &mut d, limit, out);
    let pos = d.get_ref().position();
    r.map_err(|e| classify(format, e, pos, bytes.len() as u64))?;
    Ok(pos as usize)
}

/// One xz stream (xz-embedded's decoder, as GRUB's xzio uses, with BCJ and
/// delta filters and every check type); returns where it ends.
fn unxz(bytes: &[u8], limit: u64, out: &mut Vec<u8>) -> Result<usize, DecompressError> {
    let format = Compression::Xz;
    let total = bytes.len() as u64;
    let mut d = XzDecoder::in_heap();
    let mut buf = vec![0u8; 1 << 20];
    let mut pos = 0usize;
    loop {
        let r = d.decode(&bytes[pos..], &mut buf);
        let (used, made, done) = match r {
            Ok(XzNextBlockResult::NeedMoreData(i, o)) => (i, o, false),
            Ok(XzNextBlockResult::EndOfStream(i, o)) => (i, o, true),
            Err(xz4rust::XzError::NeedsLargerInputBuffer) => {
                return Err(DecompressError::Truncated {
                    format,
                    offset: total,
                })
            }
            Err(e) => {
                return Err(DecompressError::Corrupt {
                    format,
                    offset: pos as u64,
                    detail: e.to_string(),
                })
            }
        };
        pos += used;
        if out.len() as u64 + made as u64 > limit {
            return Err(DecompressError::TooLarge { format, limit });
        }
        out.extend_from_slice(&buf[..made]);
        if done {
            return Ok(pos);
        }
        if used == 0 && made == 0 {
            // No progress: out of input before the stream's end.
            return Err(if pos == bytes.len() {
                DecompressError::Truncated {
                    format,
                    offset: total,
                }
            } else {
                DecompressError::Corrupt {
                    format,
                    offset: pos as u64,
                    detail: "the decoder made no progress".into(),
                }
            });
        }
    }
}

/// One zstd frame; returns where it ends. ruzstd does not compare the
/// frame's content checksum itself: done here.
fn unzstd(bytes: &[u8], limit: u64, out: &mut Vec<u8>) -> Result<usize, DecompressError> {
    let format = Compression::Zstd;
    let total = bytes.len() as u64;
    let mut cursor = Cursor::new(bytes);
    let mut d = match ruzstd::decoding::StreamingDecoder::new(&mut cursor) {
        Ok(d) => d,
        Err(e) => {
            let e = io::Error::other(e.to_string());
            return Err(classify(format, e, cursor.position(), total));
        }
    };
    let r = drain(format, &mut d, limit, out);
    let pos = d.get_ref().position();
    r.map_err(|e| classify(format, e, pos, total))?;
    let frame = d.into_frame_decoder();
    if let (Some(stored), Some(computed)) = (
        frame.get_checksum_from_data(),
        frame.get_calculated_checksum(),
    ) {
        if stored != computed {
            return Err(DecompressError::Corrupt {
                format,
                offset: pos - 4,
                detail: format!(
                    "content checksum {computed:#010x} does not match the stored {stored:#010x}"
                ),
            });
        }
    }
    Ok(cursor.position() as usize)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    /// Compressible but not trivial: a kernel-like mix of runs and noise.
    fn sample(len: usize) -> Vec<u8> {
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        (0..len)
            .map(|i| {
                if (i / 4096) % 3 == 0 {
                    (i / 64) as u8
                } else {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    (x % 16) as u8
                }
            })
            .collect()
    }

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    /// The system's encoder: these crates only decode xz and zstd, and the
    /// files users have come from these tools.
    fn tool(cmd: &str, args: &[&str], data: &[u8]) -> Vec<u8> {
        let mut child = std::process::Command::new(cmd)
            .args(args)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("{cmd} is needed for this test (apt-get install xz-utils zstd): {e}")
            });
        let mut stdin = child.stdin.take().unwrap();
        let data = data.to_vec();
        let writer = std::thread::spawn(move || stdin.write_all(&data).unwrap());
        let out = child.wait_with_output().unwrap();
        writer.join().unwrap();
        assert!(out.status.success(), "{cmd} {args:?} failed");
        out.stdout
    }

    fn xz(data: &[u8]) -> Vec<u8> {
        tool("xz", &["-c", "-6"], data)
    }

    fn zstd(data: &[u8]) -> Vec<u8> {
        tool("zstd", &["-c", "-q", "-19"], data)
    }

    fn all_formats(data: &[u8]) -> Vec<(Compression, Vec<u8>)> {
        vec![
            (Compression::Gzip, gzip(data)),
            (Compression::Xz, xz(data)),
            (Compression::Zstd, zstd(data)),
        ]
    }

    #[test]
    fn each_format_round_trips_and_uncompressed_input_is_left_alone() {
        let data = sample(300_000);
        for (format, packed) in all_formats(&data) {
            assert_eq!(detect(&packed), Some(format));
            let u = unpack(&packed).unwrap().expect("compressed");
            assert_eq!(u.format, format);
            assert_eq!(u.compressed_len, packed.len() as u64);
            assert!(u.bytes == data, "{format}: bytes differ");
        }
        // Empty content, too.
        for (format, packed) in all_formats(b"") {
            let u = unpack(&packed).unwrap().expect("compressed");
            assert_eq!((u.format, u.bytes.len()), (format, 0));
        }
        assert!(unpack(b"\x7fELF\x01\x01\x01").unwrap().is_none());
        assert!(unpack(b"").unwrap().is_none());
        assert!(unpack(&[0x1f]).unwrap().is_none());
    }

    #[test]
    fn xz_with_the_x86_bcj_filter_decodes() {
        // Linux's xz kernels use the x86 branch filter; xz-embedded has it.
        let data = sample(100_000);
        let packed = tool("xz", &["-c", "--x86", "--lzma2=preset=6"], &data);
        assert!(unpack(&packed).unwrap().unwrap().bytes == data);
    }

    #[test]
    fn truncated_input_is_reported_as_truncated_at_the_files_end() {
        let data = sample(200_000);
        for (format, packed) in all_formats(&data) {
            for cut in [packed.len() - 1, packed.len() - 5, packed.len() / 2, 12] {
                let e = unpack(&packed[..cut]).unwrap_err();
                match e {
                    DecompressError::Truncated { format: f, offset } => {
                        assert_eq!((f, offset), (format, cut as u64), "{format} cut at {cut}")
                    }
                    other => panic!("{format} cut at {cut}: {other}"),
                }
                assert!(e.to_string().contains("truncated"));
            }
        }
    }

    #[test]
    fn a_file_of_just_the_magic_is_truncated() {
        for (format, packed) in all_formats(b"x") {
            let magic = format.magic();
            match unpack(magic).unwrap_err() {
                DecompressError::Truncated { offset, .. } => {
                    assert_eq!(offset, magic.len() as u64, "{format}")
                }
                e => panic!("{format}: {e}"),
            }
            // A header cut in the middle, too.
            let cut = &packed[..magic.len() + 2];
            assert!(
                matches!(unpack(cut), Err(DecompressError::Truncated { .. })),
                "{format}: {:?}",
                unpack(cut)
            );
        }
    }

    #[test]
    fn damaged_data_is_reported_with_an_offset() {
        let data = sample(200_000);
        for (format, packed) in all_formats(&data) {
            let mut bad = packed.clone();
            let at = packed.len() / 2;
            bad[at] ^= 0x55;
            bad[at + 1] ^= 0xaa;
            // Damage can derail the decoder so it reads to the file's end
            // looking for more: then it reads as truncated, which says
            // "damaged" too.
            let e = unpack(&bad).unwrap_err();
            let (DecompressError::Corrupt { offset, .. }
            | DecompressError::Truncated { offset, .. }) = e
            else {
                panic!("{format}: {e}");
            };
            assert!(offset <= packed.len() as u64, "{format}: {offset}");
            let msg = e.to_string();
            assert!(
                msg.contains("damaged") && msg.contains(&format!("{offset:#x}")),
                "{msg}"
            );
            // A damaged check (CRC-32, CRC-64, content checksum) too.
            let mut bad = packed.clone();
            let n = bad.len();
            let at = match format {
                Compression::Gzip => n - 6, // CRC-32 in the trailer
                Compression::Xz => n - 40,  // the block's CRC-64 or index
                Compression::Zstd => n - 2, // content checksum
            };
            bad[at] ^= 1;
            let e = unpack(&bad).unwrap_err();
            assert!(
                matches!(e, DecompressError::Corrupt { .. }),
                "{format}: {e}"
            );
        }
    }

    #[test]
    fn a_second_stream_and_trailing_bytes_are_refused_with_their_offset() {
        let (a, b) = (sample(5000), sample(7000));
        for ((format, first), (_, second)) in all_formats(&a).into_iter().zip(all_formats(&b)) {
            let mut two = first.clone();
            two.extend_from_slice(&second);
            match unpack(&two).unwrap_err() {
                DecompressError::SecondStream { format: f, offset } => {
                    assert_eq!((f, offset), (format, first.len() as u64))
                }
                e => panic!("{format}: {e}"),
            }
            for tail in [&b"\0\0\0\0"[..], b"junk"] {
                let mut t = first.clone();
                t.extend_from_slice(tail);
                match unpack(&t).unwrap_err() {
                    DecompressError::Trailing { offset, len, .. } => {
                        assert_eq!((offset, len), (first.len() as u64, 4))
                    }
                    e => panic!("{format}: {e}"),
                }
            }
        }
    }

    #[test]
    fn output_beyond_the_limit_is_a_bomb_error() {
        let zeros = vec![0u8; 1 << 20];
        for (format, packed) in all_formats(&zeros) {
            // Exactly at the limit is fine; one byte over is not.
            let ok = unpack_bounded(&packed, 1 << 20).unwrap().unwrap();
            assert_eq!(ok.bytes.len(), 1 << 20);
            let e = unpack_bounded(&packed, (1 << 20) - 1).unwrap_err();
            assert!(
                matches!(e, DecompressError::TooLarge { format: f, .. } if f == format),
                "{format}: {e}"
            );
        }
        let e = DecompressError::TooLarge {
            format: Compression::Gzip,
            limit: LIMIT,
        };
        assert!(e.to_string().contains("more than 4 GiB"), "{e}");
    }

    /// Damaged files must give errors, never panics (the decoders see
    /// whatever file a user names): random byte changes all over valid
    /// streams of each format.
    #[test]
    fn mutated_streams_never_panic() {
        let data = sample(20_000);
        let mut x = 0x2545_f491_4f6c_dd1du64;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for (format, packed) in all_formats(&data) {
            let mut errors = 0;
            for _ in 0..300 {
                let mut m = packed.clone();
                for _ in 0..1 + next() % 4 {
                    // Keep the magic so the decoder runs.
                    let at = 6 + (next() as usize) % (m.len() - 6);
                    m[at] = next() as u8;
                }
                match unpack_bounded(&m, 1 << 20) {
                    Ok(Some(u)) => assert!(u.bytes.len() <= 1 << 20),
                    Ok(None) => panic!("{format}: magic kept, so not plain"),
                    Err(_) => errors += 1,
                }
            }
            // Every format carries a check of its content, so nearly every
            // change is caught.
            assert!(errors > 250, "{format}: only {errors} of 300 caught");
        }
    }

    #[test]
    fn lzop_is_recognised_and_refused() {
        let mut f = LZOP_MAGIC.to_vec();
        f.extend_from_slice(&[0; 32]);
        let e = unpack(&f).unwrap_err();
        assert!(e.to_string().contains("lzop -dc"), "{e}");
    }

    #[test]
    fn record_codes_round_trip() {
        for c in [Compression::Gzip, Compression::Xz, Compression::Zstd] {
            assert_eq!(Compression::from_code(c.code()), Some(c));
            assert!(c.code() < 16);
        }
        assert_eq!(Compression::from_code(0), None);
    }
}
