//! The disk's data runs: the parts of it that hold non-zero bytes, found by
//! scanning the extents only (never the empty rest of the disk).
//!
//! Runs are made of whole 4 KiB blocks aligned to the disk (the last one
//! may stop at the disk's end), the unit file systems allocate. A block of
//! an extent that is all zero is left out, just as the raw writer leaves it
//! a hole; so the gce tar's sparse map is exactly what GNU tar finds in the
//! raw image with SEEK_DATA/SEEK_HOLE, and zero-filled parts of a kernel
//! cost nothing in any format.

use crate::proto::checksum::Fletcher64;

use crate::disk::Disk;

/// The block size runs are made of.
pub(crate) const BLOCK: u64 = 4096;

/// `len` bytes of the disk from `offset` with non-zero data in them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Run {
    pub offset: u64,
    pub len: u64,
}

impl Run {
    pub fn end(&self) -> u64 {
        self.offset + self.len
    }
}

/// The data runs of `disk`, sorted, not touching each other (a gap of at
/// least one block lies between two runs).
pub(crate) fn data_runs(disk: &Disk) -> Vec<Run> {
    let mut runs: Vec<Run> = Vec::new();
    let mut push = |start: u64, end: u64| match runs.last_mut() {
        Some(last) if last.end() >= start => last.len = last.len.max(end - last.offset),
        _ => runs.push(Run {
            offset: start,
            len: end - start,
        }),
    };
    for e in &disk.extents {
        let mut block = e.offset / BLOCK * BLOCK;
        while block < e.end() {
            let next = block + BLOCK;
            // The part of this block the extent covers; the rest of the
            // block is zero or belongs to a neighbouring extent, which
            // pushes the block itself if it has data there.
            let from = (block.max(e.offset) - e.offset) as usize;
            let to = (next.min(e.end()) - e.offset) as usize;
            if !is_zero(&e.data[from..to]) {
                push(block, next.min(disk.size));
            }
            block = next;
        }
    }
    runs
}

/// Whether every byte is zero. The scan touches every byte of every
/// extent, so it ORs 64-byte chunks (which the compiler vectorises) rather
/// than stopping at the first non-zero byte.
pub(crate) fn is_zero(bytes: &[u8]) -> bool {
    let mut chunks = bytes.chunks_exact(64);
    chunks
        .by_ref()
        .all(|c| c.iter().fold(0u8, |acc, &b| acc | b) == 0)
        && chunks.remainder().iter().all(|&b| b == 0)
}

/// The indices of the `block`-sized blocks of the disk that hold data, in
/// order, each once. `block` is a multiple of [`BLOCK`].
pub(crate) fn used_blocks(runs: &[Run], block: u64) -> Vec<u64> {
    debug_assert!(block.is_multiple_of(BLOCK));
    let mut out: Vec<u64> = Vec::new();
    for r in runs {
        let (first, last) = (r.offset / block, (r.end() - 1) / block);
        let start = match out.last() {
            Some(&l) if l >= first => l + 1,
            _ => first,
        };
        out.extend(start..=last);
    }
    out
}

/// Calls `f(offset, bytes)` for the data of `runs` that falls in
/// `[from, to)`, in order, in pieces of at most `piece` bytes: borrowed
/// from the extent that holds a piece whole (the usual case: the kernel's
/// data), else assembled in a reused buffer.
pub(crate) fn for_each_piece(
    disk: &Disk,
    runs: &[Run],
    from: u64,
    to: u64,
    piece: usize,
    mut f: impl FnMut(u64, &[u8]) -> std::io::Result<()>,
) -> std::io::Result<()> {
    let mut buf = Vec::new();
    let first = runs.partition_point(|r| r.end() <= from);
    for r in runs[first..].iter().take_while(|r| r.offset < to) {
        let mut at = r.offset.max(from);
        let end = r.end().min(to);
        while at < end {
            let n = ((end - at) as usize).min(piece);
            match disk.contiguous(at, n) {
                Some(bytes) => f(at, bytes)?,
                None => {
                    buf.resize(piece, 0);
                    disk.read_at(at, &mut buf[..n]);
                    f(at, &buf[..n])?;
                }
            }
            at += n as u64;
        }
    }
    Ok(())
}

/// How many bytes of `runs` fall in `[from, to)`.
pub(crate) fn data_in(runs: &[Run], from: u64, to: u64) -> u64 {
    let first = runs.partition_point(|r| r.end() <= from);
    runs[first..]
        .iter()
        .take_while(|r| r.offset < to)
        .map(|r| r.end().min(to) - r.offset.max(from))
        .sum()
}

