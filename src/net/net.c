/*
 * net.c - TCP listeners and connections on libuv (see net.h).
 *
 * A connection owns three handles: the socket, an idle handle and a timer. They are closed
 * together and the conn is freed when the last close callback runs, after on_close.
 *
 * Output is a queue of nodes: memory buffers and file ranges. Nodes from the head are either
 * "in flight" (memory handed to one uv_write, at most one at a time) or "unsent" (a suffix
 * starting at first_unsent). Small writes are copied into an unsent tail node, so a session's
 * many small frames become one buffer. The idle handle flushes what was queued during a loop
 * iteration: an active idle handle runs before the loop polls and keeps that poll from
 * blocking, so a write made from any callback (even another conn's idle callback) goes out
 * before the loop sleeps. A flush tries uv_try_write first and hands the rest to uv_write;
 * 64 KiB of unsent bytes flush at once.
 *
 * File ranges go out once everything before them is written, without being held in memory:
 * read in chunks of NET_FILE_CHUNK into one scratch buffer per thread and written at once, or
 * with sendfile(2) when net_set_sendfile(true) asked for it. What the socket does not take is
 * read again from the file later. A uv_write never holds a file range: when the socket takes no
 * more, the next NET_NUDGE bytes of the range are read into a memory node put before it and
 * handed to uv_write; libuv waits for the socket to become writable, and its write callback
 * resumes the range. So nothing but the socket watcher libuv already has is polled, at the cost
 * of holding one small piece per stalled connection.
 *
 * Why copying is the default: on loopback with the file in the page cache (the common case
 * for a consumer keeping up), pread + write moved 3.4-3.9 GB/s and sendfile 1.4-1.5 GB/s on
 * the development VM (Linux 6.18): the receiver copies either way, and splicing page by page
 * costs more than one copy. sendfile can win where the peer is a real NIC.
 *
 * Close: OPEN -> FLUSHING (write what is queued) -> SHUTDOWN (uv_shutdown sends FIN) ->
 * LINGER (read and discard until the peer's FIN, so unread input cannot turn our close into
 * a reset that destroys the last bytes we sent) -> CLOSED. A 1 s timer started by
 * net_conn_close cuts this short with a reset. Errors and net_conn_abort go straight to
 * CLOSED. User callbacks run only from libuv callbacks, never from inside a net_* call.
 */
#include "net/net.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sendfile.h>
#include <unistd.h>

#include "base/tern.h"
#include "os/file.h"

#define NET_BACKLOG 511
#define NET_FLUSH_NOW (64u * 1024)    /* unsent bytes that are flushed without waiting */
#define NET_COALESCE_MAX (16u * 1024) /* writes up to this size are copied into the tail */
#define NET_READ_CHUNK (64u * 1024)
#define NET_IN_KEEP (16u * 1024) /* an empty input buffer with more capacity is released */
#define NET_IOV_MAX 64
#define NET_CLOSE_MS 1000
#define NET_NUDGE (16u * 1024) /* bytes of a stalled file range copied to wait for the socket */
#define NET_FILE_CHUNK (1024u * 1024) /* file bytes read per write when copying */

enum net_state {
    NET_OPEN,     /* reading (unless paused or not started) and writing */
    NET_FLUSHING, /* net_conn_close: writing what is queued */
    NET_SHUTDOWN, /* uv_shutdown in flight */
    NET_LINGER,   /* FIN sent: discarding input until the peer's FIN */
    NET_CLOSED,   /* handles closing */
};

struct net_out {
    struct net_out *next;
    struct buf b;
    size_t off; /* bytes of b already accepted by the kernel */
    /* a file range instead of memory (release set): bytes [pos, pos + flen) of fd */
    void (*release)(void *arg);
    void *arg;
    int fd;
    int64_t pos;
    size_t flen;
};

struct net_listener {
    uv_tcp_t tcp;
    net_accept_cb cb;
    void *arg;
    uint16_t port;
    void (*close_cb)(void *arg);
    void *close_arg;
};

