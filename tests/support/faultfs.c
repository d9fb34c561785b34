/*
 * faultfs.c - the crash-simulating file layer. See faultfs.h. Test code: simple structures,
 * linear searches, whole-file snapshots (test files are small).
 */
#include "faultfs.h"

#include "base/tern.h"
#include "os/file.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_FDS 4096

struct node {
    char *path;           /* NULL once removed from the namespace */
    bool live;            /* false: a ghost, the durable image of a removed entry */
    bool entry_durable;   /* the directory entry survives a crash */
    uint8_t *durable;     /* contents as of the last successful fdatasync */
    size_t dlen;
    uint8_t *at_crash;    /* contents when faultfs_crash() ran */
    size_t clen;
    struct node *next;
};

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER; /* loop and pool threads */
static struct node *nodes;
static struct node *fds[MAX_FDS];
static bool crashed;
static uint64_t calls[FAULTFS_OP_COUNT];
static _Thread_local uint64_t thread_calls[FAULTFS_OP_COUNT]; /* the calling thread's */
static struct {
    int nth, err, partial;
} fails[FAULTFS_OP_COUNT];
static uint64_t crash_at[FAULTFS_OP_COUNT];

static bool read_whole(const char *path, uint8_t **buf, size_t *len);

/* faultfs_hold_fdatasync: apart from mu, which the held call must not keep others from */
static pthread_mutex_t hold_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t hold_cv = PTHREAD_COND_INITIALIZER;
static int hold_nth;
static bool holding, released;

static void hold_point(void)
{
    pthread_mutex_lock(&hold_mu);
    if (hold_nth > 0 && --hold_nth == 0) {
        holding = true;
        while (!released)
            pthread_cond_wait(&hold_cv, &hold_mu);
        holding = released = false;
    }
    pthread_mutex_unlock(&hold_mu);
}

void faultfs_hold_fdatasync(int nth)
{
    pthread_mutex_lock(&hold_mu);
    hold_nth = nth;
    released = false;
    pthread_mutex_unlock(&hold_mu);
}

int faultfs_holding(void)
{
    pthread_mutex_lock(&hold_mu);
    int h = holding;
    pthread_mutex_unlock(&hold_mu);
    return h;
}

void faultfs_release(void)
{
    pthread_mutex_lock(&hold_mu);
    released = true;
    pthread_cond_broadcast(&hold_cv);
    pthread_mutex_unlock(&hold_mu);
}

static void crash_locked(void)
{
    for (struct node *n = nodes; n; n = n->next)
        if (n->live && n->path && !read_whole(n->path, &n->at_crash, &n->clen))
            n->clen = 0;
    crashed = true;
}

/* Dies here when a crash is armed for this call of op. */
static void crash_point(enum faultfs_op op)
{
    if (!crashed && crash_at[op] > 0 && --crash_at[op] == 0)
        crash_locked();
}

static int injected(enum faultfs_op op, int *partial)
{
    calls[op]++;
    thread_calls[op]++;
    if (fails[op].nth > 0 && --fails[op].nth == 0) {
        if (partial)
            *partial = fails[op].partial;
        return fails[op].err;
    }
    return 0;
}

static bool read_whole(const char *path, uint8_t **buf, size_t *len)
{
    struct stat st;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return false;
    bool ok = fstat(fd, &st) == 0;
    *len = ok ? (size_t)st.st_size : 0;
    *buf = tern_xmalloc(*len);
    ok = ok && pread(fd, *buf, *len, 0) == (ssize_t)*len;
    close(fd);
    return ok;
}

static struct node *find_live(const char *path)
{
    for (struct node *n = nodes; n; n = n->next)
        if (n->live && n->path && strcmp(n->path, path) == 0)
            return n;
    return NULL;
}

static struct node *node_new(const char *path, bool existed)
{
    struct node *n = tern_xcalloc(1, sizeof(*n));
    n->path = tern_xstrdup(path);
    n->live = true;
    n->entry_durable = existed;
    if (existed && !read_whole(path, &n->durable, &n->dlen)) {
        free(n->durable);
        n->durable = NULL;
        n->dlen = 0;
    }
    n->next = nodes;
    nodes = n;
    return n;
}

/* Leaves a ghost holding n's durable image at its path (when that image would survive). */
static void leave_ghost(struct node *n)
{
    if (!n->entry_durable)
        return;
    struct node *g = tern_xcalloc(1, sizeof(*g));
    g->path = tern_xstrdup(n->path);
    g->entry_durable = true;
    g->durable = n->dlen ? tern_xmalloc(n->dlen) : NULL;
    if (n->dlen)
        memcpy(g->durable, n->durable, n->dlen);
    g->dlen = n->dlen;
    g->next = nodes;
    nodes = g;
}

