/*
 * main.c - `tern`, the command-line tool for people at a terminal.
 *
 *   tern [--help | --version] <command> ...
 *
 * Each command group lives in its own cmd_<group>.c; this file only dispatches. Exit codes are
 * in cli/cmd.h: 0 ok, 1 failed, 2 bad usage.
 */
#include "base/tern.h"
#include "cli/cmd.h"
#include "cli/cmd_log.h"

#include <string.h>

static const char usage[] =
    "Usage: tern [--help] [--version] <command> [<args>]\n"
    "\n"
    "The command-line tool of the tern message broker.\n"
    "\n"
    "Commands:\n"
    "  log list     list the logs of a data directory\n"
    "  log append   append records to a log (created if missing)\n"
    "  log dump     print the records of a log\n"
    "  log delete   delete a log and its files\n"
    "\n"
    "The log commands open the data directory (--data-dir, default " CMD_DEFAULT_DATA_DIR
    ") directly,\n"
    "so ternd must not be running on it.\n"
    "\n"
    "Run 'tern <command> --help' for the options of a command.\n";

static const struct cmd commands[] = {
    {"log", cmd_log_main},
};

int main(int argc, char **argv)
{
    if (argc < 2)
        return cmd_usage_error(NULL, "missing command");
    const char *word = argv[1];
    if (strcmp(word, "--help") == 0 || strcmp(word, "-h") == 0 || strcmp(word, "help") == 0) {
        fputs(usage, stdout);
        return CMD_EXIT_OK;
    }
    if (strcmp(word, "--version") == 0 || strcmp(word, "-V") == 0) {
        printf("tern %s\n", TERN_VERSION);
        return CMD_EXIT_OK;
    }
    if (word[0] == '-')
        return cmd_usage_error(NULL, "unknown option '%s'", word);
    cmd_signals_init();
    for (size_t i = 0; i < TERN_ARRAY_LEN(commands); i++) {
        if (strcmp(word, commands[i].name) == 0)
            return commands[i].run(argc - 1, argv + 1);
    }
    return cmd_usage_error(NULL, "unknown command '%s'", word);
}
