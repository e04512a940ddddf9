//! Fault injection at boot: each test breaks a sound image the way a disk,
//! a copy or a hand edit can (or makes the BIOS fail reads, through QEMU's
//! blkdebug driver, or a CPU without long mode), boots it in QEMU (TCG, `-no-reboot`) and asserts
//! bootpack's exact message on COM1 and on the VGA screen, that it halted
//! (QEMU still running a second later: no reboot, no hang before a
//! message) and that the kernel never ran (no "BPTK" line).
//!
//! A damaged payload is tested in tests/boot.rs
//! (`damaged_payload_is_reported_not_entered`); a BIOS without INT 13h
//! extensions (CHS reads) in tests/chs.rs; failing fast reads on every
//! controller in tests/fastpath.rs.

mod support;

use std::path::{Path, PathBuf};
use std::time::Duration;

use bootpack::proto::crc32::crc32;
use bootpack::proto::layout::{PARTITION_START_LBA, SECTOR, STAGE2_LBA};
use bootpack::proto::record::{self, Record, RecordError};
use bootpack::proto::stage1;
use support::kernels::{self, Shape};
use support::qemu::{self, Machine};
use support::report::Report;
use support::{blkdebug, bootpack, scratch, Scratch};

const BOOT_TIMEOUT: Duration = Duration::from_secs(60);
/// How long to watch after the message: long enough to see a reboot (the
/// BIOS banner again, or QEMU exiting under -no-reboot) or a late jump
/// into the kernel.
const SETTLE: Duration = Duration::from_secs(1);
const KERNEL_EXIT: i32 = 0x21;
const RECORD_AT: usize = PARTITION_START_LBA as usize * SECTOR as usize;

/// A sound image of the Solo5-shaped test kernel and its bytes.
struct Image {
    dir: Scratch,
    disk: Vec<u8>,
}

impl Image {
    fn new(test: &str) -> Image {
        Image::with(test, &[])
    }

    /// With extra `bootpack build` options (e.g. --no-fast-read).
    fn with(test: &str, options: &[&str]) -> Image {
        let dir = scratch(test);
        let kernel = dir.join("kernel");
        std::fs::write(&kernel, kernels::build(Shape::Solo5Elf64, None)).unwrap();
        let image = dir.join("sound.img");
        let r = bootpack(
            [
                "build".as_ref(),
                kernel.as_os_str(),
                "-o".as_ref(),
                image.as_os_str(),
            ]
            .into_iter()
            .chain(options.iter().map(|o| o.as_ref()))
            .chain(["--".as_ref(), "fault".as_ref()]),
        );
        assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
        let disk = std::fs::read(&image).unwrap();
        Image { dir, disk }
    }

    fn record(&self) -> Record<'_> {
        Record::parse(&self.disk[RECORD_AT..]).expect("a sound record")
    }

    /// Sectors the record occupies.
    fn record_sectors(&self) -> u64 {
        (self.record().len() as u64).div_ceil(SECTOR)
    }

    /// Absolute LBA of the first sector of kernel data.
    fn first_data_lba(&self) -> u64 {
        let s = self.record().segments().find(|s| s.file_size > 0).unwrap();
        PARTITION_START_LBA as u64 + s.data_sector
    }

    fn stage2_sectors(&self) -> usize {
        u16::from_le_bytes(
            self.disk[stage1::STAGE2_SECTORS_OFFSET..][..2]
                .try_into()
                .unwrap(),
        ) as usize
    }

    /// Writes `disk` as NAME.img beside the sound image.
    fn write(&self, name: &str, disk: &[u8]) -> PathBuf {
        let p = self.dir.join(format!("{name}.img"));
        std::fs::write(&p, disk).unwrap();
        p
    }
}

fn drive(image: &Path) -> Vec<String> {
    vec![
        "-drive".into(),
        format!("file={},format=raw,if=ide", image.display()),
    ]
}

/// Boots with `disk` until `marker` and checks that `line` was printed on
/// COM1 (as a whole line) and on the screen, then nothing: a halt.
fn expect_halt(disk: &[String], line: &str, marker: &str) {
    expect_halt_on(&Machine::new("pc", "64M"), disk, line, marker)
}

