//! The BIOS memory map: INT 15h, EAX=E820h.

use crate::bios::{self, Regs};
use crate::memplan::BOUNCE_ADDR;
use crate::Global;
use bootpack_proto::memory::{Region, E820_ENTRY_LEN};
use core::ptr;

/// Most entries kept; real machines report a few dozen at most.
pub const MAX_ENTRIES: usize = 128;
const SMAP: u32 = 0x534D_4150;
/// Where the BIOS writes each entry: the bounce buffer, unused until the
/// disk reads start.
const BUF: u32 = BOUNCE_ADDR;

static ENTRIES: Global<[Region; MAX_ENTRIES]> = Global::new(
    [Region {
        base: 0,
        len: 0,
        kind: 0,
    }; MAX_ENTRIES],
);

/// Reads the whole map, each entry exactly as the BIOS gave it and in its
/// order. None if the BIOS gives no map at all.
pub fn read() -> Option<&'static [Region]> {
    let (seg, off) = bios::far(BUF);
    let buf = BUF as usize as *mut u8;
    let mut n = 0;
    let mut cont = 0;
    loop {
        // SAFETY: BUF is free RAM below 1 MiB (memplan::BOUNCE_ADDR),
        // identity-mapped; the ACPI 3 attribute dword is preset to 1
        // ("valid") for BIOSes that return only 20 bytes.
        unsafe {
            ptr::write_bytes(buf, 0, 24);
            ptr::write_unaligned(buf.add(20) as *mut u32, 1);
        }
        let mut r = Regs::new();
        r.eax = 0xE820;
        r.ebx = cont;
        r.ecx = 24;
        r.edx = SMAP;
        r.es = seg;
        r.edi = off as u32;
        let out = bios::int(0x15, &r);
        // Carry (or a missing signature) on the first call: no map; later:
        // the end of the list.
        if out.carry() || out.eax != SMAP {
            break;
        }
        if out.ecx >= 20 {
            // SAFETY: the BIOS wrote at least 20 bytes at BUF, which
            // nothing else writes while this view is alive.
            let raw = unsafe { core::slice::from_raw_parts(buf, E820_ENTRY_LEN) };
            let e = Region::from_e820(raw);
            // SAFETY: n < MAX_ENTRIES; single-threaded, and no reference to
            // ENTRIES exists until the slice below is made.
            unsafe { (*ENTRIES.get())[n] = e };
            n += 1;
        }
        cont = out.ebx;
        if cont == 0 || n == MAX_ENTRIES {
            break;
        }
    }
    if n == 0 {
        return None;
    }
    // SAFETY: ENTRIES is written only above, before this shared reference
    // is created, and never again.
    let all: &'static [Region; MAX_ENTRIES] = unsafe { &*ENTRIES.get() };
    Some(&all[..n])
}
