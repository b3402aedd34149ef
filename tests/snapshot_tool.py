#!/usr/bin/env python3
"""Helpers for the checkpoint guest tests (tests/run-snapshot*.sh).

  snapshot_tool.py count FILE...        the test OS's count output, concatenated, must be
                                         one unbroken sequence; prints the last count
  snapshot_tool.py disk IMG SECTORS QD LAST
                                         the image the test OS's "count disk=1" wrote
                                         (tests/guest/count.c), checked against the last
                                         count printed; prints the newest count on it
  snapshot_tool.py contexts DIR          the state file's context names, one a line
  snapshot_tool.py corrupt DIR HOW [ARG] rewrite DIR/state (CRCs and sizes fixed up where
                                         HOW says so): truncate, magic, version, flip CTX,
                                         add-context NAME, drop-context NAME,
                                         config-add-device CLASS

The state file layout is docs/checkpoint-format.md.
"""
import json
import os
import struct
import sys

HEADER = struct.Struct('<8sIIIIQ')  # magic, version, header_len, flags, count, file_size


def crc32c(data, crc=0):
    crc ^= 0xFFFFFFFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    return crc ^ 0xFFFFFFFF


class State:
    def __init__(self, raw):
        self.head = bytearray(raw[:struct.unpack_from('<I', raw, 12)[0]])
        self.ctx = []  # [name, version, flags, payload]
        off = len(self.head)
        while off < len(raw):
            n = raw[off]
            name = raw[off + 1:off + 1 + n].decode()
            ver, flags, plen = struct.unpack_from('<IIQ', raw, off + 1 + n)
            start = off + 1 + n + 16 + 4
            self.ctx.append([name, ver, flags, bytearray(raw[start:start + plen])])
            off = start + plen

    def encode(self):
        body = b''
        for name, ver, flags, payload in self.ctx:
            rec = bytes([len(name)]) + name.encode() + struct.pack('<IIQ', ver, flags,
                                                                 len(payload))
            body += rec + struct.pack('<I', crc32c(payload, crc32c(rec))) + bytes(payload)
        head = bytearray(self.head)
        struct.pack_into('<I', head, 20, len(self.ctx))
        struct.pack_into('<Q', head, 24, len(head) + len(body))
        struct.pack_into('<I', head, len(head) - 4, crc32c(bytes(head[:-4])))
        return bytes(head) + body

    def find(self, name):
        for c in self.ctx:
            if c[0] == name:
                return c
        sys.exit('no context %r' % name)


def fields(payload):
    out, off = [], 0
    while off < len(payload):
        k = payload[off]
        key = payload[off + 1:off + 1 + k].decode()
        typ, flags, vlen = struct.unpack_from('<BBI', payload, off + 1 + k)
        start = off + 1 + k + 6
        out.append([key, typ, flags, bytes(payload[start:start + vlen])])
        off = start + vlen
    return out


def encode_fields(fl):
    out = b''
    for key, typ, flags, val in fl:
        out += bytes([len(key)]) + key.encode() + struct.pack('<BBI', typ, flags, len(val)) + val
    return bytearray(out)


def count(files):
    data = b''.join(open(f, 'rb').read() for f in files)
    if b'\0' in data:
        sys.exit('FAIL: NUL bytes in the serial output')
    lines = data.decode().split('\n')
    last = None
    for i, line in enumerate(lines[:-1]):  # the last one may be cut short
        if not line.startswith('count '):
            if last is None:
                continue  # the banner
            sys.exit('FAIL: line %d is %r, not a count' % (i + 1, line[:60]))
        n = int(line.split()[1])
        if last is not None and n != last + 1:
            sys.exit('FAIL: line %d: count %d follows %d (%s)' %
                     (i + 1, n, last, 'a repeat' if n <= last else 'a gap'))
        if last is None and n != 1:
            sys.exit('FAIL: the count starts at %d' % n)
        last = n
    if last is None:
        sys.exit('FAIL: no count in the output')
    print(last)


M64 = (1 << 64) - 1


