//! Finding the bootpack partition in an MBR or a GPT, over "read sectors
//! at LBA N". Stage 2 reads with INT 13h into its bounce buffer, `bootpack
//! inspect` from the image file; both go through [`find`], so they accept
//! and refuse the same disks with the same words.
//!
//! - MBR: the first of the four primary entries of type
//!   [`MBR_PARTITION_TYPE`] (0x7F).
//! - GPT: used when an MBR entry of type [`PROTECTIVE_MBR_TYPE`] (0xEE)
//!   starts at LBA 1, as UEFI firmware decides (UEFI 2.8 §5.2.3). The
//!   primary header at LBA 1 must have the "EFI PART" signature, revision
//!   1.0, a size of 92 to 512 bytes, a matching header CRC32, its own LBA
//!   1, a sane entry array (entries of 128 x 2^n bytes, at most
//!   [`MAX_ENTRY_ARRAY`] bytes, after the header and before the first
//!   usable LBA) with a matching CRC32; the first entry of type
//!   [`BOOTPACK_TYPE_GUID`] must lie within the usable LBAs. The backup
//!   header is not read: the boot reads only the primary, as firmware does
//!   when it is sound.

use super::crc32::Crc32;
use super::le;
use core::fmt;

/// Bytes per sector: every disk bootpack writes and reads.
pub const SECTOR_BYTES: usize = 512;
/// The most sectors [`find`] asks a [`SectorReader`] for at once (16 KiB,
/// a standard 128-entry GPT array in one read).
pub const MAX_READ_SECTORS: u32 = 32;
/// MBR partition type of the kernel partition (0x7F: reserved for
/// individual/experimental use, so no operating system mounts it).
pub const MBR_PARTITION_TYPE: u8 = super::layout::PARTITION_TYPE;
/// MBR type of the protective entry that announces a GPT.
pub const PROTECTIVE_MBR_TYPE: u8 = 0xEE;
/// GPT partition type of the kernel partition: a random (version 4) GUID
/// generated once for bootpack, 9C10AB89-B1B8-4942-9D1F-A97FC58B4B20. No
/// operating system knows it, so none mounts the partition.
pub const BOOTPACK_TYPE_GUID: Guid = Guid::from_fields(
    0x9C10_AB89,
    0xB1B8,
    0x4942,
    [0x9D, 0x1F, 0xA9, 0x7F, 0xC5, 0x8B, 0x4B, 0x20],
);
/// "EFI PART", the GPT header's signature.
pub const GPT_SIGNATURE: [u8; 8] = *b"EFI PART";
/// GPT revision 1.0, the only one there is.
pub const GPT_REVISION: u32 = 0x0001_0000;
/// Size of the GPT header proper (the rest of its sector is zero).
pub const GPT_HEADER_SIZE: u32 = 92;
/// The largest partition entry array read (bytes): 4096 entries of 128
/// bytes; the standard array is 16 KiB. Bounds the reads at boot.
pub const MAX_ENTRY_ARRAY: u64 = 512 * 1024;

/// Reads whole 512-byte sectors.
pub trait SectorReader {
    type Error;
    /// Returns exactly `count * 512` bytes read from `lba` on; `count` is
    /// 1 to [`MAX_READ_SECTORS`].
    fn read(&mut self, lba: u64, count: u32) -> Result<&[u8], Self::Error>;
}

/// A GUID as it is stored on disk (the first three fields little-endian).
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct Guid(pub [u8; 16]);

impl Guid {
    /// The GUID written as `a-b-c-d[0..2]-d[2..8]`.
    pub const fn from_fields(a: u32, b: u16, c: u16, d: [u8; 8]) -> Guid {
        let a = a.to_le_bytes();
        let b = b.to_le_bytes();
        let c = c.to_le_bytes();
        Guid([
            a[0], a[1], a[2], a[3], b[0], b[1], c[0], c[1], d[0], d[1], d[2], d[3], d[4], d[5],
            d[6], d[7],
        ])
    }
}

