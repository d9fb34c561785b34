/*
 * amqp_channel.c - AMQP 0-9-1 channels: exchange, queue, basic, confirm and tx methods,
 * translated into broker/vhost calls.
 *
 * Delivery tags count from 1 per channel; the unacked list is kept in tag order, so `multiple`
 * settles a prefix and a closing channel requeues in tag order (the queue puts requeued
 * messages back lowest offset first). Publisher confirms are sent in sequence order: a publish
 * is confirmed once every queue it reached has made it durable (group commit), and the
 * confirmed prefix goes out as one ack with `multiple` set. A transactional channel buffers
 * publishes and acks until tx.commit, and answers commit-ok once the committed messages are on
 * disk.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/clock.h"
#include "base/table.h"
#include "base/tern.h"
#include "base/tlog.h"
#include "proto/amqp/amqp_int.h"

struct consumer {
    struct amqp_channel *ch;
    char tag[256];
    struct vhost_queue *vq;
    struct vhost_consumer *vc;
    bool no_ack;
    uint16_t prefetch; /* 0: unlimited */
    uint32_t unacked;
    struct consumer *next;
};

struct unacked {
    uint64_t tag;
    struct vhost_queue *vq; /* NULL once settled */
    int64_t offset;
    struct consumer *c; /* NULL for basic.get or a cancelled consumer */
};

enum txkind { TX_PUBLISH, TX_ACK, TX_NACK, TX_REJECT };

struct txop {
    enum txkind kind;
    uint64_t tag;
    bool multiple, requeue, mandatory;
    struct buf data; /* publish: exchange \0 rk \0, props, body */
    size_t props_off, props_len, body_off;
};

/* A publish waiting for the queues it reached to make it durable. */
struct pub {
    struct amqp_channel *ch;
    uint64_t seq; /* confirm sequence number, 0 for a tx commit */
    int remaining;
    int status;
};

enum { CQ_PENDING, CQ_OK, CQ_FAIL };

struct amqp_channel {
    struct amqp_conn *c;
    uint16_t id;
    int refs;
    bool released, closing;
    /* content being received */
    int content; /* 0 none, 1 header expected, 2 body expected */
    char exchange[256], rk[256];
    size_t exchange_len, rk_len;
    bool mandatory;
    struct buf props, body;
    struct amqp_props pr; /* props decoded: points into the props buffer */
    uint64_t body_size;
    /* confirms */
    bool confirm;
    bool confirm_dirty;
    uint64_t pub_seq;
    uint8_t *cq; /* state of seq cq_base + i */
    size_t cq_len, cq_cap;
    uint64_t cq_base;
    /* transactions */
    bool tx;
    struct txop *txops;
    size_t ntx, txcap;
    struct pub *commit; /* a commit waiting for fsyncs */
    /* delivery */
    uint64_t next_tag;
    struct unacked *ua;
    size_t ua_head, ua_len, ua_cap;
    uint32_t unacked_n;
    struct consumer *consumers;
    uint16_t prefetch, global_prefetch;
    char last_queue[256];
    struct amqp_reply_state reply;
};

struct amqp_reply_state *amqp_channel_reply(struct amqp_channel *ch)
{
    return &ch->reply;
}
struct amqp_conn *amqp_channel_conn(const struct amqp_channel *ch)
{
    return ch->c;
}
uint16_t amqp_channel_id(const struct amqp_channel *ch)
{
    return ch->id;
}
uint64_t amqp_channel_take_tag(struct amqp_channel *ch)
{
    return ch->next_tag++;
}

static void channel_unref(struct amqp_channel *ch);

bool amqp_channel_closing(const struct amqp_channel *ch)
{
    return ch->closing;
}
bool amqp_channel_expects_content(const struct amqp_channel *ch)
{
    return ch->content != 0;
}

struct amqp_channel *amqp_channel_new(struct amqp_conn *c, uint16_t id)
{
    struct amqp_channel *ch = tern_xcalloc(1, sizeof(*ch));
    ch->c = c;
    ch->id = id;
    ch->refs = 1;
    ch->next_tag = 1;
    ch->pub_seq = 0;
    ch->cq_base = 1;
    buf_init(&ch->props);
    buf_init(&ch->body);
    return ch;
}

/* ---- errors ---------------------------------------------------------------------------- */

static void teardown(struct amqp_channel *ch);

void amqp_channel_error(struct amqp_channel *ch, int code, uint32_t method_id, const char *fmt, ...)
{
    if (ch->closing || ch->released)
        return;
    char text[256], msg[300];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof(text), fmt, ap);
    va_end(ap);
    snprintf(msg, sizeof(msg), "%s - %s", amqp_reply_name(code), text);
    msg[255] = '\0';
    TLOG_DEBUG("amqp", "event=amqp_channel_error conn=%llu channel=%u code=%d text=\"%s\"",
               (unsigned long long)ch->c->id, ch->id, code, msg);
    struct amqp_method m = {.id = AMQP_CHANNEL_CLOSE};
    m.channel_close.reply_code = (uint16_t)code;
    m.channel_close.reply_text = amqp_wire_cstr(msg);
    m.channel_close.class_id = AMQP_ID_CLASS(method_id);
    m.channel_close.method_id = AMQP_ID_METHOD(method_id);
    amqp_send_method(ch->c, ch->id, &m);
    ch->closing = true;
    teardown(ch);
}

/* Maps a vhost error: soft ones close the channel, the rest the connection. */
static void vhost_error(struct amqp_channel *ch, uint32_t method_id, const struct vhost_err *e)
{
    switch (e->kind) {
    case VHOST_EACCESS:
        return amqp_channel_error(ch, AMQP_ACCESS_REFUSED, method_id, "%s", e->text);
    case VHOST_ENOTFOUND:
        return amqp_channel_error(ch, AMQP_NOT_FOUND, method_id, "%s", e->text);
    case VHOST_ELOCKED:
        return amqp_channel_error(ch, AMQP_RESOURCE_LOCKED, method_id, "%s", e->text);
    case VHOST_EPRECONDITION:
        return amqp_channel_error(ch, AMQP_PRECONDITION_FAILED, method_id, "%s", e->text);
    case VHOST_EINVALID:
        if (method_id == AMQP_EXCHANGE_DECLARE)
            return amqp_conn_error(ch->c, AMQP_COMMAND_INVALID, method_id, "%s", e->text);
        return amqp_channel_error(ch, AMQP_PRECONDITION_FAILED, method_id, "%s", e->text);
    case VHOST_EINTERNAL:
        return amqp_conn_error(ch->c, AMQP_INTERNAL_ERROR, method_id, "%s", e->text);
    }
}

