//! Video modes: kernels that ask for a graphics mode (Multiboot 1 flag bit
//! 2, the Multiboot 2 framebuffer tag) get it through VBE, chosen as GRUB
//! chooses it, and are told exactly what was set; the EGA text fallback;
//! `--video`; requests that cannot be met. Booted on QEMU's std VGA (Bochs
//! VBE), whose registers the test kernel reads back ("bochs_vbe") to show
//! what the adapter really is set to.

mod support;

use std::path::{Path, PathBuf};
use std::time::Duration;

use bootpack::proto::mb1_header;
use support::kernels::{self, Headers, Shape, Spec};
use support::memplan::{INFO_ARENA_ADDR, INFO_ARENA_LEN};
use support::qemu::{self, Machine};
use support::report::Report;
use support::{bootpack, scratch};

const BOOT_TIMEOUT: Duration = Duration::from_secs(90);
/// isa-debug-exit: the kernel writes 0x10, QEMU exits (0x10 << 1) | 1.
const KERNEL_EXIT: i32 = 0x21;
/// Where QEMU's std VGA (on the pc machine) puts its linear framebuffer.
const LFB: u64 = 0xFD00_0000;

fn std_vga() -> Machine {
    let mut m = Machine::new("pc", "128M");
    m.extra = vec!["-vga".into(), "std".into()];
    m
}

