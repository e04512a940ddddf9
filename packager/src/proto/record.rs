//! The configuration record: the first sectors of the kernel partition.
//!
//! The packager parses the kernel on the host and reduces it to a load plan:
//! a list of segments (where to put how many bytes, how much to zero), an
//! entry point, the boot protocol and the modules to load. Stage 2 never
//! parses ELF; it follows the plan. The record carries its own checksum,
//! one over the kernel payload and one per module, so a damaged disk is
//! reported at boot instead of being jumped into.
//!
//! Layout, all little-endian, the record starting at partition sector 0
//! (version 3; version 2 had the same layout with bytes 88-95 reserved and
//! zero, which reads as "no video request", so stage 2 still boots version
//! 2 records; version 1 had a 64-byte header without fields 52-95 and no
//! module table, strings or section headers; version 4 is version 3 with
//! a 128-byte header whose bytes 96-127 carry the kernel's Multiboot 2 EFI
//! tags, see [`HEADER_LEN_V4`], written only for kernels that have them):
//!
//! ```text
//! header (HEADER_LEN = 96 bytes)
//!   0  magic         b"BOOTPACK"
//!   8  version       u16  (3, or 4 with EFI tags; 2 is still read)
//!  10  header_len    u16  (96; 128 in version 4)
//!  12  record_len    u32  header + tables + command line + strings +
//!                         section headers, in bytes
//!  16  record_sum    u64  fletcher64 of the record with this field zeroed
//!  24  entry         u32  physical address entered in 32-bit protected mode
//!  28  mb_flags      u32  the kernel's Multiboot 1 header flags, whichever
//!                         protocol boots it; 0 without one (informative)
//!  32  segment_count u32
//!  36  cmdline_len   u32  bytes including the terminating NUL
//!  40  payload_sum   u64  fletcher64 over every segment's file bytes, each
//!                         segment zero-padded to whole words, in order
//!  48  data_sectors  u32  sectors after the record holding segment and
//!                         module data
//!  52  protocol      u32  1 = Multiboot 1, 2 = Multiboot 2
//!  56  module_count  u32  at most MAX_MODULES
//!  60  strings_len   u32  bytes of the module string area
//!  64  shdrs_len     u32  bytes of ELF section headers (Multiboot 2 ELF
//!                         sections tag; 0 = no tag)
//!  68  shnum         u32  ELF e_shnum
//!  72  shentsize     u32  ELF e_shentsize (shdrs_len = shnum * shentsize)
//!  76  shstrndx      u32  ELF e_shstrndx
//!  80  load_base     u32  physical address of the image's start (Multiboot
//!                         2 load base address tag)
//!  84  flags         u32  bit 0 FLAG_NO_FAST_READ; 0 in records written
//!                         before it existed, which therefore allow fast
//!                         reads. Bits 8-15 are pack-time notes for
//!                         `inspect` that the loader ignores: bits 8-11
//!                         the kernel file's compression (0 none, 1 gzip,
//!                         2 xz, 3 zstd; FLAG_KERNEL_COMPRESSION_MASK),
//!                         bit 12 FLAG_MODULES_DECOMPRESSED, bit 13
//!                         FLAG_MODULES_KEPT_COMPRESSED, bits 14-15 zero
//!  88  video         the video request (super::video::Request), 8 bytes:
//!                         88 width u16, 90 height u16, 92 depth u8 (0 = no
//!                         preference), 93 kind u8 (0 none, 1 graphics,
//!                         2 text, 3 keep), 94 flags u8 (bit 0 the kernel
//!                         accepts EGA text, bit 1 it accepts a
//!                         framebuffer, bit 2 the request is the user's
//!                         `--video`, not the kernel's), 95 zero
//! segment table: segment_count entries of SEGMENT_LEN = 32 bytes
//!   0  dest          u64  physical load address
//!   8  file_size     u64  bytes stored on disk
//!  16  mem_size      u64  bytes occupied in memory (>= file_size; the rest
//!                         is zeroed)
//!  24  data_sector   u64  partition-relative sector where the bytes start
//! module table: module_count entries of MODULE_LEN = 32 bytes
//!   0  data_sector   u64  partition-relative sector where the bytes start
//!   8  size          u64  bytes (< 4 GiB)
//!  16  sum           u64  fletcher64 of the module's bytes
//!  24  string_off    u32  offset of the module's string in the string area
//!  28  string_len    u32  bytes of the string including its NUL
//! command line: cmdline_len bytes, the last one NUL
//! string area: strings_len bytes, each module string NUL-terminated
//! section headers: shdrs_len bytes, copied from the ELF file as they are
//! ```
//!
//! Where modules go in memory is decided at boot ([`super::place`]): it
//! depends on the machine's memory map.

