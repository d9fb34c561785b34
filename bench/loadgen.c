/*
 * loadgen.c - options, phases, threads, histograms and the result line of the bench-kafka load
 * generators (see loadgen.h for the scenarios and the threading rules).
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "base/clock.h"
#include "base/tern.h"
#include "loadgen.h"

#define READY_TIMEOUT_S 30             /* for every worker to connect and set up */
#define CONSUMER_GRACE_NS 200000000ull /* consumers read on after the producers stop */
#define STEP_NS 10000000ull            /* the main thread looks at the workers this often */

static const char *const scenario_names[] = {"produce", "consume", "latency"};

/* ---- time and histograms -------------------------------------------------------------------- */

/* ---- the workers' side ------------------------------------------------------------------------
 */

int loadgen_fail(struct loadgen_worker *w, const char *fmt, ...)
{
    if (!w->err[0]) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(w->err, sizeof(w->err), fmt, ap);
        va_end(ap);
    }
    atomic_store(&w->g->abort, true);
    return -1;
}

static int phase_of(const struct loadgen *g)
{
    return atomic_load_explicit(&g->phase, memory_order_relaxed);
}

static bool aborted(const struct loadgen *g)
{
    return atomic_load_explicit(&g->abort, memory_order_relaxed);
}

bool loadgen_wait(struct loadgen_worker *w, enum loadgen_phase phase)
{
    atomic_fetch_add(&w->g->ready, 1);
    while (phase_of(w->g) < (int)phase && !aborted(w->g))
        usleep(1000);
    return !aborted(w->g);
}

uint64_t loadgen_in_flight(struct loadgen_worker *w)
{
    uint64_t done = atomic_load(&w->acked) + atomic_load(&w->failed);
    uint64_t sent = atomic_load(&w->sent);
    return sent > done ? sent - done : 0;
}

bool loadgen_quota_done(struct loadgen_worker *w)
{
    return w->quota && atomic_load(&w->sent) >= w->quota && loadgen_in_flight(w) == 0;
}

bool loadgen_producing(struct loadgen_worker *w)
{
    struct loadgen *g = w->g;
    return !atomic_load_explicit(&g->stop_producing, memory_order_relaxed) && !aborted(g) &&
           !loadgen_quota_done(w);
}

uint64_t loadgen_room(struct loadgen_worker *w, uint64_t max)
{
    uint64_t window = (uint64_t)w->g->opt.window, busy = loadgen_in_flight(w);
    uint64_t n = busy >= window ? 0 : window - busy;
    if (n > max)
        n = max;
    if (w->quota) {
        uint64_t sent = atomic_load(&w->sent);
        uint64_t left = sent >= w->quota ? 0 : w->quota - sent;
        if (n > left)
            n = left;
    }
    return n;
}

bool loadgen_consuming(struct loadgen_worker *w)
{
    struct loadgen *g = w->g;
    if (phase_of(g) >= LOADGEN_DONE || aborted(g))
        return false;
    uint64_t target = atomic_load(&g->consume_target);
    return target == 0 || atomic_load(&w->received) < target;
}

bool loadgen_measuring(struct loadgen_worker *w)
{
    return phase_of(w->g) == LOADGEN_MEASURE;
}

void loadgen_stamp(struct loadgen_worker *w, void *value, uint64_t t_ns)
{
    uint64_t seq = w->seq++;
    memcpy(value, &t_ns, sizeof(t_ns));
    memcpy((uint8_t *)value + sizeof(t_ns), &seq, sizeof(seq));
}

uint64_t loadgen_stamp_time(const void *value, size_t len)
{
    uint64_t t = 0;
    if (value && len >= sizeof(t))
        memcpy(&t, value, sizeof(t));
    return t;
}

void *loadgen_value_new(const struct loadgen *g)
{
    void *v = tern_xmalloc((unsigned long)g->opt.size);
    memset(v, 'x', (size_t)g->opt.size);
    return v;
}

uint64_t loadgen_next_send(struct loadgen_worker *w)
{
    if (w->next_ns == 0)
        w->next_ns = clock_mono_ns();
    uint64_t t = w->next_ns;
    w->next_ns += w->interval_ns;
    return t;
}

