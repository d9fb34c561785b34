#!/usr/bin/env python3
"""Writes the seed corpora of the AMQP fuzz targets:

    tests/fuzz/corpus/amqp_frame/   inputs of fuzz_amqp_frame.c  (byte 0 picks frame_max, then
                                    an optional protocol header and a stream of frames)
    tests/fuzz/corpus/amqp_method/  inputs of fuzz_amqp_method.c (one method frame payload)
    tests/fuzz/corpus/amqp_table/   inputs of fuzz_amqp_table.c  (one field table)

The bytes are encoded here from the AMQP 0-9-1 rules (RabbitMQ's field-table letters), not by
the C code, so the seeds also cross-check the codec. Deterministic: rerunning it rewrites the
same files. Usage: python3 tests/fuzz/mkcorpus_amqp.py [corpus-dir]
"""
import os
import struct
import sys

# ---- primitives ------------------------------------------------------------------------------


def shortstr(s):
    b = s.encode() if isinstance(s, str) else s
    assert len(b) <= 255
    return bytes([len(b)]) + b


def longstr(s):
    b = s.encode() if isinstance(s, str) else s
    return struct.pack(">I", len(b)) + b


def value(v):
    """A field value: Python types map to letters; (letter, raw) tuples give any letter."""
    if isinstance(v, tuple):
        letter, raw = v
        return letter.encode() + raw
    if v is None:
        return b"V"
    if isinstance(v, bool):
        return b"t" + bytes([v])
    if isinstance(v, int):
        return b"I" + struct.pack(">i", v) if -2**31 <= v < 2**31 else b"l" + struct.pack(">q", v)
    if isinstance(v, float):
        return b"d" + struct.pack(">d", v)
    if isinstance(v, str):
        return b"S" + longstr(v)
    if isinstance(v, bytes):
        return b"x" + longstr(v)
    if isinstance(v, dict):
        return b"F" + table(v)
    if isinstance(v, list):
        body = b"".join(value(x) for x in v)
        return b"A" + struct.pack(">I", len(body)) + body
    raise TypeError(v)


def table(d):
    """d: a dict, or a list of (key, value) pairs (for duplicate keys)."""
    items = d.items() if isinstance(d, dict) else d
    body = b"".join(shortstr(k) + value(v) for k, v in items)
    return struct.pack(">I", len(body)) + body


def bits(*flags):
    return bytes([sum(1 << i for i, f in enumerate(flags) if f)])


def method(class_id, method_id, *args):
    return struct.pack(">HH", class_id, method_id) + b"".join(args)


def frame(ftype, channel, payload, end=0xCE):
    return struct.pack(">BHI", ftype, channel, len(payload)) + payload + bytes([end])


PROTOCOL_HEADER = b"AMQP\x00\x00\x09\x01"

# ---- methods ---------------------------------------------------------------------------------

SERVER_PROPS = {
    "capabilities": {
        "publisher_confirms": True, "exchange_exchange_bindings": True, "basic.nack": True,
        "consumer_cancel_notify": True, "connection.blocked": True,
        "consumer_priorities": True, "authentication_failure_close": True,
        "per_consumer_qos": True, "direct_reply_to": True,
    },
    "cluster_name": "tern@localhost", "platform": "C11", "product": "tern", "version": "0.1.0",
}
CLIENT_PROPS = {
    "product": "Pika Python Client Library", "platform": "Python 3.11.2", "version": "1.2.0",
    "capabilities": {"authentication_failure_close": True, "basic.nack": True,
                     "connection.blocked": True, "consumer_cancel_notify": True,
                     "publisher_confirms": True},
    "information": "See http://pika.rtfd.org",
}
QUEUE_ARGS = {"x-queue-type": "quorum", "x-max-length": 1000, "x-message-ttl": 60000,
              "x-dead-letter-exchange": "dlx", "x-overflow": "reject-publish"}
SHORT0 = struct.pack(">H", 0)