use super::checksum::fletcher64;
use super::layout::{KERNEL_CEILING, KERNEL_FLOOR};
use super::le;
use super::mb2_header::{EfiTags, Relocatable};
use super::video::{Request, REQUEST_LEN};

pub const MAGIC: [u8; 8] = *b"BOOTPACK";
/// The newest version. Records are written as version 3 unless the
/// kernel's Multiboot 2 header has EFI tags, which only version 4 carries
/// (so images of other kernels stay byte for byte what they were).
pub const VERSION: u16 = 4;
/// The oldest version stage 2 and `inspect` still read.
pub const MIN_VERSION: u16 = 2;
pub const HEADER_LEN: usize = 96;
/// The header of a version 4 record: version 3's, then the EFI tags of
/// the kernel's Multiboot 2 header at [`EFI_OFFSET`] (32 bytes: u32 flags,
/// bit 0 boot services, bit 1 amd64 entry, bit 2 i386 entry, bit 3
/// relocatable; u32 amd64 entry; u32 i386 entry; u32 relocatable min,
/// max, align, preference; u32 reserved, 0).
pub const HEADER_LEN_V4: usize = 128;
/// Where a version 4 header keeps the EFI tags.
pub const EFI_OFFSET: usize = 96;
pub const SEGMENT_LEN: usize = 32;
pub const MODULE_LEN: usize = 32;
/// Most modules a record may carry (stage 2 keeps their places in a fixed
/// array).
pub const MAX_MODULES: usize = 128;
/// The largest record (64 KiB): a loader reads it whole into one buffer
/// (the BIOS stage 2's RECORD_BUF holds exactly this).
pub const RECORD_MAX: usize = 0x10000;

const SUM_OFFSET: usize = 16;
const FLAGS_OFFSET: usize = 84;
const VIDEO_OFFSET: usize = 88;

/// Record flag: stage 2 must read through the BIOS only, never with its
/// own controller driver (`bootpack build --no-fast-read`).
pub const FLAG_NO_FAST_READ: u32 = 1 << 0;

/// Pack-time note (bits 8-11, informational, ignored at boot): how the
/// kernel file was compressed before bootpack decompressed it; 0 = it was
/// not. The code is the packager's (`bootpack::decompress::Compression`).
pub const FLAG_KERNEL_COMPRESSION_MASK: u32 = 0xF << FLAG_KERNEL_COMPRESSION_SHIFT;
/// Shift of [`FLAG_KERNEL_COMPRESSION_MASK`].
pub const FLAG_KERNEL_COMPRESSION_SHIFT: u32 = 8;
/// Pack-time note (informational): at least one module was decompressed
/// by the packager. Which ones is not recorded: 8 bits cannot name 128
/// modules and the record's layout stays as it is.
pub const FLAG_MODULES_DECOMPRESSED: u32 = 1 << 12;
/// Pack-time note (informational): at least one module is stored
/// compressed because the user asked to keep it so (`--module-raw`,
/// GRUB's `module --nounzip`); `inspect` finds which by their magic.
pub const FLAG_MODULES_KEPT_COMPRESSED: u32 = 1 << 13;
// The pack-time notes stay in bits 8-15, clear of the flags the loader
// acts on.
const _: () = assert!(
    (FLAG_KERNEL_COMPRESSION_MASK | FLAG_MODULES_DECOMPRESSED | FLAG_MODULES_KEPT_COMPRESSED)
        & !0xFF00
        == 0
);

/// Sets the flags of an encoded record (`record`, exactly the record's
/// bytes) and updates its checksum.
pub fn set_flags(record: &mut [u8], flags: u32) {
    le::put_u32(record, FLAGS_OFFSET, flags);
    le::put_u64(record, SUM_OFFSET, 0);
    let sum = fletcher64(record);
    le::put_u64(record, SUM_OFFSET, sum);
}

