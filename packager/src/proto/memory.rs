//! The machine's memory map and what is derived from it.
//!
//! A map is a list of [`Region`]s typed as both Multiboot memory maps type
//! them, which are the BIOS E820 types (1 usable, 2 reserved, 3 ACPI
//! reclaimable, 4 ACPI NVS, 5 bad). A BIOS gives exactly that (INT 15h,
//! EAX=E820h: [`Region::from_e820`]); a firmware with another map (UEFI)
//! converts its entries to these types, as GRUB does.
//!
//! Regions are kept exactly as the firmware returned them, in its order:
//! Solo5 needs an entry starting at exactly 1 MiB, and merging or
//! splitting entries could break that.

use super::le;

/// One region of the memory map.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Region {
    pub base: u64,
    pub len: u64,
    /// The E820/Multiboot type ([`USABLE`] is RAM the OS may use).
    pub kind: u32,
}

/// Bytes of an E820 entry without the ACPI 3 attribute dword.
pub const E820_ENTRY_LEN: usize = 20;

/// Type 1: RAM the OS may use.
pub const USABLE: u32 = 1;

impl Region {
    /// The region an E820 entry (base, length, type; little-endian, at
    /// least [`E820_ENTRY_LEN`] bytes) describes, as the BIOS gave it.
    pub fn from_e820(entry: &[u8]) -> Region {
        Region {
            base: le::u64(entry, 0),
            len: le::u64(entry, 8),
            kind: le::u32(entry, 16),
        }
    }

    /// One past the last byte (saturating).
    pub fn end(&self) -> u64 {
        self.base.saturating_add(self.len)
    }
}

/// Follows usable entries from `start` for as long as they cover it
/// contiguously (in whatever order the BIOS listed them) and returns where
/// that run ends. Entries of other types that overlap end the run: reserved
/// wins over usable.
fn usable_run_end(map: &[Region], start: u64) -> u64 {
    let mut end = start;
    loop {
        let next = map
            .iter()
            .filter(|e| e.kind == USABLE && e.base <= end && e.end() > end)
            .map(|e| e.end())
            .max();
        match next {
            Some(n) => end = n,
            None => break,
        }
    }
    // Trim at the first non-usable entry overlapping the run.
    map.iter()
        .filter(|e| e.kind != USABLE && e.len > 0 && e.end() > start && e.base < end)
        .map(|e| e.base.max(start))
        .fold(end, u64::min)
}

/// Multiboot `mem_lower`: KiB of usable memory from address 0, at most 640.
pub fn mem_lower_kib(map: &[Region]) -> u32 {
    (usable_run_end(map, 0).min(640 * 1024) / 1024) as u32
}

/// Multiboot `mem_upper`: KiB of usable memory from 1 MiB up to the first
/// hole, capped so that it fits 32 bits (it saturates at 4 GiB - 1 MiB, the
/// most a 32-bit address space holds above 1 MiB).
pub fn mem_upper_kib(map: &[Region]) -> u32 {
    let end = usable_run_end(map, 0x10_0000).min(0x1_0000_0000);
    ((end - 0x10_0000) / 1024) as u32
}

/// Whether `[start, end)` lies entirely in usable memory and overlaps no
/// non-usable entry.
pub fn is_usable(map: &[Region], start: u64, end: u64) -> bool {
    start >= end || usable_run_end(map, start) >= end
}

#[cfg(test)]
mod tests {
    use super::*;

    const fn e(base: u64, len: u64, kind: u32) -> Region {
        Region { base, len, kind }
    }

    /// What SeaBIOS reports for `-m 128M` on the `pc` machine.
    const QEMU_128M: [Region; 5] = [
        e(0, 0x9fc00, 1),
        e(0x9fc00, 0x400, 2),
        e(0xf0000, 0x10000, 2),
        e(0x100000, 0x7ee0000, 1),
        e(0x7fe0000, 0x20000, 2),
    ];

    #[test]
    fn an_e820_entry_converts_field_by_field() {
        let mut raw = [0u8; 24];
        raw[..8].copy_from_slice(&0x10_0000u64.to_le_bytes());
        raw[8..16].copy_from_slice(&0x7ee_0000u64.to_le_bytes());
        raw[16..20].copy_from_slice(&2u32.to_le_bytes());
        raw[20] = 1;
        assert_eq!(Region::from_e820(&raw), e(0x10_0000, 0x7ee_0000, 2));
    }

    #[test]
    fn lower_and_upper_memory() {
        assert_eq!(mem_lower_kib(&QEMU_128M), 639);
        assert_eq!(mem_upper_kib(&QEMU_128M), (0x7fe0000 - 0x100000) / 1024);
    }

    #[test]
    fn upper_memory_saturates_below_4g() {
        let map = [e(0, 0x9fc00, 1), e(0x100000, 0x2_0000_0000, 1)];
        assert_eq!(mem_upper_kib(&map), ((1u64 << 32) - 0x100000) as u32 / 1024);
    }

    #[test]
    fn unordered_and_adjacent_entries_join() {
        let map = [e(0x200000, 0x100000, 1), e(0x100000, 0x100000, 1)];
        assert_eq!(mem_upper_kib(&map), 2048);
        assert!(is_usable(&map, 0x100000, 0x300000));
        assert!(!is_usable(&map, 0x100000, 0x300001));
    }

    #[test]
    fn reserved_overlap_cuts_usable() {
        let map = [e(0x100000, 0x1000000, 1), e(0x800000, 0x1000, 2)];
        assert_eq!(mem_upper_kib(&map), 7 * 1024);
        assert!(!is_usable(&map, 0x700000, 0x900000));
        assert!(is_usable(&map, 0x900000, 0xa00000));
    }

    #[test]
    fn no_memory_at_one_mib() {
        let map = [e(0, 0x9fc00, 1)];
        assert_eq!(mem_upper_kib(&map), 0);
        assert!(!is_usable(&map, 0x100000, 0x100001));
    }
}
