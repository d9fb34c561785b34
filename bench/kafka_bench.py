#!/usr/bin/python3
"""kafka_bench.py - tern's Kafka protocol against NATS JetStream and Redis streams, one run.

Starts each system itself, a fresh server for every row, on 127.0.0.1 with a temporary data
directory and a free port: ternd (Kafka protocol, driven by bench_kafka on librdkafka), Debian's
nats-server with JetStream (bench_nats on libnats) and Debian's redis-server with an append-only
file (bench_redis on hiredis). Runs the same rows against each: producer throughput (100 B and 1 KiB records,
acks=1 and acks=all, 1 and 4 producers), consumer throughput (a pre-filled topic read from the
beginning) and end-to-end latency at a fixed rate. Measures the machine's ceilings in the same
run: the disk's sequential write bandwidth on the filesystem of the data directories, and
loopback TCP throughput. Stops every system and checks that no process it started is left.
Prints one table (each system, tern's ratio to each, the ceilings, the issue's targets, met or
not) and writes bench/out/kafka.json and bench/out/kafka.png.

    make bench-kafka                        # all three systems, 5 s per row
    make bench-kafka BENCH_ARGS=--quick     # smoke run: 1 s per row, small fills
    bench/kafka_bench.py --only tern --seconds 2

ternd comes from $TERND or build/release/ternd, started with
`--data-dir TMP --amqp-port 0 --kafka-port 0 --http-port 0`; it must print
`event=listening proto=kafka bind=ADDR port=N` on stderr when ready. nats-server runs as
`nats-server -js -sd TMP -a 127.0.0.1 -p PORT`; redis-server with `--appendonly yes`, no RDB
snapshots, and appendfsync switched per row by bench_redis (always for acks=all, everysec for
acks=1).

Exit status: 0 when every system asked for ran every row; 1 when one failed (its column shows
"-" and the reason is printed) or a process was left behind; 2 for a bad command line; 130 on
Ctrl-C. Targets do not change the exit status: the benchmark measures, it does not gate.

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


def program(name):
    """Debian's binary: nats-server is in /usr/sbin, which a user's PATH may lack."""
    for d in ("/usr/sbin", "/usr/bin"):
        if os.access(f"{d}/{name}", os.X_OK):
            return f"{d}/{name}"
    return shutil.which(name) or f"/usr/sbin/{name}"


NATS_SERVER = program("nats-server")
REDIS_SERVER = program("redis-server")
SYSTEMS = ("tern", "nats", "redis")
LABELS = {"tern": "tern", "nats": "JetStream", "redis": "Redis"}
GENERATORS = {"tern": "bench_kafka", "nats": "bench_nats", "redis": "bench_redis"}
START_TIMEOUT = 20.0  # seconds until the port answers
STOP_TIMEOUT = 30.0
LISTENING = re.compile(r"event=listening proto=kafka bind=(\S+) port=(\d+)")
# Every process a run starts carries this in its environment, so that the end of the run can
# prove none is left (and name any that is).
MARK_VAR = "TERN_KAFKA_BENCH_RUN"
# Servers and generators run in process groups of their own, so that Ctrl-C at the terminal
# reaches the driver alone and the driver stops them in order. Not in sessions of their own: with
# the kernel's autogroup scheduling every session is a separate scheduling group, and on a busy
# machine a nats-server in its own session showed 10-100x its end-to-end latency.
OWN_GROUP = ({"process_group": 0} if sys.version_info >= (3, 11)
             else {"preexec_fn": os.setpgrp})

SIZES = (100, 1024)
PRODUCERS = (1, 4)
ACKS = ("1", "all")
FILL_COUNT = {100: 2000000, 1024: 1000000}  # records read by the consume rows
LATENCY_RATE = 10000
LATENCY_SIZE = 100
DISK_TARGET = 0.70      # acks=all at 1 KiB, of the sequential write bandwidth
LOOPBACK_TARGET = 0.80  # consume, of loopback TCP throughput
CEILING_CAP = 1 << 30   # bytes written per disk ceiling sample at most
DROP_CHUNK = 16 << 20   # the "drop" disk ceiling: fdatasync and drop from the cache this often
MIB = 1 << 20


class SystemError_(Exception):
    pass


# ---- the rows ----------------------------------------------------------------------------------

def size_label(size):
    return f"{size // 1024} KiB" if size % 1024 == 0 else f"{size} B"


def runs(opts):
    """One entry per generator run: (key, arguments)."""
    out = []
    for size in SIZES:
        for acks in ACKS:
            for p in PRODUCERS:
                out.append((f"produce_{size}_{acks}_{p}",
                            ["--scenario", "produce", "--size", str(size), "--acks", acks,
                             "--producers", str(p)]))
    for size in SIZES:
        count = FILL_COUNT[size] // (10 if opts.quick else 1)
        out.append((f"consume_{size}", ["--scenario", "consume", "--size", str(size),
                                        "--acks", "1", "--count", str(count),
                                        "--fill-seconds", str(opts.fill_seconds)]))
    for acks in ACKS:
        out.append((f"latency_{acks}", ["--scenario", "latency", "--size", str(LATENCY_SIZE),
                                        "--acks", acks, "--rate", str(LATENCY_RATE)]))
    return out


def table_rows():
    """(label, run key, result field, unit, ceiling, target, higher_is_better, record size).
    unit: "rate" records/s or "us"; ceiling: None, "disk" or "loopback" (compared in MB/s);
    target: the fraction of the ceiling tern should reach, or None."""
    rows = []
    for size in SIZES:
        for acks in ACKS:
            for p in PRODUCERS:
                k = f"produce_{size}_{acks}_{p}"
                name = f"produce {size_label(size)} acks={acks} x{p}"
                ceiling = "disk" if acks == "all" else None
                target = DISK_TARGET if acks == "all" and size == 1024 else None
                rows.append((f"{name}: rate", k, "rate_per_s", "rate", ceiling, target, True,
                             size))
                for q in ("p50", "p99"):
                    rows.append((f"{name}: delivery {q}", k, f"delivery_{q}_us", "us", None, None,
                                 False, size))
    for size in SIZES:
        rows.append((f"consume {size_label(size)}: rate", f"consume_{size}", "rate_per_s", "rate",
                     "loopback", LOOPBACK_TARGET, True, size))
    for acks in ACKS:
        name = f"latency {LATENCY_RATE // 1000}k/s {size_label(LATENCY_SIZE)} acks={acks}"
        for q, field in (("p50", "e2e_p50_us"), ("p99", "e2e_p99_us"), ("p99.9", "e2e_p999_us")):
            rows.append((f"{name}: e2e {q}", f"latency_{acks}", field, "us", None, None, False,
                         LATENCY_SIZE))
    return rows


# ---- processes ---------------------------------------------------------------------------------

def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


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


def kill_marked(mark, grace=5.0):
    """Waits up to grace seconds for this run's processes to go, then SIGKILLs what is left.
    Returns a list of problems (one per process that had to be killed)."""
    deadline = time.monotonic() + grace
    left = marked_pids(mark)
    while left and time.monotonic() < deadline:
        time.sleep(0.1)
        left = marked_pids(mark)
    problems = []
    for pid in left:
        problems.append(f"left behind: pid {pid} ({comm(pid)}); killed")
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    return problems


def answers(port, probe, check):
    """True when something on port answers probe (bytes, may be empty) as check(data) wants."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1.0) as s:
            if probe:
                s.sendall(probe)
            return check(s.recv(64))
    except OSError:
        return False


