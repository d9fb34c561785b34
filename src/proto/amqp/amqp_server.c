/*
 * amqp_server.c - AMQP 0-9-1 connections: listener, handshake (PLAIN and AMQPLAIN, tune,
 * vhost open), frame dispatch to channels, heartbeats, connection exceptions, and the memory
 * alarm that blocks publishing connections.
 *
 * Connection states follow amqp_int.h. Frames before connection.tune-ok may be at most
 * AMQP_FRAME_MIN_SIZE bytes (the pre-authentication cap); afterwards the negotiated frame_max.
 * After the server sends connection.close it ignores everything but close-ok, and closes the
 * socket when close-ok arrives or one second later.
 */
#include "proto/amqp/amqp_server.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/clock.h"
#include "base/table.h"
#include "base/tern.h"
#include "base/tlog.h"
#include "proto/amqp/amqp_int.h"

#define AMQP_CLOSE_GRACE_MS 1000
#define AMQP_ALARM_CHECK_MS 50

struct amqp_server {
    uv_loop_t *loop;
    struct vhost *vh;
    struct amqp_server_config cfg;
    struct net_listener *listener;
    struct amqp_conn *conns;
    size_t nconns; /* in the list (socket open) */
    size_t live;   /* allocated: freed only after their socket and timer closed */
    bool alarm;    /* memory high-water mark exceeded */
    uv_timer_t alarm_timer;
    uv_check_t confirm_check; /* sends coalesced publisher confirms */
    bool confirm_pending;
    bool stopping;
    int pending_closes; /* handles still closing during stop */
    void (*stop_cb)(void *arg);
    void *stop_arg;
};

static void conn_close_socket(struct amqp_conn *c);
static void server_maybe_done(struct amqp_server *s);
static void confirm_check_cb(uv_check_t *h);

int64_t amqp_conn_now_ms(const struct amqp_conn *c) { return c->now_ms; }

const struct amqp_server_config *amqp_conn_config(const struct amqp_conn *c)
{
    return &c->srv->cfg;
}

struct vhost *amqp_conn_vhost(const struct amqp_conn *c)
{
    return c->srv->vh;
}

/* ---- output ---------------------------------------------------------------------------- */

void amqp_send_method(struct amqp_conn *c, uint16_t ch, const struct amqp_method *m)
{
    if (c->state == AMQP_C_DEAD)
        return;
    amqp_frame_put_method(&c->out, ch, m);
}

void amqp_send_content(struct amqp_conn *c, uint16_t ch, const struct amqp_method *m,
                       const uint8_t *props, size_t props_len, const uint8_t *body, size_t len)
{
    if (c->state == AMQP_C_DEAD)
        return;
    amqp_frame_put_method(&c->out, ch, m);
    amqp_frame_put_header(&c->out, ch, AMQP_ID_CLASS(m->id), len, props, props_len);
    size_t chunk = c->frame_max - AMQP_FRAME_OVERHEAD;
    for (size_t off = 0; off < len; off += chunk)
        amqp_frame_put_body(&c->out, ch, body + off, len - off < chunk ? len - off : chunk);
}

void amqp_flush(struct amqp_conn *c)
{
    if (c->out.len == 0 || c->nc == NULL || c->state == AMQP_C_DEAD) {
        buf_clear(&c->out);
        return;
    }
    c->last_send_ms = (uint64_t)(clock_mono_ns() / 1000000);
    net_conn_write(c->nc, &c->out);
}

bool amqp_conn_writable(const struct amqp_conn *c)
{
    return c->nc != NULL && c->state == AMQP_C_RUNNING &&
           net_conn_pending(c->nc) + c->out.len < 4u << 20;
}

static void conn_close_method(struct amqp_conn *c, int code, uint32_t method_id, const char *text)
{
    struct amqp_method m = {.id = AMQP_CONNECTION_CLOSE};
    m.connection_close.reply_code = (uint16_t)code;
    m.connection_close.reply_text.p = (const uint8_t *)text;
    m.connection_close.reply_text.len = (uint32_t)strlen(text);
    m.connection_close.class_id = AMQP_ID_CLASS(method_id);
    m.connection_close.method_id = AMQP_ID_METHOD(method_id);
    amqp_send_method(c, 0, &m);
}

