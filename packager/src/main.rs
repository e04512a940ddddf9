//! The `bootpack` command line: a thin layer over the library.

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Turn a Multiboot kernel into a bootable MBR-partitioned disk image.
#[derive(Parser)]
#[command(version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Pack KERNEL into a raw disk image that boots with any PC BIOS.
    ///
    /// The kernel gets the command line "NAME ARGS": NAME is the kernel's
    /// file name unless --name says otherwise (Solo5 and GRUB-era kernels
    /// skip this first word).
    ///
    /// Example: bootpack build unikernel.virtio -o disk.img -- --ipv4=10.0.0.2/24
    Build {
        /// The Multiboot kernel: ELF32, ELF64 or a flat binary with the
        /// a.out kludge (e.g. a Solo5 virtio unikernel).
        kernel: PathBuf,
        /// Where to write the image (written atomically).
        #[arg(short, long, value_name = "IMAGE")]
        output: PathBuf,
        /// The first word of the command line (default: the kernel's file name).
        #[arg(long)]
        name: Option<OsString>,
        /// Kernel arguments, after `--`.
        #[arg(last = true, value_name = "ARGS")]
        args: Vec<OsString>,
    },
    /// Build an image of bootpack's built-in demo kernel and say how to boot it.
    ///
    /// Example: bootpack demo -o demo.img -- hello world
    Demo {
        /// Where to write the image.
        #[arg(short, long, value_name = "IMAGE", default_value = "bootpack-demo.img")]
        output: PathBuf,
        /// Kernel arguments, after `--`.
        #[arg(last = true, value_name = "ARGS")]
        args: Vec<OsString>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Build { kernel, output, name, args } => {
            let mut b = bootpack::Build::new(kernel).args(args);
            if let Some(n) = name {
                b = b.name(n);
            }
            b.write(&output).map(|r| summary(&output, &r))
        }
        Command::Demo { output, args } => bootpack::Build::demo().args(args).write(&output).map(|r| {
            summary(&output, &r);
            println!("boot it (Ctrl-A X quits QEMU if the kernel does not power off):");
            println!(
                "  qemu-system-x86_64 -accel tcg -display none -serial stdio -drive file={},format=raw",
                output.display()
            );
        }),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bootpack: error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn summary(out: &std::path::Path, r: &bootpack::Report) {
    let (lo, hi) = (
        r.plan.segments.first().unwrap().dest,
        r.plan.segments.last().unwrap().end(),
    );
    println!(
        "wrote {} ({:.1} MiB): {} kernel, {} segment(s) at {lo:#x}..{hi:#x}, entry {:#x}, command line {} bytes",
        out.display(),
        r.disk_bytes as f64 / (1 << 20) as f64,
        r.plan.format,
        r.plan.segments.len(),
        r.plan.entry,
        r.cmdline.len()
    );
}
