/*
 * table.c - typed key/value tables and their binary form, the AMQP field table (see table.h for
 * the layout and the type letters).
 *
 * One walker serves table_decode and table_validate: walk_*() with a NULL target only check, so
 * the two cannot disagree about what is valid. Nesting is counted in levels: the outermost
 * table is level 1, and a table or array inside level d is level d + 1 <= TABLE_MAX_DEPTH.
 *
 * Beyond table.h, the decoder refuses two things the in-memory form cannot hold, which keeps the
 * binary form canonical (decoding then encoding gives back the input bytes):
 *   - a key containing a NUL byte (keys are C strings);
 *   - a bool ('t') octet other than 0 or 1.
 * Clients write plain keys and 0/1 bools. Floats are compared by bit pattern, so a NaN equals
 * itself and a decoded table equals its re-decoded copy.
 */
#include "base/table.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "base/tern.h"

#define TABLE_KEY_MAX 255

static void tarray_free(struct tarray *a)
{
    if (!a)
        return;
    for (size_t i = 0; i < a->n; i++)
        tval_fini(&a->v[i]);
    free(a->v);
    free(a);
}

struct table *table_new(void)
{
    return tern_xcalloc(1, sizeof(struct table));
}

void table_free(struct table *t)
{
    if (!t)
        return;
    for (size_t i = 0; i < t->n; i++) {
        free(t->e[i].key);
        tval_fini(&t->e[i].v);
    }
    free(t->e);
    free(t);
}

void tval_fini(struct tval *v)
{
    switch (v->kind) {
    case TV_STR:
    case TV_BYTES:
        free(v->s.p);
        break;
    case TV_TABLE:
        table_free(v->t);
        break;
    case TV_ARRAY:
        tarray_free(v->a);
        break;
    default:
        break;
    }
    v->kind = TV_VOID;
}

/* A NUL-terminated heap copy of len bytes. */
static char *copy_bytes(const void *p, size_t len)
{
    char *s = tern_xmalloc(len + 1);
    if (len)
        memcpy(s, p, len);
    s[len] = '\0';
    return s;
}

/* Makes room for one more element in an array of *cap elements of size sz. */
static void *grow(void *p, size_t n, size_t *cap, size_t sz)
{
    if (n < *cap)
        return p;
    *cap = *cap ? *cap * 2 : 4;
    return tern_xrealloc(p, *cap * sz);
}

static void table_append(struct table *t, char *key, struct tval v)
{
    t->e = grow(t->e, t->n, &t->cap, sizeof(t->e[0]));
    t->e[t->n++] = (struct table_entry){key, v};
}

static void tarray_append(struct tarray *a, struct tval v)
{
    a->v = grow(a->v, a->n, &a->cap, sizeof(a->v[0]));
    a->v[a->n++] = v;
}

static struct tarray *tarray_dup(const struct tarray *a)
{
    struct tarray *d = tern_xcalloc(1, sizeof(*d));
    for (size_t i = 0; i < a->n; i++)
        tarray_append(d, tval_dup(&a->v[i]));
    return d;
}

struct tval tval_dup(const struct tval *v)
{
    struct tval d = *v;
    switch (v->kind) {
    case TV_STR:
    case TV_BYTES:
        d.s.p = copy_bytes(v->s.p, v->s.len);
        break;
    case TV_TABLE:
        d.t = v->t ? table_dup(v->t) : table_new();
        break;
    case TV_ARRAY:
        d.a = v->a ? tarray_dup(v->a) : tern_xcalloc(1, sizeof(struct tarray));
        break;
    default:
        break;
    }
    return d;
}

/* A copy of t; NULL for NULL. */
struct table *table_dup(const struct table *t)
{
    if (!t)
        return NULL;
    struct table *d = table_new();
    for (size_t i = 0; i < t->n; i++)
        table_append(d, tern_xstrdup(t->e[i].key), tval_dup(&t->e[i].v));
    return d;
}

/* ---- access ---------------------------------------------------------------------------- */

static struct table_entry *find(const struct table *t, const char *key)
{
    for (size_t i = 0; t && i < t->n; i++)
        if (strcmp(t->e[i].key, key) == 0)
            return &t->e[i];
    return NULL;
}

