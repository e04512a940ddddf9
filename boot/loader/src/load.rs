//! Finding the kernel partition, reading the configuration record,
//! loading the kernel's segments and placing and loading the modules.

use crate::disk::{self, sectors_for};
use crate::fail::{self, fail, Dec, Hex, Hex2, Str};
use crate::fastdisk;
use crate::ts;
use bootpack_proto::checksum::Fletcher64;
use bootpack_proto::e820::{self, E820Entry};
use bootpack_proto::layout::{
    BOUNCE_ADDR, BOUNCE_LEN, FAST_DMA_ADDR, FAST_DMA_LEN, FAST_VERIFY_LEN, INFO_ARENA_ADDR,
    INFO_ARENA_LEN, PARTITION_TYPE, RECORD_BUF_ADDR, RECORD_BUF_LEN, SECTOR, SECTORS_PER_READ,
};
use bootpack_proto::mbinfo::ModuleInfo;
use bootpack_proto::place;
use bootpack_proto::record::{self, Record, RecordError, FLAG_NO_FAST_READ, MAX_MODULES};
use core::{ptr, slice};

/// The kernel partition, from the MBR's partition table.
#[derive(Clone, Copy, Debug)]
pub struct Partition {
    /// 0-based index in the MBR.
    pub index: u8,
    pub start: u32,
    pub sectors: u32,
}

/// Sectors per fast read: small enough that the checksum of one chunk
/// overlaps the transfer of the next for most of a kernel, big enough that
/// the per-command cost stays negligible (1 MiB).
const FAST_CHUNK_SECTORS: u64 = 2048;

/// Reads with the BIOS or reports the failure and halts.
fn read_or_fail(drive: u8, lba: u64, sectors: u64, addr: u32) {
    if let Err(e) = disk::read(drive, lba, sectors, addr) {
        fail(&[
            Str("BIOS disk read failed (drive "),
            Hex2(e.drive),
            Str(", LBA "),
            Hex(e.lba),
            Str(", status "),
            Hex2(e.status),
            Str(")"),
        ]);
    }
}

/// A view of `len` bytes of physical memory below 1 MiB.
///
/// # Safety
/// The range must be RAM this stage owns (the bounce or record buffer) and
/// nothing may write it while the slice is alive.
unsafe fn phys(addr: u32, len: usize) -> &'static [u8] {
    // SAFETY: identity-mapped RAM per the caller's promise; addr != 0.
    unsafe { slice::from_raw_parts(addr as usize as *const u8, len) }
}

/// The first partition of type PARTITION_TYPE in the MBR, read afresh from
/// LBA 0 (the copy at 0x7C00 may not be the disk's if another boot manager
/// chain-loaded us).
pub fn find_partition(drive: u8) -> Partition {
    read_or_fail(drive, 0, 1, BOUNCE_ADDR);
    // SAFETY: the bounce buffer holds the sector just read; nothing else
    // writes it while `mbr` is used.
    let mbr = unsafe { phys(BOUNCE_ADDR, SECTOR as usize) };
    for index in 0..4u8 {
        let e = &mbr[0x1BE + 16 * index as usize..][..16];
        if e[4] == PARTITION_TYPE {
            return Partition {
                index,
                start: u32::from_le_bytes([e[8], e[9], e[10], e[11]]),
                sectors: u32::from_le_bytes([e[12], e[13], e[14], e[15]]),
            };
        }
    }
    fail(&[
        Str("no bootpack partition (type "),
        Hex2(PARTITION_TYPE),
        Str(") in the MBR"),
    ]);
}

fn record_fail(e: RecordError) -> ! {
    fail::begin();
    fail::put(&[Str("configuration record: "), Str(e.describe())]);
    match e {
        RecordError::BadChecksum { stored, computed } => fail::put(&[
            Str(" (stored "),
            Hex(stored),
            Str(", computed "),
            Hex(computed),
            Str("): the disk image is damaged, rebuild it"),
        ]),
        RecordError::UnsupportedVersion(v) => {
            fail::put(&[Str(" (version "), Dec(v as u64), Str(")")])
        }
        RecordError::BadSegment(i) => fail::put(&[Str(" (segment "), Dec(i as u64), Str(")")]),
        RecordError::BadModule(i) => fail::put(&[Str(" (module "), Dec(i as u64), Str(")")]),
        RecordError::BadProtocol(p) => fail::put(&[Str(" ("), Dec(p as u64), Str(")")]),
        _ => {}
    }
    fail::end()
}

