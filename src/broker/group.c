/*
 * group.c - the consumer-group coordinator (model and rules in group.h).
 *
 * This file: membership, rebalancing, deadlines, callbacks, describe and list;
 * group_offset.c has committed offsets and group deletion; group_int.h the shared structures.
 *
 * State: a map of groups by id. A group holds its members in join order (an array: groups are
 * small and order decides the leader), the member-id-required ("pending") members, and its
 * committed offsets (a map keyed by topic '\0' partition, mirrored in the catalog).
 *
 * Time: every deadline (a member's session, a pending member's session, a group's join and
 * sync deadlines) is a struct group_dl in one min-heap ordered by due time, served by one uv timer,
 * so members and groups are freed synchronously (no per-object handle to close).
 *
 * Callbacks: a join or sync that must wait stores a waiter (owner, callback, arg) in its
 * member; waiters are linked in one list so that group_conn_closed finds an owner's waiters
 * without scanning every group. Answering a waiter deep-copies the result into a note queued
 * on the manager; notes are delivered, in order, when the outermost group_* call (or the timer
 * callback) finishes, so no callback runs while a function up the stack holds a member or
 * group pointer, and a callback may call back into the manager. After the notes, groups that
 * were touched are freed if they are deleted, or Empty with no offsets and no pending member.
 *
 * Invariants:
 *   - g->n_awaiting counts members with awaiting_join; it is non-zero only in PreparingRebalance;
 *   - every member has its deadline armed: the new-member join timeout until its first join
 *     completes, then its session timeout (re-armed by heartbeats, syncs and commits);
 *   - a member's waiter has cb != NULL exactly while its answer is owed;
 *   - in-memory offsets equal the catalog's: a commit updates memory only after
 *     catalog_put_offsets_unsynced returned 0 (durability follows: group_wait_durable).
 */
#include "broker/group.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/clock.h"
#include "base/strmap.h"
#include "base/tern.h"
#include "base/tlog.h"
#include "broker/catalog.h"
#include "broker/group_int.h"

static const char *const state_names[] = {
    [GROUP_ST_EMPTY] = "Empty",
    [GROUP_ST_PREPARING] = "PreparingRebalance",
    [GROUP_ST_COMPLETING] = "CompletingRebalance",
    [GROUP_ST_STABLE] = "Stable",
    [GROUP_ST_DEAD] = "Dead",
};

void group_config_default(struct group_config *cfg)
{
    *cfg = (struct group_config){
        .initial_rebalance_delay_ms = 3000,
        .min_session_timeout_ms = 6000,
        .max_session_timeout_ms = 1800000,
        .new_member_join_timeout_ms = 300000,
        .max_metadata_bytes = 4096,
    };
}

static char *dup_bytes(const uint8_t *p, size_t n)
{
    if (n == 0)
        return NULL;
    char *q = tern_xmalloc(n);
    memcpy(q, p, n);
    return q;
}

/* ---- deadlines ------------------------------------------------------------------------------ */

static void heap_set(struct group_mgr *m, size_t i, struct group_dl *d)
{
    m->heap[i] = d;
    d->idx = i;
}

static void heap_up(struct group_mgr *m, size_t i)
{
    struct group_dl *d = m->heap[i];
    while (i > 0 && d->at < m->heap[(i - 1) / 2]->at) {
        heap_set(m, i, m->heap[(i - 1) / 2]);
        i = (i - 1) / 2;
    }
    heap_set(m, i, d);
}

static void heap_down(struct group_mgr *m, size_t i)
{
    struct group_dl *d = m->heap[i];
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= m->heap_n)
            break;
        if (c + 1 < m->heap_n && m->heap[c + 1]->at < m->heap[c]->at)
            c++;
        if (m->heap[c]->at >= d->at)
            break;
        heap_set(m, i, m->heap[c]);
        i = c;
    }
    heap_set(m, i, d);
}

static void dl_cancel(struct group_mgr *m, struct group_dl *d)
{
    if (d->idx == GROUP_DL_IDLE)
        return;
    size_t i = d->idx;
    struct group_dl *last = m->heap[--m->heap_n];
    d->idx = GROUP_DL_IDLE;
    if (last == d)
        return;
    heap_set(m, i, last);
    heap_up(m, i);
    heap_down(m, last->idx);
}

/* (Re)arms d to fire in delay_ms (at least 1 ms, so that a handler re-arming cannot spin). */
static void dl_arm(struct group_mgr *m, struct group_dl *d, uint64_t delay_ms)
{
    dl_cancel(m, d);
    d->at = uv_now(m->loop) + (delay_ms ? delay_ms : 1);
    if (m->heap_n == m->heap_cap) {
        m->heap_cap = m->heap_cap ? 2 * m->heap_cap : 16;
        m->heap = tern_xrealloc(m->heap, m->heap_cap * sizeof(*m->heap));
    }
    heap_set(m, m->heap_n++, d);
    heap_up(m, m->heap_n - 1);
}

static void on_timer(uv_timer_t *t);

static void arm_timer(struct group_mgr *m)
{
    if (m->heap_n == 0) {
        uv_timer_stop(&m->timer);
        return;
    }
    uint64_t now = uv_now(m->loop), at = m->heap[0]->at;
    uv_timer_start(&m->timer, on_timer, at > now ? at - now : 0, 0);
}

/* ---- waiters and notes ---------------------------------------------------------------------- */

static void waiter_unlink(struct group_waiter *w)
{
    if (w->prev) {
        w->prev->next = w->next;
        w->next->prev = w->prev;
        w->prev = w->next = NULL;
    }
}

/* Makes *dst owe the answer described by src (an unlinked waiter on the caller's stack). */
static void waiter_set(struct group_mgr *m, struct group_waiter *dst,
                       const struct group_waiter *src)
{
    waiter_unlink(dst);
    dst->owner = src->owner;
    dst->is_join = src->is_join;
    dst->cb = src->cb;
    dst->arg = src->arg;
    dst->prev = &m->waiters;
    dst->next = m->waiters.next;
    m->waiters.next->prev = dst;
    m->waiters.next = dst;
}

