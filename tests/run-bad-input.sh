#!/bin/sh
# hearth refuses bad input with one line naming the thing, a non-zero status, no core dump.
#   run-bad-input.sh HEARTH EXPECTED_STATUS PATTERN HEARTH_ARGS...
hearth=$1
expect=$2
pattern=$3
shift 3
err=$(mktemp)
trap 'rm -f "$err"' EXIT
ulimit -c 0
timeout 20 "$hearth" --serial none "$@" >/dev/null 2>"$err"
status=$?
cat "$err"
if [ "$status" -ne "$expect" ]; then
	echo "FAIL: status $status, expected $expect" >&2
	exit 1
fi
if [ "$(wc -l <"$err")" -ne 1 ]; then
	echo "FAIL: expected exactly one line on stderr" >&2
	exit 1
fi
if ! grep -q -- "$pattern" "$err"; then
	echo "FAIL: message does not mention '$pattern'" >&2
	exit 1
fi
