//! bootpack's test and demo kernel.
//!
//! A Multiboot 1 and Multiboot 2 kernel shaped like a Solo5 "virtio"
//! unikernel (ELF64 with the a.out kludge, 64-bit e_entry, an empty PT_LOAD
//! at 0, a PT_TLS) that prints on COM1 everything the boot loader handed
//! over (Multiboot 1 information or Multiboot 2 tags), one fact per line,
//! each line starting with "BPTK " so tests can parse them, and then exits
//! QEMU through isa-debug-exit (or powers off through ACPI).
//!
//! Output lines end in "\r\n", as serial consoles expect.

#![no_std]
#![no_main]

mod boot;
mod fault;
mod phys;
mod serial;

use core::fmt::Write;
use core::ptr::{addr_of, read_volatile};
use serial::Com1;
use x86_64::instructions::port::Port;

const MULTIBOOT_BOOTLOADER_MAGIC: u32 = 0x2bad_b002;
const MULTIBOOT2_BOOTLOADER_MAGIC: u32 = 0x36d7_6289;

/// First word of the payload descriptor: the bytes "BPPAPYLD" read as a
/// little-endian u64 (bytes 42 50 50 41 50 59 4c 44). Tests find the
/// descriptor at file offset 0x1020 or by searching the kernel file for
/// these 8 bytes, which occur there only.
const PAYLOAD_MARKER: u64 = 0x444c_5950_4150_5042;

/// The payload descriptor, patched in the file by tests: [marker, addr, len,
/// checksum], little-endian u64 words. When len != 0 the kernel checks
/// [addr, addr + len) against checksum (see `payload_hash`). The linker script
/// places it right after the Multiboot header, at address 0x100020 = file
/// offset 0x1020, whatever the code size. It is only ever read with
/// read_volatile so the compiler cannot fold the unpatched values in.
#[used]
#[link_section = ".data.bptk_payload"]
pub static mut BPTK_PAYLOAD: [u64; 4] = [PAYLOAD_MARKER, 0, 0, 0];

/// First word of the zero-region descriptor: the bytes "BPZEROPL".
const ZERO_MARKER: u64 = 0x4c50_4f52_455a_5042;

/// The zero-region descriptor, patched in the file by tests (found by its
/// marker): [marker, addr, len]. When len != 0 the kernel checks that the
/// len bytes at addr are all zero (a large bss the loader must have
/// zeroed). Read only with read_volatile, like BPTK_PAYLOAD.
#[used]
#[link_section = ".data.bptk_zero"]
pub static mut BPTK_ZERO: [u64; 3] = [ZERO_MARKER, 0, 0];

/// First word of the mode descriptor: the bytes "BPMODEFL".
const MODE_MARKER: u64 = 0x4c46_4544_4f4d_5042;

/// The mode descriptor, patched in the file by tests (found by its
/// marker): [marker, flags]. Flag bit 0: at entry, load a GDT of our own
/// (null, code 0x08, data 0x10) and `iret` without reloading CS first, as
/// kernels in the wild do; it works only if the loader entered with
/// CS = 0x08. Read by `_start32` (boot.rs) before anything else.
#[used]
#[link_section = ".data.bptk_mode"]
pub static mut BPTK_MODE: [u64; 2] = [MODE_MARKER, 0];

/// 64 KiB of bss that nothing writes: it must read as zero if the loader
/// zeroed [load_end_addr, bss_end_addr) as Multiboot requires.
static mut BSS_PROBE: [u64; 8192] = [0; 8192];

/// Writes one "BPTK ..." line.
macro_rules! bptk {
    ($out:expr, $($arg:tt)*) => {{
        let out: &mut Com1 = $out;
        let _ = out.write_str("BPTK ");
        let _ = write!(out, $($arg)*);
        let _ = out.write_str("\r\n");
    }};
}

/// Called by `_start64` (boot.rs) in long mode with the identity map active,
/// on the kernel's own stack.
pub extern "C" fn kernel_main() -> ! {
    fault::install();
    let mut out = Com1::init();
    // SAFETY: SAVED was completely written by _start32 before this function
    // ran and nothing writes it afterwards; the volatile read keeps the
    // compiler from assuming the all-zero initializer is still there.
    let saved = unsafe { read_volatile(addr_of!(boot::SAVED)) };

    let _ = out.write_str("\r\nbootpack demo kernel: here is what the boot loader handed over\r\n");
    bptk!(&mut out, "begin");
    report_multiboot(&mut out, &saved);
    report_machine(&mut out, &saved);
    report_image(&mut out);
    bptk!(&mut out, "end");
    exit(EXIT_OK)
}

