//! Output safety: bootpack never leaves a partial or corrupt image at the
//! output path. Killed mid-write, out of space, over its file size limit or
//! on a read-only file system, the output path holds nothing or the
//! previous complete image; only a killed process leaves its temporary
//! (`.NAME.bootpack-PID.tmp`), which the next build to that path removes.
//! It refuses to replace a device, directory, FIFO or the kernel itself.
//!
//! The disk-full and read-only cases mount a small tmpfs in a private mount
//! namespace (`unshare -m`, with `-r` for a user namespace when not root),
//! so they need no loop devices and leave the host's mounts alone.

mod support;

use std::ffi::OsStr;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use support::kernels::{self, Payload, Shape};
use support::{bootpack, scratch};

const BOOTPACK: &str = env!("CARGO_BIN_EXE_bootpack");

fn small_kernel(dir: &Path) -> PathBuf {
    let k = dir.join("small-kernel");
    std::fs::write(&k, kernels::build(Shape::Solo5Elf64, None)).unwrap();
    k
}

/// An ELF32 kernel carrying `mib` MiB of random data.
fn big_kernel(dir: &Path, mib: usize) -> PathBuf {
    let k = dir.join(format!("kernel-{mib}m"));
    let payload = Payload::random(0x100_0000, mib << 20, 0x5afe);
    std::fs::write(&k, kernels::build(Shape::Elf32, Some(&payload))).unwrap();
    k
}

fn build(kernel: &Path, out: &Path) -> Output {
    bootpack([
        "build".as_ref(),
        kernel.as_os_str(),
        "-o".as_ref(),
        out.as_os_str(),
    ])
}

fn listing(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// Starts a build of a 64 MiB kernel into a stream-optimized VMDK (slow
/// enough to catch mid-write), kills it with SIGKILL as soon as its
/// temporary holds data, and returns the temporary's name.
fn kill_mid_write(kernel: &Path, out: &Path) -> String {
    let mut child = Command::new(BOOTPACK)
        .arg("build")
        .arg(kernel)
        .arg("-o")
        .arg(out)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let tmp_name = format!(
        ".{}.bootpack-{}.tmp",
        out.file_name().unwrap().to_string_lossy(),
        child.id()
    );
    let tmp = out.with_file_name(&tmp_name);
    let start = Instant::now();
    loop {
        if std::fs::metadata(&tmp).is_ok_and(|m| m.len() > 0) {
            break;
        }
        if let Some(status) = child.try_wait().unwrap() {
            panic!("the build ended ({status}) before it could be killed mid-write");
        }
        assert!(start.elapsed() < Duration::from_secs(120), "no temporary");
        std::thread::sleep(Duration::from_millis(2));
    }
    child.kill().unwrap(); // SIGKILL: no cleanup code runs
    let status = child.wait().unwrap();
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&status),
        Some(9),
        "the build must have been killed, not finished"
    );
    tmp_name
}

#[test]
fn killed_mid_write_leaves_no_output_and_the_next_build_cleans_up() {
    let dir = scratch("killed-new");
    let kernel = big_kernel(&dir, 64);
    let outdir = dir.join("out");
    std::fs::create_dir(&outdir).unwrap();
    let out = outdir.join("disk.vmdk");
    let tmp = kill_mid_write(&kernel, &out);
    assert!(!out.exists(), "a killed build must leave no output file");
    assert_eq!(
        listing(&outdir),
        vec![tmp.clone()],
        "only the killed process's temporary remains"
    );
    // The next build to the same path removes the dead process's temporary.
    let r = build(&small_kernel(&dir), &out);
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    assert_eq!(listing(&outdir), vec!["disk.vmdk".to_string()]);
}

#[test]
fn killed_mid_write_keeps_the_previous_image() {
    let dir = scratch("killed-old");
    let outdir = dir.join("out");
    std::fs::create_dir(&outdir).unwrap();
    let out = outdir.join("disk.vmdk");
    let r = build(&small_kernel(&dir), &out);
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    let before = std::fs::read(&out).unwrap();
    let tmp = kill_mid_write(&big_kernel(&dir, 64), &out);
    assert_eq!(
        std::fs::read(&out).unwrap(),
        before,
        "the previous image must be untouched"
    );
    let mut expected = vec![tmp, "disk.vmdk".to_string()];
    expected.sort();
    assert_eq!(listing(&outdir), expected);
}

