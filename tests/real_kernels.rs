//! Real third-party Multiboot kernels from Debian packages, packed by
//! bootpack exactly as installed (gzip-compressed where Debian ships them
//! so) and booted in QEMU (TCG). Each test asserts the kernel's own output:
//! that it ran, got its command line, the BIOS memory map and its modules.
//! A missing package fails the test with the command that installs it.
//!
//! | test | package | protocol | success marker |
//! |---|---|---|---|
//! | xen_* | xen-hypervisor-4.17-amd64 | MB2 / MB1, gzip, a module | COM1: bootloader name, command line, E820 map, then it parses the module as dom0 and refuses it ("Not a Xen-ELF image") |
//! | multiboot_example | multiboot | MB1, video mode request | it stops at its halt loop (having printed every field) in the 1024x768x32 mode it asked for; its stack and information show the magic, command line, memory map and frame buffer |
//! | grub_invaders | grub-invaders | MB1 a.out kludge | screen: the invaders' rows of aliens |
//! | gnumach | gnumach-image-1.8-486 | MB1 ELF64 at 16 MiB, gzip, a module | COM1 (`console=com0`): its memory map and the module's string |
//! | tboot | tboot | MB2, gzip, a module | COM1: command line, E820 map, then its checks of the module |

mod support;

use std::path::{Path, PathBuf};
use std::time::Duration;

use support::kernels::{self, Shape};
use support::qemu::{self, Machine, Monitor, Run};
use support::{bootpack, scratch};

const BOOT_TIMEOUT: Duration = Duration::from_secs(120);

/// The installed file `path` of Debian package `package`; fails the test
/// with the install command when it is missing.
fn installed(path: &str, package: &str) -> PathBuf {
    let p = PathBuf::from(path);
    assert!(
        p.is_file(),
        "{path} is missing: this test boots the kernel of the Debian package {package}. \
         Install it: apt-get install -y --no-install-recommends {package}"
    );
    p
}

/// `bootpack build KERNEL -o disk.img OPTIONS -- ARGS` in `dir`.
fn build(dir: &Path, kernel: &Path, options: &[String], args: &[&str]) -> PathBuf {
    let image = dir.join("disk.img");
    let mut argv: Vec<String> = vec![
        "build".into(),
        kernel.display().to_string(),
        "-o".into(),
        image.display().to_string(),
    ];
    argv.extend(options.iter().cloned());
    argv.push("--".into());
    argv.extend(args.iter().map(|a| a.to_string()));
    let r = bootpack(&argv);
    assert!(
        r.status.success(),
        "bootpack build {}: {}",
        kernel.display(),
        String::from_utf8_lossy(&r.stderr)
    );
    image
}

/// A small ELF32 file (the test kernel) to pass as a module: a valid ELF
/// that is neither a Xen guest nor a Mach server.
fn elf_module(dir: &Path) -> PathBuf {
    let p = dir.join("module.elf");
    std::fs::write(&p, kernels::build(Shape::Elf32, None)).unwrap();
    p
}

fn boot(
    image: &Path,
    mem: &'static str,
    done: impl FnMut(&str, &str, &mut Monitor) -> bool,
) -> Run {
    let disk = vec![
        "-drive".into(),
        format!("file={},format=raw", image.display()),
    ];
    qemu::boot_watch(&disk, &Machine::new("pc", mem), done, BOOT_TIMEOUT)
}

fn assert_has(haystack: &str, needle: &str, what: &str, run: &Run) {
    assert!(
        haystack.contains(needle),
        "{what} must show {needle:?}\n--- serial:\n{}\n--- screen:\n{}",
        run.serial_text(),
        run.vga.as_deref().unwrap_or("")
    );
}

// ---- Xen ----

const XEN: &str = "/boot/xen-4.17-amd64.gz";
const XEN_PKG: &str = "xen-hypervisor-4.17-amd64";

