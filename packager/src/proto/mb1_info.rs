//! Building the Multiboot 1 information structure.
//!
//! Everything is written into one arena (a byte slice the loader places:
//! the BIOS stage 2 at its memory plan's INFO_ARENA_ADDR); pointers in the structure are
//! physical addresses computed from the arena's base. Layout inside the
//! arena, in this order, each part 8-byte aligned:
//!
//! ```text
//! info structure (INFO_LEN bytes)
//! memory map: one 24-byte entry per E820 entry (size = 20, base, length, type)
//! module list: one 16-byte entry per module (mod_start, mod_end, string, 0)
//! boot loader name, NUL-terminated
//! command line, NUL-terminated
//! module strings, each NUL-terminated
//! with a video mode (8-byte aligned): the VBE controller information
//! (512 bytes), the VBE mode information (256 bytes), then for an indexed
//! framebuffer its palette (3 bytes per colour)
//! ```

use super::le;
use super::memory::{mem_lower_kib, mem_upper_kib, Region};
use super::video::{
    rebase_control_info, FbKind, VideoInfo, CONTROLLER_INFO_LEN, MODE_INFO_LEN, PALETTE,
};

/// EAX at kernel entry.
pub const BOOTLOADER_MAGIC: u32 = 0x2BAD_B002;

/// Info flag bits (Multiboot 1 spec, section 3.3).
pub const INFO_MEMORY: u32 = 1 << 0;
pub const INFO_BOOTDEV: u32 = 1 << 1;
pub const INFO_CMDLINE: u32 = 1 << 2;
pub const INFO_MODS: u32 = 1 << 3;
pub const INFO_MEM_MAP: u32 = 1 << 6;
pub const INFO_BOOT_LOADER_NAME: u32 = 1 << 9;
pub const INFO_VBE: u32 = 1 << 11;
pub const INFO_FRAMEBUFFER: u32 = 1 << 12;

/// Size of the info structure: 120 bytes as GRUB's multiboot.h lays it
/// out (see [`COLOR_INFO`]); fields of absent parts stay zero.
pub const INFO_LEN: usize = 0x78;
/// Offset of the framebuffer colour information. The specification's
/// table says 110, but its own multiboot.h (which GRUB fills and kernels
/// compile against, the Debian `multiboot` example kernel among them)
/// puts the union after 2 bytes of padding, at 112: real kernels read it
/// there.
pub const COLOR_INFO: usize = 112;
/// Bytes per memory map entry: the 4-byte size field plus 20 bytes.
pub const MMAP_ENTRY_LEN: usize = 24;
/// Bytes per module list entry.
pub const MOD_ENTRY_LEN: usize = 16;

/// A module as loaded: where it lies and its string.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ModuleInfo<'a> {
    pub start: u32,
    /// One past the last byte.
    pub end: u32,
    /// The module's string with its terminating NUL.
    pub string: &'a [u8],
}

/// The disk the kernel was loaded from, as a BIOS names it: Multiboot 1's
/// `boot_device`, Multiboot 2's BIOS boot device tag (type 5). Only a
/// loader booted by a BIOS has one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BiosBootDevice {
    /// BIOS drive number (0x80 for the first hard disk).
    pub drive: u8,
    /// 0-based index of the kernel's partition (0xFF: none can be named).
    pub partition: u8,
}

/// What goes into the information, whatever the firmware: the part both
/// Multiboot versions carry (Multiboot 2 adds its own in
/// [`super::mb2_info::Mbi2Spec`], where a UEFI loader's tags go too).
#[derive(Clone, Copy, Debug)]
pub struct InfoSpec<'a> {
    /// The machine's memory map, in the firmware's order.
    pub memory: &'a [Region],
    /// The BIOS boot device; None (no field, no tag) without a BIOS.
    pub boot_device: Option<BiosBootDevice>,
    /// The command line with its terminating NUL.
    pub cmdline: &'a [u8],
    /// The boot loader name without NUL.
    pub loader_name: &'a [u8],
    pub modules: &'a [ModuleInfo<'a>],
    /// The video mode set for the kernel, if it asked for one.
    pub video: Option<&'a VideoInfo>,
}

