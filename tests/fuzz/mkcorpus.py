#!/usr/bin/env python3
"""Writes the seed corpora of the store fuzz targets:

    tests/fuzz/corpus/batch/    inputs of fuzz_batch.c   (concatenated RecordBatch v2 bytes)
    tests/fuzz/corpus/segment/  inputs of fuzz_segment.c (a small header choosing extra files,
                                then those files' bytes, then the segment data file)

The batches are encoded here independently of store/batch.c (RecordBatch v2 layout in
src/store/batch.h; checkpoint layout at the top of src/store/log.c; index layouts at the top of
src/store/seg.c), so the seeds also cross-check the C codec. Deterministic: rerunning it
rewrites the same files. Usage: tests/fuzz/mkcorpus.py [corpus-dir]
"""
import os
import random
import struct
import sys

# ---- CRC-32C (Castagnoli, reflected 0x82F63B78) ----------------------------------------------

_CRC_TABLE = []
for _n in range(256):
    _c = _n
    for _ in range(8):
        _c = (_c >> 1) ^ 0x82F63B78 if _c & 1 else _c >> 1
    _CRC_TABLE.append(_c)


def crc32c(data: bytes) -> int:
    crc = 0xFFFFFFFF
    for b in data:
        crc = _CRC_TABLE[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


assert crc32c(b"123456789") == 0xE3069283

# ---- RecordBatch v2 --------------------------------------------------------------------------


def varint(v: int) -> bytes:
    z = (v << 1) ^ (v >> 63)  # zig-zag, 64-bit
    z &= 0xFFFFFFFFFFFFFFFF
    out = bytearray()
    while True:
        b = z & 0x7F
        z >>= 7
        if z:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def nbytes(b):
    return varint(-1) if b is None else varint(len(b)) + b


def record(offset_delta, ts_delta, key, value, headers=()):
    body = bytes([0]) + varint(ts_delta) + varint(offset_delta) + nbytes(key) + nbytes(value)
    body += varint(len(headers))
    for hk, hv in headers:
        body += nbytes(hk) + nbytes(hv)
    return varint(len(body)) + body


def batch(base_offset, recs, first_ts=1700000000000, attributes=0, records_bytes=None,
          producer_id=-1, last_offset_delta=None):
    """recs: list of (key, value, headers, ts_delta). Returns the encoded batch."""
    if records_bytes is None:
        records_bytes = b"".join(
            record(i, r[3], r[0], r[1], r[2]) for i, r in enumerate(recs))
    if last_offset_delta is None:
        last_offset_delta = max(len(recs) - 1, 0)
    max_ts = first_ts + max([r[3] for r in recs] or [0])
    after_crc = struct.pack(">hiqqqhii", attributes, last_offset_delta, first_ts, max_ts,
                            producer_id, -1, -1, len(recs)) + records_bytes
    crc = crc32c(after_crc)
    length = 4 + 1 + 4 + len(after_crc)  # leader epoch, magic, crc, rest
    return struct.pack(">qiibI", base_offset, length, 0, 2, crc) + after_crc


def simple(base, values, key=b"k", ts_step=1):
    return batch(base, [(key, v, (), i * ts_step) for i, v in enumerate(values)])


# ---- batch corpus ----------------------------------------------------------------------------


def batch_seeds():
    rnd = random.Random(1)
    one = simple(0, [b"hello"])
    multi = batch(0, [(b"key-%d" % i, b"value %d" % i * (i + 1), (), i * 10) for i in range(5)])
    null_key = batch(0, [(None, b"no key", (), 0)])
    tombstone = batch(0, [(b"gone", None, (), 0)])
    headers = batch(0, [(b"k", b"v", ((b"content-type", b"json"), (b"trace", None)), 0),
                        (None, b"", ((b"", b"x"),), 5)])
    binary = batch(0, [(bytes(range(256)), bytes(range(255, -1, -1)), (), -3)])
    bad_crc = bytearray(multi)
    bad_crc[18] ^= 0x01
    bad_magic = bytearray(one)
    bad_magic[16] = 1
    compressed = batch(0, [(b"k", b"v", (), 0)], attributes=1, records_bytes=rnd.randbytes(40))
    control = batch(0, [(b"\x00\x00\x00\x01", b"\x00\x00\x00\x00\x00\x00", (), 0)],
                    attributes=0x30, producer_id=42)
    huge_len = bytearray(one)
    huge_len[8:12] = struct.pack(">i", 0x7FFFFFF0)
    neg_len = bytearray(one)
    neg_len[8:12] = struct.pack(">i", -1)
    # a record whose length varint claims more bytes than the batch has, CRC made valid
    overlong = batch(0, [(b"k", b"v", (), 0)], records_bytes=varint(100) + b"\x00" * 8)
    bad_delta = batch(0, [(b"k", b"v", (), 0)], records_bytes=record(7, 0, b"k", b"v"))
    too_many = batch(0, [(b"k", b"v", (), 0)] * 3, records_bytes=record(0, 0, b"k", b"v"))
    return {
        "one_record.bin": one,
        "multi_records.bin": multi,
        "null_key.bin": null_key,
        "null_value.bin": tombstone,
        "headers.bin": headers,
        "binary_key_value.bin": binary,
        "two_batches.bin": simple(0, [b"a", b"b"]) + simple(2, [b"c"]),
        "three_batches_garbage_tail.bin": one + multi + null_key + rnd.randbytes(30),
        "truncated_records.bin": multi[: len(multi) - 7],
        "truncated_header.bin": multi[:30],
        "truncated_length.bin": multi[:10],
        "bad_crc.bin": bytes(bad_crc),
        "bad_magic.bin": bytes(bad_magic),
        "compressed.bin": compressed,
        "control.bin": control,
        "huge_length.bin": bytes(huge_len),
        "negative_length.bin": bytes(neg_len),
        "overlong_record.bin": overlong,
        "bad_offset_delta.bin": bad_delta,
        "record_count_mismatch.bin": too_many,
        "empty.bin": b"",
        "garbage.bin": rnd.randbytes(200),
        "roundtrip_driver.bin": bytes([7, 0, 3, 5, 1]) + b"abcdefgh" * 8,
    }


# ---- segment corpus --------------------------------------------------------------------------
# Input layout of fuzz_segment.c: byte 0 = flags; then, in this order and only when the flag is
# set: index length/4 (1 byte), timeindex length/4 (1), checkpoint length/4 (1), split position
# (u16 LE) + second segment base (1), truncate delta (1), delete-below delta (1); then the
# index, timeindex and checkpoint bytes; the rest is the data of segment 00000000000000000000.

F_INDEX, F_TIMEINDEX, F_CKPT, F_CLEAN, F_SPLIT, F_APPEND, F_TRUNCATE, F_DELETE = (
    1 << i for i in range(8))


def checkpoint(start, durable_end, seg_base, seg_pos, seq=1):
    slot = struct.pack("<IHHqqqqQ", 0x504B4354, 1, 0, seq, start, durable_end, seg_base, seg_pos)
    slot += bytes(12)
    slot += struct.pack("<I", crc32c(slot))
    assert len(slot) == 64
    return slot + bytes(64)  # second slot empty (invalid)


def seg_input(data, flags=0, index=b"", timeindex=b"", ckpt=b"", split=None, trunc=0,
              delete=0):
    head = bytearray([flags])
    for flag, blob in ((F_INDEX, index), (F_TIMEINDEX, timeindex), (F_CKPT, ckpt)):
        if flags & flag:
            assert len(blob) % 4 == 0 and len(blob) <= 1020
            head.append(len(blob) // 4)
    if flags & F_SPLIT:
        head += struct.pack("<HB", split[0], split[1])
    if flags & F_TRUNCATE:
        head.append(trunc)
    if flags & F_DELETE:
        head.append(delete)
    for flag, blob in ((F_INDEX, index), (F_TIMEINDEX, timeindex), (F_CKPT, ckpt)):
        if flags & flag:
            head += blob
    return bytes(head) + data


def segment_data(nbatches, per_batch=3, base=0):
    """A valid segment: batches with consecutive offsets. Returns (bytes, positions, offsets)."""
    out, pos, offs, off = b"", [], [], base
    for i in range(nbatches):
        values = [b"batch %d record %d" % (i, j) for j in range(per_batch)]
        pos.append(len(out))
        offs.append(off)
        out += batch(off, [(b"k%d" % j, v, (), j) for j, v in enumerate(values)],
                     first_ts=1700000000000 + 1000 * i)
        off += per_batch
    return out, pos, offs


def segment_seeds():
    rnd = random.Random(2)
    data, pos, offs = segment_data(6)
    end = offs[-1] + 3
    index = b"".join(struct.pack("<II", o, p) for o, p in zip(offs[::2], pos[::2]))
    timeindex = b"".join(struct.pack("<qI", 1700000000000 + 1000 * i + 2, offs[i])
                         for i in range(0, 6, 2))
    flipped = bytearray(data)
    flipped[pos[1] + 40] ^= 0x20
    bad_index = b"".join(struct.pack("<II", o, p + 3) for o, p in zip(offs, pos))
    second = data[pos[3]:]
    # baseOffset is outside the CRC: a second batch claiming offset 2^32 (found by fuzzing:
    # the scan accepts it, but index entries hold offsets as u32 relative to the segment base)
    jump = bytearray(data[:pos[2]])
    jump[pos[1]:pos[1] + 8] = struct.pack(">q", 1 << 32)
    return {
        "valid_multi_batch.bin": seg_input(data),
        "valid_one_batch.bin": seg_input(simple(0, [b"only"])),
        "valid_with_indexes.bin": seg_input(data, F_INDEX | F_TIMEINDEX, index=index,
                                            timeindex=timeindex),
        "valid_clean_marker.bin": seg_input(data, F_INDEX | F_TIMEINDEX | F_CLEAN, index=index,
                                            timeindex=timeindex),
        "valid_checkpoint.bin": seg_input(data, F_CKPT, ckpt=checkpoint(0, end, 0, len(data))),
        "corrupt_before_checkpoint.bin": seg_input(bytes(flipped), F_CKPT,
                                                   ckpt=checkpoint(0, end, 0, len(data))),
        "checkpoint_beyond_end.bin": seg_input(data[:pos[2]], F_CKPT,
                                               ckpt=checkpoint(0, end, 0, len(data))),
        "flipped_byte.bin": seg_input(bytes(flipped)),
        "flipped_byte_clean.bin": seg_input(bytes(flipped), F_CLEAN),
        "torn_tail_half_batch.bin": seg_input(data + data[pos[1]:pos[2] - 20]),
        "torn_tail_garbage.bin": seg_input(data + rnd.randbytes(50)),
        "torn_tail_clean_marker.bin": seg_input(data[: len(data) - 9], F_CLEAN),
        "wrong_index.bin": seg_input(data, F_INDEX | F_CLEAN, index=bad_index),
        "garbage_index.bin": seg_input(data, F_INDEX | F_TIMEINDEX | F_CLEAN,
                                       index=rnd.randbytes(64), timeindex=rnd.randbytes(48)),
        "two_segments.bin": seg_input(data, F_SPLIT, split=(pos[3], offs[3])),
        "two_segments_overlap.bin": seg_input(data, F_SPLIT | F_CLEAN, split=(pos[3], 2)),
        "append_after_recovery.bin": seg_input(data + b"\x00" * 7, F_APPEND),
        "truncate_and_delete.bin": seg_input(data, F_SPLIT | F_TRUNCATE | F_DELETE | F_APPEND,
                                             split=(pos[3], offs[3]), trunc=7, delete=10),
        "offsets_not_increasing.bin": seg_input(simple(5, [b"a", b"b"]) + simple(0, [b"c"])),
        "zero_length.bin": b"",
        "garbage.bin": bytes([0]) + rnd.randbytes(300),
        "second_segment_only.bin": seg_input(b"", F_SPLIT, split=(0, 9)) + second,
        "base_offset_jump_2pow32.bin": seg_input(bytes(jump)),
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
    write(os.path.join(root, "batch"), batch_seeds())
    write(os.path.join(root, "segment"), segment_seeds())


if __name__ == "__main__":
    main()
