//! The `bootpack` command line: a thin layer over the library.
//!
//! Exit status: 0 success; 1 an error (bad input, I/O, a damaged or foreign
//! image for `inspect`); 2 a usage error or bad value; `run` exits with the
//! kernel's status (see `bootpack run --help`).

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use bootpack::run::{self, Accel, RunOptions};
use clap::{ArgMatches, CommandFactory, FromArgMatches, Parser, Subcommand};

mod progress;

/// Turn a Multiboot kernel into a bootable disk image.
///
/// bootpack carries its own BIOS bootloader and needs no other program to
/// build an image (raw, gce, vhd, vmdk or qcow2); `run` boots one in QEMU.
/// Exit status: 0 success, 1 error, 2 usage error or bad value.
#[derive(Parser)]
#[command(version, about, long_about, after_help = EXAMPLES)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

const EXAMPLES: &str = "Examples:
  bootpack build unikernel.virtio -o disk.img -- --ipv4=10.0.0.2/24
  bootpack run disk.img
  bootpack inspect disk.img
  bootpack demo";

#[derive(Subcommand)]
enum Command {
    /// Pack KERNEL into a disk image (raw, gce, vhd, vmdk or qcow2) that
    /// boots with any PC BIOS.
    ///
    /// The kernel gets the command line "NAME ARGS": NAME is the kernel's
    /// file name unless --name says otherwise (Solo5 and GRUB-era kernels
    /// skip this first word).
    #[command(after_help = "Examples:
  bootpack build unikernel.virtio -o disk.img -- --ipv4=10.0.0.2/24
  bootpack build kernel.elf -o disk.img --name kernel -- console=ttyS0
  bootpack build unikernel.virtio -o image.tar.gz --size 2G      # Google Compute Engine
  bootpack build unikernel.virtio -o disk.vhd                    # Azure
  bootpack build xen.gz -o disk.img --module vmlinuz=\"console=hvc0\" --module initrd.img")]
    Build {
        /// The Multiboot kernel: ELF32, ELF64 or a flat binary with the
        /// a.out kludge (e.g. a Solo5 virtio unikernel).
        kernel: PathBuf,
        /// Where to write the image (written atomically: a temporary file
        /// beside it is renamed into place when complete).
        #[arg(short, long, value_name = "IMAGE")]
        output: PathBuf,
        /// The first word of the command line (default: the kernel's file
        /// name; "" leaves just ARGS).
        #[arg(long)]
        name: Option<OsString>,
        /// Store FILE in the image as a Multiboot module with STRING as its
        /// command line (repeatable; passed in order). Split at the first
        /// '=': "initrd.img=initrd root=/dev/sda". A gzip, xz or zstd FILE
        /// is decompressed first, as GRUB does (so is a compressed KERNEL).
        #[arg(short, long, value_name = "FILE[=STRING]")]
        module: Vec<OsString>,
        /// Like --module, but FILE is stored exactly as it is, even if
        /// compressed (GRUB's `module --nounzip`), for kernels that
        /// decompress their modules themselves. Keeps its place among the
        /// --module options.
        #[arg(long, value_name = "FILE[=STRING]", visible_alias = "module-nounzip")]
        module_raw: Vec<OsString>,
        /// Boot protocol: multiboot1 or multiboot2 (default: multiboot2 if
        /// the kernel has a Multiboot 2 header, else multiboot1).
        #[arg(long, value_enum)]
        protocol: Option<ProtocolArg>,
        /// Read the kernel only through the BIOS (INT 13h), never with
        /// bootpack's own drivers (which it uses on PIIX IDE, AHCI,
        /// virtio-blk and virtio-scsi disks after checking them against the
        /// BIOS).
        #[arg(long)]
        no_fast_read: bool,
        /// The video mode, in place of the kernel's request (as GRUB's
        /// gfxpayload): WIDTHxHEIGHTxDEPTH or WIDTHxHEIGHT (that VBE mode,
        /// else EGA text where the kernel accepts it), text (the EGA text
        /// console) or keep (the mode the firmware set).
        #[arg(long, value_name = "MODE")]
        video: Option<bootpack::VideoOption>,
        /// Image format: raw, gce (disk.raw in a .tar.gz for Google Compute
        /// Engine), vhd (Azure fixed VHD), vmdk (stream-optimized, for AWS
        /// and VMware), qcow2. Default: from the output's extension (.img
        /// .raw .tar.gz .vhd .vmdk .qcow2), else raw; a contradiction is an
        /// error.
        #[arg(short, long, value_name = "FORMAT")]
        format: Option<bootpack::Format>,
        /// Disk size, e.g. 64M, 1G, 10G (binary units). Default: just big
        /// enough (raw, vhd, vmdk, qcow2) or 1 GiB (gce). gce needs whole
        /// GiB, vhd whole MiB; the kernel partition fills the disk.
        #[arg(short, long, value_name = "SIZE", value_parser = size_arg, allow_hyphen_values = true)]
        size: Option<SizeArg>,
        /// Partition table: mbr (disks up to 2 TiB) or gpt (a protective
        /// MBR, then a GPT; any size). Both boot with a PC BIOS.
        #[arg(long, value_name = "TABLE", default_value = "mbr")]
        table: bootpack::Table,
        /// Firmware the image boots on: both (the default: stage 1 and 2
        /// for a PC BIOS, and an EFI system partition at the disk's end
        /// with bootpack's UEFI loader, \EFI\BOOT\BOOTX64.EFI, which reads
        /// the same kernel partition), bios (no ESP: 4 MiB less) or uefi.
        /// GCE Shielded VM: --table gpt, and create the image with the
        /// guest OS feature UEFI_COMPATIBLE.
        #[arg(long, value_name = "FIRMWARE", default_value = "both")]
        firmware: bootpack::Firmware,
        /// Kernel arguments, after `--`.
        #[arg(last = true, value_name = "ARGS")]
        args: Vec<OsString>,
    },
    /// Boot an image, or a kernel packed on the fly, in QEMU with the
    /// serial console on this terminal.
    ///
    /// TARGET is a disk image (raw, .vhd, .vmdk, .qcow2) or a Multiboot
    /// kernel, which is packed into a temporary image with ARGS. The boot
    /// disk is attached to the q35 machine's AHCI controller; --disk and
    /// --net devices are virtio. Ctrl-A X quits QEMU.
    ///
    /// An image must carry bootpack's boot code with sound checksums (what
    /// `bootpack inspect` checks); anything else is refused unless --force.
    ///
    /// Exit status: 0 when the machine powers off (the demo kernel's end);
    /// the kernel's own status when it exits through an isa-debug-exit
    /// device (port 0x501 as Solo5 uses, or 0xf4): QEMU's (value << 1) | 1
    /// is mapped back to value, so a Solo5 unikernel's exit(0) is 0; 1 when
    /// QEMU or bootpack fails or the image is refused.
    #[command(after_help = "Examples:
  bootpack run disk.img
  bootpack run unikernel.virtio --net tap100 --disk data.img -- --ipv4=10.0.0.2/24
  bootpack run kernel.elf --gdb        # then: gdb kernel.elf -ex 'target remote localhost:1234'
  bootpack run disk.img --dry-run")]
    Run {
        /// The image or kernel to boot.
        target: PathBuf,
        /// Guest memory (QEMU syntax: 128M, 2G).
        #[arg(long, default_value = "512M")]
        mem: String,
        /// Attach a virtio-net device on this tap interface (repeatable).
        #[arg(long, value_name = "TAP")]
        net: Vec<String>,
        /// Attach this raw file as a virtio-blk device (repeatable).
        #[arg(long, value_name = "FILE")]
        disk: Vec<PathBuf>,
        /// Accelerator: kvm, tcg, or auto (KVM when /dev/kvm can be opened).
        #[arg(long, default_value = "auto")]
        accel: Accel,
        /// Start QEMU's gdb stub on localhost:1234 and wait for the debugger
        /// before the first instruction.
        #[arg(long)]
        gdb: bool,
        /// Firmware: bios (SeaBIOS) or uefi (OVMF, found where Debian,
        /// Fedora and Arch install it, with its own copy of the variable
        /// store and S3 off). A kernel is packed for both firmwares.
        #[arg(long, value_name = "FIRMWARE", default_value = "bios", value_parser = ["bios", "uefi"])]
        firmware: String,
        /// Print the QEMU command line instead of running it.
        #[arg(long)]
        dry_run: bool,
        /// Boot an image even if it lacks bootpack's boot code or a
        /// checksum fails.
        #[arg(long)]
        force: bool,
        /// Kernel arguments when TARGET is a kernel, after `--`.
        #[arg(last = true, value_name = "ARGS")]
        args: Vec<OsString>,
    },
    /// Show what is in an image and verify every checksum.
    ///
    /// Prints the partition table, the bootloader, the kernel (entry, load
    /// ranges, Multiboot flags, size, checksum) and its command line. Exits
    /// 1 when the image is damaged or was not written by bootpack, saying
    /// what was found instead.
    #[command(after_help = "Examples:
  bootpack inspect disk.img
  bootpack inspect --json disk.img | jq .kernel.cmdline")]
    Inspect {
        /// The image: raw, .vhd, .vmdk, .qcow2 or a gce .tar.gz.
        image: PathBuf,
        /// Print JSON (stable field names) instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Build an image of bootpack's built-in demo kernel and say how to
    /// boot it.
    ///
    /// The demo kernel prints what the bootloader handed over (command
    /// line, memory map, CPU state) and powers the machine off.
    #[command(after_help = "Example:\n  bootpack demo -o demo.img -- hello world")]
    Demo {
        /// Where to write the image.
        #[arg(short, long, value_name = "IMAGE", default_value = "bootpack-demo.img")]
        output: PathBuf,
        /// Kernel arguments, after `--`.
        #[arg(last = true, value_name = "ARGS")]
        args: Vec<OsString>,
    },
    /// Print a shell completion script.
    #[command(
        after_help = "Example:\n  bootpack completions bash > /etc/bash_completion.d/bootpack"
    )]
    Completions {
        /// bash, zsh, fish, elvish or powershell.
        shell: clap_complete::Shell,
    },
    /// Print a man page (roff), or write them all to a directory.
    ///
    /// Without SUBCOMMAND, the page of bootpack itself (bootpack.1); with
    /// one, that subcommand's page (bootpack-build.1, ...) with all its
    /// options. --dir writes every page into DIR, for packagers.
    #[command(after_help = "Examples:
  bootpack man > bootpack.1 && man ./bootpack.1
  bootpack man build | man -l -
  bootpack man --dir /usr/share/man/man1")]
    Man {
        /// The subcommand whose page to print (build, run, inspect, demo,
        /// completions, man).
        subcommand: Option<String>,
        /// Write bootpack.1 and every subcommand's page into DIR instead.
        #[arg(long, value_name = "DIR", conflicts_with = "subcommand")]
        dir: Option<PathBuf>,
    },
}

