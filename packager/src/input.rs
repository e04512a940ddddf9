//! Reading an input file (the kernel) whole, as cheaply as the system
//! allows.
//!
//! Large regular files are mapped, not read: a build touches every byte of
//! the kernel once to check it and once to write it into the image, and a
//! read into a fresh heap buffer adds a page fault, a zeroing and a copy
//! per page (for a 32 MiB kernel that was about half of the build's time).
//! Small files, and anything that is not a regular file (a pipe, a
//! character device), are read into memory as before.

use memmap2::{Mmap, MmapOptions};
use std::fs::File;
use std::io::{self, Read};
use std::ops::Deref;
use std::path::Path;

/// Below this, reading is as cheap as mapping.
const MAP_THRESHOLD: u64 = 1 << 20;

/// A whole input file's bytes.
pub enum Input {
    Mapped(Mmap),
    Read(Vec<u8>),
}

impl Deref for Input {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            Input::Mapped(m) => m,
            Input::Read(v) => v,
        }
    }
}

/// Reads (or maps) the file at `path`.
pub fn read(path: &Path) -> io::Result<Input> {
    let mut file = File::open(path)?;
    let meta = file.metadata()?;
    if meta.is_file() && meta.len() >= MAP_THRESHOLD {
        // SAFETY: the mapping is read-only and private to this process. If
        // another process changes the file while bootpack runs, the bytes
        // seen may change under us: the image then carries a payload that
        // does not match its checksum and stage 2 refuses it at boot with
        // "checksum mismatch" (it never boots a torn kernel); truncating
        // the file meanwhile can end bootpack with SIGBUS. Both need a
        // concurrent writer to the input, which any tool reading the file
        // in pieces would also be exposed to. `populate` maps every page
        // up front in one call instead of faulting them in one by one.
        let map = unsafe { MmapOptions::new().populate().map(&file)? };
        return Ok(Input::Mapped(map));
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    file.read_to_end(&mut bytes)?;
    Ok(Input::Read(bytes))
}

/// Reads at most the first `n` bytes of the file at `path`.
pub fn read_prefix(path: &Path, n: usize) -> io::Result<Vec<u8>> {
    let mut bytes = Vec::with_capacity(n);
    File::open(path)?.take(n as u64).read_to_end(&mut bytes)?;
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_and_large_files_read_back_whole() {
        let dir = std::env::temp_dir().join(format!("bootpack-input-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        for len in [0usize, 1, 4096, MAP_THRESHOLD as usize + 7] {
            let data: Vec<u8> = (0..len).map(|i| (i * 31 + 7) as u8).collect();
            let path = dir.join(format!("f{len}"));
            std::fs::write(&path, &data).unwrap();
            let got = read(&path).unwrap();
            assert_eq!(&got[..], &data[..]);
            assert_eq!(
                matches!(got, Input::Mapped(_)),
                len as u64 >= MAP_THRESHOLD,
                "len {len}"
            );
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_missing_file_is_an_error() {
        assert!(read(Path::new("/nonexistent/bootpack-input")).is_err());
    }
}