/// Where each part ended up, as physical addresses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InfoAddrs {
    pub info: u32,
    pub mmap: u32,
    pub mmap_len: u32,
    pub mods: u32,
    pub loader_name: u32,
    pub cmdline: u32,
    /// One past the last byte used.
    pub end: u32,
}

/// The arena is too small for this information.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ArenaFull {
    pub needed: usize,
}

fn align8(x: usize) -> usize {
    (x + 7) & !7
}

/// The `boot_device` field: drive, then partition, sub-partitions unused.
pub fn boot_device(drive: u8, partition: u8) -> u32 {
    (drive as u32) << 24 | (partition as u32) << 16 | 0xFFFF
}

/// Offsets of the parts in the arena: memory map, module list, loader
/// name, command line, module strings, VBE blocks, palette, end.
fn layout(spec: &InfoSpec) -> [usize; 8] {
    let mmap_off = align8(INFO_LEN);
    let mmap_len = spec.memory.len() * MMAP_ENTRY_LEN;
    let mods_off = align8(mmap_off + mmap_len);
    let name_off = mods_off + spec.modules.len() * MOD_ENTRY_LEN;
    let cmd_off = align8(name_off + spec.loader_name.len() + 1);
    let strings_off = cmd_off + spec.cmdline.len();
    let strings_end = strings_off + spec.modules.iter().map(|m| m.string.len()).sum::<usize>();
    let vbe_off = align8(strings_end);
    let palette_off = vbe_off + CONTROLLER_INFO_LEN + MODE_INFO_LEN;
    let end = match spec.video {
        None => strings_end,
        Some(v) => match v.fb.kind {
            FbKind::Indexed { colors } => palette_off + 3 * colors as usize,
            _ => palette_off,
        },
    };
    [
        mmap_off,
        mods_off,
        name_off,
        cmd_off,
        strings_off,
        vbe_off,
        palette_off,
        end,
    ]
}

/// Bytes the information needs.
pub fn size(spec: &InfoSpec) -> usize {
    layout(spec)[7]
}

/// Writes the information into `arena`, which lies at physical `base`.
pub fn build(spec: &InfoSpec, arena: &mut [u8], base: u32) -> Result<InfoAddrs, ArenaFull> {
    let [mmap_off, mods_off, name_off, cmd_off, strings_off, vbe_off, palette_off, end] =
        layout(spec);
    let mmap_len = spec.memory.len() * MMAP_ENTRY_LEN;
    if end > arena.len() {
        return Err(ArenaFull { needed: end });
    }
    arena[..end].fill(0);
    let at = |off: usize| base + off as u32;

    let mut s = strings_off;
    for (i, m) in spec.modules.iter().enumerate() {
        let o = mods_off + i * MOD_ENTRY_LEN;
        le::put_u32(arena, o, m.start);
        le::put_u32(arena, o + 4, m.end);
        le::put_u32(arena, o + 8, at(s));
        arena[s..s + m.string.len()].copy_from_slice(m.string);
        s += m.string.len();
    }

    for (i, e) in spec.memory.iter().enumerate() {
        let o = mmap_off + i * MMAP_ENTRY_LEN;
        le::put_u32(arena, o, (MMAP_ENTRY_LEN - 4) as u32);
        le::put_u64(arena, o + 4, e.base);
        le::put_u64(arena, o + 12, e.len);
        le::put_u32(arena, o + 20, e.kind);
    }
    arena[name_off..name_off + spec.loader_name.len()].copy_from_slice(spec.loader_name);
    arena[cmd_off..strings_off].copy_from_slice(spec.cmdline);

    let mut flags = INFO_MEMORY | INFO_CMDLINE | INFO_MODS | INFO_MEM_MAP | INFO_BOOT_LOADER_NAME;
    if let Some(v) = spec.video {
        flags |= video(v, arena, vbe_off, palette_off, base);
    }
    if spec.boot_device.is_some() {
        flags |= INFO_BOOTDEV;
    }
    let info = &mut arena[..INFO_LEN];
    le::put_u32(info, 0, flags);
    le::put_u32(info, 4, mem_lower_kib(spec.memory));
    le::put_u32(info, 8, mem_upper_kib(spec.memory));
    if let Some(d) = spec.boot_device {
        le::put_u32(info, 12, boot_device(d.drive, d.partition));
    }
    le::put_u32(info, 16, at(cmd_off));
    // As GRUB: the module flag is set even with no modules.
    le::put_u32(info, 20, spec.modules.len() as u32);
    le::put_u32(info, 24, at(mods_off));
    le::put_u32(info, 44, mmap_len as u32);
    le::put_u32(info, 48, at(mmap_off));
    le::put_u32(info, 64, at(name_off));
    Ok(InfoAddrs {
        info: base,
        mmap: at(mmap_off),
        mmap_len: mmap_len as u32,
        mods: at(mods_off),
        loader_name: at(name_off),
        cmdline: at(cmd_off),
        end: at(end),
    })
}

