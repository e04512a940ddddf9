//! Building the Multiboot 2 boot information (Multiboot 2 spec, section 3.6).
//!
//! The information is one 8-byte aligned block: `total_size: u32`,
//! `reserved: u32`, then tags, each `{type: u32, size: u32, ...}` starting
//! on an 8-byte boundary, ending with the end tag (type 0, size 8). Field
//! layouts follow GRUB's multiboot2.h, the reference implementation. Tags,
//! in this order:
//!
//! ```text
//! 21 image load base address   load_base_addr
//!  1 boot command line         string
//!  2 boot loader name          string
//!  3 module (one per module)   mod_start, mod_end, string
//!  4 basic memory information  mem_lower, mem_upper (KiB, as Multiboot 1)
//!  5 BIOS boot device          biosdev, partition, sub_partition
//!  6 memory map                entry_size 24, entry_version 0, entries
//!                              {base_addr: u64, length: u64, type: u32,
//!                              reserved: u32}, exactly as the BIOS gave them
//!  9 ELF symbols               num, entsize, shndx (u32 each, as GRUB),
//!                              the section headers (ELF kernels only)
//! 14 ACPI old RSDP / 15 new    a copy of the RSDP (if one was found)
//!  0 end
//! ```

use crate::e820::{mem_lower_kib, mem_upper_kib};
use crate::le;
use crate::mbinfo::{ArenaFull, InfoSpec};
use crate::record::ElfSections;

pub const TAG_END: u32 = 0;
pub const TAG_CMDLINE: u32 = 1;
pub const TAG_LOADER_NAME: u32 = 2;
pub const TAG_MODULE: u32 = 3;
pub const TAG_BASIC_MEMINFO: u32 = 4;
pub const TAG_BOOTDEV: u32 = 5;
pub const TAG_MMAP: u32 = 6;
pub const TAG_ELF_SECTIONS: u32 = 9;
pub const TAG_ACPI_OLD: u32 = 14;
pub const TAG_ACPI_NEW: u32 = 15;
pub const TAG_LOAD_BASE_ADDR: u32 = 21;

/// Bytes per memory map entry.
pub const MMAP_ENTRY_LEN: usize = 24;

/// Information tag types bootpack provides (for checking a kernel's
/// information requests at pack time), as a bit set. ELF symbols (9) only
/// for ELF kernels, so it is not in here; ACPI (14, 15) is provided as
/// found, as GRUB does.
pub const PROVIDED: u64 = 1 << TAG_CMDLINE
    | 1 << TAG_LOADER_NAME
    | 1 << TAG_MODULE
    | 1 << TAG_BASIC_MEMINFO
    | 1 << TAG_BOOTDEV
    | 1 << TAG_MMAP
    | 1 << TAG_ACPI_OLD
    | 1 << TAG_ACPI_NEW
    | 1 << TAG_LOAD_BASE_ADDR;

/// What goes into the information: what Multiboot 1 also gets, plus the
/// Multiboot 2 extras.
#[derive(Clone, Copy, Debug)]
pub struct Mbi2Spec<'a> {
    /// Memory map, boot device, command line, loader name and modules.
    pub common: InfoSpec<'a>,
    pub elf_sections: Option<ElfSections<'a>>,
    pub load_base: u32,
    /// The RSDP's bytes: 20 (revision 0, tag 14) or its length (tag 15).
    pub rsdp: Option<&'a [u8]>,
}

fn align8(x: usize) -> usize {
    (x + 7) & !7
}

/// Writes tags into an arena, tracking the offset.
struct Writer<'b> {
    arena: &'b mut [u8],
    at: usize,
}

impl Writer<'_> {
    /// Writes a tag header and `fixed` u32 fields, then `tail` bytes and
    /// `nuls` zero bytes (already zero); pads to 8. The caller has checked
    /// the size.
    fn tag_nul(&mut self, ty: u32, fixed: &[u32], tail: &[u8], nuls: usize) -> usize {
        let start = self.at;
        let size = 8 + 4 * fixed.len() + tail.len() + nuls;
        le::put_u32(self.arena, start, ty);
        le::put_u32(self.arena, start + 4, size as u32);
        for (i, v) in fixed.iter().enumerate() {
            le::put_u32(self.arena, start + 8 + 4 * i, *v);
        }
        let t = start + 8 + 4 * fixed.len();
        self.arena[t..t + tail.len()].copy_from_slice(tail);
        self.at = align8(start + size);
        start
    }

    fn tag(&mut self, ty: u32, fixed: &[u32], tail: &[u8]) -> usize {
        self.tag_nul(ty, fixed, tail, 0)
    }
}

