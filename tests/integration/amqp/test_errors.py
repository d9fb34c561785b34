"""Errors: the reply codes (403, 404, 405, 406, 530, 540) and the reply-text style RabbitMQ uses,
"<CODE_NAME> - <what>", e.g. "NOT_FOUND - no queue 'x' in vhost '/'"; which errors close a
channel and which close the connection; and that a channel error leaves the connection and its
other channels working.

Refusals during the handshake (unknown vhost, bad login) show in pika as Probable*Error with the
broker's connection.close in the message: those asserts check the code and text in it.
"""

import pika
import pika.exceptions
import pytest

from amqphelp import confirmed_channel, pump, roundtrip


def test_404_publish_to_missing_exchange(amqp):
    conn = amqp.connect()
    ch = conn.channel()
    x = amqp.name("x-missing")
    ch.basic_publish(x, "k", b"lost")
    with amqp.channel_error(404, f"NOT_FOUND - no exchange '{x}' in vhost '/'"):
        roundtrip(ch)
    assert conn.is_open


def test_404_publish_to_missing_exchange_with_confirms(amqp):
    ch = confirmed_channel(amqp)
    x = amqp.name("x-missing")
    with amqp.channel_error(404, f"NOT_FOUND - no exchange '{x}' in vhost '/'"):
        ch.basic_publish(x, "k", b"lost")


@pytest.mark.parametrize("op", ["consume", "get", "purge", "bind", "declare-passive"])
def test_404_missing_queue(amqp, op):
    ch = amqp.connect().channel()
    q = amqp.name("q-missing")
    calls = {
        "consume": lambda: ch.basic_consume(q, lambda *a: None),
        "get": lambda: ch.basic_get(q),
        "purge": lambda: ch.queue_purge(q),
        "bind": lambda: ch.queue_bind(q, "amq.direct", routing_key="k"),
        "declare-passive": lambda: ch.queue_declare(q, passive=True),
    }
    with amqp.channel_error(404, f"NOT_FOUND - no queue '{q}' in vhost '/'"):
        calls[op]()


@pytest.mark.parametrize("side", ["source", "destination"])
def test_404_exchange_bind_missing(amqp, side):
    ch = amqp.connect().channel()
    x = amqp.name("x-missing")
    src, dst = (x, "amq.direct") if side == "source" else ("amq.direct", x)
    with amqp.channel_error(404, f"NOT_FOUND - no exchange '{x}' in vhost '/'"):
        ch.exchange_bind(dst, src, routing_key="k")


def test_unbind_of_missing_binding_is_ok(amqp):
    conn = amqp.connect()
    ch = conn.channel()
    q = ch.queue_declare("", exclusive=True).method.queue
    ch.queue_unbind(q, "amq.direct", routing_key="never-bound")
    ch.exchange_unbind("amq.direct", "amq.fanout", routing_key="never-bound")
    assert ch.is_open


def test_403_reserved_names_and_internal(amqp):
    conn = amqp.connect()
    with amqp.channel_error(403, "ACCESS_REFUSED - exchange name 'amq.mine' contains reserved "
                            "prefix 'amq.*'"):
        conn.channel().exchange_declare("amq.mine", "fanout")
    with amqp.channel_error(403, "ACCESS_REFUSED - queue name 'amq.mine' contains reserved "
                            "prefix 'amq.*'"):
        conn.channel().queue_declare("amq.mine")
    assert conn.is_open


def test_amq_prefix_passive_is_a_lookup(amqp):
    """A passive declare only looks: a missing amq.* name is 404, not 403."""
    ch = amqp.connect().channel()
    with amqp.channel_error(404, "NOT_FOUND - no exchange 'amq.tern-missing' in vhost '/'"):
        ch.exchange_declare("amq.tern-missing", "direct", passive=True)


def test_405_exclusive_queue_of_another_connection(amqp):
    owner = amqp.connect()
    q = amqp.name("q-excl")
    owner.channel().queue_declare(q, exclusive=True)
    with amqp.channel_error(405, f"RESOURCE_LOCKED - cannot obtain exclusive access to locked "
                            f"queue '{q}' in vhost '/'"):
        amqp.connect().channel().queue_purge(q)


def test_406_invalid_queue_argument(amqp):
    ch = amqp.connect().channel()
    q = amqp.name("q-bad-arg")
    with amqp.channel_error(406, f"PRECONDITION_FAILED - invalid arg 'x-max-length' for queue "
                            f"'{q}' in vhost '/'"):
        ch.queue_declare(q, arguments={"x-max-length": "ten"})
    # Nothing was created.
    with amqp.channel_error(404, "NOT_FOUND"):
        amqp.connect().channel().queue_declare(q, passive=True)


