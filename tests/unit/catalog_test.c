/* catalog_test.c - the SQLite catalog: round trips, upsert, cascades, reopen, order, batches,
 * damaged files and early-stopping loads; topics, committed offsets, producer ids and the
 * migration from schema v1. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <fcntl.h>
#include <errno.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "base/table.h"
#include "base/tern.h"
#include "broker/catalog.h"
#include "testutil.h"

static char *dir;
static char dbpath[4096];

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

static struct catalog *open_ok(void)
{
    char err[512] = "";
    struct catalog *c = NULL;
    int rc = catalog_open(dbpath, &c, err, sizeof(err));
    if (rc != 0)
        fail_msg("catalog_open: %d %s", rc, err);
    assert_non_null(c);
    return c;
}

static struct catalog *reopen(struct catalog *c)
{
    catalog_close(c);
    return open_ok();
}

/* ---- a loader that records everything ------------------------------------------------------- */

struct rec {
    char kind;              /* 'x', 'q', 'b', 't', 'o' */
    char *a, *b, *c, *d;    /* x: vhost name type; q: vhost name log_name; b: vhost source dest key;
                               t: name - log_prefix; o: group topic - metadata */
    bool f1, f2;            /* x: auto_delete internal; q: auto_delete; b: dest_is_exchange */
    struct table *args;     /* x, q, b: args; t: configs */
    int64_t n1, n2, n3, n4; /* t: partitions; o: partition offset leader_epoch commit_ms */
};

struct recs {
    struct rec *r;
    size_t n, cap;
    size_t stop_after; /* return 99 from the callback making n reach this (0: never) */
};

static char *dup_or_null(const char *s)
{
    return s ? tern_xstrdup(s) : NULL;
}

static int rec_add(struct recs *rs, struct rec r)
{
    if (rs->n == rs->cap) {
        rs->cap = rs->cap ? rs->cap * 2 : 16;
        rs->r = tern_xrealloc(rs->r, rs->cap * sizeof(*rs->r));
    }
    rs->r[rs->n++] = r;
    return rs->stop_after && rs->n == rs->stop_after ? 99 : 0;
}

static int on_x(void *arg, const struct catalog_exchange *x)
{
    struct rec r = {.kind = 'x',
                    .a = tern_xstrdup(x->vhost),
                    .b = tern_xstrdup(x->name),
                    .c = tern_xstrdup(x->type),
                    .f1 = x->auto_delete,
                    .f2 = x->internal,
                    .args = x->args ? table_dup(x->args) : NULL};
    return rec_add(arg, r);
}

static int on_q(void *arg, const struct catalog_queue *q)
{
    struct rec r = {.kind = 'q',
                    .a = tern_xstrdup(q->vhost),
                    .b = tern_xstrdup(q->name),
                    .c = dup_or_null(q->log_name),
                    .f1 = q->auto_delete,
                    .args = q->args ? table_dup(q->args) : NULL};
    return rec_add(arg, r);
}

static int on_b(void *arg, const struct catalog_binding *b)
{
    struct rec r = {.kind = 'b',
                    .a = tern_xstrdup(b->vhost),
                    .b = tern_xstrdup(b->source),
                    .c = tern_xstrdup(b->dest),
                    .d = tern_xstrdup(b->key),
                    .f1 = b->dest_is_exchange,
                    .args = b->args ? table_dup(b->args) : NULL};
    return rec_add(arg, r);
}

static int on_t(void *arg, const struct catalog_topic *t)
{
    struct rec r = {.kind = 't',
                    .a = tern_xstrdup(t->name),
                    .c = tern_xstrdup(t->log_prefix),
                    .args = t->configs ? table_dup(t->configs) : NULL,
                    .n1 = t->partitions};
    return rec_add(arg, r);
}

static int on_o(void *arg, const struct catalog_offset *o)
{
    struct rec r = {.kind = 'o',
                    .a = tern_xstrdup(o->group),
                    .b = tern_xstrdup(o->topic),
                    .d = dup_or_null(o->metadata),
                    .n1 = o->partition,
                    .n2 = o->offset,
                    .n3 = o->leader_epoch,
                    .n4 = o->commit_ms};
    return rec_add(arg, r);
}

static const struct catalog_loader loader = {
    .exchange = on_x, .queue = on_q, .binding = on_b, .topic = on_t, .offset = on_o};

static void recs_free(struct recs *rs)
{
    for (size_t i = 0; i < rs->n; i++) {
        free(rs->r[i].a);
        free(rs->r[i].b);
        free(rs->r[i].c);
        free(rs->r[i].d);
        table_free(rs->r[i].args);
    }
    free(rs->r);
    memset(rs, 0, sizeof(*rs));
}

static void load_ok(struct catalog *c, struct recs *rs)
{
    recs_free(rs);
    int rc = catalog_load(c, &loader, rs);
    if (rc != 0)
        fail_msg("catalog_load: %d %s", rc, catalog_errmsg(c));
}

static size_t count_kind(const struct recs *rs, char kind)
{
    size_t n = 0;
    for (size_t i = 0; i < rs->n; i++)
        n += rs->r[i].kind == kind;
    return n;
}

/* ---- fixtures ------------------------------------------------------------------------------- */

static struct table *sample_args(void)
{
    struct table *t = table_new();
    table_set_str(t, "alternate-exchange", "ae");
    table_set_int(t, "x-max-length", 1000);
    table_set_bool(t, "x-flag", true);
    struct table *inner = table_new();
    table_set_str(inner, "z", "last");
    table_set_int(inner, "a", -5);
    table_set(t, "nested", (struct tval){.kind = TV_TABLE, .t = inner});
    return t;
}

