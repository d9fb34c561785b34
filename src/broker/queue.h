/*
 * queue.h - a message queue: a store log of messages plus delivery state (DESIGN.md, "One
 * storage engine").
 *
 * Messages live only in the queue's log (`<name>`); memory holds the read cursor, a heap of
 * requeued offsets and the set of settled offsets (broker/ackset.h), never per-message state
 * for ready messages, so a backlog of tens of millions of messages costs no RAM. Acks and
 * purges are persisted in the ack log `<name>.a`. Layouts are at the top of queue.c.
 *
 * Threading: everything runs on the loop thread of the engine (the store's loop). Publishes
 * are buffered and appended once per loop iteration per queue (group commit) by the engine's
 * uv_check handle, which also runs the dispatch passes asked for with queue_kick().
 *
 * The caller (the AMQP channel) keeps delivery tag -> offset; the queue only counts unacked
 * messages. Settle every delivered offset exactly once (queue_ack or queue_requeue).
 */
#ifndef TERN_QUEUE_H
#define TERN_QUEUE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "broker/msg.h"
#include "store/store.h"

/* Knobs with defaults from queue_tuning_default(); the broker's config may change them. */
struct queue_tuning {
    uint64_t ack_snapshot_bytes;  /* snapshot the ack log when it grows past this (4 MiB) */
    uint64_t ack_segment_bytes;   /* segment size of ack logs, so old ones can go (1 MiB) */
    uint32_t reclaim_interval_ms; /* least time between message log deletions (1000) */
    uint32_t dispatch_batch;      /* deliveries per dispatch pass before yielding (32768) */
    size_t readahead_bytes;       /* bytes read at the cursor with one pread (256 KiB) */
    size_t publish_flush_bytes;   /* buffered publish bytes that force an early append (1 MiB) */
    uint32_t ack_sync_gap_ms;     /* least time between two fsyncs of an ack log (10) */
};

void queue_tuning_default(struct queue_tuning *t);

struct queue_engine;

/* The engine shared by all queues of one store: the loop and the uv_check/uv_idle handles
 * that flush and dispatch. Returns the engine (allocation failure aborts). */
struct queue_engine *queue_engine_new(uv_loop_t *loop, struct store *st);
/* Applies t to queues opened afterwards (and to flush/dispatch limits at once). */
void queue_engine_set_tuning(struct queue_engine *e, const struct queue_tuning *t);
/* Frees the engine after every queue is closed. Its handles close asynchronously: run the loop
 * (uv_run) once more before uv_loop_close(). */
void queue_engine_free(struct queue_engine *e);

struct queue;

/*
 * Opens (creating if missing) the queue whose messages live in store log `log_name` (and its
 * ack log `<log_name>.a`, so log_name is at most 198 characters) and recovers its state:
 * replays the ack log, then scans the message log from the low-water mark to rebuild the ready
 * count; transient messages (and every message of a non-durable queue) found there are settled
 * as dead. durable=false: the caller deletes the queue at restart; its logs use fsync NEVER.
 * On success *out owns the queue (queue_close / queue_destroy). Returns 0, -EINVAL for a bad
 * name, TERN_ECORRUPT if a log was refused or holds records that are not ours, or -errno.
 * Opening a queue that is already open is not supported.
 */
int queue_open(struct queue_engine *e, const char *log_name, bool durable, struct queue **out);
/*
 * Flushes, answers pending durability callbacks (0 when an fsync made them durable now,
 * TERN_ECLOSED when an fsync in flight prevents it), writes an ack snapshot when the ack log
 * has grown, and frees the queue. Consumers still registered are dropped without a call. The
 * logs stay open in the store (files kept) until store_close(): the store has no call to close
 * one log without deleting it.
 */
void queue_close(struct queue *q);
/* queue.delete: answers pending callbacks (same rule), deletes both logs and frees q. */
void queue_destroy(struct queue *q);

/* Durability of a published message: status 0 = on disk, else the error (publisher nack). */
typedef void (*queue_durable_cb)(void *arg, int status);