void loadgen_sent(struct loadgen_worker *w, uint64_t n)
{
    atomic_fetch_add_explicit(&w->sent, n, memory_order_relaxed);
}

void loadgen_acked(struct loadgen_worker *w, uint64_t sent_ns)
{
    if (loadgen_measuring(w) && sent_ns) {
        uint64_t now = clock_mono_ns();
        bench_hist_add(&w->lat, now > sent_ns ? now - sent_ns : 0);
    }
    atomic_fetch_add_explicit(&w->acked, 1, memory_order_relaxed);
}

void loadgen_ack_failed(struct loadgen_worker *w)
{
    atomic_fetch_add_explicit(&w->failed, 1, memory_order_relaxed);
}

void loadgen_received(struct loadgen_worker *w, size_t len, uint64_t sent_ns)
{
    struct loadgen *g = w->g;
    if (g->opt.scenario == LOADGEN_LATENCY && sent_ns && loadgen_measuring(w)) {
        uint64_t now = clock_mono_ns();
        bench_hist_add(&w->lat, now > sent_ns ? now - sent_ns : 0);
    }
    atomic_fetch_add_explicit(&w->received_bytes, len, memory_order_relaxed);
    uint64_t n = atomic_fetch_add_explicit(&w->received, 1, memory_order_relaxed) + 1;
    if (n == 1)
        atomic_store(&w->first_ns, clock_mono_ns());
    uint64_t target = atomic_load(&g->consume_target);
    if (target && n == target)
        atomic_store(&w->last_ns, clock_mono_ns());
}

static void *worker_main(void *arg)
{
    struct loadgen_worker *w = arg;
    const struct loadgen_ops *ops = w->g->ops;
    prctl(PR_SET_TIMERSLACK, 1UL); /* paced sends wake within microseconds */
    int rc = w->consumer ? ops->consumer(w) : ops->producer(w);
    if (rc < 0 && !w->err[0])
        loadgen_fail(w, "failed");
    atomic_store(&w->finished, true);
    return NULL;
}

/* ---- the run -----------------------------------------------------------------------------------
 */

struct totals {
    uint64_t sent, acked, failed, received, received_bytes;
};

static struct totals totals_read(struct loadgen *g)
{
    struct totals t = {0};
    for (int i = 0; i < g->nworkers; i++) {
        struct loadgen_worker *w = &g->workers[i];
        t.sent += atomic_load(&w->sent);
        t.acked += atomic_load(&w->acked);
        t.failed += atomic_load(&w->failed);
        t.received += atomic_load(&w->received);
        t.received_bytes += atomic_load(&w->received_bytes);
    }
    return t;
}

static struct totals totals_diff(struct totals a, struct totals b)
{
    return (struct totals){b.sent - a.sent, b.acked - a.acked, b.failed - a.failed,
                           b.received - a.received, b.received_bytes - a.received_bytes};
}

/* What the run measured, for the result line. */
struct result {
    struct totals d;   /* in the measured window */
    struct totals all; /* the whole run */
    double seconds, cpu;
    double fill_seconds;  /* consume */
    double start_seconds; /* consume: from the start of the read to its first record */
    uint64_t filled;      /* consume: records acknowledged by the fill */
    bool complete;        /* consume: every filled record was read */
    struct bench_hist delivery, e2e;
};

/* Starts nconsumers consumers, then nproducers producers sharing quota records (0: no quota). */
static void workers_start(struct loadgen *g, int nproducers, int nconsumers, uint64_t quota)
{
    g->nworkers = nconsumers + nproducers;
    for (int i = 0; i < g->nworkers; i++) {
        struct loadgen_worker *w = &g->workers[i];
        w->g = g;
        w->id = i;
        w->consumer = i < nconsumers;
        if (!w->consumer && quota) {
            uint64_t p = (uint64_t)(i - nconsumers), n = (uint64_t)nproducers;
            w->quota = quota / n + (p < quota % n ? 1 : 0);
        }
        if (!w->consumer && g->opt.scenario == LOADGEN_LATENCY)
            w->interval_ns = (uint64_t)(1e9 * nproducers / g->opt.rate);
        int rc = pthread_create(&w->thread, NULL, worker_main, w);
        if (rc != 0) {
            fprintf(stderr, "%s: pthread_create: %s\n", g->ops->name, strerror(rc));
            exit(1);
        }
    }
}

