/*
 * config.c - ternd's command-line options and config file.
 *
 * One table lists every option: its name, what --help prints, and the setter that checks and
 * stores its value. The command line is read twice: the first pass checks that every argument
 * is a known option with its value, stops at --help or --version and finds --config; the file
 * is then applied, and the second pass applies the command line on top of it.
 */
#include "server/config.h"

#include "base/tern.h"
#include "broker/stream.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

/* A setter checks value and stores it; on a bad value it returns -EINVAL and points *why at
 * a static reason. */
typedef int (*config_setter)(struct config *cfg, const char *value, const char **why);

enum config_kind {
    CONFIG_KIND_VALUE,   /* --name VALUE, also a file key */
    CONFIG_KIND_FILE,    /* --config FILE: command line only */
    CONFIG_KIND_HELP,    /* no value */
    CONFIG_KIND_VERSION, /* no value */
};

struct config_option {
    const char *name;
    enum config_kind kind;
    const char *metavar;
    const char *help;
    const char *default_text; /* NULL: no default to show */
    config_setter set;
};

/* A command-line argument split into its option and value (NULL for flags). */
struct config_arg {
    const struct config_option *opt;
    const char *value;
};

static void replace_str(char **dst, const char *value)
{
    free(*dst);
    *dst = tern_xstrdup(value);
}

/* Decimal digits only (no sign, no spaces), between min and max. */
static int parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
    if (!isdigit((unsigned char)s[0]))
        return -EINVAL;
    errno = 0;
    char *end;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno != 0 || *end != '\0' || v < min || v > max)
        return -EINVAL;
    *out = v;
    return 0;
}

static int set_data_dir(struct config *cfg, const char *value, const char **why)
{
    if (value[0] == '\0') {
        *why = "expected a directory path";
        return -EINVAL;
    }
    replace_str(&cfg->data_dir, value);
    return 0;
}

static int set_bind(struct config *cfg, const char *value, const char **why)
{
    unsigned char addr[sizeof(struct in6_addr)];
    if (inet_pton(AF_INET, value, addr) != 1 && inet_pton(AF_INET6, value, addr) != 1) {
        *why = "expected an IPv4 or IPv6 address";
        return -EINVAL;
    }
    replace_str(&cfg->bind, value);
    return 0;
}

static int set_port(uint16_t *port, const char *value, const char **why)
{
    uint64_t v;
    if (parse_u64(value, 0, 65535, &v) < 0) {
        *why = "expected a port number from 0 to 65535 (0: any free port)";
        return -EINVAL;
    }
    *port = (uint16_t)v;
    return 0;
}

static int set_amqp_port(struct config *cfg, const char *value, const char **why)
{
    return set_port(&cfg->amqp_port, value, why);
}

static int set_kafka_port(struct config *cfg, const char *value, const char **why)
{
    return set_port(&cfg->kafka_port, value, why);
}

static int set_http_port(struct config *cfg, const char *value, const char **why)
{
    return set_port(&cfg->http_port, value, why);
}

static int set_fsync(struct config *cfg, const char *value, const char **why)
{
    static const char interval[] = "interval:";
    uint64_t ms;
    if (strcmp(value, "always") == 0) {
        cfg->fsync_mode = LOG_FSYNC_ALWAYS;
        cfg->fsync_interval_ms = 0;
    } else if (strcmp(value, "never") == 0) {
        cfg->fsync_mode = LOG_FSYNC_NEVER;
        cfg->fsync_interval_ms = 0;
    } else if (strncmp(value, interval, sizeof(interval) - 1) == 0) {
        if (parse_u64(value + sizeof(interval) - 1, 1, UINT32_MAX, &ms) < 0) {
            *why = "expected interval:MS with MS a positive number of milliseconds";
            return -EINVAL;
        }
        cfg->fsync_mode = LOG_FSYNC_INTERVAL;
        cfg->fsync_interval_ms = (uint32_t)ms;
    } else {
        *why = "expected always, never or interval:MS";
        return -EINVAL;
    }
    return 0;
}

static int set_log_level(struct config *cfg, const char *value, const char **why)
{
    if (tlog_parse_level(value, &cfg->log_level) < 0) {
        *why = "expected debug, info, warn or error";
        return -EINVAL;
    }
    return 0;
}

