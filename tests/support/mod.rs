//! Shared by the integration tests: kernel variants, an ELF writer, QEMU
//! runs and the test kernel's report.
#![allow(dead_code)]

pub mod elf;
pub mod kernels;
pub mod qemu;
pub mod report;

use std::path::PathBuf;
use std::process::{Command, Output};

/// A fresh scratch directory for one test.
pub fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("bootpack-test-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
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
