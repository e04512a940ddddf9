//! The Multiboot 2 header a kernel carries (Multiboot 2 spec, section 3.1).
//!
//! The header is 8-byte aligned within the first 32 KiB of the file:
//! magic, architecture, header_length, checksum (the four sum to 0), then
//! tags, each `{type: u16, flags: u16, size: u32, ...}` and 8-byte aligned,
//! ending with a tag of type 0 and size 8. A tag with flags bit 0 set is
//! optional: a loader that cannot honour it may ignore it. Any other tag a
//! loader cannot honour must make it refuse the kernel.

use super::le;

pub const HEADER_MAGIC: u32 = 0xE852_50D6;
/// EAX at kernel entry.
pub const BOOTLOADER_MAGIC: u32 = 0x36D7_6289;
/// The header must lie entirely within this many bytes of the file's start.
pub const SEARCH_LEN: usize = 32768;
/// Architecture 0: 32-bit protected mode i386.
pub const ARCH_I386: u32 = 0;
/// Tag flag bit 0.
pub const TAG_OPTIONAL: u16 = 1;

/// Header tag types.
pub mod tag {
    pub const END: u16 = 0;
    pub const INFORMATION_REQUEST: u16 = 1;
    pub const ADDRESS: u16 = 2;
    pub const ENTRY_ADDRESS: u16 = 3;
    pub const CONSOLE_FLAGS: u16 = 4;
    pub const FRAMEBUFFER: u16 = 5;
    pub const MODULE_ALIGN: u16 = 6;
    pub const EFI_BS: u16 = 7;
    pub const ENTRY_ADDRESS_EFI32: u16 = 8;
    pub const ENTRY_ADDRESS_EFI64: u16 = 9;
    pub const RELOCATABLE: u16 = 10;
}

/// The name of a header tag type, for messages.
pub fn tag_name(t: u16) -> &'static str {
    match t {
        tag::END => "end",
        tag::INFORMATION_REQUEST => "information request",
        tag::ADDRESS => "address",
        tag::ENTRY_ADDRESS => "entry address",
        tag::CONSOLE_FLAGS => "console flags",
        tag::FRAMEBUFFER => "framebuffer",
        tag::MODULE_ALIGN => "module alignment",
        tag::EFI_BS => "EFI boot services",
        tag::ENTRY_ADDRESS_EFI32 => "EFI i386 entry address",
        tag::ENTRY_ADDRESS_EFI64 => "EFI amd64 entry address",
        tag::RELOCATABLE => "relocatable",
        _ => "unknown",
    }
}

/// The name of an information (boot information) tag type, for messages.
pub fn info_tag_name(t: u32) -> &'static str {
    match t {
        1 => "boot command line",
        2 => "boot loader name",
        3 => "modules",
        4 => "basic memory information",
        5 => "BIOS boot device",
        6 => "memory map",
        7 => "VBE info",
        8 => "framebuffer info",
        9 => "ELF symbols",
        10 => "APM table",
        11 => "EFI 32-bit system table",
        12 => "EFI 64-bit system table",
        13 => "SMBIOS tables",
        14 => "ACPI old RSDP",
        15 => "ACPI new RSDP",
        16 => "networking information",
        17 => "EFI memory map",
        18 => "EFI boot services not terminated",
        19 => "EFI 32-bit image handle",
        20 => "EFI 64-bit image handle",
        21 => "image load base physical address",
        _ => "unknown",
    }
}

/// The address tag's fields (like Multiboot 1's a.out kludge).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AddressTag {
    pub header_addr: u32,
    /// 0xFFFFFFFF means "from the start of the file" (spec: -1).
    pub load_addr: u32,
    /// 0 means "to the end of the file".
    pub load_end_addr: u32,
    /// 0 means no bss.
    pub bss_end_addr: u32,
}

/// Console flags bit 0: the kernel needs a console.
pub const CONSOLE_REQUIRED: u32 = 1 << 0;
/// Console flags bit 1: the kernel supports the EGA text console.
pub const CONSOLE_EGA_TEXT: u32 = 1 << 1;

