/*
 * exchange.c - exchanges, bindings and routing (semantics in exchange.h).
 *
 * A binding is in four structures at once:
 *   - the exchange's list of bindings, in insertion order (each_binding);
 *   - the id table, hashed by (dest, key), for bind/unbind identity checks in O(1);
 *   - its destination's list: one struct xdest per distinct destination, itself in a hash
 *     table and an insertion-ordered list (has_binding_to, unbind_dest, fanout, headers);
 *   - the type's routing index: direct keeps key -> distinct xdests with counts, topic a
 *     broker/topic.h trie whose values are xdests; fanout and headers walk the xdest list.
 * Because every index holds distinct xdests, routing visits each destination once without a
 * seen-set (the topic trie de-duplicates its own matches).
 *
 * Headers matching follows RabbitMQ 4.x (rabbit_exchange_type_headers.erl with
 * mc_amqpl:routing_headers): a void binding value asks only that the header be present;
 * otherwise the values must be equal as Erlang terms, so the field type letter does not count:
 * every integer kind compares by value (an int8 5 equals an int64 5), float and double by
 * value, longstr equals a byte array with the same bytes. A top-level timestamp HEADER counts
 * in milliseconds (RabbitMQ multiplies it by 1000 for AMQP 1.0 interop), so it equals a binding
 * integer 1000 times larger, not a binding timestamp of the same value. Nested tables and
 * arrays must be identical, type letters and order included. A header key given twice counts
 * with its last value. 'all' with no matchable arguments matches everything, 'any' nothing.
 */
#include "broker/exchange.h"

#include "base/table.h"
#include "base/tern.h"
#include "broker/topic.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* ---- a chained hash table of intrusive links --------------------------------------------- */

struct hlink {
    struct hlink *next;
    uint64_t hash;
};

struct htab {
    struct hlink **b; /* buckets, a power of two in number */
    size_t nb, n;
};

static void htab_fini(struct htab *t)
{
    free(t->b);
    t->b = NULL;
    t->nb = t->n = 0;
}

static void htab_insert(struct htab *t, struct hlink *l, uint64_t hash)
{
    if (t->n >= t->nb) {
        size_t nb = t->nb ? 2 * t->nb : 16;
        struct hlink **b = tern_xcalloc(nb, sizeof(*b));
        for (size_t i = 0; i < t->nb; i++) {
            for (struct hlink *e = t->b[i], *next; e; e = next) {
                next = e->next;
                e->next = b[e->hash & (nb - 1)];
                b[e->hash & (nb - 1)] = e;
            }
        }
        free(t->b);
        t->b = b;
        t->nb = nb;
    }
    l->hash = hash;
    l->next = t->b[hash & (t->nb - 1)];
    t->b[hash & (t->nb - 1)] = l;
    t->n++;
}

static void htab_remove(struct htab *t, struct hlink *l)
{
    struct hlink **pp = &t->b[l->hash & (t->nb - 1)];
    while (*pp != l)
        pp = &(*pp)->next;
    *pp = l->next;
    t->n--;
}

/* The chain that may hold hash (compare hash, then the entry). */
static struct hlink *htab_chain(const struct htab *t, uint64_t hash)
{
    return t->nb ? t->b[hash & (t->nb - 1)] : NULL;
}

static uint64_t hash_mix(uint64_t h)
{
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdULL;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ULL;
    h ^= h >> 33;
    return h;
}

static uint64_t hash_ptr(const void *p)
{
    return hash_mix((uint64_t)(uintptr_t)p);
}

static uint64_t hash_bytes(const char *p, size_t n)
{
    uint64_t h = 0xcbf29ce484222325ULL;
    for (size_t i = 0; i < n; i++) {
        h ^= (uint8_t)p[i];
        h *= 0x100000001b3ULL;
    }
    return hash_mix(h);
}

/* ---- types -------------------------------------------------------------------------------- */

struct xdest {
    struct hlink link; /* in exchange.dests, by dest */
    void *dest;
    enum exchange_dest_kind kind;
    size_t nbind;
    struct binding *first, *last; /* its bindings */
    struct xdest *prev, *next;    /* exchange order */
};

struct binding {
    struct hlink link;             /* in exchange.ids, by (dest, key) */
    struct binding *prev, *next;   /* exchange order */
    struct binding *dprev, *dnext; /* the destination's bindings */
    struct xdest *xd;
    struct table *args; /* NULL when bound with NULL */
    size_t keylen;
    char key[]; /* NUL-terminated */
};

struct xkey_dest {
    struct xdest *xd;
    size_t refs;
};

