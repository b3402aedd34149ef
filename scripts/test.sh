#!/bin/sh
# Command (b) of README.md: install, build, and run every test — unit tests plain and under
# ASan+UBSan, guest tests on KVM (they fail, never skip, without /dev/kvm), the style check.
set -e
cd "$(dirname "$0")/.."
sh scripts/install-deps.sh
[ -d build ] || meson setup build
[ -d build-asan ] || meson setup build-asan -Db_sanitize=address,undefined -Db_lundef=false
ninja -C build
ninja -C build-asan
meson test -C build --print-errorlogs --num-processes 2
UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
	meson test -C build-asan --print-errorlogs --num-processes 2 --suite unit --suite guest
# The libFuzzer targets (virtqueue + virtio-blk, checkpoint state file), briefly; longer by
# hand with `sh fuzz/run.sh SECONDS`. A crash fails the run.
sh fuzz/run.sh 15
