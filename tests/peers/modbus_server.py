#!/usr/bin/env python3
"""A pymodbus 3.x Modbus TCP server with known register values: a real peer for interop tests.

Usage: modbus_server.py PORT        (PORT 0 picks a free port)

Prints ``READY port=<N> pymodbus=<version>`` on stdout once listening, then serves until killed. Any unit id is
served. The values are encoded here with Python's ``struct`` (independently of Millwright's codec).
32-bit values are split into their big-endian bytes A..D and laid over two registers in the
given word order: abcd = [AB, CD], cdab = [CD, AB], badc = [BA, DC], dcba = [DC, BA].

Holding registers (fc 3), addresses 0..19 (reading at 20 or beyond -> exception 2):
    0      u16  54321
    1      i16  -1234
    2-3    u32  3000000000        abcd
    4-5    i32  -123456789        abcd
    6-7    f32  123.456           abcd   (= 0x42F6 0xE979)
    8-9    f32  123.456           cdab
    10-11  f32  123.456           badc
    12-13  f32  123.456           dcba
    14-15  u32  0x11223344        cdab
    16-17  i32  -2                dcba
    18     u16  2500              (read with scaling raw 0..10000 -> eu 0..100: 25.0)
    19     u16  0xBEEF
Input registers (fc 4), addresses 0..3:
    0      u16  7
    1-2    f32  -1.5              abcd
    3      i16  -32768
Coils (fc 1), addresses 0..7:          1 0 1 1 0 0 0 1
Discrete inputs (fc 2), addresses 0..3: 0 1 1 0

pymodbus API notes (checked against the installed sources of 3.16.1, 3.11.4 and 3.9.2):
3.16 has SimData/SimDevice (used here with non-shared blocks, so coils and discrete inputs are
addressed per bit) and deprecates the old datastore classes. Releases without SimDevice get the
old API: ModbusDeviceContext (3.10+) or ModbusSlaveContext (before), whose getValues adds 1 to
every request address (no ``zero_mode`` any more), hence blocks starting at address 1.
Quirk: pymodbus 3.9.2 answers a read beyond its image with a *short* response (fewer registers
than asked, even none) instead of exception 2; 3.11.4 and 3.16.1 answer exception 2. Millwright's
poller treats a short response as a protocol error, so its interop test needs pymodbus >= 3.10.
"""

import asyncio
import struct
import sys

ORDERS = ("abcd", "cdab", "badc", "dcba")


def words32(raw4: bytes, order: str) -> list:
    a, b, c, d = raw4
    pairs = {"abcd": (a, b, c, d), "cdab": (c, d, a, b), "badc": (b, a, d, c), "dcba": (d, c, b, a)}[order]
    return [pairs[0] << 8 | pairs[1], pairs[2] << 8 | pairs[3]]


def w16(fmt: str, v) -> int:
    return struct.unpack(">H", struct.pack(fmt, v))[0]


def holding() -> list:
    regs = [w16(">H", 54321), w16(">h", -1234)]
    regs += words32(struct.pack(">I", 3_000_000_000), "abcd")
    regs += words32(struct.pack(">i", -123_456_789), "abcd")
    for order in ORDERS:
        regs += words32(struct.pack(">f", 123.456), order)
    regs += words32(struct.pack(">I", 0x11223344), "cdab")
    regs += words32(struct.pack(">i", -2), "dcba")
    regs += [2500, 0xBEEF]
    assert len(regs) == 20
    assert regs[6:8] == [0x42F6, 0xE979], [hex(r) for r in regs[6:8]]
    return regs


def inputs() -> list:
    regs = [7] + words32(struct.pack(">f", -1.5), "abcd") + [w16(">h", -32768)]
    assert len(regs) == 4
    return regs


COILS = [True, False, True, True, False, False, False, True]
DISCRETE = [False, True, True, False]


def make_context():
    try:
        from pymodbus.simulator import SimData, SimDevice, DataType  # noqa: F401
    except ImportError:
        SimDevice = None
    if SimDevice is not None:
        from pymodbus.simulator import DataType, SimData, SimDevice

        def regs(values):
            return [SimData(address=0, values=values, datatype=DataType.REGISTERS)]

        def bits(values):
            return [SimData(address=0, values=values, datatype=DataType.BITS)]

        # Non-shared blocks, in the order (coils, discrete inputs, holding, input); id 0 = any unit.
        return SimDevice(id=0, simdata=(bits(COILS), bits(DISCRETE), regs(holding()), regs(inputs())))
    # Older pymodbus 3.x (checked with 3.9.2 and 3.11.4): the device context adds 1 to every
    # request address, so each block starts at 1 to serve protocol address 0.
    from pymodbus.datastore import ModbusSequentialDataBlock, ModbusServerContext

    try:
        from pymodbus.datastore import ModbusDeviceContext as DeviceContext  # 3.10+
    except ImportError:
        from pymodbus.datastore import ModbusSlaveContext as DeviceContext  # < 3.10
    dev = DeviceContext(
        co=ModbusSequentialDataBlock(1, COILS),
        di=ModbusSequentialDataBlock(1, DISCRETE),
        hr=ModbusSequentialDataBlock(1, holding()),
        ir=ModbusSequentialDataBlock(1, inputs()),
    )
    return ModbusServerContext(dev, single=True)


async def main() -> None:
    from pymodbus.server import ModbusTcpServer

    port = int(sys.argv[1]) if len(sys.argv) > 1 else 0
    server = ModbusTcpServer(make_context(), address=("127.0.0.1", port))
    task = asyncio.create_task(server.serve_forever())
    for _ in range(500):
        if server.transport is not None or task.done():
            break
        await asyncio.sleep(0.01)
    if task.done():
        task.result()  # raises the listen error
        raise SystemExit("server stopped before listening")
    if server.transport is None:
        raise SystemExit("server did not start listening within 5 s")
    bound = server.transport.sockets[0].getsockname()[1]
    import pymodbus

    print(f"READY port={bound} pymodbus={pymodbus.__version__}", flush=True)
    await task


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        pass
