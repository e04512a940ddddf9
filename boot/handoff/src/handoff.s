# bootpack's Multiboot handoff, for any loader (BIOS stage 2, UEFI): leave
# long mode with this file's own GDT and enter the kernel, directly or
# through the relocation trampoline.
#
# Everything from bootpack_handoff_start to bootpack_handoff_end is
# position-independent (RIP-relative in 64-bit code, EBX-relative or
# register jumps in 32-bit code), references nothing outside itself and
# is never written, so a loader may run it where it was linked or copy the
# whole block anywhere below 4 GiB and call it at the same offset. It is
# in plain .text (read-only and executable under UEFI's image protection):
# the descriptors have their accessed bits preset, so loading them never
# writes the GDT.

    .pushsection .text, "ax"
    .global bootpack_handoff_start
bootpack_handoff_start:

# bootpack_enter_kernel(entry: u32, info: u32, magic: u32, trampoline: u32)
# -> ! (System V ABI, long mode): the Multiboot handoff (Multiboot 1 spec
# section 3.2, Multiboot 2 spec section 3.3; the machine state is the same
# for both).
#
# Relies on: 64-bit long mode at CPL 0 without CET shadow stacks (the far
# return would need one; no bootpack loader turns them on); this code and the stack lying below
# 4 GiB in identity-mapped memory (the 32-bit part runs at the same
# addresses with paging off: a BIOS loader's image is below 1 MiB, a UEFI
# loader runs under the firmware's identity map and copies this block
# below 4 GiB if its image is not); A20 on (a BIOS loader turns it on, UEFI
# firmware leaves it on). With `trampoline` != 0 it relies on the block
# there having been written as bootpack_proto::relocate::write_trampoline
# describes (with bootpack_trampoline's code and bootpack_handoff_gdt).
# Nothing of the caller's GDT, IDT or page tables is needed after the first
# instructions: it loads its own GDT before leaving 64-bit mode.
#
# Leaves the state kernels in the wild were written against (QEMU -kernel's,
# which is also the layout of most kernels' own GDTs: null, code, data), so
# a kernel that loads its own GDT and never reloads CS keeps working:
# 32-bit protected mode, paging off; CS = 0x08 and DS = ES = FS = GS = SS =
# 0x10, flat 4 GiB segments of this file's GDT; EFLAGS = 0x2 (interrupts
# off, and nothing a BIOS left: NT, AC, IOPL, DF); CR0 with PE and ET and
# whatever else the firmware set except PG, CD and NW (one BIOS hands over
# with caching disabled); CR4 = 0; EFER = 0; EAX = magic (0x2BADB002 or
# 0x36D76289), EBX = info; jumps to entry. Without a trampoline it jumps
# straight there; with one it jumps to the trampoline's copy of
# bootpack_trampoline, which moves the staged segments into place first.
# The kernel must set up its own stack, GDT and IDT, as Multiboot says.
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
    # Our own GDT, at its run-time address: the 10-byte lgdt operand
    # (limit, 64-bit base) built on the stack.
    leaq    bootpack_handoff_gdt(%rip), %rax
    pushq   %rax
    pushw   $(bootpack_handoff_gdt_end - bootpack_handoff_gdt - 1)
    lgdtq   (%rsp)
    addq    $10, %rsp
    # To 32-bit compatibility mode: far return to its 0x08 code segment.
    leaq    ek_compat32(%rip), %rax
    pushq   $0x08
    pushq   %rax
    lretq

    .code32
ek_compat32:
    movw    $0x10, %ax
    movw    %ax, %ds
    movw    %ax, %es
    movw    %ax, %fs
    movw    %ax, %gs
    movw    %ax, %ss
    # Leave long mode: CR0.PG off (long mode becomes inactive; the next
    # fetch is identity-mapped, see above), then EFER.LME off. CS is
    # already this GDT's flat 32-bit code, so no far jump is needed: from
    # here on linear = physical.
    # CR4.PCIDE first: clearing PG with it set is a #GP. Neither a BIOS
    # loader nor edk2 sets it, but a firmware may.
    movl    %cr4, %eax
    andl    $0xFFFDFFFF, %eax       # PCIDE (bit 17) off
    movl    %eax, %cr4
    movl    %cr0, %eax
    andl    $0x7FFFFFFF, %eax       # PG off
    movl    %eax, %cr0
    xorl    %eax, %eax
    movl    %eax, %cr4              # PAE and everything else off
    movl    %eax, %cr3
    movl    $0xC0000080, %ecx       # EFER = 0: LME off, and NXE, SCE and
    xorl    %edx, %edx              # the rest too
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
# (what QEMU's -kernel gives and most kernels' own GDTs look like), with
# the accessed bits set (see the top). The trampoline block carries a copy
# (bootpack_proto::relocate::TRAMPOLINE_GDT_LEN bytes).
    .balign 16
    .global bootpack_handoff_gdt
bootpack_handoff_gdt:
    .quad 0                         # 0x00 null
    .quad 0x00CF9B000000FFFF        # 0x08 flat 4 GiB 32-bit code
    .quad 0x00CF93000000FFFF        # 0x10 flat 4 GiB data
bootpack_handoff_gdt_end:

# The trampoline: the last step for a kernel with segments over the
# loader's own memory. The loader copies the bytes from bootpack_trampoline
# to bootpack_trampoline_end to TRAMPOLINE_CODE (64) in a block that no
# kernel segment, module, staged byte or the information occupies, fills
# the block's header (bootpack_proto::relocate: GDT copy at 0, its pointer
# at 24, entry 32, info 36, magic 40, move count 44, move table address
# 48; each move 16 bytes: destination, source, bytes to copy, bytes to
# zero after them) and hands over to it.
#
# Position-independent (only EBX-relative data and relative jumps), no
# stack. Relies on: EBX = the block; the state above (32-bit protected
# mode, flat CS 0x08 and data 0x10, paging off, EFLAGS = 0x2); no move's
# source overlapping another move's destination (the plan keeps the staging
# area clear of every segment; a move's own source and destination may
# overlap: memmove). Leaves: the segments in place, the deferred bss zeroed,
# the handoff state with EFLAGS = 0x2 again, EAX = magic, EBX = info, and
# jumps to entry.
    .global bootpack_trampoline
bootpack_trampoline:
    lgdtl   24(%ebx)                # the block's GDT copy: the loader's goes
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

    .global bootpack_handoff_end
bootpack_handoff_end:
    .code64
    .popsection
