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

use bootpack::{Firmware, Protocol, Table};
use bootpack_proto::layout::{PARTITION_START_LBA, SECTOR};
use bootpack_proto::record::Record;
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

/// The handoff under UEFI: what tests/boot.rs checks on BIOS, with the
/// memory map converted from the EFI map as GRUB converts it and the
/// information anywhere out of page 0 below 1 GiB.
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
            bootpack_proto::mb1_info::INFO_LEN as u64,
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
        let text = run.serial_text();
        // The plain line on COM1 (OVMF mirrors ConOut to the same port
        // with its escapes; the loader's own line has none).
        let line = text
            .split("\r\n")
            .find(|l| l.starts_with("bootpack: error: "))
            .unwrap_or_else(|| panic!("{what}: no plain error line:\n{text}"));
        assert!(line.contains(message), "{what}: {line:?}");
        assert!(
            line.ends_with("the disk image is damaged, rebuild it"),
            "{what}: {line:?}"
        );
        assert!(text.contains("\r\nbootpack: halted\r\n"), "{what}: {text}");
        assert!(!text.contains("BPTK"), "{what}: the kernel must not run");
        assert_eq!(run.exit, None, "{what}: halted, not rebooting or exiting");
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
    let sum = format!("{:#018x}", bootpack_proto::checksum::fletcher64(efi));
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
        bootpack_proto::acpi::valid_at(&rsdp, 0),
        Some(rsdp.len()),
        "a valid RSDP, whole"
    );
    assert_eq!(r.get("eflags"), "0x00000002");
    assert_eq!(r.get("bss"), "zero");
}

/// The test kernel (ELF32, Multiboot 1) asking for a graphics mode
/// (mode_type 0, width, height, depth).
fn mb1_video_kernel(width: u32, height: u32, depth: u32) -> Vec<u8> {
    use bootpack_proto::mb1_header;
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
    let dir = scratch("uefi-gop");
    let kernel = dir.join("kernel");
    std::fs::write(&kernel, mb1_video_kernel(1024, 768, 32)).unwrap();
    let image = dir.join("disk.img");
    bootpack::Build::new(&kernel)
        .firmware(Firmware::Uefi)
        .write(&image)
        .unwrap();
    let mut m = uefi_machine(&dir, "gop", "256M");
    m.extra.extend(["-vga".to_string(), "std".to_string()]);
    let run = qemu::boot_image(&image, &m, BOOT_TIMEOUT);
    let r = report_of("ovmf-gop", &run);
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
/// terminated). Xen prints its banner, bootpack's name, the command line,
/// the memory map it read from the firmware itself ("EFI RAM map"), and
/// then refuses the module given as dom0 (not an ELF): the module arrived.
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

/// The `--firmware both` image in every cloud format boots under OVMF
/// (QEMU reads VHD, VMDK and qcow2 itself; the gce archive's disk.raw is
/// extracted first): the kernel reports the packed command line.
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
    for (ext, qemu_format) in [
        ("vhd", "vpc"),
        ("vmdk", "vmdk"),
        ("qcow2", "qcow2"),
        ("tar.gz", "raw"),
    ] {
        let out = dir.join(format!("disk.{ext}"));
        let report = bootpack::Build::new(&kernel)
            .args(["format", ext])
            .firmware(Firmware::Both)
            .write(&out)
            .unwrap();
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
    let dir = scratch("uefi-deferred");
    let payload = kernels::Payload::random(16 << 20, 3 << 20, 7);
    let spec = Spec {
        payload: Some(&payload),
        ..Spec::new(Shape::Elf32, Headers::Mb1)
    };
    let kernel = dir.join("kernel");
    std::fs::write(&kernel, kernels::build_spec(&spec)).unwrap();
    let image = dir.join("disk.img");
    bootpack::Build::new(&kernel)
        .firmware(Firmware::Uefi)
        .write(&image)
        .unwrap();
    let m = uefi_machine(&dir, "deferred", "256M");
    let run = qemu::boot_image(&image, &m, BOOT_TIMEOUT);
    let r = report_of("ovmf-deferred", &run);
    assert_eq!(
        r.get("payload"),
        format!("0x{:08x} {} ok", payload.addr, payload.data.len()),
        "the payload arrived intact at its address"
    );
    assert_eq!(r.get("bss"), "zero");
    assert_eq!(r.get("eflags"), "0x00000002");
}

/// A segment that starts in boot-services memory and ends in free memory
/// (OVMF 2022.11 with 256 MiB holds 0x820000-0x1500000: its decompressed
/// DXE volume) is split: the held bytes are staged and moved, the rest is
/// read in place, with a partial last sector; a bss wholly in held memory is
/// zeroed by the trampoline. The kernel checks both where it was linked.
#[test]
fn segments_partly_over_boot_services_memory_are_split() {
    let dir = scratch("uefi-split");
    let payload = kernels::Payload::random(0x140_0000, (3 << 20) + 200, 11);
    let bss = (0x90_0000, 0x1_0128);
    let spec = Spec {
        payload: Some(&payload),
        bss: Some(bss),
        ..Spec::new(Shape::Elf32, Headers::Mb1)
    };
    let kernel = dir.join("kernel");
    std::fs::write(&kernel, kernels::build_spec(&spec)).unwrap();
    let image = dir.join("disk.img");
    bootpack::Build::new(&kernel)
        .firmware(Firmware::Uefi)
        .write(&image)
        .unwrap();
    let m = uefi_machine(&dir, "split", "256M");
    let run = qemu::boot_image(&image, &m, BOOT_TIMEOUT);
    let r = report_of("ovmf-split", &run);
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