static int ff_open_locked(const char *path, int flags, int mode)
{
    crash_point(FAULTFS_OP_OPEN);
    if (injected(FAULTFS_OP_OPEN, NULL))
        return fails[FAULTFS_OP_OPEN].err;
    struct node *n = find_live(path);
    bool existed = access(path, F_OK) == 0;
    if (crashed) {
        /* a dead machine creates and truncates nothing */
        flags &= ~(O_CREAT | O_TRUNC | O_EXCL);
        if (!existed)
            path = "/dev/null";
    }
    int fd = open(path, flags | O_CLOEXEC, mode);
    if (fd < 0)
        return -errno;
    TERN_ASSERT(fd < MAX_FDS);
    if (crashed) {
        fds[fd] = NULL;
        return fd;
    }
    if (!n || !existed) {
        if (n) /* a node whose file vanished behind our back: start over */
            n->live = false;
        n = node_new(path, existed);
    }
    fds[fd] = n;
    return fd;
}

static int ff_close_locked(int fd)
{
    fds[fd] = NULL;
    return close(fd) < 0 ? -errno : 0;
}

static ssize_t ff_pwrite_locked(int fd, const void *buf, size_t len, off_t off)
{
    crash_point(FAULTFS_OP_PWRITE);
    if (crashed)
        return (ssize_t)len;
    int partial = 0, err = injected(FAULTFS_OP_PWRITE, &partial);
    if (err) {
        if (partial && len > 1)
            (void)!pwrite(fd, buf, len / 2, off);
        return err;
    }
    ssize_t w = pwrite(fd, buf, len, off);
    return w < 0 ? -errno : w;
}

static ssize_t ff_pread(int fd, void *buf, size_t len, off_t off)
{
    ssize_t r = pread(fd, buf, len, off);
    return r < 0 ? -errno : r;
}

static int ff_fdatasync_locked(int fd)
{
    crash_point(FAULTFS_OP_FDATASYNC);
    if (crashed)
        return 0;
    int err = injected(FAULTFS_OP_FDATASYNC, NULL);
    if (err)
        return err; /* the durable image is not updated: those bytes may be gone */
    struct node *n = fds[fd];
    if (n) {
        struct stat st;
        if (fstat(fd, &st) < 0)
            return -errno;
        free(n->durable);
        n->dlen = (size_t)st.st_size;
        n->durable = tern_xmalloc(n->dlen);
        if (pread(fd, n->durable, n->dlen, 0) != (ssize_t)n->dlen)
            return -EIO;
    }
    return 0;
}

static int ff_ftruncate_locked(int fd, off_t len)
{
    crash_point(FAULTFS_OP_TRUNCATE);
    if (crashed)
        return 0;
    int err = injected(FAULTFS_OP_TRUNCATE, NULL);
    if (err)
        return err;
    return ftruncate(fd, len) < 0 ? -errno : 0;
}

static int ff_rename_locked(const char *from, const char *to)
{
    crash_point(FAULTFS_OP_RENAME);
    if (crashed)
        return 0;
    int err = injected(FAULTFS_OP_RENAME, NULL);
    if (err)
        return err;
    if (rename(from, to) < 0)
        return -errno;
    struct node *src = find_live(from), *dst = find_live(to);
    if (dst) {
        leave_ghost(dst);
        dst->live = false;
        dst->entry_durable = false; /* the ghost carries what survives */
    }
    if (src) {
        leave_ghost(src);
        free(src->path);
        src->path = tern_xstrdup(to);
        src->entry_durable = false;
    }
    return 0;
}

static int ff_unlink_locked(const char *path)
{
    crash_point(FAULTFS_OP_UNLINK);
    if (crashed)
        return 0;
    int err = injected(FAULTFS_OP_UNLINK, NULL);
    if (err)
        return err;
    if (unlink(path) < 0)
        return -errno;
    struct node *n = find_live(path);
    if (n) {
        leave_ghost(n);
        n->live = false;
        n->entry_durable = false; /* the ghost carries what survives */
    }
    return 0;
}

static bool in_dir(const char *path, const char *dir)
{
    size_t n = strlen(dir);
    return strncmp(path, dir, n) == 0 && path[n] == '/' && !strchr(path + n + 1, '/');
}

static int ff_fsync_dir_locked(const char *dir)
{
    crash_point(FAULTFS_OP_FSYNC_DIR);
    if (crashed)
        return 0;
    int err = injected(FAULTFS_OP_FSYNC_DIR, NULL);
    if (err)
        return err;
    int rc = file_posix_ops.fsync_dir(dir);
    if (rc < 0)
        return rc;
    for (struct node *n = nodes; n; n = n->next) {
        if (!n->path || !in_dir(n->path, dir))
            continue;
        if (n->live)
            n->entry_durable = true;
        else
            n->entry_durable = false; /* ghost or removed: its removal is now durable */
    }
    return 0;
}

static int ff_open(const char *path, int flags, int mode)
{
    pthread_mutex_lock(&mu);
    int rc = ff_open_locked(path, flags, mode);
    pthread_mutex_unlock(&mu);
    return rc;
}

static int ff_close(int fd)
{
    pthread_mutex_lock(&mu);
    calls[FAULTFS_OP_CLOSE]++;
    thread_calls[FAULTFS_OP_CLOSE]++;
    int rc = ff_close_locked(fd);
    pthread_mutex_unlock(&mu);
    return rc;
}

