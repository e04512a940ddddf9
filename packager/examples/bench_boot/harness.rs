//! The boot and build benchmark's machinery, shared by the `bench_boot`
//! example (the benchmark) and tests/bench_smoke.rs (which runs it in a
//! quick mode to prove it still works). See main.rs for what is measured.

use std::fmt::Write as _;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use bootpack::bootloader::DEMO_KERNEL;
use bootpack::proto::{mb1_header, mb2_header};

/// Where the payload of the large kernels loads: 16 MiB.
const PAYLOAD_ADDR: u64 = 0x100_0000;
/// Marks the test kernel's payload descriptor (see tests/kernel): the
/// words after it are addr, len, checksum.
const PAYLOAD_MARKER: u64 = 0x444C_5950_4150_5042;
/// The test kernel's first output: its first byte is the one timed.
const KERNEL_MARKER: &[u8] = b"\r\nbootpack demo kernel";
/// The kernel's arguments (after its name) with every loader.
const ARGS: &str = "bench";
const MIB: u64 = 1 << 20;

const SYSLINUX_MBR: &str = "/usr/lib/syslinux/mbr/mbr.bin";
const SYSLINUX_MODULES: &str = "/usr/lib/syslinux/modules/bios";
const GRUB_BOOT_IMG: &str = "/usr/lib/grub/i386-pc/boot.img";

/// A kernel to boot.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Kernel {
    /// bootpack's demo kernel as embedded (ELF64 with the a.out kludge, the
    /// Solo5 shape).
    Demo,
    /// The demo kernel's code as an ELF32 kernel loaded by its program
    /// headers, with a pseudo-random payload at 16 MiB (which the kernel
    /// checks) making the file this many bytes.
    Elf32(u64),
}

impl Kernel {
    pub fn parse(s: &str) -> Result<Kernel, String> {
        if s == "demo" {
            return Ok(Kernel::Demo);
        }
        let mib: f64 = s
            .strip_suffix('M')
            .and_then(|n| n.parse().ok())
            .ok_or_else(|| format!("kernel {s:?}: give demo or a size in MiB like 2.5M"))?;
        let bytes = (mib * MIB as f64) as u64 & !7;
        if bytes < MIB {
            return Err(format!("kernel {s:?}: at least 1M"));
        }
        Ok(Kernel::Elf32(bytes))
    }

    pub fn name(&self) -> String {
        match self {
            Kernel::Demo => "demo".into(),
            Kernel::Elf32(n) => format!("{}M", *n as f64 / MIB as f64),
        }
    }
}

/// The disk controller the image is attached to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Disk {
    /// `pc` machine, PIIX IDE.
    Ide,
    /// `q35` machine, ICH9 AHCI.
    Ahci,
    /// `q35` machine, virtio-blk-pci.
    VirtioBlk,
    /// `q35` machine, virtio-scsi-pci with a scsi-hd.
    VirtioScsi,
}

impl Disk {
    pub const ALL: [Disk; 4] = [Disk::Ide, Disk::Ahci, Disk::VirtioBlk, Disk::VirtioScsi];

    pub fn parse(s: &str) -> Result<Disk, String> {
        Disk::ALL
            .into_iter()
            .find(|d| d.name() == s)
            .ok_or_else(|| format!("disk {s:?}: give ide, ahci, virtio-blk or virtio-scsi"))
    }

    pub fn name(&self) -> &'static str {
        match self {
            Disk::Ide => "ide",
            Disk::Ahci => "ahci",
            Disk::VirtioBlk => "virtio-blk",
            Disk::VirtioScsi => "virtio-scsi",
        }
    }

    fn qemu_args(&self, image: &Path) -> Vec<String> {
        let file = format!("file={},format=raw", image.display());
        let mut a: Vec<String> = match self {
            Disk::Ide => vec!["-machine".into(), "pc".into(), "-drive".into(), file],
            Disk::Ahci => vec!["-machine".into(), "q35".into(), "-drive".into(), file],
            Disk::VirtioBlk | Disk::VirtioScsi => vec![
                "-machine".into(),
                "q35".into(),
                "-drive".into(),
                format!("{file},if=none,id=d"),
            ],
        };
        match self {
            Disk::VirtioBlk => a.extend(["-device".into(), "virtio-blk-pci,drive=d".into()]),
            Disk::VirtioScsi => a.extend([
                "-device".into(),
                "virtio-scsi-pci,id=s".into(),
                "-device".into(),
                "scsi-hd,drive=d,bus=s.0".into(),
            ]),
            _ => {}
        }
        a
    }
}

/// Who loads the kernel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Loader {
    /// QEMU's own Multiboot loader (`-kernel`), the reference; the disk is
    /// attached all the same so the firmware does the same work.
    QemuKernel,
    Bootpack,
    /// bootpack with `--no-fast-read`: every read through the BIOS (what
    /// bootpack did before its IDE DMA path).
    BootpackBios,
    /// The solo5-virtio-mkimage flow: syslinux' mbr.bin, FAT32, ldlinux,
    /// mboot.c32 with `-aout`.
    Syslinux,
    /// grub-mkimage core image (biosdisk part_msdos fat multiboot boot)
    /// with a built-in config, boot.img in the MBR, the kernel on FAT32.
    Grub,
    /// bootpack's UEFI loader under OVMF (`--firmware uefi`).
    BootpackUefi,
    /// GRUB EFI (grub-mkimage -O x86_64-efi: part_msdos fat multiboot
    /// boot, a built-in config) as \EFI\BOOT\BOOTX64.EFI on a FAT32 ESP
    /// with the kernel, under OVMF.
    GrubEfi,
}

impl Loader {
    pub const ALL: [Loader; 7] = [
        Loader::QemuKernel,
        Loader::Bootpack,
        Loader::BootpackBios,
        Loader::Syslinux,
        Loader::Grub,
        Loader::BootpackUefi,
        Loader::GrubEfi,
    ];

