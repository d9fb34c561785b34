"""Unmodified Kafka clients against ternd: kcat (librdkafka), confluent-kafka, kafka-python."""

import json
import subprocess
import time

import pytest

confluent_kafka = pytest.importorskip("confluent_kafka")
from confluent_kafka import KafkaError, TopicPartition  # noqa: E402
from confluent_kafka.admin import ConfigResource, NewPartitions, NewTopic  # noqa: E402

TIMEOUT = 30


def kcat(kafka, *args, input=None):
    r = subprocess.run(["kcat", "-b", kafka.bootstrap, "-X", "broker.address.family=v4", *args],
                       input=input, capture_output=True, timeout=TIMEOUT)
    assert r.returncode == 0, r.stderr.decode()
    return r.stdout.decode()


def consume_n(c, n, timeout=TIMEOUT):
    got, deadline = [], time.time() + timeout
    while len(got) < n and time.time() < deadline:
        m = c.poll(0.5)
        if m is None:
            continue
        assert m.error() is None, m.error()
        got.append(m)
    return got


def wait_futures(fs):
    return {k: f.result(timeout=TIMEOUT) for k, f in fs.items()}


def test_kcat_metadata_lists_the_broker_and_topics(kafka):
    t = kafka.name()
    kcat(kafka, "-P", "-t", t, input=b"x\n")
    meta = json.loads(kcat(kafka, "-L", "-J"))
    assert [b["id"] for b in meta["brokers"]] == [0]
    assert meta["brokers"][0]["name"] == kafka.bootstrap
    topics = {x["topic"]: x for x in meta["topics"]}
    assert t in topics and len(topics[t]["partitions"]) == 1
    assert topics[t]["partitions"][0]["leader"] == 0


@pytest.mark.parametrize("codec", ["none", "gzip", "snappy", "lz4", "zstd"])
def test_kcat_produce_consume_every_codec(kafka, codec):
    t = kafka.name()
    lines = [f"{codec}-message-{i}".encode() for i in range(200)]
    kcat(kafka, "-P", "-t", t, "-z", codec, input=b"\n".join(lines) + b"\n")
    out = kcat(kafka, "-C", "-t", t, "-o", "beginning", "-e", "-f", "%o %s\n")
    got = [ln.split(" ", 1) for ln in out.splitlines()]
    assert [int(o) for o, _ in got] == list(range(200))
    assert [v.encode() for _, v in got] == lines


def test_idempotent_producer_acks_all_and_replay(kafka):
    t = kafka.name()
    p = kafka.producer(enable_idempotence=True, acks="all", linger_ms=5)
    for i in range(1000):
        p.produce(t, key=str(i % 7).encode(), value=f"v{i}".encode())
    assert p.flush(TIMEOUT) == 0
    c = kafka.consumer(kafka.name("g"), enable_auto_commit=False)
    c.assign([TopicPartition(t, 0, 0)])
    got = consume_n(c, 1000)
    assert [m.value() for m in got] == [f"v{i}".encode() for i in range(1000)]
    assert [m.offset() for m in got] == list(range(1000))
    # seek and replay from the middle
    c.seek(TopicPartition(t, 0, 500))
    again = consume_n(c, 500)
    assert [m.offset() for m in again] == list(range(500, 1000))
    c.close()


def test_admin_topics_partitions_and_configs(kafka):
    a = kafka.admin()
    t = kafka.name()
    wait_futures(a.create_topics([NewTopic(t, num_partitions=3, replication_factor=1,
                                           config={"retention.ms": "3600000"})]))
    md = a.list_topics(timeout=TIMEOUT)
    assert len(md.topics[t].partitions) == 3
    with pytest.raises(confluent_kafka.KafkaException) as e:
        wait_futures(a.create_topics([NewTopic(t, num_partitions=1, replication_factor=1)]))
    assert e.value.args[0].code() == KafkaError.TOPIC_ALREADY_EXISTS
    wait_futures(a.create_partitions([NewPartitions(t, 5)]))
    assert len(a.list_topics(timeout=TIMEOUT).topics[t].partitions) == 5
    res = ConfigResource("topic", t)
    cfg = wait_futures(a.describe_configs([res]))[res]
    assert cfg["retention.ms"].value == "3600000"
    assert cfg["cleanup.policy"].value == "delete"
    wait_futures(a.alter_configs([ConfigResource("topic", t, set_config={
        "cleanup.policy": "compact", "max.message.bytes": "2000000"})]))
    cfg = wait_futures(a.describe_configs([res]))[res]
    assert cfg["cleanup.policy"].value == "compact"
    assert cfg["retention.ms"].value == "604800000"  # AlterConfigs replaces: back to default
    wait_futures(a.delete_topics([t]))
    assert t not in a.list_topics(timeout=TIMEOUT).topics