static void put_x(struct catalog *c, const char *name, const char *type, const struct table *args)
{
    struct catalog_exchange x = {"/", name, type, false, false, args};
    assert_int_equal(catalog_put_exchange(c, &x), 0);
}

static void put_q(struct catalog *c, const char *name, const struct table *args)
{
    char log[300];
    snprintf(log, sizeof(log), "q.%s", name);
    struct catalog_queue q = {"/", name, false, args, log};
    assert_int_equal(catalog_put_queue(c, &q), 0);
}

static void put_b(struct catalog *c, const char *src, bool to_x, const char *dest, const char *key,
                  const struct table *args)
{
    struct catalog_binding b = {"/", src, to_x, dest, key, args};
    assert_int_equal(catalog_put_binding(c, &b), 0);
}

/* ---- tests ---------------------------------------------------------------------------------- */

static void test_exchange_round_trip(void **state)
{
    (void)state;
    struct catalog *c = open_ok();
    struct table *args = sample_args();
    struct catalog_exchange x1 = {"/", "amq.direct", "direct", false, false, NULL};
    struct catalog_exchange x2 = {"v2", "events", "topic", true, true, args};
    assert_int_equal(catalog_put_exchange(c, &x1), 0);
    assert_int_equal(catalog_put_exchange(c, &x2), 0);
    c = reopen(c);

    struct recs rs = {0};
    load_ok(c, &rs);
    assert_int_equal(rs.n, 2);
    assert_string_equal(rs.r[0].a, "/");
    assert_string_equal(rs.r[0].b, "amq.direct");
    assert_string_equal(rs.r[0].c, "direct");
    assert_false(rs.r[0].f1);
    assert_false(rs.r[0].f2);
    assert_null(rs.r[0].args);
    assert_string_equal(rs.r[1].a, "v2");
    assert_string_equal(rs.r[1].b, "events");
    assert_string_equal(rs.r[1].c, "topic");
    assert_true(rs.r[1].f1);
    assert_true(rs.r[1].f2);
    assert_true(table_equal(rs.r[1].args, args));
    recs_free(&rs);
    table_free(args);
    catalog_close(c);
}

static void test_queue_round_trip(void **state)
{
    (void)state;
    struct catalog *c = open_ok();
    struct table *args = sample_args();
    struct catalog_queue q1 = {"/", "orders", true, args, "q.orders"};
    struct catalog_queue q2 = {"/", "plain", false, NULL, NULL};
    assert_int_equal(catalog_put_queue(c, &q1), 0);
    assert_int_equal(catalog_put_queue(c, &q2), 0);
    c = reopen(c);

    struct recs rs = {0};
    load_ok(c, &rs);
    assert_int_equal(rs.n, 2);
    assert_int_equal(rs.r[0].kind, 'q');
    assert_string_equal(rs.r[0].b, "orders");
    assert_string_equal(rs.r[0].c, "q.orders");
    assert_true(rs.r[0].f1);
    assert_true(table_equal(rs.r[0].args, args));
    assert_string_equal(rs.r[1].b, "plain");
    assert_null(rs.r[1].c);
    assert_false(rs.r[1].f1);
    assert_null(rs.r[1].args);
    recs_free(&rs);
    table_free(args);
    catalog_close(c);
}

static void test_binding_round_trip(void **state)
{
    (void)state;
    struct catalog *c = open_ok();
    struct table *args = sample_args();
    put_b(c, "x", false, "q", "rk", NULL);
    put_b(c, "x", true, "x2", "#", args);
    put_b(c, "x", false, "q", "", NULL);
    c = reopen(c);

    struct recs rs = {0};
    load_ok(c, &rs);
    assert_int_equal(rs.n, 3);
    assert_int_equal(rs.r[0].kind, 'b');
    assert_string_equal(rs.r[0].b, "x");
    assert_false(rs.r[0].f1);
    assert_string_equal(rs.r[0].c, "q");
    assert_string_equal(rs.r[0].d, "rk");
    assert_null(rs.r[0].args);
    assert_true(rs.r[1].f1);
    assert_string_equal(rs.r[1].c, "x2");
    assert_string_equal(rs.r[1].d, "#");
    assert_true(table_equal(rs.r[1].args, args));
    assert_string_equal(rs.r[2].d, "");
    recs_free(&rs);
    table_free(args);
    catalog_close(c);
}

static void test_upsert_keeps_place(void **state)
{
    (void)state;
    struct catalog *c = open_ok();
    struct table *args = sample_args();
    put_x(c, "a", "direct", NULL);
    put_x(c, "b", "fanout", NULL);
    put_x(c, "a", "headers", args);
    put_q(c, "q1", NULL);
    put_q(c, "q2", NULL);
    struct catalog_queue q1 = {"/", "q1", true, args, "q.q1-new"};
    assert_int_equal(catalog_put_queue(c, &q1), 0);
    put_b(c, "a", false, "q1", "k", args);
    put_b(c, "a", false, "q1", "k", args); /* same binding again: no duplicate */

    struct recs rs = {0};
    load_ok(c, &rs);
    assert_int_equal(rs.n, 5);
    assert_string_equal(rs.r[0].b, "a");
    assert_string_equal(rs.r[0].c, "headers");
    assert_true(table_equal(rs.r[0].args, args));
    assert_string_equal(rs.r[1].b, "b");
    assert_string_equal(rs.r[2].b, "q1");
    assert_string_equal(rs.r[2].c, "q.q1-new");
    assert_true(rs.r[2].f1);
    assert_string_equal(rs.r[3].b, "q2");
    assert_int_equal(rs.r[4].kind, 'b');
    recs_free(&rs);
    table_free(args);
    catalog_close(c);
}