class System:
    """A server started by this run: start(), then .port; stop() returns problems."""

    name = "?"

    def __init__(self, scratch, mark):
        self.scratch, self.mark = scratch, mark
        self.tmp, self.port, self.proc, self.log_path = None, None, None, None

    def env(self):
        env = dict(os.environ)
        env[MARK_VAR] = self.mark
        return env

    def spawn(self, argv, log_name):
        self.log_path = Path(self.tmp) / log_name
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log,
                                         stderr=subprocess.STDOUT, env=self.env(),
                                         cwd=self.tmp, **OWN_GROUP)

    def check_alive(self, during):
        if self.proc and self.proc.poll() is not None:
            raise SystemError_(f"{Path(self.proc.args[0]).name} exited with status "
                               f"{self.proc.returncode} during {during}; its output:\n"
                               f"{self.log_tail()}")

    def log_tail(self, lines=15):
        if not self.log_path or not Path(self.log_path).exists():
            return ""
        text = Path(self.log_path).read_text(errors="replace").splitlines()
        return "\n".join("    " + t for t in text[-lines:])

    def wait_ready(self, ready):
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if ready():
                return
            if self.proc.poll() is not None:
                raise SystemError_(f"{self.name} exited with status {self.proc.returncode} before "
                                   f"it was ready; its output:\n{self.log_tail()}")
            time.sleep(0.05)
        raise SystemError_(f"{self.name} was not ready within {START_TIMEOUT:.0f} s; its "
                           f"output:\n{self.log_tail()}")

    def stop(self):
        """SIGTERM, SIGKILL to the process group after STOP_TIMEOUT; then checks that no process
        of the run is left and removes the temporary directory. Returns a list of problems."""
        problems = []
        p = self.proc
        if p and p.poll() is None:
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                problems.append(f"pid {p.pid} ignored SIGTERM for {STOP_TIMEOUT:.0f} s; killed")
                try:
                    os.killpg(p.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                p.wait()
        problems += kill_marked(self.mark)
        if self.tmp:
            shutil.rmtree(self.tmp, ignore_errors=True)
        self.tmp, self.port, self.proc = None, None, None
        return problems


class Tern(System):
    name = "tern"

    def __init__(self, scratch, mark, ternd):
        super().__init__(scratch, mark)
        self.ternd = ternd

    def start(self):
        if not os.access(self.ternd, os.X_OK):
            raise SystemError_(f"no ternd at {self.ternd} (build it with `make`, or set TERND)")
        self.tmp = tempfile.mkdtemp(prefix="tern-kafka-bench.", dir=self.scratch)
        self.spawn([self.ternd, "--data-dir", str(Path(self.tmp) / "data"), "--amqp-port", "0",
                    "--kafka-port", "0", "--http-port", "0"], "ternd.log")

        def ready():
            m = LISTENING.search(self.log_path.read_text(errors="replace"))
            if m:
                self.port = int(m.group(2))
            return m is not None

        self.wait_ready(ready)


class Nats(System):
    name = "nats"

    def start(self):
        if not os.access(NATS_SERVER, os.X_OK):
            raise SystemError_(f"no {NATS_SERVER}: apt-get install nats-server")
        self.tmp = tempfile.mkdtemp(prefix="nats-kafka-bench.", dir=self.scratch)
        self.port = free_port()
        self.spawn([NATS_SERVER, "-js", "-sd", str(Path(self.tmp) / "jetstream"),
                    "-a", "127.0.0.1", "-p", str(self.port)], "nats-server.log")
        # JetStream is up before the client port opens
        self.wait_ready(lambda: answers(self.port, b"", lambda d: d.startswith(b"INFO ")))


class Redis(System):
    name = "redis"

    def start(self):
        if not os.access(REDIS_SERVER, os.X_OK):
            raise SystemError_(f"no {REDIS_SERVER}: apt-get install redis-server")
        self.tmp = tempfile.mkdtemp(prefix="redis-kafka-bench.", dir=self.scratch)
        self.port = free_port()
        self.spawn([REDIS_SERVER, "--bind", "127.0.0.1", "--port", str(self.port),
                    "--dir", self.tmp, "--appendonly", "yes", "--appendfsync", "everysec",
                    "--save", "", "--daemonize", "no", "--logfile", ""], "redis-server.log")
        self.wait_ready(lambda: answers(self.port, b"PING\r\n", lambda d: d == b"+PONG\r\n"))


# ---- the ceilings ------------------------------------------------------------------------------

def disk_ceiling(directory, seconds):
    """Sequential write bandwidth of the filesystem holding directory, in MB/s, three ways:
    "bulk": 1 MiB pwrite()s to a new file for `seconds` (or CEILING_CAP bytes), then one
    fdatasync, timed including it (bench_store's raw sequential write); "each": the same with an
    fdatasync after every 1 MiB; "drop": an fdatasync after every DROP_CHUNK, each followed by
    posix_fadvise(DONTNEED) of what it covered, so that the page cache reuses its own freed
    pages instead of taking fresh ones (on this VM a fresh page costs the host a fault: 1.0-1.5
    ns per byte written against 0.1, see README.md). None is always the fastest on a virtual
    disk, so the ceiling is the best of the three. The dirty pages of earlier rows are synced
    first."""
    block = os.urandom(MIB)
    out = {}
    for mode in ("bulk", "each", "drop"):
        os.sync()
        fd, path = tempfile.mkstemp(prefix="disk-ceiling.", dir=directory)
        try:
            off, t0 = 0, time.monotonic()
            while time.monotonic() - t0 < seconds and off < CEILING_CAP:
                os.pwrite(fd, block, off)
                off += MIB
                if mode == "each" or (mode == "drop" and off % DROP_CHUNK == 0):
                    os.fdatasync(fd)
                if mode == "drop" and off % DROP_CHUNK == 0:
                    os.posix_fadvise(fd, off - DROP_CHUNK, DROP_CHUNK, os.POSIX_FADV_DONTNEED)
            os.fdatasync(fd)
            out[mode] = off / (time.monotonic() - t0) / 1e6
        finally:
            os.close(fd)
            os.unlink(path)
    return out


def loopback_ceiling(seconds, chunk=MIB):
    """One TCP connection over 127.0.0.1, 1 MiB send()s and recv()s in two threads; MB/s
    received."""
    ls = socket.socket()
    ls.bind(("127.0.0.1", 0))
    ls.listen(1)
    a = socket.create_connection(ls.getsockname())
    b, _ = ls.accept()
    ls.close()
    got = [0]

    def receive():
        buf = memoryview(bytearray(chunk))
        try:
            while True:
                n = b.recv_into(buf)
                if n == 0:
                    return
                got[0] += n
        except OSError:
            return

    t = threading.Thread(target=receive, daemon=True)
    t.start()
    try:
        data = memoryview(os.urandom(chunk))
        t0 = time.monotonic()
        while time.monotonic() - t0 < seconds:
            a.sendall(data)
        n, elapsed = got[0], time.monotonic() - t0
    finally:
        a.close()
        t.join(5)
        b.close()
    return n / elapsed / 1e6


def filesystem_of(path):
    """(mount point, type) of the filesystem holding path, from /proc/self/mountinfo."""
    best = ("/", "?")
    real = os.path.realpath(path)
    try:
        for line in Path("/proc/self/mountinfo").read_text().splitlines():
            left, _, right = line.partition(" - ")
            mnt = left.split()[4]
            if (real == mnt or real.startswith(mnt.rstrip("/") + "/")) and len(mnt) >= len(best[0]):
                best = (mnt, right.split()[0])
    except OSError:
        pass
    return best


class Ceilings:
    """Samples taken at several points of the run; a ceiling is the best sample."""

    def __init__(self, scratch, seconds):
        self.scratch, self.seconds = scratch, seconds
        self.samples = {"disk_bulk": [], "disk_each": [], "disk_drop": [], "loopback": []}

    def measure(self, when):
        progress(f"ceilings ({when})")
        d = disk_ceiling(self.scratch, self.seconds)
        self.samples["disk_bulk"].append(d["bulk"])
        self.samples["disk_each"].append(d["each"])
        self.samples["disk_drop"].append(d["drop"])
        self.samples["loopback"].append(loopback_ceiling(self.seconds))

    def best(self, kind):
        """The disk ceiling is the best sample of either way of writing."""
        keys = ("disk_bulk", "disk_each", "disk_drop") if kind == "disk" else (kind,)
        s = [x for k in keys for x in self.samples[k]]
        return max(s) if s else None


# ---- running the generators --------------------------------------------------------------------

def parse_result(stdout):
    for line in stdout.splitlines():
        if line.startswith("result "):
            out = {}
            for kv in line.split()[1:]:
                k, _, v = kv.partition("=")
                try:
                    out[k] = float(v)
                except ValueError:
                    out[k] = v
            return out
    return None


def run_generator(gen, system, args, timeout):
    """Runs a generator against system; returns its result fields, or raises SystemError_.
    The generator is in a process group of its own and is killed if anything interrupts the
    wait."""
    argv = [gen, "--port", str(system.port)] + args
    p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, env=system.env(),
                         **OWN_GROUP)
    try:
        stdout, stderr = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        raise SystemError_(f"{Path(gen).name} {' '.join(args)}: no result after {timeout:.0f} s")
    finally:
        if p.poll() is None:
            p.kill()
            p.communicate()
    res = parse_result(stdout)
    if p.returncode != 0 or res is None:
        err = stderr.strip() or f"exit status {p.returncode}"
        raise SystemError_(f"{Path(gen).name} {' '.join(args)}: {err}")
    return res


