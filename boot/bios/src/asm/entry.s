# Stage 2 entry: real mode -> long mode -> Rust.
#
# Relies on: stage 1 jumping here (0000:7E00) with DL = BIOS boot drive and
# stage 2's whole file image loaded; a 386 or later (32-bit registers); the
# linker script placing this first in stage 2 and all 16-bit code and data
# below 0x10000.
#
# It saves DL, enables A20 (checking first, then INT 15h AX=2401h, then the
# fast A20 port 0x92; verified after each), checks for CPUID and long mode,
# enters 32-bit protected mode, zeroes the bss (nothing in the bss is used
# before that), builds identity page tables for the low 4 GiB with 2 MiB
# pages, enters long mode and calls stage2_main(drive) on a 16 KiB stack in
# the bss. Failures here print one line (INT 10h and COM1) and halt.

    .section .stage2.entry, "awx"
    .code16
    .global stage2_entry
stage2_entry:
    cli
    LOAD_DATA_SEGMENTS 0
    movl    $0x7C00, %esp           # memplan::REAL_STACK_TOP, full ESP
    ljmp    $0, $s2_cs_normalised
s2_cs_normalised:
    sti
    cld
    movb    %dl, bootpack_boot_drive

    # A20: already on? Then INT 15h AX=2401h, then fast A20 (port 0x92).
    call    s2_a20_is_on
    jz      s2_a20_done
    movw    $0x2401, %ax
    int     $0x15
    call    s2_a20_is_on
    jz      s2_a20_done
    inb     $0x92, %al
    orb     $2, %al                 # A20 gate
    andb    $0xFE, %al              # never the fast reset bit
    outb    %al, $0x92
    call    s2_a20_is_on
    jz      s2_a20_done
    movw    $s2_msg_a20, %si
    jmp     s2_fail16
s2_a20_done:

    # CPUID exists only where EFLAGS.ID (bit 21) can be changed: on a 386
    # (and early 486s) it cannot, and CPUID is an invalid opcode there,
    # which in real mode hangs silently. Such a CPU has no long mode.
    pushfl
    popl    %eax
    movl    %eax, %ecx
    xorl    $0x200000, %eax         # flip ID
    pushl   %eax
    popfl
    pushfl
    popl    %eax
    pushl   %ecx                    # the flags as they were
    popfl
    xorl    %ecx, %eax
    testl   $0x200000, %eax
    jz      s2_no_lm                # ID did not change: no CPUID

    # Long mode: CPUID 0x80000001 EDX bit 29 (after checking that leaf
    # exists).
    movl    $0x80000000, %eax
    cpuid
    cmpl    $0x80000001, %eax
    jb      s2_no_lm
    movl    $0x80000001, %eax
    cpuid
    btl     $29, %edx
    jnc     s2_no_lm

    # Down to business: 32-bit protected mode.
    cli
    lgdtl   bootpack_gdt_ptr
    movl    %cr0, %eax
    orl     $1, %eax                # PE
    movl    %eax, %cr0
    ljmpl   $0x18, $s2_pm32

s2_no_lm:
    movw    $s2_msg_no_lm, %si
    # fall through

# Prints "bootpack: error: " + the string at DS:SI + "bootpack: halted"
# on the screen (INT 10h) and COM1 (115200 8N1), then halts forever.
s2_fail16:
    pushw   %si
    movw    $0x3F9, %dx             # COM1 set-up, as stage 1 does
    xorb    %al, %al
    outb    %al, %dx
    addb    $2, %dl
    movb    $0x80, %al
    outb    %al, %dx
    movb    $0xF8, %dl
    movb    $1, %al
    outb    %al, %dx
    incw    %dx
    decb    %al
    outb    %al, %dx
    addb    $2, %dl
    movb    $3, %al
    outb    %al, %dx
    decw    %dx
    movb    $0xC7, %al
    outb    %al, %dx
    movw    $s2_msg_error, %si
    call    s2_puts16
    popw    %si
    call    s2_puts16
    movw    $s2_msg_halted, %si
    call    s2_puts16
s2_halt16:
    cli
    hlt
    jmp     s2_halt16

s2_puts16:
    lodsb
    testb   %al, %al
    jz      s2_puts16_done
    pushw   %ax
    movb    $0x0E, %ah
    movw    $0x0007, %bx
    int     $0x10
    movw    $0x3FD, %dx
s2_wait_thr16:
    inb     %dx, %al                # a missing UART reads 0xFF: no hang
    testb   $0x20, %al
    jz      s2_wait_thr16
    popw    %ax
    movb    $0xF8, %dl
    outb    %al, %dx
    jmp     s2_puts16
s2_puts16_done:
    ret

