//! A relocatable Multiboot 2 kernel (header tag 10) for the UEFI tests.
//!
//! The test kernel (tests/kernel) runs only at its link address, so a
//! kernel the loader may move is made here from a little
//! position-independent code that the tests assemble into a data section
//! of the test binary (nothing in it runs on the host). It finds its own
//! address at run time, walks the Multiboot 2 information to tag 21 (load
//! base address), hashes its payload segment and checks its bss where
//! they were actually loaded, prints one line on COM1 and exits QEMU
//! through isa-debug-exit (status 0x21):
//!
//! `BPREL entry32 base=XXXXXXXX tag21=XXXXXXXX magic=XXXXXXXX hash=XXXXXXXX bss=XXXXXXXX`
//!
//! (`entry64` when entered through the EFI amd64 entry; tag21 ffffffff
//! when the information has no tag 21; bss is the OR of every bss dword).
//!
//! The image, at link address `link`: the Multiboot 2 header at offset 0,
//! the code at [`CODE_OFF`], one PT_LOAD; the payload at [`PAYLOAD_OFF`]
//! ([`PAYLOAD_LEN`] bytes) and its bss after it ([`BSS_LEN`] bytes) in a
//! second PT_LOAD. ELF32, entered at the 32-bit code.

use super::asm_image::bytes;
use super::elf::{self, Seg};
use super::kernels::random_bytes;
use bootpack::proto::mb2_header;

/// Where the code starts in the image (the header comes first).
pub const CODE_OFF: u64 = 0x100;
/// The payload segment's offset from the link address.
pub const PAYLOAD_OFF: u64 = 0x1_0000;
pub const PAYLOAD_LEN: u64 = 0x1_0000;
/// The bss follows the payload.
pub const BSS_OFF: u64 = PAYLOAD_OFF + PAYLOAD_LEN;
pub const BSS_LEN: u64 = 0x1_0000;
/// The image's span: link address to the end of the bss.
pub const SPAN: u64 = BSS_OFF + BSS_LEN;

// Relies on: a Multiboot 2 handoff (EAX magic, EBX the information below
// 4 GiB; 32-bit protected mode with flat segments, or the firmware's
// 64-bit mode with identity paging for the EFI amd64 entry); COM1 at 0x3F8
// and isa-debug-exit at 0xF4. Uses no memory of its own to write: the
// 32-bit entry's one CALL pushes into the information's reserved field
// (ESP = EBX + 8), the only way to learn EIP there without a stack.
core::arch::global_asm!(
    r#"
    .pushsection .rodata.bootpack_test_reloc_kernel, "a"
    .set RK_CODE_OFF, 0x100
    .set RK_PAYLOAD_OFF, 0x10000
    .set RK_PAYLOAD_LEN, 0x10000
    .set RK_BSS_OFF, 0x20000
    .set RK_BSS_LEN, 0x10000

# Prints the NUL-terminated string at label \lbl; ESI = the image base.
.macro RK_PUTS lbl
    leal    (\lbl - bootpack_test_reloc_code + RK_CODE_OFF)(%esi), %ecx
    movw    $0x3F8, %dx
1:  movb    (%ecx), %al
    testb   %al, %al
    jz      2f
    outb    %al, %dx
    incl    %ecx
    jmp     1b
2:
.endm

# Prints \reg (not EAX, EBX, ECX, EDX) as 8 lowercase hex digits.
.macro RK_HEX reg
    movl    \reg, %ebx
    movl    $8, %ecx
    movw    $0x3F8, %dx
1:  roll    $4, %ebx
    movl    %ebx, %eax
    andl    $0xF, %eax
    cmpb    $10, %al
    jb      2f
    addb    $('a' - '0' - 10), %al
2:  addb    $'0', %al
    outb    %al, %dx
    decl    %ecx
    jnz     1b
.endm

# ESI = the image base as loaded, EBX = the information, EBP = the magic.
.macro RK_BODY which
    leal    8(%ebx), %ecx
    movl    $0xFFFFFFFF, %edi
1:  movl    (%ecx), %eax
    testl   %eax, %eax
    jz      3f
    cmpl    $21, %eax
    jne     2f
    movl    8(%ecx), %edi
    jmp     3f
2:  movl    4(%ecx), %eax
    addl    $7, %eax
    andl    $~7, %eax
    addl    %eax, %ecx
    jmp     1b
3:
    RK_PUTS bootpack_test_reloc_s_\which
    RK_HEX  %esi
    RK_PUTS bootpack_test_reloc_s_tag21
    RK_HEX  %edi
    RK_PUTS bootpack_test_reloc_s_magic
    RK_HEX  %ebp
    leal    RK_PAYLOAD_OFF(%esi), %ecx
    movl    $(RK_PAYLOAD_LEN / 4), %edx
    xorl    %edi, %edi
4:  roll    $5, %edi
    xorl    (%ecx), %edi
    addl    $4, %ecx
    decl    %edx
    jnz     4b
    RK_PUTS bootpack_test_reloc_s_hash
    RK_HEX  %edi
    leal    RK_BSS_OFF(%esi), %ecx
    movl    $(RK_BSS_LEN / 4), %edx
    xorl    %edi, %edi
5:  orl     (%ecx), %edi
    addl    $4, %ecx
    decl    %edx
    jnz     5b
    RK_PUTS bootpack_test_reloc_s_bss
    RK_HEX  %edi
    RK_PUTS bootpack_test_reloc_s_nl
    movw    $0xF4, %dx
    movb    $0x10, %al
    outb    %al, %dx
6:  cli
    hlt
    jmp     6b
.endm

    .code32
    .global bootpack_test_reloc_code
bootpack_test_reloc_code:
    movl    %eax, %ebp
    leal    8(%ebx), %esp
    call    1f
1:  popl    %esi
    subl    $(1b - bootpack_test_reloc_code + RK_CODE_OFF), %esi
    RK_BODY 32

    .code64
    .global bootpack_test_reloc_entry64
bootpack_test_reloc_entry64:
    movl    %eax, %ebp
    leaq    bootpack_test_reloc_entry64(%rip), %rsi
    subq    $(bootpack_test_reloc_entry64 - bootpack_test_reloc_code + RK_CODE_OFF), %rsi
    RK_BODY 64

bootpack_test_reloc_s_32:
    .asciz  "BPREL entry32 base="
bootpack_test_reloc_s_64:
    .asciz  "BPREL entry64 base="
bootpack_test_reloc_s_tag21:
    .asciz  " tag21="
bootpack_test_reloc_s_magic:
    .asciz  " magic="
bootpack_test_reloc_s_hash:
    .asciz  " hash="
bootpack_test_reloc_s_bss:
    .asciz  " bss="
bootpack_test_reloc_s_nl:
    .asciz  "\r\n"
    .global bootpack_test_reloc_end
bootpack_test_reloc_end:
    .popsection
"#,
    options(att_syntax)
);

