//! Links the kernel with linker/test-kernel.ld from the repository root.

use std::path::PathBuf;

fn main() {
    let manifest_dir = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").unwrap());
    let script = manifest_dir.join("../../linker/test-kernel.ld");
    let script = script
        .canonicalize()
        .unwrap_or_else(|e| panic!("cannot find linker script {}: {e}", script.display()));
    println!("cargo:rustc-link-arg-bins=-T{}", script.display());
    // The ELF header is written by hand in src/boot.rs (rust-lld cannot
    // emit the empty PT_LOAD the kernel must have), so lld writes raw bytes.
    println!("cargo:rustc-link-arg-bins=--oformat=binary");
    // Every input section must be placed by the script: an orphan section
    // placed after load_end_addr would silently not be loaded (the a.out
    // kludge loads only [load_addr, load_end_addr)).
    println!("cargo:rustc-link-arg-bins=--orphan-handling=error");
    println!("cargo:rerun-if-changed={}", script.display());
    println!("cargo:rerun-if-changed=build.rs");
}
