/*
 * kafka_server.h - the Kafka protocol listener: connections, requests in, responses out in
 * request order, on the broker's topics (broker/stream.h) and consumer groups (broker/group.h).
 */
#ifndef TERN_KAFKA_SERVER_H
#define TERN_KAFKA_SERVER_H

#include <stdbool.h>
#include <stdint.h>

#include <uv.h>

struct stream_mgr;
struct group_mgr;
struct catalog;
struct kafka_server;

struct kafka_server_config {
    int32_t node_id;              /* this broker's id (0) */
    const char *advertised_host;  /* host clients are told to connect to (the bind address) */
    uint16_t advertised_port;     /* 0: the listening port */
    uint32_t max_request_bytes;   /* socket.request.max.bytes (104857600) */
    uint32_t max_request_unauth;  /* before SASL authentication when required (65536) */
    bool sasl_required;           /* refuse requests other than ApiVersions and SASL until
                                     authenticated with PLAIN */
    const char *user, *pass;      /* the PLAIN credentials (the AMQP default user) */
    const char *cluster_id;
};

/* Listens on host:port and serves until kafka_server_stop. The managers and catalog must
 * outlive the server. Returns 0 or -errno. */
int kafka_server_start(uv_loop_t *loop, struct stream_mgr *streams, struct group_mgr *groups,
                       struct catalog *cat, const char *host, uint16_t port,
                       const struct kafka_server_config *cfg, struct kafka_server **out);
uint16_t kafka_server_port(const struct kafka_server *s);
/* Stops listening, closes every connection, frees the server, then calls cb(arg) from the
 * loop. */
void kafka_server_stop(struct kafka_server *s, void (*cb)(void *arg), void *arg);

#endif