static void release_channels(struct amqp_conn *c)
{
    if (c->channels == NULL)
        return;
    for (uint32_t i = 1; i <= c->channel_max; i++) {
        if (c->channels[i] != NULL) {
            struct amqp_channel *ch = c->channels[i];
            c->channels[i] = NULL;
            amqp_channel_release(ch);
        }
    }
}

static void timer_start(struct amqp_conn *c, uint64_t ms, uv_timer_cb cb, uint64_t repeat);

static void close_grace_cb(uv_timer_t *t)
{
    struct amqp_conn *c = t->data;
    conn_close_socket(c);
}

void amqp_conn_error(struct amqp_conn *c, int code, uint32_t method_id, const char *fmt, ...)
{
    if (c->state == AMQP_C_CLOSING || c->state == AMQP_C_DEAD)
        return;
    char text[256], msg[300];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof(text), fmt, ap);
    va_end(ap);
    snprintf(msg, sizeof(msg), "%s - %s", amqp_reply_name(code), text);
    msg[255] = '\0';
    TLOG_INFO("amqp", "event=amqp_connection_error conn=%llu peer=%s code=%d text=\"%s\"",
              (unsigned long long)c->id, net_conn_peer(c->nc), code, msg);
    conn_close_method(c, code, method_id, msg);
    amqp_flush(c);
    c->state = AMQP_C_CLOSING;
    release_channels(c);
    timer_start(c, AMQP_CLOSE_GRACE_MS, close_grace_cb, 0);
}

/* ---- lifetime -------------------------------------------------------------------------- */

static void conn_timer_closed(uv_handle_t *h)
{
    struct amqp_conn *c = h->data;
    c->timer_live = false;
    amqp_conn_unref(c);
}

void amqp_conn_unref(struct amqp_conn *c)
{
    if (--c->refs > 0)
        return;
    struct amqp_server *s = c->srv;
    buf_fini(&c->out);
    free(c->channels);
    free(c);
    s->live--;
    server_maybe_done(s);
}

static void conn_close_socket(struct amqp_conn *c)
{
    if (c->nc != NULL)
        net_conn_close(c->nc);
}

static void on_close(void *ctx, struct net_conn *nc, int status)
{
    struct amqp_conn *c = ctx;
    (void)nc;
    (void)status; /* only logged at debug level */
    TLOG_DEBUG("amqp", "event=amqp_close conn=%llu status=%d", (unsigned long long)c->id, status);
    c->state = AMQP_C_DEAD;
    release_channels(c);
    vhost_connection_closed(c->srv->vh, c->id);
    c->nc = NULL;
    struct amqp_server *s = c->srv;
    if (c->prev)
        c->prev->next = c->next;
    else
        s->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    s->nconns--;
    uv_timer_stop(&c->timer);
    uv_close((uv_handle_t *)&c->timer, conn_timer_closed); /* holds a ref until closed */
    amqp_conn_unref(c);
}

/* ---- timers: handshake timeout and heartbeats ------------------------------------------- */

static void timer_start(struct amqp_conn *c, uint64_t ms, uv_timer_cb cb, uint64_t repeat)
{
    if (c->state == AMQP_C_DEAD)
        return;
    uv_timer_stop(&c->timer);
    uv_timer_start(&c->timer, cb, ms, repeat);
}

static void handshake_timeout_cb(uv_timer_t *t)
{
    struct amqp_conn *c = t->data;
    TLOG_INFO("amqp", "event=amqp_handshake_timeout conn=%llu peer=%s", (unsigned long long)c->id,
              net_conn_peer(c->nc));
    c->state = AMQP_C_DEAD;
    net_conn_abort(c->nc);
}

static void heartbeat_cb(uv_timer_t *t)
{
    struct amqp_conn *c = t->data;
    uint64_t now = (uint64_t)(clock_mono_ns() / 1000000), hb = c->heartbeat * 1000ULL;
    if (now - c->last_recv_ms > 2 * hb) {
        TLOG_INFO("amqp", "event=amqp_heartbeat_timeout conn=%llu peer=%s",
                  (unsigned long long)c->id, net_conn_peer(c->nc));
        c->state = AMQP_C_DEAD;
        release_channels(c);
        net_conn_abort(c->nc);
        return;
    }
    if (now - c->last_send_ms >= hb / 2) {
        amqp_frame_put_heartbeat(&c->out);
        amqp_flush(c);
    }
}

