//! The bootloader and demo kernel, built by build.rs and embedded here so
//! the `bootpack` binary needs nothing else at run time.

use crate::image::Bootloader;

/// Stage 1: the MBR boot code (512 bytes; the first 440 are used).
pub const STAGE1: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/stage1.bin"));
/// Stage 2, written to the gap before the first partition.
pub const STAGE2: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/stage2.bin"));
/// Where the bootloader's ELF (with symbols, for gdb) was built; empty
/// when the committed stages (packager/prebuilt) are embedded.
pub const LOADER_ELF_PATH: &str = env!("BOOTPACK_LOADER_ELF");

/// The demo kernel: a Multiboot ELF64 kernel in the Solo5 shape that prints
/// what its boot loader handed over. The boot tests use it too.
pub const DEMO_KERNEL: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/demo-kernel.elf"));

/// The UEFI loader, `\\EFI\\BOOT\\BOOTX64.EFI` on the ESP of images for
/// UEFI (boot/uefi).
pub const BOOTX64_EFI: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/bootx64.efi"));

/// The embedded bootloader.
pub fn embedded() -> Bootloader<'static> {
    Bootloader {
        stage1: STAGE1,
        stage2: STAGE2,
    }
}
