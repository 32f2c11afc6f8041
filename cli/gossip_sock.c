/* SPDX-License-Identifier: MIT */
#include <arpa/inet.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <errno.h>
#include <net/if.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "gossip_sock.h"
#include "log.h"
#include "sockaddr.h"

void gossip_init(struct gossip_socks *g) {
  memset(g, 0, sizeof(*g));
  g->fd4 = -1;
  g->fd6 = -1;
  g->linkfd = -1;
}

int gossip_socket(int family, uint16_t port) {
  struct sockaddr_storage ss;
  wgam_addr any = {.port = port};
  int one = 1, fd, rc, level, opt;
  socklen_t sl;

  if (family == AF_INET) {
    any.family = WGAM_AF_INET;
    level = SOL_SOCKET;
    opt = SO_BROADCAST;
  } else {
    any.family = WGAM_AF_INET6;
    level = IPPROTO_IPV6;
    opt = IPV6_V6ONLY;
  }
  sl = wgam_to_sockaddr(&ss, &any);
  fd = socket(family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return -errno;
  if (setsockopt(fd, level, opt, &one, sizeof(one)) < 0 ||
      bind(fd, (struct sockaddr *)&ss, sl) < 0) {
    rc = -errno;
    close(fd);
    return rc;
  }
  return fd;
}

/* Interfaces that went away are forgotten (the kernel drops their
 * membership); a new index is a new interface. */
int gossip_join_lan6(struct gossip_socks *g, const char *mesh_ifname) {
  struct if_nameindex *ifs = if_nameindex();
  unsigned keep[GOSSIP_MAX_JOINED6];
  size_t nkeep = 0;
  struct ipv6_mreq mr;
  int failed = 0;

  if (!ifs)
    return -1;
  inet_pton(AF_INET6, "ff05::1", &mr.ipv6mr_multiaddr);
  for (struct if_nameindex *i = ifs; i->if_index && nkeep < GOSSIP_MAX_JOINED6;
       i++) {
    size_t k;

    if (!strcmp(i->if_name, "lo") || !strcmp(i->if_name, mesh_ifname))
      continue;
    for (k = 0; k < g->njoined6 && g->joined6[k] != i->if_index; k++)
      ;
    if (k == g->njoined6) {
      int rc;

      mr.ipv6mr_interface = i->if_index;
      rc = setsockopt(g->fd6, IPPROTO_IPV6, IPV6_JOIN_GROUP, &mr, sizeof(mr));
      if (rc < 0 && errno != EADDRINUSE) {
        /* No IPv6 on it (yet): tried again at the next read. */
        log_msg(WGAM_LOG_TRACE, "cannot join ff05::1 on %s: %s", i->if_name,
                strerror(errno));
        failed++;
        continue;
      }
      log_debug("joined ff05::1 on %s", i->if_name);
    }
    keep[nkeep++] = i->if_index;
  }
  if_freenameindex(ifs);
  memcpy(g->joined6, keep, nkeep * sizeof(*keep));
  g->njoined6 = nkeep;
  return failed;
}

int gossip_watch_links(struct gossip_socks *g) {
  struct sockaddr_nl sa = {.nl_family = AF_NETLINK,
                           .nl_groups = RTMGRP_LINK | RTMGRP_IPV4_IFADDR |
                                        RTMGRP_IPV6_IFADDR};
  int fd, rc;

  fd = socket(AF_NETLINK, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC,
              NETLINK_ROUTE);
  if (fd < 0)
    return -errno;
  if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
    rc = -errno;
    close(fd);
    return rc;
  }
  g->linkfd = fd;
  return 0;
}

/* The LINKS_* bits of one datagram of notifications. */
static int links_seen(const char *buf, size_t n, unsigned skip_ifindex) {
  const struct nlmsghdr *h = (const struct nlmsghdr *)(const void *)buf;
  int seen = 0;

  for (; NLMSG_OK(h, n); h = NLMSG_NEXT(h, n)) {
    const struct ifaddrmsg *ifa = NLMSG_DATA(h);

    seen |= LINKS_CHANGED;
    if (h->nlmsg_type == RTM_DELADDR &&
        h->nlmsg_len >= NLMSG_LENGTH(sizeof(*ifa)) &&
        ifa->ifa_index != skip_ifindex)
      seen |= LINKS_ADDR_GONE;
  }
  return seen;
}