/// Which Multiboot handoff the kernel gets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    /// EAX = 0x2BADB002, EBX = Multiboot 1 information structure.
    Multiboot1,
    /// EAX = 0x36D76289, EBX = Multiboot 2 information block.
    Multiboot2,
}

impl Protocol {
    fn code(self) -> u32 {
        match self {
            Protocol::Multiboot1 => 1,
            Protocol::Multiboot2 => 2,
        }
    }
    fn from_code(c: u32) -> Option<Self> {
        match c {
            1 => Some(Protocol::Multiboot1),
            2 => Some(Protocol::Multiboot2),
            _ => None,
        }
    }
}

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

/// A module as the record describes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Module<'a> {
    pub data_sector: u64,
    pub size: u64,
    /// fletcher64 of the module's bytes (zero-padded to whole words).
    pub sum: u64,
    /// In a [`RecordSpec`]: without NUL. From [`Record::module`]: with its
    /// NUL.
    pub string: &'a [u8],
}

/// The ELF section headers for the Multiboot 2 ELF sections tag.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ElfSections<'a> {
    pub num: u32,
    pub entsize: u32,
    pub shndx: u32,
    /// num * entsize bytes, as in the kernel file.
    pub headers: &'a [u8],
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
    /// A segment outside [KERNEL_FLOOR, KERNEL_CEILING) (0x500..4 GiB) or with
    /// file_size > mem_size.
    BadSegment(u32),
    /// The command line is not NUL-terminated.
    BadCmdline,
    /// Neither Multiboot 1 nor 2.
    BadProtocol(u32),
    /// A module of 4 GiB or more, or whose string lies outside the string
    /// area or is not NUL-terminated.
    BadModule(u32),
    /// shdrs_len is not shnum * shentsize.
    BadSections,
    /// The video request has an unknown kind or flags.
    BadVideo,
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
            RecordError::BadProtocol(_) => "configuration record names an unknown boot protocol",
            RecordError::BadModule(_) => "configuration record has an invalid module",
            RecordError::BadSections => "configuration record ELF section headers are inconsistent",
            RecordError::BadVideo => "configuration record has an invalid video request",
        }
    }
}

/// Everything the packager puts in a record.
#[derive(Clone, Copy, Debug)]
pub struct RecordSpec<'a> {
    pub protocol: Protocol,
    pub entry: u32,
    pub mb_flags: u32,
    pub segments: &'a [Segment],
    /// Without the terminating NUL; it is added here.
    pub cmdline: &'a [u8],
    pub payload_sum: u64,
    pub data_sectors: u32,
    /// Module strings without NUL; it is added here.
    pub modules: &'a [Module<'a>],
    pub elf_sections: Option<ElfSections<'a>>,
    pub load_base: u32,
    /// The video mode the kernel gets ([`Request::NONE`]: none).
    pub video: Request,
    /// The EFI tags of the kernel's Multiboot 2 header (default: none,
    /// and a version 3 record).
    pub efi: EfiTags,
}

/// The version and header length a record of `spec` is written with.
fn version_of(spec: &RecordSpec) -> (u16, usize) {
    if spec.efi == EfiTags::default() {
        (3, HEADER_LEN)
    } else {
        (4, HEADER_LEN_V4)
    }
}

/// The header length a record of `version` has.
fn header_len_of(version: u16) -> usize {
    if version >= 4 {
        HEADER_LEN_V4
    } else {
        HEADER_LEN
    }
}

/// Bytes a record with these contents occupies.
pub fn record_len(spec: &RecordSpec) -> usize {
    version_of(spec).1
        + spec.segments.len() * SEGMENT_LEN
        + spec.modules.len() * MODULE_LEN
        + spec.cmdline.len()
        + 1
        + strings_len(spec.modules)
        + spec.elf_sections.map_or(0, |e| e.headers.len())
}

fn strings_len(modules: &[Module]) -> usize {
    modules.iter().map(|m| m.string.len() + 1).sum()
}

