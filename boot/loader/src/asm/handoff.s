# bootpack_enter_kernel(entry: u32, info: u32) -> ! (System V ABI, long
# mode): the Multiboot 1 handoff (spec section 3.2).
#
# Relies on: the GDT of entry.s (0x10 flat 4 GiB data, 0x18 flat 4 GiB
# 32-bit code) and this code being identity-mapped (it is below 1 MiB).
# A20 is on since stage2_entry and stays on.
#
# Leaves: 32-bit protected mode, paging off, EFER.LME and CR4.PAE off, CS a
# flat 32-bit code segment, DS/ES/FS/GS/SS flat data segments, interrupts
# off, EAX = 0x2BADB002, EBX = info; jumps to entry. The kernel must set
# up its own stack, GDT and IDT, as Multiboot says.

    .section .low.text, "awx"
    .code64
    .global bootpack_enter_kernel
bootpack_enter_kernel:
    cli
    # EDI = entry, ESI = info: neither is touched by rdmsr/wrmsr (which use
    # EAX, ECX and EDX), so they survive until the last instructions.
    pushq   $0x18
    pushq   $ek_compat32
    lretq

    .code32
ek_compat32:
    movw    $0x10, %ax
    movw    %ax, %ds
    movw    %ax, %es
    movw    %ax, %fs
    movw    %ax, %gs
    movw    %ax, %ss
    movl    %cr0, %eax
    andl    $0x7FFFFFFF, %eax       # PG off: long mode inactive
    movl    %eax, %cr0
    movl    $0xC0000080, %ecx       # EFER.LME off
    rdmsr
    andl    $0xFFFFFEFF, %eax
    wrmsr
    movl    %cr4, %eax
    andl    $0xFFFFFFDF, %eax       # PAE off: a clean legacy state
    movl    %eax, %cr4
    xorl    %eax, %eax
    movl    %eax, %cr3
    movl    %esi, %ebx              # Multiboot info
    movl    $0x2BADB002, %eax       # Multiboot bootloader magic
    jmp     *%edi
