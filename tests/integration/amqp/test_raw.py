"""Malformed AMQP 0-9-1 input after a valid handshake, sent byte by byte (rawamqp.py).

Each case opens a connection with channel 1 open, sends one bad thing and asserts the server's
answer: a connection.close whose reply code is in the case's set and whose reply text starts
with the code's name ("FRAME_ERROR - ..."), as RabbitMQ writes them. After every case a new
normal connection must still work.

Every case was run against Debian's RabbitMQ 3.10.8 (TERN_AMQP_TARGET=rabbitmq); its answer is
noted beside the case. Where RabbitMQ's answer is not one tern should copy, the case says so in
`rabbitmq`, and the test checks that answer only when the target is RabbitMQ:
  "eof"      RabbitMQ's connection process crashes (function_clause / unknown_method_id in
             its log) and the socket closes without connection.close;
  "accepted" RabbitMQ goes on (channel.open-ok) where the spec says the peer must refuse.

The garbage test sends 200 seeded random byte strings, each on a fresh connection after a valid
handshake, and checks that every answer is well-formed and the server keeps serving. Set
TERN_RAW_SEED to replay another sequence.
"""

import collections
import os
import random
import socket
import struct
import time

import pika.data
import pika.spec
import pytest

from rawamqp import (FRAME_BODY, FRAME_HEADER, FRAME_HEARTBEAT, FRAME_METHOD, HARD_ERRORS,
                     METHODS, REPLY_SUCCESS, SOFT_ERRORS, Closed, DecodeError, Method, RawConn,
                     Typed, check_serves, content_header_payload, frame, heartbeat_frame,
                     method_frame, method_payload, table)

CODE_NAMES = {501: "FRAME_ERROR", 502: "SYNTAX_ERROR", 503: "COMMAND_INVALID",
              504: "CHANNEL_ERROR", 505: "UNEXPECTED_FRAME", 530: "NOT_ALLOWED",
              540: "NOT_IMPLEMENTED"}

Case = collections.namedtuple("Case", "id data codes rabbitmq", defaults=(None,))

PUBLISH = method_frame(1, "basic.publish", routing_key="raw-nowhere")
QOS = method_frame(1, "basic.qos", prefetch_count=1)
DECLARE = method_payload("queue.declare", queue="abcdefgh", exclusive=True)


def declare_with_table(raw_table):
    return method_frame(1, "queue.declare", exclusive=True, auto_delete=True,
                        arguments=raw_table)


def bad_letter_table():
    good = table([("x-a", 1)])  # 4-octet size, shortstr "x-a", 'I', 4 octets
    return good[:8] + b"Z" + good[9:]


