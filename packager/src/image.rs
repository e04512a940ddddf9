//! Writing the disk image: the errors of laying it out, the module inputs,
//! and the atomic write. Where things go on the disk is decided in
//! [`crate::layout`] (re-exported here); the bytes themselves are written
//! by [`crate::formats`].
//!
//! The image is written to a temporary file beside the output and renamed
//! into place only when complete, so the output path never holds a
//! half-written image.

use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

pub use crate::layout::{
    layout, layout_firmware, layout_with_modules, min_disk_bytes, Bootloader, Layout, Table,
};

/// Why an image could not be laid out or written.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    /// The command line does not fit the kernel's buffer.
    #[error("the command line is {len} bytes; with its terminating NUL it must fit in {max} bytes (Solo5's buffer)")]
    CmdlineTooLong {
        /// Its length in bytes.
        len: usize,
        /// The most bytes allowed, NUL included.
        max: usize,
    },
    /// The boot configuration record does not fit its sectors.
    #[error("the configuration record would need {len} bytes ({segments} segments, {modules} modules with their strings, the command line and {sections} bytes of ELF section headers) but at most {max} fit")]
    RecordTooLarge {
        /// The bytes it would need.
        len: usize,
        /// The kernel's load segments.
        segments: usize,
        /// The modules.
        modules: usize,
        /// The bytes of ELF section headers it carries.
        sections: usize,
        /// The most bytes that fit.
        max: usize,
    },
    /// More modules than the loader takes.
    #[error("{count} modules; bootpack loads at most {max}")]
    TooManyModules {
        /// The modules given.
        count: usize,
        /// The most the loader takes.
        max: usize,
    },
    /// A module of 4 GiB or more.
    #[error("module {index} ({path}) is {size} bytes; a module must be smaller than 4 GiB")]
    ModuleTooLarge {
        /// The module's number, from 1.
        index: usize,
        /// The module file.
        path: PathBuf,
        /// Its size in bytes.
        size: u64,
    },
    /// A module's string is too long.
    #[error("module {index} ({path}): its string is {len} bytes; with its terminating NUL it must fit in {max} bytes")]
    ModuleStringTooLong {
        /// The module's number, from 1.
        index: usize,
        /// The module file.
        path: PathBuf,
        /// The string's length in bytes.
        len: usize,
        /// The most bytes allowed, NUL included.
        max: usize,
    },
    /// A module's string contains a NUL byte.
    #[error("module {index} ({path}): its string contains a NUL byte at offset {offset}")]
    ModuleStringNul {
        /// The module's number, from 1.
        index: usize,
        /// The module file.
        path: PathBuf,
        /// Where the NUL is in the string.
        offset: usize,
    },
    /// The modules do not fit between the kernel's end and 4 GiB.
    #[error("the kernel ends at {kernel_end:#x} and the modules need {bytes:#x} bytes after it (page-aligned): that does not fit below 4 GiB")]
    ModulesBeyond4G {
        /// The address just past the kernel.
        kernel_end: u64,
        /// The bytes the modules need, page-aligned.
        bytes: u64,
    },
    /// The disk would be larger than an MBR partition table can describe.
    #[error("the disk would need {sectors} sectors; MBR partitions end at 2 TiB, a GPT has no such limit")]
    TooLarge {
        /// The sectors it would need.
        sectors: u64,
    },
    /// The size asked for is smaller than the contents.
    #[error("a disk of {size} bytes is too small: the bootloader and kernel need at least {min} bytes ({} MiB)", min.div_ceil(1 << 20))]
    DiskTooSmall {
        /// The size asked for, in bytes.
        size: u64,
        /// The smallest size that holds the contents, in bytes.
        min: u64,
    },
    /// The size asked for is not a whole number of the format's unit.
    #[error("a {format} image must be a whole number of {unit}; {size} bytes is not")]
    SizeGranularity {
        /// The format.
        format: String,
        /// Its unit ("1 GiB", "1 MiB", ...).
        unit: String,
        /// The size asked for, in bytes.
        size: u64,
    },
    /// The size asked for is more than the format can hold.
    #[error("a {format} image can hold at most {max} bytes ({} GiB); {size} bytes is more", max >> 30)]
    FormatTooSmall {
        /// The format.
        format: String,
        /// The most bytes it holds.
        max: u64,
        /// The size asked for, in bytes.
        size: u64,
    },
    /// The embedded stage 1 lacks its patch fields (a broken build).
    #[error("internal: stage 1 lacks its patch placeholders (stale bootloader build)")]
    Stage1Layout,
    /// The embedded stage 2 is larger than stage 1 can load (a broken build).
    #[error("internal: stage 2 is {sectors} sectors; stage 1 loads at most {max}")]
    Stage2TooLarge {
        /// Its size in sectors.
        sectors: u64,
        /// The most sectors stage 1 loads.
        max: u16,
    },
    /// The UEFI loader given does not fit the ESP (a broken build).
    #[error(
        "internal: the UEFI loader is {bytes} bytes, more than the EFI system partition holds"
    )]
    UefiLoaderTooLarge {
        /// Its size in bytes.
        bytes: usize,
    },
    /// Writing the image failed.
    #[error("cannot write {path}: {source}")]
    Io {
        /// The file being written.
        path: PathBuf,
        /// Why it failed.
        source: io::Error,
    },
}

