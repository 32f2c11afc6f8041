/* SPDX-License-Identifier: MIT */
/*
 * Candidate endpoints and the per-peer state machine (fast policy).
 *
 * Per configured peer (never ourselves), wgam_peer_step() decides from
 * what the device says (endpoint, handshake, received bytes), what gossip
 * and the LAN say (candidates), and the time:
 *
 *            candidate learned
 *   IDLE -------------------------> TRYING ----- handshake ----> CONNECTED
 *    ^                              |  |  ^  (or Pong through it)  |  |  ^
 *    | no candidate at all          |  |  |                        |  |  |
 *    +------------------------------+  |  | next candidate         |  |  |
 *                                      |  | (window over, or a     |  |  |
 *       no handshake early_retry       |  |  better one learned)   |  |  |
 *       after the try began:           v  |                        |  |  |
 *       re-create the peer  -----> RETRIED                         |  |  |
 *                                      |                           |  |  |
 *            every candidate failed    v                           |  |  |
 *                                   BACKOFF <-- probe unanswered, -+  |  |
 *                                      |        handshake too old     |  |
 *            backoff over, or a new    |                              |  |
 *            candidate: next round ----+--> TRYING                    |  |
 *                                                                     |  |
 *            a LAN endpoint heard by broadcast while connected:       |  |
 *                                   SWITCHING <-----------------------+  |
 *                                      |  Pong via the LAN endpoint, or  |
 *                                      +-- no answer: back to the old ---+
 *                                          endpoint
 *
 * RETRIED is TRYING after the early re-creation (done once per try);
 * SWITCHING is connected while the LAN endpoint is tried; both are
 * reported as TRYING. A try window is try_interval long, judged on a
 * device read taken after it closed; a newly learned candidate cuts it
 * after min_try (a LAN endpoint at once). Timers and limits:
 * wgam_settings and wgam_fixed (settings.c). The classic policy
 * (classic.c) drives the same states from the original's 30 s loop.
 */
#include <stdlib.h>
#include <string.h>

#include "engine.h"

void wgam_peer_set_state(wgam_mesh *m, struct peer *p, int state,
                         wgam_tstamp ts) {
  int was_idle = p->state == PEER_IDLE, none_up = !m->nconnected;

  if (p->state == PEER_CONNECTED && state != PEER_CONNECTED)
    m->nconnected--;
  else if (p->state != PEER_CONNECTED && state == PEER_CONNECTED)
    m->nconnected++;
  p->state = (uint8_t)state;
  /* Store Requests (wgam_ask_for_stores()) sleep while no peer lacks a
   * candidate or none is connected to be asked: a peer left without one,
   * or a first peer to ask, wakes them. */
  if ((state == PEER_IDLE && !was_idle) || (none_up && m->nconnected))
    wgam_ask_soon(m, ts);
}

/* The last Pong that proves the direct path: none while the peer is routed
 * through a relay (the Pong came through it), nor one from before the
 * route came back from a relay. */
static wgam_tstamp direct_pong(const struct peer *p) {
  if (p->route != WGAM_ROUTE_DIRECT)
    return NONE;
  if (cold(p)->route_at != NONE &&
      (p->pong_at == NONE || p->pong_at <= cold(p)->route_at))
    return NONE;
  return p->pong_at;
}

int wgam_peer_connected(const wgam_mesh *m, const struct peer *p,
                        wgam_tstamp ts) {
  if (p->hs_at == NONE || ts >= ts_add(p->hs_at, m->s.timeout))
    return 0;
  if (cold(p)->broken_at != NONE &&
      ts_latest(p->rx_at, p->hs_at, direct_pong(p)) <= cold(p)->broken_at)
    return 0;
  return 1;
}

struct cand {
  wgam_addr addr;
  uint8_t src;
};

static size_t add_cand(struct cand *c, size_t n, const wgam_addr *a,
                       uint8_t src) {
  size_t i;
  for (i = 0; i < n; i++)
    if (wgam_addr_equal(&c[i].addr, a))
      return n;
  c[n].addr = *a;
  c[n].src = src;
  return n + 1;
}

/*
 * Fast policy order: the LAN endpoint heard by broadcast, then gossip
 * (newest first) and configured endpoints with public addresses, then the
 * private ones. A private address learned by gossip is usually another
 * network's LAN (two nodes there announce what they see of each other):
 * trying it first would cost a handshake window for nothing.
 */
static size_t candidates(const wgam_mesh *m, const struct peer *p,
                         struct cand *c) {
  size_t n = 0, i;
  int private_pass;

  if (has_lan(p))
    n = add_cand(c, n, &peer_lan(p)->addr, WGAM_SOURCE_LAN);
  /* The device lost the entry (its interface deleted and created again):
   * where we last saw the peer ourselves comes first: where the device had
   * it (the latest packets came from there, also when we had written it
   * ourselves and it was no news to announce), then what we announced.
   * Behind a symmetric NAT every observer sees another port, and the
   * newest in the store is most likely someone else's. */
  if (!addr_valid(&p->dev_ep)) {
    if (addr_valid(&cold(p)->lost_ep) &&
        wgam_endpoint_acceptable(m, &cold(p)->lost_ep))
      n = add_cand(c, n, &cold(p)->lost_ep, WGAM_SOURCE_ROAMING);
    if (addr_valid(obs_ep(p)) && wgam_endpoint_acceptable(m, obs_ep(p)))
      n = add_cand(c, n, obs_ep(p), WGAM_SOURCE_ROAMING);
  }
  for (private_pass = 0; private_pass < 2; private_pass++) {
    for (i = 0; i < p->nknown; i++)
      if (wgam_addr_private(&p->known[i].addr) == private_pass &&
          wgam_endpoint_acceptable(m, &p->known[i].addr))
        n = add_cand(c, n, &p->known[i].addr, known_src(p)[i]);
    for (i = 0; i < p->ncfg; i++)
      if (wgam_addr_private(&peer_cfg(p)[i]) == private_pass)
        n = add_cand(c, n, &peer_cfg(p)[i], WGAM_SOURCE_CONFIG);
  }
  return n;
}

