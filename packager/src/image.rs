//! Laying out and writing the disk image.
//!
//! ```text
//! LBA 0            MBR: stage 1 (patched with stage 2's place and sum),
//!                  disk signature, partition table
//! LBA 1..          stage 2
//! LBA 2048..       the kernel partition (type 0x7F, active):
//!                  configuration record, then each segment's file bytes,
//!                  then each module's bytes, each starting on a sector
//!                  boundary
//! ```
//!
//! The disk is at least big enough for whole MiB of partition, and the
//! partition runs to its end. The image is written to a temporary file beside the output
//! and renamed into place only when complete, so the output path never
//! holds a half-written image. The bytes themselves are written by
//! [`crate::formats`].

use std::fs::File;
use std::io::{self, Cursor, Write};
use std::path::{Path, PathBuf};

use bootpack_proto::checksum::{fletcher64, Fletcher64};
use bootpack_proto::layout::{
    PARTITION_START_LBA, PARTITION_TYPE, SECTOR, STAGE2_LBA, STAGE2_MAX_SECTORS,
};
use bootpack_proto::record::{
    self, ElfSections, Module, RecordSpec, Segment, MAX_MODULES, RECORD_MAX,
};
use bootpack_proto::stage1;
use mbrman::{MBRHeader, MBRPartitionEntry, CHS};

use crate::disk::{Disk, Extent};
use crate::kernel::LoadPlan;

const MIB_SECTORS: u64 = 2048;

/// The two boot stages as flat binaries.
#[derive(Clone, Copy, Debug)]
pub struct Bootloader<'a> {
    /// At least the 440 bytes of MBR boot code, with the patch placeholders.
    pub stage1: &'a [u8],
    /// Stage 2, written to the gap before the first partition.
    pub stage2: &'a [u8],
}

/// Why an image could not be laid out or written.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    /// The command line does not fit the kernel's buffer.
    #[error("the command line is {len} bytes; with its terminating NUL it must fit in {max} bytes (Solo5's buffer)")]
    CmdlineTooLong {
        /// Its length in bytes.
        len: usize,
        /// The most bytes allowed, NUL included.
        max: usize,
    },
    /// The boot configuration record does not fit its sectors.
    #[error("the configuration record would need {len} bytes ({segments} segments, {modules} modules with their strings, the command line and {sections} bytes of ELF section headers) but at most {max} fit")]
    RecordTooLarge {
        /// The bytes it would need.
        len: usize,
        /// The kernel's load segments.
        segments: usize,
        /// The modules.
        modules: usize,
        /// The bytes of ELF section headers it carries.
        sections: usize,
        /// The most bytes that fit.
        max: usize,
    },
    /// More modules than the loader takes.
    #[error("{count} modules; bootpack loads at most {max}")]
    TooManyModules {
        /// The modules given.
        count: usize,
        /// The most the loader takes.
        max: usize,
    },
    /// A module of 4 GiB or more.
    #[error("module {index} ({path}) is {size} bytes; a module must be smaller than 4 GiB")]
    ModuleTooLarge {
        /// The module's number, from 1.
        index: usize,
        /// The module file.
        path: PathBuf,
        /// Its size in bytes.
        size: u64,
    },
    /// A module's string is too long.
    #[error("module {index} ({path}): its string is {len} bytes; with its terminating NUL it must fit in {max} bytes")]
    ModuleStringTooLong {
        /// The module's number, from 1.
        index: usize,
        /// The module file.
        path: PathBuf,
        /// The string's length in bytes.
        len: usize,
        /// The most bytes allowed, NUL included.
        max: usize,
    },
    /// A module's string contains a NUL byte.
    #[error("module {index} ({path}): its string contains a NUL byte at offset {offset}")]
    ModuleStringNul {
        /// The module's number, from 1.
        index: usize,
        /// The module file.
        path: PathBuf,
        /// Where the NUL is in the string.
        offset: usize,
    },
    /// The modules do not fit between the kernel's end and 4 GiB.
    #[error("the kernel ends at {kernel_end:#x} and the modules need {bytes:#x} bytes after it (page-aligned): that does not fit below 4 GiB")]
    ModulesBeyond4G {
        /// The address just past the kernel.
        kernel_end: u64,
        /// The bytes the modules need, page-aligned.
        bytes: u64,
    },
    /// The disk would be larger than an MBR partition table can describe.
    #[error("the disk would need {sectors} sectors; MBR partitions end at 2 TiB")]
    TooLarge {
        /// The sectors it would need.
        sectors: u64,
    },
    /// The size asked for is smaller than the contents.
    #[error("a disk of {size} bytes is too small: the bootloader and kernel need at least {min} bytes ({} MiB)", min.div_ceil(1 << 20))]
    DiskTooSmall {
        /// The size asked for, in bytes.
        size: u64,
        /// The smallest size that holds the contents, in bytes.
        min: u64,
    },
    /// The size asked for is not a whole number of the format's unit.
    #[error("a {format} image must be a whole number of {unit}; {size} bytes is not")]
    SizeGranularity {
        /// The format.
        format: String,
        /// Its unit ("1 GiB", "1 MiB", ...).
        unit: String,
        /// The size asked for, in bytes.
        size: u64,
    },
    /// The embedded stage 1 lacks its patch fields (a broken build).
    #[error("internal: stage 1 lacks its patch placeholders (stale bootloader build)")]
    Stage1Layout,
    /// The embedded stage 2 is larger than stage 1 can load (a broken build).
    #[error("internal: stage 2 is {sectors} sectors; stage 1 loads at most {max}")]
    Stage2TooLarge {
        /// Its size in sectors.
        sectors: u64,
        /// The most sectors stage 1 loads.
        max: u16,
    },
    /// Writing the image failed.
    #[error("cannot write {path}: {source}")]
    Io {
        /// The file being written.
        path: PathBuf,
        /// Why it failed.
        source: io::Error,
    },
}

