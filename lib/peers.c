/* SPDX-License-Identifier: MIT */
/*
 * The peer list: configuration, reload, gossip order.
 */
#include <stdlib.h>
#include <string.h>

#include "engine.h"

const struct peer_cold wgam_cold_none = {
    .deadline = NONE,
    .try_start = NONE,
    .retried_at = NONE,
    .probe_at = NONE,
    .along_at = NONE,
    .broken_at = NONE,
    .heard_at = NONE,
    .answered_at = NONE,
    .req_at = NONE,
    .answer_end = NONE,
    .prop_next = NONE,
    .via = NO_IDX,
    .avoid_via = NO_IDX,
    .down_since = NONE,
    .relay_at = NONE,
    .route_at = NONE,
};

/* @p's whole cold part, made if it has none; NULL without memory. */
struct peer_cold *wgam_cold_get(wgam_mesh *m, struct peer *p) {
  struct peer_cold *c;

  if (p->bits & PEER_COLD_FULL)
    return p->cold;
  c = wgam_calloc(m, 1, sizeof(*c));
  if (!c) {
    wgam_log(m, WGAM_LOG_WARN, "peer %s: out of memory",
             wgam_key_short(p->pubkey).s);
    return NULL;
  }
  *c = wgam_cold_none;
  if (p->cold) {
    memcpy(c, p->cold, COLD_SMALL);
    wgam_free(m, p->cold);
  }
  p->cold = c;
  p->bits |= PEER_COLD_FULL;
  return c;
}

/* @p's cold part for the fields before COLD_SMALL only (a small one will
 * do). */
struct peer_cold *wgam_cold_small(wgam_mesh *m, struct peer *p) {
  if (!p->cold) {
    p->cold = wgam_calloc(m, 1, COLD_SMALL);
    if (!p->cold) {
      wgam_log(m, WGAM_LOG_WARN, "peer %s: out of memory",
               wgam_key_short(p->pubkey).s);
      return NULL;
    }
    memcpy(p->cold, &wgam_cold_none, COLD_SMALL);
  }
  return p->cold;
}

static void cold_free(wgam_mesh *m, struct peer *p) {
  struct peer_cold *c = cold_full(p);

  if (p->cold)
    wgam_free(m, p->cold->cfg);
  if (c) {
    wgam_free(m, c->lan);
    wgam_free(m, c->prefixes);
  }
  wgam_free(m, p->cold);
  p->cold = NULL;
  p->bits &= (uint8_t)~PEER_COLD_FULL;
}

/* Whether a time @t that only matters for @len after it is over at @ts
 * (for good: time only moves forward). */
static int over(wgam_tstamp t, wgam_tstamp len, wgam_tstamp ts) {
  return t == NONE || ts >= ts_add(t, len);
}

/*
 * Frees @p's cold part, or all of it but the fields before COLD_SMALL,
 * when nothing else in it can matter any more, so that the peer behaves exactly
 * as with it: every field at its default, or past the time after which it is
 * never read again. The try_start and tried[] of a try are read only while
 * trying (tried[] up to ntried), heard_at only with broken_at, route_at
 * only when it is later than the last Pong.
 */
void wgam_cold_trim(wgam_mesh *m, struct peer *p, wgam_tstamp ts) {
  const struct peer_cold *c = cold_full(p);
  struct peer_cold *small;

  if (c && (c->lan || c->prefixes || peer_trying(p->state) || c->ntried ||
            c->tries || c->backoff_level || c->deadline != NONE ||
            c->probe_at != NONE || c->along_at != NONE ||
            c->broken_at != NONE || addr_valid(&c->obs_ep) ||
            (addr_valid(&c->lost_ep) && !addr_valid(&p->dev_ep)) ||
            !over(c->req_at, wgam_fixed.answer_window, ts) ||
            !over(c->answered_at, wgam_fixed.answer_interval, ts) ||
            c->relay_rank || c->via != NO_IDX || c->avoid_via != NO_IDX ||
            c->down_since != NONE || c->relay_at != NONE || c->route_changes ||
            (c->route_at != NONE &&
             (p->route != WGAM_ROUTE_DIRECT || p->pong_at == NONE ||
              p->pong_at <= c->route_at))))
    return;
  if (!p->cold)
    return;
  small = p->cold;
  if (!small->cfg && !addr_valid(&small->want_ep) && !small->prop_pending &&
      over(small->prop_next, (wgam_tstamp)small->prop_hold_s * WGAM_SECONDS,
           ts)) {
    cold_free(m, p);
    return;
  }
  if (!c)
    return; /* small already */
  small = wgam_calloc(m, 1, COLD_SMALL);
  if (!small)
    return;
  memcpy(small, c, COLD_SMALL);
  wgam_free(m, p->cold);
  p->cold = small;
  p->bits &= (uint8_t)~PEER_COLD_FULL;
}