struct net_conn {
    uv_tcp_t tcp;
    uv_idle_t idle;   /* flush output, redeliver input after resume */
    uv_timer_t timer; /* bounds net_conn_close */
    uv_write_t wreq;
    uv_shutdown_t sreq;
    const struct net_conn_ops *ops; /* NULL until net_conn_start */
    void *ctx;
    enum net_state state;
    int status;       /* for on_close */
    int open_handles; /* freed when it reaches 0 */
    bool paused, reading, eof, redeliver, drain_owed, writing;
    struct buf in;
    size_t in_counted; /* in.len as counted in net_bytes */
    struct net_out *head, *tail, *first_unsent;
    size_t nflight;      /* nodes in the uv_write in flight */
    size_t out_bytes;    /* bytes in the queue not yet accepted by the kernel or libuv */
    size_t unsent_bytes; /* of which not handed to libuv */
    uint64_t id;
    struct sockaddr_storage addr;
    char peer[64];
};

static atomic_size_t net_bytes;
static atomic_uint_fast64_t net_next_id = 1;
static atomic_uint_fast64_t net_file_sent;
static atomic_bool net_sendfile_on;

static void net_count(size_t add, size_t sub)
{
    if (add)
        atomic_fetch_add_explicit(&net_bytes, add, memory_order_relaxed);
    if (sub)
        atomic_fetch_sub_explicit(&net_bytes, sub, memory_order_relaxed);
}

size_t net_buffered_bytes(void)
{
    return atomic_load_explicit(&net_bytes, memory_order_relaxed);
}

uint64_t net_file_bytes(void)
{
    return atomic_load_explicit(&net_file_sent, memory_order_relaxed);
}

void net_set_sendfile(bool on)
{
    atomic_store_explicit(&net_sendfile_on, on, memory_order_relaxed);
}

/* Frees a node that left the queue: memory, or a file range handed back to its owner. */
static void out_free(struct net_out *o)
{
    if (o->release)
        o->release(o->arg);
    buf_fini(&o->b);
    free(o);
}

/* ---- closing ------------------------------------------------------------------------------ */

static void free_queue(struct net_conn *c)
{
    size_t held = 0;
    while (c->head) {
        struct net_out *o = c->head;
        c->head = o->next;
        held += o->b.len - o->off;
        out_free(o);
    }
    c->tail = c->first_unsent = NULL;
    net_count(0, held);
}

static void conn_closed_cb(uv_handle_t *h)
{
    struct net_conn *c = h->data;
    if (--c->open_handles > 0)
        return;
    if (c->ops)
        c->ops->on_close(c->ctx, c, c->status);
    free_queue(c);
    net_count(0, c->in_counted);
    buf_fini(&c->in);
    free(c);
}

/* Closes the three handles now; with reset, the peer gets RST instead of FIN. */
static void close_now(struct net_conn *c, bool reset)
{
    if (c->state == NET_CLOSED)
        return;
    c->state = NET_CLOSED;
    uv_idle_stop(&c->idle);
    uv_timer_stop(&c->timer);
    if (!reset || uv_tcp_close_reset(&c->tcp, conn_closed_cb) != 0)
        uv_close((uv_handle_t *)&c->tcp, conn_closed_cb);
    uv_close((uv_handle_t *)&c->idle, conn_closed_cb);
    uv_close((uv_handle_t *)&c->timer, conn_closed_cb);
}

static void fail(struct net_conn *c, int err)
{
    if (c->state == NET_CLOSED)
        return;
    if (c->status == 0)
        c->status = err;
    close_now(c, true);
}

/* ---- reading ------------------------------------------------------------------------------ */

static void alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *b)
{
    /* libuv reads into this and calls read_cb before the next alloc: one per thread is enough */
    static _Thread_local char scratch[NET_READ_CHUNK];
    (void)h;
    (void)suggested;
    *b = uv_buf_init(scratch, sizeof(scratch));
}

static void count_in(struct net_conn *c)
{
    if (c->in.len >= c->in_counted)
        net_count(c->in.len - c->in_counted, 0);
    else
        net_count(0, c->in_counted - c->in.len);
    c->in_counted = c->in.len;
}

