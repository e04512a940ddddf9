//! Boot tests: pack the test kernel with `bootpack build`, boot the image in
//! QEMU (TCG), and compare what the kernel reports having received with what
//! was packed. QEMU is required: without it these tests fail, saying so.

mod support;

use std::path::{Path, PathBuf};
use std::time::Duration;

use bootpack::proto::layout::{PARTITION_START_LBA, SECTOR};
use bootpack::proto::mb2_header;
use bootpack::proto::record::Record;
use support::kernels::{self, Headers, Payload, Shape, Spec};
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
    // Multiboot 1 only, as Solo5 kernels are.
    let spec = Spec {
        payload,
        ..Spec::new(shape, Headers::Mb1)
    };
    std::fs::write(&kernel, kernels::build_spec(&spec)).unwrap();
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
    let img = kernels::loaded_image(payload, None);
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
    assert_handoff1(r, &p.cmdline, &p.occupied);
}

fn assert_handoff1(r: &Report, cmdline: &[u8], occupied: &[(u64, u64)]) {
    assert_eq!(r.num("magic"), 0x2BAD_B002, "EAX");
    let flags = r.num("flags");
    assert_eq!(
        flags & 0x247,
        0x247,
        "flags {flags:#x}: memory, boot device, cmdline, mmap, loader name"
    );
    assert_eq!(r.cmdline(), cmdline, "command line bytes");
    assert_eq!(r.num("cmdline_len"), cmdline.len() as u64);
    assert_eq!(
        r.get("loader_name"),
        format!("bootpack {}", env!("CARGO_PKG_VERSION"))
    );
    assert_eq!(
        r.num("boot_device"),
        0x8000_FFFF,
        "first hard disk, first partition"
    );
    assert_cpu_state(r);

    // The memory map: well-formed, with the entry Solo5 needs, and
    // mem_lower / mem_upper consistent with it.
    assert!(r.mmap.iter().all(|e| e.size == 20));
    assert_memory(r);

    // Every part of the information: out of page 0, below 1 MiB, clear of
    // what the kernel loads.
    let parts = [
        (
            "info",
            r.num("info"),
            bootpack::proto::mb1_info::INFO_LEN as u64,
        ),
        ("cmdline", r.num("cmdline_addr"), cmdline.len() as u64 + 1),
        ("mmap", r.num("mmap_addr"), r.num("mmap_length")),
        (
            "loader_name",
            r.num("loader_name_addr"),
            r.get("loader_name").len() as u64 + 1,
        ),
        ("mods", r.num("mods_addr"), 16 * r.num("mods_count")),
    ];
    assert_info_placement(&parts, occupied);
}

/// CPU state: protected mode, paging off, interrupts off, flat segments, A20,
/// and the entry state kernels in the wild rely on (README, "What the
/// kernel gets"): QEMU -kernel's selectors, clean EFLAGS, CR4 and EFER,
/// caching on.
fn assert_cpu_state(r: &Report) {
    assert_eq!(
        r.get("eflags"),
        "0x00000002",
        "EFLAGS: only the reserved bit (IF, DF, NT, AC, IOPL clear)"
    );
    let cr0 = r.num("cr0");
    assert_eq!(cr0 & 0x11, 0x11, "CR0.PE and ET: {cr0:#x}");
    assert_eq!(cr0 & 0xE000_0000, 0, "CR0.PG, CD, NW clear: {cr0:#x}");
    assert_eq!(r.get("cr4"), "0x00000000", "CR4");
    assert_eq!(r.get("efer"), "0x00000000", "EFER");
    assert_eq!(
        r.get("selectors"),
        "cs=0x0008 ds=0x0010 es=0x0010 fs=0x0010 gs=0x0010 ss=0x0010"
    );
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
}

/// The memory map: well-formed, with the entry Solo5 needs, and mem_lower /
/// mem_upper consistent with it (mem_upper stops at the first hole above
/// 1 MiB, and at 4 GiB at most).
fn assert_memory(r: &Report) {
    assert!(!r.mmap.is_empty());
    assert_eq!(r.num("mmap_length"), 24 * r.mmap.len() as u64);
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
}

