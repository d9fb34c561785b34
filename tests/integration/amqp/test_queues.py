"""Queues: durable and transient, exclusive, auto-delete, server-named, passive declare with its
counts, declare equivalence, purge, delete with if-unused / if-empty.

Survival of durable queues across a restart is in test_persistence.py.
"""

import time

import pika
import pytest

from amqphelp import counts, exists, fill, pump, settle, wait_counts


def declared(amqp, prefix, **kw):
    """A new connection, a channel on it and a queue <prefix>-<id> declared there with kw:
    (conn, ch, queue)."""
    conn = amqp.connect()
    ch = conn.channel()
    q = amqp.name(prefix)
    ch.queue_declare(q, **kw)
    return conn, ch, q


def wait_gone(amqp, queue, timeout=5.0):
    """Polls with passive declares until queue is gone (404); fails after timeout. An exclusive
    queue of another connection answers 405 while it exists."""
    conn = amqp.connect()
    deadline = time.monotonic() + timeout
    while True:
        ch = conn.channel()
        try:
            ch.queue_declare(queue, passive=True)
            ch.close()
        except pika.exceptions.ChannelClosedByBroker as e:
            if e.reply_code == 404:
                assert e.reply_text == f"NOT_FOUND - no queue '{queue}' in vhost '/'"
                return
            assert e.reply_code == 405, e
        assert time.monotonic() < deadline, f"queue {queue} still exists"
        time.sleep(0.05)


def test_transient_queue_declare_ok_fields(amqp):
    ch = amqp.channel()
    q = amqp.name("q")
    ok = ch.queue_declare(q).method
    try:
        assert (ok.queue, ok.message_count, ok.consumer_count) == (q, 0, 0)
        fill(ch, q, 2)
        ok = ch.queue_declare(q).method  # a redeclare reports the current counts too
        assert (ok.queue, ok.message_count, ok.consumer_count) == (q, 2, 0)
    finally:
        ch.queue_delete(q)


def test_durable_queue_declare_and_equivalent_redeclare(amqp):
    ch = amqp.channel()
    q = amqp.name("q-durable")
    ch.queue_declare(q, durable=True)
    try:
        ch.queue_declare(q, durable=True)
        assert counts(ch, q) == (0, 0)
    finally:
        ch.queue_delete(q)


@pytest.mark.parametrize("first,second,arg,received,current", [
    ({"durable": False}, {"durable": True}, "durable", "true", "false"),
    ({"durable": True}, {"durable": False}, "durable", "false", "true"),
    ({"auto_delete": False}, {"auto_delete": True}, "auto_delete", "true", "false"),
])
def test_declare_equivalence(amqp, first, second, arg, received, current):
    ch = amqp.channel()
    q = amqp.name("q-equiv")
    ch.queue_declare(q, **first)
    try:
        with amqp.channel_error(406, f"PRECONDITION_FAILED - inequivalent arg '{arg}' for queue "
                                f"'{q}' in vhost '/': received '{received}' but current is "
                                f"'{current}'"):
            ch.queue_declare(q, **second)
        assert exists(amqp.connect(), q)  # the failed redeclare changed nothing
    finally:
        amqp.channel().queue_delete(q)


def test_declare_equivalence_of_arguments(amqp):
    ch = amqp.channel()
    q = amqp.name("q-args")
    ch.queue_declare(q, arguments={"x-max-length": 10})
    try:
        ch.queue_declare(q, arguments={"x-max-length": 10})
        with amqp.channel_error(406, "PRECONDITION_FAILED - inequivalent arg 'x-max-length' for "
                                f"queue '{q}' in vhost '/'"):
            ch.queue_declare(q, arguments={"x-max-length": 20})
    finally:
        amqp.channel().queue_delete(q)


def test_passive_declare_missing(amqp):
    ch = amqp.channel()
    q = amqp.name("q-missing")
    with amqp.channel_error(404, f"NOT_FOUND - no queue '{q}' in vhost '/'"):
        ch.queue_declare(q, passive=True)


