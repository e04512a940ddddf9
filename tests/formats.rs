//! Output formats: every format bootpack writes is checked with qemu-img,
//! GNU tar and Python's tarfile against the raw image.
//!
//! Each test builds a disk in memory (an MBR-like first sector, 3 MiB of
//! mixed data at 1 MiB with zero blocks scattered through it, a few bytes
//! near the end), at 1 GiB and at 64 GiB, writes it with
//! `bootpack::formats::write` and has the outside tools read it back. The
//! tools are required: a missing one fails the test with what to install.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use bootpack::disk::{Disk, Extent};

#[path = "support/sample_disk.rs"]
mod sample_disk;
use bootpack::formats::{self, Format};

const MIB: u64 = 1 << 20;
const GIB: u64 = 1 << 30;
const SIZES: [u64; 2] = [GIB, 64 * GIB];

/// The disk's contents, owned; [`Fixture::disk`] lays them out.
struct Fixture {
    mbr: Vec<u8>,
    data: Vec<u8>,
    tail: Vec<u8>,
}

impl Fixture {
    fn new() -> Self {
        let (mbr, data, tail) = sample_disk::contents();
        Fixture { mbr, data, tail }
    }

    fn disk(&self, size: u64) -> Disk<'_> {
        Disk::new(
            size,
            vec![
                Extent {
                    offset: 0,
                    data: &self.mbr,
                },
                Extent {
                    offset: MIB,
                    data: &self.data,
                },
                Extent {
                    offset: size - 1000,
                    data: &self.tail,
                },
            ],
        )
    }
}

/// A scratch directory, removed when the test passes, kept for a look when
/// it fails.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Self {
        let d =
            std::env::temp_dir().join(format!("bootpack-formats-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        Scratch(d)
    }

    fn join(&self, p: &str) -> PathBuf {
        self.0.join(p)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

/// Writes `disk` as `format` to `path` through the library; checks the
/// progress reports and returns the amount of data the writer processed.
fn write(format: Format, disk: &Disk, path: &Path) -> u64 {
    let mut f = File::create(path).unwrap();
    let mut reports = Vec::new();
    formats::write(format, disk, &mut f, &mut |done, total| {
        reports.push((done, total))
    })
    .unwrap_or_else(|e| panic!("writing {format} to {}: {e}", path.display()));
    let (first, last) = (reports[0], *reports.last().unwrap());
    assert_eq!(first.0, 0, "{format}: progress starts at 0");
    assert_eq!(last.0, last.1, "{format}: progress ends at the total");
    assert!(
        reports.windows(2).all(|w| w[0].0 <= w[1].0),
        "{format}: progress never goes back"
    );
    last.1
}

/// The tools the tests need, and what provides them.
fn tool(name: &str) -> Command {
    let hint = match name {
        "qemu-img" => "install qemu-utils (apt-get install qemu-utils)",
        "tar" => "install GNU tar (apt-get install tar)",
        "python3" => "install Python 3 (apt-get install python3)",
        _ => "install it",
    };
    let found = Command::new(name)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        found,
        "`{name}` is needed to check the image formats: {hint}"
    );
    Command::new(name)
}

fn run(cmd: &mut Command) -> String {
    let out: Output = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\n{text}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    text
}

fn qemu_img(args: &[&str], paths: &[&Path]) -> String {
    run(tool("qemu-img").args(args).args(paths))
}

/// `qemu-img info --output=json`, checked for format and virtual size.
fn info(fmt: &str, path: &Path, size: u64) -> String {
    let json = qemu_img(&["info", "--output=json", "-f", fmt], &[path]);
    assert!(
        json.contains(&format!("\"virtual-size\": {size},")),
        "{}: qemu-img info does not report {size} bytes:\n{json}",
        path.display()
    );
    json
}

/// `qemu-img compare` of an image against the raw image: same content.
fn same_as_raw(fmt: &str, path: &Path, raw: &Path) {
    let out = qemu_img(&["compare", "-f", "raw", "-F", fmt], &[raw, path]);
    assert!(out.contains("Images are identical"), "{out}");
}

/// Bytes the file really occupies: the empty part of the disk must not be.
fn allocated(path: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).unwrap().blocks() * 512
}

