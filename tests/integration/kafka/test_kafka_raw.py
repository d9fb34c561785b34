"""Raw Kafka requests: version negotiation, malformed input, response order, acks=0,
idempotent producer state across a kill -9, CRC checks, SASL PLAIN."""

import struct
import subprocess
import time

import pytest

from rawkafka import Conn, array, parse_produce_v7, record_batch, string

UNSUPPORTED_VERSION = 35
CORRUPT_MESSAGE = 2
OUT_OF_ORDER_SEQUENCE_NUMBER = 45
SASL_AUTHENTICATION_FAILED = 58
ILLEGAL_SASL_STATE = 34
INVALID_RECORD = 87


def test_api_versions_every_version(kafka):
    c = Conn(kafka.port)
    for v in range(4):
        corr = c.api_versions(v)
        got, body = c.recv()  # the header is v0 even for the flexible v3
        assert got == corr
        (err,) = struct.unpack_from(">h", body, 0)
        assert err == 0
    c.close()


def test_api_versions_unsupported_version_gets_v0_error_35(kafka):
    c = Conn(kafka.port)
    corr = c.send(18, 9, b"\x00\x00\x00", flexible=True)  # v9, a body we cannot know
    got, body = c.recv()
    assert got == corr
    err, n = struct.unpack_from(">hi", body, 0)
    assert err == UNSUPPORTED_VERSION and n == 1
    key, lo, hi = struct.unpack_from(">hhh", body, 6)
    assert (key, lo, hi) == (18, 0, 3)
    # the connection is still usable at a supported version
    corr = c.api_versions(0)
    assert c.recv()[0] == corr
    c.close()


def still_serves(kafka):
    c = Conn(kafka.port)
    corr = c.api_versions(0)
    assert c.recv()[0] == corr
    c.close()


@pytest.mark.parametrize("payload", [
    b"",                                              # shorter than a header
    struct.pack(">hhi", 18, 0, 1),                    # header without client id
    struct.pack(">hhi", 999, 0, 1) + string("x"),     # unknown api key
    struct.pack(">hhi", 3, 99, 1) + string("x"),      # unsupported Metadata version
    struct.pack(">hhi", 3, 1, 1) + string("x") + struct.pack(">i", 5),  # truncated topic list
    struct.pack(">hhi", 3, 1, 1) + string("x") + struct.pack(">i", 0x7fffffff),  # huge array
    struct.pack(">hhi", 0, 7, 1) + string("x") + b"\xff" * 40,  # garbage produce
], ids=["empty", "no-client-id", "unknown-api", "bad-version", "truncated", "huge-array",
        "garbage-produce"])
def test_malformed_request_closes_only_that_connection(kafka, payload):
    c = Conn(kafka.port)
    c.send_raw(payload)
    assert c.closed_by_peer()
    c.close()
    still_serves(kafka)


def test_negative_and_oversized_frames(kafka_factory):
    k = kafka_factory("--max-request-bytes", "65536")
    for prefix in (struct.pack(">i", -5), struct.pack(">i", 70000)):
        c = Conn(k.port)
        c.s.sendall(prefix)
        assert c.closed_by_peer()
        c.close()
    still_serves(k)


def test_responses_come_back_in_request_order(kafka):
    t = kafka.name()
    c = Conn(kafka.port)
    c.metadata([t])  # auto-creates
    c.recv()
    t0 = time.time()
    first = c.fetch(t, 0, 0, max_wait_ms=700, min_bytes=1)  # waits: the topic is empty
    second = c.api_versions(0)
    got = [c.recv()[0], c.recv()[0]]
    assert got == [first, second]
    assert time.time() - t0 >= 0.6
    c.close()


def test_fetch_long_poll_wakes_on_produce(kafka):
    t = kafka.name()
    c = Conn(kafka.port)
    c.metadata([t])
    c.recv()
    t0 = time.time()
    c.fetch(t, 0, 0, max_wait_ms=10000, min_bytes=1)
    p = Conn(kafka.port)
    p.produce(t, 0, record_batch([b"wake"]))
    p.recv()
    _, body = c.recv()
    assert time.time() - t0 < 5
    assert b"wake" in body
    c.close()
    p.close()