static ssize_t ff_pwrite(int fd, const void *buf, size_t len, off_t off)
{
    pthread_mutex_lock(&mu);
    ssize_t rc = ff_pwrite_locked(fd, buf, len, off);
    pthread_mutex_unlock(&mu);
    return rc;
}

static int ff_fdatasync(int fd)
{
    hold_point();
    pthread_mutex_lock(&mu);
    int rc = ff_fdatasync_locked(fd);
    pthread_mutex_unlock(&mu);
    return rc;
}

static int ff_ftruncate(int fd, off_t len)
{
    pthread_mutex_lock(&mu);
    int rc = ff_ftruncate_locked(fd, len);
    pthread_mutex_unlock(&mu);
    return rc;
}

static int ff_rename(const char *from, const char *to)
{
    pthread_mutex_lock(&mu);
    int rc = ff_rename_locked(from, to);
    pthread_mutex_unlock(&mu);
    return rc;
}

static int ff_unlink(const char *path)
{
    pthread_mutex_lock(&mu);
    int rc = ff_unlink_locked(path);
    pthread_mutex_unlock(&mu);
    return rc;
}

static int ff_fsync_dir(const char *dir)
{
    pthread_mutex_lock(&mu);
    int rc = ff_fsync_dir_locked(dir);
    pthread_mutex_unlock(&mu);
    return rc;
}

static const struct file_ops faultfs_ops = {
    .open = ff_open,
    .close = ff_close,
    .pwrite = ff_pwrite,
    .pread = ff_pread,
    .fdatasync = ff_fdatasync,
    .ftruncate = ff_ftruncate,
    .rename = ff_rename,
    .unlink = ff_unlink,
    .fsync_dir = ff_fsync_dir,
};

static void nodes_free(void)
{
    while (nodes) {
        struct node *n = nodes;
        nodes = n->next;
        free(n->path);
        free(n->durable);
        free(n->at_crash);
        free(n);
    }
    memset(fds, 0, sizeof(fds));
}

void faultfs_install(void)
{
    nodes_free();
    crashed = false;
    memset(calls, 0, sizeof(calls));
    memset(fails, 0, sizeof(fails));
    memset(crash_at, 0, sizeof(crash_at));
    file_set_ops(&faultfs_ops);
}

void faultfs_uninstall(void)
{
    nodes_free();
    crashed = false;
    faultfs_hold_fdatasync(0);
    file_set_ops(NULL);
}

void faultfs_crash(void)
{
    pthread_mutex_lock(&mu); /* an fsync may be running on the pool thread */
    if (!crashed)
        crash_locked();
    pthread_mutex_unlock(&mu);
}

void faultfs_crash_at(enum faultfs_op op, uint64_t nth)
{
    pthread_mutex_lock(&mu);
    crash_at[op] = nth;
    pthread_mutex_unlock(&mu);
}

int faultfs_crashed(void)
{
    pthread_mutex_lock(&mu);
    int c = crashed;
    pthread_mutex_unlock(&mu);
    return c;
}

static uint64_t rnd(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

/* The bytes a file holds after the restart. */
static void survivor(struct node *n, enum faultfs_crash_mode mode, uint64_t *seed,
                     uint8_t **buf, size_t *len)
{
    *buf = n->durable;
    *len = n->dlen;
    if (mode != FAULTFS_TEAR || !n->live || n->clen <= n->dlen)
        return;
    size_t extra = (size_t)(rnd(seed) % (n->clen - n->dlen + 1));
    uint8_t *b = tern_xmalloc(n->dlen + extra);
    if (n->dlen)
        memcpy(b, n->durable, n->dlen);
    memcpy(b + n->dlen, n->at_crash + n->dlen, extra);
    *buf = b;
    *len = n->dlen + extra;
}

void faultfs_restart(enum faultfs_crash_mode mode, uint64_t seed)
{
    uint64_t s = seed ? seed : 0x9E3779B97F4A7C15ull;
    /* first remove every file we track, then write back what survives */
    for (struct node *n = nodes; n; n = n->next)
        if (n->path)
            unlink(n->path);
    for (struct node *n = nodes; n; n = n->next) {
        if (!n->path || !n->entry_durable)
            continue;
        uint8_t *buf;
        size_t len;
        survivor(n, mode, &s, &buf, &len);
        int fd = open(n->path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        TERN_ASSERT(fd >= 0);
        TERN_ASSERT(len == 0 || pwrite(fd, buf, len, 0) == (ssize_t)len);
        close(fd);
        if (buf != n->durable)
            free(buf);
    }
    nodes_free();
    crashed = false;
    memset(fails, 0, sizeof(fails));
    memset(crash_at, 0, sizeof(crash_at));
}

void faultfs_fail(enum faultfs_op op, int nth, int err, int partial)
{
    fails[op].nth = nth;
    fails[op].err = err;
    fails[op].partial = partial;
}

uint64_t faultfs_calls(enum faultfs_op op)
{
    pthread_mutex_lock(&mu); /* pool threads may be counting */
    uint64_t n = calls[op];
    pthread_mutex_unlock(&mu);
    return n;
}

uint64_t faultfs_thread_calls(enum faultfs_op op)
{
    return thread_calls[op];
}