fn file_size(path: &Path) -> u64 {
    std::fs::metadata(path).unwrap().len()
}

/// Writes the raw image for `size` and checks it.
fn raw_image(fx: &Fixture, dir: &Scratch, size: u64) -> PathBuf {
    let raw = dir.join(&format!("disk-{}g.img", size / GIB));
    write(Format::Raw, &fx.disk(size), &raw);
    assert_eq!(file_size(&raw), size);
    info("raw", &raw, size);
    raw
}

#[test]
fn raw_is_the_disk_and_sparse() {
    let fx = Fixture::new();
    let dir = Scratch::new("raw");
    for size in SIZES {
        let raw = raw_image(&fx, &dir, size);
        assert!(allocated(&raw) < 8 * MIB, "{}", allocated(&raw));
        // Spot checks of the bytes themselves.
        let bytes = |at: u64, n: usize| {
            use std::os::unix::fs::FileExt;
            let mut b = vec![0u8; n];
            File::open(&raw).unwrap().read_exact_at(&mut b, at).unwrap();
            b
        };
        assert_eq!(bytes(0, 512), fx.mbr);
        assert_eq!(bytes(MIB, fx.data.len()), fx.data);
        assert_eq!(bytes(size - 1000, fx.tail.len()), fx.tail);
        assert_eq!(bytes(size - 1000 - 4, 4), [0; 4]);
    }
}

#[test]
fn gce_tar_reads_back_with_gnu_tar_and_python() {
    let fx = Fixture::new();
    let dir = Scratch::new("gce");
    for size in SIZES {
        let raw = raw_image(&fx, &dir, size);
        let gz = dir.join(&format!("disk-{}g.tar.gz", size / GIB));
        write(Format::Gce, &fx.disk(size), &gz);
        assert!(file_size(&gz) < 4 * MIB, "{}", file_size(&gz));

        // One gzip member holding what GNU tar itself writes for the raw
        // image (it finds the same holes through SEEK_DATA/SEEK_HOLE).
        let tar = {
            use std::io::Read;
            let mut v = Vec::new();
            flate2::read::GzDecoder::new(File::open(&gz).unwrap())
                .read_to_end(&mut v)
                .unwrap();
            v
        };
        let gnu_dir = dir.join(&format!("gnu-{}g", size / GIB));
        std::fs::create_dir_all(&gnu_dir).unwrap();
        std::fs::rename(&raw, gnu_dir.join("disk.raw")).unwrap();
        run(tool("tar")
            .current_dir(&gnu_dir)
            .args([
                "--format=oldgnu",
                "-S",
                "--mtime=@0",
                "--owner=0",
                "--group=0",
            ])
            .args([
                "--numeric-owner",
                "--mode=0644",
                "-cf",
                "../gnu.tar",
                "disk.raw",
            ]));
        std::fs::rename(gnu_dir.join("disk.raw"), &raw).unwrap();
        let gnu = std::fs::read(dir.join("gnu.tar")).unwrap();
        assert!(
            tar == gnu,
            "{size}: the tar differs from GNU tar's (ours {} bytes, GNU's {}; first difference at {:?})",
            tar.len(),
            gnu.len(),
            tar.iter().zip(&gnu).position(|(a, b)| a != b)
        );

        // GNU tar lists and extracts it.
        let listing = run(tool("tar").arg("-tvzf").arg(&gz));
        assert!(
            listing.starts_with("-rw-r--r-- 0/0")
                && listing.contains(&format!(" {size} 1970-01-01 00:00 disk.raw\n"))
                && listing.lines().count() == 1,
            "{listing}"
        );
        let out = dir.join("gnu-out");
        std::fs::create_dir_all(&out).unwrap();
        run(tool("tar").arg("-xzf").arg(&gz).arg("-C").arg(&out));
        let extracted = out.join("disk.raw");
        assert_eq!(file_size(&extracted), size);
        assert!(
            allocated(&extracted) < 8 * MIB,
            "GNU tar extracts it sparse"
        );
        same_as_raw("raw", &extracted, &raw);
        std::fs::remove_dir_all(&out).unwrap();

        // Python's tarfile reads the entry as a sparse file and extracts it.
        let out = dir.join("py-out");
        let script = r#"
import sys, tarfile
with tarfile.open(sys.argv[1], "r:gz") as t:
    m = t.getmembers()
    assert [x.name for x in m] == ["disk.raw"], m
    e = m[0]
    assert e.issparse() and e.isreg(), e.type
    assert (e.size, e.mode, e.uid, e.gid, e.mtime) == (int(sys.argv[3]), 0o644, 0, 0, 0), (e.size, e.mode, e.uid, e.gid, e.mtime)
    t.extractall(sys.argv[2], filter="data") if hasattr(tarfile, "data_filter") else t.extractall(sys.argv[2])
"#;
        run(tool("python3")
            .args(["-c", script])
            .arg(&gz)
            .arg(&out)
            .arg(size.to_string()));
        let extracted = out.join("disk.raw");
        assert_eq!(file_size(&extracted), size);
        same_as_raw("raw", &extracted, &raw);
        std::fs::remove_dir_all(&out).unwrap();
    }
}

