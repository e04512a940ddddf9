//! The boot benchmark (bench/boot.sh, packager/examples/bench_boot) in a
//! quick mode: one boot per cell, the demo kernel on IDE and AHCI, bootpack
//! (with and without its fast read path) and QEMU's -kernel only (no
//! syslinux or GRUB needed), one build of each bootpack flow. Proves the harness still works and prints a complete
//! table; it never judges speed.

// The benchmark's profile mode is not run here.
#[allow(dead_code)]
#[path = "../packager/examples/bench_boot/harness.rs"]
mod harness;

mod support;

use std::time::Duration;

use harness::{Disk, Kernel, Loader, Options};

#[test]
fn boot_benchmark_quick_mode_produces_complete_tables() {
    support::qemu::require_qemu();
    let dir = support::scratch("bench-smoke");
    let opts = Options {
        reps: 1,
        build_reps: 1,
        kernels: vec![Kernel::parse("demo").unwrap()],
        disks: vec![Disk::Ide, Disk::Ahci],
        loaders: vec![Loader::QemuKernel, Loader::Bootpack, Loader::BootpackBios],
        bootpack: env!("CARGO_BIN_EXE_bootpack").into(),
        mkimage: Some(env!("CARGO_BIN_EXE_solo5-virtio-mkimage").into()),
        dir: dir.join("work"),
        timeout: Duration::from_secs(60),
        verbose: false,
    };
    let r = harness::run(&opts).expect("the benchmark runs");
    let text = harness::report(&r);
    println!("{text}");

    assert_eq!(r.boot.len(), 2, "one row per disk");
    for row in &r.boot {
        assert_eq!(row.cells.len(), 3);
        for (cell, loader) in row.cells.iter().zip(&opts.loaders) {
            assert!(
                cell.failures.is_empty() && cell.samples.len() == 1,
                "{} on {}: {:?}",
                loader.name(),
                row.disk.name(),
                cell.failures
            );
            assert!(cell.median().unwrap() > 0.0);
        }
    }
    let flows: Vec<&str> = r.build.iter().map(|b| b.flow).collect();
    assert_eq!(
        flows,
        [
            "bootpack build",
            "bootpack build --size 1G",
            "bootpack solo5-virtio-mkimage"
        ]
    );
    assert!(r
        .build
        .iter()
        .all(|b| b.samples.len() == 1 && b.image_bytes > 0));
    assert_eq!(r.build[1].image_bytes, 1 << 30);

    // The printed tables: a header and a line per row, numbers everywhere.
    let lines: Vec<&str> = text.lines().collect();
    for disk in ["ide", "ahci"] {
        let line = lines
            .iter()
            .find(|l| l.starts_with("demo") && l.split_whitespace().nth(1) == Some(disk))
            .unwrap_or_else(|| panic!("no boot row for {disk}:\n{text}"));
        assert!(!line.contains("fail"), "{line}");
        assert!(line.contains('x'), "a ratio to -kernel: {line}");
    }
    assert!(
        text.contains("-kernel") && text.contains("bootpack"),
        "{text}"
    );
    assert_eq!(
        lines
            .iter()
            .filter(|l| l.starts_with("demo") && l.contains("bootpack "))
            .count(),
        3,
        "{text}"
    );
}

/// The benchmark's option values name every disk and loader and the kernel
/// sizes it documents.
#[test]
fn benchmark_option_values_parse() {
    for d in Disk::ALL {
        assert_eq!(Disk::parse(d.name()), Ok(d));
    }
    for l in Loader::ALL {
        assert_eq!(Loader::parse(l.name()), Ok(l));
    }
    assert_eq!(Kernel::parse("2.5M"), Ok(Kernel::Elf32(2_621_440)));
    assert_eq!(Kernel::parse("32M").unwrap().name(), "32M");
    assert!(Disk::parse("floppy").is_err() && Kernel::parse("2.5").is_err());
}
