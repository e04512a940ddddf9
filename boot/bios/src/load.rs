//! Finding the kernel partition, reading the configuration record, and the
//! BIOS side of loading: the reader and memory that bootpack_proto::load's
//! plan runs over (fast paths, bounce buffer) and its failure messages.

use crate::disk::{self, sectors_for};
use crate::fail::{self, fail, Dec, Hex, Hex2, Str};
use crate::fastdisk;
use crate::memplan::{
    BOUNCE_ADDR, BOUNCE_LEN, FAST_DMA_ADDR, FAST_DMA_LEN, FAST_VERIFY_LEN, RECORD_BUF_ADDR,
    RECORD_BUF_LEN, SECTORS_PER_READ,
};
use crate::ts;
use bootpack_proto::bounds;
use bootpack_proto::checksum::Fletcher64;
use bootpack_proto::layout::SECTOR;
use bootpack_proto::load::{LoadError, PartitionReader, PhysMemory};
use bootpack_proto::memory::{self, Region};
use bootpack_proto::ptable::{self, SectorReader, TableError, MAX_READ_SECTORS};
use bootpack_proto::record::{self, Record, RecordError, FLAG_NO_FAST_READ};
use core::convert::Infallible;
use core::{ptr, slice};

/// The kernel partition, from the MBR or the GPT (proto::ptable).
pub use bootpack_proto::ptable::Partition;

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

/// Sector reads for the partition-table reader: INT 13h into the bounce
/// buffer, halting with the usual message when a read fails.
struct BiosSectors {
    drive: u8,
}

impl SectorReader for BiosSectors {
    type Error = core::convert::Infallible;

    fn read(&mut self, lba: u64, count: u32) -> Result<&[u8], Self::Error> {
        const _: () = assert!(MAX_READ_SECTORS as usize * SECTOR as usize <= BOUNCE_LEN);
        read_or_fail(self.drive, lba, count as u64, BOUNCE_ADDR);
        // SAFETY: the bounce buffer holds the sectors just read (count <=
        // MAX_READ_SECTORS fits it, asserted above); the slice borrows
        // self, so no other read through this reader overwrites it while
        // it is alive, and nothing else reads to the bounce buffer until
        // find_partition returns.
        Ok(unsafe { phys(BOUNCE_ADDR, count as usize * SECTOR as usize) })
    }
}

/// The bootpack partition: the first MBR entry of type 0x7F, or behind a
/// protective MBR the first GPT entry of bootpack's type, checked as
/// proto::ptable says. Read afresh from the disk (the copy at 0x7C00 may
/// not be the disk's if another boot manager chain-loaded us).
pub fn find_partition(drive: u8) -> Partition {
    match ptable::find(&mut BiosSectors { drive }) {
        Ok(found) => found.partition,
        Err(TableError::Read(never)) => match never {},
        Err(TableError::Invalid(why)) => fail::fail_display(&why),
    }
}

fn record_fail(e: RecordError) -> ! {
    fail::begin();
    fail::put(&[Str("configuration record: "), Str(e.describe())]);
    // " (what N)": one line shape for every value-carrying error.
    let (what, n) = match e {
        RecordError::BadChecksum { stored, computed } => {
            damaged(stored, computed);
            fail::end()
        }
        RecordError::UnsupportedVersion(v) => ("version ", v as u64),
        RecordError::BadSegment(i) => ("segment ", i as u64),
        RecordError::BadModule(i) => ("module ", i as u64),
        RecordError::BadProtocol(p) => ("", p as u64),
        _ => fail::end(),
    };
    fail::put(&[Str(" ("), Str(what), Dec(n), Str(")")]);
    fail::end()
}

// The record buffer holds the largest record.
const _: () = assert!(RECORD_BUF_LEN >= record::RECORD_MAX);

