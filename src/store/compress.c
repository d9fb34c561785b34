/*
 * compress.c - Kafka batch codecs over zlib, snappy, lz4 and zstd (formats: compress.h).
 *
 * Every decoder writes only inside [out, out + cap). Where a library cannot tell us up front how
 * much a stream expands to (gzip, lz4), the decoder runs until the caller's buffer is full and
 * then lets the library write into a one-byte sink: any byte landing there means the stream is
 * longer than cap (TERN_ETOOBIG), while a stream that ends exactly at cap still finishes.
 */
#define ZLIB_CONST
#include "store/compress.h"

#include <errno.h>
#include <limits.h>
#include <lz4frame.h>
#include <lz4hc.h>
#include <snappy-c.h>
#include <stdbool.h>
#include <string.h>
#include <zlib.h>
#include <zstd.h>
#include <zstd_errors.h>

#include "base/buf.h"
#include "base/tern.h"

#define XERIAL_HEADER_SIZE 16
#define XERIAL_BLOCK_SIZE (32 * 1024) /* SnappyOutputStream's default, as Kafka uses it */
#define CAP_MAX ((size_t)UINT32_MAX)  /* zlib counts in 32 bits */

static const uint8_t xerial_magic[8] = {0x82, 'S', 'N', 'A', 'P', 'P', 'Y', 0};

static void put_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

const char *compress_name(int codec)
{
    switch (codec) {
    case COMPRESS_NONE:
        return "none";
    case COMPRESS_GZIP:
        return "gzip";
    case COMPRESS_SNAPPY:
    case COMPRESS_SNAPPY_RAW:
        return "snappy";
    case COMPRESS_LZ4:
        return "lz4";
    case COMPRESS_ZSTD:
        return "zstd";
    default:
        return "unknown";
    }
}

/* ---- gzip ---------------------------------------------------------------------------------- */

/* Runs inflate over every gzip member in zs's input; see the sink rule at the top. */
static int64_t gzip_inflate(z_stream *zs, size_t cap)
{
    uint8_t sink;
    bool in_sink = false;
    for (;;) {
        if (zs->avail_out == 0) {
            in_sink = true;
            zs->next_out = &sink;
            zs->avail_out = 1;
        }
        int zr = inflate(zs, Z_NO_FLUSH);
        if (in_sink && zs->avail_out == 0)
            return TERN_ETOOBIG;
        if (zr == Z_STREAM_END) {
            if (zs->avail_in == 0)
                break;
            if (inflateReset(zs) != Z_OK) /* another member follows */
                return TERN_EPROTO;
        } else if (zr == Z_BUF_ERROR) {
            if (zs->avail_out != 0)
                return TERN_EPROTO; /* out of input: truncated */
        } else if (zr == Z_MEM_ERROR) {
            return -ENOMEM;
        } else if (zr != Z_OK) {
            return TERN_EPROTO;
        }
    }
    return in_sink ? (int64_t)cap : (int64_t)(cap - zs->avail_out);
}

static int64_t gzip_decode(const uint8_t *src, size_t len, uint8_t *out, size_t cap)
{
    if (len > UINT_MAX)
        return TERN_ETOOBIG;
    z_stream zs;
    memset(&zs, 0, sizeof(zs));
    if (inflateInit2(&zs, 16 + MAX_WBITS) != Z_OK) /* 16: gzip wrapper only */
        return -ENOMEM;
    zs.next_in = src;
    zs.avail_in = (uInt)len;
    zs.next_out = out;
    zs.avail_out = (uInt)cap;
    int64_t rc = gzip_inflate(&zs, cap);
    inflateEnd(&zs);
    return rc;
}

static int level_clamp(int level, int lo, int hi, int dflt)
{
    if (level == 0)
        return dflt;
    return level < lo ? lo : level > hi ? hi : level;
}

static int64_t gzip_encode(int level, const uint8_t *src, size_t len, uint8_t *out, size_t cap)
{
    z_stream zs;
    memset(&zs, 0, sizeof(zs));
    level = level_clamp(level, 1, 9, 6);
    if (deflateInit2(&zs, level, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY) != Z_OK)
        return -ENOMEM;
    zs.next_in = src;
    zs.avail_in = (uInt)len;
    zs.next_out = out;
    zs.avail_out = (uInt)(cap > CAP_MAX ? CAP_MAX : cap);
    int zr = deflate(&zs, Z_FINISH);
    int64_t rc = zr == Z_STREAM_END ? (int64_t)zs.total_out : TERN_ETOOBIG;
    deflateEnd(&zs);
    return rc;
}

static size_t gzip_bound(size_t len)
{
    /* zlib's bound for its 6-byte wrapper, plus the 12 more bytes of gzip's 18-byte wrapper */
    return compressBound((uLong)len) + 12;
}

