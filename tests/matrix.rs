//! The compatibility matrix: the test kernel in all three shapes (the Solo5
//! ELF64 with the a.out kludge, ELF32 by program headers, a flat binary
//! with the kludge) booted on every combination of machine (`pc`, `q35`),
//! boot disk controller (IDE, AHCI, virtio-blk, virtio-scsi, NVMe), RAM
//! (16 MiB, 128 MiB, 3 GiB, 6 GiB) and CPU model (`qemu64`, `max`): 80
//! cells, 240 boots, two QEMUs at a time (BOOTPACK_MATRIX_JOBS overrides).
//! Every cell must boot. A kernel that cannot fit (32 MiB of payload in a
//! 16 MiB machine) must stop with bootpack's message naming the cause.
//!
//! The table is printed (`cargo test --test matrix -- --nocapture`) and
//! written to `target/tmp/compatibility-matrix.md`; the README's
//! "Compatibility" section is a copy of it.

mod support;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use support::kernels::{self, Payload, Shape};
use support::qemu::{self, Machine};
use support::report::Report;
use support::{bootpack, scratch};

const BOOT_TIMEOUT: Duration = Duration::from_secs(60);
/// isa-debug-exit: the kernel writes 0x10, QEMU exits (0x10 << 1) | 1.
const KERNEL_EXIT: i32 = 0x21;
const MIB: u64 = 1 << 20;
const MULTIBOOT1_MAGIC: u64 = 0x2BAD_B002;
const MULTIBOOT2_MAGIC: u64 = 0x36D7_6289;

const MACHINES: [&str; 2] = ["pc", "q35"];
const MEMORY: [&str; 4] = ["16M", "128M", "3G", "6G"];
const CPUS: [&str; 2] = ["qemu64", "max"];
const SHAPES: [Shape; 3] = [Shape::Solo5Elf64, Shape::Elf32, Shape::Flat];

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Disk {
    Ide,
    Ahci,
    VirtioBlk,
    VirtioScsi,
    Nvme,
}

const DISKS: [Disk; 5] = [
    Disk::Ide,
    Disk::Ahci,
    Disk::VirtioBlk,
    Disk::VirtioScsi,
    Disk::Nvme,
];