extern "C" {
    static bootpack_test_reloc_code: u8;
    static bootpack_test_reloc_entry64: u8;
    static bootpack_test_reloc_end: u8;
}

/// The header's relocatable tag.
#[derive(Clone, Copy, Debug)]
pub struct Reloc {
    pub min: u32,
    pub max: u32,
    pub align: u32,
    pub preference: u32,
}

/// What the kernel printed.
#[derive(Debug, PartialEq, Eq)]
pub struct Line {
    pub entry64: bool,
    pub base: u32,
    pub tag21: u32,
    pub magic: u32,
    pub hash: u32,
    pub bss: u32,
}

impl Line {
    /// The kernel's line in COM1's output, if it printed one.
    pub fn find(serial: &str) -> Option<Line> {
        let rest = &serial[serial.find("BPREL ")? + 6..];
        let line = rest.lines().next()?;
        let mut words = line.split_whitespace();
        let entry64 = match words.next()? {
            "entry32" => false,
            "entry64" => true,
            _ => return None,
        };
        let mut field = |name: &str| {
            let v = words.next()?.strip_prefix(name)?.strip_prefix('=')?;
            u32::from_str_radix(v, 16).ok()
        };
        Some(Line {
            entry64,
            base: field("base")?,
            tag21: field("tag21")?,
            magic: field("magic")?,
            hash: field("hash")?,
            bss: field("bss")?,
        })
    }
}

/// The payload bytes (seeded) and the hash the kernel computes over them:
/// h = rol(h, 5) ^ dword, from 0.
pub fn payload() -> (Vec<u8>, u32) {
    let data = random_bytes(PAYLOAD_LEN as usize, 0x7e10c);
    let hash = data.chunks(4).fold(0u32, |h, w| {
        h.rotate_left(5) ^ u32::from_le_bytes(w.try_into().unwrap())
    });
    (data, hash)
}

/// The kernel linked at `link` with the relocatable tag `reloc` (none:
/// a plain Multiboot 2 kernel), and with `efi64` the EFI boot-services tag
/// (7) and the EFI amd64 entry tag (9) as Xen has them.
pub fn build(link: u64, reloc: Option<Reloc>, efi64: bool) -> Vec<u8> {
    let code_start = &raw const bootpack_test_reloc_code;
    // SAFETY: all three labels are in the one section above, in this order.
    let entry64_off = unsafe { (&raw const bootpack_test_reloc_entry64).offset_from(code_start) };
    let code = bytes(code_start, &raw const bootpack_test_reloc_end);
    let mut image = vec![0u8; CODE_OFF as usize];
    image.extend_from_slice(&code);
    let words = |w: &[u32]| w.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>();
    let reloc_body = reloc.map(|r| words(&[r.min, r.max, r.align, r.preference]));
    let entry64 = words(&[(link + CODE_OFF) as u32 + entry64_off as u32]);
    let mut tags: Vec<(u16, u16, &[u8])> = Vec::new();
    if let Some(b) = &reloc_body {
        tags.push((10, 0, b));
    }
    if efi64 {
        tags.push((7, 0, &[]));
        tags.push((9, 0, &entry64));
    }
    mb2_header::write(&mut image, 0, &tags);
    assert!(
        mb2_header::find(&image).unwrap().offset == 0 && code.len() as u64 + CODE_OFF < PAYLOAD_OFF
    );
    let (data, _) = payload();
    let segs = [
        Seg::load(link, image.clone(), image.len() as u64),
        Seg::load(link + PAYLOAD_OFF, data, PAYLOAD_LEN + BSS_LEN),
    ];
    elf::write(false, link + CODE_OFF, &segs)
}