M = {
    "connection_start": method(10, 10, b"\x00\x09", table(SERVER_PROPS), longstr("PLAIN AMQPLAIN"),
                               longstr("en_US")),
    "connection_start_ok": method(10, 11, table(CLIENT_PROPS), shortstr("PLAIN"),
                                  longstr(b"\x00guest\x00guest"), shortstr("en_US")),
    "connection_tune": method(10, 30, struct.pack(">HIH", 2047, 131072, 60)),
    "connection_tune_ok": method(10, 31, struct.pack(">HIH", 2047, 131072, 60)),
    "connection_open": method(10, 40, shortstr("/"), shortstr(""), bits(False)),
    "connection_open_ok": method(10, 41, shortstr("")),
    "connection_close": method(10, 50, struct.pack(">H", 320), shortstr("CONNECTION_FORCED - bye"),
                               SHORT0, SHORT0),
    "connection_blocked": method(10, 60, shortstr("low on memory")),
    "connection_update_secret": method(10, 70, longstr("new-token"), shortstr("refresh")),
    "channel_open": method(20, 10, shortstr("")),
    "channel_open_ok": method(20, 11, longstr("")),
    "channel_flow": method(20, 20, bits(True)),
    "channel_close": method(20, 40, struct.pack(">H", 404),
                            shortstr("NOT_FOUND - no queue 'q' in vhost '/'"),
                            struct.pack(">HH", 50, 10)),
    "access_request": method(30, 10, shortstr("/data"), bits(False, True, True, True, True)),
    "exchange_declare": method(40, 10, SHORT0, shortstr("logs"), shortstr("fanout"),
                               bits(False, True, False, False, False),
                               table({"alternate-exchange": "ae"})),
    "exchange_bind": method(40, 30, SHORT0, shortstr("dest"), shortstr("src"), shortstr("rk.#"),
                            bits(True), table({})),
    "exchange_unbind_ok": method(40, 51),
    "queue_declare": method(50, 10, SHORT0, shortstr("task_queue"),
                            bits(False, True, False, False, False), table(QUEUE_ARGS)),
    "queue_declare_ok": method(50, 11, shortstr("amq.gen-JzTY20BRgKO-HjmUJj0wLg"),
                               struct.pack(">II", 5, 1)),
    "queue_bind_headers": method(50, 20, SHORT0, shortstr("q"), shortstr("amq.headers"),
                                 shortstr(""), bits(False),
                                 table({"x-match": "all", "format": "pdf", "type": "report"})),
    "queue_delete": method(50, 40, SHORT0, shortstr("q"), bits(True, True, False)),
    "basic_qos": method(60, 10, struct.pack(">IH", 0, 10), bits(False)),
    "basic_consume": method(60, 20, SHORT0, shortstr("q"), shortstr(""),
                            bits(False, False, True, False),
                            table({"x-priority": 10, "x-stream-offset": "first"})),
    "basic_publish": method(60, 40, SHORT0, shortstr(""), shortstr("hello"), bits(True, False)),
    "basic_return": method(60, 50, struct.pack(">H", 312), shortstr("NO_ROUTE"), shortstr("x"),
                           shortstr("rk")),
    "basic_deliver": method(60, 60, shortstr("ctag1.0"), struct.pack(">Q", 1), bits(True),
                            shortstr("amq.direct"), shortstr("rk")),
    "basic_get_ok": method(60, 71, struct.pack(">Q", 7), bits(False), shortstr(""), shortstr("q"),
                           struct.pack(">I", 3)),
    "basic_ack_multiple": method(60, 80, struct.pack(">Q", 42), bits(True)),
    "basic_nack": method(60, 120, struct.pack(">Q", 5), bits(True, False)),
    "confirm_select": method(85, 10, bits(False)),
    "tx_commit": method(90, 20),
}

PROPS_ALL = (struct.pack(">H", 0xFFFC) + shortstr("application/json") + shortstr("gzip")
             + table({"x-retry": 3, "x-death": [{"count": 1, "reason": "expired"}]})
             + bytes([2, 5]) + shortstr("c1") + shortstr("amq.rabbitmq.reply-to")
             + shortstr("60000") + shortstr("m1") + struct.pack(">Q", 1700000000)
             + shortstr("t") + shortstr("guest") + shortstr("app") + shortstr(""))
PROPS_SMALL = struct.pack(">H", 0x9000) + shortstr("text/plain") + bytes([2])


def header(body_size, props, class_id=60, weight=0):
    return struct.pack(">HHQ", class_id, weight, body_size) + props


