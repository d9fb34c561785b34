/*
 * stream.c - Kafka-style topics on the store (see stream.h).
 *
 * Invariants:
 *   - every topic in memory has its catalog record (written before the topic is visible) and
 *     one open log per partition, "<prefix>.<index>";
 *   - a partition's producer table holds the idempotence state of every batch in its log: it is
 *     loaded at open from the partition's snapshot and the batches after the offset it names,
 *     or rebuilt by replaying the batch headers from the log start, then kept by stream_append;
 *   - a producer snapshot ("producers.snapshot" in the partition's log directory) is the
 *     replay's result for every offset below the one it names (next), so it is used whenever
 *     next <= the log end: a snapshot is written only once the log is durable up to next (a
 *     clean shutdown; or, each time about a segment's worth of bytes was appended, a pool job
 *     that waits for that), and recovery only ever cuts a tail, so the batches below next are
 *     the ones it summarised. A snapshot naming more than the log holds (a tail lost in a crash
 *     with --fsync never) is deleted at open, before anything is appended. A bad one (CRC)
 *     replays the whole log;
 *   - configs holds only explicitly set values; cfg is derived from it and the defaults.
 */
#include "broker/stream.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/buf.h"
#include "base/clock.h"
#include "base/strmap.h"
#include "base/table.h"
#include "base/tern.h"
#include "base/tlog.h"
#include "broker/catalog.h"
#include "store/batch.h"
#include "store/store.h"

#define TOPIC_NAME_MAX 249
#define PREFIX_LEN 18 /* "k." + 16 hex digits */
#define REPLAY_CHUNK (1u << 20)
#define SNAPSHOT_MIN_BYTES (64u << 10) /* appended between background snapshots at least */

/* A topic's effective configuration. */
struct topic_cfg {
    bool compact, delete;
    int64_t retention_ms, retention_bytes, segment_bytes, segment_ms;
    int64_t delete_retention_ms, max_message_bytes, min_compaction_lag_ms;
    bool log_append_time;
};

struct stream_part {
    struct stream_topic *t;
    int32_t index;
    struct log *log;
    struct producers *prod;
    int64_t snap_next;   /* the log end a snapshot loaded at open or written at shutdown named,
                            while prod still equals it (a clean shutdown skips the write); or -1 */
    bool prod_partial;   /* the replay failed: prod is incomplete and never saved */
    uint64_t since_snap; /* bytes appended since the last background snapshot began */
    struct snap_job *snap_job; /* background snapshot in flight */
    struct stream_watch *watchers;
};

struct stream_topic {
    struct stream_mgr *m;
    char *name;
    char prefix[PREFIX_LEN + 1];
    int32_t nparts;
    struct stream_part **parts;
    struct table *configs; /* explicit values only: string -> string */
    struct topic_cfg cfg;
};

/* The producer-expiration timer; outlives its manager (m NULL) until libuv has closed it. */
struct expire_timer {
    uv_timer_t t;
    struct stream_mgr *m;
};

struct stream_mgr {
    uv_loop_t *loop;
    struct expire_timer *expire;
    struct store *st;
    struct catalog *cat;
    struct stream_defaults d;
    struct strmap by_name;
    struct stream_topic **topics; /* creation order */
    size_t ntopics, cap;
};

static void seterr(struct stream_err *err, enum stream_errkind kind, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void seterr(struct stream_err *err, enum stream_errkind kind, const char *fmt, ...)
{
    if (!err)
        return;
    err->kind = kind;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->text, sizeof(err->text), fmt, ap);
    va_end(ap);
}

/* ---- configs ------------------------------------------------------------------------------ */

enum cfg_kind { CFG_INT, CFG_POLICY, CFG_TSTYPE };

static const struct cfg_def {
    const char *name;
    enum cfg_kind kind;
    const char *def;
    int64_t min;
} cfg_defs[] = {
    {"cleanup.policy", CFG_POLICY, "delete", 0},
    {"retention.ms", CFG_INT, "604800000", -1},
    {"retention.bytes", CFG_INT, "-1", -1},
    {"segment.bytes", CFG_INT, "1073741824", 1024},
    {"segment.ms", CFG_INT, "604800000", 1},
    {"delete.retention.ms", CFG_INT, "86400000", 0},
    {"min.compaction.lag.ms", CFG_INT, "0", 0},
    {"max.message.bytes", CFG_INT, "1048588", 0},
    {"message.timestamp.type", CFG_TSTYPE, "CreateTime", 0},
};

