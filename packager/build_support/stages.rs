//! Builds bootpack's bare-metal parts from source: the bootloader
//! (boot/bios, flattened into stage 1 and stage 2) and the demo kernel
//! (tests/kernel). Shared by packager/build.rs, `cargo run -p xtask --
//! stages` (which refreshes packager/prebuilt/) and the reproducibility test,
//! so all three build the same way.
//!
//! The builds are separate cargo invocations for x86_64-unknown-none. Their
//! output depends only on the sources and the pinned toolchain: the paths
//! of the checkout, the cargo home and the Rust sysroot are remapped to
//! fixed names (`--remap-path-prefix`), so panic locations embedded in the
//! binaries read `/bootpack/boot/bios/src/...`, `/cargo/registry/...`,
//! whoever builds them and wherever.

#![allow(dead_code)] // each includer uses a different part

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

use goblin::elf::program_header::PT_LOAD;
use goblin::elf::Elf;

/// The bare-metal target the boot stages are built for.
pub const TARGET: &str = "x86_64-unknown-none";
/// The target the UEFI loader (boot/uefi) is built for.
pub const UEFI_TARGET: &str = "x86_64-unknown-uefi";

/// The files of the repository the stages are built from (relative to the
/// repository root); a change to any of them can change the stages.
pub const SOURCES: &[&str] = &[
    "boot/handoff",
    "boot/bios",
    "boot/proto",
    "packager/src/proto",
    "boot/uefi",
    "boot/Cargo.toml",
    "boot/Cargo.lock",
    "tests/kernel",
    "linker",
    "rust-toolchain.toml",
];

/// The built parts.
pub struct Stages {
    /// Stage 1: the MBR boot code (512 bytes).
    pub stage1: Vec<u8>,
    /// Stage 2, for the gap before the first partition.
    pub stage2: Vec<u8>,
    /// The loader's ELF, with symbols for gdb.
    pub loader_elf: PathBuf,
    /// The demo kernel (ELF).
    pub demo_kernel: Vec<u8>,
    /// The UEFI loader (PE32+), `\\EFI\\BOOT\\BOOTX64.EFI` on the ESP.
    pub bootx64_efi: Vec<u8>,
}

/// Whether `root` is a bootpack repository with the boot sources beside the
/// packager (false for the crate as published).
pub fn is_repository(root: &Path) -> bool {
    root.join("boot/bios/Cargo.toml").is_file() && root.join("tests/kernel/Cargo.toml").is_file()
}

/// The sysroot of the toolchain `cargo` runs (the one rust-toolchain.toml
/// pins when run in the repository).
fn sysroot(cargo: &str, dir: &Path) -> Option<PathBuf> {
    // `cargo` and `rustc` come from the same toolchain: under rustup both are
    // proxies that honour rust-toolchain.toml in `dir` and RUSTUP_TOOLCHAIN.
    let rustc = Path::new(cargo).with_file_name("rustc");
    let rustc = if rustc.is_file() {
        rustc
    } else {
        PathBuf::from("rustc")
    };
    let out = Command::new(rustc)
        .current_dir(dir)
        .args(["--print", "sysroot"])
        .env_remove("RUSTC")
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    Some(PathBuf::from(String::from_utf8(out.stdout).ok()?.trim()))
}

/// Whether the toolchain that builds in `root` has the bare-metal target's
/// standard library installed. When the sysroot cannot be found out the
/// answer is yes: the build then says what is wrong instead of silently
/// using other stages.
pub fn target_installed(root: &Path) -> bool {
    target_installed_for(root, TARGET) && target_installed_for(root, UEFI_TARGET)
}

/// Whether the toolchain that builds in `root` has `target`'s standard
/// library installed (yes when that cannot be found out, as above).
pub fn target_installed_for(root: &Path, target: &str) -> bool {
    let cargo = env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    sysroot(&cargo, &root.join("boot/bios"))
        .map(|s| s.join("lib/rustlib").join(target).join("lib").is_dir())
        .unwrap_or(true)
}

/// The cargo home (where the registry sources are unpacked).
fn cargo_home() -> Option<PathBuf> {
    env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| env::var_os("HOME").map(|h| Path::new(&h).join(".cargo")))
}

