/*
 * catalog.c - exchanges, queues, bindings, topics, committed offsets and the producer-id
 * counter in SQLite (WAL, synchronous=FULL).
 *
 * Schema (version 2, PRAGMA user_version = 2); STRICT tables, booleans as 0/1 integers, args
 * and configs as base/table.h binary blobs (an absent table is stored as the empty one, four
 * zero bytes). Version 1 had the first three tables; step 2 adds the rest:
 *
 *   exchanges(id INTEGER PRIMARY KEY, vhost, name, type, auto_delete, internal, args)
 *             UNIQUE(vhost, name)
 *   queues   (id INTEGER PRIMARY KEY, vhost, name, auto_delete, args, log_name NULL)
 *             UNIQUE(vhost, name)
 *   bindings (id INTEGER PRIMARY KEY, vhost, source, dest_is_exchange, dest, routing_key,
 *             args)  UNIQUE(vhost, source, dest_is_exchange, dest, routing_key, args)
 *             INDEX(vhost, dest_is_exchange, dest)
 *   topics   (id INTEGER PRIMARY KEY, name UNIQUE, partitions, log_prefix, configs)
 *   group_offsets(group_id, topic, partition, committed_offset, leader_epoch, metadata NULL,
 *             commit_ms)  PRIMARY KEY(group_id, topic, partition), WITHOUT ROWID
 *             INDEX(topic)
 *   producer_ids(id INTEGER PRIMARY KEY CHECK(id = 0), next_id): exactly one row
 *
 * Invariants:
 *   - load order is id order; an upsert updates in place (ON CONFLICT DO UPDATE), so an object
 *     keeps its id, and a new row's id is above every live one, so id order is insertion order;
 *   - binding args are encoded canonically (keys sorted at every nesting level), so two tables
 *     that table_equal() each other give the same blob and the UNIQUE constraint is binding
 *     identity;
 *   - every change runs inside a savepoint: outside a batch the savepoint is the transaction,
 *     inside one (catalog_begin) a failed change undoes only itself. If SQLite rolls the whole
 *     batch back on an I/O error, the batch is marked lost and refuses further changes until
 *     the outer catalog_commit reports the failure.
 *
 * Schema changes: add a step to migrations[] and bump CATALOG_SCHEMA_VERSION; catalog_open
 * runs the missing steps in one transaction.
 */
#include "broker/catalog.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "base/buf.h"
#include "base/table.h"
#include "base/tern.h"
#include "base/tlog.h"
#include "os/file.h"

enum {
    ST_SAVE,
    ST_RELEASE,
    ST_ROLLBACK_TO,
    ST_BEGIN,
    ST_COMMIT,
    ST_ROLLBACK,
    ST_PUT_X,
    ST_PUT_Q,
    ST_PUT_B,
    ST_DEL_X,
    ST_DEL_Q,
    ST_DEL_B,
    ST_DEL_B_SOURCE,
    ST_DEL_B_DEST,
    ST_LOAD_X,
    ST_LOAD_Q,
    ST_LOAD_B,
    ST_PUT_T,
    ST_DEL_T,
    ST_PUT_OFF,
    ST_DEL_OFF_TOPIC,
    ST_DEL_OFF_GROUP,
    ST_NEXT_PID,
    ST_LOAD_T,
    ST_LOAD_OFF,
    ST_COUNT
};

