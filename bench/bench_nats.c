/*
 * bench_nats.c - the NATS JetStream load generator of `make bench-kafka`, on libnats (Debian's
 * libnats-dev, the NATS C client). Same scenarios, options and result line as bench_kafka
 * (loadgen.h); bench/kafka_bench.py runs it against Debian's nats-server started with -js.
 *
 * Stream: a JetStream stream named after the topic (bench-<pid>) on the subject of the same
 * name, file storage, one replica, no limits; added with js_AddStream before the run (which
 * sends $JS.API.STREAM.CREATE.<name>) and deleted after it.
 *
 * Producers: one connection per producer thread (SendAsap in the latency scenario, where the
 * Kafka producer runs with linger.ms 0); js_PublishAsync with an AckHandler, so every
 * record is a PUB with a reply subject and counts when its JetStream PubAck comes back. The
 * ack handler runs on libnats' thread for the connection's reply subscription; it reads the
 * send time from the original message. libnats' own MaxPending is set to --window.
 * JetStream acknowledges once the record is written to its file store, without an fsync
 * (nats-server 2.9 fsyncs on a timer and has no option to do it per write), so --acks is
 * accepted and ignored: both acks rows run the same server configuration.
 *
 * Consumer: an ordered push consumer (js_Subscribe with Ordered: ack policy none, flow
 * control and heartbeats, delivery from the first record), the client's recommended way to
 * read a stream fast; libnats calls the message handler on the subscription's own thread.
 *
 * The handlers take the worker's mutex, so that once a worker has closed it no late callback
 * touches its counters (libnats may still deliver after an unsubscribe). The per-worker state
 * is static, so a callback that runs after its worker returned still finds its lock; teardown
 * waits for libnats' threads (nats_CloseAndWait) before the process exits.
 */
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <nats/nats.h>

#include "base/clock.h"
#include "loadgen.h"

#define PUBLISH_BURST 256
#define WAIT_US 50 /* a producer with a full window sleeps this long between looks */
#define ACK_WAIT_MS 10000

static const char help[] =
    "NATS JetStream (libnats): publishes wait for JetStream's PubAck; nats-server 2.9 writes\n"
    "without an fsync per record, so --acks is accepted and ignored.";

/* A worker's connection and the lock its callbacks take. */
struct nworker {
    struct loadgen_worker *w;
    pthread_mutex_t lock;
    bool closed; /* under lock: callbacks do nothing any more */
    natsConnection *nc;
    jsCtx *js;
};

static struct nworker nworkers[LOADGEN_MAX_WORKERS]; /* by worker id */

static struct nworker *nworker_open(struct loadgen_worker *w)
{
    struct nworker *x = &nworkers[w->id];
    *x = (struct nworker){.w = w};
    pthread_mutex_init(&x->lock, NULL);
    return x;
}

/* After this no callback touches the worker; the lock stays for late callbacks. */
static void nworker_close(struct nworker *x)
{
    pthread_mutex_lock(&x->lock);
    x->closed = true;
    pthread_mutex_unlock(&x->lock);
}

/* Connects to the server. In the latency scenario with SendAsap: libnats otherwise leaves a
 * publish in its buffer for its flusher thread, as librdkafka's linger.ms does (set to 0 there
 * too). */
static int connect_to(const struct loadgen *g, natsConnection **nc, char *err, size_t cap)
{
    char url[300];
    snprintf(url, sizeof(url), "nats://%s:%d", g->opt.host, g->opt.port);
    natsOptions *o = NULL;
    natsStatus s = natsOptions_Create(&o);
    if (s == NATS_OK)
        s = natsOptions_SetURL(o, url);
    if (s == NATS_OK)
        s = natsOptions_SetSendAsap(o, g->opt.scenario == LOADGEN_LATENCY);
    if (s == NATS_OK)
        s = natsConnection_Connect(nc, o);
    natsOptions_Destroy(o);
    if (s != NATS_OK) {
        snprintf(err, cap, "connect %s: %s", url, natsStatus_GetText(s));
        return -1;
    }
    return 0;
}

static void js_error(char *err, size_t cap, const char *what, natsStatus s, jsErrCode jerr)
{
    const char *last = nats_GetLastError(NULL);
    snprintf(err, cap, "%s: %s (JetStream error %d)%s%s", what, natsStatus_GetText(s), (int)jerr,
             last ? ": " : "", last ? last : "");
}

