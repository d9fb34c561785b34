"""Delivery: consumers (manual ack, no-ack, exclusive, consumer tags, cancel), basic.get,
ack / nack / reject with multiple and requeue, the redelivered flag, delivery-tag errors,
prefetch (per consumer and per channel), basic.recover, requeue order when a channel or
connection closes, and mandatory returns ordered before the publisher confirm.
"""

import pika
import pytest

from amqphelp import (bodies_redelivered, counts, fill, get_unacked, pump, roundtrip, settle,
                      wait_counts)


def recorder():
    """A consumer callback that records (body, method) and a list to read them from."""
    got = []

    def on_message(_ch, method, _props, body):
        got.append((body, method))

    return got, on_message


def consume(ch, queue, **kw):
    """A consumer of queue on ch (kw as for basic_consume) with a recorder(): (tag, got)."""
    got, cb = recorder()
    return ch.basic_consume(queue, cb, **kw), got


def recorders(ch, queue, n):
    """n consumers of queue on ch, each with a recorder(): [got]."""
    return [consume(ch, queue)[1] for _ in range(n)]


def consume_filled(conn, queue, n, **kw):
    """Fills queue with m0..m<n-1> and consumes it on a new channel of conn (kw as for
    basic_consume) with a recorder(), until all n have come: (ch, consumer tag, got)."""
    ch = conn.channel()
    fill(ch, queue, n)
    tag, got = consume(ch, queue, **kw)
    pump(conn, lambda: len(got) == n)
    return ch, tag, got


def test_consume_manual_ack(conn, queue):
    ch, tag, got = consume_filled(conn, queue, 3)
    assert [b for b, _ in got] == [b"m0", b"m1", b"m2"]
    assert [m.delivery_tag for _, m in got] == [1, 2, 3]
    assert {m.consumer_tag for _, m in got} == {tag}
    assert all(not m.redelivered and m.routing_key == queue and m.exchange == "" for _, m in got)
    for _, m in got:
        ch.basic_ack(m.delivery_tag)
    ch.basic_cancel(tag)
    assert bodies_redelivered(ch, queue) == []


def test_consume_no_ack(conn, queue):
    ch, tag, _ = consume_filled(conn, queue, 4, auto_ack=True)
    ch.basic_cancel(tag)
    ch.close()  # nothing was unacked: nothing comes back
    assert bodies_redelivered(conn.channel(), queue) == []


def test_unacked_come_back_redelivered_after_cancel_and_close(conn, queue):
    ch, tag, _ = consume_filled(conn, queue, 2)
    ch.basic_cancel(tag)  # cancel does not requeue: still unacked on ch
    settle(conn, 0.1)
    assert counts(conn.channel(), queue)[0] == 0
    ch.close()
    assert bodies_redelivered(conn.channel(), queue) == [(b"m0", True), (b"m1", True)]


def test_client_consumer_tag(conn, queue):
    ch = conn.channel()
    assert ch.basic_consume(queue, lambda *a: None, consumer_tag="my-tag") == "my-tag"
    assert counts(conn.channel(), queue)[1] == 1


def test_server_generated_consumer_tags(amqp):
    """pika always makes up a tag itself: basic.consume with an empty tag is sent by hand on a
    SelectConnection so the broker generates one."""
    tags = []

    def on_channel(ch, done):
        def consume(frame):
            for _ in range(2):
                ch._rpc(pika.spec.Basic.Consume(queue=frame.method.queue, consumer_tag=""),
                        on_ok, [pika.spec.Basic.ConsumeOk])

        def on_ok(frame):
            tags.append(frame.method.consumer_tag)
            if len(tags) == 2:
                done()

        ch.queue_declare("", exclusive=True, callback=consume)

    amqp.run_select(on_channel)
    assert all(t.startswith("amq.ctag-") and len(t) > len("amq.ctag-") for t in tags), tags
    assert tags[0] != tags[1]


def test_basic_cancel_stops_deliveries(conn, queue):
    ch = conn.channel()
    tag, got = consume(ch, queue, auto_ack=True)
    fill(ch, queue, 1, "before")
    pump(conn, lambda: len(got) == 1)
    assert ch.basic_cancel(tag) == []
    fill(ch, queue, 1, "after")
    settle(conn, 0.2)
    assert [b for b, _ in got] == [b"before0"]
    assert bodies_redelivered(ch, queue) == [(b"after0", False)]
    assert counts(conn.channel(), queue)[1] == 0