/// Reads and checks the configuration record at the start of the partition.
pub fn read_record(drive: u8, part: &Partition) -> Record<'static> {
    let start = part.start as u64;
    read_or_fail(drive, start, 1, RECORD_BUF_ADDR);
    // SAFETY: the record buffer holds the sector just read.
    let first = unsafe { phys(RECORD_BUF_ADDR, SECTOR as usize) };
    let len = record::peek_len(first).unwrap_or_else(|e| record_fail(e));
    let sectors = sectors_for(len as u64);
    debug_assert!(sectors * SECTOR <= RECORD_BUF_LEN as u64);
    if sectors > 1 {
        read_or_fail(
            drive,
            start + 1,
            sectors - 1,
            RECORD_BUF_ADDR + SECTOR as u32,
        );
    }
    // SAFETY: the record buffer now holds the whole record; it is never
    // written again, so the 'static view stays valid.
    let bytes = unsafe { phys(RECORD_BUF_ADDR, (sectors * SECTOR) as usize) };
    let rec = Record::parse(bytes).unwrap_or_else(|e| record_fail(e));

    let needed = sectors + rec.data_sectors() as u64;
    if needed > part.sectors as u64 {
        fail(&[
            Str("partition "),
            Dec(part.index as u64 + 1),
            Str(" has "),
            Hex(part.sectors as u64),
            Str(" sectors but its record and kernel need "),
            Hex(needed),
            Str(": the disk image is truncated or damaged, rebuild it"),
        ]);
    }
    for (i, s) in rec.segments().enumerate() {
        let end = s.data_sector.saturating_add(sectors_for(s.file_size));
        if end > needed {
            fail(&[
                Str("configuration record: segment "),
                Dec(i as u64),
                Str(" data lies outside the partition"),
            ]);
        }
    }
    for (i, m) in rec.modules().enumerate() {
        let end = m.data_sector.saturating_add(sectors_for(m.size));
        if end > needed {
            fail(&[
                Str("configuration record: module "),
                Dec(i as u64),
                Str(" data lies outside the partition"),
            ]);
        }
    }
    rec
}

/// Turns on stage 2's own read path if the boot disk is on a controller it
/// recognises (fastdisk/) and fast reads of the record's first sector and
/// of the first kernel data sectors match what the BIOS read. Nothing is
/// tried when the record forbids it (`--no-fast-read`), when the data is
/// what one or two BIOS calls fetch (the demo kernel, a small unikernel:
/// the BIOS reads that faster than the fast path is set up and checked,
/// 2-5 ms), or when the memory map does not say the AHCI and virtio paths'
/// structures (layout::FAST_DMA_ADDR) are RAM.
pub fn setup_fast_read(drive: u8, part: &Partition, rec: &Record, map: &[E820Entry]) {
    let dma = FAST_DMA_ADDR as u64;
    if rec.flags() & FLAG_NO_FAST_READ != 0
        || rec.data_sectors() <= 2 * SECTORS_PER_READ as u32
        || !e820::is_usable(map, dma, dma + FAST_DMA_LEN as u64)
    {
        return;
    }
    fastdisk::setup(drive, |fast| {
        // SAFETY: the record buffer holds the record read by the BIOS.
        let record = unsafe { phys(RECORD_BUF_ADDR, SECTOR as usize) };
        if !fast.same_as(part.start as u64, record) {
            return false;
        }
        let Some(seg) = rec.segments().find(|s| s.file_size >= SECTOR) else {
            return true;
        };
        let n = (seg.file_size / SECTOR).min(FAST_VERIFY_LEN as u64 / SECTOR);
        let lba = part.start as u64 + seg.data_sector;
        read_or_fail(drive, lba, n, BOUNCE_ADDR);
        // SAFETY: the bounce buffer holds the n sectors just read.
        let first = unsafe { phys(BOUNCE_ADDR, (n * SECTOR) as usize) };
        fast.same_as(lba, first)
    });
}

/// Checks that every segment's memory is usable RAM.
pub fn check_memory(rec: &Record, map: &[E820Entry]) {
    for s in rec.segments() {
        if !e820::is_usable(map, s.dest, s.end()) {
            fail(&[
                Str("kernel needs "),
                Hex(s.dest),
                Str("-"),
                Hex(s.end() - 1),
                Str(" but that is not usable RAM: give the machine more memory"),
            ]);
        }
    }
}

