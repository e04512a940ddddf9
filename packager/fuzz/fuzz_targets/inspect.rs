//! bootpack::inspect::inspect on an arbitrary image file (raw, VHD, gce
//! tar.gz, VMDK, qcow2 are told apart by their bytes): it reports problems,
//! it never panics.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::path::PathBuf;
use std::sync::OnceLock;

fn scratch() -> &'static PathBuf {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        let dir = if std::path::Path::new("/dev/shm").is_dir() {
            PathBuf::from("/dev/shm")
        } else {
            std::env::temp_dir()
        };
        dir.join(format!("bootpack-fuzz-inspect-{}.img", std::process::id()))
    })
}

fuzz_target!(|data: &[u8]| {
    let path = scratch();
    std::fs::write(path, data).expect("write the image to fuzz");
    let _ = bootpack::inspect::inspect(path);
});