/// A module to pack: its bytes and string.
#[derive(Clone)]
pub struct ModuleInput {
    /// Where the bytes came from (for messages).
    pub path: PathBuf,
    /// The module's contents.
    pub bytes: Vec<u8>,
    /// The string the kernel gets with it, without NUL.
    pub string: Vec<u8>,
}

impl std::fmt::Debug for ModuleInput {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.debug_struct("ModuleInput")
            .field("path", &self.path)
            .field("len", &self.bytes.len())
            .field("string", &String::from_utf8_lossy(&self.string))
            .finish()
    }
}

/// Everything about the image that is decided before writing it.
#[derive(Clone, Debug)]
pub struct Layout {
    /// Sector 0, complete.
    pub mbr: [u8; 512],
    /// Stage 2 padded to whole sectors.
    pub stage2: Vec<u8>,
    /// The configuration record, padded to whole sectors.
    pub record: Vec<u8>,
    /// For each plan segment with file bytes: where they go on disk
    /// (absolute byte offset).
    pub data: Vec<(std::ops::Range<usize>, u64)>,
    /// The modules, in order, and where their bytes go on disk (absolute
    /// byte offset).
    pub modules: Vec<(ModuleInput, u64)>,
    /// The kernel partition's size in sectors.
    pub partition_sectors: u64,
    /// The disk's size in sectors.
    pub disk_sectors: u64,
    /// The checksum of the kernel and modules as stored.
    pub payload_sum: u64,
}

impl Layout {
    /// Sets the configuration record's flags (`record::FLAG_NO_FAST_READ`)
    /// and its checksum.
    pub fn set_record_flags(&mut self, flags: u32) {
        let len = record::peek_len(&self.record).expect("the record was encoded here");
        record::set_flags(&mut self.record[..len], flags);
    }

    /// The disk's size in bytes.
    pub fn disk_bytes(&self) -> u64 {
        self.disk_sectors * SECTOR
    }

    /// The image as data extents over its size; `kernel` is the file the
    /// plan was made from.
    pub fn disk<'a>(&'a self, kernel: &'a [u8]) -> Disk<'a> {
        let mut extents = vec![
            Extent {
                offset: 0,
                data: &self.mbr,
            },
            Extent {
                offset: STAGE2_LBA as u64 * SECTOR,
                data: &self.stage2,
            },
            Extent {
                offset: PARTITION_START_LBA as u64 * SECTOR,
                data: &self.record,
            },
        ];
        extents.extend(self.data.iter().map(|(range, at)| Extent {
            offset: *at,
            data: &kernel[range.clone()],
        }));
        extents.extend(
            self.modules
                .iter()
                .filter(|(m, _)| !m.bytes.is_empty())
                .map(|(m, at)| Extent {
                    offset: *at,
                    data: &m.bytes,
                }),
        );
        Disk::new(self.disk_bytes(), extents)
    }
}

