/*
 * kafka_server.c - the Kafka listener: connections, framing, request dispatch, responses in
 * request order, ApiVersions, SASL PLAIN and FindCoordinator (see kafka_int.h for ordering and
 * lifetimes).
 *
 * Bad input: a frame over the size cap, a malformed header or body, an unknown API or an
 * unsupported version of anything but ApiVersions closes that connection (as Kafka does); the
 * broker is never affected. ApiVersions at an unsupported version is answered as v0 with
 * UNSUPPORTED_VERSION and only its own entry (KIP-511), so clients can fall back.
 */
#include "proto/kafka/kafka_server.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "base/tern.h"
#include "base/tlog.h"
#include "broker/group.h"
#include "broker/stream.h"
#include "proto/kafka/kafka_int.h"

#define MAX_INFLIGHT 128      /* requests queued per connection before reading pauses */
#define ARENA_CAP (64u << 20) /* decoded arrays of one request */

/* ---- slots and replies ------------------------------------------------------------------ */

static struct kafka_slot *slot_push(struct kafka_conn *c, const struct kafka_wire_req_hdr *h)
{
    struct kafka_slot *s = tern_xcalloc(1, sizeof(*s));
    s->c = c;
    s->corr = h->correlation_id;
    s->api = h->api_key;
    s->version = h->api_version;
    if (c->tail)
        c->tail->next = s;
    else
        c->head = s;
    c->tail = s;
    c->nslots++;
    return s;
}

static void slot_free(struct kafka_slot *s)
{
    if (s->pending && s->cancel)
        s->cancel(s);
    kafka_files_unref(s->files);
    buf_fini(&s->out);
    free(s);
}

struct kafka_files *kafka_files_new(void)
{
    struct kafka_files *f = tern_xmalloc(sizeof(*f));
    f->refs = 1;
    f->n = f->ngaps = 0;
    return f;
}

void kafka_files_unref(struct kafka_files *f)
{
    if (!f || --f->refs > 0)
        return;
    for (int i = 0; i < f->n; i++)
        log_slice_release(&f->slice[i]);
    free(f);
}

static void files_sent(void *arg)
{
    kafka_files_unref(arg);
}

/* Copies out[from, to) of a frame into the connection's output. */
static void write_piece(struct kafka_conn *c, const struct buf *out, size_t from, size_t to)
{
    struct buf b = BUF_INIT;
    if (to > from) {
        buf_put(&b, out->p + from, to - from);
        net_conn_write(c->nc, &b);
    }
}

/* Writes a frame with gaps: its encoded pieces, and between them the slices that fill each
 * gap, as file ranges (encode_frame checked that whole slices fill every gap). */
static void write_with_files(struct kafka_conn *c, struct kafka_slot *s)
{
    struct kafka_files *f = s->files;
    size_t from = 0;
    int k = 0;
    for (int g = 0; g < f->ngaps; g++) {
        write_piece(c, &s->out, from, f->gap[g].at);
        from = f->gap[g].at;
        for (size_t left = f->gap[g].len; left; k++) {
            const struct log_slice *sl = &f->slice[k];
            f->refs++;
            net_conn_write_file(c->nc, sl->fd, sl->pos, sl->len, files_sent, f);
            left -= sl->len;
        }
    }
    write_piece(c, &s->out, from, s->out.len);
}

void kafka_flush(struct kafka_conn *c)
{
    while (c->head && c->head->ready) {
        struct kafka_slot *s = c->head;
        c->head = s->next;
        if (!c->head)
            c->tail = NULL;
        c->nslots--;
        if (!s->noreply && c->nc && !c->closing) {
            if (s->files)
                write_with_files(c, s);
            else
                net_conn_write(c->nc, &s->out);
        }
        slot_free(s);
    }
    if (c->paused && c->nslots < MAX_INFLIGHT / 2 && c->nc && !c->closing) {
        c->paused = false;
        net_conn_resume(c->nc);
    }
}

/* The bytes of files' slices when whole slices fill each of its gaps in order, else -1. */
static int64_t files_fill(const struct kafka_files *f)
{
    int64_t total = 0;
    int k = 0;
    for (int g = 0; g < f->ngaps; g++) {
        size_t left = f->gap[g].len;
        while (left && k < f->n && f->slice[k].len <= left)
            left -= f->slice[k++].len;
        if (left)
            return -1;
        total += (int64_t)f->gap[g].len;
    }
    return k == f->n ? total : -1;
}

