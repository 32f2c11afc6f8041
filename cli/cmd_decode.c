/* SPDX-License-Identifier: MIT */
/*
 * wgautomesh decode [--secret-file FILE] < hex datagrams
 * wgautomesh decode --state FILE
 * Prints gossip datagrams or a state file as JSON.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "decode.h"
#include "jsonw.h"
#include "state_io.h"
#include "subcommands.h"

static int decode_state_file(const char *path) {
  uint8_t *data = NULL;
  size_t len = 0;
  struct sbuf b;
  int rc;

  rc = state_read(path, &data, &len);
  if (rc) {
    fprintf(stderr, "%s: %s\n", path, strerror(-rc));
    return EXIT_RUNTIME;
  }
  sb_init(&b);
  rc = decode_state_json(&b, data, len);
  printf("%s\n", sb_cstr(&b));
  sb_free(&b);
  free(data);
  return rc ? EXIT_RUNTIME : 0;
}

int cmd_decode(int argc, const char **argv, const struct cli_options *opts) {
  const char *secret_file = NULL, *state_file = NULL;
  uint8_t *data = NULL;
  size_t len = 0;
  int rc;

  (void)opts;
  for (int i = 0; i < argc; i++) {
    const char *a = argv[i];

    if (!strcmp(a, "--secret-file") && i + 1 < argc)
      secret_file = argv[++i];
    else if (!strcmp(a, "--state") && i + 1 < argc)
      state_file = argv[++i];
    else if (a[0] == '-' && a[1])
      return usage_error("unknown option", a);
    else
      return usage_error("unexpected argument", a);
  }
  if (secret_file && state_file) {
    fprintf(stderr, "wgautomesh: --secret-file and --state exclude each "
                    "other\n");
    return EXIT_USAGE;
  }
  if (state_file)
    return decode_state_file(state_file);
  if (secret_file) {
    rc = state_read(secret_file, &data, &len);
    if (rc) {
      fprintf(stderr, "%s: %s\n", secret_file, strerror(-rc));
      return EXIT_RUNTIME;
    }
  }
  rc = decode_stream(stdin, stdout, data, len);
  if (data) {
    sodium_memzero(data, len);
    free(data);
  }
  if (rc) {
    fprintf(stderr, "decode: %s\n", strerror(-rc));
    return EXIT_RUNTIME;
  }
  return 0;
}
