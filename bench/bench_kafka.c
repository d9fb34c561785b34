/*
 * bench_kafka.c - the Kafka load generator of `make bench-kafka`, on librdkafka (Debian's
 * librdkafka-dev). bench/kafka_bench.py runs it against ternd; bench_nats.c and bench_redis.c
 * run the same scenarios against NATS JetStream and Redis streams. The scenarios, options and
 * result line are loadgen.h's; this file is the librdkafka half.
 *
 * Topic: one partition, created with the admin API (CreateTopics, replication factor 1) before
 * the run and deleted (DeleteTopics) after it.
 *
 * Producers: one rd_kafka_t per producer thread, librdkafka's defaults (linger.ms 5,
 * batch.size 1 MB, batch.num.messages 10000, queue.buffering.max.messages 100000, no
 * compression, no idempotence) except acks (1 or all) and, in the latency scenario only,
 * linger.ms 0: there the producer sends one record every 100 us and a 5 ms linger would be the
 * whole measurement. Records go to partition 0 with rd_kafka_produce (value copied, no key);
 * the send time rides in the message opaque and the delivery report callback, served by
 * rd_kafka_poll on the producer's own thread, counts the ack and its latency.
 *
 * Consumer: an rd_kafka_t consumer with a group.id (librdkafka wants one) but no subscription
 * and no commits: partition 0 is assigned from the beginning, and messages are taken from the
 * consumer queue in batches of up to 1024 (rd_kafka_consume_batch_queue; one at a time in the
 * latency scenario, as the call waits for a full batch). Fetch settings are
 * librdkafka's defaults (fetch.wait.max.ms 500, max.partition.fetch.bytes 1 MiB).
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <librdkafka/rdkafka.h>

#include "base/clock.h"
#include "loadgen.h"

#define ADMIN_TIMEOUT_MS 15000
#define CONSUME_BATCH 1024
#define PRODUCE_BURST 256 /* records produced between two rd_kafka_poll calls */
#define CLOSE_TIMEOUT_MS 10000

static const char help[] =
    "Kafka (librdkafka): --acks 1 is acks=1 (the leader has appended the record); --acks all is\n"
    "acks=all (-1): for ternd, an fdatasync covers the record. librdkafka's default batching;\n"
    "linger.ms=0 in the latency scenario.";

struct kctx {
    rd_kafka_t *admin; /* a producer handle for the admin requests */
};

/* ---- configuration and the admin requests ---------------------------------------------------- */

static int conf_set(rd_kafka_conf_t *c, const char *k, const char *v, char *err, size_t cap)
{
    char why[256];
    if (rd_kafka_conf_set(c, k, v, why, sizeof(why)) != RD_KAFKA_CONF_OK) {
        snprintf(err, cap, "%.100s=%.100s: %.200s", k, v, why);
        return -1;
    }
    return 0;
}

/* A configuration with bootstrap.servers set. On failure (err filled) returns NULL. */
static rd_kafka_conf_t *conf_new(const struct loadgen *g, char *err, size_t cap)
{
    rd_kafka_conf_t *c = rd_kafka_conf_new();
    char servers[300];
    snprintf(servers, sizeof(servers), "%s:%d", g->opt.host, g->opt.port);
    if (conf_set(c, "bootstrap.servers", servers, err, cap) < 0) {
        rd_kafka_conf_destroy(c);
        return NULL;
    }
    return c;
}

/* Creates (or frees) a handle of type; the configuration is consumed either way. */
static rd_kafka_t *handle_new(rd_kafka_type_t type, rd_kafka_conf_t *c, char *err, size_t cap)
{
    char why[512];
    rd_kafka_t *rk = rd_kafka_new(type, c, why, sizeof(why));
    if (!rk) {
        rd_kafka_conf_destroy(c);
        snprintf(err, cap, "rd_kafka_new: %.400s", why);
    }
    return rk;
}

/* Waits for the result of an admin request on q; returns the event (caller destroys) or NULL. */
static rd_kafka_event_t *admin_result(rd_kafka_queue_t *q, const char *what, char *err, size_t cap)
{
    rd_kafka_event_t *ev = rd_kafka_queue_poll(q, ADMIN_TIMEOUT_MS + 1000);
    if (!ev) {
        snprintf(err, cap, "%s: no answer within %d ms", what, ADMIN_TIMEOUT_MS);
        return NULL;
    }
    if (rd_kafka_event_error(ev)) {
        snprintf(err, cap, "%s: %s", what, rd_kafka_event_error_string(ev));
        rd_kafka_event_destroy(ev);
        return NULL;
    }
    return ev;
}

