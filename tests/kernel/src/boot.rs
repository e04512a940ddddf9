//! Multiboot header, 32-bit entry and the switch to long mode.
//!
//! Everything before Rust runs is assembly here: Rust code is built for
//! x86_64-unknown-none and only runs in 64-bit long mode.
//!
//! `_start32` is entered as Multiboot 1 §3.2 (or Multiboot 2 §3.3)
//! describes: 32-bit protected mode, paging off, CS a flat 32-bit code
//! segment, DS/ES/FS/GS/SS flat data segments, EAX = 0x2BADB002 (or
//! 0x36D76289), EBX = physical address of the info structure (or block).
//! It relies on nothing else: ESP, the GDTR and the IDTR may be garbage. It
//! records what it was handed (so Rust can report it), checks A20, builds
//! its own GDT, stack and page tables, enters long mode and calls
//! `crate::kernel_main`.

use core::arch::global_asm;
use core::mem::offset_of;

/// The machine state `_start32` found, written by the assembly below before
/// it changes anything, and read by Rust afterwards.
#[repr(C)]
pub struct Saved {
    pub eax: u32,
    pub ebx: u32,
    pub eflags: u32,
    pub cr0: u32,
    pub cr4: u32,
    /// The low half of EFER (the high half is reserved).
    pub efer: u32,
    /// 1 if the GDT swap and iret of BPTK_MODE bit 0 ran (and survived).
    pub iret: u32,
    /// CS, DS, ES, FS, GS, SS in that order.
    pub selectors: [u16; 6],
    /// The 6 bytes `sgdt` stores in 32-bit mode: limit (2), base (4).
    pub gdtr: [u8; 6],
    _pad: [u8; 2],
    /// 1 if A20 was found enabled, 0 if memory wrapped at 1 MiB.
    pub a20: u32,
}

/// Written only by `_start32` (before Rust runs), read by Rust afterwards.
/// It lives in .bss, but every field Rust looks at is written first, so it
/// does not depend on the loader zeroing the bss.
pub static mut SAVED: Saved = Saved {
    eax: 0,
    ebx: 0,
    eflags: 0,
    cr0: 0,
    cr4: 0,
    efer: 0,
    iret: 0,
    selectors: [0; 6],
    gdtr: [0; 6],
    _pad: [0; 2],
    a20: 0,
};

/// Stack for the 32-bit code and for Rust.
const STACK_SIZE: usize = 16 * 1024;

#[repr(C, align(16))]
struct Stack([u8; STACK_SIZE]);

static mut STACK: Stack = Stack([0; STACK_SIZE]);

/// PML4, PDPT and four page directories mapping 0..4 GiB with 2 MiB pages.
#[repr(C, align(4096))]
struct PageTables([u64; 6 * 512]);

/// Filled in completely by `_start32` (it zeroes the PML4 and PDPT and
/// writes every page-directory entry), so it does not depend on the loader
/// zeroing the bss either.
static mut PAGE_TABLES: PageTables = PageTables([0; 6 * 512]);

extern "C" {
    /// Linker-script symbols (linker/test-kernel.ld).
    pub static __bptk_load_start: u8;
    pub static __bptk_load_end: u8;
    pub static __bptk_bss_end: u8;
}

// The Multiboot 1 header. Flags 0x00010003: bit 0 page-align modules, bit 1
// request memory information, bit 16 the address fields below are valid (the
// "a.out kludge"), which is what makes a loader able to load this ELF64 file
// without understanding ELF64. All addresses are absolute 32-bit values
// (R_X86_64_32 relocations), valid because the image is linked at 1 MiB.
global_asm!(
    r#"
    .section .multiboot, "a", @progbits
    .balign 4
    .global bptk_multiboot_header
bptk_multiboot_header:
    .long 0x1BADB002
    .long 0x00010003
    .long -(0x1BADB002 + 0x00010003)
    .long bptk_multiboot_header     /* header_addr */
    .long __bptk_load_start         /* load_addr */
    .long __bptk_load_end           /* load_end_addr */
    .long __bptk_bss_end            /* bss_end_addr */
    .long _start32                  /* entry_addr */
    "#,
    options(att_syntax)
);