/* Binding identity compares args as tables: key order and NULL vs empty do not matter. */
static void test_binding_identity(void **state)
{
    (void)state;
    struct catalog *c = open_ok();
    struct table *ab = table_new(), *ba = table_new(), *other = table_new(), *empty = table_new();
    table_set_int(ab, "a", 1);
    table_set_str(ab, "b", "two");
    table_set_str(ba, "b", "two");
    table_set_int(ba, "a", 1);
    table_set_int(other, "a", 2);
    table_set_str(other, "b", "two");

    put_b(c, "h", false, "q", "", ab);
    put_b(c, "h", false, "q", "", ba);
    put_b(c, "h", false, "q", "", other);
    put_b(c, "h", false, "q", "", NULL);
    put_b(c, "h", false, "q", "", empty);
    struct recs rs = {0};
    load_ok(c, &rs);
    assert_int_equal(rs.n, 3);

    struct catalog_binding del = {"/", "h", false, "q", "", ba};
    assert_int_equal(catalog_del_binding(c, &del), 0);
    del.args = empty;
    assert_int_equal(catalog_del_binding(c, &del), 0);
    load_ok(c, &rs);
    assert_int_equal(rs.n, 1);
    assert_true(table_equal(rs.r[0].args, other));
    assert_int_equal(catalog_del_binding(c, &del), 0); /* absent: not an error */
    recs_free(&rs);
    table_free(ab);
    table_free(ba);
    table_free(other);
    table_free(empty);
    catalog_close(c);
}

static void test_cascade_exchange(void **state)
{
    (void)state;
    struct catalog *c = open_ok();
    put_x(c, "X", "topic", NULL);
    put_x(c, "Y", "topic", NULL);
    put_q(c, "X", NULL);                  /* a queue with the exchange's name */
    put_b(c, "X", false, "q", "a", NULL); /* source X: goes */
    put_b(c, "Y", true, "X", "b", NULL);  /* to exchange X: goes */
    put_b(c, "Y", false, "X", "c", NULL); /* to queue X: stays */
    put_b(c, "Y", false, "q", "d", NULL); /* unrelated: stays */
    struct catalog_binding other = {"v2", "X", false, "q", "e", NULL}; /* other vhost: stays */
    assert_int_equal(catalog_put_binding(c, &other), 0);

    assert_int_equal(catalog_del_exchange(c, "/", "X"), 0);
    assert_int_equal(catalog_del_exchange(c, "/", "X"), 0); /* absent: not an error */
    c = reopen(c);
    struct recs rs = {0};
    load_ok(c, &rs);
    assert_int_equal(count_kind(&rs, 'x'), 1);
    assert_int_equal(count_kind(&rs, 'q'), 1);
    assert_int_equal(count_kind(&rs, 'b'), 3);
    assert_string_equal(rs.r[0].b, "Y");
    assert_string_equal(rs.r[2].d, "c");
    assert_string_equal(rs.r[3].d, "d");
    assert_string_equal(rs.r[4].d, "e");
    recs_free(&rs);
    catalog_close(c);
}

static void test_cascade_queue(void **state)
{
    (void)state;
    struct catalog *c = open_ok();
    put_x(c, "q", "direct", NULL); /* an exchange with the queue's name */
    put_q(c, "q", NULL);
    put_q(c, "r", NULL);
    put_b(c, "amq.direct", false, "q", "a", NULL); /* to queue q: goes */
    put_b(c, "amq.direct", true, "q", "b", NULL);  /* to exchange q: stays */
    put_b(c, "q", false, "r", "c", NULL);          /* from exchange q: stays */
    put_b(c, "amq.direct", false, "r", "d", NULL); /* stays */

    assert_int_equal(catalog_del_queue(c, "/", "q"), 0);
    assert_int_equal(catalog_del_queue(c, "/", "nope"), 0);
    c = reopen(c);
    struct recs rs = {0};
    load_ok(c, &rs);
    assert_int_equal(count_kind(&rs, 'x'), 1);
    assert_int_equal(count_kind(&rs, 'q'), 1);
    assert_string_equal(rs.r[1].b, "r");
    assert_int_equal(count_kind(&rs, 'b'), 3);
    assert_string_equal(rs.r[2].d, "b");
    assert_string_equal(rs.r[3].d, "c");
    assert_string_equal(rs.r[4].d, "d");
    recs_free(&rs);
    catalog_close(c);
}

static void test_many_queues_in_order(void **state)
{
    (void)state;
    enum { N = 10000 };
    struct catalog *c = open_ok();
    char name[32];
    assert_int_equal(catalog_begin(c), 0);
    for (int i = 0; i < N; i++) {
        /* names not in sorted order, so only insertion order can give i's order */
        snprintf(name, sizeof(name), "q%d", (i * 7919) % N);
        put_q(c, name, NULL);
    }
    assert_int_equal(catalog_commit(c), 0);
    /* deleting and re-adding one moves it to the end */
    assert_int_equal(catalog_del_queue(c, "/", "q0"), 0);
    put_q(c, "q0", NULL);
    c = reopen(c);

    struct recs rs = {0};
    load_ok(c, &rs);
    assert_int_equal(rs.n, N);
    for (int i = 1; i < N; i++) {
        snprintf(name, sizeof(name), "q%d", (i * 7919) % N);
        assert_string_equal(rs.r[i - 1].b, name);
    }
    assert_string_equal(rs.r[N - 1].b, "q0");
    recs_free(&rs);
    catalog_close(c);
}

