//! The Multiboot 1 header a kernel carries (spec section 3.1).

use super::le;

pub const HEADER_MAGIC: u32 = 0x1BAD_B002;
/// The header must lie entirely within this many bytes of the file's start.
pub const SEARCH_LEN: usize = 8192;

/// Bit 0: modules page-aligned. bootpack always page-aligns modules.
pub const FLAG_PAGE_ALIGN: u32 = 1 << 0;
/// Bit 1: mem_* and mmap_* must be provided. They always are.
pub const FLAG_MEMORY_INFO: u32 = 1 << 1;
/// Bit 2: the kernel wants a video mode (the header's mode_type, width,
/// height and depth fields, offsets 32-47) and the video fields of the
/// information (flag bits 11 and 12).
pub const FLAG_VIDEO_MODE: u32 = 1 << 2;
/// Bit 16: the address fields are valid (the "a.out kludge").
pub const FLAG_AOUT_KLUDGE: u32 = 1 << 16;
/// Bits 0-15 are requirements a loader must refuse if it cannot meet them;
/// bits 16-31 are optional. These are the requirements bootpack meets.
pub const SUPPORTED_REQUIRED: u32 = FLAG_PAGE_ALIGN | FLAG_MEMORY_INFO | FLAG_VIDEO_MODE;

/// The video fields of a header with [`FLAG_VIDEO_MODE`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VideoFields {
    /// 0: a linear graphics mode; 1: EGA text. Other values are refused.
    pub mode_type: u32,
    /// 0 means no preference (so do height and depth).
    pub width: u32,
    pub height: u32,
    /// Bits per pixel (graphics) .
    pub depth: u32,
}

/// The address fields of a header with [`FLAG_AOUT_KLUDGE`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Kludge {
    pub header_addr: u32,
    pub load_addr: u32,
    /// 0 means "to the end of the file".
    pub load_end_addr: u32,
    /// 0 means no bss.
    pub bss_end_addr: u32,
    pub entry_addr: u32,
}

/// A header found in a kernel image.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    /// Byte offset of the magic in the file.
    pub offset: usize,
    pub flags: u32,
    pub kludge: Option<Kludge>,
    pub video: Option<VideoFields>,
}

/// Why a header could not be used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HeaderError {
    /// No magic at a 4-byte aligned offset in the first 8 KiB.
    NotFound,
    /// The magic was found but magic + flags + checksum != 0.
    BadChecksum {
        offset: usize,
        flags: u32,
        checksum: u32,
    },
    /// The header is cut off by the end of the file or the 8 KiB window.
    Truncated { offset: usize },
    /// A required flag bit (0-15) bootpack cannot honour.
    UnsupportedFlag { offset: usize, bit: u32 },
    /// Flag bit 2 with a mode_type other than 0 (graphics) or 1 (text).
    BadModeType { offset: usize, mode_type: u32 },
}

/// Finds the first header with a valid checksum in the first 8 KiB. A magic
/// with a bad checksum is reported only when no valid header follows it.
pub fn find(image: &[u8]) -> Result<Header, HeaderError> {
    let window = &image[..image.len().min(SEARCH_LEN)];
    let mut first_bad = None;
    let mut off = 0;
    while off + 12 <= window.len() {
        if le::u32(window, off) == HEADER_MAGIC {
            let flags = le::u32(window, off + 4);
            let checksum = le::u32(window, off + 8);
            if HEADER_MAGIC.wrapping_add(flags).wrapping_add(checksum) == 0 {
                return parse_at(window, off, flags);
            }
            first_bad.get_or_insert(HeaderError::BadChecksum {
                offset: off,
                flags,
                checksum,
            });
        }
        off += 4;
    }
    Err(first_bad.unwrap_or(HeaderError::NotFound))
}

