//! Provides the bare-metal parts bootpack embeds: stage 1, stage 2, the
//! UEFI loader (BOOTX64.EFI) and the demo kernel (also the kernel the boot tests use).
//!
//! In the repository, with the x86_64-unknown-none target installed, they
//! are built from boot/ and tests/kernel (build_support/stages.rs), so a
//! change there is always what the tests boot. Otherwise (the published
//! crate, or no bare-metal target) the committed binaries in prebuilt/ are
//! embedded; `cargo run -p xtask -- stages --check` proves they are what
//! the sources build. Nothing is written outside the target directory.

use std::env;
use std::path::{Path, PathBuf};

#[path = "build_support/stages.rs"]
mod stages;

fn main() {
    let manifest = PathBuf::from(env::var("CARGO_MANIFEST_DIR").unwrap());
    let root = manifest.parent().unwrap().to_path_buf();
    let out = PathBuf::from(env::var("OUT_DIR").unwrap());
    let prebuilt = manifest.join("prebuilt");
    println!("cargo:rerun-if-changed=build_support/stages.rs");
    println!("cargo:rerun-if-changed=prebuilt");
    // BOOTPACK_LOADER_FEATURES=timestamps embeds a loader that prints time
    // marks (boot/bios/src/ts.rs), for profiling; build such a bootpack
    // into its own target directory so the normal one stays silent.
    println!("cargo:rerun-if-env-changed=BOOTPACK_LOADER_FEATURES");
    println!("cargo:rerun-if-env-changed=BOOTPACK_PREBUILT");
    let features = env::var("BOOTPACK_LOADER_FEATURES").unwrap_or_default();
    // BOOTPACK_PREBUILT=1 embeds the committed binaries even in the
    // repository (to test what the published crate ships).
    let force_prebuilt = env::var_os("BOOTPACK_PREBUILT").is_some_and(|v| v == "1");

    let in_repo = stages::is_repository(&root);
    if in_repo {
        for p in stages::SOURCES {
            println!("cargo:rerun-if-changed={}", root.join(p).display());
        }
    }
    let from_source = in_repo
        && !force_prebuilt
        && {
            let installed = stages::target_installed(&root);
            if !installed {
                println!(
                "cargo:warning=x86_64-unknown-none or x86_64-unknown-uefi is not installed: embedding the committed boot stages (packager/prebuilt), not boot/ as it is now; `rustup target add x86_64-unknown-none x86_64-unknown-uefi` builds them from source"
            );
            }
            installed
        };
    if from_source {
        let target_dir = target_dir(&out).join("bare-metal");
        let built = stages::build(&root, &target_dir, &features).unwrap_or_else(|e| panic!("{e}"));
        write(&out.join("stage1.bin"), &built.stage1);
        write(&out.join("stage2.bin"), &built.stage2);
        write(&out.join("demo-kernel.elf"), &built.demo_kernel);
        write(&out.join("bootx64.efi"), &built.bootx64_efi);
        println!(
            "cargo:rustc-env=BOOTPACK_LOADER_ELF={}",
            built.loader_elf.display()
        );
    } else {
        if !features.is_empty() {
            panic!(
                "BOOTPACK_LOADER_FEATURES={features} needs the loader built from source: build in the bootpack repository with the x86_64-unknown-none target installed"
            );
        }
        for f in ["stage1.bin", "stage2.bin", "demo-kernel.elf", "bootx64.efi"] {
            let bytes = std::fs::read(prebuilt.join(f))
                .unwrap_or_else(|e| panic!("{}: {e}", prebuilt.join(f).display()));
            write(&out.join(f), &bytes);
        }
        println!("cargo:rustc-env=BOOTPACK_LOADER_ELF=");
    }
}

/// The target directory this build runs in (the nearest ancestor of OUT_DIR
/// that cargo marked with CACHEDIR.TAG), so the bare-metal build is shared
/// by the debug and release builds and never lands in the source tree.
fn target_dir(out: &Path) -> PathBuf {
    out.ancestors()
        .find(|d| d.join("CACHEDIR.TAG").is_file())
        .unwrap_or(out)
        .to_path_buf()
}

fn write(path: &Path, bytes: &[u8]) {
    std::fs::write(path, bytes).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
}
