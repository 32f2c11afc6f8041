/* SPDX-License-Identifier: MIT */
/*
 * The subcommands of `wgautomesh`, one file each (cmd_*.c), dispatched by
 * main.c's table.
 */
#ifndef WGAM_CLI_SUBCOMMANDS_H
#define WGAM_CLI_SUBCOMMANDS_H

#include <stdio.h>

/* Exit status: 0 success, 1 runtime error, 2 configuration or usage. */
#define EXIT_RUNTIME 1
#define EXIT_USAGE 2

/* What the global options set. */
struct cli_options {
  /* The log level -v/-q chose, or -1 when none was given. */
  int log_level;
};

/* A subcommand gets the arguments after its name (global options already
 * removed) and returns the exit status. */
typedef int (*subcommand_fn)(int argc, const char **argv,
                             const struct cli_options *opts);

int cmd_run(int argc, const char **argv, const struct cli_options *opts);
int cmd_check(int argc, const char **argv, const struct cli_options *opts);
int cmd_status(int argc, const char **argv, const struct cli_options *opts);
int cmd_decode(int argc, const char **argv, const struct cli_options *opts);

/* Prints "wgautomesh: MESSAGE ARG" and the usage to stderr; returns
 * EXIT_USAGE. */
int usage_error(const char *message, const char *arg);

#endif
