# shellcheck shell=sh
# Sourced by the tests/run-*.sh scripts (POSIX sh): the checks several of them make.

# A KVM test fails, never skips, where /dev/kvm cannot be used: a skip would hide a broken CI.
need_kvm() {
	if [ ! -c /dev/kvm ] || [ ! -r /dev/kvm ] || [ ! -w /dev/kvm ]; then
		echo "FAIL: /dev/kvm is missing or not accessible: this test needs KVM" >&2
		exit 1
	fi
}

# The test OS's TAP output in file $1: a plan, an "ok" for every planned test, no "not ok"
# and no skip. Otherwise says which on stderr and returns 1.
tap_all_ok() {
	plan=$(sed -n 's/^1\.\.\([0-9]*\).*/\1/p' "$1" | head -1)
	oks=$(grep -c '^ok ' "$1")
	if grep -q '^not ok' "$1" || [ -z "$plan" ] || [ "$oks" -ne "$plan" ]; then
		echo "FAIL: TAP plan ${plan:-missing}, $oks ok" >&2
		return 1
	fi
	if grep -q '# SKIP' "$1"; then
		echo "FAIL: a guest test was skipped" >&2
		return 1
	fi
}