/* ---- snappy -------------------------------------------------------------------------------- */

static int64_t snappy_raw_decode(const uint8_t *src, size_t len, uint8_t *out, size_t cap)
{
    size_t n;
    if (snappy_uncompressed_length((const char *)src, len, &n) != SNAPPY_OK)
        return TERN_EPROTO;
    /* The densest element, a 3-byte copy of 64 bytes, expands 64/3 times: a longer claim is a
     * lie (or a truncated stream), not a stream too big for cap. */
    if (n / 22 > len)
        return TERN_EPROTO;
    if (n > cap)
        return TERN_ETOOBIG;
    if (snappy_uncompress((const char *)src, len, (char *)out, &n) != SNAPPY_OK)
        return TERN_EPROTO;
    return (int64_t)n;
}

static int64_t xerial_decode(const uint8_t *src, size_t len, uint8_t *out, size_t cap)
{
    if (len < XERIAL_HEADER_SIZE)
        return TERN_EPROTO;
    size_t pos = XERIAL_HEADER_SIZE, done = 0; /* version and compat are not checked (as Java) */
    while (pos < len) {
        if (len - pos < 4)
            return TERN_EPROTO;
        uint32_t blen = buf_get_u32(src + pos);
        pos += 4;
        if (blen == 0 || blen > len - pos)
            return TERN_EPROTO;
        int64_t n = snappy_raw_decode(src + pos, blen, out + done, cap - done);
        if (n < 0)
            return n;
        done += (size_t)n;
        pos += blen;
    }
    return (int64_t)done;
}

static int64_t snappy_decode(const uint8_t *src, size_t len, uint8_t *out, size_t cap)
{
    if (len >= sizeof(xerial_magic) && memcmp(src, xerial_magic, sizeof(xerial_magic)) == 0)
        return xerial_decode(src, len, out, cap);
    return snappy_raw_decode(src, len, out, cap);
}

static int64_t snappy_raw_encode(const uint8_t *src, size_t len, uint8_t *out, size_t cap)
{
    size_t n = cap;
    if (snappy_compress((const char *)src, len, (char *)out, &n) != SNAPPY_OK)
        return TERN_ETOOBIG;
    return (int64_t)n;
}

static int64_t xerial_encode(const uint8_t *src, size_t len, uint8_t *out, size_t cap)
{
    memcpy(out, xerial_magic, sizeof(xerial_magic));
    put_be32(out + 8, 1);  /* version */
    put_be32(out + 12, 1); /* compatible version */
    size_t pos = XERIAL_HEADER_SIZE;
    for (size_t off = 0; off < len; off += XERIAL_BLOCK_SIZE) {
        size_t blk = len - off < XERIAL_BLOCK_SIZE ? len - off : XERIAL_BLOCK_SIZE;
        int64_t n = snappy_raw_encode(src + off, blk, out + pos + 4, cap - pos - 4);
        if (n < 0)
            return n;
        put_be32(out + pos, (uint32_t)n);
        pos += 4 + (size_t)n;
    }
    return (int64_t)pos;
}

static size_t xerial_bound(size_t len)
{
    size_t full = len / XERIAL_BLOCK_SIZE, rest = len % XERIAL_BLOCK_SIZE;
    size_t n = XERIAL_HEADER_SIZE + full * (4 + snappy_max_compressed_length(XERIAL_BLOCK_SIZE));
    return rest ? n + 4 + snappy_max_compressed_length(rest) : n;
}

/* ---- lz4 ----------------------------------------------------------------------------------- */

/* Feeds every frame in src through d; see the sink rule at the top. */
static int64_t lz4_run(LZ4F_dctx *d, const uint8_t *src, size_t len, uint8_t *out, size_t cap)
{
    size_t in = 0, done = 0, hint = 1;
    uint8_t sink;
    while (in < len) {
        bool to_sink = done == cap;
        uint8_t *dst = to_sink ? &sink : out + done;
        size_t dn = to_sink ? 1 : cap - done, sn = len - in;
        hint = LZ4F_decompress(d, dst, &dn, src + in, &sn, NULL);
        if (LZ4F_isError(hint))
            return TERN_EPROTO;
        if (to_sink && dn > 0)
            return TERN_ETOOBIG;
        if (sn == 0 && dn == 0)
            return TERN_EPROTO; /* no progress: never expected, but never loop */
        in += sn;
        done += dn;
    }
    /* hint 0: the last frame ended. Otherwise flush what the library still holds. */
    while (hint != 0) {
        bool to_sink = done == cap;
        size_t dn = to_sink ? 1 : cap - done, sn = 0;
        hint = LZ4F_decompress(d, to_sink ? &sink : out + done, &dn, src + len, &sn, NULL);
        if (LZ4F_isError(hint) || (dn == 0 && hint != 0))
            return TERN_EPROTO; /* truncated */
        if (to_sink && dn > 0)
            return TERN_ETOOBIG;
        done += dn;
    }
    return (int64_t)done;
}

