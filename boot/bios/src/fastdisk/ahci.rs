//! AHCI SATA controllers (class 01:06:01; QEMU `q35`'s ICH9, 8086:2922):
//! ATA READ DMA EXT through command slot 0 of the boot disk's port, so the
//! data goes by DMA straight to its destination instead of through INT 13h
//! (a trip to real mode and a bounce copy per 127 sectors).
//!
//! Recognised only when PCI bus 0 has exactly one function of class
//! 01:06:01, its ABAR (BAR5) is a memory BAR below 4 GiB, the HBA is in AHCI
//! mode (GHC.AE), and exactly one of its implemented ports has an ATA disk
//! attached (PxSSTS.DET = 3, PxSIG = 0x101) whose IDENTIFY DEVICE capacity
//! equals the total sectors in the BIOS's EDD information. SeaBIOS fills
//! only the EDD 1.x fields for AHCI drives (no device parameter table, no
//! device path); a BIOS whose EDD 3.0 device path names a SATA port of this
//! function narrows the search to that port, and any other DPTE or device
//! path means the boot drive is not on AHCI.
//!
//! SeaBIOS keeps driving the port through INT 13h afterwards (records,
//! small kernels, the fallback) with the command list and
//! received-FIS area it pointed the port at during POST and never points
//! again. So each command here borrows the port: stop its engines (AHCI 1.3
//! section 10.3.2), point it at our structures in memplan::FAST_DMA with
//! interrupts off, run the one command, stop it again and put SeaBIOS's
//! addresses, interrupt enables and engine state back.

use super::clock::Deadline;
use super::edd::Edd;
use super::{pci, DmaError, STAGE_ADDR, TIMEOUT_MS};
use crate::memplan::{FAST_DMA_ADDR, FAST_DMA_LEN};
use bootpack_proto::layout::SECTOR;
use core::ptr;
use core::sync::atomic::{compiler_fence, Ordering};

/// Sectors per command: 16 MiB, four PRDT entries of 4 MiB (the most one
/// entry may describe).
pub const MAX_SECTORS: u64 = 32768;

const PRD_MAX: u64 = 4 << 20;
const PRDS: usize = (MAX_SECTORS * SECTOR).div_ceil(PRD_MAX) as usize;

/// Our structures in FAST_DMA: the command list (32 headers, 1 KiB
/// aligned), the received-FIS area (256 bytes, 256-aligned), the command
/// table (FIS, ATAPI command, then the PRDT; 128-aligned) and the IDENTIFY
/// DEVICE buffer.
const CLB: u32 = FAST_DMA_ADDR;
const FB: u32 = FAST_DMA_ADDR + 0x400;
const CTBA: u32 = FAST_DMA_ADDR + 0x500;
const IDENTIFY: u32 = FAST_DMA_ADDR + 0x800;
const _: () = assert!(
    FAST_DMA_ADDR.is_multiple_of(0x400)
        && 0x80 + 16 * PRDS <= (IDENTIFY - CTBA) as usize
        && (IDENTIFY - FAST_DMA_ADDR) as usize + 512 <= FAST_DMA_LEN
        && IDENTIFY + 512 <= STAGE_ADDR
);

/// HBA registers (offsets in the ABAR).
const GHC: u32 = 0x04;
const GHC_AE: u32 = 1 << 31;
const PI: u32 = 0x0C;
/// Port registers (offsets in a port's block at 0x100 + 0x80 * port).
const PX_CLB: u32 = 0x00;
const PX_CLBU: u32 = 0x04;
const PX_FB: u32 = 0x08;
const PX_FBU: u32 = 0x0C;
const PX_IS: u32 = 0x10;
const PX_IE: u32 = 0x14;
const PX_CMD: u32 = 0x18;
const PX_TFD: u32 = 0x20;
const PX_SIG: u32 = 0x24;
const PX_SSTS: u32 = 0x28;
const PX_SERR: u32 = 0x30;
const PX_CI: u32 = 0x38;
const CMD_ST: u32 = 1 << 0;
const CMD_FRE: u32 = 1 << 4;
const CMD_FR: u32 = 1 << 14;
const CMD_CR: u32 = 1 << 15;
/// PxIS: task file error, host bus fatal/data error, interface fatal and
/// non-fatal error, overflow.
const IS_ERRORS: u32 = 0x7D00_0000;
/// PxTFD status: BSY, DRQ, ERR.
const TFD_BUSY: u32 = 0x88;
const TFD_ERR: u32 = 0x01;
const SIG_ATA: u32 = 0x0000_0101;

