//! Sector 0: stage 1 (patched with stage 2's place, length and sum), and
//! either a plain MBR with the kernel partition or a protective MBR in
//! front of a GPT.

use std::io::Cursor;

use crate::proto::layout::{PARTITION_START_LBA, PARTITION_TYPE, SECTOR, STAGE2_LBA};
use crate::proto::ptable::PROTECTIVE_MBR_TYPE;
use crate::proto::stage1;
use mbrman::{MBRHeader, MBRPartitionEntry, CHS};

use crate::image::ImageError;

/// CHS for `lba` in the conventional 255-head, 63-sector geometry, or the
/// "beyond CHS" marker 1023/254/63 that partitioning tools write when the
/// address does not fit.
fn chs(lba: u32) -> CHS {
    CHS::from_lba_exact(lba, 1023, 255, 63).unwrap_or(CHS::new(1023, 254, 63))
}

/// Stage 1's 440 bytes with stage 2's LBA, length and word sum patched in.
fn patched_stage1(stage1: &[u8], stage2: &[u8]) -> Result<[u8; stage1::CODE_LEN], ImageError> {
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
    Ok(code)
}

fn sector(code: [u8; stage1::CODE_LEN], signature: [u8; 4], entry: MBRPartitionEntry) -> [u8; 512] {
    let mut header = MBRHeader::new(signature);
    header.bootstrap_code = code;
    header.partition_1 = entry;
    let mut sector = Cursor::new([0u8; 512]);
    header
        .write_into(&mut sector)
        .expect("an MBR header always fits in 512 bytes");
    sector.into_inner()
}

/// A plain MBR: one active partition of type 0x7F from LBA 2048 on.
pub fn plain(
    stage1: &[u8],
    stage2: &[u8],
    signature: [u8; 4],
    partition_sectors: u32,
) -> Result<[u8; 512], ImageError> {
    let code = patched_stage1(stage1, stage2)?;
    let last = PARTITION_START_LBA + partition_sectors - 1;
    let entry = MBRPartitionEntry {
        boot: mbrman::BOOT_ACTIVE,
        first_chs: chs(PARTITION_START_LBA),
        sys: PARTITION_TYPE,
        last_chs: chs(last),
        starting_lba: PARTITION_START_LBA,
        sectors: partition_sectors,
    };
    Ok(sector(code, signature, entry))
}

/// Adds the ESP as the second entry of a plain MBR (type 0xEF, not
/// active: the kernel partition keeps the active flag some BIOSes want).
pub fn add_esp(mbr: &mut [u8; 512], start: u32, sectors: u32) {
    let mut header =
        MBRHeader::read_from(&mut Cursor::new(&mbr[..])).expect("an MBR this module wrote");
    header.partition_2 = MBRPartitionEntry {
        boot: mbrman::BOOT_INACTIVE,
        first_chs: chs(start),
        sys: super::esp::ESP_MBR_TYPE,
        last_chs: chs(start + sectors - 1),
        starting_lba: start,
        sectors,
    };
    let mut sector = Cursor::new([0u8; 512]);
    header
        .write_into(&mut sector)
        .expect("an MBR header always fits in 512 bytes");
    *mbr = sector.into_inner();
}

/// A protective MBR (UEFI 2.8 §5.2.3): one 0xEE entry from LBA 1 over the
/// whole disk (or 2 TiB, the most it can say), not active (edk2 before
/// mid-2021 refused a GPT whose 0xEE entry was active), disk signature 0
/// as UEFI asks. The BIOS still runs stage 1.
pub fn protective(
    stage1: &[u8],
    stage2: &[u8],
    disk_sectors: u64,
) -> Result<[u8; 512], ImageError> {
    let code = patched_stage1(stage1, stage2)?;
    let sectors = u32::try_from(disk_sectors - 1).unwrap_or(u32::MAX);
    let entry = MBRPartitionEntry {
        boot: mbrman::BOOT_INACTIVE,
        first_chs: chs(1),
        sys: PROTECTIVE_MBR_TYPE,
        last_chs: chs(sectors),
        starting_lba: 1,
        sectors,
    };
    Ok(sector(code, [0; 4], entry))
}