def disk_word(c, i):
    # tests/guest/count.c: disk_word
    return c if i == 0 else ((c + 1) * 0x9E3779B97F4A7C15 + i * 0xBF58476D1CE4E5B9) & M64


def disk(img, sectors, qd, last):
    """Every sector holds a whole record (no torn write) of a count that belongs there, and
    no write the guest saw completed is missing: with M the newest count on the disk, every
    count up to M - qd was used before M was submitted, so sector s holds at least the
    newest such count that maps to it. M itself is within what the serial output allows."""
    data = open(img, 'rb').read()
    if len(data) < sectors * 512:
        sys.exit('FAIL: the image has %d bytes, less than %d sectors' % (len(data), sectors))
    got = {}
    for s in range(sectors):
        w = struct.unpack_from('<64Q', data, s * 512)
        if not any(w):
            continue
        c = w[0]
        if c % sectors != s or c == 0:
            sys.exit('FAIL: sector %d holds count %d, which belongs in sector %d' %
                     (s, c, c % sectors))
        for i in range(64):
            if w[i] != disk_word(c, i):
                sys.exit('FAIL: sector %d: word %d is %#x, count %d has %#x there (a torn '
                         'or foreign write)' % (s, i, w[i], c, disk_word(c, i)))
        got[s] = c
    if not got:
        sys.exit('FAIL: nothing on the disk')
    newest = max(got.values())
    if not last - qd <= newest <= last + 1:
        sys.exit('FAIL: the newest count on the disk is %d, but the serial output ends at '
                 'count %d (%d steps in flight)' % (newest, last, qd))
    for s in range(sectors):
        # the newest count <= newest - qd that maps to sector s (counts start at 1)
        done = newest - qd
        want = done - ((done - s) % sectors) if done >= s else None
        if want is not None and want < 1:
            want = None
        have = got.get(s)
        if want is not None and (have is None or have < want):
            sys.exit('FAIL: sector %d holds %s, but count %d was written there and completed '
                     'before count %d was submitted' %
                     (s, 'nothing' if have is None else 'count %d' % have, want, newest))
    print(newest)


def corrupt(d, how, arg):
    path = os.path.join(d, 'state')
    raw = open(path, 'rb').read()
    st = State(raw)
    if how == 'truncate':
        out = raw[:len(raw) - int(arg)]
    elif how == 'magic':
        out = b'HEARTHCX' + raw[8:]
    elif how == 'version':
        struct.pack_into('<I', st.head, 8, 2)
        out = st.encode()
    elif how == 'flip':
        # one bit in the middle of the context's payload; the CRC is left as it was
        c = st.find(arg)
        pos = len(st.head)
        for name, ver, flags, payload in st.ctx:
            rec = 1 + len(name) + 20
            if name == arg:
                pos += rec + len(payload) // 2
                break
            pos += rec + len(payload)
        out = bytearray(raw)
        out[pos] ^= 0x10
        out = bytes(out)
        del c
    elif how == 'add-context':
        st.ctx.append([arg, 1, 0, encode_fields([['x', 3, 0, struct.pack('<I', 1)]])])
        out = st.encode()
    elif how == 'drop-context':
        st.ctx.remove(st.find(arg))
        out = st.encode()
    elif how == 'config-add-device':
        c = st.find('config')
        fl = fields(c[3])
        cfg = json.loads(fl[0][3])
        cfg.setdefault('devices', []).append({'class': arg})
        fl[0][3] = json.dumps(cfg).encode()
        c[3] = encode_fields(fl)
        out = st.encode()
    else:
        sys.exit('unknown corruption %r' % how)
    open(path, 'wb').write(out)


def main():
    cmd = sys.argv[1]
    if cmd == 'count':
        count(sys.argv[2:])
    elif cmd == 'disk':
        disk(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]))
    elif cmd == 'contexts':
        for c in State(open(os.path.join(sys.argv[2], 'state'), 'rb').read()).ctx:
            print(c[0])
    elif cmd == 'corrupt':
        corrupt(sys.argv[2], sys.argv[3], sys.argv[4] if len(sys.argv) > 4 else None)
    else:
        sys.exit(__doc__)


if __name__ == '__main__':
    main()
