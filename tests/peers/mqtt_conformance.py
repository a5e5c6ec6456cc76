#!/usr/bin/env python3
"""MQTT broker conformance cases run by real clients not written here: the paho-mqtt client
(3.1.1 and 5.0), the mosquitto_pub/mosquitto_sub tools, and raw sockets for what a well-behaved
client never sends. Driven by crates/mw-mqtt/tests/peers.rs, which starts the broker.

  mqtt_conformance.py --port P --auth-port Q [--case NAME ...]

Broker on P: anonymous clients allowed, no ACL. Broker on Q: users alice (ACL: everything) and
bob (ACL: plant/%u/#), passwords from --alice/--bob. Prints "ok NAME" per case; the first failing
case raises (exit status 1) with what was expected and what came.
"""
import argparse
import queue
import socket
import struct
import subprocess
import sys
import threading
import time
import uuid

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

HOST = "127.0.0.1"
WAIT = 5.0  # seconds a message that must arrive may take (loaded CI machine)
QUIET = 1.0  # seconds during which a message that must not arrive is awaited


def uid(prefix):
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


class Client:
    """A paho client that records what it receives."""

    def __init__(self, port, version=5, client_id=None, clean=True, user=None, password=None,
                 will=None, expiry=None, keepalive=30, props=None):
        self.version = version
        self.msgs = queue.Queue()
        self.connected = queue.Queue()
        self.client_id = client_id or uid("c")
        proto = mqtt.MQTTv5 if version == 5 else mqtt.MQTTv311
        if version == 5:
            self.c = mqtt.Client(client_id=self.client_id, protocol=proto)
        else:
            self.c = mqtt.Client(client_id=self.client_id, clean_session=clean, protocol=proto)
        if user:
            self.c.username_pw_set(user, password)
        if will:
            topic, payload, qos, retain, wprops = will
            self.c.will_set(topic, payload, qos, retain, properties=wprops)
        self.c.on_message = lambda c, u, m: self.msgs.put(m)
        if version == 5:
            self.c.on_connect = lambda c, u, f, rc, p=None: self.connected.put((f, rc.value if hasattr(rc, "value") else rc))
        else:
            self.c.on_connect = lambda c, u, f, rc: self.connected.put((f, rc))
        self.subacks = queue.Queue()
        self.c.on_subscribe = lambda c, u, mid, granted, p=None: self.subacks.put(granted)
        self.pubacks = queue.Queue()
        self.c.on_publish = lambda c, u, mid: self.pubacks.put(mid)
        kw = {}
        if version == 5:
            cp = props or Properties(PacketTypes.CONNECT)
            if expiry is not None:
                cp.SessionExpiryInterval = expiry
            kw = dict(clean_start=clean, properties=cp)
        self.c.connect(HOST, port, keepalive, **kw)
        self.c.loop_start()
        flags, rc = self.connected.get(timeout=WAIT)
        self.flags, self.rc = flags, rc

    def sub(self, topic, qos=1, **kw):
        self.c.subscribe(topic, qos, **kw)
        return self.subacks.get(timeout=WAIT)

    def pub(self, topic, payload, qos=1, retain=False, props=None):
        info = self.c.publish(topic, payload, qos, retain, properties=props)
        if qos > 0:
            info.wait_for_publish(WAIT)
            assert info.is_published(), f"{topic}: QoS {qos} publish not acknowledged"
        return info

    def get(self, timeout=WAIT):
        try:
            return self.msgs.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"{self.client_id}: no message within {timeout} s") from None

    def none(self, timeout=QUIET):
        try:
            m = self.msgs.get(timeout=timeout)
        except queue.Empty:
            return
        raise AssertionError(f"{self.client_id}: unexpected message {m.topic} {m.payload!r}")

    def close(self):
        self.c.disconnect()
        self.c.loop_stop()

    def kill(self):
        """Drops the TCP connection without DISCONNECT."""
        self.c.loop_stop()
        self.c.socket().close()