/// The framebuffer tag's fields: the mode the kernel prefers (0 = no
/// preference).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FramebufferTag {
    pub width: u32,
    pub height: u32,
    pub depth: u32,
    /// Marked optional: the kernel also boots without a framebuffer.
    pub optional: bool,
}

/// The relocatable tag's fields: where the image may be loaded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Relocatable {
    pub min_addr: u32,
    pub max_addr: u32,
    pub align: u32,
    /// 0 none, 1 lowest possible address, 2 highest.
    pub preference: u32,
}

/// The EFI tags of the header: what a UEFI loader does with them (a BIOS
/// loader ignores them, as GRUB does).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EfiTags {
    /// Tag 7: enter with boot services still running.
    pub boot_services: bool,
    /// Tag 8: the entry address for an i386 EFI loader.
    pub entry_efi32: Option<u32>,
    /// Tag 9: the entry address for an amd64 EFI loader (64-bit code).
    pub entry_efi64: Option<u32>,
    /// Tag 10: the image may be loaded elsewhere.
    pub relocatable: Option<Relocatable>,
}

impl Header {
    /// Whether the kernel supports the EGA text console: unless a console
    /// flags tag leaves out bit 1 (GRUB's reading).
    pub fn accepts_text(&self) -> bool {
        self.console_flags.is_none_or(|f| f & CONSOLE_EGA_TEXT != 0)
    }
}

/// A header found in a kernel image.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    /// Byte offset of the magic in the file.
    pub offset: usize,
    pub length: u32,
    pub address: Option<AddressTag>,
    pub entry: Option<u32>,
    pub console_flags: Option<u32>,
    /// The framebuffer tag, if any.
    pub framebuffer: Option<FramebufferTag>,
    /// Information tag types the kernel requires (non-optional request
    /// tags), as a bit set over types 0-63.
    pub required_info: u64,
    /// The EFI tags.
    pub efi: EfiTags,
}

/// Why a header could not be used. Offsets are file offsets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HeaderError {
    /// No magic at an 8-byte aligned offset in the first 32 KiB.
    NotFound,
    BadChecksum {
        offset: usize,
    },
    /// The header or one of its tags is cut off by header_length, the
    /// 32 KiB window or the end of the file, or has no end tag.
    Truncated {
        offset: usize,
    },
    BadArchitecture {
        offset: usize,
        arch: u32,
    },
    /// A tag whose size does not fit its type.
    BadTagSize {
        offset: usize,
        tag: u16,
        size: u32,
    },
    /// A required tag bootpack cannot honour.
    UnsupportedTag {
        offset: usize,
        tag: u16,
    },
    /// A required information request bootpack cannot satisfy at all
    /// (types 64 and up; lower ones are checked by the caller against
    /// [`Header::required_info`]).
    UnsupportedRequest {
        offset: usize,
        info: u32,
    },
}

/// Finds the first header with a valid checksum in the first 32 KiB. A
/// magic with a bad checksum is reported only when no valid header follows.
pub fn find(image: &[u8]) -> Result<Header, HeaderError> {
    let window = &image[..image.len().min(SEARCH_LEN)];
    let mut first_bad = None;
    let mut off = 0;
    while off + 16 <= window.len() {
        if le::u32(window, off) == HEADER_MAGIC {
            let sum = (0..4).fold(0u32, |a, i| a.wrapping_add(le::u32(window, off + 4 * i)));
            if sum == 0 {
                return parse_at(window, off);
            }
            first_bad.get_or_insert(HeaderError::BadChecksum { offset: off });
        }
        off += 8;
    }
    Err(first_bad.unwrap_or(HeaderError::NotFound))
}

/// Whether the image has a Multiboot 2 magic at all (valid or not).
pub fn present(image: &[u8]) -> bool {
    let window = &image[..image.len().min(SEARCH_LEN)];
    (0..window.len().saturating_sub(3))
        .step_by(8)
        .any(|o| le::u32(window, o) == HEADER_MAGIC)
}

