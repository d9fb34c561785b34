/*
 * queue.c - a durable message queue: a log of messages plus delivery state (see queue.h).
 *
 * Message log `<name>`: one message is one record of an uncompressed RecordBatch v2 batch
 * (store/batch.h), no record headers:
 *
 *   key (the envelope)
 *       0   u8   flags           bit 0: persistent; other bits zero
 *       1   u8   exchange length (0..255), then the exchange name
 *       .   u8   routing key length (0..255), then the routing key
 *       .   u32  props length (big-endian), then the props (opaque protocol properties)
 *   value      the body (never null: an empty body has length 0)
 *   timestamp  the broker's receive time, ms since the epoch
 *
 * Ack log `<name>.a`: records with a null key whose value is one entry:
 *
 *   u8 1  settled ranges: pairs (start, count) of zig-zag varints up to the end of the value;
 *         message offsets [start, start + count) are settled (acked, purged or dead)
 *   u8 2  truncate: one zig-zag varint X; offsets >= X are unsettled again (the message log
 *         lost its unsynced tail in a crash and will hand those offsets to new messages)
 *   u8 3  delivered: one zig-zag varint X; every offset below X had been handed out, so an
 *         unsettled one found after a restart is delivered with redelivered=true, as RabbitMQ
 *         does (written with the acks of a flush, in snapshots and at close)
 *
 * Replay applies entries in log order. Settlement is permanent, so ranges form a union: a
 * snapshot is nothing but ranges covering [0, low) and every interval, and a torn snapshot
 * loses nothing because the entries before it are deleted only once it is durable.
 *
 * Delivery state (memory is independent of the backlog):
 *   next      the read cursor: every offset below it was handed out, skipped or requeued
 *   heap      requeued offsets (min-heap): delivered before the cursor's messages
 *   acked     settled offsets (broker/ackset.h); its low-water mark is the lowest unsettled
 *             offset, and the message log is deleted below it (at most every
 *             reclaim_interval_ms), so a segment whose messages are all acked goes away
 *   ready     unsettled, undelivered messages: heap + unsettled in [next, end) + buffered
 *   unacked   delivered, not yet settled (the channel keeps tag -> offset)
 * Invariants: low <= every heap entry < next <= log end; ready and unacked exact.
 *
 * Group commit: publishes are buffered; the engine's uv_check handle flushes each dirty queue
 * once per loop iteration: one append of every buffered message, one log_wait_durable for the
 * publishers that wait, one append of the iteration's acks, then a dispatch pass. Messages are
 * delivered once appended (before their fsync, as RabbitMQ does); confirms wait for it. An
 * acked offset may therefore vanish from the message log in a crash: recovery truncates the
 * settled set to the log's end and records that (entry type 2) before new appends.
 */
#include "broker/queue.h"

#include "base/buf.h"
#include "base/clock.h"
#include "base/tern.h"
#include "base/tlog.h"
#include "base/varint.h"
#include "broker/ackset.h"
#include "os/file.h"
#include "store/batch.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ENV_PERSISTENT 0x01
#define ENV_FIXED 7 /* flags, two length bytes, props length */
#define ACK_RANGES 1
#define ACK_TRUNCATE 2
#define ACK_DELIVERED 3
#define ACK_RECORD_MAX (32u << 10)  /* value bytes per ack log record */
#define APPEND_BATCH_MAX (1u << 20) /* bytes per appended batch (one record may exceed it) */
#define REC_OVERHEAD 32             /* bound on a record's framing inside a batch */
#define SCAN_CHUNK (1u << 20)       /* recovery reads */
#define REQUEUE_READAHEAD (64u << 10)
#define BUF_KEEP (64u << 10) /* buffers larger than this are freed after use */
#define ARRAY_KEEP 1024      /* so are arrays with more elements */
#define ACK_NAME_SUFFIX ".a"
#define QUEUE_NAME_MAX 198 /* store names are <= 200 with the suffix */

struct pub_rec {
    size_t off;    /* key at off, value right after it, in q->pub */
    uint32_t klen; /* envelope */
    uint32_t vlen; /* body */
    int64_t ts;
};

struct pub_waiter {
    queue_durable_cb cb;
    void *arg;
};

/* The publishers waiting for one flush's fsync. Outlives the queue when orphaned (q NULL,
 * n 0): the log still answers it, and then it is only freed. */
struct flush_group {
    struct queue *q;
    struct flush_group *prev, *next;
    size_t n;
    struct pub_waiter w[];
};

/* A snapshot waiting for its fsync before the ack log is deleted below it. */
struct snap_wait {
    struct queue *q; /* NULL once the queue is gone */
    struct log *alog;
    int64_t below;
};

/* Whole batches read from the message log, with an iterator for sequential access. */
struct rcache {
    struct buf b;
    int64_t first, end; /* offsets held: [first, end) */
    size_t bpos;        /* position of the batch h describes */
    struct batch_hdr h;
    struct batch_iter it;
    int64_t it_next; /* offset it yields next; -1 when not positioned */
};

struct queue_consumer {
    struct queue_consumer_ops ops;
    void *ctx;
};

struct queue {
    struct queue_engine *e;
    char *name, *ack_name;
    struct log *log, *alog;
    bool durable, wait_fsync, closing, dispatching;
    bool dirty, kicked; /* listed in the engine's arrays */
    void *user;
    /* publishes not yet appended */
    struct buf pub;
    struct pub_rec *recs;
    size_t nrecs, caprecs;
    struct pub_waiter *waiters;
    size_t nwaiters, capwaiters;
    struct flush_group *groups; /* waiting for an fsync */
    /* delivery */
    int64_t next;
    int64_t delivered_mark;  /* the last ACK_DELIVERED written */
    int64_t redeliver_below; /* from recovery: unsettled offsets below it were delivered */
    int64_t *heap;
    size_t nheap, capheap;
    struct ackset acked;
    uint64_t ready, unacked;
    struct rcache cur, rq;
    struct queue_consumer **cons;
    size_t ncons, capcons, rr;
    /* ack persistence */
    struct ackset_range *pend; /* settled, not yet appended */
    size_t npend, cappend;
    struct snap_wait *snap;
    uint64_t snap_bytes; /* size of the last snapshot */
    uint64_t reclaim_ms;
    uint64_t burst_ns; /* the last round that needed a large buffer (burst_over) */
    bool holding;      /* listed in the engine's holders */
    /* encoding scratch */
    struct buf scratch, ackbuf;
    size_t *ackrec;
    size_t nackrec, capackrec;
    struct batch_rec_in *in;
    size_t capin;
};

