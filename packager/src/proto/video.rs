//! Video modes: what a kernel (or the user) asks for, how a VBE mode is
//! chosen for it, and what the kernel is told.
//!
//! The choice follows GRUB on a PC BIOS, the loader Multiboot kernels were
//! written against. GRUB turns a kernel's request into a list of
//! alternatives tried in order (its `gfxpayload` syntax): a kernel asking
//! for W x H x D gets "WxHxD, WxH, auto" and then "text"; W x H with depth
//! 0 gets "WxH, auto, text"; a request without both width and height gets
//! "auto, text". A user's `gfxpayload` (here `bootpack build --video`)
//! replaces the kernel's list and is followed by "text" only. For each
//! alternative GRUB walks the VBE mode list and keeps, among the usable
//! modes (supported, colour, graphics, linear framebuffer, packed-pixel or
//! direct colour, 8/15/16/24/32 bits per pixel) whose resolution matches
//! exactly and whose depth matches when one is given, the one with the most
//! bits (width x height x bpp; a later mode wins a tie). "auto" means the
//! monitor's preferred resolution from EDID (modes no larger than it), or
//! exactly 640x480 without EDID. "text" is the EGA text console.

use super::le;

/// Multiboot framebuffer types.
pub const FB_TYPE_INDEXED: u8 = 0;
pub const FB_TYPE_RGB: u8 = 1;
pub const FB_TYPE_EGA_TEXT: u8 = 2;

/// What the kernel should get, as the record carries it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// No video request: the console is left as it is and no video
    /// information is given (kernels that did not ask).
    None,
    /// A graphics mode; 0 in a field means "no preference".
    Graphics { width: u16, height: u16, depth: u8 },
    /// The EGA text console (80x25 at 0xB8000).
    Text,
    /// Whatever mode the firmware has set (GRUB's `gfxpayload=keep`).
    Keep,
}

/// A video request: the mode and what the kernel accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Request {
    pub mode: Mode,
    /// The kernel accepts the EGA text console (as a result or a fallback).
    pub text_ok: bool,
    /// The kernel accepts a linear framebuffer.
    pub graphics_ok: bool,
    /// The request came from `--video`, not from the kernel's header: no
    /// "WxH" and "auto" alternatives (GRUB's `gfxpayload` semantics).
    pub from_option: bool,
}

impl Request {
    /// No request (records before version 3, kernels that do not ask).
    pub const NONE: Request = Request {
        mode: Mode::None,
        text_ok: true,
        graphics_ok: false,
        from_option: false,
    };
}

/// Bytes of a request in the record.
pub const REQUEST_LEN: usize = 8;

const KIND_NONE: u8 = 0;
const KIND_GRAPHICS: u8 = 1;
const KIND_TEXT: u8 = 2;
const KIND_KEEP: u8 = 3;
const F_TEXT_OK: u8 = 1 << 0;
const F_GRAPHICS_OK: u8 = 1 << 1;
const F_FROM_OPTION: u8 = 1 << 2;

/// Why request bytes cannot be read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BadRequest;

impl Request {
    /// Encodes into the record's 8 bytes: width u16, height u16, depth u8,
    /// kind u8 (0 none, 1 graphics, 2 text, 3 keep), flags u8 (bit 0 text
    /// accepted, bit 1 framebuffer accepted, bit 2 from `--video`), 0.
    /// No request is all zero, as version 2 records have it.
    pub fn encode(&self) -> [u8; REQUEST_LEN] {
        let mut b = [0u8; REQUEST_LEN];
        if self.mode == Mode::None {
            return b;
        }
        let kind = match self.mode {
            Mode::None => KIND_NONE,
            Mode::Graphics {
                width,
                height,
                depth,
            } => {
                le::put_u16(&mut b, 0, width);
                le::put_u16(&mut b, 2, height);
                b[4] = depth;
                KIND_GRAPHICS
            }
            Mode::Text => KIND_TEXT,
            Mode::Keep => KIND_KEEP,
        };
        b[5] = kind;
        b[6] = (self.text_ok as u8 * F_TEXT_OK)
            | (self.graphics_ok as u8 * F_GRAPHICS_OK)
            | (self.from_option as u8 * F_FROM_OPTION);
        b
    }