/* Encodes a response frame: size, header, body (with gaps that files fills, if any). */
static int encode_frame(struct kafka_slot *s, const void *resp, struct kafka_files *files)
{
    struct kafka_wire_wr w;
    int64_t filled = 0;
    buf_clear(&s->out);
    buf_put_u32(&s->out, 0);
    kafka_wire_resp_hdr_encode(s->api, s->version, s->corr, &s->out);
    kafka_wire_wr_init(&w, &s->out);
    if (files)
        kafka_wire_wr_gaps(&w, files->gap, KAFKA_FILES_MAX);
    kafka_msg_response_write(s->api, s->version, resp, &w);
    int rc = kafka_wire_wr_end(&w);
    if (files) {
        files->ngaps = w.ngaps;
        filled = rc == 0 ? files_fill(files) : 0;
        if (filled < 0)
            rc = TERN_EPROTO; /* a bug in the caller: gaps and slices do not match */
    }
    if (rc == 0 && s->out.len - 4 + (uint64_t)filled > INT32_MAX)
        rc = TERN_EPROTO;
    if (rc == 0)
        buf_patch_u32(&s->out, 0, (uint32_t)(s->out.len - 4 + (uint64_t)filled));
    return rc;
}

/* A response that did not encode (a bug in tern): logged, and the slot goes without one while
 * the connection closes. The caller still marks the slot ready. */
static void encode_failed(struct kafka_slot *s, int rc)
{
    TLOG_ERROR("kafka", "event=response_encode_failed api=%s version=%d error=\"%s\"",
               kafka_msg_api_name(s->api), s->version, tern_strerror(rc));
    s->noreply = true;
    kafka_conn_close(s->c, "response encoding failed");
}

void kafka_ready(struct kafka_slot *s)
{
    s->ready = true;
    kafka_flush(s->c);
}

int kafka_encode(struct kafka_slot *s, const void *resp)
{
    int rc = encode_frame(s, resp, NULL);
    if (rc < 0) {
        encode_failed(s, rc);
        kafka_ready(s);
    }
    return rc;
}

void kafka_reply(struct kafka_slot *s, const void *resp)
{
    kafka_reply_files(s, resp, NULL);
}

void kafka_reply_files(struct kafka_slot *s, const void *resp, struct kafka_files *files)
{
    int rc = encode_frame(s, resp, files);
    kafka_files_unref(s->files);
    s->files = rc == 0 && files && files->ngaps ? files : NULL;
    if (files && !s->files)
        kafka_files_unref(files);
    if (rc < 0)
        encode_failed(s, rc);
    kafka_ready(s);
}

void kafka_reply_none(struct kafka_slot *s)
{
    s->ready = true;
    s->noreply = true;
    kafka_flush(s->c);
}

void *kafka_alloc(struct kafka_req *r, size_t count, size_t size)
{
    if (count == 0)
        return NULL;
    void *p = arena_alloc(r->ra, count, size);
    TERN_ASSERT(p != NULL); /* the response arena has no cap */
    return p;
}

char *kafka_cstr(struct kafka_req *r, struct kafka_str s)
{
    size_t n = s.len > 0 ? (size_t)s.len : 0;
    char *p = arena_alloc(r->ra, n + 1, 1);
    TERN_ASSERT(p != NULL);
    if (n)
        memcpy(p, s.p, n);
    p[n] = '\0';
    return p;
}

struct kafka_str kafka_str_dup(struct kafka_req *r, const char *s)
{
    struct kafka_str src = kafka_str_c(s ? s : "");
    return (struct kafka_str){(const uint8_t *)kafka_cstr(r, src), src.len};
}