struct queue_engine {
    uv_loop_t *loop;
    struct store *st;
    struct queue_tuning t;
    uv_check_t check;
    uv_idle_t idle;
    uv_timer_t trim; /* runs while holders is not empty */
    bool active, freeing;
    int open_handles;
    size_t nqueues;
    struct queue **dirty, **kick; /* entries NULLed when their queue closes */
    size_t ndirty, capdirty, nkick, capkick;
    struct queue **holders; /* queues keeping burst-sized buffers (burst_over) */
    size_t nholders, capholders;
};

void queue_tuning_default(struct queue_tuning *t)
{
    *t = (struct queue_tuning){
        .ack_snapshot_bytes = 4u << 20,
        .ack_segment_bytes = 1u << 20,
        .reclaim_interval_ms = 1000,
        .dispatch_batch = 32768,
        .readahead_bytes = 256u << 10,
        .publish_flush_bytes = 1u << 20,
        .ack_sync_gap_ms = 10,
    };
}

/* Makes room for element n of an array of cap elements; returns the (moved) array. */
static void *grow(void *arr, size_t *cap, size_t n, size_t elem)
{
    if (n < *cap)
        return arr;
    *cap = *cap ? *cap * 2 : 16;
    return tern_xrealloc(arr, *cap * elem);
}

#define PUSH(arr, n, cap, v)                                                                       \
    do {                                                                                           \
        (arr) = grow((arr), &(cap), (n), sizeof(*(arr)));                                          \
        (arr)[(n)++] = (v);                                                                        \
    } while (0)

/* Scratch buffers and arrays that a burst made large are kept while the queue stays busy
 * (allocating and faulting in a fresh megabyte every iteration cost a quarter of the publish
 * path) and freed once no round has needed them for BURST_COOL_NS. */
#define BURST_COOL_NS 1000000000ull

/* True when a round that used `used` of a large buffer (limit `keep`) may free it. */
static void hold(struct queue *q);

static bool burst_over(struct queue *q, size_t used, size_t keep)
{
    uint64_t now = clock_mono_ns();
    if (used > keep) {
        q->burst_ns = now;
        hold(q);
        return false;
    }
    return now - q->burst_ns > BURST_COOL_NS;
}

static void buf_release(struct queue *q, struct buf *b, size_t used)
{
    if (b->cap > BUF_KEEP && burst_over(q, used, BUF_KEEP))
        buf_fini(b);
    else
        buf_clear(b);
}

/* Frees an emptied array that a burst made large, once the burst is over. */
#define TRIM(q, arr, cap, used)                                                                    \
    do {                                                                                           \
        if ((cap) > ARRAY_KEEP && burst_over((q), (used), ARRAY_KEEP)) {                           \
            free(arr);                                                                             \
            (arr) = NULL;                                                                          \
            (cap) = 0;                                                                             \
        }                                                                                          \
    } while (0)

/* ---- engine: the per-iteration flush and dispatch -------------------------------------- */

static void flush_all(struct queue *q);

static void on_idle(uv_idle_t *h)
{
    (void)h; /* only keeps the loop from blocking in poll while work is pending */
}

/* Runs the entries listed when it started; entries added meanwhile wait for the next turn. */
static void run_list(struct queue ***list, size_t *n, bool flush)
{
    size_t n0 = *n;
    for (size_t i = 0; i < n0; i++) {
        struct queue *q = (*list)[i];
        if (!q)
            continue;
        if (flush) {
            q->dirty = false;
            flush_all(q);
        } else {
            q->kicked = false;
        }
        queue_dispatch(q);
    }
    if (n0) {
        memmove(*list, *list + n0, (*n - n0) * sizeof(**list));
        *n -= n0;
    }
}

static void on_check(uv_check_t *h)
{
    struct queue_engine *e = h->data;
    run_list(&e->dirty, &e->ndirty, true);
    run_list(&e->kick, &e->nkick, false);
    if (e->ndirty == 0 && e->nkick == 0) {
        uv_idle_stop(&e->idle);
        uv_check_stop(&e->check);
        e->active = false;
    }
}

static void engine_wake(struct queue_engine *e)
{
    if (e->active || e->freeing)
        return;
    uv_idle_start(&e->idle, on_idle);
    uv_check_start(&e->check, on_check);
    e->active = true;
}

static void forget_in(struct queue **list, size_t n, const struct queue *q)
{
    for (size_t i = 0; i < n; i++)
        if (list[i] == q)
            list[i] = NULL;
}

struct queue_engine *queue_engine_new(uv_loop_t *loop, struct store *st)
{
    struct queue_engine *e = tern_xcalloc(1, sizeof(*e));
    e->loop = loop;
    e->st = st;
    queue_tuning_default(&e->t);
    uv_check_init(loop, &e->check);
    uv_idle_init(loop, &e->idle);
    uv_timer_init(loop, &e->trim);
    e->check.data = e;
    e->idle.data = e;
    e->trim.data = e;
    e->open_handles = 3;
    return e;
}

void queue_engine_set_tuning(struct queue_engine *e, const struct queue_tuning *t)
{
    e->t = *t;
    if (e->t.dispatch_batch == 0)
        e->t.dispatch_batch = 1;
}

static void on_handle_closed(uv_handle_t *h)
{
    struct queue_engine *e = h->data;
    if (--e->open_handles > 0)
        return;
    free(e->dirty);
    free(e->kick);
    free(e->holders);
    free(e);
}

void queue_engine_free(struct queue_engine *e)
{
    TERN_ASSERT(e->nqueues == 0);
    e->freeing = true;
    uv_close((uv_handle_t *)&e->check, on_handle_closed);
    uv_close((uv_handle_t *)&e->idle, on_handle_closed);
    uv_close((uv_handle_t *)&e->trim, on_handle_closed);
}

static void mark_dirty(struct queue *q)
{
    if (q->dirty || q->closing)
        return;
    q->dirty = true;
    PUSH(q->e->dirty, q->e->ndirty, q->e->capdirty, q);
    engine_wake(q->e);
}

void queue_kick(struct queue *q)
{
    if (q->kicked || q->closing)
        return;
    q->kicked = true;
    PUSH(q->e->kick, q->e->nkick, q->e->capkick, q);
    engine_wake(q->e);
}

/* ---- freeing burst-sized buffers once the burst is over -------------------------------- */

/* Frees q's large buffers and arrays when they are empty and no round needed them for
 * BURST_COOL_NS. Returns true when q holds nothing large any more. */
