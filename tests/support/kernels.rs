//! The test kernel in every shape a Multiboot loader meets.
//!
//! tests/kernel builds one ELF64 file in the Solo5 "virtio" shape (a.out
//! kludge, 64-bit e_entry, empty PT_LOAD at 0, PT_TLS) with both a
//! Multiboot 1 and a Multiboot 2 header. The same code is repackaged here as
//! ELF32 and ELF64 kernels without the kludge or address tag (loaded by
//! their program headers) and as a flat binary with the kludge, each with
//! the Multiboot 1 header, the Multiboot 2 header or both, so the loader's
//! paths run the same checks.

use bootpack::bootloader::DEMO_KERNEL;
use bootpack::proto::{mb1_header, mb2_header};

use super::elf::{self, Seg};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shape {
    /// ELF64, Multiboot 1 header flags 0x10003 / Multiboot 2 address and
    /// entry address tags; e_entry is 64-bit code.
    Solo5Elf64,
    /// ELF32 (EM_386), Multiboot 1 header flags 0x3 / no address or entry
    /// tag: loaded by program headers, entered at e_entry.
    Elf32,
    /// ELF64 (EM_X86_64) like Elf32: loaded by program headers, entered at
    /// e_entry (32-bit code, as a Multiboot kernel's entry is).
    Elf64,
    /// The loaded bytes alone, Multiboot 1 flags 0x10003 / address tag.
    Flat,
}

/// Which Multiboot headers the kernel keeps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Headers {
    Mb1,
    Mb2,
    Both,
}

/// Marks the kernel's payload descriptor: four u64 words [PAYLOAD_MARKER,
/// addr, len, checksum] that the kernel reads at run time.
pub const PAYLOAD_MARKER: u64 = 0x444C_5950_4150_5042;
/// Marks the kernel's zero-region descriptor: [ZERO_MARKER, addr, len].
pub const ZERO_MARKER: u64 = 0x4C50_4F52_455A_5042;

/// Marks the kernel's mode descriptor: [MODE_MARKER, flags].
pub const MODE_MARKER: u64 = 0x4C46_4544_4F4D_5042;
/// Mode flag: the kernel loads its own null/code/data GDT and `iret`s
/// without reloading CS first thing at entry (tests/kernel/README.md).
pub const MODE_IRET: u64 = 1;

/// First bytes of the debug section of kernels with section headers: must
/// never be packed.
pub const DEBUG_MARKER: &[u8; 16] = b"BPTK-DEBUG-INFO!";

/// Extra data the kernel checks itself.
pub struct Payload {
    pub addr: u64,
    pub data: Vec<u8>,
}

/// `len` pseudo-random bytes.
pub fn random_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    let mut data = Vec::with_capacity(len + 8);
    while data.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        data.extend_from_slice(&x.to_le_bytes());
    }
    data.truncate(len);
    data
}

/// The hash the kernel computes over bytes (`bytes_hash` in
/// tests/kernel): FNV-1a-style over little-endian u64 words, the last
/// partial word zero-padded.
pub fn bytes_hash(data: &[u8]) -> u64 {
    data.chunks(8).fold(0xcbf2_9ce4_8422_2325u64, |h, w| {
        let mut word = [0u8; 8];
        word[..w.len()].copy_from_slice(w);
        (h ^ u64::from_le_bytes(word)).wrapping_mul(0x100_0000_01b3)
    })
}

impl Payload {
    /// `len` pseudo-random bytes (a multiple of 8) to load at `addr`.
    pub fn random(addr: u64, len: usize, seed: u64) -> Payload {
        assert!(len.is_multiple_of(8));
        Payload {
            addr,
            data: random_bytes(len, seed),
        }
    }

    /// The checksum the kernel computes over the loaded bytes.
    pub fn checksum(&self) -> u64 {
        bytes_hash(&self.data)
    }
}

/// Where the demo kernel loads and what its headers say.
pub struct Image {
    pub dest: u64,
    pub bytes: Vec<u8>,
    pub mem_size: u64,
    pub entry: u32,
    /// Offsets of the Multiboot 1 and 2 headers in `bytes`.
    pub header: usize,
    pub header2: usize,
}

/// The loaded region of the demo kernel (per its a.out kludge), with the
/// payload and zero-region descriptors filled in.
pub fn loaded_image(payload: Option<&Payload>, zero: Option<(u64, u64)>) -> Image {
    let plan = bootpack::kernel::plan_for(DEMO_KERNEL, Some(bootpack::Protocol::Multiboot1))
        .expect("the demo kernel is a valid Multiboot kernel");
    assert_eq!(
        plan.segments.len(),
        1,
        "the demo kernel loads as one a.out kludge region"
    );
    let seg = &plan.segments[0];
    let mut bytes = DEMO_KERNEL[seg.file.clone()].to_vec();
    let (addr, len, sum) =
        payload.map_or((0, 0, 0), |p| (p.addr, p.data.len() as u64, p.checksum()));
    patch_descriptor(&mut bytes, PAYLOAD_MARKER, &[addr, len, sum]);
    let (zero_addr, zero_len) = zero.unwrap_or((0, 0));
    patch_descriptor(&mut bytes, ZERO_MARKER, &[zero_addr, zero_len]);
    let header = mb1_header::find(&bytes).expect("Multiboot 1 header").offset;
    let header2 = mb2_header::find(&bytes).expect("Multiboot 2 header").offset;
    Image {
        dest: seg.dest,
        bytes,
        mem_size: seg.mem_size,
        entry: plan.entry,
        header,
        header2,
    }
}

/// Writes `words` after the 8-byte `marker`.
fn patch_descriptor(bytes: &mut [u8], marker: u64, words: &[u64]) {
    let marker = marker.to_le_bytes();
    let at = bytes
        .windows(8)
        .position(|w| w == marker)
        .expect("the demo kernel has the descriptor");
    for (i, v) in words.iter().enumerate() {
        bytes[at + 8 + 8 * i..at + 16 + 8 * i].copy_from_slice(&v.to_le_bytes());
    }
}

/// What to build.
#[derive(Clone, Copy)]
pub struct Spec<'a> {
    pub shape: Shape,
    pub headers: Headers,
    /// Data the kernel hashes itself (ELF shapes: its own PT_LOAD).
    pub payload: Option<&'a Payload>,
    /// ELF shapes: a PT_LOAD of (addr, len) with no file bytes that the
    /// kernel checks is all zero.
    pub bss: Option<(u64, u64)>,
    /// ELF shapes: a section header table, with a non-loaded debug section
    /// of this many bytes (starting with DEBUG_MARKER) in the file.
    pub debug_section: Option<usize>,
    /// Mode flags for the kernel's mode descriptor ([`MODE_IRET`]).
    pub mode: u64,
    /// ELF shapes: enter through a 5-byte `jmp rel32` to the real entry in
    /// a segment of its own at this address (an entry point below 1 MiB).
    pub entry_stub: Option<u64>,
}

impl Spec<'_> {
    pub fn new(shape: Shape, headers: Headers) -> Self {
        Spec {
            shape,
            headers,
            payload: None,
            bss: None,
            debug_section: None,
            mode: 0,
            entry_stub: None,
        }
    }
}

/// The Multiboot 2 header of the ELF shapes: information requests as the
/// kernel's own header, no address or entry tag.
fn write_elf_header2(bytes: &mut [u8], offset: usize) {
    let words = |w: &[u32]| w.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>();
    let required = words(&[1, 2, 3, 4, 5, 6, 21]);
    let optional = words(&[9, 14, 15]);
    let console = words(&[0]);
    mb2_header::write(
        bytes,
        offset,
        &[
            (1, 0, &required),
            (1, 1, &optional),
            (4, 0, &console),
            (6, 0, &[]),
        ],
    );
}

/// The kernel file of the given shape with both headers, as the test
/// kernel is built (Multiboot 2 unless Multiboot 1 is asked for). A payload
/// needs an ELF shape (the kludge shapes load one contiguous region only).
pub fn build(shape: Shape, payload: Option<&Payload>) -> Vec<u8> {
    build_spec(&Spec {
        payload,
        ..Spec::new(shape, Headers::Both)
    })
}