static int set_segment_bytes(struct config *cfg, const char *value, const char **why)
{
    if (parse_u64(value, CONFIG_MIN_SEGMENT_BYTES, CONFIG_MAX_SEGMENT_BYTES, &cfg->segment_bytes) <
        0) {
        *why = "expected a number of bytes from 4096 to " CONFIG_MAX_SEGMENT_BYTES_TEXT;
        return -EINVAL;
    }
    return 0;
}

static int set_log_cache_bytes(struct config *cfg, const char *value, const char **why)
{
    if (parse_u64(value, 0, UINT64_MAX, &cfg->log_cache_bytes) < 0) {
        *why = "expected a number of bytes (0: keep everything)";
        return -EINVAL;
    }
    return 0;
}

static int set_checkpoint_interval_ms(struct config *cfg, const char *value, const char **why)
{
    uint64_t ms;
    if (parse_u64(value, 1, UINT32_MAX, &ms) < 0) {
        *why = "expected a positive number of milliseconds";
        return -EINVAL;
    }
    cfg->checkpoint_interval_ms = (uint32_t)ms;
    return 0;
}

static int set_str(char **dst, const char *value, const char **why)
{
    if (value[0] == '\0' || strlen(value) > 255) {
        *why = "expected 1 to 255 characters";
        return -EINVAL;
    }
    free(*dst);
    *dst = tern_xstrdup(value);
    return 0;
}

static int set_default_user(struct config *cfg, const char *value, const char **why)
{
    return set_str(&cfg->default_user, value, why);
}

static int set_default_pass(struct config *cfg, const char *value, const char **why)
{
    return set_str(&cfg->default_pass, value, why);
}

static int set_u32(uint32_t *dst, const char *value, uint64_t min, uint64_t max, const char *what,
                   const char **why)
{
    uint64_t v;
    if (parse_u64(value, min, max, &v) < 0) {
        *why = what;
        return -EINVAL;
    }
    *dst = (uint32_t)v;
    return 0;
}

static int set_group_commit_ms(struct config *cfg, const char *value, const char **why)
{
    return set_u32(&cfg->group_commit_ms, value, 0, 1000, "expected 0 to 1000 milliseconds", why);
}

static int set_bool(bool *dst, const char *value, const char **why)
{
    if (strcmp(value, "true") == 0 || strcmp(value, "1") == 0 || strcmp(value, "yes") == 0)
        *dst = true;
    else if (strcmp(value, "false") == 0 || strcmp(value, "0") == 0 || strcmp(value, "no") == 0)
        *dst = false;
    else {
        *why = "expected true or false";
        return -EINVAL;
    }
    return 0;
}

static int set_advertised_host(struct config *cfg, const char *value, const char **why)
{
    return set_str(&cfg->advertised_host, value, why);
}

static int set_advertised_port(struct config *cfg, const char *value, const char **why)
{
    return set_port(&cfg->advertised_port, value, why);
}

static int set_node_id(struct config *cfg, const char *value, const char **why)
{
    uint32_t v;
    int rc = set_u32(&v, value, 0, INT32_MAX, "expected a node id from 0 to 2147483647", why);
    if (rc == 0)
        cfg->node_id = (int32_t)v;
    return rc;
}

static int set_sendfile(struct config *cfg, const char *value, const char **why)
{
    return set_bool(&cfg->sendfile, value, why);
}

static int set_auto_create_topics(struct config *cfg, const char *value, const char **why)
{
    return set_bool(&cfg->auto_create_topics, value, why);
}

static int set_num_partitions(struct config *cfg, const char *value, const char **why)
{
    return set_u32(&cfg->num_partitions, value, 1, 10000, "expected 1 to 10000 partitions", why);
}

static int set_kafka_sasl(struct config *cfg, const char *value, const char **why)
{
    return set_bool(&cfg->kafka_sasl, value, why);
}

static int set_max_request_bytes(struct config *cfg, const char *value, const char **why)
{
    return set_u32(&cfg->max_request_bytes, value, 65536, INT32_MAX,
                   "expected 65536 to 2147483647 bytes", why);
}

static int set_heartbeat(struct config *cfg, const char *value, const char **why)
{
    return set_u32(&cfg->heartbeat_s, value, 0, 65535, "expected seconds from 0 to 65535", why);
}