fn expect_halt_on(m: &Machine, disk: &[String], line: &str, marker: &str) {
    let run = qemu::boot_with_disk(disk, m, Some((marker, SETTLE)), BOOT_TIMEOUT);
    let text = run.serial_text();
    // Stage 2 follows its error line with "bootpack: halted"; stage 1
    // (marker = its line) has no room for that.
    let expected = if marker == "bootpack: halted" {
        format!("{line}\r\nbootpack: halted\r\n")
    } else {
        format!("{line}\r\n")
    };
    assert!(
        text.contains(&expected),
        "COM1 must carry {expected:?}; it has:\n{text}"
    );
    assert!(!text.contains("BPTK"), "the kernel must not run:\n{text}");
    assert_eq!(
        run.exit, None,
        "QEMU must still be running {SETTLE:?} after the message: halted, not rebooting (-no-reboot \
         makes a reset exit QEMU); serial:\n{text}"
    );
    assert_eq!(
        text.matches(line).count(),
        1,
        "the message must appear once (a reboot loop repeats it):\n{text}"
    );
    // The screen is 80 columns: compare the part of the line that fits on
    // its first row.
    let vga = run.vga.unwrap_or_default();
    let head: String = line.chars().take(80).collect();
    assert!(
        vga.lines().any(|l| l.trim_end() == head.trim_end()),
        "the VGA screen must show {head:?} on a line of its own; it shows:\n{vga}"
    );
}

/// A stage 2 failure: the line, then "bootpack: halted".
fn expect_stage2_halt(image: &Path, message: &str) {
    let line = format!("bootpack: error: {message}");
    expect_halt(&drive(image), &line, "bootpack: halted");
}

/// A stage 1 failure: "bootpack: " and the reason, then a halt (stage 1 has
/// no room for more).
fn expect_stage1_halt(image: &Path, reason: &str) {
    let line = format!("bootpack: {reason}");
    expect_halt(&drive(image), &line, &line);
}

fn hex(v: u64) -> String {
    format!("0x{v:X}")
}

#[test]
fn the_sound_image_boots() {
    // The baseline every fault below departs from.
    let img = Image::new("sound");
    let p = img.write("copy", &img.disk);
    let run = qemu::boot_with_disk(&drive(&p), &Machine::new("pc", "64M"), None, BOOT_TIMEOUT);
    assert_eq!(run.exit, Some(KERNEL_EXIT), "{}", run.serial_text());
    assert_eq!(Report::parse(&run.serial).cmdline(), b"kernel fault");
}

#[test]
fn a_cpu_without_long_mode_is_reported() {
    // Stage 2 runs in long mode: a 32-bit-only CPU (QEMU's qemu32 model)
    // must get a message, not a triple fault and a reboot loop.
    let img = Image::new("no-long-mode");
    let p = img.write("disk", &img.disk);
    let mut m = Machine::new("pc", "64M");
    m.extra = vec!["-cpu".into(), "qemu32".into()];
    expect_halt_on(
        &m,
        &drive(&p),
        "bootpack: error: this CPU has no 64-bit long mode",
        "bootpack: halted",
    );
}

// ---- the configuration record ----

#[test]
fn record_with_bad_magic() {
    let img = Image::new("rec-magic");
    let mut d = img.disk.clone();
    d[RECORD_AT] ^= 0x20; // "bootpack" instead of "BOOTPACK"
    expect_stage2_halt(
        &img.write("bad", &d),
        "configuration record: no bootpack configuration record (bad magic)",
    );
}

#[test]
fn record_with_unknown_version() {
    let img = Image::new("rec-version");
    // Before the first version this loader reads, and after the newest.
    for version in [1u16, record::VERSION + 1, 0xFFFF] {
        let mut d = img.disk.clone();
        d[RECORD_AT + 8..RECORD_AT + 10].copy_from_slice(&version.to_le_bytes());
        expect_stage2_halt(
            &img.write(&format!("v{version}"), &d),
            &format!(
                "configuration record: configuration record version not supported (version {version})"
            ),
        );
    }
}

