//! The load plan, carried out over what the firmware provides: check the
//! memory the kernel needs, place the modules, read each segment (or its
//! staged copy) while checksumming it, zero the bss, verify the payload
//! sum, read the modules and verify theirs; then the information the
//! kernel gets, in its protocol's format ([`Info`]).
//!
//! Why here and not in a loader: the steps and their order are the same
//! whatever firmware reads the disk (BIOS INT 13h or the loader's own DMA
//! paths today, UEFI's Block I/O tomorrow); only moving bytes is the
//! firmware's. So the firmware implements two small traits and this module
//! does the rest, host-tested over a fake disk and memory:
//!
//! - [`PartitionReader`]: put `size` bytes of partition sector N at a
//!   physical address while feeding them to a checksum. The BIOS loader's
//!   implementation keeps its fast paths, bounce buffer and read/checksum
//!   overlap; nothing here adds a copy or work per sector (one call per
//!   segment or module).
//! - [`PhysMemory`]: zero physical memory (the bss).
//!
//! Both write physical memory; the contract that makes that sound is the
//! caller's and this module's: every range they are given was checked here
//! first (usable RAM per the memory map, below 4 GiB, clear of the loader's
//! own memory, which the caller names, and of everything else placed).
//!
//! Failures come back as [`LoadError`] values; the loader words them (the
//! BIOS loader prints exactly the messages docs/reliability.md lists).

use super::checksum::Fletcher64;
use super::layout::KERNEL_FLOOR;
use super::mb1_info::{self, ArenaFull, InfoSpec, ModuleInfo};
use super::mb2_header;
use super::mb2_info::{self, Mbi2Spec};
use super::memory::{self, Region};
use super::place::{self, NoRoom};
use super::record::{Protocol, Record, MAX_MODULES};
use super::relocate::Stager;

/// Reads partition data into physical memory.
pub trait PartitionReader {
    /// Why a read failed (`Infallible` for a reader that reports and halts
    /// by itself).
    type Error;

    /// Puts `size` bytes from partition sector `sector` at physical `dest`
    /// and feeds them, in order, to `sum` (whole 8-byte words with
    /// [`Fletcher64::update`], a partial last word with
    /// [`Fletcher64::update_tail`]). Writes exactly `[dest, dest + size)`,
    /// whatever the alignment of `dest` and `size`.
    ///
    /// The functions of this module only ask for ranges they checked (see
    /// the module documentation); an implementation may rely on that.
    fn read(
        &mut self,
        sector: u64,
        size: u64,
        dest: u64,
        sum: &mut Fletcher64,
    ) -> Result<(), Self::Error>;
}

/// Physical memory the loader may write.
pub trait PhysMemory {
    /// Zeroes `[addr, addr + len)`, which this module checked as it does
    /// for reads.
    fn zero(&mut self, addr: u64, len: u64);
}

/// Why loading stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LoadError<E> {
    /// A segment's memory `[start, end)` is not usable RAM in the map.
    NotUsable { start: u64, end: u64 },
    /// A module finds no room (place::NoRoom); `usable` is the map's
    /// usable RAM below 4 GiB, for the message.
    ModuleNoRoom { room: NoRoom, usable: u64 },
    /// The kernel's bytes do not add up to the record's payload sum.
    PayloadSum { stored: u64, computed: u64 },
    /// Module `index` (0-based) does not add up to its sum.
    ModuleSum {
        index: usize,
        stored: u64,
        computed: u64,
    },
    /// The reader failed.
    Read(E),
}

/// Checks that every segment's memory is usable RAM.
pub fn check_memory<E>(rec: &Record, map: &[Region]) -> Result<(), LoadError<E>> {
    for s in rec.segments() {
        if !memory::is_usable(map, s.dest, s.end()) {
            return Err(LoadError::NotUsable {
                start: s.dest,
                end: s.end(),
            });
        }
    }
    Ok(())
}

/// Where the kernel ends (bss included): modules go above it.
pub fn kernel_end(rec: &Record) -> u64 {
    rec.segments()
        .map(|s| s.end())
        .max()
        .unwrap_or(KERNEL_FLOOR)
}

/// Places the modules (page-aligned, in order, above `kernel_end`, in
/// usable RAM below 4 GiB, clear of `own`, the loader's memory): writes
/// their start addresses to `starts`.
pub fn place_modules<E>(
    rec: &Record,
    map: &[Region],
    own: &[(u64, u64)],
    kernel_end: u64,
    starts: &mut [u64; MAX_MODULES],
) -> Result<(), LoadError<E>> {
    let count = rec.module_count();
    let mut sizes = [0u64; MAX_MODULES];
    for (i, m) in rec.modules().enumerate() {
        sizes[i] = m.size;
    }
    place::place_modules(map, own, kernel_end, &sizes[..count], starts).map_err(|room| {
        LoadError::ModuleNoRoom {
            room,
            usable: place::usable_below_4g(map),
        }
    })
}

