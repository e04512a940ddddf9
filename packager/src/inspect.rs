//! `bootpack inspect`: what is in a disk image, with every checksum
//! verified.
//!
//! Works on the formats whose disk bytes can be read without a full
//! conversion: raw, fixed VHD (raw bytes + footer) and the Google Compute
//! Engine tar.gz (read forward only as far as the kernel's data reaches, so
//! the empty rest of a large disk is never expanded), stream-optimized VMDK
//! and qcow2 (through [`crate::reader`]).

use std::fs::File;
use std::io::{self, Read};
use std::os::unix::fs::FileExt;
use std::path::Path;

use crate::proto::bounds;
use crate::proto::checksum::Fletcher64;
use crate::proto::layout::{PARTITION_TYPE, SECTOR};
use crate::proto::ptable::{self, Invalid, SectorReader, Table, TableError, PROTECTIVE_MBR_TYPE};
use crate::proto::record::{self, Record};
use crate::proto::stage1;
use serde::Serialize;

use crate::bootloader::{STAGE1, STAGE2};
use crate::{decompress, reader};

/// The disk bytes of an image, whatever its container.
trait DiskReader {
    /// Fills `buf` from disk offset `at`; bytes past the disk's end read as
    /// an error.
    fn read_at(&mut self, at: u64, buf: &mut [u8]) -> io::Result<()>;
}

impl DiskReader for reader::Vmdk {
    fn read_at(&mut self, at: u64, buf: &mut [u8]) -> io::Result<()> {
        reader::Vmdk::read_at(self, at, buf)
    }
}

impl DiskReader for reader::Qcow2 {
    fn read_at(&mut self, at: u64, buf: &mut [u8]) -> io::Result<()> {
        reader::Qcow2::read_at(self, at, buf)
    }
}

struct FileDisk {
    file: File,
    size: u64,
}

impl DiskReader for FileDisk {
    fn read_at(&mut self, at: u64, buf: &mut [u8]) -> io::Result<()> {
        if at
            .checked_add(buf.len() as u64)
            .is_none_or(|end| end > self.size)
        {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("offset {at:#x} is past the disk's end"),
            ));
        }
        self.file.read_exact_at(buf, at)
    }
}

/// A forward-only stream (the decompressed disk.raw of a tar.gz). Its first
/// [`STREAM_KEEP`] bytes (MBR, stage 2, the record) are kept for reading
/// again; beyond them reads must go forward, as inspect's do (segments and
/// modules in disk order). Memory stays bounded whatever offsets a damaged
/// image names.
struct StreamDisk<R> {
    stream: R,
    prefix: Vec<u8>,
    /// Bytes consumed from the stream.
    pos: u64,
}

const STREAM_KEEP: u64 = 4 << 20;

fn past_end(at: u64) -> io::Error {
    io::Error::new(
        io::ErrorKind::UnexpectedEof,
        format!("offset {at:#x} is past the disk's end"),
    )
}

impl<R: Read> StreamDisk<R> {
    fn new(stream: R) -> Self {
        StreamDisk {
            stream,
            prefix: Vec::new(),
            pos: 0,
        }
    }
}

impl<R: Read> DiskReader for StreamDisk<R> {
    fn read_at(&mut self, at: u64, buf: &mut [u8]) -> io::Result<()> {
        let end = at
            .checked_add(buf.len() as u64)
            .ok_or_else(|| past_end(at))?;
        // Keep the beginning.
        let keep_to = end.min(STREAM_KEEP);
        if self.pos < keep_to {
            let got = (&mut self.stream)
                .take(keep_to - self.pos)
                .read_to_end(&mut self.prefix)?;
            self.pos += got as u64;
            if self.pos < keep_to {
                return Err(past_end(at));
            }
        }
        let kept = self.prefix.len() as u64;
        let mut done = 0usize;
        if at < kept {
            let n = (end.min(kept) - at) as usize;
            buf[..n].copy_from_slice(&self.prefix[at as usize..at as usize + n]);
            done = n;
        }
        if done == buf.len() {
            return Ok(());
        }
        let from = at + done as u64;
        if from < self.pos {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                format!(
                    "offset {from:#x} lies behind data already read from the compressed archive"
                ),
            ));
        }
        let skip = from - self.pos;
        let skipped = io::copy(&mut (&mut self.stream).take(skip), &mut io::sink())?;
        self.pos += skipped;
        if skipped < skip {
            return Err(past_end(at));
        }
        self.stream.read_exact(&mut buf[done..]).map_err(|e| {
            if e.kind() == io::ErrorKind::UnexpectedEof {
                past_end(at)
            } else {
                e
            }
        })?;
        self.pos += (buf.len() - done) as u64;
        Ok(())
    }
}

