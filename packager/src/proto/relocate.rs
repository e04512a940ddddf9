//! Kernels that load over the loader's own memory: where their segments
//! are staged, where the Multiboot information and the final trampoline
//! go, and the trampoline block's format.
//!
//! A kernel may load anywhere from [`super::layout::KERNEL_FLOOR`] up that the
//! firmware reports usable, including over the loader's code, stack, page
//! tables, buffers and information arena (its own memory, which each
//! loader passes in; for the BIOS stage 2 its memory plan's
//! LOADER_MEMORY; e.g. kernels linked at
//! 0x8000 or 0x9000). As GRUB's relocator and Limine do, such segments are
//! read (and checksummed) into a staging area in free usable RAM instead;
//! the information and modules go where no segment lies; and the very last
//! step, after stage 2 has left long mode, is a small position-independent
//! routine (asm/handoff.s `bootpack_trampoline`) in a block of its own that
//! moves the staged bytes into place, zeroes the bss behind them and jumps
//! to the kernel. Kernels clear of the loader's memory (with the BIOS
//! loader, everything at 1 MiB and above) stage nothing: no staging, the
//! information at the loader's arena, no trampoline.
//!
//! Every placement is the lowest address that fits ([`place_in`]), which
//! keeps the information below 1 MiB whenever there is room (it must stay
//! below [`INFO_CEILING`] and out of page 0 for Solo5).

use super::layout::{INFO_CEILING, KERNEL_CEILING};
use super::le;
use super::memory::Region;
use super::place::{clash_with, place_in};
use super::record::Segment;

/// Staged copies start on the same offset within a page as their
/// destination, so the read path sees the same alignment as for a direct
/// load.
const STAGE_ALIGN: u64 = 0x1000;
/// Relocated information is page-aligned (8 would do for Multiboot 2).
const INFO_ALIGN: u64 = 0x1000;
/// Nothing is placed in page 0 (Solo5's NULL guard).
const PLACE_FROM: u64 = 0x1000;

/// Trampoline block layout (asm/handoff.s hard-codes these offsets).
pub const TRAMPOLINE_GDT: usize = 0;
/// The GDT copy: null, 0x08 code, 0x10 data.
pub const TRAMPOLINE_GDT_LEN: usize = 24;
/// lgdt operand: limit u16, base u32.
pub const TRAMPOLINE_GDTR: usize = 24;
pub const TRAMPOLINE_ENTRY: usize = 32;
pub const TRAMPOLINE_INFO: usize = 36;
pub const TRAMPOLINE_MAGIC: usize = 40;
pub const TRAMPOLINE_COUNT: usize = 44;
/// Physical address of the move table.
pub const TRAMPOLINE_MOVES: usize = 48;
/// Where the code is copied; the handoff jumps to block + this.
pub const TRAMPOLINE_CODE: usize = 64;
/// Bytes per move: destination, source, bytes to copy, bytes to zero after
/// them (u32 each).
pub const MOVE_LEN: usize = 16;

/// Whether `[a0, a1)` and `[b0, b1)` overlap.
fn overlaps(a0: u64, a1: u64, b0: u64, b1: u64) -> bool {
    a0 < b1 && b0 < a1
}

fn align_up(x: u64, align: u64) -> u64 {
    (x + align - 1) & !(align - 1)
}

/// Whether segment `s` lies over the loader's memory `own` and so must be
/// staged. `own` is `[start, end)` of what the loader keeps for itself
/// below the kernel while it loads (the BIOS stage 2: its memory plan's
/// LOADER_MEMORY, boot/bios/src/memplan.rs); nothing else is placed
/// there either ([`Occupied::own`]).
pub fn needs_staging(s: &Segment, own: (u64, u64)) -> bool {
    s.mem_size > 0 && overlaps(s.dest, s.end(), own.0, own.1)
}

/// Hands out staging addresses, in segment order, from a page-aligned base:
/// each staged segment's file bytes at the next address with its
/// destination's offset within a page. Its bss is not staged; the
/// trampoline zeroes it in place.
#[derive(Clone, Copy, Debug)]
pub struct Stager {
    cursor: u64,
    own: (u64, u64),
}

impl Stager {
    /// Stages segments over `own` (the loader's memory) from `base` on.
    pub fn new(base: u64, own: (u64, u64)) -> Self {
        Stager { cursor: base, own }
    }

    /// Where `s`'s bytes are staged, or None if it loads in place.
    pub fn next(&mut self, s: &Segment) -> Option<u64> {
        if !needs_staging(s, self.own) {
            return None;
        }
        let at = align_up(self.cursor, STAGE_ALIGN) + (s.dest & (STAGE_ALIGN - 1));
        self.cursor = at + s.file_size;
        Some(at)
    }
}

