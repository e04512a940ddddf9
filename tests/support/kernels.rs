//! The test kernel in every shape a Multiboot loader meets.
//!
//! tests/kernel builds one ELF64 file in the Solo5 "virtio" shape (a.out
//! kludge, 64-bit e_entry, empty PT_LOAD at 0, PT_TLS). The same code is
//! repackaged here as an ELF32 kernel without the kludge (loaded by its
//! program headers) and as a flat binary with the kludge, so the loader's
//! three paths run the same checks.

use bootpack::bootloader::DEMO_KERNEL;
use bootpack_proto::multiboot;

use super::elf::{self, Seg};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shape {
    /// ELF64, header flags 0x10003, e_entry is 64-bit code.
    Solo5Elf64,
    /// ELF32 (EM_386), header flags 0x3: loaded by program headers.
    Elf32,
    /// The loaded bytes alone, header flags 0x10003.
    Flat,
}

/// Marks the kernel's payload descriptor: four u64 words
/// [PAYLOAD_MARKER, addr, len, checksum] that the kernel reads at run time.
pub const PAYLOAD_MARKER: u64 = 0x444C_5950_4150_5042;

/// Extra data the kernel checks itself.
pub struct Payload {
    pub addr: u64,
    pub data: Vec<u8>,
}

impl Payload {
    /// `len` pseudo-random bytes (a multiple of 8) to load at `addr`.
    pub fn random(addr: u64, len: usize, seed: u64) -> Payload {
        assert!(len.is_multiple_of(8));
        let mut x = seed | 1;
        let mut data = Vec::with_capacity(len);
        for _ in 0..len / 8 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            data.extend_from_slice(&x.to_le_bytes());
        }
        Payload { addr, data }
    }

    /// The checksum the kernel computes over the loaded bytes.
    pub fn checksum(&self) -> u64 {
        self.data
            .chunks_exact(8)
            .fold(0xcbf2_9ce4_8422_2325u64, |h, w| {
                (h ^ u64::from_le_bytes(w.try_into().unwrap())).wrapping_mul(0x100_0000_01b3)
            })
    }
}

/// Where the demo kernel loads and what its header says.
pub struct Image {
    pub dest: u64,
    pub bytes: Vec<u8>,
    pub mem_size: u64,
    pub entry: u32,
    /// Offset of the Multiboot header in `bytes`.
    pub header: usize,
}

/// The loaded region of the demo kernel (per its a.out kludge), with the
/// payload descriptor filled in.
pub fn loaded_image(payload: Option<&Payload>) -> Image {
    let plan =
        bootpack::kernel::plan(DEMO_KERNEL).expect("the demo kernel is a valid Multiboot kernel");
    assert_eq!(
        plan.segments.len(),
        1,
        "the demo kernel loads as one a.out kludge region"
    );
    let seg = &plan.segments[0];
    let mut bytes = DEMO_KERNEL[seg.file.clone()].to_vec();
    let marker = PAYLOAD_MARKER.to_le_bytes();
    let at = bytes
        .windows(8)
        .position(|w| w == marker)
        .expect("the demo kernel has a payload descriptor");
    let (addr, len, sum) =
        payload.map_or((0, 0, 0), |p| (p.addr, p.data.len() as u64, p.checksum()));
    for (i, v) in [addr, len, sum].into_iter().enumerate() {
        bytes[at + 8 + 8 * i..at + 16 + 8 * i].copy_from_slice(&v.to_le_bytes());
    }
    Image {
        dest: seg.dest,
        bytes,
        mem_size: seg.mem_size,
        entry: plan.entry,
        header: plan.header_offset - seg.file.start,
    }
}

/// The kernel file of the given shape. A payload needs the ELF32 shape
/// (the kludge shapes load one contiguous region only).
pub fn build(shape: Shape, payload: Option<&Payload>) -> Vec<u8> {
    let img = loaded_image(payload);
    match shape {
        Shape::Solo5Elf64 => {
            assert!(payload.is_none());
            DEMO_KERNEL.to_vec()
        }
        Shape::Flat => {
            assert!(payload.is_none());
            img.bytes
        }
        Shape::Elf32 => {
            let mut bytes = img.bytes;
            // Without bit 16 the header's address fields are ignored and
            // the program headers rule.
            multiboot::write(&mut bytes, img.header, 0x3, None);
            let mut segs = vec![Seg::load(img.dest, bytes, img.mem_size)];
            if let Some(p) = payload {
                segs.push(Seg::load(p.addr, p.data.clone(), p.data.len() as u64));
            }
            elf::write(false, img.entry as u64, &segs)
        }
    }
}
