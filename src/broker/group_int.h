/*
 * group_int.h - internals shared by the files of the group coordinator: group.c (membership,
 * rebalancing, deadlines, callbacks, describe and list) and group_offset.c (committed offsets
 * and group deletion). Nothing outside src/broker/group*.c includes it.
 */
#ifndef TERN_GROUP_INT_H
#define TERN_GROUP_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "base/strmap.h"
#include "broker/group.h"

struct catalog;

#define GROUP_DL_IDLE ((size_t)-1)

enum group_state {
    GROUP_ST_EMPTY,
    GROUP_ST_PREPARING,
    GROUP_ST_COMPLETING,
    GROUP_ST_STABLE,
    GROUP_ST_DEAD
};

enum group_dl_kind { GROUP_DL_MEMBER, GROUP_DL_PENDING, GROUP_DL_JOIN, GROUP_DL_SYNC };

/* A deadline in the manager's heap. */
struct group_dl {
    uint64_t at; /* uv_now() milliseconds */
    size_t idx;  /* position in the heap, GROUP_DL_IDLE when not armed */
    enum group_dl_kind kind;
};

/* An answer owed to a join or sync request. */
struct group_waiter {
    struct group_waiter *prev, *next; /* in the manager's list while linked */
    void *owner;
    bool is_join;
    union {
        group_join_cb join;
        group_sync_cb sync;
    } cb; /* NULL: nothing owed */
    void *arg;
};

/* A decided answer, deep-copied, waiting for delivery. */
struct group_note {
    struct group_note *next;
    struct group_waiter w; /* owner, callback and arg (not linked) */
    int16_t error;
    int32_t generation;
    char *protocol_type, *protocol_name, *leader_id, *member_id;
    struct group_member_meta *members;
    size_t n_members;
    uint8_t *bytes; /* sync: the assignment */
    size_t len;
};

struct group_proto {
    char *name;
    uint8_t *meta;
    size_t len;
};

struct group;

struct group_member {
    struct group *g;
    char *id, *client_id, *client_host;
    int32_t session_timeout_ms, rebalance_timeout_ms;
    struct group_proto *protos;
    size_t n_protos;
    uint8_t *assignment;
    size_t assignment_len;
    bool awaiting_join; /* joined this rebalance */
    bool is_new;        /* its first join has not completed yet */
    bool id_known;      /* its client knows its id */
    bool pending_sync;  /* its sync is expected this generation */
    struct group_waiter join_w, sync_w;
    struct group_dl dl;
};

/* A member told MEMBER_ID_REQUIRED, expected to join again with its id. */
struct group_pending {
    struct group *g;
    char *id;
    struct group_dl dl;
};

/* A committed offset. */
struct group_off {
    char *topic;
    int32_t partition;
    int64_t offset;
    int32_t leader_epoch;
    char *metadata;
};

struct group {
    struct group_mgr *m;
    char *id;
    enum group_state state;
    int32_t generation;
    char *protocol_type, *protocol_name;
    struct group_member **members; /* join order */
    size_t n_members, members_cap;
    struct group_member *leader;
    size_t n_awaiting;
    struct group_pending **pending;
    size_t n_pending, pending_cap;
    int32_t rebalance_timeout_ms; /* the members' largest, taken when a rebalance starts */
    bool initial_delay;           /* the join deadline is the initial rebalance delay */
    bool new_member_added;        /* ... and a member arrived during it */
    uint32_t initial_remaining_ms;
    struct group_dl join_dl, sync_dl;
    struct strmap offsets; /* offset key -> struct group_off */
    struct group *gc_next; /* on the manager's list of groups to check */
    bool on_gc;
};

struct group_mgr {
    uv_loop_t *loop;
    struct catalog *cat;
    struct group_config cfg;
    struct strmap groups; /* id -> struct group */
    uv_timer_t timer;
    struct group_dl **heap;
    size_t heap_n, heap_cap;
    struct group_waiter waiters; /* list head */
    struct group_note *notes, **notes_tail;
    struct group *gc;
    int depth;                 /* group_* calls in progress */
    bool flushing;             /* delivering notes */
    struct group_fsync *fsync; /* durability of commits (group_offset.c); NULL until first used */
};

static inline const char *group_nz(const char *s)
{
    return s ? s : "";
}

/* ---- group.c -------------------------------------------------------------------------------- */

/* Brackets every call that may change state: the outermost enter refreshes the loop time
 * (deadlines count from now); the outermost exit delivers the queued callbacks, frees idle
 * and deleted groups and re-arms the timer. */
void group_api_enter(struct group_mgr *m);
void group_api_exit(struct group_mgr *m);
/* The group named id, or NULL. */
struct group *group_find(struct group_mgr *m, const char *id);
/* A new Empty group named id (a copy), added to the map. */
struct group *group_create(struct group_mgr *m, const char *id);
/* Has g checked at the outermost exit (freed if deleted, or Empty with nothing in it). */
void group_touch(struct group *g);
/* The member of g named id, or NULL. */
struct group_member *group_member_find(const struct group *g, const char *id);
/* Re-arms mem's session deadline (a new member keeps its join deadline). */
void group_member_touch(struct group_member *mem);

/* ---- group_offset.c ------------------------------------------------------------------------- */

/* Leaves the durability state to the job in flight (if any) to free, or frees it now; waiters
 * not yet called are dropped. For group_mgr_free. */
void group_fsync_release(struct group_mgr *m);

/* Loads every committed offset from the catalog into its group (created Empty). Returns 0 or
 * the catalog's error. */
int group_offsets_load(struct group_mgr *m);
/* Frees g's in-memory offsets and their map. */
void group_offsets_free(struct group *g);

#endif
