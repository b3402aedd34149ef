#!/bin/sh
# SIGTERM and SIGINT stop every thread and end hearth with 128 + the signal, promptly.
#   run-signal.sh HEARTH TESTOS
. "$(dirname "$0")/lib.sh"
hearth=$1
testos=$2
need_kvm
for sig in 15 2; do
	# a guest that keeps a vCPU busy in exits for minutes
	"$hearth" --serial none --cpus 2 --kernel "$testos" --device testdev \
		--cmdline "bench=pio:100000000" &
	pid=$!
	sleep 0.5
	kill -"$sig" "$pid"
	start=$(date +%s%N)
	wait "$pid"
	status=$?
	ms=$((($(date +%s%N) - start) / 1000000))
	want=$((128 + sig))
	echo "signal $sig: status $status after $ms ms"
	if [ "$status" -ne "$want" ]; then
		echo "FAIL: expected status $want" >&2
		exit 1
	fi
	if [ "$ms" -gt 2000 ]; then
		echo "FAIL: took $ms ms to stop" >&2
		exit 1
	fi
done
