"""ternd acknowledges a request at once when its answer will wait.

librdkafka (and so confluent-kafka, kcat and most non-Java clients) leaves Nagle's algorithm on:
while a request it sent is unacknowledged at the TCP level, its next small request stays in its
socket. Linux delays ACKs on a request/response connection, expecting to send the ACK with the
answer, so when the answer waits (a Fetch long poll, an acks=all Produce behind an fsync) the
client's next request waited with it: 40 ms or more with a parked Fetch, and in the acks=all
benchmark every produce request queued behind the previous one's fsync (end-to-end p50 1.9 ms
instead of 0.25 ms). This test is that client: a socket with Nagle on (Python's default, as
librdkafka's), a Fetch that parks, then a Produce to the partition it waits on. The Produce can
only reach ternd once the Fetch has been acknowledged, and the Fetch is answered when it does.
"""

import socket
import statistics
import struct
import time

from rawkafka import Conn, parse_produce_v7, record_batch

# Linux's smallest delayed-ACK timeout is 40 ms (TCP_DELACK_MIN); without the prompt ACK every
# trial took at least that. With it a trial takes about a millisecond on an idle machine.
DELAYED_ACK_MIN_S = 0.040
TRIALS = 7


def create_topic(k, name):
    from confluent_kafka.admin import NewTopic
    admin = k.admin()  # kept: the future fails if its client is freed first
    admin.create_topics([NewTopic(name, 1, 1)])[name].result(30)


def fetch_records_len(body):
    """Bytes of records in a Fetch v4 response's only partition."""
    pos = 4  # throttle
    (nt,) = struct.unpack_from(">i", body, pos)
    assert nt == 1
    pos += 4
    (ln,) = struct.unpack_from(">h", body, pos)
    pos += 2 + ln
    (np_,) = struct.unpack_from(">i", body, pos)
    assert np_ == 1
    pos += 4
    _part, err, _hw, _lso = struct.unpack_from(">ihqq", body, pos)
    assert err == 0
    pos += 4 + 2 + 8 + 8
    (naborted,) = struct.unpack_from(">i", body, pos)
    pos += 4 + max(naborted, 0) * 16
    (nrec,) = struct.unpack_from(">i", body, pos)
    return nrec


def test_parked_fetch_is_acknowledged_so_a_nagle_client_can_send_more(kafka):
    topic = kafka.name("ack")
    create_topic(kafka, topic)
    c = Conn(kafka.port)
    assert c.s.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 0  # Nagle on
    # request/response traffic first: Linux leaves its quick-ACK start and delays ACKs
    for _ in range(30):
        c.api_versions()
        c.recv()
    times = []
    for offset in range(TRIALS):
        t0 = time.monotonic()
        fetch = c.fetch(topic, 0, offset, max_wait_ms=5000)
        produce = c.produce(topic, 0, record_batch([b"x%d" % offset]), acks=1)
        corr, body = c.recv()
        times.append(time.monotonic() - t0)
        assert corr == fetch
        assert fetch_records_len(body) > 0  # answered by the record, not the timeout
        corr, body = c.recv()
        assert corr == produce
        assert parse_produce_v7(body)[0][2:] == (0, offset)
    c.close()
    # the median: one trial slowed by the machine does not decide it
    assert statistics.median(times) < DELAYED_ACK_MIN_S / 2, times
