//! A BIOS without INT 13h extensions: stage 1 and stage 2 fall back to CHS
//! reads (AH=02h) with the geometry from AH=08h. The BIOS is SeaBIOS with
//! an option ROM (tests/support/no_edd_rom.rs) that hooks INT 13h and
//! refuses the extension functions, so every read below goes through CHS;
//! the first test shows that the hook is in place when the boot sector
//! runs (without the fallback, stage 1 stopped there with "bootpack: no
//! INT 13h extensions").

#[path = "support/no_edd_rom.rs"]
mod no_edd_rom;
mod support;

use std::path::{Path, PathBuf};
use std::time::Duration;

use bootpack::proto::layout::{PARTITION_START_LBA, SECTOR, STAGE2_LBA};
use bootpack::proto::record::Record;
use support::kernels::{self, Headers, Payload, Shape, Spec};
use support::qemu::{self, Machine, Run};
use support::report::Report;
use support::{blkdebug, bootpack, scratch, Scratch};

const BOOT_TIMEOUT: Duration = Duration::from_secs(90);
/// How long to watch after a failure message (see tests/faults.rs).
const SETTLE: Duration = Duration::from_secs(1);
/// isa-debug-exit: the kernel writes 0x10, QEMU exits (0x10 << 1) | 1.
const KERNEL_EXIT: i32 = 0x21;

/// A machine whose BIOS has no INT 13h extensions: the option ROM, written
/// into `dir`.
fn machine(dir: &Path, machine: &'static str) -> Machine {
    let rom = dir.join("no-edd.rom");
    std::fs::write(&rom, no_edd_rom::rom()).unwrap();
    let mut m = Machine::new(machine, "128M");
    m.extra = vec!["-option-rom".into(), rom.display().to_string()];
    m
}

fn drive(image: &Path) -> Vec<String> {
    vec![
        "-drive".into(),
        format!("file={},format=raw", image.display()),
    ]
}

/// The disk on an IDE (pc) or AHCI (q35) port with QEMU `ide-hd`
/// geometry properties, e.g. "cyls=3,heads=16,secs=63,bios-chs-trans=none"
/// (the BIOS uses the disk's geometry) or "lcyls=2,lheads=255,lsecs=63"
/// (the geometry the BIOS is told to use).
fn drive_with_geometry(image: &Path, geometry: &str) -> Vec<String> {
    vec![
        "-drive".into(),
        format!("file={},format=raw,if=none,id=d0", image.display()),
        "-device".into(),
        format!("ide-hd,drive=d0,{geometry}"),
    ]
}

/// 16 heads, 63 sectors per track and `cylinders`, untranslated.
fn drive_with_cylinders(image: &Path, cylinders: u32) -> Vec<String> {
    drive_with_geometry(
        image,
        &format!("cyls={cylinders},heads=16,secs=63,bios-chs-trans=none"),
    )
}

/// Boots until the kernel exits QEMU and returns its report, checking that
/// the loader printed nothing.
fn boot(disk: &[String], m: &Machine) -> Report {
    let run = qemu::boot_with_disk(disk, m, None, BOOT_TIMEOUT);
    assert_eq!(
        run.exit,
        Some(KERNEL_EXIT),
        "{}: the kernel must run; serial:\n{}",
        m.machine,
        run.serial_text()
    );
    assert!(
        run.serial.starts_with(b"\r\nbootpack demo kernel:"),
        "the loader prints nothing on success; serial:\n{}",
        run.serial_text()
    );
    Report::parse(&run.serial)
}

/// Boots until `line` has been printed and checks it was printed once, on
/// COM1 and on the screen, and that nothing followed: a halt.
fn expect_halt(disk: &[String], m: &Machine, line: &str, marker: &str) -> Run {
    let run = qemu::boot_with_disk(disk, m, Some((marker, SETTLE)), BOOT_TIMEOUT);
    let text = run.serial_text();
    assert!(
        text.contains(&format!("{line}\r\n")),
        "COM1 must carry {line:?}; it has:\n{text}"
    );
    assert_eq!(
        text.matches(line).count(),
        1,
        "once, no reboot loop:\n{text}"
    );
    assert!(!text.contains("BPTK"), "the kernel must not run:\n{text}");
    assert_eq!(run.exit, None, "QEMU must still be running: halted\n{text}");
    let vga = run.vga.clone().unwrap_or_default();
    let head: String = line.chars().take(80).collect();
    assert!(
        vga.lines().any(|l| l.trim_end() == head.trim_end()),
        "the VGA screen must show {head:?}; it shows:\n{vga}"
    );
    run
}