static int set_frame_max(struct config *cfg, const char *value, const char **why)
{
    return set_u32(&cfg->frame_max, value, 4096, 16777216, "expected bytes from 4096 to 16777216",
                   why);
}

static int set_channel_max(struct config *cfg, const char *value, const char **why)
{
    uint32_t v;
    int rc = set_u32(&v, value, 1, 65535, "expected a number from 1 to 65535", why);
    if (rc == 0)
        cfg->channel_max = (uint16_t)v;
    return rc;
}

static int set_u64(uint64_t *dst, const char *value, uint64_t min, uint64_t max, const char *what,
                   const char **why)
{
    if (parse_u64(value, min, max, dst) < 0) {
        *why = what;
        return -EINVAL;
    }
    return 0;
}

static int set_producer_expiration_ms(struct config *cfg, const char *value, const char **why)
{
    return set_u64(&cfg->producer_expiration_ms, value, 1, INT32_MAX * (uint64_t)1000,
                   "expected 1 to 2147483647000 milliseconds", why);
}

static int set_producer_expiration_check_ms(struct config *cfg, const char *value, const char **why)
{
    return set_u32(&cfg->producer_expiration_check_ms, value, 1, INT32_MAX,
                   "expected 1 to 2147483647 milliseconds", why);
}

static int set_log_cleaner_interval_ms(struct config *cfg, const char *value, const char **why)
{
    return set_u32(&cfg->log_cleaner_interval_ms, value, 1, UINT32_MAX,
                   "expected a positive number of milliseconds", why);
}

static int set_max_message_size(struct config *cfg, const char *value, const char **why)
{
    return set_u64(&cfg->max_message_size, value, 1, 536870912,
                   "expected bytes from 1 to 536870912", why);
}

static int set_max_connections(struct config *cfg, const char *value, const char **why)
{
    return set_u32(&cfg->max_connections, value, 0, UINT32_MAX, "expected a number (0: unlimited)",
                   why);
}

static int set_handshake_timeout_ms(struct config *cfg, const char *value, const char **why)
{
    return set_u32(&cfg->handshake_timeout_ms, value, 1, UINT32_MAX,
                   "expected a positive number of milliseconds", why);
}

static int set_memory_high_watermark(struct config *cfg, const char *value, const char **why)
{
    return set_u64(&cfg->memory_high_watermark, value, 1, UINT64_MAX,
                   "expected a positive number of bytes", why);
}

#define CONFIG_STR2(x) #x
#define CONFIG_STR(x) CONFIG_STR2(x)