/// Sector reads for the partition-table reader stage 2 uses too
/// (proto::ptable), over any container.
struct Sectors<'a> {
    disk: &'a mut dyn DiskReader,
    buf: Vec<u8>,
}

impl SectorReader for Sectors<'_> {
    type Error = io::Error;

    fn read(&mut self, lba: u64, count: u32) -> io::Result<&[u8]> {
        self.buf.resize(count as usize * SECTOR as usize, 0);
        let at = lba.checked_mul(SECTOR).ok_or_else(|| past_end(u64::MAX))?;
        self.disk.read_at(at, &mut self.buf)?;
        Ok(&self.buf)
    }
}

/// What stops an inspection (a damaged or foreign image is not an error: it is reported in [`Inspection::problems`]).
#[derive(Debug, thiserror::Error)]
pub enum InspectError {
    /// The image could not be read.
    #[error("{path}: cannot read: {source}")]
    Io {
        /// The image file.
        path: String,
        /// Why it could not be read.
        source: io::Error,
    },
    /// A .tar.gz that holds no `disk.raw`.
    #[error("{path}: a .tar.gz without a disk.raw entry: not a Google Compute Engine image")]
    NoDiskRaw {
        /// The archive.
        path: String,
    },
}

/// A partition table entry.
#[derive(Clone, Debug, Serialize)]
pub struct Partition {
    /// Its number, from 1 (its slot in the table plus one, as in sda1).
    pub index: usize,
    /// Whether it is marked bootable.
    pub active: bool,
    /// Its MBR type byte.
    pub kind: u8,
    /// Its first sector.
    pub start_lba: u32,
    /// Its length in sectors.
    pub sectors: u32,
}

/// The GPT and its bootpack partition.
#[derive(Clone, Debug, Serialize)]
pub struct Gpt {
    /// The disk's GUID.
    pub disk_guid: String,
    /// The kernel partition's entry number, from 1 (as sgdisk numbers them).
    pub index: u32,
    /// The kernel partition's type GUID (bootpack's own).
    pub type_guid: String,
    /// The kernel partition's unique GUID.
    pub partition_guid: String,
    /// The kernel partition's name.
    pub name: String,
    /// Where the kernel partition starts.
    pub start_lba: u64,
    /// Its length in sectors.
    pub sectors: u64,
    /// The first sector partitions may use.
    pub first_usable_lba: u64,
    /// The last sector partitions may use.
    pub last_usable_lba: u64,
    /// Where the header says the backup header is.
    pub backup_lba: u64,
}

/// bootpack's bootloader as found in the image.
#[derive(Clone, Debug, Serialize)]
pub struct Bootloader {
    /// "0.1.0 (this bootpack)" or "another bootpack version".
    pub version: String,
    /// Where stage 2 starts (the sector stage 1 reads it from).
    pub stage2_lba: u32,
    /// Stage 2's length in sectors.
    pub stage2_sectors: u16,
    /// Whether stage 2's bytes match the checksum stage 1 carries.
    pub stage2_checksum_ok: bool,
}

/// The EFI system partition and the UEFI loader on it.
#[derive(Clone, Debug, Serialize)]
pub struct EspInfo {
    /// Its number, from 1 (MBR slot or GPT entry).
    pub index: u32,
    /// Its first sector.
    pub start_lba: u64,
    /// Its length in sectors.
    pub sectors: u64,
    /// `\EFI\BOOT\BOOTX64.EFI`'s size in bytes (null if it is missing).
    pub loader_bytes: Option<u64>,
    /// bootpack's UEFI loader version ("0.1.0"), null if the file is not
    /// bootpack's.
    pub loader_version: Option<String>,
    /// Whether the file is byte for byte the loader this bootpack embeds.
    pub loader_is_this_bootpack: bool,
    /// The file's Fletcher-64 checksum in hex (as `kernel.checksum`).
    pub loader_checksum: Option<String>,
}

/// The most of an ESP inspect reads (bootpack's is 4 MiB).
const ESP_READ_MAX: u64 = 64 << 20;

