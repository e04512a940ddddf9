# Real-mode call thunk: bootpack_rm_int(vector: u8) (System V ABI, long
# mode) runs `int vector` in real mode with the registers in
# bootpack_rm_regs and stores the registers the BIOS returned there.
#
# Relies on: being called from long mode with the GDT of entry.s loaded
# (0x08 64-bit code, 0x10 flat data, 0x18 32-bit code, 0x20/0x28 16-bit
# code/data), the identity page tables at bootpack_pml4, this code and all
# data it touches below 0x10000 (linker script), the real-mode stack below
# 0x7C00 being free (layout.rs), and the BIOS's IVT and PIC set-up being
# intact (stage 2 never touches them).
#
# Down: compatibility mode, paging off, EFER.LME off, 16-bit protected
# mode, real mode, IVT loaded with lidt. Up: lgdt, PE, 32-bit, PAE/CR3/LME/
# PG, 64-bit, long-mode IDTR restored. EFLAGS (IF included) comes from the
# register block for the INT itself; the caller's RFLAGS is restored after.
#
# Register block layout (must match bios::Regs): eax 0, ebx 4, ecx 8,
# edx 12, esi 16, edi 20, ebp 24, ds 28, es 30, eflags 32.

    .section .low.text, "awx"
    .code64
    .global bootpack_rm_int
bootpack_rm_int:
    pushq   %rbx
    pushq   %rbp
    pushq   %r12
    pushq   %r13
    pushq   %r14
    pushq   %r15
    pushfq
    cli
    movb    %dil, rm_int_vector     # patch the INT below (serialised by
                                    # the mode switches before it runs)
    movq    %rsp, rm_saved_rsp
    sidtq   rm_saved_idtr
    pushq   $0x18
    pushq   $rm_compat32
    lretq

    .code32
rm_compat32:
    LEAVE_LONG_MODE
    ljmpl   $0x20, $rm_pm16

    .code16
rm_pm16:
    LOAD_DATA_SEGMENTS 0x28         # 16-bit data segments, SS included
    movl    %cr0, %eax
    andl    $0xFFFFFFFE, %eax       # PE off
    movl    %eax, %cr0
    ljmp    $0, $rm_real

rm_real:
    LOAD_DATA_SEGMENTS 0
    movl    $0x7C00, %esp           # full ESP: RSP's upper bits must not leak
    lidt    rm_ivt_idtr
    pushl   bootpack_rm_regs + 32   # eflags (normally IF set for the BIOS)
    popfl
    movw    bootpack_rm_regs + 30, %ax
    movw    %ax, %es
    movl    bootpack_rm_regs + 4, %ebx
    movl    bootpack_rm_regs + 8, %ecx
    movl    bootpack_rm_regs + 12, %edx
    movl    bootpack_rm_regs + 16, %esi
    movl    bootpack_rm_regs + 20, %edi
    movl    bootpack_rm_regs + 24, %ebp
    movl    bootpack_rm_regs + 0, %eax
    movw    bootpack_rm_regs + 28, %ds  # last: DS may no longer be 0 now
    # `int $n` with a patched vector, as raw bytes: `int $3` would assemble
    # to the one-byte int3.
    .byte   0xCD
rm_int_vector:
    .byte   0x00
    # Flags first, then everything through CS (= 0): the BIOS may have
    # changed DS.
    pushfl
    movl    %eax, %cs:bootpack_rm_regs + 0
    movl    %ebx, %cs:bootpack_rm_regs + 4
    movl    %ecx, %cs:bootpack_rm_regs + 8
    movl    %edx, %cs:bootpack_rm_regs + 12
    movl    %esi, %cs:bootpack_rm_regs + 16
    movl    %edi, %cs:bootpack_rm_regs + 20
    movl    %ebp, %cs:bootpack_rm_regs + 24
    movw    %ds, %cs:bootpack_rm_regs + 28
    movw    %es, %cs:bootpack_rm_regs + 30
    popl    %cs:bootpack_rm_regs + 32
    cli

    lgdtl   %cs:bootpack_gdt_ptr
    movl    %cr0, %eax
    orl     $1, %eax                # PE
    movl    %eax, %cr0
    ljmpl   $0x18, $rm_up32

    .code32
rm_up32:
    LOAD_DATA_SEGMENTS 0x10
    movl    $0x7C00, %esp           # a stack for the call below
    call    bootpack_long_mode_on
    ljmpl   $0x08, $rm_up64

    .code64
rm_up64:
    LOAD_DATA_SEGMENTS 0x10
    movq    rm_saved_rsp, %rsp
    lidtq   rm_saved_idtr
    popfq
    popq    %r15
    popq    %r14
    popq    %r13
    popq    %r12
    popq    %rbp
    popq    %rbx
    retq

    .section .low.data, "aw"
    .balign 8
rm_saved_rsp:
    .quad 0
rm_saved_idtr:                      # 10 bytes: limit, 64-bit base
    .word 0
    .quad 0
    .balign 8
rm_ivt_idtr:                        # the real-mode IVT: 256 * 4 bytes at 0
    .word 0x3FF
    .long 0
    .balign 8
    .global bootpack_rm_regs
bootpack_rm_regs:
    .skip 36