impl fmt::Display for Guid {
    /// Upper-case `XXXXXXXX-XXXX-XXXX-XXXX-XXXXXXXXXXXX`, as sgdisk prints.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let g = &self.0;
        write!(
            f,
            "{:08X}-{:04X}-{:04X}-",
            le::u32(g, 0),
            le::u16(g, 4),
            le::u16(g, 6)
        )?;
        for (i, b) in g[8..].iter().enumerate() {
            if i == 2 {
                f.write_str("-")?;
            }
            write!(f, "{b:02X}")?;
        }
        Ok(())
    }
}

/// The bootpack partition.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Partition {
    /// 0-based: the MBR slot or the GPT entry.
    pub index: u32,
    pub start: u64,
    pub sectors: u64,
}

/// What the GPT says beyond the partition.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct GptInfo {
    pub disk_guid: Guid,
    /// The bootpack partition's unique GUID.
    pub partition_guid: Guid,
    /// The bootpack partition's name, UTF-16LE code units, NUL-padded.
    pub partition_name: [u16; 36],
    /// Where the backup header is said to be.
    pub alternate_lba: u64,
    pub first_usable: u64,
    pub last_usable: u64,
    pub entries_lba: u64,
    pub entry_count: u32,
    pub entry_size: u32,
}

/// The kind of table the partition was found in.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Table {
    /// A plain MBR and its disk signature (0x1B8).
    Mbr { signature: u32 },
    /// A GPT behind a protective MBR.
    Gpt(GptInfo),
}

/// The partition and the table it came from.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Found {
    pub table: Table,
    pub partition: Partition,
}

/// Why no bootpack partition can be used. The `Display` text is the boot
/// message (after "bootpack: error: ") and `inspect`'s problem.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Invalid {
    /// A plain MBR without a 0x7F entry.
    NoMbrPartition,
    GptSignature,
    GptRevision(u32),
    GptHeaderSize(u32),
    GptHeaderCrc {
        stored: u32,
        computed: u32,
    },
    GptMyLba(u64),
    GptEntryArray {
        lba: u64,
        count: u32,
        size: u32,
    },
    GptEntriesCrc {
        stored: u32,
        computed: u32,
    },
    NoGptPartition,
    GptPartitionOutside {
        index: u32,
        first: u64,
        last: u64,
        first_usable: u64,
        last_usable: u64,
    },
}

const DAMAGED: &str = ": the disk image is damaged, rebuild it";

impl fmt::Display for Invalid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Invalid::NoMbrPartition => write!(
                f,
                "no bootpack partition (type 0x{MBR_PARTITION_TYPE:02X}) in the MBR"
            ),
            Invalid::GptSignature => write!(
                f,
                "the GPT header (LBA 1) lacks its \"EFI PART\" signature{DAMAGED}"
            ),
            Invalid::GptRevision(r) => write!(
                f,
                "the GPT header (LBA 1) has revision 0x{r:X}; bootpack reads revision 1.0 (0x10000)"
            ),
            Invalid::GptHeaderSize(s) => write!(
                f,
                "the GPT header (LBA 1) gives its size as {s} bytes (92 to 512 are valid){DAMAGED}"
            ),
            Invalid::GptHeaderCrc { stored, computed } => write!(
                f,
                "the GPT header (LBA 1) checksum mismatch (stored 0x{stored:X}, computed 0x{computed:X}){DAMAGED}"
            ),
            Invalid::GptMyLba(l) => write!(
                f,
                "the GPT header at LBA 1 gives its own place as LBA 0x{l:X}{DAMAGED}"
            ),
            Invalid::GptEntryArray { lba, count, size } => write!(
                f,
                "the GPT header (LBA 1) names an unusable partition entry array ({count} entries of {size} bytes at LBA 0x{lba:X}){DAMAGED}"
            ),
            Invalid::GptEntriesCrc { stored, computed } => write!(
                f,
                "the GPT partition entries checksum mismatch (stored 0x{stored:X}, computed 0x{computed:X}){DAMAGED}"
            ),
            Invalid::NoGptPartition => write!(
                f,
                "no bootpack partition (type {BOOTPACK_TYPE_GUID}) in the GPT"
            ),
            Invalid::GptPartitionOutside {
                index,
                first,
                last,
                first_usable,
                last_usable,
            } => write!(
                f,
                "GPT partition {} (LBA 0x{first:X}-0x{last:X}) is not within the usable LBA 0x{first_usable:X}-0x{last_usable:X}{DAMAGED}",
                index as u64 + 1
            ),
        }
    }
}

