/* SPDX-License-Identifier: MIT */
/*
 * Datagrams in and out: receive path, Request answers, LAN broadcast, the send
 * queue.
 */
#include <string.h>

#include "engine.h"

static int queue_pkt(wgam_mesh *m, uint8_t type, uint32_t subject,
                     const wgam_addr *dest) {
  struct pending *e;

  if (m->qlen == m->qcap) {
    size_t ncap = m->qcap ? m->qcap * 2 : 64, i;
    struct pending *nq;

    if (m->qcap >= m->s.max_pending) {
      m->stats.rejected[WGAM_REJECT_QUEUE_FULL]++;
      return WGAM_ERR_LIMIT;
    }
    if (ncap > m->s.max_pending)
      ncap = m->s.max_pending;
    nq = wgam_calloc(m, ncap, sizeof(*nq));
    if (!nq)
      return WGAM_ERR_NOMEM;
    for (i = 0; i < m->qlen; i++)
      nq[i] = m->q[(m->qhead + i) % m->qcap];
    wgam_free(m, m->q);
    m->q = nq;
    m->qcap = ncap;
    m->qhead = 0;
  }
  e = &m->q[(m->qhead + m->qlen) % m->qcap];
  e->type = type;
  e->subject = subject;
  e->dest = *dest;
  m->qlen++;
  return 0;
}

int wgam_queue_to_peer(wgam_mesh *m, uint8_t type, uint32_t subject,
                       const struct peer *p) {
  wgam_addr dest = p->address;
  dest.port = m->s.gossip_port;
  return queue_pkt(m, type, subject, &dest);
}

/* Maps an announced key string to a peer index or SUBJECT_SELF. */
uint32_t wgam_subject_of(const wgam_mesh *m, const uint8_t *s, size_t len) {
  uint8_t key[WGAM_KEY_LEN];
  uint32_t idx;

  if (len != WGAM_KEY_B64_LEN ||
      wgam_key_from_base64(key, (const char *)s, len) != 0)
    return NO_IDX; /* decoded, but never configured */
  if (m->has_pubkey && memcmp(key, m->pubkey, WGAM_KEY_LEN) == 0)
    return SUBJECT_SELF;
  idx = wgam_find_peer(m, key);
  return idx == m->self_idx ? SUBJECT_SELF : idx;
}

static int answer_request(wgam_mesh *m, const wgam_addr *src, wgam_tstamp ts) {
  uint32_t from = wgam_find_addr(m, src);
  struct peer_cold *c = NULL;
  wgam_tstamp *last = &m->foreign_answered_at;
  size_t i;

  if (from != NO_IDX) {
    if (cold(&m->peers[from])->answered_at != NONE &&
        ts < ts_add(cold(&m->peers[from])->answered_at,
                    wgam_fixed.answer_interval))
      return WGAM_ERR_PKT_IGNORED;
    c = wgam_cold_get(m, &m->peers[from]);
    if (!c)
      return WGAM_ERR_NOMEM; /* it asks again */
    last = &c->answered_at;
  }

  if (*last != NONE && ts < ts_add(*last, wgam_fixed.answer_interval))
    return WGAM_ERR_PKT_IGNORED;
  *last = ts;
  if (m->nself_known)
    queue_pkt(m, WGAM_MSG_ANNOUNCE, SUBJECT_SELF, src);
  for (i = 0; i < m->npeers; i++)
    if (m->peers[i].nknown && i != m->self_idx)
      if (queue_pkt(m, WGAM_MSG_ANNOUNCE, (uint32_t)i, src) != 0)
        break;
  return 0;
}