def connack_refused(port, version, user=None, password=None):
    """The return/reason code of a refused CONNECT (paho reports it in on_connect)."""
    q = queue.Queue()
    c = mqtt.Client(client_id=uid("r"), protocol=mqtt.MQTTv5 if version == 5 else mqtt.MQTTv311)
    if user:
        c.username_pw_set(user, password)
    if version == 5:
        c.on_connect = lambda c_, u, f, rc, p=None: q.put(rc.value)
    else:
        c.on_connect = lambda c_, u, f, rc: q.put(rc)
    c.connect(HOST, port, 30)
    c.loop_start()
    rc = q.get(timeout=WAIT)
    c.loop_stop()
    return rc


# --- raw sockets --------------------------------------------------------------------------

def rlen(n):
    out = bytearray()
    while True:
        b = n % 128
        n //= 128
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def s16(s):
    b = s.encode() if isinstance(s, str) else s
    return struct.pack(">H", len(b)) + b


def raw_connect(port, client_id, version=4, clean=True, keepalive=30):
    sock = socket.create_connection((HOST, port), timeout=WAIT)
    flags = 0x02 if clean else 0
    vh = s16("MQTT") + bytes([version, flags]) + struct.pack(">H", keepalive)
    if version == 5:
        vh += b"\x00"  # no properties
    body = vh + s16(client_id)
    sock.sendall(b"\x10" + rlen(len(body)) + body)
    ack = sock.recv(64)
    assert ack[:1] == b"\x20", f"expected CONNACK, got {ack!r}"
    return sock, ack


def recv_packet(sock):
    head = sock.recv(1)
    if not head:
        return None
    n, mult = 0, 1
    while True:
        b = sock.recv(1)[0]
        n += (b & 0x7F) * mult
        mult *= 128
        if not b & 0x80:
            break
    body = b""
    while len(body) < n:
        chunk = sock.recv(n - len(body))
        if not chunk:
            break
        body += chunk
    return head[0], body


def closed(sock, timeout=WAIT):
    """Reads until the broker closes; returns the packets it sent before."""
    sock.settimeout(timeout)
    got = []
    try:
        while True:
            p = recv_packet(sock)
            if p is None:
                return got
            got.append(p)
    except (ConnectionResetError, BrokenPipeError):
        return got
    except socket.timeout:
        raise AssertionError(f"connection still open after {timeout} s (got {got!r})") from None


# --- cases ----------------------------------------------------------------------------------

def case_qos_roundtrip(a):
    for pv, sv in [(4, 4), (5, 5), (4, 5), (5, 4)]:
        t = uid("rt")
        s = Client(a.port, sv)
        s.sub(t + "/#", 2)
        p = Client(a.port, pv)
        for q in (0, 1, 2):
            p.pub(f"{t}/q{q}", f"v{q}", q)
        got = sorted((m.topic, m.payload, m.qos) for m in (s.get(), s.get(), s.get()))
        want = [(f"{t}/q{q}", f"v{q}".encode(), q) for q in (0, 1, 2)]
        assert got == want, f"publisher v{pv} → subscriber v{sv}: {got} != {want}"
        s.none(0.3)
        p.close()
        s.close()


def case_retained(a):
    t = uid("ret")
    p = Client(a.port, 4)
    p.pub(t, "first", 1, retain=True)
    p.pub(t, "kept", 1, retain=True)
    s = Client(a.port, 5)
    s.sub(t, 1)
    m = s.get()
    assert (m.payload, m.retain) == (b"kept", True), (m.payload, m.retain)
    # a live publish of a retained message reaches current subscribers with retain = 0
    p.pub(t, "live", 1, retain=True)
    m = s.get()
    assert (m.payload, m.retain) == (b"live", False), (m.payload, m.retain)
    p.pub(t, b"", 1, retain=True)  # clears
    s.get()
    s2 = Client(a.port, 4)
    s2.sub(t, 1)
    s2.none()
    for c in (p, s, s2):
        c.close()


def case_will(a):
    t = uid("will")
    s = Client(a.port, 4)
    s.sub(t + "/#", 1)
    w = Client(a.port, 4, will=(t + "/abrupt", "gone", 1, False, None))
    w.kill()
    m = s.get()
    assert (m.topic, m.payload) == (t + "/abrupt", b"gone"), (m.topic, m.payload)
    w2 = Client(a.port, 5, will=(t + "/clean", "gone", 1, False, None))
    w2.close()
    s.none()
    s.close()


