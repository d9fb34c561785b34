/*
 * group_test.c - the consumer-group coordinator on a real uv loop and a real catalog in a
 * temporary directory: join/sync/heartbeat, rebalances on join, leave, session, rebalance and
 * sync timeouts, stale generations, the member-id-required flow, the initial rebalance delay,
 * followers waiting for the leader, protocol selection, offsets (commit, fetch, restart,
 * failures), delete and describe/list rules, and cancellation when a connection closes.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>

#include <cmocka.h>
#include <sqlite3.h>
#include <uv.h>

#include "base/tern.h"
#include "broker/catalog.h"
#include "broker/group.h"
#include "testutil.h"

/* ---- fixture -------------------------------------------------------------------------------- */

static struct {
    char *dir;
    char dbpath[4096];
    uv_loop_t loop;
    uv_timer_t guard;
    bool guard_fired;
    struct catalog *cat;
    struct group_config cfg;
    struct group_mgr *m;
} F;

/* The session and rebalance timeouts the test joins use. */
static int32_t session_ms = 10000, rebalance_ms = 10000;

static void mgr_open(void)
{
    char err[512] = "";
    if (catalog_open(F.dbpath, &F.cat, err, sizeof(err)) != 0)
        fail_msg("catalog_open: %s", err);
    F.m = group_mgr_new(&F.loop, F.cat, &F.cfg);
    assert_non_null(F.m);
}

static void mgr_close(void)
{
    group_mgr_free(F.m);
    F.m = NULL;
    uv_run(&F.loop, UV_RUN_NOWAIT); /* the timer's close callback */
    catalog_close(F.cat);
    F.cat = NULL;
}

/* Restarts the coordinator on the same catalog file, with F.cfg. */
static void mgr_reopen(void)
{
    mgr_close();
    mgr_open();
}

static int setup(void **state)
{
    (void)state;
    F.dir = tu_tmpdir();
    snprintf(F.dbpath, sizeof(F.dbpath), "%s/catalog.db", F.dir);
    assert_int_equal(uv_loop_init(&F.loop), 0);
    uv_timer_init(&F.loop, &F.guard);
    group_config_default(&F.cfg);
    F.cfg.initial_rebalance_delay_ms = 0;
    F.cfg.min_session_timeout_ms = 10;
    session_ms = rebalance_ms = 10000;
    mgr_open();
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    mgr_close();
    uv_close((uv_handle_t *)&F.guard, NULL);
    uv_run(&F.loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&F.loop), 0);
    tu_rmrf(F.dir);
    free(F.dir);
    return 0;
}

static void on_guard(uv_timer_t *t)
{
    (void)t;
    F.guard_fired = true;
}

/* Runs the loop until *count reaches target (count NULL: never) or max_ms pass. Returns
 * whether the target was reached. */
static bool run_until(const int *count, int target, uint64_t max_ms)
{
    F.guard_fired = false;
    uv_timer_start(&F.guard, on_guard, max_ms, 0);
    while (!F.guard_fired && !(count && *count >= target))
        uv_run(&F.loop, UV_RUN_ONCE);
    uv_timer_stop(&F.guard);
    return count && *count >= target;
}

static void run_ms(uint64_t ms)
{
    run_until(NULL, 0, ms);
}

/* ---- requests and recorded answers ---------------------------------------------------------- */

struct jres {
    int calls;
    int16_t error;
    int32_t gen;
    char member[128], leader[128], ptype[32], pname[32];
    size_t n_members;
    char members[8][128], meta[8][32];
};

struct sres {
    int calls;
    int16_t error;
    char assignment[64];
    size_t len;
    char ptype[32], pname[32];
};

static void copy_str(char *dst, size_t cap, const char *s)
{
    snprintf(dst, cap, "%s", s ? s : "(null)");
}

static void on_join(void *arg, const struct group_join_result *r)
{
    struct jres *j = arg;
    j->calls++;
    j->error = r->error;
    j->gen = r->generation;
    copy_str(j->member, sizeof(j->member), r->member_id);
    copy_str(j->leader, sizeof(j->leader), r->leader_id);
    copy_str(j->ptype, sizeof(j->ptype), r->protocol_type);
    copy_str(j->pname, sizeof(j->pname), r->protocol_name);
    j->n_members = r->n_members;
    for (size_t i = 0; i < r->n_members && i < 8; i++) {
        copy_str(j->members[i], sizeof(j->members[i]), r->members[i].member_id);
        snprintf(j->meta[i], sizeof(j->meta[i]), "%.*s", (int)r->members[i].metadata_len,
                 (const char *)r->members[i].metadata);
    }
}

static void on_sync(void *arg, const struct group_sync_result *r)
{
    struct sres *s = arg;
    s->calls++;
    s->error = r->error;
    s->len = r->assignment_len;
    snprintf(s->assignment, sizeof(s->assignment), "%.*s", (int)r->assignment_len,
             (const char *)r->assignment);
    copy_str(s->ptype, sizeof(s->ptype), r->protocol_type);
    copy_str(s->pname, sizeof(s->pname), r->protocol_name);
}

static const struct group_protocol RANGE[] = {{"range", (const uint8_t *)"sub-a", 5}};

static struct group_join_req req_for(const char *group, const char *member_id)
{
    return (struct group_join_req){
        .group_id = group,
        .member_id = member_id,
        .client_id = "cli",
        .client_host = "/127.0.0.1",
        .session_timeout_ms = session_ms,
        .rebalance_timeout_ms = rebalance_ms,
        .protocol_type = "consumer",
        .protocols = RANGE,
        .n_protocols = 1,
    };
}

static void join_req(struct jres *j, const struct group_join_req *req, void *owner)
{
    memset(j, 0, sizeof(*j));
    group_join(F.m, req, owner, on_join, j);
}

static void join_as(struct jres *j, const char *group, const char *member_id, void *owner)
{
    struct group_join_req req = req_for(group, member_id);
    join_req(j, &req, owner);
}

static void sync_as(struct sres *s, const char *group, int32_t gen, const char *member,
                    const struct group_assignment *a, size_t n, void *owner)
{
    struct group_sync_req req = {.group_id = group,
                                 .generation = gen,
                                 .member_id = member,
                                 .assignments = a,
                                 .n_assignments = n};
    memset(s, 0, sizeof(*s));
    group_sync(F.m, &req, owner, on_sync, s);
}

static const char *state_of(const char *group)
{
    static char buf[32];
    struct group_desc d;
    group_describe(F.m, group, &d);
    snprintf(buf, sizeof(buf), "%s", d.state);
    group_desc_fini(&d);
    return buf;
}

static size_t members_of(const char *group)
{
    struct group_desc d;
    group_describe(F.m, group, &d);
    size_t n = d.n_members;
    group_desc_fini(&d);
    return n;
}

/*
 * Forms a Stable group of n members (each new one joins, the others rejoin) and syncs it, the
 * leader last, with assignment "a-<i>" for member i. ids gets the member ids in join order.
 * Returns the generation.
 */
