/*
 * loadgen.h - the half of the `make bench-kafka` load generators that does not depend on the
 * system under test: options, the run's phases and threads, latency histograms and the result
 * line. bench_kafka.c (librdkafka), bench_nats.c (libnats, JetStream) and bench_redis.c
 * (hiredis, streams) each supply a struct loadgen_ops and call loadgen_main().
 *
 * Scenarios (--scenario):
 *
 *   produce  --producers threads, each with its own client, send --size byte records as fast as
 *            their --window of unacknowledged records allows, for --warmup then --seconds.
 *            Result: acknowledged records/s and MB/s, delivery latency (send to ack) p50/p99.
 *   consume  --producers threads first fill the topic with --count records (acks=1), for at
 *            most --fill-seconds; then one consumer reads them from the beginning as fast as it
 *            can. Result: records/s and MB/s from the first record read to the last (the
 *            client's start, subscribing to first record, is reported apart).
 *   latency  one producer sends --rate records/s on a schedule, one consumer reads them. The
 *            warm-up starts once the first record has arrived. Result: end-to-end latency
 *            p50/p99/p99.9, from the scheduled send time to the consumer's receipt (a producer
 *            that falls behind shows as latency, not as fewer samples: no coordinated
 *            omission).
 *
 * Every record value starts with two native 64-bit words: the send time (CLOCK_MONOTONIC ns, the
 * same clock in every thread of the process) and a sequence number; the rest is 'x'.
 *
 * Threads: the main thread calls ops->setup, starts one thread per worker (ops->producer or
 * ops->consumer), moves the phases, sums the counters and calls ops->teardown. A worker's
 * counters and histogram have one writer (the worker's thread, or one callback thread of its
 * client library when the backend says so); the main thread reads the atomics while the run
 * goes and the histograms after the worker was joined.
 */
#ifndef LOADGEN_H
#define LOADGEN_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "benchutil.h"

#define LOADGEN_STAMP_BYTES 16 /* send time + sequence number at the start of every value */
#define LOADGEN_MAX_WORKERS 33

enum loadgen_scenario { LOADGEN_PRODUCE, LOADGEN_CONSUME, LOADGEN_LATENCY };

/* Moved forward by the main thread only. FILL is the consume scenario's first half. */
enum loadgen_phase {
    LOADGEN_SETUP,
    LOADGEN_FILL,
    LOADGEN_WARMUP,
    LOADGEN_MEASURE,
    LOADGEN_STOP,
    LOADGEN_DONE,
};

struct loadgen_options {
    const char *host;
    int port;
    enum loadgen_scenario scenario;
    int size;      /* record value bytes, >= LOADGEN_STAMP_BYTES */
    bool acks_all; /* --acks all (else 1); what it means is the backend's (see its ops->help) */
    int producers; /* producer threads, each with its own client and connection */
    int window;    /* unacknowledged records per producer */
    double seconds, warmup, rate, fill_seconds;
    uint64_t count;    /* consume: records filled before reading */
    const char *topic; /* default bench-<pid> */
};

struct loadgen;

/* One producer or consumer and its thread. */
struct loadgen_worker {
    struct loadgen *g;
    int id;
    bool consumer;
    pthread_t thread;
    bool joined;
    _Atomic bool finished; /* the thread has returned */
    _Atomic uint64_t sent, acked, failed, received, received_bytes;
    _Atomic uint64_t first_ns; /* consumer: when the first record arrived */
    _Atomic uint64_t last_ns;  /* consume: when the last wanted record arrived */
    uint64_t quota;            /* fill: records this producer sends; 0: until told to stop */
    uint64_t seq;              /* next value sequence number */
    uint64_t interval_ns;      /* latency: time between this producer's sends */
    uint64_t next_ns;          /* latency: the next scheduled send time */
    struct bench_hist lat;     /* producer: delivery latency; consumer: end-to-end latency */
    char err[256];             /* the first failure, set by loadgen_fail */
};