/// The Multiboot magic, the info structure and everything it points to.
fn report_multiboot(out: &mut Com1, saved: &boot::Saved) {
    bptk!(out, "magic 0x{:08x}", saved.eax);
    if saved.eax == MULTIBOOT2_BOOTLOADER_MAGIC {
        report_multiboot2(out, u64::from(saved.ebx));
        return;
    }
    if saved.eax != MULTIBOOT_BOOTLOADER_MAGIC {
        // For people; tests read the magic line.
        let _ = out.write_str("(that is not the Multiboot magic 0x2badb002: this loader did not boot us as Multiboot says)\r\n");
    }
    bptk!(out, "info 0x{:08x}", saved.ebx);
    // Reported even when the magic is wrong: the tests want to see what
    // arrived. Without the magic EBX may be garbage, but phys reads cannot
    // fault, so reading it is harmless.
    let info = u64::from(saved.ebx);
    let flags = phys::read_u32(info);
    bptk!(out, "flags 0x{flags:08x}");

    if flags & 1 << 0 != 0 {
        bptk!(out, "mem_lower {}", phys::read_u32(info + 4));
        bptk!(out, "mem_upper {}", phys::read_u32(info + 8));
    }
    if flags & 1 << 1 != 0 {
        bptk!(out, "boot_device 0x{:08x}", phys::read_u32(info + 12));
    }
    if flags & 1 << 2 != 0 {
        report_cmdline(out, u64::from(phys::read_u32(info + 16)), MAX_CMDLINE);
    }
    if flags & 1 << 3 != 0 {
        let count = phys::read_u32(info + 20);
        let addr = phys::read_u32(info + 24);
        bptk!(out, "mods_count {count}");
        bptk!(out, "mods_addr 0x{addr:08x}");
        // Each module: mod_start, mod_end, string, reserved (16 bytes).
        // Printed as "mod START END HASH STRING": HASH is bytes_hash of
        // [START, END), STRING the module's string as text (may be empty).
        for i in 0..u64::from(count.min(MAX_MODS)) {
            let entry = u64::from(addr) + 16 * i;
            let string = u64::from(phys::read_u32(entry + 8));
            let len = if string != 0 {
                c_string_len(string, MAX_CMDLINE)
            } else {
                0
            };
            report_module(
                out,
                phys::read_u32(entry),
                phys::read_u32(entry + 4),
                string,
                len,
            );
        }
    }
    if flags & 1 << 6 != 0 {
        let length = phys::read_u32(info + 44);
        let addr = phys::read_u32(info + 48);
        bptk!(out, "mmap_addr 0x{addr:08x}");
        bptk!(out, "mmap_length {length}");
        // Entries are {size: u32, base: u64, length: u64, type: u32}, each
        // followed by the next at +size+4 (Multiboot 1 §3.3), so a loader
        // may use a larger size than 20.
        let mut entry = u64::from(addr);
        let end = u64::from(addr) + u64::from(length);
        let mut count = 0;
        while entry < end && count < MAX_MMAP_ENTRIES {
            let size = phys::read_u32(entry);
            let base = phys::read_u64(entry + 4);
            let len = phys::read_u64(entry + 12);
            let kind = phys::read_u32(entry + 20);
            bptk!(out, "mmap 0x{base:016x} 0x{len:016x} {kind} {size}");
            entry += u64::from(size) + 4;
            count += 1;
        }
    }
    if flags & 1 << 9 != 0 {
        report_loader_name(out, u64::from(phys::read_u32(info + 64)), 256);
    }
    if flags & 1 << 11 != 0 {
        report_vbe(
            out,
            u64::from(phys::read_u32(info + 72)),
            u64::from(phys::read_u32(info + 76)),
            info + 80,
        );
    }
    if flags & 1 << 12 != 0 {
        report_framebuffer(out, info + 88, FbColors::Mb1);
    }
}

/// Where a framebuffer's colour information is: the Multiboot 1 layout
/// (palette address and count) or Multiboot 2's (count and palette inline).
#[derive(Clone, Copy, PartialEq, Eq)]
enum FbColors {
    Mb1,
    Mb2,
}

