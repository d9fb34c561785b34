/*
 * benchutil.h - what every load generator in bench/ shares: a log-linear latency histogram,
 * sleeping until a CLOCK_MONOTONIC instant, and the process's CPU time.
 */
#ifndef BENCHUTIL_H
#define BENCHUTIL_H

#include <stdint.h>

/* Log-linear histogram: exact below 64 ns, then 64 buckets per power of two (< 1.6% error). */
#define BENCH_HIST_SUB_BITS 6
#define BENCH_HIST_SUB (1u << BENCH_HIST_SUB_BITS)
#define BENCH_HIST_BUCKETS ((64 - BENCH_HIST_SUB_BITS + 1) * BENCH_HIST_SUB)

struct bench_hist {
    uint64_t n, max;
    uint64_t b[BENCH_HIST_BUCKETS];
};

void bench_hist_add(struct bench_hist *h, uint64_t v);
void bench_hist_merge(struct bench_hist *into, const struct bench_hist *h);
/* The q-quantile (0 < q <= 1) in microseconds; -1 when the histogram is empty. */
double bench_hist_quantile_us(const struct bench_hist *h, double q);

/* Sleeps until CLOCK_MONOTONIC reaches t_ns (clock_mono_ns() units). */
void bench_sleep_until(uint64_t t_ns);
/* User + system CPU seconds of the whole process so far. */
double bench_cpu_seconds(void);

#endif
