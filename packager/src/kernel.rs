//! Reading a Multiboot kernel and reducing it to a load plan.
//!
//! The plan is what stage 2 follows at boot: which file bytes go to which
//! physical address, how much to zero after them, and where to jump. All
//! parsing and checking happens here, on the host, where errors can name
//! the file and offset; stage 2 only copies.
//!
//! The protocol: a kernel with a Multiboot 2 header (8-byte aligned in the
//! first 32 KiB) boots with Multiboot 2 unless Multiboot 1 is asked for; a
//! kernel with only a Multiboot 1 header (4-byte aligned in the first
//! 8 KiB) boots with Multiboot 1.
//!
//! Which loading rule applies follows the Multiboot specs and GRUB:
//! - Multiboot 1 header flag bit 16 (the "a.out kludge", which Solo5 uses),
//!   or a Multiboot 2 address tag: the header's load_addr, load_end_addr,
//!   bss_end_addr and entry address win, even in an ELF file (a Solo5
//!   kernel's ELF entry point is 64-bit code);
//! - otherwise the file must be ELF (32- or 64-bit): its PT_LOAD segments
//!   load at their physical addresses and the entry point is e_entry,
//!   translated from virtual to physical through the segment containing it
//!   (a Multiboot 2 entry address tag overrides it).
//!
//! Only PT_LOAD bytes are ever stored: section contents (debug information
//! included) are not. For Multiboot 2 the ELF section header table itself
//! is carried, for the ELF symbols tag.

use std::ops::Range;

use crate::proto::layout::{KERNEL_CEILING, KERNEL_FLOOR};
use crate::proto::mb1_header::{self, HeaderError, Kludge, FLAG_AOUT_KLUDGE};
use crate::proto::mb2_header::{self, HeaderError as Header2Error};
use crate::proto::mb2_info;
use crate::proto::rebase;
pub use crate::proto::record::Protocol;
use crate::proto::video::{self, Mode, Request};
use goblin::elf::program_header::PT_LOAD;
use goblin::elf::Elf;

/// One piece of the kernel to load.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoadSegment {
    /// Physical address the bytes go to.
    pub dest: u64,
    /// The bytes' place in the kernel file.
    pub file: Range<usize>,
    /// Bytes the segment occupies in memory; past the file bytes it is
    /// zeroed (bss).
    pub mem_size: u64,
}

impl LoadSegment {
    /// Bytes copied from the file.
    pub fn file_size(&self) -> u64 {
        self.file.len() as u64
    }
    /// The address just past the segment in memory.
    pub fn end(&self) -> u64 {
        self.dest + self.mem_size
    }
}

/// How the kernel file was understood.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KernelFormat {
    /// An ELF32 file, loaded by its program headers.
    Elf32,
    /// An ELF64 file, loaded by its program headers.
    Elf64,
    /// Loaded by the header's address fields; `elf` says whether the file is
    /// also an ELF (Solo5) or a flat binary.
    AoutKludge {
        /// Whether the file is an ELF all the same.
        elf: bool,
    },
}

impl std::fmt::Display for KernelFormat {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str(match self {
            KernelFormat::Elf32 => "ELF32",
            KernelFormat::Elf64 => "ELF64",
            KernelFormat::AoutKludge { elf: true } => "ELF with a.out kludge",
            KernelFormat::AoutKludge { elf: false } => "flat binary with a.out kludge",
        })
    }
}

/// The ELF section header table, for the Multiboot 2 ELF symbols tag.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SectionHeaders {
    /// The number of section headers.
    pub num: u32,
    /// The size of one section header.
    pub entsize: u32,
    /// The index of the section name string table.
    pub shstrndx: u32,
    /// num * entsize bytes, as in the file.
    pub bytes: Vec<u8>,
}

/// A kernel ready to be packed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoadPlan {
    /// What kind of file the kernel is.
    pub format: KernelFormat,
    /// The Multiboot version it is booted with.
    pub protocol: Protocol,
    /// The kernel's Multiboot 1 header flags, whichever protocol boots it
    /// (informative; 0 for a kernel without a valid Multiboot 1 header).
    pub mb_flags: u32,
    /// Offset of the Multiboot header used (1 or 2) in the file.
    pub header_offset: usize,
    /// Multiboot 2 and ELF: the section headers (None without any).
    pub sections: Option<SectionHeaders>,
    /// Where the image starts in memory (the lowest segment): the
    /// Multiboot 2 load base address tag.
    pub load_base: u32,
    /// Physical address entered in 32-bit protected mode.
    pub entry: u32,
    /// Sorted by address, non-overlapping, all within
    /// [KERNEL_FLOOR, KERNEL_CEILING) (0x500..4 GiB: below 1 MiB too; the
    /// loader stages what lies over its own memory).
    pub segments: Vec<LoadSegment>,
    /// The video mode the kernel asks for (Multiboot 1 flag bit 2, the
    /// Multiboot 2 framebuffer tag) and whether it accepts EGA text.
    pub video: Request,
    /// The EFI tags of the Multiboot 2 header (none for Multiboot 1):
    /// bootpack's UEFI loader enters a kernel that keeps boot services
    /// through its EFI amd64 entry. A record carrying any is version 4.
    pub efi: crate::proto::mb2_header::EfiTags,
}