/// Finds the ESP (MBR type 0xEF, or the GPT's ESP type GUID) and reads
/// its loader; a problem when bootpack's ESP cannot be read.
fn inspect_esp(
    partitions: &[Partition],
    gpt: Option<&ptable::GptInfo>,
    disk: &mut dyn DiskReader,
) -> Result<Option<EspInfo>, String> {
    let found = match gpt {
        None => partitions
            .iter()
            .find(|p| p.kind == crate::layout::esp::ESP_MBR_TYPE)
            .map(|p| (p.index as u32, p.start_lba as u64, p.sectors as u64)),
        Some(g) => {
            let len = g.entry_count as u64 * g.entry_size as u64;
            if g.entry_size < 128 || len > ptable::MAX_ENTRY_ARRAY {
                return Ok(None);
            }
            let mut array = vec![0u8; len as usize];
            disk.read_at(g.entries_lba * SECTOR, &mut array)
                .map_err(|e| format!("cannot read the GPT entries: {e}"))?;
            array
                .chunks_exact(g.entry_size as usize)
                .enumerate()
                .find(|(_, e)| e[..16] == crate::layout::esp::ESP_TYPE_GUID.0)
                .map(|(i, e)| {
                    let first = u64::from_le_bytes(e[32..40].try_into().unwrap());
                    let last = u64::from_le_bytes(e[40..48].try_into().unwrap());
                    (i as u32 + 1, first, (last + 1).saturating_sub(first))
                })
        }
    };
    let Some((index, start_lba, sectors)) = found else {
        return Ok(None);
    };
    let mut volume = vec![0u8; (sectors * SECTOR).min(ESP_READ_MAX) as usize];
    let read = start_lba
        .checked_mul(SECTOR)
        .ok_or_else(|| past_end(u64::MAX))
        .and_then(|at| disk.read_at(at, &mut volume));
    let loader = match read {
        Err(e) => Err(format!("cannot read the EFI system partition: {e}")),
        Ok(()) => crate::fat::read_boot_file(&volume),
    };
    let mut info = EspInfo {
        index,
        start_lba,
        sectors,
        loader_bytes: None,
        loader_version: None,
        loader_is_this_bootpack: false,
        loader_checksum: None,
    };
    match loader {
        Ok(efi) => {
            info.loader_bytes = Some(efi.len() as u64);
            info.loader_version = crate::fat::loader_version(&efi);
            info.loader_is_this_bootpack = efi == crate::bootloader::BOOTX64_EFI;
            info.loader_checksum = Some(format!(
                "{:#018x}",
                crate::proto::checksum::fletcher64(&efi)
            ));
            Ok(Some(info))
        }
        Err(e) => Err(e),
    }
}

/// A memory range the kernel is loaded into.
#[derive(Clone, Debug, Serialize)]
pub struct Segment {
    /// The first address.
    pub start: u64,
    /// The address just past it.
    pub end: u64,
    /// Bytes copied from the image.
    pub file_size: u64,
    /// Bytes in memory (the rest after the file bytes is zeroed).
    pub mem_size: u64,
}

/// The kernel as the image's boot configuration record describes it.
#[derive(Clone, Debug, Serialize)]
pub struct Kernel {
    /// The number of the partition holding it, from 1.
    pub partition: usize,
    /// The entry address.
    pub entry: u32,
    /// The Multiboot header's flags.
    pub multiboot_flags: u32,
    /// Where it is loaded.
    pub segments: Vec<Segment>,
    /// Bytes of kernel data stored in the image.
    pub size: u64,
    /// The checksum of the kernel and modules as stored, in hex.
    pub checksum: String,
    /// Whether the stored bytes match it.
    pub checksum_ok: bool,
    /// The command line as bytes, and as text where it is UTF-8.
    pub cmdline: String,
    /// The command line's exact bytes (without the NUL).
    pub cmdline_bytes: Vec<u8>,
    /// "multiboot1" or "multiboot2": what the kernel is entered with.
    pub protocol: &'static str,
    /// Whether stage 2 may use its own disk read path (IDE bus-master DMA)
    /// instead of the BIOS; `bootpack build --no-fast-read` turns it off.
    pub fast_read: bool,
    /// The kernel file's compression ("gzip", "xz", "zstd"), which
    /// bootpack undid at pack time; null if it was not compressed.
    pub decompressed_from: Option<&'static str>,
    /// Whether bootpack decompressed at least one module at pack time
    /// (which ones is not recorded).
    pub modules_decompressed: bool,
    /// The configuration record's format version (2, 3, or 4 for a kernel with Multiboot 2 EFI tags).
    pub record_version: u16,
    /// What the kernel's Multiboot 2 EFI tags ask of a UEFI boot (record
    /// version 4), e.g. "boot services kept, amd64 entry 0x200120"; null
    /// when it has none.
    pub efi: Option<String>,
    /// The video request the record carries.
    pub video: Video,
    /// The modules, in the order the kernel gets them.
    pub modules: Vec<Module>,
}

