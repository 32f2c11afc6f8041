/* SPDX-License-Identifier: MIT */
/*
 * Port mapping worker: PCP, NAT-PMP and UPnP IGD, off the event loop.
 *
 * One thread owns every socket and all miniupnpc state. The event loop posts
 * requests (renew, stop) under a mutex and wakes the worker through an
 * eventfd; the worker tells the loop about a changed list of external
 * endpoints through another eventfd.
 *
 * Order of an attempt, so that a gateway speaking any of the three is found
 * within a few seconds: a PCP MAP request and a NAT-PMP external address
 * request go together to the default gateway (UDP 5351), resent after
 * 250 ms, 500 ms, 1 s; an ICMP "port unreachable" ends that at once. PCP is
 * taken when it answers; NAT-PMP when it answers and PCP does not (or says
 * it is not spoken). Only then UPnP IGD discovery (2 s of SSDP). A gateway
 * answering nothing costs 4 s per attempt, in this thread only.
 *
 * A mapping is renewed at half its lease with the protocol that made it; a
 * renewal that fails starts a full attempt. The gateway's announcements on
 * 224.0.0.1:5350 (PCP ANNOUNCE, NAT-PMP address change) and a PCP or
 * NAT-PMP epoch that shows lost state trigger an attempt at once. Failures
 * are retried with a backoff (2 s doubling up to 15 min, so a gateway that
 * answers late is still found in the first seconds); a failure kind is
 * logged once when it starts, at debug level while it repeats.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "gateway.h"
#include "log.h"
#include "natpmp.h"
#include "pcp.h"
#include "portmap.h"
#include "upnp.h"

/* Lease asked for (tests shorten it with WGAM_PORTMAP_LEASE_S). */
#define LEASE_S 300u
/* IPv6 pinhole lease (the standard allows 1..86400 s). */
#define PINHOLE_LEASE_S 300u
/* PCP/NAT-PMP: first retransmission after this, doubling; a gateway that
 * answered nothing within PROBE_MS is not spoken to again this attempt. */
#define RETRY0_MS 250
#define PROBE_MS 2000
/* A NAT-PMP answer waits this long for the PCP answer of the same server. */
#define PCP_GRACE_MS 300
/* Deleting at exit waits this long per protocol. */
#define DELETE_MS 1000
/* Retry delay after a failure: doubles from BACKOFF_MIN_MS (tests change it
 * with WGAM_UPNP_BACKOFF_MS) up to BACKOFF_MAX_MS. */
#define BACKOFF_MIN_MS 2000ull
#define BACKOFF_MAX_MS (15ull * 60 * 1000)
/* After a failed pinhole: IPv6 discovery costs 2 s of SSDP. */
#define PINHOLE_RETRY_MS (5ull * 60 * 1000)
/* Renewals are at least this far apart. */
#define RENEW_MIN_MS 1000ull
/* A permanent mapping is checked (external address) this often. */
#define PERMANENT_CHECK_MS (150ull * 1000)

#define Q_PCP 0x1u
#define Q_NAT_EXT 0x2u
#define Q_NAT_MAP 0x4u

/* How the last IPv4 attempt ended; logged on changes only. */
enum fail_kind {
  F_NONE,
  F_NOTHING,
  F_REFUSED,
  F_CONFLICT,
  F_MAP_ERROR,
  F_NO_EXTIP,
};

/* What a round of requests to the gateway brought back. */
struct answers {
  int refused; /* ICMP port unreachable: nothing listens on 5351 */
  int pcp;     /* 1 answered, -1 "version not supported" (NAT-PMP only) */
  struct pcp_response pcp_resp;
  int nat_ext;
  struct natpmp_response nat_ext_resp;
  int nat_map;
  struct natpmp_response nat_map_resp;
};

struct mapping {
  int active;
  enum portmap_proto proto;
  wgam_addr addr;
  uint32_t lifetime;
  uint64_t granted_ms;
};

struct portmap {
  pthread_t thread;
  pthread_mutex_t lock;
  int efd; /* to the event loop: results changed */
  int wfd; /* to the worker: a request is waiting */

  /* Shared with the event loop, under @lock. */
  int stop;
  int kick;
  uint16_t internal_port;
  int pending;
  size_t nresults;
  struct portmap_endpoint results[PORTMAP_MAX];

  /* Worker only. */
  uint16_t external_port;
  int ipv6;
  unsigned protocols;
  uint32_t lease_s;
  uint64_t backoff_min_ms, backoff_max_ms, backoff_ms;
  int in_backoff;
  uint16_t tried_port;
  enum fail_kind failed;
  uint64_t next_v4_ms, next_v6_ms;
  struct mapping v4, v6;
  int pinhole_failed;
  /* PCP/NAT-PMP transport: a socket connected to the gateway's 5351, our
   * address on it, and the announcement listener. */
  int sock, ann;
  uint8_t gw[4], local[4];
  uint8_t nonce[PCP_NONCE_LEN];
  int have_pcp_epoch, have_nat_epoch;
  uint32_t pcp_epoch, nat_epoch;
  uint64_t pcp_epoch_at, nat_epoch_at;
  int epoch_lost;
  int unmapping;
  int published;
  struct upnp_session *upnp;
};

