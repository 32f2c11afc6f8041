/* SPDX-License-Identifier: MIT */
/*
 * Observing the WireGuard device and computing the peer updates for it.
 */
#include <stdlib.h>
#include <string.h>

#include "engine.h"

void wgam_mark_update(wgam_mesh *m, struct peer *p, uint8_t flags) {
  p->upd |= flags;
  if (!p->queued) {
    m->updq[(m->updq_head + m->updq_len) % m->npeers] =
        (uint32_t)(p - m->peers);
    m->updq_len++;
    p->queued = 1;
  }
}

void wgam_set_keepalive(wgam_mesh *m, struct peer *p, uint16_t ka) {
  p->want_keepalive = ka;
  if (p->dev_keepalive != ka || !p->on_device)
    wgam_mark_update(m, p, UPD_KEEPALIVE);
}

/* Points want_ep() at @ep. @p has its cold part (the try that sets it). */
void wgam_set_want(wgam_mesh *m, struct peer *p, const wgam_addr *ep) {
  struct peer_cold *c = wgam_cold_small(m, p);

  p->bits &= (uint8_t)~PEER_WANT_DEV;
  if (!c)
    return;
  if (addr_valid(ep) && memcmp(ep, &p->dev_ep, sizeof(*ep)) == 0) {
    p->bits |= PEER_WANT_DEV;
    memset(&c->want_ep, 0, sizeof(c->want_ep));
  } else {
    c->want_ep = *ep;
  }
}

/* Sets dev_ep; want_ep() and obs_ep() that were dev_ep keep its old value
 * in the cold part (forgotten without memory for it), and one held there
 * that is the new dev_ep is held as dev_ep again. */
void wgam_set_dev_ep(wgam_mesh *m, struct peer *p, const wgam_addr *ep) {
  struct peer_cold *c;

  if (memcmp(ep, &p->dev_ep, sizeof(*ep)) == 0)
    return;
  if (p->bits & PEER_WANT_DEV) {
    c = wgam_cold_small(m, p);
    if (c)
      c->want_ep = p->dev_ep;
    p->bits &= (uint8_t)~PEER_WANT_DEV;
  }
  if (p->bits & PEER_OBS_DEV) {
    c = wgam_cold_get(m, p); /* till the move is announced */
    if (c)
      c->obs_ep = p->dev_ep;
    p->bits &= (uint8_t)~PEER_OBS_DEV;
  }
  p->dev_ep = *ep;
  c = p->cold;
  if (!c || !addr_valid(ep))
    return;
  if (memcmp(&c->want_ep, ep, sizeof(*ep)) == 0) {
    p->bits |= PEER_WANT_DEV;
    memset(&c->want_ep, 0, sizeof(c->want_ep));
  }
  c = cold_full(p);
  if (c && memcmp(&c->obs_ep, ep, sizeof(*ep)) == 0) {
    p->bits |= PEER_OBS_DEV;
    memset(&c->obs_ep, 0, sizeof(c->obs_ep));
  }
}

static uint8_t guess_source(const struct peer *p, const wgam_addr *ep) {
  size_t i;
  if (has_lan(p) && wgam_addr_equal(&peer_lan(p)->addr, ep))
    return WGAM_SOURCE_LAN;
  for (i = 0; i < p->nknown; i++)
    if (wgam_addr_equal(&p->known[i].addr, ep))
      return known_src(p)[i];
  for (i = 0; i < p->ncfg; i++)
    if (wgam_addr_equal(&peer_cfg(p)[i], ep))
      return WGAM_SOURCE_CONFIG;
  return WGAM_SOURCE_ROAMING;
}

/* A persistent keepalive: an empty transport message. */
#define KEEPALIVE_BYTES 32u

/* The keepalive bytes @elapsed since the last read may hold, every
 * @interval seconds (0: none but WireGuard's passive one): beyond that
 * they are traffic. */
static uint64_t keepalive_allowance(wgam_tstamp elapsed, wgam_tstamp interval) {
  return KEEPALIVE_BYTES * (1 + (interval ? elapsed / interval : 0));
}

