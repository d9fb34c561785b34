/*
 * clock.h - wall-clock and monotonic time.
 */
#ifndef TERN_CLOCK_H
#define TERN_CLOCK_H

#include <stdint.h>

/* Milliseconds since the Unix epoch (Kafka timestamps, retention). */
int64_t clock_wall_ms(void);
/* Monotonic nanoseconds, for measuring intervals. */
uint64_t clock_mono_ns(void);

#endif
