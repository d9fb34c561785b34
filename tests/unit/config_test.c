/*
 * config_test.c - ternd's option and config-file parsing (src/server/config.c).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "server/config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define ARGV(...) ((char *const[]){"ternd", __VA_ARGS__})
#define ARGC(...) ((int)(sizeof((const char *[]){"ternd", __VA_ARGS__}) / sizeof(char *)))
/* Parses ternd's argv into a fresh config; the caller runs config_fini. */
#define PARSE(cfg, action, err, ...)                                                               \
    parse_args(cfg, action, err, ARGC(__VA_ARGS__), ARGV(__VA_ARGS__))

static int parse_args(struct config *cfg, enum config_action *action, char *err, int argc,
                      char *const argv[])
{
    config_init(cfg);
    err[0] = '\0';
    return config_parse(cfg, argc, argv, action, err, 512);
}

/* A temporary file holding text; the caller unlinks path. */
static void write_temp(char *path, size_t len, const char *text)
{
    const char *dir = getenv("TMPDIR");
    snprintf(path, len, "%s/config_test.XXXXXX", dir ? dir : "/tmp");
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    size_t n = strlen(text);
    assert_int_equal(write(fd, text, n), (ssize_t)n);
    close(fd);
}

/* The error message must contain every one of the given strings. */
static void assert_err_names(const char *err, const char *a, const char *b)
{
    if (strstr(err, a) == NULL || (b != NULL && strstr(err, b) == NULL))
        fail_msg("error message '%s' does not name '%s' and '%s'", err, a, b ? b : "");
}

static void test_defaults(void **state)
{
    (void)state;
    struct config cfg;
    enum config_action action;
    char err[512];
    assert_int_equal(parse_args(&cfg, &action, err, 1, ARGV(NULL)), 0);
    assert_int_equal(action, CONFIG_ACTION_RUN);
    assert_string_equal(cfg.data_dir, "./data");
    assert_string_equal(cfg.bind, "127.0.0.1");
    assert_null(cfg.config_file);
    assert_int_equal(cfg.amqp_port, 5672);
    assert_int_equal(cfg.kafka_port, 9092);
    assert_int_equal(cfg.http_port, 15672);
    assert_int_equal(cfg.fsync_mode, LOG_FSYNC_ALWAYS);
    assert_int_equal(cfg.log_level, TLOG_LEVEL_INFO);
    assert_int_equal(cfg.segment_bytes, 1073741824ULL);
    assert_int_equal(cfg.checkpoint_interval_ms, 1000);
    assert_true(cfg.log_cache_bytes == 1073741824ULL);
    assert_false(cfg.sendfile);
    config_fini(&cfg);
    assert_int_equal(PARSE(&cfg, &action, err, "--sendfile", "true"), 0);
    assert_true(cfg.sendfile);
    config_fini(&cfg);
}

static void test_producer_expiration(void **state)
{
    (void)state;
    struct config cfg;
    enum config_action action;
    char err[512];
    assert_int_equal(parse_args(&cfg, &action, err, 1, ARGV(NULL)), 0);
    assert_int_equal(cfg.producer_expiration_ms, 86400000);
    assert_int_equal(cfg.producer_expiration_check_ms, 600000);
    config_fini(&cfg);
    assert_int_equal(PARSE(&cfg, &action, err, "--producer-id-expiration-ms", "2147483647000",
                           "--producer-id-expiration-check-ms", "250"),
                     0);
    assert_int_equal(cfg.producer_expiration_ms, 2147483647000ULL);
    assert_int_equal(cfg.producer_expiration_check_ms, 250);
    config_fini(&cfg);
    assert_int_equal(PARSE(&cfg, &action, err, "--producer-id-expiration-ms", "0"), -EINVAL);
    assert_non_null(strstr(err, "producer-id-expiration-ms"));
    config_fini(&cfg);
    assert_int_equal(PARSE(&cfg, &action, err, "--producer-id-expiration-ms", "2147483647001"),
                     -EINVAL);
    config_fini(&cfg);
    assert_int_equal(PARSE(&cfg, &action, err, "--producer-id-expiration-check-ms", "0"), -EINVAL);
    config_fini(&cfg);
}