def progress(msg):
    print(msg, file=sys.stderr, flush=True)


def syncfs(directory):
    """Writes back the dirty pages of the filesystem holding directory (syncfs(2); sync(2) where
    that is missing), so that a row does not pay for the write-back of the one before."""
    try:
        import ctypes
        libc = ctypes.CDLL(None, use_errno=True)
        fd = os.open(directory, os.O_RDONLY)
        try:
            if libc.syncfs(fd) == 0:
                return
        finally:
            os.close(fd)
    except (OSError, AttributeError):
        pass
    os.sync()


def run_row(system, opts, key, args, results, errors):
    """One row on a fresh server: start, run the generator, stop."""
    gen = str(Path(opts.bin_dir) / GENERATORS[system.name])
    limit = opts.seconds + opts.warmup + 120
    if key.startswith("consume"):
        limit += opts.fill_seconds + max(60, 20 * opts.seconds)
    try:
        syncfs(system.scratch)
        system.start()
        progress(f"{system.name}: {key} (127.0.0.1:{system.port})")
        results[key] = run_generator(gen, system, args + ["--seconds", str(opts.seconds),
                                                          "--warmup", str(opts.warmup)], limit)
        system.check_alive(key)
    except SystemError_ as e:
        errors.append(str(e))
        progress(f"{system.name}: {e}")
    finally:
        for p in system.stop():
            errors.append(f"{key}: {p}")
            progress(f"{system.name}: {p}")


