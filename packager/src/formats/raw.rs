//! Raw images: the disk's bytes, with holes where it is empty.
//!
//! The file is sized first (one hole) and only the data runs are written,
//! so the empty part of the disk is neither written nor allocated where the
//! file system supports sparse files.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;

use super::runs::{self, Run};
use super::{context, Progress};
use crate::disk::Disk;

/// Writes the disk's data at `base` onwards in `out`; the caller has sized
/// the file. Shared with the fixed VHD, whose data part is a raw image.
pub(crate) fn write_data(
    disk: &Disk,
    runs: &[Run],
    out: &File,
    base: u64,
    progress: &mut Progress,
) -> io::Result<()> {
    runs::for_each_piece(disk, runs, 0, disk.size, 1 << 20, |at, bytes| {
        out.write_all_at(bytes, base + at)?;
        progress.advance(bytes.len() as u64);
        Ok(())
    })
    .map_err(context("writing the disk data"))
}

pub(crate) fn write(
    disk: &Disk,
    runs: &[Run],
    out: &mut File,
    progress: &mut Progress,
) -> io::Result<()> {
    out.set_len(disk.size)
        .map_err(context("setting the image's size"))?;
    write_data(disk, runs, out, 0, progress)
}