static void check_all_set(const struct config *cfg)
{
    assert_string_equal(cfg->data_dir, "/var/lib/tern");
    assert_string_equal(cfg->bind, "::1");
    assert_int_equal(cfg->amqp_port, 1);
    assert_int_equal(cfg->kafka_port, 0);
    assert_int_equal(cfg->http_port, 65535);
    assert_int_equal(cfg->fsync_mode, LOG_FSYNC_INTERVAL);
    assert_int_equal(cfg->fsync_interval_ms, 250);
    assert_int_equal(cfg->log_level, TLOG_LEVEL_DEBUG);
    assert_int_equal(cfg->segment_bytes, 4096);
    assert_int_equal(cfg->checkpoint_interval_ms, 5);
    assert_true(cfg->log_cache_bytes == 0);
    struct store_config sc;
    config_to_store(cfg, &sc);
    assert_true(sc.log.cache_bytes == 0);
}

static void test_every_option_separate_value(void **state)
{
    (void)state;
    struct config cfg;
    enum config_action action;
    char err[512];
    int rc = PARSE(&cfg, &action, err, "--data-dir", "/var/lib/tern", "--bind", "::1",
                   "--amqp-port", "1", "--kafka-port", "0", "--http-port", "65535", "--fsync",
                   "interval:250", "--log-level", "debug", "--segment-bytes", "4096",
                   "--checkpoint-interval-ms", "5", "--log-cache-bytes", "0");
    assert_int_equal(rc, 0);
    assert_int_equal(action, CONFIG_ACTION_RUN);
    check_all_set(&cfg);
    config_fini(&cfg);
}

static void test_every_option_equals_form(void **state)
{
    (void)state;
    struct config cfg;
    enum config_action action;
    char err[512];
    int rc =
        PARSE(&cfg, &action, err, "--data-dir=/var/lib/tern", "--bind=::1", "--amqp-port=1",
              "--kafka-port=0", "--http-port=65535", "--fsync=interval:250", "--log-level=debug",
              "--segment-bytes=4096", "--checkpoint-interval-ms=5", "--log-cache-bytes=0");
    assert_int_equal(rc, 0);
    check_all_set(&cfg);
    config_fini(&cfg);
}

static void test_every_option_from_file(void **state)
{
    (void)state;
    char path[256];
    write_temp(path, sizeof(path),
               "# ternd config\n"
               "\n"
               "data-dir = /var/lib/tern\n"
               "bind=::1\n"
               "  amqp-port\t=  1  \n"
               "kafka-port = 0 # any free port\n"
               "http-port = 65535\r\n"
               "fsync = interval:250\n"
               "log-level = debug\n"
               "segment-bytes = 4096\n"
               "checkpoint-interval-ms = 5\n"
               "log-cache-bytes = 0");
    struct config cfg;
    enum config_action action;
    char err[512];
    int rc = PARSE(&cfg, &action, err, "--config", path);
    unlink(path);
    assert_int_equal(rc, 0);
    check_all_set(&cfg);
    assert_string_equal(cfg.config_file, path);
    config_fini(&cfg);
}

static void test_last_value_wins(void **state)
{
    (void)state;
    struct config cfg;
    enum config_action action;
    char err[512];
    assert_int_equal(PARSE(&cfg, &action, err, "--fsync", "never", "--fsync=always"), 0);
    assert_int_equal(cfg.fsync_mode, LOG_FSYNC_ALWAYS);
    config_fini(&cfg);
}

static void test_command_line_overrides_file(void **state)
{
    (void)state;
    char path[256];
    write_temp(path, sizeof(path), "data-dir = /from/file\nfsync = never\nhttp-port = 1\n");
    struct config cfg;
    enum config_action action;
    char err[512];
    /* Options before --config still win over the file. */
    int rc =
        PARSE(&cfg, &action, err, "--data-dir", "/from/cli", "--config", path, "--http-port=2");
    assert_int_equal(rc, 0);
    assert_string_equal(cfg.data_dir, "/from/cli");
    assert_int_equal(cfg.http_port, 2);
    assert_int_equal(cfg.fsync_mode, LOG_FSYNC_NEVER); /* from the file */
    config_fini(&cfg);

    rc = PARSE(&cfg, &action, err,
               "--config="
               "/nonexistent-placeholder",
               "--config", path, "--fsync", "always");
    unlink(path);
    assert_int_equal(rc, 0); /* the last --config is the one read */
    assert_string_equal(cfg.data_dir, "/from/file");
    assert_int_equal(cfg.fsync_mode, LOG_FSYNC_ALWAYS);
    config_fini(&cfg);
}

