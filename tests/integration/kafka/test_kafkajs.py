"""kafkajs (npm, pinned in tests/js/package-lock.json) against ternd: admin, idempotent
producer, group consumer. node_modules is installed by `npm ci` when missing (scripts/deps.sh
installs node and npm)."""

import os
import pathlib
import shutil
import subprocess

import pytest

JS_DIR = pathlib.Path(__file__).resolve().parents[2] / "js"


@pytest.fixture(scope="session")
def node():
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        pytest.fail("node and npm are needed for the kafkajs test (Debian: nodejs, npm)")
    if not (JS_DIR / "node_modules" / "kafkajs").is_dir():
        r = subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=JS_DIR,
                           stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=300)
        assert r.returncode == 0, f"npm ci failed:\n{r.stdout}\n{r.stderr}"
    return node


def run(node, broker, topic):
    env = dict(os.environ, TERN_KAFKA_BROKER=broker, TERN_KAFKA_TOPIC=topic,
               TERN_KAFKAJS_TIMEOUT_MS="30000")
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
