/* net_test.c - listeners and connections over a real loop on 127.0.0.1 (and ::1 if present).
 *
 * The server side is a net_conn; the client side is a plain uv_tcp_t on the same loop, so the
 * test controls exactly when the peer reads, writes, closes or resets. */
#include <setjmp.h>
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "base/buf.h"
#include "net/net.h"

enum mode {
    MODE_COLLECT, /* append input to srv_got */
    MODE_ECHO,    /* write input back */
    MODE_HOLD,    /* consume nothing and pause */
    MODE_BYE,     /* write "bye", then net_conn_close from inside on_read */
};

struct client {
    uv_tcp_t tcp;
    uv_connect_t creq;
    bool connected, eof, closed;
    int err;
    struct buf got;
};

struct fx {
    uv_loop_t loop;
    uv_timer_t tick; /* wakes the loop while a test waits for a condition */
    struct net_listener *l;
    struct net_conn *srv; /* the last accepted conn, NULL once closed */
    int accepted, reads, closes, drains, close_status;
    enum mode mode;
    struct buf srv_got;
    struct client cl, cl2;
};

static void tick_cb(uv_timer_t *t)
{
    (void)t;
}

/* Runs the loop until cond holds (at most 10 s) and asserts it. */
#define RUN_UNTIL(f, cond)                                                                         \
    do {                                                                                           \
        uint64_t end_ = uv_now(&(f)->loop) + 10000;                                                \
        uv_timer_start(&(f)->tick, tick_cb, 5, 5);                                                 \
        while (!(cond) && uv_now(&(f)->loop) < end_)                                               \
            uv_run(&(f)->loop, UV_RUN_ONCE);                                                       \
        uv_timer_stop(&(f)->tick);                                                                 \
        assert_true(cond);                                                                         \
    } while (0)

static void run_for(struct fx *f, unsigned ms)
{
    uint64_t end = uv_now(&f->loop) + ms;
    uv_timer_start(&f->tick, tick_cb, 5, 5);
    while (uv_now(&f->loop) < end)
        uv_run(&f->loop, UV_RUN_ONCE);
    uv_timer_stop(&f->tick);
}

/* ---- server side -------------------------------------------------------------------------- */

static void srv_read(void *ctx, struct net_conn *c, struct buf *in)
{
    struct fx *f = ctx;
    struct buf out = BUF_INIT;
    f->reads++;
    switch (f->mode) {
    case MODE_COLLECT:
        buf_put(&f->srv_got, in->p, in->len);
        buf_consume(in, in->len);
        break;
    case MODE_ECHO:
        buf_put(&out, in->p, in->len);
        buf_consume(in, in->len);
        net_conn_write(c, &out);
        break;
    case MODE_HOLD:
        net_conn_pause(c);
        break;
    case MODE_BYE:
        buf_consume(in, in->len);
        buf_put(&out, "bye", 3);
        net_conn_write(c, &out);
        net_conn_close(c);
        net_conn_close(c); /* idempotent */
        break;
    }
}

static void srv_close(void *ctx, struct net_conn *c, int status)
{
    struct fx *f = ctx;
    assert_ptr_equal(c, f->srv);
    f->closes++;
    f->close_status = status;
    f->srv = NULL;
}

static void srv_drain(void *ctx, struct net_conn *c)
{
    struct fx *f = ctx;
    (void)c;
    f->drains++;
}

static const struct net_conn_ops srv_ops = {srv_read, srv_close, srv_drain};

static void srv_accept(void *arg, struct net_conn *c)
{
    struct fx *f = arg;
    f->accepted++;
    f->srv = c;
    net_conn_start(c, &srv_ops, f);
}

/* ---- client side -------------------------------------------------------------------------- */

static void cl_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *b)
{
    static char scratch[65536];
    (void)h;
    (void)suggested;
    *b = uv_buf_init(scratch, sizeof(scratch));
}

