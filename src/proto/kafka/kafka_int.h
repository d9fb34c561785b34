/*
 * kafka_int.h - internals shared by the Kafka session files: kafka_server.c (connections,
 * framing, ordering, ApiVersions, SASL), kafka_admin.c (metadata, topics, configs) and
 * kafka_data.c (produce, fetch, offsets, producer ids) and kafka_group.c (consumer groups).
 *
 * Ordering: every request gets a slot in its connection's queue as it is read; a handler
 * either fills the slot at once (kafka_reply) or later (produce waiting for an fsync, a fetch
 * waiting for data, a join waiting for the group). Slots leave the queue in order: a response
 * is written only when every earlier one was. A slot whose request needs no response (produce
 * with acks=0) is dropped when it reaches the head.
 *
 * Lifetimes: decoded requests point into the connection's input buffer and die with the
 * on_read call; a handler that answers later keeps what it needs in its own allocation, tied
 * to the slot (slot->pending, freed by slot->cancel when the connection goes first).
 */
#ifndef TERN_KAFKA_INT_H
#define TERN_KAFKA_INT_H

#include <stdbool.h>
#include <stdint.h>

#include "base/arena.h"
#include "base/buf.h"
#include "net/net.h"
#include "proto/kafka/kafka_msg.h"
#include "proto/kafka/kafka_server.h"
#include "store/log.h"

/* Kafka error codes tern sends. */
enum {
    KERR_NONE = 0,
    KERR_UNKNOWN_SERVER_ERROR = -1,
    KERR_OFFSET_OUT_OF_RANGE = 1,
    KERR_CORRUPT_MESSAGE = 2,
    KERR_UNKNOWN_TOPIC_OR_PARTITION = 3,
    KERR_MESSAGE_TOO_LARGE = 10,
    KERR_INVALID_TOPIC_EXCEPTION = 17,
    KERR_INVALID_REQUIRED_ACKS = 21,
    KERR_UNSUPPORTED_SASL_MECHANISM = 33,
    KERR_ILLEGAL_SASL_STATE = 34,
    KERR_UNSUPPORTED_VERSION = 35,
    KERR_TOPIC_ALREADY_EXISTS = 36,
    KERR_INVALID_PARTITIONS = 37,
    KERR_INVALID_REPLICATION_FACTOR = 38,
    KERR_INVALID_REQUEST = 42,
    KERR_INVALID_CONFIG = 40,
    KERR_OUT_OF_ORDER_SEQUENCE_NUMBER = 45,
    KERR_INVALID_PRODUCER_EPOCH = 47,
    KERR_SASL_AUTHENTICATION_FAILED = 58,
    KERR_KAFKA_STORAGE_ERROR = 56,
    KERR_INVALID_RECORD = 87,
};

struct stream_err;

struct kafka_slot;
typedef void (*kafka_cancel_fn)(struct kafka_slot *s);

/*
 * The record bytes of a response (Fetch) that go out from segment files (net_conn_write_file): the
 * encoded frame has a gap (kafka_wire.h) for each records field pointing at kafka_wire_gap,
 * and the slices fill the gaps in order, each gap with whole slices. Held by the slot, then by
 * net until its last range is sent; the slices' segment references go with the last ref.
 */
#define KAFKA_FILES_MAX 64

struct kafka_files {
    int refs;
    int n, ngaps;
    struct log_slice slice[KAFKA_FILES_MAX];
    struct kafka_wire_gap gap[KAFKA_FILES_MAX]; /* where the encoder left them */
};

/* An empty set with one reference (the caller's). */
struct kafka_files *kafka_files_new(void);
/* Drops a reference; the last releases the slices and frees f. NULL is ignored. */
void kafka_files_unref(struct kafka_files *f);

struct kafka_slot {
    struct kafka_slot *next;
    struct kafka_conn *c;
    int32_t corr;
    int16_t api, version;
    bool ready, noreply;
    struct buf out;            /* the whole response frame once ready, but for the gaps */
    struct kafka_files *files; /* what fills out's gaps, or NULL */
    void *pending;             /* a handler's state while it answers later */
    kafka_cancel_fn cancel;
};

struct kafka_server {
    uv_loop_t *loop;
    struct net_listener *lis;
    struct stream_mgr *streams;
    struct group_mgr *groups;
    struct catalog *cat;
    struct kafka_server_config cfg; /* advertised_port set (the listening port by default) */
    char *advertised_host, *user, *pass, *cluster_id;
    uint16_t port;
    struct kafka_conn *conns;
    bool stopping;
    void (*stop_cb)(void *arg);
    void *stop_arg;
};

