#!/bin/sh
# Every benchmark in one go, then one summary table (bench/README.md).
#   bench/run-all.sh [BUILD_DIR]        default: build
# Environment: STARTUP_RUNS (20), RSS_PROBES (3), PIO_WRITES (100000), PIO_RUNS (5),
# QEMU (qemu-system-x86_64).
set -eu
cd "$(dirname "$0")/.."
build=${1:-build}
[ -d "$build" ] || meson setup "$build" >/dev/null
ninja -C "$build" hearth tests/guest/testos.elf bench/bench-rawvmm bench/bench-startup \
	bench/bench-pio >/dev/null
qemu=${QEMU:-qemu-system-x86_64}
log=$(mktemp)
trap 'rm -f "$log"' EXIT

echo "# $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) CPUs, $(uname -r), $("$qemu" --version | head -n 1)"
status=0
"$build/bench/bench-startup" -k "${STARTUP_RUNS:-20}" -p "${RSS_PROBES:-3}" --qemu "$qemu" \
	--hearth "$build/hearth" --rawvmm "$build/bench/bench-rawvmm" \
	--kernel "$build/tests/guest/testos.elf" | tee -a "$log" | grep -v '^summary|' || status=1
echo
"$build/bench/bench-pio" -n "${PIO_WRITES:-100000}" -r "${PIO_RUNS:-5}" --qemu "$qemu" \
	--hearth "$build/hearth" --rawvmm "$build/bench/bench-rawvmm" \
	--kernel "$build/tests/guest/testos.elf" | tee -a "$log" | grep -v '^summary|' || status=1
echo

# summary|startup|VMM|first_byte_ms=..|exit_ms=..|maxrss_mib=..|beyond_ram_mib=..
# summary|pio|VMM|cycles=..|ns=..|vs_raw=..   (and mmio)
awk -F'|' '
/^summary\|/ {
	for (i = 4; i <= NF; i++) {
		split($i, kv, "=")
		v[$2 "." kv[1], $3] = kv[2]
	}
}
function cell(key, vmm) { return ((key, vmm) in v && v[key, vmm] >= 0) ? v[key, vmm] : "-" }
function ratio(key, a, b) {
	if (!((key, a) in v) || !((key, b) in v) || v[key, b] <= 0 || v[key, a] < 0)
		return "-"
	return sprintf("%.3f", v[key, a] / v[key, b])
}
function row(label, key, target) {
	printf "%-30s %9s %9s %13s %9s %11s %15s  %s\n", label, cell(key, "hearth"),
		cell(key, "raw"), cell(key, "qemu-microvm"), cell(key, "qemu-pc"),
		ratio(key, "hearth", "raw"), ratio(key, "hearth", "qemu-microvm"), target
}
END {
	printf "%-30s %9s %9s %13s %9s %11s %15s  %s\n", "median", "hearth", "raw",
		"qemu-microvm", "qemu-pc", "hearth/raw", "hearth/microvm", "target"
	row("first serial byte (ms)", "startup.first_byte_ms", "hearth/microvm <= 0.10")
	row("start -> exit (ms)", "startup.exit_ms", "")
	row("peak RSS, ru_maxrss (MiB)", "startup.maxrss_mib", "")
	row("peak RSS beyond guest RAM (MiB)", "startup.beyond_ram_mib", "hearth <= 4")
	row("port write exit (ns)", "pio.ns", "hearth/raw <= 1.10")
	row("MMIO write exit (ns)", "mmio.ns", "")
	row("port write exit (cycles)", "pio.cycles", "")
	row("MMIO write exit (cycles)", "mmio.cycles", "")
}' "$log"
exit $status