/// The video request the record carries.
#[derive(Clone, Debug, Serialize)]
pub struct Video {
    /// "none", "text", "keep", "WxHxD", "WxH" (any depth) or "any".
    pub mode: String,
    /// From `bootpack build --video` rather than the kernel's header.
    pub from_option: bool,
    /// The kernel accepts the EGA text console.
    pub text_ok: bool,
    /// The kernel accepts a linear framebuffer.
    pub graphics_ok: bool,
}

/// A Multiboot module stored in the image.
#[derive(Clone, Debug, Serialize)]
pub struct Module {
    /// Its size in bytes.
    pub size: u64,
    /// Its string (command line), lossily decoded.
    pub string: String,
    /// Whether its stored bytes match its checksum.
    pub checksum_ok: bool,
    /// The compression the stored bytes are in ("gzip", "xz", "zstd"):
    /// a module kept compressed on request (`--module-raw`); null if none.
    pub stored_compression: Option<&'static str>,
}

/// Everything found, and what is wrong.
#[derive(Clone, Debug, Serialize)]
pub struct Inspection {
    /// The image file, as given.
    pub image: String,
    /// The image format ("raw", "vhd", "vmdk", "qcow2", "gce").
    pub format: &'static str,
    /// "mbr", or "gpt" when a protective MBR announces a GPT.
    pub table: &'static str,
    /// The MBR disk signature in hex (empty when there is no MBR).
    pub disk_signature: String,
    /// The MBR's used entries (for a GPT, the protective one).
    pub partitions: Vec<Partition>,
    /// The GPT, when it was read.
    pub gpt: Option<Gpt>,
    /// bootpack's bootloader, when the image has it.
    pub bootloader: Option<Bootloader>,
    /// The kernel, when the image has a readable boot configuration record.
    pub kernel: Option<Kernel>,
    /// The EFI system partition, when the image has one (images for UEFI).
    pub esp: Option<EspInfo>,
    /// Empty when this is a sound bootpack image.
    pub problems: Vec<String>,
}

impl Inspection {
    /// Whether the image is one bootpack wrote and every checksum holds (no problems found).
    pub fn is_sound(&self) -> bool {
        self.problems.is_empty()
    }
}

/// Inspects the image at `path`.
pub fn inspect(path: &Path) -> Result<Inspection, InspectError> {
    let name = path.display().to_string();
    let io_err = |source| InspectError::Io {
        path: name.clone(),
        source,
    };
    let file = File::open(path).map_err(io_err)?;
    let size = file.metadata().map_err(io_err)?.len();
    let mut magic = [0u8; 4];
    let _ = file.read_at(&mut magic, 0);
    if magic.starts_with(&[0x1f, 0x8b]) {
        let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(file));
        for entry in archive.entries().map_err(io_err)? {
            let entry = entry.map_err(io_err)?;
            if entry
                .path()
                .map(|p| p == Path::new("disk.raw"))
                .unwrap_or(false)
            {
                let mut disk = StreamDisk::new(entry);
                return Ok(inspect_disk(name, "gce", &mut disk));
            }
        }
        return Err(InspectError::NoDiskRaw { path: name });
    }
    if &magic == b"KDMV" {
        let mut disk = reader::Vmdk::open(file).map_err(io_err)?;
        return Ok(inspect_disk(name, "vmdk", &mut disk));
    }
    if &magic == b"QFI\xfb" {
        let mut disk = reader::Qcow2::open(file).map_err(io_err)?;
        return Ok(inspect_disk(name, "qcow2", &mut disk));
    }
    let mut footer = [0u8; 8];
    if size >= 512 && file.read_at(&mut footer, size - 512).is_ok() && &footer == b"conectix" {
        return Ok(inspect_disk(
            name,
            "vhd",
            &mut FileDisk {
                file,
                size: size - 512,
            },
        ));
    }
    Ok(inspect_disk(name, "raw", &mut FileDisk { file, size }))
}

