#!/bin/bash
# The test OS's virtio guest tests under hearth, or under QEMU for comparison.
#   run-virtio.sh VMM TESTOS CASE
# VMM is the hearth binary, or "qemu" (QEMU from $QEMU, default qemu-system-x86_64: SeaBIOS
# assigns the BARs, virtio-*-pci with disable-legacy=on). CASE is one of:
#   pci        test=pci with a disk, an entropy device and a console
#   pci-reassign  the same, with the test OS moving every virtio BAR itself first
#              (pci=reassign), then the disk and the entropy device used at the new places
#   blk        pattern disk with 2 queues: reads (batched, indirect, on both queues), writes
#              + flush, write-zeroes, discard, broken requests, reset; the image is then
#              checked byte for byte on the host
#   blk-ro     read-only pattern disk: writes must fail with IOERR, the file stays unchanged
#   irq-msix   test=virtio-irq (MSI-X, masking, pending bits)
#   irq-intx   test=virtio-irq intx=1 (INTx through the MP table's IOAPIC pin)
#   console    test=virtio-console: a line out, a line in, echoed back, over a UNIX socket
#   rng        test=virtio-rng
# Passes when the VMM exits with status 1 (debug-exit 0), every planned test printed "ok"
# with no skip, and the case's host-side check holds. Needs /dev/kvm: fails without it.
. "$(dirname "$0")/lib.sh"
vmm=$1
testos=$2
case=$3
if [ $# -ne 3 ]; then
	echo "usage: $0 HEARTH|qemu TESTOS pci|pci-reassign|blk|blk-ro|irq-msix|irq-intx|console|rng" >&2
	exit 2
fi
need_kvm
qemu=${QEMU:-qemu-system-x86_64}
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
out=$dir/serial.txt
img=$dir/disk.img
serial_id=hearth-test-disk
disk_mib=8

# Word i (8 bytes, little-endian) of the image is (i + 1) * 0x9E3779B97F4A7C15 mod 2^64:
# blk_pattern() in tests/guest/virtio_blk.c.
make_image() {
	python3 - "$img" "$disk_mib" <<'EOF'
import array, sys
n = int(sys.argv[2]) * 1024 * 1024 // 8
a = array.array('Q', (((i + 1) * 0x9E3779B97F4A7C15) & 0xFFFFFFFFFFFFFFFF for i in range(n)))
if sys.byteorder != 'little':
    a.byteswap()
open(sys.argv[1], 'wb').write(a.tobytes())
EOF
}

# After the blk case: sectors 2048-2303 hold the inverted pattern (written and flushed by the
# guest), 4096-4159 zeros when the guest reported write-zeroes, 6144-6207 (discarded) are
# not checked, everything else is still the host's pattern.
check_image() {
	python3 - "$img" "$disk_mib" "$1" <<'EOF'
import array, sys
path, mib, mode = sys.argv[1], int(sys.argv[2]), sys.argv[3]
M = 0xFFFFFFFFFFFFFFFF
data = open(path, 'rb').read()
if len(data) != mib << 20:
    sys.exit(f'FAIL: image is {len(data)} bytes, want {mib << 20}')
got = array.array('Q', data)
if sys.byteorder != 'little':
    got.byteswap()
def region(s, n):
    return range(s * 64, (s + n) * 64)  # 64 words per sector
expect = {}
if mode in ('written', 'written+zeroes'):
    for i in region(2048, 256):
        expect[i] = ~((i + 1) * 0x9E3779B97F4A7C15) & M
if mode == 'written+zeroes':
    for i in region(4096, 64):
        expect[i] = 0
skip = set(region(6144, 64)) if mode != 'unchanged' else set()
for i, w in enumerate(got):
    if i in skip:
        continue
    want = expect.get(i, ((i + 1) * 0x9E3779B97F4A7C15) & M)
    if w != want:
        sys.exit(f'FAIL: image byte {8 * i} (sector {8 * i // 512}): word {w:#018x}, want {want:#018x}')
print(f'# host image check ({mode}): {len(got)} words as expected, {len(skip)} discarded words not checked')
EOF
}

# ---- the VMM command line for this case ----
args=()
queues=1
hearth_disk() { # [ro]
	args+=(--device "virtio-blk,id=vd0,serial=$serial_id,queues=$queues")
	args+=(--device "blk-file,path=$img,frontend=vd0${1:+,readonly=on}")
}
qemu_disk() { # [ro]
	args+=(-drive "file=$img,if=none,id=d0,format=raw,cache=none,aio=io_uring${1:+,readonly=on}")
	args+=(-device "virtio-blk-pci,drive=d0,disable-legacy=on,serial=$serial_id,num-queues=$queues")
}
sock=$dir/console.sock
hearth_console() {
	args+=(--device virtio-console,id=con0 --device "char-socket,frontend=con0,path=$sock,wait=on")
}
qemu_console() {
	args+=(-chardev "socket,id=c0,path=$sock,server=on,wait=off")
	args+=(-device virtio-serial-pci,disable-legacy=on,max_ports=1 -device virtconsole,chardev=c0)
}
hearth_rng() { args+=(--device virtio-rng); }
qemu_rng() { args+=(-device virtio-rng-pci,disable-legacy=on); }

if [ "$vmm" = qemu ]; then kind=qemu; else kind=hearth; fi
post=
case $case in
pci)
	make_image
	${kind}_disk
	${kind}_rng
	${kind}_console
	cmdline="test=pci"
	;;