static void test_help_and_version(void **state)
{
    (void)state;
    struct config cfg;
    enum config_action action;
    char err[512];
    assert_int_equal(PARSE(&cfg, &action, err, "--help"), 0);
    assert_int_equal(action, CONFIG_ACTION_HELP);
    config_fini(&cfg);
    assert_int_equal(PARSE(&cfg, &action, err, "--version"), 0);
    assert_int_equal(action, CONFIG_ACTION_VERSION);
    config_fini(&cfg);
    /* --help wins over a config file that cannot be read. */
    assert_int_equal(PARSE(&cfg, &action, err, "--config", "/nonexistent/x.conf", "--help"), 0);
    assert_int_equal(action, CONFIG_ACTION_HELP);
    config_fini(&cfg);
    assert_int_equal(PARSE(&cfg, &action, err, "--help=yes"), -EINVAL);
    assert_err_names(err, "--help", NULL);
    config_fini(&cfg);
}

static void test_unknown_option(void **state)
{
    (void)state;
    struct config cfg;
    enum config_action action;
    char err[512];
    assert_int_equal(PARSE(&cfg, &action, err, "--bogus"), -EINVAL);
    assert_err_names(err, "unknown option", "'--bogus'");
    config_fini(&cfg);
    assert_int_equal(PARSE(&cfg, &action, err, "--data-dir", "/d", "--nope=3"), -EINVAL);
    assert_err_names(err, "unknown option", "'--nope'");
    config_fini(&cfg);
    assert_int_equal(PARSE(&cfg, &action, err, "-d"), -EINVAL);
    assert_err_names(err, "unknown option", "'-d'");
    config_fini(&cfg);
    assert_int_equal(PARSE(&cfg, &action, err, "stray"), -EINVAL);
    assert_err_names(err, "unexpected argument", "'stray'");
    config_fini(&cfg);
    /* "config" is a command-line option only: config_set does not take it. */
    config_init(&cfg);
    assert_int_equal(config_set(&cfg, "config", "/x", err, sizeof(err)), -ENOENT);
    assert_int_equal(config_set(&cfg, "help", "", err, sizeof(err)), -ENOENT);
    config_fini(&cfg);
}

static void test_missing_value(void **state)
{
    (void)state;
    struct config cfg;
    enum config_action action;
    char err[512];
    assert_int_equal(PARSE(&cfg, &action, err, "--data-dir"), -EINVAL);
    assert_err_names(err, "missing value", "--data-dir");
    config_fini(&cfg);
    assert_int_equal(PARSE(&cfg, &action, err, "--fsync", "--data-dir", "/d"), -EINVAL);
    assert_err_names(err, "missing value", "--fsync");
    config_fini(&cfg);
    assert_int_equal(PARSE(&cfg, &action, err, "--config"), -EINVAL);
    assert_err_names(err, "missing value", "--config");
    config_fini(&cfg);
}

struct bad_case {
    const char *option;
    const char *value;
};

static const struct bad_case bad_cases[] = {
    {"data-dir", ""},
    {"bind", "localhost"},
    {"bind", "256.0.0.1"},
    {"bind", "1.2.3"},
    {"bind", "[::1]"},
    {"bind", "::g"},
    {"bind", " 127.0.0.1"},
    {"bind", ""},
    {"amqp-port", "65536"},
    {"amqp-port", "-1"},
    {"amqp-port", "+80"},
    {"amqp-port", " 80"},
    {"amqp-port", "80x"},
    {"amqp-port", ""},
    {"kafka-port", "99999999999999999999999"},
    {"kafka-port", "0x10"},
    {"http-port", "http"},
    {"fsync", "bogus"},
    {"fsync", "Always"},
    {"fsync", "interval"},
    {"fsync", "interval:"},
    {"fsync", "interval:0"},
    {"fsync", "interval:-5"},
    {"fsync", "interval:10ms"},
    {"fsync", "interval:4294967296"},
    {"fsync", ""},
    {"log-level", "verbose"},
    {"log-level", "INFO"},
    {"log-level", ""},
    {"segment-bytes", "4095"},
    {"segment-bytes", "0"},
    {"segment-bytes", "4294967296"},
    {"segment-bytes", "1G"},
    {"segment-bytes", "-4096"},
    {"checkpoint-interval-ms", "0"},
    {"checkpoint-interval-ms", "4294967296"},
    {"checkpoint-interval-ms", "1.5"},
    {"log-cache-bytes", "-1"},
    {"log-cache-bytes", "1G"},
    {"log-cache-bytes", ""},
};

