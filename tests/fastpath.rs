//! Stage 2's own read paths (boot/bios/src/fastdisk/), one per disk
//! controller it recognises: PIIX IDE (`pc`), AHCI (`q35`), virtio-blk and
//! virtio-scsi.
//!
//! For each controller:
//! - a kernel with a 3 MiB payload and a module of an odd size boots; the
//!   kernel checks its payload's hash and reports the module's, which must
//!   match what was packed; QEMU's block-layer trace (`blk_co_preadv`) shows
//!   reads larger than any INT 13h read (127 sectors), so the fast path
//!   carried the data (the module's partial last sector too, staged; see
//!   tests/readpath.rs);
//! - built with `--no-fast-read`, the same image boots with no read larger
//!   than 127 sectors;
//! - a read failing inside the kernel data after the fast path was checked
//!   (QEMU blkdebug) turns the fast path off, the BIOS reads the rest and the
//!   kernel still boots intact;
//! - a kernel that two BIOS reads fetch (the demo) is left to the BIOS:
//!   setting up the fast path would cost more than it saves.

mod support;

use std::path::{Path, PathBuf};
use std::time::Duration;

use bootpack::proto::layout::{PARTITION_START_LBA, SECTOR};
use bootpack::proto::record::Record;
use support::kernels::{self, Headers, Payload, Shape, Spec};
use support::memplan::SECTORS_PER_READ;
use support::qemu::{self, Machine};
use support::report::Report;
use support::{blkdebug, scratch, Scratch};

const BOOT_TIMEOUT: Duration = Duration::from_secs(120);
const KERNEL_EXIT: i32 = 0x21;
const PAYLOAD_AT: u64 = 0x100_0000;
const PAYLOAD_LEN: usize = 3 << 20;
/// Not a multiple of 512: its last sector is read through the BIOS.
const MODULE_LEN: usize = 123_457;
/// The largest read INT 13h makes (bootpack asks for at most 127 sectors
/// per call, and SeaBIOS never merges calls).
const BIOS_READ_MAX: u64 = SECTORS_PER_READ as u64 * SECTOR;

/// A disk controller and the QEMU arguments that attach `drive` (a
/// `-drive` file= value, e.g. a blkdebug: spec) to it as the boot disk.
#[derive(Clone, Copy, Debug)]
enum Controller {
    Ide,
    Ahci,
    VirtioBlk,
    VirtioScsi,
}

const ALL: [Controller; 4] = [
    Controller::Ide,
    Controller::Ahci,
    Controller::VirtioBlk,
    Controller::VirtioScsi,
];

impl Controller {
    fn machine(self) -> Machine {
        let machine = match self {
            Controller::Ide => "pc",
            _ => "q35",
        };
        Machine::new(machine, "256M")
    }

    fn args(self, file: &str) -> Vec<String> {
        let drive = format!("file={file},format=raw,if=none,id=d0");
        let device: &[&str] = match self {
            // ide.0 is the PIIX primary channel on `pc`, AHCI port 0 on q35.
            Controller::Ide | Controller::Ahci => &["-device", "ide-hd,drive=d0,bus=ide.0"],
            Controller::VirtioBlk => &["-device", "virtio-blk-pci,drive=d0"],
            Controller::VirtioScsi => &[
                "-device",
                "virtio-scsi-pci,id=s0",
                "-device",
                "scsi-hd,drive=d0,bus=s0.0",
            ],
        };
        let mut a = vec!["-drive".to_string(), drive];
        a.extend(device.iter().map(|s| s.to_string()));
        a
    }
}

/// An image of a kernel with a payload and one module.
struct Packed {
    dir: Scratch,
    image: PathBuf,
    payload: Payload,
    module: Vec<u8>,
}

fn pack(test: &str, fast_read: bool) -> Packed {
    pack_sized(test, fast_read, PAYLOAD_LEN, MODULE_LEN)
}

/// An image of a kernel with `payload_len` bytes of payload and, unless
/// `module_len` is 0, a module of that size.
fn pack_sized(test: &str, fast_read: bool, payload_len: usize, module_len: usize) -> Packed {
    let dir = scratch(test);
    let payload = Payload::random(PAYLOAD_AT, payload_len, 0xfa57);
    let spec = Spec {
        payload: Some(&payload),
        ..Spec::new(Shape::Elf32, Headers::Mb1)
    };
    let kernel = dir.join("kernel");
    std::fs::write(&kernel, kernels::build_spec(&spec)).unwrap();
    let module = kernels::random_bytes(module_len, 0x0dd);
    let mut build = bootpack::Build::new(&kernel)
        .name("kernel")
        .args(["fast"])
        .fast_read(fast_read);
    if module_len > 0 {
        let module_path = dir.join("module");
        std::fs::write(&module_path, &module).unwrap();
        build = build.module(module_path, "odd");
    }
    let image = dir.join("disk.img");
    build
        .write(&image)
        .unwrap_or_else(|e| panic!("packing failed: {e}"));
    Packed {
        dir,
        image,
        payload,
        module,
    }
}