/// Why a kernel cannot be packed. Each message says what is wrong, where
/// (offset or address) and, where it helps, what to do; the caller adds the
/// file name.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum KernelError {
    /// No Multiboot header of either version.
    #[error("no Multiboot header in the first 8 KiB ({len} bytes searched) and no Multiboot 2 header in the first 32 KiB: this is not a Multiboot kernel; link a Multiboot header (magic 0x1BADB002, or 0xE85250D6 for Multiboot 2) into the start of the image")]
    NoHeader {
        /// The bytes searched.
        len: usize,
    },
    /// Multiboot 1 was asked for and there is only a Multiboot 2 header.
    #[error("Multiboot 1 was asked for, but there is no Multiboot 1 header in the first 8 KiB ({len} bytes searched), only a Multiboot 2 one; boot it with Multiboot 2")]
    NoHeader1 {
        /// The bytes searched.
        len: usize,
    },
    /// Multiboot 2 was asked for and there is no Multiboot 2 header.
    #[error("Multiboot 2 was asked for, but there is no Multiboot 2 header (magic 0xE85250D6, 8-byte aligned) in the first 32 KiB ({len} bytes searched)")]
    NoHeader2 {
        /// The bytes searched.
        len: usize,
    },
    /// The Multiboot 2 header's checksum is wrong.
    #[error("the Multiboot 2 header at offset {offset:#x} has a bad checksum: magic + architecture + header_length + checksum is not 0")]
    BadHeader2Checksum {
        /// Where the header is in the file.
        offset: usize,
    },
    /// The Multiboot 2 header is cut off or has no end tag.
    #[error("the Multiboot 2 header at offset {offset:#x} is cut off (by its header_length, the 32 KiB search window or the end of the file) or has no end tag")]
    TruncatedHeader2 {
        /// Where the header is in the file.
        offset: usize,
    },
    /// The Multiboot 2 header is for another architecture than i386.
    #[error("the Multiboot 2 header at offset {offset:#x} is for architecture {arch}; bootpack boots i386 (0) kernels")]
    Header2Architecture {
        /// Where the header is in the file.
        offset: usize,
        /// The architecture it names.
        arch: u32,
    },
    /// A Multiboot 2 header tag has an invalid size.
    #[error("the Multiboot 2 header's {name} tag (type {tag}) at offset {offset:#x} has an invalid size {size}")]
    BadHeader2Tag {
        /// Where the tag is in the file.
        offset: usize,
        /// The tag type.
        tag: u16,
        /// The tag's name in the specification.
        name: &'static str,
        /// The size it gives.
        size: u32,
    },
    /// A required Multiboot 2 header tag bootpack cannot honour.
    #[error("the Multiboot 2 header's {name} tag (type {tag}) at offset {offset:#x} is required (not marked optional) and bootpack cannot honour it")]
    UnsupportedHeader2Tag {
        /// Where the tag is in the file.
        offset: usize,
        /// The tag type.
        tag: u16,
        /// The tag's name in the specification.
        name: &'static str,
    },
    /// The kernel requires an information tag bootpack does not provide.
    #[error("the Multiboot 2 header (offset {offset:#x}) requires the {name} information tag (type {info}), which bootpack does not provide")]
    UnsupportedInfoRequest {
        /// Where the request tag is in the file.
        offset: usize,
        /// The information tag type requested.
        info: u32,
        /// Its name in the specification.
        name: &'static str,
    },
    /// A Multiboot 2 address tag without an entry address tag.
    #[error("the Multiboot 2 header (offset {offset:#x}) has an address tag but no entry address tag: bootpack cannot tell where to enter")]
    AddressWithoutEntry {
        /// Where the header is in the file.
        offset: usize,
    },
    /// Not an ELF and the Multiboot 2 header has no address tag.
    #[error("not an ELF file and the Multiboot 2 header (offset {offset:#x}) has no address tag: bootpack cannot tell where to load it")]
    NotElfNoAddressTag {
        /// Where the header is in the file.
        offset: usize,
    },
    /// The ELF section header table lies past the end of the file.
    #[error("the ELF section header table ({start:#x}..{end:#x}) lies beyond the end of the file ({len:#x} bytes)")]
    SectionHeadersTruncated {
        /// Where the table starts in the file.
        start: u64,
        /// Where it ends.
        end: u64,
        /// The file's length.
        len: usize,
    },
    /// The Multiboot 1 header's checksum is wrong.
    #[error("the Multiboot header at offset {offset:#x} has a bad checksum: magic 0x1BADB002 + flags {flags:#010x} + checksum {checksum:#010x} is not 0")]
    BadHeaderChecksum {
        /// Where the header is in the file.
        offset: usize,
        /// Its flags.
        flags: u32,
        /// Its checksum field.
        checksum: u32,
    },
    /// The Multiboot 1 header is cut off.
    #[error("the Multiboot header at offset {offset:#x} is cut off by the 8 KiB search window or the end of the file")]
    TruncatedHeader {
        /// Where the header is in the file.
        offset: usize,
    },
    /// The Multiboot 1 header requires something bootpack cannot honour.
    #[error("the Multiboot header at offset {offset:#x} sets flag bit {bit} ({what}), a requirement bootpack cannot honour")]
    UnsupportedFlag {
        /// Where the header is in the file.
        offset: usize,
        /// The flag bit.
        bit: u32,
        /// What it asks for.
        what: &'static str,
    },
    /// The Multiboot 1 header asks for a video mode type Multiboot 1 does
    /// not define.
    #[error("the Multiboot header at offset {offset:#x} asks for video mode_type {mode_type}; Multiboot 1 defines 0 (linear graphics) and 1 (EGA text)")]
    BadModeType {
        /// Where the header is in the file.
        offset: usize,
        /// The mode type it asks for.
        mode_type: u32,
    },
    /// Not an ELF and the Multiboot 1 header has no address fields.
    #[error("not an ELF file and the Multiboot header (offset {offset:#x}) has no address fields (flag bit 16): bootpack cannot tell where to load it")]
    NotElfNoKludge {
        /// Where the header is in the file.
        offset: usize,
    },
    /// The ELF file does not parse (the parser's message).
    #[error("invalid ELF: {0}")]
    BadElf(String),
    #[error(
        "ELF for machine {machine} ({class}-bit); a Multiboot kernel is x86 (EM_386 or EM_X86_64)"
    )]
    /// An ELF for another machine than x86.
    WrongMachine {
        /// Its e_machine.
        machine: u16,
        /// Its class (1 ELF32, 2 ELF64).
        class: u8,
    },
    /// An ELF with nothing to load.
    #[error("ELF has no loadable segment (PT_LOAD) with a size")]
    NoSegments,
    /// A segment needs bytes past the end of the file.
    #[error("segment {index} is truncated: it needs file bytes {start:#x}..{end:#x}, but the file is only {len:#x} bytes long")]
    Truncated {
        /// The segment's number.
        index: usize,
        /// The first file byte it needs.
        start: u64,
        /// The file offset just past the bytes it needs.
        end: u64,
        /// The file's length.
        len: usize,
    },
    #[error(
        "segment {index} has {file_size:#x} file bytes but only {mem_size:#x} bytes in memory"
    )]
    /// A segment with more file bytes than memory bytes.
    FileLargerThanMemory {
        /// The segment's number.
        index: usize,
        /// Its file size.
        file_size: u64,
        /// Its memory size.
        mem_size: u64,
    },
    /// A segment would load over the interrupt vector table and BIOS data area.
    #[error("segment {index} would load at {start:#x}..{end:#x}, over the real-mode interrupt vector table and BIOS data area (0x0..0x500), which the BIOS and the loader need until the kernel runs; link the kernel at 0x500 or above")]
    BelowFloor {
        /// The segment's number.
        index: usize,
        /// Its first address.
        start: u64,
        /// The address just past it.
        end: u64,
    },
    /// A segment would load beyond 4 GiB.
    #[error("segment {index} would load at {start:#x}..{end:#x}, beyond 4 GiB; a Multiboot 1 kernel must load below 4 GiB")]
    AboveCeiling {
        /// The segment's number.
        index: usize,
        /// Its first address.
        start: u64,
        /// The address just past it.
        end: u64,
    },
    /// Two segments overlap in memory.
    #[error("segments {a} ({a_start:#x}..{a_end:#x}) and {b} ({b_start:#x}..{b_end:#x}) overlap in memory")]
    Overlap {
        /// The first segment's number.
        a: usize,
        /// Its first address.
        a_start: u64,
        /// The address just past it.
        a_end: u64,
        /// The second segment's number.
        b: usize,
        /// Its first address.
        b_start: u64,
        /// The address just past it.
        b_end: u64,
    },
    /// The Multiboot 1 address fields contradict each other or the file.
    #[error("the Multiboot header's address fields are inconsistent: {0}")]
    BadKludge(String),
    /// The entry point lies outside every loaded segment.
    #[error("the entry point {entry:#x} is not inside any loaded segment")]
    EntryOutside {
        /// The entry point.
        entry: u64,
    },
    /// The Multiboot 2 relocatable tag's range cannot hold the image.
    #[error("the Multiboot 2 header's relocatable tag (offset {offset:#x}) allows {min:#x}-{max:#x}, too small for the kernel's {size:#x}-byte image (GRUB refuses it too): fix the tag's min_addr/max_addr")]
    RelocatableRange {
        /// The header's offset in the file.
        offset: usize,
        /// The tag's min_addr.
        min: u64,
        /// The tag's max_addr.
        max: u64,
        /// The image's span, lowest segment start to highest segment end.
        size: u64,
    },
}

