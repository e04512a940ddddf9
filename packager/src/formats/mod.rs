//! Output formats: the same [`Disk`] written as a raw image or as one of
//! the VM image formats clouds and hypervisors import.
//!
//! | format | for | layout |
//! | --- | --- | --- |
//! | raw | QEMU, bhyve, `dd` to a stick | the disk's bytes, sparse |
//! | gce | Google Compute Engine | `disk.raw` in a gzip-compressed GNU tar (sparse entry) |
//! | vhd | Azure | fixed VHD: the raw bytes, then a 512-byte footer |
//! | vmdk | AWS VM Import, VMware, VirtualBox | stream-optimized VMDK |
//! | qcow2 | QEMU, OpenStack | qcow2 v3, uncompressed, only data clusters allocated |
//!
//! Every writer visits the disk's data runs (the 4 KiB blocks of its extents
//! that hold a non-zero byte) and nothing else, so a 64 GiB image of a
//! 3 MiB kernel costs what a 1 GiB one does. Every output is a function of
//! the disk alone: no clock, no random ids, no dependence on the number of
//! threads, so the same disk always gives byte-identical files.

use std::fmt;
use std::fs::File;
use std::io;
use std::path::Path;
use std::str::FromStr;

use crate::disk::Disk;

mod gce;
mod gzip;
mod parallel;
mod qcow2;
mod raw;
mod runs;
mod vhd;
mod vmdk;

const KIB: u64 = 1024;
const MIB: u64 = 1024 * KIB;
const GIB: u64 = 1024 * MIB;

/// An output image format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Format {
    /// The disk as it is, sparse.
    Raw,
    /// Google Compute Engine: `disk.raw` in a gzip-compressed GNU tar.
    Gce,
    /// A fixed VHD (Azure).
    Vhd,
    /// A stream-optimized VMDK (AWS VM Import, VMware, VirtualBox).
    Vmdk,
    /// qcow2 version 3 (QEMU, OpenStack).
    Qcow2,
}

impl Format {
    /// Every format, in the order the CLI lists them.
    pub const ALL: [Format; 5] = [
        Format::Raw,
        Format::Gce,
        Format::Vhd,
        Format::Vmdk,
        Format::Qcow2,
    ];

    /// The name the CLI uses (`--format NAME`).
    pub fn name(self) -> &'static str {
        match self {
            Format::Raw => "raw",
            Format::Gce => "gce",
            Format::Vhd => "vhd",
            Format::Vmdk => "vmdk",
            Format::Qcow2 => "qcow2",
        }
    }

    /// The format an output file name asks for: `.img`/`.raw` raw,
    /// `.tar.gz` gce, `.vhd`, `.vmdk`, `.qcow2` (case-insensitive). None for
    /// anything else, so the caller can ask for `--format`.
    pub fn from_extension(path: &Path) -> Option<Format> {
        let name = path.file_name()?.to_str()?.to_ascii_lowercase();
        let ends = |ext: &str| name.len() > ext.len() && name.ends_with(ext);
        if ends(".tar.gz") {
            Some(Format::Gce)
        } else if ends(".img") || ends(".raw") {
            Some(Format::Raw)
        } else if ends(".vhd") {
            Some(Format::Vhd)
        } else if ends(".vmdk") {
            Some(Format::Vmdk)
        } else if ends(".qcow2") {
            Some(Format::Qcow2)
        } else {
            None
        }
    }

    /// The unit a disk size must be a whole multiple of:
    /// - raw, qcow2: 512 bytes, a sector (BIOS disks are sectors; qcow2 takes
    ///   any sector count).
    /// - gce: 1 GiB; Compute Engine rejects other sizes.
    /// - vhd: 1 MiB; Azure rejects other sizes.
    /// - vmdk: 64 KiB, one grain, so the last grain is never partial (the
    ///   VMDK specification leaves partial grains open and readers differ).
    pub fn size_granularity(self) -> u64 {
        match self {
            Format::Raw | Format::Qcow2 => 512,
            Format::Gce => GIB,
            Format::Vhd => MIB,
            Format::Vmdk => vmdk::GRAIN,
        }
    }

    /// The largest disk the format holds, if it has a limit: a VHD's is
    /// 2040 GiB (0xFF000000 sectors; the VHD specification's limit, and
    /// QEMU refuses bigger ones). The others hold what a GPT can address.
    pub fn max_size(self) -> Option<u64> {
        match self {
            Format::Vhd => Some(0xFF00_0000 * 512),
            _ => None,
        }
    }

    /// The disk size to use when the user gives none, for a disk whose
    /// contents need `min` bytes: gce images are at least 1 GiB (what
    /// `solo5-virtio-mkimage` wrote) and a whole number of GiB; the other
    /// formats are `min` rounded up to their granularity.
    pub fn default_size(self, min: u64) -> u64 {
        let g = self.size_granularity();
        let size = min.div_ceil(g) * g;
        match self {
            Format::Gce => size.max(GIB),
            _ => size,
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The error of parsing a format name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnknownFormat(pub String);

impl fmt::Display for UnknownFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "unknown image format {:?}; the formats are raw, gce, vhd, vmdk and qcow2",
            self.0
        )
    }
}