def run_system(system, opts):
    """Every row against one system, each on a server started for it. Returns (results by run
    key, errors)."""
    results, errors = {}, []
    gen = Path(opts.bin_dir) / GENERATORS[system.name]
    if not os.access(gen, os.X_OK):
        errors.append(f"no generator at {gen}: build it with `make` (needs the client library, "
                      f"see `make kafka-bench-deps`)")
        return results, errors
    for key, args in runs(opts):
        run_row(system, opts, key, args, results, errors)
    return results, errors


# ---- the table ---------------------------------------------------------------------------------

def fmt(value, unit):
    if value is None or value < 0:
        return "-"
    if unit == "rate":
        return f"{value / 1e6:.2f}M/s" if value >= 1e6 else f"{value / 1e3:.1f}k/s"
    if unit == "us":
        if value >= 1e6:
            return f"{value / 1e6:.2f} s"
        return f"{value / 1e3:.2f} ms" if value >= 1000 else f"{value:.0f} us"
    return f"{value:.0f} MB/s"


def value(results, key, field):
    v = results.get(key, {}).get(field)
    return v if isinstance(v, (int, float)) else None


def better(a, b, higher):
    return a > b if higher else a < b


def build_table(all_results, ceilings):
    out = []
    for label, key, field, unit, ceiling, target, higher, size in table_rows():
        vals = {s: value(all_results.get(s, {}), key, field) for s in SYSTEMS}
        t = vals["tern"]
        row = {"label": label, "key": key, "unit": unit, "size": size, "higher_is_better": higher,
               "values": vals, "ratios": {}, "ahead": "-", "tern_mb_per_s": None,
               "ceiling": ceiling, "ceiling_mb_per_s": None, "of_ceiling": None,
               "target": target, "met": ""}
        for s in ("nats", "redis"):
            if t is not None and vals[s]:
                row["ratios"][s] = t / vals[s]
        peers = [vals[s] for s in ("nats", "redis") if vals[s] is not None]
        if t is not None and peers:
            row["ahead"] = "yes" if all(better(t, v, higher) for v in peers) else "no"
        if unit == "rate":
            row["tern_mb_per_s"] = value(all_results.get("tern", {}), key, "mb_per_s")
        if ceiling:
            row["ceiling_mb_per_s"] = ceilings.best(ceiling)
            if row["tern_mb_per_s"] is not None and row["ceiling_mb_per_s"]:
                row["of_ceiling"] = row["tern_mb_per_s"] / row["ceiling_mb_per_s"]
        if target is not None:
            row["met"] = "-" if row["of_ceiling"] is None else (
                "met" if row["of_ceiling"] >= target else "not met")
        out.append(row)
    return out