static int handle_lan_broadcast(wgam_mesh *m, const wgam_addr *src,
                                const wgam_msg *msg, wgam_tstamp ts) {
  uint32_t idx;
  struct peer *p;
  wgam_addr lan;

  if (!(m->s.flags & WGAM_SETTINGS_LAN_DISCOVERY))
    return WGAM_ERR_PKT_IGNORED;
  idx = wgam_subject_of(m, msg->pubkey, msg->pubkeylen);
  if (idx == SUBJECT_SELF) {
    m->stats.rejected[WGAM_REJECT_OWN]++;
    return WGAM_ERR_PKT_IGNORED; /* our own broadcast came back */
  }
  if (idx == NO_IDX) {
    m->stats.rejected[WGAM_REJECT_UNKNOWN_KEY]++;
    return WGAM_ERR_PKT_IGNORED;
  }
  lan = *src;
  lan.port = msg->listen_port;
  if (!wgam_endpoint_acceptable(m, &lan)) {
    m->stats.rejected[WGAM_REJECT_BAD_ENDPOINT]++;
    return WGAM_ERR_PKT_IGNORED;
  }
  p = &m->peers[idx];
  if (!peer_lan(p)) {
    struct peer_cold *c = wgam_cold_get(m, p);

    if (!c)
      return WGAM_ERR_NOMEM;
    c->lan = wgam_calloc(m, 1, sizeof(*c->lan));
    if (!c->lan)
      return WGAM_ERR_NOMEM;
    c->lan->seen = NONE;
    c->lan->fail_until = NONE;
  }
  if (!wgam_addr_equal(&peer_lan(p)->addr, &lan)) {
    wgam_log(m, WGAM_LOG_INFO, "peer %s: LAN endpoint %s",
             wgam_key_short(p->pubkey).s, wgam_addr_str(&lan).s);
    peer_lan(p)->addr = lan;
    /* Not news when WireGuard already has the peer there (it roamed to
     * the LAN path): nothing to probe. */
    if (!wgam_addr_equal(&p->dev_ep, &lan))
      p->learned_at = ts;
    if (wgam_addr_hash32(&lan) != peer_lan(p)->failed)
      peer_lan(p)->fail_until = NONE; /* a new address deserves a try at once */
    peer_lan(p)->seen = ts;
    if (m->s.policy == WGAM_POLICY_FAST)
      wgam_peer_step(m, idx, ts);
  }
  peer_lan(p)->seen = ts;
  return 0;
}

int wgam_mesh_read_pkt(wgam_mesh *m, const wgam_addr *src, const uint8_t *pkt,
                       size_t pktlen, wgam_tstamp ts) {
  uint8_t plain[WGAM_MAX_PLAINTEXT_LEN];
  wgam_msg msg;
  wgam_ssize n;
  uint32_t idx;

  /* Answers go back to @src: it must be an address we can send to. */
  if (!m || !src || (!pkt && pktlen) ||
      (src->family != WGAM_AF_INET && src->family != WGAM_AF_INET6))
    return WGAM_ERR_INVALID_ARGUMENT;
  n = wgam_pkt_open(plain, sizeof(plain), m->key, pkt, pktlen);
  if (n < 0) {
    m->stats.rejected[n == WGAM_ERR_PKT_LENGTH ? WGAM_REJECT_LENGTH
                                               : WGAM_REJECT_AUTH]++;
    return n == WGAM_ERR_PKT_LENGTH ? WGAM_ERR_PKT_LENGTH : WGAM_ERR_PKT_AUTH;
  }
  if (wgam_msg_decode(&msg, plain, (size_t)n) < 0) {
    m->stats.rejected[WGAM_REJECT_DECODE]++;
    return WGAM_ERR_PKT_DECODE;
  }
  m->stats.pkts_in[msg.type]++;
  m->stats.bytes_in += pktlen;
  /* The sending peer, by its mesh address, looked up once and only where
   * it is used (a LAN broadcast comes from a LAN address). */
  idx =
      (m->s.policy == WGAM_POLICY_FAST && msg.type != WGAM_MSG_LAN_BROADCAST) ||
              msg.type == WGAM_MSG_PONG
          ? wgam_find_addr(m, src)
          : NO_IDX;
  if (idx == m->self_idx)
    idx = NO_IDX;
  /* Gossip comes through the tunnel: from a peer we do not see connected
   * yet, it proves a session already made (a handshake it initiated, whose
   * endpoint we are to observe and announce): read now; from one whose
   * path we are probing, other than the answer, it may come from where the
   * peer moved (WireGuard roamed it within a round trip). */
  if (m->s.policy == WGAM_POLICY_FAST && idx != NO_IDX) {
    struct peer *p = &m->peers[idx];

    p->bits |= SIG_GOSSIP_IN;
    if (p->state != PEER_CONNECTED)
      wgam_read_prompt(m, ts);
    else if (msg.type != WGAM_MSG_PONG && cold(p)->probe_at != NONE)
      wgam_read_soon(m, ts);
  }

  switch (msg.type) {
  case WGAM_MSG_PING:
    queue_pkt(m, WGAM_MSG_PONG, NO_IDX, src);
    if (m->s.policy == WGAM_POLICY_FAST && idx != NO_IDX)
      wgam_pinged(m, idx, ts);
    if (m->nrelays && idx != NO_IDX) /* nrelays: fast policy only */
      wgam_relay_pinged(m, idx, ts);
    return 0;
  case WGAM_MSG_PONG:
    if (idx != NO_IDX) {
      m->peers[idx].pong_at = ts;
      if (m->dev_seen)
        wgam_peer_step(m, idx, ts);
    }
    return 0;
  case WGAM_MSG_REQUEST:
    return answer_request(m, src, ts);
  case WGAM_MSG_LAN_BROADCAST:
    return handle_lan_broadcast(m, src, &msg, ts);
  case WGAM_MSG_ANNOUNCE: {
    size_t i, k = 0;

    idx = wgam_subject_of(m, msg.pubkey, msg.pubkeylen);
    if (idx == NO_IDX) {
      m->stats.rejected[WGAM_REJECT_UNKNOWN_KEY]++;
      return WGAM_ERR_PKT_IGNORED;
    }
    /* Unacceptable endpoints are dropped in place: no copy when there are
     * none. */
    for (i = 0; i < msg.nendpoints; i++)
      if (wgam_endpoint_acceptable(m, &msg.endpoints[i].addr) && k++ != i)
        msg.endpoints[k - 1] = msg.endpoints[i];
    if (k < msg.nendpoints)
      m->stats.rejected[WGAM_REJECT_BAD_ENDPOINT]++;
    wgam_bound_times(m, msg.endpoints, k, ts);
    if (wgam_handle_announce(
            m, idx, msg.endpoints, k, WGAM_SOURCE_GOSSIP,
            wgam_is_answer(m, src, ts) ? ANN_NO_FLOOD : ANN_FLOOD, ts) != 0)
      return WGAM_ERR_NOMEM;
    return k < msg.nendpoints && k == 0 ? WGAM_ERR_PKT_IGNORED : 0;
  }
  default:
    return WGAM_ERR_PKT_DECODE;
  }
}

