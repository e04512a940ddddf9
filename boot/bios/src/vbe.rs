//! Setting the kernel's video mode through the VESA BIOS Extensions
//! (INT 10h, AX=4Fxxh) and reading back what to tell it. Which mode is
//! chosen is bootpack_proto::video's business (GRUB's rules); this module
//! only talks to the BIOS.
//!
//! The BIOS's buffers are in the bounce buffer, free once everything is
//! loaded; what the kernel gets is copied into the info arena by the
//! information builders.

use crate::bios::{self, Regs};
use crate::console;
use crate::fail::{self, Dec, Hex, Str};
use crate::memplan::BOUNCE_ADDR;
use bootpack_proto::video::{
    self, text_mode_info, Alternative, Framebuffer, Mode, ModeInfo, Request, Vbe, VideoInfo,
    CONTROLLER_INFO_LEN, MODE_INFO_LEN, MODE_LFB, PALETTE,
};

/// 4F00h's controller information block.
const CONTROLLER_BUF: u32 = BOUNCE_ADDR;
/// 4F01h's mode information block.
const MODE_BUF: u32 = BOUNCE_ADDR + 0x200;
/// 4F15h's EDID block and 4F09h's palette.
const MISC_BUF: u32 = BOUNCE_ADDR + 0x300;
/// The modes read from the BIOS's list, with their information (kept off
/// the 16 KiB stack).
const MODE_TABLE: u32 = BOUNCE_ADDR + 0x1000;
/// Most modes read from the BIOS's list.
const MAX_MODES: usize = 256;

type ModeTable = [(u16, ModeInfo); MAX_MODES];
const _: () = assert!(
    MODE_TABLE as usize + core::mem::size_of::<ModeTable>()
        <= BOUNCE_ADDR as usize + crate::memplan::BOUNCE_LEN
);

fn mode_table() -> &'static mut ModeTable {
    let t = MODE_TABLE as usize as *mut ModeTable;
    // SAFETY: as in buf(): unused bounce buffer memory, page-aligned (so
    // aligned for the table), inside the bounce buffer (asserted above);
    // the table is written whole before it is read and held by one caller.
    // Written entry by entry, so no table-sized temporary lands on the
    // stack.
    unsafe {
        let first = t as *mut (u16, ModeInfo);
        for i in 0..MAX_MODES {
            first.add(i).write((0, ModeInfo::default()));
        }
        &mut *t
    }
}
/// AX after a VBE function that worked.
const VBE_OK: u32 = 0x004F;

fn buf(addr: u32, len: usize) -> &'static mut [u8] {
    // SAFETY: the bounce buffer (memplan::BOUNCE_ADDR, 64 KiB below 1 MiB)
    // is stage 2's own memory and unused once the kernel and modules are
    // loaded, which is when this module runs; callers hold one slice at a
    // time and never across a BIOS call that writes it.
    unsafe { core::slice::from_raw_parts_mut(addr as usize as *mut u8, len) }
}

/// INT 10h with AX = `ax` and ES:DI at `addr`; Some(registers) if AX came
/// back 004Fh.
fn call(ax: u32, mut r: Regs, addr: u32) -> Option<Regs> {
    let (seg, off) = bios::far(addr);
    r.eax = ax;
    r.es = seg;
    r.edi = off as u32;
    let out = bios::int(0x10, &r);
    (out.eax & 0xFFFF == VBE_OK).then_some(out)
}

/// 4F00h: the controller information, asking for VBE 2.0+ fields.
fn controller_info() -> Option<[u8; CONTROLLER_INFO_LEN]> {
    let b = buf(CONTROLLER_BUF, CONTROLLER_INFO_LEN);
    b.fill(0);
    b[..4].copy_from_slice(b"VBE2");
    call(0x4F00, Regs::new(), CONTROLLER_BUF)?;
    let b = buf(CONTROLLER_BUF, CONTROLLER_INFO_LEN);
    (b[..4] == *b"VESA").then(|| b.try_into().unwrap())
}

/// 4F01h: a mode's information block.
fn mode_info(mode: u16) -> Option<[u8; MODE_INFO_LEN]> {
    let b = buf(MODE_BUF, MODE_INFO_LEN);
    b.fill(0);
    let r = Regs {
        ecx: mode as u32,
        ..Regs::new()
    };
    call(0x4F01, r, MODE_BUF)?;
    Some(buf(MODE_BUF, MODE_INFO_LEN).try_into().unwrap())
}

/// 4F03h: the current mode.
fn current_mode() -> Option<u16> {
    call(0x4F03, Regs::new(), MODE_BUF).map(|r| r.ebx as u16)
}

/// The modes the controller lists (at the far pointer at offset 14), up
/// to the first whose information the BIOS will not give (GRUB stops
/// there too).
fn modes(ctrl: &[u8], out: &mut ModeTable) -> usize {
    let (off, seg) = (
        u16::from_le_bytes([ctrl[14], ctrl[15]]) as usize,
        u16::from_le_bytes([ctrl[16], ctrl[17]]) as usize,
    );
    let list = seg * 16 + off;
    let mut numbers = [0xFFFFu16; MAX_MODES];
    for (i, n) in numbers.iter_mut().enumerate() {
        let a = list + 2 * i;
        if a + 2 > 0x10_0000 {
            break;
        }
        // SAFETY: a real-mode far pointer from the BIOS: below 1 MiB
        // (checked), identity-mapped, read only.
        *n = unsafe { core::ptr::read_unaligned(a as *const u16) };
        if *n == 0xFFFF {
            break;
        }
    }
    let mut count = 0;
    for &n in numbers.iter().take_while(|n| **n != 0xFFFF) {
        let Some(info) = mode_info(n) else { break };
        out[count] = (n, ModeInfo::parse(&info));
        count += 1;
    }
    count
}

