//! Kernels that load below 1 MiB: over stage 1 and 2 (0x8000, 0x9000, as a
//! hypervisor test-suite kernel and GRUB's multiboot-platform image are
//! linked), over the bounce and record buffers, over the information arena
//! and the fast read paths' structures. Stage 2 stages such segments
//! elsewhere, puts the information where the kernel is not, and moves them
//! into place as its last step (boot/proto/src/relocate.rs). The test
//! kernel checks a payload there byte for byte and a bss there for zero,
//! and enters through a jump stub below 1 MiB; its command line and
//! modules must arrive intact. QEMU's `-kernel`, which boots a kernel
//! linked wholly at 0x8000, is the model; a small such kernel boots the
//! same way under both. (QEMU cannot boot the test kernel variants: it
//! loads an ELF kernel as one block from its lowest to its highest segment,
//! and the test kernel's image stays at 1 MiB, so that block would cover
//! the VGA memory and QEMU's own option ROM.)

mod support;

use std::time::Duration;

use support::memplan::{BOUNCE_ADDR, INFO_ARENA_ADDR};

use support::kernels::{self, Headers, Payload, Shape, Spec};
use support::qemu::{self, Machine};
use support::report::Report;
use support::scratch;

const BOOT_TIMEOUT: Duration = Duration::from_secs(60);
/// isa-debug-exit: the kernel writes 0x10, QEMU exits (0x10 << 1) | 1.
const KERNEL_EXIT: i32 = 0x21;
const MIB: u64 = 1 << 20;

/// A low kernel: its payload, bss and entry stub, all below 1 MiB.
struct Low {
    name: &'static str,
    shape: Shape,
    headers: Headers,
    payload: (u64, usize),
    bss: (u64, u64),
    stub: u64,
    machine: &'static str,
}

/// Module bytes and strings: odd sizes, one over a page.
fn modules() -> Vec<(Vec<u8>, String)> {
    vec![
        (
            kernels::random_bytes(5000, 71),
            "initrd root=/dev/ram0".into(),
        ),
        (
            kernels::random_bytes(100_003, 72),
            "second \"module\"".into(),
        ),
        (Vec::new(), String::new()),
    ]
}

const ARGS: [&str; 3] = ["low", "kernel", "UTF-8 é"];

