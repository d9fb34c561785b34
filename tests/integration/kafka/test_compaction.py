"""Log compaction (cleanup.policy=compact) and retention seen by unmodified Kafka clients.

ternd runs with a short --log-cleaner-interval-ms so passes start within the test; topics use
4 KiB segments so a few hundred records roll many segments.
"""

import time

import pytest

confluent_kafka = pytest.importorskip("confluent_kafka")
from confluent_kafka import TopicPartition  # noqa: E402
from confluent_kafka.admin import NewTopic  # noqa: E402

TIMEOUT = 30
CONVERGE = 60


def create_topic(kafka, config):
    t = kafka.name()
    admin = kafka.admin()  # kept alive until the futures are done
    fs = admin.create_topics([NewTopic(t, num_partitions=1, replication_factor=1, config=config)])
    for f in fs.values():
        f.result(timeout=TIMEOUT)
    return t


def produce(kafka, t, records, **conf):
    """Produces (key, value) pairs in small batches; returns {offset: (key, value)}."""
    sent = {}

    def on_delivery(err, msg):
        assert err is None, err
        sent[msg.offset()] = (msg.key(), msg.value())

    p = kafka.producer(acks="all", linger_ms=0, batch_num_messages=8, **conf)
    for i, (k, v) in enumerate(records):
        p.produce(t, key=k, value=v, on_delivery=on_delivery)
        if i % 8 == 7:
            p.poll(0)
    assert p.flush(TIMEOUT) == 0
    assert len(sent) == len(records)
    return sent


def read_all(kafka, t):
    """Every message from the log start to the high watermark: [(offset, key, value)]."""
    c = kafka.consumer(kafka.name("g"), enable_auto_commit=False)
    tp = TopicPartition(t, 0)
    low, high = c.get_watermark_offsets(tp, timeout=TIMEOUT, cached=False)
    c.assign([TopicPartition(t, 0, low)])
    got, deadline = [], time.time() + TIMEOUT
    while time.time() < deadline:
        m = c.poll(0.2)
        if m is None:
            pos = c.position([tp])[0].offset
            if pos >= high:
                break
            continue
        assert m.error() is None, m.error()
        got.append((m.offset(), m.key(), m.value()))
        if m.offset() == high - 1:
            break
    c.close()
    return got


def value(key, i):
    return f"{key}-update-{i:05d}-".encode() + b"x" * 80


def wait_compacted(kafka, t, done):
    """Reads the topic until done(by_key) holds (by_key: key -> [offsets]); returns the last
    read [(offset, key, value)]."""
    deadline, got = time.time() + CONVERGE, []
    while time.time() < deadline:
        got = read_all(kafka, t)
        by_key = {}
        for off, k, v in got:
            by_key.setdefault(k, []).append(off)
        if done(by_key):
            break
        time.sleep(0.3)
    return got


def latest_offsets(sent):
    latest = {}
    for off in sorted(sent):
        latest[sent[off][0]] = off
    return latest


@pytest.mark.parametrize("codec", ["none", "zstd"])
def test_compaction_keeps_latest_value_per_key(kafka_factory, codec):
    kafka = kafka_factory("--log-cleaner-interval-ms", "100")
    t = create_topic(kafka, {"cleanup.policy": "compact", "segment.bytes": "4096",
                             "delete.retention.ms": "1500", "min.compaction.lag.ms": "0"})
    keys = [f"k{i}".encode() for i in range(10)]
    records = [(keys[i % 10], value(keys[i % 10].decode(), i)) for i in range(600)]
    records += [(keys[0], None), (keys[1], None)]  # tombstones
    records += [(b"pad", value("pad", i)) for i in range(120)]  # seal the tombstones' segment
    sent = produce(kafka, t, records, compression_codec=codec)
    latest = latest_offsets(sent)
    end = max(sent) + 1
    got = wait_compacted(kafka, t, lambda by_key: (
        all(by_key.get(k) == [latest[k]] for k in keys[2:])
        and keys[0] not in by_key and keys[1] not in by_key))
    assert got, "nothing read"
    # every survivor is the record produced at that offset: offsets did not move
    for off, k, v in got:
        assert sent[off] == (k, v), off
    by_key = {}
    for off, k, v in got:
        by_key.setdefault(k, []).append(off)
    for k in keys[2:]:
        assert by_key.get(k) == [latest[k]], (k, by_key.get(k))
    assert keys[0] not in by_key and keys[1] not in by_key  # tombstoned, then removed
    assert by_key[b"pad"][-1] == latest[b"pad"]
    assert len(got) < len(records) // 4
    # the offsets still run to the same end, and new records follow it
    c = kafka.consumer(kafka.name("g"))
    assert c.get_watermark_offsets(TopicPartition(t, 0), timeout=TIMEOUT, cached=False)[1] == end
    c.close()
    more = produce(kafka, t, [(keys[2], b"after-compaction")])
    assert list(more) == [end]
    assert kafka.ternd.event("compaction") is not None