    /// Booted under OVMF.
    pub fn is_uefi(&self) -> bool {
        matches!(self, Loader::BootpackUefi | Loader::GrubEfi)
    }

    pub fn parse(s: &str) -> Result<Loader, String> {
        Loader::ALL
            .into_iter()
            .find(|l| l.name() == s)
            .ok_or_else(|| {
                format!("loader {s:?}: give kernel, bootpack, bootpack-bios, syslinux, grub, bootpack-uefi or grub-efi")
            })
    }

    pub fn name(&self) -> &'static str {
        match self {
            Loader::QemuKernel => "kernel",
            Loader::Bootpack => "bootpack",
            Loader::BootpackBios => "bootpack-bios",
            Loader::Syslinux => "syslinux",
            Loader::Grub => "grub",
            Loader::BootpackUefi => "bootpack-uefi",
            Loader::GrubEfi => "grub-efi",
        }
    }

    fn title(&self) -> &'static str {
        match self {
            Loader::QemuKernel => "-kernel",
            Loader::BootpackBios => "bp-bios",
            Loader::BootpackUefi => "bp-uefi",
            l => l.name(),
        }
    }
}

/// What to run.
#[derive(Clone, Debug)]
pub struct Options {
    /// Boots per cell (the median is shown).
    pub reps: usize,
    /// Builds per build cell; 0 skips the build table.
    pub build_reps: usize,
    pub kernels: Vec<Kernel>,
    pub disks: Vec<Disk>,
    pub loaders: Vec<Loader>,
    /// The `bootpack` binary.
    pub bootpack: PathBuf,
    /// bootpack's `solo5-virtio-mkimage`, for one more build row.
    pub mkimage: Option<PathBuf>,
    /// Scratch directory (created; the caller removes it).
    pub dir: PathBuf,
    /// Longest a boot may take.
    pub timeout: Duration,
    /// Progress lines on stderr.
    pub verbose: bool,
}

/// One boot table row: a kernel on a disk, a sample list per loader (in
/// `Options::loaders` order).
#[derive(Clone, Debug)]
pub struct BootRow {
    pub kernel: Kernel,
    pub disk: Disk,
    pub cells: Vec<Cell>,
}

#[derive(Clone, Debug, Default)]
pub struct Cell {
    /// Milliseconds from QEMU's start to the kernel's first serial byte.
    pub samples: Vec<f64>,
    /// Why boots failed (no kernel output, wrong output, timeout).
    pub failures: Vec<String>,
    /// UEFI loaders: ms from QEMU's start to OVMF starting the ESP's
    /// BOOTX64.EFI (its `BdsDxe: starting` line), the floor any EFI loader
    /// starts from, measured in the same boots.
    pub floor: Vec<f64>,
    /// UEFI loaders: ms from the floor to the kernel's first serial byte,
    /// per boot.
    pub after_floor: Vec<f64>,
}

impl Cell {
    pub fn median(&self) -> Option<f64> {
        median(&self.samples)
    }
}

/// One build table row: a build flow on a kernel.
#[derive(Clone, Debug)]
pub struct BuildRow {
    pub kernel: Kernel,
    pub flow: &'static str,
    pub samples: Vec<f64>,
    pub image_bytes: u64,
}

#[derive(Clone, Debug)]
pub struct Results {
    pub options: Options,
    pub boot: Vec<BootRow>,
    pub build: Vec<BuildRow>,
    pub load_before: String,
    pub load_after: String,
}

pub fn median(v: &[f64]) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.total_cmp(b));
    let n = s.len();
    Some(if n % 2 == 1 {
        s[n / 2]
    } else {
        (s[n / 2 - 1] + s[n / 2]) / 2.0
    })
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

/// The kernel file's bytes and, for a payload kernel, the payload's
/// length (the kernel reports `payload ADDR LEN ok`).
pub fn kernel_file(k: Kernel) -> (Vec<u8>, Option<u64>) {
    let size = match k {
        Kernel::Demo => return (DEMO_KERNEL.to_vec(), None),
        Kernel::Elf32(size) => size,
    };
    let plan = bootpack::kernel::plan_for(DEMO_KERNEL, Some(bootpack::Protocol::Multiboot1))
        .expect("the demo kernel is a valid Multiboot kernel");
    let seg = &plan.segments[0];
    let mut image = DEMO_KERNEL[seg.file.clone()].to_vec();
    // Flags 0x3: no a.out kludge, so every loader uses the program headers.
    let header = mb1_header::find(&image).expect("Multiboot header").offset;
    mb1_header::write(&mut image, header, 0x3, None);
    // A Multiboot 1 kernel only: without this, a loader preferring
    // Multiboot 2 (bootpack's default) would load by the Multiboot 2
    // header's address tags, which describe the demo kernel's image alone.
    if let Ok(h2) = mb2_header::find(&image) {
        image[h2.offset..h2.offset + 4].fill(0);
    }
    let image_off = 0x1000u64;
    let payload_off = (image_off + image.len() as u64).next_multiple_of(0x1000);
    let len = size
        .checked_sub(payload_off)
        .expect("kernel size too small")
        & !7;
    let payload = pseudo_random(len as usize, 0x2545_f491_4f6c_dd1d);
    let sum = payload
        .chunks_exact(8)
        .fold(0xcbf2_9ce4_8422_2325u64, |h, w| {
            (h ^ u64::from_le_bytes(w.try_into().unwrap())).wrapping_mul(0x100_0000_01b3)
        });
    let at = image
        .windows(8)
        .position(|w| w == PAYLOAD_MARKER.to_le_bytes())
        .expect("the demo kernel has a payload descriptor");
    for (i, v) in [PAYLOAD_ADDR, len, sum].into_iter().enumerate() {
        image[at + 8 + 8 * i..at + 16 + 8 * i].copy_from_slice(&v.to_le_bytes());
    }
    assert!(seg.dest + seg.mem_size <= PAYLOAD_ADDR);
    let segs = [
        (image_off, seg.dest, image.len() as u64, seg.mem_size),
        (payload_off, PAYLOAD_ADDR, len, len),
    ];
    let mut file = elf32_header(plan.entry, &segs);
    file.resize(image_off as usize, 0);
    file.extend_from_slice(&image);
    file.resize(payload_off as usize, 0);
    file.extend_from_slice(&payload);
    (file, Some(len))
}

