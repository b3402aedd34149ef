#!/bin/sh
# Debian 12 packages hearth needs to build, test and benchmark. Safe to run again.
set -e
PKGS="build-essential meson ninja-build pkg-config clang clang-format libclang-rt-14-dev
      libjson-c-dev liburing-dev libcmocka-dev libmicrohttpd-dev libcurl4-openssl-dev curl
      qemu-system-x86 fio"
missing=""
for p in $PKGS; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
	SUDO=""
	[ "$(id -u)" -eq 0 ] || SUDO=sudo
	$SUDO apt-get update -q
	DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q $missing
fi