static void deliver(struct net_conn *c)
{
    count_in(c);
    c->ops->on_read(c->ctx, c, &c->in);
    if (c->in.len == 0 && c->in.cap > NET_IN_KEEP)
        buf_fini(&c->in);
    count_in(c);
}

/* Acknowledges what was read now when nothing is going back to carry the ACK. A peer with
 * Nagle's algorithm on (librdkafka's default) holds its next small request until the previous
 * one is acknowledged; left to delayed ACK, that request waits for our answer to the previous
 * one (an fsync, a long poll). Linux clears TCP_QUICKACK by itself, so it is set per read. */
static void ack_if_silent(struct net_conn *c)
{
    uv_os_fd_t fd;
    int one = 1;
    if (c->state != NET_OPEN || c->unsent_bytes > 0 || uv_fileno((uv_handle_t *)&c->tcp, &fd) < 0)
        return;
    (void)setsockopt(fd, IPPROTO_TCP, TCP_QUICKACK, &one, sizeof(one));
}

static void read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *b)
{
    struct net_conn *c = s->data;
    if (nread == 0)
        return;
    if (c->state == NET_LINGER) {
        if (nread < 0)
            close_now(c, false);
        return;
    }
    if (c->state != NET_OPEN)
        return;
    if (nread == UV_EOF) {
        c->eof = true;
        net_conn_close(c);
        return;
    }
    if (nread < 0) {
        fail(c, (int)nread);
        return;
    }
    buf_put(&c->in, b->base, (size_t)nread);
    deliver(c);
    ack_if_silent(c);
}

/* Starts or stops reading to match the state. */
static void update_reading(struct net_conn *c)
{
    bool want = (c->state == NET_OPEN && c->ops && !c->paused) || c->state == NET_LINGER;
    if (want == c->reading)
        return;
    int r = want ? uv_read_start((uv_stream_t *)&c->tcp, alloc_cb, read_cb)
                 : uv_read_stop((uv_stream_t *)&c->tcp);
    if (r < 0) {
        fail(c, r);
        return;
    }
    c->reading = want;
}

/* ---- writing ------------------------------------------------------------------------------ */

/* Fills bufs from the first unsent node up to a file range; returns the count, the bytes in
 * *bytes and the file range that stopped it (or NULL) in *file. */
static unsigned gather(struct net_conn *c, uv_buf_t *bufs, size_t *bytes, struct net_out **file)
{
    unsigned n = 0;
    struct net_out *o = c->first_unsent;
    *bytes = 0;
    for (; o && !o->release && n < NET_IOV_MAX; o = o->next) {
        size_t len = o->b.len - o->off;
        TERN_ASSERT(len <= UINT32_MAX);
        bufs[n++] = uv_buf_init((char *)o->b.p + o->off, (unsigned)len);
        *bytes += len;
    }
    *file = o && o->release ? o : NULL;
    return n;
}

/* Drops n bytes accepted by uv_try_write from the head (nothing is in flight). */
static void sent_now(struct net_conn *c, size_t n)
{
    c->out_bytes -= n;
    c->unsent_bytes -= n;
    net_count(0, n);
    while (n) {
        struct net_out *o = c->head;
        size_t left = o->b.len - o->off;
        if (n < left) {
            o->off += n;
            break;
        }
        n -= left;
        c->head = o->next;
        out_free(o);
    }
    if (!c->head)
        c->tail = NULL;
    c->first_unsent = c->head;
}

/* n bytes of the file range at the head went to the socket; a finished range leaves the
 * queue. */
static void file_sent(struct net_conn *c, size_t n)
{
    struct net_out *f = c->head;
    f->pos += (int64_t)n;
    f->flen -= n;
    c->out_bytes -= n;
    c->unsent_bytes -= n;
    atomic_fetch_add_explicit(&net_file_sent, n, memory_order_relaxed);
    if (f->flen)
        return;
    c->head = c->first_unsent = f->next;
    if (!c->head)
        c->tail = NULL;
    out_free(f);
}

/* Reads the next n bytes of file range f at its position into dst. Returns 0 or a libuv error
 * (UV_EIO when the file is shorter than the range). */
