# Assembler macros shared by the stage 2 assembly files. Each global_asm!
# block is this file, then one .s file, then asm/purge.s, so every file
# sees the macros whichever codegen unit it lands in, and no macro is
# defined twice in one assembly module.

# Loads DS, ES, FS, GS and SS with one selector (or 0 in real mode).
# Clobbers AX. Works in 16-, 32- and 64-bit code.
.macro LOAD_DATA_SEGMENTS sel
    movw    $\sel, %ax
    movw    %ax, %ds
    movw    %ax, %es
    movw    %ax, %fs
    movw    %ax, %gs
    movw    %ax, %ss
.endm

# Leaves long mode from 32-bit compatibility mode: CR0.PG off (long mode
# becomes inactive), then EFER.LME off; the CPU is then in 32-bit
# protected mode with paging off. Relies on running identity-mapped code
# (the next fetch happens with paging off). Clobbers EAX, ECX, EDX.
.macro LEAVE_LONG_MODE
    movl    %cr0, %eax
    andl    $0x7FFFFFFF, %eax       # PG off: long mode inactive
    movl    %eax, %cr0
    movl    $0xC0000080, %ecx       # EFER.LME off
    rdmsr
    andl    $0xFFFFFEFF, %eax
    wrmsr
.endm