/// Bytes of staging area the segments need (0: nothing is staged), and how
/// many segments are staged, for a loader whose memory is `own`.
pub fn staging_need(segments: impl Iterator<Item = Segment>, own: (u64, u64)) -> (u64, usize) {
    let mut st = Stager::new(0, own);
    let mut count = 0;
    for s in segments {
        if st.next(&s).is_some() {
            count += 1;
        }
    }
    (st.cursor, count)
}

/// What is occupied while the loader places things: its own memory, the
/// kernel's segments (where they will finally lie), the modules and any
/// other ranges already placed (staging area, information).
#[derive(Clone, Copy, Debug)]
pub struct Occupied<'a, I> {
    pub segments: I,
    pub modules: &'a [(u64, u64)],
    pub placed: &'a [(u64, u64)],
    /// The loader's own memory (see [`needs_staging`]).
    pub own: (u64, u64),
}

impl<I: Iterator<Item = Segment> + Clone> Occupied<'_, I> {
    /// The end of the furthest-reaching occupied range overlapping
    /// `[start, end)`, stage 2's memory included or not.
    fn clash(&self, start: u64, end: u64, loader: bool) -> Option<u64> {
        let segs = self
            .segments
            .clone()
            .filter(|s| s.mem_size > 0 && overlaps(s.dest, s.end(), start, end))
            .map(|s| s.end())
            .max();
        let own = (loader && overlaps(start, end, self.own.0, self.own.1)).then_some(self.own.1);
        [
            segs,
            own,
            clash_with(self.modules, start, end),
            clash_with(self.placed, start, end),
        ]
        .into_iter()
        .flatten()
        .max()
    }

    /// The lowest `len` bytes clear of everything, stage 2's memory
    /// included, below `ceiling`.
    fn find(&self, map: &[Region], len: u64, align: u64, ceiling: u64) -> Option<u64> {
        place_in(map, PLACE_FROM, len, align, ceiling, |s, e| {
            self.clash(s, e, true)
        })
    }
}

/// Where the staging area of `len` bytes goes: usable RAM below 4 GiB (the
/// identity map) clear of stage 2, the segments and the modules (`placed`
/// is ignored). None if there is no room.
pub fn place_staging<I: Iterator<Item = Segment> + Clone>(
    map: &[Region],
    occupied: &Occupied<I>,
    len: u64,
) -> Option<u64> {
    occupied.find(map, len, STAGE_ALIGN, KERNEL_CEILING)
}

/// Where `len` bytes of Multiboot information go: the loader's information
/// arena `arena` as always if no segment, module or placed range lies
/// there (the loader keeps the arena for it); otherwise the lowest usable RAM from 0x1000 up clear
/// of everything, ending below [`INFO_CEILING`]. None if there is no room.
pub fn place_info<I: Iterator<Item = Segment> + Clone>(
    map: &[Region],
    occupied: &Occupied<I>,
    len: u64,
    arena: u64,
) -> Option<u64> {
    if occupied.clash(arena, arena + len.max(1), false).is_none() {
        return Some(arena);
    }
    occupied.find(map, len, INFO_ALIGN, INFO_CEILING)
}

/// Bytes of the trampoline block for `code_len` bytes of code and `moves`
/// moves.
pub fn trampoline_len(code_len: usize, moves: usize) -> usize {
    moves_offset(code_len) + moves * MOVE_LEN
}

fn moves_offset(code_len: usize) -> usize {
    (TRAMPOLINE_CODE + code_len + 15) & !15
}

/// Where the trampoline block of `len` bytes goes: usable RAM below 4 GiB
/// clear of everything (stage 2 writes it while it still runs; the moves
/// must not overwrite it). None if there is no room.
pub fn place_trampoline<I: Iterator<Item = Segment> + Clone>(
    map: &[Region],
    occupied: &Occupied<I>,
    len: u64,
) -> Option<u64> {
    occupied.find(map, len, 16, KERNEL_CEILING)
}

/// One move of the trampoline: `len` bytes from `src` to `dst` (memmove),
/// then `zero` bytes zeroed after them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Move {
    pub dst: u32,
    pub src: u32,
    pub len: u32,
    pub zero: u32,
}

/// The moves for the segments over `own` staged from `staging` on, in
/// segment order. Every address is below 4 GiB (Record::parse,
/// place_staging).
pub fn moves(
    segments: impl Iterator<Item = Segment>,
    staging: u64,
    own: (u64, u64),
) -> impl Iterator<Item = Move> {
    let mut st = Stager::new(staging, own);
    segments.filter_map(move |s| {
        st.next(&s).map(|src| Move {
            dst: s.dest as u32,
            src: src as u32,
            len: s.file_size as u32,
            zero: (s.mem_size - s.file_size) as u32,
        })
    })
}

