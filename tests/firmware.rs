//! Odd firmware: a BIOS that starts the MBR with DL outside 0x80-0xFF, a
//! 386-class CPU without CPUID, and Bochs' BIOS.
//!
//! - DL: QEMU boots a floppy whose boot sector loads the hard disk's MBR
//!   (drive 0x80) to 0x7C00 and jumps to it with DL = 0, as DOSBox's BIOS
//!   does when it boots a hard disk image (seen here: its `boot -l c` hands
//!   the MBR DL = 0). Stage 1 must take that as 0x80 and boot the demo.
//! - No CPUID: DOSBox with `cputype=386` (Debian `dosbox`) runs a real 386
//!   model: CPUID is an invalid opcode and EFLAGS.ID cannot be changed.
//!   DOSBox's BIOS does not serve the hard disk image through INT 13h after
//!   `boot`, so a floppy boot sector here loads bootpack's stage 2 (taken
//!   from a real image) from the floppy and jumps to it as stage 1 would;
//!   stage 2 must stop with its long-mode message on COM1, which DOSBox
//!   sends to a TCP socket the test listens on. (Bochs, the other
//!   emulator Debian has, emulates no CPU older than a Pentium, which has
//!   CPUID.)
//! - Bochs' own BIOS (rombios, not SeaBIOS) boots the demo image.
//!
//! The boot sectors are 16-bit code assembled by the Rust toolchain into a
//! data section of the test binary, as tests/support/no_edd_rom.rs does.

mod support;

use std::io::Read;
use std::net::TcpListener;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use bootpack::proto::layout::{STAGE2_LBA, STAGE2_MAX_SECTORS};
use support::asm_image::boot_sector as sector;
use support::qemu::{self, Machine};
use support::report::Report;
use support::{bootpack, scratch};

const BOOT_TIMEOUT: Duration = Duration::from_secs(90);
/// isa-debug-exit: the demo kernel writes 0x10, QEMU exits (0x10 << 1) | 1.
const KERNEL_EXIT: i32 = 0x21;

core::arch::global_asm!(
    r#"
    .pushsection .rodata.bootpack_test_firmware, "a"
    .code16

# ---- Floppy boot sector: loads the first hard disk's MBR to 0000:7C00 and
# jumps to it with DL = 0, as a BIOS that passes the wrong drive does.
# Relies on: loaded at 0x7C00 by the BIOS; the hard disk as drive 0x80;
# 0x0600-0x07FF free (it moves itself there first, since the MBR goes
# where it is).
    .global bootpack_test_chain_start
bootpack_test_chain_start:
    cli
    xorw    %ax, %ax
    movw    %ax, %ds
    movw    %ax, %es
    movw    %ax, %ss
    movw    $0x7C00, %sp
    cld
    movw    $0x7C00, %si
    movw    $0x0600, %di
    movw    $256, %cx
    rep movsw
    ljmp    $0, $(0x600 + chain_low - bootpack_test_chain_start)
chain_low:
    sti
    movw    $0x0201, %ax            # read 1 sector
    movw    $0x7C00, %bx            # to 0000:7C00
    movw    $0x0001, %cx            # cylinder 0, sector 1
    movw    $0x0080, %dx            # head 0, drive 0x80
    int     $0x13
    jc      chain_failed
    xorw    %dx, %dx                # DL = 0: the odd BIOS
    ljmp    $0, $0x7C00
chain_failed:
    movw    $0x3F8, %dx             # "F" on COM1 and stop
    movb    $'F', %al
    outb    %al, %dx
chain_halt:
    cli
    hlt
    jmp     chain_halt
    .global bootpack_test_chain_end
bootpack_test_chain_end:

# ---- Floppy boot sector: loads floppy sectors 1-127 (the test puts a
# bootpack image's stage 2 sectors there) to 0000:7E00 and jumps there with
# DL = 0x80, as stage 1 does. Relies on: a 1.44 MB floppy (18 sectors per
# track, 2 heads) as drive 0; 386 instructions are not used.
    .global bootpack_test_s2load_start
bootpack_test_s2load_start:
    cli
    xorw    %ax, %ax
    movw    %ax, %ds
    movw    %ax, %ss
    movw    $0x7C00, %sp
    sti
    movw    $1, %si                 # LBA
    movw    $0x07E0, %bp            # destination segment
s2load_next:
    movw    %si, %ax
    xorw    %dx, %dx
    movw    $18, %cx
    divw    %cx                     # AX = track, DX = sector - 1
    movw    %dx, %cx
    incw    %cx                     # CL = sector
    xorw    %dx, %dx
    shrw    $1, %ax                 # AX = cylinder, CF = head
    adcb    $0, %dh
    movb    %al, %ch
    movw    %bp, %es
    xorw    %bx, %bx
    movw    $0x0201, %ax
    xorb    %dl, %dl                # drive 0
    int     $0x13
    jc      s2load_failed
    incw    %si
    addw    $0x20, %bp
    cmpw    $128, %si
    jb      s2load_next
    movb    $0x80, %dl
    ljmp    $0, $0x7E00
s2load_failed:
    movw    $0x3F8, %dx
    movb    $'F', %al
    outb    %al, %dx
s2load_halt:
    cli
    hlt
    jmp     s2load_halt
    .global bootpack_test_s2load_end
bootpack_test_s2load_end:

    .code64
    .popsection
"#,
    options(att_syntax)
);

