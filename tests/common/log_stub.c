/* SPDX-License-Identifier: MIT */
/* Stand-in for cli/log.c so the backends link into test programs alone. */
#include <stdarg.h>
#include <stdio.h>

#include "log.h"

int log_level = WGAM_LOG_WARN;

void log_msg(int level, const char *fmt, ...) {
  va_list ap;

  if (level > log_level)
    return;
  va_start(ap, fmt);
  fputs("wg: ", stderr);
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
}