fn stage2_halt(disk: &[String], m: &Machine, message: &str) {
    let line = format!("bootpack: error: {message}");
    expect_halt(disk, m, &line, "bootpack: halted");
}

/// `bootpack build KERNEL -o disk.img [options] -- ARGS` in `dir`.
fn build(dir: &Path, kernel: &[u8], options: &[&str], args: &[&str]) -> PathBuf {
    let k = dir.join("kernel");
    std::fs::write(&k, kernel).unwrap();
    let image = dir.join("disk.img");
    let mut argv: Vec<String> = vec![
        "build".into(),
        k.display().to_string(),
        "-o".into(),
        image.display().to_string(),
    ];
    argv.extend(options.iter().map(|o| o.to_string()));
    argv.push("--".into());
    argv.extend(args.iter().map(|a| a.to_string()));
    let r = bootpack(&argv);
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    image
}

/// The Solo5-shaped test kernel packed with the command line "kernel chs".
fn small_image(test: &str) -> (Scratch, PathBuf) {
    let dir = scratch(test);
    let image = build(
        &dir,
        &kernels::build(Shape::Solo5Elf64, None),
        &[],
        &["chs"],
    );
    (dir, image)
}

/// Absolute LBA of the image's first kernel data sector.
fn first_data_lba(image: &Path) -> u64 {
    let disk = std::fs::read(image).unwrap();
    let rec = Record::parse(&disk[PARTITION_START_LBA as usize * SECTOR as usize..]).unwrap();
    let s = rec.segments().find(|s| s.file_size > 0).unwrap();
    PARTITION_START_LBA as u64 + s.data_sector
}

#[test]
fn the_option_rom_takes_the_extensions_away() {
    // A boot sector that asks AH=41h and says "EDD y" or "EDD n" on COM1:
    // SeaBIOS answers yes; with the option ROM, the answer at boot is no.
    let dir = scratch("chs-probe");
    let image = dir.join("probe.img");
    let mut disk = no_edd_rom::probe_sector();
    disk.resize(1 << 20, 0);
    std::fs::write(&image, disk).unwrap();
    for m in ["pc", "q35"] {
        let plain =
            qemu::boot_with_disk(&drive(&image), &Machine::new(m, "64M"), None, BOOT_TIMEOUT);
        assert_eq!(plain.serial_text(), "EDD y\n", "{m} without the ROM");
        let hooked = qemu::boot_with_disk(&drive(&image), &machine(&dir, m), None, BOOT_TIMEOUT);
        assert_eq!(hooked.serial_text(), "EDD n\n", "{m} with the ROM");
        assert_eq!(hooked.exit, Some(KERNEL_EXIT));
    }
}

#[test]
fn the_demo_image_boots_without_extensions() {
    let dir = scratch("chs-demo");
    let image = dir.join("demo.img");
    let r = bootpack(["demo", "-o", image.to_str().unwrap(), "--", "hello"]);
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    for m in ["pc", "q35"] {
        let report = boot(&drive(&image), &machine(&dir, m));
        assert_eq!(report.cmdline(), b"bootpack-demo hello", "{m}");
    }
}

#[test]
fn a_gpt_image_boots_without_extensions() {
    // Stage 2 reads the protective MBR, the GPT header and its entry
    // array by CHS too.
    let dir = scratch("chs-gpt");
    let image = build(
        &dir,
        &kernels::build(Shape::Solo5Elf64, None),
        &["--table", "gpt"],
        &["chs"],
    );
    for m in ["pc", "q35"] {
        let r = boot(&drive(&image), &machine(&dir, m));
        assert_eq!(r.cmdline(), b"kernel chs", "{m}");
    }
}

#[test]
fn a_multi_mib_kernel_boots_without_extensions() {
    // 6 MiB of payload the kernel hashes itself, and a command line that
    // must arrive byte for byte. The disk has room past the kernel: CHS
    // reaches only the cylinders AH=08h reports, and SeaBIOS keeps the
    // last one back (see a_kernel_beyond_the_chs_limit_is_reported).
    let dir = scratch("chs-big");
    let payload = Payload::random(0x100_0000, 6 << 20, 0xc45);
    let kernel = kernels::build_spec(&Spec {
        payload: Some(&payload),
        ..Spec::new(Shape::Elf32, Headers::Mb1)
    });
    let args = ["a b", "'quoted'", "UTF-8: é 日本語"];
    let image = build(&dir, &kernel, &["--name", "big", "--size", "16M"], &args);
    for m in ["pc", "q35"] {
        let r = boot(&drive(&image), &machine(&dir, m));
        assert_eq!(
            r.cmdline(),
            "big a b 'quoted' UTF-8: é 日本語".as_bytes(),
            "{m}: command line bytes"
        );
        assert_eq!(
            r.get("payload"),
            format!("0x01000000 {} ok", 6 << 20),
            "{m}: payload"
        );
    }
}

