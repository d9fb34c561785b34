/*
 * vhost.c - exchanges, queues, bindings and routing of one virtual host (see vhost.h).
 *
 * Invariants:
 *   - every exchange and queue is in its name map; a deleted queue leaves the map at once and
 *     is freed when its last reference goes (sessions hold references for unacked messages);
 *   - a binding lives in its source exchange (broker/exchange.c); a queue keeps no list of the
 *     exchanges bound to it, so deleting a queue unbinds it from every exchange (a scan over
 *     the exchanges, which is a control-plane operation);
 *   - built-in exchanges ("" and amq.*) are durable and created at open, never stored.
 *
 * Each queue's messages live in store log "q.<hex>" (durable) or "t.<hex>" (transient or
 * exclusive); the catalog maps durable queue names to their log. At open, every log that no
 * catalog queue names is deleted: transient queues do not survive a restart.
 */
#include "broker/vhost.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/strmap.h"
#include "base/tern.h"
#include "base/tlog.h"
#include "broker/catalog.h"
#include "broker/exchange.h"
#include "store/store.h"

struct vhost_exchange {
    struct exchange *x;
    bool durable, auto_delete, internal, builtin;
    struct table *args;
    char *alternate; /* alternate-exchange argument, or NULL */
    uint64_t mark;   /* routing pass that last visited it */
};

struct vhost_queue {
    struct vhost *vh;
    char *name;
    struct queue *q; /* NULL once deleted */
    bool durable, exclusive, auto_delete;
    uint64_t owner;
    struct table *args;
    int refs;
    bool had_consumer;
    bool exclusive_consumer;
    size_t nconsumers;
    struct vhost_consumer *consumers;
    uint64_t mark;
};

struct vhost_consumer {
    struct vhost_queue *vq;
    struct queue_consumer *qc;
    void (*cancelled)(void *ctx);
    void *ctx;
    struct vhost_consumer *next, *prev;
};

struct vhost {
    uv_loop_t *loop;
    struct store *st;
    struct catalog *cat;
    struct queue_engine *engine;
    char *name;
    struct strmap exchanges; /* name -> struct vhost_exchange */
    struct strmap queues;    /* name -> struct vhost_queue */
    size_t headers_exchanges;
    uint64_t mark;
};

