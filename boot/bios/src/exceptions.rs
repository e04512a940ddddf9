//! A long-mode IDT for CPU exceptions 0-31, so that a fault in stage 2 is
//! reported and halts instead of triple-faulting into a reboot. The stubs
//! are in asm/exceptions.s. Interrupts stay off in long mode, so no IRQ
//! ever arrives here; the BIOS thunk swaps in the real-mode IVT around each
//! INT and puts this IDT back afterwards.

use crate::fail::{self, Hex, Hex2, Str};
use crate::Global;
use x86_64::instructions::tables::lidt;
use x86_64::structures::DescriptorTablePointer;
use x86_64::VirtAddr;

const VECTORS: usize = 32;
/// The 64-bit code segment of asm/entry.s's GDT.
const CODE_SELECTOR: u64 = 0x08;
/// Present, DPL 0, 64-bit interrupt gate (IF cleared on entry).
const GATE: u64 = 0x8E;

extern "C" {
    /// Addresses of the 32 stubs, in asm/exceptions.s.
    static bootpack_exc_table: [u64; VECTORS];
}

/// Each gate is 16 bytes: two u64 halves.
static IDT: Global<[[u64; 2]; VECTORS]> = Global::new([[0; 2]; VECTORS]);

/// Builds the IDT and loads it.
pub fn init() {
    // SAFETY: the table is built before lidt points the CPU at it and is
    // never changed afterwards; it lives in the bss, which stays mapped and
    // untouched for as long as stage 2 runs. Single-threaded, so the &mut
    // is unique. bootpack_exc_table is immutable data from the assembly.
    unsafe {
        let idt = &mut *IDT.get();
        for (gate, &handler) in idt.iter_mut().zip(bootpack_exc_table.iter()) {
            gate[0] = (handler & 0xFFFF)
                | (CODE_SELECTOR << 16)
                | (GATE << 40)
                | ((handler >> 16) & 0xFFFF) << 48;
            gate[1] = handler >> 32;
        }
        lidt(&DescriptorTablePointer {
            limit: (VECTORS * 16 - 1) as u16,
            base: VirtAddr::new(IDT.get() as u64),
        });
    }
}

/// Called by the stubs; never returns.
#[no_mangle]
extern "C" fn bootpack_exception(vector: u64, error: u64, rip: u64) -> ! {
    let cr2 = x86_64::registers::control::Cr2::read_raw();
    fail::begin();
    fail::put(&[
        Str("CPU exception "),
        Hex2(vector as u8),
        Str(" (error code "),
        Hex(error),
        Str(", RIP "),
        Hex(rip),
        Str(", CR2 "),
        Hex(cr2),
        Str(") in stage 2: this is a bootpack bug, please report it"),
    ]);
    fail::end()
}
