//! bootpack: turns a Multiboot kernel into a bootable disk image (MBR or
//! GPT), with its own bootloader and no external programs.
//!
//! ```no_run
//! let report = bootpack::Build::new("unikernel.bin")
//!     .args(["--ipv4=10.0.0.2/24"])
//!     .write("disk.img")?;
//! println!("{} bytes", report.disk_bytes);
//! # Ok::<(), bootpack::Error>(())
//! ```

#![warn(missing_docs)]

use std::ffi::OsString;
use std::path::{Path, PathBuf};

pub mod bootloader;
pub mod decompress;
pub mod disk;
pub mod fat;
pub mod formats;
pub mod image;
mod input;
pub mod inspect;
mod interrupt;
pub mod kernel;
pub mod layout;
pub mod ovmf;
// The boot core the loaders build as the crate bootpack-proto: its modules
// and items are documented, their fields and small accessors not all yet
// (it was a crate of its own without this lint).
#[allow(missing_docs)]
pub mod proto;
pub mod reader;
pub mod run;
pub mod video;

pub use formats::Format;
pub use interrupt::remove_temporary_on_signal;

// The README's examples run as doctests: its library example builds a
// real image.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
struct ReadmeDoctests;
pub use image::ImageError;
pub use kernel::{KernelError, KernelFormat, LoadPlan, Protocol};
pub use layout::{Firmware, Table};
pub use video::{VideoError, VideoOption};

/// Everything that can stop a build.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The kernel file could not be read.
    #[error("{path}: cannot read the kernel: {source}")]
    ReadKernel {
        /// The kernel file.
        path: PathBuf,
        /// Why it could not be read.
        source: std::io::Error,
    },
    /// The kernel is not one bootpack can boot.
    #[error("{path}: {source}")]
    Kernel {
        /// The kernel file (or the demo kernel's name).
        path: PathBuf,
        /// What is wrong with it.
        source: KernelError,
    },
    /// The kernel file was compressed, and what it held is not a kernel
    /// bootpack can load.
    #[error("{path} (decompressed from {format}; offsets are in the decompressed data): {source}")]
    DecompressedKernel {
        /// The kernel file.
        path: PathBuf,
        /// How it was compressed.
        format: decompress::Compression,
        /// What is wrong with what it held.
        source: KernelError,
    },
    /// The kernel file looks compressed but cannot be decompressed.
    #[error("{path}: {source}")]
    Decompress {
        /// The kernel file.
        path: PathBuf,
        /// What is wrong with the compressed data.
        source: decompress::DecompressError,
    },
    /// A module file looks compressed but cannot be decompressed.
    #[error("{path}: module {index} {source}")]
    DecompressModule {
        /// The module's number, from 1.
        index: usize,
        /// The module file.
        path: PathBuf,
        /// What is wrong with the compressed data.
        source: decompress::DecompressError,
    },
    /// The image cannot be laid out or written.
    #[error("{path}: {source}")]
    Image {
        /// The kernel file, or the output when writing failed.
        path: PathBuf,
        /// What went wrong.
        source: ImageError,
    },
    /// The video mode asked for cannot be given to this kernel.
    #[error("{path}: video mode {source}")]
    Video {
        /// The kernel file.
        path: PathBuf,
        /// Why not.
        source: VideoError,
    },
    /// The output is the kernel file itself.
    #[error("{out}: refusing to write the image over the kernel file itself; choose another output path")]
    OutputIsKernel {
        /// The output path.
        out: PathBuf,
    },
    /// The output exists and is not a regular file (a device, a directory, ...).
    #[error("{out}: is {kind}; bootpack writes image files and will not replace it (write a file, then copy it with dd if a device is meant)")]
    OutputNotAFile {
        /// The output path.
        out: PathBuf,
        /// What it is ("a directory", "a block device", ...).
        kind: &'static str,
    },
    /// A module file could not be read.
    #[error("{path}: cannot read module {index}: {source}")]
    ReadModule {
        /// The module's number, from 1.
        index: usize,
        /// The module file.
        path: PathBuf,
        /// Why it could not be read.
        source: std::io::Error,
    },
    #[error(
        "{out}: refusing to write the image over module {index} itself; choose another output path"
    )]
    /// The output is one of the module files.
    OutputIsModule {
        /// The output path.
        out: PathBuf,
        /// The module's number, from 1.
        index: usize,
    },
    /// The disk size asked for does not suit the contents or the format.
    #[error("{source}; the {format} disk size must be {} to {}{}", human(*min), human(*max), granularity_note(*format))]
    Size {
        /// The size asked for, in bytes.
        size: u64,
        /// The smallest size allowed for these contents and format.
        min: u64,
        /// The largest size allowed for this format.
        max: u64,
        /// The format.
        format: Format,
        /// What is wrong with it.
        source: ImageError,
    },
    /// The output's directory does not exist.
    #[error("{dir}: no such directory (for the image {out}); create it first")]
    NoOutputDirectory {
        /// The output path.
        out: PathBuf,
        /// Its directory.
        dir: PathBuf,
    },
    /// The format asked for contradicts the output's file name.
    #[error("{out}: the format asked for ({format}) contradicts the file name, which says {extension}; change one of them")]
    FormatMismatch {
        /// The output path.
        out: PathBuf,
        /// The format asked for.
        format: Format,
        /// The format the file name says.
        extension: Format,
    },
}