fn main() -> ExitCode {
    // The parsed matches keep --module and --module-raw in their order.
    let matches = match Cli::command().try_get_matches() {
        Ok(m) => m,
        Err(e) => return usage_error(e),
    };
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(e) => return usage_error(e),
    };
    bootpack::remove_temporary_on_signal();
    let result = match cli.command {
        Command::Build {
            kernel,
            output,
            name,
            module: _,
            module_raw: _,
            protocol,
            no_fast_read,
            video,
            format,
            size,
            table,
            firmware,
            args,
        } => {
            let mut b = bootpack::Build::new(kernel)
                .args(args)
                .fast_read(!no_fast_read)
                .table(table)
                .firmware(firmware);
            if let Some(v) = video {
                b = b.video(v);
            }
            for (m, raw) in modules_in_order(&matches) {
                let (file, string) = split_module(&m);
                b = if raw {
                    b.module_raw(file, string)
                } else {
                    b.module(file, string)
                };
            }
            if let Some(p) = protocol {
                b = b.protocol(p.into());
            }
            if let Some(n) = name {
                b = b.name(n);
            }
            if let Some(f) = format {
                b = b.format(f);
            }
            if let Some(s) = &size {
                b = b.size(s.bytes);
            }
            let mut bar = progress::Bar::new();
            let r = b.write_with_progress(&output, &mut |done, total| bar.update(done, total));
            bar.finish();
            match r {
                Ok(r) => {
                    summary(&output, &r);
                    firmware_note(firmware, table, r.format);
                    Ok(())
                }
                Err(e) => return build_error(e, size.as_ref()),
            }
        }
        Command::Demo { output, args } => bootpack::Build::demo()
            .args(args)
            .write(&output)
            .map(|r| {
                summary(&output, &r);
                demo_how_to_boot(&output);
            })
            .map_err(|e| e.to_string()),
        Command::Run {
            target,
            mem,
            net,
            disk,
            accel,
            gdb,
            firmware,
            dry_run,
            force,
            args,
        } => {
            let uefi = firmware == "uefi";
            return run_target(
                &target,
                RunSpec {
                    mem,
                    net,
                    disk,
                    accel,
                    gdb,
                    uefi,
                    dry_run,
                    force,
                    args,
                },
            );
        }
        Command::Inspect { image, json } => return inspect(&image, json),
        Command::Completions { shell } => {
            clap_complete::generate(
                shell,
                &mut Cli::command(),
                "bootpack",
                &mut std::io::stdout(),
            );
            Ok(())
        }
        Command::Man { subcommand, dir } => return man(subcommand.as_deref(), dir.as_deref()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => error(e),
    }
}