/* Decodes an arguments table; raises 502 and returns -1 when it is malformed. */
static int args_decode(struct amqp_channel *ch, uint32_t method_id, struct amqp_str s,
                       struct table **out)
{
    *out = NULL;
    if (s.len == 0)
        return 0;
    if (table_decode(s.p, s.len, out) < 0) {
        amqp_conn_error(ch->c, AMQP_SYNTAX_ERROR, method_id, "malformed arguments table");
        return -1;
    }
    return 0;
}

static void reply(struct amqp_channel *ch, uint32_t id)
{
    struct amqp_method m = {.id = id};
    amqp_send_method(ch->c, ch->id, &m);
}

/* ---- confirms -------------------------------------------------------------------------- */

static void send_ack(struct amqp_channel *ch, bool nack, uint64_t tag, bool multiple)
{
    struct amqp_method m = {.id = nack ? AMQP_BASIC_NACK : AMQP_BASIC_ACK};
    if (nack) {
        m.basic_nack.delivery_tag = tag;
        m.basic_nack.multiple = multiple;
        m.basic_nack.requeue = false;
    } else {
        m.basic_ack.delivery_tag = tag;
        m.basic_ack.multiple = multiple;
    }
    amqp_send_method(ch->c, ch->id, &m);
}

/* Sends confirms for the settled prefix of the confirm queue: runs of acks as one `multiple`
 * ack, failures as single nacks. */
static void confirm_advance(struct amqp_channel *ch)
{
    size_t i = 0, run = 0;
    while (i < ch->cq_len && ch->cq[i] != CQ_PENDING) {
        uint64_t seq = ch->cq_base + i;
        if (ch->cq[i] == CQ_OK) {
            run++;
        } else {
            if (run)
                send_ack(ch, false, seq - 1, run > 1);
            run = 0;
            send_ack(ch, true, seq, false);
        }
        i++;
    }
    if (run)
        send_ack(ch, false, ch->cq_base + i - 1, run > 1);
    if (i == 0)
        return;
    memmove(ch->cq, ch->cq + i, ch->cq_len - i);
    ch->cq_len -= i;
    ch->cq_base += i;
    amqp_flush(ch->c);
}

static void confirm_push(struct amqp_channel *ch)
{
    if (ch->cq_len == ch->cq_cap) {
        ch->cq_cap = ch->cq_cap ? ch->cq_cap * 2 : 64;
        ch->cq = tern_xrealloc(ch->cq, ch->cq_cap);
    }
    ch->cq[ch->cq_len++] = CQ_PENDING;
}

static void confirm_settle(struct amqp_channel *ch, uint64_t seq, int status)
{
    if (seq < ch->cq_base || seq - ch->cq_base >= ch->cq_len)
        return;
    ch->cq[seq - ch->cq_base] = status == 0 ? CQ_OK : CQ_FAIL;
    if (!ch->confirm_dirty) {
        ch->confirm_dirty = true;
        amqp_conn_confirm_later(ch->c);
    }
}

void amqp_channel_confirm_flush(struct amqp_channel *ch)
{
    if (!ch->confirm_dirty)
        return;
    ch->confirm_dirty = false;
    if (!ch->released && !ch->closing)
        confirm_advance(ch);
}

static void commit_done(struct amqp_channel *ch, int status);

static void pub_finish(struct pub *p)
{
    struct amqp_channel *ch = p->ch;
    if (!ch->released && !ch->closing) {
        if (p->seq)
            confirm_settle(ch, p->seq, p->status);
        else
            commit_done(ch, p->status);
    }
    channel_unref(ch);
    free(p);
}

static void pub_durable(void *arg, int status)
{
    struct pub *p = arg;
    if (status != 0 && p->status == 0)
        p->status = status;
    if (--p->remaining == 0)
        pub_finish(p);
}

static struct pub *pub_new(struct amqp_channel *ch, uint64_t seq)
{
    struct pub *p = tern_xcalloc(1, sizeof(*p));
    p->ch = ch;
    p->seq = seq;
    p->remaining = 1; /* held by the publisher until routing is done */
    ch->refs++;
    return p;
}

/* ---- publishing ------------------------------------------------------------------------ */

static void send_return(struct amqp_channel *ch, const struct msg *m)
{
    struct amqp_method r = {.id = AMQP_BASIC_RETURN};
    r.basic_return.reply_code = AMQP_NO_ROUTE;
    r.basic_return.reply_text = amqp_wire_cstr("NO_ROUTE");
    r.basic_return.exchange =
        (struct amqp_str){(const uint8_t *)m->exchange, (uint32_t)m->exchange_len};
    r.basic_return.routing_key = (struct amqp_str){(const uint8_t *)m->rk, (uint32_t)m->rk_len};
    amqp_send_content(ch->c, ch->id, &r, m->props, m->props_len, m->body, m->body_len);
}

/* The decoded message headers when some exchange routes on them, else NULL. */
static struct table *msg_headers(struct amqp_channel *ch, const struct amqp_props *pr)
{
    struct table *t = NULL;
    if (!(pr->flags & AMQP_P_HEADERS) || !vhost_has_headers_exchange(amqp_conn_vhost(ch->c)))
        return NULL;
    if (table_decode(pr->headers.p, pr->headers.len, &t) < 0)
        return NULL;
    return t;
}

static int route_vhost(struct amqp_channel *ch, const struct msg *m, const struct amqp_props *pr,
                       bool mandatory, struct pub *p)
{
    struct vhost_err err;
    struct table *headers = msg_headers(ch, pr);
    int waits = 0;
    int n =
        vhost_publish(amqp_conn_vhost(ch->c), m, headers, p ? pub_durable : NULL, p, &waits, &err);
    table_free(headers);
    if (n < 0) {
        vhost_error(ch, AMQP_BASIC_PUBLISH, &err);
        return -1;
    }
    if (p)
        p->remaining += waits;
    if (n == 0 && mandatory)
        send_return(ch, m);
    return n;
}

/* Routes one complete message whose properties pr were decoded from mp->props (once per
 * publish: the hot path). p (may be NULL) collects durability waits. Returns the number of
 * queues reached, or -1 after raising an error. */