/* ---- the stream ---------------------------------------------------------------------------------
 */

struct nctx {
    natsConnection *nc;
    jsCtx *js;
};

static int nats_setup(struct loadgen *g, char *err, size_t cap)
{
    struct nctx *n = calloc(1, sizeof(*n));
    if (connect_to(g, &n->nc, err, cap) < 0)
        goto fail;
    natsStatus s = natsConnection_JetStream(&n->js, n->nc, NULL);
    if (s != NATS_OK) {
        js_error(err, cap, "JetStream context", s, 0);
        goto fail;
    }
    jsStreamConfig sc;
    jsStreamConfig_Init(&sc);
    const char *subjects[] = {g->topic};
    sc.Name = g->topic;
    sc.Subjects = subjects;
    sc.SubjectsLen = 1;
    sc.Storage = js_FileStorage;
    sc.Replicas = 1;
    jsErrCode jerr = 0;
    s = js_AddStream(NULL, n->js, &sc, NULL, &jerr);
    if (s != NATS_OK) {
        js_error(err, cap, "add stream", s, jerr);
        goto fail;
    }
    g->ctx = n;
    snprintf(g->info, sizeof(g->info), " libnats=%s storage=file fsync=none", nats_GetVersion());
    return 0;
fail:
    jsCtx_Destroy(n->js);
    natsConnection_Destroy(n->nc);
    free(n);
    return -1;
}

static void nats_teardown(struct loadgen *g)
{
    struct nctx *n = g->ctx;
    jsErrCode jerr = 0;
    natsStatus s = js_DeleteStream(n->js, g->topic, NULL, &jerr);
    if (s != NATS_OK) {
        char err[512];
        js_error(err, sizeof(err), "delete stream", s, jerr);
        fprintf(stderr, "bench_nats: %s (ignored)\n", err);
    }
    jsCtx_Destroy(n->js);
    natsConnection_Destroy(n->nc);
    free(n);
    nats_CloseAndWait(ACK_WAIT_MS); /* libnats' threads, and any late callback, are done */
}

/* ---- producers ----------------------------------------------------------------------------------
 */

static void on_ack(jsCtx *js, natsMsg *msg, jsPubAck *pa, jsPubAckErr *pae, void *closure)
{
    (void)js;
    struct nworker *x = closure;
    pthread_mutex_lock(&x->lock);
    if (!x->closed) {
        if (pa) {
            loadgen_acked(
                x->w, loadgen_stamp_time(natsMsg_GetData(msg), (size_t)natsMsg_GetDataLength(msg)));
        } else {
            loadgen_ack_failed(x->w);
            loadgen_fail(x->w, "publish failed: %s (JetStream error %d) %s",
                         natsStatus_GetText(pae->Err), (int)pae->ErrCode,
                         pae->ErrText ? pae->ErrText : "");
        }
    }
    pthread_mutex_unlock(&x->lock);
    natsMsg_Destroy(msg);
}

/* Publishes one record stamped t_ns. Returns 0, 1 when libnats says its window is full, -1. */
static int publish_one(struct nworker *x, void *value, uint64_t t_ns)
{
    struct loadgen_worker *w = x->w;
    loadgen_stamp(w, value, t_ns);
    natsStatus s = js_PublishAsync(x->js, w->g->topic, value, w->g->opt.size, NULL);
    if (s == NATS_OK) {
        loadgen_sent(w, 1);
        return 0;
    }
    w->seq--;
    if (s == NATS_TIMEOUT) /* stalled on MaxPending */
        return 1;
    return loadgen_fail(w, "publish: %s", natsStatus_GetText(s));
}

static int publish_flat_out(struct nworker *x, void *value)
{
    struct loadgen_worker *w = x->w;
    while (loadgen_producing(w)) {
        uint64_t n = loadgen_room(w, PUBLISH_BURST);
        int full = 0;
        for (uint64_t i = 0; i < n && !full; i++)
            if ((full = publish_one(x, value, clock_mono_ns())) < 0)
                return -1;
        if (n == 0 || full)
            usleep(WAIT_US);
    }
    return 0;
}

static int publish_paced(struct nworker *x, void *value)
{
    struct loadgen_worker *w = x->w;
    while (loadgen_producing(w)) {
        uint64_t t = loadgen_next_send(w);
        bench_sleep_until(t);
        int full;
        while (loadgen_room(w, 1) == 0 && loadgen_producing(w))
            usleep(WAIT_US);
        while ((full = publish_one(x, value, t)) == 1 && loadgen_producing(w))
            usleep(WAIT_US);
        if (full < 0)
            return -1;
    }
    return 0;
}

