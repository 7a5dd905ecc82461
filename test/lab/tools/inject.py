#!/usr/bin/env python3
"""inject.py — forge, tamper with and replay onebox packets (stdlib only).

Wire header (16 bytes, big-endian):
    type(1: 1=HandshakeInit 2=HandshakeResp 3=Data 4=Keepalive) version(1, =1)
    reserved(2, =0) session_id(4) seq(8)  then ciphertext + 16-byte tag.

Subcommands:
  capture  AF_PACKET sniffer: keeps UDP payloads sent to --dst-ip:--port whose
           first byte is one of --types; writes them as hex lines to --out.
  forge    sends to --dst HOST:PORT from an ephemeral port: short packets, bad
           headers, unknown session ids, garbage ciphertext under the real
           session id, tampered captured packets (one byte flipped) and
           unchanged replays of captured packets. Prints a JSON summary.
  spoof    raw IPv4 (IP_HDRINCL) ICMP echo requests with a forged source
           address, bound to --dev (the TUN), so a client carries them.
"""
import argparse
import json
import os
import random
import socket
import struct
import sys
import time

HDR = 16
TAG = 16
T_INIT, T_RESP, T_DATA, T_KEEPALIVE = 1, 2, 3, 4


def header(ptype, session_id, seq, version=1, reserved=0):
    return struct.pack("!BBHIQ", ptype, version, reserved, session_id, seq)


def parse_header(pkt):
    ptype, version, reserved, sid, seq = struct.unpack("!BBHIQ", pkt[:HDR])
    return ptype, version, reserved, sid, seq


# ------------------------------------------------------------------ capture
def cmd_capture(a):
    ETH_P_ALL = 0x0003
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    s.bind((a.iface, 0))
    s.settimeout(0.2)
    dst_ip = socket.inet_aton(a.dst_ip)
    types = {int(t) for t in a.types.split(",")}
    got = []
    deadline = time.monotonic() + a.timeout
    while len(got) < a.count and time.monotonic() < deadline:
        try:
            frame, addr = s.recvfrom(65535)
        except socket.timeout:
            continue
        if addr[2] == socket.PACKET_OUTGOING:
            continue
        if len(frame) < 14 + 20 + 8 or frame[12:14] != b"\x08\x00":
            continue
        ip = frame[14:]
        ihl = (ip[0] & 0x0F) * 4
        if ip[0] >> 4 != 4 or ip[9] != 17 or ip[16:20] != dst_ip:
            continue
        tot = struct.unpack("!H", ip[2:4])[0]
        udp = ip[ihl:tot]
        if len(udp) < 8:
            continue
        dport = struct.unpack("!H", udp[2:4])[0]
        if dport != a.port:
            continue
        payload = udp[8:]
        if len(payload) < HDR + TAG or payload[0] not in types:
            continue
        got.append(payload)
    with open(a.out, "w") as f:
        for p in got:
            f.write(p.hex() + "\n")
    print(json.dumps({"captured": len(got)}))
    return 0 if len(got) >= a.min else 1


