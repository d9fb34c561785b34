/*
 * catalog_crash_test.c - the catalog survives a process killed mid-write.
 *
 * A child process runs a fixed sequence of catalog calls (call k is a function of k alone),
 * reporting over a pipe how many calls have returned 0. The parent SIGKILLs it at a random
 * point, or it _exits inside an uncommitted batch, and the parent reopens the catalog and
 * checks that what loads is exactly the state after every acknowledged call, or after those
 * plus the one call (or batch) in flight: nothing acknowledged is lost, nothing is
 * half-applied, and nothing of an abandoned batch is there. Rounds continue on the same
 * database. Two workloads:
 *   - AMQP objects: put a queue, bind to it, then upsert an exchange or delete an older queue;
 *   - Kafka: multi-partition offset commits (one catalog_put_offsets or, as ternd makes them,
 *     catalog_put_offsets_unsynced each, which must land whole or not at all), group deletions and
 * producer ids. Every producer id the child reported must be below the next one handed out after
 * the restart.
 *
 * A killed process leaves its writes in the page cache, so this checks atomicity and recovery
 * of the WAL, not power loss (which synchronous=FULL is for).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <signal.h>
#include <unistd.h>
#include <sys/wait.h>

#include <cmocka.h>

#include "base/buf.h"
#include "base/table.h"
#include "base/tern.h"
#include "broker/catalog.h"
#include "testutil.h"

#define ROUNDS 30
#define BATCH 20
#define MAX_STEPS 20000

static char *dir;
static char dbpath[4096];

/* ---- the call sequence ---------------------------------------------------------------------- */

static const char *xtype(int i)
{
    return i % 3 == 0 ? "direct" : i % 3 == 1 ? "fanout" : "topic";
}

/* Performs call k. Returns what the catalog returned. */
static int do_call(struct catalog *c, int k, const struct table *args)
{
    int i = k / 3;
    char q[32], x[32], key[32];
    snprintf(q, sizeof(q), "q%d", i);
    snprintf(x, sizeof(x), "x%d", i % 4);
    snprintf(key, sizeof(key), "k%d", i);
    switch (k % 3) {
    case 0: {
        struct catalog_queue cq = {"/", q, false, args, q};
        return catalog_put_queue(c, &cq);
    }
    case 1: {
        struct catalog_binding b = {"/", "amq.direct", false, q, key, args};
        return catalog_put_binding(c, &b);
    }
    default:
        if (i % 5 == 4) {
            snprintf(q, sizeof(q), "q%d", i - 2);
            return catalog_del_queue(c, "/", q);
        } else {
            struct catalog_exchange cx = {"/", x, xtype(i), false, false, args};
            return catalog_put_exchange(c, &cx);
        }
    }
}

/* The state after calls [0, n), described as the loader describes a catalog. */
static void model_describe(int n, struct buf *out)
{
    static bool q[MAX_STEPS], b[MAX_STEPS];
    const char *xt[4] = {NULL, NULL, NULL, NULL};
    memset(q, 0, sizeof(q));
    memset(b, 0, sizeof(b));
    for (int k = 0; k < n; k++) {
        int i = k / 3;
        if (k % 3 == 0)
            q[i] = true;
        else if (k % 3 == 1)
            b[i] = true;
        else if (i % 5 == 4)
            q[i - 2] = b[i - 2] = false;
        else
            xt[i % 4] = xtype(i);
    }
    char line[64];
    for (int j = 0; j < 4; j++) /* first put in order x0..x3; upsert keeps the place */
        if (xt[j])
            buf_put(out, line, (size_t)snprintf(line, sizeof(line), "X x%d %s\n", j, xt[j]));
    for (int i = 0; i <= n / 3; i++)
        if (q[i])
            buf_put(out, line, (size_t)snprintf(line, sizeof(line), "Q q%d\n", i));
    for (int i = 0; i <= n / 3; i++)
        if (b[i])
            buf_put(out, line, (size_t)snprintf(line, sizeof(line), "B q%d k%d\n", i, i));
    buf_put_u8(out, 0);
}

/* ---- the offsets workload ------------------------------------------------------------------- */

#define OFF_GROUPS 3
#define OFF_TOPICS 2
#define OFF_PARTS 5

/* Performs call k of the offsets workload. Producer-id calls are skipped inside a batch (the
 * catalog refuses them there); they do not change what loads. *pid gets an id handed out. */
