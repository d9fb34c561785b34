/*
 * testutil.c - helpers shared by the unit and component tests.
 */
#include "testutil.h"

#include "base/tern.h"
#include "store/batch.h"
#include "store/compress.h"

#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

char *tu_tmpdir(void)
{
    const char *base = getenv("TMPDIR");
    char tmpl[4096];
    snprintf(tmpl, sizeof(tmpl), "%s/tern-test-XXXXXX", base && *base ? base : "/tmp");
    TERN_ASSERT(mkdtemp(tmpl) != NULL);
    return tern_xstrdup(tmpl);
}

void tu_rmrf(const char *path)
{
    DIR *d = opendir(path);
    if (!d) {
        unlink(path);
        return;
    }
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        char p[4096];
        snprintf(p, sizeof(p), "%s/%s", path, e->d_name);
        struct stat st;
        if (lstat(p, &st) == 0 && S_ISDIR(st.st_mode))
            tu_rmrf(p);
        else
            unlink(p);
    }
    closedir(d);
    rmdir(path);
}

const char *tu_path(const char *dir, const char *name)
{
    static char buf[4096];
    snprintf(buf, sizeof(buf), "%s/%s", dir, name);
    return buf;
}

struct tu_logfx *tu_logfx_new(void)
{
    struct tu_logfx *f = tern_xcalloc(1, sizeof(*f));
    f->dir = tu_tmpdir();
    snprintf(f->logdir, sizeof(f->logdir), "%s/l", f->dir);
    log_config_default(&f->cfg);
    return f;
}

void tu_logfx_free(struct tu_logfx *f)
{
    if (f->log)
        log_close(f->log, NULL, NULL);
    tu_rmrf(f->dir);
    free(f->dir);
    free(f);
}

uint8_t *tu_batch(const char *tag, int n, size_t vsize, int64_t ts, size_t *len)
{
    struct batch_rec_in *recs = tern_xcalloc((size_t)n, sizeof(*recs));
    char **vals = tern_xcalloc((size_t)n, sizeof(*vals));
    size_t cap = BATCH_HEADER_SIZE;
    for (int i = 0; i < n; i++) {
        char head[128];
        int hl = snprintf(head, sizeof(head), "%s-%d", tag, i);
        size_t vl = vsize > (size_t)hl ? vsize : (size_t)hl;
        vals[i] = tern_xmalloc(vl);
        memset(vals[i], 'x', vl);
        memcpy(vals[i], head, (size_t)hl);
        recs[i] = (struct batch_rec_in){.value = vals[i], .value_len = (int32_t)vl,
                                        .timestamp = ts};
        cap += vl + 32;
    }
    uint8_t *buf = tern_xmalloc(cap);
    int64_t sz = batch_encode(buf, cap, recs, n);
    TERN_ASSERT(sz > 0);
    *len = (size_t)sz;
    for (int i = 0; i < n; i++)
        free(vals[i]);
    free(vals);
    free(recs);
    return buf;
}

/* Appends the records of one batch at p to out; returns the new count or a negative error. */
static int take_batch(const uint8_t *p, size_t avail, int64_t from, struct tu_rec *out,
                      int count, int max, size_t *used)
{
    struct batch_hdr h;
    int64_t n = batch_parse(p, avail, UINT32_MAX, &h);
    if (n < 0)
        return (int)n;
    if (batch_check_crc(p, &h) < 0)
        return TERN_ECORRUPT;
    struct batch_iter it;
    struct batch_record r;
    TERN_ASSERT(batch_iter_init(&it, p, &h) == 0);
    int rc;
    while ((rc = batch_iter_next(&it, &r)) == 1) {
        if (r.offset < from || count >= max)
            continue;
        out[count].offset = r.offset;
        out[count].timestamp = r.timestamp;
        size_t vl = r.value_len > 0 ? (size_t)r.value_len : 0;
        if (vl > sizeof(out[count].value) - 1)
            vl = sizeof(out[count].value) - 1;
        memcpy(out[count].value, r.value, vl);
        out[count].value[vl] = '\0';
        count++;
    }
    *used = (size_t)n;
    return rc < 0 ? rc : count;
}

int tu_read_all(struct log *log, int64_t from, int64_t limit, struct tu_rec *out, int max)
{
    int count = 0;
    int64_t off = from;
    while (off < limit) {
        struct log_slice s;
        int rc = log_read(log, off, 1 << 16, limit, &s);
        if (rc < 0)
            return rc;
        if (s.len == 0)
            break;
        uint8_t *buf = tern_xmalloc(s.len);
        TERN_ASSERT(pread(s.fd, buf, s.len, s.pos) == (ssize_t)s.len);
        size_t pos = 0;
        while (pos < s.len && rc >= 0) {
            size_t used = 0;
            rc = take_batch(buf + pos, s.len - pos, from, out, count, max, &used);
            if (rc >= 0) {
                count = rc;
                pos += used;
            }
        }
        off = s.next_offset;
        free(buf);
        log_slice_release(&s);
        if (rc < 0)
            return rc;
    }
    return count;
}

