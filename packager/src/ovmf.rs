//! Finding OVMF (edk2's UEFI firmware for QEMU) where Linux distributions
//! install it, for `bootpack run --firmware uefi` and the UEFI tests.
//!
//! OVMF comes as a code image (read-only) and a variable-store template;
//! each machine gets its own copy of the template as its second flash
//! device, as the distributions' libvirt setups do, so nothing shared is
//! ever written.

use std::path::{Path, PathBuf};

/// Code and variable-store template pairs, in the order they are tried:
/// Debian/Ubuntu (`ovmf`: the 4 MiB build, then the 2 MiB one), Fedora
/// (`edk2-ovmf`), Arch (`edk2-ovmf`: the 4 MiB build, then older layouts).
pub const CANDIDATES: &[(&str, &str)] = &[
    (
        "/usr/share/OVMF/OVMF_CODE_4M.fd",
        "/usr/share/OVMF/OVMF_VARS_4M.fd",
    ),
    (
        "/usr/share/OVMF/OVMF_CODE.fd",
        "/usr/share/OVMF/OVMF_VARS.fd",
    ),
    (
        "/usr/share/edk2/ovmf/OVMF_CODE.fd",
        "/usr/share/edk2/ovmf/OVMF_VARS.fd",
    ),
    (
        "/usr/share/edk2/x64/OVMF_CODE.4m.fd",
        "/usr/share/edk2/x64/OVMF_VARS.4m.fd",
    ),
    (
        "/usr/share/edk2-ovmf/x64/OVMF_CODE.fd",
        "/usr/share/edk2-ovmf/x64/OVMF_VARS.fd",
    ),
];

/// OVMF's two files.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ovmf {
    /// The firmware code (first flash device, read-only).
    pub code: PathBuf,
    /// The variable-store template (copied per machine).
    pub vars: PathBuf,
}

/// The first installed OVMF, or an error that says which package to
/// install.
pub fn find() -> Result<Ovmf, String> {
    find_in(
        CANDIDATES
            .iter()
            .map(|&(c, v)| (Path::new(c), Path::new(v))),
    )
}

/// [`find`] over other candidate paths.
pub fn find_in<'a>(
    candidates: impl Iterator<Item = (&'a Path, &'a Path)> + Clone,
) -> Result<Ovmf, String> {
    for (code, vars) in candidates.clone() {
        if code.is_file() && vars.is_file() {
            return Ok(Ovmf {
                code: code.to_path_buf(),
                vars: vars.to_path_buf(),
            });
        }
    }
    let looked: Vec<String> = candidates.map(|(c, _)| c.display().to_string()).collect();
    Err(format!(
        "no OVMF firmware found (looked for {}): install it (Debian/Ubuntu: apt-get install ovmf; Fedora: dnf install edk2-ovmf; Arch: pacman -S edk2-ovmf)",
        looked.join(", ")
    ))
}

/// Copies the variable-store template to `dest` (the machine's own copy).
pub fn copy_vars(o: &Ovmf, dest: &Path) -> Result<(), String> {
    std::fs::copy(&o.vars, dest).map(|_| ()).map_err(|e| {
        format!(
            "cannot copy {} to {}: {e}",
            o.vars.display(),
            dest.display()
        )
    })
}

/// QEMU arguments for a q35 machine booting OVMF with the variable store
/// at `vars`: both flash devices, no default devices (QEMU's default NIC
/// brings an iPXE option ROM and a boot attempt that cost OVMF about a
/// second under TCG), and S3 off (with S3 on, OVMF reserves memory at
/// 8 MiB for resume, which leaves a kernel at 1 MiB only about 7 MiB).
pub fn qemu_args(o: &Ovmf, vars: &Path) -> Vec<String> {
    vec![
        "-nodefaults".into(),
        "-global".into(),
        "ICH9-LPC.disable_s3=1".into(),
        "-drive".into(),
        format!(
            "if=pflash,format=raw,unit=0,readonly=on,file={}",
            crate::run::qemu_escape(&o.code)
        ),
        "-drive".into(),
        format!(
            "if=pflash,format=raw,unit=1,file={}",
            crate::run::qemu_escape(vars)
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_ovmf_names_the_packages() {
        let e = find_in(
            [(
                Path::new("/nonexistent/C.fd"),
                Path::new("/nonexistent/V.fd"),
            )]
            .into_iter(),
        )
        .unwrap_err();
        assert!(e.contains("/nonexistent/C.fd"), "{e}");
        assert!(e.contains("apt-get install ovmf"), "{e}");
        assert!(e.contains("edk2-ovmf"), "{e}");
    }

    #[test]
    fn takes_the_first_pair_present() {
        let dir = std::env::temp_dir().join(format!("bootpack-ovmf-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (c, v) = (dir.join("C.fd"), dir.join("V.fd"));
        std::fs::write(&c, b"c").unwrap();
        std::fs::write(&v, b"v").unwrap();
        let none = Path::new("/nonexistent");
        let got = find_in([(none, none), (c.as_path(), v.as_path())].into_iter()).unwrap();
        assert_eq!(got, Ovmf { code: c, vars: v });
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