def print_table(table):
    head = ["measure", "tern", "JetStream", "Redis", "t/JS", "t/Redis", "ahead", "tern MB/s",
            "ceiling", "of ceil.", "target", "met"]
    rows = []
    for r in table:
        u = r["unit"]
        rows.append([r["label"]] + [fmt(r["values"][s], u) for s in SYSTEMS] +
                    [f"x{r['ratios'][s]:.2f}" if s in r["ratios"] else "-"
                     for s in ("nats", "redis")] +
                    [r["ahead"],
                     "" if r["tern_mb_per_s"] is None else f"{r['tern_mb_per_s']:.0f}",
                     "" if not r["ceiling"] else
                     f"{r['ceiling']} {fmt(r['ceiling_mb_per_s'], 'mb')}",
                     "" if r["of_ceiling"] is None else f"{100 * r['of_ceiling']:.0f}%",
                     "" if r["target"] is None else f">= {100 * r['target']:.0f}%",
                     r["met"]])
    widths = [max(len(x[i]) for x in rows + [head]) for i in range(len(head))]

    def line(cells):
        return "  ".join(c.ljust(w) if i == 0 else c.rjust(w)
                         for i, (c, w) in enumerate(zip(cells, widths))).rstrip()

    print(line(head))
    print(line(["-" * w for w in widths]))
    for r in rows:
        print(line(r))
    print("rates: records/s, higher is better; latencies: lower is better. t/JS, t/Redis: tern's "
          "value over the peer's.\nahead: tern better than both peers on the row. MB/s count "
          "record values (10^6 bytes).")