static const struct config_option config_options[] = {
    {"config", CONFIG_KIND_FILE, "FILE", "read `name = value` lines from FILE first", NULL, NULL},
    {"data-dir", CONFIG_KIND_VALUE, "DIR", "data directory, created if missing",
     CONFIG_DEFAULT_DATA_DIR, set_data_dir},
    {"bind", CONFIG_KIND_VALUE, "ADDR", "IPv4 or IPv6 address to listen on", CONFIG_DEFAULT_BIND,
     set_bind},
    {"amqp-port", CONFIG_KIND_VALUE, "N", "AMQP 0-9-1 port (0: any free port)",
     CONFIG_STR(CONFIG_DEFAULT_AMQP_PORT), set_amqp_port},
    {"kafka-port", CONFIG_KIND_VALUE, "N", "Kafka port (0: any free port)",
     CONFIG_STR(CONFIG_DEFAULT_KAFKA_PORT), set_kafka_port},
    {"http-port", CONFIG_KIND_VALUE, "N", "HTTP management port (0: any free port)",
     CONFIG_STR(CONFIG_DEFAULT_HTTP_PORT), set_http_port},
    {"fsync", CONFIG_KIND_VALUE, "MODE", "always, never or interval:MS (fsync every MS ms)",
     "always", set_fsync},
    {"log-level", CONFIG_KIND_VALUE, "LEVEL", "debug, info, warn or error", "info", set_log_level},
    {"segment-bytes", CONFIG_KIND_VALUE, "N",
     "log segment size, 4096 to " CONFIG_MAX_SEGMENT_BYTES_TEXT, "1073741824", set_segment_bytes},
    {"checkpoint-interval-ms", CONFIG_KIND_VALUE, "N",
     "how often each log's checkpoint is made durable", "1000", set_checkpoint_interval_ms},
    {"group-commit-ms", CONFIG_KIND_VALUE, "N",
     "fsync always: least time between two small fsyncs of one log (0: back to back)",
     CONFIG_STR(CONFIG_DEFAULT_GROUP_COMMIT_MS), set_group_commit_ms},
    {"log-cache-bytes", CONFIG_KIND_VALUE, "N",
     "page cache kept for the newest bytes of each log; older bytes are dropped from it once "
     "fsynced (0: keep everything)",
     "1073741824", set_log_cache_bytes},
    {"log-cleaner-interval-ms", CONFIG_KIND_VALUE, "N",
     "how often compacted topics are checked for a compaction pass", "15000",
     set_log_cleaner_interval_ms},
    {"default-user", CONFIG_KIND_VALUE, "NAME",
     "AMQP user created at start (guest may log in only from loopback)", "guest", set_default_user},
    {"default-pass", CONFIG_KIND_VALUE, "PASS", "password of the default user", "guest",
     set_default_pass},
    {"heartbeat", CONFIG_KIND_VALUE, "S", "AMQP heartbeat proposed to clients (0: off)",
     CONFIG_STR(CONFIG_DEFAULT_HEARTBEAT_S), set_heartbeat},
    {"frame-max", CONFIG_KIND_VALUE, "N", "largest AMQP frame proposed to clients",
     CONFIG_STR(CONFIG_DEFAULT_FRAME_MAX), set_frame_max},
    {"channel-max", CONFIG_KIND_VALUE, "N", "AMQP channels per connection",
     CONFIG_STR(CONFIG_DEFAULT_CHANNEL_MAX), set_channel_max},
    {"max-message-size", CONFIG_KIND_VALUE, "N", "largest message body accepted, in bytes",
     "16777216", set_max_message_size},
    {"max-connections", CONFIG_KIND_VALUE, "N", "AMQP connections accepted (0: unlimited)", "0",
     set_max_connections},
    {"handshake-timeout-ms", CONFIG_KIND_VALUE, "N", "time a client has to open its connection",
     CONFIG_STR(CONFIG_DEFAULT_HANDSHAKE_TIMEOUT_MS), set_handshake_timeout_ms},
    {"memory-high-watermark", CONFIG_KIND_VALUE, "N",
     "buffered bytes above which publishing connections are blocked", "1073741824",
     set_memory_high_watermark},
    {"advertised-host", CONFIG_KIND_VALUE, "HOST",
     "Kafka: host clients are told to connect to (default: the bind address)", NULL,
     set_advertised_host},
    {"advertised-port", CONFIG_KIND_VALUE, "N", "Kafka: port clients are told (0: the Kafka port)",
     "0", set_advertised_port},
    {"node-id", CONFIG_KIND_VALUE, "N", "Kafka: this broker's node id", "0", set_node_id},
    {"auto-create-topics", CONFIG_KIND_VALUE, "BOOL",
     "Kafka: create unknown topics on Metadata and Produce", "true", set_auto_create_topics},
    {"num-partitions", CONFIG_KIND_VALUE, "N", "Kafka: partitions of auto-created topics", "1",
     set_num_partitions},
    {"producer-id-expiration-ms", CONFIG_KIND_VALUE, "N",
     "Kafka: forget an idempotent producer whose newest batch is this old", "86400000",
     set_producer_expiration_ms},
    {"producer-id-expiration-check-ms", CONFIG_KIND_VALUE, "N",
     "Kafka: how often producers are checked for expiration", "600000",
     set_producer_expiration_check_ms},
    {"kafka-sasl", CONFIG_KIND_VALUE, "BOOL",
     "Kafka: require SASL PLAIN with the default user before other requests", "false",
     set_kafka_sasl},
    {"max-request-bytes", CONFIG_KIND_VALUE, "N", "Kafka: largest request accepted", "104857600",
     set_max_request_bytes},
    {"sendfile", CONFIG_KIND_VALUE, "BOOL",
     "Kafka: send fetched records with sendfile(2) instead of copying them through a small buffer",
     "false", set_sendfile},
    {"help", CONFIG_KIND_HELP, NULL, "print this help and exit", NULL, NULL},
    {"version", CONFIG_KIND_VERSION, NULL, "print the version and exit", NULL, NULL},
};

