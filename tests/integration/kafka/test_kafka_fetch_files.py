"""Fetch sends record bytes from the segment files, not through the broker's memory.

The bytes a Fetch returns must be the batches exactly as stored, across segment boundaries and
partitions, at every Fetch version; a consumer that stops reading must not make the broker copy
its response into memory; and segments deleted while a response still waits to be sent must
still be sent whole (the response holds them open). Every test runs twice: records copied
through the broker's small scratch buffer (the default) and sent with sendfile (--sendfile).
"""

import pathlib
import socket
import struct
import time

import pytest

from rawkafka import Conn, array, crc32c, parse_produce_v7, record_batch, string


@pytest.fixture(params=["copy", "sendfile"])
def kfiles(request, kafka_factory):
    return kafka_factory(*(["--sendfile", "true"] if request.param == "sendfile" else []))


def create_topic(k, name, segment_bytes):
    from confluent_kafka.admin import NewTopic
    admin = k.admin()
    new = NewTopic(name, 1, 1, config={"segment.bytes": str(segment_bytes)})
    admin.create_topics([new])[name].result(30)


def produce_all(c, topic, partition, batches, acks=1):
    offsets = []
    for b in batches:
        c.produce(topic, partition, b, acks=acks)
        res = parse_produce_v7(c.recv()[1])
        assert res[0][2] == 0, res
        offsets.append(res[0][3])
    return offsets


def fetch_request(parts, version, max_bytes=64 << 20, part_max=64 << 20, max_wait_ms=0):
    """parts: [(topic, partition, offset)], one topic entry per distinct topic, in order."""
    body = struct.pack(">iiii", -1, max_wait_ms, 1, max_bytes)
    if version >= 4:
        body += b"\x00"  # isolation level
    if version >= 7:
        body += struct.pack(">ii", 0, -1)  # session id, epoch
    topics = {}
    for t, p, off in parts:
        topics.setdefault(t, []).append((p, off))
    entries = []
    for t, ps in topics.items():
        items = []
        for p, off in ps:
            item = struct.pack(">i", p)
            if version >= 9:
                item += struct.pack(">i", -1)  # current leader epoch
            item += struct.pack(">q", off)
            if version >= 5:
                item += struct.pack(">q", -1)  # log start offset
            item += struct.pack(">i", part_max)
            items.append(item)
        entries.append(string(t) + array(items))
    body += array(entries)
    if version >= 7:
        body += array([])  # forgotten topics
    if version >= 11:
        body += string("")  # rack id
    return body


def parse_fetch(body, version):
    """{(topic, partition): (error, high watermark, records bytes)}."""
    pos = 4  # throttle
    if version >= 7:
        pos += 2 + 4  # error, session id
    out = {}
    (nt,) = struct.unpack_from(">i", body, pos)
    pos += 4
    for _ in range(nt):
        (ln,) = struct.unpack_from(">h", body, pos)
        topic = body[pos + 2:pos + 2 + ln].decode()
        pos += 2 + ln
        (np_,) = struct.unpack_from(">i", body, pos)
        pos += 4
        for _ in range(np_):
            part, err, hw, _lso = struct.unpack_from(">ihqq", body, pos)
            pos += 4 + 2 + 8 + 8
            if version >= 5:
                pos += 8
            (naborted,) = struct.unpack_from(">i", body, pos)
            pos += 4 + max(naborted, 0) * 16
            if version >= 11:
                pos += 4
            (rl,) = struct.unpack_from(">i", body, pos)
            pos += 4
            out[(topic, part)] = (err, hw, body[pos:pos + max(rl, 0)])
            pos += max(rl, 0)
    assert pos == len(body), "trailing bytes after the last partition"
    return out


def split_batches(records, check_crc=True):
    """[(base offset, batch bytes)], checking every batch's CRC-32C unless told not to (Python
    computes it at some 15 MB/s)."""
    out, pos = [], 0
    while pos < len(records):
        base, length = struct.unpack_from(">qi", records, pos)
        batch = records[pos:pos + 12 + length]
        assert len(batch) == 12 + length, "a partial batch"
        (crc,) = struct.unpack_from(">I", batch, 17)
        assert not check_crc or crc == crc32c(batch[21:]), f"bad CRC in the batch at {base}"
        out.append((base, batch))
        pos += 12 + length
    return out


def same_batch(stored, sent):
    """A stored batch is the produced one with the broker's base offset (bytes 0-7)."""
    return stored[8:] == sent[8:]


def test_fetch_returns_the_stored_batches_across_segments_and_partitions(kfiles):
    k = kfiles
    t1, t2 = k.name(), k.name()
    create_topic(k, t1, 8192)
    create_topic(k, t2, 8192)
    c = Conn(k.port)
    sent = {}
    for t, p, n in ((t1, 0, 40), (t2, 0, 25)):
        batches = [record_batch([bytes([i % 251]) * (300 + i)]) for i in range(n)]
        produce_all(c, t, p, batches)
        sent[(t, p)] = batches
    for version in (4, 5, 7, 11):
        parts = [(t1, 0, 3), (t2, 0, 0)]
        c.send(1, version, fetch_request(parts, version))
        got = parse_fetch(c.recv()[1], version)
        for (t, p, start) in parts:
            err, hw, records = got[(t, p)]
            assert err == 0 and hw == len(sent[(t, p)])
            batches = split_batches(records)
            # many 8 KiB segments: the response reads on into up to 16 of them per partition
            assert len(batches) > 8, (version, t, len(batches))
            for i, (base, b) in enumerate(batches):
                assert base == start + i
                assert same_batch(b, sent[(t, p)][start + i])
    c.close()


def vm_rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


def test_stalled_consumer_costs_no_memory_and_keeps_deleted_segments(kfiles):
    k = kfiles
    t = k.name()
    create_topic(k, t, 4 << 20)
    c = Conn(k.port)
    value = 512 * 1024
    batches = [record_batch([bytes([i]) * value]) for i in range(48)]  # 24 MiB, 6 segments
    produce_all(c, t, 0, batches)
    time.sleep(0.5)
    before = vm_rss_kib(k.ternd.pid)

    # a consumer that asks for all of it and reads nothing
    slow = Conn(k.port)
    slow.s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
    slow.send(1, 4, fetch_request([(t, 0, 0)], 4, max_bytes=64 << 20, part_max=64 << 20))
    time.sleep(1.0)
    grown = vm_rss_kib(k.ternd.pid) - before
    # a copied response would be 24 MiB or more; only a 16 KiB nudge is held in memory
    assert grown < 8 * 1024, f"ternd grew by {grown} KiB while the consumer stalled"

    # delete every segment the stalled response still has to send (DeleteRecords to the end)
    body = array([string(t) + array([struct.pack(">iq", 0, 48)])]) + struct.pack(">i", 5000)
    c.send(21, 0, body)
    c.recv()
    deadline = time.time() + 10
    while "00000000000000000000.log" in _segment_files(k) and time.time() < deadline:
        time.sleep(0.05)
    assert "00000000000000000000.log" not in _segment_files(k), "the first segment was kept"

    # now read: the whole response arrives intact, from the deleted (still open) files
    slow.s.settimeout(30)
    got = parse_fetch(slow.recv()[1], 4)
    err, hw, records = got[(t, 0)]
    assert err == 0 and hw == 48
    out = split_batches(records, check_crc=False)  # same_batch compares every byte
    assert len(out) == 48
    for i, (base, b) in enumerate(out):
        assert base == i and same_batch(b, batches[i])
    slow.close()
    c.close()


def _segment_files(k):
    return [p.name for p in pathlib.Path(k.data_dir).rglob("*.log")]
