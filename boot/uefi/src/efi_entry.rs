//! Multiboot 2 kernels that keep EFI boot services: a kernel whose header
//! has tag 7 (boot services) and tag 9 (EFI amd64 entry) is entered there,
//! in the firmware's 64-bit mode with boot services running, and gets the
//! EFI information tags (bootpack_proto::mb2_efi_info) besides the usual ones,
//! as GRUB does. Xen boots under UEFI only this way.
//!
//! The header's EFI tags come from the record (version 4; the packager
//! writes one for every kernel whose header has them).

use crate::fail;
use bootpack_proto::efimap::{self, EfiRegion};
use bootpack_proto::mb2_efi_info::{self, EfiInfo};
use bootpack_proto::mb2_header;
use bootpack_proto::mb2_info::{self, Mbi2Spec};
use bootpack_proto::memory::Region;
use bootpack_proto::record::{Protocol, Record};
use uefi::boot::{self, AllocateType, MemoryType};
use uefi::mem::memory_map::MemoryMap;

extern "sysv64" {
    /// asm/enter64.s.
    fn bootpack_uefi_enter64(entry: u64, info: u64, magic: u64) -> !;
}

/// The kernel's EFI amd64 entry, if it is a Multiboot 2 kernel that asks
/// to keep boot services and has one (the record's EFI tags, version 4).
pub fn entry64(rec: &Record) -> Option<u32> {
    let efi = rec.efi();
    if rec.protocol() == Protocol::Multiboot2 && efi.boot_services {
        efi.entry_efi64
    } else {
        None
    }
}

/// Room for the EFI memory map beyond its present size: the allocations
/// made between now and the map taken for the kernel add a few entries.
const MAP_SLACK: usize = 8192;

/// Builds the information with the EFI tags and enters the kernel at
/// `entry` with boot services running. `template` is the usual
/// information; its memory map is replaced by the converted EFI map, built
/// in `map_buf`.
pub fn enter(entry: u32, template: Mbi2Spec, map_buf: &mut [Region]) -> ! {
    let now = boot::memory_map(MemoryType::LOADER_DATA)
        .unwrap_or_else(|_| fail!("the firmware gives no memory map (GetMemoryMap)"));
    let efi_room = now.meta().map_size + MAP_SLACK;
    drop(now);
    let probe = EfiInfo {
        system_table: 0,
        image_handle: 0,
        descriptor_size: 0,
        descriptor_version: 0,
        map: &[],
        boot_services_kept: true,
    };
    let mut sized = template;
    sized.common.memory = map_buf;
    let room = mb2_info::size(&sized) + mb2_efi_info::extra_size(&probe) + efi_room;
    let at = boot::allocate_pages(
        AllocateType::MaxAddress(bootpack_proto::layout::INFO_CEILING - 1),
        MemoryType::LOADER_DATA,
        room.div_ceil(4096),
    )
    .unwrap_or_else(|_| {
        fail!("no room below 1 GiB for the Multiboot information ({room:#x} bytes)")
    })
    .as_ptr() as u64;

    // The map as it is now, for tag 6 (GRUB's conversion) and tag 17 (the
    // descriptors as they are). Nothing is allocated after this.
    let map = boot::memory_map(MemoryType::LOADER_DATA)
        .unwrap_or_else(|_| fail!("the firmware gives no memory map (GetMemoryMap)"));
    let meta = map.meta();
    let regions = map.entries().map(|d| EfiRegion {
        ty: d.ty.0,
        phys_start: d.phys_start,
        pages: d.page_count,
    });
    let n = efimap::after_exit(regions, map_buf);
    let mut s = template;
    s.common.memory = &map_buf[..n];
    let efi = EfiInfo {
        system_table: uefi::table::system_table_raw().map_or(0, |p| p.as_ptr() as u64),
        image_handle: boot::image_handle().as_ptr() as u64,
        descriptor_size: meta.desc_size as u32,
        descriptor_version: meta.desc_version,
        map: &map.buffer()[..meta.map_size],
        boot_services_kept: true,
    };
    let base_len = mb2_info::size(&s);
    let total = base_len + mb2_efi_info::extra_size(&efi);
    if total > room {
        fail!("the Multiboot information needs {total:#x} bytes");
    }
    // SAFETY: [at, at + room) was allocated for the information alone.
    let arena = unsafe { core::slice::from_raw_parts_mut(at as *mut u8, total) };
    let info = mb2_info::build(&s, arena, at as u32)
        .unwrap_or_else(|e| fail!("the Multiboot information needs {:#x} bytes", e.needed));
    mb2_efi_info::append(arena, base_len, &efi);
    // The map's buffer stays where the kernel may still look (tag 17 is a
    // copy; this keeps the pool allocation alive regardless).
    core::mem::forget(map);
    // SAFETY: the kernel's segments and modules are loaded and checked,
    // the information built; the entry is the kernel's 64-bit EFI entry,
    // which expects the firmware's state with boot services running.
    unsafe {
        bootpack_uefi_enter64(
            entry as u64,
            info as u64,
            mb2_header::BOOTLOADER_MAGIC as u64,
        )
    }
}
