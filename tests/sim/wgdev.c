/* SPDX-License-Identifier: MIT */
/*
 * The simulated network and WireGuard devices.
 *
 * Network: public hosts and NAT routers have addresses in 198.18.0.0/15;
 * hosts behind a router share its LAN (10.R.R.h). A NAT is full cone, port
 * restricted cone or symmetric; a mapping lives while packets use it (either
 * direction, as Linux conntrack) and for the NAT timeout after. There is no
 * hairpinning: a host cannot reach its own router's public address.
 *
 * WireGuard: a handshake is an initiation sent to the configured endpoint
 * and a response sent back to where the initiation came from; both must get
 * through the NATs. The initiator retries every 5 s, for 90 s or for ever
 * while a persistent keepalive is set. Any authenticated packet moves the
 * receiver's endpoint to its observed source (roaming). Transport data needs
 * a session; data for a peer without one starts a handshake and is dropped.
 *
 * Cryptokey routing: a datagram to a mesh address goes to the peer entry
 * that holds the address as an allowed IP (none: dropped), and a datagram
 * received on an entry is accepted only if its inner source address is one
 * of that entry's allowed IPs. An allowed IP is on one entry at most: adding
 * it to an entry moves it from whichever entry held it. A node marked as
 * relay forwards what is not for itself to the peer entry that holds the
 * destination address, when that entry is the destination's own (a relayed
 * path is never a chain); any other node drops it.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sim.h"

#define LAN_LATENCY_NS 500000ULL

uint32_t lan_ip(uint32_t router, uint32_t host) {
  return LAN_BASE | (router << 8) | (host + 2);
}

static int is_lan(uint32_t ip) {
  return (ip & 0xff000000u) == LAN_BASE;
}

/* ---------------------------------------------------------------------- */
/* Mapping table                                                          */
/* ---------------------------------------------------------------------- */

static size_t map_hash(uint64_t k) {
  k ^= k >> 33;
  k *= 0xff51afd7ed558ccdULL;
  k ^= k >> 33;
  return (size_t)k;
}

int maptab_init(struct maptab *t) {
  t->cap = 1 << 16;
  t->n = 0;
  t->e = calloc(t->cap, sizeof(*t->e));
  return t->e ? 0 : -ENOMEM;
}

void maptab_free(struct maptab *t) {
  free(t->e);
  t->e = NULL;
}

static void maptab_put(struct maptab *t, uint64_t key, uint64_t val);

static void maptab_grow(struct maptab *t) {
  struct maptab old = *t;

  t->cap *= 2;
  t->n = 0;
  t->e = calloc(t->cap, sizeof(*t->e));
  if (!t->e)
    fatal_nomem();
  for (size_t i = 0; i < old.cap; i++)
    if (old.e[i].key)
      maptab_put(t, old.e[i].key, old.e[i].val);
  maptab_free(&old);
}

/* Keys are (ip << 16 | port) + 1, never 0. A newer mapping of the same
 * external port overwrites the old one, so nothing is ever deleted. */
static void maptab_put(struct maptab *t, uint64_t key, uint64_t val) {
  size_t i;

  if ((t->n + 1) * 2 > t->cap)
    maptab_grow(t);
  for (i = map_hash(key) & (t->cap - 1); t->e[i].key;
       i = (i + 1) & (t->cap - 1))
    if (t->e[i].key == key)
      break;
  if (!t->e[i].key)
    t->n++;
  t->e[i].key = key;
  t->e[i].val = val;
}

static int maptab_get(const struct maptab *t, uint64_t key, uint64_t *val) {
  for (size_t i = map_hash(key) & (t->cap - 1); t->e[i].key;
       i = (i + 1) & (t->cap - 1))
    if (t->e[i].key == key) {
      *val = t->e[i].val;
      return 1;
    }
  return 0;
}

static uint64_t map_key(uint32_t ip, uint16_t port) {
  return (((uint64_t)ip << 16) | port) + 1;
}

uint32_t net_alloc_ip(struct sim *s, int32_t owner) {
  if (s->nips >= PUB_MAX)
    return 0;
  s->ip_owner[s->nips++] = owner;
  return PUB_BASE + s->nips;
}

static uint16_t alloc_port(struct sim *s, struct router *r, uint32_t node,
                           uint32_t peer) {
  uint16_t port = r->next_port++;

  if (r->next_port < 1024)
    r->next_port = 1024;
  maptab_put(&s->map, map_key(r->ip, port), ((uint64_t)node << 32) | peer);
  return port;
}

