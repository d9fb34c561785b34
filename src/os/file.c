/*
 * file.c - POSIX file operations and the dispatch through the installed table.
 */
#include "os/file.h"

#include "base/tern.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int posix_open(const char *path, int flags, int mode)
{
    int fd = open(path, flags | O_CLOEXEC, mode);
    return fd < 0 ? -errno : fd;
}

static int posix_close(int fd)
{
    return close(fd) < 0 ? -errno : 0;
}

static ssize_t posix_pwrite(int fd, const void *buf, size_t n, off_t off)
{
    ssize_t w = pwrite(fd, buf, n, off);
    return w < 0 ? -errno : w;
}

static ssize_t posix_pread(int fd, void *buf, size_t n, off_t off)
{
    ssize_t r = pread(fd, buf, n, off);
    return r < 0 ? -errno : r;
}

static int posix_fdatasync(int fd)
{
    return fdatasync(fd) < 0 ? -errno : 0;
}

static int posix_ftruncate(int fd, off_t len)
{
    return ftruncate(fd, len) < 0 ? -errno : 0;
}

static int posix_rename(const char *from, const char *to)
{
    return rename(from, to) < 0 ? -errno : 0;
}

static int posix_unlink(const char *path)
{
    return unlink(path) < 0 ? -errno : 0;
}

static int posix_fsync_dir(const char *path)
{
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    int rc = fsync(fd) < 0 ? -errno : 0;
    close(fd);
    return rc;
}

const struct file_ops file_posix_ops = {
    .open = posix_open,
    .close = posix_close,
    .pwrite = posix_pwrite,
    .pread = posix_pread,
    .fdatasync = posix_fdatasync,
    .ftruncate = posix_ftruncate,
    .rename = posix_rename,
    .unlink = posix_unlink,
    .fsync_dir = posix_fsync_dir,
};

static const struct file_ops *ops = &file_posix_ops;

const struct file_ops *file_set_ops(const struct file_ops *next)
{
    const struct file_ops *prev = ops;
    ops = next ? next : &file_posix_ops;
    return prev;
}

int file_open(const char *path, int flags, int mode)
{
    return ops->open(path, flags, mode);
}

int file_close(int fd)
{
    return ops->close(fd);
}

int file_pwrite_all(int fd, const void *buf, size_t n, off_t off)
{
    const char *p = buf;
    while (n > 0) {
        ssize_t w = ops->pwrite(fd, p, n, off);
        if (w == -EINTR)
            continue;
        if (w < 0)
            return (int)w;
        if (w == 0)
            return -EIO;
        p += w;
        n -= (size_t)w;
        off += w;
    }
    return 0;
}

ssize_t file_pread_all(int fd, void *buf, size_t n, off_t off)
{
    char *p = buf;
    size_t got = 0;
    while (got < n) {
        ssize_t r = ops->pread(fd, p + got, n - got, off + (off_t)got);
        if (r == -EINTR)
            continue;
        if (r < 0)
            return r;
        if (r == 0)
            break;
        got += (size_t)r;
    }
    return (ssize_t)got;
}

int file_datasync(int fd)
{
    return ops->fdatasync(fd);
}

int file_truncate(int fd, off_t len)
{
    return ops->ftruncate(fd, len);
}

int file_rename(const char *from, const char *to)
{
    return ops->rename(from, to);
}

int file_unlink(const char *path)
{
    return ops->unlink(path);
}

int file_sync_dir(const char *path)
{
    return ops->fsync_dir(path);
}

int64_t file_size(int fd)
{
    struct stat st;
    if (fstat(fd, &st) < 0)
        return -errno;
    return st.st_size;
}

int file_mkdir_nosync(const char *path)
{
    if (mkdir(path, 0755) < 0)
        return errno == EEXIST ? 0 : -errno;
    return 1;
}

int file_drop_cache(int fd, off_t off, off_t len)
{
    return -posix_fadvise(fd, off, len, POSIX_FADV_DONTNEED);
}

int file_sync_parent(const char *path)
{
    char *parent = tern_xstrdup(path);
    char *slash = strrchr(parent, '/');
    if (slash)
        slash[slash == parent ? 1 : 0] = '\0';
    int rc = file_sync_dir(slash ? parent : ".");
    free(parent);
    return rc;
}

int file_mkdir(const char *path)
{
    int rc = file_mkdir_nosync(path);
    return rc <= 0 ? rc : file_sync_parent(path);
}

char *file_join(const char *dir, const char *name)
{
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = tern_xmalloc(n);
    snprintf(p, n, "%s/%s", dir, name);
    return p;
}