def print_targets(table):
    """The issue's three targets, one line each."""
    def summary(rows):
        if not rows or any(r["met"] in ("", "-") for r in rows):
            return "no result"
        met = all(r["met"] == "met" for r in rows)
        parts = ", ".join(f"{r['label'].split(':')[0]} {100 * r['of_ceiling']:.0f}%" for r in rows)
        return ("met" if met else "not met") + f" ({parts})"

    def ahead(rows, what):
        rows = [r for r in rows if r["ahead"] in ("yes", "no")]
        behind = [r["label"] for r in rows if r["ahead"] == "no"]
        if not rows:
            return f"  {what}: no result"
        return (f"  {what}: {'met' if not behind else 'not met'} ({len(rows) - len(behind)} of "
                f"{len(rows)} rows)" + ("" if not behind else "; behind on: " + "; ".join(behind)))

    disk = [r for r in table if r["ceiling"] == "disk" and r["target"] is not None]
    loop = [r for r in table if r["ceiling"] == "loopback"]
    print("targets:")
    print(f"  acks=all at 1 KiB >= {100 * DISK_TARGET:.0f}% of sequential disk write: "
          f"{summary(disk)}")
    print(f"  consume >= {100 * LOOPBACK_TARGET:.0f}% of loopback TCP: {summary(loop)}")
    # the rows: throughput and end-to-end latency. The delivery latency of the flat-out
    # produce rows is mostly time in the client's queue (see bench/README.md): shown apart.
    print(ahead([r for r in table if "delivery" not in r["label"]],
                "ahead of JetStream and Redis on every row (rates, end-to-end latency)"))
    print(ahead([r for r in table if "delivery" in r["label"]],
                "(not a target) ahead on delivery latency under flat-out load"))


def print_generator_cpu(all_results):
    """The generator's own CPU per run: near its thread count (or the CPUs), it was the limit."""
    notes = []
    for system, res in all_results.items():
        for key, r in res.items():
            cpu = r.get("client_cpu")
            if not isinstance(cpu, float):
                continue
            clients = r.get("producers", 1) + (0 if r.get("scenario") == "produce" else 1)
            if key.startswith("consume"):
                clients = 1
            if cpu > 0.8 * min(clients, os.cpu_count() or 1):
                notes.append(f"{system} {key}: generator CPU {cpu:.2f} cores")
    if notes:
        print("generator near its own limit (the number may be the client's, not the server's):")
        for n in notes:
            print("  " + n)


def print_ceilings(ceilings):
    s = ceilings.samples

    def lst(xs):
        return ", ".join(f"{x:.0f}" for x in xs) or "-"

    print(f"ceilings, MB/s (the best sample is the ceiling): sequential write, 1 MiB writes and "
          f"one fdatasync: {lst(s['disk_bulk'])}; 1 MiB writes each followed by fdatasync: "
          f"{lst(s['disk_each'])}; the same with fdatasync and a page-cache drop every 16 MiB: "
          f"{lst(s['disk_drop'])}; loopback TCP: {lst(s['loopback'])}")


# ---- the chart ---------------------------------------------------------------------------------