impl std::error::Error for UnknownFormat {}

impl FromStr for Format {
    type Err = UnknownFormat;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Format::ALL
            .into_iter()
            .find(|f| f.name().eq_ignore_ascii_case(s))
            .ok_or_else(|| UnknownFormat(s.to_string()))
    }
}

/// Writes `disk` as `format` into `out`, an empty file (the caller owns the
/// temporary file and the rename). `progress(done, total)` is called now and
/// then, first with `done == 0` and last with `done == total`; the units are
/// the writer's own (bytes of data it processes).
///
/// Panics if `disk.size` is not a multiple of `format.size_granularity()`:
/// the caller rounds sizes first.
pub fn write(
    format: Format,
    disk: &Disk,
    out: &mut File,
    progress: &mut dyn FnMut(u64, u64),
) -> io::Result<()> {
    assert!(
        disk.size.is_multiple_of(format.size_granularity()),
        "a {format} disk's size must be a multiple of {} bytes, not {}",
        format.size_granularity(),
        disk.size
    );
    let runs = runs::data_runs(disk);
    let mut progress = Progress::new(progress, runs.iter().map(|r| r.len).sum());
    match format {
        Format::Raw => raw::write(disk, &runs, out, &mut progress),
        Format::Gce => gce::write(disk, &runs, out, &mut progress),
        Format::Vhd => vhd::write(disk, &runs, out, &mut progress),
        Format::Vmdk => vmdk::write(disk, &runs, out, &mut progress),
        Format::Qcow2 => qcow2::write(disk, &runs, out, &mut progress),
    }?;
    progress.finish();
    Ok(())
}

/// Progress over a known amount of data: `total` bytes of data runs.
pub(crate) struct Progress<'a> {
    report: &'a mut dyn FnMut(u64, u64),
    done: u64,
    total: u64,
}

impl<'a> Progress<'a> {
    fn new(report: &'a mut dyn FnMut(u64, u64), total: u64) -> Self {
        report(0, total);
        Progress {
            report,
            done: 0,
            total,
        }
    }

    /// Another `n` bytes of data are done.
    pub(crate) fn advance(&mut self, n: u64) {
        self.done = (self.done + n).min(self.total);
        (self.report)(self.done, self.total);
    }

    fn finish(&mut self) {
        if self.done < self.total {
            self.done = self.total;
            (self.report)(self.done, self.total);
        }
    }
}

/// Adds what was being done to an I/O error, keeping its kind.
pub(crate) fn context(what: &'static str) -> impl FnOnce(io::Error) -> io::Error {
    move |e| io::Error::new(e.kind(), format!("{what}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_extensions_map() {
        for f in Format::ALL {
            assert_eq!(f.to_string().parse::<Format>(), Ok(f));
        }
        assert_eq!("QCOW2".parse::<Format>(), Ok(Format::Qcow2));
        let e = "tar".parse::<Format>().unwrap_err();
        assert!(
            e.to_string().contains("raw, gce, vhd, vmdk and qcow2"),
            "{e}"
        );
        let ext = |p: &str| Format::from_extension(Path::new(p));
        assert_eq!(ext("out/disk.img"), Some(Format::Raw));
        assert_eq!(ext("disk.RAW"), Some(Format::Raw));
        assert_eq!(ext("image.tar.gz"), Some(Format::Gce));
        assert_eq!(ext("a.vhd"), Some(Format::Vhd));
        assert_eq!(ext("a.vmdk"), Some(Format::Vmdk));
        assert_eq!(ext("a.qcow2"), Some(Format::Qcow2));
        assert_eq!(ext("a.gz"), None);
        assert_eq!(ext("a.tar"), None);
        assert_eq!(ext(".vhd"), None);
        assert_eq!(ext("disk"), None);
    }

    #[test]
    fn default_sizes_round_to_what_each_format_needs() {
        assert_eq!(Format::Gce.default_size(3 * MIB), GIB);
        assert_eq!(Format::Gce.default_size(GIB), GIB);
        assert_eq!(Format::Gce.default_size(GIB + 1), 2 * GIB);
        assert_eq!(Format::Vhd.default_size(3 * MIB + 512), 4 * MIB);
        assert_eq!(Format::Vmdk.default_size(65 * KIB), 128 * KIB);
        assert_eq!(Format::Raw.default_size(1000), 1024);
        assert_eq!(Format::Qcow2.default_size(2 * MIB), 2 * MIB);
        for f in Format::ALL {
            assert!(f.default_size(12345).is_multiple_of(f.size_granularity()));
        }
    }

    #[test]
    #[should_panic(expected = "multiple of 1048576")]
    fn refuses_a_size_off_the_granularity() {
        let disk = Disk::new(MIB + 512, vec![]);
        let mut f = tempfile_for_test();
        let _ = write(Format::Vhd, &disk, &mut f, &mut |_, _| {});
    }

    fn tempfile_for_test() -> File {
        let p = std::env::temp_dir().join(format!("bootpack-formats-{}", std::process::id()));
        let f = File::options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&p)
            .unwrap();
        let _ = std::fs::remove_file(&p);
        f
    }
}
