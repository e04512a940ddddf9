# bootpack_enter_kernel(entry: u32, info: u32, magic: u32, trampoline: u32)
# -> ! (System V ABI, long mode): the Multiboot handoff (Multiboot 1 spec
# section 3.2, Multiboot 2 spec section 3.3; the machine state is the same
# for both).
#
# Relies on: entry.s's GDT being loaded (0x18 flat 32-bit code, 0x10 flat
# data), this code and the stack being identity-mapped (below 1 MiB), and
# coming from long mode, so EFER exists. A20 is on since stage2_entry and
# stays on. With `trampoline` != 0 it relies on the block there having been
# written as bootpack_proto::relocate::write_trampoline describes.
#
# Leaves the state kernels in the wild were written against (QEMU -kernel's,
# which is also the layout of most kernels' own GDTs: null, code, data), so
# a kernel that loads its own GDT and never reloads CS keeps working:
# 32-bit protected mode, paging off; CS = 0x08 and DS = ES = FS = GS = SS =
# 0x10, flat 4 GiB segments of this file's GDT; EFLAGS = 0x2 (interrupts
# off, and nothing a BIOS left: NT, AC, IOPL, DF); CR0 with PE and ET and
# whatever else the BIOS set except PG, CD and NW (one BIOS hands over with
# caching disabled); CR4 = 0; EFER = 0; EAX = magic (0x2BADB002 or
# 0x36D76289), EBX = info; jumps to entry. Without a trampoline it jumps
# straight there; with one it jumps to the trampoline's copy of
# bootpack_trampoline, which moves the staged segments into place first.
# The kernel must set up its own stack, GDT and IDT, as Multiboot says.

    .section .low.text, "awx"
    .code64
    .global bootpack_enter_kernel
bootpack_enter_kernel:
    cli
    # EDI = entry, ESI = info, EDX = magic, ECX = trampoline. rdmsr/wrmsr
    # clobber EAX, ECX and EDX, so the magic moves to EBP and the
    # trampoline to EBX; EDI, ESI, EBP and EBX survive until the last
    # instructions.
    movl    %edx, %ebp
    movl    %ecx, %ebx
    pushq   $0x18
    pushq   $ek_compat32
    lretq

    .code32
ek_compat32:
    LOAD_DATA_SEGMENTS 0x10
    LEAVE_LONG_MODE
    # Paging is off: from here on linear = physical. Our own GDT, so the
    # selectors are the ones kernels expect whatever entry.s's GDT is.
    lgdtl   bootpack_handoff_gdt_ptr
    ljmpl   $0x08, $ek_flat32
ek_flat32:
    LOAD_DATA_SEGMENTS 0x10
    xorl    %eax, %eax
    movl    %eax, %cr4              # PAE and everything else off
    movl    %eax, %cr3
    movl    $0xC0000080, %ecx       # EFER = 0 (LME is off already; NXE,
    xorl    %edx, %edx              # SCE and the rest too)
    wrmsr
    movl    %cr0, %eax
    andl    $0x9FFFFFFF, %eax       # CD and NW off: caching on (PG is off)
    movl    %eax, %cr0
    # EFLAGS = 0x2. The test decides the branch before popfl; nothing
    # after popfl changes a flag (mov and jmp do not).
    testl   %ebx, %ebx
    jnz     ek_trampoline
    pushl   $2
    popfl
    movl    %esi, %ebx              # Multiboot information
    movl    %ebp, %eax              # Multiboot bootloader magic
    jmp     *%edi
ek_trampoline:
    pushl   $2
    popfl
    leal    64(%ebx), %eax          # relocate::TRAMPOLINE_CODE: lea sets no flag
    jmp     *%eax

# The handoff GDT: null, 0x08 flat 4 GiB 32-bit code, 0x10 flat 4 GiB data
# (what QEMU's -kernel gives and most kernels' own GDTs look like). Any
# loader may use it; the trampoline block carries a copy.
    .section .low.data, "aw"
    .balign 16
    .global bootpack_handoff_gdt
bootpack_handoff_gdt:
    .quad 0                         # 0x00 null
    .quad 0x00CF9A000000FFFF        # 0x08 flat 4 GiB 32-bit code
    .quad 0x00CF92000000FFFF        # 0x10 flat 4 GiB data
bootpack_handoff_gdt_end:
    .balign 8
bootpack_handoff_gdt_ptr:
    .word bootpack_handoff_gdt_end - bootpack_handoff_gdt - 1
    .long bootpack_handoff_gdt

# The trampoline: the last step for a kernel with segments over stage 2's
# own memory. Stage 2 copies the bytes from bootpack_trampoline to
# bootpack_trampoline_end to TRAMPOLINE_CODE (64) in a block that no kernel
# segment, module, staged byte or the information occupies, fills the
# block's header (bootpack_proto::relocate: GDT copy at 0, its pointer at
# 24, entry 32, info 36, magic 40, move count 44, move table address 48;
# each move 16 bytes: destination, source, bytes to copy, bytes to zero
# after them) and hands over to it.
#
# Position-independent (only EBX-relative data and relative jumps), no
# stack. Relies on: EBX = the block; the state above (32-bit protected
# mode, flat CS 0x08 and data 0x10, paging off, EFLAGS = 0x2); no move's
# source overlapping another move's destination (the plan keeps the staging
# area clear of every segment; a move's own source and destination may
# overlap: memmove). Leaves: the segments in place, the deferred bss zeroed,
# the handoff state with EFLAGS = 0x2 again, EAX = magic, EBX = info, and
# jumps to entry.
    .section .low.text, "awx"
    .code32
    .global bootpack_trampoline
bootpack_trampoline:
    lgdtl   24(%ebx)                # the block's GDT copy: stage 2's goes
    movl    48(%ebx), %ebp          # move table
    movl    44(%ebx), %edx          # move count
tr_next:
    testl   %edx, %edx
    jz      tr_done
    movl    (%ebp), %edi            # destination
    movl    4(%ebp), %esi           # source
    movl    8(%ebp), %ecx           # bytes
    cmpl    %esi, %edi
    jbe     tr_forward
    # Destination above the source: copy from the end down (memmove).
    leal    -1(%esi,%ecx), %esi
    leal    -1(%edi,%ecx), %edi
    std
    rep movsb
    cld
    jmp     tr_zero
tr_forward:
    movl    %ecx, %eax
    shrl    $2, %ecx
    rep movsl
    movl    %eax, %ecx
    andl    $3, %ecx
    rep movsb
tr_zero:
    movl    (%ebp), %edi
    addl    8(%ebp), %edi           # the deferred bss follows the bytes
    movl    12(%ebp), %ecx
    xorl    %eax, %eax
    rep stosb
    addl    $16, %ebp
    decl    %edx
    jmp     tr_next
tr_done:
    # EFLAGS back to 0x2 without a stack: xor clears OF and CF, sahf loads
    # SF, ZF, AF, PF and CF from AH (0x02: all clear, bit 1 reserved); DF
    # is clear (cld), IF, NT, AC and IOPL were cleared by the handoff.
    xorl    %eax, %eax
    movb    $2, %ah
    sahf
    movl    32(%ebx), %ecx          # entry
    movl    40(%ebx), %eax          # magic
    movl    36(%ebx), %ebx          # info
    jmp     *%ecx
    .global bootpack_trampoline_end
bootpack_trampoline_end:
