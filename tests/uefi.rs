//! UEFI boot tests: images built with `--firmware both` (or `uefi`) boot
//! the test kernel under OVMF (q35, AHCI) through bootpack's UEFI loader,
//! and the same file under SeaBIOS; the kernel's report is compared with
//! what was packed, as tests/boot.rs does on BIOS. Failures are reported
//! as one plain line on COM1 and the machine halts.
//!
//! OVMF costs 4-6 s of CPU under TCG before any loader runs, so the boots
//! are few and each test runs its boots in parallel. QEMU and OVMF are
//! required: without them these tests fail, saying so.

mod support;

use std::path::{Path, PathBuf};
use std::time::Duration;

use bootpack::proto::layout::{PARTITION_START_LBA, SECTOR};
use bootpack::proto::record::Record;
use bootpack::{Firmware, Protocol, Table};
use support::kernels::{self, Headers, Shape, Spec};
use support::qemu::{self, Machine};
use support::report::Report;
use support::scratch;

/// OVMF's own start takes most of this under TCG on a loaded machine.
const BOOT_TIMEOUT: Duration = Duration::from_secs(180);
/// isa-debug-exit: the kernel writes 0x10, QEMU exits (0x10 << 1) | 1.
const KERNEL_EXIT: i32 = 0x21;
const MIB: u64 = 1 << 20;

/// OVMF, or a failure that says how to install it.
fn ovmf() -> bootpack::ovmf::Ovmf {
    bootpack::ovmf::find().unwrap_or_else(|e| panic!("the UEFI tests need OVMF: {e}"))
}

/// A q35 machine with OVMF and its own copy of the variable store in
/// `dir` (named `tag`, so parallel boots never share one).
fn uefi_machine(dir: &Path, tag: &str, mem: &'static str) -> Machine {
    let o = ovmf();
    let vars = dir.join(format!("vars-{tag}.fd"));
    bootpack::ovmf::copy_vars(&o, &vars).unwrap();
    let mut m = Machine::new("q35", mem);
    m.extra = bootpack::ovmf::qemu_args(&o, &vars);
    m
}

struct Mod {
    data: Vec<u8>,
    string: String,
}

struct Packed {
    dir: support::Scratch,
    image: PathBuf,
    cmdline: Vec<u8>,
    occupied: Vec<(u64, u64)>,
    kernel_end: u64,
    modules: Vec<Mod>,
}

fn pack(test: &str, firmware: Firmware, table: Table, modules: Vec<Mod>) -> Packed {
    let dir = scratch(test);
    let kernel = dir.join("kernel");
    std::fs::write(
        &kernel,
        kernels::build_spec(&Spec::new(Shape::Solo5Elf64, Headers::Mb1)),
    )
    .unwrap();
    let image = dir.join("disk.img");
    let mut b = bootpack::Build::new(&kernel)
        .args(["hello", "uefi world"])
        .firmware(firmware)
        .table(table)
        .protocol(Protocol::Multiboot1);
    for (i, m) in modules.iter().enumerate() {
        let path = dir.join(format!("module{i}"));
        std::fs::write(&path, &m.data).unwrap();
        b = b.module(path, &m.string);
    }
    let report = b
        .write(&image)
        .unwrap_or_else(|e| panic!("packing failed: {e}"));
    let occupied: Vec<(u64, u64)> = report
        .plan
        .segments
        .iter()
        .map(|s| (s.dest, s.end()))
        .collect();
    Packed {
        kernel_end: occupied.iter().map(|o| o.1).max().unwrap(),
        dir,
        image,
        cmdline: report.cmdline,
        occupied,
        modules,
    }
}

