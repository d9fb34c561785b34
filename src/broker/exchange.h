/*
 * exchange.h - exchanges, their bindings, and routing (direct, fanout, topic, headers).
 *
 * Protocol-neutral: an exchange has a name, a type and a set of bindings. A binding points at
 * a destination the caller owns (a queue or another exchange: an opaque pointer plus a kind)
 * and carries a binding key and an argument table. Identity is (dest, key, args) as in
 * RabbitMQ, args compared as tables (NULL equals empty). One destination has one kind.
 *
 * Routing semantics are RabbitMQ's:
 *   direct   the binding key equals the routing key, byte for byte (a hash lookup).
 *   fanout   every binding; the routing key is ignored.
 *   topic    see broker/topic.h ('*' one word, '#' zero or more, empty words count).
 *   headers  the binding's x-match (all | any | all-with-x | any-with-x; absent or unknown:
 *            all) over its other arguments; see exchange.c for the exact value rules.
 * exchange_route visits each matching destination once, however many of its bindings match.
 * Cycles through exchange-to-exchange bindings are the caller's to cut.
 *
 * Threading: none. Reading calls (route, each_binding, lookups) do not modify the exchange.
 */
#ifndef TERN_EXCHANGE_H
#define TERN_EXCHANGE_H

#include <stdbool.h>
#include <stddef.h>

struct table;

enum exchange_type { EXCHANGE_DIRECT, EXCHANGE_FANOUT, EXCHANGE_TOPIC, EXCHANGE_HEADERS };
enum exchange_dest_kind { EXCHANGE_DEST_QUEUE, EXCHANGE_DEST_EXCHANGE };

/* "direct" | "fanout" | "topic" | "headers" (s[0..len), exact bytes) -> 0, else -EINVAL. */
int exchange_type_parse(const char *s, size_t len, enum exchange_type *out);
/* The static name of t ("direct", ...), or "unknown" for a value outside the enum. */
const char *exchange_type_name(enum exchange_type t);

struct exchange;

/* A new exchange with no bindings; name is copied (it may be "", the default exchange).
 * Control-plane allocation: aborts on out-of-memory. */
struct exchange *exchange_new(const char *name, enum exchange_type type);
/* Frees x and its bindings (not the destinations). NULL is a no-op. */
void exchange_free(struct exchange *x);
/* The name, owned by x. */
const char *exchange_name(const struct exchange *x);
enum exchange_type exchange_type(const struct exchange *x);

/*
 * Adds a binding. Identity is (dest, key, args) as in RabbitMQ: binding the same triple again
 * is a no-op. args may be NULL (= empty); it is copied, key too. dest stays the caller's; kind
 * must be the kind of dest's other bindings. Headers arguments are not checked here: call
 * exchange_headers_args_valid first. Returns 1 when added, 0 when it already existed.
 */
int exchange_bind(struct exchange *x, void *dest, enum exchange_dest_kind kind, const char *key,
                  const struct table *args);
/* Removes that exact binding (args NULL = empty). Returns 0, or -ENOENT when there is none. */
int exchange_unbind(struct exchange *x, void *dest, const char *key, const struct table *args);
/* Removes every binding to dest; returns how many. */
size_t exchange_unbind_dest(struct exchange *x, void *dest);
size_t exchange_binding_count(const struct exchange *x);
bool exchange_has_binding_to(const struct exchange *x, void *dest);

/*
 * Visits every binding in insertion order; cb returns non-zero to stop early. args is the
 * exchange's copy (NULL when the binding was made with NULL) and key is NUL-terminated; both
 * are valid during the call only. cb may unbind the binding it is given, and nothing else.
 */
void exchange_each_binding(const struct exchange *x,
                           int (*cb)(void *arg, void *dest, enum exchange_dest_kind kind,
                                     const char *key, const struct table *args),
                           void *arg);

/*
 * Calls visit once per DISTINCT destination whose binding matches the message (routing key rk
 * of rklen bytes; headers may be NULL = none). Order: unspecified but deterministic. visit may
 * route through other exchanges (even this one again) but must not bind or unbind on x.
 */
void exchange_route(const struct exchange *x, const char *rk, size_t rklen,
                    const struct table *headers,
                    void (*visit)(void *arg, void *dest, enum exchange_dest_kind kind), void *arg);

/* Checks a headers binding's x-match argument: absent, or the longstr "all", "any",
 * "all-with-x" or "any-with-x". Returns 0, or -EINVAL (RabbitMQ refuses such a binding). */
int exchange_headers_args_valid(const struct table *args);

#endif
