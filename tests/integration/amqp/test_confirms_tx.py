"""Publisher confirms and transactions: confirm.select, many confirmed publishes, multiple acks
(seen on a SelectConnection: BlockingChannel waits for each confirm), tx.select / commit /
rollback of publishes and acks, and the two modes refusing each other.
"""

import time

import pika

from amqphelp import bodies, counts, roundtrip


def ready(ch, queue):
    """The queue's ready messages."""
    return counts(ch, queue)[0]


def assert_mode_switch_refused(amqp, conn, first, second, text):
    """A channel put in one mode by first(ch) refuses the other, second(ch), with 406 text; the
    connection stays open."""
    ch = conn.channel()
    first(ch)
    with amqp.channel_error(406, text):
        second(ch)
    assert conn.is_open


def test_confirm_many_blocking(conn, queue):
    ch = conn.channel()
    ch.confirm_delivery()
    for i in range(500):
        ch.basic_publish("", queue, f"c{i}".encode(), mandatory=True)
    reader = conn.channel()
    assert ready(reader, queue) == 500
    assert bodies(reader, queue) == [f"c{i}".encode() for i in range(500)]


def test_confirm_select_is_idempotent(conn, queue):
    ch = conn.channel()
    ch.confirm_delivery()
    ch._impl.confirm_delivery(lambda *a: None)  # a second confirm.select is allowed
    roundtrip(ch)  # still open
    ch.basic_publish("", queue, b"after-second-select")
    assert bodies(conn.channel(), queue) == [b"after-second-select"]


def test_multiple_acks_cover_every_tag_once(amqp):
    """Publishes N messages as fast as possible and records every basic.ack: the tags start at
    1, each of 1..N is covered exactly once (a multiple ack covers every unconfirmed tag up to
    its own), no nacks, and the broker coalesced at least some acks with multiple=True."""
    n = 3000
    acks = []
    state = {"covered": set(), "queue": None}

    def on_channel(ch, done):
        def on_confirm(frame):
            m = frame.method
            assert isinstance(m, pika.spec.Basic.Ack), m
            acks.append((m.delivery_tag, m.multiple))
            new = ({t for t in range(1, m.delivery_tag + 1) if t not in state["covered"]}
                   if m.multiple else {m.delivery_tag})
            assert new, f"ack {m} confirms nothing new"
            assert not (new & state["covered"])
            state["covered"] |= new
            if len(state["covered"]) == n:
                done()

        def publish(_frame):
            for i in range(n):
                ch.basic_publish("", state["queue"], b"%d" % i)

        def declared(frame):
            state["queue"] = frame.method.queue
            ch.confirm_delivery(on_confirm, callback=publish)

        ch.queue_declare("", exclusive=True, callback=declared)

    amqp.run_select(on_channel, timeout=30)
    assert state["covered"] == set(range(1, n + 1))
    assert any(multiple for _, multiple in acks), "no multiple ack among %d acks" % len(acks)
    assert len(acks) < n


def test_tx_commit_publishes(conn, queue):
    ch = conn.channel()
    ch.tx_select()
    for i in range(3):
        ch.basic_publish("", queue, f"t{i}".encode())
    observer = conn.channel()
    time.sleep(0.1)
    assert ready(observer, queue) == 0  # invisible until commit
    assert observer.basic_get(queue) == (None, None, None)
    ch.tx_commit()
    assert ready(observer, queue) == 3
    assert bodies(observer, queue) == [b"t0", b"t1", b"t2"]


def test_tx_is_a_channel_mode_commit_starts_the_next(conn, queue):
    ch = conn.channel()
    ch.tx_select()
    ch.basic_publish("", queue, b"first")
    ch.tx_commit()
    ch.basic_publish("", queue, b"second")  # in a new transaction
    observer = conn.channel()
    time.sleep(0.1)
    assert bodies(observer, queue) == [b"first"]
    ch.tx_commit()
    assert bodies(observer, queue) == [b"second"]


def test_tx_rollback_discards_publishes(conn, queue):
    ch = conn.channel()
    ch.tx_select()
    ch.basic_publish("", queue, b"discarded")
    ch.tx_rollback()
    ch.basic_publish("", queue, b"kept")
    ch.tx_commit()
    assert bodies(conn.channel(), queue) == [b"kept"]


def test_tx_rollback_discards_acks(conn, queue):
    pub = conn.channel()
    pub.confirm_delivery()
    for body in (b"a", b"b"):
        pub.basic_publish("", queue, body)
    ch = conn.channel()
    ch.tx_select()
    m1, _, _ = ch.basic_get(queue)
    m2, _, _ = ch.basic_get(queue)
    ch.basic_ack(m1.delivery_tag)
    ch.basic_ack(m2.delivery_tag)
    ch.tx_rollback()
    # The acks are forgotten: both messages are still unacked on ch (not requeued).
    assert ready(pub, queue) == 0
    ch.basic_ack(m2.delivery_tag)  # the tags are still valid
    ch.tx_commit()
    ch.close()  # a is unacked: back to the queue
    assert bodies(conn.channel(), queue) == [b"a"]


def test_tx_commit_acks(conn, queue):
    pub = conn.channel()
    pub.confirm_delivery()
    pub.basic_publish("", queue, b"x")
    ch = conn.channel()
    ch.tx_select()
    m, _, _ = ch.basic_get(queue)
    ch.basic_ack(m.delivery_tag)
    ch.tx_commit()
    ch.close()
    assert bodies(conn.channel(), queue) == []


def test_tx_commit_across_queues(amqp, conn):
    ch = conn.channel()
    qs = [ch.queue_declare("", exclusive=True).method.queue for _ in range(2)]
    ch.tx_select()
    for q in qs:
        ch.basic_publish("", q, q.encode())
    ch.tx_commit()
    observer = conn.channel()
    assert [bodies(observer, q) for q in qs] == [[q.encode()] for q in qs]


def test_tx_commit_without_select(amqp, conn):
    with amqp.channel_error(406, "PRECONDITION_FAILED - channel is not transactional"):
        conn.channel().tx_commit()
    with amqp.channel_error(406, "PRECONDITION_FAILED - channel is not transactional"):
        conn.channel().tx_rollback()
    assert conn.is_open


def test_confirm_on_tx_channel(amqp, conn):
    assert_mode_switch_refused(
        amqp, conn, lambda ch: ch.tx_select(), lambda ch: ch.confirm_delivery(),
        "PRECONDITION_FAILED - cannot switch from tx to confirm mode")


def test_tx_on_confirm_channel(amqp, conn):
    assert_mode_switch_refused(
        amqp, conn, lambda ch: ch.confirm_delivery(), lambda ch: ch.tx_select(),
        "PRECONDITION_FAILED - cannot switch from confirm to tx mode")


def test_uncommitted_publishes_dropped_when_channel_closes(conn, queue):
    ch = conn.channel()
    ch.tx_select()
    ch.basic_publish("", queue, b"never")
    ch.close()
    time.sleep(0.1)
    assert bodies(conn.channel(), queue) == []
