//! The record, the kernel's segments and the modules, read from the
//! bootpack partition into memory taken from the firmware.

use crate::disk::Disk;
use crate::fail;
use alloc::vec;
use alloc::vec::Vec;
use bootpack_proto::bounds;
use bootpack_proto::checksum::Fletcher64;
use bootpack_proto::efimap::{self, EfiRegion, EFI_PAGE};
use bootpack_proto::layout::SECTOR;
use bootpack_proto::load::{self as proto_load, LoadError, PartitionReader};
use bootpack_proto::mb1_info::ModuleInfo;
use bootpack_proto::memory::Region;
use bootpack_proto::ptable::{self, Partition, TableError};
use bootpack_proto::rebase::Shift;
use bootpack_proto::record::{self, Record, MAX_MODULES};
use core::convert::Infallible;
use uefi::boot::{self, AllocateType, MemoryType};
use uefi::mem::memory_map::MemoryMap;

/// Bytes per read of whole sectors straight into place.
const CHUNK: u64 = 4 << 20;

/// The largest disk command OVMF's ATA driver issues for disks under
/// 128 GiB (256 sectors: it uses 28-bit commands there, and splits every
/// read into such commands).
const COMMAND: u64 = 128 << 10;
const _: () = assert!(CHUNK.is_multiple_of(COMMAND) && COMMAND <= BOUNCE as u64);

/// Sectors of the first read of the record (at most the partition's).
const FIRST_RECORD_SECTORS: u64 = 8;

/// The bootpack partition, from the MBR or the GPT.
pub fn find_partition(disk: &mut Disk) -> Partition {
    match ptable::find(disk) {
        Ok(found) => found.partition,
        Err(TableError::Read(never)) => match never {},
        Err(TableError::Invalid(why)) => fail!("{why}"),
    }
}

/// Reads and checks the configuration record; it stays in memory (loader
/// data) until the kernel runs.
pub fn read_record(disk: &mut Disk, part: &Partition) -> Record<'static> {
    // One read for the usual record (a few hundred bytes), a second one
    // only for a longer record: every firmware read costs (a disk
    // command, and under emulation its round trip).
    let first_sectors = FIRST_RECORD_SECTORS.min(part.sectors).max(1);
    let mut bytes = vec![0u8; (first_sectors * SECTOR) as usize];
    disk.read(part.start, &mut bytes);
    let len = record::peek_len(&bytes).unwrap_or_else(|e| record_fail(e));
    let sectors = (len as u64).div_ceil(SECTOR);
    if sectors > first_sectors {
        bytes.resize((sectors * SECTOR) as usize, 0);
        disk.read(
            part.start + first_sectors,
            &mut bytes[(first_sectors * SECTOR) as usize..],
        );
    }
    let bytes: &'static [u8] = Vec::leak(bytes);
    let rec = Record::parse(bytes).unwrap_or_else(|e| record_fail(e));
    if let Err(outside) = bounds::check(&rec, sectors, part) {
        fail!("{outside}");
    }
    rec
}

fn record_fail(e: record::RecordError) -> ! {
    use record::RecordError as E;
    match e {
        E::BadChecksum { stored, computed } => fail!(
            "configuration record: {} (stored {stored:#x}, computed {computed:#x}): the disk image is damaged, rebuild it",
            e.describe()
        ),
        E::UnsupportedVersion(v) => fail!("configuration record: {} (version {v})", e.describe()),
        E::BadSegment(i) => fail!("configuration record: {} (segment {i})", e.describe()),
        E::BadModule(i) => fail!("configuration record: {} (module {i})", e.describe()),
        E::BadProtocol(p) => fail!("configuration record: {} ({p})", e.describe()),
        _ => fail!("configuration record: {}", e.describe()),
    }
}

fn page_range(start: u64, end: u64) -> (u64, u64) {
    (start & !(EFI_PAGE - 1), end.div_ceil(EFI_PAGE) * EFI_PAGE)
}

/// Takes `[start, end)` (page-rounded) from the firmware; halts with
/// `what` in the message if the firmware has that memory.
fn take(start: u64, end: u64, what: &dyn core::fmt::Display) {
    let (s, e) = page_range(start, end);
    if e == s {
        return;
    }
    if boot::allocate_pages(
        AllocateType::Address(s),
        MemoryType::LOADER_DATA,
        ((e - s) / EFI_PAGE) as usize,
    )
    .is_err()
    {
        fail!(
            "{what} needs {start:#x}-{:#x} but the firmware uses that memory (or it is not RAM): link the kernel elsewhere or give the machine more memory",
            end - 1
        );
    }
}

struct Kernel;
impl core::fmt::Display for Kernel {
    fn fmt(&self, f: &mut core::fmt::Formatter) -> core::fmt::Result {
        f.write_str("kernel")
    }
}