def write_chart(table, path, title):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        progress("no chart: matplotlib is missing (apt-get install python3-matplotlib)")
        return False
    panels = [("rate", "records per second (log)"), ("us", "microseconds (log)")]
    rows_by = {u: [r for r in table if r["unit"] == u] for u, _ in panels}
    heights = [max(2.0, 0.5 * len(rows_by[u]) + 0.8) for u, _ in panels]
    fig, axes = plt.subplots(len(panels), 1, figsize=(11, sum(heights) + 0.8),
                             gridspec_kw={"height_ratios": heights})
    colours = {"tern": "#2a7ab9", "nats": "#27a644", "redis": "#d1382f"}
    for ax, (unit, xlabel) in zip(axes, panels):
        rows = rows_by[unit]
        shown = []
        for j, s in enumerate(SYSTEMS):
            ys = [i + (j - 1) * 0.27 for i in range(len(rows))]
            xs = [r["values"][s] or 0 for r in rows]
            label = LABELS[s] if any(xs) else f"{LABELS[s]} (no result)"
            ax.barh(ys, xs, height=0.26, color=colours[s], label=label)
            for y, x in zip(ys, xs):
                if x > 0:
                    ax.text(x, y, " " + fmt(x, unit), va="center", fontsize=6)
            shown += [x for x in xs if x > 0]
        # ceilings and targets in records/s at the row's record size
        n_ceil = n_target = 0
        for i, r in enumerate(rows):
            if not r["ceiling_mb_per_s"]:
                continue
            c = r["ceiling_mb_per_s"] * 1e6 / r["size"]
            ax.plot([c, c], [i - 0.45, i + 0.45], color="#555555", linewidth=2,
                    label="ceiling" if n_ceil == 0 else None)
            n_ceil += 1
            shown.append(c)
            if r["target"]:
                ax.plot([c * r["target"]] * 2, [i - 0.45, i + 0.45], color="#c0392b",
                        linewidth=2, linestyle=":",
                        label="target (tern)" if n_target == 0 else None)
                n_target += 1
        ax.set_xscale("log")
        if shown:
            ax.set_xlim(min(shown) / 2, max(shown) * 4)  # room for the value labels
        ax.set_yticks(range(len(rows)))
        ax.set_yticklabels([r["label"] for r in rows], fontsize=7)
        ax.invert_yaxis()
        ax.set_xlabel(xlabel, fontsize=8)
        ax.tick_params(axis="x", labelsize=8)
        ax.grid(axis="x", alpha=0.3)
    height = sum(heights) + 0.8  # inches: the title and the legend take the top 0.8 in
    fig.suptitle(title, fontsize=10, y=1 - 0.1 / height, va="top")
    fig.legend(*axes[0].get_legend_handles_labels(), loc="upper center", ncol=5, fontsize=8,
               bbox_to_anchor=(0.5, 1 - 0.35 / height), frameon=False)
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.8 / height))
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


# ---- main --------------------------------------------------------------------------------------

def default_scratch():
    build = ROOT / "build"
    return str(build) if build.is_dir() else tempfile.gettempdir()


def parse_args(argv):
    ap = argparse.ArgumentParser(
        description="tern (Kafka protocol) vs NATS JetStream vs Redis streams, with the "
                    "machine's disk and loopback ceilings, in one run.")
    ap.add_argument("--only", choices=SYSTEMS, help="run one system only")
    ap.add_argument("--seconds", type=float, default=float(os.environ.get("BENCH_SECONDS", 5)),
                    help="measured seconds per row (default $BENCH_SECONDS or 5)")
    ap.add_argument("--warmup", type=float, default=1.0,
                    help="unmeasured seconds before each row (default 1)")
    ap.add_argument("--fill-seconds", type=float, default=60.0,
                    help="longest fill of a consume row (default 60)")
    ap.add_argument("--quick", action="store_true",
                    help="smoke run: 1 s per row, 0.5 s warm-up, a tenth of the fill")
    ap.add_argument("--dir", default=default_scratch(),
                    help="where the data directories and the disk ceiling's file go "
                         "(default ./build, else $TMPDIR): the disk being measured")
    ap.add_argument("--ternd", default=os.environ.get("TERND",
                                                      str(ROOT / "build/release/ternd")))
    ap.add_argument("--bin-dir", default=os.environ.get(
        "BENCH_BIN_DIR", str(ROOT / "build/release/bench")),
        help="where bench_kafka, bench_nats and bench_redis are (default build/release/bench)")
    ap.add_argument("--out", default=str(ROOT / "bench/out"),
                    help="directory for kafka.png and kafka.json (default bench/out)")
    opts = ap.parse_args(argv)
    if opts.quick:
        opts.seconds, opts.warmup, opts.fill_seconds = 1.0, 0.5, min(opts.fill_seconds, 15.0)
    if not opts.seconds > 0 or opts.warmup < 0 or not opts.fill_seconds > 0:
        ap.error("--seconds and --fill-seconds must be > 0, --warmup >= 0")
    return opts


