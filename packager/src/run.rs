//! `bootpack run`: boot an image (or a kernel, packed on the fly) in QEMU
//! with the serial console on the terminal, as `solo5-virtio-run` does.
//!
//! The QEMU command line is built by a pure function so it can be shown
//! (`--dry-run`) and tested without starting anything.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// The QEMU program `run` starts.
pub const QEMU: &str = "qemu-system-x86_64";

/// Port of the isa-debug-exit device Solo5 writes its exit status to.
pub const SOLO5_EXIT_PORT: u16 = 0x501;
/// Port the bootpack test kernel writes its exit status to.
pub const TEST_EXIT_PORT: u16 = 0xf4;

/// Which QEMU accelerator to use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Accel {
    /// KVM (needs /dev/kvm).
    Kvm,
    /// TCG, QEMU's emulator (works everywhere, slower).
    Tcg,
    /// KVM when /dev/kvm can be opened read-write, TCG otherwise.
    Auto,
}

impl std::str::FromStr for Accel {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "kvm" => Ok(Accel::Kvm),
            "tcg" => Ok(Accel::Tcg),
            "auto" => Ok(Accel::Auto),
            _ => Err(format!("unknown accelerator {s:?}: use kvm, tcg or auto")),
        }
    }
}

impl Accel {
    /// Resolves `Auto` by trying to open /dev/kvm for reading and writing,
    /// which is what QEMU needs.
    pub fn resolve(self) -> Accel {
        match self {
            Accel::Auto => {
                let kvm = std::fs::OpenOptions::new()
                    .read(true)
                    .write(true)
                    .open("/dev/kvm");
                if kvm.is_ok() {
                    Accel::Kvm
                } else {
                    Accel::Tcg
                }
            }
            a => a,
        }
    }
    fn name(self) -> &'static str {
        match self {
            Accel::Kvm => "kvm",
            Accel::Tcg | Accel::Auto => "tcg",
        }
    }
}

/// How to run the machine.
#[derive(Clone, Debug)]
pub struct RunOptions {
    /// The disk image to boot.
    pub image: PathBuf,
    /// QEMU's name for the image format: raw, vpc, vmdk, qcow2.
    pub image_format: &'static str,
    /// QEMU memory size, e.g. "512M".
    pub mem: String,
    /// Tap interfaces, each a virtio-net device.
    pub net: Vec<String>,
    /// Extra block devices, each a virtio-blk device.
    pub disks: Vec<PathBuf>,
    /// The accelerator.
    pub accel: Accel,
    /// Start the gdb stub on localhost:1234 and wait for the debugger.
    pub gdb: bool,
    /// Boot with OVMF (UEFI) instead of SeaBIOS: the firmware and the
    /// machine's own copy of its variable store.
    pub uefi: Option<(crate::ovmf::Ovmf, PathBuf)>,
}

/// QEMU's image format name for an image file, from its extension.
pub fn qemu_format_of(image: &Path) -> Result<&'static str, String> {
    let name = image
        .file_name()
        .map(|n| n.to_string_lossy().to_lowercase())
        .unwrap_or_default();
    Ok(match name.rsplit_once('.').map(|(_, e)| e) {
        Some("vhd") => "vpc",
        Some("vmdk") => "vmdk",
        Some("qcow2") => "qcow2",
        Some("gz") | Some("tgz") => {
            return Err(format!(
                "{}: a Google Compute Engine archive cannot be booted directly; extract disk.raw from it (tar -xzf) and run that",
                image.display()
            ))
        }
        _ => "raw",
    })
}

