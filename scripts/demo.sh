#!/bin/sh
# Command (a) of README.md: install, build, and boot the demo VM (the test OS in demo mode)
# on this terminal. It ends by itself with status 0.
set -e
cd "$(dirname "$0")/.."
sh scripts/install-deps.sh
[ -d build ] || meson setup build
ninja -C build
exec build/hearth --cpus 2 --memory 128M --kernel build/tests/guest/testos.elf \
	--cmdline demo --device testdev
