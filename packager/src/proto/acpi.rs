//! Finding the ACPI RSDP (root system description pointer) the way the
//! ACPI specification says a BIOS-booted OS does: on a 16-byte boundary in
//! the first KiB of the EBDA, then in 0xE0000-0xFFFFF; the signature
//! "RSD PTR " and a zero byte sum over the first 20 bytes (revision 0), or
//! also over `length` bytes (revision 2 and later).

/// The RSDP signature.
pub const SIGNATURE: &[u8; 8] = b"RSD PTR ";
/// Size of an ACPI 1.0 RSDP.
pub const V1_LEN: usize = 20;
/// Size of an ACPI 2.0+ RSDP (XSDT address, extended checksum).
pub const V2_LEN: usize = 36;
/// The BIOS area searched after the EBDA.
pub const BIOS_AREA: (u32, u32) = (0xE0000, 0x100000);
/// Where the BIOS data area keeps the EBDA's real-mode segment.
pub const EBDA_SEGMENT_PTR: u32 = 0x40E;

fn sum(bytes: &[u8]) -> u8 {
    bytes.iter().fold(0u8, |a, &b| a.wrapping_add(b))
}

/// If a valid RSDP starts at `at` in `region`, its length: 20 for
/// revision 0, its `length` field for later revisions.
pub fn valid_at(region: &[u8], at: usize) -> Option<usize> {
    let r = region.get(at..)?;
    if r.len() < V1_LEN || &r[..8] != SIGNATURE || sum(&r[..V1_LEN]) != 0 {
        return None;
    }
    if r[15] < 2 {
        return Some(V1_LEN);
    }
    let len = u32::from_le_bytes(r[20..24].try_into().ok()?) as usize;
    if !(V2_LEN..=r.len()).contains(&len) || sum(&r[..len]) != 0 {
        return None;
    }
    Some(len)
}

/// Searches `region` (which starts on a 16-byte boundary) and returns the
/// offset and length of the first valid RSDP.
pub fn find(region: &[u8]) -> Option<(usize, usize)> {
    (0..region.len())
        .step_by(16)
        .find_map(|at| valid_at(region, at).map(|len| (at, len)))
}

/// The EBDA's first KiB, as (start, end) physical addresses, from the
/// segment word at 0x40E, if it points at a plausible place (0x80000 and
/// above, below 0xA0000).
pub fn ebda_window(segment: u16) -> Option<(u32, u32)> {
    let base = (segment as u32) << 4;
    (0x80000..0xA0000)
        .contains(&base)
        .then_some((base, base + 1024))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rsdp(rev: u8) -> [u8; 36] {
        let mut r = [0u8; 36];
        r[..8].copy_from_slice(SIGNATURE);
        r[9..15].copy_from_slice(b"BOCHS ");
        r[15] = rev;
        r[16..20].copy_from_slice(&0x7fe1234u32.to_le_bytes());
        r[20..24].copy_from_slice(&36u32.to_le_bytes());
        r[8] = 0u8.wrapping_sub(sum(&r[..20]));
        r[32] = 0u8.wrapping_sub(sum(&r));
        r
    }

    #[test]
    fn finds_v1_and_v2_on_16_byte_boundaries() {
        let mut area = [0u8; 256];
        area[0x48..0x48 + 36].copy_from_slice(&rsdp(0));
        area[0x80..0x80 + 36].copy_from_slice(&rsdp(0));
        assert_eq!(find(&area), Some((0x80, 20)));
        area[0x20..0x20 + 36].copy_from_slice(&rsdp(2));
        assert_eq!(find(&area), Some((0x20, 36)));
    }

    #[test]
    fn refuses_bad_checksums() {
        let mut area = [0u8; 64];
        let mut r = rsdp(0);
        r[12] ^= 1;
        area[..36].copy_from_slice(&r);
        assert_eq!(find(&area), None);
        let mut r = rsdp(2);
        r[30] ^= 1; // only the extended checksum breaks
        area[..36].copy_from_slice(&r);
        assert_eq!(find(&area), None);
        // A revision 2 RSDP cut off by the end of the region.
        area[32..].copy_from_slice(&rsdp(2)[..32]);
        assert_eq!(find(&area), None);
    }

    #[test]
    fn ebda_window_is_checked() {
        assert_eq!(ebda_window(0x9fc0), Some((0x9fc00, 0xa0000)));
        assert_eq!(ebda_window(0), None);
        assert_eq!(ebda_window(0xa000), None);
    }
}