fn sectors(bytes: u64) -> u64 {
    bytes.div_ceil(SECTOR)
}

fn pad_to_sectors(mut v: Vec<u8>) -> Vec<u8> {
    v.resize((sectors(v.len() as u64) * SECTOR) as usize, 0);
    v
}

/// The smallest disk that holds contents of `content_sectors` sectors in
/// the kernel partition: the partition rounded up to whole MiB.
pub fn min_disk_bytes(content_sectors: u64) -> u64 {
    (PARTITION_START_LBA as u64 + content_sectors.div_ceil(MIB_SECTORS) * MIB_SECTORS) * SECTOR
}

/// The parts of a record that change between measuring and writing it.
struct Sums<'a> {
    segments: &'a [Segment],
    modules: &'a [Module<'a>],
    payload_sum: u64,
    data_sectors: u32,
}

impl<'a> Sums<'a> {
    fn spec(
        self,
        plan: &'a LoadPlan,
        cmdline: &'a [u8],
        elf_sections: Option<ElfSections<'a>>,
    ) -> RecordSpec<'a> {
        RecordSpec {
            protocol: plan.protocol,
            entry: plan.entry,
            mb_flags: plan.mb_flags,
            segments: self.segments,
            cmdline,
            payload_sum: self.payload_sum,
            data_sectors: self.data_sectors,
            modules: self.modules,
            elf_sections,
            load_base: plan.load_base,
        }
    }
}

/// Decides where everything goes and builds the MBR and record. The disk
/// size is what `disk_size` chooses given the smallest size that holds the
/// contents (whole MiB); it must be a multiple of 512 and at least that.
/// The kernel partition runs to the end of the disk.
pub fn layout(
    boot: &Bootloader,
    kernel: &[u8],
    plan: &LoadPlan,
    cmdline: &[u8],
    disk_size: impl FnOnce(u64) -> Result<u64, ImageError>,
) -> Result<Layout, ImageError> {
    layout_with_modules(boot, kernel, plan, cmdline, Vec::new(), disk_size)
}

fn check_modules(plan: &LoadPlan, modules: &[ModuleInput]) -> Result<(), ImageError> {
    let max = bootpack_proto::layout::CMDLINE_MAX;
    if modules.len() > MAX_MODULES {
        return Err(ImageError::TooManyModules {
            count: modules.len(),
            max: MAX_MODULES,
        });
    }
    let mut bytes = 0u64;
    for (i, m) in modules.iter().enumerate() {
        let (index, path) = (i + 1, m.path.clone());
        let size = m.bytes.len() as u64;
        if size >= 1 << 32 {
            return Err(ImageError::ModuleTooLarge { index, path, size });
        }
        if m.string.len() + 1 > max {
            let len = m.string.len();
            return Err(ImageError::ModuleStringTooLong {
                index,
                path,
                len,
                max,
            });
        }
        if let Some(offset) = m.string.iter().position(|&b| b == 0) {
            return Err(ImageError::ModuleStringNul {
                index,
                path,
                offset,
            });
        }
        bytes += size.div_ceil(0x1000) * 0x1000;
    }
    let kernel_end = plan.segments.iter().map(|s| s.end()).max().unwrap_or(0);
    if kernel_end.div_ceil(0x1000) * 0x1000 + bytes > bootpack_proto::layout::KERNEL_CEILING {
        return Err(ImageError::ModulesBeyond4G { kernel_end, bytes });
    }
    Ok(())
}