def test_acks_0_gets_no_response(kafka):
    t = kafka.name()
    c = Conn(kafka.port)
    c.produce(t, 0, record_batch([b"fire-and-forget"]), acks=0)
    corr = c.api_versions(0)
    assert c.recv()[0] == corr  # the first response is the ApiVersions one
    c.close()


def test_crc_mismatch_is_corrupt_message(kafka):
    t = kafka.name()
    c = Conn(kafka.port)
    c.produce(t, 0, record_batch([b"x"], corrupt=True))
    [(_, _, err, _)] = parse_produce_v7(c.recv()[1])
    assert err == CORRUPT_MESSAGE
    c.produce(t, 0, record_batch([b"y"]))
    [(_, _, err, base)] = parse_produce_v7(c.recv()[1])
    assert err == 0 and base == 0
    c.close()


def test_idempotent_duplicates_and_gaps_survive_kill9(kafka):
    t = kafka.name()
    pid, epoch = 4242, 0
    c = Conn(kafka.port)
    c.produce(t, 0, record_batch([b"a", b"b"], pid, epoch, 0))
    assert parse_produce_v7(c.recv()[1])[0][2:] == (0, 0)
    c.produce(t, 0, record_batch([b"c"], pid, epoch, 2))
    assert parse_produce_v7(c.recv()[1])[0][2:] == (0, 2)
    c.close()
    kafka.kill9_restart()
    c = Conn(kafka.port)
    # a retry of the first batch: its original offset back, nothing appended
    c.produce(t, 0, record_batch([b"a", b"b"], pid, epoch, 0))
    assert parse_produce_v7(c.recv()[1])[0][2:] == (0, 0)
    # a sequence gap
    c.produce(t, 0, record_batch([b"z"], pid, epoch, 7))
    assert parse_produce_v7(c.recv()[1])[0][2] == OUT_OF_ORDER_SEQUENCE_NUMBER
    # the next in order goes to offset 3
    c.produce(t, 0, record_batch([b"d"], pid, epoch, 3))
    assert parse_produce_v7(c.recv()[1])[0][2:] == (0, 3)
    c.close()


def sasl_handshake(c, mech="PLAIN", version=1):
    c.send(17, version, string(mech))
    _, body = c.recv()
    return struct.unpack_from(">h", body, 0)[0]


def sasl_authenticate(c, user, password):
    token = b"\x00" + user.encode() + b"\x00" + password.encode()
    c.send(36, 0, struct.pack(">i", len(token)) + token)
    _, body = c.recv()
    return struct.unpack_from(">h", body, 0)[0]


def test_sasl_plain_required(kafka_factory):
    k = kafka_factory("--kafka-sasl", "true", "--default-user", "alice",
                      "--default-pass", "s3cret")
    c = Conn(k.port)
    c.metadata([])
    assert c.closed_by_peer()  # nothing but ApiVersions and SASL before authentication
    c.close()
    c = Conn(k.port)
    assert sasl_handshake(c, "SCRAM-SHA-256") == 33
    assert sasl_handshake(c) == 0
    assert sasl_authenticate(c, "alice", "wrong") == SASL_AUTHENTICATION_FAILED
    assert c.closed_by_peer()
    c.close()
    c = Conn(k.port)
    assert sasl_handshake(c) == 0
    assert sasl_authenticate(c, "alice", "s3cret") == 0
    corr = c.metadata([])
    assert c.recv()[0] == corr
    c.close()
    # a real client: kcat with SASL_PLAINTEXT
    t = k.name()
    base = ["kcat", "-b", k.bootstrap, "-X", "broker.address.family=v4",
            "-X", "security.protocol=SASL_PLAINTEXT", "-X", "sasl.mechanisms=PLAIN",
            "-X", "sasl.username=alice"]
    r = subprocess.run(base + ["-X", "sasl.password=s3cret", "-P", "-t", t], input=b"hello\n",
                       capture_output=True, timeout=30)
    assert r.returncode == 0, r.stderr
    r = subprocess.run(base + ["-X", "sasl.password=s3cret", "-C", "-t", t, "-e", "-o",
                               "beginning"], capture_output=True, timeout=30)
    assert r.stdout == b"hello\n", r.stderr
    r = subprocess.run(base + ["-X", "sasl.password=nope", "-L"], capture_output=True,
                       timeout=30)
    assert r.returncode != 0