impl Error {
    /// Whether the error is a bad value the caller gave (a disk size that
    /// does not suit, a format that contradicts the file name) rather than
    /// a problem with the files: the command line exits 2 for these.
    pub fn is_bad_value(&self) -> bool {
        matches!(self, Error::Size { .. } | Error::FormatMismatch { .. })
    }
}

/// What a build produced.
#[derive(Clone, Debug)]
pub struct Report {
    /// How the kernel is loaded (segments, entry, format).
    pub plan: LoadPlan,
    /// The image format written.
    pub format: Format,
    /// The kernel's command line, without its terminating NUL.
    pub cmdline: Vec<u8>,
    /// The size of the disk the image holds, in bytes.
    pub disk_bytes: u64,
    /// The checksum of the kernel and modules as stored (what `inspect` verifies).
    pub payload_sum: u64,
    /// How the kernel file was decompressed, if it was compressed.
    pub kernel_decompressed: Option<decompress::Decompressed>,
    /// For each module in order: how it was decompressed, if it was.
    pub modules_decompressed: Vec<Option<decompress::Decompressed>>,
}

/// A disk image build: a kernel, its arguments, an output.
#[derive(Clone, Debug)]
pub struct Build {
    kernel: KernelSource,
    name: Option<OsString>,
    args: Vec<OsString>,
    format: Option<Format>,
    /// The format was given by a caller that names files its own way
    /// (`solo5-virtio-mkimage -f tar IMAGE`): do not check the extension.
    format_overrides_name: bool,
    size: Option<u64>,
    /// Module files and their strings, in order, and whether to store
    /// each as it is (not decompressed).
    modules: Vec<(PathBuf, OsString, bool)>,
    /// None: Multiboot 2 if the kernel has that header, else Multiboot 1.
    protocol: Option<Protocol>,
    /// Whether stage 2 may use its own controller driver for reads.
    fast_read: bool,
    /// The partition table.
    table: Table,
    /// The firmware the image boots on.
    firmware: Firmware,
    /// The UEFI loader to use instead of the embedded one.
    uefi_loader: Option<Vec<u8>>,
    /// The video request that replaces the kernel's, if any.
    video: Option<VideoOption>,
    /// Stage 1 and stage 2 to use instead of the embedded ones.
    stages: Option<(Vec<u8>, Vec<u8>)>,
}

#[derive(Clone, Debug)]
enum KernelSource {
    File(PathBuf),
    Bytes { name: String, bytes: &'static [u8] },
}

impl Build {
    /// A build of the kernel in the file at `kernel`.
    pub fn new(kernel: impl Into<PathBuf>) -> Self {
        Self::of(KernelSource::File(kernel.into()))
    }