static int nats_producer(struct loadgen_worker *w)
{
    struct nworker *x = nworker_open(w);
    char err[512];
    int rc = connect_to(w->g, &x->nc, err, sizeof(err));
    if (rc < 0) {
        rc = loadgen_fail(w, "%s", err);
        goto out;
    }
    jsOptions jo;
    jsOptions_Init(&jo);
    jo.PublishAsync.MaxPending = w->g->opt.window;
    jo.PublishAsync.AckHandler = on_ack;
    jo.PublishAsync.AckHandlerClosure = x;
    natsStatus s = natsConnection_JetStream(&x->js, x->nc, &jo);
    if (s != NATS_OK) {
        rc = loadgen_fail(w, "JetStream context: %s", natsStatus_GetText(s));
        goto out;
    }
    void *value = loadgen_value_new(w->g);
    if (loadgen_wait(w, LOADGEN_FILL))
        rc = w->g->opt.scenario == LOADGEN_LATENCY ? publish_paced(x, value)
                                                   : publish_flat_out(x, value);
    free(value);
out:
    nworker_close(x);
    jsCtx_Destroy(x->js);
    natsConnection_Destroy(x->nc);
    return rc;
}

/* ---- the consumer -------------------------------------------------------------------------------
 */

static void on_msg(natsConnection *nc, natsSubscription *sub, natsMsg *msg, void *closure)
{
    (void)nc;
    (void)sub;
    struct nworker *x = closure;
    const char *data = natsMsg_GetData(msg);
    size_t len = (size_t)natsMsg_GetDataLength(msg);
    pthread_mutex_lock(&x->lock);
    if (!x->closed)
        loadgen_received(x->w, len, loadgen_stamp_time(data, len));
    pthread_mutex_unlock(&x->lock);
    natsMsg_Destroy(msg);
}

static int subscribe(struct nworker *x, natsSubscription **sub)
{
    jsSubOptions so;
    jsSubOptions_Init(&so);
    so.Ordered = true;
    jsErrCode jerr = 0;
    natsStatus s = js_Subscribe(sub, x->js, x->w->g->topic, on_msg, x, NULL, &so, &jerr);
    if (s != NATS_OK) {
        char err[512];
        js_error(err, sizeof(err), "subscribe", s, jerr);
        return loadgen_fail(x->w, "%s", err);
    }
    /* no client-side drop: JetStream's flow control paces the server instead */
    natsSubscription_SetPendingLimits(*sub, -1, -1);
    return 0;
}

static int nats_consumer(struct loadgen_worker *w)
{
    struct nworker *x = nworker_open(w);
    natsSubscription *sub = NULL;
    char err[512];
    int rc = connect_to(w->g, &x->nc, err, sizeof(err));
    if (rc < 0) {
        rc = loadgen_fail(w, "%s", err);
        goto out;
    }
    natsStatus s = natsConnection_JetStream(&x->js, x->nc, NULL);
    if (s != NATS_OK) {
        rc = loadgen_fail(w, "JetStream context: %s", natsStatus_GetText(s));
        goto out;
    }
    /* latency: reading before the producer starts; consume: the read starts the measurement */
    bool early = w->g->opt.scenario == LOADGEN_LATENCY;
    if (early && (rc = subscribe(x, &sub)) < 0)
        goto out;
    if (!loadgen_wait(w, early ? LOADGEN_WARMUP : LOADGEN_MEASURE))
        goto out;
    if (!early && (rc = subscribe(x, &sub)) < 0)
        goto out;
    while (loadgen_consuming(w))
        usleep(200);
out:
    nworker_close(x);
    if (sub) {
        natsSubscription_Unsubscribe(sub);
        natsSubscription_Destroy(sub);
    }
    jsCtx_Destroy(x->js);
    natsConnection_Destroy(x->nc);
    return rc;
}

static const struct loadgen_ops nats_ops = {
    .name = "nats",
    .help = help,
    .setup = nats_setup,
    .teardown = nats_teardown,
    .producer = nats_producer,
    .consumer = nats_consumer,
};

int main(int argc, char **argv)
{
    return loadgen_main(argc, argv, &nats_ops);
}
