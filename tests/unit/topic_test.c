/* topic_test.c - the topic trie: RabbitMQ's word rules, counting, pruning, and a 100k-pattern
 * comparison against a brute-force matcher. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <errno.h>

#include "broker/topic.h"

/* ---- helpers -------------------------------------------------------------------------------- */

#define MAX_SEEN 64

struct seen {
    void *v[MAX_SEEN];
    size_t n;
};

static void collect(void *arg, void *value)
{
    struct seen *s = arg;
    for (size_t i = 0; i < s->n; i++)
        assert_ptr_not_equal(s->v[i], value); /* each value at most once */
    assert_true(s->n < MAX_SEEN);
    s->v[s->n++] = value;
}

static struct seen match(const struct topic *t, const char *rk)
{
    struct seen s = {.n = 0};
    topic_match(t, rk, strlen(rk), collect, &s);
    return s;
}

static bool seen_has(const struct seen *s, const void *v)
{
    for (size_t i = 0; i < s->n; i++) {
        if (s->v[i] == v)
            return true;
    }
    return false;
}

static void add(struct topic *t, const char *pattern, void *value)
{
    topic_add(t, pattern, strlen(pattern), value);
}

static int del(struct topic *t, const char *pattern, void *value)
{
    return topic_remove(t, pattern, strlen(pattern), value);
}

/*
 * A brute-force matcher written straight from the rules: keys and patterns are split into words
 * ("" has none), '#' tries every split point. Exponential in the worst case, fine for tests.
 */
struct words {
    const char *w[16];
    size_t len[16];
    size_t n;
};

static void split(const char *s, struct words *out)
{
    out->n = 0;
    if (!*s)
        return;
    for (;;) {
        const char *dot = strchr(s, '.');
        size_t len = dot ? (size_t)(dot - s) : strlen(s);
        assert_true(out->n < 16);
        out->w[out->n] = s;
        out->len[out->n++] = len;
        if (!dot)
            return;
        s = dot + 1;
    }
}

static bool word_is(const struct words *p, size_t i, char c)
{
    return p->len[i] == 1 && p->w[i][0] == c;
}

static bool brute_at(const struct words *p, size_t i, const struct words *k, size_t j)
{
    if (i == p->n)
        return j == k->n;
    if (word_is(p, i, '#'))
        return brute_at(p, i + 1, k, j) || (j < k->n && brute_at(p, i, k, j + 1));
    if (j == k->n)
        return false;
    if (!word_is(p, i, '*') && (p->len[i] != k->len[j] || memcmp(p->w[i], k->w[j], p->len[i]) != 0))
        return false;
    return brute_at(p, i + 1, k, j + 1);
}

static bool brute(const struct words *p, const struct words *k)
{
    return brute_at(p, 0, k, 0);
}

/* ---- word rules ----------------------------------------------------------------------------- */

static const struct {
    const char *pattern, *key;
    bool match;
} cases[] = {
    {"", "", true},
    {"", "a", false},
    {"", ".", false},
    {"#", "", true},
    {"#", "a", true},
    {"#", "a.b.c", true},
    {"#", ".", true},
    {"#", "#", true},
    {"*", "", false},
    {"*", "a", true},
    {"*", ".", false},
    {"*", "a.b", false},
    {"*", "#", true},
    {"*.*", ".", true},
    {"*.*", "a.", true},
    {"*.*", ".a", true},
    {"*.*.*", "a.b", false},
    {"a.*", "a.", true},
    {"a.*", "a", false},
    {"a..b", "a..b", true},
    {"a.*.b", "a..b", true},
    {"a.b", "a..b", false},
    {"a.#.b", "a.b", true},
    {"a.#.b", "a.x.b", true},
    {"a.#.b", "a.x.y.b", true},
    {"a.#.b", "a.b.c", false},
    {"a.#.b", "a..b", true},
    {"#.a", "a", true},
    {"#.a", "x.a", true},
    {"#.a", "a.x", false},
    {"#.a", "", false},
    {"a.#", "a", true},
    {"a.#", "a.b.c", true},
    {"a.#", "b", false},
    {"a.#", "", false},
    {"#.#", "", true},
    {"#.#", "a.b", true},
    {"*.#", "", false},
    {"*.#", "a", true},
    {"*.#", "a.b.c", true},
    {"#.*", "", false},
    {"#.*", "a", true},
    {"#.*.#", "a.b", true},
    {"#.*.#", "", false},
    {"a.#.#.b", "a.b", true},
    {"a.#.#.b", "a.x.y.z.b", true},
    {"#.b.#", "b", true},
    {"#.b.#", "a.b.c", true},
    {"#.b.#", "a.c", false},
    {"a.*", "a.*", true},
    {"a.b", "a.*", false},
    {"a.#", "a.#", true},
    {"a*", "ab", false},
    {"a*", "a*", true},
    {"a#", "a", false},
    {"A", "a", false},
    {".", ".", true},
    {".", "", false},
    {"#.", "", false},
    {"#.", "a.", true},
    {".#", "", false},
    {".#", ".", true},
    {"a.b.c", "a.b.c", true},
    {"a.b.c", "a.b", false},
    {"a.b", "a.b.c", false},
    {"#.#.#", "x", true},
};

