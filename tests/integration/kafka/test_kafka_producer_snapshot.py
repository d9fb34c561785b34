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

    kafka.kill9_restart()  # unclean, nothing appended since the snapshot: it still holds
    assert loaded(kafka) == [("snapshot", "2")]
    assert answers(kafka, t) == want

    # an append after the snapshot was loaded, then a crash: the snapshot covers the offsets
    # below the one it names, and the batch after it is replayed (forgetting it would answer
    # its retry as a new batch)
    c = Conn(kafka.port)
    assert produce(c, t, record_batch([b"d"], 7, 1, 3)) == (0, 10)
    c.close()
    kafka.kill9_restart()
    assert loaded(kafka) == [("snapshot+replay", "2")]
    assert kafka.ternd.events("producers_loaded")[0]["replayed_from"] == "10"
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


def test_snapshot_naming_a_lost_tail_is_dropped(kafka):
    """A snapshot names offset 12, then the log loses its last batch (as a crash with --fsync
    never can): the snapshot must not be used, and must be gone before the append that brings
    the log back to offset 12 with a different batch, or a later restart would take it."""
    t = kafka.name()
    c = Conn(kafka.port)
    fill(c, t)
    assert produce(c, t, record_batch([b"d"], 7, 1, 3)) == (0, 10)
    assert produce(c, t, record_batch([b"e"], 7, 1, 4)) == (0, 11)
    c.close()
    kafka.ternd.stop()  # clean: the snapshot names 12
    snap = snapshot_path(kafka)
    seg = sorted(snap.parent.glob("*.log"))[-1]
    size = seg.stat().st_size
    with open(seg, "r+b") as f:
        f.truncate(size - 10)  # tears the batch at offset 11
    (snap.parent / "clean-shutdown").unlink()
    (snap.parent / "checkpoint").unlink()  # no durability claim: the torn tail is cut
    kafka.restart()
    assert [e["event"] for e in kafka.ternd.events("torn_tail")]
    assert loaded(kafka) == [("replay", "2")]
    assert not snap.exists()
    c = Conn(kafka.port)
    assert produce(c, t, record_batch([b"n7"], 9, 0, 7)) == (0, 11)  # producer 9 takes 11
    c.close()
    kafka.kill9_restart()
    assert loaded(kafka) == [("replay", "2")]
    c = Conn(kafka.port)
    assert produce(c, t, record_batch([b"n7"], 9, 0, 7)) == (0, 11)  # a duplicate
    assert produce(c, t, record_batch([b"e"], 7, 1, 4)) == (0, 12)  # lost, so new
    c.close()


def test_background_snapshots_bound_the_replay_after_a_crash(kafka):
    """Every segment's worth of appends (segment.bytes, 64 KiB at least) a snapshot is written
    once the log is durable up to its end: after kill -9 only the batches after it are
    replayed, and the state is the same as a full replay's."""
    from confluent_kafka.admin import NewTopic
    t = kafka.name()
    admin = kafka.admin()
    admin.create_topics([NewTopic(t, 1, 1, config={"segment.bytes": "65536"})])[t].result(30)
    c = Conn(kafka.port)
    value = b"v" * 8000
    for i in range(40):  # ~320 KiB: several background snapshots
        assert produce(c, t, record_batch([value], 5, 0, i)) == (0, i)
    c.close()
    assert len(sorted(snapshot_path(kafka).parent.glob("*.log"))) >= 4
    kafka.kill9_restart()
    (e,) = kafka.ternd.events("producers_loaded")
    assert (e["source"], e["producers"]) == ("snapshot+replay", "1")
    assert 8 <= int(e["replayed_from"]) < 40 and e["end"] == "40"
    c = Conn(kafka.port)
    assert produce(c, t, record_batch([value], 5, 0, 39)) == (0, 39)  # a duplicate
    assert produce(c, t, record_batch([value], 5, 0, 35)) == (0, 35)  # still in the window
    assert produce(c, t, record_batch([value], 5, 0, 41))[0] == OUT_OF_ORDER_SEQUENCE_NUMBER
    assert produce(c, t, record_batch([value], 5, 0, 40)) == (0, 40)
    c.close()