fn parse_at(window: &[u8], off: usize) -> Result<Header, HeaderError> {
    let arch = le::u32(window, off + 4);
    let length = le::u32(window, off + 8);
    if arch != ARCH_I386 {
        return Err(HeaderError::BadArchitecture { offset: off, arch });
    }
    let end = off + length as usize;
    if length < 24 || end > window.len() {
        return Err(HeaderError::Truncated { offset: off });
    }
    let mut h = Header {
        offset: off,
        length,
        address: None,
        entry: None,
        console_flags: None,
        framebuffer: None,
        required_info: 0,
        efi: EfiTags::default(),
    };
    let mut t = off + 16;
    loop {
        if t + 8 > end {
            return Err(HeaderError::Truncated { offset: off });
        }
        let ty = le::u16(window, t);
        let flags = le::u16(window, t + 2);
        let size = le::u32(window, t + 4);
        let optional = flags & TAG_OPTIONAL != 0;
        let bad_size = HeaderError::BadTagSize {
            offset: t,
            tag: ty,
            size,
        };
        if size < 8 || t + size as usize > end {
            return Err(bad_size);
        }
        let body = &window[t + 8..t + size as usize];
        let need = |n: usize| {
            if body.len() < n {
                Err(bad_size)
            } else {
                Ok(())
            }
        };
        match ty {
            tag::END => break,
            tag::INFORMATION_REQUEST => {
                for i in 0..body.len() / 4 {
                    let info = le::u32(body, 4 * i);
                    if optional {
                        continue;
                    }
                    if info >= 64 {
                        return Err(HeaderError::UnsupportedRequest { offset: t, info });
                    }
                    h.required_info |= 1 << info;
                }
            }
            tag::ADDRESS => {
                need(16)?;
                h.address = Some(AddressTag {
                    header_addr: le::u32(body, 0),
                    load_addr: le::u32(body, 4),
                    load_end_addr: le::u32(body, 8),
                    bss_end_addr: le::u32(body, 12),
                });
            }
            tag::ENTRY_ADDRESS => {
                need(4)?;
                h.entry = Some(le::u32(body, 0));
            }
            // Read with the framebuffer tag: whether EGA text is a
            // fallback the kernel accepts.
            tag::CONSOLE_FLAGS => {
                need(4)?;
                h.console_flags = Some(le::u32(body, 0));
            }
            tag::FRAMEBUFFER => {
                need(12)?;
                h.framebuffer = Some(FramebufferTag {
                    width: le::u32(body, 0),
                    height: le::u32(body, 4),
                    depth: le::u32(body, 8),
                    optional,
                });
            }
            // Modules are always page-aligned.
            tag::MODULE_ALIGN => {}
            // EFI-only tags: kept for a UEFI boot; meaningless on a BIOS
            // boot, where GRUB ignores them too.
            tag::EFI_BS => h.efi.boot_services = true,
            tag::ENTRY_ADDRESS_EFI32 => {
                need(4)?;
                h.efi.entry_efi32 = Some(le::u32(body, 0));
            }
            tag::ENTRY_ADDRESS_EFI64 => {
                need(4)?;
                h.efi.entry_efi64 = Some(le::u32(body, 0));
            }
            // The image may be relocated; loading it at its linked address
            // is one of the places it allows.
            tag::RELOCATABLE => {
                need(16)?;
                h.efi.relocatable = Some(Relocatable {
                    min_addr: le::u32(body, 0),
                    max_addr: le::u32(body, 4),
                    align: le::u32(body, 8),
                    preference: le::u32(body, 12),
                });
            }
            _ if optional => {}
            // Unknown tags.
            _ => return Err(HeaderError::UnsupportedTag { offset: t, tag: ty }),
        }
        t += (size as usize).div_ceil(8) * 8;
    }
    Ok(h)
}

