/* SPDX-License-Identifier: MIT */
/*
 * Leveled logging to stderr. Under systemd (JOURNAL_STREAM set) each line
 * carries a "<N>" syslog priority prefix so the journal keeps the level;
 * otherwise a short level tag is printed.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

int log_level = WGAM_LOG_INFO;

static const char *const level_names[] = {"error", "warn", "info", "debug",
                                          "trace"};

/* syslog priorities: err, warning, info, debug, debug */
static const int level_prio[] = {3, 4, 6, 7, 7};

static int use_journal_prefix(void) {
  static int cached = -1;

  if (cached < 0)
    cached = getenv("JOURNAL_STREAM") != NULL;
  return cached;
}

void log_msg(int level, const char *fmt, ...) {
  char line[1024];
  va_list ap;

  if (level > log_level)
    return;
  if (level < WGAM_LOG_ERROR)
    level = WGAM_LOG_ERROR;
  if (level > WGAM_LOG_TRACE)
    level = WGAM_LOG_TRACE;

  va_start(ap, fmt);
  vsnprintf(line, sizeof(line), fmt, ap);
  va_end(ap);

  /* One fprintf per line so lines from the resolver thread do not mix. */
  if (use_journal_prefix())
    fprintf(stderr, "<%d>%s\n", level_prio[level], line);
  else
    fprintf(stderr, "wgautomesh[%s]: %s\n", level_names[level], line);
}

int log_level_parse(const char *s) {
  for (size_t i = 0; i < sizeof(level_names) / sizeof(level_names[0]); i++)
    if (strcmp(s, level_names[i]) == 0)
      return (int)i;
  return -1;
}