/// The QEMU command line (program name first).
///
/// The boot disk is on the machine's default controller (AHCI on q35):
/// Solo5 >= 0.9 refuses virtio devices it was not built for, so the boot
/// disk is never virtio, while `--disk` and `--net` devices are.
pub fn qemu_command(o: &RunOptions) -> Vec<OsString> {
    let mut a: Vec<OsString> = Vec::new();
    let mut push = |s: &str| a.push(s.into());
    push(QEMU);
    for s in [
        "-machine",
        "q35",
        "-accel",
        o.accel.resolve().name(),
        "-m",
        &o.mem,
    ] {
        push(s);
    }
    for s in ["-display", "none", "-serial", "mon:stdio", "-no-reboot"] {
        push(s);
    }
    if let Some((ovmf, vars)) = &o.uefi {
        for s in crate::ovmf::qemu_args(ovmf, vars) {
            push(&s);
        }
    }
    for port in [SOLO5_EXIT_PORT, TEST_EXIT_PORT] {
        push("-device");
        push(&format!("isa-debug-exit,iobase={port:#x},iosize=0x02"));
    }
    push("-drive");
    push(&format!(
        "file={},format={},media=disk",
        qemu_escape(&o.image),
        o.image_format
    ));
    for (i, d) in o.disks.iter().enumerate() {
        push("-drive");
        push(&format!(
            "file={},format=raw,if=none,id=disk{i}",
            qemu_escape(d)
        ));
        push("-device");
        push(&format!("virtio-blk-pci,drive=disk{i}"));
    }
    for (i, tap) in o.net.iter().enumerate() {
        push("-netdev");
        push(&format!(
            "tap,id=net{i},ifname={tap},script=no,downscript=no"
        ));
        push("-device");
        push(&format!("virtio-net-pci,netdev=net{i}"));
    }
    if o.gdb {
        // -s: gdb stub on tcp::1234; -S: stopped until the debugger says go.
        push("-s");
        push("-S");
    }
    a
}

/// QEMU option values separate fields with commas; a literal comma is
/// doubled.
pub(crate) fn qemu_escape(p: &Path) -> String {
    p.display().to_string().replace(',', ",,")
}

/// Maps QEMU's exit status back to the kernel's: isa-debug-exit makes QEMU
/// exit with (value << 1) | 1, a power-off or `quit` exits 0.
pub fn kernel_status(qemu_status: i32) -> i32 {
    if qemu_status & 1 == 1 {
        qemu_status >> 1
    } else {
        qemu_status
    }
}

/// How a QEMU run ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Ended {
    /// QEMU exited with this status (None: killed by a signal).
    Exited(Option<i32>),
    /// KVM stopped the guest ("KVM internal error"; QEMU then pauses the
    /// machine for ever): bootpack killed QEMU. Some hosts' KVM (nested or
    /// restricted) cannot run OVMF, while TCG can.
    KvmFailed,
}

/// The line QEMU prints when KVM cannot go on with the guest.
const KVM_INTERNAL_ERROR: &[u8] = b"KVM internal error";

/// Runs `cmd` (from [`qemu_command`]) with the terminal as its console,
/// passing QEMU's stderr through; if QEMU reports a KVM internal error it
/// is killed rather than left paused.
pub fn run_qemu(cmd: &[OsString]) -> std::io::Result<Ended> {
    use std::io::{Read, Write};
    let mut child = std::process::Command::new(&cmd[0])
        .args(&cmd[1..])
        .stderr(std::process::Stdio::piped())
        .spawn()?;
    let mut err = child.stderr.take().expect("piped stderr");
    let mut seen: Vec<u8> = Vec::new();
    let mut buf = [0u8; 4096];
    let mut kvm_failed = false;
    // Read until QEMU closes stderr (it exits) or KVM fails.
    while let Ok(n) = err.read(&mut buf) {
        if n == 0 {
            break;
        }
        let _ = std::io::stderr().write_all(&buf[..n]);
        // Keep a tail long enough to find the marker across reads.
        seen.extend_from_slice(&buf[..n]);
        if seen
            .windows(KVM_INTERNAL_ERROR.len())
            .any(|w| w == KVM_INTERNAL_ERROR)
        {
            kvm_failed = true;
            break;
        }
        let keep = seen.len().saturating_sub(KVM_INTERNAL_ERROR.len());
        seen.drain(..keep);
    }
    if kvm_failed {
        let _ = child.kill();
        let _ = child.wait();
        return Ok(Ended::KvmFailed);
    }
    Ok(Ended::Exited(child.wait()?.code()))
}

