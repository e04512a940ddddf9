//! The machine state at kernel entry: the one kernels in the wild survive.
//!
//! The Multiboot specifications leave the selector values, most of EFLAGS
//! and the control registers open. Kernels were written against QEMU's
//! `-kernel` (CS 0x08, data 0x10, the null/code/data layout of their own
//! GDTs) and GRUB; a kernel that loads its own GDT and never reloads CS
//! faults on its first `iret` unless CS is 0x08. bootpack enters with CS
//! 0x08, DS = ES = FS = GS = SS = 0x10, EFLAGS 0x2, CR0 without PG, CD and
//! NW, CR4 = 0 and EFER = 0, and these tests hold it to that (the boot
//! tests in boot.rs check the same on every boot).

mod support;

use std::time::Duration;

use support::dirty_rom;
use support::kernels::{self, Headers, Shape, Spec, MODE_IRET};
use support::qemu::{self, Machine};
use support::report::Report;
use support::scratch;

const BOOT_TIMEOUT: Duration = Duration::from_secs(60);
/// isa-debug-exit: the kernel writes 0x10, QEMU exits (0x10 << 1) | 1.
const KERNEL_EXIT: i32 = 0x21;

/// Packs `spec` with bootpack (its preferred protocol) and boots it.
fn boot_bootpack(test: &str, spec: &Spec, machine: &'static str) -> (Report, String) {
    boot_bootpack_on(test, spec, Machine::new(machine, "128M"))
}

fn boot_bootpack_on(test: &str, spec: &Spec, m: Machine) -> (Report, String) {
    let dir = scratch(test);
    let kernel = dir.join("kernel");
    std::fs::write(&kernel, kernels::build_spec(spec)).unwrap();
    let image = dir.join("disk.img");
    bootpack::Build::new(&kernel)
        .args(["entry"])
        .write(&image)
        .unwrap_or_else(|e| panic!("packing failed: {e}"));
    let run = qemu::boot_image(&image, &m, BOOT_TIMEOUT);
    let text = run.serial_text();
    assert_eq!(
        run.exit,
        Some(KERNEL_EXIT),
        "QEMU exit status; serial:\n{text}"
    );
    (Report::parse(&run.serial), text)
}

/// The entry state bootpack promises (README, "What the kernel gets").
fn assert_entry_state(r: &Report, what: &str) {
    assert_eq!(
        r.get("selectors"),
        "cs=0x0008 ds=0x0010 es=0x0010 fs=0x0010 gs=0x0010 ss=0x0010",
        "{what}: selectors"
    );
    assert_eq!(r.get("eflags"), "0x00000002", "{what}: EFLAGS");
    let cr0 = r.num("cr0");
    assert_eq!(cr0 & 0x11, 0x11, "{what}: CR0.PE and ET: {cr0:#x}");
    assert_eq!(cr0 & 0xE000_0000, 0, "{what}: CR0.PG, CD, NW: {cr0:#x}");
    assert_eq!(r.get("cr4"), "0x00000000", "{what}: CR4");
    assert_eq!(r.get("efer"), "0x00000000", "{what}: EFER");
    for seg in ["ds", "es", "ss"] {
        assert_eq!(
            r.gdt[seg], "base=0x00000000 limit=0xffffffff data",
            "{what}: {seg}"
        );
    }
    assert_eq!(
        r.gdt["cs"], "base=0x00000000 limit=0xffffffff code32",
        "{what}: cs"
    );
}

#[test]
fn entry_state_under_both_protocols_and_machines() {
    for (headers, magic) in [(Headers::Mb1, "0x2badb002"), (Headers::Mb2, "0x36d76289")] {
        for machine in ["pc", "q35"] {
            let what = format!("{headers:?} on {machine}");
            let spec = Spec::new(Shape::Solo5Elf64, headers);
            let (r, _) = boot_bootpack(&format!("state-{headers:?}-{machine}"), &spec, machine);
            assert_eq!(r.get("magic"), magic, "{what}");
            assert_entry_state(&r, &what);
        }
    }
}

