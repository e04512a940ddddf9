//! Removing the temporary file of an image write when the process is
//! interrupted (Ctrl-C, `kill`), so no `.NAME.bootpack-PID.tmp` is left
//! beside the output.
//!
//! [`image::write_atomically`](crate::image::write_atomically) announces
//! its temporary file here; a signal handler, installed by
//! [`remove_temporary_on_signal`], unlinks it and ends the process as the
//! signal would have.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::ptr::null_mut;
use std::sync::atomic::{AtomicPtr, Ordering};

/// The temporary file being written, as a NUL-terminated path, or null.
/// Strings are leaked, never freed: the handler may read one at any moment,
/// and a process writes few images.
static TEMPORARY: AtomicPtr<libc::c_char> = AtomicPtr::new(null_mut());

/// Announces the temporary file being written (None: none any more).
pub(crate) fn set_temporary(path: Option<&Path>) {
    let ptr = match path.and_then(|p| CString::new(p.as_os_str().as_bytes()).ok()) {
        Some(c) => c.into_raw(),
        None => null_mut(),
    };
    TEMPORARY.store(ptr, Ordering::SeqCst);
}

extern "C" fn on_signal(signal: libc::c_int) {
    let path = TEMPORARY.load(Ordering::SeqCst);
    // SAFETY: unlink, signal and raise are async-signal-safe; `path` is
    // null or a leaked, never-freed NUL-terminated string. Restoring the
    // default action and raising the signal again ends the process with
    // the status the signal gives (130 for SIGINT in a shell).
    unsafe {
        if !path.is_null() {
            libc::unlink(path);
        }
        libc::signal(signal, libc::SIG_DFL);
        libc::raise(signal);
    }
}

/// Installs handlers for SIGINT, SIGTERM and SIGHUP that remove the
/// temporary file of an image write in progress and then end the process
/// as the signal would. For programs (the `bootpack` command calls it
/// first thing); a program with its own handlers can leave it out and
/// clean up `.NAME.bootpack-PID.tmp` files itself.
pub fn remove_temporary_on_signal() {
    for signal in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
        // SAFETY: `on_signal` only calls async-signal-safe functions and
        // reads an atomic; replacing the default action of these signals
        // changes nothing else in the process.
        unsafe {
            libc::signal(signal, on_signal as *const () as libc::sighandler_t);
        }
    }
}
