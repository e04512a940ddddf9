# bootpack_enter_kernel(entry: u32, info: u32, magic: u32) -> ! (System V
# ABI, long mode): the Multiboot handoff (Multiboot 1 spec section 3.2,
# Multiboot 2 spec section 3.3; the machine state is the same for both).
#
# Relies on: the GDT of entry.s (0x10 flat 4 GiB data, 0x18 flat 4 GiB
# 32-bit code) and this code being identity-mapped (it is below 1 MiB).
# A20 is on since stage2_entry and stays on.
#
# Leaves: 32-bit protected mode, paging off, EFER.LME and CR4.PAE off, CS a
# flat 32-bit code segment, DS/ES/FS/GS/SS flat data segments, interrupts
# off, EAX = magic (0x2BADB002 or 0x36D76289), EBX = info; jumps to entry.
# The kernel must set up its own stack, GDT and IDT, as Multiboot says.

    .section .low.text, "awx"
    .code64
    .global bootpack_enter_kernel
bootpack_enter_kernel:
    cli
    # EDI = entry, ESI = info, EDX = magic. rdmsr/wrmsr clobber EAX, ECX
    # and EDX, so the magic moves to EBP; EDI, ESI and EBP survive until
    # the last instructions.
    movl    %edx, %ebp
    pushq   $0x18
    pushq   $ek_compat32
    lretq

    .code32
ek_compat32:
    LOAD_DATA_SEGMENTS 0x10
    LEAVE_LONG_MODE
    movl    %cr4, %eax
    andl    $0xFFFFFFDF, %eax       # PAE off: a clean legacy state
    movl    %eax, %cr4
    xorl    %eax, %eax
    movl    %eax, %cr3
    movl    %esi, %ebx              # Multiboot information
    movl    %ebp, %eax              # Multiboot bootloader magic
    jmp     *%edi
