"""Constants and helpers shared by the integration tests and their conftest.

They live here, not in conftest.py, because tests/integration/amqp has a conftest.py of its
own: `from conftest import ...` would find whichever conftest pytest imported last.
"""

import os
import pathlib
import re

REPO = pathlib.Path(__file__).resolve().parents[2]
# Generous: ASan builds start slowly and CI machines are loaded.
TIMEOUT = float(os.environ.get("TERN_TEST_TIMEOUT", "30"))

_KV = re.compile(r'([A-Za-z0-9_.]+)=("(?:[^"\\]|\\.)*"|\S*)')


def parse_log_line(line):
    """The key=value pairs of one tlog line as a dict (quotes removed from quoted values)."""
    out = {}
    for key, value in _KV.findall(line):
        if len(value) >= 2 and value[0] == '"' and value[-1] == '"':
            value = value[1:-1].replace('\\"', '"').replace("\\\\", "\\")
        out[key] = value
    return out


JS_DIR = REPO / "tests" / "js"


def js_node(package):
    """The node binary, after making sure tests/js/node_modules holds package: `npm ci` from
    the committed package-lock.json when it is missing (that needs the npm registry). Raises
    RuntimeError when node, npm or the install is missing."""
    import shutil
    import subprocess

    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        raise RuntimeError(f"node and npm are needed for the {package} test (Debian: nodejs, npm)")
    if not (JS_DIR / "node_modules" / package).is_dir():
        r = subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=JS_DIR,
                           stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=300)
        if r.returncode != 0:
            raise RuntimeError(f"npm ci failed:\n{r.stdout}\n{r.stderr}")
    return node