/*
 * What the byte counters say since the last read (fast policy). Traffic
 * sent and nothing but keepalives back, or traffic from the peer that
 * stopped after flowing for reads in a row: the path may just have broken
 * (a NAT rebooted, an address changed, on either side), so it is probed
 * now rather than after probe_idle of silence. Our own gossip is left out
 * (an Announce is one way by design, a Pong answers), but for a Ping that
 * goes unanswered (its probe's Pong clears the check). Keepalives are
 * ours every dev_keepalive and the peer's as often as every probe_idle (a
 * node behind a NAT with roam hints, hints.c): reads far apart see
 * several.
 */
static void observe_traffic(const wgam_mesh *m, struct peer *p,
                            const wgam_device_peer *dp, wgam_tstamp ts) {
  wgam_tstamp elapsed = ts > m->dev_at ? ts - m->dev_at : 0;
  uint64_t rx = dp->rx_bytes - p->rx_bytes;
  uint16_t tx = (uint16_t)((uint16_t)dp->tx_bytes - p->tx_low);
  int rx_more = dp->rx_bytes >= p->rx_bytes &&
                rx > keepalive_allowance(elapsed, m->s.probe_idle);
  int rx_traffic = rx_more && !(p->bits & SIG_GOSSIP_IN);
  int tx_traffic =
      tx > keepalive_allowance(elapsed,
                               (wgam_tstamp)p->dev_keepalive * WGAM_SECONDS) &&
      !(p->bits & SIG_GOSSIP_OUT);
  int check = p->bits & SIG_CHECK;
  unsigned streak = p->bits >> RX_STREAK_SHIFT;

  /* Over a window longer than probe_idle (roam hints: reads far apart)
   * anything back answers: the peer's keepalives, a rekey's response. */
  if (tx_traffic && !(elapsed > m->s.probe_idle ? rx > 0 : rx_more))
    check = 1;
  if (rx_traffic) {
    if (streak < 3)
      streak++;
  } else {
    if (streak >= 2 && !rx_more)
      check = 1;
    streak = 0;
  }
  /* Only a working path is checked (a try has its own window). */
  p->bits = (uint8_t)((p->bits & ~(SIG_ALL | (3u << RX_STREAK_SHIFT))) |
                      (streak << RX_STREAK_SHIFT) |
                      (check && p->state == PEER_CONNECTED ? SIG_CHECK : 0));
}