/// An ELF32 (EM_386, EXEC) header and program header table with one
/// PT_LOAD per (file offset, address, file size, memory size).
fn elf32_header(entry: u32, segs: &[(u64, u64, u64, u64)]) -> Vec<u8> {
    let mut h = Vec::new();
    h.extend_from_slice(&[0x7f, b'E', b'L', b'F', 1, 1, 1, 0]);
    h.extend_from_slice(&[0; 8]);
    let u16s = |h: &mut Vec<u8>, v: u16| h.extend_from_slice(&v.to_le_bytes());
    let u32s = |h: &mut Vec<u8>, v: u64| h.extend_from_slice(&(v as u32).to_le_bytes());
    u16s(&mut h, 2); // ET_EXEC
    u16s(&mut h, 3); // EM_386
    u32s(&mut h, 1);
    u32s(&mut h, entry as u64);
    u32s(&mut h, 52); // e_phoff
    u32s(&mut h, 0); // e_shoff
    u32s(&mut h, 0); // e_flags
    u16s(&mut h, 52);
    u16s(&mut h, 32);
    u16s(&mut h, segs.len() as u16);
    u16s(&mut h, 40);
    u16s(&mut h, 0);
    u16s(&mut h, 0);
    for &(off, addr, filesz, memsz) in segs {
        for v in [1, off, addr, addr, filesz, memsz, 7, 0x1000] {
            u32s(&mut h, v);
        }
    }
    h
}

fn pseudo_random(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    let mut v = Vec::with_capacity(len + 8);
    while v.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        v.extend_from_slice(&x.to_le_bytes());
    }
    v.truncate(len);
    v
}

/// Runs a command, failing with its stderr.
fn sh(cmd: &mut Command) -> Result<(), String> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("{:?}: {e}", cmd.get_program()))?;
    succeeded(cmd, &out)
}

/// Ok if the command that gave `out` succeeded, else its stderr.
fn succeeded(cmd: &Command, out: &std::process::Output) -> Result<(), String> {
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{cmd:?} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// Runs a command with `input` on its stdin.
fn sh_input(cmd: &mut Command, input: &str) -> Result<(), String> {
    use std::io::Write;
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("{:?}: {e}", cmd.get_program()))?;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .map_err(|e| e.to_string())?;
    let out = child.wait_with_output().map_err(|e| e.to_string())?;
    succeeded(cmd, &out)
}

/// A 1 GiB disk with one active FAT32 partition at LBA 2048 filling it,
/// as solo5-virtio-mkimage makes it.
fn fat32_disk(image: &Path) -> Result<(), String> {
    let _ = std::fs::remove_file(image);
    let size = 1u64 << 30;
    std::fs::File::create(image)
        .and_then(|f| f.set_len(size))
        .map_err(|e| e.to_string())?;
    sh_input(
        Command::new("sfdisk").arg("-q").arg(image),
        "start=2048, type=c, bootable\n",
    )?;
    // mkfs.fat counts 1 KiB blocks.
    let blocks = (size - 2048 * 512) / 1024;
    sh(Command::new("mkfs.fat")
        .args(["-F", "32", "--offset", "2048"])
        .arg(image)
        .arg(blocks.to_string()))
}

/// Copies files into the FAT partition at 1 MiB (mtools' `@@offset`).
fn mcopy(image: &Path, files: &[(&Path, &str)]) -> Result<(), String> {
    for (src, name) in files {
        sh(Command::new("mcopy")
            .arg("-o")
            .arg("-i")
            .arg(format!("{}@@1M", image.display()))
            .arg(src)
            .arg(format!("::/{name}")))?;
    }
    Ok(())
}

/// The solo5-virtio-mkimage flow (raw): partition, FAT32, syslinux in the
/// partition, syslinux' MBR, mboot.c32 + libcom32.c32 + syslinux.cfg with
/// `APPEND -aout unikernel.bin ARGS`, the kernel as unikernel.bin.
pub fn syslinux_image(kernel: &Path, image: &Path, work: &Path) -> Result<(), String> {
    fat32_disk(image)?;
    sh(Command::new("syslinux")
        .args(["--offset", &(2048 * 512).to_string(), "--install"])
        .arg(image))?;
    let mbr = std::fs::read(SYSLINUX_MBR).map_err(|e| format!("{SYSLINUX_MBR}: {e}"))?;
    write_at(image, 0, &mbr[..mbr.len().min(440)])?;
    let cfg = work.join("syslinux.cfg");
    std::fs::write(
        &cfg,
        format!(
            "SERIAL 0 115200\nDEFAULT unikernel\nLABEL unikernel\n  KERNEL mboot.c32\n  APPEND -aout unikernel.bin {ARGS}\n"
        ),
    )
    .map_err(|e| e.to_string())?;
    let modules = Path::new(SYSLINUX_MODULES);
    mcopy(
        image,
        &[
            (&modules.join("mboot.c32"), "mboot.c32"),
            (&modules.join("libcom32.c32"), "libcom32.c32"),
            (&cfg, "syslinux.cfg"),
            (kernel, "unikernel.bin"),
        ],
    )
}

