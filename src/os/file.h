/*
 * file.h - the file operations the store uses, behind a swappable table.
 *
 * Every durable write in tern goes through these functions, so a test can install a
 * fault-injecting table (tests/support/faultfs.c) that drops un-fsynced bytes at a simulated
 * crash, tears the last write, or fails a chosen write or fsync. The default table is plain
 * POSIX. Reads that need a real descriptor (sendfile) use the fd returned by file_open(), which
 * every table must back with a real file.
 *
 * All functions return 0 (or a byte count) on success and -errno on failure. Short writes are
 * retried internally until complete or an error; a short read at end of file returns the count.
 */
#ifndef TERN_FILE_H
#define TERN_FILE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct file_ops {
    int (*open)(const char *path, int flags, int mode); /* fd or -errno */
    int (*close)(int fd);
    ssize_t (*pwrite)(int fd, const void *buf, size_t n, off_t off); /* may be short */
    ssize_t (*pread)(int fd, void *buf, size_t n, off_t off);
    int (*fdatasync)(int fd);
    int (*ftruncate)(int fd, off_t len);
    int (*rename)(const char *from, const char *to);
    int (*unlink)(const char *path);
    int (*fsync_dir)(const char *path);
};

extern const struct file_ops file_posix_ops;

/* Installs ops (NULL restores POSIX). Returns the previous table. Not thread-safe: call it
 * before any file is opened. */
const struct file_ops *file_set_ops(const struct file_ops *ops);

int file_open(const char *path, int flags, int mode);
int file_close(int fd);
/* Writes all n bytes at off. Returns 0 or -errno (some bytes may have been written). */
int file_pwrite_all(int fd, const void *buf, size_t n, off_t off);
/* Reads up to n bytes at off; returns the count read (short only at end of file) or -errno. */
ssize_t file_pread_all(int fd, void *buf, size_t n, off_t off);
int file_datasync(int fd);
int file_truncate(int fd, off_t len);
int file_rename(const char *from, const char *to);
int file_unlink(const char *path);
/* fsyncs a directory so that entries created, renamed or removed in it are durable. */
int file_sync_dir(const char *path);
/* Creates directory path (0 if it exists) and fsyncs its parent so the entry is durable. */
int file_mkdir(const char *path);
/* Asks the kernel to drop [off, off + len) of fd's file from the page cache (clean pages go
 * at once; partial pages at the ends stay). Advisory: returns 0 or -errno. */
int file_drop_cache(int fd, off_t off, off_t len);
/* fsyncs the directory that holds path. */
int file_sync_parent(const char *path);
/* Creates directory path without fsyncing its parent: returns 1 when it created it, 0 when it
 * existed, or -errno. The caller makes the entry durable (file_sync_dir of the parent). */
int file_mkdir_nosync(const char *path);
/* "dir/name", malloc'ed (aborts on allocation failure); the caller frees it. */
char *file_join(const char *dir, const char *name);
/* Size of an open file, or -errno. */
int64_t file_size(int fd);

#endif