static void observe_peer(wgam_mesh *m, struct peer *p,
                         const wgam_device_peer *dp, wgam_tstamp ts,
                         uint64_t unix_now) {
  int first = !p->on_device;
  int roamed = !wgam_addr_equal(&p->dev_ep, &dp->endpoint);
  int news = m->s.policy == WGAM_POLICY_FAST && p->learned_at != NONE &&
             p->learned_at > ts_latest(p->rx_at, p->hs_at, p->pong_at);

  if (roamed || first) {
    if (addr_valid(want_ep(p)) && wgam_addr_equal(&dp->endpoint, want_ep(p)))
      p->src = p->want_src;
    else if (addr_valid(&dp->endpoint))
      p->src = guess_source(p, &dp->endpoint);
    else
      p->src = WGAM_SOURCE_NONE;
    if (!first && addr_valid(&p->dev_ep) && addr_valid(&dp->endpoint))
      wgam_log(m, WGAM_LOG_DEBUG, "peer %s: device endpoint now %s (%s)",
               wgam_key_short(p->pubkey).s, wgam_addr_str(&dp->endpoint).s,
               wgam_source_name(p->src));
  }
  /* A connected peer whose public address changed by itself (its NAT
   * moved; WireGuard roamed its entry to where its packets now come from)
   * missed what we sent it since we last heard it where it was. A move
   * between a public and a LAN address is a path found, not a NAT moved:
   * nothing was lost. */
  if (m->s.policy == WGAM_POLICY_FAST && roamed && !first &&
      p->state == PEER_CONNECTED && addr_valid(&p->dev_ep) &&
      addr_valid(&dp->endpoint) && !wgam_addr_private(&p->dev_ep) &&
      !wgam_addr_private(&dp->endpoint) &&
      !wgam_addr_equal(&dp->endpoint, want_ep(p)))
    wgam_catch_up(m, p, ts_latest(p->rx_at, p->hs_at, p->pong_at));
  wgam_set_dev_ep(m, p, &dp->endpoint);
  p->on_device = 1;
  p->dev_keepalive = dp->persistent_keepalive;
  p->allowed_ok = (uint8_t)wgam_allowedips_match(m, p, dp);
  if (dp->last_handshake) {
    uint64_t age =
        unix_now > dp->last_handshake ? unix_now - dp->last_handshake : 0;
    wgam_tstamp agens = age > ts / WGAM_SECONDS ? ts : age * WGAM_SECONDS;
    wgam_tstamp at = ts - agens;
    /* Keep the estimate stable: only move it for a new handshake. */
    if (p->hs_at == NONE || dp->last_handshake != p->dev_hs)
      p->hs_at = at;
  } else {
    p->hs_at = NONE;
  }
  p->dev_hs = dp->last_handshake;
  if (m->s.policy == WGAM_POLICY_FAST && !first)
    observe_traffic(m, p, dp, ts);
  if (dp->rx_bytes != p->rx_bytes) {
    /* The bytes came after the last read (m->dev_at until this read is
     * done). When news of another address of the peer came since that
     * read, they may predate the move (a NAT that rebooted under the peer
     * lets nothing through since) and must not answer the news: their
     * time is then the last read's, and the probe the news starts (its
     * Pong, or bytes seen by a read soon) decides. Bytes that roamed the
     * entry are the peer where it went: they count. */
    if (first) {
    } else if (news && m->dev_at < p->learned_at && !roamed) {
      p->rx_at = m->dev_at;
      wgam_read_soon(m, ts);
    } else {
      p->rx_at = ts;
    }
    p->rx_bytes = dp->rx_bytes;
  }
  p->tx_low = (uint16_t)dp->tx_bytes;
}

