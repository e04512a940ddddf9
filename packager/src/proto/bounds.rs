//! Whether the configuration record and every byte it names lie within
//! the kernel partition: checked by stage 2 before it reads any data and by
//! `bootpack inspect`, with the same words.

use super::layout::SECTOR;
use super::ptable::Partition;
use super::record::Record;
use core::fmt;

/// What lies outside the partition.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Outside {
    /// The partition is smaller than the record and data need (a
    /// truncated or shrunk image).
    Partition {
        index: u32,
        sectors: u64,
        needed: u64,
    },
    /// Segment N's data (0-based) ends past the record's data.
    Segment(usize),
    /// Module N's data (0-based) ends past the record's data.
    Module(usize),
}

impl fmt::Display for Outside {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Outside::Partition {
                index,
                sectors,
                needed,
            } => write!(
                f,
                "partition {} has 0x{sectors:X} sectors but its record and kernel need 0x{needed:X}: the disk image is truncated or damaged, rebuild it",
                index as u64 + 1
            ),
            Outside::Segment(i) => write!(
                f,
                "configuration record: segment {i} data lies outside the partition"
            ),
            Outside::Module(i) => write!(
                f,
                "configuration record: module {i} data lies outside the partition"
            ),
        }
    }
}

/// Checks `rec` (whose encoding takes `record_sectors`) against the
/// partition: the record plus its data sectors fit, and each segment's and
/// module's data ends within that data.
pub fn check(rec: &Record, record_sectors: u64, part: &Partition) -> Result<(), Outside> {
    let needed = record_sectors + rec.data_sectors() as u64;
    if needed > part.sectors {
        return Err(Outside::Partition {
            index: part.index,
            sectors: part.sectors,
            needed,
        });
    }
    for (i, s) in rec.segments().enumerate() {
        if s.data_sector.saturating_add(s.file_size.div_ceil(SECTOR)) > needed {
            return Err(Outside::Segment(i));
        }
    }
    for (i, m) in rec.modules().enumerate() {
        if m.data_sector.saturating_add(m.size.div_ceil(SECTOR)) > needed {
            return Err(Outside::Module(i));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::record::{encode, Module, Protocol, RecordSpec, Segment};
    use super::*;
    extern crate std;
    use std::string::ToString;

    /// A record whose segment data covers sectors 1..4 and whose module
    /// data ends at `module_end`; the record itself takes sector 0.
    fn check_with(
        module_end: u64,
        data_sectors: u32,
        partition_sectors: u64,
    ) -> Result<(), Outside> {
        let segs = [Segment {
            dest: 0x100000,
            file_size: 3 * 512 - 10,
            mem_size: 0x2000,
            data_sector: 1,
        }];
        let mods = [Module {
            data_sector: module_end - 1,
            size: 100,
            sum: 0,
            string: b"m",
        }];
        let spec = RecordSpec {
            protocol: Protocol::Multiboot1,
            entry: 0x100000,
            mb_flags: 0,
            segments: &segs,
            cmdline: b"k",
            payload_sum: 0,
            data_sectors,
            modules: &mods,
            elf_sections: None,
            load_base: 0x100000,
            video: super::super::video::Request::NONE,
            efi: Default::default(),
        };
        let mut buf = [0u8; 512];
        encode(&spec, &mut buf);
        let rec = Record::parse(&buf).unwrap();
        let part = Partition {
            index: 0,
            start: 2048,
            sectors: partition_sectors,
        };
        check(&rec, 1, &part)
    }

    #[test]
    fn record_and_data_must_lie_within_the_partition() {
        assert_eq!(check_with(5, 4, 5), Ok(()));
        assert_eq!(check_with(5, 4, 100), Ok(()));
        let small = check_with(5, 4, 4).unwrap_err();
        assert_eq!(
            small,
            Outside::Partition {
                index: 0,
                sectors: 4,
                needed: 5
            }
        );
        assert_eq!(
            small.to_string(),
            "partition 1 has 0x4 sectors but its record and kernel need 0x5: the disk image is truncated or damaged, rebuild it"
        );
        // The module ends past the data the record declares.
        let m = check_with(6, 4, 100).unwrap_err();
        assert_eq!(m, Outside::Module(0));
        assert_eq!(
            m.to_string(),
            "configuration record: module 0 data lies outside the partition"
        );
        // So does the segment when the declared data is shorter.
        assert_eq!(check_with(3, 2, 100), Err(Outside::Segment(0)));
    }
}