/// The VBE information: "vbe_control_info ADDR", "vbe_mode_info ADDR",
/// "vbe_mode MODE SEG OFF LEN" (four u16 at `fields`), then what the two
/// blocks say: "vbe_controller SIGNATURE VERSION TOTAL_64K MODE_LIST
/// MODES" (the mode list's address and length) and
/// "vbe_mode_block ATTRIBUTES WIDTH HEIGHT BPP MODEL PHYS_BASE PITCH
/// LIN_PITCH RPOS RSIZE GPOS GSIZE BPOS BSIZE".
fn report_vbe(out: &mut Com1, control: u64, mode: u64, fields: u64) {
    bptk!(out, "vbe_control_info 0x{control:08x}");
    bptk!(out, "vbe_mode_info 0x{mode:08x}");
    let u16_at = |a: u64| phys::read_u32(a) & 0xFFFF;
    bptk!(
        out,
        "vbe_mode 0x{:04x} 0x{:04x} 0x{:04x} {}",
        u16_at(fields),
        u16_at(fields + 2),
        u16_at(fields + 4),
        u16_at(fields + 6)
    );
    let sig: [u8; 4] = core::array::from_fn(|i| phys::read_u8(control + i as u64));
    // The mode list: a real-mode far pointer at offset 14, 0xFFFF-terminated.
    let list = u64::from(u16_at(control + 16)) * 16 + u64::from(u16_at(control + 14));
    let modes = (0..512)
        .take_while(|i| u16_at(list + 2 * i) != 0xFFFF)
        .count();
    bptk!(
        out,
        "vbe_controller {} 0x{:04x} {} 0x{list:08x} {modes}",
        core::str::from_utf8(&sig).unwrap_or("????"),
        u16_at(control + 4),
        u16_at(control + 18)
    );
    let b = |o: u64| phys::read_u8(mode + o);
    bptk!(
        out,
        "vbe_mode_block 0x{:04x} {} {} {} {} 0x{:08x} {} {} {} {} {} {} {} {}",
        u16_at(mode),
        u16_at(mode + 0x12),
        u16_at(mode + 0x14),
        b(0x19),
        b(0x1B),
        phys::read_u32(mode + 0x28),
        u16_at(mode + 0x10),
        u16_at(mode + 0x32),
        b(0x20),
        b(0x1F),
        b(0x22),
        b(0x21),
        b(0x24),
        b(0x23)
    );
}

/// "bochs_vbe ID XRES YRES BPP ENABLE" from the Bochs VBE registers (index
/// port 0x1CE, data port 0x1CF), as QEMU's std VGA has them.
fn report_bochs_vbe(out: &mut Com1) {
    let mut index: Port<u16> = Port::new(0x1CE);
    let mut data: Port<u16> = Port::new(0x1CF);
    let mut reg = |i: u16| {
        // SAFETY: the Bochs VBE ports; on a machine without them reads give
        // 0xFFFF and writes to the index port go nowhere.
        unsafe {
            index.write(i);
            data.read()
        }
    };
    let (id, xres, yres, bpp, enable) = (reg(0), reg(1), reg(2), reg(3), reg(4));
    bptk!(
        out,
        "bochs_vbe 0x{id:04x} {xres} {yres} {bpp} 0x{enable:04x}"
    );
}

