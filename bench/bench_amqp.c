/*
 * bench_amqp.c - an AMQP 0-9-1 load generator on rabbitmq-c, for comparing ternd with RabbitMQ.
 * bench/amqp_bench.py runs it against both brokers; bench/README.md explains the numbers.
 *
 * Scenarios (--scenario), each on its own queue (bench-<scenario>-<pid> unless --queue), declared
 * before the run and deleted after it (unless --keep):
 *
 *   confirm  persistent messages (delivery_mode 2) to a durable queue with publisher confirms;
 *            --publishers connections, each keeping at most --window messages unconfirmed.
 *            Result: confirmed msg/s and confirm latency (publish to the ack that covers it).
 *   e2e      transient messages, no confirms, to a transient queue, and --consumers no-ack
 *            consumers running at the same time. Result: consumed msg/s (and published msg/s).
 *   latency  publishers at a fixed total --rate, the intended send time in the body, and no-ack
 *            consumers. Result: end-to-end latency p50/p99/p99.9. With --durable: persistent
 *            messages, durable queue, publisher confirms.
 *   fill     --count persistent messages with confirms to a durable queue, no consumer; the
 *            queue is kept, so the driver can read the broker's memory with it full.
 *
 * --churn R (latency only) adds a connection that, R times a second, declares a server-named
 * queue (durable with --durable, else exclusive), publishes one message to it and deletes it,
 * as RPC clients do with reply queues: the latency then shows what queue set-up and tear-down
 * cost everybody else. Result: churn_per_s, the cycles completed per measured second.
 *
 * Timed scenarios run --warmup seconds unmeasured, then --seconds measured; with --count the
 * publishers send that many messages in all and the run ends when every one is confirmed.
 *
 * Output: one line on stdout, `result scenario=NAME key=value ...`; rates are per second
 * (_per_s), latencies in microseconds (_us). client_cpu is this process's CPU time over the
 * measured wall time (1.0 = one core busy): near the number of connections it means the
 * generator, not the broker, was the limit. Errors go to stderr and exit 1.
 *
 * Publishing: up to --batch messages go out in one write (default 64; 1 in the latency
 * scenario). The method and content-header frames are encoded once by rabbitmq-c's encoders
 * (amqp_encode_method/properties) and copied before each body, as a client with a write buffer
 * sends them. --basic-publish uses amqp_basic_publish instead: three writes per message. Against
 * a stand-in broker that reads and discards, one publisher reached ~77k msg/s that way, ~240k
 * with one message per write and ~9M with 64 (2-CPU VM). Everything else (connection, login,
 * declare, confirm.select, consume, and reading every frame) goes through rabbitmq-c.
 *
 * Confirms are checked, not just counted: an ack or nack for a tag never published or already
 * settled, or no confirm for DRAIN_SECONDS with the window full, fails the run.
 *
 * Bodies start with two native 64-bit words: the send time (CLOCK_MONOTONIC ns, the same clock
 * in every thread of this process) and a sequence number. In the latency scenario the send time
 * is the scheduled one, not the actual one, so a publisher that falls behind its schedule shows
 * up in the latency instead of silently sending less (no coordinated omission).
 *
 * Threads: one per connection, each owning its rabbitmq-c connection; the main thread declares
 * and deletes the queue on a connection of its own, moves the phases and sums the counters.
 * Counters are atomics written by their own thread only; histograms are read after join.
 * At the end publishers close their connection; consumers just drop theirs (see worker_main).
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <amqp.h>
#include <amqp_framing.h>
#include <amqp_tcp_socket.h>

#include "benchutil.h"

#include "base/buf.h"
#include "base/clock.h"
#include "base/tern.h"

#define CHANNEL 1
#define FRAME_MAX 131072
#define FRAME_END 0xCE
#define BODY_HEADER_BYTES 16 /* send time + sequence number */
#define MAX_WORKERS 64
#define RPC_TIMEOUT_S 30   /* for declare, consume, confirm.select, delete, close */
#define POLL_MS 100        /* longest a thread blocks before looking at the phase again */
#define DRAIN_SECONDS 30.0 /* longest wait for a confirm, and with --count for the last ones */
#define CONSUMER_GRACE_NS (200 * 1000 * 1000ull) /* consumers run on after the publishers */

enum scenario { SCENARIO_CONFIRM, SCENARIO_E2E, SCENARIO_LATENCY, SCENARIO_FILL };

static const char *const scenario_names[] = {"confirm", "e2e", "latency", "fill"};

/* The phases every thread follows, moved forward by the main thread only. */
enum phase { PHASE_SETUP, PHASE_WARMUP, PHASE_MEASURE, PHASE_STOP, PHASE_DONE };

struct options {
    const char *host, *user, *pass, *vhost, *queue;
    int port;
    enum scenario scenario;
    int size;       /* body bytes */
    int publishers; /* connections publishing */
    int consumers;  /* connections consuming (e2e, latency) */
    int window;     /* unconfirmed messages per publisher */
    int batch;      /* messages per write */
    double seconds, warmup, rate, connect_timeout;
    uint64_t count;     /* 0: timed run */
    bool durable;       /* persistent messages, durable queue, confirms */
    bool keep;          /* leave the queue (fill) */
    bool basic_publish; /* amqp_basic_publish per message instead of batched writes */
    double churn;       /* latency: queue declare/publish/delete cycles per second */
};

struct bench;

/* One connection and its thread: a publisher or a consumer. */
struct worker {
    struct bench *b;
    int id;
    bool consumer;
    pthread_t thread;
    bool joined;
    amqp_connection_state_t conn;
    int fd;
    _Atomic uint64_t published, confirmed, nacked, received;
    struct bench_hist lat; /* publishers: confirm latency; consumers: end-to-end latency */
    uint64_t quota;        /* --count: this publisher's share; 0: until PHASE_STOP */
    uint64_t seq;          /* next body sequence number */
    /* confirm tracking: tags next_tag - window .. next_tag - 1 live in slot tag % window */
    uint64_t next_tag, oldest; /* next tag to publish; lowest tag not yet confirmed */
    uint64_t settled_ns;       /* when a confirm last arrived (or publishing started) */
    uint64_t *slot_tag, *slot_ns;
    /* publishing */
    struct buf out;        /* frames waiting for one write */
    uint8_t *body;         /* --basic-publish: the body handed to amqp_basic_publish */
    uint64_t interval_ns;  /* latency: time between this publisher's sends */
    uint64_t next_send_ns; /* latency: the next scheduled send time */
    /* consuming: the message being read */
    uint64_t body_left;
    bool want_header, body_seen;
    uint64_t msg_ns;
    char err[256]; /* set by the thread on failure */
};

