/*
 * main.c - ternd: reads the configuration, opens the store under the data directory and runs
 * the libuv loop until SIGTERM or SIGINT.
 *
 * Lifecycle, as logged on stderr (mod=server):
 *   event=start ...      options parsed, before the store is opened
 *   event=ready          the store is open (recovery done); tests wait for this line
 *   event=shutdown       first SIGTERM/SIGINT: store_close() finishes in-flight fsyncs and
 *                        writes each log's clean-shutdown marker
 *   event=stopped        the loop has ended and everything is freed; exit 0
 *   event=exit_now       a second signal during shutdown: _exit(130) without cleanup
 *
 * Exit codes: 0 clean stop, 1 the store could not be opened (or the loop failed), 2 bad
 * command line or config file, 130 forced exit.
 *
 * After the store, ternd opens the catalog (<data-dir>/catalog.db), the vhost "/", the Kafka
 * topics and consumer groups, and the AMQP and Kafka listeners, and logs
 * `event=listening proto=amqp|kafka bind=ADDR port=N` (tests read the ports from it). Shutdown
 * closes them in reverse order: Kafka then AMQP connections, groups, topics, vhost (queues),
 * catalog, store. The HTTP listener does not exist yet: its port is parsed and logged only.
 */
#include "server/config.h"

#include "base/tern.h"
#include "base/tlog.h"
#include "broker/catalog.h"
#include "broker/group.h"
#include "broker/stream.h"
#include "broker/vhost.h"
#include "net/net.h"
#include "os/file.h"
#include "proto/amqp/amqp_server.h"
#include "proto/kafka/kafka_server.h"
#include "store/store.h"

#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#define SERVER_EXIT_FAILURE 1
#define SERVER_EXIT_USAGE 2
#define SERVER_EXIT_FORCED 130

struct server {
    uv_loop_t loop;
    uv_signal_t sigterm;
    uv_signal_t sigint;
    struct config cfg;
    bool signals_open; /* both signal handles initialised */
    struct store *store;
    struct catalog *catalog;
    struct vhost *vhost;
    struct amqp_server *amqp;
    struct stream_mgr *streams;
    struct group_mgr *groups;
    struct kafka_server *kafka;
    bool stopping;
};

static const char *signal_name(int signum)
{
    switch (signum) {
    case SIGTERM:
        return "SIGTERM";
    case SIGINT:
        return "SIGINT";
    default:
        return "unknown";
    }
}

static void on_signal_closed(uv_handle_t *h)
{
    (void)h; /* the handles live inside struct server */
}

static void close_signals(struct server *srv)
{
    if (!srv->signals_open)
        return;
    srv->signals_open = false;
    uv_close((uv_handle_t *)&srv->sigterm, on_signal_closed);
    uv_close((uv_handle_t *)&srv->sigint, on_signal_closed);
}

static void on_store_closed(void *arg)
{
    struct server *srv = arg;
    srv->store = NULL;
    close_signals(srv); /* no active handles left: uv_run returns */
}

/* Everything above the store, in reverse order of opening. */
static void close_broker(struct server *srv)
{
    if (srv->groups) {
        group_mgr_free(srv->groups);
        srv->groups = NULL;
    }
    if (srv->streams) {
        stream_mgr_snapshot(srv->streams); /* no append follows: the Kafka listener is gone */
        stream_mgr_close(srv->streams);
        srv->streams = NULL;
    }
    if (srv->vhost) {
        vhost_close(srv->vhost);
        srv->vhost = NULL;
    }
    if (srv->catalog) {
        catalog_close(srv->catalog);
        srv->catalog = NULL;
    }
}

static void on_amqp_stopped(void *arg)
{
    struct server *srv = arg;
    srv->amqp = NULL;
    close_broker(srv);
    store_close(srv->store, on_store_closed, srv);
}

static void on_kafka_stopped(void *arg)
{
    struct server *srv = arg;
    srv->kafka = NULL;
    if (srv->amqp)
        amqp_server_stop(srv->amqp, on_amqp_stopped, srv);
    else
        on_amqp_stopped(srv);
}

/* Stops the listeners and closes everything, in reverse order of opening, from the loop. */
static void begin_shutdown(struct server *srv)
{
    if (srv->kafka)
        kafka_server_stop(srv->kafka, on_kafka_stopped, srv);
    else
        on_kafka_stopped(srv);
}

static void on_signal(uv_signal_t *h, int signum)
{
    struct server *srv = h->data;
    if (srv->stopping) {
        TLOG_WARN("server", "event=exit_now signal=%s", signal_name(signum));
        _exit(SERVER_EXIT_FORCED);
    }
    srv->stopping = true;
    TLOG_INFO("server", "event=shutdown signal=%s", signal_name(signum));
    begin_shutdown(srv);
}

