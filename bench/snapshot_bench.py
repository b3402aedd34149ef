#!/usr/bin/env python3
"""Checkpoint benchmark (bench/snapshot.sh runs it): save time and restore-to-running time of
hearth for a guest of SIZE with TOUCH MiB of RAM written, beside QEMU's migration to a file.

  snapshot_bench.py HEARTH TESTOS QEMU WORKDIR SIZE TOUCH_MIB RUNS

The guest is the test OS in "count" mode: it writes TOUCH_MIB MiB (one word per page), then
counts forever, printing on COM1 every few hundred microseconds. So:
  save     hearth: SIGUSR2 -> "snapshot saved" (the VM paused, memory and state written and
           fsynced, directory swapped in); the in-process figure is printed by hearth itself.
           QEMU: QMP "migrate" to "exec:cat > FILE" -> query-migrate "completed" (no fsync).
  restore  process start -> the first new byte on the serial file: the guest runs again.
           hearth also reports its own share (main() to vCPUs starting).
Prints one line per measurement: `summary|snapshot|VMM|SIZE|TOUCH|key=value...`.
"""
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time


def wait_for(pred, timeout, what):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return
        time.sleep(0.0002)
    raise SystemExit('timeout waiting for ' + what)


def size_of(path):
    try:
        return os.stat(path).st_size
    except FileNotFoundError:
        return 0


def touched_line(path):
    try:
        with open(path, 'rb') as f:
            data = f.read()
    except FileNotFoundError:
        return False
    return b'\ncount ' in data[data.find(b'touched'):] if b'touched' in data else False


def first_byte_ms(cmd, out, env=None):
    """Start cmd, return ms until out grows past its size at start, and the process."""
    before = size_of(out)
    t0 = time.monotonic()
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    wait_for(lambda: size_of(out) > before or p.poll() is not None, 60, 'restored output')
    ms = (time.monotonic() - t0) * 1e3
    if p.poll() is not None:
        raise SystemExit('restore exited: ' + p.stderr.read().decode())
    return ms, p


def du_mib(path):
    total = 0
    for root, _, files in os.walk(path):
        for f in files:
            total += os.stat(os.path.join(root, f)).st_blocks * 512
    return total / 2**20


def hearth_once(hearth, testos, work, size, touch):
    ck = os.path.join(work, 'ck')
    out = os.path.join(work, 'serial')
    for p in (out,):
        if os.path.exists(p):
            os.unlink(p)
    env = dict(os.environ, HEARTH_SNAPSHOT_ON_SIGUSR2=ck + ',stop', HEARTH_SNAPSHOT_VERBOSE='1')
    p = subprocess.Popen([hearth, '--serial', 'file:' + out, '--memory', size, '--kernel', testos,
                          '--cmdline', 'count touch=%d' % touch],
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    wait_for(lambda: touched_line(out), 120, 'the guest to touch its RAM')
    t0 = time.monotonic()
    p.send_signal(signal.SIGUSR2)
    err = p.stderr.read().decode()  # hearth stops after the snapshot
    save_ms = (time.monotonic() - t0) * 1e3
    p.wait()
    m = re.search(r'(\d+) MiB of guest RAM written, ([0-9.]+) ms', err)
    if not m:
        raise SystemExit('no snapshot: ' + err)
    written, inproc = int(m.group(1)), float(m.group(2))
    disk = du_mib(ck)
    env = dict(os.environ, HEARTH_RESTORE_TIMING='1')
    ms, r = first_byte_ms([hearth, 'restore', ck, '--serial', 'file:' + out], out, env)
    r.kill()
    err = r.stderr.read().decode()
    r.wait()
    m = re.search(r'restored in ([0-9.]+) ms', err)
    own = float(m.group(1)) if m else -1
    return dict(save_ms=save_ms, save_inproc_ms=inproc, written_mib=written, file_mib=disk,
                restore_ms=ms, restore_inproc_ms=own)


def qmp(sock_path):
    s = socket.socket(socket.AF_UNIX)
    s.connect(sock_path)
    f = s.makefile('rw')
    json.loads(f.readline())
    f.write(json.dumps({'execute': 'qmp_capabilities'}) + '\n')
    f.flush()
    json.loads(f.readline())

    def cmd(name, **args):
        f.write(json.dumps({'execute': name, 'arguments': args}) + '\n')
        f.flush()
        while True:
            msg = json.loads(f.readline())
            if 'return' in msg or 'error' in msg:
                return msg
    return s, cmd


def qemu_once(qemu, testos, work, size, touch):
    out = os.path.join(work, 'qserial')
    img = os.path.join(work, 'qemu.mig')
    qs = os.path.join(work, 'qmp.sock')
    for p in (out, img, qs):
        if os.path.exists(p):
            os.unlink(p)
    base = [qemu, '-M', 'pc', '-accel', 'kvm', '-m', size, '-nodefaults', '-no-user-config',
            '-display', 'none', '-kernel', testos, '-append', 'count touch=%d' % touch,
            '-device', 'isa-debug-exit,iobase=0xf4,iosize=4',
            '-qmp', 'unix:%s,server=on,wait=off' % qs]
    p = subprocess.Popen(base + ['-serial', 'file:' + out], stdout=subprocess.DEVNULL,
                         stderr=subprocess.PIPE)
    wait_for(lambda: touched_line(out), 120, 'the QEMU guest to touch its RAM')
    s, cmd = qmp(qs)
    t0 = time.monotonic()
    r = cmd('migrate', uri='exec:cat > ' + img)
    if 'error' in r:
        raise SystemExit('migrate: %s' % r)
    while True:
        st = cmd('query-migrate')['return'].get('status')
        if st in ('completed', 'failed', 'cancelled'):
            break
        time.sleep(0.0005)
    save_ms = (time.monotonic() - t0) * 1e3
    if st != 'completed':
        raise SystemExit('QEMU migration ' + st)
    s.close()
    p.kill()
    p.wait()
    os.unlink(qs)
    file_mib = size_of(img) / 2**20
    ms, r = first_byte_ms(base + ['-serial', 'file:' + out, '-incoming', 'exec:cat ' + img], out)
    r.kill()
    r.wait()
    return dict(save_ms=save_ms, file_mib=file_mib, restore_ms=ms)


def main():
    hearth, testos, qemu, work, size, touch, runs = sys.argv[1:8]
    touch, runs = int(touch), int(runs)
    os.makedirs(work, exist_ok=True)
    for name, fn, exe in (('hearth', hearth_once, hearth), ('qemu', qemu_once, qemu)):
        if not exe or not shutil.which(exe):
            continue
        res = [fn(exe, testos, work, size, touch) for _ in range(runs)]
        med = {k: statistics.median(r[k] for r in res) for k in res[0]}
        print('summary|snapshot|%s|%s|%d|%s' % (name, size, touch, '|'.join(
            '%s=%.1f' % kv for kv in med.items())), flush=True)
    shutil.rmtree(work, ignore_errors=True)


if __name__ == '__main__':
    main()
