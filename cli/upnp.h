/* SPDX-License-Identifier: MIT */
/*
 * UPnP IGD client (miniupnpc) for the port-mapping worker (portmap.c):
 * every call here blocks (SSDP discovery for 2 s, SOAP over TCP with socket
 * timeouts of a few seconds), so only that worker thread calls them.
 */
#ifndef WGAM_CLI_UPNP_H
#define WGAM_CLI_UPNP_H

#include <stddef.h>
#include <stdint.h>

#include "wgautomesh.h"

struct upnp_session;

enum upnp_status {
  UPNP_OK = 0,
  UPNP_NO_IGD,
  UPNP_CONFLICT,
  UPNP_MAP_ERROR,
  UPNP_NO_EXTIP,
};

/* Returns a new session (no IGD known yet), or NULL without memory. */
struct upnp_session *upnp_session_new(void);

/*
 * Adds or renews the UDP mapping of @external_port to @internal_port on our
 * address facing the IGD, for *@lease seconds, discovering the IGD first if
 * none is known. When @external_port is taken by another host and the IGD
 * offers AddAnyPortMapping (IGD:2), takes the port it assigns. A router
 * that only keeps permanent mappings sets *@lease to 0.
 *
 * Returns UPNP_OK with *@ext the external endpoint (the port actually
 * mapped), or another upnp_status with a message for the log in @msg.
 */
int upnp_map(struct upnp_session *s, uint16_t external_port,
             uint16_t internal_port, uint32_t *lease, wgam_addr *ext, char *msg,
             size_t msglen);

/*
 * Opens or renews an IPv6 firewall pinhole (WANIPv6FirewallControl) to
 * @internal_port on our IPv6 address facing the IGD, discovering an IGD over
 * IPv6 first if none is known.
 *
 * Returns 0 with *@ext our IPv6 address and @internal_port, or -1 with a
 * message in @msg.
 */
int upnp_pinhole(struct upnp_session *s, uint16_t internal_port, uint32_t lease,
                 wgam_addr *ext, char *msg, size_t msglen);

/* Forgets the IPv4 IGD (it failed in transport): the next upnp_map()
 * discovers again. The mapping is no longer considered ours. */
void upnp_forget(struct upnp_session *s);

/* Deletes our mapping and pinhole (if any) and frees @s. NULL is a no-op. */
void upnp_session_free(struct upnp_session *s);

#endif
