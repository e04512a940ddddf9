//! What the bootpack bootloader and the bootpack packager must agree on.
//!
//! Everything here is `no_std`, allocation-free and free of I/O, so the same
//! code runs inside stage 2 (bare metal, long mode) and inside the host
//! packager, and is unit-tested on the host with plain `cargo test`.
//!
//! - [`layout`]: the physical memory map the bootloader uses and the disk
//!   layout (stage 2 location, partition type, stage 1 patch fields).
//! - [`record`]: the configuration record at the start of the kernel
//!   partition: load plan, entry point, command line, checksums.
//! - [`checksum`]: the Fletcher-style checksum used for the record and the
//!   payload.
//! - [`crc32`]: the CRC-32 of GPT headers and entry arrays.
//! - [`ptable`]: finding the bootpack partition in an MBR or a GPT.
//! - [`bounds`]: whether the record and its data lie within the partition.
//! - [`mbinfo`]: building the Multiboot 1 information structure.
//! - [`mbi2`]: building the Multiboot 2 boot information.
//! - [`mbi2_efi`]: the Multiboot 2 EFI information tags (boot services kept).
//! - [`e820`]: the BIOS memory map and what is derived from it.
//! - [`efimap`]: the UEFI memory map converted as GRUB converts it.
//! - [`place`]: where modules go in memory (decided at boot).
//! - [`relocate`]: kernels over the loader's memory: staging, where the
//!   information and the final trampoline go.
//! - [`acpi`]: finding the ACPI RSDP.
//! - [`multiboot`]: finding and checking a Multiboot 1 header in a kernel.
//! - [`multiboot2`]: finding and checking a Multiboot 2 header in a kernel.
#![no_std]

pub mod acpi;
pub mod bounds;
pub mod checksum;
pub mod crc32;
pub mod e820;
pub mod efimap;
pub mod layout;
pub mod mbi2;
pub mod mbi2_efi;
pub mod mbinfo;
pub mod multiboot;
pub mod multiboot2;
pub mod place;
pub mod ptable;
pub mod record;
pub mod relocate;
pub mod stage1;
pub mod video;

/// The version of bootpack, carried in the boot loader name the kernel sees.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Little-endian field access on byte slices; the formats here are all
/// little-endian and unaligned, so no struct is ever cast from raw bytes.
pub(crate) mod le {
    pub fn u16(b: &[u8], off: usize) -> u16 {
        u16::from_le_bytes([b[off], b[off + 1]])
    }
    pub fn u32(b: &[u8], off: usize) -> u32 {
        u32::from_le_bytes(b[off..off + 4].try_into().unwrap())
    }
    pub fn u64(b: &[u8], off: usize) -> u64 {
        u64::from_le_bytes(b[off..off + 8].try_into().unwrap())
    }
    pub fn put_u16(b: &mut [u8], off: usize, v: u16) {
        b[off..off + 2].copy_from_slice(&v.to_le_bytes());
    }
    pub fn put_u32(b: &mut [u8], off: usize, v: u32) {
        b[off..off + 4].copy_from_slice(&v.to_le_bytes());
    }
    pub fn put_u64(b: &mut [u8], off: usize, v: u64) {
        b[off..off + 8].copy_from_slice(&v.to_le_bytes());
    }
}
