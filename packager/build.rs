//! Builds the two bare-metal crates for x86_64-unknown-none and embeds them:
//! the bootloader (boot/loader, flattened into stage 1 and stage 2) and the
//! demo kernel (tests/kernel, also the kernel the boot tests use).
//!
//! They are separate cargo invocations because they are built for another
//! target with other flags; they keep their own target directory so they
//! never contend for the outer build's lock.

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

use goblin::elf::program_header::PT_LOAD;
use goblin::elf::Elf;

fn main() {
    let manifest = PathBuf::from(env::var("CARGO_MANIFEST_DIR").unwrap());
    let root = manifest.parent().unwrap().to_path_buf();
    let out = PathBuf::from(env::var("OUT_DIR").unwrap());
    let target_dir = env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"))
        .join("bare-metal");
    for p in [
        "boot/loader",
        "boot/proto",
        "tests/kernel",
        "linker",
        "rust-toolchain.toml",
    ] {
        println!("cargo:rerun-if-changed={}", root.join(p).display());
    }

    // BOOTPACK_LOADER_FEATURES=timestamps embeds a loader that prints time
    // marks (boot/loader/src/ts.rs), for profiling; build such a bootpack
    // into its own target directory so the normal one stays silent.
    println!("cargo:rerun-if-env-changed=BOOTPACK_LOADER_FEATURES");
    let features = env::var("BOOTPACK_LOADER_FEATURES").unwrap_or_default();
    let loader = build(
        &root.join("boot/loader"),
        "bootpack-loader",
        &target_dir,
        &features,
    );
    let (stage1, stage2) = flatten_loader(&loader);
    std::fs::write(out.join("stage1.bin"), stage1).unwrap();
    std::fs::write(out.join("stage2.bin"), stage2).unwrap();
    println!("cargo:rustc-env=BOOTPACK_LOADER_ELF={}", loader.display());

    let kernel = build(
        &root.join("tests/kernel"),
        "bootpack-test-kernel",
        &target_dir,
        "",
    );
    std::fs::copy(&kernel, out.join("demo-kernel.elf")).unwrap();
}

/// `cargo build --release` of a bare-metal crate with `features` (comma-
/// separated, may be empty); returns its ELF.
fn build(dir: &Path, bin: &str, target_dir: &Path, features: &str) -> PathBuf {
    let cargo = env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(dir)
        .args([
            "build",
            "--release",
            "--locked",
            "--target",
            "x86_64-unknown-none",
            "--target-dir",
        ])
        .arg(target_dir)
        .args(["--features", features])
        // Flags meant for the host build must not leak into the bare-metal
        // one; the crate's own .cargo/config.toml sets what it needs.
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_BUILD_TARGET")
        .env_remove("CARGO_BUILD_RUSTFLAGS")
        .env_remove("CARGO_TARGET_DIR");
    let status = cmd
        .status()
        .unwrap_or_else(|e| panic!("cannot run cargo for {}: {e}", dir.display()));
    if !status.success() {
        panic!(
            "building {} for x86_64-unknown-none failed; is the target installed? (rustup target add x86_64-unknown-none)",
            dir.display()
        );
    }
    target_dir.join("x86_64-unknown-none/release").join(bin)
}

/// Lays the loader's loaded segments out by physical address from 0x7C00:
/// the first 512 bytes are stage 1, the rest stage 2.
fn flatten_loader(elf_path: &Path) -> (Vec<u8>, Vec<u8>) {
    const BASE: u64 = 0x7C00;
    let bytes = std::fs::read(elf_path).unwrap();
    let elf = Elf::parse(&bytes).expect("the loader ELF parses");
    let mut image = Vec::new();
    for ph in elf
        .program_headers
        .iter()
        .filter(|p| p.p_type == PT_LOAD && p.p_filesz > 0)
    {
        assert!(
            ph.p_paddr >= BASE,
            "loader segment at {:#x} lies below 0x7C00",
            ph.p_paddr
        );
        let at = (ph.p_paddr - BASE) as usize;
        let end = at + ph.p_filesz as usize;
        if image.len() < end {
            image.resize(end, 0);
        }
        image[at..end].copy_from_slice(&bytes[ph.p_offset as usize..][..ph.p_filesz as usize]);
    }
    assert!(image.len() > 512, "the loader image has no stage 2");
    let stage2 = image.split_off(512);
    (image, stage2)
}
