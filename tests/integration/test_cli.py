"""The `tern` command-line tool: `tern log list|append|dump|delete` on a data directory."""

import os
import re
import signal
import subprocess
import time

import pytest

from ternlib import REPO, TIMEOUT

DUMP_LINE = re.compile(r"^offset=(\d+) timestamp=(-?\d+) key=(.*?) value=(.*)$")
APPENDED = re.compile(r"^appended base_offset=(\d+) last_offset=(\d+)$")


def project_version():
    text = (REPO / "CMakeLists.txt").read_text()
    return re.search(r"project\(tern VERSION ([0-9.]+)", text).group(1)


@pytest.fixture
def data_dir(tmp_path):
    return tmp_path / "data"


@pytest.fixture
def tern(tern_bin, tmp_path):
    """tern(*args, input=None) -> CompletedProcess with bytes stdout/stderr decoded leniently.
    input may be str or bytes; stdin is /dev/null without it."""

    def run(*args, input=None):
        if isinstance(input, str):
            input = input.encode()
        r = subprocess.run([tern_bin, *map(str, args)], cwd=tmp_path, input=input,
                           stdin=None if input is not None else subprocess.DEVNULL,
                           capture_output=True, timeout=TIMEOUT)
        r.stdout = r.stdout.decode("utf-8", "replace")
        r.stderr = r.stderr.decode("utf-8", "replace")
        return r

    return run


def ok(r):
    assert r.returncode == 0, f"exit {r.returncode}\nstdout:\n{r.stdout}\nstderr:\n{r.stderr}"
    return r


def append(tern, data_dir, name, *values, key=None, input=None):
    """Runs `tern log append` and returns (base_offset, last_offset)."""
    args = ["log", "append", "--data-dir", data_dir, name]
    if key is not None:
        args += ["--key", key]
    if values:
        args += ["--", *values]
    r = ok(tern(*args, input=input))
    m = APPENDED.match(r.stdout.strip())
    assert m and r.stdout.count("\n") == 1, r.stdout
    return int(m.group(1)), int(m.group(2))


def dump(tern, data_dir, name, *extra):
    """`tern log dump` as a list of (offset, timestamp, key, value) tuples."""
    r = ok(tern("log", "dump", "--data-dir", data_dir, name, *extra))
    out = []
    for line in r.stdout.splitlines():
        m = DUMP_LINE.match(line)
        assert m, f"unexpected dump line {line!r}"
        out.append((int(m.group(1)), int(m.group(2)), m.group(3), m.group(4)))
    return out


def list_logs(tern, data_dir):
    """`tern log list` as {name: {key: value}}."""
    r = ok(tern("log", "list", "--data-dir", data_dir))
    logs = {}
    for line in r.stdout.splitlines():
        kv = dict(re.findall(r'(\w+)=("[^"]*"|\S+)', line))
        logs[kv["name"]] = kv
    return logs


# ---- help, version, usage errors ------------------------------------------------------------

def test_version(tern):
    r = ok(tern("--version"))
    assert r.stdout == f"tern {project_version()}\n"
    assert r.stderr == ""


@pytest.mark.parametrize("args", [["--help"], ["log", "--help"], ["log", "append", "--help"],
                                  ["log", "dump", "--help"], ["log", "list", "--help"],
                                  ["log", "delete", "--help"]])
def test_help(tern, tmp_path, args):
    r = ok(tern(*args))
    assert r.stdout.startswith("Usage: tern"), r.stdout
    assert r.stderr == ""
    assert not (tmp_path / "data").exists()  # help opens nothing


def test_top_level_help_lists_log_commands(tern):
    out = ok(tern("--help")).stdout
    for cmd in ("log list", "log append", "log dump", "log delete"):
        assert cmd in out