/* ---- handshake ------------------------------------------------------------------------- */

static void put_capabilities(struct table *caps)
{
    static const char *names[] = {
        "publisher_confirms",           "exchange_exchange_bindings", "basic.nack",
        "consumer_cancel_notify",       "connection.blocked",         "consumer_priorities",
        "authentication_failure_close", "per_consumer_qos",           "direct_reply_to",
    };
    for (size_t i = 0; i < TERN_ARRAY_LEN(names); i++)
        table_set_bool(caps, names[i], true);
}

static void send_start(struct amqp_conn *c)
{
    struct table *props = table_new(), *caps = table_new();
    put_capabilities(caps);
    table_set(props, "capabilities", (struct tval){.kind = TV_TABLE, .t = caps});
    table_set_str(props, "product", "tern");
    table_set_str(props, "version", TERN_VERSION);
    table_set_str(props, "platform", "C (libuv)");
    table_set_str(props, "cluster_name", "tern");
    table_set_str(props, "copyright", "the tern authors");
    table_set_str(props, "information", "https://github.com/tern (AMQP 0-9-1 and Kafka)");
    struct buf enc = BUF_INIT;
    table_encode(props, &enc);
    table_free(props);
    struct amqp_method m = {.id = AMQP_CONNECTION_START};
    m.connection_start.version_major = 0;
    m.connection_start.version_minor = 9;
    m.connection_start.server_properties = (struct amqp_str){enc.p, (uint32_t)enc.len};
    m.connection_start.mechanisms = amqp_wire_cstr("PLAIN AMQPLAIN");
    m.connection_start.locales = amqp_wire_cstr("en_US");
    amqp_send_method(c, 0, &m);
    buf_fini(&enc);
    c->state = AMQP_C_START_OK;
}

static bool cap_on(const struct table *caps, const char *name)
{
    const struct tval *v = caps ? table_get(caps, name) : NULL;
    return v && v->kind == TV_BOOL && v->b;
}

static void read_client_caps(struct amqp_conn *c, struct amqp_str props)
{
    struct table *t = NULL;
    if (props.len == 0 || table_decode(props.p, props.len, &t) < 0)
        return;
    const struct tval *v = table_get(t, "capabilities");
    const struct table *caps = v && v->kind == TV_TABLE ? v->t : NULL;
    c->cap_blocked = cap_on(caps, "connection.blocked");
    c->cap_cancel_notify = cap_on(caps, "consumer_cancel_notify");
    c->cap_auth_failure_close = cap_on(caps, "authentication_failure_close");
    table_free(t);
}

/* Extracts user and password from a PLAIN or AMQPLAIN response. Returns 0 or -1. */
static int sasl_credentials(struct amqp_str mech, struct amqp_str resp, char *user, char *pass)
{
    if (mech.len == 5 && memcmp(mech.p, "PLAIN", 5) == 0) {
        const uint8_t *z1 = memchr(resp.p, 0, resp.len);
        if (z1 == NULL)
            return -1;
        const uint8_t *u = z1 + 1, *end = resp.p + resp.len;
        const uint8_t *z2 = memchr(u, 0, (size_t)(end - u));
        if (z2 == NULL)
            return -1;
        if (memchr(z2 + 1, 0, (size_t)(end - z2 - 1)) != NULL)
            return -1; /* a third NUL: not authzid\0user\0pass */
        amqp_wire_str_copy(user, 256, (struct amqp_str){u, (uint32_t)(z2 - u)});
        amqp_wire_str_copy(pass, 256, (struct amqp_str){z2 + 1, (uint32_t)(end - z2 - 1)});
        return 0;
    }
    /* AMQPLAIN: a field table without its length prefix */
    struct buf b = BUF_INIT;
    buf_put_u32(&b, resp.len);
    buf_put(&b, resp.p, resp.len);
    struct table *t = NULL;
    int rc = table_decode(b.p, b.len, &t);
    buf_fini(&b);
    if (rc < 0)
        return -1;
    const char *s;
    uint32_t n;
    const struct tval *lv = table_get(t, "LOGIN"), *pv = table_get(t, "PASSWORD");
    rc = -1;
    if (lv && pv && tval_str(lv, &s, &n)) {
        amqp_wire_str_copy(user, 256, (struct amqp_str){(const uint8_t *)s, n});
        if (tval_str(pv, &s, &n)) {
            amqp_wire_str_copy(pass, 256, (struct amqp_str){(const uint8_t *)s, n});
            rc = 0;
        }
    }
    table_free(t);
    return rc;
}

