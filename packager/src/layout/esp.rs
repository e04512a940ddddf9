//! Which firmware an image boots on, and the EFI system partition that
//! UEFI needs: [`crate::fat::ESP_SECTORS`] sectors at the end of the disk
//! (before the GPT's backup), after the kernel partition, so the kernel
//! partition keeps its place at LBA 2048 and BIOS-only images stay exactly
//! as they were. The ESP holds the UEFI loader (boot/uefi) as
//! `\EFI\BOOT\BOOTX64.EFI`.
//!
//! In the MBR it is the second entry, type 0xEF (OVMF and other edk2
//! firmware boot an ESP from a plain MBR); in the GPT the second entry,
//! type C12A7328-F81F-11D2-BA4B-00A0C93EC93B, named "EFI system
//! partition".

use crate::proto::ptable::Guid;

pub use crate::fat::ESP_SECTORS;

/// The ESP's type in an MBR.
pub const ESP_MBR_TYPE: u8 = 0xEF;
/// The ESP's type GUID in a GPT (UEFI 2.10 §5.3.3).
pub const ESP_TYPE_GUID: Guid = Guid::from_fields(
    0xC12A_7328,
    0xF81F,
    0x11D2,
    [0xBA, 0x4B, 0x00, 0xA0, 0xC9, 0x3E, 0xC9, 0x3B],
);
/// The ESP's name in a GPT.
pub const ESP_NAME: &str = "EFI system partition";

/// The firmware an image boots on.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Firmware {
    /// PC BIOS only: stage 1 and stage 2, no ESP (4 MiB smaller; the
    /// kernel partition fills the disk).
    Bios,
    /// UEFI only: the ESP and the UEFI loader (stage 1 and 2 are still
    /// written; they cost nothing and keep `inspect` uniform).
    Uefi,
    /// Both (the default): the BIOS stages and the ESP, one file that
    /// boots on either firmware.
    #[default]
    Both,
}

impl Firmware {
    /// The name the CLI uses (`--firmware NAME`).
    pub fn name(self) -> &'static str {
        match self {
            Firmware::Bios => "bios",
            Firmware::Uefi => "uefi",
            Firmware::Both => "both",
        }
    }

    /// Whether the image gets an ESP.
    pub fn has_esp(self) -> bool {
        self != Firmware::Bios
    }
}

impl std::fmt::Display for Firmware {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Firmware {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "bios" => Ok(Firmware::Bios),
            "uefi" => Ok(Firmware::Uefi),
            "both" => Ok(Firmware::Both),
            _ => Err(format!(
                "unknown firmware {s:?}; the choices are bios, uefi and both"
            )),
        }
    }
}

/// The ESP as placed on the disk.
#[derive(Clone, Debug)]
pub struct Esp {
    /// Its first sector.
    pub start_lba: u64,
    /// The FAT volume, [`ESP_SECTORS`] sectors.
    pub image: Vec<u8>,
}

impl Esp {
    /// Its size in sectors.
    pub fn sectors(&self) -> u64 {
        ESP_SECTORS
    }
}