@pytest.mark.parametrize("args, named", [
    ([], "missing command"),
    (["bogus"], "'bogus'"),
    (["--bogus"], "'--bogus'"),
    (["log"], "missing command"),
    (["log", "frob"], "'log frob'"),
    (["log", "list", "--bogus"], "'--bogus'"),
    (["log", "list", "extra"], "'extra'"),
    (["log", "append", "--data-dir", "d"], "NAME"),
    (["log", "append", "--data-dir", "d", "bad/name", "v"], "'bad/name'"),
    (["log", "append", "--data-dir", "d", "..", "v"], "'..'"),
    (["log", "append", "--data-dir", "d", "x", "--from", "1", "v"], "'--from'"),
    (["log", "dump", "--data-dir", "d"], "NAME"),
    (["log", "dump", "--data-dir", "d", "x", "y"], "'y'"),
    (["log", "dump", "--data-dir", "d", "x", "--from", "abc"], "'abc'"),
    (["log", "dump", "--data-dir", "d", "x", "--from", "-1"], "'-1'"),
    (["log", "dump", "--data-dir", "d", "x", "--max", "0"], "'0'"),
    (["log", "dump", "--data-dir", "d", "x", "--max", "12z"], "'12z'"),
    (["log", "dump", "--data-dir", "d", "x", "--max"], "'--max'"),
    (["log", "dump", "--data-dir", "d", "x", "-q"], "'q'"),
    (["log", "delete", "--data-dir", "d"], "NAME"),
])
def test_bad_usage_exits_2(tern, tmp_path, args, named):
    r = tern(*args)
    assert r.returncode == 2, r
    assert r.stdout == ""
    first = r.stderr.splitlines()[0]
    assert first.startswith("tern"), r.stderr
    assert named in first, r.stderr
    assert not (tmp_path / "d").exists()  # nothing was opened or created


# ---- append and dump ------------------------------------------------------------------------

def test_append_values_and_dump(tern, data_dir):
    before = int(time.time() * 1000)
    assert append(tern, data_dir, "orders", "first", "second value", key="k1") == (0, 1)
    assert append(tern, data_dir, "orders", "third") == (2, 2)
    after = int(time.time() * 1000)
    records = dump(tern, data_dir, "orders")
    assert [(o, k, v) for o, _, k, v in records] == [
        (0, "k1", "first"), (1, "k1", "second value"), (2, "null", "third")]
    for _, ts, _, _ in records:
        assert before - 1000 <= ts <= after + 1000  # timestamps are "now"
    assert records[0][1] == records[1][1]  # one batch, one timestamp


def test_append_creates_log_files(tern, data_dir):
    append(tern, data_dir, "fresh", "x")
    log_dir = data_dir / "logs" / "fresh"
    assert (log_dir / "00000000000000000000.log").stat().st_size > 0
    assert (log_dir / "clean-shutdown").exists()  # the CLI closes the store cleanly
    assert (data_dir / "LOCK").exists()


def test_append_stdin_lines(tern, data_dir):
    # the last line needs no newline; an empty line is an empty (not null) value
    assert append(tern, data_dir, "lines", input="one\n\nthree\nfour") == (0, 3)
    assert append(tern, data_dir, "lines", key="k", input="five\n") == (4, 4)
    got = [(o, k, v) for o, _, k, v in dump(tern, data_dir, "lines")]
    assert got == [(0, "null", "one"), (1, "null", ""), (2, "null", "three"),
                   (3, "null", "four"), (4, "k", "five")]


def test_append_empty_stdin_fails(tern, data_dir):
    r = tern("log", "append", "--data-dir", data_dir, "empty", input="")
    assert r.returncode == 1
    assert r.stderr.startswith("tern: "), r.stderr
    assert r.stdout == ""


def test_interrupted_stdin_append_appends_nothing(tern_bin, data_dir, tmp_path):
    p = subprocess.Popen([tern_bin, "log", "append", "--data-dir", data_dir, "intr"],
                         cwd=tmp_path, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE)
    p.stdin.write(b"typed but not finished\n")
    p.stdin.flush()
    time.sleep(0.2)
    p.send_signal(signal.SIGINT)  # Ctrl-C before end of input
    out, _ = p.communicate(timeout=TIMEOUT)
    assert p.returncode == 130
    assert out == b""
    assert not data_dir.exists()  # stdin is read before the data directory is opened


def test_values_starting_with_dash_after_double_dash(tern, data_dir):
    append(tern, data_dir, "dash", "-1", "--not-an-option")
    assert [v for _, _, _, v in dump(tern, data_dir, "dash")] == ["-1", "--not-an-option"]