/// Packs and boots `k` with three modules and a command line; checks
/// everything arrived where it belongs. Returns the report.
fn boot_low(k: &Low) -> Report {
    let payload = Payload::random(k.payload.0, k.payload.1, k.payload.0 ^ 0x10e);
    let spec = Spec {
        payload: Some(&payload),
        bss: Some(k.bss),
        entry_stub: Some(k.stub),
        ..Spec::new(k.shape, k.headers)
    };
    let dir = scratch(k.name);
    let kernel = dir.join("kernel");
    std::fs::write(&kernel, kernels::build_spec(&spec)).unwrap();
    let mods = modules();
    let mut b = bootpack::Build::new(&kernel).args(ARGS);
    for (i, (data, string)) in mods.iter().enumerate() {
        let path = dir.join(format!("module{i}"));
        std::fs::write(&path, data).unwrap();
        b = b.module(path, string);
    }
    let image = dir.join("disk.img");
    let report = b
        .write(&image)
        .unwrap_or_else(|e| panic!("{}: packing failed: {e}", k.name));
    let segments: Vec<(u64, u64)> = report
        .plan
        .segments
        .iter()
        .map(|s| (s.dest, s.end()))
        .collect();
    assert!(
        segments.iter().any(|s| s.0 < MIB),
        "{}: a segment below 1 MiB",
        k.name
    );

    let run = qemu::boot_image(&image, &Machine::new(k.machine, "128M"), BOOT_TIMEOUT);
    let text = run.serial_text();
    assert_eq!(
        run.exit,
        Some(KERNEL_EXIT),
        "{}: QEMU exit status; serial:\n{text}",
        k.name
    );
    assert!(
        run.serial.starts_with(b"\r\nbootpack demo kernel:"),
        "{}: nothing before the kernel's output:\n{text}",
        k.name
    );
    let r = Report::parse(&run.serial);
    let what = k.name;
    assert_eq!(
        r.get("payload"),
        format!("0x{:08x} {} ok", k.payload.0, k.payload.1),
        "{what}: the payload byte for byte"
    );
    assert_eq!(
        r.get("zero"),
        format!("0x{:08x} {} zero", k.bss.0, k.bss.1),
        "{what}: the bss zeroed"
    );
    assert_eq!(r.get("bss"), "zero", "{what}: the image's own bss");
    assert_eq!(r.cmdline(), report.cmdline, "{what}: command line bytes");
    assert_eq!(
        r.get("selectors"),
        "cs=0x0008 ds=0x0010 es=0x0010 fs=0x0010 gs=0x0010 ss=0x0010"
    );
    assert_eq!(
        r.get("eflags"),
        "0x00000002",
        "{what}: EFLAGS after the moves"
    );

    // Modules: bytes and strings as packed, page-aligned, clear of the
    // kernel and of each other, in usable RAM.
    assert_eq!(r.mods.len(), mods.len(), "{what}: module count");
    let mut taken = segments.clone();
    for (i, (got, (data, string))) in r.mods.iter().zip(&mods).enumerate() {
        assert_eq!(
            got.end - got.start,
            data.len() as u64,
            "{what}: module {i} size"
        );
        assert_eq!(
            got.hash,
            kernels::bytes_hash(data),
            "{what}: module {i} bytes"
        );
        assert_eq!(&got.string, string, "{what}: module {i} string");
        assert_eq!(got.start % 4096, 0, "{what}: module {i} aligned");
        let end = got.end.max(got.start + 1);
        assert!(
            r.mmap
                .iter()
                .any(|e| e.kind == 1 && e.base <= got.start && end <= e.base + e.len),
            "{what}: module {i} in usable RAM: {got:?}"
        );
        for &(a, b) in &taken {
            assert!(
                got.end <= a || got.start >= b,
                "{what}: module {i} {got:?} overlaps {a:#x}..{b:#x}"
            );
        }
        taken.push((got.start, got.end));
    }

    // The information: out of page 0, below 1 GiB, where no segment or
    // module lies.
    let parts: Vec<(&str, u64, u64)> = if r.get("magic") == "0x36d76289" {
        vec![("information block", r.num("info"), r.num("mbi2_size"))]
    } else {
        vec![
            ("info", r.num("info"), 0x58),
            (
                "cmdline",
                r.num("cmdline_addr"),
                report.cmdline.len() as u64 + 1,
            ),
            ("mmap", r.num("mmap_addr"), r.num("mmap_length")),
            ("mods", r.num("mods_addr"), 16 * r.num("mods_count")),
            ("loader_name", r.num("loader_name_addr"), 16),
        ]
    };
    for (part, start, len) in parts {
        let end = start + len;
        assert!(
            start >= 0x1000 && end <= 1 << 30,
            "{what}: {part} at {start:#x}..{end:#x}"
        );
        for &(a, b) in &taken {
            assert!(
                end <= a || start >= b,
                "{what}: {part} at {start:#x}..{end:#x} overlaps {a:#x}..{b:#x}"
            );
        }
    }
    r
}

#[test]
fn kernel_over_stage_1_and_2_and_the_bounce_buffer_multiboot1() {
    // 0x8000-0x30000: stage 2's code, page tables and stack; bss over the
    // bounce buffer (which holds disk data when stage 2 ends); entered
    // through a stub on the real-mode stack.
    let r = boot_low(&Low {
        name: "over-stage2-mb1",
        shape: Shape::Elf32,
        headers: Headers::Mb1,
        payload: (0x8000, 0x28000),
        bss: (BOUNCE_ADDR as u64, 0x10000),
        stub: 0x7000,
        machine: "pc",
    });
    assert_eq!(r.get("magic"), "0x2badb002");
    // The information stays in its arena: the kernel is not there.
    assert_eq!(r.num("info"), INFO_ARENA_ADDR as u64);
}