/// Xen with no dom0 kernel it can use: it prints its banner, the boot
/// loader's name, its command line and the E820 map, brings up the
/// machine, then parses the module as the dom0 kernel and stops with a
/// panic naming why (an ELF without Xen notes). The module has to arrive
/// intact for that message; a missing one gives "dom0 kernel not specified".
fn xen(protocol: &str) {
    let xen = installed(XEN, XEN_PKG);
    let dir = scratch(&format!("real-xen-{protocol}"));
    let module = elf_module(&dir);
    let image = build(
        &dir,
        &xen,
        &[
            "--protocol".into(),
            protocol.into(),
            "--name".into(),
            "xen".into(),
            "--module".into(),
            format!("{}=dom0 marker-arg", module.display()),
        ],
        &["console=com1", "com1=115200,8n1"],
    );
    // Xen reboots five seconds after its panic; -no-reboot ends QEMU then.
    let run = boot(&image, "512M", |serial, _, _| {
        serial.contains("Could not construct domain 0") || serial.contains("Reboot in five seconds")
    });
    let s = run.serial_text();
    assert_has(&s, "(XEN) Xen version 4.17", "Xen's banner", &run);
    assert_has(&s, "(XEN) Bootloader: bootpack ", "Xen", &run);
    assert_has(
        &s,
        "(XEN) Command line: console=com1 com1=115200,8n1\r\n",
        "Xen (the command line it parsed: its output went to COM1)",
        &run,
    );
    assert_has(&s, "(XEN) Xen-e820 RAM map:", "Xen", &run);
    assert_has(
        &s,
        "(XEN)  [0000000000100000, 000000001ffdffff] (usable)",
        "Xen's E820 map (all of the 512 MiB above 1 MiB)",
        &run,
    );
    assert_has(
        &s,
        "(XEN) ERROR: Not a Xen-ELF image: No ELF notes or '__xen_guest' section found",
        "Xen, having read the module as dom0's kernel,",
        &run,
    );
}

#[test]
fn xen_multiboot2() {
    xen("multiboot2");
}

#[test]
fn xen_multiboot1() {
    xen("multiboot1");
}

// ---- the Multiboot specification's example kernel ----

/// What the example kernel was handed, read back from its stack and the
/// information structure once it has stopped.
#[derive(Debug)]
struct ExampleSaw {
    magic: u32,
    flags: u32,
    cmdline: String,
    mmap_length: u32,
    /// framebuffer_width, _height, _bpp, _type (flag bit 12).
    framebuffer: (u32, u32, u8, u8),
    /// The size of QEMU's screen ("1024 768" from the screendump's header).
    screen: String,
}

fn u32_at(b: &[u8], off: usize) -> u32 {
    b.get(off..off + 4)
        .map(|w| u32::from_le_bytes(w.try_into().unwrap()))
        .unwrap_or(0)
}

#[test]
fn multiboot_example() {
    // The specification's example kernel asks for a 1024x768x32 linear
    // frame buffer (header flag bit 2), prints every information field with
    // its own printf to the VGA text buffer at 0xB8000 (invisible once
    // GRUB has set the mode it asked for: GRUB shows a black 1024x768
    // screen), returns to boot.S, prints "Halted." and stops at its label
    // `loop` (hlt; jmp loop at 0x10004D). Its stack then holds what cmain
    // was called with: the magic and the information's address. So the
    // marker is: stopped at `loop` (it ran all of cmain), in the video mode
    // it asked for, having been handed the right magic, command line,
    // memory map and frame buffer.
    let kernel = installed("/usr/lib/multiboot/examples/kernel", "multiboot");
    let dir = scratch("real-mbexample");
    let image = build(
        &dir,
        &kernel,
        &["--name".into(), "mbexample".into()],
        &["marker-arg"],
    );
    let shot = dir.join("screen.ppm");
    let mut saw = None;
    let run = boot(&image, "128M", |_, _, mon| {
        let at_loop = matches!(mon.register("EIP"), Some(0x10_004D..=0x10_004F));
        if !at_loop || mon.register("HLT") != Some(1) {
            return false;
        }
        // After `push $halt_message; call printf`: [halt_message, magic, info].
        let esp = mon.register("ESP").unwrap_or(0);
        let stack = mon.read_memory(esp, 12);
        let info_at = u32_at(&stack, 8) as u64;
        let info = mon.read_memory(info_at, 116);
        let cmdline = mon.read_memory(u32_at(&info, 16) as u64, 256);
        let cmdline = cmdline.split(|&b| b == 0).next().unwrap_or(&[]).to_vec();
        mon.command(&format!("screendump \"{}\"", shot.display()));
        let header = std::fs::read(&shot).unwrap_or_default();
        let screen = String::from_utf8_lossy(&header[..header.len().min(20)])
            .lines()
            .nth(1)
            .unwrap_or("")
            .to_string();
        saw = Some(ExampleSaw {
            magic: u32_at(&stack, 4),
            flags: u32_at(&info, 0),
            cmdline: String::from_utf8_lossy(&cmdline).into_owned(),
            mmap_length: u32_at(&info, 44),
            framebuffer: (
                u32_at(&info, 100),
                u32_at(&info, 104),
                info.get(108).copied().unwrap_or(0),
                info.get(109).copied().unwrap_or(0),
            ),
            screen,
        });
        true
    });
    let saw = saw.unwrap_or_else(|| {
        panic!(
            "the example kernel must run to its halt loop at 0x10004D\n--- serial:\n{}\n--- screen:\n{}",
            run.serial_text(),
            run.vga.as_deref().unwrap_or("")
        )
    });
    assert_eq!(saw.magic, 0x2BAD_B002, "{saw:?}");
    assert_eq!(saw.cmdline, "mbexample marker-arg", "{saw:?}");
    assert!(
        saw.flags & (1 << 6) != 0 && saw.mmap_length >= 5 * 24,
        "the memory map: {saw:?}"
    );
    assert!(
        saw.flags & (1 << 12) != 0,
        "the frame buffer fields (flag bit 12): {saw:?}"
    );
    assert_eq!(
        saw.framebuffer,
        (1024, 768, 32, 1),
        "the mode it asked for, RGB: {saw:?}"
    );
    assert_eq!(
        saw.screen, "1024 768",
        "QEMU's screen must be in that mode: {saw:?}"
    );
}