/* The first failed topic of an admin result as text in err; returns -1 then, else 0. */
static int topic_results(const rd_kafka_topic_result_t **res, size_t n, const char *what, char *err,
                         size_t cap)
{
    for (size_t i = 0; i < n; i++) {
        if (rd_kafka_topic_result_error(res[i])) {
            snprintf(err, cap, "%s %s: %s", what, rd_kafka_topic_result_name(res[i]),
                     rd_kafka_topic_result_error_string(res[i]));
            return -1;
        }
    }
    return 0;
}

static int topic_create(rd_kafka_t *rk, const char *topic, char *err, size_t cap)
{
    char why[256];
    rd_kafka_NewTopic_t *t = rd_kafka_NewTopic_new(topic, 1, 1, why, sizeof(why));
    if (!t) {
        snprintf(err, cap, "NewTopic %s: %s", topic, why);
        return -1;
    }
    rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
    rd_kafka_AdminOptions_t *ao = rd_kafka_AdminOptions_new(rk, RD_KAFKA_ADMIN_OP_CREATETOPICS);
    rd_kafka_AdminOptions_set_operation_timeout(ao, ADMIN_TIMEOUT_MS, why, sizeof(why));
    rd_kafka_CreateTopics(rk, &t, 1, ao, q);
    int rc = -1;
    rd_kafka_event_t *ev = admin_result(q, "CreateTopics", err, cap);
    if (ev) {
        size_t n;
        const rd_kafka_topic_result_t **res =
            rd_kafka_CreateTopics_result_topics(rd_kafka_event_CreateTopics_result(ev), &n);
        rc = topic_results(res, n, "CreateTopics", err, cap);
        rd_kafka_event_destroy(ev);
    }
    rd_kafka_AdminOptions_destroy(ao);
    rd_kafka_queue_destroy(q);
    rd_kafka_NewTopic_destroy(t);
    return rc;
}

static int topic_delete(rd_kafka_t *rk, const char *topic, char *err, size_t cap)
{
    rd_kafka_DeleteTopic_t *t = rd_kafka_DeleteTopic_new(topic);
    rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
    rd_kafka_AdminOptions_t *ao = rd_kafka_AdminOptions_new(rk, RD_KAFKA_ADMIN_OP_DELETETOPICS);
    char why[256];
    rd_kafka_AdminOptions_set_operation_timeout(ao, ADMIN_TIMEOUT_MS, why, sizeof(why));
    rd_kafka_DeleteTopics(rk, &t, 1, ao, q);
    int rc = -1;
    rd_kafka_event_t *ev = admin_result(q, "DeleteTopics", err, cap);
    if (ev) {
        size_t n;
        const rd_kafka_topic_result_t **res =
            rd_kafka_DeleteTopics_result_topics(rd_kafka_event_DeleteTopics_result(ev), &n);
        rc = topic_results(res, n, "DeleteTopics", err, cap);
        rd_kafka_event_destroy(ev);
    }
    rd_kafka_AdminOptions_destroy(ao);
    rd_kafka_queue_destroy(q);
    rd_kafka_DeleteTopic_destroy(t);
    return rc;
}

static int kafka_setup(struct loadgen *g, char *err, size_t cap)
{
    rd_kafka_conf_t *c = conf_new(g, err, cap);
    if (!c)
        return -1;
    rd_kafka_t *rk = handle_new(RD_KAFKA_PRODUCER, c, err, cap);
    if (!rk)
        return -1;
    if (topic_create(rk, g->topic, err, cap) < 0) {
        rd_kafka_destroy(rk);
        return -1;
    }
    struct kctx *k = calloc(1, sizeof(*k));
    k->admin = rk;
    g->ctx = k;
    snprintf(g->info, sizeof(g->info), " librdkafka=%s", rd_kafka_version_str());
    return 0;
}

static void kafka_teardown(struct loadgen *g)
{
    struct kctx *k = g->ctx;
    char err[512];
    if (topic_delete(k->admin, g->topic, err, sizeof(err)) < 0)
        fprintf(stderr, "bench_kafka: %s (ignored)\n", err);
    rd_kafka_destroy(k->admin);
    free(k);
}

/* ---- producers ----------------------------------------------------------------------------------
 */

