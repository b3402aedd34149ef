#!/bin/sh
# Build the libFuzzer targets with clang, ASan and UBSan in build-fuzz, then run each one for
# SECONDS (default 60) over its corpus in build-fuzz/fuzz/corpus/<target>, seeded on first use.
# Crashes land in build-fuzz/fuzz/artifacts/.
set -eu
secs=${1:-60}
root=$(cd "$(dirname "$0")/.." && pwd)
b=$root/build-fuzz
targets="statefile virtqueue"

if [ ! -f "$b/build.ninja" ]; then
	CC=clang meson setup "$b" "$root" -Dfuzz=true -Db_sanitize=address,undefined \
		-Db_lundef=false
fi
for t in $targets; do
	ninja -C "$b" "fuzz/fuzz-$t" "fuzz/fuzz-$t-seeds"
done
mkdir -p "$b/fuzz/artifacts"
for t in $targets; do
	corpus=$b/fuzz/corpus/$t
	mkdir -p "$corpus"
	[ -n "$(ls -A "$corpus")" ] || "$b/fuzz/fuzz-$t-seeds" "$corpus"
	"$b/fuzz/fuzz-$t" -max_total_time="$secs" -print_final_stats=1 \
		-artifact_prefix="$b/fuzz/artifacts/" -dict="$root/fuzz/$t.dict" "$corpus"
done
