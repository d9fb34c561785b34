/*
 * group_offset.c - committed offsets of the group coordinator (OffsetCommit, OffsetFetch, the
 * topic-deletion hook) and group deletion; the rest is in group.c, shared structures in
 * group_int.h.
 *
 * A group's offsets live in a map keyed by topic '\0' partition (4 bytes, big-endian) and in
 * the catalog's group_offsets table; memory changes only after the catalog write returned 0,
 * so the two are always equal, and group_mgr_new reloads them.
 *
 * Durability: the catalog write does not fsync (catalog_put_offsets_unsynced); one job on the
 * thread pool at a time fdatasyncs the catalog's WAL for every waiter registered before it
 * started (group_wait_durable), and the next job takes those who came during it: a group
 * commit of offset commits, off the loop.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/clock.h"
#include "base/strmap.h"
#include "base/tern.h"
#include "base/tlog.h"
#include "broker/catalog.h"
#include "broker/group.h"
#include "broker/group_int.h"
#include "os/file.h"

static void goff_free(struct group_off *o)
{
    free(o->topic);
    free(o->metadata);
    free(o);
}

/* The map key of (topic, partition): topic, '\0', partition big-endian. Uses buf when it fits
 * (cap bytes), else allocates; the caller frees the result when it is not buf. */
static char *offset_key(const char *topic, int32_t partition, char *buf, size_t cap, size_t *len)
{
    size_t tl = strlen(topic);
    char *k = tl + 5 <= cap ? buf : tern_xmalloc(tl + 5);
    memcpy(k, topic, tl + 1);
    uint32_t p = (uint32_t)partition;
    k[tl + 1] = (char)(p >> 24);
    k[tl + 2] = (char)(p >> 16);
    k[tl + 3] = (char)(p >> 8);
    k[tl + 4] = (char)p;
    *len = tl + 5;
    return k;
}

static struct group_off *offset_find(const struct group *g, const char *topic, int32_t partition)
{
    char buf[256];
    size_t len;
    char *k = offset_key(topic, partition, buf, sizeof(buf), &len);
    struct group_off *o = strmap_get(&g->offsets, k, len);
    if (k != buf)
        free(k);
    return o;
}

static void offset_set(struct group *g, const struct catalog_offset *c)
{
    char buf[256];
    size_t len;
    char *k = offset_key(c->topic, c->partition, buf, sizeof(buf), &len);
    struct group_off *o = strmap_get(&g->offsets, k, len);
    if (o == NULL) {
        o = tern_xcalloc(1, sizeof(*o));
        o->topic = tern_xstrdup(c->topic);
        o->partition = c->partition;
        strmap_put(&g->offsets, k, len, o);
    }
    if (k != buf)
        free(k);
    free(o->metadata);
    o->metadata = c->metadata ? tern_xstrdup(c->metadata) : NULL;
    o->offset = c->offset;
    o->leader_epoch = c->leader_epoch;
}

/* Kafka's validateOffsetCommit for the classic protocol; *memp gets the committing member. */
static int16_t commit_check(struct group *g, int32_t generation, const char *member_id,
                            const char *instance_id, struct group_member **memp)
{
    *memp = NULL;
    if (generation < 0 && g->state == GROUP_ST_EMPTY)
        return GROUP_ERR_NONE; /* a client outside group management */
    if (generation < 0 && group_nz(member_id)[0] == '\0' && instance_id == NULL)
        return GROUP_ERR_UNKNOWN_MEMBER_ID; /* only members commit to an active group */
    struct group_member *mem = instance_id ? NULL : group_member_find(g, group_nz(member_id));
    if (mem == NULL)
        return GROUP_ERR_UNKNOWN_MEMBER_ID;
    if (generation != g->generation)
        return GROUP_ERR_ILLEGAL_GENERATION;
    if (g->state == GROUP_ST_COMPLETING)
        return GROUP_ERR_REBALANCE_IN_PROGRESS;
    *memp = mem;
    return GROUP_ERR_NONE;
}