extern "C" {
    static bootpack_test_chain_start: u8;
    static bootpack_test_chain_end: u8;
    static bootpack_test_s2load_start: u8;
    static bootpack_test_s2load_end: u8;
}

/// A 1.44 MB floppy image whose first sector is `boot` and whose sectors
/// from 1 on are `rest`.
fn floppy(path: &Path, boot: &[u8], rest: &[u8]) {
    let mut f = vec![0u8; 1_474_560];
    f[..512].copy_from_slice(boot);
    f[512..512 + rest.len()].copy_from_slice(rest);
    std::fs::write(path, f).unwrap();
}

fn demo_image(dir: &Path, args: &[&str]) -> std::path::PathBuf {
    let image = dir.join("demo.img");
    let mut argv = vec!["demo", "-o", image.to_str().unwrap(), "--"];
    argv.extend_from_slice(args);
    let r = bootpack(argv);
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    image
}

#[test]
fn a_bios_passing_dl_0_boots_the_hard_disk() {
    let dir = scratch("fw-dl0");
    let image = demo_image(&dir, &["dl", "zero"]);
    let fd = dir.join("chain.fd");
    floppy(
        &fd,
        &sector(
            &raw const bootpack_test_chain_start,
            &raw const bootpack_test_chain_end,
        ),
        &[],
    );
    let disk = vec![
        "-drive".into(),
        format!("file={},format=raw,if=floppy", fd.display()),
        "-drive".into(),
        format!("file={},format=raw", image.display()),
        "-boot".into(),
        "a".into(),
    ];
    let run = qemu::boot_with_disk(&disk, &Machine::new("pc", "64M"), None, BOOT_TIMEOUT);
    let text = run.serial_text();
    assert_eq!(
        run.exit,
        Some(KERNEL_EXIT),
        "the demo kernel must run; serial:\n{text}"
    );
    assert!(
        run.serial.starts_with(b"\r\nbootpack demo kernel:"),
        "nothing before the kernel's report (no stage 1 message); serial:\n{text}"
    );
    let report = Report::parse(&run.serial);
    assert_eq!(report.cmdline(), b"bootpack-demo dl zero");
    // The demo image boots with Multiboot 2: its BIOS boot device tag
    // names the drive stage 1 settled on.
    let bootdev = report.fields.get("bootdev").cloned().unwrap_or_default();
    assert!(
        bootdev.starts_with("0x00000080 "),
        "the kernel must be told drive 0x80, got {bootdev:?}; serial:\n{text}"
    );
}

/// Fails the test with the install command when DOSBox is missing.
fn require_dosbox() {
    let ok = Command::new("dosbox")
        .arg("-version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    if !matches!(ok, Ok(s) if s.success()) {
        panic!(
            "dosbox was not found or does not run: this test needs it to run a 386 \
             (a CPU without CPUID). Install it: apt-get install dosbox"
        );
    }
}