/* Whether every candidate of @p is a private address learned by gossip. */
static int only_private(const wgam_mesh *m, const struct peer *p) {
  struct cand c[MAX_CANDIDATES];
  size_t n = candidates(m, p, c), i;

  for (i = 0; i < n; i++)
    if (c[i].src == WGAM_SOURCE_LAN || !wgam_addr_private(&c[i].addr))
      return 0;
  return n > 0;
}

static int was_tried(const struct peer *p, const wgam_addr *a) {
  uint32_t h = wgam_addr_hash32(a);
  size_t i;
  for (i = 0; i < cold(p)->ntried; i++)
    if (cold(p)->tried[i] == h)
      return 1;
  return 0;
}

static void send_ping(wgam_mesh *m, struct peer *p) {
  wgam_queue_to_peer(m, WGAM_MSG_PING, NO_IDX, p);
}

/*
 * Writing the same endpoint again is not a no-op: it makes WireGuard forget
 * the source address it cached for the peer (wireguard-go keeps sending from
 * an address we no longer have). That is what we need when we moved, and
 * what we must not do when the peer moved: our write could undo the roaming
 * its first packets from its new address just caused. Several paths going
 * silent together, or our only one, says we moved; so does news of a new
 * address of ours since the path was last heard (an observer saw our
 * packets come from where our NAT now maps us), which often comes before
 * a second path is found silent: the peer's own packets then still come
 * from where it was, and another of its addresses would be a wasted try.
 */
static int we_moved(const wgam_mesh *m, const struct peer *p) {
  return m->nsilent >= 2 || m->npeers - (m->self_idx != NO_IDX) <= 1 ||
         (m->self_moved_at != NONE && m->self_moved_at >= cold(p)->heard_at);
}

static void path_silent(wgam_mesh *m, struct peer *p, wgam_tstamp ts) {
  size_t i;

  p->cold->broken_at = ts; /* p->cold holds the probe */
  p->cold->heard_at = ts_latest(p->rx_at, p->hs_at, p->pong_at);
  if (m->silent_since == NONE ||
      ts > ts_add(m->silent_since, m->s.probe_timeout + m->s.device_interval)) {
    m->silent_since = ts;
    m->nsilent = 0;
  }
  if (++m->nsilent != 2)
    return;
  /* The first one of this window was tried without the write: redo it. */
  for (i = 0; i < m->npeers; i++) {
    struct peer *q = &m->peers[i];
    if (q == p || cold(q)->broken_at == NONE ||
        cold(q)->broken_at < m->silent_since || !peer_trying(q->state) ||
        !addr_valid(want_ep(q)))
      continue;
    wgam_mark_update(m, q, UPD_ENDPOINT);
    q->endpoint_changes++;
    m->stats.endpoint_changes++;
  }
}

/*
 * The first try of a peer we never saw a handshake with (obs_time), on an
 * endpoint its entry already had (its configured one), with nothing
 * received: the peer was probably not up yet when our initiation came
 * (nodes that start together start within a second or so), and one that
 * comes up gets ours only if we send again. Such a try is re-created
 * EARLY_RETRIES times, early_retry / EARLY_RETRIES apart, instead of once
 * after early_retry: the peer is reached a third of a second after it came
 * up, not up to a second. Not on an entry's first endpoint (two ends that
 * learned of each other together: see early_stagger), nor in later tries
 * (a peer that stays silent costs one re-creation per try, as before).
 */
#define EARLY_RETRIES 3

static int retry_again(const struct peer *p) {
  const struct peer_cold *c = cold_full(p);

  return c && !c->first_ep && c->tries == 1 && !p->rx_bytes && !p->obs_time;
}

static int again(const struct peer *p) {
  return p->state == PEER_RETRIED && retry_again(p) &&
         p->cold->nretried < EARLY_RETRIES && p->cold->retried_at != NONE;
}

/*
 * After an early re-creation, the peer's initiation came (its bytes on the
 * new entry) and no handshake followed: the peer re-created its entry or
 * started its own try as we did, the two initiations crossed, and each
 * end's answer replaced its own initiation, so that neither answer was
 * taken. WireGuard would retry in 5 s: the entry is re-created again, the
 * greater key later (see wgam_early_retry_at()), at most MAX_RECROSS times,
 * and only in the first try of a peer never seen connected (obs_time: a
 * path that worked and broke is the other end moving, and its initiation is
 * answered, not crossed; and a pair that cannot connect, tried again and
 * again, must not cost more at each try).
 */
#define MAX_RECROSS 2

/* After an early re-creation in the first try of a peer never seen
 * connected, with re-crossings left: a crossing may still come. */
static int cross_possible(const struct peer *p) {
  const struct peer_cold *c = cold_full(p);

  return p->state == PEER_RETRIED && c && c->recrossed < MAX_RECROSS &&
         !p->obs_time && c->tries == 1 && c->retried_at != NONE;
}

static int crossed(const struct peer *p) {
  return cross_possible(p) && p->rx_bytes && p->rx_at != NONE &&
         p->rx_at > p->cold->retried_at;
}

/* When a try of @p without a handshake is redone (see wgam_fixed.early_retry in
 * settings.c).
 */
