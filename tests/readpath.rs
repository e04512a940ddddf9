//! Every read path writes exactly each segment's bytes to exactly its
//! addresses, whatever their alignment and size: stage 2's own DMA paths on
//! PIIX IDE (`pc`), AHCI (`q35`), virtio-blk and virtio-scsi, the BIOS's
//! INT 13h extended reads (`--no-fast-read`) and its CHS reads (a BIOS
//! without the extensions, tests/support/no_edd_rom.rs).
//!
//! The kernel has the shapes real kernels have (a verified microkernel's
//! ELF32 image loads at p_paddr 0x1083af and 0x8007bc): segments at odd
//! addresses with odd sizes, two segments inside one 512-byte block of
//! memory, a segment ending one byte before the next begins, segments
//! straddling 64 KiB boundaries, more data than two BIOS reads so the fast
//! path is used. Together they tile one payload region that the test
//! kernel hashes itself, followed by bytes nothing loads (which must stay
//! zero); the 4 KiB before the region must stay zero too. On the fast
//! paths QEMU's block trace shows how each segment was read: straight to
//! its destination where the controller's DMA can reach it (IDE and AHCI
//! need even addresses, virtio none), else staged 16 KiB at a time; never
//! handed to the BIOS.
//!
//! And a fast read that never completes (a QEMU blkdebug breakpoint) is
//! given up at the fast path's deadline on every controller; what follows
//! is asserted as it is under QEMU: on virtio the BIOS reads the rest and
//! the kernel boots intact, on AHCI the BIOS cannot either and stage 2
//! halts with its read message, on IDE QEMU stands still in its own cancel
//! of the hung request (docs/reliability.md).

// Only the ROM itself is used here, not chs.rs's probe sector.
#[allow(dead_code)]
#[path = "support/no_edd_rom.rs"]
mod no_edd_rom;
mod support;

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use bootpack::proto::layout::{PARTITION_START_LBA, SECTOR};
use bootpack::proto::record::Record;
use support::kernels::{self, Payload};
use support::memplan::SECTORS_PER_READ;
use support::qemu::{self, Machine, Run};
use support::report::Report;
use support::{scratch, Scratch};

const BOOT_TIMEOUT: Duration = Duration::from_secs(120);
const KERNEL_EXIT: i32 = 0x21;
/// The largest read INT 13h makes (127 sectors per call).
const BIOS_READ_MAX: u64 = SECTORS_PER_READ as u64 * SECTOR;
/// The fast path's staged reads (boot/bios fastdisk::STAGE_LEN / 2) and
/// its largest straight read (load.rs FAST_CHUNK_SECTORS).
const STAGED: u64 = 16 << 10;
const STRAIGHT_MAX: u64 = 1 << 20;
/// The fast path's deadline (fastdisk::TIMEOUT_MS).
const DEADLINE: Duration = Duration::from_millis(5000);

/// Where the payload region starts: odd, 0x1af into its 512-byte block and
/// 0x83af into its 64 KiB block, like the microkernel's 0x1083af (which
/// lies inside the test kernel's own image).
const REGION: u64 = 0x20_83af;
/// Where the last segment starts: 4-aligned, 0x1bc into its 512-byte
/// block, like the microkernel's 0x8007bc.
const LAST: u64 = 0x30_07bc;
/// The last segment's length: odd, across the 64 KiB boundaries at
/// 0x310000 and 0x320000.
const LAST_LEN: u64 = 0x2_3457;
/// Bytes after the last segment that nothing loads, inside the hashed
/// region: a read that writes past a segment's end changes them.
const TAIL_ZEROS: usize = 61;

/// The segments, as (address, length), in memory order: two inside the
/// 512-byte block 0x208200-0x2083ff (odd address, odd sizes), then one from
/// an odd address over 15 64 KiB boundaries ending one byte before the
/// last begins, then the last.
fn segments() -> Vec<(u64, u64)> {
    let a = (REGION, 29);
    let b = (a.0 + a.1, 19);
    let c = (b.0 + b.1, LAST - (b.0 + b.1));
    let d = (LAST, LAST_LEN);
    assert_eq!(a.0 >> 9, (b.0 + b.1 - 1) >> 9, "a and b share a block");
    assert_eq!(c.0 + c.1, d.0, "c ends one byte before d begins");
    vec![a, b, c, d]
}

