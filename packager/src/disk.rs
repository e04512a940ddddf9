//! A disk image as data extents over a virtual size: everything outside the
//! extents reads as zero. Every output format is written from this, so no
//! writer ever reads or writes the empty part of a large disk.

/// Bytes at an offset of the disk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Extent<'a> {
    /// Where the data starts on the disk, in bytes.
    pub offset: u64,
    /// The bytes.
    pub data: &'a [u8],
}

impl Extent<'_> {
    /// The disk offset just past the data.
    pub fn end(&self) -> u64 {
        self.offset + self.data.len() as u64
    }
}

/// A whole disk: `size` bytes, with `extents` sorted by offset and not
/// overlapping.
#[derive(Clone, Debug)]
pub struct Disk<'a> {
    /// The disk size in bytes.
    pub size: u64,
    /// The data, by increasing offset, not overlapping; the rest of the disk is zero.
    pub extents: Vec<Extent<'a>>,
}

impl<'a> Disk<'a> {
    /// Panics if the extents are unsorted, overlap, or pass the end: a
    /// layout bug, not an input error.
    pub fn new(size: u64, mut extents: Vec<Extent<'a>>) -> Self {
        extents.retain(|e| !e.data.is_empty());
        extents.sort_by_key(|e| e.offset);
        for w in extents.windows(2) {
            assert!(
                w[0].end() <= w[1].offset,
                "disk extents overlap at {:#x}",
                w[1].offset
            );
        }
        if let Some(last) = extents.last() {
            assert!(
                last.end() <= size,
                "disk extent at {:#x} passes the disk's end {size:#x}",
                last.offset
            );
        }
        Disk { size, extents }
    }

    /// The disk's bytes in `[offset, offset + len)` if one extent holds
    /// them all, borrowed (no copy); None if they span extents or gaps.
    pub fn contiguous(&self, offset: u64, len: usize) -> Option<&'a [u8]> {
        let i = self.extents.partition_point(|e| e.end() <= offset);
        let e = self.extents.get(i)?;
        let end = offset + len as u64;
        (e.offset <= offset && end <= e.end())
            .then(|| &e.data[(offset - e.offset) as usize..(end - e.offset) as usize])
    }

    /// Copies the disk's bytes in `[offset, offset + buf.len())` into `buf`
    /// (zeros where no extent is).
    pub fn read_at(&self, offset: u64, buf: &mut [u8]) {
        buf.fill(0);
        let end = offset + buf.len() as u64;
        let first = self.extents.partition_point(|e| e.end() <= offset);
        for e in self.extents[first..].iter().take_while(|e| e.offset < end) {
            let from = e.offset.max(offset);
            let to = e.end().min(end);
            buf[(from - offset) as usize..(to - offset) as usize]
                .copy_from_slice(&e.data[(from - e.offset) as usize..(to - e.offset) as usize]);
        }
    }

    /// The `block`-aligned blocks that hold any extent byte, in order, each
    /// once: (block index). A writer visits these and nothing else.
    pub fn used_blocks(&self, block: u64) -> Vec<u64> {
        let mut out: Vec<u64> = Vec::new();
        for e in &self.extents {
            let (first, last) = (e.offset / block, (e.end() - 1) / block);
            let start = match out.last() {
                Some(&l) if l >= first => l + 1,
                _ => first,
            };
            out.extend(start..=last);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_across_extents_and_holes() {
        let a = [1u8; 4];
        let b = [2u8; 4];
        let d = Disk::new(
            32,
            vec![
                Extent {
                    offset: 10,
                    data: &b,
                },
                Extent {
                    offset: 2,
                    data: &a,
                },
            ],
        );
        let mut buf = [9u8; 12];
        d.read_at(0, &mut buf);
        assert_eq!(buf, [0, 0, 1, 1, 1, 1, 0, 0, 0, 0, 2, 2]);
        assert_eq!(d.used_blocks(8), vec![0, 1]);
        assert_eq!(d.used_blocks(4), vec![0, 1, 2, 3]);
        assert_eq!(d.contiguous(3, 3), Some(&a[1..4]));
        assert_eq!(d.contiguous(10, 4), Some(&b[..]));
        assert_eq!(d.contiguous(5, 2), None, "runs past the extent's end");
        assert_eq!(d.contiguous(0, 3), None, "starts in a gap");
        assert_eq!(d.contiguous(20, 1), None, "past every extent");
    }

    #[test]
    #[should_panic(expected = "overlap")]
    fn refuses_overlaps() {
        let a = [1u8; 4];
        Disk::new(
            32,
            vec![
                Extent {
                    offset: 0,
                    data: &a,
                },
                Extent {
                    offset: 2,
                    data: &a,
                },
            ],
        );
    }
}