struct bench {
    struct options opt;
    char queue[128];
    bool confirms, persistent;
    struct buf frames; /* method frame, content header frame, body frame header */
    _Atomic int phase;
    _Atomic int ready;  /* workers connected and set up */
    _Atomic bool abort; /* a worker failed */
    struct worker workers[MAX_WORKERS];
    int nworkers;
    pthread_t churn_thread;
    bool churning;
    _Atomic uint64_t churned; /* cycles completed in PHASE_MEASURE */
    char churn_err[256];
};

/* ---- failure --------------------------------------------------------------------------------- */

static _Noreturn __attribute__((format(printf, 1, 2))) void fail(const char *fmt, ...)
{
    va_list ap;
    fputs("bench_amqp: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    exit(1);
}

/* Records the first failure of a worker and tells every thread to stop. Returns -1. */
static __attribute__((format(printf, 2, 3))) int worker_fail(struct worker *w, const char *fmt, ...)
{
    if (!w->err[0]) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(w->err, sizeof(w->err), fmt, ap);
        va_end(ap);
    }
    atomic_store(&w->b->abort, true);
    return -1;
}

/* A reply from a synchronous rabbitmq-c call as text: the library error or the broker's close. */
static void reply_text(amqp_rpc_reply_t r, char *out, size_t cap)
{
    switch (r.reply_type) {
    case AMQP_RESPONSE_NORMAL:
        snprintf(out, cap, "ok");
        return;
    case AMQP_RESPONSE_NONE:
        snprintf(out, cap, "no reply");
        return;
    case AMQP_RESPONSE_LIBRARY_EXCEPTION:
        snprintf(out, cap, "%s", amqp_error_string2(r.library_error));
        return;
    case AMQP_RESPONSE_SERVER_EXCEPTION:
        break;
    }
    if (r.reply.id == AMQP_CONNECTION_CLOSE_METHOD) {
        const amqp_connection_close_t *c = r.reply.decoded;
        snprintf(out, cap, "connection closed by the broker: %u %.*s", c->reply_code,
                 (int)c->reply_text.len, (const char *)c->reply_text.bytes);
    } else if (r.reply.id == AMQP_CHANNEL_CLOSE_METHOD) {
        const amqp_channel_close_t *c = r.reply.decoded;
        snprintf(out, cap, "channel closed by the broker: %u %.*s", c->reply_code,
                 (int)c->reply_text.len, (const char *)c->reply_text.bytes);
    } else {
        snprintf(out, cap, "unexpected method 0x%08x from the broker", (unsigned)r.reply.id);
    }
}

/* ---- time and histograms -------------------------------------------------------------------- */

/* ---- connections -------------------------------------------------------------------------- */

/* One attempt. Returns 0, -EAGAIN when the TCP connect failed (worth retrying), or -1. */
static int conn_try(const struct options *o, amqp_connection_state_t conn, char *err, size_t cap)
{
    amqp_socket_t *sock = amqp_tcp_socket_new(conn);
    if (!sock) {
        snprintf(err, cap, "amqp_tcp_socket_new failed");
        return -1;
    }
    struct timeval rpc_timeout = {.tv_sec = RPC_TIMEOUT_S};
    amqp_set_rpc_timeout(conn, &rpc_timeout);
    int st = amqp_socket_open(sock, o->host, o->port);
    if (st != AMQP_STATUS_OK) {
        snprintf(err, cap, "connect %s:%d: %s (is the broker listening there?)", o->host, o->port,
                 amqp_error_string2(st));
        return -EAGAIN;
    }
    amqp_rpc_reply_t r =
        amqp_login(conn, o->vhost, 0, FRAME_MAX, 0, AMQP_SASL_METHOD_PLAIN, o->user, o->pass);
    if (r.reply_type != AMQP_RESPONSE_NORMAL) {
        char why[200];
        reply_text(r, why, sizeof(why));
        snprintf(err, cap, "login to %s:%d: %s", o->host, o->port, why);
        return -1;
    }
    amqp_channel_open(conn, CHANNEL);
    r = amqp_get_rpc_reply(conn);
    if (r.reply_type != AMQP_RESPONSE_NORMAL) {
        char why[200];
        reply_text(r, why, sizeof(why));
        snprintf(err, cap, "channel.open: %s", why);
        return -1;
    }
    return 0;
}

/*
 * Connects, logs in (no heartbeats) and opens channel 1, retrying a failed TCP connect until
 * --connect-timeout: a broker that has just started may not listen yet. A refused login or
 * channel is final. On success *out owns the connection (conn_close frees it); on failure err
 * says why and returns -1.
 */
static int conn_open(const struct options *o, amqp_connection_state_t *out, char *err, size_t cap)
{
    uint64_t deadline = clock_mono_ns() + (uint64_t)(o->connect_timeout * 1e9);
    for (;;) {
        amqp_connection_state_t conn = amqp_new_connection();
        if (!conn) {
            snprintf(err, cap, "amqp_new_connection: out of memory");
            return -1;
        }
        int rc = conn_try(o, conn, err, cap);
        if (rc == 0) {
            *out = conn;
            return 0;
        }
        amqp_destroy_connection(conn);
        if (rc != -EAGAIN || clock_mono_ns() >= deadline)
            return -1;
        usleep(100 * 1000);
    }
}

/* Closes the connection politely when it still works, and frees it. */
static void conn_close(amqp_connection_state_t conn, bool polite)
{
    if (polite)
        amqp_connection_close(conn, AMQP_REPLY_SUCCESS);
    amqp_destroy_connection(conn);
}

/* Checks the reply of the last synchronous call on conn; fills err and returns -1 on failure. */
static int rpc_check(amqp_connection_state_t conn, const char *what, char *err, size_t cap)
{
    amqp_rpc_reply_t r = amqp_get_rpc_reply(conn);
    if (r.reply_type == AMQP_RESPONSE_NORMAL)
        return 0;
    char why[200];
    reply_text(r, why, sizeof(why));
    snprintf(err, cap, "%s: %s", what, why);
    return -1;
}

/* ---- publishing --------------------------------------------------------------------------- */

static void put_frame_header(struct buf *f, uint8_t type, uint32_t size)
{
    buf_put_u8(f, type);
    buf_put_u16(f, CHANNEL);
    buf_put_u32(f, size);
}

/*
 * Encodes, once, the basic.publish method frame and the content header frame every message of
 * the run starts with, and the header of its body frame (b->frames; the body and the frame end
 * follow it). The method arguments and properties are encoded by rabbitmq-c.
 */