CASES = [
    # 501 "FRAME_ERROR - type 1, all octets = <<...>>: {invalid_frame_end_marker,0}"
    Case("bad-frame-end", frame(FRAME_METHOD, 1, QOS[7:-1], end=0x00), {501}),
    # 501 "FRAME_ERROR - type 9, all octets = <<"abc">>: unknown_frame" (same for 0 and 4)
    Case("frame-type-0", frame(0, 1, b"abc"), {501}),
    Case("frame-type-4", frame(4, 1, b"abc"), {501}),
    Case("frame-type-9", frame(9, 1, b"abc"), {501}),
    Case("frame-type-255", frame(255, 0, b""), {501}),
    # 501 "FRAME_ERROR - cannot decode <<0,0,8,97,98,99>>" (the spec would say 502)
    Case("method-cut-in-shortstr", frame(FRAME_METHOD, 1, DECLARE[:10]), {501, 502}),
    # 501 "FRAME_ERROR - cannot decode <<0,0,0,0,0,0>>"
    Case("method-cut-before-bits", frame(FRAME_METHOD, 1, QOS[7:-2]), {501, 502}),
    # 501 "FRAME_ERROR - type 1, all octets = <<0>>: unknown_frame"
    Case("method-shorter-than-ids", frame(FRAME_METHOD, 1, b"\x00"), {501, 502}),
    # 501 "FRAME_ERROR - cannot decode <<0,106,117,110,107>>"
    Case("method-trailing-octets",
         frame(FRAME_METHOD, 1, method_payload("basic.qos", prefetch_count=1) + b"junk"),
         {501, 502}),
    # 501 "FRAME_ERROR - cannot decode <<0,0,0,4,0,0,0,40,1,97,86>>"
    Case("table-size-overruns",
         declare_with_table(struct.pack(">I", 40) + b"\x01aV"), {501, 502}),
    # RabbitMQ: the connection process crashes (function_clause), socket closed
    Case("table-bad-type-letter", declare_with_table(bad_letter_table()), {501, 502}, "eof"),
    # RabbitMQ: crash {unknown_method_id,{99,10}}, socket closed
    Case("unknown-class", frame(FRAME_METHOD, 1, b"\x00\x63\x00\x0a"), {540, 503}, "eof"),
    # RabbitMQ: crash {unknown_method_id,{60,99}}, socket closed
    Case("unknown-method", frame(FRAME_METHOD, 1, b"\x00\x3c\x00\x63"), {540, 503}, "eof"),
    # 503 "COMMAND_INVALID - unimplemented method"
    Case("connection-method-on-channel-1",
         method_frame(1, "connection.tune-ok", channel_max=1, frame_max=4096), {503, 504}),
    # 504 "CHANNEL_ERROR - unexpected method in connection state running"
    Case("channel-open-on-channel-0", method_frame(0, "channel.open"), {503, 504}),
    # 505 "UNEXPECTED_FRAME - expected method frame, got non method frame instead"
    Case("header-without-publish", frame(FRAME_HEADER, 1, content_header_payload(5)), {505}),
    Case("body-without-publish", frame(FRAME_BODY, 1, b"hello"), {505}),
    Case("body-after-empty-content",
         PUBLISH + frame(FRAME_HEADER, 1, content_header_payload(0))
         + frame(FRAME_BODY, 1, b"abc"), {505}),
    # 505 "UNEXPECTED_FRAME - expected content header for class 60, got non content header
    # frame instead"
    Case("publish-then-method", PUBLISH + QOS, {505}),
    Case("publish-then-body", PUBLISH + frame(FRAME_BODY, 1, b"abc"), {505}),
    # 505 "UNEXPECTED_FRAME - expected content header for class 60, got one for class 50
    # instead"
    Case("header-class-mismatch",
         PUBLISH + frame(FRAME_HEADER, 1, content_header_payload(3, class_id=50))
         + frame(FRAME_BODY, 1, b"abc"), {505}),
    # 501 "FRAME_ERROR - type 2, all octets = <<0,60,0,0,0,0>>: unknown_frame"
    Case("header-truncated",
         PUBLISH + frame(FRAME_HEADER, 1, content_header_payload(3)[:6]), {501, 502}),
    # RabbitMQ keeps waiting for body frames (its remaining size goes negative) and answers
    # only at the next method: 505 "UNEXPECTED_FRAME - expected content body, got non content
    # body frame instead". QOS is that next method; tern may answer at the body frame.
    Case("body-longer-than-announced",
         PUBLISH + frame(FRAME_HEADER, 1, content_header_payload(5))
         + frame(FRAME_BODY, 1, b"hello world") + QOS, {505}),
    Case("body-frames-overrun",
         PUBLISH + frame(FRAME_HEADER, 1, content_header_payload(5))
         + frame(FRAME_BODY, 1, b"hel") + frame(FRAME_BODY, 1, b"lo!") + QOS, {505}),
    # 504 "CHANNEL_ERROR - expected 'channel.open'"
    Case("method-on-unopened-channel", method_frame(5, "queue.declare", exclusive=True),
         {504}),
    Case("qos-on-unopened-channel", method_frame(7, "basic.qos", prefetch_count=1), {504}),
    Case("close-ok-on-unopened-channel", method_frame(9, "channel.close-ok"), {504}),
    # 504 "CHANNEL_ERROR - second 'channel.open' seen"
    Case("second-channel-open", method_frame(1, "channel.open"), {504}),
    # 505 "UNEXPECTED_FRAME - type 8, all octets = <<>>" (the spec's heartbeat rule says 501)
    Case("heartbeat-on-channel-1", heartbeat_frame(1), {501, 505}),
    # 501 "FRAME_ERROR - type 8, all octets = <<"xx">>: unknown_frame"
    Case("heartbeat-with-payload", frame(FRAME_HEARTBEAT, 0, b"xx"), {501}),
    # RabbitMQ only limits how many channels are open, not their numbers: it opens 2048.
    Case("channel-open-above-channel-max", method_frame(2048, "channel.open"), {504, 530},
         "accepted"),
    Case("channel-open-65535", method_frame(65535, "channel.open"), {504, 530}, "accepted"),
]


