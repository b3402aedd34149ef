#!/bin/bash
# virtio-blk throughput: hearth and QEMU run the same test OS binary in its blk bench modes
# on the same raw image, and fio on the host reads and writes the same file as the limit
# (bench/README.md). Runs are interleaved (hearth, QEMU, fio, hearth, ...) so that load
# drifts hit all three alike; medians are reported.
#   bench/blk.sh [BUILD_DIR]        default: build
# Environment: BLK_IMAGE (default: a new file in $BLK_DIR, default /var/tmp; must not be
# tmpfs, O_DIRECT needs a real file system), BLK_MIB (image size, 1024), RUNS (3), SECS
# (seconds per run, 5), WORKLOADS ("randread:1 randread:32 seqread:4 seqwrite:4"), QEMU.
set -eu
cd "$(dirname "$0")/.."
build=${1:-build}
[ -d "$build" ] || meson setup "$build" >/dev/null
ninja -C "$build" hearth tests/guest/testos.elf >/dev/null
hearth=$build/hearth
testos=$build/tests/guest/testos.elf
qemu=${QEMU:-qemu-system-x86_64}
runs=${RUNS:-3}
secs=${SECS:-5}
mib=${BLK_MIB:-1024}
workloads=${WORKLOADS:-randread:1 randread:32 seqread:4 seqwrite:4}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
if [ -n "${BLK_IMAGE:-}" ]; then
	img=$BLK_IMAGE
else
	img=$(mktemp "${BLK_DIR:-/var/tmp}/hearth-blk-XXXXXX.img")
	trap 'rm -rf "$tmp" "$img"' EXIT
	# Real data everywhere: reading a hole is cheaper than reading blocks.
	dd if=/dev/urandom of="$img" bs=1M count="$mib" status=none
fi

# "# bench blk-randread qd=1 ops=N bytes=B tsc=C tsc_khz=K notifies=M errors=E"
# -> "IOPS MBPS" (MB = 10^6 bytes)
guest_rate() {
	awk '/^# bench blk-/ {
		for (i = 4; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
		if (v["errors"] != 0 || v["tsc"] <= 0) exit 1
		s = v["tsc"] / (v["tsc_khz"] * 1000)
		printf "%.0f %.1f\n", v["ops"] / s, v["bytes"] / s / 1e6; found = 1
	} END { exit !found }' "$1"
}

run_hearth() { # spec
	timeout $((secs + 60)) "$hearth" --serial "file:$tmp/out" --device debug-exit \
		--kernel "$testos" --cmdline "bench=blk-$1 secs=$secs" \
		--device virtio-blk,id=vd0 --device "blk-file,path=$img,frontend=vd0,direct=on" \
		>/dev/null 2>"$tmp/err" || [ $? -eq 1 ] || return 1
	guest_rate "$tmp/out"
}

run_qemu() { # spec
	timeout $((secs + 90)) "$qemu" -M pc -accel kvm -m 256 -display none -no-reboot \
		-nodefaults -serial "file:$tmp/out" -device isa-debug-exit,iobase=0xf4,iosize=4 \
		-kernel "$testos" -append "bench=blk-$1 secs=$secs" \
		-drive "file=$img,if=none,id=d0,format=raw,cache=none,aio=io_uring" \
		-device virtio-blk-pci,drive=d0,disable-legacy=on >/dev/null 2>"$tmp/err" ||
		[ $? -eq 1 ] || return 1
	guest_rate "$tmp/out"
}

run_fio() { # kind qd
	local rw bs
	case $1 in
	randread) rw=randread bs=4k ;;
	seqread) rw=read bs=1M ;;
	seqwrite) rw=write bs=1M ;;
	esac
	# terse v3: field 7/8 read KiB/s and IOPS, 48/49 the same for writes
	fio --name=blk --filename="$img" --direct=1 --ioengine=io_uring --rw=$rw --bs=$bs \
		--iodepth="$2" --runtime="$secs" --time_based --output-format=terse \
		--terse-version=3 2>"$tmp/err" |
		awk -F';' '{ r = $8 + $49; b = ($7 + $48) * 1024; printf "%.0f %.1f\n", r, b / 1e6 }'
}

median() {
	sort -n | awk '{ a[NR] = $1 } END { if (NR) print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2; else print "-" }'
}

echo "# $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) CPUs, $(uname -r), $("$qemu" --version | head -n 1), $(fio --version)"
echo "# image $img ($(du -m "$img" | cut -f1) MiB used), $runs runs of $secs s each, load $(cut -d' ' -f1-3 /proc/loadavg)"
status=0
for w in $workloads; do
	kind=${w%%:*}
	qd=${w#*:}
	spec=$kind:$qd
	: >"$tmp/h"
	: >"$tmp/q"
	: >"$tmp/f"
	for r in $(seq "$runs"); do
		if x=$(run_hearth "$spec"); then echo "$x" >>"$tmp/h"; else
			echo "hearth $spec run $r failed: $(head -c 300 "$tmp/err")" >&2
			status=1
		fi
		if x=$(run_qemu "$spec"); then echo "$x" >>"$tmp/q"; else
			echo "qemu $spec run $r failed: $(head -c 300 "$tmp/err")" >&2
			status=1
		fi
		if x=$(run_fio "$kind" "$qd"); then echo "$x" >>"$tmp/f"; else
			echo "fio $spec run $r failed" >&2
			status=1
		fi
		echo "run|$spec|$r|hearth $(tail -n 1 "$tmp/h")|qemu $(tail -n 1 "$tmp/q")|fio $(tail -n 1 "$tmp/f")"
	done
	col=1 unit=IOPS
	[ "$kind" = randread ] || col=2 unit=MB/s
	h=$(cut -d' ' -f$col "$tmp/h" | median)
	q=$(cut -d' ' -f$col "$tmp/q" | median)
	f=$(cut -d' ' -f$col "$tmp/f" | median)
	echo "summary|$spec|$unit|hearth=$h|qemu=$q|fio=$f"
done >"$tmp/log"
grep '^run|' "$tmp/log" | sed 's/^run|/# /'
echo
awk -F'|' '
function ratio(a, b) { return (a == "-" || b == "-" || b <= 0) ? "-" : sprintf("%.2f", a / b) }
/^summary\|/ {
	for (i = 4; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
	target = $2 ~ /^randread/ ? "hearth/qemu >= 1.2" : "hearth/fio >= 0.8"
	printf "%-14s %-5s %10s %10s %10s %12s %11s  %s\n", $2, $3, v["hearth"], v["qemu"],
		v["fio"], ratio(v["hearth"], v["qemu"]), ratio(v["hearth"], v["fio"]), target
}
BEGIN {
	printf "%-14s %-5s %10s %10s %10s %12s %11s  %s\n", "median", "unit", "hearth", "qemu",
		"host fio", "hearth/qemu", "hearth/fio", "target"
}' "$tmp/log"
exit $status
