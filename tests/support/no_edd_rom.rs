//! A BIOS without INT 13h extensions, for real: an option ROM (QEMU
//! `-option-rom FILE`) that hooks INT 13h and refuses every extension
//! function, plus a boot sector that asks the BIOS whether it has them.
//!
//! SeaBIOS sets up its interrupt vectors before it runs option ROMs
//! (`-option-rom` files are its "genroms") and leaves INT 13h to whatever
//! they install, as SCSI and network boot ROMs rely on; [`probe_sector`]
//! checks that this holds on the machines the tests use.
//!
//! Both are 16-bit code assembled by the Rust toolchain into a data section
//! of the test binary (nothing in it ever runs on the host); [`rom`] copies
//! the bytes out and adds the checksum byte the option ROM header needs.

use crate::support::asm_image::{boot_sector, option_rom};

core::arch::global_asm!(
    r#"
    .pushsection .rodata.bootpack_test_16bit, "a"
    .code16

# ---- The option ROM. Relies on: SeaBIOS far-calling the entry at offset 3
# with the ROM copied to writable shadow RAM (genroms are), so the old
# vector can be kept in the ROM itself; the IVT at 0000:0000.
    .global bootpack_test_rom_start
bootpack_test_rom_start:
    .byte   0x55, 0xAA              # option ROM signature
    .byte   1                       # length in 512-byte blocks
    jmp     rom_init                # entry at offset 3

# The handler the BIOS's INT 13h had before: offset, segment.
rom_old13:
    .word   0, 0

# INT 13h: AH=41h-49h (the extensions: check, read, write, verify, lock,
# eject, seek, parameters, media change) fail as on a BIOS without them:
# CF set in the caller's FLAGS (popped by iret), AH=01h "invalid function".
# Everything else goes to the BIOS, registers untouched.
rom_int13:
    cmpb    $0x41, %ah
    jb      rom_chain
    cmpb    $0x49, %ah
    ja      rom_chain
    pushw   %bp
    movw    %sp, %bp
    orb     $1, 6(%bp)              # FLAGS.CF: IP, CS, FLAGS above old BP
    popw    %bp
    movb    $0x01, %ah
    iretw
rom_chain:
    ljmpw   *%cs:(rom_old13 - bootpack_test_rom_start)

# Init (far call): saves the INT 13h vector and puts rom_int13 in its place.
rom_init:
    pushfw
    pushw   %ds
    pushw   %ax
    cli
    xorw    %ax, %ax
    movw    %ax, %ds
    movw    0x4C, %ax
    movw    %ax, %cs:(rom_old13 - bootpack_test_rom_start)
    movw    0x4E, %ax
    movw    %ax, %cs:(rom_old13 + 2 - bootpack_test_rom_start)
    movw    $(rom_int13 - bootpack_test_rom_start), 0x4C
    movw    %cs, 0x4E
    popw    %ax
    popw    %ds
    popfw
    lretw
    .global bootpack_test_rom_end
bootpack_test_rom_end:

# ---- A boot sector that reports on COM1 whether the boot drive has INT 13h
# extensions ("EDD yes" / "EDD no") and exits QEMU through isa-debug-exit
# (port 0xF4, exit status 0x21). Relies on: loaded at 0x7C00 with DL = the
# drive, and only on position-independent code (CS may be 0 or 0x7C0).
    .global bootpack_test_probe_start
bootpack_test_probe_start:
    movb    $0x41, %ah
    movw    $0x55AA, %bx
    int     $0x13
    movb    $'n', %al
    jc      probe_report
    cmpw    $0xAA55, %bx
    jne     probe_report
    movb    $'y', %al
probe_report:
    movw    $0x3F8, %dx
    movb    %al, %bl
    movb    $'E', %al
    outb    %al, %dx
    movb    $'D', %al
    outb    %al, %dx
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
probe_halt:
    cli
    hlt
    jmp     probe_halt
    .global bootpack_test_probe_end
bootpack_test_probe_end:

    .code64
    .popsection
"#,
    options(att_syntax)
);

extern "C" {
    static bootpack_test_rom_start: u8;
    static bootpack_test_rom_end: u8;
    static bootpack_test_probe_start: u8;
    static bootpack_test_probe_end: u8;
}

/// The option ROM image: 512 bytes whose sum is 0 mod 256.
pub fn rom() -> Vec<u8> {
    option_rom(
        &raw const bootpack_test_rom_start,
        &raw const bootpack_test_rom_end,
    )
}

/// A whole bootable sector (0xAA55 at 510) with the probe.
pub fn probe_sector() -> Vec<u8> {
    boot_sector(
        &raw const bootpack_test_probe_start,
        &raw const bootpack_test_probe_end,
    )
}
