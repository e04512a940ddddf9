//! Boot tests: pack the test kernel with `bootpack build`, boot the image in
//! QEMU (TCG), and compare what the kernel reports having received with what
//! was packed. QEMU is required: without it these tests fail, saying so.

mod support;

use std::path::{Path, PathBuf};
use std::time::Duration;

use bootpack_proto::layout::{PARTITION_START_LBA, SECTOR};
use bootpack_proto::record::Record;
use support::kernels::{self, Payload, Shape};
use support::qemu::{self, Machine};
use support::report::{MmapEntry, Report};
use support::{bootpack, scratch};

const BOOT_TIMEOUT: Duration = Duration::from_secs(60);
/// isa-debug-exit: the kernel writes 0x10, QEMU exits (0x10 << 1) | 1.
const KERNEL_EXIT: i32 = 0x21;
const MIB: u64 = 1 << 20;

/// A packed image and what went into it.
struct Packed {
    dir: support::Scratch,
    kernel: PathBuf,
    image: PathBuf,
    cmdline: Vec<u8>,
    /// Physical ranges the kernel (and its payload) occupy.
    occupied: Vec<(u64, u64)>,
}

fn pack(
    test: &str,
    shape: Shape,
    payload: Option<&Payload>,
    name: Option<&str>,
    args: &[&str],
) -> Packed {
    let dir = scratch(test);
    let kernel = dir.join(format!("{shape:?}-kernel").to_lowercase());
    std::fs::write(&kernel, kernels::build(shape, payload)).unwrap();
    let image = dir.join("disk.img");
    let mut argv: Vec<String> = vec![
        "build".into(),
        kernel.display().to_string(),
        "-o".into(),
        image.display().to_string(),
    ];
    if let Some(n) = name {
        argv.extend(["--name".to_string(), n.to_string()]);
    }
    if !args.is_empty() {
        argv.push("--".into());
        argv.extend(args.iter().map(|a| a.to_string()));
    }
    let r = bootpack(&argv);
    assert!(
        r.status.success(),
        "bootpack build failed: {}",
        String::from_utf8_lossy(&r.stderr)
    );
    let name = name
        .map(str::to_string)
        .unwrap_or_else(|| kernel.file_name().unwrap().to_string_lossy().into_owned());
    let cmdline = std::iter::once(name.as_str())
        .filter(|n| !n.is_empty())
        .chain(args.iter().copied())
        .collect::<Vec<_>>()
        .join(" ");
    let img = kernels::loaded_image(payload);
    let mut occupied = vec![(img.dest, img.dest + img.mem_size)];
    if let Some(p) = payload {
        occupied.push((p.addr, p.addr + p.data.len() as u64));
    }
    Packed {
        dir,
        kernel,
        image,
        cmdline: cmdline.into_bytes(),
        occupied,
    }
}

fn boot(p: &Packed, m: &Machine) -> Report {
    let run = qemu::boot_image(&p.image, m, BOOT_TIMEOUT);
    let report = Report::parse(&run.serial);
    assert_eq!(
        run.exit,
        Some(KERNEL_EXIT),
        "QEMU exit status; serial:\n{}",
        run.serial_text()
    );
    // The loader prints nothing on success: the kernel's output (which
    // starts with a line break) is the first thing on the serial port.
    assert!(
        run.serial.starts_with(b"\r\nbootpack demo kernel:"),
        "serial starts with the kernel's output:\n{}",
        run.serial_text()
    );
    report
}

