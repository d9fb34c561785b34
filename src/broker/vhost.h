/*
 * vhost.h - a virtual host: its exchanges, queues and bindings, routing across them, and their
 * durable record in the catalog.
 *
 * The broker knows no protocol: a session (AMQP today) calls these functions with names,
 * flags and argument tables, and maps the error kinds below to its own reply codes. Errors
 * carry a reply text in RabbitMQ's wording ("no queue 'x' in vhost '/'"); the session adds the
 * protocol's prefix.
 *
 * Lifetimes: exchanges and queues belong to the vhost. A session keeps pointers to queues it
 * delivers from (unacked messages, consumers) and holds a reference (vhost_queue_ref/unref) so a
 * deleted queue stays readable as "deleted" until the last holder lets go.
 *
 * Durability: a durable exchange, a durable non-exclusive queue, and a binding whose source and
 * destination are both durable are written to the catalog before the call returns.
 */
#ifndef TERN_VHOST_H
#define TERN_VHOST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "base/table.h"
#include "broker/msg.h"
#include "broker/queue.h"

enum vhost_errkind {
    VHOST_EACCESS = 1,   /* access refused (reserved names, default exchange, internal) */
    VHOST_ENOTFOUND,     /* no such queue or exchange */
    VHOST_ELOCKED,       /* exclusive queue of another connection */
    VHOST_EPRECONDITION, /* inequivalent redeclare, in use, not empty */
    VHOST_EINVALID,      /* bad argument (unknown exchange type, bad x-args) */
    VHOST_EINTERNAL,     /* storage failure */
};

struct vhost_err {
    enum vhost_errkind kind;
    char text[256];
};

struct vhost;
struct vhost_queue;
struct vhost_exchange;
struct vhost_consumer;

/* Opens vhost `name` on the store st with its catalog (already open; shared by vhosts).
 * Loads durable exchanges, queues and bindings, deletes logs of transient queues left by an
 * earlier run, and creates the built-in exchanges. Returns 0 or a negative error with a reason
 * in errbuf. */
struct catalog;
int vhost_open(uv_loop_t *loop, struct store *st, struct catalog *cat, const char *name,
               struct vhost **out, char *errbuf, size_t errlen);
/* Closes every queue (files kept) and frees the vhost. */
void vhost_close(struct vhost *vh);
const char *vhost_name(const struct vhost *vh);

/* ---- exchanges ---- */
struct vhost_exchange_decl {
    const char *name;
    const char *type; /* "direct" | "fanout" | "topic" | "headers" */
    bool passive, durable, auto_delete, internal;
    const struct table *args;
};
int vhost_exchange_declare(struct vhost *vh, const struct vhost_exchange_decl *d,
                           struct vhost_err *err);
int vhost_exchange_delete(struct vhost *vh, const char *name, bool if_unused,
                          struct vhost_err *err);
/* exchange.bind / unbind: messages routed by src also go through dest. */
int vhost_exchange_bind(struct vhost *vh, const char *dest, const char *src, const char *key,
                        const struct table *args, bool bind, struct vhost_err *err);

/* ---- queues ---- */
struct vhost_queue_decl {
    const char *name; /* non-empty: the session names server-named queues */
    bool passive, durable, exclusive, auto_delete;
    bool server_named; /* the name was generated: the reserved amq. prefix is allowed */
    const struct table *args;
    uint64_t owner; /* connection id, for exclusive queues */
};
/* Declares (or finds, passive) a queue; *out points at it, with message and consumer counts. */
int vhost_queue_declare(struct vhost *vh, const struct vhost_queue_decl *d,
                        struct vhost_queue **out, struct vhost_err *err);
/* Finds a queue usable by connection owner: VHOST_ENOTFOUND or VHOST_ELOCKED otherwise. */
int vhost_queue_get(struct vhost *vh, const char *name, uint64_t owner, struct vhost_queue **out,
                    struct vhost_err *err);
int vhost_queue_delete(struct vhost *vh, const char *name, uint64_t owner, bool if_unused,
                       bool if_empty, uint64_t *count, struct vhost_err *err);
int vhost_queue_purge(struct vhost *vh, const char *name, uint64_t owner, uint64_t *count,
                      struct vhost_err *err);
int vhost_queue_bind(struct vhost *vh, const char *queue, const char *exchange, const char *key,
                     const struct table *args, uint64_t owner, bool bind, struct vhost_err *err);
/* The connection closed: its exclusive queues are deleted. */
void vhost_connection_closed(struct vhost *vh, uint64_t owner);

struct queue *vhost_queue_q(const struct vhost_queue *vq); /* NULL once deleted */
const char *vhost_queue_name(const struct vhost_queue *vq);
size_t vhost_queue_consumers(const struct vhost_queue *vq);
void vhost_queue_ref(struct vhost_queue *vq);
void vhost_queue_unref(struct vhost_queue *vq);

/* ---- consumers ---- */
/* cancelled(ctx) is called when the queue is deleted under the consumer; the consumer is gone
 * after it returns (do not call vhost_cancel for it). */
int vhost_consume(struct vhost *vh, struct vhost_queue *vq, bool exclusive,
                  const struct queue_consumer_ops *ops, void (*cancelled)(void *ctx), void *ctx,
                  struct vhost_consumer **out, struct vhost_err *err);
/* Removes the consumer; an auto-delete queue whose last consumer this was is deleted. */
void vhost_cancel(struct vhost *vh, struct vhost_consumer *c);

/* ---- publishing ---- */
/* Finds the exchange a publish names: VHOST_ENOTFOUND, or VHOST_EACCESS for an internal one. */
int vhost_publish_check(struct vhost *vh, const char *exchange, struct vhost_err *err);
/* True when some exchange is of type headers (the caller then decodes message headers). */
bool vhost_has_headers_exchange(const struct vhost *vh);
/*
 * Routes m from m->exchange (exchange-to-exchange bindings followed, cycles cut, each queue
 * once, alternate exchanges used when nothing matched) and enqueues it. headers: the decoded
 * message headers, or NULL. For each queue that will answer later, cb(arg, status) is called
 * once and *waits is incremented. Returns the number of queues the message reached, or -1 with
 * err set (exchange missing).
 */
int vhost_publish(struct vhost *vh, const struct msg *m, const struct table *headers,
                  queue_durable_cb cb, void *arg, int *waits, struct vhost_err *err);

#endif
