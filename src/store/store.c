/*
 * store.c - every log under one data directory; the lock; the periodic timer.
 *
 * Per-log configuration is not persisted here: every log opens with the store's defaults or
 * the configuration its caller passes to store_log(); the broker layer owns topic and queue
 * settings (the catalog, a later issue) and passes them on.
 */
#include "store/store.h"

#include "base/clock.h"
#include "base/tern.h"
#include "base/tlog.h"
#include "os/file.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#define STORE_NAME_MAX 200
#define STORE_RETAIN_EVERY_MS 1000
/* A deleted log's directory is renamed to ".deleted.<seq>.<name>" and removed on the pool;
 * store_open removes any left by a crash. Log names never start with '.'. */
#define STORE_TRASH_PREFIX ".deleted."

struct store_entry {
    char *name;
    struct log *log;
};

struct store_refused {
    char *name;
    char *reason;
};

struct store {
    uv_loop_t *loop;
    struct store_config cfg;
    char *data_dir;
    char *logs_dir;
    int lock_fd;
    struct store_entry *logs;
    size_t nlogs, caplogs;
    struct store_refused *refused;
    size_t nrefused;
    uv_timer_t timer;
    bool timer_started;
    int64_t last_retain_ms;
    int64_t last_clean_ms;
    uint64_t trash_seq;
    char **held; /* names of deleted logs whose compaction pass still runs */
    size_t nheld;
    size_t closing;
    store_close_cb close_cb;
    void *close_arg;
};

void store_config_default(struct store_config *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->data_dir = "./data";
    log_config_default(&cfg->log);
    cfg->tick_ms = 100;
    cfg->cleaner_interval_ms = 15000;
}