# ZF=1 if A20 is on: writes different words to 0000:0500 and FFFF:0510
# (linear 0x100500) and sees whether the first one survives. Both places
# are restored; 0x500 is free memory (layout.rs), 0x100500 is above the
# BIOS and not yet used by anyone.
s2_a20_is_on:
    pushw   %ds
    pushw   %es
    xorw    %ax, %ax
    movw    %ax, %ds
    notw    %ax
    movw    %ax, %es
    movw    $0x0500, %si
    movw    $0x0510, %di
    movw    (%si), %cx
    movw    %es:(%di), %bx
    movw    $0x1234, (%si)
    movw    $0x4321, %es:(%di)
    cmpw    $0x1234, (%si)          # still there: no wrap-around, A20 on
    movw    %bx, %es:(%di)
    movw    %cx, (%si)
    popw    %es
    popw    %ds
    ret

s2_msg_error:   .asciz "bootpack: error: "
s2_msg_a20:     .asciz "cannot enable the A20 line\r\n"
s2_msg_no_lm:   .asciz "this CPU has no 64-bit long mode\r\n"
s2_msg_halted:  .asciz "bootpack: halted\r\n"

    .code32
s2_pm32:
    LOAD_DATA_SEGMENTS 0x10
    movl    $0x7C00, %esp

    # Zero the bss (page tables, stack, Rust's zero-initialised statics).
    movl    $__bss_start, %edi
    movl    $__bss_end, %ecx
    subl    %edi, %ecx
    shrl    $2, %ecx
    xorl    %eax, %eax
    rep stosl

    # PML4[0] -> PDPT; PDPT[0..4] -> the four page directories; each PD
    # entry maps 2 MiB (present, writable, PS): 2048 entries = 4 GiB.
    movl    $bootpack_pdpt + 3, bootpack_pml4
    movl    $bootpack_pdpt, %edi
    movl    $bootpack_pd + 3, %eax
    movl    $4, %ecx
s2_fill_pdpt:
    movl    %eax, (%edi)
    addl    $8, %edi
    addl    $0x1000, %eax
    loop    s2_fill_pdpt
    movl    $bootpack_pd, %edi
    movl    $0x83, %eax
    movl    $2048, %ecx
s2_fill_pd:
    movl    %eax, (%edi)
    addl    $8, %edi
    addl    $0x200000, %eax
    loop    s2_fill_pd

    call    bootpack_long_mode_on
    ljmpl   $0x08, $s2_lm64

    .code64
s2_lm64:
    LOAD_DATA_SEGMENTS 0x10
    movq    $bootpack_stack_top, %rsp
    xorl    %ebp, %ebp
    movzbl  bootpack_boot_drive, %edi
    call    stage2_main
s2_halt64:
    cli
    hlt
    jmp     s2_halt64

    .section .low.text, "awx"
    .code32
# Enables PAE, loads CR3 with the identity tables, sets EFER.LME and turns
# paging on: afterwards the CPU is in compatibility mode and the caller
# far-jumps to the 64-bit code segment. Relies on protected mode with flat
# segments and the page tables built (by stage2_entry). Clobbers EAX, ECX,
# EDX.
    .global bootpack_long_mode_on
bootpack_long_mode_on:
    movl    %cr4, %eax
    orl     $0x20, %eax             # PAE
    movl    %eax, %cr4
    movl    $bootpack_pml4, %eax
    movl    %eax, %cr3
    movl    $0xC0000080, %ecx       # EFER
    rdmsr
    orl     $0x100, %eax            # LME
    wrmsr
    movl    %cr0, %eax
    orl     $0x80000000, %eax       # PG: long mode becomes active
    movl    %eax, %cr0
    ret

    .section .low.data, "aw"
    .global bootpack_boot_drive
bootpack_boot_drive:
    .byte 0

# GDT shared by every mode stage 2 runs in, and handed to the kernel (which
# must load its own: Multiboot leaves the GDTR undefined).
    .balign 16
    .global bootpack_gdt
bootpack_gdt:
    .quad 0                         # 0x00 null
    .quad 0x00209A0000000000        # 0x08 64-bit code
    .quad 0x00CF92000000FFFF        # 0x10 flat 4 GiB data
    .quad 0x00CF9A000000FFFF        # 0x18 flat 4 GiB 32-bit code
    .quad 0x00009A000000FFFF        # 0x20 16-bit code, base 0, 64 KiB
    .quad 0x000092000000FFFF        # 0x28 16-bit data, base 0, 64 KiB
bootpack_gdt_end:
    .balign 8
# Pointer for lgdt: the 6-byte form (16/32-bit) reads limit and the low 4
# bytes of the base; the 10-byte form (64-bit) the whole quad.
    .global bootpack_gdt_ptr
bootpack_gdt_ptr:
    .word bootpack_gdt_end - bootpack_gdt - 1
    .quad bootpack_gdt

    .section .bss.bootpack_tables, "aw", @nobits
    .balign 4096
    .global bootpack_pml4
bootpack_pml4:  .skip 4096
bootpack_pdpt:  .skip 4096
bootpack_pd:    .skip 4 * 4096

    .section .bss.bootpack_stack, "aw", @nobits
    .balign 16
bootpack_stack_bottom:
    .skip 16384
    .global bootpack_stack_top
bootpack_stack_top:
