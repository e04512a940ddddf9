//! What a new user hits first: exit statuses and messages for bad values
//! and bad inputs, `run` refusing what it cannot boot, interrupted builds,
//! help texts and man pages.

mod support;

use std::process::Command;
use std::time::Duration;

use support::kernels::{self, Shape};
use support::{bootpack, scratch};

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Builds the Solo5-shaped test kernel into `dir` and returns its path.
fn kernel_in(dir: &std::path::Path) -> String {
    let kernel = dir.join("kernel.elf");
    std::fs::write(&kernel, kernels::build(Shape::Solo5Elf64, None)).unwrap();
    kernel.display().to_string()
}

#[test]
fn bad_values_exit_2_and_blame_the_option() {
    let dir = scratch("bad-values");
    let k = kernel_in(&dir);
    let out = |name: &str| dir.join(name).display().to_string();
    for (size, file, says) in [
        // Not whole sectors, then too small for the contents: both give
        // the smallest and largest sizes.
        (
            "1",
            "a.img",
            &["--size 1:", "512-byte sectors", "6 MiB to", "TiB"][..],
        ),
        (
            "1M",
            "a.img",
            &["--size 1M:", "too small", "6 MiB to", "TiB"][..],
        ),
        // Not a whole GiB for gce.
        (
            "1.5G",
            "a.tar.gz",
            &["--size 1.5G:", "whole number of 1 GiB", "1 GiB to"][..],
        ),
        // Beyond what an MBR describes.
        (
            "3T",
            "a.img",
            &["--size 3T:", "2 TiB", "6 MiB to 2199023255040 bytes"][..],
        ),
        (
            "0",
            "a.img",
            &["\"0\": a disk size must be more than 0"][..],
        ),
        (
            "-1",
            "a.img",
            &["\"-1\": a disk size cannot be negative"][..],
        ),
    ] {
        let r = bootpack(["build", &k, "-o", &out(file), "--size", size]);
        let err = stderr(&r);
        assert_eq!(r.status.code(), Some(2), "--size {size}: {err}");
        assert!(err.starts_with("bootpack: error: "), "{err}");
        for s in says {
            assert!(err.contains(s), "--size {size}: wanted {s:?} in {err}");
        }
        assert!(
            !err.contains(&k),
            "a size error does not blame the kernel: {err}"
        );
    }
    // Without the ESP (BIOS only) the smallest disk is 4 MiB smaller.
    let r = bootpack([
        "build",
        &k,
        "-o",
        &out("a.img"),
        "--size",
        "1M",
        "--firmware",
        "bios",
    ]);
    let err = stderr(&r);
    assert_eq!(r.status.code(), Some(2), "{err}");
    assert!(
        err.contains("too small") && err.contains("2 MiB to"),
        "{err}"
    );
    let r = bootpack(["build", &k, "-o", &out("disk.vhd"), "--format", "qcow2"]);
    let err = stderr(&r);
    assert_eq!(r.status.code(), Some(2), "{err}");
    assert!(err.contains("contradicts the file name"), "{err}");
    assert!(!dir.join("disk.vhd").exists());
}

#[test]
fn usage_errors_carry_the_common_prefix_and_clap_help() {
    for args in [&["build"][..], &["build", "--bogus"], &["frobnicate"]] {
        let r = bootpack(args);
        let err = stderr(&r);
        assert_eq!(r.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.starts_with("bootpack: error: "), "{args:?}: {err}");
        assert!(err.contains("Usage:") || err.contains("--help"), "{err}");
    }
    // Help is not an error.
    let r = bootpack(["build", "--help"]);
    assert!(r.status.success());
}

#[test]
fn a_missing_output_directory_is_named() {
    let dir = scratch("no-dir");
    let k = kernel_in(&dir);
    let missing = dir.join("not-there");
    let r = bootpack([
        "build",
        &k,
        "-o",
        missing.join("disk.img").to_str().unwrap(),
    ]);
    let err = stderr(&r);
    assert_eq!(r.status.code(), Some(1));
    assert!(
        err.contains(&format!("{}: no such directory", missing.display())),
        "{err}"
    );
}

