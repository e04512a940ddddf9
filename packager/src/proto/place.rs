//! Where modules go in memory: decided at boot, because it depends on the
//! machine's memory map.
//!
//! The rule (GRUB's, simplified): modules are placed in the order given,
//! each at the lowest page-aligned address that is at or above the end of
//! the previous one (the first: at or above `floor`, the kernel's end), lies
//! wholly in usable RAM per the E820 map, overlaps none of the `avoid`
//! ranges, and ends at or below 4 GiB (Multiboot addresses are 32 bits).

use super::layout::KERNEL_CEILING;
use super::memory::{is_usable, Region, USABLE};

/// Modules start on page boundaries (Multiboot 1 header flag bit 0,
/// Multiboot 2 module alignment tag): bootpack always aligns them.
pub const MODULE_ALIGN: u64 = 0x1000;

/// Module `index` of `size` bytes finds no room below 4 GiB.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NoRoom {
    pub index: usize,
    pub size: u64,
    /// Where the search for it started.
    pub from: u64,
}

fn align_up(x: u64, align: u64) -> Option<u64> {
    Some(x.checked_add(align - 1)? & !(align - 1))
}

/// The lowest boundary in the map above `at`: the next place where
/// usability can change.
fn next_boundary(map: &[Region], at: u64) -> Option<u64> {
    map.iter()
        .filter(|e| e.len > 0)
        .flat_map(|e| [e.base, e.end()])
        .filter(|&b| b > at)
        .min()
}

/// The lowest address >= `from`, a multiple of `align` (a power of two),
/// where `size` bytes lie wholly in usable RAM, end at or below `ceiling`
/// and clash with nothing: `clash(start, end)` returns the end of the
/// furthest-reaching occupied range overlapping `[start, end)`, or None.
pub fn place_in(
    map: &[Region],
    from: u64,
    size: u64,
    align: u64,
    ceiling: u64,
    clash: impl Fn(u64, u64) -> Option<u64>,
) -> Option<u64> {
    let mut at = align_up(from, align)?;
    loop {
        let end = at.checked_add(size)?;
        if end > ceiling {
            return None;
        }
        // A range of size 0 still gets an address inside usable RAM.
        let probe_end = end.max(at + 1);
        let candidate = match clash(at, probe_end) {
            Some(e) => e,
            None if is_usable(map, at, probe_end) => return Some(at),
            // Somewhere in [at, end) usability ends; no start before the
            // next boundary of the map can do better.
            None => next_boundary(map, at)?,
        };
        at = align_up(candidate.max(at + 1), align)?;
    }
}

/// The end of the furthest-reaching range in `ranges` that overlaps
/// `[start, end)`.
pub fn clash_with(ranges: &[(u64, u64)], start: u64, end: u64) -> Option<u64> {
    ranges
        .iter()
        .filter(|&&(s, e)| s < end && start < e)
        .map(|&(_, e)| e)
        .max()
}

/// Places one block of `size` bytes at the lowest aligned address >= `from`.
fn place_one(map: &[Region], avoid: &[(u64, u64)], from: u64, size: u64) -> Option<u64> {
    place_in(map, from, size, MODULE_ALIGN, KERNEL_CEILING, |s, e| {
        clash_with(avoid, s, e)
    })
}

/// Places modules of the given `sizes` in order; writes their start
/// addresses to `out` (which must be at least as long as `sizes`).
pub fn place_modules(
    map: &[Region],
    avoid: &[(u64, u64)],
    floor: u64,
    sizes: &[u64],
    out: &mut [u64],
) -> Result<(), NoRoom> {
    let mut from = floor;
    for (index, &size) in sizes.iter().enumerate() {
        let at = place_one(map, avoid, from, size).ok_or(NoRoom { index, size, from })?;
        out[index] = at;
        from = at + size;
    }
    Ok(())
}

