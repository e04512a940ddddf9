//! The last steps: where the Multiboot information goes, and the jump to
//! the kernel (boot/handoff), through the trampoline when segments were
//! staged (bootpack_proto::relocate).

use crate::fail::{fail, Hex, Str};
use crate::memplan::{INFO_ARENA_ADDR, LOADER_MEMORY};
use bootpack_proto::memory::Region;
use bootpack_proto::record::{Record, Segment};
use bootpack_proto::relocate::{self, Occupied, Trampoline, TRAMPOLINE_GDT_LEN};

// The block's GDT copy is the handoff crate's GDT.
const _: () = assert!(bootpack_handoff::GDT_LEN == TRAMPOLINE_GDT_LEN);

/// The staging area: where segments over stage 2's memory are read to.
#[derive(Clone, Copy, Debug)]
pub struct Staging {
    pub base: u64,
    pub len: u64,
    /// Segments staged (0: none, and nothing below applies).
    pub count: usize,
}

impl Staging {
    fn range(&self) -> (u64, u64) {
        (self.base, self.base + self.len)
    }
}

fn occupied<'a>(
    rec: &'a Record,
    modules: &'a [(u64, u64)],
    placed: &'a [(u64, u64)],
) -> Occupied<'a, impl Iterator<Item = Segment> + Clone + 'a> {
    Occupied {
        segments: rec.segments(),
        modules,
        placed,
        own: LOADER_MEMORY,
    }
}

/// Where the segments over stage 2's memory are staged; halts with a
/// message if usable RAM has no room for them.
pub fn place_staging(rec: &Record, map: &[Region], modules: &[(u64, u64)]) -> Staging {
    let (len, count) = relocate::staging_need(rec.segments(), LOADER_MEMORY);
    if count == 0 {
        return Staging {
            base: 0,
            len: 0,
            count,
        };
    }
    let base =
        relocate::place_staging(map, &occupied(rec, modules, &[]), len).unwrap_or_else(|| {
            no_room(
                "the staging area for the kernel's segments over the loader's memory",
                len,
            )
        });
    Staging { base, len, count }
}

/// Where `len` bytes of Multiboot information go (the information arena,
/// unless the kernel loads there); halts with a message if there is no
/// room.
pub fn place_info(
    rec: &Record,
    map: &[Region],
    modules: &[(u64, u64)],
    staging: &Staging,
    len: u64,
) -> u64 {
    let placed = [staging.range()];
    let at = relocate::place_info(
        map,
        &occupied(rec, modules, &placed),
        len,
        INFO_ARENA_ADDR as u64,
    );
    at.unwrap_or_else(|| no_room("the Multiboot information", len))
}

/// `WHAT (0x.. bytes) finds no usable RAM clear of the kernel, its
/// modules and the loader: give the machine more memory`.
fn no_room(what: &str, len: u64) -> ! {
    fail(&[
        Str(what),
        Str(" ("),
        Hex(len),
        Str(" bytes) finds no usable RAM clear of the kernel, its modules and the loader: give the machine more memory"),
    ])
}

/// Enters the kernel: directly if nothing was staged, else through a
/// trampoline block placed clear of everything, which moves the staged
/// segments into place first.
pub fn enter(
    rec: &Record,
    map: &[Region],
    modules: &[(u64, u64)],
    staging: &Staging,
    info_range: (u64, u64),
    info_addr: u32,
    magic: u32,
) -> ! {
    let entry = rec.entry();
    if staging.count == 0 {
        // SAFETY: the kernel's segments and the modules are loaded and
        // checksummed, the info is built; stage 2 runs in long mode with
        // the low 4 GiB identity-mapped, its code and stack below 1 MiB,
        // A20 on: what the handoff relies on.
        unsafe { bootpack_handoff::enter_kernel(entry, info_addr, magic, 0) }
    }
    let code = bootpack_handoff::trampoline_code();
    let len = relocate::trampoline_len(code.len(), staging.count) as u64;
    let placed = [staging.range(), info_range];
    let base = relocate::place_trampoline(map, &occupied(rec, modules, &placed), len)
        .unwrap_or_else(|| no_room("the final move of the kernel's segments", len));
    // SAFETY: place_trampoline put [base, base + len) in usable RAM below
    // 4 GiB (identity-mapped) clear of stage 2, the segments, modules,
    // staging area and information: nothing else uses it.
    let block = unsafe { core::slice::from_raw_parts_mut(base as usize as *mut u8, len as usize) };
    let t = Trampoline {
        gdt: bootpack_handoff::gdt(),
        code,
        entry,
        info: info_addr,
        magic,
    };
    relocate::write_trampoline(
        block,
        base as u32,
        &t,
        relocate::moves(rec.segments(), staging.base, LOADER_MEMORY),
    );
    // SAFETY: as above; the block holds the trampoline, whose moves put
    // the staged (loaded and checksummed) segments in place: the handoff
    // relies on that layout.
    unsafe { bootpack_handoff::enter_kernel(entry, info_addr, magic, base as u32) }
}
