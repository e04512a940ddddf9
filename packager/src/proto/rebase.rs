//! Where a relocatable Multiboot 2 image goes (header tag 10), GRUB's way.
//!
//! A kernel whose Multiboot 2 header has the relocatable tag says the
//! loader may load its whole image (every segment, at the same distances
//! from one another) at another base address: at or above `min_addr`,
//! ending at or below `max_addr`, the base a multiple of `align`, and as
//! low (preference 1) or as high (2) as possible. GRUB 2.06
//! (grub-core/loader/multiboot_elfxx.c and multiboot_mbi2.c) always
//! relocates such a kernel: it takes one chunk of the image's span (lowest
//! segment start to highest segment end) through
//! `grub_relocator_alloc_chunk_align_safe` (grub-core/lib/relocator.c),
//! which under UEFI first looks for the span in conventional memory below
//! 4 GiB, lowest first unless the preference is "high" (so "none" behaves
//! as "low"), and only if nothing fits there falls back to memory the
//! firmware frees at ExitBootServices (boot-services memory left out for
//! kernels that keep boot services). Every segment then moves by `load
//! base - link base`, the entry (the EFI amd64 entry included) too, and
//! the information's tag 21 carries the load base.
//!
//! [`choose`] is that search over a free-memory map (for UEFI:
//! [`super::efimap::free_now`], then [`super::efimap::free_later`]); the
//! loader applies the result with [`Shift`].
//!
//! Two deliberate differences from GRUB 2.06: the image ends at or below
//! `max_addr` as the specification says (GRUB's first attempt passes
//! `max_addr - size` as the end limit, so the image ends `size` lower
//! there), and it never starts in page 0 (the UEFI loader never takes page
//! 0; nothing else can be there).

use super::efimap::EFI_PAGE;
use super::layout::KERNEL_CEILING;
use super::mb2_header::Relocatable;
use super::memory::{Region, USABLE};

/// The header's "lowest possible address" preference.
pub const PREFER_LOW: u32 = 1;
/// The header's "highest possible address" preference.
pub const PREFER_HIGH: u32 = 2;

/// Why no load base was found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NoBase {
    /// The header's range cannot hold the image at all: `size` bytes do
    /// not fit between `min_addr` and `max_addr` (GRUB: "invalid min/max
    /// address and/or load size").
    Range { size: u64, min: u64, max: u64 },
    /// No free memory holds `size` bytes at a multiple of `align` between
    /// `min` and `max` (GRUB: "couldn't find suitable memory target").
    NoFit {
        size: u64,
        min: u64,
        max: u64,
        align: u64,
    },
}

/// The image's span at its link addresses: `[start, end)`, from the lowest
/// segment start to the highest segment end.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Span {
    pub start: u64,
    pub end: u64,
}

impl Span {
    /// The span of `(dest, end)` ranges, None if there are none.
    pub fn of(ranges: impl Iterator<Item = (u64, u64)>) -> Option<Span> {
        ranges.fold(None, |acc, (s, e)| {
            Some(match acc {
                None => Span { start: s, end: e },
                Some(a) => Span {
                    start: a.start.min(s),
                    end: a.end.max(e),
                },
            })
        })
    }

    /// Bytes from the lowest start to the highest end (at least 1: an
    /// image of empty segments still gets an address).
    pub fn size(&self) -> u64 {
        self.end.saturating_sub(self.start).max(1)
    }
}

fn align_up(x: u64, align: u64) -> Option<u64> {
    x.checked_next_multiple_of(align)
}

fn align_down(x: u64, align: u64) -> u64 {
    x - x % align
}

/// Whether the tag's range can hold the image at all (GRUB 2.06 refuses
/// the kernel otherwise): [`NoBase::Range`] if not. The packager checks
/// it, so that such a kernel is refused when the image is built.
pub fn check_range(span: Span, r: &Relocatable) -> Result<(), NoBase> {
    let size = span.size();
    let (min, max) = (u64::from(r.min_addr), u64::from(r.max_addr));
    if size > max || min > max - size {
        return Err(NoBase::Range { size, min, max });
    }
    Ok(())
}