static bool trim_cool(struct queue *q)
{
    if (clock_mono_ns() - q->burst_ns <= BURST_COOL_NS)
        return false;
    if (q->nrecs == 0)
        buf_release(q, &q->pub, 0);
    buf_release(q, &q->scratch, 0);
    if (q->nackrec == 0)
        buf_release(q, &q->ackbuf, 0);
    if (q->nrecs == 0)
        TRIM(q, q->recs, q->caprecs, 0);
    if (q->nwaiters == 0)
        TRIM(q, q->waiters, q->capwaiters, 0);
    if (q->nrecs == 0 && q->nackrec == 0)
        TRIM(q, q->in, q->capin, 0);
    if (q->nackrec == 0)
        TRIM(q, q->ackrec, q->capackrec, 0);
    if (q->npend == 0)
        TRIM(q, q->pend, q->cappend, 0);
    return q->pub.cap <= BUF_KEEP && q->scratch.cap <= BUF_KEEP && q->ackbuf.cap <= BUF_KEEP &&
           q->caprecs <= ARRAY_KEEP && q->capwaiters <= ARRAY_KEEP && q->capin <= ARRAY_KEEP &&
           q->capackrec <= ARRAY_KEEP && q->cappend <= ARRAY_KEEP;
}

static void on_trim(uv_timer_t *t)
{
    struct queue_engine *e = t->data;
    size_t k = 0;
    for (size_t i = 0; i < e->nholders; i++) {
        struct queue *q = e->holders[i];
        if (q && trim_cool(q))
            q->holding = false;
        else if (q)
            e->holders[k++] = q;
    }
    e->nholders = k;
    if (k == 0)
        uv_timer_stop(t);
}

static void hold(struct queue *q)
{
    struct queue_engine *e = q->e;
    if (q->holding || q->closing || e->freeing)
        return;
    q->holding = true;
    PUSH(e->holders, e->nholders, e->capholders, q);
    if (!uv_is_active((uv_handle_t *)&e->trim))
        uv_timer_start(&e->trim, on_trim, BURST_COOL_NS / 1000000 + 100,
                       BURST_COOL_NS / 1000000 + 100);
}

/* ---- appending batches ----------------------------------------------------------------- */

static size_t rec_bound(const struct batch_rec_in *r)
{
    return (r->key ? (size_t)r->key_len : 0) + (r->value ? (size_t)r->value_len : 0) + REC_OVERHEAD;
}

static void ensure_in(struct queue *q, size_t n)
{
    if (n <= q->capin)
        return;
    while (q->capin < n)
        q->capin = q->capin ? q->capin * 2 : 64;
    q->in = tern_xrealloc(q->in, q->capin * sizeof(*q->in));
}

/* Appends in[0..n) to log as batches of at most APPEND_BATCH_MAX bytes. Returns 0 or the
 * append error; *done counts the records appended. */
static int append_records(struct queue *q, struct log *log, size_t n, size_t *done)
{
    size_t cap = log_get_config(log)->max_batch_bytes;
    if (cap > APPEND_BATCH_MAX)
        cap = APPEND_BATCH_MAX;
    size_t i = 0, used = 0;
    int rc = 0;
    while (i < n && rc == 0) {
        size_t bytes = BATCH_HEADER_SIZE, j = i;
        while (j < n && (j == i || bytes + rec_bound(&q->in[j]) <= cap) && j - i < INT32_MAX)
            bytes += rec_bound(&q->in[j++]);
        q->scratch.len = 0;
        uint8_t *out = buf_reserve(&q->scratch, bytes);
        int64_t size = batch_encode(out, bytes, q->in + i, (int)(j - i));
        TERN_ASSERT(size > 0);
        used = bytes > used ? bytes : used;
        rc = log_append_checked(log, out, (size_t)size, clock_wall_ms(), NULL);
        if (rc == 0)
            i = j;
    }
    buf_release(q, &q->scratch, used);
    *done = i;
    return rc;
}

/* ---- publish and the durability of a flush --------------------------------------------- */

static void group_answer(struct flush_group *g, int status)
{
    for (size_t i = 0; i < g->n; i++)
        g->w[i].cb(g->w[i].arg, status);
    g->n = 0;
}

static void group_unlink(struct flush_group *g)
{
    struct queue *q = g->q;
    if (g->prev)
        g->prev->next = g->next;
    else
        q->groups = g->next;
    if (g->next)
        g->next->prev = g->prev;
    g->q = NULL;
    g->prev = g->next = NULL;
}

static void on_group_durable(void *arg, int status)
{
    struct flush_group *g = arg;
    if (g->q)
        group_unlink(g);
    group_answer(g, status);
    free(g);
}

/* Moves the waiters of the buffered messages into a group (NULL when none wait). */
static struct flush_group *take_waiters(struct queue *q)
{
    if (q->nwaiters == 0)
        return NULL;
    struct flush_group *g = tern_xmalloc(sizeof(*g) + q->nwaiters * sizeof(g->w[0]));
    *g = (struct flush_group){.n = q->nwaiters};
    memcpy(g->w, q->waiters, q->nwaiters * sizeof(g->w[0]));
    q->nwaiters = 0;
    return g;
}

/* Waits for the fsync covering everything appended, or answers g with err at once. */
static void group_wait(struct queue *q, struct flush_group *g, int err)
{
    if (err == 0) {
        g->q = q; /* linked first: the log may answer before log_wait_durable returns */
        g->next = q->groups;
        if (q->groups)
            q->groups->prev = g;
        q->groups = g;
        int rc = log_wait_durable(q->log, log_end_offset(q->log), on_group_durable, g);
        if (rc == 0)
            return;
        group_unlink(g);
        err = rc == 1 ? 0 : rc;
    }
    group_answer(g, err);
    free(g);
}

/* Appends every buffered message. Returns 0 or the append error; *g gets their waiters. */
static int append_buffered(struct queue *q, struct flush_group **g)
{
    *g = NULL;
    if (q->nrecs == 0)
        return 0;
    ensure_in(q, q->nrecs);
    for (size_t i = 0; i < q->nrecs; i++) {
        const struct pub_rec *r = &q->recs[i];
        q->in[i] = (struct batch_rec_in){.key = q->pub.p + r->off,
                                         .key_len = (int32_t)r->klen,
                                         .value = q->pub.p + r->off + r->klen,
                                         .value_len = (int32_t)r->vlen,
                                         .timestamp = r->ts};
    }
    size_t done = 0;
    int rc = append_records(q, q->log, q->nrecs, &done);
    if (rc < 0) {
        q->ready -= q->nrecs - done; /* never in the log: gone */
        TLOG_ERRNO("queue", rc, "event=append_failed queue=%s lost=%zu", q->name, q->nrecs - done);
    }
    size_t nwaiters = q->nwaiters, nrecs = q->nrecs;
    *g = take_waiters(q);
    q->nrecs = 0;
    buf_release(q, &q->pub, q->pub.len);
    TRIM(q, q->recs, q->caprecs, nrecs);
    TRIM(q, q->waiters, q->capwaiters, nwaiters);
    TRIM(q, q->in, q->capin, nrecs);
    return rc;
}