static const char *const stmt_sql[ST_COUNT] = {
    [ST_SAVE] = "SAVEPOINT catalog_op",
    [ST_RELEASE] = "RELEASE catalog_op",
    [ST_ROLLBACK_TO] = "ROLLBACK TO catalog_op",
    [ST_BEGIN] = "BEGIN IMMEDIATE",
    [ST_COMMIT] = "COMMIT",
    [ST_ROLLBACK] = "ROLLBACK",
    [ST_PUT_X] = "INSERT INTO exchanges(vhost, name, type, auto_delete, internal, args)"
                 " VALUES(?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT(vhost, name) DO UPDATE SET"
                 " type = excluded.type, auto_delete = excluded.auto_delete,"
                 " internal = excluded.internal, args = excluded.args",
    [ST_PUT_Q] = "INSERT INTO queues(vhost, name, auto_delete, args, log_name)"
                 " VALUES(?1, ?2, ?3, ?4, ?5) ON CONFLICT(vhost, name) DO UPDATE SET"
                 " auto_delete = excluded.auto_delete, args = excluded.args,"
                 " log_name = excluded.log_name",
    [ST_PUT_B] = "INSERT INTO bindings(vhost, source, dest_is_exchange, dest, routing_key, args)"
                 " VALUES(?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT DO NOTHING",
    [ST_DEL_X] = "DELETE FROM exchanges WHERE vhost = ?1 AND name = ?2",
    [ST_DEL_Q] = "DELETE FROM queues WHERE vhost = ?1 AND name = ?2",
    [ST_DEL_B] = "DELETE FROM bindings WHERE vhost = ?1 AND source = ?2 AND dest_is_exchange = ?3"
                 " AND dest = ?4 AND routing_key = ?5 AND args = ?6",
    [ST_DEL_B_SOURCE] = "DELETE FROM bindings WHERE vhost = ?1 AND source = ?2",
    [ST_DEL_B_DEST] = "DELETE FROM bindings WHERE vhost = ?1 AND dest_is_exchange = ?2"
                      " AND dest = ?3",
    [ST_LOAD_X] = "SELECT vhost, name, type, auto_delete, internal, args, id FROM exchanges"
                  " ORDER BY id",
    [ST_LOAD_Q] = "SELECT vhost, name, auto_delete, args, log_name, id FROM queues ORDER BY id",
    [ST_LOAD_B] = "SELECT vhost, source, dest_is_exchange, dest, routing_key, args, id"
                  " FROM bindings ORDER BY id",
    [ST_PUT_T] = "INSERT INTO topics(name, partitions, log_prefix, configs) VALUES(?1, ?2, ?3, ?4)"
                 " ON CONFLICT(name) DO UPDATE SET partitions = excluded.partitions,"
                 " log_prefix = excluded.log_prefix, configs = excluded.configs",
    [ST_DEL_T] = "DELETE FROM topics WHERE name = ?1",
    [ST_PUT_OFF] = "INSERT INTO group_offsets(group_id, topic, partition, committed_offset,"
                   " leader_epoch, metadata, commit_ms) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7)"
                   " ON CONFLICT(group_id, topic, partition) DO UPDATE SET"
                   " committed_offset = excluded.committed_offset,"
                   " leader_epoch = excluded.leader_epoch, metadata = excluded.metadata,"
                   " commit_ms = excluded.commit_ms",
    [ST_DEL_OFF_TOPIC] = "DELETE FROM group_offsets WHERE topic = ?1",
    [ST_DEL_OFF_GROUP] = "DELETE FROM group_offsets WHERE group_id = ?1",
    [ST_NEXT_PID] = "UPDATE producer_ids SET next_id = next_id + 1 WHERE id = 0"
                    " RETURNING next_id - 1",
    [ST_LOAD_T] = "SELECT name, partitions, log_prefix, configs, id FROM topics ORDER BY id",
    [ST_LOAD_OFF] = "SELECT group_id, topic, partition, committed_offset, leader_epoch, metadata,"
                    " commit_ms FROM group_offsets ORDER BY group_id, topic, partition",
};

/* migrations[v] takes the schema from version v to v + 1. */
static const char *const migrations[CATALOG_SCHEMA_VERSION] = {
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
    "CREATE INDEX bindings_dest ON bindings(vhost, dest_is_exchange, dest);",

    "CREATE TABLE topics(id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE,"
    " partitions INTEGER NOT NULL, log_prefix TEXT NOT NULL, configs BLOB NOT NULL) STRICT;"
    "CREATE TABLE group_offsets(group_id TEXT NOT NULL, topic TEXT NOT NULL,"
    " partition INTEGER NOT NULL, committed_offset INTEGER NOT NULL,"
    " leader_epoch INTEGER NOT NULL, metadata TEXT, commit_ms INTEGER NOT NULL,"
    " PRIMARY KEY(group_id, topic, partition)) STRICT, WITHOUT ROWID;"
    "CREATE INDEX group_offsets_topic ON group_offsets(topic);"
    "CREATE TABLE producer_ids(id INTEGER PRIMARY KEY CHECK(id = 0),"
    " next_id INTEGER NOT NULL) STRICT;"
    "INSERT INTO producer_ids(id, next_id) VALUES(0, 0);",
};