def test_options_after_operands(tern, data_dir):
    r = ok(tern("log", "append", "neg", "v1", "--data-dir", data_dir, "--key", "kk"))
    assert r.stdout == "appended base_offset=0 last_offset=0\n"
    assert dump(tern, data_dir, "neg")[0][2:] == ("kk", "v1")


def test_dump_escapes_non_printable_bytes(tern, data_dir):
    append(tern, data_dir, "bin", input=b"a\x01b\\c\xff\ttab\r\n")
    (rec,) = dump(tern, data_dir, "bin")
    assert rec[3] == r"a\x01b\\c\xff\x09tab\x0d"


def test_dump_from_and_max(tern, data_dir):
    append(tern, data_dir, "t", "a", "b", "c")  # offsets 0-2
    append(tern, data_dir, "t", "d", "e", "f")  # offsets 3-5
    append(tern, data_dir, "t", "g")            # offset 6
    values = lambda recs: "".join(v for _, _, _, v in recs)
    assert values(dump(tern, data_dir, "t")) == "abcdefg"
    # --from inside a batch skips that batch's earlier records
    assert [o for o, *_ in dump(tern, data_dir, "t", "--from", "4")] == [4, 5, 6]
    assert values(dump(tern, data_dir, "t", "--from", "1", "--max", "3")) == "bcd"
    assert values(dump(tern, data_dir, "t", "--max", "1")) == "a"
    assert values(dump(tern, data_dir, "t", "--from", "6")) == "g"
    assert dump(tern, data_dir, "t", "--from", "7") == []  # the end: nothing, success
    r = tern("log", "dump", "--data-dir", data_dir, "t", "--from", "8")
    assert r.returncode == 1 and "--from 8" in r.stderr, r.stderr


def test_dump_many_batches(tern, data_dir):
    for i in range(30):
        append(tern, data_dir, "many", f"v{i}-0", f"v{i}-1")
    recs = dump(tern, data_dir, "many")
    assert [o for o, *_ in recs] == list(range(60))
    assert recs[59][3] == "v29-1"


def test_dump_large_log_crosses_read_chunks(tern, data_dir):
    big = "x" * 100_000
    for _ in range(25):  # ~2.5 MB: more than one 1 MiB read
        append(tern, data_dir, "big", big, big)
    recs = dump(tern, data_dir, "big")
    assert len(recs) == 50 and all(v == big for *_, v in recs)


