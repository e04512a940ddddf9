//! What the BIOS says about the boot drive: INT 13h AH=48h (EDD "get drive
//! parameters"), with the EDD 3.0 device parameter table pointer and, where
//! the BIOS fills them, the host bus and interface paths.

use crate::bios::{self, Regs};
use crate::Global;
use core::ptr;

/// Size of the buffer we offer (EDD 3.0 with the device path: 0x42 bytes,
/// rounded up; some BIOSes write 0x4A).
const LEN: usize = 0x4A;

/// The result buffer: below 0x10000 so the BIOS can be given 0000:offset.
#[repr(C, align(16))]
struct Buf([u8; LEN]);
#[link_section = ".low.data.edd"]
static BUF: Global<Buf> = Global::new(Buf([0; LEN]));

/// The drive's EDD information.
#[derive(Clone, Copy, Debug)]
pub struct Edd {
    /// Total sectors (offset 0x10).
    pub sectors: u64,
    /// The 16-byte device parameter table, if the BIOS gave one.
    pub dpte: Option<[u8; 16]>,
    /// The whole buffer as the BIOS filled it.
    pub raw: [u8; LEN],
}

/// The EDD 3.0 device path (offsets 0x1E-0x49 of the buffer).
#[derive(Clone, Copy, Debug)]
pub struct DevicePath<'a> {
    /// e.g. b"PCI ".
    pub host_bus: &'a [u8],
    /// e.g. b"ATA     ", b"SATA    ", b"SCSI    ".
    pub interface: &'a [u8],
    /// For PCI: bus, device, function, channel.
    pub interface_path: &'a [u8],
    /// e.g. ATA master/slave, SATA port, SCSI target and LUN.
    pub device_path: &'a [u8],
}

impl Edd {
    /// Bytes per sector (offset 0x18).
    pub fn sector_size(&self) -> u16 {
        u16::from_le_bytes([self.raw[0x18], self.raw[0x19]])
    }

    /// The EDD 3.0 device path, if the BIOS filled it: key 0xBEDD and a
    /// checksum making its bytes sum to 0 (over 0x1E-0x49 in the T13 layout
    /// or 0x1E-0x41 in Phoenix's). The buffer length the BIOS reports is no
    /// guide: SeaBIOS 1.16 fills the path but leaves the length at 0x1E.
    pub fn device_path(&self) -> Option<DevicePath<'_>> {
        let r = &self.raw;
        let sums_to_0 = |end: usize| r[0x1E..end].iter().fold(0u8, |a, &b| a.wrapping_add(b)) == 0;
        if u16::from_le_bytes([r[0x1E], r[0x1F]]) != 0xBEDD || !(sums_to_0(0x4A) || sums_to_0(0x42))
        {
            return None;
        }
        Some(DevicePath {
            host_bus: &r[0x24..0x28],
            interface: &r[0x28..0x30],
            interface_path: &r[0x30..0x38],
            device_path: &r[0x38..0x40],
        })
    }
}

/// Asks the BIOS (INT 13h AH=48h) about `drive`.
pub fn query(drive: u8) -> Option<Edd> {
    let addr = BUF.get() as usize as u32;
    // SAFETY: the buffer is ours alone (single-threaded); the BIOS writes it
    // during the call below, never while Rust holds a reference.
    unsafe {
        ptr::write_bytes(BUF.get() as *mut u8, 0, LEN);
        ptr::write_unaligned(BUF.get() as *mut u16, LEN as u16);
    }
    let (seg, off) = bios::far(addr);
    let mut r = Regs::new();
    r.eax = 0x4800;
    r.edx = u32::from(drive);
    r.ds = seg;
    r.esi = u32::from(off);
    let out = bios::int(0x13, &r);
    if out.carry() || out.ah() != 0 {
        return None;
    }
    // SAFETY: the BIOS has filled the buffer; read by value.
    let raw = unsafe { ptr::read_volatile(BUF.get()) }.0;
    let len = u16::from_le_bytes([raw[0], raw[1]]).min(LEN as u16);
    if len < 0x1A {
        return None;
    }
    let sectors = u64::from_le_bytes(raw[0x10..0x18].try_into().unwrap());
    let dpte = if len >= 0x1E {
        let off = u16::from_le_bytes([raw[0x1A], raw[0x1B]]);
        let seg = u16::from_le_bytes([raw[0x1C], raw[0x1D]]);
        let at = (u32::from(seg) << 4) + u32::from(off);
        if (off, seg) == (0xFFFF, 0xFFFF) || at == 0 || at + 16 > 0x10_0000 {
            None
        } else {
            // SAFETY: the BIOS says its device parameter table (16 bytes)
            // lies at this real-mode address below 1 MiB, identity-mapped;
            // read by value.
            Some(unsafe { ptr::read_unaligned(at as usize as *const [u8; 16]) })
        }
    } else {
        None
    };
    Some(Edd { sectors, dpte, raw })
}
