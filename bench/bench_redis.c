/*
 * bench_redis.c - the Redis streams load generator of `make bench-kafka`, on hiredis (Debian's
 * libhiredis-dev). Same scenarios, options and result line as bench_kafka (loadgen.h);
 * bench/kafka_bench.py runs it against Debian's redis-server with appendonly yes.
 *
 * Durability: --acks all sets `CONFIG SET appendfsync always` before the run (Redis fsyncs the
 * append-only file before it answers, once per event-loop turn, so pipelined writes share an
 * fsync); --acks 1 sets `appendfsync everysec` (answered once written to the AOF, fsynced every
 * second). The stream key is the topic, deleted before and after the run.
 *
 * Producers: one connection per producer thread; `XADD <key> * v <value>` pipelined: up to
 * PIPELINE_BURST commands go out in one write, at most --window are unanswered, and the replies
 * (entry ids, in order) are read as they arrive. Send times wait in a ring, one per command.
 *
 * Consumer: `XREADGROUP GROUP g c COUNT 1000 BLOCK 100 NOACK STREAMS <key> >` on a group
 * created at id 0 (consume: at the start of the read) or $ (latency: before the producer
 * starts), two requests outstanding so the server always has the next one; NOACK because the
 * Kafka consumer it is compared with does not commit either.
 */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include <hiredis/hiredis.h>

#include "base/clock.h"
#include "base/tern.h"
#include "loadgen.h"

#define PIPELINE_BURST 64
#define READ_COUNT "1000"
#define READ_DEPTH 2 /* XREADGROUP requests outstanding */
#define CONNECT_TIMEOUT_S 10
#define GROUP "g"

static const char help[] =
    "Redis streams (hiredis): --acks all runs with appendfsync always (fsync before the reply),\n"
    "--acks 1 with appendfsync everysec; set with CONFIG SET before the run.";

static redisContext *connect_to(const struct loadgen *g, char *err, size_t cap)
{
    struct timeval tv = {.tv_sec = CONNECT_TIMEOUT_S};
    redisContext *c = redisConnectWithTimeout(g->opt.host, g->opt.port, tv);
    if (!c || c->err) {
        snprintf(err, cap, "connect %s:%d: %s", g->opt.host, g->opt.port,
                 c ? c->errstr : "out of memory");
        redisFree(c);
        return NULL;
    }
    struct timeval none = {0};
    redisSetTimeout(c, none); /* block as long as it takes: the phases bound the run */
    return c;
}

/* Runs one command and checks that it did not fail. Returns 0, or -1 with err filled. */
static int command(redisContext *c, char *err, size_t cap, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = redisvCommand(c, fmt, ap);
    va_end(ap);
    if (!r) {
        snprintf(err, cap, "%s: %s", fmt, c->errstr);
        return -1;
    }
    int rc = 0;
    if (r->type == REDIS_REPLY_ERROR) {
        snprintf(err, cap, "%s: %s", fmt, r->str);
        rc = -1;
    }
    freeReplyObject(r);
    return rc;
}

/* ---- the stream ---------------------------------------------------------------------------------
 */

static int redis_setup(struct loadgen *g, char *err, size_t cap)
{
    redisContext *c = connect_to(g, err, cap);
    if (!c)
        return -1;
    const char *fsync = g->opt.acks_all ? "always" : "everysec";
    if (command(c, err, cap, "CONFIG SET appendfsync %s", fsync) < 0 ||
        command(c, err, cap, "DEL %s", g->topic) < 0 ||
        (g->opt.scenario == LOADGEN_LATENCY &&
         command(c, err, cap, "XGROUP CREATE %s " GROUP " $ MKSTREAM", g->topic) < 0)) {
        redisFree(c);
        return -1;
    }
    g->ctx = c;
    snprintf(g->info, sizeof(g->info), " appendfsync=%s", fsync);
    return 0;
}

static void redis_teardown(struct loadgen *g)
{
    char err[512];
    if (command(g->ctx, err, sizeof(err), "DEL %s", g->topic) < 0)
        fprintf(stderr, "bench_redis: %s (ignored)\n", err);
    redisFree(g->ctx);
}