/* Direct exchanges: one per distinct binding key. */
struct xkey {
    struct hlink link; /* in exchange.keys, by key */
    struct xkey_dest *d;
    size_t n, cap;
    size_t keylen;
    char key[];
};

struct exchange {
    char *name;
    enum exchange_type type;
    struct binding *first, *last;
    size_t nbind;
    struct xdest *dfirst, *dlast;
    struct htab ids, dests, keys;
    struct topic *topic; /* EXCHANGE_TOPIC only */
};

static const char *const type_names[] = {"direct", "fanout", "topic", "headers"};

int exchange_type_parse(const char *s, size_t len, enum exchange_type *out)
{
    for (size_t i = 0; i < TERN_ARRAY_LEN(type_names); i++) {
        if (strlen(type_names[i]) == len && memcmp(type_names[i], s, len) == 0) {
            *out = (enum exchange_type)i;
            return 0;
        }
    }
    return -EINVAL;
}

const char *exchange_type_name(enum exchange_type t)
{
    if ((unsigned)t >= TERN_ARRAY_LEN(type_names))
        return "unknown";
    return type_names[t];
}

struct exchange *exchange_new(const char *name, enum exchange_type type)
{
    struct exchange *x = tern_xcalloc(1, sizeof(*x));
    x->name = tern_xstrdup(name);
    x->type = type;
    if (type == EXCHANGE_TOPIC)
        x->topic = topic_new();
    return x;
}

const char *exchange_name(const struct exchange *x)
{
    return x->name;
}

enum exchange_type exchange_type(const struct exchange *x)
{
    return x->type;
}

size_t exchange_binding_count(const struct exchange *x)
{
    return x->nbind;
}

/* ---- destinations ------------------------------------------------------------------------- */

static struct xdest *xdest_find(const struct exchange *x, const void *dest)
{
    uint64_t h = hash_ptr(dest);
    for (struct hlink *l = htab_chain(&x->dests, h); l; l = l->next) {
        struct xdest *xd = TERN_CONTAINER_OF(l, struct xdest, link);
        if (l->hash == h && xd->dest == dest)
            return xd;
    }
    return NULL;
}

static struct xdest *xdest_get(struct exchange *x, void *dest, enum exchange_dest_kind kind)
{
    struct xdest *xd = xdest_find(x, dest);
    if (xd) {
        TERN_ASSERT(xd->kind == kind);
        return xd;
    }
    xd = tern_xcalloc(1, sizeof(*xd));
    xd->dest = dest;
    xd->kind = kind;
    htab_insert(&x->dests, &xd->link, hash_ptr(dest));
    xd->prev = x->dlast;
    if (x->dlast)
        x->dlast->next = xd;
    else
        x->dfirst = xd;
    x->dlast = xd;
    return xd;
}

static void xdest_free(struct exchange *x, struct xdest *xd)
{
    htab_remove(&x->dests, &xd->link);
    if (xd->prev)
        xd->prev->next = xd->next;
    else
        x->dfirst = xd->next;
    if (xd->next)
        xd->next->prev = xd->prev;
    else
        x->dlast = xd->prev;
    free(xd);
}

bool exchange_has_binding_to(const struct exchange *x, void *dest)
{
    return xdest_find(x, dest) != NULL;
}

/* ---- the direct index --------------------------------------------------------------------- */

static struct xkey *xkey_find(const struct exchange *x, const char *key, size_t len)
{
    uint64_t h = hash_bytes(key, len);
    for (struct hlink *l = htab_chain(&x->keys, h); l; l = l->next) {
        struct xkey *k = TERN_CONTAINER_OF(l, struct xkey, link);
        if (l->hash == h && k->keylen == len && memcmp(k->key, key, len) == 0)
            return k;
    }
    return NULL;
}

static void xkey_add(struct exchange *x, const char *key, size_t len, struct xdest *xd)
{
    struct xkey *k = xkey_find(x, key, len);
    if (!k) {
        k = tern_xcalloc(1, sizeof(*k) + len);
        k->keylen = len;
        memcpy(k->key, key, len);
        htab_insert(&x->keys, &k->link, hash_bytes(key, len));
    }
    for (size_t i = 0; i < k->n; i++) {
        if (k->d[i].xd == xd) {
            k->d[i].refs++;
            return;
        }
    }
    if (k->n == k->cap) {
        k->cap = k->cap ? 2 * k->cap : 2;
        k->d = tern_xrealloc(k->d, k->cap * sizeof(*k->d));
    }
    k->d[k->n++] = (struct xkey_dest){xd, 1};
}