static void cl_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *b)
{
    struct client *cl = s->data;
    if (nread > 0)
        buf_put(&cl->got, b->base, (size_t)nread);
    else if (nread == UV_EOF)
        cl->eof = true;
    else if (nread < 0)
        cl->err = (int)nread;
    if (nread < 0)
        uv_read_stop(s);
}

static void cl_connected(uv_connect_t *req, int status)
{
    struct client *cl = req->handle->data;
    cl->connected = status == 0;
    cl->err = status;
}

static void cl_closed(uv_handle_t *h)
{
    struct client *cl = h->data;
    cl->closed = true;
}

static void cl_connect(struct fx *f, struct client *cl, const char *ip6)
{
    struct sockaddr_storage ss;
    uint16_t port = net_listener_port(f->l);
    if (ip6)
        assert_int_equal(uv_ip6_addr(ip6, port, (struct sockaddr_in6 *)&ss), 0);
    else
        assert_int_equal(uv_ip4_addr("127.0.0.1", port, (struct sockaddr_in *)&ss), 0);
    assert_int_equal(uv_tcp_init(&f->loop, &cl->tcp), 0);
    cl->tcp.data = cl;
    int accepted = f->accepted;
    assert_int_equal(uv_tcp_connect(&cl->creq, &cl->tcp, (struct sockaddr *)&ss, cl_connected), 0);
    RUN_UNTIL(f, cl->connected && f->accepted == accepted + 1);
}

static void cl_start_reading(struct fx *f)
{
    assert_int_equal(uv_read_start((uv_stream_t *)&f->cl.tcp, cl_alloc, cl_read), 0);
}

struct cl_wreq {
    uv_write_t req;
    char data[];
};

static void cl_written(uv_write_t *req, int status)
{
    (void)status;
    free(req);
}

static void cl_send(struct fx *f, const char *s)
{
    size_t n = strlen(s);
    struct cl_wreq *w = malloc(sizeof(*w) + n);
    memcpy(w->data, s, n);
    uv_buf_t b = uv_buf_init(w->data, (unsigned)n);
    assert_int_equal(uv_write(&w->req, (uv_stream_t *)&f->cl.tcp, &b, 1, cl_written), 0);
}

static void cl_close(struct client *cl)
{
    if (cl->tcp.data && !uv_is_closing((uv_handle_t *)&cl->tcp))
        uv_close((uv_handle_t *)&cl->tcp, cl_closed);
}

static bool got_equals(const struct buf *b, const char *s)
{
    return b->len == strlen(s) && memcmp(b->p, s, b->len) == 0;
}

/* A byte pattern that shows reordering and loss. */
static uint8_t pat(size_t i)
{
    return (uint8_t)(i * 7 + (i >> 13));
}

/* Writes n pattern bytes starting at pattern index from, in chunks of chunk bytes. */
static void srv_write_pattern(struct fx *f, size_t from, size_t n, size_t chunk)
{
    for (size_t done = 0; done < n;) {
        size_t k = n - done < chunk ? n - done : chunk;
        struct buf b = BUF_INIT;
        uint8_t *p = buf_reserve(&b, k);
        for (size_t i = 0; i < k; i++)
            p[i] = pat(from + done + i);
        b.len = k;
        net_conn_write(f->srv, &b);
        assert_null(b.p);
        assert_int_equal(b.len, 0);
        done += k;
    }
}

static void check_pattern(const struct buf *b, size_t n)
{
    assert_int_equal(b->len, n);
    for (size_t i = 0; i < n; i++)
        if (b->p[i] != pat(i))
            fail_msg("byte %zu is %u, want %u", i, b->p[i], pat(i));
}

/* ---- fixture ------------------------------------------------------------------------------ */

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof(*f));
    assert_int_equal(uv_loop_init(&f->loop), 0);
    assert_int_equal(uv_timer_init(&f->loop, &f->tick), 0);
    assert_int_equal(net_listen(&f->loop, "127.0.0.1", 0, srv_accept, f, &f->l), 0);
    *state = f;
    return 0;
}

/* The file-range tests run twice: ranges copied through the scratch buffer, and sendfile. */
static int setup_copy(void **state)
{
    net_set_sendfile(false);
    return setup(state);
}