static void frames_build(struct bench *b)
{
    uint8_t tmp[512];
    amqp_bytes_t enc = {sizeof(tmp), tmp};
    amqp_basic_publish_t m = {.exchange = amqp_empty_bytes,
                              .routing_key = amqp_cstring_bytes(b->queue)};
    int n = amqp_encode_method(AMQP_BASIC_PUBLISH_METHOD, &m, enc);
    if (n < 0)
        fail("amqp_encode_method: %s", amqp_error_string2(n));
    put_frame_header(&b->frames, AMQP_FRAME_METHOD, 4 + (uint32_t)n);
    buf_put_u32(&b->frames, AMQP_BASIC_PUBLISH_METHOD);
    buf_put(&b->frames, tmp, (size_t)n);
    buf_put_u8(&b->frames, FRAME_END);

    amqp_basic_properties_t p = {._flags = AMQP_BASIC_DELIVERY_MODE_FLAG,
                                 .delivery_mode = b->persistent ? 2 : 1};
    n = amqp_encode_properties(AMQP_BASIC_CLASS, &p, enc);
    if (n < 0)
        fail("amqp_encode_properties: %s", amqp_error_string2(n));
    put_frame_header(&b->frames, AMQP_FRAME_HEADER, 12 + (uint32_t)n);
    buf_put_u16(&b->frames, AMQP_BASIC_CLASS);
    buf_put_u16(&b->frames, 0); /* weight */
    buf_put_u64(&b->frames, (uint64_t)b->opt.size);
    buf_put(&b->frames, tmp, (size_t)n);
    buf_put_u8(&b->frames, FRAME_END);

    put_frame_header(&b->frames, AMQP_FRAME_BODY, (uint32_t)b->opt.size);
}

/* Writes the first BODY_HEADER_BYTES of a body: the send time and the sequence number. */
static void body_stamp(uint8_t *body, uint64_t t_ns, uint64_t seq)
{
    memcpy(body, &t_ns, sizeof(t_ns));
    memcpy(body + sizeof(t_ns), &seq, sizeof(seq));
}

/* Appends one whole message (three frames) to w->out. */
static void out_add_message(struct worker *w, uint64_t t_ns)
{
    const struct bench *b = w->b;
    size_t size = (size_t)b->opt.size;
    size_t at = w->out.len;
    uint8_t *p = buf_reserve(&w->out, b->frames.len + size + 1);
    memcpy(p, b->frames.p, b->frames.len);
    p += b->frames.len;
    memset(p + BODY_HEADER_BYTES, 'x', size - BODY_HEADER_BYTES);
    body_stamp(p, t_ns, w->seq++);
    p[size] = FRAME_END;
    w->out.len = at + b->frames.len + size + 1;
}

static int confirms_read(struct worker *w, int timeout_ms);

/* Sends w->out whole. Waits for the socket when it is full, reading confirms meanwhile. */
static int out_flush(struct worker *w)
{
    size_t done = 0;
    while (done < w->out.len) {
        ssize_t n = send(w->fd, w->out.p + done, w->out.len - done, MSG_NOSIGNAL);
        if (n >= 0) {
            done += (size_t)n;
            continue;
        }
        if (errno == EINTR)
            continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK)
            return worker_fail(w, "send: %s", strerror(errno));
        struct pollfd pfd = {.fd = w->fd, .events = POLLOUT | (w->b->confirms ? POLLIN : 0)};
        if (poll(&pfd, 1, POLL_MS) < 0 && errno != EINTR)
            return worker_fail(w, "poll: %s", strerror(errno));
        if ((pfd.revents & POLLIN) && confirms_read(w, 0) < 0)
            return -1;
    }
    buf_clear(&w->out);
    return 0;
}

/* Notes message tag as sent at t_ns (confirms only). */
static void track(struct worker *w, uint64_t t_ns)
{
    if (!w->b->confirms)
        return;
    size_t s = (size_t)(w->next_tag % (uint64_t)w->b->opt.window);
    w->slot_tag[s] = w->next_tag;
    w->slot_ns[s] = t_ns;
    w->next_tag++;
}

/* Publishes n messages stamped t_ns in one write, or one amqp_basic_publish each. */
static int publish(struct worker *w, int n, uint64_t t_ns)
{
    const struct bench *b = w->b;
    for (int i = 0; i < n; i++) {
        track(w, t_ns);
        if (!b->opt.basic_publish) {
            out_add_message(w, t_ns);
            continue;
        }
        amqp_basic_properties_t p = {._flags = AMQP_BASIC_DELIVERY_MODE_FLAG,
                                     .delivery_mode = b->persistent ? 2 : 1};
        body_stamp(w->body, t_ns, w->seq++);
        amqp_bytes_t body = {(size_t)b->opt.size, w->body};
        int st = amqp_basic_publish(w->conn, CHANNEL, amqp_empty_bytes,
                                    amqp_cstring_bytes(b->queue), 0, 0, &p, body);
        if (st != AMQP_STATUS_OK)
            return worker_fail(w, "basic.publish: %s", amqp_error_string2(st));
    }
    if (!b->opt.basic_publish && out_flush(w) < 0)
        return -1;
    atomic_fetch_add_explicit(&w->published, (uint64_t)n, memory_order_relaxed);
    return 0;
}

/* ---- confirms ------------------------------------------------------------------------------ */

/*
 * Settles tag (and with multiple every earlier one still open) as acked or nacked. A tag never
 * published, or settled twice, is a broker bug: returns -1 after worker_fail, else 0.
 */
static int confirm(struct worker *w, uint64_t tag, bool multiple, bool ack)
{
    uint64_t now = clock_mono_ns(), window = (uint64_t)w->b->opt.window;
    if (tag == 0 && multiple) /* tag 0 with multiple: everything outstanding */
        tag = w->next_tag - 1;
    if (tag == 0 || tag >= w->next_tag || (!multiple && w->slot_tag[tag % window] != tag))
        return worker_fail(w, "broker %s tag %" PRIu64 "%s, which is %s", ack ? "acked" : "nacked",
                           tag, multiple ? " (multiple)" : "",
                           tag == 0 || tag >= w->next_tag ? "not published" : "settled already");
    bool measure = atomic_load_explicit(&w->b->phase, memory_order_relaxed) == PHASE_MEASURE;
    uint64_t acked = 0, nacked = 0;
    for (uint64_t t = multiple ? w->oldest : tag; t <= tag; t++) {
        size_t s = (size_t)(t % window);
        if (w->slot_tag[s] != t)
            continue; /* settled by an earlier single ack */
        w->slot_tag[s] = 0;
        if (!ack) {
            nacked++;
            continue;
        }
        acked++;
        if (measure)
            bench_hist_add(&w->lat, now - w->slot_ns[s]);
    }
    while (w->oldest < w->next_tag && w->slot_tag[w->oldest % window] != w->oldest)
        w->oldest++;
    atomic_fetch_add_explicit(&w->confirmed, acked, memory_order_relaxed);
    atomic_fetch_add_explicit(&w->nacked, nacked, memory_order_relaxed);
    w->settled_ns = now;
    return 0;
}