/* ---------------------------------------------------------------------- */
/* Packets                                                                */
/* ---------------------------------------------------------------------- */

static uint32_t pkt_alloc(struct sim *s) {
  if (s->npktfree > 0)
    return s->pktfree[--s->npktfree];
  if (s->npkts == s->pktcap) {
    uint32_t cap = s->pktcap ? s->pktcap * 2 : 4096;
    struct pkt *p = realloc(s->pkts, cap * sizeof(*p));
    uint32_t *f = realloc(s->pktfree, cap * sizeof(*f));

    if (!p || !f)
      fatal_nomem();
    s->pkts = p;
    s->pktfree = f;
    s->pktcap = cap;
  }
  return s->npkts++;
}

static size_t pay_class(size_t len) {
  return len ? (len + PAY_CLASS - 1) / PAY_CLASS : 1;
}

/* A payload buffer of @len bytes. The most recently freed buffer of
 * its class comes first: it is likely still in cache. */
static uint8_t *pay_alloc(struct sim *s, size_t len) {
  struct paypool *pp = &s->pay;
  size_t c = pay_class(len), size = c * PAY_CLASS;
  void *b = pp->free[c];

  if (b) {
    memcpy(&pp->free[c], b, sizeof(void *));
    /* Packets often leave in bursts (one announce to many peers): have
     * the next buffer's link ready. */
    __builtin_prefetch(pp->free[c]);
    return b;
  }
  if (pp->left < size) {
    uint8_t *slab = malloc(PAY_SLAB);

    if (!slab)
      fatal_nomem();
    memcpy(slab, &pp->slabs, sizeof(void *));
    pp->slabs = slab;
    pp->slab = slab + PAY_CLASS;
    pp->left = PAY_SLAB - PAY_CLASS;
  }
  b = pp->slab;
  pp->slab += size;
  pp->left -= size;
  return b;
}

static void pay_free(struct sim *s, uint8_t *b, size_t len) {
  size_t c = pay_class(len);

  memcpy(b, &s->pay.free[c], sizeof(void *));
  s->pay.free[c] = b;
}

void pay_release(struct paypool *pp) {
  while (pp->slabs) {
    void *next;

    memcpy(&next, pp->slabs, sizeof(void *));
    free(pp->slabs);
    pp->slabs = next;
  }
  memset(pp, 0, sizeof(*pp));
}

void pkt_free(struct sim *s, uint32_t idx) {
  struct pkt *p = &s->pkts[idx];

  if (p->data)
    pay_free(s, p->data, p->len);
  p->data = NULL;
  s->pktfree[s->npktfree++] = idx;
}

/*
 * The sending side: source address translation. @j is the peer the packet
 * is meant for (it keys the NAT slot). Returns 0 and the observed source,
 * or -1 if the packet cannot leave (LAN address of another LAN, hairpin).
 */
static int net_out(struct sim *s, uint32_t i, uint32_t j, uint32_t dip,
                   uint16_t dport, uint32_t *sip, uint16_t *sport) {
  struct node *n = &s->nodes[i];
  uint32_t timeout = (uint32_t)(s->p.nat_timeout_s * 1000);
  struct router *r;
  struct natslot *ns;

  if (is_lan(dip)) {
    if (n->router < 0 || ((dip >> 8) & 0xffff) != (uint32_t)n->router)
      return -1;
    *sip = lan_ip((uint32_t)n->router, n->host);
    *sport = WG_PORT;
    return 0;
  }
  if (n->router < 0) {
    *sip = n->pub_ip;
    *sport = WG_PORT;
    return 0;
  }
  r = &s->routers[n->router];
  if (dip == r->ip)
    return -1;
  ns = &n->ns[j];
  if (r->nat == NAT_SYMMETRIC) {
    if (!ns->sym_port || ns->filt_ip != dip || ns->filt_port != dport ||
        age(s, ns->filt) > timeout)
      ns->sym_port = alloc_port(s, r, i, j);
    *sport = ns->sym_port;
  } else {
    if (!n->map_port || age(s, n->map) > timeout)
      n->map_port = alloc_port(s, r, i, NO_PEER);
    n->map = s->stamp;
    *sport = n->map_port;
  }
  ns->filt_ip = dip;
  ns->filt_port = dport;
  ns->filt = s->stamp;
  *sip = r->ip;
  return 0;
}