#[test]
fn a_kernel_beyond_the_chs_limit_is_reported() {
    // SeaBIOS's AH=08h reports one cylinder less than the disk has (the
    // old "diagnostic cylinder"), so with 3 cylinders of 16 x 63 sectors
    // CHS reaches 2 x 1008 = 0x7E0 sectors: the record at LBA 0x800 is out
    // of reach. With 4 it reaches 0xBD0 sectors: the record is read but
    // the 1 MiB payload after it is not.
    let dir = scratch("chs-limit");
    let payload = Payload::random(0x100_0000, 1 << 20, 0x11);
    let kernel = kernels::build_spec(&Spec {
        payload: Some(&payload),
        ..Spec::new(Shape::Elf32, Headers::Mb1)
    });
    let image = build(&dir, &kernel, &[], &[]);
    for (m, cylinders, lba, limit) in [
        ("pc", 3, "0x800", "0x7E0"),
        ("q35", 3, "0x800", "0x7E0"),
        ("pc", 4, "0xBD0", "0xBD0"),
    ] {
        stage2_halt(
            &drive_with_cylinders(&image, cylinders),
            &machine(&dir, m),
            &format!(
                "the kernel lies beyond what this BIOS can address without INT 13h extensions \
                 (LBA {lba}, CHS limit {limit} sectors)"
            ),
        );
    }
}

#[test]
fn odd_geometries_boot() {
    // Short tracks and few heads make stage 1 cross tracks, heads and a
    // cylinder while it reads stage 2, and stage 2's track-sized reads
    // start and end mid-track; 255 heads is the other extreme. The last
    // case shows the logical geometry is the one in effect: 61 cylinders
    // of 2 x 17 sectors, one withheld, end at 0x7F8, before the record.
    let (dir, image) = small_image("chs-geometry");
    for (m, geometry) in [
        ("pc", "cyls=121,heads=2,secs=17,bios-chs-trans=none"),
        ("q35", "lcyls=130,lheads=2,lsecs=17"),
        ("pc", "lcyls=2,lheads=255,lsecs=63"),
    ] {
        let r = boot(&drive_with_geometry(&image, geometry), &machine(&dir, m));
        assert_eq!(r.cmdline(), b"kernel chs", "{m} {geometry}");
    }
    stage2_halt(
        &drive_with_geometry(&image, "lcyls=61,lheads=2,lsecs=17"),
        &machine(&dir, "q35"),
        "the kernel lies beyond what this BIOS can address without INT 13h extensions \
         (LBA 0x800, CHS limit 0x7F8 sectors)",
    );
}

// ---- reads that fail (QEMU blkdebug, as in tests/faults.rs) ----

#[test]
fn a_chs_read_that_fails_once_is_retried() {
    // Stage 1 (a sector inside stage 2), the record and the first kernel
    // sector: each read fails once and must be retried after a reset.
    let (dir, image) = small_image("chs-once");
    let m = machine(&dir, "pc");
    for lba in [
        STAGE2_LBA as u64 + 1,
        PARTITION_START_LBA as u64,
        first_data_lba(&image),
    ] {
        let r = boot(&blkdebug::ide_drive(&dir, &image, lba, true), &m);
        assert_eq!(r.cmdline(), b"kernel chs", "LBA {lba} failing once");
    }
}

#[test]
fn a_chs_read_that_always_fails_is_reported() {
    let (dir, image) = small_image("chs-always");
    let m = machine(&dir, "pc");
    // Stage 1 has its one line for it.
    let line = "bootpack: stage 2 read failed";
    expect_halt(
        &blkdebug::ide_drive(&dir, &image, STAGE2_LBA as u64 + 1, false),
        &m,
        line,
        line,
    );
    // Stage 2 names the read that failed; SeaBIOS's ATA driver answers a
    // failed read with status 0x0C (DISK_RET_EBADTRACK) for CHS reads too.
    for lba in [PARTITION_START_LBA as u64, first_data_lba(&image)] {
        stage2_halt(
            &blkdebug::ide_drive(&dir, &image, lba, false),
            &m,
            &format!("BIOS disk read failed (drive 0x80, LBA {lba:#X}, status 0x0C)")
                .replace("0X", "0x"),
        );
    }
}
