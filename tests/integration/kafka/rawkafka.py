"""A minimal Kafka protocol client for raw-request tests: frames, headers, a few requests at
fixed (non-flexible) versions, and RecordBatch v2 encoding with CRC-32C. Written from the
protocol description for these tests; real clients are tested elsewhere."""

import socket
import struct
import time


def _crc32c_table():
    t = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        t.append(c)
    return t


_T = _crc32c_table()


def crc32c(data):
    c = 0xFFFFFFFF
    for b in data:
        c = _T[(c ^ b) & 0xFF] ^ (c >> 8)
    return c ^ 0xFFFFFFFF


def zigzag(v):
    return (v << 1) ^ (v >> 63)


def varint(v):
    v = zigzag(v)
    out = bytearray()
    while True:
        b = v & 0x7F
        v >>= 7
        if v:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def record(offset_delta, key, value, ts_delta=0):
    body = bytes([0]) + varint(ts_delta) + varint(offset_delta)
    body += varint(-1) if key is None else varint(len(key)) + key
    body += varint(-1) if value is None else varint(len(value)) + value
    body += varint(0)  # headers
    return varint(len(body)) + body


def record_batch(values, producer_id=-1, epoch=-1, base_seq=-1, ts=None, corrupt=False):
    ts = int(time.time() * 1000) if ts is None else ts
    recs = b"".join(record(i, None, v) for i, v in enumerate(values))
    after_crc = struct.pack(">hiqqqhii", 0, len(values) - 1, ts, ts, producer_id, epoch,
                            base_seq, len(values)) + recs
    crc = crc32c(after_crc) ^ (1 if corrupt else 0)
    tail = struct.pack(">ibI", 0, 2, crc) + after_crc  # leader epoch, magic, crc
    return struct.pack(">qi", 0, len(tail)) + tail


def string(s):
    if s is None:
        return struct.pack(">h", -1)
    b = s.encode() if isinstance(s, str) else s
    return struct.pack(">h", len(b)) + b


def array(items):
    return struct.pack(">i", len(items)) + b"".join(items)


class Conn:
    def __init__(self, port, host="127.0.0.1", timeout=10):
        self.s = socket.create_connection((host, port), timeout=timeout)
        self.corr = 0

    def close(self):
        self.s.close()

    def send_raw(self, payload):
        self.s.sendall(struct.pack(">i", len(payload)) + payload)

    def send(self, api, version, body, client_id="rawtest", flexible=False):
        """flexible: a v2 request header (v1 plus an empty tagged-field section)."""
        self.corr += 1
        hdr = struct.pack(">hhi", api, version, self.corr) + string(client_id)
        if flexible:
            hdr += b"\x00"
        self.send_raw(hdr + body)
        return self.corr

    def _read(self, n):
        buf = bytearray()
        while len(buf) < n:
            chunk = self.s.recv(min(n - len(buf), 1 << 20))
            if not chunk:
                raise ConnectionError("closed by the broker")
            buf += chunk
        return bytes(buf)

    def recv(self):
        """One response: (correlation id, body after a v0 header)."""
        size = struct.unpack(">i", self._read(4))[0]
        data = self._read(size)
        return struct.unpack(">i", data[:4])[0], data[4:]

    def closed_by_peer(self, timeout=5):
        self.s.settimeout(timeout)
        try:
            return self.s.recv(1) == b""
        except ConnectionResetError:
            return True
        except socket.timeout:
            return False

    # ---- requests ----
    def api_versions(self, version=0):
        if version < 3:
            return self.send(18, version, b"")
        return self.send(18, version, b"\x05test\x021\x00", flexible=True)

    def metadata(self, topics, version=1):
        return self.send(3, version, array([string(t) for t in topics]))

    def produce(self, topic, partition, batch, acks=-1, version=7, timeout_ms=5000):
        body = string(None) + struct.pack(">hi", acks, timeout_ms)
        body += array([string(topic) + array([struct.pack(">i", partition) +
                                               struct.pack(">i", len(batch)) + batch])])
        return self.send(0, version, body)

    def fetch(self, topic, partition, offset, max_wait_ms=0, min_bytes=1, version=4):
        body = struct.pack(">iiiib", -1, max_wait_ms, min_bytes, 1 << 20, 0)
        body += array([string(topic) + array([struct.pack(">iqi", partition, offset, 1 << 20)])])
        return self.send(1, version, body)


def parse_produce_v7(body):
    """[(topic, partition, error, base_offset)] of a Produce v7 response."""
    out, pos = [], 0
    (nt,) = struct.unpack_from(">i", body, pos)
    pos += 4
    for _ in range(nt):
        (ln,) = struct.unpack_from(">h", body, pos)
        pos += 2
        topic = body[pos:pos + ln].decode()
        pos += ln
        (np_,) = struct.unpack_from(">i", body, pos)
        pos += 4
        for _ in range(np_):
            part, err, base, _lat, _start = struct.unpack_from(">ihqqq", body, pos)
            pos += 4 + 2 + 8 + 8 + 8
            out.append((topic, part, err, base))
    return out
