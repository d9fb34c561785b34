/*
 * testutil.h - helpers shared by the unit and component tests.
 */
#ifndef TERN_TESTUTIL_H
#define TERN_TESTUTIL_H

#include <stdbool.h>
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

/* A keyed record, to build batches from or read back (key and value are strings; the null
 * flags stand for a null key or value). */
struct tu_kv {
    int64_t offset;
    int64_t timestamp;
    bool null_key, null_value;
    char key[64];
    char value[256];
};

/* Builds a batch of n records from kvs (offset ignored; record i gets offsetDelta i), compressed
 * with codec (store/compress.h; 0: none). Returns a malloc'ed buffer; *len its size. */
uint8_t *tu_kbatch(const struct tu_kv *kvs, int n, int codec, size_t *len);

/* Counts from tu_read_kv. */
struct tu_walk {
    int batches;      /* batches read */
    int empty;        /* of which with no records */
    int64_t end;      /* offset after the last batch */
};

/* Reads every record from the log's start to its end through log_read + pread, any codec,
 * checking each batch's CRC and that each batch starts right after the previous one's last
 * offset (TERN_ECORRUPT otherwise). Returns the count (at most max) or a negative error. */
int tu_read_kv(struct log *log, struct tu_kv *out, int max, struct tu_walk *w);

/* Flips one bit of a file at byte pos. */
void tu_flip(const char *path, uint64_t pos, int bit);
/* Appends raw bytes to a file. */
void tu_append_raw(const char *path, const void *buf, size_t len);
/* Size of a file, -1 if missing. */
int64_t tu_file_size(const char *path);

#endif