/// `--protocol` values.
#[derive(Clone, Copy, clap::ValueEnum)]
enum ProtocolArg {
    Multiboot1,
    Multiboot2,
}

impl From<ProtocolArg> for bootpack::Protocol {
    fn from(p: ProtocolArg) -> Self {
        match p {
            ProtocolArg::Multiboot1 => bootpack::Protocol::Multiboot1,
            ProtocolArg::Multiboot2 => bootpack::Protocol::Multiboot2,
        }
    }
}

/// The build's --module and --module-raw values in command-line order,
/// each with whether it is raw (clap keeps each option's values apart).
fn modules_in_order(matches: &ArgMatches) -> Vec<(OsString, bool)> {
    let Some(("build", m)) = matches.subcommand() else {
        return Vec::new();
    };
    let mut all = Vec::new();
    for (id, raw) in [("module", false), ("module_raw", true)] {
        if let (Some(values), Some(at)) = (m.get_many::<OsString>(id), m.indices_of(id)) {
            all.extend(at.zip(values).map(|(i, v)| (i, v.clone(), raw)));
        }
    }
    all.sort_by_key(|&(i, ..)| i);
    all.into_iter().map(|(_, v, raw)| (v, raw)).collect()
}

/// Splits "FILE=STRING" at the first '='; without one the string is empty.
fn split_module(arg: &OsString) -> (PathBuf, OsString) {
    use std::os::unix::ffi::OsStrExt;
    let bytes = arg.as_bytes();
    match bytes.iter().position(|&b| b == b'=') {
        Some(i) => (
            PathBuf::from(std::ffi::OsStr::from_bytes(&bytes[..i])),
            std::ffi::OsStr::from_bytes(&bytes[i + 1..]).to_os_string(),
        ),
        None => (PathBuf::from(arg), OsString::new()),
    }
}