/* ---- producers ----------------------------------------------------------------------------------
 */

/* A producer's connection and the send times of its unanswered commands, oldest first. */
struct rprod {
    struct loadgen_worker *w;
    redisContext *c;
    uint64_t *ring; /* --window slots */
    uint64_t head, tail;
};

static int write_all(struct rprod *p)
{
    int done = 0;
    while (!done)
        if (redisBufferWrite(p->c, &done) != REDIS_OK)
            return loadgen_fail(p->w, "write: %s", p->c->errstr);
    return 0;
}

static int reply_take(struct rprod *p, redisReply *r)
{
    int rc = 0;
    if (r->type == REDIS_REPLY_ERROR) {
        loadgen_ack_failed(p->w);
        rc = loadgen_fail(p->w, "XADD: %s", r->str);
    } else {
        uint64_t window = (uint64_t)p->w->g->opt.window;
        loadgen_acked(p->w, p->ring[p->head++ % window]);
    }
    freeReplyObject(r);
    return rc;
}

/* Takes every reply already read; with block, first waits for one. Returns 0 or -1. */
static int replies_read(struct rprod *p, bool block)
{
    void *r;
    if (block) {
        if (redisGetReply(p->c, &r) != REDIS_OK)
            return loadgen_fail(p->w, "read: %s", p->c->errstr);
        if (reply_take(p, r) < 0)
            return -1;
    }
    struct pollfd pfd = {.fd = p->c->fd, .events = POLLIN};
    if (poll(&pfd, 1, 0) > 0 && redisBufferRead(p->c) != REDIS_OK)
        return loadgen_fail(p->w, "read: %s", p->c->errstr);
    for (;;) {
        if (redisGetReplyFromReader(p->c, &r) != REDIS_OK)
            return loadgen_fail(p->w, "read: %s", p->c->errstr);
        if (!r)
            return 0;
        if (reply_take(p, r) < 0)
            return -1;
    }
}

static void xadd_append(struct rprod *p, void *value, uint64_t t_ns)
{
    const struct loadgen *g = p->w->g;
    loadgen_stamp(p->w, value, t_ns);
    redisAppendCommand(p->c, "XADD %s * v %b", g->topic, value, (size_t)g->opt.size);
    p->ring[p->tail++ % (uint64_t)g->opt.window] = t_ns;
}

static int produce_flat_out(struct rprod *p, void *value)
{
    struct loadgen_worker *w = p->w;
    while (loadgen_producing(w)) {
        uint64_t n = loadgen_room(w, PIPELINE_BURST);
        for (uint64_t i = 0; i < n; i++)
            xadd_append(p, value, clock_mono_ns());
        if (n > 0) {
            if (write_all(p) < 0)
                return -1;
            loadgen_sent(w, n);
        }
        if (replies_read(p, n == 0 && loadgen_in_flight(w) > 0) < 0)
            return -1;
    }
    return 0;
}

/* Waits until t_ns, taking replies as they come. */
static int wait_until(struct rprod *p, uint64_t t_ns)
{
    for (uint64_t now = clock_mono_ns(); now < t_ns; now = clock_mono_ns()) {
        uint64_t left = t_ns - now;
        struct timespec ts = {.tv_sec = (time_t)(left / 1000000000u),
                              .tv_nsec = (long)(left % 1000000000u)};
        struct pollfd pfd = {.fd = p->c->fd, .events = POLLIN};
        int n = ppoll(&pfd, 1, &ts, NULL);
        if (n < 0 && errno != EINTR)
            return loadgen_fail(p->w, "ppoll: %s", strerror(errno));
        if (n > 0 && replies_read(p, false) < 0)
            return -1;
    }
    return 0;
}

static int produce_paced(struct rprod *p, void *value)
{
    struct loadgen_worker *w = p->w;
    while (loadgen_producing(w)) {
        uint64_t t = loadgen_next_send(w);
        if (wait_until(p, t) < 0)
            return -1;
        while (loadgen_room(w, 1) == 0 && loadgen_producing(w))
            if (replies_read(p, true) < 0)
                return -1;
        xadd_append(p, value, t);
        if (write_all(p) < 0)
            return -1;
        loadgen_sent(w, 1);
    }
    return 0;
}

