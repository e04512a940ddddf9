//! The sample disk contents the format tests and the format benchmark
//! share: an MBR-like sector, 3 MiB of kernel-like data and a tail.
//! Deterministic, so sizes and outputs compare across runs.

const MIB: usize = 1 << 20;

/// (mbr, data, tail): the data is a third incompressible 4 KiB blocks (like
/// packed sections), mostly text-like blocks (like code and strings), and
/// an all-zero block every 100 KiB (holes inside the extent, and a sparse
/// map longer than one tar header holds).
pub fn contents() -> (Vec<u8>, Vec<u8>, Vec<u8>) {
    let mut x = 0x2545_F491_4F6C_DD1Du64;
    let mut rand = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let mut mbr: Vec<u8> = (0..512).map(|_| rand() as u8).collect();
    mbr[510..].copy_from_slice(&[0x55, 0xAA]);
    let words = [&b"multiboot "[..], b"kernel ", b"0x00100000 ", b"virtio "];
    let mut data = Vec::with_capacity(3 * MIB);
    while data.len() < 3 * MIB {
        let block = data.len() / 4096;
        match block % 25 {
            7 => data.extend_from_slice(&[0; 4096]),
            b if b % 3 == 0 => data.extend((0..4096).map(|_| rand() as u8)),
            _ => {
                let end = data.len() + 4096;
                while data.len() < end {
                    data.extend_from_slice(words[rand() as usize % words.len()]);
                }
                data.truncate(end);
            }
        }
    }
    data.truncate(3 * MIB);
    (mbr, data, b"the end of the disk".to_vec())
}