int16_t kafka_stream_error(const struct stream_err *err)
{
    switch (err->kind) {
    case STREAM_OK:
        return KERR_NONE;
    case STREAM_ENOTFOUND:
        return KERR_UNKNOWN_TOPIC_OR_PARTITION;
    case STREAM_EEXISTS:
        return KERR_TOPIC_ALREADY_EXISTS;
    case STREAM_EINVALID_NAME:
        return KERR_INVALID_TOPIC_EXCEPTION;
    case STREAM_EINVALID_PARTS:
        return KERR_INVALID_PARTITIONS;
    case STREAM_EINVALID_CONFIG:
        return KERR_INVALID_CONFIG;
    case STREAM_ECORRUPT:
        return KERR_CORRUPT_MESSAGE;
    case STREAM_EMULTI_BATCH:
        return KERR_INVALID_RECORD; /* Produce v3+: exactly one batch per partition */
    case STREAM_ETOO_LARGE:
        return KERR_MESSAGE_TOO_LARGE;
    case STREAM_EOUT_OF_ORDER:
        return KERR_OUT_OF_ORDER_SEQUENCE_NUMBER;
    case STREAM_EINVALID_EPOCH:
        return KERR_INVALID_PRODUCER_EPOCH;
    case STREAM_ESTORAGE:
        return KERR_KAFKA_STORAGE_ERROR;
    }
    return KERR_UNKNOWN_SERVER_ERROR;
}

/* ---- ApiVersions, SASL, FindCoordinator -------------------------------------------------- */

static void api_versions(struct kafka_req *r, bool supported)
{
    struct kafka_api_versions_response resp = {.finalized_features_epoch = -1};
    if (!supported) {
        /* KIP-511: v0 body, only our own entry, so the client can pick a version it has */
        const struct kafka_msg_api *a = kafka_msg_api_lookup(KAFKA_API_API_VERSIONS);
        struct kafka_api_versions_response_api_key *k = kafka_alloc(r, 1, sizeof(*k));
        *k = (struct kafka_api_versions_response_api_key){a->key, a->min_version, a->max_version};
        resp.error_code = KERR_UNSUPPORTED_VERSION;
        resp.api_keys.n = 1;
        resp.api_keys.v = k;
        r->slot->version = 0;
        kafka_reply(r->slot, &resp);
        return;
    }
    struct kafka_api_versions_response_api_key *k = kafka_alloc(r, KAFKA_MSG_API_COUNT, sizeof(*k));
    for (int i = 0; i < KAFKA_MSG_API_COUNT; i++)
        k[i] = (struct kafka_api_versions_response_api_key){
            kafka_msg_apis[i].key, kafka_msg_apis[i].min_version, kafka_msg_apis[i].max_version};
    resp.api_keys.n = KAFKA_MSG_API_COUNT;
    resp.api_keys.v = k;
    kafka_reply(r->slot, &resp);
}

static void sasl_handshake(struct kafka_req *r, const struct kafka_sasl_handshake_request *m)
{
    static const struct kafka_str plain = {(const uint8_t *)"PLAIN", 5};
    struct kafka_sasl_handshake_response resp = {.mechanisms = {1, (struct kafka_str *)&plain}};
    if (r->c->authed) {
        /* a listener without --kafka-sasl, or authentication done: Kafka answers the same */
        resp.error_code = KERR_ILLEGAL_SASL_STATE;
    } else if (kafka_str_eq(m->mechanism, plain)) {
        r->c->sasl_handshaken = true;
        r->c->sasl_raw = r->version == 0;
    } else
        resp.error_code = KERR_UNSUPPORTED_SASL_MECHANISM;
    kafka_reply(r->slot, &resp);
}

/* Checks a PLAIN token: [authzid] NUL authcid NUL passwd. */
static bool plain_ok(const struct kafka_server *s, const uint8_t *p, size_t n)
{
    const uint8_t *z1 = memchr(p, 0, n);
    if (!z1)
        return false;
    const uint8_t *user = z1 + 1;
    size_t rest = n - (size_t)(user - p);
    const uint8_t *z2 = memchr(user, 0, rest);
    if (!z2)
        return false;
    size_t ulen = (size_t)(z2 - user), plen = rest - ulen - 1;
    return ulen == strlen(s->user) && memcmp(user, s->user, ulen) == 0 && plen == strlen(s->pass) &&
           memcmp(z2 + 1, s->pass, plen) == 0;
}