#[test]
fn a_huge_file_without_a_header_is_refused_from_its_first_bytes() {
    let dir = scratch("huge");
    let huge = dir.join("huge.bin");
    // 10 GiB, sparse: nothing on the disk.
    std::fs::File::create(&huge)
        .unwrap()
        .set_len(10 << 30)
        .unwrap();
    // With 1 GiB of address space, mapping (or reading) the whole file
    // fails; refusing it from its first bytes does not.
    let r = Command::new("prlimit")
        .arg(format!("--as={}", 1u64 << 30))
        .arg(env!("CARGO_BIN_EXE_bootpack"))
        .args(["build", huge.to_str().unwrap(), "-o"])
        .arg(dir.join("out.img"))
        .output()
        .expect("prlimit (util-linux)");
    let err = stderr(&r);
    assert_eq!(r.status.code(), Some(1), "{err}");
    assert!(err.contains("no Multiboot header"), "{err}");
}

#[test]
fn run_refuses_an_image_without_bootpacks_boot_code() {
    let dir = scratch("run-foreign");
    let random = dir.join("random.img");
    std::fs::write(&random, kernels::random_bytes(4 << 20, 7)).unwrap();
    // Another loader's MBR: boot code that is not bootpack's, one partition.
    let mut foreign = vec![0u8; 4096 * 512];
    foreign[..3].copy_from_slice(&[0xEB, 0x3C, 0x90]);
    foreign[0x1BE] = 0x80;
    foreign[0x1BE + 4] = 0x0C;
    foreign[0x1BE + 8..0x1BE + 12].copy_from_slice(&2048u32.to_le_bytes());
    foreign[0x1BE + 12..0x1BE + 16].copy_from_slice(&2048u32.to_le_bytes());
    foreign[510] = 0x55;
    foreign[511] = 0xAA;
    let other = dir.join("other.img");
    std::fs::write(&other, &foreign).unwrap();
    for (image, says) in [(&random, "no MBR"), (&other, "no bootpack boot code")] {
        // QEMU is never started: the refusal comes first (and quickly, even
        // where QEMU is missing).
        let r = bootpack(["run", image.to_str().unwrap(), "--accel", "tcg"]);
        let err = stderr(&r);
        assert_eq!(r.status.code(), Some(1), "{err}");
        assert!(err.contains("not a bootable bootpack image"), "{err}");
        assert!(err.contains(says), "{err}");
        assert!(err.contains("--force"), "{err}");
    }
    // --force boots it anyway (shown with --dry-run).
    let r = bootpack(["run", other.to_str().unwrap(), "--force", "--dry-run"]);
    assert!(r.status.success(), "{}", stderr(&r));
}

#[test]
fn an_interrupted_build_leaves_no_temporary_file() {
    let dir = scratch("interrupt");
    let k = kernel_in(&dir);
    // A module of random bytes makes the gce build (deflate) take a while.
    let module = dir.join("module.bin");
    std::fs::write(&module, kernels::random_bytes(400 << 20, 3)).unwrap();
    let out = dir.join("disk.tar.gz");
    for signal in ["INT", "TERM"] {
        let mut child = Command::new(env!("CARGO_BIN_EXE_bootpack"))
            .args(["build", &k, "-o", out.to_str().unwrap(), "--module"])
            .arg(&module)
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let tmp = dir.join(format!(".disk.tar.gz.bootpack-{}.tmp", child.id()));
        let mut waited = 0;
        while !tmp.exists() {
            assert!(
                waited < 600,
                "the build never started writing {}",
                tmp.display()
            );
            assert!(
                child.try_wait().unwrap().is_none(),
                "the build ended before it could be interrupted"
            );
            std::thread::sleep(Duration::from_millis(100));
            waited += 1;
        }
        let kill = Command::new("kill")
            .args([&format!("-{signal}"), &child.id().to_string()])
            .status()
            .unwrap();
        assert!(kill.success());
        let status = child.wait().unwrap();
        assert!(!status.success(), "SIG{signal} ends the build");
        assert!(!tmp.exists(), "SIG{signal} left {}", tmp.display());
        assert!(!out.exists(), "SIG{signal} left an output");
    }
}

