"""Fixtures shared by the integration tests: they run the real ternd and tern binaries.

Binaries: $TERND and $TERN_CLI (ctest sets both); when a variable is absent, the release build
(<repo>/build/release/ternd, <repo>/build/release/tern). A missing binary fails the test.

Each test gets a fresh data directory under pytest's tmp_path. Every ternd a test starts is
killed (SIGKILL) at teardown if it is still running, and its stderr is printed then, so a failing
test shows the server's log.

    def test_example(ternd_factory):
        t = ternd_factory("--fsync", "never")        # waits for event=ready
        assert t.event("start")["fsync"] == "never"
        assert t.stop() == 0                         # SIGTERM, then wait for the exit
        assert t.event("stopped") is not None

        t2 = ternd_factory(data_dir=t.data_dir)      # restart on the same directory

    def test_bad_option(ternd_run):
        r = ternd_run("--bogus")                     # one-shot: subprocess.CompletedProcess
        assert r.returncode == 2
"""

import os
import pathlib
import re
import signal
import subprocess
import threading
import time

import pytest

from ternlib import REPO, TIMEOUT, parse_log_line

_DEFAULT = object()


def _binary(env_var, name):
    path = os.environ.get(env_var) or str(REPO / "build" / "release" / name)
    if not (os.path.isfile(path) and os.access(path, os.X_OK)):
        pytest.fail(f"{name} binary not found at {path}: build it, or set {env_var}")
    return path


class Ternd:
    """One running ternd. stderr and stdout are read by threads into lists of lines."""

    def __init__(self, argv, cwd, data_dir, env=None):
        self.argv = list(argv)
        self.data_dir = data_dir  # pathlib.Path, or None when no --data-dir was passed
        self._cond = threading.Condition()
        self._stderr = []
        self._stdout = []
        self.proc = subprocess.Popen(
            self.argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True, errors="replace",
            start_new_session=True)  # a Ctrl-C meant for pytest does not reach ternd
        self._readers = [
            threading.Thread(target=self._read, args=(self.proc.stderr, self._stderr), daemon=True),
            threading.Thread(target=self._read, args=(self.proc.stdout, self._stdout), daemon=True),
        ]
        for r in self._readers:
            r.start()

    def _read(self, stream, lines):
        for line in stream:
            with self._cond:
                lines.append(line.rstrip("\n"))
                self._cond.notify_all()
        with self._cond:
            self._cond.notify_all()

    @property
    def pid(self):
        return self.proc.pid

    @property
    def returncode(self):
        return self.proc.poll()

    @property
    def running(self):
        return self.proc.poll() is None

    @property
    def stderr_lines(self):
        """The stderr lines captured so far (a copy)."""
        with self._cond:
            return list(self._stderr)

    @property
    def stdout_lines(self):
        with self._cond:
            return list(self._stdout)

    def log_text(self):
        return "\n".join(self.stderr_lines)

    def events(self, name):
        """Parsed log lines with event=name, in order."""
        return [kv for kv in map(parse_log_line, self.stderr_lines) if kv.get("event") == name]

    def event(self, name):
        """The first parsed log line with event=name, or None."""
        found = self.events(name)
        return found[0] if found else None

    def wait_for(self, pattern, timeout=TIMEOUT):
        """Waits until a stderr line matches pattern (a regex, searched) and returns the line.
        Fails the test, showing the log, on timeout or if ternd exits first."""
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout
        seen = 0
        with self._cond:
            while True:
                for line in self._stderr[seen:]:
                    if rx.search(line):
                        return line
                seen = len(self._stderr)
                if self.proc.poll() is not None and not self._readers[0].is_alive():
                    pytest.fail(f"ternd exited with {self.proc.returncode} before logging "
                                f"/{pattern}/:\n{self._dump()}")
                left = deadline - time.monotonic()
                if left <= 0:
                    pytest.fail(f"ternd did not log /{pattern}/ within {timeout}s:\n{self._dump()}")
                self._cond.wait(min(left, 0.1))

    def wait_ready(self, timeout=TIMEOUT):
        return self.wait_for(r"\bevent=ready\b", timeout)

    def send_signal(self, sig):
        if self.proc.poll() is None:
            os.kill(self.proc.pid, sig)

    def wait(self, timeout=TIMEOUT):
        """Waits for the exit and for all output to be read; returns the exit code. Fails the
        test (after killing ternd) if it does not exit in time."""
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            pytest.fail(f"ternd did not exit within {timeout}s:\n{self._dump()}")
        for r in self._readers:
            r.join(timeout)
        return self.proc.returncode

    def stop(self, sig=signal.SIGTERM, timeout=TIMEOUT):
        """Sends sig (SIGTERM by default) and waits for the exit; returns the exit code."""
        self.send_signal(sig)
        return self.wait(timeout)

    def kill(self):
        """SIGKILL (a crash, for recovery tests) and reap."""
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        for r in self._readers:
            r.join(TIMEOUT)
        return self.proc.returncode

    def _dump(self):
        return f"$ {' '.join(map(str, self.argv))}\n" + "\n".join(self._stderr)

    def __repr__(self):
        return f"<Ternd pid={self.pid} rc={self.returncode}>"