/// Bytes the information needs.
pub fn size(spec: &Mbi2Spec) -> usize {
    let tag = |n: usize| align8(8 + n);
    8 + tag(4)
        + tag(spec.common.cmdline.len())
        + tag(spec.common.loader_name.len() + 1)
        + spec
            .common
            .modules
            .iter()
            .map(|m| tag(8 + m.string.len()))
            .sum::<usize>()
        + tag(8)
        + tag(12)
        + tag(8 + spec.common.e820.len() * MMAP_ENTRY_LEN)
        + spec.elf_sections.map_or(0, |e| tag(12 + e.headers.len()))
        + spec.rsdp.map_or(0, |r| tag(r.len()))
        + 8
}

/// Writes the information into `arena`, which lies at physical `base`
/// (8-byte aligned). Returns the address of the information (= base).
pub fn build(spec: &Mbi2Spec, arena: &mut [u8], base: u32) -> Result<u32, ArenaFull> {
    assert!(
        base.is_multiple_of(8),
        "Multiboot 2 information must be 8-byte aligned"
    );
    let total = size(spec);
    if total > arena.len() {
        return Err(ArenaFull { needed: total });
    }
    arena[..total].fill(0);
    let mut w = Writer { arena, at: 8 };
    w.tag(TAG_LOAD_BASE_ADDR, &[spec.load_base], &[]);
    w.tag(TAG_CMDLINE, &[], spec.common.cmdline);
    w.tag_nul(TAG_LOADER_NAME, &[], spec.common.loader_name, 1);
    for m in spec.common.modules {
        w.tag(TAG_MODULE, &[m.start, m.end], m.string);
    }
    w.tag(
        TAG_BASIC_MEMINFO,
        &[
            mem_lower_kib(spec.common.e820),
            mem_upper_kib(spec.common.e820),
        ],
        &[],
    );
    w.tag(
        TAG_BOOTDEV,
        &[
            spec.common.drive as u32,
            spec.common.partition as u32,
            0xFFFF_FFFF,
        ],
        &[],
    );
    let mmap = w.tag(TAG_MMAP, &[MMAP_ENTRY_LEN as u32, 0], &[]);
    let entries = mmap + 16;
    for (i, e) in spec.common.e820.iter().enumerate() {
        let o = entries + i * MMAP_ENTRY_LEN;
        le::put_u64(w.arena, o, e.base);
        le::put_u64(w.arena, o + 8, e.len);
        le::put_u32(w.arena, o + 16, e.kind);
    }
    let mmap_size = 16 + spec.common.e820.len() * MMAP_ENTRY_LEN;
    le::put_u32(w.arena, mmap + 4, mmap_size as u32);
    w.at = align8(mmap + mmap_size);
    if let Some(e) = spec.elf_sections {
        w.tag(TAG_ELF_SECTIONS, &[e.num, e.entsize, e.shndx], e.headers);
    }
    if let Some(r) = spec.rsdp {
        let ty = if r.len() > crate::acpi::V1_LEN {
            TAG_ACPI_NEW
        } else {
            TAG_ACPI_OLD
        };
        w.tag(ty, &[], r);
    }
    w.tag(TAG_END, &[], &[]);
    debug_assert_eq!(w.at, total);
    le::put_u32(w.arena, 0, total as u32);
    Ok(base)
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use crate::e820::E820Entry;
    use crate::mbinfo::ModuleInfo;
    use std::vec::Vec;

    /// (type, offset, size) of each tag, walking the block as a kernel does.
    fn tags(block: &[u8]) -> Vec<(u32, usize, usize)> {
        let total = le::u32(block, 0) as usize;
        let mut out = Vec::new();
        let mut at = 8;
        while at < total {
            let (ty, size) = (le::u32(block, at), le::u32(block, at + 4) as usize);
            out.push((ty, at, size));
            if ty == TAG_END {
                break;
            }
            at = align8(at + size);
        }
        out
    }

    #[test]
    fn builds_every_tag_8_byte_aligned() {
        let map = [
            E820Entry {
                base: 0,
                len: 0x9fc00,
                kind: 1,
            },
            E820Entry {
                base: 0x100000,
                len: 0xbfee0000,
                kind: 1,
            },
            E820Entry {
                base: 0x1_0000_0000,
                len: 0xc000_0000,
                kind: 1,
            },
        ];
        let mods = [
            ModuleInfo {
                start: 0x200000,
                end: 0x200005,
                string: b"initrd x=1\0",
            },
            ModuleInfo {
                start: 0x201000,
                end: 0x201000,
                string: b"\0",
            },
        ];
        let shdrs = [0x11u8; 3 * 40];
        let mut rsdp = [0u8; 20];
        rsdp[..8].copy_from_slice(b"RSD PTR ");
        let spec = Mbi2Spec {
            common: InfoSpec {
                e820: &map,
                drive: 0x80,
                partition: 0,
                cmdline: b"k a\0",
                loader_name: b"bootpack 0.1.0",
                modules: &mods,
            },
            elf_sections: Some(ElfSections {
                num: 3,
                entsize: 40,
                shndx: 2,
                headers: &shdrs,
            }),
            load_base: 0x100000,
            rsdp: Some(&rsdp),
        };
        let mut arena = [0xAAu8; 2048];
        assert_eq!(build(&spec, &mut arena, 0x40000), Ok(0x40000));
        let total = le::u32(&arena, 0) as usize;
        assert_eq!(total, size(&spec));
        let t = tags(&arena);
        let types: Vec<u32> = t.iter().map(|x| x.0).collect();
        assert_eq!(types, [21, 1, 2, 3, 3, 4, 5, 6, 9, 14, 0]);
        assert!(t.iter().all(|&(_, at, _)| at % 8 == 0));
        assert_eq!(t.last().unwrap().1 + 8, total);
        let find = |ty: u32| t.iter().find(|x| x.0 == ty).unwrap();
        let (_, o, s) = *find(21);
        assert_eq!((s, le::u32(&arena, o + 8)), (12, 0x100000));
        let (_, o, s) = *find(1);
        assert_eq!(&arena[o + 8..o + s], b"k a\0");
        let (_, o, s) = *find(2);
        assert_eq!(&arena[o + 8..o + s], b"bootpack 0.1.0\0");
        let (_, o, s) = t[3];
        assert_eq!(le::u32(&arena, o + 8), 0x200000);
        assert_eq!(le::u32(&arena, o + 12), 0x200005);
        assert_eq!(&arena[o + 16..o + s], b"initrd x=1\0");
        let (_, o, _) = *find(4);
        assert_eq!(le::u32(&arena, o + 8), 639);
        // mem_upper stops at the first hole, whatever lies above 4 GiB.
        assert_eq!(le::u32(&arena, o + 12), 0xbfee0000 / 1024);
        let (_, o, _) = *find(5);
        assert_eq!(
            [0, 4, 8].map(|i| le::u32(&arena, o + 8 + i)),
            [0x80, 0, 0xFFFF_FFFF]
        );
        let (_, o, s) = *find(6);
        assert_eq!(s, 16 + 3 * 24);
        assert_eq!((le::u32(&arena, o + 8), le::u32(&arena, o + 12)), (24, 0));
        assert_eq!(le::u64(&arena, o + 16 + 48), 0x1_0000_0000);
        assert_eq!(le::u64(&arena, o + 16 + 56), 0xc000_0000);
        assert_eq!(le::u32(&arena, o + 16 + 64), 1);
        let (_, o, s) = *find(9);
        assert_eq!(s, 20 + 120);
        assert_eq!([8, 12, 16].map(|i| le::u32(&arena, o + i)), [3, 40, 2]);
        assert_eq!(&arena[o + 20..o + s], &shdrs);
        let (_, o, s) = *find(14);
        assert_eq!(&arena[o + 8..o + s], &rsdp);
    }

    #[test]
    fn acpi_new_and_no_optional_tags() {
        let rsdp = [0u8; 36];
        let spec = Mbi2Spec {
            common: InfoSpec {
                e820: &[],
                drive: 0x81,
                partition: 1,
                cmdline: b"\0",
                loader_name: b"x",
                modules: &[],
            },
            elf_sections: None,
            load_base: 0x100000,
            rsdp: Some(&rsdp),
        };
        let mut arena = [0u8; 512];
        build(&spec, &mut arena, 0x1000).unwrap();
        let types: Vec<u32> = tags(&arena).iter().map(|x| x.0).collect();
        assert_eq!(types, [21, 1, 2, 4, 5, 6, 15, 0]);
        let mut small = [0u8; 64];
        assert_eq!(
            build(&spec, &mut small, 0x1000),
            Err(ArenaFull {
                needed: size(&spec)
            })
        );
    }
}
