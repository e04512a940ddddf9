//! GPT images (`bootpack build --table gpt`): sgdisk finds no problem with
//! them, they boot on BIOS on `pc` and `q35` from every kind of disk
//! controller, a 3 TiB one (beyond MBR's reach) is sparse, boots and costs
//! what a 1 GiB one does, every output format carries them, and `inspect`
//! reads them. Damaged GPTs at boot are in tests/faults.rs.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use bootpack::proto::crc32::crc32;
use support::kernels::{self, Headers, Payload, Shape, Spec};
use support::qemu::{self, Machine};
use support::report::Report;
use support::{bootpack, scratch};

const BOOT_TIMEOUT: Duration = Duration::from_secs(60);
const KERNEL_EXIT: i32 = 0x21;
const GIB: u64 = 1 << 30;

/// A kernel with 1 MiB of payload it checksums itself: more than stage 2
/// reads through the BIOS alone, so the fast read paths are used too.
fn kernel(dir: &Path) -> (PathBuf, Payload) {
    let payload = Payload::random(0x100_0000, 1 << 20, 0x69d);
    let k = dir.join("kernel");
    std::fs::write(
        &k,
        kernels::build_spec(&Spec {
            payload: Some(&payload),
            ..Spec::new(Shape::Elf32, Headers::Mb1)
        }),
    )
    .unwrap();
    (k, payload)
}

/// `bootpack build KERNEL -o OUT --table gpt OPTIONS -- gpt ARG`.
fn build(kernel: &Path, out: &Path, options: &[&str]) {
    let r = bootpack(
        [
            "build",
            kernel.to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
            "--table",
            "gpt",
        ]
        .iter()
        .chain(options)
        .chain(&["--", "gpt"]),
    );
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
}

fn tool(name: &str, package: &str) -> Command {
    let found = Command::new(name)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success() || !o.stdout.is_empty());
    assert!(found, "`{name}` is needed: apt-get install {package}");
    Command::new(name)
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\n{text}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    text
}

/// `sgdisk -v`: both headers, both arrays, CRCs, the protective MBR.
fn sgdisk_verifies(image: &Path) {
    let out = run(tool("sgdisk", "gdisk").arg("-v").arg(image));
    assert!(
        out.contains("No problems found"),
        "sgdisk -v {}:\n{out}",
        image.display()
    );
}

fn allocated(path: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).unwrap().blocks() * 512
}

/// QEMU arguments attaching `image` on `disk` (as tests/matrix.rs does).
fn attach(disk: &str, machine: &str, image: &Path) -> Vec<String> {
    let drive = format!("file={},format=raw,if=none,id=d0", image.display());
    let devices: &[&str] = match (disk, machine) {
        ("ide", "pc") | ("ahci", "q35") => &["ide-hd,drive=d0,bus=ide.0"],
        ("ide", _) => &["piix3-ide,id=pide", "ide-hd,drive=d0,bus=pide.0"],
        ("ahci", _) => &["ahci,id=ahci0", "ide-hd,drive=d0,bus=ahci0.0"],
        ("virtio-blk", _) => &["virtio-blk-pci,drive=d0"],
        ("virtio-scsi", _) => &["virtio-scsi-pci,id=scsi0", "scsi-hd,drive=d0,bus=scsi0.0"],
        ("nvme", _) => &["nvme,serial=bootpack,drive=d0"],
        _ => panic!("unknown disk {disk}"),
    };
    let mut args = vec!["-drive".to_string(), drive];
    for d in devices {
        args.extend(["-device".to_string(), d.to_string()]);
    }
    args
}

/// Boots and checks the command line and the payload.
fn boots(args: &[String], machine: &'static str, payload: &Payload, what: &str) {
    let run = qemu::boot_with_disk(args, &Machine::new(machine, "128M"), None, BOOT_TIMEOUT);
    assert_eq!(
        run.exit,
        Some(KERNEL_EXIT),
        "{what}: the kernel must run and exit:\n{}",
        run.serial_text()
    );
    let r = Report::parse(&run.serial);
    assert_eq!(r.cmdline(), b"kernel gpt", "{what}");
    assert_eq!(
        r.get("payload"),
        format!("{:#010x} {} ok", payload.addr, payload.data.len()),
        "{what}"
    );
}

