/* SPDX-License-Identifier: MIT */
/*
 * Port mapping in a worker thread: asks the default gateway to forward an
 * external UDP port to the WireGuard listen port by PCP (RFC 6887),
 * NAT-PMP (RFC 6886) or UPnP IGD, whichever answers, and opens an IPv6
 * pinhole by UPnP (WANIPv6FirewallControl). The calls block for seconds,
 * so the event loop only sees a file descriptor that becomes readable when
 * the list of external endpoints changed.
 */
#ifndef WGAM_CLI_PORTMAP_H
#define WGAM_CLI_PORTMAP_H

#include <stddef.h>
#include <stdint.h>

#include "wgautomesh.h"

typedef struct portmap portmap;

enum portmap_proto {
  PORTMAP_UPNP,
  PORTMAP_PCP,
  PORTMAP_NATPMP,
  PORTMAP_UPNP_PINHOLE,
};
#define PORTMAP_NPROTOS 4
/* portmap_start_protocols() masks. */
#define PORTMAP_MASK(p) (1u << (p))
#define PORTMAP_ALL 0xfu

/* At most one IPv4 mapping and one IPv6 pinhole. */
#define PORTMAP_MAX 2

/* One external endpoint that reaches us. */
struct portmap_endpoint {
  enum portmap_proto proto;
  /* The external address and the port actually mapped. */
  wgam_addr addr;
  /* The lease the gateway granted, in seconds; 0 for a permanent one. */
  uint32_t lifetime;
  /* When it runs out without renewal: CLOCK_MONOTONIC milliseconds,
   * UINT64_MAX if permanent. The worker renews it at half its lease. */
  uint64_t expiry_ms;
};

/* "upnp", "pcp", "natpmp", "upnp-pinhole". */
const char *portmap_proto_name(enum portmap_proto proto);

/*
 * Starts the worker: it maps UDP @external_port (the port asked for; the
 * gateway may assign another) to @internal_port on the LAN address facing
 * the gateway, and opens an IPv6 pinhole when @ipv6.
 *
 * Returns 0 or -errno (-EINVAL for port 0, -ENOMEM, thread creation).
 */
int portmap_start(portmap **ppm, uint16_t external_port, uint16_t internal_port,
                  int ipv6);

/* The same, with only the protocols in @protocols (PORTMAP_MASK bits). */
int portmap_start_protocols(portmap **ppm, uint16_t external_port,
                            uint16_t internal_port, int ipv6,
                            unsigned protocols);

/* Readable when portmap_results() has something new. */
int portmap_fd(const portmap *pm);

/* Asks the worker to add or renew the mapping now (to @internal_port, which
 * may have changed); never blocks. A worker in backoff after a failure
 * waits for it unless the port changed. */
void portmap_renew(portmap *pm, uint16_t internal_port);

/*
 * Reads the current external endpoints into @out (at most @cap) when they
 * changed since the last call: the IPv4 mapping first, then the IPv6
 * pinhole.
 *
 * Returns how many (0: none is in place, the worker logged why), or
 * -EAGAIN if nothing changed.
 */
int portmap_results(portmap *pm, struct portmap_endpoint *out, size_t cap);

/* Copies the current external endpoints (with their latest expiry) into
 * @out, changed or not: for a status view. Returns how many. */
int portmap_endpoints(portmap *pm, struct portmap_endpoint *out, size_t cap);

/* Deletes the mappings (bounded time) and stops the worker. NULL is a
 * no-op. */
void portmap_stop(portmap *pm);

#endif
