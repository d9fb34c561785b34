/*
 * catalog.h - the durable record of exchanges, queues and bindings (AMQP) and of topics,
 * committed consumer-group offsets and the producer-id counter (Kafka): <data-dir>/catalog.db.
 *
 * An SQLite database in WAL mode with synchronous=FULL, held open for the whole run: when a
 * put or del returns 0 the change is on disk. The broker owns the objects in memory; the
 * catalog only records them and hands them back at startup (catalog_load). It knows neither
 * protocol: names and types are opaque strings, argument and config tables are stored as blobs
 * in the binary form of base/table.h.
 *
 * Identity: an exchange or queue is (vhost, name); a binding is (vhost, source, dest kind,
 * dest, key, args), where args compare as tables (key order does not matter); a topic is its
 * name; a committed offset is (group, topic, partition). A put of an existing object replaces
 * its fields and keeps its place in load order.
 *
 * Errors: 0 on success, or negative: -EINVAL (a required field is NULL or out of range),
 * -EBUSY (catalog_next_producer_id inside a batch), -ENOMEM, -ENOSPC
 * (disk full), TERN_ECORRUPT (not a database, damaged file or undecodable stored args),
 * TERN_ENOTSUP (schema newer than this build), -EIO (any other SQLite failure). After a
 * failure catalog_errmsg() says what SQLite (or the catalog) reported.
 *
 * Threading: one catalog is used by one thread at a time.
 */
#ifndef TERN_CATALOG_H
#define TERN_CATALOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct table;
struct catalog;

/* The schema version this build writes, kept in PRAGMA user_version. */
#define CATALOG_SCHEMA_VERSION 2

/*
 * Opens or creates the database at path (the schema is created or migrated inside one
 * transaction) and checks it with PRAGMA quick_check. On success *out owns the catalog (free
 * it with catalog_close). On failure returns a negative error, *out is NULL and, when errbuf
 * is not NULL, errbuf gets SQLite's message.
 */
int catalog_open(const char *path, struct catalog **out, char *errbuf, size_t errlen);
/* Finalizes the statements and closes the database; an open batch is rolled back. NULL is a
 * no-op. */
void catalog_close(struct catalog *c);
/* The message of the last failure (static text owned by c, valid until the next call). */
const char *catalog_errmsg(struct catalog *c);

struct catalog_exchange {
    const char *vhost, *name, *type; /* type: "direct" | "fanout" | "topic" | "headers" */
    bool auto_delete, internal;
    const struct table *args; /* may be NULL */
};

struct catalog_queue {
    const char *vhost, *name;
    bool auto_delete;
    const struct table *args; /* may be NULL */
    const char *log_name;     /* the store log holding its messages; may be NULL */
};

struct catalog_binding {
    const char *vhost, *source; /* source exchange */
    bool dest_is_exchange;
    const char *dest, *key;
    const struct table *args; /* may be NULL (same as empty) */
};

/*
 * Insert or replace: exchanges and queues by (vhost, name), bindings by their whole identity
 * (a put of an existing binding changes nothing). The caller keeps ownership of *x, *q, *b.
 * Each call is one transaction (or one savepoint inside catalog_begin/commit). Returns 0 or a
 * negative error; the catalog is unchanged on error.
 */
int catalog_put_exchange(struct catalog *c, const struct catalog_exchange *x);
int catalog_put_queue(struct catalog *c, const struct catalog_queue *q);
int catalog_put_binding(struct catalog *c, const struct catalog_binding *b);

/*
 * Deleting an exchange also deletes the bindings with it as source or destination; deleting a
 * queue deletes the bindings to it; one transaction each. Deleting something absent is not an
 * error. Returns 0 or a negative error; the catalog is unchanged on error.
 */
int catalog_del_exchange(struct catalog *c, const char *vhost, const char *name);
int catalog_del_queue(struct catalog *c, const char *vhost, const char *name);
int catalog_del_binding(struct catalog *c, const struct catalog_binding *b);

/* ---- Kafka: topics, committed offsets, producer ids ---------------------------------------- */

struct catalog_topic {
    const char *name;
    int32_t partitions;          /* at least 1 */
    const char *log_prefix;      /* partition p lives in store log "<log_prefix><p>" */
    const struct table *configs; /* string -> string topic configs; may be NULL (= empty) */
};