/// GRUB: a core image whose built-in config loads the kernel from the
/// FAT32 partition and boots it; boot.img in the MBR (it loads the core
/// from LBA 1, its default), core.img from LBA 1 in the gap.
pub fn grub_image(kernel: &Path, image: &Path, work: &Path) -> Result<(), String> {
    let cfg = work.join("grub-embed.cfg");
    let core = work.join("core.img");
    std::fs::write(
        &cfg,
        format!("multiboot (hd0,msdos1)/kernel kernel {ARGS}\nboot\n"),
    )
    .map_err(|e| e.to_string())?;
    sh(Command::new("grub-mkimage")
        .args(["-O", "i386-pc", "-p", "(hd0,msdos1)/", "-c"])
        .arg(&cfg)
        .arg("-o")
        .arg(&core)
        .args(["biosdisk", "part_msdos", "fat", "multiboot", "boot"]))?;
    fat32_disk(image)?;
    let boot = std::fs::read(GRUB_BOOT_IMG).map_err(|e| format!("{GRUB_BOOT_IMG}: {e}"))?;
    write_at(image, 0, &boot[..440])?;
    let core_bytes = std::fs::read(&core).map_err(|e| e.to_string())?;
    if core_bytes.len() > 2047 * 512 {
        return Err("GRUB core image does not fit before LBA 2048".into());
    }
    write_at(image, 512, &core_bytes)?;
    mcopy(image, &[(kernel, "kernel")])
}

/// GRUB EFI: a grub-mkimage x86_64-efi image whose built-in config loads
/// the kernel from the partition and boots it, as \EFI\BOOT\BOOTX64.EFI
/// on a 1 GiB disk with one FAT32 partition of type 0xEF (an ESP, which
/// OVMF boots from an MBR), the kernel beside it.
pub fn grub_efi_image(kernel: &Path, image: &Path, work: &Path) -> Result<(), String> {
    let cfg = work.join("grub-efi-embed.cfg");
    let efi = work.join("BOOTX64.EFI");
    std::fs::write(
        &cfg,
        format!("multiboot (hd0,msdos1)/kernel kernel {ARGS}\nboot\n"),
    )
    .map_err(|e| e.to_string())?;
    sh(Command::new("grub-mkimage")
        .args(["-O", "x86_64-efi", "-p", "(hd0,msdos1)/", "-c"])
        .arg(&cfg)
        .arg("-o")
        .arg(&efi)
        .args(["part_msdos", "fat", "multiboot", "boot"]))?;
    fat32_disk(image)?;
    // The partition's type: EFI system partition.
    write_at(image, 0x1BE + 4, &[0xEF])?;
    sh(Command::new("mmd")
        .arg("-i")
        .arg(format!("{}@@1M", image.display()))
        .args(["::/EFI", "::/EFI/BOOT"]))?;
    mcopy(image, &[(&efi, "EFI/BOOT/BOOTX64.EFI"), (kernel, "kernel")])
}

/// OVMF's code and variable-store template (Debian's `ovmf`).
const OVMF_CODE: &str = "/usr/share/OVMF/OVMF_CODE_4M.fd";
const OVMF_VARS: &str = "/usr/share/OVMF/OVMF_VARS_4M.fd";
/// OVMF prints this as it starts the ESP's loader: the UEFI floor.
const OVMF_FLOOR_MARKER: &[u8] = b"BdsDxe: starting";

fn write_at(path: &Path, offset: u64, bytes: &[u8]) -> Result<(), String> {
    use std::os::unix::fs::FileExt;
    std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .and_then(|f| f.write_all_at(bytes, offset))
        .map_err(|e| format!("{}: {e}", path.display()))
}

fn bootpack_build(
    opts: &Options,
    kernel: &Path,
    image: &Path,
    size: Option<&str>,
    fast_read: bool,
) -> Result<(), String> {
    let mut c = Command::new(&opts.bootpack);
    c.arg("build").arg(kernel).arg("-o").arg(image).args([
        "--protocol",
        "multiboot1",
        "--name",
        "kernel",
    ]);
    if let Some(s) = size {
        c.args(["--size", s]);
    }
    if !fast_read {
        c.arg("--no-fast-read");
    }
    sh(c.arg("--").arg(ARGS))
}

/// `bootpack build --firmware uefi`, otherwise as [`bootpack_build`].
fn bootpack_uefi_build(opts: &Options, kernel: &Path, image: &Path) -> Result<(), String> {
    let mut c = Command::new(&opts.bootpack);
    c.arg("build").arg(kernel).arg("-o").arg(image).args([
        "--protocol",
        "multiboot1",
        "--name",
        "kernel",
        "--firmware",
        "uefi",
    ]);
    sh(c.arg("--").arg(ARGS))
}

/// What a QEMU run printed on stdout, chunk by chunk, each with its
/// arrival time in ms since the spawn.
struct Timed {
    chunks: Vec<(f64, Vec<u8>)>,
    timed_out: bool,
    stderr: String,
}

