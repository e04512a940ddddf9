//! COM1 output, 115200 8N1, the way Solo5 programs its console.
//!
//! Hand-written rather than uart_16550 0.9: that crate's constructors run a
//! loopback self-test and fail when it does not pass, and its sends wait for
//! the transmitter without bound. This kernel must reach its exit path
//! (isa-debug-exit, ACPI power-off) even where COM1 is absent or odd, and
//! initialising a 16550 plus a bounded polled write is a few lines.

use core::fmt;
use x86_64::instructions::port::Port;

const COM1: u16 = 0x3f8;

pub struct Com1 {
    data: Port<u8>,
    line_status: Port<u8>,
}

impl Com1 {
    /// Programs COM1 for 115200 8N1 with FIFOs on and interrupts off.
    pub fn init() -> Com1 {
        let mut ier: Port<u8> = Port::new(COM1 + 1);
        let mut fcr: Port<u8> = Port::new(COM1 + 2);
        let mut lcr: Port<u8> = Port::new(COM1 + 3);
        let mut mcr: Port<u8> = Port::new(COM1 + 4);
        let mut data: Port<u8> = Port::new(COM1);
        // SAFETY: ports 0x3f8..0x3fe are the PC's COM1 16550 registers; this
        // kernel is the only code running and owns them. On a machine
        // without COM1 the writes go nowhere and reads return 0xff.
        unsafe {
            ier.write(0x00); // no interrupts
            lcr.write(0x80); // DLAB: next two ports are the divisor
            data.write(0x01); // divisor 1 = 115200 baud (low byte)
            ier.write(0x00); // divisor high byte
            lcr.write(0x03); // 8 data bits, no parity, 1 stop bit
            fcr.write(0xc7); // FIFOs on and cleared, 14-byte trigger
            mcr.write(0x03); // DTR, RTS
        }
        Com1 {
            data,
            line_status: Port::new(COM1 + 5),
        }
    }

    pub fn write_byte(&mut self, byte: u8) {
        // Wait for the transmit holding register, but not forever: a
        // missing or wedged UART must not keep the kernel from exiting.
        for _ in 0..100_000 {
            // SAFETY: reading the COM1 line status register has no side
            // effect on the transmitter (see init for port ownership).
            if unsafe { self.line_status.read() } & 0x20 != 0 {
                break;
            }
            core::hint::spin_loop();
        }
        // SAFETY: as in init.
        unsafe { self.data.write(byte) }
    }

    pub fn write_bytes(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_byte(b);
        }
    }
}

impl fmt::Write for Com1 {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.write_bytes(s.as_bytes());
        Ok(())
    }
}