/* Takes w's owed answer into a new note (NULL when nothing is owed). */
static struct group_note *note_take(struct group_waiter *w)
{
    if (w->cb.join == NULL)
        return NULL;
    struct group_note *n = tern_xcalloc(1, sizeof(*n));
    n->w.owner = w->owner;
    n->w.is_join = w->is_join;
    n->w.cb = w->cb;
    n->w.arg = w->arg;
    waiter_unlink(w);
    w->cb.join = NULL;
    return n;
}

static void note_queue(struct group_mgr *m, struct group_note *n)
{
    *m->notes_tail = n;
    m->notes_tail = &n->next;
}

static void note_free(struct group_note *n)
{
    free(n->protocol_type);
    free(n->protocol_name);
    free(n->leader_id);
    free(n->member_id);
    for (size_t i = 0; i < n->n_members; i++) {
        free((char *)n->members[i].member_id);
        free((uint8_t *)n->members[i].metadata);
    }
    free(n->members);
    free(n->bytes);
    free(n);
}

/* Answers w (if owed) with a copy of r. */
static void answer_join(struct group_mgr *m, struct group_waiter *w,
                        const struct group_join_result *r)
{
    struct group_note *n = note_take(w);
    if (n == NULL)
        return;
    n->error = r->error;
    n->generation = r->generation;
    n->protocol_type = r->protocol_type ? tern_xstrdup(r->protocol_type) : NULL;
    n->protocol_name = r->protocol_name ? tern_xstrdup(r->protocol_name) : NULL;
    n->leader_id = tern_xstrdup(group_nz(r->leader_id));
    n->member_id = tern_xstrdup(group_nz(r->member_id));
    n->n_members = r->n_members;
    n->members = r->n_members ? tern_xcalloc(r->n_members, sizeof(*n->members)) : NULL;
    for (size_t i = 0; i < r->n_members; i++) {
        n->members[i].member_id = tern_xstrdup(r->members[i].member_id);
        n->members[i].metadata =
            (uint8_t *)dup_bytes(r->members[i].metadata, r->members[i].metadata_len);
        n->members[i].metadata_len = r->members[i].metadata_len;
    }
    note_queue(m, n);
}

static void answer_sync(struct group_mgr *m, struct group_waiter *w,
                        const struct group_sync_result *r)
{
    struct group_note *n = note_take(w);
    if (n == NULL)
        return;
    n->error = r->error;
    n->protocol_type = r->protocol_type ? tern_xstrdup(r->protocol_type) : NULL;
    n->protocol_name = r->protocol_name ? tern_xstrdup(r->protocol_name) : NULL;
    n->bytes = (uint8_t *)dup_bytes(r->assignment, r->assignment_len);
    n->len = r->assignment_len;
    note_queue(m, n);
}

static void join_error(struct group_mgr *m, struct group_waiter *w, const char *member_id,
                       int16_t err)
{
    struct group_join_result r = {.error = err, .generation = -1, .member_id = member_id};
    answer_join(m, w, &r);
}

static void sync_error(struct group_mgr *m, struct group_waiter *w, int16_t err)
{
    struct group_sync_result r = {.error = err};
    answer_sync(m, w, &r);
}

static void note_deliver(const struct group_note *n)
{
    if (n->w.is_join) {
        struct group_join_result r = {
            .error = n->error,
            .generation = n->generation,
            .protocol_type = n->protocol_type,
            .protocol_name = n->protocol_name,
            .leader_id = n->leader_id,
            .member_id = n->member_id,
            .members = n->members,
            .n_members = n->n_members,
        };
        n->w.cb.join(n->w.arg, &r);
    } else {
        struct group_sync_result r = {
            .error = n->error,
            .protocol_type = n->protocol_type,
            .protocol_name = n->protocol_name,
            .assignment = n->bytes ? n->bytes : (const uint8_t *)"",
            .assignment_len = n->len,
        };
        n->w.cb.sync(n->w.arg, &r);
    }
}

/* ---- groups: lookup, creation, removal ------------------------------------------------------ */

struct group *group_find(struct group_mgr *m, const char *id)
{
    return strmap_get(&m->groups, id, strlen(id));
}

struct group *group_create(struct group_mgr *m, const char *id)
{
    struct group *g = tern_xcalloc(1, sizeof(*g));
    g->m = m;
    g->id = tern_xstrdup(id);
    g->state = GROUP_ST_EMPTY;
    g->join_dl = (struct group_dl){.idx = GROUP_DL_IDLE, .kind = GROUP_DL_JOIN};
    g->sync_dl = (struct group_dl){.idx = GROUP_DL_IDLE, .kind = GROUP_DL_SYNC};
    strmap_init(&g->offsets);
    strmap_put(&m->groups, g->id, strlen(g->id), g);
    return g;
}

/* Puts g on the list checked when the outermost call finishes. */
void group_touch(struct group *g)
{
    if (!g->on_gc) {
        g->on_gc = true;
        g->gc_next = g->m->gc;
        g->m->gc = g;
    }
}

static void member_free(struct group_member *mem)
{
    for (size_t i = 0; i < mem->n_protos; i++) {
        free(mem->protos[i].name);
        free(mem->protos[i].meta);
    }
    free(mem->protos);
    free(mem->assignment);
    free(mem->id);
    free(mem->client_id);
    free(mem->client_host);
    free(mem);
}

static void pending_free(struct group_mgr *m, struct group_pending *p)
{
    dl_cancel(m, &p->dl);
    free(p->id);
    free(p);
}

/* Frees g and everything it holds without answering anyone (the caller did, or is shutting
 * down). g must no longer be in the map. */
static void group_free(struct group *g)
{
    struct group_mgr *m = g->m;
    for (size_t i = 0; i < g->n_members; i++) {
        waiter_unlink(&g->members[i]->join_w);
        waiter_unlink(&g->members[i]->sync_w);
        dl_cancel(m, &g->members[i]->dl);
        member_free(g->members[i]);
    }
    for (size_t i = 0; i < g->n_pending; i++)
        pending_free(m, g->pending[i]);
    dl_cancel(m, &g->join_dl);
    dl_cancel(m, &g->sync_dl);
    group_offsets_free(g);
    free(g->members);
    free(g->pending);
    free(g->protocol_type);
    free(g->protocol_name);
    free(g->id);
    free(g);
}