/*
 * The receiving side: destination translation and filtering, at arrival.
 * Returns the receiving node, or -1.
 */
static int64_t net_in(struct sim *s, const struct pkt *p, uint32_t from) {
  uint32_t timeout = (uint32_t)(s->p.nat_timeout_s * 1000);
  uint32_t idx, h, peer;
  struct router *r;
  struct node *n;
  struct natslot *ns;
  uint64_t v;
  int32_t o;

  if (is_lan(p->dip)) {
    uint32_t rid = (p->dip >> 8) & 0xffff, host = (p->dip & 0xff) - 2;

    if (rid >= s->nrouters || host >= s->routers[rid].nhosts ||
        p->dport != WG_PORT || s->nodes[from].router != (int32_t)rid)
      return -1;
    return s->routers[rid].hosts[host];
  }
  idx = p->dip - PUB_BASE - 1;
  if (p->dip <= PUB_BASE || idx >= s->nips)
    return -1;
  o = s->ip_owner[idx];
  if (o >= 0) {
    n = &s->nodes[o];
    if (n->pub_ip != p->dip || p->dport != WG_PORT)
      return -1;
    return o;
  }
  r = &s->routers[-(o + 1)];
  if (r->ip != p->dip || !maptab_get(&s->map, map_key(p->dip, p->dport), &v))
    return -1;
  h = (uint32_t)(v >> 32);
  peer = (uint32_t)v;
  n = &s->nodes[h];
  if (peer == NO_PEER) {
    if (n->map_port != p->dport || age(s, n->map) > timeout)
      return -1;
    ns = &n->ns[from];
    if (r->nat == NAT_PORT_RESTRICTED &&
        (ns->filt_ip != p->sip || ns->filt_port != p->sport ||
         age(s, ns->filt) > timeout))
      return -1;
    n->map = s->stamp;
    if (r->nat == NAT_PORT_RESTRICTED)
      ns->filt = s->stamp;
    return h;
  }
  ns = &n->ns[peer];
  if (ns->sym_port != p->dport || age(s, ns->filt) > timeout ||
      ns->filt_ip != p->sip || ns->filt_port != p->sport)
    return -1;
  ns->filt = s->stamp;
  return h;
}

static uint64_t link_latency(struct sim *s, uint32_t i, uint32_t j,
                             uint32_t dip) {
  if (is_lan(dip))
    return LAN_LATENCY_NS;
  return s->nodes[i].acc_ns + s->nodes[j].acc_ns;
}

static void send_packet(struct sim *s, uint32_t i, uint32_t j, uint8_t type,
                        uint32_t dip, uint16_t dport, const uint8_t *data,
                        size_t len, uint32_t wire, uint32_t isrc,
                        uint32_t idst) {
  struct dpeer *dp = DP(s, i, j);
  uint32_t sip, idx;
  uint16_t sport;
  struct pkt *p;

  if (net_out(s, i, j, dip, dport, &sip, &sport) < 0) {
    s->st.drop_src++;
    if (s->tr)
      trace_drop(s, i, j, type, "source");
    return;
  }
  dp->tx = s->stamp;
  dp->tx_bytes += wire;
  dp->flags &= (uint8_t)~DP_DATA_RX;
  if (s->p.loss > 0 && rng_double(&s->net) < s->p.loss) {
    s->st.drop_loss++;
    if (s->tr)
      trace_drop(s, i, j, type, "loss");
    return;
  }
  idx = pkt_alloc(s);
  p = &s->pkts[idx];
  p->sip = sip;
  p->dip = dip;
  p->sport = sport;
  p->dport = dport;
  p->len = (uint16_t)len;
  p->type = type;
  p->sent = s->stamp;
  p->isrc = isrc;
  p->idst = idst;
  p->data = NULL;
  if (len > 0) {
    p->data = pay_alloc(s, len);
    memcpy(p->data, data, len);
  }
  if (evq_push(&s->q, s->now + link_latency(s, i, j, dip), EV_PKT, i, j, idx))
    fatal_nomem();
}

/* ---------------------------------------------------------------------- */
/* WireGuard                                                              */
/* ---------------------------------------------------------------------- */

static int session_valid(const struct sim *s, const struct dpeer *dp) {
  return dp->hs && age(s, dp->hs) < WG_REJECT_AFTER_TIME;
}

