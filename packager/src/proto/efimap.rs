//! The UEFI memory map turned into a Multiboot (E820-style) memory map.
//!
//! After ExitBootServices the conversion is GRUB's (grub-core/mmap/efi):
//! boot-services code and data, loader code and data and conventional
//! memory are RAM the OS may use (type 1); runtime code and data,
//! memory-mapped I/O, PAL code and the reserved type stay reserved (2;
//! GRUB gives runtime code a private type 20, which no kernel knows:
//! bootpack gives 2); ACPI reclaim is 3, ACPI NVS 4, unusable 5 and
//! persistent memory 7. Adjacent entries of one type are merged.
//!
//! Before ExitBootServices only conventional memory is free: [`free_now`]
//! gives the map the loader places modules in.

use super::memory::Region;

/// UEFI memory types (UEFI 2.10 §7.2, EFI_MEMORY_TYPE).
pub mod kind {
    pub const RESERVED: u32 = 0;
    pub const LOADER_CODE: u32 = 1;
    pub const LOADER_DATA: u32 = 2;
    pub const BOOT_SERVICES_CODE: u32 = 3;
    pub const BOOT_SERVICES_DATA: u32 = 4;
    pub const RUNTIME_SERVICES_CODE: u32 = 5;
    pub const RUNTIME_SERVICES_DATA: u32 = 6;
    pub const CONVENTIONAL: u32 = 7;
    pub const UNUSABLE: u32 = 8;
    pub const ACPI_RECLAIM: u32 = 9;
    pub const ACPI_NVS: u32 = 10;
    pub const MMIO: u32 = 11;
    pub const MMIO_PORT_SPACE: u32 = 12;
    pub const PAL_CODE: u32 = 13;
    pub const PERSISTENT: u32 = 14;
}

/// The size of a UEFI page: descriptors count pages of this size.
pub const EFI_PAGE: u64 = 4096;

/// One UEFI memory descriptor, the fields that matter here.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EfiRegion {
    /// EFI_MEMORY_TYPE.
    pub ty: u32,
    pub phys_start: u64,
    pub pages: u64,
}

/// The Multiboot type GRUB gives a UEFI memory type once boot services
/// have exited.
pub fn multiboot_type(efi_type: u32) -> u32 {
    match efi_type {
        kind::LOADER_CODE
        | kind::LOADER_DATA
        | kind::BOOT_SERVICES_CODE
        | kind::BOOT_SERVICES_DATA
        | kind::CONVENTIONAL => 1,
        kind::ACPI_RECLAIM => 3,
        kind::ACPI_NVS => 4,
        kind::UNUSABLE => 5,
        kind::PERSISTENT => 7,
        // Runtime code and data, MMIO, PAL code, the reserved type and
        // whatever later specifications add (unaccepted memory, ...).
        _ => 2,
    }
}

/// The type of memory that is free while boot services run: conventional
/// memory only.
fn free_now_type(efi_type: u32) -> u32 {
    if efi_type == kind::CONVENTIONAL {
        1
    } else {
        2
    }
}

/// The type of memory that is free once boot services have exited but
/// not taken by the loader: conventional memory and boot-services code
/// and data (loader code and data stay the loader's).
fn free_later_type(efi_type: u32) -> u32 {
    match efi_type {
        kind::CONVENTIONAL | kind::BOOT_SERVICES_CODE | kind::BOOT_SERVICES_DATA => 1,
        _ => 2,
    }
}