const struct tval *table_get(const struct table *t, const char *key)
{
    struct table_entry *e = find(t, key);
    return e ? &e->v : NULL;
}

void table_set(struct table *t, const char *key, struct tval v)
{
    TERN_ASSERT(strlen(key) <= TABLE_KEY_MAX);
    struct table_entry *e = find(t, key);
    if (e) {
        tval_fini(&e->v);
        e->v = v;
        return;
    }
    table_append(t, tern_xstrdup(key), v);
}

void table_set_str(struct table *t, const char *key, const char *s)
{
    size_t len = strlen(s);
    TERN_ASSERT(len <= UINT32_MAX);
    struct tval v = {.kind = TV_STR, .s = {copy_bytes(s, len), (uint32_t)len}};
    table_set(t, key, v);
}

void table_set_int(struct table *t, const char *key, int64_t i)
{
    table_set(t, key, (struct tval){.kind = TV_I64, .i = i});
}

void table_set_bool(struct table *t, const char *key, bool b)
{
    table_set(t, key, (struct tval){.kind = TV_BOOL, .b = b});
}

bool table_del(struct table *t, const char *key)
{
    struct table_entry *e = find(t, key);
    if (!e)
        return false;
    free(e->key);
    tval_fini(&e->v);
    size_t i = (size_t)(e - t->e);
    memmove(&t->e[i], &t->e[i + 1], (t->n - i - 1) * sizeof(t->e[0]));
    t->n--;
    return true;
}

bool tval_int(const struct tval *v, int64_t *out)
{
    switch (v->kind) {
    case TV_I8:
    case TV_I16:
    case TV_I32:
    case TV_I64:
        *out = v->i;
        return true;
    case TV_U8:
    case TV_U16:
    case TV_U32:
    case TV_TIME:
        if (v->u > INT64_MAX)
            return false;
        *out = (int64_t)v->u;
        return true;
    default:
        return false;
    }
}

bool tval_str(const struct tval *v, const char **p, uint32_t *len)
{
    if (v->kind != TV_STR && v->kind != TV_BYTES)
        return false;
    *p = v->s.p;
    *len = v->s.len;
    return true;
}

/* ---- equality -------------------------------------------------------------------------- */

static bool tarray_equal(const struct tarray *a, const struct tarray *b)
{
    size_t na = a ? a->n : 0, nb = b ? b->n : 0;
    if (na != nb)
        return false;
    for (size_t i = 0; i < na; i++)
        if (!tval_equal(&a->v[i], &b->v[i]))
            return false;
    return true;
}

bool tval_equal(const struct tval *a, const struct tval *b)
{
    if (a->kind != b->kind)
        return false;
    switch (a->kind) {
    case TV_VOID:
        return true;
    case TV_BOOL:
        return a->b == b->b;
    case TV_I8:
    case TV_I16:
    case TV_I32:
    case TV_I64:
        return a->i == b->i;
    case TV_U8:
    case TV_U16:
    case TV_U32:
    case TV_TIME:
        return a->u == b->u;
    case TV_FLOAT:
        return memcmp(&a->f, &b->f, sizeof(a->f)) == 0;
    case TV_DOUBLE:
        return memcmp(&a->d, &b->d, sizeof(a->d)) == 0;
    case TV_DECIMAL:
        return a->dec.scale == b->dec.scale && a->dec.value == b->dec.value;
    case TV_STR:
    case TV_BYTES:
        return a->s.len == b->s.len && (a->s.len == 0 || memcmp(a->s.p, b->s.p, a->s.len) == 0);
    case TV_TABLE:
        return table_equal(a->t, b->t);
    case TV_ARRAY:
        return tarray_equal(a->a, b->a);
    }
    return false;
}

static bool entry_equal(const struct table_entry *a, const struct table_entry *b)
{
    return strcmp(a->key, b->key) == 0 && tval_equal(&a->v, &b->v);
}

/* How many entries of t equal e. */
static size_t count_equal(const struct table *t, const struct table_entry *e)
{
    size_t c = 0;
    for (size_t i = 0; i < t->n; i++)
        c += entry_equal(&t->e[i], e);
    return c;
}

