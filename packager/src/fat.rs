//! The EFI system partition's file system: a FAT16 volume holding one
//! file, `\EFI\BOOT\BOOTX64.EFI` (the removable-media boot path of UEFI
//! 2.10 §3.5.1.1, which firmware tries without any boot variable).
//!
//! Written here rather than with a crate: the volume is tiny and fixed
//! (three directories, one file), and every field that tools usually fill
//! from the clock or a random source is fixed instead, so the same loader
//! gives the same bytes: the volume serial number is [`VOLUME_ID`], every
//! date is 1980-01-01 and every time 00:00:00.
//!
//! Shape: 512-byte sectors, one sector per cluster, one reserved sector,
//! two FATs, a 512-entry root directory; [`ESP_SECTORS`] sectors (4 MiB)
//! give about 8,100 clusters, which makes it FAT16 by the cluster count
//! (Microsoft's FAT specification: 4,085 to 65,524), whatever the loader's
//! size.

/// The ESP's size in sectors (4 MiB).
pub const ESP_SECTORS: u64 = 8192;
/// The volume serial number (fixed, so images are reproducible).
pub const VOLUME_ID: u32 = 0xB007_EF15;
/// The volume label.
pub const LABEL: &[u8; 11] = b"BOOTPACK   ";

const SECTOR: usize = 512;
const RESERVED: usize = 1;
const FATS: usize = 2;
const ROOT_ENTRIES: usize = 512;
const ROOT_SECTORS: usize = ROOT_ENTRIES * 32 / SECTOR;
/// FAT date 1980-01-01 ((year - 1980) << 9 | month << 5 | day).
const DATE: u16 = 1 << 5 | 1;

/// The loader does not fit the ESP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TooLarge {
    /// The loader's size.
    pub bytes: usize,
}

/// Sectors per FAT for `total` sectors: each of the data clusters and the
/// two reserved entries take 2 bytes.
fn fat_sectors(total: usize) -> usize {
    // Solve data = total - fixed - FATS * fat, fat = ceil((data + 2) * 2 /
    // 512) by iteration (it settles in two rounds).
    let fixed = RESERVED + ROOT_SECTORS;
    let mut fat = 1;
    loop {
        let data = total - fixed - FATS * fat;
        let need = ((data + 2) * 2).div_ceil(SECTOR);
        if need <= fat {
            return fat;
        }
        fat = need;
    }
}

/// An 8.3 directory entry.
fn dir_entry(name: &[u8; 11], attr: u8, cluster: u16, size: u32) -> [u8; 32] {
    let mut e = [0u8; 32];
    e[..11].copy_from_slice(name);
    e[11] = attr;
    // Creation time (14..16) 0, creation date, last access date,
    // modification time 0, modification date: all fixed.
    e[16..18].copy_from_slice(&DATE.to_le_bytes());
    e[18..20].copy_from_slice(&DATE.to_le_bytes());
    e[24..26].copy_from_slice(&DATE.to_le_bytes());
    e[26..28].copy_from_slice(&cluster.to_le_bytes());
    e[28..32].copy_from_slice(&size.to_le_bytes());
    e
}

const ATTR_DIR: u8 = 0x10;
const ATTR_ARCHIVE: u8 = 0x20;
const ATTR_VOLUME_ID: u8 = 0x08;