fn flag_name(_bit: u32) -> &'static str {
    "unknown to Multiboot 1"
}

/// A Multiboot 1 kernel's video request, as GRUB reads flag bit 2: mode
/// type 1 is EGA text, 0 a graphics mode; either way the kernel accepts
/// both. Without the bit it gets the text console only.
fn video1(v: Option<mb1_header::VideoFields>) -> Request {
    match v {
        None => Request::NONE,
        Some(v) => Request {
            mode: if v.mode_type == 1 {
                Mode::Text
            } else {
                Mode::Graphics {
                    width: video::clamp16(v.width),
                    height: video::clamp16(v.height),
                    depth: video::clamp8(v.depth),
                }
            },
            text_ok: true,
            graphics_ok: true,
            from_option: false,
        },
    }
}

/// A Multiboot 2 kernel's video request: its framebuffer tag; EGA text is
/// acceptable unless a console flags tag leaves it out and the tag is
/// required.
fn video2(h: &mb2_header::Header) -> Request {
    match h.framebuffer {
        None => Request {
            text_ok: h.accepts_text(),
            ..Request::NONE
        },
        Some(fb) => Request {
            mode: Mode::Graphics {
                width: video::clamp16(fb.width),
                height: video::clamp16(fb.height),
                depth: video::clamp8(fb.depth),
            },
            text_ok: h.accepts_text() || fb.optional,
            graphics_ok: true,
            from_option: false,
        },
    }
}

