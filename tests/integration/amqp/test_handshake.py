"""The AMQP 0-9-1 connection handshake, spoken byte by byte (rawamqp.py): protocol header,
connection.start, SASL PLAIN / AMQPLAIN, tune (frame_max, channel_max, heartbeat), open, and
what the server does when any step is wrong.

Every test was run against Debian's RabbitMQ 3.10.8 (TERN_AMQP_TARGET=rabbitmq). Where RabbitMQ
refuses a client before connection.open without sending connection.close, it closes the socket
after a fixed 3 s delay (rabbit_reader's SILENT_CLOSE_DELAY); tests allow for that and accept a
connection.close with a matching reply code from tern instead. Tests that fail a client also
check that the server still serves a new connection afterwards.
"""

import struct
import time

import pytest

from rawamqp import (ACCESS_REFUSED, FRAME_ERROR, FRAME_BODY, FRAME_HEADER, FRAME_METHOD,
                     FRAME_HEARTBEAT, NOT_ALLOWED, PROTOCOL_HEADER, RawConn, check_serves,
                     content_frames, frame, heartbeat_frame, method_frame)

CAPABILITIES = ("publisher_confirms", "exchange_exchange_bindings", "basic.nack",
                "consumer_cancel_notify", "connection.blocked", "consumer_priorities",
                "authentication_failure_close", "per_consumer_qos", "direct_reply_to")

# Longest a refused pre-open client may wait for the server to close: RabbitMQ's silent close
# comes after 3 s.
REFUSE_TIMEOUT = 6.0


def started(amqp):
    """A RawConn that sent the protocol header and read connection.start."""
    c = RawConn(amqp.host, amqp.port)
    c.send(PROTOCOL_HEADER)
    c.expect(0, "connection.start")
    return c


def tuned(amqp, **start_ok):
    """A RawConn that got as far as connection.tune."""
    c = started(amqp)
    c.start_ok(**start_ok)
    c.tune = c.expect(0, "connection.tune")
    return c


def assert_refused(c, codes, timeout=REFUSE_TIMEOUT):
    """The server ends the connection: a connection.close with a code in codes, or the socket
    closed without one. Nothing that continues the handshake may arrive first."""
    ans = c.wait_close(timeout)
    assert ans.kind in ("connection.close", "eof"), ans
    if ans.kind == "connection.close":
        assert ans.code in codes, ans
    bad = [m.name for m in c.skipped
           if m.name in ("connection.tune", "connection.open-ok", "channel.open-ok")]
    assert not bad, f"server went on with the handshake: {bad}"
    return ans


# ------------------------------------------------------------------------------ connection.start

def test_connection_start(amqp):
    with RawConn(amqp.host, amqp.port) as c:
        c.send(PROTOCOL_HEADER)
        start = c.expect(0, "connection.start")
    assert (start.version_major, start.version_minor) == (0, 9)
    mechanisms = start.mechanisms.split()
    assert b"PLAIN" in mechanisms and b"AMQPLAIN" in mechanisms, start.mechanisms
    assert b"en_US" in start.locales.split(), start.locales
    props = start.server_properties
    for key in ("product", "version", "platform"):
        assert isinstance(props.get(key), bytes) and props[key], (key, props)
    caps = props.get("capabilities")
    assert isinstance(caps, dict), props
    for cap in CAPABILITIES:
        assert caps.get(cap) is True, (cap, caps)


def test_connection_tune_proposal(amqp):
    with tuned(amqp) as c:
        assert c.tune.channel_max == 2047
        assert c.tune.frame_max == 131072
        assert c.tune.heartbeat == 60


@pytest.mark.parametrize("header", [
    b"AMQP\x00\x00\x09\x02",  # 0-9-2
    b"AMQP\x00\x00\x0a\x00",  # 0-10 written the 0-9-1 way
    b"AMQP\x01\x01\x00\x0a",  # 0-10
    b"AMQP\x00\x01\x00\x00",  # AMQP 1.0
    b"GET / HT",              # HTTP
    b"\x00" * 8,
], ids=["0-9-2", "0-10-alt", "0-10", "1.0", "http", "zeros"])
def test_wrong_protocol_header(amqp, header):
    with RawConn(amqp.host, amqp.port) as c:
        c.send(header)
        assert c.read_raw(8) == PROTOCOL_HEADER
        assert c.wait_eof(REFUSE_TIMEOUT), "server kept the socket open after refusing"
    check_serves(amqp.host, amqp.port)


