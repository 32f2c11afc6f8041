/* SPDX-License-Identifier: MIT */
/* wgautomesh [run] [CONFIG]: the daemon in the foreground. */
#include "config.h"
#include "daemon.h"
#include "subcommands.h"

int cmd_run(int argc, const char **argv, const struct cli_options *opts) {
  const char *path = CONFIG_DEFAULT_PATH;

  for (int i = 0; i < argc; i++) {
    if (argv[i][0] == '-' && argv[i][1])
      return usage_error("unknown option", argv[i]);
    if (i)
      return usage_error("unexpected argument", argv[i]);
    path = argv[i];
  }
  return daemon_run(path, opts->log_level);
}
