//! Reads of physical memory the boot loader describes (the Multiboot info,
//! the command line, the memory map, the loader's GDT, the payload).
//!
//! `_start32` identity-maps 0..4 GiB, so a physical address below 4 GiB is
//! also a valid virtual address. The reads are single `mov` instructions in
//! inline asm rather than Rust pointer reads: the loader may legitimately
//! point at address 0 (a null pointer to Rust) and the memory is not a Rust
//! object, so no Rust aliasing or validity rules apply to it.
//!
//! Reads that would leave the identity map (only possible with a garbage
//! pointer near 4 GiB) return all ones, as unbacked memory does, instead of
//! page-faulting (there is no IDT, so a fault would reset the machine).

use core::arch::asm;

/// End of the identity map built by `_start32`.
pub const MAPPED_END: u64 = 1 << 32;

fn mapped(addr: u64, size: u64) -> bool {
    addr.checked_add(size).is_some_and(|end| end <= MAPPED_END)
}

pub fn read_u8(addr: u64) -> u8 {
    if !mapped(addr, 1) {
        return u8::MAX;
    }
    let value: u8;
    // SAFETY: addr is inside the identity map (checked above), so the load
    // cannot fault; it only reads memory and changes no flags.
    unsafe {
        asm!("mov {v}, byte ptr [{a}]", a = in(reg) addr, v = out(reg_byte) value,
             options(nostack, readonly, preserves_flags));
    }
    value
}

pub fn read_u32(addr: u64) -> u32 {
    if !mapped(addr, 4) {
        return u32::MAX;
    }
    let value: u32;
    // SAFETY: as in read_u8; x86 allows unaligned loads.
    unsafe {
        asm!("mov {v:e}, dword ptr [{a}]", a = in(reg) addr, v = out(reg) value,
             options(nostack, readonly, preserves_flags));
    }
    value
}

pub fn read_u64(addr: u64) -> u64 {
    if !mapped(addr, 8) {
        return u64::MAX;
    }
    let value: u64;
    // SAFETY: as in read_u8; x86 allows unaligned loads.
    unsafe {
        asm!("mov {v}, qword ptr [{a}]", a = in(reg) addr, v = out(reg) value,
             options(nostack, readonly, preserves_flags));
    }
    value
}