/// Parses `image` (the whole kernel file) into a load plan, choosing the
/// protocol as [`plan_for`] does without a preference.
pub fn plan(image: &[u8]) -> Result<LoadPlan, KernelError> {
    plan_for(image, None)
}

/// Parses `image` into a load plan for `protocol`, or without one:
/// Multiboot 2 if the kernel has a Multiboot 2 header, else Multiboot 1.
pub fn plan_for(image: &[u8], protocol: Option<Protocol>) -> Result<LoadPlan, KernelError> {
    let has2 = mb2_header::present(image);
    match protocol {
        Some(Protocol::Multiboot2) => plan2(image),
        Some(Protocol::Multiboot1)
            if has2 && mb1_header::find(image) == Err(HeaderError::NotFound) =>
        {
            Err(KernelError::NoHeader1 {
                len: image.len().min(mb1_header::SEARCH_LEN),
            })
        }
        None if has2 => plan2(image),
        _ => plan1(image),
    }
}

/// How many bytes at the start of a kernel file [`header_check`] needs: the
/// larger of the two Multiboot header search windows.
pub const HEADER_WINDOW: usize = mb2_header::SEARCH_LEN;

/// Whether the start of a kernel file (its first [`HEADER_WINDOW`] bytes,
/// or all of it when shorter) has the Multiboot header `protocol` needs;
/// the same error [`plan_for`] gives when it has not. This lets a caller
/// refuse a file that is no kernel (a disk image, a 10 GiB sparse file)
/// before reading or mapping the rest.
pub fn header_check(prefix: &[u8], protocol: Option<Protocol>) -> Result<(), KernelError> {
    let has1 = mb1_header::find(prefix) != Err(HeaderError::NotFound);
    let has2 = mb2_header::present(prefix);
    let len1 = prefix.len().min(mb1_header::SEARCH_LEN);
    match protocol {
        Some(Protocol::Multiboot2) if !has2 => Err(KernelError::NoHeader2 {
            len: prefix.len().min(mb2_header::SEARCH_LEN),
        }),
        Some(Protocol::Multiboot1) if !has1 && has2 => Err(KernelError::NoHeader1 { len: len1 }),
        _ if !has1 && !has2 => Err(KernelError::NoHeader { len: len1 }),
        _ => Ok(()),
    }
}

fn plan1(image: &[u8]) -> Result<LoadPlan, KernelError> {
    let header = mb1_header::find(image).map_err(|e| match e {
        HeaderError::NotFound => KernelError::NoHeader {
            len: image.len().min(mb1_header::SEARCH_LEN),
        },
        HeaderError::BadChecksum {
            offset,
            flags,
            checksum,
        } => KernelError::BadHeaderChecksum {
            offset,
            flags,
            checksum,
        },
        HeaderError::Truncated { offset } => KernelError::TruncatedHeader { offset },
        HeaderError::UnsupportedFlag { offset, bit } => KernelError::UnsupportedFlag {
            offset,
            bit,
            what: flag_name(bit),
        },
        HeaderError::BadModeType { offset, mode_type } => {
            KernelError::BadModeType { offset, mode_type }
        }
    })?;
    let is_elf = image.starts_with(b"\x7fELF");
    let (format, entry, mut segments) = match header.kludge {
        Some(k) if header.flags & FLAG_AOUT_KLUDGE != 0 => {
            let (entry, segs) = plan_kludge(image, header.offset, &k)?;
            (KernelFormat::AoutKludge { elf: is_elf }, entry, segs)
        }
        _ if is_elf => plan_elf(image)?,
        _ => {
            return Err(KernelError::NotElfNoKludge {
                offset: header.offset,
            })
        }
    };
    check_segments(&mut segments)?;
    if !segments.iter().any(|s| (s.dest..s.end()).contains(&entry)) {
        return Err(KernelError::EntryOutside { entry });
    }
    Ok(LoadPlan {
        format,
        protocol: Protocol::Multiboot1,
        mb_flags: header.flags,
        header_offset: header.offset,
        sections: None,
        load_base: segments[0].dest as u32,
        entry: entry as u32,
        segments,
        video: video1(header.video),
        efi: Default::default(),
    })
}