fn inspect_disk(image: String, format: &'static str, disk: &mut dyn DiskReader) -> Inspection {
    let mut ins = Inspection {
        image,
        format,
        table: "",
        disk_signature: String::new(),
        partitions: Vec::new(),
        gpt: None,
        bootloader: None,
        kernel: None,
        esp: None,
        problems: Vec::new(),
    };
    let mut mbr = [0u8; 512];
    if let Err(e) = disk.read_at(0, &mut mbr) {
        ins.problems.push(format!("cannot read sector 0: {e}"));
        return ins;
    }
    if mbr[510..] != [0x55, 0xAA] {
        ins.problems
            .push("no MBR: sector 0 lacks the 0x55AA boot signature".into());
        return ins;
    }
    ins.disk_signature = format!(
        "{:#010x}",
        u32::from_le_bytes(mbr[0x1B8..0x1BC].try_into().unwrap())
    );
    for i in 0..4 {
        let e = &mbr[0x1BE + 16 * i..][..16];
        let sectors = u32::from_le_bytes(e[12..16].try_into().unwrap());
        if e[4] != 0 && sectors != 0 {
            ins.partitions.push(Partition {
                index: i + 1,
                active: e[0] == 0x80,
                kind: e[4],
                start_lba: u32::from_le_bytes(e[8..12].try_into().unwrap()),
                sectors,
            });
        }
    }
    ins.bootloader = check_boot_code(&mbr, disk);
    if ins.bootloader.is_none() {
        ins.problems.push(format!(
            "MBR with {} partition(s), no bootpack boot code",
            ins.partitions.len()
        ));
    } else if let Some(b) = &ins.bootloader {
        if !b.stage2_checksum_ok {
            ins.problems.push(
                "stage 2 does not match the checksum in stage 1: the image is damaged".into(),
            );
        }
    }
    let protective = ins
        .partitions
        .iter()
        .any(|p| p.kind == PROTECTIVE_MBR_TYPE && p.start_lba == 1);
    ins.table = if protective { "gpt" } else { "mbr" };
    // The same reader and checks as stage 2's, so inspect refuses what
    // the boot would, with the boot's words.
    let found = ptable::find(&mut Sectors {
        disk,
        buf: Vec::new(),
    });
    match found {
        Err(TableError::Read(e)) => ins
            .problems
            .push(format!("cannot read the partition table: {e}")),
        Err(TableError::Invalid(Invalid::NoMbrPartition)) => ins.problems.push(format!(
            "no bootpack kernel partition (type {PARTITION_TYPE:#04x})"
        )),
        Err(TableError::Invalid(why)) => ins.problems.push(why.to_string()),
        Ok(found) => {
            let gpt_info = match found.table {
                Table::Gpt(g) => Some(g),
                Table::Mbr { .. } => None,
            };
            match inspect_esp(&ins.partitions, gpt_info.as_ref(), disk) {
                Ok(esp) => ins.esp = esp,
                Err(e) => ins.problems.push(e),
            }
            if let Table::Gpt(g) = found.table {
                let name: String =
                    char::decode_utf16(g.partition_name.iter().copied().take_while(|&u| u != 0))
                        .map(|c| c.unwrap_or(char::REPLACEMENT_CHARACTER))
                        .collect();
                ins.gpt = Some(Gpt {
                    disk_guid: g.disk_guid.to_string(),
                    index: found.partition.index + 1,
                    type_guid: ptable::BOOTPACK_TYPE_GUID.to_string(),
                    partition_guid: g.partition_guid.to_string(),
                    name,
                    start_lba: found.partition.start,
                    sectors: found.partition.sectors,
                    first_usable_lba: g.first_usable,
                    last_usable_lba: g.last_usable,
                    backup_lba: g.alternate_lba,
                });
            }
            match read_kernel(&found.partition, disk) {
                Ok(k) => {
                    if !k.checksum_ok {
                        ins.problems.push(
                            "the kernel data does not match its checksum: the image is damaged"
                                .into(),
                        );
                    }
                    for (i, m) in k.modules.iter().enumerate() {
                        if !m.checksum_ok {
                            ins.problems.push(format!(
                                "module {} does not match its checksum: the image is damaged",
                                i + 1
                            ));
                        }
                    }
                    ins.kernel = Some(k);
                }
                Err(e) => ins.problems.push(e),
            }
            // The backup GPT, which the boot does not read, where the disk's
            // end can be reached without expanding a compressed stream.
            if let (Table::Gpt(g), false) = (found.table, format == "gce") {
                if let Err(why) = check_backup(&g, disk) {
                    ins.problems.push(format!(
                        "the backup GPT (header at LBA {:#x}) {why}: the image is damaged (the boot reads only the primary GPT)",
                        g.alternate_lba
                    ));
                }
            }
        }
    }
    ins
}

