//! Compressed kernels and modules: the test kernel packed as a gzip, xz and
//! zstd file with a compressed module boots in QEMU and reports a payload
//! and a module byte-identical to the decompressed originals; a module
//! packed with `--module-raw` arrives still compressed, byte for byte; and
//! `inspect` says what was done. QEMU, xz and zstd are required.

mod support;

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use support::kernels::{self, Headers, Payload, Shape, Spec};
use support::qemu::{self, Machine};
use support::report::Report;
use support::{bootpack, scratch};

const BOOT_TIMEOUT: Duration = Duration::from_secs(60);
/// isa-debug-exit: the kernel writes 0x10, QEMU exits (0x10 << 1) | 1.
const KERNEL_EXIT: i32 = 0x21;

#[derive(Clone, Copy, Debug)]
enum Format {
    Gzip,
    Xz,
    Zstd,
}

impl Format {
    fn name(self) -> &'static str {
        match self {
            Format::Gzip => "gzip",
            Format::Xz => "xz",
            Format::Zstd => "zstd",
        }
    }
}

/// `data` compressed as the usual tools do (gzip through flate2, the
/// others with the system's xz and zstd).
fn compress(format: Format, data: &[u8]) -> Vec<u8> {
    let (cmd, args): (&str, &[&str]) = match format {
        Format::Gzip => {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
            e.write_all(data).unwrap();
            return e.finish().unwrap();
        }
        Format::Xz => ("xz", &["-c", "--x86", "--lzma2=preset=6"]),
        Format::Zstd => ("zstd", &["-c", "-q", "-19"]),
    };
    let mut child = Command::new(cmd)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("{cmd} is needed for this test (Debian: apt-get install xz-utils zstd): {e}")
        });
    let mut stdin = child.stdin.take().unwrap();
    let input = data.to_vec();
    let writer = std::thread::spawn(move || stdin.write_all(&input).unwrap());
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap();
    assert!(out.status.success(), "{cmd} failed");
    out.stdout
}

fn inspect_json(image: &Path) -> serde_json::Value {
    let r = bootpack(["inspect", "--json", &image.display().to_string()]);
    assert!(
        r.status.success(),
        "inspect: {}",
        String::from_utf8_lossy(&r.stderr)
    );
    serde_json::from_slice(&r.stdout).unwrap()
}