/* Settles a confirm, ignores flow control, and turns anything else (a close) into a failure. */
static int publisher_method(struct worker *w, const amqp_method_t *m)
{
    if (m->id == AMQP_BASIC_ACK_METHOD) {
        const amqp_basic_ack_t *a = m->decoded;
        return confirm(w, a->delivery_tag, a->multiple, true);
    }
    if (m->id == AMQP_BASIC_NACK_METHOD) {
        const amqp_basic_nack_t *a = m->decoded;
        return confirm(w, a->delivery_tag, a->multiple, false);
    }
    if (m->id == AMQP_CONNECTION_BLOCKED_METHOD || m->id == AMQP_CONNECTION_UNBLOCKED_METHOD)
        return 0; /* flow control: the broker stops reading us for a while */
    amqp_rpc_reply_t r = {.reply_type = AMQP_RESPONSE_SERVER_EXCEPTION, .reply = *m};
    char why[200];
    reply_text(r, why, sizeof(why));
    return worker_fail(w, "%s", why);
}

/*
 * Reads every frame that has arrived, waiting up to timeout_ms for the first one. Returns 0
 * (also on timeout) or -1 after worker_fail.
 */
static int confirms_read(struct worker *w, int timeout_ms)
{
    struct timeval tv = {.tv_sec = timeout_ms / 1000, .tv_usec = (timeout_ms % 1000) * 1000};
    for (;;) {
        amqp_frame_t f;
        int st = amqp_simple_wait_frame_noblock(w->conn, &f, &tv);
        if (st == AMQP_STATUS_TIMEOUT)
            return 0;
        if (st != AMQP_STATUS_OK)
            return worker_fail(w, "reading confirms: %s", amqp_error_string2(st));
        if (f.frame_type == AMQP_FRAME_METHOD && publisher_method(w, &f.payload.method) < 0)
            return -1;
        amqp_maybe_release_buffers(w->conn);
        tv.tv_sec = 0;
        tv.tv_usec = 0;
    }
}

static uint64_t in_flight(const struct worker *w)
{
    return w->next_tag - w->oldest;
}

/* With the window full: waits for a confirm, failing after DRAIN_SECONDS without one. */
static int window_wait(struct worker *w)
{
    if (clock_mono_ns() - w->settled_ns > (uint64_t)(DRAIN_SECONDS * 1e9))
        return worker_fail(w, "no confirm for %.0f s with %" PRIu64 " messages unconfirmed",
                           DRAIN_SECONDS, in_flight(w));
    return confirms_read(w, POLL_MS);
}

/* --count: waits for the last confirms, up to DRAIN_SECONDS. */
static int confirms_drain(struct worker *w)
{
    uint64_t deadline = clock_mono_ns() + (uint64_t)(DRAIN_SECONDS * 1e9);
    while (in_flight(w) > 0 && !atomic_load(&w->b->abort)) {
        if (clock_mono_ns() > deadline)
            return worker_fail(w, "%" PRIu64 " confirms missing after %.0f s", in_flight(w),
                               DRAIN_SECONDS);
        if (confirms_read(w, POLL_MS) < 0)
            return -1;
    }
    return 0;
}

/* ---- publisher threads --------------------------------------------------------------------- */

static bool running(const struct worker *w)
{
    return atomic_load_explicit(&w->b->phase, memory_order_relaxed) < PHASE_STOP &&
           !atomic_load_explicit(&w->b->abort, memory_order_relaxed);
}

/* How many messages may go out now: the batch size, less what the window or quota leaves. */
static int room(const struct worker *w)
{
    const struct options *o = &w->b->opt;
    uint64_t n = (uint64_t)o->batch;
    if (w->b->confirms && in_flight(w) + n > (uint64_t)o->window)
        n = (uint64_t)o->window - in_flight(w);
    if (w->quota) {
        uint64_t sent = atomic_load_explicit(&w->published, memory_order_relaxed);
        if (sent + n > w->quota)
            n = w->quota - sent;
    }
    return (int)n;
}

/* As fast as the window allows (confirm, e2e, fill). */
static int publisher_flat_out(struct worker *w)
{
    while (running(w)) {
        int n = room(w);
        if (n == 0 && w->quota && atomic_load(&w->published) >= w->quota)
            return w->b->confirms ? confirms_drain(w) : 0;
        if (n > 0 && publish(w, n, clock_mono_ns()) < 0)
            return -1;
        /* a full window blocks for the next confirm; otherwise take only what has arrived */
        if (w->b->confirms && (n > 0 ? confirms_read(w, 0) : window_wait(w)) < 0)
            return -1;
    }
    return 0;
}

/* Waits until t_ns, reading confirms meanwhile when there are any to read. */
static int wait_until(struct worker *w, uint64_t t_ns)
{
    if (!w->b->confirms) {
        bench_sleep_until(t_ns);
        return 0;
    }
    for (uint64_t now = clock_mono_ns(); now < t_ns; now = clock_mono_ns()) {
        if (amqp_data_in_buffer(w->conn) && confirms_read(w, 0) < 0)
            return -1;
        uint64_t left = t_ns - now;
        struct timespec ts = {.tv_sec = (time_t)(left / 1000000000u),
                              .tv_nsec = (long)(left % 1000000000u)};
        struct pollfd pfd = {.fd = w->fd, .events = POLLIN};
        int n = ppoll(&pfd, 1, &ts, NULL);
        if (n < 0 && errno != EINTR)
            return worker_fail(w, "ppoll: %s", strerror(errno));
        if (n > 0 && confirms_read(w, 0) < 0)
            return -1;
    }
    return 0;
}

/* At a fixed rate, each message stamped with its scheduled time (latency). */
static int publisher_paced(struct worker *w)
{
    w->next_send_ns = clock_mono_ns();
    while (running(w)) {
        if (wait_until(w, w->next_send_ns) < 0)
            return -1;
        while (w->b->confirms && in_flight(w) >= (uint64_t)w->b->opt.window && running(w))
            if (window_wait(w) < 0)
                return -1;
        if (publish(w, 1, w->next_send_ns) < 0)
            return -1;
        w->next_send_ns += w->interval_ns;
    }
    return 0;
}

static int publisher_setup(struct worker *w)
{
    struct bench *b = w->b;
    int frame_max = amqp_get_frame_max(w->conn);
    if (!b->opt.basic_publish && b->opt.size + 8 > frame_max)
        return worker_fail(w,
                           "a %d-byte body needs more than the negotiated frame_max %d "
                           "(--basic-publish splits bodies)",
                           b->opt.size, frame_max);
    if (b->confirms) {
        char err[256];
        amqp_confirm_select(w->conn, CHANNEL);
        if (rpc_check(w->conn, "confirm.select", err, sizeof(err)) < 0)
            return worker_fail(w, "%s", err);
        w->slot_tag = tern_xcalloc((unsigned long)b->opt.window, sizeof(uint64_t));
        w->slot_ns = tern_xcalloc((unsigned long)b->opt.window, sizeof(uint64_t));
    }
    w->next_tag = w->oldest = 1;
    w->body = tern_xmalloc((unsigned long)b->opt.size);
    memset(w->body, 'x', (size_t)b->opt.size);
    prctl(PR_SET_TIMERSLACK, 1UL); /* paced sends wake within microseconds */
    return 0;
}

