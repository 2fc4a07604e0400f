#!/usr/bin/env python3
"""Writes sample.pcap, the packets the bundled example runs on.

Hand-built so the example needs no capture tool: an ICMP echo request (bounced), UDP and TCP
traffic (passed), a packet from the blocklisted 10.0.0.66 (dropped), ARP and IPv6 (passed), and
a runt frame shorter than an Ethernet header (dropped).
"""
import struct
import sys


def csum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def ipv4(src, dst, proto, payload):
    hdr = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(payload), 1, 0, 64, proto, 0,
                      bytes(src), bytes(dst))
    hdr = hdr[:10] + struct.pack("!H", csum(hdr)) + hdr[12:]
    return hdr + payload


def eth(proto, payload, dst=b"\x02\0\0\0\0\x01", src=b"\x02\0\0\0\0\x02"):
    return dst + src + struct.pack("!H", proto) + payload


def icmp_echo(ident, seq, data):
    body = struct.pack("!BBHHH", 8, 0, 0, ident, seq) + data
    return body[:2] + struct.pack("!H", csum(body)) + body[4:]


def udp(sport, dport, data):
    return struct.pack("!HHHH", sport, dport, 8 + len(data), 0) + data


def tcp_syn(sport, dport):
    return struct.pack("!HHIIBBHHH", sport, dport, 1, 0, 0x50, 0x02, 65535, 0, 0)


A, B, BAD = [10, 0, 0, 1], [10, 0, 0, 2], [10, 0, 0, 66]
packets = [
    eth(0x0800, ipv4(A, B, 1, icmp_echo(0x1234, 1, b"nicc-ping-0123456789"))),
    eth(0x0800, ipv4(A, B, 17, udp(5353, 53, b"\x12\x34\x01\x00\x00\x01"))),
    eth(0x0800, ipv4(A, B, 6, tcp_syn(40000, 443))),
    eth(0x0800, ipv4(BAD, B, 17, udp(1, 2, b"blocked"))),
    eth(0x0806, bytes(28)),
    eth(0x86DD, bytes(40)),
    eth(0x0800, ipv4(B, A, 1, icmp_echo(0x4321, 7, b"second ping"))),
    b"\x02\0\0\0",
]

out = bytearray(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
for i, p in enumerate(packets):
    out += struct.pack("<IIII", 1700000000 + i, 0, len(p), len(p)) + p
with open(sys.argv[1] if len(sys.argv) > 1 else "sample.pcap", "wb") as f:
    f.write(out)
