/*
 * topic.c - the topic trie (semantics in topic.h).
 *
 * Every node but the root is one pattern word below its parent: a literal word, '*' or '#'.
 * All non-root nodes live in one hash table keyed by (parent, kind, word), the layout
 * RabbitMQ's trie tables use, so a node needs no child map of its own; the wildcard children
 * are also cached in the parent (star, hash). A node holds the values whose pattern ends at it,
 * each with a reference count, in the order they were first added.
 *
 * Matching is an NFA run: the live set starts as the root plus its chain of '#' children ('#'
 * matches zero words). For each key word every live node passes on its literal child for that
 * word, its '*' child, and itself if it is a '#' node ('#' eats the word and stays); each node
 * added brings its '#' chain along. A node reached twice in a step is kept once, so the work
 * per word is bounded by the number of trie nodes that match the key so far.
 *
 * Invariants: a non-root node has values or children (empty nodes are pruned on removal);
 * nchild counts a node's children of all kinds.
 */
#include "broker/topic.h"

#include "base/tern.h"

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

enum node_kind { NODE_ROOT, NODE_LIT, NODE_STAR, NODE_HASH };

struct topic_value {
    void *value;
    size_t refs;
};

struct topic_node {
    struct topic_node *parent;
    struct topic_node *edge_next; /* chain in topic.edges */
    uint64_t edge_hash;
    struct topic_node *star, *hash; /* wildcard children, or NULL */
    size_t nchild;
    struct topic_value *vals;
    size_t nvals, capvals;
    enum node_kind kind;
    size_t wlen;
    char word[]; /* literal word (NODE_LIT only), not NUL-terminated */
};

struct topic {
    struct topic_node *root;
    struct topic_node **edges; /* buckets, a power of two in number */
    size_t nbuckets, nedges;
    size_t npairs;
};

/* ---- hashing -------------------------------------------------------------------------------- */

static uint64_t mix64(uint64_t h)
{
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdULL;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ULL;
    h ^= h >> 33;
    return h;
}

static uint64_t edge_hash(const struct topic_node *parent, enum node_kind kind, const char *w,
                          size_t wlen)
{
    uint64_t h = 0xcbf29ce484222325ULL ^ (uint64_t)kind;
    for (size_t i = 0; i < wlen; i++) {
        h ^= (uint8_t)w[i];
        h *= 0x100000001b3ULL;
    }
    return mix64(h ^ mix64((uint64_t)(uintptr_t)parent));
}

/* ---- the edge table ---------------------------------------------------------------------------
 */

static void edges_grow(struct topic *t)
{
    size_t nb = t->nbuckets ? t->nbuckets * 2 : 64;
    struct topic_node **b = tern_xcalloc(nb, sizeof(*b));
    for (size_t i = 0; i < t->nbuckets; i++) {
        struct topic_node *n = t->edges[i], *next;
        for (; n; n = next) {
            next = n->edge_next;
            n->edge_next = b[n->edge_hash & (nb - 1)];
            b[n->edge_hash & (nb - 1)] = n;
        }
    }
    free(t->edges);
    t->edges = b;
    t->nbuckets = nb;
}

static struct topic_node *edge_find(const struct topic *t, const struct topic_node *parent,
                                    enum node_kind kind, const char *w, size_t wlen)
{
    if (t->nedges == 0)
        return NULL;
    uint64_t h = edge_hash(parent, kind, w, wlen);
    for (struct topic_node *n = t->edges[h & (t->nbuckets - 1)]; n; n = n->edge_next) {
        if (n->edge_hash == h && n->parent == parent && n->kind == kind && n->wlen == wlen &&
            memcmp(n->word, w, wlen) == 0)
            return n;
    }
    return NULL;
}

static void edge_unlink(struct topic *t, struct topic_node *n)
{
    struct topic_node **pp = &t->edges[n->edge_hash & (t->nbuckets - 1)];
    while (*pp != n)
        pp = &(*pp)->edge_next;
    *pp = n->edge_next;
    t->nedges--;
}

/* ---- building ---------------------------------------------------------------------------------
 */

static enum node_kind word_kind(const char *w, size_t wlen)
{
    if (wlen == 1 && w[0] == '*')
        return NODE_STAR;
    if (wlen == 1 && w[0] == '#')
        return NODE_HASH;
    return NODE_LIT;
}

