"""Fixtures for the AMQP 0-9-1 tests: a broker to talk to with pika (Debian's python3-pika 1.2.0).

The target is ternd by default. With TERN_AMQP_TARGET=rabbitmq the same tests run against
Debian's rabbitmq-server instead (one node per pytest session, see rabbitmq.py), which is how
the suite itself is checked: a test that fails against RabbitMQ is a wrong test.

    def test_example(amqp):
        conn = amqp.connect()                       # pika.BlockingConnection, closed at teardown
        ch = conn.channel()
        q = amqp.name("q")                          # unique: tests share one RabbitMQ
        ch.queue_declare(q)
        with amqp.channel_error(404, "NOT_FOUND - no queue"):
            conn.channel().queue_declare(amqp.name("missing"), passive=True)

    @pytest.mark.tern_only                          # needs server options or a restart
    def test_limits(amqp_factory):
        a = amqp_factory("--max-connections", "1")
        a.restart()                                 # SIGTERM, same data dir and args, new port
        a.kill9_restart()                           # SIGKILL, same

    def test_delivery(conn, queue):                 # a connection and an exclusive queue of it
        ch = conn.channel()

Shared helpers (fill, bodies, pump, ...) are in amqphelp.py: `from amqphelp import ...`.

Markers:
  tern_only         needs ternd options or a restart; deselected under rabbitmq, unless
                    TERN_AMQP_RABBITMQ_ALL=1: then restarts act on the RabbitMQ node too, and
                    amqp_factory(*options) starts a node of the test's own with the matching
                    rabbitmq.conf (rabbitmq.from_ternd_args; no equivalent -> skip). That is how
                    the tern_only tests were checked.
  optional_feature  a RabbitMQ extension tern may not have (amq.rabbitmq.reply-to)

The ternd fixtures (ternd_factory, ...) come from ../conftest.py; they are only requested when
the target is tern, so the differential run needs no ternd binary.
"""

import contextlib
import os
import re
import signal
import urllib.parse
import uuid

import pika
import pika.exceptions
import pytest

from rabbitmq import RabbitMQ, from_ternd_args

TARGET = os.environ.get("TERN_AMQP_TARGET", "tern")
RABBITMQ_ALL = os.environ.get("TERN_AMQP_RABBITMQ_ALL") == "1"
LISTENING = r"\bevent=listening\b.*\bproto=amqp\b.*\bport=(\d+)"

if TARGET not in ("tern", "rabbitmq"):
    raise pytest.UsageError(f"TERN_AMQP_TARGET={TARGET!r}: expected tern or rabbitmq")


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "tern_only: needs ternd options or a restart; not run against RabbitMQ")
    config.addinivalue_line(
        "markers", "optional_feature: a RabbitMQ extension tern may not implement")


def pytest_collection_modifyitems(config, items):
    if TARGET != "rabbitmq" or RABBITMQ_ALL:
        return
    keep, drop = [], []
    for item in items:
        (drop if item.get_closest_marker("tern_only") else keep).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


