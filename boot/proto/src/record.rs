//! The configuration record: the first sectors of the kernel partition.
//!
//! The packager parses the kernel on the host and reduces it to a load plan:
//! a list of segments (where to put how many bytes, how much to zero) and an
//! entry point. Stage 2 never parses ELF; it follows the plan. The record
//! carries its own checksum and one over the payload, so a damaged disk is
//! reported at boot instead of being jumped into.
//!
//! Layout, all little-endian, the record starting at partition sector 0:
//!
//! ```text
//! header (HEADER_LEN = 64 bytes)
//!   0  magic         b"BOOTPACK"
//!   8  version       u16  (VERSION)
//!  10  header_len    u16  (64)
//!  12  record_len    u32  header + segment table + command line, in bytes
//!  16  record_sum    u64  fletcher64 of the record with this field zeroed
//!  24  entry         u32  physical address entered in 32-bit protected mode
//!  28  mb_flags      u32  the kernel's Multiboot header flags (informative)
//!  32  segment_count u32
//!  36  cmdline_len   u32  bytes including the terminating NUL
//!  40  payload_sum   u64  fletcher64 over every segment's file bytes, each
//!                         segment zero-padded to whole words, in order
//!  48  data_sectors  u32  sectors after the record holding segment data
//!  52  reserved      [u8; 12], zero
//! segment table: segment_count entries of SEGMENT_LEN = 32 bytes
//!   0  dest          u64  physical load address
//!   8  file_size     u64  bytes stored on disk
//!  16  mem_size      u64  bytes occupied in memory (>= file_size; the rest
//!                         is zeroed)
//!  24  data_sector   u64  partition-relative sector where the bytes start
//! command line: cmdline_len bytes, the last one NUL
//! ```

use crate::checksum::fletcher64;
use crate::layout::{KERNEL_CEILING, KERNEL_FLOOR, RECORD_BUF_LEN};
use crate::le;

pub const MAGIC: [u8; 8] = *b"BOOTPACK";
pub const VERSION: u16 = 1;
pub const HEADER_LEN: usize = 64;
pub const SEGMENT_LEN: usize = 32;
/// The record must fit the buffer stage 2 reads it into.
pub const RECORD_MAX: usize = RECORD_BUF_LEN;

const SUM_OFFSET: usize = 16;

/// One piece of the load plan.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Segment {
    pub dest: u64,
    pub file_size: u64,
    pub mem_size: u64,
    pub data_sector: u64,
}

impl Segment {
    pub fn end(&self) -> u64 {
        self.dest + self.mem_size
    }
}

/// What is wrong with a record. Stage 2 prints these at boot; the
/// packager's `inspect` prints them too.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RecordError {
    /// The first 8 bytes are not "BOOTPACK": not a bootpack partition.
    BadMagic,
    /// Written by a bootpack whose record format this stage 2 does not know.
    UnsupportedVersion(u16),
    /// Lengths that do not add up or do not fit the record buffer.
    BadLength,
    /// The record's own checksum does not match: the sectors are damaged.
    BadChecksum { stored: u64, computed: u64 },
    /// A segment outside [KERNEL_FLOOR, KERNEL_CEILING) or with
    /// file_size > mem_size.
    BadSegment(u32),
    /// The command line is not NUL-terminated.
    BadCmdline,
}

impl RecordError {
    pub fn describe(&self) -> &'static str {
        match self {
            RecordError::BadMagic => "no bootpack configuration record (bad magic)",
            RecordError::UnsupportedVersion(_) => "configuration record version not supported",
            RecordError::BadLength => "configuration record lengths are inconsistent",
            RecordError::BadChecksum { .. } => "configuration record checksum mismatch",
            RecordError::BadSegment(_) => "configuration record has an invalid segment",
            RecordError::BadCmdline => "configuration record command line is not terminated",
        }
    }
}

/// Everything the packager puts in a record.
#[derive(Clone, Copy, Debug)]
pub struct RecordSpec<'a> {
    pub entry: u32,
    pub mb_flags: u32,
    pub segments: &'a [Segment],
    /// Without the terminating NUL; it is added here.
    pub cmdline: &'a [u8],
    pub payload_sum: u64,
    pub data_sectors: u32,
}

/// Bytes a record with these contents occupies.
pub fn record_len(segment_count: usize, cmdline_len_without_nul: usize) -> usize {
    HEADER_LEN + segment_count * SEGMENT_LEN + cmdline_len_without_nul + 1
}

