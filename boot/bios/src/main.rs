//! bootpack's bootloader: stage 1 (the MBR) and stage 2.
//!
//! Stage 1 (asm/stage1.s) loads stage 2 from the sectors after the MBR.
//! Stage 2 enters long mode (asm/entry.s) and runs [`stage2_main`], which
//! follows the load plan in the kernel partition's configuration record
//! (bootpack_proto::record) using BIOS services through a real-mode thunk
//! (asm/rmint.s), loads the modules where the memory map has room, sets
//! the video mode the kernel asked for (VBE), builds
//! the Multiboot 1 or Multiboot 2 information and hands over in 32-bit
//! protected mode (boot/handoff, shared with any other loader).
//!
//! On success nothing is printed: the kernel's serial output must be the
//! only output. Every failure prints one plain line on COM1 and the screen
//! and halts.
#![no_std]
#![no_main]

mod acpi;
mod bios;
mod console;
mod disk;
mod exceptions;
mod fail;
mod fastdisk;
mod handoff;
mod load;
mod memmap;
mod memplan;
mod ts;
mod vbe;

use crate::memplan::{INFO_ARENA_ADDR, INFO_ARENA_LEN, LOADER_MEMORY};
use bootpack_proto::load as core_load;
use bootpack_proto::mb1_info::{ArenaFull, BiosBootDevice, InfoSpec, ModuleInfo};
use bootpack_proto::memory;
use bootpack_proto::record::MAX_MODULES;
use fail::{fail, Hex, Str};

/// `.set BOOTPACK_TS, 1` with the `timestamps` feature, else 0: the
/// assembly's time marks (asm/macros.s S1_MARK) assemble to nothing
/// without it.
#[cfg(feature = "timestamps")]
macro_rules! ts_symbol {
    () => {
        ".set BOOTPACK_TS, 1\n"
    };
}
#[cfg(not(feature = "timestamps"))]
macro_rules! ts_symbol {
    () => {
        ".set BOOTPACK_TS, 0\n"
    };
}

/// One assembly file with the shared macros (asm/macros.s) before it and
/// their purge (asm/purge.s) after it.
macro_rules! asm_file {
    ($file:literal) => {
        core::arch::global_asm!(
            concat!(
                ts_symbol!(),
                include_str!("asm/macros.s"),
                include_str!($file),
                include_str!("asm/purge.s")
            ),
            options(att_syntax)
        );
    };
}

asm_file!("asm/stage1.s");
asm_file!("asm/entry.s");
asm_file!("asm/rmint.s");
asm_file!("asm/exceptions.s");

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

/// "bootpack " + the version, as the Multiboot boot loader name.
fn loader_name(buf: &mut [u8; 32]) -> &[u8] {
    let prefix = b"bootpack ";
    let version = bootpack_proto::VERSION.as_bytes();
    let len = (prefix.len() + version.len()).min(buf.len());
    buf[..prefix.len()].copy_from_slice(prefix);
    buf[prefix.len()..len].copy_from_slice(&version[..len - prefix.len()]);
    &buf[..len]
}

fn arena_full(e: ArenaFull) -> ! {
    fail(&[
        Str("the Multiboot information needs "),
        Hex(e.needed as u64),
        Str(" bytes but there is room for "),
        Hex(INFO_ARENA_LEN as u64),
    ])
}

