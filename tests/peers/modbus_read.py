#!/usr/bin/env python3
"""Reads Modbus TCP tables with pymodbus (a real peer client) and prints the result as JSON.

Usage: modbus_read.py HOST PORT SPEC [UNIT]

SPEC is a JSON list of [table, address, count] with table one of "coil", "discrete",
"holding", "input", e.g. '[["holding", 0, 4], ["coil", 0, 3]]'. UNIT defaults to 1.
Prints one JSON line: a list with, per request, either
    {"table": ..., "address": ..., "values": [ints or bools]}    or
    {"table": ..., "address": ..., "exception": <modbus exception code>}
Exit status 0 when connected (exceptions included), 2 when the connection failed.

pymodbus API note: the unit keyword is ``device_id`` in pymodbus >= 3.10 (3.16 tested) and
``slave`` before that; the script picks whichever the installed client accepts.
"""

import inspect
import json
import sys

from pymodbus.client import ModbusTcpClient


def main() -> int:
    host, port, spec = sys.argv[1], int(sys.argv[2]), json.loads(sys.argv[3])
    unit = int(sys.argv[4]) if len(sys.argv) > 4 else 1
    client = ModbusTcpClient(host, port=port, timeout=3, retries=0)
    if not client.connect():
        print(json.dumps({"error": f"cannot connect to {host}:{port}"}))
        return 2
    params = inspect.signature(client.read_holding_registers).parameters
    unit_kw = "device_id" if "device_id" in params else "slave"
    readers = {
        "coil": (client.read_coils, "bits"),
        "discrete": (client.read_discrete_inputs, "bits"),
        "holding": (client.read_holding_registers, "registers"),
        "input": (client.read_input_registers, "registers"),
    }
    out = []
    try:
        for table, address, count in spec:
            read, field = readers[table]
            rr = read(address, count=count, **{unit_kw: unit})
            entry = {"table": table, "address": address}
            if rr.isError():
                entry["exception"] = getattr(rr, "exception_code", None)
            else:
                # bit responses are padded to whole bytes: keep the requested count
                entry["values"] = list(getattr(rr, field))[:count]
            out.append(entry)
    finally:
        client.close()
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
