/* SPDX-License-Identifier: MIT */
/*
 * UPnP IGD port mapping in a worker thread: miniupnpc calls block for
 * seconds, so the event loop only sees a file descriptor that becomes
 * readable when a result is ready.
 */
#ifndef WGAM_CLI_UPNP_H
#define WGAM_CLI_UPNP_H

#include <stdint.h>

#include "wgautomesh.h"

typedef struct upnp upnp;

/* Starts the worker. It maps UDP @external_port to @internal_port on the LAN
 * address facing the gateway (and opens an IPv6 pinhole when @ipv6).
 * Returns 0 or -errno. */
int upnp_start(upnp **pu, uint16_t external_port, uint16_t internal_port,
               int ipv6);

/* Readable when upnp_result() has something. */
int upnp_fd(const upnp *u);

/* Asks the worker to add or renew the mapping now; never blocks. */
void upnp_renew(upnp *u, uint16_t internal_port);

/* Reads the latest result: 1 and *external set when the mapping is in place,
 * 0 when it is not (the worker has logged why), -EAGAIN if nothing new. */
int upnp_result(upnp *u, wgam_addr *external);

/* Deletes the mapping (bounded time) and stops the worker. NULL is a no-op. */
void upnp_stop(upnp *u);

#endif
