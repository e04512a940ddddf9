//! A minimal IDT for the 32 CPU exceptions.
//!
//! Without one, any fault would triple-fault and reset the machine: QEMU
//! would reboot into the boot loader again (a loop, unless -no-reboot) and
//! the tests would see only a timeout. With it, a fault prints one
//! "BPTK fault ..." line and leaves with a distinct exit status.

use core::arch::global_asm;
use core::ptr::addr_of;
use x86_64::structures::DescriptorTablePointer;
use x86_64::VirtAddr;

/// Size of each entry stub below (they are padded to this alignment).
const STUB_SIZE: u64 = 16;

/// 32 interrupt gates of 16 bytes, filled in by `install`.
#[repr(C, align(16))]
struct Idt([u64; 64]);

static mut IDT: Idt = Idt([0; 64]);

// Entry stubs, one per vector, 16 bytes apart. The CPU pushes an error code
// for vectors 8, 10-14, 17, 21, 29 and 30 only; the other stubs push a 0 so
// that the common code sees the same frame: vector, error code, RIP, CS,
// RFLAGS, RSP, SS. Relies on: 64-bit mode, the GDT from boot.rs, and a
// usable stack (a fault from a stack overflow is not caught).
global_asm!(
    r#"
    .section .text.bptk_fault, "ax", @progbits
    .code64
    .balign 16
    .global bptk_fault_stubs
bptk_fault_stubs:
    .irp vec, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31
    .balign 16
    .ifc \vec,8
    .else
    .ifc \vec,10
    .else
    .ifc \vec,11
    .else
    .ifc \vec,12
    .else
    .ifc \vec,13
    .else
    .ifc \vec,14
    .else
    .ifc \vec,17
    .else
    .ifc \vec,21
    .else
    .ifc \vec,29
    .else
    .ifc \vec,30
    .else
    pushq $0
    .endif
    .endif
    .endif
    .endif
    .endif
    .endif
    .endif
    .endif
    .endif
    .endif
    pushq $\vec
    jmp bptk_fault_common
    .endr

bptk_fault_common:
    movq (%rsp), %rdi                   /* vector */
    movq 8(%rsp), %rsi                  /* error code */
    movq 16(%rsp), %rdx                 /* RIP */
    movq %cr2, %rcx                     /* fault address for #PF */
    andq $-16, %rsp                     /* SysV call alignment */
    call {handler}
1:  cli
    hlt
    jmp 1b
    "#,
    handler = sym fault_handler,
    options(att_syntax)
);

extern "C" {
    static bptk_fault_stubs: u8;
}

/// Fills the IDT with interrupt gates to the stubs and loads it.
pub fn install() {
    // Only the address of the stub block is taken (addr_of! of an extern
    // static needs no unsafe).
    let stubs = addr_of!(bptk_fault_stubs) as u64;
    // SAFETY: runs once, before anything could use the IDT (interrupts are
    // off and no fault has happened yet), so no reference to IDT exists;
    // the raw pointer is only used for in-bounds writes.
    let idt = unsafe { &mut *core::ptr::addr_of_mut!(IDT) };
    for vector in 0..32 {
        let target = stubs + STUB_SIZE * vector as u64;
        // 64-bit interrupt gate: offset 15:0, selector 0x08 (boot.rs's
        // 64-bit code segment), IST 0, type 0xE, present, DPL 0, offset
        // 31:16, offset 63:32.
        idt.0[2 * vector] =
            (target & 0xffff) | 0x08 << 16 | 0x8e00 << 32 | ((target >> 16) & 0xffff) << 48;
        idt.0[2 * vector + 1] = target >> 32;
    }
    let pointer = DescriptorTablePointer {
        limit: (core::mem::size_of::<Idt>() - 1) as u16,
        base: VirtAddr::new(idt.0.as_ptr() as u64),
    };
    // SAFETY: the IDT is a static (lives for ever) whose 32 gates all point
    // at the stubs above, which are valid 64-bit handlers for CS 0x08.
    unsafe { x86_64::instructions::tables::lidt(&pointer) };
}

/// Called by the stubs with interrupts off. Reports and leaves; never
/// returns to the faulting code.
extern "C" fn fault_handler(vector: u64, error: u64, rip: u64, cr2: u64) -> ! {
    let mut out = crate::serial::Com1::init();
    let _ = core::fmt::Write::write_fmt(
        &mut out,
        format_args!(
            "BPTK fault vector={vector} error=0x{error:x} rip=0x{rip:016x} cr2=0x{cr2:016x}\r\n"
        ),
    );
    crate::exit(crate::EXIT_FAULT)
}
