//! A Fletcher-style checksum over 64-bit little-endian words.
//!
//! Stage 2 checks every payload byte it loads while copying it out of the
//! BIOS bounce buffer, under TCG emulation, so the checksum must cost a few
//! instructions per 8 bytes: two wrapping additions per word. It is not a
//! cryptographic hash; it catches flipped, lost, zeroed and reordered data,
//! which is what a damaged disk or a bad transfer produces.
//!
//! `a` starts at 1 so that trailing zero words still change `b`.

/// Streaming state. Feed whole 8-byte words with [`Fletcher64::update`]; the
/// final partial word of a stream goes through [`Fletcher64::update_tail`],
/// which pads it with zero bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fletcher64 {
    a: u64,
    b: u64,
}

impl Default for Fletcher64 {
    fn default() -> Self {
        Self::new()
    }
}

impl Fletcher64 {
    pub const fn new() -> Self {
        Fletcher64 { a: 1, b: 0 }
    }

    /// Adds whole words. Panics (in debug) if `data.len()` is not a multiple
    /// of 8: callers split off the tail themselves.
    #[inline]
    pub fn update(&mut self, data: &[u8]) {
        debug_assert!(data.len().is_multiple_of(8));
        let (mut a, mut b) = (self.a, self.b);
        // Eight words per loop turn, written out: under TCG every guest
        // instruction costs, and a loop per word spends as many on its
        // counter, compare and branch as on the two additions.
        let mut blocks = data.chunks_exact(64);
        for block in &mut blocks {
            let block: &[u8; 64] = block.try_into().unwrap();
            let word = |i: usize| u64::from_le_bytes(block[8 * i..8 * i + 8].try_into().unwrap());
            a = a.wrapping_add(word(0));
            b = b.wrapping_add(a);
            a = a.wrapping_add(word(1));
            b = b.wrapping_add(a);
            a = a.wrapping_add(word(2));
            b = b.wrapping_add(a);
            a = a.wrapping_add(word(3));
            b = b.wrapping_add(a);
            a = a.wrapping_add(word(4));
            b = b.wrapping_add(a);
            a = a.wrapping_add(word(5));
            b = b.wrapping_add(a);
            a = a.wrapping_add(word(6));
            b = b.wrapping_add(a);
            a = a.wrapping_add(word(7));
            b = b.wrapping_add(a);
        }
        for w in blocks.remainder().chunks_exact(8) {
            a = a.wrapping_add(u64::from_le_bytes(w.try_into().unwrap()));
            b = b.wrapping_add(a);
        }
        self.a = a;
        self.b = b;
    }

    /// Adds a final partial word (fewer than 8 bytes), zero-padded. Does
    /// nothing for an empty tail.
    pub fn update_tail(&mut self, tail: &[u8]) {
        debug_assert!(tail.len() < 8);
        if tail.is_empty() {
            return;
        }
        let mut w = [0u8; 8];
        w[..tail.len()].copy_from_slice(tail);
        self.update(&w);
    }

    /// Adds a whole byte string of any length as one padded stream.
    pub fn update_padded(&mut self, data: &[u8]) {
        let whole = data.len() & !7;
        self.update(&data[..whole]);
        self.update_tail(&data[whole..]);
    }

    pub fn finish(&self) -> u64 {
        self.b ^ self.a.rotate_left(32)
    }
}

/// The checksum of one byte string, zero-padded to whole words.
pub fn fletcher64(data: &[u8]) -> u64 {
    let mut f = Fletcher64::new();
    f.update_padded(data);
    f.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streaming_matches_one_shot() {
        let data: [u8; 1003] = core::array::from_fn(|i| (i * 7 + 3) as u8);
        let mut f = Fletcher64::new();
        f.update(&data[..512]);
        f.update(&data[512..992]);
        f.update(&data[992..1000]);
        f.update_tail(&data[1000..]);
        assert_eq!(f.finish(), fletcher64(&data));
    }

    #[test]
    fn detects_flips_zeroing_swaps_and_trailing_zeros() {
        let data: [u8; 64] = core::array::from_fn(|i| i as u8);
        let base = fletcher64(&data);
        let mut flipped = data;
        flipped[17] ^= 0x10;
        assert_ne!(fletcher64(&flipped), base);
        let mut swapped = data;
        swapped.copy_within(0..8, 56);
        swapped[..8].copy_from_slice(&data[56..]);
        assert_ne!(fletcher64(&swapped), base);
        assert_ne!(fletcher64(&[0u8; 64]), fletcher64(&[0u8; 72]));
        assert_ne!(fletcher64(&[0u8; 64]), fletcher64(&[]));
    }
}