/*
 * Inserts or replaces the topic named t->name (an upsert keeps its place in load order). The
 * caller keeps ownership of *t. Returns 0, -EINVAL (name or log_prefix NULL, partitions < 1) or
 * a negative error; the catalog is unchanged on error.
 */
int catalog_put_topic(struct catalog *c, const struct catalog_topic *t);
/* Deletes the topic and, in the same transaction, every group's committed offsets for it.
 * Deleting an absent topic is not an error. Returns 0 or a negative error. */
int catalog_del_topic(struct catalog *c, const char *name);

struct catalog_offset {
    const char *group, *topic;
    int32_t partition;
    int64_t offset;
    int32_t leader_epoch; /* -1: unknown */
    const char *metadata; /* may be NULL (stored and loaded as NULL) */
    int64_t commit_ms;    /* wall-clock time of the commit */
};

/*
 * Upserts n committed offsets by (group, topic, partition) in ONE transaction (one savepoint
 * inside a batch): either all n are stored or none (an OffsetCommit is atomic). The caller
 * keeps ownership of v. n == 0 is a no-op. Returns 0, -EINVAL (a group or topic is NULL;
 * nothing is stored) or a negative error; the catalog is unchanged on error.
 */
int catalog_put_offsets(struct catalog *c, const struct catalog_offset *v, size_t n);
/*
 * As catalog_put_offsets, but the commit does not fsync (synchronous=NORMAL for this one
 * transaction): it survives a crash of the process at once, and a power loss only after an
 * fdatasync of the catalog's WAL (catalog_wal_open), which the caller runs off the loop and
 * may share among many commits. Inside a batch it is catalog_put_offsets.
 */
int catalog_put_offsets_unsynced(struct catalog *c, const struct catalog_offset *v, size_t n);
/* A new read-only descriptor of the catalog's WAL file, whose fdatasync makes every commit
 * made so far durable; the caller closes it. Returns the fd or a negative error (-ENOENT
 * before the first write created the WAL). Safe to fsync from any thread. */
int catalog_wal_open(struct catalog *c);
/* Deletes every committed offset of group (absent: not an error). Returns 0 or a negative
 * error. */
int catalog_del_group(struct catalog *c, const char *group);

/*
 * Hands out the next producer id (0, 1, 2, ...) from a persistent counter, in its own
 * committed transaction: an id returned once is never returned again, also after a crash or
 * restart (an increment whose commit failed may skip an id). Refused inside a batch
 * (catalog_begin), where a later rollback could hand the same id out twice: -EBUSY. Returns 0
 * with *out set, or a negative error with *out untouched.
 */
int catalog_next_producer_id(struct catalog *c, int64_t *out);

/*
 * Loads everything: every exchange, then every queue, then every binding, then every topic,
 * each kind in insertion order, then every committed offset ordered by (group, topic,
 * partition), calling the callbacks (a NULL callback skips that kind) with pointers valid only
 * during the call. Callbacks must not modify the catalog. A callback returning non-zero stops
 * the load and catalog_load returns that value; otherwise returns 0 or a negative error
 * (TERN_ECORRUPT when stored args or configs do not decode). An empty args or configs table
 * loads as NULL.
 */
struct catalog_loader {
    int (*exchange)(void *arg, const struct catalog_exchange *x);
    int (*queue)(void *arg, const struct catalog_queue *q);
    int (*binding)(void *arg, const struct catalog_binding *b);
    /* schema v2; new callbacks go at the end so that older initialisers stay valid */
    int (*topic)(void *arg, const struct catalog_topic *t);
    int (*offset)(void *arg, const struct catalog_offset *o);
};
int catalog_load(struct catalog *c, const struct catalog_loader *l, void *arg);

/*
 * Batching for bulk changes at startup and shutdown: begin/commit nest, and only the outermost
 * pair opens and commits a transaction, so nothing in the batch is durable before the outer
 * catalog_commit returns 0. A put or del failing inside a batch undoes only itself.
 * catalog_commit without a matching begin returns -EINVAL; a failed outer commit rolls the
 * whole batch back.
 */
int catalog_begin(struct catalog *c);
int catalog_commit(struct catalog *c);

#endif