struct kafka_conn {
    struct kafka_server *srv;
    struct net_conn *nc;
    struct kafka_conn *prev, *next;
    struct kafka_slot *head, *tail;
    size_t nslots;
    bool authed, sasl_handshaken, closing, paused;
    bool sasl_raw; /* after SaslHandshake v0: the next frame is a bare SASL token */
    struct arena arena;  /* the request being decoded (capped) */
    struct arena rarena; /* the response being built */
    char client_id[128];
};

/* The request being handled: header fields and its body. */
struct kafka_req {
    struct kafka_conn *c;
    struct kafka_slot *slot;
    struct arena *ra; /* where the response is built (kafka_alloc) */
    int16_t api, version;
    const uint8_t *body;
    size_t len;
};

/* Encodes resp (a kafka_<api>_response) as the slot's response frame and marks it ready; then
 * flushes what is in order. A response that does not encode is a bug in tern: logged, and the
 * connection closed. */
void kafka_reply(struct kafka_slot *s, const void *resp);
/* As kafka_reply, for a response whose records fields point at kafka_wire_gap: files (whose
 * reference this takes; NULL when there are no gaps) fills the gaps in order. */
void kafka_reply_files(struct kafka_slot *s, const void *resp, struct kafka_files *files);
/* Encodes resp as the slot's response frame without marking it ready (an answer that waits,
 * e.g. for an fsync); returns 0 or the encoder's error. On error the slot is done as in
 * kafka_reply (logged, marked ready without a response, the connection closing): the caller
 * must not touch it again. */
int kafka_encode(struct kafka_slot *s, const void *resp);
/* Marks an encoded slot ready and flushes. */
void kafka_ready(struct kafka_slot *s);
/* Marks a slot that needs no response as done. */
void kafka_reply_none(struct kafka_slot *s);
/* Writes the ready slots at the head of the queue. */
void kafka_flush(struct kafka_conn *c);
/* Closes the connection (after what was already written). */
void kafka_conn_close(struct kafka_conn *c, const char *why);
/* Zeroed response arrays from the connection's response arena (reset per request); never
 * NULL. */
void *kafka_alloc(struct kafka_req *r, size_t count, size_t size);
/* A NUL-terminated copy of s in the arena ("" for null). */
char *kafka_cstr(struct kafka_req *r, struct kafka_str s);
/* A NUL-terminated copy of the C string s in the arena, as a kafka_str ("" for NULL): for
 * strings that do not outlive the call (a manager's, an error's). */
struct kafka_str kafka_str_dup(struct kafka_req *r, const char *s);
/* The topic a request names, auto-created (Metadata, Produce) when allow_create and
 * --auto-create-topics say so; NULL with *error set when there is none. */
struct stream_topic *kafka_topic_or_create(struct kafka_req *r, struct kafka_str name,
                                           bool allow_create, int16_t *error);
/* Maps a broker stream error to a Kafka error code. */
int16_t kafka_stream_error(const struct stream_err *err);

/* Handlers: each answers through r->slot, now or later. */
void kafka_handle_metadata(struct kafka_req *r, const struct kafka_metadata_request *m);
void kafka_handle_create_topics(struct kafka_req *r, const struct kafka_create_topics_request *m);
void kafka_handle_delete_topics(struct kafka_req *r, const struct kafka_delete_topics_request *m);
void kafka_handle_create_partitions(struct kafka_req *r,
                                    const struct kafka_create_partitions_request *m);
void kafka_handle_describe_configs(struct kafka_req *r,
                                   const struct kafka_describe_configs_request *m);
void kafka_handle_alter_configs(struct kafka_req *r, const struct kafka_alter_configs_request *m);
void kafka_handle_produce(struct kafka_req *r, const struct kafka_produce_request *m);
void kafka_handle_fetch(struct kafka_req *r, const struct kafka_fetch_request *m);
void kafka_handle_list_offsets(struct kafka_req *r, const struct kafka_list_offsets_request *m);
void kafka_handle_delete_records(struct kafka_req *r, const struct kafka_delete_records_request *m);
void kafka_handle_offset_for_leader_epoch(struct kafka_req *r,
                                          const struct kafka_offset_for_leader_epoch_request *m);
void kafka_handle_init_producer_id(struct kafka_req *r,
                                   const struct kafka_init_producer_id_request *m);
/* Consumer groups (kafka_group.c): FindCoordinator, JoinGroup, SyncGroup, Heartbeat,
 * LeaveGroup, OffsetCommit, OffsetFetch, DescribeGroups, ListGroups, DeleteGroups. Returns
 * false when api is not a group API. */
bool kafka_handle_group(struct kafka_req *r, const void *request);

#endif
