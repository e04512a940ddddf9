//! `solo5-virtio-mkimage`, bootpack's drop-in: the original's interface,
//! defaults and error style, and images that boot a Solo5-shaped kernel
//! with the command line the original gave it ("unikernel.bin ARGS").

mod support;

use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use support::kernels::{self, Shape};
use support::qemu::{self, Machine};
use support::report::Report;
use support::scratch;

fn mkimage<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_solo5-virtio-mkimage"))
        .args(args)
        .output()
        .unwrap()
}

fn boot_cmdline(disk: &Path) -> Vec<u8> {
    let run = qemu::boot_image(disk, &Machine::new("q35", "128M"), Duration::from_secs(60));
    Report::parse(&run.serial).cmdline()
}

#[test]
fn usage_errors_print_the_usage_and_exit_1() {
    for args in [
        vec![],
        vec!["only-one"],
        vec!["-f", "qcow2", "a", "b"],
        vec!["-x", "a", "b"],
        vec!["-f"],
    ] {
        let out = mkimage(&args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        assert!(
            err.starts_with(
                "usage: solo5-virtio-mkimage [ OPTIONS ] [ -- ] IMAGE UNIKERNEL [ ARGUMENTS ... ]"
            ),
            "{err}"
        );
    }
}

#[test]
fn a_missing_unikernel_is_reported_by_its_absolute_path() {
    let dir = scratch("mk-missing");
    let out = Command::new(env!("CARGO_BIN_EXE_solo5-virtio-mkimage"))
        .current_dir(&*dir)
        .args(["disk.img", "nope.virtio"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        err.trim_end(),
        format!(
            "solo5-virtio-mkimage: error: not found: {}",
            dir.join("nope.virtio").display()
        )
    );
    assert!(!dir.join("disk.img").exists());
}

#[test]
fn raw_image_is_1_gib_sparse_and_boots_with_the_original_command_line() {
    let dir = scratch("mk-raw");
    let kernel = dir.join("hello.virtio");
    std::fs::write(&kernel, kernels::build(Shape::Solo5Elf64, None)).unwrap();
    let image = dir.join("disk.img");
    // -d is accepted (with a note); options may be grouped as getopt allows.
    let out = mkimage(&[
        "-d".as_ref(),
        "--".as_ref(),
        image.as_os_str(),
        kernel.as_os_str(),
        "--ipv4=10.0.0.2/24".as_ref(),
        "a b".as_ref(),
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("-d (run in Docker) is not needed"), "{err}");
    let meta = std::fs::metadata(&image).unwrap();
    assert_eq!(meta.len(), 1 << 30, "a 1 GiB disk, as the original");
    use std::os::unix::fs::MetadataExt;
    assert!(
        meta.blocks() * 512 < 16 << 20,
        "sparse: {} bytes allocated",
        meta.blocks() * 512
    );
    assert_eq!(
        boot_cmdline(&image),
        b"unikernel.bin --ipv4=10.0.0.2/24 a b"
    );
}

#[test]
fn tar_format_is_a_gce_archive_whose_disk_boots() {
    let dir = scratch("mk-tar");
    let kernel = dir.join("hello.virtio");
    std::fs::write(&kernel, kernels::build(Shape::Solo5Elf64, None)).unwrap();
    // The original wrote the archive under whatever name it was given.
    let image = dir.join("image.img");
    let out = mkimage(&[
        "-ftar".as_ref(),
        image.as_os_str(),
        kernel.as_os_str(),
        "x".as_ref(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let tar = Command::new("tar")
        .current_dir(&*dir)
        .arg("-xzf")
        .arg(&image)
        .status();
    assert!(
        matches!(tar, Ok(s) if s.success()),
        "GNU tar extracts the archive (install tar if missing)"
    );
    let disk = dir.join("disk.raw");
    assert_eq!(std::fs::metadata(&disk).unwrap().len(), 1 << 30);
    assert_eq!(boot_cmdline(&disk), b"unikernel.bin x");
}
