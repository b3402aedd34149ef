#!/bin/sh
# A guest crash ends hearth with status 4 and a report naming the cause and the registers.
#   run-crash.sh HEARTH TESTOS HOW PATTERN
#   HOW: the test OS's crash= mode; PATTERN: text the report must contain.
. "$(dirname "$0")/lib.sh"
hearth=$1
testos=$2
how=$3
pattern=$4
need_kvm
err=$(mktemp)
trap 'rm -f "$err"' EXIT
timeout 20 "$hearth" --serial none --kernel "$testos" --cmdline "crash=$how" 2>"$err"
status=$?
cat "$err"
if [ "$status" -ne 4 ]; then
	echo "FAIL: status $status, expected 4 (guest crash)" >&2
	exit 1
fi
for want in "$pattern" "guest crash on vCPU 0" "rip " "cr0 "; do
	if ! grep -qF -- "$want" "$err"; then
		echo "FAIL: the report lacks '$want'" >&2
		exit 1
	fi
done
