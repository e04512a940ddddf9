//! The GUID Partition Table (UEFI 2.8 §5.3): primary header at LBA 1 and
//! its 128-entry array at LBA 2-33; the backup array and header in the
//! disk's last 33 sectors. One partition, the kernel's: bootpack's type
//! GUID, named "bootpack", from LBA 2048 to the last usable LBA.
//!
//! The first usable LBA is 2048, not 34, so partitioning tools never offer
//! the sectors where stage 2 lives (LBA 34 on). The disk and partition
//! GUIDs are derived from the content, like the MBR's disk signature, so
//! the same inputs give the same image.

use crate::proto::crc32::crc32;
use crate::proto::layout::{PARTITION_START_LBA, SECTOR};
use crate::proto::ptable::{
    Guid, BOOTPACK_TYPE_GUID, GPT_HEADER_SIZE, GPT_REVISION, GPT_SIGNATURE,
};

/// Entries in the array: the standard 16 KiB array.
pub const ENTRIES: u32 = 128;
/// Bytes per entry.
pub const ENTRY_SIZE: u32 = 128;
/// Sectors of the entry array.
pub const ARRAY_SECTORS: u64 = (ENTRIES as u64 * ENTRY_SIZE as u64) / SECTOR;
/// Sectors a GPT takes at the disk's end (backup array and header).
pub const BACKUP_SECTORS: u64 = ARRAY_SECTORS + 1;
/// The partition's name.
pub const PARTITION_NAME: &str = "bootpack";

/// Both copies of the table, ready to be written.
#[derive(Clone, Debug)]
pub struct Gpt {
    /// LBA 1-33: primary header, then the entry array.
    pub primary: Vec<u8>,
    /// The last 33 sectors: the entry array, then the backup header.
    pub backup: Vec<u8>,
    /// Where `backup` starts (LBA).
    pub backup_lba: u64,
    /// The disk's GUID (derived from the content).
    pub disk_guid: Guid,
    /// The kernel partition's unique GUID (derived from the content).
    pub partition_guid: Guid,
}

/// The last LBA the kernel partition may use on a disk of `disk_sectors`.
pub fn last_usable(disk_sectors: u64) -> u64 {
    disk_sectors - 1 - BACKUP_SECTORS
}

/// SplitMix64: spreads a seed over 64 bits (for GUIDs from a checksum).
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A version-4-shaped GUID derived from `seed` and `salt`: what a random
/// GUID looks like to tools, but the same for the same content.
pub fn derived_guid(seed: u64, salt: u64) -> Guid {
    let a = mix(seed ^ mix(salt));
    let b = mix(a);
    let mut g = [0u8; 16];
    g[..8].copy_from_slice(&a.to_le_bytes());
    g[8..].copy_from_slice(&b.to_le_bytes());
    g[7] = (g[7] & 0x0F) | 0x40; // version 4 (the third field's high nibble)
    g[8] = (g[8] & 0x3F) | 0x80; // variant 10
    Guid(g)
}

fn header(
    my_lba: u64,
    alternate: u64,
    entries_lba: u64,
    disk_sectors: u64,
    disk_guid: Guid,
    entries_crc: u32,
) -> Vec<u8> {
    let mut h = vec![0u8; SECTOR as usize];
    h[..8].copy_from_slice(&GPT_SIGNATURE);
    h[8..12].copy_from_slice(&GPT_REVISION.to_le_bytes());
    h[12..16].copy_from_slice(&GPT_HEADER_SIZE.to_le_bytes());
    h[24..32].copy_from_slice(&my_lba.to_le_bytes());
    h[32..40].copy_from_slice(&alternate.to_le_bytes());
    h[40..48].copy_from_slice(&(PARTITION_START_LBA as u64).to_le_bytes());
    h[48..56].copy_from_slice(&last_usable(disk_sectors).to_le_bytes());
    h[56..72].copy_from_slice(&disk_guid.0);
    h[72..80].copy_from_slice(&entries_lba.to_le_bytes());
    h[80..84].copy_from_slice(&ENTRIES.to_le_bytes());
    h[84..88].copy_from_slice(&ENTRY_SIZE.to_le_bytes());
    h[88..92].copy_from_slice(&entries_crc.to_le_bytes());
    let crc = crc32(&h[..GPT_HEADER_SIZE as usize]);
    h[16..20].copy_from_slice(&crc.to_le_bytes());
    h
}

/// The GPT of a disk of `disk_sectors` whose kernel partition runs from
/// LBA 2048 to the last usable LBA; `seed` (a checksum of the content)
/// gives the GUIDs.
pub fn build(disk_sectors: u64, seed: u64) -> Gpt {
    build_with_esp(disk_sectors, seed, None)
}

