/* SPDX-License-Identifier: MIT */
/*
 * The roam watch (roam_watch.h). A packet socket of every interface
 * carries a classic BPF filter, rebuilt after each device read, that
 * passes a packet only when it is UDP to WireGuard's listen port, inbound,
 * not a fragment's tail, and its source address and port are none of the
 * endpoints the device had. The kernel runs it for every packet; at rest
 * nothing passes and the daemon is not woken.
 *
 * The filter is linear: a handful of instructions for every packet that
 * is not UDP to the port, five (IPv4) or eleven (IPv6) per endpoint for
 * those that are, which is why it holds ROAM_WATCH_MAX endpoints at most.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <linux/filter.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "roam_watch.h"

/* Sources reported and still unknown at a read, and strangers (still
 * unknown at the read after that: something sprays the port), left out
 * of the filter's passes from then on. */
#define REPORTED_MAX 8
#define STRANGERS_MAX 8
/* Bytes of a passed packet kept: an IPv4 header with options, or an IPv6
 * one, and the UDP ports. */
#define KEEP_BYTES 64
/* Header instructions, plus the per-endpoint ones, plus the strangers. */
#define PROG_MAX (32 + 11 * (ROAM_WATCH_MAX + STRANGERS_MAX))

struct roam_watch {
  int fd;
  unsigned skip_ifindex;
  uint16_t port;
  wgam_addr *known; /* sorted (cmp_addr) */
  wgam_addr *fresh; /* the next read's, while compared */
  size_t nknown, capknown;
  wgam_addr reported[REPORTED_MAX];
  uint8_t strikes[REPORTED_MAX]; /* reads it stayed unknown at */
  size_t nreported;
  wgam_addr strangers[STRANGERS_MAX];
  size_t nstrangers, stranger_next;
  int current; /* the attached filter is the one for the sets above */
  struct sock_filter prog[PROG_MAX];
};

static int in_list(const wgam_addr *list, size_t n, const wgam_addr *a) {
  size_t i;

  for (i = 0; i < n; i++)
    if (wgam_addr_equal(&list[i], a))
      return 1;
  return 0;
}

static int known(const struct roam_watch *w, const wgam_addr *a) {
  return in_list(w->known, w->nknown, a) ||
         in_list(w->strangers, w->nstrangers, a);
}

/* Any total order: sets of endpoints are compared sorted. wgam_addr has
 * no padding and its unused bytes are zero (the device reads memset it). */
static int cmp_addr(const void *a, const void *b) {
  return memcmp(a, b, sizeof(wgam_addr));
}

struct prog {
  struct sock_filter *insn;
  size_t n;
};

static void emit(struct prog *p, uint16_t code, uint8_t jt, uint8_t jf,
                 uint32_t k) {
  p->insn[p->n++] = (struct sock_filter){code, jt, jf, k};
}

/* Drops the packet unless the accumulator equals @k. */
static void need(struct prog *p, uint32_t k) {
  emit(p, BPF_JMP | BPF_JEQ | BPF_K, 1, 0, k);
  emit(p, BPF_RET | BPF_K, 0, 0, 0);
}

