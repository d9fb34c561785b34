/*
 * benchutil.c - histogram, sleep and CPU time for the load generators (see benchutil.h).
 */
#include "benchutil.h"

#include <errno.h>
#include <sys/resource.h>
#include <time.h>

static unsigned hist_index(uint64_t v)
{
    if (v < BENCH_HIST_SUB)
        return (unsigned)v;
    unsigned e = 63u - (unsigned)__builtin_clzll(v); /* >= BENCH_HIST_SUB_BITS */
    unsigned sub = (unsigned)(v >> (e - BENCH_HIST_SUB_BITS)) & (BENCH_HIST_SUB - 1);
    return (e - BENCH_HIST_SUB_BITS + 1) * BENCH_HIST_SUB + sub;
}

/* The middle of bucket i. */
static double hist_value(unsigned i)
{
    if (i < BENCH_HIST_SUB)
        return i;
    unsigned e = i / BENCH_HIST_SUB + BENCH_HIST_SUB_BITS - 1;
    uint64_t lo = ((uint64_t)BENCH_HIST_SUB + i % BENCH_HIST_SUB) << (e - BENCH_HIST_SUB_BITS);
    return (double)lo + (double)(1ull << (e - BENCH_HIST_SUB_BITS)) / 2;
}

void bench_hist_add(struct bench_hist *h, uint64_t v)
{
    h->b[hist_index(v)]++;
    h->n++;
    if (v > h->max)
        h->max = v;
}

void bench_hist_merge(struct bench_hist *into, const struct bench_hist *h)
{
    for (unsigned i = 0; i < BENCH_HIST_BUCKETS; i++)
        into->b[i] += h->b[i];
    into->n += h->n;
    if (h->max > into->max)
        into->max = h->max;
}

double bench_hist_quantile_us(const struct bench_hist *h, double q)
{
    if (h->n == 0)
        return -1;
    uint64_t rank = (uint64_t)(q * (double)h->n + 0.999999);
    if (rank < 1)
        rank = 1;
    uint64_t seen = 0;
    for (unsigned i = 0; i < BENCH_HIST_BUCKETS; i++) {
        seen += h->b[i];
        if (seen >= rank)
            return hist_value(i) / 1e3;
    }
    return (double)h->max / 1e3;
}

void bench_sleep_until(uint64_t t_ns)
{
    struct timespec ts = {.tv_sec = (time_t)(t_ns / 1000000000u),
                          .tv_nsec = (long)(t_ns % 1000000000u)};
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
        ;
}

double bench_cpu_seconds(void)
{
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) < 0)
        return 0;
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}