static void sasl_authenticate(struct kafka_req *r, const struct kafka_sasl_authenticate_request *m)
{
    struct kafka_conn *c = r->c;
    struct kafka_sasl_authenticate_response resp = {.error_message = KAFKA_STR_NULL,
                                                    .auth_bytes = {(const uint8_t *)"", 0}};
    if (!c->sasl_handshaken || c->authed) {
        resp.error_code = KERR_ILLEGAL_SASL_STATE;
        resp.error_message = kafka_str_c("SaslAuthenticate before SaslHandshake");
    } else if (m->auth_bytes.len < 0 ||
               !plain_ok(c->srv, m->auth_bytes.p, (size_t)m->auth_bytes.len)) {
        resp.error_code = KERR_SASL_AUTHENTICATION_FAILED;
        resp.error_message = kafka_str_c("Authentication failed: Invalid username or password");
        TLOG_WARN("kafka", "event=auth_failed conn=%" PRIu64 " peer=%s", net_conn_id(c->nc),
                  net_conn_peer(c->nc));
    } else {
        c->authed = true;
    }
    kafka_reply(r->slot, &resp);
    if (resp.error_code == KERR_SASL_AUTHENTICATION_FAILED)
        kafka_conn_close(c, "authentication failed");
}

/*
 * After SaslHandshake v0 the client sends the PLAIN token bare, in a size-prefixed frame with
 * no request header (kafka-python does). The answer is the server's empty token, a zero size;
 * v0 has no error field, so a wrong token closes the connection, as Kafka does. (A connection
 * that needs no authentication never gets here: its handshake is refused.) Returns false when
 * the connection must close.
 */
static bool sasl_raw_token(struct kafka_conn *c, const uint8_t *p, size_t n)
{
    c->sasl_raw = false;
    if (!plain_ok(c->srv, p, n)) {
        TLOG_WARN("kafka", "event=auth_failed conn=%" PRIu64 " peer=%s", net_conn_id(c->nc),
                  net_conn_peer(c->nc));
        return false;
    }
    c->authed = true;
    struct kafka_wire_req_hdr h = {.api_key = KAFKA_API_SASL_HANDSHAKE};
    struct kafka_slot *s = slot_push(c, &h);
    buf_put_u32(&s->out, 0);
    kafka_ready(s);
    return true;
}

static void find_coordinator(struct kafka_req *r, const struct kafka_find_coordinator_request *m)
{
    (void)m;
    struct kafka_server *s = r->c->srv;
    struct kafka_find_coordinator_response resp = {
        .error_message = KAFKA_STR_NULL,
        .node_id = s->cfg.node_id,
        .host = kafka_str_c(s->advertised_host),
        .port = s->cfg.advertised_port,
    };
    kafka_reply(r->slot, &resp);
}

/* ---- dispatch ---------------------------------------------------------------------------- */

static bool allowed_before_auth(int16_t api)
{
    return api == KAFKA_API_API_VERSIONS || api == KAFKA_API_SASL_HANDSHAKE ||
           api == KAFKA_API_SASL_AUTHENTICATE;
}

static void dispatch(struct kafka_req *r, const void *m)
{
    switch (r->api) {
    case KAFKA_API_API_VERSIONS:
        api_versions(r, true);
        break;
    case KAFKA_API_SASL_HANDSHAKE:
        sasl_handshake(r, m);
        break;
    case KAFKA_API_SASL_AUTHENTICATE:
        sasl_authenticate(r, m);
        break;
    case KAFKA_API_FIND_COORDINATOR:
        find_coordinator(r, m);
        break;
    case KAFKA_API_METADATA:
        kafka_handle_metadata(r, m);
        break;
    case KAFKA_API_CREATE_TOPICS:
        kafka_handle_create_topics(r, m);
        break;
    case KAFKA_API_DELETE_TOPICS:
        kafka_handle_delete_topics(r, m);
        break;
    case KAFKA_API_CREATE_PARTITIONS:
        kafka_handle_create_partitions(r, m);
        break;
    case KAFKA_API_DESCRIBE_CONFIGS:
        kafka_handle_describe_configs(r, m);
        break;
    case KAFKA_API_ALTER_CONFIGS:
        kafka_handle_alter_configs(r, m);
        break;
    case KAFKA_API_PRODUCE:
        kafka_handle_produce(r, m);
        break;
    case KAFKA_API_FETCH:
        kafka_handle_fetch(r, m);
        break;
    case KAFKA_API_LIST_OFFSETS:
        kafka_handle_list_offsets(r, m);
        break;
    case KAFKA_API_DELETE_RECORDS:
        kafka_handle_delete_records(r, m);
        break;
    case KAFKA_API_OFFSET_FOR_LEADER_EPOCH:
        kafka_handle_offset_for_leader_epoch(r, m);
        break;
    case KAFKA_API_INIT_PRODUCER_ID:
        kafka_handle_init_producer_id(r, m);
        break;
    default:
        if (!kafka_handle_group(r, m))
            kafka_conn_close(r->c, "no handler for this API");
        break;
    }
}

