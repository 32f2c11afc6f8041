/* SPDX-License-Identifier: MIT */
/*
 * IP forwarding on a relay node: a node whose own peer entry says
 * "relay": true forwards mesh traffic between its WireGuard peers. IPv4
 * forwarding is switched per interface (net.ipv4.conf.IFACE.forwarding)
 * and restored at exit; IPv6 has only a host-wide switch
 * (net.ipv6.conf.all.forwarding), which is checked, never changed.
 */
#ifndef WGAM_CLI_FORWARD_H
#define WGAM_CLI_FORWARD_H

#include <net/if.h>

struct forward {
  /* Whether we act as a relay now. */
  int relay;
  /* The interface whose setting we changed, and the value found there
   * ('0'..'9'), or '\0' when there is nothing to restore. */
  char ifname[IF_NAMESIZE];
  char saved;
};

void forward_init(struct forward *f);

/*
 * Makes the node a relay (@relay nonzero) or not. Becoming one turns on
 * IPv4 forwarding on @ifname (the value found is kept for
 * forward_restore()) and, when @ipv6 (a mesh address or prefix is IPv6),
 * logs an error if net.ipv6.conf.all.forwarding is off. Ceasing to be one
 * restores what was found. Nothing happens when @relay did not change.
 * Problems are logged; returns 0 or the -errno of the IPv4 switch.
 */
int forward_set(struct forward *f, const char *ifname, int relay, int ipv6);

/* Restores the IPv4 setting changed by forward_set(), if any. */
void forward_restore(struct forward *f);

/* The interface went away (its settings with it): nothing to restore;
 * the next forward_set() applies again. */
void forward_forget(struct forward *f);

/* The /proc/sys/net directory (tests point it elsewhere). */
extern const char *forward_procdir;

#endif
