//! Disk reads through BIOS INT 13h extensions (AH=42h).

use crate::bios::{self, Regs};
use crate::Global;
use bootpack_proto::layout::{SECTOR, SECTORS_PER_READ};
use core::ptr;

/// INT 13h AH=42h disk address packet.
#[repr(C, align(16))]
struct Dap {
    size: u8,
    reserved: u8,
    count: u16,
    offset: u16,
    segment: u16,
    lba: u64,
}

/// The packet lives below 0x10000 (the .low.data section) so that it is
/// reachable as 0000:offset like everything else the thunk hands the BIOS.
#[link_section = ".low.data.dap"]
static DAP: Global<Dap> = Global::new(Dap {
    size: 0,
    reserved: 0,
    count: 0,
    offset: 0,
    segment: 0,
    lba: 0,
});

/// Tries per read: the first plus up to three retries, each after a
/// disk-system reset (AH=00h).
const TRIES: u32 = 4;

/// A read the BIOS refused, as many times as we asked.
#[derive(Clone, Copy, Debug)]
pub struct ReadError {
    pub drive: u8,
    pub lba: u64,
    pub status: u8,
}

/// Reads `count` sectors (at most SECTORS_PER_READ) from `lba` into the
/// physical address `addr` (below 1 MiB; the buffer must not wrap its
/// 16-bit offset, which holds for any address when the offset is the low
/// nibble).
fn read_once(drive: u8, lba: u64, count: u16, addr: u32) -> Result<(), ReadError> {
    debug_assert!(count <= SECTORS_PER_READ);
    let (segment, offset) = bios::far(addr);
    let dap_addr = DAP.get() as usize as u32;
    let (dap_seg, dap_off) = bios::far(dap_addr);
    let mut status = 0;
    for attempt in 0..TRIES {
        if attempt > 0 {
            let mut r = Regs::new();
            r.edx = drive as u32; // AH=00h: reset
            bios::int(0x13, &r);
        }
        // SAFETY: single-threaded; DAP is ours alone and written before each
        // call because the BIOS may update its count.
        unsafe {
            ptr::write_volatile(
                DAP.get(),
                Dap {
                    size: 16,
                    reserved: 0,
                    count,
                    offset,
                    segment,
                    lba,
                },
            );
        }
        let mut r = Regs::new();
        r.eax = 0x4200;
        r.edx = drive as u32;
        r.ds = dap_seg;
        r.esi = dap_off as u32;
        let out = bios::int(0x13, &r);
        if !out.carry() && out.ah() == 0 {
            return Ok(());
        }
        status = out.ah();
    }
    Err(ReadError { drive, lba, status })
}

/// Reads `sectors` sectors from `lba` into physical `addr` (below 1 MiB),
/// in BIOS calls of at most SECTORS_PER_READ sectors.
pub fn read(drive: u8, lba: u64, sectors: u64, addr: u32) -> Result<(), ReadError> {
    let mut done = 0;
    while done < sectors {
        let n = (sectors - done).min(SECTORS_PER_READ as u64);
        read_once(drive, lba + done, n as u16, addr + (done * SECTOR) as u32)?;
        done += n;
    }
    Ok(())
}

/// Sectors needed for `bytes` bytes.
pub fn sectors_for(bytes: u64) -> u64 {
    bytes.div_ceil(SECTOR)
}