/// A module to pack: its bytes and string.
#[derive(Clone)]
pub struct ModuleInput {
    /// Where the bytes came from (for messages).
    pub path: PathBuf,
    /// The module's contents.
    pub bytes: Vec<u8>,
    /// The string the kernel gets with it, without NUL.
    pub string: Vec<u8>,
}

impl std::fmt::Debug for ModuleInput {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.debug_struct("ModuleInput")
            .field("path", &self.path)
            .field("len", &self.bytes.len())
            .field("string", &String::from_utf8_lossy(&self.string))
            .finish()
    }
}

/// Runs `fill` on a fresh temporary file beside `out` and renames it to
/// `out` if `fill` succeeds; removes it otherwise.
pub fn write_atomically(
    out: &Path,
    fill: impl FnOnce(&mut File) -> io::Result<()>,
) -> Result<(), ImageError> {
    let io_err = |source| ImageError::Io {
        path: out.to_path_buf(),
        source,
    };
    let dir = match out.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = out
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.bootpack-{}.tmp", std::process::id()));
    // Announced before it exists, so an interrupt at any point removes it.
    crate::interrupt::set_temporary(Some(&tmp));
    let result = File::create(&tmp).and_then(|mut f| {
        fill(&mut f)?;
        f.flush()
    });
    let result = result.and_then(|()| std::fs::rename(&tmp, out));
    crate::interrupt::set_temporary(None);
    match result {
        Ok(()) => Ok(()),
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            Err(io_err(e))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::{LoadPlan, LoadSegment};
    use crate::proto::checksum::fletcher64;
    use crate::proto::layout::STAGE2_LBA;
    use crate::proto::record::Record;
    use crate::proto::stage1;

    use crate::layout::tests::{plan_of, stage1};

    fn plan() -> LoadPlan {
        plan_of(vec![
            LoadSegment {
                dest: 0x100000,
                file: 0..1000,
                mem_size: 0x2000,
            },
            LoadSegment {
                dest: 0x200000,
                file: 1000..1000,
                mem_size: 0x1000,
            },
            LoadSegment {
                dest: 0x300000,
                file: 1000..1700,
                mem_size: 700,
            },
        ])
    }

    #[test]
    fn lays_out_mbr_stage2_record_and_data() {
        let kernel: Vec<u8> = (0..1700).map(|i| i as u8).collect();
        let s1 = stage1();
        let boot = Bootloader {
            stage1: &s1,
            stage2: &[7u8; 600],
        };
        let l = layout(&boot, &kernel, &plan(), b"k a b", Ok).unwrap();
        // Stage 1 patched: stage 2's LBA, two sectors, the word sum.
        assert_eq!(&l.mbr[0x1AC..0x1B0], &STAGE2_LBA.to_le_bytes());
        assert_eq!(&l.mbr[0x1B0..0x1B2], &2u16.to_le_bytes());
        assert_eq!(
            &l.mbr[0x1B2..0x1B4],
            &stage1::stage2_sum(&l.stage2).to_le_bytes()
        );
        assert_eq!(&l.mbr[0x1FE..], &[0x55, 0xAA]);
        // One active 0x7F partition at 2048, a whole MiB.
        let p = &l.mbr[0x1BE..0x1CE];
        assert_eq!((p[0], p[4]), (0x80, 0x7F));
        assert_eq!(&p[8..12], &2048u32.to_le_bytes());
        assert_eq!(&p[12..16], &2048u32.to_le_bytes());
        assert_eq!(l.disk_sectors, 4096);
        // The record reads back and points at the data.
        let r = Record::parse(&l.record).unwrap();
        assert_eq!(r.cmdline(), b"k a b");
        let segs: Vec<_> = r.segments().collect();
        assert_eq!((segs[0].data_sector, segs[0].file_size), (1, 1000));
        assert_eq!((segs[1].data_sector, segs[1].file_size), (3, 0));
        assert_eq!((segs[2].data_sector, segs[2].file_size), (3, 700));
        assert_eq!(
            l.data,
            vec![(0..1000, (2048 + 1) * 512), (1000..1700, (2048 + 3) * 512)]
        );
        assert_eq!(r.data_sectors(), 4);
    }

    #[test]
    fn refuses_an_overlong_command_line_and_a_stale_stage1() {
        let s1 = stage1();
        let boot = Bootloader {
            stage1: &s1,
            stage2: &[7u8; 600],
        };
        let long = vec![b'x'; 8192];
        assert!(matches!(
            layout(&boot, &[0; 1700], &plan(), &long, Ok),
            Err(ImageError::CmdlineTooLong {
                len: 8192,
                max: 8192
            })
        ));
        assert!(layout(&boot, &[0; 1700], &plan(), &long[..8191], Ok).is_ok());
        assert!(matches!(
            layout(&boot, &[0; 1700], &plan(), b"k", |_| Ok(1 << 20)),
            Err(ImageError::DiskTooSmall {
                size: 0x100000,
                min: 0x200000
            })
        ));
        let big = layout(&boot, &[0; 1700], &plan(), b"k", |_| Ok(1 << 30)).unwrap();
        assert_eq!(
            (big.disk_sectors, big.partition_sectors),
            (1 << 21, (1 << 21) - 2048)
        );
        let stale = Bootloader {
            stage1: &[0u8; 512],
            stage2: &[7u8; 600],
        };
        assert!(matches!(
            layout(&stale, &[0; 1700], &plan(), b"k", Ok),
            Err(ImageError::Stage1Layout)
        ));
    }

    #[test]
    fn writes_atomically_and_sparsely() {
        let dir = std::env::temp_dir().join(format!("bootpack-image-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let out = dir.join("disk.img");
        let mut kernel = vec![0u8; 1700];
        kernel[1500] = 9;
        let s1 = stage1();
        let boot = Bootloader {
            stage1: &s1,
            stage2: &[7u8; 600],
        };
        let l = layout(&boot, &kernel, &plan(), b"k", Ok).unwrap();
        write_atomically(&out, |f| {
            crate::formats::write(crate::Format::Raw, &l.disk(&kernel), f, &mut |_, _| {})
        })
        .unwrap();
        let disk = std::fs::read(&out).unwrap();
        assert_eq!(disk.len() as u64, l.disk_bytes());
        assert_eq!(&disk[..512], &l.mbr);
        assert_eq!(disk[(2048 + 3) * 512 + 500], 9);
        // A failing fill leaves neither the output nor a temporary file.
        let out2 = dir.join("never.img");
        let err = write_atomically(&out2, |_| Err(io::Error::other("disk full")));
        assert!(err.is_err() && !out2.exists());
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    fn module(len: usize, string: &str) -> ModuleInput {
        ModuleInput {
            path: PathBuf::from(format!("m{len}")),
            bytes: (0..len).map(|i| (i * 3) as u8 | 1).collect(),
            string: string.as_bytes().to_vec(),
        }
    }

    #[test]
    fn modules_follow_the_kernel_on_disk() {
        let kernel: Vec<u8> = (0..1700).map(|i| i as u8).collect();
        let s1 = stage1();
        let boot = Bootloader {
            stage1: &s1,
            stage2: &[7u8; 600],
        };
        let mods = vec![module(513, "initrd x=1"), module(0, ""), module(10, "c")];
        let l = layout_with_modules(&boot, &kernel, &plan(), b"k", mods, Ok).unwrap();
        let r = Record::parse(&l.record).unwrap();
        assert_eq!(r.module_count(), 3);
        let m: Vec<_> = r.modules().collect();
        // Kernel data in sectors 1..5, then 2 + 0 + 1 sectors of modules.
        assert_eq!((m[0].data_sector, m[0].size), (5, 513));
        assert_eq!((m[1].data_sector, m[1].size), (7, 0));
        assert_eq!((m[2].data_sector, m[2].size), (7, 10));
        assert_eq!(m[0].string, b"initrd x=1\0");
        assert_eq!(m[1].string, b"\0");
        assert_eq!(m[0].sum, fletcher64(&l.modules[0].0.bytes));
        assert_eq!(r.data_sectors(), 7);
        let disk = l.disk(&kernel);
        let mut got = vec![0u8; 513];
        disk.read_at((2048 + 5) * 512, &mut got);
        assert_eq!(got, l.modules[0].0.bytes);
    }

    #[test]
    fn refuses_bad_modules() {
        let s1 = stage1();
        let boot = Bootloader {
            stage1: &s1,
            stage2: &[7u8; 600],
        };
        let try_mods = |mods: Vec<ModuleInput>| {
            layout_with_modules(&boot, &[0; 1700], &plan(), b"k", mods, Ok).unwrap_err()
        };
        let many = (0..129).map(|_| module(1, "")).collect();
        assert!(matches!(
            try_mods(many),
            ImageError::TooManyModules {
                count: 129,
                max: 128
            }
        ));
        assert!(matches!(
            try_mods(vec![module(1, "a"), module(1, "b\0c")]),
            ImageError::ModuleStringNul {
                index: 2,
                offset: 1,
                ..
            }
        ));
        assert!(matches!(
            try_mods(vec![module(1, &"s".repeat(8192))]),
            ImageError::ModuleStringTooLong { index: 1, .. }
        ));
        let mut high = plan();
        high.segments[2].dest = 0xFFFF_0000;
        let e = layout_with_modules(
            &boot,
            &[0; 1700],
            &high,
            b"k",
            vec![module(0x20000, "")],
            Ok,
        )
        .unwrap_err();
        assert!(matches!(e, ImageError::ModulesBeyond4G { .. }), "{e}");
    }
}
