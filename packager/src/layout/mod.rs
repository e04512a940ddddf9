//! Laying out the disk: what goes where, decided before anything is
//! written.
//!
//! ```text
//! LBA 0            stage 1 (patched with stage 2's place and sum) and a
//!                  plain MBR (--table mbr) or a protective MBR (gpt)
//! LBA 1-33         gpt: header and 128-entry array (mbr: zeros)
//! LBA 34..         stage 2 (the same place for both tables)
//! LBA 2048..       the kernel partition (mbr: type 0x7F, active; gpt:
//!                  bootpack's type GUID, "bootpack"): configuration
//!                  record, then each segment's file bytes, then each
//!                  module's bytes, each starting on a sector boundary
//! last 33 sectors  gpt: backup array and header
//! ```
//!
//! The steps, each its own function: `check_inputs` (command line,
//! modules), `measure_record` (the record's length), `place` (sectors
//! and sums of the data, the record itself), `disk_sectors` (the disk's
//! and partition's size, and each table's limit), then the table writers
//! [`mbr`] and [`gpt`].

use crate::proto::checksum::{fletcher64, Fletcher64};
use crate::proto::layout::{
    CMDLINE_MAX, KERNEL_CEILING, PARTITION_START_LBA, SECTOR, STAGE2_LBA, STAGE2_MAX_SECTORS,
};
use crate::proto::record::{
    self, ElfSections, Module, RecordSpec, Segment, MAX_MODULES, RECORD_MAX,
};

use crate::disk::{Disk, Extent};
use crate::image::{ImageError, ModuleInput};
use crate::kernel::LoadPlan;

pub mod esp;
pub mod gpt;
pub mod mbr;

pub use esp::{Esp, Firmware};

const MIB_SECTORS: u64 = 2048;

/// The partition table an image gets.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Table {
    /// A plain MBR with the kernel partition (type 0x7F, active); disks up
    /// to 2 TiB.
    #[default]
    Mbr,
    /// A GPT behind a protective MBR; no 2 TiB limit.
    Gpt,
}

impl Table {
    /// The name the CLI uses (`--table NAME`).
    pub fn name(self) -> &'static str {
        match self {
            Table::Mbr => "mbr",
            Table::Gpt => "gpt",
        }
    }

    /// The largest disk the table describes, if it limits the size: an MBR
    /// counts sectors in 32 bits (2 TiB); a GPT in 64.
    pub fn max_disk_bytes(self) -> Option<u64> {
        match self {
            Table::Mbr => Some(u32::MAX as u64 * SECTOR),
            Table::Gpt => None,
        }
    }
}

impl std::fmt::Display for Table {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Table {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "mbr" => Ok(Table::Mbr),
            "gpt" => Ok(Table::Gpt),
            _ => Err(format!(
                "unknown partition table {s:?}; the tables are mbr and gpt"
            )),
        }
    }
}

/// The two boot stages as flat binaries.
#[derive(Clone, Copy, Debug)]
pub struct Bootloader<'a> {
    /// At least the 440 bytes of MBR boot code, with the patch placeholders.
    pub stage1: &'a [u8],
    /// Stage 2, written to the gap before the first partition.
    pub stage2: &'a [u8],
}

/// Everything about the image that is decided before writing it.
#[derive(Clone, Debug)]
pub struct Layout {
    /// The partition table.
    pub table: Table,
    /// Sector 0, complete.
    pub mbr: [u8; 512],
    /// The GPT (`Table::Gpt` only).
    pub gpt: Option<gpt::Gpt>,
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
    /// The EFI system partition (images for UEFI), after the kernel
    /// partition.
    pub esp: Option<Esp>,
    /// The checksum of the kernel's loaded bytes (the record's payload sum).
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
        if let Some(e) = &self.esp {
            extents.push(Extent {
                offset: e.start_lba * SECTOR,
                data: &e.image,
            });
        }
        if let Some(g) = &self.gpt {
            extents.push(Extent {
                offset: SECTOR,
                data: &g.primary,
            });
            extents.push(Extent {
                offset: g.backup_lba * SECTOR,
                data: &g.backup,
            });
        }
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

/// Sectors a table needs after the kernel partition (the GPT's backup).
fn tail_sectors(table: Table) -> u64 {
    match table {
        Table::Mbr => 0,
        Table::Gpt => gpt::BACKUP_SECTORS,
    }
}

/// The smallest MBR disk that holds contents of `content_sectors` sectors
/// in the kernel partition: the partition rounded up to whole MiB.
pub fn min_disk_bytes(content_sectors: u64) -> u64 {
    min_disk_bytes_for(Table::Mbr, content_sectors)
}

/// [`min_disk_bytes`] for either table: a GPT's backup (33 sectors, and
/// the partition ends one sector before it) comes on top of the contents.
pub fn min_disk_bytes_for(table: Table, content_sectors: u64) -> u64 {
    let need = content_sectors + tail_sectors(table);
    (PARTITION_START_LBA as u64 + need.div_ceil(MIB_SECTORS) * MIB_SECTORS) * SECTOR
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
            video: plan.video,
            efi: plan.efi,
        }
    }
}