#[test]
fn kernel_over_stage_1_and_2_and_the_bounce_buffer_multiboot2() {
    let r = boot_low(&Low {
        name: "over-stage2-mb2",
        shape: Shape::Elf64,
        headers: Headers::Mb2,
        payload: (0x8000, 0x28000),
        bss: (BOUNCE_ADDR as u64, 0x10000),
        stub: 0x7000,
        machine: "q35",
    });
    assert_eq!(r.get("magic"), "0x36d76289");
}

#[test]
fn kernel_at_0x9000_over_the_record_buffer() {
    // GRUB's multiboot-platform image starts at 0x9000; this payload runs
    // on over the bounce and record buffers; the bss lies between the fast
    // paths' structures and the EBDA, which is loaded in place.
    boot_low(&Low {
        name: "at-0x9000",
        shape: Shape::Elf64,
        headers: Headers::Mb1,
        payload: (0x9000, 0x40000),
        bss: (0x90000, 0x8000),
        stub: 0x500,
        machine: "pc",
    });
}

#[test]
fn kernel_over_the_information_arena_and_the_fast_path_structures() {
    // The whole information arena and, on q35 (AHCI: the fast read path
    // runs, its command structures at 0x80000), a bss over them: the
    // information must go elsewhere, out of the kernel's way.
    for (headers, name) in [(Headers::Mb2, "arena-mb2"), (Headers::Mb1, "arena-mb1")] {
        let r = boot_low(&Low {
            name,
            shape: Shape::Elf32,
            headers,
            payload: (0x40000, 0x40000),
            bss: (0x80000, 0x10000),
            stub: 0x1000,
            machine: "q35",
        });
        let info = r.num("info");
        assert!(
            !(0x40000..0x90000).contains(&info),
            "{name}: the information at {info:#x} must have left the arena"
        );
    }
}

// A whole kernel linked at 0x8000, as the hypervisor test-suite kernel of
// the issue is: 32-bit code that checks EAX for the Multiboot 1 magic,
// prints "low kernel at 0x8000 ok" (or "bad magic") on COM1 and exits QEMU
// through isa-debug-exit (status 0x21, or 0x23). Position-independent (no
// absolute address), assembled into a data section of the test binary.
core::arch::global_asm!(
    r#"
    .pushsection .rodata.bootpack_test_low_kernel, "a"
    .code32
    .global bootpack_test_low_code_start
bootpack_test_low_code_start:
    movl    %eax, %ebp
    movw    $0x3F8, %dx
    cmpl    $0x2BADB002, %ebp
    jne     1f
    .irp c, 'l','o','w',' ','k','e','r','n','e','l',' ','a','t',' ','0','x','8','0','0','0',' ','o','k','\n'
    movb    $\c, %al
    outb    %al, %dx
    .endr
    movb    $0x10, %al
    jmp     2f
1:
    .irp c, 'b','a','d',' ','m','a','g','i','c','\n'
    movb    $\c, %al
    outb    %al, %dx
    .endr
    movb    $0x11, %al
2:
    movw    $0xF4, %dx
    outb    %al, %dx
3:
    cli
    hlt
    jmp     3b
    .global bootpack_test_low_code_end
bootpack_test_low_code_end:
    .code64
    .popsection
"#,
    options(att_syntax)
);

extern "C" {
    static bootpack_test_low_code_start: u8;
    static bootpack_test_low_code_end: u8;
}