/// Everything Multiboot 1 promises at entry, checked against what was packed.
fn assert_handoff(r: &Report, p: &Packed) {
    assert_eq!(r.num("magic"), 0x2BAD_B002, "EAX");
    let flags = r.num("flags");
    assert_eq!(
        flags & 0x247,
        0x247,
        "flags {flags:#x}: memory, boot device, cmdline, mmap, loader name"
    );
    assert_eq!(r.cmdline(), p.cmdline, "command line bytes");
    assert_eq!(r.num("cmdline_len"), p.cmdline.len() as u64);
    assert_eq!(
        r.get("loader_name"),
        format!("bootpack {}", env!("CARGO_PKG_VERSION"))
    );
    assert_eq!(
        r.num("boot_device"),
        0x8000_FFFF,
        "first hard disk, first partition"
    );

    // CPU state: protected mode, paging off, interrupts off, flat segments, A20.
    let eflags = r.num("eflags");
    assert_eq!(eflags & (1 << 9), 0, "IF must be clear: eflags {eflags:#x}");
    let cr0 = r.num("cr0");
    assert_eq!(cr0 & 1, 1, "CR0.PE: {cr0:#x}");
    assert_eq!(cr0 & (1 << 31), 0, "CR0.PG: {cr0:#x}");
    assert!(
        r.gdt["cs"].contains("base=0x00000000 limit=0xffffffff code32"),
        "cs: {}",
        r.gdt["cs"]
    );
    for seg in ["ds", "es", "ss"] {
        assert!(
            r.gdt[seg].contains("base=0x00000000 limit=0xffffffff data"),
            "{seg}: {}",
            r.gdt[seg]
        );
    }
    assert_eq!(r.get("a20"), "on");
    assert_eq!(r.get("bss"), "zero", "the loader zeroes the bss");

    // The memory map: well-formed, with the entry Solo5 needs, and
    // mem_lower / mem_upper consistent with it.
    assert!(!r.mmap.is_empty());
    assert_eq!(r.num("mmap_length"), 24 * r.mmap.len() as u64);
    assert!(r.mmap.iter().all(|e| e.size == 20));
    let at_1m = r
        .mmap
        .iter()
        .find(|e| e.base == MIB && e.kind == 1)
        .expect("a usable entry starting at exactly 1 MiB");
    assert_eq!(
        r.num("mem_upper"),
        ((at_1m.base + at_1m.len).min(1 << 32) - MIB) / 1024
    );
    let at_0 = r
        .mmap
        .iter()
        .find(|e| e.base == 0 && e.kind == 1)
        .expect("a usable entry at 0");
    assert_eq!(r.num("mem_lower"), at_0.len.min(640 * 1024) / 1024);

    // Every part of the information: out of page 0, below 1 MiB, clear of
    // what the kernel loads.
    let parts = [
        ("info", r.num("info"), 0x58),
        ("cmdline", r.num("cmdline_addr"), p.cmdline.len() as u64 + 1),
        ("mmap", r.num("mmap_addr"), r.num("mmap_length")),
        (
            "loader_name",
            r.num("loader_name_addr"),
            r.get("loader_name").len() as u64 + 1,
        ),
    ];
    for (what, start, len) in parts {
        let end = start + len;
        assert!(
            start >= 0x1000 && end <= MIB,
            "{what} at {start:#x}..{end:#x} must lie in 0x1000..0x100000"
        );
        for &(a, b) in &p.occupied {
            assert!(
                end <= a || start >= b,
                "{what} at {start:#x}..{end:#x} overlaps the kernel at {a:#x}..{b:#x}"
            );
        }
    }
}

fn boot_and_check(p: &Packed, m: &Machine) -> Report {
    let r = boot(p, m);
    assert_handoff(&r, p);
    r
}

fn shape_boots_on_pc_and_q35(shape: Shape) {
    let p = pack(
        &format!("{shape:?}"),
        shape,
        None,
        None,
        &["hello", "world"],
    );
    for machine in ["pc", "q35"] {
        let r = boot_and_check(&p, &Machine::new(machine, "128M"));
        assert_eq!(r.get("payload"), "none");
    }
}

#[test]
fn solo5_shaped_elf64_kernel_boots() {
    shape_boots_on_pc_and_q35(Shape::Solo5Elf64);
}

#[test]
fn elf32_kernel_boots() {
    shape_boots_on_pc_and_q35(Shape::Elf32);
}

#[test]
fn flat_kludge_kernel_boots() {
    shape_boots_on_pc_and_q35(Shape::Flat);
}

#[test]
fn command_lines_arrive_byte_for_byte() {
    let long = "0123456789abcdef".repeat(500); // 8000 bytes
    let cases: [(Option<&str>, Vec<&str>, usize); 4] = [
        (Some(""), vec![], 0),
        (Some(""), vec!["x"], 1),
        (Some(""), vec![long.as_str()], 8000),
        (
            None,
            vec![
                "a b",
                "\"double\"",
                "'single'",
                "tab\there",
                "UTF-8: é ü 日本語 🦀",
            ],
            0,
        ),
    ];
    for (i, (name, args, len)) in cases.iter().enumerate() {
        let p = pack(&format!("cmdline{i}"), Shape::Solo5Elf64, None, *name, args);
        if *len > 0 || name.is_some() {
            assert_eq!(p.cmdline.len(), *len);
        }
        boot_and_check(&p, &Machine::new("pc", "64M"));
    }
}

