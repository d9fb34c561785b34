/*
 * kafka_group.c - the consumer-group APIs on broker/group.h: JoinGroup, SyncGroup, Heartbeat,
 * LeaveGroup, OffsetCommit, OffsetFetch, DescribeGroups, ListGroups, DeleteGroups.
 *
 * Join and sync may answer later (when the rebalance completes): their callbacks encode the
 * response into the request's slot at once, while the coordinator's result is valid. A closed
 * connection cancels its callbacks (group_conn_closed in kafka_server.c) before its slots go.
 */
#include <stdlib.h>
#include <string.h>

#include "base/tern.h"
#include "broker/group.h"
#include "proto/kafka/kafka_int.h"

static struct kafka_str s_of(const char *s)
{
    return kafka_str_c(s ? s : "");
}

static struct kafka_str bytes_of(const uint8_t *p, size_t n)
{
    return (struct kafka_str){p ? p : (const uint8_t *)"", (int32_t)n};
}

/* ---- JoinGroup, SyncGroup ----------------------------------------------------------------- */

static void on_join(void *arg, const struct group_join_result *g)
{
    struct kafka_slot *s = arg;
    s->pending = NULL;
    struct kafka_join_group_response_member *ms = NULL;
    if (g->n_members)
        ms = tern_xcalloc(g->n_members, sizeof(*ms));
    for (size_t i = 0; i < g->n_members; i++)
        ms[i] = (struct kafka_join_group_response_member){
            s_of(g->members[i].member_id), KAFKA_STR_NULL,
            bytes_of(g->members[i].metadata, g->members[i].metadata_len)};
    struct kafka_join_group_response resp = {
        .error_code = g->error,
        .generation_id = g->generation,
        .protocol_name = s_of(g->protocol_name),
        .leader = s_of(g->leader_id),
        .member_id = s_of(g->member_id),
        .members = {(int32_t)g->n_members, ms},
    };
    kafka_reply(s, &resp);
    free(ms);
}

static void join_group(struct kafka_req *r, const struct kafka_join_group_request *m)
{
    int32_t np = m->protocols.n > 0 ? m->protocols.n : 0;
    struct group_protocol *ps = kafka_alloc(r, (size_t)np, sizeof(*ps));
    for (int32_t i = 0; i < np; i++)
        ps[i] = (struct group_protocol){
            kafka_cstr(r, m->protocols.v[i].name), m->protocols.v[i].metadata.p,
            (size_t)(m->protocols.v[i].metadata.len > 0 ? m->protocols.v[i].metadata.len : 0)};
    struct group_join_req req = {
        .group_id = kafka_cstr(r, m->group_id),
        .member_id = kafka_cstr(r, m->member_id),
        .group_instance_id =
            m->group_instance_id.len >= 0 ? kafka_cstr(r, m->group_instance_id) : NULL,
        .client_id = r->c->client_id,
        .client_host = net_conn_peer(r->c->nc),
        .session_timeout_ms = m->session_timeout_ms,
        .rebalance_timeout_ms = m->rebalance_timeout_ms,
        .protocol_type = kafka_cstr(r, m->protocol_type),
        .protocols = ps,
        .n_protocols = (size_t)np,
        .require_known_member = r->version >= 4,
    };
    r->slot->pending = r->slot; /* answered by on_join; cancelled by group_conn_closed */
    group_join(r->c->srv->groups, &req, r->c, on_join, r->slot);
}

static void on_sync(void *arg, const struct group_sync_result *g)
{
    struct kafka_slot *s = arg;
    s->pending = NULL;
    struct kafka_sync_group_response resp = {
        .error_code = g->error,
        .assignment = bytes_of(g->assignment, g->assignment_len),
    };
    kafka_reply(s, &resp);
}

