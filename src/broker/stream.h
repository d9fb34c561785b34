/*
 * stream.h - Kafka-style topics: named, partitioned logs with per-topic configuration, their
 * durable record in the catalog, appends with idempotent-producer checks, and wake-ups for
 * readers waiting on new data.
 *
 * The broker knows no protocol: a session (Kafka today) calls these functions and maps the
 * error kinds below to its own codes. A partition is one store log, named
 * "<topic prefix>.<partition>" with a prefix ("k." + 16 random hex digits) chosen at creation
 * and kept in the catalog, so topic names (up to 249 characters) never limit log names.
 *
 * Batches are Kafka RecordBatch v2 (store/batch.h), appended as received: the broker sets only
 * baseOffset and, for topics with message.timestamp.type=LogAppendTime, the timestamp type bit
 * and maxTimestamp (and then the CRC).
 *
 * Lifetimes: topics and partitions belong to the manager. A deleted topic's partitions are
 * freed at once: sessions look them up by name for every request and keep no pointers across
 * loop iterations, except watchers, which are cancelled by stream_unwatch (the manager cancels
 * them itself, calling them with a NULL partition, when a topic goes away).
 */
#ifndef TERN_STREAM_H
#define TERN_STREAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "broker/producers.h"
#include "store/log.h"

struct store;
struct catalog;
struct stream_mgr;
struct stream_topic;
struct stream_part;

enum stream_errkind {
    STREAM_OK = 0,
    STREAM_ENOTFOUND,       /* no such topic or partition */
    STREAM_EEXISTS,         /* topic already exists */
    STREAM_EINVALID_NAME,   /* topic name not [A-Za-z0-9._-]{1,249} or "." / ".." */
    STREAM_EINVALID_PARTS,  /* partition count out of range or not increasing */
    STREAM_EINVALID_CONFIG, /* unknown config name or bad value */
    STREAM_ECORRUPT,        /* batch failed its structure or CRC check */
    STREAM_EMULTI_BATCH,    /* an append held more than one batch */
    STREAM_ETOO_LARGE,      /* batch larger than max.message.bytes */
    STREAM_EOUT_OF_ORDER,   /* idempotent producer skipped or rewound its sequence */
    STREAM_EINVALID_EPOCH,  /* idempotent producer with a stale epoch */
    STREAM_ESTORAGE,        /* the log failed (read-only after an I/O error) or the catalog */
};

struct stream_err {
    enum stream_errkind kind;
    char text[200];
};

#define STREAM_PRODUCER_EXPIRATION_MS 86400000     /* Kafka's producer.id.expiration.ms */
#define STREAM_PRODUCER_EXPIRATION_CHECK_MS 600000 /* ...expiration.check.interval.ms */

/* Defaults for new topics (server options). */
struct stream_defaults {
    int32_t partitions;     /* num.partitions for auto-created topics (1) */
    bool auto_create;       /* auto.create.topics.enable (true) */
    int32_t max_partitions; /* per topic (10000) */
    /* producer.id.expiration.ms: an idempotent producer's state is dropped once its newest
     * batch's timestamp is this old (0: 86400000, Kafka's default) */
    int64_t producer_expiration_ms;
    /* producer.id.expiration.check.interval.ms: how often that is checked (0: 600000) */
    uint32_t producer_expiration_check_ms;
};

/*
 * Opens the manager: loads every topic from the catalog and opens its partition logs on st.
 * Returns 0 or a negative error with a reason in errbuf. cat and st must outlive the manager.
 */
int stream_mgr_open(uv_loop_t *loop, struct store *st, struct catalog *cat,
                    const struct stream_defaults *d, struct stream_mgr **out, char *errbuf,
                    size_t errlen);
/* Frees the manager (the logs stay open in the store, which closes them). */
/*
 * Writes each partition's producer snapshot, naming its log end, for the next open to load
 * instead of replaying the log (it is used only if the log is then closed cleanly with no
 * append in between: call it after the last append, before the store closes). Returns 0 or the
 * first error (logged; that partition is replayed at the next open).
 */