static void seterr(struct vhost_err *err, enum vhost_errkind kind, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void seterr(struct vhost_err *err, enum vhost_errkind kind, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    err->kind = kind;
    vsnprintf(err->text, sizeof(err->text), fmt, ap);
    va_end(ap);
}

const char *vhost_name(const struct vhost *vh)
{
    return vh->name;
}

static struct vhost_exchange *find_exchange(const struct vhost *vh, const char *name)
{
    return strmap_get(&vh->exchanges, name, strlen(name));
}

static struct vhost_queue *find_queue(const struct vhost *vh, const char *name)
{
    return strmap_get(&vh->queues, name, strlen(name));
}

static int no_exchange(const struct vhost *vh, const char *name, struct vhost_err *err)
{
    seterr(err, VHOST_ENOTFOUND, "no exchange '%s' in vhost '%s'", name, vh->name);
    return -1;
}

static int no_queue(const struct vhost *vh, const char *name, struct vhost_err *err)
{
    seterr(err, VHOST_ENOTFOUND, "no queue '%s' in vhost '%s'", name, vh->name);
    return -1;
}

/* ---- exchanges ------------------------------------------------------------------------- */

static struct vhost_exchange *exchange_add(struct vhost *vh, const char *name,
                                           enum exchange_type type, bool durable, bool auto_delete,
                                           bool internal, const struct table *args)
{
    struct vhost_exchange *e = tern_xcalloc(1, sizeof(*e));
    e->x = exchange_new(name, type);
    e->durable = durable;
    e->auto_delete = auto_delete;
    e->internal = internal;
    e->args = args && args->n ? table_dup(args) : NULL;
    const char *alt;
    uint32_t altlen;
    const struct tval *v = args ? table_get(args, "alternate-exchange") : NULL;
    if (v && tval_str(v, &alt, &altlen))
        e->alternate = tern_xstrdup(alt);
    if (type == EXCHANGE_HEADERS)
        vh->headers_exchanges++;
    strmap_put(&vh->exchanges, name, strlen(name), e);
    return e;
}

static void exchange_free_one(struct vhost *vh, struct vhost_exchange *e)
{
    if (exchange_type(e->x) == EXCHANGE_HEADERS)
        vh->headers_exchanges--;
    exchange_free(e->x);
    table_free(e->args);
    free(e->alternate);
    free(e);
}

/* The first key of a whose value differs in b, else the first key of b missing from a, else
 * NULL: the argument RabbitMQ names in an inequivalent-declare error. */
static const char *first_differing_arg(const struct table *a, const struct table *b)
{
    for (size_t i = 0; a && i < a->n; i++) {
        const struct tval *o = table_get(b, a->e[i].key);
        if (o == NULL || !tval_equal(o, &a->e[i].v))
            return a->e[i].key;
    }
    for (size_t i = 0; b && i < b->n; i++)
        if (table_get(a, b->e[i].key) == NULL)
            return b->e[i].key;
    return NULL;
}

static int exchange_equivalent(const struct vhost *vh, const struct vhost_exchange *e,
                               const struct vhost_exchange_decl *d, enum exchange_type type,
                               struct vhost_err *err)
{
    const char *what = NULL, *got = NULL, *cur = NULL;
    if (exchange_type(e->x) != type) {
        what = "type";
        got = d->type;
        cur = exchange_type_name(exchange_type(e->x));
    } else if (e->durable != d->durable) {
        what = "durable";
        got = d->durable ? "true" : "false";
        cur = e->durable ? "true" : "false";
    } else if (e->auto_delete != d->auto_delete) {
        what = "auto_delete";
        got = d->auto_delete ? "true" : "false";
        cur = e->auto_delete ? "true" : "false";
    } else if (e->internal != d->internal) {
        what = "internal";
        got = d->internal ? "true" : "false";
        cur = e->internal ? "true" : "false";
    } else if (!table_equal(e->args, d->args)) {
        seterr(err, VHOST_EPRECONDITION,
               "inequivalent arg 'arguments' for exchange '%s' in vhost '%s'", d->name, vh->name);
        return -1;
    }
    if (what == NULL)
        return 0;
    seterr(err, VHOST_EPRECONDITION,
           "inequivalent arg '%s' for exchange '%s' in vhost '%s': received '%s' but current is "
           "'%s'",
           what, d->name, vh->name, got, cur);
    return -1;
}

static void catalog_fail(struct vhost *vh, const char *op, int rc)
{
    TLOG_ERROR("broker", "event=catalog_error vhost=%s op=%s error=\"%s\" detail=\"%s\"", vh->name,
               op, tern_strerror(rc), catalog_errmsg(vh->cat));
}

static int put_exchange(struct vhost *vh, const struct vhost_exchange *e)
{
    struct catalog_exchange cx = {
        .vhost = vh->name,
        .name = exchange_name(e->x),
        .type = exchange_type_name(exchange_type(e->x)),
        .auto_delete = e->auto_delete,
        .internal = e->internal,
        .args = e->args,
    };
    int rc = catalog_put_exchange(vh->cat, &cx);
    if (rc < 0)
        catalog_fail(vh, "put_exchange", rc);
    return rc;
}

int vhost_exchange_declare(struct vhost *vh, const struct vhost_exchange_decl *d,
                           struct vhost_err *err)
{
    struct vhost_exchange *e = find_exchange(vh, d->name);
    if (d->passive) {
        if (e == NULL)
            return no_exchange(vh, d->name, err);
        return 0;
    }
    enum exchange_type type;
    if (exchange_type_parse(d->type, strlen(d->type), &type) < 0) {
        seterr(err, VHOST_EINVALID, "unknown exchange type '%s'", d->type);
        return -1;
    }
    if (e != NULL)
        return exchange_equivalent(vh, e, d, type, err);
    if (strncmp(d->name, "amq.", 4) == 0) {
        seterr(err, VHOST_EACCESS, "exchange name '%s' contains reserved prefix 'amq.*'", d->name);
        return -1;
    }
    e = exchange_add(vh, d->name, type, d->durable, d->auto_delete, d->internal, d->args);
    if (e->durable && put_exchange(vh, e) < 0) {
        strmap_del(&vh->exchanges, d->name, strlen(d->name));
        exchange_free_one(vh, e);
        seterr(err, VHOST_EINTERNAL, "cannot store exchange '%s'", d->name);
        return -1;
    }
    return 0;
}

/* Removes every binding whose destination is dest from every exchange, deleting auto-delete
 * exchanges left without bindings. */
static void unbind_everywhere(struct vhost *vh, void *dest);

static void exchange_remove(struct vhost *vh, struct vhost_exchange *e)
{
    const char *name = exchange_name(e->x);
    if (e->durable) {
        int rc = catalog_del_exchange(vh->cat, vh->name, name);
        if (rc < 0)
            catalog_fail(vh, "del_exchange", rc);
    }
    strmap_del(&vh->exchanges, name, strlen(name));
    unbind_everywhere(vh, e);
    exchange_free_one(vh, e);
}

int vhost_exchange_delete(struct vhost *vh, const char *name, bool if_unused, struct vhost_err *err)
{
    if (name[0] == '\0' || strncmp(name, "amq.", 4) == 0) {
        seterr(err, VHOST_EACCESS, "operation not permitted on the %s exchange",
               name[0] ? "built-in" : "default");
        if (name[0])
            seterr(err, VHOST_EACCESS, "exchange name '%s' contains reserved prefix 'amq.*'", name);
        return -1;
    }
    struct vhost_exchange *e = find_exchange(vh, name);
    if (e == NULL)
        return 0; /* RabbitMQ: deleting a missing exchange succeeds */
    if (if_unused && exchange_binding_count(e->x) > 0) {
        seterr(err, VHOST_EPRECONDITION, "exchange '%s' in vhost '%s' in use", name, vh->name);
        return -1;
    }
    exchange_remove(vh, e);
    return 0;
}

static void maybe_auto_delete(struct vhost *vh, struct vhost_exchange *e)
{
    if (e->auto_delete && exchange_binding_count(e->x) == 0)
        exchange_remove(vh, e);
}

static void unbind_everywhere(struct vhost *vh, void *dest)
{
    /* collect first: auto-delete removes map entries */
    size_t n = 0, cap = vh->exchanges.n;
    struct vhost_exchange **hit = tern_xcalloc(cap ? cap : 1, sizeof(*hit));
    size_t it = 0;
    const char *k;
    void *v;
    while (strmap_next(&vh->exchanges, &it, &k, &v)) {
        struct vhost_exchange *e = v;
        if (e != dest && exchange_unbind_dest(e->x, dest) > 0)
            hit[n++] = e;
    }
    for (size_t i = 0; i < n; i++) {
        /* a hit may have been removed by an earlier auto-delete cascade */
        if (find_exchange(vh, exchange_name(hit[i]->x)) == hit[i])
            maybe_auto_delete(vh, hit[i]);
    }
    free(hit);
}

static int binding_store(struct vhost *vh, const char *src, bool dest_is_exchange, const char *dest,
                         const char *key, const struct table *args, bool put)
{
    struct catalog_binding cb = {
        .vhost = vh->name,
        .source = src,
        .dest_is_exchange = dest_is_exchange,
        .dest = dest,
        .key = key,
        .args = args,
    };
    int rc = put ? catalog_put_binding(vh->cat, &cb) : catalog_del_binding(vh->cat, &cb);
    if (rc < 0)
        catalog_fail(vh, put ? "put_binding" : "del_binding", rc);
    return rc;
}

static int check_bind_source(struct vhost *vh, const char *src, struct vhost_exchange **out,
                             struct vhost_err *err)
{
    if (src[0] == '\0') {
        seterr(err, VHOST_EACCESS, "operation not permitted on the default exchange");
        return -1;
    }
    *out = find_exchange(vh, src);
    if (*out == NULL)
        return no_exchange(vh, src, err);
    return 0;
}

static int do_bind(struct vhost *vh, struct vhost_exchange *s, void *dest,
                   enum exchange_dest_kind kind, const char *dname, bool durable, const char *key,
                   const struct table *args, bool bind, struct vhost_err *err)
{
    if (bind) {
        if (exchange_type(s->x) == EXCHANGE_HEADERS && exchange_headers_args_valid(args) < 0) {
            seterr(err, VHOST_EINVALID, "invalid x-match field value");
            return -1;
        }
        if (exchange_bind(s->x, dest, kind, key, args) == 1 && s->durable && durable)
            binding_store(vh, exchange_name(s->x), kind == EXCHANGE_DEST_EXCHANGE, dname, key, args,
                          true);
        return 0;
    }
    if (exchange_unbind(s->x, dest, key, args) == 0) {
        if (s->durable && durable)
            binding_store(vh, exchange_name(s->x), kind == EXCHANGE_DEST_EXCHANGE, dname, key, args,
                          false);
        maybe_auto_delete(vh, s);
    }
    return 0; /* RabbitMQ: unbinding a missing binding succeeds */
}

int vhost_exchange_bind(struct vhost *vh, const char *dest, const char *src, const char *key,
                        const struct table *args, bool bind, struct vhost_err *err)
{
    struct vhost_exchange *s, *d;
    if (dest[0] == '\0') {
        seterr(err, VHOST_EACCESS, "operation not permitted on the default exchange");
        return -1;
    }
    if (check_bind_source(vh, src, &s, err) < 0)
        return -1;
    d = find_exchange(vh, dest);
    if (d == NULL)
        return no_exchange(vh, dest, err);
    return do_bind(vh, s, d, EXCHANGE_DEST_EXCHANGE, dest, d->durable, key, args, bind, err);
}

/* ---- queues ---------------------------------------------------------------------------- */

static void new_log_name(bool durable, char *out, size_t len)
{
    uint64_t r;
    tern_random(&r, sizeof(r));
    snprintf(out, len, "%c.%016llx", durable ? 'q' : 't', (unsigned long long)r);
}

static struct vhost_queue *queue_add(struct vhost *vh, const char *name, struct queue *q,
                                     bool durable, bool exclusive, bool auto_delete,
                                     const struct table *args, uint64_t owner)
{
    struct vhost_queue *vq = tern_xcalloc(1, sizeof(*vq));
    vq->vh = vh;
    vq->name = tern_xstrdup(name);
    vq->q = q;
    vq->durable = durable;
    vq->exclusive = exclusive;
    vq->auto_delete = auto_delete;
    vq->owner = owner;
    vq->args = args && args->n ? table_dup(args) : NULL;
    vq->refs = 1; /* the map's */
    queue_set_user(q, vq);
    strmap_put(&vh->queues, name, strlen(name), vq);
    return vq;
}

void vhost_queue_ref(struct vhost_queue *vq)
{
    vq->refs++;
}

void vhost_queue_unref(struct vhost_queue *vq)
{
    if (--vq->refs > 0)
        return;
    TERN_ASSERT(vq->q == NULL);
    free(vq->name);
    table_free(vq->args);
    free(vq);
}

struct queue *vhost_queue_q(const struct vhost_queue *vq)
{
    return vq->q;
}
const char *vhost_queue_name(const struct vhost_queue *vq)
{
    return vq->name;
}
size_t vhost_queue_consumers(const struct vhost_queue *vq)
{
    return vq->nconsumers;
}

static bool usable_by(const struct vhost_queue *vq, uint64_t owner)
{
    return !vq->exclusive || vq->owner == owner;
}

static int locked(const struct vhost *vh, const char *name, struct vhost_err *err)
{
    seterr(err, VHOST_ELOCKED,
           "cannot obtain exclusive access to locked queue '%s' in vhost '%s'. It could be "
           "originally declared on another connection or the exclusive property value does not "
           "match that of the original declaration.",
           name, vh->name);
    return -1;
}

static int queue_equivalent(const struct vhost *vh, const struct vhost_queue *vq,
                            const struct vhost_queue_decl *d, struct vhost_err *err)
{
    const char *what = NULL;
    bool got = false, cur = false;
    if (vq->durable != d->durable) {
        what = "durable";
        got = d->durable;
        cur = vq->durable;
    } else if (vq->auto_delete != d->auto_delete) {
        what = "auto_delete";
        got = d->auto_delete;
        cur = vq->auto_delete;
    } else if (vq->exclusive != d->exclusive) {
        what = "exclusive";
        got = d->exclusive;
        cur = vq->exclusive;
    }
    if (what != NULL) {
        seterr(err, VHOST_EPRECONDITION,
               "inequivalent arg '%s' for queue '%s' in vhost '%s': received '%s' but current is "
               "'%s'",
               what, d->name, vh->name, got ? "true" : "false", cur ? "true" : "false");
        return -1;
    }
    if (!table_equal(vq->args, d->args)) {
        const char *key = first_differing_arg(d->args, vq->args);
        seterr(err, VHOST_EPRECONDITION, "inequivalent arg '%s' for queue '%s' in vhost '%s'",
               key ? key : "arguments", d->name, vh->name);
        return -1;
    }
    return 0;
}

static int queue_store(struct vhost *vh, const struct vhost_queue *vq)
{
    struct catalog_queue cq = {
        .vhost = vh->name,
        .name = vq->name,
        .auto_delete = vq->auto_delete,
        .args = vq->args,
        .log_name = queue_log_name(vq->q),
    };
    int rc = catalog_put_queue(vh->cat, &cq);
    if (rc < 0)
        catalog_fail(vh, "put_queue", rc);
    return rc;
}

static bool persisted(const struct vhost_queue *vq)
{
    return vq->durable && !vq->exclusive;
}

/* The queue arguments RabbitMQ checks, with the kind of value each takes. */
enum arg_rule { ARG_POSITIVE, ARG_NONNEG, ARG_PRIORITY, ARG_STRING, ARG_BOOL, ARG_OVERFLOW };

static const struct {
    const char *name;
    enum arg_rule rule;
} queue_args[] = {
    {"x-expires", ARG_POSITIVE},
    {"x-message-ttl", ARG_NONNEG},
    {"x-max-length", ARG_NONNEG},
    {"x-max-length-bytes", ARG_NONNEG},
    {"x-max-priority", ARG_PRIORITY},
    {"x-delivery-limit", ARG_NONNEG},
    {"x-dead-letter-exchange", ARG_STRING},
    {"x-dead-letter-routing-key", ARG_STRING},
    {"x-overflow", ARG_OVERFLOW},
    {"x-queue-mode", ARG_STRING},
    {"x-queue-type", ARG_STRING},
    {"x-single-active-consumer", ARG_BOOL},
};

static const char *tval_type_name(const struct tval *v)
{
    switch (v->kind) {
    case TV_STR:
        return "longstr";
    case TV_BYTES:
        return "binary";
    case TV_BOOL:
        return "bool";
    case TV_FLOAT:
        return "float";
    case TV_DOUBLE:
        return "double";
    case TV_DECIMAL:
        return "decimal";
    case TV_TIME:
        return "timestamp";
    case TV_TABLE:
        return "table";
    case TV_ARRAY:
        return "array";
    case TV_VOID:
        return "void";
    default:
        return "signedint";
    }
}

/* Why v is not acceptable under rule, in RabbitMQ's Erlang-term style, or NULL. */
static const char *arg_problem(const struct tval *v, enum arg_rule rule, char *buf, size_t len)
{
    int64_t i;
    const char *str;
    uint32_t slen;
    switch (rule) {
    case ARG_POSITIVE:
    case ARG_NONNEG:
    case ARG_PRIORITY:
        if (!tval_int(v, &i))
            break;
        if (i < 0)
            snprintf(buf, len, "{value_negative,%lld}", (long long)i);
        else if (i == 0 && rule == ARG_POSITIVE)
            snprintf(buf, len, "{value_zero,0}");
        else if (rule == ARG_PRIORITY && i > 255)
            snprintf(buf, len, "{value_too_large,%lld,255}", (long long)i);
        else
            return NULL;
        return buf;
    case ARG_STRING:
        if (tval_str(v, &str, &slen))
            return NULL;
        break;
    case ARG_BOOL:
        if (v->kind == TV_BOOL)
            return NULL;
        break;
    case ARG_OVERFLOW:
        if (!tval_str(v, &str, &slen))
            break;
        if (strcmp(str, "drop-head") == 0 || strcmp(str, "reject-publish") == 0 ||
            strcmp(str, "reject-publish-dlx") == 0)
            return NULL;
        snprintf(buf, len, "{invalid_value,<<\"%.100s\">>}", str);
        return buf;
    }
    snprintf(buf, len, "{unacceptable_type,%s}", tval_type_name(v));
    return buf;
}

static int check_queue_args(const struct vhost *vh, const struct vhost_queue_decl *d,
                            struct vhost_err *err)
{
    char why[160];
    for (size_t i = 0; d->args && i < d->args->n; i++) {
        for (size_t k = 0; k < TERN_ARRAY_LEN(queue_args); k++) {
            if (strcmp(d->args->e[i].key, queue_args[k].name) != 0)
                continue;
            const char *p = arg_problem(&d->args->e[i].v, queue_args[k].rule, why, sizeof(why));
            if (p != NULL) {
                seterr(err, VHOST_EPRECONDITION,
                       "invalid arg '%s' for queue '%s' in vhost '%s': %s", queue_args[k].name,
                       d->name, vh->name, p);
                return -1;
            }
        }
    }
    return 0;
}

int vhost_queue_declare(struct vhost *vh, const struct vhost_queue_decl *d,
                        struct vhost_queue **out, struct vhost_err *err)
{
    if (!d->passive && check_queue_args(vh, d, err) < 0)
        return -1;
    struct vhost_queue *vq = find_queue(vh, d->name);
    if (vq != NULL) {
        if (!usable_by(vq, d->owner))
            return locked(vh, d->name, err);
        if (!d->passive && queue_equivalent(vh, vq, d, err) < 0)
            return -1;
        *out = vq;
        return 0;
    }
    if (d->passive)
        return no_queue(vh, d->name, err);
    if (!d->server_named && strncmp(d->name, "amq.", 4) == 0) {
        seterr(err, VHOST_EACCESS, "queue name '%s' contains reserved prefix 'amq.*'", d->name);
        return -1;
    }
    bool keep = d->durable && !d->exclusive;
    char log_name[32];
    new_log_name(keep, log_name, sizeof(log_name));
    struct queue *q;
    int rc = queue_open(vh->engine, log_name, keep, &q);
    if (rc < 0) {
        seterr(err, VHOST_EINTERNAL, "cannot create queue '%s': %s", d->name, tern_strerror(rc));
        return -1;
    }
    vq = queue_add(vh, d->name, q, d->durable, d->exclusive, d->auto_delete, d->args, d->owner);
    if (persisted(vq) && queue_store(vh, vq) < 0) {
        strmap_del(&vh->queues, d->name, strlen(d->name));
        queue_destroy(vq->q);
        vq->q = NULL;
        vhost_queue_unref(vq);
        seterr(err, VHOST_EINTERNAL, "cannot store queue '%s'", d->name);
        return -1;
    }
    *out = vq;
    return 0;
}

int vhost_queue_get(struct vhost *vh, const char *name, uint64_t owner, struct vhost_queue **out,
                    struct vhost_err *err)
{
    struct vhost_queue *vq = find_queue(vh, name);
    if (vq == NULL)
        return no_queue(vh, name, err);
    if (!usable_by(vq, owner))
        return locked(vh, name, err);
    *out = vq;
    return 0;
}

static void queue_remove(struct vhost *vh, struct vhost_queue *vq)
{
    if (persisted(vq)) {
        int rc = catalog_del_queue(vh->cat, vh->name, vq->name);
        if (rc < 0)
            catalog_fail(vh, "del_queue", rc);
    }
    strmap_del(&vh->queues, vq->name, strlen(vq->name));
    unbind_everywhere(vh, vq);
    /* consumers first: they may hold the last references */
    while (vq->consumers) {
        struct vhost_consumer *c = vq->consumers;
        vq->consumers = c->next;
        queue_consumer_remove(vq->q, c->qc);
        void (*cancelled)(void *) = c->cancelled;
        void *ctx = c->ctx;
        free(c);
        vq->nconsumers--;
        if (cancelled)
            cancelled(ctx);
    }
    queue_destroy(vq->q);
    vq->q = NULL;
    vhost_queue_unref(vq);
}

int vhost_queue_delete(struct vhost *vh, const char *name, uint64_t owner, bool if_unused,
                       bool if_empty, uint64_t *count, struct vhost_err *err)
{
    struct vhost_queue *vq = find_queue(vh, name);
    *count = 0;
    if (vq == NULL)
        return 0; /* RabbitMQ: deleting a missing queue succeeds with count 0 */
    if (!usable_by(vq, owner))
        return locked(vh, name, err);
    if (if_unused && vq->nconsumers > 0) {
        seterr(err, VHOST_EPRECONDITION, "queue '%s' in vhost '%s' in use", name, vh->name);
        return -1;
    }
    if (if_empty && queue_ready_count(vq->q) + queue_unacked_count(vq->q) > 0) {
        seterr(err, VHOST_EPRECONDITION, "queue '%s' in vhost '%s' not empty", name, vh->name);
        return -1;
    }
    *count = queue_ready_count(vq->q);
    queue_remove(vh, vq);
    return 0;
}

int vhost_queue_purge(struct vhost *vh, const char *name, uint64_t owner, uint64_t *count,
                      struct vhost_err *err)
{
    struct vhost_queue *vq;
    if (vhost_queue_get(vh, name, owner, &vq, err) < 0)
        return -1;
    *count = queue_purge(vq->q);
    return 0;
}

int vhost_queue_bind(struct vhost *vh, const char *queue, const char *exchange, const char *key,
                     const struct table *args, uint64_t owner, bool bind, struct vhost_err *err)
{
    struct vhost_exchange *s;
    struct vhost_queue *vq;
    if (exchange[0] == '\0') {
        seterr(err, VHOST_EACCESS, "operation not permitted on the default exchange");
        return -1;
    }
    if (vhost_queue_get(vh, queue, owner, &vq, err) < 0)
        return -1;
    if (check_bind_source(vh, exchange, &s, err) < 0)
        return -1;
    return do_bind(vh, s, vq, EXCHANGE_DEST_QUEUE, queue, persisted(vq), key, args, bind, err);
}

void vhost_connection_closed(struct vhost *vh, uint64_t owner)
{
    size_t n = 0, it = 0;
    struct vhost_queue **mine = tern_xcalloc(vh->queues.n + 1, sizeof(*mine));
    const char *k;
    void *v;
    while (strmap_next(&vh->queues, &it, &k, &v)) {
        struct vhost_queue *vq = v;
        if (vq->exclusive && vq->owner == owner)
            mine[n++] = vq;
    }
    for (size_t i = 0; i < n; i++)
        queue_remove(vh, mine[i]);
    free(mine);
}

/* ---- consumers ------------------------------------------------------------------------- */

int vhost_consume(struct vhost *vh, struct vhost_queue *vq, bool exclusive,
                  const struct queue_consumer_ops *ops, void (*cancelled)(void *ctx), void *ctx,
                  struct vhost_consumer **out, struct vhost_err *err)
{
    if (vq->exclusive_consumer || (exclusive && vq->nconsumers > 0)) {
        seterr(err, VHOST_EACCESS, "queue '%s' in vhost '%s' in exclusive use", vq->name, vh->name);
        return -1;
    }
    struct vhost_consumer *c = tern_xcalloc(1, sizeof(*c));
    c->vq = vq;
    c->cancelled = cancelled;
    c->ctx = ctx;
    c->next = vq->consumers;
    if (c->next)
        c->next->prev = c;
    vq->consumers = c;
    vq->nconsumers++;
    vq->had_consumer = true;
    vq->exclusive_consumer = exclusive;
    c->qc = queue_consumer_add(vq->q, ops, ctx);
    queue_kick(vq->q);
    *out = c;
    return 0;
}

void vhost_cancel(struct vhost *vh, struct vhost_consumer *c)
{
    struct vhost_queue *vq = c->vq;
    if (c->prev)
        c->prev->next = c->next;
    else
        vq->consumers = c->next;
    if (c->next)
        c->next->prev = c->prev;
    vq->nconsumers--;
    vq->exclusive_consumer = false;
    queue_consumer_remove(vq->q, c->qc);
    free(c);
    if (vq->auto_delete && vq->nconsumers == 0 && find_queue(vh, vq->name) == vq)
        queue_remove(vh, vq);
}

/* ---- routing --------------------------------------------------------------------------- */

int vhost_publish_check(struct vhost *vh, const char *exchange, struct vhost_err *err)
{
    struct vhost_exchange *e = find_exchange(vh, exchange);
    if (e == NULL)
        return no_exchange(vh, exchange, err);
    if (e->internal) {
        seterr(err, VHOST_EACCESS, "cannot publish to internal exchange '%s' in vhost '%s'",
               exchange, vh->name);
        return -1;
    }
    return 0;
}

bool vhost_has_headers_exchange(const struct vhost *vh)
{
    return vh->headers_exchanges > 0;
}

struct route {
    struct vhost *vh;
    const struct msg *m;
    const struct table *headers;
    struct vhost_queue **qs; /* small, until more queues are reached */
    size_t n, cap;
    struct vhost_queue *small[8];
    struct vhost_exchange **pending; /* exchanges reached through exchange bindings */
    size_t npending, pcap;
};

static void route_visit(void *arg, void *dest, enum exchange_dest_kind kind)
{
    struct route *r = arg;
    if (kind == EXCHANGE_DEST_QUEUE) {
        struct vhost_queue *vq = dest;
        if (vq->mark == r->vh->mark)
            return;
        vq->mark = r->vh->mark;
        if (r->n == r->cap) {
            r->cap *= 2;
            if (r->qs == r->small)
                r->qs = memcpy(tern_xmalloc(r->cap * sizeof(*r->qs)), r->small, sizeof(r->small));
            else
                r->qs = tern_xrealloc(r->qs, r->cap * sizeof(*r->qs));
        }
        r->qs[r->n++] = vq;
        return;
    }
    struct vhost_exchange *e = dest;
    if (e->mark == r->vh->mark)
        return; /* cycle or diamond: each exchange routes once */
    e->mark = r->vh->mark;
    if (r->npending == r->pcap) {
        r->pcap = r->pcap ? r->pcap * 2 : 8;
        r->pending = tern_xrealloc(r->pending, r->pcap * sizeof(*r->pending));
    }
    r->pending[r->npending++] = e;
}

static void route_from(struct route *r, struct vhost_exchange *e)
{
    size_t before = r->n, pbefore = r->npending;
    e->mark = r->vh->mark;
    exchange_route(e->x, r->m->rk, r->m->rk_len, r->headers, route_visit, r);
    for (size_t i = pbefore; i < r->npending; i++)
        route_from(r, r->pending[i]);
    if (r->n == before && e->alternate != NULL) {
        struct vhost_exchange *ae = find_exchange(r->vh, e->alternate);
        if (ae != NULL && ae->mark != r->vh->mark)
            route_from(r, ae);
    }
}

int vhost_publish(struct vhost *vh, const struct msg *m, const struct table *headers,
                  queue_durable_cb cb, void *arg, int *waits, struct vhost_err *err)
{
    size_t len = m->exchange_len < 255 ? m->exchange_len : 255;
    struct vhost_exchange *e = strmap_get(&vh->exchanges, m->exchange, len);
    if (e == NULL) {
        char name[256];
        memcpy(name, m->exchange, len);
        name[len] = '\0';
        return no_exchange(vh, name, err);
    }
    struct route r = {.vh = vh, .m = m, .headers = headers};
    r.qs = r.small;
    r.cap = TERN_ARRAY_LEN(r.small);
    vh->mark++;
    if (len == 0) {
        /* the default exchange: every queue is bound by its own name */
        size_t ql = m->rk_len < 255 ? m->rk_len : 255;
        struct vhost_queue *vq = strmap_get(&vh->queues, m->rk, ql);
        if (vq != NULL)
            route_visit(&r, vq, EXCHANGE_DEST_QUEUE);
    } else {
        route_from(&r, e);
    }
    *waits = 0;
    for (size_t i = 0; i < r.n; i++) {
        int rc = queue_publish(r.qs[i]->q, m, cb, arg);
        if (rc == 0)
            (*waits)++;
        else if (rc < 0)
            TLOG_WARN("broker", "event=publish_failed vhost=%s queue=\"%s\" error=\"%s\"", vh->name,
                      r.qs[i]->name, tern_strerror(rc));
    }
    int n = (int)r.n;
    if (r.qs != r.small)
        free(r.qs);
    free(r.pending);
    return n;
}

/* ---- open and close -------------------------------------------------------------------- */

struct load_ctx {
    struct vhost *vh;
    struct strmap logs; /* log names the catalog refers to */
    char *err;
    size_t errlen;
};

static int load_exchange(void *arg, const struct catalog_exchange *cx)
{
    struct load_ctx *l = arg;
    enum exchange_type type;
    if (strcmp(cx->vhost, l->vh->name) != 0)
        return 0;
    if (exchange_type_parse(cx->type, strlen(cx->type), &type) < 0) {
        TLOG_WARN("broker", "event=catalog_skip exchange=\"%s\" reason=\"unknown type %s\"",
                  cx->name, cx->type);
        return 0;
    }
    if (find_exchange(l->vh, cx->name) == NULL)
        exchange_add(l->vh, cx->name, type, true, cx->auto_delete, cx->internal, cx->args);
    return 0;
}

static int load_queue(void *arg, const struct catalog_queue *cq)
{
    struct load_ctx *l = arg;
    if (strcmp(cq->vhost, l->vh->name) != 0 || cq->log_name == NULL)
        return 0;
    struct queue *q;
    int rc = queue_open(l->vh->engine, cq->log_name, true, &q);
    if (rc < 0) {
        TLOG_ERROR("broker", "event=queue_refused vhost=%s queue=\"%s\" log=%s error=\"%s\"",
                   l->vh->name, cq->name, cq->log_name, tern_strerror(rc));
        strmap_put(&l->logs, cq->log_name, strlen(cq->log_name), (void *)1);
        return 0;
    }
    strmap_put(&l->logs, cq->log_name, strlen(cq->log_name), (void *)1);
    queue_add(l->vh, cq->name, q, true, false, cq->auto_delete, cq->args, 0);
    return 0;
}

static int load_binding(void *arg, const struct catalog_binding *cb)
{
    struct load_ctx *l = arg;
    struct vhost *vh = l->vh;
    if (strcmp(cb->vhost, vh->name) != 0)
        return 0;
    struct vhost_exchange *s = find_exchange(vh, cb->source);
    void *dest = cb->dest_is_exchange ? (void *)find_exchange(vh, cb->dest)
                                      : (void *)find_queue(vh, cb->dest);
    if (s == NULL || dest == NULL)
        return 0;
    exchange_bind(s->x, dest, cb->dest_is_exchange ? EXCHANGE_DEST_EXCHANGE : EXCHANGE_DEST_QUEUE,
                  cb->key, cb->args);
    return 0;
}

static void add_builtins(struct vhost *vh)
{
    static const struct {
        const char *name;
        enum exchange_type type;
    } b[] = {
        {"", EXCHANGE_DIRECT},
        {"amq.direct", EXCHANGE_DIRECT},
        {"amq.fanout", EXCHANGE_FANOUT},
        {"amq.topic", EXCHANGE_TOPIC},
        {"amq.headers", EXCHANGE_HEADERS},
        {"amq.match", EXCHANGE_HEADERS},
    };
    for (size_t i = 0; i < TERN_ARRAY_LEN(b); i++) {
        if (find_exchange(vh, b[i].name) == NULL)
            exchange_add(vh, b[i].name, b[i].type, true, false, false, NULL)->builtin = true;
    }
}

/* Deletes every queue log (and ack log) that no catalog queue refers to. */
static void drop_orphan_logs(struct vhost *vh, const struct strmap *keep)
{
    size_t n = store_log_count(vh->st);
    char **names = tern_xcalloc(n + 1, sizeof(*names));
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        const char *name = store_log_name(vh->st, i);
        if (name == NULL || (strncmp(name, "q.", 2) != 0 && strncmp(name, "t.", 2) != 0))
            continue;
        size_t base = strlen(name);
        if (base > 2 && strcmp(name + base - 2, ".a") == 0)
            base -= 2;
        if (strmap_get(keep, name, base) == NULL)
            names[k++] = tern_xstrdup(name);
    }
    for (size_t i = 0; i < k; i++) {
        int rc = store_log_delete(vh->st, names[i]);
        TLOG_INFO("broker", "event=transient_queue_dropped log=%s result=\"%s\"", names[i],
                  rc == 0 ? "deleted" : tern_strerror(rc));
        free(names[i]);
    }
    free(names);
}