/// Loads every segment: its file bytes to their destination, checksummed
/// on the way, then the rest zeroed. A segment over the loader's memory
/// `own` (relocate::needs_staging) is read to its place in the staging area at
/// `staging` instead, and its bss is left to the trampoline. Checks the
/// payload sum.
///
/// The caller has checked the segments' memory ([`check_memory`]) and
/// placed the staging area clear of everything (relocate::place_staging).
pub fn load_segments<F: PartitionReader + PhysMemory>(
    rec: &Record,
    staging: u64,
    own: (u64, u64),
    fw: &mut F,
) -> Result<(), LoadError<F::Error>> {
    let mut sum = Fletcher64::new();
    let mut stager = Stager::new(staging, own);
    for s in rec.segments() {
        if let Some(at) = stager.next(&s) {
            fw.read(s.data_sector, s.file_size, at, &mut sum)
                .map_err(LoadError::Read)?;
            continue;
        }
        fw.read(s.data_sector, s.file_size, s.dest, &mut sum)
            .map_err(LoadError::Read)?;
        fw.zero(s.dest + s.file_size, s.mem_size - s.file_size);
    }
    let computed = sum.finish();
    if computed != rec.payload_sum() {
        return Err(LoadError::PayloadSum {
            stored: rec.payload_sum(),
            computed,
        });
    }
    Ok(())
}

/// Loads each module at its place (`starts`, from [`place_modules`]),
/// checking its sum; fills `out` and returns the module count.
pub fn load_modules<'r, F: PartitionReader>(
    rec: &Record<'r>,
    starts: &[u64; MAX_MODULES],
    fw: &mut F,
    out: &mut [ModuleInfo<'r>; MAX_MODULES],
) -> Result<usize, LoadError<F::Error>> {
    for (i, m) in rec.modules().enumerate() {
        let start = starts[i];
        let mut sum = Fletcher64::new();
        fw.read(m.data_sector, m.size, start, &mut sum)
            .map_err(LoadError::Read)?;
        if sum.finish() != m.sum {
            return Err(LoadError::ModuleSum {
                index: i,
                stored: m.sum,
                computed: sum.finish(),
            });
        }
        out[i] = ModuleInfo {
            start: start as u32,
            end: (start + m.size) as u32,
            string: m.string,
        };
    }
    Ok(rec.module_count())
}

