/*
 * net.h - TCP listeners and connections on libuv: bytes in, bytes out, reads that can pause.
 *
 * Every protocol session (AMQP, Kafka, HTTP) sits on a net_conn. Protocol code never touches a
 * uv handle: it gets the unconsumed input in a struct buf, queues output buffers, and pauses
 * reading for backpressure. Everything runs on the one thread that runs the loop.
 *
 * Lifetime: a net_conn is created by the listener and handed to the accept callback, which
 * calls net_conn_start. It is freed by net itself right after ops->on_close returns; on_close
 * is called exactly once, always from the loop (never from inside a net_* call).
 *
 * Output: writes made during one loop iteration are gathered and flushed together before the
 * loop next polls (or at once when 64 KiB is waiting). Callbacks (on_read, on_drain, on_close)
 * are only ever called from the loop, never from inside net_conn_write / _close / _resume.
 *
 * Memory: the bytes held in every connection's input and output buffers are counted in
 * net_buffered_bytes() so the broker can turn them into backpressure.
 */
#ifndef TERN_NET_H
#define TERN_NET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "base/buf.h"

struct net_listener;
struct net_conn;

/* c is new and not yet reading; the callee owns it and calls net_conn_start (or _abort). */
typedef void (*net_accept_cb)(void *arg, struct net_conn *c);

/*
 * Binds host:port (port 0 = ephemeral; host is an IPv4 or IPv6 literal or "localhost"),
 * listens (backlog 511) and calls cb for each accepted connection (TCP_NODELAY set).
 * On success *out owns the listener (free it with net_listener_close). Returns 0, or -errno
 * (-EINVAL for a host that is not a literal or "localhost"); nothing is left behind on failure.
 */
int net_listen(uv_loop_t *loop, const char *host, uint16_t port, net_accept_cb cb, void *arg,
               struct net_listener **out);
/* The bound port (the real one when 0 was asked for). */
uint16_t net_listener_port(const struct net_listener *l);
/* Stops accepting; frees l once libuv has closed it, then calls cb(arg) (cb may be NULL).
 * Accepted connections are not affected. */
void net_listener_close(struct net_listener *l, void (*cb)(void *arg), void *arg);

struct net_conn_ops {
    /* New bytes: in holds everything unconsumed so far (new bytes appended); the callback
     * consumes what it parsed with buf_consume (or leaves a partial frame there). Must not
     * free the conn; it may call net_conn_close / _abort / _pause. After net_conn_resume,
     * on_read is called again (from the loop) if unconsumed bytes remain, even with no new
     * bytes. */
    void (*on_read)(void *ctx, struct net_conn *c, struct buf *in);
    /* Called exactly once, after the socket is closed (peer EOF, error, net_conn_close or
     * _abort); the conn is freed right after this returns. status 0 for a local close or EOF,
     * -errno otherwise. */
    void (*on_close)(void *ctx, struct net_conn *c, int status);
    /* Optional (may be NULL): pending output fell to 0 (all queued bytes written to the
     * kernel). Called once each time queued output has drained, not once closing began. */
    void (*on_drain)(void *ctx, struct net_conn *c);
};

/* Sets the callbacks (ops must outlive the conn) and starts reading unless paused. */
void net_conn_start(struct net_conn *c, const struct net_conn_ops *ops, void *ctx);
/*
 * Queues data->len bytes for writing and takes the buffer's storage: data is left empty (no
 * storage) and reusable. Bytes go out in order. Small writes are coalesced until the loop
 * flushes them. Once the conn is shutting its socket or closed, the bytes are dropped.
 */
void net_conn_write(struct net_conn *c, struct buf *data);
/*
 * Queues bytes [pos, pos + len) of the open file fd, to go out in order with the writes around
 * it without being held in memory: read in chunks when the socket can take them (or sent with
 * sendfile(2), see net_set_sendfile). The file must keep the bytes, and fd stay open, until
 * release(arg), which is called exactly once, when the range has been sent or dropped (the
 * conn closed): from the loop, or from inside this or a later net_conn_* call on c. A file
 * shorter than the range fails the conn. A stalled range holds at most 16 KiB of memory. File
 * ranges count in net_conn_pending, not in net_buffered_bytes.
 */
void net_conn_write_file(struct net_conn *c, int fd, int64_t pos, size_t len,
                         void (*release)(void *arg), void *arg);
/* Bytes queued and not yet accepted by the kernel. */
size_t net_conn_pending(const struct net_conn *c);
/* Stops reading (idempotent). While paused, a peer's EOF or reset is not noticed. */
void net_conn_pause(struct net_conn *c);
/* Starts reading again (idempotent). */
void net_conn_resume(struct net_conn *c);
/*
 * Closes gracefully: stops reading (on_read is not called again), flushes queued output, sends
 * FIN and waits for the peer's; gives up (discarding what is left) 1 s after this call. Then
 * on_close(status 0) follows. Idempotent.
 */
void net_conn_close(struct net_conn *c);
/* Closes at once with a reset, discarding queued output (a peer that stopped reading);
 * on_close(status 0) follows. Idempotent; also cuts short a net_conn_close in progress. */
void net_conn_abort(struct net_conn *c);
/* The peer's address: "127.0.0.1:51234" or "[::1]:5". Valid as long as the conn. */
const char *net_conn_peer(const struct net_conn *c);
/* True for 127.0.0.0/8, ::1 and ::ffff:127.0.0.0/104. */
bool net_conn_peer_is_loopback(const struct net_conn *c);
/* Unique per process, increasing from 1 in accept order. */
uint64_t net_conn_id(const struct net_conn *c);
/* Total bytes held in all connections' input and output buffers (the memory high-water mark). */
size_t net_buffered_bytes(void);
/* Total bytes of file ranges written to sockets straight from their files (not the nudges held
 * in memory while a socket was full), since start. */
uint64_t net_file_bytes(void);
/* File ranges go out with sendfile(2) (true) or are read into a scratch buffer and written
 * (false, the default: faster on loopback, see net.c). For every conn, from the next range. */
void net_set_sendfile(bool on);

#endif