/*
 * Adds m to the queue; its bytes are copied. The message is appended at the next flush (the
 * engine flushes every dirty queue once per loop iteration, coalescing the iteration's
 * publishes into one batch per queue) or at queue_flush(), earlier when publish_flush_bytes
 * are buffered. Returns 1 when the caller need not wait (non-durable queue, non-persistent
 * message, cb NULL, or a store in fsync mode interval/never: cb is never called), 0 when
 * cb(arg, status) will be called exactly once after the fsync covering the message (or with
 * an error), or a negative error with cb not called: TERN_EREADONLY (the log failed earlier),
 * TERN_ECLOSED, TERN_ETOOBIG (larger than the log's max batch), -EINVAL (exchange or routing
 * key longer than 255).
 */
int queue_publish(struct queue *q, const struct msg *m, queue_durable_cb cb, void *arg);
/* Appends buffered messages and acks now, then runs a dispatch pass. */
void queue_flush(struct queue *q);

/* Consumers: ready messages go round-robin to consumers whose can_take() is true. */
struct queue_consumer_ops {
    bool (*can_take)(void *ctx); /* prefetch and socket backpressure, decided by the caller */
    /* One delivery. m's pointers are valid only during the call. The callback must not call
     * queue_* functions on this queue except queue_ack() (for no-ack consumers). */
    void (*deliver)(void *ctx, struct queue *q, int64_t offset, const struct msg *m,
                    bool redelivered);
};

struct queue_consumer;

/* Registers a consumer (ops is copied, ctx borrowed) and kicks a dispatch pass. The queue owns
 * the returned handle until queue_consumer_remove or queue_close. */
struct queue_consumer *queue_consumer_add(struct queue *q, const struct queue_consumer_ops *ops,
                                          void *ctx);
/* Unregisters and frees c. Its unacked messages stay unacked: the caller requeues them. */
void queue_consumer_remove(struct queue *q, struct queue_consumer *c);
size_t queue_consumer_count(const struct queue *q);

/* Asks for a dispatch pass at the next loop iteration (after an ack, a qos change, a drained
 * socket, a new consumer). Cheap and idempotent. queue_dispatch() runs one now. */
void queue_kick(struct queue *q);
void queue_dispatch(struct queue *q);

/*
 * basic.get: takes the next ready message (requeued ones first), counting it unacked. Returns
 * 1 with *m, *offset and *redelivered set (m's pointers valid until the next call on q), 0 when
 * none is ready, or a negative error (a read failed).
 */
int queue_get(struct queue *q, struct msg *m, int64_t *offset, bool *redelivered);

/* Settles a delivered message for good (also across restarts). Unknown or already settled
 * offsets are ignored. */
void queue_ack(struct queue *q, int64_t offset);
/* Puts a delivered message back: it is delivered again (redelivered=true) before newer
 * messages, requeued ones lowest offset first. Kicks a dispatch pass. */
void queue_requeue(struct queue *q, int64_t offset);
/* Removes every ready message (not the unacked ones); returns how many. Durable like acks. */
uint64_t queue_purge(struct queue *q);

uint64_t queue_ready_count(const struct queue *q); /* includes buffered, not yet flushed */
uint64_t queue_unacked_count(const struct queue *q);
bool queue_durable(const struct queue *q);
const char *queue_log_name(const struct queue *q);

/* Memory held by a queue's delivery state, for metrics and tests. */
struct queue_stats {
    size_t ack_ranges;      /* intervals in the settled set above the low-water mark */
    size_t requeued;        /* offsets in the requeue heap */
    size_t buffered;        /* messages published but not yet appended */
    size_t buffered_bytes;  /* their bytes */
    size_t readahead_bytes; /* read-ahead buffers */
    int64_t low;            /* lowest unsettled offset */
    int64_t cursor;         /* next offset the cursor delivers from */
};
void queue_stats(const struct queue *q, struct queue_stats *out);

/* Opaque user pointer for the broker (its struct for this queue). */
void queue_set_user(struct queue *q, void *user);
void *queue_user(const struct queue *q);

#endif