/* Appends every buffered message and registers their waiters for the covering fsync. */
static void flush_messages(struct queue *q)
{
    struct flush_group *g;
    int rc = append_buffered(q, &g);
    if (g)
        group_wait(q, g, rc);
}

static void env_encode(struct buf *b, const struct msg *m)
{
    buf_put_u8(b, m->persistent ? ENV_PERSISTENT : 0);
    buf_put_u8(b, (uint8_t)m->exchange_len);
    buf_put(b, m->exchange, m->exchange_len);
    buf_put_u8(b, (uint8_t)m->rk_len);
    buf_put(b, m->rk, m->rk_len);
    buf_put_u32(b, (uint32_t)m->props_len);
    buf_put(b, m->props, m->props_len);
}

/* Validates m; returns its envelope size or a negative error. */
static int64_t publish_check(const struct queue *q, const struct msg *m)
{
    if (m->exchange_len > MSG_SHORTSTR_MAX || m->rk_len > MSG_SHORTSTR_MAX)
        return -EINVAL;
    uint64_t klen = ENV_FIXED + (uint64_t)m->exchange_len + m->rk_len + m->props_len;
    uint64_t need = klen + m->body_len + REC_OVERHEAD + BATCH_HEADER_SIZE;
    if (m->props_len > UINT32_MAX || m->body_len > INT32_MAX ||
        need > log_get_config(q->log)->max_batch_bytes)
        return TERN_ETOOBIG;
    return (int64_t)klen;
}

int queue_publish(struct queue *q, const struct msg *m, queue_durable_cb cb, void *arg)
{
    if (q->closing)
        return TERN_ECLOSED;
    int64_t klen = publish_check(q, m);
    if (klen < 0)
        return (int)klen;
    if (q->pub.len && q->pub.len + (uint64_t)klen + m->body_len > q->e->t.publish_flush_bytes)
        flush_messages(q); /* bounds the buffer; this message starts the next batch */
    if (log_error(q->log))
        return TERN_EREADONLY;
    struct pub_rec r = {.off = q->pub.len,
                        .klen = (uint32_t)klen,
                        .vlen = (uint32_t)m->body_len,
                        .ts = m->timestamp_ms};
    env_encode(&q->pub, m);
    buf_put(&q->pub, m->body, m->body_len);
    PUSH(q->recs, q->nrecs, q->caprecs, r);
    q->ready++;
    mark_dirty(q);
    if (!cb || !q->wait_fsync || !m->persistent)
        return 1;
    PUSH(q->waiters, q->nwaiters, q->capwaiters, ((struct pub_waiter){cb, arg}));
    return 0;
}

/* ---- the ack log ----------------------------------------------------------------------- */

static void on_ack_synced(void *arg, int status)
{
    (void)arg; /* nothing waits: the waiter only starts the group commit of the ack log */
    (void)status;
}

static void ackrec_start(struct queue *q, uint8_t type)
{
    PUSH(q->ackrec, q->nackrec, q->capackrec, q->ackbuf.len);
    buf_put_u8(&q->ackbuf, type);
}

/* Encodes ranges as type-1 records of at most ACK_RECORD_MAX bytes into q->ackbuf. */
static void ack_encode_ranges(struct queue *q, const struct ackset_range *r, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        uint8_t tmp[2 * VARINT_MAX_BYTES];
        int k = varint_encode(r[i].start, tmp);
        k += varint_encode(r[i].end - r[i].start, tmp + k);
        if (q->nackrec == 0 ||
            q->ackbuf.len - q->ackrec[q->nackrec - 1] + (size_t)k > ACK_RECORD_MAX)
            ackrec_start(q, ACK_RANGES);
        buf_put(&q->ackbuf, tmp, (size_t)k);
    }
}

/* Appends the records encoded in q->ackbuf. Returns 0 or the append error. */
static int ack_append(struct queue *q)
{
    ensure_in(q, q->nackrec);
    int64_t now = clock_wall_ms();
    for (size_t i = 0; i < q->nackrec; i++) {
        size_t end = i + 1 < q->nackrec ? q->ackrec[i + 1] : q->ackbuf.len;
        q->in[i] = (struct batch_rec_in){.value = q->ackbuf.p + q->ackrec[i],
                                         .value_len = (int32_t)(end - q->ackrec[i]),
                                         .timestamp = now};
    }
    size_t done;
    int rc = q->nackrec ? append_records(q, q->alog, q->nackrec, &done) : 0;
    size_t nrec = q->nackrec;
    q->nackrec = 0;
    buf_release(q, &q->ackbuf, q->ackbuf.len);
    TRIM(q, q->ackrec, q->capackrec, nrec);
    TRIM(q, q->in, q->capin, nrec);
    if (rc < 0)
        TLOG_ERRNO("queue", rc, "event=ack_append_failed queue=%s", q->name);
    else if (log_wait_durable(q->alog, log_end_offset(q->alog), on_ack_synced, NULL) < 0)
        rc = log_error(q->alog);
    return rc;
}

/* Records [start, end) as settled: in memory now, in the ack log at the next flush. */
static void settle(struct queue *q, int64_t start, int64_t end)
{
    ackset_add(&q->acked, start, end);
    if (q->npend && q->pend[q->npend - 1].end == start)
        q->pend[q->npend - 1].end = end;
    else
        PUSH(q->pend, q->npend, q->cappend, ((struct ackset_range){start, end}));
}

static void ack_encode_delivered(struct queue *q, int64_t mark)
{
    uint8_t tmp[VARINT_MAX_BYTES];
    ackrec_start(q, ACK_DELIVERED);
    buf_put(&q->ackbuf, tmp, (size_t)varint_encode(mark, tmp));
    q->delivered_mark = mark;
}

/* Appends the acks settled since the last flush, with the delivered mark when it moved. At
 * close the mark is written even without acks. */
static void flush_acks_mark(struct queue *q, bool closing)
{
    bool mark = q->next > q->delivered_mark && (q->npend > 0 || closing);
    if (q->npend == 0 && !mark)
        return;
    if (q->npend > 0)
        ack_encode_ranges(q, q->pend, q->npend);
    size_t npend = q->npend;
    q->npend = 0;
    TRIM(q, q->pend, q->cappend, npend);
    if (mark)
        ack_encode_delivered(q, q->next);
    ack_append(q);
}

static void flush_acks(struct queue *q) { flush_acks_mark(q, false); }

