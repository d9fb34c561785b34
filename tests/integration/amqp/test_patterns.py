"""The usual messaging patterns end to end, each client on its own connection: work queue with
fair dispatch (prefetch 1) and round-robin, publish/subscribe fan-out, topic routing, and
request-reply (a callback queue with reply_to / correlation_id, and RabbitMQ's direct reply-to
pseudo queue, an optional feature).

All clients run in the test's thread: pump() processes the events of every connection in turn.
"""

import contextlib
import uuid

import pika
import pytest

from amqphelp import confirmed_channel, drain, pump, settle


@contextlib.contextmanager
def publisher_with(amqp, kind, prefix):
    """A publisher (a confirm channel on a connection of its own) and a queue (kind "queue") or
    an exchange of type kind named <prefix>-<id>, deleted after the block: (pub, name)."""
    pub = confirmed_channel(amqp)
    name = amqp.name(prefix)
    if kind == "queue":
        pub.queue_declare(name)
    else:
        pub.exchange_declare(name, kind)
    try:
        yield pub, name
    finally:
        if kind == "queue":
            pub.queue_delete(name)
        else:
            pub.exchange_delete(name)


def test_work_queue_fair_dispatch_with_prefetch_1(amqp):
    """Worker A takes one task and sits on it; worker B acks as it goes. With prefetch 1, B
    gets every other task instead of half of them piling up behind A."""
    with publisher_with(amqp, "queue", "tasks") as (pub, q):
        conns = [amqp.connect(), amqp.connect()]
        a_got, b_got = [], []
        a, b = conns[0].channel(), conns[1].channel()
        for ch in (a, b):
            ch.basic_qos(prefetch_count=1)
        a.basic_consume(q, lambda c, m, p, body: a_got.append((m.delivery_tag, body)))

        def b_work(c, m, p, body):
            b_got.append(body)
            c.basic_ack(m.delivery_tag)

        b.basic_consume(q, b_work)
        for i in range(10):
            pub.basic_publish("", q, f"task{i}".encode(), mandatory=True)
        pump(conns, lambda: len(a_got) + len(b_got) == 10 or len(b_got) == 9)
        settle(conns)
        assert len(a_got) == 1 and len(b_got) == 9, (a_got, b_got)
        a.basic_ack(a_got[0][0])
        assert sorted([a_got[0][1]] + b_got) == sorted(f"task{i}".encode() for i in range(10))
        assert b_got == sorted(b_got, key=lambda s: int(s[4:]))  # B saw its tasks in order


def test_work_queue_round_robin(amqp):
    with publisher_with(amqp, "queue", "tasks") as (pub, q):
        conns = [amqp.connect(), amqp.connect()]
        got = [[], []]
        for i, c in enumerate(conns):
            c.channel().basic_consume(q, lambda ch, m, p, body, i=i: got[i].append(body),
                                      auto_ack=True)
        for i in range(10):
            pub.basic_publish("", q, f"t{i}".encode(), mandatory=True)
        pump(conns, lambda: len(got[0]) + len(got[1]) == 10)
        assert (len(got[0]), len(got[1])) == (5, 5)
        assert sorted(got[0] + got[1]) == sorted(f"t{i}".encode() for i in range(10))


def test_pub_sub_fanout_to_three_subscribers(amqp):
    with publisher_with(amqp, "fanout", "logs") as (pub, x):
        subs = []
        for _ in range(3):
            conn = amqp.connect()
            ch = conn.channel()
            q = ch.queue_declare("", exclusive=True).method.queue
            ch.queue_bind(q, x, routing_key="")
            got = []
            ch.basic_consume(q, lambda c, m, p, body, got=got: got.append(body), auto_ack=True)
            subs.append((conn, got))
        for i in range(5):
            pub.basic_publish(x, "", f"event{i}".encode(), mandatory=True)
        conns = [c for c, _ in subs]
        pump(conns, lambda: all(len(g) == 5 for _, g in subs))
        settle(conns, 0.1)
        expected = [f"event{i}".encode() for i in range(5)]
        assert [g for _, g in subs] == [expected] * 3