static void test_load_stops_early(void **state)
{
    (void)state;
    struct catalog *c = open_ok();
    put_x(c, "a", "direct", NULL);
    put_x(c, "b", "direct", NULL);
    put_x(c, "c", "direct", NULL);
    put_q(c, "q", NULL);
    put_b(c, "a", false, "q", "", NULL);

    struct recs rs = {.stop_after = 2};
    assert_int_equal(catalog_load(c, &loader, &rs), 99);
    assert_int_equal(rs.n, 2);
    recs_free(&rs);
    rs.stop_after = 4; /* stops at the queue: no binding */
    assert_int_equal(catalog_load(c, &loader, &rs), 99);
    assert_int_equal(rs.n, 4);
    assert_int_equal(rs.r[3].kind, 'q');
    /* the statements were reset: a full load works afterwards */
    load_ok(c, &rs);
    assert_int_equal(rs.n, 5);
    /* a NULL callback skips its kind */
    struct catalog_loader only_b = {.binding = on_b};
    recs_free(&rs);
    assert_int_equal(catalog_load(c, &only_b, &rs), 0);
    assert_int_equal(rs.n, 1);
    assert_int_equal(rs.r[0].kind, 'b');
    recs_free(&rs);
    catalog_close(c);
}

/* Rows visible to a second connection: what is committed. */
static int committed_queues(void)
{
    sqlite3 *db;
    sqlite3_stmt *st;
    assert_int_equal(sqlite3_open_v2(dbpath, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(db, "SELECT count(*) FROM queues", -1, &st, NULL),
                     SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    int n = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    sqlite3_close(db);
    return n;
}

static void exec_other(const char *sql)
{
    sqlite3 *db;
    char *err = NULL;
    assert_int_equal(sqlite3_open(dbpath, &db), SQLITE_OK);
    if (sqlite3_exec(db, sql, NULL, NULL, &err) != SQLITE_OK)
        fail_msg("%s: %s", sql, err);
    sqlite3_close(db);
}

static void test_batch(void **state)
{
    (void)state;
    struct catalog *c = open_ok();
    assert_int_equal(catalog_commit(c), -EINVAL);
    put_q(c, "before", NULL);
    assert_int_equal(committed_queues(), 1);

    assert_int_equal(catalog_begin(c), 0);
    put_q(c, "a", NULL);
    assert_int_equal(catalog_begin(c), 0);
    put_q(c, "b", NULL);
    assert_int_equal(catalog_commit(c), 0); /* inner: nothing committed yet */
    assert_int_equal(committed_queues(), 1);
    put_q(c, "c", NULL);
    assert_int_equal(catalog_commit(c), 0);
    assert_int_equal(committed_queues(), 4);

    /* an open batch is rolled back by close */
    assert_int_equal(catalog_begin(c), 0);
    put_q(c, "lost", NULL);
    catalog_close(c);
    assert_int_equal(committed_queues(), 4);
}

/* A change that SQLite refuses inside a batch undoes only itself. */
static void test_failure_inside_batch(void **state)
{
    (void)state;
    struct catalog *c = open_ok();
    exec_other("CREATE TRIGGER refuse BEFORE INSERT ON queues WHEN NEW.name = 'bad'"
               " BEGIN SELECT RAISE(ABORT, 'refused by test'); END;");
    struct catalog_queue bad = {"/", "bad", false, NULL, NULL};

    assert_int_equal(catalog_put_queue(c, &bad), -EIO);
    assert_non_null(strstr(catalog_errmsg(c), "refused by test"));
    assert_int_equal(committed_queues(), 0);

    assert_int_equal(catalog_begin(c), 0);
    put_q(c, "a", NULL);
    assert_int_equal(catalog_put_queue(c, &bad), -EIO);
    put_q(c, "b", NULL);
    assert_int_equal(catalog_commit(c), 0);
    struct recs rs = {0};
    load_ok(c, &rs);
    assert_int_equal(rs.n, 2);
    assert_string_equal(rs.r[0].b, "a");
    assert_string_equal(rs.r[1].b, "b");
    recs_free(&rs);

    struct catalog_queue noname = {"/", NULL, false, NULL, NULL};
    assert_int_equal(catalog_put_queue(c, &noname), -EINVAL);
    catalog_close(c);
}

static void write_file(const char *path, const void *p, size_t n)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, p, n), (ssize_t)n);
    close(fd);
}

static void test_not_a_database(void **state)
{
    (void)state;
    char junk[8192];
    for (size_t i = 0; i < sizeof(junk); i++)
        junk[i] = (char)(i * 31 + 7);
    write_file(dbpath, junk, sizeof(junk));
    char err[512] = "";
    struct catalog *c = (struct catalog *)1;
    assert_int_equal(catalog_open(dbpath, &c, err, sizeof(err)), TERN_ECORRUPT);
    assert_null(c);
    assert_non_null(strstr(err, "not a database"));

    /* a directory where the file should be */
    snprintf(dbpath, sizeof(dbpath), "%s", dir);
    assert_true(catalog_open(dbpath, &c, err, sizeof(err)) < 0);
    assert_null(c);
    assert_true(err[0] != '\0');
}

