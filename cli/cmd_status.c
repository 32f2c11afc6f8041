/* SPDX-License-Identifier: MIT */
/*
 * wgautomesh status [--json|--prometheus] [--socket PATH] [CONFIG]: asks the
 * running daemon over its control socket. The daemon renders each format
 * from its status model; this client only prints the reply.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "config.h"
#include "control.h"
#include "subcommands.h"

int cmd_status(int argc, const char **argv, const struct cli_options *opts) {
  const char *path = CONFIG_DEFAULT_PATH, *sock = NULL, *cmd = "table";
  struct config_diag diag = {0};
  struct config cfg;
  struct sbuf reply;
  int json = 0, prom = 0, npos = 0, rc, ret = EXIT_RUNTIME;

  (void)opts;
  for (int i = 0; i < argc; i++) {
    const char *a = argv[i];

    if (!strcmp(a, "--json"))
      json = 1;
    else if (!strcmp(a, "--prometheus"))
      prom = 1;
    else if (!strcmp(a, "--socket") && i + 1 < argc)
      sock = argv[++i];
    else if (a[0] == '-' && a[1])
      return usage_error("unknown option", a);
    else if (npos++)
      return usage_error("unexpected argument", a);
    else
      path = a;
  }
  if (json && prom) {
    fprintf(stderr, "wgautomesh: --json and --prometheus exclude each "
                    "other\n");
    return EXIT_USAGE;
  }
  if (json)
    cmd = "status";
  else if (prom)
    cmd = "metrics";

  memset(&cfg, 0, sizeof(cfg));
  if (!sock) {
    rc = config_load(&cfg, path, CONFIG_SKIP_SECRET, &diag);
    for (size_t i = 0; i < diag.nerrors; i++)
      fprintf(stderr, "%s\n", diag.errors[i]);
    config_diag_free(&diag);
    if (rc)
      return rc == -ENOMEM ? EXIT_RUNTIME : EXIT_USAGE;
    sock = cfg.control_socket;
  }
  sb_init(&reply);
  rc = control_query(sock, cmd, &reply);
  if (rc) {
    fprintf(stderr, "cannot query %s: %s%s\n", sock, strerror(-rc),
            rc == -ENOENT || rc == -ECONNREFUSED ? " (is wgautomesh running?)"
                                                 : "");
    goto out;
  }
  /* Every reply of ours is text ending in a newline; an error is JSON. */
  if (!json && !strncmp(sb_cstr(&reply), "{\"error\"", 8)) {
    fprintf(stderr, "unexpected reply from %s: %s", sock, sb_cstr(&reply));
    goto out;
  }
  fputs(sb_cstr(&reply), stdout);
  if (reply.len && reply.p[reply.len - 1] != '\n')
    putchar('\n');
  ret = 0;
out:
  sb_free(&reply);
  config_free(&cfg);
  return ret;
}
