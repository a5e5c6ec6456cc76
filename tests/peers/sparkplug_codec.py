"""Sparkplug B payload peer for mw-sparkplug's interop test (pysparkplug 0.6).

  sparkplug_codec.py encode        print the hex of an NBIRTH built by pysparkplug: every scalar
                                   type and array type through its Metric API, plus a DataSet and a
                                   Template built with its bundled protobuf module (pysparkplug's
                                   Metric API does not support those two)
  sparkplug_codec.py decode HEX    decode an NBIRTH with pysparkplug and print its metrics as JSON
                                   (name -> {datatype, alias, value}); DataSet and Template metrics
                                   are read from the protobuf module
  sparkplug_codec.py edge          run pysparkplug's EdgeNode (group "G", node "pyedge", device
                                   "pump") over an in-process stand-in for its MQTT client (no
                                   broker) and print, one JSON object a line, every will it sets and
                                   every message it publishes ({"kind": "will"|"publish", "topic",
                                   "hex", "connected"}): NBIRTH and DBIRTH with aliases, NDATA and
                                   DDATA through EdgeNode.update/update_device (names, aliases and
                                   data types), NDATA and DDATA by alias only without data types
                                   (EdgeNode cannot send those, so they are built with NData/DData
                                   and the node's own seq counter), the DDEATH of deregister, and
                                   the NDEATH of disconnect
"""

import datetime
import json
import sys

import pysparkplug as psp
from pysparkplug._protobuf import sparkplug_b_pb2 as pb

DT = psp.DataType
TS = 1_700_000_000_000
WHEN = datetime.datetime.fromtimestamp(TS / 1000, tz=datetime.timezone.utc)

SCALARS = [
    ("i8", DT.INT8, -128),
    ("i16", DT.INT16, -32768),
    ("i32", DT.INT32, -2147483648),
    ("i64", DT.INT64, -9223372036854775808),
    ("u8", DT.UINT8, 255),
    ("u16", DT.UINT16, 65535),
    ("u32", DT.UINT32, 4294967295),
    ("u64", DT.UINT64, 18446744073709551615),
    ("f32", DT.FLOAT, 1.5),
    ("f64", DT.DOUBLE, -2.25e300),
    ("bool", DT.BOOLEAN, True),
    ("str", DT.STRING, "héllo"),
    ("dt", DT.DATETIME, WHEN),
    ("text", DT.TEXT, "long text"),
    ("uuid", DT.UUID, "123e4567-e89b-12d3-a456-426614174000"),
    ("bytes", DT.BYTES, b"\x00\x01\xff"),
    ("file", DT.FILE, b"PK\x03\x04"),
    ("i8a", DT.INT8_ARRAY, (-1, 0, 127)),
    ("i16a", DT.INT16_ARRAY, (-300, 300)),
    ("i32a", DT.INT32_ARRAY, (-70000, 70000)),
    ("i64a", DT.INT64_ARRAY, (-(2**40), 2**40)),
    ("u8a", DT.UINT8_ARRAY, (0, 255)),
    ("u16a", DT.UINT16_ARRAY, (1, 65535)),
    ("u32a", DT.UINT32_ARRAY, (1, 4294967295)),
    ("u64a", DT.UINT64_ARRAY, (1, 18446744073709551615)),
    ("f32a", DT.FLOAT_ARRAY, (0.5, -1.25)),
    ("f64a", DT.DOUBLE_ARRAY, (1e-300, 3.0)),
    ("boola", DT.BOOLEAN_ARRAY, (True, False, True, True, False, False, False, False, True)),
    ("stra", DT.STRING_ARRAY, ("a", "", "ü")),
    ("dta", DT.DATETIME_ARRAY, (WHEN,)),
]


def encode():
    metrics = [psp.Metric(timestamp=TS, name="bdSeq", datatype=DT.INT64, value=3, alias=0)]
    for i, (name, dt, value) in enumerate(SCALARS):
        metrics.append(psp.Metric(timestamp=TS, name=name, datatype=dt, value=value, alias=i + 1))
    metrics.append(psp.Metric(timestamp=TS, name="null", datatype=DT.DOUBLE, is_null=True))
    raw = psp.NBirth(timestamp=TS, seq=0, metrics=tuple(metrics)).encode()
    p = pb.Payload()
    p.ParseFromString(raw)
    ds = p.metrics.add(name="ds", datatype=DT.DATASET)
    d = ds.dataset_value
    d.num_of_columns = 3
    d.columns.extend(["id", "temp", "label"])
    d.types.extend([DT.INT32, DT.DOUBLE, DT.STRING])
    for rid, temp, label in [(-1 & 0xFFFFFFFF, 21.5, "a"), (2, -3.0, "b")]:
        row = d.rows.add()
        row.elements.add(int_value=rid)
        row.elements.add(double_value=temp)
        row.elements.add(string_value=label)
    tm = p.metrics.add(name="motor", datatype=DT.TEMPLATE)
    t = tm.template_value
    t.version = "v1"
    t.template_ref = "Motor"
    t.is_definition = False
    t.metrics.add(name="rpm", datatype=DT.UINT16, int_value=1500)
    t.metrics.add(name="on", datatype=DT.BOOLEAN, boolean_value=True)
    t.parameters.add(name="maker", type=DT.STRING, string_value="ACME")
    t.parameters.add(name="poles", type=DT.INT32, int_value=4)
    print(p.SerializeToString().hex())


def jsonable(v):
    if isinstance(v, datetime.datetime):
        return int(round(v.timestamp() * 1000))
    if isinstance(v, bytes):
        return v.hex()
    if isinstance(v, (tuple, list)):
        return [jsonable(x) for x in v]
    if isinstance(v, float) and v != v:
        return "NaN"
    return v