/* A real catalog whose pages are overwritten: open or load fails cleanly, never crashes. */
static void test_damaged_pages(void **state)
{
    (void)state;
    struct catalog *c = open_ok();
    struct table *args = sample_args();
    assert_int_equal(catalog_begin(c), 0);
    for (int i = 0; i < 500; i++) {
        char name[32];
        snprintf(name, sizeof(name), "queue-%d", i);
        put_q(c, name, args);
        put_b(c, "amq.direct", false, name, name, args);
    }
    assert_int_equal(catalog_commit(c), 0);
    table_free(args);
    catalog_close(c); /* checkpoints the WAL into the main file */

    int64_t size = tu_file_size(dbpath);
    assert_true(size > 8 * 4096);
    int failures = 0;
    for (int64_t off = 4096; off + 4096 <= size; off += 4096 * 3) {
        char tmp[4096 + 32];
        snprintf(tmp, sizeof(tmp), "%s.copy", dbpath);
        /* damage a fresh copy each round: one page with garbage in the middle */
        int in = open(dbpath, O_RDONLY);
        assert_true(in >= 0);
        char *all = malloc((size_t)size);
        assert_int_equal(read(in, all, (size_t)size), (ssize_t)size);
        close(in);
        for (int k = 100; k < 4000; k++)
            all[off + k] = (char)(k * 13);
        write_file(tmp, all, (size_t)size);
        free(all);

        char err[512] = "";
        struct catalog *d = NULL;
        int rc = catalog_open(tmp, &d, err, sizeof(err));
        if (rc == 0) {
            struct recs rs = {0};
            rc = catalog_load(d, &loader, &rs);
            recs_free(&rs);
            catalog_close(d);
        }
        if (rc != 0) {
            assert_true(rc < 0);
            failures++;
        }
        unlink(tmp);
        char wal[4200];
        snprintf(wal, sizeof(wal), "%s-wal", tmp);
        unlink(wal);
        snprintf(wal, sizeof(wal), "%s-shm", tmp);
        unlink(wal);
    }
    assert_true(failures > 0);
}

static void test_stored_args_corrupt(void **state)
{
    (void)state;
    struct catalog *c = open_ok();
    put_x(c, "x", "direct", NULL);
    exec_other("UPDATE exchanges SET args = x'0000000501' WHERE name = 'x'");
    struct recs rs = {0};
    assert_int_equal(catalog_load(c, &loader, &rs), TERN_ECORRUPT);
    assert_non_null(strstr(catalog_errmsg(c), "args"));
    assert_int_equal(rs.n, 0);
    /* bytes after the table are damage too */
    exec_other("UPDATE exchanges SET args = x'0000000000' WHERE name = 'x'");
    assert_int_equal(catalog_load(c, &loader, &rs), TERN_ECORRUPT);
    recs_free(&rs);
    catalog_close(c);
}

static void test_newer_schema_refused(void **state)
{
    (void)state;
    catalog_close(open_ok());
    exec_other("PRAGMA user_version = 99");
    char err[512] = "";
    struct catalog *c = NULL;
    assert_int_equal(catalog_open(dbpath, &c, err, sizeof(err)), TERN_ENOTSUP);
    assert_null(c);
    assert_non_null(strstr(err, "99"));
}

