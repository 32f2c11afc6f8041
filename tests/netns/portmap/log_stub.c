/* SPDX-License-Identifier: MIT */
/* Stand-in for cli/log.c so the UPnP test driver links without the daemon:
 * same interface, one line per message on stderr with a level tag the test
 * scripts count. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "log.h"

int log_level = WGAM_LOG_INFO;

static const char *const names[] = {"error", "warn", "info", "debug", "trace"};

void log_msg(int level, const char *fmt, ...) {
  va_list ap;

  if (level > log_level)
    return;
  fprintf(stderr, "[%s] ", level >= 0 && level < 5 ? names[level] : "?");
  va_start(ap, fmt);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fputc('\n', stderr);
}

int log_level_parse(const char *s) {
  int i;

  for (i = 0; i < 5; i++)
    if (strcmp(s, names[i]) == 0)
      return i;
  return -1;
}