static int setup_sendfile(void **state)
{
    net_set_sendfile(true);
    return setup(state);
}

static void listener_closed(void *arg)
{
    *(bool *)arg = true;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    bool lclosed = false;
    if (f->srv)
        net_conn_abort(f->srv);
    cl_close(&f->cl);
    cl_close(&f->cl2);
    net_listener_close(f->l, listener_closed, &lclosed);
    uv_close((uv_handle_t *)&f->tick, NULL);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_true(lclosed);
    assert_int_equal(uv_loop_close(&f->loop), 0);
    assert_int_equal(net_buffered_bytes(), 0);
    buf_fini(&f->srv_got);
    buf_fini(&f->cl.got);
    buf_fini(&f->cl2.got);
    free(f);
    return 0;
}

/* ---- tests -------------------------------------------------------------------------------- */

static void test_listen(void **state)
{
    struct fx *f = *state;
    struct net_listener *l2 = NULL;
    assert_int_not_equal(net_listener_port(f->l), 0);
    assert_int_equal(net_listen(&f->loop, "example.org", 0, srv_accept, f, &l2), -EINVAL);
    assert_int_equal(net_listen(&f->loop, "127.0.0.1", net_listener_port(f->l), srv_accept, f, &l2),
                     UV_EADDRINUSE);
    assert_int_equal(net_listen(&f->loop, "localhost", 0, srv_accept, f, &l2), 0);
    assert_int_not_equal(net_listener_port(l2), 0);
    assert_int_not_equal(net_listener_port(l2), net_listener_port(f->l));
    net_listener_close(l2, NULL, NULL);
}

static void test_echo_and_peer(void **state)
{
    struct fx *f = *state;
    f->mode = MODE_ECHO;
    cl_connect(f, &f->cl, NULL);
    cl_start_reading(f);
    assert_non_null(f->srv);
    assert_true(net_conn_peer_is_loopback(f->srv));
    assert_memory_equal(net_conn_peer(f->srv), "127.0.0.1:", 10);
    uint64_t id = net_conn_id(f->srv);
    assert_true(id >= 1);
    cl_send(f, "hello");
    RUN_UNTIL(f, got_equals(&f->cl.got, "hello"));
    cl_send(f, " world");
    RUN_UNTIL(f, got_equals(&f->cl.got, "hello world"));
    assert_int_equal(net_conn_pending(f->srv), 0);

    /* a second connection gets a larger id */
    struct net_conn *first = f->srv;
    cl_connect(f, &f->cl2, NULL);
    assert_true(net_conn_id(f->srv) > id);
    struct net_conn *second = f->srv;
    f->srv = first; /* srv_close checks which conn closes */
    net_conn_abort(first);
    RUN_UNTIL(f, f->closes == 1);
    f->srv = second;
}

static void test_small_writes_coalesce_in_order(void **state)
{
    struct fx *f = *state;
    cl_connect(f, &f->cl, NULL);
    cl_start_reading(f);
    size_t before = net_buffered_bytes();
    /* 1,000 writes of 8 bytes stay queued until the loop runs */
    srv_write_pattern(f, 0, 8000, 8);
    assert_int_equal(net_conn_pending(f->srv), 8000);
    assert_int_equal(net_buffered_bytes(), before + 8000);
    RUN_UNTIL(f, f->cl.got.len == 8000);
    assert_int_equal(net_conn_pending(f->srv), 0);
    assert_true(f->drains >= 1);
    /* 100,000 writes of 7 bytes cross the 64 KiB flush threshold many times */
    srv_write_pattern(f, 8000, 700000, 7);
    RUN_UNTIL(f, f->cl.got.len == 708000);
    check_pattern(&f->cl.got, 708000);
    RUN_UNTIL(f, net_buffered_bytes() == before);
}