int wgam_mesh_observe_device(wgam_mesh *m, const wgam_device *dev,
                             wgam_tstamp ts, uint64_t unix_now) {
  size_t i, hint = 0;
  int first;

  if (!m || !dev || (dev->npeers && !dev->peers))
    return WGAM_ERR_INVALID_ARGUMENT;
  first = !m->dev_seen;
  m->unix_base = unix_now;
  m->unix_base_ts = ts;
  m->listen_port = dev->listen_port;
  if (dev->has_pubkey != m->has_pubkey ||
      (dev->has_pubkey && memcmp(dev->pubkey, m->pubkey, WGAM_KEY_LEN))) {
    m->has_pubkey = dev->has_pubkey;
    memcpy(m->pubkey, dev->pubkey, WGAM_KEY_LEN);
    wgam_update_identity(m);
    if (m->has_pubkey)
      wgam_log(m, WGAM_LOG_INFO, "device key %s, listen port %u",
               wgam_key_short(m->pubkey).s, (unsigned)m->listen_port);
  }

  /* on_device is 0 or 1 here; 3 marks the peers seen in this read. */
  for (i = 0; i < dev->npeers; i++) {
    const wgam_device_peer *dp = &dev->peers[i];
    uint32_t idx;
    /* A device usually lists its peers in our order: try the one after the
     * last match before hashing the key (keys are unique, so a match is
     * what wgam_find_peer() would return). */
    if (hint == m->self_idx)
      hint++;
    if (hint < m->npeers &&
        memcmp(m->peers[hint].pubkey, dp->pubkey, WGAM_KEY_LEN) == 0)
      idx = hint;
    else
      idx = wgam_find_peer(m, dp->pubkey);
    if (idx == NO_IDX || idx == m->self_idx)
      continue; /* peers we do not manage are left alone */
    hint = idx + 1;
    observe_peer(m, &m->peers[idx], dp, ts, unix_now);
    m->peers[idx].on_device = 3; /* seen in this read */
  }

  m->dev_seen = 1;
  m->dev_at = ts;
  for (i = 0; i < m->npeers; i++) {
    struct peer *p = &m->peers[i];
    wgam_tstamp watch;

    if (i == m->self_idx)
      continue;
    if (p->on_device != 3) {
      /* Gone from the device (or never there): configure it again. */
      if (p->on_device) {
        struct peer_cold *c =
            addr_valid(&p->dev_ep) ? wgam_cold_get(m, p) : cold_full(p);

        if (c)
          c->lost_ep = p->dev_ep;
      }
      p->on_device = 0;
      p->allowed_ok = 0;
      static const wgam_addr none;

      wgam_set_dev_ep(m, p, &none);
      p->hs_at = NONE;
      p->dev_hs = 0;
    } else {
      p->on_device = 1;
    }
    /* Drop what the device already has, then ask for what it lacks. */
    if (p->allowed_ok)
      p->upd &= (uint8_t)~UPD_ALLOWED;
    if (p->dev_keepalive == p->want_keepalive)
      p->upd &= (uint8_t)~UPD_KEEPALIVE;
    if (!p->allowed_ok)
      wgam_mark_update(m, p, UPD_ALLOWED);
    if (p->want_keepalive && p->dev_keepalive != p->want_keepalive)
      wgam_mark_update(m, p, UPD_KEEPALIVE);
    /* A handshake came after all: keep it. */
    if (p->dev_hs || !p->on_device)
      p->upd &= (uint8_t)~UPD_RECREATE;
    m->observing = 1;
    wgam_peer_step(m, (uint32_t)i, ts);
    m->observing = 0;
    if (wgam_early_retry_due(m, p))
      m->t_early = ts_min(m->t_early, wgam_early_retry_at(m, p));
    watch = wgam_cross_watch_at(m, p);
    if (watch != NONE && watch > ts)
      m->t_early = ts_min(m->t_early, watch);
  }
  /* With every peer's state current (so propagation finds its targets): */
  for (i = 0; i < m->npeers; i++) {
    struct peer *p = &m->peers[i];

    if (i == m->self_idx)
      continue;
    /* Announce what the device sees, as the original does, when the store
     * lacks it or holds it only with a time over gossip_interval older. */
    if (p->dev_hs) {
      uint64_t gi = m->s.gossip_interval / WGAM_SECONDS;
      size_t k;
      int fresh = 0;
      /* Moved since we last announced it (or, never announced by us, away
       * from where we had put it), and not by us (nor is a write of ours
       * under way, which a try this read started): WireGuard roams to
       * where authenticated packets come from (a NAT that rebooted, a WAN
       * address that changed), often without a new handshake. The bytes since
       * prove it as of their read: that is news even when the store holds
       * the address from before (a NAT may hand out a port again), and it
       * must outrank what observers saw before the move, not wait for the
       * next rekey. */
      int moved =
          m->s.policy == WGAM_POLICY_FAST && !(p->upd & UPD_ENDPOINT) &&
          !wgam_addr_equal(want_ep(p), &p->dev_ep) &&
          (addr_valid(obs_ep(p)) ? !wgam_addr_equal(obs_ep(p), &p->dev_ep)
                                 : addr_valid(want_ep(p)));
      for (k = 0; k < p->nknown; k++)
        if (wgam_addr_equal(&p->known[k].addr, &p->dev_ep) &&
            p->dev_hs <= p->known[k].time + gi)
          fresh = 1;
      /* Once per gossip interval per endpoint, even if the store dropped it
       * meanwhile (five entries cannot hold what every observer of a
       * symmetric NAT sees). */
      if (wgam_addr_equal(obs_ep(p), &p->dev_ep) &&
          p->dev_hs <= p->obs_time + gi)
        fresh = 1;
      /* Checked last: it looks the endpoint up in the address table, and
       * nearly every observation is fresh. */
      if ((!fresh || moved) && wgam_endpoint_acceptable(m, &p->dev_ep)) {
        wgam_endpoint e;
        /* An observation announced before is only refreshed in our store
         * (Request answers carry it): flooding it again would start a wave
         * for every observer of a symmetric NAT, each gossip interval. */
        int mode = moved ? ANN_MOVED
                   : m->s.policy == WGAM_POLICY_FAST &&
                           wgam_addr_equal(obs_ep(p), &p->dev_ep)
                       ? ANN_KEEP
                       : ANN_FLOOD;
        e.addr = p->dev_ep;
        /* When the endpoint was last proven: by the handshake, or by the
         * bytes since (WireGuard's endpoint is where the latest
         * authenticated packet came from). An endpoint the peer roamed to
         * without a new handshake would otherwise carry the old
         * handshake's time and rank below the address it left, in every
         * store it reaches. */
        e.time = p->dev_hs;
        if (m->s.policy == WGAM_POLICY_FAST && p->rx_at != NONE &&
            unix_at(m, p->rx_at) > e.time)
          e.time = unix_at(m, p->rx_at);
        if (moved)
          wgam_log(m, WGAM_LOG_DEBUG, "peer %s: moved to %s, announced",
                   wgam_key_short(p->pubkey).s, wgam_addr_str(&p->dev_ep).s);
        /* Without memory to store it, it is news again next time. */
        if (wgam_handle_announce(m, (uint32_t)i, &e, 1,
                                 p->src ? p->src : WGAM_SOURCE_ROAMING, mode,
                                 ts) == 0) {
          /* The peer itself is told too (propagation passes over the
           * subject): until it sends to each of its peers, their packets
           * do not get through its NAT's new mappings. */
          if (moved)
            wgam_queue_to_peer(m, WGAM_MSG_ANNOUNCE, (uint32_t)i, p);
          p->bits |= PEER_OBS_DEV; /* obs_ep is dev_ep */
          if (cold_full(p))
            memset(&p->cold->obs_ep, 0, sizeof(p->cold->obs_ep));
          p->obs_time = p->dev_hs;
        }
      }
    }
  }

  if (m->s.policy == WGAM_POLICY_CLASSIC && (first || m->cycle_due)) {
    wgam_classic_cycle(m, ts);
    m->cycle_due = 0;
  }
  if (first) {
    if (m->s.flags & (WGAM_SETTINGS_LAN_DISCOVERY))
      m->t_lan = ts;
    if (m->s.flags & WGAM_SETTINGS_IGD)
      m->t_igd = ts;
    if (m->s.policy == WGAM_POLICY_FAST) {
      size_t asked = 0;
      for (i = 0; i < m->npeers && asked < wgam_fixed.initial_requests; i++) {
        struct peer *p = &m->peers[m->order[i]];
        if (m->order[i] == m->self_idx || !wgam_peer_connected(m, p, ts))
          continue;
        /* wgam_became_connected() may just have asked this one. */
        if (m->last_request != ts || m->last_request_peer != m->order[i])
          wgam_ask_peer(m, p, ts);
        asked++;
      }
      if (asked)
        m->last_request = ts;
      m->t_ask = ts_add(ts, wgam_fixed.ask_min);
    }
  }
  m->wants &= ~WGAM_WANT_DEVICE;
  wgam_hints_observed(m);
  m->t_device = ts_add(ts, wgam_read_interval(m));
  return 0;
}

