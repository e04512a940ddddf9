//! Images made from 16-bit code that the tests assemble into a data section
//! of the test binary (nothing in it ever runs on the host): boot sectors
//! and option ROMs for QEMU, Bochs and DOSBox.

/// The bytes between two labels of a test's assembly.
///
/// Both labels must be in the same section of this binary, `end` at or
/// after `start`.
pub fn bytes(start: *const u8, end: *const u8) -> Vec<u8> {
    // SAFETY: the caller names two labels of one read-only section of this
    // binary, `end` after `start`; the bytes between them are plain data.
    unsafe { std::slice::from_raw_parts(start, end.offset_from(start) as usize).to_vec() }
}

/// A bootable sector (0xAA55 at 510) from the code between two labels; the
/// code must leave the MBR's partition table (from 446) free.
pub fn boot_sector(start: *const u8, end: *const u8) -> Vec<u8> {
    let mut sector = bytes(start, end);
    assert!(sector.len() <= 446, "boot sector code too long");
    sector.resize(512, 0);
    sector[510..].copy_from_slice(&[0x55, 0xAA]);
    sector
}

/// A one-block (512-byte) option ROM from the code between two labels,
/// its last byte set so that all of them sum to 0 mod 256, as the BIOS
/// checks.
pub fn option_rom(start: *const u8, end: *const u8) -> Vec<u8> {
    let mut rom = bytes(start, end);
    assert!(rom.len() < 512, "the ROM must fit its one block");
    rom.resize(512, 0);
    let sum = rom.iter().fold(0u8, |s, &b| s.wrapping_add(b));
    rom[511] = 0u8.wrapping_sub(sum);
    rom
}