wgam_tstamp wgam_early_retry_at(const wgam_mesh *m, const struct peer *p) {
  wgam_tstamp at = ts_add(cold(p)->try_start, wgam_fixed.early_retry);

  if (crossed(p)) {
    /* The bytes are the peer's initiation, answered: if the answer was
     * taken after all, its data follows within early_quiet. */
    at = ts_add(p->rx_at, wgam_fixed.early_quiet);
    if (m->has_pubkey && memcmp(m->pubkey, p->pubkey, WGAM_KEY_LEN) > 0)
      at = ts_add(at, wgam_fixed.early_stagger);
    return at;
  }

  if (again(p))
    return ts_add(p->cold->retried_at, wgam_fixed.early_retry / EARLY_RETRIES);
  if (cold(p)->first_ep && !p->rx_bytes) {
    /* The entry spent WireGuard's initiation while it had no endpoint:
     * no handshake is under way. The smaller key goes first, so that two
     * ends that learned of each other together do not cross. They did not
     * when our endpoint is configured (the other knew it from its start),
     * nor when news did not start this try: the address came in an answer
     * to a Request, which we send when news went past us, and the other
     * end had the news of us, and tried us, then. */
    at = ts_add(cold(p)->try_start, wgam_fixed.early_first);
    if (m->has_pubkey && memcmp(m->pubkey, p->pubkey, WGAM_KEY_LEN) > 0 &&
        !self_configured(m) && p->learned_at != NONE &&
        p->learned_at >= cold(p)->try_start)
      at = ts_add(at, wgam_fixed.early_stagger);
    return at;
  }
  if (!p->rx_bytes)
    return retry_again(p) ? ts_add(cold(p)->try_start,
                                   wgam_fixed.early_retry / EARLY_RETRIES)
                          : at;
  if (p->rx_at != NONE) {
    wgam_tstamp quiet = ts_add(p->rx_at, wgam_fixed.early_quiet);

    /* In the first try of a peer never seen connected, its initiation
     * received since the try started and answered without a handshake
     * following is a crossing (both ends configured each other at once;
     * each answer replaced its own initiation): redone once the bytes are
     * early_quiet old, not after the whole early_retry. Otherwise the
     * bytes only hold the retry. */
    if (!p->obs_time && cold(p)->tries == 1 && p->rx_at >= cold(p)->try_start)
      at = quiet;
    else if (quiet > at)
      at = quiet;
  }
  if (m->has_pubkey && memcmp(m->pubkey, p->pubkey, WGAM_KEY_LEN) > 0)
    at = ts_add(at, wgam_fixed.early_stagger);
  return at;
}

/* Points the device at @ep for this peer and gives it a handshake window. */
void wgam_try_endpoint(wgam_mesh *m, struct peer *p, const wgam_addr *ep,
                       uint8_t src, wgam_tstamp ts) {
  struct peer_cold *c = wgam_cold_get(m, p);

  if (!c)
    return; /* no memory: the next step tries again */
  if (c->ntried < MAX_CANDIDATES)
    c->tried[c->ntried++] = wgam_addr_hash32(ep);
  /* No initiation of ours can be on its way to @ep: the entry had no
   * endpoint (WireGuard spent its initiation without one), or it never
   * handshaked and the last try, at another address, began less than
   * WireGuard's rekey timeout ago (its initiation went there, and the
   * next waits for that timeout). */
  c->first_ep = p->on_device && !p->dev_hs &&
                (!addr_valid(&p->dev_ep) ||
                 (c->tries && c->try_start != NONE &&
                  ts < ts_add(c->try_start, WG_REKEY_TIMEOUT) &&
                  !wgam_addr_equal(&p->dev_ep, ep)));
  /* The path just found silent, tried again for want of another
   * candidate, while the peer more likely moved: no handshake of ours is
   * under way, so news of where it went ends this try at once. */
  c->stale_ep = c->broken_at != NONE && wgam_addr_equal(&p->dev_ep, ep) &&
                !we_moved(m, p);
  wgam_set_want(m, p, ep);
  p->want_src = src;
  c->try_start = ts;
  c->nretried = 0;
  c->recrossed = 0;
  c->deadline = ts_add(ts, m->s.try_interval);
  c->tries++;
  wgam_hints_busy(m, ts);
  if (m->s.policy == WGAM_POLICY_FAST && !p->dev_hs)
    m->t_early = ts_min(m->t_early, wgam_early_retry_at(m, p));
  /* Its handshake takes a round trip: see it then, not a device read
   * interval later. */
  wgam_read_soon(m, ts);
  if (p->state == PEER_SWITCHING) {
    /* The LAN try of a connected peer keeps the connected keepalive. */
  } else {
    wgam_peer_set_state(m, p, PEER_TRYING, ts);
    wgam_set_keepalive(m, p, m->s.keepalive_trying);
  }
  if (!wgam_addr_equal(&p->dev_ep, ep) ||
      (c->broken_at != NONE && we_moved(m, p))) {
    wgam_mark_update(m, p, UPD_ENDPOINT);
    p->endpoint_changes++;
    m->stats.endpoint_changes++;
  } else if (c->stale_ep && m->s.policy == WGAM_POLICY_FAST &&
             cfg_literal_has(p, ep)) {
    /* The peer's configured endpoint, silent while we did not move: a
     * peer there does not roam, so it lost the session (restarted,
     * removed us and added us back, its interface re-created), while our
     * WireGuard still holds it and starts no handshake before its own
     * timeouts (15 s after unanswered data). A re-created entry
     * handshakes at once. (A peer that may have moved keeps the session:
     * its packets from where it went roam the entry back.) */
    wgam_mark_update(m, p, UPD_ENDPOINT | UPD_RECREATE);
  }
  wgam_log(m, WGAM_LOG_INFO, "peer %s: trying %s endpoint %s",
           wgam_key_short(p->pubkey).s, wgam_source_name(src),
           wgam_addr_str(ep).s);
  /* Traffic for the peer makes WireGuard start a handshake right away
   * (while its allowed IPs are on a relay's entry, the keepalive does, and
   * the early re-creation of a peer that never had one). */
  send_ping(m, p);
}

static wgam_tstamp backoff_delay(const wgam_mesh *m, uint8_t level) {
  wgam_tstamp d = m->s.backoff_min;
  while (level-- && d < m->s.backoff_max)
    d *= 2;
  return d < m->s.backoff_max ? d : m->s.backoff_max;
}

