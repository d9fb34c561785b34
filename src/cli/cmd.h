/*
 * cmd.h - what every `tern` subcommand shares: exit codes, error messages, option parsing,
 * value escaping, and opening the data directory.
 *
 * Exit codes: 0 success, 1 the command failed (message on stderr), 2 bad usage (message naming
 * the bad command, option or value on stderr). Messages start with "tern: ".
 */
#ifndef TERN_CMD_H
#define TERN_CMD_H

#include <getopt.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

struct store;

enum {
    CMD_EXIT_OK = 0,
    CMD_EXIT_FAIL = 1,
    CMD_EXIT_USAGE = 2,
    CMD_EXIT_INTERRUPTED = 130,
};

/* Default data directory, as for ternd. */
#define CMD_DEFAULT_DATA_DIR "./data"

/* A command word and its runner: argv[0] is the word; returns the process exit code. */
struct cmd {
    const char *name;
    int (*run)(int argc, char **argv);
};

/* Prints "tern: <message>" to stderr. */
void cmd_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Prints "tern: <message>" and a hint to run `tern <name> --help` to stderr; returns
 * CMD_EXIT_USAGE. name may be NULL (then the hint names `tern --help`). */
int cmd_usage_error(const char *name, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/*
 * getopt_long() for the command `tern <name>` (e.g. "log dump"): argv[0] is replaced by
 * "tern <name>" so that getopt's own messages name the command. Call with *first = true, then
 * false; returns as getopt_long. GNU permutation is on: options may follow operands; "--" ends
 * the options.
 */
int cmd_getopt(const char *name, int argc, char **argv, const char *shortopts,
               const struct option *longopts, bool *first);

/* Parses a whole decimal integer in [min, max]. Returns 0, or prints an error naming the option
 * and the value and returns -1. */
int cmd_parse_int64(const char *opt, const char *s, int64_t min, int64_t max, int64_t *out);

/* Writes len bytes of s to f, printable ASCII as is (backslash doubled), every other byte as
 * \xNN. */
void cmd_print_escaped(FILE *f, const uint8_t *s, size_t len);

/*
 * Opens the store in dir synchronously (no event loop). When must_exist is set and dir does not
 * exist, fails instead of creating it. Prints the error (including "in use by another process"
 * for a locked directory) and returns -1 on failure; on success *out owns the store (close
 * with store_close(st, NULL, NULL)). The store's log lines are discarded unless verbose is set
 * (then all of them, debug included, go to stderr).
 */
int cmd_store_open(const char *dir, bool must_exist, bool verbose, struct store **out);

/* Installs SIGINT/SIGTERM handlers that set a flag (so long loops can close the store cleanly)
 * and ignores SIGPIPE (write errors are reported instead). */
void cmd_signals_init(void);
/* True once SIGINT or SIGTERM arrived. */
bool cmd_interrupted(void);

#endif
