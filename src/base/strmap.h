/*
 * strmap.h - a hash map from byte-string keys to pointers (open addressing, linear probing).
 *
 * The map copies keys; values are the caller's. Iteration order is unspecified. Removal uses
 * backward-shift deletion, so there are no tombstones and lookups stay short.
 */
#ifndef TERN_STRMAP_H
#define TERN_STRMAP_H

#include <stddef.h>

struct strmap_slot {
    char *key; /* NULL: empty slot */
    size_t klen;
    size_t hash;
    void *val;
};

struct strmap {
    struct strmap_slot *slots;
    size_t cap; /* power of two, or 0 */
    size_t n;
};

void strmap_init(struct strmap *m);
/* Frees the slots and keys (not the values). */
void strmap_fini(struct strmap *m);
void *strmap_get(const struct strmap *m, const char *key, size_t klen);
/* Sets key to val; returns the previous value or NULL. */
void *strmap_put(struct strmap *m, const char *key, size_t klen, void *val);
/* Removes key; returns its value or NULL. */
void *strmap_del(struct strmap *m, const char *key, size_t klen);
/* Iteration: for (size_t i = 0; strmap_next(m, &i, &key, &val);) ... Do not modify the map while
 * iterating. */
int strmap_next(const struct strmap *m, size_t *i, const char **key, void **val);

#endif
