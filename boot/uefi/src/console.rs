//! The two places a failure is reported: COM1 (written directly, as Solo5
//! and the BIOS loader do: 115200 8N1) and the firmware's console (ConOut),
//! which OVMF also mirrors to the serial port with its own escapes.

use core::fmt::Write;

const COM1: u16 = 0x3F8;

fn outb(port: u16, v: u8) {
    // SAFETY: port I/O to the 16550 at COM1; no memory is touched.
    unsafe { core::arch::asm!("out dx, al", in("dx") port, in("al") v, options(nomem, nostack)) };
}

fn inb(port: u16) -> u8 {
    let v: u8;
    // SAFETY: as above.
    unsafe { core::arch::asm!("in al, dx", out("al") v, in("dx") port, options(nomem, nostack)) };
    v
}

/// Programs COM1 as 115200 8N1, FIFOs on, interrupts off (what the BIOS
/// loader and Solo5 use).
fn init() {
    outb(COM1 + 1, 0x00);
    outb(COM1 + 3, 0x80);
    outb(COM1, 0x01);
    outb(COM1 + 1, 0x00);
    outb(COM1 + 3, 0x03);
    outb(COM1 + 2, 0xC7);
    outb(COM1 + 4, 0x03);
}

fn put(b: u8) {
    // Wait for the transmit holding register, but not forever: a machine
    // without COM1 reads 0xFF and must not hang the message on the screen.
    for _ in 0..100_000 {
        if inb(COM1 + 5) & 0x20 != 0 {
            break;
        }
    }
    outb(COM1, b);
}

/// `bootpack: error: TEXT` and `bootpack: halted` on COM1.
pub fn serial_line(text: &str) {
    init();
    for b in "\r\nbootpack: error: "
        .bytes()
        .chain(text.bytes())
        .chain("\r\nbootpack: halted\r\n".bytes())
    {
        put(b);
    }
}

/// The same on the firmware console.
pub fn conout_line(text: &str) {
    uefi::system::with_stdout(|out| {
        let _ = write!(out, "\r\nbootpack: error: {text}\r\nbootpack: halted\r\n");
    });
}