static int32_t form_group(const char *group, int n, char ids[][128])
{
    struct jres j[8];
    for (int i = 0; i < n; i++) {
        join_as(&j[i], group, "", NULL);
        for (int k = 0; k < i; k++)
            join_as(&j[k], group, ids[k], NULL);
        for (int k = 0; k <= i; k++) {
            assert_int_equal(j[k].calls, 1);
            assert_int_equal(j[k].error, GROUP_ERR_NONE);
        }
        snprintf(ids[i], 128, "%s", j[i].member);
    }
    int32_t gen = j[0].gen;
    assert_string_equal(j[0].leader, ids[0]);
    assert_int_equal(j[0].n_members, (size_t)n);
    struct group_assignment a[8];
    char bytes[8][16];
    for (int i = 0; i < n; i++) {
        snprintf(bytes[i], sizeof(bytes[i]), "a-%d", i);
        a[i] = (struct group_assignment){ids[i], (const uint8_t *)bytes[i], strlen(bytes[i])};
    }
    struct sres s[8];
    for (int i = n - 1; i >= 0; i--) {
        sync_as(&s[i], group, gen, ids[i], i == 0 ? a : NULL, i == 0 ? (size_t)n : 0, NULL);
        assert_int_equal(s[i].calls, i == 0 ? 1 : 0); /* followers wait for the leader */
    }
    for (int i = 0; i < n; i++) {
        assert_int_equal(s[i].calls, 1);
        assert_int_equal(s[i].error, GROUP_ERR_NONE);
        assert_string_equal(s[i].assignment, bytes[i]);
    }
    assert_string_equal(state_of(group), "Stable");
    return gen;
}

/* ---- membership ----------------------------------------------------------------------------- */

static void test_single_member(void **state)
{
    (void)state;
    struct jres j;
    join_as(&j, "g", "", NULL);
    assert_int_equal(j.calls, 1); /* initial delay 0: completes inside group_join */
    assert_int_equal(j.error, GROUP_ERR_NONE);
    assert_int_equal(j.gen, 1);
    assert_int_equal(strncmp(j.member, "cli-", 4), 0);
    assert_int_equal(strlen(j.member), 4 + 36);
    assert_string_equal(j.leader, j.member);
    assert_string_equal(j.ptype, "consumer");
    assert_string_equal(j.pname, "range");
    assert_int_equal(j.n_members, 1);
    assert_string_equal(j.members[0], j.member);
    assert_string_equal(j.meta[0], "sub-a");
    assert_string_equal(state_of("g"), "CompletingRebalance");

    struct sres s;
    struct group_assignment a = {j.member, (const uint8_t *)"asg-1", 5};
    sync_as(&s, "g", 1, j.member, &a, 1, NULL);
    assert_int_equal(s.calls, 1);
    assert_int_equal(s.error, GROUP_ERR_NONE);
    assert_string_equal(s.assignment, "asg-1");
    assert_string_equal(s.pname, "range");
    assert_int_equal(group_heartbeat(F.m, "g", 1, j.member, NULL), GROUP_ERR_NONE);
    assert_int_equal(group_heartbeat(F.m, "g", 2, j.member, NULL), GROUP_ERR_ILLEGAL_GENERATION);
    assert_int_equal(group_heartbeat(F.m, "g", 1, "who", NULL), GROUP_ERR_UNKNOWN_MEMBER_ID);
    assert_int_equal(group_heartbeat(F.m, "nope", 1, j.member, NULL), GROUP_ERR_UNKNOWN_MEMBER_ID);

    struct group_desc d;
    group_describe(F.m, "g", &d);
    assert_int_equal(d.error, GROUP_ERR_NONE);
    assert_string_equal(d.state, "Stable");
    assert_string_equal(d.protocol_type, "consumer");
    assert_string_equal(d.protocol_name, "range");
    assert_int_equal(d.n_members, 1);
    assert_string_equal(d.members[0].member_id, j.member);
    assert_string_equal(d.members[0].client_id, "cli");
    assert_string_equal(d.members[0].client_host, "/127.0.0.1");
    assert_int_equal(d.members[0].metadata_len, 5);
    assert_memory_equal(d.members[0].metadata, "sub-a", 5);
    assert_int_equal(d.members[0].assignment_len, 5);
    assert_memory_equal(d.members[0].assignment, "asg-1", 5);
    group_desc_fini(&d);

    /* a member of a stable group syncing again gets its bytes again */
    sync_as(&s, "g", 1, j.member, NULL, 0, NULL);
    assert_string_equal(s.assignment, "asg-1");
    /* the leader rejoining a stable group forces a rebalance (Kafka: to pick up metadata) */
    char id[128];
    snprintf(id, sizeof(id), "%s", j.member);
    join_as(&j, "g", id, NULL);
    assert_int_equal(j.calls, 1);
    assert_int_equal(j.gen, 2);
    assert_string_equal(state_of("g"), "CompletingRebalance");
}

static void test_rebalance_on_join(void **state)
{
    (void)state;
    struct jres a, b;
    join_as(&a, "g", "", NULL);
    char ida[128];
    snprintf(ida, sizeof(ida), "%s", a.member);
    struct sres sa, sb;
    sync_as(&sa, "g", 1, ida, NULL, 0, NULL);
    assert_string_equal(state_of("g"), "Stable");

    join_as(&b, "g", "", NULL);
    assert_int_equal(b.calls, 0); /* waits for the known member to rejoin */
    assert_string_equal(state_of("g"), "PreparingRebalance");
    assert_int_equal(group_heartbeat(F.m, "g", 1, ida, NULL), GROUP_ERR_REBALANCE_IN_PROGRESS);
    sync_as(&sa, "g", 1, ida, NULL, 0, NULL);
    assert_int_equal(sa.error, GROUP_ERR_REBALANCE_IN_PROGRESS);

    join_as(&a, "g", ida, NULL);
    assert_int_equal(a.calls, 1);
    assert_int_equal(b.calls, 1);
    assert_int_equal(a.gen, 2);
    assert_int_equal(b.gen, 2);
    assert_string_equal(a.leader, ida);
    assert_string_equal(b.leader, ida);
    assert_int_equal(a.n_members, 2);
    assert_string_equal(a.members[0], ida);
    assert_string_equal(a.members[1], b.member);
    assert_int_equal(b.n_members, 0);
    assert_string_equal(state_of("g"), "CompletingRebalance");
    assert_int_equal(group_heartbeat(F.m, "g", 2, b.member, NULL), GROUP_ERR_NONE);

    /* commits wait for the assignment */
    struct group_offset o = {"t", 0, 5, -1, NULL, -1};
    assert_int_equal(group_commit(F.m, "g", 2, ida, NULL, &o, 1), 0);
    assert_int_equal(o.error, GROUP_ERR_REBALANCE_IN_PROGRESS);

    /* the follower syncs first and waits; the leader's sync answers both */
    sync_as(&sb, "g", 2, b.member, NULL, 0, NULL);
    assert_int_equal(sb.calls, 0);
    struct group_assignment asg[] = {{ida, (const uint8_t *)"for-a", 5},
                                     {b.member, (const uint8_t *)"for-b", 5}};
    sync_as(&sa, "g", 2, ida, asg, 2, NULL);
    assert_int_equal(sa.calls, 1);
    assert_int_equal(sb.calls, 1);
    assert_string_equal(sa.assignment, "for-a");
    assert_string_equal(sb.assignment, "for-b");
    assert_int_equal(sb.error, GROUP_ERR_NONE);
    assert_string_equal(state_of("g"), "Stable");

    /* a follower rejoining with the same metadata (a lost response): current generation */
    char idb[128];
    snprintf(idb, sizeof(idb), "%s", b.member);
    join_as(&b, "g", idb, NULL);
    assert_int_equal(b.calls, 1);
    assert_int_equal(b.gen, 2);
    assert_string_equal(b.leader, ida);
    assert_string_equal(state_of("g"), "Stable");
    /* with changed metadata it rebalances */
    const struct group_protocol other[] = {{"range", (const uint8_t *)"sub-b", 5}};
    struct group_join_req req = req_for("g", idb);
    req.protocols = other;
    join_req(&b, &req, NULL);
    assert_int_equal(b.calls, 0);
    assert_string_equal(state_of("g"), "PreparingRebalance");
}