/* Tries the first candidate not tried in this round, or backs off. */
static void try_next(wgam_mesh *m, struct peer *p, wgam_tstamp ts) {
  struct cand c[MAX_CANDIDATES];
  size_t n = candidates(m, p, c), i;
  struct peer_cold *pc = wgam_cold_get(m, p);

  if (!pc)
    return; /* no memory: the next step tries again */
  /* A path just found silent is tried last, unless we are the one who moved
   * (then it is still right and needs only rewriting): the peer more likely
   * moved, and what gossip learned meanwhile says where to. */
  if (pc->broken_at != NONE && !we_moved(m, p)) {
    for (i = 0; i + 1 < n; i++)
      if (wgam_addr_equal(&c[i].addr, &p->dev_ep)) {
        struct cand t = c[i];
        memmove(&c[i], &c[i + 1], (n - i - 1) * sizeof(c[0]));
        c[n - 1] = t;
        break;
      }
  }

  for (i = 0; i < n; i++)
    if (!was_tried(p, &c[i].addr)) {
      wgam_try_endpoint(m, p, &c[i].addr, c[i].src, ts);
      return;
    }
  wgam_set_keepalive(m, p, m->s.keepalive_trying);
  if (pc->ntried == 0) {
    wgam_peer_set_state(m, p, PEER_IDLE, ts);
    pc->deadline = NONE;
    return;
  }
  wgam_peer_set_state(m, p, PEER_BACKOFF, ts);
  pc->deadline = ts_add(ts, backoff_delay(m, pc->backoff_level));
  /* Relayed: the direct path is tried again sooner (it may have opened:
   * a NAT that changed kind, a firewall rule lifted). */
  if (p->route != WGAM_ROUTE_DIRECT)
    pc->deadline =
        ts_min(pc->deadline, ts_add(ts, wgam_fixed.relay_direct_retry));
  if (pc->backoff_level < 16)
    pc->backoff_level++;
  wgam_log(m, WGAM_LOG_DEBUG,
           "peer %s: %u candidates failed, next round in %llus",
           wgam_key_short(p->pubkey).s, (unsigned)pc->ntried,
           (unsigned long long)((pc->deadline - ts) / WGAM_SECONDS));
}

static wgam_tstamp peer_next(const wgam_mesh *m, const struct peer *p);
static int news_since_heard(const struct peer *p);

/* A device read soon: a handshake is likely done within a round trip. */
void wgam_read_soon(wgam_mesh *m, wgam_tstamp ts) {
  if (m->s.policy == WGAM_POLICY_FAST && m->dev_seen)
    m->t_early = ts_min(m->t_early, ts_add(ts, wgam_fixed.read_soon));
}

/* A device read now, or session_read_gap after the last one: a session is
 * proven made (see wgam_fixed.session_read_gap). */
void wgam_read_prompt(wgam_mesh *m, wgam_tstamp ts) {
  if (m->s.policy == WGAM_POLICY_FAST && m->dev_seen)
    m->t_early = ts_min(
        m->t_early,
        ts_latest(ts, ts_add(m->dev_at, wgam_fixed.session_read_gap), NONE));
}

/* A backing-off peer starts a new round now (see wgam_relay_pinged()). */
void wgam_try_again(wgam_mesh *m, uint32_t idx, wgam_tstamp ts) {
  struct peer *p = &m->peers[idx];

  if (cold_full(p))
    p->cold->ntried = 0;
  try_next(m, p, ts);
  wgam_heap_set(m, idx, peer_next(m, p));
}

/* An untried candidate worth cutting the current try for: not a private
 * address while a public one is being tried (see candidates()). */
static int has_preempting(const wgam_mesh *m, const struct peer *p) {
  struct cand c[MAX_CANDIDATES];
  size_t n = candidates(m, p, c), i;
  int now_private = wgam_addr_private(want_ep(p));

  /* A private address from gossip is usually another network's LAN; one
   * from a broadcast is ours. */
  for (i = 0; i < n; i++)
    if (!was_tried(p, &c[i].addr) &&
        (now_private || !wgam_addr_private(&c[i].addr) ||
         c[i].src == WGAM_SOURCE_LAN))
      return 1;
  return 0;
}

/* A LAN endpoint heard by broadcast and not tried in this round: it ranks
 * first and is on our own network, so it cuts a try at once. */
static int lan_untried(const struct peer *p) {
  return has_lan(p) && !was_tried(p, &peer_lan(p)->addr);
}

/*
 * The try is at a private address learned by gossip (another node's view
 * of the peer on its own LAN, usually not ours), taken for want of any
 * other candidate, and a public one has come since, by news or in an
 * answer: the candidates would have ranked it first, so it cuts the try
 * at once (an answer is not news, and otherwise the guess held the peer
 * for a whole try window).
 */
static int private_guess_beaten(const wgam_mesh *m, const struct peer *p) {
  struct cand c[MAX_CANDIDATES];
  size_t n, i;

  if (p->want_src != WGAM_SOURCE_GOSSIP || !wgam_addr_private(want_ep(p)))
    return 0;
  n = candidates(m, p, c);
  for (i = 0; i < n; i++)
    if (!was_tried(p, &c[i].addr) && !wgam_addr_private(&c[i].addr))
      return 1;
  return 0;
}

static int has_untried(const wgam_mesh *m, const struct peer *p) {
  struct cand c[MAX_CANDIDATES];
  size_t n = candidates(m, p, c), i;
  for (i = 0; i < n; i++)
    if (!was_tried(p, &c[i].addr))
      return 1;
  return 0;
}

wgam_tstamp wgam_probe_idle(const wgam_mesh *m) {
  /* Small meshes probe quickly; large ones stay within wgam_fixed.probe_rate
   * probes a second and otherwise rely on WireGuard's own rekeying: with
   * keepalives flowing, a healthy session is renewed every two minutes, so a
   * handshake older than the fast policy's timeout means a broken path. */
  wgam_tstamp idle = m->s.probe_idle;
  wgam_tstamp budget =
      (wgam_tstamp)m->npeers * WGAM_SECONDS / wgam_fixed.probe_rate;
  return budget > idle ? budget : idle;
}

/* Small enough that probe_idle is not stretched by the probe_rate budget:
 * a node probes all its peers together (probe_along()). */
static int small_mesh(const wgam_mesh *m) {
  return wgam_probe_idle(m) == m->s.probe_idle;
}

/* A node behind a NAT in a small mesh keeps its own probe cadence (see
 * idle_since()). */
static int own_cadence(const wgam_mesh *m) {
  return self_behind_nat(m) && small_mesh(m);
}

/*
 * Since when @p's path counts as idle, for its idle probe: everything heard
 * from the peer counts. But a node behind a NAT (no endpoint of its own
 * configured) in a mesh small enough that its peers are probed together
 * (probe_along()) keeps its own cadence, a probe_idle after its last round
 * or the last Pong or handshake: when its NAT reboots or its WAN address
 * changes, only its own packets reopen the way, and the peers' probes that
 * it heard before would put its next off by up to a probe_idle and a
 * device_interval (the read that saw them). In a large mesh the probes of
 * NAT-ed nodes would add a fifth to the steady gossip (simulator, 200
 * nodes): there the peers' keepalives and probes count.
 */