static int file_read(const struct net_out *f, uint8_t *dst, size_t n)
{
    ssize_t got = file_pread_all(f->fd, dst, n, (off_t)f->pos);
    if (got == (ssize_t)n)
        return 0;
    return got < 0 ? (int)got : UV_EIO; /* -errno is libuv's error code on Unix */
}

/* The socket takes no more of the file range at the head: copies its next NET_NUDGE bytes into
 * a memory node before it, for uv_write to send once the socket is writable (the range resumes
 * from write_cb). The bytes come from have (avail of them, already read) or from the file.
 * Returns 0 or a libuv error. */
static int file_nudge(struct net_conn *c, const uint8_t *have, size_t avail)
{
    struct net_out *f = c->head;
    size_t n = f->flen < NET_NUDGE ? f->flen : NET_NUDGE;
    if (have && avail < n)
        n = avail;
    struct net_out *o = tern_xcalloc(1, sizeof(*o));
    uint8_t *dst = buf_reserve(&o->b, n);
    int err = have ? (memcpy(dst, have, n), 0) : file_read(f, dst, n);
    if (err) {
        buf_fini(&o->b);
        free(o);
        return err;
    }
    o->b.len = n;
    net_count(n, 0);
    f->pos += (int64_t)n; /* still counted unsent, now as memory */
    f->flen -= n;
    o->next = f;
    c->head = c->first_unsent = o;
    if (f->flen == 0) { /* all of it copied: the range is done */
        o->next = f->next;
        if (c->tail == f)
            c->tail = o;
        out_free(f);
    }
    return 0;
}

/* Sends the file range at the head with sendfile until it is done or the socket takes no more
 * (then a nudge heads the queue). Returns false when the conn failed. */
static bool send_file(struct net_conn *c, int sock)
{
    struct net_out *f = c->head;
    int err = 0;
    while (err == 0 && c->head == f) {
        off_t pos = (off_t)f->pos;
        ssize_t n = sendfile(sock, f->fd, &pos, f->flen);
        if (n > 0) {
            file_sent(c, (size_t)n);
        } else if (n == 0) {
            err = UV_EIO; /* the file is shorter than the range */
        } else if (errno == EAGAIN) {
            err = file_nudge(c, NULL, 0);
            break;
        } else if (errno != EINTR) {
            err = uv_translate_sys_error(errno);
        }
    }
    if (err)
        fail(c, err);
    return err == 0;
}

/* The copy buffer for file ranges: one per thread, allocated on first use. */
static uint8_t *file_scratch(void)
{
    static _Thread_local uint8_t *scratch;
    if (!scratch)
        scratch = tern_xmalloc(NET_FILE_CHUNK);
    return scratch;
}

static void write_cb(uv_write_t *req, int status);

/* Hands unsent output to the kernel. Memory goes with uv_try_write; a file range that follows
 * it is read into the scratch buffer and goes in the same writev (one frame, one write), or
 * with sendfile once it heads the queue. What the socket does not take goes to uv_write
 * (memory) or waits behind a nudge (a file range). */