static void xkey_remove(struct exchange *x, const char *key, size_t len, struct xdest *xd)
{
    struct xkey *k = xkey_find(x, key, len);
    TERN_ASSERT(k);
    size_t i = 0;
    while (k->d[i].xd != xd)
        i++;
    if (--k->d[i].refs > 0)
        return;
    memmove(&k->d[i], &k->d[i + 1], (k->n - i - 1) * sizeof(*k->d));
    if (--k->n > 0)
        return;
    htab_remove(&x->keys, &k->link);
    free(k->d);
    free(k);
}

/* ---- bindings ----------------------------------------------------------------------------- */

static uint64_t binding_hash(const void *dest, const char *key, size_t len)
{
    return hash_mix(hash_bytes(key, len) ^ hash_ptr(dest));
}

static struct binding *binding_find(const struct exchange *x, const void *dest, const char *key,
                                    const struct table *args)
{
    size_t len = strlen(key);
    uint64_t h = binding_hash(dest, key, len);
    for (struct hlink *l = htab_chain(&x->ids, h); l; l = l->next) {
        struct binding *b = TERN_CONTAINER_OF(l, struct binding, link);
        if (l->hash == h && b->xd->dest == dest && b->keylen == len &&
            memcmp(b->key, key, len) == 0 && table_equal(b->args, args))
            return b;
    }
    return NULL;
}

static void index_add(struct exchange *x, struct binding *b)
{
    if (x->type == EXCHANGE_DIRECT)
        xkey_add(x, b->key, b->keylen, b->xd);
    else if (x->type == EXCHANGE_TOPIC)
        topic_add(x->topic, b->key, b->keylen, b->xd);
}

static void index_remove(struct exchange *x, struct binding *b)
{
    if (x->type == EXCHANGE_DIRECT) {
        xkey_remove(x, b->key, b->keylen, b->xd);
    } else if (x->type == EXCHANGE_TOPIC) {
        int rc = topic_remove(x->topic, b->key, b->keylen, b->xd);
        TERN_ASSERT(rc == 0);
    }
}

int exchange_bind(struct exchange *x, void *dest, enum exchange_dest_kind kind, const char *key,
                  const struct table *args)
{
    if (binding_find(x, dest, key, args))
        return 0;
    size_t len = strlen(key);
    struct binding *b = tern_xcalloc(1, sizeof(*b) + len + 1);
    memcpy(b->key, key, len + 1);
    b->keylen = len;
    b->args = args ? table_dup(args) : NULL;
    b->xd = xdest_get(x, dest, kind);
    htab_insert(&x->ids, &b->link, binding_hash(dest, key, len));

    b->prev = x->last;
    if (x->last)
        x->last->next = b;
    else
        x->first = b;
    x->last = b;
    x->nbind++;

    struct xdest *xd = b->xd;
    b->dprev = xd->last;
    if (xd->last)
        xd->last->dnext = b;
    else
        xd->first = b;
    xd->last = b;
    xd->nbind++;

    index_add(x, b);
    return 1;
}

static void binding_remove(struct exchange *x, struct binding *b)
{
    struct xdest *xd = b->xd;
    index_remove(x, b);
    htab_remove(&x->ids, &b->link);
    if (b->prev)
        b->prev->next = b->next;
    else
        x->first = b->next;
    if (b->next)
        b->next->prev = b->prev;
    else
        x->last = b->prev;
    x->nbind--;

    if (b->dprev)
        b->dprev->dnext = b->dnext;
    else
        xd->first = b->dnext;
    if (b->dnext)
        b->dnext->dprev = b->dprev;
    else
        xd->last = b->dprev;
    if (--xd->nbind == 0)
        xdest_free(x, xd);
    table_free(b->args);
    free(b);
}

int exchange_unbind(struct exchange *x, void *dest, const char *key, const struct table *args)
{
    struct binding *b = binding_find(x, dest, key, args);
    if (!b)
        return -ENOENT;
    binding_remove(x, b);
    return 0;
}

size_t exchange_unbind_dest(struct exchange *x, void *dest)
{
    struct xdest *xd = xdest_find(x, dest);
    if (!xd)
        return 0;
    size_t n = xd->nbind;
    /* the last removal frees xd, so count rather than test xd->first */
    for (size_t i = 0; i < n; i++)
        binding_remove(x, xd->first);
    return n;
}