/// Each (what, start, len): out of page 0, below 1 MiB, clear of what the
/// kernel loads.
fn assert_info_placement(parts: &[(&str, u64, u64)], occupied: &[(u64, u64)]) {
    for &(what, start, len) in parts {
        let end = start + len;
        assert!(
            start >= 0x1000 && end <= MIB,
            "{what} at {start:#x}..{end:#x} must lie in 0x1000..0x100000"
        );
        for &(a, b) in occupied {
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

// Modules, Multiboot 2, memory above 4 GiB and ELF layouts. These pack
// through the library (`bootpack::Build`), which the CLI's `--module` and
// `--protocol` flags map onto.

/// A module to pack: its bytes and string.
struct Mod {
    data: Vec<u8>,
    string: String,
}

fn module(len: usize, seed: u64, string: &str) -> Mod {
    Mod {
        data: kernels::random_bytes(len, seed),
        string: string.to_string(),
    }
}

/// Eight modules: odd sizes, an empty one, one of 32 MiB, strings with
/// spaces and none.
fn eight_modules() -> Vec<Mod> {
    vec![
        module(5000, 1, "initrd root=/dev/ram0 quiet"),
        module(32 << 20, 2, "big.bin"),
        module(0, 3, "empty"),
        module(1, 4, ""),
        module(4096, 5, "exactly one page"),
        module(4097, 6, "one page and a byte"),
        module(123_457, 7, "dom0 console=com1"),
        module(77, 8, "last"),
    ]
}

/// An image packed through the library and what went into it.
struct Packed2 {
    packed: Packed,
    /// The kernel file.
    file: Vec<u8>,
    modules: Vec<Mod>,
    protocol: bootpack::Protocol,
    kernel_end: u64,
    load_base: u64,
}

fn pack2(
    test: &str,
    spec: &Spec,
    modules: Vec<Mod>,
    protocol: Option<bootpack::Protocol>,
    args: &[&str],
) -> Packed2 {
    let dir = scratch(test);
    let kernel = dir.join("kernel");
    let file = kernels::build_spec(spec);
    std::fs::write(&kernel, &file).unwrap();
    let image = dir.join("disk.img");
    let mut b = bootpack::Build::new(&kernel).args(args);
    for (i, m) in modules.iter().enumerate() {
        let path = dir.join(format!("module{i}"));
        std::fs::write(&path, &m.data).unwrap();
        b = b.module(path, &m.string);
    }
    if let Some(p) = protocol {
        b = b.protocol(p);
    }
    let report = b
        .write(&image)
        .unwrap_or_else(|e| panic!("packing failed: {e}"));
    let plan = report.plan;
    let occupied: Vec<(u64, u64)> = plan.segments.iter().map(|s| (s.dest, s.end())).collect();
    Packed2 {
        kernel_end: occupied.iter().map(|o| o.1).max().unwrap(),
        load_base: plan.load_base as u64,
        protocol: plan.protocol,
        packed: Packed {
            dir,
            kernel,
            image,
            cmdline: report.cmdline,
            occupied,
        },
        file,
        modules,
    }
}

/// Boots and checks the handoff of the packed protocol and the modules.
fn boot2(p: &Packed2, m: &Machine) -> Report {
    let r = boot(&p.packed, m);
    match p.protocol {
        bootpack::Protocol::Multiboot1 => {
            assert_handoff1(&r, &p.packed.cmdline, &p.packed.occupied)
        }
        bootpack::Protocol::Multiboot2 => assert_handoff2(&r, p),
    }
    assert_modules(&r, p);
    r
}

/// Every module: its bytes (hash) and string as packed, in order,
/// page-aligned, above the kernel, not overlapping, in usable RAM below
/// 4 GiB.
fn assert_modules(r: &Report, p: &Packed2) {
    assert_eq!(r.num("mods_count"), p.modules.len() as u64, "mods_count");
    assert_eq!(r.mods.len(), p.modules.len(), "mod lines");
    let mut floor = p.kernel_end.div_ceil(4096) * 4096;
    for (i, (got, m)) in r.mods.iter().zip(&p.modules).enumerate() {
        assert_eq!(got.end - got.start, m.data.len() as u64, "module {i} size");
        assert_eq!(got.hash, kernels::bytes_hash(&m.data), "module {i} bytes");
        assert_eq!(got.string, m.string, "module {i} string");
        assert_eq!(got.start % 4096, 0, "module {i} page-aligned: {got:?}");
        assert!(
            got.start >= floor,
            "module {i} at {:#x} must lie above {floor:#x} (kernel end / previous module)",
            got.start
        );
        assert!(got.end <= 1 << 32, "module {i} below 4 GiB");
        assert!(
            r.mmap.iter().any(|e| e.kind == 1
                && e.base <= got.start
                && got.end.max(got.start + 1) <= e.base + e.len),
            "module {i} at {:#x}..{:#x} must lie in usable RAM",
            got.start,
            got.end
        );
        floor = got.end;
    }
}

/// Everything Multiboot 2 promises at entry, checked against what was
/// packed.
fn assert_handoff2(r: &Report, p: &Packed2) {
    assert_eq!(r.num("magic"), 0x36D7_6289, "EAX");
    let info = r.num("info");
    assert_eq!(info % 8, 0, "information block 8-byte aligned: {info:#x}");
    assert_eq!(r.num("mbi2_reserved"), 0);
    // Tags follow each other, each 8-byte aligned, up to the end tag.
    let mut at = info + 8;
    for t in &r.tags {
        assert_eq!(t.addr, at, "tag {t:?} where the previous one ends");
        at = (t.addr + t.size + 7) & !7;
    }
    let last = r.tags.last().expect("tags");
    assert_eq!((last.ty, last.size), (0, 8), "end tag last");
    let size = r.num("mbi2_size");
    assert_eq!(size, last.addr + 8 - info, "total_size");
    let types: Vec<u32> = r.tags.iter().map(|t| t.ty).collect();
    for (ty, what) in [
        (1, "command line"),
        (2, "boot loader name"),
        (4, "basic memory information"),
        (5, "BIOS boot device"),
        (6, "memory map"),
        (21, "load base address"),
    ] {
        assert_eq!(
            types.iter().filter(|&&t| t == ty).count(),
            1,
            "one {what} tag (type {ty}): {types:?}"
        );
    }
    assert_eq!(
        types.iter().filter(|&&t| t == 3).count(),
        p.modules.len(),
        "one module tag per module"
    );

    assert_eq!(r.cmdline(), p.packed.cmdline, "command line bytes");
    assert_eq!(
        r.get("loader_name"),
        format!("bootpack {}", env!("CARGO_PKG_VERSION"))
    );
    assert_eq!(
        r.get("bootdev"),
        "0x00000080 0x00000000 0xffffffff",
        "first hard disk, first partition, no sub-partition"
    );
    assert_eq!(r.num("load_base"), p.load_base, "load base address");
    assert_eq!(r.num("mmap_entry_size"), 24);
    assert_eq!(r.num("mmap_entry_version"), 0);
    assert!(r.mmap.iter().all(|e| e.size == 24));
    assert_memory(r);

    // ACPI: QEMU's BIOS has an RSDP; the tag carries a valid copy.
    let acpi = r.get("acpi");
    let (ty, hex) = acpi.split_once(' ').unwrap();
    let rsdp = support::report::unhex(hex);
    assert_eq!(&rsdp[..8], b"RSD PTR ", "RSDP signature");
    let sum = |b: &[u8]| b.iter().fold(0u8, |a, &x| a.wrapping_add(x));
    assert_eq!(sum(&rsdp[..20]), 0, "RSDP checksum");
    match ty {
        "14" => assert_eq!(rsdp.len(), 20),
        "15" => assert_eq!(sum(&rsdp), 0, "extended checksum"),
        _ => panic!("acpi tag type {ty}"),
    }

    // ELF section headers: exactly the file's, for ELF kernels with some.
    match kernels::section_headers(&p.file).filter(|_| p.file.starts_with(b"\x7fELF")) {
        Some((num, entsize, shndx, bytes)) => assert_eq!(
            r.get("elf_sections"),
            format!(
                "{num} {entsize} {shndx} 0x{:016x}",
                kernels::bytes_hash(&bytes)
            )
        ),
        None => assert!(!types.contains(&9), "no ELF sections tag: {types:?}"),
    }
    assert_cpu_state(r);
    assert_info_placement(&[("information block", info, size)], &p.packed.occupied);
}

/// 0, 1 and 8 modules (the eight on q35, whose AHCI disk reads the 32 MiB
/// one fast) under `protocol`.
fn modules_arrive(headers: Headers, protocol: bootpack::Protocol, tag: &str) {
    let spec = Spec::new(Shape::Solo5Elf64, headers);
    for (i, (mods, machine)) in [
        (vec![], "pc"),
        (vec![module(5000, 9, "initrd root=/dev/ram0")], "pc"),
        (eight_modules(), "q35"),
    ]
    .into_iter()
    .enumerate()
    {
        let p = pack2(&format!("{tag}-{i}"), &spec, mods, None, &["a"]);
        assert_eq!(p.protocol, protocol);
        let r = boot2(&p, &Machine::new(machine, "128M"));
        if protocol == bootpack::Protocol::Multiboot1 {
            assert_ne!(r.num("flags") & 1 << 3, 0, "mods flag");
        }
    }
}

#[test]
fn modules_arrive_with_multiboot1() {
    modules_arrive(Headers::Mb1, bootpack::Protocol::Multiboot1, "mods1");
}

#[test]
fn modules_arrive_with_multiboot2() {
    modules_arrive(Headers::Mb2, bootpack::Protocol::Multiboot2, "mods2");
}

#[test]
fn multiboot2_every_shape() {
    for shape in [Shape::Solo5Elf64, Shape::Flat, Shape::Elf32, Shape::Elf64] {
        let mut spec = Spec::new(shape, Headers::Mb2);
        if matches!(shape, Shape::Elf32 | Shape::Elf64) {
            spec.debug_section = Some(64 << 10);
        }
        let p = pack2(
            &format!("mb2-{shape:?}"),
            &spec,
            vec![module(3000, 11, "m")],
            None,
            &["x", "y z"],
        );
        assert_eq!(p.protocol, bootpack::Protocol::Multiboot2);
        let r = boot2(&p, &Machine::new("pc", "128M"));
        assert_eq!(r.get("payload"), "none");
        if spec.debug_section.is_some() {
            assert!(r.fields.contains_key("elf_sections"), "{shape:?}");
        }
    }
}

#[test]
fn both_headers_boot_multiboot2_by_default_and_multiboot1_on_request() {
    let both = Spec::new(Shape::Solo5Elf64, Headers::Both);
    let p = pack2("both-default", &both, vec![], None, &["d"]);
    assert_eq!(p.protocol, bootpack::Protocol::Multiboot2);
    let r = boot2(&p, &Machine::new("pc", "64M"));
    assert_eq!(r.num("magic"), 0x36D7_6289);
    let p = pack2(
        "both-mb1",
        &both,
        vec![module(10, 1, "s")],
        Some(bootpack::Protocol::Multiboot1),
        &["d"],
    );
    assert_eq!(p.protocol, bootpack::Protocol::Multiboot1);
    let r = boot2(&p, &Machine::new("pc", "64M"));
    assert_eq!(r.num("magic"), 0x2BAD_B002);
    let p = pack2(
        "both-mb2",
        &both,
        vec![],
        Some(bootpack::Protocol::Multiboot2),
        &[],
    );
    assert_eq!(p.protocol, bootpack::Protocol::Multiboot2);

    // Asking for a protocol the kernel has no header for is a pack-time
    // error naming the file.
    let dir = scratch("protocol-missing");
    for (headers, protocol, needle) in [
        (
            Headers::Mb1,
            bootpack::Protocol::Multiboot2,
            "no Multiboot 2 header",
        ),
        (
            Headers::Mb2,
            bootpack::Protocol::Multiboot1,
            "no Multiboot 1 header",
        ),
    ] {
        let kernel = dir.join(format!("{headers:?}"));
        std::fs::write(
            &kernel,
            kernels::build_spec(&Spec::new(Shape::Flat, headers)),
        )
        .unwrap();
        let out = dir.join("x.img");
        let e = bootpack::Build::new(&kernel)
            .protocol(protocol)
            .write(&out)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains(needle) && e.contains(kernel.to_str().unwrap()),
            "{e}"
        );
        assert!(!out.exists());
    }
}

#[test]
fn six_gib_map_reaches_above_4g_for_both_protocols() {
    let both = Spec::new(Shape::Flat, Headers::Both);
    let m = Machine::new("pc", "6G");
    for protocol in [
        bootpack::Protocol::Multiboot1,
        bootpack::Protocol::Multiboot2,
    ] {
        let p = pack2(
            &format!("6g-{protocol:?}"),
            &both,
            vec![module(70_000, 21, "six")],
            Some(protocol),
            &["m"],
        );
        let r = boot2(&p, &m);
        let high = r
            .mmap
            .iter()
            .find(|e| e.base >= 1 << 32 && e.kind == 1)
            .expect("a usable entry above 4 GiB");
        assert!(high.len >= 2 << 30, "RAM above 4 GiB: {high:?}");
        // mem_upper: from 1 MiB to the first hole (3 GiB on pc), never
        // counting memory above 4 GiB.
        let at_1m = r.mmap.iter().find(|e| e.base == MIB).unwrap();
        assert!(at_1m.base + at_1m.len < 1 << 32);
        assert_eq!(r.num("mem_upper"), (at_1m.base + at_1m.len - MIB) / 1024);
        // The same map QEMU's own Multiboot loader gets from the BIOS.
        let theirs = qemu::boot_kernel(&p.packed.kernel, "ref m", &m, BOOT_TIMEOUT);
        let theirs = Report::parse(&theirs.serial);
        let strip = |v: &[MmapEntry]| {
            v.iter()
                .map(|e| (e.base, e.len, e.kind))
                .collect::<Vec<_>>()
        };
        assert_eq!(strip(&r.mmap), strip(&theirs.mmap), "E820 map with 6 GiB");
    }
}

#[test]
fn elf_kernels_high_sparse_with_a_large_bss() {
    let bss = (0x1100_0000, 256 << 20); // 272 MiB..528 MiB
    for (shape, headers, payload_at) in [
        (Shape::Elf32, Headers::Mb1, 0x100_0000),  // 16 MiB
        (Shape::Elf64, Headers::Mb2, 0x1000_0000), // 256 MiB
        (Shape::Elf64, Headers::Mb1, 0x100_0000),
        (Shape::Elf32, Headers::Mb2, 0x1000_0000),
    ] {
        let payload = Payload::random(payload_at, 1 << 20, payload_at);
        let spec = Spec {
            payload: Some(&payload),
            bss: Some(bss),
            debug_section: Some(1 << 20),
            ..Spec::new(shape, headers)
        };
        let p = pack2(
            &format!("elf-{shape:?}-{headers:?}"),
            &spec,
            vec![module(4 << 20, 31, "after the bss")],
            None,
            &[],
        );
        assert_eq!(p.kernel_end, bss.0 + bss.1);
        // Only loaded bytes are packed: no trace of the debug section.
        let disk = std::fs::read(&p.packed.image).unwrap();
        assert!(
            !disk
                .windows(kernels::DEBUG_MARKER.len())
                .any(|w| w == kernels::DEBUG_MARKER),
            "the debug section must not be in the image"
        );
        let r = boot2(&p, &Machine::new("q35", "1G"));
        assert_eq!(
            r.get("payload"),
            format!("0x{payload_at:08x} {} ok", 1 << 20)
        );
        assert_eq!(r.get("zero"), format!("0x{:08x} {} zero", bss.0, bss.1));
    }
}

#[test]
fn modules_that_do_not_fit_halt_with_a_message() {
    let p = pack2(
        "nofit",
        &Spec::new(Shape::Flat, Headers::Mb2),
        vec![
            module(10, 1, "small"),
            Mod {
                data: vec![0; 80 << 20],
                string: "too big".into(),
            },
        ],
        None,
        &[],
    );
    boot_expecting_halt(&p.packed.image, "module 2 (0x5000000 bytes) does not fit");
}

#[test]
fn damaged_module_is_reported_not_entered() {
    let p = pack2(
        "damaged-module",
        &Spec::new(Shape::Flat, Headers::Mb1),
        vec![module(10_000, 1, "a"), module(10_000, 2, "b")],
        None,
        &[],
    );
    let mut disk = std::fs::read(&p.packed.image).unwrap();
    let at = (PARTITION_START_LBA as u64 * SECTOR) as usize;
    let rec = Record::parse(&disk[at..]).unwrap();
    let m = rec.module(1);
    let data_at = at + (m.data_sector * SECTOR) as usize;
    assert_eq!(&disk[data_at..data_at + 10_000], &p.modules[1].data[..]);
    disk[data_at + 5000] ^= 0x40;
    let bad = p.packed.dir.join("damaged.img");
    std::fs::write(&bad, &disk).unwrap();
    boot_expecting_halt(&bad, "module 2 checksum mismatch");
}

/// An ELF32 kernel whose only segment starts with a Multiboot 2 header
/// with these tags (file offset 0x1000).
fn mb2_elf(tags: &[(u16, u16, &[u8])]) -> Vec<u8> {
    let mut d = vec![0x90u8; 0x400];
    mb2_header::write(&mut d, 0, tags);
    support::elf::write(
        false,
        0x100000,
        &[support::elf::Seg::load(0x100000, d, 0x400)],
    )
}

fn words(w: &[u32]) -> Vec<u8> {
    w.iter().flat_map(|x| x.to_le_bytes()).collect()
}

#[test]
fn multiboot2_header_errors_at_pack_time() {
    let fb = words(&[1024, 768, 32]);
    let req = words(&[1, 6, 8]);
    let addr = words(&[0x100000, 0x100000, 0, 0]);
    let mut bad_sum = mb2_elf(&[]);
    bad_sum[0x100c] ^= 1;
    let cases: Vec<(&str, Vec<u8>, Vec<&str>)> = vec![
        (
            "framebuffer",
            mb2_elf(&[(5, 0, &fb[..8])]),
            vec![
                "framebuffer tag (type 5)",
                "offset 0x1010",
                "invalid size 16",
            ],
        ),
        (
            "unknown",
            mb2_elf(&[(6, 0, &[]), (77, 0, &[1, 2, 3, 4])]),
            vec!["unknown tag (type 77)", "offset 0x1018"],
        ),
        (
            "request",
            mb2_elf(&[(1, 0, &req)]),
            vec!["framebuffer info information tag (type 8)", "offset 0x1000"],
        ),
        (
            "checksum",
            bad_sum,
            vec!["Multiboot 2 header at offset 0x1000 has a bad checksum"],
        ),
        (
            "noentry",
            {
                let mut d = vec![0u8; 0x200];
                mb2_header::write(&mut d, 0, &[(2, 0, &addr)]);
                d
            },
            vec!["address tag but no entry address tag"],
        ),
    ];
    for (name, kernel, needles) in cases {
        let dir = scratch(&format!("mb2err-{name}"));
        let k = dir.join(name);
        std::fs::write(&k, &kernel).unwrap();
        let out = dir.join("disk.img");
        let r = bootpack(["build", k.to_str().unwrap(), "-o", out.to_str().unwrap()]);
        let stderr = String::from_utf8_lossy(&r.stderr);
        assert_eq!(r.status.code(), Some(1), "{name}: {stderr}");
        assert!(
            stderr.contains(k.to_str().unwrap()),
            "{name}: names the file: {stderr}"
        );
        for n in needles {
            assert!(stderr.contains(n), "{name}: mentions {n:?}: {stderr}");
        }
        assert!(!out.exists());
    }
    // Optional tags bootpack cannot honour are ignored.
    let dir = scratch("mb2-optional");
    let k = dir.join("optional");
    std::fs::write(&k, mb2_elf(&[(5, 1, &fb), (1, 1, &words(&[8, 13]))])).unwrap();
    let out = dir.join("disk.img");
    let r = bootpack(["build", k.to_str().unwrap(), "-o", out.to_str().unwrap()]);
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    // A module that cannot be read: a clear error, exit status 1, no image.
    let missing = dir.join("no-such-module");
    let out = dir.join("m.img");
    let r = bootpack([
        "build",
        k.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "--module",
        missing.to_str().unwrap(),
    ]);
    let stderr = String::from_utf8_lossy(&r.stderr);
    assert_eq!(r.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("cannot read module 1") && stderr.contains(missing.to_str().unwrap()),
        "{stderr}"
    );
    assert!(!out.exists());
    let e = bootpack::Build::new(&k)
        .module(dir.join("no-such-module"), "x")
        .write(dir.join("m.img"))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("cannot read module 1") && e.contains("no-such-module"),
        "{e}"
    );
}