static void fill_update(wgam_mesh *m, struct peer *p, uint8_t flags,
                        wgam_peer_update *upd) {
  memset(upd, 0, sizeof(*upd));
  memcpy(upd->pubkey, p->pubkey, WGAM_KEY_LEN);
  /* A peer new to the device gets its allowed IP in the same update. */
  if (!p->on_device)
    flags |= UPD_ALLOWED;
  if (flags & UPD_ALLOWED) {
    /* Its own allowed IPs, none while they are on a relay's entry; the
     * peers relayed through it get theirs back right after. */
    upd->flags |= WGAM_PEER_REPLACE_ALLOWEDIPS;
    if (p->route == WGAM_ROUTE_DIRECT)
      upd->nallowedips = wgam_own_allowedips(p, upd->allowedips);
    p->allowed_ok = 1;
    if (p->relayed_ips) {
      uint32_t idx = (uint32_t)(p - m->peers);
      size_t i;

      for (i = 0; i < m->npeers; i++)
        if (cold(&m->peers[i])->via == idx &&
            m->peers[i].route != WGAM_ROUTE_DIRECT)
          wgam_mark_update(m, &m->peers[i], UPD_ROUTE);
    }
  } else if (flags & UPD_ROUTE) {
    /* Back from a relay: adding them moves them off its entry. */
    upd->nallowedips = wgam_own_allowedips(p, upd->allowedips);
  }
  if ((flags & UPD_ENDPOINT) && addr_valid(want_ep(p))) {
    wgam_addr ep = *want_ep(p);

    upd->flags |= WGAM_PEER_HAS_ENDPOINT;
    upd->endpoint = ep;
    wgam_set_dev_ep(m, p, &ep);
    p->src = p->want_src;
  }
  if ((flags & UPD_KEEPALIVE) || !p->on_device) {
    upd->flags |= WGAM_PEER_HAS_KEEPALIVE;
    upd->persistent_keepalive =
        p->want_keepalive ? p->want_keepalive : m->s.keepalive_trying;
    p->dev_keepalive = upd->persistent_keepalive;
  }
  p->on_device = 1;
  m->stats.peer_updates++;
  /* A relayed peer's IPs go onto the relay's entry in an update of their
   * own, after this one (a re-created peer comes back with none). */
  if ((flags & UPD_ROUTE) && p->route != WGAM_ROUTE_DIRECT)
    wgam_mark_update(m, p, UPD_ROUTE);
}

