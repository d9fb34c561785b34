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