/// The EDID preferred resolution, as GRUB asks for it (VBE 2.0+, DDC
/// capabilities, then block 0 of the EDID).
fn preferred(version: u16) -> Option<(u16, u16)> {
    if version < 0x200 {
        return None;
    }
    call(0x4F15, Regs::new(), MISC_BUF)?;
    let edid = buf(MISC_BUF, 128);
    edid.fill(0);
    let r = Regs {
        ebx: 1,
        ..Regs::new()
    };
    call(0x4F15, r, MISC_BUF)?;
    video::edid_preferred(buf(MISC_BUF, 128))
}

/// 4F09h: loads the 16 colours reported for an indexed mode into the DAC
/// (6 bits per channel, the DAC's width after a mode set).
fn set_palette() {
    let b = buf(MISC_BUF, 4 * PALETTE.len());
    for (i, (r, g, bl)) in PALETTE.iter().enumerate() {
        b[4 * i..4 * i + 4].copy_from_slice(&[bl >> 2, g >> 2, r >> 2, 0]);
    }
    let r = Regs {
        ebx: 0,
        ecx: PALETTE.len() as u32,
        edx: 0,
        ..Regs::new()
    };
    // As GRUB: a BIOS that cannot load the palette leaves its own.
    let _ = call(0x4F09, r, MISC_BUF);
}

/// The VBE information GRUB gives with the mode now set: the controller
/// block, the current mode, its mode block (faked for text mode 3) and
/// the protected-mode interface.
fn vbe_info() -> Option<Vbe> {
    let control_info = controller_info()?;
    let mode = current_mode()?;
    let mode_info = if mode == 3 {
        text_mode_info()
    } else {
        mode_info(mode)?
    };
    let (interface_seg, interface_off, interface_len) = match call(0x4F0A, Regs::new(), MODE_BUF) {
        Some(r) => (r.es, r.edi as u16, r.ecx as u16),
        None => (0, 0, 0),
    };
    Some(Vbe {
        control_info,
        control_info_addr: CONTROLLER_BUF,
        mode_info,
        mode,
        interface_seg,
        interface_off,
        interface_len,
    })
}

fn text(req: &Request) -> VideoInfo {
    if !req.text_ok {
        cannot(req);
    }
    VideoInfo {
        vbe: vbe_info(),
        fb: Framebuffer::EGA_TEXT,
    }
}

/// Sets the video mode `req` asks for, as GRUB would choose it, and
/// returns what to tell the kernel; None without a request. Halts with a
/// message when nothing the kernel accepts can be set. Kept out of line:
/// its mode table work stays out of stage2_main's frame.
#[inline(never)]
pub fn setup(req: &Request) -> Option<VideoInfo> {
    if req.mode == Mode::None {
        return None;
    }
    let Some(ctrl) = controller_info() else {
        // No VBE: only the text console.
        return Some(text(req));
    };
    let version = u16::from_le_bytes([ctrl[4], ctrl[5]]);
    if req.mode == Mode::Keep {
        return Some(keep(req, version));
    }
    let list = mode_table();
    let count = modes(&ctrl, list);
    let list = &list[..count];
    let mut edid = None;
    let (alts, n) = video::alternatives(req);
    for alt in alts[..n].iter().flatten() {
        if *alt == Alternative::Text {
            return Some(text(req));
        }
        if *alt == Alternative::Auto && edid.is_none() {
            edid = Some(preferred(version));
        }
        let Some((number, m)) = video::pick(*alt, list, edid.flatten()) else {
            continue;
        };
        let set = Regs {
            ebx: (number | if number >= 0x100 { MODE_LFB } else { 0 }) as u32,
            ..Regs::new()
        };
        if call(0x4F02, set, MODE_BUF).is_none() {
            continue;
        }
        console::screen_off();
        let fb = Framebuffer::from_mode(&m, version);
        // Last use of the table: 4F09h and vbe_info only touch the
        // buffers before it.
        if matches!(fb.kind, video::FbKind::Indexed { .. }) {
            set_palette();
        }
        return Some(VideoInfo {
            vbe: vbe_info(),
            fb,
        });
    }
    cannot(req)
}

/// GRUB's `keep`: the mode the firmware set, a VBE linear mode or the text
/// console.
fn keep(req: &Request, version: u16) -> VideoInfo {
    let mode = current_mode().unwrap_or(3);
    let number = mode & 0x3FFF;
    if number < 0x100 {
        return text(req);
    }
    match mode_info(number).map(|b| ModeInfo::parse(&b)) {
        Some(m) if m.usable() && req.graphics_ok => {
            console::screen_off();
            VideoInfo {
                vbe: vbe_info(),
                fb: Framebuffer::from_mode(&m, version),
            }
        }
        _ => cannot(req),
    }
}

/// The one line for a request nothing can meet, then halt.
fn cannot(req: &Request) -> ! {
    fail::begin();
    fail::put(&[Str("no video mode the kernel accepts can be set: ")]);
    match req.mode {
        Mode::Graphics {
            width,
            height,
            depth,
        } => {
            fail::put(&[
                Str("no VBE linear framebuffer mode "),
                Dec(width as u64),
                Str("x"),
                Dec(height as u64),
            ]);
            if depth != 0 {
                fail::put(&[Str("x"), Dec(depth as u64)]);
            }
        }
        Mode::Keep => {
            fail::put(&[
                Str("the firmware's mode "),
                Hex(current_mode().unwrap_or(3) as u64),
                Str(" is not one the kernel accepts"),
            ]);
        }
        Mode::Text | Mode::None => fail::put(&[Str("EGA text was asked for")]),
    }
    if !req.text_ok {
        fail::put(&[Str(", and the kernel does not accept EGA text")]);
    }
    fail::end()
}