#[test]
fn sgdisk_finds_no_problem_and_inspect_reads_it() {
    let dir = scratch("gpt-sgdisk");
    let (k, _) = kernel(&dir);
    let image = dir.join("disk.img");
    build(&k, &image, &[]);
    sgdisk_verifies(&image);
    let print = run(tool("sgdisk", "gdisk").arg("-p").arg(&image));
    assert!(
        print.contains("First usable sector is 2048")
            && print.contains("Partition table holds up to 128 entries"),
        "{print}"
    );
    let partition = run(tool("sgdisk", "gdisk").args(["-i", "1"]).arg(&image));
    assert!(
        partition.contains("Partition GUID code: 9C10AB89-B1B8-4942-9D1F-A97FC58B4B20")
            && partition.contains("First sector: 2048")
            && partition.contains("Partition name: 'bootpack'"),
        "{partition}"
    );

    // inspect: the same GUIDs sgdisk reads, in text and JSON.
    let disk_guid = print
        .lines()
        .find_map(|l| l.strip_prefix("Disk identifier (GUID): "))
        .unwrap()
        .trim()
        .to_string();
    let unique = partition
        .lines()
        .find_map(|l| l.strip_prefix("Partition unique GUID: "))
        .unwrap()
        .trim()
        .to_string();
    let out = bootpack(["inspect", image.to_str().unwrap()]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    for part in [
        format!("partitions:  GPT, disk GUID {disk_guid} (protective MBR)"),
        format!(
            "1: \"bootpack\", type 9C10AB89-B1B8-4942-9D1F-A97FC58B4B20, GUID {unique}, LBA 2048.."
        ),
        "cmdline:     \"kernel gpt\"".to_string(),
    ] {
        assert!(text.contains(&part), "{part:?} in\n{text}");
    }
    let out = bootpack(["inspect", "--json", image.to_str().unwrap()]);
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["table"], "gpt");
    assert_eq!(v["gpt"]["disk_guid"], disk_guid.as_str());
    assert_eq!(v["gpt"]["partition_guid"], unique.as_str());
    assert_eq!(v["gpt"]["name"], "bootpack");
    assert_eq!(v["gpt"]["start_lba"], 2048);
    assert_eq!(v["partitions"][0]["kind"], 0xEE);
    assert_eq!(v["partitions"][0]["active"], false);
    assert_eq!(v["kernel"]["checksum_ok"], true);
    assert_eq!(v["problems"].as_array().unwrap().len(), 0);
}