/// A TOML basic string holding `s`.
fn toml_string(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The `--remap-path-prefix` flags that make the build independent of
/// where the checkout, the cargo home and the toolchain lie.
fn remap_flags(root: &Path, cargo: &str) -> Vec<String> {
    let mut pairs: Vec<(PathBuf, &str)> = Vec::new();
    if let Some(s) = sysroot(cargo, &root.join("boot/bios")) {
        pairs.push((s, "/rust"));
    }
    if let Some(h) = cargo_home() {
        pairs.push((h, "/cargo"));
    }
    pairs.push((root.to_path_buf(), "/bootpack"));
    // rustc applies the last matching remap; the checkout may lie inside
    // the cargo home (a git dependency) so it comes last. Each path is
    // remapped as given and as resolved (symbolic links), since cargo may
    // pass either.
    let mut flags = Vec::new();
    for (from, to) in pairs {
        let resolved = from.canonicalize().unwrap_or_else(|_| from.clone());
        if resolved != from {
            flags.push(format!("--remap-path-prefix={}={to}", resolved.display()));
        }
        flags.push(format!("--remap-path-prefix={}={to}", from.display()));
    }
    // boot/proto's modules are packager/src/proto's files, reached from
    // its root through `#[path]`: their panic locations would spell the
    // detour in every message of stage 2 (a sector of its 127).
    flags.push("--remap-path-prefix=proto/src/../../../packager/src/proto=proto/src".into());
    flags
}

/// Builds the loader (with `features`, comma-separated, may be empty) and
/// the demo kernel from the sources under `root`, into `target_dir`.
pub fn build(root: &Path, target_dir: &Path, features: &str) -> Result<Stages, String> {
    let loader = build_crate(
        root,
        &root.join("boot/bios"),
        "bootpack-bios",
        TARGET,
        target_dir,
        features,
    )?;
    let (stage1, stage2) = flatten_loader(&loader)?;
    let kernel = build_crate(
        root,
        &root.join("tests/kernel"),
        "bootpack-test-kernel",
        TARGET,
        target_dir,
        "",
    )?;
    let demo_kernel =
        std::fs::read(&kernel).map_err(|e| format!("{}: cannot read: {e}", kernel.display()))?;
    let efi = build_crate(
        root,
        &root.join("boot/uefi"),
        "bootpack-uefi.efi",
        UEFI_TARGET,
        target_dir,
        "",
    )?;
    let bootx64_efi =
        std::fs::read(&efi).map_err(|e| format!("{}: cannot read: {e}", efi.display()))?;
    Ok(Stages {
        stage1,
        stage2,
        loader_elf: loader,
        demo_kernel,
        bootx64_efi,
    })
}

/// `cargo build --release` of a bare-metal crate for `target`; returns
/// its binary.
fn build_crate(
    root: &Path,
    dir: &Path,
    bin: &str,
    target: &str,
    target_dir: &Path,
    features: &str,
) -> Result<PathBuf, String> {
    let cargo = env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let flags: Vec<String> = remap_flags(root, &cargo)
        .iter()
        .map(|f| toml_string(f))
        .collect();
    let mut cmd = Command::new(&cargo);
    cmd.current_dir(dir)
        .args(["build", "--release", "--locked", "--target", target])
        // Appended to the crate's own rustflags (.cargo/config.toml), which
        // RUSTFLAGS would replace.
        .arg("--config")
        .arg(format!("target.{target}.rustflags=[{}]", flags.join(",")))
        .arg("--target-dir")
        .arg(target_dir)
        .args(["--features", features])
        // Flags meant for the host build must not leak into the bare-metal
        // one; the crate's own .cargo/config.toml sets what it needs.
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_BUILD_TARGET")
        .env_remove("CARGO_BUILD_RUSTFLAGS")
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("RUSTC")
        .env_remove("RUSTC_WRAPPER")
        .env_remove("RUSTC_WORKSPACE_WRAPPER");
    let status = cmd
        .status()
        .map_err(|e| format!("cannot run {cargo} for {}: {e}", dir.display()))?;
    if !status.success() {
        return Err(format!(
            "building {} for {target} failed (is the target installed? rustup target add {target})",
            dir.display()
        ));
    }
    Ok(target_dir.join(target).join("release").join(bin))
}

/// Lays the loader's loaded segments out by physical address from 0x7C00:
/// the first 512 bytes are stage 1, the rest stage 2.
pub fn flatten_loader(elf_path: &Path) -> Result<(Vec<u8>, Vec<u8>), String> {
    const BASE: u64 = 0x7C00;
    let bytes =
        std::fs::read(elf_path).map_err(|e| format!("{}: cannot read: {e}", elf_path.display()))?;
    let elf = Elf::parse(&bytes).map_err(|e| format!("{}: {e}", elf_path.display()))?;
    let mut image = Vec::new();
    for ph in elf
        .program_headers
        .iter()
        .filter(|p| p.p_type == PT_LOAD && p.p_filesz > 0)
    {
        if ph.p_paddr < BASE {
            return Err(format!(
                "{}: loader segment at {:#x} lies below 0x7C00",
                elf_path.display(),
                ph.p_paddr
            ));
        }
        let at = (ph.p_paddr - BASE) as usize;
        let end = at + ph.p_filesz as usize;
        if image.len() < end {
            image.resize(end, 0);
        }
        image[at..end].copy_from_slice(&bytes[ph.p_offset as usize..][..ph.p_filesz as usize]);
    }
    if image.len() <= 512 {
        return Err(format!(
            "{}: the loader image has no stage 2",
            elf_path.display()
        ));
    }
    let stage2 = image.split_off(512);
    Ok((image, stage2))
}