def test_cancel_unknown_consumer_tag_is_ok(conn):
    ch = conn.channel()
    ch._impl.basic_cancel("no-such-tag")  # spec: not an error
    roundtrip(ch)  # the channel is still open
    assert ch.is_open


def test_exclusive_consumer(amqp, conn, queue):
    ch = conn.channel()
    ch.basic_consume(queue, lambda *a: None, exclusive=True)
    text = f"ACCESS_REFUSED - queue '{queue}' in vhost '/' in exclusive use"
    with amqp.channel_error(403, text):
        conn.channel().basic_consume(queue, lambda *a: None)
    with amqp.channel_error(403, text):
        conn.channel().basic_consume(queue, lambda *a: None, exclusive=True)
    assert conn.is_open


def test_exclusive_consume_refused_when_queue_has_a_consumer(amqp, conn, queue):
    conn.channel().basic_consume(queue, lambda *a: None)
    with amqp.channel_error(403, f"ACCESS_REFUSED - queue '{queue}' in vhost '/' in exclusive "
                            "use"):
        conn.channel().basic_consume(queue, lambda *a: None, exclusive=True)


def test_basic_get_and_get_empty(conn, queue):
    ch = conn.channel()
    assert ch.basic_get(queue) == (None, None, None)
    fill(ch, queue, 3)
    method, props, body = ch.basic_get(queue)
    assert isinstance(method, pika.spec.Basic.GetOk)
    assert (body, method.message_count, method.redelivered) == (b"m0", 2, False)
    assert (method.exchange, method.routing_key, method.delivery_tag) == ("", queue, 1)
    method2, _, body2 = ch.basic_get(queue, auto_ack=True)
    assert (body2, method2.message_count, method2.delivery_tag) == (b"m1", 1, 2)
    ch.basic_ack(method.delivery_tag)
    assert bodies_redelivered(ch, queue) == [(b"m2", False)]
    assert ch.basic_get(queue) == (None, None, None)


def test_redelivered_flag_after_reject_requeue(conn, queue):
    ch = conn.channel()
    fill(ch, queue, 1)
    method, _, _ = ch.basic_get(queue)
    assert not method.redelivered
    ch.basic_reject(method.delivery_tag, requeue=True)
    method, _, body = ch.basic_get(queue)
    assert (body, method.redelivered) == (b"m0", True)
    ch.basic_ack(method.delivery_tag)


def tags_for(ch, queue, n):
    """basic.get n messages without acking: [delivery_tag]."""
    return [method.delivery_tag for method, _ in get_unacked(ch, queue, n)]


def test_ack_multiple(conn, queue):
    ch = conn.channel()
    fill(ch, queue, 5)
    assert tags_for(ch, queue, 5) == [1, 2, 3, 4, 5]
    ch.basic_ack(3, multiple=True)  # 1, 2, 3
    ch.basic_nack(0, multiple=True, requeue=True)  # tag 0 + multiple: everything left
    assert bodies_redelivered(ch, queue) == [(b"m3", True), (b"m4", True)]


def test_ack_zero_multiple_acks_all_outstanding(conn, queue):
    ch = conn.channel()
    fill(ch, queue, 3)
    tags_for(ch, queue, 3)
    ch.basic_ack(0, multiple=True)
    ch.close()
    assert bodies_redelivered(conn.channel(), queue) == []


def test_nack_multiple_requeue_false_drops(conn, queue):
    ch = conn.channel()
    fill(ch, queue, 5)
    tags_for(ch, queue, 5)
    ch.basic_nack(3, multiple=True, requeue=False)  # m0..m2 dropped
    ch.basic_reject(4, requeue=True)  # m3 back
    ch.basic_ack(5)  # m4 done
    assert bodies_redelivered(ch, queue) == [(b"m3", True)]


def test_nack_single_and_reject_without_requeue(conn, queue):
    ch = conn.channel()
    fill(ch, queue, 4)
    tags_for(ch, queue, 4)
    ch.basic_nack(2, multiple=False, requeue=True)  # m1 back
    ch.basic_reject(3, requeue=False)  # m2 dropped
    ch.basic_nack(1, requeue=False)  # m0 dropped
    ch.close()  # m3 still unacked: requeued
    assert bodies_redelivered(conn.channel(), queue) == [(b"m1", True), (b"m3", True)]


def expect_after_async(amqp, ch, code, text):
    """ack / nack / reject have no reply: a channel error shows on the next round trip."""
    with amqp.channel_error(code, text):
        roundtrip(ch)


