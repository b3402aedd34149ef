#!/bin/bash
# Snapshot, SIGKILL, restore in a new process, twice: the test OS counts in ring 3 and prints
# every count on COM1, and the serial output of the three processes together must be one
# unbroken count (no gap, no repeat), each process adding to it.
#   run-snapshot.sh HEARTH TESTOS TOOL [HEARTH_ARGS...]
# The first snapshot is triggered by SIGUSR2 (HEARTH_SNAPSHOT_ON_SIGUSR2=DIR,pause): the VM
# stays paused after it, so nothing runs between the snapshot and the kill. The second goes
# through the control API of the restored VM (`hearth restore --api`, `hearth snapshot --stop`).
. "$(dirname "$0")/lib.sh"
hearth=$1
testos=$2
tool=$3
shift 3
need_kvm
work=$(mktemp -d)
pid=
trap '[ -n "$pid" ] && kill -9 $pid 2>/dev/null; rm -rf "$work"' EXIT

fail() {
	echo "FAIL: $*" >&2
	for f in "$work"/err*; do
		[ -s "$f" ] && sed "s|^|$(basename "$f"): |" "$f" >&2
	done
	exit 1
}

# snapshot_and_kill ERRFILE DIR: SIGUSR2, wait for the save, SIGKILL.
snapshot_and_kill() {
	local err=$1 dir=$2
	kill -USR2 "$pid"
	for _ in $(seq 200); do
		grep -q "snapshot saved to" "$err" && break
		kill -0 "$pid" 2>/dev/null || fail "hearth died before the snapshot"
		sleep 0.05
	done
	grep -q "snapshot saved to" "$err" || fail "no snapshot after 10 s"
	kill -9 "$pid"
	wait "$pid" 2>/dev/null
	pid=
	[ -s "$dir/state" ] && [ -s "$dir/memory" ] || fail "$dir is not a checkpoint"
}

# wait_for_count FILE N: until FILE holds more than N complete count lines.
wait_for_count() {
	for _ in $(seq 200); do
		[ "$(grep -c "^count " "$1" 2>/dev/null)" -gt "$2" ] 2>/dev/null && return 0
		sleep 0.05
	done
	fail "the count did not go on in $1"
}

out1=$work/out1
out2=$work/out2

# 1. boot and count, snapshot, kill
HEARTH_SNAPSHOT_ON_SIGUSR2="$work/ck1,pause" "$hearth" --serial "file:$out1" --kernel "$testos" \
	--cmdline count "$@" 2>"$work/err1" &
pid=$!
wait_for_count "$out1" 200
snapshot_and_kill "$work/err1" "$work/ck1"
n1=$(grep -c '^count ' "$out1")

# 2. restore (COM1 appends to the same file) with the control API, count on, snapshot the
# restored VM through it, which stops it
"$hearth" restore "$work/ck1" --api "$work/api" 2>"$work/err2" &
pid=$!
wait_for_count "$out1" $((n1 + 200))
"$hearth" snapshot --api "$work/api" --to "$work/ck2" --stop >"$work/err2.snap" 2>&1 ||
	fail "hearth snapshot: $(cat "$work/err2.snap")"
wait "$pid"
status=$?
pid=
[ "$status" -eq 0 ] || fail "the restored hearth exited with $status after the snapshot"
[ -s "$work/ck2/state" ] && [ -s "$work/ck2/memory" ] || fail "$work/ck2 is not a checkpoint"
n2=$(grep -c '^count ' "$out1")

# 3. restore the second checkpoint with COM1 to a new file
"$hearth" restore "$work/ck2" --serial "file:$out2" 2>"$work/err3" &
pid=$!
wait_for_count "$out2" 200
kill -9 "$pid"
wait "$pid" 2>/dev/null
pid=

last=$("$tool" count "$out1" "$out2") || fail "the count is broken"
echo "boot: $n1 counts; first restore: $((n2 - n1)) more; second restore: up to count $last"
echo "ok: one unbroken count across two snapshot/restore cycles (SIGUSR2 and kill, then the API)"
