/*
 * amqp_int.h - internals shared by the AMQP 0-9-1 session files: amqp_server.c (listener,
 * connections, handshake, frames, heartbeats, flow control) and amqp_channel.c (channel
 * methods translated into broker/vhost calls).
 *
 * Lifetimes: a connection lives until its socket has closed AND its last channel is freed. A
 * channel lives until it is closed AND no publish awaiting an fsync still points at it (refs).
 * Once closed, a channel ignores late callbacks.
 */
#ifndef TERN_AMQP_INT_H
#define TERN_AMQP_INT_H

#include <stdbool.h>
#include <stdint.h>

#include <uv.h>

#include "base/buf.h"
#include "broker/vhost.h"
#include "net/net.h"
#include "proto/amqp/amqp_frame.h"
#include "proto/amqp/amqp_method.h"
#include "proto/amqp/amqp_server.h"

struct amqp_channel;

/* Direct reply-to consumer of a channel (amqp_reply.c). */
struct amqp_reply_state {
    bool on;
    char tag[256];
    char token[32];
};

enum amqp_cstate {
    AMQP_C_HEADER,   /* waiting for the protocol header */
    AMQP_C_START_OK, /* connection.start sent */
    AMQP_C_TUNE_OK,  /* connection.tune sent */
    AMQP_C_OPEN,     /* waiting for connection.open */
    AMQP_C_RUNNING,
    AMQP_C_CLOSING, /* connection.close sent, waiting for close-ok */
    AMQP_C_DEAD,    /* socket closing or closed */
};

struct amqp_conn {
    struct amqp_server *srv;
    struct net_conn *nc;
    uint64_t id;
    enum amqp_cstate state;
    uint32_t frame_max;
    uint16_t channel_max;
    uint16_t heartbeat;
    bool cap_blocked, cap_cancel_notify, cap_auth_failure_close;
    bool published; /* has published: blocked by the memory alarm */
    bool paused;    /* reading stopped by the memory alarm */
    bool blocked_sent;
    bool confirm_dirty; /* a channel has confirms to send (coalesced once per loop turn) */
    struct amqp_channel **channels; /* channel_max + 1 slots */
    size_t nchannels_open;
    int refs;       /* 1 for the socket + 1 per live channel */
    struct buf out; /* frames not yet handed to the socket */
    uint64_t last_recv_ms, last_send_ms;
    int64_t now_ms; /* wall clock at the last read (amqp_conn_now_ms) */
    uv_timer_t timer; /* handshake timeout, then heartbeats, then close grace */
    bool timer_live;
    struct amqp_conn *next, *prev; /* server's list */
    char user[256];
};

/* ---- amqp_server.c ---- */
/* Queues a method frame on channel ch. */
void amqp_send_method(struct amqp_conn *c, uint16_t ch, const struct amqp_method *m);
/* Queues a method with content (deliver, get-ok, return): method, header, body frames. */
void amqp_send_content(struct amqp_conn *c, uint16_t ch, const struct amqp_method *m,
                       const uint8_t *props, size_t props_len, const uint8_t *body, size_t len);
/* Hands queued output to the socket. */
void amqp_flush(struct amqp_conn *c);
/* Connection exception: connection.close(code, "NAME - text", class/method) and no more input. */
void amqp_conn_error(struct amqp_conn *c, int code, uint32_t method_id, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* True while deliveries may be written (the peer reads its socket). */
bool amqp_conn_writable(const struct amqp_conn *c);
void amqp_conn_unref(struct amqp_conn *c);
const struct amqp_server_config *amqp_conn_config(const struct amqp_conn *c);
/* The wall-clock time (ms since the epoch) read once per batch of input: message timestamps. */
int64_t amqp_conn_now_ms(const struct amqp_conn *c);
struct vhost *amqp_conn_vhost(const struct amqp_conn *c);
void amqp_conn_note_publish(struct amqp_conn *c);
/* Asks for amqp_channel_confirm_flush() on c's channels after this loop turn's callbacks, so
 * confirms made durable by one fsync go out as one `multiple` ack. */
void amqp_conn_confirm_later(struct amqp_conn *c);
/* The open channel chan of connection conn_id, or NULL. */
struct amqp_channel *amqp_server_find_channel(struct amqp_server *s, uint64_t conn_id,
                                              unsigned chan);

/* ---- amqp_channel.c ---- */
struct amqp_channel *amqp_channel_new(struct amqp_conn *c, uint16_t id);
/* A method frame for this channel (channel.open already handled). */
void amqp_channel_method(struct amqp_channel *ch, const struct amqp_method *m);
/* Content frames for this channel; return false when they were unexpected (505 raised). */
void amqp_channel_header(struct amqp_channel *ch, const uint8_t *p, size_t n);
void amqp_channel_body(struct amqp_channel *ch, const uint8_t *p, size_t n);
/* Closes the channel (unacked messages requeued, consumers cancelled) and releases it. */
void amqp_channel_release(struct amqp_channel *ch);
/* Channel exception: channel.close sent, channel resources released, waits for close-ok. */
void amqp_channel_error(struct amqp_channel *ch, int code, uint32_t method_id, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
bool amqp_channel_closing(const struct amqp_channel *ch);
bool amqp_channel_expects_content(const struct amqp_channel *ch);
/* The socket drained: consumers of this channel may take messages again. */
void amqp_channel_kick(struct amqp_channel *ch);
/* Sends the confirms settled since the last call. */
void amqp_channel_confirm_flush(struct amqp_channel *ch);
struct amqp_reply_state *amqp_channel_reply(struct amqp_channel *ch);
struct amqp_conn *amqp_channel_conn(const struct amqp_channel *ch);
uint16_t amqp_channel_id(const struct amqp_channel *ch);
uint64_t amqp_channel_take_tag(struct amqp_channel *ch); /* a delivery tag nothing tracks */

/* ---- amqp_reply.c: direct reply-to ---- */
bool amqp_reply_queue(const char *name);
/* basic.consume / basic.cancel on the pseudo queue (cancel: true when tag was the reply
 * consumer). */
void amqp_reply_consume(struct amqp_channel *ch, const char *tag, bool no_ack, bool nowait);
bool amqp_reply_cancel(struct amqp_channel *ch, const char *tag);
/* A publish (decoded properties in) whose reply_to is the pseudo queue: writes the rewritten
 * properties into props_out. Returns 1 (rewritten), 0 (not such a publish) or -1 (error
 * raised). */
int amqp_reply_rewrite(struct amqp_channel *ch, const struct amqp_props *in, struct buf *props_out);
/* A publish to a reply name: delivered to the requester (or dropped). Returns 1 when m was
 * such a reply, else 0. */
int amqp_reply_route(struct amqp_channel *from, const struct msg *m);

#endif
