//! Disk reads that fail on purpose, through QEMU's blkdebug driver.

use std::path::{Path, PathBuf};

/// The `-drive file=` value of a blkdebug drive over `image` whose reads
/// covering `lba` fail with EIO, once or always; its rule file is written
/// in `dir`.
pub fn file(dir: &Path, image: &Path, lba: u64, once: bool) -> String {
    let rules: PathBuf = dir.join(format!("blkdebug-{lba}-{once}.conf"));
    std::fs::write(
        &rules,
        format!(
            "[inject-error]\nevent = \"read_aio\"\nerrno = \"5\"\nsector = \"{lba}\"\nonce = \"{}\"\n",
            if once { "on" } else { "off" }
        ),
    )
    .unwrap();
    format!("blkdebug:{}:{}", rules.display(), image.display())
}

/// QEMU arguments for such a drive as the first IDE disk.
pub fn ide_drive(dir: &Path, image: &Path, lba: u64, once: bool) -> Vec<String> {
    vec![
        "-drive".into(),
        format!("file={},format=raw,if=ide", file(dir, image, lba, once)),
    ]
}