/// The whole ESP ([`ESP_SECTORS`] sectors) holding `loader` as
/// `\EFI\BOOT\BOOTX64.EFI`; `hidden` is the partition's first LBA (the
/// boot sector's "hidden sectors").
pub fn esp_image(loader: &[u8], hidden: u32) -> Result<Vec<u8>, TooLarge> {
    let total = ESP_SECTORS as usize;
    let fat = fat_sectors(total);
    let data_start = RESERVED + FATS * fat + ROOT_SECTORS;
    let clusters = total - data_start;
    // Clusters: 2 = \EFI, 3 = \EFI\BOOT, 4.. = the file.
    let file_clusters = loader.len().div_ceil(SECTOR).max(1);
    if 2 + file_clusters > clusters {
        return Err(TooLarge {
            bytes: loader.len(),
        });
    }
    let mut img = vec![0u8; total * SECTOR];

    // Boot sector (BPB for FAT16).
    let b = &mut img[..SECTOR];
    b[..3].copy_from_slice(&[0xEB, 0x3C, 0x90]);
    b[3..11].copy_from_slice(b"BOOTPACK");
    b[11..13].copy_from_slice(&(SECTOR as u16).to_le_bytes());
    b[13] = 1; // sectors per cluster
    b[14..16].copy_from_slice(&(RESERVED as u16).to_le_bytes());
    b[16] = FATS as u8;
    b[17..19].copy_from_slice(&(ROOT_ENTRIES as u16).to_le_bytes());
    b[19..21].copy_from_slice(&(total as u16).to_le_bytes());
    b[21] = 0xF8; // fixed disk
    b[22..24].copy_from_slice(&(fat as u16).to_le_bytes());
    b[24..26].copy_from_slice(&32u16.to_le_bytes()); // sectors per track
    b[26..28].copy_from_slice(&64u16.to_le_bytes()); // heads
    b[28..32].copy_from_slice(&hidden.to_le_bytes());
    b[36] = 0x80; // drive number
    b[38] = 0x29; // extended boot signature: the next three fields exist
    b[39..43].copy_from_slice(&VOLUME_ID.to_le_bytes());
    b[43..54].copy_from_slice(LABEL);
    b[54..62].copy_from_slice(b"FAT16   ");
    // Not bootable as a BIOS volume: a boot sector that halts would be
    // better than none, but firmware never runs it.
    b[510] = 0x55;
    b[511] = 0xAA;

    // The FAT: media, end-of-chain marker, then the chains.
    let mut table = vec![0u8; fat * SECTOR];
    let mut put = |i: usize, v: u16| table[2 * i..2 * i + 2].copy_from_slice(&v.to_le_bytes());
    put(0, 0xFFF8);
    put(1, 0xFFFF);
    put(2, 0xFFFF);
    put(3, 0xFFFF);
    for c in 4..4 + file_clusters {
        let next = if c + 1 == 4 + file_clusters {
            0xFFFF
        } else {
            (c + 1) as u16
        };
        put(c, next);
    }
    for i in 0..FATS {
        let at = (RESERVED + i * fat) * SECTOR;
        img[at..at + table.len()].copy_from_slice(&table);
    }

    // Root directory: the label and \EFI.
    let root = (RESERVED + FATS * fat) * SECTOR;
    img[root..root + 32].copy_from_slice(&dir_entry(LABEL, ATTR_VOLUME_ID, 0, 0));
    img[root + 32..root + 64].copy_from_slice(&dir_entry(b"EFI        ", ATTR_DIR, 2, 0));
    let cluster_at = |c: usize| (data_start + c - 2) * SECTOR;
    // \EFI: ".", ".." (the root is cluster 0), BOOT.
    let efi = cluster_at(2);
    img[efi..efi + 32].copy_from_slice(&dir_entry(b".          ", ATTR_DIR, 2, 0));
    img[efi + 32..efi + 64].copy_from_slice(&dir_entry(b"..         ", ATTR_DIR, 0, 0));
    img[efi + 64..efi + 96].copy_from_slice(&dir_entry(b"BOOT       ", ATTR_DIR, 3, 0));
    // \EFI\BOOT: ".", "..", BOOTX64.EFI.
    let boot = cluster_at(3);
    img[boot..boot + 32].copy_from_slice(&dir_entry(b".          ", ATTR_DIR, 3, 0));
    img[boot + 32..boot + 64].copy_from_slice(&dir_entry(b"..         ", ATTR_DIR, 2, 0));
    img[boot + 64..boot + 96].copy_from_slice(&dir_entry(
        b"BOOTX64 EFI",
        ATTR_ARCHIVE,
        4,
        loader.len() as u32,
    ));
    let file = cluster_at(4);
    img[file..file + loader.len()].copy_from_slice(loader);
    Ok(img)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn u16_at(b: &[u8], o: usize) -> u16 {
        u16::from_le_bytes([b[o], b[o + 1]])
    }

    #[test]
    fn is_fat16_by_cluster_count_and_reproducible() {
        let loader: Vec<u8> = (0..70_000u32).map(|i| (i * 7) as u8).collect();
        let a = esp_image(&loader, 4096).unwrap();
        assert_eq!(a, esp_image(&loader, 4096).unwrap());
        assert_eq!(a.len(), ESP_SECTORS as usize * 512);
        let fat = u16_at(&a, 22) as usize;
        let data_start = 1 + 2 * fat + 32;
        let clusters = ESP_SECTORS as usize - data_start;
        assert!((4085..65525).contains(&clusters), "{clusters}");
        // The FAT covers every cluster.
        assert!(fat * 512 / 2 >= clusters + 2);
        assert_eq!(&a[39..43], &VOLUME_ID.to_le_bytes());
        assert_eq!(&a[510..512], &[0x55, 0xAA]);
        // Both FATs equal.
        assert_eq!(
            a[512..512 + fat * 512],
            a[512 + fat * 512..512 + 2 * fat * 512]
        );
    }

    /// Follows the path through the directories and the file's chain as a
    /// reader would, and gets the loader back byte for byte.
    #[test]
    fn the_loader_reads_back_through_the_directories() {
        let loader: Vec<u8> = (0..3000u32).map(|i| (i * 13 + 1) as u8).collect();
        let img = esp_image(&loader, 0).unwrap();
        let fat = u16_at(&img, 22) as usize;
        let root = (1 + 2 * fat) * 512;
        let data_start = 1 + 2 * fat + 32;
        let at = |c: usize| (data_start + c - 2) * 512;
        let find = |dir: usize, name: &[u8; 11]| -> (u16, u32) {
            let e = (0..16)
                .map(|i| &img[dir + 32 * i..dir + 32 * i + 32])
                .find(|e| &e[..11] == name)
                .unwrap_or_else(|| panic!("{}", String::from_utf8_lossy(name)));
            (
                u16_at(e, 26),
                u32::from_le_bytes(e[28..32].try_into().unwrap()),
            )
        };
        let (efi, _) = find(root, b"EFI        ");
        let (boot, _) = find(at(efi as usize), b"BOOT       ");
        let (mut c, size) = find(at(boot as usize), b"BOOTX64 EFI");
        assert_eq!(size as usize, loader.len());
        let mut got = Vec::new();
        while c < 0xFFF8 {
            got.extend_from_slice(&img[at(c as usize)..at(c as usize) + 512]);
            c = u16_at(&img, 512 + 2 * c as usize);
        }
        got.truncate(size as usize);
        assert_eq!(got, loader);
    }

    #[test]
    fn a_loader_too_large_is_an_error() {
        let e = esp_image(&vec![0; 5 << 20], 0).unwrap_err();
        assert_eq!(e.bytes, 5 << 20);
    }
}

