//! Video for kernels that ask for it, through the firmware's Graphics
//! Output Protocol (GOP): under UEFI there is no VBE and no EGA text mode,
//! so a graphics request gets a GOP mode's linear framebuffer, chosen from
//! the request's alternatives in the BIOS loader's order
//! (bootpack_proto::video::alternatives): an exact resolution (and depth,
//! when given) among the GOP modes; "auto" takes the mode the firmware has
//! set (its native choice). A kernel that accepts EGA text gets no video
//! information when no mode fits (GRUB EFI's "no console will be available
//! to OS"); one that does not is refused with a message.

use bootpack_proto::video::{self, Alternative, FbKind, Framebuffer, Mode, Request, VideoInfo};
use uefi::boot;
use uefi::proto::console::gop::{GraphicsOutput, ModeInfo, PixelFormat};

/// Bits per pixel and the colour layout of a GOP mode with a linear
/// framebuffer (None: blt only).
fn layout(info: &ModeInfo) -> Option<(u8, FbKind)> {
    let field = |mask: u32| (mask.trailing_zeros() as u8, mask.count_ones() as u8);
    let (r, g, b, bpp) = match info.pixel_format() {
        PixelFormat::Rgb => ((0, 8), (8, 8), (16, 8), 32),
        PixelFormat::Bgr => ((16, 8), (8, 8), (0, 8), 32),
        PixelFormat::Bitmask => {
            let m = info.pixel_bitmask()?;
            let all = m.red | m.green | m.blue | m.reserved;
            (
                field(m.red),
                field(m.green),
                field(m.blue),
                (32 - all.leading_zeros()) as u8,
            )
        }
        PixelFormat::BltOnly => return None,
    };
    Some((
        bpp,
        FbKind::Rgb {
            red_pos: r.0,
            red_size: r.1,
            green_pos: g.0,
            green_size: g.1,
            blue_pos: b.0,
            blue_size: b.1,
        },
    ))
}

fn fits(alt: &Alternative, info: &ModeInfo, current: (usize, usize)) -> bool {
    let Some((bpp, _)) = layout(info) else {
        return false;
    };
    let (w, h) = info.resolution();
    match *alt {
        Alternative::Exact {
            width,
            height,
            depth,
        } => w == width as usize && h == height as usize && (depth == 0 || depth == bpp),
        Alternative::Auto => (w, h) == current,
        Alternative::Text => false,
    }
}

/// Sets the mode `req` asks for and returns what the kernel is told;
/// None when it asked for nothing or accepts going without. Halts with a
/// message when nothing fits and the kernel accepts no text console.
/// Called last before ExitBootServices: after a mode change the firmware
/// console may be gone, and messages go to COM1 only.
pub fn setup(req: &Request) -> Option<VideoInfo> {
    if req.mode == Mode::None {
        return None;
    }
    let found = boot::get_handle_for_protocol::<GraphicsOutput>()
        .ok()
        .and_then(|h| boot::open_protocol_exclusive::<GraphicsOutput>(h).ok());
    let chosen = found.and_then(|mut gop| {
        let current = gop.current_mode_info().resolution();
        let mode = if req.mode == Mode::Keep {
            Some(None)
        } else {
            let (alts, n) = video::alternatives(req);
            alts[..n]
                .iter()
                .flatten()
                .find_map(|alt| gop.modes().find(|m| fits(alt, m.info(), current)).map(Some))
        }?;
        if let Some(m) = mode {
            if gop.current_mode_info().resolution() != m.info().resolution()
                || gop.current_mode_info().pixel_format() != m.info().pixel_format()
            {
                gop.set_mode(&m).ok()?;
            }
        }
        let info = gop.current_mode_info();
        let (bpp, kind) = layout(&info)?;
        let (width, height) = info.resolution();
        let addr = gop.frame_buffer().as_mut_ptr() as u64;
        Some(VideoInfo {
            vbe: None,
            fb: Framebuffer {
                addr,
                pitch: (info.stride() * (bpp as usize).div_ceil(8)) as u32,
                width: width as u32,
                height: height as u32,
                bpp,
                kind,
            },
        })
    });
    if chosen.is_none() && !req.text_ok {
        crate::fail!(
            "no video mode the kernel accepts can be set: the firmware's graphics output (GOP) has no mode that fits, and there is no EGA text under UEFI"
        );
    }
    chosen
}