impl Disk {
    fn label(self) -> &'static str {
        match self {
            Disk::Ide => "IDE",
            Disk::Ahci => "AHCI",
            Disk::VirtioBlk => "virtio-blk",
            Disk::VirtioScsi => "virtio-scsi",
            Disk::Nvme => "NVMe",
        }
    }

    /// QEMU arguments attaching `image` as the only disk, on this
    /// controller. `pc` has a PIIX IDE controller and no AHCI, `q35` an ICH9
    /// AHCI controller and no IDE: the missing one is added as a PCI device
    /// (SeaBIOS drives both kinds wherever they sit).
    fn qemu_args(self, machine: &str, image: &std::path::Path) -> Vec<String> {
        let drive = format!("file={},format=raw,if=none,id=d0", image.display());
        let devices: &[&str] = match (self, machine) {
            (Disk::Ide, "pc") => &["ide-hd,drive=d0,bus=ide.0"],
            (Disk::Ide, _) => &["piix3-ide,id=pide", "ide-hd,drive=d0,bus=pide.0"],
            (Disk::Ahci, "q35") => &["ide-hd,drive=d0,bus=ide.0"],
            (Disk::Ahci, _) => &["ahci,id=ahci0", "ide-hd,drive=d0,bus=ahci0.0"],
            (Disk::VirtioBlk, _) => &["virtio-blk-pci,drive=d0"],
            (Disk::VirtioScsi, _) => &["virtio-scsi-pci,id=scsi0", "scsi-hd,drive=d0,bus=scsi0.0"],
            (Disk::Nvme, _) => &["nvme,serial=bootpack,drive=d0"],
        };
        let mut args = vec!["-drive".to_string(), drive];
        for d in devices {
            args.push("-device".into());
            args.push(d.to_string());
        }
        args
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Cell {
    machine: &'static str,
    disk: Disk,
    mem: &'static str,
    cpu: &'static str,
}

/// One boot's outcome: Ok(boot time) or what went wrong.
type Outcome = Result<Duration, String>;

struct Kernel {
    shape: Shape,
    image: PathBuf,
    cmdline: Vec<u8>,
}

impl Kernel {
    /// The image for worker `w`: each QEMU gets its own copy, since QEMU
    /// locks a disk image against a second writer.
    fn image_for(&self, w: usize) -> PathBuf {
        let copy = self.image.with_extension(format!("w{w}.img"));
        if !copy.exists() {
            std::fs::copy(&self.image, &copy).unwrap();
        }
        copy
    }
}

fn pack_all(dir: &std::path::Path) -> Vec<Kernel> {
    SHAPES
        .iter()
        .map(|&shape| {
            let name = format!("{shape:?}").to_lowercase();
            let kernel = dir.join(&name);
            std::fs::write(&kernel, kernels::build(shape, None)).unwrap();
            let image = dir.join(format!("{name}.img"));
            let r = bootpack([
                "build".as_ref(),
                kernel.as_os_str(),
                "-o".as_ref(),
                image.as_os_str(),
                "--".as_ref(),
                "matrix".as_ref(),
                "cell".as_ref(),
            ]);
            assert!(
                r.status.success(),
                "bootpack build {name}: {}",
                String::from_utf8_lossy(&r.stderr)
            );
            Kernel {
                shape,
                image,
                cmdline: format!("{name} matrix cell").into_bytes(),
            }
        })
        .collect()
}

fn parse_size(s: &str) -> u64 {
    let (n, unit) = s.split_at(s.len() - 1);
    n.parse::<u64>().unwrap() * if unit == "G" { 1 << 30 } else { MIB }
}

/// Boots `k` in `cell` and checks that the kernel ran with what was packed.
fn boot_cell(cell: Cell, k: &Kernel, image: &std::path::Path) -> Outcome {
    let mut m = Machine::new(cell.machine, cell.mem);
    m.extra = vec!["-cpu".into(), cell.cpu.into()];
    let run = qemu::boot_with_disk(
        &cell.disk.qemu_args(cell.machine, image),
        &m,
        None,
        BOOT_TIMEOUT,
    );
    let text = run.serial_text();
    let first_line = |t: &str| {
        t.lines()
            .find(|l| l.contains("bootpack: error"))
            .or_else(|| t.lines().find(|l| !l.trim().is_empty()))
            .unwrap_or("no output at all")
            .trim()
            .to_string()
    };
    if run.exit != Some(KERNEL_EXIT) {
        return Err(format!(
            "QEMU exit {:?} after {:.1?}: {}",
            run.exit,
            run.elapsed,
            first_line(&text)
        ));
    }
    let r = std::panic::catch_unwind(|| Report::parse(&run.serial))
        .map_err(|_| format!("incomplete kernel report: {}", first_line(&text)))?;
    let magic = r.num("magic");
    if magic != MULTIBOOT1_MAGIC && magic != MULTIBOOT2_MAGIC {
        return Err(format!("EAX at entry {magic:#x}"));
    }
    if r.cmdline() != k.cmdline {
        return Err(format!(
            "command line {:?}",
            String::from_utf8_lossy(&r.cmdline())
        ));
    }
    // The BIOS memory map reached the kernel: all the RAM but what the
    // BIOS keeps (at most 2 MiB), above 4 GiB too.
    let usable: u64 = r.mmap.iter().filter(|e| e.kind == 1).map(|e| e.len).sum();
    let ram = parse_size(cell.mem);
    if !(usable > ram - 2 * MIB && usable <= ram) {
        return Err(format!(
            "usable RAM in the map {usable:#x} for {}",
            cell.mem
        ));
    }
    Ok(run.elapsed)
}

fn cells() -> Vec<Cell> {
    let mut v = Vec::new();
    for machine in MACHINES {
        for disk in DISKS {
            for mem in MEMORY {
                for cpu in CPUS {
                    v.push(Cell {
                        machine,
                        disk,
                        mem,
                        cpu,
                    });
                }
            }
        }
    }
    v
}

fn jobs() -> usize {
    std::env::var("BOOTPACK_MATRIX_JOBS")
        .ok()
        .and_then(|j| j.parse().ok())
        .filter(|&j| j > 0)
        .unwrap_or(2)
}

fn qemu_versions() -> String {
    let qemu = std::process::Command::new(qemu::QEMU)
        .arg("--version")
        .output()
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .next()
                .unwrap_or("")
                .to_string()
        })
        .unwrap_or_default();
    let seabios = std::process::Command::new("dpkg-query")
        .args(["-W", "-f", "${Version}", "seabios"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| format!("SeaBIOS {}", String::from_utf8_lossy(&o.stdout)))
        .unwrap_or_else(|| "SeaBIOS version unknown".into());
    format!("{qemu}; {seabios}")
}

/// Rows machine x disk, columns RAM x CPU; each entry "ok" and the slowest
/// of the three shapes' boot times, or the first failure.
fn table(results: &BTreeMap<(Cell, usize), Outcome>) -> String {
    let mut t = String::from("| machine | disk |");
    for mem in MEMORY {
        for cpu in CPUS {
            t += &format!(" {mem} {cpu} |");
        }
    }
    t += "\n|---|---|";
    t += &"---|".repeat(MEMORY.len() * CPUS.len());
    t += "\n";
    for machine in MACHINES {
        for disk in DISKS {
            t += &format!("| {machine} | {} |", disk.label());
            for mem in MEMORY {
                for cpu in CPUS {
                    let cell = Cell {
                        machine,
                        disk,
                        mem,
                        cpu,
                    };
                    let outs: Vec<&Outcome> =
                        (0..SHAPES.len()).map(|i| &results[&(cell, i)]).collect();
                    let entry = match outs.iter().find_map(|o| o.as_ref().err()) {
                        Some(e) => format!("FAIL: {e}"),
                        None => {
                            let slowest = outs.iter().map(|o| *o.as_ref().unwrap()).max().unwrap();
                            format!("ok {:.2} s", slowest.as_secs_f64())
                        }
                    };
                    t += &format!(" {entry} |");
                }
            }
            t += "\n";
        }
    }
    t
}