fn parse_at(window: &[u8], off: usize, flags: u32) -> Result<Header, HeaderError> {
    let unsupported = flags & 0xFFFF & !SUPPORTED_REQUIRED;
    if unsupported != 0 {
        return Err(HeaderError::UnsupportedFlag {
            offset: off,
            bit: unsupported.trailing_zeros(),
        });
    }
    let kludge = if flags & FLAG_AOUT_KLUDGE != 0 {
        if off + 32 > window.len() {
            return Err(HeaderError::Truncated { offset: off });
        }
        Some(Kludge {
            header_addr: le::u32(window, off + 12),
            load_addr: le::u32(window, off + 16),
            load_end_addr: le::u32(window, off + 20),
            bss_end_addr: le::u32(window, off + 24),
            entry_addr: le::u32(window, off + 28),
        })
    } else {
        None
    };
    let video = if flags & FLAG_VIDEO_MODE != 0 {
        if off + 48 > window.len() {
            return Err(HeaderError::Truncated { offset: off });
        }
        let v = VideoFields {
            mode_type: le::u32(window, off + 32),
            width: le::u32(window, off + 36),
            height: le::u32(window, off + 40),
            depth: le::u32(window, off + 44),
        };
        if v.mode_type > 1 {
            return Err(HeaderError::BadModeType {
                offset: off,
                mode_type: v.mode_type,
            });
        }
        Some(v)
    } else {
        None
    };
    Ok(Header {
        offset: off,
        flags,
        kludge,
        video,
    })
}

/// Writes a valid header at `offset` of `image` (used by tests and by the
/// packager's own tests to make kernels).
pub fn write(image: &mut [u8], offset: usize, flags: u32, kludge: Option<Kludge>) {
    le::put_u32(image, offset, HEADER_MAGIC);
    le::put_u32(image, offset + 4, flags);
    le::put_u32(
        image,
        offset + 8,
        0u32.wrapping_sub(HEADER_MAGIC).wrapping_sub(flags),
    );
    if let Some(k) = kludge {
        for (i, v) in [
            k.header_addr,
            k.load_addr,
            k.load_end_addr,
            k.bss_end_addr,
            k.entry_addr,
        ]
        .into_iter()
        .enumerate()
        {
            le::put_u32(image, offset + 12 + 4 * i, v);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_a_valid_header_after_a_bad_one() {
        let mut img = [0u8; 256];
        le::put_u32(&mut img, 8, HEADER_MAGIC);
        write(&mut img, 64, 3, None);
        let h = find(&img).unwrap();
        assert_eq!((h.offset, h.flags, h.kludge, h.video), (64, 3, None, None));
    }

    #[test]
    fn reports_a_bad_checksum() {
        let mut img = [0u8; 64];
        write(&mut img, 4, 3, None);
        img[8] ^= 1;
        assert!(matches!(
            find(&img),
            Err(HeaderError::BadChecksum { offset: 4, .. })
        ));
    }

    #[test]
    fn ignores_headers_past_8k_and_unaligned() {
        let mut img = [0u8; 9000];
        write(&mut img, 8192, 3, None);
        write(&mut img, 2, 3, None);
        assert_eq!(find(&img), Err(HeaderError::NotFound));
    }

    #[test]
    fn reads_the_video_fields() {
        let mut img = [0u8; 64];
        write(&mut img, 0, FLAG_VIDEO_MODE | 3, None);
        for (i, v) in [0u32, 1024, 768, 32].into_iter().enumerate() {
            le::put_u32(&mut img, 32 + 4 * i, v);
        }
        assert_eq!(
            find(&img).unwrap().video,
            Some(VideoFields {
                mode_type: 0,
                width: 1024,
                height: 768,
                depth: 32
            })
        );
        assert_eq!(find(&img[..44]), Err(HeaderError::Truncated { offset: 0 }));
        le::put_u32(&mut img, 32, 2);
        assert_eq!(
            find(&img),
            Err(HeaderError::BadModeType {
                offset: 0,
                mode_type: 2
            })
        );
    }

    #[test]
    fn refuses_unknown_required_bits() {
        let mut img = [0u8; 64];
        write(&mut img, 0, 1 << 9, None);
        assert_eq!(
            find(&img),
            Err(HeaderError::UnsupportedFlag { offset: 0, bit: 9 })
        );
        write(&mut img, 0, 1 << 20 | 3, None);
        assert!(find(&img).is_ok());
    }

    #[test]
    fn reads_the_kludge_fields() {
        let k = Kludge {
            header_addr: 0x100000,
            load_addr: 0x100000,
            load_end_addr: 0x102000,
            bss_end_addr: 0x103000,
            entry_addr: 0x10000c,
        };
        let mut img = [0u8; 64];
        write(&mut img, 0, 0x10003, Some(k));
        assert_eq!(find(&img).unwrap().kludge, Some(k));
        assert_eq!(find(&img[..20]), Err(HeaderError::Truncated { offset: 0 }));
    }
}
