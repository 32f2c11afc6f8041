/* SPDX-License-Identifier: MIT */
/*
 * Relaying: reaching a peer through a relay peer when no direct path works.
 *
 * Peers marked "relay" in the shared configuration forward mesh traffic
 * (plain IP forwarding on their WireGuard interface). A peer's route says
 * which device entry holds its allowed IPs:
 *
 *   DIRECT --no direct path for relay_after, a relay connected--> PENDING
 *   PENDING --Pong from the peer through the relay-->             RELAYED
 *   PENDING --no Pong within relay_confirm (the pair's first relay) or the
 *             search's hold--> PENDING via the next relay of the search
 *   RELAYED --probe unanswered within relay_confirm--> PENDING, the search
 *   PENDING, RELAYED --direct handshake, or no relay usable-->    DIRECT
 *
 * Moving is one peer update: the peer's allowed IPs added to the relay's
 * entry (WireGuard moves an allowed IP from whichever entry held it), and
 * back the same way. Meanwhile the peer's own entry keeps its endpoint and
 * keepalive, so the try machinery (try.c) goes on punching the direct path
 * in the background; a handshake there ends the relaying at once.
 *
 * A node that is itself a relay never routes its own peers through one, so
 * a relayed path is never a chain; only relays with a direct path are used.
 * Each end decides its own direction: the peer answers our Ping through
 * whatever route it chose, which is why a relay is confirmed by a Pong and
 * not by the relay's handshake alone. The classic policy never relays.
 */
#include <string.h>

#include "engine.h"

static int host_len(const wgam_addr *a) {
  return a->family == WGAM_AF_INET ? 32 : 128;
}

size_t wgam_own_allowedips(const struct peer *p, wgam_cidr *out) {
  size_t n = 0, i;

  memset(&out[0], 0, sizeof(out[0]));
  out[n].addr = p->address;
  out[n].addr.port = 0;
  out[n++].prefixlen = (uint8_t)host_len(&p->address);
  for (i = 0; i < p->nprefixes; i++)
    out[n++] = p->cold->prefixes[i]; /* prefixes are in the cold part */
  return n;
}

static int cidr_eq(const wgam_cidr *a, const wgam_cidr *b) {
  size_t len = a->addr.family == WGAM_AF_INET ? 4 : 16;

  return a->addr.family == b->addr.family && a->prefixlen == b->prefixlen &&
         memcmp(a->addr.ip, b->addr.ip, len) == 0;
}

static int has_prefix(const struct peer *p, const wgam_cidr *c) {
  size_t i;

  for (i = 0; i < p->nprefixes; i++)
    if (cidr_eq(&p->cold->prefixes[i], c))
      return 1;
  return 0;
}

/* Whether the allowed IPs the device shows on @p's entry are exactly what
 * the routes say: its own when direct, plus those of the peers relayed
 * through it. */
int wgam_allowedips_match(const wgam_mesh *m, const struct peer *p,
                          const wgam_device_peer *dp) {
  size_t want =
      (p->route == WGAM_ROUTE_DIRECT ? 1u + p->nprefixes : 0) + p->relayed_ips;
  uint32_t self = (uint32_t)(p - m->peers);
  size_t i, j;

  if (dp->nallowedips != want || (want && !dp->allowedips))
    return 0;
  for (i = 0; i < dp->nallowedips; i++) {
    const wgam_cidr *c = &dp->allowedips[i];
    const struct peer *q = NULL;

    if (c->prefixlen == host_len(&c->addr)) {
      uint32_t idx = wgam_find_addr(m, &c->addr);

      if (idx != NO_IDX && addr_ip_equal(&m->peers[idx].address, &c->addr))
        q = &m->peers[idx];
      if (q && (q == p ? p->route == WGAM_ROUTE_DIRECT
                       : q->route != WGAM_ROUTE_DIRECT && cold(q)->via == self))
        continue;
    }
    if (p->route == WGAM_ROUTE_DIRECT && has_prefix(p, c))
      continue;
    if (!p->relayed_ips)
      return 0;
    /* A prefix of a peer relayed through us (rare: searched). */
    for (j = 0; j < m->npeers; j++)
      if (cold(&m->peers[j])->via == self &&
          m->peers[j].route != WGAM_ROUTE_DIRECT && has_prefix(&m->peers[j], c))
        break;
    if (j == m->npeers)
      return 0;
  }
  return 1;
}

