#!/bin/sh
# Checkpoint benchmark: hearth's save and restore-to-running times for 256 MiB, 1 GiB and
# 4 GiB guests with little and with most RAM touched, beside QEMU's migration to a file
# ("exec:cat > FILE", restored with -incoming "exec:cat FILE"). bench/snapshot_bench.py does
# the measuring; docs/performance.md ("Checkpoints") explains the figures.
#   bench/snapshot.sh [BUILD_DIR]    default: build
# Environment: RUNS (3, median), WORKDIR (a directory on the disk to measure; default
# /var/tmp/hearth-snapbench), QEMU (qemu-system-x86_64; empty to skip it).
set -eu
cd "$(dirname "$0")/.."
build=${1:-build}
[ -d "$build" ] || meson setup "$build" >/dev/null
ninja -C "$build" hearth tests/guest/testos.elf >/dev/null
qemu=${QEMU-qemu-system-x86_64}
work=${WORKDIR:-/var/tmp/hearth-snapbench}
echo "# $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) CPUs, $(uname -r), checkpoints in $work" \
	"($(df -T "$(dirname "$work")" | awk 'NR == 2 {print $2}'))"
# size, MiB touched: a few MiB (the test OS itself), or most of RAM (below 3 GiB, all the
# test OS maps)
for spec in 256M:0 256M:200 1G:0 1G:900 4G:0 4G:2900; do
	python3 bench/snapshot_bench.py "$build/hearth" "$build/tests/guest/testos.elf" "$qemu" \
		"$work" "${spec%:*}" "${spec#*:}" "${RUNS:-3}"
done