/// The framebuffer fields at `at` (addr u64, pitch, width, height u32, bpp
/// u8, type u8, then the colour information: at +24 in both protocols,
/// Multiboot 1's after 2 bytes of padding as multiboot.h has it, Multiboot
/// 2's after a reserved u16): "framebuffer ADDR PITCH
/// WIDTH HEIGHT BPP TYPE", then for type 1 "framebuffer_rgb RPOS RSIZE
/// GPOS GSIZE BPOS BSIZE", for type 0 "framebuffer_palette COUNT HASH"
/// (bytes_hash of the 3-byte entries). Then the Bochs VBE registers
/// ("bochs_vbe ID XRES YRES BPP ENABLE"): what the display adapter is
/// really set to, on QEMU's std VGA.
fn report_framebuffer(out: &mut Com1, at: u64, colors: FbColors) {
    report_bochs_vbe(out);
    let ty = phys::read_u8(at + 21);
    bptk!(
        out,
        "framebuffer 0x{:016x} {} {} {} {} {ty}",
        phys::read_u64(at),
        phys::read_u32(at + 8),
        phys::read_u32(at + 12),
        phys::read_u32(at + 16),
        phys::read_u8(at + 20)
    );
    let c = |o: u64| phys::read_u8(at + 24 + o);
    match ty {
        1 => {
            bptk!(
                out,
                "framebuffer_rgb {} {} {} {} {} {}",
                c(0),
                c(1),
                c(2),
                c(3),
                c(4),
                c(5)
            );
        }
        0 => {
            let (count, table) = match colors {
                FbColors::Mb1 => (
                    phys::read_u32(at + 28) & 0xFFFF,
                    u64::from(phys::read_u32(at + 24)),
                ),
                FbColors::Mb2 => (phys::read_u32(at + 24) & 0xFFFF, at + 26),
            };
            let hash = bytes_hash(table, 3 * u64::from(count));
            bptk!(out, "framebuffer_palette {count} 0x{hash:016x}");
        }
        _ => {}
    }
}

/// "cmdline_addr", "cmdline_len", "cmdline_hex", "cmdline_text" for the
/// NUL-terminated string at addr (at most `max` bytes).
fn report_cmdline(out: &mut Com1, addr: u64, max: u64) {
    bptk!(out, "cmdline_addr 0x{addr:08x}");
    let len = c_string_len(addr, max);
    bptk!(out, "cmdline_len {len}");
    let _ = out.write_str("BPTK cmdline_hex ");
    for i in 0..len {
        let _ = write!(out, "{:02x}", phys::read_u8(addr + i));
    }
    let _ = out.write_str("\r\nBPTK cmdline_text ");
    write_text(out, addr, len);
    let _ = out.write_str("\r\n");
}

/// "loader_name_addr" and "loader_name".
fn report_loader_name(out: &mut Com1, addr: u64, max: u64) {
    bptk!(out, "loader_name_addr 0x{addr:08x}");
    let _ = out.write_str("BPTK loader_name ");
    write_text(out, addr, c_string_len(addr, max));
    let _ = out.write_str("\r\n");
}

/// "mod START END HASH STRING": HASH is bytes_hash of [START, END), STRING
/// the `len` bytes at `string` as text (may be empty).
fn report_module(out: &mut Com1, start: u32, end: u32, string: u64, len: u64) {
    let hash = bytes_hash(u64::from(start), u64::from(end.saturating_sub(start)));
    let _ = write!(out, "BPTK mod 0x{start:08x} 0x{end:08x} 0x{hash:016x} ");
    write_text(out, string, len);
    let _ = out.write_str("\r\n");
}