    /// A build of the embedded demo kernel.
    pub fn demo() -> Self {
        Self::of(KernelSource::Bytes {
            name: "bootpack-demo".into(),
            bytes: bootloader::DEMO_KERNEL,
        })
    }

    fn of(kernel: KernelSource) -> Self {
        Build {
            kernel,
            name: None,
            args: Vec::new(),
            format: None,
            format_overrides_name: false,
            size: None,
            modules: Vec::new(),
            protocol: None,
            fast_read: true,
            table: Table::Mbr,
            firmware: Firmware::default(),
            uefi_loader: None,
            video: None,
            stages: None,
        }
    }

    /// The firmware the image boots on (default: [`Firmware::Both`]).
    /// With UEFI the image gets an EFI system partition at its end holding
    /// bootpack's UEFI loader, which reads the same kernel partition.
    pub fn firmware(mut self, firmware: Firmware) -> Self {
        self.firmware = firmware;
        self
    }

    /// Uses this UEFI loader (`BOOTX64.EFI`) instead of the one bootpack
    /// embeds.
    pub fn uefi_loader(mut self, efi: Vec<u8>) -> Self {
        self.uefi_loader = Some(efi);
        self
    }

    /// The partition table (default: MBR). A GPT lifts MBR's 2 TiB limit
    /// on the disk size; stage 2 lies at the same place in both.
    pub fn table(mut self, table: Table) -> Self {
        self.table = table;
        self
    }

    /// The video mode, in place of the one the kernel asks for (GRUB's
    /// `gfxpayload`): a `WxHxD` or `WxH` graphics mode, exactly that or
    /// else EGA text where the kernel accepts it; EGA text; or "keep",
    /// the mode the firmware set. A kernel that asks for no graphics mode
    /// cannot be given one, nor EGA text one that refuses it: the build
    /// fails with [`Error::Video`].
    pub fn video(mut self, video: VideoOption) -> Self {
        self.video = Some(video);
        self
    }

    /// Uses this stage 1 and stage 2 instead of the bootloader bootpack
    /// embeds (e.g. a loader built with time marks, or one built from other
    /// sources to compare).
    pub fn bootloader(mut self, stage1: Vec<u8>, stage2: Vec<u8>) -> Self {
        self.stages = Some((stage1, stage2));
        self
    }

    /// Whether stage 2 may read the kernel with its own driver for a
    /// controller it recognises (PIIX IDE, AHCI, virtio-blk, virtio-scsi)
    /// instead of the BIOS, which is much faster for big kernels (default:
    /// true). With false every read goes through INT 13h.
    pub fn fast_read(mut self, on: bool) -> Self {
        self.fast_read = on;
        self
    }

    /// Adds a module: the file at `path` is stored in the image and loaded
    /// at boot, page-aligned above the kernel, and the kernel gets `string`
    /// with it (empty for none). Modules are passed in the order added. A
    /// gzip, xz or zstd file is decompressed first, as GRUB does (see
    /// [`Build::module_raw`] to keep it as it is).
    pub fn module(mut self, path: impl Into<PathBuf>, string: impl Into<OsString>) -> Self {
        self.modules.push((path.into(), string.into(), false));
        self
    }

    /// Adds a module stored exactly as the file is, even if it is
    /// compressed (GRUB's `module --nounzip`; `--module-raw`): for kernels
    /// that decompress their modules themselves.
    pub fn module_raw(mut self, path: impl Into<PathBuf>, string: impl Into<OsString>) -> Self {
        self.modules.push((path.into(), string.into(), true));
        self
    }

    /// The boot protocol (default: Multiboot 2 if the kernel has a
    /// Multiboot 2 header, else Multiboot 1).
    pub fn protocol(mut self, protocol: Protocol) -> Self {
        self.protocol = Some(protocol);
        self
    }

