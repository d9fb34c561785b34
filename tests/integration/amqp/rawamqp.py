"""A tiny AMQP 0-9-1 frame builder and reader for tests that speak the wire format by hand.

It encodes and decodes exactly what the raw tests need: the protocol header, general frames,
method frames for a handful of methods (see METHODS), field tables and arrays with RabbitMQ's
type letters, content header frames with basic properties, body frames and heartbeats. It does
no validation beyond what decoding needs, so a test can build malformed input on purpose:
`frame()` and `method_payload()` return plain bytes that can be cut or altered before sending.

    c = RawConn(host, port)
    c.handshake()                       # header, start-ok (PLAIN), tune-ok, open; returns tune
    c.send_method(1, "channel.open")
    c.expect(1, "channel.open-ok")
    c.send(frame(FRAME_METHOD, 1, b"\\x00\\x99\\x00\\x01"))   # an unknown class
    ans = c.wait_close()                # Answer(kind="connection.close", code=540, ...)
    c.close()

Wire layout (AMQP 0-9-1 section 4.2): a frame is type(octet) channel(short) size(long)
payload(size octets) frame-end(0xCE); every integer is big-endian. A method payload is
class-id(short) method-id(short) arguments; consecutive bit arguments share octets.
"""

import collections
import socket
import struct
import time

PROTOCOL_HEADER = b"AMQP\x00\x00\x09\x01"

FRAME_METHOD = 1
FRAME_HEADER = 2
FRAME_BODY = 3
FRAME_HEARTBEAT = 8
FRAME_END = 0xCE
FRAME_MIN_SIZE = 4096

# Reply codes (AMQP 0-9-1 section 1.9, "constants").
REPLY_SUCCESS = 200
CONTENT_TOO_LARGE = 311
NO_ROUTE = 312
NO_CONSUMERS = 313
CONNECTION_FORCED = 320
INVALID_PATH = 402
ACCESS_REFUSED = 403
NOT_FOUND = 404
RESOURCE_LOCKED = 405
PRECONDITION_FAILED = 406
FRAME_ERROR = 501
SYNTAX_ERROR = 502
COMMAND_INVALID = 503
CHANNEL_ERROR = 504
UNEXPECTED_FRAME = 505
RESOURCE_ERROR = 506
NOT_ALLOWED = 530
NOT_IMPLEMENTED = 540
INTERNAL_ERROR = 541

HARD_ERRORS = frozenset({CONNECTION_FORCED, INVALID_PATH, FRAME_ERROR, SYNTAX_ERROR,
                         COMMAND_INVALID, CHANNEL_ERROR, UNEXPECTED_FRAME, RESOURCE_ERROR,
                         NOT_ALLOWED, NOT_IMPLEMENTED, INTERNAL_ERROR})
SOFT_ERRORS = frozenset({CONTENT_TOO_LARGE, NO_ROUTE, NO_CONSUMERS, ACCESS_REFUSED, NOT_FOUND,
                         RESOURCE_LOCKED, PRECONDITION_FAILED})

# name -> (class id, method id, [(argument, type)]). Types: octet short long longlong
# shortstr longstr bit table timestamp.
_CLOSE_ARGS = [("reply_code", "short"), ("reply_text", "shortstr"), ("class_id", "short"),
               ("method_id", "short")]