#[test]
fn help_texts_describe_every_format_and_argument() {
    let r = bootpack(["build", "--help"]);
    let help = String::from_utf8_lossy(&r.stdout);
    assert!(help.contains("raw, gce, vhd, vmdk or qcow2"), "{help}");
    assert!(!help.contains("a raw disk image"), "{help}");
    for cmd in ["build", "run", "inspect", "demo", "completions", "man"] {
        let r = bootpack([cmd, "--help"]);
        let help = String::from_utf8_lossy(&r.stdout).into_owned();
        let args = help
            .split("Arguments:\n")
            .nth(1)
            .map(|a| a.split("\n\n").next().unwrap().to_string())
            .unwrap_or_default();
        // Each argument is "  <NAME>" then its text on the same or the
        // next lines.
        let lines: Vec<&str> = args.lines().collect();
        for (i, l) in lines.iter().enumerate() {
            let t = l.trim_start();
            if t.starts_with('<') || t.starts_with('[') {
                let name_end = t.find(['>', ']']).unwrap() + 1;
                let own = t[name_end..].trim();
                let next = lines.get(i + 1).map(|n| n.trim()).unwrap_or("");
                assert!(
                    !own.is_empty() || (!next.is_empty() && !next.starts_with('<')),
                    "{cmd}: the argument {t} has no help text:\n{help}"
                );
            }
        }
    }
}

#[test]
fn inspect_numbers_partitions_the_same_in_text_and_json() {
    let dir = scratch("inspect-numbers");
    let image = dir.join("demo.img");
    assert!(bootpack(["demo", "-o", image.to_str().unwrap()])
        .status
        .success());
    let text = String::from_utf8_lossy(&bootpack(["inspect", image.to_str().unwrap()]).stdout)
        .into_owned();
    let json = bootpack(["inspect", "--json", image.to_str().unwrap()]);
    let v: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    let index = v["partitions"][0]["index"].as_u64().unwrap();
    let partition = v["kernel"]["partition"].as_u64().unwrap();
    assert!(text.contains(&format!("\n  {index}: type")), "{text}\n{v}");
    assert!(
        text.contains(&format!("kernel:      partition {partition},")),
        "{text}\n{v}"
    );
    assert_eq!((index, partition), (1, 1), "numbered from 1, as sda1");
}

#[test]
fn man_pages_for_every_subcommand() {
    let r = bootpack(["man", "build"]);
    let page = String::from_utf8_lossy(&r.stdout);
    assert!(r.status.success());
    assert!(page.contains(".TH bootpack-build 1"), "{page}");
    for option in [
        "output",
        "size",
        "format",
        "module",
        "protocol",
        "no\\-fast\\-read",
        "name",
    ] {
        assert!(
            page.contains(&format!("\\-\\-{option}")),
            "--{option} in {page}"
        );
    }
    let dir = scratch("man");
    let r = bootpack(["man", "--dir", dir.to_str().unwrap()]);
    assert!(r.status.success(), "{}", stderr(&r));
    let top = std::fs::read_to_string(dir.join("bootpack.1")).unwrap();
    for cmd in ["build", "run", "inspect", "demo", "completions", "man"] {
        let page = dir.join(format!("bootpack-{cmd}.1"));
        assert!(page.is_file(), "{} written", page.display());
        // The top page refers to each subcommand's page, which now exists.
        assert!(top.contains(&format!("bootpack\\-{cmd}(1)")), "{top}");
    }
    let r = bootpack(["man", "nope"]);
    assert_eq!(r.status.code(), Some(2));
}