static void sync_group(struct kafka_req *r, const struct kafka_sync_group_request *m)
{
    int32_t na = m->assignments.n > 0 ? m->assignments.n : 0;
    struct group_assignment *as = kafka_alloc(r, (size_t)na, sizeof(*as));
    for (int32_t i = 0; i < na; i++)
        as[i] = (struct group_assignment){
            kafka_cstr(r, m->assignments.v[i].member_id), m->assignments.v[i].assignment.p,
            (size_t)(m->assignments.v[i].assignment.len > 0 ? m->assignments.v[i].assignment.len
                                                            : 0)};
    struct group_sync_req req = {
        .group_id = kafka_cstr(r, m->group_id),
        .generation = m->generation_id,
        .member_id = kafka_cstr(r, m->member_id),
        .group_instance_id =
            m->group_instance_id.len >= 0 ? kafka_cstr(r, m->group_instance_id) : NULL,
        .assignments = as,
        .n_assignments = (size_t)na,
    };
    r->slot->pending = r->slot;
    group_sync(r->c->srv->groups, &req, r->c, on_sync, r->slot);
}

/* ---- Heartbeat, LeaveGroup ----------------------------------------------------------------- */

static void heartbeat(struct kafka_req *r, const struct kafka_heartbeat_request *m)
{
    struct kafka_heartbeat_response resp = {
        .error_code = group_heartbeat(
            r->c->srv->groups, kafka_cstr(r, m->group_id), m->generation_id,
            kafka_cstr(r, m->member_id),
            m->group_instance_id.len >= 0 ? kafka_cstr(r, m->group_instance_id) : NULL),
    };
    kafka_reply(r->slot, &resp);
}

static void leave_group(struct kafka_req *r, const struct kafka_leave_group_request *m)
{
    bool list = r->version >= 3;
    size_t n = list ? (size_t)(m->members.n > 0 ? m->members.n : 0) : 1;
    const char **ids = kafka_alloc(r, n ? n : 1, sizeof(*ids));
    int16_t *errs = kafka_alloc(r, n ? n : 1, sizeof(*errs));
    for (size_t i = 0; i < n; i++)
        ids[i] = kafka_cstr(r, list ? m->members.v[i].member_id : m->member_id);
    struct kafka_leave_group_response resp = {0};
    resp.error_code = group_leave(r->c->srv->groups, kafka_cstr(r, m->group_id), ids, n, errs);
    if (!list) {
        if (resp.error_code == 0 && n == 1)
            resp.error_code = errs[0];
    } else if (resp.error_code == 0) {
        struct kafka_leave_group_response_member *ms = kafka_alloc(r, n, sizeof(*ms));
        for (size_t i = 0; i < n; i++)
            ms[i] = (struct kafka_leave_group_response_member){
                m->members.v[i].member_id, m->members.v[i].group_instance_id, errs[i]};
        resp.members.n = (int32_t)n;
        resp.members.v = ms;
    }
    kafka_reply(r->slot, &resp);
}

/* ---- OffsetCommit, OffsetFetch ------------------------------------------------------------- */

/* The commit's offsets are on disk (or their fsync failed): the encoded answer goes out, or,
 * as for acks=all produce, the connection closes without one so the client retries. */
static void on_commit_durable(void *arg, int status)
{
    struct kafka_slot *s = arg;
    s->pending = NULL;
    if (status < 0) {
        s->noreply = true;
        kafka_conn_close(s->c, "offsets fsync failed");
    }
    kafka_ready(s);
}

static void commit_cancel(struct kafka_slot *s)
{
    group_cancel_durable(s->pending);
    s->pending = NULL;
}