/* The child of parent for pattern word w, created when create is set (else NULL if absent). */
static struct topic_node *child(struct topic *t, struct topic_node *parent, const char *w,
                                size_t wlen, bool create)
{
    enum node_kind kind = word_kind(w, wlen);
    if (kind != NODE_LIT)
        wlen = 0;
    struct topic_node *n = edge_find(t, parent, kind, w, wlen);
    if (n || !create)
        return n;
    if (t->nedges >= t->nbuckets)
        edges_grow(t);
    n = tern_xcalloc(1, sizeof(*n) + wlen);
    n->parent = parent;
    n->kind = kind;
    n->wlen = wlen;
    memcpy(n->word, w, wlen);
    n->edge_hash = edge_hash(parent, kind, w, wlen);
    n->edge_next = t->edges[n->edge_hash & (t->nbuckets - 1)];
    t->edges[n->edge_hash & (t->nbuckets - 1)] = n;
    t->nedges++;
    parent->nchild++;
    if (kind == NODE_STAR)
        parent->star = n;
    else if (kind == NODE_HASH)
        parent->hash = n;
    return n;
}

/* The node the pattern ends at, creating the path when create is set. */
static struct topic_node *walk(struct topic *t, const char *p, size_t len, bool create)
{
    struct topic_node *n = t->root;
    if (len == 0)
        return n;
    const char *end = p + len;
    for (;;) {
        const char *dot = memchr(p, '.', (size_t)(end - p));
        const char *wend = dot ? dot : end;
        n = child(t, n, p, (size_t)(wend - p), create);
        if (!n || !dot)
            return n;
        p = dot + 1;
    }
}

struct topic *topic_new(void)
{
    struct topic *t = tern_xcalloc(1, sizeof(*t));
    t->root = tern_xcalloc(1, sizeof(*t->root));
    t->root->kind = NODE_ROOT;
    return t;
}

static void node_free(struct topic_node *n)
{
    free(n->vals);
    free(n);
}

void topic_free(struct topic *t)
{
    if (!t)
        return;
    for (size_t i = 0; i < t->nbuckets; i++) {
        struct topic_node *n = t->edges[i], *next;
        for (; n; n = next) {
            next = n->edge_next;
            node_free(n);
        }
    }
    free(t->edges);
    node_free(t->root);
    free(t);
}

void topic_add(struct topic *t, const char *pattern, size_t len, void *value)
{
    struct topic_node *n = walk(t, pattern, len, true);
    for (size_t i = 0; i < n->nvals; i++) {
        if (n->vals[i].value == value) {
            n->vals[i].refs++;
            return;
        }
    }
    if (n->nvals == n->capvals) {
        n->capvals = n->capvals ? n->capvals * 2 : 2;
        n->vals = tern_xrealloc(n->vals, n->capvals * sizeof(*n->vals));
    }
    n->vals[n->nvals++] = (struct topic_value){value, 1};
    t->npairs++;
}

/* Frees n and then every ancestor left with neither values nor children. */
static void prune(struct topic *t, struct topic_node *n)
{
    while (n != t->root && n->nvals == 0 && n->nchild == 0) {
        struct topic_node *parent = n->parent;
        edge_unlink(t, n);
        if (parent->star == n)
            parent->star = NULL;
        if (parent->hash == n)
            parent->hash = NULL;
        parent->nchild--;
        node_free(n);
        n = parent;
    }
}

int topic_remove(struct topic *t, const char *pattern, size_t len, void *value)
{
    struct topic_node *n = walk(t, pattern, len, false);
    if (!n)
        return -ENOENT;
    size_t i = 0;
    while (i < n->nvals && n->vals[i].value != value)
        i++;
    if (i == n->nvals)
        return -ENOENT;
    if (--n->vals[i].refs > 0)
        return 0;
    /* keep first-added order: the match order depends on it */
    memmove(&n->vals[i], &n->vals[i + 1], (n->nvals - i - 1) * sizeof(*n->vals));
    n->nvals--;
    t->npairs--;
    prune(t, n);
    return 0;
}

size_t topic_pair_count(const struct topic *t)
{
    return t->npairs;
}

size_t topic_node_count(const struct topic *t)
{
    return t->nedges + 1;
}

/* ---- matching ---------------------------------------------------------------------------------
 */