static int route(struct amqp_channel *ch, const struct msg *mp, const struct amqp_props *pr,
                 bool mandatory, struct pub *p)
{
    struct msg rewritten = *mp;
    const struct msg *m = mp;
    struct buf props = BUF_INIT;
    if (amqp_reply_route(ch, mp))
        return 1;
    int rw = amqp_reply_rewrite(ch, pr, &props);
    if (rw < 0)
        return -1;
    if (rw > 0) {
        rewritten.props = props.p;
        rewritten.props_len = props.len;
        m = &rewritten;
    }
    int n = route_vhost(ch, m, pr, mandatory, p);
    buf_fini(&props);
    return n;
}

/* Decodes the properties of a message (checked when its content header arrived). */
static void props_of(const uint8_t *props, size_t len, struct amqp_props *pr)
{
    if (amqp_props_decode(props, len, pr) < 0)
        memset(pr, 0, sizeof(*pr));
}

static bool props_persistent(const struct amqp_props *pr)
{
    return (pr->flags & AMQP_P_DELIVERY_MODE) && pr->delivery_mode == 2;
}

static void tx_buffer_publish(struct amqp_channel *ch, const struct msg *m);

static void publish_complete(struct amqp_channel *ch)
{
    const struct amqp_props *pr = &ch->pr;
    struct msg m = {
        .exchange = ch->exchange,
        .exchange_len = ch->exchange_len,
        .rk = ch->rk,
        .rk_len = ch->rk_len,
        .props = ch->props.p,
        .props_len = ch->props.len,
        .body = ch->body.p,
        .body_len = ch->body.len,
        .persistent = props_persistent(pr),
        .timestamp_ms = amqp_conn_now_ms(ch->c),
    };
    ch->content = 0;
    amqp_conn_note_publish(ch->c);
    if (ch->tx) {
        tx_buffer_publish(ch, &m);
    } else if (ch->confirm) {
        uint64_t seq = ++ch->pub_seq;
        confirm_push(ch);
        struct pub *p = pub_new(ch, seq);
        if (route(ch, &m, pr, ch->mandatory, p) < 0)
            p->status = TERN_ECLOSED;
        pub_durable(p, 0); /* drop the publisher's hold */
    } else {
        route(ch, &m, pr, ch->mandatory, NULL);
    }
    buf_clear(&ch->props);
    buf_clear(&ch->body);
}

static void on_publish(struct amqp_channel *ch, const struct amqp_basic_publish *bp)
{
    if (bp->immediate) {
        amqp_conn_error(ch->c, AMQP_NOT_IMPLEMENTED, AMQP_BASIC_PUBLISH, "immediate=true");
        return;
    }
    amqp_wire_str_copy(ch->exchange, sizeof(ch->exchange), bp->exchange);
    amqp_wire_str_copy(ch->rk, sizeof(ch->rk), bp->routing_key);
    ch->exchange_len = strlen(ch->exchange);
    ch->rk_len = strlen(ch->rk);
    struct vhost_err err;
    if (vhost_publish_check(amqp_conn_vhost(ch->c), ch->exchange, &err) < 0) {
        vhost_error(ch, AMQP_BASIC_PUBLISH, &err);
        /* the content frames that follow are still read and dropped */
        ch->content = 1;
        return;
    }
    ch->mandatory = bp->mandatory;
    ch->content = 1;
}

/* Copies a publish's properties and decodes them once, from the copy (ch->pr points into it). */
static int props_take(struct amqp_channel *ch, const uint8_t *props, size_t len)
{
    buf_clear(&ch->props);
    buf_put(&ch->props, props, len);
    return amqp_props_decode(ch->props.p, ch->props.len, &ch->pr);
}

void amqp_channel_header(struct amqp_channel *ch, const uint8_t *p, size_t n)
{
    uint16_t class_id;
    uint64_t size;
    const uint8_t *props;
    size_t plen;
    if (ch->content != 1) {
        if (!ch->closing)
            amqp_conn_error(ch->c, AMQP_UNEXPECTED_FRAME, 0,
                            "expected method frame, got non method frame instead");
        return;
    }
    if (amqp_header_split(p, n, &class_id, &size, &props, &plen) < 0 ||
        props_take(ch, props, plen) < 0) {
        amqp_conn_error(ch->c, AMQP_SYNTAX_ERROR, AMQP_BASIC_PUBLISH, "malformed content header");
        return;
    }
    if (class_id != 60) {
        amqp_conn_error(ch->c, AMQP_UNEXPECTED_FRAME, AMQP_BASIC_PUBLISH,
                        "content header for class %u does not match basic.publish (class 60)",
                        class_id);
        return;
    }
    if (ch->closing) { /* publish to a missing exchange: swallow the content */
        ch->body_size = size;
        ch->content = size ? 2 : 0;
        buf_clear(&ch->body);
        return;
    }
    uint64_t max = amqp_conn_config(ch->c)->max_message_size;
    if (size > max) {
        amqp_channel_error(ch, AMQP_PRECONDITION_FAILED, AMQP_BASIC_PUBLISH,
                           "message size %llu is larger than configured max size %llu",
                           (unsigned long long)size, (unsigned long long)max);
        ch->body_size = size;
        ch->content = size ? 2 : 0;
        return;
    }
    buf_clear(&ch->body);
    ch->body_size = size;
    ch->content = 2;
    if (size == 0)
        publish_complete(ch);
}

void amqp_channel_body(struct amqp_channel *ch, const uint8_t *p, size_t n)
{
    if (ch->content != 2) {
        if (!ch->closing)
            amqp_conn_error(ch->c, AMQP_UNEXPECTED_FRAME, 0,
                            "expected method frame, got non method frame instead");
        return;
    }
    if (ch->closing) {
        ch->body_size -= n < ch->body_size ? n : ch->body_size;
        if (ch->body_size == 0)
            ch->content = 0;
        return;
    }
    if (ch->body.len + n > ch->body_size) {
        amqp_conn_error(ch->c, AMQP_UNEXPECTED_FRAME, AMQP_BASIC_PUBLISH,
                        "content body larger than the size its header announced");
        return;
    }
    buf_put(&ch->body, p, n);
    if (ch->body.len == ch->body_size)
        publish_complete(ch);
}

/* ---- transactions ---------------------------------------------------------------------- */