/// Converts `regions` with `map_type` into `out`, sorted by address, with
/// adjacent entries of one type merged; returns how many entries it wrote.
/// Regions beyond `out`'s room are merged into the last entry when they
/// continue it, else dropped (`out` should have as many entries as there
/// are regions: then nothing is dropped). Empty regions are skipped.
fn convert(
    regions: impl Iterator<Item = EfiRegion> + Clone,
    map_type: fn(u32) -> u32,
    out: &mut [Region],
) -> usize {
    let mut n = 0;
    let mut push = |r: EfiRegion| {
        let e = Region {
            base: r.phys_start,
            len: r.pages.saturating_mul(EFI_PAGE),
            kind: map_type(r.ty),
        };
        if n > 0 {
            let prev = &mut out[n - 1];
            if prev.kind == e.kind && prev.end() == e.base {
                prev.len = prev.len.saturating_add(e.len);
                return;
            }
        }
        if n < out.len() {
            out[n] = e;
            n += 1;
        }
    };
    // The firmware's map is usually sorted already: then one pass (a
    // loader runs this under emulation too, where the selection below
    // costs a millisecond for OVMF's hundred-odd entries).
    let mut prev: Option<u64> = None;
    let sorted = regions.clone().filter(|r| r.pages > 0).all(|r| {
        let up = prev.is_none_or(|p| r.phys_start > p);
        prev = Some(r.phys_start);
        up
    });
    if sorted {
        regions.filter(|r| r.pages > 0).for_each(&mut push);
        return n;
    }
    // Otherwise selection by address without sorting in place (this needs
    // no buffer): repeatedly take the lowest region above the last one
    // taken.
    let mut last: Option<u64> = None;
    loop {
        let next = regions
            .clone()
            .filter(|r| r.pages > 0 && last.is_none_or(|l| r.phys_start > l))
            .min_by_key(|r| r.phys_start);
        let Some(r) = next else { break };
        last = Some(r.phys_start);
        push(r);
    }
    n
}

/// The memory map a Multiboot kernel gets after ExitBootServices, GRUB's
/// way (see the module documentation). Returns the entry count.
pub fn after_exit(regions: impl Iterator<Item = EfiRegion> + Clone, out: &mut [Region]) -> usize {
    convert(regions, multiboot_type, out)
}

/// The memory free while boot services run (conventional memory as type
/// 1, everything else 2), for placing modules before allocating them.
pub fn free_now(regions: impl Iterator<Item = EfiRegion> + Clone, out: &mut [Region]) -> usize {
    convert(regions, free_now_type, out)
}