/*
 * An insertion-ordered pointer set: a plain array while small, plus an open-addressing index
 * once it grows, so membership stays O(1) without allocating in the common case.
 */
#define PSET_INLINE 16

struct pset {
    void **v;
    size_t n, cap;
    void **slots; /* NULL until n exceeds PSET_INLINE */
    size_t nslots;
    void *inl[PSET_INLINE];
};

static void pset_init(struct pset *s)
{
    s->v = s->inl;
    s->n = 0;
    s->cap = PSET_INLINE;
    s->slots = NULL;
    s->nslots = 0;
}

static void pset_fini(struct pset *s)
{
    if (s->v != s->inl)
        free(s->v);
    free(s->slots);
}

static void pset_clear(struct pset *s)
{
    s->n = 0;
    if (s->slots)
        memset(s->slots, 0, s->nslots * sizeof(*s->slots));
}

/* Puts p in the index; returns false if it was there already. */
static bool pset_index(struct pset *s, void *p)
{
    size_t mask = s->nslots - 1;
    for (size_t i = mix64((uint64_t)(uintptr_t)p) & mask;; i = (i + 1) & mask) {
        if (s->slots[i] == p)
            return false;
        if (!s->slots[i]) {
            s->slots[i] = p;
            return true;
        }
    }
}

static void pset_reindex(struct pset *s, size_t nslots)
{
    free(s->slots);
    s->slots = tern_xcalloc(nslots, sizeof(*s->slots));
    s->nslots = nslots;
    for (size_t i = 0; i < s->n; i++)
        pset_index(s, s->v[i]);
}

/* Adds p; returns true when it was not in the set. */
static bool pset_add(struct pset *s, void *p)
{
    if (!s->slots) {
        for (size_t i = 0; i < s->n; i++) {
            if (s->v[i] == p)
                return false;
        }
    } else if (!pset_index(s, p)) {
        return false;
    }
    if (s->n == s->cap) {
        s->cap *= 2;
        if (s->v == s->inl) {
            s->v = tern_xmalloc(s->cap * sizeof(*s->v));
            memcpy(s->v, s->inl, sizeof(s->inl));
        } else {
            s->v = tern_xrealloc(s->v, s->cap * sizeof(*s->v));
        }
    }
    s->v[s->n++] = p;
    if (!s->slots && s->n > PSET_INLINE)
        pset_reindex(s, 4 * PSET_INLINE);
    else if (s->slots && 2 * s->n > s->nslots)
        pset_reindex(s, 2 * s->nslots);
    return true;
}

/* Adds n and its chain of '#' children ('#' matches zero words). */
static void live_add(struct pset *live, struct topic_node *n)
{
    for (; n; n = n->hash) {
        if (!pset_add(live, n))
            return;
    }
}

/* One NFA step: next = the nodes reached from cur by consuming the word w. */
static void step(const struct topic *t, const struct pset *cur, struct pset *next, const char *w,
                 size_t wlen)
{
    for (size_t i = 0; i < cur->n; i++) {
        struct topic_node *n = cur->v[i];
        if (n->kind == NODE_HASH)
            live_add(next, n);
        live_add(next, edge_find(t, n, NODE_LIT, w, wlen));
        live_add(next, n->star);
    }
}

void topic_match(const struct topic *t, const char *rk, size_t len,
                 void (*visit)(void *arg, void *value), void *arg)
{
    struct pset a, b, seen;
    struct pset *cur = &a, *next = &b;
    pset_init(&a);
    pset_init(&b);
    pset_init(&seen);
    live_add(cur, t->root);
    const char *p = rk, *end = rk + len;
    while (len > 0 && cur->n > 0) {
        const char *dot = memchr(p, '.', (size_t)(end - p));
        const char *wend = dot ? dot : end;
        pset_clear(next);
        step(t, cur, next, p, (size_t)(wend - p));
        struct pset *tmp = cur;
        cur = next;
        next = tmp;
        if (!dot)
            break;
        p = dot + 1;
    }
    for (size_t i = 0; i < cur->n; i++) {
        const struct topic_node *n = cur->v[i];
        for (size_t j = 0; j < n->nvals; j++) {
            if (pset_add(&seen, n->vals[j].value))
                visit(arg, n->vals[j].value);
        }
    }
    pset_fini(&a);
    pset_fini(&b);
    pset_fini(&seen);
}