void wgam_relay_recount(wgam_mesh *m) {
  size_t i;

  m->nrelays = 0;
  if (m->s.policy != WGAM_POLICY_FAST ||
      (m->self_idx != NO_IDX && m->peers[m->self_idx].relay))
    return; /* a relay never routes its own peers through another */
  for (i = 0; i < m->npeers; i++)
    if (m->peers[i].relay && i != m->self_idx)
      m->nrelays++;
}

static int direct_up(const struct peer *p) {
  return p->state == PEER_CONNECTED || p->state == PEER_SWITCHING;
}

static int usable_relay(const wgam_mesh *m, const struct peer *p,
                        uint32_t idx) {
  const struct peer *r = &m->peers[idx];

  return r != p && idx != m->self_idx && r->relay && direct_up(r) &&
         r->route == WGAM_ROUTE_DIRECT;
}

/* Where the pair (@m's node, @p) ranks relay @r. Symmetric in the pair:
 * both ends rank the relays alike and so take the same one, which they
 * must, since WireGuard accepts a packet only from the entry that holds its
 * source address. */
static uint64_t pair_rank(const wgam_mesh *m, const struct peer *p,
                          const struct peer *r) {
  uint64_t a, b, c;

  memcpy(&a, m->pubkey, sizeof(a));
  memcpy(&b, p->pubkey, sizeof(b));
  memcpy(&c, r->pubkey, sizeof(c));
  a ^= b ^ c;
  a ^= a >> 31;
  a *= 0x9e3779b97f4a7c15ull;
  return a ^ (a >> 29);
}

static size_t count_usable(const wgam_mesh *m, const struct peer *p) {
  size_t i, n = 0;

  for (i = 0; i < m->npeers; i++)
    n += usable_relay(m, p, (uint32_t)i);
  return n;
}

/* The @k-th usable relay in the pair's order (pair_rank()), k < n. */
static uint32_t pick_among(const wgam_mesh *m, const struct peer *p, size_t k) {
  size_t i, r;
  uint64_t prev = 0;
  uint32_t best = NO_IDX;

  /* k+1 passes over the relays for the k-th smallest rank (few relays). */
  for (r = 0; r <= k; r++) {
    uint64_t lo = UINT64_MAX;

    best = NO_IDX;
    for (i = 0; i < m->npeers; i++) {
      uint64_t h;

      if (!usable_relay(m, p, (uint32_t)i))
        continue;
      h = pair_rank(m, p, &m->peers[i]);
      if ((r == 0 || h > prev) && (best == NO_IDX || h < lo)) {
        lo = h;
        best = (uint32_t)i;
      }
    }
    prev = lo;
  }
  return best;
}

/* The pair's first relay, the same on both ends: NO_IDX if none is
 * usable. */
static uint32_t first_relay(const wgam_mesh *m, const struct peer *p) {
  return count_usable(m, p) ? pick_among(m, p, 0) : NO_IDX;
}

/* The usable relay after @via in the pair's order, round to the first;
 * @avoid passed over while another is usable. */
static uint32_t next_relay(const wgam_mesh *m, const struct peer *p,
                           uint32_t via, uint32_t avoid, size_t n) {
  size_t i, pos = 0;
  uint64_t h = via != NO_IDX ? pair_rank(m, p, &m->peers[via]) : 0;
  uint32_t next;

  /* Where @via is (or would be) among the usable relays. */
  for (i = 0; via != NO_IDX && i < m->npeers; i++)
    pos += usable_relay(m, p, (uint32_t)i) && pair_rank(m, p, &m->peers[i]) < h;
  if (via != NO_IDX && usable_relay(m, p, via))
    pos++;
  next = pick_among(m, p, pos % n);
  if (next == avoid && n > 1)
    next = pick_among(m, p, (pos + 1) % n);
  return next;
}

/* Asks the peer through its relay (the caller sets relay_at). A confirmed
 * route is asked with two Pings, so that one lost datagram does not look
 * like a failed relay. */