static void test_word_rules(void **state)
{
    (void)state;
    int dest;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct topic *t = topic_new();
        add(t, cases[i].pattern, &dest);
        struct seen s = match(t, cases[i].key);
        struct words p, k;
        split(cases[i].pattern, &p);
        split(cases[i].key, &k);
        if (s.n != (size_t)cases[i].match || brute(&p, &k) != cases[i].match)
            fail_msg("pattern '%s' key '%s': expected %d, trie %zu, brute %d", cases[i].pattern,
                     cases[i].key, cases[i].match, s.n, brute(&p, &k));
        topic_free(t);
    }
}

/* The bindings and expectations of RabbitMQ's routing_SUITE topic test (same facts). */
static const char *const rmq_patterns[] = {
    "a.b.c",         "a.*.c", "a.#.b", "a.b.b.c", "#",     "#.#", "#.b",   "*.*", "a.*",
    "*.b.c",         "a.#",   "a.#.#", "b.b.c",   "a.b.b", "a.b", "b.c",   "",    "*.*.*",
    "vodka.martini", "a.b.c", "*.#",   "#.*.#",   "*.#.#", "*",   "#.b.#",
};
/* queue number for each pattern above (t1..t26; t20 shares "a.b.c" with t1, t24 is unused) */
static const int rmq_queue[] = {1,  2,  3,  4,  5,  6,  7,  8,  9,  10, 11, 12, 13,
                                14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 25, 26};

static const struct {
    const char *key;
    int q[16]; /* 0-terminated */
} rmq_expect[] = {
    {"a.b.c", {1, 2, 5, 6, 10, 11, 12, 18, 20, 21, 22, 23, 26}},
    {"a.b", {3, 5, 6, 7, 8, 9, 11, 12, 15, 21, 22, 23, 26}},
    {"a.b.b", {3, 5, 6, 7, 11, 12, 14, 18, 21, 22, 23, 26}},
    {"", {5, 6, 17}},
    {"b.c.c", {5, 6, 18, 21, 22, 23, 26}},
    {"a.a.a.a.a", {5, 6, 11, 12, 21, 22, 23}},
    {"vodka.gin", {5, 6, 8, 21, 22, 23}},
    {"vodka.martini", {5, 6, 8, 19, 21, 22, 23}},
    {"b.b.c", {5, 6, 10, 13, 18, 21, 22, 23, 26}},
    {"nothing.here.at.all", {5, 6, 21, 22, 23}},
    {"oneword", {5, 6, 21, 22, 23, 25}},
};

static void test_rabbitmq_suite(void **state)
{
    (void)state;
    int queues[27];
    struct topic *t = topic_new();
    for (size_t i = 0; i < sizeof(rmq_patterns) / sizeof(rmq_patterns[0]); i++)
        add(t, rmq_patterns[i], &queues[rmq_queue[i]]);
    for (size_t i = 0; i < sizeof(rmq_expect) / sizeof(rmq_expect[0]); i++) {
        struct seen s = match(t, rmq_expect[i].key);
        size_t n = 0;
        for (; rmq_expect[i].q[n]; n++) {
            if (!seen_has(&s, &queues[rmq_expect[i].q[n]]))
                fail_msg("key '%s' misses t%d", rmq_expect[i].key, rmq_expect[i].q[n]);
        }
        assert_int_equal(s.n, n);
    }
    /* RabbitMQ then removes t1, t5, t11, t19, t21 and "a.b.c" -> t20 stays */
    assert_int_equal(del(t, "a.b.c", &queues[1]), 0);
    assert_int_equal(del(t, "#", &queues[5]), 0);
    assert_int_equal(del(t, "a.#", &queues[11]), 0);
    assert_int_equal(del(t, "vodka.martini", &queues[19]), 0);
    assert_int_equal(del(t, "*.#", &queues[21]), 0);
    struct seen s = match(t, "a.b.c");
    int want[] = {2, 6, 10, 12, 18, 20, 22, 23, 26};
    assert_int_equal(s.n, sizeof(want) / sizeof(want[0]));
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++)
        assert_true(seen_has(&s, &queues[want[i]]));
    s = match(t, "");
    assert_int_equal(s.n, 2);
    assert_true(seen_has(&s, &queues[6]) && seen_has(&s, &queues[17]));
    s = match(t, "vodka.martini");
    assert_int_equal(s.n, 4); /* t6 t8 t22 t23 */
    topic_free(t);
}

