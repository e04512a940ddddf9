//! bootpack's bootloader: stage 1 (the MBR) and stage 2.
//!
//! Stage 1 (asm/stage1.s) loads stage 2 from the sectors after the MBR.
//! Stage 2 enters long mode (asm/entry.s) and runs [`stage2_main`], which
//! follows the load plan in the kernel partition's configuration record
//! (bootpack_proto::record) using BIOS services through a real-mode thunk
//! (asm/rmint.s), builds the Multiboot information and hands over in 32-bit
//! protected mode (asm/handoff.s).
//!
//! On success nothing is printed: the kernel's serial output must be the
//! only output. Every failure prints one plain line on COM1 and the screen
//! and halts.
#![no_std]
#![no_main]

mod bios;
mod console;
mod disk;
mod exceptions;
mod fail;
mod load;
mod memmap;

use bootpack_proto::layout::{INFO_ARENA_ADDR, INFO_ARENA_LEN};
use bootpack_proto::mbinfo::{self, InfoSpec};
use fail::{fail, Hex, Str};

core::arch::global_asm!(include_str!("asm/stage1.s"), options(att_syntax));
core::arch::global_asm!(include_str!("asm/entry.s"), options(att_syntax));
core::arch::global_asm!(include_str!("asm/rmint.s"), options(att_syntax));
core::arch::global_asm!(include_str!("asm/handoff.s"), options(att_syntax));
core::arch::global_asm!(include_str!("asm/exceptions.s"), options(att_syntax));

/// A static that stage 2 mutates. Stage 2 runs on one CPU with interrupts
/// off and no reentrancy, so plain unsynchronised access is sound as long as
/// no two `&mut` to the same value are alive at once, which each user
/// documents.
pub struct Global<T>(core::cell::UnsafeCell<T>);

// SAFETY: there is only ever one thread of execution (see above).
unsafe impl<T> Sync for Global<T> {}

impl<T> Global<T> {
    pub const fn new(v: T) -> Self {
        Global(core::cell::UnsafeCell::new(v))
    }
    pub fn get(&self) -> *mut T {
        self.0.get()
    }
}

extern "C" {
    /// asm/handoff.s: Multiboot handoff to `entry` with EBX = `info`.
    fn bootpack_enter_kernel(entry: u32, info: u32) -> !;
}

/// "bootpack " + the version, as the Multiboot boot loader name.
fn loader_name(buf: &mut [u8; 32]) -> &[u8] {
    let prefix = b"bootpack ";
    let version = bootpack_proto::VERSION.as_bytes();
    let len = (prefix.len() + version.len()).min(buf.len());
    buf[..prefix.len()].copy_from_slice(prefix);
    buf[prefix.len()..len].copy_from_slice(&version[..len - prefix.len()]);
    &buf[..len]
}

/// Called by asm/entry.s in long mode, with the low 4 GiB identity-mapped,
/// interrupts off, the bss zeroed, and DL from the BIOS as `drive`.
#[no_mangle]
pub extern "C" fn stage2_main(drive: u8) -> ! {
    exceptions::init();
    console::init();

    let map = memmap::read()
        .unwrap_or_else(|| fail(&[Str("the BIOS gave no memory map (INT 15h, EAX=E820h)")]));

    let part = load::find_partition(drive);
    let rec = load::read_record(drive, &part);
    load::check_memory(&rec, map);
    load::load_segments(drive, &part, &rec);

    let mut name = [0u8; 32];
    let spec = InfoSpec {
        e820: map,
        drive,
        partition: part.index,
        cmdline: rec.cmdline_with_nul(),
        loader_name: loader_name(&mut name),
    };
    // SAFETY: the info arena (layout::INFO_ARENA_ADDR, 0x1000-0x5FFF) is
    // RAM no one else uses: below the real-mode stack, above the BIOS data
    // area, and no kernel segment lies below 1 MiB (Record::parse).
    let arena = unsafe {
        core::slice::from_raw_parts_mut(INFO_ARENA_ADDR as usize as *mut u8, INFO_ARENA_LEN)
    };
    let info = mbinfo::build(&spec, arena, INFO_ARENA_ADDR).unwrap_or_else(|e| {
        fail(&[
            Str("the memory map and command line need "),
            Hex(e.needed as u64),
            Str(" bytes of Multiboot information but there is room for "),
            Hex(INFO_ARENA_LEN as u64),
        ])
    });

    // SAFETY: the kernel's segments are loaded and checksummed, the info
    // is built; bootpack_enter_kernel relies on the GDT and identity
    // mapping set up by asm/entry.s, which are still in place.
    unsafe { bootpack_enter_kernel(rec.entry(), info.info) }
}