int store_name_valid(const char *name)
{
    size_t n = strlen(name);
    if (n == 0 || n > STORE_NAME_MAX || strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = name[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-'))
            return 0;
    }
    return 1;
}

static int store_lock(struct store *st)
{
    char *p = file_join(st->data_dir, "LOCK");
    st->lock_fd = open(p, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    free(p);
    if (st->lock_fd < 0)
        return -errno;
    if (flock(st->lock_fd, LOCK_EX | LOCK_NB) < 0)
        return errno == EWOULDBLOCK ? TERN_ELOCKED : -errno;
    return 0;
}

static void store_add(struct store *st, const char *name, struct log *log)
{
    if (st->nlogs == st->caplogs) {
        st->caplogs = st->caplogs ? st->caplogs * 2 : 16;
        st->logs = tern_xrealloc(st->logs, st->caplogs * sizeof(*st->logs));
    }
    st->logs[st->nlogs++] = (struct store_entry){tern_xstrdup(name), log};
}

static void store_refuse(struct store *st, const char *name, const char *reason)
{
    st->refused = tern_xrealloc(st->refused, (st->nrefused + 1) * sizeof(*st->refused));
    st->refused[st->nrefused++] = (struct store_refused){tern_xstrdup(name), tern_xstrdup(reason)};
    TLOG_ERROR("store", "event=log_refused log=%s reason=\"%s\"", name, reason);
}

static void on_log_closed(void *arg);

/* Removes a closed log's directory and its files. */
static void remove_log_dir(void *arg)
{
    char *dir = arg;
    DIR *d = opendir(dir);
    if (d) {
        struct dirent *e;
        while ((e = readdir(d)) != NULL) {
            if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
                continue;
            char *p = file_join(dir, e->d_name);
            file_unlink(p);
            free(p);
        }
        closedir(d);
    }
    if (rmdir(dir) < 0)
        TLOG_WARN("store", "event=log_delete_incomplete dir=%s errno=%d", dir, errno);
    file_sync_parent(dir);
    free(dir);
}

/* Removing a deleted log's directory off the loop thread. */
struct removal {
    uv_work_t req;
    char *dir;
};

static void removal_work(uv_work_t *req)
{
    struct removal *r = req->data;
    remove_log_dir(r->dir);
    r->dir = NULL; /* remove_log_dir freed it */
}

static void removal_done(uv_work_t *req, int status)
{
    (void)status;
    free(req->data);
}

static void remove_later(uv_loop_t *loop, char *dir)
{
    struct removal *r = tern_xcalloc(1, sizeof(*r));
    r->dir = dir;
    r->req.data = r;
    if (!loop || uv_queue_work(loop, &r->req, removal_work, removal_done) < 0) {
        remove_log_dir(dir);
        free(r);
    }
}

/* A log being discarded for deletion. */
struct discard {
    struct store *st; /* set while the name is held (a compaction pass used the directory) */
    uv_loop_t *loop;
    char *dir;  /* its directory: the trash name, or the real one while held */
    char *held; /* the held name (an entry of st->held) */
};

static void on_discarded(void *arg)
{
    struct discard *d = arg;
    struct store *st = d->st;
    remove_later(d->loop, d->dir);
    if (st) {
        for (size_t i = 0; i < st->nheld; i++)
            if (st->held[i] == d->held) {
                st->held[i] = st->held[--st->nheld];
                break;
            }
        free(d->held);
        if (st->closing)
            on_log_closed(st); /* store_close counted it */
    }
    free(d);
}

static bool store_held(const struct store *st, const char *name)
{
    for (size_t i = 0; i < st->nheld; i++)
        if (strcmp(st->held[i], name) == 0)
            return true;
    return false;
}

/* Removes every directory a deletion interrupted by a crash left behind. */
static void remove_trash(const char *logs_dir)
{
    DIR *d = opendir(logs_dir);
    if (!d)
        return;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        if (strncmp(e->d_name, STORE_TRASH_PREFIX, strlen(STORE_TRASH_PREFIX)) == 0)
            remove_log_dir(file_join(logs_dir, e->d_name));
    closedir(d);
}

static int store_open_one(struct store *st, const char *name, const struct log_config *cfg,
                          struct log **out)
{
    char errbuf[512];
    char *dir = file_join(st->logs_dir, name);
    int rc = log_open(st->loop, dir, cfg ? cfg : &st->cfg.log, out, errbuf, sizeof(errbuf));
    free(dir);
    if (rc == TERN_ECORRUPT) {
        store_refuse(st, name, errbuf);
        return rc;
    }
    if (rc < 0) {
        TLOG_ERRNO("store", rc, "event=log_open_failed log=%s reason=\"%s\"", name, errbuf);
        return rc;
    }
    store_add(st, name, *out);
    TLOG_INFO("store", "event=log_open log=%s clean=%s start=%" PRId64 " end=%" PRId64
                       " segments=%d bytes=%" PRIu64,
              name, log_was_clean(*out) ? "true" : "false", log_start_offset(*out),
              log_end_offset(*out), log_segment_count(*out), log_size_bytes(*out));
    return 0;
}

static int store_open_all(struct store *st)
{
    DIR *d = opendir(st->logs_dir);
    if (!d)
        return -errno;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (!store_name_valid(e->d_name) || e->d_name[0] == '.')
            continue;
        struct log *log;
        int rc = store_open_one(st, e->d_name, NULL, &log);
        if (rc < 0 && rc != TERN_ECORRUPT)
            store_refuse(st, e->d_name, tern_strerror(rc));
    }
    closedir(d);
    return 0;
}

static void store_tick(uv_timer_t *t)
{
    struct store *st = t->data;
    int64_t now = clock_wall_ms();
    bool retain = now - st->last_retain_ms >= STORE_RETAIN_EVERY_MS;
    bool clean = now - st->last_clean_ms >= (int64_t)st->cfg.cleaner_interval_ms;
    for (size_t i = 0; i < st->nlogs; i++) {
        log_tick(st->logs[i].log, now);
        if (retain)
            log_retain(st->logs[i].log, now);
        if (clean)
            log_compact(st->logs[i].log, now, false); /* a no-op unless compaction is due */
    }
    if (retain)
        st->last_retain_ms = now;
    if (clean)
        st->last_clean_ms = now;
}

static void store_free(struct store *st)
{
    for (size_t i = 0; i < st->nrefused; i++) {
        free(st->refused[i].name);
        free(st->refused[i].reason);
    }
    if (st->lock_fd >= 0)
        close(st->lock_fd); /* releases the flock */
    free(st->refused);
    free(st->held);
    free(st->logs);
    free(st->logs_dir);
    free(st->data_dir);
    free(st);
}

int store_open(uv_loop_t *loop, const struct store_config *cfg, struct store **out)
{
    struct store *st = tern_xcalloc(1, sizeof(*st));
    st->loop = loop;
    st->cfg = *cfg;
    st->lock_fd = -1;
    st->data_dir = tern_xstrdup(cfg->data_dir);
    st->logs_dir = file_join(st->data_dir, "logs");
    int rc = file_mkdir(st->data_dir);
    if (rc == 0)
        rc = store_lock(st);
    if (rc == 0)
        rc = file_mkdir(st->logs_dir);
    if (rc == 0) {
        remove_trash(st->logs_dir);
        rc = store_open_all(st);
    }
    if (rc < 0) {
        for (size_t i = 0; i < st->nlogs; i++) {
            log_close(st->logs[i].log, NULL, NULL);
            free(st->logs[i].name);
        }
        store_free(st);
        return rc;
    }
    st->cfg.data_dir = st->data_dir;
    if (loop) {
        uv_timer_init(loop, &st->timer);
        st->timer.data = st;
        uv_timer_start(&st->timer, store_tick, cfg->tick_ms, cfg->tick_ms);
        uv_unref((uv_handle_t *)&st->timer); /* the store alone does not keep a loop alive */
        st->timer_started = true;
    }
    *out = st;
    return 0;
}

static void store_finish_close(struct store *st)
{
    store_close_cb cb = st->close_cb;
    void *arg = st->close_arg;
    TLOG_INFO("store", "event=store_closed data_dir=%s", st->data_dir);
    store_free(st);
    if (cb)
        cb(arg);
}

static void on_timer_closed(uv_handle_t *h)
{
    store_finish_close(h->data);
}

static void on_log_closed(void *arg)
{
    struct store *st = arg;
    if (--st->closing > 0)
        return;
    if (st->timer_started)
        uv_close((uv_handle_t *)&st->timer, on_timer_closed);
    else
        store_finish_close(st);
}

void store_close(struct store *st, store_close_cb cb, void *arg)
{
    st->close_cb = cb;
    st->close_arg = arg;
    if (st->timer_started)
        uv_timer_stop(&st->timer);
    /* +1 so a synchronous close cannot finish early; held deletions end with their pass */
    st->closing = st->nlogs + st->nheld + 1;
    size_t n = st->nlogs;
    struct store_entry *logs = st->logs;
    st->logs = NULL;
    st->nlogs = 0;
    for (size_t i = 0; i < n; i++) {
        free(logs[i].name);
        log_close(logs[i].log, on_log_closed, st);
    }
    free(logs);
    on_log_closed(st);
}

struct log *store_log_find(struct store *st, const char *name)
{
    for (size_t i = 0; i < st->nlogs; i++)
        if (strcmp(st->logs[i].name, name) == 0)
            return st->logs[i].log;
    return NULL;
}

int store_log(struct store *st, const char *name, const struct log_config *cfg,
              struct log **out)
{
    if (!store_name_valid(name))
        return -EINVAL;
    for (size_t i = 0; i < st->nrefused; i++)
        if (strcmp(st->refused[i].name, name) == 0)
            return TERN_ECORRUPT;
    if (store_held(st, name))
        return -EBUSY;
    *out = store_log_find(st, name);
    if (*out)
        return 0;
    return store_open_one(st, name, cfg, out);
}

/* Renames log directory dir (owned) to a fresh trash name, so that the name is free at once.
 * Returns the directory's path now: the trash name, or dir when the rename failed. */
static char *to_trash(struct store *st, const char *name, char *dir)
{
    size_t n = strlen(st->logs_dir) + strlen(STORE_TRASH_PREFIX) + 22 + strlen(name) + 2;
    char *trash = tern_xmalloc(n);
    snprintf(trash, n, "%s/%s%" PRIu64 ".%s", st->logs_dir, STORE_TRASH_PREFIX, st->trash_seq++,
             name);
    int rc = file_rename(dir, trash);
    if (rc < 0) {
        TLOG_ERRNO("store", rc, "event=log_rename_failed log=%s", name);
        free(trash);
        return dir;
    }
    free(dir);
    return trash;
}

/* Forgets a refused log and removes its files (on the pool, with a loop). Returns 0, or
 * -ENOENT if name is not refused. */
static int store_delete_refused(struct store *st, const char *name)
{
    for (size_t i = 0; i < st->nrefused; i++) {
        if (strcmp(st->refused[i].name, name) != 0)
            continue;
        free(st->refused[i].name);
        free(st->refused[i].reason);
        st->refused[i] = st->refused[--st->nrefused];
        remove_later(st->loop, to_trash(st, name, file_join(st->logs_dir, name)));
        TLOG_INFO("store", "event=log_deleted log=%s refused=true", name);
        return 0;
    }
    return -ENOENT;
}

int store_log_delete(struct store *st, const char *name)
{
    if (!store_name_valid(name))
        return -EINVAL;
    for (size_t i = 0; i < st->nlogs; i++) {
        if (strcmp(st->logs[i].name, name) != 0)
            continue;
        struct log *log = st->logs[i].log;
        struct discard *d = tern_xcalloc(1, sizeof(*d));
        d->loop = st->loop;
        d->dir = file_join(st->logs_dir, name);
        if (log_compacting(log)) {
            /* the pass works on paths under the directory until it ends: keep it (and the
             * name, so that no new log takes that directory) until the log has closed */
            d->st = st;
            d->held = tern_xstrdup(name);
            st->held = tern_xrealloc(st->held, (st->nheld + 1) * sizeof(*st->held));
            st->held[st->nheld++] = d->held;
        } else {
            d->dir = to_trash(st, name, d->dir); /* the name is free for a new log right now */
        }
        free(st->logs[i].name);
        st->logs[i] = st->logs[--st->nlogs];
        log_discard(log, on_discarded, d);
        TLOG_INFO("store", "event=log_deleted log=%s", name);
        return 0;
    }
    return store_delete_refused(st, name);
}

size_t store_log_count(const struct store *st)
{
    return st->nlogs;
}

const char *store_log_name(const struct store *st, size_t i)
{
    return i < st->nlogs ? st->logs[i].name : NULL;
}

size_t store_refused_count(const struct store *st)
{
    return st->nrefused;
}

const char *store_refused_name(const struct store *st, size_t i)
{
    return i < st->nrefused ? st->refused[i].name : NULL;
}

const char *store_refused_reason(const struct store *st, size_t i)
{
    return i < st->nrefused ? st->refused[i].reason : NULL;
}
