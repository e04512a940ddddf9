//! qcow2 version 3 (QEMU's "qcow2 Image File Format", compat=1.1, what
//! `qemu-img create -f qcow2` makes today), 64 KiB clusters, uncompressed:
//! readers decompress nothing and the writer is as fast as a raw copy.
//!
//! Every cluster is decided before anything is written, so refcounts are
//! exact and there are no leaks:
//!
//! ```text
//! cluster 0           header
//! 1..                 refcount table
//! then                refcount blocks (16-bit refcounts, all 1)
//! then                L1 table
//! then                one L2 table per 512 MiB of the disk that holds data
//! then                the data clusters, in guest order
//! ```
//!
//! Only clusters holding data are allocated; inside them, all-zero 4 KiB
//! blocks are left as holes in the file.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;

use super::runs::{self, Run};
use super::{context, Progress};
use crate::disk::Disk;

const CLUSTER_BITS: u32 = 16;
const CLUSTER: u64 = 1 << CLUSTER_BITS;
/// 8-byte entries per L2 table (and per cluster of L1 / refcount table).
const ENTRIES: u64 = CLUSTER / 8;
/// refcount_order 4: 16-bit refcounts, QEMU's default.
const REFCOUNT_ORDER: u32 = 4;
const REFCOUNTS_PER_BLOCK: u64 = CLUSTER * 8 / (1 << REFCOUNT_ORDER);
/// L1/L2 flag: refcount is exactly 1, the cluster may be written in place.
/// `qemu-img check` reports its absence as an error.
const COPIED: u64 = 1 << 63;
const HEADER_LEN: u32 = 104;

/// Where everything goes, in clusters.
#[derive(Debug, PartialEq)]
struct Layout {
    size: u64,
    reftable: u64,
    reftable_clusters: u64,
    refblocks: u64,
    refblock_count: u64,
    l1: u64,
    l1_entries: u64,
    /// (L1 index, cluster of its L2 table), in order.
    l2: Vec<(u64, u64)>,
    /// Guest clusters holding data, in order; guest `data[i]` is stored
    /// in cluster `data_start + i`.
    data: Vec<u64>,
    data_start: u64,
    clusters: u64,
}

impl Layout {
    fn new(size: u64, runs: &[Run]) -> Layout {
        let data = runs::used_blocks(runs, CLUSTER);
        let l1_entries = size.div_ceil(CLUSTER * ENTRIES);
        let l1_clusters = (l1_entries * 8).div_ceil(CLUSTER).max(1);
        let mut l1_used: Vec<u64> = data.iter().map(|g| g / ENTRIES).collect();
        l1_used.dedup();
        let fixed = 1 + l1_clusters + l1_used.len() as u64 + data.len() as u64;
        // The refcount blocks and table count themselves: grow them until
        // they cover everything, themselves included.
        let (mut blocks, mut table) = (1, 1);
        loop {
            let total = fixed + blocks + table;
            let b = total.div_ceil(REFCOUNTS_PER_BLOCK);
            let t = (b * 8).div_ceil(CLUSTER);
            if (b, t) == (blocks, table) {
                break;
            }
            (blocks, table) = (b.max(blocks), t.max(table));
        }
        let reftable = 1;
        let refblocks = reftable + table;
        let l1 = refblocks + blocks;
        let l2_start = l1 + l1_clusters;
        let data_start = l2_start + l1_used.len() as u64;
        Layout {
            size,
            reftable,
            reftable_clusters: table,
            refblocks,
            refblock_count: blocks,
            l1,
            l1_entries,
            l2: l1_used
                .iter()
                .enumerate()
                .map(|(i, &l1i)| (l1i, l2_start + i as u64))
                .collect(),
            data_start,
            clusters: data_start + data.len() as u64,
            data,
        }
    }