void exchange_each_binding(const struct exchange *x,
                           int (*cb)(void *arg, void *dest, enum exchange_dest_kind kind,
                                     const char *key, const struct table *args),
                           void *arg)
{
    struct binding *next;
    for (struct binding *b = x->first; b; b = next) {
        next = b->next;
        if (cb(arg, b->xd->dest, b->xd->kind, b->key, b->args))
            return;
    }
}

void exchange_free(struct exchange *x)
{
    if (!x)
        return;
    for (struct binding *b = x->first, *next; b; b = next) {
        next = b->next;
        table_free(b->args);
        free(b);
    }
    for (struct xdest *xd = x->dfirst, *next; xd; xd = next) {
        next = xd->next;
        free(xd);
    }
    for (size_t i = 0; i < x->keys.nb; i++) {
        for (struct hlink *l = x->keys.b[i], *next; l; l = next) {
            next = l->next;
            struct xkey *k = TERN_CONTAINER_OF(l, struct xkey, link);
            free(k->d);
            free(k);
        }
    }
    htab_fini(&x->ids);
    htab_fini(&x->dests);
    htab_fini(&x->keys);
    topic_free(x->topic);
    free(x->name);
    free(x);
}

/* ---- headers matching --------------------------------------------------------------------- */

enum xmatch { XMATCH_ALL, XMATCH_ANY, XMATCH_ALL_WITH_X, XMATCH_ANY_WITH_X };

static const char *const xmatch_names[] = {"all", "any", "all-with-x", "any-with-x"};

/* The x-match mode named by v, or -1. */
static int xmatch_parse(const struct tval *v)
{
    if (v->kind != TV_STR)
        return -1;
    for (size_t i = 0; i < TERN_ARRAY_LEN(xmatch_names); i++) {
        if (strlen(xmatch_names[i]) == v->s.len && memcmp(xmatch_names[i], v->s.p, v->s.len) == 0)
            return (int)i;
    }
    return -1;
}

int exchange_headers_args_valid(const struct table *args)
{
    const struct tval *v = args ? table_get(args, "x-match") : NULL;
    if (v && xmatch_parse(v) < 0)
        return -EINVAL;
    return 0;
}

static bool tval_is_int(enum tval_kind k)
{
    return k == TV_I8 || k == TV_U8 || k == TV_I16 || k == TV_U16 || k == TV_I32 || k == TV_U32 ||
           k == TV_I64 || k == TV_TIME;
}

static bool tval_is_signed(enum tval_kind k)
{
    return k == TV_I8 || k == TV_I16 || k == TV_I32 || k == TV_I64;
}

/* An integer of any kind as a 128-bit value; header timestamps count in milliseconds. */
static __int128 int_value(const struct tval *v, bool header)
{
    __int128 i = tval_is_signed(v->kind) ? (__int128)v->i : (__int128)v->u;
    if (header && v->kind == TV_TIME)
        i *= 1000;
    return i;
}

static double float_value(const struct tval *v)
{
    return v->kind == TV_FLOAT ? (double)v->f : v->d;
}

static bool strict_equal(const struct tval *a, const struct tval *b);

static bool strict_table_equal(const struct table *a, const struct table *b)
{
    size_t na = a ? a->n : 0, nb = b ? b->n : 0;
    if (na != nb)
        return false;
    for (size_t i = 0; i < na; i++) {
        if (strcmp(a->e[i].key, b->e[i].key) != 0 || !strict_equal(&a->e[i].v, &b->e[i].v))
            return false;
    }
    return true;
}

/* Identical values: same kind, same payload, tables and arrays in the same order. */
static bool strict_equal(const struct tval *a, const struct tval *b)
{
    if (a->kind != b->kind)
        return false;
    switch (a->kind) {
    case TV_VOID:
        return true;
    case TV_BOOL:
        return a->b == b->b;
    case TV_FLOAT:
    case TV_DOUBLE:
        return float_value(a) == float_value(b);
    case TV_DECIMAL:
        return a->dec.scale == b->dec.scale && a->dec.value == b->dec.value;
    case TV_STR:
    case TV_BYTES:
        return a->s.len == b->s.len && memcmp(a->s.p, b->s.p, a->s.len) == 0;
    case TV_TABLE:
        return strict_table_equal(a->t, b->t);
    case TV_ARRAY: {
        size_t na = a->a ? a->a->n : 0, nb = b->a ? b->a->n : 0;
        if (na != nb)
            return false;
        for (size_t i = 0; i < na; i++) {
            if (!strict_equal(&a->a->v[i], &b->a->v[i]))
                return false;
        }
        return true;
    }
    default:
        return int_value(a, false) == int_value(b, false);
    }
}