#[test]
fn memory_sizes_and_the_bios_map_passed_through() {
    let p = pack("memory", Shape::Flat, None, None, &["m"]);
    for mem in ["32M", "256M", "3G"] {
        let m = Machine::new("pc", mem);
        let ours = boot_and_check(&p, &m);
        // QEMU's own Multiboot loader collects the map from the same BIOS
        // with INT 15h E820; bootpack must hand over exactly that.
        let theirs = qemu::boot_kernel(&p.kernel, "ref m", &m, BOOT_TIMEOUT);
        let theirs = Report::parse(&theirs.serial);
        assert_eq!(ours.mmap, theirs.mmap, "E820 map with {mem} of RAM");
        let usable: u64 = ours
            .mmap
            .iter()
            .filter(|e: &&MmapEntry| e.kind == 1)
            .map(|e| e.len)
            .sum();
        let ram = parse_size(mem);
        assert!(
            usable > ram - 2 * MIB && usable <= ram,
            "usable {usable:#x} for {mem}"
        );
    }
}

fn parse_size(s: &str) -> u64 {
    let (n, unit) = s.split_at(s.len() - 1);
    n.parse::<u64>().unwrap() * if unit == "G" { 1 << 30 } else { MIB }
}

#[test]
fn a_64_mib_kernel_loads_and_verifies() {
    let payload = Payload::random(0x100_0000, 64 << 20, 0x5eed);
    let p = pack("big", Shape::Elf32, Some(&payload), None, &[]);
    assert!(std::fs::metadata(&p.kernel).unwrap().len() >= 64 << 20);
    for machine in ["pc", "q35"] {
        let r = boot_and_check(&p, &Machine::new(machine, "256M"));
        assert_eq!(r.get("payload"), format!("0x01000000 {} ok", 64 << 20));
    }
}

/// The kernel partition's record, read back from the image.
fn record_of(image: &Path) -> (Vec<u8>, u64) {
    let disk = std::fs::read(image).unwrap();
    let at = (PARTITION_START_LBA as u64 * SECTOR) as usize;
    let rec = Record::parse(&disk[at..]).expect("the image has a valid record");
    let first = rec.segments().find(|s| s.file_size > 0).unwrap();
    (disk.clone(), at as u64 + first.data_sector * SECTOR)
}

/// Boots an image that must stop at a bootpack error; returns the run.
fn boot_expecting_halt(image: &Path, message: &str) -> qemu::Run {
    let run = qemu::boot_until(
        image,
        &Machine::new("pc", "64M"),
        "bootpack: halted",
        Duration::from_secs(1),
        BOOT_TIMEOUT,
    );
    let text = run.serial_text();
    assert!(
        text.contains(message),
        "serial must say {message:?}:\n{text}"
    );
    assert!(text.contains("bootpack: halted"), "{text}");
    assert!(!text.contains("BPTK"), "the kernel must not run:\n{text}");
    assert_eq!(
        run.exit, None,
        "QEMU must still be running (halted, not rebooting)"
    );
    let vga = run.vga.as_deref().unwrap_or_default();
    assert!(
        vga.contains(message),
        "VGA screen must say {message:?}:\n{vga}"
    );
    run
}

#[test]
fn damaged_payload_is_reported_not_entered() {
    let p = pack("damaged", Shape::Solo5Elf64, None, None, &[]);
    let (mut disk, data_at) = record_of(&p.image);
    disk[data_at as usize + 100] ^= 0x01;
    let bad = p.dir.join("damaged.img");
    std::fs::write(&bad, &disk).unwrap();
    boot_expecting_halt(&bad, "checksum mismatch");
}

#[test]
fn disk_read_error_is_reported() {
    // Cut the image inside the kernel data: the partition table still
    // promises those sectors, the BIOS fails to read them.
    let p = pack("short", Shape::Solo5Elf64, None, None, &[]);
    let (_, data_at) = record_of(&p.image);
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(&p.image)
        .unwrap();
    f.set_len(data_at + SECTOR).unwrap();
    boot_expecting_halt(&p.image, "disk read failed");
}

#[test]
fn the_demo_image_boots() {
    let dir = scratch("demo");
    let image = dir.join("demo.img");
    let r = bootpack(["demo", "-o", image.to_str().unwrap(), "--", "hello"]);
    let stdout = String::from_utf8_lossy(&r.stdout);
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    assert!(
        stdout.contains("qemu-system-x86_64") && stdout.contains(image.to_str().unwrap()),
        "{stdout}"
    );
    let run = qemu::boot_image(&image, &Machine::new("pc", "64M"), BOOT_TIMEOUT);
    let report = Report::parse(&run.serial);
    assert_eq!(report.cmdline(), b"bootpack-demo hello");
}