static void wg_send_init(struct sim *s, uint32_t i, uint32_t j) {
  struct dpeer *dp = DP(s, i, j);

  dp->init = s->stamp;
  dp->flags &= (uint8_t)~DP_INIT_LOST;
  if (s->tr)
    trace_send_init(s, i, j);
  if (!dp->ep_ip)
    return;
  send_packet(s, i, j, PKT_INIT, dp->ep_ip, dp->ep_port, NULL, 0, WG_INIT_LEN,
              i, j);
}

static void wg_handshake_start(struct sim *s, uint32_t i, uint32_t j) {
  struct dpeer *dp = DP(s, i, j);

  if (dp->flags & DP_PENDING)
    return;
  dp->flags |= DP_PENDING;
  dp->attempt = s->stamp;
  wg_send_init(s, i, j);
}

/* Sends on entry @j; a payload has the mesh addresses of @isrc and @idst
 * as its inner source and destination. */
void wg_send_data(struct sim *s, uint32_t i, uint32_t j, const uint8_t *data,
                  size_t len, uint32_t isrc, uint32_t idst) {
  struct dpeer *dp = DP(s, i, j);

  if (!(dp->flags & DP_PRESENT)) {
    s->st.drop_nopeer++;
    return;
  }
  if (!dp->ep_ip) {
    s->st.drop_noep++;
    /* WireGuard creates the initiation, fails to send it, and starts no
     * other before its retry time. */
    if (s->p.wg_strict && !session_valid(s, dp))
      wg_handshake_start(s, i, j);
    return;
  }
  if (!session_valid(s, dp)) {
    /* WireGuard would stage the packet; we drop it (see the brief). */
    wg_handshake_start(s, i, j);
    if (len > 0)
      s->st.drop_nosession++;
    return;
  }
  if (age(s, dp->hs) >= WG_REKEY_AFTER_TIME)
    wg_handshake_start(s, i, j);
  send_packet(s, i, j, PKT_DATA, dp->ep_ip, dp->ep_port, data, len,
              (uint32_t)len + WG_DATA_OVERHEAD, isrc, idst);
}

/* A datagram from node @i to node @dst's mesh address, through the entry
 * that holds that address. */
void wg_send_inner(struct sim *s, uint32_t i, uint32_t dst, const uint8_t *data,
                   size_t len) {
  uint32_t x = dev_route(s, i, dst);

  if (x == NO_PEER) {
    s->st.drop_noroute++;
    return;
  }
  wg_send_data(s, i, x, data, len, i, dst);
}

/* Both ends hold a session with each other. */
int wg_live(struct sim *s, uint32_t i, uint32_t j) {
  const struct dpeer *a = DP(s, i, j), *b = DP(s, j, i);

  return (a->flags & DP_PRESENT) && (b->flags & DP_PRESENT) &&
         session_valid(s, a) && session_valid(s, b) && !s->nodes[i].dead &&
         !s->nodes[j].dead;
}

/* ---------------------------------------------------------------------- */
/* Allowed IPs                                                            */
/* ---------------------------------------------------------------------- */

static uint32_t pfx_holder(const struct sim *s, uint32_t i, uint32_t k) {
  return s->pfx[(size_t)i * s->n + k] - 1; /* 0 - 1 = NO_PEER */
}

/* Entry @x of device @i (NO_PEER: none) holds k's mesh address, or with
 * @pfx k's prefix. */
static void set_holder(struct sim *s, uint32_t i, uint32_t k, int pfx,
                       uint32_t x) {
  if (pfx) {
    uint32_t *h = &s->pfx[(size_t)i * s->n + k];

    if (*h && *h != k + 1)
      s->nforeign[i]--;
    *h = x + 1;
    if (*h && *h != k + 1)
      s->nforeign[i]++;
  } else {
    struct dpeer *dp = DP(s, i, k);

    if (dp_via(dp) != NO_PEER)
      s->nforeign[i]--;
    dp->flags &= (uint8_t)~DP_ALLOWED;
    dp_set_via(dp, NO_PEER);
    if (x == k) {
      dp->flags |= DP_ALLOWED;
    } else if (x != NO_PEER) {
      dp_set_via(dp, x);
      s->nforeign[i]++;
    }
  }
}