void wgam_queue_lan_broadcast(wgam_mesh *m) {
  wgam_addr dest;

  memset(&dest, 0, sizeof(dest));
  dest.family = WGAM_AF_INET;
  memset(dest.ip, 0xff, 4);
  dest.port = m->s.gossip_port;
  queue_pkt(m, WGAM_MSG_LAN_BROADCAST, NO_IDX, &dest);
  if (m->s.flags & WGAM_SETTINGS_LAN_DISCOVERY_V6) {
    memset(&dest, 0, sizeof(dest));
    dest.family = WGAM_AF_INET6;
    dest.ip[0] = 0xff;
    dest.ip[1] = 0x05;
    dest.ip[15] = 0x01;
    dest.port = m->s.gossip_port;
    queue_pkt(m, WGAM_MSG_LAN_BROADCAST, NO_IDX, &dest);
  }
}

/* A peer may have been left without any candidate, or a first peer to ask
 * came: the next round of wgam_ask_for_stores() ask_min from now, unless
 * one is planned (fast policy, once the device was read). */
void wgam_ask_soon(wgam_mesh *m, wgam_tstamp ts) {
  if (m->s.policy == WGAM_POLICY_FAST && m->dev_seen && m->t_ask == NONE)
    m->t_ask = ts_add(ts, wgam_fixed.ask_min);
}

/* Peers that stay without any endpoint may be missing an announce
 * that spread before we connected to anyone: ask the connected peers, one
 * after the other, for their stores, less often while it does not help. */
void wgam_ask_for_stores(wgam_mesh *m, wgam_tstamp ts) {
  size_t i, unresolved = 0;

  /* Only peers with no candidate at all: one behind a symmetric NAT has
   * candidates that fail, and asking again would not help it. */
  for (i = 0; i < m->npeers; i++)
    if (i != m->self_idx && m->peers[i].state == PEER_IDLE)
      unresolved++;
  if (!unresolved || !m->nconnected) {
    m->t_ask = NONE; /* wgam_ask_soon() wakes it */
    return;
  }
  for (i = 0; i < m->npeers; i++) {
    uint32_t idx = m->order[(m->ask_pos + i) % m->npeers];
    struct peer *p = &m->peers[idx];
    if (idx == m->self_idx || p->state != PEER_CONNECTED)
      continue;
    m->ask_pos = (m->ask_pos + i + 1) % m->npeers;
    wgam_ask_peer(m, p, ts);
    m->last_request = ts;
    wgam_log(m, WGAM_LOG_DEBUG, "%zu peers unresolved: asking %s for its store",
             unresolved, wgam_key_short(p->pubkey).s);
    break;
  }
  m->t_ask = ts_add(ts, m->ask_interval);
  m->ask_interval = m->ask_interval * 2 < wgam_fixed.ask_max
                        ? m->ask_interval * 2
                        : wgam_fixed.ask_max;
}

