/* SPDX-License-Identifier: MIT */
/*
 * The gossip store: merging announces, propagation and its damping, the state
 * file, our own external endpoints.
 */
#include <stdlib.h>
#include <string.h>

#include "engine.h"

/* Replaces @p's store with @n endpoints and their sources, reallocating
 * only when the count changes. On failure the store is left as it was. */
int wgam_store_set(wgam_mesh *m, struct peer *p, const wgam_endpoint *eps,
                   const uint8_t *srcs, size_t n) {
  if (n != p->nknown) {
    wgam_endpoint *k = NULL;

    if (n) {
      k = wgam_calloc(m, 1, n * (sizeof(*k) + 1));
      if (!k)
        return WGAM_ERR_NOMEM;
    }
    wgam_free(m, p->known);
    p->known = k;
    p->nknown = (uint8_t)n;
  }
  if (n) {
    memcpy(p->known, eps, n * sizeof(*eps));
    memcpy(known_src(p), srcs, n);
  }
  return 0;
}

/* An endpoint we are willing to configure: a valid unicast endpoint that is
 * not one of the mesh's own addresses (that would route the tunnel into
 * itself). */
int wgam_endpoint_acceptable(const wgam_mesh *m, const wgam_addr *a) {
  return wgam_addr_is_valid_endpoint(a) && wgam_find_addr(m, a) == NO_IDX;
}

static void state_changed(wgam_mesh *m, wgam_tstamp ts) {
  m->state_dirty = 1;
  if ((m->s.flags & WGAM_SETTINGS_PERSIST) && m->s.policy == WGAM_POLICY_FAST &&
      m->t_persist == NONE)
    m->t_persist = ts_add(ts, m->s.persist_interval);
}

/* Sends an Announce of @subject to up to WGAM_GOSSIP_FANOUT connected
 * peers, in our gossip order; returns how many. */
static size_t propagate(wgam_mesh *m, uint32_t subject, wgam_tstamp ts) {
  size_t i, sent = 0, seen = 0;

  for (i = 0;
       i < m->npeers && sent < WGAM_GOSSIP_FANOUT && seen < m->nconnected;
       i++) {
    uint32_t idx = m->order[i];
    const struct peer *p = &m->peers[idx];

    if (p->state != PEER_CONNECTED || idx == m->self_idx)
      continue;
    seen++;
    if (idx == subject || !addr_valid(&p->dev_ep) ||
        !wgam_peer_connected(m, p, ts))
      continue;
    if (wgam_queue_to_peer(m, WGAM_MSG_ANNOUNCE, subject, p) != 0)
      break;
    sent++;
  }
  return sent;
}

/*
 * An address as a word that is equal for equal addresses (wgam_addr_eq()):
 * an IPv4 address and its port fit whole, an IPv6 address is hashed, so
 * equal words only make a match likely and addr_word_eq() decides. The
 * merge compares every announced endpoint with every stored one: a compare
 * of words is cheap and its outcome (mostly "no") easy to predict.
 */
static inline uint64_t addr_word(const wgam_addr *a) {
  uint32_t ip4;

  switch (a->family) {
  case WGAM_AF_INET:
    memcpy(&ip4, a->ip, sizeof(ip4));
    return (uint64_t)ip4 << 24 | (uint64_t)a->port << 8 | WGAM_AF_INET;
  case WGAM_AF_INET6:
    return wgam_ip_hash(a) << 24 | (uint64_t)a->port << 8 | WGAM_AF_INET6;
  default:
    return a->family; /* "no address" equals "no address" */
  }
}

static inline int addr_word_eq(uint64_t wa, const wgam_addr *a, uint64_t wb,
                               const wgam_addr *b) {
  return wa == wb && ((uint8_t)wa != WGAM_AF_INET6 ||
                      memcmp(a->ip, b->ip, sizeof(a->ip)) == 0);
}

/*
 * The original's merge: an endpoint is taken when no entry has the same
 * address with an equal or newer time; the entries of its address give way
 * to it and it goes at the end of the list; the list is then ordered newest
 * first (stable) and cut to WGAM_MAX_ENDPOINTS. Returns 0 if the list is
 * unchanged, 1 if only times (or their order) changed, 2 if an address came
 * or went; unless 0, the new list is in @out, @out_src and @nout (room for
 * WGAM_MAX_ENDPOINTS entries).
 */
