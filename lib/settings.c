/* SPDX-License-Identifier: MIT */
/*
 * The two timer presets. "classic" reproduces the original daemon: one
 * 30 s loop reads the device and moves every disconnected peer to its next
 * candidate. "fast" is ours: the device is read every 2 s, a candidate gets
 * one handshake window (WireGuard retries a handshake every 5 s), silent
 * paths are probed, and the state file follows changes.
 */
#include <string.h>

#include "wgautomesh.h"

static void settings_common(wgam_settings *s) {
  memset(s, 0, sizeof(*s));
  s->gossip_port = 1666;
  s->timeout = 300 * WGAM_SECONDS;
  s->gossip_interval = 300 * WGAM_SECONDS;
  s->lan_interval = 60 * WGAM_SECONDS;
  s->lan_timeout = 300 * WGAM_SECONDS;
  s->igd_interval = 60 * WGAM_SECONDS;
  s->keepalive_trying = 10;
  s->keepalive_connected = 30;
  s->max_peers = 16384;
  s->max_pending = 65536;
  s->log_level = WGAM_LOG_INFO;
}

int wgam_settings_default_versioned(int settings_version,
                                    wgam_settings *settings) {
  if (settings_version != WGAM_SETTINGS_VERSION_V1 || !settings)
    return WGAM_ERR_INVALID_ARGUMENT;
  settings_common(settings);
  settings->policy = WGAM_POLICY_FAST;
  /* WireGuard renews a session with traffic every 120 s and rejects one
   * older than 180 s: a handshake older than that means a broken path. */
  settings->timeout = 200 * WGAM_SECONDS;
  settings->device_interval = 2 * WGAM_SECONDS;
  settings->try_interval = 6 * WGAM_SECONDS;
  settings->backoff_min = 10 * WGAM_SECONDS;
  settings->backoff_max = 120 * WGAM_SECONDS;
  settings->persist_interval = 5 * WGAM_SECONDS;
  settings->probe_idle = 4 * WGAM_SECONDS;
  settings->probe_timeout = 1500 * WGAM_MILLISECONDS;
  return 0;
}

int wgam_settings_classic_versioned(int settings_version,
                                    wgam_settings *settings) {
  if (settings_version != WGAM_SETTINGS_VERSION_V1 || !settings)
    return WGAM_ERR_INVALID_ARGUMENT;
  settings_common(settings);
  settings->policy = WGAM_POLICY_CLASSIC;
  settings->device_interval = 30 * WGAM_SECONDS;
  settings->try_interval = 30 * WGAM_SECONDS;
  settings->backoff_min = 30 * WGAM_SECONDS;
  settings->backoff_max = 30 * WGAM_SECONDS;
  settings->persist_interval = 600 * WGAM_SECONDS;
  settings->probe_idle = 0;
  settings->probe_timeout = 0;
  return 0;
}