static uint32_t word(const uint8_t *b) {
  return (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 |
         b[3];
}

/* Drops a packet from @a: its source address, then its source port. */
static void skip_v4(struct prog *p, const wgam_addr *a) {
  emit(p, BPF_LD | BPF_W | BPF_ABS, 0, 0, 12);
  emit(p, BPF_JMP | BPF_JEQ | BPF_K, 0, 3, word(a->ip));
  emit(p, BPF_LD | BPF_H | BPF_IND, 0, 0, 0); /* X: the UDP header */
  emit(p, BPF_JMP | BPF_JEQ | BPF_K, 0, 1, a->port);
  emit(p, BPF_RET | BPF_K, 0, 0, 0);
}

static void skip_v6(struct prog *p, const wgam_addr *a) {
  for (uint8_t i = 0; i < 4; i++) {
    emit(p, BPF_LD | BPF_W | BPF_ABS, 0, 0, 8 + 4u * i);
    emit(p, BPF_JMP | BPF_JEQ | BPF_K, 0, (uint8_t)(9 - 2 * i),
         word(a->ip + 4 * i));
  }
  emit(p, BPF_LD | BPF_H | BPF_ABS, 0, 0, 40);
  emit(p, BPF_JMP | BPF_JEQ | BPF_K, 0, 1, a->port);
  emit(p, BPF_RET | BPF_K, 0, 0, 0);
}

static void skip_all(const struct roam_watch *w, struct prog *p, int family) {
  size_t i;

  for (i = 0; i < w->nknown + w->nstrangers; i++) {
    const wgam_addr *a =
        i < w->nknown ? &w->known[i] : &w->strangers[i - w->nknown];

    if (a->family != family)
      continue;
    if (family == WGAM_AF_INET)
      skip_v4(p, a);
    else
      skip_v6(p, a);
  }
}

/* The filter for the known set (see the top of this file). */
static size_t build(struct roam_watch *w) {
  struct prog p = {w->prog, 0};
  size_t ja;

  /* Inbound only (a packet socket sees what we send too). */
  emit(&p, BPF_LD | BPF_W | BPF_ABS, 0, 0, SKF_AD_OFF + SKF_AD_PKTTYPE);
  emit(&p, BPF_JMP | BPF_JEQ | BPF_K, 0, 1, PACKET_OUTGOING);
  emit(&p, BPF_RET | BPF_K, 0, 0, 0);
  if (w->skip_ifindex) {
    emit(&p, BPF_LD | BPF_W | BPF_ABS, 0, 0, SKF_AD_OFF + SKF_AD_IFINDEX);
    emit(&p, BPF_JMP | BPF_JEQ | BPF_K, 0, 1, w->skip_ifindex);
    emit(&p, BPF_RET | BPF_K, 0, 0, 0);
  }
  emit(&p, BPF_LD | BPF_W | BPF_ABS, 0, 0, SKF_AD_OFF + SKF_AD_PROTOCOL);
  /* IPv4 goes to its part past IPv6's, which may be longer than a
   * conditional jump reaches. */
  emit(&p, BPF_JMP | BPF_JEQ | BPF_K, 1, 0, ETH_P_IPV6);
  ja = p.n;
  emit(&p, BPF_JMP | BPF_JA, 0, 0, 0);
  /* IPv6: UDP right after the fixed header, to the port. */
  emit(&p, BPF_LD | BPF_B | BPF_ABS, 0, 0, 6);
  need(&p, IPPROTO_UDP);
  emit(&p, BPF_LD | BPF_H | BPF_ABS, 0, 0, 42);
  need(&p, w->port);
  skip_all(w, &p, WGAM_AF_INET6);
  emit(&p, BPF_RET | BPF_K, 0, 0, KEEP_BYTES);
  /* IPv4: UDP, the first fragment (the only one with ports), to the port. */
  p.insn[ja].k = (uint32_t)(p.n - ja - 1);
  need(&p, ETH_P_IP);
  emit(&p, BPF_LD | BPF_B | BPF_ABS, 0, 0, 9);
  need(&p, IPPROTO_UDP);
  emit(&p, BPF_LD | BPF_H | BPF_ABS, 0, 0, 6);
  emit(&p, BPF_JMP | BPF_JSET | BPF_K, 0, 1, 0x1fff);
  emit(&p, BPF_RET | BPF_K, 0, 0, 0);
  emit(&p, BPF_LDX | BPF_B | BPF_MSH, 0, 0, 0);
  emit(&p, BPF_LD | BPF_H | BPF_IND, 0, 0, 2);
  need(&p, w->port);
  skip_all(w, &p, WGAM_AF_INET);
  emit(&p, BPF_RET | BPF_K, 0, 0, KEEP_BYTES);
  return p.n;
}

static int attach(struct roam_watch *w, size_t n) {
  struct sock_fprog fprog = {.len = (unsigned short)n, .filter = w->prog};

  if (setsockopt(w->fd, SOL_SOCKET, SO_ATTACH_FILTER, &fprog, sizeof(fprog)))
    return -errno;
  return 0;
}

int roam_watch_open(struct roam_watch **pw) {
  struct roam_watch *w = calloc(1, sizeof(*w));
  struct sockaddr_ll sll = {.sll_family = AF_PACKET,
                            .sll_protocol = htons(ETH_P_ALL)};
  int rcvbuf = 4096, rc;

  if (!w)
    return -ENOMEM;
  /* Protocol 0: nothing is queued before the filter is in place. */
  w->fd = socket(AF_PACKET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (w->fd < 0) {
    rc = -errno;
    free(w);
    return rc;
  }
  /* Nothing passes until the first set: no port yet. */
  w->prog[0] = (struct sock_filter){BPF_RET | BPF_K, 0, 0, 0};
  /* A burst is one hint: a few packets are all we need to queue. */
  setsockopt(w->fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
  if ((rc = attach(w, 1)) ||
      (bind(w->fd, (struct sockaddr *)&sll, sizeof(sll)) && (rc = -errno))) {
    roam_watch_close(w);
    return rc;
  }
  *pw = w;
  return 0;
}

int roam_watch_fd(const struct roam_watch *w) {
  return w->fd;
}

/* A source still unknown at two reads in a row is a stranger. */
static int judge_reported(struct roam_watch *w) {
  size_t i, kept = 0;
  int again = 0;

  for (i = 0; i < w->nreported; i++) {
    const wgam_addr *a = &w->reported[i];

    if (known(w, a))
      continue;
    if (w->strikes[i]++) {
      w->current = 0;
      w->strangers[w->stranger_next] = *a;
      w->stranger_next = (w->stranger_next + 1) % STRANGERS_MAX;
      if (w->nstrangers < STRANGERS_MAX)
        w->nstrangers++;
      continue;
    }
    again = 1;
    w->reported[kept] = *a;
    w->strikes[kept++] = w->strikes[i];
  }
  w->nreported = kept;
  return again;
}

int roam_watch_set(struct roam_watch *w, const wgam_device *dev,
                   unsigned skip_ifindex) {
  size_t i, n = 0;
  wgam_addr *known;
  int again, rc;

  if (dev->npeers > ROAM_WATCH_MAX) {
    w->prog[0] = (struct sock_filter){BPF_RET | BPF_K, 0, 0, 0};
    attach(w, 1);
    w->current = 0;
    return -E2BIG;
  }
  if (dev->npeers > w->capknown) {
    known = realloc(w->known, dev->npeers * sizeof(*known));
    if (!known)
      return -ENOMEM;
    w->known = known;
    known = realloc(w->fresh, dev->npeers * sizeof(*known));
    if (!known)
      return -ENOMEM;
    w->fresh = known;
    w->capknown = dev->npeers;
  }
  /* A device at rest reads the same set every time (wireguard-go lists
   * its peers in another order each time): the filter is rebuilt and
   * attached (compiled again by the kernel) only when the set changed. */
  if (w->port != dev->listen_port || w->skip_ifindex != skip_ifindex)
    w->current = 0;
  for (i = 0; i < dev->npeers; i++)
    if (dev->peers[i].endpoint.family != WGAM_AF_NONE)
      w->fresh[n++] = dev->peers[i].endpoint;
  /* No peer may have an endpoint yet: then both arrays can be NULL,
   * which qsort, memcmp and memcpy must not see, even for 0 bytes. */
  if (n) {
    qsort(w->fresh, n, sizeof(*w->fresh), cmp_addr);
    if (n != w->nknown || memcmp(w->fresh, w->known, n * sizeof(*w->known)))
      w->current = 0;
    memcpy(w->known, w->fresh, n * sizeof(*w->known));
  } else if (w->nknown) {
    w->current = 0;
  }
  w->nknown = n;
  w->port = dev->listen_port;
  w->skip_ifindex = skip_ifindex;
  again = judge_reported(w);
  if (!w->current) {
    rc = attach(w, build(w));
    if (rc)
      return rc;
    w->current = 1;
  }
  return again;
}

/* The source of a packet that starts at its network header. */
static int source(wgam_addr *a, const uint8_t *b, size_t n, uint16_t proto) {
  memset(a, 0, sizeof(*a));
  if (proto == ETH_P_IP && n >= 20 && (size_t)(b[0] & 0xf) * 4 + 4 <= n) {
    size_t ihl = (size_t)(b[0] & 0xf) * 4;

    a->family = WGAM_AF_INET;
    memcpy(a->ip, b + 12, 4);
    a->port = (uint16_t)(b[ihl] << 8 | b[ihl + 1]);
    return 0;
  }
  if (proto == ETH_P_IPV6 && n >= 44) {
    a->family = WGAM_AF_INET6;
    memcpy(a->ip, b + 8, 16);
    a->port = (uint16_t)(b[40] << 8 | b[41]);
    return 0;
  }
  return -1;
}

int roam_watch_read(struct roam_watch *w, wgam_addr *first) {
  uint8_t buf[KEEP_BYTES];
  int unknown = 0;

  for (;;) {
    struct sockaddr_ll sll;
    socklen_t sl = sizeof(sll);
    ssize_t n = recvfrom(w->fd, buf, sizeof(buf), MSG_TRUNC,
                         (struct sockaddr *)&sll, &sl);
    wgam_addr a;

    if (n < 0)
      break; /* EAGAIN: drained */
    if (source(&a, buf, (size_t)n < sizeof(buf) ? (size_t)n : sizeof(buf),
               ntohs(sll.sll_protocol)) ||
        known(w, &a))
      continue;
    if (!unknown)
      *first = a;
    unknown = 1;
    if (!in_list(w->reported, w->nreported, &a) &&
        w->nreported < REPORTED_MAX) {
      w->strikes[w->nreported] = 0;
      w->reported[w->nreported++] = a;
    }
  }
  return unknown;
}

void roam_watch_close(struct roam_watch *w) {
  if (!w)
    return;
  if (w->fd >= 0)
    close(w->fd);
  free(w->known);
  free(w->fresh);
  free(w);
}
