/*
 * bench_store.c - the log engine's append and read-back throughput, as ratios of what the
 * machine can do on the same filesystem in the same run. bench/README.md explains how to read it.
 *
 * Ceilings, measured first and printed as the machine's reference:
 *
 *   raw sequential write  1 MiB pwrite()s to a new file (up to the volume cap or --seconds),
 *                         fdatasync at the end, all timed
 *   fdatasync rate        4 KiB append + fdatasync, repeated
 *   page-cache read       1 MiB pread()s of a cached file (the raw write's file, kept open)
 *
 * Rows, divided by ceilings measured beside them, because on a shared or virtual machine the
 * same measurement moved by 4x within seconds:
 *
 *   append never   synchronous log (loop NULL), LOG_FSYNC_NEVER, final log_sync timed; 100 B
 *                  and 1 KiB records in batches of 1, 100, 1000; stops at --seconds or at the
 *                  volume cap. Each row is followed by a raw sequential write of the same byte
 *                  count; the ceiling is the best raw write of the run.
 *   read           log_read + pread of that whole log in 1 MiB slices, for --seconds / 2, in
 *                  rounds alternating with a raw pread pass over the reference file (the
 *                  ceiling) and one over the log's own segment file (shown in the notes).
 *   append always  a uv loop, LOG_FSYNC_ALWAYS, N appenders that each append a batch and wait
 *                  for it to be durable before the next, for --seconds. Ceiling: N x the
 *                  better fdatasync rate of one right before and one right after, or the best
 *                  raw write bandwidth of the run if that is lower.
 *
 * Before every timed write the filesystem is synced and memory is warmed (settle(),
 * warm_memory()), so that every write starts from the same state. Engine I/O is counted
 * through a pass-through file_ops table (os/file.h): the rows report writes per batch, reads
 * per slice and fsyncs per acknowledged batch.
 *
 * Everything is created in one mkdtemp directory, removed at the end and on error. Errors
 * print tern_strerror() and exit 1; results below target do not change the exit status.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <linux/magic.h>
#include <mntent.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/sysinfo.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <uv.h>

#include "base/clock.h"
#include "base/tern.h"
#include "base/tlog.h"
#include "os/file.h"
#include "store/batch.h"
#include "store/log.h"

#define MIB (1024u * 1024u)
#define CHUNK_BYTES MIB        /* pwrite/pread size of the ceilings and of read-back */
#define SYNC_WRITE_BYTES 4096u /* the fdatasync-rate ceiling's append size */
#define FULL_CAP_BYTES (1024ull * MIB)
#define QUICK_CAP_BYTES (128ull * MIB)
#define READ_TARGET 0.80
#define APPEND_TARGET 0.80
#define CLOCK_EVERY 16          /* appends between clock reads in the never rows */
#define WATCHDOG_EXTRA_MS 60000 /* an always row that outlives its deadline by this is hung */
#define MAX_ROWS 32
#define NO_TIME_LIMIT 1e9 /* seconds */

static const int record_sizes[] = {100, 1024};
static const int never_batches[] = {1, 100, 1000};
static const int always_batches[] = {1, 100};
static const int always_appenders[] = {1, 4, 16, 64};

struct options {
    const char *dir;  /* parent of the run directory; NULL: build/ or $TMPDIR */
    const char *json; /* write results here too */
    double seconds;   /* per row */
    bool quick;
};

struct machine {
    long nproc;
    char fs[32];
    char kernel[80];
    bool tmpfs;
};

/* A raw sequential write: bytes in 1 MiB pwrite()s, then one fdatasync. */
struct seq_write {
    uint64_t bytes;
    double t_write, t_sync; /* seconds */
};

struct ceilings {
    struct seq_write write;
    double write_mbps;      /* including the final fdatasync */
    double best_write_mbps; /* the best raw write of the run as large as the first */
    double syncs_per_s;     /* 4 KiB append + fdatasync */
    double read_mbps;       /* page-cache pread */
};

struct io_counts {
    uint64_t pwrites, pwrite_bytes, preads, syncs;
};

enum row_kind { ROW_NEVER, ROW_ALWAYS, ROW_READ };

struct row {
    char name[48];
    enum row_kind kind;
    int rec_bytes, batch_recs, appenders;
    double seconds, bytes, records, batches;
    double ceiling; /* MB/s, or batches/s for ROW_ALWAYS */
    double ratio;
    double target; /* 0: informational row */
    struct io_counts io;
    double t_append, t_sync; /* ROW_NEVER: the two phases of the row */
    struct seq_write raw;    /* ROW_NEVER: the paired raw write */
    double syncs_before;     /* ROW_ALWAYS: fdatasync rate measured just before the row */
    double syncs_after;      /* ... and just after it */
    bool bw_bound;           /* ROW_ALWAYS: the ceiling is write bandwidth, not fsyncs x N */
    double loop_cpu;         /* ROW_ALWAYS: CPU time of the loop thread / wall time */
    double passes;           /* ROW_READ: engine passes over the whole log */
    double slices;           /* ROW_READ: log_read calls in them */
    double same_file_mbps;   /* ROW_READ: raw pread of the log's own segment file */
};

/* A batch shape, encoded once and appended again and again. */
struct shape {
    int rec_bytes, recs;
    uint8_t *buf;
    size_t size;
};

struct bench {
    struct options opt;
    struct machine mach;
    struct ceilings ceil;
    char run_dir[PATH_MAX];
    uint64_t cap_bytes;
    uint8_t *chunk; /* CHUNK_BYTES, for the ceilings and for read-back */
    int ref_fd;     /* the raw-write ceiling's file, kept cached for the read rows */
    uint64_t ref_size;
    double load[2];      /* 1-minute load average at the start and at the end */
    uint64_t warm_bytes; /* warm_memory() totals */
    double warm_secs;
    struct row rows[MAX_ROWS];
    int nrows;
};

/* ---- failure and cleanup --------------------------------------------------------------- */

static char cleanup_dir[PATH_MAX]; /* removed on every exit path, signals included */

/*
 * Removes name (in the directory parent) and, for a directory, everything under it. Uses only
 * async-signal-safe calls (openat, getdents64, unlinkat), so the signal handler can use it too.
 * Returns 0 or -errno (a missing name is not an error).
 */