    /// Decodes the record's 8 bytes. All zero (a version 2 record's
    /// reserved bytes) is [`Request::NONE`].
    pub fn decode(b: &[u8]) -> Result<Request, BadRequest> {
        let flags = b[6];
        if flags & !(F_TEXT_OK | F_GRAPHICS_OK | F_FROM_OPTION) != 0 || b[7] != 0 {
            return Err(BadRequest);
        }
        let mode = match b[5] {
            KIND_NONE => return Ok(Request::NONE),
            KIND_GRAPHICS => Mode::Graphics {
                width: le::u16(b, 0),
                height: le::u16(b, 2),
                depth: b[4],
            },
            KIND_TEXT => Mode::Text,
            KIND_KEEP => Mode::Keep,
            _ => return Err(BadRequest),
        };
        Ok(Request {
            mode,
            text_ok: flags & F_TEXT_OK != 0,
            graphics_ok: flags & F_GRAPHICS_OK != 0,
            from_option: flags & F_FROM_OPTION != 0,
        })
    }
}

/// Parses a `--video` value: `WxHxD`, `WxH`, `text` or `keep`.
pub fn parse_option(s: &str) -> Option<Mode> {
    match s {
        "text" => return Some(Mode::Text),
        "keep" => return Some(Mode::Keep),
        _ => {}
    }
    let mut it = s.split('x');
    let num = |p: Option<&str>| -> Option<u32> {
        let p = p?;
        if p.is_empty() || !p.bytes().all(|c| c.is_ascii_digit()) {
            return None;
        }
        p.parse().ok()
    };
    let width = num(it.next())?;
    let height = num(it.next())?;
    let depth = match it.next() {
        Some(d) => num(Some(d))?,
        None => 0,
    };
    if it.next().is_some()
        || width == 0
        || height == 0
        || width > u16::MAX as u32
        || height > u16::MAX as u32
        || depth > u8::MAX as u32
    {
        return None;
    }
    Some(Mode::Graphics {
        width: width as u16,
        height: height as u16,
        depth: depth as u8,
    })
}

/// A header field (u32) as the record keeps it: values that no VBE mode
/// can have are kept as the largest the field holds, which no mode has
/// either.
pub fn clamp16(v: u32) -> u16 {
    v.min(u16::MAX as u32) as u16
}
/// As [`clamp16`], for the depth.
pub fn clamp8(v: u32) -> u8 {
    v.min(u8::MAX as u32) as u8
}

/// VBE mode attributes (mode info block offset 0).
pub const ATTR_SUPPORTED: u16 = 1 << 0;
pub const ATTR_COLOR: u16 = 1 << 3;
pub const ATTR_GRAPHICS: u16 = 1 << 4;
pub const ATTR_LFB: u16 = 1 << 7;
/// VBE memory models.
pub const MODEL_TEXT: u8 = 0;
pub const MODEL_PACKED_PIXEL: u8 = 4;
pub const MODEL_DIRECT_COLOR: u8 = 6;
/// Bytes of a VBE controller information block (function 4F00h).
pub const CONTROLLER_INFO_LEN: usize = 512;
/// Bytes of a VBE mode information block (function 4F01h).
pub const MODE_INFO_LEN: usize = 256;
/// Set in the mode number given to 4F02h: use the linear framebuffer.
pub const MODE_LFB: u16 = 1 << 14;

/// The fields of a VBE mode information block that matter here.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ModeInfo {
    pub attributes: u16,
    pub bytes_per_scan_line: u16,
    pub width: u16,
    pub height: u16,
    pub bpp: u8,
    pub memory_model: u8,
    pub red_size: u8,
    pub red_pos: u8,
    pub green_size: u8,
    pub green_pos: u8,
    pub blue_size: u8,
    pub blue_pos: u8,
    pub phys_base: u32,
    /// VBE 3.0: bytes per line in linear modes.
    pub lin_bytes_per_scan_line: u16,
}

