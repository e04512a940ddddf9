//! The commands around `build`: `run` (in QEMU, through a real pty),
//! `inspect`, completions, man page and help texts.

mod support;

use std::process::Command;

use support::kernels::{self, Shape};
use support::{bootpack, scratch};

/// `bootpack run`'s status after a clean run of the demo kernel: it writes 0
/// to Solo5's isa-debug-exit port (0x501), as a unikernel's exit(0) does.
const KERNEL_STATUS: i32 = 0;

#[test]
fn run_boots_a_kernel_on_a_terminal_and_returns_its_status() {
    support::qemu::require_qemu();
    let dir = scratch("run-pty");
    let kernel = dir.join("kernel.elf");
    std::fs::write(&kernel, kernels::build(Shape::Solo5Elf64, None)).unwrap();
    // script(1) gives bootpack (and QEMU) a pseudo-terminal, as a person's
    // shell would; -e returns the child's exit status.
    let cmd = format!(
        "{} run {} --accel tcg --mem 64M -- 'hello tty'",
        env!("CARGO_BIN_EXE_bootpack"),
        kernel.display()
    );
    let out = Command::new("script")
        .args(["-q", "-e", "-c", &cmd, "/dev/null"])
        .output()
        .expect("script(1) from util-linux");
    let screen = String::from_utf8_lossy(&out.stdout);
    assert!(
        screen.contains("bootpack demo kernel: here is what the boot loader handed over"),
        "{screen}"
    );
    assert!(
        screen.contains("BPTK cmdline_text kernel.elf hello tty"),
        "{screen}"
    );
    assert!(screen.contains("BPTK end"), "{screen}");
    assert_eq!(
        out.status.code(),
        Some(KERNEL_STATUS),
        "the kernel's exit status comes back"
    );
}

#[test]
fn run_dry_run_prints_the_qemu_command_line() {
    let dir = scratch("run-dry");
    let image = dir.join("my disk.img");
    assert!(bootpack(["demo", "-o", image.to_str().unwrap()])
        .status
        .success());
    let data = dir.join("data.img");
    std::fs::write(&data, [0u8; 512]).unwrap();
    let out = bootpack([
        "run",
        image.to_str().unwrap(),
        "--dry-run",
        "--accel",
        "tcg",
        "--mem",
        "1G",
        "--net",
        "tap7",
        "--disk",
        data.to_str().unwrap(),
        "--gdb",
    ]);
    assert!(out.status.success());
    let line = String::from_utf8_lossy(&out.stdout);
    for part in [
        "qemu-system-x86_64 -machine q35 -accel tcg -m 1G",
        &format!("'file={},format=raw,media=disk'", image.display()),
        &format!("-drive file={},format=raw,if=none,id=disk0 -device virtio-blk-pci,drive=disk0", data.display()),
        "-netdev tap,id=net0,ifname=tap7,script=no,downscript=no -device virtio-net-pci,netdev=net0",
        "isa-debug-exit,iobase=0x501",
        "-s -S",
    ] {
        assert!(line.contains(part), "{part:?} in {line}");
    }
}

#[test]
fn run_without_qemu_says_how_to_install_it() {
    let dir = scratch("run-noqemu");
    let image = dir.join("disk.img");
    assert!(bootpack(["demo", "-o", image.to_str().unwrap()])
        .status
        .success());
    let out = Command::new(env!("CARGO_BIN_EXE_bootpack"))
        .args(["run", image.to_str().unwrap(), "--accel", "tcg"])
        .env("PATH", dir.as_os_str())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        err.contains("qemu-system-x86_64 not found: install QEMU")
            && err.contains("apt-get install qemu-system-x86"),
        "{err}"
    );
}