/// Bytes of usable RAM below 4 GiB in the map (for messages).
pub fn usable_below_4g(map: &[Region]) -> u64 {
    map.iter()
        .filter(|e| e.kind == USABLE)
        .map(|e| e.end().min(KERNEL_CEILING).saturating_sub(e.base))
        .sum()
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use std::{vec, vec::Vec};

    const fn e(base: u64, len: u64, kind: u32) -> Region {
        Region { base, len, kind }
    }

    /// SeaBIOS on `pc` with 6 GiB: a hole from 3 GiB to 4 GiB.
    const PC_6G: [Region; 6] = [
        e(0, 0x9fc00, 1),
        e(0x9fc00, 0x400, 2),
        e(0xf0000, 0x10000, 2),
        e(0x100000, 0xbfee0000, 1),
        e(0xbffe0000, 0x20000, 2),
        e(0x1_0000_0000, 0xc000_0000, 1),
    ];

    fn place(map: &[Region], avoid: &[(u64, u64)], floor: u64, sizes: &[u64]) -> Vec<u64> {
        let mut out = vec![0; sizes.len()];
        place_modules(map, avoid, floor, sizes, &mut out).unwrap();
        out
    }

    #[test]
    fn page_aligned_in_order_after_the_kernel() {
        let got = place(&PC_6G, &[], 0x123456, &[10, 0x1000, 0, 0x2001, 5]);
        assert_eq!(got, [0x124000, 0x125000, 0x126000, 0x126000, 0x129000]);
    }

    #[test]
    fn skips_reserved_ranges_and_holes() {
        let map = [
            e(0x100000, 0x100000, 1),
            e(0x200000, 0x1000, 2),
            e(0x201000, 0x7000, 1),
            e(0x300000, 0x1000000, 1),
        ];
        // 0x1800 bytes fit before the reserved page, 0x8000 only after the
        // hole at 0x208000.
        let got = place(&map, &[], 0x1fe000, &[0x1800, 0x8000, 0x10]);
        assert_eq!(got, [0x1fe000, 0x300000, 0x308000]);
    }

    #[test]
    fn avoids_given_ranges() {
        let got = place(&PC_6G, &[(0x200000, 0x200100)], 0x1ff000, &[0x2000]);
        assert_eq!(got, [0x201000]);
    }

    #[test]
    fn modules_of_a_kernel_below_1_mib_avoid_the_loader() {
        // Stage 2 passes its own memory as a range to avoid: modules of a
        // kernel ending at 0x30000 go after it, not over stage 2.
        // The BIOS loader's memory (its memory plan's LOADER_MEMORY).
        let avoid = [(0x500, 0x9_0000)];
        let got = place(&PC_6G, &avoid, 0x30000, &[0x8000, 0x10000]);
        assert_eq!(got, [0x90000, 0x100000]);
    }

    #[test]
    fn never_above_4g() {
        // Room only above 4 GiB: refused.
        let mut out = [0];
        assert_eq!(
            place_modules(&PC_6G, &[], 0xbf000000, &[0x2000000], &mut out),
            Err(NoRoom {
                index: 0,
                size: 0x2000000,
                from: 0xbf000000
            })
        );
        // The last page below the hole still works.
        assert_eq!(place(&PC_6G, &[], 0xbffdf000, &[0x1000]), [0xbffdf000]);
        let map = [e(0x100000, 0x1_0000_0000, 1)];
        assert_eq!(place(&map, &[], 0xffff_f000, &[0x1000]), [0xffff_f000]);
        assert!(place_modules(&map, &[], 0xffff_f000, &[0x1001], &mut out).is_err());
    }

    #[test]
    fn reports_which_module_does_not_fit() {
        let map = [e(0x100000, 0x400000, 1)];
        let mut out = [0; 3];
        let r = place_modules(&map, &[], 0x200000, &[0x100000, 0x200000, 1], &mut out);
        assert_eq!(
            r,
            Err(NoRoom {
                index: 2,
                size: 1,
                from: 0x500000
            })
        );
        assert_eq!(usable_below_4g(&map), 0x400000);
        assert_eq!(usable_below_4g(&PC_6G), 0x9fc00 + 0xbfee0000);
    }
}
