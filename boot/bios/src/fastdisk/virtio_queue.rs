//! The virtio PCI transport as SeaBIOS left it, and the one virtqueue
//! SeaBIOS set up on it, borrowed between two of SeaBIOS' own requests
//! (see the module doc of `virtio` for why and how).
//!
//! SeaBIOS (src/hw/virtio-pci.c, virtio-ring.c) drives a device through the
//! virtio 1.0 PCI capabilities when all four (common, notify, ISR, device
//! configuration) are present, else through the legacy I/O block in BAR0;
//! [`Queue::find`] follows the same rule so it talks to the device the way
//! SeaBIOS does.

use super::super::clock::Deadline;
use super::super::{pci, DmaError, TIMEOUT_MS};
use core::ptr::{read_volatile, write_volatile};
use core::sync::atomic::{fence, Ordering};
use x86_64::instructions::port::Port;

/// A register block of the device: memory-mapped below 4 GiB, or I/O
/// ports.
#[derive(Clone, Copy, Debug)]
pub enum Regs {
    Mem(u32),
    Io(u16),
}

impl Regs {
    fn from_bar(f: pci::Function, bar: u8, off: u32) -> Option<Regs> {
        if bar > 5 {
            return None;
        }
        match f.bar(bar)? {
            pci::Bar::Mem(base) => base.checked_add(off).map(Regs::Mem),
            pci::Bar::Io(base) => u16::try_from(off)
                .ok()
                .and_then(|o| base.checked_add(o))
                .map(Regs::Io),
        }
    }

    fn at(self, off: u32) -> Regs {
        match self {
            Regs::Mem(a) => Regs::Mem(a.wrapping_add(off)),
            Regs::Io(p) => Regs::Io(p.wrapping_add(off as u16)),
        }
    }

    // SAFETY (for the accessors below): a Regs value is only built in
    // Queue::find from the BARs and capabilities of the virtio function the
    // EDD information or the bus scan named, which SeaBIOS has enabled;
    // memory BARs lie below 4 GiB (pci::Function::bar), identity-mapped
    // and uncached as the BIOS set the MTRRs. Reading these registers has
    // no side effects except the ISR, which only deasserts the interrupt
    // line (SeaBIOS reads it after every request too).

    pub fn read8(self, off: u32) -> u8 {
        // SAFETY: see above.
        unsafe {
            match self.at(off) {
                Regs::Mem(a) => read_volatile(a as usize as *const u8),
                Regs::Io(p) => Port::<u8>::new(p).read(),
            }
        }
    }

    pub fn read16(self, off: u32) -> u16 {
        // SAFETY: see above.
        unsafe {
            match self.at(off) {
                Regs::Mem(a) => read_volatile(a as usize as *const u16),
                Regs::Io(p) => Port::<u16>::new(p).read(),
            }
        }
    }

    pub fn read32(self, off: u32) -> u32 {
        // SAFETY: see above.
        unsafe {
            match self.at(off) {
                Regs::Mem(a) => read_volatile(a as usize as *const u32),
                Regs::Io(p) => Port::<u32>::new(p).read(),
            }
        }
    }

    /// Writes a 16-bit register: only the queue select (restored
    /// afterwards) and the queue notification are written.
    fn write16(self, off: u32, v: u16) {
        // SAFETY: see above; the callers write only the queue select
        // register (put back as found) and the notification register.
        unsafe {
            match self.at(off) {
                Regs::Mem(a) => write_volatile(a as usize as *mut u16, v),
                Regs::Io(p) => Port::<u16>::new(p).write(v),
            }
        }
    }
}

/// Device status bits (virtio 1.0, 2.1).
const DRIVER_OK: u8 = 4;
const NEEDS_RESET: u8 = 0x40;
const FAILED: u8 = 0x80;

/// Descriptor flags.
const DESC_NEXT: u16 = 1;
const DESC_WRITE: u16 = 2;

/// How far past the end of the used ring SeaBIOS' `struct vring` copy is
/// looked for: its `struct vring_virtqueue` holds the rings sized for its
/// MAX_QUEUE_NUM (128 today, 16 in old releases) followed by the copy, so
/// the gap is (MAX_QUEUE_NUM - num) * 8 bytes.
const BOOKS_SCAN: u32 = 0x400;

// Identity-mapped RAM accessors for the rings. SAFETY (for all four): the
// rings are SeaBIOS' live virtqueue, in RAM below 4 GiB that stage 2
// identity-maps, found in Queue::find; the device and SeaBIOS are the only
// other users and neither runs concurrently with a CPU access except the
// device writing the used ring and the buffers, which is why every access
// is volatile.
fn r16(a: u32) -> u16 {
    // SAFETY: see above.
    unsafe { read_volatile(a as usize as *const u16) }
}
fn r32(a: u32) -> u32 {
    // SAFETY: see above.
    unsafe { read_volatile(a as usize as *const u32) }
}
fn w16(a: u32, v: u16) {
    // SAFETY: see above.
    unsafe { write_volatile(a as usize as *mut u16, v) }
}
fn w32(a: u32, v: u32) {
    // SAFETY: see above.
    unsafe { write_volatile(a as usize as *mut u32, v) }
}