int wgam_store_merge(const wgam_endpoint *known, const uint8_t *ksrc,
                     size_t nknown, const wgam_endpoint *eps, size_t neps,
                     uint8_t src, wgam_endpoint *out, uint8_t *out_src,
                     size_t *nout) {
  enum { MAXN = WGAM_MAX_ENDPOINTS + WGAM_MSG_MAX_ENDPOINTS };
  wgam_endpoint list[MAXN];
  uint64_t words[MAXN], kwords[WGAM_MAX_ENDPOINTS], w;
  uint8_t srcs[MAXN], seq[MAXN], order[MAXN];
  size_t n = nknown, i, j;
  uint8_t next;
  int changed;

  for (j = 0; j < n; j++)
    kwords[j] = words[j] = addr_word(&known[j].addr);
  /* Taking an endpoint only ever makes the time of its address newer, so
   * one the store already has with an equal or newer time would be skipped
   * wherever it stands in @eps: the merge starts at the first one that is
   * not, and a store that knows all of them (the common case) costs no
   * copy. */
  for (i = 0; i < neps; i++) {
    w = addr_word(&eps[i].addr);
    for (j = 0; j < n; j++)
      if (addr_word_eq(words[j], &known[j].addr, w, &eps[i].addr) &&
          known[j].time >= eps[i].time)
        break;
    if (j == n)
      break;
  }
  if (i == neps)
    return 0;

  /* An entry taken goes where the one it replaces was, and seq[] keeps the
   * order of the original's list (which moves it to the end): no entry is
   * moved. test_merge_matches_reference checks all this against the plain
   * rule. */
  if (n) {
    memcpy(list, known, n * sizeof(*known));
    memcpy(srcs, ksrc, n);
  }
  for (j = 0; j < n; j++)
    seq[j] = (uint8_t)j;
  next = (uint8_t)n;
  for (; i < neps; i++) {
    const wgam_endpoint *e = &eps[i];
    size_t same;

    /* The store holds each address once (it is only ever built here): the
     * first entry of the address is the only one. */
    w = addr_word(&e->addr);
    for (same = 0; same < n; same++)
      if (addr_word_eq(words[same], &list[same].addr, w, &e->addr))
        break;
    if (same < n && list[same].time >= e->time)
      continue; /* an equal or newer time is known */
    if (same == n)
      n++;
    list[same] = *e;
    words[same] = w;
    srcs[same] = src;
    seq[same] = next++;
  }
  /* Insertion sort, newest first, then in the original's list order. */
  for (i = 0; i < n; i++) {
    for (j = i; j > 0; j--) {
      const wgam_endpoint *p = &list[order[j - 1]];

      if (p->time > list[i].time ||
          (p->time == list[i].time && seq[order[j - 1]] < seq[i]))
        break;
      order[j] = order[j - 1];
    }
    order[j] = (uint8_t)i;
  }
  if (n > WGAM_MAX_ENDPOINTS)
    n = WGAM_MAX_ENDPOINTS;
  /* 2: the set of addresses changed; 1: only times or order did. */
  changed = n != nknown ? 2 : 0;
  for (i = 0; changed != 2 && i < n; i++) {
    const wgam_endpoint *e = &list[order[i]];
    uint64_t we = words[order[i]];

    if (addr_word_eq(we, &e->addr, kwords[i], &known[i].addr)) {
      if (e->time != known[i].time)
        changed = 1;
      continue;
    }
    changed = 1; /* another order; is the address still known? */
    for (j = 0; j < n; j++)
      if (addr_word_eq(we, &e->addr, kwords[j], &known[j].addr))
        break;
    if (j == n)
      changed = 2;
  }
  if (!changed)
    return 0;
  for (i = 0; i < n; i++) {
    out[i] = list[order[i]];
    out_src[i] = srcs[order[i]];
  }
  *nout = n;
  return changed;
}