struct catalog {
    sqlite3 *db;
    sqlite3_stmt *st[ST_COUNT];
    int depth;       /* catalog_begin nesting */
    bool batch_lost; /* SQLite rolled the open batch back */
    char msg[512];   /* last failure */
};

/* ---- errors --------------------------------------------------------------------------------- */

static int map_sqlite(int rc)
{
    switch (rc & 0xff) {
    case SQLITE_NOMEM:
        return -ENOMEM;
    case SQLITE_FULL:
        return -ENOSPC;
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB:
        return TERN_ECORRUPT;
    default:
        return -EIO;
    }
}

static int fail_msg(struct catalog *c, int err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int fail_msg(struct catalog *c, int err, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->msg, sizeof(c->msg), fmt, ap);
    va_end(ap);
    return err;
}

/* Records SQLite's message for rc (a failed sqlite3 call) and returns the mapped error. */
static int fail_sql(struct catalog *c, int rc, const char *what)
{
    return fail_msg(c, map_sqlite(rc), "%s: %s (sqlite %d)", what, sqlite3_errmsg(c->db), rc);
}

const char *catalog_errmsg(struct catalog *c)
{
    return c->msg[0] ? c->msg : "no error";
}

/* ---- statements ----------------------------------------------------------------------------- */

/*
 * Binds the parameters described by fmt, one letter each: t text (const char *, NULL binds
 * NULL), i int (int), I int64 (int64_t), b blob (const struct buf *). The pointers must
 * outlive the step.
 */
static int bind_all(struct catalog *c, sqlite3_stmt *st, const char *fmt, va_list ap)
{
    for (int i = 1; fmt[i - 1]; i++) {
        const struct buf *b;
        int rc;
        switch (fmt[i - 1]) {
        case 't':
            rc = sqlite3_bind_text(st, i, va_arg(ap, const char *), -1, SQLITE_STATIC);
            break;
        case 'i':
            rc = sqlite3_bind_int(st, i, va_arg(ap, int));
            break;
        case 'I':
            rc = sqlite3_bind_int64(st, i, va_arg(ap, int64_t));
            break;
        default:
            b = va_arg(ap, const struct buf *);
            rc = sqlite3_bind_blob(st, i, b->p, (int)b->len, SQLITE_STATIC);
            break;
        }
        if (rc != SQLITE_OK)
            return fail_sql(c, rc, "bind");
    }
    return 0;
}

/* Binds, runs to completion and resets statement idx. Returns 0 or a negative error. */
static int run(struct catalog *c, int idx, const char *fmt, ...)
{
    sqlite3_stmt *st = c->st[idx];
    va_list ap;
    va_start(ap, fmt);
    int err = bind_all(c, st, fmt, ap);
    va_end(ap);
    if (err == 0) {
        int rc = sqlite3_step(st);
        if (rc != SQLITE_DONE)
            err = fail_sql(c, rc, stmt_sql[idx]);
    }
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return err;
}

/* Runs a cleanup statement whose failure must not replace the message of the first error. */
static void run_quiet(struct catalog *c, int idx)
{
    sqlite3_step(c->st[idx]);
    sqlite3_reset(c->st[idx]);
}

/* ---- transactions --------------------------------------------------------------------------- */

static int op_begin(struct catalog *c)
{
    if (c->batch_lost)
        return fail_msg(c, -EIO, "the open batch was rolled back after an earlier failure");
    return run(c, ST_SAVE, "");
}

/* Ends the savepoint opened by op_begin: released when err is 0, else undone. Returns err or
 * the release's error. */
