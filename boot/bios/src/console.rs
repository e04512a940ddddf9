//! Where failures are reported: COM1 (115200 8N1, as Solo5 programs it) and
//! the VGA text screen at 0xB8000. Stage 2 prints nothing unless something
//! fails; stage2_main programs the UART first thing all the same, and a
//! failure before that (a CPU exception, say) programs it on the way.

use crate::Global;
use core::ptr;
use core::sync::atomic::{AtomicBool, AtomicUsize, Ordering::Relaxed};
use uart_16550::backend::PioBackend;
use uart_16550::{BaudRate, Config, Uart16550};

const COM1: u16 = 0x3F8;
const VGA: usize = 0xB8000;
const COLS: usize = 80;
const ROWS: usize = 25;
/// Light grey on black, the BIOS's default.
const ATTR: u16 = 0x07 << 8;
/// BIOS data area: cursor column and row of video page 0.
const BDA_CURSOR: usize = 0x450;

static INITIALISED: AtomicBool = AtomicBool::new(false);
static SERIAL_OK: AtomicBool = AtomicBool::new(false);
/// Set once a graphics mode is on: 0xB8000 is no longer the screen.
static SCREEN_OFF: AtomicBool = AtomicBool::new(false);
static ROW: AtomicUsize = AtomicUsize::new(0);
static COL: AtomicUsize = AtomicUsize::new(0);

/// The UART handle, valid once SERIAL_OK is set.
static UART: Global<Option<Uart16550<PioBackend>>> = Global::new(None);

/// Programs COM1 (if there is one) and finds where the BIOS left the text
/// cursor, so our lines follow its messages. Idempotent.
pub fn init() {
    if INITIALISED.swap(true, Relaxed) {
        return;
    }
    // SAFETY: 0x3F8-0x3FF is COM1 on every PC; stage 2 is the only code
    // running, single-threaded, so it has the port to itself. UART is only
    // touched here and in write_serial, never concurrently.
    unsafe {
        if let Ok(mut uart) = Uart16550::new_port(COM1) {
            let config = Config {
                baud_rate: BaudRate::Baud115200,
                ..Config::DEFAULT
            };
            // init() fails if no UART answers at the port: then the
            // screen is all there is.
            if uart.init(config).is_ok() {
                *UART.get() = Some(uart);
                SERIAL_OK.store(true, Relaxed);
            }
        }
    }
    // SAFETY: the BIOS data area at 0x400-0x4FF is identity-mapped RAM the
    // BIOS keeps up to date; reading it has no side effects.
    let (col, row) = unsafe {
        (
            ptr::read_volatile(BDA_CURSOR as *const u8) as usize,
            ptr::read_volatile((BDA_CURSOR + 1) as *const u8) as usize,
        )
    };
    COL.store(col.min(COLS - 1), Relaxed);
    ROW.store(row.min(ROWS - 1), Relaxed);
    // Start on a line of our own.
    if col != 0 {
        vga_newline();
    }
}

fn write_serial(bytes: &[u8]) {
    if !SERIAL_OK.load(Relaxed) {
        return;
    }
    // SAFETY: see init(); SERIAL_OK is only set once UART holds a device.
    unsafe {
        if let Some(uart) = (*UART.get()).as_mut() {
            uart.send_bytes_exact(bytes);
        }
    }
}

fn vga_cell(row: usize, col: usize) -> *mut u16 {
    (VGA + 2 * (row * COLS + col)) as *mut u16
}

fn vga_newline() {
    COL.store(0, Relaxed);
    let row = ROW.load(Relaxed) + 1;
    if row < ROWS {
        ROW.store(row, Relaxed);
        return;
    }
    // SAFETY: 0xB8000-0xB8F9F is the colour text buffer (mode 3, which the
    // BIOS leaves set), identity-mapped; only cells inside it are touched.
    unsafe {
        for r in 1..ROWS {
            for c in 0..COLS {
                ptr::write_volatile(vga_cell(r - 1, c), ptr::read_volatile(vga_cell(r, c)));
            }
        }
        for c in 0..COLS {
            ptr::write_volatile(vga_cell(ROWS - 1, c), ATTR | b' ' as u16);
        }
    }
}

/// Stops writing to the text screen (a graphics mode was set for the
/// kernel); COM1 still gets every line.
pub fn screen_off() {
    SCREEN_OFF.store(true, Relaxed);
}

fn write_vga(bytes: &[u8]) {
    if SCREEN_OFF.load(Relaxed) {
        return;
    }
    for &b in bytes {
        match b {
            b'\n' => vga_newline(),
            b'\r' => COL.store(0, Relaxed),
            _ => {
                let (row, col) = (ROW.load(Relaxed), COL.load(Relaxed));
                // SAFETY: as in vga_newline; row < ROWS and col < COLS.
                unsafe { ptr::write_volatile(vga_cell(row, col), ATTR | b as u16) };
                if col + 1 == COLS {
                    vga_newline();
                } else {
                    COL.store(col + 1, Relaxed);
                }
            }
        }
    }
}

pub fn write_bytes(bytes: &[u8]) {
    write_serial(bytes);
    write_vga(bytes);
}

pub fn write_str(s: &str) {
    write_bytes(s.as_bytes());
}

/// `v` in hex (upper-case digits, as in "type 0x7F") with a 0x prefix, at
/// least `min_digits` digits.
pub fn write_hex(v: u64, min_digits: usize) {
    let mut buf = [0u8; 18];
    let mut i = buf.len();
    let mut v = v;
    while v != 0 || buf.len() - i < min_digits.max(1) {
        i -= 1;
        buf[i] = b"0123456789ABCDEF"[(v & 0xF) as usize];
        v >>= 4;
    }
    i -= 2;
    buf[i] = b'0';
    buf[i + 1] = b'x';
    write_bytes(&buf[i..]);
}

/// `v` in decimal.
pub fn write_dec(v: u64) {
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    let mut v = v;
    loop {
        i -= 1;
        buf[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    write_bytes(&buf[i..]);
}