/// Reads `\EFI\BOOT\BOOTX64.EFI` from a FAT12, FAT16 or FAT32 volume (the
/// ESP as bootpack writes it, or as another tool did), following 8.3 names
/// (long-name entries are skipped: every FAT writer stores the short name
/// too).
pub fn read_boot_file(volume: &[u8]) -> Result<Vec<u8>, String> {
    let u16_at = |o: usize| u16::from_le_bytes([volume[o], volume[o + 1]]) as usize;
    let u32_at = |o: usize| u32::from_le_bytes(volume[o..o + 4].try_into().unwrap()) as usize;
    if volume.len() < SECTOR || volume[510..512] != [0x55, 0xAA] {
        return Err("the EFI system partition holds no FAT boot sector".into());
    }
    let bps = u16_at(11);
    let spc = volume[13] as usize;
    let reserved = u16_at(14);
    let fats = volume[16] as usize;
    let root_entries = u16_at(17);
    let total = if u16_at(19) != 0 {
        u16_at(19)
    } else {
        u32_at(32)
    };
    let fat_size = if u16_at(22) != 0 {
        u16_at(22)
    } else {
        u32_at(36)
    };
    if !matches!(bps, 512 | 1024 | 2048 | 4096) || spc == 0 || fats == 0 || fat_size == 0 {
        return Err("the EFI system partition's FAT boot sector is invalid".into());
    }
    let root_sectors = (root_entries * 32).div_ceil(bps);
    let data_start = reserved + fats * fat_size + root_sectors;
    let clusters = total.saturating_sub(data_start) / spc;
    let fat = reserved * bps;
    let bits = if clusters < 4085 {
        12
    } else if clusters < 65525 {
        16
    } else {
        32
    };
    let cluster_bytes = spc * bps;
    let get = |at: usize, len: usize| {
        volume
            .get(at..at + len)
            .ok_or_else(|| "the EFI system partition's file system points past its end".to_string())
    };
    let next = |c: usize| -> Result<Option<usize>, String> {
        let v = match bits {
            12 => {
                let b = get(fat + c * 3 / 2, 2)?;
                let w = u16::from_le_bytes([b[0], b[1]]) as usize;
                if c.is_multiple_of(2) {
                    w & 0xFFF
                } else {
                    w >> 4
                }
            }
            16 => {
                let b = get(fat + c * 2, 2)?;
                u16::from_le_bytes([b[0], b[1]]) as usize
            }
            _ => {
                let b = get(fat + c * 4, 4)?;
                u32::from_le_bytes(b.try_into().unwrap()) as usize & 0x0FFF_FFFF
            }
        };
        let end = match bits {
            12 => 0xFF8,
            16 => 0xFFF8,
            _ => 0x0FFF_FFF8,
        };
        Ok((2..end).contains(&v).then_some(v))
    };
    let chain = |first: usize| -> Result<Vec<u8>, String> {
        let mut out = Vec::new();
        let mut c = Some(first);
        while let Some(n) = c {
            if n < 2 || n >= clusters + 2 || out.len() > volume.len() {
                return Err("the EFI system partition's FAT has a broken chain".into());
            }
            out.extend_from_slice(get((data_start + (n - 2) * spc) * bps, cluster_bytes)?);
            c = next(n)?;
        }
        Ok(out)
    };
    let find = |dir: &[u8], name: &[u8; 11]| {
        dir.chunks_exact(32)
            .take_while(|e| e[0] != 0)
            .find(|e| e[0] != 0xE5 && e[11] & 0x0F != 0x0F && e[..11].eq_ignore_ascii_case(name))
            .map(|e| {
                let hi = if bits == 32 {
                    u16::from_le_bytes([e[20], e[21]]) as usize
                } else {
                    0
                };
                (
                    hi << 16 | u16::from_le_bytes([e[26], e[27]]) as usize,
                    u32::from_le_bytes(e[28..32].try_into().unwrap()) as usize,
                )
            })
    };
    let root = if bits == 32 {
        chain(u32_at(44))?
    } else {
        get((reserved + fats * fat_size) * bps, root_sectors * bps)?.to_vec()
    };
    let missing = || "the EFI system partition has no \\EFI\\BOOT\\BOOTX64.EFI".to_string();
    let (efi, _) = find(&root, b"EFI        ").ok_or_else(missing)?;
    let (boot, _) = find(&chain(efi)?, b"BOOT       ").ok_or_else(missing)?;
    let (file, size) = find(&chain(boot)?, b"BOOTX64 EFI").ok_or_else(missing)?;
    let mut bytes = if size == 0 { Vec::new() } else { chain(file)? };
    if bytes.len() < size {
        return Err("\\EFI\\BOOT\\BOOTX64.EFI is shorter than its directory entry says".into());
    }
    bytes.truncate(size);
    Ok(bytes)
}

