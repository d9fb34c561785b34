"""A private RabbitMQ node for the differential run of the AMQP suite (TERN_AMQP_TARGET=rabbitmq).

Debian's rabbitmq-server is started as the current user with everything it writes under one
temporary directory: Mnesia, logs, config, enabled-plugins file, the Erlang cookie ($HOME). Ports
are ephemeral: AMQP on 127.0.0.1, Erlang distribution, and a private epmd (started here in the
foreground, so it is reaped with the node). Nothing of a system-wide instance is touched.

    node = RabbitMQ(pathlib.Path("/tmp/x"), config=["max_message_size = 1024"])
    node = RabbitMQ(base, *from_ternd_args(["--channel-max", "3"])[:2])   # ternd options
    node.start()            # returns once an AMQP connection succeeds
    ... node.port ...
    node.stop()             # SIGTERM, then SIGKILL of the process group; epmd too

Every process is started in its own session: stop() kills the whole process group (the wrapper
shell, beam.smp, erl_child_setup, inet_gethost) so nothing is left behind.
"""

import os
import pathlib
import shutil
import signal
import socket
import subprocess
import time

SERVER = "/usr/lib/rabbitmq/bin/rabbitmq-server"
CTL = "/usr/lib/rabbitmq/bin/rabbitmqctl"
START_TIMEOUT = float(os.environ.get("TERN_RABBITMQ_START_TIMEOUT", "90"))


