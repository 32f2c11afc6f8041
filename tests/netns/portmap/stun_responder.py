#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Minimal STUN Binding responder (RFC 5389) for the UPnP test rig.

miniupnpd refuses port forwarding while its external address is in a
reserved range unless STUN shows it is reachable without filtering. This
answers every Binding request, from the socket it arrived on (CHANGE-REQUEST
is ignored: the router is then seen as directly connected), with an
XOR-MAPPED-ADDRESS of the request's source.
"""
import socket
import struct
import sys

MAGIC = 0x2112A442


def main():
    addr = sys.argv[1] if len(sys.argv) > 1 else "0.0.0.0"
    port = int(sys.argv[2]) if len(sys.argv) > 2 else 3478
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((addr, port))
    while True:
        data, (ip, sport) = sock.recvfrom(2048)
        if len(data) < 20:
            continue
        mtype, _mlen, cookie = struct.unpack("!HHI", data[:8])
        if mtype != 0x0001:  # Binding request
            continue
        tid = data[8:20]
        xport = sport ^ (MAGIC >> 16)
        xip = struct.unpack("!I", socket.inet_aton(ip))[0] ^ MAGIC
        attr = struct.pack("!HHBBHI", 0x0020, 8, 0, 1, xport, xip)
        hdr = struct.pack("!HHI", 0x0101, len(attr), MAGIC) + tid
        sock.sendto(hdr + attr, (ip, sport))


if __name__ == "__main__":
    main()