    fn header(&self) -> [u8; HEADER_LEN as usize] {
        let mut h = [0u8; HEADER_LEN as usize];
        h[0..4].copy_from_slice(b"QFI\xfb");
        h[4..8].copy_from_slice(&3u32.to_be_bytes());
        // 8..20: no backing file.
        h[20..24].copy_from_slice(&CLUSTER_BITS.to_be_bytes());
        h[24..32].copy_from_slice(&self.size.to_be_bytes());
        // 32..36: no encryption.
        h[36..40].copy_from_slice(&(self.l1_entries as u32).to_be_bytes());
        h[40..48].copy_from_slice(&(self.l1 * CLUSTER).to_be_bytes());
        h[48..56].copy_from_slice(&(self.reftable * CLUSTER).to_be_bytes());
        h[56..60].copy_from_slice(&(self.reftable_clusters as u32).to_be_bytes());
        // 60..72: no snapshots; 72..96: no incompatible, compatible or
        // autoclear features (the image is clean, no extended L2).
        h[96..100].copy_from_slice(&REFCOUNT_ORDER.to_be_bytes());
        h[100..104].copy_from_slice(&HEADER_LEN.to_be_bytes());
        // The header extension area that follows is zero: the
        // end-of-extensions marker.
        h
    }

    /// The refcount table, then the refcount blocks: every cluster of the
    /// file is used exactly once.
    fn refcounts(&self) -> Vec<u8> {
        let mut v = vec![0u8; ((self.reftable_clusters + self.refblock_count) * CLUSTER) as usize];
        for k in 0..self.refblock_count {
            let at = (k * 8) as usize;
            v[at..at + 8].copy_from_slice(&((self.refblocks + k) * CLUSTER).to_be_bytes());
        }
        let blocks = &mut v[(self.reftable_clusters * CLUSTER) as usize..];
        for c in 0..self.clusters as usize {
            blocks[2 * c..2 * c + 2].copy_from_slice(&1u16.to_be_bytes());
        }
        v
    }

    /// The L1 table, then the L2 tables, contiguous in the file.
    fn tables(&self) -> Vec<u8> {
        let l1_bytes = ((self.l2_start() - self.l1) * CLUSTER) as usize;
        let mut v = vec![0u8; l1_bytes + self.l2.len() * CLUSTER as usize];
        for &(l1i, cluster) in &self.l2 {
            let at = (l1i * 8) as usize;
            v[at..at + 8].copy_from_slice(&((cluster * CLUSTER) | COPIED).to_be_bytes());
        }
        let mut tables = self.l2.iter().peekable();
        for (i, &g) in self.data.iter().enumerate() {
            while tables.peek().is_some_and(|&&(l1i, _)| l1i < g / ENTRIES) {
                tables.next();
            }
            let &(_, l2) = tables.peek().expect("every data cluster has its L2 table");
            let host = (self.data_start + i as u64) * CLUSTER;
            let at = ((l2 - self.l1) * CLUSTER + (g % ENTRIES) * 8) as usize;
            v[at..at + 8].copy_from_slice(&(host | COPIED).to_be_bytes());
        }
        v
    }

    fn l2_start(&self) -> u64 {
        self.data_start - self.l2.len() as u64
    }

    /// The file offset of guest offset `at` (in a data cluster).
    fn host(&self, at: u64) -> u64 {
        let i = self
            .data
            .binary_search(&(at / CLUSTER))
            .expect("data lies in allocated clusters");
        (self.data_start + i as u64) * CLUSTER + at % CLUSTER
    }
}