uint8_t *tu_kbatch(const struct tu_kv *kvs, int n, int codec, size_t *len)
{
    struct batch_rec_in *recs = tern_xcalloc((size_t)n, sizeof(*recs));
    size_t cap = BATCH_HEADER_SIZE;
    for (int i = 0; i < n; i++) {
        const struct tu_kv *k = &kvs[i];
        recs[i] = (struct batch_rec_in){
            .key = k->null_key ? NULL : k->key,
            .key_len = k->null_key ? -1 : (int32_t)strlen(k->key),
            .value = k->null_value ? NULL : k->value,
            .value_len = k->null_value ? -1 : (int32_t)strlen(k->value),
            .timestamp = k->timestamp,
        };
        cap += strlen(k->key) + strlen(k->value) + 48;
    }
    uint8_t *buf = tern_xmalloc(cap);
    int64_t sz = batch_encode(buf, cap, recs, n);
    TERN_ASSERT(sz > 0);
    free(recs);
    if (codec == 0) {
        *len = (size_t)sz;
        return buf;
    }
    size_t zcap = BATCH_HEADER_SIZE + compress_bound(codec, (size_t)sz);
    uint8_t *z = tern_xmalloc(zcap);
    int64_t zn = compress_batch(codec, 0, buf, (size_t)sz, z, zcap);
    TERN_ASSERT(zn > 0);
    free(buf);
    *len = (size_t)zn;
    return z;
}

static void copy_bytes(char *dst, size_t cap, const uint8_t *src, int32_t len, bool *null)
{
    *null = src == NULL;
    size_t n = len > 0 ? (size_t)len : 0;
    if (n > cap - 1)
        n = cap - 1;
    if (n)
        memcpy(dst, src, n);
    dst[n] = '\0';
}

/* Reads the records of one whole batch at p into out; returns the new count or an error. */
static int take_kv_batch(const uint8_t *p, const struct batch_hdr *h, struct tu_kv *out,
                         int count, int max)
{
    static uint8_t scratch[4 << 20];
    struct batch_iter it;
    struct batch_record r;
    if (batch_check_crc(p, h) < 0)
        return TERN_ECORRUPT;
    int rc = compress_iter_init(&it, p, h, scratch, sizeof(scratch));
    if (rc < 0)
        return rc;
    while ((rc = batch_iter_next(&it, &r)) == 1) {
        if (count >= max)
            continue;
        struct tu_kv *k = &out[count++];
        k->offset = r.offset;
        k->timestamp = r.timestamp;
        copy_bytes(k->key, sizeof(k->key), r.key, r.key_len, &k->null_key);
        copy_bytes(k->value, sizeof(k->value), r.value, r.value_len, &k->null_value);
    }
    return rc < 0 ? rc : count;
}

int tu_read_kv(struct log *log, struct tu_kv *out, int max, struct tu_walk *w)
{
    struct tu_walk local;
    if (!w)
        w = &local;
    *w = (struct tu_walk){.end = log_start_offset(log)};
    int count = 0;
    bool first = true;
    while (w->end < log_end_offset(log)) {
        struct log_slice s;
        int rc = log_read(log, w->end, 1 << 16, log_end_offset(log), &s);
        if (rc < 0)
            return rc;
        if (s.len == 0)
            return TERN_ECORRUPT; /* a hole before the end */
        uint8_t *buf = tern_xmalloc(s.len);
        TERN_ASSERT(pread(s.fd, buf, s.len, s.pos) == (ssize_t)s.len);
        for (size_t pos = 0; pos < s.len && rc >= 0;) {
            struct batch_hdr h;
            int64_t n = batch_parse(buf + pos, s.len - pos, UINT32_MAX, &h);
            if (n < 0 || (!first && h.base_offset != w->end) ||
                (first && (h.base_offset > w->end || batch_last_offset(&h) < w->end))) {
                rc = TERN_ECORRUPT;
                break;
            }
            first = false;
            rc = take_kv_batch(buf + pos, &h, out, count, max);
            if (rc >= 0)
                count = rc;
            w->batches++;
            w->empty += h.record_count == 0;
            w->end = batch_last_offset(&h) + 1;
            pos += (size_t)n;
        }
        free(buf);
        log_slice_release(&s);
        if (rc < 0)
            return rc;
    }
    return count;
}

void tu_flip(const char *path, uint64_t pos, int bit)
{
    int fd = open(path, O_RDWR);
    TERN_ASSERT(fd >= 0);
    uint8_t b;
    TERN_ASSERT(pread(fd, &b, 1, (off_t)pos) == 1);
    b ^= (uint8_t)(1u << bit);
    TERN_ASSERT(pwrite(fd, &b, 1, (off_t)pos) == 1);
    close(fd);
}

void tu_append_raw(const char *path, const void *buf, size_t len)
{
    int fd = open(path, O_WRONLY | O_APPEND);
    TERN_ASSERT(fd >= 0);
    TERN_ASSERT(write(fd, buf, len) == (ssize_t)len);
    close(fd);
}

int64_t tu_file_size(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 ? st.st_size : -1;
}
