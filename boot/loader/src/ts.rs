//! Time marks for profiling (cargo feature `timestamps`, off by default).
//!
//! With the feature, [`mark`] prints one line on COM1 (and the screen):
//! `bootpack-ts LABEL TSC N`, TSC the time-stamp counter in hex and N a
//! number that goes with the step (bytes read, cycles spent), in decimal.
//! Under QEMU TCG the guest's TSC runs at the host's TSC rate, so the host
//! converts the counts to time (bench_boot `--profile` does). Without the
//! feature, [`mark`] is empty and release output stays silent.

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

/// Prints a time mark (feature `timestamps` only).
#[inline(always)]
pub fn mark(label: &str, n: u64) {
    #[cfg(feature = "timestamps")]
    {
        let t = now();
        crate::console::write_str("bootpack-ts ");
        crate::console::write_str(label);
        crate::console::write_str(" ");
        crate::console::write_hex(t, 1);
        crate::console::write_str(" ");
        crate::console::write_dec(n);
        crate::console::write_str("\r\n");
    }
    #[cfg(not(feature = "timestamps"))]
    let _ = (label, n);
}

/// Whether marks are printed.
pub const ENABLED: bool = cfg!(feature = "timestamps");