static void test_rebalance_on_leave(void **state)
{
    (void)state;
    char ids[3][128];
    int32_t gen = form_group("g", 3, ids);
    const char *leaving[] = {ids[1], "nope"};
    int16_t errs[2];
    assert_int_equal(group_leave(F.m, "g", leaving, 2, errs), GROUP_ERR_NONE);
    assert_int_equal(errs[0], GROUP_ERR_NONE);
    assert_int_equal(errs[1], GROUP_ERR_UNKNOWN_MEMBER_ID);
    assert_string_equal(state_of("g"), "PreparingRebalance");
    assert_int_equal(group_heartbeat(F.m, "g", gen, ids[1], NULL), GROUP_ERR_UNKNOWN_MEMBER_ID);
    assert_int_equal(group_heartbeat(F.m, "g", gen, ids[2], NULL), GROUP_ERR_REBALANCE_IN_PROGRESS);

    /* the leader leaves too while the others rejoin: the first rejoined member leads */
    struct jres c;
    join_as(&c, "g", ids[2], NULL);
    assert_int_equal(c.calls, 0);
    const char *lead[] = {ids[0]};
    assert_int_equal(group_leave(F.m, "g", lead, 1, errs), GROUP_ERR_NONE);
    assert_int_equal(c.calls, 1);
    assert_int_equal(c.gen, gen + 1);
    assert_string_equal(c.leader, ids[2]);
    assert_int_equal(c.n_members, 1);

    /* the last member leaving empties the group; without offsets it is gone */
    const char *last[] = {ids[2]};
    assert_int_equal(group_leave(F.m, "g", last, 1, errs), GROUP_ERR_NONE);
    assert_int_equal(errs[0], GROUP_ERR_NONE);
    assert_string_equal(state_of("g"), "Dead");
    assert_int_equal(group_leave(F.m, "g", last, 1, errs), GROUP_ERR_NONE);
    assert_int_equal(errs[0], GROUP_ERR_UNKNOWN_MEMBER_ID);
    assert_int_equal(group_leave(F.m, "", last, 1, errs), GROUP_ERR_INVALID_GROUP_ID);
}

struct beat {
    uv_timer_t t;
    const char *group, *member;
    int32_t gen;
    int16_t last;
    int rebalancing; /* heartbeats that answered REBALANCE_IN_PROGRESS */
};

static void on_beat(uv_timer_t *t)
{
    struct beat *b = t->data;
    b->last = group_heartbeat(F.m, b->group, b->gen, b->member, NULL);
    if (b->last == GROUP_ERR_REBALANCE_IN_PROGRESS)
        b->rebalancing++;
}

/* A member that stops heartbeating expires; the survivor rejoins into a new generation. */
static void test_session_timeout(void **state)
{
    (void)state;
    session_ms = 250; /* the heartbeating member has 230 ms of slack */
    char ids[2][128];
    int32_t gen = form_group("g", 2, ids);
    struct beat b = {.group = "g", .member = ids[0], .gen = gen};
    uv_timer_init(&F.loop, &b.t);
    b.t.data = &b;
    uv_timer_start(&b.t, on_beat, 20, 20);
    uint64_t t0 = uv_now(&F.loop);
    assert_true(run_until(&b.rebalancing, 1, 3000));
    uv_timer_stop(&b.t);
    assert_true(uv_now(&F.loop) - t0 >= 240);
    assert_string_equal(state_of("g"), "PreparingRebalance");
    assert_int_equal(members_of("g"), 1);
    assert_int_equal(group_heartbeat(F.m, "g", gen, ids[1], NULL), GROUP_ERR_UNKNOWN_MEMBER_ID);

    struct jres a;
    join_as(&a, "g", ids[0], NULL);
    assert_int_equal(a.calls, 1);
    assert_int_equal(a.gen, gen + 1);
    assert_int_equal(a.n_members, 1);
    assert_string_equal(a.leader, ids[0]);
    uv_close((uv_handle_t *)&b.t, NULL);
    run_ms(1);
}

/* A member that does not rejoin within the rebalance timeout is dropped from the generation. */
static void test_rebalance_timeout(void **state)
{
    (void)state;
    rebalance_ms = 150;
    char ids[2][128];
    int32_t gen = form_group("g", 2, ids);
    struct jres c, a;
    join_as(&c, "g", "", NULL);
    join_as(&a, "g", ids[0], NULL);
    assert_int_equal(c.calls + a.calls, 0); /* ids[1] has not rejoined */
    uint64_t t0 = uv_now(&F.loop);
    assert_true(run_until(&c.calls, 1, 3000));
    assert_true(uv_now(&F.loop) - t0 >= 140);
    assert_int_equal(a.calls, 1);
    assert_int_equal(c.gen, gen + 1);
    assert_int_equal(a.n_members, 2);
    assert_string_equal(a.members[0], ids[0]);
    assert_string_equal(a.members[1], c.member);
    assert_int_equal(group_heartbeat(F.m, "g", gen, ids[1], NULL), GROUP_ERR_UNKNOWN_MEMBER_ID);
}

/* A member that never syncs is dropped after the rebalance timeout; the group rebalances. */
static void test_sync_timeout(void **state)
{
    (void)state;
    rebalance_ms = 150;
    struct jres a, b;
    join_as(&a, "g", "", NULL);
    char ida[128];
    snprintf(ida, sizeof(ida), "%s", a.member);
    join_as(&b, "g", "", NULL);
    join_as(&a, "g", ida, NULL);
    assert_int_equal(a.calls + b.calls, 2);
    struct sres sa;
    sync_as(&sa, "g", a.gen, ida, NULL, 0, NULL); /* b never syncs */
    assert_int_equal(sa.calls, 1);
    assert_string_equal(state_of("g"), "Stable");
    assert_int_equal(sa.len, 0); /* the leader assigned nothing */
    struct beat hb = {.group = "g", .member = ida, .gen = a.gen};
    uv_timer_init(&F.loop, &hb.t);
    hb.t.data = &hb;
    uv_timer_start(&hb.t, on_beat, 20, 20);
    uint64_t t0 = uv_now(&F.loop);
    assert_true(run_until(&hb.rebalancing, 1, 3000));
    uv_timer_stop(&hb.t);
    assert_true(uv_now(&F.loop) - t0 >= 140);
    assert_string_equal(state_of("g"), "PreparingRebalance");
    assert_int_equal(members_of("g"), 1);
    assert_int_equal(group_heartbeat(F.m, "g", a.gen, b.member, NULL), GROUP_ERR_UNKNOWN_MEMBER_ID);
    int32_t gen = a.gen;
    join_as(&a, "g", ida, NULL);
    assert_int_equal(a.calls, 1);
    assert_int_equal(a.gen, gen + 1);
    assert_int_equal(a.n_members, 1);
    uv_close((uv_handle_t *)&hb.t, NULL);
    run_ms(1);
}