static void join_kind(struct loadgen *g, bool consumers)
{
    for (int i = 0; i < g->nworkers; i++) {
        struct loadgen_worker *w = &g->workers[i];
        if (w->consumer == consumers && !w->joined) {
            pthread_join(w->thread, NULL);
            w->joined = true;
        }
    }
}

static bool all_finished(struct loadgen *g, bool consumers)
{
    for (int i = 0; i < g->nworkers; i++)
        if (g->workers[i].consumer == consumers && !atomic_load(&g->workers[i].finished))
            return false;
    return true;
}

static bool wait_ready(struct loadgen *g)
{
    uint64_t deadline = clock_mono_ns() + READY_TIMEOUT_S * 1000000000ull;
    while (atomic_load(&g->ready) < g->nworkers) {
        if (aborted(g) || clock_mono_ns() > deadline)
            return false;
        usleep(1000);
    }
    return true;
}

/* Sleeps until t_ns, or until a worker fails (returns false). */
static bool pause_until(struct loadgen *g, uint64_t t_ns)
{
    for (uint64_t now = clock_mono_ns(); now < t_ns; now = clock_mono_ns()) {
        if (aborted(g))
            return false;
        bench_sleep_until(t_ns - now < STEP_NS ? t_ns : now + STEP_NS);
    }
    return !aborted(g);
}

/* latency: the warm-up starts when the consumer has its first record, so that a client slow to
 * start (connections, metadata) is not measured as latency. Returns false on failure. */
static bool first_record(struct loadgen *g)
{
    uint64_t deadline = clock_mono_ns() + READY_TIMEOUT_S * 1000000000ull;
    while (atomic_load(&g->workers[0].received) == 0) {
        if (aborted(g))
            return false;
        if (clock_mono_ns() > deadline) {
            loadgen_fail(&g->workers[0], "no record arrived within %d s", READY_TIMEOUT_S);
            return false;
        }
        bench_sleep_until(clock_mono_ns() + STEP_NS / 10);
    }
    return true;
}

/* produce and latency: warm up, measure --seconds, stop the producers, let consumers catch up. */
static void run_timed(struct loadgen *g, struct result *r)
{
    atomic_store(&g->phase, LOADGEN_WARMUP);
    if (g->opt.scenario == LOADGEN_LATENCY && !first_record(g))
        return;
    if (!pause_until(g, clock_mono_ns() + (uint64_t)(g->opt.warmup * 1e9)))
        return;
    struct totals s0 = totals_read(g);
    double c0 = bench_cpu_seconds();
    uint64_t t0 = clock_mono_ns();
    atomic_store(&g->phase, LOADGEN_MEASURE);
    pause_until(g, t0 + (uint64_t)(g->opt.seconds * 1e9));
    atomic_store(&g->phase, LOADGEN_STOP);
    uint64_t t1 = clock_mono_ns();
    r->d = totals_diff(s0, totals_read(g));
    r->cpu = bench_cpu_seconds() - c0;
    r->seconds = (double)(t1 - t0) / 1e9;
    atomic_store(&g->stop_producing, true);
    join_kind(g, false);
    pause_until(g, clock_mono_ns() + CONSUMER_GRACE_NS);
}

