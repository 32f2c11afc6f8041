/* SPDX-License-Identifier: MIT */
/*
 * wgautomesh: global options and the table of subcommands, as
 * wireguard-tools' wg.c has them. Each subcommand lives in its own file
 * (cmd_*.c); the daemon itself is daemon.c.
 */
#include <stdio.h>
#include <string.h>

#include "config.h"
#include "log.h"
#include "subcommands.h"

static const struct {
  const char *name;
  subcommand_fn fn;
  const char *description;
} subcommands[] = {
    {"run", cmd_run, "run the daemon in the foreground (the default)"},
    {"check", cmd_check, "validate CONFIG; one line per problem"},
    {"status", cmd_status, "ask the running daemon (its control socket)"},
    {"decode", cmd_decode,
     "print gossip datagrams (hex, one per line on stdin) or a state file "
     "as JSON"},
};

#define NSUBCOMMANDS (sizeof(subcommands) / sizeof(subcommands[0]))
/* Arguments kept after the global options are taken out. */
#define MAX_ARGS 64

static void usage(FILE *f) {
  fprintf(f,
          "Usage: wgautomesh [-v|-q] [run] [CONFIG]\n"
          "       wgautomesh check [CONFIG]\n"
          "       wgautomesh status [--json|--prometheus] [--socket PATH] "
          "[CONFIG]\n"
          "       wgautomesh decode [--secret-file FILE]  < hex datagrams\n"
          "       wgautomesh decode --state FILE\n"
          "       wgautomesh --help | --version\n"
          "\n"
          "Keeps the peers of an existing WireGuard interface connected "
          "as a\n"
          "full mesh through NAT. CONFIG defaults to " CONFIG_DEFAULT_PATH ".\n"
          "\n");
  for (size_t i = 0; i < NSUBCOMMANDS; i++)
    fprintf(f, "  %-8s %s\n", subcommands[i].name, subcommands[i].description);
  fprintf(f, "  -v, -q   more or less logging (repeatable)\n"
             "\n"
             "decode without --secret-file uses the empty secret, as the "
             "daemon does\n"
             "without one.\n"
             "\n"
             "Exit status: 0 success, 1 runtime error, 2 configuration or "
             "usage error.\n");
}

int usage_error(const char *message, const char *arg) {
  fprintf(stderr, "wgautomesh: %s %s\n", message, arg);
  usage(stderr);
  return EXIT_USAGE;
}

/* -v, -q, -vv, -vq...: a word of only v and q letters. */
static int is_verbosity(const char *a) {
  return a[0] == '-' && (a[1] == 'v' || a[1] == 'q') &&
         strspn(a + 1, "vq") == strlen(a + 1);
}

int main(int argc, char **argv) {
  const char *args[MAX_ARGS];
  struct cli_options opts = {.log_level = -1};
  int nargs = 0, verbosity = 0, have_verbosity = 0;

  /* Global options are taken from anywhere on the line. */
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];

    if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
      usage(stdout);
      return 0;
    }
    if (!strcmp(a, "-V") || !strcmp(a, "--version")) {
      printf("wgautomesh %s\n", WGAM_VERSION);
      return 0;
    }
    if (is_verbosity(a)) {
      for (const char *p = a + 1; *p; p++)
        verbosity += *p == 'v' ? 1 : -1;
      have_verbosity = 1;
      continue;
    }
    if (nargs == MAX_ARGS) {
      usage(stderr);
      return EXIT_USAGE;
    }
    args[nargs++] = a;
  }
  if (have_verbosity) {
    log_level = WGAM_LOG_INFO + verbosity;
    if (log_level < WGAM_LOG_ERROR)
      log_level = WGAM_LOG_ERROR;
    if (log_level > WGAM_LOG_TRACE)
      log_level = WGAM_LOG_TRACE;
    opts.log_level = log_level;
  }

  if (nargs)
    for (size_t i = 0; i < NSUBCOMMANDS; i++)
      if (!strcmp(args[0], subcommands[i].name))
        return subcommands[i].fn(nargs - 1, args + 1, &opts);
  /* No subcommand: run, with CONFIG as the first argument if given. */
  return cmd_run(nargs, args, &opts);
}