/// A failed read, or a table that holds no usable bootpack partition.
#[derive(Debug)]
pub enum TableError<E> {
    Read(E),
    Invalid(Invalid),
}

impl<E> From<Invalid> for TableError<E> {
    fn from(i: Invalid) -> Self {
        TableError::Invalid(i)
    }
}

/// Finds the bootpack partition: reads LBA 0 and, behind a protective MBR,
/// the GPT header and entry array.
pub fn find<R: SectorReader>(disk: &mut R) -> Result<Found, TableError<R::Error>> {
    let mbr = disk.read(0, 1).map_err(TableError::Read)?;
    let entry = |i: usize| &mbr[0x1BE + 16 * i..][..16];
    let protective =
        (0..4).any(|i| entry(i)[4] == PROTECTIVE_MBR_TYPE && le::u32(entry(i), 8) == 1);
    if protective {
        return find_gpt(disk);
    }
    let signature = le::u32(mbr, 0x1B8);
    for i in 0..4 {
        let e = entry(i);
        if e[4] == MBR_PARTITION_TYPE {
            return Ok(Found {
                table: Table::Mbr { signature },
                partition: Partition {
                    index: i as u32,
                    start: le::u32(e, 8) as u64,
                    sectors: le::u32(e, 12) as u64,
                },
            });
        }
    }
    Err(Invalid::NoMbrPartition.into())
}

/// Checks a GPT header (one sector read from `at`) on its own: signature,
/// revision, size, CRC, its own LBA and the entry array's shape. Returns
/// it as [`GptInfo`] (partition fields empty).
pub fn check_gpt_header(sector: &[u8], at: u64) -> Result<GptInfo, Invalid> {
    let h = &sector[..SECTOR_BYTES];
    if h[..8] != GPT_SIGNATURE {
        return Err(Invalid::GptSignature);
    }
    let revision = le::u32(h, 8);
    if revision != GPT_REVISION {
        return Err(Invalid::GptRevision(revision));
    }
    let size = le::u32(h, 12);
    if !(GPT_HEADER_SIZE..=SECTOR_BYTES as u32).contains(&size) {
        return Err(Invalid::GptHeaderSize(size));
    }
    let stored = le::u32(h, 16);
    let mut crc = Crc32::new();
    crc.update(&h[..16]);
    crc.update(&[0; 4]);
    crc.update(&h[20..size as usize]);
    let computed = crc.finish();
    if stored != computed {
        return Err(Invalid::GptHeaderCrc { stored, computed });
    }
    let my_lba = le::u64(h, 24);
    if my_lba != at {
        return Err(Invalid::GptMyLba(my_lba));
    }
    let info = GptInfo {
        disk_guid: Guid(h[56..72].try_into().unwrap()),
        partition_guid: Guid::default(),
        partition_name: [0; 36],
        alternate_lba: le::u64(h, 32),
        first_usable: le::u64(h, 40),
        last_usable: le::u64(h, 48),
        entries_lba: le::u64(h, 72),
        entry_count: le::u32(h, 80),
        entry_size: le::u32(h, 84),
    };
    let array = info.entry_count as u64 * info.entry_size as u64;
    let array_sectors = array.div_ceil(SECTOR_BYTES as u64);
    // The primary array follows its header and ends before the first
    // usable LBA; a backup header (at the disk's end) has its array just
    // before it.
    let placed = if at == 1 {
        info.entries_lba >= 2
            && info
                .entries_lba
                .checked_add(array_sectors)
                .is_some_and(|end| end <= info.first_usable)
    } else {
        info.entries_lba > info.last_usable
            && info
                .entries_lba
                .checked_add(array_sectors)
                .is_some_and(|end| end <= at)
    };
    let shaped = info.entry_size >= 128
        && info.entry_size.is_power_of_two()
        && info.entry_count > 0
        && array <= MAX_ENTRY_ARRAY;
    if !placed || !shaped || info.first_usable > info.last_usable {
        return Err(Invalid::GptEntryArray {
            lba: info.entries_lba,
            count: info.entry_count,
            size: info.entry_size,
        });
    }
    Ok(info)
}