def test_passive_declare_counts_ready_messages_and_consumers(conn, queue):
    ch = conn.channel()
    fill(ch, queue, 3)
    assert counts(ch, queue) == (3, 0)
    cons = conn.channel()
    cons.basic_qos(prefetch_count=1)
    got = []
    cons.basic_consume(queue, lambda c, m, p, b: got.append(m.delivery_tag))
    cons.basic_consume(queue, lambda c, m, p, b: got.append(m.delivery_tag))
    pump(conn, lambda: len(got) >= 2)
    settle(conn, 0.2)  # a third delivery would have come by now
    # Prefetch 1 for each consumer on the channel: one message each is unacked, one is ready.
    assert len(got) == 2
    wait_counts(ch, queue, (1, 2))


def test_exclusive_queue_locked_to_its_connection(amqp):
    owner, _, q = declared(amqp, "q-excl", exclusive=True)
    other = amqp.connect()
    lock = (f"RESOURCE_LOCKED - cannot obtain exclusive access to locked queue '{q}' in "
            "vhost '/'")
    with amqp.channel_error(405, lock):
        other.channel().queue_declare(q, exclusive=True)
    with amqp.channel_error(405, lock):
        other.channel().queue_declare(q)
    with amqp.channel_error(405, lock):
        other.channel().basic_consume(q, lambda *a: None)
    with amqp.channel_error(405, lock):
        other.channel().basic_get(q)
    with amqp.channel_error(405, lock):
        other.channel().queue_delete(q)
    # Publishing to it from elsewhere is allowed.
    pub = other.channel()
    pub.confirm_delivery()
    pub.basic_publish("", q, b"from-other", mandatory=True)
    assert owner.channel().basic_get(q, auto_ack=True)[2] == b"from-other"
    assert other.is_open  # channel errors only


def test_exclusive_queue_deleted_when_connection_closes(amqp):
    owner, _, q = declared(amqp, "q-excl", exclusive=True, durable=False)
    assert exists(owner, q)
    # Another connection cannot even look at it (passive declare -> 405).
    with amqp.channel_error(405, "RESOURCE_LOCKED - cannot obtain exclusive access to locked "
                            f"queue '{q}' in vhost '/'"):
        amqp.connect().channel().queue_declare(q, passive=True)
    owner.close()
    wait_gone(amqp, q)


def test_exclusive_queue_outlives_its_channel(amqp):
    owner, ch, q = declared(amqp, "q-excl", exclusive=True)
    ch.close()
    assert counts(owner.channel(), q) == (0, 0)


def test_auto_delete_queue_not_deleted_before_first_consumer(amqp):
    ch = amqp.channel()
    q = amqp.name("q-auto")
    ch.queue_declare(q, auto_delete=True)
    fill(ch, q, 1)
    assert ch.basic_get(q, auto_ack=True)[2] == b"m0"  # a get is not a consumer
    time.sleep(0.2)
    assert counts(ch, q) == (0, 0)
    ch.queue_delete(q)


def test_auto_delete_queue_deleted_after_last_consumer_cancels(amqp):
    conn, ch, q = declared(amqp, "q-auto", auto_delete=True)
    t1 = ch.basic_consume(q, lambda *a: None)
    t2 = ch.basic_consume(q, lambda *a: None)
    ch.basic_cancel(t1)
    assert counts(conn.channel(), q) == (0, 1)
    ch.basic_cancel(t2)
    wait_gone(amqp, q)


def test_auto_delete_queue_deleted_when_consumer_channel_closes(amqp):
    _, ch, q = declared(amqp, "q-auto", auto_delete=True)
    ch.basic_consume(q, lambda *a: None)
    ch.close()
    wait_gone(amqp, q)


