"""Limits and tuning: the values proposed in connection.tune, --max-message-size, --frame-max,
--channel-max, --max-connections, --heartbeat, --handshake-timeout-ms, and the default user
(--default-user / --default-pass; "guest" may log in only over loopback).

All but the defaults test need ternd options, so they are tern_only. With
TERN_AMQP_TARGET=rabbitmq TERN_AMQP_RABBITMQ_ALL=1 each runs against a RabbitMQ node of its own
configured to match (rabbitmq.from_ternd_args); RabbitMQ 3.10 passed all of them. Its answers:
  max_message_size     406 "PRECONDITION_FAILED - message size 1025 is larger than configured
                       max size 1024", a channel error
  channel_max          530 "NOT_ALLOWED - number of channels opened (3) has reached the
                       negotiated channel_max (3)", a connection error (RabbitMQ limits how many
                       are open, not the channel number)
  max connections      RabbitMQ's connection_max only stalls extra connections in the accept
                       queue; a vhost limit refuses them at connection.open with 530
                       "NOT_ALLOWED - access to vhost '/' refused for user 'guest': connection
                       limit (2) is reached", which is what these tests expect of tern
  handshake_timeout    the socket is closed (reset) once the time is up, with or without the
                       protocol header having been sent
  heartbeat            a silent client is disconnected after about two heartbeat intervals
  loopback             guest from a non-loopback address: 403 "ACCESS_REFUSED - Login was
                       refused using authentication mechanism PLAIN. ..."
"""

import socket
import time

import pika
import pika.exceptions
import pytest


def tune(conn):
    """The negotiated (channel_max, frame_max, heartbeat) of a pika connection."""
    p = conn._impl.params
    return p.channel_max, p.frame_max, p.heartbeat


def test_default_tuning(amqp):
    """ternd's defaults are RabbitMQ 3.10's: channel_max 2047, frame_max 131072, heartbeat 60.
    A client asking for less gets less."""
    assert tune(amqp.connect()) == (2047, 131072, 60)
    assert tune(amqp.connect(channel_max=10, frame_max=8192, heartbeat=0)) == (10, 8192, 0)


@pytest.mark.tern_only
def test_default_max_message_size_is_16_mib(amqp):
    if amqp.kind == "rabbitmq":
        pytest.skip("RabbitMQ 3.10's default max_message_size is 128 MiB")
    ch = amqp.connect().channel()
    q = ch.queue_declare("", exclusive=True).method.queue
    ch.confirm_delivery()
    ch.basic_publish("", q, b"x" * (16 << 20), mandatory=True)
    assert ch.basic_get(q, auto_ack=True)[2] == b"x" * (16 << 20)
    with amqp.channel_error(406, f"PRECONDITION_FAILED - message size {(16 << 20) + 1} is "
                            f"larger than configured max size {16 << 20}"):
        ch.basic_publish("", q, b"x" * ((16 << 20) + 1), mandatory=True)


@pytest.mark.tern_only
def test_max_message_size(amqp_factory):
    """A body over --max-message-size closes the channel with 406 (RabbitMQ: a channel error;
    the connection stays)."""
    amqp = amqp_factory("--max-message-size", "1024")
    conn = amqp.connect()
    ch = conn.channel()
    q = ch.queue_declare("", exclusive=True).method.queue
    ch.confirm_delivery()
    ch.basic_publish("", q, b"a" * 1024, mandatory=True)  # exactly the limit: fine
    with amqp.channel_error(406, "PRECONDITION_FAILED - message size 1025 is larger than "
                            "configured max size 1024"):
        ch.basic_publish("", q, b"b" * 1025, mandatory=True)
    assert conn.is_open
    ch = conn.channel()
    assert ch.basic_get(q, auto_ack=True)[2] == b"a" * 1024
    assert ch.basic_get(q) == (None, None, None)  # the big one was not enqueued


@pytest.mark.tern_only
def test_frame_max_splits_bodies(amqp_factory):
    amqp = amqp_factory("--frame-max", "4096", "--max-message-size", "100000")
    conn = amqp.connect()
    assert tune(conn)[1] == 4096
    ch = conn.channel()
    q = ch.queue_declare("", exclusive=True).method.queue
    ch.confirm_delivery()
    body = bytes(range(256)) * 390  # 99840 bytes: 25 body frames
    ch.basic_publish("", q, body, mandatory=True,
                     properties=pika.BasicProperties(headers={"h": "x" * 1000}))
    method, props, got = ch.basic_get(q, auto_ack=True)
    assert got == body and props.headers == {"h": "x" * 1000}


@pytest.mark.tern_only
def test_channel_max(amqp_factory):
    amqp = amqp_factory("--channel-max", "3")
    conn = amqp.connect()
    assert tune(conn)[0] == 3
    channels = [conn.channel() for _ in range(3)]
    assert [c.channel_number for c in channels] == [1, 2, 3]
    with pytest.raises(pika.exceptions.NoFreeChannels):  # pika knows the limit too
        conn.channel()
    # Past pika's check: a 4th channel is a connection error.
    with amqp.connection_error(530, "NOT_ALLOWED - "):
        conn.channel(channel_number=4)
    assert not conn.is_open
    # Closing one frees a slot.
    conn = amqp.connect()
    channels = [conn.channel() for _ in range(3)]
    channels[1].close()
    assert conn.channel().channel_number == 2