static bool group_idle(const struct group *g)
{
    return g->state == GROUP_ST_EMPTY && g->n_members == 0 && g->n_pending == 0 &&
           g->offsets.n == 0;
}

/* Frees the touched groups that are deleted or idle. */
static void gc_run(struct group_mgr *m)
{
    while (m->gc) {
        struct group *g = m->gc;
        m->gc = g->gc_next;
        g->on_gc = false;
        if (g->state != GROUP_ST_DEAD && !group_idle(g))
            continue;
        if (g->state != GROUP_ST_DEAD)
            strmap_del(&m->groups, g->id, strlen(g->id));
        group_free(g);
    }
}

void group_api_enter(struct group_mgr *m)
{
    /* deadlines count from now, not from the start of this loop iteration, which may have
     * been long ago (a catalog fsync, many requests): else sessions would expire early */
    if (m->depth++ == 0)
        uv_update_time(m->loop);
}

/* Ends a group_* call; the outermost one delivers the notes, frees idle groups and re-arms
 * the timer. A call made by a callback during delivery leaves that to the delivery loop. */
void group_api_exit(struct group_mgr *m)
{
    if (--m->depth > 0 || m->flushing)
        return;
    m->flushing = true;
    while (m->notes) {
        struct group_note *n = m->notes;
        m->notes = n->next;
        if (m->notes == NULL)
            m->notes_tail = &m->notes;
        note_deliver(n);
        note_free(n);
    }
    gc_run(m);
    m->flushing = false;
    arm_timer(m);
}

/* ---- members -------------------------------------------------------------------------------- */

struct group_member *group_member_find(const struct group *g, const char *id)
{
    for (size_t i = 0; i < g->n_members; i++)
        if (strcmp(g->members[i]->id, id) == 0)
            return g->members[i];
    return NULL;
}

static struct group_pending *pending_find(const struct group *g, const char *id)
{
    for (size_t i = 0; i < g->n_pending; i++)
        if (strcmp(g->pending[i]->id, id) == 0)
            return g->pending[i];
    return NULL;
}

static const struct group_proto *member_proto(const struct group_member *mem, const char *name)
{
    for (size_t i = 0; i < mem->n_protos; i++)
        if (strcmp(mem->protos[i].name, name) == 0)
            return &mem->protos[i];
    return NULL;
}

static void member_set_protocols(struct group_member *mem, const struct group_join_req *req)
{
    for (size_t i = 0; i < mem->n_protos; i++) {
        free(mem->protos[i].name);
        free(mem->protos[i].meta);
    }
    free(mem->protos);
    mem->n_protos = req->n_protocols;
    mem->protos = tern_xcalloc(req->n_protocols ? req->n_protocols : 1, sizeof(*mem->protos));
    for (size_t i = 0; i < req->n_protocols; i++) {
        const struct group_protocol *p = &req->protocols[i];
        mem->protos[i].name = tern_xstrdup(group_nz(p->name));
        mem->protos[i].meta = (uint8_t *)dup_bytes(p->metadata, p->metadata_len);
        mem->protos[i].len = p->metadata_len;
    }
    mem->session_timeout_ms = req->session_timeout_ms;
    mem->rebalance_timeout_ms =
        req->rebalance_timeout_ms > 0 ? req->rebalance_timeout_ms : req->session_timeout_ms;
}

/* Whether the member's protocols are exactly req's (names, metadata and order). */
static bool member_matches(const struct group_member *mem, const struct group_join_req *req)
{
    if (mem->n_protos != req->n_protocols)
        return false;
    for (size_t i = 0; i < req->n_protocols; i++) {
        const struct group_protocol *p = &req->protocols[i];
        const struct group_proto *q = &mem->protos[i];
        if (strcmp(q->name, group_nz(p->name)) != 0 || q->len != p->metadata_len ||
            (q->len && memcmp(q->meta, p->metadata, q->len) != 0))
            return false;
    }
    return true;
}

/* Re-arms mem's session (a new member keeps its join deadline). */
void group_member_touch(struct group_member *mem)
{
    if (!mem->is_new)
        dl_arm(mem->g->m, &mem->dl, (uint64_t)mem->session_timeout_ms);
}

/*
 * Removes mem from g and frees it: owed answers get err (the join one with member id ""),
 * the leader passes to the first member that has rejoined, else the first member.
 */
static void member_drop(struct group *g, struct group_member *mem, int16_t err)
{
    struct group_mgr *m = g->m;
    join_error(m, &mem->join_w, "", err);
    sync_error(m, &mem->sync_w, err);
    size_t i = 0;
    while (g->members[i] != mem)
        i++;
    memmove(&g->members[i], &g->members[i + 1], (g->n_members - i - 1) * sizeof(*g->members));
    g->n_members--;
    if (mem->awaiting_join)
        g->n_awaiting--;
    if (g->leader == mem) {
        g->leader = g->n_members ? g->members[0] : NULL;
        for (i = 0; i < g->n_members; i++)
            if (g->members[i]->awaiting_join) {
                g->leader = g->members[i];
                break;
            }
    }
    dl_cancel(m, &mem->dl);
    TLOG_DEBUG("group", "event=member_removed group=%s member=%s", g->id, mem->id);
    member_free(mem);
}

static void pending_remove(struct group *g, struct group_pending *p)
{
    size_t i = 0;
    while (g->pending[i] != p)
        i++;
    g->pending[i] = g->pending[--g->n_pending];
    pending_free(g->m, p);
}