#[test]
fn every_cell_of_the_matrix_boots() {
    qemu::require_qemu();
    let dir = scratch("matrix");
    let kernels = pack_all(&dir);
    let work: Mutex<Vec<(Cell, usize)>> = Mutex::new(
        cells()
            .into_iter()
            .flat_map(|c| (0..kernels.len()).map(move |k| (c, k)))
            .rev()
            .collect(),
    );
    let results: Mutex<BTreeMap<(Cell, usize), Outcome>> = Mutex::new(BTreeMap::new());
    let start = Instant::now();
    std::thread::scope(|s| {
        for w in 0..jobs() {
            let (work, results, kernels) = (&work, &results, &kernels);
            s.spawn(move || loop {
                let Some((cell, k)) = work.lock().unwrap().pop() else {
                    break;
                };
                let outcome = boot_cell(cell, &kernels[k], &kernels[k].image_for(w));
                results.lock().unwrap().insert((cell, k), outcome);
            });
        }
    });
    let wall = start.elapsed();
    let results = results.into_inner().unwrap();

    let boots = results.len();
    let t = table(&results);
    let header = format!(
        "{boots} boots ({} cells x {} kernel shapes: {}) in {:.1} s wall time, {} QEMUs at a time; {}\n\
         Each entry: the slowest of the shapes' time from QEMU start to the kernel's exit.\n",
        boots / kernels.len(),
        kernels.len(),
        kernels
            .iter()
            .map(|k| format!("{:?}", k.shape))
            .collect::<Vec<_>>()
            .join(", "),
        wall.as_secs_f64(),
        jobs(),
        qemu_versions(),
    );
    println!("{header}\n{t}");
    let out = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("compatibility-matrix.md");
    let _ = std::fs::write(&out, format!("{header}\n{t}"));

    let failures: Vec<String> = results
        .iter()
        .filter_map(|((cell, k), o)| {
            o.as_ref()
                .err()
                .map(|e| format!("{cell:?} {:?}: {e}", kernels[*k].shape))
        })
        .collect();
    assert!(
        failures.is_empty(),
        "{} of {boots} boots failed:\n{}\n\n{t}",
        failures.len(),
        failures.join("\n")
    );
}

/// A kernel that needs more RAM than the machine has stops with stage 2's
/// message naming the addresses, and halts: no reboot, no jump into a
/// half-loaded kernel.
#[test]
fn a_kernel_too_big_for_16_mib_is_refused_at_boot() {
    qemu::require_qemu();
    let dir = scratch("too-big");
    // 32 MiB of payload at 16 MiB: needs RAM up to 48 MiB.
    let payload = Payload::random(0x100_0000, 32 << 20, 0xb16);
    let kernel = dir.join("elf32-32m");
    std::fs::write(&kernel, kernels::build(Shape::Elf32, Some(&payload))).unwrap();
    let image = dir.join("big.img");
    let r = bootpack([
        "build".as_ref(),
        kernel.as_os_str(),
        "-o".as_ref(),
        image.as_os_str(),
    ]);
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    let message = "bootpack: error: kernel needs 0x1000000-0x2FFFFFF but that is not usable RAM: \
                   give the machine more memory";
    for machine in MACHINES {
        let run = qemu::boot_with_disk(
            &Disk::Ide.qemu_args(machine, &image),
            &Machine::new(machine, "16M"),
            Some(("bootpack: halted", Duration::from_secs(1))),
            BOOT_TIMEOUT,
        );
        let text = run.serial_text();
        assert!(text.contains(message), "{machine}: serial:\n{text}");
        assert!(text.contains("bootpack: halted"), "{machine}: {text}");
        assert!(!text.contains("BPTK"), "{machine}: the kernel ran:\n{text}");
        assert_eq!(run.exit, None, "{machine}: QEMU must still be running");
        let vga = run.vga.unwrap_or_default();
        assert!(
            vga.contains("kernel needs 0x1000000-0x2FFFFFF but that is not usable RAM"),
            "{machine}: VGA:\n{vga}"
        );
        // The same image boots with enough memory.
        let run = qemu::boot_with_disk(
            &Disk::Ide.qemu_args(machine, &image),
            &Machine::new(machine, "64M"),
            None,
            BOOT_TIMEOUT,
        );
        assert_eq!(
            run.exit,
            Some(KERNEL_EXIT),
            "{machine} with 64M:\n{}",
            run.serial_text()
        );
        let rep = Report::parse(&run.serial);
        assert_eq!(rep.get("payload"), format!("0x01000000 {} ok", 32 << 20));
    }
}