    /// The program name that starts the command line (default: the
    /// kernel's file name). Solo5 and others skip this first word; an empty
    /// name leaves the arguments alone.
    pub fn name(mut self, name: impl Into<OsString>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Kernel arguments, joined with single spaces after the name.
    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    /// The output format (default: from the output's extension, else raw).
    /// Giving a format that contradicts the extension is an error.
    pub fn format(mut self, format: Format) -> Self {
        self.format = Some(format);
        self
    }

    /// The output format, whatever the output's name says (for front ends
    /// such as `solo5-virtio-mkimage` whose users name files freely).
    pub fn format_ignoring_name(mut self, format: Format) -> Self {
        self.format = Some(format);
        self.format_overrides_name = true;
        self
    }

    /// The disk size in bytes (default: the smallest that holds the kernel,
    /// at least 1 GiB for gce). Must suit the format: whole GiB for gce,
    /// whole MiB for vhd.
    pub fn size(mut self, bytes: u64) -> Self {
        self.size = Some(bytes);
        self
    }

    /// The format to write to `out`: the explicit one, or the one its
    /// extension names, or raw.
    pub fn format_for(&self, out: &Path) -> Result<Format, Error> {
        match (self.format, Format::from_extension(out)) {
            (Some(f), Some(e)) if f != e && !self.format_overrides_name => {
                Err(Error::FormatMismatch {
                    out: out.to_path_buf(),
                    format: f,
                    extension: e,
                })
            }
            (Some(f), _) | (None, Some(f)) => Ok(f),
            (None, None) => Ok(Format::Raw),
        }
    }

    fn kernel_label(&self) -> PathBuf {
        match &self.kernel {
            KernelSource::File(p) => p.clone(),
            KernelSource::Bytes { name, .. } => PathBuf::from(name),
        }
    }

    /// The command line the kernel will see: "NAME ARGS".
    pub fn cmdline(&self) -> Vec<u8> {
        use std::os::unix::ffi::OsStrExt;
        let label = self.kernel_label();
        let default_name = label.file_name().unwrap_or(label.as_os_str());
        let name = self.name.as_deref().unwrap_or(default_name);
        // An empty name leaves just the arguments, so a caller can hand
        // over an exact command line (even an empty one).
        let words = std::iter::once(name)
            .filter(|n| !n.is_empty())
            .chain(self.args.iter().map(|a| a.as_os_str()));
        let mut line = Vec::new();
        for (i, w) in words.enumerate() {
            if i > 0 {
                line.push(b' ');
            }
            line.extend_from_slice(w.as_bytes());
        }
        line
    }

    /// Writes the image to `out`, atomically (a temporary file beside it is
    /// renamed into place when complete).
    pub fn write(&self, out: impl AsRef<Path>) -> Result<Report, Error> {
        self.write_with_progress(out, &mut |_, _| {})
    }

    /// [`Build::write`], calling `progress(done, total)` as the image is
    /// written (for a progress bar).
    pub fn write_with_progress(
        &self,
        out: impl AsRef<Path>,
        progress: &mut dyn FnMut(u64, u64),
    ) -> Result<Report, Error> {
        let out = out.as_ref();
        refuse_special_output(out)?;
        if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
            if !dir.is_dir() {
                return Err(Error::NoOutputDirectory {
                    out: out.to_path_buf(),
                    dir: dir.to_path_buf(),
                });
            }
        }
        let format = self.format_for(out)?;
        let label = self.kernel_label();
        let owned;
        let file: &[u8] = match &self.kernel {
            KernelSource::File(p) => {
                if same_file(p, out) {
                    return Err(Error::OutputIsKernel {
                        out: out.to_path_buf(),
                    });
                }
                // A file without a Multiboot header (a disk image, a huge
                // sparse file) is refused from its first bytes, before the
                // rest is mapped. A compressed kernel's header shows only
                // once it is decompressed (below).
                let prefix = input::read_prefix(p, kernel::HEADER_WINDOW).map_err(|source| {
                    Error::ReadKernel {
                        path: p.clone(),
                        source,
                    }
                })?;
                if !decompress::looks_compressed(&prefix) {
                    kernel::header_check(&prefix, self.protocol).map_err(|source| {
                        Error::Kernel {
                            path: label.clone(),
                            source,
                        }
                    })?;
                }
                owned = input::read(p).map_err(|source| Error::ReadKernel {
                    path: p.clone(),
                    source,
                })?;
                &owned
            }
            KernelSource::Bytes { bytes, .. } => bytes,
        };
        // A compressed kernel is decompressed into memory; any other stays
        // mapped as it was read, untouched.
        let unpacked = decompress::unpack(file).map_err(|source| Error::Decompress {
            path: label.clone(),
            source,
        })?;
        let bytes: &[u8] = unpacked.as_ref().map_or(file, |u| &u.bytes);
        let kernel_decompressed = unpacked.as_ref().map(|u| u.summary());
        let mut plan =
            kernel::plan_for(bytes, self.protocol).map_err(|source| match &unpacked {
                None => Error::Kernel {
                    path: label.clone(),
                    source,
                },
                Some(u) => Error::DecompressedKernel {
                    path: label.clone(),
                    format: u.format,
                    source,
                },
            })?;
        plan.video = video::resolve(plan.video, self.video).map_err(|source| Error::Video {
            path: label.clone(),
            source,
        })?;
        let (modules, modules_decompressed) = self.read_modules(out)?;
        let cmdline = self.cmdline();
        let boot = match &self.stages {
            Some((stage1, stage2)) => image::Bootloader { stage1, stage2 },
            None => bootloader::embedded(),
        };
        let table = self.table;
        let mut min_size = 0;
        let uefi_loader = self.firmware.has_esp().then(|| {
            self.uefi_loader
                .as_deref()
                .unwrap_or(bootloader::BOOTX64_EFI)
        });
        let mut layout = image::layout_firmware(
            table,
            uefi_loader,
            &boot,
            bytes,
            &plan,
            &cmdline,
            modules,
            |min| {
                min_size = min;
                choose_size(format, self.size, min)
            },
        )
        .map_err(|source| match (self.size, &source) {
            (
                Some(size),
                ImageError::DiskTooSmall { .. }
                | ImageError::SizeGranularity { .. }
                | ImageError::FormatTooSmall { .. }
                | ImageError::TooLarge { .. },
            ) => {
                let g = format.size_granularity();
                let max = [format.max_size(), table.max_disk_bytes()]
                    .into_iter()
                    .flatten()
                    .min()
                    .unwrap_or(u64::MAX);
                Error::Size {
                    size,
                    min: format.default_size(min_size).max(min_size.div_ceil(g) * g),
                    max: max / g * g,
                    format,
                    source,
                }
            }
            _ => Error::Image {
                path: label.clone(),
                source,
            },
        })?;
        let kept_compressed = self
            .modules
            .iter()
            .zip(&layout.modules)
            .any(|((_, _, raw), (m, _))| *raw && decompress::detect(&m.bytes).is_some());
        let mut flags = pack_notes(kernel_decompressed, &modules_decompressed, kept_compressed);
        if !self.fast_read {
            flags |= crate::proto::record::FLAG_NO_FAST_READ;
        }
        if flags != 0 {
            layout.set_record_flags(flags);
        }
        let disk = layout.disk(bytes);
        remove_stale_temporaries(out);
        image::write_atomically(out, |file| formats::write(format, &disk, file, progress))
            .map_err(|source| Error::Image {
                path: out.to_path_buf(),
                source,
            })?;
        Ok(Report {
            plan,
            cmdline,
            format,
            disk_bytes: layout.disk_bytes(),
            payload_sum: layout.payload_sum,
            kernel_decompressed,
            modules_decompressed,
        })
    }
}

/// The modules as they go into the image, and how each was decompressed.
type ReadModules = (
    Vec<image::ModuleInput>,
    Vec<Option<decompress::Decompressed>>,
);

/// The record's pack-time notes (flags bits 8-15): the kernel's original
/// compression, whether any module was decompressed, whether any is kept
/// compressed on request.
fn pack_notes(
    kernel: Option<decompress::Decompressed>,
    modules: &[Option<decompress::Decompressed>],
    kept_compressed: bool,
) -> u32 {
    use crate::proto::record::{
        FLAG_KERNEL_COMPRESSION_SHIFT, FLAG_MODULES_DECOMPRESSED, FLAG_MODULES_KEPT_COMPRESSED,
    };
    let mut flags = kernel.map_or(0, |k| k.format.code() << FLAG_KERNEL_COMPRESSION_SHIFT);
    if modules.iter().any(Option::is_some) {
        flags |= FLAG_MODULES_DECOMPRESSED;
    }
    if kept_compressed {
        flags |= FLAG_MODULES_KEPT_COMPRESSED;
    }
    flags
}

impl Build {
    /// Reads every module file (numbered from 1 in errors), decompressing
    /// those not to be kept as they are; says which were decompressed.
    fn read_modules(&self, out: &Path) -> Result<ReadModules, Error> {
        use std::os::unix::ffi::OsStrExt;
        let mut modules = Vec::with_capacity(self.modules.len());
        let mut decompressed = Vec::with_capacity(self.modules.len());
        for (i, (path, string, raw)) in self.modules.iter().enumerate() {
            if same_file(path, out) {
                return Err(Error::OutputIsModule {
                    out: out.to_path_buf(),
                    index: i + 1,
                });
            }
            let mut bytes = std::fs::read(path).map_err(|source| Error::ReadModule {
                index: i + 1,
                path: path.clone(),
                source,
            })?;
            let unpacked = match raw {
                true => None,
                false => decompress::unpack(&bytes).map_err(|source| Error::DecompressModule {
                    index: i + 1,
                    path: path.clone(),
                    source,
                })?,
            };
            decompressed.push(unpacked.as_ref().map(|u| u.summary()));
            if let Some(u) = unpacked {
                bytes = u.bytes;
            }
            modules.push(image::ModuleInput {
                path: path.clone(),
                bytes,
                string: string.as_bytes().to_vec(),
            });
        }
        Ok((modules, decompressed))
    }
}

/// The disk size: the requested one if it suits the format, else the
/// format's default for contents needing `min` bytes. (`layout` checks that
/// a requested size holds the contents.)
fn choose_size(format: Format, requested: Option<u64>, min: u64) -> Result<u64, ImageError> {
    let Some(size) = requested else {
        return Ok(format.default_size(min));
    };
    if let Some(max) = format.max_size().filter(|&m| size > m) {
        return Err(ImageError::FormatTooSmall {
            format: format.to_string(),
            max,
            size,
        });
    }
    let g = format.size_granularity();
    if !size.is_multiple_of(g) {
        let unit = match g {
            512 => "512-byte sectors".to_string(),
            g if g.is_multiple_of(1 << 30) => format!("{} GiB", g >> 30),
            g if g.is_multiple_of(1 << 20) => format!("{} MiB", g >> 20),
            g => format!("{} KiB", g >> 10),
        };
        return Err(ImageError::SizeGranularity {
            format: format.to_string(),
            unit,
            size,
        });
    }
    Ok(size)
}

/// Whether the file at `path` starts like a Multiboot kernel (a Multiboot 1
/// or 2 header in its search window; only its first bytes are read), or is
/// a compressed file holding one.
pub fn looks_like_kernel(path: &Path) -> bool {
    let Ok(prefix) = input::read_prefix(path, kernel::HEADER_WINDOW) else {
        return false;
    };
    if !decompress::looks_compressed(&prefix) {
        return kernel::header_check(&prefix, None).is_ok();
    }
    // A compressed file is a kernel if what it holds is one (a disk image
    // is never compressed; one that is gets refused as no kernel).
    input::read(path).is_ok_and(|file| match decompress::unpack(&file) {
        Ok(Some(u)) => kernel::plan(&u.bytes).is_ok(),
        _ => false,
    })
}

/// A byte count as people write it: "64 MiB", "2 TiB", else bytes.
fn human(bytes: u64) -> String {
    for (shift, unit) in [(40, "TiB"), (30, "GiB"), (20, "MiB"), (10, "KiB")] {
        if bytes >= 1 << shift && bytes.is_multiple_of(1 << shift) {
            return format!("{} {unit}", bytes >> shift);
        }
    }
    if bytes >= 1 << 40 {
        return format!("{bytes} bytes (just under {} TiB)", bytes.div_ceil(1 << 40));
    }
    format!("{bytes} bytes")
}

/// What a format asks of a size beyond its bounds.
fn granularity_note(format: Format) -> &'static str {
    match format {
        Format::Gce => ", a whole number of GiB",
        Format::Vhd => ", a whole number of MiB",
        Format::Vmdk => ", a whole number of 64 KiB grains",
        Format::Raw | Format::Qcow2 => ", a whole number of 512-byte sectors",
    }
}