# ------------------------------------------------------------------------------ authentication

@pytest.mark.parametrize("mechanism", ["PLAIN", "AMQPLAIN"])
def test_login(amqp, mechanism):
    with RawConn(amqp.host, amqp.port) as c:
        c.handshake(mechanism=mechanism)
        c.open_channel(1)


@pytest.mark.parametrize("mechanism", ["PLAIN", "AMQPLAIN"])
def test_wrong_password_with_auth_failure_close(amqp, mechanism):
    with started(amqp) as c:
        c.start_ok(mechanism=mechanism, password="wrong",
                   capabilities={"authentication_failure_close": True})
        ans = c.wait_close(REFUSE_TIMEOUT)
        assert ans.kind == "connection.close", ans
        assert ans.code == ACCESS_REFUSED, ans
        assert ans.text.startswith("ACCESS_REFUSED"), ans
    check_serves(amqp.host, amqp.port)


def test_wrong_password_without_capability(amqp):
    """A client that did not announce authentication_failure_close just loses the socket."""
    with started(amqp) as c:
        c.start_ok(password="wrong", capabilities={})
        ans = c.wait_close(REFUSE_TIMEOUT)
        assert ans.kind == "eof", ans
        assert not c.skipped, c.skipped
    check_serves(amqp.host, amqp.port)


def test_unknown_user(amqp):
    with started(amqp) as c:
        c.start_ok(user="nobody-here", password="guest")
        ans = c.wait_close(REFUSE_TIMEOUT)
        assert (ans.kind, ans.code) == ("connection.close", ACCESS_REFUSED), ans


def test_unknown_mechanism(amqp):
    with started(amqp) as c:
        c.start_ok(mechanism="FOO-BAR", response=b"\x00guest\x00guest")
        assert_refused(c, {ACCESS_REFUSED, 503, 530, 540})
    check_serves(amqp.host, amqp.port)


@pytest.mark.parametrize("response", [b"guest", b"\x00guest", b"", b"\x00guest\x00guest\x00x"],
                         ids=["no-nul", "one-nul", "empty", "three-nul"])
def test_malformed_plain_response(amqp, response):
    with started(amqp) as c:
        c.start_ok(mechanism="PLAIN", response=response)
        assert_refused(c, {ACCESS_REFUSED, 501, 502, 503})
    check_serves(amqp.host, amqp.port)


# ------------------------------------------------------------------------------ tune

def test_frame_max_minimum_accepted(amqp):
    """frame_max 4096 is allowed, and the server then splits a larger message into body frames
    that fit."""
    q = amqp.name("fm")
    body = bytes(range(256)) * 40  # 10240 octets: three frames at 4096
    with RawConn(amqp.host, amqp.port) as c:
        c.handshake(frame_max=4096)
        c.open_channel(1)
        c.send_method(1, "queue.declare", queue=q, exclusive=True)
        c.expect(1, "queue.declare-ok")
        c.send(method_frame(1, "basic.publish", routing_key=q) + content_frames(1, body, 4096))
        c.send_method(1, "basic.get", queue=q, no_ack=True)
        c.expect(1, "basic.get-ok")
        header = c.read_frame()
        assert header.type == FRAME_HEADER and len(header.payload) + 8 <= 4096
        got = b""
        while len(got) < len(body):
            f = c.read_frame()
            assert f.type == FRAME_BODY, f
            assert len(f.payload) + 8 <= 4096, len(f.payload)
            got += f.payload
        assert got == body


def test_frame_max_below_minimum_refused(amqp):
    """RabbitMQ 3.10 closes the socket (after 3 s) without connection.close."""
    with tuned(amqp) as c:
        c.send_method(0, "connection.tune-ok", channel_max=0, frame_max=4095, heartbeat=0)
        c.send_method(0, "connection.open", virtual_host="/")
        assert_refused(c, {NOT_ALLOWED, FRAME_ERROR})
    check_serves(amqp.host, amqp.port)