static uint64_t now_ms(void) {
  struct timespec ts;

  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

const char *portmap_proto_name(enum portmap_proto proto) {
  switch (proto) {
  case PORTMAP_UPNP:
    return "upnp";
  case PORTMAP_PCP:
    return "pcp";
  case PORTMAP_NATPMP:
    return "natpmp";
  case PORTMAP_UPNP_PINHOLE:
    return "upnp-pinhole";
  }
  return "?";
}

static int stopping(portmap *pm) {
  int stop;

  pthread_mutex_lock(&pm->lock);
  stop = pm->stop;
  pthread_mutex_unlock(&pm->lock);
  return stop;
}

static void drain(int fd) {
  uint64_t v;

  if (read(fd, &v, sizeof(v)) < 0 && errno != EAGAIN)
    log_debug("portmap: eventfd read: %s", strerror(errno));
}

static void wake(int fd) {
  uint64_t one = 1;

  /* Cannot fail short of a counter overflow: the reader drains it. */
  if (write(fd, &one, sizeof(one)) < 0)
    log_debug("portmap: eventfd write: %s", strerror(errno));
}

static void fill_endpoint(struct portmap_endpoint *e, const struct mapping *m) {
  e->proto = m->proto;
  e->addr = m->addr;
  e->lifetime = m->lifetime;
  e->expiry_ms =
      m->lifetime ? m->granted_ms + (uint64_t)m->lifetime * 1000u : UINT64_MAX;
}

/* Publishes the current endpoints; wakes the event loop if the list
 * changed (a renewal that moves only the expiry does not). */
static void publish(portmap *pm) {
  struct portmap_endpoint eps[PORTMAP_MAX];
  size_t n = 0, i;
  int changed;

  memset(eps, 0, sizeof(eps));
  if (pm->v4.active)
    fill_endpoint(&eps[n++], &pm->v4);
  if (pm->v6.active)
    fill_endpoint(&eps[n++], &pm->v6);
  pthread_mutex_lock(&pm->lock);
  /* The first outcome is news even when it is "none". */
  changed = !pm->published || n != pm->nresults;
  pm->published = 1;
  for (i = 0; i < n && !changed; i++)
    changed = eps[i].proto != pm->results[i].proto ||
              eps[i].lifetime != pm->results[i].lifetime ||
              memcmp(&eps[i].addr, &pm->results[i].addr, sizeof(wgam_addr));
  memcpy(pm->results, eps, sizeof(eps));
  pm->nresults = n;
  if (changed)
    pm->pending = 1;
  pthread_mutex_unlock(&pm->lock);
  if (changed)
    wake(pm->efd);
}

static const char *addr_fmt(char *buf, size_t len, const wgam_addr *a) {
  char ip[INET6_ADDRSTRLEN] = "?";

  inet_ntop(a->family == WGAM_AF_INET ? AF_INET : AF_INET6, a->ip, ip,
            sizeof(ip));
  snprintf(buf, len, a->family == WGAM_AF_INET ? "%s:%u" : "[%s]:%u", ip,
           a->port);
  return buf;
}

/* ---- PCP and NAT-PMP transport ---------------------------------------- */

static void gw_close(portmap *pm) {
  if (pm->sock >= 0)
    close(pm->sock);
  if (pm->ann >= 0)
    close(pm->ann);
  pm->sock = pm->ann = -1;
}

/* Listens for the gateway's announcements on 224.0.0.1:5350. Best effort:
 * renewals notice changes too, only later. */
static void open_announcements(portmap *pm) {
  struct sockaddr_in sin = {.sin_family = AF_INET,
                            .sin_port = htons(PCP_CLIENT_PORT)};
  struct ip_mreq mreq;
  int one = 1, fd;

  fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  memset(&mreq, 0, sizeof(mreq));
  mreq.imr_multiaddr.s_addr = htonl(0xe0000001u);
  memcpy(&mreq.imr_interface.s_addr, pm->local, 4);
  if (bind(fd, (struct sockaddr *)&sin, sizeof(sin)) < 0 ||
      setsockopt(fd, IPPROTO_IP, IP_ADD_MEMBERSHIP, &mreq, sizeof(mreq)) < 0) {
    log_debug("portmap: cannot listen for announcements on 224.0.0.1:%u: %s",
              PCP_CLIENT_PORT, strerror(errno));
    close(fd);
    return;
  }
  pm->ann = fd;
}

/* Opens a socket to the default gateway's port 5351 (again if the gateway
 * changed). Returns 0 or -errno (-ENOENT: no default route). */
static int gw_open(portmap *pm) {
  struct sockaddr_in sin = {.sin_family = AF_INET,
                            .sin_port = htons(PCP_SERVER_PORT)};
  socklen_t len = sizeof(sin);
  uint8_t gw[4];
  char ifname[32];
  int fd, ret;

  ret = gateway_find(0, gw, ifname, sizeof(ifname));
  if (ret < 0)
    return ret;
  if (pm->sock >= 0 && memcmp(gw, pm->gw, 4) == 0)
    return 0;
  gw_close(pm);
  fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return -errno;
  memcpy(&sin.sin_addr.s_addr, gw, 4);
  if (connect(fd, (struct sockaddr *)&sin, sizeof(sin)) < 0 ||
      getsockname(fd, (struct sockaddr *)&sin, &len) < 0) {
    ret = -errno;
    close(fd);
    return ret;
  }
  memcpy(pm->gw, gw, 4);
  memcpy(pm->local, &sin.sin_addr.s_addr, 4);
  pm->sock = fd;
  pm->have_pcp_epoch = pm->have_nat_epoch = 0;
  log_debug("portmap: default gateway %u.%u.%u.%u on %s, our address "
            "%u.%u.%u.%u",
            gw[0], gw[1], gw[2], gw[3], ifname, pm->local[0], pm->local[1],
            pm->local[2], pm->local[3]);
  open_announcements(pm);
  return 0;
}

/* Checks a server epoch; a lost state asks for a new attempt. */
static void check_epoch(portmap *pm, int pcp, uint32_t epoch) {
  uint64_t s = now_ms() / 1000u;
  int lost;

  if (pcp) {
    lost = pm->have_pcp_epoch &&
           pcp_epoch_lost(pm->pcp_epoch, pm->pcp_epoch_at, epoch, s);
    pm->have_pcp_epoch = 1;
    pm->pcp_epoch = epoch;
    pm->pcp_epoch_at = s;
  } else {
    lost = pm->have_nat_epoch &&
           natpmp_epoch_lost(pm->nat_epoch, pm->nat_epoch_at, epoch, s);
    pm->have_nat_epoch = 1;
    pm->nat_epoch = epoch;
    pm->nat_epoch_at = s;
  }
  if (lost) {
    log_info("portmap: the gateway's %s epoch went back: it lost its "
             "mappings; mapping again",
             pcp ? "PCP" : "NAT-PMP");
    pm->epoch_lost = 1;
  }
}

static int send_queries(portmap *pm, unsigned q, uint16_t internal_port,
                        uint32_t lifetime) {
  static const uint8_t any[4];
  uint8_t buf[PCP_MAP_REQUEST_LEN], client[16];
  uint16_t ext = pm->v4.active ? pm->v4.addr.port : pm->external_port;
  struct pcp_map map;
  ssize_t n;

  if (q & Q_PCP) {
    memset(&map, 0, sizeof(map));
    memcpy(map.nonce, pm->nonce, sizeof(map.nonce));
    map.protocol = PCP_PROTO_UDP;
    map.internal_port = internal_port;
    map.external_port = lifetime ? ext : 0;
    /* Suggest the address we have, else "any IPv4" (::ffff:0.0.0.0). */
    pcp_addr_from_v4(map.external_ip, pm->v4.active ? pm->v4.addr.ip : any);
    pcp_addr_from_v4(client, pm->local);
    n = pcp_encode_map(buf, sizeof(buf), client, lifetime, &map);
    if (n > 0 && send(pm->sock, buf, (size_t)n, 0) < 0)
      return -errno;
  }
  if (q & Q_NAT_EXT) {
    n = natpmp_encode_external(buf, sizeof(buf));
    if (n > 0 && send(pm->sock, buf, (size_t)n, 0) < 0)
      return -errno;
  }
  if (q & Q_NAT_MAP) {
    n = natpmp_encode_map(buf, sizeof(buf), internal_port, lifetime ? ext : 0,
                          lifetime);
    if (n > 0 && send(pm->sock, buf, (size_t)n, 0) < 0)
      return -errno;
  }
  return 0;
}

/* Files one datagram from the gateway; returns the queries it answered. */
static unsigned take_answer(portmap *pm, const uint8_t *pkt, size_t len,
                            unsigned q, uint16_t internal_port,
                            struct answers *a) {
  if (len >= 1 && pkt[0] == PCP_VERSION) {
    struct pcp_response r;

    if (!(q & Q_PCP) || pcp_decode(pkt, len, &r) < 0 || r.opcode != PCP_OP_MAP)
      return 0;
    /* A success is ours only if it echoes our nonce and port. */
    if (r.has_map && (memcmp(r.map.nonce, pm->nonce, PCP_NONCE_LEN) != 0 ||
                      r.map.internal_port != internal_port))
      return 0;
    if (r.result == PCP_SUCCESS && !r.has_map)
      return 0;
    check_epoch(pm, 1, r.epoch);
    a->pcp = 1;
    a->pcp_resp = r;
    return Q_PCP;
  }
  if (len >= 1 && pkt[0] == NATPMP_VERSION) {
    struct natpmp_response r;

    if (natpmp_decode(pkt, len, &r) < 0)
      return 0;
    if (r.opcode == NATPMP_OP_EXTERNAL && (q & Q_NAT_EXT)) {
      check_epoch(pm, 0, r.epoch);
      a->nat_ext = 1;
      a->nat_ext_resp = r;
      return Q_NAT_EXT;
    }
    if (r.opcode != NATPMP_OP_MAP_UDP)
      return 0;
    /* A NAT-PMP-only server answers our PCP request (opcode 1) in its own
     * version with "unsupported version"; our NAT-PMP requests never get
     * that result. */
    if (r.result == NATPMP_UNSUPP_VERSION && (q & Q_PCP)) {
      a->pcp = -1;
      return Q_PCP;
    }
    if (!(q & Q_NAT_MAP) || (r.has_map && r.internal_port != internal_port))
      return 0;
    check_epoch(pm, 0, r.epoch);
    a->nat_map = 1;
    a->nat_map_resp = r;
    return Q_NAT_MAP;
  }
  return 0;
}

/*
 * Sends the queries in @q to the gateway and collects answers until each
 * is answered, @timeout_ms passes, nothing listens there, or a stop is
 * asked for (-ECANCELED). When PCP and NAT-PMP are both asked and NAT-PMP
 * answers first, PCP gets PCP_GRACE_MS more.
 */
static int gw_round(portmap *pm, unsigned q, uint16_t internal_port,
                    uint32_t lifetime, struct answers *a, int timeout_ms) {
  uint64_t t0 = now_ms(), deadline = t0 + (uint64_t)timeout_ms;
  uint64_t next_send = t0, interval = RETRY0_MS;
  const unsigned asked = q;
  uint8_t buf[PCP_MAX_LEN];

  memset(a, 0, sizeof(*a));
  while (q) {
    struct pollfd pfd[2] = {{.fd = pm->sock, .events = POLLIN},
                            {.fd = pm->wfd, .events = POLLIN}};
    uint64_t now = now_ms(), until;
    ssize_t n;

    if (now >= deadline)
      break;
    if (now >= next_send) {
      int r = send_queries(pm, q, internal_port, lifetime);

      if (r == -ECONNREFUSED) {
        a->refused = 1;
        return 0;
      }
      if (r < 0)
        log_debug("portmap: sending to the gateway: %s", strerror(-r));
      next_send = now + interval;
      interval *= 2;
    }
    until = next_send < deadline ? next_send : deadline;
    if (poll(pfd, 2, (int)(until > now ? until - now : 0)) < 0)
      continue;
    if (pfd[1].revents & POLLIN) {
      /* A stop ends the round (not the deletions at exit); a renewal
       * request stays in pm->kick for the main loop. */
      if (!pm->unmapping && stopping(pm))
        return -ECANCELED;
      drain(pm->wfd);
    }
    if (!(pfd[0].revents & (POLLIN | POLLERR)))
      continue;
    for (;;) {
      n = recv(pm->sock, buf, sizeof(buf), 0);
      if (n < 0) {
        if (errno == ECONNREFUSED) {
          a->refused = 1;
          return 0;
        }
        break;
      }
      q &= ~take_answer(pm, buf, (size_t)n, q, internal_port, a);
    }
    if ((asked & Q_PCP) && (asked & Q_NAT_EXT) && a->nat_ext && q == Q_PCP &&
        deadline > now_ms() + PCP_GRACE_MS)
      deadline = now_ms() + PCP_GRACE_MS;
  }
  return 0;
}

/* ---- IPv4 mapping by each protocol ---------------------------------- */

/* Takes a PCP MAP answer. Returns 0 with the mapping set, -1 otherwise
 * (@msg says why). */
static int take_pcp(portmap *pm, const struct answers *a, char *msg,
                    size_t msglen) {
  const struct pcp_response *r = &a->pcp_resp;
  uint8_t ip[4];

  if (r->result != PCP_SUCCESS) {
    snprintf(msg, msglen, "pcp: the gateway refused the mapping: %s (%u)",
             pcp_result_name(r->result), r->result);
    return -1;
  }
  /* A lifetime of 0 means the mapping is gone, not permanent. */
  if (!pcp_addr_to_v4(ip, r->map.external_ip) || r->map.external_port == 0 ||
      (ip[0] | ip[1] | ip[2] | ip[3]) == 0 || r->lifetime == 0) {
    snprintf(msg, msglen,
             "pcp: the gateway's answer has no usable external "
             "IPv4 endpoint");
    return -1;
  }
  memset(&pm->v4.addr, 0, sizeof(pm->v4.addr));
  pm->v4.addr.family = WGAM_AF_INET;
  memcpy(pm->v4.addr.ip, ip, 4);
  pm->v4.addr.port = r->map.external_port;
  pm->v4.lifetime = r->lifetime;
  pm->v4.proto = PORTMAP_PCP;
  return 0;
}

static int take_natpmp(portmap *pm, const struct answers *a, char *msg,
                       size_t msglen) {
  const struct natpmp_response *x = &a->nat_ext_resp, *r = &a->nat_map_resp;

  if (!a->nat_map || !a->nat_ext) {
    snprintf(msg, msglen, "natpmp: the gateway stopped answering");
    return -1;
  }
  if (r->result != NATPMP_SUCCESS || x->result != NATPMP_SUCCESS) {
    unsigned res = r->result != NATPMP_SUCCESS ? r->result : x->result;

    snprintf(msg, msglen, "natpmp: the gateway refused the mapping: %s (%u)",
             natpmp_result_name(res), res);
    return -1;
  }
  if (r->external_port == 0 || r->lifetime == 0 || !x->has_external ||
      (x->external_ip[0] | x->external_ip[1] | x->external_ip[2] |
       x->external_ip[3]) == 0) {
    snprintf(msg, msglen,
             "natpmp: the gateway gives no usable external "
             "address");
    return -1;
  }
  memset(&pm->v4.addr, 0, sizeof(pm->v4.addr));
  pm->v4.addr.family = WGAM_AF_INET;
  memcpy(pm->v4.addr.ip, x->external_ip, 4);
  pm->v4.addr.port = r->external_port;
  pm->v4.lifetime = r->lifetime;
  pm->v4.proto = PORTMAP_NATPMP;
  return 0;
}

/* Maps by PCP or NAT-PMP (@proto), or probes both when @proto is -1.
 * Returns 0 when mapped, -1 with @msg and *@kind otherwise. */
static int map_gateway(portmap *pm, int proto, uint16_t internal_port,
                       char *msg, size_t msglen, enum fail_kind *kind) {
  unsigned q = 0;
  struct answers a;
  int r;

  *kind = F_NOTHING;
  r = gw_open(pm);
  if (r < 0) {
    snprintf(msg, msglen, "portmap: no default gateway for PCP/NAT-PMP (%s)",
             strerror(-r));
    return -1;
  }
  if ((proto < 0 || proto == PORTMAP_PCP) &&
      (pm->protocols & PORTMAP_MASK(PORTMAP_PCP)))
    q |= Q_PCP;
  if ((proto < 0 || proto == PORTMAP_NATPMP) &&
      (pm->protocols & PORTMAP_MASK(PORTMAP_NATPMP)))
    q |= Q_NAT_EXT;
  if (proto == PORTMAP_NATPMP)
    q |= Q_NAT_MAP;
  if (!q)
    return -1;
  if (gw_round(pm, q, internal_port, pm->lease_s, &a, PROBE_MS) < 0)
    return -1;
  if (a.refused) {
    snprintf(msg, msglen,
             "portmap: nothing answers PCP or NAT-PMP on the "
             "gateway");
    return -1;
  }
  if (a.pcp == 1) {
    if (take_pcp(pm, &a, msg, msglen) == 0)
      return 0;
    *kind = F_REFUSED;
    log_debug("%s", msg);
    if (!a.nat_ext)
      return -1;
  }
  if (!a.nat_ext) {
    snprintf(msg, msglen,
             "portmap: the gateway answers neither PCP nor "
             "NAT-PMP");
    return -1;
  }
  if (!(q & Q_NAT_MAP)) {
    struct natpmp_response ext = a.nat_ext_resp;

    /* The probe found NAT-PMP: now the mapping itself. */
    if (gw_round(pm, Q_NAT_MAP, internal_port, pm->lease_s, &a, PROBE_MS) < 0)
      return -1;
    a.nat_ext = 1;
    a.nat_ext_resp = ext;
  }
  if (take_natpmp(pm, &a, msg, msglen) == 0)
    return 0;
  *kind = a.nat_map ? F_REFUSED : F_NOTHING;
  return -1;
}

static int map_upnp(portmap *pm, uint16_t internal_port, char *msg,
                    size_t msglen, enum fail_kind *kind) {
  uint32_t lease = pm->v4.active && pm->v4.proto == PORTMAP_UPNP
                       ? pm->v4.lifetime
                       : pm->lease_s;
  wgam_addr ext;
  int r;

  if (!pm->upnp && !(pm->upnp = upnp_session_new())) {
    snprintf(msg, msglen, "upnp: out of memory");
    *kind = F_MAP_ERROR;
    return -1;
  }
  r = upnp_map(pm->upnp, pm->external_port, internal_port, &lease, &ext, msg,
               msglen);
  switch (r) {
  case UPNP_OK:
    pm->v4.addr = ext;
    pm->v4.lifetime = lease;
    pm->v4.proto = PORTMAP_UPNP;
    return 0;
  case UPNP_NO_IGD:
    *kind = F_NOTHING;
    break;
  case UPNP_CONFLICT:
    *kind = F_CONFLICT;
    break;
  case UPNP_NO_EXTIP:
    *kind = F_NO_EXTIP;
    break;
  default:
    *kind = F_MAP_ERROR;
  }
  return -1;
}

/* Enters a failure: logged at warning level when the kind changes, at
 * debug level while it repeats; the next attempt waits for the backoff. */
static void fail(portmap *pm, enum fail_kind kind, const char *msg) {
  if (pm->failed != kind)
    log_warn("%s", msg);
  else
    log_debug("%s (retrying in %llu s)", msg,
              (unsigned long long)(pm->backoff_ms / 1000u));
  pm->failed = kind;
  pm->next_v4_ms = now_ms() + pm->backoff_ms;
  pm->backoff_ms *= 2;
  if (pm->backoff_ms > pm->backoff_max_ms)
    pm->backoff_ms = pm->backoff_max_ms;
  pm->in_backoff = 1;
}

static void do_v4(portmap *pm, uint16_t internal_port) {
  enum fail_kind kind = F_NOTHING, k;
  wgam_addr before = pm->v4.addr;
  int was_active = pm->v4.active, ok = -1;
  char msg[256] = "", m2[256] = "", s[64];

  pm->epoch_lost = 0;
  /* A mapping in place is renewed by the protocol that made it. */
  if (pm->v4.active) {
    if (pm->v4.proto == PORTMAP_UPNP)
      ok = map_upnp(pm, internal_port, msg, sizeof(msg), &kind);
    else
      ok = map_gateway(pm, (int)pm->v4.proto, internal_port, msg, sizeof(msg),
                       &kind);
    /* A stop cut the renewal short: the mapping stands, unmap() deletes
     * it. */
    if (ok < 0 && stopping(pm))
      return;
    if (ok < 0) {
      log_info("%s: renewal failed (%s); trying every protocol",
               portmap_proto_name(pm->v4.proto), msg);
      pm->v4.active = 0;
    }
  }
  if (ok < 0 && !stopping(pm) &&
      (pm->protocols &
       (PORTMAP_MASK(PORTMAP_PCP) | PORTMAP_MASK(PORTMAP_NATPMP))))
    ok = map_gateway(pm, -1, internal_port, msg, sizeof(msg), &kind);
  if (ok < 0 && !stopping(pm) && (pm->protocols & PORTMAP_MASK(PORTMAP_UPNP))) {
    ok = map_upnp(pm, internal_port, m2, sizeof(m2), &k);
    /* The more telling failure: a refusal beats "nobody answered". */
    if (ok < 0 && (k != F_NOTHING || kind == F_NOTHING)) {
      memcpy(msg, m2, sizeof(msg));
      kind = k;
    }
  }
  if (ok < 0) {
    if (stopping(pm))
      return;
    pm->v4.active = 0;
    if (kind == F_NOTHING)
      snprintf(msg, sizeof(msg),
               "portmap: no port mapping protocol answered (PCP, NAT-PMP, "
               "UPnP IGD); will retry with backoff");
    fail(pm, kind, msg);
    return;
  }
  pm->v4.active = 1;
  pm->v4.granted_ms = now_ms();
  /* A renewal asked for before this attempt returned (the daemon asks right
   * after portmap_start) is served by it. */
  pthread_mutex_lock(&pm->lock);
  if (pm->internal_port == internal_port)
    pm->kick = 0;
  pthread_mutex_unlock(&pm->lock);

  addr_fmt(s, sizeof(s), &pm->v4.addr);
  if (!was_active || pm->failed != F_NONE ||
      memcmp(&before, &pm->v4.addr, sizeof(before)) != 0) {
    if (pm->v4.addr.port != pm->external_port)
      log_info("%s: external port %u was not available: the gateway "
               "assigned %u",
               portmap_proto_name(pm->v4.proto), pm->external_port,
               pm->v4.addr.port);
    if (pm->v4.lifetime)
      log_info("%s: mapped external %s -> port %u/udp (lease %u s)",
               portmap_proto_name(pm->v4.proto), s, internal_port,
               pm->v4.lifetime);
    else
      log_info("%s: mapped external %s -> port %u/udp (permanent)",
               portmap_proto_name(pm->v4.proto), s, internal_port);
  } else {
    log_debug("%s: renewed mapping %s -> port %u/udp (lease %u s)",
              portmap_proto_name(pm->v4.proto), s, internal_port,
              pm->v4.lifetime);
  }
  pm->failed = F_NONE;
  pm->in_backoff = 0;
  pm->backoff_ms = pm->backoff_min_ms;
  /* Renewed at half the lease, at most once per RENEW_MIN_MS however short
   * a lease the gateway grants. */
  pm->next_v4_ms =
      pm->v4.granted_ms + (!pm->v4.lifetime ? PERMANENT_CHECK_MS
                           : pm->v4.lifetime * 500ull < RENEW_MIN_MS
                               ? RENEW_MIN_MS
                               : pm->v4.lifetime * 500ull);
  /* A server restarted while we were asking: map again at once. */
  if (pm->epoch_lost)
    pm->next_v4_ms = now_ms();
}

/* Opens or renews the IPv6 pinhole. Best effort: failures are logged once
 * (until a pinhole opens again) and the IPv4 mapping stands on its own. */
static void do_v6(portmap *pm, uint16_t internal_port) {
  char msg[256];
  wgam_addr ext;

  if (!pm->upnp && !(pm->upnp = upnp_session_new()))
    return;
  if (upnp_pinhole(pm->upnp, internal_port, PINHOLE_LEASE_S, &ext, msg,
                   sizeof(msg)) < 0) {
    if (!pm->pinhole_failed)
      log_info("%s", msg);
    else
      log_debug("%s", msg);
    pm->pinhole_failed = 1;
    pm->v6.active = 0;
    pm->next_v6_ms = now_ms() + PINHOLE_RETRY_MS;
    return;
  }
  pm->pinhole_failed = 0;
  pm->v6.active = 1;
  pm->v6.proto = PORTMAP_UPNP_PINHOLE;
  pm->v6.addr = ext;
  pm->v6.lifetime = PINHOLE_LEASE_S;
  pm->v6.granted_ms = now_ms();
  pm->next_v6_ms = pm->v6.granted_ms + (uint64_t)PINHOLE_LEASE_S * 500u;
}

/* A datagram on 224.0.0.1:5350 from our gateway: its external address or
 * its state changed, so map again now (and end a backoff: a gateway that
 * just came up is worth asking). */
static void handle_announcement(portmap *pm) {
  struct sockaddr_in from;
  socklen_t fromlen = sizeof(from);
  uint8_t buf[PCP_MAX_LEN];
  ssize_t n;

  while ((n = recvfrom(pm->ann, buf, sizeof(buf), 0, (struct sockaddr *)&from,
                       &fromlen)) >= 0) {
    struct pcp_response pr;
    struct natpmp_response nr;
    const char *what = NULL;

    fromlen = sizeof(from);
    if (memcmp(&from.sin_addr.s_addr, pm->gw, 4) != 0)
      continue;
    if (pcp_decode(buf, (size_t)n, &pr) == 0 && pr.opcode == PCP_OP_ANNOUNCE)
      what = "PCP ANNOUNCE";
    else if (natpmp_decode(buf, (size_t)n, &nr) == 0 &&
             nr.opcode == NATPMP_OP_EXTERNAL && nr.has_external) {
      if (pm->v4.active && memcmp(nr.external_ip, pm->v4.addr.ip, 4) == 0 &&
          pm->have_nat_epoch &&
          !natpmp_epoch_lost(pm->nat_epoch, pm->nat_epoch_at, nr.epoch,
                             now_ms() / 1000u))
        continue;
      what = "NAT-PMP external address";
    }
    if (!what)
      continue;
    log_info("portmap: the gateway announced a change (%s); mapping again",
             what);
    pm->next_v4_ms = now_ms();
    pm->in_backoff = 0;
    pm->backoff_ms = pm->backoff_min_ms;
  }
}

/* ---- cleanup ---------------------------------------------------------- */

static void unmap(portmap *pm) {
  struct answers a;

  pm->unmapping = 1;
  if (pm->v4.active && pm->sock >= 0 &&
      (pm->v4.proto == PORTMAP_PCP || pm->v4.proto == PORTMAP_NATPMP)) {
    unsigned q = pm->v4.proto == PORTMAP_PCP ? Q_PCP : Q_NAT_MAP;

    /* Lifetime 0 deletes (NAT-PMP: with external port 0). */
    gw_round(pm, q, pm->tried_port, 0, &a, DELETE_MS);
    if ((q == Q_PCP && a.pcp == 1 && a.pcp_resp.result == PCP_SUCCESS) ||
        (q == Q_NAT_MAP && a.nat_map &&
         a.nat_map_resp.result == NATPMP_SUCCESS))
      log_info("%s: removed the mapping of UDP port %u",
               portmap_proto_name(pm->v4.proto), pm->v4.addr.port);
    else
      log_warn("%s: removing the mapping of UDP port %u got no answer",
               portmap_proto_name(pm->v4.proto), pm->v4.addr.port);
  }
  /* Deletes what UPnP mapped (mapping and pinhole). */
  upnp_session_free(pm->upnp);
  pm->upnp = NULL;
  gw_close(pm);
}

static void *worker(void *arg) {
  portmap *pm = arg;
  uint16_t port;

  for (;;) {
    struct pollfd pfd[2];
    uint64_t now, until;
    int kick;

    pthread_mutex_lock(&pm->lock);
    if (pm->stop) {
      pthread_mutex_unlock(&pm->lock);
      break;
    }
    kick = pm->kick;
    pm->kick = 0;
    port = pm->internal_port;
    pthread_mutex_unlock(&pm->lock);

    now = now_ms();
    /* In backoff a renewal request must not defeat the backoff, unless the
     * port to map changed. */
    if (kick && (!pm->in_backoff || port != pm->tried_port)) {
      pm->next_v4_ms = now;
      if (pm->v6.active)
        pm->next_v6_ms = now;
    }
    if (now >= pm->next_v4_ms) {
      pm->tried_port = port;
      do_v4(pm, port);
    }
    if (pm->ipv6 && now_ms() >= pm->next_v6_ms && !stopping(pm))
      do_v6(pm, port);
    publish(pm);

    now = now_ms();
    until = pm->next_v4_ms;
    if (pm->ipv6 && pm->next_v6_ms < until)
      until = pm->next_v6_ms;
    if (until <= now)
      continue;
    /* An attempt may have opened (or closed) the announcement socket. */
    pfd[0] = (struct pollfd){.fd = pm->wfd, .events = POLLIN};
    pfd[1] = (struct pollfd){.fd = pm->ann, .events = POLLIN};
    if (poll(pfd, pm->ann >= 0 ? 2 : 1,
             until - now > 60000 ? 60000 : (int)(until - now)) > 0) {
      if (pfd[0].revents & POLLIN)
        drain(pm->wfd);
      if (pm->ann >= 0 && (pfd[1].revents & POLLIN))
        handle_announcement(pm);
    }
  }
  unmap(pm);
  return NULL;
}

/* ---- the event loop's side ------------------------------------------- */

static uint64_t env_u64(const char *name, uint64_t def) {
  const char *s = getenv(name);

  return s && atoll(s) > 0 ? (uint64_t)atoll(s) : def;
}

int portmap_start_protocols(portmap **ppm, uint16_t external_port,
                            uint16_t internal_port, int ipv6,
                            unsigned protocols) {
  sigset_t all, old;
  portmap *pm;
  int ret;

  *ppm = NULL;
  if (external_port == 0)
    return -EINVAL;
  pm = calloc(1, sizeof(*pm));
  if (!pm)
    return -ENOMEM;
  pm->external_port = external_port;
  pm->internal_port = internal_port;
  pm->ipv6 = ipv6 && (protocols & PORTMAP_MASK(PORTMAP_UPNP_PINHOLE));
  pm->protocols = protocols;
  pm->sock = pm->ann = -1;
  /* Tests shorten the lease and the backoff to see renewals and retries
   * in seconds. */
  pm->lease_s = (uint32_t)env_u64("WGAM_PORTMAP_LEASE_S", LEASE_S);
  pm->backoff_min_ms = env_u64("WGAM_UPNP_BACKOFF_MS", BACKOFF_MIN_MS);
  pm->backoff_max_ms = BACKOFF_MAX_MS > pm->backoff_min_ms * 15
                           ? BACKOFF_MAX_MS
                           : pm->backoff_min_ms * 15;
  pm->backoff_ms = pm->backoff_min_ms;
  if (getrandom(pm->nonce, sizeof(pm->nonce), 0) != sizeof(pm->nonce)) {
    /* Only needs to differ from other clients' nonces. */
    uint64_t t = now_ms() ^ ((uint64_t)getpid() << 32);

    memcpy(pm->nonce, &t, sizeof(t));
  }

  pm->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  pm->wfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (pm->efd < 0 || pm->wfd < 0) {
    ret = -errno;
    goto out;
  }
  pthread_mutex_init(&pm->lock, NULL);

  /* The worker takes no signals: they stay with the event loop (signalfd),
   * and a SIGPIPE from miniupnpc's send() on a reset connection becomes
   * EPIPE instead of killing the daemon. */
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  ret = -pthread_create(&pm->thread, NULL, worker, pm);
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  if (ret < 0) {
    pthread_mutex_destroy(&pm->lock);
    goto out;
  }
  *ppm = pm;
  return 0;

out:
  if (pm->efd >= 0)
    close(pm->efd);
  if (pm->wfd >= 0)
    close(pm->wfd);
  free(pm);
  return ret;
}

int portmap_start(portmap **ppm, uint16_t external_port, uint16_t internal_port,
                  int ipv6) {
  return portmap_start_protocols(ppm, external_port, internal_port, ipv6,
                                 PORTMAP_ALL);
}

int portmap_fd(const portmap *pm) {
  return pm->efd;
}

void portmap_renew(portmap *pm, uint16_t internal_port) {
  if (!pm)
    return;
  pthread_mutex_lock(&pm->lock);
  pm->kick = 1;
  pm->internal_port = internal_port;
  pthread_mutex_unlock(&pm->lock);
  wake(pm->wfd);
}

int portmap_results(portmap *pm, struct portmap_endpoint *out, size_t cap) {
  int ret = -EAGAIN;

  /* Drain first so a result posted after the check re-arms the fd. */
  drain(pm->efd);
  pthread_mutex_lock(&pm->lock);
  if (pm->pending) {
    pm->pending = 0;
    ret = (int)(pm->nresults < cap ? pm->nresults : cap);
    memcpy(out, pm->results, (size_t)ret * sizeof(*out));
  }
  pthread_mutex_unlock(&pm->lock);
  return ret;
}

int portmap_endpoints(portmap *pm, struct portmap_endpoint *out, size_t cap) {
  int n;

  pthread_mutex_lock(&pm->lock);
  n = (int)(pm->nresults < cap ? pm->nresults : cap);
  memcpy(out, pm->results, (size_t)n * sizeof(*out));
  pthread_mutex_unlock(&pm->lock);
  return n;
}

void portmap_stop(portmap *pm) {
  if (!pm)
    return;
  pthread_mutex_lock(&pm->lock);
  pm->stop = 1;
  pthread_mutex_unlock(&pm->lock);
  wake(pm->wfd);
  pthread_join(pm->thread, NULL);
  pthread_mutex_destroy(&pm->lock);
  close(pm->efd);
  close(pm->wfd);
  free(pm);
}