/* Starts the SIGTERM and SIGINT handlers. On failure the handles that were initialised are
 * closed (the loop still has to run their close callbacks). */
static int start_signals(struct server *srv)
{
    int rc = uv_signal_init(&srv->loop, &srv->sigterm);
    if (rc < 0)
        return rc;
    rc = uv_signal_init(&srv->loop, &srv->sigint);
    if (rc < 0) {
        uv_close((uv_handle_t *)&srv->sigterm, on_signal_closed);
        return rc;
    }
    srv->signals_open = true;
    srv->sigterm.data = srv;
    srv->sigint.data = srv;
    if ((rc = uv_signal_start(&srv->sigterm, on_signal, SIGTERM)) < 0 ||
        (rc = uv_signal_start(&srv->sigint, on_signal, SIGINT)) < 0)
        close_signals(srv);
    return rc;
}

static void log_start(const struct config *cfg)
{
    char fsync[32];
    TLOG_INFO("server",
              "event=start version=%s data_dir=%s bind=%s amqp_port=%u kafka_port=%u "
              "http_port=%u fsync=%s segment_bytes=%llu checkpoint_interval_ms=%u pid=%ld",
              TERN_VERSION, cfg->data_dir, cfg->bind, (unsigned)cfg->amqp_port,
              (unsigned)cfg->kafka_port, (unsigned)cfg->http_port,
              config_fsync_str(cfg, fsync, sizeof(fsync)), (unsigned long long)cfg->segment_bytes,
              (unsigned)cfg->checkpoint_interval_ms, (long)getpid());
}

/* mkdir -p: creates path and its missing parents. Returns 0 or -errno. An existing
 * non-directory is left for store_open to report. */
static int make_dirs(const char *path)
{
    char *p = tern_xstrdup(path);
    int rc = 0;
    for (char *s = p + 1; rc == 0; s++) {
        if (*s != '/' && *s != '\0')
            continue;
        char c = *s;
        *s = '\0';
        if (mkdir(p, 0755) < 0 && errno != EEXIST)
            rc = -errno;
        *s = c;
        if (c == '\0')
            break;
    }
    free(p);
    return rc;
}

static int open_store(struct server *srv)
{
    struct store_config scfg;
    config_to_store(&srv->cfg, &scfg);
    int rc = make_dirs(srv->cfg.data_dir);
    if (rc < 0) {
        TLOG_ERRNO("server", rc, "event=open_failed data_dir=%s", srv->cfg.data_dir);
        return rc;
    }
    rc = store_open(&srv->loop, &scfg, &srv->store);
    if (rc == TERN_ELOCKED)
        TLOG_ERROR("server",
                   "event=open_failed data_dir=%s msg=\"another ternd holds the "
                   "data directory %s\"",
                   srv->cfg.data_dir, srv->cfg.data_dir);
    else if (rc < 0)
        TLOG_ERRNO("server", rc, "event=open_failed data_dir=%s", srv->cfg.data_dir);
    return rc;
}