fn error(message: impl std::fmt::Display) -> ExitCode {
    eprintln!("bootpack: error: {message}");
    ExitCode::FAILURE
}

/// Exit status for a usage error or a bad value.
const USAGE: u8 = 2;

/// Prints a command-line parse error as clap words it (with its usage
/// line and hint), under the same `bootpack: error:` prefix as every other
/// error; help and version requests print normally.
fn usage_error(e: clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    if matches!(
        e.kind(),
        ErrorKind::DisplayHelp
            | ErrorKind::DisplayVersion
            | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
    ) {
        let _ = e.print();
        return if e.use_stderr() {
            ExitCode::from(USAGE)
        } else {
            ExitCode::SUCCESS
        };
    }
    let text = e.render().to_string();
    let text = text.strip_prefix("error: ").unwrap_or(&text);
    eprint!("bootpack: error: {text}");
    ExitCode::from(USAGE)
}

/// `--size` as given and in bytes.
#[derive(Clone)]
struct SizeArg {
    text: String,
    bytes: u64,
}

fn size_arg(s: &str) -> Result<SizeArg, String> {
    bootpack::parse_size(s).map(|bytes| SizeArg {
        text: s.to_string(),
        bytes,
    })
}

/// Reports a failed build: a bad value (size, format) blames the option
/// and exits 2; anything else exits 1.
fn build_error(e: bootpack::Error, size: Option<&SizeArg>) -> ExitCode {
    match (&e, size) {
        (bootpack::Error::Size { source, .. }, Some(s)) => {
            let hint = match source {
                bootpack::ImageError::TooLarge { .. } => " (--table gpt has no 2 TiB limit)",
                _ => "",
            };
            eprintln!("bootpack: error: --size {}: {e}{hint}", s.text);
            ExitCode::from(USAGE)
        }
        (
            bootpack::Error::Kernel {
                source: bootpack::KernelError::NoHeader1 { .. },
                ..
            },
            _,
        ) => error(format!("{e} (--protocol multiboot2)")),
        // The library names the mode; on the command line it came from
        // --video.
        (bootpack::Error::Video { path, source }, _) => {
            error(format!("{}: --video {source}", path.display()))
        }
        _ if e.is_bad_value() => {
            eprintln!("bootpack: error: {e}");
            ExitCode::from(USAGE)
        }
        _ => error(e),
    }
}

