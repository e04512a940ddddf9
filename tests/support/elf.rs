//! A small ELF writer for test kernels: the boot tests derive ELF32 and
//! flat variants of the demo kernel, and the pack-error tests need broken
//! kernels that no linker would produce.

/// One program header to write.
#[derive(Clone, Debug)]
pub struct Seg {
    pub p_type: u32,
    pub paddr: u64,
    pub vaddr: u64,
    pub data: Vec<u8>,
    pub mem_size: u64,
    /// Write p_filesz as this instead of data.len() (to make truncated files).
    pub claimed_file_size: Option<u64>,
}

impl Seg {
    pub fn load(addr: u64, data: Vec<u8>, mem_size: u64) -> Self {
        Seg {
            p_type: 1,
            paddr: addr,
            vaddr: addr,
            data,
            mem_size,
            claimed_file_size: None,
        }
    }
}

/// Where each segment's data starts: page-aligned after the headers, so the
/// first segment starts at 0x1000 and a Multiboot header at its start lies
/// within the first 8 KiB of the file.
fn place(segs: &[Seg]) -> Vec<u64> {
    let mut at = 0x1000u64;
    segs.iter()
        .map(|s| {
            let here = at;
            at = (at + s.data.len() as u64).div_ceil(0x1000) * 0x1000;
            here
        })
        .collect()
}

/// Writes an x86 ELF EXEC file: ELF32 (EM_386) or ELF64 (EM_X86_64).
pub fn write(is64: bool, entry: u64, segs: &[Seg]) -> Vec<u8> {
    let offs = place(segs);
    let end = offs
        .iter()
        .zip(segs)
        .map(|(o, s)| o + s.data.len() as u64)
        .max()
        .unwrap_or(0x1000);
    let mut f = vec![0u8; end.max(0x1000) as usize];
    let (ehsize, phentsize) = if is64 { (64u16, 56u16) } else { (52, 32) };
    f[..4].copy_from_slice(b"\x7fELF");
    f[4] = if is64 { 2 } else { 1 };
    f[5] = 1; // little-endian
    f[6] = 1; // version
    let put = |f: &mut Vec<u8>, at: usize, v: u64, n: usize| {
        f[at..at + n].copy_from_slice(&v.to_le_bytes()[..n])
    };
    put(&mut f, 16, 2, 2); // ET_EXEC
    put(&mut f, 18, if is64 { 62 } else { 3 }, 2);
    put(&mut f, 20, 1, 4);
    let w = if is64 { 8 } else { 4 };
    put(&mut f, 24, entry, w);
    put(&mut f, 24 + w, ehsize as u64, w); // e_phoff right after the header
    put(&mut f, 24 + 2 * w, 0, w); // no section headers
    let o = 24 + 3 * w + 4; // after e_flags
    put(&mut f, o, ehsize as u64, 2);
    put(&mut f, o + 2, phentsize as u64, 2);
    put(&mut f, o + 4, segs.len() as u64, 2);
    assert!(ehsize as usize + segs.len() * phentsize as usize <= 0x1000);
    for (i, (s, &off)) in segs.iter().zip(&offs).enumerate() {
        let p = ehsize as usize + i * phentsize as usize;
        let filesz = s.claimed_file_size.unwrap_or(s.data.len() as u64);
        put(&mut f, p, s.p_type as u64, 4);
        if is64 {
            put(&mut f, p + 4, 7, 4); // RWX
            put(&mut f, p + 8, off, 8);
            put(&mut f, p + 16, s.vaddr, 8);
            put(&mut f, p + 24, s.paddr, 8);
            put(&mut f, p + 32, filesz, 8);
            put(&mut f, p + 40, s.mem_size, 8);
            put(&mut f, p + 48, 0x1000, 8);
        } else {
            put(&mut f, p + 4, off, 4);
            put(&mut f, p + 8, s.vaddr, 4);
            put(&mut f, p + 12, s.paddr, 4);
            put(&mut f, p + 16, filesz, 4);
            put(&mut f, p + 20, s.mem_size, 4);
            put(&mut f, p + 24, 7, 4);
            put(&mut f, p + 28, 0x1000, 4);
        }
        f[off as usize..off as usize + s.data.len()].copy_from_slice(&s.data);
    }
    f
}
