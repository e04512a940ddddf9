#!/usr/bin/env bash
# Boot and build benchmark: bootpack against syslinux (the
# solo5-virtio-mkimage flow), GRUB and QEMU's own -kernel loader.
# What is measured and how: packager/examples/bench_boot/main.rs.
#
#   bench/boot.sh [--reps N] [--kernels demo,2.5M,32M] [--disks ide,ahci,virtio-blk,virtio-scsi]
#                 [--loaders bootpack,syslinux,grub,kernel] [--build-reps N] [--no-build]
#                 [--no-install] [--profile]
#
# --profile: instead of the tables, where bootpack's boot time goes (stage 1,
# E820, each read, the copy, the handoff), from a loader built with time
# marks (cargo feature `timestamps` of boot/bios).
#
# Installs what it needs with apt-get (as root, or through sudo) unless
# --no-install is given or everything is there already: qemu-system-x86,
# syslinux, syslinux-common, mtools, dosfstools, fdisk, grub-pc-bin,
# grub-common. Prints what it installs. Running it again installs nothing.
# Extra environment: BOOTPACK_BENCH_DIR (scratch directory, default a fresh
# one under $TMPDIR; removed afterwards).
set -euo pipefail
cd "$(dirname "$0")/.."

install=1
profile=0
args=()
for a in "$@"; do
    case "$a" in
        --no-install) install=0 ;;
        --profile) profile=1 ;;
        *) args+=("$a") ;;
    esac
done

# package -> a file that shows it is installed
declare -A need=(
    [qemu-system-x86]=/usr/bin/qemu-system-x86_64
    [syslinux]=/usr/bin/syslinux
    [syslinux-common]=/usr/lib/syslinux/mbr/mbr.bin
    [mtools]=/usr/bin/mcopy
    [dosfstools]=/sbin/mkfs.fat
    [fdisk]=/sbin/sfdisk
    [grub-pc-bin]=/usr/lib/grub/i386-pc/boot.img
    [grub-common]=/usr/bin/grub-mkimage
)
missing=()
for p in "${!need[@]}"; do
    [ -e "${need[$p]}" ] || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
    if [ "$install" = 0 ]; then
        echo "bench/boot.sh: missing packages: ${missing[*]} (run without --no-install to install them)" >&2
        exit 1
    fi
    sudo=""
    [ "$(id -u)" = 0 ] || sudo="sudo"
    echo "bench/boot.sh: installing ${missing[*]}" >&2
    $sudo apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
fi

cargo build --quiet --release -p bootpack --bins --example bench_boot
if [ "$profile" = 1 ]; then
    # A bootpack whose loader prints time marks (boot/bios/src/ts.rs), in
    # its own target directory; the tables become the profile.
    BOOTPACK_LOADER_FEATURES=timestamps cargo build --quiet --release -p bootpack --bin bootpack \
        --target-dir target/timestamps
    args+=(--profile target/timestamps/release/bootpack)
fi
exec target/release/examples/bench_boot --bin-dir target/release "${args[@]}"