static int offsets_call(struct catalog *c, int k, bool in_batch, int64_t *pid)
{
    int g = (k / 2) % OFF_GROUPS;
    char group[16], topic[16], meta[32];
    snprintf(group, sizeof(group), "g%d", g);
    if (k % 4 == 3) {
        if ((k / 4) % 5 == 4)
            return catalog_del_group(c, group);
        return in_batch ? 0 : catalog_next_producer_id(c, pid);
    }
    snprintf(topic, sizeof(topic), "t%d", k % OFF_TOPICS);
    snprintf(meta, sizeof(meta), "m%d", k);
    struct catalog_offset v[OFF_PARTS];
    int n = 1 + k % OFF_PARTS;
    for (int p = 0; p < n; p++)
        v[p] = (struct catalog_offset){group, topic, p, k, k % 7, k % 2 ? NULL : meta, 1000 + k};
    /* half of them as ternd commits them: unsynced, fsynced later (a kill needs no fsync) */
    if ((k / 2) % 2)
        return catalog_put_offsets_unsynced(c, v, (size_t)n);
    return catalog_put_offsets(c, v, (size_t)n);
}

/* The offsets after calls [0, n), described as the loader describes a catalog. */
static void offsets_model(int n, struct buf *out)
{
    int last[OFF_GROUPS][OFF_TOPICS][OFF_PARTS];
    memset(last, 0xff, sizeof(last)); /* -1: none */
    for (int k = 0; k < n; k++) {
        int g = (k / 2) % OFF_GROUPS;
        if (k % 4 == 3) {
            if ((k / 4) % 5 == 4)
                memset(last[g], 0xff, sizeof(last[g]));
            continue;
        }
        for (int p = 0; p < 1 + k % OFF_PARTS; p++)
            last[g][k % OFF_TOPICS][p] = k;
    }
    char line[128];
    for (int g = 0; g < OFF_GROUPS; g++)
        for (int t = 0; t < OFF_TOPICS; t++)
            for (int p = 0; p < OFF_PARTS; p++) {
                int k = last[g][t][p];
                char meta[32] = "-";
                if (k < 0)
                    continue;
                if (k % 2 == 0)
                    snprintf(meta, sizeof(meta), "m%d", k);
                buf_put(out, line,
                        (size_t)snprintf(line, sizeof(line), "O g%d t%d %d %d %d %s %d\n", g, t, p,
                                         k, k % 7, meta, 1000 + k));
            }
    buf_put_u8(out, 0);
}

static int on_o(void *arg, const struct catalog_offset *o)
{
    char line[300];
    buf_put(arg, line,
            (size_t)snprintf(line, sizeof(line), "O %s %s %d %lld %d %s %lld\n", o->group, o->topic,
                             o->partition, (long long)o->offset, o->leader_epoch,
                             o->metadata ? o->metadata : "-", (long long)o->commit_ms));
    return 0;
}

/* ---- the AMQP workload ---------------------------------------------------------------------- */

static int amqp_call(struct catalog *c, int k, bool in_batch, int64_t *pid)
{
    (void)in_batch;
    (void)pid;
    struct table *args = table_new();
    table_set_str(args, "x-queue-type", "classic");
    table_set_int(args, "x-max-length", 10);
    int rc = do_call(c, k, args);
    table_free(args);
    return rc;
}

struct workload {
    const char *name;
    int (*call)(struct catalog *c, int k, bool in_batch, int64_t *pid);
    void (*model)(int n, struct buf *out);
};

static const struct workload amqp_work = {"amqp", amqp_call, model_describe};
static const struct workload offsets_work = {"offsets", offsets_call, offsets_model};

static int on_x(void *arg, const struct catalog_exchange *x)
{
    char line[300];
    buf_put(arg, line, (size_t)snprintf(line, sizeof(line), "X %s %s\n", x->name, x->type));
    return 0;
}

static int on_q(void *arg, const struct catalog_queue *q)
{
    char line[300];
    buf_put(arg, line, (size_t)snprintf(line, sizeof(line), "Q %s\n", q->name));
    return 0;
}

static int on_b(void *arg, const struct catalog_binding *b)
{
    char line[300];
    buf_put(arg, line, (size_t)snprintf(line, sizeof(line), "B %s %s\n", b->dest, b->key));
    return 0;
}

/* Describes what the catalog loads; *next_pid gets the next producer id it hands out. */
static void load_describe(struct buf *out, int64_t *next_pid)
{
    char err[512];
    struct catalog *c = NULL;
    int rc = catalog_open(dbpath, &c, err, sizeof(err));
    if (rc != 0)
        fail_msg("reopen after crash: %d %s", rc, err);
    struct catalog_loader l = {.exchange = on_x, .queue = on_q, .binding = on_b, .offset = on_o};
    rc = catalog_load(c, &l, out);
    if (rc != 0)
        fail_msg("load after crash: %d %s", rc, catalog_errmsg(c));
    buf_put_u8(out, 0);
    rc = catalog_next_producer_id(c, next_pid);
    if (rc != 0)
        fail_msg("producer id after crash: %d %s", rc, catalog_errmsg(c));
    catalog_close(c);
}

/* ---- the child ------------------------------------------------------------------------------ */

/* What the child reports after each acknowledged call (or batch). */
struct ack_msg {
    uint32_t done; /* calls [0, done) have returned 0 */
    int64_t pid;   /* the producer id that call handed out, or -1 */
};