#[test]
fn inspect_shows_and_verifies_a_bootpack_image() {
    let dir = scratch("inspect");
    let image = dir.join("disk.img");
    assert!(
        bootpack(["demo", "-o", image.to_str().unwrap(), "--", "a \"b\""])
            .status
            .success()
    );
    let out = bootpack(["inspect", image.to_str().unwrap()]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    for part in [
        "1: type 0x7f, active, LBA 2048..4096",
        &format!(
            "bootpack {} (this bootpack); stage 2 at LBA {}",
            env!("CARGO_PKG_VERSION"),
            bootpack::proto::layout::STAGE2_LBA
        ),
        "entry 0x100040, Multiboot flags 0x00010003",
        "ok",
        "cmdline:     \"bootpack-demo a \\\"b\\\"\"",
    ] {
        assert!(text.contains(part), "{part:?} in\n{text}");
    }

    let out = bootpack(["inspect", "--json", image.to_str().unwrap()]);
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["format"], "raw");
    assert_eq!(v["kernel"]["cmdline"], "bootpack-demo a \"b\"");
    assert_eq!(v["kernel"]["entry"], 0x100040);
    assert_eq!(v["kernel"]["checksum_ok"], true);
    assert_eq!(v["kernel"]["fast_read"], true);
    assert_eq!(v["bootloader"]["stage2_checksum_ok"], true);

    let slow = dir.join("slow.img");
    assert!(bootpack(["demo", "-o", slow.to_str().unwrap()])
        .status
        .success());
    let kernel = dir.join("kernel.elf");
    std::fs::write(&kernel, kernels::build(Shape::Solo5Elf64, None)).unwrap();
    assert!(bootpack([
        "build",
        kernel.to_str().unwrap(),
        "-o",
        slow.to_str().unwrap(),
        "--no-fast-read"
    ])
    .status
    .success());
    let out = bootpack(["inspect", "--json", slow.to_str().unwrap()]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        v["kernel"]["fast_read"], false,
        "--no-fast-read is recorded"
    );
    assert_eq!(v["partitions"][0]["start_lba"], 2048);
    assert_eq!(v["problems"].as_array().unwrap().len(), 0);
}

#[test]
fn inspect_reports_damage_and_foreign_images() {
    let dir = scratch("inspect-bad");
    let image = dir.join("disk.img");
    assert!(bootpack(["demo", "-o", image.to_str().unwrap()])
        .status
        .success());
    let mut disk = std::fs::read(&image).unwrap();
    // A byte of kernel data (the record fills the partition's first sector).
    disk[2049 * 512 + 64] ^= 0xff;
    let damaged = dir.join("damaged.img");
    std::fs::write(&damaged, &disk).unwrap();
    let out = bootpack(["inspect", damaged.to_str().unwrap()]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text.contains("checksum") && text.contains("BAD") && text.contains("damaged"),
        "{text}"
    );

    // An MBR with one partition and boot code that is not bootpack's.
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
    let out = bootpack(["inspect", other.to_str().unwrap()]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text.contains("MBR with 1 partition(s), no bootpack boot code"),
        "{text}"
    );
    assert!(
        text.contains("no bootpack kernel partition (type 0x7f)"),
        "{text}"
    );
}

#[test]
fn completions_man_page_and_help() {
    let out = bootpack(["completions", "bash"]);
    assert!(out.status.success());
    let script = String::from_utf8_lossy(&out.stdout);
    assert!(
        script.contains("_bootpack()") && script.contains("inspect"),
        "bash completion"
    );
    let out = bootpack(["man"]);
    let page = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && page.contains(".TH bootpack") && page.contains("inspect"),
        "{page}"
    );
    for cmd in ["build", "run", "inspect", "demo", "completions", "man"] {
        let out = bootpack([cmd, "--help"]);
        let help = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && help.contains("Example"),
            "{cmd} --help has examples:\n{help}"
        );
    }
    let out = bootpack(["build"]);
    assert_eq!(out.status.code(), Some(2), "usage errors exit 2");
}