def case_will_delay(a):
    t = uid("wdelay")
    s = Client(a.port, 5)
    s.sub(t, 1)
    wp = Properties(PacketTypes.WILLMESSAGE)
    wp.WillDelayInterval = 2
    cid = uid("wd")
    w = Client(a.port, 5, client_id=cid, clean=True, expiry=60, will=(t, "late", 1, False, wp))
    w.kill()
    s.none(0.8)  # not before the delay
    m = s.get()
    assert m.payload == b"late", m.payload
    # reconnecting within the delay cancels the will
    w = Client(a.port, 5, client_id=cid, clean=True, expiry=60, will=(t, "cancelled", 1, False, wp))
    w.kill()
    w = Client(a.port, 5, client_id=cid, clean=False, expiry=60)
    s.none(3.0)
    w.close()
    s.close()


def case_persistent_session(a):
    t = uid("persist")
    cid = uid("ps")
    s = Client(a.port, 4, client_id=cid, clean=False)
    s.sub(t, 1)
    s.close()
    p = Client(a.port, 5)
    for i in range(3):
        p.pub(t, f"m{i}", 1)
    s = Client(a.port, 4, client_id=cid, clean=False)
    assert s.flags.get("session present") == 1, f"session present flag: {s.flags}"
    got = [s.get().payload for _ in range(3)]
    assert got == [b"m0", b"m1", b"m2"], got
    s.close()
    # clean session discards it
    s = Client(a.port, 4, client_id=cid, clean=True)
    assert s.flags.get("session present") == 0, s.flags
    s.close()
    p.close()


def case_session_expiry(a):
    t = uid("expiry")
    cid = uid("se")
    s = Client(a.port, 5, client_id=cid, clean=True, expiry=1)
    s.sub(t, 1)
    s.close()
    time.sleep(2.5)
    s = Client(a.port, 5, client_id=cid, clean=False, expiry=1)
    assert s.flags.get("session present") == 0, f"expired session still present: {s.flags}"
    s.close()


def case_message_expiry(a):
    t = uid("mexp")
    cid = uid("me")
    s = Client(a.port, 5, client_id=cid, clean=True, expiry=60)
    s.sub(t, 1)
    s.close()
    p = Client(a.port, 5)
    pp = Properties(PacketTypes.PUBLISH)
    pp.MessageExpiryInterval = 1
    p.pub(t, "short", 1, props=pp)
    pp2 = Properties(PacketTypes.PUBLISH)
    pp2.MessageExpiryInterval = 60
    p.pub(t, "long", 1, props=pp2)
    time.sleep(2.2)
    s = Client(a.port, 5, client_id=cid, clean=False, expiry=60)
    m = s.get()
    assert m.payload == b"long", m.payload
    left = m.properties.MessageExpiryInterval
    assert 0 < left <= 60, left
    s.none()
    s.close()
    p.close()


def case_shared_subscription(a):
    t = uid("share")
    s1, s2 = Client(a.port, 5), Client(a.port, 5)
    s1.sub(f"$share/g/{t}", 1)
    s2.sub(f"$share/g/{t}", 1)
    p = Client(a.port, 4)
    for i in range(20):
        p.pub(t, str(i), 1)
    time.sleep(0.5)
    n1, n2 = s1.msgs.qsize(), s2.msgs.qsize()
    assert n1 + n2 == 20, f"shared group got {n1} + {n2} messages, not 20"
    assert n1 > 0 and n2 > 0, f"not balanced: {n1} / {n2}"
    for c in (p, s1, s2):
        c.close()


def case_v5_properties(a):
    t = uid("props")
    s = Client(a.port, 5)
    sp = Properties(PacketTypes.SUBSCRIBE)
    sp.SubscriptionIdentifier = 42
    s.sub(t, 1, properties=sp)
    p = Client(a.port, 5)
    pp = Properties(PacketTypes.PUBLISH)
    pp.UserProperty = ("site", "north")
    pp.ResponseTopic = t + "/reply"
    pp.CorrelationData = b"\x01\x02"
    pp.ContentType = "application/json"
    p.pub(t, "{}", 1, props=pp)
    m = s.get()
    props = m.properties
    assert props.SubscriptionIdentifier == [42], props.SubscriptionIdentifier
    assert ("site", "north") in props.UserProperty, props.UserProperty
    assert props.ResponseTopic == t + "/reply", props.ResponseTopic
    assert props.CorrelationData == b"\x01\x02", props.CorrelationData
    assert props.ContentType == "application/json"
    # topic alias: set with the first publish, used alone by the second
    pa = Properties(PacketTypes.PUBLISH)
    pa.TopicAlias = 3
    p.pub(t, "aliased-1", 1, props=pa)
    p.pub("", "aliased-2", 1, props=pa)
    got = [s.get(), s.get()]
    assert [(m.topic, m.payload) for m in got] == [(t, b"aliased-1"), (t, b"aliased-2")], got
    # no local
    s.c.subscribe(t + "/nl", options=mqtt.SubscribeOptions(qos=1, noLocal=True))
    s.subacks.get(timeout=WAIT)
    s.pub(t + "/nl", "mine", 1)
    s.none()
    p.close()
    s.close()