/// Writes a record into `out` (which must be at least
/// [`record_len`] bytes and is otherwise left untouched) and returns its
/// length.
pub fn encode(spec: &RecordSpec, out: &mut [u8]) -> usize {
    let len = record_len(spec.segments.len(), spec.cmdline.len());
    let out = &mut out[..len];
    out.fill(0);
    out[..8].copy_from_slice(&MAGIC);
    le::put_u16(out, 8, VERSION);
    le::put_u16(out, 10, HEADER_LEN as u16);
    le::put_u32(out, 12, len as u32);
    le::put_u32(out, 24, spec.entry);
    le::put_u32(out, 28, spec.mb_flags);
    le::put_u32(out, 32, spec.segments.len() as u32);
    le::put_u32(out, 36, spec.cmdline.len() as u32 + 1);
    le::put_u64(out, 40, spec.payload_sum);
    le::put_u32(out, 48, spec.data_sectors);
    for (i, s) in spec.segments.iter().enumerate() {
        let o = HEADER_LEN + i * SEGMENT_LEN;
        le::put_u64(out, o, s.dest);
        le::put_u64(out, o + 8, s.file_size);
        le::put_u64(out, o + 16, s.mem_size);
        le::put_u64(out, o + 24, s.data_sector);
    }
    let c = HEADER_LEN + spec.segments.len() * SEGMENT_LEN;
    out[c..c + spec.cmdline.len()].copy_from_slice(spec.cmdline);
    let sum = fletcher64(out);
    le::put_u64(out, SUM_OFFSET, sum);
    len
}

/// A checked view of a record in memory.
#[derive(Clone, Copy, Debug)]
pub struct Record<'a> {
    bytes: &'a [u8],
}

/// Reads the header fields that say how long the record is, so stage 2 can
/// read the first sector, learn the length, then read the rest. Checks only
/// the magic, version and length bounds.
pub fn peek_len(first_sector: &[u8]) -> Result<usize, RecordError> {
    if first_sector.len() < HEADER_LEN || first_sector[..8] != MAGIC {
        return Err(RecordError::BadMagic);
    }
    let version = le::u16(first_sector, 8);
    if version != VERSION {
        return Err(RecordError::UnsupportedVersion(version));
    }
    let len = le::u32(first_sector, 12) as usize;
    if le::u16(first_sector, 10) as usize != HEADER_LEN
        || !(HEADER_LEN + 1..=RECORD_MAX).contains(&len)
    {
        return Err(RecordError::BadLength);
    }
    Ok(len)
}

impl<'a> Record<'a> {
    /// Checks magic, version, lengths, checksum, segments and the command
    /// line. `bytes` may be longer than the record (whole sectors).
    pub fn parse(bytes: &'a [u8]) -> Result<Self, RecordError> {
        let len = peek_len(bytes)?;
        if bytes.len() < len {
            return Err(RecordError::BadLength);
        }
        let bytes = &bytes[..len];
        let segment_count = le::u32(bytes, 32) as usize;
        let cmdline_len = le::u32(bytes, 36) as usize;
        if segment_count > RECORD_MAX / SEGMENT_LEN
            || cmdline_len == 0
            || HEADER_LEN + segment_count * SEGMENT_LEN + cmdline_len != len
        {
            return Err(RecordError::BadLength);
        }
        let stored = le::u64(bytes, SUM_OFFSET);
        let mut f = crate::checksum::Fletcher64::new();
        f.update(&bytes[..SUM_OFFSET]);
        f.update(&[0u8; 8]);
        f.update_padded(&bytes[SUM_OFFSET + 8..]);
        let computed = f.finish();
        if stored != computed {
            return Err(RecordError::BadChecksum { stored, computed });
        }
        let rec = Record { bytes };
        for i in 0..segment_count {
            let s = rec.segment(i);
            let ok = s.file_size <= s.mem_size
                && s.dest >= KERNEL_FLOOR
                && s.dest
                    .checked_add(s.mem_size)
                    .is_some_and(|e| e <= KERNEL_CEILING);
            if !ok {
                return Err(RecordError::BadSegment(i as u32));
            }
        }
        if *rec.cmdline_with_nul().last().unwrap() != 0 {
            return Err(RecordError::BadCmdline);
        }
        Ok(rec)
    }

