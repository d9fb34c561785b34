"""Idempotent-producer state across restarts: from the snapshot a clean shutdown writes, or by
replaying the log after a crash, a corrupt snapshot or appends the snapshot does not cover.

The same probes (retries of retained batches, a retry of a batch that left the 5-batch window,
sequence gaps, a stale epoch) must get the same answers before and after every restart; none of
them appends anything, so they can be asked again and again.
"""

import pathlib

from rawkafka import Conn, parse_produce_v7, record_batch

OUT_OF_ORDER_SEQUENCE_NUMBER = 45
INVALID_PRODUCER_EPOCH = 47


def produce(c, topic, batch):
    c.produce(topic, 0, batch)
    return parse_produce_v7(c.recv()[1])[0][2:]


def fill(c, topic):
    """Producer 7 (epoch 1): 2 batches; producer 9 (epoch 0): 7 batches of 1 record."""
    assert produce(c, topic, record_batch([b"a", b"b"], 7, 1, 0)) == (0, 0)
    assert produce(c, topic, record_batch([b"c"], 7, 1, 2)) == (0, 2)
    for i in range(7):
        assert produce(c, topic, record_batch([b"n%d" % i], 9, 0, i)) == (0, 3 + i)


PROBES = [
    record_batch([b"a", b"b"], 7, 1, 0),  # duplicate: offset 0
    record_batch([b"c"], 7, 1, 2),  # duplicate: offset 2
    record_batch([b"x"], 7, 1, 9),  # gap
    record_batch([b"x"], 7, 0, 3),  # stale epoch
    record_batch([b"n2"], 9, 0, 2),  # the oldest retained batch of producer 9
    record_batch([b"n6"], 9, 0, 6),  # its newest
    record_batch([b"n0"], 9, 0, 0),  # out of the window: out of order
]


def answers(k, topic):
    c = Conn(k.port)
    out = [produce(c, topic, b) for b in PROBES]
    c.close()
    return out


def loaded(k):
    return [(e["source"], e["producers"]) for e in k.ternd.events("producers_loaded")]


def snapshot_path(k):
    found = list(pathlib.Path(k.data_dir).rglob("producers.snapshot"))
    assert len(found) == 1, found
    return found[0]


def test_state_survives_clean_restarts_crashes_and_bad_snapshots(kafka):
    t = kafka.name()
    c = Conn(kafka.port)
    fill(c, t)
    c.close()
    want = answers(kafka, t)
    assert want == [(0, 0), (0, 2), (OUT_OF_ORDER_SEQUENCE_NUMBER, -1),
                    (INVALID_PRODUCER_EPOCH, -1), (0, 5), (0, 9),
                    (OUT_OF_ORDER_SEQUENCE_NUMBER, -1)]

    kafka.restart()  # clean: the snapshot is written and loaded
    assert loaded(kafka) == [("snapshot", "2")]
    assert answers(kafka, t) == want

    kafka.kill9_restart()  # unclean: the log is replayed
    assert loaded(kafka) == [("replay", "2")]
    assert answers(kafka, t) == want

    kafka.restart()  # a fresh snapshot after the replay
    assert loaded(kafka) == [("snapshot", "2")]

    # an append after the snapshot was loaded, then a crash: the snapshot (naming the old log
    # end) must not be used, or producer 7's new batch would be forgotten
    c = Conn(kafka.port)
    assert produce(c, t, record_batch([b"d"], 7, 1, 3)) == (0, 10)
    c.close()
    kafka.kill9_restart()
    assert loaded(kafka) == [("replay", "2")]
    c = Conn(kafka.port)
    assert produce(c, t, record_batch([b"d"], 7, 1, 3)) == (0, 10)  # a duplicate now
    assert produce(c, t, record_batch([b"e"], 7, 1, 4)) == (0, 11)
    c.close()

    # a corrupt snapshot is refused and the log replayed
    kafka.ternd.stop()
    p = snapshot_path(kafka)
    data = bytearray(p.read_bytes())
    data[30] ^= 0xFF
    p.write_bytes(bytes(data))
    kafka.restart()
    assert loaded(kafka) == [("replay", "2")]
    assert answers(kafka, t)[:2] == want[:2]
    c = Conn(kafka.port)
    assert produce(c, t, record_batch([b"e"], 7, 1, 4)) == (0, 11)  # still a duplicate
    c.close()