static struct txop *tx_push(struct amqp_channel *ch, enum txkind kind)
{
    if (ch->ntx == ch->txcap) {
        ch->txcap = ch->txcap ? ch->txcap * 2 : 16;
        ch->txops = tern_xrealloc(ch->txops, ch->txcap * sizeof(*ch->txops));
    }
    struct txop *op = &ch->txops[ch->ntx++];
    memset(op, 0, sizeof(*op));
    op->kind = kind;
    buf_init(&op->data);
    return op;
}

static void tx_buffer_publish(struct amqp_channel *ch, const struct msg *m)
{
    struct txop *op = tx_push(ch, TX_PUBLISH);
    op->mandatory = ch->mandatory;
    buf_put(&op->data, m->exchange, m->exchange_len + 1);
    buf_put(&op->data, m->rk, m->rk_len + 1);
    op->props_off = buf_put(&op->data, m->props, m->props_len);
    op->props_len = m->props_len;
    op->body_off = buf_put(&op->data, m->body, m->body_len);
}

static void tx_clear(struct amqp_channel *ch)
{
    for (size_t i = 0; i < ch->ntx; i++)
        buf_fini(&ch->txops[i].data);
    ch->ntx = 0;
}

static int settle(struct amqp_channel *ch, uint32_t method, uint64_t tag, bool multiple, bool ack,
                  bool requeue);

static void commit_done(struct amqp_channel *ch, int status)
{
    ch->commit = NULL;
    if (status != 0) {
        amqp_channel_error(ch, AMQP_INTERNAL_ERROR, AMQP_TX_COMMIT,
                           "commit failed to reach disk: %s", tern_strerror(status));
        return;
    }
    reply(ch, AMQP_TX_COMMIT_OK);
    amqp_flush(ch->c);
}

static void tx_commit(struct amqp_channel *ch)
{
    struct pub *p = pub_new(ch, 0);
    ch->commit = p;
    for (size_t i = 0; i < ch->ntx && !ch->closing; i++) {
        struct txop *op = &ch->txops[i];
        if (op->kind != TX_PUBLISH) {
            settle(ch, AMQP_TX_COMMIT, op->tag, op->multiple, op->kind == TX_ACK, op->requeue);
            continue;
        }
        struct amqp_props pr;
        props_of(op->data.p + op->props_off, op->props_len, &pr);
        const char *ex = (const char *)op->data.p;
        const char *rk = ex + strlen(ex) + 1;
        struct msg m = {
            .exchange = ex,
            .exchange_len = strlen(ex),
            .rk = rk,
            .rk_len = strlen(rk),
            .props = op->data.p + op->props_off,
            .props_len = op->props_len,
            .body = op->data.p + op->body_off,
            .body_len = op->data.len - op->body_off,
            .persistent = props_persistent(&pr),
            .timestamp_ms = clock_wall_ms(),
        };
        route(ch, &m, &pr, op->mandatory, p);
    }
    tx_clear(ch);
    pub_durable(p, 0);
}

/* ---- delivery -------------------------------------------------------------------------- */

static bool can_take(void *ctx)
{
    struct consumer *c = ctx;
    struct amqp_channel *ch = c->ch;
    if (ch->released || ch->closing || !amqp_conn_writable(ch->c))
        return false;
    if (c->no_ack)
        return true;
    if (c->prefetch && c->unacked >= c->prefetch)
        return false;
    return !ch->global_prefetch || ch->unacked_n < ch->global_prefetch;
}

static uint64_t track(struct amqp_channel *ch, struct vhost_queue *vq, int64_t offset,
                      struct consumer *c)
{
    if (ch->ua_head + ch->ua_len == ch->ua_cap) {
        if (ch->ua_head > ch->ua_cap / 2) {
            memmove(ch->ua, ch->ua + ch->ua_head, ch->ua_len * sizeof(*ch->ua));
            ch->ua_head = 0;
        } else {
            ch->ua_cap = ch->ua_cap ? ch->ua_cap * 2 : 64;
            ch->ua = tern_xrealloc(ch->ua, ch->ua_cap * sizeof(*ch->ua));
        }
    }
    uint64_t tag = ch->next_tag++;
    ch->ua[ch->ua_head + ch->ua_len++] = (struct unacked){tag, vq, offset, c};
    vhost_queue_ref(vq);
    ch->unacked_n++;
    if (c)
        c->unacked++;
    return tag;
}

static void deliver(void *ctx, struct queue *q, int64_t offset, const struct msg *m,
                    bool redelivered)
{
    struct consumer *c = ctx;
    struct amqp_channel *ch = c->ch;
    uint64_t tag;
    if (c->no_ack) {
        tag = ch->next_tag++;
        queue_ack(q, offset);
    } else {
        tag = track(ch, c->vq, offset, c);
    }
    struct amqp_method d = {.id = AMQP_BASIC_DELIVER};
    d.basic_deliver.consumer_tag = amqp_wire_cstr(c->tag);
    d.basic_deliver.delivery_tag = tag;
    d.basic_deliver.redelivered = redelivered;
    d.basic_deliver.exchange =
        (struct amqp_str){(const uint8_t *)m->exchange, (uint32_t)m->exchange_len};
    d.basic_deliver.routing_key = (struct amqp_str){(const uint8_t *)m->rk, (uint32_t)m->rk_len};
    amqp_send_content(ch->c, ch->id, &d, m->props, m->props_len, m->body, m->body_len);
    amqp_flush(ch->c);
}

static const struct queue_consumer_ops consumer_ops = {can_take, deliver};

static void consumer_unlink(struct amqp_channel *ch, struct consumer *c)
{
    for (struct consumer **pp = &ch->consumers; *pp; pp = &(*pp)->next) {
        if (*pp == c) {
            *pp = c->next;
            break;
        }
    }
    for (size_t i = 0; i < ch->ua_len; i++)
        if (ch->ua[ch->ua_head + i].c == c)
            ch->ua[ch->ua_head + i].c = NULL;
    vhost_queue_unref(c->vq);
    free(c);
}

static void consumer_cancelled(void *ctx)
{
    struct consumer *c = ctx;
    struct amqp_channel *ch = c->ch;
    if (ch->c->cap_cancel_notify && !ch->closing) {
        struct amqp_method m = {.id = AMQP_BASIC_CANCEL};
        m.basic_cancel.consumer_tag = amqp_wire_cstr(c->tag);
        m.basic_cancel.nowait = true;
        amqp_send_method(ch->c, ch->id, &m);
        amqp_flush(ch->c);
    }
    consumer_unlink(ch, c);
}