static void flush(struct net_conn *c)
{
    bool use_sendfile = atomic_load_explicit(&net_sendfile_on, memory_order_relaxed);
    uv_os_fd_t sock;
    if (uv_fileno((uv_handle_t *)&c->tcp, &sock) < 0)
        return;
    while (!c->writing && c->first_unsent && c->state < NET_SHUTDOWN) {
        uv_buf_t bufs[NET_IOV_MAX + 1];
        size_t bytes, fbytes = 0;
        struct net_out *f;
        unsigned n = gather(c, bufs, &bytes, &f);
        if (f && use_sendfile && n == 0) {
            if (!send_file(c, sock))
                return;
            continue;
        }
        if (f && !use_sendfile) {
            fbytes = f->flen < NET_FILE_CHUNK ? f->flen : NET_FILE_CHUNK;
            uint8_t *dst = file_scratch();
            int err = file_read(f, dst, fbytes);
            if (err) {
                fail(c, err);
                return;
            }
            bufs[n] = uv_buf_init((char *)dst, (unsigned)fbytes);
        }
        int r = uv_try_write((uv_stream_t *)&c->tcp, bufs, n + (fbytes > 0));
        if (r < 0 && r != UV_EAGAIN && r != UV_ENOSYS) {
            fail(c, r);
            return;
        }
        size_t took = r > 0 ? (size_t)r : 0, fsent = took > bytes ? took - bytes : 0;
        if (took)
            sent_now(c, took < bytes ? took : bytes);
        if (fsent)
            file_sent(c, fsent); /* the memory before it went whole: f heads the queue */
        if (took == bytes + fbytes)
            continue;                  /* all of it went: maybe more */
        if (took >= bytes && fbytes) { /* the socket is full inside the range's chunk */
            const uint8_t *rest = (const uint8_t *)bufs[n].base + fsent;
            int err = file_nudge(c, rest, fbytes - fsent); /* from the chunk, not the file */
            if (err) {
                fail(c, err);
                return;
            }
        }
        n = gather(c, bufs, &bytes, &f); /* memory only (a nudge, maybe) */
        r = uv_write(&c->wreq, (uv_stream_t *)&c->tcp, bufs, n, write_cb);
        if (r < 0) {
            fail(c, r);
            return;
        }
        c->writing = true;
        c->nflight = n;
        c->unsent_bytes -= bytes;
        while (n--)
            c->first_unsent = c->first_unsent->next;
    }
}

static void shutdown_cb(uv_shutdown_t *req, int status)
{
    struct net_conn *c = req->data;
    if (c->state != NET_SHUTDOWN)
        return;
    if (status < 0 || c->eof) {
        close_now(c, false);
        return;
    }
    c->state = NET_LINGER;
    update_reading(c);
}

static void start_shutdown(struct net_conn *c)
{
    c->state = NET_SHUTDOWN;
    if (uv_shutdown(&c->sreq, (uv_stream_t *)&c->tcp, shutdown_cb) < 0)
        close_now(c, false);
}

/* After a flush, from a loop callback: finish a close, or report the drain. */
static void settle(struct net_conn *c)
{
    if (c->writing || c->first_unsent)
        return;
    if (c->state == NET_FLUSHING) {
        start_shutdown(c);
    } else if (c->state == NET_OPEN && c->drain_owed) {
        c->drain_owed = false;
        if (c->ops && c->ops->on_drain)
            c->ops->on_drain(c->ctx, c);
    }
}

static void write_cb(uv_write_t *req, int status)
{
    struct net_conn *c = req->data;
    size_t bytes = 0;
    for (; c->nflight; c->nflight--) {
        struct net_out *o = c->head;
        c->head = o->next;
        bytes += o->b.len - o->off;
        out_free(o);
    }
    if (!c->head)
        c->tail = NULL;
    c->writing = false;
    c->out_bytes -= bytes;
    net_count(0, bytes);
    if (status < 0) {
        if (status != UV_ECANCELED)
            fail(c, status);
        return;
    }
    flush(c);
    settle(c);
}

static void idle_cb(uv_idle_t *h)
{
    struct net_conn *c = h->data;
    uv_idle_stop(h);
    if (c->redeliver) {
        c->redeliver = false;
        if (c->state == NET_OPEN && !c->paused && c->in.len)
            deliver(c);
    }
    flush(c);
    settle(c);
}

static void timer_cb(uv_timer_t *h)
{
    close_now(h->data, true);
}

/* ---- connections -------------------------------------------------------------------------- */

static void format_peer(struct net_conn *c)
{
    char ip[INET6_ADDRSTRLEN] = "?";
    if (c->addr.ss_family == AF_INET) {
        const struct sockaddr_in *a = (const struct sockaddr_in *)&c->addr;
        uv_ip4_name(a, ip, sizeof(ip));
        snprintf(c->peer, sizeof(c->peer), "%s:%u", ip, (unsigned)ntohs(a->sin_port));
    } else if (c->addr.ss_family == AF_INET6) {
        const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)&c->addr;
        uv_ip6_name(a, ip, sizeof(ip));
        snprintf(c->peer, sizeof(c->peer), "[%s]:%u", ip, (unsigned)ntohs(a->sin6_port));
    } else {
        snprintf(c->peer, sizeof(c->peer), "?");
    }
}