/// [`build`], with the ESP (first LBA, sectors) as the second entry when
/// given; the kernel partition then ends right before it.
pub fn build_with_esp(disk_sectors: u64, seed: u64, esp: Option<(u64, u64)>) -> Gpt {
    let disk_guid = derived_guid(seed, 1);
    let partition_guid = derived_guid(seed, 2);
    let mut array = vec![0u8; (ARRAY_SECTORS * SECTOR) as usize];
    let kernel_last = esp.map_or(last_usable(disk_sectors), |(start, _)| start - 1);
    let e = &mut array[..ENTRY_SIZE as usize];
    e[..16].copy_from_slice(&BOOTPACK_TYPE_GUID.0);
    e[16..32].copy_from_slice(&partition_guid.0);
    e[32..40].copy_from_slice(&(PARTITION_START_LBA as u64).to_le_bytes());
    e[40..48].copy_from_slice(&kernel_last.to_le_bytes());
    for (i, unit) in PARTITION_NAME.encode_utf16().enumerate() {
        e[56 + 2 * i..58 + 2 * i].copy_from_slice(&unit.to_le_bytes());
    }
    if let Some((start, sectors)) = esp {
        let e = &mut array[ENTRY_SIZE as usize..2 * ENTRY_SIZE as usize];
        e[..16].copy_from_slice(&super::esp::ESP_TYPE_GUID.0);
        e[16..32].copy_from_slice(&derived_guid(seed, 3).0);
        e[32..40].copy_from_slice(&start.to_le_bytes());
        e[40..48].copy_from_slice(&(start + sectors - 1).to_le_bytes());
        for (i, unit) in super::esp::ESP_NAME.encode_utf16().enumerate() {
            e[56 + 2 * i..58 + 2 * i].copy_from_slice(&unit.to_le_bytes());
        }
    }
    let entries_crc = crc32(&array);
    let last = disk_sectors - 1;
    let backup_lba = disk_sectors - BACKUP_SECTORS;
    let mut primary = header(1, last, 2, disk_sectors, disk_guid, entries_crc);
    primary.extend_from_slice(&array);
    let mut backup = array;
    backup.extend(header(
        last,
        1,
        backup_lba,
        disk_sectors,
        disk_guid,
        entries_crc,
    ));
    Gpt {
        primary,
        backup,
        backup_lba,
        disk_guid,
        partition_guid,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::ptable::{check_gpt_header, find, SectorReader, Table};

    struct Sparse<'a> {
        mbr: [u8; 512],
        gpt: &'a Gpt,
        buf: Vec<u8>,
    }

    impl SectorReader for Sparse<'_> {
        type Error = ();
        fn read(&mut self, lba: u64, count: u32) -> Result<&[u8], ()> {
            self.buf.clear();
            for l in lba..lba + count as u64 {
                let s: &[u8] = if l == 0 {
                    &self.mbr
                } else if (1..34).contains(&l) {
                    &self.gpt.primary[(l as usize - 1) * 512..][..512]
                } else if l >= self.gpt.backup_lba {
                    &self.gpt.backup[((l - self.gpt.backup_lba) as usize) * 512..][..512]
                } else {
                    &[0; 512]
                };
                self.buf.extend_from_slice(s);
            }
            Ok(&self.buf)
        }
    }

    #[test]
    fn the_reader_finds_the_partition_and_the_backup_is_sound() {
        // 3 TiB: beyond what an MBR can describe.
        let sectors = 3u64 << 31;
        let gpt = build(sectors, 0x1234);
        let mut mbr = [0u8; 512];
        mbr[0x1BE + 4] = 0xEE;
        mbr[0x1BE + 8] = 1;
        let f = find(&mut Sparse {
            mbr,
            gpt: &gpt,
            buf: Vec::new(),
        })
        .unwrap();
        assert_eq!(f.partition.start, 2048);
        // To the last usable LBA, just before the backup array.
        assert_eq!(f.partition.sectors, sectors - 33 - 2048);
        let Table::Gpt(info) = f.table else { panic!() };
        assert_eq!(info.disk_guid, gpt.disk_guid);
        assert_eq!(info.partition_guid, gpt.partition_guid);
        assert_eq!(info.alternate_lba, sectors - 1);
        let backup = check_gpt_header(&gpt.backup[32 * 512..], sectors - 1).unwrap();
        assert_eq!(backup.entries_lba, sectors - 33);
        assert_eq!(backup.alternate_lba, 1);
        assert_eq!(&gpt.backup[..32 * 512], &gpt.primary[512..]);
    }

    #[test]
    fn guids_derive_from_the_content() {
        let (a, b) = (build(1 << 21, 1), build(1 << 21, 2));
        assert_ne!(a.disk_guid, b.disk_guid);
        assert_ne!(a.disk_guid, a.partition_guid);
        assert_eq!(build(1 << 21, 1).primary, a.primary);
        let s = a.disk_guid.to_string();
        assert_eq!(&s[14..15], "4", "version 4: {s}");
        assert!("89AB".contains(&s[19..20]), "variant: {s}");
    }
}