/// `bootpack man [SUBCOMMAND] [--dir DIR]`.
fn man(subcommand: Option<&str>, dir: Option<&Path>) -> ExitCode {
    let cli = Cli::command();
    // Every page: bootpack itself, then each subcommand under the name
    // `bootpack-SUBCOMMAND` (as git and cargo name theirs), so its page
    // lists all its options and the top page's SEE ALSO refers to pages
    // that exist.
    let pages: Vec<(String, clap::Command)> =
        std::iter::once(("bootpack".to_string(), cli.clone()))
            .chain(
                cli.get_subcommands()
                    .filter(|c| c.get_name() != "help")
                    .map(|c| {
                        let name = format!("bootpack-{}", c.get_name());
                        (
                            name.clone(),
                            c.clone()
                                .name(&*Box::leak(name.clone().into_boxed_str()))
                                .version(env!("CARGO_PKG_VERSION")),
                        )
                    }),
            )
            .collect();
    if let Some(dir) = dir {
        for (name, cmd) in pages {
            let path = dir.join(format!("{name}.1"));
            let mut out = Vec::new();
            if let Err(e) = clap_mangen::Man::new(cmd).render(&mut out) {
                return error(format!("cannot render {name}.1: {e}"));
            }
            if let Err(e) = std::fs::write(&path, out) {
                return error(format!("{}: cannot write: {e}", path.display()));
            }
            println!("{}", path.display());
        }
        return ExitCode::SUCCESS;
    }
    let wanted = match subcommand {
        None => "bootpack".to_string(),
        Some(s) => format!("bootpack-{s}"),
    };
    let Some((_, cmd)) = pages.into_iter().find(|(n, _)| *n == wanted) else {
        eprintln!(
            "bootpack: error: no subcommand {:?}; the pages are for build, run, inspect, demo, completions and man",
            subcommand.unwrap_or_default()
        );
        return ExitCode::from(USAGE);
    };
    match clap_mangen::Man::new(cmd).render(&mut std::io::stdout()) {
        Ok(()) => ExitCode::SUCCESS,
        // `bootpack man | head`: the reader has seen enough.
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(e) => error(format!("cannot write the man page: {e}")),
    }
}

/// What the user must do beyond the image for the firmware chosen: on
/// Google Compute Engine a UEFI image boots only when the image resource is
/// created with the UEFI_COMPATIBLE guest OS feature, and Shielded VM
/// needs that and a GPT.
fn firmware_note(firmware: bootpack::Firmware, table: bootpack::Table, format: bootpack::Format) {
    if firmware == bootpack::Firmware::Bios || format != bootpack::Format::Gce {
        return;
    }
    println!(
        "  UEFI on Google Compute Engine: create the image with --guest-os-features=UEFI_COMPATIBLE{}",
        if table == bootpack::Table::Gpt {
            " (then Shielded VM works: GPT and UEFI)"
        } else {
            "; Shielded VM also needs --table gpt"
        }
    );
}