static struct consumer *find_consumer(struct amqp_channel *ch, const char *tag)
{
    for (struct consumer *c = ch->consumers; c; c = c->next)
        if (strcmp(c->tag, tag) == 0)
            return c;
    return NULL;
}

static void random_suffix(char *out, size_t n)
{
    static const char a[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    uint8_t r[32];
    tern_random(r, sizeof(r));
    for (size_t i = 0; i < n && i < sizeof(r); i++)
        out[i] = a[r[i] & 63];
    out[n] = '\0';
}

/* "" names the channel's last declared queue. Returns -1 after raising 404. */
static int queue_name(struct amqp_channel *ch, uint32_t method, struct amqp_str s, char out[256])
{
    amqp_wire_str_copy(out, 256, s);
    if (out[0] != '\0')
        return 0;
    if (ch->last_queue[0] == '\0') {
        amqp_channel_error(ch, AMQP_NOT_FOUND, method, "no previously declared queue");
        return -1;
    }
    strcpy(out, ch->last_queue);
    return 0;
}

static void on_consume(struct amqp_channel *ch, const struct amqp_basic_consume *bc)
{
    char qname[256], tag[256];
    struct vhost_queue *vq;
    struct vhost_err err;
    struct vhost *vh = amqp_conn_vhost(ch->c);
    if (queue_name(ch, AMQP_BASIC_CONSUME, bc->queue, qname) < 0)
        return;
    amqp_wire_str_copy(tag, sizeof(tag), bc->consumer_tag);
    if (tag[0] == '\0') {
        strcpy(tag, "amq.ctag-");
        random_suffix(tag + 9, 22);
    } else if (find_consumer(ch, tag) || (ch->reply.on && strcmp(ch->reply.tag, tag) == 0)) {
        amqp_conn_error(ch->c, AMQP_NOT_ALLOWED, AMQP_BASIC_CONSUME,
                        "attempt to reuse consumer tag '%s'", tag);
        return;
    }
    if (amqp_reply_queue(qname))
        return amqp_reply_consume(ch, tag, bc->no_ack, bc->nowait);
    if (vhost_queue_get(vh, qname, ch->c->id, &vq, &err) < 0)
        return vhost_error(ch, AMQP_BASIC_CONSUME, &err);
    struct consumer *c = tern_xcalloc(1, sizeof(*c));
    c->ch = ch;
    strcpy(c->tag, tag);
    c->vq = vq;
    c->no_ack = bc->no_ack;
    c->prefetch = ch->prefetch;
    vhost_queue_ref(vq);
    c->next = ch->consumers;
    ch->consumers = c;
    if (!bc->nowait) { /* consume-ok goes out before the first delivery */
        struct amqp_method ok = {.id = AMQP_BASIC_CONSUME_OK};
        ok.basic_consume_ok.consumer_tag = amqp_wire_cstr(tag);
        amqp_send_method(ch->c, ch->id, &ok);
    }
    if (vhost_consume(vh, vq, bc->exclusive, &consumer_ops, consumer_cancelled, c, &c->vc, &err) <
        0) {
        ch->consumers = c->next;
        vhost_queue_unref(vq);
        free(c);
        return vhost_error(ch, AMQP_BASIC_CONSUME, &err);
    }
}

static void cancel_consumer(struct amqp_channel *ch, struct consumer *c)
{
    struct vhost_consumer *vc = c->vc;
    struct vhost_queue *vq = c->vq;
    vhost_queue_ref(vq);
    consumer_unlink(ch, c);
    vhost_cancel(amqp_conn_vhost(ch->c), vc);
    vhost_queue_unref(vq);
}

static void on_cancel(struct amqp_channel *ch, const struct amqp_basic_cancel *bc)
{
    char tag[256];
    amqp_wire_str_copy(tag, sizeof(tag), bc->consumer_tag);
    struct consumer *c = find_consumer(ch, tag);
    if (c)
        cancel_consumer(ch, c);
    else
        amqp_reply_cancel(ch, tag);
    if (!bc->nowait) {
        struct amqp_method ok = {.id = AMQP_BASIC_CANCEL_OK};
        ok.basic_cancel_ok.consumer_tag = bc->consumer_tag;
        amqp_send_method(ch->c, ch->id, &ok);
    }
}

static void on_get(struct amqp_channel *ch, const struct amqp_basic_get *bg)
{
    char qname[256];
    struct vhost_queue *vq;
    struct vhost_err err;
    if (queue_name(ch, AMQP_BASIC_GET, bg->queue, qname) < 0)
        return;
    if (vhost_queue_get(amqp_conn_vhost(ch->c), qname, ch->c->id, &vq, &err) < 0)
        return vhost_error(ch, AMQP_BASIC_GET, &err);
    struct queue *q = vhost_queue_q(vq);
    struct msg m;
    int64_t offset;
    bool redelivered;
    int rc = queue_get(q, &m, &offset, &redelivered);
    if (rc < 0) {
        amqp_conn_error(ch->c, AMQP_INTERNAL_ERROR, AMQP_BASIC_GET, "queue read failed: %s",
                        tern_strerror(rc));
        return;
    }
    if (rc == 0) {
        struct amqp_method e = {.id = AMQP_BASIC_GET_EMPTY};
        amqp_send_method(ch->c, ch->id, &e);
        return;
    }
    struct amqp_method g = {.id = AMQP_BASIC_GET_OK};
    if (bg->no_ack) {
        g.basic_get_ok.delivery_tag = ch->next_tag++;
    } else {
        g.basic_get_ok.delivery_tag = track(ch, vq, offset, NULL);
    }
    g.basic_get_ok.redelivered = redelivered;
    g.basic_get_ok.exchange =
        (struct amqp_str){(const uint8_t *)m.exchange, (uint32_t)m.exchange_len};
    g.basic_get_ok.routing_key = (struct amqp_str){(const uint8_t *)m.rk, (uint32_t)m.rk_len};
    g.basic_get_ok.message_count = (uint32_t)queue_ready_count(q);
    amqp_send_content(ch->c, ch->id, &g, m.props, m.props_len, m.body, m.body_len);
    if (bg->no_ack)
        queue_ack(q, offset);
}

/* ---- acknowledgements ------------------------------------------------------------------ */

static void settle_one(struct amqp_channel *ch, struct unacked *u, bool ack, bool requeue)
{
    struct queue *q = vhost_queue_q(u->vq);
    if (q != NULL) {
        if (ack || !requeue)
            queue_ack(q, u->offset); /* reject without requeue drops the message */
        else
            queue_requeue(q, u->offset);
        queue_kick(q);
    }
    if (u->c)
        u->c->unacked--;
    ch->unacked_n--;
    vhost_queue_unref(u->vq);
    u->vq = NULL;
}

static void ua_compact(struct amqp_channel *ch)
{
    while (ch->ua_len > 0 && ch->ua[ch->ua_head].vq == NULL) {
        ch->ua_head++;
        ch->ua_len--;
    }
    if (ch->ua_len == 0)
        ch->ua_head = 0;
}

static struct unacked *ua_find(struct amqp_channel *ch, uint64_t tag)
{
    size_t lo = 0, hi = ch->ua_len;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (ch->ua[ch->ua_head + mid].tag < tag)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo < ch->ua_len && ch->ua[ch->ua_head + lo].tag == tag &&
        ch->ua[ch->ua_head + lo].vq != NULL)
        return &ch->ua[ch->ua_head + lo];
    return NULL;
}

