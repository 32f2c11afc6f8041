/* SPDX-License-Identifier: MIT */
/*
 * Prints every timer and limit the engine has, one per line, for
 * check_limits_doc.py to compare with the man page's table:
 *
 *   settings.FIELD FAST CLASSIC   the two presets of wgam_settings
 *   fixed.FIELD VALUE             struct wgam_fixed (lib/settings.c)
 *   const.NAME VALUE              limits of the public header
 *
 * A time is printed as nanoseconds with the suffix "ns", a count as a
 * plain number, an enum by its name.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "internal.h"

static const char *policy_name(int p) {
  return p == WGAM_POLICY_FAST      ? "fast"
         : p == WGAM_POLICY_CLASSIC ? "classic"
                                    : "?";
}

static const char *level_name(int l) {
  static const char *const names[] = {"error", "warn", "info", "debug",
                                      "trace"};
  return l >= 0 && l < 5 ? names[l] : "?";
}

/* Keepalives are whole seconds in the struct. */
static uint64_t secs(unsigned s) {
  return (uint64_t)s * WGAM_SECONDS;
}

#define TIME(f)                                                                \
  printf("settings." #f " %" PRIu64 "ns %" PRIu64 "ns\n", (uint64_t)fast.f,    \
         (uint64_t)classic.f)
#define COUNT(f)                                                               \
  printf("settings." #f " %" PRIu64 " %" PRIu64 "\n", (uint64_t)fast.f,        \
         (uint64_t)classic.f)
#define KEEPALIVE(f)                                                           \
  printf("settings." #f " %" PRIu64 "ns %" PRIu64 "ns\n", secs(fast.f),        \
         secs(classic.f))
#define FIXED_TIME(f)                                                          \
  printf("fixed." #f " %" PRIu64 "ns\n", (uint64_t)wgam_fixed.f)
#define FIXED_COUNT(f)                                                         \
  printf("fixed." #f " %" PRIu64 "\n", (uint64_t)wgam_fixed.f)
#define CONST(n) printf("const." #n " %" PRIu64 "\n", (uint64_t)(n))

int main(void) {
  wgam_settings fast, classic;

  if (wgam_settings_default(&fast) || wgam_settings_classic(&classic)) {
    fprintf(stderr, "dump_limits: the presets refused their own version\n");
    return 1;
  }
  /* Fields that are not values (pointers, callbacks, the caller's flags)
   * are listed by check_limits_doc.py, which fails on any other field
   * missing here. */
  printf("settings.policy %s %s\n", policy_name(fast.policy),
         policy_name(classic.policy));
  printf("settings.log_level %s %s\n", level_name(fast.log_level),
         level_name(classic.log_level));
  COUNT(gossip_port);
  TIME(device_interval);
  TIME(try_interval);
  TIME(backoff_min);
  TIME(backoff_max);
  TIME(timeout);
  TIME(gossip_interval);
  TIME(lan_interval);
  TIME(lan_timeout);
  TIME(persist_interval);
  TIME(igd_interval);
  TIME(probe_idle);
  TIME(probe_timeout);
  KEEPALIVE(keepalive_trying);
  KEEPALIVE(keepalive_connected);
  COUNT(max_peers);
  COUNT(max_pending);

  FIXED_TIME(request_interval);
  FIXED_TIME(answer_interval);
  FIXED_TIME(answer_window);
  FIXED_TIME(answer_burst);
  FIXED_TIME(min_try);
  FIXED_TIME(early_retry);
  FIXED_TIME(early_quiet);
  FIXED_TIME(early_stagger);
  FIXED_TIME(early_first);
  FIXED_TIME(ask_min);
  FIXED_TIME(ask_max);
  FIXED_TIME(prop_hold_min);
  FIXED_TIME(prop_hold_max);
  FIXED_COUNT(probe_rate);
  FIXED_COUNT(initial_requests);
  FIXED_COUNT(queue_keep);
  FIXED_TIME(relay_after);
  FIXED_TIME(relay_confirm);
  FIXED_TIME(relay_probe);
  FIXED_TIME(relay_dwell);
  FIXED_TIME(relay_scan);
  FIXED_TIME(clock_slack);
  FIXED_TIME(relay_direct_retry);
  FIXED_TIME(read_soon);
  FIXED_TIME(session_read_gap);
  FIXED_TIME(probe_news);
  FIXED_TIME(probe_news_min);
  FIXED_TIME(ping_read_gap);
  FIXED_TIME(round_stagger);
  FIXED_TIME(hint_settle);
  FIXED_TIME(hint_read_gap);
  FIXED_TIME(rest_read);
  FIXED_TIME(heartbeat);

  CONST(WGAM_MAX_ENDPOINTS);
  CONST(WGAM_GOSSIP_FANOUT);
  CONST(WGAM_MAX_DATAGRAM_LEN);
  CONST(WGAM_MSG_MAX_ENDPOINTS);
  CONST(WGAM_STATE_MAX_ENDPOINTS);
  CONST(WGAM_MAX_PREFIXES);
  CONST(WGAM_MAX_EXTERNAL);
  return 0;
}
