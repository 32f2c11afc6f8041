/* SPDX-License-Identifier: MIT */
/*
 * The classic policy: the original daemon's 30 s loop.
 */
#include <stdlib.h>
#include <string.h>

#include "engine.h"

/* Rust's Ord for (SocketAddr, u64): V4 < V6, then address, port, time. */
static int endpoint_cmp_rust(const wgam_endpoint *a, const wgam_endpoint *b) {
  int c;
  size_t len;

  if (a->addr.family != b->addr.family)
    return a->addr.family == WGAM_AF_INET ? -1 : 1;
  len = a->addr.family == WGAM_AF_INET ? 4 : 16;
  c = memcmp(a->addr.ip, b->addr.ip, len);
  if (c)
    return c;
  if (a->addr.port != b->addr.port)
    return a->addr.port < b->addr.port ? -1 : 1;
  if (a->time != b->time)
    return a->time < b->time ? -1 : 1;
  return 0;
}

/* The original's loop body for one peer (classic policy). */
static void classic_peer(wgam_mesh *m, struct peer *p, wgam_tstamp ts) {
  wgam_endpoint list[MAX_CANDIDATES];
  size_t n = 0, i, j;
  int bad;

  if (has_lan(p) && ts >= ts_add(peer_lan(p)->seen, m->s.lan_timeout))
    memset(&peer_lan(p)->addr, 0, sizeof(peer_lan(p)->addr));
  bad = has_lan(p) && addr_valid(&p->dev_ep) &&
        !wgam_addr_equal(&peer_lan(p)->addr, &p->dev_ep);
  if (!bad && wgam_peer_connected(m, p, ts)) {
    wgam_peer_set_state(m, p, PEER_CONNECTED, ts);
    if (cold_full(p))
      p->cold->tries = 0;
    wgam_set_keepalive(m, p, m->s.keepalive_connected);
    return;
  }
  if (has_lan(p)) {
    list[n].addr = peer_lan(p)->addr;
    list[n++].time = 0;
  } else {
    for (i = 0; i < p->nknown; i++)
      if (wgam_endpoint_acceptable(m, &p->known[i].addr))
        list[n++] = p->known[i];
    for (i = 0; i < p->ncfg; i++) {
      list[n].addr = peer_cfg(p)[i];
      list[n++].time = 0;
    }
    for (i = 1; i < n; i++) {
      wgam_endpoint e = list[i];
      for (j = i; j > 0 && endpoint_cmp_rust(&list[j - 1], &e) > 0; j--)
        list[j] = list[j - 1];
      list[j] = e;
    }
  }
  if (n == 0) {
    wgam_peer_set_state(m, p, PEER_IDLE, ts);
    return;
  }
  {
    const wgam_addr *ep = &list[m->cycle % n].addr;
    uint8_t src = has_lan(p) ? WGAM_SOURCE_LAN : WGAM_SOURCE_GOSSIP;

    for (i = 0; i < p->ncfg; i++)
      if (wgam_addr_equal(ep, &peer_cfg(p)[i]))
        src = WGAM_SOURCE_CONFIG;
    for (i = 0; i < p->nknown; i++)
      if (wgam_addr_equal(ep, &p->known[i].addr))
        src = known_src(p)[i];
    wgam_peer_set_state(m, p, PEER_TRYING, ts);
    if (wgam_addr_equal(&p->dev_ep, ep))
      return; /* already using it */
    if (cold_full(p))
      p->cold->ntried = 0;
    wgam_try_endpoint(m, p, ep, src, ts);
  }
}

void wgam_classic_cycle(wgam_mesh *m, wgam_tstamp ts) {
  size_t i;
  for (i = 0; i < m->npeers; i++)
    if (i != m->self_idx)
      classic_peer(m, &m->peers[i], ts);
  m->cycle++;
}