static int redis_producer(struct loadgen_worker *w)
{
    char err[512];
    struct rprod p = {.w = w, .c = connect_to(w->g, err, sizeof(err))};
    if (!p.c)
        return loadgen_fail(w, "%s", err);
    p.ring = tern_xcalloc((unsigned long)w->g->opt.window, sizeof(uint64_t));
    void *value = loadgen_value_new(w->g);
    int rc = 0;
    if (loadgen_wait(w, LOADGEN_FILL))
        rc = w->g->opt.scenario == LOADGEN_LATENCY ? produce_paced(&p, value)
                                                   : produce_flat_out(&p, value);
    redisFree(p.c); /* replies still on their way are dropped with the connection */
    free(p.ring);
    free(value);
    return rc;
}

/* ---- the consumer -------------------------------------------------------------------------------
 */

static void read_append(redisContext *c, const char *key)
{
    redisAppendCommand(c,
                       "XREADGROUP GROUP " GROUP " c COUNT " READ_COUNT " BLOCK 100 NOACK "
                       "STREAMS %s >",
                       key);
}

/* Counts the entries of one XREADGROUP reply: nil (timed out) or [[key, [[id, [v, value]]...]]]. */
static int entries_take(struct loadgen_worker *w, const redisReply *r)
{
    if (r->type == REDIS_REPLY_NIL)
        return 0;
    if (r->type == REDIS_REPLY_ERROR)
        return loadgen_fail(w, "XREADGROUP: %s", r->str);
    if (r->type != REDIS_REPLY_ARRAY || r->elements != 1 || r->element[0]->elements != 2)
        return loadgen_fail(w, "XREADGROUP: unexpected reply type %d", r->type);
    const redisReply *entries = r->element[0]->element[1];
    for (size_t i = 0; i < entries->elements; i++) {
        const redisReply *e = entries->element[i];
        const redisReply *fields = e->elements == 2 ? e->element[1] : NULL;
        if (!fields || fields->type != REDIS_REPLY_ARRAY || fields->elements != 2)
            return loadgen_fail(w, "XREADGROUP: an entry without its one field");
        const redisReply *v = fields->element[1];
        loadgen_received(w, v->len, loadgen_stamp_time(v->str, v->len));
    }
    return 0;
}

static int consume_loop(struct loadgen_worker *w, redisContext *c)
{
    for (int i = 0; i < READ_DEPTH; i++)
        read_append(c, w->g->topic);
    while (loadgen_consuming(w)) {
        void *r;
        if (redisGetReply(c, &r) != REDIS_OK) /* also sends what is appended */
            return loadgen_fail(w, "read: %s", c->errstr);
        read_append(c, w->g->topic);
        int rc = entries_take(w, r);
        freeReplyObject(r);
        if (rc < 0)
            return -1;
    }
    return 0;
}

static int redis_consumer(struct loadgen_worker *w)
{
    char err[512];
    redisContext *c = connect_to(w->g, err, sizeof(err));
    if (!c)
        return loadgen_fail(w, "%s", err);
    /* latency: the group exists (setup made it at $); consume: made at 0 when the read starts */
    bool early = w->g->opt.scenario == LOADGEN_LATENCY;
    int rc = 0;
    if (loadgen_wait(w, early ? LOADGEN_WARMUP : LOADGEN_MEASURE)) {
        if (!early && command(c, err, sizeof(err), "XGROUP CREATE %s " GROUP " 0", w->g->topic) < 0)
            rc = loadgen_fail(w, "%s", err);
        if (rc == 0)
            rc = consume_loop(w, c);
    }
    redisFree(c);
    return rc;
}

static const struct loadgen_ops redis_ops = {
    .name = "redis",
    .help = help,
    .setup = redis_setup,
    .teardown = redis_teardown,
    .producer = redis_producer,
    .consumer = redis_consumer,
};

int main(int argc, char **argv)
{
    return loadgen_main(argc, argv, &redis_ops);
}
