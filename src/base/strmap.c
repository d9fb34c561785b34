/*
 * strmap.c - string-keyed hash map (see strmap.h). FNV-1a hashing; load factor at most 1/2.
 */
#include "base/strmap.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/tern.h"

static size_t hash_bytes(const char *p, size_t n)
{
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)p[i];
        h *= 1099511628211ULL;
    }
    return (size_t)(h ^ (h >> 29));
}

void strmap_init(struct strmap *m)
{
    m->slots = NULL;
    m->cap = 0;
    m->n = 0;
}

void strmap_fini(struct strmap *m)
{
    for (size_t i = 0; i < m->cap; i++)
        free(m->slots[i].key);
    free(m->slots);
    strmap_init(m);
}

static struct strmap_slot *find(const struct strmap *m, const char *key, size_t klen, size_t h)
{
    if (m->cap == 0)
        return NULL;
    for (size_t i = h & (m->cap - 1);; i = (i + 1) & (m->cap - 1)) {
        struct strmap_slot *s = &m->slots[i];
        if (s->key == NULL)
            return s;
        if (s->hash == h && s->klen == klen && memcmp(s->key, key, klen) == 0)
            return s;
    }
}

static void grow(struct strmap *m)
{
    struct strmap_slot *old = m->slots;
    size_t oldcap = m->cap;
    m->cap = oldcap ? oldcap * 2 : 16;
    m->slots = tern_xcalloc(m->cap, sizeof(*m->slots));
    for (size_t i = 0; i < oldcap; i++) {
        if (old[i].key != NULL)
            *find(m, old[i].key, old[i].klen, old[i].hash) = old[i];
    }
    free(old);
}

void *strmap_get(const struct strmap *m, const char *key, size_t klen)
{
    struct strmap_slot *s = find(m, key, klen, hash_bytes(key, klen));
    return s && s->key ? s->val : NULL;
}

void *strmap_put(struct strmap *m, const char *key, size_t klen, void *val)
{
    if ((m->n + 1) * 2 > m->cap)
        grow(m);
    size_t h = hash_bytes(key, klen);
    struct strmap_slot *s = find(m, key, klen, h);
    if (s->key != NULL) {
        void *prev = s->val;
        s->val = val;
        return prev;
    }
    s->key = tern_xmalloc(klen + 1);
    memcpy(s->key, key, klen);
    s->key[klen] = '\0';
    s->klen = klen;
    s->hash = h;
    s->val = val;
    m->n++;
    return NULL;
}

void *strmap_del(struct strmap *m, const char *key, size_t klen)
{
    struct strmap_slot *s = find(m, key, klen, hash_bytes(key, klen));
    if (s == NULL || s->key == NULL)
        return NULL;
    void *val = s->val;
    free(s->key);
    size_t mask = m->cap - 1, i = (size_t)(s - m->slots);
    /* backward shift: move later entries of the probe run into the hole */
    for (size_t j = (i + 1) & mask; m->slots[j].key != NULL; j = (j + 1) & mask) {
        size_t home = m->slots[j].hash & mask;
        if (((j - home) & mask) >= ((j - i) & mask)) {
            m->slots[i] = m->slots[j];
            i = j;
        }
    }
    m->slots[i].key = NULL;
    m->n--;
    return val;
}

int strmap_next(const struct strmap *m, size_t *i, const char **key, void **val)
{
    for (; *i < m->cap; (*i)++) {
        if (m->slots[*i].key != NULL) {
            *key = m->slots[*i].key;
            *val = m->slots[*i].val;
            (*i)++;
            return 1;
        }
    }
    return 0;
}