/// The version a bootpack UEFI loader carries (boot/uefi's
/// `BOOTPACK-UEFI-VERSION=` marker), if it is one.
pub fn loader_version(efi: &[u8]) -> Option<String> {
    const MARK: &[u8] = b"BOOTPACK-UEFI-VERSION=";
    let at = efi.windows(MARK.len()).position(|w| w == MARK)? + MARK.len();
    let end = efi[at..].iter().position(|&b| b == 0)?;
    String::from_utf8(efi[at..at + end].to_vec()).ok()
}

#[cfg(test)]
mod read_tests {
    use super::*;

    #[test]
    fn reads_back_what_esp_image_wrote_and_mkfs_fat_volumes() {
        let loader: Vec<u8> = (0..100_000u32).map(|i| (i * 31 + 7) as u8).collect();
        let img = esp_image(&loader, 2048).unwrap();
        assert_eq!(read_boot_file(&img).unwrap(), loader);
        let mut broken = img.clone();
        broken[510] = 0;
        assert!(read_boot_file(&broken).is_err());
        let empty = esp_image(b"", 0).unwrap();
        assert_eq!(read_boot_file(&empty).unwrap(), b"");
    }

    #[test]
    fn finds_the_version_marker() {
        let mut f = b"MZ....BOOTPACK-UEFI-VERSION=1.2.3\0rest".to_vec();
        assert_eq!(loader_version(&f).as_deref(), Some("1.2.3"));
        f.truncate(10);
        assert_eq!(loader_version(&f), None);
    }
}
