# bootpack_uefi_leave(block: u64 in RDI, stack_top: u64 in RSI) -> ! (the
# System V ABI: the caller declares it extern "sysv64"
# and the UEFI target's "C" is Microsoft's; long mode, after ExitBootServices):
# from the firmware's
# long mode to the Multiboot handoff state, then into the trampoline block
# (bootpack_proto::relocate), whose code is asm/handoff.s's
# bootpack_trampoline: it loads the block's copy of the handoff GDT, sets
# EAX = magic, EBX = info and jumps to the kernel's entry.
#
# The UEFI loader copies the bytes from bootpack_uefi_leave to
# bootpack_uefi_leave_end into a page below 4 GiB and calls that copy, so
# the code is position-independent (RIP-relative only) and keeps running
# at the same address once paging is off.
#
# Relies on: the firmware's identity mapping (UEFI 2.10 §2.3.4) covering
# this copy and the block; `block` and `stack_top` below 4 GiB; the block
# written by relocate::write_trampoline (the handoff GDT at 0: null, 0x08
# flat 32-bit code, 0x10 flat data; the code at 64); the firmware's stack
# still usable for 16 bytes.
#
# Leaves the state asm/handoff.s leaves on BIOS: 32-bit protected mode,
# paging off, CS = 0x08, DS = ES = FS = GS = SS = 0x10, EFLAGS = 0x2, CR4 =
# 0, CR3 = 0, EFER = 0, CR0 with PE and whatever the firmware set except
# PG, CD and NW; then the trampoline sets EAX and EBX and jumps to entry.

    .text
    .code64
    .global bootpack_uefi_leave
bootpack_uefi_leave:
    cli
    cld
    movq    %rdi, %rbx              # the block: EBX for the trampoline
    subq    $16, %rsp               # a 64-bit GDTR for the block's GDT
    movw    $23, (%rsp)
    movq    %rbx, 2(%rsp)
    lgdtq   (%rsp)
    leaq    bul_compat32(%rip), %rax
    pushq   $0x08                   # the block GDT's 32-bit code segment
    pushq   %rax
    lretq

    .code32
bul_compat32:
    LOAD_DATA_SEGMENTS 0x10
    movl    %esi, %esp              # a stack below 4 GiB for popfl
    LEAVE_LONG_MODE
    xorl    %eax, %eax
    movl    %eax, %cr4              # PAE and everything else off
    movl    %eax, %cr3
    movl    $0xC0000080, %ecx       # EFER = 0 (LME is off already)
    xorl    %edx, %edx
    wrmsr
    movl    %cr0, %eax
    andl    $0x9FFFFFFF, %eax       # CD and NW off: caching on
    movl    %eax, %cr0
    pushl   $2                      # EFLAGS = 0x2
    popfl
    leal    64(%ebx), %eax          # relocate::TRAMPOLINE_CODE
    jmp     *%eax
    .global bootpack_uefi_leave_end
bootpack_uefi_leave_end:
    .code64