def free_port():
    """A TCP port that was free on 127.0.0.1 a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def available():
    return os.path.exists(SERVER) and shutil.which("epmd") is not None


# ternd option -> rabbitmq.conf key. Values are copied as they are.
CONFIG_KEYS = {
    "--default-user": "default_user",
    "--default-pass": "default_pass",
    "--heartbeat": "heartbeat",
    "--frame-max": "frame_max",
    "--channel-max": "channel_max",
    "--max-message-size": "max_message_size",
    "--handshake-timeout-ms": "handshake_timeout",
}
IGNORED = {"--fsync"}  # no effect on what a client can observe


def from_ternd_args(args):
    """Translates ternd options into RabbitMQ terms: returns (config lines, bind address,
    rabbitmqctl commands to run once the node is up). Raises ValueError for an option that has
    no RabbitMQ equivalent here. --max-connections becomes a vhost connection limit, because
    RabbitMQ's connection_max only stalls extra connections in ranch's accept queue."""
    args = [str(a) for a in args]
    if len(args) % 2:
        raise ValueError(f"options must come as name value pairs: {args}")
    config, bind, ctl = [], "127.0.0.1", []
    for name, value in zip(args[::2], args[1::2]):
        if name in CONFIG_KEYS:
            config.append(f"{CONFIG_KEYS[name]} = {value}")
        elif name == "--bind":
            bind = value
        elif name == "--memory-high-watermark":
            # RabbitMQ's watermark is on the whole VM's memory: count Erlang's own allocation
            # (prompt to fall after a drain), check it every 100 ms, keep queues from paging
            # messages out, and put the line `value` bytes above the idle node's use, plus
            # 24 MiB for the code and processes the first channels and queues bring in
            # (without it the node stayed above the line after a full drain).
            config += ["vm_memory_calculation_strategy = erlang",
                       "memory_monitor_interval = 100",
                       "vm_memory_high_watermark_paging_ratio = 0.99"]
            ctl.append(["eval", "vm_memory_monitor:set_vm_memory_high_watermark({absolute, "
                        f"vm_memory_monitor:get_process_memory() + {int(value) + (24 << 20)}}})."])
        elif name == "--max-connections":
            if int(value) > 0:
                ctl.append(["set_vhost_limits", "-p", "/", f'{{"max-connections": {value}}}'])
        elif name not in IGNORED:
            raise ValueError(f"no RabbitMQ equivalent for {name}")
    return config, bind, ctl


class RabbitMQ:
    def __init__(self, base, config=(), name=None, bind="127.0.0.1"):
        self.base = pathlib.Path(base)
        self.config = list(config)
        self.name = name or f"tern-diff-{os.getpid()}"
        self.nodename = f"{self.name}@localhost"
        self.bind = bind
        self.host = "127.0.0.1"
        # The user _wait_amqp logs in as: the configured default user.
        settings = dict(line.split(" = ", 1) for line in self.config if " = " in line)
        self.user = settings.get("default_user", "guest")
        self.password = settings.get("default_pass", "guest")
        self.port = None
        self.proc = None
        self.epmd = None
        self.log_path = self.base / "stdout.log"

    def _env(self):
        b = self.base
        env = dict(os.environ)
        env.update({
            "HOME": str(b / "home"),
            "RABBITMQ_CONF_ENV_FILE": str(b / "rabbitmq-env.conf"),
            "RABBITMQ_CONFIG_FILE": str(b / "rabbitmq"),  # .conf is appended
            "RABBITMQ_ADVANCED_CONFIG_FILE": str(b / "advanced.config"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(b / "enabled_plugins"),
            "RABBITMQ_MNESIA_BASE": str(b / "mnesia"),
            "RABBITMQ_LOG_BASE": str(b / "log"),
            "RABBITMQ_PID_FILE": str(b / "node.pid"),
            "RABBITMQ_NODENAME": self.nodename,
            "RABBITMQ_NODE_IP_ADDRESS": self.bind,
            "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "RABBITMQ_CTL_DIST_PORT_MIN": str(self.ctl_port),
            "RABBITMQ_CTL_DIST_PORT_MAX": str(self.ctl_port),
            "ERL_EPMD_PORT": str(self.epmd_port),
            "ERL_EPMD_ADDRESS": "127.0.0.1",
        })
        env.pop("RABBITMQ_ENV_LOADED", None)
        return env

    def _write_files(self):
        b = self.base
        for d in ("home", "mnesia", "log"):
            (b / d).mkdir(parents=True, exist_ok=True)
        (b / "rabbitmq-env.conf").write_text("")
        (b / "enabled_plugins").write_text("[].\n")
        (b / "advanced.config").write_text("[].\n")
        (b / "rabbitmq.conf").write_text("\n".join(self.config) + "\n")

    def start(self):
        """Picks ports, writes the files, starts epmd and the node; returns once AMQP answers."""
        self.port, self.dist_port = free_port(), free_port()
        self.ctl_port, self.epmd_port = free_port(), free_port()
        self._write_files()
        self.epmd = subprocess.Popen(
            ["epmd", "-port", str(self.epmd_port), "-address", "127.0.0.1"], env=self._env(),
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True)
        return self._launch()

    def restart(self, kill=False):
        """Stops the node (SIGKILL of its process group if kill, else SIGTERM) and starts it
        again on the same data and ports; epmd keeps running."""
        if kill:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self._kill_group(self.proc, 30)
        return self._launch()

    def _launch(self):
        env = self._env()
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen([SERVER], env=env, cwd=self.base, stdin=subprocess.DEVNULL,
                                     stdout=log, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        log.close()
        try:
            self._wait_amqp()
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_amqp(self):
        import pika  # only needed once a node runs

        params = pika.ConnectionParameters(
            self.host, self.port, "/", pika.PlainCredentials(self.user, self.password),
            connection_attempts=1, socket_timeout=2)
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"rabbitmq-server exited with {self.proc.returncode}:\n"
                                   + self.log_text())
            try:
                pika.BlockingConnection(params).close()
                return
            except Exception:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"rabbitmq-server not up in {START_TIMEOUT}s:\n"
                                       + self.log_text())
                time.sleep(0.25)

    def log_text(self):
        try:
            return self.log_path.read_text(errors="replace")[-5000:]
        except OSError:
            return ""

    def ctl(self, *args, timeout=60):
        """Runs rabbitmqctl against this node; returns subprocess.CompletedProcess (text)."""
        return subprocess.run([CTL, "-n", self.nodename, *map(str, args)], env=self._env(),
                              stdin=subprocess.DEVNULL, capture_output=True, text=True,
                              timeout=timeout)

    @staticmethod
    def _kill_group(proc, timeout):
        """SIGTERM proc's process group, SIGKILL it after timeout, reap proc."""
        if proc is None:
            return
        for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 10)):
            try:
                os.killpg(proc.pid, sig)
            except ProcessLookupError:
                pass
            try:
                proc.wait(wait)
                break
            except subprocess.TimeoutExpired:
                continue
        # The group may outlive its leader (erl_child_setup): make sure it is gone.
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                return
            time.sleep(0.05)

    def stop(self, timeout=30):
        self._kill_group(self.proc, timeout)
        self._kill_group(self.epmd, 5)
        self.proc = self.epmd = None