/// Writes the VBE blocks, the palette and the video fields (GRUB's
/// layout) and returns the flag bits to set.
fn video(v: &VideoInfo, arena: &mut [u8], vbe_off: usize, palette_off: usize, base: u32) -> u32 {
    let mut flags = INFO_FRAMEBUFFER;
    if let Some(vbe) = &v.vbe {
        let mode_off = vbe_off + CONTROLLER_INFO_LEN;
        let mut control = vbe.control_info;
        rebase_control_info(&mut control, vbe.control_info_addr, base + vbe_off as u32);
        arena[vbe_off..mode_off].copy_from_slice(&control);
        arena[mode_off..palette_off].copy_from_slice(&vbe.mode_info);
        le::put_u32(arena, 72, base + vbe_off as u32);
        le::put_u32(arena, 76, base + mode_off as u32);
        le::put_u16(arena, 80, vbe.mode);
        le::put_u16(arena, 82, vbe.interface_seg);
        le::put_u16(arena, 84, vbe.interface_off);
        le::put_u16(arena, 86, vbe.interface_len);
        flags |= INFO_VBE;
    }
    let fb = &v.fb;
    le::put_u64(arena, 88, fb.addr);
    le::put_u32(arena, 96, fb.pitch);
    le::put_u32(arena, 100, fb.width);
    le::put_u32(arena, 104, fb.height);
    arena[108] = fb.bpp;
    arena[109] = fb.type_code();
    match fb.kind {
        FbKind::Indexed { colors } => {
            le::put_u32(arena, COLOR_INFO, base + palette_off as u32);
            le::put_u16(arena, COLOR_INFO + 4, colors);
            for (i, (r, g, b)) in PALETTE.iter().take(colors as usize).enumerate() {
                arena[palette_off + 3 * i..palette_off + 3 * i + 3].copy_from_slice(&[*r, *g, *b]);
            }
        }
        FbKind::Rgb {
            red_pos,
            red_size,
            green_pos,
            green_size,
            blue_pos,
            blue_size,
        } => arena[COLOR_INFO..COLOR_INFO + 6].copy_from_slice(&[
            red_pos, red_size, green_pos, green_size, blue_pos, blue_size,
        ]),
        FbKind::EgaText => {}
    }
    flags
}

#[cfg(test)]
mod tests {
    use super::super::video::{text_mode_info, Framebuffer, Vbe};
    use super::*;