/// The QEMU command lines that boot the demo image, on a PC BIOS and (the
/// image has both loaders) on UEFI with the OVMF this machine has.
fn demo_how_to_boot(out: &Path) {
    let drive = format!("-drive file={},format=raw", out.display());
    println!("boot it on a PC BIOS (the demo kernel powers off; Ctrl-A X quits QEMU otherwise):");
    println!("  qemu-system-x86_64 -accel tcg -display none -serial stdio {drive}");
    match bootpack::ovmf::find() {
        // snapshot=on: the firmware's variable writes go to a temporary
        // overlay, never to the installed store.
        Ok(o) => {
            println!("or on UEFI (OVMF; 5-10 s of firmware under TCG before the loader runs):");
            println!(
                "  qemu-system-x86_64 -accel tcg -machine q35 -display none -serial stdio -drive if=pflash,format=raw,readonly=on,file={} -drive if=pflash,format=raw,snapshot=on,file={} {drive}",
                o.code.display(),
                o.vars.display()
            );
        }
        Err(_) => println!(
            "or on UEFI: install OVMF (Debian/Ubuntu: ovmf; Fedora, Arch: edk2-ovmf), then: bootpack run {} --firmware uefi",
            out.display()
        ),
    }
}

fn summary(out: &Path, r: &bootpack::Report) {
    let (lo, hi) = (
        r.plan.segments.first().unwrap().dest,
        r.plan.segments.last().unwrap().end(),
    );
    println!(
        "wrote {} ({}, disk {:.1} MiB): {} kernel, {} segment(s) at {lo:#x}..{hi:#x}, entry {:#x}, command line {} bytes",
        out.display(),
        r.format,
        r.disk_bytes as f64 / (1 << 20) as f64,
        r.plan.format,
        r.plan.segments.len(),
        r.plan.entry,
        r.cmdline.len()
    );
    if let Some(d) = r.kernel_decompressed {
        println!("  kernel: {d}");
    }
    for (i, d) in r.modules_decompressed.iter().enumerate() {
        if let Some(d) = d {
            println!("  module {}: {d}", i + 1);
        }
    }
    let v = &r.plan.video;
    if v.mode != bootpack::proto::video::Mode::None {
        println!(
            "video mode:  {} ({}), set at boot through VBE as GRUB chooses it{}",
            bootpack::video::describe(&v.mode),
            if v.from_option {
                "--video"
            } else {
                "the kernel's request"
            },
            if v.text_ok {
                ", else EGA text"
            } else {
                "; the kernel does not accept EGA text, so boot stops if no mode fits"
            }
        );
    }
}

struct RunSpec {
    mem: String,
    net: Vec<String>,
    disk: Vec<PathBuf>,
    accel: Accel,
    gdb: bool,
    /// Boot with OVMF.
    uefi: bool,
    dry_run: bool,
    force: bool,
    args: Vec<OsString>,
}

/// Whether `path` holds a Multiboot kernel (as opposed to a disk image):
/// a Multiboot header near its start, which only its first bytes show, or
/// a compressed file that holds one.
fn is_kernel(path: &Path) -> bool {
    bootpack::looks_like_kernel(path)
}