/// Runs `c` with stdout and stderr captured until it exits or `timeout`
/// passes (then it is killed), timestamping stdout as it arrives.
fn run_timed(c: &mut Command, timeout: Duration) -> Result<Timed, String> {
    c.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let start = Instant::now();
    let mut child = c.spawn().map_err(|e| format!("qemu-system-x86_64: {e}"))?;
    let mut out = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel::<(f64, Vec<u8>)>();
    let reader = std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = out.read(&mut buf) {
            if n == 0 {
                break;
            }
            let t = start.elapsed().as_secs_f64() * 1e3;
            if tx.send((t, buf[..n].to_vec())).is_err() {
                break;
            }
        }
    });
    let timed_out = loop {
        if child.try_wait().map_err(|e| e.to_string())?.is_some() {
            break false;
        }
        if start.elapsed() > timeout {
            let _ = child.kill();
            let _ = child.wait();
            break true;
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let _ = reader.join();
    let chunks = rx.try_iter().collect();
    let mut stderr = String::new();
    if let Some(mut e) = child.stderr.take() {
        let _ = e.read_to_string(&mut stderr);
    }
    Ok(Timed {
        chunks,
        timed_out,
        stderr,
    })
}

/// One boot: milliseconds from spawning QEMU to the arrival of the
/// kernel's first serial byte, after checking the kernel ran to its end
/// and found its payload intact.
fn boot_once(
    opts: &Options,
    disk: Disk,
    image: &Path,
    kernel: Option<&Path>,
    payload: Option<u64>,
    uefi: bool,
) -> Result<(f64, Option<f64>), String> {
    let mut c = Command::new("qemu-system-x86_64");
    c.args(["-accel", "tcg", "-m", "256M", "-display", "none"])
        .args(["-serial", "stdio", "-no-reboot"])
        .args(["-device", "isa-debug-exit,iobase=0xf4,iosize=0x04"])
        .args(disk.qemu_args(image));
    if uefi {
        // A fresh variable store per boot (as `bootpack run --firmware
        // uefi` gives), no default devices, S3 off.
        let vars = opts.dir.join("OVMF_VARS.fd");
        std::fs::copy(OVMF_VARS, &vars)
            .map_err(|e| format!("{OVMF_VARS}: {e} (apt-get install ovmf)"))?;
        let s3 = if disk == Disk::Ide {
            "PIIX4_PM.disable_s3=1"
        } else {
            "ICH9-LPC.disable_s3=1"
        };
        c.args(["-nodefaults", "-global", s3])
            .arg("-drive")
            .arg(format!(
                "if=pflash,format=raw,unit=0,readonly=on,file={OVMF_CODE}"
            ))
            .arg("-drive")
            .arg(format!(
                "if=pflash,format=raw,unit=1,file={}",
                vars.display()
            ));
    }
    if let Some(k) = kernel {
        c.arg("-kernel")
            .arg(k)
            .arg("-append")
            .arg(format!("kernel {ARGS}"));
    }
    let Timed {
        chunks,
        timed_out,
        stderr,
    } = run_timed(&mut c, opts.timeout)?;
    let all: Vec<u8> = chunks.iter().flat_map(|(_, b)| b.iter().copied()).collect();
    let text = String::from_utf8_lossy(&all);
    let tail = || {
        let t = text.trim_end();
        let from = t.len().saturating_sub(200);
        let from = (from..t.len())
            .find(|&i| t.is_char_boundary(i))
            .unwrap_or(t.len());
        format!("{:?} {}", &t[from..], stderr.trim())
    };
    let Some(first) = all
        .windows(KERNEL_MARKER.len())
        .position(|w| w == KERNEL_MARKER)
    else {
        return Err(format!(
            "no kernel output{}: {}",
            if timed_out { " (timeout)" } else { "" },
            tail()
        ));
    };
    if !text.contains("BPTK magic 0x2badb002") || !text.contains("BPTK end") {
        return Err(format!("kernel report incomplete: {}", tail()));
    }
    if let Some(len) = payload {
        let want = format!("BPTK payload 0x{PAYLOAD_ADDR:08x} {len} ok");
        if !text.contains(&want) {
            return Err(format!(
                "payload not loaded intact (want {want:?}): {}",
                tail()
            ));
        }
    }
    let at = |pos: usize| {
        let mut seen = 0;
        for (t, b) in &chunks {
            if pos < seen + b.len() {
                return *t;
            }
            seen += b.len();
        }
        unreachable!("the marker lies in the chunks")
    };
    let floor = uefi
        .then(|| {
            all.windows(OVMF_FLOOR_MARKER.len())
                .position(|w| w == OVMF_FLOOR_MARKER)
        })
        .flatten()
        .map(at);
    Ok((at(first), floor))
}

fn progress(opts: &Options, msg: &str) {
    if opts.verbose {
        eprintln!("bench_boot: {msg}");
    }
}

/// Builds the images, boots every cell `reps` times (round-robin, so load
/// changes hit every cell alike) and times the builds.
pub fn run(opts: &Options) -> Result<Results, String> {
    std::fs::create_dir_all(&opts.dir).map_err(|e| format!("{}: {e}", opts.dir.display()))?;
    let load_before = loadavg();
    struct Prepared {
        kernel: Kernel,
        file: PathBuf,
        payload: Option<u64>,
        images: Vec<(Loader, PathBuf)>,
    }
    let mut prepared = Vec::new();
    for &k in &opts.kernels {
        let kdir = opts.dir.join(k.name());
        std::fs::create_dir_all(&kdir).map_err(|e| e.to_string())?;
        let (bytes, payload) = kernel_file(k);
        let file = kdir.join("kernel.elf");
        std::fs::write(&file, &bytes).map_err(|e| e.to_string())?;
        progress(
            opts,
            &format!(
                "kernel {} ({} bytes): building images",
                k.name(),
                bytes.len()
            ),
        );
        // -kernel boots with the bootpack image attached (any disk would
        // do: the firmware sets it up all the same).
        let bp = kdir.join("bootpack.img");
        bootpack_build(opts, &file, &bp, None, true)?;
        let mut images = Vec::new();
        for &l in &opts.loaders {
            let img = kdir.join(format!("{}.img", l.name()));
            match l {
                Loader::QemuKernel | Loader::Bootpack => {
                    images.push((l, bp.clone()));
                    continue;
                }
                Loader::BootpackBios => bootpack_build(opts, &file, &img, None, false)?,
                Loader::Syslinux => syslinux_image(&file, &img, &kdir)?,
                Loader::Grub => grub_image(&file, &img, &kdir)?,
                Loader::BootpackUefi => bootpack_uefi_build(opts, &file, &img)?,
                Loader::GrubEfi => grub_efi_image(&file, &img, &kdir)?,
            }
            images.push((l, img));
        }
        prepared.push(Prepared {
            kernel: k,
            file,
            payload,
            images,
        });
    }

    let mut boot: Vec<BootRow> = Vec::new();
    for p in &prepared {
        for &d in &opts.disks {
            boot.push(BootRow {
                kernel: p.kernel,
                disk: d,
                cells: vec![Cell::default(); opts.loaders.len()],
            });
        }
    }
    for rep in 0..opts.reps {
        progress(
            opts,
            &format!("boot round {}/{} (load {})", rep + 1, opts.reps, loadavg()),
        );
        let mut row = 0;
        for p in &prepared {
            for &d in &opts.disks {
                for (i, (l, img)) in p.images.iter().enumerate() {
                    let kernel = (*l == Loader::QemuKernel).then_some(p.file.as_path());
                    match boot_once(opts, d, img, kernel, p.payload, l.is_uefi()) {
                        Ok((ms, floor)) => {
                            boot[row].cells[i].samples.push(ms);
                            if let Some(f) = floor {
                                boot[row].cells[i].floor.push(f);
                                boot[row].cells[i].after_floor.push(ms - f);
                            }
                        }
                        Err(e) => {
                            progress(
                                opts,
                                &format!("{} {} {}: {e}", p.kernel.name(), d.name(), l.name()),
                            );
                            boot[row].cells[i].failures.push(e);
                        }
                    }
                }
                row += 1;
            }
        }
    }

    let mut build = Vec::new();
    if opts.build_reps > 0 {
        for p in &prepared {
            let work = opts.dir.join(p.kernel.name()).join("build");
            std::fs::create_dir_all(&work).map_err(|e| e.to_string())?;
            let out = work.join("out.img");
            type Flow<'a> = (&'static str, Box<dyn Fn() -> Result<(), String> + 'a>);
            let mut flows: Vec<Flow> = vec![
                (
                    "bootpack build",
                    Box::new(|| bootpack_build(opts, &p.file, &out, None, true)),
                ),
                (
                    "bootpack build --size 1G",
                    Box::new(|| bootpack_build(opts, &p.file, &out, Some("1G"), true)),
                ),
            ];
            if let Some(m) = opts.mkimage.as_deref() {
                let out = &out;
                flows.push((
                    "bootpack solo5-virtio-mkimage",
                    Box::new(move || sh(Command::new(m).arg(out).arg(&p.file).arg(ARGS))),
                ));
            }
            if opts.loaders.contains(&Loader::Syslinux) {
                flows.push((
                    "syslinux (solo5-virtio-mkimage flow)",
                    Box::new(|| syslinux_image(&p.file, &out, &work)),
                ));
            }
            if opts.loaders.contains(&Loader::Grub) {
                flows.push((
                    "grub-mkimage + FAT32",
                    Box::new(|| grub_image(&p.file, &out, &work)),
                ));
            }
            let mut rows: Vec<BuildRow> = flows
                .iter()
                .map(|(name, _)| BuildRow {
                    kernel: p.kernel,
                    flow: name,
                    samples: Vec::new(),
                    image_bytes: 0,
                })
                .collect();
            progress(opts, &format!("kernel {}: timing builds", p.kernel.name()));
            for _ in 0..opts.build_reps {
                for (i, (_, f)) in flows.iter().enumerate() {
                    let _ = std::fs::remove_file(&out);
                    let t = Instant::now();
                    f()?;
                    rows[i].samples.push(t.elapsed().as_secs_f64() * 1e3);
                    rows[i].image_bytes = std::fs::metadata(&out).map_or(0, |m| m.len());
                }
            }
            build.extend(rows);
        }
    }
    Ok(Results {
        options: opts.clone(),
        boot,
        build,
        load_before,
        load_after: loadavg(),
    })
}

fn ms(v: Option<f64>) -> String {
    v.map_or("fail".into(), |v| format!("{v:.0}"))
}

fn ratio(a: Option<f64>, b: Option<f64>) -> String {
    match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => format!("{:.2}x", a / b),
        _ => "-".into(),
    }
}