def test_sasl_v0_bare_token_exchange(kafka_factory):
    """SaslHandshake v0: the PLAIN token follows in a bare size-prefixed frame, answered by an
    empty token (a zero size); a wrong one closes the connection, as Kafka does."""
    k = kafka_factory("--kafka-sasl", "true", "--default-user", "alice",
                      "--default-pass", "s3cret")
    c = Conn(k.port)
    assert sasl_handshake(c, version=0) == 0
    c.send_raw(b"\x00alice\x00s3cret")
    assert c._read(4) == b"\x00\x00\x00\x00"
    corr = c.metadata([])
    assert c.recv()[0] == corr
    c.close()
    for token in (b"\x00alice\x00wrong", b"no separators", b""):
        c = Conn(k.port)
        assert sasl_handshake(c, version=0) == 0
        c.send_raw(token)
        assert c.closed_by_peer(), token
        c.close()
    # v1 still expects a SaslAuthenticate request, not a bare token
    c = Conn(k.port)
    assert sasl_handshake(c, version=1) == 0
    c.send_raw(b"\x00alice\x00s3cret")
    assert c.closed_by_peer()
    c.close()
    # an unknown mechanism at v0 leaves the connection in request mode
    c = Conn(k.port)
    assert sasl_handshake(c, "SCRAM-SHA-512", version=0) == 33
    assert sasl_handshake(c, version=1) == 0
    assert sasl_authenticate(c, "alice", "s3cret") == 0
    c.close()


def test_sasl_handshake_refused_without_sasl(kafka):
    """As Kafka: ILLEGAL_SASL_STATE (34) for a handshake on a listener without SASL; the
    connection stays usable."""
    c = Conn(kafka.port)
    for version in (0, 1):
        assert sasl_handshake(c, version=version) == ILLEGAL_SASL_STATE
    corr = c.metadata([])
    assert c.recv()[0] == corr
    c.close()


def test_sasl_handshake_refused_after_authentication(kafka_factory):
    k = kafka_factory("--kafka-sasl", "true", "--default-user", "alice",
                      "--default-pass", "s3cret")
    c = Conn(k.port)
    assert sasl_handshake(c) == 0
    assert sasl_authenticate(c, "alice", "s3cret") == 0
    assert sasl_handshake(c) == ILLEGAL_SASL_STATE
    assert sasl_handshake(c, version=0) == ILLEGAL_SASL_STATE
    corr = c.metadata([])
    assert c.recv()[0] == corr
    c.close()


def test_pre_auth_request_cap_is_smaller(kafka_factory):
    k = kafka_factory("--kafka-sasl", "true")
    c = Conn(k.port)
    c.s.sendall(struct.pack(">i", 100000))  # over the 64 KiB pre-auth cap
    assert c.closed_by_peer()
    c.close()


def test_unknown_topic_and_partition_errors(kafka_factory):
    k = kafka_factory("--auto-create-topics", "false")
    c = Conn(k.port)
    c.metadata(["nope"])
    _, body = c.recv()
    assert b"nope" in body
    # topics array: after brokers and controller id; find error code 3 before the name
    i = body.index(b"\x00\x04nope")
    assert struct.unpack_from(">h", body, i - 2)[0] == 3
    c.produce("nope", 0, record_batch([b"x"]))
    assert parse_produce_v7(c.recv()[1])[0][2] == 3
    c.close()


def test_records_array_with_two_batches_is_refused(kafka):
    """Produce v3+ carries exactly one batch per partition: Kafka answers more with
    INVALID_RECORD (87) and appends none of them."""
    t = kafka.name()
    c = Conn(kafka.port)
    two = record_batch([b"1", b"2"]) + record_batch([b"3"])
    c.produce(t, 0, two)
    assert parse_produce_v7(c.recv()[1])[0][2] == INVALID_RECORD
    c.produce(t, 0, record_batch([b"4"]))
    assert parse_produce_v7(c.recv()[1])[0][2:] == (0, 0)  # offset 0: nothing was appended
    c.close()


def test_metadata_v0_empty_list_means_all_topics(kafka):
    t = kafka.name()
    c = Conn(kafka.port)
    c.metadata([t])
    c.recv()
    c.send(3, 0, array([]))
    _, body = c.recv()
    assert t.encode() in body
    c.close()