    #[test]
    fn builds_every_field() {
        let map = [
            Region {
                base: 0,
                len: 0x9fc00,
                kind: 1,
            },
            Region {
                base: 0x100000,
                len: 0x7ee0000,
                kind: 1,
            },
        ];
        let mut arena = [0xAAu8; 1024];
        let a = build(
            &InfoSpec {
                memory: &map,
                boot_device: Some(BiosBootDevice {
                    drive: 0x80,
                    partition: 0,
                }),
                cmdline: b"k x\0",
                loader_name: b"bootpack 0.1.0",
                modules: &[
                    ModuleInfo {
                        start: 0x200000,
                        end: 0x200010,
                        string: b"initrd a=b\0",
                    },
                    ModuleInfo {
                        start: 0x201000,
                        end: 0x201000,
                        string: b"\0",
                    },
                ],
                video: None,
            },
            &mut arena,
            0x1000,
        )
        .unwrap();
        assert_eq!(le::u32(&arena, 0), 0x24f);
        assert_eq!(le::u32(&arena, 20), 2);
        assert_eq!(le::u32(&arena, 24), a.mods);
        let mo = (a.mods - 0x1000) as usize;
        assert_eq!(le::u32(&arena, mo), 0x200000);
        assert_eq!(le::u32(&arena, mo + 4), 0x200010);
        let s0 = (le::u32(&arena, mo + 8) - 0x1000) as usize;
        assert_eq!(&arena[s0..s0 + 11], b"initrd a=b\0");
        assert_eq!(le::u32(&arena, mo + 16 + 4), 0x201000);
        let s1 = (le::u32(&arena, mo + 16 + 8) - 0x1000) as usize;
        assert_eq!((s1, arena[s1]), (s0 + 11, 0));
        assert_eq!(le::u32(&arena, 4), 639);
        assert_eq!(le::u32(&arena, 8), 0x7ee0000 / 1024);
        assert_eq!(le::u32(&arena, 12), 0x8000_FFFF);
        assert_eq!(le::u32(&arena, 16), a.cmdline);
        assert_eq!(le::u32(&arena, 44), 48);
        assert_eq!(le::u32(&arena, 48), 0x1078);
        assert!(arena[72..INFO_LEN].iter().all(|b| *b == 0));
        let m = (a.mmap - 0x1000) as usize;
        assert_eq!(le::u32(&arena, m + 24), 20);
        assert_eq!(le::u64(&arena, m + 28), 0x100000);
        assert_eq!(le::u32(&arena, m + 44), 1);
        let n = (a.loader_name - 0x1000) as usize;
        assert_eq!(&arena[n..n + 15], b"bootpack 0.1.0\0");
        let c = (a.cmdline - 0x1000) as usize;
        assert_eq!(&arena[c..c + 4], b"k x\0");
        assert_eq!(a.end, a.cmdline + 4 + 12);
        assert_eq!(
            size(&InfoSpec {
                memory: &map,
                boot_device: Some(BiosBootDevice {
                    drive: 0x80,
                    partition: 0,
                }),
                cmdline: b"k x\0",
                loader_name: b"bootpack 0.1.0",
                modules: &[ModuleInfo {
                    start: 0,
                    end: 0,
                    string: b"initrd a=b\0\0",
                }],
                video: None,
            }),
            (a.end - 0x1000) as usize - 16
        );
    }

    #[test]
    fn reports_a_full_arena() {
        let mut arena = [0u8; 64];
        let spec = InfoSpec {
            memory: &[],
            boot_device: Some(BiosBootDevice {
                drive: 0x80,
                partition: 1,
            }),
            cmdline: b"\0",
            loader_name: b"x",
            modules: &[],
            video: None,
        };
        assert!(build(&spec, &mut arena, 0x1000).is_err());
    }

    #[test]
    fn no_boot_device_field_without_a_bios_boot_device() {
        let mut arena = [0xAAu8; 512];
        let spec = InfoSpec {
            memory: &[],
            boot_device: None,
            cmdline: b"\0",
            loader_name: b"x",
            modules: &[],
            video: None,
        };
        build(&spec, &mut arena, 0x1000).unwrap();
        assert_eq!(le::u32(&arena, 0) & INFO_BOOTDEV, 0);
        assert_eq!(le::u32(&arena, 0) & INFO_MEM_MAP, INFO_MEM_MAP);
        assert_eq!(le::u32(&arena, 12), 0);
    }

    fn vbe() -> Vbe {
        let mut control_info = [0u8; CONTROLLER_INFO_LEN];
        control_info[..4].copy_from_slice(b"VESA");
        // The mode list inside the block, at 0x2000:0x0100.
        control_info[14..18].copy_from_slice(&[0x00, 0x01, 0x00, 0x20]);
        let mut mode_info = [0u8; MODE_INFO_LEN];
        mode_info[0x12] = 0x55;
        Vbe {
            control_info,
            control_info_addr: 0x20000,
            mode_info,
            mode: 0x4144,
            interface_seg: 0xC000,
            interface_off: 0x1234,
            interface_len: 0x40,
        }
    }

