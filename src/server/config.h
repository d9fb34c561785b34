/*
 * config.h - ternd's settings: command-line options and the optional config file.
 *
 * Every option `--name VALUE` (or `--name=VALUE`) is also a key `name = VALUE` in the file
 * given by `--config FILE`. The file is applied first and the command line after it, so the
 * command line wins whatever the order of its arguments. Values are checked as they are set:
 * a struct config never holds an invalid value.
 *
 * This module never prints and never exits: parse functions return 0 or a negative error and
 * write a one-line message naming the option (or FILE:LINE and key) into the caller's buffer.
 * The server's main() prints it and exits 2.
 */
#ifndef TERN_CONFIG_H
#define TERN_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "base/tlog.h"
#include "store/store.h"

#define CONFIG_DEFAULT_DATA_DIR "./data"
#define CONFIG_DEFAULT_BIND "127.0.0.1"
#define CONFIG_DEFAULT_AMQP_PORT 5672
#define CONFIG_DEFAULT_KAFKA_PORT 9092
#define CONFIG_DEFAULT_HTTP_PORT 15672
#define CONFIG_DEFAULT_SEGMENT_BYTES 1073741824ULL
#define CONFIG_MIN_SEGMENT_BYTES 4096ULL
/* Segment positions fit in 32 bits (the sparse index stores them as uint32). */
#define CONFIG_MAX_SEGMENT_BYTES 4294967295ULL
#define CONFIG_MAX_SEGMENT_BYTES_TEXT "4294967295"
#define CONFIG_DEFAULT_CHECKPOINT_INTERVAL_MS 1000U
#define CONFIG_DEFAULT_GROUP_COMMIT_MS 2
#define CONFIG_DEFAULT_LOG_CACHE_BYTES 1073741824ULL
#define CONFIG_DEFAULT_LOG_CLEANER_INTERVAL_MS 15000U
#define CONFIG_DEFAULT_HEARTBEAT_S 60
#define CONFIG_DEFAULT_FRAME_MAX 131072
#define CONFIG_DEFAULT_CHANNEL_MAX 2047
#define CONFIG_DEFAULT_MAX_MESSAGE_SIZE 16777216ULL
#define CONFIG_DEFAULT_HANDSHAKE_TIMEOUT_MS 10000
#define CONFIG_DEFAULT_MEMORY_HIGH_WATERMARK 1073741824ULL

struct config {
    char *data_dir;     /* owned */
    char *bind;         /* owned; a valid IPv4 or IPv6 address literal */
    char *config_file;  /* owned; NULL when no --config was given */
    uint16_t amqp_port; /* 0: let the OS choose */
    uint16_t kafka_port;
    uint16_t http_port;
    enum log_fsync_mode fsync_mode;
    uint32_t fsync_interval_ms; /* > 0 when fsync_mode is LOG_FSYNC_INTERVAL, else 0 */
    enum tlog_level log_level;
    uint64_t segment_bytes;
    uint32_t checkpoint_interval_ms;
    uint32_t group_commit_ms;         /* least ms between two fsyncs of one log (fsync always) */
    uint64_t log_cache_bytes;         /* page cache kept per log; older fsynced bytes dropped */
    uint32_t log_cleaner_interval_ms; /* how often compacted logs are checked for a pass */
    /* AMQP 0-9-1 (defaults are RabbitMQ's) */
    char *default_user;             /* owned; "guest" */
    char *default_pass;             /* owned; "guest" */
    uint32_t heartbeat_s;           /* proposed in connection.tune; 0 disables */
    uint32_t frame_max;             /* proposed in connection.tune; >= 4096 */
    uint16_t channel_max;           /* proposed in connection.tune; 1..65535 */
    uint64_t max_message_size;      /* body bytes; larger publishes get 406 */
    uint32_t max_connections;       /* 0: unlimited */
    uint32_t handshake_timeout_ms;  /* connection.open must arrive within this */
    uint64_t memory_high_watermark; /* bytes of buffered data-path memory; publishers block above */
    /* Kafka */
    char *advertised_host;           /* owned; NULL: the bind address */
    uint16_t advertised_port;        /* 0: the Kafka port */
    int32_t node_id;                 /* this broker's node id (0) */
    bool auto_create_topics;         /* auto.create.topics.enable (true) */
    uint32_t num_partitions;         /* partitions of auto-created topics (1) */
    bool kafka_sasl;                 /* require SASL PLAIN (default user) before other requests */
    uint32_t max_request_bytes;      /* socket.request.max.bytes (104857600) */
    bool sendfile;                   /* fetched records go out with sendfile(2) (false: copied) */
    uint64_t producer_expiration_ms; /* producer.id.expiration.ms (86400000) */
    uint32_t producer_expiration_check_ms; /* its check interval (600000) */
};

/* What main() should do after config_parse() succeeds. */
enum config_action {
    CONFIG_ACTION_RUN,
    CONFIG_ACTION_HELP,
    CONFIG_ACTION_VERSION,
};

/* Fills cfg with the defaults. Allocates (aborts on out-of-memory); release with config_fini. */
void config_init(struct config *cfg);
/* Frees the strings cfg owns. cfg may then be config_init()ed again. */
void config_fini(struct config *cfg);

/*
 * Parses a whole command line (argv[0] is the program name and is skipped): finds --config
 * and loads that file, then applies every other option in order. Stops at the first --help
 * or --version and reports it in *action without loading anything.
 * Returns 0, or -EINVAL (unknown option, missing or bad value, bad file line) or -errno (the
 * file cannot be read) with a message in err. On error cfg holds whatever was set before the
 * failing option and still needs config_fini.
 */
int config_parse(struct config *cfg, int argc, char *const argv[], enum config_action *action,
                 char *err, size_t errlen);

/*
 * Applies the config file at path: `key = value` lines, blank lines and `#` comments (a line
 * starting with `#`, or ` #` after a value). Returns 0, -EINVAL with "PATH:LINE: ..." in err
 * for an unknown key or a bad line or value, or -errno when the file cannot be read.
 */
int config_load_file(struct config *cfg, const char *path, char *err, size_t errlen);

/*
 * Sets one option by name (without dashes, as in the file: "data-dir"). Returns 0, -ENOENT for
 * an unknown name (or "config", which only the command line takes) or -EINVAL for a bad value;
 * on error writes the reason (without the option's name) into err.
 */
int config_set(struct config *cfg, const char *name, const char *value, char *err, size_t errlen);

/* Writes the fsync setting as the option spells it ("always", "never", "interval:100") into
 * buf and returns buf. */
const char *config_fsync_str(const struct config *cfg, char *buf, size_t len);

/* Writes the usage text, listing every option with its default, to f. */
void config_usage(FILE *f);

/* store_config_default(), then the data dir, fsync, segment and checkpoint settings of cfg;
 * tick_ms is lowered to the fsync or checkpoint interval when either is shorter.
 * out->data_dir borrows cfg->data_dir: cfg must outlive every use of out. */
void config_to_store(const struct config *cfg, struct store_config *out);

#endif