pci-reassign)
	make_image
	${kind}_disk
	${kind}_rng
	${kind}_console
	cmdline="test=pci,virtio-blk,virtio-rng disk=pattern pci=reassign"
	;;
blk)
	make_image
	queues=2
	${kind}_disk
	cmdline="test=virtio-blk disk=pattern blkwrite=1 blkid=$serial_id"
	post=written
	;;
blk-ro)
	make_image
	${kind}_disk ro
	cmdline="test=virtio-blk disk=pattern blkro=1 blkid=$serial_id"
	post=unchanged
	;;
irq-msix | irq-intx)
	make_image
	${kind}_disk
	cmdline="test=virtio-irq"
	[ "$case" = irq-intx ] && cmdline="$cmdline intx=1"
	;;
console)
	${kind}_console
	cmdline="test=virtio-console conin=ping-from-host"
	;;
rng)
	${kind}_rng
	cmdline="test=virtio-rng"
	;;
*)
	echo "unknown case $case" >&2
	exit 2
	;;
esac

if [ $kind = qemu ]; then
	timeout 120 "$qemu" -accel kvm -m 256 -display none -no-reboot -nodefaults \
		-serial "file:$out" -device isa-debug-exit,iobase=0xf4,iosize=4 \
		-kernel "$testos" -append "$cmdline" "${args[@]}" 2>"$dir/stderr" &
else
	timeout 60 "$vmm" --serial "file:$out" --device debug-exit --kernel "$testos" \
		--cmdline "$cmdline" "${args[@]}" 2>"$dir/stderr" &
fi
pid=$!

# The console case talks to the guest over the socket: read the hello line, send a line,
# expect it echoed back.
console_ok=0
if [ "$case" = console ]; then
	python3 - "$sock" >"$dir/console.txt" 2>&1 <<'EOF'
import socket, sys, time
path = sys.argv[1]
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
deadline = time.time() + 30
while True:
    try:
        s.connect(path)
        break
    except OSError:
        if time.time() > deadline:
            sys.exit('FAIL: console socket never appeared')
        time.sleep(0.05)
s.settimeout(30)
buf = b''
def wait_for(text):
    global buf
    while text not in buf:
        chunk = s.recv(4096)
        if not chunk:
            sys.exit(f'FAIL: console closed before {text!r}; got {buf!r}')
        buf += chunk
try:
    wait_for(b'hearth-testos virtio-console hello\n')
    s.sendall(b'ping-from-host\n')
    wait_for(b'got ping-from-host\n')
except socket.timeout:
    sys.exit(f'FAIL: console timed out; got {buf!r}')
print('# console: hello received, input echoed')
EOF
	console_ok=$?
fi
wait $pid
status=$?
cat "$out"
[ -s "$dir/stderr" ] && sed 's/^/# stderr: /' "$dir/stderr"
[ "$case" = console ] && cat "$dir/console.txt"

fail() {
	echo "FAIL: $*" >&2
	exit 1
}
[ "$status" -eq 1 ] || fail "$vmm exited with $status, expected 1 (debug-exit 0)"
tap_all_ok "$out" || exit 1
[ "$console_ok" -eq 0 ] || fail "console round trip"
if [ -n "$post" ]; then
	if [ "$post" = written ] && grep -q '^# write-zeroes sectors 4096' "$out"; then
		post=written+zeroes
	fi
	check_image "$post" || exit 1
fi
exit 0
