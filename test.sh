#!/bin/sh
# Runs every check and test of bootpack, first installing what they need:
# the Rust targets (rustup) and the Debian/Ubuntu packages in
# tests/packages.txt. Packages are installed as root or with `sudo -n`;
# otherwise it stops at once and prints the command to run. .ci/run runs
# exactly this.
#
#   ./test.sh            install what is missing, then check and test
#   ./test.sh --setup    only install what is missing
set -eu
cd "$(dirname "$0")"
packages_file=${BOOTPACK_PACKAGES_FILE:-tests/packages.txt}

say() { printf 'test.sh: %s\n' "$*" >&2; }
die() { say "error: $*"; exit 1; }

# --- Rust targets: the boot stages are built for x86_64-unknown-none, the
# UEFI loader for x86_64-unknown-uefi. rustup does not always install
# rust-toolchain.toml's targets by itself (RUSTUP_AUTO_INSTALL=0).
command -v cargo >/dev/null 2>&1 || die "cargo not found: install Rust with rustup (https://rustup.rs)"
if command -v rustup >/dev/null 2>&1; then
    installed_targets=$(rustup target list --installed)
    for t in x86_64-unknown-none x86_64-unknown-uefi; do
        case "$installed_targets" in
        *"$t"*) ;;
        *) say "installing the Rust target $t"; rustup target add "$t" ;;
        esac
    done
else
    say "rustup not found: make sure the toolchain of rust-toolchain.toml has the targets x86_64-unknown-none and x86_64-unknown-uefi"
fi

# --- Debian packages.
is_installed() {
    dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"
}
wanted=$(sed -e 's/#.*//' -e 's/[[:space:]]//g' -e '/^$/d' "$packages_file")
if command -v dpkg-query >/dev/null 2>&1; then
    missing=""
    for p in $wanted; do
        is_installed "$p" || missing="$missing $p"
    done
    if [ -n "$missing" ]; then
        if [ "$(id -u)" = 0 ]; then
            as_root=""
        elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
            as_root="sudo -n"
        else
            say "the tests need these packages:$missing"
            say "install them, then run ./test.sh again:"
            printf '    sudo apt-get update && sudo apt-get install -y --no-install-recommends%s\n' "$missing" >&2
            exit 1
        fi
        say "installing:$missing"
        export DEBIAN_FRONTEND=noninteractive
        $as_root apt-get update -qq
        # One call first; apt sometimes refuses a set ("held broken
        # packages") that it installs one by one, so retry each missing
        # package alone and then verify every one.
        # shellcheck disable=SC2086
        $as_root apt-get install -y -qq --no-install-recommends $missing >/dev/null 2>&1 || true
        for p in $missing; do
            is_installed "$p" && continue
            $as_root apt-get install -y -qq --no-install-recommends "$p" >/dev/null 2>&1 || true
            is_installed "$p" || die "apt-get could not install $p; try: sudo apt-get install $p"
        done
    fi
else
    say "not a Debian/Ubuntu system: install the equivalents of these packages yourself: $(echo $wanted)"
fi
[ "${1:-}" = "--setup" ] && exit 0

# --- Checks and tests.
set -x
cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings
(cd boot/bios && cargo fmt -- --check && cargo clippy --release --locked -- -D warnings)
(cd boot/handoff && cargo fmt -- --check && cargo clippy --release --locked --target x86_64-unknown-none -- -D warnings)
(cd boot/proto && cargo fmt -- --check && cargo clippy --release --locked --target x86_64-unknown-none -- -D warnings)
(cd boot/uefi && cargo fmt -- --check && cargo clippy --release --locked -- -D warnings)
(cd tests/kernel && cargo fmt -- --check && cargo clippy --release --locked -- -D warnings)
(cd packager/fuzz && cargo fmt -- --check)
# The committed boot stages (packager/prebuilt) are what boot/ builds.
cargo run -q -p xtask -- stages --check
cargo test --workspace