/// The sizes of every disk read QEMU's block layer saw.
fn read_sizes(trace: &Path) -> Vec<u64> {
    let log = std::fs::read_to_string(trace)
        .unwrap_or_else(|e| panic!("QEMU wrote no trace at {}: {e}", trace.display()));
    let sizes: Vec<u64> = log
        .lines()
        .filter(|l| l.contains("blk_co_preadv"))
        .filter_map(|l| {
            let mut words = l.split_whitespace();
            words.find(|&w| w == "bytes")?;
            words.next()?.parse().ok()
        })
        .collect();
    assert!(!sizes.is_empty(), "no blk_co_preadv lines in the trace");
    sizes
}

/// Boots `file` on `c` with the read trace on; checks that the kernel ran
/// with its payload and module intact; returns the read sizes.
fn boot_and_check(p: &Packed, c: Controller, file: &str, name: &str) -> Vec<u64> {
    let trace = p.dir.join(format!("{name}.trace"));
    let mut m = c.machine();
    m.extra.extend(
        ["-trace", "blk_co_preadv", "-D"]
            .iter()
            .map(|s| s.to_string())
            .chain([trace.display().to_string()]),
    );
    let run = qemu::boot_with_disk(&c.args(file), &m, None, BOOT_TIMEOUT);
    assert_eq!(
        run.exit,
        Some(KERNEL_EXIT),
        "{c:?} {name}: the kernel must run; serial:\n{}",
        run.serial_text()
    );
    let r = Report::parse(&run.serial);
    assert_eq!(r.cmdline(), b"kernel fast", "{c:?} {name}");
    assert_eq!(
        r.get("payload"),
        format!("0x{PAYLOAD_AT:08x} {} ok", p.payload.data.len()),
        "{c:?} {name}: payload"
    );
    if p.module.is_empty() {
        assert!(r.mods.is_empty(), "{c:?} {name}: no module");
        return read_sizes(&trace);
    }
    assert_eq!(r.mods.len(), 1, "{c:?} {name}: one module");
    assert_eq!(
        r.mods[0].end - r.mods[0].start,
        p.module.len() as u64,
        "{c:?} {name}: module size"
    );
    assert_eq!(
        r.mods[0].hash,
        kernels::bytes_hash(&p.module),
        "{c:?} {name}: module bytes"
    );
    read_sizes(&trace)
}

#[test]
fn each_controller_reads_the_kernel_by_its_fast_path() {
    let p = pack("fast-on", true);
    let file = p.image.display().to_string();
    for c in ALL {
        let sizes = boot_and_check(&p, c, &file, &format!("{c:?}-fast"));
        let big = sizes.iter().filter(|&&s| s > BIOS_READ_MAX).count();
        assert!(
            big > 0,
            "{c:?}: no read larger than {BIOS_READ_MAX} bytes, so the fast path was not used \
             (largest read: {} bytes)",
            sizes.iter().max().unwrap()
        );
    }
}

#[test]
fn no_fast_read_keeps_every_read_with_the_bios() {
    let p = pack("fast-off", false);
    let file = p.image.display().to_string();
    for c in ALL {
        let sizes = boot_and_check(&p, c, &file, &format!("{c:?}-bios"));
        let largest = *sizes.iter().max().unwrap();
        assert!(
            largest <= BIOS_READ_MAX,
            "{c:?}: --no-fast-read image read {largest} bytes at once; INT 13h reads at most \
             {BIOS_READ_MAX}"
        );
    }
}

#[test]
fn a_fast_read_that_fails_falls_back_to_the_bios() {
    let p = pack("fast-fails", true);
    let disk = std::fs::read(&p.image).unwrap();
    let at = PARTITION_START_LBA as usize * SECTOR as usize;
    let rec = Record::parse(&disk[at..]).expect("a sound record");
    // The payload segment's middle: well past the sectors the fast path
    // is checked against, so it is read by the fast path and fails there.
    let seg = rec
        .segments()
        .find(|s| s.dest == PAYLOAD_AT)
        .expect("the payload segment");
    let lba = PARTITION_START_LBA as u64 + seg.data_sector + seg.file_size / SECTOR / 2;
    let file = blkdebug::file(&p.dir, &p.image, lba, true);
    for c in ALL {
        let sizes = boot_and_check(&p, c, &file, &format!("{c:?}-fails"));
        assert!(
            sizes.iter().any(|&s| s > BIOS_READ_MAX),
            "{c:?}: the fast path must have been in use before the failure"
        );
    }
}

#[test]
fn a_small_kernel_is_left_to_the_bios() {
    // 64 KiB of payload: one fast read would be bigger than any BIOS read,
    // but the whole kernel is under two BIOS reads.
    let p = pack_sized("fast-small", true, 64 << 10, 0);
    let disk = std::fs::read(&p.image).unwrap();
    let at = PARTITION_START_LBA as usize * SECTOR as usize;
    let rec = Record::parse(&disk[at..]).expect("a sound record");
    assert!(rec.data_sectors() as u64 <= 2 * SECTORS_PER_READ as u64);
    let file = p.image.display().to_string();
    for c in ALL {
        let sizes = boot_and_check(&p, c, &file, &format!("{c:?}-small"));
        let largest = *sizes.iter().max().unwrap();
        assert!(
            largest <= BIOS_READ_MAX,
            "{c:?}: a {}-sector kernel was read {largest} bytes at once: the fast path was set \
             up for it",
            rec.data_sectors()
        );
    }
}