fn words(w: &[u32]) -> Vec<u8> {
    w.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// The test kernel (ELF32, Multiboot 1 only) with flag bit 2 and the video
/// fields (mode_type, width, height, depth), or without the bit.
fn mb1_kernel(video: Option<[u32; 4]>) -> Vec<u8> {
    let mut file = kernels::build_spec(&Spec::new(Shape::Elf32, Headers::Mb1));
    if let Some(v) = video {
        let off = mb1_header::find(&file).unwrap().offset;
        mb1_header::write(&mut file, off, 0x3 | mb1_header::FLAG_VIDEO_MODE, None);
        // The fields after the header's 32 bytes overlay the kernel's
        // payload descriptor's marker and address, which it ignores while
        // the length (the next word) is 0.
        file[off + 32..off + 48].copy_from_slice(&words(&v));
        if v[0] < 2 {
            assert_eq!(mb1_header::find(&file).unwrap().video.unwrap().width, v[1]);
        }
    }
    file
}

struct Packed {
    _dir: support::Scratch,
    image: PathBuf,
}

/// Writes `kernel` and packs it with `extra` options.
fn pack(test: &str, kernel: &[u8], extra: &[&str]) -> Packed {
    let dir = scratch(test);
    let k = dir.join("kernel");
    std::fs::write(&k, kernel).unwrap();
    let image = dir.join("disk.img");
    let r = bootpack(build_args(&k, &image, extra));
    assert!(
        r.status.success(),
        "bootpack build failed: {}",
        String::from_utf8_lossy(&r.stderr)
    );
    Packed { _dir: dir, image }
}

fn build_args(kernel: &Path, image: &Path, extra: &[&str]) -> Vec<String> {
    let mut argv = vec![
        "build".to_string(),
        kernel.display().to_string(),
        "-o".into(),
        image.display().to_string(),
    ];
    argv.extend(extra.iter().map(|s| s.to_string()));
    argv
}

fn boot(p: &Packed) -> Report {
    let run = qemu::boot_image(&p.image, &std_vga(), BOOT_TIMEOUT);
    assert_eq!(
        run.exit,
        Some(KERNEL_EXIT),
        "QEMU exit status; serial:\n{}",
        run.serial_text()
    );
    assert!(
        run.serial.starts_with(b"\r\nbootpack demo kernel:"),
        "the loader printed nothing:\n{}",
        run.serial_text()
    );
    Report::parse(&run.serial)
}

fn fields(r: &Report, key: &str) -> Vec<u64> {
    r.get(key)
        .split_whitespace()
        .map(|v| match v.strip_prefix("0x") {
            Some(h) => u64::from_str_radix(h, 16).unwrap(),
            None => v.parse().unwrap_or(0),
        })
        .collect()
}

/// A graphics mode set and reported exactly: the framebuffer fields say
/// what the VBE mode information block says (the one the kernel is given
/// and a fresh look at the adapter's registers), with pitch = width *
/// bytes per pixel on QEMU.
fn assert_graphics(r: &Report, width: u64, height: u64, bpp: u64, rgb: [u64; 6]) {
    let fb = fields(r, "framebuffer");
    let bytes = bpp.div_ceil(8);
    assert_eq!(
        fb,
        [LFB, width * bytes, width, height, bpp, 1],
        "framebuffer"
    );
    assert_eq!(fields(r, "framebuffer_rgb"), rgb, "colour layout");
    // The VBE mode information block the kernel got describes the same
    // mode: attributes (supported, colour, graphics, LFB), resolution,
    // depth, direct colour (6), base, pitch, colour fields.
    let m = fields(r, "vbe_mode_block");
    assert_eq!(m[0] & 0x99, 0x99, "mode attributes {:#x}", m[0]);
    assert_eq!(&m[1..6], [width, height, bpp, 6, LFB]);
    assert_eq!(m[7], width * bytes, "linear pitch");
    assert_eq!(&m[8..14], rgb);
    // The mode number 4F03h returns, with the linear framebuffer bit.
    let mode = fields(r, "vbe_mode");
    assert_eq!(mode[0] & 0x4000, 0x4000, "vbe_mode {:#x}", mode[0]);
    let c = r.get("vbe_controller");
    assert!(c.starts_with("VESA 0x0"), "controller {c}");
    // The mode list the controller block points to is readable where the
    // kernel finds it: in the info arena (SeaVGABIOS puts it inside the
    // block, so the pointer follows the copy), with the modes listed.
    let c = fields(r, "vbe_controller");
    let control = r.num("vbe_control_info");
    assert!(
        (control..control + 512).contains(&c[3]),
        "mode list at {:#x}, the block at {control:#x}",
        c[3]
    );
    assert!(c[4] >= 10, "{} modes listed", c[4]);
    // What the adapter is really set to: Bochs VBE registers, enabled with
    // the linear framebuffer (0x41).
    let b = fields(r, "bochs_vbe");
    assert_eq!(&b[1..4], [width, height, bpp], "adapter registers");
    assert_eq!(b[4] & 0x41, 0x41, "adapter enabled, LFB");
}

/// The EGA text console reported as GRUB reports it.
fn assert_text(r: &Report) {
    assert_eq!(
        fields(r, "framebuffer"),
        [0xB8000, 160, 80, 25, 16, 2],
        "EGA text framebuffer"
    );
    let b = fields(r, "bochs_vbe");
    assert_eq!(b[4] & 1, 0, "the adapter stays in VGA text mode");
}

fn assert_info_below_1m(r: &Report) {
    let arena = INFO_ARENA_ADDR as u64;
    for key in ["vbe_control_info", "vbe_mode_info"] {
        let a = r.num(key);
        assert!(
            (arena..arena + INFO_ARENA_LEN as u64).contains(&a),
            "{key} {a:#x} lies in the info arena"
        );
    }
}

#[test]
fn multiboot1_kernel_gets_1024x768x32() {
    let p = pack("mb1-1024", &mb1_kernel(Some([0, 1024, 768, 32])), &[]);
    let r = boot(&p);
    let flags = r.num("flags");
    assert_eq!(
        flags & 0x1800,
        0x1800,
        "flags {flags:#x}: VBE and framebuffer"
    );
    assert_graphics(&r, 1024, 768, 32, [16, 8, 8, 8, 0, 8]);
    assert_info_below_1m(&r);
}

#[test]
fn multiboot1_kernel_without_the_flag_gets_no_video_information() {
    let r = boot(&pack("mb1-none", &mb1_kernel(None), &[]));
    assert_eq!(r.num("flags") & 0x1800, 0, "no VBE or framebuffer bits");
    assert!(!r.fields.contains_key("framebuffer"));
}

#[test]
fn multiboot1_depth_0_gets_the_deepest_mode() {
    let r = boot(&pack("mb1-d0", &mb1_kernel(Some([0, 800, 600, 0])), &[]));
    assert_graphics(&r, 800, 600, 32, [16, 8, 8, 8, 0, 8]);
}

#[test]
fn multiboot1_text_mode_type() {
    let r = boot(&pack("mb1-text", &mb1_kernel(Some([1, 0, 0, 0])), &[]));
    assert_eq!(r.num("flags") & 0x1800, 0x1800);
    assert_text(&r);
    // As GRUB: the VBE fields too, mode 3 with a made-up text mode block.
    assert_eq!(fields(&r, "vbe_mode")[0], 3);
    let m = fields(&r, "vbe_mode_block");
    assert_eq!(&m[1..5], [80, 25, 0, 0]);
    assert_info_below_1m(&r);
}

#[test]
fn multiboot2_required_framebuffer_tag_gets_its_mode() {
    let r = boot(&pack(
        "mb2-800",
        &kernels::mb2_framebuffer_kernel([800, 600, 16], false, 0),
        &[],
    ));
    assert_graphics(&r, 800, 600, 16, [11, 5, 5, 6, 0, 5]);
    let tags: Vec<u32> = r.tags.iter().map(|t| t.ty).collect();
    assert!(tags.contains(&7) && tags.contains(&8), "tags {tags:?}");
    let fb = r.tags.iter().find(|t| t.ty == 8).unwrap();
    assert_eq!(fb.size, 38, "framebuffer tag: 32 + 6 colour bytes");
    let vbe = r.tags.iter().find(|t| t.ty == 7).unwrap();
    assert_eq!(vbe.size, 784);
}

#[test]
fn optional_tag_falls_back_to_text() {
    // The kernel refuses EGA text in its console flags, but its
    // framebuffer tag is optional: a mode --video makes impossible ends in
    // text.
    let r = boot(&pack(
        "mb2-opt",
        &kernels::mb2_framebuffer_kernel([1024, 768, 32], true, 0),
        &["--video", "1000x1000x32"],
    ));
    assert_text(&r);
    let tags: Vec<u32> = r.tags.iter().map(|t| t.ty).collect();
    assert!(
        !tags.contains(&7),
        "no VBE tag with text, as GRUB: {tags:?}"
    );
    assert_eq!(r.tags.iter().find(|t| t.ty == 8).unwrap().size, 32);
}

#[test]
fn option_overrides_the_kernel() {
    let k = mb1_kernel(Some([0, 1024, 768, 32]));
    let r = boot(&pack("opt-640", &k, &["--video", "640x480x16"]));
    assert_graphics(&r, 640, 480, 16, [11, 5, 5, 6, 0, 5]);
    // An option is exact: no WxH or auto alternative, so text.
    let r = boot(&pack("opt-exact", &k, &["--video", "1000x1000x32"]));
    assert_text(&r);
    let r = boot(&pack("opt-text", &k, &["--video", "text"]));
    assert_text(&r);
    // keep: the firmware left text mode 3.
    let r = boot(&pack("opt-keep", &k, &["--video", "keep"]));
    assert_text(&r);
    assert_eq!(fields(&r, "vbe_mode")[0], 3);
}

#[test]
fn indexed_mode_gets_the_palette() {
    let k = mb1_kernel(Some([0, 640, 480, 8]));
    let r = boot(&pack("mb1-8", &k, &[]));
    let fb = fields(&r, "framebuffer");
    assert_eq!(fb, [LFB, 640, 640, 480, 8, 0], "indexed framebuffer");
    let palette: Vec<u8> = bootpack::proto::video::PALETTE
        .iter()
        .flat_map(|&(r, g, b)| [r, g, b])
        .collect();
    let want = kernels::bytes_hash(&palette);
    assert_eq!(fields(&r, "framebuffer_palette"), [16, want]);
    assert_eq!(&fields(&r, "bochs_vbe")[1..4], [640, 480, 8]);
}

#[test]
fn a_request_that_cannot_be_met_stops_with_a_message() {
    // Required tag, no EGA text: nothing to fall back to.
    let p = pack(
        "mb2-none",
        &kernels::mb2_framebuffer_kernel([1024, 768, 32], false, 0),
        &["--video", "1000x1000x32"],
    );
    let run = qemu::boot_until(
        &p.image,
        &std_vga(),
        "bootpack: halted",
        Duration::from_secs(2),
        BOOT_TIMEOUT,
    );
    let want = "bootpack: error: no video mode the kernel accepts can be set: no VBE linear framebuffer mode 1000x1000x32, and the kernel does not accept EGA text";
    let serial = run.serial_text();
    assert!(serial.contains(want), "serial:\n{serial}");
    assert!(!serial.contains("BPTK"), "the kernel did not run");
    let vga = run.vga.unwrap();
    assert!(vga.contains(&want[..80]), "screen:\n{vga}");
}

#[test]
fn pack_time_refusals() {
    let dir = scratch("video-refusals");
    let image = dir.join("disk.img");
    let k = dir.join("plain");
    std::fs::write(&k, mb1_kernel(None)).unwrap();
    let r = bootpack(build_args(&k, &image, &["--video", "1024x768x32"]));
    assert_eq!(r.status.code(), Some(1));
    let err = String::from_utf8_lossy(&r.stderr);
    assert!(
        err.contains("--video 1024x768x32: the kernel accepts no graphics mode"),
        "{err}"
    );
    assert!(!image.exists(), "no image written");
    let k2 = dir.join("notext");
    std::fs::write(
        &k2,
        kernels::mb2_framebuffer_kernel([1024, 768, 32], false, 0),
    )
    .unwrap();
    let r = bootpack(build_args(&k2, &image, &["--video", "text"]));
    assert_eq!(r.status.code(), Some(1));
    let err = String::from_utf8_lossy(&r.stderr);
    assert!(
        err.contains("--video text: the kernel does not accept the EGA text console"),
        "{err}"
    );
    let r = bootpack(build_args(&k2, &image, &["--video", "1024x"]));
    assert_eq!(r.status.code(), Some(2), "usage error");
    assert!(!image.exists());
    // MB1 mode_type 2 does not exist.
    let k3 = dir.join("badtype");
    std::fs::write(&k3, mb1_kernel(Some([2, 0, 0, 0]))).unwrap();
    let r = bootpack(build_args(&k3, &image, &[]));
    assert_eq!(r.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&r.stderr).contains("mode_type 2"));
}

