//! Shared by the integration tests: kernel variants, an ELF writer, QEMU
//! runs and the test kernel's report.
#![allow(dead_code)]

pub mod asm_image;
pub mod blkdebug;
pub mod dirty_rom;
pub mod efi_probe;
pub mod elf;
pub mod kernels;
/// The BIOS loader's memory plan (where stage 2 keeps its buffers and the
/// Multiboot information), shared with the loader itself.
#[path = "../../boot/bios/src/memplan.rs"]
pub mod memplan;
pub mod qemu;
pub mod reloc_kernel;
pub mod report;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A fresh scratch directory for one test, removed when the test passes
/// and kept for a look when it fails.
pub struct Scratch(PathBuf);

impl std::ops::Deref for Scratch {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.0
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

pub fn scratch(name: &str) -> Scratch {
    let d = std::env::temp_dir().join(format!("bootpack-test-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    Scratch(d)
}

/// Runs the `bootpack` binary.
pub fn bootpack<I, S>(args: I) -> Output
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    Command::new(env!("CARGO_BIN_EXE_bootpack"))
        .args(args)
        .output()
        .expect("run bootpack")
}