/* ack / nack / reject of tag (0 with multiple: everything). Returns -1 after an error. */
static int settle(struct amqp_channel *ch, uint32_t method, uint64_t tag, bool multiple, bool ack,
                  bool requeue)
{
    if (multiple) {
        if (tag != 0 && ua_find(ch, tag) == NULL) {
            amqp_channel_error(ch, AMQP_PRECONDITION_FAILED, method, "unknown delivery tag %llu",
                               (unsigned long long)tag);
            return -1;
        }
        for (size_t i = 0; i < ch->ua_len; i++) {
            struct unacked *u = &ch->ua[ch->ua_head + i];
            if (tag != 0 && u->tag > tag)
                break;
            if (u->vq)
                settle_one(ch, u, ack, requeue);
        }
    } else {
        struct unacked *u = ua_find(ch, tag);
        if (u == NULL) {
            amqp_channel_error(ch, AMQP_PRECONDITION_FAILED, method, "unknown delivery tag %llu",
                               (unsigned long long)tag);
            return -1;
        }
        settle_one(ch, u, ack, requeue);
    }
    ua_compact(ch);
    return 0;
}

static void on_settle(struct amqp_channel *ch, uint32_t method, uint64_t tag, bool multiple,
                      bool ack, bool requeue)
{
    if (ch->tx) {
        /* validated now, applied at commit */
        if ((tag != 0 || !multiple) && ua_find(ch, tag) == NULL) {
            amqp_channel_error(ch, AMQP_PRECONDITION_FAILED, method, "unknown delivery tag %llu",
                               (unsigned long long)tag);
            return;
        }
        struct txop *op = tx_push(ch, ack ? TX_ACK : TX_NACK);
        op->tag = tag;
        op->multiple = multiple;
        op->requeue = requeue;
        return;
    }
    settle(ch, method, tag, multiple, ack, requeue);
}

static void requeue_all(struct amqp_channel *ch)
{
    for (size_t i = 0; i < ch->ua_len; i++) {
        struct unacked *u = &ch->ua[ch->ua_head + i];
        if (u->vq)
            settle_one(ch, u, false, true);
    }
    ch->ua_len = ch->ua_head = 0;
}

void amqp_channel_kick(struct amqp_channel *ch)
{
    for (struct consumer *c = ch->consumers; c; c = c->next) {
        struct queue *q = vhost_queue_q(c->vq);
        if (q)
            queue_kick(q);
    }
}

/* ---- exchange and queue methods ------------------------------------------------------------ */

static void on_exchange_declare(struct amqp_channel *ch, const struct amqp_exchange_declare *d)
{
    char name[256], type[256];
    struct table *args;
    struct vhost_err err;
    amqp_wire_str_copy(name, sizeof(name), d->exchange);
    amqp_wire_str_copy(type, sizeof(type), d->type);
    if (args_decode(ch, AMQP_EXCHANGE_DECLARE, d->arguments, &args) < 0)
        return;
    struct vhost_exchange_decl decl = {
        .name = name,
        .type = type[0] ? type : "direct",
        .passive = d->passive,
        .durable = d->durable,
        .auto_delete = d->auto_delete,
        .internal = d->internal,
        .args = args,
    };
    int rc = vhost_exchange_declare(amqp_conn_vhost(ch->c), &decl, &err);
    table_free(args);
    if (rc < 0)
        return vhost_error(ch, AMQP_EXCHANGE_DECLARE, &err);
    if (!d->nowait)
        reply(ch, AMQP_EXCHANGE_DECLARE_OK);
}

static void on_exchange_delete(struct amqp_channel *ch, const struct amqp_exchange_delete *d)
{
    char name[256];
    struct vhost_err err;
    amqp_wire_str_copy(name, sizeof(name), d->exchange);
    if (vhost_exchange_delete(amqp_conn_vhost(ch->c), name, d->if_unused, &err) < 0)
        return vhost_error(ch, AMQP_EXCHANGE_DELETE, &err);
    if (!d->nowait)
        reply(ch, AMQP_EXCHANGE_DELETE_OK);
}

static void exchange_bind(struct amqp_channel *ch, uint32_t method, struct amqp_str dst,
                          struct amqp_str src, struct amqp_str key, struct amqp_str args_s,
                          bool nowait, bool bind)
{
    char d[256], s[256], k[256];
    struct table *args;
    struct vhost_err err;
    amqp_wire_str_copy(d, sizeof(d), dst);
    amqp_wire_str_copy(s, sizeof(s), src);
    amqp_wire_str_copy(k, sizeof(k), key);
    if (args_decode(ch, method, args_s, &args) < 0)
        return;
    int rc = vhost_exchange_bind(amqp_conn_vhost(ch->c), d, s, k, args, bind, &err);
    table_free(args);
    if (rc < 0)
        return vhost_error(ch, method, &err);
    if (!nowait)
        reply(ch, bind ? AMQP_EXCHANGE_BIND_OK : AMQP_EXCHANGE_UNBIND_OK);
}