@pytest.mark.parametrize("settle_fn", ["ack", "nack", "reject"])
def test_unknown_delivery_tag(amqp, conn, queue, settle_fn):
    ch = conn.channel()
    fill(ch, queue, 1)
    tags_for(ch, queue, 1)
    getattr(ch, f"basic_{settle_fn}")(99)
    expect_after_async(amqp, ch, 406, "PRECONDITION_FAILED - unknown delivery tag 99")
    assert conn.is_open
    # The channel closed: its unacked message went back.
    assert bodies_redelivered(conn.channel(), queue) == [(b"m0", True)]


def test_double_ack(amqp, conn, queue):
    ch = conn.channel()
    fill(ch, queue, 1)
    tags_for(ch, queue, 1)
    ch.basic_ack(1)
    ch.basic_ack(1)
    expect_after_async(amqp, ch, 406, "PRECONDITION_FAILED - unknown delivery tag 1")
    assert bodies_redelivered(conn.channel(), queue) == []  # the first ack stuck


def test_ack_zero_without_multiple_is_unknown(amqp, conn):
    ch = conn.channel()
    ch.basic_ack(0)
    expect_after_async(amqp, ch, 406, "PRECONDITION_FAILED - unknown delivery tag 0")


def test_ack_of_no_ack_delivery_is_unknown(amqp, conn, queue):
    ch = conn.channel()
    fill(ch, queue, 1)
    method, _, _ = ch.basic_get(queue, auto_ack=True)
    ch.basic_ack(method.delivery_tag)
    expect_after_async(amqp, ch, 406, f"PRECONDITION_FAILED - unknown delivery tag "
                       f"{method.delivery_tag}")


def test_delivery_tags_are_per_channel(conn, queue):
    fill(conn.channel(), queue, 2)
    a, b = conn.channel(), conn.channel()
    assert tags_for(a, queue, 1) == [1]
    assert tags_for(b, queue, 1) == [1]
    a.basic_ack(1)
    b.basic_ack(1)
    assert bodies_redelivered(conn.channel(), queue) == []


def test_prefetch_per_consumer(conn, queue):
    ch = conn.channel()
    fill(ch, queue, 10)
    ch.basic_qos(prefetch_count=2, global_qos=False)
    got1, got2 = recorders(ch, queue, 2)
    pump(conn, lambda: len(got1) == 2 and len(got2) == 2)
    settle(conn)
    assert (len(got1), len(got2)) == (2, 2)
    ch.basic_ack(got1[0][1].delivery_tag)  # one slot frees for consumer 1 only
    pump(conn, lambda: len(got1) == 3)
    settle(conn)
    assert (len(got1), len(got2)) == (3, 2)
    assert sorted(b for b, _ in got1 + got2) == [b"m0", b"m1", b"m2", b"m3", b"m4"]


def test_prefetch_global_per_channel(conn, queue):
    ch = conn.channel()
    fill(ch, queue, 10)
    ch.basic_qos(prefetch_count=3, global_qos=True)
    got1, got2 = recorders(ch, queue, 2)
    pump(conn, lambda: len(got1) + len(got2) == 3)
    settle(conn)
    assert len(got1) + len(got2) == 3
    first = (got1 + got2)[0][1].delivery_tag
    ch.basic_ack(first)
    pump(conn, lambda: len(got1) + len(got2) == 4)
    settle(conn)
    assert len(got1) + len(got2) == 4


def test_prefetch_global_and_per_consumer_together(conn, queue):
    ch = conn.channel()
    fill(ch, queue, 10)
    # This order: RabbitMQ 3.10 ignores the channel limit when the per-consumer qos comes
    # after the global one (4 deliveries then).
    ch.basic_qos(prefetch_count=1, global_qos=False)
    ch.basic_qos(prefetch_count=3, global_qos=True)
    got = recorders(ch, queue, 4)
    pump(conn, lambda: sum(len(g) for g in got) == 3)
    settle(conn)
    assert sorted(len(g) for g in got) == [0, 1, 1, 1]


def test_prefetch_zero_is_unlimited(conn, queue):
    ch = conn.channel()
    fill(ch, queue, 20)
    ch.basic_qos(prefetch_count=0)
    _, got = consume(ch, queue)
    pump(conn, lambda: len(got) == 20)


def test_prefetch_does_not_limit_basic_get(conn, queue):
    ch = conn.channel()
    fill(ch, queue, 3)
    ch.basic_qos(prefetch_count=1, global_qos=True)
    assert tags_for(ch, queue, 3) == [1, 2, 3]