/// The load base for an image spanning `span` per the relocatable tag `r`,
/// in the usable (type 1) regions of `free` (sorted or not, but adjacent
/// free memory in one entry, as [`super::efimap`] gives it): the lowest
/// (or, with preference "high", the highest) multiple of `align` (0 counts
/// as 1) at or above `min_addr` and page 1 where the whole span lies in
/// one free region below 4 GiB and ends at or below `max_addr`.
pub fn choose(span: Span, r: &Relocatable, free: &[Region]) -> Result<u64, NoBase> {
    check_range(span, r)?;
    let size = span.size();
    let (min, max) = (u64::from(r.min_addr), u64::from(r.max_addr));
    let align = u64::from(r.align).max(1);
    let high = r.preference == PREFER_HIGH;
    let floor = min.max(EFI_PAGE);
    let ceiling = max.min(KERNEL_CEILING);
    let mut best: Option<u64> = None;
    for region in free.iter().filter(|f| f.kind == USABLE) {
        let lo = region.base.max(floor);
        let hi = region.end().min(ceiling);
        if hi < lo || hi - lo < size {
            continue;
        }
        let candidate = if high {
            Some(align_down(hi - size, align)).filter(|&c| c >= lo)
        } else {
            align_up(lo, align).filter(|&c| c <= hi - size)
        };
        if let Some(c) = candidate {
            best = Some(match best {
                Some(b) if high => b.max(c),
                Some(b) => b.min(c),
                None => c,
            });
        }
    }
    best.ok_or(NoBase::NoFit {
        size,
        min,
        max,
        align,
    })
}

/// The move from link addresses to load addresses: every segment, the
/// entries and the load base move by the same distance.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shift {
    /// `load base - link base`, modulo 2^64.
    delta: u64,
}

impl Shift {
    /// No move: the image loads at its link addresses.
    pub const NONE: Shift = Shift { delta: 0 };

    /// The move that puts `link_base` at `load_base`.
    pub fn new(link_base: u64, load_base: u64) -> Shift {
        Shift {
            delta: load_base.wrapping_sub(link_base),
        }
    }

    /// Where link address `addr` is loaded.
    pub fn at(&self, addr: u64) -> u64 {
        addr.wrapping_add(self.delta)
    }

    /// A 32-bit link address (an entry, the load base) moved; the caller
    /// keeps the image below 4 GiB ([`choose`] does).
    pub fn at32(&self, addr: u32) -> u32 {
        self.at(u64::from(addr)) as u32
    }