/* One whole request frame payload p[0..n). Returns false when the connection must close. */
static bool handle_frame(struct kafka_conn *c, uint8_t *p, size_t n)
{
    struct kafka_wire_req_hdr h;
    int hl = kafka_wire_req_hdr_decode(p, n, &h);
    if (hl < 0) {
        TLOG_WARN("kafka", "event=bad_request conn=%" PRIu64 " api_key=%d reason=\"%s\"",
                  net_conn_id(c->nc), n >= 2 ? h.api_key : -1,
                  hl == TERN_ENOTSUP ? "unknown api key" : "malformed request header");
        return false;
    }
    struct kafka_slot *slot = slot_push(c, &h);
    struct kafka_req r = {c, slot, &c->rarena, h.api_key, h.api_version, p + hl, n - (size_t)hl};
    if (c->client_id[0] == '\0' && h.client_id.len > 0)
        snprintf(c->client_id, sizeof(c->client_id), "%.*s", (int)h.client_id.len,
                 (const char *)h.client_id.p);
    arena_reset(&c->arena);
    arena_reset(&c->rarena);
    bool supported = kafka_msg_supported(h.api_key, h.api_version);
    if (h.api_key == KAFKA_API_API_VERSIONS && !supported) {
        api_versions(&r, false);
        return true;
    }
    if (!supported) {
        TLOG_WARN("kafka", "event=unsupported_version conn=%" PRIu64 " api=%s version=%d",
                  net_conn_id(c->nc), kafka_msg_api_name(h.api_key), h.api_version);
        return false;
    }
    if (c->srv->cfg.sasl_required && !c->authed && !allowed_before_auth(h.api_key)) {
        TLOG_WARN("kafka", "event=unauthenticated_request conn=%" PRIu64 " api=%s",
                  net_conn_id(c->nc), kafka_msg_api_name(h.api_key));
        return false;
    }
    union kafka_msg_request m;
    int rc = kafka_msg_request_decode(h.api_key, h.api_version, r.body, r.len, &c->arena, &m);
    if (rc < 0) {
        TLOG_WARN("kafka", "event=bad_request conn=%" PRIu64 " api=%s version=%d reason=\"%s\"",
                  net_conn_id(c->nc), kafka_msg_api_name(h.api_key), h.api_version,
                  tern_strerror(rc));
        return false;
    }
    dispatch(&r, &m);
    return true;
}

static uint32_t request_cap(const struct kafka_conn *c)
{
    const struct kafka_server_config *cfg = &c->srv->cfg;
    return cfg->sasl_required && !c->authed ? cfg->max_request_unauth : cfg->max_request_bytes;
}

static void on_read(void *ctx, struct net_conn *nc, struct buf *in)
{
    struct kafka_conn *c = ctx;
    (void)nc;
    size_t used = 0;
    while (!c->closing && used < in->len) {
        int n = kafka_wire_frame(in->p + used, in->len - used, (int32_t)request_cap(c));
        if (n == TERN_EAGAIN)
            break;
        if (n < 0) {
            TLOG_WARN("kafka", "event=bad_frame conn=%" PRIu64 " reason=\"%s\" cap=%u",
                      net_conn_id(c->nc),
                      n == TERN_ETOOBIG ? "request larger than the cap" : "negative size",
                      request_cap(c));
            kafka_conn_close(c, "bad frame");
            break;
        }
        uint8_t *frame = in->p + used + 4;
        if (c->sasl_raw ? !sasl_raw_token(c, frame, (size_t)n)
                        : !handle_frame(c, frame, (size_t)n)) {
            kafka_conn_close(c, "bad request");
            break;
        }
        used += 4 + (size_t)n;
        if (c->nslots >= MAX_INFLIGHT && !c->closing) {
            c->paused = true;
            net_conn_pause(c->nc);
            break;
        }
    }
    buf_consume(in, c->closing ? in->len : used);
}

/* ---- connections ------------------------------------------------------------------------- */

