//! The boot stages' bytes depend only on the sources and the pinned
//! toolchain: two copies of the sources at different paths, built into
//! different target directories with different cargo homes, give the same
//! stage 1, stage 2 and demo kernel as each other and as the ones this
//! bootpack embeds, so `bootpack demo` writes the same image from any
//! checkout on any machine. Needs the x86_64-unknown-none target (`./test.sh`
//! installs it).

use std::path::{Path, PathBuf};

#[path = "../packager/build_support/stages.rs"]
mod stages;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// Copies `from` to `to`, leaving out build output (`target`) and git's
/// data.
fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let (src, dst) = (e.path(), to.join(e.file_name()));
        let ty = e.file_type().unwrap();
        if ty.is_dir() {
            if e.file_name() != "target" && e.file_name() != ".git" {
                copy_tree(&src, &dst);
            }
        } else if ty.is_file() {
            std::fs::copy(&src, &dst).unwrap();
        }
    }
}

/// A copy of the repository (as a clone would have it) under `dir`.
fn copy_sources(dir: &Path) -> PathBuf {
    copy_tree(&root(), dir);
    dir.to_path_buf()
}

/// A cargo home of its own at another path that shares the real one's
/// registry (so nothing is downloaded), as another machine would have.
fn other_cargo_home(dir: &Path) -> PathBuf {
    let real = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(&std::env::var_os("HOME").unwrap()).join(".cargo"));
    std::fs::create_dir_all(dir).unwrap();
    std::os::unix::fs::symlink(real.join("registry"), dir.join("registry")).unwrap();
    dir.to_path_buf()
}

#[test]
fn stages_do_not_depend_on_where_sources_and_registry_lie() {
    assert!(
        stages::target_installed(&root()),
        "this test builds the boot stages: install the target first (rustup target add {0}, or ./test.sh --setup)",
        stages::TARGET
    );
    let tmp = std::env::temp_dir().join(format!("bootpack-repro-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    let a = copy_sources(&tmp.join("a"));
    let b = copy_sources(&tmp.join("somewhere/much/deeper/b"));
    let a_out = stages::build(&a, &tmp.join("target-a"), "").unwrap();
    // The second build sees another cargo home: the registry sources lie
    // at another path.
    std::env::set_var("CARGO_HOME", other_cargo_home(&tmp.join("cargo-home-b")));
    let b_out = stages::build(&b, &tmp.join("elsewhere/target-b"), "");
    std::env::remove_var("CARGO_HOME");
    let b_out = b_out.unwrap();

    for (what, x, y, embedded) in [
        (
            "stage 1",
            &a_out.stage1,
            &b_out.stage1,
            bootpack::bootloader::STAGE1,
        ),
        (
            "stage 2",
            &a_out.stage2,
            &b_out.stage2,
            bootpack::bootloader::STAGE2,
        ),
        (
            "demo kernel",
            &a_out.demo_kernel,
            &b_out.demo_kernel,
            bootpack::bootloader::DEMO_KERNEL,
        ),
        (
            "UEFI loader",
            &a_out.bootx64_efi,
            &b_out.bootx64_efi,
            bootpack::bootloader::BOOTX64_EFI,
        ),
    ] {
        assert!(x == y, "{what} differs between two copies of the sources");
        assert!(
            x[..] == embedded[..],
            "{what} built from a copy differs from the one this checkout embeds"
        );
        // No path of this machine is left in the bytes.
        for p in [&tmp, &root()] {
            let needle = p.to_str().unwrap().as_bytes();
            assert!(
                !x.windows(needle.len()).any(|w| w == needle),
                "{what} contains the path {}",
                p.display()
            );
        }
    }

    // The same inputs make the same `bootpack demo` image from each copy's
    // stages.
    let image = |s: &stages::Stages, dir: &str| {
        let dir = tmp.join(dir);
        std::fs::create_dir_all(&dir).unwrap();
        // Named as `bootpack demo` names its kernel, so the command lines
        // match too.
        let kernel = dir.join("bootpack-demo");
        std::fs::write(&kernel, &s.demo_kernel).unwrap();
        let out = dir.join("demo.img");
        bootpack::Build::new(&kernel)
            .bootloader(s.stage1.clone(), s.stage2.clone())
            .args(["hello"])
            .write(&out)
            .unwrap();
        std::fs::read(out).unwrap()
    };
    let (ia, ib) = (image(&a_out, "image-a"), image(&b_out, "image-b"));
    assert!(ia == ib, "the demo images from the two copies differ");
    bootpack::Build::demo()
        .args(["hello"])
        .write(tmp.join("here.img"))
        .unwrap();
    assert!(
        ia == std::fs::read(tmp.join("here.img")).unwrap(),
        "the demo image from a copy differs from this checkout's `bootpack demo`"
    );
    std::fs::remove_dir_all(&tmp).unwrap();
}
