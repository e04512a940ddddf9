//! virtio-blk (1AF4:1001 transitional, 1AF4:1042 modern) and virtio-scsi
//! (1AF4:1004, 1AF4:1048) disks, read through the virtqueue SeaBIOS itself
//! set up: one descriptor chain per read, its data descriptor covering the
//! whole destination (up to MAX_SECTORS sectors), so a read costs one
//! notification instead of an INT 13h call per 127 sectors plus a bounce
//! copy.
//!
//! Why SeaBIOS' own queue. The BIOS keeps reading the same disk after stage
//! 2 takes over (records, small kernels, every fallback) and is
//! never told that someone else used the device. Resetting the device and
//! installing our own rings would leave SeaBIOS' rings and the device's
//! internal ring indices out of step for good (virtio 1.0 cannot set them
//! back); re-pointing the queue at other rings around each request has the
//! same problem, the device's indices moving on while SeaBIOS' stay; and a
//! device has only the one queue SeaBIOS uses unless it was given more. So
//! stage 2 changes no device state (it only writes the queue select
//! register in probe, and puts it back): it puts its requests on SeaBIOS'
//! queue exactly as SeaBIOS' vring_add_buf, vring_kick, vring_get_buf and
//! vring_detach (src/hw/virtio-ring.c) would, including the two counters
//! SeaBIOS keeps beside the rings (free_head and last_used_idx in its
//! `struct vring_virtqueue`). That struct is found right after the used
//! ring (SeaBIOS allocates rings and bookkeeping as one object) by its copy
//! of the ring addresses, which must equal what the device reports. Before
//! every request the avail index, the used index and SeaBIOS'
//! last_used_idx must agree (nothing in flight, every completion taken);
//! afterwards the queue is as if SeaBIOS had made the request itself: the
//! same indices and counters, the same free list; only the descriptors'
//! contents differ, and SeaBIOS rewrites those before each use. SeaBIOS
//! never runs while a request of ours is in flight: stage 2 is single-
//! threaded with interrupts off, and load.rs makes no INT 13h call between
//! start and finish. A request that times out stays on SeaBIOS' books as
//! in flight (its descriptors off the free list) and the fast path is off
//! for good (load.rs).
//!
//! Transport: SeaBIOS uses the virtio 1.0 PCI capabilities when all four
//! (common, notify, ISR, device configuration) are there, else the legacy
//! I/O block in BAR0, and so does stage 2 (QEMU 7.2 on q35 and pc presents
//! transitional devices with both, and SeaBIOS 1.16 takes the modern one;
//! `disable-modern=on` devices use the legacy one). A capability in a BAR
//! above 4 GiB (SeaBIOS then goes through the PCI configuration window)
//! means no fast path: stage 2 maps only the low 4 GiB.
//!
//! Recognised only when SeaBIOS drives the device (DRIVER_OK, the queue
//! enabled, its bookkeeping found and idle) and exactly one disk has the
//! EDD's sector count (512-byte sectors): for virtio-blk the device's
//! capacity, for virtio-scsi each target 0..=255 at LUN 0 asked with READ
//! CAPACITY(16), 32 commands in flight at a time (a boot disk at another
//! LUN, which SeaBIOS finds with REPORT LUNS, stays with the BIOS).
//! SeaBIOS' EDD information names the PCI function (interface path: bus,
//! device, function) but no target or LUN for virtio-scsi; only that
//! function is then considered, and it must be on bus 0. Without a PCI
//! path in the EDD information every such function on bus 0 is tried and
//! exactly one disk overall must match. load::setup_fast_read then compares
//! fast reads with the BIOS's before anything is trusted.
//!
//! Completion is polled (interrupts are off; SeaBIOS sets
//! VRING_AVAIL_F_NO_INTERRUPT) until fastdisk::TIMEOUT_MS; a bad virtio-blk status
//! byte, a virtio-scsi response other than VIRTIO_SCSI_S_OK with status
//! GOOD and no residue, a completion that is not ours, or a timeout is a
//! DmaError.