def test_group_of_two_rebalances_and_commits(kafka):
    a = kafka.admin()
    t = kafka.name()
    wait_futures(a.create_topics([NewTopic(t, num_partitions=4, replication_factor=1)]))
    p = kafka.producer(acks="all")
    for i in range(400):
        p.produce(t, value=f"m{i}".encode(), partition=i % 4)
    assert p.flush(TIMEOUT) == 0
    g = kafka.name("g")
    conf = dict(enable_auto_commit=False, session_timeout_ms=6000, heartbeat_interval_ms=500)
    c1 = kafka.consumer(g, **conf)
    c1.subscribe([t])
    first = consume_n(c1, 200)
    assert len(first) == 200
    c1.commit(asynchronous=False)
    c2 = kafka.consumer(g, **conf)
    c2.subscribe([t])
    deadline = time.time() + TIMEOUT
    while time.time() < deadline and not (c1.assignment() and c2.assignment()
                                          and len(c1.assignment()) + len(c2.assignment()) == 4):
        c1.poll(0.2)
        c2.poll(0.2)
    a1 = {tp.partition for tp in c1.assignment()}
    a2 = {tp.partition for tp in c2.assignment()}
    assert a1 and a2 and not (a1 & a2) and a1 | a2 == {0, 1, 2, 3}
    c2.close()
    deadline = time.time() + TIMEOUT
    while time.time() < deadline and len(c1.assignment()) != 4:
        c1.poll(0.2)
    assert len(c1.assignment()) == 4
    c1.close()
    # the committed offsets are there for a new member of the group
    c3 = kafka.consumer(g, enable_auto_commit=False)
    committed = c3.committed([TopicPartition(t, i) for i in range(4)], timeout=TIMEOUT)
    assert sum(tp.offset for tp in committed if tp.offset >= 0) >= 200
    c3.close()


def test_offsets_for_times(kafka):
    t = kafka.name()
    p = kafka.producer()
    base = int(time.time() * 1000) - 100000
    for i in range(10):
        p.produce(t, value=b"x", timestamp=base + i * 1000)
    assert p.flush(TIMEOUT) == 0
    c = kafka.consumer(kafka.name("g"))
    r = c.offsets_for_times([TopicPartition(t, 0, base + 3500)], timeout=TIMEOUT)
    assert r[0].offset == 4
    r = c.offsets_for_times([TopicPartition(t, 0, base + 999999)], timeout=TIMEOUT)
    assert r[0].offset == -1
    c.close()


def test_kill9_while_producing_keeps_acknowledged_records(kafka):
    t = kafka.name()
    acked = {}

    def on_delivery(err, msg):
        if err is None:
            acked[msg.offset()] = msg.value()

    p = kafka.producer(acks="all", enable_idempotence=True, linger_ms=1)
    for i in range(3000):
        p.produce(t, value=f"r{i}".encode(), on_delivery=on_delivery)
        if i % 100 == 0:
            p.poll(0)
    p.flush(TIMEOUT)
    g = kafka.name("g")
    c = kafka.consumer(g, enable_auto_commit=False)
    c.assign([TopicPartition(t, 0, 0)])
    consume_n(c, 10)
    c.commit(offsets=[TopicPartition(t, 0, 10)], asynchronous=False)
    c.close()
    # keep producing while the broker is killed
    for i in range(3000, 4000):
        p.produce(t, value=f"r{i}".encode(), on_delivery=on_delivery)
    p.poll(0)
    kafka.kill9_restart()
    p.flush(1)
    assert len(acked) >= 3000
    c = kafka.consumer(g, enable_auto_commit=False)
    committed = c.committed([TopicPartition(t, 0)], timeout=TIMEOUT)
    assert committed[0].offset == 10
    c.assign([TopicPartition(t, 0, 0)])
    got = {m.offset(): m.value() for m in consume_n(c, max(acked) + 1)}
    for off, val in acked.items():
        assert got.get(off) == val, off
    c.close()


