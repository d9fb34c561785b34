#!/usr/bin/python3
"""amqp_bench.py - tern against RabbitMQ over AMQP 0-9-1, one run, side by side.

Starts each broker itself on 127.0.0.1 with a temporary data directory and free ports, runs
bench_amqp (bench/bench_amqp.c, on rabbitmq-c) through the scenarios below against it, reads the
broker's resident memory from /proc, stops it and checks that none of its processes is left.
Right before the first broker's latency rows it measures this machine's latency floor with
bench_floor (bench/bench_floor.c): the latency rows' traffic through a relay that only forwards
it (and, for the durable rows, also appends it to a file fdatasynced with ternd's default
--group-commit-ms spacing). Then prints one
table (tern, RabbitMQ, tern/RabbitMQ, the floor, the issue's target, met or not met) and writes
bench/out/amqp.png and bench/out/amqp.json.

    make bench-amqp                     # both brokers, 5 s per scenario
    BENCH_SECONDS=10 make bench-amqp
    bench/amqp_bench.py --only rabbitmq --seconds 2 --fill-count 100000

ternd comes from $TERND or build/release/ternd and is started with
`--data-dir TMP --amqp-port 0 --kafka-port 0 --http-port 0`; it must print
`event=listening proto=amqp bind=ADDR port=N` on stderr when ready. RabbitMQ is Debian's
rabbitmq-server, run from /usr/lib/rabbitmq/bin with every path (data, logs, config, cookie) in
the temporary directory, no plugins, and an epmd of its own on a free port.

Exit status: 0 when every broker asked for ran every scenario; 1 when one failed (its column
shows "-" and the reason is printed); 2 for a bad command line. Targets below do not change the
exit status: the benchmark measures, it does not gate.

Uses /usr/bin/python3's standard library, and Debian's python3-matplotlib for the chart.
"""

import argparse
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RABBITMQ_SERVER = "/usr/lib/rabbitmq/bin/rabbitmq-server"
EPMD = "/usr/bin/epmd"
START_TIMEOUT = {"tern": 15.0, "rabbitmq": 90.0}  # seconds until the AMQP port answers
STOP_TIMEOUT = 60.0
IDLE_SETTLE = 2.0  # seconds between "ready" and the idle RSS reading
FILL_SETTLE = 2.0  # seconds between the last fill confirm and the RSS reading
FILL_SIZE = 100
FILL_TIMEOUT = 900.0
LATENCY_SIZE = 100
RATE = 10000
CHURN = 100  # queue declare/publish/delete cycles a second beside the churn latency row
LISTENING = re.compile(r"event=listening proto=amqp bind=(\S+) port=(\d+)")
# Every process a run starts carries this in its environment, so that the end of the run can
# prove none is left (and name any that is).
MARK_VAR = "TERN_AMQP_BENCH_RUN"


class BrokerError(Exception):
    pass


# ---- the measurements ------------------------------------------------------------------------

# One entry per bench_amqp run: (key, arguments). Sizes and publishers from the issue.
def scenarios(fill_count):
    runs = []
    for size in (100, 1024):
        for pubs in (1, 4):
            runs.append((f"confirm_{size}_{pubs}", ["--scenario", "confirm", "--size", str(size),
                                                    "--publishers", str(pubs)]))
    for size in (16, 1024):
        runs.append((f"e2e_{size}", ["--scenario", "e2e", "--size", str(size)]))
    runs.append(("latency_transient", ["--scenario", "latency", "--size", str(LATENCY_SIZE),
                                       "--rate", str(RATE)]))
    runs.append(("latency_durable", ["--scenario", "latency", "--size", str(LATENCY_SIZE),
                                     "--rate", str(RATE), "--durable"]))
    # RPC clients declare and delete reply queues: what that costs the other clients' latency
    runs.append(("latency_churn", ["--scenario", "latency", "--size", str(LATENCY_SIZE),
                                   "--rate", str(RATE), "--churn", str(CHURN)]))
    # the fill is about memory, not speed: a wide window keeps a slow fsync from stretching it
    runs.append(("fill", ["--scenario", "fill", "--size", str(FILL_SIZE), "--count",
                          str(fill_count), "--publishers", "4", "--window", "2048"]))
    return runs


