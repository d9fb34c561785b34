/*
 * cmd_log.h - `tern log ...`: list, append to, dump and delete the logs of a data directory,
 * opened directly through the store (ternd must not be running on it).
 */
#ifndef TERN_CMD_LOG_H
#define TERN_CMD_LOG_H

/* Runs `tern log <subcommand> ...`; argv[0] is "log". Returns the process exit code. */
int cmd_log_main(int argc, char **argv);

#endif