fn plan2(image: &[u8]) -> Result<LoadPlan, KernelError> {
    let h = mb2_header::find(image).map_err(|e| match e {
        Header2Error::NotFound => KernelError::NoHeader2 {
            len: image.len().min(mb2_header::SEARCH_LEN),
        },
        Header2Error::BadChecksum { offset } => KernelError::BadHeader2Checksum { offset },
        Header2Error::Truncated { offset } => KernelError::TruncatedHeader2 { offset },
        Header2Error::BadArchitecture { offset, arch } => {
            KernelError::Header2Architecture { offset, arch }
        }
        Header2Error::BadTagSize { offset, tag, size } => KernelError::BadHeader2Tag {
            offset,
            tag,
            name: mb2_header::tag_name(tag),
            size,
        },
        Header2Error::UnsupportedTag { offset, tag } => KernelError::UnsupportedHeader2Tag {
            offset,
            tag,
            name: mb2_header::tag_name(tag),
        },
        Header2Error::UnsupportedRequest { offset, info } => KernelError::UnsupportedInfoRequest {
            offset,
            info,
            name: mb2_header::info_tag_name(info),
        },
    })?;
    let is_elf = image.starts_with(b"\x7fELF");
    let provided = mb2_info::PROVIDED
        | if is_elf {
            1 << mb2_info::TAG_ELF_SECTIONS
        } else {
            0
        }
        // With a framebuffer tag: the framebuffer and VBE information (the
        // VBE tag with a graphics mode only, as GRUB).
        | if h.framebuffer.is_some() {
            1 << mb2_info::TAG_VBE | 1 << mb2_info::TAG_FRAMEBUFFER
        } else {
            0
        };
    let missing = h.required_info & !provided;
    if missing != 0 {
        let info = missing.trailing_zeros();
        return Err(KernelError::UnsupportedInfoRequest {
            offset: h.offset,
            info,
            name: mb2_header::info_tag_name(info),
        });
    }
    let (format, entry, mut segments) = match h.address {
        Some(a) => {
            let entry = h
                .entry
                .ok_or(KernelError::AddressWithoutEntry { offset: h.offset })?;
            // load_addr -1: the file from its first byte.
            let load_addr = if a.load_addr == u32::MAX {
                a.header_addr.wrapping_sub(h.offset as u32)
            } else {
                a.load_addr
            };
            let k = Kludge {
                header_addr: a.header_addr,
                load_addr,
                load_end_addr: a.load_end_addr,
                bss_end_addr: a.bss_end_addr,
                entry_addr: entry,
            };
            let (entry, segs) = plan_kludge(image, h.offset, &k)?;
            (KernelFormat::AoutKludge { elf: is_elf }, entry, segs)
        }
        None if is_elf => {
            let (format, elf_entry, segs) = plan_elf(image)?;
            (format, h.entry.map_or(elf_entry, u64::from), segs)
        }
        None => return Err(KernelError::NotElfNoAddressTag { offset: h.offset }),
    };
    check_segments(&mut segments)?;
    if !segments.iter().any(|s| (s.dest..s.end()).contains(&entry)) {
        return Err(KernelError::EntryOutside { entry });
    }
    // A UEFI boot moves the image within the relocatable tag's range: a
    // range that cannot hold it is refused now, not at boot.
    if let Some(r) = h.efi.relocatable {
        let span = rebase::Span::of(
            segments
                .iter()
                .filter(|s| s.mem_size > 0)
                .map(|s| (s.dest, s.end())),
        );
        if let Some(Err(rebase::NoBase::Range { size, min, max })) =
            span.map(|span| rebase::check_range(span, &r))
        {
            return Err(KernelError::RelocatableRange {
                offset: h.offset,
                min,
                max,
                size,
            });
        }
    }
    let sections = if is_elf {
        section_headers(image)?
    } else {
        None
    };
    Ok(LoadPlan {
        format,
        protocol: Protocol::Multiboot2,
        mb_flags: mb1_header::find(image).map_or(0, |h1| h1.flags),
        header_offset: h.offset,
        sections,
        load_base: segments[0].dest as u32,
        entry: entry as u32,
        segments,
        video: video2(&h),
        efi: h.efi,
    })
}

/// The ELF section header table as it is in the file, if it has one.
fn section_headers(image: &[u8]) -> Result<Option<SectionHeaders>, KernelError> {
    let elf = Elf::parse_header(image).map_err(|e| KernelError::BadElf(e.to_string()))?;
    let (num, entsize) = (elf.e_shnum as u64, elf.e_shentsize as u64);
    if num == 0 || elf.e_shoff == 0 {
        return Ok(None);
    }
    let start = elf.e_shoff;
    let end = start.saturating_add(num * entsize);
    if end > image.len() as u64 {
        return Err(KernelError::SectionHeadersTruncated {
            start,
            end,
            len: image.len(),
        });
    }
    Ok(Some(SectionHeaders {
        num: num as u32,
        entsize: entsize as u32,
        shstrndx: elf.e_shstrndx as u32,
        bytes: image[start as usize..end as usize].to_vec(),
    }))
}

/// The a.out kludge: the file offset of `load_addr` is the header's offset
/// minus (header_addr - load_addr); the file bytes up to `load_end_addr`
/// (or the end of the file) follow contiguously, then bss up to
/// `bss_end_addr`.
fn plan_kludge(
    image: &[u8],
    header_offset: usize,
    k: &Kludge,
) -> Result<(u64, Vec<LoadSegment>), KernelError> {
    let bad = |m: String| Err(KernelError::BadKludge(m));
    if k.header_addr < k.load_addr {
        return bad(format!(
            "header_addr {:#x} is below load_addr {:#x}",
            k.header_addr, k.load_addr
        ));
    }
    let lead = (k.header_addr - k.load_addr) as usize;
    if lead > header_offset {
        return bad(format!(
            "load_addr {:#x} would start {lead:#x} bytes before the header, but the header is only {header_offset:#x} bytes into the file",
            k.load_addr
        ));
    }
    let file_start = header_offset - lead;
    let file_end = if k.load_end_addr == 0 {
        image.len()
    } else {
        if k.load_end_addr < k.load_addr {
            return bad(format!(
                "load_end_addr {:#x} is below load_addr {:#x}",
                k.load_end_addr, k.load_addr
            ));
        }
        let end = file_start as u64 + (k.load_end_addr - k.load_addr) as u64;
        if end > image.len() as u64 {
            return Err(KernelError::Truncated {
                index: 0,
                start: file_start as u64,
                end,
                len: image.len(),
            });
        }
        end as usize
    };
    let file_size = (file_end - file_start) as u64;
    let mem_size = if k.bss_end_addr == 0 {
        file_size
    } else {
        let load_end = k.load_addr as u64 + file_size;
        if (k.bss_end_addr as u64) < load_end {
            return bad(format!(
                "bss_end_addr {:#x} is below the end of the loaded data {load_end:#x}",
                k.bss_end_addr
            ));
        }
        k.bss_end_addr as u64 - k.load_addr as u64
    };
    let seg = LoadSegment {
        dest: k.load_addr as u64,
        file: file_start..file_end,
        mem_size,
    };
    Ok((k.entry_addr as u64, vec![seg]))
}