# Table rows: (label, run key, result field, unit, target, higher_is_better).
# unit: "rate" msg/s, "us" microseconds, "kb" RSS in KiB.
def table_rows(fill_count):
    rows = []
    for size in (100, 1024):
        for pubs in (1, 4):
            k = f"confirm_{size}_{pubs}"
            name = f"durable+confirms {size_label(size)} x{pubs} pub"
            rows.append((f"{name}: rate", k, "rate_per_s", "rate", 150e3, True))
            rows.append((f"{name}: confirm p50", k, "confirm_p50_us", "us", None, False))
            rows.append((f"{name}: confirm p99", k, "confirm_p99_us", "us", None, False))
    rows.append(("transient e2e 16 B: rate", "e2e_16", "rate_per_s", "rate", 1e6, True))
    rows.append(("transient e2e 1 KiB: rate", "e2e_1024", "rate_per_s", "rate", None, True))
    for kind, target in (("transient", 150.0), ("durable", 2000.0)):
        k = f"latency_{kind}"
        name = f"{RATE // 1000}k msg/s {kind}"
        rows.append((f"{name}: e2e p50", k, "e2e_p50_us", "us", None, False))
        rows.append((f"{name}: e2e p99", k, "e2e_p99_us", "us", target, False))
        rows.append((f"{name}: e2e p99.9", k, "e2e_p999_us", "us", None, False))
    name = f"{RATE // 1000}k msg/s transient + {CHURN} queues/s churn"
    rows.append((f"{name}: e2e p50", "latency_churn", "e2e_p50_us", "us", None, False))
    rows.append((f"{name}: e2e p99", "latency_churn", "e2e_p99_us", "us", None, False))
    rows.append((f"{name}: churn rate", "latency_churn", "churn_per_s", "rate", None, True))
    rows.append(("RSS idle", "rss", "idle_kb", "kb", 10 * 1024, False))
    rows.append((f"RSS {count_label(fill_count)} queued", "rss", "filled_kb", "kb", 32 * 1024,
                 False))
    rows.append(("RSS peak during fill", "rss", "fill_peak_kb", "kb", None, False))
    return rows


# Latency rows with a floor: run key -> bench_floor arguments besides rate, size and times.
FLOOR_RUNS = {"latency_transient": [], "latency_durable": ["--fsync-gap-ms", None]}


def size_label(size):
    return f"{size // 1024} KiB" if size % 1024 == 0 else f"{size} B"


def count_label(n):
    return f"{n // 1000000}M" if n % 1000000 == 0 else f"{n:,}"


# ---- processes -------------------------------------------------------------------------------

def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def children(pid):
    """Direct children of pid, from /proc/PID/task/*/children."""
    out = []
    try:
        tasks = list(Path(f"/proc/{pid}/task").glob("*"))
    except OSError:
        return out  # it exited while the tree was walked
    for task in tasks:
        try:
            out += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            pass
    return out


def tree(pid):
    """pid and all its descendants that still exist."""
    pids, todo = [], [pid]
    while todo:
        p = todo.pop()
        if Path(f"/proc/{p}").exists():
            pids.append(p)
            todo += children(p)
    return pids


def rss_kb(pid):
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def tree_rss_kb(pid):
    return sum(rss_kb(p) for p in tree(pid))


def marked_pids(mark):
    """Processes whose environment carries MARK_VAR=mark (this run's)."""
    needle = f"{MARK_VAR}={mark}".encode() + b"\0"
    found = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit() or int(d.name) == os.getpid():
            continue
        try:
            if needle in (d / "environ").read_bytes() + b"\0":
                found.append(int(d.name))
        except OSError:
            pass
    return found


def comm(pid):
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return "?"