static void test_slow_reader(void **state)
{
    struct fx *f = *state;
    const size_t total = 10u << 20;
    cl_connect(f, &f->cl, NULL); /* the client does not read yet */
    srv_write_pattern(f, 0, total, 65536);
    assert_true(net_conn_pending(f->srv) > 0);
    run_for(f, 200);
    size_t stuck = net_conn_pending(f->srv);
    assert_true(stuck > 0);
    assert_true(net_buffered_bytes() >= stuck);
    assert_int_equal(f->drains, 0);
    cl_start_reading(f);
    RUN_UNTIL(f, f->cl.got.len == total && f->drains == 1);
    assert_int_equal(net_conn_pending(f->srv), 0);
    check_pattern(&f->cl.got, total);
}

static void test_pause_resume(void **state)
{
    struct fx *f = *state;
    cl_connect(f, &f->cl, NULL);
    net_conn_pause(f->srv);
    net_conn_pause(f->srv);
    cl_send(f, "abc");
    run_for(f, 100);
    assert_int_equal(f->reads, 0);
    net_conn_resume(f->srv);
    net_conn_resume(f->srv);
    RUN_UNTIL(f, got_equals(&f->srv_got, "abc"));
    assert_int_equal(f->reads, 1);

    /* unconsumed input is offered again after resume, without new bytes */
    f->mode = MODE_HOLD;
    cl_send(f, "xyz");
    RUN_UNTIL(f, f->reads == 2);
    run_for(f, 50);
    assert_int_equal(f->reads, 2);
    f->mode = MODE_COLLECT;
    net_conn_resume(f->srv);
    RUN_UNTIL(f, got_equals(&f->srv_got, "abcxyz"));
    assert_int_equal(f->reads, 3);
}

static void test_peer_close(void **state)
{
    struct fx *f = *state;
    cl_connect(f, &f->cl, NULL);
    cl_send(f, "last words");
    cl_close(&f->cl);
    RUN_UNTIL(f, f->closes == 1);
    assert_int_equal(f->close_status, 0);
    assert_true(got_equals(&f->srv_got, "last words"));
    run_for(f, 50);
    assert_int_equal(f->closes, 1);
}

static void test_peer_reset(void **state)
{
    struct fx *f = *state;
    cl_connect(f, &f->cl, NULL);
    assert_int_equal(uv_tcp_close_reset(&f->cl.tcp, cl_closed), 0);
    RUN_UNTIL(f, f->closes == 1);
    assert_int_equal(f->close_status, UV_ECONNRESET);
}

static void test_close_flushes(void **state)
{
    struct fx *f = *state;
    const size_t total = 1u << 20;
    cl_connect(f, &f->cl, NULL);
    srv_write_pattern(f, 0, total, 1000);
    net_conn_close(f->srv);
    net_conn_close(f->srv);
    run_for(f, 100);
    assert_int_equal(f->closes, 0); /* waiting for the reader, within the 1 s bound */
    cl_start_reading(f);
    RUN_UNTIL(f, f->cl.eof);
    check_pattern(&f->cl.got, total);
    cl_close(&f->cl);
    RUN_UNTIL(f, f->closes == 1);
    assert_int_equal(f->close_status, 0);
}

static void test_close_gives_up(void **state)
{
    struct fx *f = *state;
    cl_connect(f, &f->cl, NULL);
    srv_write_pattern(f, 0, 10u << 20, 65536);
    net_conn_close(f->srv);
    RUN_UNTIL(f, f->closes == 1); /* the reader never reads: the 1 s bound */
    assert_int_equal(f->close_status, 0);
    assert_int_equal(net_buffered_bytes(), 0);
}

static void test_abort_discards(void **state)
{
    struct fx *f = *state;
    const size_t total = 10u << 20;
    cl_connect(f, &f->cl, NULL);
    srv_write_pattern(f, 0, total, 65536);
    net_conn_abort(f->srv);
    net_conn_abort(f->srv);
    net_conn_close(f->srv);         /* a no-op after abort */
    assert_int_equal(f->closes, 0); /* never from inside the call */
    RUN_UNTIL(f, f->closes == 1);
    assert_int_equal(f->close_status, 0);
    assert_int_equal(net_buffered_bytes(), 0);
    cl_start_reading(f);
    RUN_UNTIL(f, f->cl.eof || f->cl.err);
    assert_true(f->cl.got.len < total);
}

