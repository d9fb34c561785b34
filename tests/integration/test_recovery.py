"""Storage recovery end to end, through the real binaries: logs written with `tern log append`,
damaged on disk, then opened by ternd (and read back with `tern log dump`).

The store's log lines checked here:
    event=log_open log=NAME clean=true|false start=N end=N segments=N bytes=N
    event=log_refused log=NAME reason="<why> in <dir>/<base>.log at byte <pos>"
    event=torn_tail log=NAME file=<dir>/<base>.log pos=<pos> dropped_bytes=N reason="..."
"""

import re
import struct
import subprocess

import pytest

from ternlib import TIMEOUT

FIRST_SEGMENT = "00000000000000000000.log"


# ---- helpers ----------------------------------------------------------------------------------

@pytest.fixture
def data_dir(tmp_path):
    return tmp_path / "data"


@pytest.fixture
def tern(tern_bin, tmp_path):
    """tern(*args) -> CompletedProcess (text); fails the test on a non-zero exit unless
    check=False."""

    def run(*args, check=True):
        r = subprocess.run([tern_bin, *map(str, args)], cwd=tmp_path, stdin=subprocess.DEVNULL,
                           capture_output=True, text=True, errors="replace", timeout=TIMEOUT)
        if check:
            assert r.returncode == 0, f"tern {args}: exit {r.returncode}\n{r.stderr}"
        return r

    return run


def append(tern, data_dir, name, *values):
    r = tern("log", "append", "--data-dir", data_dir, name, "--", *values)
    m = re.fullmatch(r"appended base_offset=(\d+) last_offset=(\d+)\n", r.stdout)
    assert m, r.stdout
    return int(m.group(1)), int(m.group(2))


def dump_values(tern, data_dir, name, *extra):
    """[(offset, value)] from `tern log dump`."""
    r = tern("log", "dump", "--data-dir", data_dir, name, *extra)
    out = []
    for line in r.stdout.splitlines():
        m = re.fullmatch(r"offset=(\d+) timestamp=\d+ key=\S+ value=(.*)", line)
        assert m, line
        out.append((int(m.group(1)), m.group(2)))
    return out


def segments(log_dir):
    return sorted(log_dir.glob("*.log"))


def batches(path):
    """[(position, size)] of the batches in a segment file (RecordBatch v2: batchLength is
    the big-endian int32 at byte 8; the batch is 12 + batchLength bytes)."""
    data = path.read_bytes()
    out, pos = [], 0
    while pos + 12 <= len(data):
        (length,) = struct.unpack_from(">i", data, pos + 8)
        out.append((pos, 12 + length))
        pos += 12 + length
    assert pos == len(data), f"{path} does not end on a batch boundary"
    return out


def one_segment_with_batches(log_dir, n):
    """The log's only segment file, checked to hold n batches (one per `tern log append`)."""
    segs = segments(log_dir)
    assert [s.name for s in segs] == [FIRST_SEGMENT], (
        f"{n} appends, each in its own process, should share the first segment "
        f"(segment_ms is 7 days); found {[s.name for s in segs]}")
    seg = segs[0]
    assert len(batches(seg)) == n
    return seg


def flip_byte(path, pos):
    data = bytearray(path.read_bytes())
    data[pos] ^= 0xFF
    path.write_bytes(bytes(data))


def drop_clean_marker(log_dir):
    marker = log_dir / "clean-shutdown"
    assert marker.exists(), "the CLI should have closed the log cleanly"
    marker.unlink()


def store_events(t, event, name):
    """The store's (mod=store) lines with event=event for log name. ternd repeats some of
    them (e.g. log_refused) with mod=server."""
    return [e for e in t.events(event) if e.get("log") == name and e.get("mod") == "store"]


def log_open_event(t, name):
    found = store_events(t, "log_open", name)
    assert len(found) == 1, t.log_text()
    return found[0]


# ---- corruption -------------------------------------------------------------------------------