def case_qos2_exactly_once_across_reconnect(a):
    t = uid("eo")
    s = Client(a.port, 4)
    s.sub(t, 2)
    cid = uid("q2")
    sock, _ = raw_connect(a.port, cid, 4, clean=False)
    body = s16(t) + struct.pack(">H", 7) + b"once"
    sock.sendall(b"\x34" + rlen(len(body)) + body)  # PUBLISH QoS 2
    kind, b = recv_packet(sock)
    assert kind == 0x50 and b == b"\x00\x07", f"expected PUBREC 7, got {kind:#x} {b!r}"
    sock.close()  # lost before PUBREL
    sock, ack = raw_connect(a.port, cid, 4, clean=False)
    assert ack[2] == 1, f"session present expected, CONNACK {ack!r}"
    sock.sendall(b"\x3c" + rlen(len(body)) + body)  # the same PUBLISH again, DUP set
    kind, b = recv_packet(sock)
    assert kind == 0x50, f"expected PUBREC, got {kind:#x}"
    sock.sendall(b"\x62\x02\x00\x07")  # PUBREL
    kind, b = recv_packet(sock)
    assert kind == 0x70 and b == b"\x00\x07", f"expected PUBCOMP 7, got {kind:#x} {b!r}"
    m = s.get()
    assert m.payload == b"once", m.payload
    s.none()
    sock.sendall(b"\xe0\x00")
    sock.close()
    s.close()


def case_keep_alive(a):
    t = uid("ka")
    s = Client(a.port, 4)
    s.sub(t, 1)
    sock = socket.create_connection((HOST, a.port), timeout=WAIT)
    will = s16(t) + s16("ka-expired")
    vh = s16("MQTT") + bytes([4, 0x02 | 0x04 | 0x08]) + struct.pack(">H", 1)  # will QoS 1, keep-alive 1 s
    body = vh + s16(uid("kac")) + will
    sock.sendall(b"\x10" + rlen(len(body)) + body)
    assert recv_packet(sock)[0] == 0x20
    closed(sock, 5.0)  # closed after 1.5 s of silence
    assert s.get().payload == b"ka-expired"
    s.close()