const ATA_READ_DMA_EXT: u8 = 0x25;
const ATA_IDENTIFY: u8 = 0xEC;

/// The port's settings as SeaBIOS left them, restored after each command.
#[derive(Clone, Copy, Debug, Default)]
struct Saved {
    clb: u32,
    clbu: u32,
    fb: u32,
    fbu: u32,
    ie: u32,
    /// FRE and ST of PxCMD.
    run: u32,
}

#[derive(Clone, Copy, Debug)]
pub struct Ahci {
    /// The HBA's registers (ABAR, identity-mapped, below 4 GiB).
    abar: u32,
    /// The boot disk's port registers, relative to `abar`.
    port: u32,
    /// SeaBIOS's settings while a command of ours runs.
    saved: Saved,
    /// Bytes the command in flight moves (checked against its PRDBC).
    bytes: u32,
}

/// The port the BIOS's EDD 3.0 device path names, Some(None) if it names
/// none, None if it names a device that is not on this function's ports.
fn edd_port(edd: &Edd, f: pci::Function) -> Option<Option<u8>> {
    match edd.device_path() {
        None if edd.dpte.is_some() => None,
        None => Some(None),
        Some(p) => {
            let ours = p.host_bus == b"PCI "
                && &p.interface[..4] == b"SATA"
                && p.interface_path[..3] == [0, f.dev, f.func];
            ours.then_some(Some(p.device_path[0]))
        }
    }
}

impl Ahci {
    /// The controller, if the boot drive is an ATA disk on an AHCI port.
    pub fn probe(edd: &Edd) -> Option<Ahci> {
        let f = pci::only(|f| f.class() == 0x01_06_01)?;
        let pci::Bar::Mem(abar) = f.bar(5)? else {
            return None;
        };
        let named = edd_port(edd, f)?;
        f.enable(0x6);
        let hba = Ahci {
            abar,
            port: 0,
            saved: Saved::default(),
            bytes: 0,
        };
        if hba.read(GHC) & GHC_AE == 0 {
            return None;
        }
        let implemented = hba.read(PI);
        let mut found = None;
        for n in 0..32u8 {
            if implemented & (1 << n) == 0 || named.is_some_and(|p| p != n) {
                continue;
            }
            let mut p = Ahci {
                port: 0x100 + 0x80 * u32::from(n),
                ..hba
            };
            if p.reg(PX_SSTS) & 0xF != 3 || p.reg(PX_SIG) != SIG_ATA {
                continue;
            }
            if p.capacity() == Some(edd.sectors) {
                if found.is_some() {
                    return None;
                }
                found = Some(p);
            }
        }
        found
    }

    fn read(&self, off: u32) -> u32 {
        // SAFETY: `abar` is the memory BAR of the AHCI function found in
        // probe, identity-mapped below 4 GiB; `off` is a generic host
        // register or one of an implemented port's, all dword-aligned.
        // None of the registers read here has read side effects.
        unsafe { ptr::read_volatile((self.abar + off) as usize as *const u32) }
    }

    fn write(&self, off: u32, v: u32) {
        // SAFETY: as in read; writes go only to this port's registers, in
        // the sequences the AHCI specification gives.
        unsafe { ptr::write_volatile((self.abar + off) as usize as *mut u32, v) }
    }

    fn reg(&self, r: u32) -> u32 {
        self.read(self.port + r)
    }

    fn set(&self, r: u32, v: u32) {
        self.write(self.port + r, v)
    }

    /// Waits (until the deadline) until the PxCMD bits `bits` are clear.
    fn wait_clear(&self, bits: u32) -> Result<(), DmaError> {
        let mut deadline = Deadline::after_ms(TIMEOUT_MS);
        loop {
            if self.reg(PX_CMD) & bits == 0 {
                return Ok(());
            }
            if deadline.passed() {
                return Err(DmaError);
            }
            core::hint::spin_loop();
        }
    }