// ---- GRUB Invaders ----

#[test]
fn grub_invaders() {
    // A flat ELF with the a.out kludge that writes its game to the VGA text
    // screen: rows of "-*-" aliens above the player's ship.
    let kernel = installed("/boot/invaders.exec", "grub-invaders");
    let dir = scratch("real-invaders");
    let image = build(&dir, &kernel, &[], &[]);
    let aliens = |screen: &str| screen.matches("-*-").count();
    let run = boot(&image, "64M", |_, screen, _| aliens(screen) >= 20);
    let screen = run.vga.clone().unwrap_or_default();
    assert!(
        aliens(&screen) >= 20,
        "the screen must show the invaders' aliens; it shows:\n{screen}\n--- serial:\n{}",
        run.serial_text()
    );
}

// ---- GNU Mach ----

#[test]
fn gnumach() {
    // ELF64 file, 32-bit entry, loaded by program headers at 16 MiB.
    // `console=com0` moves its console to COM1 (proof it got the command
    // line); it prints the BIOS memory map as it took it and each module
    // with its string (the line after it counts them), then fails to start
    // the module, which is no 64-bit Mach server.
    let kernel = installed("/boot/gnumach-1.8-486.gz", "gnumach-image-1.8-486");
    let dir = scratch("real-gnumach");
    let module = elf_module(&dir);
    let image = build(
        &dir,
        &kernel,
        &[
            "--name".into(),
            "gnumach".into(),
            "--module".into(),
            format!(
                "{}=marker-module $(task-create) $(task-resume)",
                module.display()
            ),
        ],
        &["console=com0"],
    );
    let run = boot(&image, "256M", |serial, _, _| {
        serial.contains("multiboot modules")
    });
    let s = run.serial_text();
    assert_has(&s, "GNU Mach 1.8", "COM1 (console=com0)", &run);
    assert_has(
        &s,
        "biosmem: 000000000000100000:00000000000ffe0000, available",
        "gnumach's memory map (256 MiB)",
        &run,
    );
    assert_has(
        &s,
        "module 0: marker-module $(task-create) $(task-resume)",
        "gnumach",
        &run,
    );
    assert_has(&s, "1 multiboot modules", "gnumach", &run);
}

// ---- tboot ----

#[test]
fn tboot() {
    // tboot measures and launches a kernel with Intel TXT; on QEMU (no TXT,
    // no TPM) it says so and goes on. It prints its command line and the
    // E820 map, then looks at the module it would launch.
    let kernel = installed("/boot/tboot.gz", "tboot");
    let dir = scratch("real-tboot");
    let module = elf_module(&dir);
    let image = build(
        &dir,
        &kernel,
        &[
            "--name".into(),
            "tboot".into(),
            "--module".into(),
            format!("{}=marker-kernel arg", module.display()),
        ],
        &["logging=serial"],
    );
    let run = boot(&image, "512M", |serial, _, _| {
        serial.contains("shutdown_system() called")
    });
    let s = run.serial_text();
    assert_has(
        &s,
        "TBOOT: command line: tboot logging=serial",
        "tboot",
        &run,
    );
    assert_has(&s, "TBOOT: original e820 map:", "tboot", &run);
    assert_has(
        &s,
        "TBOOT: \t0000000000100000 - 000000001ffe0000  (1)",
        "tboot's E820 map",
        &run,
    );
    // It finds the module, checks its format and moves it (the last step
    // before the TXT launch it cannot do here).
    assert_has(&s, "TBOOT: kernel is ELF format", "tboot", &run);
    assert_has(&s, "TBOOT: moving module 0 (", "tboot", &run);
}