void wgam_propagate_damped(wgam_mesh *m, uint32_t subject, wgam_tstamp ts) {
  struct peer_cold *p = wgam_cold_small(m, &m->peers[subject]);
  wgam_tstamp hold;

  if (!p)
    return; /* no memory: not spread by us (Requests still answer it) */
  hold = (wgam_tstamp)p->prop_hold_s * WGAM_SECONDS;
  /* A hold of 0 s: the last news reached no one, nothing to damp. */
  if (p->prop_next != NONE && ts < p->prop_next && hold) {
    p->prop_pending = 1; /* sent when the hold time ends */
    return;
  }
  if (hold && p->prop_next != NONE && ts < ts_add(p->prop_next, hold))
    hold = hold * 2 < wgam_fixed.prop_hold_max ? hold * 2
                                               : wgam_fixed.prop_hold_max;
  else
    hold = wgam_fixed.prop_hold_min;
  p->prop_next = ts_add(ts, hold);
  /* With no one else connected yet (a node's first peer told it), the news
   * reaches no one: it is sent again after prop_hold_min, or as soon as
   * news of the same subject comes (our first device read, which finds
   * the peers connected, often has it): only news that went out holds the
   * next back. */
  p->prop_pending = propagate(m, subject, ts) == 0;
  p->prop_hold_s = (uint16_t)(p->prop_pending ? 0 : hold / WGAM_SECONDS);
}

/* Whether every address the store holds for @p is in the static
 * configuration that all nodes share (a literal endpoint: a hostname may
 * resolve differently elsewhere), so that flooding it tells no one
 * anything. */
static int store_is_configured(const struct peer *p) {
  size_t i;

  if (!p->cfg_literal)
    return 0;
  for (i = 0; i < p->nknown; i++)
    if (!cfg_literal_has(p, &p->known[i].addr))
      return 0;
  return 1;
}

static int has_public(const wgam_endpoint *eps, size_t n) {
  size_t i;

  for (i = 0; i < n; i++)
    if (!wgam_addr_private(&eps[i].addr))
      return 1;
  return 0;
}

int wgam_handle_announce(wgam_mesh *m, uint32_t subject,
                         const wgam_endpoint *eps, size_t neps, uint8_t src,
                         int mode, wgam_tstamp ts) {
  wgam_endpoint out[WGAM_MAX_ENDPOINTS];
  uint8_t out_src[WGAM_MAX_ENDPOINTS];
  size_t n;
  int changed, first_public = 0;

  if (subject == SUBJECT_SELF) {
    static const uint8_t no_src[WGAM_MAX_ENDPOINTS];
    int newest;

    changed = wgam_store_merge(m->self_known, no_src, m->nself_known, eps, neps,
                               src, out, out_src, &n);
    newest = changed == 1 && n && m->nself_known &&
             !wgam_addr_equal(&m->self_known[0].addr, &out[0].addr);
    if (changed) {
      memcpy(m->self_known, out, n * sizeof(out[0]));
      m->nself_known = (uint8_t)n;
    }
    /* News of another address of ours, or of one we had before becoming
     * the newest again (a NAT that rebooted may map us to a port it gave
     * us before), from an observer (not an answer, not our own port
     * mapping): see we_moved() in try.c. */
    if ((changed == 2 || newest) && mode == ANN_FLOOD &&
        src == WGAM_SOURCE_GOSSIP && m->s.policy == WGAM_POLICY_FAST) {
      m->self_moved_at = ts;
      if (m->dev_seen)
        wgam_probe_all(m, ts);
    }
  } else {
    struct peer *p = &m->peers[subject];

    changed = wgam_store_merge(p->known, known_src(p), p->nknown, eps, neps,
                               src, out, out_src, &n);
    first_public =
        changed && !has_public(p->known, p->nknown) && has_public(out, n);
    if (changed && wgam_store_set(m, p, out, out_src, n) != 0)
      return WGAM_ERR_NOMEM; /* the store is as if it was never heard */
  }
  if (!changed)
    return 0;
  /* Every Announce that changes a store comes here: its key and address
   * are formatted only when the line is wanted. */
  if (n && wgam_log_on(m, WGAM_LOG_TRACE))
    wgam_log(
        m, WGAM_LOG_TRACE, "%s %s: %s endpoint %s (%zu known)",
        subject == SUBJECT_SELF ? "self" : "peer",
        subject == SUBJECT_SELF ? wgam_key_short(m->pubkey).s
                                : wgam_key_short(m->peers[subject].pubkey).s,
        changed == 2 ? "news:" : "refreshed", wgam_addr_str(&out[0].addr).s, n);
  state_changed(m, ts);
  if (m->s.policy == WGAM_POLICY_CLASSIC) {
    propagate(m, subject, ts);
    return 0;
  }
  if (subject == SUBJECT_SELF) {
    if (mode == ANN_FLOOD)
      propagate(m, subject, ts);
    return 0;
  }
  /* Fresher times alone are kept, not flooded: every observer refreshes its
   * own entries, and Request answers carry them. */
  if ((changed != 2 && mode != ANN_MOVED) || mode == ANN_KEEP ||
      store_is_configured(&m->peers[subject]))
    return 0;
  /* An answer is what the answering node already spread when it learned
   * it: flooding it again from every node that asks starts a wave through
   * the mesh each time (with endpoints behind symmetric NATs, a different
   * one each time). Nor is it news that the peer moved: learned_at, which
   * probes a connected peer, ends a probe and cuts a try, and the
   * propagation a peer whose path came back or moved is caught up on
   * (wgam_catch_up() in try.c), are for news alone. An answer brings a whole
   * store, and where symmetric NATs show each observer another port, most of it
   * differs from ours: at a thousand nodes, one answer declared working paths
   * silent and, caught up on, flooded the mesh with every such subject. */
  if (mode == ANN_FLOOD || mode == ANN_MOVED) {
    m->peers[subject].learned_at = ts;
    /* The first public address of a peer known so far only at private
     * ones (what its LAN neighbours see of it, spread first when it
     * starts) is what the others can use: not held back by that first
     * news. A store gets it once, so no flapping hides behind it. */
    if (first_public && m->peers[subject].cold)
      m->peers[subject].cold->prop_next = NONE;
    wgam_propagate_damped(m, subject, ts);
  }
  if (m->dev_seen)
    wgam_peer_step(m, subject, ts); /* a new candidate */
  return 0;
}