static wgam_tstamp idle_since(const wgam_mesh *m, const struct peer *p) {
  if (m->probe_round != NONE && own_cadence(m))
    return ts_latest(m->probe_round, p->hs_at, p->pong_at);
  return ts_latest(p->rx_at, p->hs_at, p->pong_at);
}

/* When @p's idle probe is due. A peer behind a NAT keeps its own cadence
 * in a small mesh, its next Ping due when our probe would be: there it is
 * given probe_news to come first (else both ends probe the pair). */
static wgam_tstamp idle_due(const wgam_mesh *m, const struct peer *p) {
  wgam_tstamp due;

  if (wgam_heartbeat_in_wg(m))
    return NONE; /* hints.c */
  due = ts_add(idle_since(m, p), wgam_probe_idle(m));

  return own_cadence(m) || p->ncfg || !small_mesh(m)
             ? due
             : ts_add(due, wgam_fixed.probe_news);
}

/*
 * A Ping from connected peer @idx came through its tunnel. WireGuard moved
 * the peer's entry to where the Ping came from before handing it to us: a
 * node whose NAT rebooted or renumbered is heard at its next probe, first
 * by the nodes it can reach unasked (an endpoint of their own configured),
 * so those read the device now, in this wake-up (or when ping_read_gap
 * since the last read has passed), not a device_interval later, and
 * announce the move at once. A node behind a NAT hears a moved peer only after
 * it sent to the peer's new address: its periodic reads are enough. The Ping's
 * bytes, which the read would show, count now: a peer that probes us on its own
 * cadence is not probed back (see idle_due()); unless we probe it, or news of
 * another address of it came (those wait for their own answer).
 */
void wgam_pinged(wgam_mesh *m, uint32_t idx, wgam_tstamp ts) {
  struct peer *p = &m->peers[idx];

  if (p->state != PEER_CONNECTED || p->route != WGAM_ROUTE_DIRECT)
    return;
  if (!self_behind_nat(m)) {
    wgam_tstamp read_at = ts_add(m->dev_at, wgam_fixed.ping_read_gap);

    if (ts >= read_at)
      m->wants |= WGAM_WANT_DEVICE;
    else
      m->t_early = ts_min(m->t_early, read_at);
  }
  if (cold(p)->probe_at != NONE || news_since_heard(p))
    return;
  p->rx_at = ts;
  wgam_heap_set(m, idx, peer_next(m, p));
}

void wgam_ask_peer(wgam_mesh *m, struct peer *p, wgam_tstamp ts) {
  struct peer_cold *c = wgam_cold_get(m, p);

  if (!c || wgam_queue_to_peer(m, WGAM_MSG_REQUEST, NO_IDX, p) != 0)
    return;
  c->req_at = ts;
  c->answer_end = ts_add(ts, wgam_fixed.answer_window);
  m->answers_until = ts_add(ts, wgam_fixed.answer_window);
}

/*
 * Whether an Announce from @src is the answer to our Request: it comes
 * within answer_window and, with roam hints, within answer_burst of the
 * answer's first datagram (the whole store goes out at once). What the
 * peer sends after is news again: a peer that moves right after we asked
 * a node that sees it is not missed. Without hints the idle probes find
 * such a move at the next round, and the whole window is the answer's.
 */
int wgam_is_answer(wgam_mesh *m, const wgam_addr *src, wgam_tstamp ts) {
  struct peer_cold *c;
  uint32_t idx;

  if (m->s.policy != WGAM_POLICY_FAST || ts >= m->answers_until)
    return 0; /* nothing asked lately: no lookup on this hot path */
  idx = wgam_find_addr(m, src);
  if (idx == NO_IDX || idx == m->self_idx)
    return 0;
  c = cold_full(&m->peers[idx]); /* whole since the Request, if any */
  if (!c || c->req_at == NONE || ts >= c->answer_end)
    return 0;
  if (m->roam_hints)
    c->answer_end = ts_min(c->answer_end, ts_add(ts, wgam_fixed.answer_burst));
  return 1;
}

/* When news of @q last went out from us, or NONE: propagation damping may
 * send it well after we learned it. */
static wgam_tstamp spread_at(const struct peer *q) {
  const struct peer_cold *c = cold_pre(q);

  if (c->prop_next == NONE || !c->prop_hold_s || c->prop_pending)
    return NONE;
  return c->prop_next - (wgam_tstamp)c->prop_hold_s * WGAM_SECONDS;
}

/*
 * A peer back after its path broke, or found at another address, missed
 * what was propagated meanwhile (a NAT that rebooted under both of them:
 * our announce of the other's new port went to its old one). Tell it again
 * each subject we propagated since it was last heard where it was (news
 * only: Request answers are not propagated, see wgam_handle_announce()).
 */
void wgam_catch_up(wgam_mesh *m, struct peer *p, wgam_tstamp since) {
  uint32_t idx = (uint32_t)(p - m->peers);
  size_t i;

  for (i = 0; i < m->npeers; i++) {
    const struct peer *q = &m->peers[i];
    wgam_tstamp sent = spread_at(q);

    if (i == idx || i == m->self_idx || !q->nknown)
      continue;
    if (sent == NONE || sent < since)
      continue;
    if (wgam_queue_to_peer(m, WGAM_MSG_ANNOUNCE, (uint32_t)i, p) != 0)
      break;
  }
}