def wait_gone(proc, timeout):
    try:
        proc.wait(timeout=timeout)
        return True
    except subprocess.TimeoutExpired:
        return False


def amqp_answers(port):
    """True when something on port speaks AMQP 0-9-1 (answers the header with a method frame)."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1.0) as s:
            s.sendall(b"AMQP\x00\x00\x09\x01")
            data = s.recv(7)
            return len(data) > 0 and data[0] == 1
    except OSError:
        return False


class Broker:
    """A broker process tree started by this run: start(), rss_kb(), stop()."""

    name = "?"

    def __init__(self):
        self.reset()  # tmp: the run's directory; procs: Popen objects in start order

    def reset(self):
        self.tmp, self.port, self.procs, self.log_path = None, None, [], None
        self.mark = uuid.uuid4().hex

    def env(self, extra):
        env = dict(os.environ)
        env.update(extra)
        env[MARK_VAR] = self.mark
        return env

    def spawn(self, argv, extra_env, log_name):
        log = open(Path(self.tmp) / log_name, "wb")
        try:
            p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log,
                                 stderr=subprocess.STDOUT, env=self.env(extra_env),
                                 start_new_session=True, cwd=self.tmp)
        finally:
            log.close()
        self.procs.append(p)
        return p

    def check_alive(self, during):
        for p in self.procs:
            if p.poll() is not None:
                raise BrokerError(f"{Path(p.args[0]).name} exited with status {p.returncode} "
                                  f"during {during}; its output:\n{self.log_tail()}")

    def log_tail(self, lines=15):
        if not self.log_path or not Path(self.log_path).exists():
            return ""
        text = Path(self.log_path).read_text(errors="replace").splitlines()
        return "\n".join("    " + t for t in text[-lines:])

    def stop(self):
        """Stops every process of the run (SIGTERM, then SIGKILL after STOP_TIMEOUT), checks that
        none is left and removes the temporary directory. Returns a list of problems."""
        problems = []
        for p in reversed(self.procs):
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                if not wait_gone(p, STOP_TIMEOUT):
                    problems.append(f"pid {p.pid} ignored SIGTERM for {STOP_TIMEOUT:.0f} s; killed")
                    try:
                        os.killpg(p.pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
                    p.wait()
        deadline = time.monotonic() + 5
        left = marked_pids(self.mark)
        while left and time.monotonic() < deadline:
            time.sleep(0.1)
            left = marked_pids(self.mark)
        for pid in left:
            problems.append(f"left behind: pid {pid} ({comm(pid)}); killed")
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if self.tmp:
            shutil.rmtree(self.tmp, ignore_errors=True)
        self.reset()
        return problems


class Tern(Broker):
    name = "tern"

    def __init__(self, ternd):
        super().__init__()
        self.ternd = ternd
        self.pid = None

    def start(self):
        if not os.access(self.ternd, os.X_OK):
            raise BrokerError(f"no ternd at {self.ternd} (build it with `make`, or set TERND)")
        self.tmp = tempfile.mkdtemp(prefix="tern-amqp-bench.")
        data = Path(self.tmp) / "data"
        data.mkdir()
        self.log_path = Path(self.tmp) / "ternd.log"
        p = self.spawn([self.ternd, "--data-dir", str(data), "--amqp-port", "0",
                        "--kafka-port", "0", "--http-port", "0"], {}, "ternd.log")
        self.pid = p.pid
        deadline = time.monotonic() + START_TIMEOUT["tern"]
        while time.monotonic() < deadline:
            m = LISTENING.search(self.log_path.read_text(errors="replace"))
            if m:
                self.port = int(m.group(2))
                return
            if p.poll() is not None:
                raise BrokerError(f"ternd exited with status {p.returncode} before listening; "
                                  f"its log:\n{self.log_tail()}")
            time.sleep(0.05)
        raise BrokerError(f"ternd did not print 'event=listening proto=amqp ... port=N' within "
                          f"{START_TIMEOUT['tern']:.0f} s (no AMQP listener yet?); its log:\n"
                          f"{self.log_tail()}")

    def rss_kb(self):
        return tree_rss_kb(self.pid)


class RabbitMQ(Broker):
    name = "rabbitmq"

    def __init__(self):
        super().__init__()
        self.script = None

    def start(self):
        if not os.access(RABBITMQ_SERVER, os.X_OK) or not os.access(EPMD, os.X_OK):
            raise BrokerError(f"no {RABBITMQ_SERVER} or {EPMD}: apt-get install rabbitmq-server")
        self.tmp = tempfile.mkdtemp(prefix="rabbitmq-amqp-bench.")
        tmp = Path(self.tmp)
        self.port, dist_port, epmd_port = free_port(), free_port(), free_port()
        (tmp / "rabbitmq.conf").write_text(f"listeners.tcp.1 = 127.0.0.1:{self.port}\n")
        (tmp / "enabled_plugins").write_text("[].\n")
        # an epmd of our own on a free port: rabbitmq would otherwise start a shared daemon
        # (epmd -daemon) that outlives the run
        self.spawn([EPMD, "-port", str(epmd_port), "-address", "127.0.0.1"], {}, "epmd.log")
        env = {
            "HOME": str(tmp),  # the Erlang cookie goes here
            "ERL_EPMD_PORT": str(epmd_port),
            "RABBITMQ_NODENAME": f"bench{os.getpid()}@localhost",
            "RABBITMQ_DIST_PORT": str(dist_port),
            "RABBITMQ_MNESIA_BASE": str(tmp / "mnesia"),
            "RABBITMQ_LOG_BASE": str(tmp / "log"),
            "RABBITMQ_CONFIG_FILE": str(tmp / "rabbitmq.conf"),
            "RABBITMQ_ADVANCED_CONFIG_FILE": str(tmp / "advanced.config"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(tmp / "enabled_plugins"),
            "RABBITMQ_CONF_ENV_FILE": str(tmp / "rabbitmq-env.conf"),  # not /etc/rabbitmq's
        }
        self.log_path = tmp / "rabbitmq-server.log"
        self.script = self.spawn([RABBITMQ_SERVER], env, "rabbitmq-server.log")
        deadline = time.monotonic() + START_TIMEOUT["rabbitmq"]
        while time.monotonic() < deadline:
            if amqp_answers(self.port):
                return
            if self.script.poll() is not None:
                raise BrokerError(f"rabbitmq-server exited with status {self.script.returncode}; "
                                  f"its output:\n{self.log_tail()}")
            time.sleep(0.2)
        raise BrokerError(f"RabbitMQ did not answer on port {self.port} within "
                          f"{START_TIMEOUT['rabbitmq']:.0f} s; its output:\n{self.log_tail()}")

    def beam_pid(self):
        for pid in tree(self.script.pid):
            if comm(pid).startswith("beam"):
                return pid
        return None

    def rss_kb(self):
        """beam.smp and its children (erl_child_setup, inet_gethost, ...); not the start
        script, not epmd."""
        pid = self.beam_pid()
        return tree_rss_kb(pid) if pid else 0


# ---- running bench_amqp ----------------------------------------------------------------------

def parse_result(stdout):
    for line in stdout.splitlines():
        if line.startswith("result "):
            fields = dict(kv.split("=", 1) for kv in line.split()[1:] if "=" in kv)
            out = {}
            for k, v in fields.items():
                try:
                    out[k] = float(v)
                except ValueError:
                    out[k] = v
            return out
    return None


def run_generator(gen, broker, args, timeout, sampler=None):
    """Runs bench_amqp against broker; returns its result fields, or raises BrokerError.
    sampler, when given, is called about every 0.5 s while it runs."""
    argv = [gen, "--port", str(broker.port)] + args
    p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         env=broker.env({}))
    out = {}
    t = threading.Thread(target=lambda: out.update(zip(("stdout", "stderr"), p.communicate())))
    t.start()
    deadline = time.monotonic() + timeout
    while t.is_alive() and time.monotonic() < deadline:
        t.join(0.5)
        if sampler:
            sampler()
    if t.is_alive():
        p.kill()
        t.join()
        raise BrokerError(f"bench_amqp {' '.join(args)}: no result after {timeout:.0f} s")
    res = parse_result(out.get("stdout", ""))
    if p.returncode != 0 or res is None:
        err = (out.get("stderr") or "").strip() or f"exit status {p.returncode}"
        raise BrokerError(f"bench_amqp {' '.join(args)}: {err}")
    return res


def progress(msg):
    print(msg, file=sys.stderr, flush=True)


def group_commit_default(ternd):
    """ternd's default --group-commit-ms, from its --help (the floor's fsync spacing)."""
    try:
        out = subprocess.run([ternd, "--help"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise BrokerError(f"{ternd} --help: {e}")
    m = re.search(r"--group-commit-ms\b.*\(default: ([0-9.]+)\)", out.stdout + out.stderr)
    if not m:
        raise BrokerError(f"{ternd} --help names no default for --group-commit-ms")
    return m.group(1)


def run_floor(opts):
    """The latency rows' traffic through bench_floor's relay. Returns (results, errors)."""
    results, errors = {}, []
    tmp = tempfile.mkdtemp(prefix="tern-floor-bench.")  # where ternd's data goes too
    try:
        gap = group_commit_default(opts.ternd)
        for key, extra in FLOOR_RUNS.items():
            argv = [opts.floor, "--rate", str(RATE), "--size", str(LATENCY_SIZE), "--seconds",
                    str(opts.seconds), "--warmup", str(opts.warmup), "--dir", tmp]
            argv += [gap if a is None else a for a in extra]
            progress(f"floor: {key} ({' '.join(argv[1:])})")
            try:
                p = subprocess.run(argv, capture_output=True, text=True,
                                   timeout=opts.seconds + opts.warmup + 60)
            except (OSError, subprocess.TimeoutExpired) as e:
                errors.append(f"bench_floor {key}: {e}")
                continue
            res = parse_result(p.stdout)
            if p.returncode != 0 or res is None:
                errors.append(f"bench_floor {key}: "
                              f"{p.stderr.strip() or f'exit status {p.returncode}'}")
                continue
            results[key] = res
    except BrokerError as e:
        errors.append(str(e))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    for e in errors:
        progress(f"floor: {e}")
    return results, errors


def run_scenarios(broker, opts, results, errors):
    timed = ["--seconds", str(opts.seconds), "--warmup", str(opts.warmup)]
    for key, args in scenarios(opts.fill_count):
        if key == "fill":
            continue
        if key in FLOOR_RUNS and opts.floor_runs is None:
            opts.floor_runs = run_floor(opts)  # next to the rows it is read against
        progress(f"{broker.name}: {key}")
        broker.check_alive(key)  # a dead broker ends the run instead of failing every row
        try:
            results[key] = run_generator(opts.generator, broker, args + timed,
                                         opts.seconds + opts.warmup + 120)
        except BrokerError as e:
            errors.append(str(e))
            progress(f"{broker.name}: {e}")


def run_memory(broker, opts, results, errors):
    """Idle RSS of the fresh broker, then the fill, then RSS with the messages queued."""
    time.sleep(IDLE_SETTLE)
    results["rss"] = {"idle_kb": broker.rss_kb()}
    progress(f"{broker.name}: idle RSS {results['rss']['idle_kb'] / 1024:.1f} MiB; fill "
             f"({opts.fill_count:,} persistent {FILL_SIZE} B messages)")
    peak = [0]

    def sample():
        peak[0] = max(peak[0], broker.rss_kb())

    args = dict(scenarios(opts.fill_count))["fill"]
    try:
        results["fill"] = run_generator(opts.generator, broker, args, FILL_TIMEOUT, sample)
    except BrokerError as e:
        errors.append(str(e))
        progress(f"{broker.name}: {e}")
        return
    broker.check_alive("the fill")
    time.sleep(FILL_SETTLE)
    filled = broker.rss_kb()
    results["rss"].update(filled_kb=filled, fill_peak_kb=max(peak[0], filled))


def with_broker(broker, what, body, opts, results, errors):
    """Starts the broker fresh, runs body(broker, opts, results, errors), stops the broker."""
    try:
        progress(f"{broker.name}: starting for the {what}")
        broker.start()
        progress(f"{broker.name}: listening on 127.0.0.1:{broker.port}")
        body(broker, opts, results, errors)
        return True
    except BrokerError as e:
        errors.append(str(e))
        progress(f"{broker.name}: {e}")
        return False
    finally:
        for p in broker.stop():
            errors.append(p)
            progress(f"{broker.name}: {p}")


def run_broker(broker, opts):
    """Everything for one broker: memory on a fresh start (so the throughput runs leave nothing
    behind in it), then the throughput and latency scenarios on another. Returns (results by
    run key, list of errors)."""
    results, errors = {}, []
    if with_broker(broker, "memory readings", run_memory, opts, results, errors):
        with_broker(broker, "scenarios", run_scenarios, opts, results, errors)
    return results, errors


# ---- the table -------------------------------------------------------------------------------

def fmt(value, unit):
    if value is None or value < 0:
        return "-"
    if unit == "rate":
        if value < 1e3:
            return f"{value:.1f}/s"
        return f"{value / 1e6:.2f}M/s" if value >= 1e6 else f"{value / 1e3:.1f}k/s"
    if unit == "us":
        if value >= 1e6:
            return f"{value / 1e6:.2f} s"
        return f"{value / 1e3:.2f} ms" if value >= 1000 else f"{value:.0f} us"
    return f"{value / 1024:.1f} MiB"


def target_text(target, unit, higher):
    if target is None:
        return ""
    return (">= " if higher else "<= ") + fmt(target, unit)


def value(results, key, field):
    v = results.get(key, {}).get(field)
    return v if isinstance(v, float) or isinstance(v, int) else None


def build_table(all_results, fill_count):
    out = []
    for label, key, field, unit, target, higher in table_rows(fill_count):
        t = value(all_results.get("tern", {}), key, field)
        r = value(all_results.get("rabbitmq", {}), key, field)
        ratio = f"x{t / r:.2f}" if t is not None and r else "-"
        f = value(all_results.get("floor", {}), key, field) if key in FLOOR_RUNS else None
        met = ""
        if target is not None:
            met = "-" if t is None else ("met" if (t >= target if higher else t <= target)
                                         else "not met")
        out.append({"label": label, "unit": unit, "tern": t, "rabbitmq": r, "ratio": ratio,
                    "floor": f, "target": target, "higher_is_better": higher, "met": met})
    return out


def print_table(table):
    head = ["measure", "tern", "rabbitmq", "tern/rmq", "floor", "target", "tern vs target"]
    rows = [[r["label"], fmt(r["tern"], r["unit"]), fmt(r["rabbitmq"], r["unit"]), r["ratio"],
             fmt(r["floor"], r["unit"]) if r["floor"] is not None else "", target_text(r["target"], r["unit"], r["higher_is_better"]), r["met"]]
            for r in table]
    widths = [max(len(x[i]) for x in rows + [head]) for i in range(len(head))]
    line = lambda cells: "  ".join(c.ljust(w) if i == 0 else c.rjust(w)
                                   for i, (c, w) in enumerate(zip(cells, widths))).rstrip()
    print(line(head))
    print(line(["-" * w for w in widths]))
    for r in rows:
        print(line(r))
    print("rates: higher is better; latencies and RSS: lower is better (tern/rmq < 1 is better).")
    print("floor: the same latency traffic through bench_floor's relay, which only forwards it (the")
    print("durable rows: and appends it to a file, fdatasynced with ternd's default group-commit")
    print("spacing); a target below the floor cannot be met on this machine.")


def print_generator_cpu(all_results):
    """The generator's own CPU per run: near the number of connections, it was the limit."""
    notes = []
    for broker, res in all_results.items():
        for key, r in res.items():
            if key != "rss" and isinstance(r.get("client_cpu"), float):
                conns = r.get("publishers", 1) + r.get("consumers", 0)
                if r["client_cpu"] > 0.8 * min(conns, os.cpu_count() or 1):
                    notes.append(f"{broker} {key}: generator CPU {r['client_cpu']:.2f} cores")
    if notes:
        print("generator near its own limit (the number may be the client's, not the broker's):")
        for n in notes:
            print("  " + n)


