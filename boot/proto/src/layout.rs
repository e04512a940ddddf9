//! Where things are: the physical memory the bootloader uses below 1 MiB and
//! the places on disk that stage 1, stage 2 and the packager agree on.
//!
//! Physical memory while stage 2 runs (identity-mapped in long mode):
//!
//! ```text
//! 0x00000-0x004FF  real-mode IVT and BIOS data area (the BIOS's)
//! 0x00500-0x00FFF  unused: page 0 is the kernel's NULL guard (Solo5);
//!                  with the loader's `timestamps` feature stage 1 keeps
//!                  three time marks at STAGE1_MARKS_ADDR
//! 0x01000-0x01FFF  FAST_PRD: the PIIX bus-master PRD table (fast reads)
//! 0x02000-0x05FFF  FAST_VERIFY: fast reads compared with the BIOS's
//! 0x06000-0x07BFF  real-mode stack for stage 1 and BIOS calls (top 0x7C00)
//! 0x07C00-0x07DFF  stage 1, the MBR (partition table at 0x7DBE)
//! 0x07E00-0x2FFFF  stage 2: code, data, then bss (page tables, stack)
//! 0x30000-0x3FFFF  BOUNCE: BIOS disk reads land here; once everything
//!                  is loaded, the VBE calls' buffers
//! 0x40000-0x4FFFF  RECORD_BUF: the configuration record
//! 0x50000-0x7FFFF  INFO_ARENA: the Multiboot 1 information or Multiboot 2
//!                  information block and everything they point to (memory
//!                  map, names, command line, module list and strings, ELF
//!                  section headers, RSDP copy); checked against the E820
//!                  map at boot
//! 0x80000-0x8FFFF  FAST_DMA: the fast read paths' controller structures
//!                  (AHCI command list, FIS and table; virtio request
//!                  headers) in its lower half and their staging buffer
//!                  (reads that cannot go straight to the kernel: odd
//!                  addresses, partial sectors) in its upper half, used
//!                  only while stage 2 loads and only if the E820 map says
//!                  it is usable RAM
//! 0x90000-0x9FFFF  left alone (the EBDA sits just below 0xA0000)
//! 0x100000-        the kernel, then the modules, page-aligned above the
//!                  kernel's end, below 4 GiB
//! ```
//!
//! A kernel may also load below 1 MiB, anywhere from [`KERNEL_FLOOR`] up
//! that the BIOS reports usable: segments over [`LOADER_MEMORY`] are staged
//! elsewhere and moved into place as the last step before the jump
//! ([`crate::relocate`]).
//!
//! Stage 2's linker script asserts that its image and bss end below
//! [`BOUNCE_ADDR`].

/// Sector size of every disk bootpack writes and reads.
pub const SECTOR: u64 = 512;

/// Stage 1's time marks in profiling builds (feature `timestamps`): the
/// low halves of the TSC when it got control, began reading stage 2 and
/// had read it (asm/macros.s S1_MARK hard-codes this address).
pub const STAGE1_MARKS_ADDR: u32 = 0x600;

/// Where the BIOS loads stage 1.
pub const STAGE1_ADDR: u32 = 0x7C00;
/// Where stage 1 loads stage 2 (right behind itself).
pub const STAGE2_ADDR: u32 = 0x7E00;
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

/// Multiboot information and everything it points to: out of page 0 (the
/// kernel's NULL guard), below 1 MiB (clear of anything the kernel loads),
/// 8-byte aligned (Multiboot 2). Up to 128 modules with long strings, an
/// 8 KiB command line, a big memory map and the ELF section headers (at
/// most a record's worth, 64 KiB) fit: everything in it but the memory
/// map, the module list and the video blocks comes from the record.
pub const INFO_ARENA_ADDR: u32 = 0x50000;
pub const INFO_ARENA_LEN: usize = 0x30000;
/// Top of the real-mode stack (grows down towards the info arena).
pub const REAL_STACK_TOP: u32 = 0x7C00;
/// BIOS disk reads go here, then are copied to where they belong.
pub const BOUNCE_ADDR: u32 = 0x30000;
pub const BOUNCE_LEN: usize = 0x10000;
/// Sectors per BIOS read: 127 is the portable bound for INT 13h AH=42h and
/// fits the bounce buffer.
pub const SECTORS_PER_READ: u16 = 127;
/// Stage 2's own PIIX IDE DMA read path (boot/loader/src/fastdisk/): its PRD
/// table (dword-aligned, within one 64 KiB block, below 4 GiB) and the
/// buffer where its first reads are compared with the BIOS's.
pub const FAST_PRD_ADDR: u32 = 0x1000;
pub const FAST_PRD_LEN: usize = 0x1000;
pub const FAST_VERIFY_ADDR: u32 = 0x2000;
pub const FAST_VERIFY_LEN: usize = 0x4000;
/// The other fast read paths' controller structures (AHCI, virtio):
/// 4 KiB-aligned, below 1 MiB, clear of the info arena and the EBDA.
pub const FAST_DMA_ADDR: u32 = 0x80000;
pub const FAST_DMA_LEN: usize = 0x10000;
/// The configuration record is read here whole.
pub const RECORD_BUF_ADDR: u32 = 0x40000;
pub const RECORD_BUF_LEN: usize = 0x10000;

/// Nothing the kernel loads may lie below this: the real-mode interrupt
/// vector table and the BIOS data area (0-0x4FF), which the BIOS and the
/// loader's BIOS calls need until the very end. Everything above may hold a
/// kernel segment, if the machine's memory map says it is usable RAM.
pub const KERNEL_FLOOR: u64 = 0x500;
/// The memory stage 2 uses below 1 MiB while it loads and hands over (the
/// map above, from stage 1's time marks to FAST_DMA): a kernel segment
/// that overlaps it is staged and moved into place last.
pub const LOADER_MEMORY: (u64, u64) = (0x500, 0x9_0000);
/// Where relocated Multiboot information must end: Solo5 before 0.7 maps
/// only the first 1 GiB.
pub const INFO_CEILING: u64 = 0x4000_0000;
/// Nor at or above this: stage 2 identity-maps the low 4 GiB, and Multiboot 1
/// addresses are 32 bits.
pub const KERNEL_CEILING: u64 = 0x1_0000_0000;

/// Command lines are handed over NUL-terminated; Solo5 copies them into an
/// 8192-byte buffer, so the whole string including the NUL must fit there.
pub const CMDLINE_MAX: usize = 8192;