#[test]
fn record_with_bad_checksum() {
    let img = Image::new("rec-sum");
    let mut d = img.disk.clone();
    // A bit of the command line ("kernel fault" -> "kernel faulu").
    let at = RECORD_AT + img.record().len() - 2;
    assert_eq!(d[at], b't');
    d[at] ^= 0x01;
    let Err(RecordError::BadChecksum { stored, computed }) = Record::parse(&d[RECORD_AT..]) else {
        panic!("the edit must break the record's checksum");
    };
    expect_stage2_halt(
        &img.write("bad", &d),
        &format!(
            "configuration record: configuration record checksum mismatch (stored {}, computed {}): \
             the disk image is damaged, rebuild it",
            hex(stored),
            hex(computed)
        ),
    );
}

#[test]
fn record_with_inconsistent_length() {
    let img = Image::new("rec-len");
    let mut d = img.disk.clone();
    d[RECORD_AT + 12..RECORD_AT + 16].copy_from_slice(&0u32.to_le_bytes());
    assert_eq!(
        record::peek_len(&d[RECORD_AT..]),
        Err(RecordError::BadLength)
    );
    expect_stage2_halt(
        &img.write("bad", &d),
        "configuration record: configuration record lengths are inconsistent",
    );
}

#[test]
fn record_zeroed() {
    // What a partition wiped (or never written) looks like.
    let img = Image::new("rec-zero");
    let mut d = img.disk.clone();
    d[RECORD_AT..RECORD_AT + 512].fill(0);
    expect_stage2_halt(
        &img.write("bad", &d),
        "configuration record: no bootpack configuration record (bad magic)",
    );
}

// ---- stage 2, as stage 1 sees it ----

#[test]
fn stage2_damaged() {
    let img = Image::new("s2-damaged");
    let mut d = img.disk.clone();
    d[STAGE2_LBA as usize * SECTOR as usize + 100] ^= 0x40;
    expect_stage1_halt(&img.write("bad", &d), "stage 2 damaged");
}

#[test]
fn stage2_truncated_by_a_partial_write() {
    // The last sectors of stage 2 never written (zeros), the rest intact.
    let img = Image::new("s2-zeroed");
    let mut d = img.disk.clone();
    let n = img.stage2_sectors();
    let s2 = STAGE2_LBA as usize;
    let tail = (s2 + n - 5) * SECTOR as usize..(s2 + n) * SECTOR as usize;
    assert!(d[tail.clone()].iter().any(|&b| b != 0));
    d[tail].fill(0);
    expect_stage1_halt(&img.write("bad", &d), "stage 2 damaged");
}

#[test]
fn stage2_length_field_out_of_range() {
    // 0 or more than 127 sectors in stage 1's patched field: stage 1 must
    // not read garbage over memory.
    let img = Image::new("s2-len");
    for sectors in [0u16, 128, 0xFFFF] {
        let mut d = img.disk.clone();
        d[stage1::STAGE2_SECTORS_OFFSET..][..2].copy_from_slice(&sectors.to_le_bytes());
        expect_stage1_halt(&img.write(&format!("n{sectors}"), &d), "stage 2 damaged");
    }
}

#[test]
fn stage2_cut_off_by_a_truncated_image() {
    // The image file ends inside stage 2: the BIOS fails the read.
    let img = Image::new("s2-cut");
    let cut = (STAGE2_LBA as usize + img.stage2_sectors() / 2) * SECTOR as usize;
    expect_stage1_halt(&img.write("bad", &img.disk[..cut]), "stage 2 read failed");
}

// ---- the partition table ----

const ENTRY: usize = 0x1BE;

#[test]
fn kernel_partition_removed() {
    let img = Image::new("part-gone");
    let mut d = img.disk.clone();
    d[ENTRY..ENTRY + 16].fill(0);
    expect_stage2_halt(
        &img.write("bad", &d),
        "no bootpack partition (type 0x7F) in the MBR",
    );
}

#[test]
fn kernel_partition_type_changed() {
    let img = Image::new("part-type");
    let mut d = img.disk.clone();
    assert_eq!(d[ENTRY + 4], 0x7F);
    d[ENTRY + 4] = 0x83; // what a "fix" with fdisk may leave
    expect_stage2_halt(
        &img.write("bad", &d),
        "no bootpack partition (type 0x7F) in the MBR",
    );
}