/* ---- counting and pruning ------------------------------------------------------------------- */

static void test_counted_pairs(void **state)
{
    (void)state;
    int a, b;
    struct topic *t = topic_new();
    add(t, "x.*", &a);
    add(t, "x.*", &a);
    add(t, "x.#", &a);
    add(t, "x.*", &b);
    assert_int_equal(topic_pair_count(t), 3);
    struct seen s = match(t, "x.y"); /* a through two patterns, still once */
    assert_int_equal(s.n, 2);
    assert_ptr_equal(s.v[0], &a);
    assert_ptr_equal(s.v[1], &b);
    assert_int_equal(del(t, "x.*", &a), 0);
    assert_int_equal(topic_pair_count(t), 3); /* one reference left */
    assert_int_equal(del(t, "x.*", &a), 0);
    assert_int_equal(del(t, "x.*", &a), -ENOENT);
    assert_int_equal(del(t, "x.y", &a), -ENOENT);
    assert_int_equal(del(t, "q.r.s", &a), -ENOENT);
    assert_int_equal(topic_pair_count(t), 2);
    s = match(t, "x.y");
    assert_int_equal(s.n, 2);
    topic_free(t);
}

static void test_pruning(void **state)
{
    (void)state;
    int a, b;
    struct topic *t = topic_new();
    const char *pats[] = {"a.b.c", "a.b", "a.#.c", "#.#", "*.x.*", "", "a..b", "#"};
    for (size_t i = 0; i < sizeof(pats) / sizeof(pats[0]); i++) {
        add(t, pats[i], &a);
        add(t, pats[i], &b);
    }
    assert_true(topic_node_count(t) > 1);
    for (size_t i = 0; i < sizeof(pats) / sizeof(pats[0]); i++)
        assert_int_equal(del(t, pats[i], &a), 0);
    assert_int_equal(match(t, "a.b.c").n, 1);
    for (size_t i = sizeof(pats) / sizeof(pats[0]); i-- > 0;)
        assert_int_equal(del(t, pats[i], &b), 0);
    assert_int_equal(topic_node_count(t), 1);
    assert_int_equal(topic_pair_count(t), 0);
    assert_int_equal(match(t, "a.b.c").n, 0);
    assert_int_equal(match(t, "").n, 0);
    /* the trie is usable again after being emptied */
    add(t, "a.b", &a);
    assert_int_equal(match(t, "a.b").n, 1);
    topic_free(t);
}

/* Many '#' in one pattern against a long key: the live set stays bounded, no blow-up. */
static void test_many_hashes(void **state)
{
    (void)state;
    int a;
    struct topic *t = topic_new();
    add(t, "#.#.#.#.#.#.#.#.#.#.#.#.#.#.#.#.z", &a);
    char key[4096];
    size_t n = 0;
    for (int i = 0; i < 1000; i++) {
        key[n++] = 'y';
        key[n++] = '.';
    }
    key[n++] = 'z';
    key[n] = 0;
    assert_int_equal(match(t, key).n, 1);
    key[n - 1] = 'q';
    assert_int_equal(match(t, key).n, 0);
    topic_free(t);
}

/* ---- scale: 100k patterns, 10k keys, against brute force ------------------------------------ */

#define SCALE_PATTERNS 100000
#define SCALE_KEYS 10000
#define SCALE_DESTS 1000

static uint64_t rng = 0x9e3779b97f4a7c15ULL;

static uint32_t rnd(uint32_t n)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (uint32_t)(rng % n);
}

/* A random word: mostly from a 20-word vocabulary, sometimes empty, in patterns sometimes a
 * wildcard. */
