/*
 * catalog_crash_test.c - the catalog survives a process killed mid-write.
 *
 * A child process runs a fixed sequence of catalog calls (call k is a function of k alone:
 * put a queue, bind to it, then upsert an exchange or delete an older queue), reporting over a
 * pipe how many calls have returned 0. The parent SIGKILLs it at a random point, or it _exits
 * inside an uncommitted batch, and the parent reopens the catalog and checks that what loads is
 * exactly the state after every acknowledged call, or after those plus the one call (or batch)
 * in flight: nothing acknowledged is lost, nothing is half-applied, and nothing of an abandoned
 * batch is there. Rounds continue on the same database.
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

static void load_describe(struct buf *out)
{
    char err[512];
    struct catalog *c = NULL;
    int rc = catalog_open(dbpath, &c, err, sizeof(err));
    if (rc != 0)
        fail_msg("reopen after crash: %d %s", rc, err);
    struct catalog_loader l = {on_x, on_q, on_b};
    rc = catalog_load(c, &l, out);
    if (rc != 0)
        fail_msg("load after crash: %d %s", rc, catalog_errmsg(c));
    buf_put_u8(out, 0);
    catalog_close(c);
}

/* ---- the child ------------------------------------------------------------------------------ */

static void ack(int fd, int done)
{
    uint32_t v = (uint32_t)done;
    if (write(fd, &v, sizeof(v)) != (ssize_t)sizeof(v))
        _exit(3);
}

/* mode 0: one call at a time; 1: a committed batch first; 2: a batch abandoned by _exit. */
static _Noreturn void child(int fd, int start, int mode)
{
    struct catalog *c;
    char err[512];
    if (catalog_open(dbpath, &c, err, sizeof(err)) != 0)
        _exit(2);
    struct table *args = table_new();
    table_set_str(args, "x-queue-type", "classic");
    table_set_int(args, "x-max-length", 10);
    int k = start;
    if (mode) {
        if (catalog_begin(c) != 0)
            _exit(2);
        for (; k < start + BATCH; k++)
            if (do_call(c, k, args) != 0)
                _exit(2);
        if (mode == 2)
            _exit(0); /* the batch was never committed */
        if (catalog_commit(c) != 0)
            _exit(2);
        ack(fd, k);
    }
    for (; k < 3 * (MAX_STEPS - 1); k++) {
        if (do_call(c, k, args) != 0)
            _exit(2);
        ack(fd, k + 1);
    }
    _exit(0);
}

/* ---- the parent ----------------------------------------------------------------------------- */

/* Runs one round from call start; returns the number of calls the catalog now reflects. */
static int round_run(int start, int mode, int kill_after)
{
    int p[2];
    assert_int_equal(pipe(p), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(p[0]);
        child(p[1], start, mode);
    }
    close(p[1]);
    int acked = start, nacks = 0;
    uint32_t v;
    while (read(p[0], &v, sizeof(v)) == (ssize_t)sizeof(v)) {
        acked = (int)v;
        if (++nacks == kill_after && mode != 2) {
            kill(pid, SIGKILL);
            break;
        }
    }
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    while (read(p[0], &v, sizeof(v)) == (ssize_t)sizeof(v)) /* acks sent before the kill */
        acked = (int)v;
    close(p[0]);
    if (WIFEXITED(status))
        assert_int_equal(WEXITSTATUS(status), 0);

    int inflight = mode == 1 && acked == start ? BATCH : 1;
    if (mode == 2)
        inflight = 0;
    struct buf got = BUF_INIT, want = BUF_INIT, want2 = BUF_INIT;
    load_describe(&got);
    model_describe(acked, &want);
    model_describe(acked + inflight, &want2);
    int now = acked;
    if (strcmp((char *)got.p, (char *)want2.p) == 0)
        now = acked + inflight;
    else if (strcmp((char *)got.p, (char *)want.p) != 0)
        fail_msg("round from %d (mode %d): after %d acked calls the catalog holds\n%s\n"
                 "expected\n%s",
                 start, mode, acked, (char *)got.p, (char *)want.p);
    buf_fini(&got);
    buf_fini(&want);
    buf_fini(&want2);
    return now;
}

static void test_kill_mid_write(void **state)
{
    (void)state;
    srand(20240601);
    int done = 0;
    for (int r = 0; r < ROUNDS; r++) {
        int mode = r % 8 == 7 ? 2 : r % 4 == 3 ? 1 : 0;
        int before = done;
        done = round_run(done, mode, 1 + rand() % 60);
        if (mode == 2)
            assert_int_equal(done, before);
        else
            assert_true(done > before);
    }
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
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
