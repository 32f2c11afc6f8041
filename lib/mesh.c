/* SPDX-License-Identifier: MIT */
/*
 * The engine object: creation, settings, allocator and log, timers, status.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "engine.h"

static void *default_malloc(size_t size, void *user_data) {
  (void)user_data;
  return malloc(size);
}

static void default_free(void *ptr, void *user_data) {
  (void)user_data;
  free(ptr);
}

static void *default_calloc(size_t nmemb, size_t size, void *user_data) {
  (void)user_data;
  return calloc(nmemb, size);
}

static void *default_realloc(void *ptr, size_t size, void *user_data) {
  (void)user_data;
  return realloc(ptr, size);
}

static const wgam_mem default_mem = {NULL, default_malloc, default_free,
                                     default_calloc, default_realloc};

void *wgam_calloc(const wgam_mesh *m, size_t n, size_t size) {
  if (n == 0)
    n = 1;
  return m->mem->calloc(n, size, m->mem->user_data);
}

void wgam_free(const wgam_mesh *m, void *p) {
  if (p)
    m->mem->free(p, m->mem->user_data);
}

void wgam_log(const wgam_mesh *m, int level, const char *fmt, ...) {
  char buf[256];
  va_list ap;

  if (!wgam_log_on(m, level))
    return;
  va_start(ap, fmt);
  vsnprintf(buf, sizeof(buf), fmt, ap);
  va_end(ap);
  m->s.log(m->s.user_data, level, buf);
}

struct wgam_keybuf wgam_key_short(const uint8_t *key) {
  struct wgam_keybuf k;
  wgam_key_to_base64(k.s, key);
  k.s[8] = '\0';
  return k;
}

struct wgam_addrbuf wgam_addr_str(const wgam_addr *a) {
  struct wgam_addrbuf r;
  wgam_addr_format(r.s, sizeof(r.s), a, 1);
  return r;
}

static int settings_valid(const wgam_settings *s) {
  return s->rand && s->gossip_port && s->device_interval && s->try_interval &&
         s->backoff_min && s->backoff_max >= s->backoff_min && s->timeout &&
         s->lan_interval && s->lan_timeout && s->persist_interval &&
         s->igd_interval && s->max_peers && s->max_peers < NO_IDX - 2 &&
         s->max_pending && (!s->probe_idle || s->probe_timeout) &&
         (s->secret || !s->secretlen) &&
         (s->policy == WGAM_POLICY_CLASSIC || s->policy == WGAM_POLICY_FAST);
}

int wgam_mesh_new_versioned(wgam_mesh **pmesh, int settings_version,
                            const wgam_settings *settings, wgam_tstamp ts) {
  const wgam_mem *mem;
  wgam_mesh *m;

  if (!pmesh || !settings || settings_version != WGAM_SETTINGS_VERSION_V1 ||
      !settings_valid(settings))
    return WGAM_ERR_INVALID_ARGUMENT;
  if (sodium_init() < 0)
    return WGAM_ERR_FATAL;
  mem = settings->mem ? settings->mem : &default_mem;
  m = mem->calloc(1, sizeof(*m), mem->user_data);
  if (!m)
    return WGAM_ERR_NOMEM;
  m->s = *settings;
  m->s.secret = NULL;
  m->s.secretlen = 0;
  m->mem = mem;
  wgam_key_derive(m->key, settings->secret, settings->secretlen);
  m->self_idx = NO_IDX;
  m->recreate = NO_IDX;
  m->t_device = ts; /* the first thing we need is the device */
  m->t_early = NONE;
  m->wants = WGAM_WANT_DEVICE;
  m->t_lan = NONE;
  m->t_persist = NONE;
  m->t_igd = NONE;
  m->last_request = NONE;
  m->last_request_peer = NO_IDX;
  m->foreign_answered_at = NONE;
  m->t_ask = NONE;
  m->probe_round = NONE;
  m->rtt_slow = NONE;
  m->ask_interval = wgam_fixed.ask_min;
  m->silent_since = NONE;
  m->self_moved_at = NONE;
  if (m->s.policy == WGAM_POLICY_CLASSIC &&
      (m->s.flags & WGAM_SETTINGS_PERSIST))
    m->t_persist = ts; /* the original writes at start, then every 600 s */
  *pmesh = m;
  wgam_log(m, WGAM_LOG_DEBUG, "engine created (%s policy)",
           m->s.policy == WGAM_POLICY_FAST ? "fast" : "classic");
  return 0;
}