/// The kernel file as `spec` says.
pub fn build_spec(spec: &Spec) -> Vec<u8> {
    let img = loaded_image(spec.payload, spec.bss);
    let mut bytes = img.bytes;
    patch_descriptor(&mut bytes, MODE_MARKER, &[spec.mode]);
    let elf_shape = matches!(spec.shape, Shape::Elf32 | Shape::Elf64);
    if elf_shape {
        // Without bit 16 the header's address fields are ignored and the
        // program headers rule; likewise without an address tag.
        mb1_header::write(&mut bytes, img.header, 0x3, None);
        write_elf_header2(&mut bytes, img.header2);
    } else {
        assert!(spec.payload.is_none() && spec.bss.is_none());
        assert!(spec.debug_section.is_none() && spec.entry_stub.is_none());
    }
    match spec.headers {
        Headers::Mb1 => bytes[img.header2..img.header2 + 4].fill(0),
        Headers::Mb2 => bytes[img.header..img.header + 12].fill(0),
        Headers::Both => {}
    }
    match spec.shape {
        Shape::Solo5Elf64 => {
            let mut file = DEMO_KERNEL.to_vec();
            let plan =
                bootpack::kernel::plan_for(DEMO_KERNEL, Some(bootpack::Protocol::Multiboot1))
                    .unwrap();
            let start = plan.segments[0].file.start;
            // The payload descriptor stays unpatched (no payload allowed).
            file[start..start + bytes.len()].copy_from_slice(&bytes);
            file
        }
        Shape::Flat => bytes,
        Shape::Elf32 | Shape::Elf64 => {
            let mut segs = vec![Seg::load(img.dest, bytes.clone(), img.mem_size)];
            if let Some(p) = spec.payload {
                segs.push(Seg::load(p.addr, p.data.clone(), p.data.len() as u64));
            }
            if let Some((addr, len)) = spec.bss {
                segs.push(Seg::load(addr, Vec::new(), len));
            }
            let mut entry = img.entry as u64;
            if let Some(at) = spec.entry_stub {
                // jmp rel32: changes no register and no flag, so the real
                // entry sees exactly what the loader handed over.
                let rel = (entry as i64 - (at as i64 + 5)) as i32;
                let mut stub = vec![0xE9];
                stub.extend_from_slice(&rel.to_le_bytes());
                stub.resize(16, 0xCC);
                segs.push(Seg::load(at, stub, 16));
                entry = at;
            }
            let is64 = spec.shape == Shape::Elf64;
            let mut file = elf::write(is64, entry, &segs);
            if let Some(debug_len) = spec.debug_section {
                add_sections(&mut file, is64, img.dest, bytes.len() as u64, debug_len);
            }
            file
        }
    }
}

/// An ELF32 Multiboot 1 kernel (loaded by its program headers) whose
/// payload is loaded by one PT_LOAD per piece: `pieces` are (offset,
/// length) ranges of `payload.data`, each loaded at `payload.addr +
/// offset`, in any order; payload bytes in no piece are loaded by nothing
/// (they must be zero: the kernel hashes the whole payload and expects the
/// untouched RAM there). `zero` is the kernel's zero-region check.
pub fn build_pieces(
    payload: &Payload,
    pieces: &[(usize, usize)],
    zero: Option<(u64, u64)>,
) -> Vec<u8> {
    let img = loaded_image(Some(payload), zero);
    let mut bytes = img.bytes;
    mb1_header::write(&mut bytes, img.header, 0x3, None);
    bytes[img.header2..img.header2 + 4].fill(0);
    let mut segs = vec![Seg::load(img.dest, bytes, img.mem_size)];
    for &(off, len) in pieces {
        let data = payload.data[off..off + len].to_vec();
        segs.push(Seg::load(payload.addr + off as u64, data, len as u64));
    }
    elf::write(false, img.entry as u64, &segs)
}