/// One buffer of a request: physical address, length, device-writable.
pub type Buf = (u32, u32, bool);

/// SeaBIOS' virtqueue on one device, borrowed while SeaBIOS is idle.
#[derive(Clone, Copy, Debug)]
pub struct Queue {
    /// The queue's index (0 for virtio-blk, 2 for virtio-scsi's first
    /// request queue), the value written to the notification register.
    index: u16,
    num: u16,
    desc: u32,
    avail: u32,
    used: u32,
    /// SeaBIOS' `free_head`, followed by its `last_used_idx` (u16 each).
    books: u32,
    notify: Regs,
    isr: Regs,
    /// The device-specific configuration block.
    pub config: Regs,
    /// Requests added but not yet kicked, and SeaBIOS' free list head
    /// before the first of them.
    added: u16,
    first_free: u16,
    /// The used index that says every request kicked is done.
    pending: Option<u16>,
}

impl Queue {
    /// SeaBIOS' virtqueue `index` on virtio function `f`, if SeaBIOS has
    /// the device running (DRIVER_OK, the queue enabled) and its
    /// bookkeeping is where and as expected.
    pub fn find(f: pci::Function, index: u16) -> Option<Queue> {
        // Bus mastering: SeaBIOS turned it on if it drives the device
        // (decoding is checked by reading the registers below).
        if f.read32(4) & 0x4 == 0 {
            return None;
        }
        let mut caps: [Option<(u8, u32)>; 5] = [None; 5];
        let mut mult = 0;
        for (at, id) in f.capabilities() {
            if id == 0x11 && f.read32(at) & (1 << 31) != 0 {
                // MSI-X enabled would move the legacy configuration block;
                // SeaBIOS never enables it.
                return None;
            }
            let kind = (f.read32(at) >> 24) as usize;
            if id == 0x09 && (1..=4).contains(&kind) && caps[kind].is_none() {
                caps[kind] = Some((f.read32(at + 4) as u8, f.read32(at + 8)));
                if kind == 2 {
                    mult = f.read32(at + 16);
                }
            }
        }
        let (num, desc, avail, used, notify, isr, config);
        if let [_, Some(c), Some(n), Some(i), Some(d)] = caps {
            // Modern: the common configuration structure (virtio 1.0,
            // 4.1.4.3) holds the queue's addresses.
            let common = Regs::from_bar(f, c.0, c.1)?;
            let status = common.read8(0x14);
            if status & (DRIVER_OK | NEEDS_RESET | FAILED) != DRIVER_OK {
                return None;
            }
            let old = common.read16(0x16);
            common.write16(0x16, index);
            num = common.read16(0x18);
            let enabled = common.read16(0x1C);
            let off = u32::from(common.read16(0x1E));
            let lo = [0x20, 0x28, 0x30].map(|o| common.read32(o));
            let hi = [0x24, 0x2C, 0x34].map(|o| common.read32(o));
            common.write16(0x16, old);
            if enabled != 1 || hi != [0; 3] {
                return None;
            }
            [desc, avail, used] = lo;
            notify = Regs::from_bar(f, n.0, n.1)?.at(off.checked_mul(mult)?);
            isr = Regs::from_bar(f, i.0, i.1)?;
            config = Regs::from_bar(f, d.0, d.1)?;
        } else {
            // Legacy (virtio 0.9.5): the I/O block in BAR0; the queue is
            // one page-aligned area given by its page frame number.
            let pci::Bar::Io(io) = f.bar(0)? else {
                return None;
            };
            let regs = Regs::Io(io);
            if regs.read8(0x12) & (DRIVER_OK | FAILED) != DRIVER_OK {
                return None;
            }
            let old = regs.read16(0x0E);
            regs.write16(0x0E, index);
            num = regs.read16(0x0C);
            let pfn = regs.read32(0x08);
            regs.write16(0x0E, old);
            if pfn == 0 || pfn >= 1 << 20 {
                return None;
            }
            desc = pfn << 12;
            avail = desc + 16 * u32::from(num);
            used = (avail + 4 + 2 * u32::from(num) + 0xFFF) & !0xFFF;
            notify = regs.at(0x10);
            isr = regs.at(0x13);
            config = regs.at(0x14);
        }
        // At least the three descriptors of one request; ring addresses
        // aligned as the spec requires and below 4 GiB.
        if !(3..=32768).contains(&num)
            || desc % 16 != 0
            || avail % 2 != 0
            || used % 4 != 0
            || used >= u32::MAX - 0x10_0000
        {
            return None;
        }
        // SeaBIOS' `struct vring` (num, desc, avail, used as 32-bit values)
        // follows the queue memory in its `struct vring_virtqueue`; after
        // it come free_head and last_used_idx.
        let from = used + 4 + 8 * u32::from(num);
        let want = [u32::from(num), desc, avail, used];
        let at = (from..from + BOOKS_SCAN)
            .step_by(4)
            .find(|&a| (0..4).all(|k| r32(a + 4 * k) == want[k as usize]))?;
        let q = Queue {
            index,
            num,
            desc,
            avail,
            used,
            books: at + 16,
            notify,
            isr,
            config,
            added: 0,
            first_free: 0,
            pending: None,
        };
        q.idle().then_some(q)
    }