/* ---- file ranges (run copying and with sendfile)
 * -------------------------------------------------------------------------- */

/* A temp file holding pattern bytes [0, n); unlinked at once, so only the fd keeps it. */
static int pattern_file(size_t n)
{
    char path[] = "/tmp/net_test_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    unlink(path);
    uint8_t *p = malloc(n);
    for (size_t i = 0; i < n; i++)
        p[i] = pat(i);
    assert_int_equal(write(fd, p, n), (ssize_t)n);
    free(p);
    return fd;
}

static void count_release(void *arg)
{
    (*(int *)arg)++;
}

/* Memory writes and file ranges interleave in order: pattern [0,100) from memory, [100, 300000)
 * from the file, [300000, 300010) from memory, [300010, 600000) from the file. */
static void test_file_in_order(void **state)
{
    struct fx *f = *state;
    const size_t total = 600000;
    int fd = pattern_file(total), released = 0;
    uint64_t sent = net_file_bytes();
    cl_connect(f, &f->cl, NULL);
    cl_start_reading(f);
    srv_write_pattern(f, 0, 100, 100);
    net_conn_write_file(f->srv, fd, 100, 300000 - 100, count_release, &released);
    srv_write_pattern(f, 300000, 10, 10);
    net_conn_write_file(f->srv, fd, 300010, total - 300010, count_release, &released);
    net_conn_write_file(f->srv, fd, 0, 0, count_release, &released); /* empty: released at once */
    assert_true(released >= 1); /* the first may be gone already: a write flushes 64 KiB */
    RUN_UNTIL(f, f->cl.got.len == total && f->drains == 1);
    check_pattern(&f->cl.got, total);
    assert_int_equal(released, 3);
    assert_int_equal(net_conn_pending(f->srv), 0);
    /* straight from the file, but for the 16 KiB nudges sent when the socket was full */
    assert_true(net_file_bytes() - sent <= total - 110);
    assert_true(net_file_bytes() - sent >= (total - 110) / 2);
    close(fd);
}

/* A reader that does not read: the socket fills, the range waits without being copied into
 * memory (only a nudge is), and everything arrives in order once the reader reads. */
static void test_file_slow_reader(void **state)
{
    struct fx *f = *state;
    const size_t total = 32u << 20;
    int fd = pattern_file(total), released = 0;
    cl_connect(f, &f->cl, NULL);
    net_conn_write_file(f->srv, fd, 0, total / 2, count_release, &released);
    net_conn_write_file(f->srv, fd, total / 2, total / 2, count_release, &released);
    run_for(f, 200);
    assert_true(net_conn_pending(f->srv) > 0);
    assert_true(net_buffered_bytes() <= 16u * 1024); /* at most one nudge is in memory */
    assert_int_equal(f->drains, 0);
    cl_start_reading(f);
    RUN_UNTIL(f, f->cl.got.len == total && f->drains == 1);
    check_pattern(&f->cl.got, total);
    assert_int_equal(released, 2);
    close(fd);
}

/* A file shorter than the range fails the conn (the peer cannot be sent a frame that is not
 * there); the range is released once. */
static void test_file_short_file(void **state)
{
    struct fx *f = *state;
    int fd = pattern_file(1000), released = 0;
    cl_connect(f, &f->cl, NULL);
    cl_start_reading(f);
    net_conn_write_file(f->srv, fd, 0, 5000, count_release, &released);
    RUN_UNTIL(f, f->closes == 1 && released == 1);
    assert_int_not_equal(f->close_status, 0);
    RUN_UNTIL(f, f->cl.eof || f->cl.err);
    assert_true(f->cl.got.len <= 1000);
    close(fd);
}