/// A 128-bit identifier of the disk's content (its size and its data runs
/// with their places): the same disk always gets the same id, different
/// disks almost surely different ones. Used where formats want a unique id
/// (VHD's unique id, VMDK's CID) so output stays reproducible. Not a
/// cryptographic hash: two independent checksums, Fletcher-64 over words
/// and CRC-32, each over the same stream.
pub(crate) fn content_id(disk: &Disk, runs: &[Run]) -> [u8; 16] {
    let mut fl = Fletcher64::new();
    let mut crc = flate2::Crc::new();
    let mut feed = |bytes: &[u8]| {
        fl.update_padded(bytes);
        crc.update(bytes);
    };
    feed(&disk.size.to_le_bytes());
    let mut buf = vec![0u8; 1 << 20];
    for r in runs {
        feed(&r.offset.to_le_bytes());
        feed(&r.len.to_le_bytes());
        let mut at = r.offset;
        while at < r.end() {
            let n = ((r.end() - at) as usize).min(buf.len());
            disk.read_at(at, &mut buf[..n]);
            feed(&buf[..n]);
            at += n as u64;
        }
    }
    let mut id = [0u8; 16];
    id[..8].copy_from_slice(&fl.finish().to_le_bytes());
    id[8..12].copy_from_slice(&crc.sum().to_le_bytes());
    id[12..].copy_from_slice(&(runs.len() as u32).to_le_bytes());
    id
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::disk::Extent;

    #[test]
    fn runs_skip_zero_blocks_and_merge_neighbours() {
        // Extent 1: data in block 0 and block 2, zeros in block 1.
        let mut a = vec![0u8; 3 * 4096];
        a[10] = 1;
        a[2 * 4096 + 5] = 2;
        // Extent 2 starts mid-block 3 and runs into block 4 (all zero) and
        // 5; extent 3 is all zero.
        let mut b = vec![0u8; 4096 + 4096 + 100];
        b[0] = 3;
        b[4096 + 4096 + 50] = 4;
        let z = vec![0u8; 8192];
        let disk = Disk::new(
            64 * 4096 + 512,
            vec![
                Extent {
                    offset: 0,
                    data: &a,
                },
                Extent {
                    offset: 3 * 4096 + 100,
                    data: &b,
                },
                Extent {
                    offset: 10 * 4096,
                    data: &z,
                },
            ],
        );
        let runs = data_runs(&disk);
        assert_eq!(
            runs,
            vec![
                Run {
                    offset: 0,
                    len: 4096
                },
                Run {
                    offset: 2 * 4096,
                    len: 2 * 4096
                },
                Run {
                    offset: 5 * 4096,
                    len: 4096
                },
            ]
        );
        assert_eq!(used_blocks(&runs, 8192), vec![0, 1, 2]);
        assert_eq!(used_blocks(&runs, 65536), vec![0]);
        assert_eq!(data_in(&runs, 0, 65536), 4 * 4096);
        assert_eq!(data_in(&runs, 4096 + 1, 3 * 4096 + 1), 4096 + 1);
    }

    #[test]
    fn the_last_run_stops_at_the_disk_end() {
        let d = [7u8; 512];
        let disk = Disk::new(
            8192 + 512,
            vec![Extent {
                offset: 8192,
                data: &d,
            }],
        );
        assert_eq!(
            data_runs(&disk),
            vec![Run {
                offset: 8192,
                len: 512
            }]
        );
    }

    #[test]
    fn pieces_cover_the_runs_in_a_window() {
        let a: Vec<u8> = (0..3 * 4096).map(|i| (i % 251) as u8 + 1).collect();
        let disk = Disk::new(
            1 << 20,
            vec![Extent {
                offset: 4096,
                data: &a,
            }],
        );
        let runs = data_runs(&disk);
        let mut got = Vec::new();
        for_each_piece(&disk, &runs, 5000, 3 * 4096, 3000, |at, b| {
            got.push((at, b.len(), b[0]));
            Ok(())
        })
        .unwrap();
        assert_eq!(
            got,
            vec![
                (5000, 3000, a[5000 - 4096]),
                (8000, 3000, a[8000 - 4096]),
                (11000, 1288, a[11000 - 4096])
            ]
        );
    }

    #[test]
    fn content_id_follows_content_not_extent_boundaries() {
        let a = [1u8, 2, 3, 4];
        let one = Disk::new(
            1 << 20,
            vec![Extent {
                offset: 0,
                data: &a,
            }],
        );
        let split = Disk::new(
            1 << 20,
            vec![
                Extent {
                    offset: 0,
                    data: &a[..2],
                },
                Extent {
                    offset: 2,
                    data: &a[2..],
                },
            ],
        );
        let moved = Disk::new(
            1 << 20,
            vec![Extent {
                offset: 4096,
                data: &a,
            }],
        );
        let bigger = Disk::new(
            2 << 20,
            vec![Extent {
                offset: 0,
                data: &a,
            }],
        );
        let id = |d: &Disk| content_id(d, &data_runs(d));
        assert_eq!(id(&one), id(&split));
        assert_ne!(id(&one), id(&moved));
        assert_ne!(id(&one), id(&bigger));
        assert!(is_zero(&[0; 100]) && !is_zero(&[0, 0, 0, 0, 0, 0, 0, 0, 0, 1]));
    }
}
