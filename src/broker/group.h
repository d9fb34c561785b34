/*
 * group.h - the consumer-group coordinator: Kafka's classic group membership protocol
 * (JoinGroup, SyncGroup, Heartbeat, LeaveGroup) and committed offsets (OffsetCommit,
 * OffsetFetch), plus DescribeGroups, ListGroups and DeleteGroups, with no wire format and no
 * I/O of its own. The Kafka session decodes a request, calls one function here and encodes
 * what comes back; results carry Kafka error codes (GROUP_ERR_*), never tern errors.
 *
 * Model (as Kafka's GroupCoordinator): a group is Empty, PreparingRebalance,
 * CompletingRebalance or Stable (Dead: deleted or unknown). A join of a new member, a leader's
 * rejoin, a member's changed metadata, a leave or an expired session starts a rebalance
 * (PreparingRebalance): every member must join again; the join completes when all known
 * members have rejoined (and no member-id-required member is outstanding) or when the largest
 * rebalance timeout of the members expires (members that did not rejoin are dropped). Then the
 * generation is bumped, the protocol all members support with the most first-choice votes is
 * chosen, the first-joined surviving member leads, and every joined member gets its join
 * result, the leader with the member list (CompletingRebalance). The leader's sync carries the
 * assignments; every member's sync is answered with its own bytes once the leader's arrives
 * (Stable). Members that send no sync within the rebalance timeout are dropped and the group
 * rebalances again. Metadata and assignment bytes are opaque.
 *
 * Timing: sessions expire with uv time through one uv timer; each call refreshes the loop's
 * time (uv_update_time), so deadlines count from the call, not from the iteration start. The
 * first rebalance of an Empty group waits initial_rebalance_delay_ms (extended while members
 * keep arriving, up to the rebalance timeout) so that a fleet of starting consumers forms one
 * generation; with 0 the join completes as soon as every member has joined (possibly inside
 * group_join).
 *
 * Durability: committed offsets go to the catalog (one transaction per commit, written before
 * group_commit returns, visible to group_fetch_offsets at once and safe from a crash of the
 * process) and are loaded back by group_mgr_new. The transaction does not fsync on the loop:
 * group_wait_durable reports when an fdatasync of the catalog's WAL, run on the thread pool and
 * shared by every commit made before it started, has made them safe from a power loss; a
 * session answers the commit then. Membership,
 * generations and assignments are not persisted: after a restart every group is Empty with
 * its offsets, and members rejoin (their heartbeats get UNKNOWN_MEMBER_ID). Static membership
 * (group.instance.id) is not supported: a join carrying one gets UNSUPPORTED_VERSION.
 *
 * Callbacks: group_join and group_sync answer through a callback that fires exactly once,
 * possibly before the call returns, unless cancelled by group_conn_closed(owner). Callbacks
 * run after the manager's state is consistent (they are queued and delivered when the
 * outermost group_* call, or the timer, finishes), so a callback may call any group_*
 * function except group_mgr_free. A result's pointers are valid only during the callback.
 *
 * Pointers returned by group_describe, group_fetch_offsets and group_list point into the
 * manager's state: valid until the next call that can change it (join, sync, heartbeat, leave,
 * commit, delete, forget, conn_closed) or the next loop iteration.
 *
 * Unlike Kafka, which keeps an Empty group until its periodic cleanup, a group that is Empty
 * with no committed offsets and no member-id-required member is dropped at once: describe
 * then says Dead and list leaves it out.
 *
 * Threading: everything runs on the loop thread.
 */
#ifndef TERN_GROUP_H
#define TERN_GROUP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

struct catalog;

