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
//!
//! Each controller says which destination addresses its DMA can reach
//! ([`Fast::align`]); load::read_to sends data straight to the kernel's
//! memory only where that holds and stages the rest through [`STAGE_ADDR`].
//! Every wait is bounded by [`TIMEOUT_MS`] on one clock ([`clock`]).

mod ahci;
mod clock;
mod edd;
mod pci;
mod piix;
mod virtio;

use crate::memplan::{FAST_DMA_ADDR, FAST_DMA_LEN, FAST_VERIFY_ADDR, FAST_VERIFY_LEN};
use crate::Global;
use bootpack_proto::layout::SECTOR;

/// How long any one wait on a controller may take (a command's completion,
/// a drive or engine going idle) before the fast path gives up and the
/// BIOS reads instead: far longer than a 16 MiB read takes on any disk or
/// under an emulator on a loaded host, short enough that a hung controller
/// costs one pause, not a hang.
pub const TIMEOUT_MS: u64 = 5000;

/// Where reads that cannot go straight to their destination are staged:
/// the upper half of memplan::FAST_DMA (the controllers' structures use the
/// lower half, asserted in ahci.rs and virtio.rs). It is the fast path's
/// alone, never the BIOS's bounce buffer, so a request that timed out and
/// lands late can never mix with what the BIOS reads afterwards. Two
/// halves of STAGE_LEN / 2: one is filled while the other is copied.
/// 4 KiB-aligned and within one 64 KiB block, as every controller wants.
pub const STAGE_ADDR: u32 = FAST_DMA_ADDR + 0x8000;
pub const STAGE_LEN: u32 = 0x8000;
const _: () = assert!(
    (STAGE_ADDR - FAST_DMA_ADDR + STAGE_LEN) as usize <= FAST_DMA_LEN
        && STAGE_ADDR >> 16 == (STAGE_ADDR + STAGE_LEN - 1) >> 16
        && ((STAGE_LEN / 2) as u64).is_multiple_of(SECTOR)
);

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

    /// The alignment a destination address must have for this
    /// controller's DMA to write there: 2 for PIIX bus-master IDE (a PRD's
    /// base address bit 0 is reserved and its byte count must be even;
    /// PIIX3/4 datasheets; QEMU drops bit 0 of the count) and AHCI (a PRD's
    /// data base address must be word-aligned and its byte count even,
    /// AHCI 1.3 section 4.2.3.3), 1 for virtio (buffers may start at any
    /// byte, virtio 1.0 section 2.4.5).
    pub fn align(&self) -> u64 {
        match self {
            Fast::Piix(_) | Fast::Ahci(_) => 2,
            Fast::Virtio(_) => 1,
        }
    }

    /// Starts reading `sectors` (1..=max_sectors) sectors from `lba` to
    /// physical `dest`; [`Fast::finish`] waits for the data. Only one read
    /// is in flight at a time. A `dest` not a multiple of [`Fast::align`]
    /// is refused (DmaError) before the controller is touched.
    ///
    /// # Safety
    /// `[dest, dest + sectors * 512)` must be RAM below 4 GiB that nothing
    /// else uses until `finish` returns, clear of stage 2, its buffers and
    /// the controllers' structures (everything below 1 MiB but the
    /// verification buffer and [`STAGE_ADDR`] is stage 2's).
    pub unsafe fn start(&mut self, lba: u64, sectors: u64, dest: u64) -> Result<(), DmaError> {
        if !dest.is_multiple_of(self.align()) {
            return Err(DmaError);
        }
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
/// `verify` (which reads through both paths and compares) agrees and the
/// deadline clock ticks.
pub fn setup(drive: u8, verify: impl FnOnce(&mut Fast) -> bool) {
    clock::start();
    let started = clock::mark();
    let Some(edd) = edd::query(drive) else {
        return;
    };
    // The BIOS call in between (a trip to real mode and back) takes far
    // longer than one PIT tick (0.84 us): a counter that has not moved is
    // not running, the waits' deadlines would never come, so no fast path.
    if !clock::running(started) {
        return;
    }
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
