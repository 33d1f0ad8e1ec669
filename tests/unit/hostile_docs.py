"""Hostile documents of issue #16 (failing inputs 1-3), built byte by byte, for unit and API
tests: a tar with a negative member size, the billion-laughs descriptor, schemas whose
references go nowhere or off-site."""

from __future__ import annotations

import concurrent.futures
import gzip
import io
import tarfile
from collections.abc import Callable
from typing import Any, TypeVar

import yaml

T = TypeVar("T")

DESC: dict[str, Any] = {"name": "probe", "version": "1", "ports": [{"name": "lan"}]}


def header(name: bytes, size_field: bytes, kind: bytes = b"0", *, magic: bytes = b"ustar\x0000",
           prefix: bytes = b"", checksum: bool = True) -> bytes:
    """One raw 512-byte ustar header, with any size field (e.g. base-256) and a valid
    checksum unless told otherwise."""
    h = bytearray(512)
    h[0:len(name)] = name
    h[100:108] = b"0000644\0"
    h[108:116] = b"0000000\0"
    h[116:124] = b"0000000\0"
    h[124:136] = size_field
    h[136:148] = b"00000000000\0"
    h[156:157] = kind
    h[257:265] = magic
    h[345:345 + len(prefix)] = prefix
    h[148:156] = b" " * 8
    if checksum:
        h[148:156] = b"%06o\0 " % sum(h)
    return bytes(h)


def octal(n: int) -> bytes:
    return b"%011o\0" % n


def pad(data: bytes) -> bytes:
    return data + bytes(-len(data) % 512)


NEGATIVE_512 = b"\xff" + (256 ** 11 - 512).to_bytes(11, "big")  # base-256 -512


def negative_size_tgz() -> bytes:
    """Issue #16, input 1: an empty scripts/start, then descriptor.yaml whose size field is
    base-256 -512; 104 bytes gzipped. CPython 3.11.2's tarfile loops on it forever."""
    raw = header(b"scripts/start", octal(0)) + header(b"descriptor.yaml", NEGATIVE_512)
    return gzip.compress(raw + bytes(1024), mtime=0)


def pax_member(records: dict[str, str], kind: bytes = b"x") -> bytes:
    data = b""
    for k, v in records.items():
        body = f" {k}={v}\n".encode()
        n = len(body) + 1
        while len(str(n)) + len(body) != n:
            n = len(str(n)) + len(body)
        data += str(n).encode() + body
    return header(b"././@PaxHeader", octal(len(data)), kind) + pad(data)


def laughs(levels: int = 9) -> str:
    """Issue #16, input 2: a descriptor whose config-schema nests `levels` anchors, each
    used 3 times by the next (the billion-laughs shape): 3**levels subschemas once expanded."""
    lines = ["name: laughs", "version: '1'", "ports: [{name: eth0}]", "config-schema:",
             "  type: object", "  $defs:", "    l0: &l0 {type: string}"]
    for i in range(1, levels):
        p = f"*l{i - 1}"
        lines.append(f"    l{i}: &l{i} {{allOf: [{p}, {p}, {p}]}}")
    last = f"*l{levels - 1}"
    lines.append(f"  properties: {{x: {{allOf: [{last}, {last}, {last}]}}}}")
    return "\n".join(lines) + "\n"


def tgz(members: list[tuple[str, bytes]]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o755 if name.startswith("scripts/") else 0o644
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def bundle(descriptor: dict[str, Any] | str | bytes) -> bytes:
    """A bundle with this descriptor (a mapping is dumped as YAML) and start/stop scripts."""
    text = descriptor if isinstance(descriptor, str | bytes) else yaml.safe_dump(descriptor)
    data = text.encode() if isinstance(text, str) else text
    return tgz([("descriptor.yaml", data), ("scripts/start", b"#!/bin/sh\n"),
                ("scripts/stop", b"#!/bin/sh\n")])


def with_schema(schema: dict[str, Any], name: str = "probe") -> dict[str, Any]:
    return {**DESC, "name": name, "config-schema": schema}


MISSING_DEFS = {"type": "object", "properties": {"rules": {"$ref": "#/$defs/rule"}}}
REMOTE_REF = {"type": "object", "properties": {"rules": {"$ref": "http://example.com/r.json"}}}


def within(seconds: float, fn: Callable[..., T], *args: Any) -> T:
    """fn(*args), failing the test (instead of hanging it) if it has not returned in time."""
    pool = concurrent.futures.ThreadPoolExecutor(1)
    try:
        return pool.submit(fn, *args).result(timeout=seconds)
    finally:
        pool.shutdown(wait=False)
