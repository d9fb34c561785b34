#!/usr/bin/env python3
"""Writes the seed corpus of fuzz_compress.c, and (with --vectors) the real-client batches that
tests/unit/compress_test.c checks.

    tests/fuzz/corpus/compress/   one file per seed: byte 0 picks the codec (bits 0-2) and the
                                  output cap (bits 3-7, see fuzz_compress.c); the rest is the
                                  compressed stream
    tests/unit/compress_vectors.h RecordBatch v2 batches as Kafka clients wrote them (--vectors)

Seeds come from Python's codec libraries (zlib, python3-snappy, python3-lz4, python3-zstandard,
independent of the C code under test) and from the records sections of the real-client batches:
well-formed streams of every framing, truncated and corrupted ones, and decompression bombs.

The real-client batches all carry the same three records (key k<i>, value "value-<i>" three
times, one header h=v, timestamp 1700000000000 + i); kafka-python also writes one 40,000-byte
record, so its xerial snappy stream has two blocks. They come from:
  - kafka-python 2.0.2 (python3-kafka): DefaultRecordBatchBuilder, the encoder its
    KafkaProducer uses, run offline: gzip, xerial snappy, lz4, zstd;
  - librdkafka 2.0.2 (python3-confluent-kafka): an idempotent producer against librdkafka's
    built-in mock cluster (test.mock.num.brokers, loopback only), read back byte for byte with
    a kafka-python Fetch v4: gzip, raw snappy, lz4, zstd;
  - kafkajs 2.2.4 (tests/js/node_modules, `npm ci` there first): its RecordBatch encoder, gzip.
Client output is not byte-for-byte stable across versions, so --vectors is run by hand and its
output committed. The seed corpus is deterministic except for the librdkafka seeds.

Usage: tests/fuzz/mkcorpus_compress.py [--vectors FILE] [corpus-dir]
"""
import gzip
import os
import struct
import subprocess
import sys
import zlib

import lz4.frame
import snappy
import zstandard

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
JS_DIR = os.path.join(ROOT, "tests", "js")

NONE, GZIP, SNAPPY, LZ4, ZSTD = 0, 1, 2, 3, 4
T0 = 1700000000000
BATCH_HEADER = 61


def records():
    """The three records every real-client vector carries: (key, value, headers, timestamp)."""
    return [(b"k%d" % i, (b"value-%d" % i) * 3, [("h", b"v")], T0 + i) for i in range(3)]


# ---- real clients --------------------------------------------------------------------------


def kafka_python_batch(codec, big=False):
    from kafka.record.default_records import DefaultRecordBatchBuilder
    b = DefaultRecordBatchBuilder(magic=2, compression_type=codec, is_transactional=False,
                                  producer_id=-1, producer_epoch=-1, base_sequence=-1,
                                  batch_size=1 << 20)
    recs = [(b"big", b"0123456789" * 4000, [], T0)] if big else records()
    for i, (k, v, h, ts) in enumerate(recs):
        b.append(i, ts, k, v, h)
    return bytes(b.build())


def librdkafka_batches():
    """{codec: batch} from an idempotent librdkafka producer, fetched raw from the mock."""
    from confluent_kafka import Producer
    from kafka.client_async import KafkaClient
    from kafka.protocol.fetch import FetchRequest

    names = {GZIP: "gzip", SNAPPY: "snappy", LZ4: "lz4", ZSTD: "zstd"}
    out = {}
    first = Producer({"test.mock.num.brokers": 1, "enable.idempotence": True})
    md = first.list_topics(timeout=10)
    broker = list(md.brokers.values())[0]
    bootstrap = "%s:%d" % (broker.host, broker.port)
    for codec, name in names.items():
        p = Producer({"bootstrap.servers": bootstrap, "compression.type": name,
                      "linger.ms": 200, "enable.idempotence": True})
        for k, v, h, ts in records():
            p.produce("vec-" + name, key=k, value=v, headers=h, timestamp=ts, partition=0)
        assert p.flush(20) == 0, "librdkafka did not deliver"
    client = KafkaClient(bootstrap_servers=bootstrap, api_version=(2, 1, 0))
    while not client.ready(broker.id):
        client.poll(timeout_ms=100)
    for codec, name in names.items():
        req = FetchRequest[4](-1, 1000, 1, 1 << 20, 0, [("vec-" + name, [(0, 0, 1 << 20)])])
        fut = client.send(broker.id, req)
        client.poll(future=fut, timeout_ms=10000)
        raw = fut.value.topics[0][1][0][-1]
        length = struct.unpack(">i", raw[8:12])[0]
        out[codec] = bytes(raw[:12 + length])
    client.close()
    del first
    return out


