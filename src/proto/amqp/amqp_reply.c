/*
 * amqp_reply.c - RabbitMQ's direct reply-to: a requester consumes (no-ack) from the pseudo
 * queue "amq.rabbitmq.reply-to" and publishes requests with that reply_to; the broker rewrites
 * it to "amq.rabbitmq.reply-to.<conn>.<channel>.<token>", and a reply published to the default
 * exchange with that routing key goes straight to the requester's channel, with no queue in
 * between. At-most-once: a reply to a requester that has gone is dropped.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/tern.h"
#include "proto/amqp/amqp_int.h"

#define REPLY_QUEUE "amq.rabbitmq.reply-to"
#define REPLY_PREFIX REPLY_QUEUE "."

bool amqp_reply_queue(const char *name)
{
    return strcmp(name, REPLY_QUEUE) == 0;
}

void amqp_reply_consume(struct amqp_channel *ch, const char *tag, bool no_ack, bool nowait)
{
    struct amqp_reply_state *st = amqp_channel_reply(ch);
    if (!no_ack) {
        amqp_channel_error(ch, AMQP_PRECONDITION_FAILED, AMQP_BASIC_CONSUME,
                           "reply consumer cannot acknowledge");
        return;
    }
    if (st->on) {
        amqp_channel_error(ch, AMQP_PRECONDITION_FAILED, AMQP_BASIC_CONSUME,
                           "reply consumer already set");
        return;
    }
    st->on = true;
    snprintf(st->tag, sizeof(st->tag), "%s", tag);
    uint64_t r = uv_hrtime() ^ ((uint64_t)rand() << 20);
    snprintf(st->token, sizeof(st->token), "%016" PRIx64, r);
    if (!nowait) {
        struct amqp_method ok = {.id = AMQP_BASIC_CONSUME_OK};
        ok.basic_consume_ok.consumer_tag = amqp_wire_cstr(st->tag);
        amqp_send_method(amqp_channel_conn(ch), amqp_channel_id(ch), &ok);
    }
}

bool amqp_reply_cancel(struct amqp_channel *ch, const char *tag)
{
    struct amqp_reply_state *st = amqp_channel_reply(ch);
    if (!st->on || strcmp(st->tag, tag) != 0)
        return false;
    st->on = false;
    return true;
}

int amqp_reply_rewrite(struct amqp_channel *ch, const struct amqp_props *in, struct buf *props_out)
{
    if (!(in->flags & AMQP_P_REPLY_TO) ||
        !amqp_wire_str_eq(in->reply_to, amqp_wire_cstr(REPLY_QUEUE)))
        return 0;
    struct amqp_props pr = *in;
    struct amqp_reply_state *st = amqp_channel_reply(ch);
    if (!st->on) {
        amqp_channel_error(ch, AMQP_PRECONDITION_FAILED, AMQP_BASIC_PUBLISH,
                           "fast reply consumer does not exist");
        return -1;
    }
    char name[128];
    snprintf(name, sizeof(name), REPLY_PREFIX "%" PRIu64 ".%u.%s", amqp_channel_conn(ch)->id,
             amqp_channel_id(ch), st->token);
    pr.reply_to = amqp_wire_cstr(name);
    buf_clear(props_out);
    amqp_props_encode(&pr, props_out);
    return 1;
}

/* The channel a reply name points at, or NULL. */
static struct amqp_channel *reply_target(struct amqp_channel *from, const char *rk, size_t len)
{
    char name[128], token[32];
    unsigned long long conn;
    unsigned chan;
    if (len >= sizeof(name))
        return NULL;
    memcpy(name, rk, len);
    name[len] = '\0';
    if (sscanf(name + strlen(REPLY_PREFIX), "%llu.%u.%31s", &conn, &chan, token) != 3)
        return NULL;
    struct amqp_channel *ch = amqp_server_find_channel(amqp_channel_conn(from)->srv, conn, chan);
    if (ch == NULL)
        return NULL;
    struct amqp_reply_state *st = amqp_channel_reply(ch);
    return st->on && strcmp(st->token, token) == 0 ? ch : NULL;
}

int amqp_reply_route(struct amqp_channel *from, const struct msg *m)
{
    if (m->exchange_len != 0 || m->rk_len <= strlen(REPLY_PREFIX) ||
        memcmp(m->rk, REPLY_PREFIX, strlen(REPLY_PREFIX)) != 0)
        return 0;
    struct amqp_channel *to = reply_target(from, m->rk, m->rk_len);
    if (to == NULL)
        return 1; /* the requester has gone: dropped, as RabbitMQ does */
    struct amqp_reply_state *st = amqp_channel_reply(to);
    struct amqp_method d = {.id = AMQP_BASIC_DELIVER};
    d.basic_deliver.consumer_tag = amqp_wire_cstr(st->tag);
    d.basic_deliver.delivery_tag = amqp_channel_take_tag(to);
    d.basic_deliver.exchange = (struct amqp_str){(const uint8_t *)"", 0};
    d.basic_deliver.routing_key = (struct amqp_str){(const uint8_t *)m->rk, (uint32_t)m->rk_len};
    struct amqp_conn *c = amqp_channel_conn(to);
    amqp_send_content(c, amqp_channel_id(to), &d, m->props, m->props_len, m->body, m->body_len);
    amqp_flush(c);
    return 1;
}