int stream_mgr_snapshot(struct stream_mgr *m);
void stream_mgr_close(struct stream_mgr *m);
/* Drops the state of every idempotent producer whose newest batch is older than the
 * expiration (a timer does this every check interval). Returns how many were dropped. */
size_t stream_mgr_expire_producers(struct stream_mgr *m, int64_t now_ms);
const struct stream_defaults *stream_mgr_defaults(const struct stream_mgr *m);

/* ---- topics ---- */

/* A config entry as name/value strings (value NULL: back to the default). */
struct stream_kv {
    const char *name, *value;
};

/* The topic called name (len bytes), or NULL. */
struct stream_topic *stream_find(struct stream_mgr *m, const char *name, size_t len);
/* Topics in creation order: i from 0 until NULL. */
struct stream_topic *stream_at(struct stream_mgr *m, size_t i);
size_t stream_count(const struct stream_mgr *m);
const char *stream_topic_name(const struct stream_topic *t);
int32_t stream_partitions(const struct stream_topic *t);
struct stream_part *stream_part(struct stream_topic *t, int32_t index);

/* Checks a create without doing it (validate_only) or creates the topic durably. partitions
 * -1 means the default. Returns 0 or -1 with *err set; *out (may be NULL) gets the topic. */
int stream_create(struct stream_mgr *m, const char *name, int32_t partitions,
                  const struct stream_kv *configs, size_t nconfigs, bool validate_only,
                  struct stream_topic **out, struct stream_err *err);
/* Deletes a topic, its logs and its catalog record. Returns 0 or -1 with *err. */
int stream_delete(struct stream_mgr *m, const char *name, struct stream_err *err);
/* Raises the partition count to count. Returns 0 or -1 with *err. */
int stream_add_partitions(struct stream_mgr *m, const char *name, int32_t count, bool validate_only,
                          struct stream_err *err);
/* Replaces the topic's explicit configs with configs (AlterConfigs semantics: anything not
 * named goes back to its default). Returns 0 or -1 with *err. */
int stream_set_configs(struct stream_mgr *m, const char *name, const struct stream_kv *configs,
                       size_t n, bool validate_only, struct stream_err *err);

/* One config as DescribeConfigs shows it. */
struct stream_config_desc {
    const char *name;
    char value[64];
    bool is_default;
    bool read_only;
};
/* The known topic configs, in a fixed order: i from 0 until it returns false. */
bool stream_config_at(const struct stream_topic *t, size_t i, struct stream_config_desc *out);

/* ---- partitions ---- */

struct log *stream_part_log(const struct stream_part *p);

struct stream_append_result {
    int64_t base_offset; /* the first offset of the batch (the original one for a duplicate) */
    int64_t last_offset;
    int64_t log_append_time; /* ms, or -1 when the topic uses CreateTime */
    bool duplicate;          /* a retried idempotent batch: nothing was appended */
};

/*
 * Appends the records of one produce request for this partition: exactly one whole batch
 * (more is STREAM_EMULTI_BATCH, as Kafka refuses from Produce v3). It is checked first
 * (structure, magic 2, CRC, size, producer sequence). The bytes are modified in place
 * (offset, timestamps), so they must be writable. Returns 0 with *res, or -1 with *err.
 */
int stream_append(struct stream_part *p, uint8_t *records, size_t len, int64_t now_ms,
                  struct stream_append_result *res, struct stream_err *err);

/* Watching for appends (long-poll fetch): cb(arg, p) runs from the loop after appends to p
 * (p NULL when the partition's topic was deleted: the watch is then gone). */
typedef void (*stream_watch_cb)(void *arg, struct stream_part *p);
struct stream_watch {
    stream_watch_cb cb;
    void *arg;
    struct stream_part *p;
    struct stream_watch *prev, *next;
};
/* Links w (owned by the caller, who fills cb and arg) to p. */
void stream_watch(struct stream_part *p, struct stream_watch *w);
/* Unlinks w if linked; idempotent. */
void stream_unwatch(struct stream_watch *w);

#endif