KAFKAJS_SCRIPT = r"""
const { RecordBatch } = require('kafkajs/src/protocol/recordBatch/v0')
const Record = require('kafkajs/src/protocol/recordBatch/record/v0')
const { Types } = require('kafkajs/src/protocol/message/compression')
;(async () => {
  const t0 = %d
  const records = [0, 1, 2].map(i => Record({ offsetDelta: i, timestampDelta: i,
    key: Buffer.from('k' + i), value: Buffer.from(('value-' + i).repeat(3)), headers: { h: 'v' } }))
  const b = await RecordBatch({ compression: Types.GZIP, firstTimestamp: t0, maxTimestamp: t0 + 2,
    lastOffsetDelta: 2, records })
  process.stdout.write(b.buffer.toString('hex'))
})()
""" % T0


def kafkajs_gzip_batch():
    if not os.path.isdir(os.path.join(JS_DIR, "node_modules", "kafkajs")):
        sys.exit("kafkajs is not installed: run `npm ci` in tests/js first")
    env = dict(os.environ, NODE_PATH=os.path.join(JS_DIR, "node_modules"))
    r = subprocess.run(["node", "-e", KAFKAJS_SCRIPT], env=env, capture_output=True, text=True,
                       check=True, timeout=60)
    return bytes.fromhex(r.stdout)


def client_vectors():
    """[(client, codec, batch)]"""
    vec = []
    for codec in (GZIP, SNAPPY, LZ4, ZSTD):
        vec.append(("kafka-python 2.0.2", codec, kafka_python_batch(codec)))
    vec.append(("kafka-python 2.0.2 (40,000-byte record)", SNAPPY,
                kafka_python_batch(SNAPPY, big=True)))
    for codec, b in sorted(librdkafka_batches().items()):
        vec.append(("librdkafka 2.0.2", codec, b))
    vec.append(("kafkajs 2.2.4", GZIP, kafkajs_gzip_batch()))
    for client, codec, b in vec:
        assert b[16] == 2 and struct.unpack(">h", b[21:23])[0] & 7 == codec, client
    return vec


def c_array(name, data):
    lines = []
    for i in range(0, len(data), 16):
        lines.append("    " + ", ".join("0x%02x" % x for x in data[i:i + 16]) + ",")
    return "static const uint8_t %s[%d] = {\n%s\n};\n" % (name, len(data), "\n".join(lines))


def write_vectors(path, vec):
    out = ["/* compress_vectors.h - RecordBatch v2 batches written by real Kafka clients.",
           " * Generated by tests/fuzz/mkcorpus_compress.py --vectors (see there); do not edit. */",
           "#ifndef TERN_COMPRESS_VECTORS_H", "#define TERN_COMPRESS_VECTORS_H", "",
           "#include <stddef.h>", "#include <stdint.h>", "",
           "struct compress_vector {",
           "    const char *client;",
           "    int codec;",
           "    int big; /* one 40,000-byte record instead of the three small ones */",
           "    const uint8_t *batch;",
           "    size_t len;",
           "};", ""]
    for i, (client, codec, b) in enumerate(vec):
        out.append("/* %s, codec %d */" % (client, codec))
        out.append(c_array("cv_%d" % i, b))
    out.append("static const struct compress_vector compress_vectors[] = {")
    for i, (client, codec, _) in enumerate(vec):
        big = 1 if "40,000" in client else 0
        out.append('    {"%s", %d, %d, cv_%d, sizeof(cv_%d)},' % (client, codec, big, i, i))
    out += ["};", "", "#endif", ""]
    with open(path, "w") as f:
        f.write("\n".join(out))


# ---- seeds ---------------------------------------------------------------------------------

RECORDS_TEXT = b"".join(k + v for k, v, _, _ in records()) * 4


def xerial(data, block=32 * 1024):
    out = b"\x82SNAPPY\x00" + struct.pack(">ii", 1, 1)
    for i in range(0, len(data), block):
        c = snappy.compress(data[i:i + block])
        out += struct.pack(">i", len(c)) + c
    return out


def zstd(data, **kw):
    return zstandard.ZstdCompressor(**kw).compress(data)