def def_methods():
    """[(c_name, class_id, method_id, [(field, type)])] from src/proto/amqp/amqp_spec.def."""
    here = os.path.dirname(os.path.abspath(__file__))
    path = os.path.join(here, "..", "..", "src", "proto", "amqp", "amqp_spec.def")
    out, cls = [], None
    with open(path, encoding="utf-8") as f:
        for raw in f:
            words = raw.split("#", 1)[0].split()
            if not words:
                continue
            if words[0] == "class":
                cls = (int(words[1]), words[2])
            elif words[0] == "method":
                out.append((f"{cls[1]}_{words[2]}".replace("-", "_"), cls[0], int(words[1]), []))
            else:
                out[-1][3].append((words[0], words[1]))
    return out


def generic_method(class_id, method_id, fields):
    """A payload with a plausible value for each argument, bits packed as the spec says."""
    scalars = {"octet": ">B", "short": ">H", "long": ">I", "longlong": ">Q", "timestamp": ">Q"}
    out, nbits = bytearray(struct.pack(">HH", class_id, method_id)), 8
    for i, (name, ftype) in enumerate(fields):
        if ftype == "bit":
            if nbits == 8:
                out.append(0)
                nbits = 0
            out[-1] |= (i % 2) << nbits
            nbits += 1
            continue
        nbits = 8
        if ftype in scalars:
            out += struct.pack(scalars[ftype], i + 1)
        elif ftype == "shortstr":
            out += shortstr(name)
        elif ftype == "longstr":
            out += longstr(name)
        else:
            out += table({name: i})
    return bytes(out)


def every_method():
    """The hand-written payloads, and a generic one for each method they leave out."""
    have = {payload[:4] for payload in M.values()}
    out = list(M.items())
    for name, cid, mid, fields in def_methods():
        if struct.pack(">HH", cid, mid) not in have:
            out.append((name, generic_method(cid, mid, fields)))
    return out


def method_seeds():
    seeds = {f"{name}.bin": payload for name, payload in every_method()}
    seeds["trailing_byte.bin"] = M["basic_ack_multiple"] + b"\x00"
    seeds["truncated_table.bin"] = M["queue_declare"][:-5]
    seeds["unknown_method.bin"] = method(60, 99, b"\x00")
    seeds["unknown_class.bin"] = method(99, 10)
    seeds["bad_table_letter.bin"] = method(50, 10, SHORT0, shortstr("q"), bits(False),
                                           struct.pack(">I", 3) + b"\x01kZ")
    return seeds


# ---- frame streams ---------------------------------------------------------------------------


def fm(k):
    """Byte 0 of a fuzz_amqp_frame input: frame_max 4096 << k (k = 7: no limit)."""
    return bytes([k])


def frame_seeds():
    body = b"Hello World!"
    publish = (frame(1, 1, M["basic_publish"]) + frame(2, 1, header(len(body), PROPS_SMALL))
               + frame(3, 1, body))
    client = (PROTOCOL_HEADER + frame(1, 0, M["connection_start_ok"])
              + frame(1, 0, M["connection_tune_ok"]) + frame(1, 0, M["connection_open"])
              + frame(1, 1, M["channel_open"]) + frame(1, 1, M["confirm_select"])
              + frame(1, 1, M["queue_declare"]) + publish + frame(1, 1, M["basic_consume"])
              + frame(1, 1, M["basic_ack_multiple"]) + frame(8, 0, b""))
    server = (frame(1, 0, M["connection_start"]) + frame(1, 0, M["connection_tune"])
              + frame(1, 0, M["connection_open_ok"]) + frame(1, 1, M["channel_open_ok"])
              + frame(1, 1, M["basic_deliver"]) + frame(2, 1, header(5000, PROPS_ALL))
              + frame(3, 1, b"x" * 3000) + frame(3, 1, b"y" * 2000))
    big_body = frame(3, 1, b"z" * 4089)  # exactly 4097 bytes: one over frame_max 4096
    return {
        "client_session.bin": fm(5) + client,
        "server_session.bin": fm(7) + server,
        "publish_all_props.bin": fm(5) + frame(1, 1, M["basic_publish"])
        + frame(2, 1, header(3, PROPS_ALL)) + frame(3, 1, b"abc"),
        "heartbeats.bin": fm(0) + frame(8, 0, b"") * 3,
        "no_protocol_header.bin": fm(5) + publish,
        "bad_protocol_header.bin": fm(5) + b"AMQP\x01\x01\x00\x0a" + publish,
        "bad_frame_end.bin": fm(5) + frame(1, 1, M["basic_qos"], end=0xCD),
        "unknown_frame_type.bin": fm(5) + frame(4, 1, b"abc"),
        "oversize_frame.bin": fm(0) + big_body,
        "huge_size_header_only.bin": fm(7) + b"\x03\x00\x01\x7f\xff\xff\xff",
        "truncated_frame.bin": fm(5) + publish[:-3],
        "header_bad_weight.bin": fm(5) + frame(2, 1, header(1, PROPS_SMALL, weight=1)),
        "header_continuation_flag.bin": fm(5) + frame(2, 1, header(1, b"\x00\x01")),
        "header_short.bin": fm(5) + frame(2, 1, b"\x00\x3c\x00\x00"),
        "unknown_method_frame.bin": fm(5) + frame(1, 1, method(60, 99)),
        "connection_close.bin": fm(5) + frame(1, 0, M["connection_close"]),
        "every_method.bin": fm(7) + b"".join(frame(1, 1, p) for _, p in every_method()),
        "empty.bin": b"",
    }