// The Multiboot 2 header (tags 8-byte aligned): an information request for
// the tags bootpack provides (required) and for ELF sections and ACPI
// (optional: a flat kernel has no sections, a machine may have no ACPI), the
// address and entry address tags (the same addresses as the Multiboot 1
// header, so both protocols load the image the same way), console flags 0
// (no console requirement), module alignment, end. Tests derive variants
// from it (see tests/support/kernels.rs).
global_asm!(
    r#"
    .section .multiboot2, "a", @progbits
    .balign 8
    .global bptk_multiboot2_header
bptk_multiboot2_header:
    .long 0xE85250D6
    .long 0                         /* architecture: i386 */
    .long bptk_mb2_end - bptk_multiboot2_header
    .long -(0xE85250D6 + (bptk_mb2_end - bptk_multiboot2_header))
    .balign 8
    .word 1, 0                      /* information request, required */
    .long 8 + 4 * 7
    .long 1, 2, 3, 4, 5, 6, 21
    .balign 8
    .word 1, 1                      /* information request, optional */
    .long 8 + 4 * 3
    .long 9, 14, 15
    .balign 8
    .word 2, 0                      /* address */
    .long 24
    .long bptk_multiboot2_header    /* header_addr */
    .long __bptk_load_start         /* load_addr */
    .long __bptk_load_end           /* load_end_addr */
    .long __bptk_bss_end            /* bss_end_addr */
    .balign 8
    .word 3, 0                      /* entry address */
    .long 12
    .long _start32
    .balign 8
    .word 4, 0                      /* console flags */
    .long 12
    .long 0
    .balign 8
    .word 6, 0                      /* module alignment */
    .long 8
    .balign 8
    .word 0, 0                      /* end */
    .long 8
    .global bptk_mb2_end
bptk_mb2_end:
    "#,
    options(att_syntax)
);

// The ELF header and program header table of the kernel file. The kernel
// is linked with --oformat=binary (see linker/test-kernel.ld for why), and
// this section is placed at file offset 0, so these bytes are what ELF
// readers see. Sizes and offsets come from symbols the linker script
// computes; a program header is {type, flags: u32; offset, vaddr, paddr,
// filesz, memsz, align: u64}.
global_asm!(
    r#"
    .section .bptk_elf_headers, "a", @progbits
bptk_elf_header:
    .byte 0x7f, 0x45, 0x4c, 0x46    /* "\x7fELF" */
    .byte 2, 1, 1, 0                /* ELFCLASS64, little endian, version 1, System V ABI */
    .zero 8
    .word 2                         /* e_type: ET_EXEC */
    .word 0x3e                      /* e_machine: EM_X86_64 */
    .long 1                         /* e_version */
    .quad _start64                  /* e_entry: 64-bit code, as in Solo5 */
    .quad bptk_program_headers - bptk_elf_header /* e_phoff */
    .quad 0                         /* e_shoff: no section headers */
    .long 0                         /* e_flags */
    .word bptk_program_headers - bptk_elf_header /* e_ehsize (64) */
    .word 56                        /* e_phentsize */
    .word (bptk_program_headers_end - bptk_program_headers) / 56 /* e_phnum */
    .word 64                        /* e_shentsize */
    .word 0                         /* e_shnum */
    .word 0                         /* e_shstrndx: SHN_UNDEF */
bptk_program_headers:
    /* The empty PT_LOAD at address 0 newer Solo5 kernels carry. */
    .long 1, 4                      /* PT_LOAD, PF_R */
    .quad 0, 0, 0, 0, 0, 0x1000
    /* The image: Multiboot header, text, rodata, data, tdata; then bss. */
    .long 1, 7                      /* PT_LOAD, PF_R | PF_W | PF_X */
    .quad __bptk_image_offset, __bptk_load_start, __bptk_load_start
    .quad __bptk_image_filesz, __bptk_image_memsz, 0x1000
    /* TLS template (.tdata then .tbss), inside the image. */
    .long 7, 4                      /* PT_TLS, PF_R */
    .quad __bptk_tls_offset, __bptk_tls_start, __bptk_tls_start
    .quad __bptk_tls_filesz, __bptk_tls_memsz, 16
bptk_program_headers_end:
    "#,
    options(att_syntax)
);

// A small TLS image so the ELF file has a PT_TLS, as newer Solo5 kernels do.
// Nothing uses it (the kernel never sets up FS for TLS). No labels: a TLS
// symbol needs a PT_TLS from the linker, and with --oformat=binary lld
// makes none (it would fail as soon as a symbol value is asked for, e.g.
// by -Map).
global_asm!(
    r#"
    .section .tdata.bptk, "awT", @progbits
    .balign 8
    .quad 0x534c542d4b545042        /* "BPTK-TLS" */
    .section .tbss.bptk, "awT", @nobits
    .balign 8
    .zero 16
    "#,
    options(att_syntax)
);