def expect_answer(amqp, c, case):
    behaviour = case.rabbitmq if amqp.kind == "rabbitmq" else None
    if behaviour == "accepted":
        m = c.read_method()
        assert m.name == "channel.open-ok", m
        return
    ans = c.wait_close(5.0)
    if behaviour == "eof":
        assert ans.kind == "eof", ans
        return
    assert ans.kind == "connection.close", ans
    assert ans.code in case.codes, ans
    assert ans.text.startswith(CODE_NAMES[ans.code]), ans


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_malformed(amqp, case):
    with RawConn(amqp.host, amqp.port) as c:
        c.handshake()
        c.open_channel(1)
        c.send(case.data)
        expect_answer(amqp, c, case)
    check_serves(amqp.host, amqp.port)


def test_bad_letter_table_is_well_formed_otherwise():
    """The malformed table differs from a valid one only in its type letter."""
    good = table([("x-a", 1)])
    assert good[8:9] == b"I" and bad_letter_table() != good
    assert len(bad_letter_table()) == len(good)


def test_rawamqp_encoding_matches_pika():
    """rawamqp's encoder agrees with pika's decoder (a third-party reading of the same bytes),
    so a malformed case is malformed only where it means to be."""
    fields = {"b": True, "i": -7, "big": 2**40, "s": "str", "a": [1, "x", {"n": None}],
              "u": Typed("u", 65535)}
    decoded, used = pika.data.decode_table(table(fields), 0)
    assert used == len(table(fields))
    assert decoded == {"b": True, "i": -7, "big": 2**40, "s": "str", "a": [1, "x", {"n": None}],
                       "u": 65535}
    declare = pika.spec.Queue.Declare()
    declare.decode(method_payload("queue.declare", queue="qq", durable=True, auto_delete=True,
                                  arguments={"x-max-length": 5}), 4)
    assert (declare.queue, declare.durable, declare.auto_delete, declare.exclusive) == \
        ("qq", True, True, False)
    assert declare.arguments == {"x-max-length": 5}
    props = pika.spec.BasicProperties()
    props.decode(content_header_payload(10, content_type="text/plain", headers={"k": "v"},
                                        delivery_mode=2, app_id="a"), 12)
    assert (props.content_type, props.headers, props.delivery_mode, props.app_id) == \
        ("text/plain", {"k": "v"}, 2, "a")


def test_good_frames_still_accepted(amqp):
    """The cases' building blocks are valid when not broken: a full publish, a heartbeat on
    channel 0 and a table with known letters all go through."""
    q = amqp.name("raw")
    with RawConn(amqp.host, amqp.port) as c:
        c.handshake()
        c.open_channel(1)
        args = table({"x-max-length": 10, "x-tern-note": Typed("S", "hi")})
        c.send(heartbeat_frame(0) + method_frame(1, "queue.declare", queue=q, exclusive=True,
                                                 arguments=args))
        c.expect(1, "queue.declare-ok")
        c.send(method_frame(1, "basic.publish", routing_key=q)
               + frame(FRAME_HEADER, 1, content_header_payload(5))
               + frame(FRAME_BODY, 1, b"hel") + frame(FRAME_BODY, 1, b"lo"))
        c.send_method(1, "basic.get", queue=q, no_ack=True)
        assert c.expect(1, "basic.get-ok").routing_key == q
        assert c.read_frame().type == FRAME_HEADER
        assert c.read_frame().payload == b"hello"