static void refuse_login(struct amqp_conn *c, struct amqp_str mech, const char *why)
{
    TLOG_WARN("amqp", "event=amqp_auth_failed conn=%llu peer=%s user=\"%s\" reason=\"%s\"",
              (unsigned long long)c->id, net_conn_peer(c->nc), c->user, why);
    if (!c->cap_auth_failure_close) {
        c->state = AMQP_C_DEAD;
        net_conn_close(c->nc);
        return;
    }
    amqp_conn_error(c, AMQP_ACCESS_REFUSED, AMQP_CONNECTION_START_OK,
                    "Login was refused using authentication mechanism %.*s. For details see the "
                    "broker logfile.",
                    (int)mech.len, (const char *)mech.p);
}

static void on_start_ok(struct amqp_conn *c, const struct amqp_connection_start_ok *so)
{
    read_client_caps(c, so->client_properties);
    bool plain = so->mechanism.len == 5 && memcmp(so->mechanism.p, "PLAIN", 5) == 0;
    bool amqplain = so->mechanism.len == 8 && memcmp(so->mechanism.p, "AMQPLAIN", 8) == 0;
    if (!plain && !amqplain) {
        amqp_conn_error(c, AMQP_COMMAND_INVALID, AMQP_CONNECTION_START_OK,
                        "unknown authentication mechanism '%.*s'", (int)so->mechanism.len,
                        (const char *)so->mechanism.p);
        return;
    }
    char pass[256];
    if (sasl_credentials(so->mechanism, so->response, c->user, pass) < 0) {
        refuse_login(c, so->mechanism, "malformed response");
        return;
    }
    const struct amqp_server_config *cfg = &c->srv->cfg;
    if (strcmp(c->user, cfg->user) != 0 || strcmp(pass, cfg->pass) != 0) {
        refuse_login(c, so->mechanism, "wrong user or password");
        return;
    }
    if (strcmp(c->user, "guest") == 0 && !net_conn_peer_is_loopback(c->nc)) {
        refuse_login(c, so->mechanism, "user 'guest' can only connect via localhost");
        return;
    }
    struct amqp_method m = {.id = AMQP_CONNECTION_TUNE};
    m.connection_tune.channel_max = cfg->channel_max;
    m.connection_tune.frame_max = cfg->frame_max;
    m.connection_tune.heartbeat = cfg->heartbeat_s;
    amqp_send_method(c, 0, &m);
    c->state = AMQP_C_TUNE_OK;
}

static void on_tune_ok(struct amqp_conn *c, const struct amqp_connection_tune_ok *t)
{
    const struct amqp_server_config *cfg = &c->srv->cfg;
    uint32_t fm = t->frame_max ? t->frame_max : cfg->frame_max;
    uint32_t cm = t->channel_max ? t->channel_max : cfg->channel_max;
    if (fm < AMQP_FRAME_MIN_SIZE || fm > cfg->frame_max) {
        amqp_conn_error(c, AMQP_NOT_ALLOWED, AMQP_CONNECTION_TUNE_OK,
                        "negotiated frame_max = %u is %s than the %s allowed value (%u)", fm,
                        fm < AMQP_FRAME_MIN_SIZE ? "lower" : "higher",
                        fm < AMQP_FRAME_MIN_SIZE ? "minimum" : "maximum",
                        fm < AMQP_FRAME_MIN_SIZE ? AMQP_FRAME_MIN_SIZE : cfg->frame_max);
        return;
    }
    if (cm > cfg->channel_max) {
        amqp_conn_error(c, AMQP_NOT_ALLOWED, AMQP_CONNECTION_TUNE_OK,
                        "negotiated channel_max = %u is higher than the maximum allowed value "
                        "(%u)",
                        cm, cfg->channel_max);
        return;
    }
    c->frame_max = fm;
    c->channel_max = (uint16_t)cm;
    c->heartbeat = t->heartbeat;
    c->channels = tern_xcalloc((size_t)cm + 1, sizeof(*c->channels));
    c->state = AMQP_C_OPEN;
}

