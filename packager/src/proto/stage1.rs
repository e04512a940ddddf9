//! The fields of stage 1 (the 440-byte MBR boot code) that the packager
//! patches. Stage 1's assembly places them at these offsets with `.org`;
//! the packager checks the placeholder values before patching, so a layout
//! mismatch is caught at build time, not at boot.

/// End of the boot code area; the disk signature follows at 0x1B8.
pub const CODE_LEN: usize = 440;

/// u32: first LBA of stage 2.
pub const STAGE2_LBA_OFFSET: usize = 0x1AC;
/// u16: stage 2 length in sectors.
pub const STAGE2_SECTORS_OFFSET: usize = 0x1B0;
/// u16: the 16-bit sum of stage 2's words, so stage 1 can tell a damaged or
/// truncated stage 2 instead of jumping into it.
pub const STAGE2_SUM_OFFSET: usize = 0x1B2;
/// u32 placeholder written by the assembly into all three fields together
/// (LBA) and the two u16 fields: the packager refuses a stage 1 that does
/// not carry them, since that means the offsets above are stale.
pub const PLACEHOLDER_LBA: u32 = 0xB007_B007;
pub const PLACEHOLDER_SECTORS: u16 = 0x5EC7;
pub const PLACEHOLDER_SUM: u16 = 0x5A5A;

/// The sum stage 1 computes over stage 2: wrapping sum of little-endian
/// 16-bit words over whole sectors.
pub fn stage2_sum(stage2_sectors: &[u8]) -> u16 {
    stage2_sectors
        .chunks(2)
        .map(|w| u16::from_le_bytes([w[0], *w.get(1).unwrap_or(&0)]))
        .fold(0u16, |s, w| s.wrapping_add(w))
}
