//! Stage 2's own read paths for the disk controllers it recognises with
//! certainty, so kernel data goes by DMA straight to its destination
//! instead of through the BIOS (SeaBIOS transfers IDE data by port I/O,
//! which TCG emulates word by word: ~100 ms per MiB; and every INT 13h call
//! costs a trip to real mode and back):
//!
//! - [`piix`]: PIIX3 IDE bus-master DMA (QEMU `pc`);
//! - [`ahci`]: AHCI (QEMU `q35`'s ICH9 SATA);
//! - [`virtio`]: virtio-blk and virtio-scsi.
//!
//! Used only when all of these hold, else every read stays with INT 13h:
//! - the record does not carry FLAG_NO_FAST_READ (`bootpack build
//!   --no-fast-read`);
//! - the BIOS's EDD information (INT 13h AH=48h) and the PCI functions on
//!   bus 0 identify exactly one controller and device as the boot drive
//!   (each driver says how);
//! - fast reads of the record's sectors and of the first kernel sectors are
//!   byte-identical to what the BIOS read (load::setup_fast_read).
//!
//! Any error, timeout or doubt later turns the fast path off for good and
//! the read is redone through the BIOS; the payload checksum still guards
//! everything.

mod ahci;
mod edd;
mod pci;
mod piix;
mod virtio;

use crate::Global;
use bootpack_proto::layout::{FAST_VERIFY_ADDR, FAST_VERIFY_LEN, SECTOR};

/// Why a fast read failed: the caller falls back to the BIOS.
#[derive(Clone, Copy, Debug)]
pub struct DmaError;

/// The boot drive's controller, driven by stage 2 itself.
#[derive(Clone, Copy, Debug)]
pub enum Fast {
    Piix(piix::Piix),
    Ahci(ahci::Ahci),
    Virtio(virtio::Virtio),
}

impl Fast {
    /// The most sectors one [`Fast::start`] may ask for.
    pub fn max_sectors(&self) -> u64 {
        match self {
            Fast::Piix(_) => piix::MAX_SECTORS,
            Fast::Ahci(_) => ahci::MAX_SECTORS,
            Fast::Virtio(_) => virtio::MAX_SECTORS,
        }
    }

    /// Starts reading `sectors` (1..=max_sectors) sectors from `lba` to
    /// physical `dest`; [`Fast::finish`] waits for the data. Only one read
    /// is in flight at a time.
    ///
    /// # Safety
    /// `[dest, dest + sectors * 512)` must be RAM below 4 GiB that nothing
    /// else uses until `finish` returns, clear of stage 2, its buffers and
    /// the controllers' structures (everything below 1 MiB but the
    /// verification buffer is stage 2's).
    pub unsafe fn start(&mut self, lba: u64, sectors: u64, dest: u64) -> Result<(), DmaError> {
        // SAFETY: the caller's promise, passed on.
        unsafe {
            match self {
                Fast::Piix(d) => d.start(lba, sectors, dest),
                Fast::Ahci(d) => d.start(lba, sectors, dest),
                Fast::Virtio(d) => d.start(lba, sectors, dest),
            }
        }
    }

    /// Waits for the read [`Fast::start`] began and checks its status.
    pub fn finish(&mut self) -> Result<(), DmaError> {
        match self {
            Fast::Piix(d) => d.finish(),
            Fast::Ahci(d) => d.finish(),
            Fast::Virtio(d) => d.finish(),
        }
    }

    /// [`Fast::start`] and [`Fast::finish`].
    ///
    /// # Safety
    /// As for [`Fast::start`].
    pub unsafe fn read(&mut self, lba: u64, sectors: u64, dest: u64) -> Result<(), DmaError> {
        // SAFETY: the caller's promise, passed on.
        unsafe { self.start(lba, sectors, dest) }?;
        self.finish()
    }

    /// Reads `expected.len()` bytes' worth of sectors from `lba` into the
    /// verification buffer and compares them with `expected` (what the
    /// BIOS read).
    pub fn same_as(&mut self, lba: u64, expected: &[u8]) -> bool {
        let sectors = (expected.len() as u64).div_ceil(SECTOR);
        if expected.is_empty() || sectors * SECTOR > FAST_VERIFY_LEN as u64 {
            return false;
        }
        // SAFETY: the verification buffer (layout) is stage 2's alone,
        // below 1 MiB, clear of the controllers' structures; `sectors` fits.
        if unsafe { self.read(lba, sectors, u64::from(FAST_VERIFY_ADDR)) }.is_err() {
            return false;
        }
        // SAFETY: the read above has completed; the buffer holds its bytes.
        let got = unsafe {
            core::slice::from_raw_parts(FAST_VERIFY_ADDR as usize as *const u8, expected.len())
        };
        got == expected
    }
}

static FAST: Global<Option<Fast>> = Global::new(None);

/// The fast path, if it is on.
pub fn get() -> Option<Fast> {
    // SAFETY: single-threaded stage 2 (see Global); a copy is returned.
    unsafe { *FAST.get() }
}

/// Turns the fast path off for the rest of the boot.
pub fn disable() {
    // SAFETY: as in get.
    unsafe { *FAST.get() = None }
}

/// Looks for the boot drive's controller and turns the fast path on if
/// `verify` (which reads through both paths and compares) agrees.
pub fn setup(drive: u8, verify: impl FnOnce(&mut Fast) -> bool) {
    let Some(edd) = edd::query(drive) else {
        return;
    };
    let found = piix::Piix::probe(&edd)
        .map(Fast::Piix)
        .or_else(|| ahci::Ahci::probe(&edd).map(Fast::Ahci))
        .or_else(|| virtio::Virtio::probe(&edd).map(Fast::Virtio));
    if let Some(mut fast) = found {
        if verify(&mut fast) {
            // SAFETY: single-threaded (see Global).
            unsafe { *FAST.get() = Some(fast) };
        }
    }
}