static int publisher_run(struct worker *w)
{
    if (publisher_setup(w) < 0)
        return -1;
    atomic_fetch_add(&w->b->ready, 1);
    while (atomic_load(&w->b->phase) == PHASE_SETUP && !atomic_load(&w->b->abort))
        usleep(1000);
    w->settled_ns = clock_mono_ns();
    if (w->b->opt.scenario == SCENARIO_LATENCY)
        return publisher_paced(w);
    return publisher_flat_out(w);
}

/* ---- consumer threads ---------------------------------------------------------------------- */

static void consumed(struct worker *w)
{
    atomic_fetch_add_explicit(&w->received, 1, memory_order_relaxed);
    if (w->body_seen && atomic_load_explicit(&w->b->phase, memory_order_relaxed) == PHASE_MEASURE) {
        uint64_t now = clock_mono_ns();
        bench_hist_add(&w->lat, now > w->msg_ns ? now - w->msg_ns : 0);
    }
    amqp_maybe_release_buffers(w->conn);
}

/* One frame of the delivery stream: basic.deliver, its content header, its body frames. */
static int consumer_frame(struct worker *w, const amqp_frame_t *f)
{
    switch (f->frame_type) {
    case AMQP_FRAME_METHOD:
        if (f->payload.method.id != AMQP_BASIC_DELIVER_METHOD)
            return publisher_method(w, &f->payload.method); /* a close: fail with its text */
        w->want_header = true;
        return 0;
    case AMQP_FRAME_HEADER:
        if (!w->want_header)
            return worker_fail(w, "content header without basic.deliver");
        w->want_header = false;
        w->body_left = f->payload.properties.body_size;
        w->body_seen = false;
        if (w->body_left == 0)
            consumed(w);
        return 0;
    case AMQP_FRAME_BODY: {
        amqp_bytes_t frag = f->payload.body_fragment;
        if (frag.len > w->body_left)
            return worker_fail(w, "body frame longer than the content header said");
        if (!w->body_seen && frag.len >= sizeof(uint64_t)) {
            memcpy(&w->msg_ns, frag.bytes, sizeof(uint64_t));
            w->body_seen = true;
        }
        w->body_left -= frag.len;
        if (w->body_left == 0)
            consumed(w);
        return 0;
    }
    default:
        return 0; /* heartbeats are off; nothing else is expected */
    }
}

static int consumer_run(struct worker *w)
{
    struct bench *b = w->b;
    amqp_basic_consume(w->conn, CHANNEL, amqp_cstring_bytes(b->queue), amqp_empty_bytes, 0, 1, 0,
                       amqp_empty_table);
    char err[256];
    if (rpc_check(w->conn, "basic.consume", err, sizeof(err)) < 0)
        return worker_fail(w, "%s", err);
    atomic_fetch_add(&b->ready, 1);
    while (atomic_load_explicit(&b->phase, memory_order_relaxed) < PHASE_DONE &&
           !atomic_load_explicit(&b->abort, memory_order_relaxed)) {
        struct timeval tv = {.tv_sec = 0, .tv_usec = POLL_MS * 1000};
        amqp_frame_t f;
        int st = amqp_simple_wait_frame_noblock(w->conn, &f, &tv);
        if (st == AMQP_STATUS_TIMEOUT)
            continue;
        if (st != AMQP_STATUS_OK)
            return worker_fail(w, "reading deliveries: %s", amqp_error_string2(st));
        if (consumer_frame(w, &f) < 0)
            return -1;
    }
    return 0;
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    const struct options *o = &w->b->opt;
    char err[256];
    if (conn_open(o, &w->conn, err, sizeof(err)) < 0) {
        worker_fail(w, "%s", err);
        return NULL;
    }
    w->fd = amqp_get_sockfd(w->conn);
    int rc = w->consumer ? consumer_run(w) : publisher_run(w);
    /* A consumer just drops the connection: a polite close would first have to read every
     * delivery still on its way, which for a no-ack consumer of a full queue never ends. */
    conn_close(w->conn, rc == 0 && !w->consumer);
    return NULL;
}

/* ---- the run ----------------------------------------------------------------------------------
 */

static int queue_declare(const struct bench *b, amqp_connection_state_t conn, char *err, size_t cap)
{
    amqp_queue_declare(conn, CHANNEL, amqp_cstring_bytes(b->queue), 0, b->persistent, 0, 0,
                       amqp_empty_table);
    return rpc_check(conn, "queue.declare", err, cap);
}

static int queue_delete(const struct bench *b, amqp_connection_state_t conn, char *err, size_t cap)
{
    amqp_queue_delete(conn, CHANNEL, amqp_cstring_bytes(b->queue), 0, 0);
    return rpc_check(conn, "queue.delete", err, cap);
}

/* One declare, publish, delete cycle on a server-named queue. Returns 0 or -1 (err set). */
static int churn_once(const struct bench *b, amqp_connection_state_t conn, char *err, size_t cap)
{
    bool durable = b->persistent;
    amqp_queue_declare_ok_t *ok = amqp_queue_declare(conn, CHANNEL, amqp_empty_bytes, 0, durable,
                                                     !durable, 0, amqp_empty_table);
    if (rpc_check(conn, "churn queue.declare", err, cap) < 0)
        return -1;
    char name[256];
    snprintf(name, sizeof(name), "%.*s", (int)ok->queue.len, (const char *)ok->queue.bytes);
    amqp_basic_properties_t props = {._flags = AMQP_BASIC_DELIVERY_MODE_FLAG,
                                     .delivery_mode = durable ? 2 : 1};
    uint8_t body[BODY_HEADER_BYTES] = {0};
    if (amqp_basic_publish(conn, CHANNEL, amqp_empty_bytes, amqp_cstring_bytes(name), 0, 0, &props,
                           (amqp_bytes_t){sizeof(body), body}) != AMQP_STATUS_OK) {
        snprintf(err, cap, "churn basic.publish failed");
        return -1;
    }
    amqp_queue_delete(conn, CHANNEL, amqp_cstring_bytes(name), 0, 0);
    return rpc_check(conn, "churn queue.delete", err, cap);
}