#[test]
fn inspect_checks_what_the_loader_checks() {
    let dir = scratch("gpt-inspect-bad");
    let (k, _) = kernel(&dir);
    let image = dir.join("disk.img");
    build(&k, &image, &[]);
    let disk = std::fs::read(&image).unwrap();
    let inspect = |name: &str, d: &[u8]| {
        let p = dir.join(name);
        std::fs::write(&p, d).unwrap();
        let out = bootpack(["inspect", "--json", p.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(1), "{name}");
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        v["problems"][0].as_str().unwrap().to_string()
    };
    // The header's CRC, as stage 2 words it.
    let mut d = disk.clone();
    d[512 + 60] ^= 1;
    let p = inspect("header.img", &d);
    assert!(
        p.starts_with("the GPT header (LBA 1) checksum mismatch (stored 0x"),
        "{p}"
    );
    // The entries' CRC.
    let mut d = disk.clone();
    d[1024 + 300] ^= 1;
    let p = inspect("entries.img", &d);
    assert!(
        p.starts_with("the GPT partition entries checksum mismatch"),
        "{p}"
    );
    // The backup, which only inspect reads: its header, then its entries.
    let end = disk.len();
    let mut d = disk.clone();
    d[end - 512 + 60] ^= 1;
    let p = inspect("backup-header.img", &d);
    assert_eq!(
        p,
        format!(
            "the backup GPT (header at LBA {:#x}) is not a sound GPT header: the image is \
             damaged (the boot reads only the primary GPT)",
            end / 512 - 1
        )
    );
    let mut d = disk.clone();
    d[end - 33 * 512 + 200] ^= 1;
    let p = inspect("backup-entries.img", &d);
    assert!(
        p.ends_with("has entries that do not match their checksum: the image is damaged (the boot reads only the primary GPT)"),
        "{p}"
    );
    // A partition shrunk (CRCs made right) to less than the record and
    // data need: the loader's check, now inspect's too.
    let mut d = disk.clone();
    d[1024 + 40..1024 + 48].copy_from_slice(&2050u64.to_le_bytes());
    let c = crc32(&d[1024..1024 + 128 * 128]);
    d[512 + 88..512 + 92].copy_from_slice(&c.to_le_bytes());
    d[512 + 16..512 + 20].fill(0);
    let c = crc32(&d[512..512 + 92]);
    d[512 + 16..512 + 20].copy_from_slice(&c.to_le_bytes());
    let p = inspect("shrunk.img", &d);
    assert!(
        p.starts_with("partition 1 has 0x3 sectors but its record and kernel need 0x")
            && p.ends_with(": the disk image is truncated or damaged, rebuild it"),
        "{p}"
    );
}

#[test]
fn gpt_images_boot_on_every_controller() {
    let dir = scratch("gpt-controllers");
    let (k, payload) = kernel(&dir);
    let image = dir.join("disk.img");
    build(&k, &image, &[]);
    for (machine, disk) in [
        ("pc", "ide"),
        ("pc", "virtio-scsi"),
        ("pc", "nvme"),
        ("q35", "ahci"),
        ("q35", "virtio-blk"),
        ("q35", "ide"),
    ] {
        boots(
            &attach(disk, machine, &image),
            machine,
            &payload,
            &format!("{machine} {disk}"),
        );
    }
}

#[test]
fn a_3_tib_gpt_image_is_sparse_and_boots() {
    let dir = scratch("gpt-3t");
    let (k, payload) = kernel(&dir);
    let (small, big) = (dir.join("1g.img"), dir.join("3t.img"));
    build(&k, &small, &["--size", "1G"]);
    build(&k, &big, &["--size", "3T"]);
    assert_eq!(std::fs::metadata(&big).unwrap().len(), 3 << 40);
    // The backup GPT at the end is the only extra: 33 sectors (a block or
    // two of the file system's).
    assert!(
        allocated(&big) <= allocated(&small) + 64 * 1024,
        "1 GiB allocates {} bytes, 3 TiB {}",
        allocated(&small),
        allocated(&big)
    );
    sgdisk_verifies(&big);
    boots(
        &attach("ahci", "q35", &big),
        "q35",
        &payload,
        "3 TiB q35 AHCI",
    );
    boots(&attach("ide", "pc", &big), "pc", &payload, "3 TiB pc IDE");
    // qcow2 and VMDK carry it (checked clean; VMDK is compared at 1 GiB
    // below, a 3 TiB compare reads every grain table for minutes).
    let qcow2 = dir.join("3t.qcow2");
    build(&k, &qcow2, &["--size", "3T"]);
    let check = run(tool("qemu-img", "qemu-utils")
        .args(["check", "-f", "qcow2"])
        .arg(&qcow2));
    assert!(check.contains("No errors were found"), "{check}");
    let cmp = run(tool("qemu-img", "qemu-utils")
        .args(["compare", "-f", "raw", "-F", "qcow2"])
        .arg(&big)
        .arg(&qcow2));
    assert!(cmp.contains("Images are identical"), "{cmp}");
    let vmdk = dir.join("3t.vmdk");
    build(&k, &vmdk, &["--size", "3T"]);
    let check = run(tool("qemu-img", "qemu-utils")
        .args(["check", "-f", "vmdk"])
        .arg(&vmdk));
    assert!(check.contains("No errors were found"), "{check}");
    // An MBR cannot describe it, and says what to use instead.
    let r = bootpack([
        "build",
        k.to_str().unwrap(),
        "-o",
        dir.join("mbr.img").to_str().unwrap(),
        "--size",
        "3T",
    ]);
    // A bad value for --size: exit 2, as for every bad option value.
    assert_eq!(r.status.code(), Some(2));
    let err = String::from_utf8_lossy(&r.stderr);
    assert!(
        err.contains("MBR partitions end at 2 TiB, a GPT has no such limit"),
        "{err}"
    );
    assert!(!dir.join("mbr.img").exists());
    // A VHD cannot hold it either (2040 GiB at most).
    let r = bootpack([
        "build",
        k.to_str().unwrap(),
        "-o",
        dir.join("big.vhd").to_str().unwrap(),
        "--size",
        "3T",
        "--table",
        "gpt",
    ]);
    assert_eq!(r.status.code(), Some(2));
    let err = String::from_utf8_lossy(&r.stderr);
    assert!(err.contains("a vhd image can hold at most"), "{err}");
}

#[test]
fn every_format_carries_gpt_images() {
    let dir = scratch("gpt-formats");
    let (k, payload) = kernel(&dir);
    let raw = dir.join("disk.img");
    build(&k, &raw, &["--size", "1G"]);
    let qemu_img = || tool("qemu-img", "qemu-utils");
    for (ext, fmt) in [("vhd", "vpc"), ("vmdk", "vmdk"), ("qcow2", "qcow2")] {
        let out = dir.join(format!("disk.{ext}"));
        build(&k, &out, &["--size", "1G"]);
        if fmt != "vpc" {
            let check = run(qemu_img().args(["check", "-f", fmt]).arg(&out));
            assert!(check.contains("No errors were found"), "{ext}: {check}");
        }
        let cmp = run(qemu_img()
            .args(["compare", "-f", "raw", "-F", fmt])
            .arg(&raw)
            .arg(&out));
        assert!(cmp.contains("Images are identical"), "{ext}: {cmp}");
        let r = bootpack(["inspect", out.to_str().unwrap()]);
        assert!(
            r.status.success(),
            "{ext}: {}",
            String::from_utf8_lossy(&r.stdout)
        );
    }
    // One format boots from its own container (the others are the same
    // bytes, compared above).
    let run_q = qemu::boot_image_as(
        &dir.join("disk.qcow2"),
        "qcow2",
        &Machine::new("q35", "128M"),
        BOOT_TIMEOUT,
    );
    assert_eq!(run_q.exit, Some(KERNEL_EXIT), "{}", run_q.serial_text());
    assert_eq!(
        Report::parse(&run_q.serial).get("payload"),
        format!("{:#010x} {} ok", payload.addr, payload.data.len())
    );
    // gce: whole GiB (2 here), and the disk.raw inside is the raw image of
    // that size with a sound GPT.
    let gz = dir.join("disk.tar.gz");
    build(&k, &gz, &["--size", "2G"]);
    let r = bootpack([
        "build",
        k.to_str().unwrap(),
        "-o",
        dir.join("odd.tar.gz").to_str().unwrap(),
        "--table",
        "gpt",
        "--size",
        "1536M",
    ]);
    assert_eq!(r.status.code(), Some(2), "gce needs whole GiB");
    let out = dir.join("x");
    std::fs::create_dir_all(&out).unwrap();
    run(tool("tar", "tar").arg("-xzf").arg(&gz).arg("-C").arg(&out));
    let extracted = out.join("disk.raw");
    assert_eq!(std::fs::metadata(&extracted).unwrap().len(), 2 * GIB);
    sgdisk_verifies(&extracted);
    let raw2 = dir.join("disk2.img");
    build(&k, &raw2, &["--size", "2G"]);
    let cmp = run(qemu_img()
        .args(["compare", "-f", "raw", "-F", "raw"])
        .arg(&raw2)
        .arg(&extracted));
    assert!(cmp.contains("Images are identical"), "gce: {cmp}");
    let r = bootpack(["inspect", gz.to_str().unwrap()]);
    assert!(
        r.status.success(),
        "gce: {}",
        String::from_utf8_lossy(&r.stdout)
    );
}

#[test]
fn gpt_images_are_reproducible() {
    let dir = scratch("gpt-repro");
    let (k, _) = kernel(&dir);
    let (a, b) = (dir.join("a.img"), dir.join("b.img"));
    build(&k, &a, &[]);
    build(&k, &b, &[]);
    assert!(std::fs::read(&a).unwrap() == std::fs::read(&b).unwrap());
    // Other content, other GUIDs.
    let c = dir.join("c.img");
    let r = bootpack([
        "build",
        k.to_str().unwrap(),
        "-o",
        c.to_str().unwrap(),
        "--table",
        "gpt",
        "--",
        "other",
    ]);
    assert!(r.status.success());
    let (a, c) = (std::fs::read(&a).unwrap(), std::fs::read(&c).unwrap());
    assert_ne!(a[512 + 56..512 + 72], c[512 + 56..512 + 72], "disk GUIDs");
    assert_ne!(
        a[1024 + 16..1024 + 32],
        c[1024 + 16..1024 + 32],
        "partition GUIDs"
    );
}