METHODS = {
    "connection.start": (10, 10, [("version_major", "octet"), ("version_minor", "octet"),
                                  ("server_properties", "table"), ("mechanisms", "longstr"),
                                  ("locales", "longstr")]),
    "connection.start-ok": (10, 11, [("client_properties", "table"), ("mechanism", "shortstr"),
                                     ("response", "longstr"), ("locale", "shortstr")]),
    "connection.secure": (10, 20, [("challenge", "longstr")]),
    "connection.secure-ok": (10, 21, [("response", "longstr")]),
    "connection.tune": (10, 30, [("channel_max", "short"), ("frame_max", "long"),
                                 ("heartbeat", "short")]),
    "connection.tune-ok": (10, 31, [("channel_max", "short"), ("frame_max", "long"),
                                    ("heartbeat", "short")]),
    "connection.open": (10, 40, [("virtual_host", "shortstr"), ("reserved_1", "shortstr"),
                                 ("reserved_2", "bit")]),
    "connection.open-ok": (10, 41, [("reserved_1", "shortstr")]),
    "connection.close": (10, 50, _CLOSE_ARGS),
    "connection.close-ok": (10, 51, []),
    "connection.blocked": (10, 60, [("reason", "shortstr")]),
    "connection.unblocked": (10, 61, []),
    "channel.open": (20, 10, [("reserved_1", "shortstr")]),
    "channel.open-ok": (20, 11, [("reserved_1", "longstr")]),
    "channel.flow": (20, 20, [("active", "bit")]),
    "channel.flow-ok": (20, 21, [("active", "bit")]),
    "channel.close": (20, 40, _CLOSE_ARGS),
    "channel.close-ok": (20, 41, []),
    "exchange.declare": (40, 10, [("reserved_1", "short"), ("exchange", "shortstr"),
                                  ("type", "shortstr"), ("passive", "bit"), ("durable", "bit"),
                                  ("auto_delete", "bit"), ("internal", "bit"),
                                  ("no_wait", "bit"), ("arguments", "table")]),
    "exchange.declare-ok": (40, 11, []),
    "queue.declare": (50, 10, [("reserved_1", "short"), ("queue", "shortstr"),
                               ("passive", "bit"), ("durable", "bit"), ("exclusive", "bit"),
                               ("auto_delete", "bit"), ("no_wait", "bit"),
                               ("arguments", "table")]),
    "queue.declare-ok": (50, 11, [("queue", "shortstr"), ("message_count", "long"),
                                  ("consumer_count", "long")]),
    "queue.bind": (50, 20, [("reserved_1", "short"), ("queue", "shortstr"),
                            ("exchange", "shortstr"), ("routing_key", "shortstr"),
                            ("no_wait", "bit"), ("arguments", "table")]),
    "queue.bind-ok": (50, 21, []),
    "queue.delete": (50, 40, [("reserved_1", "short"), ("queue", "shortstr"),
                              ("if_unused", "bit"), ("if_empty", "bit"), ("no_wait", "bit")]),
    "queue.delete-ok": (50, 41, [("message_count", "long")]),
    "basic.qos": (60, 10, [("prefetch_size", "long"), ("prefetch_count", "short"),
                           ("global", "bit")]),
    "basic.qos-ok": (60, 11, []),
    "basic.consume": (60, 20, [("reserved_1", "short"), ("queue", "shortstr"),
                               ("consumer_tag", "shortstr"), ("no_local", "bit"),
                               ("no_ack", "bit"), ("exclusive", "bit"), ("no_wait", "bit"),
                               ("arguments", "table")]),
    "basic.consume-ok": (60, 21, [("consumer_tag", "shortstr")]),
    "basic.cancel": (60, 30, [("consumer_tag", "shortstr"), ("no_wait", "bit")]),
    "basic.cancel-ok": (60, 31, [("consumer_tag", "shortstr")]),
    "basic.publish": (60, 40, [("reserved_1", "short"), ("exchange", "shortstr"),
                               ("routing_key", "shortstr"), ("mandatory", "bit"),
                               ("immediate", "bit")]),
    "basic.return": (60, 50, [("reply_code", "short"), ("reply_text", "shortstr"),
                              ("exchange", "shortstr"), ("routing_key", "shortstr")]),
    "basic.deliver": (60, 60, [("consumer_tag", "shortstr"), ("delivery_tag", "longlong"),
                               ("redelivered", "bit"), ("exchange", "shortstr"),
                               ("routing_key", "shortstr")]),
    "basic.get": (60, 70, [("reserved_1", "short"), ("queue", "shortstr"), ("no_ack", "bit")]),
    "basic.get-ok": (60, 71, [("delivery_tag", "longlong"), ("redelivered", "bit"),
                              ("exchange", "shortstr"), ("routing_key", "shortstr"),
                              ("message_count", "long")]),
    "basic.get-empty": (60, 72, [("reserved_1", "shortstr")]),
    "basic.ack": (60, 80, [("delivery_tag", "longlong"), ("multiple", "bit")]),
    "basic.reject": (60, 90, [("delivery_tag", "longlong"), ("requeue", "bit")]),
    "basic.nack": (60, 120, [("delivery_tag", "longlong"), ("multiple", "bit"),
                             ("requeue", "bit")]),
    "confirm.select": (85, 10, [("no_wait", "bit")]),
    "confirm.select-ok": (85, 11, []),
}
METHOD_NAMES = {(c, m): name for name, (c, m, _) in METHODS.items()}