static void test_bad_values_on_command_line(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(bad_cases) / sizeof(bad_cases[0]); i++) {
        const struct bad_case *c = &bad_cases[i];
        char arg[128], opt[64], quoted[96];
        snprintf(arg, sizeof(arg), "--%s=%s", c->option, c->value);
        snprintf(opt, sizeof(opt), "for --%s:", c->option);
        snprintf(quoted, sizeof(quoted), "invalid value '%s'", c->value);
        struct config cfg;
        enum config_action action;
        char err[512];
        int rc = PARSE(&cfg, &action, err, arg);
        if (rc != -EINVAL)
            fail_msg("%s: expected -EINVAL, got %d", arg, rc);
        assert_err_names(err, quoted, opt);
        config_fini(&cfg);
    }
}

static void test_bad_values_via_config_set(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(bad_cases) / sizeof(bad_cases[0]); i++) {
        const struct bad_case *c = &bad_cases[i];
        struct config cfg;
        char err[512] = "";
        config_init(&cfg);
        if (config_set(&cfg, c->option, c->value, err, sizeof(err)) != -EINVAL)
            fail_msg("%s='%s' was accepted", c->option, c->value);
        assert_true(strlen(err) > 0);
        config_fini(&cfg);
    }
}

static void test_fsync_message_lists_choices(void **state)
{
    (void)state;
    struct config cfg;
    enum config_action action;
    char err[512];
    assert_int_equal(PARSE(&cfg, &action, err, "--fsync", "bogus"), -EINVAL);
    assert_string_equal(err, "invalid value 'bogus' for --fsync: expected always, never or "
                             "interval:MS");
    config_fini(&cfg);
}

static void test_good_values(void **state)
{
    (void)state;
    static const char *const good[][2] = {
        {"bind", "0.0.0.0"},
        {"bind", "::"},
        {"bind", "fe80::1"},
        {"bind", "2001:db8::1"},
        {"bind", "::ffff:1.2.3.4"},
        {"amqp-port", "0"},
        {"amqp-port", "65535"},
        {"amqp-port", "00080"},
        {"log-level", "info"},
        {"log-level", "warn"},
        {"log-level", "error"},
        {"segment-bytes", "4294967295"},
        {"checkpoint-interval-ms", "4294967295"},
        {"data-dir", "relative/dir"},
        {"fsync", "interval:1"},
        {"fsync", "interval:4294967295"},
    };
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        struct config cfg;
        char err[512] = "";
        config_init(&cfg);
        if (config_set(&cfg, good[i][0], good[i][1], err, sizeof(err)) != 0)
            fail_msg("%s='%s' was refused: %s", good[i][0], good[i][1], err);
        config_fini(&cfg);
    }
}

static void test_fsync_modes(void **state)
{
    (void)state;
    struct config cfg;
    char err[512], buf[32];
    config_init(&cfg);
    assert_string_equal(config_fsync_str(&cfg, buf, sizeof(buf)), "always");
    assert_int_equal(config_set(&cfg, "fsync", "interval:1", err, sizeof(err)), 0);
    assert_int_equal(cfg.fsync_mode, LOG_FSYNC_INTERVAL);
    assert_int_equal(cfg.fsync_interval_ms, 1);
    assert_string_equal(config_fsync_str(&cfg, buf, sizeof(buf)), "interval:1");
    assert_int_equal(config_set(&cfg, "fsync", "interval:4294967295", err, sizeof(err)), 0);
    assert_int_equal(cfg.fsync_interval_ms, UINT32_MAX);
    assert_int_equal(config_set(&cfg, "fsync", "never", err, sizeof(err)), 0);
    assert_int_equal(cfg.fsync_mode, LOG_FSYNC_NEVER);
    assert_int_equal(cfg.fsync_interval_ms, 0);
    assert_string_equal(config_fsync_str(&cfg, buf, sizeof(buf)), "never");
    /* A refused value leaves the previous one. */
    assert_int_equal(config_set(&cfg, "fsync", "interval:0", err, sizeof(err)), -EINVAL);
    assert_int_equal(cfg.fsync_mode, LOG_FSYNC_NEVER);
    config_fini(&cfg);
}