/// A disk with one small extent: the sparse map (the data, then the end
/// marker) does not fill the header's four slots, which Python's tarfile
/// reads as extra (0, 0) entries; it must still extract the same disk.
#[test]
fn gce_with_a_short_sparse_map() {
    let dir = Scratch::new("gce-short");
    let mbr = Fixture::new().mbr;
    let disk = Disk::new(
        GIB,
        vec![Extent {
            offset: 0,
            data: &mbr,
        }],
    );
    let raw = dir.join("disk.img");
    write(Format::Raw, &disk, &raw);
    let gz = dir.join("disk.tar.gz");
    write(Format::Gce, &disk, &gz);
    let listing = run(tool("tar").arg("-tvzf").arg(&gz));
    assert!(
        listing.contains(&format!(" {GIB} 1970-01-01 00:00 disk.raw\n")),
        "{listing}"
    );
    let out = dir.join("py-out");
    run(tool("python3")
        .args([
            "-c",
            "import sys, tarfile; tarfile.open(sys.argv[1]).extractall(sys.argv[2])",
        ])
        .arg(&gz)
        .arg(&out));
    assert_eq!(file_size(&out.join("disk.raw")), GIB);
    same_as_raw("raw", &out.join("disk.raw"), &raw);
}

#[test]
fn vhd_is_a_fixed_vhd_of_the_full_size() {
    let fx = Fixture::new();
    let dir = Scratch::new("vhd");
    for size in SIZES {
        let raw = raw_image(&fx, &dir, size);
        let vhd = dir.join(&format!("disk-{}g.vhd", size / GIB));
        write(Format::Vhd, &fx.disk(size), &vhd);
        assert_eq!(file_size(&vhd), size + 512);
        assert!(allocated(&vhd) < 8 * MIB, "the data part stays sparse");
        let json = info("vpc", &vhd, size);
        assert!(json.contains("\"format\": \"vpc\""), "{json}");
        same_as_raw("vpc", &vhd, &raw);
    }
}

#[test]
fn vmdk_is_stream_optimized_and_checks_clean() {
    let fx = Fixture::new();
    let dir = Scratch::new("vmdk");
    for size in SIZES {
        let raw = raw_image(&fx, &dir, size);
        let vmdk = dir.join(&format!("disk-{}g.vmdk", size / GIB));
        write(Format::Vmdk, &fx.disk(size), &vmdk);
        assert!(file_size(&vmdk) < 4 * MIB, "{}", file_size(&vmdk));
        let json = info("vmdk", &vmdk, size);
        assert!(
            json.contains("\"create-type\": \"streamOptimized\"")
                && json.contains("\"compressed\": true"),
            "{json}"
        );
        let check = qemu_img(&["check", "-f", "vmdk"], &[&vmdk]);
        assert!(check.contains("No errors were found"), "{check}");
        same_as_raw("vmdk", &vmdk, &raw);
    }
}