wgam_ssize wgam_mesh_write_pkt(wgam_mesh *m, wgam_addr *destaddr, uint8_t *dest,
                               size_t destlen, wgam_tstamp ts) {
  uint8_t plain[WGAM_MAX_PLAINTEXT_LEN];
  uint8_t nonce[WGAM_NONCE_LEN];
  char b64[WGAM_KEY_B64_LEN + 1];
  uint32_t idx;
  (void)ts;

  if (!m || !destaddr || !dest)
    return WGAM_ERR_INVALID_ARGUMENT;
  while (m->qlen) {
    struct pending e = m->q[m->qhead];
    wgam_msg msg;
    wgam_ssize n;

    if (destlen < WGAM_MAX_DATAGRAM_LEN)
      return WGAM_ERR_NOBUF;
    m->qhead = (m->qhead + 1) % m->qcap;
    m->qlen--;
    if (m->qlen == 0 && m->qcap > wgam_fixed.queue_keep) {
      /* A burst (a Request's answer: the whole store) is over: give its
       * room back rather than hold it per engine for ever. */
      wgam_free(m, m->q);
      m->q = NULL;
      m->qcap = m->qhead = 0;
    }

    /* Only the header: the encoder reads nendpoints entries, and clearing
     * all WGAM_MSG_MAX_ENDPOINTS of them (2.5 KB) per datagram was most of
     * this function's time. */
    msg.type = e.type;
    msg.pubkey = NULL;
    msg.pubkeylen = 0;
    msg.nendpoints = 0;
    msg.listen_port = 0;
    switch (e.type) {
    case WGAM_MSG_PING:
    case WGAM_MSG_PONG:
    case WGAM_MSG_REQUEST:
      break;
    case WGAM_MSG_ANNOUNCE:
      if (e.subject == SUBJECT_SELF) {
        if (!m->has_pubkey)
          continue;
        wgam_key_to_base64(b64, m->pubkey);
        msg.nendpoints = m->nself_known;
        memcpy(msg.endpoints, m->self_known,
               m->nself_known * sizeof(wgam_endpoint));
      } else if (e.subject < m->npeers) {
        const struct peer *p = &m->peers[e.subject];
        wgam_key_to_base64(b64, p->pubkey);
        msg.nendpoints = p->nknown;
        if (p->nknown)
          memcpy(msg.endpoints, p->known, p->nknown * sizeof(wgam_endpoint));
      } else {
        continue;
      }
      msg.pubkey = (const uint8_t *)b64;
      msg.pubkeylen = WGAM_KEY_B64_LEN;
      break;
    case WGAM_MSG_LAN_BROADCAST:
      if (!m->has_pubkey)
        continue;
      wgam_key_to_base64(b64, m->pubkey);
      msg.pubkey = (const uint8_t *)b64;
      msg.pubkeylen = WGAM_KEY_B64_LEN;
      msg.listen_port = m->listen_port;
      break;
    default:
      continue; /* dropped while queued (its subject was removed) */
    }
    n = wgam_msg_encode(plain, sizeof(plain), &msg);
    if (n < 0)
      continue;
    if (m->s.rand(m->s.user_data, nonce, sizeof(nonce)) != 0)
      return WGAM_ERR_CALLBACK_FAILURE;
    n = wgam_pkt_seal(dest, destlen, m->key, nonce, plain, (size_t)n);
    if (n < 0)
      continue;
    *destaddr = e.dest;
    /* What all but a Ping (which expects its Pong) add to the device's tx
     * counter is no sign of unanswered traffic. */
    if (m->s.policy == WGAM_POLICY_FAST && e.type != WGAM_MSG_PING &&
        e.type != WGAM_MSG_LAN_BROADCAST &&
        (idx = wgam_find_addr(m, &e.dest)) != NO_IDX)
      m->peers[idx].bits |= SIG_GOSSIP_OUT;
    m->stats.pkts_out[e.type]++;
    m->stats.bytes_out += (uint64_t)n;
    return n;
  }
  return 0;
}
