//! Boot and build benchmark: bootpack against syslinux (the
//! solo5-virtio-mkimage flow), GRUB and QEMU's own `-kernel` loader.
//!
//! Run: `bench/boot.sh [OPTIONS]`, which installs the tools with apt-get,
//! builds the `bootpack` binaries and this example in release mode and runs
//! `target/release/examples/bench_boot --bin-dir target/release [OPTIONS]`.
//!
//! Options (defaults in brackets):
//!
//!   --reps N          boots per cell [10]
//!   --build-reps N    builds per build cell, 0 for none [10]
//!   --kernels LIST    demo and/or sizes in MiB [demo,2.5M,32M]
//!   --disks LIST      ide, ahci, virtio-blk, virtio-scsi [all four]
//!   --loaders LIST    kernel (QEMU -kernel), bootpack, bootpack-bios
//!                     (bootpack --no-fast-read), syslinux, grub,
//!                     bootpack-uefi and grub-efi (both under OVMF, with
//!                     a table of their time after OVMF's floor) [all]
//!   --bin-dir DIR     where `bootpack` and `solo5-virtio-mkimage` are
//!   --timeout SECS    longest one boot may take [60]
//!   --keep DIR        build in DIR and keep it (default: a temporary
//!                     directory, removed)
//!   --profile BIN     instead of the tables: where bootpack's boot time
//!                     goes, per kernel and disk, with BIN a `bootpack`
//!                     whose loader prints time marks (`bench/boot.sh
//!                     --profile` builds one: BOOTPACK_LOADER_FEATURES=
//!                     timestamps cargo build --release -p bootpack
//!                     --target-dir target/timestamps)
//!
//! Kernels: `demo` is bootpack's embedded demo kernel (ELF64 with the a.out
//! kludge, the Solo5 shape; about 24 KiB). `2.5M`, `32M`: the same code as
//! an ELF32 kernel loaded by its program headers (Multiboot flags 0x3;
//! QEMU's -kernel takes only ELF32 or a.out-kludge kernels) plus a
//! pseudo-random payload at 16 MiB that makes the file that size and that
//! the kernel checksums after its first output line.
//!
//! Images, one per kernel and loader, all raw:
//! - bootpack: `bootpack build KERNEL -o IMG --protocol multiboot1 --name kernel -- bench`
//!   (the demo kernel also has a Multiboot 2 header; every loader here
//!   boots Multiboot 1); bootpack-bios (`bp-bios` in the table): the same
//!   with `--no-fast-read`, every read through INT 13h;
//! - syslinux: the solo5-virtio-mkimage flow re-implemented: a 1 GiB file,
//!   `sfdisk` (one active FAT32 partition at LBA 2048), `mkfs.fat -F 32
//!   --offset 2048`, `syslinux --offset 1048576 --install`, syslinux'
//!   mbr.bin in the MBR, mboot.c32, libcom32.c32, a syslinux.cfg with
//!   `SERIAL 0 115200` and `APPEND -aout unikernel.bin bench`, and the
//!   kernel as unikernel.bin, copied with `mcopy -i IMG@@1M`;
//! - grub: `grub-mkimage -O i386-pc` with biosdisk, part_msdos, fat,
//!   multiboot and boot and a built-in config `multiboot
//!   (hd0,msdos1)/kernel kernel bench; boot`, GRUB's boot.img in the MBR
//!   (it loads the core from LBA 1, its default), core.img at LBA 1, the
//!   kernel on the same FAT32 partition;
//! - -kernel: QEMU's Multiboot loader with `-append "kernel bench"`; the
//!   bootpack image is attached on the same controller so the firmware
//!   does the same work.
//!
//! No loop devices, no root-only tools.
//!
//! Disks: ide = `-machine pc` and `-drive file=IMG,format=raw` (PIIX IDE);
//! ahci = the same on `-machine q35`; virtio-blk = q35 with
//! `-device virtio-blk-pci`; virtio-scsi = q35 with `virtio-scsi-pci` and
//! `scsi-hd`. Every boot: `qemu-system-x86_64 -accel tcg -m 256M -display
//! none -serial stdio -no-reboot -device isa-debug-exit,...`, QEMU's default
//! devices otherwise (as `bootpack run` and the README's command line).
//!
//! Time: from just before QEMU is spawned to the arrival on its stdout pipe
//! of the kernel's first serial byte (the "\r\n" before "bootpack demo
//! kernel"; syslinux prints its banner before it, which is not counted).
//! A boot counts only if the kernel then reports the Multiboot magic, runs
//! to its last line and, for the payload kernels, finds the payload intact;
//! otherwise the cell counts a failure. Cells are booted round-robin (every
//! cell once per round) so changes in machine load hit every cell alike;
//! ratios come from one run. The medians include QEMU's own start-up and
//! SeaBIOS (tens of ms), the same for every loader.
//!
//! Build table: per kernel, median wall time of `bootpack build` (default
//! size: just big enough), `bootpack build --size 1G`, bootpack's
//! `solo5-virtio-mkimage` (1 GiB), the syslinux flow above (1 GiB) and the
//! GRUB flow above, each writing a fresh file; process starts included, as
//! when a user or a script runs them; nothing fsynced.