/* Loads text as a config file; returns config_load_file's result with err filled. */
static int load_text(struct config *cfg, const char *text, char *path, size_t pathlen, char *err)
{
    write_temp(path, pathlen, text);
    config_init(cfg);
    err[0] = '\0';
    int rc = config_load_file(cfg, path, err, 512);
    unlink(path);
    return rc;
}

/* Loads text as a config file and checks the error names "PATH:LINE:" and what. */
static void check_file_error(const char *text, unsigned line, const char *what)
{
    struct config cfg;
    char path[256], err[512], where[300];
    assert_int_equal(load_text(&cfg, text, path, sizeof(path), err), -EINVAL);
    snprintf(where, sizeof(where), "%s:%u: ", path, line);
    if (strncmp(err, where, strlen(where)) != 0)
        fail_msg("error message '%s' does not start with '%s'", err, where);
    assert_err_names(err, what, NULL);
    config_fini(&cfg);
}

static void test_file_errors_name_line_and_key(void **state)
{
    (void)state;
    check_file_error("# c\nbind = ::1\nwibble = 3\n", 3, "unknown key 'wibble'");
    check_file_error("\n\nfsync = sometimes\n", 3,
                     "invalid value 'sometimes' for fsync: expected always, never or interval:MS");
    check_file_error("data-dir /x\n", 1, "expected 'key = value'");
    check_file_error(" = /x\n", 1, "missing key");
    check_file_error("config = /other\n", 1, "key 'config'");
    check_file_error("--data-dir = /x\n", 1, "unknown key '--data-dir'");
    check_file_error("data-dir =\n", 1, "invalid value '' for data-dir");
    check_file_error("amqp-port = 5672\nhttp-port = 70000 # too big\n", 2,
                     "invalid value '70000' for http-port");
}

static void test_file_comments_and_values(void **state)
{
    (void)state;
    struct config cfg;
    char path[256], err[512];
    assert_int_equal(load_text(&cfg,
                               "#data-dir = /commented\n"
                               "   # indented comment\n"
                               "data-dir = /a#b # the # needs a space before it\n"
                               "data-dir = /c = d\n",
                               path, sizeof(path), err),
                     0);
    assert_string_equal(cfg.data_dir, "/c = d"); /* only the first '=' splits; last line wins */
    config_fini(&cfg);
    assert_int_equal(load_text(&cfg, "data-dir = /a#b # comment\n", path, sizeof(path), err), 0);
    assert_string_equal(cfg.data_dir, "/a#b");
    config_fini(&cfg);
    assert_int_equal(load_text(&cfg, "", path, sizeof(path), err), 0);
    assert_string_equal(cfg.data_dir, "./data");
    config_fini(&cfg);
}

static void test_unreadable_file(void **state)
{
    (void)state;
    struct config cfg;
    enum config_action action;
    char err[512];
    assert_int_equal(PARSE(&cfg, &action, err, "--config", "/nonexistent/tern.conf"), -ENOENT);
    assert_err_names(err, "/nonexistent/tern.conf", "No such file");
    config_fini(&cfg);
    assert_int_equal(PARSE(&cfg, &action, err, "--config=/"), -EISDIR);
    assert_err_names(err, "cannot read config file '/'", NULL);
    config_fini(&cfg);
}

static void test_file_error_through_parse(void **state)
{
    (void)state;
    char path[256], where[300];
    write_temp(path, sizeof(path), "log-level = loud\n");
    struct config cfg;
    enum config_action action;
    char err[512];
    /* The file is checked even when the command line sets the same key. */
    int rc = PARSE(&cfg, &action, err, "--log-level", "warn", "--config", path);
    unlink(path);
    assert_int_equal(rc, -EINVAL);
    snprintf(where, sizeof(where), "%s:1:", path);
    assert_err_names(err, where, "'loud' for log-level");
    config_fini(&cfg);
}