static int op_end(struct catalog *c, int err)
{
    if (err == 0)
        err = run(c, ST_RELEASE, "");
    if (err == 0)
        return 0;
    if (!sqlite3_get_autocommit(c->db)) {
        run_quiet(c, ST_ROLLBACK_TO);
        run_quiet(c, ST_RELEASE);
        if (c->depth == 0 && !sqlite3_get_autocommit(c->db))
            run_quiet(c, ST_ROLLBACK); /* a failed top-level RELEASE may leave it open */
    } else if (c->depth > 0) {
        c->batch_lost = true;
    }
    return err;
}

int catalog_begin(struct catalog *c)
{
    if (c->depth == 0) {
        int err = run(c, ST_BEGIN, "");
        if (err)
            return err;
        c->batch_lost = false;
    }
    c->depth++;
    return 0;
}

int catalog_commit(struct catalog *c)
{
    if (c->depth == 0)
        return fail_msg(c, -EINVAL, "catalog_commit without catalog_begin");
    if (--c->depth > 0)
        return 0;
    if (c->batch_lost) {
        c->batch_lost = false;
        return fail_msg(c, -EIO, "the batch was rolled back after an earlier failure");
    }
    int err = run(c, ST_COMMIT, "");
    if (err && !sqlite3_get_autocommit(c->db))
        run_quiet(c, ST_ROLLBACK);
    return err;
}

/* ---- args ----------------------------------------------------------------------------------- */

static int entry_cmp(const void *a, const void *b)
{
    const struct table_entry *x = a, *y = b;
    return strcmp(x->key, y->key);
}

static void canon_table(struct table *t);

static void canon_val(struct tval *v)
{
    if (v->kind == TV_TABLE && v->t)
        canon_table(v->t);
    else if (v->kind == TV_ARRAY && v->a)
        for (size_t i = 0; i < v->a->n; i++)
            canon_val(&v->a->v[i]);
}

/* Sorts keys at every nesting level so that equal tables encode to equal bytes. */
static void canon_table(struct table *t)
{
    if (t->n > 1)
        qsort(t->e, t->n, sizeof(t->e[0]), entry_cmp);
    for (size_t i = 0; i < t->n; i++)
        canon_val(&t->e[i].v);
}

static void encode_canonical(const struct table *t, struct buf *out)
{
    if (t == NULL || t->n == 0) {
        table_encode(NULL, out);
        return;
    }
    struct table *d = table_dup(t);
    canon_table(d);
    table_encode(d, out);
    table_free(d);
}

/* Decodes the table blob (args or configs) in column col of a load row (whose last column is
 * the id, for the message); an empty table gives NULL. */
static int column_table(struct catalog *c, sqlite3_stmt *st, int col, const char *what,
                        const char *field, struct table **out)
{
    const uint8_t *p = sqlite3_column_blob(st, col);
    int n = sqlite3_column_bytes(st, col);
    sqlite3_int64 id = sqlite3_column_int64(st, sqlite3_column_count(st) - 1);
    *out = NULL;
    if (p == NULL && sqlite3_errcode(c->db) == SQLITE_NOMEM)
        return fail_msg(c, -ENOMEM, "out of memory reading %s id=%lld", what, (long long)id);
    if (p == NULL || table_decode(p, (size_t)n, out) != n) {
        table_free(*out);
        *out = NULL;
        return fail_msg(c, TERN_ECORRUPT, "%s id=%lld: stored %s do not decode", what,
                        (long long)id, field);
    }
    if ((*out)->n == 0) {
        table_free(*out);
        *out = NULL;
    }
    return 0;
}

/* ---- changes -------------------------------------------------------------------------------- */

int catalog_put_exchange(struct catalog *c, const struct catalog_exchange *x)
{
    if (!x->vhost || !x->name || !x->type)
        return fail_msg(c, -EINVAL, "exchange needs vhost, name and type");
    struct buf args = BUF_INIT;
    table_encode(x->args, &args);
    int err = op_begin(c);
    if (err == 0)
        err = op_end(c, run(c, ST_PUT_X, "tttiib", x->vhost, x->name, x->type, (int)x->auto_delete,
                            (int)x->internal, &args));
    buf_fini(&args);
    return err;
}