/// Checks the backup GPT against the primary `g`: a sound header at the
/// place the primary names, pointing back at LBA 1, with the same disk
/// GUID and entry array shape, and entries whose CRC32 matches both
/// headers'.
fn check_backup(g: &ptable::GptInfo, disk: &mut dyn DiskReader) -> Result<(), String> {
    let mut sector = [0u8; 512];
    let mut read = |lba: u64, buf: &mut [u8]| {
        let at = lba.checked_mul(SECTOR).ok_or_else(|| past_end(u64::MAX))?;
        disk.read_at(at, buf)
    };
    read(1, &mut sector).map_err(|e| format!("cannot be compared: {e}"))?;
    let primary_crc = u32::from_le_bytes(sector[88..92].try_into().unwrap());
    read(g.alternate_lba, &mut sector).map_err(|e| format!("cannot be read: {e}"))?;
    let b = ptable::check_gpt_header(&sector, g.alternate_lba)
        .map_err(|_| "is not a sound GPT header".to_string())?;
    let stored = u32::from_le_bytes(sector[88..92].try_into().unwrap());
    if b.alternate_lba != 1
        || b.disk_guid != g.disk_guid
        || (b.entry_count, b.entry_size) != (g.entry_count, g.entry_size)
        || stored != primary_crc
    {
        return Err("does not match the primary GPT".into());
    }
    // check_gpt_header bounds the array to MAX_ENTRY_ARRAY bytes.
    let mut entries = vec![0u8; b.entry_count as usize * b.entry_size as usize];
    read(b.entries_lba, &mut entries).map_err(|e| format!("has unreadable entries: {e}"))?;
    if crate::proto::crc32::crc32(&entries) != stored {
        return Err("has entries that do not match their checksum".into());
    }
    Ok(())
}

/// Recognises bootpack's stage 1 and checks stage 2 against the sum patched
/// into it.
fn check_boot_code(mbr: &[u8; 512], disk: &mut dyn DiskReader) -> Option<Bootloader> {
    let u16_at = |o: usize| u16::from_le_bytes([mbr[o], mbr[o + 1]]);
    let lba = u32::from_le_bytes(mbr[stage1::STAGE2_LBA_OFFSET..][..4].try_into().unwrap());
    let sectors = u16_at(stage1::STAGE2_SECTORS_OFFSET);
    let sum = u16_at(stage1::STAGE2_SUM_OFFSET);
    // Stage 1 of this build, apart from the patched fields.
    let mut ours = [0u8; stage1::CODE_LEN];
    ours.copy_from_slice(&STAGE1[..stage1::CODE_LEN]);
    let mut theirs = [0u8; stage1::CODE_LEN];
    theirs.copy_from_slice(&mbr[..stage1::CODE_LEN]);
    for buf in [&mut ours, &mut theirs] {
        buf[stage1::STAGE2_LBA_OFFSET..stage1::STAGE2_SUM_OFFSET + 2].fill(0);
    }
    let same_stage1 = ours == theirs;
    let looks_like_ours = mbr[..stage1::CODE_LEN]
        .windows(10)
        .any(|w| w == b"bootpack: ");
    if !same_stage1 && !looks_like_ours {
        return None;
    }
    let mut stage2 = vec![0u8; sectors as usize * SECTOR as usize];
    let read_ok = sectors > 0 && disk.read_at(lba as u64 * SECTOR, &mut stage2).is_ok();
    let stage2_checksum_ok = read_ok && stage1::stage2_sum(&stage2) == sum;
    let same_stage2 =
        read_ok && stage2.starts_with(STAGE2) && stage2[STAGE2.len()..].iter().all(|&b| b == 0);
    let version = if same_stage1 && same_stage2 {
        format!("{} (this bootpack)", env!("CARGO_PKG_VERSION"))
    } else {
        "another bootpack version".into()
    };
    Some(Bootloader {
        version,
        stage2_lba: lba,
        stage2_sectors: sectors,
        stage2_checksum_ok,
    })
}