/// Quotes a command line for a POSIX shell, for `--dry-run`.
pub fn shell_quote(args: &[OsString]) -> String {
    args.iter()
        .map(|a| {
            let s = a.to_string_lossy();
            if !s.is_empty()
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_./=:,+@%".contains(c))
            {
                s.into_owned()
            } else {
                format!("'{}'", s.replace('\'', "'\\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(script: &str) -> Vec<OsString> {
        ["sh", "-c", script].iter().map(OsString::from).collect()
    }

    #[test]
    fn a_kvm_internal_error_stops_the_run() {
        // QEMU pauses the machine for ever after this line; the run must
        // not wait for it.
        let t = std::time::Instant::now();
        let ended = run_qemu(&sh(
            "echo 'KVM internal error. Suberror: 1' >&2; exec sleep 60",
        ))
        .unwrap();
        assert_eq!(ended, Ended::KvmFailed);
        assert!(t.elapsed() < std::time::Duration::from_secs(30));
    }

    #[test]
    fn other_runs_end_with_qemus_status() {
        let ended = run_qemu(&sh("echo 'qemu: warning: something' >&2; exit 33")).unwrap();
        assert_eq!(ended, Ended::Exited(Some(33)));
    }

    fn opts() -> RunOptions {
        RunOptions {
            image: "a,b.img".into(),
            image_format: "raw",
            mem: "64M".into(),
            net: vec!["tap0".into()],
            disks: vec!["data.img".into()],
            accel: Accel::Tcg,
            gdb: true,
            uefi: None,
        }
    }

    #[test]
    fn uefi_runs_get_ovmf_its_own_vars_and_no_s3() {
        let o = RunOptions {
            uefi: Some((
                crate::ovmf::Ovmf {
                    code: "/fw/CODE.fd".into(),
                    vars: "/fw/VARS.fd".into(),
                },
                "/tmp/x/vars.fd".into(),
            )),
            ..opts()
        };
        let cmd = shell_quote(&qemu_command(&o));
        assert!(
            cmd.contains("-nodefaults -global ICH9-LPC.disable_s3=1 -drive if=pflash,format=raw,unit=0,readonly=on,file=/fw/CODE.fd -drive if=pflash,format=raw,unit=1,file=/tmp/x/vars.fd"),
            "{cmd}"
        );
        assert!(!shell_quote(&qemu_command(&opts())).contains("pflash"));
    }

    #[test]
    fn builds_the_qemu_command_line() {
        let cmd = shell_quote(&qemu_command(&opts()));
        assert_eq!(
            cmd,
            "qemu-system-x86_64 -machine q35 -accel tcg -m 64M -display none -serial mon:stdio -no-reboot \
             -device isa-debug-exit,iobase=0x501,iosize=0x02 -device isa-debug-exit,iobase=0xf4,iosize=0x02 \
             -drive file=a,,b.img,format=raw,media=disk \
             -drive file=data.img,format=raw,if=none,id=disk0 -device virtio-blk-pci,drive=disk0 \
             -netdev tap,id=net0,ifname=tap0,script=no,downscript=no -device virtio-net-pci,netdev=net0 -s -S"
        );
    }

    #[test]
    fn maps_exit_statuses_and_formats() {
        assert_eq!(kernel_status(0x21), 0x10);
        assert_eq!(kernel_status(83), 41);
        assert_eq!(kernel_status(0), 0);
        assert_eq!(qemu_format_of(Path::new("x.VHD")), Ok("vpc"));
        assert_eq!(qemu_format_of(Path::new("x.img")), Ok("raw"));
        assert!(qemu_format_of(Path::new("x.tar.gz"))
            .unwrap_err()
            .contains("extract disk.raw"));
        assert_eq!(
            shell_quote(&["a b".into(), "it's".into()]),
            "'a b' 'it'\\''s'"
        );
    }
}