int catalog_put_queue(struct catalog *c, const struct catalog_queue *q)
{
    if (!q->vhost || !q->name)
        return fail_msg(c, -EINVAL, "queue needs vhost and name");
    struct buf args = BUF_INIT;
    table_encode(q->args, &args);
    int err = op_begin(c);
    if (err == 0)
        err = op_end(c, run(c, ST_PUT_Q, "ttibt", q->vhost, q->name, (int)q->auto_delete, &args,
                            q->log_name));
    buf_fini(&args);
    return err;
}

/* Runs put (ST_PUT_B) or delete (ST_DEL_B) of binding b in its own savepoint. */
static int binding_op(struct catalog *c, int idx, const struct catalog_binding *b)
{
    if (!b->vhost || !b->source || !b->dest || !b->key)
        return fail_msg(c, -EINVAL, "binding needs vhost, source, dest and key");
    struct buf args = BUF_INIT;
    encode_canonical(b->args, &args);
    int err = op_begin(c);
    if (err == 0)
        err = op_end(c, run(c, idx, "ttittb", b->vhost, b->source, (int)b->dest_is_exchange,
                            b->dest, b->key, &args));
    buf_fini(&args);
    return err;
}

int catalog_put_binding(struct catalog *c, const struct catalog_binding *b)
{
    return binding_op(c, ST_PUT_B, b);
}

int catalog_del_binding(struct catalog *c, const struct catalog_binding *b)
{
    return binding_op(c, ST_DEL_B, b);
}

int catalog_del_exchange(struct catalog *c, const char *vhost, const char *name)
{
    if (!vhost || !name)
        return fail_msg(c, -EINVAL, "exchange needs vhost and name");
    int err = op_begin(c);
    if (err)
        return err;
    err = run(c, ST_DEL_B_SOURCE, "tt", vhost, name);
    if (err == 0)
        err = run(c, ST_DEL_B_DEST, "tit", vhost, 1, name);
    if (err == 0)
        err = run(c, ST_DEL_X, "tt", vhost, name);
    return op_end(c, err);
}

int catalog_del_queue(struct catalog *c, const char *vhost, const char *name)
{
    if (!vhost || !name)
        return fail_msg(c, -EINVAL, "queue needs vhost and name");
    int err = op_begin(c);
    if (err)
        return err;
    err = run(c, ST_DEL_B_DEST, "tit", vhost, 0, name);
    if (err == 0)
        err = run(c, ST_DEL_Q, "tt", vhost, name);
    return op_end(c, err);
}

/* ---- Kafka: topics, offsets, producer ids ------------------------------------------------ */

int catalog_put_topic(struct catalog *c, const struct catalog_topic *t)
{
    if (!t->name || !t->log_prefix || t->partitions < 1)
        return fail_msg(c, -EINVAL, "topic needs name, log_prefix and partitions >= 1");
    struct buf configs = BUF_INIT;
    table_encode(t->configs, &configs);
    int err = op_begin(c);
    if (err == 0)
        err = op_end(
            c, run(c, ST_PUT_T, "titb", t->name, (int)t->partitions, t->log_prefix, &configs));
    buf_fini(&configs);
    return err;
}

int catalog_del_topic(struct catalog *c, const char *name)
{
    if (!name)
        return fail_msg(c, -EINVAL, "topic needs a name");
    int err = op_begin(c);
    if (err)
        return err;
    err = run(c, ST_DEL_OFF_TOPIC, "t", name);
    if (err == 0)
        err = run(c, ST_DEL_T, "t", name);
    return op_end(c, err);
}

int catalog_put_offsets(struct catalog *c, const struct catalog_offset *v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!v[i].group || !v[i].topic)
            return fail_msg(c, -EINVAL, "offset %zu needs group and topic", i);
    if (n == 0)
        return 0;
    int err = op_begin(c);
    if (err)
        return err;
    for (size_t i = 0; err == 0 && i < n; i++)
        err = run(c, ST_PUT_OFF, "ttiIitI", v[i].group, v[i].topic, (int)v[i].partition,
                  v[i].offset, (int)v[i].leader_epoch, v[i].metadata, v[i].commit_ms);
    return op_end(c, err);
}

static int exec(struct catalog *c, const char *sql);