fn read_kernel(p: &ptable::Partition, disk: &mut dyn DiskReader) -> Result<Kernel, String> {
    let base = p.start.checked_mul(SECTOR).ok_or_else(|| {
        format!(
            "kernel partition {}: starts past any disk's end",
            p.index + 1
        )
    })?;
    let mut first = [0u8; 512];
    disk.read_at(base, &mut first)
        .map_err(|e| format!("cannot read the kernel partition: {e}"))?;
    let len = record::peek_len(&first)
        .map_err(|e| format!("kernel partition {}: {}", p.index + 1, e.describe()))?;
    let mut rec_bytes = vec![0u8; len.div_ceil(512) * 512];
    disk.read_at(base, &mut rec_bytes)
        .map_err(|e| format!("cannot read the configuration record: {e}"))?;
    let rec = Record::parse(&rec_bytes)
        .map_err(|e| format!("kernel partition {}: {}", p.index + 1, e.describe()))?;
    // Everything the record names must lie within the partition, as stage
    // 2 checks before it reads.
    bounds::check(&rec, len.div_ceil(512) as u64, p).map_err(|e| e.to_string())?;
    let mut sum = Fletcher64::new();
    let mut size = 0;
    let mut segments = Vec::new();
    for s in rec.segments() {
        sum_range(disk, base, s.data_sector, s.file_size, &mut sum, &mut [])
            .map_err(|e| format!("cannot read the kernel data at {:#x}: {e}", s.dest))?;
        size += s.file_size;
        segments.push(Segment {
            start: s.dest,
            end: s.end(),
            file_size: s.file_size,
            mem_size: s.mem_size,
        });
    }
    let mut modules = Vec::new();
    for m in rec.modules() {
        let mut sum = Fletcher64::new();
        let mut head = [0u8; 8];
        sum_range(disk, base, m.data_sector, m.size, &mut sum, &mut head)
            .map_err(|e| format!("cannot read module {}: {e}", modules.len() + 1))?;
        let head = &head[..m.size.min(8) as usize];
        let string = m.string.strip_suffix(&[0]).unwrap_or(m.string);
        modules.push(Module {
            size: m.size,
            string: String::from_utf8_lossy(string).into_owned(),
            checksum_ok: sum.finish() == m.sum,
            stored_compression: decompress::detect(head).map(|c| c.name()),
        });
    }
    Ok(Kernel {
        partition: p.index as usize + 1,
        entry: rec.entry(),
        multiboot_flags: rec.mb_flags(),
        segments,
        size,
        checksum: format!("{:#018x}", rec.payload_sum()),
        checksum_ok: sum.finish() == rec.payload_sum(),
        cmdline: String::from_utf8_lossy(rec.cmdline()).into_owned(),
        cmdline_bytes: rec.cmdline().to_vec(),
        fast_read: rec.flags() & record::FLAG_NO_FAST_READ == 0,
        decompressed_from: decompress::Compression::from_code(
            (rec.flags() & record::FLAG_KERNEL_COMPRESSION_MASK)
                >> record::FLAG_KERNEL_COMPRESSION_SHIFT,
        )
        .map(|c| c.name()),
        modules_decompressed: rec.flags() & record::FLAG_MODULES_DECOMPRESSED != 0,
        record_version: rec.version(),
        efi: efi_summary(&rec.efi()),
        video: {
            let v = rec.video();
            Video {
                mode: crate::video::describe(&v.mode),
                from_option: v.from_option,
                text_ok: v.text_ok,
                graphics_ok: v.graphics_ok,
            }
        },
        protocol: match rec.protocol() {
            record::Protocol::Multiboot1 => "multiboot1",
            record::Protocol::Multiboot2 => "multiboot2",
        },
        modules,
    })
}

/// Feeds `len` bytes from partition sector `sector` (partition at byte
/// `base`) to `sum`, zero-padded to whole words, in bounded chunks: a
/// damaged record cannot make inspect allocate what it names. Copies the
/// first bytes into `head` on the way (a stream cannot be read twice).
fn sum_range(
    disk: &mut dyn DiskReader,
    base: u64,
    sector: u64,
    len: u64,
    sum: &mut Fletcher64,
    head: &mut [u8],
) -> io::Result<()> {
    const CHUNK: u64 = 1 << 20;
    let mut at = sector
        .checked_mul(SECTOR)
        .and_then(|o| o.checked_add(base))
        .ok_or_else(|| past_end(u64::MAX))?;
    let mut buf = vec![0u8; len.min(CHUNK) as usize];
    let mut left = len;
    while left > 0 {
        let n = left.min(CHUNK) as usize;
        disk.read_at(at, &mut buf[..n])?;
        if left == len {
            let h = head.len().min(n);
            head[..h].copy_from_slice(&buf[..h]);
        }
        if left > CHUNK {
            sum.update(&buf[..n]);
        } else {
            sum.update_padded(&buf[..n]);
        }
        left -= n as u64;
        at += n as u64;
    }
    Ok(())
}