/// [`layout`] with modules: their bytes follow the kernel's on disk; where
/// they go in memory is decided at boot.
pub fn layout_with_modules(
    boot: &Bootloader,
    kernel: &[u8],
    plan: &LoadPlan,
    cmdline: &[u8],
    modules: Vec<ModuleInput>,
    disk_size: impl FnOnce(u64) -> Result<u64, ImageError>,
) -> Result<Layout, ImageError> {
    let max = bootpack_proto::layout::CMDLINE_MAX;
    if cmdline.len() + 1 > max {
        return Err(ImageError::CmdlineTooLong {
            len: cmdline.len(),
            max,
        });
    }
    check_modules(plan, &modules)?;
    let sections = plan.sections.as_ref().map(|s| ElfSections {
        num: s.num,
        entsize: s.entsize,
        shndx: s.shstrndx,
        headers: &s.bytes,
    });
    // The record's length does not depend on sectors or sums: measure it
    // with placeholders first.
    let mut rec_modules: Vec<Module> = modules
        .iter()
        .map(|m| Module {
            data_sector: 0,
            size: m.bytes.len() as u64,
            sum: 0,
            string: &m.string,
        })
        .collect();
    let placeholder = vec![
        Segment {
            dest: 0,
            file_size: 0,
            mem_size: 0,
            data_sector: 0,
        };
        plan.segments.len()
    ];
    let rec_len = record::record_len(
        &Sums {
            segments: &placeholder,
            modules: &rec_modules,
            payload_sum: 0,
            data_sectors: 0,
        }
        .spec(plan, cmdline, sections),
    );
    if rec_len > RECORD_MAX {
        return Err(ImageError::RecordTooLarge {
            len: rec_len,
            segments: plan.segments.len(),
            modules: modules.len(),
            sections: sections.map_or(0, |s| s.headers.len()),
            max: RECORD_MAX,
        });
    }

    // Segment data follows the record, each on a sector boundary.
    let mut next = sectors(rec_len as u64);
    let mut segs = Vec::with_capacity(plan.segments.len());
    let mut data = Vec::new();
    let mut sum = Fletcher64::new();
    for s in &plan.segments {
        segs.push(Segment {
            dest: s.dest,
            file_size: s.file_size(),
            mem_size: s.mem_size,
            data_sector: next,
        });
        if !s.file.is_empty() {
            sum.update_padded(&kernel[s.file.clone()]);
            data.push((s.file.clone(), (PARTITION_START_LBA as u64 + next) * SECTOR));
            next += sectors(s.file_size());
        }
    }
    let mut module_at = Vec::with_capacity(modules.len());
    for (m, r) in modules.iter().zip(rec_modules.iter_mut()) {
        r.data_sector = next;
        r.sum = fletcher64(&m.bytes);
        module_at.push((PARTITION_START_LBA as u64 + next) * SECTOR);
        next += sectors(m.bytes.len() as u64);
    }
    let record_sectors = sectors(rec_len as u64);
    let payload_sum = sum.finish();
    let mut rec = vec![0u8; rec_len];
    let data_sectors = (next - record_sectors) as u32;
    record::encode(
        &Sums {
            segments: &segs,
            modules: &rec_modules,
            payload_sum,
            data_sectors,
        }
        .spec(plan, cmdline, sections),
        &mut rec,
    );

    let min = min_disk_bytes(next);
    let size = disk_size(min)?;
    if size < min || !size.is_multiple_of(SECTOR) {
        return Err(ImageError::DiskTooSmall { size, min });
    }
    let disk_sectors = size / SECTOR;
    let partition_sectors = disk_sectors - PARTITION_START_LBA as u64;
    if size > MAX_DISK_BYTES {
        return Err(ImageError::TooLarge {
            sectors: disk_sectors,
        });
    }

    let stage2 = pad_to_sectors(boot.stage2.to_vec());
    let stage2_sectors = stage2.len() as u64 / SECTOR;
    if stage2_sectors > STAGE2_MAX_SECTORS as u64
        || STAGE2_LBA as u64 + stage2_sectors > PARTITION_START_LBA as u64
    {
        return Err(ImageError::Stage2TooLarge {
            sectors: stage2_sectors,
            max: STAGE2_MAX_SECTORS,
        });
    }
    // The disk signature is derived from the content, so the same inputs
    // give the same image.
    let signature = (fletcher64(&rec) as u32 | 1).to_le_bytes();
    let mbr = build_mbr(boot.stage1, &stage2, signature, partition_sectors as u32)?;
    Ok(Layout {
        mbr,
        stage2,
        record: pad_to_sectors(rec),
        data,
        modules: modules.into_iter().zip(module_at).collect(),
        partition_sectors,
        disk_sectors,
        payload_sum,
    })
}

