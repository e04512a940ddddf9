//! The Multiboot 2 information tags a UEFI loader adds, as GRUB x86_64-efi
//! gives them (grub-core/loader/multiboot_mbi2.c):
//!
//! - to every Multiboot 2 kernel, the EFI 64-bit system table (tag 12) and
//!   the EFI memory map (tag 17: descriptor size and version, then the
//!   firmware's descriptors as they are; for a kernel entered after
//!   ExitBootServices, the map that call was made with);
//! - to a kernel that keeps EFI boot services (header tag 7) and is
//!   entered through its EFI amd64 entry (header tag 9), also the 64-bit
//!   image handle (tag 20) and "boot services not terminated" (tag 18).
//!   GRUB gives such a kernel no tag 17 (the map changes while boot
//!   services run); bootpack gives the map of the moment it enters the
//!   kernel, which the kernel may ignore.
//!
//! They are appended to a block [`super::mbi2::build`] wrote, in place of
//! its end tag, so the BIOS path's builder stays as it is.

use super::le;

pub const TAG_EFI64_SYSTEM_TABLE: u32 = 12;
pub const TAG_EFI_MMAP: u32 = 17;
pub const TAG_EFI_BS_NOT_TERMINATED: u32 = 18;
pub const TAG_EFI64_IMAGE_HANDLE: u32 = 20;

/// What the EFI tags carry.
#[derive(Clone, Copy, Debug)]
pub struct EfiInfo<'a> {
    pub system_table: u64,
    pub image_handle: u64,
    /// The firmware's memory map: `map` holds descriptors of
    /// `descriptor_size` bytes.
    pub descriptor_size: u32,
    pub descriptor_version: u32,
    pub map: &'a [u8],
    /// Whether the kernel is entered with boot services running (tags 20
    /// and 18 then).
    pub boot_services_kept: bool,
}

fn align8(x: usize) -> usize {
    (x + 7) & !7
}

/// Bytes the EFI tags add to a block.
pub fn extra_size(efi: &EfiInfo) -> usize {
    let kept = if efi.boot_services_kept { 16 + 8 } else { 0 };
    16 + kept + align8(16 + efi.map.len())
}

/// Appends the EFI tags to the block in `arena` (written by mbi2::build,
/// `total` bytes, ending with its 8-byte end tag) and ends it again;
/// returns the new total. `arena` must hold `total + extra_size(efi)`.
pub fn append(arena: &mut [u8], total: usize, efi: &EfiInfo) -> usize {
    let new_total = total + extra_size(efi);
    assert!(arena.len() >= new_total && total >= 16);
    debug_assert_eq!(
        le::u32(arena, total - 8),
        0,
        "the block ends with its end tag"
    );
    let mut at = total - 8;
    arena[at..new_total].fill(0);
    le::put_u32(arena, at, TAG_EFI64_SYSTEM_TABLE);
    le::put_u32(arena, at + 4, 16);
    le::put_u64(arena, at + 8, efi.system_table);
    at += 16;
    if efi.boot_services_kept {
        le::put_u32(arena, at, TAG_EFI64_IMAGE_HANDLE);
        le::put_u32(arena, at + 4, 16);
        le::put_u64(arena, at + 8, efi.image_handle);
        at += 16;
        le::put_u32(arena, at, TAG_EFI_BS_NOT_TERMINATED);
        le::put_u32(arena, at + 4, 8);
        at += 8;
    }
    le::put_u32(arena, at, TAG_EFI_MMAP);
    le::put_u32(arena, at + 4, (16 + efi.map.len()) as u32);
    le::put_u32(arena, at + 8, efi.descriptor_size);
    le::put_u32(arena, at + 12, efi.descriptor_version);
    arena[at + 16..at + 16 + efi.map.len()].copy_from_slice(efi.map);
    at = align8(at + 16 + efi.map.len());
    // The end tag (type 0, size 8) and the block's new size.
    le::put_u32(arena, at, 0);
    le::put_u32(arena, at + 4, 8);
    debug_assert_eq!(at + 8, new_total);
    le::put_u32(arena, 0, new_total as u32);
    new_total
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use std::vec;
    use std::vec::Vec;

    #[test]
    fn appends_the_tags_before_a_new_end_tag() {
        // A minimal block: header, one cmdline tag "a\0", end tag.
        let mut arena = vec![0xAAu8; 256];
        le::put_u32(&mut arena, 0, 32);
        le::put_u32(&mut arena, 4, 0);
        le::put_u32(&mut arena, 8, 1);
        le::put_u32(&mut arena, 12, 10);
        arena[16..18].copy_from_slice(b"a\0");
        arena[18..24].fill(0);
        le::put_u32(&mut arena, 24, 0);
        le::put_u32(&mut arena, 28, 8);
        let map: Vec<u8> = (0..60u8).collect(); // two 30-byte descriptors
        let efi = EfiInfo {
            system_table: 0x1_2345_6789,
            image_handle: 0xABCD_0000,
            descriptor_size: 30,
            descriptor_version: 1,
            map: &map,
            boot_services_kept: true,
        };
        let total = append(&mut arena, 32, &efi);
        assert_eq!(total, 32 + extra_size(&efi));
        assert_eq!(le::u32(&arena, 0) as usize, total);
        // Walk the tags as a kernel does.
        let mut at = 8;
        let mut seen = Vec::new();
        loop {
            let (ty, size) = (le::u32(&arena, at), le::u32(&arena, at + 4) as usize);
            seen.push((ty, size));
            if ty == 0 {
                break;
            }
            match ty {
                12 => assert_eq!(le::u64(&arena, at + 8), 0x1_2345_6789),
                20 => assert_eq!(le::u64(&arena, at + 8), 0xABCD_0000),
                17 => {
                    assert_eq!(le::u32(&arena, at + 8), 30);
                    assert_eq!(le::u32(&arena, at + 12), 1);
                    assert_eq!(&arena[at + 16..at + size], &map[..]);
                }
                _ => {}
            }
            at = align8(at + size);
        }
        assert_eq!(at + 8, total);
        assert_eq!(
            seen,
            [(1, 10), (12, 16), (20, 16), (18, 8), (17, 76), (0, 8)]
        );
    }

    #[test]
    fn after_exit_boot_services_only_the_system_table_and_the_map() {
        let mut arena = vec![0xAAu8; 256];
        le::put_u32(&mut arena, 0, 16);
        le::put_u32(&mut arena, 8, 0);
        le::put_u32(&mut arena, 12, 8);
        let map = [7u8; 48];
        let efi = EfiInfo {
            system_table: 0x7F00_0000,
            image_handle: 0xABCD_0000,
            descriptor_size: 48,
            descriptor_version: 1,
            map: &map,
            boot_services_kept: false,
        };
        let total = append(&mut arena, 16, &efi);
        assert_eq!(total, 16 + extra_size(&efi));
        assert_eq!(total, 8 + 16 + 64 + 8);
        assert_eq!((le::u32(&arena, 8), le::u32(&arena, 12)), (12, 16));
        assert_eq!(le::u64(&arena, 16), 0x7F00_0000);
        assert_eq!((le::u32(&arena, 24), le::u32(&arena, 28)), (17, 64));
        assert_eq!(&arena[40..88], &map[..]);
        assert_eq!((le::u32(&arena, 88), le::u32(&arena, 92)), (0, 8));
    }
}