/// Appends a debug section's bytes, a section name table and a section
/// header table (null, .text over the image, .debug_info, .shstrtab) to an
/// ELF file from elf::write, and points the ELF header at them.
fn add_sections(file: &mut Vec<u8>, is64: bool, text_addr: u64, text_size: u64, debug_len: usize) {
    let mut debug = random_bytes(debug_len.max(16), 0xdeb6);
    debug[..16].copy_from_slice(DEBUG_MARKER);
    let align = |f: &mut Vec<u8>| f.resize(f.len().div_ceil(8) * 8, 0);
    align(file);
    let debug_off = file.len() as u64;
    file.extend_from_slice(&debug);
    let names = b"\0.text\0.debug_info\0.shstrtab\0";
    let names_off = file.len() as u64;
    file.extend_from_slice(names);
    align(file);
    let shoff = file.len() as u64;
    // (name, type, flags, addr, offset, size)
    let sections: [(u32, u32, u64, u64, u64, u64); 4] = [
        (0, 0, 0, 0, 0, 0),
        (1, 1, 0x6, text_addr, 0x1000, text_size),
        (7, 1, 0, 0, debug_off, debug.len() as u64),
        (19, 3, 0, 0, names_off, names.len() as u64),
    ];
    let entsize = if is64 { 64 } else { 40 };
    for (name, ty, flags, addr, offset, size) in sections {
        let mut sh = vec![0u8; entsize];
        let mut put =
            |at: usize, v: u64, n: usize| sh[at..at + n].copy_from_slice(&v.to_le_bytes()[..n]);
        put(0, name as u64, 4);
        put(4, ty as u64, 4);
        if is64 {
            put(8, flags, 8);
            put(16, addr, 8);
            put(24, offset, 8);
            put(32, size, 8);
            put(48, 1, 8); // sh_addralign
        } else {
            put(8, flags, 4);
            put(12, addr, 4);
            put(16, offset, 4);
            put(20, size, 4);
            put(32, 1, 4);
        }
        file.extend_from_slice(&sh);
    }
    let put = |f: &mut Vec<u8>, at: usize, v: u64, n: usize| {
        f[at..at + n].copy_from_slice(&v.to_le_bytes()[..n])
    };
    if is64 {
        put(file, 40, shoff, 8);
        put(file, 58, entsize as u64, 2);
        put(file, 60, 4, 2);
        put(file, 62, 3, 2);
    } else {
        put(file, 32, shoff, 4);
        put(file, 46, entsize as u64, 2);
        put(file, 48, 4, 2);
        put(file, 50, 3, 2);
    }
}

/// The section header table of an ELF file: (num, entsize, shstrndx,
/// bytes), None without one.
pub fn section_headers(file: &[u8]) -> Option<(u32, u32, u32, Vec<u8>)> {
    let is64 = file[4] == 2;
    let get = |at: usize, n: usize| {
        let mut b = [0u8; 8];
        b[..n].copy_from_slice(&file[at..at + n]);
        u64::from_le_bytes(b)
    };
    let (shoff, entsize, num, shstrndx) = if is64 {
        (get(40, 8), get(58, 2), get(60, 2), get(62, 2))
    } else {
        (get(32, 4), get(46, 2), get(48, 2), get(50, 2))
    };
    if num == 0 || shoff == 0 {
        return None;
    }
    let bytes = file[shoff as usize..(shoff + num * entsize) as usize].to_vec();
    Some((num as u32, entsize as u32, shstrndx as u32, bytes))
}

/// The test kernel (ELF32, Multiboot 2 only) with a framebuffer tag
/// (width, height, depth; optional or not) and a console flags tag.
pub fn mb2_framebuffer_kernel(fb: [u32; 3], optional: bool, console_flags: u32) -> Vec<u8> {
    let words = |w: &[u32]| w.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>();
    let mut file = build_spec(&Spec::new(Shape::Elf32, Headers::Mb2));
    let h = mb2_header::find(&file).unwrap();
    let required = words(&[1, 2, 3, 4, 5, 6, 21]);
    let optional_req = words(&[9, 14, 15]);
    let console = words(&[console_flags]);
    let fb_body = words(&fb);
    let len = mb2_header::write(
        &mut file,
        h.offset,
        &[
            (1, 0, &required),
            (1, 1, &optional_req),
            (4, 0, &console),
            (5, optional as u16, &fb_body),
            (6, 0, &[]),
        ],
    );
    // The ELF shapes' header is shorter than the test kernel's own, whose
    // room (its .multiboot2 section) it still has.
    let room = mb2_header::find(DEMO_KERNEL).unwrap().length;
    assert!(
        len <= room as usize,
        "the new header fits the old one's room"
    );
    assert!(mb2_header::find(&file).unwrap().framebuffer.is_some());
    file
}
