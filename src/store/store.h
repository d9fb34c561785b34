/*
 * store.h - the set of logs under one data directory.
 *
 *   <data-dir>/LOCK           flock()ed while a process has the directory open
 *   <data-dir>/logs/<name>/   one log each (store/log.h)
 *
 * store_open() opens every log it finds; a log that fails recovery (corruption) is refused and
 * listed, and every other log keeps working. A timer drives interval fsyncs, checkpoints,
 * retention and compaction (log_compact, every cleaner_interval_ms). Log names are 1-200 characters of [A-Za-z0-9._-], not "." or "..".
 */
#ifndef TERN_STORE_H
#define TERN_STORE_H

#include <stddef.h>
#include <uv.h>

#include "store/log.h"

struct store_config {
    const char *data_dir;
    struct log_config log; /* defaults for new logs */
    uint32_t tick_ms;      /* timer period for fsync interval, checkpoints and retention */
    uint32_t cleaner_interval_ms; /* how often compacted logs are checked for a pass (15 s) */
};

void store_config_default(struct store_config *cfg);

struct store;
typedef void (*store_close_cb)(void *arg);

/* Opens the data directory (creating it), takes its lock (TERN_ELOCKED if held elsewhere) and
 * opens every log. On success *out owns the store. */
int store_open(uv_loop_t *loop, const struct store_config *cfg, struct store **out);
/* Closes every log cleanly (checkpoint + clean-shutdown marker), releases the lock, frees the
 * store and then calls cb from the loop. */
void store_close(struct store *st, store_close_cb cb, void *arg);

/* The open log called name, creating it with cfg (NULL: the store's defaults) if missing.
 * Returns 0, -EINVAL for a bad name, TERN_ECORRUPT for a refused log, or an open error. */
int store_log(struct store *st, const char *name, const struct log_config *cfg,
              struct log **out);
/* The open log called name, or NULL. */
struct log *store_log_find(struct store *st, const char *name);
/* Closes and removes a log and its files; a refused (corrupt) log is removed too.
 * Returns 0, -EINVAL for a bad name or -ENOENT. */
int store_log_delete(struct store *st, const char *name);
/* True when name is a valid log name. */
int store_name_valid(const char *name);

size_t store_log_count(const struct store *st);
/* Name of open log i (0 <= i < store_log_count), or NULL. */
const char *store_log_name(const struct store *st, size_t i);
/* Logs refused at open (corrupt): name and reason. */
size_t store_refused_count(const struct store *st);
const char *store_refused_name(const struct store *st, size_t i);
const char *store_refused_reason(const struct store *st, size_t i);

#endif
