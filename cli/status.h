/* SPDX-License-Identifier: MIT */
/*
 * The status of a running daemon as one model, filled from the engine and
 * the daemon's own state, and rendered as JSON (`status --json` and the
 * control socket's "status"), a table ("table") and Prometheus text
 * ("metrics"). Rendering never parses what another renderer wrote.
 */
#ifndef WGAM_CLI_STATUS_H
#define WGAM_CLI_STATUS_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "jsonw.h"
#include "wgautomesh.h"

struct status_peer {
  wgam_peer_info info;
  /* Seconds since info.last_handshake; has_age is 0 when never. */
  int has_age;
  uint64_t handshake_age;
  /* The peer is a relay (the engine's view, or the configuration's). */
  int relay;
  /* The mesh address of the relay info.via, when routed through one. */
  wgam_addr via_address;
  /* Its extra prefixes ("allowed_ips" of the configuration). */
  size_t nprefixes;
  wgam_cidr prefixes[WGAM_MAX_PREFIXES];
};

/* An external endpoint opened by port mapping, as the daemon knows it. */
struct status_external {
  const char *protocol; /* "upnp", "pcp", "natpmp", "upnp-pinhole" */
  wgam_addr addr;
  uint32_t lease;     /* seconds granted; 0: permanent */
  int64_t expires_in; /* seconds; -1: permanent */
};
#define STATUS_MAX_EXTERNAL 4

struct status {
  /* Borrowed strings; backend is NULL while no device is open. */
  const char *interface;
  const char *backend;
  const char *policy;
  /* We forward mesh traffic for the others (our own entry says relay). */
  int relay;
  /* The roam watch is on (roam_watch.h). */
  int roam_watch;
  wgam_stats stats;
  struct status_peer *peers;
  size_t npeers;
  /* Filled by the daemon from its port-mapping worker. */
  struct status_external external[STATUS_MAX_EXTERNAL];
  size_t nexternal;
};

/* Fills @st from @mesh and @cfg; @backend as for struct status; @unix_now
 * ages the handshakes. The caller adds what only it knows (relay, the
 * port mapping's endpoints). Returns 0 or -ENOMEM (then @st holds nothing
 * to free). */
int status_collect(struct status *st, const wgam_mesh *mesh,
                   const struct config *cfg, const char *backend,
                   uint64_t unix_now);

/* Frees what status_collect() allocated. */
void status_free(struct status *st);

/* Each renderer appends to @out; out->oom tells of a failed allocation. */
void status_render_json(struct sbuf *out, const struct status *st);
void status_render_table(struct sbuf *out, const struct status *st);
void status_render_prometheus(struct sbuf *out, const struct status *st);

#endif