/* Removes every allowed IP of entry @j of device @i. */
static void clear_allowedips(struct sim *s, uint32_t i, uint32_t j) {
  if (dev_route(s, i, j) == j)
    set_holder(s, i, j, 0, NO_PEER);
  if (s->pfx && pfx_holder(s, i, j) == j)
    set_holder(s, i, j, 1, NO_PEER);
  for (uint32_t k = 0; s->nforeign[i] && k < s->n; k++) {
    if (dp_via(DP(s, i, k)) == j)
      set_holder(s, i, k, 0, NO_PEER);
    if (s->pfx && pfx_holder(s, i, k) == j)
      set_holder(s, i, k, 1, NO_PEER);
  }
}

/* Whose allowed IP @c is: node k's mesh address (*pfx 0) or, with
 * --prefixes, its prefix (*pfx 1). NO_PEER for anything else. */
static uint32_t cidr_owner(const struct sim *s, const wgam_cidr *c, int *pfx) {
  uint32_t ip, k;

  if (c->addr.family != WGAM_AF_INET)
    return NO_PEER;
  ip = addr_ip(&c->addr);
  if (c->prefixlen == 32 && ip > MESH_BASE && ip - MESH_BASE - 1 < s->n) {
    *pfx = 0;
    return ip - MESH_BASE - 1;
  }
  k = (ip - PFX_BASE) >> (32 - PFX_LEN);
  if (s->pfx && c->prefixlen == PFX_LEN && ip >= PFX_BASE && k < s->n &&
      ip == PFX_BASE + (k << (32 - PFX_LEN))) {
    *pfx = 1;
    return k;
  }
  return NO_PEER;
}

/*
 * Applies a peer update to entry @j of device @i as WireGuard does: a new
 * key creates the entry; REMOVE_ME deletes it with its allowed IPs;
 * REPLACE_ALLOWEDIPS drops the entry's allowed IPs before the list is
 * added; each listed IP moves from whichever entry held it.
 */
void wg_update(struct sim *s, uint32_t i, uint32_t j,
               const wgam_peer_update *u) {
  struct dpeer *dp = DP(s, i, j);

  if (s->tr)
    trace_update(s, i, j, u);
  if (u->flags & WGAM_PEER_REMOVE_ME) {
    uint8_t ever = dp->flags & DP_EVER;
    uint32_t via;

    clear_allowedips(s, i, j);
    via = dp_via(dp); /* j's address on another entry stays there */
    memset(dp, 0, sizeof(*dp));
    dp->flags = ever;
    dp_set_via(dp, via);
    return;
  }
  dp->flags |= DP_PRESENT;
  if (u->flags & WGAM_PEER_REPLACE_ALLOWEDIPS)
    clear_allowedips(s, i, j);
  for (size_t a = 0; a < u->nallowedips && a < WGAM_MAX_ALLOWEDIPS; a++) {
    int pfx = 0;
    uint32_t k = cidr_owner(s, &u->allowedips[a], &pfx);

    if (k == NO_PEER || k == i) {
      s->st.bad_update++;
      continue;
    }
    set_holder(s, i, k, pfx, j);
    if (!pfx)
      metric_route(s, i, k);
  }
  if (u->flags & WGAM_PEER_HAS_ENDPOINT) {
    if (u->endpoint.family == WGAM_AF_INET) {
      dp->ep_ip = addr_ip(&u->endpoint);
      dp->ep_port = u->endpoint.port;
    } else {
      s->st.bad_update++;
    }
  }
  if (u->flags & WGAM_PEER_HAS_KEEPALIVE)
    wg_set_keepalive(s, i, j, u->persistent_keepalive);
}

/* Setting a keepalive where there was none sends one at once, as the
 * kernel does. */
void wg_set_keepalive(struct sim *s, uint32_t i, uint32_t j, uint16_t ka) {
  struct dpeer *dp = DP(s, i, j);
  uint16_t old = dp->ka;

  dp->ka = ka;
  if (!old && ka)
    wg_send_data(s, i, j, NULL, 0, i, j);
}

