//! Link flags of the UEFI loader.

fn main() {
    // lld-link stamps the PE header with the link time unless told not
    // to; /Brepro puts a hash of the content there instead, so the same
    // sources give the same BOOTX64.EFI.
    println!("cargo:rustc-link-arg=/Brepro");
    // No PDB and no debug directory: the PDB's GUID, which the PE would
    // carry, hashes the object files' paths, which differ between
    // checkouts.
    println!("cargo:rustc-link-arg=/DEBUG:NONE");
}