/// The Multiboot 2 information block at `info`: every tag (a "tag" line
/// each), and for the tags bootpack provides, their contents in the same
/// lines as Multiboot 1 where there is one.
fn report_multiboot2(out: &mut Com1, info: u64) {
    bptk!(out, "info 0x{info:08x}");
    let total = phys::read_u32(info);
    bptk!(out, "mbi2_size {total}");
    bptk!(out, "mbi2_reserved 0x{:08x}", phys::read_u32(info + 4));
    let end = info + u64::from(total);
    let mut at = info + 8;
    let mut mods = 0;
    let mut count = 0;
    while at + 8 <= end && count < MAX_TAGS {
        let ty = phys::read_u32(at);
        let size = u64::from(phys::read_u32(at + 4));
        bptk!(out, "tag {ty} {size} 0x{at:08x}");
        let body = size.saturating_sub(8);
        match ty {
            0 => break,
            1 => report_cmdline(out, at + 8, body),
            2 => report_loader_name(out, at + 8, body),
            3 => {
                let string = at + 16;
                let len = c_string_len(string, size.saturating_sub(16));
                report_module(
                    out,
                    phys::read_u32(at + 8),
                    phys::read_u32(at + 12),
                    string,
                    len,
                );
                mods += 1;
            }
            4 => {
                bptk!(out, "mem_lower {}", phys::read_u32(at + 8));
                bptk!(out, "mem_upper {}", phys::read_u32(at + 12));
            }
            5 => bptk!(
                out,
                "bootdev 0x{:08x} 0x{:08x} 0x{:08x}",
                phys::read_u32(at + 8),
                phys::read_u32(at + 12),
                phys::read_u32(at + 16)
            ),
            6 => {
                let entry_size = u64::from(phys::read_u32(at + 8));
                bptk!(out, "mmap_entry_size {entry_size}");
                bptk!(out, "mmap_entry_version {}", phys::read_u32(at + 12));
                bptk!(out, "mmap_addr 0x{:08x}", at + 16);
                bptk!(out, "mmap_length {}", size.saturating_sub(16));
                let mut e = at + 16;
                let mut n = 0;
                while entry_size > 0 && e + entry_size <= at + size && n < MAX_MMAP_ENTRIES {
                    let base = phys::read_u64(e);
                    let len = phys::read_u64(e + 8);
                    let kind = phys::read_u32(e + 16);
                    bptk!(out, "mmap 0x{base:016x} 0x{len:016x} {kind} {entry_size}");
                    e += entry_size;
                    n += 1;
                }
            }
            9 => {
                let hash = bytes_hash(at + 20, size.saturating_sub(20));
                bptk!(
                    out,
                    "elf_sections {} {} {} 0x{hash:016x}",
                    phys::read_u32(at + 8),
                    phys::read_u32(at + 12),
                    phys::read_u32(at + 16)
                );
            }
            14 | 15 => {
                let _ = write!(out, "BPTK acpi {ty} ");
                for i in 0..body.min(64) {
                    let _ = write!(out, "{:02x}", phys::read_u8(at + 8 + i));
                }
                let _ = out.write_str("\r\n");
            }
            21 => bptk!(out, "load_base 0x{:08x}", phys::read_u32(at + 8)),
            12 => {
                // The EFI system table's header: signature and revision.
                let table = phys::read_u64(at + 8);
                bptk!(
                    out,
                    "efi64_systab 0x{table:016x} 0x{:016x} 0x{:08x}",
                    phys::read_u64(table),
                    phys::read_u32(table + 8)
                );
            }
            17 => {
                // The EFI memory map: each descriptor's type, start, pages.
                let desc_size = u64::from(phys::read_u32(at + 8));
                bptk!(out, "efi_mmap {desc_size} {}", phys::read_u32(at + 12));
                let mut d = at + 16;
                let mut n = 0;
                while desc_size >= 32 && d + desc_size <= at + size && n < MAX_MMAP_ENTRIES {
                    bptk!(
                        out,
                        "efi_desc {} 0x{:016x} 0x{:016x}",
                        phys::read_u32(d),
                        phys::read_u64(d + 8),
                        phys::read_u64(d + 24)
                    );
                    d += desc_size;
                    n += 1;
                }
            }
            7 => report_vbe(out, at + 16, at + 16 + 512, at + 8),
            8 => report_framebuffer(out, at + 8, FbColors::Mb2),
            _ => {}
        }
        if size < 8 {
            break;
        }
        at = (at + size + 7) & !7;
        count += 1;
    }
    bptk!(out, "mods_count {mods}");
}

/// Longest command line reported (Solo5's buffer is 8 KiB; this is more).
const MAX_CMDLINE: u64 = 64 * 1024;
/// Bounds on lists, so a garbage count cannot print for ever.
const MAX_MODS: u32 = 256;
const MAX_MMAP_ENTRIES: u32 = 1024;
const MAX_TAGS: u32 = 1024;

/// Length of the NUL-terminated string at addr, at most `max`.
fn c_string_len(addr: u64, max: u64) -> u64 {
    (0..max)
        .find(|&i| phys::read_u8(addr + i) == 0)
        .unwrap_or(max)
}

/// Writes len bytes from addr, printable ASCII as is and others as '.'.
fn write_text(out: &mut Com1, addr: u64, len: u64) {
    for i in 0..len {
        let b = phys::read_u8(addr + i);
        out.write_byte(if (0x20..0x7f).contains(&b) { b } else { b'.' });
    }
}