/// What goes into a trampoline block.
#[derive(Clone, Copy, Debug)]
pub struct Trampoline<'a> {
    /// The handoff GDT (boot/handoff `bootpack_handoff_gdt`).
    pub gdt: &'a [u8; TRAMPOLINE_GDT_LEN],
    /// `bootpack_trampoline`'s bytes.
    pub code: &'a [u8],
    pub entry: u32,
    pub info: u32,
    pub magic: u32,
}

/// Writes the trampoline block into `block` (exactly [`trampoline_len`]
/// bytes), which lies at physical `base`.
pub fn write_trampoline(
    block: &mut [u8],
    base: u32,
    t: &Trampoline,
    moves: impl Iterator<Item = Move>,
) {
    let table = moves_offset(t.code.len());
    block[..table].fill(0);
    block[TRAMPOLINE_GDT..TRAMPOLINE_GDT + TRAMPOLINE_GDT_LEN].copy_from_slice(t.gdt);
    le::put_u16(block, TRAMPOLINE_GDTR, TRAMPOLINE_GDT_LEN as u16 - 1);
    le::put_u32(block, TRAMPOLINE_GDTR + 2, base + TRAMPOLINE_GDT as u32);
    le::put_u32(block, TRAMPOLINE_ENTRY, t.entry);
    le::put_u32(block, TRAMPOLINE_INFO, t.info);
    le::put_u32(block, TRAMPOLINE_MAGIC, t.magic);
    le::put_u32(block, TRAMPOLINE_MOVES, base + table as u32);
    block[TRAMPOLINE_CODE..TRAMPOLINE_CODE + t.code.len()].copy_from_slice(t.code);
    let mut count = 0u32;
    for (i, m) in moves.enumerate() {
        let o = table + i * MOVE_LEN;
        le::put_u32(block, o, m.dst);
        le::put_u32(block, o + 4, m.src);
        le::put_u32(block, o + 8, m.len);
        le::put_u32(block, o + 12, m.zero);
        count += 1;
    }
    le::put_u32(block, TRAMPOLINE_COUNT, count);
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use std::vec;
    use std::vec::Vec;

    const fn e(base: u64, len: u64, kind: u32) -> Region {
        Region { base, len, kind }
    }

    /// SeaBIOS, `pc`, 128 MiB: 0-0x9FBFF usable, the EBDA after it.
    const PC_128M: [Region; 5] = [
        e(0, 0x9fc00, 1),
        e(0x9fc00, 0x400, 2),
        e(0xf0000, 0x10000, 2),
        e(0x100000, 0x7ee0000, 1),
        e(0x7fe0000, 0x20000, 2),
    ];

    const fn seg(dest: u64, file_size: u64, mem_size: u64) -> Segment {
        Segment {
            dest,
            file_size,
            mem_size,
            data_sector: 0,
        }
    }

    /// The BIOS loader's memory and information arena (its memory plan).
    const BIOS: (u64, u64) = (0x500, 0x9_0000);
    const INFO_ARENA_ADDR: u64 = 0x50000;

    fn occ<'a>(
        segs: &'a [Segment],
        modules: &'a [(u64, u64)],
        placed: &'a [(u64, u64)],
    ) -> Occupied<'a, impl Iterator<Item = Segment> + Clone + 'a> {
        Occupied {
            segments: segs.iter().copied(),
            modules,
            placed,
            own: BIOS,
        }
    }

    #[test]
    fn kernels_at_1_mib_and_above_stage_nothing() {
        let segs = [seg(0x100000, 0x5000, 0x8000), seg(0x90000, 0x100, 0x100)];
        assert_eq!(staging_need(segs.iter().copied(), BIOS), (0, 0));
        let o = occ(&segs, &[(0x200000, 0x300000)], &[]);
        assert_eq!(
            place_info(&PC_128M, &o, 0x2000, INFO_ARENA_ADDR),
            Some(INFO_ARENA_ADDR)
        );
        assert_eq!(moves(segs.iter().copied(), 0x123000, BIOS).count(), 0);
    }

    #[test]
    fn segments_over_the_loader_are_staged_with_their_page_offset() {
        let segs = [
            seg(0x8000, 0x1234, 0x2000), // over stage 2
            seg(0x100000, 0x1000, 0x1000),
            seg(0x40010, 0x10, 0x30000), // over the info arena
            seg(0x4ff, 1, 2),            // straddles the floor of the loader's memory
            seg(0x90000, 0x10, 0x10),    // clear of it: loaded in place
        ];
        assert_eq!(
            segs.iter()
                .map(|s| needs_staging(s, BIOS))
                .collect::<Vec<_>>(),
            [true, false, true, true, false]
        );
        let (len, count) = staging_need(segs.iter().copied(), BIOS);
        assert_eq!(count, 3);
        assert_eq!(len, 0x3500);
        let got: Vec<Move> = moves(segs.iter().copied(), 0x200000, BIOS).collect();
        assert_eq!(
            got,
            [
                Move {
                    dst: 0x8000,
                    src: 0x200000,
                    len: 0x1234,
                    zero: 0xdcc
                },
                Move {
                    dst: 0x40010,
                    src: 0x202010,
                    len: 0x10,
                    zero: 0x2fff0
                },
                Move {
                    dst: 0x4ff,
                    src: 0x2034ff,
                    len: 1,
                    zero: 1
                },
            ]
        );
        assert_eq!(0x2034ff + 1 - 0x200000, len);
    }

    #[test]
    fn staging_avoids_the_loader_segments_and_modules() {
        // Kernel at 0x8000-0x30000 with a segment at 1 MiB; a module after.
        let segs = [seg(0x8000, 0x28000, 0x28000), seg(0x100000, 0x1000, 0x1000)];
        let mods = [(0x101000, 0x102000)];
        let o = occ(&segs, &mods, &[]);
        // 0x28000 bytes do not fit in 0x90000-0x9FC00: above the module.
        assert_eq!(place_staging(&PC_128M, &o, 0x28000), Some(0x102000));
        // A small one fits below the EBDA.
        assert_eq!(place_staging(&PC_128M, &o, 0x8000), Some(0x90000));
        // No room at all.
        let tiny = [e(0, 0x9fc00, 1), e(0x100000, 0x2000, 1)];
        assert_eq!(place_staging(&tiny, &o, 0x28000), None);
    }

    #[test]
    fn info_moves_off_the_arena_when_the_kernel_is_there() {
        let segs = [seg(0x40000, 0x40000, 0x40000)];
        let o = occ(&segs, &[], &[(0x90000, 0x98000)]);
        // The arena is the kernel's; 0x90000 is the staging area's: the
        // lowest room left is 0x98000.
        assert_eq!(
            place_info(&PC_128M, &o, 0x3000, INFO_ARENA_ADDR),
            Some(0x98000)
        );
        // Too big for below the EBDA: above 1 MiB.
        assert_eq!(
            place_info(&PC_128M, &o, 0x8000, INFO_ARENA_ADDR),
            Some(0x100000)
        );
        // Never at or above 1 GiB.
        let high = [e(0, 0x90000, 1), e(0x4000_0000, 0x1000_0000, 1)];
        assert_eq!(place_info(&high, &o, 0x3000, INFO_ARENA_ADDR), None);
    }

    #[test]
    fn trampoline_block_layout() {
        let gdt = [7u8; 24];
        let code = [0x90u8; 21];
        let len = trampoline_len(code.len(), 2);
        assert_eq!(len, 96 + 32);
        let mut block = vec![0xAAu8; len];
        let ms = [
            Move {
                dst: 0x8000,
                src: 0x90000,
                len: 0x100,
                zero: 0x10,
            },
            Move {
                dst: 0x9000,
                src: 0x91000,
                len: 3,
                zero: 0,
            },
        ];
        let t = Trampoline {
            gdt: &gdt,
            code: &code,
            entry: 0x9000,
            info: 0x98000,
            magic: 0x2BADB002,
        };
        write_trampoline(&mut block, 0x9f000, &t, ms.iter().copied());
        assert_eq!(&block[..24], &gdt);
        assert_eq!(le::u16(&block, 24), 23);
        assert_eq!(le::u32(&block, 26), 0x9f000);
        assert_eq!(le::u32(&block, 32), 0x9000);
        assert_eq!(le::u32(&block, 36), 0x98000);
        assert_eq!(le::u32(&block, 40), 0x2BADB002);
        assert_eq!(le::u32(&block, 44), 2);
        assert_eq!(le::u32(&block, 48), 0x9f000 + 96);
        assert_eq!(&block[64..85], &code);
        assert_eq!(le::u32(&block, 96), 0x8000);
        assert_eq!(le::u32(&block, 100), 0x90000);
        assert_eq!(le::u32(&block, 104), 0x100);
        assert_eq!(le::u32(&block, 108), 0x10);
        assert_eq!(le::u32(&block, 112 + 8), 3);
        // The trampoline goes clear of everything, the loader included.
        let segs = [seg(0x8000, 0x100, 0x200)];
        let o = occ(&segs, &[], &[(0x90000, 0x9e000)]);
        assert_eq!(place_trampoline(&PC_128M, &o, len as u64), Some(0x9e000));
    }
}
