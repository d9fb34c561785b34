"""Flow control: above --memory-high-watermark, connections that publish get connection.blocked
(pika's add_on_connection_blocked_callback) and are not read from; a consumer keeps draining,
connections that do not publish get no connection.blocked, and once the memory is back under
the line the publisher gets connection.unblocked and can publish again.

The memory is made to grow by a consumer that does not read its socket (pika reads only while
it processes events) with no prefetch limit: the broker has to hold what it cannot write to it
(tern counts the bytes in its connections' buffers; RabbitMQ its whole VM memory, which the
queue and the writer's backlog raise). Then the consumer drains and acks.

tern_only (needs the option). With TERN_AMQP_RABBITMQ_ALL=1 the test runs against a RabbitMQ
node whose vm_memory_high_watermark is set 2 + 24 MiB above its idle use (see
rabbitmq.from_ternd_args); RabbitMQ 3.10 passed.
"""

import time

import pytest

WATERMARK = 2 << 20  # below the 4 MiB tern lets wait for one connection
BODY = b"f" * (64 << 10)
MAX_PUBLISHES = 2000  # 125 MiB: far past the watermark


@pytest.mark.tern_only
def test_publisher_blocked_consumer_drains_then_unblocked(amqp_factory):
    amqp = amqp_factory("--memory-high-watermark", str(WATERMARK))
    events = []
    q, q2 = amqp.name("q-flow"), amqp.name("q-after")
    setup = amqp.connect().channel()
    setup.queue_declare(q)
    setup.queue_declare(q2)

    # Opened before the alarm and never publishing: must get no connection.blocked.
    idle = amqp.connect()
    idle.add_on_connection_blocked_callback(lambda c, f: events.append("idle-blocked"))
    cons_conn = amqp.connect()
    cons_conn.add_on_connection_blocked_callback(lambda c, f: events.append("cons-blocked"))
    cons = cons_conn.channel()
    drained = []

    def on_message(ch, method, _props, body):
        drained.append("unblocked" in events)  # whether the publisher was free by then
        assert body == BODY
        ch.basic_ack(method.delivery_tag)

    cons.basic_consume(q, on_message)  # no prefetch limit; not read from until the drain

    pub_conn = amqp.connect(blocked_connection_timeout=30)
    pub_conn.add_on_connection_blocked_callback(lambda c, f: events.append("blocked"))
    pub_conn.add_on_connection_unblocked_callback(lambda c, f: events.append("unblocked"))
    pub = pub_conn.channel()
    sent = 0
    while "blocked" not in events:
        assert sent < MAX_PUBLISHES, f"not blocked after {sent} x 64 KiB"
        pub.basic_publish("", q, BODY)
        sent += 1
        # At most ~32 MB/s, so the block comes before far too much is in (the brokers check
        # their memory every 50 or 100 ms).
        pub_conn.process_data_events(0.002)
    blocked_at = sent

    deadline = time.monotonic() + 30
    while "unblocked" not in events:
        assert time.monotonic() < deadline, \
            f"not unblocked: {len(drained)} of {blocked_at} drained, events {events}"
        cons_conn.process_data_events(0.02)
        pub_conn.process_data_events(0)
        idle.process_data_events(0)
    print(f"blocked after {blocked_at} x 64 KiB; unblocked after {len(drained)} drained")
    # The consumer drained while the publisher was blocked.
    assert drained and not drained[0], drained[:3]
    assert events.count("blocked") == 1
    assert "idle-blocked" not in events and "cons-blocked" not in events, events

    # Publishing works again.
    cons.close()
    pub.confirm_delivery()
    pub.basic_publish("", q2, b"after-unblock", mandatory=True)
    assert pub.basic_get(q2, auto_ack=True)[2] == b"after-unblock"
    setup.queue_delete(q)
    setup.queue_delete(q2)
