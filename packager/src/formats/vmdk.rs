//! Stream-optimized VMDK, the form AWS VM Import, VMware and VirtualBox
//! take (VMware "Virtual Disk Format 5.0", stream-optimized sparse extent).
//!
//! ```text
//! sector 0     header (KDMV v3, compressed grains + markers, GD at end)
//! sector 1     the embedded descriptor (createType="streamOptimized")
//! sector 128   grains with data, in LBA order: grain marker (LBA, size),
//!              zlib data, padding to a sector; after the last grain of
//!              each 512-grain group, a GT marker and its grain table
//! then         GD marker + grain directory, footer marker + a copy of the
//!              header with the directory's place, end-of-stream marker
//! ```
//!
//! The file is written front to back in one pass (it is a stream format);
//! only grains holding data are written and only grain tables with
//! entries, so the empty part of the disk costs a few zero entries of the
//! directory. Grains are compressed on every core in fixed batches, so the
//! output does not depend on the thread count.

use std::fs::File;
use std::io::{self, BufWriter, Write};

use flate2::{Compress, Compression};

use super::runs::{self, Run};
use super::{context, gzip, parallel, Progress};
use crate::disk::Disk;

const SECTOR: u64 = 512;
/// Grain size: 128 sectors (64 KiB), VMware's and QEMU's.
pub(crate) const GRAIN: u64 = 128 * SECTOR;
/// Grain table entries per table: 512, so a table covers 32 MiB.
const GTES: u64 = 512;
/// Where the first grain goes: one grain in, as VMware's tools write it.
const OVERHEAD_SECTORS: u64 = 128;
/// Grains compressed per work item: 256 KiB, small enough to spread a
/// few MiB of data evenly over the cores.
const BATCH: usize = 4;

const FLAG_NEWLINE_TEST: u32 = 1;
const FLAG_COMPRESSED: u32 = 1 << 16;
const FLAG_MARKERS: u32 = 1 << 17;
const GD_AT_END: u64 = u64::MAX;

const MARKER_EOS: u32 = 0;
const MARKER_GT: u32 = 1;
const MARKER_GD: u32 = 2;
const MARKER_FOOTER: u32 = 3;

/// The extent's file name in the descriptor. In a monolithic file with an
/// embedded descriptor the extent is the file itself; readers go by the
/// header, not this name.
const EXTENT_NAME: &str = "disk.vmdk";

pub(crate) fn write(
    disk: &Disk,
    runs: &[Run],
    out: &mut File,
    progress: &mut Progress,
) -> io::Result<()> {
    let capacity = disk.size / SECTOR;
    let id = runs::content_id(disk, runs);
    let cid = u32::from_le_bytes(id[..4].try_into().unwrap()) % 0xFFFF_FFFE;
    let descriptor = descriptor(capacity, cid);
    let desc_sectors = (descriptor.len() as u64).div_ceil(SECTOR);
    assert!(
        desc_sectors < OVERHEAD_SECTORS,
        "the descriptor fits before the grains"
    );
    let head = header(capacity, desc_sectors, GD_AT_END);

    let mut out = Writer {
        out: BufWriter::with_capacity(1 << 20, out),
        sector: 0,
    };
    let mut start = head.to_vec();
    start.extend_from_slice(&descriptor);
    start.resize((OVERHEAD_SECTORS * SECTOR) as usize, 0);
    out.write(&start)
        .map_err(context("writing the VMDK header"))?;

    let grains = runs::used_blocks(runs, GRAIN);
    let gts = capacity.div_ceil(GTES * (GRAIN / SECTOR));
    let mut gd = vec![0u32; gts as usize];
    let mut gt = Table {
        index: None,
        entries: vec![0u32; GTES as usize],
    };
    let batches = grains.len().div_ceil(BATCH);
    parallel::ordered(
        batches,
        |b| {
            let batch = &grains[b * BATCH..((b + 1) * BATCH).min(grains.len())];
            compress_grains(disk, batch)
        },
        |b, records| {
            let batch = &grains[b * BATCH..((b + 1) * BATCH).min(grains.len())];
            for (&g, record) in batch.iter().zip(records?) {
                if gt.index != Some(g / GTES) {
                    gt.flush(&mut out, &mut gd)?;
                    gt.index = Some(g / GTES);
                }
                gt.entries[(g % GTES) as usize] = out.sector_u32()?;
                out.write(&record)?;
                progress.advance(runs::data_in(runs, g * GRAIN, (g + 1) * GRAIN));
            }
            Ok(())
        },
    )
    .map_err(context("writing the VMDK grains"))?;
    gt.flush(&mut out, &mut gd)
        .map_err(context("writing a VMDK grain table"))?;

    let gd_bytes: Vec<u8> = gd.iter().flat_map(|e| e.to_le_bytes()).collect();
    let gd_sectors = (gd_bytes.len() as u64).div_ceil(SECTOR);
    out.write(&marker(gd_sectors, MARKER_GD))
        .map_err(context("writing the VMDK grain directory"))?;
    let gd_offset = out.sector;
    out.write_padded(&gd_bytes)
        .map_err(context("writing the VMDK grain directory"))?;

    let mut tail = marker(1, MARKER_FOOTER).to_vec();
    tail.extend_from_slice(&header(capacity, desc_sectors, gd_offset));
    tail.extend_from_slice(&marker(0, MARKER_EOS));
    out.write(&tail)
        .map_err(context("writing the VMDK footer"))?;
    out.out.flush().map_err(context("writing the VMDK footer"))
}