struct loadgen {
    struct loadgen_options opt;
    const struct loadgen_ops *ops;
    char topic[128];
    _Atomic int phase;
    _Atomic int ready;               /* workers connected and set up */
    _Atomic bool abort;              /* a worker failed */
    _Atomic bool stop_producing;     /* producers stop sending (end of the fill or of the run) */
    _Atomic uint64_t consume_target; /* consume: records the consumer reads before it stops */
    struct loadgen_worker workers[LOADGEN_MAX_WORKERS];
    int nworkers;
    void *ctx;      /* the backend's, from setup to teardown */
    char info[256]; /* the backend's extra ` key=value` fields for the result line */
};

/*
 * What a backend supplies. setup runs on the main thread before any worker and makes a fresh
 * topic g->topic (or fills err and returns -1); teardown removes it and frees g->ctx. producer
 * and consumer run on their worker's thread: they connect, call loadgen_wait (which marks the
 * worker ready), then send or read until loadgen_producing or loadgen_consuming turns false,
 * and return 0, or -1 after loadgen_fail.
 */
struct loadgen_ops {
    const char *name; /* "kafka", "nats", "redis": the result line's system= */
    const char *help; /* a paragraph for --help: the client, and what --acks means */
    int (*setup)(struct loadgen *g, char *err, size_t cap);
    void (*teardown)(struct loadgen *g);
    int (*producer)(struct loadgen_worker *w);
    int (*consumer)(struct loadgen_worker *w);
};

/* Parses the command line, runs the scenario and prints the result line. Returns the exit
 * status: 0, 1 when the run failed (the reason is on stderr), 2 for a bad command line. */
int loadgen_main(int argc, char **argv, const struct loadgen_ops *ops);

/* ---- for the backends' workers ----------------------------------------------------------- */

/* Records w's first failure, tells every thread to stop, and returns -1. */
int loadgen_fail(struct loadgen_worker *w, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Marks w ready, then waits until the run reaches phase (or fails). Returns false on failure. */
bool loadgen_wait(struct loadgen_worker *w, enum loadgen_phase phase);

/* A producer: true while it should keep going (sending, or waiting for its last acks when it
 * has a quota). */
bool loadgen_producing(struct loadgen_worker *w);

/* Records a producer may send now: at most max, less what its window and quota leave. */
uint64_t loadgen_room(struct loadgen_worker *w, uint64_t max);

/* Records sent and not yet acknowledged (or failed). */
uint64_t loadgen_in_flight(struct loadgen_worker *w);

/* A producer with a quota that has sent it all and had every record acknowledged. */
bool loadgen_quota_done(struct loadgen_worker *w);

/* A consumer: true while it should keep reading. */
bool loadgen_consuming(struct loadgen_worker *w);

bool loadgen_measuring(struct loadgen_worker *w);

/* Fills value (opt.size bytes, the rest already 'x') with t_ns and the next sequence number. */
void loadgen_stamp(struct loadgen_worker *w, void *value, uint64_t t_ns);

/* The send time in a value; 0 when the value is too short to hold one. */
uint64_t loadgen_stamp_time(const void *value, size_t len);

/* A value of opt.size bytes of 'x' (malloc'd; the caller frees it). */
void *loadgen_value_new(const struct loadgen *g);

/* Latency scenario: the scheduled time of this producer's next record (advances the schedule). */
uint64_t loadgen_next_send(struct loadgen_worker *w);

void loadgen_sent(struct loadgen_worker *w, uint64_t n);
/* A record sent at sent_ns was acknowledged now; its delivery latency counts when measuring. */
void loadgen_acked(struct loadgen_worker *w, uint64_t sent_ns);
void loadgen_ack_failed(struct loadgen_worker *w);
/* A record of len value bytes, sent at sent_ns (0: unknown), arrived now. */
void loadgen_received(struct loadgen_worker *w, size_t len, uint64_t sent_ns);

#endif