def case_bad_input(a):
    # 1. remaining length of 5 bytes
    sock = socket.create_connection((HOST, a.port), timeout=WAIT)
    sock.sendall(b"\x10\xff\xff\xff\xff\x7f")
    closed(sock)
    # 2. MQTT 3.1 (MQIsdp): CONNACK 0x01, closed
    sock = socket.create_connection((HOST, a.port), timeout=WAIT)
    body = s16("MQIsdp") + bytes([3, 2]) + b"\x00\x1e" + s16("old")
    sock.sendall(b"\x10" + rlen(len(body)) + body)
    got = closed(sock)
    assert got and got[0] == (0x20, b"\x00\x01"), f"MQIsdp: {got!r}"
    # 3. a second CONNECT → DISCONNECT 0x82 (v5) and closed
    sock, _ = raw_connect(a.port, uid("dbl"), 5)
    body = s16("MQTT") + bytes([5, 2]) + b"\x00\x1e\x00" + s16("again")
    sock.sendall(b"\x10" + rlen(len(body)) + body)
    got = closed(sock)
    assert got and got[-1][0] == 0xE0 and got[-1][1][:1] == b"\x82", f"second CONNECT: {got!r}"
    # 4. wildcard in a PUBLISH topic → 0x90
    sock, _ = raw_connect(a.port, uid("wild"), 5)
    body = s16("a/+/b") + b"\x00" + b"x"
    sock.sendall(b"\x30" + rlen(len(body)) + body)
    got = closed(sock)
    assert got and got[-1][1][:1] == b"\x90", f"wildcard topic: {got!r}"
    # 5. invalid UTF-8 topic → closed
    sock, _ = raw_connect(a.port, uid("utf"), 4)
    body = s16(b"\xff\xfe") + b"x"
    sock.sendall(b"\x30" + rlen(len(body)) + body)
    closed(sock)
    # 6. SUBSCRIBE with wrong fixed-header flags → closed
    sock, _ = raw_connect(a.port, uid("flags"), 4)
    body = struct.pack(">H", 1) + s16("a") + b"\x00"
    sock.sendall(b"\x80" + rlen(len(body)) + body)
    closed(sock)
    # 7. packet over the maximum packet size → 0x95
    sock, _ = raw_connect(a.port, uid("big"), 5)
    n = a.max_packet + 10
    sock.sendall(b"\x30" + rlen(n))
    got = closed(sock)
    assert got and got[-1][1][:1] == b"\x95", f"oversized: {got!r}"
    # 8. invalid filters get failure codes, not a disconnect
    sock, _ = raw_connect(a.port, uid("filter"), 5)
    body = struct.pack(">H", 9) + b"\x00" + s16("a/#/b") + b"\x01" + s16("ok/+") + b"\x01"
    sock.sendall(b"\x82" + rlen(len(body)) + body)
    kind, b = recv_packet(sock)
    assert kind == 0x90 and b == b"\x00\x09\x00\x8f\x01", f"SUBACK for a/#/b, ok/+: {kind:#x} {b!r}"
    sock.close()
    s = Client(a.port, 5)
    # 9. truncated packet then close: nothing happens to others
    sock, _ = raw_connect(a.port, uid("trunc"), 4)
    sock.sendall(b"\x30\x20\x00\x03abc")
    sock.close()
    # others are fine
    t = uid("fine")
    s.sub(t, 1)
    p = Client(a.port, 4)
    p.pub(t, "still here", 1)
    assert s.get().payload == b"still here"
    p.close()
    s.close()


def case_auth(a):
    assert connack_refused(a.auth_port, 4) == 5, "v3.1.1 without credentials: not authorized (5)"
    assert connack_refused(a.auth_port, 5) == 0x87, "v5 without credentials: 0x87"
    assert connack_refused(a.auth_port, 4, "alice", "wrong") == 4, "v3.1.1 bad password: 4"
    assert connack_refused(a.auth_port, 5, "nobody", "x") == 0x86, "v5 unknown user: 0x86"
    al = Client(a.auth_port, 5, user="alice", password=a.alice)
    assert al.rc == 0
    t = uid("acl")
    al.sub("#", 1)
    bob = Client(a.auth_port, 5, user="bob", password=a.bob)
    granted = bob.sub("#", 1)
    assert granted[0].value == 0x87, f"bob may not subscribe to #: {granted}"
    granted = bob.sub("plant/bob/+", 1)
    assert granted[0].value == 1, granted
    info = bob.c.publish(f"{t}/elsewhere", "no", 1)
    info.wait_for_publish(WAIT)
    bob.pub("plant/bob/x", "yes", 1)
    m = al.get()
    assert (m.topic, m.payload) == ("plant/bob/x", b"yes"), (m.topic, m.payload)
    assert bob.get().payload == b"yes"
    al.none(0.5)
    bob.close()
    al.close()