/// The CPU state _start32 found: flags, control registers, segments, A20.
fn report_machine(out: &mut Com1, saved: &boot::Saved) {
    bptk!(out, "eflags 0x{:08x}", saved.eflags);
    bptk!(out, "cr0 0x{:08x}", saved.cr0);
    bptk!(out, "cr4 0x{:08x}", saved.cr4);
    bptk!(out, "efer 0x{:08x}", saved.efer);
    if saved.iret != 0 {
        bptk!(out, "iret ok");
    }
    let [cs, ds, es, fs, gs, ss] = saved.selectors;
    bptk!(
        out,
        "selectors cs=0x{cs:04x} ds=0x{ds:04x} es=0x{es:04x} fs=0x{fs:04x} gs=0x{gs:04x} ss=0x{ss:04x}"
    );
    let gdt_limit = u16::from_le_bytes([saved.gdtr[0], saved.gdtr[1]]);
    let gdt_base = u32::from_le_bytes([saved.gdtr[2], saved.gdtr[3], saved.gdtr[4], saved.gdtr[5]]);
    bptk!(out, "gdtr base=0x{gdt_base:08x} limit=0x{gdt_limit:04x}");
    for (name, selector) in [("cs", cs), ("ds", ds), ("es", es), ("ss", ss)] {
        let _ = write!(out, "BPTK gdt {name} ");
        describe_segment(out, u64::from(gdt_base), gdt_limit, selector);
        let _ = out.write_str("\r\n");
    }
    bptk!(out, "a20 {}", if saved.a20 != 0 { "on" } else { "off" });
}

/// Decodes the descriptor `selector` picks in the GDT the loader left, as
/// "base=0x........ limit=0x........ KIND" where KIND is code32, code16,
/// code64, data (32-bit: B=1), data16, or system, followed by " ro" for a
/// read-only data segment, " expdown" for an expand-down one and
/// " notpresent" when P=0. Selectors the GDT cannot resolve print just
/// "null", "ldt" or "outside".
fn describe_segment(out: &mut Com1, gdt_base: u64, gdt_limit: u16, selector: u16) {
    let offset = u64::from(selector & !7);
    if selector & 4 != 0 {
        let _ = out.write_str("ldt");
        return;
    }
    if offset == 0 {
        let _ = out.write_str("null");
        return;
    }
    if offset + 7 > u64::from(gdt_limit) {
        let _ = out.write_str("outside");
        return;
    }
    let d = phys::read_u64(gdt_base + offset).to_le_bytes();
    let base = u32::from_le_bytes([d[2], d[3], d[4], d[7]]);
    let mut limit = u32::from(d[0]) | u32::from(d[1]) << 8 | u32::from(d[6] & 0x0f) << 16;
    if d[6] & 0x80 != 0 {
        // G=1: the limit counts 4 KiB pages.
        limit = limit << 12 | 0xfff;
    }
    let access = d[5];
    let present = access & 0x80 != 0;
    let code_or_data = access & 0x10 != 0;
    let executable = access & 0x08 != 0;
    let big = d[6] & 0x40 != 0; // D (code) / B (data)
    let long = d[6] & 0x20 != 0;
    let kind = match (code_or_data, executable, long, big) {
        (false, _, _, _) => "system",
        (true, true, true, _) => "code64",
        (true, true, false, true) => "code32",
        (true, true, false, false) => "code16",
        (true, false, _, true) => "data",
        (true, false, _, false) => "data16",
    };
    let _ = write!(out, "base=0x{base:08x} limit=0x{limit:08x} {kind}");
    if code_or_data && !executable {
        if access & 0x02 == 0 {
            let _ = out.write_str(" ro");
        }
        if access & 0x04 != 0 {
            let _ = out.write_str(" expdown");
        }
    }
    if !present {
        let _ = out.write_str(" notpresent");
    }
}

