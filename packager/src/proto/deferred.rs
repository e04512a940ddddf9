//! Kernel memory a firmware still holds while the loader runs (UEFI boot
//! services memory, free only after ExitBootServices): which bytes of a
//! segment go straight into place and which are staged and moved there by
//! the trampoline after the exit.
//!
//! Only the bytes over held memory are staged, so a large segment that
//! merely starts in held memory (OVMF keeps its decompressed firmware
//! volume at 9-21 MiB, where kernels linked at 16 MiB load) is read
//! mostly in place: staging costs a second copy of every staged byte and
//! memory the loader must find below 4 GiB.

// Staged pieces start and end on sector boundaries of the segment's data
// (or at its end), so each piece is read with whole-sector reads from its
// own first sector.
use super::layout::SECTOR;

/// A run of a segment's file bytes: `len` bytes from byte `offset` of the
/// segment's data (its `dest + offset` in memory), read in place or
/// staged.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Piece {
    pub offset: u64,
    pub len: u64,
    pub staged: bool,
}

/// Splits the file bytes of a segment loaded at `dest` (`file_size` bytes)
/// into pieces, in order, calling `f` for each. `held` lists the ranges
/// `[start, end)` of held memory, sorted and disjoint. A piece touching a
/// held range is staged; it is widened to sector boundaries of the data
/// (the extra bytes are the segment's own, so moving them later is
/// harmless), and staged pieces that then meet are joined. Every other
/// piece starts on a sector boundary and touches no held byte. The pieces
/// cover `[0, file_size)` exactly once.
pub fn file_pieces(dest: u64, file_size: u64, held: &[(u64, u64)], mut f: impl FnMut(Piece)) {
    let end = dest + file_size;
    // Bytes already handed to `f`.
    let mut done = 0u64;
    // Hands `f` the bytes in place up to `s`, then the staged piece [s, e).
    let mut stage = |s: u64, e: u64, done: &mut u64| {
        if s > *done {
            f(Piece {
                offset: *done,
                len: s - *done,
                staged: false,
            });
        }
        f(Piece {
            offset: s,
            len: e - s,
            staged: true,
        });
        *done = e;
    };
    // A staged piece that may still grow: [start, end) in data offsets.
    let mut pending: Option<(u64, u64)> = None;
    for &(a, b) in held {
        let (lo, hi) = (a.max(dest), b.min(end));
        if lo >= hi {
            continue;
        }
        let s = (lo - dest) / SECTOR * SECTOR;
        let e = ((hi - dest).div_ceil(SECTOR) * SECTOR).min(file_size);
        match pending {
            Some((ps, pe)) if s <= pe => pending = Some((ps, pe.max(e))),
            _ => {
                if let Some((ps, pe)) = pending {
                    stage(ps, pe, &mut done);
                }
                pending = Some((s, e));
            }
        }
    }
    if let Some((ps, pe)) = pending {
        stage(ps, pe, &mut done);
    }
    if done < file_size {
        f(Piece {
            offset: done,
            len: file_size - done,
            staged: false,
        });
    }
}