static void on_open(struct amqp_conn *c, const struct amqp_connection_open *o)
{
    const char *vh = vhost_name(c->srv->vh);
    if (o->virtual_host.len != strlen(vh) || memcmp(o->virtual_host.p, vh, strlen(vh)) != 0) {
        amqp_conn_error(c, AMQP_NOT_ALLOWED, AMQP_CONNECTION_OPEN, "vhost %.*s not found",
                        (int)o->virtual_host.len, (const char *)o->virtual_host.p);
        return;
    }
    uint32_t maxc = c->srv->cfg.max_connections;
    if (maxc > 0 && c->srv->nconns > maxc) {
        amqp_conn_error(c, AMQP_NOT_ALLOWED, AMQP_CONNECTION_OPEN,
                        "access to vhost '%s' refused for user '%s': connection limit (%u) is "
                        "reached",
                        vh, c->user, maxc);
        return;
    }
    struct amqp_method m = {.id = AMQP_CONNECTION_OPEN_OK};
    amqp_send_method(c, 0, &m);
    c->state = AMQP_C_RUNNING;
    uv_timer_stop(&c->timer);
    if (c->heartbeat > 0) {
        uint64_t period = c->heartbeat * 1000ULL / 2;
        timer_start(c, period, heartbeat_cb, period);
    }
    TLOG_INFO("amqp",
              "event=amqp_open conn=%llu peer=%s user=\"%s\" vhost=%s frame_max=%u "
              "channel_max=%u heartbeat=%u",
              (unsigned long long)c->id, net_conn_peer(c->nc), c->user, vh, c->frame_max,
              c->channel_max, c->heartbeat);
}

/* ---- frames on channel 0 ----------------------------------------------------------------- */

static void expect(struct amqp_conn *c, const struct amqp_method *m, uint32_t want)
{
    amqp_conn_error(c, AMQP_COMMAND_INVALID, m->id, "expected '%s', got '%s'",
                    amqp_method_name(want), amqp_method_name(m->id));
}

static void conn_method(struct amqp_conn *c, const struct amqp_method *m)
{
    if (c->state == AMQP_C_CLOSING) {
        if (m->id == AMQP_CONNECTION_CLOSE_OK || m->id == AMQP_CONNECTION_CLOSE)
            conn_close_socket(c);
        return;
    }
    switch (c->state) {
    case AMQP_C_START_OK:
        if (m->id != AMQP_CONNECTION_START_OK)
            return expect(c, m, AMQP_CONNECTION_START_OK);
        return on_start_ok(c, &m->connection_start_ok);
    case AMQP_C_TUNE_OK:
        if (m->id != AMQP_CONNECTION_TUNE_OK)
            return expect(c, m, AMQP_CONNECTION_TUNE_OK);
        return on_tune_ok(c, &m->connection_tune_ok);
    case AMQP_C_OPEN:
        if (m->id != AMQP_CONNECTION_OPEN)
            return expect(c, m, AMQP_CONNECTION_OPEN);
        return on_open(c, &m->connection_open);
    default:
        break;
    }
    switch (m->id) {
    case AMQP_CONNECTION_CLOSE: {
        struct amqp_method ok = {.id = AMQP_CONNECTION_CLOSE_OK};
        release_channels(c);
        amqp_send_method(c, 0, &ok);
        amqp_flush(c);
        c->state = AMQP_C_CLOSING;
        conn_close_socket(c);
        return;
    }
    case AMQP_CONNECTION_UPDATE_SECRET: {
        struct amqp_method ok = {.id = AMQP_CONNECTION_UPDATE_SECRET_OK};
        amqp_send_method(c, 0, &ok);
        return;
    }
    case AMQP_CONNECTION_BLOCKED:
    case AMQP_CONNECTION_UNBLOCKED:
        return; /* informational, from a client that relays them */
    default:
        amqp_conn_error(c, AMQP_COMMAND_INVALID, m->id, "method '%s' is not valid on channel 0",
                        amqp_method_name(m->id));
    }
}

static void channel_open(struct amqp_conn *c, uint16_t id, const struct amqp_method *m)
{
    if (m->id != AMQP_CHANNEL_OPEN) {
        amqp_conn_error(c, AMQP_CHANNEL_ERROR, m->id, "expected 'channel.open'");
        return;
    }
    if (id > c->channel_max) {
        amqp_conn_error(c, AMQP_NOT_ALLOWED, m->id,
                        "channel number %u exceeds the negotiated channel_max (%u)", id,
                        c->channel_max);
        return;
    }
    c->channels[id] = amqp_channel_new(c, id);
    c->refs++;
    struct amqp_method ok = {.id = AMQP_CHANNEL_OPEN_OK};
    amqp_send_method(c, id, &ok);
}