def test_kafka_python_producer_consumer_admin(kafka):
    kp = pytest.importorskip("kafka")
    from kafka.admin import NewTopic as KNewTopic
    t = kafka.name()
    admin = kp.KafkaAdminClient(bootstrap_servers=kafka.bootstrap)
    admin.create_topics([KNewTopic(t, num_partitions=2, replication_factor=1)])
    assert t in admin.list_topics()
    prod = kp.KafkaProducer(bootstrap_servers=kafka.bootstrap, acks="all")
    for i in range(50):
        prod.send(t, value=f"k{i}".encode(), partition=i % 2)
    prod.flush()
    prod.close()
    cons = kp.KafkaConsumer(t, bootstrap_servers=kafka.bootstrap, group_id=kafka.name("g"),
                            auto_offset_reset="earliest", consumer_timeout_ms=5000,
                            enable_auto_commit=False)
    vals = sorted(m.value for m in cons)
    assert vals == sorted(f"k{i}".encode() for i in range(50))
    cons.commit()
    cons.close()
    admin.delete_topics([t])
    admin.close()


def test_kafka_python_sasl_plain(kafka_factory):
    """kafka-python authenticates with SaslHandshake v0 and a bare PLAIN token."""
    kp = pytest.importorskip("kafka")
    from kafka.admin import NewTopic as KNewTopic
    k = kafka_factory("--kafka-sasl", "true", "--default-user", "alice",
                      "--default-pass", "s3cret")
    t = k.name()

    def sasl(password):
        return dict(bootstrap_servers=k.bootstrap, security_protocol="SASL_PLAINTEXT",
                    sasl_mechanism="PLAIN", sasl_plain_username="alice",
                    sasl_plain_password=password)
    admin = kp.KafkaAdminClient(**sasl("s3cret"))
    admin.create_topics([KNewTopic(t, num_partitions=1, replication_factor=1)])
    prod = kp.KafkaProducer(acks="all", **sasl("s3cret"))
    for i in range(10):
        prod.send(t, value=f"s{i}".encode())
    prod.flush()
    prod.close()
    cons = kp.KafkaConsumer(t, group_id=k.name("g"), auto_offset_reset="earliest",
                            consumer_timeout_ms=5000, **sasl("s3cret"))
    assert [m.value for m in cons] == [f"s{i}".encode() for i in range(10)]
    cons.close()
    admin.close()
    with pytest.raises(kp.errors.KafkaError):
        bad = kp.KafkaProducer(max_block_ms=3000, **sasl("wrong"))
        bad.send(t, value=b"never").get(timeout=5)
        bad.close()


def test_log_append_time_topic(kafka):
    a = kafka.admin()
    t = kafka.name()
    wait_futures(a.create_topics([NewTopic(t, num_partitions=1, replication_factor=1, config={
        "message.timestamp.type": "LogAppendTime"})]))
    p = kafka.producer()
    old = 1_000_000_000_000  # 2001
    p.produce(t, value=b"x", timestamp=old)
    assert p.flush(TIMEOUT) == 0
    c = kafka.consumer(kafka.name("g"))
    c.assign([TopicPartition(t, 0, 0)])
    [m] = consume_n(c, 1)
    kind, ts = m.timestamp()
    assert kind == confluent_kafka.TIMESTAMP_LOG_APPEND_TIME
    assert abs(ts - time.time() * 1000) < 60000
    c.close()


def test_create_time_is_kept(kafka):
    t = kafka.name()
    p = kafka.producer()
    p.produce(t, value=b"x", timestamp=1_000_000_000_000)
    assert p.flush(TIMEOUT) == 0
    c = kafka.consumer(kafka.name("g"))
    c.assign([TopicPartition(t, 0, 0)])
    [m] = consume_n(c, 1)
    assert m.timestamp() == (confluent_kafka.TIMESTAMP_CREATE_TIME, 1_000_000_000_000)
    c.close()


def test_kcat_group_consumer(kafka):
    t = kafka.name()
    a = kafka.admin()
    wait_futures(a.create_topics([NewTopic(t, num_partitions=2, replication_factor=1)]))
    lines = [f"g{i}".encode() for i in range(40)]
    kcat(kafka, "-P", "-t", t, input=b"\n".join(lines) + b"\n")
    g = kafka.name("g")
    # -G: balanced consumer group; stop once every message was read (-c), with auto commit
    out = kcat(kafka, "-G", g, "-o", "beginning", "-c", "40", "-f", "%s\n",
               "-X", "auto.commit.interval.ms=100", t)
    assert sorted(out.split()) == sorted(x.decode() for x in lines)
    c = kafka.consumer(g)
    committed = c.committed([TopicPartition(t, 0), TopicPartition(t, 1)], timeout=TIMEOUT)
    assert sum(tp.offset for tp in committed if tp.offset > 0) == 40
    c.close()