@pytest.fixture(scope="session")
def ternd_bin():
    return _binary("TERND", "ternd")


@pytest.fixture(scope="session")
def tern_bin():
    return _binary("TERN_CLI", "tern")


@pytest.fixture
def ternd_factory(ternd_bin, tmp_path):
    """start(*args, data_dir=..., ports=True, wait_ready=True, cwd=None, env=None) -> Ternd

    Starts ternd with args appended after the defaults and waits for event=ready.
    data_dir: default <tmp_path>/data (the same directory for every start in a test, so a
    second call restarts on it); a path to use another; None to pass no --data-dir at all
    (ternd then uses its default or the config file's). ports=True passes 0 for every port.
    cwd defaults to tmp_path, so a relative data dir lands there.
    """
    started = []

    def start(*args, data_dir=_DEFAULT, ports=True, wait_ready=True, cwd=None, env=None):
        argv = [ternd_bin]
        if data_dir is _DEFAULT:
            data_dir = tmp_path / "data"
        if data_dir is not None:
            data_dir = pathlib.Path(data_dir)
            argv += ["--data-dir", str(data_dir)]
        if ports:
            argv += ["--amqp-port", "0", "--kafka-port", "0", "--http-port", "0"]
        argv += [str(a) for a in args]
        t = Ternd(argv, cwd=cwd or tmp_path, data_dir=data_dir, env=env)
        started.append(t)
        if wait_ready:
            t.wait_ready()
        return t

    yield start
    for t in started:
        if t.running:
            print(f"teardown: killing {t}")
        t.kill()
        print(t._dump())
        print(f"exit code: {t.returncode}")


@pytest.fixture
def ternd(ternd_factory):
    """A ternd running on a fresh data dir with ephemeral ports, already ready."""
    return ternd_factory()


@pytest.fixture
def ternd_run(ternd_bin, tmp_path):
    """run(*args, timeout=TIMEOUT, cwd=None) -> subprocess.CompletedProcess (text): a ternd
    that is expected to exit by itself (--help, bad options). cwd defaults to tmp_path."""

    def run(*args, timeout=TIMEOUT, cwd=None):
        return subprocess.run([ternd_bin, *map(str, args)], cwd=cwd or tmp_path,
                              stdin=subprocess.DEVNULL, capture_output=True, text=True,
                              timeout=timeout)

    return run


@pytest.fixture
def tern_run(tern_bin, tmp_path):
    """run(*args, timeout=TIMEOUT, cwd=None, input=None) -> subprocess.CompletedProcess (text)
    for the tern command-line tool. cwd defaults to tmp_path."""

    def run(*args, timeout=TIMEOUT, cwd=None, input=None):
        return subprocess.run([tern_bin, *map(str, args)], cwd=cwd or tmp_path, input=input,
                              stdin=None if input is not None else subprocess.DEVNULL,
                              capture_output=True, text=True, timeout=timeout)

    return run