def test_channel_max_above_proposal_refused(amqp):
    with tuned(amqp) as c:
        c.send_method(0, "connection.tune-ok", channel_max=c.tune.channel_max + 1,
                      frame_max=c.tune.frame_max, heartbeat=0)
        c.send_method(0, "connection.open", virtual_host="/")
        assert_refused(c, {NOT_ALLOWED, FRAME_ERROR, 503})
    check_serves(amqp.host, amqp.port)


def test_negotiated_channel_max_enforced(amqp):
    """With channel_max 3, channels 1..3 open and a fourth is a connection error 530."""
    with RawConn(amqp.host, amqp.port) as c:
        c.handshake(channel_max=3)
        for ch in (1, 2, 3):
            c.open_channel(ch)
        c.send_method(4, "channel.open")
        ans = c.wait_close()
        assert (ans.kind, ans.code) == ("connection.close", NOT_ALLOWED), ans
        assert ans.text.startswith("NOT_ALLOWED"), ans
    check_serves(amqp.host, amqp.port)


# ------------------------------------------------------------------------------ heartbeats

def test_silent_client_dropped_after_missed_heartbeats(amqp):
    with RawConn(amqp.host, amqp.port) as c:
        c.handshake(heartbeat=1)
        t0 = time.monotonic()
        ans = c.wait_close(8.0)  # reads (and drops) the server's heartbeats, never answers
        took = time.monotonic() - t0
    assert ans.kind in ("eof", "connection.close"), ans
    assert 0.9 <= took <= 5.0, f"closed after {took:.2f}s; heartbeat was 1s"
    check_serves(amqp.host, amqp.port)


def test_client_sending_heartbeats_stays_up(amqp):
    with RawConn(amqp.host, amqp.port) as c:
        c.handshake(heartbeat=1)
        t0 = next_beat = time.monotonic()
        beats = 0
        while time.monotonic() - t0 < 3.5:
            if time.monotonic() >= next_beat:
                c.send(heartbeat_frame())
                next_beat += 0.4
            try:
                f = c.read_frame(0.1)
            except TimeoutError:
                continue
            assert (f.type, f.channel) == (FRAME_HEARTBEAT, 0), f
            beats += 1
        assert beats >= 2, f"server sent {beats} heartbeats in 3.5s with heartbeat=1"
        c.open_channel(1)


# ------------------------------------------------------------------------------ open

def test_unknown_vhost(amqp):
    with tuned(amqp) as c:
        c.send_method(0, "connection.tune-ok", channel_max=c.tune.channel_max,
                      frame_max=c.tune.frame_max, heartbeat=0)
        c.send_method(0, "connection.open", virtual_host="/nope")
        ans = c.wait_close()
        assert (ans.kind, ans.code) == ("connection.close", NOT_ALLOWED), ans
        assert ans.text.startswith("NOT_ALLOWED"), ans
    check_serves(amqp.host, amqp.port)


# ------------------------------------------------------------------------------ timeouts

@pytest.mark.tern_only
@pytest.mark.parametrize("stage", ["nothing", "partial-header", "after-header",
                                   "after-start-ok", "after-tune-ok"])
def test_stalled_handshake_closed(amqp_factory, stage):
    """Checked against RabbitMQ with handshake_timeout = 500: it closes the socket silently
    ~0.5 s into every stage before connection.open."""
    amqp = amqp_factory("--handshake-timeout-ms", "500")
    with RawConn(amqp.host, amqp.port) as c:
        if stage == "partial-header":
            c.send(PROTOCOL_HEADER[:4])
        elif stage != "nothing":
            c.send(PROTOCOL_HEADER)
            c.expect(0, "connection.start")
        if stage in ("after-start-ok", "after-tune-ok"):
            c.start_ok()
            tune = c.expect(0, "connection.tune")
        if stage == "after-tune-ok":
            c.send_method(0, "connection.tune-ok", channel_max=tune.channel_max,
                          frame_max=tune.frame_max, heartbeat=0)
        t0 = time.monotonic()
        ans = c.wait_close(5.0)
        took = time.monotonic() - t0
    assert ans.kind in ("eof", "connection.close"), ans
    assert took <= 3.0, f"stalled handshake closed only after {took:.2f}s"
    check_serves(amqp.host, amqp.port)


