//! Stage 2's own read path for the one controller it recognises with
//! certainty: the Intel PIIX3 IDE function (8086:7010, QEMU's `pc`
//! machine), with ATA READ DMA EXT through the bus-master registers, so
//! the data goes straight to its destination instead of through SeaBIOS'
//! port-I/O transfers (which TCG emulates word by word: ~100 ms per MiB).
//!
//! Used only when all of these hold, else every read stays with INT 13h:
//! - the record does not carry FLAG_NO_FAST_READ (`bootpack build
//!   --no-fast-read`);
//! - the BIOS's EDD information (INT 13h AH=48h) for the boot drive has a
//!   device parameter table naming a legacy ATA channel (0x1F0/0x3F6 or
//!   0x170/0x376) and the master or slave on it;
//! - PCI bus 0 has exactly one 8086:7010 function of class 01:01 whose
//!   BAR4 is an I/O bus-master block;
//! - DMA reads of the record's sectors and of the first kernel sectors are
//!   byte-identical to what the BIOS read.
//!
//! Any error, timeout or doubt later turns the fast path off for good and
//! the read is redone through the BIOS; the payload checksum still guards
//! everything.

use crate::bios::{self, Regs};
use crate::Global;
use bootpack_proto::layout::{
    FAST_PRD_ADDR, FAST_PRD_LEN, FAST_VERIFY_ADDR, FAST_VERIFY_LEN, SECTOR,
};
use core::ptr;
use x86_64::instructions::port::Port;

/// Sectors per DMA command: 4 MiB, at most 66 PRD entries.
pub const MAX_SECTORS: u64 = 8192;

#[derive(Clone, Copy, Debug)]
pub struct Piix {
    /// Command block (0x1F0 or 0x170).
    cmd: u16,
    /// Device control register (0x3F6 or 0x376).
    ctrl: u16,
    /// This channel's bus-master registers.
    bmi: u16,
    slave: bool,
}

static FAST: Global<Option<Piix>> = Global::new(None);

/// The fast path, if it is on.
pub fn get() -> Option<Piix> {
    // SAFETY: single-threaded stage 2 (see Global); a copy is returned.
    unsafe { *FAST.get() }
}

/// Turns the fast path off for the rest of the boot.
pub fn disable() {
    // SAFETY: as in get.
    unsafe { *FAST.get() = None }
}

/// EDD drive parameters (INT 13h AH=48h) buffer: below 0x10000 so the
/// BIOS can be given 0000:offset.
#[repr(C, align(16))]
struct EddBuf([u8; 0x4A]);
#[link_section = ".low.data.edd"]
static EDD: Global<EddBuf> = Global::new(EddBuf([0; 0x4A]));

fn pci_addr(dev: u8, func: u8, off: u8) -> u32 {
    0x8000_0000 | (u32::from(dev) << 11) | (u32::from(func) << 8) | u32::from(off & 0xFC)
}

fn pci_read32(dev: u8, func: u8, off: u8) -> u32 {
    // SAFETY: ports 0xCF8/0xCFC are PCI configuration mechanism #1, which
    // every PC chipset with PCI (and SeaBIOS itself) uses; reading a
    // configuration dword has no side effects on the functions read here.
    unsafe {
        Port::<u32>::new(0xCF8).write(pci_addr(dev, func, off));
        Port::<u32>::new(0xCFC).read()
    }
}