/* consume: the fill (every producer's quota acknowledged, or --fill-seconds), then the read. */
static void run_consume(struct loadgen *g, struct result *r)
{
    uint64_t f0 = clock_mono_ns();
    uint64_t deadline = f0 + (uint64_t)(g->opt.fill_seconds * 1e9);
    atomic_store(&g->phase, LOADGEN_FILL);
    while (!all_finished(g, false) && !aborted(g) && clock_mono_ns() < deadline)
        bench_sleep_until(clock_mono_ns() + STEP_NS);
    atomic_store(&g->stop_producing, true);
    join_kind(g, false);
    r->fill_seconds = (double)(clock_mono_ns() - f0) / 1e9;
    r->filled = totals_read(g).acked;
    if (aborted(g))
        return;
    atomic_store(&g->consume_target, r->filled);
    double c0 = bench_cpu_seconds();
    uint64_t t0 = clock_mono_ns();
    double limit = g->opt.seconds * 20 > 60 ? g->opt.seconds * 20 : 60;
    deadline = t0 + (uint64_t)(limit * 1e9);
    atomic_store(&g->phase, LOADGEN_MEASURE);
    while (!all_finished(g, true) && !aborted(g) && clock_mono_ns() < deadline)
        bench_sleep_until(clock_mono_ns() + STEP_NS / 10);
    uint64_t t1 = clock_mono_ns();
    struct totals t = totals_read(g);
    struct loadgen_worker *c = &g->workers[0];
    uint64_t first = atomic_load(&c->first_ns), last = atomic_load(&c->last_ns);
    r->complete = t.received >= g->consume_target && last > 0;
    r->start_seconds = first ? (double)(first - t0) / 1e9 : -1;
    r->cpu = bench_cpu_seconds() - c0;
    /* the read's rate: from its first record to its last, without the client's start */
    r->seconds = first ? (double)((r->complete ? last : t1) - first) / 1e9 : 0;
    r->d = t;
    r->d.sent = r->d.acked = 0;
}

/* Runs the scenario's workers and fills r. Returns 0, or -1 when a worker failed. */
static int run(struct loadgen *g, struct result *r)
{
    const struct loadgen_options *o = &g->opt;
    int consumers = o->scenario == LOADGEN_PRODUCE ? 0 : 1;
    workers_start(g, o->scenario == LOADGEN_LATENCY ? 1 : o->producers, consumers,
                  o->scenario == LOADGEN_CONSUME ? o->count : 0);
    bool ok = wait_ready(g);
    if (ok && o->scenario == LOADGEN_CONSUME)
        run_consume(g, r);
    else if (ok)
        run_timed(g, r);
    atomic_store(&g->stop_producing, true);
    atomic_store(&g->phase, LOADGEN_DONE);
    if (!ok)
        atomic_store(&g->abort, true); /* wake anyone still waiting */
    join_kind(g, false);
    join_kind(g, true);
    r->all = totals_read(g);
    int rc = 0;
    for (int i = 0; i < g->nworkers; i++) {
        struct loadgen_worker *w = &g->workers[i];
        if (w->err[0]) {
            fprintf(stderr, "bench_%s: %s %d: %s\n", g->ops->name,
                    w->consumer ? "consumer" : "producer", w->id, w->err);
            rc = -1;
        }
        bench_hist_merge(w->consumer ? &r->e2e : &r->delivery, &w->lat);
    }
    if (rc == 0 && !ok) {
        fprintf(stderr, "bench_%s: the clients were not set up within %d s\n", g->ops->name,
                READY_TIMEOUT_S);
        rc = -1;
    }
    if (rc == 0 && o->scenario == LOADGEN_CONSUME && r->filled == 0) {
        fprintf(stderr, "bench_%s: the fill wrote nothing\n", g->ops->name);
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
           name, h->n, name, bench_hist_quantile_us(h, 0.50), name, bench_hist_quantile_us(h, 0.99), name,
           bench_hist_quantile_us(h, 0.999), name, (double)h->max / 1e3);
}