def test_compacted_topic_with_kafka_python(kafka_factory):
    kp = pytest.importorskip("kafka")
    kafka = kafka_factory("--log-cleaner-interval-ms", "100")
    t = create_topic(kafka, {"cleanup.policy": "compact", "segment.bytes": "4096"})
    keys = [f"k{i}".encode() for i in range(5)]
    records = [(keys[i % 5], value(keys[i % 5].decode(), i)) for i in range(300)]
    records += [(b"pad", value("pad", i)) for i in range(60)]
    sent = produce(kafka, t, records)
    latest = latest_offsets(sent)
    wait_compacted(kafka, t, lambda by_key: all(by_key.get(k) == [latest[k]] for k in keys))
    # kafka-python reads the compacted log (empty batches, offset gaps between records)
    cons = kp.KafkaConsumer(t, bootstrap_servers=kafka.bootstrap, auto_offset_reset="earliest",
                            consumer_timeout_ms=5000, enable_auto_commit=False)
    got = [(m.offset, m.key, m.value) for m in cons]
    cons.close()
    assert got and len(got) < len(records) // 2
    for off, k, v in got:
        assert sent[off] == (k, v), off
    for k in keys:
        assert [off for off, key, _ in got if key == k] == [latest[k]]
    assert got[-1][0] == max(sent)


@pytest.mark.parametrize("limit", ["retention.bytes", "retention.ms"])
def test_retention_moves_the_earliest_offset(kafka, limit):
    config = {"segment.bytes": "4096"}
    old = int(time.time() * 1000) - 3600 * 1000
    if limit == "retention.bytes":
        config["retention.bytes"] = "8192"
    else:
        config["retention.ms"] = "60000"
    t = create_topic(kafka, config)
    sent = {}

    def on_delivery(err, msg):
        assert err is None, err
        sent[msg.offset()] = msg.value()

    p = kafka.producer(acks="all", linger_ms=0, batch_num_messages=8)
    for i in range(400):
        # for retention.ms: the first 300 records are an hour old
        ts = old + i if limit == "retention.ms" and i < 300 else 0
        p.produce(t, value=value("r", i), timestamp=ts, on_delivery=on_delivery)
        if i % 8 == 7:
            p.poll(0)
    assert p.flush(TIMEOUT) == 0
    c = kafka.consumer(kafka.name("g"), enable_auto_commit=False)
    tp = TopicPartition(t, 0)
    deadline, low, high = time.time() + CONVERGE, 0, 0
    while time.time() < deadline:
        low, high = c.get_watermark_offsets(tp, timeout=TIMEOUT, cached=False)
        if low > 0:
            break
        time.sleep(0.3)
    assert high == 400
    assert 0 < low < 400
    if limit == "retention.ms":
        assert low <= 300  # nothing recent was deleted
    # a consumer starting from the beginning starts at the new earliest offset
    c.assign([TopicPartition(t, 0, confluent_kafka.OFFSET_BEGINNING)])
    m, deadline = None, time.time() + TIMEOUT
    while m is None and time.time() < deadline:
        m = c.poll(0.5)
    assert m is not None and m.error() is None
    assert m.offset() == low and m.value() == sent[low]
    # ListOffsets by time: an offset before the start is answered with the start
    r = c.offsets_for_times([TopicPartition(t, 0, 1)], timeout=TIMEOUT)
    assert r[0].offset >= low
    c.close()
