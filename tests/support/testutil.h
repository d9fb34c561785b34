/*
 * testutil.h - helpers shared by the unit and component tests.
 */
#ifndef TERN_TESTUTIL_H
#define TERN_TESTUTIL_H

#include <stddef.h>
#include <stdint.h>

#include "store/log.h"

/* A fresh directory under $TMPDIR (or /tmp); the caller frees the string after tu_rmrf. */
char *tu_tmpdir(void);
/* Removes a directory tree. */
void tu_rmrf(const char *path);
/* path = dir + "/" + name (static buffer, overwritten by the next call). */
const char *tu_path(const char *dir, const char *name);

/* A synchronous log in a fresh temporary directory: the fixture of the log tests. */
struct tu_logfx {
    char *dir;          /* the temporary directory */
    char logdir[4096];  /* dir + "/l": where the log lives */
    struct log_config cfg; /* log_config_default(); tests adjust it before opening */
    struct log *log;    /* opened by the test; closed by tu_logfx_free when still open */
};

struct tu_logfx *tu_logfx_new(void);
/* Closes the log if open, removes the directory and frees f. */
void tu_logfx_free(struct tu_logfx *f);

/* Builds a batch of n records; record i has value "<tag>-<i>" padded with 'x' to vsize bytes
 * (vsize 0: no padding) and timestamp ts. Returns a malloc'ed buffer; *len its size. */
uint8_t *tu_batch(const char *tag, int n, size_t vsize, int64_t ts, size_t *len);

/* One record read back from a log. */
struct tu_rec {
    int64_t offset;
    int64_t timestamp;
    char value[256];
};

/* Reads every record in [from, limit) through log_read + pread + batch iteration, checking
 * each batch's CRC. Returns the count (records with offset < from are skipped), or a negative
 * error. At most max records. */
int tu_read_all(struct log *log, int64_t from, int64_t limit, struct tu_rec *out, int max);

/* Flips one bit of a file at byte pos. */
void tu_flip(const char *path, uint64_t pos, int bit);
/* Appends raw bytes to a file. */
void tu_append_raw(const char *path, const void *buf, size_t len);
/* Size of a file, -1 if missing. */
int64_t tu_file_size(const char *path);

#endif