def test_dump_into_closed_pipe_closes_cleanly(tern_bin, tern, data_dir, tmp_path):
    big = "y" * 100_000
    for _ in range(5):  # ~1 MB of output: far more than a pipe holds
        append(tern, data_dir, "piped", big, big)
    marker = data_dir / "logs" / "piped" / "clean-shutdown"
    p = subprocess.Popen([tern_bin, "log", "dump", "--data-dir", data_dir, "piped"],
                         cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert p.stdout.read(10) == b"offset=0 t"
    p.stdout.close()  # like `| head`
    assert p.wait(TIMEOUT) == 0
    assert p.stderr.read() == b""
    p.stderr.close()
    assert marker.exists()  # the store was closed, not killed by SIGPIPE


def test_dump_write_error_fails(tern_bin, tern, data_dir, tmp_path):
    append(tern, data_dir, "full", "x" * 10_000)
    with open("/dev/full", "wb") as full:
        r = subprocess.run([tern_bin, "log", "dump", "--data-dir", data_dir, "full"],
                           cwd=tmp_path, stdout=full, stderr=subprocess.PIPE, timeout=TIMEOUT)
    assert r.returncode == 1
    assert b"cannot write to standard output" in r.stderr


def test_dump_unknown_log_fails(tern, data_dir):
    append(tern, data_dir, "exists", "x")
    r = tern("log", "dump", "--data-dir", data_dir, "nope")
    assert r.returncode == 1
    assert r.stderr == f"tern: no log named nope in {data_dir}\n"


def test_commands_on_missing_data_dir_fail_without_creating_it(tern, tmp_path):
    missing = tmp_path / "missing"
    for args in (["list"], ["dump", "x"], ["delete", "x"]):
        r = tern("log", *args, "--data-dir", missing)
        assert r.returncode == 1, r
        assert "does not exist" in r.stderr and str(missing) in r.stderr
    assert not missing.exists()


# ---- list and delete ------------------------------------------------------------------------

def test_list(tern, data_dir):
    r = ok(tern("log", "list", "--data-dir", data_dir.parent))  # exists, but holds no logs
    assert r.stdout == ""
    append(tern, data_dir, "b-log", "1", "2", "3")
    append(tern, data_dir, "a-log", "x")
    append(tern, data_dir, "b-log", "4")
    r = ok(tern("log", "list", "--data-dir", data_dir))
    lines = r.stdout.splitlines()
    assert [l.split()[0] for l in lines] == ["name=a-log", "name=b-log"]  # sorted
    logs = list_logs(tern, data_dir)
    for name, end in (("a-log", "1"), ("b-log", "4")):
        log_dir = data_dir / "logs" / name
        segs = sorted(log_dir.glob("*.log"))
        assert logs[name] == {
            "name": name, "start_offset": "0", "end_offset": end,
            "bytes": str(sum(s.stat().st_size for s in segs)), "segments": str(len(segs)),
        }


def test_delete(tern, data_dir):
    append(tern, data_dir, "keep", "k")
    append(tern, data_dir, "gone", "g1", "g2")
    r = ok(tern("log", "delete", "--data-dir", data_dir, "gone"))
    assert r.stdout == "deleted log gone\n"
    assert not (data_dir / "logs" / "gone").exists()
    assert set(list_logs(tern, data_dir)) == {"keep"}
    r = tern("log", "dump", "--data-dir", data_dir, "gone")
    assert r.returncode == 1 and "no log named gone" in r.stderr
    r = tern("log", "delete", "--data-dir", data_dir, "gone")
    assert r.returncode == 1 and "no log named gone" in r.stderr
    # a new log of the same name starts again at offset 0
    assert append(tern, data_dir, "gone", "again") == (0, 0)
    assert [v for *_, v in dump(tern, data_dir, "gone")] == ["again"]
    assert [v for *_, v in dump(tern, data_dir, "keep")] == ["k"]


# ---- the data directory lock ----------------------------------------------------------------

def test_locked_by_ternd(tern, data_dir, ternd_factory):
    append(tern, data_dir, "orders", "before")
    t = ternd_factory(data_dir=data_dir)
    message = f"tern: data directory {data_dir} is in use by another process\n"
    for args in (["list"], ["dump", "orders"], ["append", "orders", "x"],
                 ["delete", "orders"]):
        r = tern("log", *args, "--data-dir", data_dir)
        assert r.returncode == 1, r
        assert r.stderr == message
        assert r.stdout == ""
    assert t.running
    assert t.stop() == 0
    # once ternd is gone, the same commands work and nothing was changed meanwhile
    assert [v for *_, v in dump(tern, data_dir, "orders")] == ["before"]
    assert append(tern, data_dir, "orders", "after") == (1, 1)


# ---- a corrupt log --------------------------------------------------------------------------

def corrupt_first_batch(log_dir):
    seg = log_dir / "00000000000000000000.log"
    data = bytearray(seg.read_bytes())
    data[40] ^= 0xFF  # inside the first batch's CRC-covered header
    seg.write_bytes(bytes(data))
    (log_dir / "clean-shutdown").unlink()


def test_refused_log_is_reported(tern, data_dir):
    for i in range(3):
        append(tern, data_dir, "bad", f"b{i}")
    append(tern, data_dir, "good", "g")
    corrupt_first_batch(data_dir / "logs" / "bad")
    r = tern("log", "dump", "--data-dir", data_dir, "bad")
    assert r.returncode == 1
    assert r.stderr.startswith("tern: log bad is refused (corrupt): "), r.stderr
    assert "00000000000000000000.log" in r.stderr and "byte" in r.stderr
    r = tern("log", "append", "--data-dir", data_dir, "bad", "more")
    assert r.returncode == 1 and "log bad is refused" in r.stderr, r.stderr
    logs = list_logs(tern, data_dir)
    assert logs["bad"]["refused"] == "true"
    assert "00000000000000000000.log" in logs["bad"]["reason"]
    assert logs["good"]["end_offset"] == "1"
    assert [v for *_, v in dump(tern, data_dir, "good")] == ["g"]