/// The kernel's own image as linked, the bss probe and the payload.
fn report_image(out: &mut Com1) {
    let load_start = addr_of!(boot::__bptk_load_start) as usize;
    let load_end = addr_of!(boot::__bptk_load_end) as usize;
    let bss_end = addr_of!(boot::__bptk_bss_end) as usize;
    bptk!(
        out,
        "image 0x{load_start:08x} 0x{load_end:08x} 0x{bss_end:08x}"
    );

    // SAFETY: BSS_PROBE is a static that nothing writes; volatile reads of
    // its words in bounds make the compiler actually load the memory the
    // loader was supposed to zero instead of assuming the initializer.
    let probe = addr_of!(BSS_PROBE) as *const u64;
    let dirty = (0..8192).any(|i| unsafe { read_volatile(probe.add(i)) } != 0);
    bptk!(out, "bss {}", if dirty { "dirty" } else { "zero" });

    // SAFETY: in-bounds volatile reads of a static nothing in the kernel
    // writes (tests patch it in the file); see BPTK_PAYLOAD.
    let desc: [u64; 4] = unsafe { read_volatile(addr_of!(BPTK_PAYLOAD)) };
    let [_marker, addr, len, checksum] = desc;
    // SAFETY: as above, for BPTK_ZERO.
    let [_, zero_addr, zero_len]: [u64; 3] = unsafe { read_volatile(addr_of!(BPTK_ZERO)) };
    if zero_len != 0 {
        let verdict = if zero_len % 8 != 0
            || zero_addr
                .checked_add(zero_len)
                .is_none_or(|e| e > phys::MAPPED_END)
        {
            "invalid"
        } else if (0..zero_len / 8).all(|i| phys::read_u64(zero_addr + 8 * i) == 0) {
            "zero"
        } else {
            "dirty"
        };
        bptk!(out, "zero 0x{zero_addr:08x} {zero_len} {verdict}");
    }
    if len == 0 {
        bptk!(out, "payload none");
        return;
    }
    let verdict = if len % 8 != 0 || addr.checked_add(len).is_none_or(|e| e > phys::MAPPED_END) {
        "invalid"
    } else if payload_hash(addr, len) == checksum {
        "ok"
    } else {
        "bad"
    };
    bptk!(out, "payload 0x{addr:08x} {len} {verdict}");
}

/// `payload_hash` over len bytes of any length: the last partial word is
/// padded with zero bytes. Lets tests check module contents.
fn bytes_hash(addr: u64, len: u64) -> u64 {
    let mut h = payload_hash(addr, len & !7);
    let tail = len & 7;
    if tail != 0 {
        let mut word = [0u8; 8];
        for (i, b) in word.iter_mut().enumerate().take(tail as usize) {
            *b = phys::read_u8(addr + (len & !7) + i as u64);
        }
        h = (h ^ u64::from_le_bytes(word)).wrapping_mul(FNV_PRIME);
    }
    h
}

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0100_0000_01b3;

/// FNV-1a-style hash over little-endian u64 words: h = 0xcbf29ce484222325,
/// then h = (h ^ w) * 0x100000001b3 for each word. Tests compute the same.
fn payload_hash(addr: u64, len: u64) -> u64 {
    let mut h = FNV_OFFSET;
    for i in 0..len / 8 {
        h = (h ^ phys::read_u64(addr + 8 * i)).wrapping_mul(FNV_PRIME);
    }
    h
}

/// Values written to isa-debug-exit; QEMU exits with (value << 1) | 1.
/// Normal end: 0x10, status 33.
pub const EXIT_OK: u8 = 0x10;
/// After a CPU exception (fault.rs): status 35.
pub const EXIT_FAULT: u8 = 0x11;
/// After a Rust panic: status 37.
pub const EXIT_PANIC: u8 = 0x12;

/// Leaves: QEMU's isa-debug-exit first (Solo5's port 0x501, where `bootpack
/// run` has one, with 0 for a normal end so `run` exits 0 like a unikernel's
/// exit(0); then the tests' port 0xf4 with `code`), then ACPI power-off,
/// then halts for ever.
pub fn exit(code: u8) -> ! {
    let solo5_status = if code == EXIT_OK { 0 } else { code };
    // SAFETY: ports 0x501 and 0xf4 are isa-debug-exit when QEMU has one
    // there and otherwise unused ISA ports (writes vanish). Port 0x604 is
    // the PM1a control register of QEMU's pc (PIIX4) and q35 (ICH9) ACPI
    // blocks; 0x2000 is SLP_EN with SLP_TYP 0 (S5 in QEMU's tables).
    // Elsewhere nothing decodes it. All only end or leave the machine
    // untouched.
    unsafe {
        Port::<u8>::new(0x501).write(solo5_status);
        Port::<u8>::new(0xf4).write(code);
        Port::<u16>::new(0x604).write(0x2000);
    }
    loop {
        x86_64::instructions::interrupts::disable();
        x86_64::instructions::hlt();
    }
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    // Nothing in the kernel is expected to panic; if it does, say so in a
    // line the tests recognise and leave with a distinct status.
    let mut out = Com1::init();
    bptk!(&mut out, "panic {}", info);
    exit(EXIT_PANIC)
}
