//! Booting an image in QEMU (TCG) and collecting what the guest printed on
//! COM1, with an optional look at the VGA text screen through the monitor.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub const QEMU: &str = "qemu-system-x86_64";

/// How to boot.
#[derive(Clone, Debug)]
pub struct Machine {
    /// "pc" (IDE disk) or "q35" (AHCI disk).
    pub machine: &'static str,
    /// e.g. "128M", "3G".
    pub mem: &'static str,
    /// Extra arguments, e.g. a different disk format.
    pub extra: Vec<String>,
}

impl Machine {
    pub fn new(machine: &'static str, mem: &'static str) -> Self {
        Machine {
            machine,
            mem,
            extra: Vec::new(),
        }
    }
}

/// What happened.
#[derive(Debug)]
pub struct Run {
    pub serial: Vec<u8>,
    /// QEMU's exit code, None if it was still running when stopped.
    pub exit: Option<i32>,
    /// The VGA text screen at the end, if it was asked for.
    pub vga: Option<String>,
    pub elapsed: Duration,
}

impl Run {
    pub fn serial_text(&self) -> String {
        String::from_utf8_lossy(&self.serial).into_owned()
    }
}

/// Fails the test with a clear message when QEMU is missing: boot tests
/// never pass by skipping.
pub fn require_qemu() {
    let ok = Command::new(QEMU)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    if !matches!(ok, Ok(s) if s.success()) {
        panic!(
            "{QEMU} was not found or does not run: the boot tests need it. \
             Install it (Debian/Ubuntu: apt-get install qemu-system-x86) and run the tests again."
        );
    }
}

fn base_command(m: &Machine) -> Command {
    require_qemu();
    let mut c = Command::new(QEMU);
    c.args(["-accel", "tcg", "-machine", m.machine, "-m", m.mem])
        .args(["-display", "none", "-serial", "stdio", "-no-reboot"])
        .args(["-device", "isa-debug-exit,iobase=0xf4,iosize=0x04"])
        .args(&m.extra)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    c
}

/// Boots a raw disk image until the guest exits QEMU or `timeout` passes.
pub fn boot_image(image: &Path, m: &Machine, timeout: Duration) -> Run {
    boot_image_as(image, "raw", m, timeout)
}

/// Boots a disk image of QEMU format `format` (raw, vpc, vmdk, qcow2).
pub fn boot_image_as(image: &Path, format: &str, m: &Machine, timeout: Duration) -> Run {
    let mut c = base_command(m);
    c.arg("-drive")
        .arg(format!("file={},format={format}", image.display()));
    run(c, timeout, None)
}

/// Boots with QEMU's own Multiboot loader (`-kernel`), the reference the
/// tests compare bootpack's memory map against.
pub fn boot_kernel(kernel: &Path, append: &str, m: &Machine, timeout: Duration) -> Run {
    let mut c = base_command(m);
    c.arg("-kernel").arg(kernel).arg("-append").arg(append);
    run(c, timeout, None)
}

/// A monitor socket path no other boot of this process uses.
fn monitor_socket() -> PathBuf {
    static RUNS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = RUNS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    std::env::temp_dir().join(format!("bootpack-mon-{}-{n}.sock", std::process::id()))
}

/// Boots an image that is expected to stop with a message: waits until
/// `marker` has appeared on the serial port and `settle` more has passed
/// (to see that nothing else happens: no reboot, no kernel), then reads the
/// VGA screen and stops QEMU.
pub fn boot_until(
    image: &Path,
    m: &Machine,
    marker: &str,
    settle: Duration,
    timeout: Duration,
) -> Run {
    // Unique per boot: tests in one process run in parallel and often
    // share image file names (disk.img).
    let sock = monitor_socket();
    let _ = std::fs::remove_file(&sock);
    let mut c = base_command(m);
    c.arg("-drive")
        .arg(format!("file={},format=raw", image.display()));
    c.arg("-monitor")
        .arg(format!("unix:{},server=on,wait=off", sock.display()));
    run(c, timeout, Some((marker.to_string(), settle, sock)))
}