# Basic content properties in flag order: bit 15 first (AMQP 0-9-1 section 4.2.6.1).
BASIC_PROPERTIES = [("content_type", "shortstr"), ("content_encoding", "shortstr"),
                    ("headers", "table"), ("delivery_mode", "octet"), ("priority", "octet"),
                    ("correlation_id", "shortstr"), ("reply_to", "shortstr"),
                    ("expiration", "shortstr"), ("message_id", "shortstr"),
                    ("timestamp", "timestamp"), ("type", "shortstr"), ("user_id", "shortstr"),
                    ("app_id", "shortstr"), ("cluster_id", "shortstr")]


class DecodeError(Exception):
    """The bytes do not decode as the type asked for."""


# ---------------------------------------------------------------------------------------------
# Field values. Python values map to RabbitMQ's type letters like this when encoding:
# bool t, int I (l when it does not fit 32 bits), float d, str/bytes S, list A, dict F,
# None V. Other letters are written with Typed(letter, value).

Typed = collections.namedtuple("Typed", "letter value")
Decimal = collections.namedtuple("Decimal", "scale value")

_FIXED = {"b": ">b", "B": ">B", "s": ">h", "u": ">H", "I": ">i", "i": ">I", "l": ">q",
          "f": ">f", "d": ">d", "T": ">Q"}


def shortstr(s):
    s = s.encode() if isinstance(s, str) else bytes(s)
    if len(s) > 255:
        raise ValueError("shortstr longer than 255 octets")
    return bytes([len(s)]) + s


def longstr(s):
    s = s.encode() if isinstance(s, str) else bytes(s)
    return struct.pack(">I", len(s)) + s


def _field_value(v):
    if isinstance(v, Typed):
        return _typed_value(v.letter, v.value)
    if isinstance(v, bool):
        return b"t" + bytes([1 if v else 0])
    if isinstance(v, int):
        if -2**31 <= v < 2**31:
            return b"I" + struct.pack(">i", v)
        return b"l" + struct.pack(">q", v)
    if isinstance(v, float):
        return b"d" + struct.pack(">d", v)
    if isinstance(v, (str, bytes, bytearray)):
        return b"S" + longstr(v)
    if isinstance(v, (list, tuple)):
        return b"A" + array(v)
    if isinstance(v, dict):
        return b"F" + table(v)
    if v is None:
        return b"V"
    raise TypeError(f"no AMQP field type for {type(v).__name__}")


def _typed_value(letter, value):
    if letter in _FIXED:
        return letter.encode() + struct.pack(_FIXED[letter], value)
    if letter == "t":
        return b"t" + bytes([1 if value else 0])
    if letter == "D":
        return b"D" + struct.pack(">Bi", value.scale, value.value)
    if letter in ("S", "x"):
        return letter.encode() + longstr(value)
    if letter == "A":
        return b"A" + array(value)
    if letter == "F":
        return b"F" + table(value)
    if letter == "V":
        return b"V"
    raise ValueError(f"unknown field type letter {letter!r}")


def table(d):
    """A field table: long size, then (shortstr name, type letter, value) per entry. d is a
    dict or a list of (name, value) pairs (to keep order or repeat a name)."""
    items = d.items() if isinstance(d, dict) else d
    body = b"".join(shortstr(k) + _field_value(v) for k, v in items)
    return struct.pack(">I", len(body)) + body


def array(values):
    body = b"".join(_field_value(v) for v in values)
    return struct.pack(">I", len(body)) + body


