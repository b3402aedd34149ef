#!/bin/bash
# A damaged or mismatched checkpoint is refused before anything runs: `hearth restore` exits 2
# with one line naming the context and key (or file), and the guest prints nothing.
#   run-snapshot-bad.sh HEARTH TESTOS TOOL
. "$(dirname "$0")/lib.sh"
hearth=$1
testos=$2
tool=$3
need_kvm
work=$(mktemp -d)
pid=
trap '[ -n "$pid" ] && kill -9 $pid 2>/dev/null; rm -rf "$work"' EXIT
ulimit -c 0
fails=0
cases=0

# Two checkpoints of one VM: ck (the good one) and other (a later one, for its memory file).
HEARTH_SNAPSHOT_ON_SIGUSR2="$work/ck,resume" "$hearth" --serial "file:$work/boot" \
	--kernel "$testos" --cmdline count 2>"$work/err" &
pid=$!
snap() {
	kill -USR2 "$pid"
	for _ in $(seq 200); do
		[ "$(grep -c "snapshot saved" "$work/err")" -ge "$1" ] && return
		sleep 0.05
	done
	echo "FAIL: no snapshot" >&2
	cat "$work/err" >&2
	exit 1
}
sleep 0.3
snap 1
mv "$work/ck" "$work/other"
snap 2
kill -9 "$pid"
wait "$pid" 2>/dev/null
pid=

# expect NAME PATTERN [RESTORE_ARGS...]: restore a copy of ck damaged by `prepare`.
expect() {
	local name=$1 pattern=$2
	shift 2
	cases=$((cases + 1))
	local out=$work/out-$name
	timeout 20 "$hearth" restore "$work/case" --serial "file:$out" "$@" >/dev/null \
		2>"$work/err-$name"
	local status=$?
	local msg
	msg=$(cat "$work/err-$name")
	local why=
	if [ "$status" -ne 2 ]; then
		why="status $status, expected 2"
	elif [ "$(wc -l <"$work/err-$name")" -ne 1 ]; then
		why="expected one line on stderr"
	elif ! grep -q -- "$pattern" "$work/err-$name"; then
		why="the message does not name '$pattern'"
	elif [ -s "$out" ]; then
		why="the guest printed something"
	fi
	if [ -n "$why" ]; then
		echo "not ok $cases - $name: $why: $msg"
		fails=$((fails + 1))
	else
		echo "ok $cases - $name: $msg"
	fi
}

fresh() {
	rm -rf "$work/case"
	cp -a "$work/ck" "$work/case"
}

fresh && "$tool" corrupt "$work/case" truncate 7 && expect truncated "bytes"
fresh && "$tool" corrupt "$work/case" magic && expect magic "magic"
fresh && "$tool" corrupt "$work/case" version && expect newer-version "format version 2"
for ctx in $("$tool" contexts "$work/ck"); do
	fresh && "$tool" corrupt "$work/case" flip "$ctx" &&
		expect "flip-${ctx//\//-}" "context '$ctx' is damaged"
done
fresh && "$tool" corrupt "$work/case" add-context extra/thing &&
	expect unknown-context "extra/thing"
fresh && "$tool" corrupt "$work/case" drop-context devices/port80 &&
	expect missing-device-context "port80"
fresh && "$tool" corrupt "$work/case" drop-context vcpu/0 && expect missing-vcpu "vcpu/0"
fresh && "$tool" corrupt "$work/case" config-add-device testdev &&
	expect config-mismatch "testdev"
fresh && expect vm-lacks-device "serial0" --serial none
fresh && expect backend-class-mismatch "char-stdio" --serial stdio
fresh && truncate -s -4096 "$work/case/memory" && expect memory-size "memory.size"
fresh && cp "$work/other/memory" "$work/case/memory" && expect memory-other "another checkpoint"
fresh && rm "$work/case/memory" && expect memory-missing "memory"
rm -rf "$work/case" && expect no-checkpoint "case"

echo "1..$cases"
[ "$fails" -eq 0 ] || exit 1