/* Equal as multisets of entries, so duplicate keys (legal on the wire) compare sensibly. */
bool table_equal(const struct table *a, const struct table *b)
{
    size_t na = a ? a->n : 0, nb = b ? b->n : 0;
    if (na != nb)
        return false;
    size_t i = 0;
    while (i < na && entry_equal(&a->e[i], &b->e[i]))
        i++;
    if (i == na)
        return true; /* same order: the common case */
    for (; i < na; i++)
        if (count_equal(a, &a->e[i]) != count_equal(b, &a->e[i]))
            return false;
    return true;
}

/* ---- encoding -------------------------------------------------------------------------- */

static void encode_value(const struct tval *v, struct buf *out);

static void patch_length(struct buf *out, size_t off)
{
    size_t len = out->len - off - 4;
    TERN_ASSERT(len <= UINT32_MAX);
    buf_patch_u32(out, off, (uint32_t)len);
}

static void encode_array(const struct tarray *a, struct buf *out)
{
    size_t off = buf_put_u32(out, 0);
    for (size_t i = 0; a && i < a->n; i++)
        encode_value(&a->v[i], out);
    patch_length(out, off);
}

static void encode_bytes(char letter, const struct tval *v, struct buf *out)
{
    buf_put_u8(out, (uint8_t)letter);
    buf_put_u32(out, v->s.len);
    buf_put(out, v->s.p, v->s.len);
}

static void encode_float(const struct tval *v, struct buf *out)
{
    uint32_t u;
    memcpy(&u, &v->f, sizeof(u));
    buf_put_u8(out, 'f');
    buf_put_u32(out, u);
}

static void encode_double(const struct tval *v, struct buf *out)
{
    uint64_t u;
    memcpy(&u, &v->d, sizeof(u));
    buf_put_u8(out, 'd');
    buf_put_u64(out, u);
}

/* Values of a fixed size: the letter and the payload. */
static void encode_fixed(const struct tval *v, struct buf *out)
{
    static const char letters[] = {
        [TV_VOID] = 'V', [TV_BOOL] = 't', [TV_I8] = 'b',  [TV_U8] = 'B',  [TV_I16] = 's',
        [TV_U16] = 'u',  [TV_I32] = 'I',  [TV_U32] = 'i', [TV_I64] = 'l', [TV_TIME] = 'T',
    };
    buf_put_u8(out, (uint8_t)letters[v->kind]);
    switch (v->kind) {
    case TV_BOOL:
        buf_put_u8(out, v->b ? 1 : 0);
        break;
    case TV_I8:
        buf_put_u8(out, (uint8_t)v->i);
        break;
    case TV_U8:
        buf_put_u8(out, (uint8_t)v->u);
        break;
    case TV_I16:
        buf_put_u16(out, (uint16_t)v->i);
        break;
    case TV_U16:
        buf_put_u16(out, (uint16_t)v->u);
        break;
    case TV_I32:
        buf_put_u32(out, (uint32_t)v->i);
        break;
    case TV_U32:
        buf_put_u32(out, (uint32_t)v->u);
        break;
    case TV_I64:
        buf_put_u64(out, (uint64_t)v->i);
        break;
    case TV_TIME:
        buf_put_u64(out, v->u);
        break;
    default:
        break;
    }
}

static void encode_value(const struct tval *v, struct buf *out)
{
    switch (v->kind) {
    case TV_FLOAT:
        encode_float(v, out);
        break;
    case TV_DOUBLE:
        encode_double(v, out);
        break;
    case TV_DECIMAL:
        buf_put_u8(out, 'D');
        buf_put_u8(out, v->dec.scale);
        buf_put_u32(out, v->dec.value);
        break;
    case TV_STR:
        encode_bytes('S', v, out);
        break;
    case TV_BYTES:
        encode_bytes('x', v, out);
        break;
    case TV_TABLE:
        buf_put_u8(out, 'F');
        table_encode(v->t, out);
        break;
    case TV_ARRAY:
        buf_put_u8(out, 'A');
        encode_array(v->a, out);
        break;
    default:
        encode_fixed(v, out);
        break;
    }
}

