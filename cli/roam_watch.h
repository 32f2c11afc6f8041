/* SPDX-License-Identifier: MIT */
/*
 * The roam watch: sees the packets that reach WireGuard's listen port from
 * an address no peer had at the last device read (a peer that roamed, a
 * new peer's first handshake) and tells the engine, so that a mesh at rest
 * is read rarely and a move is read at once (wgam_mesh_roam_hint()).
 */
#ifndef WGAM_CLI_ROAM_WATCH_H
#define WGAM_CLI_ROAM_WATCH_H

#include <stddef.h>
#include <stdint.h>

#include "wgautomesh.h"

/* Endpoints the kernel filter holds at most (each costs a few instructions
 * of the filter, run for every packet to the port). A device with more
 * peers has no watch: the engine then probes and reads as without one. */
#define ROAM_WATCH_MAX 256

struct roam_watch;

/* Opens the watch; nothing passes until roam_watch_set(). Returns 0, or
 * -errno (-EPERM without CAP_NET_RAW). */
int roam_watch_open(struct roam_watch **pw);

int roam_watch_fd(const struct roam_watch *w);

/*
 * After a device read: the listen port and the endpoints of every peer of
 * @dev become the known set; packets on interface @skip_ifindex
 * (WireGuard's own: its inner packets are not the outer ones) are left
 * out, 0 for none. A source reported since the last call that
 * is still unknown is reported once more (WireGuard may not have handled
 * its packet at the time of the read), and after that left out as a
 * stranger. Returns 1 when such a source wants another read, 0, or
 * -E2BIG (more than ROAM_WATCH_MAX endpoints: nothing passes) or -errno.
 */
int roam_watch_set(struct roam_watch *w, const wgam_device *dev,
                   unsigned skip_ifindex);

/* Drains what the filter passed. Returns 1 when some packet came from a
 * source that is not known (the first in *@first), 0 when none did. */
int roam_watch_read(struct roam_watch *w, wgam_addr *first);

void roam_watch_close(struct roam_watch *w);

#endif