/// Boots with the disk attached by `disk` (QEMU arguments that name the
/// image themselves: a controller, a blkdebug drive...). Without `until`,
/// runs until the guest exits QEMU or `timeout` passes; with `until =
/// (marker, settle)`, stops as [`boot_until`] does and reads the VGA screen.
pub fn boot_with_disk(
    disk: &[String],
    m: &Machine,
    until: Option<(&str, Duration)>,
    timeout: Duration,
) -> Run {
    let mut c = base_command(m);
    c.args(disk);
    let until = until.map(|(marker, settle)| {
        let sock = monitor_socket();
        let _ = std::fs::remove_file(&sock);
        c.arg("-monitor")
            .arg(format!("unix:{},server=on,wait=off", sock.display()));
        (marker.to_string(), settle, sock)
    });
    run(c, timeout, until)
}

/// QEMU's COM1 (its standard output), collected by a thread while the
/// test watches the guest.
struct Capture {
    bytes: Arc<Mutex<Vec<u8>>>,
    reader: std::thread::JoinHandle<()>,
}

impl Capture {
    /// Starts `c` (whose stdout must be piped) and collects its output.
    fn spawn(mut c: Command) -> (Child, Capture) {
        let mut child = c.spawn().expect("start QEMU");
        let bytes = Arc::new(Mutex::new(Vec::new()));
        let mut out = child.stdout.take().unwrap();
        let sink = bytes.clone();
        let reader = std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = out.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock().unwrap().extend_from_slice(&buf[..n]);
            }
        });
        (child, Capture { bytes, reader })
    }

    /// Everything QEMU printed, once it has exited or been killed.
    fn finish(self) -> Vec<u8> {
        self.reader.join().unwrap();
        Arc::try_unwrap(self.bytes).unwrap().into_inner().unwrap()
    }
}

