"""Print the Modbus basic device identification of HOST:PORT unit UNIT as JSON (pymodbus 3.0).

Usage: /usr/bin/python3 devid.py HOST PORT UNIT
"""
import json
import sys
import types

# Debian's pymodbus imports pyserial even for TCP; stub it when absent.
for name in ("serial", "serial_asyncio"):
    try:
        __import__(name)
    except ImportError:
        stub = types.ModuleType(name)
        stub.__getattr__ = lambda attr: None
        sys.modules[name] = stub

from pymodbus.client import ModbusTcpClient  # noqa: E402
from pymodbus.mei_message import ReadDeviceInformationRequest  # noqa: E402

host, port, unit = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
client = ModbusTcpClient(host, port=port, timeout=3, retries=0)
if not client.connect():
    sys.exit("connect failed")
rr = client.execute(ReadDeviceInformationRequest(read_code=1, object_id=0, unit=unit))
if rr.isError():
    sys.exit(f"error reply: {rr}")
regs = client.read_holding_registers(0, 2, slave=unit)
if regs.isError():
    sys.exit(f"error reply: {regs}")
print(json.dumps({"objects": {str(k): v.decode() for k, v in rr.information.items()}, "registers": regs.registers}))
client.close()