#[path = "harness.rs"]
mod harness;

use std::path::PathBuf;
use std::time::Duration;

use harness::{Disk, Kernel, Loader, Options};

fn list<T>(s: &str, f: fn(&str) -> Result<T, String>) -> Vec<T> {
    s.split(',')
        .filter(|x| !x.is_empty())
        .map(|x| f(x).unwrap_or_else(|e| die(&e)))
        .collect()
}

fn die(msg: &str) -> ! {
    eprintln!("bench_boot: {msg}");
    std::process::exit(2)
}

fn main() {
    let mut opts = Options {
        reps: 10,
        build_reps: 10,
        kernels: list("demo,2.5M,32M", Kernel::parse),
        disks: Disk::ALL.to_vec(),
        loaders: Loader::ALL.to_vec(),
        bootpack: PathBuf::from("bootpack"),
        mkimage: None,
        dir: std::env::temp_dir().join(format!("bootpack-bench-boot-{}", std::process::id())),
        timeout: Duration::from_secs(60),
        verbose: true,
    };
    let mut keep = false;
    let mut profile: Option<PathBuf> = None;
    let mut bin_dir: Option<PathBuf> = None;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut val = || {
            args.next()
                .unwrap_or_else(|| die(&format!("{a} needs a value")))
        };
        let num = |v: String| -> usize {
            v.parse()
                .unwrap_or_else(|_| die(&format!("{a}: not a number: {v}")))
        };
        match a.as_str() {
            "--reps" => opts.reps = num(val()),
            "--build-reps" => opts.build_reps = num(val()),
            "--kernels" => opts.kernels = list(&val(), Kernel::parse),
            "--disks" => opts.disks = list(&val(), Disk::parse),
            "--loaders" => opts.loaders = list(&val(), Loader::parse),
            "--bin-dir" => bin_dir = Some(PathBuf::from(val())),
            "--timeout" => opts.timeout = Duration::from_secs(num(val()) as u64),
            "--profile" => profile = Some(PathBuf::from(val())),
            "--keep" => {
                opts.dir = PathBuf::from(val());
                keep = true;
            }
            "-h" | "--help" => {
                println!("see the top of packager/examples/bench_boot/main.rs or bench/boot.sh");
                return;
            }
            _ => die(&format!("unknown argument {a}")),
        }
    }
    if let Some(d) = bin_dir {
        opts.bootpack = d.join("bootpack");
        let m = d.join("solo5-virtio-mkimage");
        opts.mkimage = m.exists().then_some(m);
    }
    if let Some(bin) = profile {
        let result = harness::profile(&opts, &bin);
        if !keep {
            let _ = std::fs::remove_dir_all(&opts.dir);
        }
        match result {
            Ok(t) => print!("{t}"),
            Err(e) => die(&e),
        }
        return;
    }
    let result = harness::run(&opts);
    if !keep {
        let _ = std::fs::remove_dir_all(&opts.dir);
    }
    match result {
        Ok(r) => print!("{}", harness::report(&r)),
        Err(e) => die(&e),
    }
}