/* A new member id: "<client_id>-<random UUID>", as Kafka names them. */
static char *new_member_id(const char *client_id)
{
    uint8_t r[16];
    tern_random(r, sizeof(r));
    r[6] = (uint8_t)((r[6] & 0x0f) | 0x40);
    r[8] = (uint8_t)((r[8] & 0x3f) | 0x80);
    size_t n = strlen(group_nz(client_id)) + 38;
    char *id = tern_xmalloc(n);
    snprintf(id, n, "%s-%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
             group_nz(client_id), r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8], r[9], r[10],
             r[11], r[12], r[13], r[14], r[15]);
    return id;
}

/* ---- rebalancing ---------------------------------------------------------------------------- */

static int32_t max_rebalance_timeout(const struct group *g)
{
    int32_t t = 0;
    for (size_t i = 0; i < g->n_members; i++)
        if (g->members[i]->rebalance_timeout_ms > t)
            t = g->members[i]->rebalance_timeout_ms;
    return t;
}

/* Whether every member other than self supports protocol name. */
static bool all_support(const struct group *g, const char *name, const struct group_member *self)
{
    for (size_t i = 0; i < g->n_members; i++)
        if (g->members[i] != self && !member_proto(g->members[i], name))
            return false;
    return true;
}

/*
 * Kafka's supportsProtocols: a group without members takes any non-empty type and protocol
 * list; else the type must match and one of the protocols must be supported by every other
 * member (self, a rejoining member, does not count with its old protocols).
 */
static bool supports_protocols(const struct group *g, const struct group_join_req *req,
                               const struct group_member *self)
{
    const char *type = group_nz(req->protocol_type);
    if (g->n_members == 0)
        return *type && req->n_protocols > 0;
    if (strcmp(group_nz(g->protocol_type), type) != 0)
        return false;
    for (size_t i = 0; i < req->n_protocols; i++)
        if (all_support(g, group_nz(req->protocols[i].name), self))
            return true;
    return false;
}

static bool in_names(const char *const *names, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(names[i], name) == 0)
            return true;
    return false;
}

/* Kafka's selectProtocol: among the protocols every member supports, each member votes for
 * its most preferred; the most votes wins (ties: the leader's order). */
static const char *select_protocol(const struct group *g)
{
    const struct group_member *lead = g->leader;
    const char **cands = tern_xcalloc(lead->n_protos + 1, sizeof(*cands));
    size_t *votes = tern_xcalloc(lead->n_protos + 1, sizeof(*votes));
    size_t nc = 0;
    for (size_t i = 0; i < lead->n_protos; i++)
        if (all_support(g, lead->protos[i].name, NULL))
            cands[nc++] = lead->protos[i].name;
    for (size_t i = 0; i < g->n_members; i++) {
        const struct group_member *mem = g->members[i];
        for (size_t j = 0; j < mem->n_protos; j++)
            if (in_names(cands, nc, mem->protos[j].name)) {
                for (size_t c = 0; c < nc; c++)
                    votes[c] += strcmp(cands[c], mem->protos[j].name) == 0;
                break;
            }
    }
    size_t best = 0;
    for (size_t c = 1; c < nc; c++)
        if (votes[c] > votes[best])
            best = c;
    /* joins are checked for a common protocol, so nc > 0; the leader's first is a fallback */
    const char *name = nc ? cands[best] : lead->n_protos ? lead->protos[0].name : "";
    free(cands);
    free(votes);
    return name;
}

static void clear_assignments(struct group *g)
{
    for (size_t i = 0; i < g->n_members; i++) {
        free(g->members[i]->assignment);
        g->members[i]->assignment = NULL;
        g->members[i]->assignment_len = 0;
    }
}

static void try_complete_join(struct group *g);

/* Starts a rebalance: owed syncs get REBALANCE_IN_PROGRESS, the join deadline is armed. */
static void prepare_rebalance(struct group *g, const char *reason)
{
    struct group_mgr *m = g->m;
    if (g->state == GROUP_ST_COMPLETING) {
        for (size_t i = 0; i < g->n_members; i++) {
            sync_error(m, &g->members[i]->sync_w, GROUP_ERR_REBALANCE_IN_PROGRESS);
            group_member_touch(g->members[i]);
        }
        clear_assignments(g);
    }
    dl_cancel(m, &g->sync_dl);
    for (size_t i = 0; i < g->n_members; i++)
        g->members[i]->pending_sync = false;
    g->rebalance_timeout_ms = max_rebalance_timeout(g);
    uint32_t delay = m->cfg.initial_rebalance_delay_ms;
    g->initial_delay = g->state == GROUP_ST_EMPTY && delay > 0;
    g->new_member_added = false;
    if (g->initial_delay) {
        uint32_t rt = (uint32_t)g->rebalance_timeout_ms;
        g->initial_remaining_ms = rt > delay ? rt - delay : 0;
        dl_arm(m, &g->join_dl, delay);
    } else {
        dl_arm(m, &g->join_dl, (uint64_t)g->rebalance_timeout_ms);
    }
    TLOG_INFO("group", "event=rebalance_start group=%s generation=%d from=%s members=%zu reason=%s",
              g->id, g->generation, state_names[g->state], g->n_members, reason);
    g->state = GROUP_ST_PREPARING;
    try_complete_join(g);
}

static void maybe_prepare_rebalance(struct group *g, const char *reason)
{
    if (g->state == GROUP_ST_EMPTY || g->state == GROUP_ST_STABLE ||
        g->state == GROUP_ST_COMPLETING)
        prepare_rebalance(g, reason);
}

/* The member list the leader gets (pointers into the members; copied when answered). */
static struct group_member_meta *member_metas(const struct group *g)
{
    struct group_member_meta *v = tern_xcalloc(g->n_members, sizeof(*v));
    for (size_t i = 0; i < g->n_members; i++) {
        const struct group_proto *p = member_proto(g->members[i], g->protocol_name);
        v[i].member_id = g->members[i]->id;
        v[i].metadata = p ? p->meta : NULL;
        v[i].metadata_len = p ? p->len : 0;
    }
    return v;
}