void wg_tick(struct sim *s, uint32_t i) {
  struct dpeer *row = DP(s, i, 0);

  for (uint32_t j = 0; j < s->n; j++) {
    struct dpeer *dp = &row[j];
    uint32_t last;

    if (!(dp->flags & DP_PRESENT))
      continue;
    if (dp->flags & DP_PENDING) {
      if (!dp->ka && age(s, dp->attempt) >= WG_REKEY_ATTEMPT_TIME)
        dp->flags &= (uint8_t)~DP_PENDING;
      else if (age(s, dp->init) >= WG_REKEY_TIMEOUT)
        wg_send_init(s, i, j);
    }
    /* Persistent keepalive: due ka seconds after the last authenticated
     * packet in either direction. */
    last = dp->tx > dp->rx ? dp->tx : dp->rx;
    if (dp->ka && (!last || age(s, last) >= (uint32_t)dp->ka * 1000))
      wg_send_data(s, i, j, NULL, 0, i, j);
    else if ((dp->flags & DP_DATA_RX) &&
             age(s, dp->rx) >= WG_KEEPALIVE_TIMEOUT && session_valid(s, dp))
      wg_send_data(s, i, j, NULL, 0, i, j);
  }
}

static void note_rx(struct sim *s, uint32_t h, uint32_t from,
                    const struct pkt *p, uint32_t wire) {
  struct dpeer *dp = DP(s, h, from);

  int moved = dp->ep_ip != p->sip || dp->ep_port != p->sport;

  if (s->tr && !dp->ep_ip)
    trace_roam(s, h, from);
  dp->ep_ip = p->sip; /* roaming */
  dp->ep_port = p->sport;
  if (moved)
    node_roam_hint(s, h);
  dp->rx = s->stamp;
  dp->rx_bytes += wire;
  metric_rx(s, h, from);
  if (s->roam_node >= 0 && p->sent >= s->roam_stamp && s->roam_stamp) {
    uint32_t x = (uint32_t)s->roam_node;
    uint32_t *slot = NULL;

    if (h == x)
      slot = &s->rec_in[from];
    else if (from == x)
      slot = &s->rec_out[h];
    if (slot && !*slot) {
      uint32_t other = h == x ? from : h;

      *slot = s->stamp;
      if (s->rec_in[other] && s->rec_out[other] && reachable(s, x, other) &&
          ++s->roam_recovered == s->roam_reach) {
        s->recovered_ns = s->now;
        if (!s->p.quiet)
          fprintf(stderr,
                  "  [every pair of the moved node carried traffic again at "
                  "%.3f s, the last with %" PRIu32 "]\n",
                  (double)s->now / 1e9, other);
      }
    }
  }
}

/*
 * A payload that came on entry @from of node @h's device: delivered to the
 * engine, forwarded by a relay, or dropped.
 */
static void wg_receive_inner(struct sim *s, uint32_t h, uint32_t from,
                             const struct pkt *p) {
  uint32_t src = p->isrc, dst = p->idst;

  if (dev_route(s, h, src) != from) {
    s->st.drop_allowedip++;
    return;
  }
  if (dst == h) {
    node_deliver(s, h, MESH_BASE + src + 1, s->gossip_port, p->data, p->len);
    return;
  }
  if (!s->nodes[h].relay || dev_route(s, h, dst) != dst) {
    s->st.drop_forward++;
    return;
  }
  s->st.relayed++;
  wg_send_data(s, h, dst, p->data, p->len, src, dst);
}

