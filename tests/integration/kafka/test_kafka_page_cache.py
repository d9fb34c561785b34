"""--log-cache-bytes: once fsynced, all but the newest N bytes of a partition's log leave the
page cache, and records outside that window still read back intact.

The kernel drops whole folios only (up to 2 MiB for a file written in large appends), so the
segment that holds the window's start may keep one folio more than the window: the test checks
the segments wholly below the window.

Produced with acks=all by librdkafka (an acknowledgement follows the fsync job that also drops
the pages), read back by librdkafka from offset 0; page residency is read with mincore(2).
"""

import ctypes
import ctypes.util
import mmap
import os
import pathlib

import pytest

PAGE = 4096

libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
libc.mincore.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_char_p]


def resident(path, start, end):
    """(pages of path's [start, end) in the page cache, pages in that range); whole pages."""
    size = path.stat().st_size
    end = min(end, size)
    first, last = -(-start // PAGE), end // PAGE  # pages wholly inside the range
    if last <= first:
        return 0, 0
    vec = ctypes.create_string_buffer(-(-size // PAGE))
    with open(path, "rb") as f:
        m = mmap.mmap(f.fileno(), size, access=mmap.ACCESS_COPY)  # from_buffer wants it writable
        try:
            start_of = ctypes.c_char.from_buffer(m)
            rc = libc.mincore(ctypes.addressof(start_of), size, vec)
            del start_of  # the mapping cannot close while a ctypes view exports it
            if rc != 0:
                raise OSError(ctypes.get_errno(), "mincore")
        finally:
            m.close()
    pages = vec.raw[first:last]
    return sum(b & 1 for b in pages), len(pages)


def partition_segments(data_dir):
    """The .log files of the only partition log holding data, oldest first."""
    dirs = [d for d in (data_dir / "logs").iterdir() if d.is_dir() and not d.name.startswith(".")]
    with_data = [d for d in dirs if sum(f.stat().st_size for f in d.glob("*.log")) > 0]
    assert len(with_data) == 1, [d.name for d in with_data]
    return sorted(with_data[0].glob("[0-9]*[0-9].log"))


def produce(k, topic, n, size):
    p = k.producer(acks="all", linger_ms=5, enable_idempotence=True)
    failed = []
    for i in range(n):
        value = (f"v-{i}-".encode() * size)[:size]
        p.produce(topic, value, key=str(i).encode(), partition=0,
                  on_delivery=lambda err, msg: err and failed.append(err))
        if i % 500 == 0:
            p.poll(0)
    assert p.flush(30) == 0
    assert not failed


def consume_all(k, topic, n, size):
    import confluent_kafka
    c = k.consumer(k.name("g"), enable_auto_commit=False)
    c.assign([confluent_kafka.TopicPartition(topic, 0, 0)])
    seen = 0
    while seen < n:
        msg = c.poll(10)
        assert msg is not None, f"only {seen} of {n} records came back"
        assert msg.error() is None, msg.error()
        assert msg.offset() == seen
        assert msg.value() == (f"v-{seen}-".encode() * size)[:size]
        seen += 1
    c.close()


@pytest.mark.parametrize("window", [256 << 10, None])
def test_log_cache_window(kafka_factory, tmp_path, window):
    if _fstype_is_tmpfs(tmp_path):
        pytest.fail("this test needs the data dir on a disk filesystem (tmpfs pages stay cached)")
    args = ["--log-cache-bytes", str(window)] if window else []
    k = kafka_factory(*args)
    topic = k.name()
    from confluent_kafka.admin import NewTopic
    admin = k.admin()  # kept: the future fails if its client is destroyed first
    new = NewTopic(topic, 1, 1, config={"segment.bytes": str(1 << 20)})
    admin.create_topics([new])[topic].result(30)
    n, size = 3000, 1000
    produce(k, topic, n, size)
    segs = partition_segments(pathlib.Path(k.data_dir))
    assert len(segs) >= 3
    sizes = [s.stat().st_size for s in segs]
    total = sum(sizes)
    keep_from = total - (window or total)
    below = [0, 0]
    inside = [0, 0]
    at = 0
    for seg, sz in zip(segs, sizes):
        if at + sz <= keep_from:  # wholly below the window
            r = resident(seg, 0, sz)
            below = [below[0] + r[0], below[1] + r[1]]
        if at + sz > keep_from:
            r = resident(seg, max(keep_from - at, 0), sz)
            inside = [inside[0] + r[0], inside[1] + r[1]]
        at += sz
    # the newest bytes are cached either way: this filesystem shows what a drop leaves
    assert inside[1] >= 50 and inside[0] == inside[1], inside
    if window:
        assert below[1] >= 400
        assert below[0] == 0, f"{below[0]} of {below[1]} pages below the window are cached"
    else:
        assert inside[1] >= 600  # the whole log is the window
    consume_all(k, topic, n, size)


def _fstype_is_tmpfs(path):
    """True when path is on tmpfs (from /proc/self/mounts, longest matching mount point)."""
    best, fstype = "", ""
    real = os.path.realpath(path)
    with open("/proc/self/mounts") as f:
        for line in f:
            parts = line.split()
            mnt = parts[1]
            if (real == mnt or real.startswith(mnt.rstrip("/") + "/")) and len(mnt) > len(best):
                best, fstype = mnt, parts[2]
    return fstype == "tmpfs"
