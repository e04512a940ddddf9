//! Bad input at pack time: every case gets a clear error naming the file and
//! the problem, a non-zero exit, and no output file.

mod support;

use std::path::{Path, PathBuf};

use bootpack::proto::mb1_header;
use support::elf::{self, Seg};
use support::{bootpack, scratch};

/// Segment data that starts with a Multiboot header with `flags`.
fn with_header(flags: u32, len: usize) -> Vec<u8> {
    let mut d = vec![0x90u8; len];
    mb1_header::write(&mut d, 0, flags, None);
    d
}

fn elf32(segs: &[Seg]) -> Vec<u8> {
    elf::write(false, segs[0].paddr, segs)
}

/// Packs `kernel` (written to a file named `name`) and checks the failure.
fn expect_failure(test: &str, name: &str, kernel: Option<&[u8]>, extra: &[&str], needles: &[&str]) {
    let dir = scratch(test);
    let k = dir.join(name);
    if let Some(bytes) = kernel {
        std::fs::write(&k, bytes).unwrap();
    }
    let out = dir.join("disk.img");
    let mut args: Vec<String> = vec![
        "build".into(),
        k.display().to_string(),
        "-o".into(),
        out.display().to_string(),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    let r = bootpack(&args);
    let stderr = String::from_utf8_lossy(&r.stderr);
    assert_eq!(r.status.code(), Some(1), "exit status; stderr: {stderr}");
    assert!(
        stderr.starts_with("bootpack: error: "),
        "error style: {stderr}"
    );
    assert!(
        stderr.contains(&k.display().to_string()),
        "names the file: {stderr}"
    );
    for n in needles {
        assert!(stderr.contains(n), "mentions {n:?}: {stderr}");
    }
    assert!(!out.exists(), "no output file may be left behind");
    assert_no_temporaries(&dir);
}

fn assert_no_temporaries(dir: &Path) {
    let stray: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with(".tmp"))
        .collect();
    assert!(stray.is_empty(), "temporary files left: {stray:?}");
}

#[test]
fn missing_file() {
    expect_failure(
        "missing",
        "no-such-kernel",
        None,
        &[],
        &["cannot read the kernel", "No such file"],
    );
}

