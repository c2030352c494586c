#!/usr/bin/env python3
"""Writes the seeds of the `response` fuzz target (fuzz/response.c) into fuzz/corpus/response/:
compressed response bodies with a first selector byte (0 gzip, 1 raw deflate, 2 zlib).
Run from the repository root:  python3 fuzz/make_response_corpus.py   (deterministic: mtime 0)."""
import gzip, zlib, os

D = "fuzz/corpus/response"
os.makedirs(D, exist_ok=True)

def gz(b): return b"\0" + gzip.compress(b, 9, mtime=0)
def raw(b):
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    return b"\1" + c.compress(b) + c.flush()
def zl(b): return b"\2" + zlib.compress(b, 9)

normal = b'{"delivery_id":"dgOxBgABAAAAAQ==","queued_at":1700000000}'
customers = b'{"identifiers":[' + b",".join(b'{"id":"%d","email":"u%d@example.com","cio_id":"a%d"}' % (i, i, i) for i in range(50)) + b'],"next":"abc"}'
bomb_values = b"[" + b"0," * 1100000 + b"0]"      # 2.2 MB, over max_values (1000000)
bomb_cap = b" " * (5 << 20)                         # 5 MiB of spaces, over the 4 MiB cap
seeds = {
    "gzip-delivery": gz(normal),
    "gzip-customers": gz(customers),
    "raw-customers": raw(customers),
    "zlib-delivery": zl(normal),
    "gzip-bomb-values": gz(bomb_values),
    "gzip-bomb-cap": gz(bomb_cap),
    "gzip-truncated": gz(customers)[:40],
    "gzip-bad-crc": gz(normal)[:-8] + b"\0\0\0\0" + gz(normal)[-4:],
    "gzip-empty": gz(b""),
    "gzip-whitespace": gz(b" \r\n\t "),
    "gzip-invalid-json": gz(b'{"a":1,'),
    "gzip-deep": gz(b"[" * 1001 + b"]" * 1001),
    "gzip-two-members": gz(normal) + gzip.compress(b"[1]", 9, mtime=0),
    "raw-stored": b"\1" + b"\x01\x02\x00\xfd\xff[]",
}
for name, data in seeds.items():
    with open(os.path.join(D, name), "wb") as f:
        f.write(data)