def test_corrupt_log_is_refused_and_others_keep_working(tern, data_dir, ternd_factory):
    for i in range(3):
        append(tern, data_dir, "bad", f"bad-{i}-a", f"bad-{i}-b")
    append(tern, data_dir, "good", "g1", "g2")
    bad_dir = data_dir / "logs" / "bad"
    seg = one_segment_with_batches(bad_dir, 3)
    pos, size = batches(seg)[1]  # an early batch, not the last: damage, not a torn tail
    flip_byte(seg, pos + size // 2)
    drop_clean_marker(bad_dir)
    damaged = seg.read_bytes()

    t = ternd_factory(data_dir=data_dir)
    refused = store_events(t, "log_refused", "bad")
    assert len(refused) == 1, t.log_text()
    reason = refused[0]["reason"]
    assert str(seg) in reason, reason  # names the file ...
    assert re.search(rf"\bbyte {pos}\b", reason), reason  # ... and where the bad batch starts
    ready = t.event("ready")
    assert ready is not None and ready.get("refused") == "1", t.log_text()
    assert t.running
    log_open_event(t, "good")
    assert not [e for e in t.events("log_open") if e.get("log") == "bad"]
    assert t.stop() == 0

    assert seg.read_bytes() == damaged  # a refused log is left as it was, for inspection
    assert dump_values(tern, data_dir, "good") == [(0, "g1"), (1, "g2")]
    r = tern("log", "dump", "--data-dir", data_dir, "bad", check=False)
    assert r.returncode == 1
    assert "refused" in r.stderr and str(seg) in r.stderr, r.stderr


def test_truncation_below_checkpoint_is_refused(tern, data_dir, ternd_factory):
    """Bytes a checkpoint says were durable are missing: that is damage, not a torn tail."""
    for i in range(3):
        append(tern, data_dir, "cut", f"v{i}")
    log_dir = data_dir / "logs" / "cut"
    seg = one_segment_with_batches(log_dir, 3)
    pos, size = batches(seg)[2]
    with open(seg, "r+b") as f:
        f.truncate(pos + size // 2)
    drop_clean_marker(log_dir)

    t = ternd_factory(data_dir=data_dir)
    refused = store_events(t, "log_refused", "cut")
    assert len(refused) == 1, t.log_text()
    assert str(seg) in refused[0]["reason"], refused[0]
    assert t.running and t.event("ready") is not None
    assert t.stop() == 0


# ---- torn tail --------------------------------------------------------------------------------

def half_batch(seg):
    pos, size = batches(seg)[0]
    return seg.read_bytes()[pos:pos + size // 2]


@pytest.mark.parametrize("tail", ["half_batch", "garbage", "zeros", "header_only"])
def test_torn_tail_is_truncated(tern, data_dir, ternd_factory, tail):
    append(tern, data_dir, "torn", "a", "b")
    append(tern, data_dir, "torn", "c")
    log_dir = data_dir / "logs" / "torn"
    seg = segments(log_dir)[-1]  # the active segment: where a crash tears the tail
    good_size = seg.stat().st_size
    junk = {
        "half_batch": half_batch(seg),
        "garbage": bytes(range(7, 250, 3)),
        "zeros": bytes(100),
        "header_only": half_batch(seg)[:61],
    }[tail]
    with open(seg, "ab") as f:
        f.write(junk)
    drop_clean_marker(log_dir)

    t = ternd_factory(data_dir=data_dir)
    torn = store_events(t, "torn_tail", "torn")
    assert len(torn) == 1, t.log_text()
    assert torn[0]["file"] == str(seg)
    assert torn[0]["pos"] == str(good_size)
    opened = log_open_event(t, "torn")
    assert opened["clean"] == "false"
    assert opened["end"] == "3"
    assert t.stop() == 0

    assert seg.stat().st_size == good_size  # cut back to the last whole batch
    assert dump_values(tern, data_dir, "torn") == [(0, "a"), (1, "b"), (2, "c")]
    assert append(tern, data_dir, "torn", "d") == (3, 3)  # and appends continue after it
    assert [v for _, v in dump_values(tern, data_dir, "torn")] == ["a", "b", "c", "d"]


# ---- clean shutdown ---------------------------------------------------------------------------

def test_clean_shutdown_marker(tern, data_dir, ternd_factory):
    append(tern, data_dir, "c", "x", "y")
    log_dir = data_dir / "logs" / "c"
    marker = log_dir / "clean-shutdown"

    t = ternd_factory(data_dir=data_dir)
    assert log_open_event(t, "c")["clean"] == "true"  # the CLI closed it cleanly
    assert not marker.exists()  # taken while the log is open
    assert t.stop() == 0
    assert marker.exists()

    t = ternd_factory(data_dir=data_dir)
    assert log_open_event(t, "c")["clean"] == "true"
    assert t.stop() == 0

    marker.unlink()
    t = ternd_factory(data_dir=data_dir)
    opened = log_open_event(t, "c")
    assert opened["clean"] == "false"
    assert opened["end"] == "2"
    assert t.stop() == 0
    assert marker.exists()


def test_crash_leaves_no_marker_and_recovers(tern, data_dir, ternd_factory):
    append(tern, data_dir, "k", "1", "2", "3")
    t = ternd_factory(data_dir=data_dir)
    t.kill()  # SIGKILL: no clean close
    assert not (data_dir / "logs" / "k" / "clean-shutdown").exists()
    t = ternd_factory(data_dir=data_dir)
    opened = log_open_event(t, "k")
    assert opened["clean"] == "false" and opened["end"] == "3"
    assert t.stop() == 0
    assert [v for _, v in dump_values(tern, data_dir, "k")] == ["1", "2", "3"]


# ---- index files ------------------------------------------------------------------------------

N_BATCHES = 40
VALUE = "v" * 400  # 40 batches of ~0.9 KB: several 4 KiB index intervals


@pytest.fixture
def indexed_log(tern, data_dir):
    """A log of N_BATCHES batches (2 records each) in one segment; returns its directory."""
    for i in range(N_BATCHES):
        append(tern, data_dir, "idx", f"{i}-a-{VALUE}", f"{i}-b-{VALUE}")
    return data_dir / "logs" / "idx"


def expected_records(start=0):
    return [(2 * i + j, f"{i}-{'ab'[j]}-{VALUE}")
            for i in range(N_BATCHES) for j in range(2)][start:]


@pytest.mark.parametrize("damage", ["delete", "truncate", "garbage", "delete_timeindex"])
@pytest.mark.parametrize("clean", [True, False], ids=["clean", "unclean"])
def test_damaged_index_is_rebuilt(tern, data_dir, ternd_factory, indexed_log, damage, clean):
    one_segment_with_batches(indexed_log, N_BATCHES)
    index = indexed_log / "00000000000000000000.index"
    timeindex = indexed_log / "00000000000000000000.timeindex"
    original = index.read_bytes()
    assert len(original) >= 3 * 8, "expected several sparse index entries"
    if damage == "delete":
        index.unlink()
    elif damage == "truncate":
        index.write_bytes(original[: len(original) // 2 + 3])  # not a whole entry
    elif damage == "garbage":
        index.write_bytes(bytes([0xA5]) * len(original))
    else:
        timeindex.unlink()
    if not clean:
        drop_clean_marker(indexed_log)

    t = ternd_factory(data_dir=data_dir)
    opened = log_open_event(t, "idx")
    assert opened["end"] == str(2 * N_BATCHES)
    assert opened["clean"] == ("true" if clean else "false")
    assert not t.events("log_refused")
    assert t.stop() == 0

    assert index.read_bytes() == original  # rebuilt from the data, entry for entry
    assert timeindex.stat().st_size % 12 == 0 and timeindex.stat().st_size > 0
    assert dump_values(tern, data_dir, "idx") == expected_records()
    # reads from the middle use the index
    assert dump_values(tern, data_dir, "idx", "--from", "51") == expected_records(51)
    assert dump_values(tern, data_dir, "idx", "--from", "79") == expected_records(79)