/* A member waiting in a rebalance is not expired by its session; one that neither rejoins nor
 * heartbeats is. A new member whose join waits too long is dropped with UNKNOWN_MEMBER_ID. */
static void test_waiting_members_and_join_timeout(void **state)
{
    (void)state;
    session_ms = 150;
    F.cfg.new_member_join_timeout_ms = 600;
    mgr_reopen();
    char ids[2][128];
    int32_t gen = form_group("g", 2, ids);
    struct jres a;
    join_as(&a, "g", ids[0], NULL); /* waits for ids[1], which heartbeats but does not rejoin */
    struct beat hb = {.group = "g", .member = ids[1], .gen = gen};
    uv_timer_init(&F.loop, &hb.t);
    hb.t.data = &hb;
    uv_timer_start(&hb.t, on_beat, 15, 15);
    run_ms(400); /* more than two sessions of ids[0] */
    uv_timer_stop(&hb.t);
    assert_int_equal(hb.last, GROUP_ERR_REBALANCE_IN_PROGRESS);
    assert_int_equal(a.calls, 0);
    assert_int_equal(members_of("g"), 2);
    struct jres b;
    join_as(&b, "g", ids[1], NULL);
    assert_int_equal(a.calls, 1);
    assert_int_equal(a.n_members, 2);
    assert_int_equal(a.gen, gen + 1);

    /* a new member joins; ids[0] keeps heartbeating without rejoining, ids[1] goes silent */
    struct jres c;
    join_as(&c, "g", "", NULL);
    hb.member = ids[0];
    hb.gen = gen + 1;
    uv_timer_start(&hb.t, on_beat, 15, 15);
    uint64_t t0 = uv_now(&F.loop);
    assert_true(run_until(&c.calls, 1, 3000));
    uv_timer_stop(&hb.t);
    assert_true(uv_now(&F.loop) - t0 >= 590);
    assert_int_equal(c.error, GROUP_ERR_UNKNOWN_MEMBER_ID); /* the join timed out */
    assert_string_equal(c.member, "");
    assert_int_equal(members_of("g"), 1); /* ids[1] expired, the new member is gone */
    assert_int_equal(group_heartbeat(F.m, "g", gen + 1, ids[0], NULL),
                     GROUP_ERR_REBALANCE_IN_PROGRESS);
    uv_close((uv_handle_t *)&hb.t, NULL);
    run_ms(1);
}

/* Many sessions of different lengths in the deadline heap: all expire, none early. */
static void test_many_sessions_expire(void **state)
{
    (void)state;
    enum { N = 40 };
    int joined = 0;
    for (int i = 0; i < N; i++) {
        char group[16];
        snprintf(group, sizeof(group), "g%d", i);
        session_ms = 100 + (i * 37) % 200; /* 100 .. 299 ms, not in join order */
        struct jres j;
        join_as(&j, group, "", NULL);
        joined += j.calls;
    }
    assert_int_equal(joined, N);
    run_ms(5);
    for (int i = 0; i < N; i++) {
        char group[16];
        snprintf(group, sizeof(group), "g%d", i);
        assert_string_equal(state_of(group), "CompletingRebalance");
    }
    uint64_t t0 = uv_now(&F.loop);
    int dead = 0;
    while (dead < N && uv_now(&F.loop) - t0 < 3000) {
        run_ms(20);
        dead = 0;
        for (int i = 0; i < N; i++) {
            char group[16];
            snprintf(group, sizeof(group), "g%d", i);
            dead += strcmp(state_of(group), "Dead") == 0;
        }
        assert_true(dead == N || uv_now(&F.loop) - t0 < 300); /* none lives past its session */
    }
    assert_int_equal(dead, N);
}

static void test_stale_generation(void **state)
{
    (void)state;
    char ids[1][128];
    int32_t gen = form_group("g", 1, ids);
    assert_int_equal(group_heartbeat(F.m, "g", gen - 1, ids[0], NULL),
                     GROUP_ERR_ILLEGAL_GENERATION);
    struct sres s;
    sync_as(&s, "g", gen + 4, ids[0], NULL, 0, NULL);
    assert_int_equal(s.error, GROUP_ERR_ILLEGAL_GENERATION);
    sync_as(&s, "g", gen, "who", NULL, 0, NULL);
    assert_int_equal(s.error, GROUP_ERR_UNKNOWN_MEMBER_ID);
    sync_as(&s, "nope", gen, ids[0], NULL, 0, NULL);
    assert_int_equal(s.error, GROUP_ERR_UNKNOWN_MEMBER_ID);
    struct group_sync_req wrong = {
        .group_id = "g", .generation = gen, .member_id = ids[0], .protocol_name = "roundrobin"};
    memset(&s, 0, sizeof(s));
    group_sync(F.m, &wrong, NULL, on_sync, &s);
    assert_int_equal(s.error, GROUP_ERR_INCONSISTENT_GROUP_PROTOCOL);

    struct group_offset o[2] = {{"t", 0, 1, -1, NULL, -1}, {"t", 1, 1, -1, NULL, -1}};
    assert_int_equal(group_commit(F.m, "g", gen + 7, ids[0], NULL, o, 2), 0);
    assert_int_equal(o[0].error, GROUP_ERR_ILLEGAL_GENERATION);
    assert_int_equal(o[1].error, GROUP_ERR_ILLEGAL_GENERATION);
    assert_int_equal(group_commit(F.m, "g", gen, "who", NULL, o, 2), 0);
    assert_int_equal(o[0].error, GROUP_ERR_UNKNOWN_MEMBER_ID);
    assert_int_equal(group_commit(F.m, "gone", 3, "who", NULL, o, 1), 0);
    assert_int_equal(o[0].error, GROUP_ERR_ILLEGAL_GENERATION);

    struct jres j;
    join_as(&j, "g", "who", NULL);
    assert_int_equal(j.error, GROUP_ERR_UNKNOWN_MEMBER_ID);
    assert_string_equal(j.member, "who");
    assert_int_equal(j.gen, -1);
    join_as(&j, "nope", "who", NULL);
    assert_int_equal(j.error, GROUP_ERR_UNKNOWN_MEMBER_ID);
    assert_string_equal(state_of("nope"), "Dead");
}

