/*
 * amqp_server.h - the AMQP 0-9-1 listener: accepts connections and runs each connection's
 * protocol session (handshake, channels, frames) against one vhost.
 */
#ifndef TERN_AMQP_SERVER_H
#define TERN_AMQP_SERVER_H

#include <stdint.h>

#include <uv.h>

struct vhost;

struct amqp_server_config {
    const char *user, *pass;       /* the one user; "guest" may log in from loopback only */
    uint16_t heartbeat_s;          /* proposed in connection.tune */
    uint32_t frame_max;            /* proposed; clients may ask 4096 .. this */
    uint16_t channel_max;          /* proposed */
    uint64_t max_message_size;     /* body bytes */
    uint32_t max_connections;      /* 0: unlimited */
    uint32_t handshake_timeout_ms; /* until connection.open */
    uint64_t memory_high_watermark; /* buffered bytes; publishers are blocked above */
};

struct amqp_server;

/* Listens on bind:port. The config's strings must outlive the server. Returns 0 or -errno. */
int amqp_server_start(uv_loop_t *loop, struct vhost *vh, const char *bind, uint16_t port,
                      const struct amqp_server_config *cfg, struct amqp_server **out);
uint16_t amqp_server_port(const struct amqp_server *s);
/* Stops listening, closes every connection (320 CONNECTION_FORCED) and frees the server; cb
 * runs once every connection is gone. */
void amqp_server_stop(struct amqp_server *s, void (*cb)(void *arg), void *arg);

#endif
