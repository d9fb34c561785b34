"""Idempotent-producer state expires as in Kafka (producer.id.expiration.ms, checked every
producer.id.expiration.check.interval.ms): a producer whose newest batch's timestamp is older
than the expiration is forgotten, so a table of producer ids does not grow without bound (every
restart of an idempotent client brings a new id). A forgotten producer is then treated as an
unknown one (KIP-360): any sequence is accepted and a retry is appended again. The snapshot of
a clean shutdown must not bring it back.
"""

import time

from rawkafka import Conn, parse_produce_v7, record_batch

OUT_OF_ORDER_SEQUENCE_NUMBER = 45
EXPIRATION_MS = 60000
NO_CHECK = ["--producer-id-expiration-ms", str(EXPIRATION_MS),
            "--producer-id-expiration-check-ms", "600000"]
FAST_CHECK = ["--producer-id-expiration-ms", str(EXPIRATION_MS),
              "--producer-id-expiration-check-ms", "100"]


def produce(c, topic, batch):
    c.produce(topic, 0, batch)
    return parse_produce_v7(c.recv()[1])[0][2:]


def now_ms():
    return int(time.time() * 1000)


def restart_with(k, args):
    k._args = list(args)
    k.restart()
    return Conn(k.port)


def test_idle_producers_expire_and_stay_expired_after_restart(kafka_factory):
    k = kafka_factory(*NO_CHECK)
    topic = k.name()
    c = Conn(k.port)
    idle_ts = now_ms() - 2 * EXPIRATION_MS  # its newest batch: older than the expiration
    idle = record_batch([b"idle"], 7, 0, 0, ts=idle_ts)
    active = record_batch([b"active"], 9, 0, 0, ts=now_ms())
    assert produce(c, topic, idle) == (0, 0)
    assert produce(c, topic, active) == (0, 1)
    # both are known: retries are duplicates, a gap is refused
    assert produce(c, topic, idle) == (0, 0)
    assert produce(c, topic, record_batch([b"x"], 7, 0, 5, ts=idle_ts))[0] == \
        OUT_OF_ORDER_SEQUENCE_NUMBER
    c.close()

    # a clean restart writes the snapshot holding both; the next start checks every 100 ms
    c = restart_with(k, FAST_CHECK)
    line = k.ternd.wait_for(r"event=producers_expired\b")
    assert f"topic={topic} " in line and "expired=1 left=1" in line, line
    c.close()

    # a clean restart without checks: the snapshot it loads was rewritten without producer 7
    c = restart_with(k, NO_CHECK)
    assert produce(c, topic, active) == (0, 1)  # still known: a duplicate
    assert produce(c, topic, idle) == (0, 2)  # forgotten: appended again
    # and a producer id nothing is known of accepts any sequence (KIP-360)
    assert produce(c, topic, record_batch([b"y"], 11, 0, 5, ts=now_ms())) == (0, 3)
    c.close()