static void test_to_store(void **state)
{
    (void)state;
    struct config cfg;
    enum config_action action;
    char err[512];
    struct store_config def, sc;
    store_config_default(&def);

    assert_int_equal(PARSE(&cfg, &action, err, "--data-dir", "/d", "--fsync", "interval:7",
                           "--segment-bytes", "65536", "--checkpoint-interval-ms", "250"),
                     0);
    config_to_store(&cfg, &sc);
    assert_string_equal(sc.data_dir, "/d");
    assert_int_equal(sc.log.fsync_mode, LOG_FSYNC_INTERVAL);
    assert_int_equal(sc.log.fsync_interval_ms, 7);
    assert_int_equal(sc.log.segment_bytes, 65536);
    assert_int_equal(sc.log.checkpoint_interval_ms, 250);
    /* Everything else keeps the store's defaults. */
    assert_int_equal(sc.log.segment_ms, def.log.segment_ms);
    assert_int_equal(sc.log.index_interval_bytes, def.log.index_interval_bytes);
    /* a queue keeps one message per record: batches must hold the largest message */
    assert_int_equal(sc.log.max_batch_bytes, CONFIG_DEFAULT_MAX_MESSAGE_SIZE + 65536);
    assert_int_equal(sc.log.retention_ms, def.log.retention_ms);
    assert_int_equal(sc.log.retention_bytes, def.log.retention_bytes);
    assert_int_equal(sc.tick_ms, 7); /* the timer must fire at least every 7 ms */
    config_fini(&cfg);

    assert_int_equal(
        PARSE(&cfg, &action, err, "--checkpoint-interval-ms", "3", "--fsync", "interval:60000"), 0);
    config_to_store(&cfg, &sc);
    assert_int_equal(sc.log.fsync_interval_ms, 60000);
    assert_int_equal(sc.tick_ms, 3);
    config_fini(&cfg);

    assert_int_equal(PARSE(&cfg, &action, err, "--fsync", "never"), 0);
    config_to_store(&cfg, &sc);
    assert_string_equal(sc.data_dir, "./data");
    assert_int_equal(sc.log.fsync_mode, LOG_FSYNC_NEVER);
    assert_int_equal(sc.log.fsync_interval_ms, def.log.fsync_interval_ms);
    assert_int_equal(sc.log.segment_bytes, 1073741824ULL);
    assert_int_equal(sc.log.checkpoint_interval_ms, 1000);
    assert_int_equal(sc.tick_ms, def.tick_ms);
    config_fini(&cfg);
}

static void test_usage_lists_every_option(void **state)
{
    (void)state;
    static const char *const expected[] = {
        "--config FILE",
        "--data-dir DIR",
        "(default: ./data)",
        "--bind ADDR",
        "(default: 127.0.0.1)",
        "--amqp-port N",
        "(default: 5672)",
        "--kafka-port N",
        "(default: 9092)",
        "--http-port N",
        "(default: 15672)",
        "--fsync MODE",
        "(default: always)",
        "--log-level LEVEL",
        "(default: info)",
        "--segment-bytes N",
        "(default: 1073741824)",
        "--checkpoint-interval-ms N",
        "(default: 1000)",
        "--help",
        "--version",
    };
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    assert_non_null(f);
    config_usage(f);
    fclose(f);
    for (size_t i = 0; i < sizeof(expected) / sizeof(expected[0]); i++)
        if (strstr(text, expected[i]) == NULL)
            fail_msg("usage lacks '%s':\n%s", expected[i], text);
    free(text);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_producer_expiration),
        cmocka_unit_test(test_every_option_separate_value),
        cmocka_unit_test(test_every_option_equals_form),
        cmocka_unit_test(test_every_option_from_file),
        cmocka_unit_test(test_last_value_wins),
        cmocka_unit_test(test_command_line_overrides_file),
        cmocka_unit_test(test_help_and_version),
        cmocka_unit_test(test_unknown_option),
        cmocka_unit_test(test_missing_value),
        cmocka_unit_test(test_bad_values_on_command_line),
        cmocka_unit_test(test_bad_values_via_config_set),
        cmocka_unit_test(test_fsync_message_lists_choices),
        cmocka_unit_test(test_good_values),
        cmocka_unit_test(test_fsync_modes),
        cmocka_unit_test(test_file_errors_name_line_and_key),
        cmocka_unit_test(test_file_comments_and_values),
        cmocka_unit_test(test_unreadable_file),
        cmocka_unit_test(test_file_error_through_parse),
        cmocka_unit_test(test_to_store),
        cmocka_unit_test(test_usage_lists_every_option),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