/// Writes a record into `out` (which must be at least [`record_len`] bytes
/// and is otherwise left untouched) and returns its length.
pub fn encode(spec: &RecordSpec, out: &mut [u8]) -> usize {
    let len = record_len(spec);
    let out = &mut out[..len];
    out.fill(0);
    out[..8].copy_from_slice(&MAGIC);
    let (version, header_len) = version_of(spec);
    le::put_u16(out, 8, version);
    le::put_u16(out, 10, header_len as u16);
    le::put_u32(out, 12, len as u32);
    le::put_u32(out, 24, spec.entry);
    le::put_u32(out, 28, spec.mb_flags);
    le::put_u32(out, 32, spec.segments.len() as u32);
    le::put_u32(out, 36, spec.cmdline.len() as u32 + 1);
    le::put_u64(out, 40, spec.payload_sum);
    le::put_u32(out, 48, spec.data_sectors);
    le::put_u32(out, 52, spec.protocol.code());
    le::put_u32(out, 56, spec.modules.len() as u32);
    le::put_u32(out, 60, strings_len(spec.modules) as u32);
    if let Some(e) = spec.elf_sections {
        le::put_u32(out, 64, e.headers.len() as u32);
        le::put_u32(out, 68, e.num);
        le::put_u32(out, 72, e.entsize);
        le::put_u32(out, 76, e.shndx);
    }
    le::put_u32(out, 80, spec.load_base);
    out[VIDEO_OFFSET..VIDEO_OFFSET + REQUEST_LEN].copy_from_slice(&spec.video.encode());
    if version >= 4 {
        let e = &spec.efi;
        let r = e.relocatable.unwrap_or(Relocatable {
            min_addr: 0,
            max_addr: 0,
            align: 0,
            preference: 0,
        });
        let flags = e.boot_services as u32
            | (e.entry_efi64.is_some() as u32) << 1
            | (e.entry_efi32.is_some() as u32) << 2
            | (e.relocatable.is_some() as u32) << 3;
        for (i, v) in [
            flags,
            e.entry_efi64.unwrap_or(0),
            e.entry_efi32.unwrap_or(0),
            r.min_addr,
            r.max_addr,
            r.align,
            r.preference,
        ]
        .into_iter()
        .enumerate()
        {
            le::put_u32(out, EFI_OFFSET + 4 * i, v);
        }
    }
    let mut o = header_len;
    for s in spec.segments {
        le::put_u64(out, o, s.dest);
        le::put_u64(out, o + 8, s.file_size);
        le::put_u64(out, o + 16, s.mem_size);
        le::put_u64(out, o + 24, s.data_sector);
        o += SEGMENT_LEN;
    }
    let mut string_off = 0;
    for m in spec.modules {
        le::put_u64(out, o, m.data_sector);
        le::put_u64(out, o + 8, m.size);
        le::put_u64(out, o + 16, m.sum);
        le::put_u32(out, o + 24, string_off as u32);
        le::put_u32(out, o + 28, m.string.len() as u32 + 1);
        string_off += m.string.len() + 1;
        o += MODULE_LEN;
    }
    out[o..o + spec.cmdline.len()].copy_from_slice(spec.cmdline);
    o += spec.cmdline.len() + 1;
    for m in spec.modules {
        out[o..o + m.string.len()].copy_from_slice(m.string);
        o += m.string.len() + 1;
    }
    if let Some(e) = spec.elf_sections {
        out[o..o + e.headers.len()].copy_from_slice(e.headers);
    }
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
    if !(MIN_VERSION..=VERSION).contains(&version) {
        return Err(RecordError::UnsupportedVersion(version));
    }
    let len = le::u32(first_sector, 12) as usize;
    let header_len = header_len_of(version);
    if le::u16(first_sector, 10) as usize != header_len
        || first_sector.len() < header_len
        || !(header_len + 1..=RECORD_MAX).contains(&len)
    {
        return Err(RecordError::BadLength);
    }
    Ok(len)
}