static const struct config_option *find_option(const char *name, size_t len)
{
    for (size_t i = 0; i < TERN_ARRAY_LEN(config_options); i++) {
        const struct config_option *o = &config_options[i];
        if (strlen(o->name) == len && strncmp(o->name, name, len) == 0)
            return o;
    }
    return NULL;
}

void config_init(struct config *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->data_dir = tern_xstrdup(CONFIG_DEFAULT_DATA_DIR);
    cfg->bind = tern_xstrdup(CONFIG_DEFAULT_BIND);
    cfg->config_file = NULL;
    cfg->amqp_port = CONFIG_DEFAULT_AMQP_PORT;
    cfg->kafka_port = CONFIG_DEFAULT_KAFKA_PORT;
    cfg->http_port = CONFIG_DEFAULT_HTTP_PORT;
    cfg->fsync_mode = LOG_FSYNC_ALWAYS;
    cfg->fsync_interval_ms = 0;
    cfg->log_level = TLOG_LEVEL_INFO;
    cfg->segment_bytes = CONFIG_DEFAULT_SEGMENT_BYTES;
    cfg->checkpoint_interval_ms = CONFIG_DEFAULT_CHECKPOINT_INTERVAL_MS;
    cfg->group_commit_ms = CONFIG_DEFAULT_GROUP_COMMIT_MS;
    cfg->log_cache_bytes = CONFIG_DEFAULT_LOG_CACHE_BYTES;
    cfg->log_cleaner_interval_ms = CONFIG_DEFAULT_LOG_CLEANER_INTERVAL_MS;
    cfg->default_user = tern_xstrdup("guest");
    cfg->default_pass = tern_xstrdup("guest");
    cfg->heartbeat_s = CONFIG_DEFAULT_HEARTBEAT_S;
    cfg->frame_max = CONFIG_DEFAULT_FRAME_MAX;
    cfg->channel_max = CONFIG_DEFAULT_CHANNEL_MAX;
    cfg->max_message_size = CONFIG_DEFAULT_MAX_MESSAGE_SIZE;
    cfg->max_connections = 0;
    cfg->handshake_timeout_ms = CONFIG_DEFAULT_HANDSHAKE_TIMEOUT_MS;
    cfg->memory_high_watermark = CONFIG_DEFAULT_MEMORY_HIGH_WATERMARK;
    cfg->auto_create_topics = true;
    cfg->num_partitions = 1;
    cfg->max_request_bytes = 104857600;
    cfg->producer_expiration_ms = STREAM_PRODUCER_EXPIRATION_MS;
    cfg->producer_expiration_check_ms = STREAM_PRODUCER_EXPIRATION_CHECK_MS;
}

void config_fini(struct config *cfg)
{
    free(cfg->data_dir);
    free(cfg->bind);
    free(cfg->config_file);
    free(cfg->default_user);
    free(cfg->default_pass);
    free(cfg->advertised_host);
    cfg->data_dir = cfg->bind = cfg->config_file = NULL;
    cfg->default_user = cfg->default_pass = NULL;
}

int config_set(struct config *cfg, const char *name, const char *value, char *err, size_t errlen)
{
    const struct config_option *o = find_option(name, strlen(name));
    if (o == NULL || o->kind != CONFIG_KIND_VALUE) {
        snprintf(err, errlen, "unknown option");
        return -ENOENT;
    }
    const char *why = "invalid value";
    if (o->set(cfg, value, &why) < 0) {
        snprintf(err, errlen, "%s", why);
        return -EINVAL;
    }
    return 0;
}

/*
 * Reads the option at argv[*i] (and its value, which may be the next argument, advancing *i).
 * Returns 0 or -EINVAL with a message in err.
 */