struct load_ctx {
  wgam_mesh *m;
  wgam_tstamp ts;
  size_t loaded, skipped;
};

/*
 * Times from the future are bounded at receipt: a member whose wall clock
 * runs ahead (a year, or a minute) would otherwise pin its endpoints at
 * the top of every store (newest first) long after they went stale, and
 * its answers to Requests carry its whole store. A time more than
 * clock_slack ahead of ours is taken as one gossip interval old: such an
 * entry ranks below what observers with a right clock saw since, however
 * often it comes again. Before the first device read our clock is not
 * known, and nothing is changed.
 */
void wgam_bound_times(const wgam_mesh *m, wgam_endpoint *eps, size_t n,
                      wgam_tstamp ts) {
  uint64_t now, limit, gi = m->s.gossip_interval / WGAM_SECONDS;
  size_t i;

  if (!m->dev_seen)
    return;
  now = unix_at(m, ts);
  limit = now + wgam_fixed.clock_slack / WGAM_SECONDS;
  for (i = 0; i < n; i++)
    if (eps[i].time > limit)
      eps[i].time = now > gi ? now - gi : 0;
}

static int load_entry(const uint8_t *pubkey, size_t pubkeylen,
                      const wgam_endpoint *eps, size_t neps, void *user_data) {
  struct load_ctx *c = user_data;
  wgam_endpoint ok[WGAM_STATE_MAX_ENDPOINTS];
  uint32_t idx = wgam_subject_of(c->m, pubkey, pubkeylen);
  size_t i, k = 0;

  if (idx == NO_IDX) {
    c->skipped++;
    return 0;
  }
  for (i = 0; i < neps; i++)
    if (wgam_endpoint_acceptable(c->m, &eps[i].addr))
      ok[k++] = eps[i];
  wgam_bound_times(c->m, ok, k, c->ts);
  if (wgam_handle_announce(c->m, idx, ok, k, WGAM_SOURCE_STATE, ANN_FLOOD,
                           c->ts))
    return WGAM_ERR_NOMEM;
  c->loaded++;
  return 0;
}

