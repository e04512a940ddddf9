//! Reporting a failure and halting, as the BIOS loader does: one line
//! `bootpack: error: MESSAGE`, then `bootpack: halted`, on COM1 and (while
//! boot services run) the firmware console, then the CPU stops for good.
//! Never returning to the firmware keeps a broken image from cycling
//! through the boot menu.

use crate::console;
use core::fmt::{self, Write};

/// Whether boot services still run (so ConOut may be used).
static mut BOOT_SERVICES: bool = true;

/// Called right before ExitBootServices: from then on COM1 only.
pub fn boot_services_gone() {
    // SAFETY: one thread of execution; nothing else reads it concurrently.
    unsafe { BOOT_SERVICES = false };
}

fn boot_services() -> bool {
    // SAFETY: as above.
    unsafe { BOOT_SERVICES }
}

/// A line buffer: the message is formatted once, then written to both
/// consoles (ConOut needs UCS-2 in one call per piece).
struct Line {
    buf: [u8; 256],
    len: usize,
}

impl Write for Line {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for &b in s.as_bytes() {
            if self.len < self.buf.len() {
                self.buf[self.len] = b;
                self.len += 1;
            }
        }
        Ok(())
    }
}

/// Prints `bootpack: error: ` + `message` and `bootpack: halted` on COM1
/// and the firmware console, and halts forever.
pub fn fail(message: fmt::Arguments) -> ! {
    let mut line = Line {
        buf: [0; 256],
        len: 0,
    };
    let _ = line.write_fmt(message);
    let text = core::str::from_utf8(&line.buf[..line.len]).unwrap_or("(unprintable message)");
    console::serial_line(text);
    if boot_services() {
        console::conout_line(text);
    }
    halt()
}

/// `fail(format_args!(...))`.
#[macro_export]
macro_rules! fail {
    ($($arg:tt)*) => {
        $crate::fail::fail(format_args!($($arg)*))
    };
}

/// Stops the CPU for good: interrupts off, hlt, and again if an NMI wakes
/// it.
pub fn halt() -> ! {
    loop {
        // SAFETY: cli and hlt touch no memory; stopping here is the intent.
        unsafe { core::arch::asm!("cli", "hlt", options(nomem, nostack)) };
    }
}