void table_encode(const struct table *t, struct buf *out)
{
    size_t off = buf_put_u32(out, 0);
    for (size_t i = 0; t && i < t->n; i++) {
        size_t klen = strlen(t->e[i].key);
        TERN_ASSERT(klen <= TABLE_KEY_MAX);
        buf_put_u8(out, (uint8_t)klen);
        buf_put(out, t->e[i].key, klen);
        encode_value(&t->e[i].v, out);
    }
    patch_length(out, off);
}

/* ---- decoding and validation ----------------------------------------------------------- */

/* The unread part of the input. Invariant: p <= end. */
struct cur {
    const uint8_t *p, *end;
};

/* Takes n bytes, or NULL when fewer are left. */
static const uint8_t *take(struct cur *c, size_t n)
{
    if (n > (size_t)(c->end - c->p))
        return NULL;
    const uint8_t *q = c->p;
    c->p += n;
    return q;
}

/* Takes a u32 length and that many bytes as a sub-cursor. */
static int take_block(struct cur *c, struct cur *sub)
{
    const uint8_t *q = take(c, 4);
    if (!q)
        return TERN_EPROTO;
    uint32_t len = buf_get_u32(q);
    if (!(q = take(c, len)))
        return TERN_EPROTO;
    *sub = (struct cur){q, q + len};
    return 0;
}

static int walk_entries(struct cur *c, int depth, struct table *t);
static int walk_value(struct cur *c, int depth, struct tval *v);

/* The payload size and kind of a fixed-size type letter; -1 for letters that are not. */
static int fixed_size(uint8_t letter, enum tval_kind *kind)
{
    static const struct {
        uint8_t letter, size;
        enum tval_kind kind;
    } fixed[] = {
        {'t', 1, TV_BOOL},  {'b', 1, TV_I8},     {'B', 1, TV_U8},      {'s', 2, TV_I16},
        {'u', 2, TV_U16},   {'I', 4, TV_I32},    {'i', 4, TV_U32},     {'l', 8, TV_I64},
        {'f', 4, TV_FLOAT}, {'d', 8, TV_DOUBLE}, {'D', 5, TV_DECIMAL}, {'T', 8, TV_TIME},
        {'V', 0, TV_VOID},
    };
    for (size_t i = 0; i < TERN_ARRAY_LEN(fixed); i++) {
        if (fixed[i].letter == letter) {
            *kind = fixed[i].kind;
            return fixed[i].size;
        }
    }
    return -1;
}

/* Sets v from the payload q of a fixed-size value of the given kind. */
static void set_fixed(struct tval *v, enum tval_kind kind, const uint8_t *q)
{
    uint32_t u32;
    uint64_t u64;
    *v = (struct tval){.kind = kind};
    switch (kind) {
    case TV_BOOL:
        v->b = q[0] != 0;
        break;
    case TV_I8:
        v->i = (int8_t)q[0];
        break;
    case TV_U8:
        v->u = q[0];
        break;
    case TV_I16:
        v->i = (int16_t)buf_get_u16(q);
        break;
    case TV_U16:
        v->u = buf_get_u16(q);
        break;
    case TV_I32:
        v->i = (int32_t)buf_get_u32(q);
        break;
    case TV_U32:
        v->u = buf_get_u32(q);
        break;
    case TV_I64:
        v->i = (int64_t)buf_get_u64(q);
        break;
    case TV_TIME:
        v->u = buf_get_u64(q);
        break;
    case TV_FLOAT:
        u32 = buf_get_u32(q);
        memcpy(&v->f, &u32, sizeof(u32));
        break;
    case TV_DOUBLE:
        u64 = buf_get_u64(q);
        memcpy(&v->d, &u64, sizeof(u64));
        break;
    case TV_DECIMAL:
        v->dec.scale = q[0];
        v->dec.value = buf_get_u32(q + 1);
        break;
    default:
        break;
    }
}