/* A binding value against a header value, compared as RabbitMQ compares Erlang terms. */
static bool route_equal(const struct tval *bv, const struct tval *hv)
{
    if (tval_is_int(bv->kind) && tval_is_int(hv->kind))
        return int_value(bv, false) == int_value(hv, true);
    if (tval_is_int(bv->kind) || tval_is_int(hv->kind))
        return false;
    bool bfloat = bv->kind == TV_FLOAT || bv->kind == TV_DOUBLE;
    bool hfloat = hv->kind == TV_FLOAT || hv->kind == TV_DOUBLE;
    if (bfloat || hfloat)
        return bfloat && hfloat && float_value(bv) == float_value(hv);
    bool bbin = bv->kind == TV_STR || bv->kind == TV_BYTES;
    bool hbin = hv->kind == TV_STR || hv->kind == TV_BYTES;
    if (bbin || hbin)
        return bbin && hbin && bv->s.len == hv->s.len && memcmp(bv->s.p, hv->s.p, bv->s.len) == 0;
    return strict_equal(bv, hv);
}

/* The header's value under key (the last one when it is given twice), or NULL. */
static const struct tval *header_get(const struct table *h, const char *key)
{
    const struct tval *v = NULL;
    for (size_t i = 0; h && i < h->n; i++) {
        if (strcmp(h->e[i].key, key) == 0)
            v = &h->e[i].v;
    }
    return v;
}

/* One binding argument: 1 matches, 0 does not, -1 is not matched on. */
static int arg_match(const struct table_entry *a, const struct table *headers, bool with_x)
{
    if (strcmp(a->key, "x-match") == 0)
        return -1;
    if (!with_x && strncmp(a->key, "x-", 2) == 0)
        return -1;
    const struct tval *hv = header_get(headers, a->key);
    if (!hv)
        return 0;
    if (a->v.kind == TV_VOID)
        return 1;
    return route_equal(&a->v, hv);
}

static bool headers_match(const struct table *args, const struct table *headers)
{
    const struct tval *mv = args ? table_get(args, "x-match") : NULL;
    int mode = mv ? xmatch_parse(mv) : XMATCH_ALL;
    if (mode < 0)
        mode = XMATCH_ALL; /* not validated at bind time: RabbitMQ falls back to all */
    bool any = mode == XMATCH_ANY || mode == XMATCH_ANY_WITH_X;
    bool with_x = mode == XMATCH_ALL_WITH_X || mode == XMATCH_ANY_WITH_X;
    for (size_t i = 0; args && i < args->n; i++) {
        int m = arg_match(&args->e[i], headers, with_x);
        if (m == 1 && any)
            return true;
        if (m == 0 && !any)
            return false;
    }
    return !any;
}

/* ---- routing ------------------------------------------------------------------------------ */

struct route_ctx {
    void (*visit)(void *arg, void *dest, enum exchange_dest_kind kind);
    void *arg;
};

static void route_topic_visit(void *arg, void *value)
{
    struct route_ctx *ctx = arg;
    struct xdest *xd = value;
    ctx->visit(ctx->arg, xd->dest, xd->kind);
}

static void route_headers(const struct exchange *x, const struct table *headers,
                          void (*visit)(void *arg, void *dest, enum exchange_dest_kind kind),
                          void *arg)
{
    for (struct xdest *xd = x->dfirst; xd; xd = xd->next) {
        for (struct binding *b = xd->first; b; b = b->dnext) {
            if (headers_match(b->args, headers)) {
                visit(arg, xd->dest, xd->kind);
                break;
            }
        }
    }
}

void exchange_route(const struct exchange *x, const char *rk, size_t rklen,
                    const struct table *headers,
                    void (*visit)(void *arg, void *dest, enum exchange_dest_kind kind), void *arg)
{
    if (!rk)
        rk = "";
    switch (x->type) {
    case EXCHANGE_DIRECT: {
        const struct xkey *k = xkey_find(x, rk, rklen);
        for (size_t i = 0; k && i < k->n; i++)
            visit(arg, k->d[i].xd->dest, k->d[i].xd->kind);
        break;
    }
    case EXCHANGE_FANOUT:
        for (const struct xdest *xd = x->dfirst; xd; xd = xd->next)
            visit(arg, xd->dest, xd->kind);
        break;
    case EXCHANGE_TOPIC: {
        struct route_ctx ctx = {visit, arg};
        topic_match(x->topic, rk, rklen, route_topic_visit, &ctx);
        break;
    }
    case EXCHANGE_HEADERS:
        route_headers(x, headers, visit, arg);
        break;
    }
}