/* Per-partition checks, then one catalog transaction for the accepted partitions. */
static int commit_store(struct group *g, struct group_offset *v, size_t n)
{
    struct group_mgr *m = g->m;
    struct catalog_offset *rows = tern_xcalloc(n ? n : 1, sizeof(*rows));
    size_t k = 0;
    int64_t now = clock_wall_ms();
    for (size_t i = 0; i < n; i++) {
        const char *meta = group_nz(v[i].metadata);
        if (v[i].topic == NULL || v[i].partition < 0)
            v[i].error = GROUP_ERR_UNKNOWN_TOPIC_OR_PARTITION;
        else if (strlen(meta) > m->cfg.max_metadata_bytes)
            v[i].error = GROUP_ERR_OFFSET_METADATA_TOO_LARGE;
        else if (m->cfg.partition_exists &&
                 !m->cfg.partition_exists(m->cfg.partition_exists_arg, v[i].topic, v[i].partition))
            v[i].error = GROUP_ERR_UNKNOWN_TOPIC_OR_PARTITION;
        else {
            v[i].error = GROUP_ERR_NONE;
            rows[k++] = (struct catalog_offset){
                g->id, v[i].topic, v[i].partition, v[i].offset, v[i].leader_epoch, meta, now};
        }
    }
    int rc = catalog_put_offsets_unsynced(m->cat, rows, k); /* fsynced by group_wait_durable */
    if (rc) {
        TLOG_ERRNO("group", rc, "event=commit_failed group=%s partitions=%zu msg=\"%s\"", g->id, k,
                   catalog_errmsg(m->cat));
        for (size_t i = 0; i < n; i++)
            if (v[i].error == GROUP_ERR_NONE)
                v[i].error = GROUP_ERR_COORDINATOR_NOT_AVAILABLE;
    } else {
        for (size_t i = 0; i < k; i++)
            offset_set(g, &rows[i]);
    }
    free(rows);
    return rc;
}

int group_commit(struct group_mgr *m, const char *group_id, int32_t generation,
                 const char *member_id, const char *group_instance_id, struct group_offset *v,
                 size_t n)
{
    int16_t err = GROUP_ERR_NONE;
    int rc = 0;
    struct group *g = NULL;
    struct group_member *mem = NULL;
    group_api_enter(m);
    if (group_id == NULL) {
        err = GROUP_ERR_INVALID_GROUP_ID;
    } else if ((g = group_find(m, group_id)) == NULL && generation >= 0) {
        err = GROUP_ERR_ILLEGAL_GENERATION; /* an old generation of a group now gone */
    } else {
        if (g == NULL)
            g = group_create(m, group_id);
        err = commit_check(g, generation, member_id, group_instance_id, &mem);
    }
    if (err) {
        for (size_t i = 0; i < n; i++)
            v[i].error = err;
    } else {
        if (mem)
            group_member_touch(mem);
        rc = commit_store(g, v, n);
    }
    if (g)
        group_touch(g);
    group_api_exit(m);
    return rc;
}

int16_t group_fetch_offsets(struct group_mgr *m, const char *group_id, struct group_offset *v,
                            size_t n)
{
    if (group_id == NULL)
        return GROUP_ERR_INVALID_GROUP_ID;
    struct group *g = group_find(m, group_id);
    for (size_t i = 0; i < n; i++) {
        const struct group_off *o =
            g && v[i].topic ? offset_find(g, v[i].topic, v[i].partition) : NULL;
        v[i].offset = o ? o->offset : -1;
        v[i].leader_epoch = o ? o->leader_epoch : -1;
        v[i].metadata = o ? group_nz(o->metadata) : "";
        v[i].error = GROUP_ERR_NONE;
    }
    return GROUP_ERR_NONE;
}