impl<'a> Record<'a> {
    /// Checks magic, version, lengths, checksum, protocol, segments,
    /// modules, section headers and the command line. `bytes` may be
    /// longer than the record (whole sectors).
    pub fn parse(bytes: &'a [u8]) -> Result<Self, RecordError> {
        let len = peek_len(bytes)?;
        if bytes.len() < len {
            return Err(RecordError::BadLength);
        }
        let bytes = &bytes[..len];
        let field = |o| le::u32(bytes, o) as usize;
        let (segment_count, cmdline_len) = (field(32), field(36));
        let (module_count, strings_len, shdrs_len) = (field(56), field(60), field(64));
        // Each count is bounded before the sum, so nothing overflows.
        if segment_count > RECORD_MAX / SEGMENT_LEN
            || module_count > MAX_MODULES
            || cmdline_len == 0
            || cmdline_len > RECORD_MAX
            || strings_len > RECORD_MAX
            || shdrs_len > RECORD_MAX
            || header_len_of(le::u16(bytes, 8))
                + segment_count * SEGMENT_LEN
                + module_count * MODULE_LEN
                + cmdline_len
                + strings_len
                + shdrs_len
                != len
        {
            return Err(RecordError::BadLength);
        }
        let stored = le::u64(bytes, SUM_OFFSET);
        let mut f = super::checksum::Fletcher64::new();
        f.update(&bytes[..SUM_OFFSET]);
        f.update(&[0u8; 8]);
        f.update_padded(&bytes[SUM_OFFSET + 8..]);
        let computed = f.finish();
        if stored != computed {
            return Err(RecordError::BadChecksum { stored, computed });
        }
        let rec = Record { bytes };
        let protocol = le::u32(bytes, 52);
        if Protocol::from_code(protocol).is_none() {
            return Err(RecordError::BadProtocol(protocol));
        }
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
        let strings = rec.strings();
        for i in 0..module_count {
            let o = rec.module_offset(i);
            let (off, slen) = (field(o + 24), field(o + 28));
            let ok = le::u64(bytes, o + 8) < KERNEL_CEILING
                && slen >= 1
                && off.checked_add(slen).is_some_and(|e| e <= strings.len())
                && strings[off + slen - 1] == 0;
            if !ok {
                return Err(RecordError::BadModule(i as u32));
            }
        }
        if shdrs_len != field(68).saturating_mul(field(72)) {
            return Err(RecordError::BadSections);
        }
        Request::decode(&bytes[VIDEO_OFFSET..VIDEO_OFFSET + REQUEST_LEN])
            .map_err(|_| RecordError::BadVideo)?;
        Ok(rec)
    }

    fn u32_at(&self, o: usize) -> u32 {
        le::u32(self.bytes, o)
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
        self.u32_at(24)
    }
    pub fn mb_flags(&self) -> u32 {
        self.u32_at(28)
    }
    pub fn segment_count(&self) -> usize {
        self.u32_at(32) as usize
    }
    /// The record's flags ([`FLAG_NO_FAST_READ`]).
    pub fn flags(&self) -> u32 {
        le::u32(self.bytes, FLAGS_OFFSET)
    }