# ---- the chart -------------------------------------------------------------------------------

def write_chart(table, path, title):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        progress("no chart: matplotlib is missing (apt-get install python3-matplotlib)")
        return False
    panels = [("rate", "messages per second (log)"), ("us", "microseconds (log)"),
              ("kb", "resident memory, MiB")]
    rows_by = {u: [r for r in table if r["unit"] == u] for u, _ in panels}
    heights = [max(2.0, 0.42 * len(rows_by[u]) + 0.8) for u, _ in panels]
    fig, axes = plt.subplots(len(panels), 1, figsize=(10, sum(heights)),
                             gridspec_kw={"height_ratios": heights})
    colours = {"tern": "#2a7ab9", "rabbitmq": "#f28e2b"}
    for ax, (unit, xlabel) in zip(axes, panels):
        rows = rows_by[unit]
        scale = (1 / 1024) if unit == "kb" else 1
        shown = []
        for j, broker in enumerate(("tern", "rabbitmq")):
            ys = [i + (j - 0.5) * 0.38 for i in range(len(rows))]
            xs = [(r[broker] or 0) * scale for r in rows]
            label = broker if any(xs) else f"{broker} (no result)"
            ax.barh(ys, xs, height=0.36, color=colours[broker], label=label)
            for y, x in zip(ys, xs):
                if x > 0:
                    ax.text(x, y, " " + fmt(x / scale, unit), va="center", fontsize=7)
            shown += [x for x in xs if x > 0]
        targets = [(i, r["target"] * scale) for i, r in enumerate(rows) if r["target"]]
        for n, (i, x) in enumerate(targets):
            ax.plot([x, x], [i - 0.45, i + 0.45], color="#c0392b", linewidth=2,
                    label="target (tern)" if n == 0 else None)
        shown += [x for _, x in targets]
        floors = [(i, r["floor"] * scale) for i, r in enumerate(rows) if r.get("floor")]
        for n, (i, x) in enumerate(floors):
            ax.plot([x, x], [i - 0.45, i + 0.45], color="#555555", linewidth=2, linestyle=":",
                    label="machine floor (bench_floor)" if n == 0 else None)
        shown += [x for _, x in floors]
        if unit != "kb":
            ax.set_xscale("log")
            if shown:
                ax.set_xlim(min(shown) / 2, max(shown) * 4)  # room for the value labels
        elif shown:
            ax.set_xlim(0, max(shown) * 1.2)
        ax.set_yticks(range(len(rows)))
        ax.set_yticklabels([r["label"] for r in rows], fontsize=8)
        ax.invert_yaxis()
        ax.set_xlabel(xlabel, fontsize=8)
        ax.tick_params(axis="x", labelsize=8)
        ax.grid(axis="x", alpha=0.3)
    fig.suptitle(title, fontsize=10)
    handles, labels = {}, []
    for ax in axes:  # the floor's marker is only on the latency panel
        for h, lab in zip(*ax.get_legend_handles_labels()):
            if lab not in handles:
                handles[lab] = h
                labels.append(lab)
    fig.legend([handles[lab] for lab in labels], labels, loc="upper center", ncol=4, fontsize=8,
               bbox_to_anchor=(0.5, 0.975), frameon=False)
    fig.tight_layout(rect=(0, 0, 1, 0.955))
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