/// Called by asm/entry.s in long mode, with the low 4 GiB identity-mapped,
/// interrupts off, the bss zeroed, and DL from the BIOS as `drive`.
#[no_mangle]
pub extern "C" fn stage2_main(drive: u8) -> ! {
    exceptions::init();
    console::init();
    ts::mark("entry", 0);

    let map = memmap::read()
        .unwrap_or_else(|| fail(&[Str("the BIOS gave no memory map (INT 15h, EAX=E820h)")]));
    let arena_end = INFO_ARENA_ADDR as u64 + INFO_ARENA_LEN as u64;
    if !memory::is_usable(map, INFO_ARENA_ADDR as u64, arena_end) {
        fail(&[
            Str("the BIOS memory map does not report "),
            Hex(INFO_ARENA_ADDR as u64),
            Str("-"),
            Hex(arena_end - 1),
            Str(" as usable RAM; bootpack keeps the Multiboot information there"),
        ]);
    }

    ts::mark("e820", map.len() as u64);
    let part = load::find_partition(drive);
    ts::mark("mbr", 512);
    let rec = load::read_record(drive, &part);
    ts::mark("record", rec.data_sectors() as u64);
    load::setup_fast_read(drive, &part, &rec, map);
    ts::mark("fast-read", fastdisk::get().is_some() as u64);
    let mut bios = load::Bios { drive, part: &part };
    let mut starts = [0u64; MAX_MODULES];
    let mut module_ranges = [(0u64, 0u64); MAX_MODULES];
    let module_count = rec.module_count();
    let mut modules = [ModuleInfo {
        start: 0,
        end: 0,
        string: &[],
    }; MAX_MODULES];
    // The load plan (bootpack_proto::load), with one exit for its failures.
    let loaded = (|| {
        core_load::check_memory(&rec, map)?;
        // Stage 2's memory (the info arena included); below 1 MiB only, so
        // for a kernel at 1 MiB and above this is the old rule exactly.
        let kernel_end = core_load::kernel_end(&rec);
        core_load::place_modules(&rec, map, &[LOADER_MEMORY], kernel_end, &mut starts)?;
        for (i, m) in rec.modules().enumerate() {
            module_ranges[i] = (starts[i], starts[i] + m.size);
        }
        // Nothing for a kernel clear of stage 2's memory (all at 1 MiB and
        // up).
        let staging = handoff::place_staging(&rec, map, &module_ranges[..module_count]);
        core_load::load_segments(&rec, staging.base, LOADER_MEMORY, &mut bios)?;
        ts::mark("segments", 0);
        core_load::load_modules(&rec, &starts, &mut bios, &mut modules)?;
        Ok(staging)
    })();
    let staging = loaded.unwrap_or_else(|e| load::fail_load(&e));
    let module_ranges = &module_ranges[..module_count];
    let modules = &modules[..module_count];
    ts::mark("modules", module_count as u64);
    // Last, so every loading failure is still shown on the text screen;
    // nothing for kernels that ask for no video mode.
    let video = vbe::setup(&rec.video());

    let mut name = [0u8; 32];
    let loader_name = loader_name(&mut name);
    let common = InfoSpec {
        memory: map,
        boot_device: Some(BiosBootDevice {
            drive,
            // Multiboot's boot_device has one byte per partition level;
            // 0xFF means "none" (a GPT entry beyond 254 cannot be named).
            partition: u8::try_from(part.index).unwrap_or(0xFF),
        }),
        cmdline: rec.cmdline_with_nul(),
        loader_name,
        modules,
        video: video.as_ref(),
    };
    let info = core_load::Info::new(&rec, common, acpi::find_rsdp);
    let needed = info.size();
    if needed > INFO_ARENA_LEN {
        arena_full(ArenaFull { needed });
    }
    // The information arena, unless the kernel loads there.
    let at = handoff::place_info(&rec, map, module_ranges, &staging, needed as u64);
    // SAFETY: place_info chose [at, at + needed) in usable RAM below 1 GiB
    // that nothing else uses: the information arena (checked usable above,
    // stage 2 keeps it for this) or, if a kernel segment lies there, RAM
    // clear of stage 2, the segments, modules and staging area.
    let arena = unsafe { core::slice::from_raw_parts_mut(at as usize as *mut u8, needed) };
    let (info, magic) = info
        .build(arena, at as u32)
        .unwrap_or_else(|e| arena_full(e));

    ts::mark("handoff", 0);
    ts::flush();
    handoff::enter(
        &rec,
        map,
        module_ranges,
        &staging,
        (at, at + needed as u64),
        info,
        magic,
    )
}