/// The GPT behind a protective MBR: header at LBA 1, then its entries.
fn find_gpt<R: SectorReader>(disk: &mut R) -> Result<Found, TableError<R::Error>> {
    let header = disk.read(1, 1).map_err(TableError::Read)?;
    let mut info = check_gpt_header(header, 1)?;
    let stored = le::u32(header, 88);
    let (size, count) = (info.entry_size as u64, info.entry_count as u64);
    let array = size * count;
    let mut crc = Crc32::new();
    let mut found: Option<Partition> = None;
    // Whole sectors per read; entries are 128 x 2^n bytes, so each one's
    // first 128 bytes lie within one sector, hence within one read.
    let mut offset = 0u64;
    while offset < array {
        let n = (array - offset)
            .div_ceil(SECTOR_BYTES as u64)
            .min(MAX_READ_SECTORS as u64);
        let lba = info.entries_lba + offset / SECTOR_BYTES as u64;
        let chunk = disk.read(lba, n as u32).map_err(TableError::Read)?;
        let len = (n * SECTOR_BYTES as u64).min(array - offset);
        crc.update(&chunk[..len as usize]);
        if found.is_none() {
            let first = offset.div_ceil(size);
            let mut i = first;
            while i < count && i * size < offset + len {
                let e = &chunk[(i * size - offset) as usize..][..128];
                if e[..16] == BOOTPACK_TYPE_GUID.0 {
                    let (first_lba, last_lba) = (le::u64(e, 32), le::u64(e, 40));
                    if first_lba > last_lba
                        || first_lba < info.first_usable
                        || last_lba > info.last_usable
                    {
                        return Err(Invalid::GptPartitionOutside {
                            index: i as u32,
                            first: first_lba,
                            last: last_lba,
                            first_usable: info.first_usable,
                            last_usable: info.last_usable,
                        }
                        .into());
                    }
                    info.partition_guid = Guid(e[16..32].try_into().unwrap());
                    for (k, unit) in info.partition_name.iter_mut().enumerate() {
                        *unit = le::u16(e, 56 + 2 * k);
                    }
                    found = Some(Partition {
                        index: i as u32,
                        start: first_lba,
                        sectors: last_lba - first_lba + 1,
                    });
                    break;
                }
                i += 1;
            }
        }
        offset += len;
    }
    let computed = crc.finish();
    if stored != computed {
        return Err(Invalid::GptEntriesCrc { stored, computed }.into());
    }
    match found {
        Some(partition) => Ok(Found {
            table: Table::Gpt(info),
            partition,
        }),
        None => Err(Invalid::NoGptPartition.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::super::crc32::crc32;
    use super::*;
    extern crate std;
    use std::string::ToString;

    /// A disk of 64 sectors in memory.
    struct Mem {
        bytes: [u8; 64 * 512],
        reads: u32,
    }

    impl SectorReader for Mem {
        type Error = u64;
        fn read(&mut self, lba: u64, count: u32) -> Result<&[u8], u64> {
            assert!((1..=MAX_READ_SECTORS).contains(&count));
            self.reads += 1;
            let from = lba as usize * 512;
            self.bytes.get(from..from + count as usize * 512).ok_or(lba)
        }
    }

    fn put_u32(b: &mut [u8], o: usize, v: u32) {
        b[o..o + 4].copy_from_slice(&v.to_le_bytes());
    }
    fn put_u64(b: &mut [u8], o: usize, v: u64) {
        b[o..o + 8].copy_from_slice(&v.to_le_bytes());
    }

    fn mbr_disk(kind: u8, slot: usize) -> Mem {
        let mut m = Mem {
            bytes: [0; 64 * 512],
            reads: 0,
        };
        put_u32(&mut m.bytes, 0x1B8, 0x1234_5679);
        let e = 0x1BE + 16 * slot;
        m.bytes[e + 4] = kind;
        put_u32(&mut m.bytes, e + 8, 2048);
        put_u32(&mut m.bytes, e + 12, 4096);
        m.bytes[510] = 0x55;
        m.bytes[511] = 0xAA;
        m
    }

    /// A small GPT: 64-sector disk, 8 entries of `size` bytes at LBA 2,
    /// the bootpack partition in entry `slot` covering LBA 40..=59.
    fn gpt_disk(size: u32, slot: u32) -> Mem {
        let mut m = mbr_disk(PROTECTIVE_MBR_TYPE, 0);
        put_u32(&mut m.bytes, 0x1BE + 8, 1);
        let array = 8 * size as usize;
        let e = 1024 + slot as usize * size as usize;
        m.bytes[e..e + 16].copy_from_slice(&BOOTPACK_TYPE_GUID.0);
        m.bytes[e + 16..e + 32].copy_from_slice(&[0x42; 16]);
        put_u64(&mut m.bytes, e + 32, 40);
        put_u64(&mut m.bytes, e + 40, 59);
        for (k, c) in "bootpack".encode_utf16().enumerate() {
            m.bytes[e + 56 + 2 * k..][..2].copy_from_slice(&c.to_le_bytes());
        }
        let entries_crc = crc32(&m.bytes[1024..1024 + array]);
        let h = &mut m.bytes[512..1024];
        h[..8].copy_from_slice(b"EFI PART");
        put_u32(h, 8, GPT_REVISION);
        put_u32(h, 12, 92);
        put_u64(h, 24, 1);
        put_u64(h, 32, 63);
        put_u64(h, 40, 2 + (array as u64).div_ceil(512));
        put_u64(h, 48, 60);
        h[56..72].copy_from_slice(&[0x17; 16]);
        put_u64(h, 72, 2);
        put_u32(h, 80, 8);
        put_u32(h, 84, size);
        put_u32(h, 88, entries_crc);
        reseal(&mut m);
        m
    }

    /// Recomputes the header CRC after an edit.
    fn reseal(m: &mut Mem) {
        let h = &mut m.bytes[512..1024];
        put_u32(h, 16, 0);
        let size = u32::from_le_bytes(h[12..16].try_into().unwrap()) as usize;
        let c = crc32(&h[..size.min(512)]);
        put_u32(h, 16, c);
    }

    fn invalid(m: &mut Mem) -> Invalid {
        match find(m) {
            Err(TableError::Invalid(i)) => i,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn finds_the_mbr_partition_in_any_slot() {
        for slot in 0..4 {
            let f = find(&mut mbr_disk(0x7F, slot)).unwrap();
            assert_eq!(
                f.table,
                Table::Mbr {
                    signature: 0x1234_5679
                }
            );
            assert_eq!(
                f.partition,
                Partition {
                    index: slot as u32,
                    start: 2048,
                    sectors: 4096
                }
            );
        }
        let mut other = mbr_disk(0x0C, 0);
        assert_eq!(invalid(&mut other), Invalid::NoMbrPartition);
        assert_eq!(
            Invalid::NoMbrPartition.to_string(),
            "no bootpack partition (type 0x7F) in the MBR"
        );
    }

    #[test]
    fn an_ee_entry_not_at_lba_1_is_not_protective() {
        // 0xEE elsewhere is just another MBR entry; the 0x7F one counts.
        let mut m = mbr_disk(0x7F, 1);
        m.bytes[0x1BE + 4] = PROTECTIVE_MBR_TYPE;
        put_u32(&mut m.bytes, 0x1BE + 8, 2);
        assert_eq!(find(&mut m).unwrap().partition.index, 1);
        // At LBA 1 it is, even in another slot, and the GPT decides.
        put_u32(&mut m.bytes, 0x1BE + 8, 1);
        assert_eq!(invalid(&mut m), Invalid::GptSignature);
    }

    #[test]
    fn finds_the_gpt_partition_with_guids_and_name() {
        for (size, slot) in [(128, 0), (128, 5), (256, 3), (1024, 7)] {
            let mut m = gpt_disk(size, slot);
            let f = find(&mut m).unwrap();
            assert_eq!(
                f.partition,
                Partition {
                    index: slot,
                    start: 40,
                    sectors: 20
                },
                "entry size {size}"
            );
            let Table::Gpt(g) = f.table else {
                panic!("not a GPT")
            };
            assert_eq!(g.disk_guid, Guid([0x17; 16]));
            assert_eq!(g.partition_guid, Guid([0x42; 16]));
            assert_eq!(g.alternate_lba, 63);
            let name: std::string::String =
                char::decode_utf16(g.partition_name.iter().copied().take_while(|&c| c != 0))
                    .map(|c| c.unwrap())
                    .collect();
            assert_eq!(name, "bootpack");
        }
    }

    #[test]
    fn reads_the_entry_array_in_bounded_chunks() {
        // 8 entries of 4096 bytes: 64 sectors would not fit the 64-sector
        // test disk with a header, so use 4 entries of 4096 (32 sectors).
        let mut m = gpt_disk(128, 0);
        let h = 512;
        put_u32(&mut m.bytes, h + 80, 4);
        put_u32(&mut m.bytes, h + 84, 4096);
        put_u64(&mut m.bytes, h + 40, 34);
        put_u64(&mut m.bytes, h + 48, 62);
        // Move the entry to where a 4096-byte entry 0 starts (it is there).
        let crc = crc32(&m.bytes[1024..1024 + 4 * 4096]);
        put_u32(&mut m.bytes, h + 88, crc);
        reseal(&mut m);
        let f = find(&mut m).unwrap();
        assert_eq!(f.partition.start, 40);
        // MBR, header, one 32-sector read of the array.
        assert_eq!(m.reads, 3);
    }

    #[test]
    fn refuses_damaged_headers() {
        let mut m = gpt_disk(128, 0);
        m.bytes[512] = b'X';
        assert_eq!(invalid(&mut m), Invalid::GptSignature);

        let mut m = gpt_disk(128, 0);
        put_u32(&mut m.bytes, 512 + 8, 0x0002_0000);
        assert_eq!(invalid(&mut m), Invalid::GptRevision(0x0002_0000));

        let mut m = gpt_disk(128, 0);
        put_u32(&mut m.bytes, 512 + 12, 600);
        assert_eq!(invalid(&mut m), Invalid::GptHeaderSize(600));
        put_u32(&mut m.bytes, 512 + 12, 91);
        assert_eq!(invalid(&mut m), Invalid::GptHeaderSize(91));

        // A flipped bit anywhere in the header's 92 bytes.
        let mut m = gpt_disk(128, 0);
        let stored = u32::from_le_bytes(m.bytes[528..532].try_into().unwrap());
        m.bytes[512 + 60] ^= 1;
        match invalid(&mut m) {
            Invalid::GptHeaderCrc {
                stored: s,
                computed,
            } => {
                assert_eq!(s, stored);
                assert_ne!(computed, stored);
            }
            other => panic!("{other:?}"),
        }
        // Bytes beyond the header's size are not covered.
        let mut m = gpt_disk(128, 0);
        m.bytes[512 + 200] = 1;
        assert!(find(&mut m).is_ok());

        let mut m = gpt_disk(128, 0);
        put_u64(&mut m.bytes, 512 + 24, 63);
        reseal(&mut m);
        assert_eq!(invalid(&mut m), Invalid::GptMyLba(63));

        for (field, value) in [(84, 100u32), (84, 64), (80, 0), (80, 100_000)] {
            let mut m = gpt_disk(128, 0);
            put_u32(&mut m.bytes, 512 + field, value);
            reseal(&mut m);
            assert!(
                matches!(invalid(&mut m), Invalid::GptEntryArray { .. }),
                "field {field} = {value}"
            );
        }
        // The array must sit after the header and before the first usable
        // LBA.
        for lba in [0u64, 1, 3] {
            let mut m = gpt_disk(128, 0);
            put_u64(&mut m.bytes, 512 + 72, lba);
            reseal(&mut m);
            assert_eq!(
                invalid(&mut m),
                Invalid::GptEntryArray {
                    lba,
                    count: 8,
                    size: 128
                }
            );
        }
    }

    #[test]
    fn refuses_damaged_entries_and_a_missing_partition() {
        let mut m = gpt_disk(128, 2);
        m.bytes[1024 + 7 * 128 + 100] ^= 0x80;
        match invalid(&mut m) {
            Invalid::GptEntriesCrc { stored, computed } => assert_ne!(stored, computed),
            other => panic!("{other:?}"),
        }
        let text = invalid(&mut m).to_string();
        assert!(
            text.starts_with("the GPT partition entries checksum mismatch (stored 0x")
                && text.ends_with("): the disk image is damaged, rebuild it"),
            "{text}"
        );

        // Retyped (CRC kept right): no partition.
        let mut m = gpt_disk(128, 2);
        m.bytes[1024 + 2 * 128] ^= 1;
        let crc = crc32(&m.bytes[1024..1024 + 8 * 128]);
        put_u32(&mut m.bytes, 512 + 88, crc);
        reseal(&mut m);
        assert_eq!(invalid(&mut m), Invalid::NoGptPartition);
        assert_eq!(
            Invalid::NoGptPartition.to_string(),
            "no bootpack partition (type 9C10AB89-B1B8-4942-9D1F-A97FC58B4B20) in the GPT"
        );

        // Beyond the last usable LBA.
        let mut m = gpt_disk(128, 2);
        put_u64(&mut m.bytes, 1024 + 2 * 128 + 40, 70);
        let crc = crc32(&m.bytes[1024..1024 + 8 * 128]);
        put_u32(&mut m.bytes, 512 + 88, crc);
        reseal(&mut m);
        assert_eq!(
            invalid(&mut m),
            Invalid::GptPartitionOutside {
                index: 2,
                first: 40,
                last: 70,
                first_usable: 4,
                last_usable: 60
            }
        );
        assert_eq!(
            invalid(&mut m).to_string(),
            "GPT partition 3 (LBA 0x28-0x46) is not within the usable LBA 0x4-0x3C: the disk image is damaged, rebuild it"
        );
    }

    #[test]
    fn passes_read_errors_on() {
        // An array named past the (64-sector) disk's end: a read error.
        let mut m = gpt_disk(128, 0);
        put_u64(&mut m.bytes, 512 + 72, 63);
        put_u64(&mut m.bytes, 512 + 40, 65);
        put_u64(&mut m.bytes, 512 + 48, 80);
        reseal(&mut m);
        assert!(matches!(find(&mut m), Err(TableError::Read(63))));
    }

    #[test]
    fn guids_print_in_the_usual_form() {
        assert_eq!(
            BOOTPACK_TYPE_GUID.to_string(),
            "9C10AB89-B1B8-4942-9D1F-A97FC58B4B20"
        );
        assert_eq!(
            &BOOTPACK_TYPE_GUID.0[..8],
            &[0x89, 0xAB, 0x10, 0x9C, 0xB8, 0xB1, 0x42, 0x49]
        );
    }
}