fn run_target(target: &Path, spec: RunSpec) -> ExitCode {
    if !target.exists() {
        return error(format!("{}: no such file", target.display()));
    }
    // A kernel is packed into a temporary image that lives as long as QEMU.
    let ovmf = match spec.uefi.then(bootpack::ovmf::find).transpose() {
        Ok(o) => o,
        Err(e) => return error(e),
    };
    // A kernel's image and OVMF's variable store live as long as QEMU.
    let tmp = std::env::temp_dir().join(format!("bootpack-run-{}", std::process::id()));
    let target_is_kernel = is_kernel(target);
    if target_is_kernel || ovmf.is_some() {
        if let Err(e) = std::fs::create_dir_all(&tmp) {
            return error(format!(
                "{}: cannot create a temporary directory: {e}",
                tmp.display()
            ));
        }
    }
    let uefi = match ovmf {
        None => None,
        Some(o) => {
            let vars = tmp.join("OVMF_VARS.fd");
            if let Err(e) = bootpack::ovmf::copy_vars(&o, &vars) {
                let _ = std::fs::remove_dir_all(&tmp);
                return error(e);
            }
            Some((o, vars))
        }
    };
    let (image, format) = if target_is_kernel {
        let image = tmp.join("disk.img");
        // The default firmware (both), so the same image boots either way.
        if let Err(e) = bootpack::Build::new(target)
            .args(spec.args.clone())
            .write(&image)
        {
            let _ = std::fs::remove_dir_all(&tmp);
            return error(e);
        }
        (image, "raw")
    } else {
        if !spec.args.is_empty() {
            return error(format!(
                "{}: arguments after -- only apply when running a kernel; an image carries its command line already",
                target.display()
            ));
        }
        let format = match run::qemu_format_of(target) {
            Ok(f) => f,
            Err(e) => return error(e),
        };
        // An image without bootpack's boot code (random bytes, another
        // loader's MBR) would hang or fail silently in QEMU: refuse it with
        // what `inspect` finds.
        if !spec.force && !spec.dry_run {
            match bootpack::inspect::inspect(target) {
                Ok(ins) if ins.is_sound() => {}
                Ok(ins) => {
                    return error(format!(
                        "{}: not a bootable bootpack image: {}; `bootpack inspect {}` shows what it holds, --force boots it anyway",
                        target.display(),
                        ins.problems.join("; "),
                        target.display()
                    ))
                }
                Err(e) => return error(e),
            }
        }
        (target.to_path_buf(), format)
    };
    let cmd = run::qemu_command(&RunOptions {
        image: image.clone(),
        image_format: format,
        mem: spec.mem,
        net: spec.net,
        disks: spec.disk,
        accel: spec.accel,
        gdb: spec.gdb,
        uefi,
    });
    let code = if spec.dry_run {
        println!("{}", run::shell_quote(&cmd));
        ExitCode::SUCCESS
    } else {
        if spec.gdb {
            eprintln!(
                "bootpack: QEMU waits for gdb on localhost:1234: gdb {} -ex 'target remote localhost:1234'",
                if target_is_kernel { target.display().to_string() } else { "KERNEL".into() }
            );
        }
        match run::run_qemu(&cmd) {
            Ok(run::Ended::Exited(Some(c))) => ExitCode::from(run::kernel_status(c) as u8),
            Ok(run::Ended::Exited(None)) => error("QEMU was killed by a signal"),
            Ok(run::Ended::KvmFailed) => error(format!(
                "QEMU's KVM could not run the {} (\"KVM internal error\"; some nested or restricted KVM hosts cannot run OVMF): run again with --accel tcg",
                if spec.uefi { "UEFI firmware" } else { "machine" }
            )),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => error(format!(
                "{} not found: install QEMU (Debian/Ubuntu: apt-get install qemu-system-x86; Fedora: dnf install qemu-system-x86; macOS: brew install qemu)",
                run::QEMU
            )),
            Err(e) => error(format!("cannot start {}: {e}", run::QEMU)),
        }
    };
    if tmp.is_dir() {
        let _ = std::fs::remove_dir_all(&tmp);
    }
    code
}