static size_t rand_word(char *out, bool pattern)
{
    uint32_t r = rnd(100);
    if (pattern && r < 4)
        return (size_t)sprintf(out, "*");
    if (pattern && r < 7)
        return (size_t)sprintf(out, "#");
    if (r < 9)
        return 0;
    return (size_t)sprintf(out, "w%u", rnd(20));
}

static void rand_key(char *out, bool pattern)
{
    size_t nw = rnd(5) + (pattern ? 1 : 0), n = 0;
    if (!pattern && nw > 0 && rnd(10) == 0)
        nw = 0; /* some "" keys */
    for (size_t i = 0; i < nw; i++) {
        if (i)
            out[n++] = '.';
        n += rand_word(out + n, pattern);
    }
    out[n] = 0;
}

struct scale_hits {
    unsigned count[SCALE_DESTS];
    char *base;
};

static void scale_visit(void *arg, void *value)
{
    struct scale_hits *h = arg;
    h->count[(char *)value - h->base]++;
}

/* The brute-force candidates for a key: patterns whose first word is that literal word, plus
 * those starting with a wildcard (bucket 0). Only prunes patterns that plainly cannot match. */
#define SCALE_BUCKETS 22

static size_t first_bucket(const struct words *w, bool pattern)
{
    if (w->n == 0)
        return 0;
    if (pattern && (word_is(w, 0, '*') || word_is(w, 0, '#')))
        return 0;
    if (w->len[0] == 0)
        return 1;
    return 2 + (size_t)atoi(w->w[0] + 1);
}

static void test_scale_against_brute_force(void **state)
{
    (void)state;
    static char pats[SCALE_PATTERNS][64];
    static struct words pw[SCALE_PATTERNS];
    static unsigned pdest[SCALE_PATTERNS];
    static unsigned order[SCALE_PATTERNS]; /* pattern numbers grouped by first_bucket */
    size_t bstart[SCALE_BUCKETS + 1] = {0};
    static char dests[SCALE_DESTS];
    struct topic *t = topic_new();
    for (size_t i = 0; i < SCALE_PATTERNS; i++) {
        rand_key(pats[i], true);
        pdest[i] = rnd(SCALE_DESTS);
        split(pats[i], &pw[i]);
        add(t, pats[i], &dests[pdest[i]]);
        bstart[first_bucket(&pw[i], true) + 1]++;
    }
    for (size_t b = 1; b <= SCALE_BUCKETS; b++)
        bstart[b] += bstart[b - 1];
    size_t fill[SCALE_BUCKETS];
    memcpy(fill, bstart, sizeof(fill));
    for (size_t i = 0; i < SCALE_PATTERNS; i++)
        order[fill[first_bucket(&pw[i], true)]++] = (unsigned)i;

    static struct scale_hits got;
    static bool want[SCALE_DESTS];
    got.base = dests;
    size_t total = 0;
    for (size_t i = 0; i < SCALE_KEYS; i++) {
        char key[64];
        struct words kw;
        rand_key(key, false);
        split(key, &kw);
        memset(want, 0, sizeof(want));
        size_t scan[2] = {0, first_bucket(&kw, false)};
        for (size_t s = 0; s < (scan[1] ? 2u : 1u); s++) {
            for (size_t j = bstart[scan[s]]; j < bstart[scan[s] + 1]; j++) {
                unsigned p = order[j];
                if (!want[pdest[p]] && brute(&pw[p], &kw))
                    want[pdest[p]] = true;
            }
        }
        memset(got.count, 0, sizeof(got.count));
        topic_match(t, key, strlen(key), scale_visit, &got);
        for (size_t d = 0; d < SCALE_DESTS; d++) {
            if (got.count[d] != (unsigned)want[d])
                fail_msg("key '%s' dest %zu: trie %u brute %d", key, d, got.count[d], want[d]);
            total += want[d];
        }
    }
    assert_true(total > SCALE_KEYS); /* the keys do match something */
    for (size_t i = 0; i < SCALE_PATTERNS; i++)
        assert_int_equal(topic_remove(t, pats[i], strlen(pats[i]), &dests[pdest[i]]), 0);
    assert_int_equal(topic_node_count(t), 1);
    topic_free(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_word_rules),    cmocka_unit_test(test_rabbitmq_suite),
        cmocka_unit_test(test_counted_pairs), cmocka_unit_test(test_pruning),
        cmocka_unit_test(test_many_hashes),   cmocka_unit_test(test_scale_against_brute_force),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