impl ModeInfo {
    /// Reads a mode information block (at least 0x34 bytes).
    pub fn parse(b: &[u8]) -> ModeInfo {
        ModeInfo {
            attributes: le::u16(b, 0x00),
            bytes_per_scan_line: le::u16(b, 0x10),
            width: le::u16(b, 0x12),
            height: le::u16(b, 0x14),
            bpp: b[0x19],
            memory_model: b[0x1B],
            red_size: b[0x1F],
            red_pos: b[0x20],
            green_size: b[0x21],
            green_pos: b[0x22],
            blue_size: b[0x23],
            blue_pos: b[0x24],
            phys_base: le::u32(b, 0x28),
            lin_bytes_per_scan_line: le::u16(b, 0x32),
        }
    }

    /// Whether GRUB would consider this mode at all.
    pub fn usable(&self) -> bool {
        let need = ATTR_SUPPORTED | ATTR_COLOR | ATTR_GRAPHICS | ATTR_LFB;
        self.attributes & need == need
            && matches!(self.memory_model, MODEL_PACKED_PIXEL | MODEL_DIRECT_COLOR)
            && matches!(self.bpp, 8 | 15 | 16 | 24 | 32)
    }

    fn volume(&self) -> u64 {
        self.bpp as u64 * self.width as u64 * self.height as u64
    }
}

/// One alternative of a request, as GRUB's `gfxpayload` list has them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Alternative {
    /// Exactly this resolution; depth 0 = any.
    Exact { width: u16, height: u16, depth: u8 },
    /// The preferred resolution (EDID) or smaller, else exactly 640x480.
    Auto,
    /// The EGA text console.
    Text,
}

/// The alternatives tried for `req`, in order (at most four).
pub fn alternatives(req: &Request) -> ([Option<Alternative>; 4], usize) {
    let mut out = [None; 4];
    let mut n = 0;
    let mut push = |a| {
        out[n] = Some(a);
        n += 1;
    };
    match req.mode {
        Mode::None | Mode::Keep => {}
        Mode::Text => push(Alternative::Text),
        Mode::Graphics {
            width,
            height,
            depth,
        } => {
            if req.from_option {
                push(Alternative::Exact {
                    width,
                    height,
                    depth,
                });
            } else if width != 0 && height != 0 {
                if depth != 0 {
                    push(Alternative::Exact {
                        width,
                        height,
                        depth,
                    });
                }
                push(Alternative::Exact {
                    width,
                    height,
                    depth: 0,
                });
                push(Alternative::Auto);
            } else {
                push(Alternative::Auto);
            }
            if req.text_ok {
                push(Alternative::Text);
            }
        }
    }
    (out, n)
}

/// The mode chosen for one graphics alternative, as GRUB's VBE driver
/// chooses it: among `modes` (number and info, in the BIOS's list order)
/// the usable ones that fit, the one with the most bits. `preferred` is the
/// EDID preferred resolution, if the monitor gave one.
pub fn pick(
    alt: Alternative,
    modes: &[(u16, ModeInfo)],
    preferred: Option<(u16, u16)>,
) -> Option<(u16, ModeInfo)> {
    let (width, height, depth, at_most) = match alt {
        Alternative::Exact {
            width,
            height,
            depth,
        } => (width, height, depth, false),
        Alternative::Auto => match preferred {
            Some((w, h)) => (w, h, 0, true),
            None => (640, 480, 0, false),
        },
        Alternative::Text => return None,
    };
    let mut best: Option<(u16, ModeInfo)> = None;
    for &(number, m) in modes {
        if !m.usable() {
            continue;
        }
        let fits = if at_most {
            m.width <= width && m.height <= height
        } else {
            m.width == width && m.height == height
        };
        if !fits || (depth != 0 && m.bpp != depth) {
            continue;
        }
        if best.is_some_and(|(_, b)| m.volume() < b.volume()) {
            continue;
        }
        best = Some((number, m));
    }
    best
}

/// What the kernel is told about its console.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Framebuffer {
    pub addr: u64,
    pub pitch: u32,
    pub width: u32,
    pub height: u32,
    pub bpp: u8,
    pub kind: FbKind,
}

/// The framebuffer type and its colour information.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FbKind {
    /// Type 0: a palette of `colors` entries, [`PALETTE`] (GRUB's).
    Indexed { colors: u16 },
    /// Type 1: field positions and mask sizes of red, green and blue.
    Rgb {
        red_pos: u8,
        red_size: u8,
        green_pos: u8,
        green_size: u8,
        blue_pos: u8,
        blue_size: u8,
    },
    /// Type 2: EGA text, two bytes per character cell.
    EgaText,
}