/// The device's ATA channel from the BIOS's EDD device parameter table:
/// (command block, control register, slave).
fn edd_channel(drive: u8) -> Option<(u16, u16, bool)> {
    let addr = EDD.get() as usize as u32;
    // SAFETY: the buffer is ours alone (single-threaded); the BIOS writes it
    // during the call below, never while Rust holds a reference.
    unsafe {
        ptr::write_bytes(EDD.get() as *mut u8, 0, 0x4A);
        ptr::write_unaligned(EDD.get() as *mut u16, 0x4A);
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
    let b = unsafe { ptr::read_volatile(EDD.get()) }.0;
    let len = u16::from_le_bytes([b[0], b[1]]);
    if len < 0x1E {
        return None;
    }
    let dpte_off = u16::from_le_bytes([b[0x1A], b[0x1B]]);
    let dpte_seg = u16::from_le_bytes([b[0x1C], b[0x1D]]);
    if dpte_off == 0xFFFF && dpte_seg == 0xFFFF {
        return None;
    }
    let dpte = (u32::from(dpte_seg) << 4) + u32::from(dpte_off);
    if dpte + 16 > 0x10_0000 {
        return None;
    }
    // SAFETY: the BIOS says its device parameter table (16 bytes) lies at
    // this real-mode address below 1 MiB, identity-mapped; read by value.
    let t = unsafe { ptr::read_unaligned(dpte as usize as *const [u8; 16]) };
    let cmd = u16::from_le_bytes([t[0], t[1]]);
    let ctrl = u16::from_le_bytes([t[2], t[3]]);
    let slave = t[4] & 0x10 != 0;
    match (cmd, ctrl) {
        (0x1F0, 0x3F6) | (0x170, 0x376) => Some((cmd, ctrl, slave)),
        _ => None,
    }
}

/// The one PIIX3 IDE function on bus 0: its bus-master I/O base.
fn piix_bmi() -> Option<(u8, u8, u16)> {
    let mut found = None;
    for dev in 0..32u8 {
        for func in 0..8u8 {
            let id = pci_read32(dev, func, 0);
            if id == 0xFFFF_FFFF {
                if func == 0 {
                    break;
                }
                continue;
            }
            if id != 0x7010_8086 {
                continue;
            }
            let class = pci_read32(dev, func, 8) >> 16;
            if class != 0x0101 || found.is_some() {
                return None;
            }
            let bar4 = pci_read32(dev, func, 0x20);
            if bar4 & 1 == 0 || bar4 & 0xFFF0 == 0 {
                return None;
            }
            found = Some((dev, func, (bar4 & 0xFFF0) as u16));
        }
    }
    found
}

/// Checks for the controller and turns the fast path on if `verify`
/// (which reads through both paths and compares) agrees.
pub fn setup(drive: u8, verify: impl FnOnce(&Piix) -> bool) {
    let Some((cmd, ctrl, slave)) = edd_channel(drive) else {
        return;
    };
    let Some((dev, func, bmi)) = piix_bmi() else {
        return;
    };
    let piix = Piix {
        cmd,
        ctrl,
        bmi: if cmd == 0x1F0 { bmi } else { bmi + 8 },
        slave,
    };
    // Bus mastering on (PCI command register bit 2) with I/O decoding;
    // SeaBIOS leaves it off when it does not use DMA itself.
    let command = pci_read32(dev, func, 4) & 0xFFFF;
    // SAFETY: PCI configuration mechanism #1 as above; a 16-bit write to
    // the command register of the PIIX IDE function found above, keeping
    // its other bits, enables only I/O decoding and bus mastering.
    unsafe {
        Port::<u32>::new(0xCF8).write(pci_addr(dev, func, 4));
        Port::<u16>::new(0xCFC).write((command | 0x5) as u16);
    }
    if verify(&piix) {
        // SAFETY: single-threaded (see Global).
        unsafe { *FAST.get() = Some(piix) };
    }
}

/// Why a DMA read failed.
#[derive(Clone, Copy, Debug)]
pub struct DmaError;

impl Piix {
    fn port8(&self, p: u16) -> Port<u8> {
        Port::new(p)
    }

    /// Waits until BSY is clear; returns the status.
    fn wait_not_busy(&self) -> Result<u8, DmaError> {
        for _ in 0..10_000_000u32 {
            // SAFETY: reading the ATA status register of the channel the
            // BIOS named; clears a pending device interrupt, nothing else.
            let s = unsafe { self.port8(self.cmd + 7).read() };
            if s & 0x80 == 0 {
                return Ok(s);
            }
            core::hint::spin_loop();
        }
        Err(DmaError)
    }

    /// Reads `sectors` (1..=MAX_SECTORS) sectors from `lba` to physical
    /// `dest` with READ DMA EXT.
    ///
    /// # Safety
    /// `[dest, dest + sectors * 512)` must be RAM below 4 GiB that nothing
    /// else uses and must not overlap the PRD table (layout::FAST_PRD_ADDR).
    pub unsafe fn read(&self, lba: u64, sectors: u64, dest: u64) -> Result<(), DmaError> {
        if sectors == 0 || sectors > MAX_SECTORS || lba + sectors > 1 << 48 {
            return Err(DmaError);
        }
        let bytes = sectors * SECTOR;
        if dest + bytes > 1 << 32 {
            return Err(DmaError);
        }
        // PRD table: regions that do not cross a 64 KiB boundary, at most
        // 64 KiB each (a count of 0 means 64 KiB), the last marked EOT.
        let prd = FAST_PRD_ADDR as usize as *mut u32;
        let max = FAST_PRD_LEN / 8;
        let mut n = 0;
        let mut at = dest;
        let end = dest + bytes;
        while at < end {
            let boundary = (at | 0xFFFF) + 1;
            let len = boundary.min(end) - at;
            if n == max {
                return Err(DmaError);
            }
            let flags = if at + len == end { 0x8000_0000 } else { 0 };
            // SAFETY: the PRD table area (layout) is stage 2's alone and
            // identity-mapped; n < max keeps the writes inside it.
            unsafe {
                ptr::write_volatile(prd.add(2 * n), at as u32);
                ptr::write_volatile(prd.add(2 * n + 1), flags | (len as u32 & 0xFFFF));
            }
            n += 1;
            at += len;
        }
        let count = if sectors == 65536 { 0 } else { sectors as u16 };
        // SAFETY: the ports are the ATA channel and bus-master block
        // identified in setup (EDD + PCI). The sequence is the ATA/ATAPI and
        // PIIX one: stop the engine, clear its status, point it at the PRD
        // table (below 4 GiB, dword-aligned), select the drive with LBA,
        // nIEN set (no IRQ: stage 2 polls), load LBA48 and count, issue
        // READ DMA EXT, start the engine towards memory, poll until it
        // stops, stop it. The destination is the caller's promise.
        unsafe {
            let mut bm_cmd = self.port8(self.bmi);
            let mut bm_status = self.port8(self.bmi + 2);
            let mut bm_prd = Port::<u32>::new(self.bmi + 4);
            bm_cmd.write(0);
            bm_status.write(0x06);
            bm_prd.write(FAST_PRD_ADDR);
            self.port8(self.ctrl).write(0x0A);
            self.wait_not_busy()?;
            self.port8(self.cmd + 6)
                .write(0x40 | if self.slave { 0x10 } else { 0 });
            let s = self.wait_not_busy()?;
            if s & 0x40 == 0 {
                return Err(DmaError);
            }
            let [l0, l1, l2, l3, l4, l5, _, _] = lba.to_le_bytes();
            let [c0, c1] = count.to_le_bytes();
            for (reg, v) in [
                (2, c1),
                (3, l3),
                (4, l4),
                (5, l5),
                (2, c0),
                (3, l0),
                (4, l1),
                (5, l2),
            ] {
                self.port8(self.cmd + reg).write(v);
            }
            self.port8(self.cmd + 7).write(0x25);
            bm_cmd.write(0x09);
            let mut done = false;
            for _ in 0..100_000_000u32 {
                let st = bm_status.read();
                if st & 0x02 != 0 {
                    break; // bus-master error
                }
                // Done when the engine went inactive or the interrupt bit
                // is set (it may stay clear with nIEN).
                if st & 0x01 == 0 || st & 0x04 != 0 {
                    done = true;
                    break;
                }
                core::hint::spin_loop();
            }
            bm_cmd.write(0);
            let st = bm_status.read();
            bm_status.write(0x06);
            let ata = self.wait_not_busy()?;
            if !done || st & 0x02 != 0 || ata & 0x21 != 0 || ata & 0x08 != 0 {
                return Err(DmaError);
            }
        }
        Ok(())
    }
}

/// Reads `sectors` sectors from `lba` into the verification buffer by DMA
/// and compares them with `expected`.
pub fn same_as(piix: &Piix, lba: u64, expected: &[u8]) -> bool {
    let sectors = (expected.len() as u64).div_ceil(SECTOR);
    if expected.is_empty() || sectors * SECTOR > FAST_VERIFY_LEN as u64 {
        return false;
    }
    // SAFETY: the verification buffer (layout) is stage 2's alone, below
    // 1 MiB, clear of the PRD table; `sectors` fits in it.
    if unsafe { piix.read(lba, sectors, u64::from(FAST_VERIFY_ADDR)) }.is_err() {
        return false;
    }
    // SAFETY: the DMA above has completed; the buffer holds its bytes.
    let got = unsafe {
        core::slice::from_raw_parts(FAST_VERIFY_ADDR as usize as *const u8, expected.len())
    };
    got == expected
}