#[test]
fn unreadable_file() {
    // A directory cannot be read as a file, even by root (which reads
    // files whatever their mode).
    let dir = scratch("unreadable");
    let out = dir.join("disk.img");
    let r = bootpack(["build", dir.to_str().unwrap(), "-o", out.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&r.stderr);
    assert_eq!(r.status.code(), Some(1));
    assert!(
        stderr.contains("cannot read the kernel") && stderr.contains(dir.to_str().unwrap()),
        "{stderr}"
    );
    assert!(!out.exists());
}

#[test]
fn not_elf_and_no_kludge() {
    expect_failure(
        "noelf",
        "flat.bin",
        Some(&with_header(0x3, 512)),
        &[],
        &["not an ELF file", "flag bit 16"],
    );
}

#[test]
fn no_header_in_first_8k() {
    // The header sits 0x1400 bytes into a segment stored at file offset
    // 0x1000: file offset 0x2400, past the 8 KiB window.
    let mut data = vec![0u8; 0x2000];
    mb1_header::write(&mut data, 0x1400, 0x3, None);
    let k = elf32(&[Seg::load(0x100000, data, 0x2000)]);
    expect_failure(
        "noheader",
        "kernel.elf",
        Some(&k),
        &[],
        &["no Multiboot header in the first 8 KiB"],
    );
    expect_failure(
        "garbage",
        "random.bin",
        Some(&[0x5au8; 20000]),
        &[],
        &["no Multiboot header"],
    );
}

#[test]
fn bad_header_checksum() {
    let mut data = with_header(0x3, 0x100);
    data[8] ^= 0xff;
    let k = elf32(&[Seg::load(0x100000, data, 0x100)]);
    expect_failure(
        "checksum",
        "kernel.elf",
        Some(&k),
        &[],
        &["bad checksum", "offset 0x1000"],
    );
}

#[test]
fn unsupported_required_flag() {
    // Bits 0-2 are met (bit 2, a video mode, since bootpack sets them);
    // bit 9 means nothing to Multiboot 1.
    let k = elf32(&[Seg::load(0x100000, with_header(0x203, 0x100), 0x100)]);
    expect_failure(
        "requiredflag",
        "kernel.elf",
        Some(&k),
        &[],
        &["flag bit 9", "unknown to Multiboot 1"],
    );
}

#[test]
fn truncated_segment() {
    let mut seg = Seg::load(0x100000, with_header(0x3, 0x100), 0x10000);
    seg.claimed_file_size = Some(0x8000);
    let k = elf32(&[seg]);
    expect_failure(
        "truncated",
        "kernel.elf",
        Some(&k),
        &[],
        &["segment 0 is truncated", "0x1000..0x9000"],
    );
}

#[test]
fn overlapping_segments() {
    let k = elf32(&[
        Seg::load(0x100000, with_header(0x3, 0x100), 0x3000),
        Seg::load(0x102000, vec![1; 16], 0x100),
    ]);
    expect_failure(
        "overlap",
        "kernel.elf",
        Some(&k),
        &[],
        &["overlap", "0x100000..0x103000", "0x102000..0x102100"],
    );
}

#[test]
fn segment_over_the_ivt_and_bios_data_area() {
    // The one place no kernel can ever load: 0-0x4FF.
    for (name, addr, needle) in [
        ("ivt", 0x0, "0x0..0x100"),
        ("bda", 0x400, "0x400..0x500"),
        ("straddling", 0x4ff, "0x4ff..0x5ff"),
    ] {
        let k = elf32(&[
            Seg::load(0x100000, with_header(0x3, 0x100), 0x100),
            Seg::load(addr, vec![0x90; 0x100], 0x100),
        ]);
        expect_failure(
            name,
            "kernel.elf",
            Some(&k),
            &[],
            &[
                needle,
                "interrupt vector table and BIOS data area (0x0..0x500)",
                "link the kernel at 0x500 or above",
            ],
        );
    }
}

#[test]
fn segments_below_1_mib_are_packed() {
    // Over stage 1 and 2 (0x8000, 0x9000), the info arena and right above
    // the BIOS data area: accepted at pack time, as QEMU and GRUB do.
    for addr in [0x500u64, 0x8000, 0x9000, 0x40000] {
        let dir = scratch(&format!("low-{addr:x}"));
        let k = dir.join("kernel.elf");
        std::fs::write(
            &k,
            elf32(&[Seg::load(addr, with_header(0x3, 0x100), 0x100)]),
        )
        .unwrap();
        let out = dir.join("disk.img");
        let r = bootpack(["build", k.to_str().unwrap(), "-o", out.to_str().unwrap()]);
        assert!(
            r.status.success(),
            "{addr:#x}: {}",
            String::from_utf8_lossy(&r.stderr)
        );
    }
}

#[test]
fn command_line_over_the_limit() {
    let k = elf32(&[Seg::load(0x100000, with_header(0x3, 0x100), 0x100)]);
    // "kernel.elf " (11 bytes) + 8181 bytes = 8192 bytes, one too many with the NUL.
    let arg = "x".repeat(8181);
    expect_failure(
        "cmdline",
        "kernel.elf",
        Some(&k),
        &["--", &arg],
        &["command line is 8192 bytes", "8192"],
    );
    // One byte less fits.
    let dir = scratch("cmdline-ok");
    let kp = dir.join("kernel.elf");
    std::fs::write(&kp, &k).unwrap();
    let out = dir.join("disk.img");
    let r = bootpack([
        "build",
        kp.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "--",
        &arg[1..],
    ]);
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    assert!(out.exists());
}

#[test]
fn output_over_the_kernel_itself() {
    let dir = scratch("self");
    let k = dir.join("kernel.elf");
    let bytes = elf32(&[Seg::load(0x100000, with_header(0x3, 0x100), 0x100)]);
    std::fs::write(&k, &bytes).unwrap();
    let r = bootpack(["build", k.to_str().unwrap(), "-o", k.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&r.stderr);
    assert_eq!(r.status.code(), Some(1));
    assert!(stderr.contains("over the kernel file itself"), "{stderr}");
    assert_eq!(std::fs::read(&k).unwrap(), bytes, "the kernel is untouched");
}

#[test]
fn a_failed_build_leaves_an_existing_image_alone() {
    let dir = scratch("keep");
    let good = dir.join("good.elf");
    std::fs::write(
        &good,
        elf32(&[Seg::load(0x100000, with_header(0x3, 0x100), 0x100)]),
    )
    .unwrap();
    let out = dir.join("disk.img");
    assert!(
        bootpack(["build", good.to_str().unwrap(), "-o", out.to_str().unwrap()])
            .status
            .success()
    );
    let before = std::fs::read(&out).unwrap();
    let bad = dir.join("bad.elf");
    std::fs::write(&bad, [0u8; 100]).unwrap();
    let r = bootpack(["build", bad.to_str().unwrap(), "-o", out.to_str().unwrap()]);
    assert_eq!(r.status.code(), Some(1));
    assert_eq!(std::fs::read(&out).unwrap(), before);
    assert_no_temporaries(&dir);
}

fn gzip(data: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

/// A bootable kernel (the test kernel), gzip-compressed.
fn gzip_kernel() -> Vec<u8> {
    gzip(&support::kernels::build(
        support::kernels::Shape::Elf32,
        None,
    ))
}

#[test]
fn compressed_kernels_that_cannot_be_decompressed() {
    let gz = gzip_kernel();
    let n = gz.len();
    expect_failure(
        "gz-truncated",
        "kernel.gz",
        Some(&gz[..n - 100]),
        &[],
        &[
            "is gzip-compressed but its data ends early",
            &format!("offset {:#x}", n - 100),
            "truncated",
        ],
    );
    let mut damaged = gz.clone();
    damaged[n - 6] ^= 1; // the CRC-32 of the trailer
    expect_failure(
        "gz-damaged",
        "kernel.gz",
        Some(&damaged),
        &[],
        &["gzip-compressed but its data is damaged", "gzip -dc"],
    );
    let mut two = gz.clone();
    two.extend_from_slice(&gzip(b"second"));
    expect_failure(
        "gz-two-members",
        "kernel.gz",
        Some(&two),
        &[],
        &[
            &format!("a second gzip member starts at offset {n:#x}"),
            "GRUB reads only one",
        ],
    );
    let mut tail = gz.clone();
    tail.extend_from_slice(b"junk at the end");
    expect_failure(
        "gz-trailing",
        "kernel.gz",
        Some(&tail),
        &[],
        &[&format!(
            "15 bytes that are not gzip data follow its end at offset {n:#x}"
        )],
    );
    let mut lzop = b"\x89LZO\0\r\n\x1a\n".to_vec();
    lzop.resize(100, 0);
    expect_failure(
        "lzop",
        "kernel.lzo",
        Some(&lzop),
        &[],
        &["lzop-compressed", "lzop -dc"],
    );
}

/// Errors in the decompressed kernel say so: their offsets are not the
/// file's.
#[test]
fn a_compressed_file_that_is_no_kernel() {
    expect_failure(
        "gz-no-kernel",
        "random.gz",
        Some(&gzip(&[0x5au8; 20000])),
        &[],
        &[
            "(decompressed from gzip; offsets are in the decompressed data)",
            "no Multiboot header",
        ],
    );
}

#[test]
fn a_compressed_module_that_cannot_be_decompressed() {
    let dir = scratch("gz-module");
    let k = dir.join("kernel");
    std::fs::write(
        &k,
        support::kernels::build(support::kernels::Shape::Elf32, None),
    )
    .unwrap();
    let good = dir.join("good.gz");
    std::fs::write(&good, gzip(b"fine")).unwrap();
    let bad = dir.join("initrd.gz");
    let gz = gzip(&[7u8; 10000]);
    std::fs::write(&bad, &gz[..gz.len() / 2]).unwrap();
    let out = dir.join("disk.img");
    let r = bootpack([
        "build".as_ref(),
        k.as_os_str(),
        "-o".as_ref(),
        out.as_os_str(),
        "--module".as_ref(),
        good.as_os_str(),
        "--module".as_ref(),
        bad.as_os_str(),
    ]);
    let stderr = String::from_utf8_lossy(&r.stderr);
    assert_eq!(r.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.starts_with(&format!(
            "bootpack: error: {}: module 2 is gzip-compressed but its data ends early",
            bad.display()
        )),
        "{stderr}"
    );
    assert!(!out.exists());
    assert_no_temporaries(&dir);
    // Kept as it is (GRUB's name for the option), the same file packs:
    // bootpack does not look inside.
    let r = bootpack([
        "build".as_ref(),
        k.as_os_str(),
        "-o".as_ref(),
        out.as_os_str(),
        "--module-nounzip".as_ref(),
        bad.as_os_str(),
    ]);
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
}

/// Every file of the committed fuzz corpora and crash regressions
/// (packager/fuzz/corpus/TARGET, packager/fuzz/regressions/TARGET) through
/// the fuzz targets' entry points: what `cargo fuzz` checks on nightly,
/// replayed on stable in every test run. No input may panic.
#[test]
fn fuzz_corpora_replay_without_panics() {
    let fuzz = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    let files = |target: &str| -> Vec<PathBuf> {
        let mut v = Vec::new();
        for dir in ["corpus", "regressions"] {
            if let Ok(entries) = std::fs::read_dir(fuzz.join(dir).join(target)) {
                v.extend(entries.map(|e| e.unwrap().path()));
            }
        }
        v.sort();
        v
    };
    let mut failures = Vec::new();
    let kernels = files("kernel_plan");
    assert!(kernels.len() >= 5, "the kernel_plan corpus is missing");
    for f in &kernels {
        let data = std::fs::read(f).unwrap();
        let r = std::panic::catch_unwind(|| {
            let _ = bootpack::kernel::plan(&data);
            for p in [
                bootpack::Protocol::Multiboot1,
                bootpack::Protocol::Multiboot2,
            ] {
                let _ = bootpack::kernel::plan_for(&data, Some(p));
            }
        });
        if r.is_err() {
            failures.push(format!("kernel::plan panics on {}", f.display()));
        }
    }
    let images = files("inspect");
    assert!(images.len() >= 5, "the inspect corpus is missing");
    for f in &images {
        if std::panic::catch_unwind(|| bootpack::inspect::inspect(f)).is_err() {
            failures.push(format!("inspect panics on {}", f.display()));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