    /// Whether the image moves at all.
    pub fn moves(&self) -> bool {
        self.delta != 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;

    const fn free(base: u64, len: u64) -> Region {
        Region {
            base,
            len,
            kind: USABLE,
        }
    }

    const fn held(base: u64, len: u64) -> Region {
        Region { base, len, kind: 2 }
    }

    fn tag(min: u32, max: u32, align: u32, preference: u32) -> Relocatable {
        Relocatable {
            min_addr: min,
            max_addr: max,
            align,
            preference,
        }
    }

    /// A 3 MiB image linked at 2 MiB.
    const SPAN: Span = Span {
        start: 2 * MIB,
        end: 5 * MIB,
    };

    /// Free: 1-8 MiB, 16-64 MiB, 100-200 MiB (with a hole at 8-16 MiB and
    /// 64-100 MiB), unsorted.
    const MAP: [Region; 5] = [
        free(100 * MIB, 100 * MIB),
        held(0, MIB),
        free(MIB, 7 * MIB),
        held(8 * MIB, 8 * MIB),
        free(16 * MIB, 48 * MIB),
    ];

    #[test]
    fn low_takes_the_lowest_aligned_fit() {
        let r = tag(0, u32::MAX, 0x20_0000, PREFER_LOW);
        assert_eq!(choose(SPAN, &r, &MAP), Ok(2 * MIB));
        // Above min_addr, rounded up to the alignment.
        let r = tag((5 * MIB + 1) as u32, u32::MAX, 0x20_0000, PREFER_LOW);
        // 6 MiB + 3 MiB > 8 MiB: the next region, 16 MiB.
        assert_eq!(choose(SPAN, &r, &MAP), Ok(16 * MIB));
    }

    #[test]
    fn none_behaves_as_low_like_grub() {
        for pref in [0, 3, 77] {
            let r = tag(0, u32::MAX, 0x1000, pref);
            // Page 0 is never used; 1 MiB is the first free byte.
            assert_eq!(choose(SPAN, &r, &MAP), Ok(MIB), "preference {pref}");
        }
    }

    #[test]
    fn high_takes_the_highest_aligned_fit_below_max() {
        let r = tag(0x20_0000, u32::MAX, 0x20_0000, PREFER_HIGH);
        // The top region ends at 200 MiB: 197 MiB rounded down to 2 MiB.
        assert_eq!(choose(SPAN, &r, &MAP), Ok(196 * MIB));
        // max_addr is where the image may end at the latest.
        let r = tag(0, (60 * MIB) as u32, 0x10_0000, PREFER_HIGH);
        assert_eq!(choose(SPAN, &r, &MAP), Ok(57 * MIB));
        let r = tag(0, (60 * MIB - 1) as u32, 0x10_0000, PREFER_HIGH);
        assert_eq!(choose(SPAN, &r, &MAP), Ok(56 * MIB));
    }

    #[test]
    fn alignment_that_is_not_a_power_of_two_still_holds() {
        let r = tag(0, u32::MAX, 3 * MIB as u32, PREFER_LOW);
        assert_eq!(choose(SPAN, &r, &MAP), Ok(3 * MIB));
        let r = tag(0, u32::MAX, 3 * MIB as u32, PREFER_HIGH);
        assert_eq!(choose(SPAN, &r, &MAP), Ok(195 * MIB));
    }

    #[test]
    fn bounds_that_cannot_hold_the_image_are_refused() {
        let r = tag(0, (2 * MIB) as u32, 1, PREFER_LOW);
        assert_eq!(
            choose(SPAN, &r, &MAP),
            Err(NoBase::Range {
                size: 3 * MIB,
                min: 0,
                max: 2 * MIB
            })
        );
        let r = tag((10 * MIB) as u32, (12 * MIB) as u32, 1, PREFER_LOW);
        assert!(matches!(choose(SPAN, &r, &MAP), Err(NoBase::Range { .. })));
    }

    #[test]
    fn nothing_fits_says_so() {
        // Only the hole at 8-16 MiB is inside the bounds.
        let r = tag((8 * MIB) as u32, (16 * MIB) as u32, 0x1000, PREFER_LOW);
        assert_eq!(
            choose(SPAN, &r, &MAP),
            Err(NoBase::NoFit {
                size: 3 * MIB,
                min: 8 * MIB,
                max: 16 * MIB,
                align: 0x1000
            })
        );
        // Free memory too small everywhere.
        let small = [free(MIB, 2 * MIB), free(4 * MIB, 2 * MIB)];
        let r = tag(0, u32::MAX, 1, PREFER_HIGH);
        assert!(matches!(
            choose(SPAN, &r, &small),
            Err(NoBase::NoFit { .. })
        ));
        // An alignment that leaves no aligned start inside a free region.
        let r = tag(0, u32::MAX, (64 * MIB) as u32, PREFER_LOW);
        let map = [free(MIB, 60 * MIB), free(65 * MIB, 60 * MIB)];
        assert!(matches!(choose(SPAN, &r, &map), Err(NoBase::NoFit { .. })));
    }

    #[test]
    fn never_at_or_above_4_gib() {
        let map = [free(0xFFF0_0000, 0x20_0000), free(0x1_0000_0000, 64 * MIB)];
        let r = tag(0, u32::MAX, 0x1000, PREFER_HIGH);
        let span = Span {
            start: 0,
            end: 0x8_0000,
        };
        let base = choose(span, &r, &map).unwrap();
        assert_eq!(base, 0xFFF7_F000);
        assert!(base + span.size() <= u64::from(u32::MAX));
    }

    #[test]
    fn span_and_shift() {
        let span = Span::of([(0x30_0000, 0x30_1000), (0x20_0000, 0x28_0000)].into_iter());
        assert_eq!(
            span,
            Some(Span {
                start: 0x20_0000,
                end: 0x30_1000
            })
        );
        assert_eq!(Span::of(core::iter::empty()), None);
        let up = Shift::new(0x20_0000, 0x1_0000_0000 - 0x40_0000);
        assert_eq!(up.at32(0x20_0120), 0xFFC0_0120);
        assert!(up.moves());
        let down = Shift::new(0x100_0000, 0x20_0000);
        assert_eq!(down.at(0x100_0040), 0x20_0040);
        assert_eq!(down.at32(0x100_0040), 0x20_0040);
        assert!(!Shift::NONE.moves());
        assert_eq!(Shift::NONE.at(0x1234), 0x1234);
    }
}