static void print_result(const struct loadgen *g, const struct result *r)
{
    const struct loadgen_options *o = &g->opt;
    double s = r->seconds > 0 ? r->seconds : 1e-9;
    /* the headline: records acknowledged (produce) or read (consume, latency) */
    uint64_t n = o->scenario == LOADGEN_PRODUCE ? r->d.acked : r->d.received;
    printf("result system=%s scenario=%s size=%d acks=%s producers=%d window=%d", g->ops->name,
           scenario_names[o->scenario], o->size, o->acks_all ? "all" : "1",
           o->scenario == LOADGEN_LATENCY ? 1 : o->producers, o->window);
    if (o->scenario == LOADGEN_LATENCY)
        printf(" target_rate_per_s=%.0f", o->rate);
    if (o->scenario == LOADGEN_CONSUME)
        printf(" filled=%" PRIu64 " fill_seconds=%.3f fill_rate_per_s=%.0f complete=%d"
               " first_record_seconds=%.3f",
               r->filled, r->fill_seconds,
               r->fill_seconds > 0 ? (double)r->filled / r->fill_seconds : 0, r->complete,
               r->start_seconds);
    printf(" seconds=%.3f sent=%" PRIu64 " acked=%" PRIu64 " failed=%" PRIu64 " received=%" PRIu64,
           r->seconds, r->d.sent, r->d.acked, r->d.failed, r->d.received);
    printf(" rate_per_s=%.0f mb_per_s=%.2f", (double)n / s, (double)n * o->size / s / 1e6);
    print_latency("delivery", &r->delivery);
    print_latency("e2e", &r->e2e);
    printf(" total_sent=%" PRIu64 " total_acked=%" PRIu64 " total_received=%" PRIu64
           " client_cpu=%.2f topic=%s%s\n",
           r->all.sent, r->all.acked, r->all.received, r->cpu / s, g->topic, g->info);
    fflush(stdout);
}

/* ---- options and main ---------------------------------------------------------------------------
 */

static void usage(FILE *f, const struct loadgen_ops *ops)
{
    fprintf(f,
            "usage: bench_%s --port N --scenario produce|consume|latency [options]\n"
            "  --host H           server address (default 127.0.0.1)\n"
            "  --port N           server port (required)\n"
            "  --scenario S       produce: --producers clients flat out, acked records/s and\n"
            "                     delivery latency; consume: fill --count records, then read\n"
            "                     them from the beginning; latency: one producer at --rate,\n"
            "                     one consumer, end-to-end latency\n"
            "  --size B           record value bytes, >= %d (default 100)\n"
            "  --acks 1|all       durability of an acknowledgement (default 1; see below)\n"
            "  --producers N      producer clients, 1-%d (default 1)\n"
            "  --window N         unacknowledged records per producer (default 100000)\n"
            "  --seconds S        measured time (default 5); --warmup S before it (default 1)\n"
            "  --rate R           latency: records per second (default 10000)\n"
            "  --count N          consume: records filled before reading (default 1000000)\n"
            "  --fill-seconds S   consume: longest fill; fewer records are read (default 60)\n"
            "  --topic NAME       topic / stream name (default bench-<pid>)\n"
            "prints one line: result system=%s scenario=... key=value ...\n\n%s\n",
            ops->name, LOADGEN_STAMP_BYTES, LOADGEN_MAX_WORKERS - 1, ops->name, ops->help);
}

static double parse_num(const char *name, const char *v, double lo, double hi)
{
    char *end;
    double x = strtod(v, &end);
    if (end == v || *end || !(x >= lo && x <= hi)) {
        fprintf(stderr, "--%s wants a number in [%g, %g], not '%s'\n", name, lo, hi, v);
        exit(2);
    }
    return x;
}

enum {
    OPT_HOST = 256,
    OPT_PORT,
    OPT_SCENARIO,
    OPT_SIZE,
    OPT_ACKS,
    OPT_PRODUCERS,
    OPT_WINDOW,
    OPT_SECONDS,
    OPT_WARMUP,
    OPT_RATE,
    OPT_COUNT,
    OPT_FILL_SECONDS,
    OPT_TOPIC,
    OPT_HELP,
};

static const struct option long_options[] = {
    {"host", required_argument, NULL, OPT_HOST},
    {"port", required_argument, NULL, OPT_PORT},
    {"scenario", required_argument, NULL, OPT_SCENARIO},
    {"size", required_argument, NULL, OPT_SIZE},
    {"acks", required_argument, NULL, OPT_ACKS},
    {"producers", required_argument, NULL, OPT_PRODUCERS},
    {"window", required_argument, NULL, OPT_WINDOW},
    {"seconds", required_argument, NULL, OPT_SECONDS},
    {"warmup", required_argument, NULL, OPT_WARMUP},
    {"rate", required_argument, NULL, OPT_RATE},
    {"count", required_argument, NULL, OPT_COUNT},
    {"fill-seconds", required_argument, NULL, OPT_FILL_SECONDS},
    {"topic", required_argument, NULL, OPT_TOPIC},
    {"help", no_argument, NULL, OPT_HELP},
    {NULL, 0, NULL, 0},
};