static void on_snap_durable(void *arg, int status)
{
    struct snap_wait *w = arg;
    if (status == 0) {
        int rc = log_delete_below(w->alog, w->below);
        if (rc < 0)
            TLOG_ERRNO("queue", rc, "event=ack_log_delete_failed log=%s", log_dir(w->alog));
    }
    if (w->q)
        w->q->snap = NULL;
    free(w);
}

/* Writes the whole settled set to the ack log when it has grown enough (at close: past one
 * segment), and deletes the ack log below the snapshot once that is durable. */
static void maybe_snapshot(struct queue *q, bool closing)
{
    uint64_t size = log_size_bytes(q->alog);
    uint64_t limit = closing ? q->e->t.ack_segment_bytes : q->e->t.ack_snapshot_bytes;
    if (q->snap || log_error(q->alog) || size < limit ||
        size < 2 * q->snap_bytes + q->e->t.ack_segment_bytes)
        return;
    struct ackset_range low = {0, q->acked.low};
    int64_t first = log_end_offset(q->alog);
    size_t before = q->ackbuf.len;
    if (low.end > 0)
        ack_encode_ranges(q, &low, 1);
    ack_encode_ranges(q, q->acked.r, q->acked.n);
    int64_t mark = q->next > q->delivered_mark ? q->next : q->delivered_mark;
    if (mark > 0)
        ack_encode_delivered(q, mark);
    if (q->nackrec == 0)
        ackrec_start(q, ACK_RANGES); /* an empty set: one empty record marks the point */
    q->snap_bytes = q->ackbuf.len - before;
    if (ack_append(q) < 0)
        return;
    struct snap_wait *w = tern_xmalloc(sizeof(*w));
    *w = (struct snap_wait){q, q->alog, first};
    q->snap = w;
    int rc = log_wait_durable(q->alog, log_end_offset(q->alog), on_snap_durable, w);
    if (rc != 0)
        on_snap_durable(w, rc == 1 ? 0 : rc);
    TLOG_DEBUG("queue", "event=ack_snapshot queue=%s ranges=%zu low=%" PRId64 " bytes=%" PRIu64,
               q->name, q->acked.n, q->acked.low, q->snap_bytes);
}

/* Deletes message log segments whose messages are all settled (rate-limited). */
static void maybe_reclaim(struct queue *q, bool force)
{
    int64_t low = q->acked.low;
    if (low > log_end_offset(q->log))
        low = log_end_offset(q->log);
    if (low <= log_start_offset(q->log) || log_error(q->log))
        return;
    uint64_t now = uv_now(q->e->loop);
    if (!force && q->reclaim_ms && now - q->reclaim_ms < q->e->t.reclaim_interval_ms)
        return;
    q->reclaim_ms = now ? now : 1;
    int rc = log_delete_below(q->log, low);
    if (rc < 0)
        TLOG_ERRNO("queue", rc, "event=reclaim_failed queue=%s low=%" PRId64, q->name, low);
}

static void flush_all(struct queue *q)
{
    flush_messages(q);
    flush_acks(q);
    maybe_snapshot(q, false);
    maybe_reclaim(q, false);
}

void queue_flush(struct queue *q)
{
    if (q->closing)
        return;
    flush_all(q);
    queue_dispatch(q);
}

/* ---- reading the message log ----------------------------------------------------------- */

/* Checks every batch in p[0..len): whole, valid CRC, uncompressed. */
static int check_batches(const uint8_t *p, size_t len)
{
    size_t pos = 0;
    while (pos < len) {
        struct batch_hdr h;
        int64_t n = batch_parse(p + pos, len - pos, len - pos, &h);
        if (n < 0 || batch_check_crc(p + pos, &h) < 0 ||
            (h.attributes & BATCH_ATTR_COMPRESSION_MASK))
            return TERN_ECORRUPT;
        pos += (size_t)n;
    }
    return 0;
}

/* Reads the whole batches holding offsets from `offset` (below the log's end), about max
 * bytes (at least one batch), into b with one pread. Sets [*first, *next) to the offsets
 * read (empty at the end). Returns 0, TERN_ERANGE, TERN_ECORRUPT or -errno. */
static int read_batches(struct log *log, int64_t offset, size_t max, struct buf *b, int64_t *first,
                        int64_t *next)
{
    struct log_slice s;
    int rc = log_read(log, offset, max, log_end_offset(log), &s);
    if (rc < 0)
        return rc;
    b->len = 0;
    *first = *next = offset;
    if (s.len == 0) {
        log_slice_release(&s);
        return 0;
    }
    rc = log_slice_read(&s, buf_reserve(b, s.len));
    size_t want = s.len;
    int64_t base = s.base_offset, after = s.next_offset;
    log_slice_release(&s);
    if (rc < 0)
        return rc;
    b->len = want;
    rc = check_batches(b->p, b->len);
    if (rc == 0) {
        *first = base;
        *next = after;
    }
    return rc;
}

/* The record at off through cache c (refilled with `chunk` bytes when off is outside it). */
static int rcache_get(struct log *log, struct rcache *c, int64_t off, size_t chunk,
                      struct batch_record *rec)
{
    if (off < c->first || off >= c->end) {
        c->it_next = -1;
        int rc = read_batches(log, off, chunk, &c->b, &c->first, &c->end);
        if (rc < 0 || off >= c->end) {
            c->first = c->end = 0;
            return rc < 0 ? rc : TERN_ERANGE;
        }
        c->bpos = 0;
    }
    if (c->it_next < 0 || off < c->it_next || off > batch_last_offset(&c->h)) {
        size_t p = c->it_next >= 0 && off > c->h.base_offset ? c->bpos : 0;
        for (;;) {
            int64_t n = batch_parse(c->b.p + p, c->b.len - p, c->b.len - p, &c->h);
            if (n < 0)
                return TERN_ECORRUPT;
            if (off <= batch_last_offset(&c->h))
                break;
            p += (size_t)n;
        }
        c->bpos = p;
        batch_iter_init(&c->it, c->b.p + p, &c->h);
        c->it_next = c->h.base_offset;
    }
    for (;;) {
        int rc = batch_iter_next(&c->it, rec);
        if (rc <= 0) {
            c->it_next = -1;
            return TERN_ECORRUPT;
        }
        c->it_next = rec->offset + 1;
        if (rec->offset == off)
            return 0;
    }
}

static void rcache_fini(struct rcache *c)
{
    buf_fini(&c->b);
    c->first = c->end = 0;
    c->it_next = -1;
}

