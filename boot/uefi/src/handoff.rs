//! The jump to the kernel after ExitBootServices.
//!
//! The BIOS loader's handoff (boot/handoff) runs from
//! stage 2's low, identity-mapped memory with its own GDT loaded; this
//! loader runs wherever the firmware put it (possibly above 4 GiB) with
//! the firmware's GDT. So a small position-independent stub
//! (asm/leave.s) is copied into a page below 4 GiB, next to a trampoline
//! block written by bootpack_proto::relocate exactly as on BIOS (the
//! handoff GDT and bootpack_trampoline's code, both from handoff.s, with
//! no moves: under UEFI every segment was loaded in place), and the stub
//! leaves long mode into that block. The block's moves put segments that
//! were staged (their memory belonged to boot services until the exit)
//! into place.

use bootpack_proto::relocate::{self, Trampoline, TRAMPOLINE_GDT_LEN};
use core::ptr::addr_of;
use uefi::boot::{self, AllocateType, MemoryType};

// The block's GDT copy is the handoff crate's GDT.
const _: () = assert!(bootpack_handoff::GDT_LEN == TRAMPOLINE_GDT_LEN);

extern "C" {
    /// asm/leave.s: the stub, copied next to the block.
    static bootpack_uefi_leave: u8;
    static bootpack_uefi_leave_end: u8;
}

/// Bytes between two labels of this image.
///
/// # Safety
/// `start` and `end` label one piece of the image, start before end, and
/// nothing writes the bytes between.
unsafe fn between(start: *const u8, end: *const u8) -> &'static [u8] {
    // SAFETY: per the caller's promise.
    unsafe { core::slice::from_raw_parts(start, end.offset_from(start) as usize) }
}

/// The page the handoff runs from: block, stub and a small stack.
pub struct HandoffPage {
    base: u64,
}

/// Stack bytes at the end of the handoff page (only popfl uses it).
const STACK: u64 = 256;

/// Takes a page below 4 GiB from the firmware for the handoff (before
/// ExitBootServices: afterwards nothing can be allocated).
pub fn reserve() -> HandoffPage {
    let page = boot::allocate_pages(
        AllocateType::MaxAddress(0xFFFF_FFFF),
        // Code: the stub runs there, and some firmware maps loader data
        // non-executable.
        MemoryType::LOADER_CODE,
        1,
    )
    .unwrap_or_else(|_| crate::fail!("no page below 4 GiB for the final jump to the kernel"));
    HandoffPage {
        base: page.as_ptr() as u64,
    }
}

impl HandoffPage {
    /// Writes the block and the stub and jumps to the kernel at `entry`
    /// with EAX = `magic`, EBX = `info`.
    pub fn enter(
        self,
        entry: u32,
        info: u32,
        magic: u32,
        moves: &[bootpack_proto::relocate::Move],
    ) -> ! {
        let code = bootpack_handoff::trampoline_code();
        // SAFETY: the labels come from asm/leave.s, around one piece of
        // code in this image's text.
        let stub = unsafe {
            between(
                addr_of!(bootpack_uefi_leave),
                addr_of!(bootpack_uefi_leave_end),
            )
        };
        let block_len = relocate::trampoline_len(code.len(), moves.len());
        let stub_at = (block_len as u64 + 15) & !15;
        if stub_at + stub.len() as u64 + STACK > 4096 {
            crate::fail!(
                "the kernel has too many segments to move into place ({})",
                moves.len()
            );
        }
        // SAFETY: the page was allocated from the firmware for this alone
        // (reserve), identity-mapped, below 4 GiB.
        let page = unsafe { core::slice::from_raw_parts_mut(self.base as *mut u8, 4096) };
        let t = Trampoline {
            gdt: bootpack_handoff::gdt(),
            code,
            entry,
            info,
            magic,
        };
        relocate::write_trampoline(
            &mut page[..block_len],
            self.base as u32,
            &t,
            moves.iter().copied(),
        );
        page[stub_at as usize..][..stub.len()].copy_from_slice(stub);
        // System V, not "C": on x86_64-unknown-uefi "C" is the Microsoft
        // ABI (arguments in RCX, RDX), and asm/leave.s takes RDI, RSI.
        let stub_fn: extern "sysv64" fn(u64, u64) -> ! =
            // SAFETY: the copy holds asm/leave.s's position-independent
            // stub, whose ABI is this signature; the page is executable
            // (loader code).
            unsafe { core::mem::transmute((self.base + stub_at) as usize) };
        stub_fn(self.base, self.base + 4096)
    }
}