static void ack(int fd, int done, int64_t pid)
{
    struct ack_msg m = {(uint32_t)done, pid};
    if (write(fd, &m, sizeof(m)) != (ssize_t)sizeof(m))
        _exit(3);
}

/* mode 0: one call at a time; 1: a committed batch first; 2: a batch abandoned by _exit. */
static _Noreturn void child(const struct workload *w, int fd, int start, int mode)
{
    struct catalog *c;
    char err[512];
    if (catalog_open(dbpath, &c, err, sizeof(err)) != 0)
        _exit(2);
    int k = start;
    int64_t pid = -1;
    if (mode) {
        if (catalog_begin(c) != 0)
            _exit(2);
        for (; k < start + BATCH; k++)
            if (w->call(c, k, true, &pid) != 0)
                _exit(2);
        if (mode == 2)
            _exit(0); /* the batch was never committed */
        if (catalog_commit(c) != 0)
            _exit(2);
        ack(fd, k, -1);
    }
    for (; k < 3 * (MAX_STEPS - 1); k++) {
        pid = -1;
        if (w->call(c, k, false, &pid) != 0)
            _exit(2);
        ack(fd, k + 1, pid);
    }
    _exit(0);
}

/* ---- the parent ----------------------------------------------------------------------------- */

/* Runs one round of w from call start; returns the number of calls the catalog now reflects.
 * *max_pid is the highest producer id seen so far (reported by a child or handed out by the
 * check after the round); every new one must be above it. */
static int round_run(const struct workload *w, int start, int mode, int kill_after,
                     int64_t *max_pid)
{
    int p[2];
    assert_int_equal(pipe(p), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(p[0]);
        child(w, p[1], start, mode);
    }
    close(p[1]);
    int acked = start, nacks = 0;
    struct ack_msg v;
    bool killed = false;
    int status;
    while (read(p[0], &v, sizeof(v)) == (ssize_t)sizeof(v)) { /* then acks sent before the kill */
        acked = (int)v.done;
        if (v.pid >= 0) {
            if (v.pid <= *max_pid)
                fail_msg("%s: producer id %lld handed out again (max so far %lld)", w->name,
                         (long long)v.pid, (long long)*max_pid);
            *max_pid = v.pid;
        }
        if (++nacks == kill_after && mode != 2 && !killed) {
            kill(pid, SIGKILL);
            killed = true;
        }
    }
    assert_int_equal(waitpid(pid, &status, 0), pid);
    close(p[0]);
    if (WIFEXITED(status))
        assert_int_equal(WEXITSTATUS(status), 0);

    int inflight = mode == 1 && acked == start ? BATCH : 1;
    if (mode == 2)
        inflight = 0;
    struct buf got = BUF_INIT, want = BUF_INIT, want2 = BUF_INIT;
    int64_t next_pid;
    load_describe(&got, &next_pid);
    if (next_pid <= *max_pid)
        fail_msg("%s: after the restart the next producer id is %lld, %lld was already handed out",
                 w->name, (long long)next_pid, (long long)*max_pid);
    *max_pid = next_pid;
    w->model(acked, &want);
    w->model(acked + inflight, &want2);
    int now = acked;
    if (strcmp((char *)got.p, (char *)want2.p) == 0)
        now = acked + inflight;
    else if (strcmp((char *)got.p, (char *)want.p) != 0)
        fail_msg("%s round from %d (mode %d): after %d acked calls the catalog holds\n%s\n"
                 "expected\n%s",
                 w->name, start, mode, acked, (char *)got.p, (char *)want.p);
    buf_fini(&got);
    buf_fini(&want);
    buf_fini(&want2);
    return now;
}

static void kill_rounds(const struct workload *w, unsigned seed)
{
    srand(seed);
    int done = 0;
    int64_t max_pid = -1;
    for (int r = 0; r < ROUNDS; r++) {
        int mode = r % 8 == 7 ? 2 : r % 4 == 3 ? 1 : 0;
        int before = done;
        done = round_run(w, done, mode, 1 + rand() % 60, &max_pid);
        if (mode == 2)
            assert_int_equal(done, before);
        else
            assert_true(done > before);
    }
}

static void test_kill_mid_write(void **state)
{
    (void)state;
    kill_rounds(&amqp_work, 20240601);
}

static void test_kill_mid_offset_commit(void **state)
{
    (void)state;
    kill_rounds(&offsets_work, 20250301);
}

static int setup(void **state)
{
    (void)state;
    dir = tu_tmpdir();
    snprintf(dbpath, sizeof(dbpath), "%s/catalog.db", dir);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    tu_rmrf(dir);
    free(dir);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_kill_mid_write, setup, teardown),
        cmocka_unit_test_setup_teardown(test_kill_mid_offset_commit, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
