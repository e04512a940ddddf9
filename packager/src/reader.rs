//! Reading a disk's bytes back out of the VM image formats bootpack writes,
//! so `inspect` can check any image without converting it first.
//!
//! Only what bootpack writes needs to be read, but the readers follow the
//! formats, not bootpack's writers: a stream-optimized VMDK is read through
//! its grain directory (found in the footer when the header says "at the
//! end"), a qcow2 through its L1 and L2 tables. Unallocated areas read as
//! zeros.

use std::fs::File;
use std::io::{self, Read};
use std::os::unix::fs::FileExt;

fn invalid(what: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what)
}

/// Reads `len` bytes at `offset` of `file` into a new buffer, after checking
/// that the file holds them: a damaged header cannot make a reader allocate
/// what it names.
fn read_vec(file: &File, len: u64, offset: u64) -> io::Result<Vec<u8>> {
    let file_len = file.metadata()?.len();
    if offset.checked_add(len).is_none_or(|end| end > file_len) {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            format!("{len} bytes at offset {offset:#x} lie beyond the file's end ({file_len:#x})"),
        ));
    }
    let mut v = vec![0u8; len as usize];
    file.read_exact_at(&mut v, offset)?;
    Ok(v)
}

fn overflow(what: &str) -> io::Error {
    invalid(format!("{what} out of range"))
}

fn le32(b: &[u8], o: usize) -> u32 {
    u32::from_le_bytes(b[o..o + 4].try_into().unwrap())
}
fn le64(b: &[u8], o: usize) -> u64 {
    u64::from_le_bytes(b[o..o + 8].try_into().unwrap())
}
fn be32(b: &[u8], o: usize) -> u32 {
    u32::from_be_bytes(b[o..o + 4].try_into().unwrap())
}
fn be64(b: &[u8], o: usize) -> u64 {
    u64::from_be_bytes(b[o..o + 8].try_into().unwrap())
}

/// Copies the disk range [at, at + buf.len()) block by block: `block(i)`
/// returns block i's bytes (None for an unallocated, all-zero block).
fn read_blocks(
    at: u64,
    buf: &mut [u8],
    block_size: u64,
    disk_size: u64,
    mut block: impl FnMut(u64) -> io::Result<Option<Vec<u8>>>,
) -> io::Result<()> {
    let end = at.saturating_add(buf.len() as u64);
    if end > disk_size {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            format!("offset {at:#x} is past the disk's end"),
        ));
    }
    let mut pos = at;
    while pos < end {
        let index = pos / block_size;
        let within = pos % block_size;
        let n = (block_size - within).min(end - pos) as usize;
        let out = &mut buf[(pos - at) as usize..][..n];
        match block(index)? {
            Some(data) => out.copy_from_slice(&data[within as usize..within as usize + n]),
            None => out.fill(0),
        }
        pos += n as u64;
    }
    Ok(())
}

/// A stream-optimized (or any monolithic sparse, compressed) VMDK.
pub struct Vmdk {
    file: File,
    capacity: u64,
    grain: u64,
    gtes_per_gt: u64,
    directory: Vec<u32>,
}

impl Vmdk {
    /// Opens a stream-optimized VMDK, reading its grain directory.
    pub fn open(file: File) -> io::Result<Vmdk> {
        let mut header = [0u8; 512];
        file.read_exact_at(&mut header, 0)?;
        if &header[..4] != b"KDMV" {
            return Err(invalid("not a VMDK sparse extent (no KDMV magic)".into()));
        }
        let mut gd_offset = le64(&header, 56);
        if gd_offset == u64::MAX {
            // The header is rewritten in the footer, two sectors before the
            // end-of-stream marker, with the directory's real place.
            let len = file.metadata()?.len();
            if len < 1536 {
                return Err(invalid("VMDK too short for a footer".into()));
            }
            file.read_exact_at(&mut header, len - 1024)?;
            if &header[..4] != b"KDMV" {
                return Err(invalid("VMDK footer has no KDMV magic".into()));
            }
            gd_offset = le64(&header, 56);
        }
        let capacity = le64(&header, 12)
            .checked_mul(512)
            .ok_or_else(|| overflow("VMDK capacity"))?;
        let grain = le64(&header, 20).saturating_mul(512);
        let gtes_per_gt = le32(&header, 44) as u64;
        // Grains are 8 sectors or more by the specification, 64 KiB in
        // practice; more than 16 MiB is a damaged header.
        if !(4096..=16 << 20).contains(&grain) || gtes_per_gt == 0 || !grain.is_power_of_two() {
            return Err(invalid(format!(
                "VMDK grain size {grain} / {gtes_per_gt} GTEs per table"
            )));
        }
        let tables = capacity.div_ceil(grain * gtes_per_gt);
        let gd = read_vec(
            &file,
            tables.saturating_mul(4),
            gd_offset.saturating_mul(512),
        )?;
        let directory = gd
            .chunks_exact(4)
            .map(|c| u32::from_le_bytes(c.try_into().unwrap()))
            .collect();
        Ok(Vmdk {
            file,
            capacity,
            grain,
            gtes_per_gt,
            directory,
        })
    }