static void test_member_id_required(void **state)
{
    (void)state;
    struct group_join_req req = req_for("g", "");
    req.require_known_member = true;
    struct jres j;
    join_req(&j, &req, NULL);
    assert_int_equal(j.calls, 1);
    assert_int_equal(j.error, GROUP_ERR_MEMBER_ID_REQUIRED);
    assert_int_equal(strncmp(j.member, "cli-", 4), 0);
    assert_string_equal(state_of("g"), "Empty"); /* only a pending member */
    char id[128];
    snprintf(id, sizeof(id), "%s", j.member);
    req.member_id = id;
    join_req(&j, &req, NULL);
    assert_int_equal(j.error, GROUP_ERR_NONE);
    assert_string_equal(j.member, id);
    assert_int_equal(j.gen, 1);

    /* a pending member holds the rebalance until it joins with its id */
    struct sres s;
    sync_as(&s, "g", 1, id, NULL, 0, NULL);
    req.member_id = "";
    struct jres b, a;
    join_req(&b, &req, NULL);
    assert_int_equal(b.error, GROUP_ERR_MEMBER_ID_REQUIRED);
    assert_string_equal(state_of("g"), "Stable"); /* pending members do not rebalance */
    join_as(&a, "g", id, NULL);                   /* the leader's rejoin does */
    assert_int_equal(a.calls, 0);
    char idb[128];
    snprintf(idb, sizeof(idb), "%s", b.member);
    req.member_id = idb;
    join_req(&b, &req, NULL);
    assert_int_equal(a.calls, 1);
    assert_int_equal(b.calls, 1);
    assert_int_equal(b.gen, 2);
    assert_string_equal(b.member, idb);
    assert_int_equal(a.n_members, 2);

    /* a pending member that never comes back expires with its session */
    session_ms = 50;
    req = req_for("p", "");
    req.require_known_member = true;
    join_req(&j, &req, NULL);
    assert_int_equal(j.error, GROUP_ERR_MEMBER_ID_REQUIRED);
    assert_string_equal(state_of("p"), "Empty");
    run_ms(150);
    assert_string_equal(state_of("p"), "Dead");
}

/* The first rebalance of an Empty group waits for the initial delay, gathering members. */
static void test_initial_delay(void **state)
{
    (void)state;
    F.cfg.initial_rebalance_delay_ms = 100;
    mgr_reopen();
    struct jres a, b;
    uint64_t t0 = uv_now(&F.loop);
    join_as(&a, "g", "", NULL);
    join_as(&b, "g", "", NULL);
    assert_int_equal(a.calls + b.calls, 0);
    assert_string_equal(state_of("g"), "PreparingRebalance");
    assert_true(run_until(&b.calls, 1, 3000));
    assert_true(uv_now(&F.loop) - t0 >= 95);
    assert_int_equal(a.calls, 1);
    assert_int_equal(a.gen, 1);
    assert_int_equal(b.gen, 1);
    assert_int_equal(a.n_members, 2);
    assert_string_equal(b.leader, a.member);
    /* later rebalances do not wait for the delay */
    struct sres s;
    sync_as(&s, "g", 1, a.member, NULL, 0, NULL);
    struct jres a2, b2;
    char ida[128], idb[128];
    snprintf(ida, sizeof(ida), "%s", a.member);
    snprintf(idb, sizeof(idb), "%s", b.member);
    join_as(&a2, "g", ida, NULL);
    join_as(&b2, "g", idb, NULL);
    assert_int_equal(a2.calls + b2.calls, 2);
    assert_int_equal(a2.gen, 2);
}

static void test_protocol_selection(void **state)
{
    (void)state;
    struct jres a, b, c;
    join_as(&a, "g", "", NULL);
    char ida[128];
    snprintf(ida, sizeof(ida), "%s", a.member);
    struct group_join_req req = req_for("g", "");
    req.protocol_type = "connect";
    join_req(&b, &req, NULL);
    assert_int_equal(b.error, GROUP_ERR_INCONSISTENT_GROUP_PROTOCOL);
    assert_string_equal(b.member, "");
    const struct group_protocol rr[] = {{"roundrobin", (const uint8_t *)"x", 1}};
    req = req_for("g", "");
    req.protocols = rr;
    join_req(&b, &req, NULL);
    assert_int_equal(b.error, GROUP_ERR_INCONSISTENT_GROUP_PROTOCOL);
    req.protocol_type = "";
    join_req(&c, &req, NULL);
    assert_int_equal(c.error, GROUP_ERR_INCONSISTENT_GROUP_PROTOCOL);

    /* a: range; b, c: roundrobin first, range second -> range is the only common one */
    const struct group_protocol rr_range[] = {{"roundrobin", (const uint8_t *)"rb", 2},
                                              {"range", (const uint8_t *)"ra", 2}};
    req = req_for("g", "");
    req.protocols = rr_range;
    req.n_protocols = 2;
    join_req(&b, &req, NULL);
    join_as(&a, "g", ida, NULL);
    assert_int_equal(a.calls, 1);
    assert_string_equal(a.pname, "range");
    assert_string_equal(a.meta[1], "ra"); /* the member's metadata for the chosen protocol */

    /* a rejoins preferring range but also speaking roundrobin: 2 votes to 1 for roundrobin */
    const struct group_protocol range_rr[] = {{"range", (const uint8_t *)"ra", 2},
                                              {"roundrobin", (const uint8_t *)"rb", 2}};
    join_req(&c, &req, NULL); /* a third member preferring roundrobin */
    char idb[128];
    snprintf(idb, sizeof(idb), "%s", b.member);
    req.member_id = idb;
    join_req(&b, &req, NULL);
    req = req_for("g", ida);
    req.protocols = range_rr;
    req.n_protocols = 2;
    join_req(&a, &req, NULL);
    assert_int_equal(a.calls, 1);
    assert_int_equal(c.calls, 1);
    assert_string_equal(a.pname, "roundrobin");
    assert_string_equal(c.pname, "roundrobin");
    assert_string_equal(a.meta[0], "rb");
}

static void test_invalid_requests(void **state)
{
    (void)state;
    struct jres j;
    join_as(&j, "", "", NULL);
    assert_int_equal(j.error, GROUP_ERR_INVALID_GROUP_ID);
    struct group_join_req req = req_for("g", "");
    req.session_timeout_ms = 5;
    join_req(&j, &req, NULL);
    assert_int_equal(j.error, GROUP_ERR_INVALID_SESSION_TIMEOUT);
    req.session_timeout_ms = 1800001;
    join_req(&j, &req, NULL);
    assert_int_equal(j.error, GROUP_ERR_INVALID_SESSION_TIMEOUT);
    req = req_for("g", "");
    req.group_instance_id = "static-1";
    join_req(&j, &req, NULL);
    assert_int_equal(j.error, GROUP_ERR_UNSUPPORTED_VERSION);
    assert_string_equal(state_of("g"), "Dead"); /* nothing was created */

    assert_int_equal(group_heartbeat(F.m, "", 0, "m", NULL), GROUP_ERR_INVALID_GROUP_ID);
    struct sres s;
    sync_as(&s, "", 0, "m", NULL, 0, NULL);
    assert_int_equal(s.error, GROUP_ERR_INVALID_GROUP_ID);
    struct group_offset o = {"t", 0, 1, -1, NULL, -1};
    assert_int_equal(group_commit(F.m, NULL, -1, "", NULL, &o, 1), 0);
    assert_int_equal(o.error, GROUP_ERR_INVALID_GROUP_ID);
    assert_int_equal(group_fetch_offsets(F.m, NULL, &o, 1), GROUP_ERR_INVALID_GROUP_ID);
    struct group_desc d;
    group_describe(F.m, NULL, &d);
    assert_int_equal(d.error, GROUP_ERR_INVALID_GROUP_ID);
    group_desc_fini(&d);
    assert_int_equal(group_delete(F.m, NULL), GROUP_ERR_INVALID_GROUP_ID);
}

