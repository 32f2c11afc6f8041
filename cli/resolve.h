/* SPDX-License-Identifier: MIT */
/*
 * Hostname endpoints resolved in a worker thread: getaddrinfo() can block
 * for seconds, so the event loop only submits a job and watches a pipe.
 */
#ifndef WGAM_CLI_RESOLVE_H
#define WGAM_CLI_RESOLVE_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "wgautomesh.h"

struct resolve_req {
  uint8_t pubkey[WGAM_KEY_LEN];
  char host[CONFIG_HOST_MAX + 1];
  uint16_t port;
};

struct resolve_result {
  uint8_t pubkey[WGAM_KEY_LEN];
  char host[CONFIG_HOST_MAX + 1];
  uint16_t port;
  /* 0, or a getaddrinfo EAI_* code (see gai_strerror). */
  int error;
  /* Usable endpoints (wgam_addr_is_valid_endpoint), deduplicated. */
  size_t naddrs;
  wgam_addr addrs[WGAM_MAX_ENDPOINTS];
};

struct resolver;

/* Starts the worker. Returns 0 or -errno. */
int resolver_new(struct resolver **pr);

/* Readable when resolver_next() has results. */
int resolver_fd(const struct resolver *r);

/* Replaces the pending job with @reqs (copied). A job already running
 * finishes; its results are still delivered. Returns 0 or -ENOMEM. */
int resolver_submit(struct resolver *r, const struct resolve_req *reqs,
                    size_t n);

/* Pops one result: returns 1 and fills *@res, or 0 when none is ready. */
int resolver_next(struct resolver *r, struct resolve_result *res);

/* Stops the worker (waits a bounded time for a lookup in progress).
 * NULL is a no-op. */
void resolver_free(struct resolver *r);

#endif