class Reader:
    """Decodes AMQP types from bytes, front to back. Every method raises DecodeError when the
    bytes run out."""

    def __init__(self, data, pos=0):
        self.data = bytes(data)
        self.pos = pos
        self._bits = None  # (octet, next bit index) while reading consecutive bits

    def take(self, n):
        if n < 0 or self.pos + n > len(self.data):
            raise DecodeError(f"need {n} octets at {self.pos}, have {len(self.data) - self.pos}")
        out = self.data[self.pos:self.pos + n]
        self.pos += n
        return out

    def unpack(self, fmt):
        return struct.unpack(fmt, self.take(struct.calcsize(fmt)))[0]

    def at_end(self):
        return self.pos == len(self.data)

    def read(self, kind):
        if kind != "bit":
            self._bits = None
        if kind == "bit":
            return self._bit()
        if kind == "octet":
            return self.unpack(">B")
        if kind == "short":
            return self.unpack(">H")
        if kind == "long":
            return self.unpack(">I")
        if kind in ("longlong", "timestamp"):
            return self.unpack(">Q")
        if kind == "shortstr":
            return self.take(self.unpack(">B")).decode("utf-8", "replace")
        if kind == "longstr":
            return self.take(self.unpack(">I"))
        if kind == "table":
            return self.table()
        raise ValueError(f"unknown argument type {kind!r}")

    def _bit(self):
        if self._bits is None or self._bits[1] == 8:
            self._bits = (self.unpack(">B"), 0)
        octet, i = self._bits
        self._bits = (octet, i + 1)
        return bool(octet & (1 << i))

    def table(self):
        sub = Reader(self.take(self.unpack(">I")))
        out = {}
        while not sub.at_end():
            name = sub.read("shortstr")
            out[name] = sub.field_value()
        return out

    def array(self):
        sub = Reader(self.take(self.unpack(">I")))
        out = []
        while not sub.at_end():
            out.append(sub.field_value())
        return out

    def field_value(self):
        letter = chr(self.unpack(">B"))
        if letter in _FIXED:
            return self.unpack(_FIXED[letter])
        if letter == "t":
            return self.unpack(">B") != 0
        if letter == "D":
            return Decimal(self.unpack(">B"), self.unpack(">i"))
        if letter in ("S", "x"):
            return self.take(self.unpack(">I"))
        if letter == "A":
            return self.array()
        if letter == "F":
            return self.table()
        if letter == "V":
            return None
        raise DecodeError(f"unknown field type letter {letter!r}")


# ---------------------------------------------------------------------------------------------
# Frames and payloads.

def frame(ftype, channel, payload, end=FRAME_END):
    """One frame as bytes; end lets a test write a wrong frame-end octet."""
    return struct.pack(">BHI", ftype, channel, len(payload)) + bytes(payload) + bytes([end])


def heartbeat_frame(channel=0):
    return frame(FRAME_HEARTBEAT, channel, b"")


def _encode_args(spec, args):
    out = bytearray()
    bits = None  # index in out of the octet collecting consecutive bits, and bits used
    for name, kind in spec:
        v = args.get(name)
        if kind == "bit":
            if bits is None or bits[1] == 8:
                out.append(0)
                bits = (len(out) - 1, 0)
            if v:
                out[bits[0]] |= 1 << bits[1]
            bits = (bits[0], bits[1] + 1)
            continue
        bits = None
        out += _encode_arg(kind, v)
    return bytes(out)


def _encode_arg(kind, v):
    if kind == "octet":
        return struct.pack(">B", v or 0)
    if kind == "short":
        return struct.pack(">H", v or 0)
    if kind == "long":
        return struct.pack(">I", v or 0)
    if kind in ("longlong", "timestamp"):
        return struct.pack(">Q", v or 0)
    if kind == "shortstr":
        return shortstr(v or b"")
    if kind == "longstr":
        return longstr(v or b"")
    if kind == "table":
        return v if isinstance(v, (bytes, bytearray)) else table(v or {})
    raise ValueError(f"unknown argument type {kind!r}")


def method_payload(name, **args):
    """class-id, method-id and the encoded arguments of a method in METHODS. Missing arguments
    are zero / empty / false. A bytes value for a table argument is sent as is (already
    encoded), so a test can put a malformed table there."""
    class_id, method_id, spec = METHODS[name]
    unknown = set(args) - {n for n, _ in spec}
    if unknown:
        raise TypeError(f"{name} has no arguments {sorted(unknown)}")
    return struct.pack(">HH", class_id, method_id) + _encode_args(spec, args)


def method_frame(channel, name, **args):
    return frame(FRAME_METHOD, channel, method_payload(name, **args))


def content_header_payload(body_size, class_id=60, **props):
    """A content header payload: class-id, weight 0, body size, property flags, properties
    (names from BASIC_PROPERTIES)."""
    flags = 0
    out = bytearray()
    names = [n for n, _ in BASIC_PROPERTIES]
    unknown = set(props) - set(names)
    if unknown:
        raise TypeError(f"no basic properties {sorted(unknown)}")
    for i, (name, kind) in enumerate(BASIC_PROPERTIES):
        if name in props and props[name] is not None:
            flags |= 1 << (15 - i)
            out += _encode_arg(kind, props[name])
    return struct.pack(">HHQH", class_id, 0, body_size, flags) + bytes(out)


def content_frames(channel, body, frame_max=FRAME_MIN_SIZE, **props):
    """The content header frame and as many body frames as frame_max allows, as bytes."""
    body = bytes(body)
    out = frame(FRAME_HEADER, channel, content_header_payload(len(body), **props))
    step = frame_max - 8
    for i in range(0, len(body), step):
        out += frame(FRAME_BODY, channel, body[i:i + step])
    return out