#[path = "virtio_queue.rs"]
mod queue;

use super::edd::Edd;
use super::{pci, DmaError, STAGE_ADDR};
use crate::memplan::FAST_DMA_ADDR;
use bootpack_proto::layout::SECTOR;
use core::ptr::{read_volatile, write_bytes, write_volatile};
use queue::{Buf, Queue};

/// Sectors per request: 4 MiB in one descriptor.
pub const MAX_SECTORS: u64 = 8192;

/// Request and response headers in the FAST_DMA region (stage 2's alone):
/// virtio-blk's request header (type, reserved, sector) and status byte;
/// per SCSI slot (one per command in flight) virtio-scsi's command request
/// (LUN, tag, task attribute, priority, CRN, a 32-byte CDB: the sizes QEMU
/// and SeaBIOS use), its response (sense length, residue, status
/// qualifier, status, response, 96 sense bytes) and READ CAPACITY(16)
/// data.
const BLK_HDR: u32 = FAST_DMA_ADDR;
const BLK_STATUS: u32 = FAST_DMA_ADDR + 0x10;
const SLOTS: u32 = FAST_DMA_ADDR + 0x1000;
const SLOT_LEN: u32 = 0x100;
const REQ: u32 = 0;
const REQ_LEN: u32 = 51;
const RESP: u32 = 0x40;
const RESP_LEN: u32 = 108;
const CAPACITY: u32 = 0xC0;
/// SCSI commands in flight at once while looking for the boot disk's
/// target (three descriptors each; SeaBIOS' queue has 128).
const BATCH: u16 = 32;
const _: () = assert!(SLOTS + BATCH as u32 * SLOT_LEN <= STAGE_ADDR);

#[derive(Clone, Copy, Debug)]
enum Kind {
    Blk,
    Scsi { target: u8 },
}

#[derive(Clone, Copy, Debug)]
pub struct Virtio {
    q: Queue,
    kind: Kind,
    /// The first descriptor of the read in flight.
    head: u16,
}

/// Whether `f` is a virtio-blk or virtio-scsi function: Some(true) for
/// SCSI.
fn virtio_kind(f: pci::Function) -> Option<bool> {
    match f.id() {
        0x1001_1AF4 | 0x1042_1AF4 => Some(false),
        0x1004_1AF4 | 0x1048_1AF4 => Some(true),
        _ => None,
    }
}

/// The bus 0 function the EDD information names: Some(None) if it gives
/// no PCI path (then any function may be the one), None if it names one
/// stage 2 cannot reach. SeaBIOS fills the EDD 3.0 path (host bus "PCI ",
/// interface path bus, device, function, channel) for virtio disks.
fn edd_function(edd: &Edd) -> Option<Option<pci::Function>> {
    let Some(p) = edd.device_path().filter(|p| p.host_bus == b"PCI ") else {
        return Some(None);
    };
    let [bus, dev, func] = [
        p.interface_path[0],
        p.interface_path[1],
        p.interface_path[2],
    ];
    (bus == 0 && dev < 32 && func < 8).then_some(Some(pci::Function { dev, func }))
}

