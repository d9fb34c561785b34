/*
 * table.h - typed key/value tables: AMQP arguments and message headers, queue and exchange
 * arguments in the catalog, and headers-exchange matching.
 *
 * The binary form is the AMQP 0-9-1 field table with RabbitMQ's type letters (not the ones
 * printed in the 0-9-1 spec), so one encoding serves the wire and the catalog:
 *
 *   table  = u32 byte-length, then entries: shortstr key (u8 len + bytes), value
 *   value  = type letter, payload:
 *     t bool (u8)   b int8    B uint8   s int16   u uint16   I int32   i uint32   l int64
 *     f float32     d float64 D decimal (u8 scale, u32 value)      T timestamp (u64 seconds)
 *     S longstr (u32 len + bytes)   x byte array (u32 len + bytes)  V void (no payload)
 *     F table       A array (u32 byte-length, then values without keys)
 *   all integers big-endian.
 *
 * Decoding never trusts a length: every length is checked against the bytes given, nesting is
 * capped at TABLE_MAX_DEPTH, and allocation is bounded by the input size. Tables own their
 * keys and values (copied out of the input).
 */
#ifndef TERN_TABLE_H
#define TERN_TABLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/buf.h"

#define TABLE_MAX_DEPTH 32

enum tval_kind {
    TV_VOID,    /* V */
    TV_BOOL,    /* t */
    TV_I8,      /* b */
    TV_U8,      /* B */
    TV_I16,     /* s */
    TV_U16,     /* u */
    TV_I32,     /* I */
    TV_U32,     /* i */
    TV_I64,     /* l */
    TV_FLOAT,   /* f */
    TV_DOUBLE,  /* d */
    TV_DECIMAL, /* D */
    TV_STR,     /* S */
    TV_BYTES,   /* x */
    TV_TIME,    /* T */
    TV_TABLE,   /* F */
    TV_ARRAY,   /* A */
};

struct table;
struct tarray;

struct tval {
    enum tval_kind kind;
    union {
        bool b;
        int64_t i;  /* I8, I16, I32, I64 */
        uint64_t u; /* U8, U16, U32, TIME */
        float f;
        double d;
        struct {
            uint8_t scale;
            uint32_t value;
        } dec;
        struct {
            char *p; /* NUL-terminated copy; len excludes the NUL (may hold embedded NULs) */
            uint32_t len;
        } s; /* STR, BYTES */
        struct table *t;
        struct tarray *a;
    };
};

struct table_entry {
    char *key; /* NUL-terminated, at most 255 bytes */
    struct tval v;
};

struct table {
    size_t n, cap;
    struct table_entry *e;
};

struct tarray {
    size_t n, cap;
    struct tval *v;
};

struct table *table_new(void);
/* Frees t and everything it owns; NULL is a no-op. */
void table_free(struct table *t);
struct table *table_dup(const struct table *t);

/* The value under key (first match), or NULL. */
const struct tval *table_get(const struct table *t, const char *key);
/* Sets key (replacing an existing entry), taking ownership of v's contents. */
void table_set(struct table *t, const char *key, struct tval v);
void table_set_str(struct table *t, const char *key, const char *s);
void table_set_int(struct table *t, const char *key, int64_t i); /* stored as TV_I64 ('l') */
void table_set_bool(struct table *t, const char *key, bool b);
/* Removes key; returns true if it was there. */
bool table_del(struct table *t, const char *key);

/* Deep equality (same keys in any order, same kinds, same values); NULL equals empty. */
bool table_equal(const struct table *a, const struct table *b);
bool tval_equal(const struct tval *a, const struct tval *b);
/* Frees what v owns (strings, nested tables and arrays). */
void tval_fini(struct tval *v);
struct tval tval_dup(const struct tval *v);

/* Integer value of any integer kind (I8..I64, U8..U32, TIME). Returns false for other kinds. */
bool tval_int(const struct tval *v, int64_t *out);
/* String value of STR or BYTES. Returns false for other kinds. */
bool tval_str(const struct tval *v, const char **p, uint32_t *len);

/* Appends t in the binary form (NULL encodes as an empty table: four zero bytes). */
void table_encode(const struct table *t, struct buf *out);

/*
 * Decodes one table from p[0..n). Returns the bytes consumed (4 + its length) with *out owning
 * a new table, or TERN_EPROTO (truncated, unknown type letter, bad nesting), leaving *out NULL.
 */
int table_decode(const uint8_t *p, size_t n, struct table **out);
/* Checks one table from p[0..n) without allocating. Returns the bytes consumed or TERN_EPROTO. */
int table_validate(const uint8_t *p, size_t n);

#endif