#[test]
fn inspect_shows_the_request() {
    let p = pack("inspect", &mb1_kernel(Some([0, 1024, 768, 32])), &[]);
    let out = bootpack(["inspect".to_string(), p.image.display().to_string()]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("video:       1024x768x32, the kernel's request; EGA text accepted"),
        "{text}"
    );
    let p = pack(
        "inspect-opt",
        &mb1_kernel(Some([0, 1024, 768, 32])),
        &["--video", "800x600"],
    );
    let out = bootpack([
        "inspect".to_string(),
        "--json".into(),
        p.image.display().to_string(),
    ]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        v["kernel"]["video"],
        serde_json::json!({"mode": "800x600", "from_option": true, "text_ok": true, "graphics_ok": true})
    );
    assert_eq!(v["kernel"]["record_version"], 3);
}

/// The Multiboot specification's example kernel as Debian ships it
/// (package `multiboot`): it asks for 1024x768x32 (flag bit 2) and, given
/// a framebuffer, draws a blue diagonal from the top left corner, pixel
/// (i, i) at framebuffer_addr + pitch * i + 4 * i for 32 bits per pixel.
/// Its text goes to the screen only, so the QEMU monitor looks: the screen
/// is 1024x768 with the diagonal blue, and the framebuffer's memory holds
/// 0x000000FF (blue at bit 0, 8 bits) exactly where a 32-bit pixel (i, i)
/// with a 4096-byte pitch lies.
#[test]
fn debian_multiboot_example_kernel_gets_1024x768x32() {
    const KERNEL: &str = "/usr/lib/multiboot/examples/kernel";
    assert!(
        Path::new(KERNEL).exists(),
        "{KERNEL} is missing: install Debian's multiboot package (apt-get install multiboot)"
    );
    let dir = scratch("debian-multiboot");
    let image = dir.join("disk.img");
    let r = bootpack(build_args(Path::new(KERNEL), &image, &[]));
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    let screen = qemu::boot_and_look(&image, &std_vga(), BOOT_TIMEOUT, |m| {
        let ppm = m.screendump()?;
        let diagonal_blue = ppm.width == 1024
            && ppm.height == 768
            && (0..768).all(|i| ppm.pixel(i, i) == [0, 0, 0xFF]);
        diagonal_blue.then_some(ppm)
    });
    let ppm = screen.expect("the screen never showed a 1024x768 picture with a blue diagonal");
    assert_eq!(ppm.pixel(5, 0), [0, 0, 0], "off the diagonal: black");
    let pixels = qemu::boot_and_look(&image, &std_vga(), BOOT_TIMEOUT, |m| {
        let words: Vec<u32> = [0u64, 1, 383, 767]
            .iter()
            .map(|&i| m.read_u32(LFB + 4096 * i + 4 * i))
            .collect::<Option<_>>()?;
        words.iter().all(|&w| w == 0xFF).then_some(words)
    });
    assert!(
        pixels.is_some(),
        "32-bit blue pixels at LFB + 4096 * i + 4 * i"
    );
}