/// Builds the Solo5-shaped kernel into `name` with `extra` options.
fn build_into(
    dir: &std::path::Path,
    name: &str,
    extra: &[&str],
) -> (std::path::PathBuf, std::process::Output) {
    let kernel = dir.join("kernel.elf");
    if !kernel.exists() {
        std::fs::write(&kernel, kernels::build(Shape::Solo5Elf64, None)).unwrap();
    }
    let out = dir.join(name);
    let mut args = vec![
        "build".to_string(),
        kernel.display().to_string(),
        "-o".into(),
        out.display().to_string(),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    let r = bootpack(&args);
    (out, r)
}

#[test]
fn every_output_format_boots() {
    use support::qemu::{boot_image_as, Machine};
    let dir = scratch("formats-boot");
    for (name, qemu_format) in [
        ("disk.img", "raw"),
        ("disk.vhd", "vpc"),
        ("disk.vmdk", "vmdk"),
        ("disk.qcow2", "qcow2"),
        ("disk.tar.gz", "raw"),
    ] {
        let (mut image, r) = build_into(&dir, name, &["--", "fmt", name]);
        assert!(
            r.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&r.stderr)
        );
        if name.ends_with(".tar.gz") {
            // Google Compute Engine imports disk.raw out of the archive.
            let x = dir.join("extracted");
            std::fs::create_dir_all(&x).unwrap();
            let tar = Command::new("tar")
                .current_dir(&x)
                .arg("-xzf")
                .arg(&image)
                .status();
            assert!(
                matches!(tar, Ok(s) if s.success()),
                "GNU tar extracts {name} (install tar if missing)"
            );
            image = x.join("disk.raw");
            assert_eq!(
                std::fs::metadata(&image).unwrap().len(),
                1 << 30,
                "a gce disk is 1 GiB by default"
            );
        }
        let run = boot_image_as(
            &image,
            qemu_format,
            &Machine::new("q35", "128M"),
            std::time::Duration::from_secs(60),
        );
        let report = support::report::Report::parse(&run.serial);
        assert_eq!(
            report.cmdline(),
            format!("kernel.elf fmt {name}").as_bytes(),
            "{name}"
        );
        assert_eq!(run.exit, Some(0x21), "{name}");
    }
}

#[test]
fn format_and_size_rules() {
    let dir = scratch("format-rules");
    let (out, r) = build_into(&dir, "disk.vhd", &["--format", "qcow2"]);
    let err = String::from_utf8_lossy(&r.stderr);
    assert_eq!(r.status.code(), Some(2), "a bad value");
    assert!(
        err.contains("the format asked for (qcow2) contradicts the file name, which says vhd"),
        "{err}"
    );
    assert!(!out.exists());

    let (_, r) = build_into(&dir, "disk.tar.gz", &["--size", "1536M"]);
    let err = String::from_utf8_lossy(&r.stderr);
    assert!(
        err.contains("a gce image must be a whole number of 1 GiB"),
        "{err}"
    );
    let (_, r) = build_into(&dir, "small.img", &["--size", "1M"]);
    let err = String::from_utf8_lossy(&r.stderr);
    assert!(
        // Stage 2's gap, the 1 MiB-aligned kernel partition and the 4 MiB
        // ESP the default (both firmwares) adds.
        err.contains("too small") && err.contains("at least 6291456 bytes"),
        "{err}"
    );
    let (_, r) = build_into(&dir, "bad.img", &["--size", "12Q"]);
    assert_eq!(
        r.status.code(),
        Some(2),
        "an unparsable size is a usage error"
    );

    // An explicit format with a name that says nothing: as asked.
    let (out, r) = build_into(&dir, "image.bin", &["--format", "vhd", "--size", "64M"]);
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    let bytes = std::fs::read(&out).unwrap();
    assert_eq!(bytes.len(), (64 << 20) + 512);
    assert_eq!(&bytes[bytes.len() - 512..][..8], b"conectix");
}

