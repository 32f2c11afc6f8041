/* SPDX-License-Identifier: MIT */
/* Leveled logging to stderr for the daemon (levels are wgam_log_level). */
#ifndef WGAM_CLI_LOG_H
#define WGAM_CLI_LOG_H

#include <stdarg.h>

#include "wgautomesh.h"

/* Messages above this level are dropped (default WGAM_LOG_INFO). */
extern int log_level;

void log_msg(int level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#define log_err(...) log_msg(WGAM_LOG_ERROR, __VA_ARGS__)
#define log_warn(...) log_msg(WGAM_LOG_WARN, __VA_ARGS__)
#define log_info(...) log_msg(WGAM_LOG_INFO, __VA_ARGS__)
#define log_debug(...) log_msg(WGAM_LOG_DEBUG, __VA_ARGS__)

/* Parses "error", "warn", "info", "debug", "trace"; returns -1 if unknown. */
int log_level_parse(const char *s);

#endif
