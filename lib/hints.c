/* SPDX-License-Identifier: MIT */
/*
 * Roam hints, and the heartbeat they allow (fast policy).
 *
 * Without them the engine learns of a move only from device reads, so a
 * node behind a NAT probes its peers every probe_idle (only its own
 * packets reopen its NAT after a reboot or a new WAN address) and a node
 * that sees moves reads its device in the wake-up of those probes: a
 * mesh at rest wakes every daemon a few times a second.
 *
 * With hints, the caller tells us when a packet reached WireGuard from an
 * address no peer had at the last read: what WireGuard roamed, or a new
 * peer's first handshake, is read at once. The heartbeat moves into
 * WireGuard: a node behind a NAT sets a persistent keepalive of
 * heartbeat towards a few peers that see its moves unasked (an endpoint
 * of theirs configured), whose hint then starts the announce of its new
 * address; it no longer probes on its own cadence, and nobody reads the
 * device more than every rest_read while every path is settled.
 */
#include "engine.h"

/* Every connected peer's keepalive, as wgam_connected_keepalive() says. */
static void set_keepalives(wgam_mesh *m) {
  size_t i;

  for (i = 0; i < m->npeers; i++)
    if (i != m->self_idx && m->peers[i].state == PEER_CONNECTED)
      wgam_set_keepalive(m, &m->peers[i],
                         wgam_connected_keepalive(m, &m->peers[i]));
}

int wgam_mesh_set_roam_hints(wgam_mesh *m, int on, wgam_tstamp ts) {
  size_t i;

  if (!m)
    return WGAM_ERR_INVALID_ARGUMENT;
  on = on && m->s.policy == WGAM_POLICY_FAST;
  if (on == m->roam_hints)
    return 0;
  m->roam_hints = on;
  wgam_log(m, WGAM_LOG_DEBUG, "roam hints %s", on ? "on" : "off");
  set_keepalives(m);
  for (i = 0; i < m->npeers; i++)
    if (i != m->self_idx)
      wgam_heap_set(m, (uint32_t)i, ts); /* its probes: on or off */
  /* Without hints, the periodic read is what finds a move again. */
  if (!on)
    m->t_device = ts_min(m->t_device, ts_add(ts, m->s.device_interval));
  return 0;
}

int wgam_mesh_roam_hint(wgam_mesh *m, wgam_tstamp ts) {
  wgam_tstamp at;

  if (!m)
    return WGAM_ERR_INVALID_ARGUMENT;
  if (!m->dev_seen)
    return 0; /* the first read is on its way */
  /* The watch sees the packet before WireGuard has handled it. */
  at = ts_add(m->dev_at, wgam_fixed.hint_read_gap);
  if (at < ts_add(ts, wgam_fixed.hint_settle))
    at = ts_add(ts, wgam_fixed.hint_settle);
  m->t_early = ts_min(m->t_early, at);
  return 0;
}

/* A peer our heartbeat goes to is connected directly: it sees our moves. */
static int beat_heard(const wgam_mesh *m) {
  size_t i;

  for (i = 0; i < m->nbeat_to; i++) {
    const struct peer *p = &m->peers[m->beat_to[i]];

    if (p->state == PEER_CONNECTED && p->route == WGAM_ROUTE_DIRECT)
      return 1;
  }
  return 0;
}

/*
 * The heartbeat is WireGuard's: hints come, and we are seen when we move
 * (we have an endpoint configured, so a move of ours is a new
 * configuration, or a peer our heartbeat goes to is connected to us).
 * Idle probes are then left out.
 */
int wgam_heartbeat_in_wg(const wgam_mesh *m) {
  return m->roam_hints && (!self_behind_nat(m) || beat_heard(m));
}

/*
 * The persistent keepalive of connected peer @p: with hints, every
 * heartbeat towards the few peers with an endpoint configured that our
 * heartbeat goes to (beat_to: they see our moves unasked, whether our NAT
 * moved or, with an endpoint of our own configured, we were renumbered; a
 * few, so that one down does not hide a move, and never many, whatever
 * the size of the mesh); else keepalive_connected, which keeps NAT
 * mappings alive.
 */
uint16_t wgam_connected_keepalive(const wgam_mesh *m, const struct peer *p) {
  uint16_t ka = m->s.keepalive_connected;
  uint32_t idx = (uint32_t)(p - m->peers);
  size_t i;

  if (!m->roam_hints)
    return ka;
  for (i = 0; i < m->nbeat_to; i++)
    if (m->beat_to[i] == idx) {
      wgam_tstamp secs =
          (wgam_fixed.heartbeat + WGAM_SECONDS - 1) / WGAM_SECONDS;

      return !ka || secs < ka ? (uint16_t)secs : ka;
    }
  return ka;
}

/* After the peer list, our identity or the gossip order changed: whom our
 * heartbeat goes to, and the keepalives that follow. */
void wgam_hints_recount(wgam_mesh *m) {
  size_t i;

  m->nbeat_to = 0;
  for (i = 0; i < m->npeers && m->nbeat_to < HEARTBEAT_PEERS; i++) {
    uint32_t idx = m->order[i];

    if (idx != m->self_idx && m->peers[idx].ncfg)
      m->beat_to[m->nbeat_to++] = idx;
  }
  if (m->roam_hints)
    set_keepalives(m);
}

/* After a read: counts the paths tried or probed (wgam_read_interval()). */
void wgam_hints_observed(wgam_mesh *m) {
  size_t i;

  m->nbusy = 0;
  for (i = 0; i < m->npeers; i++) {
    const struct peer *p = &m->peers[i];

    if (i == m->self_idx)
      continue;
    if (p->state == PEER_TRYING || p->state == PEER_RETRIED ||
        p->state == PEER_SWITCHING || cold(p)->probe_at != NONE ||
        cold(p)->along_at != NONE)
      m->nbusy++;
  }
}

/* A path is being tried or probed: the periodic read comes within
 * device_interval again (a handshake may complete mid-window). */
void wgam_hints_busy(wgam_mesh *m, wgam_tstamp ts) {
  if (m->roam_hints)
    m->t_device = ts_min(m->t_device, ts_add(ts, m->s.device_interval));
}

/* How long after a read the next periodic one comes. */
wgam_tstamp wgam_read_interval(const wgam_mesh *m) {
  if (m->roam_hints && !m->nbusy && m->s.device_interval < wgam_fixed.rest_read)
    return wgam_fixed.rest_read;
  return m->s.device_interval;
}