def decode_content_header(payload):
    r = Reader(payload)
    class_id = r.unpack(">H")
    r.unpack(">H")  # weight, always 0
    size, flags = r.unpack(">Q"), r.unpack(">H")
    props = {}
    for i, (name, kind) in enumerate(BASIC_PROPERTIES):
        if flags & (1 << (15 - i)):
            props[name] = r.read(kind)
    return class_id, size, props


class Method:
    """A decoded method frame: .name ("queue.declare-ok", or "10.99" when unknown), .channel,
    .class_id, .method_id, .args (dict; empty when unknown) and attribute access to args."""

    def __init__(self, channel, payload):
        r = Reader(payload)
        self.channel = channel
        self.class_id = r.unpack(">H")
        self.method_id = r.unpack(">H")
        self.name = METHOD_NAMES.get((self.class_id, self.method_id),
                                     f"{self.class_id}.{self.method_id}")
        self.args = {}
        if self.name in METHODS:
            for arg, kind in METHODS[self.name][2]:
                self.args[arg] = r.read(kind)

    def __getattr__(self, arg):
        try:
            return self.__dict__["args"][arg]
        except KeyError:
            raise AttributeError(arg) from None

    def __repr__(self):
        return f"<Method ch={self.channel} {self.name} {self.args}>"


Frame = collections.namedtuple("Frame", "type channel payload")


def parse_frame(buf):
    """(Frame, octets used) from the front of buf, or (None, 0) when buf holds less than a
    whole frame. Raises DecodeError on a bad frame-end octet."""
    if len(buf) < 7:
        return None, 0
    ftype, channel, size = struct.unpack(">BHI", buf[:7])
    if len(buf) < 8 + size:
        return None, 0
    if buf[7 + size] != FRAME_END:
        raise DecodeError(f"frame-end octet {buf[7 + size]:#x}")
    return Frame(ftype, channel, bytes(buf[7:7 + size])), 8 + size


# ---------------------------------------------------------------------------------------------
# A connection.

Answer = collections.namedtuple("Answer", "kind code text class_id method_id channel")
# kind: "connection.close", "channel.close" (code etc. from the method), or "eof" (the server
# closed the socket without a close method; code 0), or "timeout" (nothing within the time).


class Closed(Exception):
    """The server closed the socket (or reset it) while the test waited for a frame."""