/* Answers w with the current generation (the member list when leader is set). */
static void answer_generation(struct group *g, struct group_waiter *w,
                              const struct group_member *mem, bool leader)
{
    struct group_member_meta *metas = leader ? member_metas(g) : NULL;
    struct group_join_result r = {
        .generation = g->generation,
        .protocol_type = group_nz(g->protocol_type),
        .protocol_name = group_nz(g->protocol_name),
        .leader_id = g->leader ? g->leader->id : "",
        .member_id = mem->id,
        .members = metas,
        .n_members = leader ? g->n_members : 0,
    };
    answer_join(g->m, w, &r);
    free(metas);
}

/* Ends PreparingRebalance: drops members that did not rejoin, starts the next generation and
 * answers every joined member. */
static void complete_join(struct group *g)
{
    struct group_mgr *m = g->m;
    dl_cancel(m, &g->join_dl);
    g->initial_delay = false;
    for (size_t i = g->n_members; i-- > 0;)
        if (!g->members[i]->awaiting_join)
            member_drop(g, g->members[i], GROUP_ERR_UNKNOWN_MEMBER_ID);
    g->generation++;
    free(g->protocol_name);
    g->protocol_name = NULL;
    group_touch(g);
    if (g->n_members == 0) {
        g->state = GROUP_ST_EMPTY;
        TLOG_INFO("group", "event=group_empty group=%s generation=%d", g->id, g->generation);
        return;
    }
    g->protocol_name = tern_xstrdup(select_protocol(g));
    g->state = GROUP_ST_COMPLETING;
    for (size_t i = 0; i < g->n_members; i++) {
        struct group_member *mem = g->members[i];
        answer_generation(g, &mem->join_w, mem, mem == g->leader);
        mem->awaiting_join = mem->is_new = false;
        mem->id_known = mem->pending_sync = true;
        group_member_touch(mem);
    }
    g->n_awaiting = 0;
    g->rebalance_timeout_ms = max_rebalance_timeout(g);
    dl_arm(m, &g->sync_dl, (uint64_t)g->rebalance_timeout_ms);
    TLOG_INFO("group",
              "event=rebalance_done group=%s generation=%d protocol=%s members=%zu leader=%s",
              g->id, g->generation, g->protocol_name, g->n_members, g->leader->id);
}

static void try_complete_join(struct group *g)
{
    if (g->state == GROUP_ST_PREPARING && !g->initial_delay && g->n_awaiting == g->n_members &&
        g->n_pending == 0)
        complete_join(g);
}

/* After a member left or expired: rebalance, or see whether the rebalance can complete. */
static void remove_member_and_update(struct group *g, struct group_member *mem, const char *reason)
{
    member_drop(g, mem, GROUP_ERR_UNKNOWN_MEMBER_ID);
    if (g->state == GROUP_ST_STABLE || g->state == GROUP_ST_COMPLETING)
        maybe_prepare_rebalance(g, reason);
    else if (g->state == GROUP_ST_PREPARING)
        try_complete_join(g);
    group_touch(g);
}

/* ---- deadlines firing ----------------------------------------------------------------------- */

static void member_expired(struct group_member *mem)
{
    struct group *g = mem->g;
    if (!mem->is_new && (mem->awaiting_join || mem->sync_w.cb.sync)) {
        group_member_touch(mem); /* waiting in a rebalance counts as alive */
        return;
    }
    TLOG_INFO("group", "event=session_expired group=%s member=%s new=%d", g->id, mem->id,
              (int)mem->is_new);
    remove_member_and_update(g, mem, "session_expired");
}

static void pending_expired(struct group_pending *p)
{
    struct group *g = p->g;
    pending_remove(g, p);
    try_complete_join(g);
    group_touch(g);
}

static void join_expired(struct group *g)
{
    struct group_mgr *m = g->m;
    if (g->initial_delay && g->new_member_added && g->initial_remaining_ms > 0) {
        uint32_t d = m->cfg.initial_rebalance_delay_ms;
        if (d > g->initial_remaining_ms)
            d = g->initial_remaining_ms;
        g->initial_remaining_ms -= d;
        g->new_member_added = false;
        dl_arm(m, &g->join_dl, d);
        return;
    }
    complete_join(g);
}

/* Members that did not sync within the rebalance timeout are dropped; the group rebalances. */
static void sync_expired(struct group *g)
{
    bool dropped = false;
    for (size_t i = g->n_members; i-- > 0;)
        if (g->members[i]->pending_sync) {
            TLOG_INFO("group", "event=sync_expired group=%s member=%s", g->id, g->members[i]->id);
            member_drop(g, g->members[i], GROUP_ERR_UNKNOWN_MEMBER_ID);
            dropped = true;
        }
    if (dropped)
        prepare_rebalance(g, "sync_expired");
    group_touch(g);
}

static void dl_fire(struct group_dl *d)
{
    switch (d->kind) {
    case GROUP_DL_MEMBER:
        member_expired(TERN_CONTAINER_OF(d, struct group_member, dl));
        break;
    case GROUP_DL_PENDING:
        pending_expired(TERN_CONTAINER_OF(d, struct group_pending, dl));
        break;
    case GROUP_DL_JOIN:
        join_expired(TERN_CONTAINER_OF(d, struct group, join_dl));
        break;
    case GROUP_DL_SYNC:
        sync_expired(TERN_CONTAINER_OF(d, struct group, sync_dl));
        break;
    }
}

static void on_timer(uv_timer_t *t)
{
    struct group_mgr *m = t->data;
    uint64_t now = uv_now(m->loop);
    group_api_enter(m);
    while (m->heap_n && m->heap[0]->at <= now) {
        struct group_dl *d = m->heap[0];
        dl_cancel(m, d);
        dl_fire(d);
    }
    group_api_exit(m);
}

/* ---- join ----------------------------------------------------------------------------------- */