static void channel_frame(struct amqp_conn *c, const struct amqp_frame *f)
{
    struct amqp_channel *ch = f->channel <= c->channel_max ? c->channels[f->channel] : NULL;
    struct amqp_method m;
    if (f->type == AMQP_FRAME_METHOD) {
        int rc = amqp_method_decode(f->payload, f->size, &m);
        if (rc == TERN_ENOTSUP) {
            amqp_conn_error(c, AMQP_NOT_IMPLEMENTED, 0, "unknown method");
            return;
        }
        if (rc < 0) {
            amqp_conn_error(c, AMQP_SYNTAX_ERROR, 0, "malformed method frame on channel %u",
                            f->channel);
            return;
        }
        if (ch == NULL)
            return channel_open(c, f->channel, &m);
        if (m.id == AMQP_CHANNEL_OPEN && !amqp_channel_closing(ch)) {
            amqp_conn_error(c, AMQP_CHANNEL_ERROR, m.id, "second 'channel.open' seen");
            return;
        }
        if (amqp_channel_expects_content(ch) && !amqp_channel_closing(ch)) {
            amqp_conn_error(c, AMQP_UNEXPECTED_FRAME, m.id,
                            "expected content header for class 60, got non content header frame "
                            "instead");
            return;
        }
        amqp_channel_method(ch, &m);
        return;
    }
    if (ch == NULL) {
        amqp_conn_error(c, AMQP_CHANNEL_ERROR, 0, "expected 'channel.open' on channel %u",
                        f->channel);
        return;
    }
    if (f->type == AMQP_FRAME_HEADER)
        amqp_channel_header(ch, f->payload, f->size);
    else if (f->type == AMQP_FRAME_BODY)
        amqp_channel_body(ch, f->payload, f->size);
    else
        amqp_conn_error(c, AMQP_UNEXPECTED_FRAME, 0, "heartbeat frame on channel %u", f->channel);
}

static void conn_frame(struct amqp_conn *c, const struct amqp_frame *f)
{
    if (f->type == AMQP_FRAME_HEARTBEAT && f->channel == 0) {
        if (f->size != 0)
            amqp_conn_error(c, AMQP_FRAME_ERROR, 0, "heartbeat frame with a payload of %u bytes",
                            f->size);
        return;
    }
    if (f->channel != 0) {
        if (c->state != AMQP_C_RUNNING) {
            if (c->state != AMQP_C_CLOSING)
                amqp_conn_error(c, AMQP_COMMAND_INVALID, 0, "frame on channel %u before open",
                                f->channel);
            return;
        }
        channel_frame(c, f);
        return;
    }
    if (f->type != AMQP_FRAME_METHOD) {
        amqp_conn_error(c, AMQP_UNEXPECTED_FRAME, 0, "unexpected frame type %u on channel 0",
                        f->type);
        return;
    }
    struct amqp_method m;
    int rc = amqp_method_decode(f->payload, f->size, &m);
    if (rc == TERN_ENOTSUP)
        amqp_conn_error(c, AMQP_NOT_IMPLEMENTED, 0, "unknown method");
    else if (rc < 0)
        amqp_conn_error(c, AMQP_SYNTAX_ERROR, 0, "malformed method frame on channel 0");
    else
        conn_method(c, &m);
}

/* ---- input ----------------------------------------------------------------------------- */

static size_t read_header(struct amqp_conn *c, struct buf *in)
{
    int rc = amqp_protocol_header_check(in->p, in->len);
    if (rc == TERN_EAGAIN)
        return 0;
    if (rc < 0) {
        amqp_protocol_header_put(&c->out);
        amqp_flush(c);
        c->state = AMQP_C_DEAD;
        net_conn_close(c->nc);
        return in->len;
    }
    send_start(c);
    return (size_t)rc;
}