def list_offset(c, topic, partition, ts, version=1):
    body = struct.pack(">i", -1) + array([string(topic) + array([struct.pack(">iq", partition,
                                                                               ts)])])
    c.send(2, version, body)
    _, body = c.recv()
    # v1: topics[name, partitions[index, error, timestamp, offset]]
    i = 4 + 2 + len(topic) + 4
    index, err, ts_out, off = struct.unpack_from(">ihqq", body, i)
    return err, off


def test_delete_records_moves_the_log_start(kafka_factory):
    k = kafka_factory("--segment-bytes", "4096")
    t = k.name()
    c = Conn(k.port)
    for i in range(60):
        c.produce(t, 0, record_batch([b"x" * 200]))
        assert parse_produce_v7(c.recv()[1])[0][2] == 0
    assert list_offset(c, t, 0, -2) == (0, 0)
    assert list_offset(c, t, 0, -1) == (0, 60)
    body = array([string(t) + array([struct.pack(">iq", 0, 40)])]) + struct.pack(">i", 5000)
    c.send(21, 0, body)
    _, resp = c.recv()
    i = 4 + 4 + 2 + len(t) + 4
    index, low, err = struct.unpack_from(">iqh", resp, i)
    assert (index, low, err) == (0, 40, 0)
    assert list_offset(c, t, 0, -2) == (0, 40)
    # a fetch below the new start is out of range
    c.fetch(t, 0, 0)
    _, resp = c.recv()
    i = 4 + 4 + 2 + len(t) + 4  # v4: throttle, topics, name, partitions
    assert struct.unpack_from(">ih", resp, i) == (0, 1)  # OFFSET_OUT_OF_RANGE
    c.close()
    # and it holds after a restart
    k.restart()
    c = Conn(k.port)
    assert list_offset(c, t, 0, -2) == (0, 40)
    c.close()


def test_auto_created_topics_get_num_partitions(kafka_factory):
    k = kafka_factory("--num-partitions", "3")
    t = k.name()
    c = Conn(k.port)
    c.metadata([t])
    _, body = c.recv()
    i = body.index(string(t)) + 2 + len(t) + 1  # name, is_internal
    assert struct.unpack_from(">i", body, i)[0] == 3
    c.close()


def test_orphan_partition_logs_are_dropped_and_topics_survive_restart(kafka, tern_run):
    t = kafka.name()
    c = Conn(kafka.port)
    c.produce(t, 0, record_batch([b"keep"]))
    assert parse_produce_v7(c.recv()[1])[0][2] == 0
    c.close()
    kafka.ternd.stop()
    # a partition log of no topic, as a crash during a topic delete leaves it
    orphan = "k.00000000deadbeef.0"
    r = tern_run("log", "append", "--data-dir", kafka.data_dir, orphan, "x")
    assert r.returncode == 0, r.stderr
    kafka.restart()
    assert "orphan_partition_dropped log=" + orphan in kafka.ternd.log_text()
    kafka.ternd.stop()
    r = tern_run("log", "list", "--data-dir", kafka.data_dir)
    assert orphan not in r.stdout
    assert r.stdout.count("k.") == 1  # the topic's partition stays


def test_random_requests_never_take_the_broker_down(kafka):
    import random
    rnd = random.Random(4711)
    apis = [(0, 7), (1, 11), (2, 5), (3, 8), (8, 7), (9, 7), (10, 2), (11, 5), (12, 3), (13, 3),
            (14, 3), (15, 4), (16, 2), (17, 1), (18, 3), (19, 4), (20, 3), (21, 1), (22, 4),
            (23, 3), (32, 2), (33, 1), (36, 1), (37, 1), (42, 1)]
    for i in range(300):
        c = Conn(kafka.port, timeout=5)
        api, vmax = rnd.choice(apis)
        ver = rnd.randint(0, vmax)
        body = bytes(rnd.getrandbits(8) for _ in range(rnd.randint(0, 200)))
        if i % 3 == 0:
            c.send_raw(bytes(rnd.getrandbits(8) for _ in range(rnd.randint(0, 64))))
        else:
            c.send(api, ver, body, flexible=rnd.random() < 0.5)
        try:
            c.s.settimeout(0.2)
            c.s.recv(65536)
        except (OSError, ConnectionError):
            pass
        c.close()
    assert kafka.ternd.running
    still_serves(kafka)