static void *churn_main(void *arg)
{
    struct bench *b = arg;
    amqp_connection_state_t conn;
    char *err = b->churn_err;
    if (conn_open(&b->opt, &conn, err, sizeof(b->churn_err)) < 0) {
        atomic_store(&b->abort, true);
        return NULL;
    }
    uint64_t interval = (uint64_t)(1e9 / b->opt.churn), next = clock_mono_ns();
    int phase;
    while ((phase = atomic_load(&b->phase)) != PHASE_DONE && phase != PHASE_STOP &&
           !atomic_load(&b->abort)) {
        bench_sleep_until(next);
        next += interval;
        if (churn_once(b, conn, err, sizeof(b->churn_err)) < 0) {
            atomic_store(&b->abort, true);
            break;
        }
        if (atomic_load(&b->phase) == PHASE_MEASURE)
            atomic_fetch_add(&b->churned, 1);
    }
    conn_close(conn, !err[0]);
    return NULL;
}

static void workers_start(struct bench *b)
{
    const struct options *o = &b->opt;
    int nconsumers =
        o->scenario == SCENARIO_E2E || o->scenario == SCENARIO_LATENCY ? o->consumers : 0;
    b->nworkers = nconsumers + o->publishers;
    if (b->nworkers > MAX_WORKERS)
        fail("at most %d connections", MAX_WORKERS);
    for (int i = 0; i < b->nworkers; i++) {
        struct worker *w = &b->workers[i];
        w->b = b;
        w->id = i;
        w->consumer = i < nconsumers;
        buf_init(&w->out);
        if (!w->consumer && o->count) {
            int p = i - nconsumers;
            w->quota = o->count / (uint64_t)o->publishers +
                       ((uint64_t)p < o->count % (uint64_t)o->publishers ? 1 : 0);
        }
        if (!w->consumer && o->rate > 0)
            w->interval_ns = (uint64_t)(1e9 * o->publishers / o->rate);
        int rc = pthread_create(&w->thread, NULL, worker_main, w);
        if (rc != 0)
            fail("pthread_create: %s", strerror(rc));
    }
    if (o->churn > 0) {
        int rc = pthread_create(&b->churn_thread, NULL, churn_main, b);
        if (rc != 0)
            fail("pthread_create: %s", strerror(rc));
        b->churning = true;
    }
}

static bool workers_failed(struct bench *b)
{
    return atomic_load(&b->abort);
}

/* Sleeps until t_ns or until a worker fails. Returns false on a failure. */
static bool pause_until(struct bench *b, uint64_t t_ns)
{
    for (uint64_t now = clock_mono_ns(); now < t_ns; now = clock_mono_ns()) {
        if (workers_failed(b))
            return false;
        uint64_t step = 10 * 1000 * 1000ull;
        bench_sleep_until(t_ns - now < step ? t_ns : now + step);
    }
    return !workers_failed(b);
}

struct totals {
    uint64_t published, confirmed, nacked, received;
};

static struct totals totals_read(struct bench *b)
{
    struct totals t = {0};
    for (int i = 0; i < b->nworkers; i++) {
        struct worker *w = &b->workers[i];
        t.published += atomic_load(&w->published);
        t.confirmed += atomic_load(&w->confirmed);
        t.nacked += atomic_load(&w->nacked);
        t.received += atomic_load(&w->received);
    }
    return t;
}

static struct totals totals_diff(struct totals a, struct totals b)
{
    struct totals d = {b.published - a.published, b.confirmed - a.confirmed, b.nacked - a.nacked,
                       b.received - a.received};
    return d;
}

/* What the run measured, for the result line. */
struct result {
    struct totals d;   /* in the measured window */
    struct totals all; /* the whole run */
    double seconds, cpu;
    struct bench_hist confirm_lat, e2e_lat;
};

static void join_kind(struct bench *b, bool consumers)
{
    for (int i = 0; i < b->nworkers; i++) {
        struct worker *w = &b->workers[i];
        if (w->consumer == consumers && !w->joined) {
            pthread_join(w->thread, NULL);
            w->joined = true;
        }
    }
}

static bool wait_ready(struct bench *b)
{
    uint64_t deadline = clock_mono_ns() + (uint64_t)((b->opt.connect_timeout + 10) * 1e9);
    while (atomic_load(&b->ready) < b->nworkers) {
        if (workers_failed(b) || clock_mono_ns() > deadline)
            return false;
        usleep(1000);
    }
    return true;
}

/* Timed: warm up, measure --seconds, stop the publishers, let the consumers catch up briefly. */
static void run_timed(struct bench *b, struct result *r)
{
    atomic_store(&b->phase, PHASE_WARMUP);
    uint64_t t0 = clock_mono_ns() + (uint64_t)(b->opt.warmup * 1e9);
    if (!pause_until(b, t0))
        return;
    struct totals s0 = totals_read(b);
    double c0 = bench_cpu_seconds();
    t0 = clock_mono_ns();
    atomic_store(&b->phase, PHASE_MEASURE);
    pause_until(b, t0 + (uint64_t)(b->opt.seconds * 1e9));
    atomic_store(&b->phase, PHASE_STOP);
    uint64_t t1 = clock_mono_ns();
    r->d = totals_diff(s0, totals_read(b));
    r->cpu = bench_cpu_seconds() - c0;
    r->seconds = (double)(t1 - t0) / 1e9;
    join_kind(b, false);
    pause_until(b, clock_mono_ns() + CONSUMER_GRACE_NS);
}

/* --count: every message sent (and confirmed, or consumed when there are consumers). */
static void run_counted(struct bench *b, struct result *r)
{
    double c0 = bench_cpu_seconds();
    uint64_t t0 = clock_mono_ns();
    atomic_store(&b->phase, PHASE_MEASURE);
    join_kind(b, false);
    bool consumers = b->nworkers > b->opt.publishers;
    uint64_t deadline = clock_mono_ns() + (uint64_t)(DRAIN_SECONDS * 1e9);
    while (consumers && !workers_failed(b) && clock_mono_ns() < deadline) {
        struct totals t = totals_read(b);
        if (t.received >= t.published)
            break;
        usleep(1000);
    }
    uint64_t t1 = clock_mono_ns();
    atomic_store(&b->phase, PHASE_STOP);
    r->d = totals_read(b);
    r->cpu = bench_cpu_seconds() - c0;
    r->seconds = (double)(t1 - t0) / 1e9;
}