/// Reads `size` bytes from partition sector `sector` to physical `dest`,
/// feeding them to `sum` (a partial last word zero-padded). Writes exactly
/// `[dest, dest + size)`, whatever the alignment of `dest` and `size`.
///
/// With the fast path on: whole sectors go by DMA straight to `dest` when
/// `dest` meets the controller's alignment (fastdisk::Fast::align: any
/// page-aligned kernel does, so it costs no copy); everything else (all of
/// a segment at an address the controller cannot reach, such as an odd one
/// for IDE or AHCI, and the partial last sector of any segment) is read by
/// DMA into the staging buffer (fastdisk::STAGE_ADDR) and exactly its bytes
/// copied out. Each read is checksummed while the next one transfers. What
/// is left after a fast read fails (the fast path is then off for good) and
/// everything without the fast path goes through the BIOS and the bounce
/// buffer, exactly `size` bytes copied out.
///
/// # Safety
/// `[dest, dest + size)` must be usable RAM at or above 1 MiB and below
/// 4 GiB (identity-mapped) that nothing else uses: it then overlaps neither
/// this loader, its buffers nor the information arena.
unsafe fn read_to(
    drive: u8,
    part: &Partition,
    sector: u64,
    size: u64,
    dest: u64,
    sum: &mut Fletcher64,
) {
    const CHUNK: u64 = SECTORS_PER_READ as u64 * SECTOR;
    const _: () = assert!(CHUNK as usize <= BOUNCE_LEN && CHUNK.is_multiple_of(8));
    let first_lba = part.start as u64 + sector;
    // Bytes of [dest, dest + size) in place and checksummed; always a whole
    // number of sectors until the end.
    let mut done = 0u64;
    // TSC ticks (marks only) spent in reads (BIOS or fast), in the
    // checksum and copy, and, of the reads' ticks, in checksumming while a
    // fast read was in flight: the reads' time is the device's only if
    // that part is well below it.
    let (mut read_cycles, mut copy_cycles, mut hidden_cycles) = (0u64, 0u64, 0u64);
    if let Some(mut fast) = fastdisk::get() {
        let direct = dest.is_multiple_of(fast.align());
        // Bytes that may go straight to `dest`: whole sectors only.
        let straight = if direct { size & !(SECTOR - 1) } else { 0 };
        let step = fast.max_sectors().min(FAST_CHUNK_SECTORS) * SECTOR;
        const HALF: u64 = fastdisk::STAGE_LEN as u64 / 2;
        // Checksums a completed read of `len` bytes at `at` and, when it
        // was staged, copies exactly those bytes to `dest + offset`.
        let mut deliver = |c: Pending| {
            let t = ts::stamp();
            // SAFETY: the read of [c.at, c.at + c.len) has completed; it
            // lies in the caller's range or in the staging buffer, which
            // nothing else writes while the fast path is on. The copy's
            // destination [dest + offset, + len) is inside the caller's
            // range (offset + len <= size) and does not overlap the stage.
            unsafe {
                let bytes = slice::from_raw_parts(c.at as usize as *const u8, c.len as usize);
                let whole = bytes.len() & !7;
                sum.update(&bytes[..whole]);
                // Only the segment's last read can end off a word.
                sum.update_tail(&bytes[whole..]);
                if c.staged {
                    ptr::copy_nonoverlapping(
                        bytes.as_ptr(),
                        (dest + c.offset) as usize as *mut u8,
                        bytes.len(),
                    );
                }
            }
            ts::since(t)
        };
        // The read completed last, not yet delivered: it is checksummed
        // (and copied) while the controller fetches the next one, so that
        // costs no time of its own (QEMU completes DMA on another thread).
        let mut pending: Option<Pending> = None;
        let mut issued = 0u64;
        let mut half = 0u64;
        while issued < size {
            let staged = issued >= straight;
            let (len, at) = if !staged {
                let len = (straight - issued).min(step);
                (len, dest + issued)
            } else {
                let len = (size - issued).min(HALF);
                (len, fastdisk::STAGE_ADDR as u64 + half * HALF)
            };
            let sectors = sectors_for(len);
            let t = ts::stamp();
            // SAFETY: either [at, at + sectors * 512) lies inside the
            // caller's promised range (a straight read of whole sectors:
            // issued + len <= straight <= size), which is at or above
            // 1 MiB, clear of stage 2's buffers and the controllers'
            // structures, or it is the staging half not holding the
            // pending read (sectors * 512 <= HALF). Nothing else touches
            // it until finish returns.
            let started = unsafe { fast.start(first_lba + issued / SECTOR, sectors, at) };
            if let Some(c) = pending.take() {
                hidden_cycles += deliver(c);
                done += c.len;
            }
            if started.and_then(|()| fast.finish()).is_err() {
                fastdisk::disable();
                break;
            }
            read_cycles += ts::since(t);
            pending = Some(Pending {
                at,
                len,
                offset: issued,
                staged,
            });
            issued += len;
            if staged {
                half ^= 1;
            }
        }
        if let Some(c) = pending {
            copy_cycles += deliver(c);
            done += c.len;
        }
    }
    while done < size {
        let n = (size - done).min(CHUNK);
        let sectors = sectors_for(n);
        let t = ts::stamp();
        read_or_fail(drive, first_lba + done / SECTOR, sectors, BOUNCE_ADDR);
        read_cycles += ts::since(t);
        let t = ts::stamp();
        // SAFETY: the bounce buffer holds `n` <= BOUNCE_LEN bytes just
        // read; the destination [dest + done, + n) is inside the caller's
        // range (done + n <= size).
        unsafe {
            let chunk = phys(BOUNCE_ADDR, n as usize);
            let whole = n as usize & !7;
            sum.update(&chunk[..whole]);
            // Chunks are whole words except the last one.
            sum.update_tail(&chunk[whole..]);
            ptr::copy_nonoverlapping(
                chunk.as_ptr(),
                (dest + done) as usize as *mut u8,
                n as usize,
            );
        }
        copy_cycles += ts::since(t);
        done += n;
    }
    ts::mark("read-bytes", size);
    ts::mark("read-bios-cycles", read_cycles);
    ts::mark("read-copy-cycles", copy_cycles);
    ts::mark("read-hidden-cycles", hidden_cycles);
}

