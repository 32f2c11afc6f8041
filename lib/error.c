/* SPDX-License-Identifier: MIT */
#include "wgautomesh.h"

const char *wgam_strerror(int liberr) {
  switch (liberr) {
  case 0:
    return "success";
  case WGAM_ERR_INVALID_ARGUMENT:
    return "invalid argument";
  case WGAM_ERR_NOBUF:
    return "buffer too small";
  case WGAM_ERR_PKT_LENGTH:
    return "datagram length out of range";
  case WGAM_ERR_PKT_AUTH:
    return "datagram failed authentication";
  case WGAM_ERR_PKT_DECODE:
    return "datagram holds no valid message";
  case WGAM_ERR_PKT_IGNORED:
    return "message ignored";
  case WGAM_ERR_STATE_DECODE:
    return "malformed state file";
  case WGAM_ERR_LIMIT:
    return "limit reached";
  case WGAM_ERR_DUPLICATE_PEER:
    return "duplicate peer key or address";
  case WGAM_ERR_PARSE:
    return "parse error";
  case WGAM_ERR_NOMEM:
    return "out of memory";
  case WGAM_ERR_CALLBACK_FAILURE:
    return "callback failure";
  default:
    return "unknown error";
  }
}

int wgam_err_is_fatal(int liberr) {
  return liberr < WGAM_ERR_FATAL;
}

const char *wgam_source_name(int source) {
  static const char *const names[] = {"none",  "config", "gossip", "lan",
                                      "state", "upnp",   "roaming"};
  if (source < 0 || (size_t)source >= sizeof(names) / sizeof(names[0]))
    return "unknown";
  return names[source];
}

const char *wgam_peer_state_name(int state) {
  static const char *const names[] = {"idle", "trying", "backoff", "connected"};
  if (state < 0 || (size_t)state >= sizeof(names) / sizeof(names[0]))
    return "unknown";
  return names[state];
}

const char *wgam_route_name(int route) {
  static const char *const names[] = {"direct", "relay-pending", "relayed"};
  if (route < 0 || (size_t)route >= sizeof(names) / sizeof(names[0]))
    return "unknown";
  return names[route];
}

const char *wgam_reject_name(int reason) {
  static const char *const names[] = {"length",      "auth",         "decode",
                                      "unknown_key", "bad_endpoint", "own",
                                      "queue_full"};
  if (reason < 0 || reason >= WGAM_REJECT_COUNT)
    return "unknown";
  return names[reason];
}