/// GRUB's own choice, booted from a GRUB rescue CD (grub-mkrescue, GRUB
/// for i386-pc) with its VBE driver (`insmod vbe`): the test kernel must
/// get the same mode, framebuffer and colour layout (or palette) from
/// bootpack for the same request, including the fallbacks (a resolution QEMU lacks falls
/// to "auto": the EDID preferred resolution 1280x800 or below) and EGA
/// text. (With `insmod all_video` GRUB drives QEMU's std VGA with its
/// native Bochs driver instead, which sets any resolution; bootpack, like
/// GRUB on machines without a native driver, goes through VBE.)
#[test]
fn chooses_what_grub_chooses() {
    let mkrescue = std::process::Command::new("grub-mkrescue")
        .arg("--version")
        .output();
    assert!(
        matches!(mkrescue, Ok(o) if o.status.success()),
        "grub-mkrescue is missing: this test compares with GRUB (apt-get install grub-pc-bin grub-common xorriso mtools)"
    );
    let requests = [
        [0, 0, 0, 0],
        [0, 1000, 1000, 32],
        [0, 800, 600, 24],
        [0, 1024, 768, 0],
        [0, 1024, 768, 15],
        [0, 640, 480, 8],
        [1, 0, 0, 0],
    ];
    // Multiboot 1 kernels, then Multiboot 2 ones (framebuffer tag required,
    // then optional): (protocol, [mode type or optional, width, height,
    // depth], `--video` = GRUB's gfxpayload set after the multiboot
    // command).
    let cases = requests.iter().map(|r| (1, *r, None)).chain([
        (2, [0, 800, 600, 16], None),
        (2, [1, 1024, 768, 32], None),
        (1, [0, 1024, 768, 32], Some("640x480")),
        (1, [0, 1024, 768, 32], Some("1000x1000x32")),
        (1, [0, 1024, 768, 32], Some("text")),
    ]);
    for (protocol, req, option) in cases {
        let [ty, w, h, d] = req;
        let name = format!("grub{protocol}-{ty}-{w}-{h}-{d}-{}", option.unwrap_or("-"));
        let (kernel, command) = if protocol == 1 {
            (mb1_kernel(Some(req)), "multiboot")
        } else {
            (
                kernels::mb2_framebuffer_kernel([w, h, d], ty == 1, 3),
                "multiboot2",
            )
        };
        let (extra, payload) = match option {
            Some(o) => (vec!["--video", o], format!("set gfxpayload={o}\n")),
            None => (vec![], String::new()),
        };
        let ours = boot(&pack(&name, &kernel, &extra));
        let dir = scratch(&format!("{name}-iso"));
        let root = dir.join("iso");
        std::fs::create_dir_all(root.join("boot/grub")).unwrap();
        std::fs::write(root.join("boot/kernel"), &kernel).unwrap();
        std::fs::write(
            root.join("boot/grub/grub.cfg"),
            format!("set timeout=0\ninsmod vbe\n{command} /boot/kernel\n{payload}boot\n"),
        )
        .unwrap();
        let iso = dir.join("grub.iso");
        let out = std::process::Command::new("grub-mkrescue")
            .arg("-o")
            .arg(&iso)
            .arg(&root)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let mut m = std_vga();
        m.extra
            .extend(["-cdrom".to_string(), iso.display().to_string()]);
        let run = qemu::boot_with_disk(&[], &m, None, BOOT_TIMEOUT);
        assert_eq!(run.exit, Some(KERNEL_EXIT), "{}", run.serial_text());
        let grub = Report::parse(&run.serial);
        let sizes = |r: &Report| -> Vec<(u32, u64)> {
            r.tags
                .iter()
                .filter(|t| t.ty == 7 || t.ty == 8)
                .map(|t| (t.ty, t.size))
                .collect()
        };
        assert_eq!(
            sizes(&ours),
            sizes(&grub),
            "VBE and framebuffer tags {name}"
        );
        for key in ["framebuffer", "bochs_vbe"] {
            assert_eq!(
                ours.get(key),
                grub.get(key),
                "{key} for request {req:?} {option:?}"
            );
        }
        // Colour layout or palette (the same 16 colours), and the VBE mode
        // block (for text mode 3 the one GRUB makes up).
        for key in ["framebuffer_rgb", "framebuffer_palette", "vbe_mode_block"] {
            assert_eq!(
                ours.fields.get(key),
                grub.fields.get(key),
                "{key} for request {req:?} {option:?}"
            );
        }
        // The mode number (the interface fields differ: GRUB passes on
        // whatever 4F0Ah left in the registers when it fails).
        assert_eq!(
            fields(&ours, "vbe_mode")[0],
            fields(&grub, "vbe_mode")[0],
            "mode number for request {req:?} {option:?}"
        );
    }
}