static const struct cfg_def *cfg_find(const char *name)
{
    for (size_t i = 0; i < TERN_ARRAY_LEN(cfg_defs); i++)
        if (strcmp(cfg_defs[i].name, name) == 0)
            return &cfg_defs[i];
    return NULL;
}

static bool parse_i64(const char *s, int64_t *out)
{
    if (!*s)
        return false;
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || *end)
        return false;
    *out = v;
    return true;
}

static bool parse_policy(const char *s, bool *compact, bool *del)
{
    *compact = *del = false;
    char buf[64];
    if (strlen(s) >= sizeof(buf))
        return false;
    strcpy(buf, s);
    char *save = NULL;
    for (char *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        while (*tok == ' ')
            tok++;
        if (strcmp(tok, "compact") == 0)
            *compact = true;
        else if (strcmp(tok, "delete") == 0)
            *del = true;
        else
            return false;
    }
    return *compact || *del;
}

/* Checks one value against its definition. */
static bool cfg_valid(const struct cfg_def *d, const char *v)
{
    int64_t i;
    bool a, b;
    switch (d->kind) {
    case CFG_INT:
        return parse_i64(v, &i) && i >= d->min;
    case CFG_POLICY:
        return parse_policy(v, &a, &b);
    case CFG_TSTYPE:
        return strcmp(v, "CreateTime") == 0 || strcmp(v, "LogAppendTime") == 0;
    }
    return false;
}

static const char *cfg_value(const struct table *configs, const struct cfg_def *d)
{
    const char *s;
    uint32_t len;
    const struct tval *v = configs ? table_get(configs, d->name) : NULL;
    if (v && tval_str(v, &s, &len))
        return s;
    return d->def;
}

static int64_t cfg_int(const struct table *configs, const char *name)
{
    int64_t v = 0;
    parse_i64(cfg_value(configs, cfg_find(name)), &v);
    return v;
}

static void cfg_derive(const struct table *configs, struct topic_cfg *c)
{
    parse_policy(cfg_value(configs, cfg_find("cleanup.policy")), &c->compact, &c->delete);
    c->retention_ms = cfg_int(configs, "retention.ms");
    c->retention_bytes = cfg_int(configs, "retention.bytes");
    c->segment_bytes = cfg_int(configs, "segment.bytes");
    c->segment_ms = cfg_int(configs, "segment.ms");
    c->delete_retention_ms = cfg_int(configs, "delete.retention.ms");
    c->min_compaction_lag_ms = cfg_int(configs, "min.compaction.lag.ms");
    c->max_message_bytes = cfg_int(configs, "max.message.bytes");
    c->log_append_time =
        strcmp(cfg_value(configs, cfg_find("message.timestamp.type")), "LogAppendTime") == 0;
}

/* Builds a config table from kv pairs (NULL values dropped). Returns NULL with *err set on an
 * unknown name or a bad value. */
static struct table *cfg_build(const struct stream_kv *kv, size_t n, struct stream_err *err)
{
    struct table *t = table_new();
    for (size_t i = 0; i < n; i++) {
        const struct cfg_def *d = cfg_find(kv[i].name);
        if (!d) {
            seterr(err, STREAM_EINVALID_CONFIG, "Unknown topic config name: %s", kv[i].name);
            table_free(t);
            return NULL;
        }
        if (!kv[i].value)
            continue;
        if (!cfg_valid(d, kv[i].value)) {
            seterr(err, STREAM_EINVALID_CONFIG, "Invalid value %s for configuration %s",
                   kv[i].value, kv[i].name);
            table_free(t);
            return NULL;
        }
        table_set_str(t, d->name, kv[i].value);
    }
    return t;
}

/* The log configuration a topic's partitions use. */
static void log_cfg_of(const struct topic_cfg *c, struct log_config *lc)
{
    lc->segment_bytes = (uint64_t)c->segment_bytes;
    lc->segment_ms = c->segment_ms;
    lc->retention_ms = c->delete ? c->retention_ms : -1;
    lc->retention_bytes = c->delete ? c->retention_bytes : -1;
    lc->compact = c->compact;
    lc->delete_retention_ms = c->delete_retention_ms;
    lc->min_compaction_lag_ms = c->min_compaction_lag_ms;
    uint64_t max = (uint64_t)c->max_message_bytes + BATCH_HEADER_SIZE + 64;
    if (max > lc->max_batch_bytes)
        lc->max_batch_bytes = max > UINT32_MAX ? UINT32_MAX : (uint32_t)max;
}

