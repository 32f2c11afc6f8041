/* SPDX-License-Identifier: MIT */
/* wgautomesh check [CONFIG]: validates a configuration, one line per
 * problem, as the daemon would load it. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "config.h"
#include "subcommands.h"

int cmd_check(int argc, const char **argv, const struct cli_options *opts) {
  const char *path = CONFIG_DEFAULT_PATH;
  struct config_diag diag = {0};
  struct config cfg;
  int rc;

  (void)opts;
  for (int i = 0; i < argc; i++) {
    if (argv[i][0] == '-' && argv[i][1])
      return usage_error("unknown option", argv[i]);
    if (i)
      return usage_error("unexpected argument", argv[i]);
    path = argv[i];
  }
  rc = config_load(&cfg, path, 0, &diag);
  config_diag_print(&diag, 0);
  config_diag_free(&diag);
  if (rc == -ENOMEM) {
    fprintf(stderr, "%s: %s\n", path, strerror(ENOMEM));
    return EXIT_RUNTIME;
  }
  if (rc)
    return EXIT_USAGE;
  printf("%s: ok (interface %s, %zu peers)\n", path, cfg.interface, cfg.npeers);
  config_free(&cfg);
  return 0;
}