int catalog_put_offsets_unsynced(struct catalog *c, const struct catalog_offset *v, size_t n)
{
    if (c->depth > 0 || n == 0)
        return catalog_put_offsets(c, v, n);
    int err = exec(c, "PRAGMA synchronous = NORMAL");
    if (err == 0)
        err = catalog_put_offsets(c, v, n);
    int restored = exec(c, "PRAGMA synchronous = FULL");
    return err ? err : restored;
}

int catalog_wal_open(struct catalog *c)
{
    sqlite3_filename db = sqlite3_db_filename(c->db, "main");
    const char *wal = db ? sqlite3_filename_wal(db) : NULL;
    return wal && wal[0] ? file_open(wal, O_RDONLY | O_CLOEXEC, 0) : -ENOENT;
}

int catalog_del_group(struct catalog *c, const char *group)
{
    if (!group)
        return fail_msg(c, -EINVAL, "offsets need a group");
    int err = op_begin(c);
    if (err == 0)
        err = op_end(c, run(c, ST_DEL_OFF_GROUP, "t", group));
    return err;
}

/* Steps the RETURNING update of the counter: exactly one row, then done. */
static int step_next_pid(struct catalog *c, int64_t *out)
{
    sqlite3_stmt *st = c->st[ST_NEXT_PID];
    int rows = 0, rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW)
        if (rows++ == 0)
            *out = sqlite3_column_int64(st, 0);
    int err = 0;
    if (rc != SQLITE_DONE)
        err = fail_sql(c, rc, stmt_sql[ST_NEXT_PID]);
    else if (rows != 1 || *out < 0)
        err = fail_msg(c, TERN_ECORRUPT, "producer_ids must hold one row with next_id >= 0");
    sqlite3_reset(st);
    return err;
}

int catalog_next_producer_id(struct catalog *c, int64_t *out)
{
    if (c->depth > 0)
        return fail_msg(c, -EBUSY, "catalog_next_producer_id inside a batch");
    int64_t v = -1;
    int err = op_begin(c);
    if (err == 0)
        err = op_end(c, step_next_pid(c, &v));
    if (err == 0)
        *out = v;
    return err;
}

/* ---- load ----------------------------------------------------------------------------------- */

static const char *col_text(sqlite3_stmt *st, int col)
{
    return (const char *)sqlite3_column_text(st, col);
}

/* Checks the NOT NULL text columns of a row (NULL here means SQLite ran out of memory). */
static int row_texts_ok(struct catalog *c, sqlite3_stmt *st, int ncols, const char *what)
{
    for (int i = 0; i < ncols; i++)
        if (sqlite3_column_type(st, i) == SQLITE_TEXT && col_text(st, i) == NULL)
            return fail_msg(c, -ENOMEM, "out of memory reading %s", what);
    return 0;
}

static int load_row_exchange(struct catalog *c, sqlite3_stmt *st, const struct catalog_loader *l,
                             void *arg)
{
    struct table *args;
    int ret = row_texts_ok(c, st, 3, "exchange");
    if (ret == 0)
        ret = column_table(c, st, 5, "exchange", "args", &args);
    if (ret)
        return ret;
    struct catalog_exchange x = {
        .vhost = col_text(st, 0),
        .name = col_text(st, 1),
        .type = col_text(st, 2),
        .auto_delete = sqlite3_column_int(st, 3) != 0,
        .internal = sqlite3_column_int(st, 4) != 0,
        .args = args,
    };
    ret = l->exchange(arg, &x);
    table_free(args);
    return ret;
}

static int load_row_queue(struct catalog *c, sqlite3_stmt *st, const struct catalog_loader *l,
                          void *arg)
{
    struct table *args;
    int ret = row_texts_ok(c, st, 5, "queue");
    if (ret == 0)
        ret = column_table(c, st, 3, "queue", "args", &args);
    if (ret)
        return ret;
    struct catalog_queue q = {
        .vhost = col_text(st, 0),
        .name = col_text(st, 1),
        .auto_delete = sqlite3_column_int(st, 2) != 0,
        .args = args,
        .log_name = col_text(st, 4),
    };
    ret = l->queue(arg, &q);
    table_free(args);
    return ret;
}

