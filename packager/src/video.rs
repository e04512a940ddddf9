//! Video modes at pack time: the kernel's request, the `--video` override
//! and what cannot be met.

use crate::proto::video::{self, Mode, Request};

/// A `--video` value: `WxHxD`, `WxH`, `text` or `keep` (GRUB's
/// `gfxpayload`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VideoOption(pub Mode);

impl std::str::FromStr for VideoOption {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        video::parse_option(s).map(VideoOption).ok_or_else(|| {
            format!("invalid video mode {s:?}: expected WIDTHxHEIGHTxDEPTH (e.g. 1024x768x32), WIDTHxHEIGHT, text or keep")
        })
    }
}

/// A `--video` request the kernel cannot take.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum VideoError {
    /// A graphics mode for a kernel that asks for none.
    #[error("{mode}: the kernel accepts no graphics mode (it has no Multiboot 1 video flag, bit 2, and no Multiboot 2 framebuffer tag), so a loader leaves it in text mode; ask for no video mode or for text")]
    NoGraphics {
        /// The mode asked for ("1024x768x32").
        mode: String,
    },
    /// EGA text for a kernel that refuses it.
    #[error("text: the kernel does not accept the EGA text console (its console flags tag leaves out bit 1, EGA text supported, and its framebuffer tag is required); ask for no video mode or for a graphics mode")]
    NoText,
}

/// Describes a mode for messages and `inspect`: "1024x768x32", "800x600"
/// (any depth), "any" (no preference), "text", "keep", "none".
pub fn describe(mode: &Mode) -> String {
    match *mode {
        Mode::None => "none".into(),
        Mode::Text => "text".into(),
        Mode::Keep => "keep".into(),
        Mode::Graphics {
            width,
            height,
            depth,
        } => match (width, height, depth) {
            (0, _, _) | (_, 0, _) => "any".into(),
            (w, h, 0) => format!("{w}x{h}"),
            (w, h, d) => format!("{w}x{h}x{d}"),
        },
    }
}

/// The request the record carries: the kernel's, or `option` in its place
/// when it is one the kernel can take.
pub fn resolve(kernel: Request, option: Option<VideoOption>) -> Result<Request, VideoError> {
    let Some(VideoOption(mode)) = option else {
        return Ok(kernel);
    };
    match mode {
        Mode::Graphics { .. } if !kernel.graphics_ok => Err(VideoError::NoGraphics {
            mode: describe(&mode),
        }),
        Mode::Text if !kernel.text_ok => Err(VideoError::NoText),
        _ => Ok(Request {
            mode,
            from_option: true,
            ..kernel
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opt(s: &str) -> Option<VideoOption> {
        Some(s.parse().unwrap())
    }

    #[test]
    fn an_option_replaces_the_request_where_the_kernel_allows_it() {
        let fb = Request {
            mode: Mode::Graphics {
                width: 1024,
                height: 768,
                depth: 32,
            },
            text_ok: false,
            graphics_ok: true,
            from_option: false,
        };
        assert_eq!(resolve(fb, None), Ok(fb));
        let r = resolve(fb, opt("800x600")).unwrap();
        assert_eq!(describe(&r.mode), "800x600");
        assert!(r.from_option && r.graphics_ok && !r.text_ok);
        assert_eq!(resolve(fb, opt("text")), Err(VideoError::NoText));
        assert_eq!(resolve(fb, opt("keep")).unwrap().mode, Mode::Keep);
        let none = Request::NONE;
        assert_eq!(
            resolve(none, opt("640x480x8")),
            Err(VideoError::NoGraphics {
                mode: "640x480x8".into()
            })
        );
        assert_eq!(resolve(none, opt("text")).unwrap().mode, Mode::Text);
        assert!("1024x768x".parse::<VideoOption>().is_err());
    }
}