def decode(hexstr):
    raw = bytes.fromhex(hexstr)
    p = pb.Payload()
    p.ParseFromString(raw)
    out = {"seq": p.seq, "timestamp": p.timestamp, "metrics": {}}
    simple = pb.Payload()
    simple.CopyFrom(p)
    del simple.metrics[:]
    special = []
    for m in p.metrics:
        if m.datatype in (DT.DATASET, DT.TEMPLATE):
            special.append(m)
        else:
            simple.metrics.append(m)
    birth = psp.NBirth.decode(simple.SerializeToString())
    for m in birth.metrics:
        out["metrics"][m.name] = {
            "datatype": int(m.datatype),
            "alias": m.alias,
            "null": m.is_null,
            "value": jsonable(m.value),
        }
    for m in special:
        if m.datatype == DT.DATASET:
            d = m.dataset_value
            rows = []
            for r in d.rows:
                row = []
                for e, t in zip(r.elements, d.types):
                    f = e.WhichOneof("value")
                    row.append(jsonable(DT(t).decode(getattr(e, f))) if f else None)
                rows.append(row)
            value = {"columns": list(d.columns), "types": list(d.types), "rows": rows}
        else:
            t = m.template_value
            value = {
                "version": t.version,
                "template_ref": t.template_ref,
                "is_definition": t.is_definition,
                "metrics": {
                    x.name: jsonable(DT(x.datatype).decode(getattr(x, x.WhichOneof("value"))))
                    for x in t.metrics
                },
                "parameters": {
                    x.name: jsonable(DT(x.type).decode(getattr(x, x.WhichOneof("value"))))
                    for x in t.parameters
                },
            }
        out["metrics"][m.name] = {"datatype": m.datatype, "alias": m.alias if m.HasField("alias") else None, "null": False, "value": value}
    print(json.dumps(out, sort_keys=True))


class RecordingClient:
    """Stands in for pysparkplug's Client: records instead of talking to a broker."""

    def __init__(self):
        self.connected = False
        self.out = []

    def _record(self, kind, message, include_dtypes):
        self.out.append(
            {
                "kind": kind,
                "topic": str(message.topic),
                "hex": message.payload.encode(include_dtypes=include_dtypes).hex(),
                "connected": self.connected,
            }
        )

    def set_will(self, message):
        # like paho's will_set, which Client.set_will calls: encoded without include_dtypes
        self._record("will", message, False)

    def connect(self, host, *, callback=None, **_kwargs):
        self.connected = True
        if callback is not None:
            callback(self)

    def publish(self, message, *, include_dtypes=False):
        self._record("publish", message, include_dtypes)

    def subscribe(self, topic, qos, callback):
        pass

    def unsubscribe(self, topic):
        pass

    def disconnect(self):
        self.connected = False


def edge():
    client = RecordingClient()
    node = psp.EdgeNode(
        "G",
        "pyedge",
        metrics=[
            psp.Metric(timestamp=TS, name="temp", datatype=DT.DOUBLE, value=20.5, alias=1),
            psp.Metric(timestamp=TS, name="count", datatype=DT.UINT32, value=7, alias=2),
            psp.Metric(timestamp=TS, name="label", datatype=DT.STRING, value="a", alias=3),
            psp.Metric(timestamp=TS, name="on", datatype=DT.BOOLEAN, value=False, alias=4),
        ],
        client=client,
    )
    node.register(
        psp.Device(
            "pump",
            metrics=[
                psp.Metric(timestamp=TS, name="rpm", datatype=DT.INT16, value=-5, alias=10),
                psp.Metric(timestamp=TS, name="ratio", datatype=DT.FLOAT, value=0.25, alias=11),
            ],
        )
    )
    node.connect("no-broker")
    node.update([psp.Metric(timestamp=TS + 1, name="temp", datatype=DT.DOUBLE, value=21.5, alias=1)])
    node.update_device(
        "pump", [psp.Metric(timestamp=TS + 2, name="rpm", datatype=DT.INT16, value=-300, alias=10)]
    )
    by_alias = psp.NData(
        timestamp=TS + 3,
        seq=node._seq,
        metrics=(
            psp.Metric(timestamp=TS + 3, name=None, datatype=DT.UINT32, value=8, alias=2),
            psp.Metric(timestamp=TS + 3, name=None, datatype=DT.STRING, value="b", alias=3),
            psp.Metric(timestamp=TS + 3, name=None, datatype=DT.BOOLEAN, value=True, alias=4),
        ),
    )
    topic = psp.Topic(message_type=psp.MessageType.NDATA, group_id="G", edge_node_id="pyedge")
    client.publish(psp.Message(topic=topic, payload=by_alias, qos=psp.QoS.AT_MOST_ONCE, retain=False))
    by_alias = psp.DData(
        timestamp=TS + 4,
        seq=node._seq,
        metrics=(psp.Metric(timestamp=TS + 4, name=None, datatype=DT.FLOAT, value=0.5, alias=11),),
    )
    topic = psp.Topic(
        message_type=psp.MessageType.DDATA, group_id="G", edge_node_id="pyedge", device_id="pump"
    )
    client.publish(psp.Message(topic=topic, payload=by_alias, qos=psp.QoS.AT_MOST_ONCE, retain=False))
    node.deregister("pump")
    node.disconnect()
    for line in client.out:
        print(json.dumps(line))


if __name__ == "__main__":
    if sys.argv[1:2] == ["encode"]:
        encode()
    elif sys.argv[1:2] == ["decode"] and len(sys.argv) == 3:
        decode(sys.argv[2])
    elif sys.argv[1:2] == ["edge"]:
        edge()
    else:
        sys.exit(__doc__)
