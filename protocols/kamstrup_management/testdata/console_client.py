#!/usr/bin/python3
"""Talks to a Kamstrup network module's console with Python's telnetlib, as a person at
a telnet prompt would: reads the banner, asks for the menu, the software version and the
configuration, changes the device name, and quits. Usage: console_client.py HOST PORT"""
import sys
import warnings

warnings.filterwarnings("ignore", category=DeprecationWarning)
try:
    import telnetlib  # noqa: E402  (deprecated; Debian 12's Python 3.11 has it, 3.13 dropped it)
except ImportError:
    sys.exit("this Python has no telnetlib (removed in 3.13): run the test with Python 3.11 or 3.12")

host, port = sys.argv[1], int(sys.argv[2])
tn = telnetlib.Telnet(host, port, timeout=10)
print(tn.read_until(b"]\r\n", 10).decode().strip())
tn.write(b"H\r\n")
print(tn.read_until(b"Kamstrup (R)\r\n", 10).decode().splitlines()[1])
tn.write(b"!GV\r\n")
print(tn.read_until(b")\r\n", 10).decode().strip())
tn.write(b"!SD feeder-12\r\n")
print(tn.read_until(b"OK", 10).decode().strip())
tn.write(b"!GC\r\n")
print(tn.read_until(b"Software watchdog: ENABLED 3600\r\n", 10).decode().splitlines()[0])
tn.write(b"Q\r\n")
rest = tn.read_all()
print("closed after Q" if rest == b"" else "extra %r" % rest)
