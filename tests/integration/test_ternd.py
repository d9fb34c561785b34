"""ternd's command line, config file, startup and shutdown (issue #2)."""

import ctypes
import os
import re
import signal
import time

import pytest

from ternlib import REPO, TIMEOUT, parse_log_line

OPTIONS = {  # option -> default shown by --help
    "--config": None,
    "--data-dir": "./data",
    "--bind": "127.0.0.1",
    "--amqp-port": "5672",
    "--kafka-port": "9092",
    "--http-port": "15672",
    "--fsync": "always",
    "--log-level": "info",
    "--segment-bytes": "1073741824",
    "--checkpoint-interval-ms": "1000",
    "--help": None,
    "--version": None,
}


def project_version():
    text = (REPO / "CMakeLists.txt").read_text()
    return re.search(r"project\(tern VERSION ([0-9.]+)", text).group(1)


def one_error_line(result):
    """ternd's usage errors are exactly one line on stderr, starting with 'ternd: '."""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("ternd: "), result.stderr
    assert result.stdout == ""
    return lines[0]


def write_config(path, text):
    path.write_text(text)
    return path


# ---- one-shot invocations -----------------------------------------------------------------------

def test_help_lists_every_option_with_default(ternd_run, tmp_path):
    r = ternd_run("--help")
    assert r.returncode == 0, r.stderr
    assert r.stderr == ""
    for opt, default in OPTIONS.items():
        line = next((l for l in r.stdout.splitlines() if l.strip().startswith(opt + " ")
                     or l.strip() == opt), None)
        assert line is not None, f"{opt} missing from --help:\n{r.stdout}"
        if default is not None:
            assert f"(default: {default})" in line, line
    assert not (tmp_path / "data").exists()  # --help does not start the server


def test_version(ternd_run):
    r = ternd_run("--version")
    assert r.returncode == 0, r.stderr
    assert r.stdout == f"ternd {project_version()}\n"
    assert r.stderr == ""


@pytest.mark.parametrize("args, named", [
    (["--bogus"], "'--bogus'"),
    (["--data-dir", "d", "--no-such=1"], "'--no-such'"),
    (["-x"], "'-x'"),
    (["stray"], "'stray'"),
    (["--version=2"], "--version"),
])
def test_unknown_option_exits_2(ternd_run, tmp_path, args, named):
    r = ternd_run(*args)
    assert r.returncode == 2
    line = one_error_line(r)
    assert named in line
    assert not (tmp_path / "d").exists() and not (tmp_path / "data").exists()


@pytest.mark.parametrize("opt, value", [
    ("--fsync", "bogus"),
    ("--fsync", "interval:0"),
    ("--fsync", "interval:abc"),
    ("--bind", "localhost"),
    ("--bind", "300.1.1.1"),
    ("--amqp-port", "65536"),
    ("--kafka-port", "-1"),
    ("--http-port", "eighty"),
    ("--log-level", "loud"),
    ("--segment-bytes", "4095"),
    ("--checkpoint-interval-ms", "0"),
    ("--data-dir", ""),
])
@pytest.mark.parametrize("form", ["separate", "equals"])
def test_bad_value_exits_2(ternd_run, opt, value, form):
    args = [opt, value] if form == "separate" else [f"{opt}={value}"]
    r = ternd_run(*args)
    assert r.returncode == 2
    line = one_error_line(r)
    assert f"invalid value '{value}' for {opt}:" in line


def test_bad_fsync_message(ternd_run):
    r = ternd_run("--fsync", "bogus")
    assert r.returncode == 2
    assert r.stderr == ("ternd: invalid value 'bogus' for --fsync: "
                        "expected always, never or interval:MS\n")


@pytest.mark.parametrize("args, opt", [
    (["--data-dir"], "--data-dir"),
    (["--fsync", "--log-level", "info"], "--fsync"),
    (["--config"], "--config"),
])
def test_missing_value_exits_2(ternd_run, args, opt):
    r = ternd_run(*args)
    assert r.returncode == 2
    assert f"missing value for {opt}" in one_error_line(r)


# ---- config file --------------------------------------------------------------------------------

def test_config_file_is_used(ternd_factory, tmp_path):
    data = tmp_path / "from-file"
    conf = write_config(tmp_path / "tern.conf",
                        "# test config\n\n"
                        f"data-dir = {data}\n"
                        "fsync = interval:25   # comment after a value\n"
                        "log-level=debug\n")
    t = ternd_factory("--config", conf, data_dir=None)
    assert data.is_dir()
    start = t.event("start")
    assert start["data_dir"] == str(data)
    assert start["fsync"] == "interval:25"
    assert t.stop() == 0


def test_unknown_config_key_exits_2(ternd_run, tmp_path):
    conf = write_config(tmp_path / "tern.conf", "# c\nbind = ::1\nwibble = 3\n")
    r = ternd_run("--config", conf)
    assert r.returncode == 2
    line = one_error_line(r)
    assert f"{conf}:3:" in line and "'wibble'" in line


def test_bad_config_value_exits_2(ternd_run, tmp_path):
    conf = write_config(tmp_path / "tern.conf", "fsync = sometimes\n")
    r = ternd_run("--config", conf)
    assert r.returncode == 2
    line = one_error_line(r)
    assert f"{conf}:1:" in line and "'sometimes'" in line and "fsync" in line


@pytest.mark.parametrize("name", ["missing.conf", "."])
def test_unreadable_config_exits_2(ternd_run, tmp_path, name):
    path = tmp_path / name
    r = ternd_run("--config", path)
    assert r.returncode == 2
    line = one_error_line(r)
    assert "cannot read config file" in line and str(path) in line


