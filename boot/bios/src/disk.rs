//! Disk reads through the BIOS: INT 13h extensions (AH=42h) where the
//! drive has them, else CHS reads (AH=02h) within the geometry AH=08h
//! reports. Which one is decided on the first read.

use crate::bios::{self, Regs};
use crate::fail::{fail, Hex, Hex2, Str};
use crate::memplan::SECTORS_PER_READ;
use crate::Global;
use bootpack_proto::layout::SECTOR;
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

/// A drive's geometry from INT 13h AH=08h, as counts (AH=08h returns the
/// highest cylinder and head numbers).
#[derive(Clone, Copy)]
struct Geometry {
    cylinders: u32,
    heads: u32,
    /// Sectors per track, 1..=63.
    sectors: u32,
}

impl Geometry {
    /// Sectors CHS reaches: LBAs from here on cannot be read.
    fn limit(&self) -> u64 {
        self.cylinders as u64 * self.heads as u64 * self.sectors as u64
    }
}

/// How the boot drive is read.
#[derive(Clone, Copy)]
enum Access {
    Extended,
    Chs(Geometry),
}

/// Decided on the first read: stage 2 reads one drive only.
static ACCESS: Global<Option<Access>> = Global::new(None);

/// Extended reads if the drive has the extensions with the packet interface
/// (AH=41h: CF clear, BX = AA55h, CX bit 0), else CHS with its geometry
/// (AH=08h). Halts with a message if it has neither.
fn probe(drive: u8) -> Access {
    let mut r = Regs::new();
    r.eax = 0x4100;
    r.ebx = 0x55AA;
    r.edx = drive as u32;
    let out = bios::int(0x13, &r);
    if !out.carry() && out.ebx & 0xFFFF == 0xAA55 && out.ecx & 1 != 0 {
        return Access::Extended;
    }
    let mut r = Regs::new();
    r.eax = 0x0800; // and ES:DI = 0:0, which guards against BIOS bugs
    r.edx = drive as u32;
    let out = bios::int(0x13, &r);
    let (cx, dh) = (out.ecx, (out.edx >> 8) & 0xFF);
    let g = Geometry {
        cylinders: ((cx >> 8 & 0xFF) | (cx & 0xC0) << 2) + 1,
        heads: dh + 1,
        sectors: cx & 0x3F,
    };
    if out.carry() || g.sectors == 0 {
        fail(&[
            Str("the BIOS has neither INT 13h extensions nor a disk geometry for drive "),
            Hex2(drive),
            Str(" (status "),
            Hex2(out.ah()),
            Str(")"),
        ]);
    }
    Access::Chs(g)
}

fn access(drive: u8) -> Access {
    // SAFETY: single-threaded, and no reference into ACCESS outlives the
    // statement that makes it.
    unsafe {
        if let Some(a) = *ACCESS.get() {
            return a;
        }
        let a = probe(drive);
        *ACCESS.get() = Some(a);
        a
    }
}

/// Runs the read `call` makes up to TRIES times, resetting the disk system
/// (AH=00h) before each retry; `lba` names the read in the error.
fn with_retries(drive: u8, lba: u64, mut call: impl FnMut() -> Regs) -> Result<(), ReadError> {
    let mut status = 0;
    for attempt in 0..TRIES {
        if attempt > 0 {
            let mut r = Regs::new();
            r.edx = drive as u32; // AH=00h: reset
            bios::int(0x13, &r);
        }
        let out = call();
        if !out.carry() && out.ah() == 0 {
            return Ok(());
        }
        status = out.ah();
    }
    Err(ReadError { drive, lba, status })
}

/// Reads `count` sectors (at most SECTORS_PER_READ) from `lba` into the
/// physical address `addr` with AH=42h (below 1 MiB; the buffer must not
/// wrap its 16-bit offset, which holds for any address when the offset is
/// the low nibble).
fn read_extended(drive: u8, lba: u64, count: u16, addr: u32) -> Result<(), ReadError> {
    debug_assert!(count <= SECTORS_PER_READ);
    let (segment, offset) = bios::far(addr);
    let dap_addr = DAP.get() as usize as u32;
    let (dap_seg, dap_off) = bios::far(dap_addr);
    with_retries(drive, lba, || {
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
        bios::int(0x13, &r)
    })
}

/// Reads `sectors` sectors from `lba` into physical `addr` (below 1 MiB,
/// sector-aligned) with AH=02h, each call within one track (many BIOSes
/// refuse more) and one 64 KiB block of memory (ISA DMA cannot cross its
/// boundary). Halts with a message if the range lies beyond what CHS
/// reaches, rather than read the wrapped-around sectors a BIOS may return.
fn read_chs(drive: u8, g: Geometry, lba: u64, sectors: u64, addr: u32) -> Result<(), ReadError> {
    let limit = g.limit();
    if lba + sectors > limit {
        fail(&[
            Str("the kernel lies beyond what this BIOS can address without INT 13h extensions (LBA "),
            Hex(lba.max(limit)),
            Str(", CHS limit "),
            Hex(limit),
            Str(" sectors)"),
        ]);
    }
    let mut done = 0;
    while done < sectors {
        let at = lba + done;
        let to = addr + (done * SECTOR) as u32;
        // Below `limit`: the cylinder fits the 10 bits CHS has.
        let sector = (at % g.sectors as u64) as u32;
        let track = at / g.sectors as u64;
        let head = (track % g.heads as u64) as u32;
        let cylinder = (track / g.heads as u64) as u32;
        // `to` is sector-aligned, so at least one whole sector fits before
        // the boundary.
        let to_boundary = (0x1_0000 - (to & 0xFFFF)) as u64 / SECTOR;
        let n = (sectors - done)
            .min((g.sectors - sector) as u64)
            .min(to_boundary)
            .min(SECTORS_PER_READ as u64);
        let (segment, offset) = bios::far(to);
        with_retries(drive, at, || {
            let mut r = Regs::new();
            r.eax = 0x0200 | n as u32;
            r.ecx = (cylinder & 0xFF) << 8 | (cylinder >> 2 & 0xC0) | (sector + 1);
            r.edx = (head & 0xFF) << 8 | drive as u32;
            r.es = segment;
            r.ebx = offset as u32;
            bios::int(0x13, &r)
        })?;
        done += n;
    }
    Ok(())
}

/// Reads `sectors` sectors from `lba` into physical `addr` (below 1 MiB,
/// sector-aligned), in BIOS calls of at most SECTORS_PER_READ sectors.
/// Whole sectors land at `addr`: callers read into their own buffers
/// (bounce, record, verification) and copy out exactly the bytes they need,
/// so the BIOS never writes anywhere else. With AH=42h each call's buffer is
/// `(addr >> 4):(addr & 0xF)`, so its offset never wraps; the buffers the
/// callers use (layout) do not cross a 64 KiB boundary within one call
/// either, and the CHS path splits calls there itself.
pub fn read(drive: u8, lba: u64, sectors: u64, addr: u32) -> Result<(), ReadError> {
    debug_assert!(addr.is_multiple_of(SECTOR as u32) && addr < 0x10_0000);
    if let Access::Chs(g) = access(drive) {
        return read_chs(drive, g, lba, sectors, addr);
    }
    let mut done = 0;
    while done < sectors {
        let n = (sectors - done).min(SECTORS_PER_READ as u64);
        read_extended(drive, lba + done, n as u16, addr + (done * SECTOR) as u32)?;
        done += n;
    }
    Ok(())
}

/// Sectors needed for `bytes` bytes.
pub fn sectors_for(bytes: u64) -> u64 {
    bytes.div_ceil(SECTOR)
}