impl Framebuffer {
    /// The type byte of the Multiboot framebuffer fields.
    pub fn type_code(&self) -> u8 {
        match self.kind {
            FbKind::Indexed { .. } => FB_TYPE_INDEXED,
            FbKind::Rgb { .. } => FB_TYPE_RGB,
            FbKind::EgaText => FB_TYPE_EGA_TEXT,
        }
    }

    /// The EGA text console (mode 3): 80x25 cells at 0xB8000.
    pub const EGA_TEXT: Framebuffer = Framebuffer {
        addr: 0xB8000,
        pitch: 160,
        width: 80,
        height: 25,
        bpp: 16,
        kind: FbKind::EgaText,
    };

    /// The framebuffer of a graphics mode set from `m`; `vbe_version` is
    /// the controller's (BCD, 0x300 = 3.0): from 3.0 on the pitch of a
    /// linear mode is its own field, as GRUB reads it.
    pub fn from_mode(m: &ModeInfo, vbe_version: u16) -> Framebuffer {
        let pitch = if vbe_version >= 0x300 {
            m.lin_bytes_per_scan_line
        } else {
            m.bytes_per_scan_line
        };
        let kind = if m.memory_model == MODEL_PACKED_PIXEL {
            FbKind::Indexed {
                colors: PALETTE.len() as u16,
            }
        } else {
            FbKind::Rgb {
                red_pos: m.red_pos,
                red_size: m.red_size,
                green_pos: m.green_pos,
                green_size: m.green_size,
                blue_pos: m.blue_pos,
                blue_size: m.blue_size,
            }
        };
        Framebuffer {
            addr: m.phys_base as u64,
            pitch: pitch as u32,
            width: m.width as u32,
            height: m.height as u32,
            bpp: m.bpp,
            kind,
        }
    }
}

/// The palette of indexed modes, (red, green, blue): the 16 standard VGA
/// colours, which GRUB loads into the DAC and reports.
pub const PALETTE: [(u8, u8, u8); 16] = [
    (0x00, 0x00, 0x00),
    (0x00, 0x00, 0xA8),
    (0x00, 0xA8, 0x00),
    (0x00, 0xA8, 0xA8),
    (0xA8, 0x00, 0x00),
    (0xA8, 0x00, 0xA8),
    (0xA8, 0x54, 0x00),
    (0xA8, 0xA8, 0xA8),
    (0x54, 0x54, 0x54),
    (0x54, 0x54, 0xFE),
    (0x54, 0xFE, 0x54),
    (0x54, 0xFE, 0xFE),
    (0xFE, 0x54, 0x54),
    (0xFE, 0x54, 0xFE),
    (0xFE, 0xFE, 0x54),
    (0xFE, 0xFE, 0xFE),
];

/// The VBE information given with a graphics mode (and, for Multiboot 1,
/// with the text console too, as GRUB does).
#[derive(Clone, Copy, Debug)]
pub struct Vbe {
    /// The controller information block (4F00h).
    pub control_info: [u8; CONTROLLER_INFO_LEN],
    /// Where the BIOS wrote it: its far pointers into itself are moved to
    /// the copy the kernel gets ([`rebase_control_info`]).
    pub control_info_addr: u32,
    /// The mode information block of the current mode (4F01h), or for
    /// mode 3 one with memory model 0 (text) and 80x25, as GRUB fakes it.
    pub mode_info: [u8; MODE_INFO_LEN],
    /// The current mode as 4F03h returns it.
    pub mode: u16,
    /// The protected-mode interface (4F0Ah): segment, offset, length; 0
    /// when the BIOS has none.
    pub interface_seg: u16,
    pub interface_off: u16,
    pub interface_len: u16,
}

/// Far pointers in a controller information block (offsets): OEM string,
/// mode list, and VBE 2.0's vendor, product and revision strings.
const CONTROL_FAR_POINTERS: [usize; 5] = [6, 14, 22, 26, 30];