static void add_member(struct group *g, char *id, const struct group_join_req *req,
                       const struct group_waiter *w, bool id_known)
{
    struct group_mgr *m = g->m;
    struct group_member *mem = tern_xcalloc(1, sizeof(*mem));
    mem->g = g;
    mem->id = id;
    mem->client_id = tern_xstrdup(group_nz(req->client_id));
    mem->client_host = tern_xstrdup(group_nz(req->client_host));
    mem->dl = (struct group_dl){.idx = GROUP_DL_IDLE, .kind = GROUP_DL_MEMBER};
    member_set_protocols(mem, req);
    mem->is_new = mem->awaiting_join = true;
    mem->id_known = id_known;
    if (g->n_members == 0) {
        free(g->protocol_type);
        g->protocol_type = tern_xstrdup(group_nz(req->protocol_type));
    }
    if (g->n_members == g->members_cap) {
        g->members_cap = g->members_cap ? 2 * g->members_cap : 4;
        g->members = tern_xrealloc(g->members, g->members_cap * sizeof(*g->members));
    }
    g->members[g->n_members++] = mem;
    g->n_awaiting++;
    if (g->leader == NULL)
        g->leader = mem;
    waiter_set(m, &mem->join_w, w);
    if (g->state == GROUP_ST_PREPARING && g->initial_delay)
        g->new_member_added = true;
    dl_arm(m, &mem->dl, m->cfg.new_member_join_timeout_ms);
    TLOG_DEBUG("group", "event=member_added group=%s member=%s client=%s", g->id, mem->id,
               mem->client_id);
    maybe_prepare_rebalance(g, "member_added");
}

static void update_member(struct group *g, struct group_member *mem,
                          const struct group_join_req *req, const struct group_waiter *w,
                          const char *reason)
{
    member_set_protocols(mem, req);
    join_error(g->m, &mem->join_w, mem->id, GROUP_ERR_REBALANCE_IN_PROGRESS);
    waiter_set(g->m, &mem->join_w, w);
    if (!mem->awaiting_join) {
        mem->awaiting_join = true;
        g->n_awaiting++;
    }
    mem->id_known = true;
    maybe_prepare_rebalance(g, reason);
}

static void join_new_member(struct group *g, const struct group_join_req *req,
                            struct group_waiter *w)
{
    struct group_mgr *m = g->m;
    if (!supports_protocols(g, req, NULL)) {
        join_error(m, w, "", GROUP_ERR_INCONSISTENT_GROUP_PROTOCOL);
        return;
    }
    char *id = new_member_id(req->client_id);
    if (!req->require_known_member) {
        add_member(g, id, req, w, false);
        return;
    }
    struct group_pending *p = tern_xcalloc(1, sizeof(*p));
    p->g = g;
    p->id = id;
    p->dl = (struct group_dl){.idx = GROUP_DL_IDLE, .kind = GROUP_DL_PENDING};
    if (g->n_pending == g->pending_cap) {
        g->pending_cap = g->pending_cap ? 2 * g->pending_cap : 4;
        g->pending = tern_xrealloc(g->pending, g->pending_cap * sizeof(*g->pending));
    }
    g->pending[g->n_pending++] = p;
    dl_arm(m, &p->dl, (uint64_t)req->session_timeout_ms);
    join_error(m, w, id, GROUP_ERR_MEMBER_ID_REQUIRED);
}

static void join_known_member(struct group *g, const struct group_join_req *req,
                              struct group_waiter *w)
{
    struct group_mgr *m = g->m;
    struct group_member *mem = group_member_find(g, req->member_id);
    struct group_pending *p = mem ? NULL : pending_find(g, req->member_id);
    if (!supports_protocols(g, req, mem)) {
        join_error(m, w, req->member_id, GROUP_ERR_INCONSISTENT_GROUP_PROTOCOL);
    } else if (p) {
        pending_remove(g, p);
        add_member(g, tern_xstrdup(req->member_id), req, w, true);
    } else if (!mem || g->state == GROUP_ST_EMPTY) {
        join_error(m, w, req->member_id, GROUP_ERR_UNKNOWN_MEMBER_ID);
    } else if (g->state == GROUP_ST_PREPARING) {
        update_member(g, mem, req, w, "member_rejoined");
    } else if (!member_matches(mem, req)) {
        update_member(g, mem, req, w, "member_metadata_changed");
    } else if (g->state == GROUP_ST_STABLE && mem == g->leader) {
        update_member(g, mem, req, w, "leader_rejoined");
    } else {
        /* the same metadata again (a lost join response): the current generation */
        mem->id_known = true;
        answer_generation(g, w, mem, mem == g->leader);
    }
}

/* The request-level checks of a join; returns 0 or the error. */
static int16_t join_check(const struct group_mgr *m, const struct group_join_req *req)
{
    if (req->group_id == NULL || req->group_id[0] == '\0')
        return GROUP_ERR_INVALID_GROUP_ID;
    if (req->group_instance_id != NULL)
        return GROUP_ERR_UNSUPPORTED_VERSION;
    if (req->session_timeout_ms < 0 ||
        (uint32_t)req->session_timeout_ms < m->cfg.min_session_timeout_ms ||
        (uint32_t)req->session_timeout_ms > m->cfg.max_session_timeout_ms)
        return GROUP_ERR_INVALID_SESSION_TIMEOUT;
    return GROUP_ERR_NONE;
}

void group_join(struct group_mgr *m, const struct group_join_req *req, void *owner,
                group_join_cb cb, void *arg)
{
    TERN_ASSERT(cb != NULL);
    struct group_waiter w = {.owner = owner, .is_join = true, .cb.join = cb, .arg = arg};
    const char *member_id = group_nz(req->member_id);
    group_api_enter(m);
    int16_t err = join_check(m, req);
    struct group *g = err ? NULL : group_find(m, req->group_id);
    if (err) {
        join_error(m, &w, member_id, err);
    } else if (member_id[0] == '\0') {
        if (g == NULL)
            g = group_create(m, req->group_id);
        join_new_member(g, req, &w);
    } else if (g == NULL) {
        join_error(m, &w, member_id, GROUP_ERR_UNKNOWN_MEMBER_ID);
    } else {
        join_known_member(g, req, &w);
    }
    if (g) {
        try_complete_join(g);
        group_touch(g);
    }
    group_api_exit(m);
}