pub(crate) fn write(
    disk: &Disk,
    runs: &[Run],
    out: &mut File,
    progress: &mut Progress,
) -> io::Result<()> {
    let layout = Layout::new(disk.size, runs);
    out.set_len(layout.clusters * CLUSTER)
        .map_err(context("setting the qcow2 file's size"))?;
    out.write_all_at(&layout.header(), 0)
        .map_err(context("writing the qcow2 header"))?;
    out.write_all_at(&layout.refcounts(), layout.reftable * CLUSTER)
        .map_err(context("writing the qcow2 refcounts"))?;
    out.write_all_at(&layout.tables(), layout.l1 * CLUSTER)
        .map_err(context("writing the qcow2 L1 and L2 tables"))?;
    // Pieces are cut at cluster boundaries: neighbouring guest clusters
    // need not be neighbours in the file.
    runs::for_each_piece(disk, runs, 0, disk.size, CLUSTER as usize, |at, bytes| {
        let mut done = 0;
        while done < bytes.len() {
            let pos = at + done as u64;
            let n = ((CLUSTER - pos % CLUSTER) as usize).min(bytes.len() - done);
            out.write_all_at(&bytes[done..done + n], layout.host(pos))?;
            done += n;
        }
        progress.advance(bytes.len() as u64);
        Ok(())
    })
    .map_err(context("writing the qcow2 data clusters"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const G: u64 = 1 << 30;

    fn be64(b: &[u8], o: usize) -> u64 {
        u64::from_be_bytes(b[o..o + 8].try_into().unwrap())
    }

    #[test]
    fn layout_of_a_sparse_64_gib_disk() {
        let runs = [
            Run {
                offset: 0,
                len: 4096,
            },
            Run {
                offset: (1 << 20) - 4096,
                len: 2 * 4096 + CLUSTER, // crosses into two more clusters
            },
            Run {
                offset: 64 * G - 4096,
                len: 4096,
            },
        ];
        let l = Layout::new(64 * G, &runs);
        assert_eq!(l.data, vec![0, 15, 16, 17, 64 * G / CLUSTER - 1]);
        assert_eq!(l.l1_entries, 128);
        assert_eq!(l.l2, vec![(0, 4), (127, 5)]);
        assert_eq!((l.reftable, l.refblocks, l.l1, l.data_start), (1, 2, 3, 6));
        assert_eq!(l.clusters, 11);
        assert_eq!(l.host(0), 6 * CLUSTER);
        assert_eq!(l.host(17 * CLUSTER + 5), 9 * CLUSTER + 5);

        let h = l.header();
        assert_eq!(&h[..8], b"QFI\xfb\0\0\0\x03");
        assert_eq!(be64(&h, 24), 64 * G);
        assert_eq!(&h[36..40], &128u32.to_be_bytes());
        assert_eq!((be64(&h, 40), be64(&h, 48)), (3 * CLUSTER, CLUSTER));
        assert_eq!(&h[96..104], &[0, 0, 0, 4, 0, 0, 0, 104]);

        let r = l.refcounts();
        assert_eq!(be64(&r, 0), 2 * CLUSTER);
        assert_eq!(be64(&r, 8), 0);
        let block = &r[CLUSTER as usize..];
        assert!(block[..22].chunks(2).all(|c| c == [0, 1]));
        assert!(block[22..].iter().all(|&b| b == 0));

        let t = l.tables();
        assert_eq!(be64(&t, 0), (4 * CLUSTER) | COPIED);
        assert_eq!(be64(&t, 127 * 8), (5 * CLUSTER) | COPIED);
        let l2a = CLUSTER as usize;
        assert_eq!(be64(&t, l2a), (6 * CLUSTER) | COPIED);
        assert_eq!(be64(&t, l2a + 15 * 8), (7 * CLUSTER) | COPIED);
        assert_eq!(be64(&t, l2a + 18 * 8), 0);
        assert_eq!(be64(&t, 2 * l2a + 8191 * 8), (10 * CLUSTER) | COPIED);
    }

    #[test]
    fn refcount_blocks_grow_to_cover_themselves() {
        // 40000 data clusters: more than one refcount block covers.
        let runs = [Run {
            offset: 0,
            len: 40_000 * CLUSTER,
        }];
        let l = Layout::new(4 * G, &runs);
        assert_eq!(l.refblock_count, 2);
        assert!(l.refblock_count * REFCOUNTS_PER_BLOCK >= l.clusters);
        assert_eq!(l.l2.len(), 5);
        assert_eq!(l.clusters, 1 + 1 + 2 + 1 + 5 + 40_000);
        let empty = Layout::new(G, &[]);
        assert_eq!((empty.clusters, empty.l2.len()), (4, 0));
    }
}