    /// The virtual disk's size in bytes.
    pub fn size(&self) -> u64 {
        self.capacity
    }

    fn grain(&self, index: u64) -> io::Result<Option<Vec<u8>>> {
        let table = self
            .directory
            .get((index / self.gtes_per_gt) as usize)
            .copied()
            .unwrap_or(0);
        if table == 0 {
            return Ok(None);
        }
        let mut gte = [0u8; 4];
        let gte_at = (index % self.gtes_per_gt)
            .checked_mul(4)
            .and_then(|o| o.checked_add(table as u64 * 512))
            .ok_or_else(|| overflow("VMDK grain table entry"))?;
        self.file.read_exact_at(&mut gte, gte_at)?;
        let at = u32::from_le_bytes(gte) as u64;
        if at == 0 {
            return Ok(None);
        }
        // A grain marker: the grain's LBA (u64), the compressed size (u32),
        // then the zlib stream.
        let mut marker = [0u8; 12];
        self.file.read_exact_at(&mut marker, at * 512)?;
        let size = le32(&marker, 8) as u64;
        let compressed = read_vec(&self.file, size, at * 512 + 12)?;
        let mut data = Vec::with_capacity(self.grain as usize);
        flate2::read::ZlibDecoder::new(&compressed[..])
            .take(self.grain)
            .read_to_end(&mut data)
            .map_err(|e| invalid(format!("VMDK grain {index}: {e}")))?;
        data.resize(self.grain as usize, 0);
        Ok(Some(data))
    }

    /// Reads virtual disk bytes at `at` into `buf` (unallocated grains read as zeros).
    pub fn read_at(&mut self, at: u64, buf: &mut [u8]) -> io::Result<()> {
        let (grain, size) = (self.grain, self.capacity);
        read_blocks(at, buf, grain, size, |i| self.grain(i))
    }
}

/// A qcow2 image (version 2 or 3, uncompressed clusters, no backing file).
pub struct Qcow2 {
    file: File,
    size: u64,
    cluster_bits: u32,
    l1: Vec<u64>,
}

/// Bits of an L1/L2 entry that hold the host offset.
const OFFSET_MASK: u64 = 0x00ff_ffff_ffff_fe00;
const COMPRESSED: u64 = 1 << 62;
const ZERO: u64 = 1;

impl Qcow2 {
    /// Opens a qcow2 image, reading its header and L1 table.
    pub fn open(file: File) -> io::Result<Qcow2> {
        let mut h = [0u8; 104];
        file.read_exact_at(&mut h[..72], 0)?;
        if &h[..4] != b"QFI\xfb" {
            return Err(invalid("not a qcow2 image".into()));
        }
        if be64(&h, 8) != 0 {
            return Err(invalid("qcow2 with a backing file".into()));
        }
        let cluster_bits = be32(&h, 20);
        if !(9..=21).contains(&cluster_bits) {
            return Err(invalid(format!("qcow2 cluster_bits {cluster_bits}")));
        }
        let size = be64(&h, 24);
        let l1_size = be32(&h, 36) as u64;
        let l1 = read_vec(&file, l1_size * 8, be64(&h, 40))?;
        let l1 = l1
            .chunks_exact(8)
            .map(|c| u64::from_be_bytes(c.try_into().unwrap()))
            .collect();
        Ok(Qcow2 {
            file,
            size,
            cluster_bits,
            l1,
        })
    }

    /// The virtual disk's size in bytes.
    pub fn size(&self) -> u64 {
        self.size
    }

    fn cluster(&self, index: u64) -> io::Result<Option<Vec<u8>>> {
        let per_l2 = 1u64 << (self.cluster_bits - 3);
        let l2 = self.l1.get((index / per_l2) as usize).copied().unwrap_or(0) & OFFSET_MASK;
        if l2 == 0 {
            return Ok(None);
        }
        let mut e = [0u8; 8];
        let e_at = (index % per_l2)
            .checked_mul(8)
            .and_then(|o| o.checked_add(l2))
            .ok_or_else(|| overflow("qcow2 L2 entry"))?;
        self.file.read_exact_at(&mut e, e_at)?;
        let entry = u64::from_be_bytes(e);
        if entry & COMPRESSED != 0 {
            return Err(invalid(format!(
                "qcow2 cluster {index} is compressed; bootpack does not write those"
            )));
        }
        let host = entry & OFFSET_MASK;
        if host == 0 || entry & ZERO != 0 {
            return Ok(None);
        }
        let mut data = vec![0u8; 1 << self.cluster_bits];
        self.file.read_exact_at(&mut data, host)?;
        Ok(Some(data))
    }

    /// Reads virtual disk bytes at `at` into `buf` (unallocated clusters read as zeros).
    pub fn read_at(&mut self, at: u64, buf: &mut [u8]) -> io::Result<()> {
        let (cluster, size) = (1u64 << self.cluster_bits, self.size);
        read_blocks(at, buf, cluster, size, |i| self.cluster(i))
    }
}
