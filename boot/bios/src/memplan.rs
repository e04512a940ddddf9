//! The BIOS loader's memory plan: what stage 1 and stage 2 use below
//! 1 MiB while they load and hand over.
//!
//! It is the BIOS loader's alone (a UEFI loader gets its memory from the
//! firmware, which owns low memory there), so it lives here and not in
//! bootpack_proto, which keeps the firmware-neutral disk plan and protocol
//! limits (`bootpack_proto::layout`). It has no dependencies: the tests,
//! which check where things land, include this file as a module.
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
//! A kernel may also load below 1 MiB, anywhere from
//! `bootpack_proto::layout::KERNEL_FLOOR` up that the BIOS reports usable:
//! segments over [`LOADER_MEMORY`] are staged elsewhere and moved into
//! place as the last step before the jump (`bootpack_proto::relocate`).
//!
//! Stage 2's linker script asserts that its image and bss end below
//! [`BOUNCE_ADDR`]; stage 1 and the assembly hard-code the addresses they
//! use (noted at each), which is why some constants have no Rust user.
#![allow(dead_code)]

/// Stage 1's time marks in profiling builds (feature `timestamps`): the
/// low halves of the TSC when it got control, began reading stage 2 and
/// had read it (asm/macros.s S1_MARK hard-codes this address).
pub const STAGE1_MARKS_ADDR: u32 = 0x600;

/// Where the BIOS loads stage 1.
pub const STAGE1_ADDR: u32 = 0x7C00;
/// Where stage 1 loads stage 2 (right behind itself).
pub const STAGE2_ADDR: u32 = 0x7E00;

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
/// Stage 2's own PIIX IDE DMA read path (fastdisk/): its PRD table
/// (dword-aligned, within one 64 KiB block, below 4 GiB) and the buffer
/// where its first reads are compared with the BIOS's.
pub const FAST_PRD_ADDR: u32 = 0x1000;
pub const FAST_PRD_LEN: usize = 0x1000;
pub const FAST_VERIFY_ADDR: u32 = 0x2000;
pub const FAST_VERIFY_LEN: usize = 0x4000;
/// The other fast read paths' controller structures (AHCI, virtio):
/// 4 KiB-aligned, below 1 MiB, clear of the info arena and the EBDA.
pub const FAST_DMA_ADDR: u32 = 0x80000;
pub const FAST_DMA_LEN: usize = 0x10000;
/// The configuration record is read here whole (it holds
/// bootpack_proto::record::RECORD_MAX bytes; main.rs asserts it).
pub const RECORD_BUF_ADDR: u32 = 0x40000;
pub const RECORD_BUF_LEN: usize = 0x10000;

/// The memory stage 2 uses below 1 MiB while it loads and hands over (the
/// map above, from stage 1's time marks to FAST_DMA): a kernel segment
/// that overlaps it is staged and moved into place last, and nothing else
/// is placed there.
pub const LOADER_MEMORY: (u64, u64) = (0x500, 0x9_0000);