/* Runs the scenario's workers and fills r. Returns 0, or -1 when a worker failed. */
static int run(struct bench *b, struct result *r)
{
    workers_start(b);
    bool ok = wait_ready(b);
    if (ok && b->opt.count)
        run_counted(b, r);
    else if (ok)
        run_timed(b, r);
    atomic_store(&b->phase, PHASE_DONE);
    atomic_store(&b->abort, atomic_load(&b->abort) || !ok); /* wake anyone still waiting */
    join_kind(b, false);
    join_kind(b, true);
    if (b->churning)
        pthread_join(b->churn_thread, NULL);
    r->all = totals_read(b);
    int rc = 0;
    if (b->churn_err[0]) {
        fprintf(stderr, "bench_amqp: churn: %s\n", b->churn_err);
        rc = -1;
    }
    for (int i = 0; i < b->nworkers; i++) {
        struct worker *w = &b->workers[i];
        if (w->err[0]) {
            fprintf(stderr, "bench_amqp: %s %d: %s\n", w->consumer ? "consumer" : "publisher",
                    w->id, w->err);
            rc = -1;
        }
        bench_hist_merge(w->consumer ? &r->e2e_lat : &r->confirm_lat, &w->lat);
    }
    if (rc == 0 && !ok) {
        fprintf(stderr, "bench_amqp: the connections were not set up in time\n");
        rc = -1;
    }
    return rc;
}

/* ---- output ------------------------------------------------------------------------------------
 */

static void print_latency(const char *name, const struct bench_hist *h)
{
    if (h->n == 0)
        return;
    printf(" %s_samples=%" PRIu64 " %s_p50_us=%.1f %s_p99_us=%.1f %s_p999_us=%.1f %s_max_us=%.1f",
           name, h->n, name, bench_hist_quantile_us(h, 0.50), name, bench_hist_quantile_us(h, 0.99),
           name, bench_hist_quantile_us(h, 0.999), name, (double)h->max / 1e3);
}

/* The headline rate: confirmed messages when publishing with confirms alone, else consumed. */
static double headline_rate(const struct bench *b, const struct result *r)
{
    bool consumers = b->opt.scenario == SCENARIO_E2E || b->opt.scenario == SCENARIO_LATENCY;
    double n = consumers     ? (double)r->d.received
               : b->confirms ? (double)r->d.confirmed
                             : (double)r->d.published;
    return r->seconds > 0 ? n / r->seconds : 0;
}

static void print_result(const struct bench *b, const struct result *r)
{
    const struct options *o = &b->opt;
    printf("result scenario=%s size=%d publishers=%d", scenario_names[o->scenario], o->size,
           o->publishers);
    if (o->scenario == SCENARIO_E2E || o->scenario == SCENARIO_LATENCY)
        printf(" consumers=%d", o->consumers);
    printf(" persistent=%d confirms=%d window=%d batch=%d basic_publish=%d", b->persistent,
           b->confirms, b->confirms ? o->window : 0, o->batch, o->basic_publish);
    if (o->rate > 0)
        printf(" target_rate_per_s=%.0f", o->rate);
    printf(" seconds=%.3f published=%" PRIu64 " confirmed=%" PRIu64 " nacked=%" PRIu64
           " received=%" PRIu64,
           r->seconds, r->d.published, r->d.confirmed, r->d.nacked, r->d.received);
    printf(" rate_per_s=%.0f publish_per_s=%.0f", headline_rate(b, r),
           r->seconds > 0 ? (double)r->d.published / r->seconds : 0);
    print_latency("confirm", &r->confirm_lat);
    print_latency("e2e", &r->e2e_lat);
    if (o->churn > 0)
        printf(" churn_per_s=%.1f",
               r->seconds > 0 ? (double)atomic_load(&b->churned) / r->seconds : 0);
    printf(" total_published=%" PRIu64 " total_received=%" PRIu64 " client_cpu=%.2f queue=%s\n",
           r->all.published, r->all.received, r->seconds > 0 ? r->cpu / r->seconds : 0, b->queue);
    fflush(stdout);
}

/* ---- options and main ---------------------------------------------------------------------- */

static void usage(FILE *f)
{
    fprintf(
        f,
        "usage: bench_amqp --port N --scenario confirm|e2e|latency|fill [options]\n"
        "  --host H            broker address (default 127.0.0.1)\n"
        "  --port N            broker AMQP port (required)\n"
        "  --user U --pass P   credentials (default guest/guest); --vhost V (default /)\n"
        "  --scenario S        confirm: persistent + confirms, durable queue, publishers only\n"
        "                      e2e: transient, no confirms, no-ack consumers at the same time\n"
        "                      latency: fixed --rate, e2e latency (--durable: persistent +\n"
        "                      confirms, durable queue)\n"
        "                      fill: --count persistent messages with confirms, queue kept\n"
        "  --size B            body bytes, >= %d (default 100)\n"
        "  --publishers N      publishing connections (default 1)\n"
        "  --consumers N       consuming connections, e2e and latency (default 1)\n"
        "  --window N          unconfirmed messages per publisher (default 256)\n"
        "  --batch N           messages per write (default 64; latency: 1)\n"
        "  --basic-publish     publish with amqp_basic_publish, three writes per message\n"
        "  --seconds S         measured time (default 5); --warmup S before it (default 1)\n"
        "  --count N           send N messages in all instead (fill: default 1000000)\n"
        "  --rate R            latency: messages per second over all publishers (default 10000)\n"
        "  --durable           latency: persistent messages, durable queue, confirms\n"
        "  --churn R           latency: beside it, R queue declare/publish/delete cycles a second\n"
        "  --queue NAME        queue name (default bench-<scenario>-<pid>)\n"
        "  --keep              do not delete the queue at the end (fill keeps it always)\n"
        "  --connect-timeout S retry connecting for S seconds (default 10)\n"
        "prints one line: result scenario=... key=value ...\n",
        BODY_HEADER_BYTES);
}

static double parse_num(const char *name, const char *v, double lo, double hi)
{
    char *end;
    double x = strtod(v, &end);
    if (end == v || *end || !(x >= lo && x <= hi))
        fail("--%s wants a number in [%g, %g], not '%s'", name, lo, hi, v);
    return x;
}

static enum scenario parse_scenario(const char *v)
{
    for (size_t i = 0; i < TERN_ARRAY_LEN(scenario_names); i++)
        if (strcmp(v, scenario_names[i]) == 0)
            return (enum scenario)i;
    fail("unknown scenario '%s' (confirm, e2e, latency, fill)", v);
}

enum {
    OPT_HOST = 256,
    OPT_PORT,
    OPT_USER,
    OPT_PASS,
    OPT_VHOST,
    OPT_SCENARIO,
    OPT_SIZE,
    OPT_PUBLISHERS,
    OPT_CONSUMERS,
    OPT_WINDOW,
    OPT_BATCH,
    OPT_SECONDS,
    OPT_WARMUP,
    OPT_COUNT,
    OPT_RATE,
    OPT_DURABLE,
    OPT_QUEUE,
    OPT_KEEP,
    OPT_CONNECT_TIMEOUT,
    OPT_BASIC_PUBLISH,
    OPT_CHURN,
    OPT_HELP,
};