/* A second join of a waiting member answers the first with REBALANCE_IN_PROGRESS. */
static void test_duplicate_join(void **state)
{
    (void)state;
    char ids[2][128];
    int32_t gen = form_group("g", 2, ids);
    struct jres first, second, b;
    join_as(&first, "g", ids[0], NULL);
    assert_int_equal(first.calls, 0);
    join_as(&second, "g", ids[0], NULL);
    assert_int_equal(first.calls, 1);
    assert_int_equal(first.error, GROUP_ERR_REBALANCE_IN_PROGRESS);
    assert_int_equal(second.calls, 0);
    join_as(&b, "g", ids[1], NULL);
    assert_int_equal(second.calls, 1);
    assert_int_equal(second.gen, gen + 1);
    assert_int_equal(first.calls, 1);
}

/* A callback may call back into the coordinator. */
struct reenter {
    struct jres j;
    struct sres s;
};

static void on_join_then_sync(void *arg, const struct group_join_result *r)
{
    struct reenter *re = arg;
    on_join(&re->j, r);
    struct group_assignment a = {r->member_id, (const uint8_t *)"mine", 4};
    sync_as(&re->s, "g", r->generation, r->member_id, &a, 1, NULL);
}

static void test_reentrant_callback(void **state)
{
    (void)state;
    struct reenter re;
    memset(&re, 0, sizeof(re));
    struct group_join_req req = req_for("g", "");
    group_join(F.m, &req, NULL, on_join_then_sync, &re);
    assert_int_equal(re.j.calls, 1);
    assert_int_equal(re.s.calls, 1);
    assert_string_equal(re.s.assignment, "mine");
    assert_string_equal(state_of("g"), "Stable");
}

/* ---- cancellation --------------------------------------------------------------------------- */

static int conn_a, conn_b, conn_c; /* owners */

/* A new member whose connection closes before its id reached it is dropped at once. */
static void test_cancel_new_member(void **state)
{
    (void)state;
    char ids[1][128];
    int32_t gen = form_group("g", 1, ids);
    struct jres b, a;
    join_as(&b, "g", "", &conn_b);
    assert_int_equal(members_of("g"), 2);
    group_conn_closed(F.m, &conn_b);
    assert_int_equal(members_of("g"), 1);
    join_as(&a, "g", ids[0], &conn_a);
    assert_int_equal(a.calls, 1);
    assert_int_equal(a.gen, gen + 1);
    assert_int_equal(a.n_members, 1);
    run_ms(30);
    assert_int_equal(b.calls, 0);
}

/* A known member's cancelled join still counts as joined (as in Kafka); its missing sync then
 * drops it after the rebalance timeout. The cancelled callbacks never fire. */
static void test_cancel_known_member(void **state)
{
    (void)state;
    rebalance_ms = 150;
    char ids[2][128];
    int32_t gen = form_group("g", 2, ids);
    struct jres a, b;
    join_as(&a, "g", ids[0], &conn_a); /* the leader rejoins, then its connection dies */
    group_conn_closed(F.m, &conn_a);
    join_as(&b, "g", ids[1], &conn_b);
    assert_int_equal(b.calls, 1);
    assert_int_equal(b.gen, gen + 1);
    assert_string_equal(b.leader, ids[0]);
    struct sres sb;
    sync_as(&sb, "g", b.gen, ids[1], NULL, 0, &conn_b);
    assert_int_equal(sb.calls, 0); /* the leader will never sync */
    assert_true(run_until(&sb.calls, 1, 3000));
    assert_int_equal(sb.error, GROUP_ERR_REBALANCE_IN_PROGRESS);
    assert_int_equal(members_of("g"), 1);
    join_as(&b, "g", ids[1], &conn_b);
    assert_int_equal(b.calls, 1);
    assert_int_equal(b.gen, gen + 2);
    assert_string_equal(b.leader, ids[1]);
    assert_int_equal(a.calls, 0);
}

static void test_cancel_sync(void **state)
{
    (void)state;
    char ids[2][128];
    int32_t gen = form_group("g", 2, ids);
    struct jres a, b;
    join_as(&a, "g", ids[0], &conn_a);
    join_as(&b, "g", ids[1], &conn_b);
    struct sres sa, sb;
    sync_as(&sb, "g", gen + 1, ids[1], NULL, 0, &conn_b);
    group_conn_closed(F.m, &conn_b);
    struct group_assignment asg[] = {{ids[1], (const uint8_t *)"x", 1}};
    sync_as(&sa, "g", gen + 1, ids[0], asg, 1, &conn_a);
    assert_int_equal(sa.calls, 1);
    run_ms(30);
    assert_int_equal(sb.calls, 0);
    group_conn_closed(F.m, &conn_c); /* an owner with nothing pending */
    group_conn_closed(F.m, NULL);
}

/* A result already decided but not yet delivered is dropped too. */
struct closer {
    struct jres j;
    void *victim;
};

static void on_join_then_close(void *arg, const struct group_join_result *r)
{
    struct closer *c = arg;
    on_join(&c->j, r);
    group_conn_closed(F.m, c->victim);
}

static void test_cancel_queued_result(void **state)
{
    (void)state;
    char ids[1][128];
    form_group("g", 1, ids);
    struct jres b;
    join_as(&b, "g", "", &conn_b);
    struct closer c = {.victim = &conn_b};
    struct group_join_req req = req_for("g", ids[0]);
    group_join(F.m, &req, &conn_a, on_join_then_close, &c);
    assert_int_equal(c.j.calls, 1);
    assert_int_equal(c.j.n_members, 2); /* b was in the generation ... */
    assert_int_equal(b.calls, 0);       /* ... but its answer was dropped */
}

/* ---- offsets -------------------------------------------------------------------------------- */

struct seen {
    int n;
    char line[8][64];
};

static void on_offset(void *arg, const struct group_offset *o)
{
    struct seen *s = arg;
    snprintf(s->line[s->n++], sizeof(s->line[0]), "%s/%d=%lld/%d/%s", o->topic, o->partition,
             (long long)o->offset, o->leader_epoch, o->metadata);
}

