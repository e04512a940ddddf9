//! Fixed VHD, the form Azure takes: the raw disk, then a 512-byte
//! big-endian footer (Microsoft's "Virtual Hard Disk Image Format
//! Specification"). The data part is written like a raw image, sparse.
//!
//! The footer's geometry is the maximum, 65535/16/255, whatever the size:
//! QEMU computes a VHD's size from the geometry unless it is that maximum
//! (or the creator is one it knows to use the size field), so a true CHS
//! geometry would make QEMU see a smaller disk. `qemu-img convert -o
//! force_size=on` writes the same. Azure reads the size fields.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;

use super::runs::{self, Run};
use super::{context, raw, Progress};
use crate::disk::Disk;

const FOOTER: usize = 512;

pub(crate) fn write(
    disk: &Disk,
    runs: &[Run],
    out: &mut File,
    progress: &mut Progress,
) -> io::Result<()> {
    let footer = footer(disk.size, runs::content_id(disk, runs));
    out.set_len(disk.size + FOOTER as u64)
        .map_err(context("setting the VHD's size"))?;
    raw::write_data(disk, runs, out, 0, progress)?;
    out.write_all_at(&footer, disk.size)
        .map_err(context("writing the VHD footer"))
}

/// The footer of a fixed VHD of `size` bytes.
fn footer(size: u64, unique_id: [u8; 16]) -> [u8; FOOTER] {
    let mut f = [0u8; FOOTER];
    f[0..8].copy_from_slice(b"conectix");
    f[8..12].copy_from_slice(&2u32.to_be_bytes()); // features: reserved bit, always set
    f[12..16].copy_from_slice(&0x0001_0000u32.to_be_bytes()); // format version 1.0
    f[16..24].copy_from_slice(&u64::MAX.to_be_bytes()); // data offset: none (fixed disk)
                                                        // Timestamp (seconds since 2000-01-01) stays 0: output depends on the
                                                        // disk alone.
    f[28..32].copy_from_slice(b"bpck"); // creator application
    f[32..36].copy_from_slice(&0x0001_0000u32.to_be_bytes()); // creator version
    f[36..40].copy_from_slice(b"Wi2k"); // creator host OS, as Hyper-V and QEMU write
    f[40..48].copy_from_slice(&size.to_be_bytes()); // original size
    f[48..56].copy_from_slice(&size.to_be_bytes()); // current size
    f[56..58].copy_from_slice(&65535u16.to_be_bytes()); // cylinders
    f[58] = 16; // heads
    f[59] = 255; // sectors per track
    f[60..64].copy_from_slice(&2u32.to_be_bytes()); // disk type: fixed
    f[68..84].copy_from_slice(&unique_id);
    // f[84]: saved state 0; the rest is reserved, zero.
    let sum = checksum(&f);
    f[64..68].copy_from_slice(&sum.to_be_bytes());
    f
}

/// One's complement of the byte sum of the footer, its checksum field
/// counted as zero.
fn checksum(footer: &[u8; FOOTER]) -> u32 {
    let sum: u32 = footer
        .iter()
        .enumerate()
        .filter(|(i, _)| !(64..68).contains(i))
        .map(|(_, &b)| b as u32)
        .sum();
    !sum
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn footer_fields_and_checksum() {
        let f = footer(1 << 30, [0xAB; 16]);
        assert_eq!(&f[..8], b"conectix");
        assert_eq!(
            &f[8..24],
            &[0, 0, 0, 2, 0, 1, 0, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]
        );
        assert_eq!(&f[24..28], &[0; 4]);
        assert_eq!(&f[40..48], &(1u64 << 30).to_be_bytes());
        assert_eq!(&f[48..56], &(1u64 << 30).to_be_bytes());
        assert_eq!(&f[56..60], &[0xff, 0xff, 16, 255]);
        assert_eq!(&f[60..64], &[0, 0, 0, 2]);
        // The checksum makes the byte sum (with the field read as zero)
        // plus the checksum equal 0xFFFFFFFF.
        let stored = u32::from_be_bytes(f[64..68].try_into().unwrap());
        let mut zeroed = f;
        zeroed[64..68].fill(0);
        let sum: u32 = zeroed.iter().map(|&b| b as u32).sum();
        assert_eq!(stored, !sum);
        assert_eq!(stored.wrapping_add(sum), u32::MAX);
        assert!(f[85..].iter().all(|&b| b == 0));
    }

    #[test]
    fn checksum_of_a_known_footer() {
        // Sum of the bytes of "conectix" (0x35D) and the features field (2).
        let mut f = [0u8; FOOTER];
        f[..8].copy_from_slice(b"conectix");
        f[11] = 2;
        f[64..68].copy_from_slice(&[9, 9, 9, 9]); // ignored
        assert_eq!(checksum(&f), !(0x35D + 2));
    }
}