def on_signal(signum, frame):
    raise SystemExit(128 + signum)  # unwinds through run_system, which stops the server


def make_system(name, scratch, mark, opts):
    if name == "tern":
        return Tern(scratch, mark, opts.ternd)
    return Nats(scratch, mark) if name == "nats" else Redis(scratch, mark)


def run_all(opts, scratch, mark, ceilings, all_results, all_errors):
    names = [opts.only] if opts.only else list(SYSTEMS)
    ceilings.measure("start")
    for name in names:
        all_results[name], all_errors[name] = run_system(make_system(name, scratch, mark, opts),
                                                         opts)
        ceilings.measure(f"after {name}")


def report(opts, ceilings, all_results, all_errors, loads, leftover):
    table = build_table(all_results, ceilings)
    print()
    print(f"Kafka benchmark: tern vs NATS JetStream vs Redis streams, {opts.seconds:g} s per row "
          f"(+{opts.warmup:g} s warm-up), {os.cpu_count()} CPUs, load {loads[0]:.2f} -> "
          f"{loads[1]:.2f}, data on {opts.dir} ({filesystem_of(opts.dir)[1]})")
    print_ceilings(ceilings)
    print_table(table)
    print_targets(table)
    print_generator_cpu(all_results)
    failed = {k: v for k, v in all_errors.items() if v}
    for name, errs in failed.items():
        print(f"\n{name} FAILED:")
        for e in errs:
            print("  " + e.replace("\n", "\n  "))
    out = Path(opts.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "kafka.json").write_text(json.dumps(
        {"seconds": opts.seconds, "warmup": opts.warmup, "quick": opts.quick,
         "cpus": os.cpu_count(), "load": list(loads), "dir": opts.dir,
         "filesystem": filesystem_of(opts.dir)[1], "ceilings": ceilings.samples,
         "results": all_results, "errors": all_errors, "left_behind": leftover,
         "table": table}, indent=1) + "\n")
    title = (f"tern vs NATS JetStream vs Redis streams ({opts.seconds:g} s per row, "
             f"{os.cpu_count()} CPUs, load {loads[0]:.1f}-{loads[1]:.1f})")
    if write_chart(table, out / "kafka.png", title):
        print(f"\nchart: {out / 'kafka.png'}  numbers: {out / 'kafka.json'}")
    return 1 if failed or leftover else 0


def main(argv):
    opts = parse_args(argv)
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, on_signal)
    mount, fstype = filesystem_of(opts.dir)
    if fstype in ("tmpfs", "ramfs"):
        progress(f"warning: {opts.dir} is on {fstype}: the disk ceiling and every fsync mean "
                 f"nothing there (use --dir)")
    scratch = tempfile.mkdtemp(prefix="kafka-bench.", dir=opts.dir)
    mark = uuid.uuid4().hex
    ceilings = Ceilings(scratch, max(0.5, min(2.0, opts.seconds / 2)))
    all_results, all_errors = {}, {}
    load0 = os.getloadavg()[0]
    interrupted = None
    try:
        run_all(opts, scratch, mark, ceilings, all_results, all_errors)
    except KeyboardInterrupt:
        interrupted = 130
    except SystemExit as e:  # SIGTERM or SIGHUP, from on_signal
        interrupted = e.code if isinstance(e.code, int) else 1
    finally:
        leftover = kill_marked(mark)
        shutil.rmtree(scratch, ignore_errors=True)
    if interrupted is not None:
        print("interrupted; processes left: " + ("; ".join(leftover) if leftover else
                                                 f"none (searched /proc for {MARK_VAR}={mark})"))
        return interrupted
    load1 = os.getloadavg()[0]
    rc = report(opts, ceilings, all_results, all_errors, (load0, load1), leftover)
    print("processes left: " + ("; ".join(leftover) if leftover else
                                f"none (searched /proc for {MARK_VAR}={mark})"))
    return rc


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