void net_arrive(struct sim *s, uint32_t from, uint32_t hint, uint32_t pktidx) {
  struct pkt *p = &s->pkts[pktidx];
  struct dpeer *dp;
  int64_t hh;
  uint32_t h;

  if (p->type == PKT_LAN) {
    node_deliver(s, hint, p->sip, p->sport, p->data, p->len);
    goto out;
  }
  hh = net_in(s, p, from);
  if (hh < 0) {
    s->st.drop_dst++;
    if (s->tr)
      trace_drop(s, from, hint, p->type, "nat");
    goto out;
  }
  h = (uint32_t)hh;
  dp = DP(s, h, from);
  digest_mix(s, ((uint64_t)s->now << 8) ^ ((uint64_t)from << 40) ^
                    ((uint64_t)h << 20) ^ p->type ^ ((uint64_t)p->len << 2));
  if (!s->nodes[h].started || !(dp->flags & DP_PRESENT)) {
    s->st.drop_nopeer++;
    if (s->tr)
      trace_drop(s, from, h, p->type, "no peer");
    goto out;
  }
  if (s->tr)
    trace_arrive(s, h, from, p->type, p->len);
  switch (p->type) {
  case PKT_INIT:
    if (s->tr)
      trace_init_in(s, h, from);
    /* Answering replaces the state of our own initiation, if one is under
     * way: its response will find nothing to match (WireGuard keeps one
     * handshake per peer). */
    if (s->p.wg_strict && (dp->flags & DP_PENDING))
      dp->flags |= DP_INIT_LOST;
    note_rx(s, h, from, p, WG_INIT_LEN);
    dp->flags |= DP_RESP;
    send_packet(s, h, from, PKT_RESP, p->sip, p->sport, NULL, 0, WG_RESP_LEN, h,
                from);
    break;
  case PKT_RESP:
    if (!(dp->flags & DP_PENDING) || (dp->flags & DP_INIT_LOST)) {
      if (s->tr)
        trace_drop(s, from, h, p->type, "stale");
      break;
    }
    note_rx(s, h, from, p, WG_RESP_LEN);
    dp->flags &= (uint8_t)~DP_PENDING;
    dp->hs = s->stamp;
    s->st.handshakes++;
    metric_session(s, h, from);
    /* The initiator confirms the session with a keepalive. */
    wg_send_data(s, h, from, NULL, 0, h, from);
    break;
  case PKT_DATA:
    if (!session_valid(s, dp)) {
      if (!(dp->flags & DP_RESP))
        break;
      dp->hs = s->stamp;
      metric_session(s, h, from);
    }
    dp->flags &= (uint8_t)~DP_RESP;
    note_rx(s, h, from, p, (uint32_t)p->len + WG_DATA_OVERHEAD);
    if (p->len > 0) {
      dp->flags |= DP_DATA_RX;
      wg_receive_inner(s, h, from, p);
    }
    break;
  }
out:
  pkt_free(s, pktidx);
}

void net_broadcast(struct sim *s, uint32_t i, const uint8_t *data, size_t len) {
  struct node *n = &s->nodes[i];
  struct router *r;

  if (n->router < 0)
    return;
  r = &s->routers[n->router];
  for (uint32_t k = 0; k < r->nhosts; k++) {
    uint32_t h = r->hosts[k], idx;
    struct pkt *p;

    if (h == i)
      continue;
    if (s->p.loss > 0 && rng_double(&s->net) < s->p.loss) {
      s->st.drop_loss++;
      continue;
    }
    idx = pkt_alloc(s);
    p = &s->pkts[idx];
    memset(p, 0, sizeof(*p));
    p->sip = lan_ip((uint32_t)n->router, n->host);
    p->sport = s->gossip_port;
    p->dip = BCAST_IP;
    p->dport = s->gossip_port;
    p->type = PKT_LAN;
    p->len = (uint16_t)len;
    p->sent = s->stamp;
    p->data = pay_alloc(s, len);
    memcpy(p->data, data, len);
    if (evq_push(&s->q, s->now + LAN_LATENCY_NS, EV_PKT, i, h, idx))
      fatal_nomem();
  }
}

/*
 * Every symmetric NAT becomes a port-restricted cone NAT, its mappings and
 * filters flushed (new rules, conntrack flushed); addresses stay.
 */
void net_nat_to_cone(struct sim *s) {
  for (uint32_t r = 0; r < s->nrouters; r++) {
    struct router *rt = &s->routers[r];

    if (rt->nat != NAT_SYMMETRIC)
      continue;
    rt->nat = NAT_PORT_RESTRICTED;
    for (uint32_t k = 0; k < rt->nhosts; k++) {
      struct node *h = &s->nodes[rt->hosts[k]];

      h->nat = NAT_PORT_RESTRICTED;
      h->map_port = 0;
      h->map = 0;
      memset(h->ns, 0, s->n * sizeof(*h->ns));
    }
  }
}

/*
 * Node @x gets a new public address: a public host's address changes, or
 * its router's (then every mapping of that router is lost).
 */
void net_roam(struct sim *s, uint32_t x) {
  struct node *n = &s->nodes[x];

  if (n->router < 0) {
    n->pub_ip = net_alloc_ip(s, (int32_t)x);
    return;
  }
  struct router *r = &s->routers[n->router];

  r->ip = net_alloc_ip(s, -(n->router + 1));
  for (uint32_t k = 0; k < r->nhosts; k++) {
    struct node *h = &s->nodes[r->hosts[k]];

    h->map_port = 0;
    for (uint32_t j = 0; j < s->n; j++)
      h->ns[j].sym_port = 0;
  }
}