static struct net_conn *conn_new(uv_loop_t *loop)
{
    struct net_conn *c = tern_xcalloc(1, sizeof(*c));
    uv_tcp_init(loop, &c->tcp); /* cannot fail without a socket to create */
    uv_idle_init(loop, &c->idle);
    uv_timer_init(loop, &c->timer);
    c->open_handles = 3;
    c->tcp.data = c->idle.data = c->timer.data = c->wreq.data = c->sreq.data = c;
    buf_init(&c->in);
    c->id = atomic_fetch_add_explicit(&net_next_id, 1, memory_order_relaxed);
    return c;
}

static void accept_cb(uv_stream_t *server, int status)
{
    struct net_listener *l = server->data;
    if (status < 0) /* EMFILE and the like: libuv already shed the connection */
        return;
    struct net_conn *c = conn_new(server->loop);
    if (uv_accept(server, (uv_stream_t *)&c->tcp) < 0) {
        close_now(c, false);
        return;
    }
    uv_tcp_nodelay(&c->tcp, 1);
    int len = sizeof(c->addr);
    if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&c->addr, &len) < 0)
        c->addr.ss_family = AF_UNSPEC;
    format_peer(c);
    l->cb(l->arg, c);
}

void net_conn_start(struct net_conn *c, const struct net_conn_ops *ops, void *ctx)
{
    c->ops = ops;
    c->ctx = ctx;
    update_reading(c);
}

/* Appends o to the queue, as unsent. */
static void enqueue(struct net_conn *c, struct net_out *o)
{
    if (c->tail)
        c->tail->next = o;
    else
        c->head = o;
    c->tail = o;
    if (!c->first_unsent)
        c->first_unsent = o;
}

void net_conn_write(struct net_conn *c, struct buf *data)
{
    size_t n = data->len;
    if (n == 0 || c->state > NET_FLUSHING) {
        buf_fini(data);
        return;
    }
    struct net_out *t = c->first_unsent ? c->tail : NULL; /* unsent nodes are a suffix */
    if (t && !t->release && n <= NET_COALESCE_MAX && t->b.len - t->off + n <= NET_FLUSH_NOW) {
        buf_put(&t->b, data->p, n);
        buf_fini(data);
    } else {
        struct net_out *o = tern_xcalloc(1, sizeof(*o));
        o->b = *data;
        buf_init(data);
        enqueue(c, o);
    }
    c->out_bytes += n;
    c->unsent_bytes += n;
    net_count(n, 0);
    c->drain_owed = true;
    if (c->unsent_bytes >= NET_FLUSH_NOW)
        flush(c);
    if (!c->writing && c->state != NET_CLOSED)
        uv_idle_start(&c->idle, idle_cb); /* flush the rest, or report the drain */
}

void net_conn_write_file(struct net_conn *c, int fd, int64_t pos, size_t len,
                         void (*release)(void *arg), void *arg)
{
    TERN_ASSERT(release && pos >= 0);
    if (len == 0 || c->state > NET_FLUSHING) {
        release(arg);
        return;
    }
    struct net_out *o = tern_xcalloc(1, sizeof(*o));
    *o = (struct net_out){.release = release, .arg = arg, .fd = fd, .pos = pos, .flen = len};
    enqueue(c, o);
    c->out_bytes += len;
    c->unsent_bytes += len;
    c->drain_owed = true;
    if (!c->writing && c->state != NET_CLOSED)
        uv_idle_start(&c->idle, idle_cb); /* sent with the rest before the loop polls */
}

size_t net_conn_pending(const struct net_conn *c)
{
    /* libuv's write_queue_size: bytes of the uv_write in flight the kernel has not taken */
    return c->unsent_bytes + (c->writing ? c->tcp.write_queue_size : 0);
}

void net_conn_pause(struct net_conn *c)
{
    c->paused = true;
    update_reading(c);
}

