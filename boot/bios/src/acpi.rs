//! Finding the ACPI RSDP for the Multiboot 2 ACPI tag: the first KiB of
//! the EBDA, then the BIOS area 0xE0000-0xFFFFF (bootpack_proto::acpi
//! checks signatures and checksums).

use bootpack_proto::acpi::{self, BIOS_AREA, EBDA_SEGMENT_PTR};
use core::slice;

/// # Safety
/// `[start, end)` must be identity-mapped memory below 1 MiB that nothing
/// writes while the slice is alive (BIOS data and ROM areas).
unsafe fn region(start: u32, end: u32) -> &'static [u8] {
    // SAFETY: per the caller; start is never 0 here.
    unsafe { slice::from_raw_parts(start as usize as *const u8, (end - start) as usize) }
}

/// The RSDP's bytes (20, or its length for ACPI 2.0+), if the BIOS has one.
pub fn find_rsdp() -> Option<&'static [u8]> {
    // SAFETY: 0x40E is the BIOS data area's EBDA segment word; the BDA is
    // RAM below 1 MiB that stage 2 never writes.
    let segment = unsafe { core::ptr::read_unaligned(EBDA_SEGMENT_PTR as usize as *const u16) };
    let windows = [acpi::ebda_window(segment), Some(BIOS_AREA)];
    for (start, end) in windows.into_iter().flatten() {
        // SAFETY: the EBDA window lies in 0x80000-0xA0000 (ebda_window
        // checks) and the BIOS area is 0xE0000-0xFFFFF: both below 1 MiB,
        // identity-mapped and never written by stage 2.
        let r = unsafe { region(start, end) };
        if let Some((at, len)) = acpi::find(r) {
            return Some(&r[at..at + len]);
        }
    }
    None
}