// The 32-bit entry. Relies on: Multiboot 1 machine state (see module doc);
// DS and SS being flat data segments is what lets it store to absolute
// addresses and use its stack before it has its own GDT; the image being
// linked below 4 GiB so every absolute address fits the 32-bit forms used
// here.
global_asm!(
    r#"
    .section .text.bptk_start32, "ax", @progbits
    .code32
    .global _start32
_start32:
    /* Save EAX/EBX first: cpuid and rdmsr below clobber them. A mov does
     * not change EFLAGS, so EFLAGS is still the loader's when pushed. */
    movl %eax, {saved}+{off_eax}
    movl %ebx, {saved}+{off_ebx}
    movl ${stack}+{stack_size}, %esp
    pushfl
    popl {saved}+{off_eflags}
    /* Our own IDT does not exist: an interrupt now would triple-fault. */
    cli
    cld
    movl %cr0, %eax
    movl %eax, {saved}+{off_cr0}
    movl %cr4, %eax
    movl %eax, {saved}+{off_cr4}
    movw %cs, {saved}+{off_sel}+0
    movw %ds, {saved}+{off_sel}+2
    movw %es, {saved}+{off_sel}+4
    movw %fs, {saved}+{off_sel}+6
    movw %gs, {saved}+{off_sel}+8
    movw %ss, {saved}+{off_sel}+10
    sgdtl {saved}+{off_gdtr}

    /* BPTK_MODE bit 0: behave like kernels that load their own GDT (null,
     * code, data) and never reload CS, then return from an interrupt: the
     * iret loads the CS selector the loader left from the new GDT. With
     * CS = 0x08 that is our flat code segment; with any other selector it
     * faults (no IDT yet: the machine resets and nothing is printed). */
    testb $1, {mode}+8
    jz 9f
    lgdtl bptk_gdtr32
    pushfl
    pushl %cs
    pushl $8f
    iretl
8:  movl $1, {saved}+{off_iret}
9:

    /* A20 check without writing low memory: write to our own variable V
     * (at >= 1 MiB, < 2 MiB) and read V ^ 1 MiB. If A20 is off, both
     * addresses are the same memory, and they stay equal when the pattern
     * changes. If A20 is off, the loader also put this whole image into the
     * aliased low memory, so the write to V only ever touches our image. */
    movl $bptk_a20_probe, %esi
    movl %esi, %edi
    xorl $0x100000, %edi
    movl $0x13579bdf, (%esi)
    movl (%edi), %eax
    cmpl (%esi), %eax
    jne 1f
    notl (%esi)
    movl (%edi), %eax
    cmpl (%esi), %eax
    jne 1f
    movl $0, {saved}+{off_a20}
    jmp 2f
1:  movl $1, {saved}+{off_a20}
2:

    /* Long mode available? (cpuid 0x80000001 EDX bit 29) */
    movl $0x80000000, %eax
    cpuid
    cmpl $0x80000001, %eax
    jb bptk_no_long_mode
    movl $0x80000001, %eax
    cpuid
    btl $29, %edx
    jnc bptk_no_long_mode

    /* EFER exists on every CPU with long mode. */
    movl $0xC0000080, %ecx
    rdmsr
    movl %eax, {saved}+{off_efer}

    /* Paging must be off while CR3/EFER change (Multiboot says it is;
     * clearing PG again costs nothing). */
    movl %cr0, %eax
    andl $0x7fffffff, %eax
    movl %eax, %cr0

    /* Page tables: PML4[0] -> PDPT, PDPT[0..4] -> PD0..PD3, PDn maps
     * 2 MiB pages identity over 0..4 GiB. Zero PML4 and PDPT ourselves:
     * whether the loader zeroed the bss is one of the things we test. */
    movl ${tables}, %edi
    xorl %eax, %eax
    movl $(2 * 4096 / 4), %ecx
    rep stosl
    movl ${tables}, %edi
    leal 0x1000 + 3(%edi), %eax         /* PDPT | present | writable */
    movl %eax, (%edi)
    leal 0x2000 + 3(%edi), %eax         /* PD0 | present | writable */
    leal 0x1000(%edi), %ebx             /* &PDPT[0] */
    movl $4, %ecx
3:  movl %eax, (%ebx)
    addl $0x1000, %eax
    addl $8, %ebx
    loop 3b
    leal 0x2000(%edi), %ebx             /* &PD0[0] */
    movl $0x83, %eax                    /* present | writable | 2 MiB page */
    movl $2048, %ecx
4:  movl %eax, (%ebx)
    movl $0, 4(%ebx)
    addl $0x200000, %eax
    addl $8, %ebx
    loop 4b

    /* Our own GDT: the loader's may be gone already (Multiboot §3.2). */
    lgdtl bptk_gdtr64
    movl %cr4, %eax
    orl $0x20, %eax                     /* PAE */
    movl %eax, %cr4
    movl ${tables}, %eax
    movl %eax, %cr3
    movl $0xC0000080, %ecx              /* EFER */
    rdmsr
    orl $0x100, %eax                    /* LME */
    wrmsr
    movl %cr0, %eax
    orl $0x80000001, %eax               /* PG | PE */
    movl %eax, %cr0
    ljmpl $0x08, $_start64

    /* No long mode: say so on COM1 (polled, no init: works on QEMU and on
     * a UART the firmware set up) and halt. */
bptk_no_long_mode:
    movl $bptk_no_lm_msg, %esi
5:  movb (%esi), %al
    testb %al, %al
    jz 7f
    movw $0x3fd, %dx                    /* line status register */
    movl $100000, %ecx
6:  inb %dx, %al
    testb $0x20, %al                    /* transmit holding register empty */
    loopz 6b
    movb (%esi), %al
    movw $0x3f8, %dx
    outb %al, %dx
    incl %esi
    jmp 5b
7:  cli
    hlt
    jmp 7b

    .section .rodata.bptk_boot, "a", @progbits
bptk_no_lm_msg:
    .asciz "bootpack demo kernel: this CPU has no long mode (x86-64); halting\r\n"

    .balign 8
bptk_gdt64:
    .quad 0                             /* null */
    .quad 0x00af9a000000ffff            /* 0x08: 64-bit code, DPL 0 */
    .quad 0x00cf92000000ffff            /* 0x10: data, DPL 0 */
bptk_gdt64_end:
    .balign 8
bptk_gdtr64:
    .word bptk_gdt64_end - bptk_gdt64 - 1
    .quad bptk_gdt64                    /* lgdt in 32-bit mode reads 4 bytes */

    /* The GDT of BPTK_MODE bit 0: the null, code, data layout of most
     * kernels' own GDTs. */
    .balign 8
bptk_gdt32:
    .quad 0                             /* null */
    .quad 0x00cf9a000000ffff            /* 0x08: flat 32-bit code */
    .quad 0x00cf92000000ffff            /* 0x10: flat data */
bptk_gdt32_end:
    .balign 8
bptk_gdtr32:
    .word bptk_gdt32_end - bptk_gdt32 - 1
    .long bptk_gdt32

    .section .data.bptk_a20, "aw", @progbits
    .balign 4
bptk_a20_probe:
    .long 0

    /* The ELF entry point (e_entry), as in Solo5: 64-bit code. The real
     * entry is the Multiboot entry_addr, _start32. SWAPGS is #UD outside
     * 64-bit mode, so a loader that wrongly jumps here in 32-bit mode
     * faults on the first instruction instead of running 64-bit code as
     * 32-bit code. In long mode the pair is a no-op (GS base swapped out
     * and back). */
    .section .text.bptk_start64, "ax", @progbits
    .code64
    .global _start64
_start64:
    swapgs
    swapgs
    movw $0x10, %ax
    movw %ax, %ds
    movw %ax, %es
    movw %ax, %ss
    movw %ax, %fs
    movw %ax, %gs
    movq ${stack}+{stack_size}, %rsp             /* 16-byte aligned */
    xorl %ebp, %ebp
    call {main}
8:  cli
    hlt
    jmp 8b
    "#,
    saved = sym SAVED,
    off_eax = const offset_of!(Saved, eax),
    off_ebx = const offset_of!(Saved, ebx),
    off_eflags = const offset_of!(Saved, eflags),
    off_cr0 = const offset_of!(Saved, cr0),
    off_cr4 = const offset_of!(Saved, cr4),
    off_efer = const offset_of!(Saved, efer),
    off_iret = const offset_of!(Saved, iret),
    mode = sym crate::BPTK_MODE,
    off_sel = const offset_of!(Saved, selectors),
    off_gdtr = const offset_of!(Saved, gdtr),
    off_a20 = const offset_of!(Saved, a20),
    stack = sym STACK,
    stack_size = const STACK_SIZE,
    tables = sym PAGE_TABLES,
    main = sym crate::kernel_main,
    options(att_syntax)
);