/// Decides where everything goes and builds the MBR and record (a plain
/// MBR). The disk size is what `disk_size` chooses given the smallest size
/// that holds the contents (whole MiB); it must be a multiple of 512 and at
/// least that. The kernel partition runs to the end of the disk.
pub fn layout(
    boot: &Bootloader,
    kernel: &[u8],
    plan: &LoadPlan,
    cmdline: &[u8],
    disk_size: impl FnOnce(u64) -> Result<u64, ImageError>,
) -> Result<Layout, ImageError> {
    layout_with_modules(boot, kernel, plan, cmdline, Vec::new(), disk_size)
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
    layout_firmware(
        Table::Mbr,
        None,
        boot,
        kernel,
        plan,
        cmdline,
        modules,
        disk_size,
    )
}

/// The layout with the partition table `table` (with a GPT the kernel
/// partition ends where the backup table begins) and an ESP holding
/// `uefi_loader` when it is given (an image for UEFI): the ESP takes the disk's last [`esp::ESP_SECTORS`]
/// sectors before the GPT's backup, and the kernel partition ends before
/// it.
#[allow(clippy::too_many_arguments)]
pub fn layout_firmware(
    table: Table,
    uefi_loader: Option<&[u8]>,
    boot: &Bootloader,
    kernel: &[u8],
    plan: &LoadPlan,
    cmdline: &[u8],
    modules: Vec<ModuleInput>,
    disk_size: impl FnOnce(u64) -> Result<u64, ImageError>,
) -> Result<Layout, ImageError> {
    check_inputs(plan, cmdline, &modules)?;
    let sections = plan.sections.as_ref().map(|s| ElfSections {
        num: s.num,
        entsize: s.entsize,
        shndx: s.shstrndx,
        headers: &s.bytes,
    });
    let rec_len = measure_record(plan, cmdline, &modules, sections)?;
    let placed = place(kernel, plan, cmdline, &modules, sections, rec_len);
    // The ESP starts on a MiB boundary: with a GPT the backup's 33
    // sectors follow the last usable one, so a MiB more is reserved.
    let esp_reserve = match (uefi_loader.is_some(), table) {
        (false, _) => 0,
        (true, Table::Mbr) => esp::ESP_SECTORS,
        (true, Table::Gpt) => esp::ESP_SECTORS + MIB_SECTORS,
    };
    let (disk_sectors, usable_sectors) = disk_sectors(table, placed.end + esp_reserve, disk_size)?;
    let partition_sectors = if uefi_loader.is_some() {
        let end = PARTITION_START_LBA as u64 + usable_sectors;
        let esp_start = (end - esp::ESP_SECTORS) / MIB_SECTORS * MIB_SECTORS;
        if esp_start < PARTITION_START_LBA as u64 + placed.end {
            return Err(ImageError::DiskTooSmall {
                size: disk_sectors * SECTOR,
                min: min_disk_bytes_for(table, placed.end + esp_reserve + MIB_SECTORS),
            });
        }
        esp_start - PARTITION_START_LBA as u64
    } else {
        usable_sectors
    };
    let esp = match uefi_loader {
        None => None,
        Some(loader) => {
            let start_lba = PARTITION_START_LBA as u64 + partition_sectors;
            let hidden = u32::try_from(start_lba).unwrap_or(u32::MAX);
            let image = crate::fat::esp_image(loader, hidden)
                .map_err(|e| ImageError::UefiLoaderTooLarge { bytes: e.bytes })?;
            Some(Esp { start_lba, image })
        }
    };

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
    // The disk signature and GUIDs are derived from the content, so the
    // same inputs give the same image.
    let seed = fletcher64(&placed.record);
    let (mbr, gpt) = match table {
        Table::Mbr => {
            let signature = (seed as u32 | 1).to_le_bytes();
            let mut mbr = mbr::plain(boot.stage1, &stage2, signature, partition_sectors as u32)?;
            if let Some(e) = &esp {
                mbr::add_esp(&mut mbr, e.start_lba as u32, esp::ESP_SECTORS as u32);
            }
            (mbr, None)
        }
        Table::Gpt => (
            mbr::protective(boot.stage1, &stage2, disk_sectors)?,
            Some(gpt::build_with_esp(
                disk_sectors,
                seed ^ disk_sectors.rotate_left(32),
                esp.as_ref().map(|e| (e.start_lba, esp::ESP_SECTORS)),
            )),
        ),
    };
    Ok(Layout {
        table,
        mbr,
        gpt,
        stage2,
        record: pad_to_sectors(placed.record),
        data: placed.data,
        modules: modules.into_iter().zip(placed.module_at).collect(),
        partition_sectors,
        disk_sectors,
        esp,
        payload_sum: placed.payload_sum,
    })
}