# ------------------------------------------------------------------------------ frame sizes

def test_frame_larger_than_frame_max(amqp):
    """A 5000-octet body frame after negotiating 4096 is a FRAME_ERROR even though the content
    is otherwise valid; a frame of exactly 4096 octets is fine."""
    q = amqp.name("big")
    with RawConn(amqp.host, amqp.port) as c:
        c.handshake(frame_max=4096)
        c.open_channel(1)
        c.send_method(1, "queue.declare", queue=q, exclusive=True)
        c.expect(1, "queue.declare-ok")
        exact = b"e" * (4096 - 8)
        c.send(method_frame(1, "basic.publish", routing_key=q) + content_frames(1, exact, 4096))
        c.send_method(1, "basic.get", queue=q, no_ack=True)
        c.expect(1, "basic.get-ok")
        c.read_frame()  # content header
        assert c.read_frame().payload == exact
        big = b"b" * 5000
        c.send(method_frame(1, "basic.publish", routing_key=q)
               + content_frames(1, big, frame_max=len(big) + 8))
        ans = c.wait_close()
        assert (ans.kind, ans.code) == ("connection.close", FRAME_ERROR), ans
        assert ans.text.startswith("FRAME_ERROR"), ans
    check_serves(amqp.host, amqp.port)


@pytest.mark.parametrize("size", [200_000, 16 << 20], ids=["200k", "16M"])
def test_preauth_oversize_frame_refused(amqp, size):
    """Before tune-ok a client may only send small frames: a start-ok frame announcing a huge
    payload is refused without the server waiting for (or buffering) all of it."""
    with started(amqp) as c:
        c.send(struct.pack(">BHI", FRAME_METHOD, 0, size) + b"\x00" * 8192)
        assert_refused(c, {FRAME_ERROR, 502})
    check_serves(amqp.host, amqp.port)


def test_preauth_frame_on_nonzero_channel(amqp):
    """Only channel 0 exists before connection.open-ok."""
    with started(amqp) as c:
        c.send(frame(FRAME_METHOD, 1, method_frame(1, "channel.open")[7:-1]))
        assert_refused(c, {FRAME_ERROR, 503, 504, 505})
    check_serves(amqp.host, amqp.port)


# ------------------------------------------------------------------ client capabilities honoured

def _consume(amqp, capabilities, queue):
    c = RawConn(amqp.host, amqp.port)
    c.handshake(capabilities=capabilities)
    c.open_channel(1)
    c.send_method(1, "basic.consume", queue=queue, consumer_tag="ctag-1", no_ack=True)
    c.expect(1, "basic.consume-ok")
    return c


def test_server_cancel_only_to_clients_with_consumer_cancel_notify(amqp):
    """Deleting a queue under its consumers: a client that advertised consumer_cancel_notify gets
    basic.cancel for its consumer; one that did not (rabbitmq-c's default) gets nothing, and both
    channels stay open."""
    q = amqp.name("q-cancel")
    admin = amqp.connect().channel()
    admin.queue_declare(q)
    with _consume(amqp, {"consumer_cancel_notify": True}, q) as told, \
            _consume(amqp, {"exchange_exchange_bindings": True}, q) as silent:
        admin.queue_delete(q)
        cancel = told.expect(1, "basic.cancel", timeout=5)
        assert cancel.consumer_tag == "ctag-1", cancel
        for c in (told, silent):
            # a round trip on the same channel: whatever the server sent before qos-ok is seen
            c.send_method(1, "basic.qos", prefetch_count=1)
            seen = []
            while True:
                m = c.read_method(timeout=5)
                if m.name == "basic.qos-ok":
                    break
                seen.append(m.name)
            assert seen == [], seen
