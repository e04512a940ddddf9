//! Benchmark of bootpack's image formats against the usual tools.
//!
//! Run: `bench/formats.sh` (which is
//! `cargo run --release -p bootpack --example bench_formats -- [REPS]`).
//! Needs GNU tar and qemu-img (qemu-utils) on PATH.
//!
//! For a 3 MiB payload (an MBR, 3 MiB of kernel-like data at 1 MiB: a mix of
//! incompressible, text-like and zero 4 KiB blocks, a few bytes at the end)
//! in a 1 GiB and a 64 GiB disk, it writes the raw image once with bootpack,
//! then times, per format, bootpack's writer (in this process, through
//! `bootpack::formats::write`, into a fresh file) and the usual tool reading
//! that raw image:
//!
//! - gce:   `tar --format=oldgnu -Sczf OUT disk.raw`
//! - vhd:   `qemu-img convert -f raw -O vpc -o subformat=fixed,force_size=on`
//! - vmdk:  `qemu-img convert -f raw -O vmdk -o subformat=streamOptimized`
//! - qcow2: `qemu-img convert -f raw -O qcow2`
//!
//! plus one row for the road not taken in gce.rs: the `tar` crate's sparse
//! support, which needs the raw image as a real file first (timed: write the
//! temporary raw file, then tar + gzip it on one core).
//!
//! Each time is the median of REPS runs (default 5). The tools' times
//! include their process start (a few ms); bootpack's CLI adds its own,
//! about 1 ms. Nothing is fsynced by either side. Sizes are file lengths;
//! `alloc` is what the file occupies on disk (raw and VHD are sparse).

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use bootpack::disk::{Disk, Extent};

#[path = "../../tests/support/sample_disk.rs"]
mod sample_disk;
use bootpack::formats::{self, Format};

const MIB: u64 = 1 << 20;
const GIB: u64 = 1 << 30;