fn run(c: Command, timeout: Duration, until: Option<(String, Duration, PathBuf)>) -> Run {
    let start = Instant::now();
    let (mut child, capture) = Capture::spawn(c);
    let serial = capture.bytes.clone();
    let mut seen_at = None;
    let mut vga = None;
    let exit = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status.code();
        }
        if let Some((marker, settle, sock)) = &until {
            let found = String::from_utf8_lossy(&serial.lock().unwrap()).contains(marker.as_str());
            if found && seen_at.is_none() {
                seen_at = Some(Instant::now());
            }
            if seen_at.is_some_and(|t| t.elapsed() >= *settle) {
                vga = Some(read_vga(sock));
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
        }
        if start.elapsed() > timeout {
            if let Some((_, _, sock)) = &until {
                vga = Some(read_vga(sock));
            }
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let elapsed = start.elapsed();
    if let Some((_, _, sock)) = &until {
        let _ = std::fs::remove_file(sock);
    }
    drop(serial);
    let serial = capture.finish();
    Run {
        serial,
        exit,
        vga,
        elapsed,
    }
}

/// Saves the VGA text buffer (80x25 cells at 0xB8000) through the human
/// monitor and returns its characters, one line per row, trailing blanks
/// trimmed.
fn read_vga(sock: &Path) -> String {
    let dump = sock.with_extension("vga");
    let _ = std::fs::remove_file(&dump);
    let mut s = UnixStream::connect(sock).expect("connect to the QEMU monitor");
    s.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    writeln!(s, "pmemsave 0xb8000 4000 \"{}\"", dump.display()).unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut sink = [0u8; 1024];
    while std::fs::metadata(&dump).map(|m| m.len()).unwrap_or(0) < 4000 && Instant::now() < deadline
    {
        let _ = s.read(&mut sink);
    }
    let bytes = std::fs::read(&dump).unwrap_or_default();
    let _ = std::fs::remove_file(&dump);
    screen_text(&bytes)
}

/// The characters of a VGA text buffer (80x25 cells of character and
/// attribute), one line per row, trailing blanks trimmed.
fn screen_text(bytes: &[u8]) -> String {
    bytes
        .chunks(160)
        .map(|row| {
            let line: String = row
                .chunks(2)
                .map(|c| {
                    if (0x20..0x7f).contains(&c[0]) {
                        c[0] as char
                    } else {
                        ' '
                    }
                })
                .collect();
            line.trim_end().to_string()
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The QEMU human monitor of a running guest.
pub struct Monitor {
    stream: UnixStream,
    files: PathBuf,
}

impl Monitor {
    fn connect(sock: &Path) -> Option<Monitor> {
        let stream = UnixStream::connect(sock).ok()?;
        stream
            .set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        let mut m = Monitor {
            stream,
            files: sock.with_extension("mem"),
        };
        m.command(""); // the banner and first prompt
        Some(m)
    }

    /// Runs one command and returns what it printed (up to the next prompt).
    pub fn command(&mut self, cmd: &str) -> String {
        let _ = writeln!(self.stream, "{cmd}");
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut out = Vec::new();
        let mut buf = [0u8; 4096];
        while Instant::now() < deadline {
            match self.stream.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => out.extend_from_slice(&buf[..n]),
                Err(_) => {}
            }
            if out.ends_with(b"(qemu) ") {
                break;
            }
        }
        String::from_utf8_lossy(&out).into_owned()
    }

    /// `len` bytes of guest physical memory at `addr` (pmemsave).
    pub fn read_memory(&mut self, addr: u64, len: usize) -> Vec<u8> {
        let _ = std::fs::remove_file(&self.files);
        self.command(&format!(
            "pmemsave {addr:#x} {len} \"{}\"",
            self.files.display()
        ));
        let bytes = std::fs::read(&self.files).unwrap_or_default();
        let _ = std::fs::remove_file(&self.files);
        bytes
    }

    /// The value of a register as `info registers` prints it ("EIP", "ESP",
    /// "HLT", ...).
    pub fn register(&mut self, name: &str) -> Option<u64> {
        let regs = self.command("info registers");
        let key = format!("{name}=");
        regs.split_whitespace()
            .find_map(|w| w.strip_prefix(key.as_str()))
            .and_then(|v| u64::from_str_radix(v, 16).ok())
    }

    /// Runs a command that writes `self.files` and returns the file's bytes
    /// once it holds at least `len` bytes (or, for len 0, exists and stops
    /// growing), or None after a few seconds.
    fn dump_with(&mut self, command: &str, len: u64) -> Option<Vec<u8>> {
        let _ = std::fs::remove_file(&self.files);
        writeln!(self.stream, "{command}").ok()?;
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut sink = [0u8; 4096];
        let mut last = None;
        while Instant::now() < deadline {
            let _ = self.stream.read(&mut sink);
            let size = std::fs::metadata(&self.files).map(|m| m.len()).ok();
            match size {
                Some(n) if len > 0 && n >= len => break,
                Some(n) if len == 0 && n > 0 && last == Some(n) => break,
                _ => {}
            }
            last = size;
        }
        let b = std::fs::read(&self.files).ok();
        let _ = std::fs::remove_file(&self.files);
        b
    }

    /// The screen as QEMU's display shows it.
    pub fn screendump(&mut self) -> Option<Ppm> {
        let cmd = format!("screendump \"{}\"", self.files.display());
        Ppm::parse(&self.dump_with(&cmd, 0)?)
    }

    /// The little-endian u32 at guest physical `addr`.
    pub fn read_u32(&mut self, addr: u64) -> Option<u32> {
        let b = self.read_memory(addr, 4);
        Some(u32::from_le_bytes(b.get(..4)?.try_into().ok()?))
    }
}

/// A screen dump (PPM, 8 bits per channel).
pub struct Ppm {
    pub width: usize,
    pub height: usize,
    data: Vec<u8>,
}

impl Ppm {
    fn parse(b: &[u8]) -> Option<Ppm> {
        // "P6\n<w> <h>\n255\n" then w * h RGB triples.
        let mut fields = Vec::new();
        let mut at = 0;
        while fields.len() < 4 {
            while b.get(at)?.is_ascii_whitespace() {
                at += 1;
            }
            let start = at;
            while !b.get(at)?.is_ascii_whitespace() {
                at += 1;
            }
            fields.push(std::str::from_utf8(&b[start..at]).ok()?.to_string());
        }
        if fields[0] != "P6" || fields[3] != "255" {
            return None;
        }
        let (width, height): (usize, usize) = (fields[1].parse().ok()?, fields[2].parse().ok()?);
        let data = b.get(at + 1..at + 1 + width * height * 3)?.to_vec();
        Some(Ppm {
            width,
            height,
            data,
        })
    }

    /// The (red, green, blue) of pixel (x, y).
    pub fn pixel(&self, x: usize, y: usize) -> [u8; 3] {
        let o = 3 * (y * self.width + x);
        [self.data[o], self.data[o + 1], self.data[o + 2]]
    }
}

/// Boots with the disk arguments `disk` and a monitor, and every half
/// second reads COM1 and the VGA text screen until `done(serial, screen)`
/// holds, QEMU exits or `timeout` passes; then reads the screen a last
/// time and stops QEMU. For kernels that report on the screen, or on COM1
/// and then neither exit nor stop talking. `done` may also look at the
/// machine through the monitor.
pub fn boot_watch(
    disk: &[String],
    m: &Machine,
    mut done: impl FnMut(&str, &str, &mut Monitor) -> bool,
    timeout: Duration,
) -> Run {
    let sock = monitor_socket();
    let _ = std::fs::remove_file(&sock);
    let mut c = base_command(m);
    c.args(disk);
    c.arg("-monitor")
        .arg(format!("unix:{},server=on,wait=off", sock.display()));
    let start = Instant::now();
    let (mut child, capture) = Capture::spawn(c);
    let serial = capture.bytes.clone();
    let mut vga = String::new();
    let mut monitor = None;
    let exit = loop {
        std::thread::sleep(Duration::from_millis(500));
        if let Some(status) = child.try_wait().unwrap() {
            break status.code();
        }
        if monitor.is_none() {
            monitor = Monitor::connect(&sock);
        }
        let Some(mon) = monitor.as_mut() else {
            continue;
        };
        vga = screen_text(&mon.read_memory(0xb8000, 4000));
        let text = String::from_utf8_lossy(&serial.lock().unwrap()).into_owned();
        if done(&text, &vga, mon) || start.elapsed() > timeout {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
    };
    let elapsed = start.elapsed();
    let _ = std::fs::remove_file(&sock);
    drop(serial);
    let serial = capture.finish();
    Run {
        serial,
        exit,
        vga: Some(vga),
        elapsed,
    }
}

/// Boots a raw image with a monitor and calls `look` about twice a second
/// until it returns Some (then stops QEMU and returns that) or `timeout`
/// passes (None).
pub fn boot_and_look<T>(
    image: &Path,
    m: &Machine,
    timeout: Duration,
    mut look: impl FnMut(&mut Monitor) -> Option<T>,
) -> Option<T> {
    let sock = monitor_socket();
    let _ = std::fs::remove_file(&sock);
    let mut c = base_command(m);
    c.arg("-drive")
        .arg(format!("file={},format=raw", image.display()));
    c.arg("-monitor")
        .arg(format!("unix:{},server=on,wait=off", sock.display()));
    c.stdout(Stdio::null()).stderr(Stdio::null());
    let mut child = c.spawn().expect("start QEMU");
    let start = Instant::now();
    let mut monitor = None;
    let mut found = None;
    while start.elapsed() < timeout && child.try_wait().unwrap().is_none() {
        std::thread::sleep(Duration::from_millis(500));
        if monitor.is_none() {
            monitor = Monitor::connect(&sock);
        }
        if let Some(mon) = monitor.as_mut() {
            found = look(mon);
            if found.is_some() {
                break;
            }
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    let _ = std::fs::remove_file(&sock);
    found
}