class AmqpServer:
    """One broker under test, as seen by a test. Attributes: host, port, url, kind ("tern" or
    "rabbitmq"), ternd (the Ternd, tern only), node (the RabbitMQ, rabbitmq only)."""

    def __init__(self, kind, args=(), start=None, ternd=None, node=None):
        self.kind = kind
        self.host = "127.0.0.1"
        self.args = tuple(args)
        self.ternd = ternd
        self.node = node
        self._start = start  # tern: start(*args) -> Ternd on the same data dir
        self._connections = []
        self.port = node.port if node else self._read_port()

    def _read_port(self):
        line = self.ternd.wait_for(LISTENING)
        return int(re.search(LISTENING, line).group(1))

    @property
    def url(self):
        return f"amqp://guest:guest@{self.host}:{self.port}/%2F"

    def url_for(self, user="guest", password="guest", vhost="/"):
        q = urllib.parse.quote
        return f"amqp://{q(user, '')}:{q(password, '')}@{self.host}:{self.port}/{q(vhost, '')}"

    def params(self, **kw):
        """pika.ConnectionParameters for this broker; kw overrides (credentials=, virtual_host=,
        heartbeat=, blocked_connection_timeout=, frame_max=, channel_max=, host=, ...)."""
        kw.setdefault("credentials", pika.PlainCredentials("guest", "guest"))
        kw.setdefault("virtual_host", "/")
        kw.setdefault("connection_attempts", 1)
        kw.setdefault("socket_timeout", 5)
        kw.setdefault("stack_timeout", 10)
        kw.setdefault("host", self.host)
        return pika.ConnectionParameters(port=self.port, **kw)

    def connect(self, **kw):
        """A pika.BlockingConnection (kw as for params), closed at teardown."""
        conn = pika.BlockingConnection(self.params(**kw))
        self._connections.append(conn)
        return conn

    def channel(self, **kw):
        """A channel on a new connection: the common one-liner."""
        return self.connect(**kw).channel()

    @staticmethod
    def name(prefix="t"):
        """A unique queue / exchange name: prefix-<12 hex digits>."""
        return f"{prefix}-{uuid.uuid4().hex[:12]}"

    @staticmethod
    @contextlib.contextmanager
    def channel_error(code, text_prefix=None):
        """Expects the block to fail with a channel.close from the broker with reply code
        `code` and a reply text starting with text_prefix. Yields a dict that gets 'code' and
        'text' afterwards, for further asserts."""
        got = {}
        with pytest.raises(pika.exceptions.ChannelClosedByBroker) as info:
            yield got
        got["code"], got["text"] = info.value.reply_code, info.value.reply_text
        assert got["code"] == code, got
        if text_prefix is not None:
            assert got["text"].startswith(text_prefix), got

    @staticmethod
    @contextlib.contextmanager
    def connection_error(code, text_prefix=None):
        """As channel_error, for a connection.close from the broker."""
        got = {}
        with pytest.raises(pika.exceptions.ConnectionClosedByBroker) as info:
            yield got
        got["code"], got["text"] = info.value.reply_code, info.value.reply_text
        assert got["code"] == code, got
        if text_prefix is not None:
            assert got["text"].startswith(text_prefix), got

    def run_select(self, on_channel, timeout=10.0, **kw):
        """Runs a pika SelectConnection (kw as for params) for what BlockingConnection hides
        (multiple confirms, the order of basic.return and basic.ack). on_channel(channel, done)
        is called once a channel is open; the loop runs until done() is called, then the
        connection is closed. Fails the test on a timeout or if the connection closes first;
        an exception raised in a callback propagates."""
        state = {"finished": False, "error": None}
        conn = None

        def done():
            state["finished"] = True
            if conn.is_open:
                conn.close()

        def on_close(_conn, reason):
            if not state["finished"] and state["error"] is None:
                state["error"] = f"connection closed: {reason!r}"
            conn.ioloop.stop()

        def on_open_error(_conn, err):
            state["error"] = f"connection failed: {err!r}"
            conn.ioloop.stop()

        def on_timeout():
            if not state["finished"]:
                state["error"] = f"timed out after {timeout}s"
                state["finished"] = True
                if conn.is_open or conn.is_opening:
                    conn.close()
                else:
                    conn.ioloop.stop()

        conn = pika.SelectConnection(
            self.params(**kw),
            on_open_callback=lambda c: c.channel(on_open_callback=lambda ch: on_channel(ch, done)),
            on_open_error_callback=on_open_error, on_close_callback=on_close)
        conn.ioloop.call_later(timeout, on_timeout)
        try:
            conn.ioloop.start()
        finally:
            if conn.is_open:  # an exception escaped a callback: close before leaving
                state["finished"] = True
                conn.close()
                conn.ioloop.start()
        if state["error"]:
            pytest.fail(state["error"])

    def close_all(self):
        for conn in self._connections:
            try:
                if conn.is_open:
                    conn.close()
            except Exception:  # already dead (restart, broker closed it): nothing to do
                pass
        self._connections.clear()

    def restart(self, *extra_args):
        """Clean stop (SIGTERM) and start again on the same data; the port is read again."""
        self._restart(signal.SIGTERM, extra_args)

    def kill9_restart(self, *extra_args):
        """SIGKILL (a crash) and start again on the same data; the port is read again."""
        self._restart(signal.SIGKILL, extra_args)

    def _restart(self, sig, extra_args):
        self.close_all()
        if self.kind == "rabbitmq":
            if extra_args and tuple(extra_args) != self.args:
                pytest.skip("restart with other options: not done for RabbitMQ")
            self.node.restart(kill=(sig == signal.SIGKILL))
            self.port = self.node.port
            return
        if sig == signal.SIGKILL:
            self.ternd.kill()
        else:
            assert self.ternd.stop() == 0, "ternd did not exit cleanly on SIGTERM"
        if extra_args:
            self.args = tuple(extra_args)
        self.ternd = self._start(*self.args)
        self.port = self._read_port()

    def __repr__(self):
        return f"<AmqpServer {self.kind} {self.host}:{self.port}>"


@pytest.fixture(scope="session")
def rabbitmq_node(tmp_path_factory):
    """The session's RabbitMQ node (only started when the target is rabbitmq)."""
    node = RabbitMQ(tmp_path_factory.mktemp("rabbitmq"))
    node.start()
    yield node
    node.stop()


def _dedicated_rabbitmq(args, tmp_path, nodes):
    """A RabbitMQ node of this test's own, configured like ternd with args (see
    rabbitmq.from_ternd_args); skips the test when an option has no equivalent."""
    try:
        config, bind, ctl = from_ternd_args(args)
    except ValueError as e:
        pytest.skip(str(e))
    base = tmp_path / f"rabbitmq{len(nodes)}"
    node = RabbitMQ(base, config, name=f"tern-diff-{os.getpid()}-{uuid.uuid4().hex[:6]}",
                    bind=bind)
    nodes.append(node)
    node.start()
    for cmd in ctl:
        r = node.ctl(*cmd)
        assert r.returncode == 0, f"rabbitmqctl {cmd}: {r.stdout}{r.stderr}"
    return node


@pytest.fixture
def amqp_factory(request, tmp_path):
    """make(*ternd_args) -> AmqpServer. Against tern: a ternd started with those options on
    this test's data dir. Against rabbitmq: the session's node, or with options a node of the
    test's own configured to match (TERN_AMQP_RABBITMQ_ALL=1 runs; the test is skipped when an
    option has no RabbitMQ equivalent)."""
    made, nodes = [], []

    def make(*args):
        if TARGET == "rabbitmq":
            if args:
                node = _dedicated_rabbitmq(args, tmp_path, nodes)
            else:
                node = request.getfixturevalue("rabbitmq_node")
            srv = AmqpServer("rabbitmq", args, node=node)
        else:
            factory = request.getfixturevalue("ternd_factory")
            srv = AmqpServer("tern", args, start=factory, ternd=factory(*args))
        made.append(srv)
        return srv

    yield make
    for srv in made:
        srv.close_all()
    for node in nodes:
        node.stop()


@pytest.fixture
def amqp(amqp_factory):
    """The broker with default options (see AmqpServer)."""
    return amqp_factory()


@pytest.fixture
def conn(amqp):
    """A pika.BlockingConnection to the broker with default options."""
    return amqp.connect()


@pytest.fixture
def queue(conn):
    """A server-named exclusive queue of conn."""
    return conn.channel().queue_declare("", exclusive=True).method.queue