/// The boot table: per kernel and disk, each loader's median and its ratio
/// to -kernel (when -kernel was run), then bootpack / syslinux.
pub fn boot_table(r: &Results) -> String {
    let o = &r.options;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "Boot: ms from QEMU start to the kernel's first serial byte, median of {} (TCG, -m 256M); (x) = ratio to QEMU -kernel",
        o.reps
    );
    let kidx = o.loaders.iter().position(|l| *l == Loader::QemuKernel);
    let bidx = o.loaders.iter().position(|l| *l == Loader::Bootpack);
    let sidx = o.loaders.iter().position(|l| *l == Loader::Syslinux);
    let _ = write!(s, "{:<7} {:<11}", "kernel", "disk");
    for l in &o.loaders {
        if *l == Loader::QemuKernel || kidx.is_none() {
            let _ = write!(s, " {:>9}", l.title());
        } else {
            let _ = write!(s, " {:>9} {:>6}", l.title(), "(x)");
        }
    }
    if bidx.is_some() && sidx.is_some() {
        let _ = write!(s, " {:>9}", "bp/sysl");
    }
    let _ = writeln!(s, " failures");
    for row in &r.boot {
        let _ = write!(s, "{:<7} {:<11}", row.kernel.name(), row.disk.name());
        let reference = kidx.and_then(|i| row.cells[i].median());
        for (i, c) in row.cells.iter().enumerate() {
            if Some(i) == kidx || kidx.is_none() {
                let _ = write!(s, " {:>9}", ms(c.median()));
            } else {
                let _ = write!(
                    s,
                    " {:>9} {:>6}",
                    ms(c.median()),
                    ratio(c.median(), reference)
                );
            }
        }
        if let (Some(b), Some(y)) = (bidx, sidx) {
            let _ = write!(
                s,
                " {:>9}",
                ratio(row.cells[b].median(), row.cells[y].median())
            );
        }
        let failures: usize = row.cells.iter().map(|c| c.failures.len()).sum();
        let _ = writeln!(s, " {failures}");
    }
    s
}

