#!/bin/bash
# virtio-blk throughput: hearth and QEMU run the same test OS binary in its blk bench modes
# on the same raw image, and fio on the host reads and writes the same file as the limit
# (bench/README.md). Runs are interleaved (hearth, QEMU, fio, hearth, ...) so that load
# drifts hit all three alike; medians are reported.
#   bench/blk.sh [BUILD_DIR]        default: build
# Environment: BLK_IMAGE (default: a new file in $BLK_DIR, default /var/tmp, on the disk;
# BLK_DIR=/dev/shm measures the VMMs without a disk's ceiling), BLK_MIB (image size, 1024),
# RUNS (3), SECS (seconds per run, 5), WORKLOADS ("randread:1 randread:32 seqread:4
# seqwrite:4"), WAITS ("irq poll": how the guest waits for completions, see bench/README.md),
# QEMU.
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
waits=${WAITS:-irq poll}
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

run_hearth() { # spec wait
	timeout $((secs + 60)) "$hearth" --serial "file:$tmp/out" --device debug-exit \
		--kernel "$testos" --cmdline "bench=blk-$1 secs=$secs wait=$2" \
		--device virtio-blk,id=vd0 --device "blk-file,path=$img,frontend=vd0,direct=on" \
		>/dev/null 2>"$tmp/err" || [ $? -eq 1 ] || return 1
	guest_rate "$tmp/out"
}

run_qemu() { # spec wait
	timeout $((secs + 90)) "$qemu" -M pc -accel kvm -m 256 -display none -no-reboot \
		-nodefaults -serial "file:$tmp/out" -device isa-debug-exit,iobase=0xf4,iosize=4 \
		-kernel "$testos" -append "bench=blk-$1 secs=$secs wait=$2" \
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
	: >"$tmp/f"
	for wait in $waits; do : >"$tmp/h.$wait" && : >"$tmp/q.$wait"; done
	for r in $(seq "$runs"); do
		line="run|$spec|$r"
		for wait in $waits; do
			if x=$(run_hearth "$spec" "$wait"); then echo "$x" >>"$tmp/h.$wait"; else
				echo "hearth $spec wait=$wait run $r failed: $(head -c 300 "$tmp/err")" >&2
				status=1
			fi
			if x=$(run_qemu "$spec" "$wait"); then echo "$x" >>"$tmp/q.$wait"; else
				echo "qemu $spec wait=$wait run $r failed: $(head -c 300 "$tmp/err")" >&2
				status=1
			fi
			line="$line|$wait: hearth $(tail -n 1 "$tmp/h.$wait"), qemu $(tail -n 1 "$tmp/q.$wait")"
		done
		if x=$(run_fio "$kind" "$qd"); then echo "$x" >>"$tmp/f"; else
			echo "fio $spec run $r failed" >&2
			status=1
		fi
		echo "$line|fio $(tail -n 1 "$tmp/f")"
	done
	col=1 unit=IOPS
	[ "$kind" = randread ] || col=2 unit=MB/s
	f=$(cut -d' ' -f$col "$tmp/f" | median)
	for wait in $waits; do
		h=$(cut -d' ' -f$col "$tmp/h.$wait" | median)
		q=$(cut -d' ' -f$col "$tmp/q.$wait" | median)
		echo "summary|$spec|$wait|$unit|hearth=$h|qemu=$q|fio=$f"
	done
done >"$tmp/log"
grep '^run|' "$tmp/log" | sed 's/^run|/# /; s/|/  /g'
echo
awk -F'|' '
function ratio(a, b) { return (a == "-" || b == "-" || b <= 0) ? "-" : sprintf("%.2f", a / b) }
/^summary\|/ {
	for (i = 5; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
	target = $2 ~ /^randread/ ? "hearth/qemu >= 1.2" : "hearth/fio >= 0.8"
	printf "%-13s %-5s %-5s %10s %10s %10s %12s %11s  %s\n", $2, $3, $4, v["hearth"],
		v["qemu"], v["fio"], ratio(v["hearth"], v["qemu"]), ratio(v["hearth"], v["fio"]),
		target
}
BEGIN {
	printf "%-13s %-5s %-5s %10s %10s %10s %12s %11s  %s\n", "median", "wait", "unit",
		"hearth", "qemu", "host fio", "hearth/qemu", "hearth/fio", "target"
}' "$tmp/log"
exit $status