static int load_row_binding(struct catalog *c, sqlite3_stmt *st, const struct catalog_loader *l,
                            void *arg)
{
    struct table *args;
    int ret = row_texts_ok(c, st, 5, "binding");
    if (ret == 0)
        ret = column_table(c, st, 5, "binding", "args", &args);
    if (ret)
        return ret;
    struct catalog_binding b = {
        .vhost = col_text(st, 0),
        .source = col_text(st, 1),
        .dest_is_exchange = sqlite3_column_int(st, 2) != 0,
        .dest = col_text(st, 3),
        .key = col_text(st, 4),
        .args = args,
    };
    ret = l->binding(arg, &b);
    table_free(args);
    return ret;
}

static int load_row_topic(struct catalog *c, sqlite3_stmt *st, const struct catalog_loader *l,
                          void *arg)
{
    struct table *configs;
    int ret = row_texts_ok(c, st, 3, "topic");
    if (ret == 0)
        ret = column_table(c, st, 3, "topic", "configs", &configs);
    if (ret)
        return ret;
    struct catalog_topic t = {
        .name = col_text(st, 0),
        .partitions = (int32_t)sqlite3_column_int(st, 1),
        .log_prefix = col_text(st, 2),
        .configs = configs,
    };
    ret = l->topic(arg, &t);
    table_free(configs);
    return ret;
}

static int load_row_offset(struct catalog *c, sqlite3_stmt *st, const struct catalog_loader *l,
                           void *arg)
{
    int ret = row_texts_ok(c, st, 6, "offset");
    if (ret)
        return ret;
    struct catalog_offset o = {
        .group = col_text(st, 0),
        .topic = col_text(st, 1),
        .partition = (int32_t)sqlite3_column_int(st, 2),
        .offset = sqlite3_column_int64(st, 3),
        .leader_epoch = (int32_t)sqlite3_column_int(st, 4),
        .metadata = col_text(st, 5),
        .commit_ms = sqlite3_column_int64(st, 6),
    };
    return l->offset(arg, &o);
}

typedef int (*load_row_fn)(struct catalog *c, sqlite3_stmt *st, const struct catalog_loader *l,
                           void *arg);

/* Steps statement idx, calling row for each row, until done, a failure or a non-zero return. */
static int load_kind(struct catalog *c, int idx, load_row_fn row, const struct catalog_loader *l,
                     void *arg)
{
    sqlite3_stmt *st = c->st[idx];
    int ret = 0, rc;
    while (ret == 0 && (rc = sqlite3_step(st)) == SQLITE_ROW)
        ret = row(c, st, l, arg);
    if (ret == 0 && rc != SQLITE_DONE)
        ret = fail_sql(c, rc, stmt_sql[idx]);
    sqlite3_reset(st);
    return ret;
}

int catalog_load(struct catalog *c, const struct catalog_loader *l, void *arg)
{
    int ret = 0;
    if (l->exchange)
        ret = load_kind(c, ST_LOAD_X, load_row_exchange, l, arg);
    if (ret == 0 && l->queue)
        ret = load_kind(c, ST_LOAD_Q, load_row_queue, l, arg);
    if (ret == 0 && l->binding)
        ret = load_kind(c, ST_LOAD_B, load_row_binding, l, arg);
    if (ret == 0 && l->topic)
        ret = load_kind(c, ST_LOAD_T, load_row_topic, l, arg);
    if (ret == 0 && l->offset)
        ret = load_kind(c, ST_LOAD_OFF, load_row_offset, l, arg);
    return ret;
}

/* ---- open and close ------------------------------------------------------------------------- */

/* Runs a one-row PRAGMA and copies its text result into out. */
static int pragma_text(struct catalog *c, const char *sql, char *out, size_t outlen)
{
    sqlite3_stmt *st;
    int rc = sqlite3_prepare_v2(c->db, sql, -1, &st, NULL);
    if (rc != SQLITE_OK)
        return fail_sql(c, rc, sql);
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        const char *s = col_text(st, 0);
        snprintf(out, outlen, "%s", s ? s : "");
        rc = sqlite3_step(st);
        if (rc == SQLITE_ROW)
            rc = SQLITE_DONE; /* only the first row matters */
    }
    int err = rc == SQLITE_DONE ? 0 : fail_sql(c, rc, sql);
    sqlite3_finalize(st);
    return err;
}