/// The command line and the modules, on their own: lengths, NULs, count,
/// and whether the modules fit below 4 GiB after the kernel.
fn check_inputs(
    plan: &LoadPlan,
    cmdline: &[u8],
    modules: &[ModuleInput],
) -> Result<(), ImageError> {
    let max = CMDLINE_MAX;
    if cmdline.len() + 1 > max {
        return Err(ImageError::CmdlineTooLong {
            len: cmdline.len(),
            max,
        });
    }
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
    if kernel_end.div_ceil(0x1000) * 0x1000 + bytes > KERNEL_CEILING {
        return Err(ImageError::ModulesBeyond4G { kernel_end, bytes });
    }
    Ok(())
}

/// The record's length, which depends on neither sectors nor sums: it is
/// measured with placeholders and refused if over [`RECORD_MAX`].
fn measure_record(
    plan: &LoadPlan,
    cmdline: &[u8],
    modules: &[ModuleInput],
    sections: Option<ElfSections>,
) -> Result<usize, ImageError> {
    let rec_modules = record_modules(modules);
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
    Ok(rec_len)
}

/// The record's module entries, sectors and sums still to be filled.
fn record_modules(modules: &[ModuleInput]) -> Vec<Module<'_>> {
    modules
        .iter()
        .map(|m| Module {
            data_sector: 0,
            size: m.bytes.len() as u64,
            sum: 0,
            string: &m.string,
        })
        .collect()
}

/// Where the data goes in the partition, and the record that says so.
struct Placed {
    record: Vec<u8>,
    data: Vec<(std::ops::Range<usize>, u64)>,
    module_at: Vec<u64>,
    payload_sum: u64,
    /// Partition sectors used (record and data).
    end: u64,
}

/// Segment data follows the record, then the modules, each on a sector
/// boundary; computes the sums and encodes the record.
fn place(
    kernel: &[u8],
    plan: &LoadPlan,
    cmdline: &[u8],
    modules: &[ModuleInput],
    sections: Option<ElfSections>,
    rec_len: usize,
) -> Placed {
    let record_sectors = sectors(rec_len as u64);
    let mut next = record_sectors;
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
    let mut rec_modules = record_modules(modules);
    let mut module_at = Vec::with_capacity(modules.len());
    for (m, r) in modules.iter().zip(rec_modules.iter_mut()) {
        r.data_sector = next;
        r.sum = fletcher64(&m.bytes);
        module_at.push((PARTITION_START_LBA as u64 + next) * SECTOR);
        next += sectors(m.bytes.len() as u64);
    }
    let payload_sum = sum.finish();
    let mut rec = vec![0u8; rec_len];
    record::encode(
        &Sums {
            segments: &segs,
            modules: &rec_modules,
            payload_sum,
            data_sectors: (next - record_sectors) as u32,
        }
        .spec(plan, cmdline, sections),
        &mut rec,
    );
    Placed {
        record: rec,
        data,
        module_at,
        payload_sum,
        end: next,
    }
}