/* ---- sync, heartbeat, leave ----------------------------------------------------------------- */

/* Checks that (member_id, generation) is a current member of group_id; sets *gp and *memp. */
static int16_t member_check(struct group_mgr *m, const char *group_id, const char *member_id,
                            const char *instance_id, int32_t generation, struct group **gp,
                            struct group_member **memp)
{
    *gp = NULL;
    *memp = NULL;
    if (group_id == NULL || group_id[0] == '\0')
        return GROUP_ERR_INVALID_GROUP_ID;
    struct group *g = group_find(m, group_id);
    struct group_member *mem = g ? group_member_find(g, group_nz(member_id)) : NULL;
    *gp = g;
    if (mem == NULL || instance_id != NULL) /* no static members: any instance id is unknown */
        return GROUP_ERR_UNKNOWN_MEMBER_ID;
    *memp = mem;
    return generation == g->generation ? GROUP_ERR_NONE : GROUP_ERR_ILLEGAL_GENERATION;
}

static void finish_sync_deadline(struct group *g)
{
    for (size_t i = 0; i < g->n_members; i++)
        if (g->members[i]->pending_sync)
            return;
    dl_cancel(g->m, &g->sync_dl);
}

static void answer_assignment(struct group *g, struct group_member *mem, struct group_waiter *w)
{
    struct group_sync_result r = {
        .protocol_type = group_nz(g->protocol_type),
        .protocol_name = group_nz(g->protocol_name),
        .assignment = mem->assignment,
        .assignment_len = mem->assignment_len,
    };
    answer_sync(g->m, w, &r);
}

/* The leader's assignments: every member gets its bytes (the last entry naming it), or none. */
static void set_assignments(struct group *g, const struct group_sync_req *req)
{
    clear_assignments(g);
    for (size_t i = 0; i < req->n_assignments; i++) {
        const struct group_assignment *a = &req->assignments[i];
        struct group_member *mem = a->member_id ? group_member_find(g, a->member_id) : NULL;
        if (mem == NULL)
            continue;
        free(mem->assignment);
        mem->assignment = (uint8_t *)dup_bytes(a->data, a->len);
        mem->assignment_len = a->len;
    }
}

static void sync_completing(struct group *g, struct group_member *mem,
                            const struct group_sync_req *req, const struct group_waiter *w)
{
    struct group_mgr *m = g->m;
    sync_error(m, &mem->sync_w, GROUP_ERR_REBALANCE_IN_PROGRESS);
    waiter_set(m, &mem->sync_w, w);
    mem->pending_sync = false;
    finish_sync_deadline(g);
    if (mem != g->leader)
        return;
    set_assignments(g, req);
    g->state = GROUP_ST_STABLE;
    for (size_t i = 0; i < g->n_members; i++) {
        answer_assignment(g, g->members[i], &g->members[i]->sync_w);
        group_member_touch(g->members[i]);
    }
    TLOG_INFO("group", "event=stable group=%s generation=%d members=%zu", g->id, g->generation,
              g->n_members);
}

static int16_t sync_check(struct group_mgr *m, const struct group_sync_req *req, struct group **gp,
                          struct group_member **memp)
{
    int16_t err = member_check(m, req->group_id, req->member_id, req->group_instance_id,
                               req->generation, gp, memp);
    if (err)
        return err;
    const struct group *g = *gp;
    if ((req->protocol_type && strcmp(req->protocol_type, group_nz(g->protocol_type)) != 0) ||
        (req->protocol_name && strcmp(req->protocol_name, group_nz(g->protocol_name)) != 0))
        return GROUP_ERR_INCONSISTENT_GROUP_PROTOCOL;
    return GROUP_ERR_NONE;
}

void group_sync(struct group_mgr *m, const struct group_sync_req *req, void *owner,
                group_sync_cb cb, void *arg)
{
    TERN_ASSERT(cb != NULL);
    struct group_waiter w = {.owner = owner, .is_join = false, .cb.sync = cb, .arg = arg};
    struct group *g;
    struct group_member *mem;
    group_api_enter(m);
    int16_t err = sync_check(m, req, &g, &mem);
    if (err) {
        sync_error(m, &w, err);
    } else if (g->state == GROUP_ST_PREPARING) {
        sync_error(m, &w, GROUP_ERR_REBALANCE_IN_PROGRESS);
    } else if (g->state == GROUP_ST_COMPLETING) {
        sync_completing(g, mem, req, &w);
    } else if (g->state == GROUP_ST_STABLE) {
        mem->pending_sync = false;
        finish_sync_deadline(g);
        answer_assignment(g, mem, &w);
        group_member_touch(mem);
    } else {
        sync_error(m, &w, GROUP_ERR_UNKNOWN_MEMBER_ID);
    }
    if (g)
        group_touch(g);
    group_api_exit(m);
}

int16_t group_heartbeat(struct group_mgr *m, const char *group_id, int32_t generation,
                        const char *member_id, const char *group_instance_id)
{
    struct group *g;
    struct group_member *mem;
    group_api_enter(m);
    int16_t err = member_check(m, group_id, member_id, group_instance_id, generation, &g, &mem);
    if (err == GROUP_ERR_NONE) {
        group_member_touch(mem);
        if (g->state == GROUP_ST_PREPARING)
            err = GROUP_ERR_REBALANCE_IN_PROGRESS;
    }
    group_api_exit(m);
    return err;
}

int16_t group_leave(struct group_mgr *m, const char *group_id, const char *const *member_ids,
                    size_t n, int16_t *errors)
{
    if (group_id == NULL || group_id[0] == '\0')
        return GROUP_ERR_INVALID_GROUP_ID;
    group_api_enter(m);
    struct group *g = group_find(m, group_id);
    for (size_t i = 0; i < n; i++) {
        const char *id = group_nz(member_ids[i]);
        struct group_member *mem = g ? group_member_find(g, id) : NULL;
        struct group_pending *p = g && !mem ? pending_find(g, id) : NULL;
        errors[i] = mem || p ? GROUP_ERR_NONE : GROUP_ERR_UNKNOWN_MEMBER_ID;
        if (mem) {
            TLOG_INFO("group", "event=member_left group=%s member=%s", g->id, id);
            remove_member_and_update(g, mem, "member_left");
        } else if (p) {
            pending_remove(g, p);
            try_complete_join(g);
        }
    }
    if (g)
        group_touch(g);
    group_api_exit(m);
    return GROUP_ERR_NONE;
}

