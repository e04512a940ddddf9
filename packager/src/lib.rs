//! bootpack: turns a Multiboot kernel into a bootable MBR-partitioned disk
//! image, with its own bootloader and no external programs.
//!
//! ```no_run
//! let report = bootpack::Build::new("unikernel.bin")
//!     .args(["--ipv4=10.0.0.2/24"])
//!     .write("disk.img")?;
//! println!("{} bytes", report.disk_bytes);
//! # Ok::<(), bootpack::Error>(())
//! ```

use std::ffi::OsString;
use std::path::{Path, PathBuf};

pub mod bootloader;
pub mod disk;
pub mod formats;
pub mod image;
pub mod inspect;
pub mod kernel;
pub mod run;

pub use image::ImageError;
pub use kernel::{KernelError, KernelFormat, LoadPlan};

/// Everything that can stop a build.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{path}: cannot read the kernel: {source}")]
    ReadKernel {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {source}")]
    Kernel { path: PathBuf, source: KernelError },
    #[error("{path}: {source}")]
    Image { path: PathBuf, source: ImageError },
    #[error("{out}: refusing to write the image over the kernel file itself; choose another output path")]
    OutputIsKernel { out: PathBuf },
}

/// What a build produced.
#[derive(Clone, Debug)]
pub struct Report {
    pub plan: LoadPlan,
    pub cmdline: Vec<u8>,
    pub disk_bytes: u64,
    pub payload_sum: u64,
}

/// A disk image build: a kernel, its arguments, an output.
#[derive(Clone, Debug)]
pub struct Build {
    kernel: KernelSource,
    name: Option<OsString>,
    args: Vec<OsString>,
}

#[derive(Clone, Debug)]
enum KernelSource {
    File(PathBuf),
    Bytes { name: String, bytes: &'static [u8] },
}

impl Build {
    /// A build of the kernel in the file at `kernel`.
    pub fn new(kernel: impl Into<PathBuf>) -> Self {
        Build {
            kernel: KernelSource::File(kernel.into()),
            name: None,
            args: Vec::new(),
        }
    }

    /// A build of the embedded demo kernel.
    pub fn demo() -> Self {
        Build {
            kernel: KernelSource::Bytes {
                name: "bootpack-demo".into(),
                bytes: bootloader::DEMO_KERNEL,
            },
            name: None,
            args: Vec::new(),
        }
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

    /// Writes a raw disk image to `out`, atomically.
    pub fn write(&self, out: impl AsRef<Path>) -> Result<Report, Error> {
        let out = out.as_ref();
        let label = self.kernel_label();
        let owned;
        let bytes: &[u8] = match &self.kernel {
            KernelSource::File(p) => {
                if same_file(p, out) {
                    return Err(Error::OutputIsKernel {
                        out: out.to_path_buf(),
                    });
                }
                owned = std::fs::read(p).map_err(|source| Error::ReadKernel {
                    path: p.clone(),
                    source,
                })?;
                &owned
            }
            KernelSource::Bytes { bytes, .. } => bytes,
        };
        let plan = kernel::plan(bytes).map_err(|source| Error::Kernel {
            path: label.clone(),
            source,
        })?;
        let cmdline = self.cmdline();
        let layout =
            image::layout(&bootloader::embedded(), bytes, &plan, &cmdline).map_err(|source| {
                Error::Image {
                    path: label.clone(),
                    source,
                }
            })?;
        image::write_raw(&layout.disk(bytes), out).map_err(|source| Error::Image {
            path: out.to_path_buf(),
            source,
        })?;
        Ok(Report {
            plan,
            cmdline,
            disk_bytes: layout.disk_bytes(),
            payload_sum: layout.payload_sum,
        })
    }
}

fn same_file(a: &Path, b: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (std::fs::metadata(a), std::fs::metadata(b)) {
        (Ok(x), Ok(y)) => x.dev() == y.dev() && x.ino() == y.ino(),
        _ => false,
    }
}