static int64_t lz4_decode(const uint8_t *src, size_t len, uint8_t *out, size_t cap)
{
    LZ4F_dctx *d;
    if (LZ4F_isError(LZ4F_createDecompressionContext(&d, LZ4F_VERSION)))
        return -ENOMEM;
    int64_t rc = lz4_run(d, src, len, out, cap);
    LZ4F_freeDecompressionContext(d);
    return rc;
}

static LZ4F_preferences_t lz4_prefs(int level)
{
    LZ4F_preferences_t p;
    memset(&p, 0, sizeof(p));
    p.frameInfo.blockSizeID = LZ4F_max64KB;
    p.frameInfo.blockMode = LZ4F_blockIndependent;
    p.compressionLevel = level_clamp(level, 1, LZ4HC_CLEVEL_MAX, 0);
    return p;
}

static int64_t lz4_encode(int level, const uint8_t *src, size_t len, uint8_t *out, size_t cap)
{
    LZ4F_preferences_t p = lz4_prefs(level);
    size_t n = LZ4F_compressFrame(out, cap, src, len, &p);
    if (LZ4F_isError(n)) /* cap >= the bound was checked: only allocation can fail */
        return -ENOMEM;
    return (int64_t)n;
}

static size_t lz4_bound(size_t len)
{
    LZ4F_preferences_t p = lz4_prefs(0);
    return LZ4F_compressFrameBound(len, &p);
}

/* ---- zstd ---------------------------------------------------------------------------------- */

static int64_t zstd_error(size_t r)
{
    switch (ZSTD_getErrorCode(r)) {
    case ZSTD_error_dstSize_tooSmall:
        return TERN_ETOOBIG;
    case ZSTD_error_memory_allocation:
        return -ENOMEM;
    default:
        return TERN_EPROTO;
    }
}

/* Decodes frame after frame, each straight into the caller's buffer (no window allocated). */
static int64_t zstd_run(ZSTD_DCtx *d, const uint8_t *src, size_t len, uint8_t *out, size_t cap)
{
    size_t pos = 0, done = 0;
    while (pos < len) {
        if (len - pos < 4)
            return TERN_EPROTO;
        uint32_t magic = (uint32_t)src[pos] | (uint32_t)src[pos + 1] << 8 |
                         (uint32_t)src[pos + 2] << 16 | (uint32_t)src[pos + 3] << 24;
        if (magic != ZSTD_MAGICNUMBER &&
            (magic & ZSTD_MAGIC_SKIPPABLE_MASK) != ZSTD_MAGIC_SKIPPABLE_START)
            return TERN_EPROTO; /* legacy or not zstd at all */
        size_t fsz = ZSTD_findFrameCompressedSize(src + pos, len - pos);
        if (ZSTD_isError(fsz))
            return TERN_EPROTO;
        unsigned long long fcs = ZSTD_getFrameContentSize(src + pos, fsz);
        if (fcs == ZSTD_CONTENTSIZE_ERROR)
            return TERN_EPROTO;
        if (fcs != ZSTD_CONTENTSIZE_UNKNOWN && fcs > cap - done)
            return TERN_ETOOBIG; /* refused on the header's word, before decoding */
        size_t n = ZSTD_decompressDCtx(d, out + done, cap - done, src + pos, fsz);
        if (ZSTD_isError(n))
            return zstd_error(n);
        done += n;
        pos += fsz;
    }
    return (int64_t)done;
}

static int64_t zstd_decode(const uint8_t *src, size_t len, uint8_t *out, size_t cap)
{
    ZSTD_DCtx *d = ZSTD_createDCtx();
    if (!d)
        return -ENOMEM;
    int64_t rc = zstd_run(d, src, len, out, cap);
    ZSTD_freeDCtx(d);
    return rc;
}

static int64_t zstd_encode(int level, const uint8_t *src, size_t len, uint8_t *out, size_t cap)
{
    level = level_clamp(level, 1, ZSTD_maxCLevel(), ZSTD_CLEVEL_DEFAULT);
    size_t n = ZSTD_compress(out, cap, src, len, level);
    return ZSTD_isError(n) ? zstd_error(n) : (int64_t)n;
}

/* ---- public -------------------------------------------------------------------------------- */