void wgam_became_connected(wgam_mesh *m, struct peer *p, wgam_tstamp ts) {
  int was_up = p->state == PEER_CONNECTED;

  wgam_set_keepalive(m, p, wgam_connected_keepalive(m, p));
  if (was_up)
    return;
  if (m->s.policy == WGAM_POLICY_FAST && cold(p)->broken_at != NONE)
    wgam_catch_up(m, p, cold(p)->heard_at);
  wgam_peer_set_state(m, p, PEER_CONNECTED, ts);
  wgam_relay_up(m, p, ts);
  if (cold_full(p)) {
    p->cold->backoff_level = 0;
    p->cold->ntried = 0;
    p->cold->tries = 0;
    p->cold->deadline = NONE;
    p->cold->broken_at = NONE;
    p->cold->probe_at = NONE;
  }
  wgam_log(m, WGAM_LOG_INFO, "peer %s: connected via %s",
           wgam_key_short(p->pubkey).s, wgam_addr_str(&p->dev_ep).s);
  /* What we know of ourselves (the UPnP endpoint) may have been learned
   * while nobody was connected to hear it: tell each peer as it comes. */
  if (m->nself_known && m->has_pubkey)
    wgam_queue_to_peer(m, WGAM_MSG_ANNOUNCE, SUBJECT_SELF, p);
  /* A newly connected peer knows the mesh: ask it, now and then, and at
   * once if the last one asked is a LAN neighbour and this one is not: a
   * neighbour that started with us knows no more than we do, while the
   * news we missed went round through the nodes outside. */
  if (m->s.policy == WGAM_POLICY_FAST &&
      (m->last_request == NONE ||
       ts >= ts_add(m->last_request, wgam_fixed.request_interval) ||
       (m->last_request_peer < m->npeers &&
        m->peers[m->last_request_peer].src == WGAM_SOURCE_LAN &&
        p->src != WGAM_SOURCE_LAN))) {
    m->last_request = ts;
    m->last_request_peer = (uint32_t)(p - m->peers);
    wgam_ask_peer(m, p, ts);
  }
}

/* A LAN try keeps its whole window: nothing learned can rank above it, and
 * the peer may just not have configured us yet when our first handshake
 * initiation arrived (WireGuard retries after 5 s). */
static int preemptible(const struct peer *p) {
  return p->want_src != WGAM_SOURCE_LAN;
}

static int new_since_try(const struct peer *p) {
  return p->learned_at != NONE && cold(p)->try_start != NONE &&
         p->learned_at > cold(p)->try_start;
}

/* When a newly learned candidate may cut the try: after min_try, at once
 * if the try only rewrote a path found silent. */
static wgam_tstamp cut_at(const struct peer *p) {
  return cold(p)->stale_ep ? cold(p)->try_start
                           : ts_add(cold(p)->try_start, wgam_fixed.min_try);
}

/* After an early re-creation, the device is read when an initiation of
 * the peer's that crossed ours would be early_quiet old (see crossed()),
 * whatever reads came between (the read_soon after the re-creation is
 * too early for the initiation of a peer that re-created its entry a
 * stagger after ours). NONE when no crossing is watched for. */
wgam_tstamp wgam_cross_watch_at(const wgam_mesh *m, const struct peer *p) {
  if (m->s.policy != WGAM_POLICY_FAST || !cross_possible(p) || p->dev_hs ||
      p->hs_at != NONE)
    return NONE;
  return ts_add(p->cold->retried_at, wgam_fixed.early_quiet);
}

int wgam_early_retry_due(const wgam_mesh *m, const struct peer *p) {
  /* Never a completed handshake with the peer (bytes received alone may be
   * an initiation we answered in vain: see wgam_fixed.early_retry in
   * settings.c). */
  return m->s.policy == WGAM_POLICY_FAST &&
         (p->state == PEER_TRYING || again(p) || crossed(p)) && !p->dev_hs &&
         p->hs_at == NONE;
}

/* How long a probe sent after news of another address may go unanswered
 * before the path is taken as gone: probe_news, or four round trips of the
 * slowest recent probe when that is shorter (never below probe_news_min). */
static wgam_tstamp news_wait(const wgam_mesh *m) {
  wgam_tstamp w;

  if (m->rtt_slow == NONE)
    return wgam_fixed.probe_news;
  w = 4 * m->rtt_slow;
  if (w < wgam_fixed.probe_news_min)
    return wgam_fixed.probe_news_min;
  return w < wgam_fixed.probe_news ? w : wgam_fixed.probe_news;
}

/* A probe answered after @rtt: the largest round trip is kept, and a
 * smaller one brings it down by a quarter of the difference. */
static void rtt_sample(wgam_mesh *m, wgam_tstamp rtt) {
  if (m->rtt_slow == NONE || rtt >= m->rtt_slow)
    m->rtt_slow = rtt;
  else
    m->rtt_slow -= (m->rtt_slow - rtt) / 4;
}

/* News of another address of @p came since we last heard from it. */
static int news_since_heard(const struct peer *p) {
  return p->learned_at != NONE &&
         p->learned_at > ts_latest(p->rx_at, p->hs_at, p->pong_at);
}

static wgam_tstamp peer_next(const wgam_mesh *m, const struct peer *p) {
  const struct peer_cold *c = cold(p);
  wgam_tstamp next = c->deadline;

  if ((p->state == PEER_TRYING || p->state == PEER_RETRIED) && preemptible(p) &&
      new_since_try(p) && has_preempting(m, p))
    next = ts_min(next, cut_at(p));
  if (cold_pre(p)->prop_pending)
    next = ts_min(next, cold_pre(p)->prop_next);
  next = ts_min(next, c->relay_at);
  if (has_lan(p))
    next = ts_min(next, ts_add(c->lan->seen, m->s.lan_timeout));
  next = ts_min(next, c->along_at);
  if (p->state == PEER_CONNECTED) {
    next = ts_min(next, ts_add(p->hs_at, m->s.timeout));
    if (m->s.probe_idle) {
      wgam_tstamp last = ts_latest(p->rx_at, p->hs_at, p->pong_at);

      if (c->probe_at != NONE)
        next = ts_min(next, ts_add(c->probe_at, news_since_heard(p)
                                                    ? news_wait(m)
                                                    : m->s.probe_timeout));
      else if (news_since_heard(p))
        next = ts_min(next, ts_add(last, wgam_fixed.read_soon));
      else
        next = ts_min(next, idle_due(m, p));
    }
  }
  return next;
}

/* Sends @p a probe; without memory for it, the next step does. */
static int probe(wgam_mesh *m, struct peer *p, wgam_tstamp ts) {
  struct peer_cold *c = wgam_cold_get(m, p);

  if (!c)
    return -1;
  wgam_log(m, WGAM_LOG_TRACE, "peer %s: probing a silent path",
           wgam_key_short(p->pubkey).s);
  c->probe_at = ts;
  wgam_hints_busy(m, ts);
  /* Traffic unanswered, or news: two Pings, so that one lost datagram does
   * not turn a working path over to the next candidate. */
  if ((p->bits & SIG_CHECK) || news_since_heard(p))
    send_ping(m, p);
  p->bits &= (uint8_t)~SIG_CHECK;
  send_ping(m, p);
  return 0;
}

