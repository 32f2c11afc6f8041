/* SPDX-License-Identifier: MIT */
/*
 * The interface's own packet counter, watched between device reads. While
 * nothing flows the engine reads the WireGuard device seldom (its
 * device_quiet timer); the first packet sent into the interface after a
 * quiet spell is seen here within TRAFFIC_POLL, and the device is read at
 * once, so that a path that broke while idle is probed as soon as someone
 * uses it. One pread() of a sysfs file per poll.
 */
#ifndef WGAM_CLI_TRAFFIC_H
#define WGAM_CLI_TRAFFIC_H

#include <stdint.h>

#include "wgautomesh.h"

#define TRAFFIC_POLL (5 * WGAM_SECONDS)

struct traffic {
  int fd;           /* /sys/class/net/IFACE/statistics/tx_packets, or -1 */
  uint64_t tx;      /* the counter at the last poll */
  int moving;       /* it moved at the last poll */
  wgam_tstamp next; /* the next poll */
};

void traffic_init(struct traffic *t);

/*
 * Polls the counter of @ifname if a poll is due at @now (opening the file
 * if needed: the interface may come and go). Returns 1 when packets
 * started to flow since the last poll (the counter moved and had not at
 * the poll before) or when the counter, readable at the last poll, no
 * longer is (the interface went away); 0 otherwise.
 */
int traffic_started(struct traffic *t, const char *ifname, wgam_tstamp now);

void traffic_close(struct traffic *t);

#endif /* WGAM_CLI_TRAFFIC_H */
