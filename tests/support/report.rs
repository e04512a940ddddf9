//! Parsing what the test kernel prints: one "BPTK key value" line per fact.

use std::collections::HashMap;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MmapEntry {
    pub base: u64,
    pub len: u64,
    pub kind: u32,
    pub size: u32,
}

/// A `mod START END HASH STRING` line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ModLine {
    pub start: u64,
    pub end: u64,
    pub hash: u64,
    pub string: String,
}

/// A Multiboot 2 `tag TYPE SIZE ADDR` line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TagLine {
    pub ty: u32,
    pub size: u64,
    pub addr: u64,
}

#[derive(Debug, Default)]
pub struct Report {
    pub fields: HashMap<String, String>,
    pub mmap: Vec<MmapEntry>,
    pub mods: Vec<ModLine>,
    pub tags: Vec<TagLine>,
    /// The `efi_desc TYPE START PAGES` lines (Multiboot 2 tag 17).
    pub efi_descriptors: Vec<(u32, u64, u64)>,
    /// The `gdt` lines, by segment register.
    pub gdt: HashMap<String, String>,
    pub complete: bool,
}

pub fn hex(s: &str) -> u64 {
    u64::from_str_radix(s.trim_start_matches("0x"), 16).unwrap_or_else(|_| panic!("not hex: {s:?}"))
}

impl Report {
    /// Parses serial output; panics with the whole output if the kernel's
    /// report is missing, so a failing test shows what happened instead.
    pub fn parse(serial: &[u8]) -> Report {
        let text = String::from_utf8_lossy(serial);
        let mut r = Report::default();
        for line in text.lines() {
            let Some(rest) = line.strip_prefix("BPTK ") else {
                continue;
            };
            let (key, value) = rest.split_once(' ').unwrap_or((rest, ""));
            match key {
                "mmap" => {
                    let f: Vec<&str> = value.split_whitespace().collect();
                    r.mmap.push(MmapEntry {
                        base: hex(f[0]),
                        len: hex(f[1]),
                        kind: f[2].parse().unwrap(),
                        size: f[3].parse().unwrap(),
                    });
                }
                "mod" => {
                    let mut f = value.splitn(4, ' ');
                    let mut next = || f.next().unwrap_or("");
                    let (start, end, hash) = (hex(next()), hex(next()), hex(next()));
                    r.mods.push(ModLine {
                        start,
                        end,
                        hash,
                        string: next().to_string(),
                    });
                }
                "tag" => {
                    let f: Vec<&str> = value.split_whitespace().collect();
                    r.tags.push(TagLine {
                        ty: f[0].parse().unwrap(),
                        size: f[1].parse().unwrap(),
                        addr: hex(f[2]),
                    });
                }
                "efi_desc" => {
                    let f: Vec<&str> = value.split_whitespace().collect();
                    r.efi_descriptors
                        .push((f[0].parse().unwrap(), hex(f[1]), hex(f[2])));
                }
                "gdt" => {
                    let (reg, desc) = value.split_once(' ').unwrap();
                    r.gdt.insert(reg.to_string(), desc.to_string());
                }
                "end" => r.complete = true,
                _ => {
                    r.fields.insert(key.to_string(), value.to_string());
                }
            }
        }
        assert!(
            r.complete,
            "the test kernel's report is incomplete; serial output was:\n{text}"
        );
        r
    }

    pub fn get(&self, key: &str) -> &str {
        self.fields
            .get(key)
            .unwrap_or_else(|| panic!("no BPTK {key} line; have {:?}", self.fields.keys()))
    }

    pub fn num(&self, key: &str) -> u64 {
        let v = self.get(key);
        if v.starts_with("0x") {
            hex(v)
        } else {
            v.parse().unwrap_or_else(|_| panic!("{key}: {v:?}"))
        }
    }

    pub fn cmdline(&self) -> Vec<u8> {
        unhex(self.get("cmdline_hex"))
    }
}

/// Bytes from a hex string (surrounding blanks ignored).
pub fn unhex(h: &str) -> Vec<u8> {
    let h = h.trim();
    (0..h.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&h[i..i + 2], 16).unwrap())
        .collect()
}