/// The information a kernel gets, in the format of the protocol the
/// record names: Multiboot 1 from the firmware-neutral spec, or Multiboot 2
/// with the record's ELF section headers and load base and the ACPI RSDP.
#[derive(Clone, Copy, Debug)]
pub enum Info<'a> {
    Mb1(InfoSpec<'a>),
    Mb2(Mbi2Spec<'a>),
}

impl<'a> Info<'a> {
    /// The information for `rec`'s protocol. `rsdp` finds the ACPI RSDP's
    /// bytes; it is called for Multiboot 2 only (a BIOS loader scans
    /// memory for it). (Inlined: the loader calls each of these once, and
    /// out of line they cost stage 2 bytes it does not have to spare.)
    #[inline(always)]
    pub fn new<'r: 'a>(
        rec: &Record<'r>,
        common: InfoSpec<'a>,
        rsdp: impl FnOnce() -> Option<&'r [u8]>,
    ) -> Self {
        match rec.protocol() {
            Protocol::Multiboot1 => Info::Mb1(common),
            Protocol::Multiboot2 => Info::Mb2(Mbi2Spec {
                common,
                elf_sections: rec.elf_sections(),
                load_base: rec.load_base(),
                rsdp: rsdp(),
            }),
        }
    }

    /// Bytes it needs.
    #[inline(always)]
    pub fn size(&self) -> usize {
        match self {
            Info::Mb1(spec) => mb1_info::size(spec),
            Info::Mb2(spec) => mb2_info::size(spec),
        }
    }

    /// Writes it into `arena`, which lies at physical `base`, and returns
    /// what the handoff puts in EBX and EAX: the information's address
    /// and the protocol's bootloader magic.
    #[inline(always)]
    pub fn build(&self, arena: &mut [u8], base: u32) -> Result<(u32, u32), ArenaFull> {
        Ok(match self {
            Info::Mb1(spec) => (
                mb1_info::build(spec, arena, base)?.info,
                mb1_info::BOOTLOADER_MAGIC,
            ),
            Info::Mb2(spec) => (
                mb2_info::build(spec, arena, base)?,
                mb2_header::BOOTLOADER_MAGIC,
            ),
        })
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::super::checksum::fletcher64;
    use super::super::layout::SECTOR;
    use super::super::record::{encode, Module, Protocol, RecordSpec, Segment};
    use super::super::relocate::staging_need;
    use super::super::video::{Mode, Request};
    use super::*;
    use std::vec;
    use std::vec::Vec;

    /// A machine: a partition's bytes and `MEM` bytes of physical memory
    /// from address 0, plus every write it was asked for.
    struct Fake {
        disk: Vec<u8>,
        mem: Vec<u8>,
        writes: Vec<(u64, u64)>,
    }

    const MEM: usize = 0x40_0000;
    /// The BIOS loader's own memory (its memory plan's LOADER_MEMORY).
    const BIOS: (u64, u64) = (0x500, 0x9_0000);

    impl PartitionReader for Fake {
        type Error = u64;
        fn read(
            &mut self,
            sector: u64,
            size: u64,
            dest: u64,
            sum: &mut Fletcher64,
        ) -> Result<(), u64> {
            let from = (sector * SECTOR) as usize;
            let Some(bytes) = self.disk.get(from..from + size as usize) else {
                return Err(sector);
            };
            let whole = bytes.len() & !7;
            sum.update(&bytes[..whole]);
            sum.update_tail(&bytes[whole..]);
            self.mem[dest as usize..(dest + size) as usize].copy_from_slice(bytes);
            self.writes.push((dest, size));
            Ok(())
        }
    }

    impl PhysMemory for Fake {
        fn zero(&mut self, addr: u64, len: u64) {
            self.mem[addr as usize..(addr + len) as usize].fill(0);
            self.writes.push((addr, len));
        }
    }

    fn map(len: u64) -> [Region; 2] {
        [
            Region {
                base: 0,
                len: 0x9_fc00,
                kind: 1,
            },
            Region {
                base: 0x10_0000,
                len,
                kind: 1,
            },
        ]
    }

    /// A record for `segs` (data from sector 1 on, as the packager lays
    /// it out) and `mods`, with the partition bytes the data comes from:
    /// segment i's bytes are all `0x10 + i`, module i's all `0xA0 + i`.
    fn image(segs: &[(u64, u64, u64)], mods: &[u64], payload_ok: bool) -> (Vec<u8>, Vec<u8>) {
        image_for(Protocol::Multiboot1, segs, mods, payload_ok)
    }

    fn image_for(
        protocol: Protocol,
        segs: &[(u64, u64, u64)],
        mods: &[u64],
        payload_ok: bool,
    ) -> (Vec<u8>, Vec<u8>) {
        let mut disk = vec![0u8; SECTOR as usize];
        let mut sum = Fletcher64::new();
        let mut segments = Vec::new();
        for (i, &(dest, file, mem)) in segs.iter().enumerate() {
            let sector = disk.len() as u64 / SECTOR;
            let bytes = vec![0x10 + i as u8; file as usize];
            let whole = bytes.len() & !7;
            sum.update(&bytes[..whole]);
            sum.update_tail(&bytes[whole..]);
            disk.extend_from_slice(&bytes);
            disk.resize(disk.len().next_multiple_of(SECTOR as usize), 0);
            segments.push(Segment {
                dest,
                file_size: file,
                mem_size: mem,
                data_sector: sector,
            });
        }
        let mut modules = Vec::new();
        for (i, &size) in mods.iter().enumerate() {
            let sector = disk.len() as u64 / SECTOR;
            let bytes = vec![0xA0 + i as u8; size as usize];
            disk.extend_from_slice(&bytes);
            disk.resize(disk.len().next_multiple_of(SECTOR as usize), 0);
            modules.push(Module {
                data_sector: sector,
                size,
                sum: fletcher64(&bytes),
                string: b"m\0",
            });
        }
        let spec = RecordSpec {
            protocol,
            entry: segs[0].0 as u32,
            mb_flags: 3,
            segments: &segments,
            cmdline: b"k\0",
            payload_sum: sum.finish() ^ (!payload_ok as u64),
            data_sectors: (disk.len() as u64 / SECTOR - 1) as u32,
            modules: &modules,
            elf_sections: None,
            load_base: segs[0].0 as u32,
            video: Request {
                mode: Mode::None,
                text_ok: true,
                graphics_ok: false,
                from_option: false,
            },
            efi: Default::default(),
        };
        let mut rec = vec![0u8; 0x1000];
        let len = encode(&spec, &mut rec);
        rec.truncate(len);
        (rec, disk)
    }

    fn fake(disk: Vec<u8>) -> Fake {
        // Garbage everywhere, so zeroing is seen.
        Fake {
            disk,
            mem: vec![0xEE; MEM],
            writes: Vec::new(),
        }
    }

    #[test]
    fn segments_are_read_checksummed_and_their_bss_zeroed() {
        let (rec, disk) = image(
            &[(0x10_0000, 0x1234, 0x3000), (0x20_0003, 0x11, 0x11)],
            &[],
            true,
        );
        let rec = Record::parse(&rec).unwrap();
        let mut fw = fake(disk);
        check_memory::<u64>(&rec, &map(0x30_0000)).unwrap();
        assert_eq!(load_segments(&rec, 0, BIOS, &mut fw), Ok(()));
        assert!(fw.mem[0x10_0000..0x10_1234].iter().all(|&b| b == 0x10));
        assert!(fw.mem[0x10_1234..0x10_3000].iter().all(|&b| b == 0));
        assert_eq!(fw.mem[0x10_3000], 0xEE, "nothing past the bss");
        assert!(fw.mem[0x20_0003..0x20_0014].iter().all(|&b| b == 0x11));
        assert_eq!((fw.mem[0x20_0002], fw.mem[0x20_0014]), (0xEE, 0xEE));
        assert_eq!(
            fw.writes,
            [
                (0x10_0000, 0x1234),
                (0x10_1234, 0x3000 - 0x1234),
                (0x20_0003, 0x11),
                (0x20_0014, 0)
            ]
        );
    }

    #[test]
    fn a_payload_checksum_mismatch_is_reported_with_both_sums() {
        let (rec, disk) = image(&[(0x10_0000, 0x200, 0x200)], &[], false);
        let rec = Record::parse(&rec).unwrap();
        let mut fw = fake(disk);
        match load_segments(&rec, 0, BIOS, &mut fw) {
            Err(LoadError::PayloadSum { stored, computed }) => {
                assert_eq!(stored, rec.payload_sum());
                assert_eq!(stored ^ 1, computed);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn segments_over_the_loader_are_staged_and_their_bss_left_to_the_trampoline() {
        // Over stage 2's memory (layout below 0x90000): staged.
        let (rec, disk) = image(
            &[(0x8000, 0x300, 0x1000), (0x10_0000, 0x200, 0x400)],
            &[],
            true,
        );
        let rec = Record::parse(&rec).unwrap();
        let (len, count) = staging_need(rec.segments(), BIOS);
        assert_eq!(count, 1);
        let staging = 0x20_0000;
        let mut fw = fake(disk);
        assert_eq!(load_segments(&rec, staging, BIOS, &mut fw), Ok(()));
        // Staged with the destination's offset in its page (0x8000: 0).
        assert!(fw.mem[0x20_0000..0x20_0300].iter().all(|&b| b == 0x10));
        assert!(len >= 0x300);
        // Nothing written over the loader's memory; its bss untouched.
        assert!(fw.mem[0x8000..0x9000].iter().all(|&b| b == 0xEE));
        assert_eq!(
            fw.writes,
            [(0x20_0000, 0x300), (0x10_0000, 0x200), (0x10_0200, 0x200)]
        );
    }

    #[test]
    fn unusable_memory_names_the_segment_range() {
        let (rec, _) = image(&[(0x10_0000, 0x200, 0x20_0000)], &[], true);
        let rec = Record::parse(&rec).unwrap();
        assert_eq!(
            check_memory::<u64>(&rec, &map(0x10_0000)),
            Err(LoadError::NotUsable {
                start: 0x10_0000,
                end: 0x30_0000
            })
        );
    }

    #[test]
    fn modules_are_placed_above_the_kernel_read_and_checked() {
        let (rec, disk) = image(&[(0x10_0000, 0x800, 0x1800)], &[0x1001, 5], true);
        let rec = Record::parse(&rec).unwrap();
        let m = map(0x30_0000);
        let mut starts = [0u64; MAX_MODULES];
        let end = kernel_end(&rec);
        assert_eq!(end, 0x10_1800);
        place_modules::<u64>(&rec, &m, &[BIOS], end, &mut starts).unwrap();
        assert_eq!(starts[..2], [0x10_2000, 0x10_4000]);
        let mut fw = fake(disk);
        let mut out = [ModuleInfo {
            start: 0,
            end: 0,
            string: &[],
        }; MAX_MODULES];
        assert_eq!(load_modules(&rec, &starts, &mut fw, &mut out), Ok(2));
        assert_eq!((out[0].start, out[0].end), (0x10_2000, 0x10_3001));
        assert_eq!((out[1].start, out[1].end), (0x10_4000, 0x10_4005));
        assert!(fw.mem[0x10_2000..0x10_3001].iter().all(|&b| b == 0xA0));
        assert!(fw.mem[0x10_4000..0x10_4005].iter().all(|&b| b == 0xA1));
        assert_eq!(fw.mem[0x10_4005], 0xEE);
    }

    #[test]
    fn a_module_without_room_is_reported_with_its_size_and_the_usable_ram() {
        let (rec, _) = image(&[(0x10_0000, 0x800, 0x1000)], &[0x1000, 0x20_0000], true);
        let rec = Record::parse(&rec).unwrap();
        let m = map(0x20_0000);
        let mut starts = [0u64; MAX_MODULES];
        let err = place_modules::<u64>(&rec, &m, &[BIOS], kernel_end(&rec), &mut starts);
        assert_eq!(
            err,
            Err(LoadError::ModuleNoRoom {
                room: NoRoom {
                    index: 1,
                    size: 0x20_0000,
                    from: 0x10_2000
                },
                usable: 0x9_fc00 + 0x20_0000
            })
        );
    }

    #[test]
    fn a_damaged_module_is_reported_by_index() {
        let (rec, mut disk) = image(&[(0x10_0000, 0x200, 0x200)], &[0x10, 0x10], true);
        let rec = Record::parse(&rec).unwrap();
        let second = rec.modules().nth(1).unwrap();
        disk[(second.data_sector * SECTOR) as usize] ^= 0xFF;
        let mut starts = [0u64; MAX_MODULES];
        place_modules::<u64>(&rec, &map(0x30_0000), &[], kernel_end(&rec), &mut starts).unwrap();
        let mut fw = fake(disk);
        let mut out = [ModuleInfo {
            start: 0,
            end: 0,
            string: &[],
        }; MAX_MODULES];
        match load_modules(&rec, &starts, &mut fw, &mut out) {
            Err(LoadError::ModuleSum {
                index: 1,
                stored,
                computed,
            }) => {
                assert_eq!(stored, second.sum);
                assert_ne!(stored, computed);
            }
            other => panic!("{other:?}"),
        }
    }

    fn spec<'a>(modules: &'a [ModuleInfo<'a>]) -> InfoSpec<'a> {
        InfoSpec {
            memory: &[],
            boot_device: None,
            cmdline: b"k\0",
            loader_name: b"x",
            modules,
            video: None,
        }
    }

    #[test]
    fn the_information_follows_the_records_protocol() {
        let (bytes, _) = image(&[(0x10_0000, 0x200, 0x200)], &[], true);
        let rec = Record::parse(&bytes).unwrap();
        // Multiboot 1 (what image() writes): the RSDP is not even looked for.
        let info = Info::new(&rec, spec(&[]), || panic!("RSDP looked for"));
        let mut arena = vec![0u8; 0x1000];
        assert_eq!(info.size(), mb1_info::size(&spec(&[])));
        assert_eq!(
            info.build(&mut arena, 0x5_0000),
            Ok((0x5_0000, mb1_info::BOOTLOADER_MAGIC))
        );
        // Multiboot 2: the record's load base and the RSDP go in.
        let (bytes2, _) = image_for(
            Protocol::Multiboot2,
            &[(0x10_0000, 0x200, 0x200)],
            &[],
            true,
        );
        let rec2 = Record::parse(&bytes2).unwrap();
        let rsdp = [0u8; 20];
        let info = Info::new(&rec2, spec(&[]), || Some(&rsdp[..]));
        let Info::Mb2(m) = info else {
            panic!("not Multiboot 2")
        };
        assert_eq!(
            (m.load_base, m.rsdp.map(|r| r.len())),
            (0x10_0000, Some(20))
        );
        assert_eq!(
            info.build(&mut arena, 0x5_0000),
            Ok((0x5_0000, mb2_header::BOOTLOADER_MAGIC))
        );
        assert_eq!(
            info.build(&mut arena[..16], 0x5_0000),
            Err(ArenaFull {
                needed: info.size()
            })
        );
    }

    #[test]
    fn a_read_failure_comes_back_as_the_readers_error() {
        let (rec, mut disk) = image(&[(0x10_0000, 0x400, 0x400)], &[], true);
        disk.truncate(SECTOR as usize);
        let rec = Record::parse(&rec).unwrap();
        let mut fw = fake(disk);
        assert_eq!(
            load_segments(&rec, 0, BIOS, &mut fw),
            Err(LoadError::Read(1))
        );
    }
}
