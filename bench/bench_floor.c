/*
 * bench_floor.c - the machine's latency floor: the latency-scenario traffic of bench_amqp sent
 * through a relay that does nothing a broker could skip. bench/amqp_bench.py runs it beside the
 * brokers, so that a latency target can be read against what this machine allows at all.
 *
 * A child process (the relay) accepts one publisher and one consumer connection on loopback and,
 * in one thread on epoll, reads what the publisher sends and writes it to the consumer. A
 * publisher thread sends --size-byte messages at --rate, each carrying its scheduled send time
 * (CLOCK_MONOTONIC ns) in its first 8 bytes, paced with clock_nanosleep and a 1 us timer slack as
 * bench_amqp paces; a consumer thread records receive time minus scheduled time (no coordinated
 * omission: a late send shows up as latency). Both sockets have TCP_NODELAY.
 *
 * With --fsync-gap-ms G the relay also appends every byte it relays to a file in --dir before
 * forwarding it, and a second thread of the relay fdatasyncs that file whenever there is
 * something new, starting each fdatasync at least G ms after the previous one started: the
 * spacing of ternd's --group-commit-ms. Nothing waits for those fsyncs; what they cost the
 * latency is what the disk traffic of an fsync behind every confirm costs everything else on
 * this machine. The relay stores only the bytes it relays (a broker stores at least those).
 *
 * Runs --warmup seconds unmeasured, then --seconds measured. Output: one line on stdout,
 * `result system=floor scenario=latency key=value ...` (rate_per_s, e2e_p50_us, e2e_p99_us,
 * e2e_p999_us, e2e_max_us, fsyncs_per_s); errors go to stderr and exit 1.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <math.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "benchutil.h"

#include "base/clock.h"
#include "os/file.h"

#define RELAY_BUF (64u << 10)

struct opts {
    double rate, seconds, warmup;
    int size;
    double fsync_gap_ms; /* < 0: no file, no fsync */
    const char *dir;
};

/* Shared with the relay child (MAP_SHARED): what it did, read after it exits. */
struct relay_stats {
    atomic_uint_fast64_t fsyncs;
    atomic_int failed; /* errno of a failed write or fdatasync, 0 when none */
};

struct relay {
    const struct opts *o;
    struct relay_stats *st;
    int fd;              /* the file, or -1 */
    pthread_mutex_t mu;  /* guards the two below; the relay thread, their only writer, reads
                            appended without it */
    pthread_cond_t more; /* signalled when appended grows or stop is set */
    uint64_t appended;   /* bytes written to fd */
    bool stop;
};

static int fail(const char *what)
{
    fprintf(stderr, "bench_floor: %s: %s\n", what, strerror(errno));
    return -1;
}