/// The UEFI table, when UEFI loaders ran: OVMF's floor (QEMU start to
/// OVMF starting BOOTX64.EFI, from the same boots) and each UEFI loader's
/// time after it, with bootpack's as a ratio of GRUB EFI's.
pub fn uefi_table(r: &Results) -> String {
    let o = &r.options;
    let idx: Vec<usize> = (0..o.loaders.len())
        .filter(|&i| o.loaders[i].is_uefi())
        .collect();
    if idx.is_empty() {
        return String::new();
    }
    let bp = o.loaders.iter().position(|l| *l == Loader::BootpackUefi);
    let grub = o.loaders.iter().position(|l| *l == Loader::GrubEfi);
    let mut s = String::new();
    let _ = writeln!(
        s,
        "UEFI (OVMF, -nodefaults, S3 off): floor = ms from QEMU start to OVMF starting BOOTX64.EFI; then ms from there to the kernel's first serial byte, median of {}",
        o.reps
    );
    let _ = write!(s, "{:<7} {:<11} {:>9}", "kernel", "disk", "floor");
    for &i in &idx {
        let _ = write!(s, " {:>9}", o.loaders[i].title());
    }
    if bp.is_some() && grub.is_some() {
        let _ = write!(s, " {:>9}", "bp/grub");
    }
    let _ = writeln!(s);
    for row in &r.boot {
        let floors: Vec<f64> = idx
            .iter()
            .flat_map(|&i| row.cells[i].floor.iter().copied())
            .collect();
        let _ = write!(
            s,
            "{:<7} {:<11} {:>9}",
            row.kernel.name(),
            row.disk.name(),
            ms(median(&floors))
        );
        for &i in &idx {
            let _ = write!(s, " {:>9}", ms(median(&row.cells[i].after_floor)));
        }
        if let (Some(b), Some(g)) = (bp, grub) {
            let _ = write!(
                s,
                " {:>9}",
                ratio(
                    median(&row.cells[b].after_floor),
                    median(&row.cells[g].after_floor)
                )
            );
        }
        let _ = writeln!(s);
    }
    s
}

/// The build table: per kernel and flow, the median and the ratio to
/// `bootpack build`.
pub fn build_table(r: &Results) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "Build: ms to write a raw image, median of {} (process starts included); (x) = flow / bootpack build",
        r.options.build_reps
    );
    let _ = writeln!(
        s,
        "{:<7} {:<38} {:>9} {:>8} {:>11}",
        "kernel", "flow", "ms", "(x)", "image MiB"
    );
    for row in &r.build {
        let base = r
            .build
            .iter()
            .find(|b| b.kernel == row.kernel && b.flow == "bootpack build")
            .and_then(|b| median(&b.samples));
        let _ = writeln!(
            s,
            "{:<7} {:<38} {:>9.1} {:>8} {:>11.1}",
            row.kernel.name(),
            row.flow,
            median(&row.samples).unwrap_or(f64::NAN),
            ratio(median(&row.samples), base),
            row.image_bytes as f64 / MIB as f64
        );
    }
    s
}

/// Everything printed: the conditions, both tables.
pub fn report(r: &Results) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "bootpack boot benchmark: {} cores, load average {} before, {} after",
        std::thread::available_parallelism().map_or(1, |n| n.get()),
        r.load_before,
        r.load_after
    );
    s.push_str(&boot_table(r));
    let uefi = uefi_table(r);
    if !uefi.is_empty() {
        s.push('\n');
        s.push_str(&uefi);
    }
    if !r.build.is_empty() {
        s.push('\n');
        s.push_str(&build_table(r));
    }
    s
}

/// The host's time-stamp counter (under TCG the guest's TSC runs at this
/// rate).
fn host_tsc() -> u64 {
    // SAFETY: rdtsc has no preconditions on x86-64 (CR4.TSD is not set
    // for user space on Linux).
    #[allow(unused_unsafe)]
    unsafe {
        core::arch::x86_64::_rdtsc()
    }
}

/// Host TSC ticks per millisecond, measured over 200 ms.
fn tsc_per_ms() -> f64 {
    let (t0, c0) = (Instant::now(), host_tsc());
    std::thread::sleep(Duration::from_millis(200));
    let (c1, t1) = (host_tsc(), Instant::now());
    (c1 - c0) as f64 / (t1.duration_since(t0).as_secs_f64() * 1e3)
}

/// One profiled boot: the serial stream (SeaBIOS' debug port muxed in)
/// with each chunk's arrival time in ms since QEMU's start.
fn boot_profiled(opts: &Options, disk: Disk, image: &Path) -> Result<Vec<(f64, Vec<u8>)>, String> {
    let mut c = Command::new("qemu-system-x86_64");
    c.args(["-accel", "tcg", "-m", "256M", "-display", "none"])
        .args(["-chardev", "stdio,id=out,mux=on", "-serial", "chardev:out"])
        .args(["-device", "isa-debugcon,iobase=0x402,chardev=out"])
        .args([
            "-no-reboot",
            "-device",
            "isa-debug-exit,iobase=0xf4,iosize=0x04",
        ])
        .args(disk.qemu_args(image));
    // Ends with QEMU (the kernel exits it) or at the timeout, when a
    // halted loader would otherwise keep it running silently.
    let Timed {
        chunks, timed_out, ..
    } = run_timed(&mut c, opts.timeout)?;
    if timed_out {
        let all: Vec<u8> = chunks.iter().flat_map(|(_, b)| b.iter().copied()).collect();
        let text = String::from_utf8_lossy(&all);
        let tail: String = text
            .chars()
            .rev()
            .take(200)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect();
        return Err(format!("timeout: {tail:?}"));
    }
    Ok(chunks)
}

