#!/usr/bin/env python3
"""Writes the seed corpora of the Kafka fuzz targets:

    tests/fuzz/corpus/kafka_request/  inputs of fuzz_kafka_request.c: byte 0 the API's index in
                                      key order, byte 1 the version, then a message body
    tests/fuzz/corpus/kafka_header/   inputs of fuzz_kafka_header.c: byte 0 picks the frame cap
                                      (1 << (byte % 24)), then a stream of framed requests

Every request and response of every supported version is encoded here, in Python, from the
fields of src/proto/kafka/kafka_spec.def (read with scripts/kafka_gen.py's parser) and the wire
rules, not by the C code; a few hand-written messages and malformed ones are added.
Deterministic: rerunning it rewrites the same files.

Usage: python3 tests/fuzz/mkcorpus_kafka.py [CORPUS_DIR]   (default: tests/fuzz/corpus)
"""
import importlib.util
import os
import struct
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))


def load_gen():
    spec = importlib.util.spec_from_file_location("kafka_gen",
                                                  os.path.join(ROOT, "scripts", "kafka_gen.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


# ---- primitives ------------------------------------------------------------------------------


def uvarint(v):
    out = bytearray()
    while v >= 0x80:
        out.append(v & 0x7F | 0x80)
        v >>= 7
    out.append(v)
    return bytes(out)


def length(n, flex, wide):
    """A length or count, n -1 for null."""
    if flex:
        return uvarint(n + 1)
    return struct.pack(">i" if wide else ">h", n)


def string(s, flex=False):
    if s is None:
        return length(-1, flex, False)
    b = s.encode()
    return length(len(b), flex, False) + b


def blob(b, flex=False):
    if b is None:
        return length(-1, flex, True)
    return length(len(b), flex, True) + b


def record_batch():
    """A RecordBatch v2 with one record (CRC left zero: the codec does not look inside)."""
    rec = b"\x00\x00\x00\x01\x0a" + b"hello" + b"\x00"  # key null, value "hello", no headers
    rec = bytes([len(rec) * 2]) + rec  # zig-zag length
    body = struct.pack(">hiqqqhii", 0, 0, 1700000000000, 1700000000000, -1, -1, -1, 1) + rec
    return struct.pack(">qiib", 0, 9 + len(body), 0, 2) + b"\x00\x00\x00\x00" + body


# ---- generic messages from the .def ----------------------------------------------------------

INT_FORMATS = {"int8": ">b", "int16": ">h", "int32": ">i", "int64": ">q", "bool": ">?"}


class Filler:
    """count: elements per array; nulls: null wherever allowed; tags: write tagged fields."""

    def __init__(self, count, nulls, tags):
        self.count, self.nulls, self.tags, self.k = count, nulls, tags, 0

    def scalar(self, ftype):
        self.k += 1
        if ftype == "bool":
            return self.k % 2 == 1
        bits = {"int8": 7, "int16": 15, "int32": 31, "int64": 63}[ftype]
        return (self.k * 37) % (1 << bits) * (-1 if self.k % 3 == 0 else 1)


def nullable(f, v):
    return f.null is not None and f.null[0] <= v <= f.null[1]


def encode_value(api, f, v, fl, is_elem):
    flex = api.flexible(v)
    if f.elem:
        return encode_struct(api, f.elem, v, fl)
    null = fl.nulls and not is_elem and nullable(f, v)
    if f.type == "string":
        return string(None if null else f"{f.name}-{fl.k}", flex)
    if f.type == "bytes":
        return blob(None if null else bytes(range(fl.k % 5 + 1)), flex)
    if f.type == "records":
        return blob(None if null else record_batch(), flex)
    return struct.pack(INT_FORMATS[f.type], fl.scalar(f.type))


def encode_field(api, f, v, fl):
    if not f.array:
        return encode_value(api, f, v, fl, False)
    flex = api.flexible(v)
    if fl.nulls and nullable(f, v):
        return length(-1, flex, True)
    return length(fl.count, flex, True) + b"".join(
        encode_value(api, f, v, fl, True) for _ in range(fl.count))


def encode_struct(api, s, v, fl):
    out = b"".join(encode_field(api, f, v, fl) for f in s.regular if f.lo <= v <= f.hi)
    if not api.flexible(v):
        return out
    tagged = [f for f in sorted(s.tagged, key=lambda x: x.tag) if fl.tags and f.lo <= v <= f.hi]
    out += uvarint(len(tagged))
    for f in tagged:
        val = encode_field(api, f, v, fl)
        out += uvarint(f.tag) + uvarint(len(val)) + val
    return out


def generic_seeds(apis):
    seeds = {}
    for i, a in enumerate(apis):
        for v in range(a.lo, a.hi + 1):
            for d in ("request", "response"):
                for name, fl in (("one", Filler(1, False, False)), ("two", Filler(2, True, True))):
                    body = encode_struct(a, getattr(a, d), v, fl)
                    seeds[f"{a.cname}_v{v}_{d}_{name}.bin"] = bytes([i, v]) + body
    return seeds


# ---- hand-written messages -------------------------------------------------------------------


def index_of(apis, key):
    return [a.key for a in apis].index(key)


def request_seeds(apis):
    def seed(key, v, body):
        return bytes([index_of(apis, key), v & 0xFF]) + body

    tags = (b"\x00\x00\x01\x00\x00\x00\x00\x02" + b"\x01\x08" + struct.pack(">q", 5)
            + b"\x03\x01\x01")
    return {
        "metadata_v1_two_topics.bin": seed(3, 1, b"\x00\x00\x00\x02" + string("foo")
                                           + string("bar")),
        "metadata_v1_null_topics.bin": seed(3, 1, b"\xff\xff\xff\xff"),
        "metadata_v0_null_topics.bin": seed(3, 0, b"\xff\xff\xff\xff"),
        "api_versions_v3_request.bin": seed(18, 3, string("librdkafka", True)
                                            + string("v2.0.2", True) + b"\x00"),
        "api_versions_v3_tags.bin": seed(18, 3, tags),
        "api_versions_v3_unknown_tag.bin": seed(18, 3, b"\x00\x00\x01\x00\x00\x00\x00\x02"
                                                b"\x07\x02\xab\xcd\x09\x00"),
        "api_versions_v3_tags_out_of_order.bin": seed(18, 3, b"\x00\x00\x01\x00\x00\x00\x00\x02"
                                                      b"\x03\x01\x01\x01\x08" + bytes(8)),
        "api_versions_v3_overlong_varint.bin": seed(18, 3, b"\x00\x00\x81\x00\x00\x00\x00\x00"
                                                    b"\x80\x00"),
        "api_versions_v4_unsupported.bin": seed(18, 4, b"\x00"),
        "produce_v2_unsupported.bin": seed(0, 2, b""),
        "produce_v3_records.bin": seed(0, 3, string(None) + b"\xff\xff\x00\x00\x75\x30"
                                       + b"\x00\x00\x00\x01" + string("t") + b"\x00\x00\x00\x01"
                                       + b"\x00\x00\x00\x00" + blob(record_batch())),
        "huge_count.bin": seed(3, 1, b"\x7f\xff\xff\xff" + bytes(64)),
        "huge_compact_count.bin": seed(18, 3, b"\x00\x00\xff\xff\xff\xff\x0f"),
        "six_byte_varint.bin": seed(18, 3, b"\x00\x00\x80\x80\x80\x80\x80\x00"),
        "string_length_minus_2.bin": seed(17, 1, b"\xff\xfe"),
        "trailing_byte.bin": seed(12, 0, string("g") + b"\x00\x00\x00\x01" + string("m")
                                  + b"\x00"),
        "empty_body.bin": seed(16, 0, b""),
    }


def frame(payload):
    return struct.pack(">i", len(payload)) + payload


def req_header(key, v, corr, client_id, flexible=False):
    h = struct.pack(">hhi", key, v, corr) + string(client_id)
    return h + (b"\x00" if flexible else b"")


def header_seeds():
    av0 = frame(req_header(18, 0, 1, "test"))
    av3 = frame(req_header(18, 3, 2, "rdkafka", True) + string("librdkafka", True)
                + string("v2.0.2", True) + b"\x00")
    md1 = frame(req_header(3, 1, 3, None) + b"\x00\x00\x00\x01" + string("foo"))
    md0 = frame(req_header(3, 0, 4, "kafka-python") + b"\x00\x00\x00\x00")
    produce = frame(req_header(0, 7, 5, "rdkafka") + string(None) + b"\xff\xff\x00\x00\x75\x30"
                    + b"\x00\x00\x00\x01" + string("t") + b"\x00\x00\x00\x01"
                    + b"\x00\x00\x00\x00" + blob(record_batch()))
    ipid = frame(req_header(22, 4, 6, "rdkafka", True) + b"\x00\x00\x00\xea\x60" + b"\xff" * 10
                 + b"\x00")
    hdr_tags = frame(struct.pack(">hhi", 18, 3, 7) + string("c") + b"\x01\x05\x01z"
                     + b"\x01\x01\x00")
    return {
        "librdkafka_session.bin": bytes([20]) + av3 + av0 + md1 + produce + ipid,
        "kafka_python_probe.bin": bytes([20]) + av0 + md0,
        "api_versions_v0.bin": bytes([16]) + av0,
        "header_tags.bin": bytes([16]) + hdr_tags,
        "unknown_api_key.bin": bytes([16]) + frame(req_header(99, 0, 8, "x")),
        "unsupported_version.bin": bytes([16]) + frame(req_header(18, 9, 9, None, True)),
        "short_header.bin": bytes([16]) + frame(b"\x00\x12\x00"),
        "client_id_cut.bin": bytes([16]) + frame(struct.pack(">hhi", 3, 1, 1) + b"\x00\x09ab"),
        "negative_size.bin": bytes([16]) + b"\xff\xff\xff\xf0" + bytes(16),
        "over_cap.bin": bytes([4]) + av0,
        "partial_frame.bin": bytes([20]) + av0 + md1[:-3],
        "empty_frame.bin": bytes([20]) + frame(b""),
    }


def write(dirname, seeds):
    os.makedirs(dirname, exist_ok=True)
    for name, data in sorted(seeds.items()):
        with open(os.path.join(dirname, name), "wb") as f:
            f.write(data)
    print(f"{dirname}: {len(seeds)} seeds")


def main():
    root = sys.argv[1] if len(sys.argv) > 1 else os.path.join(HERE, "corpus")
    gen = load_gen()
    apis = sorted(gen.parse(os.path.join(ROOT, "src", "proto", "kafka", "kafka_spec.def")),
                  key=lambda a: a.key)
    write(os.path.join(root, "kafka_request"), {**generic_seeds(apis), **request_seeds(apis)})
    write(os.path.join(root, "kafka_header"), header_seeds())


if __name__ == "__main__":
    main()
