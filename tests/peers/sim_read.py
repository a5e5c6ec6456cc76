#!/usr/bin/env python3
"""Reads points of a Modbus TCP device with pymodbus (an independent client) and decodes them.

Usage: sim_read.py HOST PORT < REQUEST

REQUEST (JSON on stdin):
    {"unit": 1, "passes": 1, "interval_s": 0.15,
     "points": [{"table": "holding", "address": 0, "type": "f32", "word_order": "abcd"}, ...]}
with table one of "holding", "input", "coil", "discrete"; type one of "bool", "u16", "i16", "u32", "i32",
"f32"; word_order ("abcd", "cdab", "badc", "dcba") only for 32-bit types (default "abcd"). "unit" defaults to 1.
Every point is read once per pass (one request per point), "passes" times (default 1), "interval_s" apart.

Prints one JSON line:
    {"pymodbus": VERSION, "passes": [[READING, ...], ...]}     per pass, one READING per point, in order:
    {"table", "address", "type", "raw": [registers or bits], "value": decoded}    or
    {"table", "address", "type", "exception": code}
"value" is the decoded, unscaled number (scaling is the caller's business) or a bool; non-finite floats
(e.g. a dropout's NaN sentinel) are given as null.
Exit status 0 when connected (exceptions included), 2 when the connection failed, 3 on a bad request.

Decoding uses pymodbus's own conversion (``convert_from_registers``), which knows only word order big
(high word first) or little (low word first). The byte-swapped orders are mapped onto it by first
swapping the two bytes of every register:
    abcd -> big;  cdab -> little;  badc -> swap bytes, big;  dcba -> swap bytes, little.
The unit keyword is ``device_id`` in pymodbus >= 3.10 (3.16 tested) and ``slave`` before that.
"""

import inspect
import json
import math
import sys
import time

import pymodbus
from pymodbus.client import ModbusTcpClient

DT = ModbusTcpClient.DATATYPE
TYPES = {"u16": (DT.UINT16, 1), "i16": (DT.INT16, 1), "u32": (DT.UINT32, 2), "i32": (DT.INT32, 2),
         "f32": (DT.FLOAT32, 2)}
ORDERS = {"abcd": (False, "big"), "cdab": (False, "little"), "badc": (True, "big"), "dcba": (True, "little")}


def decode(regs, dtype, order):
    data_type, _ = TYPES[dtype]
    swap, word_order = ORDERS[order or "abcd"]
    if swap:
        regs = [((r & 0xFF) << 8) | (r >> 8) for r in regs]
    v = ModbusTcpClient.convert_from_registers(regs, data_type, word_order=word_order)
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


def main() -> int:
    host, port = sys.argv[1], int(sys.argv[2])
    req = json.load(sys.stdin)
    unit = int(req.get("unit", 1))
    points = req["points"]
    for p in points:
        if (p["type"] != "bool" and p["type"] not in TYPES) or p.get("word_order") not in (None, *ORDERS):
            print(json.dumps({"error": f"bad point {p}"}))
            return 3
    client = ModbusTcpClient(host, port=port, timeout=3, retries=0)
    if not client.connect():
        print(json.dumps({"error": f"cannot connect to {host}:{port}"}))
        return 2
    unit_kw = "device_id" if "device_id" in inspect.signature(client.read_holding_registers).parameters else "slave"
    readers = {
        "coil": client.read_coils,
        "discrete": client.read_discrete_inputs,
        "holding": client.read_holding_registers,
        "input": client.read_input_registers,
    }
    passes = []
    try:
        for n in range(int(req.get("passes", 1))):
            if n > 0:
                time.sleep(float(req.get("interval_s", 0.15)))
            passes.append(read_all(readers, unit_kw, unit, points))
    finally:
        client.close()
    print(json.dumps({"pymodbus": pymodbus.__version__, "passes": passes}))
    return 0


def read_all(readers, unit_kw, unit, points):
    out = []
    for p in points:
        table, address, dtype = p["table"], int(p["address"]), p["type"]
        count = 1 if dtype == "bool" else TYPES[dtype][1]
        rr = readers[table](address, count=count, **{unit_kw: unit})
        entry = {"table": table, "address": address, "type": dtype}
        if rr.isError():
            entry["exception"] = getattr(rr, "exception_code", None)
        elif dtype == "bool":
            bits = list(rr.bits)[:1]  # bit responses are padded to whole bytes
            entry["raw"] = bits
            entry["value"] = bool(bits[0])
        else:
            regs = list(rr.registers)
            entry["raw"] = regs
            entry["value"] = decode(regs, dtype, p.get("word_order"))
        out.append(entry)
    return out


if __name__ == "__main__":
    sys.exit(main())