    fn with_video(v: &VideoInfo, arena: &mut [u8]) -> InfoAddrs {
        let spec = InfoSpec {
            memory: &[],
            boot_device: Some(BiosBootDevice {
                drive: 0x80,
                partition: 0,
            }),
            cmdline: b"k\0",
            loader_name: b"x",
            modules: &[],
            video: Some(v),
        };
        build(&spec, arena, 0x1000).unwrap()
    }

    #[test]
    fn builds_the_vbe_and_rgb_framebuffer_fields() {
        let v = VideoInfo {
            vbe: Some(vbe()),
            fb: super::super::video::TEST_FB_1024X768X32,
        };
        let mut arena = [0xAAu8; 2048];
        let a = with_video(&v, &mut arena);
        assert_eq!(le::u32(&arena, 0), 0x24f | INFO_VBE | INFO_FRAMEBUFFER);
        let ci = (le::u32(&arena, 72) - 0x1000) as usize;
        let mi = (le::u32(&arena, 76) - 0x1000) as usize;
        assert_eq!(ci % 8, 0);
        assert_eq!(&arena[ci..ci + 4], b"VESA");
        let list = le::u16(&arena, ci + 16) as usize * 16 + le::u16(&arena, ci + 14) as usize;
        assert_eq!(
            list,
            0x1000 + ci + 0x100,
            "the mode list pointer follows the copy"
        );
        assert_eq!(mi, ci + 512);
        assert_eq!(arena[mi + 0x12], 0x55);
        assert_eq!(a.end as usize, 0x1000 + mi + 256);
        assert_eq!(
            [80, 82, 84, 86].map(|o| le::u16(&arena, o)),
            [0x4144, 0xC000, 0x1234, 0x40]
        );
        assert_eq!(le::u64(&arena, 88), 0xFD00_0000);
        assert_eq!(
            [96, 100, 104].map(|o| le::u32(&arena, o)),
            [4096, 1024, 768]
        );
        assert_eq!(&arena[108..118], &[32, 1, 0, 0, 16, 8, 8, 8, 0, 8]);
    }

    #[test]
    fn builds_ega_text_and_indexed_fields() {
        let mut v = vbe();
        v.mode = 3;
        v.mode_info = text_mode_info();
        let text = VideoInfo {
            vbe: Some(v),
            fb: Framebuffer::EGA_TEXT,
        };
        let mut arena = [0xAAu8; 2048];
        with_video(&text, &mut arena);
        assert_eq!(le::u16(&arena, 80), 3);
        let mi = (le::u32(&arena, 76) - 0x1000) as usize;
        assert_eq!((arena[mi + 0x1B], le::u16(&arena, mi + 0x12)), (0, 80));
        assert_eq!(le::u64(&arena, 88), 0xB8000);
        assert_eq!([96, 100, 104].map(|o| le::u32(&arena, o)), [160, 80, 25]);
        assert_eq!(&arena[108..120], &[16, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);

        let indexed = VideoInfo {
            vbe: Some(vbe()),
            fb: Framebuffer {
                addr: 0xFD00_0000,
                pitch: 1024,
                width: 1024,
                height: 768,
                bpp: 8,
                kind: FbKind::Indexed { colors: 16 },
            },
        };
        let mut arena = [0xAAu8; 2048];
        let a = with_video(&indexed, &mut arena);
        assert_eq!(arena[109], 0);
        let p = le::u32(&arena, 112);
        assert_eq!(le::u16(&arena, 116), 16);
        assert_eq!(a.end, p + 48);
        let p = (p - 0x1000) as usize;
        assert_eq!(&arena[p + 3..p + 6], &[0, 0, 0xA8]);
        assert_eq!(&arena[p + 45..p + 48], &[0xFE, 0xFE, 0xFE]);
    }
}