static void ask_through(wgam_mesh *m, struct peer *p, wgam_tstamp ts) {
  p->cold->route_at = ts; /* routed through a relay: p->cold is there */
  wgam_queue_to_peer(m, WGAM_MSG_PING, NO_IDX, p);
  if (p->route == WGAM_ROUTE_RELAYED)
    wgam_queue_to_peer(m, WGAM_MSG_PING, NO_IDX, p);
}

/* Moves @p's route to relay @via (pending, asked at once and held for
 * relay_confirm unless the caller says otherwise: the two ends lose their
 * direct path up to a probe apart, and both take the pair's first relay)
 * or back to direct. The caller applies the move before it sends the Ping
 * (wgam_mesh_next_peer_update() before wgam_mesh_write_pkt()). */
static void set_route(wgam_mesh *m, struct peer *p, uint32_t via,
                      wgam_tstamp ts) {
  uint32_t ips = 1u + p->nprefixes;
  struct peer_cold *c = wgam_cold_get(m, p);

  if (!c)
    return; /* no memory: the next step decides again */
  if (p->route != WGAM_ROUTE_DIRECT)
    m->peers[c->via].relayed_ips -= ips;
  if (via == NO_IDX) {
    wgam_log(m, WGAM_LOG_INFO, "peer %s: direct again",
             wgam_key_short(p->pubkey).s);
    p->route = WGAM_ROUTE_DIRECT;
    c->relay_at = NONE;
    c->relay_rank = 0;
    c->avoid_via = NO_IDX;
  } else {
    wgam_log(m, WGAM_LOG_INFO, "peer %s: no direct path, through relay %s",
             wgam_key_short(p->pubkey).s,
             wgam_key_short(m->peers[via].pubkey).s);
    p->route = WGAM_ROUTE_RELAY_PENDING;
    m->peers[via].relayed_ips += ips;
  }
  c->via = via;
  c->route_at = ts;
  if (via != NO_IDX) {
    ask_through(m, p, ts);
    c->hold_end = ts_add(ts, wgam_fixed.relay_confirm);
    c->relay_at = c->hold_end;
  }
  c->route_changes++;
  m->stats.relay_switches++;
  wgam_mark_update(m, p, UPD_ROUTE);
}

/*
 * One move of a search for the relay that carries the pair. The two ends
 * must come to the same relay, and their clocks cannot tell them when (the
 * wall clock reaches the engine in whole seconds), so they take different
 * parts by their keys: the end with the lower key (the leader) holds each
 * relay long enough for the other (the follower) to take the pair's first
 * relay and go round all the relays, one per relay_dwell, asking through
 * each. Whatever each end
 * knows (one may start afresh while the other holds a route or passes
 * over a relay that failed it), the follower finds the leader within a
 * round. A leader that starts afresh also goes round once, for a follower
 * that still holds its route. The relay that failed a confirmed route
 * (avoid_via) is passed over for relay_scan; after that, with no answer,
 * the peer is likely away and both ends slow down, the follower resting
 * 2 * relay_confirm after each round and the leader holding each relay
 * longer than a round and its rest.
 */
static void search_step(wgam_mesh *m, struct peer *p, wgam_tstamp ts) {
  struct peer_cold *c = p->cold; /* routed through a relay */
  size_t n = count_usable(m, p), steps;
  int leader = memcmp(m->pubkey, p->pubkey, WGAM_KEY_LEN) < 0;
  wgam_tstamp dwell = wgam_fixed.relay_dwell, rest = 0, hold;
  uint32_t via;

  if (!n) {
    set_route(m, p, NO_IDX, ts);
    return;
  }
  /* relay_rank: the dwells spent searching so far (saturating). */
  if (c->relay_rank * dwell >= wgam_fixed.relay_scan) {
    c->avoid_via = NO_IDX;
    rest = 2 * wgam_fixed.relay_confirm;
  }
  if (!leader || (c->avoid_via == NO_IDX && !rest && c->relay_rank < n)) {
    /* Going round: the follower always, a fresh leader once. */
    steps = 1;
    hold = dwell + ((c->relay_rank + 1) % n == 0 ? rest : 0);
  } else {
    /* Long enough for a follower that holds the pair's first relay and
     * then goes round. */
    hold = wgam_fixed.relay_confirm + (n + 1) * dwell + 2 * rest;
    steps = (size_t)(hold / dwell);
  }
  c->relay_rank =
      (uint8_t)(c->relay_rank + steps < UINT8_MAX ? c->relay_rank + steps
                                                  : UINT8_MAX);
  via = next_relay(m, p, c->via, c->avoid_via, n);
  if (via != c->via)
    set_route(m, p, via, ts);
  else
    ask_through(m, p, ts);
  p->route = WGAM_ROUTE_RELAY_PENDING;
  c->hold_end = ts_add(ts, hold);
  c->relay_at = ts_min(c->hold_end, ts_add(ts, wgam_fixed.relay_confirm));
}