/// A version 2 record (written before video requests existed: bytes 88-95
/// reserved, zero) still boots with this loader and is read by inspect.
#[test]
fn version_2_records_still_boot_and_inspect() {
    use bootpack::proto::layout::{PARTITION_START_LBA, SECTOR};
    let p = pack("v2-record", &mb1_kernel(None), &[]);
    let mut disk = std::fs::read(&p.image).unwrap();
    let base = (PARTITION_START_LBA as u64 * SECTOR) as usize;
    let rec = &mut disk[base..];
    assert_eq!(
        u16::from_le_bytes([rec[8], rec[9]]),
        3,
        "written as version 3"
    );
    assert!(rec[88..96].iter().all(|b| *b == 0), "no video request");
    let len = u32::from_le_bytes(rec[12..16].try_into().unwrap()) as usize;
    rec[8..10].copy_from_slice(&2u16.to_le_bytes());
    rec[16..24].fill(0);
    let sum = bootpack::proto::checksum::fletcher64(&rec[..len]);
    rec[16..24].copy_from_slice(&sum.to_le_bytes());
    std::fs::write(&p.image, &disk).unwrap();
    let r = boot(&p);
    assert_eq!(r.num("flags") & 0x1800, 0);
    let out = bootpack([
        "inspect".to_string(),
        "--json".into(),
        p.image.display().to_string(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["kernel"]["record_version"], 2);
    assert_eq!(v["kernel"]["video"]["mode"], "none");
}