#[test]
fn selectors_are_those_of_qemus_own_loader() {
    // The model: QEMU's -kernel, booting the same file (Multiboot 1).
    let dir = scratch("qemu-selectors");
    let kernel = dir.join("kernel");
    std::fs::write(
        &kernel,
        kernels::build_spec(&Spec::new(Shape::Solo5Elf64, Headers::Mb1)),
    )
    .unwrap();
    let run = qemu::boot_kernel(&kernel, "ref", &Machine::new("pc", "64M"), BOOT_TIMEOUT);
    let theirs = Report::parse(&run.serial);
    let (ours, _) = boot_bootpack(
        "ours-selectors",
        &Spec::new(Shape::Solo5Elf64, Headers::Mb1),
        "pc",
    );
    assert_eq!(ours.get("selectors"), theirs.get("selectors"));
}

#[test]
fn a_kernel_that_loads_its_own_gdt_and_keeps_cs_survives_iret() {
    // The test kernel loads a GDT of its own (null, 0x08 code, 0x10 data)
    // and irets without reloading CS, as kernels in the wild do. With the
    // CS = 0x18 bootpack used to enter with, the iret loads a selector
    // beyond that GDT and the machine resets (no report at all).
    for (shape, headers) in [
        (Shape::Solo5Elf64, Headers::Mb1),
        (Shape::Elf32, Headers::Mb2),
    ] {
        let what = format!("{shape:?} {headers:?}");
        let spec = Spec {
            mode: MODE_IRET,
            ..Spec::new(shape, headers)
        };
        let (r, text) = boot_bootpack(&format!("iret-{shape:?}-{headers:?}"), &spec, "pc");
        assert_eq!(r.get("iret"), "ok", "{what}:\n{text}");
        assert_entry_state(&r, &what);
    }
    // QEMU's own loader, the model, boots it too.
    let dir = scratch("iret-qemu");
    let kernel = dir.join("kernel");
    let spec = Spec {
        mode: MODE_IRET,
        ..Spec::new(Shape::Solo5Elf64, Headers::Mb1)
    };
    std::fs::write(&kernel, kernels::build_spec(&spec)).unwrap();
    let run = qemu::boot_kernel(&kernel, "ref", &Machine::new("pc", "64M"), BOOT_TIMEOUT);
    assert_eq!(Report::parse(&run.serial).get("iret"), "ok");
}

#[test]
fn what_the_bios_left_in_cr0_cr4_and_efer_is_cleared() {
    // An option ROM sets CR4.PSE and OSFXSR and EFER.SCE at POST, and
    // CR0.CD and NW (caching off) after every INT 13h and 15h call.
    let dir = scratch("dirty-bios");
    let rom = dir.join("dirty.rom");
    std::fs::write(&rom, dirty_rom::rom()).unwrap();
    let machine = |mem| Machine {
        extra: vec!["-option-rom".into(), rom.display().to_string()],
        ..Machine::new("pc", mem)
    };
    // The ROM works: a boot sector sees CD and NW after its INT 13h call,
    // and QEMU's own loader passes CR4 and EFER on to the kernel.
    let probe = dir.join("probe.img");
    std::fs::write(&probe, dirty_rom::cdnw_probe_sector()).unwrap();
    let run = qemu::boot_image(&probe, &machine("64M"), BOOT_TIMEOUT);
    assert_eq!(run.serial_text(), "CDNW y\n", "the probe boot sector");
    let kernel = dir.join("kernel");
    let spec = Spec::new(Shape::Solo5Elf64, Headers::Mb1);
    std::fs::write(&kernel, kernels::build_spec(&spec)).unwrap();
    let run = qemu::boot_kernel(&kernel, "ref", &machine("64M"), BOOT_TIMEOUT);
    let theirs = Report::parse(&run.serial);
    assert_eq!(theirs.num("cr4") & dirty_rom::CR4_BITS, dirty_rom::CR4_BITS);
    assert_eq!(
        theirs.num("efer") & dirty_rom::EFER_BITS,
        dirty_rom::EFER_BITS
    );
    // bootpack clears all of it.
    for headers in [Headers::Mb1, Headers::Mb2] {
        let (ours, _) = boot_bootpack_on(
            &format!("dirty-bios-{headers:?}"),
            &Spec::new(Shape::Solo5Elf64, headers),
            machine("128M"),
        );
        assert_entry_state(&ours, &format!("{headers:?} after a dirty BIOS"));
    }
}
