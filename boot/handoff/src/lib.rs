//! bootpack's Multiboot handoff, shared by its loaders: the last code that
//! runs before the kernel (src/handoff.s).
//!
//! Why a crate of its own: the handoff is the same for every firmware
//! (leave long mode, load the GDT kernels expect, set the Multiboot
//! registers, optionally run the relocation trampoline), and the
//! BIOS loader (boot/bios) and a UEFI loader both link it. It relies on
//! nothing of its caller: it loads its own GDT before it leaves 64-bit
//! mode, and the whole block ([`code`]) is position-independent, so a
//! loader whose image may lie above 4 GiB (UEFI) copies it below 4 GiB and
//! enters it at [`enter_offset`]; a loader below 4 GiB (the
//! BIOS stage 2) calls [`enter_kernel`] where it is linked. What the code
//! relies on and leaves is documented at the top of src/handoff.s.
//!
//! The trampoline block's layout is bootpack_proto::relocate's
//! (`write_trampoline`); this crate supplies the code and the GDT it
//! copies ([`trampoline_code`], [`gdt`]).
#![no_std]

core::arch::global_asm!(include_str!("handoff.s"), options(att_syntax));

/// Bytes of the handoff GDT: null, 0x08 flat 32-bit code, 0x10 flat data
/// (bootpack_proto::relocate::TRAMPOLINE_GDT_LEN).
pub const GDT_LEN: usize = 24;

extern "C" {
    fn bootpack_enter_kernel(entry: u32, info: u32, magic: u32, trampoline: u32) -> !;
    static bootpack_handoff_gdt: [u8; GDT_LEN];
    static bootpack_trampoline: u8;
    static bootpack_trampoline_end: u8;
    static bootpack_handoff_start: u8;
    static bootpack_handoff_end: u8;
}

/// The bytes between two symbols of src/handoff.s.
///
/// # Safety
/// `start` and `end` must label the same block of handoff.s, start first.
unsafe fn between(start: *const u8, end: *const u8) -> &'static [u8] {
    // SAFETY: per the caller, [start, end) is one block of this crate's
    // code, which nothing writes.
    unsafe { core::slice::from_raw_parts(start, end.offset_from(start) as usize) }
}

/// The handoff GDT, which the trampoline block carries a copy of.
pub fn gdt() -> &'static [u8; GDT_LEN] {
    // SAFETY: a constant table in handoff.s that nothing writes.
    unsafe { &*core::ptr::addr_of!(bootpack_handoff_gdt) }
}

/// The trampoline's code, which the loader copies into the trampoline
/// block (position-independent; see handoff.s).
pub fn trampoline_code() -> &'static [u8] {
    // SAFETY: both symbols label the trampoline in handoff.s, start first.
    unsafe {
        between(
            core::ptr::addr_of!(bootpack_trampoline),
            core::ptr::addr_of!(bootpack_trampoline_end),
        )
    }
}

/// The whole handoff block (entry code, GDT, trampoline), for a loader
/// that must copy it below 4 GiB before use; call the copy at
/// [`enter_offset`].
pub fn code() -> &'static [u8] {
    // SAFETY: both symbols label the whole of handoff.s, start first.
    unsafe {
        between(
            core::ptr::addr_of!(bootpack_handoff_start),
            core::ptr::addr_of!(bootpack_handoff_end),
        )
    }
}

/// Where `bootpack_enter_kernel` lies in [`code`].
pub fn enter_offset() -> usize {
    let start = core::ptr::addr_of!(bootpack_handoff_start) as usize;
    bootpack_enter_kernel as *const () as usize - start
}

/// Enters the kernel at `entry` with EAX = `magic`, EBX = `info`: directly
/// if `trampoline` is 0, else through the trampoline block there.
///
/// # Safety
/// As src/handoff.s says: long mode at CPL 0, this code and the stack
/// below 4 GiB and identity-mapped, A20 on; the kernel and its information
/// in place (or staged as the block at `trampoline` describes, written by
/// bootpack_proto::relocate::write_trampoline with [`trampoline_code`] and
/// [`gdt`]). Nothing of the caller survives.
pub unsafe fn enter_kernel(entry: u32, info: u32, magic: u32, trampoline: u32) -> ! {
    // SAFETY: per the caller.
    unsafe { bootpack_enter_kernel(entry, info, magic, trampoline) }
}