/// Parses a size such as `4096`, `64M`, `64MiB`, `1G`, `1.5G` (binary
/// units: K = 1024).
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    if t.starts_with('-') {
        return Err(format!(
            "{s:?}: a disk size cannot be negative; give the size in bytes or with K, M, G or T (binary units), e.g. 64M or 1G"
        ));
    }
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let shift = match unit.trim().to_ascii_uppercase().as_str() {
        "" | "B" => 0,
        "K" | "KB" | "KIB" => 10,
        "M" | "MB" | "MIB" => 20,
        "G" | "GB" | "GIB" => 30,
        "T" | "TB" | "TIB" => 40,
        _ => {
            return Err(format!(
                "{s:?}: unknown size unit; use a number with K, M, G or T (binary units)"
            ))
        }
    };
    let value: f64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a size; try 64M or 1G"))?;
    if value == 0.0 {
        return Err(format!(
            "{s:?}: a disk size must be more than 0; e.g. 64M or 1G (or leave the size out for a disk just big enough)"
        ));
    }
    let bytes = value * (1u64 << shift) as f64;
    if !(1.0..=u64::MAX as f64).contains(&bytes) || bytes.fract() != 0.0 {
        return Err(format!("{s:?} is not a whole number of bytes"));
    }
    Ok(bytes as u64)
}