#[test]
fn qcow2_is_version_3_without_errors_or_leaks() {
    let fx = Fixture::new();
    let dir = Scratch::new("qcow2");
    for size in SIZES {
        let raw = raw_image(&fx, &dir, size);
        let qcow2 = dir.join(&format!("disk-{}g.qcow2", size / GIB));
        write(Format::Qcow2, &fx.disk(size), &qcow2);
        assert!(file_size(&qcow2) < 8 * MIB, "{}", file_size(&qcow2));
        let json = info("qcow2", &qcow2, size);
        assert!(
            json.contains("\"compat\": \"1.1\"") && json.contains("\"cluster-size\": 65536"),
            "{json}"
        );
        let check = qemu_img(&["check", "--output=json", "-f", "qcow2"], &[&qcow2]);
        assert!(
            check.contains("\"check-errors\": 0")
                && !check.contains("\"leaks\"")
                && !check.contains("\"corruptions\""),
            "{check}"
        );
        same_as_raw("qcow2", &qcow2, &raw);
    }
}

/// Same disk, same bytes: no clock, no random ids, no dependence on
/// thread timing. Raw and VHD files are compared with `qemu-img compare
/// -s` read as raw (the VHD's footer included), which skips their holes
/// instead of reading 64 GiB of zeros, and also requires the same
/// allocation.
#[test]
fn every_format_is_reproducible() {
    let fx = Fixture::new();
    let dir = Scratch::new("repro");
    for format in Format::ALL {
        for size in SIZES {
            let disk = fx.disk(size);
            let (a, b) = (dir.join("a"), dir.join("b"));
            write(format, &disk, &a);
            write(format, &disk, &b);
            if matches!(format, Format::Raw | Format::Vhd) {
                assert_eq!(file_size(&a), file_size(&b));
                let out = qemu_img(&["compare", "-s", "-f", "raw", "-F", "raw"], &[&a, &b]);
                assert!(out.contains("Images are identical"), "{format}: {out}");
            } else {
                assert!(
                    std::fs::read(&a).unwrap() == std::fs::read(&b).unwrap(),
                    "{format} at {size} bytes: two writes differ"
                );
            }
        }
    }
    // A different disk gets a different id: the VHD footer's unique id,
    // the VMDK descriptor's CID.
    let other = vec![1u8; 4096];
    let disk2 = Disk::new(
        GIB,
        vec![Extent {
            offset: 0,
            data: &other,
        }],
    );
    for (format, id_at) in [(Format::Vhd, GIB + 68..GIB + 84), (Format::Vmdk, 512..1024)] {
        let (a, b) = (dir.join("a"), dir.join("b"));
        write(format, &fx.disk(GIB), &a);
        write(format, &disk2, &b);
        let id = |p: &Path| {
            use std::os::unix::fs::FileExt;
            let mut v = vec![0u8; (id_at.end - id_at.start) as usize];
            File::open(p)
                .unwrap()
                .read_exact_at(&mut v, id_at.start)
                .unwrap();
            v
        };
        assert!(id(&a) != id(&b), "{format}: same id for different disks");
    }
}

/// The empty part of a disk costs nothing: a 64 GiB disk makes every
/// writer process exactly the data a 1 GiB disk does, and takes about the
/// same room on disk. (Work, not time: timings are the benchmark's job,
/// bench/formats.sh.)
#[test]
fn a_64_gib_disk_costs_what_a_1_gib_disk_does() {
    use std::os::unix::fs::MetadataExt;
    let fx = Fixture::new();
    let dir = Scratch::new("cost");
    for format in Format::ALL {
        let cost = |size: u64| {
            let path = dir.join(&format!("x-{size}"));
            let processed = write(format, &fx.disk(size), &path);
            let allocated = std::fs::metadata(&path).unwrap().blocks() * 512;
            (processed, allocated)
        };
        let (small, big) = (cost(GIB), cost(64 * GIB));
        assert_eq!(
            small.0, big.0,
            "{format}: data processed for 1 GiB and 64 GiB"
        );
        assert!(
            big.1 < small.1 + 16 * MIB,
            "{format}: 1 GiB occupies {} bytes, 64 GiB {}",
            small.1,
            big.1
        );
    }
}