#[test]
fn inspect_reads_every_format() {
    let dir = scratch("inspect-formats");
    for ext in ["img", "vhd", "vmdk", "qcow2", "tar.gz"] {
        let (image, r) = build_into(
            &dir,
            &format!("disk.{ext}"),
            &["--size", "1G", "--", "inspect", ext],
        );
        assert!(
            r.status.success(),
            "{ext}: {}",
            String::from_utf8_lossy(&r.stderr)
        );
        let out = bootpack(["inspect", "--json", image.to_str().unwrap()]);
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert!(out.status.success(), "{ext}: {v}");
        assert_eq!(
            v["format"],
            if ext == "tar.gz" {
                "gce"
            } else if ext == "img" {
                "raw"
            } else {
                ext
            },
            "{ext}"
        );
        assert_eq!(
            v["kernel"]["cmdline"],
            format!("kernel.elf inspect {ext}"),
            "{ext}"
        );
        assert_eq!(v["kernel"]["checksum_ok"], true, "{ext}");
        // The default image boots on both firmwares: the kernel partition
        // fills the 1 GiB disk but for the 4 MiB ESP at its end.
        let esp = 8192u64;
        assert_eq!(
            v["partitions"][0]["sectors"],
            (1u64 << 21) - 2048 - esp,
            "{ext}: the kernel partition"
        );
        assert_eq!(v["partitions"][1]["kind"], 0xEF, "{ext}: the ESP");
        assert_eq!(v["partitions"][1]["start_lba"], (1u64 << 21) - esp, "{ext}");
        assert_eq!(v["partitions"][1]["sectors"], esp, "{ext}");
    }
}

#[test]
fn every_format_is_reproducible() {
    let dir = scratch("repro");
    for ext in ["img", "vhd", "vmdk", "qcow2", "tar.gz"] {
        let (a, r) = build_into(&dir, &format!("a.{ext}"), &["--", "same"]);
        assert!(r.status.success());
        let (b, r) = build_into(&dir, &format!("b.{ext}"), &["--", "same"]);
        assert!(r.status.success());
        assert!(
            std::fs::read(&a).unwrap() == std::fs::read(&b).unwrap(),
            "{ext}: two builds differ"
        );
    }
}

#[test]
fn modules_and_protocol_from_the_command_line() {
    use support::qemu::{boot_image, Machine};
    let dir = scratch("cli-modules");
    let first = dir.join("first.bin");
    std::fs::write(
        &first,
        (0..70_000u32).map(|i| (i * 7) as u8).collect::<Vec<u8>>(),
    )
    .unwrap();
    let second = dir.join("second.txt");
    std::fs::write(&second, b"hello\n").unwrap();
    for protocol in ["multiboot1", "multiboot2"] {
        let (image, r) = build_into(
            &dir,
            &format!("{protocol}.img"),
            &[
                "--protocol",
                protocol,
                "--module",
                &format!("{}=a string = with equals", first.display()),
                "--module",
                second.to_str().unwrap(),
            ],
        );
        assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
        let run = boot_image(
            &image,
            &Machine::new("q35", "128M"),
            std::time::Duration::from_secs(60),
        );
        let text = run.serial_text();
        let expected_magic = if protocol == "multiboot1" {
            "0x2badb002"
        } else {
            "0x36d76289"
        };
        assert!(
            text.contains(&format!("BPTK magic {expected_magic}")),
            "{protocol}:\n{text}"
        );
        let mods: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with("BPTK mod "))
            .collect();
        assert_eq!(mods.len(), 2, "{protocol}:\n{text}");
        assert!(mods[0].ends_with(" a string = with equals"), "{}", mods[0]);
        assert!(
            mods[1].trim_end().split(' ').count() == 5,
            "the second module has an empty string: {}",
            mods[1]
        );

        let out = bootpack(["inspect", "--json", image.to_str().unwrap()]);
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert!(out.status.success(), "{v}");
        assert_eq!(v["kernel"]["protocol"], protocol);
        assert_eq!(
            v["kernel"]["modules"][0]["string"],
            "a string = with equals"
        );
        assert_eq!(v["kernel"]["modules"][0]["size"], 70_000);
        assert_eq!(v["kernel"]["modules"][1]["size"], 6);
        assert_eq!(v["kernel"]["modules"][1]["checksum_ok"], true);
    }
}