static void offset_commit(struct kafka_req *r, const struct kafka_offset_commit_request *m)
{
    size_t total = 0;
    int32_t nt = m->topics.n > 0 ? m->topics.n : 0;
    for (int32_t i = 0; i < nt; i++)
        total += m->topics.v[i].partitions.n > 0 ? (size_t)m->topics.v[i].partitions.n : 0;
    struct group_offset *v = kafka_alloc(r, total ? total : 1, sizeof(*v));
    size_t k = 0;
    for (int32_t i = 0; i < nt; i++) {
        const char *topic = kafka_cstr(r, m->topics.v[i].name);
        for (int32_t j = 0; j < m->topics.v[i].partitions.n; j++) {
            const struct kafka_offset_commit_request_partition *p = &m->topics.v[i].partitions.v[j];
            v[k++] = (struct group_offset){
                .topic = topic,
                .partition = p->partition_index,
                .offset = p->committed_offset,
                .leader_epoch = p->committed_leader_epoch,
                .metadata =
                    p->committed_metadata.len >= 0 ? kafka_cstr(r, p->committed_metadata) : NULL,
            };
        }
    }
    group_commit(r->c->srv->groups, kafka_cstr(r, m->group_id), m->generation_id,
                 kafka_cstr(r, m->member_id),
                 m->group_instance_id.len >= 0 ? kafka_cstr(r, m->group_instance_id) : NULL, v,
                 total);
    struct kafka_offset_commit_response_topic *ts = kafka_alloc(r, (size_t)nt, sizeof(*ts));
    k = 0;
    for (int32_t i = 0; i < nt; i++) {
        int32_t np = m->topics.v[i].partitions.n > 0 ? m->topics.v[i].partitions.n : 0;
        struct kafka_offset_commit_response_partition *ps = kafka_alloc(r, (size_t)np, sizeof(*ps));
        for (int32_t j = 0; j < np; j++, k++)
            ps[j] = (struct kafka_offset_commit_response_partition){
                m->topics.v[i].partitions.v[j].partition_index, v[k].error};
        ts[i] = (struct kafka_offset_commit_response_topic){m->topics.v[i].name, {np, ps}};
    }
    struct kafka_offset_commit_response resp = {.topics = {nt, ts}};
    bool stored = false;
    for (size_t i = 0; i < total; i++)
        stored = stored || v[i].error == GROUP_ERR_NONE;
    if (!stored) {
        kafka_reply(r->slot, &resp);
        return;
    }
    /* answered once the offsets are on disk, as acks=all produce is */
    if (kafka_encode(r->slot, &resp) < 0)
        return; /* the slot is done and the connection closing */
    r->slot->pending = group_wait_durable(r->c->srv->groups, on_commit_durable, r->slot);
    r->slot->cancel = commit_cancel;
}

/* Every committed partition of a group, grouped by topic (they come ordered by topic): the
 * topics, and all their partitions in one array in the same order, both grown by doubling and
 * copied into the response once complete. */
struct fetch_all {
    struct kafka_req *r;
    struct kafka_offset_fetch_response_topic *ts;
    int32_t nt, cap;
    struct kafka_offset_fetch_response_partition *ps;
    int32_t np, pcap;
};

static void visit_offset(void *arg, const struct group_offset *o)
{
    struct fetch_all *fa = arg;
    struct kafka_offset_fetch_response_topic *t = fa->nt ? &fa->ts[fa->nt - 1] : NULL;
    if (!t || (size_t)t->name.len != strlen(o->topic) ||
        memcmp(t->name.p, o->topic, (size_t)t->name.len) != 0) {
        if (fa->nt == fa->cap) {
            fa->cap = fa->cap ? fa->cap * 2 : 8;
            fa->ts = tern_xrealloc(fa->ts, (size_t)fa->cap * sizeof(*fa->ts));
        }
        t = &fa->ts[fa->nt++];
        *t = (struct kafka_offset_fetch_response_topic){.name = kafka_str_dup(fa->r, o->topic)};
    }
    if (fa->np == fa->pcap) {
        fa->pcap = fa->pcap ? fa->pcap * 2 : 64;
        fa->ps = tern_xrealloc(fa->ps, (size_t)fa->pcap * sizeof(*fa->ps));
    }
    fa->ps[fa->np++] = (struct kafka_offset_fetch_response_partition){
        .partition_index = o->partition,
        .committed_offset = o->offset,
        .committed_leader_epoch = o->leader_epoch,
        .metadata = kafka_str_dup(fa->r, o->metadata),
        .error_code = o->error,
    };
    t->partitions.n++;
}

