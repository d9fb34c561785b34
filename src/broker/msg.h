/*
 * msg.h - the protocol-neutral message the broker routes, stores and delivers.
 *
 * A view: every pointer borrows bytes owned by whoever hands the struct over (a protocol
 * session's frame buffer when publishing, a queue's read buffer when delivering). The receiver
 * copies what it keeps. Lengths of exchange and routing key are at most 255 (AMQP shortstr).
 */
#ifndef TERN_MSG_H
#define TERN_MSG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define MSG_SHORTSTR_MAX 255

struct msg {
    const char *exchange; /* exchange it was published to */
    size_t exchange_len;
    const char *rk; /* routing key */
    size_t rk_len;
    const uint8_t *props; /* opaque protocol properties (AMQP: the content header's property
                             flags + list, as received) */
    size_t props_len;
    const uint8_t *body;
    size_t body_len;
    bool persistent;      /* survives restart in a durable queue */
    int64_t timestamp_ms; /* broker receive time */
};

#endif