/// Boots each (name, machine) in parallel; returns the runs in order.
/// Each machine gets a byte-identical copy of the image: QEMU locks the
/// file it writes to, so two machines cannot open one file.
fn boot_all(
    image: &Path,
    machines: Vec<(&'static str, Machine)>,
) -> Vec<(&'static str, qemu::Run)> {
    let handles: Vec<_> = machines
        .into_iter()
        .map(|(name, m)| {
            let copy = image.with_extension(format!("{name}.img"));
            std::fs::copy(image, &copy).unwrap();
            std::thread::spawn(move || (name, qemu::boot_image(&copy, &m, BOOT_TIMEOUT)))
        })
        .collect();
    handles.into_iter().map(|h| h.join().unwrap()).collect()
}

/// The kernel ran to its end and reported.
fn report_of(name: &str, run: &qemu::Run) -> Report {
    assert_eq!(
        run.exit,
        Some(KERNEL_EXIT),
        "{name}: QEMU exit status; serial:\n{}",
        run.serial_text()
    );
    Report::parse(&run.serial)
}

/// Packs `kernel` (its bytes) for UEFI only, boots it under OVMF with
/// `mem` and `extra` QEMU arguments, and parses the test kernel's report.
fn boot_uefi_kernel(test: &str, kernel: &[u8], mem: &'static str, extra: &[&str]) -> Report {
    let dir = scratch(test);
    let path = dir.join("kernel");
    std::fs::write(&path, kernel).unwrap();
    let image = dir.join("disk.img");
    bootpack::Build::new(&path)
        .firmware(Firmware::Uefi)
        .write(&image)
        .unwrap();
    let mut m = uefi_machine(&dir, test, mem);
    m.extra.extend(extra.iter().map(|a| a.to_string()));
    let run = qemu::boot_image(&image, &m, BOOT_TIMEOUT);
    report_of(test, &run)
}

/// The handoff under UEFI: what tests/boot.rs checks on BIOS, with the
/// memory map converted from the EFI map as GRUB converts it and the
/// information anywhere out of page 0 below 1 GiB.
/// A boot the UEFI loader refused: its plain `bootpack: error: ...` line
/// on COM1 (OVMF mirrors ConOut to the same port with its escapes; the
/// loader's own line has none), then the halt line, no kernel output
/// (`kernel_marker`) and no exit or reboot. Returns the error line.
fn refusal_line(what: &str, run: &qemu::Run, kernel_marker: &str) -> String {
    let text = run.serial_text();
    let line = text
        .split("\r\n")
        .find(|l| l.starts_with("bootpack: error: "))
        .unwrap_or_else(|| panic!("{what}: no plain error line:\n{text}"))
        .to_owned();
    assert!(text.contains("\r\nbootpack: halted\r\n"), "{what}: {text}");
    assert!(
        !text.contains(kernel_marker),
        "{what}: the kernel must not run: {text}"
    );
    assert_eq!(run.exit, None, "{what}: halted, not rebooting or exiting");
    line
}

fn assert_uefi_handoff(r: &Report, p: &Packed) {
    assert_eq!(r.num("magic"), 0x2BAD_B002, "EAX");
    let flags = r.num("flags");
    assert_eq!(
        flags & 0x247,
        0x247,
        "flags {flags:#x}: memory, boot device, cmdline, mmap, loader name"
    );
    assert_eq!(flags & 0x1800, 0, "no video asked for, none given");
    assert_eq!(r.cmdline(), p.cmdline, "command line bytes");
    assert_eq!(
        r.get("loader_name"),
        format!("bootpack {}", env!("CARGO_PKG_VERSION"))
    );
    assert_eq!(r.num("boot_device"), 0x8000_FFFF);

    // Entry state: the BIOS loader's, exactly.
    assert_eq!(r.get("eflags"), "0x00000002");
    let cr0 = r.num("cr0");
    assert_eq!(cr0 & 0x11, 0x11, "CR0.PE and ET: {cr0:#x}");
    assert_eq!(cr0 & 0xE000_0000, 0, "CR0.PG, CD, NW clear: {cr0:#x}");
    assert_eq!(r.get("cr4"), "0x00000000");
    assert_eq!(r.get("efer"), "0x00000000");
    assert_eq!(
        r.get("selectors"),
        "cs=0x0008 ds=0x0010 es=0x0010 fs=0x0010 gs=0x0010 ss=0x0010"
    );
    assert!(r.gdt["cs"].contains("base=0x00000000 limit=0xffffffff code32"));
    for seg in ["ds", "es", "ss"] {
        assert!(r.gdt[seg].contains("base=0x00000000 limit=0xffffffff data"));
    }
    assert_eq!(r.get("a20"), "on");
    assert_eq!(r.get("bss"), "zero");

    // The memory map, GRUB's conversion of the EFI map: sorted, no
    // overlaps, adjacent entries of one type merged, only the types the
    // conversion produces, and (S3 off) a usable entry from exactly 1 MiB
    // over nearly all of the 512 MiB.
    assert!(r.mmap.iter().all(|e| e.size == 20));
    assert_eq!(r.num("mmap_length"), 24 * r.mmap.len() as u64);
    for w in r.mmap.windows(2) {
        let (a, b) = (&w[0], &w[1]);
        assert!(a.base + a.len <= b.base, "sorted, disjoint: {a:?} {b:?}");
        assert!(
            !(a.base + a.len == b.base && a.kind == b.kind),
            "adjacent entries of one type are merged: {a:?} {b:?}"
        );
    }
    assert!(r.mmap.iter().all(|e| [1, 2, 3, 4, 5, 7].contains(&e.kind)));
    let at_1m = r
        .mmap
        .iter()
        .find(|e| e.base == MIB && e.kind == 1)
        .expect("a usable entry starting at exactly 1 MiB (Solo5)");
    assert!(
        at_1m.len >= 400 * MIB,
        "with S3 off the 1 MiB entry covers most RAM: {at_1m:?}"
    );
    assert_eq!(
        r.num("mem_upper"),
        ((at_1m.base + at_1m.len).min(1 << 32) - MIB) / 1024
    );

    // The information, out of page 0, below 1 GiB, in usable memory, clear
    // of the kernel and the modules.
    let mut occupied = p.occupied.clone();
    occupied.extend(r.mods.iter().map(|m| (m.start, m.end)));
    for (what, start, len) in [
        (
            "info",
            r.num("info"),
            bootpack::proto::mb1_info::INFO_LEN as u64,
        ),
        ("cmdline", r.num("cmdline_addr"), p.cmdline.len() as u64 + 1),
        ("mmap", r.num("mmap_addr"), r.num("mmap_length")),
        (
            "loader_name",
            r.num("loader_name_addr"),
            r.get("loader_name").len() as u64 + 1,
        ),
    ] {
        let end = start + len;
        assert!(
            start >= 0x1000 && end <= 1 << 30,
            "{what} at {start:#x}..{end:#x} must lie in 0x1000..1 GiB"
        );
        for &(a, b) in &occupied {
            assert!(
                end <= a || start >= b,
                "{what} at {start:#x}..{end:#x} overlaps {a:#x}..{b:#x}"
            );
        }
    }

    // Modules: bytes, strings, order, page alignment, above the kernel, in
    // usable RAM.
    assert_eq!(r.num("mods_count"), p.modules.len() as u64);
    let mut floor = p.kernel_end.div_ceil(4096) * 4096;
    for (i, (got, m)) in r.mods.iter().zip(&p.modules).enumerate() {
        assert_eq!(got.end - got.start, m.data.len() as u64, "module {i} size");
        assert_eq!(got.hash, kernels::bytes_hash(&m.data), "module {i} bytes");
        assert_eq!(got.string, m.string, "module {i} string");
        assert_eq!(got.start % 4096, 0, "module {i} page-aligned");
        assert!(got.start >= floor, "module {i} above {floor:#x}");
        assert!(
            r.mmap.iter().any(|e| e.kind == 1
                && e.base <= got.start
                && got.end.max(got.start + 1) <= e.base + e.len),
            "module {i} in usable RAM"
        );
        floor = got.end;
    }
}

fn modules() -> Vec<Mod> {
    vec![
        Mod {
            data: kernels::random_bytes(5000, 1),
            string: "initrd root=/dev/ram0".into(),
        },
        Mod {
            data: kernels::random_bytes(3 << 20, 2),
            string: "big.bin".into(),
        },
        Mod {
            data: Vec::new(),
            string: "empty".into(),
        },
        Mod {
            data: kernels::random_bytes(4097, 3),
            string: "".into(),
        },
    ]
}

/// The hybrid image (MBR, `--firmware both`): the same file boots under
/// SeaBIOS on pc and q35 and under OVMF, with modules; the handoff under
/// OVMF is checked in full.
#[test]
fn hybrid_mbr_image_boots_on_seabios_and_ovmf() {
    let p = pack("hybrid-mbr", Firmware::Both, Table::Mbr, modules());
    let runs = boot_all(
        &p.image,
        vec![
            ("ovmf-q35", uefi_machine(&p.dir, "q35", "512M")),
            ("seabios-pc", Machine::new("pc", "128M")),
            ("seabios-q35", Machine::new("q35", "128M")),
        ],
    );
    for (name, run) in &runs {
        let r = report_of(name, run);
        assert_eq!(r.cmdline(), p.cmdline, "{name}: command line");
        assert_eq!(r.num("mods_count"), 4, "{name}: modules");
        if *name == "ovmf-q35" {
            assert_uefi_handoff(&r, &p);
        }
    }
}

/// A GPT image for UEFI (GCE Shielded VM's shape) boots under OVMF, and
/// the same image boots under SeaBIOS.
#[test]
fn gpt_image_boots_on_ovmf_and_seabios() {
    let p = pack("hybrid-gpt", Firmware::Both, Table::Gpt, Vec::new());
    let runs = boot_all(
        &p.image,
        vec![
            ("ovmf-q35", uefi_machine(&p.dir, "q35", "512M")),
            ("seabios-q35", Machine::new("q35", "128M")),
        ],
    );
    for (name, run) in &runs {
        let r = report_of(name, run);
        if *name == "ovmf-q35" {
            assert_uefi_handoff(&r, &p);
        } else {
            assert_eq!(r.cmdline(), p.cmdline);
        }
    }
}

fn record_at(image: &Path) -> (Vec<u8>, usize, usize) {
    let disk = std::fs::read(image).unwrap();
    let at = (PARTITION_START_LBA as u64 * SECTOR) as usize;
    let rec = Record::parse(&disk[at..]).expect("the image has a valid record");
    let first = rec.segments().find(|s| s.file_size > 0).unwrap();
    let data = at + (first.data_sector * SECTOR) as usize;
    (disk, at, data)
}

/// A damaged payload and a damaged record stop the UEFI loader with one
/// plain line on COM1 and a halt (no reboot, no kernel, no return to the
/// firmware).
#[test]
fn damaged_payload_and_record_are_reported_under_uefi() {
    let p = pack("uefi-damaged", Firmware::Uefi, Table::Mbr, Vec::new());
    let (disk, rec_at, data_at) = record_at(&p.image);
    let mut payload = disk.clone();
    payload[data_at + 100] ^= 0x01;
    let mut record = disk;
    // The entry point (offset 24): the record's checksum catches it.
    record[rec_at + 24] ^= 0x01;
    let cases = [
        ("payload", payload, "kernel payload checksum mismatch"),
        ("record", record, "configuration record checksum mismatch"),
    ];
    let handles: Vec<_> = cases
        .into_iter()
        .map(|(what, bytes, message)| {
            let image = p.dir.join(format!("{what}.img"));
            std::fs::write(&image, bytes).unwrap();
            let m = uefi_machine(&p.dir, what, "256M");
            std::thread::spawn(move || {
                let run = qemu::boot_until(
                    &image,
                    &m,
                    "bootpack: halted",
                    Duration::from_secs(2),
                    BOOT_TIMEOUT,
                );
                (what, message, run)
            })
        })
        .collect();
    for h in handles {
        let (what, message, run) = h.join().unwrap();
        let line = refusal_line(what, &run, "BPTK");
        assert!(line.contains(message), "{what}: {line:?}");
        assert!(
            line.ends_with("the disk image is damaged, rebuild it"),
            "{what}: {line:?}"
        );
    }
}

/// `inspect` finds the ESP in both tables and says which UEFI loader it
/// holds, with its checksum; a BIOS-only image has none; the images are
/// reproducible, and the ESP holds exactly the embedded loader.
#[test]
fn inspect_shows_the_esp_and_the_uefi_loader() {
    let dir = scratch("uefi-inspect");
    let kernel = dir.join("kernel");
    std::fs::write(
        &kernel,
        kernels::build_spec(&Spec::new(Shape::Solo5Elf64, Headers::Mb1)),
    )
    .unwrap();
    let build = |name: &str, firmware: Firmware, table: Table| {
        let image = dir.join(name);
        bootpack::Build::new(&kernel)
            .firmware(firmware)
            .table(table)
            .write(&image)
            .unwrap();
        image
    };
    let efi = bootpack::bootloader::BOOTX64_EFI;
    let sum = format!("{:#018x}", bootpack::proto::checksum::fletcher64(efi));
    for table in [Table::Mbr, Table::Gpt] {
        let a = build(&format!("{table}-a.img"), Firmware::Both, table);
        let b = build(&format!("{table}-b.img"), Firmware::Both, table);
        assert_eq!(
            std::fs::read(&a).unwrap(),
            std::fs::read(&b).unwrap(),
            "{table}: the same inputs give the same image"
        );
        let ins = bootpack::inspect::inspect(&a).unwrap();
        assert!(ins.is_sound(), "{table}: {:?}", ins.problems);
        let esp = ins.esp.as_ref().expect("an ESP");
        assert_eq!(esp.index, 2, "{table}: the ESP is the second partition");
        assert_eq!(esp.sectors, bootpack::fat::ESP_SECTORS);
        assert_eq!(esp.start_lba % 2048, 0, "{table}: MiB-aligned");
        assert_eq!(esp.loader_bytes, Some(efi.len() as u64));
        assert_eq!(
            esp.loader_version.as_deref(),
            Some(env!("CARGO_PKG_VERSION"))
        );
        assert!(esp.loader_is_this_bootpack);
        assert_eq!(esp.loader_checksum.as_deref(), Some(sum.as_str()));
        // The kernel partition ends where the ESP begins.
        let kernel_end = match &ins.gpt {
            Some(g) => g.start_lba + g.sectors,
            None => {
                let p = &ins.partitions[0];
                p.start_lba as u64 + p.sectors as u64
            }
        };
        assert_eq!(kernel_end, esp.start_lba, "{table}");

        // A changed byte in the loader: another loader, another checksum.
        let mut disk = std::fs::read(&a).unwrap();
        let volume = &disk[(esp.start_lba * SECTOR) as usize..][..(esp.sectors * SECTOR) as usize];
        let at = volume
            .windows(efi.len())
            .position(|w| w == efi)
            .expect("the loader's bytes in the ESP, contiguous");
        disk[(esp.start_lba * SECTOR) as usize + at + 1000] ^= 0xFF;
        let changed = dir.join(format!("{table}-changed.img"));
        std::fs::write(&changed, &disk).unwrap();
        let esp2 = bootpack::inspect::inspect(&changed).unwrap().esp.unwrap();
        assert!(!esp2.loader_is_this_bootpack);
        assert_ne!(esp2.loader_checksum.as_deref(), Some(sum.as_str()));
    }
    let bios = build("bios.img", Firmware::Bios, Table::Mbr);
    assert!(bootpack::inspect::inspect(&bios).unwrap().esp.is_none());
}

/// A Multiboot 2 kernel boots under OVMF: EAX, the command line, the
/// memory map (GRUB's conversion, the entry at 1 MiB), and the ACPI tag
/// with the RSDP the EFI configuration table announces (revision 2+ on
/// OVMF: tag 15), which the BIOS area does not hold under UEFI.
#[test]
fn multiboot2_kernel_boots_under_ovmf_with_the_rsdp() {
    let dir = scratch("uefi-mb2");
    let kernel = dir.join("kernel");
    std::fs::write(
        &kernel,
        kernels::build_spec(&Spec::new(Shape::Solo5Elf64, Headers::Mb2)),
    )
    .unwrap();
    let image = dir.join("disk.img");
    let report = bootpack::Build::new(&kernel)
        .args(["mb2", "args"])
        .firmware(Firmware::Uefi)
        .write(&image)
        .unwrap();
    assert_eq!(report.plan.protocol, Protocol::Multiboot2);
    let m = uefi_machine(&dir, "mb2", "512M");
    let run = qemu::boot_image(&image, &m, BOOT_TIMEOUT);
    let r = report_of("ovmf-mb2", &run);
    assert_eq!(r.num("magic"), 0x36D7_6289, "EAX");
    assert_eq!(r.cmdline(), report.cmdline);
    assert!(r.tags.iter().any(|t| t.ty == 6), "a memory map tag");
    assert!(
        r.mmap
            .iter()
            .any(|e| e.base == MIB && e.kind == 1 && e.len >= 400 * MIB),
        "{:?}",
        r.mmap
    );
    let acpi = r.get("acpi");
    let (tag, hex) = acpi.split_once(' ').unwrap();
    assert_eq!(tag, "15", "ACPI 2.0+ RSDP tag");
    let rsdp = support::report::unhex(hex);
    assert_eq!(&rsdp[..8], b"RSD PTR ");
    assert_eq!(
        bootpack::proto::acpi::valid_at(&rsdp, 0),
        Some(rsdp.len()),
        "a valid RSDP, whole"
    );
    assert_eq!(r.get("eflags"), "0x00000002");
    assert_eq!(r.get("bss"), "zero");

    // The EFI tags GRUB x86_64-efi gives a kernel entered after
    // ExitBootServices: the system table (12) and the map the exit was
    // made with (17), whose GRUB conversion is the memory map tag (6);
    // not the tags of a kernel that keeps boot services (18, 20), nor the
    // 32-bit ones (11, 19).
    let types: Vec<u32> = r.tags.iter().map(|t| t.ty).collect();
    for ty in [12, 17] {
        assert!(types.contains(&ty), "tag {ty} in {types:?}");
    }
    for ty in [11, 18, 19, 20] {
        assert!(!types.contains(&ty), "no tag {ty} in {types:?}");
    }
    let systab: Vec<u64> = r
        .get("efi64_systab")
        .split_whitespace()
        .map(support::report::hex)
        .collect();
    assert_eq!(
        systab[1].to_le_bytes(),
        *b"IBI SYST",
        "EFI system table signature"
    );
    assert!(systab[2] >= 2 << 16, "UEFI revision {:#x}", systab[2]);
    assert_eq!(r.get("efi_mmap").split_whitespace().nth(1), Some("1"));
    let mmap: Vec<(u64, u64, u32)> = r.mmap.iter().map(|e| (e.base, e.len, e.kind)).collect();
    assert_eq!(
        mmap,
        grub_conversion(&r.efi_descriptors),
        "tag 6 is GRUB's conversion of tag 17"
    );
}

/// The test kernel (ELF32, Multiboot 1) asking for a graphics mode
/// (mode_type 0, width, height, depth).
fn mb1_video_kernel(width: u32, height: u32, depth: u32) -> Vec<u8> {
    use bootpack::proto::mb1_header;
    let mut file = kernels::build_spec(&Spec::new(Shape::Elf32, Headers::Mb1));
    let off = mb1_header::find(&file).unwrap().offset;
    mb1_header::write(&mut file, off, 0x3 | mb1_header::FLAG_VIDEO_MODE, None);
    // The video fields follow the header's 32 bytes (they overlay the test
    // kernel's payload descriptor, ignored while its length is 0).
    let words: Vec<u8> = [0, width, height, depth]
        .iter()
        .flat_map(|x| x.to_le_bytes())
        .collect();
    file[off + 32..off + 48].copy_from_slice(&words);
    file
}

/// A Multiboot 1 kernel asking for 1024x768x32 gets that GOP mode's
/// linear framebuffer under OVMF (QEMU's std VGA: BGR, so red at bit 16),
/// as framebuffer information only (no VBE under UEFI).
#[test]
fn video_requests_get_the_gop_framebuffer() {
    let r = boot_uefi_kernel(
        "uefi-gop",
        &mb1_video_kernel(1024, 768, 32),
        "256M",
        &["-vga", "std"],
    );
    let flags = r.num("flags");
    assert_eq!(flags & 0x1800, 0x1000, "framebuffer, no VBE: {flags:#x}");
    let fb: Vec<u64> = r
        .get("framebuffer")
        .split_whitespace()
        .map(|v| match v.strip_prefix("0x") {
            Some(h) => u64::from_str_radix(h, 16).unwrap(),
            None => v.parse().unwrap(),
        })
        .collect();
    assert_eq!(&fb[1..], [4096, 1024, 768, 32, 1], "pitch, size, bpp, RGB");
    assert!(fb[0] >= 1 << 20, "the framebuffer address {:#x}", fb[0]);
    assert_eq!(r.get("framebuffer_rgb"), "16 8 8 8 0 8", "BGR layout");
}

/// Debian's Xen 4.17 boots through its EFI entry: its header asks to keep
/// boot services (tag 7) and has an EFI amd64 entry (tag 9), so the loader
/// enters there in 64-bit mode with boot services running and gives the
/// EFI tags (system table, image handle, EFI memory map, boot services not
/// terminated). It is relocatable (tag 10): the loader moves it as GRUB
/// does. Xen prints its banner, bootpack's name, the command line, its load
/// address, the memory map it read from the firmware itself ("EFI RAM
/// map"), and then refuses the module given as dom0 (not an ELF): the
/// module arrived.
/// (Multiboot 1 Xen cannot boot under UEFI: it places its trampoline from
/// the BIOS data area, empty under OVMF.)
#[test]
fn xen_boots_through_its_efi_entry() {
    const XEN: &str = "/boot/xen-4.17-amd64.gz";
    assert!(
        Path::new(XEN).is_file(),
        "{XEN} is missing: this test boots the kernel of the Debian package xen-hypervisor-4.17-amd64. \
         Install it: apt-get install -y --no-install-recommends xen-hypervisor-4.17-amd64"
    );
    let dir = scratch("uefi-xen");
    let dom0 = dir.join("dom0");
    std::fs::write(&dom0, b"not a kernel\n").unwrap();
    let image = dir.join("disk.img");
    let report = bootpack::Build::new(XEN)
        // "NAME ARGS": Xen skips the first word, as under GRUB.
        .args(["console=com1", "com1=115200,8n1"])
        .firmware(Firmware::Uefi)
        .module(&dom0, "dom0")
        .write(&image)
        .unwrap();
    assert_eq!(report.plan.protocol, Protocol::Multiboot2);
    // The record carries Xen's EFI tags (version 4), and inspect says so.
    let ins = bootpack::inspect::inspect(&image).unwrap();
    let k = ins.kernel.as_ref().unwrap();
    assert_eq!(k.record_version, 4);
    let efi = k.efi.as_deref().unwrap_or_default();
    assert!(
        efi.starts_with("boot services kept, amd64 entry 0x") && efi.contains("relocatable"),
        "{efi}"
    );
    let m = uefi_machine(&dir, "xen", "512M");
    let run = qemu::boot_image(&image, &m, BOOT_TIMEOUT);
    let s = run.serial_text();
    for (want, what) in [
        ("(XEN) Xen version 4.17", "Xen's banner"),
        ("(XEN) Bootloader: bootpack ", "the boot loader name tag"),
        (
            "(XEN) Command line: console=com1 com1=115200,8n1",
            "the command line tag",
        ),
        // Xen's relocatable tag (2 MiB up to 4 GiB, 2 MiB aligned,
        // highest): the highest 2 MiB boundary where its 3.7 MiB fit in
        // free memory, where GRUB 2.06 EFI puts it on this machine too
        // (checked 2026-12-01); at its link address (2 MiB) Xen prints 0.
        (
            "(XEN) Xen image load base address: 0x1d800000\r\n",
            "the load address GRUB's rule gives",
        ),
        (
            "(XEN) EFI RAM map:",
            "Xen's EFI path (it read the memory map from the firmware)",
        ),
        (
            "(XEN) Could not construct domain 0",
            "the dom0 module arrived",
        ),
    ] {
        assert!(s.contains(want), "{what}: no {want:?} on serial:\n{s}");
    }
}

/// The default image (both firmwares) in every cloud format boots under
/// OVMF, two formats with each table (QEMU reads VHD, VMDK and qcow2
/// itself; the gce archive's disk.raw is extracted first): the kernel
/// reports the packed command line. tests/formats.rs boots the same
/// default images on SeaBIOS.
#[test]
fn every_format_boots_under_ovmf() {
    let dir = scratch("uefi-formats");
    let kernel = dir.join("kernel");
    std::fs::write(
        &kernel,
        kernels::build_spec(&Spec::new(Shape::Solo5Elf64, Headers::Mb1)),
    )
    .unwrap();
    let mut handles = Vec::new();
    for (ext, qemu_format, table) in [
        ("vhd", "vpc", Table::Mbr),
        ("vmdk", "vmdk", Table::Gpt),
        ("qcow2", "qcow2", Table::Mbr),
        ("tar.gz", "raw", Table::Gpt),
    ] {
        let out = dir.join(format!("disk.{ext}"));
        let report = bootpack::Build::new(&kernel)
            .args(["format", ext])
            .table(table)
            .write(&out)
            .unwrap();
        assert!(
            bootpack::inspect::inspect(&out).unwrap().esp.is_some(),
            "{ext}: the default image has an ESP"
        );
        let image = if ext == "tar.gz" {
            let x = dir.join("gce");
            std::fs::create_dir_all(&x).unwrap();
            let st = std::process::Command::new("tar")
                .arg("-xzSf")
                .arg(&out)
                .arg("-C")
                .arg(&x)
                .status()
                .expect("tar");
            assert!(st.success(), "tar -xzf of the gce archive");
            x.join("disk.raw")
        } else {
            out
        };
        let m = uefi_machine(&dir, &ext.replace('.', "-"), "256M");
        handles.push(std::thread::spawn(move || {
            let run = qemu::boot_image_as(&image, qemu_format, &m, BOOT_TIMEOUT);
            (ext, report.cmdline, run)
        }));
    }
    for h in handles {
        let (ext, cmdline, run) = h.join().unwrap();
        let r = report_of(ext, &run);
        assert_eq!(r.num("magic"), 0x2BAD_B002, "{ext}");
        assert_eq!(r.cmdline(), cmdline, "{ext}");
    }
}

/// A kernel whose memory OVMF's boot services hold while the loader runs
/// (here a payload at 16 MiB with 256 MiB of RAM) is staged and moved into
/// place by the trampoline after ExitBootServices, as GRUB's relocator
/// does: the kernel checksums the payload where it was linked.
#[test]
fn segments_over_boot_services_memory_are_moved_into_place() {
    let payload = kernels::Payload::random(16 << 20, 3 << 20, 7);
    let spec = Spec {
        payload: Some(&payload),
        ..Spec::new(Shape::Elf32, Headers::Mb1)
    };
    let r = boot_uefi_kernel("uefi-deferred", &kernels::build_spec(&spec), "256M", &[]);
    assert_eq!(
        r.get("payload"),
        format!("0x{:08x} {} ok", payload.addr, payload.data.len()),
        "the payload arrived intact at its address"
    );
    assert_eq!(r.get("bss"), "zero");
    assert_eq!(r.get("eflags"), "0x00000002");
}

/// A Multiboot 2 information block's tags: (type, body) in order.
fn mbi2_tags(mbi: &[u8]) -> Vec<(u32, &[u8])> {
    let u32_at = |b: &[u8], at: usize| u32::from_le_bytes(b[at..at + 4].try_into().unwrap());
    let total = u32_at(mbi, 0) as usize;
    assert_eq!(total, mbi.len(), "total_size is what the kernel dumped");
    let mut tags = Vec::new();
    let mut at = 8;
    while at + 8 <= total {
        let (ty, size) = (u32_at(mbi, at), u32_at(mbi, at + 4) as usize);
        assert!(
            size >= 8 && at + size <= total,
            "tag {ty} at {at:#x}: size {size}"
        );
        if ty == 0 {
            assert_eq!(size, 8, "the end tag");
            return tags;
        }
        tags.push((ty, &mbi[at + 8..at + size]));
        at = (at + size + 7) & !7;
    }
    panic!("no end tag in {total} bytes");
}

/// GRUB's conversion of EFI memory descriptors into a Multiboot map
/// (grub-core/mmap/efi/mmap.c, with runtime code as 2 as bootpack
/// documents), written out here apart from bootpack::proto::efimap so the
/// test does not check the loader against itself: (base, len, type),
/// sorted, adjacent entries of one type merged.
fn grub_conversion(descriptors: &[(u32, u64, u64)]) -> Vec<(u64, u64, u32)> {
    let mut d: Vec<_> = descriptors.iter().filter(|d| d.2 > 0).copied().collect();
    d.sort_by_key(|d| d.1);
    let mut out: Vec<(u64, u64, u32)> = Vec::new();
    for (ty, base, pages) in d {
        let mb = match ty {
            1 | 2 | 3 | 4 | 7 => 1, // loader, boot services, conventional
            9 => 3,                 // ACPI reclaim
            10 => 4,                // ACPI NVS
            8 => 5,                 // unusable
            14 => 7,                // persistent
            _ => 2,                 // runtime, MMIO, reserved, PAL
        };
        let len = pages * 4096;
        match out.last_mut() {
            Some(last) if last.2 == mb && last.0 + last.1 == base => last.1 += len,
            _ => out.push((base, len, mb)),
        }
    }
    out
}

/// A kernel entered through its EFI amd64 entry with boot services running
/// (tags 7 and 9, as Xen's header; tests/support/efi_probe.rs) gets what
/// GRUB x86_64-efi gives: EAX = 0x36D76289, and besides the usual tags the
/// EFI 64-bit system table (tag 12, pointing at a real table: "IBI SYST"),
/// the 64-bit image handle (20), "boot services not terminated" (18) and
/// the EFI memory map (17), whose GRUB conversion is exactly the memory map
/// tag (6); none of the 32-bit EFI tags (11, 19). The kernel dumps the
/// whole information block on COM1.
#[test]
fn efi_entry_kernel_gets_the_efi_tags() {
    let dir = scratch("uefi-efi-probe");
    let kernel = dir.join("efi-probe");
    std::fs::write(&kernel, support::efi_probe::kernel()).unwrap();
    let image = dir.join("disk.img");
    let report = bootpack::Build::new(&kernel)
        .args(["probe", "argument"])
        .write(&image)
        .unwrap();
    assert_eq!(report.plan.protocol, Protocol::Multiboot2);
    let m = uefi_machine(&dir, "efi-probe", "512M");
    let run = qemu::boot_image(&image, &m, BOOT_TIMEOUT);
    let s = run.serial_text();
    assert_eq!(
        run.exit,
        Some(((support::efi_probe::EXIT as i32) << 1) | 1),
        "the kernel ran to its end:\n{s}"
    );
    let line = |key: &str| -> Vec<u8> {
        let prefix = format!("EFIK {key} ");
        let l = s
            .lines()
            .find_map(|l| l.trim_end().split_once(&prefix).map(|(_, v)| v.to_owned()))
            .unwrap_or_else(|| panic!("no {prefix:?} line on serial:\n{s}"));
        support::report::unhex(&l)
    };
    assert_eq!(line("magic"), [0x36, 0xD7, 0x62, 0x89], "EAX");
    let mbi = line("mbi");
    let tags = mbi2_tags(&mbi);
    let tag = |ty: u32| -> &[u8] {
        tags.iter()
            .find(|t| t.0 == ty)
            .unwrap_or_else(|| {
                panic!(
                    "no tag {ty}: {:?}",
                    tags.iter().map(|t| t.0).collect::<Vec<_>>()
                )
            })
            .1
    };
    let u32_at = |b: &[u8], at: usize| u32::from_le_bytes(b[at..at + 4].try_into().unwrap());
    let u64_at = |b: &[u8], at: usize| u64::from_le_bytes(b[at..at + 8].try_into().unwrap());
    for ty in [11, 19] {
        assert!(tags.iter().all(|t| t.0 != ty), "no 32-bit EFI tag {ty}");
    }

    // The usual tags.
    let cmdline = tag(1);
    assert_eq!(&cmdline[..report.cmdline.len()], &report.cmdline[..]);
    assert_eq!(cmdline[report.cmdline.len()], 0);
    assert!(tag(2).starts_with(b"bootpack "));
    assert_eq!(
        u32_at(tag(21), 0) as u64,
        support::efi_probe::LOAD,
        "load base"
    );
    assert!(
        tags.iter().any(|t| t.0 == 14 || t.0 == 15),
        "an ACPI RSDP tag"
    );

    // Tag 12: the system table, whose header the kernel read at that
    // address: signature "IBI SYST", a UEFI 2.x revision.
    let systab = u64_at(tag(12), 0);
    assert!(systab != 0 && systab < 1 << 32, "system table {systab:#x}");
    let header = line("systab");
    assert_eq!(
        &header[..8],
        b"IBI SYST",
        "the EFI system table's signature"
    );
    let revision = u32_at(&header, 8);
    assert!(revision >= 2 << 16, "UEFI revision {revision:#x}");
    // Tag 20: the image handle; tag 18: boot services are running.
    assert_ne!(u64_at(tag(20), 0), 0, "image handle");
    assert!(tag(18).is_empty(), "tag 18 has no body");

    // Tag 17: descriptor size and version, then the descriptors as the
    // firmware gave them; tag 6 is their GRUB conversion, entry for entry.
    let efi = tag(17);
    let (desc_size, desc_version) = (u32_at(efi, 0) as usize, u32_at(efi, 4));
    assert_eq!(desc_version, 1, "EFI_MEMORY_DESCRIPTOR_VERSION");
    assert!(desc_size >= 40, "descriptor size {desc_size}");
    let descriptors: Vec<(u32, u64, u64)> = efi[8..]
        .chunks_exact(desc_size)
        .map(|d| (u32_at(d, 0), u64_at(d, 8), u64_at(d, 24)))
        .collect();
    assert!(descriptors.len() > 10, "{} descriptors", descriptors.len());
    // The kernel's own pages are loader data in the firmware's map.
    assert!(
        descriptors.iter().any(|&(ty, base, pages)| ty == 2
            && base <= support::efi_probe::LOAD
            && support::efi_probe::LOAD < base + pages * 4096),
        "the kernel's memory is taken from the firmware"
    );
    let mmap = tag(6);
    let (entry_size, entry_version) = (u32_at(mmap, 0) as usize, u32_at(mmap, 4));
    assert_eq!((entry_size, entry_version), (24, 0));
    let got: Vec<(u64, u64, u32)> = mmap[8..]
        .chunks_exact(entry_size)
        .map(|e| (u64_at(e, 0), u64_at(e, 8), u32_at(e, 16)))
        .collect();
    assert_eq!(got, grub_conversion(&descriptors), "tag 6 against tag 17");
}

/// A relocatable Multiboot 2 kernel (header tag 10) is loaded where GRUB
/// 2.06's relocator puts it, not at its link address (4 MiB here): with
/// preference "low" at the lowest multiple of the alignment at or above
/// min_addr that is free (32 MiB: free under OVMF with 512 MiB), entered
/// at its 32-bit entry moved by the same distance; with preference "high"
/// and the EFI tags (7 and 9, as Xen) at the highest place ending at or
/// below max_addr (191 MiB for 192 KiB ending by 192 MiB), entered at its
/// EFI amd64 entry moved likewise. The kernel finds its own address at run
/// time: tag 21 says the same, and its payload and bss are intact where
/// they landed. A range that only boot-services memory holds is used once
/// they exit (staged, then moved by the trampoline). A tag whose range
/// holds no free memory stops the loader with one plain line.
#[test]
fn relocatable_kernels_load_where_grub_puts_them() {
    use support::reloc_kernel::{self as rk, Reloc};
    const LINK: u64 = 0x40_0000;
    let dir = scratch("uefi-reloc");
    let low = Reloc {
        min: 0x200_0000,
        max: u32::MAX,
        align: 0x100_0000,
        preference: 1,
    };
    let high = Reloc {
        min: 0x100_0000,
        max: 0xC00_0000,
        align: 0x10_0000,
        preference: 2,
    };
    // Above the 512 MiB of RAM, below the PCI hole: no memory at all.
    let nowhere = Reloc {
        min: 0x8000_0000,
        max: 0x9000_0000,
        align: 0x1000,
        preference: 0,
    };
    // Only 16 MiB fits: memory OVMF's boot services hold with 256 MiB
    // (see segments_over_boot_services_memory_are_moved_into_place), free
    // once they exit; the loader stages the image and the trampoline moves
    // it there, as GRUB's relocator falls back to.
    let staged = Reloc {
        min: 0x100_0000,
        max: 0x100_0000 + rk::SPAN as u32,
        align: 0x1000,
        preference: 2,
    };
    let mut machines = Vec::new();
    for (name, reloc, efi64, mem) in [
        ("low", low, false, "512M"),
        ("high-efi", high, true, "512M"),
        ("nowhere", nowhere, false, "512M"),
        ("staged", staged, false, "256M"),
    ] {
        let kernel = dir.join(format!("kernel-{name}"));
        std::fs::write(&kernel, rk::build(LINK, Some(reloc), efi64)).unwrap();
        let image = dir.join(format!("{name}.img"));
        let report = bootpack::Build::new(&kernel)
            .firmware(Firmware::Uefi)
            .write(&image)
            .unwrap_or_else(|e| panic!("{name}: packing failed: {e}"));
        assert_eq!(report.plan.protocol, Protocol::Multiboot2);
        machines.push((name, image, uefi_machine(&dir, name, mem)));
    }
    let handles: Vec<_> = machines
        .into_iter()
        .map(|(name, image, m)| {
            std::thread::spawn(move || {
                let run = if name == "nowhere" {
                    // It halts: stop watching once it says so.
                    qemu::boot_until(
                        &image,
                        &m,
                        "bootpack: halted",
                        Duration::from_secs(2),
                        BOOT_TIMEOUT,
                    )
                } else {
                    qemu::boot_image(&image, &m, BOOT_TIMEOUT)
                };
                (name, run)
            })
        })
        .collect();
    let (_, hash) = rk::payload();
    for h in handles {
        let (name, run) = h.join().unwrap();
        let serial = run.serial_text();
        if name == "nowhere" {
            assert_eq!(
                refusal_line(name, &run, "BPREL"),
                "bootpack: error: no free memory holds the relocatable kernel (0x30000 bytes at a multiple of 0x1000 between 0x80000000 and 0x90000000): give the machine more memory"
            );
            continue;
        }
        assert_eq!(
            run.exit,
            Some(KERNEL_EXIT),
            "{name}: QEMU exit status; serial:\n{serial}"
        );
        let line = rk::Line::find(&serial)
            .unwrap_or_else(|| panic!("{name}: no report on serial:\n{serial}"));
        let (base, entry64) = match name {
            "low" => (0x200_0000, false),
            "staged" => (0x100_0000, false),
            _ => (0xC00_0000 - 0x10_0000, true),
        };
        assert_eq!(
            line,
            rk::Line {
                entry64,
                base,
                tag21: base,
                magic: 0x36D7_6289,
                hash,
                bss: 0,
            },
            "{name}: serial:\n{serial}"
        );
    }
}

/// A kernel that requires a framebuffer (Multiboot 2 framebuffer tag not
/// optional, console flags without EGA text) under UEFI, as GRUB 2.06 EFI
/// reads it ("WxHxD,WxH,auto"): a resolution no GOP mode has falls back to
/// the mode the firmware has set (1280x800x32 on OVMF with QEMU's std
/// VGA), and the kernel is told that one. With no GOP at all (no display
/// adapter) nothing fits: the loader stops with one plain line on COM1 and
/// the firmware console (OVMF mirrors that to COM1 too: the message twice)
/// where GRUB prints "no suitable video mode found" and boots the kernel
/// without a framebuffer; and so does a `--video` mode the GOP lacks
/// (`--video` is exact).
#[test]
fn a_required_framebuffer_no_gop_mode_gives_is_refused() {
    let dir = scratch("uefi-gop-none");
    let cases: [(&'static str, [u32; 3], &[&str], bool); 3] = [
        ("fallback", [1000, 1000, 32], &[], true),
        ("no-gop", [1024, 768, 32], &[], false),
        ("option", [1024, 768, 32], &["1000x1000x32"], true),
    ];
    let mut handles = Vec::new();
    for (name, fb, video, vga) in cases {
        let kernel = dir.join(format!("kernel-{name}"));
        std::fs::write(&kernel, kernels::mb2_framebuffer_kernel(fb, false, 0)).unwrap();
        let image = dir.join(format!("{name}.img"));
        let mut b = bootpack::Build::new(&kernel).firmware(Firmware::Uefi);
        if let Some(v) = video.first() {
            b = b.video(v.parse().unwrap());
        }
        b.write(&image)
            .unwrap_or_else(|e| panic!("{name}: packing failed: {e}"));
        let mut m = uefi_machine(&dir, name, "256M");
        if vga {
            m.extra.extend(["-vga".to_string(), "std".to_string()]);
        }
        handles.push(std::thread::spawn(move || {
            let run = qemu::boot_until(
                &image,
                &m,
                "bootpack: halted",
                Duration::from_secs(2),
                BOOT_TIMEOUT,
            );
            (name, run)
        }));
    }
    let refusal = "no video mode the kernel accepts can be set: the firmware's graphics output (GOP) has no mode that fits, and there is no EGA text under UEFI";
    for h in handles {
        let (name, run) = h.join().unwrap();
        let text = run.serial_text();
        if name == "fallback" {
            let r = report_of(name, &run);
            let fb: Vec<u64> = r
                .get("framebuffer")
                .split_whitespace()
                .map(|v| match v.strip_prefix("0x") {
                    Some(h) => u64::from_str_radix(h, 16).unwrap(),
                    None => v.parse().unwrap(),
                })
                .collect();
            // OVMF's mode on QEMU's std VGA; GRUB 2.06 EFI (with efi_gop)
            // gives this kernel the same (checked 2026-12-01).
            assert_eq!(
                &fb[1..],
                [5120, 1280, 800, 32, 1],
                "{name}: pitch, size, bpp, RGB"
            );
            assert!(
                fb[0] >= 1 << 20,
                "{name}: the framebuffer address {:#x}",
                fb[0]
            );
            assert_eq!(
                r.get("framebuffer_rgb"),
                "16 8 8 8 0 8",
                "{name}: BGR layout"
            );
            continue;
        }
        let line = refusal_line(name, &run, "BPTK");
        assert_eq!(line, format!("bootpack: error: {refusal}"), "{name}");
        assert!(
            text.matches(refusal).count() >= 2,
            "{name}: COM1 and the console:\n{text}"
        );
    }
}

/// A segment that starts in boot-services memory and ends in free memory
/// (OVMF 2022.11 with 256 MiB holds 0x820000-0x1500000: its decompressed
/// DXE volume) is split: the held bytes are staged and moved, the rest is
/// read in place, with a partial last sector; a bss wholly in held memory is
/// zeroed by the trampoline. The kernel checks both where it was linked.
#[test]
fn segments_partly_over_boot_services_memory_are_split() {
    let payload = kernels::Payload::random(0x140_0000, (3 << 20) + 200, 11);
    let bss = (0x90_0000, 0x1_0128);
    let spec = Spec {
        payload: Some(&payload),
        bss: Some(bss),
        ..Spec::new(Shape::Elf32, Headers::Mb1)
    };
    let r = boot_uefi_kernel("uefi-split", &kernels::build_spec(&spec), "256M", &[]);
    assert_eq!(
        r.get("payload"),
        format!("0x{:08x} {} ok", payload.addr, payload.data.len()),
        "the payload arrived intact across the held and the free memory"
    );
    assert_eq!(
        r.get("zero"),
        format!("0x{:08x} {} zero", bss.0, bss.1),
        "the bss in held memory zeroed"
    );
    assert_eq!(r.get("bss"), "zero");
}

/// Real Multiboot kernels nobody here wrote, from Debian packages, boot
/// under OVMF through bootpack's UEFI loader as they do on BIOS (see
/// tests/real_kernels.rs): GNU Mach 1.8 (Multiboot 1, ELF64 at 16 MiB,
/// gzip, a module) reads the converted memory map as its "BIOS" map and
/// lists the module with its string; tboot 1.10.5 (Multiboot 2, gzip, a
/// module) prints its command line and the map, then finds and moves the
/// module. (Xen: `xen_boots_through_its_efi_entry`.)
#[test]
fn debian_kernels_boot_under_ovmf() {
    let installed = |path: &str, package: &str| {
        assert!(
            Path::new(path).is_file(),
            "{path} is missing: this test boots the kernel of the Debian package {package}. \
             Install it: apt-get install -y --no-install-recommends {package}"
        );
        PathBuf::from(path)
    };
    let gnumach = installed("/boot/gnumach-1.8-486.gz", "gnumach-image-1.8-486");
    let tboot = installed("/boot/tboot.gz", "tboot");
    let dir = scratch("uefi-debian");
    let module = dir.join("module.elf");
    std::fs::write(&module, kernels::build(Shape::Elf32, None)).unwrap();
    let mut handles = Vec::new();
    for (name, kernel, args, module_string, done) in [
        (
            "gnumach",
            gnumach,
            "console=com0",
            "marker-module $(task-create) $(task-resume)",
            "multiboot modules",
        ),
        (
            "tboot",
            tboot,
            "logging=serial",
            "marker-kernel arg",
            "TBOOT: moving module 0 (",
        ),
    ] {
        let image = dir.join(format!("{name}.img"));
        bootpack::Build::new(&kernel)
            .name(name)
            .args([args])
            .module(&module, module_string)
            .write(&image)
            .unwrap();
        let m = uefi_machine(&dir, name, "512M");
        handles.push(std::thread::spawn(move || {
            let run = qemu::boot_until(&image, &m, done, Duration::from_secs(2), BOOT_TIMEOUT);
            (name, run)
        }));
    }
    for h in handles {
        let (name, run) = h.join().unwrap();
        let s = run.serial_text();
        let wants: &[&str] = if name == "gnumach" {
            &[
                "GNU Mach 1.8",
                // The usable entry from 1 MiB, as GRUB's conversion of the
                // EFI map gives it (S3 off).
                "biosmem: 000000000000100000:",
                "module 0: marker-module $(task-create) $(task-resume)",
                "1 multiboot modules",
            ]
        } else {
            &[
                "TBOOT: command line: tboot logging=serial",
                "TBOOT: original e820 map:",
                "TBOOT: \t0000000000100000 - ",
                "TBOOT: kernel is ELF format",
                "TBOOT: moving module 0 (",
            ]
        };
        for want in wants {
            assert!(s.contains(want), "{name}: no {want:?} on COM1:\n{s}");
        }
    }
}