bool stream_config_at(const struct stream_topic *t, size_t i, struct stream_config_desc *out)
{
    if (i >= TERN_ARRAY_LEN(cfg_defs))
        return false;
    const struct cfg_def *d = &cfg_defs[i];
    out->name = d->name;
    snprintf(out->value, sizeof(out->value), "%s", cfg_value(t->configs, d));
    out->is_default = !t->configs || !table_get(t->configs, d->name);
    out->read_only = false;
    return true;
}

/* ---- partitions --------------------------------------------------------------------------- */

/* Applies to the producer table every batch header in the log from offset from on. */
static int replay_producers(struct stream_part *p, int64_t from)
{
    struct buf b = BUF_INIT;
    int64_t off = from > log_start_offset(p->log) ? from : log_start_offset(p->log);
    int rc = 0;
    while (off < log_end_offset(p->log) && rc == 0) {
        struct log_slice s;
        rc = log_read(p->log, off, REPLAY_CHUNK, log_end_offset(p->log), &s);
        if (rc < 0 || s.len == 0) {
            log_slice_release(&s);
            break;
        }
        buf_clear(&b);
        uint8_t *dst = buf_reserve(&b, s.len);
        rc = log_slice_read(&s, dst);
        log_slice_release(&s);
        if (rc < 0)
            break;
        int64_t used = producers_replay(p->prod, dst, s.len);
        if (used <= 0) {
            rc = used < 0 ? (int)used : TERN_ECORRUPT;
            break;
        }
        off = s.next_offset;
    }
    buf_fini(&b);
    return rc;
}

/* The partition's snapshot when it may stand in for the replay of the offsets below *next
 * (see the invariants). Returns a table, or NULL. */
static struct producers *load_snapshot(struct stream_part *p, int64_t *next)
{
    struct producers *t = NULL;
    *next = -1;
    if (producers_load_file(log_dir(p->log), &t, next) < 0)
        return NULL;
    if (*next > log_end_offset(p->log)) {
        /* it summarises batches a crash took: never let later appends make it look valid */
        producers_free(t);
        int rc = producers_remove_file(log_dir(p->log));
        if (rc < 0)
            TLOG_ERRNO("stream", rc, "event=producer_snapshot_remove_failed dir=%s",
                       log_dir(p->log));
        return NULL;
    }
    return t;
}

/* ---- background snapshots ------------------------------------------------------------------ */

/* A snapshot taken on the loop, written on the pool once the log is durable up to next. */
struct snap_job {
    uv_work_t req;
    uv_loop_t *loop;
    struct stream_part *p; /* NULL once the partition is gone */
    char *dir;
    struct buf data;
    int rc;
};

static void snap_free(struct snap_job *j)
{
    if (j->p)
        j->p->snap_job = NULL;
    buf_fini(&j->data);
    free(j->dir);
    free(j);
}

static void snap_work(uv_work_t *req)
{
    struct snap_job *j = req->data;
    j->rc = producers_write_file(j->data.p, j->data.len, j->dir, PRODUCERS_SNAPSHOT_BG_TMP);
}

static void snap_done(uv_work_t *req, int status)
{
    struct snap_job *j = req->data;
    if (status == 0 && j->rc < 0)
        TLOG_ERRNO("stream", j->rc, "event=producer_snapshot_failed dir=%s", j->dir);
    snap_free(j);
}

static void snap_durable(void *arg, int status)
{
    struct snap_job *j = arg;
    if (status == 0 && j->p && uv_queue_work(j->loop, &j->req, snap_work, snap_done) == 0)
        return;
    snap_free(j);
}

/* Snapshots p's producer table at the log end and writes it once that end is durable, so that
 * a restart after a crash replays only what was appended since (Kafka snapshots at each roll).
 * The snapshot on disk may then name less than p->snap_next says; that costs a longer replay,
 * never a wrong table. */
static void snapshot_later(struct stream_part *p)
{
    uv_loop_t *loop = p->t->m->loop;
    if (!loop || p->prod_partial || p->snap_job)
        return;
    p->since_snap = 0;
    int64_t next = log_end_offset(p->log);
    struct snap_job *j = tern_xcalloc(1, sizeof(*j));
    j->req.data = j;
    j->loop = loop;
    j->p = p;
    j->dir = tern_xstrdup(log_dir(p->log));
    producers_save(p->prod, next, &j->data);
    p->snap_job = j;
    int rc = log_wait_durable(p->log, next, snap_durable, j);
    if (rc != 0)
        snap_durable(j, rc == 1 ? 0 : rc);
}

