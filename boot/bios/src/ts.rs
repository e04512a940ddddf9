//! Time marks for profiling (cargo feature `timestamps`, off by default).
//!
//! With the feature, [`mark`] records a label, the time-stamp counter and a
//! number that goes with the step (bytes read, cycles spent) in memory, and
//! [`flush`] prints them all just before the handoff, one line each on COM1
//! (and the screen): `bootpack-ts LABEL TSC N`, TSC in hex and N in
//! decimal. Printing at the end keeps the serial port's cost (tens of
//! microseconds a line under TCG) out of the intervals measured; the last
//! line, `printed`, says when printing ended so the host can take the
//! printing out of the total. Stage 1's three marks (asm/macros.s S1_MARK)
//! come first, as `s1-entry`, `s1-read` and `s1-done`. Under QEMU TCG the
//! guest's TSC runs at the host's TSC rate, so the host converts the counts
//! to time (bench_boot `--profile` does). Without the feature, [`mark`] and
//! [`flush`] are empty and release output stays silent.

/// The time-stamp counter.
#[inline(always)]
pub fn now() -> u64 {
    let lo: u32;
    let hi: u32;
    // SAFETY: rdtsc only reads the counter into EDX:EAX; CR4.TSD is clear
    // (stage 2 never sets it, the BIOS leaves it clear), so it is allowed
    // at any privilege level; no memory or flags are touched.
    unsafe {
        core::arch::asm!("rdtsc", out("eax") lo, out("edx") hi, options(nomem, nostack, preserves_flags));
    }
    (u64::from(hi) << 32) | u64::from(lo)
}

/// Whether marks are recorded.
pub const ENABLED: bool = cfg!(feature = "timestamps");

/// The time-stamp counter with the feature, else 0 (no rdtsc in release
/// builds): the start of an interval measured with [`since`].
#[inline(always)]
pub fn stamp() -> u64 {
    if ENABLED {
        now()
    } else {
        0
    }
}

/// TSC ticks since `start` (a [`stamp`]) with the feature, else 0.
#[inline(always)]
pub fn since(start: u64) -> u64 {
    if ENABLED {
        now() - start
    } else {
        0
    }
}

#[cfg(feature = "timestamps")]
mod record {
    use crate::Global;

    #[derive(Clone, Copy)]
    pub struct Mark {
        pub label: &'static str,
        pub tsc: u64,
        pub n: u64,
    }

    /// More than stage 2 ever makes (three per segment or module read,
    /// a dozen steps); marks past the end are dropped.
    pub const MAX: usize = 64;
    pub static MARKS: Global<([Mark; MAX], usize)> = Global::new((
        [Mark {
            label: "",
            tsc: 0,
            n: 0,
        }; MAX],
        0,
    ));
}

/// Records a time mark (feature `timestamps` only).
#[inline(always)]
pub fn mark(label: &'static str, n: u64) {
    #[cfg(feature = "timestamps")]
    {
        let tsc = now();
        // SAFETY: single-threaded stage 2 (see Global); no other reference
        // to MARKS is alive.
        let (marks, len) = unsafe { &mut *record::MARKS.get() };
        if *len < record::MAX {
            marks[*len] = record::Mark { label, tsc, n };
            *len += 1;
        }
    }
    #[cfg(not(feature = "timestamps"))]
    let _ = (label, n);
}

#[cfg(feature = "timestamps")]
fn print(label: &str, tsc: u64, n: u64) {
    crate::console::write_str("bootpack-ts ");
    crate::console::write_str(label);
    crate::console::write_str(" ");
    crate::console::write_hex(tsc, 1);
    crate::console::write_str(" ");
    crate::console::write_dec(n);
    crate::console::write_str("\r\n");
}

/// Prints the marks recorded so far (feature `timestamps` only).
pub fn flush() {
    #[cfg(feature = "timestamps")]
    {
        // SAFETY: single-threaded stage 2; a copy is taken.
        let (marks, len) = unsafe { *record::MARKS.get() };
        let marks = &marks[..len];
        if let Some(first) = marks.first() {
            // Stage 1 stored the low halves of the TSC: the full values are
            // the first stage 2 mark's minus the (short) time since.
            let base = first.tsc;
            for (slot, label) in ["s1-entry", "s1-read", "s1-done"].iter().enumerate() {
                let at = crate::memplan::STAGE1_MARKS_ADDR as usize + 4 * slot;
                // SAFETY: stage 1 wrote these three dwords below 0x1000,
                // memory nothing else uses (layout), identity-mapped.
                let lo = unsafe { core::ptr::read_volatile(at as *const u32) };
                let back = (base as u32).wrapping_sub(lo);
                print(label, base - u64::from(back), 0);
            }
        }
        for m in marks {
            print(m.label, m.tsc, m.n);
        }
        print("printed", now(), 0);
    }
}
