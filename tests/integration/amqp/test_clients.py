"""Third-party AMQP clients against the broker: rabbitmq-c's command-line tools (Debian's
amqp-tools: amqp-declare-queue, amqp-publish, amqp-consume, amqp-get, amqp-delete-queue) and
the npm client amqplib (tests/js/amqplib_test.js, run with node).

amqplib is installed into tests/js/node_modules by `npm ci --no-audit --no-fund` from the
committed package-lock.json; the first test that needs it runs that when node_modules is absent
(it needs the npm registry). A missing tool or node fails the test: scripts/deps.sh installs
them.
"""

import os
import shutil
import subprocess

import pytest

from ternlib import JS_DIR, js_node
TOOL_TIMEOUT = 15


def tool_url(amqp, password="guest"):
    """rabbitmq-c's URL form: no vhost part means "/"."""
    return f"amqp://guest:{password}@{amqp.host}:{amqp.port}"


def tool(amqp, name, *args, input=None, password="guest"):
    """Runs one amqp-tools command against the broker; returns CompletedProcess (bytes)."""
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} not found: install Debian's amqp-tools")
    return subprocess.run([path, "--url", tool_url(amqp, password), *args], input=input,
                          stdin=None if input is not None else subprocess.DEVNULL,
                          capture_output=True, timeout=TOOL_TIMEOUT)


def ok(r):
    assert r.returncode == 0, f"{r.args} exited {r.returncode}: {r.stderr.decode()}"
    return r.stdout.decode()


@pytest.fixture
def tool_queue(amqp):
    """A durable queue declared with amqp-declare-queue -d; deleted with amqp-delete-queue."""
    q = amqp.name("tools")
    assert ok(tool(amqp, "amqp-declare-queue", "-d", "-q", q)).strip() == q
    yield q
    tool(amqp, "amqp-delete-queue", "-q", q)


# ------------------------------------------------------------------------------ amqp-tools

def test_tools_publish_consume_round_trip(amqp, tool_queue):
    for i, extra in enumerate([(), ("-p",), ("-C", "text/plain", "-H", "k: v")], 1):
        ok(tool(amqp, "amqp-publish", "-r", tool_queue, "-b", f"body-{i};", *extra))
    r = tool(amqp, "amqp-consume", "-q", tool_queue, "-c", "3", "cat")
    assert ok(r) == "body-1;body-2;body-3;"
    r = tool(amqp, "amqp-get", "-q", tool_queue)
    assert r.returncode != 0 and r.stdout == b"", "the consumed messages were not acked"


def test_tools_properties_seen_by_pika(amqp, tool_queue):
    ok(tool(amqp, "amqp-publish", "-r", tool_queue, "-p", "-C", "text/plain", "-E", "utf-8",
            "-H", "k: v", "-H", "n: 2", "-t", "reply-here", "-b", "with props"))
    ch = amqp.channel()
    method, props, body = ch.basic_get(tool_queue, auto_ack=True)
    assert method is not None and body == b"with props"
    assert props.delivery_mode == 2
    assert props.content_type == "text/plain"
    assert props.content_encoding == "utf-8"
    assert props.reply_to == "reply-here"
    assert {k: (v.decode() if isinstance(v, bytes) else v) for k, v in props.headers.items()} \
        == {"k": "v", "n": "2"}


def test_tools_persistent_message_and_get(amqp, tool_queue):
    ok(tool(amqp, "amqp-publish", "-r", tool_queue, "-p", "-b", "kept"))
    assert ok(tool(amqp, "amqp-get", "-q", tool_queue)) == "kept"
    r = tool(amqp, "amqp-get", "-q", tool_queue)
    assert r.returncode == 2 and r.stdout == b"", r  # amqp-get: 2 = queue empty


def test_tools_line_buffered_publish_no_ack_consume(amqp, tool_queue):
    ok(tool(amqp, "amqp-publish", "-l", "-r", tool_queue, input=b"one\ntwo\nthree\n"))
    r = tool(amqp, "amqp-consume", "-q", tool_queue, "-c", "3", "-A", "cat")
    assert ok(r).split() == ["one", "two", "three"]


def test_tools_publish_through_exchange(amqp, tool_queue):
    key = amqp.name("key")
    amqp.channel().queue_bind(tool_queue, "amq.direct", routing_key=key)
    ok(tool(amqp, "amqp-publish", "-e", "amq.direct", "-r", key, "-b", "routed"))
    ok(tool(amqp, "amqp-publish", "-e", "amq.direct", "-r", key + "-other", "-b", "dropped"))
    assert ok(tool(amqp, "amqp-get", "-q", tool_queue)) == "routed"
    assert tool(amqp, "amqp-get", "-q", tool_queue).returncode == 2


def test_tools_delete_reports_message_count(amqp):
    q = amqp.name("tools-del")
    ok(tool(amqp, "amqp-declare-queue", "-q", q))
    for _ in range(2):
        ok(tool(amqp, "amqp-publish", "-r", q, "-b", "x"))
    assert ok(tool(amqp, "amqp-delete-queue", "-q", q)).strip() == "2"
    r = tool(amqp, "amqp-get", "-q", q)
    assert r.returncode == 1 and b"404" in r.stderr, r


def test_tools_wrong_password(amqp):
    r = tool(amqp, "amqp-get", "-q", "whatever", password="wrong")
    assert r.returncode != 0
    assert b"403" in r.stderr or b"ACCESS_REFUSED" in r.stderr, r.stderr


# ------------------------------------------------------------------------------ amqplib

@pytest.fixture(scope="session")
def js_client():
    """The node binary, after making sure tests/js/node_modules holds amqplib."""
    try:
        return js_node("amqplib")
    except RuntimeError as e:
        pytest.fail(str(e))


def run_amqplib(node, url):
    env = dict(os.environ, TERN_AMQP_URL=url, TERN_AMQPLIB_TIMEOUT_MS="20000")
    return subprocess.run([node, "amqplib_test.js"], cwd=JS_DIR, env=env,
                          stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60)


def test_amqplib_confirms_and_manual_ack(amqp, js_client):
    r = run_amqplib(js_client, amqp.url)
    assert r.returncode == 0, f"amqplib_test.js exited {r.returncode}:\n{r.stdout}{r.stderr}"
    assert "ok: 100 messages" in r.stdout


def test_amqplib_script_reports_failure(amqp, js_client):
    """The script is able to fail: a refused login gives exit 1 and a FAIL line."""
    r = run_amqplib(js_client, amqp.url_for(password="wrong"))
    assert r.returncode == 1, f"{r.returncode}:\n{r.stdout}{r.stderr}"
    assert "FAIL:" in r.stderr and "403" in r.stderr, r.stderr