static void offset_fetch(struct kafka_req *r, const struct kafka_offset_fetch_request *m)
{
    struct group_mgr *gm = r->c->srv->groups;
    const char *group = kafka_cstr(r, m->group_id);
    struct kafka_offset_fetch_response resp = {0};
    if (m->topics.n < 0) {
        struct fetch_all fa = {.r = r};
        resp.error_code = group_fetch_all_offsets(gm, group, visit_offset, &fa);
        struct kafka_offset_fetch_response_topic *ts = kafka_alloc(r, (size_t)fa.nt, sizeof(*ts));
        struct kafka_offset_fetch_response_partition *ps =
            kafka_alloc(r, (size_t)fa.np, sizeof(*ps));
        if (fa.np)
            memcpy(ps, fa.ps, (size_t)fa.np * sizeof(*ps));
        for (int32_t i = 0, at = 0; i < fa.nt; i++) {
            ts[i] = fa.ts[i];
            ts[i].partitions.v = ps + at;
            at += ts[i].partitions.n;
        }
        free(fa.ts);
        free(fa.ps);
        resp.topics.n = fa.nt;
        resp.topics.v = ts;
        kafka_reply(r->slot, &resp);
        return;
    }
    int32_t nt = m->topics.n;
    struct kafka_offset_fetch_response_topic *ts = kafka_alloc(r, (size_t)nt, sizeof(*ts));
    for (int32_t i = 0; i < nt; i++) {
        const struct kafka_offset_fetch_request_topic *t = &m->topics.v[i];
        int32_t np = t->partition_indexes.n > 0 ? t->partition_indexes.n : 0;
        struct group_offset *v = kafka_alloc(r, (size_t)(np ? np : 1), sizeof(*v));
        const char *topic = kafka_cstr(r, t->name);
        for (int32_t j = 0; j < np; j++)
            v[j] = (struct group_offset){.topic = topic, .partition = t->partition_indexes.v[j]};
        int16_t gerr = group_fetch_offsets(gm, group, v, (size_t)np);
        if (gerr)
            resp.error_code = gerr;
        struct kafka_offset_fetch_response_partition *ps = kafka_alloc(r, (size_t)np, sizeof(*ps));
        for (int32_t j = 0; j < np; j++)
            ps[j] = (struct kafka_offset_fetch_response_partition){
                .partition_index = v[j].partition,
                .committed_offset = v[j].offset,
                .committed_leader_epoch = v[j].leader_epoch,
                .metadata = kafka_str_dup(r, v[j].metadata),
                .error_code = v[j].error,
            };
        ts[i] = (struct kafka_offset_fetch_response_topic){t->name, {np, ps}};
    }
    resp.topics.n = nt;
    resp.topics.v = ts;
    kafka_reply(r->slot, &resp);
}

/* ---- DescribeGroups, ListGroups, DeleteGroups ---------------------------------------------- */

static void describe_one(struct kafka_req *r, struct kafka_str id,
                         struct kafka_describe_groups_response_group *out)
{
    struct group_desc d;
    group_describe(r->c->srv->groups, kafka_cstr(r, id), &d);
    struct kafka_describe_groups_response_member *ms = kafka_alloc(r, d.n_members, sizeof(*ms));
    for (size_t i = 0; i < d.n_members; i++) {
        const struct group_member_desc *md = &d.members[i];
        ms[i] = (struct kafka_describe_groups_response_member){
            .member_id = kafka_str_dup(r, md->member_id),
            .group_instance_id = KAFKA_STR_NULL,
            .client_id = kafka_str_dup(r, md->client_id),
            .client_host = kafka_str_dup(r, md->client_host),
            .member_metadata = bytes_of(md->metadata, md->metadata_len),
            .member_assignment = bytes_of(md->assignment, md->assignment_len),
        };
        /* the bytes point into the manager: copy them while they are valid */
        if (md->metadata_len) {
            uint8_t *p = kafka_alloc(r, md->metadata_len, 1);
            memcpy(p, md->metadata, md->metadata_len);
            ms[i].member_metadata.p = p;
        }
        if (md->assignment_len) {
            uint8_t *p = kafka_alloc(r, md->assignment_len, 1);
            memcpy(p, md->assignment, md->assignment_len);
            ms[i].member_assignment.p = p;
        }
    }
    *out = (struct kafka_describe_groups_response_group){
        .error_code = d.error,
        .group_id = id,
        .group_state = kafka_str_dup(r, d.state),
        .protocol_type = kafka_str_dup(r, d.protocol_type),
        .protocol_data = kafka_str_dup(r, d.protocol_name),
        .members = {(int32_t)d.n_members, ms},
        .authorized_operations = INT32_MIN,
    };
    group_desc_fini(&d);
}