/// The disk's size in sectors (what `disk_size` picks given the minimum)
/// and the kernel partition's: to the disk's end (MBR, at most 2 TiB) or
/// to the GPT's last usable LBA.
fn disk_sectors(
    table: Table,
    content_sectors: u64,
    disk_size: impl FnOnce(u64) -> Result<u64, ImageError>,
) -> Result<(u64, u64), ImageError> {
    let min = min_disk_bytes_for(table, content_sectors);
    let size = disk_size(min)?;
    if size < min || !size.is_multiple_of(SECTOR) {
        return Err(ImageError::DiskTooSmall { size, min });
    }
    let disk_sectors = size / SECTOR;
    let partition_sectors = match table {
        Table::Mbr => {
            if size > Table::Mbr.max_disk_bytes().unwrap_or(u64::MAX) {
                return Err(ImageError::TooLarge {
                    sectors: disk_sectors,
                });
            }
            disk_sectors - PARTITION_START_LBA as u64
        }
        Table::Gpt => gpt::last_usable(disk_sectors) + 1 - PARTITION_START_LBA as u64,
    };
    Ok((disk_sectors, partition_sectors))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::kernel::{KernelFormat, LoadSegment, Protocol};
    use crate::proto::stage1;

    /// A stand-in stage 1: filler with the patch placeholders in place.
    pub(crate) fn stage1() -> Vec<u8> {
        let mut s = vec![0xEEu8; 512];
        s[stage1::STAGE2_LBA_OFFSET..][..4].copy_from_slice(&stage1::PLACEHOLDER_LBA.to_le_bytes());
        s[stage1::STAGE2_SECTORS_OFFSET..][..2]
            .copy_from_slice(&stage1::PLACEHOLDER_SECTORS.to_le_bytes());
        s[stage1::STAGE2_SUM_OFFSET..][..2].copy_from_slice(&stage1::PLACEHOLDER_SUM.to_le_bytes());
        s
    }

    /// A Multiboot 1 ELF32 plan loading at 1 MiB with these segments.
    pub(crate) fn plan_of(segments: Vec<LoadSegment>) -> LoadPlan {
        LoadPlan {
            format: KernelFormat::Elf32,
            protocol: Protocol::Multiboot1,
            mb_flags: 3,
            header_offset: 0,
            sections: None,
            load_base: 0x100000,
            video: crate::proto::video::Request::NONE,
            efi: Default::default(),
            entry: 0x100000,
            segments,
        }
    }

    fn plan() -> LoadPlan {
        plan_of(vec![LoadSegment {
            dest: 0x100000,
            file: 0..1000,
            mem_size: 0x2000,
        }])
    }

    fn lay(table: Table, size: Option<u64>) -> Result<Layout, ImageError> {
        let s1 = stage1();
        let boot = Bootloader {
            stage1: &s1,
            stage2: &[7u8; 600],
        };
        layout_firmware(
            table,
            None,
            &boot,
            &[1; 1000],
            &plan(),
            b"k",
            Vec::new(),
            |min| Ok(size.unwrap_or(min)),
        )
    }

    #[test]
    fn gpt_images_have_a_protective_mbr_and_both_tables() {
        let l = lay(Table::Gpt, None).unwrap();
        // Record + 2 data sectors and the 33-sector backup fit one MiB.
        assert_eq!(l.disk_sectors, 4096);
        assert_eq!(l.partition_sectors, 4096 - 33 - 2048);
        // Stage 1 patched as for MBR; one 0xEE entry from LBA 1, inactive;
        // no disk signature.
        assert_eq!(&l.mbr[0x1AC..0x1B0], &STAGE2_LBA.to_le_bytes());
        let e = &l.mbr[0x1BE..0x1CE];
        assert_eq!((e[0], e[4]), (0x00, 0xEE));
        assert_eq!(&e[8..12], &1u32.to_le_bytes());
        assert_eq!(&e[12..16], &4095u32.to_le_bytes());
        assert!(l.mbr[0x1CE..0x1FE].iter().all(|&b| b == 0));
        assert_eq!(&l.mbr[0x1B8..0x1BC], &[0; 4]);
        let g = l.gpt.as_ref().unwrap();
        assert_eq!(&g.primary[..8], b"EFI PART");
        assert_eq!(g.backup_lba, 4096 - 33);
        // The extents: MBR and primary GPT touch, stage 2 right after.
        let disk = l.disk(&[1; 1000]);
        let mut buf = vec![0u8; 512];
        disk.read_at(34 * 512, &mut buf);
        assert_eq!(buf, l.stage2[..512]);
        disk.read_at(4095 * 512, &mut buf);
        assert_eq!(&buf[..8], b"EFI PART");
    }

    #[test]
    fn mbr_stops_at_2_tib_and_gpt_does_not() {
        let e = lay(Table::Mbr, Some(3 << 40)).unwrap_err();
        assert!(matches!(e, ImageError::TooLarge { .. }));
        assert!(
            e.to_string()
                .ends_with("MBR partitions end at 2 TiB, a GPT has no such limit"),
            "{e}"
        );
        let l = lay(Table::Gpt, Some(3 << 40)).unwrap();
        assert_eq!(l.disk_sectors, 3 << 31);
        // The protective entry says as much as 32 bits can.
        assert_eq!(&l.mbr[0x1BE + 12..0x1BE + 16], &u32::MAX.to_le_bytes());
    }

    #[test]
    fn tables_parse_by_name() {
        assert_eq!("gpt".parse::<Table>(), Ok(Table::Gpt));
        assert_eq!("MBR".parse::<Table>(), Ok(Table::Mbr));
        assert!("apm".parse::<Table>().unwrap_err().contains("mbr and gpt"));
        assert_eq!(Table::default(), Table::Mbr);
    }
}