/// A temporary whose process still runs is not touched by another build.
#[test]
fn a_live_builds_temporary_is_left_alone() {
    let dir = scratch("live-tmp");
    let out = dir.join("disk.img");
    // PID 1 always runs.
    let live = dir.join(".disk.img.bootpack-1.tmp");
    std::fs::write(&live, b"in progress").unwrap();
    let r = build(&small_kernel(&dir), &out);
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    assert_eq!(std::fs::read(&live).unwrap(), b"in progress");
}

fn is_root() -> bool {
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

/// Runs `script` (sh) in a private mount namespace with `envs` and `D` set
/// to a fresh directory `dir/mnt` for it to mount on: as root with
/// `unshare -m`; otherwise in a user namespace in which we are root
/// (`unshare -r -m`), or, where unprivileged user namespaces are off, with
/// `sudo -n unshare -m`. Returns the script's stdout and stderr. Fails the
/// test, saying so, when none works.
fn in_mount_namespace(dir: &Path, script: &str, envs: &[(&str, &OsStr)]) -> (String, String) {
    let mnt = dir.join("mnt");
    std::fs::create_dir(&mnt).unwrap();
    let mut env: Vec<std::ffi::OsString> = vec![format!("BOOTPACK={BOOTPACK}").into()];
    let mut d = std::ffi::OsString::from("D=");
    d.push(&mnt);
    env.push(d);
    for (k, v) in envs {
        let mut kv = std::ffi::OsString::from(format!("{k}="));
        kv.push(v);
        env.push(kv);
    }
    let unshare = ["unshare", "-m", "--propagation", "private"];
    let ways: Vec<Vec<&str>> = if is_root() {
        vec![unshare.to_vec()]
    } else {
        vec![
            [&["unshare", "-r"][..], &unshare[1..]].concat(),
            [&["sudo", "-n"][..], &unshare[..]].concat(),
        ]
    };
    let mut tried = Vec::new();
    for way in &ways {
        let out = Command::new("env")
            .args(&env)
            .args(way)
            .args(["sh", "-c", script])
            .output();
        match out {
            Ok(o) if String::from_utf8_lossy(&o.stdout).contains("status=") => {
                return (
                    String::from_utf8_lossy(&o.stdout).into_owned(),
                    String::from_utf8_lossy(&o.stderr).into_owned(),
                )
            }
            Ok(o) => tried.push(format!(
                "{}: {}{}",
                way.join(" "),
                String::from_utf8_lossy(&o.stdout),
                String::from_utf8_lossy(&o.stderr)
            )),
            Err(e) => tried.push(format!("{}: {e}", way.join(" "))),
        }
    }
    panic!(
        "could not mount a tmpfs in a private mount namespace, which this test needs (root, \
         unprivileged user namespaces or passwordless sudo):\n{}",
        tried.join("\n")
    );
}

/// The lines `status=N`, `ls: ...` and `same`/`differs` the scripts print.
fn field<'a>(stdout: &'a str, key: &str) -> &'a str {
    stdout
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .unwrap_or_else(|| panic!("no {key} in {stdout}"))
}

const OUT_OF_SPACE: &str = r#"
mount -t tmpfs -o size=4m bootpack-test "$D" || { echo SETUP-FAILED; exit 1; }
cp --sparse=always "$OLD" "$D/disk.img" || { echo SETUP-FAILED; exit 1; }
"$BOOTPACK" build "$KERNEL" -o "$D/disk.img"
echo "status=$?"
echo "ls=$(ls -A "$D" | tr '\n' ' ')"
if cmp -s "$OLD" "$D/disk.img"; then echo "old=same"; else echo "old=differs"; fi
"#;