    pub fn len(&self) -> usize {
        self.bytes.len()
    }
    pub fn is_empty(&self) -> bool {
        false
    }
    pub fn checksum(&self) -> u64 {
        le::u64(self.bytes, SUM_OFFSET)
    }
    pub fn entry(&self) -> u32 {
        le::u32(self.bytes, 24)
    }
    pub fn mb_flags(&self) -> u32 {
        le::u32(self.bytes, 28)
    }
    pub fn segment_count(&self) -> usize {
        le::u32(self.bytes, 32) as usize
    }
    pub fn payload_sum(&self) -> u64 {
        le::u64(self.bytes, 40)
    }
    pub fn data_sectors(&self) -> u32 {
        le::u32(self.bytes, 48)
    }
    /// Panics if `i >= segment_count()`.
    pub fn segment(&self, i: usize) -> Segment {
        assert!(i < self.segment_count());
        let o = HEADER_LEN + i * SEGMENT_LEN;
        Segment {
            dest: le::u64(self.bytes, o),
            file_size: le::u64(self.bytes, o + 8),
            mem_size: le::u64(self.bytes, o + 16),
            data_sector: le::u64(self.bytes, o + 24),
        }
    }
    pub fn segments(&self) -> impl Iterator<Item = Segment> + '_ {
        (0..self.segment_count()).map(|i| self.segment(i))
    }
    /// The command line including its terminating NUL.
    pub fn cmdline_with_nul(&self) -> &'a [u8] {
        &self.bytes[HEADER_LEN + self.segment_count() * SEGMENT_LEN..]
    }
    /// The command line without its NUL.
    pub fn cmdline(&self) -> &'a [u8] {
        let c = self.cmdline_with_nul();
        &c[..c.len() - 1]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(buf: &mut [u8]) -> usize {
        let segs = [
            Segment {
                dest: 0x100000,
                file_size: 0x1234,
                mem_size: 0x5000,
                data_sector: 1,
            },
            Segment {
                dest: 0x1000000,
                file_size: 0,
                mem_size: 0x1000,
                data_sector: 11,
            },
        ];
        encode(
            &RecordSpec {
                entry: 0x100020,
                mb_flags: 0x10003,
                segments: &segs,
                cmdline: b"kernel a \"b\" \xc3\xa9",
                payload_sum: 0xdead_beef,
                data_sectors: 10,
            },
            buf,
        )
    }

    #[test]
    fn round_trip() {
        let mut buf = [0u8; 512];
        let len = sample(&mut buf);
        assert_eq!(len, 64 + 64 + 16);
        let r = Record::parse(&buf).unwrap();
        assert_eq!(peek_len(&buf), Ok(len));
        assert_eq!(r.entry(), 0x100020);
        assert_eq!(r.mb_flags(), 0x10003);
        assert_eq!(r.segment_count(), 2);
        assert_eq!(r.segment(0).mem_size, 0x5000);
        assert_eq!(r.segment(1).data_sector, 11);
        assert_eq!(r.cmdline(), b"kernel a \"b\" \xc3\xa9");
        assert_eq!(r.cmdline_with_nul().last(), Some(&0));
        assert_eq!(r.payload_sum(), 0xdead_beef);
        assert_eq!(r.data_sectors(), 10);
    }

    #[test]
    fn rejects_damage() {
        let mut buf = [0u8; 512];
        sample(&mut buf);
        let mut bad = buf;
        bad[70] ^= 1;
        assert!(matches!(
            Record::parse(&bad),
            Err(RecordError::BadChecksum { .. })
        ));
        let mut bad = buf;
        bad[0] = b'X';
        assert_eq!(Record::parse(&bad).unwrap_err(), RecordError::BadMagic);
        let mut bad = buf;
        bad[8] = 9;
        assert_eq!(
            Record::parse(&bad).unwrap_err(),
            RecordError::UnsupportedVersion(9)
        );
        let mut bad = buf;
        bad[12] = 0xff;
        bad[13] = 0xff;
        bad[14] = 0xff;
        assert_eq!(Record::parse(&bad).unwrap_err(), RecordError::BadLength);
        assert_eq!(
            Record::parse(&buf[..100]).unwrap_err(),
            RecordError::BadLength
        );
    }

    #[test]
    fn rejects_segments_below_the_floor() {
        let segs = [Segment {
            dest: 0x8000,
            file_size: 0,
            mem_size: 16,
            data_sector: 1,
        }];
        let mut buf = [0u8; 512];
        encode(
            &RecordSpec {
                entry: 0,
                mb_flags: 0,
                segments: &segs,
                cmdline: b"",
                payload_sum: 0,
                data_sectors: 0,
            },
            &mut buf,
        );
        assert_eq!(Record::parse(&buf).unwrap_err(), RecordError::BadSegment(0));
    }
}
