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
//!  7 VBE info                  vbe_mode, interface seg/off/len (u16 each),
//!                              controller info (512), mode info (256);
//!                              only with a graphics mode, as GRUB
//!  8 framebuffer info          addr u64, pitch, width, height (u32), bpp
//!                              u8, type u8, reserved u16, then for type 1
//!                              red/green/blue position and size (u8 each),
//!                              for type 0 num_colors u16 and the palette
//!                              (3 bytes a colour), for type 2 nothing;
//!                              only when the kernel asked for video
//!  0 end
//! ```

use super::le;
use super::mb1_info::{ArenaFull, InfoSpec};
use super::memory::{mem_lower_kib, mem_upper_kib};
use super::record::ElfSections;
use super::video::{
    rebase_control_info, FbKind, VideoInfo, CONTROLLER_INFO_LEN, MODE_INFO_LEN, PALETTE,
};

pub const TAG_END: u32 = 0;
pub const TAG_CMDLINE: u32 = 1;
pub const TAG_LOADER_NAME: u32 = 2;
pub const TAG_MODULE: u32 = 3;
pub const TAG_BASIC_MEMINFO: u32 = 4;
pub const TAG_BOOTDEV: u32 = 5;
pub const TAG_MMAP: u32 = 6;
pub const TAG_VBE: u32 = 7;
pub const TAG_FRAMEBUFFER: u32 = 8;
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

/// Bytes of the VBE tag.
const VBE_TAG_LEN: usize = 16 + CONTROLLER_INFO_LEN + MODE_INFO_LEN;
/// Bytes of the framebuffer tag's common part.
const FB_COMMON_LEN: usize = 32;

/// Whether the VBE tag is given: with a graphics mode only (GRUB gives none
/// with the text console).
fn vbe_tag(v: &VideoInfo) -> bool {
    v.vbe.is_some() && v.fb.kind != FbKind::EgaText
}

fn fb_tag_len(v: &VideoInfo) -> usize {
    FB_COMMON_LEN
        + match v.fb.kind {
            FbKind::Indexed { colors } => 2 + 3 * colors as usize,
            FbKind::Rgb { .. } => 6,
            FbKind::EgaText => 0,
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
        + spec.common.boot_device.map_or(0, |_| tag(12))
        + tag(8 + spec.common.memory.len() * MMAP_ENTRY_LEN)
        + spec.elf_sections.map_or(0, |e| tag(12 + e.headers.len()))
        + spec.rsdp.map_or(0, |r| tag(r.len()))
        + spec.common.video.map_or(0, |v| {
            align8(fb_tag_len(v)) + if vbe_tag(v) { VBE_TAG_LEN } else { 0 }
        })
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
            mem_lower_kib(spec.common.memory),
            mem_upper_kib(spec.common.memory),
        ],
        &[],
    );
    if let Some(d) = spec.common.boot_device {
        w.tag(
            TAG_BOOTDEV,
            &[d.drive as u32, d.partition as u32, 0xFFFF_FFFF],
            &[],
        );
    }
    let mmap = w.tag(TAG_MMAP, &[MMAP_ENTRY_LEN as u32, 0], &[]);
    let entries = mmap + 16;
    for (i, e) in spec.common.memory.iter().enumerate() {
        let o = entries + i * MMAP_ENTRY_LEN;
        le::put_u64(w.arena, o, e.base);
        le::put_u64(w.arena, o + 8, e.len);
        le::put_u32(w.arena, o + 16, e.kind);
    }
    let mmap_size = 16 + spec.common.memory.len() * MMAP_ENTRY_LEN;
    le::put_u32(w.arena, mmap + 4, mmap_size as u32);
    w.at = align8(mmap + mmap_size);
    if let Some(e) = spec.elf_sections {
        w.tag(TAG_ELF_SECTIONS, &[e.num, e.entsize, e.shndx], e.headers);
    }
    if let Some(r) = spec.rsdp {
        let ty = if r.len() > super::acpi::V1_LEN {
            TAG_ACPI_NEW
        } else {
            TAG_ACPI_OLD
        };
        w.tag(ty, &[], r);
    }
    if let Some(v) = spec.common.video {
        video(&mut w, v, base);
    }
    w.tag(TAG_END, &[], &[]);
    debug_assert_eq!(w.at, total);
    le::put_u32(w.arena, 0, total as u32);
    Ok(base)
}

