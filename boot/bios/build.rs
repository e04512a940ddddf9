//! Links the loader with linker/loader.ld from the repository root.

use std::path::PathBuf;

fn main() {
    let manifest_dir = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").unwrap());
    let script = manifest_dir.join("../../linker/loader.ld");
    let script = script
        .canonicalize()
        .unwrap_or_else(|e| panic!("cannot find linker script {}: {e}", script.display()));
    println!("cargo:rustc-link-arg-bins=-T{}", script.display());
    println!("cargo:rerun-if-changed={}", script.display());
    println!("cargo:rerun-if-changed=build.rs");
    // The assembly is pulled in with include_str!, which cargo tracks.
}