    /// The queue size.
    pub fn num(&self) -> u16 {
        self.num
    }

    /// Whether no request is in flight and SeaBIOS has taken every
    /// completion: its avail index, the device's used index and SeaBIOS'
    /// last_used_idx all agree, and its free list head is a descriptor.
    fn idle(&self) -> bool {
        let used = r16(self.used + 2);
        r16(self.avail + 2) == used && r16(self.books + 2) == used && r16(self.books) < self.num
    }

    /// Puts one request (device-readable buffers first) on the queue the
    /// way SeaBIOS' vring_add_buf would: its descriptors come off the head
    /// of SeaBIOS' free list. [`Queue::kick`] hands the requests added so
    /// far to the device; returns the request's first descriptor.
    ///
    /// # Safety
    /// The buffers must be RAM below 4 GiB that nothing else uses until
    /// [`Queue::wait`] returns.
    pub unsafe fn add(&mut self, bufs: &[Buf]) -> Result<u16, DmaError> {
        if self.pending.is_some() || (self.added == 0 && !self.idle()) {
            return Err(DmaError);
        }
        let head = r16(self.books);
        if self.added == 0 {
            self.first_free = head;
        }
        let mut i = head;
        for (k, &(addr, len, write)) in bufs.iter().enumerate() {
            let d = self.desc + 16 * u32::from(i);
            let more = k + 1 < bufs.len();
            w32(d, addr);
            w32(d + 4, 0);
            w32(d + 8, len);
            w16(
                d + 12,
                if more { DESC_NEXT } else { 0 } | if write { DESC_WRITE } else { 0 },
            );
            // Like SeaBIOS: follow the free list, and leave its head at
            // the descriptor after the ones now in use.
            i = r16(d + 14);
            if i >= self.num {
                // A broken free list: give back the descriptors taken for
                // the requests not kicked yet (SeaBIOS' books as before).
                w16(self.books, self.first_free);
                self.added = 0;
                return Err(DmaError);
            }
        }
        w16(self.books, i);
        let idx = r16(self.avail + 2).wrapping_add(self.added);
        w16(self.avail + 4 + 2 * u32::from(idx % self.num), head);
        self.added += 1;
        Ok(head)
    }

    /// Publishes the requests added since the last kick and notifies the
    /// device, as SeaBIOS' vring_kick does.
    pub fn kick(&mut self) {
        let idx = r16(self.avail + 2).wrapping_add(self.added);
        self.added = 0;
        // The descriptors, the ring entries and the request headers must
        // be in memory before the device can see the new index, and the
        // index before the notification makes it look. x86 keeps stores in
        // order and TCG runs the device's notify handler after the guest's
        // stores; the fence keeps the compiler (and any weaker host) from
        // reordering.
        fence(Ordering::SeqCst);
        w16(self.avail + 2, idx);
        fence(Ordering::SeqCst);
        self.notify.write16(0, self.index);
        self.pending = Some(idx);
    }

    /// Waits (bounded) until the device has used every request kicked, then
    /// takes the completions back as SeaBIOS' vring_get_buf and
    /// vring_detach would, so the queue is left as SeaBIOS expects it.
    /// Returns the first descriptor of the last completion.
    pub fn wait(&mut self) -> Result<u16, DmaError> {
        let want = self.pending.ok_or(DmaError)?;
        let mut deadline = Deadline::after_ms(TIMEOUT_MS);
        while r16(self.used + 2) != want {
            if deadline.passed() {
                // Still in flight: SeaBIOS' books say so too (its free
                // list skips our descriptors), and `pending` stays set so
                // this queue is never used again.
                return Err(DmaError);
            }
            core::hint::spin_loop();
        }
        self.pending = None;
        // The device wrote the used elements, the buffers and the status
        // before the used index; reads after the index must not be
        // satisfied earlier.
        fence(Ordering::SeqCst);
        let mut last = r16(self.books + 2);
        let mut id = u32::MAX;
        while last != want {
            id = r32(self.used + 4 + 8 * u32::from(last % self.num));
            if id >= u32::from(self.num) {
                return Err(DmaError);
            }
            // vring_detach: the chain goes back to the head of the free
            // list (the end of a chain taken from the head of the list
            // still links to what followed it, so one request leaves the
            // list exactly as it was).
            let mut end = id;
            for _ in 0..self.num {
                let d = self.desc + 16 * end;
                if r16(d + 12) & DESC_NEXT == 0 {
                    break;
                }
                end = u32::from(r16(d + 14)) % u32::from(self.num);
            }
            w16(self.desc + 16 * end + 14, r16(self.books));
            w16(self.books, id as u16);
            last = last.wrapping_add(1);
            w16(self.books + 2, last);
        }
        self.isr.read8(0);
        Ok(id as u16)
    }
}