static void on_read(void *ctx, struct net_conn *nc, struct buf *in)
{
    struct amqp_conn *c = ctx;
    (void)nc;
    size_t used = 0;
    c->last_recv_ms = (uint64_t)(clock_mono_ns() / 1000000);
    c->now_ms = clock_wall_ms();
    c->refs++; /* channels may go away while we parse */
    if (c->state == AMQP_C_HEADER)
        used = read_header(c, in);
    while (c->state != AMQP_C_HEADER && c->state != AMQP_C_DEAD && used < in->len) {
        uint32_t fmax = c->state <= AMQP_C_TUNE_OK ? AMQP_FRAME_MIN_SIZE : c->frame_max;
        struct amqp_frame f;
        int rc = amqp_frame_parse(in->p + used, in->len - used, fmax, &f);
        if (rc == TERN_EAGAIN)
            break;
        if (rc < 0) {
            if (c->state == AMQP_C_CLOSING) {
                used = in->len;
                break;
            }
            amqp_conn_error(c, AMQP_FRAME_ERROR, 0,
                            rc == TERN_ETOOBIG ? "frame size exceeds frame_max %u"
                                               : "malformed frame (frame_max %u)",
                            fmax);
            used = in->len;
            break;
        }
        used += (size_t)rc;
        conn_frame(c, &f);
        if (c->paused)
            break; /* memory alarm: leave the rest in the buffer */
    }
    if (c->state == AMQP_C_DEAD || c->state == AMQP_C_CLOSING)
        used = in->len;
    buf_consume(in, used);
    amqp_flush(c);
    amqp_conn_unref(c);
}

static void on_drain(void *ctx, struct net_conn *nc)
{
    struct amqp_conn *c = ctx;
    (void)nc;
    if (c->state != AMQP_C_RUNNING || c->channels == NULL)
        return;
    for (uint32_t i = 1; i <= c->channel_max; i++)
        if (c->channels[i] != NULL)
            amqp_channel_kick(c->channels[i]);
}

static const struct net_conn_ops conn_ops = {on_read, on_close, on_drain};

static void on_accept(void *arg, struct net_conn *nc)
{
    struct amqp_server *s = arg;
    struct amqp_conn *c = tern_xcalloc(1, sizeof(*c));
    c->srv = s;
    c->nc = nc;
    c->id = net_conn_id(nc);
    c->state = AMQP_C_HEADER;
    c->frame_max = AMQP_FRAME_MIN_SIZE;
    c->refs = 2; /* socket + timer */
    buf_init(&c->out);
    uv_timer_init(s->loop, &c->timer);
    c->timer.data = c;
    c->timer_live = true;
    c->next = s->conns;
    if (c->next)
        c->next->prev = c;
    s->conns = c;
    s->nconns++;
    s->live++;
    if (s->stopping) {
        c->state = AMQP_C_DEAD;
        net_conn_start(nc, &conn_ops, c);
        net_conn_abort(nc);
        return;
    }
    uv_timer_start(&c->timer, handshake_timeout_cb, s->cfg.handshake_timeout_ms, 0);
    net_conn_start(nc, &conn_ops, c);
}

/* ---- memory alarm ---------------------------------------------------------------------- */

static void send_blocked(struct amqp_conn *c, bool blocked)
{
    if (!c->cap_blocked || c->state != AMQP_C_RUNNING || c->blocked_sent == blocked)
        return;
    struct amqp_method m = {.id = blocked ? AMQP_CONNECTION_BLOCKED : AMQP_CONNECTION_UNBLOCKED};
    if (blocked)
        m.connection_blocked.reason = amqp_wire_cstr("low on memory");
    amqp_send_method(c, 0, &m);
    amqp_flush(c);
    c->blocked_sent = blocked;
}

/* As RabbitMQ: only a connection that publishes is blocked (and told so); consumers and idle
 * connections are left alone. */
void amqp_conn_note_publish(struct amqp_conn *c)
{
    c->published = true;
    if (c->srv->alarm && !c->paused) {
        send_blocked(c, true);
        c->paused = true;
        net_conn_pause(c->nc);
    }
}

static void alarm_check(uv_timer_t *t)
{
    struct amqp_server *s = t->data;
    bool over = net_buffered_bytes() > s->cfg.memory_high_watermark;
    if (over == s->alarm)
        return;
    s->alarm = over;
    TLOG_WARN("amqp", "event=memory_alarm state=%s buffered=%zu high_watermark=%llu",
              over ? "set" : "cleared", net_buffered_bytes(),
              (unsigned long long)s->cfg.memory_high_watermark);
    for (struct amqp_conn *c = s->conns; c; c = c->next) {
        if (c->published)
            send_blocked(c, over);
        if (over && c->published && !c->paused && c->nc) {
            c->paused = true;
            net_conn_pause(c->nc);
        } else if (!over && c->paused && c->nc) {
            c->paused = false;
            net_conn_resume(c->nc);
        }
    }
}