void wgam_mesh_del(wgam_mesh *m) {
  if (!m)
    return;
  wgam_free_peers(m, m->peers, m->npeers);
  wgam_free(m, m->keytab);
  wgam_free(m, m->addrtab);
  wgam_free(m, m->order);
  wgam_free(m, m->heap);
  wgam_free(m, m->updq);
  wgam_free(m, m->removed);
  wgam_free(m, m->q);
  sodium_memzero(m->key, sizeof(m->key));
  m->mem->free(m, m->mem->user_data);
}

int wgam_mesh_set_log_level(wgam_mesh *m, int level) {
  if (level < WGAM_LOG_ERROR || level > WGAM_LOG_TRACE)
    return WGAM_ERR_INVALID_ARGUMENT;
  m->s.log_level = level;
  return 0;
}

/*
 * When the device is to be read next: the periodic read, or an early one
 * (a handshake likely done by then). A periodic read due shortly before an
 * early one waits for it: one read serves both, and the early one's wait
 * for the handshake is kept.
 */
static wgam_tstamp device_due(const wgam_mesh *m) {
  if (m->t_early != NONE && m->t_early >= m->t_device &&
      m->t_early - m->t_device <= wgam_fixed.read_soon)
    return m->t_early;
  return ts_min(m->t_device, m->t_early);
}

wgam_tstamp wgam_mesh_get_expiry(const wgam_mesh *m) {
  wgam_tstamp t;

  if (!m)
    return NONE;
  t = ts_min(ts_min(device_due(m), m->t_lan), ts_min(m->t_persist, m->t_igd));
  t = ts_min(t, m->t_ask);
  if (m->heaplen)
    t = ts_min(t, m->peers[m->heap[0]].next);
  return t;
}

int wgam_mesh_handle_expiry(wgam_mesh *m, wgam_tstamp ts) {
  size_t i;

  if (!m)
    return WGAM_ERR_INVALID_ARGUMENT;
  if (ts >= device_due(m)) {
    m->wants |= WGAM_WANT_DEVICE;
    if (ts >= m->t_early)
      m->t_early = NONE; /* observe_device() sets the next one */
    if (ts >= m->t_device) {
      m->cycle_due = 1;
      /* Keep waking the caller while the device cannot be read. */
      m->t_device = ts_add(ts, m->s.device_interval);
    }
  }
  if (ts >= m->t_lan) {
    if (m->has_pubkey && m->listen_port)
      wgam_queue_lan_broadcast(m);
    m->t_lan = ts_add(ts, m->s.lan_interval);
  }
  if (ts >= m->t_persist) {
    m->wants |= WGAM_WANT_STATE;
    m->t_persist = m->s.policy == WGAM_POLICY_CLASSIC
                       ? ts_add(ts, m->s.persist_interval)
                       : NONE;
  }
  if (ts >= m->t_igd) {
    m->wants |= WGAM_WANT_IGD;
    m->t_igd = ts_add(ts, m->s.igd_interval);
  }
  if (ts >= m->t_ask)
    wgam_ask_for_stores(m, ts);
  for (i = 0; i < m->nexternal; i++)
    wgam_announce_external(m, &m->external[i], ts);
  while (m->heaplen && m->peers[m->heap[0]].next <= ts) {
    uint32_t idx = m->heap[0];
    wgam_tstamp before = m->peers[idx].next;
    wgam_peer_step(m, idx, ts);
    /* A step always moves the deadline forward or drops it. */
    if (m->peers[idx].heap_idx != NO_IDX && m->peers[idx].next <= before)
      wgam_heap_set(m, idx, ts_add(ts, WGAM_SECONDS));
  }
  return 0;
}

