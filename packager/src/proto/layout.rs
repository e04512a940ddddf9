//! Where things are on disk, and the limits of what bootpack loads: what
//! every loader, whatever its firmware, and the packager agree on.
//!
//! The BIOS loader's memory plan below 1 MiB (where stage 1 and stage 2,
//! their buffers and the Multiboot information live while it loads) is
//! that loader's own: boot/bios/src/memplan.rs. A UEFI loader gets its
//! memory from the firmware instead.

/// Sector size of every disk bootpack writes and reads.
pub const SECTOR: u64 = 512;

/// First sector of stage 2 on disk: right after the sectors a GPT with the
/// standard 128-entry array occupies (header at LBA 1, entries at 2-33), so
/// MBR and GPT images share one layout. Stage 1 reads it (LBA 34-160) with
/// 16-bit LBA arithmetic, also on its CHS path.
pub const STAGE2_LBA: u32 = 34;
/// Stage 1 reads stage 2 in one INT 13h extended read (AH=42h), or sector
/// by sector with CHS reads on a BIOS without the extensions; 127 sectors
/// is the most every BIOS accepts in one extended read. Stage 2 must fit in
/// this.
pub const STAGE2_MAX_SECTORS: u16 = 127;

/// The kernel partition starts here: 1 MiB aligned, leaving the gap for
/// stage 2.
pub const PARTITION_START_LBA: u32 = 2048;
/// MBR partition type of the kernel partition: 0x7F is reserved for
/// individual/experimental use, so no operating system tries to mount it.
pub const PARTITION_TYPE: u8 = 0x7F;

/// Nothing the kernel loads may lie below this: the real-mode interrupt
/// vector table and the BIOS data area (0-0x4FF), which the BIOS and the
/// loader's BIOS calls need until the very end. Everything above may hold a
/// kernel segment, if the machine's memory map says it is usable RAM.
pub const KERNEL_FLOOR: u64 = 0x500;
/// Nor at or above this: the loaders identity-map the low 4 GiB, and
/// Multiboot 1 addresses are 32 bits.
pub const KERNEL_CEILING: u64 = 0x1_0000_0000;
/// Where relocated Multiboot information must end: Solo5 before 0.7 maps
/// only the first 1 GiB.
pub const INFO_CEILING: u64 = 0x4000_0000;

/// Command lines are handed over NUL-terminated; Solo5 copies them into an
/// 8192-byte buffer, so the whole string including the NUL must fit there.
pub const CMDLINE_MAX: usize = 8192;
