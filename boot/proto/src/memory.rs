//! The BIOS memory map (INT 15h, EAX=E820h) and what is derived from it.
//!
//! Entries are kept exactly as the BIOS returned them, in its order: Solo5
//! needs an entry starting at exactly 1 MiB, and merging or splitting
//! entries could break that.

/// One E820 entry as the BIOS gave it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct E820Entry {
    pub base: u64,
    pub len: u64,
    pub kind: u32,
}

/// Type 1: RAM the OS may use.
pub const USABLE: u32 = 1;

impl E820Entry {
    pub fn end(&self) -> u64 {
        self.base.saturating_add(self.len)
    }
}

/// Follows usable entries from `start` for as long as they cover it
/// contiguously (in whatever order the BIOS listed them) and returns where
/// that run ends. Entries of other types that overlap end the run: reserved
/// wins over usable.
fn usable_run_end(map: &[E820Entry], start: u64) -> u64 {
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
pub fn mem_lower_kib(map: &[E820Entry]) -> u32 {
    (usable_run_end(map, 0).min(640 * 1024) / 1024) as u32
}

/// Multiboot `mem_upper`: KiB of usable memory from 1 MiB up to the first
/// hole, capped so that it fits 32 bits (it saturates at 4 GiB - 1 MiB, the
/// most a 32-bit address space holds above 1 MiB).
pub fn mem_upper_kib(map: &[E820Entry]) -> u32 {
    let end = usable_run_end(map, 0x10_0000).min(0x1_0000_0000);
    ((end - 0x10_0000) / 1024) as u32
}

/// Whether `[start, end)` lies entirely in usable memory and overlaps no
/// non-usable entry.
pub fn is_usable(map: &[E820Entry], start: u64, end: u64) -> bool {
    start >= end || usable_run_end(map, start) >= end
}

#[cfg(test)]
mod tests {
    use super::*;

    const fn e(base: u64, len: u64, kind: u32) -> E820Entry {
        E820Entry { base, len, kind }
    }

    /// What SeaBIOS reports for `-m 128M` on the `pc` machine.
    const QEMU_128M: [E820Entry; 5] = [
        e(0, 0x9fc00, 1),
        e(0x9fc00, 0x400, 2),
        e(0xf0000, 0x10000, 2),
        e(0x100000, 0x7ee0000, 1),
        e(0x7fe0000, 0x20000, 2),
    ];

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