/// The memory free after ExitBootServices apart from what the loader took
/// (conventional memory and boot-services code and data as type 1,
/// everything else 2): where a relocatable kernel may go, staged, when
/// nothing free now holds it (GRUB's relocator falls back the same way).
pub fn free_later(regions: impl Iterator<Item = EfiRegion> + Clone, out: &mut [Region]) -> usize {
    convert(regions, free_later_type, out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const fn r(ty: u32, phys_start: u64, pages: u64) -> EfiRegion {
        EfiRegion {
            ty,
            phys_start,
            pages,
        }
    }
    const fn e(base: u64, len: u64, kind: u32) -> Region {
        Region { base, len, kind }
    }

    /// The start of what OVMF 2022.11 reports on q35 with 128 MiB and S3
    /// on (shortened): the 1 MiB entry ends at OVMF's S3 reservations.
    const OVMF: [EfiRegion; 9] = [
        r(kind::BOOT_SERVICES_CODE, 0, 1),
        r(kind::CONVENTIONAL, 0x1000, 0x9F),
        r(kind::CONVENTIONAL, 0x10_0000, 0x400),
        r(kind::LOADER_DATA, 0x50_0000, 0x100),
        r(kind::CONVENTIONAL, 0x60_0000, 0x206),
        r(kind::ACPI_NVS, 0x80_6000, 2),
        r(kind::BOOT_SERVICES_DATA, 0x80_8000, 8),
        r(kind::ACPI_NVS, 0x81_0000, 0xF0),
        r(kind::RUNTIME_SERVICES_DATA, 0x90_0000, 0x10),
    ];

    #[test]
    fn grub_types() {
        assert_eq!(multiboot_type(kind::CONVENTIONAL), 1);
        assert_eq!(multiboot_type(kind::BOOT_SERVICES_DATA), 1);
        assert_eq!(multiboot_type(kind::LOADER_CODE), 1);
        assert_eq!(multiboot_type(kind::RUNTIME_SERVICES_CODE), 2);
        assert_eq!(multiboot_type(kind::RUNTIME_SERVICES_DATA), 2);
        assert_eq!(multiboot_type(kind::MMIO), 2);
        assert_eq!(multiboot_type(kind::RESERVED), 2);
        assert_eq!(multiboot_type(kind::ACPI_RECLAIM), 3);
        assert_eq!(multiboot_type(kind::ACPI_NVS), 4);
        assert_eq!(multiboot_type(kind::UNUSABLE), 5);
        assert_eq!(multiboot_type(kind::PERSISTENT), 7);
        assert_eq!(multiboot_type(15), 2);
    }

    #[test]
    fn merges_adjacent_of_one_type_and_keeps_1mib_start() {
        let mut out = [Region::default(); 9];
        let n = after_exit(OVMF.iter().copied(), &mut out);
        assert_eq!(
            &out[..n],
            &[
                e(0, 0xA0000, 1),
                // Starts exactly at 1 MiB (Solo5), loader data merged in.
                e(0x10_0000, 0x706000, 1),
                e(0x80_6000, 0x2000, 4),
                e(0x80_8000, 0x8000, 1),
                e(0x81_0000, 0xF0000, 4),
                e(0x90_0000, 0x10000, 2),
            ]
        );
    }

    #[test]
    fn free_now_counts_only_conventional() {
        let mut out = [Region::default(); 9];
        let n = free_now(OVMF.iter().copied(), &mut out);
        assert_eq!(out[0], e(0, 0x1000, 2));
        assert_eq!(out[1], e(0x1000, 0x9F000, 1));
        assert_eq!(out[2], e(0x10_0000, 0x40_0000, 1));
        assert_eq!(out[3], e(0x50_0000, 0x10_0000, 2));
        assert_eq!(out[4], e(0x60_0000, 0x20_6000, 1));
        // 0x806000..0x910000 all not free: one entry.
        assert_eq!(out[5], e(0x80_6000, 0x10_A000, 2));
        assert_eq!(n, 6);
    }

    #[test]
    fn free_later_adds_boot_services_memory_but_not_the_loaders() {
        let mut out = [Region::default(); 9];
        let n = free_later(OVMF.iter().copied(), &mut out);
        assert_eq!(
            &out[..n],
            &[
                e(0, 0xA0000, 1),
                e(0x10_0000, 0x40_0000, 1),
                e(0x50_0000, 0x10_0000, 2),
                e(0x60_0000, 0x20_6000, 1),
                e(0x80_6000, 0x2000, 2),
                e(0x80_8000, 0x8000, 1),
                e(0x81_0000, 0x10_0000, 2),
            ]
        );
    }

    #[test]
    fn sorts_unsorted_maps_and_skips_empty() {
        let regions = [
            r(kind::CONVENTIONAL, 0x20_0000, 0x100),
            r(kind::CONVENTIONAL, 0x5000, 0),
            r(kind::CONVENTIONAL, 0x10_0000, 0x100),
            r(kind::ACPI_RECLAIM, 0x30_0000, 1),
        ];
        let mut out = [Region::default(); 4];
        let n = after_exit(regions.iter().copied(), &mut out);
        assert_eq!(
            &out[..n],
            &[e(0x10_0000, 0x20_0000, 1), e(0x30_0000, 0x1000, 3)]
        );
    }

    #[test]
    fn a_full_buffer_drops_nothing_it_can_merge() {
        let regions = [
            r(kind::CONVENTIONAL, 0, 1),
            r(kind::ACPI_NVS, 0x1000, 1),
            r(kind::CONVENTIONAL, 0x2000, 1),
            r(kind::LOADER_DATA, 0x3000, 1),
        ];
        let mut out = [Region::default(); 3];
        let n = after_exit(regions.iter().copied(), &mut out);
        assert_eq!(n, 3);
        assert_eq!(out[2], e(0x2000, 0x2000, 1));
    }

    #[test]
    fn sorted_and_shuffled_maps_convert_alike() {
        // The one-pass path (sorted, an empty region out of order does
        // not count) and the selection path (shuffled) agree.
        let mut sorted = [Region::default(); 9];
        let mut with_empty = [r(kind::CONVENTIONAL, 0x5000, 0); 10];
        with_empty[..3].copy_from_slice(&OVMF[..3]);
        with_empty[4..].copy_from_slice(&OVMF[3..]);
        let n = after_exit(with_empty.iter().copied(), &mut sorted);
        let mut shuffled = OVMF;
        shuffled.reverse();
        shuffled.swap(2, 6);
        let mut out = [Region::default(); 9];
        let m = after_exit(shuffled.iter().copied(), &mut out);
        assert_eq!(&out[..m], &sorted[..n]);
        let mut free = [Region::default(); 9];
        let n = free_now(OVMF.iter().copied(), &mut free);
        let m = free_now(shuffled.iter().copied(), &mut out);
        assert_eq!(&out[..m], &free[..n]);
    }
}