static void describe_groups(struct kafka_req *r, const struct kafka_describe_groups_request *m)
{
    int32_t n = m->groups.n > 0 ? m->groups.n : 0;
    struct kafka_describe_groups_response_group *gs = kafka_alloc(r, (size_t)n, sizeof(*gs));
    for (int32_t i = 0; i < n; i++)
        describe_one(r, m->groups.v[i], &gs[i]);
    struct kafka_describe_groups_response resp = {.groups = {n, gs}};
    kafka_reply(r->slot, &resp);
}

struct list_ctx {
    struct kafka_req *r;
    struct kafka_list_groups_response_group *v;
    int32_t n, cap;
};

static void visit_group(void *arg, const char *id, const char *type, const char *state)
{
    struct list_ctx *x = arg;
    (void)state;
    if (x->n == x->cap) {
        x->cap = x->cap ? x->cap * 2 : 16;
        x->v = tern_xrealloc(x->v, (size_t)x->cap * sizeof(*x->v));
    }
    x->v[x->n++] = (struct kafka_list_groups_response_group){kafka_str_dup(x->r, id),
                                                             kafka_str_dup(x->r, type)};
}

static void list_groups(struct kafka_req *r)
{
    struct list_ctx x = {.r = r};
    group_list(r->c->srv->groups, visit_group, &x);
    struct kafka_list_groups_response resp = {.groups = {x.n, x.v}};
    kafka_reply(r->slot, &resp);
    free(x.v);
}

static void delete_groups(struct kafka_req *r, const struct kafka_delete_groups_request *m)
{
    int32_t n = m->groups_names.n > 0 ? m->groups_names.n : 0;
    struct kafka_delete_groups_response_result *rs = kafka_alloc(r, (size_t)n, sizeof(*rs));
    for (int32_t i = 0; i < n; i++)
        rs[i] = (struct kafka_delete_groups_response_result){
            m->groups_names.v[i],
            group_delete(r->c->srv->groups, kafka_cstr(r, m->groups_names.v[i]))};
    struct kafka_delete_groups_response resp = {.results = {n, rs}};
    kafka_reply(r->slot, &resp);
}

bool kafka_handle_group(struct kafka_req *r, const void *request)
{
    switch (r->api) {
    case KAFKA_API_JOIN_GROUP:
        join_group(r, request);
        return true;
    case KAFKA_API_SYNC_GROUP:
        sync_group(r, request);
        return true;
    case KAFKA_API_HEARTBEAT:
        heartbeat(r, request);
        return true;
    case KAFKA_API_LEAVE_GROUP:
        leave_group(r, request);
        return true;
    case KAFKA_API_OFFSET_COMMIT:
        offset_commit(r, request);
        return true;
    case KAFKA_API_OFFSET_FETCH:
        offset_fetch(r, request);
        return true;
    case KAFKA_API_DESCRIBE_GROUPS:
        describe_groups(r, request);
        return true;
    case KAFKA_API_LIST_GROUPS:
        list_groups(r);
        return true;
    case KAFKA_API_DELETE_GROUPS:
        delete_groups(r, request);
        return true;
    default:
        return false;
    }
}