static const struct option long_options[] = {
    {"host", required_argument, NULL, OPT_HOST},
    {"port", required_argument, NULL, OPT_PORT},
    {"user", required_argument, NULL, OPT_USER},
    {"pass", required_argument, NULL, OPT_PASS},
    {"vhost", required_argument, NULL, OPT_VHOST},
    {"scenario", required_argument, NULL, OPT_SCENARIO},
    {"size", required_argument, NULL, OPT_SIZE},
    {"publishers", required_argument, NULL, OPT_PUBLISHERS},
    {"consumers", required_argument, NULL, OPT_CONSUMERS},
    {"window", required_argument, NULL, OPT_WINDOW},
    {"batch", required_argument, NULL, OPT_BATCH},
    {"seconds", required_argument, NULL, OPT_SECONDS},
    {"warmup", required_argument, NULL, OPT_WARMUP},
    {"count", required_argument, NULL, OPT_COUNT},
    {"rate", required_argument, NULL, OPT_RATE},
    {"durable", no_argument, NULL, OPT_DURABLE},
    {"queue", required_argument, NULL, OPT_QUEUE},
    {"keep", no_argument, NULL, OPT_KEEP},
    {"connect-timeout", required_argument, NULL, OPT_CONNECT_TIMEOUT},
    {"basic-publish", no_argument, NULL, OPT_BASIC_PUBLISH},
    {"churn", required_argument, NULL, OPT_CHURN},
    {"help", no_argument, NULL, OPT_HELP},
    {NULL, 0, NULL, 0},
};

/* Stores one option; returns false for an unknown one. */
static bool option_set(struct options *o, int c, const char *v, const char *name)
{
    switch (c) {
    case OPT_HOST:
        o->host = v;
        break;
    case OPT_PORT:
        o->port = (int)parse_num(name, v, 1, 65535);
        break;
    case OPT_USER:
        o->user = v;
        break;
    case OPT_PASS:
        o->pass = v;
        break;
    case OPT_VHOST:
        o->vhost = v;
        break;
    case OPT_SCENARIO:
        o->scenario = parse_scenario(v);
        break;
    case OPT_SIZE:
        o->size = (int)parse_num(name, v, BODY_HEADER_BYTES, FRAME_MAX - 8);
        break;
    case OPT_PUBLISHERS:
        o->publishers = (int)parse_num(name, v, 1, MAX_WORKERS / 2);
        break;
    case OPT_CONSUMERS:
        o->consumers = (int)parse_num(name, v, 1, MAX_WORKERS / 2);
        break;
    case OPT_WINDOW:
        o->window = (int)parse_num(name, v, 1, 1 << 20);
        break;
    case OPT_BATCH:
        o->batch = (int)parse_num(name, v, 1, 4096);
        break;
    case OPT_SECONDS:
        o->seconds = parse_num(name, v, 0.1, 86400);
        break;
    case OPT_WARMUP:
        o->warmup = parse_num(name, v, 0, 3600);
        break;
    case OPT_COUNT:
        o->count = (uint64_t)parse_num(name, v, 1, 1e12);
        break;
    case OPT_RATE:
        o->rate = parse_num(name, v, 1, 1e8);
        break;
    case OPT_DURABLE:
        o->durable = true;
        break;
    case OPT_CHURN:
        o->churn = parse_num(name, v, 1, 1e5);
        break;
    case OPT_QUEUE:
        o->queue = v;
        break;
    case OPT_KEEP:
        o->keep = true;
        break;
    case OPT_BASIC_PUBLISH:
        o->basic_publish = true;
        break;
    case OPT_CONNECT_TIMEOUT:
        o->connect_timeout = parse_num(name, v, 0, 600);
        break;
    default:
        return false;
    }
    return true;
}

static void options_parse(int argc, char **argv, struct options *o)
{
    *o = (struct options){.host = "127.0.0.1",
                          .user = "guest",
                          .pass = "guest",
                          .vhost = "/",
                          .scenario = (enum scenario) - 1,
                          .size = 100,
                          .publishers = 1,
                          .consumers = 1,
                          .window = 256,
                          .batch = -1,
                          .seconds = 5,
                          .warmup = 1,
                          .connect_timeout = 10};
    int c, idx = 0;
    while ((c = getopt_long(argc, argv, "", long_options, &idx)) != -1) {
        if (c == OPT_HELP) {
            usage(stdout);
            exit(0);
        }
        if (c == '?' || !option_set(o, c, optarg, long_options[idx].name)) {
            usage(stderr);
            exit(2);
        }
    }
    if (optind < argc || o->port == 0 || (int)o->scenario < 0) {
        usage(stderr);
        exit(2);
    }
    if (o->batch < 0)
        o->batch = o->scenario == SCENARIO_LATENCY ? 1 : 64;
    if (o->scenario == SCENARIO_LATENCY && o->rate <= 0)
        o->rate = 10000;
    if (o->scenario != SCENARIO_LATENCY)
        o->rate = 0;
    if (o->scenario != SCENARIO_LATENCY && o->churn > 0)
        fail("--churn goes with --scenario latency");
    if (o->scenario == SCENARIO_FILL && o->count == 0)
        o->count = 1000000;
}

/* What the scenario publishes and declares. */
static void bench_setup(struct bench *b)
{
    const struct options *o = &b->opt;
    b->persistent = o->scenario == SCENARIO_CONFIRM || o->scenario == SCENARIO_FILL ||
                    (o->scenario == SCENARIO_LATENCY && o->durable);
    b->confirms = b->persistent;
    if (o->queue)
        snprintf(b->queue, sizeof(b->queue), "%s", o->queue);
    else
        snprintf(b->queue, sizeof(b->queue), "bench-%s-%ld", scenario_names[o->scenario],
                 (long)getpid());
    buf_init(&b->frames);
    frames_build(b);
}

int main(int argc, char **argv)
{
    static struct bench b;
    options_parse(argc, argv, &b.opt);
    signal(SIGPIPE, SIG_IGN);
    bench_setup(&b);

    char err[256];
    amqp_connection_state_t ctl;
    if (conn_open(&b.opt, &ctl, err, sizeof(err)) < 0)
        fail("%s", err);
    if (queue_declare(&b, ctl, err, sizeof(err)) < 0)
        fail("%s", err);

    struct result *r = tern_xcalloc(1, sizeof(*r));
    int rc = run(&b, r);
    if (rc == 0)
        print_result(&b, r);
    bool keep = b.opt.keep || b.opt.scenario == SCENARIO_FILL;
    if (!keep && queue_delete(&b, ctl, err, sizeof(err)) < 0) {
        fprintf(stderr, "bench_amqp: %s\n", err);
        rc = -1;
    }
    conn_close(ctl, true);
    for (int i = 0; i < b.nworkers; i++) {
        struct worker *w = &b.workers[i];
        buf_fini(&w->out);
        free(w->slot_tag);
        free(w->slot_ns);
        free(w->body);
    }
    buf_fini(&b.frames);
    free(r);
    return rc == 0 ? 0 : 1;
}