static void on_queue_declare(struct amqp_channel *ch, const struct amqp_queue_declare *d)
{
    char name[256];
    struct table *args;
    struct vhost_queue *vq;
    struct vhost_err err;
    amqp_wire_str_copy(name, sizeof(name), d->queue);
    if (name[0] == '\0' && d->passive) {
        if (queue_name(ch, AMQP_QUEUE_DECLARE, d->queue, name) < 0)
            return;
    } else if (name[0] == '\0') {
        strcpy(name, "amq.gen-");
        random_suffix(name + 8, 22);
    }
    if (args_decode(ch, AMQP_QUEUE_DECLARE, d->arguments, &args) < 0)
        return;
    struct vhost_queue_decl decl = {
        .name = name,
        .passive = d->passive,
        .durable = d->durable,
        .exclusive = d->exclusive,
        .auto_delete = d->auto_delete,
        .server_named = d->queue.len == 0,
        .args = args,
        .owner = ch->c->id,
    };
    int rc = vhost_queue_declare(amqp_conn_vhost(ch->c), &decl, &vq, &err);
    table_free(args);
    if (rc < 0)
        return vhost_error(ch, AMQP_QUEUE_DECLARE, &err);
    strcpy(ch->last_queue, name);
    if (d->nowait)
        return;
    struct amqp_method ok = {.id = AMQP_QUEUE_DECLARE_OK};
    ok.queue_declare_ok.queue = amqp_wire_cstr(name);
    ok.queue_declare_ok.message_count = (uint32_t)queue_ready_count(vhost_queue_q(vq));
    ok.queue_declare_ok.consumer_count = (uint32_t)vhost_queue_consumers(vq);
    amqp_send_method(ch->c, ch->id, &ok);
}

static void on_queue_bind(struct amqp_channel *ch, uint32_t method, struct amqp_str q,
                          struct amqp_str ex, struct amqp_str key, struct amqp_str args_s,
                          bool nowait, bool bind)
{
    char qn[256], e[256], k[256];
    struct table *args;
    struct vhost_err err;
    if (queue_name(ch, method, q, qn) < 0)
        return;
    amqp_wire_str_copy(e, sizeof(e), ex);
    amqp_wire_str_copy(k, sizeof(k), key);
    if (args_decode(ch, method, args_s, &args) < 0)
        return;
    int rc = vhost_queue_bind(amqp_conn_vhost(ch->c), qn, e, k, args, ch->c->id, bind, &err);
    table_free(args);
    if (rc < 0)
        return vhost_error(ch, method, &err);
    if (!nowait)
        reply(ch, bind ? AMQP_QUEUE_BIND_OK : AMQP_QUEUE_UNBIND_OK);
}

static void on_queue_purge(struct amqp_channel *ch, const struct amqp_queue_purge *p)
{
    char qn[256];
    uint64_t n;
    struct vhost_err err;
    if (queue_name(ch, AMQP_QUEUE_PURGE, p->queue, qn) < 0)
        return;
    if (vhost_queue_purge(amqp_conn_vhost(ch->c), qn, ch->c->id, &n, &err) < 0)
        return vhost_error(ch, AMQP_QUEUE_PURGE, &err);
    if (p->nowait)
        return;
    struct amqp_method ok = {.id = AMQP_QUEUE_PURGE_OK};
    ok.queue_purge_ok.message_count = (uint32_t)n;
    amqp_send_method(ch->c, ch->id, &ok);
}

static void on_queue_delete(struct amqp_channel *ch, const struct amqp_queue_delete *d)
{
    char qn[256];
    uint64_t n;
    struct vhost_err err;
    if (queue_name(ch, AMQP_QUEUE_DELETE, d->queue, qn) < 0)
        return;
    if (vhost_queue_delete(amqp_conn_vhost(ch->c), qn, ch->c->id, d->if_unused, d->if_empty, &n,
                           &err) < 0)
        return vhost_error(ch, AMQP_QUEUE_DELETE, &err);
    if (d->nowait)
        return;
    struct amqp_method ok = {.id = AMQP_QUEUE_DELETE_OK};
    ok.queue_delete_ok.message_count = (uint32_t)n;
    amqp_send_method(ch->c, ch->id, &ok);
}

/* ---- basic.qos, recover, confirm, tx, flow ----------------------------------------------- */

static void on_qos(struct amqp_channel *ch, const struct amqp_basic_qos *q)
{
    if (q->prefetch_size != 0) {
        amqp_conn_error(ch->c, AMQP_NOT_IMPLEMENTED, AMQP_BASIC_QOS, "prefetch_size!=0 (%u)",
                        q->prefetch_size);
        return;
    }
    if (q->global)
        ch->global_prefetch = q->prefetch_count;
    else
        ch->prefetch = q->prefetch_count;
    reply(ch, AMQP_BASIC_QOS_OK);
    amqp_channel_kick(ch);
}

static void on_recover(struct amqp_channel *ch, uint32_t method, bool requeue)
{
    if (!requeue) {
        amqp_conn_error(ch->c, AMQP_NOT_IMPLEMENTED, method, "requeue=false");
        return;
    }
    requeue_all(ch);
    if (method == AMQP_BASIC_RECOVER)
        reply(ch, AMQP_BASIC_RECOVER_OK);
}

static void on_confirm_select(struct amqp_channel *ch, const struct amqp_confirm_select *s)
{
    if (ch->tx) {
        amqp_channel_error(ch, AMQP_PRECONDITION_FAILED, AMQP_CONFIRM_SELECT,
                           "cannot switch from tx to confirm mode");
        return;
    }
    ch->confirm = true;
    if (!s->nowait)
        reply(ch, AMQP_CONFIRM_SELECT_OK);
}

static void on_tx(struct amqp_channel *ch, uint32_t id)
{
    if (id == AMQP_TX_SELECT) {
        if (ch->confirm) {
            amqp_channel_error(ch, AMQP_PRECONDITION_FAILED, id,
                               "cannot switch from confirm to tx mode");
            return;
        }
        ch->tx = true;
        reply(ch, AMQP_TX_SELECT_OK);
        return;
    }
    if (!ch->tx) {
        amqp_channel_error(ch, AMQP_PRECONDITION_FAILED, id, "channel is not transactional");
        return;
    }
    if (id == AMQP_TX_COMMIT) {
        tx_commit(ch);
    } else {
        tx_clear(ch);
        reply(ch, AMQP_TX_ROLLBACK_OK);
    }
}

static void on_flow(struct amqp_channel *ch, const struct amqp_channel_flow *f)
{
    if (!f->active) {
        amqp_conn_error(ch->c, AMQP_NOT_IMPLEMENTED, AMQP_CHANNEL_FLOW, "active=false");
        return;
    }
    struct amqp_method ok = {.id = AMQP_CHANNEL_FLOW_OK};
    ok.channel_flow_ok.active = true;
    amqp_send_method(ch->c, ch->id, &ok);
}