@pytest.mark.parametrize("strategy", ["roundrobin", "cooperative-sticky"])
def test_group_assignors_are_opaque_to_the_broker(kafka, strategy):
    a = kafka.admin()
    t = kafka.name()
    wait_futures(a.create_topics([NewTopic(t, num_partitions=4, replication_factor=1)]))
    g = kafka.name("g")
    conf = dict(partition_assignment_strategy=strategy, session_timeout_ms=6000,
                heartbeat_interval_ms=500)
    c1, c2 = kafka.consumer(g, **conf), kafka.consumer(g, **conf)
    c1.subscribe([t])
    c2.subscribe([t])
    deadline = time.time() + TIMEOUT
    while time.time() < deadline:
        c1.poll(0.2)
        c2.poll(0.2)
        a1 = {tp.partition for tp in c1.assignment()}
        a2 = {tp.partition for tp in c2.assignment()}
        if a1 and a2 and not (a1 & a2) and a1 | a2 == {0, 1, 2, 3}:
            break
    else:
        pytest.fail(f"no balanced assignment: {c1.assignment()} {c2.assignment()}")
    c1.close()
    c2.close()


def test_max_message_bytes_is_enforced(kafka):
    a = kafka.admin()
    t = kafka.name()
    wait_futures(a.create_topics([NewTopic(t, num_partitions=1, replication_factor=1,
                                           config={"max.message.bytes": "1000"})]))
    errors = []
    p = kafka.producer()
    p.produce(t, value=b"x" * 5000, on_delivery=lambda err, msg: errors.append(err))
    p.flush(TIMEOUT)  # alone in its batch: the next one must not share its fate
    p.produce(t, value=b"small", on_delivery=lambda err, msg: errors.append(err))
    p.flush(TIMEOUT)
    assert errors[0] is not None and errors[0].code() == KafkaError.MSG_SIZE_TOO_LARGE
    assert errors[1] is None


@pytest.mark.parametrize("codec", ["gzip", "snappy", "zstd"])
def test_kafka_python_compressed_batches_are_served_back(kafka, codec):
    kp = pytest.importorskip("kafka")
    t = kafka.name()
    prod = kp.KafkaProducer(bootstrap_servers=kafka.bootstrap, compression_type=codec,
                            linger_ms=20)
    for i in range(100):
        prod.send(t, value=f"{codec}-{i}".encode())
    prod.flush()
    prod.close()
    # another client (librdkafka) reads what kafka-python compressed (xerial snappy framing)
    c = kafka.consumer(kafka.name("g"))
    c.assign([TopicPartition(t, 0, 0)])
    got = consume_n(c, 100)
    assert [m.value() for m in got] == [f"{codec}-{i}".encode() for i in range(100)]
    assert [m.offset() for m in got] == list(range(100))
    c.close()


def test_offset_fetch_of_every_topic_kafka_python(kafka):
    """OffsetFetch with no topic list (v2+: every committed offset of the group), as kafka-python's
    list_consumer_group_offsets sends it: many partitions of two topics, grouped right."""
    kp = pytest.importorskip("kafka")
    sizes = {kafka.name("a"): 40, kafka.name("b"): 3}
    admin = kafka.admin()
    for f in admin.create_topics([NewTopic(t, n, 1) for t, n in sizes.items()]).values():
        f.result(TIMEOUT)
    group = kafka.name("g")
    c = kafka.consumer(group, enable_auto_commit=False)
    want = {(t, p): 100 * p + n for t, n in sizes.items() for p in range(n)}
    c.commit(offsets=[TopicPartition(t, p, off) for (t, p), off in want.items()],
             asynchronous=False)
    c.close()
    kadmin = kp.KafkaAdminClient(bootstrap_servers=kafka.bootstrap)
    got = kadmin.list_consumer_group_offsets(group)  # partitions=None: every topic
    kadmin.close()
    assert {(tp.topic, tp.partition): om.offset for tp, om in got.items()} == want