def case_mosquitto_tools(a):
    for v in ("mqttv311", "mqttv5"):
        t = uid("tools")
        sub = subprocess.Popen(
            ["mosquitto_sub", "-h", HOST, "-p", str(a.port), "-V", v, "-t", t + "/#", "-C", "2", "-q", "1", "-v", "-W", "10"],
            stdout=subprocess.PIPE, text=True)
        time.sleep(0.5)
        subprocess.run(["mosquitto_pub", "-h", HOST, "-p", str(a.port), "-V", v, "-t", t + "/a", "-m", "1.5", "-q", "1"], check=True, timeout=10)
        subprocess.run(["mosquitto_pub", "-h", HOST, "-p", str(a.port), "-V", v, "-t", t + "/b", "-m", "on", "-q", "2", "-r"], check=True, timeout=10)
        out, _ = sub.communicate(timeout=15)
        assert out.split("\n")[:2] == [f"{t}/a 1.5", f"{t}/b on"], f"{v}: {out!r}"
        # the retained one is there for a new subscriber
        out = subprocess.run(["mosquitto_sub", "-h", HOST, "-p", str(a.port), "-V", v, "-t", t + "/b", "-C", "1", "-W", "10"],
                             capture_output=True, text=True, timeout=15).stdout
        assert out.strip() == "on", f"{v} retained: {out!r}"
    # credentials through the tools
    r = subprocess.run(["mosquitto_pub", "-h", HOST, "-p", str(a.auth_port), "-t", "x", "-m", "1", "-u", "alice", "-P", "wrong"],
                       capture_output=True, text=True, timeout=15)
    assert r.returncode != 0, "mosquitto_pub with a wrong password must fail"
    r = subprocess.run(["mosquitto_pub", "-h", HOST, "-p", str(a.auth_port), "-t", "x", "-m", "1", "-u", "alice", "-P", a.alice],
                       capture_output=True, text=True, timeout=15)
    assert r.returncode == 0, r.stderr


def case_restart_before(a):
    """First half of the broker-restart case (the test restarts the broker in between)."""
    t = a.tag
    s = Client(a.port, 4, client_id=t + "-sub", clean=False)
    s.sub(t + "/#", 2)
    s.close()
    p = Client(a.port, 5)
    for i in range(3):
        p.pub(f"{t}/x", f"m{i}", 1)
    p.pub(f"{t}/r", "kept", 1, retain=True)
    p.close()
    # a QoS 2 publish received (PUBREC) but not released when the broker stops
    sock, _ = raw_connect(a.port, t + "-q2", 4, clean=False)
    body = s16(f"{t}/x") + struct.pack(">H", 9) + b"once"
    sock.sendall(b"\x34" + rlen(len(body)) + body)
    kind, _b = recv_packet(sock)
    assert kind == 0x50, f"expected PUBREC, got {kind:#x}"
    sock.close()


def case_restart_after(a):
    """Second half: the session, its queued messages, the QoS 2 state and the retained message
    came through the restart."""
    t = a.tag
    sock, ack = raw_connect(a.port, t + "-q2", 4, clean=False)
    assert ack[2] == 1, f"QoS 2 publisher: session present expected after the restart, CONNACK {ack!r}"
    body = s16(f"{t}/x") + struct.pack(">H", 9) + b"once"
    sock.sendall(b"\x3c" + rlen(len(body)) + body)  # resent with DUP: must not be routed twice
    kind, _b = recv_packet(sock)
    assert kind == 0x50, f"expected PUBREC, got {kind:#x}"
    sock.sendall(b"\x62\x02\x00\x09")
    kind, b = recv_packet(sock)
    assert (kind, b) == (0x70, b"\x00\x09"), f"expected PUBCOMP 9 for the id kept across the restart, got {kind:#x} {b!r}"
    sock.close()
    s = Client(a.port, 4, client_id=t + "-sub", clean=False)
    assert s.flags.get("session present") == 1, f"session lost in the restart: {s.flags}"
    got = [s.get().payload for _ in range(5)]
    assert got == [b"m0", b"m1", b"m2", b"kept", b"once"], got
    s.none()
    s.close()
    r = Client(a.port, 5)
    r.sub(f"{t}/r", 1)
    m = r.get()
    assert (m.payload, m.retain) == (b"kept", True), (m.payload, m.retain)
    r.close()


CASES = {name[5:]: f for name, f in sorted(globals().items()) if name.startswith("case_")}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--auth-port", type=int, required=True)
    ap.add_argument("--alice", default="")
    ap.add_argument("--bob", default="")
    ap.add_argument("--max-packet", type=int, default=1 << 20)
    ap.add_argument("--case", action="append")
    ap.add_argument("--tag", default=uid("restart"))
    a = ap.parse_args()
    for name in a.case or CASES:
        t0 = time.time()
        CASES[name](a)
        print(f"ok {name} ({time.time() - t0:.1f} s)", flush=True)


if __name__ == "__main__":
    main()