    /// Stops the command list engine, then FIS reception (AHCI 1.3
    /// section 10.3.2); clearing ST also drops any command still issued.
    fn stop(&self) -> Result<(), DmaError> {
        self.set(PX_CMD, self.reg(PX_CMD) & !CMD_ST);
        self.wait_clear(CMD_CR)?;
        self.set(PX_CMD, self.reg(PX_CMD) & !CMD_FRE);
        self.wait_clear(CMD_FR)
    }

    /// Points the stopped port at a command list and FIS area, clears its
    /// error and interrupt status, sets its interrupt enables and starts
    /// FIS reception, then the command engine, as far as `run` says.
    fn point(&self, s: Saved) {
        self.set(PX_CLB, s.clb);
        self.set(PX_CLBU, s.clbu);
        self.set(PX_FB, s.fb);
        self.set(PX_FBU, s.fbu);
        self.set(PX_SERR, self.reg(PX_SERR));
        self.set(PX_IS, self.reg(PX_IS));
        self.set(PX_IE, s.ie);
        let cmd = self.reg(PX_CMD);
        if s.run & CMD_FRE != 0 {
            self.set(PX_CMD, cmd | CMD_FRE);
        }
        if s.run & CMD_ST != 0 {
            self.set(PX_CMD, cmd | (s.run & CMD_FRE) | CMD_ST);
        }
    }

    /// Borrows the port from the BIOS: saves its settings, stops it and
    /// points it at our structures with interrupts off.
    fn take(&mut self) -> Result<(), DmaError> {
        self.saved = Saved {
            clb: self.reg(PX_CLB),
            clbu: self.reg(PX_CLBU),
            fb: self.reg(PX_FB),
            fbu: self.reg(PX_FBU),
            ie: self.reg(PX_IE),
            run: self.reg(PX_CMD) & (CMD_FRE | CMD_ST),
        };
        // The device must be idle before ST may be set (section 10.3.1).
        if self.stop().is_err() || self.reg(PX_TFD) & TFD_BUSY != 0 {
            let _ = self.give_back();
            return Err(DmaError);
        }
        self.point(Saved {
            clb: CLB,
            clbu: 0,
            fb: FB,
            fbu: 0,
            ie: 0,
            run: CMD_FRE | CMD_ST,
        });
        if self.reg(PX_CMD) & CMD_ST == 0 {
            let _ = self.give_back();
            return Err(DmaError);
        }
        Ok(())
    }

    /// Hands the port back: stops it and restores the BIOS's settings.
    fn give_back(&self) -> Result<(), DmaError> {
        let stopped = self.stop();
        self.point(self.saved);
        stopped
    }

    /// Builds an H2D register FIS for `command` (LBA48 `lba`, `count`
    /// sectors) with a PRDT covering `[dest, dest + bytes)`, borrows the
    /// port and issues it in slot 0; [`Ahci::wait`] completes it.
    ///
    /// # Safety
    /// `[dest, dest + bytes)` must be RAM below 4 GiB, word-aligned, at most
    /// MAX_SECTORS sectors, that nothing else uses until `wait` returns,
    /// clear of our structures in FAST_DMA.
    unsafe fn issue(
        &mut self,
        command: u8,
        lba: u64,
        count: u16,
        dest: u64,
        bytes: u64,
    ) -> Result<(), DmaError> {
        let [l0, l1, l2, l3, l4, l5, _, _] = lba.to_le_bytes();
        let [c0, c1] = count.to_le_bytes();
        // Register H2D FIS (type 0x27, C bit: a command), device LBA mode.
        let fis = [
            0x27, 0x80, command, 0, l0, l1, l2, 0x40, l3, l4, l5, 0, c0, c1, 0, 0,
        ];
        let table = CTBA as usize as *mut u32;
        let mut prds = 0;
        let mut at = dest;
        // SAFETY: the command list and table lie in FAST_DMA, stage 2's
        // alone (checked usable RAM by the caller of fastdisk::setup),
        // identity-mapped; the port does not look at them until it is
        // pointed there and PxCI is written below. The PRDT entries stay
        // within the table's room (PRDS entries, checked at compile time)
        // because bytes <= MAX_SECTORS * 512.
        unsafe {
            ptr::write_bytes(table as *mut u8, 0, 0x80);
            ptr::copy_nonoverlapping(fis.as_ptr(), table as *mut u8, fis.len());
            while at < dest + bytes {
                let len = (dest + bytes - at).min(PRD_MAX);
                let e = table.add(0x20 + 4 * prds);
                ptr::write_volatile(e, at as u32);
                ptr::write_volatile(e.add(1), 0);
                ptr::write_volatile(e.add(2), 0);
                // Byte count minus one (bit 0 set: an even count); no
                // interrupt on completion.
                ptr::write_volatile(e.add(3), (len - 1) as u32);
                prds += 1;
                at += len;
            }
            // Command header 0: FIS length 5 dwords, a read, PRDTL, PRDBC
            // zeroed, the table's address.
            let header = CLB as usize as *mut u32;
            ptr::write_volatile(header, 5 | (prds as u32) << 16);
            ptr::write_volatile(header.add(1), 0);
            ptr::write_volatile(header.add(2), CTBA);
            ptr::write_volatile(header.add(3), 0);
        }
        self.bytes = bytes as u32;
        compiler_fence(Ordering::SeqCst);
        self.take()?;
        self.set(PX_CI, 1);
        Ok(())
    }