/*
 * An idle probe of peer @idx is due: in small meshes (where probe_idle is
 * not stretched by the probe_rate budget) the other connected peers are
 * probed along with it. A node whose NAT moved or rebooted learns nothing
 * until it sends, and what it sends to each peer (through its NAT's new
 * mappings) is what lets that peer's packets in once the news of its new
 * address came: probed together, every peer can reach it as soon as the
 * news comes, not after its own probe timer. The probes of a node fall into
 * step, one wake-up for all of them about once per probe_idle, and the
 * number of Pings stays one per peer per probe_idle (a peer with traffic
 * of its own, which was not probed, now is).
 */
static void probe_along(wgam_mesh *m, uint32_t idx, wgam_tstamp ts) {
  size_t i;

  /* A large mesh probes idle peers one by one; but when we moved, all of
   * them (wgam_probe_all()), whatever the size. */
  if (!small_mesh(m) && idx != NO_IDX)
    return;
  m->probe_round = ts;
  for (i = 0; i < m->npeers; i++) {
    struct peer *q = &m->peers[i];
    struct peer_cold *c;

    if (i == idx || i == m->self_idx || q->state != PEER_CONNECTED ||
        cold(q)->probe_at != NONE || cold(q)->along_at != NONE ||
        !wgam_peer_connected(m, q, ts))
      continue;
    if (idx == NO_IDX) {
      /* The round's first Ping: now. */
      if (probe(m, q, ts) == 0)
        wgam_heap_set(m, (uint32_t)i, peer_next(m, q));
      idx = (uint32_t)i;
      continue;
    }
    /* The others round_stagger later (see wgam_fixed.round_stagger). */
    c = wgam_cold_get(m, q);
    if (!c)
      continue;
    c->along_at = ts_add(ts, wgam_fixed.round_stagger);
    wgam_heap_set(m, (uint32_t)i, peer_next(m, q));
  }
}

/*
 * An observer saw us at a new address (our NAT rebooted, or our address
 * changed): our packets reopen the way to each peer, through the NAT's new
 * mappings, only when we send to it. The connected peers are probed now,
 * as in a probe round, rather than at our next one.
 */
void wgam_probe_all(wgam_mesh *m, wgam_tstamp ts) {
  probe_along(m, NO_IDX, ts);
}