/* Parses a record's envelope into m (pointers into the record). Returns 0 or TERN_EPROTO. */
static int env_decode(const struct batch_record *r, struct msg *m)
{
    if (!r->key || r->key_len < ENV_FIXED)
        return TERN_EPROTO;
    const uint8_t *p = r->key, *end = r->key + r->key_len;
    m->persistent = p[0] & ENV_PERSISTENT;
    m->exchange_len = p[1];
    m->exchange = (const char *)p + 2;
    p += 2 + m->exchange_len;
    if (end - p < 5)
        return TERN_EPROTO;
    m->rk_len = *p++;
    m->rk = (const char *)p;
    p += m->rk_len;
    if (end - p < 4)
        return TERN_EPROTO;
    m->props_len = buf_get_u32(p);
    m->props = p + 4;
    if ((size_t)(end - m->props) != m->props_len)
        return TERN_EPROTO;
    m->body = r->value ? r->value : (const uint8_t *)"";
    m->body_len = r->value_len > 0 ? (size_t)r->value_len : 0;
    m->timestamp_ms = r->timestamp;
    return 0;
}

static int read_msg(struct queue *q, struct rcache *c, int64_t off, size_t chunk, struct msg *m)
{
    struct batch_record rec;
    int rc = rcache_get(q->log, c, off, chunk, &rec);
    return rc < 0 ? rc : env_decode(&rec, m);
}

/* Calls fn for every record with offset >= from in the checked batches p[0..len). */
static int scan_chunk(const uint8_t *p, size_t len, int64_t from,
                      int (*fn)(void *arg, const struct batch_record *r), void *arg)
{
    for (size_t pos = 0; pos < len;) {
        struct batch_hdr h;
        struct batch_iter it;
        struct batch_record rec;
        int64_t n = batch_parse(p + pos, len - pos, len - pos, &h);
        if (n < 0 || batch_iter_init(&it, p + pos, &h) < 0)
            return TERN_ECORRUPT;
        int rc;
        while ((rc = batch_iter_next(&it, &rec)) == 1) {
            rc = rec.offset >= from ? fn(arg, &rec) : 0;
            if (rc < 0)
                return rc;
        }
        if (rc < 0)
            return TERN_ECORRUPT;
        pos += (size_t)n;
    }
    return 0;
}

/* Calls fn for every record of the log from `from` to its end, reading large chunks. */
static int scan_log(struct log *log, int64_t from,
                    int (*fn)(void *arg, const struct batch_record *r), void *arg)
{
    struct buf b = BUF_INIT;
    int64_t off = from, end = log_end_offset(log);
    int rc = 0;
    while (rc == 0 && off < end) {
        int64_t first, next;
        rc = read_batches(log, off, SCAN_CHUNK, &b, &first, &next);
        if (rc == 0 && next <= off)
            rc = TERN_ECORRUPT; /* no progress: a hole in the log */
        if (rc == 0)
            rc = scan_chunk(b.p, b.len, off, fn, arg);
        off = next;
    }
    buf_fini(&b);
    return rc;
}

/* ---- delivery -------------------------------------------------------------------------- */

static void heap_push(struct queue *q, int64_t v)
{
    PUSH(q->heap, q->nheap, q->capheap, v);
    for (size_t i = q->nheap - 1; i > 0;) {
        size_t parent = (i - 1) / 2;
        if (q->heap[parent] <= q->heap[i])
            break;
        int64_t t = q->heap[parent];
        q->heap[parent] = q->heap[i];
        q->heap[i] = t;
        i = parent;
    }
}

static void heap_pop(struct queue *q)
{
    q->heap[0] = q->heap[--q->nheap];
    for (size_t i = 0;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < q->nheap && q->heap[l] < q->heap[m])
            m = l;
        if (r < q->nheap && q->heap[r] < q->heap[m])
            m = r;
        if (m == i)
            break;
        int64_t t = q->heap[m];
        q->heap[m] = q->heap[i];
        q->heap[i] = t;
        i = m;
    }
    if (q->nheap == 0)
        TRIM(q, q->heap, q->capheap, 0);
}

/* A record that is not a message (cannot happen with our writer): settle it, do not wedge. */
static void drop_bad(struct queue *q, int64_t off)
{
    TLOG_ERROR("queue", "event=bad_record queue=%s offset=%" PRId64 " action=dropped", q->name,
               off);
    settle(q, off, off + 1);
    q->ready--;
    mark_dirty(q);
}

/* The next ready message from the requeue heap. Returns 1, 0 (none) or an error. */
static int take_requeued(struct queue *q, struct msg *m, int64_t *off)
{
    while (q->nheap) {
        int64_t o = q->heap[0];
        int rc = read_msg(q, &q->rq, o, REQUEUE_READAHEAD, m);
        if (rc < 0 && rc != TERN_EPROTO)
            return rc;
        heap_pop(q);
        if (rc == 0) {
            *off = o;
            return 1;
        }
        drop_bad(q, o);
    }
    return 0;
}

/* The next ready message at the cursor, skipping settled offsets. */
static int take_cursor(struct queue *q, struct msg *m, int64_t *off)
{
    int64_t end = log_end_offset(q->log);
    for (;;) {
        int64_t o = ackset_next_unsettled(&q->acked, q->next);
        q->next = o;
        if (o >= end)
            return 0;
        int rc = read_msg(q, &q->cur, o, q->e->t.readahead_bytes, m);
        if (rc < 0 && rc != TERN_EPROTO)
            return rc;
        q->next = o + 1;
        if (rc == 0) {
            *off = o;
            return 1;
        }
        drop_bad(q, o);
    }
}

/* Takes the next ready message (requeued first) and counts it unacked. */
static int take_next(struct queue *q, struct msg *m, int64_t *off, bool *redelivered)
{
    int rc = take_requeued(q, m, off);
    *redelivered = rc == 1;
    if (rc == 0) {
        rc = take_cursor(q, m, off);
        *redelivered = rc == 1 && *off < q->redeliver_below;
    }
    if (rc == 1) {
        q->ready--;
        q->unacked++;
    } else if (rc < 0) {
        TLOG_ERRNO("queue", rc, "event=read_failed queue=%s offset=%" PRId64, q->name, q->next);
    }
    return rc;
}

static struct queue_consumer *pick_consumer(struct queue *q)
{
    for (size_t k = 0; k < q->ncons; k++) {
        size_t i = (q->rr + k) % q->ncons;
        if (q->cons[i]->ops.can_take(q->cons[i]->ctx)) {
            q->rr = (i + 1) % q->ncons;
            return q->cons[i];
        }
    }
    return NULL;
}

