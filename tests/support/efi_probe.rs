//! A Multiboot 2 kernel that asks to keep EFI boot services and has only an
//! EFI amd64 entry that does anything (tags 7 and 9, as Xen's header): it
//! writes on COM1 what it was entered with, in lines the test parses:
//!
//! ```text
//! EFIK magic 36d76289
//! EFIK mbi <the whole Multiboot 2 information, as hex bytes>
//! EFIK systab <the first 24 bytes at tag 12's pointer: the EFI table header>
//! EFIK end
//! ```
//!
//! then exits QEMU through isa-debug-exit (0x10). A flat binary with the
//! address tag, loaded at [`LOAD`]; its 32-bit entry (tag 3, which the
//! address tag needs) only halts: under BIOS it is never wanted.
//!
//! The code is assembled into a data section of the test binary; nothing
//! of it runs on the host.

/// Where the kernel is linked and loaded (free under OVMF, as Xen's 2 MiB).
pub const LOAD: u64 = 0x20_0000;
/// The value the kernel writes to isa-debug-exit at its end.
pub const EXIT: u8 = 0x10;

core::arch::global_asm!(
    r#"
    .pushsection .rodata.bootpack_test_efi_probe, "a"
    .balign 8
    .global bootpack_test_efi_probe_start
bootpack_test_efi_probe_start:
efik_header:
    .long 0xE85250D6                    # Multiboot 2 magic
    .long 0                             # i386
    .long efik_header_end - efik_header
    .long -(0xE85250D6 + (efik_header_end - efik_header))
    .word 2, 0                          # address tag
    .long 24
    .long 0x200000                      # header_addr
    .long 0x200000                      # load_addr
    .long 0x200000 + (efik_end - efik_header)   # load_end_addr
    .long 0x200000 + (efik_end - efik_header)   # bss_end_addr
    .word 3, 0                          # entry address tag (32-bit entry)
    .long 12
    .long 0x200000 + (efik_entry32 - efik_header)
    .long 0
    .word 7, 0                          # keep EFI boot services
    .long 8
    .word 9, 0                          # EFI amd64 entry
    .long 12
    .long 0x200000 + (efik_efi64 - efik_header)
    .long 0
    .word 0, 0                          # end
    .long 8
efik_header_end:

    .code32
# Relies on nothing: a BIOS boot of this kernel is not wanted.
efik_entry32:
    cli
1:  hlt
    jmp     1b

    .code64
# The EFI amd64 entry. Relies on: 64-bit mode with the firmware's identity
# map, its stack (valid for calls), EAX = the Multiboot 2 magic, EBX = the
# information's address; COM1 set up by the firmware (OVMF's console).
# Uses only RIP-relative addressing.
efik_efi64:
    cli
    movl    %eax, %r12d                 # magic
    movl    %ebx, %r13d                 # information (below 4 GiB)
    leaq    efik_s_magic(%rip), %rsi
    call    efik_puts
    movq    %r12, %rax
    movl    $8, %ecx
    call    efik_puthex
    call    efik_newline

    leaq    efik_s_mbi(%rip), %rsi
    call    efik_puts
    movq    %r13, %rsi
    movl    (%r13), %ecx                # total_size
    call    efik_dump
    call    efik_newline

    leaq    8(%r13), %rsi               # first tag
    movl    (%r13), %r14d
    addq    %r13, %r14                  # end of the information
2:  cmpq    %r14, %rsi
    jae     4f
    movl    (%rsi), %eax
    testl   %eax, %eax
    jz      4f
    cmpl    $12, %eax
    je      3f
    movl    4(%rsi), %eax               # size, rounded up to 8
    addl    $7, %eax
    andl    $~7, %eax
    jz      4f
    addq    %rax, %rsi
    jmp     2b
3:  movq    8(%rsi), %rsi               # the EFI system table
    pushq   %rsi
    leaq    efik_s_systab(%rip), %rsi
    call    efik_puts
    popq    %rsi
    movl    $24, %ecx
    call    efik_dump
    call    efik_newline
4:  leaq    efik_s_end(%rip), %rsi
    call    efik_puts
    movw    $0xF4, %dx
    movb    ${exit}, %al
    outb    %al, %dx
5:  hlt
    jmp     5b

# efik_putc: writes AL on COM1 once the transmitter is empty; keeps every
# register.
efik_putc:
    pushq   %rdx
    pushq   %rax
1:  movw    $0x3FD, %dx
    inb     %dx, %al
    testb   $0x20, %al
    jz      1b
    popq    %rax
    movw    $0x3F8, %dx
    outb    %al, %dx
    popq    %rdx
    ret

# efik_puts: writes the NUL-terminated string at RSI; clobbers RAX, RSI.
efik_puts:
1:  movb    (%rsi), %al
    testb   %al, %al
    jz      2f
    call    efik_putc
    incq    %rsi
    jmp     1b
2:  ret

efik_newline:
    movb    $13, %al
    call    efik_putc
    movb    $10, %al
    jmp     efik_putc

# efik_puthex: writes the low ECX nibbles of RAX in hex, most significant
# first (ECX in 1..16); clobbers RAX, RCX, R8, R9.
efik_puthex:
    movq    %rax, %r8
    movl    %ecx, %r9d
    shll    $2, %ecx
    negl    %ecx
    addl    $64, %ecx
    rolq    %cl, %r8                    # the wanted nibbles to the top
1:  rolq    $4, %r8
    movl    %r8d, %eax
    andl    $15, %eax
    leaq    efik_digits(%rip), %rcx
    movb    (%rcx,%rax), %al
    call    efik_putc
    decl    %r9d
    jnz     1b
    ret

# efik_dump: writes ECX bytes from RSI as hex; clobbers RAX, RCX, RSI, R8-R10.
efik_dump:
    movl    %ecx, %r10d
    testl   %r10d, %r10d
    jz      2f
1:  movzbl  (%rsi), %eax
    movl    $2, %ecx
    call    efik_puthex
    incq    %rsi
    decl    %r10d
    jnz     1b
2:  ret

efik_digits:  .ascii "0123456789abcdef"
efik_s_magic: .asciz "EFIK magic "
efik_s_mbi:   .asciz "EFIK mbi "
efik_s_systab: .asciz "EFIK systab "
efik_s_end:   .asciz "EFIK end\r\n"
    .balign 8
efik_end:
    .global bootpack_test_efi_probe_end
bootpack_test_efi_probe_end:
    .popsection
"#,
    exit = const EXIT,
    options(att_syntax)
);

extern "C" {
    static bootpack_test_efi_probe_start: u8;
    static bootpack_test_efi_probe_end: u8;
}

/// The kernel's bytes (a flat Multiboot 2 image, header first).
pub fn kernel() -> Vec<u8> {
    // Two labels of the one read-only section above, end after start.
    super::asm_image::bytes(
        &raw const bootpack_test_efi_probe_start,
        &raw const bootpack_test_efi_probe_end,
    )
}