/// A sequential writer that knows its position in sectors.
struct Writer<W: Write> {
    out: W,
    sector: u64,
}

impl<W: Write> Writer<W> {
    /// Writes whole sectors.
    fn write(&mut self, bytes: &[u8]) -> io::Result<()> {
        debug_assert!((bytes.len() as u64).is_multiple_of(SECTOR));
        self.out.write_all(bytes)?;
        self.sector += bytes.len() as u64 / SECTOR;
        Ok(())
    }

    fn write_padded(&mut self, bytes: &[u8]) -> io::Result<()> {
        let mut v = bytes.to_vec();
        v.resize(v.len().div_ceil(SECTOR as usize) * SECTOR as usize, 0);
        self.write(&v)
    }

    /// The current sector as a table entry (tables hold 32-bit sectors).
    fn sector_u32(&self) -> io::Result<u32> {
        u32::try_from(self.sector).map_err(|_| {
            io::Error::other("the VMDK passes 2 TiB, beyond what its grain tables address")
        })
    }
}

/// The grain table being filled: which one, and its entries.
struct Table {
    index: Option<u64>,
    entries: Vec<u32>,
}

impl Table {
    /// Writes the table (if any) with its marker, records it in the
    /// directory and clears it for the next.
    fn flush<W: Write>(&mut self, out: &mut Writer<W>, gd: &mut [u32]) -> io::Result<()> {
        let Some(index) = self.index.take() else {
            return Ok(());
        };
        let bytes: Vec<u8> = self.entries.iter().flat_map(|e| e.to_le_bytes()).collect();
        out.write(&marker(bytes.len() as u64 / SECTOR, MARKER_GT))?;
        gd[index as usize] = out.sector_u32()?;
        out.write(&bytes)?;
        self.entries.fill(0);
        Ok(())
    }
}

/// Each grain of `batch` as it goes in the file: a grain marker (the
/// grain's first LBA and the compressed size), its zlib stream, zero
/// padding to a sector.
fn compress_grains(disk: &Disk, batch: &[u64]) -> io::Result<Vec<Vec<u8>>> {
    let mut buf = vec![0u8; GRAIN as usize];
    let mut c = Compress::new(Compression::default(), true);
    batch
        .iter()
        .map(|&g| {
            disk.read_at(g * GRAIN, &mut buf);
            c.reset();
            let mut record = Vec::with_capacity(GRAIN as usize / 2);
            record.extend_from_slice(&(g * GRAIN / SECTOR).to_le_bytes());
            record.extend_from_slice(&[0; 4]);
            gzip::deflate_into(&mut c, &buf, &mut record, true)?;
            let size = (record.len() - 12) as u32;
            record[8..12].copy_from_slice(&size.to_le_bytes());
            record.resize(record.len().div_ceil(SECTOR as usize) * SECTOR as usize, 0);
            Ok(record)
        })
        .collect()
}

/// A metadata marker sector: the sectors of metadata that follow, size 0,
/// the type. The end-of-stream marker is all zero.
fn marker(sectors: u64, kind: u32) -> [u8; SECTOR as usize] {
    let mut m = [0u8; SECTOR as usize];
    m[..8].copy_from_slice(&sectors.to_le_bytes());
    m[12..16].copy_from_slice(&kind.to_le_bytes());
    m
}

