//! The one clock every fast read path measures its deadlines with: channel
//! 2 of the 8254 PIT, free-running in mode 2 (rate generator) at its fixed
//! 1.193182 MHz, read by polling.
//!
//! Why the PIT and not the TSC or a spin count:
//! - a spin count is no time at all: its length depends on the CPU, on how
//!   slowly port and MMIO accesses are emulated (TCG), and on host load;
//! - the TSC's rate is unknown until calibrated, and calibrating it costs
//!   milliseconds of boot time against a budget of a few; under TCG it
//!   runs at the host's rate;
//! - the PIT has a rate fixed by the platform, needs no interrupts (stage
//!   2 runs with them off; the counter is latched and read through ports
//!   0x43/0x42), needs no calibration, and under QEMU (TCG or KVM) follows
//!   the virtual clock, which is host time. Channel 2 is the one firmware
//!   and kernels use for exactly this (SeaBIOS and Linux calibrate the TSC
//!   with it); the BIOS's own timer tick on channel 0 is left alone.
//!
//! A 16-bit down-counter wraps every 54.9 ms, so a [`Deadline`] adds up the
//! ticks between successive looks. A look more than 54.9 ms after the
//! previous one counts less time than passed: a deadline can only come
//! late, never early. [`running`] tells whether the counter moves at all;
//! without a working clock the fast path stays off (fastdisk::setup), so
//! no wait can become endless.

use x86_64::instructions::port::Port;

/// PIT input clock, ticks per second.
const PIT_HZ: u64 = 1_193_182;

/// Programs channel 2 as a free-running rate generator: gate on (port
/// 0x61 bit 0), speaker output off (bit 1), mode 2, reload value 65536.
/// Channel 2 is left running: a kernel that wants it programs it anew.
pub fn start() {
    // SAFETY: ports 0x61 (system control port B), 0x43 (PIT mode) and 0x42
    // (PIT channel 2) exist on every PC; this only changes channel 2's
    // mode and gate and keeps the speaker silent. Nothing in stage 2 or the
    // BIOS calls it makes relies on channel 2.
    unsafe {
        let mut ctl = Port::<u8>::new(0x61);
        let v = ctl.read();
        ctl.write((v & !0x02) | 0x01);
        // Channel 2, low then high byte, mode 2, binary.
        Port::<u8>::new(0x43).write(0xB4);
        let mut ch2 = Port::<u8>::new(0x42);
        ch2.write(0);
        ch2.write(0);
    }
}

/// Channel 2's current count (counts down, wraps at 65536).
fn count() -> u16 {
    // SAFETY: latching channel 2 (counter latch command) and reading the
    // two latched bytes only reads the counter.
    unsafe {
        Port::<u8>::new(0x43).write(0x80);
        let mut ch2 = Port::<u8>::new(0x42);
        let lo = ch2.read();
        let hi = ch2.read();
        u16::from_le_bytes([lo, hi])
    }
}

/// A point on the clock, to ask later whether it moved.
#[derive(Clone, Copy, Debug)]
pub struct Mark(u16);

/// Now, as a [`Mark`].
pub fn mark() -> Mark {
    Mark(count())
}

/// Whether the clock moved since `m` (stage 2 checks that it ticks before
/// it trusts a deadline).
pub fn running(m: Mark) -> bool {
    count() != m.0
}

/// A time limit on a wait, measured on the PIT.
#[derive(Clone, Copy, Debug)]
pub struct Deadline {
    last: u16,
    left: u64,
}

impl Deadline {
    /// A deadline `ms` milliseconds from now.
    pub fn after_ms(ms: u64) -> Deadline {
        Deadline {
            last: count(),
            left: ms * PIT_HZ / 1000,
        }
    }

    /// Whether the deadline has passed; call it in the wait's loop.
    pub fn passed(&mut self) -> bool {
        let now = count();
        let ticks = u64::from(self.last.wrapping_sub(now));
        self.last = now;
        self.left = self.left.saturating_sub(ticks);
        self.left == 0
    }
}