/* ---- channel lifetime ------------------------------------------------------------------ */

static void teardown(struct amqp_channel *ch)
{
    if (ch->released)
        return;
    ch->released = true;
    while (ch->consumers)
        cancel_consumer(ch, ch->consumers);
    requeue_all(ch);
    tx_clear(ch);
}

static void channel_unref(struct amqp_channel *ch)
{
    if (--ch->refs > 0)
        return;
    struct amqp_conn *c = ch->c;
    buf_fini(&ch->props);
    buf_fini(&ch->body);
    free(ch->cq);
    free(ch->txops);
    free(ch->ua);
    free(ch);
    amqp_conn_unref(c);
}

void amqp_channel_release(struct amqp_channel *ch)
{
    teardown(ch);
    channel_unref(ch);
}

static void on_channel_close(struct amqp_channel *ch, uint32_t id)
{
    struct amqp_conn *c = ch->c;
    uint16_t num = ch->id;
    if (id == AMQP_CHANNEL_CLOSE) {
        struct amqp_method ok = {.id = AMQP_CHANNEL_CLOSE_OK};
        amqp_send_method(c, num, &ok);
    }
    c->channels[num] = NULL;
    amqp_channel_release(ch);
}

static void dispatch_exchange(struct amqp_channel *ch, const struct amqp_method *m)
{
    switch (m->id) {
    case AMQP_EXCHANGE_DECLARE:
        return on_exchange_declare(ch, &m->exchange_declare);
    case AMQP_EXCHANGE_DELETE:
        return on_exchange_delete(ch, &m->exchange_delete);
    case AMQP_EXCHANGE_BIND: {
        const struct amqp_exchange_bind *b = &m->exchange_bind;
        return exchange_bind(ch, m->id, b->destination, b->source, b->routing_key, b->arguments,
                             b->nowait, true);
    }
    case AMQP_EXCHANGE_UNBIND: {
        const struct amqp_exchange_unbind *b = &m->exchange_unbind;
        return exchange_bind(ch, m->id, b->destination, b->source, b->routing_key, b->arguments,
                             b->nowait, false);
    }
    case AMQP_QUEUE_DECLARE:
        return on_queue_declare(ch, &m->queue_declare);
    case AMQP_QUEUE_BIND: {
        const struct amqp_queue_bind *b = &m->queue_bind;
        return on_queue_bind(ch, m->id, b->queue, b->exchange, b->routing_key, b->arguments,
                             b->nowait, true);
    }
    case AMQP_QUEUE_UNBIND: {
        const struct amqp_queue_unbind *b = &m->queue_unbind;
        return on_queue_bind(ch, m->id, b->queue, b->exchange, b->routing_key, b->arguments, false,
                             false);
    }
    case AMQP_QUEUE_PURGE:
        return on_queue_purge(ch, &m->queue_purge);
    case AMQP_QUEUE_DELETE:
        return on_queue_delete(ch, &m->queue_delete);
    default:
        amqp_conn_error(ch->c, AMQP_COMMAND_INVALID, m->id, "method '%s' is not valid here",
                        amqp_method_name(m->id));
    }
}

static void dispatch_basic(struct amqp_channel *ch, const struct amqp_method *m)
{
    switch (m->id) {
    case AMQP_BASIC_PUBLISH:
        return on_publish(ch, &m->basic_publish);
    case AMQP_BASIC_CONSUME:
        return on_consume(ch, &m->basic_consume);
    case AMQP_BASIC_CANCEL:
        return on_cancel(ch, &m->basic_cancel);
    case AMQP_BASIC_GET:
        return on_get(ch, &m->basic_get);
    case AMQP_BASIC_ACK:
        return on_settle(ch, m->id, m->basic_ack.delivery_tag, m->basic_ack.multiple, true, false);
    case AMQP_BASIC_NACK:
        return on_settle(ch, m->id, m->basic_nack.delivery_tag, m->basic_nack.multiple, false,
                         m->basic_nack.requeue);
    case AMQP_BASIC_REJECT:
        return on_settle(ch, m->id, m->basic_reject.delivery_tag, false, false,
                         m->basic_reject.requeue);
    case AMQP_BASIC_QOS:
        return on_qos(ch, &m->basic_qos);
    case AMQP_BASIC_RECOVER:
        return on_recover(ch, m->id, m->basic_recover.requeue);
    case AMQP_BASIC_RECOVER_ASYNC:
        return on_recover(ch, m->id, m->basic_recover_async.requeue);
    default:
        amqp_conn_error(ch->c, AMQP_COMMAND_INVALID, m->id, "method '%s' is not valid here",
                        amqp_method_name(m->id));
    }
}

void amqp_channel_method(struct amqp_channel *ch, const struct amqp_method *m)
{
    if (ch->closing) {
        /* after our channel.close only close / close-ok matter */
        if (m->id == AMQP_CHANNEL_CLOSE_OK || m->id == AMQP_CHANNEL_CLOSE)
            on_channel_close(ch, m->id);
        return;
    }
    switch (AMQP_ID_CLASS(m->id)) {
    case 20:
        if (m->id == AMQP_CHANNEL_CLOSE || m->id == AMQP_CHANNEL_CLOSE_OK)
            return on_channel_close(ch, m->id);
        if (m->id == AMQP_CHANNEL_FLOW)
            return on_flow(ch, &m->channel_flow);
        if (m->id == AMQP_CHANNEL_FLOW_OK)
            return;
        break;
    case 30:
        if (m->id == AMQP_ACCESS_REQUEST) {
            struct amqp_method ok = {.id = AMQP_ACCESS_REQUEST_OK};
            ok.access_request_ok.ticket = 1;
            return amqp_send_method(ch->c, ch->id, &ok);
        }
        break;
    case 40:
    case 50:
        return dispatch_exchange(ch, m);
    case 60:
        return dispatch_basic(ch, m);
    case 85:
        if (m->id == AMQP_CONFIRM_SELECT)
            return on_confirm_select(ch, &m->confirm_select);
        break;
    case 90:
        if (m->id == AMQP_TX_SELECT || m->id == AMQP_TX_COMMIT || m->id == AMQP_TX_ROLLBACK)
            return on_tx(ch, m->id);
        break;
    default:
        break;
    }
    amqp_conn_error(ch->c, AMQP_COMMAND_INVALID, m->id, "method '%s' is not valid here",
                    amqp_method_name(m->id));
}