/// Page ranges the kernel needs that the firmware's boot services hold
/// now and free at ExitBootServices (sorted, disjoint): segment bytes there
/// are read to a staging area and moved into place by the trampoline after
/// the exit (GRUB's relocator does the same); the rest of such a segment is
/// read in place (bootpack_proto::deferred).
pub struct Deferred(pub Vec<(u64, u64)>);

/// If `[s, e)` lies wholly in memory that is free or boot-services memory
/// now (so free after ExitBootServices), takes the free parts, so that
/// nothing else (the staging area included) is put there, and returns the
/// boot-services parts.
fn defer(s: u64, e: u64) -> Option<Vec<(u64, u64)>> {
    use bootpack_proto::efimap::kind;
    let map = boot::memory_map(MemoryType::LOADER_DATA).ok()?;
    let mut regions: Vec<(u64, u64, u32)> = map
        .entries()
        .map(|d| (d.phys_start, d.phys_start + d.page_count * EFI_PAGE, d.ty.0))
        .filter(|&(a, b, _)| a < e && s < b)
        .collect();
    drop(map);
    regions.sort_unstable();
    let mut at = s;
    for &(a, b, ty) in &regions {
        let ok = matches!(
            ty,
            kind::CONVENTIONAL | kind::BOOT_SERVICES_CODE | kind::BOOT_SERVICES_DATA
        );
        if a > at || !ok {
            return None;
        }
        at = at.max(b);
    }
    if at < e {
        return None;
    }
    let mut held: Vec<(u64, u64)> = Vec::new();
    for &(a, b, ty) in &regions {
        let (a, b) = (a.max(s), b.min(e));
        if ty == kind::CONVENTIONAL {
            if boot::allocate_pages(
                AllocateType::Address(a),
                MemoryType::LOADER_DATA,
                ((b - a) / EFI_PAGE) as usize,
            )
            .is_err()
            {
                return None;
            }
        } else {
            match held.last_mut() {
                Some(last) if last.1 == a => last.1 = b,
                _ => held.push((a, b)),
            }
        }
    }
    Some(held)
}

/// Takes the memory of every segment, moved by `shift` (a relocatable
/// kernel's, else none), from the firmware (pages shared by two segments
/// once); what boot services hold now is deferred.
pub fn take_segments(rec: &Record, shift: Shift) -> Deferred {
    let mut ranges: Vec<(u64, u64)> = rec
        .segments()
        .filter(|s| s.mem_size > 0)
        .map(|s| page_range(shift.at(s.dest), shift.at(s.end())))
        .collect();
    ranges.sort_unstable();
    let mut merged: Vec<(u64, u64)> = Vec::new();
    for r in ranges {
        match merged.last_mut() {
            Some(last) if r.0 <= last.1 => last.1 = last.1.max(r.1),
            _ => merged.push(r),
        }
    }
    let mut deferred = Vec::new();
    for (s, e) in merged {
        if !try_take(s, e) {
            match defer(s, e) {
                Some(held) => deferred.extend(held),
                None => take(s, e, &Kernel),
            }
        }
    }
    Deferred(deferred)
}

fn try_take(s: u64, e: u64) -> bool {
    e == s
        || boot::allocate_pages(
            AllocateType::Address(s),
            MemoryType::LOADER_DATA,
            ((e - s) / EFI_PAGE) as usize,
        )
        .is_ok()
}

/// The firmware's memory map as it is now, in the order it gives.
pub type EfiRegions<'a> = core::iter::Copied<core::slice::Iter<'a, EfiRegion>>;

/// The firmware's memory map now, converted by `convert` (one of
/// bootpack_proto::efimap's conversions).
pub fn converted_map(convert: impl Fn(EfiRegions, &mut [Region]) -> usize) -> Vec<Region> {
    let map = boot::memory_map(MemoryType::LOADER_DATA)
        .unwrap_or_else(|_| fail!("the firmware gives no memory map (GetMemoryMap)"));
    let regions: Vec<EfiRegion> = map
        .entries()
        .map(|d| EfiRegion {
            ty: d.ty.0,
            phys_start: d.phys_start,
            pages: d.page_count,
        })
        .collect();
    drop(map);
    let mut out = vec![Region::default(); regions.len()];
    let n = convert(regions.iter().copied(), &mut out);
    out.truncate(n);
    out
}

/// The firmware's memory map now, as a Multiboot map of what is free.
pub fn free_map() -> Vec<Region> {
    converted_map(|r, out| efimap::free_now(r, out))
}

