"""Drive a Modbus/TCP server with Debian's pymodbus 3.0 client; print results as JSON.

Usage: /usr/bin/python3 pymodbus_client.py HOST PORT UNIT
"""
import json
import sys
import types

# Debian's python3-pymodbus imports pyserial from its client package even for TCP; the
# serial modules are only Recommends. Stub them when they are absent (TCP never uses them).
for name in ("serial", "serial_asyncio"):
    try:
        __import__(name)
    except ImportError:
        stub = types.ModuleType(name)
        stub.__getattr__ = lambda attr: None
        sys.modules[name] = stub

import pymodbus  # noqa: E402
from pymodbus.client import ModbusTcpClient  # noqa: E402
from pymodbus.mei_message import ReadDeviceInformationRequest  # noqa: E402
from pymodbus.other_message import ReportSlaveIdRequest  # noqa: E402

host, port, unit = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
client = ModbusTcpClient(host, port=port, timeout=3)
if not client.connect():
    sys.exit("connect failed")
out = {"version": pymodbus.__version__}


def check(rr):
    if rr.isError():
        sys.exit(f"error reply: {rr}")
    return rr


out["coils"] = [int(b) for b in check(client.read_coils(0, 16, slave=unit)).bits[:16]]
out["discrete_inputs"] = [int(b) for b in check(client.read_discrete_inputs(0, 16, slave=unit)).bits[:16]]
out["input_registers"] = check(client.read_input_registers(0, 8, slave=unit)).registers
out["holding_registers"] = check(client.read_holding_registers(0, 8, slave=unit)).registers
check(client.write_register(20, 4242, slave=unit))
out["holding_20_after_write"] = check(client.read_holding_registers(20, 1, slave=unit)).registers
check(client.write_coils(3, [True, False, True], slave=unit))
out["coils_3_after_write"] = [int(b) for b in check(client.read_coils(3, 3, slave=unit)).bits[:3]]

for code, name in ((1, "basic"), (2, "regular")):
    rr = check(client.execute(ReadDeviceInformationRequest(read_code=code, object_id=0, unit=unit)))
    out["device_info_" + name] = {
        "conformity": rr.conformity,
        "more_follows": rr.more_follows,
        "objects": {str(k): v.decode() for k, v in rr.information.items()},
    }
rr = check(client.execute(ReportSlaveIdRequest(unit=unit)))
out["server_id"] = {"identifier": rr.identifier.decode("latin-1"), "status": rr.status}

rr = client.read_holding_registers(1000, 1, slave=unit)
out["bad_address_exception"] = rr.exception_code if rr.isError() else None
rr = client.read_holding_registers(0, 1, slave=5)
out["unit5_exception"] = rr.exception_code if rr.isError() else None
client.close()
print(json.dumps(out, sort_keys=True))
