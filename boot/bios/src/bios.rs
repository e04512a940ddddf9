//! Calling BIOS interrupts from long mode through the real-mode thunk
//! (asm/rmint.s).

use core::mem::offset_of;
use core::ptr;

/// The registers an INT gets and returns. The layout is shared with
/// asm/rmint.s (see the offsets checked below).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct Regs {
    pub eax: u32,
    pub ebx: u32,
    pub ecx: u32,
    pub edx: u32,
    pub esi: u32,
    pub edi: u32,
    pub ebp: u32,
    pub ds: u16,
    pub es: u16,
    pub eflags: u32,
}

const _: () = {
    assert!(offset_of!(Regs, eax) == 0);
    assert!(offset_of!(Regs, ebx) == 4);
    assert!(offset_of!(Regs, ecx) == 8);
    assert!(offset_of!(Regs, edx) == 12);
    assert!(offset_of!(Regs, esi) == 16);
    assert!(offset_of!(Regs, edi) == 20);
    assert!(offset_of!(Regs, ebp) == 24);
    assert!(offset_of!(Regs, ds) == 28);
    assert!(offset_of!(Regs, es) == 30);
    assert!(offset_of!(Regs, eflags) == 32);
    assert!(core::mem::size_of::<Regs>() == 36);
};

/// EFLAGS.CF: set by the BIOS on failure.
pub const CARRY: u32 = 1 << 0;
/// EFLAGS.IF: BIOS services run with interrupts enabled (disk and timer
/// code may wait for IRQs); bit 1 is reserved and always set.
pub const FLAGS_FOR_BIOS: u32 = (1 << 9) | (1 << 1);

impl Regs {
    /// Registers for a call, with EFLAGS as BIOS services expect it.
    pub fn new() -> Regs {
        Regs {
            eflags: FLAGS_FOR_BIOS,
            ..Regs::default()
        }
    }

    pub fn carry(&self) -> bool {
        self.eflags & CARRY != 0
    }

    /// AH, where most BIOS services put their status.
    pub fn ah(&self) -> u8 {
        (self.eax >> 8) as u8
    }
}

extern "C" {
    /// The thunk's register block, in asm/rmint.s (below 0x10000).
    static mut bootpack_rm_regs: Regs;
    /// Runs `int vector` in real mode with `bootpack_rm_regs`.
    fn bootpack_rm_int(vector: u8);
}

/// A real-mode segment:offset pair for a physical address below 1 MiB.
pub fn far(addr: u32) -> (u16, u16) {
    debug_assert!(addr < 0x10_0000);
    ((addr >> 4) as u16, (addr & 0xF) as u16)
}

/// Runs BIOS interrupt `vector` with `regs` and returns the registers the
/// BIOS left.
pub fn int(vector: u8, regs: &Regs) -> Regs {
    // SAFETY: stage 2 runs single-threaded with interrupts off, so nothing
    // else uses the register block; the thunk relies on the mode-switch set-up
    // described in asm/rmint.s, which stage2_entry established and nothing
    // changes afterwards. The BIOS may write to memory below 1 MiB that the
    // caller pointed it at (buffers are given as physical addresses, never
    // as Rust references), and the thunk is an opaque call, so no Rust
    // value is assumed unchanged across it.
    unsafe {
        ptr::write_volatile(&raw mut bootpack_rm_regs, *regs);
        bootpack_rm_int(vector);
        ptr::read_volatile(&raw const bootpack_rm_regs)
    }
}
