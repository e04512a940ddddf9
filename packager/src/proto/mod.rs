//! bootpack's boot core: everything about booting a Multiboot kernel that
//! does not depend on the firmware, shared by the loaders (boot/bios and
//! boot/uefi) and the packager.
//!
//! One copy of the source, two crates: this module of the `bootpack`
//! crate (so the published crate carries it and needs no other crate of
//! ours), and the `no_std` crate `bootpack-proto` (boot/proto, unpublished)
//! whose root includes this file, for the loaders. Paths between these
//! modules are therefore relative (`super::`), never `crate::`.
//!
//! Everything here is `no_std`, allocation-free, free of I/O and of
//! `unsafe` (`#![forbid(unsafe_code)]`), so the same code runs inside a
//! loader (bare metal, long mode) and inside the host packager, and is
//! unit-tested on the host with plain `cargo test`. What a firmware does
//! (read sectors, write physical memory, report its memory map) comes in
//! through small traits ([`ptable::SectorReader`],
//! [`load::PartitionReader`], [`load::PhysMemory`]) or plain values (a map
//! of [`memory::Region`]s, the loader's own memory as a range); the unsafe
//! code behind them, and everything BIOS- or UEFI-specific (mode switches,
//! BIOS calls, the low-memory plan, DMA paths), stays in the loaders. The
//! handoff assembly is boot/handoff, which any loader links.
//!
//! Modules are named for what they are: the on-disk formats, the Multiboot
//! headers a kernel carries (`mb*_header`) and the information a loader
//! builds for it (`mb*_info`), the memory map, and the steps of loading.
//!
//! - [`layout`]: the disk layout (stage 2 location, partition type and
//!   start) and the protocol limits every loader keeps (kernel floor and
//!   ceiling, information ceiling, command line length).
//! - [`record`]: the configuration record at the start of the kernel
//!   partition: load plan, entry point, command line, checksums.
//! - [`checksum`]: the Fletcher-style checksum used for the record and the
//!   payload.
//! - [`crc32`]: the CRC-32 of GPT headers and entry arrays.
//! - [`ptable`]: finding the bootpack partition in an MBR or a GPT.
//! - [`bounds`]: whether the record and its data lie within the partition.
//! - [`memory`]: the machine's memory map (regions with the E820/Multiboot
//!   types, converted from E820 or another firmware's map) and what is
//!   derived from it.
//! - [`efimap`]: the UEFI memory map converted as GRUB converts it.
//! - [`deferred`]: which bytes of a segment over memory UEFI boot services
//!   hold are staged for the trampoline and which are read in place.
//! - [`mb2_efi_info`]: the Multiboot 2 EFI information tags (boot services
//!   kept).
//! - [`load`]: the load plan (check memory, place modules, read and
//!   checksum segments and modules, zero the bss) over a reader and a
//!   physical-memory trait the firmware implements.
//! - [`place`]: where modules go in memory (decided at boot).
//! - [`rebase`]: where a relocatable Multiboot 2 image goes (header tag
//!   10), GRUB's rule, and the shift that moves it there.
//! - [`relocate`]: kernels over the loader's memory: staging, where the
//!   information and the final trampoline go, the trampoline block.
//! - [`mb1_header`]: finding and checking a Multiboot 1 header in a kernel.
//! - [`mb2_header`]: finding and checking a Multiboot 2 header in a kernel.
//! - [`mb1_info`]: building the Multiboot 1 information structure (and the
//!   firmware-neutral [`mb1_info::InfoSpec`] both versions start from).
//! - [`mb2_info`]: building the Multiboot 2 boot information.
//! - [`video`]: video requests and what a loader reports it set.
//! - [`acpi`]: finding the ACPI RSDP.
//! - [`stage1`]: the fields the packager patches into the BIOS stage 1.
#![forbid(unsafe_code)]

pub mod acpi;
pub mod bounds;
pub mod checksum;
pub mod crc32;
pub mod deferred;
pub mod efimap;
pub mod layout;
pub mod load;
pub mod mb1_header;
pub mod mb1_info;
pub mod mb2_efi_info;
pub mod mb2_header;
pub mod mb2_info;
pub mod memory;
pub mod place;
pub mod ptable;
pub mod rebase;
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
