//! `cargo run -p xtask -- stages [--check]`: rebuilds the boot stages and
//! the demo kernel from boot/ and tests/kernel and writes them to
//! packager/prebuilt/, which the published crate embeds; with `--check` it
//! builds into a temporary directory and fails, naming the file, if any
//! committed byte differs.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[path = "../../packager/build_support/stages.rs"]
mod stages;

const USAGE: &str = "usage: cargo run -p xtask -- stages [--check]";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let check = match args.iter().map(String::as_str).collect::<Vec<_>>()[..] {
        ["stages"] => false,
        ["stages", "--check"] => true,
        _ => {
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf();
    match stages_cmd(&root, check) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn stages_cmd(root: &Path, check: bool) -> Result<(), String> {
    if !stages::target_installed(root) {
        return Err(format!(
            "the {0} or {1} target is not installed: rustup target add {0} {1}",
            stages::TARGET,
            stages::UEFI_TARGET
        ));
    }
    // A target directory of its own: the stages are built exactly as the
    // published crate gets them, never with a stale or timestamps build.
    let target_dir = std::env::temp_dir().join(format!("bootpack-stages-{}", std::process::id()));
    let built = stages::build(root, &target_dir, "");
    let _ = std::fs::remove_dir_all(&target_dir);
    let built = built?;
    let prebuilt = root.join("packager/prebuilt");
    let files: [(&str, &[u8]); 4] = [
        ("stage1.bin", &built.stage1),
        ("stage2.bin", &built.stage2),
        ("demo-kernel.elf", &built.demo_kernel),
        ("bootx64.efi", &built.bootx64_efi),
    ];
    let mut stale = Vec::new();
    for (name, bytes) in files {
        let path: PathBuf = prebuilt.join(name);
        let committed = std::fs::read(&path).ok();
        if committed.as_deref() == Some(bytes) {
            println!("{}: up to date ({} bytes)", path.display(), bytes.len());
            continue;
        }
        if check {
            let why = match &committed {
                None => "missing".to_string(),
                Some(c) => match c.iter().zip(bytes).position(|(a, b)| a != b) {
                    Some(at) => format!("differs from the build at byte {at:#x}"),
                    None => format!("{} bytes, the build {} bytes", c.len(), bytes.len()),
                },
            };
            eprintln!("{}: {why}", path.display());
            stale.push(path);
        } else {
            std::fs::write(&path, bytes).map_err(|e| format!("{}: {e}", path.display()))?;
            println!("{}: written ({} bytes)", path.display(), bytes.len());
        }
    }
    if stale.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "{} committed file(s) differ from what boot/ and tests/kernel build; run `cargo run -p xtask -- stages` and commit packager/prebuilt",
            stale.len()
        ))
    }
}