class RawConn:
    """One TCP connection speaking raw AMQP. Not thread-safe. The socket is closed by close()
    (also as a context manager)."""

    def __init__(self, host, port, timeout=5.0):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.timeout = timeout
        self.buf = bytearray()
        self.eof = False
        self.start = None  # connection.start Method, after handshake()
        self.tune = None  # connection.tune Method, after handshake()
        self.skipped = []  # methods wait_close() read past

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        self.sock.close()

    def send(self, data):
        self.sock.sendall(data)

    def send_method(self, channel, name, **args):
        self.send(method_frame(channel, name, **args))

    def _fill(self, deadline):
        """Reads more bytes into buf; False on EOF / reset, raises TimeoutError at deadline."""
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("no frame from the server in time")
        self.sock.settimeout(left)
        try:
            data = self.sock.recv(65536)
        except socket.timeout:
            raise TimeoutError("no frame from the server in time") from None
        except (ConnectionResetError, BrokenPipeError):
            data = b""
        if not data:
            self.eof = True
            return False
        self.buf += data
        return True

    def read_raw(self, n, timeout=None):
        """Exactly n octets (not framed), or fewer if the server closes first."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while len(self.buf) < n and self._fill(deadline):
            pass
        out = bytes(self.buf[:n])
        del self.buf[:n]
        return out

    def read_frame(self, timeout=None):
        """The next frame. Raises Closed at EOF, TimeoutError when nothing arrives in time,
        DecodeError on a bad frame end."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while True:
            f, used = parse_frame(self.buf)
            if f is not None:
                del self.buf[:used]
                return f
            if not self._fill(deadline):
                raise Closed(f"server closed the connection ({len(self.buf)} octets left over)")

    def read_method(self, timeout=None, skip_heartbeats=True):
        """The next method frame, decoded. Heartbeats are skipped; a content frame fails."""
        while True:
            f = self.read_frame(timeout)
            if f.type == FRAME_HEARTBEAT and skip_heartbeats:
                continue
            if f.type != FRAME_METHOD:
                raise AssertionError(f"expected a method frame, got {f}")
            return Method(f.channel, f.payload)

    def expect(self, channel, name, timeout=None):
        """The next method, which must be name on channel; fails (AssertionError) otherwise."""
        m = self.read_method(timeout)
        if m.name != name or m.channel != channel:
            raise AssertionError(f"expected {name} on channel {channel}, got {m}")
        return m

    def handshake(self, user="guest", password="guest", vhost="/", mechanism="PLAIN",
                  channel_max=None, frame_max=None, heartbeat=0, capabilities=None,
                  response=None):
        """The client side of the handshake up to connection.open-ok. channel_max / frame_max
        None accept the server's proposal. Returns connection.open-ok. capabilities None sends
        the usual client capabilities; pass {} to send none."""
        self.send(PROTOCOL_HEADER)
        self.start = self.expect(0, "connection.start")
        self.start_ok(user, password, mechanism, capabilities, response)
        self.tune = self.expect(0, "connection.tune")
        self.send_method(0, "connection.tune-ok",
                         channel_max=self.tune.channel_max if channel_max is None else channel_max,
                         frame_max=self.tune.frame_max if frame_max is None else frame_max,
                         heartbeat=heartbeat)
        self.send_method(0, "connection.open", virtual_host=vhost)
        return self.expect(0, "connection.open-ok")

    def start_ok(self, user="guest", password="guest", mechanism="PLAIN", capabilities=None,
                 response=None):
        """Sends connection.start-ok. response None builds one for PLAIN or AMQPLAIN."""
        if capabilities is None:
            capabilities = {"authentication_failure_close": True, "basic.nack": True,
                            "consumer_cancel_notify": True, "publisher_confirms": True}
        if response is None:
            response = sasl_response(mechanism, user, password)
        props = {"product": "tern rawamqp", "platform": "Python", "version": "0",
                 "capabilities": capabilities}
        self.send_method(0, "connection.start-ok", client_properties=props, mechanism=mechanism,
                         response=response, locale="en_US")

    def open_channel(self, channel=1):
        self.send_method(channel, "channel.open")
        return self.expect(channel, "channel.open-ok")

    def wait_close(self, timeout=None, reply=True):
        """Reads until the server closes something and returns an Answer. On connection.close
        it sends close-ok (when reply) and waits for the socket to close. Other methods read
        before the close are kept in self.skipped, other frames dropped. kind "eof" when the
        socket closes without a close method, "timeout" when nothing happens in time."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while True:
            try:
                f = self.read_frame(max(0.0, deadline - time.monotonic()))
            except Closed:
                return Answer("eof", 0, "", 0, 0, None)
            except TimeoutError:
                return Answer("timeout", 0, "", 0, 0, None)
            if f.type != FRAME_METHOD:
                continue
            m = Method(f.channel, f.payload)
            self.skipped.append(m)
            if m.name in ("connection.close", "channel.close"):
                self.skipped.pop()
                if reply:
                    self._reply_close_ok(m)
                return Answer(m.name, m.reply_code, m.reply_text, m.class_id, m.method_id,
                              m.channel)

    def _reply_close_ok(self, m):
        try:
            self.send_method(m.channel, m.name + "-ok")
        except OSError:
            return
        if m.name == "connection.close":
            self.wait_eof(2.0)

    def wait_eof(self, timeout=None, keep=False):
        """True when the server closes the socket within timeout. What arrives before is
        dropped, or left in self.buf when keep."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        try:
            while self._fill(deadline):
                if not keep:
                    self.buf.clear()
        except TimeoutError:
            return False
        return True


def sasl_response(mechanism, user, password):
    """The SASL response for PLAIN ("\\0user\\0pass") or AMQPLAIN (a field table without its
    length prefix, as RabbitMQ and rabbitmq-c send it)."""
    if mechanism == "AMQPLAIN":
        return table([("LOGIN", user), ("PASSWORD", password)])[4:]
    return b"\x00" + user.encode() + b"\x00" + password.encode()


def check_serves(host, port, timeout=5.0):
    """Fails (AssertionError) unless a new connection completes the handshake, opens a
    channel, declares a server-named queue and closes cleanly: the broker still works."""
    with RawConn(host, port, timeout) as c:
        c.handshake()
        c.open_channel(1)
        c.send_method(1, "queue.declare", exclusive=True, auto_delete=True)
        ok = c.expect(1, "queue.declare-ok")
        assert ok.queue, "server-named queue has no name"
        c.send_method(0, "connection.close", reply_code=REPLY_SUCCESS, reply_text="bye")
        c.expect(0, "connection.close-ok")