int wgam_mesh_next_peer_update(wgam_mesh *m, wgam_peer_update *upd) {
  /* Nothing is decided before the device was read, nor while it has no
   * private key: which entry of the configuration is ours is not known
   * then (the key usually comes a moment after the interface). */
  if (!m || !upd || !m->dev_seen || !m->has_pubkey)
    return 0;
  if (m->recreate != NO_IDX) {
    uint32_t idx = m->recreate;

    m->recreate = NO_IDX;
    fill_update(m, &m->peers[idx], m->recreate_upd, upd);
    return 1;
  }
  if (m->nremoved) {
    memset(upd, 0, sizeof(*upd));
    memcpy(upd->pubkey, m->removed[--m->nremoved], WGAM_KEY_LEN);
    upd->flags = WGAM_PEER_REMOVE_ME;
    m->stats.peer_updates++;
    return 1;
  }
  while (m->updq_len) {
    uint32_t idx = m->updq[m->updq_head];
    struct peer *p = &m->peers[idx];
    uint8_t flags = p->upd;

    m->updq_head = (m->updq_head + 1) % m->npeers;
    m->updq_len--;
    p->queued = 0;
    p->upd = 0;
    if (!flags || idx == m->self_idx)
      continue;
    if (flags & UPD_RECREATE) {
      memset(upd, 0, sizeof(*upd));
      memcpy(upd->pubkey, p->pubkey, WGAM_KEY_LEN);
      upd->flags = WGAM_PEER_REMOVE_ME;
      p->on_device = 0; /* the next update adds it whole */
      m->recreate = idx;
      m->recreate_upd = flags;
      m->stats.peer_updates++;
      return 1;
    }
    if ((flags & UPD_ROUTE) && p->route != WGAM_ROUTE_DIRECT) {
      /* One update on the relay's entry; the rest of this peer's follows. */
      if (flags & ~UPD_ROUTE)
        wgam_mark_update(m, p, flags & (uint8_t)~UPD_ROUTE);
      return wgam_route_update(m, p, upd);
    }
    fill_update(m, p, flags, upd);
    return 1;
  }
  return 0;
}