/* Peers routed through @r are reconsidered now (it went away). */
static void reroute_from(wgam_mesh *m, struct peer *r, wgam_tstamp ts) {
  uint32_t idx = (uint32_t)(r - m->peers);
  size_t i;

  for (i = 0; i < m->npeers && r->relayed_ips; i++) {
    struct peer *q = &m->peers[i];

    if (q->route == WGAM_ROUTE_DIRECT || q->cold->via != idx)
      continue;
    set_route(m, q, NO_IDX, ts); /* reachable again as soon as possible */
    q->cold->relay_at = ts;
    wgam_heap_set(m, (uint32_t)i, ts);
  }
}

/*
 * A peer routed through a relay. A Pong since route_at confirms the route;
 * a confirmed route is asked again every relay_probe (the other end may
 * have moved to another relay or started afresh, and a packet is accepted
 * only from the entry holding its source; or the relay stopped
 * forwarding). A pending route unanswered by relay_at, or a confirmed one
 * within relay_confirm: the search (search_step()), passing over the relay
 * that failed a confirmed route.
 */
static void relayed_step(wgam_mesh *m, struct peer *p, wgam_tstamp ts) {
  struct peer_cold *c = p->cold; /* routed through a relay */
  int answered = p->pong_at != NONE && p->pong_at >= c->route_at;
  uint32_t via;

  if (answered) {
    if (p->route == WGAM_ROUTE_RELAY_PENDING) {
      wgam_log(m, WGAM_LOG_INFO, "peer %s: relayed path confirmed",
               wgam_key_short(p->pubkey).s);
      p->route = WGAM_ROUTE_RELAYED;
      c->avoid_via = NO_IDX;
      c->relay_rank = 0;
    }
    if (!usable_relay(m, p, c->via)) {
      /* The relay lost its direct path in our view, maybe for a moment
       * (a probe lost): a route that worked is left only when a Ping
       * through it goes unanswered, so that one blip does not send the two
       * ends of a pair to different relays. */
      if (ts >= ts_add(c->route_at, wgam_fixed.relay_confirm)) {
        ask_through(m, p, ts);
        c->relay_at = ts_add(ts, wgam_fixed.relay_confirm);
      }
      return;
    }
    c->relay_at = ts_add(p->pong_at, wgam_fixed.relay_probe);
    if (ts >= c->relay_at) {
      ask_through(m, p, ts);
      c->relay_at = ts_add(ts, wgam_fixed.relay_confirm);
    }
    return;
  }
  /* Unconfirmed, before the search: move at once to the pair's first
   * relay when it is not the one in use (it may have come up after we
   * chose, or ours went down). */
  if (p->route == WGAM_ROUTE_RELAY_PENDING && c->relay_rank == 0 &&
      (via = first_relay(m, p)) != c->via && via != NO_IDX) {
    set_route(m, p, via, ts);
    return;
  }
  if (ts < c->relay_at)
    return;
  if (p->route == WGAM_ROUTE_RELAY_PENDING && ts < c->hold_end) {
    /* A long hold asks again now and then (a Ping may be lost). */
    ask_through(m, p, ts);
    c->relay_at = ts_min(c->hold_end, ts_add(ts, wgam_fixed.relay_confirm));
    return;
  }
  if (p->route == WGAM_ROUTE_RELAYED) {
    /* A confirmed route went silent (the relay stopped forwarding or lost
     * the peer, or the other end started afresh): the search passes over
     * that relay for a while. */
    wgam_log(m, WGAM_LOG_INFO, "peer %s: no answer through relay %s",
             wgam_key_short(p->pubkey).s,
             wgam_key_short(m->peers[c->via].pubkey).s);
    c->avoid_via = c->via;
    c->relay_rank = 0;
  }
  search_step(m, p, ts);
}

