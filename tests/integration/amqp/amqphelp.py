"""Helpers shared by the pika tests (test_*.py here): publishing with confirms, reading a queue
empty, its counts, round trips and event loops. Imported as `from amqphelp import ...` (the
fixtures conn and queue are in conftest.py).

    ch = confirmed_channel(amqp)                  # a confirm channel on a new connection
    fill(ch, q, 3)                                # m0 m1 m2, confirmed, on a channel of its own
    assert bodies(ch, q) == [b"m0", b"m1", b"m2"] # basic.get (auto-ack) until empty
    pump(conn, lambda: len(got) == 3)             # process events until true (or fail)
    settle(conn)                                  # ... for a while: nothing more came
"""

import time

import pika.exceptions


def confirmed_channel(amqp):
    """A channel in confirm mode on a new connection: a basic_publish returns once the broker
    has the message (pika raises UnroutableError for a mandatory one it returned)."""
    ch = amqp.connect().channel()
    ch.confirm_delivery()
    return ch


def fill(ch, queue, n, prefix="m"):
    """Publishes n messages <prefix>0..<prefix><n-1> to queue through the default exchange, with
    confirms on a channel of its own on ch's connection (so ch stays a plain channel and may
    fill an exclusive queue of that connection)."""
    pub = ch.connection.channel()
    pub.confirm_delivery()
    for i in range(n):
        pub.basic_publish("", queue, f"{prefix}{i}".encode(), mandatory=True)
    pub.close()


def roundtrip(ch):
    """A synchronous method: an asynchronous channel error (after a publish, ack, nack or
    reject, which have no reply) shows now, and what was sent before has arrived."""
    ch.basic_qos(prefetch_count=0)


def drain(ch, queue):
    """basic.get (auto-ack) until the queue is empty: [(method, properties, body)]."""
    out = []
    while True:
        method, props, body = ch.basic_get(queue, auto_ack=True)
        if method is None:
            return out
        out.append((method, props, body))


def bodies(ch, queue):
    """drain(), the bodies only: [body]."""
    return [body for _, _, body in drain(ch, queue)]


def bodies_redelivered(ch, queue):
    """drain(), as [(body, redelivered)]."""
    return [(body, method.redelivered) for method, _, body in drain(ch, queue)]


def counts(ch, queue):
    """(message_count, consumer_count) of a passive declare: ready messages and consumers."""
    ok = ch.queue_declare(queue, passive=True).method
    return ok.message_count, ok.consumer_count


def wait_counts(ch, queue, expected, timeout=5.0):
    """Polls counts() until it equals expected, then asserts it does: RabbitMQ applies a nack's
    or a closed channel's requeue after it answers a later passive declare."""
    deadline = time.monotonic() + timeout
    while counts(ch, queue) != expected and time.monotonic() < deadline:
        time.sleep(0.02)
    assert counts(ch, queue) == expected


def exists(conn, name, kind="queue"):
    """Whether the queue (kind "queue") or exchange (kind "exchange") exists: a passive declare
    on a new channel of conn (which must own an exclusive queue) answers it or 404."""
    ch = conn.channel()
    try:
        if kind == "queue":
            ch.queue_declare(name, passive=True)
        else:
            ch.exchange_declare(name, "direct", passive=True)
    except pika.exceptions.ChannelClosedByBroker as e:
        assert e.reply_code == 404, e
        return False
    ch.close()
    return True


def _connections(conns):
    return conns if isinstance(conns, (list, tuple)) else [conns]


def pump(conns, until, timeout=5.0):
    """Processes the events of conns (a BlockingConnection or a list of them, in turn) until
    until() is true; fails after timeout."""
    conns = _connections(conns)
    deadline = time.monotonic() + timeout
    while not until():
        assert time.monotonic() < deadline, "timed out waiting for deliveries"
        for c in conns:
            c.process_data_events(0.01)


def settle(conns, seconds=0.3):
    """Processes the events of conns for a while: deliveries that were going to come have
    come."""
    conns = _connections(conns)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        for c in conns:
            c.process_data_events(0.01)


def get_unacked(ch, queue, n):
    """basic.get n messages on ch without acking them (each must be there): [(method, body)]."""
    got = []
    for _ in range(n):
        method, _, body = ch.basic_get(queue)
        assert method is not None
        got.append((method, body))
    return got