/// Makes the far pointers of a controller information block that point
/// into the block itself (where BIOSes put the mode list and strings of a
/// VBE 2.0 request) point into its copy: `from` is where the BIOS wrote
/// the block, `to` where the copy lies (below 1 MiB). Pointers elsewhere
/// (into the video BIOS) are left alone.
pub fn rebase_control_info(block: &mut [u8; CONTROLLER_INFO_LEN], from: u32, to: u32) {
    for o in CONTROL_FAR_POINTERS {
        let (off, seg) = (le::u16(block, o) as u32, le::u16(block, o + 2) as u32);
        let linear = seg * 16 + off;
        if (from..from + CONTROLLER_INFO_LEN as u32).contains(&linear) {
            let moved = to + (linear - from);
            le::put_u16(block, o, (moved & 0xF) as u16);
            le::put_u16(block, o + 2, (moved >> 4) as u16);
        }
    }
}

/// Everything the information builders need about video.
#[derive(Clone, Copy, Debug)]
pub struct VideoInfo {
    /// Multiboot 1 flag bit 11, Multiboot 2 tag 7 (graphics modes only).
    pub vbe: Option<Vbe>,
    /// Multiboot 1 flag bit 12, Multiboot 2 tag 8.
    pub fb: Framebuffer,
}

/// The mode information block GRUB reports for text mode 3 (4F01h does
/// not describe it): all zero but the text memory model and 80x25.
pub fn text_mode_info() -> [u8; MODE_INFO_LEN] {
    let mut b = [0u8; MODE_INFO_LEN];
    b[0x1B] = MODEL_TEXT;
    le::put_u16(&mut b, 0x12, 80);
    le::put_u16(&mut b, 0x14, 25);
    b
}

/// The preferred resolution in an EDID block (128 bytes), as GRUB reads
/// it: a valid checksum, EDID 1.3 or later or the "preferred timing mode"
/// feature bit, then the first detailed timing's active pixels (below
/// 4096 each).
pub fn edid_preferred(edid: &[u8]) -> Option<(u16, u16)> {
    if edid.len() < 128
        || edid[..8] != [0, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0]
        || edid[..128].iter().fold(0u8, |a, b| a.wrapping_add(*b)) != 0
    {
        return None;
    }
    let (version, revision, features) = (edid[18], edid[19], edid[24]);
    if !(version == 1 && revision >= 3 || features & 2 != 0) {
        return None;
    }
    let t = &edid[54..72];
    if le::u16(t, 0) == 0 {
        return None;
    }
    let w = t[2] as u16 | ((t[4] as u16 & 0xF0) << 4);
    let h = t[5] as u16 | ((t[7] as u16 & 0xF0) << 4);
    (w != 0 && h != 0 && w < 4096 && h < 4096).then_some((w, h))
}