fn same_file(a: &Path, b: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (std::fs::metadata(a), std::fs::metadata(b)) {
        (Ok(x), Ok(y)) => x.dev() == y.dev() && x.ino() == y.ino(),
        _ => false,
    }
}

/// The output may be a new path or an existing regular file (replaced
/// atomically); anything else (a block or character device, a directory,
/// a FIFO, a socket; symlinks followed) is refused: renaming an image over
/// /dev/sdb would replace the device node, not write the disk.
fn refuse_special_output(out: &Path) -> Result<(), Error> {
    use std::os::unix::fs::FileTypeExt;
    let Ok(meta) = std::fs::metadata(out) else {
        return Ok(());
    };
    let t = meta.file_type();
    let kind = if t.is_file() {
        return Ok(());
    } else if t.is_block_device() {
        "a block device"
    } else if t.is_char_device() {
        "a character device"
    } else if t.is_dir() {
        "a directory"
    } else if t.is_fifo() {
        "a FIFO"
    } else if t.is_socket() {
        "a socket"
    } else {
        "not a regular file"
    };
    Err(Error::OutputNotAFile {
        out: out.to_path_buf(),
        kind,
    })
}

/// Removes the temporaries `.NAME.bootpack-PID.tmp` beside `out` that a
/// killed bootpack left behind: those whose PID no longer runs. Only where
/// /proc tells (Linux), best effort. A bootpack in another PID namespace
/// writing the same output would lose its temporary and fail (its rename
/// reports the missing file); it never corrupts an image.
fn remove_stale_temporaries(out: &Path) {
    let (Some(name), true) = (out.file_name(), Path::new("/proc/self").exists()) else {
        return;
    };
    let dir = match out.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let prefix = format!(".{}.bootpack-", name.to_string_lossy());
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let file = e.file_name().to_string_lossy().into_owned();
        let Some(pid) = file
            .strip_prefix(&prefix)
            .and_then(|r| r.strip_suffix(".tmp"))
        else {
            continue;
        };
        let stale = !pid.is_empty()
            && pid.bytes().all(|b| b.is_ascii_digit())
            && pid != std::process::id().to_string()
            && !Path::new("/proc").join(pid).exists();
        if stale && e.file_type().is_ok_and(|t| t.is_file()) {
            let _ = std::fs::remove_file(e.path());
        }
    }
}