def test_406_unknown_delivery_tag(amqp):
    ch = amqp.connect().channel()
    ch.basic_ack(7)
    with amqp.channel_error(406, "PRECONDITION_FAILED - unknown delivery tag 7"):
        roundtrip(ch)


def test_530_unknown_vhost_on_open(amqp):
    with pytest.raises(pika.exceptions.ProbableAccessDeniedError) as info:
        amqp.connect(virtual_host="tern-no-such-vhost")
    text = str(info.value.args[0])
    assert "(530)" in text, text
    assert "NOT_ALLOWED - vhost tern-no-such-vhost not found" in text, text


def test_403_bad_login_on_open(amqp):
    for user, password in (("guest", "wrong"), ("tern-nobody", "x")):
        with pytest.raises(pika.exceptions.ProbableAuthenticationError) as info:
            amqp.connect(credentials=pika.PlainCredentials(user, password))
        text = str(info.value.args[0])
        assert "(403)" in text, text
        assert "ACCESS_REFUSED - Login was refused using authentication mechanism PLAIN" in text


def test_540_prefetch_size(amqp):
    """RabbitMQ 3.10 does not implement prefetch_size: a connection error, not a channel one."""
    conn = amqp.connect()
    with amqp.connection_error(540, "NOT_IMPLEMENTED - prefetch_size!=0 (4096)"):
        conn.channel().basic_qos(prefetch_size=4096)
    assert not conn.is_open


def test_540_immediate_publish(amqp):
    """pika has no immediate flag: the basic.publish is sent through pika's channel internals."""
    conn = amqp.connect()
    ch = conn.channel()
    ch._impl._send_method(pika.spec.Basic.Publish(exchange="", routing_key="q", immediate=True),
                          (pika.BasicProperties(), b"now"))
    with amqp.connection_error(540, "NOT_IMPLEMENTED - immediate=true"):
        roundtrip(ch)
    assert not conn.is_open


def test_540_recover_without_requeue(amqp):
    conn = amqp.connect()
    with amqp.connection_error(540, "NOT_IMPLEMENTED - requeue=false"):
        conn.channel().basic_recover(requeue=False)


def test_503_unknown_exchange_type(amqp):
    conn = amqp.connect()
    with amqp.connection_error(503, "COMMAND_INVALID - unknown exchange type 'bogus'"):
        conn.channel().exchange_declare(amqp.name("x"), "bogus")
    assert not conn.is_open


def test_channel_error_leaves_connection_and_other_channels_working(amqp):
    conn = amqp.connect()
    q = conn.channel().queue_declare("", exclusive=True).method.queue
    consumer = conn.channel()
    got = []
    consumer.basic_consume(q, lambda c, m, p, b: got.append(b), auto_ack=True)
    pub = conn.channel()
    pub.confirm_delivery()
    pub.basic_publish("", q, b"before")

    victim = conn.channel()
    number = victim.channel_number
    with amqp.channel_error(404, "NOT_FOUND - no queue"):
        victim.queue_declare(amqp.name("q-missing"), passive=True)
    assert victim.is_closed and conn.is_open

    pub.basic_publish("", q, b"after")  # the other channels did not notice
    pump(conn, lambda: len(got) >= 2)
    assert got == [b"before", b"after"]
    # The closed channel's number can be opened again.
    again = conn.channel(channel_number=number)
    assert again.queue_declare(q, passive=True).method.consumer_count == 1


def test_connection_error_closes_every_channel(amqp):
    conn = amqp.connect()
    channels = [conn.channel() for _ in range(3)]
    with amqp.connection_error(540, "NOT_IMPLEMENTED"):
        channels[1].basic_qos(prefetch_size=1)
    assert not conn.is_open
    assert all(ch.is_closed for ch in channels)
    # The broker is fine: a new connection works.
    amqp.connect().channel().queue_declare("", exclusive=True)


def test_many_channel_errors_in_a_row(amqp):
    conn = amqp.connect()
    for i in range(20):
        with amqp.channel_error(404, "NOT_FOUND"):
            conn.channel().queue_declare(amqp.name("q-missing"), passive=True)
    assert conn.channel().queue_declare("", exclusive=True).method.queue.startswith("amq.gen-")
