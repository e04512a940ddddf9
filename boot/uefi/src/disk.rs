//! The disk this loader was started from, and sector reads from it.
//!
//! The loaded image's device is the ESP (a partition); the disk is the
//! BlockIO handle that is not a logical partition and whose device path is
//! the ESP's path minus its last media node(s). bootpack's partition is on
//! the same disk, found through bootpack_proto::ptable as the BIOS loader
//! finds it.

use crate::fail;
use alloc::vec;
use alloc::vec::Vec;
use bootpack_proto::ptable::{SectorReader, SECTOR_BYTES};
use uefi::boot::{self, OpenProtocolAttributes, OpenProtocolParams, ScopedProtocol};
use uefi::proto::device_path::{DevicePath, DeviceType};
use uefi::proto::loaded_image::LoadedImage;
use uefi::proto::media::block::BlockIO;
use uefi::Handle;

/// Device path node type of the end node.
const END: u8 = 0x7F;

/// Opens `P` on `handle` without taking it from its drivers (GetProtocol):
/// an exclusive open would disconnect the partition and file-system
/// drivers above the disk.
fn open<P: uefi::proto::ProtocolPointer + ?Sized>(handle: Handle) -> Option<ScopedProtocol<P>> {
    // SAFETY: GetProtocol opens add no driver bindings; the protocols stay
    // installed while boot services run, and they are dropped before
    // ExitBootServices.
    unsafe {
        boot::open_protocol::<P>(
            OpenProtocolParams {
                handle,
                agent: boot::image_handle(),
                controller: None,
            },
            OpenProtocolAttributes::GetProtocol,
        )
    }
    .ok()
}

/// The device path bytes without the end node.
fn path_bytes(p: &DevicePath) -> &[u8] {
    let b = p.as_bytes();
    b.strip_suffix(&[END, 0xFF, 4, 0]).unwrap_or(b)
}

/// The whole disk the image was loaded from.
pub struct Disk {
    io: ScopedProtocol<BlockIO>,
    media_id: u32,
    /// A sector buffer for the partition-table reader.
    buf: Vec<u8>,
}

/// Finds the disk this loader was loaded from; halts with a message if
/// there is none (loaded over the network, from a RAM disk, ...).
pub fn boot_disk() -> Disk {
    let image = open::<LoadedImage>(boot::image_handle())
        .unwrap_or_else(|| fail!("the firmware gives no loaded-image protocol for this loader"));
    let device = image.device().unwrap_or_else(|| {
        fail!("the firmware does not say which device this loader was loaded from")
    });
    let esp_path = open::<DevicePath>(device).unwrap_or_else(|| {
        fail!("the device this loader was loaded from has no device path (not a disk?)")
    });
    let esp = path_bytes(&esp_path);
    let handles = boot::find_handles::<BlockIO>()
        .unwrap_or_else(|_| fail!("the firmware lists no block devices"));
    // The disk: the longest device path that is a proper prefix of the
    // ESP's followed by a media node.
    let mut best: Option<(usize, Handle)> = None;
    for h in handles {
        let Some(io) = open::<BlockIO>(h) else {
            continue;
        };
        if io.media().is_logical_partition() {
            continue;
        }
        let Some(p) = open::<DevicePath>(h) else {
            continue;
        };
        let disk = path_bytes(&p);
        let rest = match esp.strip_prefix(disk) {
            Some(rest) if !rest.is_empty() => rest,
            _ => continue,
        };
        if rest[0] != DeviceType::MEDIA.0 {
            continue;
        }
        if best.is_none_or(|(len, _)| disk.len() > len) {
            best = Some((disk.len(), h));
        }
    }
    let Some((_, handle)) = best else {
        fail!("the disk this loader was started from has no block device (the ESP is not on a disk bootpack can read)")
    };
    let io = open::<BlockIO>(handle).unwrap_or_else(|| fail!("the boot disk's BlockIO went away"));
    let media = io.media();
    if media.block_size() as usize != SECTOR_BYTES {
        fail!(
            "the boot disk has {}-byte sectors; bootpack images use 512-byte sectors",
            media.block_size()
        );
    }
    let media_id = media.media_id();
    Disk {
        io,
        media_id,
        buf: vec![0; bootpack_proto::ptable::MAX_READ_SECTORS as usize * SECTOR_BYTES],
    }
}

impl Disk {
    /// Reads `buf.len()` bytes (a whole number of sectors) from `lba`;
    /// halts with a message on a read error.
    pub fn read(&mut self, lba: u64, buf: &mut [u8]) {
        if let Err(e) = self.io.read_blocks(self.media_id, lba, buf) {
            fail!(
                "disk read failed (LBA {lba:#x}, {:#x} sectors, status {:?})",
                buf.len() / SECTOR_BYTES,
                e.status()
            );
        }
    }

    /// The alignment BlockIO needs of a read buffer (at least 1).
    pub fn io_align(&self) -> u64 {
        (self.io.media().io_align() as u64).max(1)
    }
}

impl SectorReader for Disk {
    type Error = core::convert::Infallible;

    fn read(&mut self, lba: u64, count: u32) -> Result<&[u8], Self::Error> {
        let len = count as usize * SECTOR_BYTES;
        let mut buf = core::mem::take(&mut self.buf);
        Disk::read(self, lba, &mut buf[..len]);
        self.buf = buf;
        Ok(&self.buf[..len])
    }
}