int gossip_links_changed(struct gossip_socks *g, unsigned skip_ifindex) {
  _Alignas(struct nlmsghdr) char buf[8192];
  int seen = 0;

  for (;;) {
    ssize_t n = recv(g->linkfd, buf, sizeof(buf), 0);

    if (n > 0) {
      seen |= links_seen(buf, (size_t)n, skip_ifindex);
      continue;
    }
    if (n < 0 && errno == EINTR)
      continue;
    /* ENOBUFS: notifications were lost, so anything may have changed. */
    if (n < 0 && errno == ENOBUFS) {
      seen |= LINKS_CHANGED | LINKS_ADDR_GONE;
      continue;
    }
    return seen;
  }
}

static void addr_str(char *dst, size_t n, const wgam_addr *a) {
  if (wgam_addr_format(dst, n, a, 1) < 0)
    snprintf(dst, n, "?");
}

void gossip_send(struct gossip_socks *g, const wgam_addr *dst,
                 const uint8_t *pkt, size_t len) {
  struct sockaddr_storage ss;
  socklen_t sl = wgam_to_sockaddr(&ss, dst);
  enum gossip_send_kind kind;
  char s[WGAM_ADDR_STRLEN];
  int fd, err;

  if (dst->family == WGAM_AF_INET) {
    static const uint8_t bcast[4] = {255, 255, 255, 255};

    kind = memcmp(dst->ip, bcast, 4) ? GOSSIP_SEND_V4 : GOSSIP_SEND_V4_BCAST;
    fd = g->fd4;
  } else {
    kind = dst->ip[0] == 0xff ? GOSSIP_SEND_V6_MCAST : GOSSIP_SEND_V6;
    fd = g->fd6;
  }
  if (fd < 0 || !sl) {
    if (g->send_errno[kind] != EAFNOSUPPORT) {
      log_warn("cannot send gossip over IPv%d: no socket",
               dst->family == WGAM_AF_INET ? 4 : 6);
      g->send_errno[kind] = EAFNOSUPPORT;
    }
    return;
  }
  if (sendto(fd, pkt, len, 0, (struct sockaddr *)&ss, sl) >= 0) {
    if (g->send_errno[kind]) {
      log_info("sending gossip %s works again",
               kind == GOSSIP_SEND_V4_BCAST || kind == GOSSIP_SEND_V6_MCAST
                   ? "broadcasts"
                   : "datagrams");
      g->send_errno[kind] = 0;
    }
    return;
  }
  err = errno;
  if (err == EAGAIN || err == EINTR) {
    log_debug("gossip socket full: datagram dropped");
    return;
  }
  /* Kernel WireGuard refuses traffic to a peer without a session (ENOKEY)
   * or without an endpoint (EDESTADDRREQ): normal before a handshake, and
   * the engine retries; wireguard-go drops such packets silently. */
  if (err == ENOKEY || err == EDESTADDRREQ) {
    addr_str(s, sizeof(s), dst);
    log_debug("gossip to %s not sent yet: %s", s, strerror(err));
    return;
  }
  /* Once per kind and error, not once per tick: ENETUNREACH on the LAN
   * broadcast repeats every minute on a host without a default route. */
  if (g->send_errno[kind] != err) {
    addr_str(s, sizeof(s), dst);
    log_warn("cannot send gossip to %s: %s (logged once)", s, strerror(err));
    g->send_errno[kind] = err;
  }
}

void gossip_close(struct gossip_socks *g) {
  if (g->fd4 >= 0)
    close(g->fd4);
  if (g->fd6 >= 0)
    close(g->fd6);
  if (g->linkfd >= 0)
    close(g->linkfd);
  g->fd4 = -1;
  g->fd6 = -1;
  g->linkfd = -1;
}
