"""kafkajs (npm, pinned in tests/js/package-lock.json) against ternd: admin, idempotent
producer, group consumer, also over SASL PLAIN. node_modules is installed by `npm ci` when missing (scripts/deps.sh
installs node and npm)."""

import os
import subprocess

import pytest

from ternlib import JS_DIR, js_node


@pytest.fixture(scope="session")
def node():
    try:
        return js_node("kafkajs")
    except RuntimeError as e:
        pytest.fail(str(e))


def run(node, broker, topic, sasl=None):
    env = dict(os.environ, TERN_KAFKA_BROKER=broker, TERN_KAFKA_TOPIC=topic,
               TERN_KAFKAJS_TIMEOUT_MS="30000")
    if sasl:
        env.update(TERN_KAFKA_SASL_USER=sasl[0], TERN_KAFKA_SASL_PASS=sasl[1])
    return subprocess.run([node, "kafkajs_test.js"], cwd=JS_DIR, env=env,
                          stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=90)


def test_kafkajs_admin_idempotent_producer_group_consumer(kafka, node):
    r = run(node, kafka.bootstrap, kafka.name())
    assert r.returncode == 0, f"kafkajs_test.js exited {r.returncode}:\n{r.stdout}{r.stderr}"
    assert "ok: 200 messages" in r.stdout


def test_kafkajs_script_reports_failure(kafka, node):
    """The script is able to fail: a broker address with nothing listening."""
    r = run(node, "127.0.0.1:1", kafka.name())
    assert r.returncode == 1 and "FAIL:" in r.stderr, f"{r.returncode}:\n{r.stdout}{r.stderr}"


def test_kafkajs_over_sasl_plain(kafka_factory, node):
    k = kafka_factory("--kafka-sasl", "true", "--default-user", "alice",
                      "--default-pass", "s3cret")
    r = run(node, k.bootstrap, k.name(), sasl=("alice", "s3cret"))
    assert r.returncode == 0, f"kafkajs_test.js exited {r.returncode}:\n{r.stdout}{r.stderr}"
    assert "ok: 200 messages" in r.stdout
    r = run(node, k.bootstrap, k.name(), sasl=("alice", "wrong"))
    assert r.returncode == 1 and "SASL PLAIN authentication failed" in r.stderr, r.stderr