static int next_arg(int argc, char *const argv[], int *i, struct config_arg *a, char *err,
                    size_t errlen)
{
    const char *s = argv[*i];
    if (strncmp(s, "--", 2) != 0 || s[2] == '\0' || s[2] == '=') {
        snprintf(err, errlen, s[0] == '-' ? "unknown option '%s'" : "unexpected argument '%s'", s);
        return -EINVAL;
    }
    const char *name = s + 2;
    const char *eq = strchr(name, '=');
    size_t len = eq ? (size_t)(eq - name) : strlen(name);
    a->opt = find_option(name, len);
    a->value = NULL;
    if (a->opt == NULL) {
        snprintf(err, errlen, "unknown option '--%.*s'", (int)len, name);
        return -EINVAL;
    }
    bool wants_value = a->opt->kind == CONFIG_KIND_VALUE || a->opt->kind == CONFIG_KIND_FILE;
    if (!wants_value) {
        if (eq != NULL) {
            snprintf(err, errlen, "option --%s takes no value", a->opt->name);
            return -EINVAL;
        }
        return 0;
    }
    if (eq != NULL) {
        a->value = eq + 1;
    } else if (*i + 1 < argc && strncmp(argv[*i + 1], "--", 2) != 0) {
        a->value = argv[++*i];
    } else {
        snprintf(err, errlen, "missing value for --%s", a->opt->name);
        return -EINVAL;
    }
    return 0;
}

/* First pass: checks the syntax of every argument, stops at --help or --version and returns
 * the last --config value in *file (NULL if none). */
static int scan_args(int argc, char *const argv[], enum config_action *action, const char **file,
                     char *err, size_t errlen)
{
    struct config_arg a;
    *file = NULL;
    for (int i = 1; i < argc; i++) {
        int rc = next_arg(argc, argv, &i, &a, err, errlen);
        if (rc < 0)
            return rc;
        if (a.opt->kind == CONFIG_KIND_HELP) {
            *action = CONFIG_ACTION_HELP;
            return 0;
        }
        if (a.opt->kind == CONFIG_KIND_VERSION) {
            *action = CONFIG_ACTION_VERSION;
            return 0;
        }
        if (a.opt->kind == CONFIG_KIND_FILE)
            *file = a.value;
    }
    return 0;
}

/* Second pass: applies every value option in order. The syntax was checked by scan_args. */
static int apply_args(struct config *cfg, int argc, char *const argv[], char *err, size_t errlen)
{
    struct config_arg a;
    char why[256];
    for (int i = 1; i < argc; i++) {
        int rc = next_arg(argc, argv, &i, &a, err, errlen);
        if (rc < 0)
            return rc;
        if (a.opt->kind != CONFIG_KIND_VALUE)
            continue;
        rc = config_set(cfg, a.opt->name, a.value, why, sizeof(why));
        if (rc < 0) {
            snprintf(err, errlen, "invalid value '%s' for --%s: %s", a.value, a.opt->name, why);
            return rc;
        }
    }
    return 0;
}

int config_parse(struct config *cfg, int argc, char *const argv[], enum config_action *action,
                 char *err, size_t errlen)
{
    const char *file;
    *action = CONFIG_ACTION_RUN;
    int rc = scan_args(argc, argv, action, &file, err, errlen);
    if (rc < 0 || *action != CONFIG_ACTION_RUN)
        return rc;
    if (file != NULL) {
        replace_str(&cfg->config_file, file);
        rc = config_load_file(cfg, file, err, errlen);
        if (rc < 0)
            return rc;
    }
    return apply_args(cfg, argc, argv, err, errlen);
}

/* Trims leading and trailing whitespace in place and returns the start. */
static char *trim(char *s)
{
    while (isspace((unsigned char)*s))
        s++;
    size_t n = strlen(s);
    while (n > 0 && isspace((unsigned char)s[n - 1]))
        s[--n] = '\0';
    return s;
}

/* Cuts a comment: `#` at the start of the line or after whitespace. */
static void strip_comment(char *line)
{
    for (char *p = line; *p != '\0'; p++) {
        if (*p == '#' && (p == line || isspace((unsigned char)p[-1]))) {
            *p = '\0';
            return;
        }
    }
}