/// The kernel: the payload region, the pieces loaded, the zero region.
struct OddKernel {
    file: Vec<u8>,
    payload: Payload,
    zero: (u64, u64),
}

fn odd_kernel() -> OddKernel {
    let segs = segments();
    let loaded = (LAST + LAST_LEN - REGION) as usize;
    let len = (loaded + TAIL_ZEROS).div_ceil(8) * 8;
    let mut data = kernels::random_bytes(loaded, 0x0dd_add);
    // No zero bytes at the ends of pieces, so a byte lost or shifted at a
    // boundary always shows.
    for x in data.iter_mut() {
        *x |= 1;
    }
    data.resize(len, 0);
    let payload = Payload { addr: REGION, data };
    let pieces: Vec<(usize, usize)> = segs
        .iter()
        .map(|&(at, n)| ((at - REGION) as usize, n as usize))
        .collect();
    let zero = (REGION - 4096, 4096);
    OddKernel {
        file: kernels::build_pieces(&payload, &pieces, Some(zero)),
        payload,
        zero,
    }
}

struct Packed {
    dir: Scratch,
    image: PathBuf,
    kernel: OddKernel,
}

/// The odd kernel packed with the command line "kernel odd"; 16 MiB of
/// disk so CHS reaches all of it (SeaBIOS withholds the last cylinder).
fn pack(test: &str, fast_read: bool) -> Packed {
    let dir = scratch(test);
    let kernel = odd_kernel();
    let path = dir.join("kernel");
    std::fs::write(&path, &kernel.file).unwrap();
    let image = dir.join("disk.img");
    bootpack::Build::new(&path)
        .name("kernel")
        .args(["odd"])
        .fast_read(fast_read)
        .size(16 << 20)
        .write(&image)
        .unwrap_or_else(|e| panic!("packing failed: {e}"));
    Packed { dir, image, kernel }
}