/* Stores one option; returns false for an unknown or malformed one. */
static bool option_set(struct loadgen_options *o, int c, const char *v, const char *name)
{
    switch (c) {
    case OPT_HOST:
        o->host = v;
        break;
    case OPT_PORT:
        o->port = (int)parse_num(name, v, 1, 65535);
        break;
    case OPT_SCENARIO:
        for (size_t i = 0; i < TERN_ARRAY_LEN(scenario_names); i++)
            if (strcmp(v, scenario_names[i]) == 0)
                o->scenario = (enum loadgen_scenario)i;
        return (int)o->scenario >= 0;
    case OPT_SIZE:
        o->size = (int)parse_num(name, v, LOADGEN_STAMP_BYTES, 1 << 20);
        break;
    case OPT_ACKS:
        if (strcmp(v, "all") != 0 && strcmp(v, "-1") != 0 && strcmp(v, "1") != 0)
            return false;
        o->acks_all = strcmp(v, "1") != 0;
        break;
    case OPT_PRODUCERS:
        o->producers = (int)parse_num(name, v, 1, LOADGEN_MAX_WORKERS - 1);
        break;
    case OPT_WINDOW:
        o->window = (int)parse_num(name, v, 1, 1e7);
        break;
    case OPT_SECONDS:
        o->seconds = parse_num(name, v, 0.1, 86400);
        break;
    case OPT_WARMUP:
        o->warmup = parse_num(name, v, 0, 3600);
        break;
    case OPT_RATE:
        o->rate = parse_num(name, v, 1, 1e8);
        break;
    case OPT_COUNT:
        o->count = (uint64_t)parse_num(name, v, 1, 1e12);
        break;
    case OPT_FILL_SECONDS:
        o->fill_seconds = parse_num(name, v, 0.1, 86400);
        break;
    case OPT_TOPIC:
        o->topic = v;
        break;
    default:
        return false;
    }
    return true;
}

/* Returns 0, or the exit status for a bad command line (or --help). */
static int options_parse(int argc, char **argv, struct loadgen_options *o,
                         const struct loadgen_ops *ops)
{
    *o = (struct loadgen_options){.host = "127.0.0.1",
                                  .scenario = (enum loadgen_scenario) - 1,
                                  .size = 100,
                                  .producers = 1,
                                  .window = 100000,
                                  .seconds = 5,
                                  .warmup = 1,
                                  .rate = 10000,
                                  .count = 1000000,
                                  .fill_seconds = 60};
    int c, idx = 0;
    while ((c = getopt_long(argc, argv, "", long_options, &idx)) != -1) {
        if (c == OPT_HELP) {
            usage(stdout, ops);
            return -1;
        }
        if (c == '?' || !option_set(o, c, optarg, long_options[idx].name)) {
            usage(stderr, ops);
            return 2;
        }
    }
    if (optind < argc || o->port == 0 || (int)o->scenario < 0) {
        usage(stderr, ops);
        return 2;
    }
    return 0;
}

int loadgen_main(int argc, char **argv, const struct loadgen_ops *ops)
{
    static struct loadgen g;
    g.ops = ops;
    int st = options_parse(argc, argv, &g.opt, ops);
    if (st != 0)
        return st < 0 ? 0 : st;
    signal(SIGPIPE, SIG_IGN);
    if (g.opt.topic)
        snprintf(g.topic, sizeof(g.topic), "%s", g.opt.topic);
    else
        snprintf(g.topic, sizeof(g.topic), "bench-%ld", (long)getpid());

    char err[512];
    if (ops->setup(&g, err, sizeof(err)) < 0) {
        fprintf(stderr, "bench_%s: %s\n", ops->name, err);
        return 1;
    }
    struct result *r = tern_xcalloc(1, sizeof(*r));
    int rc = run(&g, r);
    if (rc == 0)
        print_result(&g, r);
    ops->teardown(&g);
    free(r);
    return rc == 0 ? 0 : 1;
}