/// QEMU's std VGA 1024x768x32 linear framebuffer, for the information
/// builders' tests.
#[cfg(test)]
pub(crate) const TEST_FB_1024X768X32: Framebuffer = Framebuffer {
    addr: 0xFD00_0000,
    pitch: 4096,
    width: 1024,
    height: 768,
    bpp: 32,
    kind: FbKind::Rgb {
        red_pos: 16,
        red_size: 8,
        green_pos: 8,
        green_size: 8,
        blue_pos: 0,
        blue_size: 8,
    },
};

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(width: u16, height: u16, bpp: u8) -> ModeInfo {
        ModeInfo {
            attributes: ATTR_SUPPORTED | ATTR_COLOR | ATTR_GRAPHICS | ATTR_LFB | 0x02,
            bytes_per_scan_line: width * (bpp as u16).div_ceil(8),
            width,
            height,
            bpp,
            memory_model: if bpp == 8 {
                MODEL_PACKED_PIXEL
            } else {
                MODEL_DIRECT_COLOR
            },
            phys_base: 0xFD00_0000,
            lin_bytes_per_scan_line: width * (bpp as u16).div_ceil(8),
            ..ModeInfo::default()
        }
    }

    /// A mode list like QEMU's std VGA (Bochs VBE) in its order.
    fn qemu_list() -> [(u16, ModeInfo); 9] {
        [
            (0x101, mode(640, 480, 8)),
            (0x111, mode(640, 480, 16)),
            (0x112, mode(640, 480, 24)),
            (0x105, mode(1024, 768, 8)),
            (0x117, mode(1024, 768, 16)),
            (0x118, mode(1024, 768, 24)),
            (0x144, mode(1024, 768, 32)),
            (0x140, mode(640, 480, 32)),
            (0x147, mode(1280, 800, 32)),
        ]
    }

    fn first_fit(req: Request, preferred: Option<(u16, u16)>) -> Option<u16> {
        let (alts, n) = alternatives(&req);
        for a in alts[..n].iter().flatten() {
            if *a == Alternative::Text {
                return Some(3);
            }
            if let Some((num, _)) = pick(*a, &qemu_list(), preferred) {
                return Some(num);
            }
        }
        None
    }

    fn kernel(width: u16, height: u16, depth: u8) -> Request {
        Request {
            mode: Mode::Graphics {
                width,
                height,
                depth,
            },
            text_ok: true,
            graphics_ok: true,
            from_option: false,
        }
    }

    #[test]
    fn exact_match_first() {
        assert_eq!(first_fit(kernel(1024, 768, 32), None), Some(0x144));
        assert_eq!(first_fit(kernel(1024, 768, 16), None), Some(0x117));
        assert_eq!(first_fit(kernel(1024, 768, 8), None), Some(0x105));
    }

    #[test]
    fn depth_zero_takes_the_deepest() {
        assert_eq!(first_fit(kernel(1024, 768, 0), None), Some(0x144));
        assert_eq!(first_fit(kernel(640, 480, 0), None), Some(0x140));
    }

    #[test]
    fn then_any_depth_then_auto() {
        // 1024x768x15 is not there: WxH gives the deepest 1024x768.
        assert_eq!(first_fit(kernel(1024, 768, 15), None), Some(0x144));
        // 800x600 is not there at all: auto, 640x480 without EDID.
        assert_eq!(first_fit(kernel(800, 600, 32), None), Some(0x140));
        // With EDID 1280x800: the biggest mode that fits in it.
        assert_eq!(
            first_fit(kernel(800, 600, 32), Some((1280, 800))),
            Some(0x147)
        );
        assert_eq!(
            first_fit(kernel(800, 600, 32), Some((1100, 800))),
            Some(0x144)
        );
        // Width or height 0: auto.
        assert_eq!(first_fit(kernel(0, 768, 32), None), Some(0x140));
        assert_eq!(first_fit(kernel(0, 0, 0), None), Some(0x140));
    }

    #[test]
    fn an_option_is_exact_or_text() {
        let mut r = kernel(800, 600, 32);
        r.from_option = true;
        assert_eq!(first_fit(r, None), Some(3));
        r.text_ok = false;
        assert_eq!(first_fit(r, None), None);
        r.mode = Mode::Graphics {
            width: 1024,
            height: 768,
            depth: 0,
        };
        assert_eq!(first_fit(r, None), Some(0x144));
    }

    #[test]
    fn no_text_when_the_kernel_refuses_it() {
        let mut r = kernel(2000, 2000, 32);
        r.text_ok = false;
        let (alts, n) = alternatives(&r);
        assert_eq!(n, 3);
        assert!(!alts.contains(&Some(Alternative::Text)));
    }

    #[test]
    fn unusable_modes_are_skipped() {
        let mut no_lfb = mode(1024, 768, 32);
        no_lfb.attributes &= !ATTR_LFB;
        let mut text = mode(1024, 768, 32);
        text.memory_model = MODEL_TEXT;
        let mut four = mode(1024, 768, 4);
        four.memory_model = MODEL_PACKED_PIXEL;
        let list = [(1, no_lfb), (2, text), (3, four), (4, mode(1024, 768, 16))];
        let a = Alternative::Exact {
            width: 1024,
            height: 768,
            depth: 0,
        };
        assert_eq!(pick(a, &list, None).map(|m| m.0), Some(4));
        // Equal volume: the later mode wins, as in GRUB.
        let list = [(1, mode(1024, 768, 16)), (2, mode(1024, 768, 16))];
        assert_eq!(pick(a, &list, None).map(|m| m.0), Some(2));
    }

    #[test]
    fn request_bytes_round_trip() {
        for r in [
            Request::NONE,
            kernel(1024, 768, 32),
            Request {
                mode: Mode::Keep,
                text_ok: false,
                graphics_ok: true,
                from_option: true,
            },
            Request {
                mode: Mode::Text,
                text_ok: true,
                graphics_ok: false,
                from_option: true,
            },
        ] {
            assert_eq!(Request::decode(&r.encode()), Ok(r));
        }
        assert_eq!(Request::decode(&[0; 8]), Ok(Request::NONE));
        let no_text = Request {
            text_ok: false,
            ..Request::NONE
        };
        assert_eq!(no_text.encode(), [0; 8]);
        assert_eq!(Request::decode(&[0, 0, 0, 0, 0, 9, 0, 0]), Err(BadRequest));
        assert_eq!(Request::decode(&[0, 0, 0, 0, 1, 0, 8, 0]), Err(BadRequest));
    }

    #[test]
    fn parses_the_option() {
        assert_eq!(
            parse_option("1024x768x32"),
            Some(Mode::Graphics {
                width: 1024,
                height: 768,
                depth: 32
            })
        );
        assert_eq!(
            parse_option("800x600"),
            Some(Mode::Graphics {
                width: 800,
                height: 600,
                depth: 0
            })
        );
        assert_eq!(parse_option("text"), Some(Mode::Text));
        assert_eq!(parse_option("keep"), Some(Mode::Keep));
        for bad in [
            "",
            "x",
            "1024",
            "1024x",
            "0x768",
            "1024x768x32x1",
            "auto",
            "-1x2",
            "70000x1",
            "1x1x256",
            "+1x1",
        ] {
            assert_eq!(parse_option(bad), None, "{bad}");
        }
    }

    #[test]
    fn framebuffer_from_a_mode() {
        let mut m = mode(1024, 768, 32);
        (m.red_pos, m.red_size, m.green_pos, m.green_size) = (16, 8, 8, 8);
        (m.blue_pos, m.blue_size) = (0, 8);
        m.bytes_per_scan_line = 1;
        let fb = Framebuffer::from_mode(&m, 0x300);
        assert_eq!(
            (fb.addr, fb.pitch, fb.width, fb.height, fb.bpp),
            (0xFD00_0000, 4096, 1024, 768, 32)
        );
        assert_eq!(fb.type_code(), FB_TYPE_RGB);
        assert_eq!(Framebuffer::from_mode(&m, 0x200).pitch, 1);
        let fb = Framebuffer::from_mode(&mode(640, 480, 8), 0x300);
        assert_eq!(fb.kind, FbKind::Indexed { colors: 16 });
    }

    #[test]
    fn rebases_pointers_into_the_block() {
        let mut b = [0u8; CONTROLLER_INFO_LEN];
        // Mode list at 0x2000:0x0100 (inside a block at 0x20000), OEM
        // string in the video BIOS at C000:1234.
        le::put_u16(&mut b, 14, 0x0100);
        le::put_u16(&mut b, 16, 0x2000);
        le::put_u16(&mut b, 6, 0x1234);
        le::put_u16(&mut b, 8, 0xC000);
        rebase_control_info(&mut b, 0x20000, 0x40128);
        let far = |o| le::u16(&b, o + 2) as u32 * 16 + le::u16(&b, o) as u32;
        assert_eq!(far(14), 0x40228);
        assert_eq!(far(6), 0xC1234);
        assert_eq!(far(22), 0, "null pointers stay null");
    }

    #[test]
    fn reads_the_edid_preferred_mode() {
        let mut e = [0u8; 128];
        e[..8].copy_from_slice(&[0, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0]);
        (e[18], e[19]) = (1, 4);
        // 1280x800: 0x500 x 0x320.
        e[54] = 1;
        (e[56], e[58]) = (0x00, 0x50);
        (e[59], e[61]) = (0x20, 0x30);
        let sum = e.iter().fold(0u8, |a, b| a.wrapping_add(*b));
        e[127] = 0u8.wrapping_sub(sum);
        assert_eq!(edid_preferred(&e), Some((1280, 800)));
        e[127] ^= 1;
        assert_eq!(edid_preferred(&e), None);
    }
}