/* Kafka error codes (org.apache.kafka.common.protocol.Errors) the coordinator returns. */
enum {
    GROUP_ERR_NONE = 0,
    GROUP_ERR_UNKNOWN_TOPIC_OR_PARTITION = 3,
    GROUP_ERR_OFFSET_METADATA_TOO_LARGE = 12,
    GROUP_ERR_COORDINATOR_LOAD_IN_PROGRESS = 14,
    GROUP_ERR_COORDINATOR_NOT_AVAILABLE = 15,
    GROUP_ERR_NOT_COORDINATOR = 16,
    GROUP_ERR_ILLEGAL_GENERATION = 22,
    GROUP_ERR_INCONSISTENT_GROUP_PROTOCOL = 23,
    GROUP_ERR_INVALID_GROUP_ID = 24,
    GROUP_ERR_UNKNOWN_MEMBER_ID = 25,
    GROUP_ERR_INVALID_SESSION_TIMEOUT = 26,
    GROUP_ERR_REBALANCE_IN_PROGRESS = 27,
    GROUP_ERR_UNSUPPORTED_VERSION = 35,
    GROUP_ERR_NON_EMPTY_GROUP = 68,
    GROUP_ERR_GROUP_ID_NOT_FOUND = 69,
    GROUP_ERR_MEMBER_ID_REQUIRED = 79,
};

/* Knobs; group_config_default() gives Kafka's defaults. */
struct group_config {
    uint32_t initial_rebalance_delay_ms; /* group.initial.rebalance.delay.ms (3000) */
    uint32_t min_session_timeout_ms;     /* group.min.session.timeout.ms (6000) */
    uint32_t max_session_timeout_ms;     /* group.max.session.timeout.ms (1800000) */
    uint32_t new_member_join_timeout_ms; /* a new member's join may wait this long (300000) */
    uint32_t max_metadata_bytes;         /* offset.metadata.max.bytes (4096) */
    /* Optional: false makes a commit of that partition fail with UNKNOWN_TOPIC_OR_PARTITION.
     * NULL accepts every partition. */
    bool (*partition_exists)(void *arg, const char *topic, int32_t partition);
    void *partition_exists_arg;
};

void group_config_default(struct group_config *cfg);

struct group_mgr;

/*
 * Creates the coordinator and loads every committed offset from cat (each group with offsets
 * starts Empty, generation 0). loop, cat and cfg->partition_exists_arg must outlive the
 * manager; cfg is copied. Returns the manager, or NULL when the catalog load failed
 * (catalog_errmsg(cat) says why; logged too). Allocation failure aborts.
 */
struct group_mgr *group_mgr_new(uv_loop_t *loop, struct catalog *cat,
                                const struct group_config *cfg);
/*
 * Frees every group; pending join and sync callbacks are dropped without a call (close the
 * sessions first). The timer handle closes asynchronously: run the loop once more before
 * uv_loop_close(). Must not be called from a group callback. NULL is a no-op.
 */
void group_mgr_free(struct group_mgr *m);

/* ---- membership ------------------------------------------------------------------------------ */

struct group_protocol {
    const char *name;        /* e.g. "range" */
    const uint8_t *metadata; /* opaque subscription bytes */
    size_t metadata_len;
};

struct group_join_req {
    const char *group_id;
    const char *member_id;         /* "" (or NULL): a new member; the coordinator names it */
    const char *group_instance_id; /* NULL; anything else gets UNSUPPORTED_VERSION */
    const char *client_id;         /* may be NULL; the new member id is "<client_id>-<uuid>" */
    const char *client_host;       /* may be NULL */
    int32_t session_timeout_ms;
    int32_t rebalance_timeout_ms;           /* <= 0: the session timeout (JoinGroup v0) */
    const char *protocol_type;              /* e.g. "consumer" */
    const struct group_protocol *protocols; /* in the member's order of preference */
    size_t n_protocols;
    bool require_known_member; /* JoinGroup v4+: a new member first gets MEMBER_ID_REQUIRED */
};

struct group_member_meta {
    const char *member_id;
    const char *group_instance_id; /* always NULL (no static membership) */
    const uint8_t *metadata;       /* the member's metadata for the chosen protocol */
    size_t metadata_len;
};

struct group_join_result {
    int16_t error;
    int32_t generation;                      /* -1 on error */
    const char *protocol_type;               /* NULL on error */
    const char *protocol_name;               /* NULL on error */
    const char *leader_id;                   /* "" on error */
    const char *member_id;                   /* the member's id: assigned ones too (also with
                                                MEMBER_ID_REQUIRED); "" when a new member was refused */
    const struct group_member_meta *members; /* the leader only: every member, join order */
    size_t n_members;
};

typedef void (*group_join_cb)(void *arg, const struct group_join_result *r);