    /// Waits (until the deadline) for the command [`Ahci::issue`] began,
    /// checks its status and byte count, and hands the port back.
    fn wait(&mut self) -> Result<(), DmaError> {
        let mut done = false;
        let mut deadline = Deadline::after_ms(TIMEOUT_MS);
        loop {
            if self.reg(PX_IS) & IS_ERRORS != 0 {
                break;
            }
            if self.reg(PX_CI) & 1 == 0 {
                done = true;
                break;
            }
            if deadline.passed() {
                break;
            }
            core::hint::spin_loop();
        }
        compiler_fence(Ordering::SeqCst);
        let status = self.reg(PX_IS);
        let tfd = self.reg(PX_TFD);
        // SAFETY: command header 0 in FAST_DMA (ours); the HBA has finished
        // with it or is about to be stopped, and only the count is read.
        let moved = unsafe { ptr::read_volatile((CLB as usize as *const u32).add(1)) };
        let good = done
            && status & IS_ERRORS == 0
            && tfd & (TFD_BUSY | TFD_ERR) == 0
            && moved == self.bytes;
        let back = self.give_back();
        if good && back.is_ok() {
            Ok(())
        } else {
            Err(DmaError)
        }
    }

    /// The disk's capacity in sectors from IDENTIFY DEVICE (the LBA48
    /// count if the disk supports that feature set, else the 28-bit one,
    /// as SeaBIOS computes it for EDD).
    fn capacity(&mut self) -> Option<u64> {
        // SAFETY: the IDENTIFY buffer lies in FAST_DMA (stage 2's alone),
        // word-aligned, clear of the command list and table.
        unsafe { self.issue(ATA_IDENTIFY, 0, 0, u64::from(IDENTIFY), 512) }.ok()?;
        self.wait().ok()?;
        let word = |i: usize| {
            // SAFETY: the IDENTIFY data (256 words) was just read there.
            u64::from(unsafe { ptr::read_volatile((IDENTIFY as usize as *const u16).add(i)) })
        };
        Some(if word(83) & (1 << 10) != 0 {
            word(100) | word(101) << 16 | word(102) << 32 | word(103) << 48
        } else {
            word(60) | word(61) << 16
        })
    }

    /// Starts reading `sectors` (1..=MAX_SECTORS) sectors from `lba` to
    /// physical `dest` with READ DMA EXT; [`Ahci::finish`] waits for it.
    ///
    /// # Safety
    /// As for super::Fast::start: `[dest, dest + sectors * 512)` must be RAM
    /// below 4 GiB that nothing else uses until `finish` returns, clear of
    /// FAST_DMA.
    pub unsafe fn start(&mut self, lba: u64, sectors: u64, dest: u64) -> Result<(), DmaError> {
        if sectors == 0 || sectors > MAX_SECTORS || lba + sectors > 1 << 48 {
            return Err(DmaError);
        }
        let bytes = sectors * SECTOR;
        if dest & 1 != 0 || dest + bytes > 1 << 32 {
            return Err(DmaError);
        }
        // SAFETY: the caller's promise; the range was checked to be
        // word-aligned, below 4 GiB and at most MAX_SECTORS long.
        unsafe { self.issue(ATA_READ_DMA_EXT, lba, sectors as u16, dest, bytes) }
    }

    /// Waits for the read [`Ahci::start`] began and checks its status.
    pub fn finish(&mut self) -> Result<(), DmaError> {
        self.wait()
    }
}