void wgam_free_peers(wgam_mesh *m, struct peer *peers, size_t n) {
  size_t i;
  for (i = 0; i < n; i++) {
    wgam_free(m, peers[i].known);
    cold_free(m, &peers[i]);
  }
  wgam_free(m, peers);
}

static void peer_init(struct peer *p) {
  memset(p, 0, sizeof(*p));
  p->hs_at = NONE;
  p->rx_at = NONE;
  p->pong_at = NONE;
  p->learned_at = NONE;
  p->heap_idx = NO_IDX;
  p->next = NONE;
}

/* Whether @p's extra prefixes differ from those configured in @c. */
static int prefixes_differ(const struct peer *p, const wgam_peer_config *c) {
  return p->nprefixes != c->nprefixes ||
         (c->nprefixes && memcmp(cold(p)->prefixes, c->prefixes,
                                 c->nprefixes * sizeof(c->prefixes[0])) != 0);
}

static int prefix_valid(const wgam_cidr *c) {
  size_t len = c->addr.family == WGAM_AF_INET ? 4 : 16, i;
  unsigned max = c->addr.family == WGAM_AF_INET ? 32 : 128;

  if ((c->addr.family != WGAM_AF_INET && c->addr.family != WGAM_AF_INET6) ||
      c->prefixlen > max || c->addr.port)
    return 0;
  for (i = 0; i < len; i++) { /* host bits are zero */
    unsigned bits = c->prefixlen > i * 8 ? c->prefixlen - (unsigned)i * 8 : 0;
    uint8_t mask = bits >= 8 ? 0xff : (uint8_t)(0xff << (8 - bits));

    if (c->addr.ip[i] & (uint8_t)~mask)
      return 0;
  }
  return 1;
}

/* The original hashes "<our key>-<peer key>": each node has its own fixed
 * set of gossip partners, so announces spread as in a random graph. @buf
 * holds "<our key>-" already (it is the same for every peer). */
static uint64_t pair_prio(uint8_t buf[2 * WGAM_KEY_B64_LEN + 1],
                          const uint8_t *theirs) {
  uint8_t h[WGAM_BLAKE3_OUT_LEN];
  char b64[WGAM_KEY_B64_LEN + 1];
  uint64_t prio;

  wgam_key_to_base64(b64, theirs);
  memcpy(buf + WGAM_KEY_B64_LEN + 1, b64, WGAM_KEY_B64_LEN);
  wgam_blake3(h, buf, 2 * WGAM_KEY_B64_LEN + 1);
  memcpy(&prio, h, sizeof(prio));
  return prio;
}

struct prio_idx {
  uint64_t prio;
  uint32_t idx;
};

static int cmp_prio_idx(const void *a, const void *b) {
  const struct prio_idx *x = a, *y = b;
  if (x->prio != y->prio)
    return x->prio < y->prio ? -1 : 1;
  return x->idx < y->idx ? -1 : x->idx > y->idx;
}

/* Recomputes who we are in the peer list and the gossip order. Without
 * memory for sorting, the configuration order serves (still a fixed order,
 * only not spread per pair). */
void wgam_update_identity(wgam_mesh *m) {
  uint8_t buf[2 * WGAM_KEY_B64_LEN + 1];
  struct prio_idx *v;
  size_t i;

  m->self_idx = m->has_pubkey ? wgam_find_peer(m, m->pubkey) : NO_IDX;
  if (m->self_idx != NO_IDX && m->peers[m->self_idx].nknown) {
    /* What a state file said of us before we knew who we are. */
    static const uint8_t no_src[WGAM_MAX_ENDPOINTS];
    struct peer *me = &m->peers[m->self_idx];
    wgam_endpoint out[WGAM_MAX_ENDPOINTS];
    uint8_t out_src[WGAM_MAX_ENDPOINTS];
    size_t n;

    if (wgam_store_merge(m->self_known, no_src, m->nself_known, me->known,
                         me->nknown, WGAM_SOURCE_STATE, out, out_src, &n)) {
      memcpy(m->self_known, out, n * sizeof(out[0]));
      m->nself_known = (uint8_t)n;
    }
    wgam_store_set(m, me, NULL, NULL, 0);
  }
  wgam_relay_recount(m);
  m->nconnected = 0;
  for (i = 0; i < m->npeers; i++)
    if (i != m->self_idx && m->peers[i].state == PEER_CONNECTED)
      m->nconnected++;
  if (m->has_pubkey) {
    char b64[WGAM_KEY_B64_LEN + 1];

    wgam_key_to_base64(b64, m->pubkey);
    memcpy(buf, b64, WGAM_KEY_B64_LEN);
    buf[WGAM_KEY_B64_LEN] = '-';
  }
  for (i = 0; i < m->npeers; i++)
    m->order[i] = (uint32_t)i;
  v = wgam_calloc(m, m->npeers, sizeof(*v));
  if (v) {
    for (i = 0; i < m->npeers; i++) {
      v[i].prio = m->has_pubkey ? pair_prio(buf, m->peers[i].pubkey) : 0;
      v[i].idx = (uint32_t)i;
    }
    qsort(v, m->npeers, sizeof(*v), cmp_prio_idx);
    for (i = 0; i < m->npeers; i++)
      m->order[i] = v[i].idx;
    wgam_free(m, v);
  }
  wgam_hints_recount(m);
}