int vhost_open(uv_loop_t *loop, struct store *st, struct catalog *cat, const char *name,
               struct vhost **out, char *errbuf, size_t errlen)
{
    struct vhost *vh = tern_xcalloc(1, sizeof(*vh));
    vh->loop = loop;
    vh->st = st;
    vh->cat = cat;
    vh->name = tern_xstrdup(name);
    strmap_init(&vh->exchanges);
    strmap_init(&vh->queues);
    vh->engine = queue_engine_new(loop, st);
    struct load_ctx l = {.vh = vh, .err = errbuf, .errlen = errlen};
    strmap_init(&l.logs);
    const struct catalog_loader loader = {
        .exchange = load_exchange, .queue = load_queue, .binding = load_binding};
    int rc = catalog_load(cat, &loader, &l);
    if (rc < 0) {
        snprintf(errbuf, errlen, "catalog load failed: %s", catalog_errmsg(cat));
        strmap_fini(&l.logs);
        vhost_close(vh);
        return rc;
    }
    drop_orphan_logs(vh, &l.logs);
    strmap_fini(&l.logs);
    add_builtins(vh);
    TLOG_INFO("broker", "event=vhost_open vhost=%s exchanges=%zu queues=%zu", name, vh->exchanges.n,
              vh->queues.n);
    *out = vh;
    return 0;
}

void vhost_close(struct vhost *vh)
{
    size_t it = 0;
    const char *k;
    void *v;
    while (strmap_next(&vh->queues, &it, &k, &v)) {
        struct vhost_queue *vq = v;
        while (vq->consumers) {
            struct vhost_consumer *c = vq->consumers;
            vq->consumers = c->next;
            queue_consumer_remove(vq->q, c->qc);
            free(c);
        }
        if (persisted(vq))
            queue_close(vq->q);
        else
            queue_destroy(vq->q);
        vq->q = NULL;
        vhost_queue_unref(vq);
    }
    it = 0;
    while (strmap_next(&vh->exchanges, &it, &k, &v))
        exchange_free_one(vh, v);
    strmap_fini(&vh->queues);
    strmap_fini(&vh->exchanges);
    queue_engine_free(vh->engine);
    free(vh->name);
    free(vh);
}