/// The flat kernel at 0x8000: a Multiboot 1 header with the a.out kludge
/// (flags 0x10003), the code after it, 64 KiB of bss over the rest of
/// stage 2.
fn kernel_at_0x8000() -> Vec<u8> {
    let start = &raw const bootpack_test_low_code_start;
    let end = &raw const bootpack_test_low_code_end;
    // SAFETY: both labels are in the same read-only section of this
    // binary, `end` after `start`; the bytes between are plain data.
    let code = unsafe { std::slice::from_raw_parts(start, end.offset_from(start) as usize) };
    let base = 0x8000u32;
    let len = 32 + code.len() as u32;
    let flags = 0x0001_0003u32;
    let magic = 0x1BAD_B002u32;
    let header = [
        magic,
        flags,
        0u32.wrapping_sub(magic.wrapping_add(flags)),
        base,                 // header_addr
        base,                 // load_addr
        base + len,           // load_end_addr
        base + len + 0x10000, // bss_end_addr
        base + 32,            // entry_addr
    ];
    let mut file: Vec<u8> = header.iter().flat_map(|w| w.to_le_bytes()).collect();
    file.extend_from_slice(code);
    file
}

#[test]
fn a_kernel_linked_at_0x8000_boots_as_under_qemu() {
    let dir = scratch("at-0x8000");
    let kernel = dir.join("low.bin");
    std::fs::write(&kernel, kernel_at_0x8000()).unwrap();
    // The model: QEMU's own loader.
    let run = qemu::boot_kernel(&kernel, "low", &Machine::new("pc", "64M"), BOOT_TIMEOUT);
    assert_eq!(
        run.serial_text(),
        "low kernel at 0x8000 ok\n",
        "QEMU -kernel"
    );
    assert_eq!(run.exit, Some(KERNEL_EXIT));
    // bootpack, with a module (placed after the kernel, clear of stage 2),
    // on IDE and AHCI.
    let module = dir.join("module");
    std::fs::write(&module, kernels::random_bytes(70_000, 9)).unwrap();
    let image = dir.join("disk.img");
    bootpack::Build::new(&kernel)
        .protocol(bootpack::Protocol::Multiboot1)
        .module(&module, "m")
        .write(&image)
        .unwrap_or_else(|e| panic!("packing failed: {e}"));
    for machine in ["pc", "q35"] {
        let run = qemu::boot_image(&image, &Machine::new(machine, "64M"), BOOT_TIMEOUT);
        assert_eq!(run.serial_text(), "low kernel at 0x8000 ok\n", "{machine}");
        assert_eq!(run.exit, Some(KERNEL_EXIT), "{machine}");
    }
}

#[test]
fn segment_in_the_ebda_halts_with_a_message() {
    // SeaBIOS reports 0-0x9FBFF usable and the EBDA after it reserved:
    // packed fine (another machine may have RAM there), refused at boot.
    let payload = Payload::random(0x9f800, 0x800, 1);
    let spec = Spec {
        payload: Some(&payload),
        ..Spec::new(Shape::Elf32, Headers::Mb1)
    };
    let dir = scratch("ebda");
    let kernel = dir.join("kernel");
    std::fs::write(&kernel, kernels::build_spec(&spec)).unwrap();
    let image = dir.join("disk.img");
    bootpack::Build::new(&kernel).write(&image).unwrap();
    let message = "bootpack: error: kernel needs 0x9F800-0x9FFFF but the BIOS memory map does not report it as usable RAM: link the kernel elsewhere";
    let run = qemu::boot_until(
        &image,
        &Machine::new("pc", "64M"),
        "bootpack: halted",
        Duration::from_secs(1),
        BOOT_TIMEOUT,
    );
    let text = run.serial_text();
    assert_eq!(
        text,
        format!("{message}\r\nbootpack: halted\r\n"),
        "exactly the message on COM1, once"
    );
    assert_eq!(run.exit, None, "QEMU still running: halted, not rebooting");
    // The screen wraps at 80 columns: rejoin its rows (trailing blanks
    // were trimmed) before looking for the whole line.
    let vga = run.vga.as_deref().unwrap_or_default();
    let screen: String = vga.lines().map(|l| format!("{l:<80}")).collect();
    assert!(screen.contains(message), "VGA screen:\n{vga}");
}