fn plan_elf(image: &[u8]) -> Result<(KernelFormat, u64, Vec<LoadSegment>), KernelError> {
    let elf = Elf::parse(image).map_err(|e| KernelError::BadElf(e.to_string()))?;
    let class = if elf.is_64 { 64 } else { 32 };
    let machine = elf.header.e_machine;
    use goblin::elf::header::{EM_386, EM_X86_64};
    if machine != EM_386 && machine != EM_X86_64 {
        return Err(KernelError::WrongMachine { machine, class });
    }
    let mut segments = Vec::new();
    let mut entry = None;
    for (index, ph) in elf.program_headers.iter().enumerate() {
        // Newer Solo5 kernels carry an empty PT_LOAD at address 0; it loads
        // nothing and is skipped, as GRUB does.
        if ph.p_type != PT_LOAD || ph.p_memsz == 0 {
            continue;
        }
        if ph.p_filesz > ph.p_memsz {
            return Err(KernelError::FileLargerThanMemory {
                index,
                file_size: ph.p_filesz,
                mem_size: ph.p_memsz,
            });
        }
        let end = ph.p_offset.saturating_add(ph.p_filesz);
        if end > image.len() as u64 {
            return Err(KernelError::Truncated {
                index,
                start: ph.p_offset,
                end,
                len: image.len(),
            });
        }
        // The entry point is virtual; the segment containing it says where
        // it lands physically.
        if (ph.p_vaddr..ph.p_vaddr.saturating_add(ph.p_memsz)).contains(&elf.entry) {
            entry = Some(elf.entry - ph.p_vaddr + ph.p_paddr);
        }
        segments.push(LoadSegment {
            dest: ph.p_paddr,
            file: ph.p_offset as usize..end as usize,
            mem_size: ph.p_memsz,
        });
    }
    if segments.is_empty() {
        return Err(KernelError::NoSegments);
    }
    let format = if elf.is_64 {
        KernelFormat::Elf64
    } else {
        KernelFormat::Elf32
    };
    Ok((format, entry.unwrap_or(elf.entry), segments))
}