# ---- main ------------------------------------------------------------------------------------

def parse_args(argv):
    ap = argparse.ArgumentParser(
        description="tern vs RabbitMQ over AMQP: throughput, latency and memory, in one run.")
    ap.add_argument("--only", choices=["tern", "rabbitmq"], help="run one broker only")
    ap.add_argument("--seconds", type=float, default=float(os.environ.get("BENCH_SECONDS", 5)),
                    help="measured seconds per scenario (default $BENCH_SECONDS or 5)")
    ap.add_argument("--warmup", type=float, default=1.0,
                    help="unmeasured seconds before each scenario (default 1)")
    ap.add_argument("--fill-count", type=int, default=1000000,
                    help="messages queued for the memory reading (default 1000000)")
    ap.add_argument("--ternd", default=os.environ.get("TERND",
                                                      str(ROOT / "build/release/ternd")))
    ap.add_argument("--generator", default=os.environ.get(
        "BENCH_AMQP", str(ROOT / "build/release/bench/bench_amqp")))
    ap.add_argument("--floor", default=os.environ.get(
        "BENCH_FLOOR", str(ROOT / "build/release/bench/bench_floor")),
                    help="the latency-floor relay (default build/release/bench/bench_floor)")
    ap.add_argument("--out", default=str(ROOT / "bench/out"),
                    help="directory for amqp.png and amqp.json (default bench/out)")
    opts = ap.parse_args(argv)
    if not opts.seconds > 0 or opts.warmup < 0 or opts.fill_count < 1:
        ap.error("--seconds must be > 0, --warmup >= 0, --fill-count >= 1")
    opts.floor_runs = None  # (results, errors) of run_floor, once it has run
    return opts


