#!/bin/bash
# The control API (docs/api.md) on a running VM, through curl --unix-socket and
# `hearth snapshot`: state, pause (the guest really stops), resume, devices, bad requests,
# snapshot, shutdown; the socket's life (mode 0600, stale, in use, not a socket, removed).
#   run-api.sh HEARTH TESTOS
# Needs /dev/kvm: without it this fails, never skips.
. "$(dirname "$0")/lib.sh"
hearth=$(realpath "$1")
testos=$2
need_kvm
dir=$(mktemp -d)
sock=$dir/api.sock
pid=
cleanup() {
	[ -n "$pid" ] && kill -9 "$pid" 2>/dev/null
	rm -rf "$dir"
}
trap cleanup EXIT
fail() {
	echo "FAIL: $*" >&2
	exit 1
}

# a guest that keeps its vCPU busy in port writes for minutes
start() {
	# not under timeout(1): $pid must be hearth's, for its CPU time and signals
	"$hearth" --serial none --kernel "$testos" --cmdline "bench=pio:100000000" \
		--api "$sock" 2>"$dir/stderr" &
	pid=$!
	# until it answers: a stale socket from an earlier hearth may still be there
	for _ in $(seq 100); do
		curl -s -o /dev/null --unix-socket "$sock" http://localhost/vm && return
		kill -0 "$pid" 2>/dev/null || fail "hearth ended before serving: $(cat "$dir/stderr")"
		sleep 0.05
	done
	fail "no answer at $sock after 5 s"
}

# call EXPECTED_STATUS METHOD PATH [BODY]: the answer's body is left in $dir/body
call() {
	local want=$1 method=$2 path=$3 code
	shift 3
	code=$(curl -s --unix-socket "$sock" -X "$method" -D "$dir/headers" -o "$dir/body" \
		-w '%{http_code}' "$@" "http://localhost$path")
	echo "$method $path -> $code $(cat "$dir/body")"
	[ "$code" = "$want" ] || fail "$method $path: HTTP $code, expected $want"
}
has() {
	grep -qF -- "$1" "$dir/body" || fail "the answer lacks '$1'"
}

# user+system CPU time of hearth, in clock ticks
cputime() {
	awk '{print $14 + $15}' "/proc/$pid/stat"
}
# ticks used over one second
cpu_over_1s() {
	local t0
	t0=$(cputime)
	sleep 1
	echo $(($(cputime) - t0))
}

start
[ "$(stat -c %a "$sock")" = 600 ] || fail "socket mode $(stat -c %a "$sock"), expected 600"

call 200 GET /vm
has '"state":"running"'
has '"cpus":1'
has '"memory":268435456'
grep -q '^Content-Type: application/json' "$dir/headers" || fail "no JSON content type"

call 200 PUT /vm/pause
has '"state":"paused"'
used=$(cpu_over_1s)
echo "paused: $used ticks of CPU in 1 s"
[ "$used" -le 3 ] || fail "the guest still runs while paused ($used ticks in 1 s)"
call 200 GET /vm
has '"state":"paused"'
call 200 PUT /vm/pause # idempotent
has '"state":"paused"'
call 200 PUT /vm/resume
has '"state":"running"'
used=$(cpu_over_1s)
echo "running: $used ticks of CPU in 1 s"
[ "$used" -ge 10 ] || fail "the guest did not run again after resume ($used ticks in 1 s)"

call 200 GET /devices
has '{"id":"com1","class":"uart8250","resources":[{"type":"port","start":1016,"end":1023}]'

call 404 GET /nope
has '"error":"no such path: /nope'
call 405 GET /vm/pause
grep -qi '^Allow: PUT' "$dir/headers" || fail "405 without Allow: PUT"
call 405 DELETE /vm
call 400 PUT /vm/snapshot -d '{"to": '
has '"error":"malformed JSON body'
call 400 PUT /vm/snapshot -d '{"to": "relative/dir"}'
has 'absolute path'
call 400 PUT /vm/pause -d '{"now": true}'
has 'unknown key'
head -c 70000 /dev/zero | tr '\0' ' ' >"$dir/big"
call 413 PUT /vm/snapshot --data-binary @"$dir/big"
call 200 GET /vm # the bad requests changed nothing
has '"state":"running"'

# the CLI helper: a relative --to is the client's, sent as an absolute path
(cd "$dir" && "$hearth" snapshot --api "$sock" --to ck1) || fail "hearth snapshot: status $?"
[ -f "$dir/ck1/state" ] && [ -f "$dir/ck1/memory" ] || fail "no checkpoint in $dir/ck1"
call 200 GET /vm
has '"state":"running"'
has '"snapshot_in_progress":false'
used=$(cpu_over_1s)
[ "$used" -ge 10 ] || fail "the guest did not run on after the snapshot ($used ticks in 1 s)"
# a paused VM stays paused across a snapshot
call 200 PUT /vm/pause
call 200 PUT /vm/snapshot -d "{\"to\": \"$dir/ck2\"}"
has '"state":"paused"'
has "\"to\":\"$dir/ck2\""
call 200 PUT /vm/resume

"$hearth" snapshot --api "$dir/none.sock" --to "$dir/x" 2>"$dir/err"
status=$?
[ "$status" = 6 ] || fail "snapshot to a missing API: status $status, expected 6"
grep -q "cannot reach the API" "$dir/err" || fail "no 'cannot reach' message: $(cat "$dir/err")"

# a second hearth on the same socket is refused, the first keeps it
timeout 10 "$hearth" --serial none --kernel "$testos" --api "$sock" 2>"$dir/err"
status=$?
[ "$status" = 2 ] || fail "a second hearth on a served socket: status $status, expected 2"
grep -q "another process is serving" "$dir/err" || fail "message: $(cat "$dir/err")"
call 200 GET /vm

call 200 PUT /vm/shutdown
has '"state":"stopping"'
wait "$pid"
status=$?
pid=
[ "$status" = 0 ] || fail "hearth exited with $status after shutdown, expected 0"
[ -e "$sock" ] && fail "the socket is still there after hearth ended"

# SIGTERM: the API's threads must not take the signal, and the socket goes too
start
kill -TERM "$pid"
wait "$pid"
status=$?
pid=
[ "$status" = 143 ] || fail "SIGTERM: status $status, expected 143"
[ -e "$sock" ] && fail "the socket is still there after SIGTERM"

# a socket left by a killed hearth is stale: the next one replaces it
start
kill -9 "$pid"
wait "$pid" 2>/dev/null
pid=
[ -S "$sock" ] || fail "expected a stale socket after SIGKILL"
start
call 200 GET /vm
call 200 PUT /vm/shutdown
wait "$pid"
pid=

# anything else at the path is never removed; a path too long is refused, not cut
echo keep >"$sock"
timeout 10 "$hearth" --serial none --kernel "$testos" --api "$sock" 2>"$dir/err"
status=$?
[ "$status" = 2 ] || fail "a regular file at the socket path: status $status, expected 2"
grep -q "not a socket" "$dir/err" || fail "message: $(cat "$dir/err")"
[ "$(cat "$sock")" = keep ] || fail "the file at the socket path was changed"
long=$dir/$(printf 'a%.0s' $(seq 120))
timeout 10 "$hearth" --serial none --kernel "$testos" --api "$long" 2>"$dir/err"
status=$?
[ "$status" = 2 ] || fail "a socket path over 107 bytes: status $status, expected 2"
grep -q "longer than the 107" "$dir/err" || fail "message: $(cat "$dir/err")"
echo "api: all checks passed"