/* Each queue is a log with open segment files: take every file descriptor we may. */
static void raise_fd_limit(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

static int open_kafka(struct server *srv)
{
    const struct config *c = &srv->cfg;
    char err[512] = "";
    struct stream_defaults d = {.partitions = (int32_t)c->num_partitions,
                                .auto_create = c->auto_create_topics,
                                .max_partitions = 10000,
                                .producer_expiration_ms = (int64_t)c->producer_expiration_ms,
                                .producer_expiration_check_ms = c->producer_expiration_check_ms};
    int rc =
        stream_mgr_open(&srv->loop, srv->store, srv->catalog, &d, &srv->streams, err, sizeof(err));
    if (rc < 0) {
        TLOG_ERRNO("server", rc, "event=open_failed topics msg=\"%s\"", err);
        return rc;
    }
    struct group_config gcfg;
    group_config_default(&gcfg);
    srv->groups = group_mgr_new(&srv->loop, srv->catalog, &gcfg);
    if (!srv->groups) {
        TLOG_ERROR("server", "event=open_failed groups msg=\"%s\"", catalog_errmsg(srv->catalog));
        return -EIO;
    }
    struct kafka_server_config kcfg = {
        .node_id = c->node_id,
        .advertised_host = c->advertised_host,
        .advertised_port = c->advertised_port,
        .max_request_bytes = c->max_request_bytes,
        .sasl_required = c->kafka_sasl,
        .user = c->default_user,
        .pass = c->default_pass,
    };
    net_set_sendfile(c->sendfile);
    rc = kafka_server_start(&srv->loop, srv->streams, srv->groups, srv->catalog, c->bind,
                            c->kafka_port, &kcfg, &srv->kafka);
    if (rc < 0) {
        TLOG_ERRNO("server", rc, "event=listen_failed proto=kafka bind=%s port=%u", c->bind,
                   (unsigned)c->kafka_port);
        return rc;
    }
    TLOG_INFO("server", "event=listening proto=kafka bind=%s port=%u", c->bind,
              (unsigned)kafka_server_port(srv->kafka));
    return 0;
}

static int open_broker(struct server *srv)
{
    char err[512];
    char *path = file_join(srv->cfg.data_dir, "catalog.db");
    int rc = catalog_open(path, &srv->catalog, err, sizeof(err));
    if (rc < 0)
        TLOG_ERRNO("server", rc, "event=open_failed catalog=%s msg=\"%s\"", path, err);
    free(path);
    if (rc < 0)
        return rc;
    rc = vhost_open(&srv->loop, srv->store, srv->catalog, "/", &srv->vhost, err, sizeof(err));
    if (rc < 0) {
        TLOG_ERRNO("server", rc, "event=open_failed vhost=/ msg=\"%s\"", err);
        return rc;
    }
    const struct config *c = &srv->cfg;
    struct amqp_server_config acfg = {
        .user = c->default_user,
        .pass = c->default_pass,
        .heartbeat_s = (uint16_t)c->heartbeat_s,
        .frame_max = c->frame_max,
        .channel_max = c->channel_max,
        .max_message_size = c->max_message_size,
        .max_connections = c->max_connections,
        .handshake_timeout_ms = c->handshake_timeout_ms,
        .memory_high_watermark = c->memory_high_watermark,
    };
    rc = amqp_server_start(&srv->loop, srv->vhost, c->bind, c->amqp_port, &acfg, &srv->amqp);
    if (rc < 0) {
        TLOG_ERRNO("server", rc, "event=listen_failed proto=amqp bind=%s port=%u", c->bind,
                   (unsigned)c->amqp_port);
        return rc;
    }
    TLOG_INFO("server", "event=listening proto=amqp bind=%s port=%u", c->bind,
              (unsigned)amqp_server_port(srv->amqp));
    return open_kafka(srv);
}

/* Runs the server with a parsed configuration. Returns the process exit code. */
static int server_run(struct server *srv)
{
    int code = SERVER_EXIT_FAILURE;
    int rc = uv_loop_init(&srv->loop);
    if (rc < 0) {
        TLOG_ERRNO("server", rc, "event=loop_init_failed");
        return SERVER_EXIT_FAILURE;
    }
    /* Signals first, so a SIGTERM during a long recovery waits for the loop. */
    rc = start_signals(srv);
    if (rc < 0) {
        TLOG_ERRNO("server", rc, "event=signal_failed");
        goto out;
    }
    raise_fd_limit();
    if (open_store(srv) < 0)
        goto out;
    if (open_broker(srv) < 0) {
        srv->stopping = true;
        begin_shutdown(srv); /* whatever opened before the failure */
        uv_run(&srv->loop, UV_RUN_DEFAULT);
        goto out;
    }
    /* The store has logged each refused (corrupt) log already. */
    TLOG_INFO("server", "event=ready data_dir=%s logs=%zu refused=%zu", srv->cfg.data_dir,
              store_log_count(srv->store), store_refused_count(srv->store));
    uv_run(&srv->loop, UV_RUN_DEFAULT);
    code = 0;
out:
    close_signals(srv);
    uv_run(&srv->loop, UV_RUN_DEFAULT); /* let close callbacks run */
    rc = uv_loop_close(&srv->loop);
    if (rc < 0) {
        TLOG_ERRNO("server", rc, "event=loop_close_failed");
        code = SERVER_EXIT_FAILURE;
    }
    return code;
}

int main(int argc, char **argv)
{
    static struct server srv;
    enum config_action action;
    char err[1024];
    int code;

    signal(SIGPIPE, SIG_IGN);
    config_init(&srv.cfg);
    if (config_parse(&srv.cfg, argc, argv, &action, err, sizeof(err)) < 0) {
        fprintf(stderr, "ternd: %s\n", err);
        code = SERVER_EXIT_USAGE;
        goto out;
    }
    if (action == CONFIG_ACTION_HELP) {
        config_usage(stdout);
        code = 0;
        goto out;
    }
    if (action == CONFIG_ACTION_VERSION) {
        printf("ternd %s\n", TERN_VERSION);
        code = 0;
        goto out;
    }
    tlog_set_level(srv.cfg.log_level);
    log_start(&srv.cfg);
    code = server_run(&srv);
    if (code == 0)
        TLOG_INFO("server", "event=stopped");
out:
    config_fini(&srv.cfg);
    return code;
}
