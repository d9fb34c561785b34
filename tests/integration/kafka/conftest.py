"""Fixtures for the Kafka protocol tests: a ternd with its Kafka listener on an ephemeral port,
driven by unmodified clients (kcat, Debian's python3-confluent-kafka and python3-kafka, kafkajs
from npm).

    def test_example(kafka):
        p = kafka.producer(acks="all")            # confluent_kafka.Producer
        kafka.bootstrap                           # "127.0.0.1:PORT"
        kafka.kill9_restart()                     # SIGKILL, same data dir and args, new port
"""

import re
import signal
import uuid

import pytest

LISTENING = r"\bevent=listening\b.*\bproto=kafka\b.*\bport=(\d+)"


class KafkaServer:
    def __init__(self, start, args):
        self._start = start
        self._args = list(args)
        self.ternd = start(*self._args)
        self.data_dir = self.ternd.data_dir
        self._read_port()

    def _read_port(self):
        line = self.ternd.wait_for(LISTENING)
        self.port = int(re.search(LISTENING, line).group(1))
        self.bootstrap = f"127.0.0.1:{self.port}"

    def restart(self, sig=signal.SIGTERM):
        if sig == signal.SIGKILL:
            self.ternd.kill()
        else:
            self.ternd.stop(sig)
        self.ternd = self._start(*self._args, data_dir=self.data_dir)
        self._read_port()

    def kill9_restart(self):
        self.restart(signal.SIGKILL)

    def conf(self, **kw):
        c = {"bootstrap.servers": self.bootstrap, "broker.address.family": "v4"}
        c.update({k.replace("_", "."): v for k, v in kw.items()})
        return c

    def producer(self, **kw):
        import confluent_kafka
        return confluent_kafka.Producer(self.conf(**kw))

    def consumer(self, group, **kw):
        import confluent_kafka
        kw.setdefault("auto_offset_reset", "earliest")
        return confluent_kafka.Consumer(self.conf(group_id=group, **kw))

    def admin(self, **kw):
        import confluent_kafka.admin
        return confluent_kafka.admin.AdminClient(self.conf(**kw))

    @staticmethod
    def name(prefix="t"):
        return f"{prefix}-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def kafka_factory(ternd_factory):
    def start(*args):
        return KafkaServer(ternd_factory, args)
    return start


@pytest.fixture
def kafka(kafka_factory):
    return kafka_factory()