static int parse_line(struct config *cfg, char *line, const char *path, unsigned lineno, char *err,
                      size_t errlen)
{
    strip_comment(line);
    char *s = trim(line);
    if (*s == '\0')
        return 0;
    char *eq = strchr(s, '=');
    if (eq == NULL) {
        snprintf(err, errlen, "%s:%u: expected 'key = value', got '%s'", path, lineno, s);
        return -EINVAL;
    }
    *eq = '\0';
    char *key = trim(s);
    char *value = trim(eq + 1);
    if (*key == '\0') {
        snprintf(err, errlen, "%s:%u: missing key before '='", path, lineno);
        return -EINVAL;
    }
    if (strcmp(key, "config") == 0) {
        snprintf(err, errlen, "%s:%u: key 'config' is only accepted on the command line", path,
                 lineno);
        return -EINVAL;
    }
    char why[256];
    int rc = config_set(cfg, key, value, why, sizeof(why));
    if (rc == -ENOENT) {
        snprintf(err, errlen, "%s:%u: unknown key '%s'", path, lineno, key);
        return -EINVAL;
    }
    if (rc < 0)
        snprintf(err, errlen, "%s:%u: invalid value '%s' for %s: %s", path, lineno, value, key,
                 why);
    return rc;
}

int config_load_file(struct config *cfg, const char *path, char *err, size_t errlen)
{
    char *line = NULL;
    size_t cap = 0;
    unsigned lineno = 0;
    int rc = 0;
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        rc = -errno;
        goto fail_read;
    }
    errno = 0;
    while (getline(&line, &cap, f) >= 0) {
        rc = parse_line(cfg, line, path, ++lineno, err, errlen);
        if (rc < 0)
            goto out;
    }
    if (ferror(f)) {
        rc = errno ? -errno : -EIO;
        goto fail_read;
    }
    goto out;
fail_read:
    snprintf(err, errlen, "cannot read config file '%s': %s", path, tern_strerror(rc));
out:
    free(line);
    if (f != NULL)
        fclose(f);
    return rc;
}

const char *config_fsync_str(const struct config *cfg, char *buf, size_t len)
{
    switch (cfg->fsync_mode) {
    case LOG_FSYNC_ALWAYS:
        snprintf(buf, len, "always");
        break;
    case LOG_FSYNC_NEVER:
        snprintf(buf, len, "never");
        break;
    case LOG_FSYNC_INTERVAL:
        snprintf(buf, len, "interval:%u", (unsigned)cfg->fsync_interval_ms);
        break;
    }
    return buf;
}

void config_usage(FILE *f)
{
    fprintf(f, "Usage: ternd [OPTION]...\n"
               "Runs the tern message broker in the foreground; logs go to stderr.\n\n"
               "Every option is also a `name = value` key of the --config file;\n"
               "the command line overrides the file.\n\n");
    for (size_t i = 0; i < TERN_ARRAY_LEN(config_options); i++) {
        const struct config_option *o = &config_options[i];
        char left[64];
        snprintf(left, sizeof(left), "--%s%s%s", o->name, o->metavar ? " " : "",
                 o->metavar ? o->metavar : "");
        fprintf(f, "  %-28s %s", left, o->help);
        if (o->default_text != NULL)
            fprintf(f, " (default: %s)", o->default_text);
        fprintf(f, "\n");
    }
}

void config_to_store(const struct config *cfg, struct store_config *out)
{
    store_config_default(out);
    out->data_dir = cfg->data_dir;
    out->log.fsync_mode = cfg->fsync_mode;
    if (cfg->fsync_mode == LOG_FSYNC_INTERVAL)
        out->log.fsync_interval_ms = cfg->fsync_interval_ms;
    out->log.segment_bytes = cfg->segment_bytes;
    out->log.checkpoint_interval_ms = cfg->checkpoint_interval_ms;
    out->log.sync_gap_ms = cfg->group_commit_ms;
    out->log.cache_bytes = cfg->log_cache_bytes;
    out->cleaner_interval_ms = cfg->log_cleaner_interval_ms;
    /* a queue stores one message per record: its batches must hold the largest message */
    if (out->log.max_batch_bytes < cfg->max_message_size + 65536)
        out->log.max_batch_bytes = (uint32_t)(cfg->max_message_size + 65536);
    /* The store's timer drives both intervals: tick at least as often as either. */
    if (cfg->fsync_mode == LOG_FSYNC_INTERVAL && cfg->fsync_interval_ms < out->tick_ms)
        out->tick_ms = cfg->fsync_interval_ms;
    if (cfg->checkpoint_interval_ms < out->tick_ms)
        out->tick_ms = cfg->checkpoint_interval_ms;
}