static int walk_fixed(struct cur *c, uint8_t letter, struct tval *v)
{
    enum tval_kind kind;
    int size = fixed_size(letter, &kind);
    if (size < 0)
        return TERN_EPROTO; /* unknown type letter */
    const uint8_t *q = take(c, (size_t)size);
    if (!q || (kind == TV_BOOL && q[0] > 1))
        return TERN_EPROTO;
    if (v)
        set_fixed(v, kind, q);
    return 0;
}

static int walk_bytes(struct cur *c, enum tval_kind kind, struct tval *v)
{
    struct cur s;
    if (take_block(c, &s) < 0)
        return TERN_EPROTO;
    if (v) {
        size_t len = (size_t)(s.end - s.p);
        *v = (struct tval){.kind = kind, .s = {copy_bytes(s.p, len), (uint32_t)len}};
    }
    return 0;
}

/* A nested table ('F') inside level depth. */
static int walk_table(struct cur *c, int depth, struct tval *v)
{
    struct cur s;
    if (depth >= TABLE_MAX_DEPTH || take_block(c, &s) < 0)
        return TERN_EPROTO;
    struct table *t = v ? table_new() : NULL;
    if (walk_entries(&s, depth + 1, t) < 0) {
        table_free(t);
        return TERN_EPROTO;
    }
    if (v)
        *v = (struct tval){.kind = TV_TABLE, .t = t};
    return 0;
}

/* A nested array ('A') inside level depth: values without keys until its length is used up. */
static int walk_array(struct cur *c, int depth, struct tval *v)
{
    struct cur s;
    if (depth >= TABLE_MAX_DEPTH || take_block(c, &s) < 0)
        return TERN_EPROTO;
    struct tarray *a = v ? tern_xcalloc(1, sizeof(*a)) : NULL;
    while (s.p < s.end) {
        struct tval item;
        if (walk_value(&s, depth + 1, a ? &item : NULL) < 0) {
            tarray_free(a);
            return TERN_EPROTO;
        }
        if (a)
            tarray_append(a, item);
    }
    if (v)
        *v = (struct tval){.kind = TV_ARRAY, .a = a};
    return 0;
}

/* One value (type letter and payload) of a container at level depth. On success *v (when not
 * NULL) owns the value; on failure it is untouched. */
static int walk_value(struct cur *c, int depth, struct tval *v)
{
    const uint8_t *q = take(c, 1);
    if (!q)
        return TERN_EPROTO;
    switch (q[0]) {
    case 'S':
        return walk_bytes(c, TV_STR, v);
    case 'x':
        return walk_bytes(c, TV_BYTES, v);
    case 'F':
        return walk_table(c, depth, v);
    case 'A':
        return walk_array(c, depth, v);
    default:
        return walk_fixed(c, q[0], v);
    }
}

/* The entries of a table at level depth, filling the whole cursor; t may be NULL (check only). */
static int walk_entries(struct cur *c, int depth, struct table *t)
{
    while (c->p < c->end) {
        const uint8_t *klen = take(c, 1), *key = klen ? take(c, klen[0]) : NULL;
        if (!key || memchr(key, 0, klen[0]))
            return TERN_EPROTO;
        struct tval v;
        if (walk_value(c, depth, t ? &v : NULL) < 0)
            return TERN_EPROTO;
        if (t)
            table_append(t, copy_bytes(key, klen[0]), v);
    }
    return 0;
}

/* One whole table at the front of p[0..n); t may be NULL. Returns the bytes consumed. */
static int walk_top(const uint8_t *p, size_t n, struct table *t)
{
    struct cur c = {p, p + n}, s;
    if (take_block(&c, &s) < 0 || (size_t)(c.p - p) > INT_MAX)
        return TERN_EPROTO;
    if (walk_entries(&s, 1, t) < 0)
        return TERN_EPROTO;
    return (int)(c.p - p);
}

int table_decode(const uint8_t *p, size_t n, struct table **out)
{
    struct table *t = table_new();
    int rc = walk_top(p, n, t);
    if (rc < 0) {
        table_free(t);
        *out = NULL;
        return rc;
    }
    *out = t;
    return rc;
}

int table_validate(const uint8_t *p, size_t n)
{
    return walk_top(p, n, NULL);
}