/// Writes the VBE tag (graphics modes) and the framebuffer tag.
fn video(w: &mut Writer, v: &VideoInfo, base: u32) {
    if let (true, Some(vbe)) = (vbe_tag(v), &v.vbe) {
        let o = w.at;
        le::put_u32(w.arena, o, TAG_VBE);
        le::put_u32(w.arena, o + 4, VBE_TAG_LEN as u32);
        le::put_u16(w.arena, o + 8, vbe.mode);
        le::put_u16(w.arena, o + 10, vbe.interface_seg);
        le::put_u16(w.arena, o + 12, vbe.interface_off);
        le::put_u16(w.arena, o + 14, vbe.interface_len);
        let ci = o + 16;
        let mi = ci + CONTROLLER_INFO_LEN;
        let mut control = vbe.control_info;
        rebase_control_info(&mut control, vbe.control_info_addr, base + ci as u32);
        w.arena[ci..mi].copy_from_slice(&control);
        w.arena[mi..mi + MODE_INFO_LEN].copy_from_slice(&vbe.mode_info);
        w.at = align8(o + VBE_TAG_LEN);
    }
    let o = w.at;
    let fb = &v.fb;
    let len = fb_tag_len(v);
    le::put_u32(w.arena, o, TAG_FRAMEBUFFER);
    le::put_u32(w.arena, o + 4, len as u32);
    le::put_u64(w.arena, o + 8, fb.addr);
    le::put_u32(w.arena, o + 16, fb.pitch);
    le::put_u32(w.arena, o + 20, fb.width);
    le::put_u32(w.arena, o + 24, fb.height);
    w.arena[o + 28] = fb.bpp;
    w.arena[o + 29] = fb.type_code();
    let c = o + FB_COMMON_LEN;
    match fb.kind {
        FbKind::Indexed { colors } => {
            le::put_u16(w.arena, c, colors);
            for (i, (r, g, b)) in PALETTE.iter().take(colors as usize).enumerate() {
                w.arena[c + 2 + 3 * i..c + 5 + 3 * i].copy_from_slice(&[*r, *g, *b]);
            }
        }
        FbKind::Rgb {
            red_pos,
            red_size,
            green_pos,
            green_size,
            blue_pos,
            blue_size,
        } => w.arena[c..c + 6].copy_from_slice(&[
            red_pos, red_size, green_pos, green_size, blue_pos, blue_size,
        ]),
        FbKind::EgaText => {}
    }
    w.at = align8(o + len);
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::super::mb1_info::{BiosBootDevice, ModuleInfo};
    use super::super::memory::Region;
    use super::*;
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
            Region {
                base: 0,
                len: 0x9fc00,
                kind: 1,
            },
            Region {
                base: 0x100000,
                len: 0xbfee0000,
                kind: 1,
            },
            Region {
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
                memory: &map,
                boot_device: Some(BiosBootDevice {
                    drive: 0x80,
                    partition: 0,
                }),
                cmdline: b"k a\0",
                loader_name: b"bootpack 0.1.0",
                modules: &mods,
                video: None,
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
                memory: &[],
                boot_device: Some(BiosBootDevice {
                    drive: 0x81,
                    partition: 1,
                }),
                cmdline: b"\0",
                loader_name: b"x",
                modules: &[],
                video: None,
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

    #[test]
    fn no_bios_boot_device_tag_without_a_bios_boot_device() {
        let spec = Mbi2Spec {
            common: InfoSpec {
                memory: &[],
                boot_device: None,
                cmdline: b"\0",
                loader_name: b"x",
                modules: &[],
                video: None,
            },
            elf_sections: None,
            load_base: 0x100000,
            rsdp: None,
        };
        let mut arena = [0u8; 512];
        build(&spec, &mut arena, 0x1000).unwrap();
        let types: Vec<u32> = tags(&arena).iter().map(|x| x.0).collect();
        assert_eq!(types, [21, 1, 2, 4, 6, 0]);
        assert_eq!(le::u32(&arena, 0) as usize, size(&spec));
    }

    fn video_block(v: &VideoInfo, arena: &mut [u8]) -> Vec<(u32, usize, usize)> {
        let spec = Mbi2Spec {
            common: InfoSpec {
                memory: &[],
                boot_device: Some(BiosBootDevice {
                    drive: 0x80,
                    partition: 0,
                }),
                cmdline: b"\0",
                loader_name: b"x",
                modules: &[],
                video: Some(v),
            },
            elf_sections: None,
            load_base: 0x100000,
            rsdp: None,
        };
        build(&spec, arena, 0x1000).unwrap();
        assert_eq!(le::u32(arena, 0) as usize, size(&spec));
        tags(arena)
    }

    #[test]
    fn video_tags_as_grub_lays_them_out() {
        use super::super::video::{Framebuffer, Vbe};
        let mut control_info = [0u8; CONTROLLER_INFO_LEN];
        control_info[..4].copy_from_slice(b"VESA");
        let vbe = Vbe {
            control_info,
            control_info_addr: 0x20000,
            mode_info: [0x77; MODE_INFO_LEN],
            mode: 0x4144,
            interface_seg: 0xC000,
            interface_off: 0x10,
            interface_len: 0x20,
        };
        let rgb = VideoInfo {
            vbe: Some(vbe),
            fb: super::super::video::TEST_FB_1024X768X32,
        };
        let mut arena = [0xAAu8; 2048];
        let t = video_block(&rgb, &mut arena);
        let types: Vec<u32> = t.iter().map(|x| x.0).collect();
        assert_eq!(types, [21, 1, 2, 4, 5, 6, 7, 8, 0]);
        let (_, o, s) = t[6];
        assert_eq!(s, 784);
        assert_eq!(
            [8, 10, 12, 14].map(|i| le::u16(&arena, o + i)),
            [0x4144, 0xC000, 0x10, 0x20]
        );
        assert_eq!(&arena[o + 16..o + 20], b"VESA");
        assert_eq!(arena[o + 16 + 512], 0x77);
        let (_, o, s) = t[7];
        assert_eq!(s, 38);
        assert_eq!(le::u64(&arena, o + 8), 0xFD00_0000);
        assert_eq!(
            [16, 20, 24].map(|i| le::u32(&arena, o + i)),
            [4096, 1024, 768]
        );
        assert_eq!(&arena[o + 28..o + 38], &[32, 1, 0, 0, 16, 8, 8, 8, 0, 8]);

        // The text console: no VBE tag, a type 2 framebuffer tag of 32 bytes.
        let text = VideoInfo {
            vbe: Some(vbe),
            fb: Framebuffer::EGA_TEXT,
        };
        let mut arena = [0xAAu8; 2048];
        let t = video_block(&text, &mut arena);
        let types: Vec<u32> = t.iter().map(|x| x.0).collect();
        assert_eq!(types, [21, 1, 2, 4, 5, 6, 8, 0]);
        let (_, o, s) = t[6];
        assert_eq!(s, 32);
        assert_eq!(le::u64(&arena, o + 8), 0xB8000);
        assert_eq!([16, 20, 24].map(|i| le::u32(&arena, o + i)), [160, 80, 25]);
        assert_eq!(&arena[o + 28..o + 32], &[16, 2, 0, 0]);

        // Indexed: num_colors and the palette.
        let mut indexed = rgb;
        indexed.fb.bpp = 8;
        indexed.fb.kind = FbKind::Indexed { colors: 16 };
        let mut arena = [0xAAu8; 2048];
        let t = video_block(&indexed, &mut arena);
        let (_, o, s) = t[7];
        assert_eq!(s, 32 + 2 + 48);
        assert_eq!(arena[o + 29], 0);
        assert_eq!(le::u16(&arena, o + 32), 16);
        assert_eq!(&arena[o + 34 + 3..o + 34 + 6], &[0, 0, 0xA8]);
    }
}