#[test]
fn kernel_partition_too_small() {
    let img = Image::new("part-small");
    let needed = img.record_sectors() + img.record().data_sectors() as u64;
    for sectors in [1, needed - 1] {
        let mut d = img.disk.clone();
        d[ENTRY + 12..ENTRY + 16].copy_from_slice(&(sectors as u32).to_le_bytes());
        expect_stage2_halt(
            &img.write(&format!("s{sectors}"), &d),
            &format!(
                "partition 1 has {} sectors but its record and kernel need {}: the disk image is \
                 truncated or damaged, rebuild it",
                hex(sectors),
                hex(needed)
            ),
        );
    }
}

// ---- BIOS disk reads that fail (QEMU blkdebug) ----

/// SeaBIOS does not retry a failed ATA read itself (traced with QEMU's
/// `ide_sector_read`: an always-failing sector is read exactly 4 times, the
/// loader's tries), so a boot that survives a once-failing read proves the
/// loader's retry. The record and the first kernel sectors are always
/// read through INT 13h (the IDE DMA path on `pc` is checked against them
/// first), with --no-fast-read all the rest too; both builds are booted.
/// The fast paths' own fallback is tested in tests/fastpath.rs.
#[test]
fn a_kernel_read_that_fails_once_is_retried() {
    for options in [&[][..], &["--no-fast-read"][..]] {
        kernel_read_fails_once(options);
    }
}

fn kernel_read_fails_once(options: &[&str]) {
    let img = Image::with(&format!("read-once{}", options.len()), options);
    let image = img.write("disk", &img.disk);
    for lba in [PARTITION_START_LBA as u64, img.first_data_lba()] {
        let run = qemu::boot_with_disk(
            &blkdebug::ide_drive(&img.dir, &image, lba, true),
            &Machine::new("pc", "64M"),
            None,
            BOOT_TIMEOUT,
        );
        assert_eq!(
            run.exit,
            Some(KERNEL_EXIT),
            "{options:?}: a read of LBA {lba} failing once must be retried and the kernel run:\n{}",
            run.serial_text()
        );
        assert_eq!(Report::parse(&run.serial).cmdline(), b"kernel fault");
    }
}

#[test]
fn a_kernel_read_that_always_fails_is_reported() {
    for options in [&[][..], &["--no-fast-read"][..]] {
        kernel_read_always_fails(options);
    }
}

fn kernel_read_always_fails(options: &[&str]) {
    let img = Image::with(&format!("read-always{}", options.len()), options);
    let image = img.write("disk", &img.disk);
    // SeaBIOS's ATA driver answers a failed read with status 0x0C
    // (DISK_RET_EBADTRACK).
    for lba in [PARTITION_START_LBA as u64, img.first_data_lba()] {
        expect_halt(
            &blkdebug::ide_drive(&img.dir, &image, lba, false),
            &format!(
                "bootpack: error: BIOS disk read failed (drive 0x80, LBA {}, status 0x0C)",
                hex(lba)
            ),
            "bootpack: halted",
        );
    }
}

#[test]
fn a_stage2_read_that_fails_once_is_retried() {
    let img = Image::new("s2-read-once");
    let image = img.write("disk", &img.disk);
    let run = qemu::boot_with_disk(
        &blkdebug::ide_drive(&img.dir, &image, STAGE2_LBA as u64 + 1, true),
        &Machine::new("pc", "64M"),
        None,
        BOOT_TIMEOUT,
    );
    assert_eq!(run.exit, Some(KERNEL_EXIT), "{}", run.serial_text());
}

#[test]
fn a_stage2_read_that_always_fails_is_reported() {
    let img = Image::new("s2-read-always");
    let image = img.write("disk", &img.disk);
    let line = "bootpack: stage 2 read failed";
    expect_halt(
        &blkdebug::ide_drive(&img.dir, &image, STAGE2_LBA as u64 + 1, false),
        line,
        line,
    );
}

// ---- a GPT (bootpack build --table gpt) ----

/// Recomputes the primary GPT header's CRC32 after an edit of `disk`.
fn reseal_gpt_header(d: &mut [u8]) {
    let h = &mut d[512..1024];
    h[16..20].fill(0);
    let crc = crc32(&h[..92]);
    h[16..20].copy_from_slice(&crc.to_le_bytes());
}