def on_signal(signum, frame):
    raise SystemExit(128 + signum)  # unwinds through run_broker, which stops the broker


def main(argv):
    opts = parse_args(argv)
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, on_signal)
    if not os.access(opts.generator, os.X_OK):
        progress(f"amqp_bench: no generator at {opts.generator}: build it with `make` "
                 f"(needs librabbitmq-dev), or set BENCH_AMQP")
        return 1
    brokers = []
    if opts.only in (None, "tern"):
        brokers.append(Tern(opts.ternd))
    if opts.only in (None, "rabbitmq"):
        brokers.append(RabbitMQ())
    load0 = os.getloadavg()[0]
    all_results, all_errors = {}, {}
    for b in brokers:
        all_results[b.name], all_errors[b.name] = run_broker(b, opts)
    all_results["floor"], all_errors["floor"] = opts.floor_runs or ({}, [])
    load1 = os.getloadavg()[0]

    table = build_table(all_results, opts.fill_count)
    print()
    print(f"AMQP: tern vs RabbitMQ, {opts.seconds:g} s per scenario (+{opts.warmup:g} s warm-up), "
          f"{os.cpu_count()} CPUs, load {load0:.2f} -> {load1:.2f}")
    print_table(table)
    print_generator_cpu(all_results)
    failed = {k: v for k, v in all_errors.items() if v}
    for name, errs in failed.items():
        print(f"\n{name} FAILED:")
        for e in errs:
            print("  " + e.replace("\n", "\n  "))

    out = Path(opts.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "amqp.json").write_text(json.dumps(
        {"seconds": opts.seconds, "warmup": opts.warmup, "fill_count": opts.fill_count,
         "cpus": os.cpu_count(), "load": [load0, load1], "results": all_results,
         "errors": all_errors, "table": table}, indent=1) + "\n")
    title = (f"tern vs RabbitMQ (AMQP 0-9-1, {opts.seconds:g} s per scenario, "
             f"{os.cpu_count()} CPUs, load {load0:.1f}-{load1:.1f})")
    if write_chart(table, out / "amqp.png", title):
        print(f"\nchart: {out / 'amqp.png'}  numbers: {out / 'amqp.json'}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