# ------------------------------------------------------------------ forge
def cmd_forge(a):
    host, port = a.dst.rsplit(":", 1)
    dst = (host, int(port))
    captured = []
    if a.capture:
        with open(a.capture) as f:
            captured = [bytes.fromhex(l.strip()) for l in f if l.strip()]
    need_cap = a.garbage or a.tamper or a.replay
    if need_cap and not captured:
        print("forge: --garbage/--tamper/--replay need captured packets", file=sys.stderr)
        return 2
    sids = {parse_header(p)[3] for p in captured}
    sid = parse_header(captured[-1])[3] if captured else 0
    max_seq = max((parse_header(p)[4] for p in captured), default=0)
    rnd = random.Random(a.seed)
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 20)
    sent = {"short": 0, "bad_header": 0, "unknown_session": 0, "garbage": 0,
            "tampered": 0, "replayed": 0}

    def send(kind, pkt):
        s.sendto(pkt, dst)
        sent[kind] += 1
        if a.interval > 0:
            time.sleep(a.interval)

    # 1. shorter than a header
    for _ in range(a.short):
        send("short", os.urandom(rnd.randint(1, HDR - 1)))
    # 2. random bytes whose header can never be valid (type outside 1..4)
    for _ in range(a.bad_header):
        pkt = bytearray(os.urandom(rnd.randint(HDR, 200)))
        pkt[0] = rnd.choice([0] + list(range(5, 256)))
        send("bad_header", bytes(pkt))
    # 3. well-formed Data header, session id nobody holds
    for i in range(a.unknown):
        u = 0
        while u == 0 or u in sids:
            u = rnd.randint(1, 0xFFFFFFFF)
        send("unknown_session", header(T_DATA, u, i + 1) + os.urandom(rnd.randint(TAG, 200)))
    # 4. the real session id, fresh sequence numbers, garbage ciphertext + tag
    for i in range(a.garbage):
        seq = max_seq + 100 + i
        send("garbage", header(T_DATA, sid, seq) + os.urandom(rnd.randint(TAG + 1, 200)))
    # 5. captured packets with one byte of ciphertext/tag flipped
    for i in range(a.tamper):
        p = bytearray(captured[i % len(captured)])
        off = rnd.randint(HDR, len(p) - 1)
        p[off] ^= 1 << rnd.randint(0, 7)
        send("tampered", bytes(p))
    # 6. captured packets unchanged (from another source port than the client's)
    for i in range(a.replay):
        send("replayed", captured[i % len(captured)])
    out = dict(sent)
    out.update({"session_id": sid, "max_captured_seq": max_seq, "captured": len(captured)})
    print(json.dumps(out))
    return 0


# ------------------------------------------------------------------ spoof
def csum(b):
    if len(b) % 2:
        b += b"\0"
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return (~s) & 0xFFFF


def cmd_spoof(a):
    s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
    s.setsockopt(socket.IPPROTO_IP, socket.IP_HDRINCL, 1)
    if a.dev:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, a.dev.encode())
    src, dst = socket.inet_aton(a.src), socket.inet_aton(a.dst)
    ident = os.getpid() & 0xFFFF
    for i in range(a.count):
        data = b"onebox-spoof-test" + bytes(16)
        icmp = struct.pack("!BBHHH", 8, 0, 0, ident, i + 1) + data
        icmp = icmp[:2] + struct.pack("!H", csum(icmp)) + icmp[4:]
        tot = 20 + len(icmp)
        iph = struct.pack("!BBHHHBBH4s4s", 0x45, 0, tot, (ident + i) & 0xFFFF, 0x4000, 64, 1, 0, src, dst)
        iph = iph[:10] + struct.pack("!H", csum(iph)) + iph[12:]
        s.sendto(iph + icmp, (a.dst, 0))
        time.sleep(a.interval)
    print(json.dumps({"spoofed": a.count, "src": a.src, "dst": a.dst, "dev": a.dev}))
    return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("capture")
    c.add_argument("--iface", required=True)
    c.add_argument("--dst-ip", required=True)
    c.add_argument("--port", type=int, default=8080)
    c.add_argument("--types", default="3")
    c.add_argument("--count", type=int, default=20)
    c.add_argument("--min", type=int, default=1)
    c.add_argument("--timeout", type=float, default=10)
    c.add_argument("--out", required=True)
    f = sub.add_parser("forge")
    f.add_argument("--dst", required=True, help="HOST:PORT")
    f.add_argument("--capture", help="hex lines written by capture")
    for k in ("short", "bad-header", "unknown", "garbage", "tamper", "replay"):
        f.add_argument("--" + k, type=int, default=0)
    f.add_argument("--interval", type=float, default=0.002)
    f.add_argument("--seed", type=int, default=None)
    sp = sub.add_parser("spoof")
    sp.add_argument("--src", required=True)
    sp.add_argument("--dst", required=True)
    sp.add_argument("--dev", default="onebox0")
    sp.add_argument("--count", type=int, default=10)
    sp.add_argument("--interval", type=float, default=0.01)
    a = ap.parse_args()
    return {"capture": cmd_capture, "forge": cmd_forge, "spoof": cmd_spoof}[a.cmd](a)


if __name__ == "__main__":
    sys.exit(main())