void queue_dispatch(struct queue *q)
{
    if (q->closing || q->dispatching)
        return;
    q->dispatching = true;
    uint32_t n = 0, cap = q->e->t.dispatch_batch;
    while (n < cap && q->ready > 0 && q->ncons > 0) {
        size_t rr = q->rr;
        struct queue_consumer *c = pick_consumer(q);
        if (!c)
            break;
        struct msg m;
        int64_t off;
        bool redelivered;
        if (take_next(q, &m, &off, &redelivered) != 1) {
            q->rr = rr; /* nothing went out: keep the turn */
            break;
        }
        c->ops.deliver(c->ctx, q, off, &m, redelivered);
        n++;
    }
    q->dispatching = false;
    if (n == cap)
        queue_kick(q); /* more may be ready: yield to the loop first */
}

int queue_get(struct queue *q, struct msg *m, int64_t *offset, bool *redelivered)
{
    if (q->closing)
        return TERN_ECLOSED;
    if (q->ready == 0)
        return 0;
    int rc = take_next(q, m, offset, redelivered);
    if (rc == 0 && q->nrecs) {
        flush_messages(q); /* published in this iteration: append now */
        rc = take_next(q, m, offset, redelivered);
    }
    return rc;
}

/* True when off was handed out (below the cursor) and is not settled. */
static bool settleable(const struct queue *q, int64_t off)
{
    return !q->closing && off >= 0 && off < q->next && !ackset_contains(&q->acked, off);
}

void queue_ack(struct queue *q, int64_t offset)
{
    if (!settleable(q, offset))
        return;
    settle(q, offset, offset + 1);
    if (q->unacked)
        q->unacked--;
    mark_dirty(q);
}

void queue_requeue(struct queue *q, int64_t offset)
{
    if (!settleable(q, offset))
        return;
    heap_push(q, offset);
    if (q->unacked)
        q->unacked--;
    q->ready++;
    queue_kick(q);
}

uint64_t queue_purge(struct queue *q)
{
    if (q->closing)
        return 0;
    flush_messages(q);
    uint64_t n = q->ready;
    for (size_t i = 0; i < q->nheap; i++)
        settle(q, q->heap[i], q->heap[i] + 1);
    q->nheap = 0;
    TRIM(q, q->heap, q->capheap, 0);
    int64_t end = log_end_offset(q->log);
    if (q->next < end)
        settle(q, q->next, end);
    q->next = end;
    q->ready = 0;
    mark_dirty(q);
    return n;
}

/* ---- consumers ------------------------------------------------------------------------- */

struct queue_consumer *queue_consumer_add(struct queue *q, const struct queue_consumer_ops *ops,
                                          void *ctx)
{
    struct queue_consumer *c = tern_xcalloc(1, sizeof(*c));
    c->ops = *ops;
    c->ctx = ctx;
    PUSH(q->cons, q->ncons, q->capcons, c);
    queue_kick(q);
    return c;
}

void queue_consumer_remove(struct queue *q, struct queue_consumer *c)
{
    for (size_t i = 0; i < q->ncons; i++) {
        if (q->cons[i] != c)
            continue;
        memmove(q->cons + i, q->cons + i + 1, (q->ncons - i - 1) * sizeof(*q->cons));
        q->ncons--;
        if (q->rr > i)
            q->rr--;
        if (q->rr >= q->ncons)
            q->rr = 0;
        free(c);
        return;
    }
}

size_t queue_consumer_count(const struct queue *q)
{
    return q->ncons;
}

/* ---- open and recovery ----------------------------------------------------------------- */

/* Applies one ack log entry to the settled set. */
static int replay_ack(void *arg, const struct batch_record *r)
{
    struct queue *q = arg;
    if (!r->value || r->value_len < 1)
        return TERN_ECORRUPT;
    const uint8_t *p = r->value + 1, *end = r->value + r->value_len;
    int64_t a, b;
    int n;
    if (r->value[0] == ACK_TRUNCATE || r->value[0] == ACK_DELIVERED) {
        if (varint_decode(p, end, VARINT_MAX_BYTES, &a) < 0 || a < 0)
            return TERN_ECORRUPT;
        if (r->value[0] == ACK_DELIVERED) {
            if (a > q->redeliver_below)
                q->redeliver_below = a;
            q->delivered_mark = q->redeliver_below;
            return 0;
        }
        ackset_truncate(&q->acked, a);
        if (q->redeliver_below > a)
            q->redeliver_below = a; /* offsets from a on will hold new messages */
        return 0;
    }
    if (r->value[0] != ACK_RANGES)
        return TERN_ECORRUPT;
    while (p < end) {
        if ((n = varint_decode(p, end, VARINT_MAX_BYTES, &a)) < 0 || a < 0)
            return TERN_ECORRUPT;
        p += n;
        if ((n = varint_decode(p, end, VARINT_MAX_BYTES, &b)) < 0 || b < 0 || b > INT64_MAX - a)
            return TERN_ECORRUPT;
        p += n;
        ackset_add(&q->acked, a, a + b);
    }
    return 0;
}

/* Counts a ready message, or settles one that does not survive a restart. */
static int recover_record(void *arg, const struct batch_record *r)
{
    struct queue *q = arg;
    struct msg m;
    if (ackset_contains(&q->acked, r->offset))
        return 0;
    if (env_decode(r, &m) < 0)
        return TERN_ECORRUPT; /* not a queue's log */
    if (m.persistent)
        q->ready++;
    else
        settle(q, r->offset, r->offset + 1);
    return 0;
}

/* The message log lost acked offsets in a crash: unsettle them durably before new messages
 * take those offsets. */
static int truncate_acks(struct queue *q, int64_t end)
{
    TLOG_WARN("queue",
              "event=ack_truncate queue=%s from=%" PRId64 " settled_to=%" PRId64
              " reason=\"message log lost its unsynced tail\"",
              q->name, end, ackset_high(&q->acked));
    ackset_truncate(&q->acked, end);
    ackrec_start(q, ACK_TRUNCATE);
    uint8_t tmp[VARINT_MAX_BYTES];
    buf_put(&q->ackbuf, tmp, (size_t)varint_encode(end, tmp));
    int rc = ack_append(q);
    if (rc == 0)
        rc = log_sync(q->alog);
    if (rc == -EBUSY)
        rc = 0; /* an fsync is in flight; the waiter ack_append added rides the next one */
    return rc;
}

static int recover(struct queue *q)
{
    ackset_init(&q->acked, 0);
    int rc = scan_log(q->alog, log_start_offset(q->alog), replay_ack, q);
    if (rc < 0)
        return rc;
    int64_t end = log_end_offset(q->log);
    ackset_add(&q->acked, 0, log_start_offset(q->log));
    if (ackset_high(&q->acked) > end && (rc = truncate_acks(q, end)) < 0)
        return rc;
    if (q->redeliver_below > end)
        q->redeliver_below = end;
    if (!q->durable)
        q->redeliver_below = 0;
    q->delivered_mark = q->redeliver_below;
    if (!q->durable && q->acked.low < end)
        settle(q, q->acked.low, end); /* a transient queue keeps nothing across a restart */
    rc = scan_log(q->log, q->acked.low, recover_record, q);
    if (rc < 0)
        return rc;
    q->next = q->acked.low;
    flush_acks(q);
    return 0;
}

