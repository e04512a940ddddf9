#!/usr/bin/env bash
# Benchmark of bootpack's image formats against GNU tar and qemu-img convert
# (see packager/examples/bench_formats.rs for what is measured and how).
#
#   bench/formats.sh [REPS]      # REPS: repetitions per cell, median shown (default 5)
#
# Needs GNU tar and qemu-img (apt-get install qemu-utils).
set -euo pipefail
cd "$(dirname "$0")/.."
exec cargo run --quiet --release -p bootpack --example bench_formats -- "$@"
