//! The ACPI RSDP from the EFI configuration table (where UEFI firmware
//! announces it; the BIOS area 0xE0000-0xFFFFF is normally empty under
//! UEFI), for the Multiboot 2 ACPI tags: ACPI 2.0+ first, then 1.0, each
//! checked by bootpack_proto::acpi as on BIOS.

use bootpack_proto::acpi;
use uefi::table::cfg::ConfigTableEntry;

/// The RSDP's bytes (20, or its length for ACPI 2.0+), if the firmware
/// announces a valid one.
pub fn find_rsdp() -> Option<&'static [u8]> {
    uefi::system::with_config_table(|entries| {
        for guid in [ConfigTableEntry::ACPI2_GUID, ConfigTableEntry::ACPI_GUID] {
            let Some(e) = entries.iter().find(|e| e.guid == guid) else {
                continue;
            };
            // SAFETY: the firmware says an RSDP is at this address; ACPI
            // tables lie in memory that stays mapped and unwritten while
            // this loader runs. V2_LEN bytes cover both revisions' fixed
            // part.
            let head = unsafe { core::slice::from_raw_parts(e.address as *const u8, acpi::V2_LEN) };
            // The length a revision 2+ RSDP gives itself, bounded: then
            // valid_at checks the whole of it.
            let claimed = if head[15] >= 2 {
                u32::from_le_bytes(head[20..24].try_into().unwrap()) as usize
            } else {
                acpi::V1_LEN
            };
            let span = claimed.clamp(acpi::V2_LEN, 1024);
            // SAFETY: as above; an RSDP that claims more than it has fails
            // the checksum in valid_at.
            let all = unsafe { core::slice::from_raw_parts(e.address as *const u8, span) };
            let Some(len) = acpi::valid_at(all, 0) else {
                continue;
            };
            // SAFETY: as above, `len` bytes checked by valid_at.
            return Some(unsafe { core::slice::from_raw_parts(e.address as *const u8, len) });
        }
        None
    })
}