fn stored_u32(d: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(d[at..at + 4].try_into().unwrap())
}

#[test]
fn gpt_image_boots() {
    let img = Image::with("gpt-sound", &["--table", "gpt"]);
    assert_eq!(&img.disk[512..520], b"EFI PART");
    let run = qemu::boot_image(
        &img.write("disk", &img.disk),
        &Machine::new("pc", "64M"),
        BOOT_TIMEOUT,
    );
    assert_eq!(run.exit, Some(KERNEL_EXIT), "{}", run.serial_text());
    assert_eq!(Report::parse(&run.serial).cmdline(), b"kernel fault");
}

#[test]
fn gpt_header_damaged() {
    // A flipped bit in the disk GUID: the header's CRC32 no longer matches.
    let img = Image::with("gpt-header", &["--table", "gpt"]);
    let mut d = img.disk.clone();
    d[512 + 60] ^= 0x01;
    let stored = stored_u32(&d, 512 + 16);
    let mut h = d[512..512 + 92].to_vec();
    h[16..20].fill(0);
    expect_stage2_halt(
        &img.write("bad", &d),
        &format!(
            "the GPT header (LBA 1) checksum mismatch (stored {}, computed {}): the disk image is \
             damaged, rebuild it",
            hex(stored as u64),
            hex(crc32(&h) as u64)
        ),
    );
    // Wiped (a tool that "cleans" GPT signatures): no signature.
    let mut d = img.disk.clone();
    d[512..520].fill(0);
    expect_stage2_halt(
        &img.write("wiped", &d),
        "the GPT header (LBA 1) lacks its \"EFI PART\" signature: the disk image is damaged, \
         rebuild it",
    );
}

#[test]
fn gpt_entries_damaged() {
    // A byte of an unused entry (the fifth): the entries' CRC32 catches it.
    let img = Image::with("gpt-entries", &["--table", "gpt"]);
    let mut d = img.disk.clone();
    d[1024 + 4 * 128 + 3] = 0x55;
    let stored = stored_u32(&d, 512 + 88);
    expect_stage2_halt(
        &img.write("bad", &d),
        &format!(
            "the GPT partition entries checksum mismatch (stored {}, computed {}): the disk image \
             is damaged, rebuild it",
            hex(stored as u64),
            hex(crc32(&d[1024..1024 + 128 * 128]) as u64)
        ),
    );
}

#[test]
fn gpt_partition_retyped_or_shrunk() {
    let img = Image::with("gpt-part", &["--table", "gpt"]);
    // Retyped (say to Linux filesystem data), with both CRCs made right.
    let mut d = img.disk.clone();
    d[1024..1040].copy_from_slice(&[
        0xAF, 0x3D, 0xC6, 0x0F, 0x83, 0x84, 0x72, 0x47, 0x8E, 0x79, 0x3D, 0x69, 0xD8, 0x47, 0x7D,
        0xE4,
    ]);
    let crc = crc32(&d[1024..1024 + 128 * 128]);
    d[512 + 88..512 + 92].copy_from_slice(&crc.to_le_bytes());
    reseal_gpt_header(&mut d);
    expect_stage2_halt(
        &img.write("retyped", &d),
        "no bootpack partition (type 9C10AB89-B1B8-4942-9D1F-A97FC58B4B20) in the GPT",
    );
    // Shrunk below what the record and kernel need, CRCs right.
    let needed = img.record_sectors() + img.record().data_sectors() as u64;
    let mut d = img.disk.clone();
    let last = PARTITION_START_LBA as u64 + needed - 2;
    d[1024 + 40..1024 + 48].copy_from_slice(&last.to_le_bytes());
    let crc = crc32(&d[1024..1024 + 128 * 128]);
    d[512 + 88..512 + 92].copy_from_slice(&crc.to_le_bytes());
    reseal_gpt_header(&mut d);
    expect_stage2_halt(
        &img.write("shrunk", &d),
        &format!(
            "partition 1 has {} sectors but its record and kernel need {}: the disk image is \
             truncated or damaged, rebuild it",
            hex(needed - 1),
            hex(needed)
        ),
    );
}