struct amqp_channel *amqp_server_find_channel(struct amqp_server *s, uint64_t conn_id,
                                              unsigned chan)
{
    for (struct amqp_conn *c = s->conns; c; c = c->next) {
        if (c->id != conn_id)
            continue;
        if (c->state != AMQP_C_RUNNING || chan == 0 || chan > c->channel_max)
            return NULL;
        struct amqp_channel *ch = c->channels[chan];
        return ch && !amqp_channel_closing(ch) ? ch : NULL;
    }
    return NULL;
}

/* ---- coalesced confirms ---------------------------------------------------------------- */

void amqp_conn_confirm_later(struct amqp_conn *c)
{
    c->confirm_dirty = true;
    if (!c->srv->confirm_pending) {
        c->srv->confirm_pending = true;
        uv_check_start(&c->srv->confirm_check, confirm_check_cb);
    }
}

static void confirm_check_cb(uv_check_t *h)
{
    struct amqp_server *s = h->data;
    s->confirm_pending = false;
    uv_check_stop(h);
    for (struct amqp_conn *c = s->conns; c; c = c->next) {
        if (!c->confirm_dirty)
            continue;
        c->confirm_dirty = false;
        for (uint32_t i = 1; c->channels && i <= c->channel_max; i++)
            if (c->channels[i] != NULL)
                amqp_channel_confirm_flush(c->channels[i]);
        amqp_flush(c);
    }
}

/* ---- server ---------------------------------------------------------------------------- */

int amqp_server_start(uv_loop_t *loop, struct vhost *vh, const char *bind, uint16_t port,
                      const struct amqp_server_config *cfg, struct amqp_server **out)
{
    struct amqp_server *s = tern_xcalloc(1, sizeof(*s));
    s->loop = loop;
    s->vh = vh;
    s->cfg = *cfg;
    int rc = net_listen(loop, bind, port, on_accept, s, &s->listener);
    if (rc < 0) {
        free(s);
        return rc;
    }
    uv_timer_init(loop, &s->alarm_timer);
    s->alarm_timer.data = s;
    uv_timer_start(&s->alarm_timer, alarm_check, AMQP_ALARM_CHECK_MS, AMQP_ALARM_CHECK_MS);
    uv_check_init(loop, &s->confirm_check);
    s->confirm_check.data = s;
    *out = s;
    return 0;
}

uint16_t amqp_server_port(const struct amqp_server *s)
{
    return net_listener_port(s->listener);
}

static void server_maybe_done(struct amqp_server *s)
{
    if (!s->stopping || s->live > 0 || s->pending_closes > 0)
        return;
    void (*cb)(void *) = s->stop_cb;
    void *arg = s->stop_arg;
    s->stopping = false; /* once */
    free(s);
    if (cb)
        cb(arg);
}

static void server_handle_closed(void *arg)
{
    struct amqp_server *s = arg;
    s->pending_closes--;
    server_maybe_done(s);
}

static void alarm_timer_closed(uv_handle_t *h)
{
    server_handle_closed(h->data);
}

void amqp_server_stop(struct amqp_server *s, void (*cb)(void *arg), void *arg)
{
    s->stopping = true;
    s->stop_cb = cb;
    s->stop_arg = arg;
    s->pending_closes = 3;
    net_listener_close(s->listener, server_handle_closed, s);
    uv_timer_stop(&s->alarm_timer);
    uv_close((uv_handle_t *)&s->alarm_timer, alarm_timer_closed);
    uv_check_stop(&s->confirm_check);
    uv_close((uv_handle_t *)&s->confirm_check, alarm_timer_closed);
    for (struct amqp_conn *c = s->conns; c; c = c->next) {
        if (c->state == AMQP_C_RUNNING)
            amqp_conn_error(c, AMQP_CONNECTION_FORCED, 0,
                            "broker forced connection closure with reason 'shutdown'");
        c->state = AMQP_C_DEAD;
        release_channels(c);
        if (c->nc)
            net_conn_close(c->nc);
    }
}
