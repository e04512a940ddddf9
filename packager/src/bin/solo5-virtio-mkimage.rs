//! `solo5-virtio-mkimage`, the bootpack way: a drop-in for Solo5's script
//! of that name, with its interface, defaults and error style, but no
//! syslinux, sfdisk, mtools, dosfstools, GNU tar or Docker.
//!
//!     solo5-virtio-mkimage [ -d ] [ -f raw|tar ] [ -- ] IMAGE UNIKERNEL [ ARGUMENTS ... ]
//!
//! Like the original: a 1 GiB disk; `-f tar` writes a Google Compute Engine
//! image (disk.raw in a .tar.gz); the unikernel gets the command line
//! "unikernel.bin ARGUMENTS" (what syslinux' mboot.c32 passed); errors go
//! to stderr as "solo5-virtio-mkimage: error: ..." with exit status 1, and
//! a usage error prints the usage text and exits 1. `-d` (run in Docker) is
//! accepted and ignored with a note: nothing here needs Docker. Unlike the
//! original (syslinux, BIOS only) the image boots on BIOS and UEFI: it is
//! bootpack's default image, with the EFI system partition at its end.

use std::ffi::OsString;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::process::ExitCode;

use bootpack::{Build, Format};

const NAME: &str = "solo5-virtio-mkimage";
const DISK_SIZE: u64 = 1 << 30;

const USAGE: &str =
    "usage: solo5-virtio-mkimage [ OPTIONS ] [ -- ] IMAGE UNIKERNEL [ ARGUMENTS ... ]

Builds an MBR-partitioned disk IMAGE with a boot loader and UNIKERNEL in it.
ARGUMENTS, if specified, will be embedded in the image and passed to the
unikernel at boot time.

UNIKERNEL must be a unikernel built for the 'virtio' target.

Options:
    -d: Run in a Docker container (accepted for compatibility and ignored:
        this implementation (bootpack) needs no Docker).

    -f FORMAT: Output a 'raw' disk image (default) or a 'tar' file suitable
        for uploading to Google Compute Engine.
";

fn usage() -> ExitCode {
    eprint!("{USAGE}");
    ExitCode::from(1)
}

fn die(message: impl std::fmt::Display) -> ExitCode {
    eprintln!("{NAME}: error: {message}");
    ExitCode::from(1)
}

/// Options as POSIX getopt("df:") parses them: they come first, may be
/// grouped (-df tar) or joined (-ftar), and end at `--` or the first
/// operand, so the unikernel's own arguments are never taken for ours.
struct Options {
    docker: bool,
    format: Format,
    operands: Vec<OsString>,
}

fn parse(args: Vec<OsString>) -> Option<Options> {
    let mut o = Options {
        docker: false,
        format: Format::Raw,
        operands: Vec::new(),
    };
    let mut args = args.into_iter().peekable();
    while let Some(a) = args.peek() {
        let bytes = a.as_bytes();
        if bytes == b"--" {
            args.next();
            break;
        }
        if bytes.len() < 2 || bytes[0] != b'-' {
            break;
        }
        let a = args.next().unwrap();
        let flags = &a.as_bytes()[1..];
        let mut i = 0;
        while i < flags.len() {
            match flags[i] {
                b'd' => o.docker = true,
                b'f' => {
                    let value = if i + 1 < flags.len() {
                        OsString::from(std::str::from_utf8(&flags[i + 1..]).ok()?)
                    } else {
                        args.next()?
                    };
                    o.format = match value.to_str()? {
                        "raw" => Format::Raw,
                        "tar" => Format::Gce,
                        _ => return None,
                    };
                    break;
                }
                _ => return None,
            }
            i += 1;
        }
    }
    o.operands.extend(args);
    Some(o)
}

fn main() -> ExitCode {
    let Some(o) = parse(std::env::args_os().skip(1).collect()) else {
        return usage();
    };
    if o.operands.len() < 2 {
        return usage();
    }
    if o.docker {
        eprintln!("{NAME}: note: -d (run in Docker) is not needed and is ignored");
    }
    let image = PathBuf::from(&o.operands[0]);
    let unikernel = PathBuf::from(&o.operands[1]);
    // The original resolved both paths with readlink -f and reported the
    // unikernel by its absolute path.
    let absolute = std::path::absolute(&unikernel).unwrap_or(unikernel.clone());
    if !absolute.is_file() {
        return die(format!("not found: {}", absolute.display()));
    }
    let build = Build::new(&absolute)
        .name("unikernel.bin")
        .args(o.operands[2..].iter().cloned())
        .format_ignoring_name(o.format)
        .size(DISK_SIZE);
    match build.write(&image) {
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => die(e),
    }
}