/// Each segment's data on the disk: (byte offset, length), in memory
/// order, and the record's data sector count.
fn disk_ranges(image: &Path) -> Vec<(u64, u64)> {
    let disk = std::fs::read(image).unwrap();
    let base = PARTITION_START_LBA as u64 * SECTOR;
    let rec = Record::parse(&disk[base as usize..]).expect("a sound record");
    assert!(
        rec.data_sectors() as u64 > 2 * SECTORS_PER_READ as u64,
        "big enough for the fast path"
    );
    let want = segments();
    let got: Vec<_> = rec
        .segments()
        .filter(|s| s.dest >= REGION)
        .map(|s| {
            (
                (s.dest, s.file_size),
                (base + s.data_sector * SECTOR, s.file_size),
            )
        })
        .collect();
    assert_eq!(
        got.iter().map(|g| g.0).collect::<Vec<_>>(),
        want,
        "the record has the segments as built"
    );
    got.into_iter().map(|g| g.1).collect()
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Disk {
    Ide,
    Ahci,
    VirtioBlk,
    VirtioScsi,
}

impl Disk {
    fn machine(self) -> &'static str {
        match self {
            Disk::Ide => "pc",
            _ => "q35",
        }
    }

    /// The alignment the controller's DMA needs (fastdisk::Fast::align).
    fn align(self) -> u64 {
        match self {
            Disk::Ide | Disk::Ahci => 2,
            Disk::VirtioBlk | Disk::VirtioScsi => 1,
        }
    }

    fn args(self, file: &str) -> Vec<String> {
        let drive = format!("file={file},format=raw,if=none,id=d0");
        let device: &[&str] = match self {
            Disk::Ide | Disk::Ahci => &["-device", "ide-hd,drive=d0,bus=ide.0"],
            Disk::VirtioBlk => &["-device", "virtio-blk-pci,drive=d0"],
            Disk::VirtioScsi => &[
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

/// Every read QEMU's block layer saw, in order: (byte offset, length).
fn reads(trace: &Path) -> Vec<(u64, u64)> {
    let log = std::fs::read_to_string(trace)
        .unwrap_or_else(|e| panic!("QEMU wrote no trace at {}: {e}", trace.display()));
    let field = |l: &str, name: &str| -> Option<u64> {
        let mut words = l.split_whitespace();
        words.find(|&w| w == name)?;
        words.next()?.parse().ok()
    };
    let r: Vec<_> = log
        .lines()
        .filter(|l| l.contains("blk_co_preadv"))
        .filter_map(|l| Some((field(l, "offset")?, field(l, "bytes")?)))
        .collect();
    assert!(!r.is_empty(), "no blk_co_preadv lines in the trace");
    r
}

/// Adds QEMU's read trace, written to `trace`.
fn traced(mut m: Machine, trace: &Path) -> Machine {
    m.extra.extend([
        "-trace".to_string(),
        "blk_co_preadv".to_string(),
        "-D".to_string(),
        trace.display().to_string(),
    ]);
    m
}

/// Checks that the kernel ran and found its payload, the bytes after it
/// and the 4 KiB before it as packed.
fn check_kernel(run: &Run, k: &OddKernel, what: &str) {
    assert_eq!(
        run.exit,
        Some(KERNEL_EXIT),
        "{what}: the kernel must run; serial:\n{}",
        run.serial_text()
    );
    let r = Report::parse(&run.serial);
    assert_eq!(r.cmdline(), b"kernel odd", "{what}");
    assert_eq!(
        r.get("payload"),
        format!("0x{REGION:08x} {} ok", k.payload.data.len()),
        "{what}: every segment's bytes at their addresses, nothing after the last"
    );
    assert_eq!(
        r.get("zero"),
        format!("0x{:08x} {} zero", k.zero.0, k.zero.1),
        "{what}: nothing written before the first segment"
    );
}

/// The reads a fast path makes for a segment at `dest` of `len` bytes
/// whose data starts at disk offset `at`: whole sectors straight to the
/// destination in reads of at most STRAIGHT_MAX when the controller can
/// reach it, the rest staged STAGED at a time.
fn fast_reads(dest: u64, at: u64, len: u64, align: u64) -> Vec<(u64, u64)> {
    let straight = if dest.is_multiple_of(align) {
        len / SECTOR * SECTOR
    } else {
        0
    };
    let mut r = Vec::new();
    let mut done = 0;
    while done < len {
        let n = if done < straight {
            (straight - done).min(STRAIGHT_MAX)
        } else {
            (len - done).min(STAGED)
        };
        r.push((at + done, n.div_ceil(SECTOR) * SECTOR));
        done += n;
    }
    r
}

/// The reads in `all` that touch `[at, at + len)`.
fn reads_of(all: &[(u64, u64)], at: u64, len: u64) -> Vec<(u64, u64)> {
    all.iter()
        .copied()
        .filter(|&(o, n)| o < at + len && at < o + n)
        .collect()
}

#[test]
fn odd_segments_arrive_intact_through_each_fast_path() {
    let p = pack("readpath-fast", true);
    let ranges = disk_ranges(&p.image);
    let file = p.image.display().to_string();
    for disk in [Disk::Ide, Disk::Ahci, Disk::VirtioBlk, Disk::VirtioScsi] {
        let trace = p.dir.join(format!("{disk:?}.trace"));
        let m = traced(Machine::new(disk.machine(), "256M"), &trace);
        let run = qemu::boot_with_disk(&disk.args(&file), &m, None, BOOT_TIMEOUT);
        check_kernel(&run, &p.kernel, &format!("{disk:?}"));
        let all = reads(&trace);
        for (&(dest, len), &(at, _)) in segments().iter().zip(&ranges) {
            assert_eq!(
                reads_of(&all, at, len),
                fast_reads(dest, at, len, disk.align()),
                "{disk:?}: the reads of the segment at {dest:#x} ({len} bytes): all by the \
                 fast path, straight where the controller reaches, else staged"
            );
        }
    }
}

#[test]
fn odd_segments_arrive_intact_through_the_bios() {
    let p = pack("readpath-bios", false);
    let ranges = disk_ranges(&p.image);
    let file = p.image.display().to_string();
    for disk in [Disk::Ide, Disk::Ahci] {
        let trace = p.dir.join(format!("{disk:?}-bios.trace"));
        let m = traced(Machine::new(disk.machine(), "256M"), &trace);
        let run = qemu::boot_with_disk(&disk.args(&file), &m, None, BOOT_TIMEOUT);
        check_kernel(&run, &p.kernel, &format!("{disk:?} --no-fast-read"));
        let all = reads(&trace);
        let (at, len) = ranges[2];
        let seen = reads_of(&all, at, len);
        assert!(
            !seen.is_empty() && seen.iter().all(|&(_, n)| n <= BIOS_READ_MAX),
            "{disk:?}: the BIOS read the big segment, at most 127 sectors a call: {seen:?}"
        );
    }
}

#[test]
fn odd_segments_arrive_intact_through_chs_reads() {
    let p = pack("readpath-chs", true);
    let rom = p.dir.join("no-edd.rom");
    std::fs::write(&rom, no_edd_rom::rom()).unwrap();
    let drive = vec![
        "-drive".to_string(),
        format!("file={},format=raw", p.image.display()),
    ];
    for machine in ["pc", "q35"] {
        let mut m = Machine::new(machine, "256M");
        m.extra = vec!["-option-rom".into(), rom.display().to_string()];
        let run = qemu::boot_with_disk(&drive, &m, None, BOOT_TIMEOUT);
        check_kernel(&run, &p.kernel, &format!("{machine} CHS"));
    }
}

/// The image as a qcow2 file whose 64 KiB cluster at disk offset `cluster`
/// is stored compressed: reading it is the only read QEMU's qcow2 driver
/// reports to blkdebug as `read_compressed`, so a breakpoint on that event
/// suspends the first read of that cluster and nothing else.
fn qcow2_with_compressed_cluster(p: &Packed, cluster: u64) -> PathBuf {
    let disk = std::fs::read(&p.image).unwrap();
    let range = cluster as usize..cluster as usize + 0x10000;
    std::fs::write(p.dir.join("cluster.bin"), &disk[range.clone()]).unwrap();
    let mut holed = disk.clone();
    holed[range].fill(0);
    std::fs::write(p.dir.join("holed.img"), &holed).unwrap();
    let out = p.dir.join("disk.qcow2");
    let run = |cmd: &mut Command| {
        let o = cmd
            .output()
            .unwrap_or_else(|e| panic!("{cmd:?}: {e}: install qemu-utils"));
        assert!(
            o.status.success(),
            "{cmd:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    };
    run(Command::new("qemu-img")
        .args(["convert", "-f", "raw", "-O", "qcow2"])
        .arg(p.dir.join("holed.img"))
        .arg(&out));
    run(Command::new("qemu-io")
        .args(["-f", "qcow2"])
        .arg(&out)
        .arg("-c")
        .arg(format!(
            "write -c -s {} {cluster} 64k",
            p.dir.join("cluster.bin").display()
        )));
    run(Command::new("qemu-img")
        .args(["compare", "-f", "raw", "-F", "qcow2"])
        .arg(&p.image)
        .arg(&out));
    out
}

/// What a boot with a hung read showed: COM1, QEMU's trace (stderr, with
/// timestamps), the exit status (None if stopped after `limit`), the time.
struct HungRun {
    serial: String,
    trace: String,
    exit: Option<i32>,
    elapsed: Duration,
}

/// Boots `qcow2` on `disk` with a blkdebug breakpoint on `read_compressed`
/// (set through the monitor before the guest starts), so the first read of
/// the compressed cluster never completes; stops QEMU after `limit`, or a
/// second after COM1 showed `until`.
fn boot_with_hung_read(
    p: &Packed,
    disk: Disk,
    qcow2: &Path,
    limit: Duration,
    until: Option<&str>,
) -> HungRun {
    qemu::require_qemu();
    let sock = p.dir.join(format!("{disk:?}.sock"));
    let trace_path = p.dir.join(format!("{disk:?}-hung.trace"));
    let file = format!("blkdebug::{}", qcow2.display());
    let mut args = disk.args(&file);
    args[1] = args[1].replace("format=raw", "format=qcow2");
    let start = Instant::now();
    let mut child = Command::new(qemu::QEMU)
        .args(["-accel", "tcg", "-machine", disk.machine(), "-m", "256M"])
        .args(["-display", "none", "-serial", "stdio", "-no-reboot", "-S"])
        .args(["-device", "isa-debug-exit,iobase=0xf4,iosize=0x04"])
        .args(&args)
        .arg("-monitor")
        .arg(format!("unix:{},server=on,wait=off", sock.display()))
        .args(["-msg", "timestamp=on"])
        .args(["-trace", "blk_co_preadv", "-trace", "bmdma_cmd_writeb"])
        .args(["-trace", "ahci_port_write"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&trace_path).unwrap())
        .spawn()
        .expect("start QEMU");
    let mut out = child.stdout.take().unwrap();
    let serial = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let sink = serial.clone();
    let reader = std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = out.read(&mut buf) {
            if n == 0 {
                break;
            }
            sink.lock().unwrap().extend_from_slice(&buf[..n]);
        }
    });
    let mut seen_at: Option<Instant> = None;
    let mut mon = loop {
        match UnixStream::connect(&sock) {
            Ok(s) => break s,
            Err(e) if start.elapsed() < Duration::from_secs(20) => {
                let _ = e;
                std::thread::sleep(Duration::from_millis(50));
            }
            Err(e) => panic!("QEMU's monitor at {}: {e}", sock.display()),
        }
    };
    mon.write_all(b"qemu-io d0 \"break read_compressed hung\"\ncont\n")
        .unwrap();
    let exit = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status.code();
        }
        if let Some(marker) = until {
            if seen_at.is_none()
                && String::from_utf8_lossy(&serial.lock().unwrap()).contains(marker)
            {
                seen_at = Some(Instant::now());
            }
        }
        let settled = seen_at.is_some_and(|t| t.elapsed() > Duration::from_secs(1));
        if start.elapsed() > limit || settled {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let elapsed = start.elapsed();
    reader.join().unwrap();
    let serial = String::from_utf8_lossy(&serial.lock().unwrap()).into_owned();
    HungRun {
        serial,
        trace: std::fs::read_to_string(&trace_path).unwrap(),
        exit,
        elapsed,
    }
}

/// The trace's lines as (seconds, event and arguments).
fn timed(trace: &str) -> Vec<(f64, String)> {
    trace
        .lines()
        .filter_map(|l| {
            let (head, rest) = l.split_once(':')?;
            let t = head.split_once('@')?.1.parse().ok()?;
            Some((t, rest.to_string()))
        })
        .collect()
}

/// (offset, bytes) of a blk_co_preadv line.
fn read_of(line: &str) -> Option<(u64, u64)> {
    if !line.starts_with("blk_co_preadv") {
        return None;
    }
    let mut w = line.split_whitespace();
    w.find(|&x| x == "offset")?;
    let o = w.next()?.parse().ok()?;
    w.find(|&x| x == "bytes")?;
    Some((o, w.next()?.parse().ok()?))
}

#[test]
fn a_fast_read_that_never_completes_is_given_up_at_the_deadline() {
    // The device never completes the fast path's read of a cluster inside
    // the big segment (a blkdebug breakpoint suspends that request for
    // good). Every fast path waits for its deadline, then stops the
    // command and turns itself off.
    // - virtio: the device serves the BIOS's requests beside the hung one,
    //   so the BIOS reads the rest and the kernel boots intact, after the
    //   deadline, with no fast read after the hung one.
    // - IDE and AHCI: the guest stops the DMA engine (PIIX) or the port's
    //   command engine (AHCI) at the deadline. QEMU itself then cannot
    //   serve the BIOS (docs/reliability.md): on AHCI the port stays busy
    //   with the hung command, SeaBIOS times out (32 s) on each of the
    //   four tries and stage 2 halts with its read message; on IDE
    //   stopping the engine makes QEMU wait for the hung request (its
    //   blk_drain) and the machine stands still.
    let p = pack("readpath-hang", true);
    let ranges = disk_ranges(&p.image);
    let (at, len) = ranges[2];
    let cluster = (at + 0x1_0000) & !0xFFFF;
    assert!(
        cluster + 0x1_0000 <= at + len,
        "a cluster inside the segment"
    );
    let qcow2 = qcow2_with_compressed_cluster(&p, cluster);
    let hits = |&(o, n): &(u64, u64)| o < cluster + 0x1_0000 && cluster < o + n;
    for disk in [Disk::VirtioBlk, Disk::VirtioScsi, Disk::Ide, Disk::Ahci] {
        let virtio = matches!(disk, Disk::VirtioBlk | Disk::VirtioScsi);
        let (limit, until) = match disk {
            Disk::VirtioBlk | Disk::VirtioScsi => (BOOT_TIMEOUT, None),
            Disk::Ahci => (Duration::from_secs(240), Some("bootpack: halted")),
            Disk::Ide => (DEADLINE + Duration::from_secs(15), None),
        };
        let run = boot_with_hung_read(&p, disk, &qcow2, limit, until);
        assert!(
            run.serial.contains("blkdebug: Suspended request 'hung'"),
            "{disk:?}: QEMU must have suspended the read; COM1:\n{}",
            run.serial
        );
        let events = timed(&run.trace);
        let reads: Vec<(f64, (u64, u64))> = events
            .iter()
            .filter_map(|(t, l)| Some((*t, read_of(l)?)))
            .collect();
        let hung = reads
            .iter()
            .position(|(_, r)| hits(r))
            .unwrap_or_else(|| panic!("{disk:?}: no read of the cluster:\n{}", run.trace));
        let (hung_at, hung_read) = reads[hung];
        let expected = fast_reads(segments()[2].0, at, len, disk.align());
        assert!(
            expected.contains(&hung_read),
            "{disk:?}: the hung read {hung_read:?} is the fast path's ({expected:?})"
        );
        if virtio {
            let r = Run {
                serial: run.serial.clone().into_bytes(),
                exit: run.exit,
                vga: None,
                elapsed: run.elapsed,
            };
            check_kernel(&r, &p.kernel, &format!("{disk:?} with a hung read"));
            let after: Vec<(u64, u64)> = reads[hung + 1..].iter().map(|&(_, r)| r).collect();
            assert!(
                after.iter().all(|&(_, n)| n <= BIOS_READ_MAX),
                "{disk:?}: after the hung read only the BIOS reads: {after:?}"
            );
            let first_after = reads.get(hung + 1).map(|&(t, _)| t).unwrap_or(f64::MAX);
            assert!(
                first_after - hung_at >= DEADLINE.as_secs_f64(),
                "{disk:?}: the next read came {:.3} s after the hung one, before the \
                 fast path's deadline {DEADLINE:?}",
                first_after - hung_at
            );
            let covered: u64 = reads_of(&after, at, len).iter().map(|&(_, n)| n).sum();
            assert!(
                covered >= len,
                "{disk:?}: the BIOS read the big segment again"
            );
        } else {
            // PIIX: the bus-master start bit cleared (command 0); AHCI: the
            // port's PxCMD written without ST (bit 0).
            let stop = events.iter().find(|(t, l)| {
                *t > hung_at
                    && if disk == Disk::Ide {
                        l.starts_with("bmdma_cmd_writeb") && l.trim_end().ends_with("0x00000000")
                    } else {
                        l.starts_with("ahci_port_write")
                            && l.contains("[reg:PxCMD]")
                            && l.rsplit(' ')
                                .next()
                                .and_then(|v| {
                                    u32::from_str_radix(v.trim_start_matches("0x"), 16).ok()
                                })
                                .is_some_and(|v| v & 1 == 0)
                    }
            });
            let (stop_at, _) = stop.unwrap_or_else(|| {
                panic!(
                    "{disk:?}: the fast path never stopped the hung command:\n{}",
                    run.trace
                )
            });
            let waited = stop_at - hung_at;
            assert!(
                waited >= DEADLINE.as_secs_f64() && waited < DEADLINE.as_secs_f64() + 5.0,
                "{disk:?}: the fast path gave up {waited:.3} s after the hung read; its \
                 deadline is {DEADLINE:?}"
            );
            assert!(
                !reads[hung + 1..]
                    .iter()
                    .any(|(_, (_, n))| *n > BIOS_READ_MAX),
                "{disk:?}: no fast read after the hung one"
            );
        }
    }
}
