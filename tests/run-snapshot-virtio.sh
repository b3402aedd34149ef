#!/bin/bash
# Snapshots with busy virtqueues: the test OS counts on COM1 and writes every count to a virtio
# disk with several requests in flight ("count disk=1", tests/guest/count.c), checking as it
# goes that what it wrote half a lap earlier reads back, and keeps 1 MiB direct reads going
# (bulk=) so that the device has requests in flight when a snapshot comes. The VM is
# snapshotted through the control API three times while it runs on (each must keep its disk
# right), then once more stopping it (`hearth snapshot --api ... --stop`); restored in a new
# process with its own API, snapshotted and stopped again, restored again with COM1 to a new
# file, and killed with SIGKILL while its disk is busy. Then: the serial output of the three
# processes is one unbroken count, the guest never reported a disk mismatch, the image holds
# whole records with none missing that the guest saw completed (tests/snapshot_tool.py disk),
# and at least one snapshot had to wait for requests in flight (HEARTH_SNAPSHOT_VERBOSE).
#   run-snapshot-virtio.sh HEARTH TESTOS TOOL
# Needs /dev/kvm: without it this fails, never skips.
. "$(dirname "$0")/lib.sh"
hearth=$(realpath "$1")
testos=$2
tool=$3
need_kvm
sectors=256
bulk=2048 # sectors per bulk read, past the records
qd=8      # DISK_QD in tests/guest/count.c
work=$(mktemp -d)
pid=
trap '[ -n "$pid" ] && kill -9 $pid 2>/dev/null; rm -rf "$work"' EXIT

fail() {
	echo "FAIL: $*" >&2
	for f in "$work"/err* "$work"/out*; do
		[ -s "$f" ] && tail -n 5 "$f" | sed "s|^|$(basename "$f"): |" >&2
	done
	exit 1
}

# wait_for_count FILE N: until FILE holds more than N complete count lines.
wait_for_count() {
	for _ in $(seq 300); do
		grep -q '^disk FAIL' "$1" 2>/dev/null && fail "the guest: $(grep '^disk FAIL' "$1")"
		[ "$(grep -c "^count " "$1" 2>/dev/null)" -gt "$2" ] 2>/dev/null && return 0
		kill -0 "$pid" 2>/dev/null || fail "hearth ended while counting"
		sleep 0.05
	done
	fail "the count did not go on in $1"
}

# wait_api SOCKET: until the control API answers.
wait_api() {
	for _ in $(seq 100); do
		curl -s -o /dev/null --unix-socket "$1" http://localhost/vm && return 0
		kill -0 "$pid" 2>/dev/null || fail "hearth ended before serving its API"
		sleep 0.05
	done
	fail "no API at $1 after 5 s"
}

# snapshot_stop SOCKET DIR: checkpoint through the API, the VM stops (hearth exits 0).
snapshot_stop() {
	"$hearth" snapshot --api "$1" --to "$2" --stop >"$work/snap.out" 2>&1 ||
		fail "hearth snapshot: $(cat "$work/snap.out")"
	wait "$pid"
	local status=$?
	pid=
	[ "$status" -eq 0 ] || fail "hearth exited with $status after the snapshot, expected 0"
	[ -s "$2/state" ] && [ -s "$2/memory" ] || fail "$2 is not a checkpoint"
}

img=$work/disk.img
out1=$work/out1
out2=$work/out2
# written, not sparse: direct reads of holes never reach the disk and finish at once
dd if=/dev/zero of="$img" bs=1M count=2 status=none conv=fsync || fail "cannot write $img"
disk="path=$img,direct=on"
if ! "$hearth" devices --disk "$disk" >/dev/null 2>&1; then
	echo "# direct=on is not supported where $img is: buffered I/O (fewer requests in flight)"
	disk="path=$img"
fi
export HEARTH_SNAPSHOT_VERBOSE=1

# 1. boot, count and write; snapshots while it runs on; a snapshot that stops it
"$hearth" --serial "file:$out1" --kernel "$testos" \
	--cmdline "count disk=1 sectors=$sectors bulk=$bulk" --disk "$disk" --api "$work/api1" \
	2>"$work/err1" &
pid=$!
wait_api "$work/api1"
wait_for_count "$out1" 200
for i in 1 2 3; do
	"$hearth" snapshot --api "$work/api1" --to "$work/running" >"$work/snap.out" 2>&1 ||
		fail "hearth snapshot (running on): $(cat "$work/snap.out")"
	wait_for_count "$out1" $((200 + 100 * i))
done
snapshot_stop "$work/api1" "$work/ck1"
n1=$(grep -c '^count ' "$out1")

# 2. restore with an API of its own (COM1 appends to the same file), go on, snapshot again
"$hearth" restore "$work/ck1" --api "$work/api2" 2>"$work/err2" &
pid=$!
wait_api "$work/api2"
wait_for_count "$out1" $((n1 + 400))
snapshot_stop "$work/api2" "$work/ck2"
n2=$(grep -c '^count ' "$out1")

# 3. restore the second checkpoint with COM1 to a new file; killed while the disk is busy
"$hearth" restore "$work/ck2" --serial "file:$out2" 2>"$work/err3" &
pid=$!
wait_for_count "$out2" 400
kill -9 "$pid"
wait "$pid" 2>/dev/null
pid=

grep -h '^disk FAIL' "$out1" "$out2" && fail "the guest found its disk wrong"
grep -q '^disk: ' "$out1" || fail "the guest did not open its disk"
last=$(python3 "$tool" count "$out1" "$out2") || fail "the count is broken"
newest=$(python3 "$tool" disk "$img" "$sectors" "$qd" "$last") || fail "the disk is inconsistent"
waits=$(sed -n 's/.*virtio-blk .* waited \([0-9.]*\) ms for \([0-9]*\) request.*/\2@\1ms/p' \
	"$work/err1" "$work/err2" | tr '\n' ' ')
echo "boot: $n1 counts; first restore: $((n2 - n1)) more; second restore: up to count $last"
echo "disk: newest count $newest, $sectors sectors of whole records, none missing"
echo "requests in flight at the 5 snapshots (count@wait): $waits"
[ "$(echo "$waits" | wc -w)" -eq 5 ] || fail "expected 5 snapshots to report their wait"
if [ "$disk" != "path=$img" ] && ! echo "$waits" | grep -q '[1-9][0-9]*@'; then
	fail "no snapshot found a request in flight: the drain was never exercised"
fi
echo "ok: unbroken count and a consistent disk across two snapshot/restore cycles with busy virtqueues"