/// CHS for `lba` in the conventional 255-head, 63-sector geometry, or the
/// "beyond CHS" marker 1023/254/63 that partitioning tools write when the
/// address does not fit.
fn chs(lba: u32) -> CHS {
    CHS::from_lba_exact(lba, 1023, 255, 63).unwrap_or(CHS::new(1023, 254, 63))
}

fn build_mbr(
    stage1: &[u8],
    stage2: &[u8],
    signature: [u8; 4],
    partition_sectors: u32,
) -> Result<[u8; 512], ImageError> {
    if stage1.len() < stage1::CODE_LEN {
        return Err(ImageError::Stage1Layout);
    }
    let mut code = [0u8; stage1::CODE_LEN];
    code.copy_from_slice(&stage1[..stage1::CODE_LEN]);
    let get16 = |o: usize| u16::from_le_bytes([code[o], code[o + 1]]);
    let get32 = |o: usize| u32::from_le_bytes(code[o..o + 4].try_into().unwrap());
    if get32(stage1::STAGE2_LBA_OFFSET) != stage1::PLACEHOLDER_LBA
        || get16(stage1::STAGE2_SECTORS_OFFSET) != stage1::PLACEHOLDER_SECTORS
        || get16(stage1::STAGE2_SUM_OFFSET) != stage1::PLACEHOLDER_SUM
    {
        return Err(ImageError::Stage1Layout);
    }
    let o = stage1::STAGE2_LBA_OFFSET;
    code[o..o + 4].copy_from_slice(&STAGE2_LBA.to_le_bytes());
    let o = stage1::STAGE2_SECTORS_OFFSET;
    code[o..o + 2].copy_from_slice(&((stage2.len() as u64 / SECTOR) as u16).to_le_bytes());
    let o = stage1::STAGE2_SUM_OFFSET;
    code[o..o + 2].copy_from_slice(&stage1::stage2_sum(stage2).to_le_bytes());

    let mut header = MBRHeader::new(signature);
    header.bootstrap_code = code;
    let last = PARTITION_START_LBA + partition_sectors - 1;
    header.partition_1 = MBRPartitionEntry {
        boot: mbrman::BOOT_ACTIVE,
        first_chs: chs(PARTITION_START_LBA),
        sys: PARTITION_TYPE,
        last_chs: chs(last),
        starting_lba: PARTITION_START_LBA,
        sectors: partition_sectors,
    };
    let mut sector = Cursor::new([0u8; 512]);
    header
        .write_into(&mut sector)
        .expect("an MBR header always fits in 512 bytes");
    Ok(sector.into_inner())
}

/// The largest disk an MBR partition table describes: sector counts are 32
/// bits.
pub const MAX_DISK_BYTES: u64 = u32::MAX as u64 * SECTOR;