impl Virtio {
    /// The boot disk, if it is a virtio disk identified as above.
    pub fn probe(edd: &Edd) -> Option<Virtio> {
        if edd.sectors == 0 || edd.sector_size() as u64 != SECTOR {
            return None;
        }
        let named = edd_function(edd)?;
        let mut found = None;
        let mut count = 0;
        for f in pci::functions().filter(|&f| named.is_none_or(|n| n == f)) {
            let Some(scsi) = virtio_kind(f) else {
                continue;
            };
            let Some(q) = Queue::find(f, if scsi { 2 } else { 0 }) else {
                continue;
            };
            let mut v = Virtio {
                q,
                kind: Kind::Blk,
                head: 0,
            };
            if !scsi {
                let cap = u64::from(q.config.read32(0)) | u64::from(q.config.read32(4)) << 32;
                if cap == edd.sectors {
                    count += 1;
                    found = Some(v);
                }
                continue;
            }
            // One read must fit the device's max_sectors (configuration
            // offset 8; QEMU: 65535). QEMU's max_target (offset 30) is 255;
            // SeaBIOS scans 0..=255.
            if u64::from(q.config.read32(8)) < MAX_SECTORS {
                continue;
            }
            let targets = q.config.read16(30).min(255) + 1;
            let batch = BATCH.min(q.num() / 3);
            let mut first = 0;
            while first < targets {
                let n = batch.min(targets - first);
                for t in v.capacities(first, n, edd.sectors)? {
                    v.kind = Kind::Scsi { target: t };
                    count += 1;
                    found = Some(v);
                }
                first += n;
            }
        }
        if count == 1 {
            found
        } else {
            None
        }
    }

    /// The targets among `first..first + n` whose LUN 0 has the EDD's
    /// sector count with 512-byte blocks, asked with READ CAPACITY(16)
    /// all at once; None if the queue fails.
    fn capacities(&mut self, first: u16, n: u16, sectors: u64) -> Option<impl Iterator<Item = u8>> {
        let mut cdb = [0u8; 16];
        cdb[0] = 0x9E;
        cdb[1] = 0x10;
        cdb[13] = 32;
        // A pending unit attention fails the first command once (CHECK
        // CONDITION); SeaBIOS has normally taken it already. Such targets
        // are asked again.
        let mut retry = [false; BATCH as usize];
        for pass in 0..2 {
            let mut any = false;
            for k in 0..n {
                if pass == 0 || retry[k as usize] {
                    // SAFETY: slot k's buffers lie in the FAST_DMA region,
                    // stage 2's alone.
                    unsafe { self.scsi(k, (first + k) as u8, &cdb, None) }.ok()?;
                    any = true;
                }
            }
            if !any {
                break;
            }
            self.q.kick();
            self.q.wait().ok()?;
            for k in 0..n {
                retry[k as usize] = slot(k).1 == [2, 0];
            }
        }
        Some((0..n).filter_map(move |k| {
            let (d, resp) = slot(k);
            let last = u64::from_be_bytes(d[0..8].try_into().unwrap());
            let len = u32::from_be_bytes(d[8..12].try_into().unwrap());
            (resp == [0, 0] && u64::from(len) == SECTOR && last.wrapping_add(1) == sectors)
                .then_some((first + k) as u8)
        }))
    }

    /// Adds a SCSI command for `target`'s LUN 0 with one data-in buffer
    /// (`data`, or slot `k`'s READ CAPACITY buffer), its headers in slot
    /// `k`.
    ///
    /// # Safety
    /// `data` must be RAM below 4 GiB that nothing else uses until the
    /// queue's wait returns.
    unsafe fn scsi(
        &mut self,
        k: u16,
        target: u8,
        cdb: &[u8; 16],
        data: Option<(u32, u32)>,
    ) -> Result<u16, DmaError> {
        let base = SLOTS + u32::from(k) * SLOT_LEN;
        let data = data.unwrap_or((base + CAPACITY, 32));
        // SAFETY: the slot lies in the FAST_DMA region, stage 2's alone
        // and checked usable RAM; no request using it is in flight (the
        // queue refuses to add while one is).
        unsafe {
            let req = (base + REQ) as usize as *mut u8;
            write_bytes(req, 0, REQ_LEN as usize);
            // Single-level LUN structure: 1, target, 0x40 | LUN high, LUN
            // low (virtio 1.0, 5.6.6.1).
            write_volatile(req, 1);
            write_volatile(req.add(1), target);
            write_volatile(req.add(2), 0x40);
            for (i, &b) in cdb.iter().enumerate() {
                write_volatile(req.add(19 + i), b);
            }
            // Response and status 0xFF until the device writes them.
            write_bytes((base + RESP) as usize as *mut u8, 0xFF, RESP_LEN as usize);
            write_bytes((base + CAPACITY) as usize as *mut u8, 0, 32);
        }
        let bufs: [Buf; 3] = [
            (base + REQ, REQ_LEN, false),
            (base + RESP, RESP_LEN, true),
            (data.0, data.1, true),
        ];
        // SAFETY: the headers as above; `data` is the caller's promise.
        unsafe { self.q.add(&bufs) }
    }