/// Builds a header (for tests): magic, arch 0, length, checksum, the given
/// tags (each `(type, flags, body)`, padded to 8 bytes), the end tag.
/// Writes it at `offset` of `image` and returns its length.
pub fn write(image: &mut [u8], offset: usize, tags: &[(u16, u16, &[u8])]) -> usize {
    let mut o = offset + 16;
    for &(ty, flags, body) in tags {
        le::put_u16(image, o, ty);
        le::put_u16(image, o + 2, flags);
        le::put_u32(image, o + 4, 8 + body.len() as u32);
        image[o + 8..o + 8 + body.len()].copy_from_slice(body);
        let padded = (8 + body.len()).div_ceil(8) * 8;
        image[o + 8 + body.len()..o + padded].fill(0);
        o += padded;
    }
    le::put_u32(image, o, 0);
    le::put_u32(image, o + 4, 8);
    let len = (o + 8 - offset) as u32;
    le::put_u32(image, offset, HEADER_MAGIC);
    le::put_u32(image, offset + 4, ARCH_I386);
    le::put_u32(image, offset + 8, len);
    le::put_u32(
        image,
        offset + 12,
        0u32.wrapping_sub(HEADER_MAGIC).wrapping_sub(len),
    );
    len as usize
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use std::{vec, vec::Vec};

    fn body(w: &[u32]) -> Vec<u8> {
        w.iter().flat_map(|x| x.to_le_bytes()).collect()
    }

    /// The EFI tags as Xen 4.17's header has them: boot services, the
    /// amd64 entry, relocatable (2 MiB to 4 GiB, 2 MiB aligned, highest);
    /// plus an i386 entry, which Xen has not.
    #[test]
    fn reads_the_efi_tags() {
        let mut img = vec![0u8; 512];
        write(
            &mut img,
            8,
            &[
                (tag::EFI_BS, TAG_OPTIONAL, &[]),
                (tag::ENTRY_ADDRESS_EFI64, TAG_OPTIONAL, &body(&[0x200120])),
                (tag::ENTRY_ADDRESS_EFI32, TAG_OPTIONAL, &body(&[0x200100])),
                (
                    tag::RELOCATABLE,
                    TAG_OPTIONAL,
                    &body(&[0x200000, 0xFFFF_FFFF, 0x200000, 2]),
                ),
            ],
        );
        let h = find(&img).unwrap();
        assert_eq!(
            h.efi,
            EfiTags {
                boot_services: true,
                entry_efi32: Some(0x200100),
                entry_efi64: Some(0x200120),
                relocatable: Some(Relocatable {
                    min_addr: 0x200000,
                    max_addr: 0xFFFF_FFFF,
                    align: 0x200000,
                    preference: 2,
                }),
            }
        );
        // None of them: the defaults.
        let mut img = vec![0u8; 64];
        write(&mut img, 0, &[]);
        assert_eq!(find(&img).unwrap().efi, EfiTags::default());
    }

    #[test]
    fn reads_address_entry_and_requests() {
        let addr = body(&[0x100040, 0x100000, 0x104000, 0x110000]);
        let req = body(&[1, 6, 21]);
        let opt = body(&[8]);
        let mut img = vec![0u8; 512];
        let len = write(
            &mut img,
            64,
            &[
                (tag::INFORMATION_REQUEST, 0, &req),
                (tag::INFORMATION_REQUEST, TAG_OPTIONAL, &opt),
                (tag::ADDRESS, 0, &addr),
                (tag::ENTRY_ADDRESS, 0, &body(&[0x10000c])),
                (tag::CONSOLE_FLAGS, 0, &body(&[3])),
                (tag::MODULE_ALIGN, 0, &[]),
                (tag::FRAMEBUFFER, TAG_OPTIONAL, &body(&[1024, 768, 32])),
            ],
        );
        let h = find(&img).unwrap();
        assert_eq!(h.offset, 64);
        assert_eq!(h.length as usize, len);
        assert_eq!(h.entry, Some(0x10000c));
        assert_eq!(h.console_flags, Some(3));
        assert!(h.accepts_text());
        assert_eq!(
            h.framebuffer,
            Some(FramebufferTag {
                width: 1024,
                height: 768,
                depth: 32,
                optional: true
            })
        );
        assert_eq!(h.required_info, 1 << 1 | 1 << 6 | 1 << 21);
        assert_eq!(
            h.address,
            Some(AddressTag {
                header_addr: 0x100040,
                load_addr: 0x100000,
                load_end_addr: 0x104000,
                bss_end_addr: 0x110000
            })
        );
        assert!(present(&img));
    }

    #[test]
    fn only_8_byte_aligned_in_the_first_32k() {
        let mut img = vec![0u8; 40000];
        write(&mut img, 4, &[]);
        write(&mut img, 32768, &[]);
        assert_eq!(find(&img), Err(HeaderError::NotFound));
        assert!(!present(&img));
        write(&mut img, 32768 - 24, &[]);
        assert_eq!(find(&img).unwrap().offset, 32768 - 24);
        // One byte too far: cut by the window.
        let mut img = vec![0u8; 40000];
        write(&mut img, 32768 - 16, &[]);
        assert_eq!(
            find(&img),
            Err(HeaderError::Truncated { offset: 32768 - 16 })
        );
    }

    #[test]
    fn bad_checksum_and_architecture() {
        let mut img = vec![0u8; 128];
        write(&mut img, 8, &[]);
        img[20] ^= 1;
        assert_eq!(find(&img), Err(HeaderError::BadChecksum { offset: 8 }));
        let mut img = vec![0u8; 128];
        write(&mut img, 0, &[]);
        le::put_u32(&mut img, 4, 4); // MIPS
        le::put_u32(&mut img, 12, 0u32.wrapping_sub(HEADER_MAGIC + 4 + 24));
        assert_eq!(
            find(&img),
            Err(HeaderError::BadArchitecture { offset: 0, arch: 4 })
        );
    }

    #[test]
    fn reads_a_required_framebuffer_tag_and_console_flags() {
        let fb = body(&[800, 600, 16]);
        let mut img = vec![0u8; 128];
        write(
            &mut img,
            0,
            &[
                (tag::FRAMEBUFFER, 0, &fb),
                (tag::CONSOLE_FLAGS, 0, &body(&[1])),
            ],
        );
        let h = find(&img).unwrap();
        assert_eq!(
            h.framebuffer,
            Some(FramebufferTag {
                width: 800,
                height: 600,
                depth: 16,
                optional: false
            })
        );
        assert!(!h.accepts_text());
        let mut img = vec![0u8; 128];
        write(&mut img, 0, &[(tag::FRAMEBUFFER, 0, &fb[..8])]);
        assert!(matches!(
            find(&img),
            Err(HeaderError::BadTagSize {
                tag: tag::FRAMEBUFFER,
                ..
            })
        ));
    }

    #[test]
    fn refuses_required_tags_it_cannot_honour() {
        let mut img = vec![0u8; 128];
        write(&mut img, 0, &[(tag::MODULE_ALIGN, 0, &[]), (42, 0, &[])]);
        assert_eq!(
            find(&img),
            Err(HeaderError::UnsupportedTag {
                offset: 24,
                tag: 42
            })
        );
        let mut img = vec![0u8; 128];
        write(&mut img, 0, &[(42, TAG_OPTIONAL, &[1, 2, 3])]);
        assert!(find(&img).is_ok());
        let mut img = vec![0u8; 128];
        write(&mut img, 0, &[(tag::INFORMATION_REQUEST, 0, &body(&[99]))]);
        assert_eq!(
            find(&img),
            Err(HeaderError::UnsupportedRequest {
                offset: 16,
                info: 99
            })
        );
        assert_eq!(tag_name(5), "framebuffer");
        assert_eq!(info_tag_name(13), "SMBIOS tables");
    }

    #[test]
    fn bad_tag_sizes() {
        let mut img = vec![0u8; 128];
        write(&mut img, 0, &[(tag::ENTRY_ADDRESS, 0, &[1, 2])]);
        assert_eq!(
            find(&img),
            Err(HeaderError::BadTagSize {
                offset: 16,
                tag: tag::ENTRY_ADDRESS,
                size: 10
            })
        );
        // A tag running past header_length.
        let mut img = vec![0u8; 128];
        write(&mut img, 0, &[(tag::MODULE_ALIGN, 0, &[])]);
        le::put_u32(&mut img, 20, 200);
        assert!(matches!(
            find(&img),
            Err(HeaderError::BadTagSize { offset: 16, .. })
        ));
    }
}