/* The delivery report: served by rd_kafka_poll on the producer's thread. */
static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    (void)rk;
    struct loadgen_worker *w = opaque;
    if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR) {
        loadgen_acked(w, (uint64_t)(uintptr_t)m->_private);
        return;
    }
    loadgen_ack_failed(w);
    /* purged at the end of the run: not the broker's failure */
    if (m->err != RD_KAFKA_RESP_ERR__PURGE_QUEUE && m->err != RD_KAFKA_RESP_ERR__PURGE_INFLIGHT)
        loadgen_fail(w, "delivery failed: %s", rd_kafka_err2str(m->err));
}

static rd_kafka_t *producer_new(struct loadgen_worker *w, char *err, size_t cap)
{
    const struct loadgen *g = w->g;
    rd_kafka_conf_t *c = conf_new(g, err, cap);
    if (!c)
        return NULL;
    if (conf_set(c, "acks", g->opt.acks_all ? "all" : "1", err, cap) < 0 ||
        (g->opt.scenario == LOADGEN_LATENCY && conf_set(c, "linger.ms", "0", err, cap) < 0)) {
        rd_kafka_conf_destroy(c);
        return NULL;
    }
    rd_kafka_conf_set_dr_msg_cb(c, on_delivery);
    rd_kafka_conf_set_opaque(c, w);
    return handle_new(RD_KAFKA_PRODUCER, c, err, cap);
}

/* Produces one record stamped t_ns. Returns 0, 1 when librdkafka's queue is full, or -1. */
static int produce_one(struct loadgen_worker *w, rd_kafka_topic_t *rkt, void *value, uint64_t t_ns)
{
    loadgen_stamp(w, value, t_ns);
    if (rd_kafka_produce(rkt, 0, RD_KAFKA_MSG_F_COPY, value, (size_t)w->g->opt.size, NULL, 0,
                         (void *)(uintptr_t)t_ns) == 0) {
        loadgen_sent(w, 1);
        return 0;
    }
    rd_kafka_resp_err_t e = rd_kafka_last_error();
    if (e == RD_KAFKA_RESP_ERR__QUEUE_FULL) {
        w->seq--; /* not sent: the next record reuses the number */
        return 1;
    }
    return loadgen_fail(w, "produce: %s", rd_kafka_err2str(e));
}

/* As fast as the window (and librdkafka's queue) allow; with a quota, until it is acked. */
static int produce_flat_out(struct loadgen_worker *w, rd_kafka_t *rk, rd_kafka_topic_t *rkt,
                            void *value)
{
    while (loadgen_producing(w)) {
        uint64_t n = loadgen_room(w, PRODUCE_BURST);
        int full = 0;
        for (uint64_t i = 0; i < n && !full; i++) {
            full = produce_one(w, rkt, value, clock_mono_ns());
            if (full < 0)
                return -1;
        }
        /* block briefly for delivery reports when nothing more may go out */
        rd_kafka_poll(rk, n == 0 || full ? 1 : 0);
    }
    return 0;
}

/* One record per scheduled time, stamped with that time. */
static int produce_paced(struct loadgen_worker *w, rd_kafka_t *rk, rd_kafka_topic_t *rkt,
                         void *value)
{
    while (loadgen_producing(w)) {
        uint64_t t = loadgen_next_send(w);
        bench_sleep_until(t);
        int full;
        while ((full = produce_one(w, rkt, value, t)) == 1 && loadgen_producing(w))
            rd_kafka_poll(rk, 1);
        if (full < 0)
            return -1;
        rd_kafka_poll(rk, 0);
    }
    return 0;
}

/* Connects and learns the topic's leader before the run starts: without it the first records
 * wait in librdkafka's queue for about a second (seen with ternd) and count as latency. */
static int metadata_get(struct loadgen_worker *w, rd_kafka_t *rk, rd_kafka_topic_t *rkt)
{
    const struct rd_kafka_metadata *md;
    rd_kafka_resp_err_t e = rd_kafka_metadata(rk, 0, rkt, &md, ADMIN_TIMEOUT_MS);
    if (e)
        return loadgen_fail(w, "metadata: %s", rd_kafka_err2str(e));
    rd_kafka_metadata_destroy(md);
    return 0;
}