void net_conn_resume(struct net_conn *c)
{
    c->paused = false;
    update_reading(c);
    if (c->state == NET_OPEN && c->ops && c->in.len) {
        c->redeliver = true;
        uv_idle_start(&c->idle, idle_cb);
    }
}

void net_conn_close(struct net_conn *c)
{
    if (c->state != NET_OPEN)
        return;
    c->state = NET_FLUSHING;
    update_reading(c);
    if (c->state != NET_FLUSHING)
        return;
    uv_timer_start(&c->timer, timer_cb, NET_CLOSE_MS, 0);
    flush(c);
    if (c->state == NET_FLUSHING && !c->writing && !c->first_unsent)
        start_shutdown(c);
}

void net_conn_abort(struct net_conn *c)
{
    close_now(c, true);
}

const char *net_conn_peer(const struct net_conn *c)
{
    return c->peer;
}

bool net_conn_peer_is_loopback(const struct net_conn *c)
{
    if (c->addr.ss_family == AF_INET) {
        const struct sockaddr_in *a = (const struct sockaddr_in *)&c->addr;
        return (ntohl(a->sin_addr.s_addr) >> 24) == 127;
    }
    if (c->addr.ss_family == AF_INET6) {
        const struct in6_addr *a = &((const struct sockaddr_in6 *)&c->addr)->sin6_addr;
        return IN6_IS_ADDR_LOOPBACK(a) || (IN6_IS_ADDR_V4MAPPED(a) && a->s6_addr[12] == 127);
    }
    return false;
}

uint64_t net_conn_id(const struct net_conn *c)
{
    return c->id;
}

/* ---- listeners ---------------------------------------------------------------------------- */

static int parse_addr(const char *host, uint16_t port, struct sockaddr_storage *ss)
{
    memset(ss, 0, sizeof(*ss));
    if (strcmp(host, "localhost") == 0)
        host = "127.0.0.1"; /* no resolver call on the loop thread */
    if (uv_ip4_addr(host, port, (struct sockaddr_in *)ss) == 0)
        return 0;
    if (uv_ip6_addr(host, port, (struct sockaddr_in6 *)ss) == 0)
        return 0;
    return -EINVAL;
}

static void listener_closed_cb(uv_handle_t *h)
{
    struct net_listener *l = h->data;
    void (*cb)(void *) = l->close_cb;
    void *arg = l->close_arg;
    free(l);
    if (cb)
        cb(arg);
}

static int bound_port(struct net_listener *l)
{
    struct sockaddr_storage ss;
    int len = sizeof(ss);
    int r = uv_tcp_getsockname(&l->tcp, (struct sockaddr *)&ss, &len);
    if (r < 0)
        return r;
    if (ss.ss_family == AF_INET)
        l->port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
    else
        l->port = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
    return 0;
}

int net_listen(uv_loop_t *loop, const char *host, uint16_t port, net_accept_cb cb, void *arg,
               struct net_listener **out)
{
    struct sockaddr_storage ss;
    int r = parse_addr(host, port, &ss);
    if (r < 0)
        return r;
    struct net_listener *l = tern_xcalloc(1, sizeof(*l));
    l->cb = cb;
    l->arg = arg;
    l->tcp.data = l;
    r = uv_tcp_init_ex(loop, &l->tcp, ss.ss_family);
    if (r < 0) {
        free(l);
        return r;
    }
    r = uv_tcp_bind(&l->tcp, (const struct sockaddr *)&ss, 0);
    if (r < 0)
        goto fail;
    r = uv_listen((uv_stream_t *)&l->tcp, NET_BACKLOG, accept_cb);
    if (r < 0)
        goto fail;
    r = bound_port(l);
    if (r < 0)
        goto fail;
    *out = l;
    return 0;
fail:
    uv_close((uv_handle_t *)&l->tcp, listener_closed_cb); /* freed when the loop runs */
    return r;
}

uint16_t net_listener_port(const struct net_listener *l)
{
    return l->port;
}

void net_listener_close(struct net_listener *l, void (*cb)(void *arg), void *arg)
{
    l->close_cb = cb;
    l->close_arg = arg;
    uv_close((uv_handle_t *)&l->tcp, listener_closed_cb);
}