/// The sparse extent header (little-endian).
fn header(capacity: u64, desc_sectors: u64, gd_offset: u64) -> [u8; SECTOR as usize] {
    let mut h = [0u8; SECTOR as usize];
    h[0..4].copy_from_slice(b"KDMV");
    h[4..8].copy_from_slice(&3u32.to_le_bytes());
    let flags = FLAG_NEWLINE_TEST | FLAG_COMPRESSED | FLAG_MARKERS;
    h[8..12].copy_from_slice(&flags.to_le_bytes());
    h[12..20].copy_from_slice(&capacity.to_le_bytes());
    h[20..28].copy_from_slice(&(GRAIN / SECTOR).to_le_bytes());
    h[28..36].copy_from_slice(&1u64.to_le_bytes()); // descriptor offset
    h[36..44].copy_from_slice(&desc_sectors.to_le_bytes());
    h[44..48].copy_from_slice(&(GTES as u32).to_le_bytes());
    // 48..56: redundant grain directory: none.
    h[56..64].copy_from_slice(&gd_offset.to_le_bytes());
    h[64..72].copy_from_slice(&OVERHEAD_SECTORS.to_le_bytes());
    // 72: unclean shutdown 0. The newline-detection characters, which
    // show a file that went through a text-mode transfer:
    h[73..77].copy_from_slice(b"\n \r\n");
    h[77..79].copy_from_slice(&1u16.to_le_bytes()); // compression: deflate
    h
}

/// The embedded descriptor. Geometry as QEMU writes it for an IDE disk:
/// 16 heads, 63 sectors, cylinders capped at 16383.
fn descriptor(capacity: u64, cid: u32) -> Vec<u8> {
    let cylinders = (capacity / (16 * 63)).min(16383);
    format!(
        "# Disk DescriptorFile\n\
         version=1\n\
         CID={cid:08x}\n\
         parentCID=ffffffff\n\
         createType=\"streamOptimized\"\n\
         \n\
         # Extent description\n\
         RW {capacity} SPARSE \"{EXTENT_NAME}\"\n\
         \n\
         # The Disk Data Base\n\
         #DDB\n\
         \n\
         ddb.virtualHWVersion = \"4\"\n\
         ddb.geometry.cylinders = \"{cylinders}\"\n\
         ddb.geometry.heads = \"16\"\n\
         ddb.geometry.sectors = \"63\"\n\
         ddb.adapterType = \"ide\"\n"
    )
    .into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn u32_at(b: &[u8], o: usize) -> u32 {
        u32::from_le_bytes(b[o..o + 4].try_into().unwrap())
    }
    fn u64_at(b: &[u8], o: usize) -> u64 {
        u64::from_le_bytes(b[o..o + 8].try_into().unwrap())
    }

    #[test]
    fn header_fields() {
        let h = header(2 << 21, 1, 77);
        assert_eq!(&h[..4], b"KDMV");
        assert_eq!(u32_at(&h, 4), 3);
        assert_eq!(u32_at(&h, 8), 0x3_0001);
        assert_eq!(u64_at(&h, 12), 2 << 21);
        assert_eq!(u64_at(&h, 20), 128);
        assert_eq!((u64_at(&h, 28), u64_at(&h, 36)), (1, 1));
        assert_eq!(u32_at(&h, 44), 512);
        assert_eq!((u64_at(&h, 48), u64_at(&h, 56)), (0, 77));
        assert_eq!(u64_at(&h, 64), 128);
        assert_eq!(&h[72..79], &[0, b'\n', b' ', b'\r', b'\n', 1, 0]);
        assert_eq!(u64_at(&header(8, 1, GD_AT_END), 56), u64::MAX);
    }

    #[test]
    fn descriptor_fits_one_sector_and_names_the_type() {
        let d = String::from_utf8(descriptor(64 << 21, 0x1234abcd)).unwrap();
        assert!(d.len() <= 512, "{}", d.len());
        assert!(d.contains("CID=1234abcd\n"));
        assert!(d.contains("createType=\"streamOptimized\""));
        assert!(d.contains(&format!("RW {} SPARSE", 64u64 << 21)));
        assert!(d.contains("cylinders = \"16383\""));
    }

    #[test]
    fn grains_are_marked_zlib_streams() {
        let data: Vec<u8> = (0..100_000u32).map(|i| (i % 7) as u8).collect();
        let disk = Disk::new(
            1 << 20,
            vec![crate::disk::Extent {
                offset: GRAIN,
                data: &data,
            }],
        );
        let recs = compress_grains(&disk, &[1, 2]).unwrap();
        for (r, g) in recs.iter().zip([1u64, 2]) {
            assert!((r.len() as u64).is_multiple_of(SECTOR));
            assert_eq!(u64_at(r, 0), g * 128);
            let size = u32_at(r, 8) as usize;
            let mut back = Vec::new();
            flate2::read::ZlibDecoder::new(&r[12..12 + size])
                .read_to_end(&mut back)
                .unwrap();
            let mut want = vec![0u8; GRAIN as usize];
            disk.read_at(g * GRAIN, &mut want);
            assert_eq!(back, want);
        }
        assert_eq!(
            &marker(4, MARKER_GT)[..16],
            &[4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0]
        );
    }
}