static int goff_cmp(const void *a, const void *b)
{
    const struct group_off *x = *(const struct group_off *const *)a,
                           *y = *(const struct group_off *const *)b;
    int c = strcmp(x->topic, y->topic);
    return c ? c : (x->partition > y->partition) - (x->partition < y->partition);
}

int16_t group_fetch_all_offsets(struct group_mgr *m, const char *group_id,
                                void (*visit)(void *arg, const struct group_offset *o), void *arg)
{
    if (group_id == NULL)
        return GROUP_ERR_INVALID_GROUP_ID;
    struct group *g = group_find(m, group_id);
    if (g == NULL || g->offsets.n == 0)
        return GROUP_ERR_NONE;
    struct group_off **all = tern_xcalloc(g->offsets.n, sizeof(*all));
    size_t it = 0, n = 0;
    const char *k;
    void *val;
    while (strmap_next(&g->offsets, &it, &k, &val))
        all[n++] = val;
    qsort(all, n, sizeof(*all), goff_cmp);
    for (size_t i = 0; i < n; i++) {
        struct group_offset o = {all[i]->topic,        all[i]->partition,          all[i]->offset,
                                 all[i]->leader_epoch, group_nz(all[i]->metadata), GROUP_ERR_NONE};
        visit(arg, &o);
    }
    free(all);
    return GROUP_ERR_NONE;
}

int64_t group_committed(struct group_mgr *m, const char *group_id, const char *topic,
                        int32_t partition)
{
    struct group *g = group_id && topic ? group_find(m, group_id) : NULL;
    const struct group_off *o = g ? offset_find(g, topic, partition) : NULL;
    return o ? o->offset : -1;
}

static void forget_topic_in(struct group *g, const char *topic)
{
    size_t it = 0, n = 0;
    const char *k;
    void *v;
    struct group_off **gone = NULL;
    while (strmap_next(&g->offsets, &it, &k, &v))
        if (strcmp(((struct group_off *)v)->topic, topic) == 0) {
            gone = tern_xrealloc(gone, (n + 1) * sizeof(*gone));
            gone[n++] = v;
        }
    for (size_t i = 0; i < n; i++) {
        char buf[256];
        size_t len;
        char *key = offset_key(gone[i]->topic, gone[i]->partition, buf, sizeof(buf), &len);
        strmap_del(&g->offsets, key, len);
        if (key != buf)
            free(key);
        goff_free(gone[i]);
    }
    free(gone);
    if (n)
        group_touch(g);
}

void group_forget_topic(struct group_mgr *m, const char *topic)
{
    group_api_enter(m);
    size_t it = 0;
    const char *k;
    void *v;
    while (strmap_next(&m->groups, &it, &k, &v))
        forget_topic_in(v, topic);
    group_api_exit(m);
}

/* ---- deletion and loading ------------------------------------------------------------------- */

int16_t group_delete(struct group_mgr *m, const char *group_id)
{
    if (group_id == NULL)
        return GROUP_ERR_INVALID_GROUP_ID;
    group_api_enter(m);
    struct group *g = group_find(m, group_id);
    int16_t err = GROUP_ERR_NONE;
    if (g == NULL) {
        err = GROUP_ERR_GROUP_ID_NOT_FOUND;
    } else if (g->state != GROUP_ST_EMPTY) {
        err = GROUP_ERR_NON_EMPTY_GROUP;
    } else if (g->offsets.n && catalog_del_group(m->cat, g->id) != 0) {
        TLOG_ERROR("group", "event=delete_failed group=%s msg=\"%s\"", g->id,
                   catalog_errmsg(m->cat));
        err = GROUP_ERR_COORDINATOR_NOT_AVAILABLE;
    } else {
        strmap_del(&m->groups, g->id, strlen(g->id));
        g->state = GROUP_ST_DEAD;
        group_touch(g);
        TLOG_INFO("group", "event=group_deleted group=%s", group_id);
    }
    group_api_exit(m);
    return err;
}