int wgam_mesh_set_peers(wgam_mesh *m, const wgam_peer_config *cfg, size_t n,
                        wgam_tstamp ts) {
  struct peer *np = NULL;
  uint32_t *keytab = NULL, *addrtab = NULL, *order = NULL, *heap = NULL,
           *updq = NULL, *remap = NULL;
  uint8_t(*removed)[WGAM_KEY_LEN] = NULL;
  size_t cap, i, nremoved = 0, added = 0, gone = 0,
                 oldn_peers = m ? m->npeers : 0;
  int rv = WGAM_ERR_NOMEM;

  if (!m || (n && !cfg))
    return WGAM_ERR_INVALID_ARGUMENT;
  if (n > m->s.max_peers)
    return WGAM_ERR_LIMIT;
  for (i = 0; i < n; i++) {
    if ((cfg[i].address.family != WGAM_AF_INET &&
         cfg[i].address.family != WGAM_AF_INET6) ||
        (addr_valid(&cfg[i].endpoint) &&
         !wgam_addr_is_valid_endpoint(&cfg[i].endpoint)) ||
        cfg[i].nprefixes > WGAM_MAX_PREFIXES)
      return WGAM_ERR_INVALID_ARGUMENT;
    for (size_t k = 0; k < cfg[i].nprefixes; k++)
      if (!prefix_valid(&cfg[i].prefixes[k]))
        return WGAM_ERR_INVALID_ARGUMENT;
  }

  cap = wgam_table_cap(n);
  np = wgam_calloc(m, n, sizeof(*np));
  keytab = wgam_calloc(m, cap, sizeof(*keytab));
  addrtab = wgam_calloc(m, cap, sizeof(*addrtab));
  order = wgam_calloc(m, n, sizeof(*order));
  heap = wgam_calloc(m, n, sizeof(*heap));
  updq = wgam_calloc(m, n, sizeof(*updq));
  remap = wgam_calloc(m, m->npeers, sizeof(*remap));
  removed = wgam_calloc(m, m->nremoved + m->npeers, sizeof(*removed));
  if (!np || !keytab || !addrtab || !order || !heap || !updq || !remap ||
      !removed)
    goto out;

  for (i = 0; i < n; i++) {
    size_t ks = wgam_keytab_slot(np, keytab, cap, cfg[i].pubkey);
    size_t as = wgam_addrtab_slot(np, addrtab, cap, &cfg[i].address);
    uint32_t old = wgam_find_peer(m, cfg[i].pubkey);
    struct peer *p = &np[i];

    if (keytab[ks] || addrtab[as]) {
      rv = WGAM_ERR_DUPLICATE_PEER;
      goto out;
    }
    if (old != NO_IDX) {
      *p = m->peers[old];
      p->queued = 0;
      p->heap_idx = NO_IDX;
      if (p->cold) {
        /* A copy: the old list keeps its own until the commit (the LAN
         * state is handed over then), and cfg and prefixes are set anew. */
        size_t size = cold_full(p) ? sizeof(*p->cold) : COLD_SMALL;

        p->cold = wgam_calloc(m, 1, size);
        if (!p->cold) {
          p->bits &= (uint8_t)~PEER_COLD_FULL;
          goto out;
        }
        memcpy(p->cold, m->peers[old].cold, size);
        p->cold->cfg = NULL;
        if (cold_full(p))
          p->cold->prefixes = NULL;
      }
      if (!addr_ip_equal(&p->address, &cfg[i].address) ||
          prefixes_differ(&m->peers[old], &cfg[i]))
        p->upd |= UPD_ALLOWED | UPD_ROUTE;
    } else {
      peer_init(p);
      added++;
      memcpy(p->pubkey, cfg[i].pubkey, WGAM_KEY_LEN);
      p->upd = UPD_ALLOWED | UPD_KEEPALIVE;
      p->want_keepalive = m->s.keepalive_trying;
    }
    p->address = cfg[i].address;
    p->address.port = 0;
    p->relay = cfg[i].relay != 0;
    p->nprefixes = (uint8_t)cfg[i].nprefixes;
    if (p->nprefixes) {
      struct peer_cold *c = wgam_cold_get(m, p);

      if (!c)
        goto out;
      c->prefixes = wgam_calloc(m, p->nprefixes, sizeof(*c->prefixes));
      if (!c->prefixes)
        goto out;
      memcpy(c->prefixes, cfg[i].prefixes, p->nprefixes * sizeof(*c->prefixes));
    }
    p->ncfg = 0;
    p->cfg_literal = 0;
    if (addr_valid(&cfg[i].endpoint)) {
      struct peer_cold *c = wgam_cold_small(m, p);

      if (!c || !(c->cfg = wgam_calloc(m, 1, sizeof(*c->cfg))))
        goto out;
      c->cfg[0] = cfg[i].endpoint;
      p->ncfg = 1;
      p->cfg_literal = 1;
    } else if (old != NO_IDX && m->peers[old].ncfg &&
               !addr_valid(&cfg[i].endpoint)) {
      /* Keep endpoints resolved from a hostname across a reload; the caller
       * replaces them with wgam_mesh_set_peer_endpoints(). */
      struct peer_cold *c = wgam_cold_small(m, p);

      if (c)
        c->cfg = wgam_calloc(m, m->peers[old].ncfg, sizeof(*c->cfg));
      if (c && c->cfg) {
        memcpy(c->cfg, peer_cfg(&m->peers[old]),
               m->peers[old].ncfg * sizeof(*c->cfg));
        p->ncfg = m->peers[old].ncfg;
      }
    }
    keytab[ks] = wgam_table_entry(wgam_key_hash(cfg[i].pubkey), cap, i);
    addrtab[as] = wgam_table_entry(wgam_ip_hash(&cfg[i].address), cap, i);
  }

  /* Old index -> new index, and the peers that went away. */
  for (i = 0; i < m->npeers; i++) {
    size_t ks = wgam_keytab_slot(np, keytab, cap, m->peers[i].pubkey);
    remap[i] = wgam_table_index(keytab[ks], cap);
    if (remap[i] == NO_IDX && i != m->self_idx) {
      memcpy(removed[nremoved++], m->peers[i].pubkey, WGAM_KEY_LEN);
      gone++;
      wgam_log(m, WGAM_LOG_INFO, "peer %s: removed from the configuration",
               wgam_key_short(m->peers[i].pubkey).s);
    }
  }
  /* Removals not yet emitted stay pending, unless the peer is back. */
  for (i = 0; i < m->nremoved; i++)
    if (!keytab[wgam_keytab_slot(np, keytab, cap, m->removed[i])])
      memcpy(removed[nremoved++], m->removed[i], WGAM_KEY_LEN);

  /* Queued datagrams follow their subject to its new index. */
  for (i = 0; i < m->qlen; i++) {
    struct pending *e = &m->q[(m->qhead + i) % m->qcap];
    if (e->subject < m->npeers)
      e->subject = remap[e->subject];
    if (e->subject == NO_IDX && e->type == WGAM_MSG_ANNOUNCE)
      e->type = 0xff; /* dropped at write time */
  }

  /* Commit. The peers kept now own their store and LAN state. */
  {
    size_t oldn = m->npeers;
    struct peer *oldp = m->peers;

    for (i = 0; i < oldn; i++)
      if (remap[i] != NO_IDX) {
        oldp[i].known = NULL;
        if (cold_full(&oldp[i]))
          oldp[i].cold->lan = NULL;
      }
    m->peers = np;
    m->npeers = n;
    wgam_free_peers(m, oldp, oldn);
  }
  wgam_free(m, m->keytab);
  wgam_free(m, m->addrtab);
  wgam_free(m, m->order);
  wgam_free(m, m->heap);
  wgam_free(m, m->updq);
  wgam_free(m, m->removed);
  m->keytab = keytab;
  m->addrtab = addrtab;
  m->tabcap = cap;
  m->order = order;
  m->heap = heap;
  m->heaplen = 0;
  m->updq = updq;
  m->updq_head = 0;
  m->updq_len = 0;
  m->removed = removed;
  m->nremoved = nremoved;
  if (m->recreate != NO_IDX)
    m->recreate = remap[m->recreate]; /* NO_IDX if it went away */
  /* Routes follow their relay to its new index; a relay that went away
   * takes its peers back to direct (relay.c picks another). */
  for (i = 0; i < n; i++) {
    struct peer *p = &m->peers[i];

    p->relayed_ips = 0;
    if (cold_full(p))
      cold_full(p)->avoid_via = NO_IDX;
    /* A route other than direct was set with the peer's cold part. */
    if (p->route != WGAM_ROUTE_DIRECT)
      p->cold->via = p->cold->via < oldn_peers ? remap[p->cold->via] : NO_IDX;
    if (p->route != WGAM_ROUTE_DIRECT && p->cold->via == NO_IDX) {
      p->route = WGAM_ROUTE_DIRECT;
      p->cold->relay_at = ts;
      p->upd |= UPD_ROUTE;
    }
  }
  for (i = 0; i < n; i++)
    if (m->peers[i].route != WGAM_ROUTE_DIRECT)
      m->peers[m->peers[i].cold->via].relayed_ips += 1u + m->peers[i].nprefixes;
  wgam_update_identity(m);

  for (i = 0; i < n; i++) {
    struct peer *p = &m->peers[i];
    uint8_t upd = p->upd;
    int is_new = (upd & UPD_ALLOWED) && !p->on_device && p->hs_at == NONE;

    if (i == m->self_idx) {
      p->upd = 0;
      continue;
    }
    p->upd = 0;
    if (upd)
      wgam_mark_update(m, p, upd);
    /* The original asks every peer for its store at start; on a reload only
     * new peers are asked. The fast policy asks a few after the first device
     * read instead, since a peer without an endpoint cannot be reached. */
    if (is_new && m->s.policy == WGAM_POLICY_CLASSIC)
      wgam_ask_peer(m, p, ts);
    if (m->dev_seen)
      wgam_peer_step(m, (uint32_t)i, ts);
  }
  m->ask_interval = wgam_fixed.ask_min; /* new peers: ask again soon */
  wgam_ask_soon(m, ts);
  wgam_log(m, WGAM_LOG_INFO, "%zu peers configured", n);
  wgam_log(m, WGAM_LOG_DEBUG, "peers: %zu added, %zu kept, %zu removed", added,
           n - added, gone);
  rv = 0;
  np = NULL;
  keytab = addrtab = order = heap = updq = NULL;
  removed = NULL;
out:
  if (np) {
    /* Kept peers still share these with the old list. */
    for (i = 0; i < n; i++) {
      np[i].known = NULL;
      if (cold_full(&np[i]))
        np[i].cold->lan = NULL; /* a new peer has none */
    }
    wgam_free_peers(m, np, n);
  }
  wgam_free(m, keytab);
  wgam_free(m, addrtab);
  wgam_free(m, order);
  wgam_free(m, heap);
  wgam_free(m, updq);
  wgam_free(m, remap);
  wgam_free(m, removed);
  return rv;
}