    /// Starts reading `sectors` (1..=MAX_SECTORS) sectors from `lba` to
    /// physical `dest`; [`Virtio::finish`] waits for it.
    ///
    /// # Safety
    /// `[dest, dest + sectors * 512)` must be RAM below 4 GiB that nothing
    /// else uses until `finish` returns, clear of the FAST_DMA region.
    pub unsafe fn start(&mut self, lba: u64, sectors: u64, dest: u64) -> Result<(), DmaError> {
        if sectors == 0 || sectors > MAX_SECTORS {
            return Err(DmaError);
        }
        let bytes = sectors * SECTOR;
        if dest + bytes > 1 << 32 {
            return Err(DmaError);
        }
        let data = (dest as u32, bytes as u32);
        self.head = match self.kind {
            Kind::Blk => {
                // SAFETY: the header and status byte lie in the FAST_DMA
                // region, stage 2's alone; no request is in flight.
                unsafe {
                    write_volatile(BLK_HDR as usize as *mut [u64; 2], [0, lba]);
                    write_volatile(BLK_STATUS as usize as *mut u8, 0xFF);
                }
                let bufs: [Buf; 3] = [
                    (BLK_HDR, 16, false),
                    (data.0, data.1, true),
                    (BLK_STATUS, 1, true),
                ];
                // SAFETY: the headers as above; the destination is the
                // caller's promise.
                unsafe { self.q.add(&bufs) }?
            }
            Kind::Scsi { target } => {
                // READ(16): LBA and transfer length big-endian.
                let mut cdb = [0u8; 16];
                cdb[0] = 0x88;
                cdb[2..10].copy_from_slice(&lba.to_be_bytes());
                cdb[10..14].copy_from_slice(&(sectors as u32).to_be_bytes());
                // SAFETY: the caller's promise, passed on.
                unsafe { self.scsi(0, target, &cdb, Some(data)) }?
            }
        };
        self.q.kick();
        Ok(())
    }

    /// Waits for the read [`Virtio::start`] began and checks its status.
    pub fn finish(&mut self) -> Result<(), DmaError> {
        if self.q.wait()? != self.head {
            return Err(DmaError);
        }
        let ok = match self.kind {
            // SAFETY: the request has completed: the device wrote the
            // status byte in FAST_DMA before the used index.
            Kind::Blk => unsafe { read_volatile(BLK_STATUS as usize as *const u8) == 0 },
            Kind::Scsi { .. } => {
                // SAFETY: as above, for slot 0's response header.
                let r = unsafe { read_volatile((SLOTS + RESP) as usize as *const [u8; 12]) };
                // Residue 0, status GOOD, response VIRTIO_SCSI_S_OK.
                r[4..8] == [0; 4] && r[10] == 0 && r[11] == 0
            }
        };
        if ok {
            Ok(())
        } else {
            Err(DmaError)
        }
    }
}

/// Slot `k`'s READ CAPACITY data and [status, response] bytes.
fn slot(k: u16) -> ([u8; 32], [u8; 2]) {
    let base = SLOTS + u32::from(k) * SLOT_LEN;
    // SAFETY: the slot lies in FAST_DMA, stage 2's alone; the command
    // using it has completed (the queue's wait returned).
    unsafe {
        (
            read_volatile((base + CAPACITY) as usize as *const [u8; 32]),
            read_volatile((base + RESP + 10) as usize as *const [u8; 2]),
        )
    }
}