#[test]
fn a_386_without_cpuid_gets_the_long_mode_message() {
    require_dosbox();
    let dir = scratch("fw-386");
    let image = std::fs::read(demo_image(&dir, &[])).unwrap();
    let fd = dir.join("stage2.fd");
    floppy(
        &fd,
        &sector(
            &raw const bootpack_test_s2load_start,
            &raw const bootpack_test_s2load_end,
        ),
        // Stage 2's sectors, where the image keeps them.
        &image[STAGE2_LBA as usize * 512..][..STAGE2_MAX_SECTORS as usize * 512],
    );
    // DOSBox connects its COM1 (a "nullmodem") to this socket.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let conf = dir.join("dosbox.conf");
    std::fs::write(
        &conf,
        format!(
            "[cpu]\ncore=normal\ncputype=386\ncycles=max\n\
             [serial]\nserial1=nullmodem server:127.0.0.1 port:{port} transparent:1\n\
             [autoexec]\nboot {}\n",
            fd.display()
        ),
    )
    .unwrap();
    let mut child = Command::new("dosbox")
        .arg("-conf")
        .arg(&conf)
        .env("SDL_VIDEODRIVER", "dummy")
        .env("SDL_AUDIODRIVER", "dummy")
        .env("HOME", &*dir) // DOSBox writes its default configuration there
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start dosbox");
    listener.set_nonblocking(true).unwrap();
    let start = Instant::now();
    let mut serial = Vec::new();
    let mut seen_at = None;
    let mut conn = None;
    while start.elapsed() < BOOT_TIMEOUT {
        if conn.is_none() {
            if let Ok((s, _)) = listener.accept() {
                s.set_read_timeout(Some(Duration::from_millis(100)))
                    .unwrap();
                conn = Some(s);
            }
        }
        if let Some(s) = conn.as_mut() {
            let mut buf = [0u8; 1024];
            match s.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => serial.extend_from_slice(&buf[..n]),
                Err(_) => {}
            }
        } else {
            std::thread::sleep(Duration::from_millis(50));
        }
        if seen_at.is_none() && String::from_utf8_lossy(&serial).contains("bootpack: halted") {
            seen_at = Some(Instant::now());
        }
        // Watch a second more: the message once, then nothing (a halt).
        if seen_at.is_some_and(|t| t.elapsed() > Duration::from_secs(1)) {
            break;
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    let text = String::from_utf8_lossy(&serial);
    assert_eq!(
        text, "bootpack: error: this CPU has no 64-bit long mode\r\nbootpack: halted\r\n",
        "stage 2 on a 386 must give the long-mode message once and halt"
    );
}

/// Fails the test with the install command when Bochs or its parts are
/// missing.
fn require_bochs() {
    let parts = [
        ("/usr/bin/bochs", "bochs"),
        ("/usr/share/bochs/BIOS-bochs-latest", "bochsbios"),
        ("/usr/share/vgabios/vgabios.bin", "vgabios"),
        (
            "/usr/lib/x86_64-linux-gnu/bochs/plugins/libbx_sdl2_gui.so",
            "bochs-sdl",
        ),
    ];
    for (file, package) in parts {
        assert!(
            Path::new(file).exists(),
            "{file} is missing: this test boots in Bochs. Install it: \
             apt-get install -y --no-install-recommends bochs bochsbios vgabios bochs-sdl \
             (missing package: {package})"
        );
    }
}

#[test]
fn bochs_rombios_boots_the_demo() {
    // Bochs' own BIOS (rombios) is not SeaBIOS: it hands over with CR0's
    // CD and NW bits set, and its INT 13h, E820 and EDD are its own.
    require_bochs();
    let dir = scratch("fw-bochs");
    let image = demo_image(&dir, &["on", "bochs"]);
    let serial = dir.join("serial.out");
    let rc = dir.join("bochsrc");
    std::fs::write(
        &rc,
        format!(
            "megs: 64\n\
             romimage: file=/usr/share/bochs/BIOS-bochs-latest\n\
             vgaromimage: file=/usr/share/vgabios/vgabios.bin\n\
             ata0-master: type=disk, path={}, mode=flat\n\
             boot: disk\n\
             display_library: sdl2\n\
             com1: enabled=1, mode=file, dev={}\n\
             log: {}\n\
             clock: sync=none\n\
             mouse: enabled=0\n\
             plugin_ctrl: speaker=0, es1370=0, sb16=0, gameport=0, parallel=0, iodebug=0\n\
             sound: driver=dummy\n",
            image.display(),
            serial.display(),
            dir.join("bochs.log").display()
        ),
    )
    .unwrap();
    // Debian's Bochs has its debugger built in and waits at the first
    // instruction: "c" on stdin continues. SDL's dummy driver: no window.
    let mut child = Command::new("bochs")
        .arg("-q")
        .arg("-f")
        .arg(&rc)
        .env("SDL_VIDEODRIVER", "dummy")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start bochs");
    {
        use std::io::Write;
        let _ = child.stdin.as_mut().unwrap().write_all(b"c\n");
    }
    let start = Instant::now();
    let mut out = Vec::new();
    while start.elapsed() < BOOT_TIMEOUT {
        out = std::fs::read(&serial).unwrap_or_default();
        if String::from_utf8_lossy(&out).contains("BPTK end") {
            break;
        }
        if child.try_wait().unwrap().is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = child.kill();
    let _ = child.wait();
    let text = String::from_utf8_lossy(&out).into_owned();
    assert!(
        out.starts_with(b"\r\nbootpack demo kernel:"),
        "the demo kernel must run, with nothing before it; COM1:\n{text}"
    );
    let report = Report::parse(&out);
    assert_eq!(report.cmdline(), b"bootpack-demo on bochs", "{text}");
    assert!(
        report
            .mmap
            .iter()
            .any(|e| e.base == 0x10_0000 && e.kind == 1 && e.len > 60 << 20),
        "the memory map must hold Bochs' RAM above 1 MiB (64 MiB machine):\n{text}"
    );
}
