//! bootpack's UEFI loader, `\EFI\BOOT\BOOTX64.EFI` on the ESP the packager
//! writes.
//!
//! It finds the disk it was started from, the bootpack partition on it
//! (bootpack_proto::ptable, MBR or GPT, as the BIOS loader does), reads the
//! same configuration record and payload into memory taken from the
//! firmware at the kernel's own addresses, checks every checksum, builds
//! the Multiboot information, exits boot services, converts the firmware's
//! memory map as GRUB does (bootpack_proto::efimap) and enters the kernel
//! with the BIOS loader's machine state (asm/handoff.s's GDT and
//! trampoline, reached through asm/leave.s).
//!
//! On success nothing is printed. Every failure prints one plain line on
//! COM1 and the firmware console and halts.
#![no_std]
#![no_main]

extern crate alloc;

mod acpi;
mod console;
mod disk;
mod efi_entry;
mod fail;
mod gop;
mod handoff;
mod load;
mod rebase;

use bootpack_proto::efimap::{self, EfiRegion};
use bootpack_proto::layout::INFO_CEILING;
use bootpack_proto::mb1_info::{self, BiosBootDevice, InfoSpec};
use bootpack_proto::mb2_efi_info::{self, EfiInfo};
use bootpack_proto::mb2_header;
use bootpack_proto::mb2_info::{self, Mbi2Spec};
use bootpack_proto::memory::Region;
use bootpack_proto::record::Protocol;
use uefi::boot::{self, AllocateType, MemoryType};
use uefi::mem::memory_map::MemoryMap;
use uefi::prelude::*;

/// One assembly file with the BIOS loader's shared macros before it and
/// their purge after it (as boot/bios does).
macro_rules! asm_file {
    ($file:literal) => {
        core::arch::global_asm!(
            concat!(
                ".set BOOTPACK_TS, 0\n",
                include_str!("../../bios/src/asm/macros.s"),
                include_str!($file),
                include_str!("../../bios/src/asm/purge.s")
            ),
            options(att_syntax)
        );
    };
}

// The handoff GDT and the trampoline come from boot/handoff, shared with
// the BIOS loader.
asm_file!("asm/leave.s");
asm_file!("asm/enter64.s");

/// Room for the converted memory map (entries): far more than firmware
/// reports once adjacent entries of one type are merged.
const MAP_MAX: usize = 512;

/// The converted memory map, filled after ExitBootServices (no allocation
/// is possible then).
static mut MAP: [Region; MAP_MAX] = [Region {
    base: 0,
    len: 0,
    kind: 0,
}; MAP_MAX];

/// Bytes kept for the EFI memory map in tag 17 of a kernel entered after
/// ExitBootServices: 1365 descriptors of OVMF's 48 bytes, several times
/// what firmware reports (OVMF: about 100; large servers: a few hundred).
const EFI_MAP_ROOM: usize = 64 << 10;

/// The version marker `bootpack inspect` looks for in BOOTX64.EFI.
static VERSION_MARK: [u8; VERSION_MARK_STR.len()] = {
    let s = VERSION_MARK_STR.as_bytes();
    let mut out = [0u8; VERSION_MARK_STR.len()];
    let mut i = 0;
    while i < s.len() {
        out[i] = s[i];
        i += 1;
    }
    out
};
const VERSION_MARK_STR: &str = concat!("BOOTPACK-UEFI-VERSION=", env!("CARGO_PKG_VERSION"), "\0");

/// "bootpack " + the version, as the Multiboot boot loader name.
const LOADER_NAME: &str = concat!("bootpack ", env!("CARGO_PKG_VERSION"));