int wgam_mesh_set_peer_endpoints(wgam_mesh *m,
                                 const uint8_t pubkey[WGAM_KEY_LEN],
                                 const wgam_addr *eps, size_t naddrs,
                                 wgam_tstamp ts) {
  uint32_t idx;
  struct peer *p;
  wgam_addr *cfg = NULL;
  size_t i;

  if (!m || !pubkey || naddrs > MAX_CFG_ENDPOINTS || (naddrs && !eps))
    return WGAM_ERR_INVALID_ARGUMENT;
  idx = wgam_find_peer(m, pubkey);
  if (idx == NO_IDX)
    return WGAM_ERR_INVALID_ARGUMENT;
  for (i = 0; i < naddrs; i++)
    if (!wgam_addr_is_valid_endpoint(&eps[i]))
      return WGAM_ERR_INVALID_ARGUMENT;
  if (naddrs) {
    cfg = wgam_calloc(m, naddrs, sizeof(*cfg));
    if (!cfg)
      return WGAM_ERR_NOMEM;
    memcpy(cfg, eps, naddrs * sizeof(*cfg));
  }
  p = &m->peers[idx];
  if (naddrs && !wgam_cold_small(m, p)) {
    wgam_free(m, cfg);
    return WGAM_ERR_NOMEM;
  }
  if (p->cold) {
    wgam_free(m, p->cold->cfg);
    p->cold->cfg = cfg;
  }
  p->ncfg = (uint8_t)naddrs;
  p->cfg_literal = 0;
  if (m->s.policy == WGAM_POLICY_FAST)
    wgam_peer_step(m, idx, ts);
  return 0;
}