fn boots_compressed(format: Format, headers: Headers, machine: &'static str) {
    let dir = scratch(&format!("compressed-{}", format.name()));
    let payload = Payload::random(0x20_0000, 1 << 20, 0xc0de);
    let kernel = kernels::build_spec(&Spec {
        payload: Some(&payload),
        ..Spec::new(Shape::Elf32, headers)
    });
    let module = kernels::random_bytes(200_001, 7);
    // The raw module: compressed data the kernel must get unchanged.
    let raw = compress(format, &kernels::random_bytes(50_000, 8));

    let k = dir.join(format!("kernel.{}", format.name()));
    std::fs::write(&k, compress(format, &kernel)).unwrap();
    let m = dir.join("module.bin");
    std::fs::write(&m, compress(format, &module)).unwrap();
    let r_path = dir.join("raw.bin");
    std::fs::write(&r_path, &raw).unwrap();
    let image = dir.join("disk.img");
    let out = bootpack([
        "build".as_ref(),
        k.as_os_str(),
        "-o".as_ref(),
        image.as_os_str(),
        "--module-raw".as_ref(),
        format!("{}=kept", r_path.display()).as_ref(),
        "--module".as_ref(),
        format!("{}=initrd x=1", m.display()).as_ref(),
        "--".as_ref(),
        "a".as_ref(),
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "build: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The build says what it did.
    assert!(
        stdout.contains(&format!("kernel: decompressed from {}", format.name()))
            && stdout.contains(&format!("module 2: decompressed from {}", format.name()))
            && !stdout.contains("module 1: decompressed"),
        "{stdout}"
    );

    // Same inputs, same bytes.
    let again = dir.join("again.img");
    let out2 = bootpack([
        "build".as_ref(),
        k.as_os_str(),
        "-o".as_ref(),
        again.as_os_str(),
        "--module-raw".as_ref(),
        format!("{}=kept", r_path.display()).as_ref(),
        "--module".as_ref(),
        format!("{}=initrd x=1", m.display()).as_ref(),
        "--".as_ref(),
        "a".as_ref(),
    ]);
    assert!(out2.status.success());
    assert!(
        std::fs::read(&image).unwrap() == std::fs::read(&again).unwrap(),
        "rebuilds are byte-identical"
    );

    let run = qemu::boot_image(&image, &Machine::new(machine, "128M"), BOOT_TIMEOUT);
    let r = Report::parse(&run.serial);
    assert_eq!(
        run.exit,
        Some(KERNEL_EXIT),
        "QEMU exit; serial:\n{}",
        run.serial_text()
    );
    assert_eq!(r.get("payload"), format!("0x00200000 {} ok", 1 << 20));
    let name = k.file_name().unwrap().to_string_lossy();
    assert_eq!(r.cmdline(), format!("{name} a").as_bytes());
    assert_eq!(r.mods.len(), 2, "two modules");
    let (kept, unpacked) = (&r.mods[0], &r.mods[1]);
    assert_eq!(kept.end - kept.start, raw.len() as u64);
    assert_eq!(kept.hash, kernels::bytes_hash(&raw), "raw module unchanged");
    assert_eq!(kept.string, "kept");
    assert_eq!(unpacked.end - unpacked.start, module.len() as u64);
    assert_eq!(
        unpacked.hash,
        kernels::bytes_hash(&module),
        "module decompressed"
    );
    assert_eq!(unpacked.string, "initrd x=1");

    let j = inspect_json(&image);
    let k = &j["kernel"];
    assert_eq!(k["decompressed_from"], format.name());
    assert_eq!(k["modules_decompressed"], true);
    assert_eq!(k["modules"][0]["stored_compression"], format.name());
    assert!(k["modules"][1]["stored_compression"].is_null());
    let text = bootpack(["inspect", &image.display().to_string()]);
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(
        text.contains(&format!(
            "packing:     kernel decompressed from {}, module(s) decompressed at pack time",
            format.name()
        )) && text.contains(&format!(
            "stored {}-compressed as given (--module-raw)",
            format.name()
        )),
        "{text}"
    );
}

#[test]
fn gzip_kernel_and_module_boot() {
    boots_compressed(Format::Gzip, Headers::Mb1, "pc");
}

#[test]
fn xz_kernel_and_module_boot() {
    boots_compressed(Format::Xz, Headers::Both, "q35");
}

#[test]
fn zstd_kernel_and_module_boot() {
    boots_compressed(Format::Zstd, Headers::Mb1, "q35");
}

/// An uncompressed kernel's image carries no notes, and `inspect` says
/// nothing was decompressed.
#[test]
fn uncompressed_kernels_carry_no_notes() {
    let dir = scratch("uncompressed-notes");
    let k = dir.join("kernel");
    std::fs::write(&k, kernels::build(Shape::Elf32, None)).unwrap();
    let m = dir.join("m");
    std::fs::write(&m, b"plain module").unwrap();
    let image = dir.join("disk.img");
    let out = bootpack([
        "build".as_ref(),
        k.as_os_str(),
        "-o".as_ref(),
        image.as_os_str(),
        "--module".as_ref(),
        m.as_os_str(),
    ]);
    assert!(out.status.success());
    assert!(!String::from_utf8_lossy(&out.stdout).contains("decompressed"));
    let j = inspect_json(&image);
    assert!(j["kernel"]["decompressed_from"].is_null());
    assert_eq!(j["kernel"]["modules_decompressed"], false);
    let text = bootpack(["inspect", &image.display().to_string()]);
    assert!(!String::from_utf8_lossy(&text.stdout).contains("packing:"));
}

/// `bootpack run` takes a compressed kernel for a kernel (packing it), not
/// for a disk image.
#[test]
fn run_packs_a_compressed_kernel() {
    let dir = scratch("run-compressed");
    let k = dir.join("kernel.gz");
    std::fs::write(
        &k,
        compress(Format::Gzip, &kernels::build(Shape::Elf32, None)),
    )
    .unwrap();
    let r = bootpack(["run", k.to_str().unwrap(), "--dry-run", "--", "x"]);
    let stdout = String::from_utf8_lossy(&r.stdout);
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    assert!(
        stdout.contains("bootpack-run-") && stdout.contains("disk.img,format=raw"),
        "{stdout}"
    );
}