/* Abort and close drop or send queued ranges; each is released exactly once. */
static void test_file_abort_and_close(void **state)
{
    struct fx *f = *state;
    const size_t total = 16u << 20;
    int fd = pattern_file(total), released = 0;
    cl_connect(f, &f->cl, NULL);
    net_conn_write_file(f->srv, fd, 0, total, count_release, &released);
    run_for(f, 50);
    net_conn_abort(f->srv);
    net_conn_write_file(f->srv, fd, 0, 10, count_release, &released); /* closed: released now */
    assert_int_equal(released, 1);
    RUN_UNTIL(f, f->closes == 1 && released == 2);
    assert_int_equal(net_buffered_bytes(), 0);
    cl_close(&f->cl);
    RUN_UNTIL(f, f->cl.closed);

    /* a graceful close sends what is queued, ranges included */
    f->cl = (struct client){0};
    cl_connect(f, &f->cl, NULL);
    cl_start_reading(f);
    srv_write_pattern(f, 0, 1000, 1000);
    net_conn_write_file(f->srv, fd, 1000, 200000, count_release, &released);
    net_conn_close(f->srv);
    RUN_UNTIL(f, f->cl.eof && f->closes == 2 && released == 3);
    check_pattern(&f->cl.got, 201000);
    close(fd);
}

static void test_close_inside_read(void **state)
{
    struct fx *f = *state;
    f->mode = MODE_BYE;
    cl_connect(f, &f->cl, NULL);
    cl_start_reading(f);
    cl_send(f, "x");
    RUN_UNTIL(f, f->cl.eof);
    assert_true(got_equals(&f->cl.got, "bye"));
    cl_send(f, "ignored"); /* the server lingers: read and discarded, no on_read */
    run_for(f, 50);
    assert_int_equal(f->reads, 1);
    cl_close(&f->cl);
    RUN_UNTIL(f, f->closes == 1);
    assert_int_equal(f->close_status, 0);
    assert_int_equal(f->reads, 1);
}

static void test_ipv6(void **state)
{
    struct fx *f = *state;
    struct net_listener *l4 = f->l;
    int r = net_listen(&f->loop, "::1", 0, srv_accept, f, &f->l);
    if (r < 0) {
        f->l = l4;
        skip();
    }
    net_listener_close(l4, NULL, NULL);
    cl_connect(f, &f->cl, "::1");
    assert_true(net_conn_peer_is_loopback(f->srv));
    assert_memory_equal(net_conn_peer(f->srv), "[::1]:", 6);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_listen, setup, teardown),
        cmocka_unit_test_setup_teardown(test_echo_and_peer, setup, teardown),
        cmocka_unit_test_setup_teardown(test_small_writes_coalesce_in_order, setup, teardown),
        cmocka_unit_test_setup_teardown(test_slow_reader, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pause_resume, setup, teardown),
        cmocka_unit_test_setup_teardown(test_peer_close, setup, teardown),
        cmocka_unit_test_setup_teardown(test_peer_reset, setup, teardown),
        cmocka_unit_test_setup_teardown(test_close_flushes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_close_gives_up, setup, teardown),
        cmocka_unit_test_setup_teardown(test_abort_discards, setup, teardown),
        cmocka_unit_test_setup_teardown(test_close_inside_read, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ipv6, setup, teardown),
        {"test_file_in_order/copy", test_file_in_order, setup_copy, teardown, NULL},
        {"test_file_in_order/sendfile", test_file_in_order, setup_sendfile, teardown, NULL},
        {"test_file_slow_reader/copy", test_file_slow_reader, setup_copy, teardown, NULL},
        {"test_file_slow_reader/sendfile", test_file_slow_reader, setup_sendfile, teardown, NULL},
        {"test_file_short_file/copy", test_file_short_file, setup_copy, teardown, NULL},
        {"test_file_short_file/sendfile", test_file_short_file, setup_sendfile, teardown, NULL},
        {"test_file_abort_and_close/copy", test_file_abort_and_close, setup_copy, teardown, NULL},
        {"test_file_abort_and_close/sendfile", test_file_abort_and_close, setup_sendfile, teardown,
         NULL},
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