fn main() {
    let reps: usize = std::env::args()
        .nth(1)
        .map(|s| s.parse().expect("REPS must be a number"))
        .unwrap_or(5);
    for tool in ["tar", "qemu-img"] {
        let ok = Command::new(tool)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success());
        assert!(ok, "{tool} is needed: install GNU tar and qemu-utils");
    }
    let dir = std::env::temp_dir().join(format!("bootpack-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (mbr, data, tail) = sample_disk::contents();

    println!(
        "bootpack formats vs the usual tools: 3 MiB payload, median of {reps}, {} cores",
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    println!(
        "{:<6} {:>6} | {:>9} {:>9} {:>6} | {:>11} {:>11} {:>6} | {:>9} {:>9} | theirs",
        "format",
        "disk",
        "ours ms",
        "their ms",
        "ratio",
        "our bytes",
        "their bytes",
        "ratio",
        "our alloc",
        "their alloc"
    );
    for size in [GIB, 64 * GIB] {
        let disk = Disk::new(
            size,
            vec![
                Extent {
                    offset: 0,
                    data: &mbr,
                },
                Extent {
                    offset: MIB,
                    data: &data,
                },
                Extent {
                    offset: size - 1000,
                    data: &tail,
                },
            ],
        );
        // The usual tools read this; GCE wants the name disk.raw.
        let raw = dir.join("disk.raw");
        write(Format::Raw, &disk, &raw);
        let label = format!("{}G", size / GIB);

        let rows: [(Format, &str, Vec<&str>, &str); 4] = [
            (
                Format::Gce,
                "out.tar.gz",
                vec!["tar", "--format=oldgnu", "-Sczf", "THEIRS", "disk.raw"],
                "tar --format=oldgnu -Sczf",
            ),
            (
                Format::Vhd,
                "out.vhd",
                vec![
                    "qemu-img",
                    "convert",
                    "-f",
                    "raw",
                    "-O",
                    "vpc",
                    "-o",
                    "subformat=fixed,force_size=on",
                    "disk.raw",
                    "THEIRS",
                ],
                "qemu-img convert -O vpc (fixed)",
            ),
            (
                Format::Vmdk,
                "out.vmdk",
                vec![
                    "qemu-img",
                    "convert",
                    "-f",
                    "raw",
                    "-O",
                    "vmdk",
                    "-o",
                    "subformat=streamOptimized",
                    "disk.raw",
                    "THEIRS",
                ],
                "qemu-img convert -O vmdk (streamOptimized)",
            ),
            (
                Format::Qcow2,
                "out.qcow2",
                vec![
                    "qemu-img", "convert", "-f", "raw", "-O", "qcow2", "disk.raw", "THEIRS",
                ],
                "qemu-img convert -O qcow2",
            ),
        ];
        for (format, name, cmd, what) in rows {
            let ours_path = dir.join(format!("ours-{name}"));
            let theirs_path = dir.join(format!("theirs-{name}"));
            let ours = median(reps, || write(format, &disk, &ours_path));
            let theirs = median(reps, || {
                let _ = std::fs::remove_file(&theirs_path);
                let args: Vec<&std::ffi::OsStr> = cmd[1..]
                    .iter()
                    .map(|a| {
                        if *a == "THEIRS" {
                            theirs_path.as_os_str()
                        } else {
                            std::ffi::OsStr::new(a)
                        }
                    })
                    .collect();
                let t = Instant::now();
                let st = Command::new(cmd[0])
                    .args(args)
                    .current_dir(&dir)
                    .status()
                    .unwrap();
                assert!(st.success(), "{cmd:?} failed");
                t.elapsed()
            });
            row(
                format.name(),
                &label,
                ours,
                theirs,
                &ours_path,
                &theirs_path,
                what,
            );
        }

        // The tar crate's sparse entries, for the choice made in gce.rs.
        let tmp = dir.join("tmp-disk.raw");
        let via = dir.join("tar-crate.tar.gz");
        let t = median(reps, || {
            let t = Instant::now();
            write(Format::Raw, &disk, &tmp);
            let gz = flate2::write::GzEncoder::new(
                File::create(&via).unwrap(),
                flate2::Compression::default(),
            );
            let mut b = tar::Builder::new(gz);
            b.sparse(true);
            b.mode(tar::HeaderMode::Deterministic);
            b.append_path_with_name(&tmp, "disk.raw").unwrap();
            b.into_inner().unwrap().finish().unwrap();
            t.elapsed()
        });
        let ours = median(reps, || {
            write(Format::Gce, &disk, &dir.join("ours-out.tar.gz"))
        });
        row(
            "gce",
            &label,
            ours,
            t,
            &dir.join("ours-out.tar.gz"),
            &via,
            "tar crate 0.4 sparse + flate2 GzEncoder (temp raw file)",
        );
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

fn write(format: Format, disk: &Disk, path: &Path) -> Duration {
    // Like the tools, start from no file (truncating the last run's output
    // would be timed otherwise).
    let _ = std::fs::remove_file(path);
    let t = Instant::now();
    let mut f = File::create(path).unwrap();
    formats::write(format, disk, &mut f, &mut |_, _| {}).unwrap();
    drop(f);
    t.elapsed()
}

fn median(reps: usize, mut f: impl FnMut() -> Duration) -> Duration {
    let mut v: Vec<Duration> = (0..reps).map(|_| f()).collect();
    v.sort();
    v[v.len() / 2]
}

fn row(
    format: &str,
    disk: &str,
    ours: Duration,
    theirs: Duration,
    ours_path: &PathBuf,
    theirs_path: &PathBuf,
    what: &str,
) {
    use std::os::unix::fs::MetadataExt;
    let m = |p: &PathBuf| std::fs::metadata(p).unwrap();
    let (a, b) = (m(ours_path), m(theirs_path));
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "{format:<6} {disk:>6} | {:>9.1} {:>9.1} {:>5.2}x | {:>11} {:>11} {:>5.2}x | {:>9} {:>9} | {what}",
        ms(ours),
        ms(theirs),
        ms(ours) / ms(theirs),
        a.len(),
        b.len(),
        a.len() as f64 / b.len() as f64,
        a.blocks() * 512,
        b.blocks() * 512,
    );
}