/* Removes members whose client never learnt their id: nothing can ever answer for them. */
static void drop_ghosts(struct group_member **ghosts, size_t n)
{
    struct group **groups = tern_xcalloc(n ? n : 1, sizeof(*groups));
    for (size_t i = 0; i < n; i++) {
        groups[i] = ghosts[i]->g;
        TLOG_DEBUG("group", "event=ghost_dropped group=%s member=%s", groups[i]->id, ghosts[i]->id);
        member_drop(groups[i], ghosts[i], GROUP_ERR_UNKNOWN_MEMBER_ID);
    }
    for (size_t i = 0; i < n; i++) {
        try_complete_join(groups[i]);
        group_touch(groups[i]);
    }
    free(groups);
}

void group_conn_closed(struct group_mgr *m, void *owner)
{
    if (owner == NULL)
        return;
    group_api_enter(m);
    m->notes_tail = &m->notes;
    for (struct group_note **pp = &m->notes; *pp;) {
        struct group_note *n = *pp;
        if (n->w.owner == owner) {
            *pp = n->next;
            note_free(n);
        } else {
            pp = &n->next;
            m->notes_tail = pp;
        }
    }
    struct group_member **ghosts = NULL;
    size_t n_ghosts = 0;
    for (struct group_waiter *w = m->waiters.next, *next; w != &m->waiters; w = next) {
        next = w->next;
        if (w->owner != owner)
            continue;
        waiter_unlink(w);
        w->cb.join = NULL;
        struct group_member *mem =
            w->is_join ? TERN_CONTAINER_OF(w, struct group_member, join_w) : NULL;
        if (mem && mem->is_new && !mem->id_known) {
            ghosts = tern_xrealloc(ghosts, (n_ghosts + 1) * sizeof(*ghosts));
            ghosts[n_ghosts++] = mem;
        }
    }
    drop_ghosts(ghosts, n_ghosts);
    free(ghosts);
    group_api_exit(m);
}

/* ---- administration ------------------------------------------------------------------------- */

void group_describe(struct group_mgr *m, const char *group_id, struct group_desc *out)
{
    *out = (struct group_desc){.state = "", .protocol_type = "", .protocol_name = ""};
    if (group_id == NULL) {
        out->error = GROUP_ERR_INVALID_GROUP_ID;
        return;
    }
    struct group *g = group_find(m, group_id);
    if (g == NULL) {
        out->state = state_names[GROUP_ST_DEAD];
        return;
    }
    bool stable = g->state == GROUP_ST_STABLE;
    out->state = state_names[g->state];
    out->protocol_type = group_nz(g->protocol_type);
    out->protocol_name = stable ? group_nz(g->protocol_name) : "";
    out->n_members = g->n_members;
    out->members = tern_xcalloc(g->n_members ? g->n_members : 1, sizeof(*out->members));
    for (size_t i = 0; i < g->n_members; i++) {
        const struct group_member *mem = g->members[i];
        const struct group_proto *p = stable ? member_proto(mem, g->protocol_name) : NULL;
        out->members[i] = (struct group_member_desc){
            .member_id = mem->id,
            .client_id = mem->client_id,
            .client_host = mem->client_host,
            .metadata = p ? p->meta : NULL,
            .metadata_len = p ? p->len : 0,
            .assignment = stable ? mem->assignment : NULL,
            .assignment_len = stable ? mem->assignment_len : 0,
        };
    }
}

void group_desc_fini(struct group_desc *d)
{
    free(d->members);
    d->members = NULL;
    d->n_members = 0;
}

void group_list(struct group_mgr *m,
                void (*visit)(void *arg, const char *group_id, const char *protocol_type,
                              const char *state),
                void *arg)
{
    size_t it = 0;
    const char *k;
    void *v;
    while (strmap_next(&m->groups, &it, &k, &v)) {
        const struct group *g = v;
        visit(arg, g->id, group_nz(g->protocol_type), state_names[g->state]);
    }
}

/* ---- lifetime ------------------------------------------------------------------------------- */

static void free_groups(struct group_mgr *m)
{
    size_t it = 0;
    const char *k;
    void *v;
    while (strmap_next(&m->groups, &it, &k, &v))
        group_free(v);
    strmap_fini(&m->groups);
}

struct group_mgr *group_mgr_new(uv_loop_t *loop, struct catalog *cat,
                                const struct group_config *cfg)
{
    struct group_mgr *m = tern_xcalloc(1, sizeof(*m));
    m->loop = loop;
    m->cat = cat;
    m->cfg = *cfg;
    strmap_init(&m->groups);
    m->waiters.prev = m->waiters.next = &m->waiters;
    m->notes_tail = &m->notes;
    int rc = group_offsets_load(m);
    if (rc != 0) {
        TLOG_ERRNO("group", rc, "event=load_failed msg=\"%s\"", catalog_errmsg(cat));
        free_groups(m);
        free(m);
        return NULL;
    }
    uv_timer_init(loop, &m->timer);
    m->timer.data = m;
    TLOG_INFO("group", "event=loaded groups=%zu", m->groups.n);
    return m;
}

static void on_timer_closed(uv_handle_t *h)
{
    free(h->data);
}

void group_mgr_free(struct group_mgr *m)
{
    if (m == NULL)
        return;
    TERN_ASSERT(m->depth == 0 && !m->flushing);
    group_fsync_release(m);
    free_groups(m);
    while (m->notes) {
        struct group_note *n = m->notes;
        m->notes = n->next;
        note_free(n);
    }
    free(m->heap);
    uv_timer_stop(&m->timer);
    uv_close((uv_handle_t *)&m->timer, on_timer_closed);
}