/// Reads and checks the configuration record at the start of the partition.
pub fn read_record(drive: u8, part: &Partition) -> Record<'static> {
    let start = part.start;
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

    // The record and every byte it names must lie within the partition
    // (proto::bounds, which `bootpack inspect` checks too).
    if let Err(outside) = bounds::check(&rec, sectors, part) {
        fail::fail_display(&outside);
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
/// structures (memplan::FAST_DMA_ADDR) are RAM.
pub fn setup_fast_read(drive: u8, part: &Partition, rec: &Record, map: &[Region]) {
    let dma = FAST_DMA_ADDR as u64;
    if rec.flags() & FLAG_NO_FAST_READ != 0
        || rec.data_sectors() <= 2 * SECTORS_PER_READ as u32
        || !memory::is_usable(map, dma, dma + FAST_DMA_LEN as u64)
    {
        return;
    }
    fastdisk::setup(drive, |fast| {
        // SAFETY: the record buffer holds the record read by the BIOS.
        let record = unsafe { phys(RECORD_BUF_ADDR, SECTOR as usize) };
        if !fast.same_as(part.start, record) {
            return false;
        }
        let Some(seg) = rec.segments().find(|s| s.file_size >= SECTOR) else {
            return true;
        };
        let n = (seg.file_size / SECTOR).min(FAST_VERIFY_LEN as u64 / SECTOR);
        let lba = part.start + seg.data_sector;
        read_or_fail(drive, lba, n, BOUNCE_ADDR);
        // SAFETY: the bounce buffer holds the n sectors just read.
        let first = unsafe { phys(BOUNCE_ADDR, (n * SECTOR) as usize) };
        fast.same_as(lba, first)
    });
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
/// `[dest, dest + size)` must be usable RAM below 4 GiB (identity-mapped)
/// that nothing else uses and that overlaps none of stage 2's memory
/// (memplan::LOADER_MEMORY: this loader, its buffers, the information
/// arena).
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
    let first_lba = part.start + sector;
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
            // issued + len <= straight <= size), which is clear of stage
            // 2's memory (memplan::LOADER_MEMORY), so of its buffers and the
            // controllers' structures, or it is the staging half not
            // holding the pending read (sectors * 512 <= HALF). Nothing
            // else touches it until finish returns.
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

/// The BIOS side of the load plan (bootpack_proto::load): reads through
/// the fast path or INT 13h ([`read_to`]), zeroing by plain stores.
pub struct Bios<'p> {
    pub drive: u8,
    pub part: &'p Partition,
}

impl PartitionReader for Bios<'_> {
    /// Read failures print their message and halt (read_or_fail).
    type Error = Infallible;

    fn read(
        &mut self,
        sector: u64,
        size: u64,
        dest: u64,
        sum: &mut Fletcher64,
    ) -> Result<(), Infallible> {
        // SAFETY: only bootpack_proto::load calls this (stage2_main hands a
        // Bios to nothing else), and it asks only for ranges it checked:
        // segments checked usable below 4 GiB (check_memory; Record::parse
        // enforces KERNEL_CEILING) and clear of stage 2's memory (else the
        // Stager stages them), the staging area (relocate::place_staging:
        // usable, below 4 GiB, clear of stage 2, every segment and the
        // modules) and modules (place_modules with LOADER_MEMORY avoided).
        unsafe { read_to(self.drive, self.part, sector, size, dest, sum) };
        Ok(())
    }
}

impl PhysMemory for Bios<'_> {
    fn zero(&mut self, addr: u64, len: u64) {
        // SAFETY: bootpack_proto::load only zeroes a segment's bss, inside
        // its checked destination range (file_size <= mem_size,
        // Record::parse), for segments that are not staged.
        unsafe { ptr::write_bytes(addr as usize as *mut u8, 0, len as usize) };
    }
}

/// Prints why loading stopped, in the words docs/reliability.md lists,
/// and halts.
pub fn fail_load(e: &LoadError<Infallible>) -> ! {
    fail::begin();
    match *e {
        LoadError::NotUsable { start, end } => fail::put(&[
            Str("kernel needs "),
            Hex(start),
            Str("-"),
            Hex(end - 1),
            // Below 1 MiB more memory would not help: the BIOS keeps
            // that place (EBDA, video memory, ROMs).
            Str(if start < 0x10_0000 {
                " but the BIOS memory map does not report it as usable RAM: link the kernel elsewhere"
            } else {
                " but that is not usable RAM: give the machine more memory"
            }),
        ]),
        LoadError::ModuleNoRoom { room, usable } => fail::put(&[
            Str("module "),
            Dec(room.index as u64 + 1),
            Str(" ("),
            Hex(room.size),
            Str(" bytes) does not fit in usable RAM between "),
            Hex(room.from),
            Str(" and 4 GiB (usable RAM below 4 GiB: "),
            Hex(usable),
            Str(" bytes): give the machine more memory"),
        ]),
        LoadError::PayloadSum { stored, computed } => {
            fail::put(&[Str("kernel payload checksum mismatch")]);
            damaged(stored, computed);
        }
        LoadError::ModuleSum {
            index,
            stored,
            computed,
        } => {
            fail::put(&[
                Str("module "),
                Dec(index as u64 + 1),
                Str(" checksum mismatch"),
            ]);
            damaged(stored, computed);
        }
        LoadError::Read(never) => match never {},
    }
    fail::end()
}

/// The end of every checksum failure's line (out of line: shared).
#[inline(never)]
fn damaged(stored: u64, computed: u64) {
    fail::put(&[
        Str(" (stored "),
        Hex(stored),
        Str(", computed "),
        Hex(computed),
        Str("): the disk image is damaged, rebuild it"),
    ]);
}