static int listen_loopback(int *port)
{
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    if (s < 0 || bind(s, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(s, 2) < 0 ||
        getsockname(s, (struct sockaddr *)&a, &len) < 0)
        return fail("listen");
    *port = ntohs(a.sin_port);
    return s;
}

static void no_delay(int fd)
{
    int one = 1;
    (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

static int connect_loopback(int port)
{
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (s < 0 || connect(s, (struct sockaddr *)&a, sizeof(a)) < 0)
        return fail("connect");
    no_delay(s);
    return s;
}

static int write_all(int fd, const uint8_t *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* ---- the relay (child process) ------------------------------------------------------------- */

static void record_failure(struct relay *r)
{
    int zero = 0;
    atomic_compare_exchange_strong(&r->st->failed, &zero, errno ? errno : EIO);
}

/* fdatasyncs the file whenever something was appended since the last one, each start at least
 * fsync_gap_ms after the previous start. */
static void *syncer_main(void *arg)
{
    struct relay *r = arg;
    uint64_t gap_ns = (uint64_t)(r->o->fsync_gap_ms * 1e6), synced = 0, last_start = 0;
    for (;;) {
        if (last_start)
            bench_sleep_until(last_start + gap_ns);
        pthread_mutex_lock(&r->mu);
        while (r->appended == synced && !r->stop)
            pthread_cond_wait(&r->more, &r->mu);
        uint64_t upto = r->appended;
        bool stop = r->stop;
        pthread_mutex_unlock(&r->mu);
        if (stop)
            break;
        last_start = clock_mono_ns();
        if (fdatasync(r->fd) < 0) {
            record_failure(r);
            break;
        }
        synced = upto;
        atomic_fetch_add(&r->st->fsyncs, 1);
    }
    return NULL;
}

static int accept_one(int lfd)
{
    int fd = accept(lfd, NULL, NULL);
    if (fd >= 0)
        no_delay(fd);
    return fd;
}

/* Reads the publisher, appends (with a file), writes the consumer, until the publisher's EOF. */
static int relay_loop(struct relay *r, int in, int out)
{
    int ep = epoll_create1(0);
    struct epoll_event ev = {.events = EPOLLIN};
    if (ep < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, in, &ev) < 0)
        return -1;
    static uint8_t buf[RELAY_BUF];
    for (;;) {
        int n = epoll_wait(ep, &ev, 1, -1);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -1;
        ssize_t got = read(in, buf, sizeof(buf));
        if (got < 0 && (errno == EINTR || errno == EAGAIN))
            continue;
        if (got <= 0)
            return got == 0 ? 0 : -1;
        if (r->fd >= 0) {
            int rc = file_pwrite_all(r->fd, buf, (size_t)got, (off_t)r->appended);
            if (rc < 0) {
                errno = -rc;
                return -1;
            }
            pthread_mutex_lock(&r->mu);
            r->appended += (uint64_t)got;
            pthread_cond_signal(&r->more);
            pthread_mutex_unlock(&r->mu);
        }
        if (write_all(out, buf, (size_t)got) < 0)
            return -1;
    }
}

static int relay_main(const struct opts *o, struct relay_stats *st, int lpub, int lsub)
{
    struct relay r = {.o = o, .st = st, .fd = -1};
    pthread_mutex_init(&r.mu, NULL);
    pthread_cond_init(&r.more, NULL);
    char path[4096] = "";
    if (o->fsync_gap_ms >= 0) {
        snprintf(path, sizeof(path), "%s/bench-floor-%d.log", o->dir, (int)getpid());
        r.fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        if (r.fd < 0) {
            record_failure(&r);
            return 1;
        }
    }
    int in = accept_one(lpub), out = accept_one(lsub);
    pthread_t syncer;
    bool syncing =
        r.fd >= 0 && in >= 0 && out >= 0 && pthread_create(&syncer, NULL, syncer_main, &r) == 0;
    int rc = (in < 0 || out < 0) ? -1 : relay_loop(&r, in, out);
    if (rc < 0)
        record_failure(&r);
    pthread_mutex_lock(&r.mu);
    r.stop = true;
    pthread_cond_signal(&r.more);
    pthread_mutex_unlock(&r.mu);
    if (syncing)
        pthread_join(syncer, NULL);
    if (r.fd >= 0) {
        close(r.fd);
        unlink(path);
    }
    close(out); /* the consumer's EOF */
    return rc < 0 ? 1 : 0;
}

/* ---- publisher and consumer (parent process) ----------------------------------------------- */

struct run {
    const struct opts *o;
    int pub, sub;
    uint64_t measure_from, measure_to; /* scheduled send times counted, ns */
    struct bench_hist hist;            /* consumer thread only */
    uint64_t received;                 /* in the measured window */
    int err;                           /* errno of the thread that failed, 0 when none */
};

static void *publisher_main(void *arg)
{
    struct run *run = arg;
    prctl(PR_SET_TIMERSLACK, 1UL); /* paced sends wake within microseconds */
    uint8_t *msg = calloc(1, (size_t)run->o->size);
    uint64_t interval = (uint64_t)(1e9 / run->o->rate), t = run->measure_from;
    t -= (uint64_t)(run->o->warmup * 1e9);
    for (; msg && t < run->measure_to; t += interval) {
        bench_sleep_until(t);
        memcpy(msg, &t, sizeof(t));
        if (write_all(run->pub, msg, (size_t)run->o->size) < 0) {
            run->err = errno ? errno : EPIPE;
            break;
        }
    }
    free(msg);
    shutdown(run->pub, SHUT_WR); /* the relay ends at this EOF */
    return NULL;
}

static void *consumer_main(void *arg)
{
    struct run *run = arg;
    size_t size = (size_t)run->o->size, have = 0;
    uint8_t *msg = malloc(size);
    for (;;) {
        ssize_t n = read(run->sub, msg + have, size - have);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            if (n < 0)
                run->err = errno;
            break;
        }
        have += (size_t)n;
        if (have < size)
            continue;
        have = 0;
        uint64_t now = clock_mono_ns(), sent;
        memcpy(&sent, msg, sizeof(sent));
        if (sent >= run->measure_from && sent < run->measure_to) {
            bench_hist_add(&run->hist, now > sent ? now - sent : 0);
            run->received++;
        }
    }
    free(msg);
    return NULL;
}

static void usage(FILE *f)
{
    fprintf(f, "usage: bench_floor [options]\n"
               "  --rate R           messages per second (default 10000)\n"
               "  --size B           message bytes, 8 to 65536 (default 100)\n"
               "  --seconds S        measured time (default 5); --warmup S before it (default 1)\n"
               "  --fsync-gap-ms G   append every message to a file and fdatasync it, each\n"
               "                     fdatasync starting >= G ms after the previous one\n"
               "  --dir D            where that file goes (default $TMPDIR or /tmp)\n"
               "prints one line: result system=floor scenario=latency key=value ...\n");
}

/* optarg as a number, or NAN when it is not one (then refused below). */
static double number(const char *arg)
{
    char *end;
    double v = strtod(arg, &end);
    return end == arg || *end ? NAN : v;
}

static int parse_opts(int argc, char **argv, struct opts *o)
{
    static const struct option longs[] = {{"rate", required_argument, NULL, 'r'},
                                          {"size", required_argument, NULL, 's'},
                                          {"seconds", required_argument, NULL, 't'},
                                          {"warmup", required_argument, NULL, 'w'},
                                          {"fsync-gap-ms", required_argument, NULL, 'g'},
                                          {"dir", required_argument, NULL, 'd'},
                                          {"help", no_argument, NULL, 'h'},
                                          {NULL, 0, NULL, 0}};
    const char *tmp = getenv("TMPDIR");
    *o = (struct opts){.rate = 10000,
                       .seconds = 5,
                       .warmup = 1,
                       .size = 100,
                       .fsync_gap_ms = -1,
                       .dir = tmp && *tmp ? tmp : "/tmp"};
    double size = o->size;
    int c;
    while ((c = getopt_long(argc, argv, "", longs, NULL)) != -1) {
        switch (c) {
        case 'r':
            o->rate = number(optarg);
            break;
        case 's':
            size = number(optarg);
            break;
        case 't':
            o->seconds = number(optarg);
            break;
        case 'w':
            o->warmup = number(optarg);
            break;
        case 'g':
            o->fsync_gap_ms = number(optarg);
            break;
        case 'd':
            o->dir = optarg;
            break;
        case 'h':
            usage(stdout);
            exit(0);
        default:
            usage(stderr);
            return -1;
        }
    }
    if (optind != argc || !(o->rate > 0) || !(o->seconds > 0) || !(o->warmup >= 0) ||
        !(size >= 8 && size <= RELAY_BUF) || isnan(o->fsync_gap_ms) ||
        (o->fsync_gap_ms < 0 && o->fsync_gap_ms != -1)) {
        usage(stderr);
        return -1;
    }
    o->size = (int)size;
    return 0;
}

int main(int argc, char **argv)
{
    struct opts o;
    if (parse_opts(argc, argv, &o) < 0)
        return 2;
    signal(SIGPIPE, SIG_IGN);
    struct relay_stats *st =
        mmap(NULL, sizeof(*st), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (st == MAP_FAILED) {
        fail("mmap");
        return 1;
    }
    int ppub, psub, lpub = listen_loopback(&ppub), lsub = listen_loopback(&psub);
    if (lpub < 0 || lsub < 0)
        return 1;
    pid_t child = fork();
    if (child < 0) {
        fail("fork");
        return 1;
    }
    if (child == 0)
        _exit(relay_main(&o, st, lpub, lsub));
    close(lpub);
    close(lsub);

    static struct run run; /* the histogram is large */
    run.o = &o;
    run.pub = connect_loopback(ppub);
    run.sub = connect_loopback(psub);
    int rc = 0;
    pthread_t pub, sub;
    if (run.pub < 0 || run.sub < 0) {
        rc = 1;
        kill(child, SIGKILL);
    } else {
        /* start a little later, so the relay has accepted both connections */
        run.measure_from = clock_mono_ns() + 100000000u + (uint64_t)(o.warmup * 1e9);
        run.measure_to = run.measure_from + (uint64_t)(o.seconds * 1e9);
        uint64_t fsyncs_before = 0, fsyncs_at = 0;
        if (pthread_create(&sub, NULL, consumer_main, &run) != 0 ||
            pthread_create(&pub, NULL, publisher_main, &run) != 0) {
            fprintf(stderr, "bench_floor: cannot start threads\n");
            kill(child, SIGKILL);
            waitpid(child, NULL, 0);
            return 1;
        }
        bench_sleep_until(run.measure_from);
        fsyncs_before = atomic_load(&st->fsyncs);
        bench_sleep_until(run.measure_to);
        fsyncs_at = atomic_load(&st->fsyncs);
        pthread_join(pub, NULL);
        pthread_join(sub, NULL);
        if (run.err) {
            fprintf(stderr, "bench_floor: relay connection: %s\n", strerror(run.err));
            rc = 1;
        }
        if (run.received == 0) {
            fprintf(stderr, "bench_floor: no message came back in the measured window\n");
            rc = 1;
        }
        if (rc == 0)
            printf("result system=floor scenario=latency rate=%.0f size=%d fsync_gap_ms=%g "
                   "rate_per_s=%.1f e2e_p50_us=%.1f e2e_p99_us=%.1f e2e_p999_us=%.1f "
                   "e2e_max_us=%.1f fsyncs_per_s=%.1f\n",
                   o.rate, o.size, o.fsync_gap_ms, (double)run.received / o.seconds,
                   bench_hist_quantile_us(&run.hist, 0.5), bench_hist_quantile_us(&run.hist, 0.99),
                   bench_hist_quantile_us(&run.hist, 0.999), (double)run.hist.max / 1e3,
                   (double)(fsyncs_at - fsyncs_before) / o.seconds);
    }
    int status = 0;
    if (waitpid(child, &status, 0) < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0 ||
        atomic_load(&st->failed)) {
        int e = atomic_load(&st->failed);
        fprintf(stderr, "bench_floor: the relay failed%s%s\n", e ? ": " : "", e ? strerror(e) : "");
        rc = 1;
    }
    return rc;
}