/* Opens both logs through the store and sets their configuration. */
static int open_logs(struct queue *q)
{
    struct store *st = q->e->st;
    int rc = store_log(st, q->name, NULL, &q->log);
    if (rc < 0)
        return rc;
    struct log_config c = *log_get_config(q->log);
    c.retention_ms = c.retention_bytes = -1; /* only acks remove messages */
    if (!q->durable)
        c.fsync_mode = LOG_FSYNC_NEVER;
    log_set_config(q->log, &c);
    q->wait_fsync = q->durable && c.fsync_mode == LOG_FSYNC_ALWAYS;
    rc = store_log(st, q->ack_name, NULL, &q->alog);
    if (rc < 0)
        return rc;
    c.segment_bytes = q->e->t.ack_segment_bytes;
    /* nobody waits for an ack's fsync (only redelivery after a machine crash depends on it):
     * batch them, so a consumer's acks do not double the fsync rate of a busy queue */
    if (c.sync_gap_ms < q->e->t.ack_sync_gap_ms)
        c.sync_gap_ms = q->e->t.ack_sync_gap_ms;
    log_set_config(q->alog, &c);
    return 0;
}

static void queue_free(struct queue *q)
{
    for (size_t i = 0; i < q->ncons; i++)
        free(q->cons[i]);
    free(q->cons);
    buf_fini(&q->pub);
    buf_fini(&q->scratch);
    buf_fini(&q->ackbuf);
    free(q->recs);
    free(q->waiters);
    free(q->heap);
    free(q->pend);
    free(q->ackrec);
    free(q->in);
    ackset_fini(&q->acked);
    rcache_fini(&q->cur);
    rcache_fini(&q->rq);
    free(q->name);
    free(q->ack_name);
    free(q);
}

int queue_open(struct queue_engine *e, const char *log_name, bool durable, struct queue **out)
{
    size_t len = strlen(log_name);
    if (len > QUEUE_NAME_MAX || !store_name_valid(log_name))
        return -EINVAL;
    struct queue *q = tern_xcalloc(1, sizeof(*q));
    q->e = e;
    q->durable = durable;
    q->name = tern_xstrdup(log_name);
    q->ack_name = tern_xmalloc(len + sizeof(ACK_NAME_SUFFIX));
    memcpy(q->ack_name, log_name, len);
    memcpy(q->ack_name + len, ACK_NAME_SUFFIX, sizeof(ACK_NAME_SUFFIX));
    q->cur.it_next = q->rq.it_next = -1;
    int rc = open_logs(q);
    if (rc == 0)
        rc = recover(q);
    if (rc < 0) {
        TLOG_ERRNO("queue", rc, "event=queue_open_failed queue=%s", log_name);
        queue_free(q);
        return rc;
    }
    e->nqueues++;
    TLOG_INFO("queue",
              "event=queue_open queue=%s durable=%s ready=%" PRIu64 " low=%" PRId64 " end=%" PRId64
              " ack_ranges=%zu",
              q->name, durable ? "true" : "false", q->ready, q->acked.low, log_end_offset(q->log),
              q->acked.n);
    *out = q;
    return 0;
}

/* ---- close ----------------------------------------------------------------------------- */

/* Answers every pending durability callback, the final flush's (last, err) included: 0 when
 * an fsync now covers it, else TERN_ECLOSED (or the log's error). Groups the log still holds
 * become orphans that it frees when it answers them. A deleted queue answers 0 without an
 * fsync, as RabbitMQ confirms what a deleted queue held: nothing of it is ever read again. */
static void settle_groups(struct queue *q, struct flush_group *last, int err, bool destroy)
{
    if (destroy) {
        if (last) {
            group_answer(last, err);
            free(last);
        }
        while (q->groups) {
            struct flush_group *g = q->groups;
            group_unlink(g);
            group_answer(g, 0);
        }
        return;
    }
    if ((q->groups || last) && !log_error(q->log)) {
        int rc = log_sync(q->log); /* answers the groups it covers, which unlink themselves */
        if (rc < 0 && rc != -EBUSY)
            TLOG_ERRNO("queue", rc, "event=close_sync_failed queue=%s", q->name);
    }
    if (last) {
        if (err == 0 && log_durable_offset(q->log) < log_end_offset(q->log))
            err = log_error(q->log) ? log_error(q->log) : TERN_ECLOSED;
        group_answer(last, err);
        free(last);
    }
    while (q->groups) {
        struct flush_group *g = q->groups;
        group_unlink(g);
        group_answer(g, TERN_ECLOSED);
    }
}

static void close_common(struct queue *q, bool destroy)
{
    struct queue_engine *e = q->e;
    struct flush_group *last;
    int err = append_buffered(q, &last);
    flush_acks_mark(q, !destroy);
    if (!destroy) {
        maybe_snapshot(q, true);
        maybe_reclaim(q, true);
    }
    q->closing = true;
    forget_in(e->dirty, e->ndirty, q);
    forget_in(e->kick, e->nkick, q);
    forget_in(e->holders, e->nholders, q);
    settle_groups(q, last, err, destroy);
    if (q->snap)
        q->snap->q = NULL;
    if (destroy) {
        store_log_delete(e->st, q->name);
        store_log_delete(e->st, q->ack_name);
    }
    e->nqueues--;
    queue_free(q);
}

void queue_close(struct queue *q)
{
    close_common(q, false);
}

void queue_destroy(struct queue *q)
{
    close_common(q, true);
}

/* ---- accessors ------------------------------------------------------------------------- */

uint64_t queue_ready_count(const struct queue *q)
{
    return q->ready;
}

uint64_t queue_unacked_count(const struct queue *q)
{
    return q->unacked;
}

bool queue_durable(const struct queue *q)
{
    return q->durable;
}

const char *queue_log_name(const struct queue *q)
{
    return q->name;
}

void queue_stats(const struct queue *q, struct queue_stats *out)
{
    *out = (struct queue_stats){.ack_ranges = ackset_count(&q->acked),
                                .requeued = q->nheap,
                                .buffered = q->nrecs,
                                .buffered_bytes = q->pub.len,
                                .readahead_bytes = q->cur.b.cap + q->rq.b.cap,
                                .low = q->acked.low,
                                .cursor = q->next};
}

void queue_set_user(struct queue *q, void *user)
{
    q->user = user;
}

void *queue_user(const struct queue *q)
{
    return q->user;
}
