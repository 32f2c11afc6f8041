/* SPDX-License-Identifier: MIT */
/*
 * The gossip sockets: one UDP socket per address family on the gossip
 * port, the IPv6 LAN group, and sending with errors logged once per kind
 * rather than once per datagram.
 */
#ifndef WGAM_CLI_GOSSIP_SOCK_H
#define WGAM_CLI_GOSSIP_SOCK_H

#include <stddef.h>
#include <stdint.h>

#include "wgautomesh.h"

enum gossip_send_kind {
  GOSSIP_SEND_V4,
  GOSSIP_SEND_V4_BCAST,
  GOSSIP_SEND_V6,
  GOSSIP_SEND_V6_MCAST,
  GOSSIP_SEND_KINDS
};

#define GOSSIP_MAX_JOINED6 64

struct gossip_socks {
  int fd4, fd6; /* -1 when closed */
  /* Interfaces in the IPv6 LAN group ff05::1, by index: rescanned when
   * links change, since a LAN (Wi-Fi, a dock) can come up later. */
  unsigned joined6[GOSSIP_MAX_JOINED6];
  size_t njoined6;
  int send_errno[GOSSIP_SEND_KINDS]; /* last error logged per kind */
  int linkfd; /* rtnetlink notifications of links and addresses, or -1 */
};

/* Both sockets closed, no error logged yet. */
void gossip_init(struct gossip_socks *g);

/* A non-blocking UDP socket on @port of every address of @family
 * (AF_INET: may send LAN broadcasts; AF_INET6: IPv6 only, so both
 * sockets can share the port). Returns the descriptor or -errno. */
int gossip_socket(int family, uint16_t port);

/* Joins ff05::1 on every interface but loopback and @mesh_ifname that has
 * not joined yet. Returns how many could not join (no IPv6 on them yet),
 * or -1 when the interfaces cannot be listed. */
int gossip_join_lan6(struct gossip_socks *g, const char *mesh_ifname);

/* Opens g->linkfd, told when a link or an address comes or goes.
 * Returns 0 or -errno. */
int gossip_watch_links(struct gossip_socks *g);

/* What gossip_links_changed() saw; lost notifications count as both. */
enum {
  LINKS_CHANGED = 1,   /* a link or an address came or went */
  LINKS_ADDR_GONE = 2, /* an address left another interface than the mesh's */
};

/* Reads every pending notification of g->linkfd; returns the LINKS_* bits
 * seen, 0 when nothing changed. An address leaving @skip_ifindex (the mesh
 * interface) is not LINKS_ADDR_GONE. */
int gossip_links_changed(struct gossip_socks *g, unsigned skip_ifindex);

/* Sends one datagram to @dst; errors are logged, never returned (the
 * engine retries what matters). */
void gossip_send(struct gossip_socks *g, const wgam_addr *dst,
                 const uint8_t *pkt, size_t len);

void gossip_close(struct gossip_socks *g);

#endif