/// Splits the memory `[start, start + len)` (a segment's bss) at the edges
/// of `held` (sorted, disjoint), calling `f(start, len, held)` for each
/// run in order: held runs are zeroed by the trampoline after the exit,
/// the others by the loader now.
pub fn zero_pieces(start: u64, len: u64, held: &[(u64, u64)], mut f: impl FnMut(u64, u64, bool)) {
    let end = start + len;
    let mut at = start;
    for &(a, b) in held {
        let (lo, hi) = (a.max(at), b.min(end));
        if lo >= hi {
            continue;
        }
        if lo > at {
            f(at, lo - at, false);
        }
        f(lo, hi - lo, true);
        at = hi;
    }
    if at < end {
        f(at, end - at, false);
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use std::vec::Vec;

    fn pieces(dest: u64, size: u64, held: &[(u64, u64)]) -> Vec<(u64, u64, bool)> {
        let mut v = Vec::new();
        file_pieces(dest, size, held, |p| v.push((p.offset, p.len, p.staged)));
        // Whatever the split: contiguous, in order, covering the data.
        let mut at = 0;
        for &(o, l, _) in &v {
            assert_eq!(o, at);
            assert!(l > 0);
            at += l;
        }
        assert_eq!(at, size);
        v
    }

    #[test]
    fn untouched_segments_are_one_piece_in_place() {
        assert_eq!(pieces(0x100000, 5000, &[]), [(0, 5000, false)]);
        assert_eq!(
            pieces(0x100000, 5000, &[(0x200000, 0x300000), (0x1000, 0x2000)]),
            [(0, 5000, false)]
        );
    }

    #[test]
    fn a_segment_wholly_held_is_one_staged_piece() {
        assert_eq!(
            pieces(0x1000000, 0x280123, &[(0x820000, 0x1500000)]),
            [(0, 0x280123, true)]
        );
    }

    #[test]
    fn only_the_held_start_of_a_large_segment_is_staged() {
        // OVMF's shape: held up to 21 MiB, a 32 MiB segment from 16 MiB.
        assert_eq!(
            pieces(0x1000000, 0x2000000, &[(0x820000, 0x1500000)]),
            [(0, 0x500000, true), (0x500000, 0x1b00000, false)]
        );
    }

    #[test]
    fn staged_pieces_widen_to_sectors_and_join() {
        // Data at an odd address: the held page's edges fall inside
        // sectors, so the staged piece covers those sectors whole.
        let dest = 0x1000100;
        let v = pieces(dest, 0x10000, &[(0x1002000, 0x1003000)]);
        assert_eq!(
            v,
            [
                (0, 0x1e00, false),
                (0x1e00, 0x1200, true),
                (0x3000, 0xd000, false)
            ]
        );
        // Two held pages one sector apart after widening: one piece.
        let v = pieces(
            dest,
            0x10000,
            &[(0x1002000, 0x1003000), (0x1003100, 0x1004000)],
        );
        assert_eq!(
            v,
            [
                (0, 0x1e00, false),
                (0x1e00, 0x2200, true),
                (0x4000, 0xc000, false)
            ]
        );
        // Held memory over the tail and the head; in-place pieces start
        // on sector boundaries.
        let v = pieces(0x5000, 0x3001, &[(0x4000, 0x5800), (0x7000, 0x9000)]);
        assert_eq!(
            v,
            [
                (0, 0x800, true),
                (0x800, 0x1800, false),
                (0x2000, 0x1001, true)
            ]
        );
        for (o, _, staged) in v {
            assert!(staged || o % SECTOR == 0);
        }
    }

    #[test]
    fn in_place_pieces_touch_no_held_byte() {
        let held = [(0x3000, 0x4000), (0x6000, 0x6800), (0x9000, 0x20000)];
        for dest in [0x1000u64, 0x1234, 0x2ff8, 0x3fff, 0x5a00] {
            for size in [1u64, 0x800, 0x2000, 0x5001, 0x9000] {
                for (o, l, staged) in pieces(dest, size, &held) {
                    let (s, e) = (dest + o, dest + o + l);
                    let touches = held.iter().any(|&(a, b)| a < e && s < b);
                    assert!(staged || !touches, "{dest:#x} {size:#x}: {o:#x}+{l:#x}");
                    assert!(o % SECTOR == 0, "pieces start on sectors");
                }
            }
        }
    }

    #[test]
    fn bss_splits_at_held_edges() {
        let mut v = Vec::new();
        zero_pieces(
            0x1000,
            0x5000,
            &[(0x0, 0x1800), (0x3000, 0x4000)],
            |a, l, h| v.push((a, l, h)),
        );
        assert_eq!(
            v,
            [
                (0x1000, 0x800, true),
                (0x1800, 0x1800, false),
                (0x3000, 0x1000, true),
                (0x4000, 0x2000, false)
            ]
        );
        v.clear();
        zero_pieces(0x1000, 0, &[(0x0, 0x1800)], |a, l, h| v.push((a, l, h)));
        assert!(v.is_empty());
    }
}