/// Runs `fill` on a fresh temporary file beside `out` and renames it to
/// `out` if `fill` succeeds; removes it otherwise.
pub fn write_atomically(
    out: &Path,
    fill: impl FnOnce(&mut File) -> io::Result<()>,
) -> Result<(), ImageError> {
    let io_err = |source| ImageError::Io {
        path: out.to_path_buf(),
        source,
    };
    let dir = match out.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = out
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.bootpack-{}.tmp", std::process::id()));
    // Announced before it exists, so an interrupt at any point removes it.
    crate::interrupt::set_temporary(Some(&tmp));
    let result = File::create(&tmp).and_then(|mut f| {
        fill(&mut f)?;
        f.flush()
    });
    let result = result.and_then(|()| std::fs::rename(&tmp, out));
    crate::interrupt::set_temporary(None);
    match result {
        Ok(()) => Ok(()),
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            Err(io_err(e))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::{KernelFormat, LoadSegment, Protocol};
    use bootpack_proto::record::Record;

    fn stage1() -> Vec<u8> {
        let mut s = vec![0xEEu8; 512];
        s[stage1::STAGE2_LBA_OFFSET..][..4].copy_from_slice(&stage1::PLACEHOLDER_LBA.to_le_bytes());
        s[stage1::STAGE2_SECTORS_OFFSET..][..2]
            .copy_from_slice(&stage1::PLACEHOLDER_SECTORS.to_le_bytes());
        s[stage1::STAGE2_SUM_OFFSET..][..2].copy_from_slice(&stage1::PLACEHOLDER_SUM.to_le_bytes());
        s
    }

    fn plan() -> LoadPlan {
        LoadPlan {
            format: KernelFormat::Elf32,
            protocol: Protocol::Multiboot1,
            mb_flags: 3,
            header_offset: 0,
            sections: None,
            load_base: 0x100000,
            entry: 0x100000,
            segments: vec![
                LoadSegment {
                    dest: 0x100000,
                    file: 0..1000,
                    mem_size: 0x2000,
                },
                LoadSegment {
                    dest: 0x200000,
                    file: 1000..1000,
                    mem_size: 0x1000,
                },
                LoadSegment {
                    dest: 0x300000,
                    file: 1000..1700,
                    mem_size: 700,
                },
            ],
        }
    }

    #[test]
    fn lays_out_mbr_stage2_record_and_data() {
        let kernel: Vec<u8> = (0..1700).map(|i| i as u8).collect();
        let s1 = stage1();
        let boot = Bootloader {
            stage1: &s1,
            stage2: &[7u8; 600],
        };
        let l = layout(&boot, &kernel, &plan(), b"k a b", Ok).unwrap();
        // Stage 1 patched: LBA 1, two sectors, the word sum.
        assert_eq!(&l.mbr[0x1AC..0x1B0], &1u32.to_le_bytes());
        assert_eq!(&l.mbr[0x1B0..0x1B2], &2u16.to_le_bytes());
        assert_eq!(
            &l.mbr[0x1B2..0x1B4],
            &stage1::stage2_sum(&l.stage2).to_le_bytes()
        );
        assert_eq!(&l.mbr[0x1FE..], &[0x55, 0xAA]);
        // One active 0x7F partition at 2048, a whole MiB.
        let p = &l.mbr[0x1BE..0x1CE];
        assert_eq!((p[0], p[4]), (0x80, 0x7F));
        assert_eq!(&p[8..12], &2048u32.to_le_bytes());
        assert_eq!(&p[12..16], &2048u32.to_le_bytes());
        assert_eq!(l.disk_sectors, 4096);
        // The record reads back and points at the data.
        let r = Record::parse(&l.record).unwrap();
        assert_eq!(r.cmdline(), b"k a b");
        let segs: Vec<_> = r.segments().collect();
        assert_eq!((segs[0].data_sector, segs[0].file_size), (1, 1000));
        assert_eq!((segs[1].data_sector, segs[1].file_size), (3, 0));
        assert_eq!((segs[2].data_sector, segs[2].file_size), (3, 700));
        assert_eq!(
            l.data,
            vec![(0..1000, (2048 + 1) * 512), (1000..1700, (2048 + 3) * 512)]
        );
        assert_eq!(r.data_sectors(), 4);
    }

    #[test]
    fn refuses_an_overlong_command_line_and_a_stale_stage1() {
        let s1 = stage1();
        let boot = Bootloader {
            stage1: &s1,
            stage2: &[7u8; 600],
        };
        let long = vec![b'x'; 8192];
        assert!(matches!(
            layout(&boot, &[0; 1700], &plan(), &long, Ok),
            Err(ImageError::CmdlineTooLong {
                len: 8192,
                max: 8192
            })
        ));
        assert!(layout(&boot, &[0; 1700], &plan(), &long[..8191], Ok).is_ok());
        assert!(matches!(
            layout(&boot, &[0; 1700], &plan(), b"k", |_| Ok(1 << 20)),
            Err(ImageError::DiskTooSmall {
                size: 0x100000,
                min: 0x200000
            })
        ));
        let big = layout(&boot, &[0; 1700], &plan(), b"k", |_| Ok(1 << 30)).unwrap();
        assert_eq!(
            (big.disk_sectors, big.partition_sectors),
            (1 << 21, (1 << 21) - 2048)
        );
        let stale = Bootloader {
            stage1: &[0u8; 512],
            stage2: &[7u8; 600],
        };
        assert!(matches!(
            layout(&stale, &[0; 1700], &plan(), b"k", Ok),
            Err(ImageError::Stage1Layout)
        ));
    }

    #[test]
    fn writes_atomically_and_sparsely() {
        let dir = std::env::temp_dir().join(format!("bootpack-image-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let out = dir.join("disk.img");
        let mut kernel = vec![0u8; 1700];
        kernel[1500] = 9;
        let s1 = stage1();
        let boot = Bootloader {
            stage1: &s1,
            stage2: &[7u8; 600],
        };
        let l = layout(&boot, &kernel, &plan(), b"k", Ok).unwrap();
        write_atomically(&out, |f| {
            crate::formats::write(crate::Format::Raw, &l.disk(&kernel), f, &mut |_, _| {})
        })
        .unwrap();
        let disk = std::fs::read(&out).unwrap();
        assert_eq!(disk.len() as u64, l.disk_bytes());
        assert_eq!(&disk[..512], &l.mbr);
        assert_eq!(disk[(2048 + 3) * 512 + 500], 9);
        // A failing fill leaves neither the output nor a temporary file.
        let out2 = dir.join("never.img");
        let err = write_atomically(&out2, |_| Err(io::Error::other("disk full")));
        assert!(err.is_err() && !out2.exists());
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    fn module(len: usize, string: &str) -> ModuleInput {
        ModuleInput {
            path: PathBuf::from(format!("m{len}")),
            bytes: (0..len).map(|i| (i * 3) as u8 | 1).collect(),
            string: string.as_bytes().to_vec(),
        }
    }

    #[test]
    fn modules_follow_the_kernel_on_disk() {
        let kernel: Vec<u8> = (0..1700).map(|i| i as u8).collect();
        let s1 = stage1();
        let boot = Bootloader {
            stage1: &s1,
            stage2: &[7u8; 600],
        };
        let mods = vec![module(513, "initrd x=1"), module(0, ""), module(10, "c")];
        let l = layout_with_modules(&boot, &kernel, &plan(), b"k", mods, Ok).unwrap();
        let r = Record::parse(&l.record).unwrap();
        assert_eq!(r.module_count(), 3);
        let m: Vec<_> = r.modules().collect();
        // Kernel data in sectors 1..5, then 2 + 0 + 1 sectors of modules.
        assert_eq!((m[0].data_sector, m[0].size), (5, 513));
        assert_eq!((m[1].data_sector, m[1].size), (7, 0));
        assert_eq!((m[2].data_sector, m[2].size), (7, 10));
        assert_eq!(m[0].string, b"initrd x=1\0");
        assert_eq!(m[1].string, b"\0");
        assert_eq!(m[0].sum, fletcher64(&l.modules[0].0.bytes));
        assert_eq!(r.data_sectors(), 7);
        let disk = l.disk(&kernel);
        let mut got = vec![0u8; 513];
        disk.read_at((2048 + 5) * 512, &mut got);
        assert_eq!(got, l.modules[0].0.bytes);
    }

    #[test]
    fn refuses_bad_modules() {
        let s1 = stage1();
        let boot = Bootloader {
            stage1: &s1,
            stage2: &[7u8; 600],
        };
        let try_mods = |mods: Vec<ModuleInput>| {
            layout_with_modules(&boot, &[0; 1700], &plan(), b"k", mods, Ok).unwrap_err()
        };
        let many = (0..129).map(|_| module(1, "")).collect();
        assert!(matches!(
            try_mods(many),
            ImageError::TooManyModules {
                count: 129,
                max: 128
            }
        ));
        assert!(matches!(
            try_mods(vec![module(1, "a"), module(1, "b\0c")]),
            ImageError::ModuleStringNul {
                index: 2,
                offset: 1,
                ..
            }
        ));
        assert!(matches!(
            try_mods(vec![module(1, &"s".repeat(8192))]),
            ImageError::ModuleStringTooLong { index: 1, .. }
        ));
        let mut high = plan();
        high.segments[2].dest = 0xFFFF_0000;
        let e = layout_with_modules(
            &boot,
            &[0; 1700],
            &high,
            b"k",
            vec![module(0x20000, "")],
            Ok,
        )
        .unwrap_err();
        assert!(matches!(e, ImageError::ModulesBeyond4G { .. }), "{e}");
    }
}