/*
 * JoinGroup. cb(arg, result) fires exactly once: before group_join returns when the answer is
 * known at once (errors, MEMBER_ID_REQUIRED, a follower's rejoin of a stable group, a join that
 * completes the rebalance), otherwise when the rebalance completes, unless
 * group_conn_closed(m, owner) cancels it first. owner is an opaque cookie (the connection;
 * NULL: never cancelled). req and everything it points to are copied before the call returns.
 * A second join of a member that is still waiting answers the first with
 * REBALANCE_IN_PROGRESS.
 */
void group_join(struct group_mgr *m, const struct group_join_req *req, void *owner,
                group_join_cb cb, void *arg);

struct group_assignment {
    const char *member_id;
    const uint8_t *data;
    size_t len;
};

struct group_sync_req {
    const char *group_id;
    int32_t generation;
    const char *member_id;
    const char *group_instance_id;              /* NULL */
    const char *protocol_type;                  /* SyncGroup v5+: checked when not NULL */
    const char *protocol_name;                  /* SyncGroup v5+: checked when not NULL */
    const struct group_assignment *assignments; /* the leader's; ignored from followers */
    size_t n_assignments; /* members the leader leaves out get empty assignments */
};

struct group_sync_result {
    int16_t error;
    const char *protocol_type; /* NULL on error */
    const char *protocol_name; /* NULL on error */
    const uint8_t *assignment; /* the member's own bytes */
    size_t assignment_len;
};

typedef void (*group_sync_cb)(void *arg, const struct group_sync_result *r);

/*
 * SyncGroup. cb fires exactly once (same rules as group_join): at once for errors, the leader
 * and members of a stable group; a follower waits for the leader's sync (or gets
 * REBALANCE_IN_PROGRESS when a rebalance starts first). req is copied before the call returns.
 */
void group_sync(struct group_mgr *m, const struct group_sync_req *req, void *owner,
                group_sync_cb cb, void *arg);

/*
 * Heartbeat: NONE (session extended), REBALANCE_IN_PROGRESS (also extended: rejoin now),
 * ILLEGAL_GENERATION, UNKNOWN_MEMBER_ID (also for any group_instance_id), INVALID_GROUP_ID.
 */
int16_t group_heartbeat(struct group_mgr *m, const char *group_id, int32_t generation,
                        const char *member_id, const char *group_instance_id);

/*
 * LeaveGroup for n members (v0-2: n = 1; v3+: the request's list). errors[i] gets each
 * member's result (NONE or UNKNOWN_MEMBER_ID); returns the request-level error (NONE or
 * INVALID_GROUP_ID, then errors[] is not written). For v0-2 the response's error is errors[0]
 * unless the request-level one is set. Removed members' pending callbacks get
 * UNKNOWN_MEMBER_ID; the group rebalances, and the remaining members' join callbacks may fire
 * before this returns (when they had all rejoined already). member_ids is borrowed.
 */
int16_t group_leave(struct group_mgr *m, const char *group_id, const char *const *member_ids,
                    size_t n, int16_t *errors);

/*
 * Forgets owner's pending join and sync callbacks (the connection closed): they never fire,
 * including results already decided and not yet delivered. Membership is kept (the member
 * expires by its session or rebalance timeout as in Kafka), except a new member whose id never
 * reached its client: it is dropped at once, so its rebalance need not wait for it.
 */
void group_conn_closed(struct group_mgr *m, void *owner);

/* ---- offsets --------------------------------------------------------------------------------- */

struct group_offset {
    const char *topic;
    int32_t partition;
    int64_t offset;       /* commit: in; fetch: out, -1 when none */
    int32_t leader_epoch; /* commit: in (-1: unknown); fetch: out, -1 when none */
    const char *metadata; /* commit: in (NULL is stored as ""); fetch: out, "" when none */
    int16_t error;        /* out: per-partition result */
};

/*
 * OffsetCommit. generation -1 with member_id "" is a commit by a client outside group
 * management (allowed while the group is Empty; creates the group); otherwise member and
 * generation must match. Each v[i].error gets the partition's result: NONE,
 * OFFSET_METADATA_TOO_LARGE, UNKNOWN_TOPIC_OR_PARTITION (cfg hook), or the group-level error
 * (INVALID_GROUP_ID, UNKNOWN_MEMBER_ID, ILLEGAL_GENERATION, REBALANCE_IN_PROGRESS) for all, or
 * COORDINATOR_NOT_AVAILABLE when the catalog write failed. The accepted partitions are stored
 * in one catalog transaction before this returns (not yet fsynced: group_wait_durable). The caller
 * keeps ownership of v. Returns 0, or the negative catalog error (partition errors are set either
 * way).
 */