/* Writes p's snapshot naming the log end, unless the one on disk already does. An empty table
 * is saved too, so a clean restart skips the replay of a log without idempotent producers. */
static int save_snapshot(struct stream_part *p)
{
    int64_t end = log_end_offset(p->log);
    if (p->prod_partial)
        return producers_remove_file(log_dir(p->log));
    if (p->snap_next == end)
        return 0;
    int rc = producers_save_file(p->prod, end, log_dir(p->log));
    if (rc == 0)
        p->snap_next = end;
    return rc;
}

static void part_name(const struct stream_topic *t, int32_t i, char *out, size_t cap)
{
    snprintf(out, cap, "%s.%" PRId32, t->prefix, i);
}

static int part_open(struct stream_topic *t, int32_t i, struct stream_part **out)
{
    char name[64];
    part_name(t, i, name, sizeof(name));
    struct log *log;
    int rc = store_log(t->m->st, name, NULL, &log); /* the open log, or a new one */
    if (rc < 0)
        return rc;
    struct log_config lc = *log_get_config(log);
    log_cfg_of(&t->cfg, &lc);
    log_set_config(log, &lc);
    struct stream_part *p = tern_xcalloc(1, sizeof(*p));
    *p = (struct stream_part){.t = t, .index = i, .log = log};
    int64_t next;
    p->prod = load_snapshot(p, &next);
    bool snap = p->prod != NULL;
    int64_t end = log_end_offset(log), from = snap ? next : log_start_offset(log);
    p->snap_next = snap && next == end ? end : -1;
    if (!snap)
        p->prod = producers_new();
    if (from < end) {
        rc = replay_producers(p, from);
        p->prod_partial = rc < 0;
    }
    const char *source = !snap ? "replay" : from < end ? "snapshot+replay" : "snapshot";
    if (rc < 0)
        TLOG_ERRNO("stream", rc, "event=producer_replay_failed topic=%s partition=%" PRId32,
                   t->name, i);
    else if (producers_count(p->prod))
        TLOG_INFO("stream",
                  "event=producers_loaded topic=%s partition=%" PRId32
                  " source=%s producers=%zu replayed_from=%" PRId64 " end=%" PRId64,
                  t->name, i, source, producers_count(p->prod), from < end ? from : end, end);
    *out = p;
    return 0;
}

static void watchers_gone(struct stream_part *p)
{
    while (p->watchers) {
        struct stream_watch *w = p->watchers;
        stream_unwatch(w);
        w->cb(w->arg, NULL);
    }
}

static void part_free(struct stream_part *p, bool delete_log)
{
    watchers_gone(p);
    if (p->snap_job)
        p->snap_job->p = NULL; /* it frees itself */
    if (delete_log) {
        char name[64];
        part_name(p->t, p->index, name, sizeof(name));
        store_log_delete(p->t->m->st, name);
    }
    producers_free(p->prod);
    free(p);
}

struct log *stream_part_log(const struct stream_part *p)
{
    return p->log;
}
/* ---- topics ------------------------------------------------------------------------------- */

