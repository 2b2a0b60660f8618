#!/usr/bin/python3
"""A minimal Kamstrup KMP client, written independently of icsnare from the public
description of the protocol: byte stuffing, CRC-16/XMODEM (binascii.crc_hqx), GetRegister
and the sign/exponent byte. Usage: kmp_client.py HOST PORT REGISTER...

It first sends a frame with a broken CRC (a meter must stay silent), then one GetRegister
for the registers, and prints one line per register returned: id, unit, scaled value."""
import binascii
import socket
import sys

STUFF = {0x06, 0x0D, 0x1B, 0x40, 0x80}
UNITS = {2: "kWh", 22: "kW", 33: "V", 34: "A", 51: "number"}


def frame(addr, cid, data):
    body = bytes([addr, cid]) + data
    body += binascii.crc_hqx(body, 0).to_bytes(2, "big")
    out = bytearray([0x80])
    for b in body:
        out += bytes([0x1B, b ^ 0xFF]) if b in STUFF else bytes([b])
    return bytes(out + b"\x0d")


def read_frame(sock):
    buf = bytearray()
    while True:
        b = sock.recv(1)
        if not b:
            sys.exit("connection closed")
        if not buf and b[0] != 0x40:
            continue
        buf += b
        if b[0] == 0x0D:
            break
    body, i = bytearray(), 1
    while i < len(buf) - 1:
        if buf[i] == 0x1B:
            i += 1
            body.append(buf[i] ^ 0xFF)
        else:
            body.append(buf[i])
        i += 1
    if binascii.crc_hqx(bytes(body), 0) != 0:
        sys.exit("bad CRC in reply " + buf.hex())
    return body[0], body[1], bytes(body[2:-2])


def main():
    host, port, regs = sys.argv[1], int(sys.argv[2]), [int(r) for r in sys.argv[3:]]
    sock = socket.create_connection((host, port), timeout=10)
    broken = bytearray(frame(0x3F, 0x10, bytes([1, 0x04, 0x1E])))
    broken[-2] ^= 0x01
    sock.sendall(bytes(broken))
    data = bytes([len(regs)]) + b"".join(r.to_bytes(2, "big") for r in regs)
    sock.sendall(frame(0x3F, 0x10, data))
    addr, cid, payload = read_frame(sock)
    print("reply address 0x%02x command 0x%02x" % (addr, cid))
    i = 0
    while i < len(payload):
        rid = int.from_bytes(payload[i:i + 2], "big")
        unit, length, siex = payload[i + 2], payload[i + 3], payload[i + 4]
        mant = int.from_bytes(payload[i + 5:i + 5 + length], "big")
        exp = siex & 0x3F
        if siex & 0x40:
            exp = -exp
        value = mant * 10 ** exp
        if siex & 0x80:
            value = -value
        print("%d %s %s" % (rid, UNITS.get(unit, str(unit)), round(value, 6)))
        i += 5 + length


main()