/// A fast read that completed and is not yet checksummed (and, if staged,
/// copied): `len` bytes at physical `at`, which belong at `offset` from the
/// destination.
#[derive(Clone, Copy)]
struct Pending {
    at: u64,
    len: u64,
    offset: u64,
    /// Read into the staging buffer (else straight to the destination).
    staged: bool,
}

/// Loads every segment: file bytes through the bounce buffer to their
/// destination, checksummed on the way, then the rest zeroed. Halts with a
/// message if the payload checksum does not match the record.
pub fn load_segments(drive: u8, part: &Partition, rec: &Record) {
    let mut sum = Fletcher64::new();
    for s in rec.segments() {
        // SAFETY: [dest, dest + mem_size) was checked to be usable RAM
        // (check_memory) at or above 1 MiB and below 4 GiB (Record::parse
        // enforces KERNEL_FLOOR and KERNEL_CEILING).
        unsafe { read_to(drive, part, s.data_sector, s.file_size, s.dest, &mut sum) };
        // SAFETY: [dest + file_size, dest + mem_size) is inside the checked
        // destination range (file_size <= mem_size, Record::parse).
        unsafe {
            ptr::write_bytes(
                (s.dest + s.file_size) as usize as *mut u8,
                0,
                (s.mem_size - s.file_size) as usize,
            );
        }
    }
    let computed = sum.finish();
    if computed != rec.payload_sum() {
        fail(&[
            Str("kernel payload checksum mismatch (stored "),
            Hex(rec.payload_sum()),
            Str(", computed "),
            Hex(computed),
            Str("): the disk image is damaged, rebuild it"),
        ]);
    }
}

/// Places the modules (page-aligned, in order, above `kernel_end`, in
/// usable RAM below 4 GiB) and loads each, checking its checksum. Fills
/// `out` and returns the module count. Halts with a message if a module
/// finds no room or arrives damaged.
pub fn load_modules(
    drive: u8,
    part: &Partition,
    rec: &Record<'static>,
    map: &[E820Entry],
    kernel_end: u64,
    out: &mut [ModuleInfo<'static>; MAX_MODULES],
) -> usize {
    let count = rec.module_count();
    let mut sizes = [0u64; MAX_MODULES];
    for (i, m) in rec.modules().enumerate() {
        sizes[i] = m.size;
    }
    let mut starts = [0u64; MAX_MODULES];
    let arena = INFO_ARENA_ADDR as u64;
    let avoid = [(arena, arena + INFO_ARENA_LEN as u64)];
    if let Err(e) = place::place_modules(map, &avoid, kernel_end, &sizes[..count], &mut starts) {
        fail(&[
            Str("module "),
            Dec(e.index as u64 + 1),
            Str(" ("),
            Hex(e.size),
            Str(" bytes) does not fit in usable RAM between "),
            Hex(e.from),
            Str(" and 4 GiB (usable RAM below 4 GiB: "),
            Hex(place::usable_below_4g(map)),
            Str(" bytes): give the machine more memory"),
        ]);
    }
    for (i, m) in rec.modules().enumerate() {
        let start = starts[i];
        let mut sum = Fletcher64::new();
        // SAFETY: place_modules put [start, start + size) in usable RAM at
        // or above the kernel's end (>= 1 MiB), below 4 GiB, clear of the
        // info arena and of the modules before it.
        unsafe { read_to(drive, part, m.data_sector, m.size, start, &mut sum) };
        if sum.finish() != m.sum {
            fail(&[
                Str("module "),
                Dec(i as u64 + 1),
                Str(" checksum mismatch (stored "),
                Hex(m.sum),
                Str(", computed "),
                Hex(sum.finish()),
                Str("): the disk image is damaged, rebuild it"),
            ]);
        }
        out[i] = ModuleInfo {
            start: start as u32,
            end: (start + m.size) as u32,
            string: m.string,
        };
    }
    count
}