/// A line saying what the Multiboot 2 EFI tags ask, if there are any.
fn efi_summary(e: &crate::proto::mb2_header::EfiTags) -> Option<String> {
    if *e == Default::default() {
        return None;
    }
    let mut parts = Vec::new();
    if e.boot_services {
        parts.push("boot services kept".to_string());
    }
    if let Some(a) = e.entry_efi64 {
        parts.push(format!("amd64 entry {a:#x}"));
    }
    if let Some(a) = e.entry_efi32 {
        parts.push(format!("i386 entry {a:#x}"));
    }
    if let Some(r) = e.relocatable {
        parts.push(format!(
            "relocatable {:#x}..{:#x} align {:#x}",
            r.min_addr, r.max_addr, r.align
        ));
    }
    Some(parts.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bytes(n: usize) -> Vec<u8> {
        (0..n).map(|i| (i * 7 + i / 251) as u8).collect()
    }

    #[test]
    fn a_damaged_module_makes_the_image_unsound() {
        let dir = std::env::temp_dir().join(format!("bootpack-inspect-mod-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let module = dir.join("module");
        std::fs::write(&module, vec![0x5au8; 3000]).unwrap();
        let image = dir.join("disk.img");
        crate::Build::demo()
            .module(&module, "m")
            .write(&image)
            .unwrap();
        assert!(inspect(&image).unwrap().is_sound());
        let mut disk = std::fs::read(&image).unwrap();
        let base = crate::proto::layout::PARTITION_START_LBA as usize * SECTOR as usize;
        let sector = Record::parse(&disk[base..]).unwrap().module(0).data_sector;
        disk[base + sector as usize * SECTOR as usize + 10] ^= 1;
        std::fs::write(&image, &disk).unwrap();
        let ins = inspect(&image).unwrap();
        assert_eq!(
            ins.problems,
            ["module 1 does not match its checksum: the image is damaged"]
        );
        assert!(!ins.kernel.unwrap().modules[0].checksum_ok);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// Found by the inspect fuzz target (packager/fuzz/regressions/inspect/
    /// qcow2-huge-l1-table): a qcow2 header naming a 2^32-entry L1 table
    /// made inspect allocate 32 GiB.
    #[test]
    fn a_qcow2_header_naming_a_huge_table_is_an_error_not_an_allocation() {
        let mut h = vec![0u8; 4096];
        h[..4].copy_from_slice(b"QFI\xfb");
        h[4..8].copy_from_slice(&3u32.to_be_bytes());
        h[20..24].copy_from_slice(&16u32.to_be_bytes()); // cluster_bits
        h[24..32].copy_from_slice(&(1u64 << 40).to_be_bytes()); // size
        h[36..40].copy_from_slice(&u32::MAX.to_be_bytes()); // l1_size
        h[40..48].copy_from_slice(&512u64.to_be_bytes()); // l1_table_offset
        let path = std::env::temp_dir().join(format!("bootpack-qcow2-{}.img", std::process::id()));
        std::fs::write(&path, &h).unwrap();
        let e = inspect(&path).unwrap_err().to_string();
        std::fs::remove_file(&path).unwrap();
        assert!(e.contains("beyond the file's end"), "{e}");
    }

    #[test]
    fn stream_disk_keeps_the_start_and_reads_forward_beyond_it() {
        let data = bytes(STREAM_KEEP as usize * 2 + 1000);
        let mut d = StreamDisk::new(&data[..]);
        let mut buf = vec![0u8; 512];
        d.read_at(512, &mut buf).unwrap();
        assert_eq!(buf, data[512..1024]);
        d.read_at(0, &mut buf).unwrap();
        assert_eq!(buf, data[..512]);
        // Across the kept prefix's end, then forward.
        let at = STREAM_KEEP as usize - 100;
        d.read_at(at as u64, &mut buf).unwrap();
        assert_eq!(buf, data[at..at + 512]);
        let at = STREAM_KEEP as usize + 5000;
        d.read_at(at as u64, &mut buf).unwrap();
        assert_eq!(buf, data[at..at + 512]);
        assert!(d.prefix.len() as u64 <= STREAM_KEEP);
        // The kept start stays readable; data behind the cursor beyond it
        // does not.
        d.read_at(100, &mut buf).unwrap();
        assert_eq!(buf, data[100..612]);
        assert!(d.read_at(STREAM_KEEP + 10, &mut buf).is_err());
        // Past the end, and offsets that overflow.
        assert!(d.read_at(data.len() as u64 - 10, &mut buf).is_err());
        assert!(d.read_at(u64::MAX - 10, &mut buf).is_err());
    }

    #[test]
    fn sum_range_matches_the_one_shot_checksum_and_bounds_offsets() {
        let data = bytes((3 << 20) + 5);
        let mut disk = StreamDisk::new(&data[..]);
        let mut sum = Fletcher64::new();
        sum_range(
            &mut disk,
            512,
            1,
            data.len() as u64 - 1024,
            &mut sum,
            &mut [],
        )
        .unwrap();
        assert_eq!(
            sum.finish(),
            crate::proto::checksum::fletcher64(&data[1024..])
        );
        let mut disk = StreamDisk::new(&data[..]);
        assert!(sum_range(&mut disk, 0, u64::MAX / 2, 10, &mut sum, &mut []).is_err());
        // A huge length fails at the disk's end, without a huge buffer.
        let mut disk = StreamDisk::new(&data[..]);
        assert!(sum_range(&mut disk, 0, 0, u64::MAX, &mut sum, &mut []).is_err());
    }
}