    pub fn payload_sum(&self) -> u64 {
        le::u64(self.bytes, 40)
    }
    pub fn data_sectors(&self) -> u32 {
        self.u32_at(48)
    }
    pub fn protocol(&self) -> Protocol {
        // Checked by parse.
        Protocol::from_code(self.u32_at(52)).unwrap_or(Protocol::Multiboot1)
    }
    pub fn module_count(&self) -> usize {
        self.u32_at(56) as usize
    }
    pub fn load_base(&self) -> u32 {
        self.u32_at(80)
    }
    /// The record's format version ([`MIN_VERSION`]..=[`VERSION`]).
    pub fn version(&self) -> u16 {
        le::u16(self.bytes, 8)
    }
    fn header_len(&self) -> usize {
        header_len_of(self.version())
    }
    /// The EFI tags of the kernel's Multiboot 2 header (none before
    /// version 4).
    pub fn efi(&self) -> EfiTags {
        if self.version() < 4 {
            return EfiTags::default();
        }
        let f = |i: usize| self.u32_at(EFI_OFFSET + 4 * i);
        let flags = f(0);
        EfiTags {
            boot_services: flags & 1 != 0,
            entry_efi64: (flags & 2 != 0).then(|| f(1)),
            entry_efi32: (flags & 4 != 0).then(|| f(2)),
            relocatable: (flags & 8 != 0).then(|| Relocatable {
                min_addr: f(3),
                max_addr: f(4),
                align: f(5),
                preference: f(6),
            }),
        }
    }
    /// The video request ([`Request::NONE`] in version 2 records).
    pub fn video(&self) -> Request {
        // Checked by parse.
        Request::decode(&self.bytes[VIDEO_OFFSET..VIDEO_OFFSET + REQUEST_LEN])
            .unwrap_or(Request::NONE)
    }
    /// Panics if `i >= segment_count()`.
    pub fn segment(&self, i: usize) -> Segment {
        assert!(i < self.segment_count());
        let o = self.header_len() + i * SEGMENT_LEN;
        Segment {
            dest: le::u64(self.bytes, o),
            file_size: le::u64(self.bytes, o + 8),
            mem_size: le::u64(self.bytes, o + 16),
            data_sector: le::u64(self.bytes, o + 24),
        }
    }
    pub fn segments(&self) -> impl Iterator<Item = Segment> + Clone + '_ {
        (0..self.segment_count()).map(|i| self.segment(i))
    }
    fn module_offset(&self, i: usize) -> usize {
        self.header_len() + self.segment_count() * SEGMENT_LEN + i * MODULE_LEN
    }
    fn cmdline_offset(&self) -> usize {
        self.module_offset(self.module_count())
    }
    fn strings_offset(&self) -> usize {
        self.cmdline_offset() + self.u32_at(36) as usize
    }
    fn strings(&self) -> &'a [u8] {
        let o = self.strings_offset();
        &self.bytes[o..o + self.u32_at(60) as usize]
    }
    /// Module `i`, its string with the NUL. Panics if `i >= module_count()`.
    pub fn module(&self, i: usize) -> Module<'a> {
        assert!(i < self.module_count());
        let o = self.module_offset(i);
        let (off, len) = (self.u32_at(o + 24) as usize, self.u32_at(o + 28) as usize);
        Module {
            data_sector: le::u64(self.bytes, o),
            size: le::u64(self.bytes, o + 8),
            sum: le::u64(self.bytes, o + 16),
            string: &self.strings()[off..off + len],
        }
    }
    pub fn modules(&self) -> impl Iterator<Item = Module<'a>> + '_ {
        (0..self.module_count()).map(|i| self.module(i))
    }
    /// The section headers for the Multiboot 2 ELF sections tag, if the
    /// kernel is ELF and has any.
    pub fn elf_sections(&self) -> Option<ElfSections<'a>> {
        let len = self.u32_at(64) as usize;
        if len == 0 {
            return None;
        }
        let o = self.strings_offset() + self.u32_at(60) as usize;
        Some(ElfSections {
            num: self.u32_at(68),
            entsize: self.u32_at(72),
            shndx: self.u32_at(76),
            headers: &self.bytes[o..o + len],
        })
    }
    /// The command line including its terminating NUL.
    pub fn cmdline_with_nul(&self) -> &'a [u8] {
        &self.bytes[self.cmdline_offset()..self.strings_offset()]
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

    const SEGS: [Segment; 2] = [
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

    fn spec<'a>(modules: &'a [Module<'a>], shdrs: &'a [u8]) -> RecordSpec<'a> {
        RecordSpec {
            protocol: Protocol::Multiboot2,
            entry: 0x100020,
            mb_flags: 0x10003,
            segments: &SEGS,
            cmdline: b"kernel a \"b\" \xc3\xa9",
            payload_sum: 0xdead_beef,
            data_sectors: 10,
            modules,
            elf_sections: Some(ElfSections {
                num: 2,
                entsize: 40,
                shndx: 1,
                headers: shdrs,
            }),
            load_base: 0x100000,
            video: Request {
                mode: super::super::video::Mode::Graphics {
                    width: 1024,
                    height: 768,
                    depth: 32,
                },
                text_ok: true,
                graphics_ok: true,
                from_option: false,
            },
            efi: Default::default(),
        }
    }

    fn sample(buf: &mut [u8]) -> usize {
        let mods = [
            Module {
                data_sector: 20,
                size: 5,
                sum: 7,
                string: b"initrd root=/dev/x",
            },
            Module {
                data_sector: 21,
                size: 0,
                sum: 9,
                string: b"",
            },
        ];
        encode(&spec(&mods, &[0x5a; 80]), buf)
    }

    #[test]
    fn round_trip() {
        let mut buf = [0u8; 1024];
        let len = sample(&mut buf);
        assert_eq!(len, 96 + 64 + 64 + 16 + 20 + 80);
        let r = Record::parse(&buf).unwrap();
        assert_eq!(peek_len(&buf), Ok(len));
        assert_eq!(r.protocol(), Protocol::Multiboot2);
        assert_eq!(r.entry(), 0x100020);
        assert_eq!(r.mb_flags(), 0x10003);
        assert_eq!(r.segment_count(), 2);
        assert_eq!(r.segment(0).mem_size, 0x5000);
        assert_eq!(r.segment(1).data_sector, 11);
        assert_eq!(r.cmdline(), b"kernel a \"b\" \xc3\xa9");
        assert_eq!(r.cmdline_with_nul().last(), Some(&0));
        assert_eq!(r.payload_sum(), 0xdead_beef);
        assert_eq!(r.data_sectors(), 10);
        assert_eq!(r.load_base(), 0x100000);
        // No EFI tags: written as version 3, as before version 4 existed.
        assert_eq!(r.version(), 3);
        assert_eq!(r.efi(), EfiTags::default());
        assert_eq!(r.video(), spec(&[], &[]).video);
        assert_eq!(r.module_count(), 2);
        let m: [Module; 2] = [r.module(0), r.module(1)];
        assert_eq!(
            (m[0].data_sector, m[0].size, m[0].sum, m[0].string),
            (20, 5, 7, &b"initrd root=/dev/x\0"[..])
        );
        assert_eq!((m[1].data_sector, m[1].string), (21, &b"\0"[..]));
        let e = r.elf_sections().unwrap();
        assert_eq!((e.num, e.entsize, e.shndx), (2, 40, 1));
        assert_eq!(e.headers, &[0x5a; 80]);
    }

    #[test]
    fn no_modules_and_no_sections() {
        let mut buf = [0u8; 512];
        let mut s = spec(&[], &[]);
        s.elf_sections = None;
        s.protocol = Protocol::Multiboot1;
        let len = encode(&s, &mut buf);
        assert_eq!(len, 96 + 64 + 16);
        let r = Record::parse(&buf).unwrap();
        assert_eq!(r.protocol(), Protocol::Multiboot1);
        assert_eq!(r.module_count(), 0);
        assert_eq!(r.elf_sections(), None);
        assert_eq!(r.cmdline(), b"kernel a \"b\" \xc3\xa9");
    }

    /// Re-seals a record after a deliberate change, so the check under test
    /// is not the checksum.
    fn reseal(buf: &mut [u8]) {
        let len = le::u32(buf, 12) as usize;
        le::put_u64(buf, SUM_OFFSET, 0);
        let sum = fletcher64(&buf[..len]);
        le::put_u64(buf, SUM_OFFSET, sum);
    }

    #[test]
    fn rejects_damage() {
        let mut buf = [0u8; 1024];
        sample(&mut buf);
        let mut bad = buf;
        bad[100] ^= 1;
        assert!(matches!(
            Record::parse(&bad),
            Err(RecordError::BadChecksum { .. })
        ));
        let mut bad = buf;
        bad[0] = b'X';
        assert_eq!(Record::parse(&bad).unwrap_err(), RecordError::BadMagic);
        let mut bad = buf;
        bad[8] = 1;
        assert_eq!(
            Record::parse(&bad).unwrap_err(),
            RecordError::UnsupportedVersion(1)
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
        let mut bad = buf;
        bad[52] = 3;
        reseal(&mut bad);
        assert_eq!(
            Record::parse(&bad).unwrap_err(),
            RecordError::BadProtocol(3)
        );
        // Module 1's string offset pointing past the string area.
        let mut bad = buf;
        le::put_u32(&mut bad, 96 + 64 + 32 + 24, 20);
        reseal(&mut bad);
        assert_eq!(Record::parse(&bad).unwrap_err(), RecordError::BadModule(1));
        let mut bad = buf;
        le::put_u32(&mut bad, 68, 3);
        reseal(&mut bad);
        assert_eq!(Record::parse(&bad).unwrap_err(), RecordError::BadSections);
    }

    #[test]
    fn segments_from_0x500_up_only() {
        let parse = |dest: u64| {
            let segs = [Segment {
                dest,
                file_size: 0,
                mem_size: 16,
                data_sector: 1,
            }];
            let mut buf = [0u8; 512];
            let mut s = spec(&[], &[]);
            s.segments = &segs;
            s.elf_sections = None;
            encode(&s, &mut buf);
            Record::parse(&buf).map(|r| r.segment(0).dest)
        };
        // Below 1 MiB is fine (the loader stages what lies over its own
        // memory); the IVT and BIOS data area are not.
        assert_eq!(parse(0x8000), Ok(0x8000));
        assert_eq!(parse(0x500), Ok(0x500));
        assert_eq!(parse(0x4ff), Err(RecordError::BadSegment(0)));
        assert_eq!(parse(0), Err(RecordError::BadSegment(0)));
    }

    /// A kernel with EFI tags gets a version 4 record that carries them;
    /// everything else reads as in version 3.
    #[test]
    fn version_4_carries_the_efi_tags() {
        let efi = EfiTags {
            boot_services: true,
            entry_efi32: None,
            entry_efi64: Some(0x200120),
            relocatable: Some(Relocatable {
                min_addr: 0x200000,
                max_addr: 0xFFFF_FFFF,
                align: 0x200000,
                preference: 1,
            }),
        };
        let segments = [Segment {
            dest: 0x200000,
            file_size: 100,
            mem_size: 200,
            data_sector: 1,
        }];
        let spec = RecordSpec {
            protocol: Protocol::Multiboot2,
            entry: 0x200000,
            mb_flags: 0,
            segments: &segments,
            cmdline: b"xen console=com1",
            payload_sum: 5,
            data_sectors: 1,
            modules: &[],
            elf_sections: None,
            load_base: 0x200000,
            video: Request::NONE,
            efi,
        };
        let mut buf = [0u8; 1024];
        let len = encode(&spec, &mut buf);
        assert_eq!(len, record_len(&spec));
        assert_eq!(len, HEADER_LEN_V4 + SEGMENT_LEN + 17);
        let r = Record::parse(&buf).unwrap();
        assert_eq!(r.version(), 4);
        assert_eq!(r.efi(), efi);
        assert_eq!(r.segment(0), segments[0]);
        assert_eq!(r.cmdline(), b"xen console=com1");
        assert_eq!(peek_len(&buf), Ok(len));
    }

    #[test]
    fn reads_version_2_records_as_no_video_request() {
        let mut buf = [0u8; 1024];
        let len = sample(&mut buf);
        // A version 2 record: the same bytes with 88-95 zero.
        buf[VIDEO_OFFSET..VIDEO_OFFSET + REQUEST_LEN].fill(0);
        le::put_u16(&mut buf, 8, 2);
        reseal(&mut buf);
        let r = Record::parse(&buf).unwrap();
        assert_eq!((r.version(), r.video()), (2, Request::NONE));
        assert_eq!(r.len(), len);
        let mut bad = buf;
        le::put_u16(&mut bad, 8, 5);
        reseal(&mut bad);
        assert_eq!(
            Record::parse(&bad).unwrap_err(),
            RecordError::UnsupportedVersion(5)
        );
        // Version 4 with a version 3 header length.
        let mut bad = buf;
        le::put_u16(&mut bad, 8, 4);
        reseal(&mut bad);
        assert_eq!(Record::parse(&bad).unwrap_err(), RecordError::BadLength);
        let mut bad = buf;
        bad[VIDEO_OFFSET + 5] = 7;
        reseal(&mut bad);
        assert_eq!(Record::parse(&bad).unwrap_err(), RecordError::BadVideo);
    }

    #[test]
    fn set_flags_keeps_the_record_valid() {
        let segs = [Segment {
            dest: KERNEL_FLOOR,
            file_size: 16,
            mem_size: 32,
            data_sector: 1,
        }];
        let spec = RecordSpec {
            protocol: Protocol::Multiboot1,
            entry: KERNEL_FLOOR as u32,
            mb_flags: 3,
            segments: &segs,
            cmdline: b"k",
            payload_sum: 7,
            data_sectors: 1,
            modules: &[],
            elf_sections: None,
            load_base: KERNEL_FLOOR as u32,
            video: Request::NONE,
            efi: Default::default(),
        };
        let mut buf = [0u8; 512];
        let len = encode(&spec, &mut buf);
        assert_eq!(Record::parse(&buf).unwrap().flags(), 0);
        set_flags(&mut buf[..len], FLAG_NO_FAST_READ);
        assert_eq!(Record::parse(&buf).unwrap().flags(), FLAG_NO_FAST_READ);
    }
}