/// Places the modules as the BIOS loader does (page-aligned, in order,
/// above the kernel's end, below 4 GiB) in memory that is free now, and
/// takes it from the firmware. Returns their start addresses.
pub fn place_modules(rec: &Record, kernel_end: u64) -> [u64; MAX_MODULES] {
    let count = rec.module_count();
    let mut starts = [0u64; MAX_MODULES];
    if count == 0 {
        return starts;
    }
    let map = free_map();
    if let Err(LoadError::<Infallible>::ModuleNoRoom { room, usable }) =
        proto_load::place_modules(rec, &map, &[], kernel_end, &mut starts)
    {
        fail!(
            "module {} ({:#x} bytes) does not fit in free RAM between {:#x} and 4 GiB (free RAM below 4 GiB: {usable:#x} bytes): give the machine more memory",
            room.index + 1,
            room.size,
            room.from,
        );
    }
    for (i, m) in rec.modules().enumerate() {
        struct Module(usize);
        impl core::fmt::Display for Module {
            fn fmt(&self, f: &mut core::fmt::Formatter) -> core::fmt::Result {
                write!(f, "module {}", self.0)
            }
        }
        take(starts[i], starts[i] + m.size, &Module(i + 1));
    }
    starts
}

/// A buffer for reads that cannot go straight into place (a destination
/// off the disk's alignment, a segment's partial last sector).
pub struct Bounce(&'static mut [u8]);

/// Bytes of the bounce buffer.
const BOUNCE: usize = 1 << 20;

impl Bounce {
    pub fn new() -> Bounce {
        let p = boot::allocate_pages(
            AllocateType::AnyPages,
            MemoryType::LOADER_DATA,
            BOUNCE / EFI_PAGE as usize,
        )
        .unwrap_or_else(|_| fail!("no memory for the read buffer"));
        // SAFETY: BOUNCE bytes just allocated for this buffer alone.
        Bounce(unsafe { core::slice::from_raw_parts_mut(p.as_ptr(), BOUNCE) })
    }
}

/// Reads `size` bytes from partition sector `sector` to physical `dest`,
/// feeding them to `sum`. Writes `[dest, dest + size)`, and when `room`
/// (bytes at `dest` the caller lets it write, at least `size`) reaches the
/// end of the last sector, the rest of that sector after them too: the
/// caller zeroes those bytes before the kernel runs (a segment's bss) or
/// owns them (staging). A partial last sector that does not fit goes
/// through the bounce buffer.
///
/// # Safety
/// `[dest, dest + room)` must be memory this loader took from the
/// firmware for this purpose (take_segments, place_modules, staging),
/// identity-mapped.
#[allow(clippy::too_many_arguments)]
pub unsafe fn read_to(
    disk: &mut Disk,
    bounce: &mut Bounce,
    part: &Partition,
    sector: u64,
    size: u64,
    dest: u64,
    room: u64,
    sum: &mut Fletcher64,
) {
    let lba = part.start + sector;
    let mut done = 0u64;
    if dest.is_multiple_of(disk.io_align()) {
        let whole = size.div_ceil(SECTOR) * SECTOR;
        // Whole sectors straight into place. A partial last sector that
        // may not land in place goes through the bounce buffer, and with
        // it the bytes after the last whole command, so that it costs no
        // disk command of its own.
        let straight = if whole <= room {
            whole
        } else {
            size / COMMAND * COMMAND
        };
        while done < straight {
            let n = (straight - done).min(CHUNK);
            // SAFETY: inside the caller's range (done + n <= room).
            let buf =
                unsafe { core::slice::from_raw_parts_mut((dest + done) as *mut u8, n as usize) };
            disk.read(lba + done / SECTOR, buf);
            // Only the data counts, not the end of its last sector.
            let data = &buf[..n.min(size - done) as usize];
            let words = data.len() & !7;
            sum.update(&data[..words]);
            sum.update_tail(&data[words..]);
            done += n;
        }
    }
    while done < size {
        let n = (size - done).min(BOUNCE as u64);
        let sectors = n.div_ceil(SECTOR);
        let buf = &mut bounce.0[..(sectors * SECTOR) as usize];
        disk.read(lba + done / SECTOR, buf);
        let chunk = &buf[..n as usize];
        let whole = chunk.len() & !7;
        sum.update(&chunk[..whole]);
        sum.update_tail(&chunk[whole..]);
        // SAFETY: the destination [dest + done, + n) is inside the
        // caller's range; the bounce buffer is separate memory.
        unsafe {
            core::ptr::copy_nonoverlapping(chunk.as_ptr(), (dest + done) as *mut u8, n as usize)
        };
        done += n;
    }
}

/// Loads every segment in place (its link address moved by `shift`),
/// zeroes its bss, and checks the payload checksum. The bytes of a segment over deferred memory are read to
/// staging memory below 4 GiB instead (and its bss there is left); returns
/// the trampoline's moves for them.
pub fn load_segments(
    disk: &mut Disk,
    bounce: &mut Bounce,
    part: &Partition,
    rec: &Record,
    deferred: &Deferred,
    shift: Shift,
) -> Vec<bootpack_proto::relocate::Move> {
    use bootpack_proto::deferred::{file_pieces, zero_pieces, Piece};
    use bootpack_proto::relocate::Move;
    let mut sum = Fletcher64::new();
    let mut moves = Vec::new();
    for s in rec.segments() {
        let base = shift.at(s.dest);
        // Pieces in order, so the checksum sees the bytes in order.
        file_pieces(base, s.file_size, &deferred.0, |p: Piece| {
            let sector = s.data_sector + p.offset / SECTOR;
            let dest = base + p.offset;
            if !p.staged {
                // The last piece may fill its last sector into the bss
                // (zeroed below), up to the next deferred page.
                let mut room = p.len;
                if p.offset + p.len == s.file_size {
                    room = s.mem_size - p.offset;
                    for &(a, _) in &deferred.0 {
                        if a >= dest {
                            room = room.min(a - dest);
                        }
                    }
                }
                // SAFETY: take_segments took [dest, dest + mem_size) from
                // the firmware; this piece and its room touch no deferred
                // page.
                unsafe { read_to(disk, bounce, part, sector, p.len, dest, room, &mut sum) };
                return;
            }
            let pages = p.len.div_ceil(EFI_PAGE);
            let at = boot::allocate_pages(
                AllocateType::MaxAddress(0xFFFF_FFFF),
                MemoryType::LOADER_DATA,
                pages as usize,
            )
            .unwrap_or_else(|_| {
                fail!(
                    "no memory below 4 GiB to stage the kernel's bytes at {dest:#x} ({:#x} bytes)",
                    p.len
                )
            })
            .as_ptr() as u64;
            // SAFETY: [at, at + pages) was just taken for this.
            unsafe {
                read_to(
                    disk,
                    bounce,
                    part,
                    sector,
                    p.len,
                    at,
                    pages * EFI_PAGE,
                    &mut sum,
                )
            };
            moves.push(Move {
                dst: dest as u32,
                src: at as u32,
                len: p.len as u32,
                zero: 0,
            });
        });
        zero_pieces(
            base + s.file_size,
            s.mem_size - s.file_size,
            &deferred.0,
            |at, len, held| {
                if held {
                    moves.push(Move {
                        dst: at as u32,
                        src: at as u32,
                        len: 0,
                        zero: len as u32,
                    });
                } else {
                    // SAFETY: take_segments took this memory, and it is
                    // not deferred.
                    unsafe { core::ptr::write_bytes(at as *mut u8, 0, len as usize) };
                }
            },
        );
    }
    let computed = sum.finish();
    if computed != rec.payload_sum() {
        fail!(
            "kernel payload checksum mismatch (stored {:#x}, computed {computed:#x}): the disk image is damaged, rebuild it",
            rec.payload_sum()
        );
    }
    moves
}

/// Loads each module at its place and checks its checksum
/// (bootpack_proto::load, as the BIOS loader does); returns what the
/// information says of them.
pub fn load_modules<'r>(
    disk: &mut Disk,
    bounce: &mut Bounce,
    part: &Partition,
    rec: &Record<'r>,
    starts: &[u64; MAX_MODULES],
) -> [ModuleInfo<'r>; MAX_MODULES] {
    /// The firmware side of bootpack_proto::load's module reads.
    struct Modules<'a> {
        disk: &'a mut Disk,
        bounce: &'a mut Bounce,
        part: &'a Partition,
    }
    impl PartitionReader for Modules<'_> {
        type Error = Infallible;
        fn read(
            &mut self,
            sector: u64,
            size: u64,
            dest: u64,
            sum: &mut Fletcher64,
        ) -> Result<(), Infallible> {
            // SAFETY: bootpack_proto::load asks only for the modules'
            // ranges, which place_modules took from the firmware; nothing
            // after a module is written (room = size).
            unsafe {
                read_to(
                    self.disk,
                    self.bounce,
                    self.part,
                    sector,
                    size,
                    dest,
                    size,
                    sum,
                )
            };
            Ok(())
        }
    }
    let mut out = [ModuleInfo {
        start: 0,
        end: 0,
        string: &[],
    }; MAX_MODULES];
    let mut reader = Modules { disk, bounce, part };
    if let Err(LoadError::ModuleSum {
        index,
        stored,
        computed,
    }) = proto_load::load_modules(rec, starts, &mut reader, &mut out)
    {
        fail!(
            "module {} checksum mismatch (stored {stored:#x}, computed {computed:#x}): the disk image is damaged, rebuild it",
            index + 1
        );
    }
    out
}