#[entry]
fn main() -> Status {
    // Keeps the marker in the image (the linker drops unreferenced data
    // whatever #[used] says).
    core::hint::black_box(&VERSION_MARK);
    // The firmware's 5-minute watchdog would reset a kernel that runs
    // longer than that before it exits boot services: the boot manager
    // armed it for this loader, which exits them itself.
    let _ = boot::set_watchdog_timer(0, 0x10000, None);

    let mut disk = disk::boot_disk();
    let part = load::find_partition(&mut disk);
    let rec = load::read_record(&mut disk, &part);
    // A relocatable Multiboot 2 kernel's place, chosen as GRUB chooses it;
    // no move for every other kernel.
    let shift = rebase::shift(&rec);
    let deferred = load::take_segments(&rec, shift);
    // Modules go where they go for the kernel at its link addresses (above
    // its linked end), skipping the memory a relocated image took: a
    // kernel placed high still has room for them.
    let starts = load::place_modules(&rec, bootpack_proto::load::kernel_end(&rec));
    let mut bounce = load::Bounce::new();
    let moves = load::load_segments(&mut disk, &mut bounce, &part, &rec, &deferred, shift);
    let modules = load::load_modules(&mut disk, &mut bounce, &part, &rec, &starts);
    let modules = &modules[..rec.module_count()];
    // After every loading step, so their failures still reach the firmware
    // console (a mode change may take it away); nothing for kernels that
    // ask for no video mode.
    let video = gop::setup(&rec.video());

    // The information's room, sized for the largest map, below 1 GiB
    // (older Solo5 maps only that) and never in page 0 (Solo5's NULL
    // guard: the allocator never returns 0, see uefi::boot).
    let spec = |map| InfoSpec {
        memory: map,
        // No BIOS drive under UEFI: the first hard disk, as most kernels
        // that look at boot_device expect.
        boot_device: Some(BiosBootDevice {
            drive: 0x80,
            partition: u8::try_from(part.index).unwrap_or(0xFF),
        }),
        cmdline: rec.cmdline_with_nul(),
        loader_name: LOADER_NAME.as_bytes(),
        modules,
        video: video.as_ref(),
    };
    // Multiboot 2: the RSDP from the EFI configuration table (read now,
    // while the table is sure to be reachable).
    let rsdp = acpi::find_rsdp();
    let mb2 = |common| match rec.protocol() {
        Protocol::Multiboot1 => None,
        Protocol::Multiboot2 => Some(Mbi2Spec {
            common,
            elf_sections: rec.elf_sections(),
            // Tag 21: where the image was loaded (GRUB's load_base_addr).
            load_base: shift.at32(rec.load_base()),
            rsdp,
        }),
    };
    let size = |map| {
        mb2(spec(map))
            .as_ref()
            .map_or_else(|| mb1_info::size(&spec(map)), mb2_info::size)
    };
    // A kernel entered through its EFI entry with boot services running
    // (Xen): its own information with the EFI tags, no ExitBootServices.
    if let Some(entry) = efi_entry::entry64(&rec).map(|e| shift.at32(e)) {
        if !moves.is_empty() {
            fail!("the kernel loads over memory the firmware's boot services hold, and it asks to keep boot services: link it elsewhere or give the machine more memory");
        }
        drop(disk);
        let template = mb2(spec(&[])).expect("a Multiboot 2 kernel");
        // SAFETY: MAP is only touched here, by one thread.
        let map_buf = unsafe { &mut *core::ptr::addr_of_mut!(MAP) };
        efi_entry::enter(entry, template, map_buf);
    }
    // SAFETY: MAP is only touched here, by one thread.
    let full_map: &[Region] = unsafe { &*core::ptr::addr_of!(MAP) };
    // Multiboot 2 also gets the EFI system table (tag 12) and the map
    // ExitBootServices was called with (tag 17), as from GRUB: room for
    // EFI_MAP_ROOM bytes of descriptors (a GetMemoryMap call to size it
    // exactly costs about 1 ms under TCG, a seventh of the demo's boot).
    let system_table = uefi::table::system_table_raw().map_or(0, |p| p.as_ptr() as u64);
    let efi_tags = |map: &'static [u8], desc_size: usize, desc_version: u32| EfiInfo {
        system_table,
        image_handle: 0,
        descriptor_size: desc_size as u32,
        descriptor_version: desc_version,
        map,
        boot_services_kept: false,
    };
    let efi_room = match rec.protocol() {
        Protocol::Multiboot1 => 0,
        Protocol::Multiboot2 => mb2_efi_info::extra_size(&efi_tags(&[], 0, 0)) + EFI_MAP_ROOM,
    };
    let room = size(full_map) + efi_room;
    let info_at = boot::allocate_pages(
        AllocateType::MaxAddress(INFO_CEILING - 1),
        MemoryType::LOADER_DATA,
        room.div_ceil(4096),
    )
    .unwrap_or_else(|_| {
        fail!("no room below 1 GiB for the Multiboot information ({room:#x} bytes)")
    })
    .as_ptr() as u64;
    let page = handoff::reserve();

    drop(disk);
    fail::boot_services_gone();
    // SAFETY: nothing of boot services is used from here on: no
    // allocation, no protocol (the disk was closed above), no console but
    // COM1.
    let efi_map = unsafe { boot::exit_boot_services(None) };
    let regions = efi_map.entries().map(|d| EfiRegion {
        ty: d.ty.0,
        phys_start: d.phys_start,
        pages: d.page_count,
    });
    // SAFETY: as above: the only reference to MAP from here on.
    let map = unsafe { &mut *core::ptr::addr_of_mut!(MAP) };
    let n = efimap::after_exit(regions, map);
    let map = &map[..n];
    let needed = size(map);
    // SAFETY: [info_at, info_at + room) was allocated for the information
    // alone; needed <= room (fewer map entries than MAP_MAX).
    let arena = unsafe { core::slice::from_raw_parts_mut(info_at as *mut u8, room) };
    let full = |e: mb1_info::ArenaFull| -> ! {
        fail!("the Multiboot information needs {:#x} bytes", e.needed)
    };
    let (info, magic) = match mb2(spec(map)) {
        None => (
            mb1_info::build(&spec(map), &mut arena[..needed], info_at as u32)
                .unwrap_or_else(|e| full(e))
                .info,
            mb1_info::BOOTLOADER_MAGIC,
        ),
        Some(s) => {
            let info = mb2_info::build(&s, &mut arena[..needed], info_at as u32)
                .unwrap_or_else(|e| full(e));
            let meta = efi_map.meta();
            // SAFETY: the map's buffer lives until the kernel runs (it is
            // forgotten below, never freed: there is no allocator now).
            let bytes: &'static [u8] =
                unsafe { core::slice::from_raw_parts(efi_map.buffer().as_ptr(), meta.map_size) };
            let efi = efi_tags(bytes, meta.desc_size, meta.desc_version);
            if needed + mb2_efi_info::extra_size(&efi) > room {
                fail!(
                    "the Multiboot information needs {:#x} bytes",
                    needed + mb2_efi_info::extra_size(&efi)
                );
            }
            mb2_efi_info::append(arena, needed, &efi);
            (info, mb2_header::BOOTLOADER_MAGIC)
        }
    };
    core::mem::forget(efi_map);
    page.enter(shift.at32(rec.entry()), info, magic, &moves)
}