/// Every segment within [KERNEL_FLOOR, KERNEL_CEILING), none overlapping;
/// sorts them by address. Segment numbers in errors are positions in the
/// plan before sorting.
fn check_segments(segments: &mut [LoadSegment]) -> Result<(), KernelError> {
    for (index, s) in segments.iter().enumerate() {
        let (start, end) = (s.dest, s.dest.saturating_add(s.mem_size));
        if start < KERNEL_FLOOR {
            return Err(KernelError::BelowFloor { index, start, end });
        }
        if end > KERNEL_CEILING {
            return Err(KernelError::AboveCeiling { index, start, end });
        }
    }
    let mut order: Vec<usize> = (0..segments.len()).collect();
    order.sort_by_key(|&i| segments[i].dest);
    for w in order.windows(2) {
        let (a, b) = (&segments[w[0]], &segments[w[1]]);
        if a.end() > b.dest {
            return Err(KernelError::Overlap {
                a: w[0],
                a_start: a.dest,
                a_end: a.end(),
                b: w[1],
                b_start: b.dest,
                b_end: b.end(),
            });
        }
    }
    segments.sort_by_key(|s| s.dest);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::mb1_header::write;

    /// `header_check` on a file's first bytes refuses exactly what
    /// `plan_for` on the whole file refuses for lack of a header, with the
    /// same words, and lets through every file that has one.
    #[test]
    fn header_check_agrees_with_plan_for() {
        let demo = crate::bootloader::DEMO_KERNEL;
        let mut zeros_then_demo = vec![0u8; 40 << 10];
        zeros_then_demo.extend_from_slice(demo);
        let files: [&[u8]; 5] = [&[], &[0u8; 100], &[0xA5; 64 << 10], demo, &zeros_then_demo];
        for (i, file) in files.iter().enumerate() {
            for protocol in [None, Some(Protocol::Multiboot1), Some(Protocol::Multiboot2)] {
                let prefix = &file[..file.len().min(HEADER_WINDOW)];
                let whole = plan_for(file, protocol);
                match header_check(prefix, protocol) {
                    Err(e) => assert_eq!(
                        whole.unwrap_err().to_string(),
                        e.to_string(),
                        "file {i}, {protocol:?}"
                    ),
                    Ok(()) => assert!(
                        !matches!(
                            whole,
                            Err(KernelError::NoHeader { .. }
                                | KernelError::NoHeader1 { .. }
                                | KernelError::NoHeader2 { .. })
                        ),
                        "file {i}, {protocol:?}"
                    ),
                }
            }
        }
        // The demo kernel has a header; a file with its header beyond the
        // search window has none.
        assert!(header_check(demo, None).is_ok());
        assert!(header_check(&zeros_then_demo[..HEADER_WINDOW], None).is_err());
    }

    /// A flat kludge kernel: header at `off`, loaded from 1 MiB.
    fn flat(len: usize, off: usize, k: Kludge) -> Vec<u8> {
        let mut img: Vec<u8> = (0..len).map(|i| (i % 251) as u8 | 1).collect();
        write(&mut img, off, 0x10003, Some(k));
        img
    }

    fn kludge(load_end: u32, bss_end: u32, entry: u32) -> Kludge {
        Kludge {
            header_addr: 0x100010,
            load_addr: 0x100000,
            load_end_addr: load_end,
            bss_end_addr: bss_end,
            entry_addr: entry,
        }
    }

    #[test]
    fn kludge_uses_the_header_addresses() {
        let img = flat(0x3000, 0x10, kludge(0x102000, 0x105000, 0x100040));
        let p = plan(&img).unwrap();
        assert_eq!(p.format, KernelFormat::AoutKludge { elf: false });
        assert_eq!(p.entry, 0x100040);
        assert_eq!(
            p.segments,
            vec![LoadSegment {
                dest: 0x100000,
                file: 0..0x2000,
                mem_size: 0x5000
            }]
        );
    }

    #[test]
    fn kludge_zero_fields_mean_whole_file_and_no_bss() {
        let img = flat(0x1234, 0x10, kludge(0, 0, 0x100040));
        let p = plan(&img).unwrap();
        assert_eq!(p.segments[0].file, 0..0x1234);
        assert_eq!(p.segments[0].mem_size, 0x1234);
    }

    #[test]
    fn kludge_errors_name_the_problem() {
        let img = flat(0x1000, 0x10, kludge(0x102000, 0, 0x100040));
        assert!(matches!(
            plan(&img),
            Err(KernelError::Truncated {
                end: 0x2000,
                len: 0x1000,
                ..
            })
        ));
        let img = flat(0x3000, 0x10, kludge(0x102000, 0x101000, 0x100040));
        assert!(matches!(plan(&img), Err(KernelError::BadKludge(_))));
        let img = flat(0x3000, 0x10, kludge(0x102000, 0, 0x900000));
        assert_eq!(
            plan(&img),
            Err(KernelError::EntryOutside { entry: 0x900000 })
        );
        // Below 1 MiB loads (GRUB's multiboot-platform image, at 0x9000);
        // over the IVT and BIOS data area it cannot.
        let mut low = kludge(0, 0, 0x9040);
        low.header_addr = 0x9010;
        low.load_addr = 0x9000;
        let img = flat(0x3000, 0x10, low);
        assert_eq!(plan(&img).unwrap().segments[0].dest, 0x9000);
        let mut low = kludge(0, 0, 0x440);
        low.header_addr = 0x410;
        low.load_addr = 0x400;
        let img = flat(0x3000, 0x10, low);
        assert!(matches!(
            plan(&img),
            Err(KernelError::BelowFloor { start: 0x400, .. })
        ));
    }

    #[test]
    fn no_header_and_bad_checksum() {
        assert_eq!(plan(&[0u8; 100]), Err(KernelError::NoHeader { len: 100 }));
        let mut img = flat(0x1000, 0x10, kludge(0, 0, 0x100040));
        img[0x18] ^= 1;
        assert!(matches!(
            plan(&img),
            Err(KernelError::BadHeaderChecksum { offset: 0x10, .. })
        ));
        let mut img = vec![0u8; 64];
        write(&mut img, 0, 3, None);
        assert_eq!(plan(&img), Err(KernelError::NotElfNoKludge { offset: 0 }));
    }

    #[test]
    fn overlapping_segments_are_refused() {
        let mut segs = vec![
            LoadSegment {
                dest: 0x200000,
                file: 0..0,
                mem_size: 0x2000,
            },
            LoadSegment {
                dest: 0x100000,
                file: 0..0,
                mem_size: 0x100001,
            },
        ];
        assert!(matches!(
            check_segments(&mut segs),
            Err(KernelError::Overlap { a: 1, b: 0, .. })
        ));
    }

    fn words(w: &[u32]) -> Vec<u8> {
        w.iter().flat_map(|x| x.to_le_bytes()).collect()
    }

    /// A flat kernel with both headers: Multiboot 1 (kludge) at 0x10,
    /// Multiboot 2 (address + entry tags) at 0x40.
    fn both() -> Vec<u8> {
        let mut img = flat(0x3000, 0x10, kludge(0x102000, 0x105000, 0x100040));
        let addr = words(&[0x100040, 0x100000, 0x102000, 0x106000]);
        let entry = words(&[0x100100]);
        mb2_header::write(&mut img, 0x40, &[(2, 0, &addr), (3, 0, &entry)]);
        img
    }

    #[test]
    fn a_relocatable_range_too_small_for_the_image_is_refused() {
        let reloc = |min: u32, max: u32| {
            let mut img = both();
            let addr = words(&[0x100040, 0x100000, 0x102000, 0x106000]);
            let entry = words(&[0x100100]);
            let r = words(&[min, max, 0x1000, 1]);
            mb2_header::write(
                &mut img,
                0x40,
                &[(2, 0, &addr), (3, 0, &entry), (10, 0, &r)],
            );
            plan(&img)
        };
        // The image spans 0x100000-0x106000: 0x6000 bytes.
        assert_eq!(
            reloc(0x200000, 0x205fff),
            Err(KernelError::RelocatableRange {
                offset: 0x40,
                min: 0x200000,
                max: 0x205fff,
                size: 0x6000
            })
        );
        let p = reloc(0x200000, 0x206000).unwrap();
        assert_eq!(p.efi.relocatable.unwrap().min_addr, 0x200000);
    }

    #[test]
    fn multiboot2_preferred_and_multiboot1_on_request() {
        let img = both();
        let p = plan(&img).unwrap();
        assert_eq!(p.protocol, Protocol::Multiboot2);
        assert_eq!(
            (p.header_offset, p.entry, p.load_base),
            (0x40, 0x100100, 0x100000)
        );
        assert_eq!(p.segments[0].mem_size, 0x6000);
        assert_eq!(p.sections, None);
        let p = plan_for(&img, Some(Protocol::Multiboot1)).unwrap();
        assert_eq!(p.protocol, Protocol::Multiboot1);
        assert_eq!((p.header_offset, p.entry), (0x10, 0x100040));
        assert_eq!(p.segments[0].mem_size, 0x5000);
        // Only a Multiboot 1 header: Multiboot 2 cannot be asked for.
        let img1 = flat(0x3000, 0x10, kludge(0, 0, 0x100040));
        assert_eq!(plan(&img1).unwrap().protocol, Protocol::Multiboot1);
        assert_eq!(
            plan_for(&img1, Some(Protocol::Multiboot2)),
            Err(KernelError::NoHeader2 { len: 0x3000 })
        );
        let mut img2 = both();
        img2[0x10..0x1c].fill(0);
        assert_eq!(
            plan_for(&img2, Some(Protocol::Multiboot1)),
            Err(KernelError::NoHeader1 { len: 0x2000 })
        );
    }

    #[test]
    fn video_requests_as_grub_reads_them() {
        use crate::proto::mb1_header::VideoFields;
        assert_eq!(video1(None), Request::NONE);
        let v = |mode_type, width, height, depth| VideoFields {
            mode_type,
            width,
            height,
            depth,
        };
        let r = video1(Some(v(1, 0, 0, 0)));
        assert_eq!((r.mode, r.text_ok, r.graphics_ok), (Mode::Text, true, true));
        let r = video1(Some(v(0, 70000, 768, 300)));
        assert_eq!(
            r.mode,
            Mode::Graphics {
                width: 65535,
                height: 768,
                depth: 255
            }
        );
        let mb2 = |tags: &[(u16, u16, &[u8])]| {
            let mut img = vec![0u8; 0x200];
            mb2_header::write(&mut img, 8, tags);
            video2(&mb2_header::find(&img).unwrap())
        };
        let fb = words(&[800, 600, 16]);
        let no_ega = words(&[0]);
        // Console flags without EGA text and a required tag: no text.
        let r = mb2(&[(4, 0, &no_ega), (5, 0, &fb)]);
        assert!(!r.text_ok && r.graphics_ok && !r.from_option);
        // The tag optional, or no console flags tag: text is a fallback.
        assert!(mb2(&[(4, 0, &no_ega), (5, 1, &fb)]).text_ok);
        assert!(mb2(&[(5, 0, &fb)]).text_ok);
        assert_eq!(mb2(&[]).mode, Mode::None);
        // With the tag, the framebuffer information may be required.
        let mut img = vec![0u8; 0x200];
        let req = words(&[7, 8]);
        mb2_header::write(&mut img, 8, &[(1, 0, &req), (5, 0, &fb)]);
        assert!(matches!(
            plan(&img),
            Err(KernelError::NotElfNoAddressTag { .. })
        ));
    }

    #[test]
    fn multiboot2_refusals_name_the_tag() {
        let mut img = vec![0u8; 0x200];
        mb2_header::write(&mut img, 8, &[(42, 0, &words(&[800, 600, 32]))]);
        let e = plan(&img).unwrap_err();
        assert_eq!(
            e,
            KernelError::UnsupportedHeader2Tag {
                offset: 0x18,
                tag: 42,
                name: "unknown"
            }
        );
        assert!(e
            .to_string()
            .contains("unknown tag (type 42) at offset 0x18"));
        let mut img = vec![0u8; 0x200];
        mb2_header::write(&mut img, 8, &[(1, 0, &words(&[1, 13]))]);
        assert_eq!(
            plan(&img),
            Err(KernelError::UnsupportedInfoRequest {
                offset: 8,
                info: 13,
                name: "SMBIOS tables"
            })
        );
        // ELF symbols can be provided only for ELF files.
        let mut img = vec![0u8; 0x200];
        let addr = words(&[0x100008, 0x100000, 0, 0]);
        mb2_header::write(&mut img, 8, &[(1, 0, &words(&[9])), (2, 0, &addr)]);
        assert!(matches!(
            plan(&img),
            Err(KernelError::UnsupportedInfoRequest { info: 9, .. })
        ));
        let mut img = vec![0u8; 0x200];
        mb2_header::write(&mut img, 8, &[(2, 0, &addr)]);
        assert_eq!(
            plan(&img),
            Err(KernelError::AddressWithoutEntry { offset: 8 })
        );
        let mut img = vec![0u8; 0x200];
        mb2_header::write(&mut img, 8, &[]);
        assert_eq!(
            plan(&img),
            Err(KernelError::NotElfNoAddressTag { offset: 8 })
        );
    }

    #[test]
    fn multiboot2_address_tag_minus_one_loads_from_the_file_start() {
        let mut img = vec![0x90u8; 0x1000];
        let addr = words(&[0x100040, u32::MAX, 0, 0]);
        mb2_header::write(
            &mut img,
            0x40,
            &[(2, 0, &addr), (3, 0, &words(&[0x100080]))],
        );
        let p = plan(&img).unwrap();
        assert_eq!(p.segments[0].dest, 0x100000);
        assert_eq!(p.segments[0].file, 0..0x1000);
    }
}