fn inspect(image: &Path, json: bool) -> ExitCode {
    let ins = match bootpack::inspect::inspect(image) {
        Ok(i) => i,
        Err(e) => return error(e),
    };
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&ins).expect("an inspection serialises")
        );
    } else {
        print_inspection(&ins);
    }
    if ins.is_sound() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn print_inspection(i: &bootpack::inspect::Inspection) {
    println!("image:       {} ({})", i.image, i.format);
    if let Some(g) = &i.gpt {
        println!(
            "partitions:  GPT, disk GUID {} (protective MBR)",
            g.disk_guid
        );
        println!(
            "  {}: {:?}, type {}, GUID {}, LBA {}..{} ({:.1} MiB)",
            // Already numbered from 1 (inspect::Gpt::index).
            g.index,
            g.name,
            g.type_guid,
            g.partition_guid,
            g.start_lba,
            g.start_lba + g.sectors,
            g.sectors as f64 / 2048.0
        );
    } else if i.table == "gpt" {
        println!("partitions:  GPT (protective MBR)");
    } else if !i.disk_signature.is_empty() {
        println!("partitions:  MBR, disk signature {}", i.disk_signature);
    }
    for p in i.partitions.iter().filter(|_| i.table != "gpt") {
        println!(
            "  {}: type {:#04x}{}, LBA {}..{} ({:.1} MiB)",
            p.index,
            p.kind,
            if p.active { ", active" } else { "" },
            p.start_lba,
            p.start_lba as u64 + p.sectors as u64,
            p.sectors as f64 / 2048.0
        );
    }
    if let Some(e) = &i.esp {
        println!(
            "esp:         partition {}, LBA {}..{} ({:.1} MiB), \\EFI\\BOOT\\BOOTX64.EFI {} bytes",
            e.index,
            e.start_lba,
            e.start_lba + e.sectors,
            e.sectors as f64 / 2048.0,
            e.loader_bytes.unwrap_or(0)
        );
        println!(
            "uefi loader: {}, checksum {}",
            match (&e.loader_version, e.loader_is_this_bootpack) {
                (Some(v), true) => format!("bootpack {v} (this bootpack)"),
                (Some(v), false) => format!("bootpack {v} (another build)"),
                (None, _) => "not bootpack's".to_string(),
            },
            e.loader_checksum.as_deref().unwrap_or("-")
        );
    }
    if let Some(b) = &i.bootloader {
        println!(
            "bootloader:  bootpack {}; stage 2 at LBA {}, {} sectors, checksum {}",
            b.version,
            b.stage2_lba,
            b.stage2_sectors,
            if b.stage2_checksum_ok { "ok" } else { "BAD" }
        );
    }
    if let Some(k) = &i.kernel {
        println!(
            "kernel:      partition {}, {}, entry {:#x}, Multiboot flags {:#010x}, {} bytes, checksum {} {}",
            k.partition,
            k.protocol,
            k.entry,
            k.multiboot_flags,
            k.size,
            k.checksum,
            if k.checksum_ok { "ok" } else { "BAD" }
        );
        for s in &k.segments {
            println!(
                "  load {:#010x}..{:#010x}: {} bytes from the image, {} zeroed",
                s.start,
                s.end,
                s.file_size,
                s.mem_size - s.file_size
            );
        }
        println!(
            "disk reads:  {}",
            if k.fast_read {
                "fast path allowed (IDE, AHCI, virtio)"
            } else {
                "BIOS only (--no-fast-read)"
            }
        );
        let mut notes = Vec::new();
        if let Some(f) = k.decompressed_from {
            notes.push(format!("kernel decompressed from {f}"));
        }
        if k.modules_decompressed {
            notes.push("module(s) decompressed".into());
        }
        if !notes.is_empty() {
            println!("packing:     {} at pack time", notes.join(", "));
        }
        let v = &k.video;
        if v.mode == "none" {
            println!("video:       none asked for (the BIOS's text console is left as it is)");
        } else {
            println!(
                "video:       {}, {}{}",
                v.mode,
                if v.from_option {
                    "from --video"
                } else {
                    "the kernel's request"
                },
                if v.text_ok {
                    "; EGA text accepted"
                } else {
                    "; EGA text not accepted"
                }
            );
        }
        if let Some(e) = &k.efi {
            println!("uefi entry:  {e} (Multiboot 2 EFI tags, record version 4)");
        }
        println!("cmdline:     {:?}", k.cmdline);
        if k.modules.is_empty() {
            println!("modules:     none");
        }
        for (n, m) in k.modules.iter().enumerate() {
            println!(
                "module {}:    {} bytes, checksum {}, string {:?}{}",
                n + 1,
                m.size,
                if m.checksum_ok { "ok" } else { "BAD" },
                m.string,
                m.stored_compression
                    .map(|c| format!(", stored {c}-compressed as given (--module-raw)"))
                    .unwrap_or_default()
            );
        }
    }
    for p in &i.problems {
        println!("problem:     {p}");
    }
}