def test_basic_recover_requeue(conn, queue):
    ch, _, got = consume_filled(conn, queue, 3)
    ch.basic_ack(got[1][1].delivery_tag)
    ch.basic_recover(requeue=True)
    pump(conn, lambda: len(got) == 5)
    settle(conn)
    again = got[3:]
    assert [(b, m.redelivered) for b, m in again] == [(b"m0", True), (b"m2", True)]
    assert [m.delivery_tag for _, m in again] == [4, 5]  # new tags on the same channel
    for _, m in again:
        ch.basic_ack(m.delivery_tag)
    ch.close()
    assert bodies_redelivered(conn.channel(), queue) == []


def test_basic_recover_without_requeue_not_implemented(amqp, conn, queue):
    ch = conn.channel()
    with amqp.connection_error(540, "NOT_IMPLEMENTED - requeue=false"):
        ch.basic_recover(requeue=False)


@pytest.mark.parametrize("close", ["channel", "connection"])
def test_unacked_requeued_in_original_order(amqp, queue, conn, close):
    # The consumer runs on its own connection (the queue's owner must stay to read it back),
    # except for the "channel" case where both are on conn.
    cons_conn = conn if close == "channel" else amqp.connect()
    q = queue
    if close == "connection":
        q = conn.channel().queue_declare(amqp.name("q-order"), auto_delete=False).method.queue
    ch = cons_conn.channel()
    fill(conn.channel(), q, 6)
    tag, got = consume(ch, q)
    pump(cons_conn, lambda: len(got) == 6)
    ch.basic_ack(got[1][1].delivery_tag)
    ch.basic_ack(got[4][1].delivery_tag)
    ch.basic_cancel(tag)  # keeps the unacked ones unacked
    fill(conn.channel(), q, 1, "late")  # published after the deliveries: behind them
    if close == "channel":
        ch.close()
    else:
        cons_conn.close()
    reader = conn.channel()
    wait_counts(reader, q, (5, 0))
    assert bodies_redelivered(reader, q) == [(b"m0", True), (b"m2", True), (b"m3", True), (b"m5", True),
                                  (b"late0", False)]
    if close == "connection":
        reader.queue_delete(q)


def test_mandatory_return_precedes_confirm(amqp):
    """basic.return (312 NO_ROUTE) for an unroutable mandatory publish arrives before the
    basic.ack for it; a routable one and an unroutable non-mandatory one are only acked.
    Observed on a SelectConnection."""
    events, acked = [], set()
    x = amqp.name("x")

    def on_channel(ch, done):
        ch.add_on_return_callback(
            lambda _ch, method, props, body: events.append(
                ("return", method.reply_code, method.reply_text, method.exchange,
                 method.routing_key, body)))

        def on_confirm(frame):
            events.append(("ack" if isinstance(frame.method, pika.spec.Basic.Ack) else "nack",
                           frame.method.delivery_tag, frame.method.multiple))
            m = frame.method
            acked.update(t for t in (1, 2, 3) if t == m.delivery_tag
                         or (m.multiple and t <= m.delivery_tag))
            if acked == {1, 2, 3}:
                done()

        def publish(_frame=None):
            ch.basic_publish(x, "nowhere", b"lost", mandatory=True)
            ch.basic_publish(x, "bound", b"kept", mandatory=True)
            ch.basic_publish(x, "nowhere", b"also-lost", mandatory=False)

        def bound(_frame):
            ch.confirm_delivery(on_confirm, callback=publish)

        def declared(frame):
            ch.queue_bind(frame.method.queue, x, routing_key="bound", callback=bound)

        ch.exchange_declare(x, "direct", auto_delete=True,
                            callback=lambda _f: ch.queue_declare("", exclusive=True,
                                                                 callback=declared))

    amqp.run_select(on_channel)
    # RabbitMQ 3.10 may ack 3 (unroutable, not mandatory: confirmed at once) before 2
    # (confirmed when the queue has it): confirms need not be in order.
    assert events[0] == ("return", 312, "NO_ROUTE", x, "nowhere", b"lost"), events
    assert [e[0] for e in events[1:]] == ["ack"] * (len(events) - 1), events
    assert acked == {1, 2, 3}


def test_mandatory_return_without_confirms(amqp, conn):
    ch = conn.channel()
    returned = []
    ch.add_on_return_callback(lambda _c, m, p, b: returned.append((m.reply_code, m.reply_text,
                                                                   b)))
    ch.basic_publish("amq.direct", amqp.name("nobody"), b"r", mandatory=True,
                     properties=pika.BasicProperties(message_id="id-1"))
    pump(conn, lambda: returned)
    assert returned == [(312, "NO_ROUTE", b"r")]