int wgam_mesh_load_state(wgam_mesh *m, const uint8_t *data, size_t datalen,
                         wgam_tstamp ts) {
  struct load_ctx c = {m, ts, 0, 0};
  int rv;

  if (!m || (!data && datalen))
    return WGAM_ERR_INVALID_ARGUMENT;
  rv = wgam_state_parse(data, datalen, load_entry, &c);
  if (rv == WGAM_ERR_NOMEM) /* the entries before it are loaded */
    return rv;
  if (rv != 0)
    return WGAM_ERR_STATE_DECODE;
  wgam_log(m, WGAM_LOG_INFO, "state: %zu keys loaded, %zu unknown skipped",
           c.loaded, c.skipped);
  return 0;
}

wgam_ssize wgam_mesh_write_state(wgam_mesh *m, uint8_t *dest, size_t destlen) {
  char b64[WGAM_KEY_B64_LEN + 1];
  size_t i, count = 0, off;
  wgam_ssize n;

  if (!m)
    return WGAM_ERR_INVALID_ARGUMENT;
  for (i = 0; i < m->npeers; i++)
    if (m->peers[i].nknown && i != m->self_idx)
      count++;
  if (m->nself_known && m->has_pubkey)
    count++;
  n = wgam_state_encode_header(dest, destlen, count);
  if (n < 0)
    return n;
  off = (size_t)n;
  if (m->nself_known && m->has_pubkey) {
    wgam_key_to_base64(b64, m->pubkey);
    n = wgam_state_encode_entry(
        dest ? dest + off : NULL, dest ? destlen - off : 0,
        (const uint8_t *)b64, WGAM_KEY_B64_LEN, m->self_known, m->nself_known);
    if (n < 0)
      return n;
    off += (size_t)n;
  }
  for (i = 0; i < m->npeers; i++) {
    const struct peer *p = &m->peers[i];
    if (!p->nknown || i == m->self_idx)
      continue;
    wgam_key_to_base64(b64, p->pubkey);
    n = wgam_state_encode_entry(dest ? dest + off : NULL,
                                dest ? destlen - off : 0, (const uint8_t *)b64,
                                WGAM_KEY_B64_LEN, p->known, p->nknown);
    if (n < 0)
      return n;
    off += (size_t)n;
  }
  if (dest) {
    m->wants &= ~WGAM_WANT_STATE;
    m->state_dirty = 0;
    m->stats.state_writes++;
  }
  return (wgam_ssize)off;
}

/* Announces one external endpoint of ours, refreshed like an observed
 * endpoint: only when the stored time is old. */
void wgam_announce_external(wgam_mesh *m, const wgam_addr *addr,
                            wgam_tstamp ts) {
  uint64_t gi = m->s.gossip_interval / WGAM_SECONDS;
  wgam_endpoint e;
  size_t i;

  if (!m->has_pubkey)
    return;
  e.addr = *addr;
  e.time = unix_at(m, ts);
  for (i = 0; i < m->nself_known; i++)
    if (wgam_addr_equal(&m->self_known[i].addr, addr) &&
        e.time <= m->self_known[i].time + gi)
      return;
  wgam_handle_announce(m, SUBJECT_SELF, &e, 1, WGAM_SOURCE_UPNP, ANN_FLOOD, ts);
}

int wgam_mesh_set_external_endpoints(wgam_mesh *m, const wgam_addr *eps,
                                     size_t naddrs, wgam_tstamp ts) {
  size_t i, j;

  if (!m || naddrs > WGAM_MAX_EXTERNAL || (naddrs && !eps))
    return WGAM_ERR_INVALID_ARGUMENT;
  for (i = 0; i < naddrs; i++)
    if (!wgam_addr_is_valid_endpoint(&eps[i]))
      return WGAM_ERR_INVALID_ARGUMENT;
  for (i = 0; i < naddrs; i++) {
    for (j = 0; j < m->nexternal; j++)
      if (wgam_addr_equal(&m->external[j], &eps[i]))
        break;
    if (j == m->nexternal)
      wgam_log(m, WGAM_LOG_INFO, "external endpoint %s",
               wgam_addr_str(&eps[i]).s);
  }
  m->nexternal = naddrs;
  if (naddrs)
    memcpy(m->external, eps, naddrs * sizeof(*eps));
  for (i = 0; i < m->nexternal; i++)
    wgam_announce_external(m, &m->external[i], ts);
  return 0;
}