/// Where the time goes in bootpack's boot: images built with a bootpack
/// whose loader prints time marks (`bootpack_ts`, built with
/// BOOTPACK_LOADER_FEATURES=timestamps), SeaBIOS' debug output on the same
/// stream for the moment it jumps to the MBR. Medians of `opts.reps` boots
/// per kernel and disk, in ms.
pub fn profile(opts: &Options, bootpack_ts: &Path) -> Result<String, String> {
    std::fs::create_dir_all(&opts.dir).map_err(|e| e.to_string())?;
    let rate = tsc_per_ms();
    let ts_opts = Options {
        bootpack: bootpack_ts.to_path_buf(),
        ..opts.clone()
    };
    let cols = [
        "bios",
        "s2-read",
        "stage1+2up",
        "e820",
        "mbr",
        "record",
        "fast-setup",
        "seg-read",
        "seg-hidden",
        "seg-copy",
        "to-handoff",
        "handoff",
        "loader",
        "own",
        "MiB",
    ];
    let mut s = String::new();
    let _ = writeln!(
        s,
        "Profile: ms, median of {} boots (host TSC {:.0} MHz); bios = QEMU start to SeaBIOS jumping to 0x7C00,\n\
         s2-read = stage 1's BIOS read of stage 2, stage1+2up = the rest of stage 1 and stage 2's start (long mode,\n\
         console), fast-setup = finding and checking the fast read path (its reads), seg-read = segment reads (BIOS\n\
         or fast path), seg-hidden = the part of seg-read spent checksumming one chunk while the next one\n\
         transferred, seg-copy = the rest of the checksum and the bounce-buffer copy, handoff = last mark to the\n\
         kernel's first byte, loader = SeaBIOS handover to the kernel's first byte, own = loader minus disk reads\n\
         (s2-read, mbr, record, fast-setup, seg-read). The loader records its marks in memory and prints them just\n\
         before the handoff; that printing is measured and left out of loader and handoff.",
        opts.reps,
        rate / 1e3
    );
    let _ = write!(s, "{:<7} {:<11} {:<9}", "kernel", "disk", "reads");
    for c in cols {
        let _ = write!(s, " {c:>10}");
    }
    s.push('\n');
    for &k in &opts.kernels {
        let kdir = opts.dir.join(format!("profile-{}", k.name()));
        std::fs::create_dir_all(&kdir).map_err(|e| e.to_string())?;
        let (bytes, _) = kernel_file(k);
        let file = kdir.join("kernel.elf");
        std::fs::write(&file, &bytes).map_err(|e| e.to_string())?;
        let fast = kdir.join("bootpack-ts.img");
        bootpack_build(&ts_opts, &file, &fast, None, true)?;
        let bios = kdir.join("bootpack-ts-bios.img");
        bootpack_build(&ts_opts, &file, &bios, None, false)?;
        for &d in &opts.disks {
            for (variant, img) in [("fast", &fast), ("bios-only", &bios)] {
                let mut samples: Vec<Vec<f64>> = vec![Vec::new(); cols.len()];
                for _ in 0..opts.reps {
                    let chunks = boot_profiled(opts, d, img)?;
                    let row = profile_row(&chunks, rate)
                        .ok_or_else(|| format!("{} {}: marks missing", k.name(), d.name()))?;
                    for (i, v) in row.into_iter().enumerate() {
                        samples[i].push(v);
                    }
                }
                let _ = write!(s, "{:<7} {:<11} {:<9}", k.name(), d.name(), variant);
                for v in &samples {
                    let _ = write!(s, " {:>10.2}", median(v).unwrap_or(f64::NAN));
                }
                s.push('\n');
            }
        }
    }
    Ok(s)
}

/// The columns of [`profile`] from one boot's stream.
fn profile_row(chunks: &[(f64, Vec<u8>)], rate: f64) -> Option<Vec<f64>> {
    let all: Vec<u8> = chunks.iter().flat_map(|(_, b)| b.iter().copied()).collect();
    let at = |pos: usize| -> Option<f64> {
        let mut seen = 0;
        for (t, b) in chunks {
            if pos < seen + b.len() {
                return Some(*t);
            }
            seen += b.len();
        }
        None
    };
    let find = |needle: &[u8]| all.windows(needle.len()).position(|w| w == needle);
    let handover = at(find(b"Booting from 0000:7c00")?)?;
    let kernel = at(find(KERNEL_MARKER)?)?;
    let text = String::from_utf8_lossy(&all);
    let mut marks: Vec<(String, u64, u64)> = Vec::new();
    for line in text.lines() {
        if let Some(rest) = line.trim_end().strip_prefix("bootpack-ts ") {
            let f: Vec<&str> = rest.split(' ').collect();
            if f.len() == 3 {
                let tsc = u64::from_str_radix(f[1].trim_start_matches("0x"), 16).ok()?;
                marks.push((f[0].to_string(), tsc, f[2].parse().ok()?));
            }
        }
    }
    let tsc = |label: &str| marks.iter().find(|m| m.0 == label).map(|m| m.1);
    let sum = |label: &str| -> u64 { marks.iter().filter(|m| m.0 == label).map(|m| m.2).sum() };
    let ms = |a: u64, b: u64| b.saturating_sub(a) as f64 / rate;
    let (s1_entry, s1_read, s1_done) = (tsc("s1-entry")?, tsc("s1-read")?, tsc("s1-done")?);
    let (entry, e820, mbr, record) = (tsc("entry")?, tsc("e820")?, tsc("mbr")?, tsc("record")?);
    let (segments, handoff, printed) = (tsc("segments")?, tsc("handoff")?, tsc("printed")?);
    let seg_read = sum("read-bios-cycles") as f64 / rate;
    let seg_copy = sum("read-copy-cycles") as f64 / rate;
    let seg_hidden = sum("read-hidden-cycles") as f64 / rate;
    let s2_read = ms(s1_read, s1_done);
    // Host time from SeaBIOS' handover to the kernel's first byte, less
    // the loader's printing of its marks (between handoff and printed).
    let loader = kernel - handover - ms(handoff, printed);
    let fast_setup = tsc("fast-read").map_or(0.0, |f| ms(record, f));
    let reads = s2_read + seg_read + ms(e820, mbr) + ms(mbr, record) + fast_setup;
    Some(vec![
        handover,
        s2_read,
        ms(s1_entry, entry) - s2_read,
        ms(entry, e820),
        ms(e820, mbr),
        ms(mbr, record),
        fast_setup,
        seg_read,
        seg_hidden,
        seg_copy,
        ms(segments, handoff),
        loader - ms(s1_entry, handoff),
        loader,
        loader - reads,
        sum("read-bytes") as f64 / MIB as f64,
    ])
}