def connect_refused_530(amqp, **kw):
    with pytest.raises(pika.exceptions.AMQPConnectionError) as info:
        amqp.connect(**kw)
    return str(info.value.args[0]) if info.value.args else repr(info.value)


@pytest.mark.tern_only
def test_max_connections(amqp_factory):
    amqp = amqp_factory("--max-connections", "2")
    first, second = amqp.connect(), amqp.connect()
    text = connect_refused_530(amqp)
    assert "(530)" in text and "NOT_ALLOWED - " in text and "connection limit" in text, text
    assert first.is_open and second.is_open
    first.channel().queue_declare("", exclusive=True)  # the admitted ones work
    first.close()
    deadline = time.monotonic() + 5
    while True:  # the broker notices the close a moment later
        try:
            third = amqp.connect()
            break
        except pika.exceptions.AMQPConnectionError:
            assert time.monotonic() < deadline, "no slot after a connection closed"
            time.sleep(0.05)
    assert third.channel().queue_declare("", exclusive=True).method.queue


@pytest.mark.tern_only
def test_default_user(amqp_factory):
    amqp = amqp_factory("--default-user", "admin", "--default-pass", "s3cret")
    conn = amqp.connect(credentials=pika.PlainCredentials("admin", "s3cret"))
    conn.channel().queue_declare("", exclusive=True)
    for user, password in (("guest", "guest"), ("admin", "guest"), ("admin", "")):
        with pytest.raises(pika.exceptions.ProbableAuthenticationError) as info:
            amqp.connect(credentials=pika.PlainCredentials(user, password))
        text = str(info.value.args[0])
        assert "(403)" in text and "ACCESS_REFUSED - Login was refused using authentication " \
            "mechanism PLAIN" in text, text


def non_loopback_address():
    """An IPv4 address of this machine that is not loopback, or None."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("192.0.2.1", 9))  # no packet is sent: only picks the outgoing address
            addr = s.getsockname()[0]
        except OSError:
            return None
    return None if addr.startswith("127.") else addr


@pytest.mark.tern_only
def test_guest_only_from_loopback(amqp_factory):
    """With --bind 0.0.0.0, guest/guest logs in over 127.0.0.1 but not over another address of
    the machine (403), like RabbitMQ's loopback_users default. Skipped without such an
    address."""
    addr = non_loopback_address()
    if addr is None:
        pytest.skip("this machine has no non-loopback IPv4 address")
    amqp = amqp_factory("--bind", "0.0.0.0")
    amqp.connect().channel().queue_declare("", exclusive=True)
    with pytest.raises(pika.exceptions.ProbableAuthenticationError) as info:
        amqp.connect(host=addr)
    text = str(info.value.args[0])
    assert "(403)" in text and "ACCESS_REFUSED - Login was refused" in text, text


@pytest.mark.tern_only
def test_other_default_user_from_anywhere(amqp_factory):
    """Only the user named guest is loopback-only: another default user may log in over a
    non-loopback address."""
    addr = non_loopback_address()
    if addr is None:
        pytest.skip("this machine has no non-loopback IPv4 address")
    amqp = amqp_factory("--bind", "0.0.0.0", "--default-user", "admin", "--default-pass", "pw")
    conn = amqp.connect(host=addr, credentials=pika.PlainCredentials("admin", "pw"))
    assert conn.channel().queue_declare("", exclusive=True).method.queue


@pytest.mark.tern_only
def test_heartbeat(amqp_factory):
    """--heartbeat 1 is proposed and taken by pika; a client that goes silent (pika sends
    heartbeats only while it processes events) is disconnected after about two intervals;
    one that turned heartbeats off (0) is not."""
    amqp = amqp_factory("--heartbeat", "1")
    silent = amqp.connect()
    assert tune(silent)[2] == 1
    off = amqp.connect(heartbeat=0)
    assert tune(off)[2] == 0
    alive = amqp.connect()
    deadline = time.monotonic() + 4
    while time.monotonic() < deadline:
        alive.process_data_events(0.1)  # answers and sends heartbeats
    with pytest.raises(pika.exceptions.AMQPConnectionError):
        silent.process_data_events(0)
        silent.channel()
    off.channel().queue_declare("", exclusive=True)
    alive.channel().queue_declare("", exclusive=True)


def closed_after(port, send=b"", timeout=10.0):
    """Opens a TCP connection, sends `send`, reads until the server closes it: returns
    (seconds until closed, bytes received)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    start = time.monotonic()
    data = b""
    try:
        if send:
            s.sendall(send)
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    except ConnectionResetError:
        pass
    except socket.timeout:
        pytest.fail(f"connection still open after {timeout}s")
    finally:
        s.close()
    return time.monotonic() - start, data


@pytest.mark.tern_only
def test_handshake_timeout(amqp_factory):
    amqp = amqp_factory("--handshake-timeout-ms", "1000")
    took, data = closed_after(amqp.port)
    assert 0.8 <= took <= 4, took
    assert data == b""
    # After the protocol header the server sends connection.start, then gives up the same way.
    took, data = closed_after(amqp.port, b"AMQP\x00\x00\x09\x01")
    assert 0.8 <= took <= 4, took
    assert data[:7] == b"\x01\x00\x00" + data[3:7] and data[7:11] == b"\x00\x0a\x00\x0a"
    # A client that completes the handshake in time is not affected.
    conn = amqp.connect()
    time.sleep(1.5)
    conn.channel().queue_declare("", exclusive=True)