static bool name_valid(const char *name)
{
    size_t n = strlen(name);
    if (n == 0 || n > TOPIC_NAME_MAX || strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = name[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-'))
            return false;
    }
    return true;
}

static void new_prefix(struct stream_mgr *m, char *out)
{
    for (;;) {
        uint64_t r;
        tern_random(&r, sizeof(r));
        snprintf(out, PREFIX_LEN + 1, "k.%016" PRIx64, r);
        char name[64];
        snprintf(name, sizeof(name), "%s.0", out);
        if (!store_log_find(m->st, name))
            return;
    }
}

static struct stream_topic *topic_alloc(struct stream_mgr *m, const char *name, const char *prefix,
                                        struct table *configs)
{
    struct stream_topic *t = tern_xcalloc(1, sizeof(*t));
    t->m = m;
    t->name = tern_xstrdup(name);
    snprintf(t->prefix, sizeof(t->prefix), "%s", prefix);
    t->configs = configs ? configs : table_new();
    cfg_derive(t->configs, &t->cfg);
    return t;
}

static void topic_free(struct stream_topic *t, bool delete_logs)
{
    for (int32_t i = 0; i < t->nparts; i++)
        part_free(t->parts[i], delete_logs);
    free(t->parts);
    table_free(t->configs);
    free(t->name);
    free(t);
}

/* Opens partitions [t->nparts, count). Returns 0 or the first open error. */
static int topic_grow(struct stream_topic *t, int32_t count)
{
    t->parts = tern_xrealloc(t->parts, (size_t)count * sizeof(*t->parts));
    while (t->nparts < count) {
        int rc = part_open(t, t->nparts, &t->parts[t->nparts]);
        if (rc < 0)
            return rc;
        t->nparts++;
    }
    return 0;
}

static void topic_link(struct stream_mgr *m, struct stream_topic *t)
{
    if (m->ntopics == m->cap) {
        m->cap = m->cap ? m->cap * 2 : 16;
        m->topics = tern_xrealloc(m->topics, m->cap * sizeof(*m->topics));
    }
    m->topics[m->ntopics++] = t;
    strmap_put(&m->by_name, t->name, strlen(t->name), t);
}

static void topic_unlink(struct stream_mgr *m, struct stream_topic *t)
{
    strmap_del(&m->by_name, t->name, strlen(t->name));
    for (size_t i = 0; i < m->ntopics; i++) {
        if (m->topics[i] == t) {
            memmove(m->topics + i, m->topics + i + 1, (m->ntopics - i - 1) * sizeof(*m->topics));
            m->ntopics--;
            break;
        }
    }
}

static int topic_persist(struct stream_mgr *m, const struct stream_topic *t, int32_t nparts)
{
    struct catalog_topic ct = {
        .name = t->name, .partitions = nparts, .log_prefix = t->prefix, .configs = t->configs};
    return catalog_put_topic(m->cat, &ct);
}

struct stream_topic *stream_find(struct stream_mgr *m, const char *name, size_t len)
{
    return strmap_get(&m->by_name, name, len);
}

struct stream_topic *stream_at(struct stream_mgr *m, size_t i)
{
    return i < m->ntopics ? m->topics[i] : NULL;
}

size_t stream_count(const struct stream_mgr *m)
{
    return m->ntopics;
}
const char *stream_topic_name(const struct stream_topic *t)
{
    return t->name;
}
int32_t stream_partitions(const struct stream_topic *t)
{
    return t->nparts;
}

struct stream_part *stream_part(struct stream_topic *t, int32_t index)
{
    return index >= 0 && index < t->nparts ? t->parts[index] : NULL;
}

int stream_create(struct stream_mgr *m, const char *name, int32_t partitions,
                  const struct stream_kv *configs, size_t nconfigs, bool validate_only,
                  struct stream_topic **out, struct stream_err *err)
{
    if (!name_valid(name)) {
        seterr(err, STREAM_EINVALID_NAME,
               "Topic name \"%.200s\" is illegal, it contains a character other than ASCII "
               "alphanumerics, '.', '_' and '-', or is empty, '.', '..' or too long",
               name);
        return -1;
    }
    if (stream_find(m, name, strlen(name))) {
        seterr(err, STREAM_EEXISTS, "Topic '%.200s' already exists.", name);
        return -1;
    }
    if (partitions == -1)
        partitions = m->d.partitions;
    if (partitions < 1 || partitions > m->d.max_partitions) {
        seterr(err, STREAM_EINVALID_PARTS, "Number of partitions must be between 1 and %d.",
               m->d.max_partitions);
        return -1;
    }
    struct table *cfg = cfg_build(configs, nconfigs, err);
    if (!cfg)
        return -1;
    if (validate_only) {
        table_free(cfg);
        return 0;
    }
    char prefix[PREFIX_LEN + 1];
    new_prefix(m, prefix);
    struct stream_topic *t = topic_alloc(m, name, prefix, cfg);
    int rc = topic_persist(m, t, partitions);
    if (rc == 0)
        rc = topic_grow(t, partitions);
    if (rc < 0) {
        seterr(err, STREAM_ESTORAGE, "creating topic '%.100s': %s", name, tern_strerror(rc));
        catalog_del_topic(m->cat, name);
        topic_free(t, true);
        return -1;
    }
    topic_link(m, t);
    TLOG_INFO("stream", "event=topic_created topic=%s partitions=%" PRId32 " prefix=%s", name,
              partitions, prefix);
    if (out)
        *out = t;
    return 0;
}

int stream_delete(struct stream_mgr *m, const char *name, struct stream_err *err)
{
    struct stream_topic *t = stream_find(m, name, strlen(name));
    if (!t) {
        seterr(err, STREAM_ENOTFOUND, "This server does not host this topic-partition.");
        return -1;
    }
    int rc = catalog_del_topic(m->cat, name);
    if (rc < 0) {
        seterr(err, STREAM_ESTORAGE, "deleting topic '%.100s': %s", name, tern_strerror(rc));
        return -1;
    }
    topic_unlink(m, t);
    topic_free(t, true);
    TLOG_INFO("stream", "event=topic_deleted topic=%s", name);
    return 0;
}

int stream_add_partitions(struct stream_mgr *m, const char *name, int32_t count, bool validate_only,
                          struct stream_err *err)
{
    struct stream_topic *t = stream_find(m, name, strlen(name));
    if (!t) {
        seterr(err, STREAM_ENOTFOUND, "Topic '%.200s' does not exist.", name);
        return -1;
    }
    if (count <= t->nparts || count > m->d.max_partitions) {
        seterr(err, STREAM_EINVALID_PARTS,
               "Topic currently has %" PRId32 " partitions, %" PRId32 " would not be an increase.",
               t->nparts, count);
        return -1;
    }
    if (validate_only)
        return 0;
    int rc = topic_persist(m, t, count);
    if (rc == 0)
        rc = topic_grow(t, count);
    if (rc < 0) {
        seterr(err, STREAM_ESTORAGE, "adding partitions: %s", tern_strerror(rc));
        return -1;
    }
    return 0;
}

int stream_set_configs(struct stream_mgr *m, const char *name, const struct stream_kv *configs,
                       size_t n, bool validate_only, struct stream_err *err)
{
    struct stream_topic *t = stream_find(m, name, strlen(name));
    if (!t) {
        seterr(err, STREAM_ENOTFOUND, "Topic '%.200s' does not exist.", name);
        return -1;
    }
    struct table *cfg = cfg_build(configs, n, err);
    if (!cfg)
        return -1;
    if (validate_only) {
        table_free(cfg);
        return 0;
    }
    struct table *old = t->configs;
    t->configs = cfg;
    int rc = topic_persist(m, t, t->nparts);
    if (rc < 0) {
        t->configs = old;
        table_free(cfg);
        seterr(err, STREAM_ESTORAGE, "altering configs: %s", tern_strerror(rc));
        return -1;
    }
    table_free(old);
    cfg_derive(t->configs, &t->cfg);
    for (int32_t i = 0; i < t->nparts; i++) {
        struct log_config lc = *log_get_config(t->parts[i]->log);
        log_cfg_of(&t->cfg, &lc);
        log_set_config(t->parts[i]->log, &lc);
    }
    return 0;
}

/* ---- appends ------------------------------------------------------------------------------ */

/* Checks that records hold exactly one whole batch (structure, size, CRC); fills *h. Returns 0
 * or -1 with *err. */
static int check_batch(struct stream_part *p, const uint8_t *records, size_t len,
                       struct batch_hdr *h, struct stream_err *err)
{
    size_t max = (size_t)p->t->cfg.max_message_bytes + BATCH_LOG_OVERHEAD;
    int64_t size = batch_parse(records, len, SIZE_MAX, h);
    if (size < 0) {
        seterr(err, STREAM_ECORRUPT, "malformed record batch: %s", tern_strerror((int)size));
        return -1;
    }
    if ((size_t)size < len) {
        seterr(err, STREAM_EMULTI_BATCH, "more than one record batch in one append");
        return -1;
    }
    if ((size_t)size > max) {
        seterr(err, STREAM_ETOO_LARGE,
               "The request included a message larger than the max message size the "
               "server will accept (%" PRId64 " > %zu).",
               size, max);
        return -1;
    }
    if (batch_check_crc(records, h) < 0) {
        seterr(err, STREAM_ECORRUPT, "record batch CRC mismatch");
        return -1;
    }
    return 0;
}

/* The idempotence verdict of one batch: 1 append, 0 duplicate (res filled), -1 error. */
static int check_sequence(struct stream_part *p, const struct batch_hdr *h,
                          struct stream_append_result *res, struct stream_err *err)
{
    struct producers_batch dup;
    int v = producers_check(p->prod, h->producer_id, h->producer_epoch, h->base_sequence,
                            h->last_offset_delta + 1, &dup);
    switch (v) {
    case PRODUCERS_APPEND:
        return 1;
    case PRODUCERS_DUPLICATE:
        *res = (struct stream_append_result){dup.base_offset, dup.last_offset, -1, true};
        return 0;
    case PRODUCERS_INVALID_EPOCH:
        seterr(err, STREAM_EINVALID_EPOCH, "Producer %" PRId64 " epoch %d is stale", h->producer_id,
               h->producer_epoch);
        return -1;
    case PRODUCERS_OUT_OF_ORDER:
        seterr(err, STREAM_EOUT_OF_ORDER,
               "Out of order sequence number for producer %" PRId64 ": %" PRId32, h->producer_id,
               h->base_sequence);
        return -1;
    default:
        seterr(err, STREAM_ECORRUPT, "invalid producer fields in record batch");
        return -1;
    }
}

static void set_log_append_time(uint8_t *batch, size_t size, int64_t now_ms)
{
    uint16_t attr = (uint16_t)(batch[21] << 8 | batch[22]);
    attr |= BATCH_ATTR_LOG_APPEND_TIME;
    batch[21] = (uint8_t)(attr >> 8);
    batch[22] = (uint8_t)attr;
    for (int i = 0; i < 8; i++)
        batch[35 + i] = (uint8_t)((uint64_t)now_ms >> (56 - 8 * i));
    batch_update_crc(batch, size);
}

static void notify(struct stream_part *p)
{
    /* callbacks may unlink themselves (and others): walk a snapshot of the next pointers */
    struct stream_watch *w = p->watchers;
    while (w) {
        struct stream_watch *next = w->next;
        w->cb(w->arg, p);
        w = next;
    }
}

int stream_append(struct stream_part *p, uint8_t *records, size_t len, int64_t now_ms,
                  struct stream_append_result *res, struct stream_err *err)
{
    struct batch_hdr h;
    if (check_batch(p, records, len, &h, err) < 0)
        return -1;
    /* a retried batch is answered with its original offsets */
    int v = check_sequence(p, &h, res, err);
    if (v <= 0)
        return v;
    bool lat = p->t->cfg.log_append_time;
    if (lat)
        set_log_append_time(records, len, now_ms);
    struct log_append_info info;
    int rc = log_append_checked(p->log, records, len, now_ms, &info); /* CRC checked above */
    if (rc < 0) {
        seterr(err, rc == TERN_ETOOBIG ? STREAM_ETOO_LARGE : STREAM_ESTORAGE,
               "append to %s-%" PRId32 " failed: %s", p->t->name, p->index, tern_strerror(rc));
        return -1;
    }
    h.base_offset = info.base_offset;
    producers_apply(p->prod, &h);
    *res = (struct stream_append_result){.base_offset = info.base_offset,
                                         .last_offset = info.last_offset,
                                         .log_append_time = lat ? now_ms : -1};
    p->since_snap += len;
    uint64_t every = (uint64_t)p->t->cfg.segment_bytes;
    if (p->since_snap >= (every > SNAPSHOT_MIN_BYTES ? every : SNAPSHOT_MIN_BYTES))
        snapshot_later(p);
    notify(p);
    return 0;
}

void stream_watch(struct stream_part *p, struct stream_watch *w)
{
    w->p = p;
    w->prev = NULL;
    w->next = p->watchers;
    if (p->watchers)
        p->watchers->prev = w;
    p->watchers = w;
}

void stream_unwatch(struct stream_watch *w)
{
    if (!w->p)
        return;
    if (w->prev)
        w->prev->next = w->next;
    else
        w->p->watchers = w->next;
    if (w->next)
        w->next->prev = w->prev;
    w->p = NULL;
    w->prev = w->next = NULL;
}

/* ---- open and close ----------------------------------------------------------------------- */

struct load_ctx {
    struct stream_mgr *m;
    char *errbuf;
    size_t errlen;
};

static int load_topic(void *arg, const struct catalog_topic *ct)
{
    struct load_ctx *x = arg;
    struct stream_topic *t =
        topic_alloc(x->m, ct->name, ct->log_prefix, ct->configs ? table_dup(ct->configs) : NULL);
    int rc = topic_grow(t, ct->partitions);
    if (rc < 0) {
        snprintf(x->errbuf, x->errlen, "topic %s: opening its logs: %s", ct->name,
                 tern_strerror(rc));
        topic_free(t, false);
        return rc;
    }
    topic_link(x->m, t);
    return 0;
}

/* Deletes partition logs ("k.<hex>.<n>") of no known topic: left by a crash between a topic's
 * catalog delete and its log deletes, or by a create whose catalog write failed. */
static void drop_orphan_logs(struct stream_mgr *m)
{
    struct strmap known;
    strmap_init(&known);
    for (size_t i = 0; i < m->ntopics; i++)
        strmap_put(&known, m->topics[i]->prefix, PREFIX_LEN, m->topics[i]);
    size_t n = store_log_count(m->st), k = 0;
    char **names = tern_xcalloc(n + 1, sizeof(*names));
    for (size_t i = 0; i < n; i++) {
        const char *name = store_log_name(m->st, i);
        if (name && strncmp(name, "k.", 2) == 0 && strlen(name) > PREFIX_LEN &&
            name[PREFIX_LEN] == '.' && !strmap_get(&known, name, PREFIX_LEN))
            names[k++] = tern_xstrdup(name);
    }
    for (size_t i = 0; i < k; i++) {
        int rc = store_log_delete(m->st, names[i]);
        TLOG_INFO("stream", "event=orphan_partition_dropped log=%s result=\"%s\"", names[i],
                  rc == 0 ? "deleted" : tern_strerror(rc));
        free(names[i]);
    }
    free(names);
    strmap_fini(&known);
}

size_t stream_mgr_expire_producers(struct stream_mgr *m, int64_t now_ms)
{
    size_t total = 0;
    for (size_t i = 0; i < m->ntopics; i++) {
        struct stream_topic *t = m->topics[i];
        for (int32_t k = 0; k < t->nparts; k++) {
            struct stream_part *p = t->parts[k];
            size_t n = producers_expire(p->prod, now_ms - m->d.producer_expiration_ms);
            if (n == 0)
                continue;
            p->snap_next = -1; /* the snapshot on disk still holds them */
            total += n;
            TLOG_INFO("stream",
                      "event=producers_expired topic=%s partition=%" PRId32 " expired=%zu left=%zu",
                      t->name, k, n, producers_count(p->prod));
        }
    }
    return total;
}

static void on_expire(uv_timer_t *h)
{
    struct expire_timer *e = h->data;
    if (e->m)
        stream_mgr_expire_producers(e->m, clock_wall_ms());
}

static void on_expire_closed(uv_handle_t *h)
{
    free(h->data);
}

int stream_mgr_open(uv_loop_t *loop, struct store *st, struct catalog *cat,
                    const struct stream_defaults *d, struct stream_mgr **out, char *errbuf,
                    size_t errlen)
{
    struct stream_mgr *m = tern_xcalloc(1, sizeof(*m));
    m->loop = loop;
    m->st = st;
    m->cat = cat;
    m->d = *d;
    if (m->d.partitions < 1)
        m->d.partitions = 1;
    if (m->d.max_partitions < 1)
        m->d.max_partitions = 10000;
    if (m->d.producer_expiration_ms <= 0)
        m->d.producer_expiration_ms = STREAM_PRODUCER_EXPIRATION_MS;
    if (m->d.producer_expiration_check_ms == 0)
        m->d.producer_expiration_check_ms = STREAM_PRODUCER_EXPIRATION_CHECK_MS;
    strmap_init(&m->by_name);
    struct load_ctx x = {m, errbuf, errlen};
    struct catalog_loader l = {.topic = load_topic};
    int rc = catalog_load(cat, &l, &x);
    if (rc < 0) {
        if (errbuf && !errbuf[0])
            snprintf(errbuf, errlen, "loading topics: %s", catalog_errmsg(cat));
        stream_mgr_close(m);
        return rc;
    }
    drop_orphan_logs(m);
    m->expire = tern_xcalloc(1, sizeof(*m->expire));
    m->expire->m = m;
    m->expire->t.data = m->expire;
    uv_timer_init(loop, &m->expire->t);
    uv_timer_start(&m->expire->t, on_expire, m->d.producer_expiration_check_ms,
                   m->d.producer_expiration_check_ms);
    *out = m;
    return 0;
}

int stream_mgr_snapshot(struct stream_mgr *m)
{
    int first = 0, saved = 0;
    for (size_t i = 0; i < m->ntopics; i++) {
        struct stream_topic *t = m->topics[i];
        for (int32_t k = 0; k < t->nparts; k++) {
            int rc = save_snapshot(t->parts[k]);
            if (rc < 0) {
                TLOG_ERRNO("stream", rc,
                           "event=producer_snapshot_failed topic=%s partition=%" PRId32, t->name,
                           k);
                first = first ? first : rc;
            } else if (producers_count(t->parts[k]->prod)) {
                saved++;
            }
        }
    }
    TLOG_INFO("stream", "event=producer_snapshots partitions=%d", saved);
    return first;
}

void stream_mgr_close(struct stream_mgr *m)
{
    if (!m)
        return;
    if (m->expire) {
        m->expire->m = NULL;
        uv_close((uv_handle_t *)&m->expire->t, on_expire_closed);
    }
    for (size_t i = 0; i < m->ntopics; i++)
        topic_free(m->topics[i], false);
    free(m->topics);
    strmap_fini(&m->by_name);
    free(m);
}

const struct stream_defaults *stream_mgr_defaults(const struct stream_mgr *m)
{
    return &m->d;
}
