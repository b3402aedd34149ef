#!/bin/bash
# Run the test OS under hearth and check what it reports.
#   run-guest.sh HEARTH EXPECTED_STATUS [--expect=TEXT] HEARTH_ARGS...
# COM1 goes to a file; the test passes when hearth exits with EXPECTED_STATUS and, for TAP
# runs, every planned test printed "ok"; with --expect, COM1 shows TEXT. "{now}" in an argument becomes the host's Unix time.
# Needs /dev/kvm: without it this fails, never skips.
. "$(dirname "$0")/lib.sh"
hearth=$1
expect=$2
shift 2
expect_text=
case "$1" in --expect=*)
	expect_text=${1#--expect=}
	shift
	;;
esac
need_kvm
out=$(mktemp)
trap 'rm -f "$out"' EXIT
args=("${@//\{now\}/$(date +%s)}")
timeout 60 "$hearth" --serial "file:$out" --device debug-exit "${args[@]}"
status=$?
cat "$out"
if [ "$status" -ne "$expect" ]; then
	echo "FAIL: hearth exited with $status, expected $expect" >&2
	exit 1
fi
if [ -n "$expect_text" ] && ! grep -qF -- "$expect_text" "$out"; then
	echo "FAIL: COM1 output lacks '$expect_text'" >&2
	exit 1
fi
if grep -q '^TAP version' "$out"; then
	tap_all_ok "$out" || exit 1
fi
exit 0
