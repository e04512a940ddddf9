//! The Intel PIIX3 IDE function (8086:7010, QEMU's `pc` machine): ATA
//! READ DMA EXT through the bus-master registers, so the data goes straight
//! to its destination instead of through SeaBIOS' port-I/O transfers (which
//! TCG emulates word by word: ~100 ms per MiB).
//!
//! Recognised only when the BIOS's EDD device parameter table for the boot
//! drive names a legacy ATA channel (0x1F0/0x3F6 or 0x170/0x376) and PCI
//! bus 0 has exactly one 8086:7010 function of class 01:01 whose BAR4 is an
//! I/O bus-master block.

use super::clock::Deadline;
use super::edd::Edd;
use super::{pci, DmaError, TIMEOUT_MS};
use crate::memplan::{FAST_PRD_ADDR, FAST_PRD_LEN};
use bootpack_proto::layout::SECTOR;
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

/// The device's ATA channel from the BIOS's EDD device parameter table:
/// (command block, control register, slave).
fn edd_channel(edd: &Edd) -> Option<(u16, u16, bool)> {
    let t = edd.dpte?;
    let cmd = u16::from_le_bytes([t[0], t[1]]);
    let ctrl = u16::from_le_bytes([t[2], t[3]]);
    let slave = t[4] & 0x10 != 0;
    match (cmd, ctrl) {
        (0x1F0, 0x3F6) | (0x170, 0x376) => Some((cmd, ctrl, slave)),
        _ => None,
    }
}

impl Piix {
    /// The controller, if the boot drive is on a PIIX3 IDE channel.
    pub fn probe(edd: &Edd) -> Option<Piix> {
        let (cmd, ctrl, slave) = edd_channel(edd)?;
        let f = pci::only(|f| f.id() == 0x7010_8086)?;
        if f.class() >> 8 != 0x0101 {
            return None;
        }
        let pci::Bar::Io(bmi) = f.bar(4)? else {
            return None;
        };
        f.enable(0x5);
        Some(Piix {
            cmd,
            ctrl,
            bmi: if cmd == 0x1F0 { bmi } else { bmi + 8 },
            slave,
        })
    }

    fn port8(&self, p: u16) -> Port<u8> {
        Port::new(p)
    }

    /// Waits (until the deadline) until BSY is clear; returns the status.
    fn wait_not_busy(&self) -> Result<u8, DmaError> {
        let mut deadline = Deadline::after_ms(TIMEOUT_MS);
        loop {
            // SAFETY: reading the ATA status register of the channel the
            // BIOS named; clears a pending device interrupt, nothing else.
            let s = unsafe { self.port8(self.cmd + 7).read() };
            if s & 0x80 == 0 {
                return Ok(s);
            }
            if deadline.passed() {
                return Err(DmaError);
            }
            core::hint::spin_loop();
        }
    }

    /// Starts reading `sectors` (1..=MAX_SECTORS) sectors from `lba` to
    /// physical `dest` with READ DMA EXT; [`Piix::finish`] waits for it.
    ///
    /// # Safety
    /// `[dest, dest + sectors * 512)` must be RAM below 4 GiB that nothing
    /// else uses until `finish` returns, and must not overlap the PRD table
    /// (memplan::FAST_PRD_ADDR).
    pub unsafe fn start(&mut self, lba: u64, sectors: u64, dest: u64) -> Result<(), DmaError> {
        // A PRD's base address has no bit 0 and its count must be even:
        // an odd destination cannot be described (the caller stages it).
        if sectors == 0 || sectors > MAX_SECTORS || lba + sectors > 1 << 48 || dest & 1 != 0 {
            return Err(DmaError);
        }
        let bytes = sectors * SECTOR;
        if dest + bytes > 1 << 32 {
            return Err(DmaError);
        }
        // PRD table: regions that do not cross a 64 KiB boundary, at most
        // 64 KiB each (a count of 0 means 64 KiB), the last marked EOT.
        // With an even `dest` every region's base and length are even.
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
        // READ DMA EXT, start the engine towards memory. The destination is
        // the caller's promise.
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
        }
        Ok(())
    }

    /// Waits for the read [`Piix::start`] began: polls until the engine
    /// stops, stops it and checks the bus-master and ATA status.
    pub fn finish(&mut self) -> Result<(), DmaError> {
        // SAFETY: the bus-master block and ATA channel identified in probe;
        // reading the status and stopping the engine only ends the transfer
        // that start began.
        unsafe {
            let mut bm_cmd = self.port8(self.bmi);
            let mut bm_status = self.port8(self.bmi + 2);
            let mut done = false;
            let mut deadline = Deadline::after_ms(TIMEOUT_MS);
            loop {
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
                if deadline.passed() {
                    break;
                }
                core::hint::spin_loop();
            }
            // Stopping the engine ends the transfer even if the drive never
            // finished (the drive itself stays busy until the BIOS, which
            // reads next, resets it: waiting for it here would only double
            // the pause).
            bm_cmd.write(0);
            let st = bm_status.read();
            bm_status.write(0x06);
            if !done || st & 0x02 != 0 {
                return Err(DmaError);
            }
            let ata = self.wait_not_busy()?;
            if ata & 0x21 != 0 || ata & 0x08 != 0 {
                return Err(DmaError);
            }
        }
        Ok(())
    }
}
