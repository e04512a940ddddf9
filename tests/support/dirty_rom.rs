//! A BIOS that hands over a dirty machine state, for real: an option ROM
//! (QEMU `-option-rom FILE`) that sets CR4.PSE, CR4.OSFXSR and EFER.SCE at
//! its init (SeaBIOS keeps them to the boot sector) and CR0.CD and CR0.NW
//! (caching off, as one BIOS here leaves it: CR0 = 0x60000011 at the
//! kernel under its loader) after every INT 13h and INT 15h call. A loader
//! that only sets the bits it needs hands them on to the kernel.
//!
//! 16-bit code assembled by the Rust toolchain into a data section of the
//! test binary (nothing in it runs on the host); [`rom`] copies the bytes
//! out and adds the checksum byte the option ROM header needs.

use super::asm_image::{boot_sector, option_rom};

/// CR0 bits the ROM sets: CD (30) and NW (29).
pub const CR0_BITS: u64 = 0x6000_0000;
/// CR4 bits the ROM sets: PSE (4) and OSFXSR (9).
pub const CR4_BITS: u64 = 0x210;
/// EFER bits the ROM sets: SCE (0).
pub const EFER_BITS: u64 = 0x1;

core::arch::global_asm!(
    r#"
    .pushsection .rodata.bootpack_test_dirty_rom, "a"
    .code16

# Relies on: SeaBIOS far-calling the entry at offset 3 in real mode, with
# the ROM copied to writable shadow RAM (genroms are), so the old vectors
# can be kept in the ROM itself; the IVT at 0000:0000; a CPU with CR4,
# FXSR and EFER (every x86-64 CPU). Leaves every register as it found it,
# except the control register bits above.
    .global bootpack_test_dirty_rom_start
bootpack_test_dirty_rom_start:
    .byte   0x55, 0xAA              # option ROM signature
    .byte   1                       # length in 512-byte blocks
    jmp     dirty_init              # entry at offset 3

# The INT 13h and INT 15h handlers the BIOS had before: offset, segment.
dirty_old13:
    .word   0, 0
dirty_old15:
    .word   0, 0

# SeaBIOS clears CR0.CD and NW whenever it enters 32-bit mode, which it
# does for most services; so the ROM sets them again after every disk
# (INT 13h) and system (INT 15h: E820) call, the services loaders call
# last before they start the kernel. The BIOS's result flags go back to
# the caller (retf 2 drops the caller's saved FLAGS).
dirty_int13:
    pushfw
    lcallw  *%cs:(dirty_old13 - bootpack_test_dirty_rom_start)
    jmp     dirty_after
dirty_int15:
    pushfw
    lcallw  *%cs:(dirty_old15 - bootpack_test_dirty_rom_start)
dirty_after:
    pushfw
    pushl   %eax
    movl    %cr0, %eax
    orl     $0x60000000, %eax       # CD | NW
    movl    %eax, %cr0
    popl    %eax
    popfw
    lretw   $2

dirty_init:
    pushfw
    pushal
    pushw   %ds
    cli
    movl    %cr4, %eax
    orl     $0x210, %eax            # PSE | OSFXSR
    movl    %eax, %cr4
    movl    $0xC0000080, %ecx       # EFER.SCE
    rdmsr
    orl     $1, %eax
    wrmsr
    xorw    %ax, %ax
    movw    %ax, %ds
    movw    0x4C, %ax
    movw    %ax, %cs:(dirty_old13 - bootpack_test_dirty_rom_start)
    movw    0x4E, %ax
    movw    %ax, %cs:(dirty_old13 + 2 - bootpack_test_dirty_rom_start)
    movw    $(dirty_int13 - bootpack_test_dirty_rom_start), 0x4C
    movw    %cs, 0x4E
    movw    0x54, %ax
    movw    %ax, %cs:(dirty_old15 - bootpack_test_dirty_rom_start)
    movw    0x56, %ax
    movw    %ax, %cs:(dirty_old15 + 2 - bootpack_test_dirty_rom_start)
    movw    $(dirty_int15 - bootpack_test_dirty_rom_start), 0x54
    movw    %cs, 0x56
    popw    %ds
    popal
    popfw
    lretw
    .global bootpack_test_dirty_rom_end
bootpack_test_dirty_rom_end:

# ---- A boot sector that calls INT 13h (AH=08h, drive parameters, as any
# loader does) and reports on COM1 whether CR0.CD and NW are then set
# ("CDNW y" / "CDNW n"); exits QEMU through isa-debug-exit (status
# 0x21). Relies on: DL = the boot drive; position-independent code.
    .global bootpack_test_cdnw_probe_start
bootpack_test_cdnw_probe_start:
    movb    $0x08, %ah
    int     $0x13
    movl    %cr0, %eax
    andl    $0x60000000, %eax
    movb    $'n', %bl
    cmpl    $0x60000000, %eax
    jne     cdnw_report
    movb    $'y', %bl
cdnw_report:
    movw    $0x3F8, %dx
    movb    $'C', %al
    outb    %al, %dx
    movb    $'D', %al
    outb    %al, %dx
    movb    $'N', %al
    outb    %al, %dx
    movb    $'W', %al
    outb    %al, %dx
    movb    $' ', %al
    outb    %al, %dx
    movb    %bl, %al
    outb    %al, %dx
    movb    $'\n', %al
    outb    %al, %dx
    movw    $0xF4, %dx
    movb    $0x10, %al
    outb    %al, %dx
cdnw_halt:
    cli
    hlt
    jmp     cdnw_halt
    .global bootpack_test_cdnw_probe_end
bootpack_test_cdnw_probe_end:

    .code64
    .popsection
"#,
    options(att_syntax)
);

extern "C" {
    static bootpack_test_dirty_rom_start: u8;
    static bootpack_test_dirty_rom_end: u8;
    static bootpack_test_cdnw_probe_start: u8;
    static bootpack_test_cdnw_probe_end: u8;
}

/// A whole bootable sector (0xAA55 at 510) with the CR0 probe.
pub fn cdnw_probe_sector() -> Vec<u8> {
    boot_sector(
        &raw const bootpack_test_cdnw_probe_start,
        &raw const bootpack_test_cdnw_probe_end,
    )
}

/// The option ROM image: 512 bytes whose sum is 0 mod 256.
pub fn rom() -> Vec<u8> {
    option_rom(
        &raw const bootpack_test_dirty_rom_start,
        &raw const bootpack_test_dirty_rom_end,
    )
}