int64_t compress_decode(int codec, const void *src, size_t len, void *out, size_t cap)
{
    if (cap > CAP_MAX)
        cap = CAP_MAX;
    switch (codec) {
    case COMPRESS_NONE:
        if (len > cap)
            return TERN_ETOOBIG;
        if (len)
            memcpy(out, src, len);
        return (int64_t)len;
    case COMPRESS_GZIP:
    case COMPRESS_SNAPPY:
    case COMPRESS_LZ4:
    case COMPRESS_ZSTD:
        break;
    default:
        return TERN_ENOTSUP;
    }
    if (len == 0)
        return TERN_EPROTO;
    if (codec == COMPRESS_GZIP)
        return gzip_decode(src, len, out, cap);
    if (codec == COMPRESS_SNAPPY)
        return snappy_decode(src, len, out, cap);
    if (codec == COMPRESS_LZ4)
        return lz4_decode(src, len, out, cap);
    return zstd_decode(src, len, out, cap);
}

size_t compress_bound(int codec, size_t len)
{
    switch (codec) {
    case COMPRESS_NONE:
        return len;
    case COMPRESS_GZIP:
        return gzip_bound(len);
    case COMPRESS_SNAPPY:
        return xerial_bound(len);
    case COMPRESS_SNAPPY_RAW:
        return snappy_max_compressed_length(len);
    case COMPRESS_LZ4:
        return lz4_bound(len);
    case COMPRESS_ZSTD:
        return ZSTD_compressBound(len);
    default:
        return 0;
    }
}

int64_t compress_encode(int codec, int level, const void *src, size_t len, void *out, size_t cap)
{
    size_t need = compress_bound(codec, len);
    if (need == 0 && codec != COMPRESS_NONE)
        return TERN_ENOTSUP;
    if (cap < need || (codec == COMPRESS_GZIP && len > CAP_MAX))
        return TERN_ETOOBIG;
    switch (codec) {
    case COMPRESS_NONE:
        if (len)
            memcpy(out, src, len);
        return (int64_t)len;
    case COMPRESS_GZIP:
        return gzip_encode(level, src, len, out, cap);
    case COMPRESS_SNAPPY:
        return xerial_encode(src, len, out, cap);
    case COMPRESS_SNAPPY_RAW:
        return snappy_raw_encode(src, len, out, cap);
    case COMPRESS_LZ4:
        return lz4_encode(level, src, len, out, cap);
    default:
        return zstd_encode(level, src, len, out, cap);
    }
}

int compress_iter_init(struct batch_iter *it, const void *batch, const struct batch_hdr *h,
                       void *scratch, size_t cap)
{
    int codec = h->attributes & BATCH_ATTR_COMPRESSION_MASK;
    if (codec == COMPRESS_NONE)
        return batch_iter_init(it, batch, h);
    const uint8_t *rec = (const uint8_t *)batch + BATCH_HEADER_SIZE;
    size_t len = (size_t)h->length + BATCH_LOG_OVERHEAD - BATCH_HEADER_SIZE;
    if (len == 0 && h->record_count == 0) {
        batch_iter_init_records(it, h, rec, 0);
        return 0;
    }
    int64_t n = compress_decode(codec, rec, len, scratch, cap);
    if (n < 0)
        return (int)n;
    batch_iter_init_records(it, h, scratch, (size_t)n);
    return 0;
}

int64_t compress_batch(int codec, int level, const void *batch, size_t size, void *out, size_t cap)
{
    struct batch_hdr h;
    if (codec == COMPRESS_NONE || compress_bound(codec, 0) == 0)
        return TERN_ENOTSUP;
    if (batch_parse(batch, size, size, &h) != (int64_t)size ||
        (h.attributes & BATCH_ATTR_COMPRESSION_MASK))
        return TERN_EPROTO;
    if (cap < BATCH_HEADER_SIZE)
        return TERN_ETOOBIG;
    uint8_t *o = out;
    int64_t n =
        compress_encode(codec, level, (const uint8_t *)batch + BATCH_HEADER_SIZE,
                        size - BATCH_HEADER_SIZE, o + BATCH_HEADER_SIZE, cap - BATCH_HEADER_SIZE);
    if (n < 0)
        return n;
    int64_t total = BATCH_HEADER_SIZE + n;
    if (total - BATCH_LOG_OVERHEAD > INT32_MAX)
        return TERN_ETOOBIG;
    h.length = (int32_t)(total - BATCH_LOG_OVERHEAD);
    h.attributes = (int16_t)((h.attributes & ~BATCH_ATTR_COMPRESSION_MASK) |
                             (codec & BATCH_ATTR_COMPRESSION_MASK));
    batch_write_header(o, &h); /* every field but the CRC, which covers the compressed records */
    batch_update_crc(o, (size_t)total);
    return total;
}