#[test]
fn disk_full_leaves_the_previous_image_and_no_temporary() {
    let dir = scratch("disk-full");
    let old = dir.join("old.img");
    let r = build(&small_kernel(&dir), &old);
    assert!(r.status.success());
    let kernel = big_kernel(&dir, 16); // a 16 MiB image on a 4 MiB file system
    let (stdout, stderr) = in_mount_namespace(
        &dir,
        OUT_OF_SPACE,
        &[("OLD", old.as_os_str()), ("KERNEL", kernel.as_os_str())],
    );
    assert_eq!(field(&stdout, "status="), "1", "{stdout}{stderr}");
    assert!(
        stderr.starts_with("bootpack: error: ") && stderr.contains("No space left on device"),
        "{stderr}"
    );
    assert_eq!(
        field(&stdout, "ls=").trim(),
        "disk.img",
        "no temporary left"
    );
    assert_eq!(field(&stdout, "old="), "same", "previous image untouched");
}

#[test]
fn file_size_limit_leaves_no_output_and_no_temporary() {
    // RLIMIT_FSIZE with SIGXFSZ ignored: writes fail with EFBIG partway,
    // as on a quota or a full disk, without any privileges.
    let dir = scratch("fsize");
    let kernel = big_kernel(&dir, 16);
    let outdir = dir.join("out");
    std::fs::create_dir(&outdir).unwrap();
    let out = outdir.join("disk.img");
    let o = Command::new("sh")
        .args([
            "-c",
            r#"trap '' XFSZ; ulimit -f 4096; exec "$0" build "$1" -o "$2""#,
            BOOTPACK,
        ])
        .arg(&kernel)
        .arg(&out)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.starts_with("bootpack: error: ") && stderr.contains("File too large"),
        "{stderr}"
    );
    assert!(listing(&outdir).is_empty(), "{:?}", listing(&outdir));
}

const READ_ONLY: &str = r#"
mount -t tmpfs -o size=8m bootpack-test "$D" || { echo SETUP-FAILED; exit 1; }
cp --sparse=always "$OLD" "$D/disk.img" || { echo SETUP-FAILED; exit 1; }
mount -o remount,bind,ro "$D" || { echo SETUP-FAILED; exit 1; }
touch "$D/probe" 2>/dev/null && { echo SETUP-FAILED still writable; exit 1; }
"$BOOTPACK" build "$KERNEL" -o "$D/disk.img"
echo "status=$?"
"$BOOTPACK" build "$KERNEL" -o "$D/new.img"
echo "status2=$?"
echo "ls=$(ls -A "$D" | tr '\n' ' ')"
if cmp -s "$OLD" "$D/disk.img"; then echo "old=same"; else echo "old=differs"; fi
"#;

#[test]
fn read_only_directory_is_an_error_and_the_previous_image_stays() {
    // chmod 555 does not stop root: the directory is a read-only mount.
    let dir = scratch("read-only");
    let old = dir.join("old.img");
    let kernel = small_kernel(&dir);
    assert!(build(&kernel, &old).status.success());
    let (stdout, stderr) = in_mount_namespace(
        &dir,
        READ_ONLY,
        &[("OLD", old.as_os_str()), ("KERNEL", kernel.as_os_str())],
    );
    assert_eq!(field(&stdout, "status="), "1", "{stdout}{stderr}");
    assert_eq!(field(&stdout, "status2="), "1", "{stdout}{stderr}");
    assert_eq!(
        stderr.matches("Read-only file system").count(),
        2,
        "{stderr}"
    );
    assert!(stderr.lines().all(|l| l.starts_with("bootpack: error: ")));
    assert_eq!(field(&stdout, "ls=").trim(), "disk.img");
    assert_eq!(field(&stdout, "old="), "same");
}

fn expect_refused(kernel: &Path, out: &Path, kind: &str) {
    let r = build(kernel, out);
    let stderr = String::from_utf8_lossy(&r.stderr);
    assert_eq!(r.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.starts_with(&format!("bootpack: error: {}: is {kind}", out.display())),
        "{stderr}"
    );
}