def test_server_named_queue(amqp):
    conn = amqp.connect()
    ch = conn.channel()
    ok = ch.queue_declare("", exclusive=True).method
    q = ok.queue
    assert q.startswith("amq.gen-") and len(q) > len("amq.gen-")
    assert (ok.message_count, ok.consumer_count) == (0, 0)
    q2 = ch.queue_declare("", exclusive=True).method.queue
    assert q2 != q and q2.startswith("amq.gen-")


def test_empty_queue_name_means_last_declared_on_channel(amqp):
    conn = amqp.connect()
    ch = conn.channel()
    ch.confirm_delivery()
    x = amqp.name("x")
    ch.exchange_declare(x, "fanout", auto_delete=True)
    first = ch.queue_declare("", exclusive=True).method.queue
    q = ch.queue_declare("", exclusive=True).method.queue
    ch.queue_bind("", x, routing_key="")  # binds q
    ch.basic_publish(x, "", b"1", mandatory=True)
    ch.basic_publish(x, "", b"2", mandatory=True)
    assert ch.queue_purge("").method.message_count == 2  # purges q
    ch.basic_publish(x, "", b"3", mandatory=True)
    assert ch.basic_get("", auto_ack=True)[2] == b"3"
    assert counts(conn.channel(), first) == (0, 0)
    # Other channels have their own "last declared queue".
    other = conn.channel()
    with amqp.channel_error(404, "NOT_FOUND - no previously declared queue"):
        other.basic_get("")
    assert ch.queue_delete("").method.message_count == 0
    assert not exists(conn, q)
    assert exists(conn, first)
    # A passive declare sets the channel's last declared queue too.
    ch.queue_declare(first, passive=True)
    ch.queue_delete("")
    assert not exists(conn, first)


def test_reserved_queue_prefix(amqp):
    ch = amqp.channel()
    with amqp.channel_error(403, "ACCESS_REFUSED - queue name 'amq.tern-test' contains reserved "
                            "prefix 'amq.*'"):
        ch.queue_declare("amq.tern-test")


def test_purge(amqp, conn, queue):
    ch = conn.channel()
    fill(ch, queue, 5)
    # An unacked message is not purged.
    method, _, _ = ch.basic_get(queue)
    assert ch.queue_purge(queue).method.message_count == 4
    assert ch.queue_purge(queue).method.message_count == 0
    ch.basic_nack(method.delivery_tag, requeue=True)
    wait_counts(ch, queue, (1, 0))
    missing = amqp.name("q-missing")
    with amqp.channel_error(404, f"NOT_FOUND - no queue '{missing}' in vhost '/'"):
        ch.queue_purge(missing)


def test_delete_if_empty(amqp):
    conn, ch, q = declared(amqp, "q-del")
    fill(ch, q, 2)
    with amqp.channel_error(406, f"PRECONDITION_FAILED - queue '{q}' in vhost '/' not empty"):
        ch.queue_delete(q, if_empty=True)
    ch = conn.channel()
    assert counts(ch, q) == (2, 0)
    assert ch.queue_delete(q).method.message_count == 2
    wait_gone(amqp, q)


def test_delete_if_unused(amqp):
    conn, ch, q = declared(amqp, "q-del")
    fill(ch, q, 3)
    cons = conn.channel()
    tag = cons.basic_consume(q, lambda *a: None, auto_ack=True)
    with amqp.channel_error(406, f"PRECONDITION_FAILED - queue '{q}' in vhost '/' in use"):
        conn.channel().queue_delete(q, if_unused=True)
    cons.basic_cancel(tag)
    ch = conn.channel()
    ch.queue_declare(q)
    fill(ch, q, 2)
    assert ch.queue_delete(q, if_unused=True, if_empty=False).method.message_count == 2
    wait_gone(amqp, q)


def test_delete_counts_ready_messages_and_missing_delete_is_ok(amqp):
    ch = amqp.channel()
    q = amqp.name("q-del")
    ch.queue_declare(q)
    fill(ch, q, 7)
    assert ch.queue_delete(q).method.message_count == 7
    # Deleting a missing queue succeeds with a count of 0 (idempotent).
    assert ch.queue_delete(q).method.message_count == 0
