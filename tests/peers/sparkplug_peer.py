"""Sparkplug B peer over a real broker for mw-sparkplug-node's interop tests (pysparkplug 0.6).

  sparkplug_peer.py listen PORT GROUP
      a host-side subscriber on 127.0.0.1:PORT: subscribes to spBv1.0/GROUP/# through
      pysparkplug's Client (which decodes every payload and resolves DATA aliases from the
      births it saw) and prints one JSON object a line per message:
      {"topic", "type", "seq", "metrics": [{"name", "alias", "datatype", "value", "is_null",
      "quality"}]} ("quality": the Int32 "Quality" property, read from the raw protobuf since
      pysparkplug's Metric has no properties; null without one). Prints {"ready": true} once
      subscribed. Reads commands on stdin: "rebirth EDGE" publishes an NCMD
      Node Control/Rebirth = true to EDGE (built with pysparkplug's NCmd); "dcmd EDGE DEVICE
      METRIC TYPE VALUE" publishes a DCMD (pysparkplug's DCmd) writing METRIC of DEVICE, TYPE one
      of pysparkplug's DataType names (DOUBLE, UINT64, BOOLEAN, …), VALUE parsed for it;
      "quit" exits.

  sparkplug_peer.py edge PORT HOST_ID
      pysparkplug's EdgeNode (group "PG", node "pyedge", metrics temp: Double 21.5 and
      count: Int64 7, device "pump" with speed: Float 900.0). It waits for the retained online
      STATE of HOST_ID (so that host is subscribed), connects, and prints {"ready": true} once
      its births are out. Commands on stdin: "temp X" (NDATA), "speed X" (DDATA), "kill" (exits
      at once without DISCONNECT: the broker publishes the will NDEATH).
"""

import json
import os
import sys
import threading
import time

import pysparkplug as psp
from pysparkplug._protobuf import sparkplug_b_pb2 as pb

DT = psp.DataType


def out(obj):
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def jsonable(v):
    if isinstance(v, float) and v != v:
        return "NaN"
    if isinstance(v, (bytes, bytearray)):
        return v.hex()
    if hasattr(v, "isoformat"):
        return v.isoformat()
    return v


def qualities(raw):
    p = pb.Payload()
    p.ParseFromString(raw)
    qs = []
    for m in p.metrics:
        q = None
        if m.HasField("properties"):
            for k, v in zip(m.properties.keys, m.properties.values):
                if k == "Quality":
                    q = v.int_value if v.int_value < 2**31 else v.int_value - 2**32
        qs.append(q)
    return qs