const BLOCK_DEVICE: &str = r#"
mount -t tmpfs bootpack-test "$D" || { echo SETUP-FAILED; exit 1; }
mknod "$D/sdx" b 7 200 || { echo SETUP-FAILED; exit 1; }
"$BOOTPACK" build "$KERNEL" -o "$D/sdx"
echo "status=$?"
ln -s "$D/sdx" "$D/link"
"$BOOTPACK" build "$KERNEL" -o "$D/link"
echo "status2=$?"
mknod "$D/null" c 1 3 || { echo SETUP-FAILED; exit 1; }
"$BOOTPACK" build "$KERNEL" -o "$D/null"
echo "status3=$?"
echo "ls=$(ls -A "$D" | tr '\n' ' ')"
[ -b "$D/sdx" ] && [ -L "$D/link" ] && [ -c "$D/null" ] && echo "nodes=intact"
"#;

#[test]
fn refuses_to_replace_a_block_or_character_device() {
    let dir = scratch("blockdev");
    let kernel = small_kernel(&dir);
    if is_root() {
        // Device nodes of our own in a private tmpfs: nothing real (such
        // as /dev/null) is at risk if the check were ever broken.
        let (stdout, stderr) =
            in_mount_namespace(&dir, BLOCK_DEVICE, &[("KERNEL", kernel.as_os_str())]);
        assert_eq!(field(&stdout, "status="), "1", "{stdout}{stderr}");
        assert_eq!(field(&stdout, "status2="), "1", "{stdout}{stderr}");
        assert_eq!(field(&stdout, "status3="), "1", "{stdout}{stderr}");
        assert_eq!(
            stderr.matches(": is a block device;").count(),
            2,
            "{stderr}"
        );
        assert_eq!(
            stderr.matches(": is a character device;").count(),
            1,
            "{stderr}"
        );
        assert_eq!(field(&stdout, "ls=").trim(), "link null sdx");
        assert_eq!(field(&stdout, "nodes="), "intact");
    } else {
        // Not root: mknod is not allowed, and /dev is not writable anyway,
        // so an existing block device is safe to aim at.
        use std::os::unix::fs::FileTypeExt;
        let dev = std::fs::read_dir("/dev")
            .unwrap()
            .filter_map(|e| e.ok())
            .find(|e| e.file_type().is_ok_and(|t| t.is_block_device()))
            .expect("a block device in /dev")
            .path();
        expect_refused(&kernel, &dev, "a block device");
    }
}

#[test]
fn refuses_to_replace_a_directory_or_a_fifo() {
    let dir = scratch("special");
    let kernel = small_kernel(&dir);
    let sub = dir.join("a-directory.img");
    std::fs::create_dir(&sub).unwrap();
    expect_refused(&kernel, &sub, "a directory");
    assert!(sub.is_dir());

    let fifo = dir.join("fifo.img");
    assert!(Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
    expect_refused(&kernel, &fifo, "a FIFO");
    // Through a symlink too: the link is followed.
    let link = dir.join("link.img");
    std::os::unix::fs::symlink(&fifo, &link).unwrap();
    expect_refused(&kernel, &link, "a FIFO");
    assert!(std::fs::symlink_metadata(&link).unwrap().is_symlink());

    assert!(listing(&dir).iter().all(|n| !n.ends_with(".tmp")));
}

#[test]
fn refuses_to_write_over_the_kernel_through_a_link() {
    let dir = scratch("kernel-link");
    let kernel = small_kernel(&dir);
    let before = std::fs::read(&kernel).unwrap();
    let hard = dir.join("hard.img");
    std::fs::hard_link(&kernel, &hard).unwrap();
    let soft = dir.join("soft.img");
    std::os::unix::fs::symlink(&kernel, &soft).unwrap();
    for out in [&kernel, &hard, &soft] {
        let r = build(&kernel, out);
        let stderr = String::from_utf8_lossy(&r.stderr);
        assert_eq!(r.status.code(), Some(1), "{stderr}");
        assert!(stderr.contains("over the kernel file itself"), "{stderr}");
    }
    assert_eq!(std::fs::read(&kernel).unwrap(), before);
}