def test_command_line_overrides_file(ternd_factory, tmp_path):
    file_dir, cli_dir = tmp_path / "file-dir", tmp_path / "cli-dir"
    conf = write_config(tmp_path / "tern.conf", f"data-dir = {file_dir}\nfsync = never\n")
    # --data-dir comes before --config and still wins; fsync comes from the file.
    t = ternd_factory("--config", conf, data_dir=cli_dir)
    start = t.event("start")
    assert start["data_dir"] == str(cli_dir)
    assert start["fsync"] == "never"
    assert cli_dir.is_dir() and not file_dir.exists()
    assert t.stop() == 0


# ---- running ------------------------------------------------------------------------------------

def test_start_line_and_data_dir_created(ternd_factory, tmp_path):
    data = tmp_path / "a" / "b" / "data"
    t = ternd_factory("--fsync=interval:50", "--bind=::1", "--segment-bytes", "65536",
                      data_dir=data)
    assert data.is_dir()
    start = t.event("start")
    assert start["version"] == project_version()
    assert start["pid"] == str(t.pid)
    assert start["fsync"] == "interval:50"
    assert start["bind"] == "::1"
    assert start["segment_bytes"] == "65536"
    assert start["amqp_port"] == start["kafka_port"] == start["http_port"] == "0"
    assert t.stop() == 0


def test_default_data_dir_is_relative_to_cwd(ternd_factory, tmp_path):
    t = ternd_factory(data_dir=None)
    assert (tmp_path / "data").is_dir()
    assert t.event("start")["data_dir"] == "./data"
    assert t.stop() == 0


def check_clean_stop(t, signame):
    names = [parse_log_line(line).get("event") for line in t.stderr_lines]
    assert names.index("start") < names.index("ready") < names.index("shutdown") \
        < names.index("stopped"), t.log_text()
    assert names[-1] == "stopped", t.log_text()
    assert t.event("shutdown")["signal"] == signame
    assert t.event("exit_now") is None


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_stops_cleanly(ternd, sig):
    assert ternd.stop(sig) == 0, ternd.log_text()
    check_clean_stop(ternd, sig.name)


def test_second_signal_right_after_first_exits(ternd):
    ternd.send_signal(signal.SIGINT)
    ternd.send_signal(signal.SIGINT)
    code = ternd.wait()
    # Either shutdown finished before the second signal arrived, or it cut shutdown short.
    assert code in (0, 130), ternd.log_text()
    if code == 0:
        assert ternd.event("stopped") is not None
    else:
        assert ternd.event("exit_now") is not None and ternd.event("stopped") is None


def _wait_stopped(pid):
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
        if state in ("T", "t"):
            return
        time.sleep(0.01)
    pytest.fail(f"pid {pid} did not stop")


def test_second_signal_during_shutdown_exits_at_once(ternd):
    """Both signals are made pending on ternd's main thread while it is stopped, so they
    reach the loop in the same iteration: the second one arrives while shutdown is running."""
    libc = ctypes.CDLL(None, use_errno=True)
    os.kill(ternd.pid, signal.SIGSTOP)
    _wait_stopped(ternd.pid)
    for sig in (signal.SIGTERM, signal.SIGINT):
        # tgkill: thread-directed, so no other thread of ternd can take it.
        assert libc.tgkill(ternd.pid, ternd.pid, sig) == 0, os.strerror(ctypes.get_errno())
    os.kill(ternd.pid, signal.SIGCONT)
    assert ternd.wait() == 130, ternd.log_text()
    assert len(ternd.events("shutdown")) == 1, ternd.log_text()
    assert ternd.event("exit_now") is not None, ternd.log_text()
    assert ternd.event("stopped") is None, ternd.log_text()


def test_second_ternd_on_same_data_dir_is_refused(ternd_factory):
    first = ternd_factory()
    second = ternd_factory(data_dir=first.data_dir, wait_ready=False)
    assert second.wait() == 1, second.log_text()
    assert f"another ternd holds the data directory {first.data_dir}" in second.log_text()
    assert second.event("ready") is None
    assert first.running
    time.sleep(0.2)
    assert first.running
    assert first.stop() == 0, first.log_text()
    # The lock is released at exit: a new ternd can take the directory.
    third = ternd_factory(data_dir=first.data_dir)
    assert third.stop() == 0, third.log_text()


def test_data_dir_that_is_a_file_exits_1(ternd_factory, tmp_path):
    path = tmp_path / "not-a-dir"
    path.write_text("x")
    t = ternd_factory(data_dir=path, wait_ready=False)
    assert t.wait() == 1, t.log_text()
    failed = t.event("open_failed")
    assert failed is not None and failed["data_dir"] == str(path), t.log_text()
    assert t.event("ready") is None


def test_existing_log_is_opened_and_closed_cleanly(ternd_factory, tern_run, tmp_path):
    data = tmp_path / "data"
    r = tern_run("log", "append", "--data-dir", data, "orders", "a", "b")
    assert r.returncode == 0, r.stderr
    t = ternd_factory(data_dir=data)
    ready = t.event("ready")
    assert (ready["logs"], ready["refused"]) == ("1", "0"), t.log_text()
    assert t.stop() == 0, t.log_text()
    # ternd's shutdown wrote the clean-shutdown marker: the next open skips the scan.
    again = ternd_factory(data_dir=data)
    opened = again.event("log_open")
    assert opened is not None and opened["log"] == "orders", again.log_text()
    assert opened["clean"] == "true" and opened["end"] == "2", again.log_text()
    assert again.kill() == -9
    # After a crash the marker is gone: recovery scans the log and keeps both records.
    third = ternd_factory(data_dir=data)
    opened = third.event("log_open")
    assert opened["clean"] == "false" and opened["end"] == "2", third.log_text()
    assert third.stop() == 0, third.log_text()