#[test]
fn run_gdb_stops_at_the_kernels_first_instruction() {
    support::qemu::require_qemu();
    let gdb_ok = Command::new("gdb")
        .arg("--version")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    assert!(
        gdb_ok,
        "this test needs gdb (Debian/Ubuntu: apt-get install gdb)"
    );
    let dir = scratch("run-gdb");
    let kernel = dir.join("kernel.elf");
    let bytes = kernels::build(Shape::Solo5Elf64, None);
    std::fs::write(&kernel, &bytes).unwrap();
    let entry = bootpack::kernel::plan(&bytes).unwrap().entry;
    let mut qemu = Command::new(env!("CARGO_BIN_EXE_bootpack"))
        .args([
            "run",
            kernel.to_str().unwrap(),
            "--gdb",
            "--accel",
            "tcg",
            "--mem",
            "64M",
        ])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // The stub listens once QEMU is up; gdb retries the connection itself
    // for a while, so give QEMU a moment.
    std::thread::sleep(std::time::Duration::from_millis(500));
    let gdb = Command::new("gdb")
        .args(["-nx", "-batch", "-ex", "target remote localhost:1234"])
        .args([
            "-ex",
            &format!("hbreak *{entry:#x}"),
            "-ex",
            "continue",
            "-ex",
            "info registers rip rax",
            "-ex",
            "kill",
        ])
        .output()
        .unwrap();
    let _ = qemu.kill();
    let _ = qemu.wait();
    // Stopped at the kernel's entry, with the Multiboot magic in EAX (the
    // test kernel has both headers and boots with Multiboot 2): the kernel
    // is debugged from its first instruction.
    let text = String::from_utf8_lossy(&gdb.stdout);
    let reg = |name: &str| {
        text.lines()
            .find(|l| l.starts_with(name))
            .unwrap_or_default()
            .to_string()
    };
    assert!(
        reg("rip").contains(&format!("{entry:#x}")),
        "stopped at the entry {entry:#x}:\n{text}\n{}",
        String::from_utf8_lossy(&gdb.stderr)
    );
    assert!(
        reg("rax").contains("0x36d76289") || reg("rax").contains("0x2badb002"),
        "EAX holds the magic:\n{text}"
    );
}

/// A gce image that can boot under UEFI (the default, both firmwares)
/// tells the user which guest OS feature GCE needs, and what Shielded VM
/// needs on top; a BIOS-only image says nothing of UEFI.
#[test]
fn gce_builds_name_the_uefi_guest_os_feature() {
    let dir = scratch("gce-uefi-note");
    for (extra, says) in [
        (
            &[][..],
            Some("--guest-os-features=UEFI_COMPATIBLE; Shielded VM also needs --table gpt"),
        ),
        (
            &["--table", "gpt"][..],
            Some("--guest-os-features=UEFI_COMPATIBLE (then Shielded VM works: GPT and UEFI)"),
        ),
        (
            &["--firmware", "uefi", "--table", "gpt"][..],
            Some("UEFI_COMPATIBLE (then"),
        ),
        (&["--firmware", "bios"][..], None),
    ] {
        let (out, r) = build_into(&dir, "disk.tar.gz", extra);
        let stdout = String::from_utf8_lossy(&r.stdout);
        assert!(
            r.status.success(),
            "{extra:?}: {}",
            String::from_utf8_lossy(&r.stderr)
        );
        match says {
            Some(s) => assert!(stdout.contains(s), "{extra:?}: wanted {s:?} in {stdout}"),
            None => assert!(!stdout.contains("UEFI"), "{extra:?}: {stdout}"),
        }
        std::fs::remove_file(out).unwrap();
    }
    // Other formats need no such step.
    let (_, r) = build_into(&dir, "disk.vhd", &[]);
    assert!(r.status.success());
    assert!(!String::from_utf8_lossy(&r.stdout).contains("UEFI_COMPATIBLE"));
}