static int kafka_producer(struct loadgen_worker *w)
{
    char err[512];
    rd_kafka_t *rk = producer_new(w, err, sizeof(err));
    if (!rk)
        return loadgen_fail(w, "%s", err);
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, w->g->topic, NULL);
    void *value = loadgen_value_new(w->g);
    int rc = metadata_get(w, rk, rkt);
    if (rc == 0 && loadgen_wait(w, LOADGEN_FILL))
        rc = w->g->opt.scenario == LOADGEN_LATENCY ? produce_paced(w, rk, rkt, value)
                                                   : produce_flat_out(w, rk, rkt, value);
    /* what is still queued or in flight no longer counts: drop it rather than wait for it */
    rd_kafka_purge(rk, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
    rd_kafka_flush(rk, CLOSE_TIMEOUT_MS);
    rd_kafka_topic_destroy(rkt);
    rd_kafka_destroy(rk);
    free(value);
    return rc;
}

/* ---- the consumer -------------------------------------------------------------------------------
 */

static rd_kafka_t *consumer_new(struct loadgen_worker *w, char *err, size_t cap)
{
    const struct loadgen *g = w->g;
    rd_kafka_conf_t *c = conf_new(g, err, cap);
    if (!c)
        return NULL;
    char group[160];
    snprintf(group, sizeof(group), "%s-group", g->topic);
    if (conf_set(c, "group.id", group, err, cap) < 0 ||
        conf_set(c, "enable.auto.commit", "false", err, cap) < 0 ||
        conf_set(c, "enable.auto.offset.store", "false", err, cap) < 0) {
        rd_kafka_conf_destroy(c);
        return NULL;
    }
    rd_kafka_t *rk = handle_new(RD_KAFKA_CONSUMER, c, err, cap);
    if (rk)
        rd_kafka_poll_set_consumer(rk);
    return rk;
}

/* Assigns partition 0 from its first offset. */
static int assign_from_start(struct loadgen_worker *w, rd_kafka_t *rk)
{
    rd_kafka_topic_partition_list_t *parts = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(parts, w->g->topic, 0)->offset = RD_KAFKA_OFFSET_BEGINNING;
    rd_kafka_resp_err_t e = rd_kafka_assign(rk, parts);
    rd_kafka_topic_partition_list_destroy(parts);
    if (e)
        return loadgen_fail(w, "assign: %s", rd_kafka_err2str(e));
    return 0;
}

/* Takes messages in batches (rd_kafka_consume_batch_queue returns when the batch is full or
 * the timeout passed), or one at a time in the latency scenario. */
static int consume_loop(struct loadgen_worker *w, rd_kafka_queue_t *q)
{
    rd_kafka_message_t *msgs[CONSUME_BATCH];
    size_t batch = w->g->opt.scenario == LOADGEN_LATENCY ? 1 : CONSUME_BATCH;
    while (loadgen_consuming(w)) {
        ssize_t n = rd_kafka_consume_batch_queue(q, 100, msgs, batch);
        if (n < 0)
            return loadgen_fail(w, "consume: %s", rd_kafka_err2str(rd_kafka_last_error()));
        int rc = 0;
        for (ssize_t i = 0; i < n; i++) {
            rd_kafka_message_t *m = msgs[i];
            if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR)
                loadgen_received(w, m->len, loadgen_stamp_time(m->payload, m->len));
            else if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF && rc == 0)
                rc = loadgen_fail(w, "consume: %s", rd_kafka_message_errstr(m));
            rd_kafka_message_destroy(m);
        }
        if (rc < 0)
            return -1;
    }
    return 0;
}

static int kafka_consumer(struct loadgen_worker *w)
{
    char err[512];
    rd_kafka_t *rk = consumer_new(w, err, sizeof(err));
    if (!rk)
        return loadgen_fail(w, "%s", err);
    /* latency: reading before the producer starts; consume: the read starts the measurement */
    bool early = w->g->opt.scenario == LOADGEN_LATENCY;
    int rc = early ? assign_from_start(w, rk) : 0;
    if (rc == 0 && loadgen_wait(w, early ? LOADGEN_WARMUP : LOADGEN_MEASURE) &&
        (early || (rc = assign_from_start(w, rk)) == 0)) {
        rd_kafka_queue_t *q = rd_kafka_queue_get_consumer(rk);
        rc = consume_loop(w, q);
        rd_kafka_queue_destroy(q);
    }
    rd_kafka_consumer_close(rk);
    rd_kafka_destroy(rk);
    return rc;
}

static const struct loadgen_ops kafka_ops = {
    .name = "kafka",
    .help = help,
    .setup = kafka_setup,
    .teardown = kafka_teardown,
    .producer = kafka_producer,
    .consumer = kafka_consumer,
};

int main(int argc, char **argv)
{
    return loadgen_main(argc, argv, &kafka_ops);
}