def test_topic_routing_log_levels(amqp):
    with publisher_with(amqp, "topic", "topic-logs") as (pub, x):
        conn = amqp.connect()
        ch = conn.channel()
        routes = {"kern": ["kern.*"], "critical": ["*.critical"], "all": ["#"],
                  "app-errors": ["app.*.error", "app.error"]}
        queues = {}
        for name, keys in routes.items():
            q = ch.queue_declare("", exclusive=True).method.queue
            for key in keys:
                ch.queue_bind(q, x, routing_key=key)
            queues[name] = q
        sent = ["kern.critical", "kern.info", "user.critical", "app.web.error", "app.error",
                "app.web.info", "kern.disk.critical"]
        for key in sent:
            pub.basic_publish(x, key, key.encode())
        received = {}
        for name, q in queues.items():
            received[name] = []
            for method, _, body in drain(ch, q):
                assert method.routing_key == body.decode()
                received[name].append(body.decode())
        assert received == {
            "kern": ["kern.critical", "kern.info"],
            "critical": ["kern.critical", "user.critical"],
            "all": sent,
            "app-errors": ["app.web.error", "app.error"],
        }


def serve_rpc(ch, queue):
    """An RPC server on ch: replies to reply_to with the body upper-cased and the request's
    correlation_id, then acks the request."""

    def on_request(c, method, props, body):
        c.basic_publish("", props.reply_to, body.upper(),
                        properties=pika.BasicProperties(correlation_id=props.correlation_id))
        c.basic_ack(method.delivery_tag)

    ch.basic_qos(prefetch_count=1)
    ch.basic_consume(queue, on_request)


def test_request_reply_with_callback_queue(amqp):
    rpc_q = amqp.name("rpc")
    server_conn = amqp.connect()
    server = server_conn.channel()
    server.queue_declare(rpc_q, auto_delete=True)
    serve_rpc(server, rpc_q)

    client_conn = amqp.connect()
    client = client_conn.channel()
    callback_q = client.queue_declare("", exclusive=True).method.queue
    replies = {}
    client.basic_consume(callback_q,
                         lambda c, m, p, body: replies.__setitem__(p.correlation_id, body),
                         auto_ack=True)
    ids = {}
    for word in ("alpha", "beta", "gamma"):
        cid = uuid.uuid4().hex
        ids[cid] = word
        client.basic_publish("", rpc_q, word.encode(), properties=pika.BasicProperties(
            reply_to=callback_q, correlation_id=cid))
    pump([server_conn, client_conn], lambda: len(replies) == 3)
    assert replies == {cid: word.upper().encode() for cid, word in ids.items()}


@pytest.mark.optional_feature
def test_request_reply_with_direct_reply_to(amqp):
    """amq.rabbitmq.reply-to: the client consumes (no-ack) from the pseudo queue and publishes
    with reply_to=amq.rabbitmq.reply-to on the same channel; the server sees a generated
    amq.rabbitmq.reply-to.* name and replies to it through the default exchange."""
    rpc_q = amqp.name("rpc")
    server_conn = amqp.connect()
    server = server_conn.channel()
    server.queue_declare(rpc_q, auto_delete=True)
    seen_reply_to = []

    def on_request(c, method, props, body):
        seen_reply_to.append(props.reply_to)
        c.basic_publish("", props.reply_to, body[::-1],
                        properties=pika.BasicProperties(correlation_id=props.correlation_id))
        c.basic_ack(method.delivery_tag)

    server.basic_consume(rpc_q, on_request)
    client_conn = amqp.connect()
    client = client_conn.channel()
    replies = []
    client.basic_consume("amq.rabbitmq.reply-to",
                         lambda c, m, p, body: replies.append((p.correlation_id, body)),
                         auto_ack=True)
    client.basic_publish("", rpc_q, b"direct", properties=pika.BasicProperties(
        reply_to="amq.rabbitmq.reply-to", correlation_id="c-1"))
    pump([server_conn, client_conn], lambda: replies)
    assert replies == [("c-1", b"tcerid")]
    assert seen_reply_to[0].startswith("amq.rabbitmq.reply-to.")
    assert seen_reply_to[0] != "amq.rabbitmq.reply-to."