static int exec(struct catalog *c, const char *sql)
{
    int rc = sqlite3_exec(c->db, sql, NULL, NULL, NULL);
    return rc == SQLITE_OK ? 0 : fail_sql(c, rc, sql);
}

/* Brings the schema to CATALOG_SCHEMA_VERSION inside one transaction. */
static int migrate(struct catalog *c)
{
    char val[32] = "";
    int err = exec(c, "BEGIN IMMEDIATE");
    if (err)
        return err;
    err = pragma_text(c, "PRAGMA user_version", val, sizeof(val));
    if (err)
        goto fail;
    long v = strtol(val, NULL, 10);
    if (v < 0 || v > CATALOG_SCHEMA_VERSION) {
        err = fail_msg(c, TERN_ENOTSUP, "catalog schema version %ld, this build knows up to %d", v,
                       CATALOG_SCHEMA_VERSION);
        goto fail;
    }
    for (; v < CATALOG_SCHEMA_VERSION; v++) {
        char sql[64];
        if ((err = exec(c, migrations[v])) != 0)
            goto fail;
        snprintf(sql, sizeof(sql), "PRAGMA user_version = %ld", v + 1);
        if ((err = exec(c, sql)) != 0)
            goto fail;
    }
    return exec(c, "COMMIT");
fail:
    sqlite3_exec(c->db, "ROLLBACK", NULL, NULL, NULL);
    return err;
}

static int configure(struct catalog *c)
{
    char mode[16] = "";
    int rc = sqlite3_extended_result_codes(c->db, 1);
    if (rc == SQLITE_OK)
        rc = sqlite3_busy_timeout(c->db, 1000);
    if (rc != SQLITE_OK)
        return fail_sql(c, rc, "configure");
    int err = pragma_text(c, "PRAGMA journal_mode = WAL", mode, sizeof(mode));
    if (err)
        return err;
    if (strcmp(mode, "wal") != 0)
        return fail_msg(c, -EIO, "could not enable WAL (journal_mode=%s)", mode);
    return exec(c, "PRAGMA synchronous = FULL");
}

static int check(struct catalog *c)
{
    char res[256] = "";
    int err = pragma_text(c, "PRAGMA quick_check(1)", res, sizeof(res));
    if (err == 0 && strcmp(res, "ok") != 0)
        err = fail_msg(c, TERN_ECORRUPT, "quick_check: %s", res);
    return err;
}

static int prepare_all(struct catalog *c)
{
    for (int i = 0; i < ST_COUNT; i++) {
        int rc =
            sqlite3_prepare_v3(c->db, stmt_sql[i], -1, SQLITE_PREPARE_PERSISTENT, &c->st[i], NULL);
        if (rc != SQLITE_OK)
            return fail_sql(c, rc, stmt_sql[i]);
    }
    return 0;
}

int catalog_open(const char *path, struct catalog **out, char *errbuf, size_t errlen)
{
    struct catalog *c = tern_xcalloc(1, sizeof(*c));
    *out = NULL;
    int rc = sqlite3_open_v2(path, &c->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL);
    int err = rc == SQLITE_OK ? 0 : fail_sql(c, rc, path);
    if (err == 0)
        err = configure(c);
    if (err == 0)
        err = migrate(c);
    if (err == 0)
        err = check(c);
    if (err == 0)
        err = prepare_all(c);
    if (err)
        goto fail;
    *out = c;
    return 0;
fail:
    if (errbuf && errlen)
        snprintf(errbuf, errlen, "%s", c->msg);
    catalog_close(c);
    return err;
}

void catalog_close(struct catalog *c)
{
    if (c == NULL)
        return;
    for (int i = 0; i < ST_COUNT; i++)
        sqlite3_finalize(c->st[i]);
    int rc = sqlite3_close(c->db); /* rolls back an open batch */
    if (rc != SQLITE_OK)
        TLOG_ERROR("catalog", "event=close_failed sqlite=%d msg=\"%s\"", rc, sqlite3_errstr(rc));
    free(c);
}