uint32_t wgam_mesh_get_wants(const wgam_mesh *m) {
  return m ? m->wants : 0;
}

void wgam_mesh_ack_igd(wgam_mesh *m) {
  if (m)
    m->wants &= ~WGAM_WANT_IGD;
}

size_t wgam_mesh_get_npeers(const wgam_mesh *m) {
  if (!m)
    return 0;
  return m->npeers - (m->self_idx != NO_IDX ? 1 : 0);
}

int wgam_mesh_get_peer_info(const wgam_mesh *m, size_t idx,
                            wgam_peer_info *info) {
  const struct peer *p;

  if (!m || !info || idx >= wgam_mesh_get_npeers(m))
    return WGAM_ERR_INVALID_ARGUMENT;
  if (m->self_idx != NO_IDX && idx >= m->self_idx)
    idx++;
  p = &m->peers[idx];
  memset(info, 0, sizeof(*info));
  memcpy(info->pubkey, p->pubkey, WGAM_KEY_LEN);
  info->address = p->address;
  info->endpoint = p->dev_ep;
  info->source = addr_valid(&p->dev_ep) ? p->src : WGAM_SOURCE_NONE;
  info->state = peer_trying(p->state) ? WGAM_PEER_TRYING : p->state;
  info->connected = p->state == PEER_CONNECTED || p->state == PEER_SWITCHING;
  info->last_handshake = p->dev_hs;
  info->tries = cold(p)->tries;
  info->endpoint_changes = p->endpoint_changes;
  info->nknown = p->nknown;
  if (p->nknown)
    memcpy(info->known, p->known, p->nknown * sizeof(wgam_endpoint));
  if (peer_lan(p))
    info->lan_endpoint = peer_lan(p)->addr;
  info->relay = p->relay;
  info->route = p->route;
  if (p->route != WGAM_ROUTE_DIRECT)
    memcpy(info->via, m->peers[cold(p)->via].pubkey, WGAM_KEY_LEN);
  info->route_changes = cold(p)->route_changes;
  return 0;
}

void wgam_mesh_get_stats(const wgam_mesh *m, wgam_stats *stats) {
  size_t i;

  if (!m || !stats)
    return;
  *stats = m->stats;
  memcpy(stats->pubkey, m->pubkey, WGAM_KEY_LEN);
  stats->has_pubkey = m->has_pubkey;
  stats->listen_port = m->listen_port;
  stats->nexternal = m->nexternal;
  memcpy(stats->external, m->external, sizeof(stats->external));
  stats->npeers_connected = 0;
  for (i = 0; i < m->npeers; i++)
    if (i != m->self_idx && m->peers[i].state == PEER_CONNECTED)
      stats->npeers_connected++;
  stats->mem_bytes = sizeof(*m) + m->npeers * (sizeof(struct peer) + 4 * 4) +
                     2 * m->tabcap * sizeof(uint32_t) +
                     m->qcap * sizeof(struct pending) +
                     m->nremoved * WGAM_KEY_LEN;
  for (i = 0; i < m->npeers; i++) {
    const struct peer *p = &m->peers[i];

    stats->mem_bytes += p->ncfg * sizeof(wgam_addr) +
                        p->nprefixes * sizeof(wgam_cidr) +
                        p->nknown * (sizeof(wgam_endpoint) + 1) +
                        (cold_full(p) ? sizeof(*p->cold)
                         : p->cold    ? COLD_SMALL
                                      : 0) +
                        (peer_lan(p) ? sizeof(struct peer_lan) : 0);
  }
}
