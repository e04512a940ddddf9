//! Reporting a failure and halting.

use crate::console;

/// One piece of an error message.
pub enum Part<'a> {
    Str(&'a str),
    /// A number in hex with a 0x prefix.
    Hex(u64),
    /// A byte in hex with a 0x prefix and always two digits.
    Hex2(u8),
    /// A number in decimal.
    Dec(u64),
}

pub use Part::{Dec, Hex, Hex2, Str};

/// Starts an error line: "bootpack: error: ". Follow with [`put`] and
/// finish with [`end`].
pub fn begin() {
    console::init();
    console::write_str("bootpack: error: ");
}

/// Continues the error line.
pub fn put(parts: &[Part]) {
    for p in parts {
        match p {
            Part::Str(s) => console::write_str(s),
            Part::Hex(v) => console::write_hex(*v, 1),
            Part::Hex2(v) => console::write_hex(*v as u64, 2),
            Part::Dec(v) => console::write_dec(*v),
        }
    }
}

/// Ends the error line, prints "bootpack: halted" and halts forever.
pub fn end() -> ! {
    console::write_str("\r\nbootpack: halted\r\n");
    halt()
}

/// Prints "bootpack: error: " + `parts` as one line, then
/// "bootpack: halted", on COM1 and the screen, and halts forever.
pub fn fail(parts: &[Part]) -> ! {
    begin();
    put(parts);
    end()
}

/// [`fail`] with a message that formats itself (the partition-table
/// reader's, shared with `bootpack inspect`), through core::fmt like the
/// panic handler.
pub fn fail_display(message: &dyn core::fmt::Display) -> ! {
    begin();
    let _ = core::fmt::Write::write_fmt(&mut Console, format_args!("{message}"));
    end()
}

/// Stops the CPU for good: interrupts off, hlt, and again if an NMI wakes
/// it. Never reboots.
pub fn halt() -> ! {
    loop {
        x86_64::instructions::interrupts::disable();
        x86_64::instructions::hlt();
    }
}

/// Lets core::fmt print to the console (panic messages only).
struct Console;

impl core::fmt::Write for Console {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        console::write_str(s);
        Ok(())
    }
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    begin();
    // core::fmt only here, for messages that carry values (an index, a
    // length); measured at about 1 KiB of stage 2. Everything else uses the
    // hand-written number output in console.rs.
    let _ = core::fmt::Write::write_fmt(&mut Console, format_args!("panic: {}", info.message()));
    if let Some(l) = info.location() {
        put(&[
            Str(" at "),
            Str(l.file()),
            Str(" line "),
            Dec(l.line() as u64),
        ]);
    }
    end()
}
