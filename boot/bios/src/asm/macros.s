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

# Stage 1's time marks (feature `timestamps` only; nothing otherwise): the
# low 32 bits of the TSC into slot N of memplan::STAGE1_MARKS_ADDR, which
# stage 2 reports (src/ts.rs). 16-bit code with DS = 0; clobbers EAX and
# EDX. Six bytes each, which stage 1's spare bytes hold.
.macro S1_MARK slot
.if BOOTPACK_TS
    rdtsc
    movl    %eax, 0x600 + 4 * \slot
.endif
.endm
