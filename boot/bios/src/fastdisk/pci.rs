//! PCI configuration space through configuration mechanism #1 (ports
//! 0xCF8/0xCFC), which every PC chipset with PCI, and SeaBIOS itself, uses.

use x86_64::instructions::port::Port;

/// A function on PCI bus 0.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Function {
    pub dev: u8,
    pub func: u8,
}

fn addr(f: Function, off: u8) -> u32 {
    0x8000_0000 | (u32::from(f.dev) << 11) | (u32::from(f.func) << 8) | u32::from(off & 0xFC)
}

impl Function {
    /// The configuration dword at `off` (rounded down to a dword).
    pub fn read32(self, off: u8) -> u32 {
        // SAFETY: mechanism #1 ports; reading a configuration dword has no
        // side effects on any function (no read-to-clear registers in the
        // standard header or the capabilities read here).
        unsafe {
            Port::<u32>::new(0xCF8).write(addr(self, off));
            Port::<u32>::new(0xCFC).read()
        }
    }

    /// Vendor ID in the low half, device ID in the high half.
    pub fn id(self) -> u32 {
        self.read32(0)
    }

    /// Base class, subclass and programming interface (`0xCCSSPP`).
    pub fn class(self) -> u32 {
        self.read32(8) >> 8
    }

    /// Sets bits in the 16-bit command register (bit 0 I/O decoding, bit 1
    /// memory decoding, bit 2 bus mastering), keeping the others.
    pub fn enable(self, bits: u16) {
        let command = self.read32(4) as u16;
        // SAFETY: mechanism #1 ports; a 16-bit write to the command
        // register of a function the caller identified, which only turns
        // on the decoding and bus mastering it asks for (SeaBIOS leaves bus
        // mastering off on controllers it drives by port I/O).
        unsafe {
            Port::<u32>::new(0xCF8).write(addr(self, 4));
            Port::<u16>::new(0xCFC).write(command | bits);
        }
    }

    /// Base address register `n` (0..=5): an I/O port base or a 32-bit
    /// memory base below 4 GiB, or None if unset, or a 64-bit BAR placed
    /// at or above 4 GiB (stage 2 maps only the low 4 GiB).
    pub fn bar(self, n: u8) -> Option<Bar> {
        let off = 0x10 + 4 * n;
        let lo = self.read32(off);
        if lo & 1 == 1 {
            let base = (lo & 0xFFFC) as u16;
            return (base != 0).then_some(Bar::Io(base));
        }
        let high = if lo & 0x6 == 0x4 {
            self.read32(off + 4)
        } else {
            0
        };
        let base = lo & 0xFFFF_FFF0;
        (high == 0 && base != 0).then_some(Bar::Mem(base))
    }

    /// Walks the capability list: yields (offset, capability ID).
    pub fn capabilities(self) -> impl Iterator<Item = (u8, u8)> {
        let status = self.read32(4) >> 16;
        let mut next = if status & 0x10 != 0 {
            self.read32(0x34) as u8 & 0xFC
        } else {
            0
        };
        // At most 48 capabilities fit in the 192 bytes after the header;
        // the bound also ends a looping list.
        let mut left = 48;
        core::iter::from_fn(move || {
            if next < 0x40 || left == 0 {
                return None;
            }
            left -= 1;
            let at = next;
            let head = self.read32(at);
            next = (head >> 8) as u8 & 0xFC;
            Some((at, head as u8))
        })
    }
}

/// A decoded base address register.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Bar {
    Io(u16),
    Mem(u32),
}

/// Every function present on bus 0.
pub fn functions() -> impl Iterator<Item = Function> {
    (0..32u8)
        .flat_map(|dev| {
            // Only multi-function devices (header type bit 7 of function
            // 0) have functions 1-7.
            let f0 = Function { dev, func: 0 };
            let present = f0.id() != 0xFFFF_FFFF;
            let funcs = if !present {
                0
            } else if f0.read32(0x0C) & 0x80_0000 != 0 {
                8
            } else {
                1
            };
            (0..funcs).map(move |func| Function { dev, func })
        })
        .filter(|f| f.id() != 0xFFFF_FFFF)
}

/// The one function on bus 0 that `matches`, or None if there is none or
/// more than one (then stage 2 cannot know which one holds the boot disk).
pub fn only(matches: impl Fn(Function) -> bool) -> Option<Function> {
    let mut found = functions().filter(|&f| matches(f));
    let first = found.next()?;
    found.next().is_none().then_some(first)
}
