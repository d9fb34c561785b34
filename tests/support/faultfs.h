/*
 * faultfs.h - a fault-injecting file layer for crash tests (installs into os/file.h).
 *
 * It passes every operation to the real file system and keeps, per file, the image that would
 * survive a power loss: contents as of the last successful fdatasync, and whether the file's
 * directory entry is durable (its directory fsynced since it was created, renamed or removed).
 *
 *   faultfs_crash()    the machine dies now: from here on every write, fsync, rename and
 *                      unlink is discarded (the test can free its objects without saving
 *                      anything), reads still work.
 *   faultfs_crash_at() the machine dies just before the nth next call of an operation (from
 *                      any thread), so that call and everything after it are discarded: a
 *                      crash in the middle of a multi-step sequence the test cannot pause.
 *   faultfs_restart()  the machine comes back: every file is rewritten to its durable image
 *                      (FAULTFS_DROP), or to its durable image plus a random prefix of the bytes
 *                      appended after it (FAULTFS_TEAR), files whose entry was not durable
 *                      vanish and removed files whose removal was not durable come back.
 *
 * Failures: faultfs_fail() makes the nth next call of an operation fail with an error; for
 * pwrite, `partial` first writes half the buffer (a disk-full write).
 */
#ifndef TERN_FAULTFS_H
#define TERN_FAULTFS_H

#include <stddef.h>
#include <stdint.h>

enum faultfs_op {
    FAULTFS_OP_OPEN,
    FAULTFS_OP_PWRITE,
    FAULTFS_OP_FDATASYNC,
    FAULTFS_OP_TRUNCATE,
    FAULTFS_OP_FSYNC_DIR,
    FAULTFS_OP_RENAME,
    FAULTFS_OP_UNLINK,
    FAULTFS_OP_CLOSE, /* counted only: never failed or crashed at */
    FAULTFS_OP_COUNT,
};

enum faultfs_crash_mode { FAULTFS_DROP, FAULTFS_TEAR };

void faultfs_install(void);
void faultfs_uninstall(void);
void faultfs_crash(void);
/* Arms a crash just before the nth (1 = next) call of op; 0 disarms. */
void faultfs_crash_at(enum faultfs_op op, uint64_t nth);
/* True once a crash (faultfs_crash or an armed one) has happened and until the restart. */
int faultfs_crashed(void);
void faultfs_restart(enum faultfs_crash_mode mode, uint64_t seed);
/* The nth (1 = next) call of op fails with err (negative errno). */
void faultfs_fail(enum faultfs_op op, int nth, int err, int partial);
/*
 * Holds: the nth (1 = next) fdatasync waits, before it does anything (it is not yet counted,
 * and it holds no lock of faultfs, so other calls go on), until faultfs_release(). For tests
 * of fsyncs that overlap: a job stuck in its fsync while a younger one runs.
 */
void faultfs_hold_fdatasync(int nth);
/* True while the held fdatasync waits. */
int faultfs_holding(void);
/* Lets the held fdatasync go on. */
void faultfs_release(void);
/* Calls of op since install (successful or not). */
uint64_t faultfs_calls(enum faultfs_op op);
/* Calls of op made by the calling thread (the loop thread, in a test that runs one). */
uint64_t faultfs_thread_calls(enum faultfs_op op);

#endif