static void test_wal_and_version(void **state)
{
    (void)state;
    catalog_close(open_ok());
    sqlite3 *db;
    sqlite3_stmt *st;
    assert_int_equal(sqlite3_open(dbpath, &db), SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    assert_string_equal((const char *)sqlite3_column_text(st, 0), "wal");
    sqlite3_finalize(st);
    assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    assert_int_equal(sqlite3_column_int(st, 0), CATALOG_SCHEMA_VERSION);
    sqlite3_finalize(st);
    sqlite3_close(db);
}

/* ---- schema v2: topics, offsets, producer ids ----------------------------------------------- */

static void put_t(struct catalog *c, const char *name, int32_t parts, const struct table *configs)
{
    char prefix[300];
    snprintf(prefix, sizeof(prefix), "k.%s.", name);
    struct catalog_topic t = {name, parts, prefix, configs};
    assert_int_equal(catalog_put_topic(c, &t), 0);
}

static void put_o(struct catalog *c, const char *group, const char *topic, int32_t part,
                  int64_t off)
{
    struct catalog_offset o = {group, topic, part, off, 7, "meta", 1700000000000LL + off};
    assert_int_equal(catalog_put_offsets(c, &o, 1), 0);
}

/* Rows of table visible to a second connection: what is committed. */
static int committed_rows(const char *table)
{
    sqlite3 *db;
    sqlite3_stmt *st;
    char sql[128];
    snprintf(sql, sizeof(sql), "SELECT count(*) FROM %s", table);
    assert_int_equal(sqlite3_open_v2(dbpath, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    int n = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    sqlite3_close(db);
    return n;
}

static struct table *sample_configs(void)
{
    struct table *t = table_new();
    table_set_str(t, "retention.ms", "604800000");
    table_set_str(t, "cleanup.policy", "delete");
    return t;
}

static void test_topic_round_trip(void **state)
{
    (void)state;
    struct catalog *c = open_ok();
    struct table *configs = sample_configs(), *other = table_new();
    table_set_str(other, "retention.ms", "1000");
    put_t(c, "orders", 4, configs);
    put_t(c, "events", 1, NULL);
    put_t(c, "audit", 2, NULL);
    put_t(c, "orders", 8, other); /* upsert: keeps its place, takes the new fields */
    struct catalog_topic bad = {"x", 0, "k.x.", NULL};
    assert_int_equal(catalog_put_topic(c, &bad), -EINVAL);
    bad.partitions = 1;
    bad.log_prefix = NULL;
    assert_int_equal(catalog_put_topic(c, &bad), -EINVAL);
    bad.name = NULL;
    bad.log_prefix = "p";
    assert_int_equal(catalog_put_topic(c, &bad), -EINVAL);
    c = reopen(c);

    struct recs rs = {0};
    load_ok(c, &rs);
    assert_int_equal(rs.n, 3);
    assert_int_equal(rs.r[0].kind, 't');
    assert_string_equal(rs.r[0].a, "orders");
    assert_int_equal(rs.r[0].n1, 8);
    assert_string_equal(rs.r[0].c, "k.orders.");
    assert_true(table_equal(rs.r[0].args, other));
    assert_string_equal(rs.r[1].a, "events");
    assert_int_equal(rs.r[1].n1, 1);
    assert_null(rs.r[1].args);
    assert_string_equal(rs.r[2].a, "audit");

    /* deleted and re-added: moves to the end */
    assert_int_equal(catalog_del_topic(c, "orders"), 0);
    assert_int_equal(catalog_del_topic(c, "orders"), 0); /* absent: not an error */
    put_t(c, "orders", 3, configs);
    load_ok(c, &rs);
    assert_int_equal(rs.n, 3);
    assert_string_equal(rs.r[2].a, "orders");
    assert_true(table_equal(rs.r[2].args, configs));
    recs_free(&rs);
    table_free(configs);
    table_free(other);
    catalog_close(c);
}

static void test_offsets_round_trip(void **state)
{
    (void)state;
    struct catalog *c = open_ok();
    /* one commit, out of order, with a NULL metadata and 64-bit values */
    struct catalog_offset v[] = {
        {"g2", "t", 0, 5, -1, NULL, 1},
        {"g1", "t", 10, INT64_C(1) << 40, 3, "", INT64_C(1700000000123)},
        {"g1", "t", 2, 0, 0, "m", 2},
        {"g1", "a", 1, 9, 1, "x", 3},
    };
    assert_int_equal(catalog_put_offsets(c, v, 4), 0);
    assert_int_equal(catalog_put_offsets(c, NULL, 0), 0);
    c = reopen(c);

    struct recs rs = {0};
    load_ok(c, &rs);
    assert_int_equal(rs.n, 4);
    /* ordered by (group, topic, partition), partitions numerically */
    const char *want[][2] = {{"g1", "a"}, {"g1", "t"}, {"g1", "t"}, {"g2", "t"}};
    const int64_t want_part[] = {1, 2, 10, 0};
    for (size_t i = 0; i < 4; i++) {
        assert_int_equal(rs.r[i].kind, 'o');
        assert_string_equal(rs.r[i].a, want[i][0]);
        assert_string_equal(rs.r[i].b, want[i][1]);
        assert_int_equal(rs.r[i].n1, want_part[i]);
    }
    assert_int_equal(rs.r[2].n2, INT64_C(1) << 40);
    assert_int_equal(rs.r[2].n3, 3);
    assert_string_equal(rs.r[2].d, "");
    assert_int_equal(rs.r[2].n4, INT64_C(1700000000123));
    assert_null(rs.r[3].d);
    assert_int_equal(rs.r[3].n3, -1);

    /* upsert by (group, topic, partition) */
    struct catalog_offset up = {"g2", "t", 0, 6, 2, "new", 4};
    assert_int_equal(catalog_put_offsets(c, &up, 1), 0);
    load_ok(c, &rs);
    assert_int_equal(rs.n, 4);
    assert_int_equal(rs.r[3].n2, 6);
    assert_int_equal(rs.r[3].n3, 2);
    assert_string_equal(rs.r[3].d, "new");
    assert_int_equal(rs.r[3].n4, 4);
    recs_free(&rs);
    catalog_close(c);
}

/* All n offsets of one call are stored, or none: outside and inside a batch. */
/* An unsynced commit is stored and reloads like a synced one; the WAL it went to can be opened
 * and fsynced by the caller; inside a batch it is the batch's; bad input is refused. */
static void test_offsets_unsynced(void **state)
{
    (void)state;
    struct catalog *c = open_ok();
    struct catalog_offset v[] = {{"g", "t", 0, 41, -1, "m", 1}, {"g", "t", 1, 42, -1, NULL, 1}};
    assert_int_equal(catalog_put_offsets_unsynced(c, v, 2), 0);
    assert_int_equal(catalog_put_offsets_unsynced(c, NULL, 0), 0);
    int fd = catalog_wal_open(c);
    assert_true(fd >= 0);
    assert_true(lseek(fd, 0, SEEK_END) > 0); /* the commit is in the WAL */
    assert_int_equal(fdatasync(fd), 0);
    close(fd);
    assert_int_equal(catalog_begin(c), 0);
    assert_int_equal(catalog_put_offsets_unsynced(c, v, 1), 0); /* inside a batch: the batch's */
    assert_int_equal(catalog_commit(c), 0);
    struct catalog_offset bad = {"g", NULL, 0, 1, -1, NULL, 1};
    assert_int_equal(catalog_put_offsets_unsynced(c, &bad, 1), -EINVAL);
    c = reopen(c);
    struct recs rs = {0};
    load_ok(c, &rs);
    assert_int_equal(rs.n, 2);
    recs_free(&rs);
    catalog_close(c);
}

static void test_offsets_atomic(void **state)
{
    (void)state;
    struct catalog *c = open_ok();
    exec_other("CREATE TRIGGER refuse BEFORE INSERT ON group_offsets WHEN NEW.partition = 99"
               " BEGIN SELECT RAISE(ABORT, 'refused by test'); END;");
    struct catalog_offset v[] = {
        {"g", "t", 0, 1, 0, NULL, 1},
        {"g", "t", 1, 1, 0, NULL, 1},
        {"g", "t", 99, 1, 0, NULL, 1},
    };
    assert_int_equal(catalog_put_offsets(c, v, 3), -EIO);
    assert_non_null(strstr(catalog_errmsg(c), "refused by test"));
    assert_int_equal(committed_rows("group_offsets"), 0);
    v[1].topic = NULL;
    assert_int_equal(catalog_put_offsets(c, v, 2), -EINVAL);
    assert_int_equal(committed_rows("group_offsets"), 0);
    v[1].topic = "t";

    assert_int_equal(catalog_begin(c), 0);
    put_o(c, "h", "t", 0, 1);
    assert_int_equal(catalog_put_offsets(c, v, 3), -EIO);
    put_o(c, "h", "t", 1, 1);
    assert_int_equal(committed_rows("group_offsets"), 0);
    assert_int_equal(catalog_commit(c), 0);
    assert_int_equal(committed_rows("group_offsets"), 2);
    assert_int_equal(catalog_put_offsets(c, v, 2), 0);
    assert_int_equal(committed_rows("group_offsets"), 4);
    catalog_close(c);
}

static void test_del_topic_cascades(void **state)
{
    (void)state;
    struct catalog *c = open_ok();
    put_t(c, "t1", 2, NULL);
    put_t(c, "t2", 2, NULL);
    put_o(c, "g1", "t1", 0, 10);
    put_o(c, "g1", "t2", 0, 11);
    put_o(c, "g2", "t1", 1, 12);
    put_o(c, "g2", "t2", 1, 13);
    put_o(c, "g3", "t1", 0, 14); /* only offsets of t1: the group disappears with them */
    assert_int_equal(catalog_del_topic(c, "t1"), 0);
    c = reopen(c);

    struct recs rs = {0};
    load_ok(c, &rs);
    assert_int_equal(count_kind(&rs, 't'), 1);
    assert_int_equal(count_kind(&rs, 'o'), 2);
    assert_string_equal(rs.r[0].a, "t2");
    assert_string_equal(rs.r[1].a, "g1");
    assert_string_equal(rs.r[1].b, "t2");
    assert_string_equal(rs.r[2].a, "g2");
    assert_string_equal(rs.r[2].b, "t2");
    assert_int_equal(rs.r[2].n2, 13);
    /* offsets of a topic the catalog never had go too */
    put_o(c, "g1", "ghost", 0, 1);
    assert_int_equal(catalog_del_topic(c, "ghost"), 0);
    load_ok(c, &rs);
    assert_int_equal(count_kind(&rs, 'o'), 2);
    recs_free(&rs);
    catalog_close(c);
}

static void test_del_group(void **state)
{
    (void)state;
    struct catalog *c = open_ok();
    put_o(c, "g1", "t", 0, 1);
    put_o(c, "g1", "u", 3, 2);
    put_o(c, "g10", "t", 0, 3); /* a prefix match must not count */
    put_o(c, "g2", "t", 0, 4);
    assert_int_equal(catalog_del_group(c, "g1"), 0);
    assert_int_equal(catalog_del_group(c, "g1"), 0);
    assert_int_equal(catalog_del_group(c, NULL), -EINVAL);
    c = reopen(c);
    struct recs rs = {0};
    load_ok(c, &rs);
    assert_int_equal(rs.n, 2);
    assert_string_equal(rs.r[0].a, "g10");
    assert_string_equal(rs.r[1].a, "g2");
    recs_free(&rs);
    catalog_close(c);
}

static void test_producer_ids(void **state)
{
    (void)state;
    struct catalog *c = open_ok();
    int64_t id = -5;
    for (int64_t want = 0; want < 3; want++) {
        assert_int_equal(catalog_next_producer_id(c, &id), 0);
        assert_int_equal(id, want);
    }
    c = reopen(c);
    assert_int_equal(catalog_next_producer_id(c, &id), 0);
    assert_int_equal(id, 3);

    /* refused inside a batch, where a rollback could hand the id out again */
    assert_int_equal(catalog_begin(c), 0);
    id = -5;
    assert_int_equal(catalog_next_producer_id(c, &id), -EBUSY);
    assert_int_equal(id, -5);
    assert_int_equal(catalog_commit(c), 0);
    assert_int_equal(catalog_next_producer_id(c, &id), 0);
    assert_int_equal(id, 4);

    /* a damaged counter is reported, not papered over */
    exec_other("DELETE FROM producer_ids");
    assert_int_equal(catalog_next_producer_id(c, &id), TERN_ECORRUPT);
    assert_int_equal(id, 4);
    catalog_close(c);
}

/* Every kind in load order, and a load stopped inside the new kinds. */
static void test_load_order_all_kinds(void **state)
{
    (void)state;
    struct catalog *c = open_ok();
    put_o(c, "g", "t", 0, 1); /* inserted first, loaded last */
    put_t(c, "t", 1, NULL);
    put_b(c, "x", false, "q", "", NULL);
    put_q(c, "q", NULL);
    put_x(c, "x", "direct", NULL);
    struct recs rs = {0};
    load_ok(c, &rs);
    assert_int_equal(rs.n, 5);
    char kinds[6] = "";
    for (size_t i = 0; i < rs.n; i++)
        kinds[i] = rs.r[i].kind;
    assert_string_equal(kinds, "xqbto");
    recs_free(&rs);
    rs.stop_after = 4;
    assert_int_equal(catalog_load(c, &loader, &rs), 99);
    assert_int_equal(rs.n, 4);
    recs_free(&rs);
    struct catalog_loader only_o = {.offset = on_o};
    assert_int_equal(catalog_load(c, &only_o, &rs), 0);
    assert_int_equal(rs.n, 1);
    assert_int_equal(rs.r[0].kind, 'o');
    recs_free(&rs);
    catalog_close(c);
}

static void test_stored_configs_corrupt(void **state)
{
    (void)state;
    struct catalog *c = open_ok();
    put_t(c, "t", 1, NULL);
    exec_other("UPDATE topics SET configs = x'0000000501' WHERE name = 't'");
    struct recs rs = {0};
    assert_int_equal(catalog_load(c, &loader, &rs), TERN_ECORRUPT);
    assert_non_null(strstr(catalog_errmsg(c), "configs"));
    recs_free(&rs);
    catalog_close(c);
}

/* A database written by a v1 build opens, keeps its rows and gains the v2 tables. */
static void test_migrate_from_v1(void **state)
{
    (void)state;
    exec_other(
        "CREATE TABLE exchanges(id INTEGER PRIMARY KEY, vhost TEXT NOT NULL, name TEXT NOT NULL,"
        " type TEXT NOT NULL, auto_delete INTEGER NOT NULL, internal INTEGER NOT NULL,"
        " args BLOB NOT NULL, UNIQUE(vhost, name)) STRICT;"
        "CREATE TABLE queues(id INTEGER PRIMARY KEY, vhost TEXT NOT NULL, name TEXT NOT NULL,"
        " auto_delete INTEGER NOT NULL, args BLOB NOT NULL, log_name TEXT,"
        " UNIQUE(vhost, name)) STRICT;"
        "CREATE TABLE bindings(id INTEGER PRIMARY KEY, vhost TEXT NOT NULL, source TEXT NOT NULL,"
        " dest_is_exchange INTEGER NOT NULL, dest TEXT NOT NULL, routing_key TEXT NOT NULL,"
        " args BLOB NOT NULL,"
        " UNIQUE(vhost, source, dest_is_exchange, dest, routing_key, args)) STRICT;"
        "CREATE INDEX bindings_dest ON bindings(vhost, dest_is_exchange, dest);"
        "INSERT INTO queues(vhost, name, auto_delete, args, log_name)"
        " VALUES('/', 'old', 0, x'00000000', 'q.old');"
        "INSERT INTO bindings(vhost, source, dest_is_exchange, dest, routing_key, args)"
        " VALUES('/', 'amq.direct', 0, 'old', 'k', x'00000000');"
        "PRAGMA user_version = 1;");
    struct catalog *c = open_ok();
    put_t(c, "t", 2, NULL);
    put_o(c, "g", "t", 1, 42);
    int64_t id = -1;
    assert_int_equal(catalog_next_producer_id(c, &id), 0);
    assert_int_equal(id, 0);
    c = reopen(c);
    struct recs rs = {0};
    load_ok(c, &rs);
    assert_int_equal(rs.n, 4);
    assert_int_equal(rs.r[0].kind, 'q');
    assert_string_equal(rs.r[0].b, "old");
    assert_string_equal(rs.r[0].c, "q.old");
    assert_int_equal(rs.r[1].kind, 'b');
    assert_int_equal(rs.r[2].kind, 't');
    assert_int_equal(rs.r[3].kind, 'o');
    assert_int_equal(rs.r[3].n2, 42);
    recs_free(&rs);
    catalog_close(c);
    test_wal_and_version(state);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_exchange_round_trip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_queue_round_trip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_binding_round_trip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_upsert_keeps_place, setup, teardown),
        cmocka_unit_test_setup_teardown(test_binding_identity, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cascade_exchange, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cascade_queue, setup, teardown),
        cmocka_unit_test_setup_teardown(test_many_queues_in_order, setup, teardown),
        cmocka_unit_test_setup_teardown(test_load_stops_early, setup, teardown),
        cmocka_unit_test_setup_teardown(test_batch, setup, teardown),
        cmocka_unit_test_setup_teardown(test_failure_inside_batch, setup, teardown),
        cmocka_unit_test_setup_teardown(test_not_a_database, setup, teardown),
        cmocka_unit_test_setup_teardown(test_damaged_pages, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stored_args_corrupt, setup, teardown),
        cmocka_unit_test_setup_teardown(test_newer_schema_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_wal_and_version, setup, teardown),
        cmocka_unit_test_setup_teardown(test_topic_round_trip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_offsets_round_trip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_offsets_unsynced, setup, teardown),
        cmocka_unit_test_setup_teardown(test_offsets_atomic, setup, teardown),
        cmocka_unit_test_setup_teardown(test_del_topic_cascades, setup, teardown),
        cmocka_unit_test_setup_teardown(test_del_group, setup, teardown),
        cmocka_unit_test_setup_teardown(test_producer_ids, setup, teardown),
        cmocka_unit_test_setup_teardown(test_load_order_all_kinds, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stored_configs_corrupt, setup, teardown),
        cmocka_unit_test_setup_teardown(test_migrate_from_v1, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