# ---- tables ----------------------------------------------------------------------------------


def every_letter():
    return table([
        ("t", ("t", b"\x01")), ("b", ("b", b"\xff")), ("B", ("B", b"\xff")),
        ("s", ("s", b"\xff\xfe")), ("u", ("u", b"\xff\xfe")), ("I", ("I", b"\x80\x00\x00\x00")),
        ("i", ("i", b"\xff\xff\xff\xff")), ("l", ("l", struct.pack(">q", -2))),
        ("f", ("f", struct.pack(">f", 1.5))), ("d", ("d", struct.pack(">d", -0.1))),
        ("D", ("D", b"\x02\x00\x00\x30\x39")), ("T", ("T", struct.pack(">Q", 1700000000))),
        ("S", "string"), ("x", b"\x00\x01\x02"), ("V", None), ("F", {"k": "v"}),
        ("A", [1, "a", None, [True, False], {"n": 2}]),
    ])


def nested(levels):
    v = {}
    for _ in range(levels - 1):
        v = {"n": v}
    return table(v)


def table_seeds():
    nan = table({"nan": ("d", b"\x7f\xf8\x00\x00\x00\x00\x00\x01"),
                 "fnan": ("f", b"\xff\xc0\x00\x01")})
    return {
        "every_letter.bin": every_letter(),
        "client_properties.bin": table(CLIENT_PROPS),
        "server_properties.bin": table(SERVER_PROPS),
        "queue_arguments.bin": table(QUEUE_ARGS),
        "x_death.bin": table({"x-death": [{"count": ("l", struct.pack(">q", 3)),
                                           "reason": "rejected", "queue": "q",
                                           "time": ("T", struct.pack(">Q", 1700000000)),
                                           "exchange": "", "routing-keys": ["q"]}]}),
        "empty.bin": table({}),
        "depth_32.bin": nested(32),
        "depth_33.bin": nested(33),
        "duplicate_keys.bin": table([("k", True), ("k", False), ("j", None)]),
        "nan.bin": nan,
        "trailing_bytes.bin": table({"a": 1}) + b"\x00\x00",
        "unknown_letter.bin": table([("k", ("Z", b""))]),
        "spec_letter_U.bin": table([("k", ("U", b"\x00\x01"))]),
        "bool_2.bin": table([("k", ("t", b"\x02"))]),
        "key_with_nul.bin": table({"a\x00b": 1}),
        "truncated.bin": every_letter()[:-4],
        "huge_length.bin": b"\xff\xff\xff\xf0" + table({"a": 1})[4:],
        "array_overrun.bin": struct.pack(">I", 8) + b"\x01kA" + struct.pack(">I", 1) + b"I"
        + b"\x00" * 4,
    }


def write(dirname, seeds):
    os.makedirs(dirname, exist_ok=True)
    for name, data in seeds.items():
        with open(os.path.join(dirname, name), "wb") as f:
            f.write(data)
    print(f"{dirname}: {len(seeds)} seeds")


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    root = sys.argv[1] if len(sys.argv) > 1 else os.path.join(here, "corpus")
    write(os.path.join(root, "amqp_frame"), frame_seeds())
    write(os.path.join(root, "amqp_method"), method_seeds())
    write(os.path.join(root, "amqp_table"), table_seeds())


if __name__ == "__main__":
    main()
