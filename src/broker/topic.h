/*
 * topic.h - the trie behind topic exchanges: (pattern, value) pairs matched against routing
 * keys with AMQP topic semantics, as RabbitMQ implements them.
 *
 * Words: a key is split on '.'; the empty key has no words, and every other key has one more
 * word than it has dots, so empty words count ("a..b" is three words, "." is two). In a
 * pattern a word that is exactly "*" matches exactly one word (possibly empty), a word that is
 * exactly "#" matches zero or more words; any other word, "a*" included, is literal. So the
 * pattern "" matches only the key "", "#" matches every key, "*" never matches "".
 *
 * Cost: matching walks the trie once per key word with the set of live nodes (an NFA run over
 * the trie), so it does not grow with the number of patterns that cannot match, and patterns
 * with several '#' cannot make it blow up. Values are opaque; the trie never dereferences
 * them. A (pattern, value) pair is counted: adding it twice needs two removals.
 *
 * Threading: none; topic_match only reads the trie, so concurrent matches are safe while no
 * one adds or removes.
 */
#ifndef TERN_TOPIC_H
#define TERN_TOPIC_H

#include <stddef.h>

struct topic;

/* A new, empty trie (control-plane allocation: aborts on out-of-memory). */
struct topic *topic_new(void);
/* Frees the trie; the values are the caller's and are left alone. NULL is a no-op. */
void topic_free(struct topic *t);

/* Adds one reference to (pattern[0..len), value). The trie keeps its own copy of the words. */
void topic_add(struct topic *t, const char *pattern, size_t len, void *value);
/* Drops one reference to (pattern, value), pruning trie nodes nothing uses any more.
 * Returns 0, or -ENOENT when the pair is not in the trie. */
int topic_remove(struct topic *t, const char *pattern, size_t len, void *value);

/* Calls visit once per DISTINCT value whose pattern matches rk[0..len). Order is unspecified
 * but deterministic: the same trie and key visit the same values in the same order. visit must
 * not add to or remove from this trie. */
void topic_match(const struct topic *t, const char *rk, size_t len,
                 void (*visit)(void *arg, void *value), void *arg);

/* Distinct (pattern, value) pairs and trie nodes (the root included); for tests and stats. */
size_t topic_pair_count(const struct topic *t);
size_t topic_node_count(const struct topic *t);

#endif