static void commit_simple(const char *group)
{
    char big[5000];
    memset(big, 'm', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    struct group_offset o[] = {
        {"t0", 1, 11, 3, NULL, -1},
        {"t0", 0, 10, -1, "hello", -1},
        {"t1", 0, 12, 0, NULL, -1},
        {"t1", 1, 13, 0, big, -1},
    };
    assert_int_equal(group_commit(F.m, group, -1, "", NULL, o, 4), 0);
    assert_int_equal(o[0].error, GROUP_ERR_NONE);
    assert_int_equal(o[1].error, GROUP_ERR_NONE);
    assert_int_equal(o[2].error, GROUP_ERR_NONE);
    assert_int_equal(o[3].error, GROUP_ERR_OFFSET_METADATA_TOO_LARGE);
}

static void check_simple(const char *group)
{
    struct group_offset f[] = {
        {"t0", 0, 0, 0, NULL, -1}, {"t0", 1, 0, 0, NULL, -1}, {"t1", 0, 0, 0, NULL, -1},
        {"t1", 1, 0, 0, NULL, -1}, {"t9", 0, 0, 0, NULL, -1},
    };
    assert_int_equal(group_fetch_offsets(F.m, group, f, 5), GROUP_ERR_NONE);
    const int64_t want[] = {10, 11, 12, -1, -1};
    for (int i = 0; i < 5; i++) {
        assert_int_equal(f[i].offset, want[i]);
        assert_int_equal(f[i].error, GROUP_ERR_NONE);
    }
    assert_string_equal(f[0].metadata, "hello");
    assert_int_equal(f[1].leader_epoch, 3);
    assert_string_equal(f[1].metadata, "");
    assert_int_equal(f[3].leader_epoch, -1);
    assert_string_equal(f[4].metadata, "");
    struct seen s = {0};
    assert_int_equal(group_fetch_all_offsets(F.m, group, on_offset, &s), GROUP_ERR_NONE);
    assert_int_equal(s.n, 3);
    assert_string_equal(s.line[0], "t0/0=10/-1/hello");
    assert_string_equal(s.line[1], "t0/1=11/3/");
    assert_string_equal(s.line[2], "t1/0=12/0/");
    assert_int_equal(group_committed(F.m, group, "t0", 1), 11);
    assert_int_equal(group_committed(F.m, group, "t0", 2), -1);
    assert_int_equal(group_committed(F.m, "nope", "t0", 1), -1);
}

static void test_offsets_commit_fetch_restart(void **state)
{
    (void)state;
    commit_simple("s");
    check_simple("s");
    assert_string_equal(state_of("s"), "Empty");

    /* members commit with their generation; outsiders may not commit to an active group */
    char ids[1][128];
    int32_t gen = form_group("c", 1, ids);
    struct group_offset o = {"t0", 0, 77, 1, "m", -1};
    assert_int_equal(group_commit(F.m, "c", gen, ids[0], NULL, &o, 1), 0);
    assert_int_equal(o.error, GROUP_ERR_NONE);
    o.offset = 78;
    assert_int_equal(group_commit(F.m, "c", -1, "", NULL, &o, 1), 0);
    assert_int_equal(o.error, GROUP_ERR_UNKNOWN_MEMBER_ID);
    assert_int_equal(group_committed(F.m, "c", "t0", 0), 77);
    struct seen none = {0};
    assert_int_equal(group_fetch_all_offsets(F.m, "nope", on_offset, &none), GROUP_ERR_NONE);
    assert_int_equal(none.n, 0);

    mgr_reopen();
    check_simple("s");
    assert_int_equal(group_committed(F.m, "c", "t0", 0), 77);
    assert_string_equal(state_of("c"), "Empty"); /* membership is not persisted */
    assert_int_equal(group_heartbeat(F.m, "c", gen, ids[0], NULL), GROUP_ERR_UNKNOWN_MEMBER_ID);
    /* a simple commit to the now-empty group is allowed again */
    assert_int_equal(group_commit(F.m, "c", -1, "", NULL, &o, 1), 0);
    assert_int_equal(o.error, GROUP_ERR_NONE);
    assert_int_equal(group_committed(F.m, "c", "t0", 0), 78);
}

static bool only_t_below_2(void *arg, const char *topic, int32_t partition)
{
    (*(int *)arg)++;
    return strcmp(topic, "t") == 0 && partition < 2;
}

static void test_commit_checks_partitions(void **state)
{
    (void)state;
    int calls = 0;
    F.cfg.partition_exists = only_t_below_2;
    F.cfg.partition_exists_arg = &calls;
    mgr_reopen();
    struct group_offset o[] = {
        {"t", 1, 5, -1, NULL, -1}, {"t", 5, 5, -1, NULL, -1}, {"u", 0, 5, -1, NULL, -1}};
    assert_int_equal(group_commit(F.m, "g", -1, "", NULL, o, 3), 0);
    assert_int_equal(calls, 3);
    assert_int_equal(o[0].error, GROUP_ERR_NONE);
    assert_int_equal(o[1].error, GROUP_ERR_UNKNOWN_TOPIC_OR_PARTITION);
    assert_int_equal(o[2].error, GROUP_ERR_UNKNOWN_TOPIC_OR_PARTITION);
    assert_int_equal(group_committed(F.m, "g", "t", 1), 5);
    assert_int_equal(group_committed(F.m, "g", "t", 5), -1);
}

static void exec_other(const char *sql)
{
    sqlite3 *db;
    char *err = NULL;
    assert_int_equal(sqlite3_open(F.dbpath, &db), SQLITE_OK);
    if (sqlite3_exec(db, sql, NULL, NULL, &err) != SQLITE_OK)
        fail_msg("%s: %s", sql, err);
    sqlite3_close(db);
}

/* A commit the catalog refuses reports COORDINATOR_NOT_AVAILABLE and changes nothing. */
static void test_commit_catalog_failure(void **state)
{
    (void)state;
    struct group_offset ok = {"t", 0, 1, -1, NULL, -1};
    assert_int_equal(group_commit(F.m, "g", -1, "", NULL, &ok, 1), 0);
    exec_other("CREATE TRIGGER refuse BEFORE INSERT ON group_offsets WHEN NEW.partition = 9"
               " BEGIN SELECT RAISE(ABORT, 'refused by test'); END;");
    char big[5000];
    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    struct group_offset o[] = {
        {"t", 0, 2, -1, NULL, -1}, {"t", 9, 2, -1, NULL, -1}, {"t", 1, 2, -1, big, -1}};
    assert_int_equal(group_commit(F.m, "g", -1, "", NULL, o, 3), -EIO);
    assert_int_equal(o[0].error, GROUP_ERR_COORDINATOR_NOT_AVAILABLE);
    assert_int_equal(o[1].error, GROUP_ERR_COORDINATOR_NOT_AVAILABLE);
    assert_int_equal(o[2].error, GROUP_ERR_OFFSET_METADATA_TOO_LARGE);
    assert_int_equal(group_committed(F.m, "g", "t", 0), 1);
    assert_int_equal(group_commit(F.m, "h", -1, "", NULL, &o[1], 1), -EIO);
    assert_string_equal(state_of("h"), "Dead"); /* nothing stored: no group left behind */
}

static int durable_status = 1;

static void on_durable(void *arg, int status)
{
    (*(int *)arg)++;
    durable_status = status;
}

/* A commit is stored at once and reported durable later, after an fsync of the catalog's WAL
 * on the thread pool that waiters share; a cancelled wait is not called; freeing the manager
 * with an fsync in flight drops its waiters. */
static void test_commit_durable(void **state)
{
    (void)state;
    int a = 0, b = 0, c = 0, d = 0;
    struct group_offset o = {"t", 0, 5, -1, NULL, -1};
    assert_int_equal(group_commit(F.m, "g", -1, "", NULL, &o, 1), 0);
    assert_int_equal(group_committed(F.m, "g", "t", 0), 5); /* visible before it is durable */
    group_wait_durable(F.m, on_durable, &a);
    struct group_durable_wait *wb = group_wait_durable(F.m, on_durable, &b);
    assert_int_equal(a, 0); /* never from inside the call */
    group_cancel_durable(wb);
    o.offset = 6;
    assert_int_equal(group_commit(F.m, "g", -1, "", NULL, &o, 1), 0);
    group_wait_durable(F.m, on_durable, &c); /* by the fsync in flight's successor */
    assert_true(run_until(&c, 1, 10000));
    assert_int_equal(a, 1);
    assert_int_equal(b, 0);
    assert_int_equal(durable_status, 0);
    mgr_reopen();
    assert_int_equal(group_committed(F.m, "g", "t", 0), 6);

    o.offset = 7;
    assert_int_equal(group_commit(F.m, "g", -1, "", NULL, &o, 1), 0);
    group_wait_durable(F.m, on_durable, &d);
    mgr_close(); /* the fsync job may still run: it frees what is left */
    uv_run(&F.loop, UV_RUN_DEFAULT);
    assert_int_equal(d, 0);
    mgr_open();
    assert_int_equal(group_committed(F.m, "g", "t", 0), 7);
}

static void test_forget_topic(void **state)
{
    (void)state;
    struct group_offset o[] = {{"t1", 0, 1, -1, NULL, -1}, {"t2", 0, 2, -1, NULL, -1}};
    assert_int_equal(group_commit(F.m, "both", -1, "", NULL, o, 2), 0);
    assert_int_equal(group_commit(F.m, "only-t1", -1, "", NULL, o, 1), 0);
    assert_int_equal(catalog_del_topic(F.cat, "t1"), 0);
    group_forget_topic(F.m, "t1");
    assert_int_equal(group_committed(F.m, "both", "t1", 0), -1);
    assert_int_equal(group_committed(F.m, "both", "t2", 0), 2);
    assert_string_equal(state_of("only-t1"), "Dead");
    mgr_reopen();
    assert_int_equal(group_committed(F.m, "both", "t1", 0), -1);
    assert_int_equal(group_committed(F.m, "both", "t2", 0), 2);
    assert_string_equal(state_of("only-t1"), "Dead");
}

/* ---- administration ------------------------------------------------------------------------- */

static void test_delete_group(void **state)
{
    (void)state;
    assert_int_equal(group_delete(F.m, "nope"), GROUP_ERR_GROUP_ID_NOT_FOUND);
    char ids[1][128];
    form_group("busy", 1, ids);
    assert_int_equal(group_delete(F.m, "busy"), GROUP_ERR_NON_EMPTY_GROUP);
    commit_simple("s");
    assert_int_equal(group_delete(F.m, "s"), GROUP_ERR_NONE);
    assert_int_equal(group_committed(F.m, "s", "t0", 0), -1);
    assert_string_equal(state_of("s"), "Dead");
    assert_int_equal(group_delete(F.m, "s"), GROUP_ERR_GROUP_ID_NOT_FOUND);

    /* the members leave: the group is Empty with its offsets and can go */
    struct group_offset o = {"t", 0, 3, -1, NULL, -1};
    assert_int_equal(group_commit(F.m, "busy", 1, ids[0], NULL, &o, 1), 0);
    const char *leave[] = {ids[0]};
    int16_t err;
    group_leave(F.m, "busy", leave, 1, &err);
    assert_string_equal(state_of("busy"), "Empty");
    assert_int_equal(group_delete(F.m, "busy"), GROUP_ERR_NONE);

    /* an Empty group holding only a pending member */
    struct group_join_req req = req_for("p", "");
    req.require_known_member = true;
    struct jres j;
    join_req(&j, &req, NULL);
    assert_int_equal(j.error, GROUP_ERR_MEMBER_ID_REQUIRED);
    assert_int_equal(group_delete(F.m, "p"), GROUP_ERR_NONE);
    char id[128];
    snprintf(id, sizeof(id), "%s", j.member);
    req.member_id = id;
    join_req(&j, &req, NULL);
    assert_int_equal(j.error, GROUP_ERR_UNKNOWN_MEMBER_ID);

    mgr_reopen();
    assert_string_equal(state_of("s"), "Dead");
    assert_string_equal(state_of("busy"), "Dead");
    assert_int_equal(group_committed(F.m, "s", "t0", 1), -1);
}

struct listed {
    int n;
    char line[8][96];
};

static int line_cmp(const void *a, const void *b)
{
    return strcmp(a, b);
}

static void on_list(void *arg, const char *id, const char *type, const char *st)
{
    struct listed *l = arg;
    snprintf(l->line[l->n++], sizeof(l->line[0]), "%s %s %s", id, type[0] ? type : "-", st);
}

static void test_describe_and_list(void **state)
{
    (void)state;
    commit_simple("e");
    char ids[2][128];
    form_group("p", 1, ids);
    struct jres b;
    join_as(&b, "p", "", NULL);
    struct jres c;
    join_as(&c, "c", "", NULL);
    form_group("s", 2, ids);

    struct group_desc d;
    group_describe(F.m, "p", &d);
    assert_string_equal(d.state, "PreparingRebalance");
    assert_string_equal(d.protocol_type, "consumer");
    assert_string_equal(d.protocol_name, "");
    assert_int_equal(d.n_members, 2);
    assert_null(d.members[0].metadata); /* only a Stable group shows metadata */
    assert_null(d.members[1].assignment);
    group_desc_fini(&d);
    group_describe(F.m, "e", &d);
    assert_string_equal(d.state, "Empty");
    assert_string_equal(d.protocol_type, "");
    assert_int_equal(d.n_members, 0);
    group_desc_fini(&d);
    group_describe(F.m, "s", &d);
    assert_string_equal(d.state, "Stable");
    assert_string_equal(d.protocol_name, "range");
    assert_int_equal(d.n_members, 2);
    assert_memory_equal(d.members[1].assignment, "a-1", 3);
    group_desc_fini(&d);
    group_describe(F.m, "unknown", &d);
    assert_int_equal(d.error, GROUP_ERR_NONE);
    assert_string_equal(d.state, "Dead");
    assert_int_equal(d.n_members, 0);
    group_desc_fini(&d);

    struct listed l = {0};
    group_list(F.m, on_list, &l);
    assert_int_equal(l.n, 4);
    qsort(l.line, (size_t)l.n, sizeof(l.line[0]), line_cmp);
    assert_string_equal(l.line[0], "c consumer CompletingRebalance");
    assert_string_equal(l.line[1], "e - Empty");
    assert_string_equal(l.line[2], "p consumer PreparingRebalance");
    assert_string_equal(l.line[3], "s consumer Stable");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_single_member, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rebalance_on_join, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rebalance_on_leave, setup, teardown),
        cmocka_unit_test_setup_teardown(test_session_timeout, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rebalance_timeout, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sync_timeout, setup, teardown),
        cmocka_unit_test_setup_teardown(test_waiting_members_and_join_timeout, setup, teardown),
        cmocka_unit_test_setup_teardown(test_many_sessions_expire, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stale_generation, setup, teardown),
        cmocka_unit_test_setup_teardown(test_member_id_required, setup, teardown),
        cmocka_unit_test_setup_teardown(test_initial_delay, setup, teardown),
        cmocka_unit_test_setup_teardown(test_protocol_selection, setup, teardown),
        cmocka_unit_test_setup_teardown(test_invalid_requests, setup, teardown),
        cmocka_unit_test_setup_teardown(test_duplicate_join, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reentrant_callback, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cancel_new_member, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cancel_known_member, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cancel_sync, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cancel_queued_result, setup, teardown),
        cmocka_unit_test_setup_teardown(test_offsets_commit_fetch_restart, setup, teardown),
        cmocka_unit_test_setup_teardown(test_commit_checks_partitions, setup, teardown),
        cmocka_unit_test_setup_teardown(test_commit_catalog_failure, setup, teardown),
        cmocka_unit_test_setup_teardown(test_commit_durable, setup, teardown),
        cmocka_unit_test_setup_teardown(test_forget_topic, setup, teardown),
        cmocka_unit_test_setup_teardown(test_delete_group, setup, teardown),
        cmocka_unit_test_setup_teardown(test_describe_and_list, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