int group_commit(struct group_mgr *m, const char *group_id, int32_t generation,
                 const char *member_id, const char *group_instance_id, struct group_offset *v,
                 size_t n);

/*
 * Calls cb(arg, status) once every offset committed so far is on disk: status 0 after the
 * fdatasync of the catalog's WAL that covers them, or a negative error (then the commits may
 * be lost at a power loss; the process keeps running). Called from the loop, never from
 * inside this call. Returns a handle for group_cancel_durable, valid until cb runs.
 */
typedef void (*group_durable_cb)(void *arg, int status);
struct group_durable_wait;
struct group_durable_wait *group_wait_durable(struct group_mgr *m, group_durable_cb cb, void *arg);
/* cb will not be called (the handle is freed by the manager). */
void group_cancel_durable(struct group_durable_wait *w);

/*
 * OffsetFetch of the n partitions in v (topic, partition in; offset, leader_epoch, metadata,
 * error out; metadata points into the manager, see above). An unknown group or partition gives
 * offset -1. Returns NONE or INVALID_GROUP_ID (group_id NULL).
 */
int16_t group_fetch_offsets(struct group_mgr *m, const char *group_id, struct group_offset *v,
                            size_t n);
/* OffsetFetch of every committed partition of the group: visit is called once per partition,
 * ordered by topic then partition (o valid during the call). Returns NONE or INVALID_GROUP_ID.
 * visit must not call group_* functions. */
int16_t group_fetch_all_offsets(struct group_mgr *m, const char *group_id,
                                void (*visit)(void *arg, const struct group_offset *o), void *arg);
/* The committed offset of one partition, or -1 (for consumer lag). */
int64_t group_committed(struct group_mgr *m, const char *group_id, const char *topic,
                        int32_t partition);
/* Drops every group's in-memory offsets for a deleted topic. The stored ones go with
 * catalog_del_topic(), which the caller runs first. */
void group_forget_topic(struct group_mgr *m, const char *topic);

/* ---- administration -------------------------------------------------------------------------- */

struct group_member_desc {
    const char *member_id, *group_instance_id, *client_id, *client_host;
    const uint8_t *metadata; /* Stable groups only (else NULL, 0) */
    size_t metadata_len;
    const uint8_t *assignment; /* Stable groups only (else NULL, 0) */
    size_t assignment_len;
};

struct group_desc {
    int16_t error;                     /* NONE or INVALID_GROUP_ID */
    const char *state;                 /* "Empty", "PreparingRebalance", "CompletingRebalance",
                                          "Stable", or "Dead" for an unknown group (DescribeGroups v6+
                                          maps that to GROUP_ID_NOT_FOUND) */
    const char *protocol_type;         /* "" if none */
    const char *protocol_name;         /* Stable groups only, else "" */
    struct group_member_desc *members; /* join order; owned by the desc */
    size_t n_members;
};

/* DescribeGroups of one group into *out (strings point into the manager, see above; the
 * members array is the desc's: free it with group_desc_fini). */
void group_describe(struct group_mgr *m, const char *group_id, struct group_desc *out);
void group_desc_fini(struct group_desc *d);

/* ListGroups: visit(arg, group_id, protocol_type ("" if none), state) per group, in no
 * particular order. visit must not call group_* functions. */
void group_list(struct group_mgr *m,
                void (*visit)(void *arg, const char *group_id, const char *protocol_type,
                              const char *state),
                void *arg);

/*
 * DeleteGroups of one group: NONE (the group and its committed offsets are gone, from the
 * catalog before this returns), INVALID_GROUP_ID (NULL), GROUP_ID_NOT_FOUND, NON_EMPTY_GROUP
 * (members are active: only Empty groups can be deleted), or COORDINATOR_NOT_AVAILABLE (the
 * catalog delete failed; nothing changed).
 */
int16_t group_delete(struct group_mgr *m, const char *group_id);

#endif
