/*
 * cmd.c - helpers shared by the `tern` subcommands (see cmd.h).
 */
#include "cli/cmd.h"

#include "base/tern.h"
#include "base/tlog.h"
#include "store/store.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static volatile sig_atomic_t interrupted;

__attribute__((format(printf, 1, 0))) static void verror(const char *fmt, va_list ap)
{
    fputs("tern: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
}

void cmd_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    verror(fmt, ap);
    va_end(ap);
}

int cmd_usage_error(const char *name, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    verror(fmt, ap);
    va_end(ap);
    fprintf(stderr, "Try 'tern %s%s--help' for more information.\n", name ? name : "",
            name ? " " : "");
    return CMD_EXIT_USAGE;
}

int cmd_getopt(const char *name, int argc, char **argv, const char *shortopts,
               const struct option *longopts, bool *first)
{
    static char prog[64];
    if (*first) {
        snprintf(prog, sizeof(prog), "tern %s", name);
        argv[0] = prog;
        optind = 0; /* glibc: full reinitialisation, including permutation state */
        opterr = 1;
        *first = false;
    }
    return getopt_long(argc, argv, shortopts, longopts, NULL);
}

int cmd_parse_int64(const char *opt, const char *s, int64_t min, int64_t max, int64_t *out)
{
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (*s == '\0' || *end != '\0' || errno != 0 || v < min || v > max) {
        if (max == INT64_MAX)
            cmd_error("invalid value '%s' for %s: expected an integer >= %" PRId64, s, opt, min);
        else
            cmd_error("invalid value '%s' for %s: expected an integer from %" PRId64 " to %" PRId64,
                      s, opt, min, max);
        return -1;
    }
    *out = v;
    return 0;
}

void cmd_print_escaped(FILE *f, const uint8_t *s, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        uint8_t c = s[i];
        if (c == '\\')
            fputs("\\\\", f);
        else if (c >= 0x20 && c < 0x7f)
            fputc(c, f);
        else
            fprintf(f, "\\x%02x", c);
    }
}

static int check_dir_exists(const char *dir)
{
    struct stat sb;
    if (stat(dir, &sb) < 0) {
        if (errno == ENOENT)
            cmd_error("data directory %s does not exist", dir);
        else
            cmd_error("cannot access data directory %s: %s", dir, strerror(errno));
        return -1;
    }
    if (!S_ISDIR(sb.st_mode)) {
        cmd_error("data directory %s is not a directory", dir);
        return -1;
    }
    return 0;
}

/* The CLI reports what matters to the command itself (refused logs included); the store's
 * key=value lines are for ternd's log and --verbose. */
static void quiet_store_logs(void)
{
    int fd = open("/dev/null", O_WRONLY | O_CLOEXEC);
    if (fd >= 0)
        tlog_set_fd(fd); /* kept open for the life of the process */
}

int cmd_store_open(const char *dir, bool must_exist, bool verbose, struct store **out)
{
    if (must_exist && check_dir_exists(dir) < 0)
        return -1;
    if (verbose)
        tlog_set_level(TLOG_LEVEL_DEBUG);
    else
        quiet_store_logs();
    struct store_config cfg;
    store_config_default(&cfg);
    cfg.data_dir = dir;
    int rc = store_open(NULL, &cfg, out);
    if (rc == TERN_ELOCKED) {
        cmd_error("data directory %s is in use by another process", dir);
        return -1;
    }
    if (rc < 0) {
        cmd_error("cannot open data directory %s: %s", dir, tern_strerror(rc));
        return -1;
    }
    return 0;
}

static void on_signal(int sig)
{
    (void)sig;
    interrupted = 1;
}

void cmd_signals_init(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sigemptyset(&sa.sa_mask);
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sa.sa_handler = SIG_IGN;
    sigaction(SIGPIPE, &sa, NULL);
}

bool cmd_interrupted(void)
{
    return interrupted != 0;
}