void wgam_relay_step(wgam_mesh *m, struct peer *p, wgam_tstamp ts) {
  struct peer_cold *c;
  uint32_t via;

  if (direct_up(p)) {
    if (cold_full(p))
      p->cold->down_since = NONE;
    if (p->route != WGAM_ROUTE_DIRECT)
      set_route(m, p, NO_IDX, ts);
    return;
  }
  c = wgam_cold_get(m, p);
  if (!c)
    return; /* no memory: the next step decides */
  if (c->down_since == NONE) {
    c->down_since = ts;
    if (p->relayed_ips)
      reroute_from(m, p, ts);
    if (m->nrelays && p->route == WGAM_ROUTE_DIRECT)
      c->relay_at = ts_add(ts, wgam_fixed.relay_after);
  }
  if (!m->nrelays) {
    if (p->route != WGAM_ROUTE_DIRECT)
      set_route(m, p, NO_IDX, ts);
    c->relay_at = NONE;
    return;
  }
  if (p->route != WGAM_ROUTE_DIRECT) {
    relayed_step(m, p, ts);
    return;
  }
  if (c->relay_at == NONE || ts < c->relay_at)
    return;
  via = first_relay(m, p);
  if (via == NO_IDX) {
    c->relay_at = NONE; /* wgam_relay_up() wakes it */
    return;
  }
  set_route(m, p, via, ts);
}

void wgam_relay_up(wgam_mesh *m, struct peer *r, wgam_tstamp ts) {
  size_t i;

  if (!r->relay || !m->nrelays)
    return;
  for (i = 0; i < m->npeers; i++) {
    struct peer *q = &m->peers[i];

    if (q == r || i == m->self_idx || cold(q)->down_since == NONE)
      continue; /* else q->cold is there */
    if (q->route == WGAM_ROUTE_RELAY_PENDING) {
      wgam_heap_set(m, (uint32_t)i, ts); /* a better relay, maybe */
      continue;
    }
    if (q->route != WGAM_ROUTE_DIRECT || q->cold->relay_at != NONE)
      continue;
    q->cold->relay_at = ts_add(q->cold->down_since, wgam_fixed.relay_after);
    if (q->cold->relay_at < ts)
      q->cold->relay_at = ts;
    if (q->cold->relay_at < q->next)
      wgam_heap_set(m, (uint32_t)i, q->cold->relay_at);
  }
}

/* A Ping from a peer we route through a relay (see below); a peer in
 * backoff is tried directly again at once. */
void wgam_relay_pinged(wgam_mesh *m, uint32_t idx, wgam_tstamp ts) {
  struct peer *p = &m->peers[idx];

  /* A relayed peer that pings us is trying its direct path (or asking
   * through the relay): try ours now too. Punching a pair of
   * port-restricted NATs needs both ends at once, and their backoffs
   * would seldom meet. */
  if (p->route != WGAM_ROUTE_DIRECT && p->state == PEER_BACKOFF)
    wgam_try_again(m, idx, ts);
  if (p->route == WGAM_ROUTE_RELAYED) {
    /* It came through our relay for it (its source is allowed only on the
     * entry we route it through), so the peer routes us through the same
     * relay, which forwards: as good as a Pong. Else a route whose last
     * Ping went unanswered while the peer was away (its interface
     * re-created) is left just as the peer, back, takes it. */
    p->pong_at = ts;
    return;
  }
  /* Not confirmed yet: the peer has chosen its route to us, so a Ping of
   * ours now is answered through it, rather than at the next slot of the
   * search. One Ping out per Ping in. */
  if (p->route != WGAM_ROUTE_RELAY_PENDING ||
      (p->pong_at != NONE && p->pong_at >= p->cold->route_at))
    return;
  ask_through(m, p, ts);
}

int wgam_route_update(wgam_mesh *m, struct peer *p, wgam_peer_update *upd) {
  const struct peer *r = &m->peers[p->cold->via];

  memset(upd, 0, sizeof(*upd));
  memcpy(upd->pubkey, r->pubkey, WGAM_KEY_LEN);
  upd->nallowedips = wgam_own_allowedips(p, upd->allowedips);
  m->stats.peer_updates++;
  return 1;
}