static int rm_at(int parent, const char *name, int depth)
{
    if (unlinkat(parent, name, 0) == 0 || errno == ENOENT)
        return 0;
    if (errno != EISDIR && errno != EPERM) /* Linux says EISDIR for a directory */
        return -errno;
    int fd = openat(parent, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    int rc = 0;
    char buf[4096] __attribute__((aligned(8)));
    ssize_t n = 0;
    while (rc == 0 && (n = getdents64(fd, buf, sizeof(buf))) > 0) {
        for (ssize_t off = 0; off < n && rc == 0;) {
            struct dirent64 *d = (struct dirent64 *)(buf + off);
            off += d->d_reclen;
            if (strcmp(d->d_name, ".") != 0 && strcmp(d->d_name, "..") != 0)
                rc = depth < 8 ? rm_at(fd, d->d_name, depth + 1) : -ELOOP;
        }
    }
    if (rc == 0 && n < 0)
        rc = -errno;
    close(fd);
    if (rc == 0 && unlinkat(parent, name, AT_REMOVEDIR) < 0)
        rc = -errno;
    return rc;
}

static int rm_tree(const char *path)
{
    return rm_at(AT_FDCWD, path, 0);
}

static _Noreturn void bail(void)
{
    if (cleanup_dir[0])
        rm_tree(cleanup_dir);
    exit(1);
}

/* Reports a failed call (negative errno or TERN_E*) and exits 1. */
static _Noreturn void die(int err, const char *what)
{
    fprintf(stderr, "bench_store: %s: %s\n", what, tern_strerror(err));
    bail();
}

static _Noreturn __attribute__((format(printf, 1, 2))) void fail(const char *fmt, ...)
{
    va_list ap;
    fputs("bench_store: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    bail();
}

/* SIGINT, SIGTERM, SIGHUP: remove the run directory, then die of the signal. */
static void on_signal(int sig)
{
    static const char msg[] = "bench_store: interrupted; removing the scratch directory\n";
    ssize_t ignored = write(STDERR_FILENO, msg, sizeof(msg) - 1);
    (void)ignored;
    if (cleanup_dir[0])
        rm_tree(cleanup_dir);
    signal(sig, SIG_DFL);
    raise(sig);
}

static void signals_install(void)
{
    static const int sigs[] = {SIGINT, SIGTERM, SIGHUP};
    struct sigaction sa = {.sa_handler = on_signal};
    sigemptyset(&sa.sa_mask);
    for (size_t i = 0; i < TERN_ARRAY_LEN(sigs); i++)
        if (sigaction(sigs[i], &sa, NULL) < 0)
            die(-errno, "sigaction");
}

static double secs_since(uint64_t t0)
{
    return (double)(clock_mono_ns() - t0) / 1e9;
}

static void progress(const char *what)
{
    if (isatty(STDERR_FILENO))
        fprintf(stderr, "  measuring %s ...\n", what);
}

/* ---- engine I/O counting: a pass-through file_ops table ------------------------------- */

static struct {
    atomic_uint_fast64_t pwrites, pwrite_bytes, preads, syncs;
} io_total;

static ssize_t count_pwrite(int fd, const void *buf, size_t n, off_t off)
{
    ssize_t w = file_posix_ops.pwrite(fd, buf, n, off);
    atomic_fetch_add_explicit(&io_total.pwrites, 1, memory_order_relaxed);
    if (w > 0)
        atomic_fetch_add_explicit(&io_total.pwrite_bytes, (uint64_t)w, memory_order_relaxed);
    return w;
}

static ssize_t count_pread(int fd, void *buf, size_t n, off_t off)
{
    atomic_fetch_add_explicit(&io_total.preads, 1, memory_order_relaxed);
    return file_posix_ops.pread(fd, buf, n, off);
}

static int count_fdatasync(int fd)
{
    atomic_fetch_add_explicit(&io_total.syncs, 1, memory_order_relaxed);
    return file_posix_ops.fdatasync(fd);
}

static struct file_ops counting_ops; /* file_posix_ops with the three above */

static void io_install(void)
{
    counting_ops = file_posix_ops;
    counting_ops.pwrite = count_pwrite;
    counting_ops.pread = count_pread;
    counting_ops.fdatasync = count_fdatasync;
    file_set_ops(&counting_ops);
}

static struct io_counts io_snap(void)
{
    struct io_counts c = {
        .pwrites = atomic_load_explicit(&io_total.pwrites, memory_order_relaxed),
        .pwrite_bytes = atomic_load_explicit(&io_total.pwrite_bytes, memory_order_relaxed),
        .preads = atomic_load_explicit(&io_total.preads, memory_order_relaxed),
        .syncs = atomic_load_explicit(&io_total.syncs, memory_order_relaxed),
    };
    return c;
}

static struct io_counts io_since(const struct io_counts *c0)
{
    struct io_counts c = io_snap();
    c.pwrites -= c0->pwrites;
    c.pwrite_bytes -= c0->pwrite_bytes;
    c.preads -= c0->preads;
    c.syncs -= c0->syncs;
    return c;
}

/* ---- raw file helpers for the ceilings --------------------------------------------------- */

static int pwrite_full(int fd, const void *buf, size_t n, off_t off)
{
    const uint8_t *p = buf;
    while (n > 0) {
        ssize_t w = pwrite(fd, p, n, off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0)
            return -errno;
        p += w;
        n -= (size_t)w;
        off += w;
    }
    return 0;
}

/* Reads exactly n bytes at off; -EIO when the file ends first. */
static int pread_full(int fd, void *buf, size_t n, off_t off)
{
    uint8_t *p = buf;
    while (n > 0) {
        ssize_t r = pread(fd, p, n, off);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return -errno;
        if (r == 0)
            return -EIO;
        p += r;
        n -= (size_t)r;
        off += r;
    }
    return 0;
}

static int open_new(const char *path)
{
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        die(-errno, path);
    return fd;
}

static void close_checked(int fd, const char *what)
{
    if (close(fd) < 0)
        die(-errno, what);
}

static void path_join(char *out, size_t cap, const char *dir, const char *name)
{
    int n = snprintf(out, cap, "%s/%s", dir, name);
    if (n < 0 || (size_t)n >= cap)
        die(-ENAMETOOLONG, dir);
}

/* ---- machine and filesystem ------------------------------------------------------------ */

/* The type of the mount holding path: the longest mount point that prefixes it. */
static void fs_type(const char *path, char *out, size_t cap)
{
    snprintf(out, cap, "unknown");
    FILE *f = setmntent("/proc/self/mounts", "r");
    if (!f)
        return;
    size_t best = 0;
    struct mntent *m;
    while ((m = getmntent(f)) != NULL) {
        size_t len = strlen(m->mnt_dir);
        bool root = strcmp(m->mnt_dir, "/") == 0;
        bool prefix =
            strncmp(path, m->mnt_dir, len) == 0 && (path[len] == '/' || path[len] == '\0' || root);
        if (prefix && len >= best) {
            best = len;
            snprintf(out, cap, "%s", m->mnt_type);
        }
    }
    endmntent(f);
}

static void machine_probe(struct bench *b)
{
    struct machine *m = &b->mach;
    m->nproc = sysconf(_SC_NPROCESSORS_ONLN);
    struct utsname u;
    snprintf(m->kernel, sizeof(m->kernel), "%s", uname(&u) == 0 ? u.release : "unknown");

    char real[PATH_MAX];
    if (!realpath(b->run_dir, real))
        die(-errno, b->run_dir);
    fs_type(real, m->fs, sizeof(m->fs));

    struct statfs sf;
    if (statfs(b->run_dir, &sf) < 0)
        die(-errno, b->run_dir);
    m->tmpfs = sf.f_type == TMPFS_MAGIC || sf.f_type == RAMFS_MAGIC;
    if (m->tmpfs)
        fprintf(stderr,
                "bench_store: warning: %s is on %s (memory, not disk): the write ceilings "
                "and fsync rows mean nothing; pass --dir on a real disk\n",
                b->run_dir, m->fs);
}

/*
 * Touches, then frees, as much memory as the next timed write will fill with page cache (at
 * most half of the free memory), in transparent huge pages. Why: a virtual machine may back
 * guest memory lazily and take freed memory back (virtio-balloon free page reporting hands
 * free 2 MiB blocks to the host about 2 s after they are freed), and the first touch of such
 * memory faults in the host. Writes in 1 MiB pwrite()s get large page-cache folios, which come
 * from exactly those blocks, so on such a VM they ran at ~400 MB/s while the engine's smaller
 * writes, reusing small hot pages, ran at GB/s. Called right before the clock starts, so the
 * write reuses the hot blocks just freed. Elsewhere it only costs time.
 */
static void warm_memory(struct bench *b, uint64_t bytes)
{
    struct sysinfo si;
    if (sysinfo(&si) < 0)
        die(-errno, "sysinfo");
    uint64_t half_free = (uint64_t)si.freeram * si.mem_unit / 2;
    if (bytes > half_free)
        bytes = half_free;

    uint64_t t0 = clock_mono_ns();
    uint8_t *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        die(-errno, "mmap (warming memory)");
    if (madvise(p, bytes, MADV_HUGEPAGE) < 0 && errno != EINVAL) /* EINVAL: no THP */
        die(-errno, "madvise (warming memory)");
    for (uint64_t off = 0; off < bytes; off += 4096)
        p[off] = 1;
    if (munmap(p, bytes) < 0)
        die(-errno, "munmap (warming memory)");
    b->warm_bytes += bytes;
    b->warm_secs += secs_since(t0);
}

/* Creates the run directory under --dir, ./build, or $TMPDIR (in that order). */
static void run_dir_create(struct bench *b)
{
    const char *parent = b->opt.dir;
    struct stat st;
    if (!parent)
        parent = stat("build", &st) == 0 && S_ISDIR(st.st_mode) ? "build" : getenv("TMPDIR");
    if (!parent || !*parent)
        parent = "/tmp";
    path_join(b->run_dir, sizeof(b->run_dir), parent, "bench_store.XXXXXX");
    if (!mkdtemp(b->run_dir))
        die(-errno, b->run_dir);
    snprintf(cleanup_dir, sizeof(cleanup_dir), "%s", b->run_dir);
}

/*
 * Called before every timed write: syncs the filesystem, so that what earlier steps left behind
 * (writeback, metadata and discards of files just deleted) is not charged to the measurement
 * and every write starts from the same state.
 */
static void settle(const struct bench *b)
{
    int fd = open(b->run_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        die(-errno, b->run_dir);
    if (syncfs(fd) < 0)
        die(-errno, "syncfs");
    close_checked(fd, b->run_dir);
}

/* ---- ceilings ---------------------------------------------------------------------------- */

static double seq_write_mbps(const struct seq_write *w)
{
    return (double)w->bytes / 1e6 / (w->t_write + w->t_sync);
}

/* 1 MiB pwrite()s to a new file until max_bytes or max_secs, then fdatasync. */
static struct seq_write raw_write(struct bench *b, const char *path, uint64_t max_bytes,
                                  double max_secs)
{
    struct seq_write w = {0};
    int fd = open_new(path);
    warm_memory(b, max_bytes < b->cap_bytes ? max_bytes : b->cap_bytes);
    settle(b);
    uint64_t t0 = clock_mono_ns();
    while (w.bytes < max_bytes && secs_since(t0) < max_secs) {
        int rc = pwrite_full(fd, b->chunk, CHUNK_BYTES, (off_t)w.bytes);
        if (rc < 0)
            die(rc, "pwrite (raw sequential write)");
        w.bytes += CHUNK_BYTES;
    }
    w.t_write = secs_since(t0);
    if (fdatasync(fd) < 0)
        die(-errno, "fdatasync (raw sequential write)");
    w.t_sync = secs_since(t0) - w.t_write;
    close_checked(fd, path);

    /* the best counts writes as large as the first: a smaller fsync costs relatively less */
    double mbps = seq_write_mbps(&w);
    bool full = b->ceil.write.bytes == 0 || w.bytes >= b->ceil.write.bytes;
    if (full && mbps > b->ceil.best_write_mbps)
        b->ceil.best_write_mbps = mbps;
    return w;
}

/* One pass of 1 MiB pread()s over the first size bytes of fd. */
static void raw_read_pass(struct bench *b, int fd, uint64_t size)
{
    for (uint64_t off = 0; off < size; off += CHUNK_BYTES) {
        size_t n = size - off < CHUNK_BYTES ? (size_t)(size - off) : CHUNK_BYTES;
        int rc = pread_full(fd, b->chunk, n, (off_t)off);
        if (rc < 0)
            die(rc, "pread (raw read)");
    }
}

/* Whole passes over the (cached) file for secs, after an untimed one. */
static double raw_read_mbps(struct bench *b, const char *path, uint64_t size, double secs)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        die(-errno, path);
    raw_read_pass(b, fd, size);
    double bytes = 0;
    uint64_t t0 = clock_mono_ns();
    do {
        raw_read_pass(b, fd, size);
        bytes += (double)size;
    } while (secs_since(t0) < secs);
    double mbps = bytes / 1e6 / secs_since(t0);
    close_checked(fd, path);
    return mbps;
}

/* 4 KiB appends to a new file, each followed by fdatasync, for secs. Returns syncs/s. */
static double raw_sync_rate(struct bench *b, const char *path, double secs)
{
    int fd = open_new(path);
    settle(b);
    uint64_t t0 = clock_mono_ns(), n = 0;
    do {
        int rc = pwrite_full(fd, b->chunk, SYNC_WRITE_BYTES, (off_t)(n * SYNC_WRITE_BYTES));
        if (rc < 0)
            die(rc, "pwrite (fdatasync rate)");
        if (fdatasync(fd) < 0)
            die(-errno, "fdatasync (fdatasync rate)");
        n++;
    } while (secs_since(t0) < secs);
    double rate = (double)n / secs_since(t0);
    close_checked(fd, path);
    if (unlink(path) < 0)
        die(-errno, path);
    return rate;
}

static void ceilings_measure(struct bench *b)
{
    char data[PATH_MAX], sync[PATH_MAX];
    path_join(data, sizeof(data), b->run_dir, "ceiling-write");
    path_join(sync, sizeof(sync), b->run_dir, "ceiling-sync");

    progress("ceiling: raw sequential write");
    b->ceil.write = raw_write(b, data, b->cap_bytes, b->opt.seconds);
    b->ceil.write_mbps = seq_write_mbps(&b->ceil.write);
    progress("ceiling: page-cache read");
    b->ceil.read_mbps = raw_read_mbps(b, data, b->ceil.write.bytes, b->opt.seconds / 3);
    b->ref_size = b->ceil.write.bytes;
    b->ref_fd = open(data, O_RDONLY | O_CLOEXEC);
    if (b->ref_fd < 0)
        die(-errno, data);
    progress("ceiling: fdatasync rate");
    b->ceil.syncs_per_s = raw_sync_rate(b, sync, b->opt.seconds / 3);
}

/* ---- batch shapes and rows --------------------------------------------------------------- */

static void shape_init(struct shape *sh, int rec_bytes, int recs)
{
    size_t cap = (size_t)recs * ((size_t)rec_bytes + 32) + BATCH_HEADER_SIZE;
    uint8_t *value = tern_xmalloc((unsigned long)rec_bytes);
    struct batch_rec_in *in = tern_xcalloc((unsigned long)recs, sizeof(*in));
    int64_t now = clock_wall_ms();

    for (int i = 0; i < rec_bytes; i++)
        value[i] = (uint8_t)('a' + i % 26);
    for (int i = 0; i < recs; i++)
        in[i] = (struct batch_rec_in){.value = value, .value_len = rec_bytes, .timestamp = now};
    sh->rec_bytes = rec_bytes;
    sh->recs = recs;
    sh->buf = tern_xmalloc(cap);
    int64_t size = batch_encode(sh->buf, cap, in, recs);
    if (size < 0)
        die((int)size, "batch_encode");
    sh->size = (size_t)size;
    free(in);
    free(value);
}

static void size_name(char *out, size_t cap, int bytes)
{
    if (bytes % 1024 == 0)
        snprintf(out, cap, "%dKiB", bytes / 1024);
    else
        snprintf(out, cap, "%dB", bytes);
}

static struct row *row_add(struct bench *b, enum row_kind kind, const struct shape *sh, int n)
{
    static const char *const kinds[] = {"append never", "append always", "read"};
    TERN_ASSERT(b->nrows < MAX_ROWS);
    struct row *r = &b->rows[b->nrows++];
    char sz[16];
    size_name(sz, sizeof(sz), sh->rec_bytes);
    memset(r, 0, sizeof(*r));
    r->kind = kind;
    r->rec_bytes = sh->rec_bytes;
    r->batch_recs = sh->recs;
    r->appenders = n;
    if (kind == ROW_ALWAYS)
        snprintf(r->name, sizeof(r->name), "%s %s x%d N=%d", kinds[kind], sz, sh->recs, n);
    else
        snprintf(r->name, sizeof(r->name), "%s %s x%d", kinds[kind], sz, sh->recs);
    return r;
}

static struct log *log_open_checked(uv_loop_t *loop, const char *dir, enum log_fsync_mode mode)
{
    struct log_config cfg;
    log_config_default(&cfg);
    cfg.fsync_mode = mode;
    struct log *log;
    char why[256] = "";
    int rc = log_open(loop, dir, &cfg, &log, why, sizeof(why));
    if (rc < 0)
        fail("log_open %s: %s%s%s", dir, tern_strerror(rc), why[0] ? ": " : "", why);
    return log;
}

static void log_check_end(struct log *log, double records, const char *row)
{
    int64_t have = log_end_offset(log) - log_start_offset(log);
    if ((double)have != records)
        fail("%s: log holds %lld offsets, %.0f records were appended", row, (long long)have,
             records);
}

/* ---- append, fsync never ------------------------------------------------------------------ */

/* Appends sh until the volume cap or the time limit, then log_sync; all timed. */
static void row_never(struct bench *b, struct log *log, const struct shape *sh, struct row *r)
{
    warm_memory(b, b->cap_bytes);
    settle(b);
    struct io_counts io0 = io_snap();
    uint64_t t0 = clock_mono_ns(), bytes = 0, n = 0;
    int64_t now_ms = clock_wall_ms();

    while (bytes + sh->size <= b->cap_bytes) {
        struct log_append_info info;
        int rc = log_append(log, sh->buf, sh->size, now_ms, &info);
        if (rc < 0)
            die(rc, "log_append");
        bytes += sh->size;
        if (++n % CLOCK_EVERY == 0) {
            if (secs_since(t0) >= b->opt.seconds)
                break;
            now_ms = clock_wall_ms();
        }
    }
    r->t_append = secs_since(t0);
    int rc = log_sync(log);
    if (rc < 0)
        die(rc, "log_sync");
    r->seconds = secs_since(t0);
    r->t_sync = r->seconds - r->t_append;
    r->io = io_since(&io0);
    r->bytes = (double)bytes;
    r->batches = (double)n;
    r->records = (double)n * sh->recs;
    r->target = sh->rec_bytes == 1024 && sh->recs > 1 ? APPEND_TARGET : 0;
    log_check_end(log, r->records, r->name);
}

/*
 * A raw write of the row's byte count, made right after it. Each one is also a sample of the
 * ceiling: the append-never rows are divided by the best raw write of the run (rows_finish()),
 * because single raw writes of the same file on the same disk varied by 4x.
 */
static void row_never_raw(struct bench *b, struct row *r)
{
    char path[PATH_MAX];
    path_join(path, sizeof(path), b->run_dir, "paired-write");
    r->raw = raw_write(b, path, (uint64_t)r->bytes, NO_TIME_LIMIT);
    if (unlink(path) < 0)
        die(-errno, path);
}

/* ---- read-back ---------------------------------------------------------------------------- */

/* The first batch of a slice must start at the offset asked for. */
static void slice_check(const struct log_slice *s, const uint8_t *buf, size_t n, int64_t off)
{
    struct batch_hdr h;
    int64_t rc = batch_parse(buf, n, SIZE_MAX, &h); /* our batches fit in one chunk */
    if (rc < 0)
        fail("log_read at offset %lld: no batch header at the slice: %s", (long long)off,
             tern_strerror((int)rc));
    if (h.base_offset != off || s->base_offset != off)
        fail("log_read at offset %lld: slice starts at %lld, its batch at %lld", (long long)off,
             (long long)s->base_offset, (long long)h.base_offset);
}

static void slice_pread(struct bench *b, const struct log_slice *s, bool check, int64_t off)
{
    for (size_t done = 0; done < s->len;) {
        size_t n = s->len - done < CHUNK_BYTES ? s->len - done : CHUNK_BYTES;
        int rc = pread_full(s->fd, b->chunk, n, (off_t)(s->pos + (int64_t)done));
        if (rc < 0)
            die(rc, "pread (log slice)");
        if (check && done == 0)
            slice_check(s, b->chunk, n, off);
        done += n;
    }
}

/* Reads the whole log once, slice by slice, into b->chunk. Returns bytes read. */
static uint64_t log_read_pass(struct bench *b, struct log *log, bool check, uint64_t *slices)
{
    int64_t off = log_start_offset(log), end = log_end_offset(log);
    uint64_t bytes = 0;
    while (off < end) {
        struct log_slice s;
        int rc = log_read(log, off, CHUNK_BYTES, end, &s);
        if (rc < 0)
            die(rc, "log_read");
        if (s.len == 0 || s.next_offset <= off)
            fail("log_read at offset %lld (end %lld) made no progress: len %zu, next %lld",
                 (long long)off, (long long)end, s.len, (long long)s.next_offset);
        slice_pread(b, &s, check, off);
        bytes += s.len;
        off = s.next_offset;
        log_slice_release(&s);
        (*slices)++;
    }
    return bytes;
}

/* The log's only segment: a slice of its first batch, which holds the fd, and the size. */
static uint64_t log_segment(struct log *log, struct log_slice *s)
{
    if (log_segment_count(log) != 1)
        fail("read: the log has %d segments; the raw read pairs with exactly one",
             log_segment_count(log));
    int rc = log_read(log, log_start_offset(log), 1, log_end_offset(log), s);
    if (rc < 0)
        die(rc, "log_read");
    int64_t size = file_size(s->fd);
    if (size < 0)
        die((int)size, "segment size");
    return (uint64_t)size;
}

/*
 * One untimed checking pass, then, for half the time limit, rounds of three passes: the engine
 * (log_read + pread), a raw pread of the log's own segment file, and a raw pread of the
 * reference file written in 1 MiB pwrite()s (the page-cache ceiling). Alternating, in a
 * rotating order, keeps all three under the same machine load. The raw read of the segment file
 * isolates the engine's read path; the reference file also shows what the log's small writes cost
 * the page cache.
 */
static void row_read(struct bench *b, struct log *log, const struct row *w, struct row *r)
{
    uint64_t slices = 0, passes = 0, bytes = 0, ns = 0, seg_ns = 0, ref_ns = 0;
    struct log_slice seg;
    uint64_t seg_size = log_segment(log, &seg);
    uint64_t ref_size = b->ref_size < seg_size ? b->ref_size : seg_size;
    log_read_pass(b, log, true, &slices);
    raw_read_pass(b, b->ref_fd, ref_size);
    slices = 0;

    struct io_counts io0 = io_snap();
    uint64_t t0 = clock_mono_ns();
    do {
        for (uint64_t k = 0; k < 3; k++) { /* the order rotates, so no pass always goes first */
            uint64_t t = clock_mono_ns();
            switch ((passes + k) % 3) {
            case 0:
                bytes += log_read_pass(b, log, false, &slices);
                ns += clock_mono_ns() - t;
                break;
            case 1:
                raw_read_pass(b, seg.fd, seg_size);
                seg_ns += clock_mono_ns() - t;
                break;
            default:
                raw_read_pass(b, b->ref_fd, ref_size);
                ref_ns += clock_mono_ns() - t;
                break;
            }
        }
        passes++;
    } while (secs_since(t0) < b->opt.seconds / 2);
    log_slice_release(&seg);

    r->seconds = (double)ns / 1e9;
    r->io = io_since(&io0); /* the raw passes do not go through file_ops */
    r->bytes = (double)bytes;
    r->passes = (double)passes;
    r->slices = (double)slices;
    r->records = w->records * (double)passes;
    r->batches = w->batches * (double)passes;
    r->same_file_mbps = (double)(seg_size * passes) / 1e6 / ((double)seg_ns / 1e9);
    r->ceiling = (double)(ref_size * passes) / 1e6 / ((double)ref_ns / 1e9);
    r->ratio = r->bytes / 1e6 / r->seconds / r->ceiling;
    r->target = r->rec_bytes == 1024 && r->batch_recs > 1 ? READ_TARGET : 0;
}

/* Per shape: the append row, its read-back, then the raw write of the same byte count. */
static void rows_never_and_read(struct bench *b)
{
    for (size_t i = 0; i < TERN_ARRAY_LEN(record_sizes); i++) {
        for (size_t j = 0; j < TERN_ARRAY_LEN(never_batches); j++) {
            struct shape sh;
            shape_init(&sh, record_sizes[i], never_batches[j]);
            char dir[PATH_MAX];
            path_join(dir, sizeof(dir), b->run_dir, "log-never");

            struct row *w = row_add(b, ROW_NEVER, &sh, 1);
            progress(w->name);
            struct log *log = log_open_checked(NULL, dir, LOG_FSYNC_NEVER);
            row_never(b, log, &sh, w);
            struct row *r = row_add(b, ROW_READ, &sh, 1);
            progress(r->name);
            row_read(b, log, w, r);
            log_close(log, NULL, NULL);
            int rc = rm_tree(dir);
            if (rc < 0)
                die(rc, dir);
            row_never_raw(b, w);
            free(sh.buf);
        }
    }
}

/* ---- append, fsync always, N appenders on a uv loop --------------------------------------- */

struct always_run;

struct appender {
    struct always_run *run;
    uint8_t *buf; /* a private copy of the shape: log_append patches it */
    size_t size;
};

struct always_run {
    uv_loop_t loop;
    uv_timer_t stopper;  /* closes the log from a clean stack once every appender is idle */
    uv_timer_t watchdog; /* fails the run if the engine stops answering */
    struct log *log;
    uint64_t t0, deadline_ns, t_end;
    struct io_counts io0, io;
    double cpu0, cpu_end; /* the loop thread's CPU seconds at the start and at t_end */
    int active;
    uint64_t acks;
    int recs; /* per batch */
    bool closed;
};

static void on_log_closed(void *arg)
{
    struct always_run *run = arg;
    run->closed = true;
}

static void on_stopper(uv_timer_t *t)
{
    struct always_run *run = t->data;
    uv_close((uv_handle_t *)&run->stopper, NULL);
    uv_close((uv_handle_t *)&run->watchdog, NULL);
    log_check_end(run->log, (double)run->acks * run->recs, "append always");
    log_close(run->log, on_log_closed, run);
}

static void on_watchdog(uv_timer_t *t)
{
    struct always_run *run = t->data;
    fail("append always: %d appenders still waiting for durability %d ms after the deadline",
         run->active, WATCHDOG_EXTRA_MS);
}

/* CPU seconds (user + system) used so far by the calling thread. */
static double thread_cpu_seconds(void)
{
    struct rusage ru;
    if (getrusage(RUSAGE_THREAD, &ru) < 0)
        die(-errno, "getrusage");
    return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
           ru.ru_stime.tv_usec / 1e6;
}

static void appender_stop(struct appender *a)
{
    struct always_run *run = a->run;
    if (--run->active > 0)
        return;
    run->t_end = clock_mono_ns();
    run->cpu_end = thread_cpu_seconds();
    run->io = io_since(&run->io0);
    int rc = uv_timer_start(&run->stopper, on_stopper, 0, 0);
    if (rc < 0)
        die(rc, "uv_timer_start");
}

static void on_durable(void *arg, int status);

/* Appends the next batch and waits for it to be durable, until the deadline. */
static void appender_next(struct appender *a)
{
    struct always_run *run = a->run;
    for (;;) {
        if (clock_mono_ns() >= run->deadline_ns) {
            appender_stop(a);
            return;
        }
        struct log_append_info info;
        int rc = log_append(run->log, a->buf, a->size, clock_wall_ms(), &info);
        if (rc < 0)
            die(rc, "log_append");
        rc = log_wait_durable(run->log, info.last_offset + 1, on_durable, a);
        if (rc < 0)
            die(rc, "log_wait_durable");
        if (rc == 0)
            return;
        run->acks++; /* already durable */
    }
}

static void on_durable(void *arg, int status)
{
    struct appender *a = arg;
    if (status < 0)
        die(status, "log_wait_durable callback");
    a->run->acks++;
    appender_next(a);
}

static void always_loop_init(struct always_run *run, const struct bench *b)
{
    int rc = uv_loop_init(&run->loop);
    if (rc < 0)
        die(rc, "uv_loop_init");
    if ((rc = uv_timer_init(&run->loop, &run->stopper)) < 0 ||
        (rc = uv_timer_init(&run->loop, &run->watchdog)) < 0)
        die(rc, "uv_timer_init");
    run->stopper.data = run;
    run->watchdog.data = run;
    uint64_t ms = (uint64_t)(b->opt.seconds * 1000) + WATCHDOG_EXTRA_MS;
    if ((rc = uv_timer_start(&run->watchdog, on_watchdog, ms, 0)) < 0)
        die(rc, "uv_timer_start");
}

/*
 * The best batch-ack rate: every fdatasync acknowledges one batch from each of the N appenders
 * (fdatasync rate x N, the rate being the better of one measured just before and one just
 * after the row), unless that needs more than the best raw write bandwidth of the run, which
 * then bounds it.
 */
static void always_ceiling(const struct bench *b, struct row *r)
{
    double rate = r->syncs_before > r->syncs_after ? r->syncs_before : r->syncs_after;
    double by_sync = rate * r->appenders;
    double by_bw = b->ceil.best_write_mbps * 1e6 / (r->bytes / r->batches);
    r->bw_bound = by_bw < by_sync;
    r->ceiling = r->bw_bound ? by_bw : by_sync;
    r->ratio = r->batches / r->seconds / r->ceiling;
}

static void always_run(struct bench *b, const char *dir, const struct shape *sh, int n,
                       struct row *r)
{
    struct always_run run = {0};
    struct appender *apps = tern_xcalloc((unsigned long)n, sizeof(*apps));
    always_loop_init(&run, b);
    run.log = log_open_checked(&run.loop, dir, LOG_FSYNC_ALWAYS);
    for (int i = 0; i < n; i++) {
        apps[i] = (struct appender){.run = &run, .buf = tern_xmalloc(sh->size), .size = sh->size};
        memcpy(apps[i].buf, sh->buf, sh->size);
    }

    warm_memory(b, b->cap_bytes / 4);
    settle(b);
    run.active = n;
    run.recs = sh->recs;
    run.io0 = io_snap();
    run.cpu0 = thread_cpu_seconds();
    run.t0 = clock_mono_ns();
    run.deadline_ns = run.t0 + (uint64_t)(b->opt.seconds * 1e9);
    for (int i = 0; i < n; i++)
        appender_next(&apps[i]);
    int rc = uv_run(&run.loop, UV_RUN_DEFAULT);
    if (rc < 0)
        die(rc, "uv_run");
    if (!run.closed)
        fail("append always: the loop ended before log_close finished");
    if ((rc = uv_loop_close(&run.loop)) < 0)
        die(rc, "uv_loop_close");

    r->seconds = (double)(run.t_end - run.t0) / 1e9;
    r->loop_cpu = (run.cpu_end - run.cpu0) / r->seconds;
    r->io = run.io;
    r->batches = (double)run.acks;
    r->records = r->batches * sh->recs;
    r->bytes = r->batches * (double)sh->size;
    for (int i = 0; i < n; i++)
        free(apps[i].buf);
    free(apps);
}

static void rows_always(struct bench *b)
{
    for (size_t i = 0; i < TERN_ARRAY_LEN(always_batches); i++) {
        struct shape sh;
        shape_init(&sh, 1024, always_batches[i]);
        for (size_t j = 0; j < TERN_ARRAY_LEN(always_appenders); j++) {
            char dir[PATH_MAX], sync[PATH_MAX];
            path_join(dir, sizeof(dir), b->run_dir, "log-always");
            path_join(sync, sizeof(sync), b->run_dir, "paired-sync");
            struct row *r = row_add(b, ROW_ALWAYS, &sh, always_appenders[j]);
            progress(r->name);
            r->syncs_before = raw_sync_rate(b, sync, b->opt.seconds / 4);
            always_run(b, dir, &sh, always_appenders[j], r);
            int rc = rm_tree(dir);
            if (rc < 0)
                die(rc, dir);
            r->syncs_after = raw_sync_rate(b, sync, b->opt.seconds / 4);
        }
        free(sh.buf);
    }
}

/* Divides the rows whose ceiling is only known at the end (the best raw write of the run). */
static void rows_finish(struct bench *b)
{
    for (int i = 0; i < b->nrows; i++) {
        struct row *r = &b->rows[i];
        if (r->kind == ROW_NEVER) {
            r->ceiling = b->ceil.best_write_mbps;
            r->ratio = r->bytes / 1e6 / r->seconds / r->ceiling;
        } else if (r->kind == ROW_ALWAYS) {
            always_ceiling(b, r);
        }
    }
}

/* ---- report ------------------------------------------------------------------------------- */

static double row_mbps(const struct row *r)
{
    return r->bytes / 1e6 / r->seconds;
}

static double row_recps(const struct row *r)
{
    return r->records / r->seconds;
}

static const char *row_result(const struct row *r)
{
    if (r->target == 0)
        return "-";
    return r->ratio >= r->target ? "PASS" : "BELOW";
}

static void row_ceiling_text(const struct row *r, char *out, size_t cap)
{
    if (r->kind == ROW_ALWAYS)
        snprintf(out, cap, "%.0f b/s %s", r->ceiling, r->bw_bound ? "bw" : "fsync");
    else
        snprintf(out, cap, "%.1f MB/s", r->ceiling);
}

static void row_notes(const struct row *r, char *out, size_t cap)
{
    const struct io_counts *c = &r->io;
    switch (r->kind) {
    case ROW_NEVER:
        snprintf(out, cap,
                 "%.0f MB: append %.2fs + sync %.2fs, raw after %.2fs + %.2fs; %.2f pwrite/batch",
                 r->bytes / 1e6, r->t_append, r->t_sync, r->raw.t_write, r->raw.t_sync,
                 (double)c->pwrites / r->batches);
        break;
    case ROW_ALWAYS:
        snprintf(out, cap,
                 "%.0f fdatasync/s (raw %.0f/%.0f), %.2f batch/fdatasync, %.2f pwrite/batch, "
                 "loop cpu %.0f%%",
                 (double)c->syncs / r->seconds, r->syncs_before, r->syncs_after,
                 c->syncs ? r->batches / (double)c->syncs : 0.0, (double)c->pwrites / r->batches,
                 r->loop_cpu * 100);
        break;
    case ROW_READ:
        snprintf(out, cap, "same file raw %.0f MB/s (%.0f%%); %.0f batch/slice, %.2f pread/slice",
                 r->same_file_mbps, row_mbps(r) / r->same_file_mbps * 100, r->batches / r->slices,
                 (double)c->preads / r->slices);
        break;
    }
}

static void print_header(const struct bench *b)
{
    const struct machine *m = &b->mach;
    const struct ceilings *c = &b->ceil;
    printf("tern bench_store: dir=%s fs=%s%s nproc=%ld kernel=%s seconds=%g cap=%llu MiB%s\n",
           b->run_dir, m->fs, m->tmpfs ? " (WARNING: memory, not disk)" : "", m->nproc, m->kernel,
           b->opt.seconds, (unsigned long long)(b->cap_bytes / MIB), b->opt.quick ? " quick" : "");
    printf("load average %.2f at start, %.2f at end%s\n", b->load[0], b->load[1],
           b->load[0] > 0.5 || b->load[1] > 1.5 ? " (other work was running: expect noise)" : "");
    printf("warmed %.1f GiB of memory before the timed writes, in %.1fs (untimed)\n\n",
           (double)b->warm_bytes / (1024.0 * MIB), b->warm_secs);
    printf("ceilings (measured first; the rows' own ceilings are measured beside them)\n");
    printf("  %-22s %9.1f MB/s  %llu MiB in 1 MiB pwrite()s: %.2fs + fdatasync %.2fs\n",
           "raw sequential write", c->write_mbps, (unsigned long long)(c->write.bytes / MIB),
           c->write.t_write, c->write.t_sync);
    printf("  %-22s %9.1f MB/s  best of it and the as large raw writes made after the\n"
           "  %-22s                 append-never rows: the ceiling of those rows\n",
           "best raw write", c->best_write_mbps, "");
    printf("  %-22s %9.0f /s    4 KiB append + fdatasync\n", "fdatasync rate", c->syncs_per_s);
    printf("  %-22s %9.1f MB/s  1 MiB pread()s of a cached file\n\n", "page-cache read",
           c->read_mbps);
}

static void print_table(const struct bench *b)
{
    static const enum row_kind order[] = {ROW_NEVER, ROW_ALWAYS, ROW_READ};
    print_header(b);
    printf("%-32s %9s %11s %16s %7s %6s %6s  %s\n", "row", "MB/s", "rec/s", "ceiling", "ratio",
           "target", "result", "notes");
    for (size_t k = 0; k < TERN_ARRAY_LEN(order); k++) {
        for (int i = 0; i < b->nrows; i++) {
            const struct row *r = &b->rows[i];
            if (r->kind != order[k])
                continue;
            char ceil[32], target[16], notes[160];
            row_ceiling_text(r, ceil, sizeof(ceil));
            row_notes(r, notes, sizeof(notes));
            snprintf(target, sizeof(target), r->target ? "%.0f%%" : "-", r->target * 100);
            printf("%-32s %9.1f %11.0f %16s %6.1f%% %6s %6s  %s\n", r->name, row_mbps(r),
                   row_recps(r), ceil, r->ratio * 100, target, row_result(r), notes);
        }
        if (k + 1 < TERN_ARRAY_LEN(order))
            printf("\n");
    }
}

static const char *const kind_json[] = {"append_never", "append_always", "read"};

static void json_row(FILE *f, const struct row *r, bool last)
{
    const struct io_counts *c = &r->io;
    fprintf(f,
            "    {\"name\": \"%s\", \"kind\": \"%s\", \"record_bytes\": %d, "
            "\"batch_records\": %d, \"appenders\": %d,\n"
            "     \"seconds\": %.6f, \"bytes\": %.0f, \"records\": %.0f, \"batches\": %.0f, "
            "\"mb_per_s\": %.3f, \"records_per_s\": %.1f,\n"
            "     \"ceiling\": %.3f, \"ceiling_unit\": \"%s\", \"ratio\": %.4f, ",
            r->name, kind_json[r->kind], r->rec_bytes, r->batch_recs, r->appenders, r->seconds,
            r->bytes, r->records, r->batches, row_mbps(r), row_recps(r), r->ceiling,
            r->kind == ROW_ALWAYS ? (r->bw_bound ? "batches/s (write bandwidth)"
                                                 : "batches/s (fdatasync rate x appenders)")
                                  : "MB/s",
            r->ratio);
    if (r->target)
        fprintf(f, "\"target\": %.2f, \"pass\": %s,\n", r->target,
                r->ratio >= r->target ? "true" : "false");
    else
        fprintf(f, "\"target\": null, \"pass\": null,\n");
    fprintf(f,
            "     \"engine_io\": {\"pwrites\": %llu, \"pwrite_bytes\": %llu, \"preads\": %llu, "
            "\"fdatasyncs\": %llu},\n",
            (unsigned long long)c->pwrites, (unsigned long long)c->pwrite_bytes,
            (unsigned long long)c->preads, (unsigned long long)c->syncs);
    fprintf(f,
            "     \"append_seconds\": %.6f, \"sync_seconds\": %.6f, \"raw_write_bytes\": %llu, "
            "\"raw_write_seconds\": %.6f, \"raw_sync_seconds\": %.6f,\n"
            "     \"fdatasync_per_s_before\": %.1f, \"fdatasync_per_s_after\": %.1f, "
            "\"loop_cpu\": %.4f, "
            "\"read_passes\": %.0f, \"read_slices\": %.0f, \"read_same_file_mb_per_s\": %.3f}%s\n",
            r->t_append, r->t_sync, (unsigned long long)r->raw.bytes, r->raw.t_write, r->raw.t_sync,
            r->syncs_before, r->syncs_after, r->loop_cpu, r->passes, r->slices, r->same_file_mbps,
            last ? "" : ",");
}

/* The run directory is not in the JSON: it no longer exists when the file is read. */
static int json_write(const struct bench *b, const char *path)
{
    FILE *f = fopen(path, "w");
    if (!f)
        return -errno;
    const struct machine *m = &b->mach;
    const struct ceilings *c = &b->ceil;
    fprintf(f,
            "{\n  \"machine\": {\"nproc\": %ld, \"fs\": \"%s\", \"tmpfs\": %s, "
            "\"kernel\": \"%s\", \"load_start\": %.2f, \"load_end\": %.2f},\n",
            m->nproc, m->fs, m->tmpfs ? "true" : "false", m->kernel, b->load[0], b->load[1]);
    fprintf(f, "  \"config\": {\"seconds\": %g, \"quick\": %s, \"cap_bytes\": %llu},\n",
            b->opt.seconds, b->opt.quick ? "true" : "false", (unsigned long long)b->cap_bytes);
    fprintf(f,
            "  \"ceilings\": {\"seq_write_mb_per_s\": %.3f, \"seq_write_bytes\": %llu, "
            "\"best_seq_write_mb_per_s\": %.3f, \"fdatasync_per_s\": %.1f, "
            "\"page_cache_read_mb_per_s\": %.3f},\n",
            c->write_mbps, (unsigned long long)c->write.bytes, c->best_write_mbps, c->syncs_per_s,
            c->read_mbps);
    fprintf(f, "  \"rows\": [\n");
    for (int i = 0; i < b->nrows; i++)
        json_row(f, &b->rows[i], i + 1 == b->nrows);
    fprintf(f, "  ]\n}\n");
    int rc = ferror(f) ? -EIO : 0;
    if (fclose(f) != 0 && rc == 0)
        rc = -errno;
    return rc;
}

/* ---- main --------------------------------------------------------------------------------- */

static void usage(FILE *f)
{
    fprintf(f, "usage: bench_store [--dir DIR] [--seconds S] [--quick] [--json FILE]\n"
               "  --dir DIR      make the scratch directory inside DIR (default: ./build, else\n"
               "                 $TMPDIR, else /tmp); it must be on the disk you mean to measure\n"
               "  --seconds S    time per append row (default 3; 0.5 with --quick); read rows\n"
               "                 take S/2, the fdatasync rate beside each always row 2 x S/4\n"
               "  --quick        short smoke run: 0.5 s rows, 128 MiB volume cap\n"
               "  --json FILE    also write the results as JSON to FILE\n");
}

static void options_parse(int argc, char **argv, struct options *o)
{
    static const struct option longs[] = {
        {"dir", required_argument, NULL, 'd'}, {"seconds", required_argument, NULL, 's'},
        {"quick", no_argument, NULL, 'q'},     {"json", required_argument, NULL, 'j'},
        {"help", no_argument, NULL, 'h'},      {NULL, 0, NULL, 0},
    };
    double seconds = 0;
    int c;
    while ((c = getopt_long(argc, argv, "d:s:qj:h", longs, NULL)) != -1) {
        char *end;
        switch (c) {
        case 'd':
            o->dir = optarg;
            break;
        case 'j':
            o->json = optarg;
            break;
        case 'q':
            o->quick = true;
            break;
        case 's':
            seconds = strtod(optarg, &end);
            if (end == optarg || *end || !(seconds > 0 && seconds <= 3600))
                fail("--seconds wants a number of seconds in (0, 3600], not '%s'", optarg);
            break;
        case 'h':
            usage(stdout);
            exit(0);
        default:
            usage(stderr);
            exit(2);
        }
    }
    if (optind < argc) {
        usage(stderr);
        exit(2);
    }
    o->seconds = seconds > 0 ? seconds : o->quick ? 0.5 : 3.0;
}

int main(int argc, char **argv)
{
    static struct bench b;
    options_parse(argc, argv, &b.opt);
    tlog_set_level(TLOG_LEVEL_WARN); /* not a line per log opened */
    io_install();                    /* before the engine opens any file */
    signals_install();
    b.cap_bytes = b.opt.quick ? QUICK_CAP_BYTES : FULL_CAP_BYTES;
    b.chunk = tern_xmalloc(CHUNK_BYTES);
    for (size_t i = 0; i < CHUNK_BYTES; i++)
        b.chunk[i] = (uint8_t)(i * 131 + 7);

    if (getloadavg(&b.load[0], 1) != 1)
        b.load[0] = -1;
    run_dir_create(&b);
    machine_probe(&b);
    ceilings_measure(&b);
    rows_never_and_read(&b);
    rows_always(&b);
    rows_finish(&b);
    close_checked(b.ref_fd, "reference file");
    if (getloadavg(&b.load[1], 1) != 1)
        b.load[1] = -1;

    print_table(&b);
    if (fflush(stdout) != 0)
        die(-errno, "stdout");
    if (b.opt.json) {
        int rc = json_write(&b, b.opt.json);
        if (rc < 0)
            die(rc, b.opt.json);
    }
    int rc = rm_tree(b.run_dir);
    cleanup_dir[0] = '\0';
    if (rc < 0)
        die(rc, b.run_dir);
    free(b.chunk);
    return 0;
}