def seeds():
    """{name: (codec, cap selector, stream)}"""
    text, zeros = RECORDS_TEXT, bytes(4 << 20)
    gz = gzip.compress(text, mtime=0)
    lz = lz4.frame.compress(text)
    zs = zstd(text)
    s = {
        "gzip": (GZIP, 0, gz),
        "gzip_two_members": (GZIP, 0, gz + gzip.compress(b"second", mtime=0)),
        "gzip_truncated": (GZIP, 0, gz[:-5]),
        "gzip_bad_crc": (GZIP, 0, gz[:-8] + bytes([gz[-8] ^ 1]) + gz[-7:]),
        "gzip_trailing_garbage": (GZIP, 0, gz + b"garbage"),
        "gzip_zlib_wrapper": (GZIP, 0, zlib.compress(text)),
        "gzip_bomb": (GZIP, 0, gzip.compress(zeros, mtime=0)),
        "gzip_exact_cap": (GZIP, 1, gzip.compress(bytes(64), mtime=0)),
        "gzip_small_cap": (GZIP, 3, gz),
        "snappy_raw": (SNAPPY, 0, snappy.compress(text)),
        "snappy_raw_truncated": (SNAPPY, 0, snappy.compress(text)[:-3]),
        "snappy_raw_length_lies": (SNAPPY, 0, b"\xff\xff\xff\x0f" + snappy.compress(text)[2:]),
        "snappy_xerial": (SNAPPY, 0, xerial(text)),
        "snappy_xerial_blocks": (SNAPPY, 0, xerial(text * 40, block=4096)),
        "snappy_xerial_header_only": (SNAPPY, 0, xerial(b"")),
        "snappy_xerial_bad_block_len": (SNAPPY, 0, xerial(text)[:16] + b"\x7f\xff\xff\xff"),
        "snappy_xerial_short_header": (SNAPPY, 0, b"\x82SNAPPY\x00\x00\x00"),
        "snappy_bomb": (SNAPPY, 0, b"\x80\x80\x80\x08" + snappy.compress(bytes(1000))[2:]),
        "lz4": (LZ4, 0, lz),
        "lz4_two_frames": (LZ4, 0, lz + lz4.frame.compress(b"second")),
        "lz4_checksums": (LZ4, 0, lz4.frame.compress(text, content_checksum=True,
                                                     block_checksum=True)),
        "lz4_linked": (LZ4, 0, lz4.frame.compress(text * 50, block_linked=True,
                                                  block_size=lz4.frame.BLOCKSIZE_MAX64KB)),
        "lz4_truncated": (LZ4, 0, lz[:-4]),
        "lz4_bad_header_checksum": (LZ4, 0, lz[:6] + bytes([lz[6] ^ 0xFF]) + lz[7:]),
        "lz4_bomb": (LZ4, 0, lz4.frame.compress(zeros)),
        "lz4_small_cap": (LZ4, 2, lz),
        "zstd": (ZSTD, 0, zs),
        "zstd_no_content_size": (ZSTD, 0, zstd(text, write_content_size=False)),
        "zstd_checksum": (ZSTD, 0, zstd(text, write_checksum=True)),
        "zstd_two_frames": (ZSTD, 0, zs + zstd(b"second")),
        "zstd_skippable": (ZSTD, 0, struct.pack("<II", 0x184D2A50, 3) + b"abc" + zs),
        "zstd_legacy_magic": (ZSTD, 0, struct.pack("<I", 0xFD2FB527) + zs[4:]),
        "zstd_truncated": (ZSTD, 0, zs[:-2]),
        "zstd_bomb": (ZSTD, 0, zstd(zeros, write_content_size=False)),
        "zstd_bomb_content_size": (ZSTD, 0, zstd(zeros)),
        "zstd_small_cap": (ZSTD, 4, zs),
        "none": (NONE, 0, text),
        "unknown_codec_5": (5, 0, text),
        "empty_gzip": (GZIP, 0, b""),
    }
    return s


def write_seed(d, name, codec, cap_sel, data):
    with open(os.path.join(d, name + ".bin"), "wb") as f:
        f.write(bytes([(cap_sel << 3) | codec]) + data)


def main(argv):
    vectors_path, corpus = None, os.path.join(HERE, "corpus", "compress")
    args = list(argv)
    while args:
        a = args.pop(0)
        if a == "--vectors":
            vectors_path = args.pop(0)
        else:
            corpus = a
    os.makedirs(corpus, exist_ok=True)
    for name, (codec, cap_sel, data) in seeds().items():
        write_seed(corpus, name, codec, cap_sel, data)
    if vectors_path:
        vec = client_vectors()
        write_vectors(vectors_path, vec)
        for client, codec, b in vec:
            name = "client_%s_%d" % (client.split()[0].replace("-", "_"), codec)
            if "40,000" in client:
                name += "_big"
            write_seed(corpus, name, codec, 0, b[BATCH_HEADER:])
    print("wrote seeds to %s%s" % (corpus, " and " + vectors_path if vectors_path else ""))


if __name__ == "__main__":
    main(sys.argv[1:])