# ------------------------------------------------------------------------------ garbage

GARBAGE_ROUNDS = 200
SEED = int(os.environ.get("TERN_RAW_SEED", "91091"))
KNOWN_CODES = HARD_ERRORS | SOFT_ERRORS | {REPLY_SUCCESS}


def _valid_sequence(rng):
    q = f"raw-garbage-{rng.randrange(1 << 30)}"
    return (method_frame(1, "queue.declare", queue=q, exclusive=True, auto_delete=True,
                         arguments={"x-message-ttl": 1000, "note": [1, "two", {"t": True}]})
            + method_frame(1, "basic.publish", routing_key=q)
            + frame(FRAME_HEADER, 1, content_header_payload(4, content_type="text/plain",
                                                        headers={"k": "v"}, delivery_mode=2))
            + frame(FRAME_BODY, 1, b"body"))


def garbage(rng):
    """One random byte string: raw noise, a well-framed random frame, a known method with
    random arguments, or a valid publish sequence with a few octets changed or cut."""
    kind = rng.randrange(4)
    if kind == 0:
        return rng.randbytes(rng.randrange(1, 64))
    if kind == 1:
        ftype = rng.choice([FRAME_METHOD, FRAME_HEADER, FRAME_BODY, FRAME_HEARTBEAT,
                            rng.randrange(256)])
        return frame(ftype, rng.choice([0, 1, 2, rng.randrange(65536)]),
                     rng.randbytes(rng.randrange(48)))
    if kind == 2:
        class_id, method_id, _ = METHODS[rng.choice(sorted(METHODS))]
        return frame(FRAME_METHOD, rng.choice([0, 1]),
                     struct.pack(">HH", class_id, method_id) + rng.randbytes(rng.randrange(40)))
    data = bytearray(_valid_sequence(rng))
    for _ in range(rng.randrange(1, 4)):
        data[rng.randrange(len(data))] = rng.randrange(256)
    if rng.random() < 0.3:
        del data[rng.randrange(len(data)):]
    return bytes(data)


def check_answer(c, what):
    """Reads the server's answer after the client shut down its sending side, until the server
    closes the socket or sends connection.close (RabbitMQ then waits 3 s for close-ok, which a
    half-closed client cannot send). Every frame must be whole and known, and close methods
    must carry known reply codes. A server that does neither within 5 s fails."""
    deadline = time.monotonic() + 5.0
    while True:
        try:
            f = c.read_frame(max(0.0, deadline - time.monotonic()))
        except Closed:
            return
        except TimeoutError:
            raise AssertionError(f"{what}: no close within 5 s of the client's EOF") from None
        except DecodeError as e:
            raise AssertionError(f"{what}: bad frame from the server: {e}") from None
        assert f.type in (FRAME_METHOD, FRAME_HEADER, FRAME_BODY, FRAME_HEARTBEAT), (what, f)
        if f.type != FRAME_METHOD:
            continue
        m = Method(f.channel, f.payload)
        if m.name in ("connection.close", "channel.close"):
            assert m.reply_code in KNOWN_CODES, (what, m)
        if m.name == "connection.close":
            return


def test_garbage_after_handshake(amqp):
    rng = random.Random(SEED)
    for i in range(GARBAGE_ROUNDS):
        data = garbage(rng)
        what = f"seed {SEED} round {i} sent {data.hex()}"
        with RawConn(amqp.host, amqp.port) as c:
            c.handshake()
            c.open_channel(1)
            c.send(data)
            try:
                c.sock.shutdown(socket.SHUT_WR)
            except OSError:  # the server closed already (it may answer before the garbage ends)
                pass
            check_answer(c, what)
        if i % 50 == 49:
            check_serves(amqp.host, amqp.port)
    check_serves(amqp.host, amqp.port)