static void conn_free(struct kafka_conn *c)
{
    while (c->head) {
        struct kafka_slot *s = c->head;
        c->head = s->next;
        slot_free(s);
    }
    arena_fini(&c->arena);
    arena_fini(&c->rarena);
    free(c);
}

static void maybe_stopped(struct kafka_server *s);

static void on_close(void *ctx, struct net_conn *nc, int status)
{
    struct kafka_conn *c = ctx;
    (void)nc;
    (void)status;
    struct kafka_server *s = c->srv;
    if (c->prev)
        c->prev->next = c->next;
    else
        s->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    c->nc = NULL;
    c->closing = true;
    group_conn_closed(s->groups, c); /* join/sync callbacks of this connection never fire */
    conn_free(c);
    maybe_stopped(s);
}

void kafka_conn_close(struct kafka_conn *c, const char *why)
{
    (void)why; /* only in debug builds' log line */
    if (c->closing || !c->nc)
        return;
    TLOG_DEBUG("kafka", "event=conn_close conn=%" PRIu64 " reason=\"%s\"", net_conn_id(c->nc), why);
    c->closing = true;
    net_conn_close(c->nc);
}

static const struct net_conn_ops conn_ops = {on_read, on_close, NULL};

static void on_accept(void *arg, struct net_conn *nc)
{
    struct kafka_server *s = arg;
    if (s->stopping) {
        net_conn_abort(nc);
        return;
    }
    struct kafka_conn *c = tern_xcalloc(1, sizeof(*c));
    c->srv = s;
    c->nc = nc;
    c->authed = !s->cfg.sasl_required;
    arena_init(&c->arena, ARENA_CAP);
    arena_init(&c->rarena, SIZE_MAX);
    c->next = s->conns;
    if (s->conns)
        s->conns->prev = c;
    s->conns = c;
    net_conn_start(nc, &conn_ops, c);
}

/* ---- server ------------------------------------------------------------------------------ */

static void server_free(struct kafka_server *s)
{
    free(s->advertised_host);
    free(s->user);
    free(s->pass);
    free(s->cluster_id);
    free(s);
}

int kafka_server_start(uv_loop_t *loop, struct stream_mgr *streams, struct group_mgr *groups,
                       struct catalog *cat, const char *host, uint16_t port,
                       const struct kafka_server_config *cfg, struct kafka_server **out)
{
    struct kafka_server *s = tern_xcalloc(1, sizeof(*s));
    s->loop = loop;
    s->streams = streams;
    s->groups = groups;
    s->cat = cat;
    s->cfg = *cfg;
    s->advertised_host = tern_xstrdup(cfg->advertised_host ? cfg->advertised_host : host);
    s->user = tern_xstrdup(cfg->user ? cfg->user : "guest");
    s->pass = tern_xstrdup(cfg->pass ? cfg->pass : "guest");
    s->cluster_id = tern_xstrdup(cfg->cluster_id ? cfg->cluster_id : "tern-cluster");
    if (!s->cfg.max_request_bytes)
        s->cfg.max_request_bytes = 104857600;
    if (!s->cfg.max_request_unauth)
        s->cfg.max_request_unauth = 65536;
    int rc = net_listen(loop, host, port, on_accept, s, &s->lis);
    if (rc < 0) {
        server_free(s);
        return rc;
    }
    s->port = net_listener_port(s->lis);
    if (!s->cfg.advertised_port)
        s->cfg.advertised_port = s->port; /* what Metadata and FindCoordinator tell clients */
    *out = s;
    return 0;
}

uint16_t kafka_server_port(const struct kafka_server *s)
{
    return s->port;
}

static void maybe_stopped(struct kafka_server *s)
{
    if (!s->stopping || s->conns || s->lis)
        return;
    void (*cb)(void *) = s->stop_cb;
    void *arg = s->stop_arg;
    server_free(s);
    if (cb)
        cb(arg);
}

static void on_listener_closed(void *arg)
{
    struct kafka_server *s = arg;
    s->lis = NULL;
    maybe_stopped(s);
}

void kafka_server_stop(struct kafka_server *s, void (*cb)(void *arg), void *arg)
{
    s->stopping = true;
    s->stop_cb = cb;
    s->stop_arg = arg;
    for (struct kafka_conn *c = s->conns; c; c = c->next)
        kafka_conn_close(c, "server stopping");
    net_listener_close(s->lis, on_listener_closed, s);
}