/* The fast policy's decision for one peer at @ts. */
void wgam_peer_step(wgam_mesh *m, uint32_t idx, wgam_tstamp ts) {
  struct peer *p = &m->peers[idx];
  int conn;

  if (idx == m->self_idx) {
    wgam_heap_set(m, idx, NONE);
    return;
  }
  if (!m->dev_seen)
    return;
  if (cold_pre(p)->prop_pending && ts >= cold_pre(p)->prop_next)
    wgam_propagate_damped(m, idx, ts);
  if (has_lan(p) && ts >= ts_add(peer_lan(p)->seen, m->s.lan_timeout)) {
    wgam_log(m, WGAM_LOG_INFO, "peer %s: LAN endpoint %s is stale",
             wgam_key_short(p->pubkey).s, wgam_addr_str(&peer_lan(p)->addr).s);
    memset(&peer_lan(p)->addr, 0, sizeof(peer_lan(p)->addr));
  }
  if (m->s.policy == WGAM_POLICY_CLASSIC) {
    /* Classic peers move only in the 30 s cycle; keep the view current. */
    wgam_peer_set_state(m, p,
                        wgam_peer_connected(m, p, ts) ? PEER_CONNECTED
                        : p->state == PEER_CONNECTED  ? PEER_IDLE
                                                      : p->state,
                        ts);
    wgam_heap_set(m, idx, NONE);
    wgam_cold_trim(m, p, ts);
    return;
  }

  conn = wgam_peer_connected(m, p, ts);
  if (cold(p)->along_at != NONE && ts >= cold(p)->along_at) {
    /* Our probe round's Ping, held back by round_stagger. */
    p->cold->along_at = NONE;
    if (conn && p->state == PEER_CONNECTED && p->cold->probe_at == NONE)
      probe(m, p, ts);
  }
  if (conn && m->s.probe_idle && p->state == PEER_CONNECTED) {
    wgam_tstamp last = ts_latest(p->rx_at, p->hs_at, p->pong_at);
    /* A pong can carry the probe's own time (a clock that did not move
     * between the two): anything since the probe, inclusive, answers it. */
    wgam_tstamp probe_at = cold(p)->probe_at;

    if (probe_at != NONE && last >= probe_at) {
      /* Answered: the path works, whatever a read taken before the Pong
       * said of our Ping (observe_traffic()). Its round trip counts only
       * over a session made before the Ping: one that waited for a
       * handshake measures the handshake too. */
      if (p->pong_at != NONE && p->pong_at >= probe_at && p->hs_at != NONE &&
          p->hs_at < probe_at)
        rtt_sample(m, p->pong_at - probe_at);
      p->cold->probe_at = NONE;
      p->bits &= (uint8_t)~SIG_CHECK;
    } else if (probe_at != NONE &&
               (ts >= ts_add(probe_at, m->s.probe_timeout) ||
                (news_since_heard(p) &&
                 ts >= ts_add(probe_at, news_wait(m))))) {
      if (!m->observing) {
        /* Judged on a read taken now: an interface deleted and not yet
         * back sent no Ping, and what it lost decides the next try (see
         * candidates()). */
        m->wants |= WGAM_WANT_DEVICE;
      } else {
        /* Unanswered, or news of another address came since we last
         * heard from it: the peer moved, and the news says where. */
        wgam_log(m, WGAM_LOG_INFO, "peer %s: path via %s is silent",
                 wgam_key_short(p->pubkey).s, wgam_addr_str(&p->dev_ep).s);
        path_silent(m, p, ts);
        p->cold->probe_at = NONE;
        conn = 0;
      }
    } else if (probe_at == NONE &&
               ((p->bits & SIG_CHECK) || ts >= idle_due(m, p) ||
                (news_since_heard(p) &&
                 ts >= ts_add(last, wgam_fixed.read_soon)))) {
      /* Silent for probe_idle, traffic unanswered or stopped at the last
       * read (see observe_traffic()), or news of another address for it
       * came since we last heard it (it may have moved: check now). */
      int idle = !(p->bits & SIG_CHECK) && !news_since_heard(p);

      /* Behind a NAT, whatever we send to one peer we send to all: the
       * first packet through a NAT that rebooted or renumbered has the
       * peer that gets it announce our new address, and the others, told
       * at once, send there before our packets to them opened the new
       * mapping (a port-restricted NAT then maps those to another port). */
      if (probe(m, p, ts) == 0 && (idle || own_cadence(m)))
        probe_along(m, idx, ts);
    }
  }

  if (conn) {
    if (p->state == PEER_SWITCHING) {
      if (p->pong_at != NONE && p->pong_at >= cold(p)->try_start &&
          wgam_addr_equal(&p->dev_ep, &peer_lan(p)->addr)) {
        wgam_became_connected(m, p, ts);
        wgam_log(m, WGAM_LOG_INFO, "peer %s: now on LAN endpoint %s",
                 wgam_key_short(p->pubkey).s,
                 wgam_addr_str(&peer_lan(p)->addr).s);
      } else if (ts >= cold(p)->deadline) {
        wgam_log(m, WGAM_LOG_INFO,
                 "peer %s: LAN endpoint %s does not answer, back to %s",
                 wgam_key_short(p->pubkey).s,
                 wgam_addr_str(&peer_lan(p)->addr).s,
                 wgam_addr_str(&peer_lan(p)->prev_ep).s);
        /* Forget it until a broadcast tells us again (a host renumbered
         * by DHCP must not be chased at its old address). */
        peer_lan(p)->failed = wgam_addr_hash32(&peer_lan(p)->addr);
        memset(&peer_lan(p)->addr, 0, sizeof(peer_lan(p)->addr));
        peer_lan(p)->fail_until = ts_add(ts, m->s.backoff_max);
        wgam_set_want(m, p, &peer_lan(p)->prev_ep);
        p->want_src = p->src;
        wgam_mark_update(m, p, UPD_ENDPOINT);
        m->stats.endpoint_changes++;
        p->endpoint_changes++;
        wgam_became_connected(m, p, ts);
      }
    } else {
      wgam_became_connected(m, p, ts);
      if (has_lan(p) && !wgam_addr_equal(&p->dev_ep, &peer_lan(p)->addr) &&
          (peer_lan(p)->fail_until == NONE || ts >= peer_lan(p)->fail_until)) {
        peer_lan(p)->prev_ep = p->dev_ep;
        wgam_peer_set_state(m, p, PEER_SWITCHING, ts);
        wgam_try_endpoint(m, p, &peer_lan(p)->addr, WGAM_SOURCE_LAN, ts);
      }
    }
  } else {
    if (p->state == PEER_SWITCHING)
      wgam_peer_set_state(m, p, PEER_TRYING, ts); /* a plain try now */
    switch (p->state) {
    case PEER_CONNECTED:
      wgam_log(m, WGAM_LOG_INFO, "peer %s: disconnected",
               wgam_key_short(p->pubkey).s);
      if (cold_full(p)) {
        p->cold->ntried = 0;
        p->cold->backoff_level = 0;
      }
      try_next(m, p, ts);
      break;
    case PEER_TRYING:
    case PEER_RETRIED: {
      /* Something learned during the window (the peer moved, and another
       * node saw where to) is worth more than the rest of the window. */
      wgam_tstamp deadline = cold(p)->deadline;
      int cut =
          preemptible(p) &&
          ((new_since_try(p) &&
            (lan_untried(p) || (ts >= cut_at(p) && has_preempting(m, p)))) ||
           private_guess_beaten(m, p));

      if ((ts >= deadline || cut) && !m->observing &&
          m->dev_at < ts_min(ts, deadline) &&
          ts < ts_add(ts_min(ts, deadline), m->s.device_interval)) {
        /* A handshake may have completed since the last read (WireGuard's
         * retry lands near the end of the window; the other end's
         * initiation, answered, just roamed the entry to where it works):
         * judge the window on a fresh read, or a working session is
         * pointed at the next candidate. */
        m->wants |= WGAM_WANT_DEVICE;
      } else if (ts >= deadline || cut) {
        try_next(m, p, ts);
      } else if (m->observing && wgam_early_retry_due(m, p) &&
                 ts >= wgam_early_retry_at(m, p)) {
        if (crossed(p))
          p->cold->recrossed++; /* crossed() says p->cold is whole */
        wgam_peer_set_state(m, p, PEER_RETRIED, ts);
        if (cold_full(p)) {
          p->cold->nretried++;
          p->cold->retried_at = ts;
        }
        /* The peer's initiation came from elsewhere during the try (the
         * device roamed the entry there; behind a symmetric NAT the port
         * it has towards us is not the one others saw): the new entry is
         * pointed there. With its data lost, the peer holds a session and
         * initiates no more; ours to the old address would go unanswered
         * until its rekey, minutes later. */
        if (p->rx_bytes && p->rx_at >= cold(p)->try_start &&
            addr_valid(&p->dev_ep) &&
            !wgam_addr_equal(&p->dev_ep, want_ep(p))) {
          wgam_set_want(m, p, &p->dev_ep);
          p->want_src = p->src;
        }
        wgam_mark_update(m, p, UPD_ENDPOINT | UPD_RECREATE);
        send_ping(m, p);
        wgam_read_soon(m, ts);
      }
      break;
    }
    case PEER_BACKOFF:
      if (ts >= cold(p)->deadline) {
        if (cold_full(p))
          p->cold->ntried = 0;
        try_next(m, p, ts);
      } else if (has_untried(m, p)) {
        try_next(m, p, ts);
      }
      break;
    default:
      if (!m->observing && only_private(m, p)) {
        /* News of a peer comes from those who saw it connect, often
         * while it handshakes with us too: WireGuard then holds the
         * endpoint that works, and another network's private address
         * (all we know) would replace it. Read the device first. */
        wgam_read_soon(m, ts);
        break;
      }
      try_next(m, p, ts);
      break;
    }
  }
  wgam_relay_step(m, p, ts);
  wgam_heap_set(m, idx, peer_next(m, p));
  wgam_cold_trim(m, p, ts);
}