static int load_offset(void *arg, const struct catalog_offset *o)
{
    struct group_mgr *m = arg;
    struct group *g = group_find(m, o->group);
    if (g == NULL)
        g = group_create(m, o->group);
    offset_set(g, o);
    return 0;
}

int group_offsets_load(struct group_mgr *m)
{
    struct catalog_loader l = {.offset = load_offset};
    return catalog_load(m->cat, &l, m);
}

void group_offsets_free(struct group *g)
{
    size_t it = 0;
    const char *k;
    void *v;
    while (strmap_next(&g->offsets, &it, &k, &v))
        goff_free(v);
    strmap_fini(&g->offsets);
}

/* ---- durability of commits ----------------------------------------------------------------- */

struct group_durable_wait {
    struct group_durable_wait *next;
    group_durable_cb cb;
    void *arg;
    bool cancelled;
};

struct group_fsync {
    uv_work_t req;
    struct group_mgr *m; /* NULL once the manager is freed: the job in flight frees this */
    int fd;              /* the catalog's WAL (catalog_wal_open), or a negative error */
    int rc;              /* the job's result */
    bool running;
    struct group_durable_wait *covered;                 /* by the job in flight */
    struct group_durable_wait *waiting, **waiting_tail; /* for the next job */
};

static void waits_free(struct group_durable_wait *w)
{
    while (w) {
        struct group_durable_wait *n = w->next;
        free(w);
        w = n;
    }
}

static void sync_free(struct group_fsync *s)
{
    if (s->fd >= 0)
        file_close(s->fd);
    waits_free(s->covered);
    waits_free(s->waiting);
    free(s);
}

static void sync_work(uv_work_t *req)
{
    struct group_fsync *s = req->data;
    s->rc = s->fd >= 0 ? file_datasync(s->fd) : s->fd;
}

static void sync_start(struct group_fsync *s);

static void sync_done(uv_work_t *req, int status)
{
    struct group_fsync *s = req->data;
    s->running = false;
    if (s->m == NULL) {
        sync_free(s);
        return;
    }
    int rc = status < 0 ? status : s->rc;
    if (rc < 0)
        TLOG_ERRNO("group", rc, "event=offsets_fsync_failed");
    struct group_durable_wait *w = s->covered;
    s->covered = NULL;
    if (s->waiting)
        sync_start(s); /* before the callbacks, which may wait again */
    while (w) {
        struct group_durable_wait *n = w->next;
        if (!w->cancelled)
            w->cb(w->arg, rc);
        free(w);
        w = n;
    }
}

static void sync_start(struct group_fsync *s)
{
    if (s->fd < 0)
        s->fd = catalog_wal_open(s->m->cat); /* the WAL exists once a commit wrote it */
    s->covered = s->waiting;
    s->waiting = NULL;
    s->waiting_tail = &s->waiting;
    s->running = true;
    s->req.data = s;
    int rc = uv_queue_work(s->m->loop, &s->req, sync_work, sync_done);
    TERN_ASSERT(rc == 0); /* only fails for a NULL callback */
}

struct group_durable_wait *group_wait_durable(struct group_mgr *m, group_durable_cb cb, void *arg)
{
    struct group_fsync *s = m->fsync;
    if (s == NULL) {
        s = m->fsync = tern_xcalloc(1, sizeof(*s));
        s->m = m;
        s->fd = -ENOENT;
        s->waiting_tail = &s->waiting;
    }
    struct group_durable_wait *w = tern_xcalloc(1, sizeof(*w));
    w->cb = cb;
    w->arg = arg;
    *s->waiting_tail = w;
    s->waiting_tail = &w->next;
    if (!s->running)
        sync_start(s);
    return w;
}

void group_cancel_durable(struct group_durable_wait *w)
{
    w->cancelled = true;
}

void group_fsync_release(struct group_mgr *m)
{
    struct group_fsync *s = m->fsync;
    m->fsync = NULL;
    if (s == NULL)
        return;
    if (s->running)
        s->m = NULL;
    else
        sync_free(s);
}