def listen(port, group):
    client = psp.Client(client_id="pysparkplug-listener")
    topic = psp.Topic(group_id=group, message_type=psp.MULTI_LEVEL_WILDCARD)
    subscribed = threading.Event()

    def on_raw(_c, _u, mqtt_message):
        message = client._handle_message(mqtt_message)
        payload = message.payload
        metrics = getattr(payload, "metrics", None)
        if metrics is None:
            metrics = (payload.bd_seq_metric,)
        qs = qualities(mqtt_message.payload)
        out(
            {
                "topic": mqtt_message.topic,
                "type": str(message.topic.message_type),
                "seq": getattr(payload, "seq", None),
                "metrics": [
                    {
                        "name": m.name,
                        "alias": m.alias,
                        "datatype": int(m.datatype),
                        "value": jsonable(m.value),
                        "is_null": m.is_null,
                        "quality": qs[i] if i < len(qs) else None,
                    }
                    for i, m in enumerate(metrics)
                ],
            }
        )

    def on_subscribe(*_args):
        subscribed.set()

    client._client.message_callback_add(str(topic), on_raw)
    client._client.on_subscribe = on_subscribe
    client._subscriptions[topic] = psp.QoS.AT_LEAST_ONCE
    client.connect("127.0.0.1", port=port, blocking=False)
    if not subscribed.wait(10):
        sys.exit("no SUBACK within 10 s")
    out({"ready": True})
    for line in sys.stdin:
        words = line.split()
        if not words:
            continue
        if words[0] == "rebirth":
            cmd = psp.NCmd(
                timestamp=psp.get_current_timestamp(),
                metrics=(
                    psp.Metric(
                        timestamp=psp.get_current_timestamp(),
                        name="Node Control/Rebirth",
                        datatype=DT.BOOLEAN,
                        value=True,
                    ),
                ),
            )
            client.publish(
                psp.Message(
                    topic=psp.Topic(
                        group_id=group,
                        message_type=psp.MessageType.NCMD,
                        edge_node_id=words[1],
                    ),
                    payload=cmd,
                    qos=psp.QoS.AT_MOST_ONCE,
                    retain=False,
                ),
                include_dtypes=True,
            )
            out({"sent": "rebirth"})
        elif words[0] == "dcmd":
            _, edge_id, device, name, tname, raw = words
            dt = DT[tname]
            if dt == DT.BOOLEAN:
                value = raw.lower() == "true"
            elif dt in (DT.FLOAT, DT.DOUBLE):
                value = float(raw)
            else:
                value = int(raw)
            cmd = psp.DCmd(
                timestamp=psp.get_current_timestamp(),
                metrics=(psp.Metric(timestamp=psp.get_current_timestamp(), name=name, datatype=dt, value=value),),
            )
            client.publish(
                psp.Message(
                    topic=psp.Topic(
                        group_id=group,
                        message_type=psp.MessageType.DCMD,
                        edge_node_id=edge_id,
                        device_id=device,
                    ),
                    payload=cmd,
                    qos=psp.QoS.AT_MOST_ONCE,
                    retain=False,
                ),
                include_dtypes=True,
            )
            out({"sent": "dcmd"})
        elif words[0] == "quit":
            break
    client.disconnect()


def metric(name, dt, v):
    return psp.Metric(timestamp=psp.get_current_timestamp(), name=name, datatype=dt, value=v)


def edge(port, host_id):
    online = threading.Event()
    watcher = psp.Client(client_id="pysparkplug-state-watch")

    def on_state(_c, message):
        if getattr(message.payload, "online", False):
            online.set()

    watcher.subscribe(
        psp.Topic(message_type=psp.MessageType.STATE, sparkplug_host_id=host_id),
        psp.QoS.AT_LEAST_ONCE,
        on_state,
    )
    watcher.connect("127.0.0.1", port=port, blocking=False)
    if not online.wait(15):
        sys.exit(f"no online STATE of {host_id} within 15 s")
    watcher.disconnect()

    node = psp.EdgeNode(
        "PG",
        "pyedge",
        [metric("temp", DT.DOUBLE, 21.5), metric("count", DT.INT64, 7)],
        client=psp.Client(client_id="pysparkplug-edge"),
    )
    node.register(psp.Device("pump", [metric("speed", DT.FLOAT, 900.0)]))
    node.connect("127.0.0.1", port=port, blocking=False)
    deadline = time.time() + 10
    while not node._connected:
        if time.time() > deadline:
            sys.exit("the edge node did not connect within 10 s")
        time.sleep(0.02)
    out({"ready": True})
    for line in sys.stdin:
        words = line.split()
        if not words:
            continue
        if words[0] == "temp":
            node.update([metric("temp", DT.DOUBLE, float(words[1]))])
        elif words[0] == "speed":
            node.update_device("pump", [metric("speed", DT.FLOAT, float(words[1]))])
        elif words[0] == "kill":
            os._exit(0)
        out({"done": words[0]})


if __name__ == "__main__":
    mode = sys.argv[1]
    if mode == "listen":
        listen(int(sys.argv[2]), sys.argv[3])
    elif mode == "edge":
        edge(int(sys.argv[2]), sys.argv[3])
    else:
        sys.exit(__doc__)
