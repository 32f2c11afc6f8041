/* SPDX-License-Identifier: MIT */
/*
 * The mesh engine: peers, the gossip store, candidate endpoints, timers.
 *
 * Per configured peer (never ourselves) the engine keeps what the device
 * says (endpoint, handshake, received bytes), what gossip says (at most
 * WGAM_MAX_ENDPOINTS endpoints, newest first), the LAN endpoint heard by
 * broadcast, and a small state machine:
 *
 *   IDLE --candidate--> TRYING --handshake/pong--> CONNECTED
 *                         |  ^                        |
 *          every one failed  | new candidate / round  | probe unanswered,
 *                         v  |                        | handshake too old
 *                       BACKOFF <---------------------+
 *
 * The classic policy instead runs the original's loop: every 30 s each
 * disconnected peer moves to endpoint i % n of its sorted candidate list.
 *
 * Output is queued as small records (type, subject, destination) and only
 * encoded and sealed in wgam_mesh_write_pkt(), so answering a Request from a
 * large mesh costs a few bytes per announce until it is sent.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <sodium.h>

#include "internal.h"

#define NONE WGAM_TSTAMP_NONE
#define NO_IDX UINT32_MAX
#define SUBJECT_SELF (UINT32_MAX - 1)
#define MAX_CFG_ENDPOINTS WGAM_MAX_ENDPOINTS
/* Candidates of one round: LAN + gossip + configured. */
#define MAX_CANDIDATES (1 + WGAM_MAX_ENDPOINTS + MAX_CFG_ENDPOINTS)
/* Fast policy: Requests sent when peers connect, at most one per interval. */
#define REQUEST_INTERVAL (10 * WGAM_SECONDS)
/* Requests answered per source at most once per this interval (a replayed
 * Request must not make us send the whole store again and again). */
#define ANSWER_INTERVAL (5 * WGAM_SECONDS)
/* Probes per second the whole engine may send in steady state. */
#define PROBE_RATE 4
/* Peers asked for their store after the first device read (fast). */
#define INITIAL_REQUESTS 3
/* Fast policy: a candidate is given at least this long before a newly
 * learned one replaces it (the handshake initiation is on its way); a LAN
 * endpoint heard by broadcast replaces it at once. */
#define MIN_TRY (2 * WGAM_SECONDS)
/*
 * WireGuard starts at most one handshake per peer every 5 s, counting the
 * attempts it could not even send for lack of an endpoint (traffic and the
 * keepalive of a peer still without one make such attempts); a first
 * handshake can arrive before the other daemon configured us (all daemons
 * starting together); and two ends that configure each other at the same
 * instant send crossing initiations: each answers the other's, which
 * replaces its own handshake, so neither answer is accepted. Any of these
 * makes the try of a peer that never had a handshake wait for WireGuard's
 * retry, 5 s later. So the device is read again this long after such a try
 * started and, if it still shows no completed handshake, the peer is
 * removed and added back (it has no session to lose): a new peer
 * handshakes at once.
 */
#define EARLY_RETRY (1 * WGAM_SECONDS)
/* Bytes from a peer without a handshake are an initiation we answered. If
 * that answer was taken, the initiator's first data follows within a round
 * trip, and re-creating the peer before it arrives would throw the new
 * session away (the initiator would keep using it until its next rekey,
 * two minutes later). So the retry waits until the bytes are this old: an
 * answer still without data by then was not taken. */
#define EARLY_QUIET (500 * WGAM_MILLISECONDS)
/* After crossing initiations both ends would re-create each other at the
 * same instant and cross again; the end with the greater public key waits
 * this much longer, so that the other's fresh initiation finds it in place
 * and completes (an end that never re-creates, like the original daemon,
 * costs it only this delay). */
#define EARLY_STAGGER (500 * WGAM_MILLISECONDS)
/* Fast policy: first and largest interval between Requests sent while some
 * peers have no working endpoint (a late joiner missed the announces). */
#define ASK_MIN (10 * WGAM_SECONDS)
#define ASK_MAX (600 * WGAM_SECONDS)

enum {
  UPD_ALLOWED = 0x1,
  UPD_ENDPOINT = 0x2,
  UPD_KEEPALIVE = 0x4,
  UPD_RECREATE = 0x8, /* remove the peer, then add it whole */
};

/* What a peer heard on the LAN by broadcast has: rare, so held apart. */
struct peer_lan {
  wgam_addr addr;    /* the LAN endpoint, or no address */
  wgam_addr prev_ep; /* where to go back to if it does not answer */
  wgam_tstamp seen;
  wgam_tstamp fail_until;
  uint32_t failed; /* hash of the last LAN endpoint that did not answer */
};

struct peer {
  uint8_t pubkey[WGAM_KEY_LEN];
  wgam_addr address;
  /* Configured (or resolved) endpoints. */
  wgam_addr *cfg;
  uint8_t ncfg;
  uint8_t cfg_literal; /* cfg came from the peer list, not from a resolver */

  /* Gossip store, newest first: nknown endpoints, then where each came
   * from (known_src()), held out of line and sized to use (NULL when
   * empty): most peers have one endpoint and a full mesh of n nodes keeps
   * n^2 stores. */
  uint8_t nknown;
  wgam_endpoint *known;
  /* LAN endpoint and switch, NULL until a broadcast was heard. */
  struct peer_lan *lan;

  /* The device's view, as last observed (and as we last wrote it). */
  uint8_t on_device;
  uint8_t allowed_ok;
  uint16_t dev_keepalive;
  wgam_addr dev_ep;
  uint64_t dev_hs;   /* Unix seconds, 0 = never */
  wgam_tstamp hs_at; /* dev_hs on our monotonic clock */
  uint64_t rx_bytes;
  wgam_tstamp rx_at;   /* last time rx_bytes grew */
  wgam_tstamp pong_at; /* last Pong from the peer */

  /* Control. */
  uint8_t state;
  uint8_t src;      /* source of dev_ep */
  uint8_t want_src; /* source of want_ep */
  uint8_t backoff_level;
  uint8_t lan_switch; /* trying the LAN endpoint while connected */
  uint8_t retried;    /* this try's early re-creation was done */
  uint8_t ntried;
  uint8_t upd;    /* pending UPD_* */
  uint8_t queued; /* in the update queue */
  uint16_t want_keepalive;
  uint32_t tried[MAX_CANDIDATES];
  uint32_t tries;
  wgam_tstamp deadline; /* end of the try window or of the backoff */
  wgam_tstamp try_start;
  wgam_tstamp learned_at; /* a new address was learned for this peer */
  wgam_tstamp probe_at;   /* Ping sent to check a silent path */
  wgam_tstamp broken_at;  /* that Ping went unanswered */
  wgam_tstamp answered_at;
  wgam_tstamp req_at; /* we sent it a Request */
  wgam_addr want_ep;
  uint64_t endpoint_changes;
  /* The last observation we announced (device endpoint, handshake time). */
  wgam_addr obs_ep;
  uint64_t obs_time;
  /* Propagation damping (fast policy). */
  wgam_tstamp prop_next;
  uint16_t prop_hold_s;
  uint8_t prop_pending;

  uint32_t heap_idx;
  wgam_tstamp next;
};

struct pending {
  uint32_t subject; /* peer index, SUBJECT_SELF, or NO_IDX */
  uint8_t type;
  wgam_addr dest;
};

struct wgam_mesh {
  wgam_settings s;
  const wgam_mem *mem;
  uint8_t key[WGAM_KEY_LEN];

  struct peer *peers;
  size_t npeers;
  uint32_t *keytab; /* open addressing, see tab_entry(); 0 = empty */
  uint32_t *addrtab;
  size_t tabcap;   /* power of two, both tables */
  uint32_t *order; /* peers by gossip priority */
  uint32_t *heap;
  size_t heaplen;
  uint32_t *updq; /* ring of peer indices with pending updates */
  size_t updq_head, updq_len;
  uint8_t (*removed)[WGAM_KEY_LEN];
  size_t nremoved;
  /* A peer whose REMOVE_ME was emitted and whose re-creation comes next
   * (see EARLY_RETRY), with its pending UPD_* flags. */
  uint32_t recreate;
  uint8_t recreate_upd;

  struct pending *q; /* ring of datagrams to send */
  size_t qcap, qhead, qlen;

  uint8_t pubkey[WGAM_KEY_LEN];
  int has_pubkey;
  uint16_t listen_port;
  uint32_t self_idx;
  uint8_t nself_known;
  wgam_endpoint self_known[WGAM_MAX_ENDPOINTS];
  wgam_addr external[WGAM_MAX_EXTERNAL];
  size_t nexternal;

  int dev_seen;
  wgam_tstamp dev_at; /* when the device was last read */
  int observing;      /* in wgam_mesh_observe_device(): the view is fresh */
  uint64_t unix_base;
  wgam_tstamp unix_base_ts;

  wgam_tstamp t_device, t_lan, t_persist, t_igd;
  wgam_tstamp t_early; /* a device read for an early retry (EARLY_RETRY) */
  uint32_t wants;
  int cycle_due;
  uint64_t cycle;
  int state_dirty;
  size_t nconnected; /* peers in state CONNECTED */
  /* Paths found silent together: when several go silent at once, it is
   * more likely we moved than they all did. */
  wgam_tstamp silent_since;
  size_t nsilent;
  wgam_tstamp last_request;
  wgam_tstamp answers_until; /* Announces from asked peers are answers */
  uint32_t last_request_peer;
  /* Fast policy: while peers stay without a working endpoint, ask one
   * connected peer after another for its store, with a growing interval. */
  wgam_tstamp t_ask;
  wgam_tstamp ask_interval;
  size_t ask_pos;
  wgam_tstamp foreign_answered_at;

  wgam_stats stats;
};

/* ------------------------------------------------------------------------ */
/* Small helpers                                                            */
/* ------------------------------------------------------------------------ */

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

static void *xcalloc(const wgam_mesh *m, size_t n, size_t size) {
  if (n == 0)
    n = 1;
  return m->mem->calloc(n, size, m->mem->user_data);
}
static void xfree(const wgam_mesh *m, void *p) {
  if (p)
    m->mem->free(p, m->mem->user_data);
}

static wgam_tstamp tadd(wgam_tstamp a, wgam_tstamp b) {
  return a > NONE - b ? NONE : a + b;
}
static wgam_tstamp tmin(wgam_tstamp a, wgam_tstamp b) {
  return a < b ? a : b;
}
static wgam_tstamp tmax3(wgam_tstamp a, wgam_tstamp b, wgam_tstamp c) {
  /* NONE means "never" here, which must not win a max. */
  wgam_tstamp r = 0;
  if (a != NONE && a > r)
    r = a;
  if (b != NONE && b > r)
    r = b;
  if (c != NONE && c > r)
    r = c;
  return r;
}

static void logf_(const wgam_mesh *m, int level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void logf_(const wgam_mesh *m, int level, const char *fmt, ...) {
  char buf[256];
  va_list ap;

  if (!m->s.log || level > m->s.log_level)
    return;
  va_start(ap, fmt);
  vsnprintf(buf, sizeof(buf), fmt, ap);
  va_end(ap);
  m->s.log(m->s.user_data, level, buf);
}

/* Short printable key ("AbCdEfGh") for log lines. */
struct keystr {
  char s[WGAM_KEY_B64_LEN + 1];
};
static struct keystr keyshort(const uint8_t *key) {
  struct keystr k;
  wgam_key_to_base64(k.s, key);
  k.s[8] = '\0';
  return k;
}
struct addrstr {
  char s[WGAM_ADDR_STRLEN];
};
static struct addrstr addrs(const wgam_addr *a) {
  struct addrstr r;
  wgam_addr_format(r.s, sizeof(r.s), a, 1);
  return r;
}

static int addr_ip_equal(const wgam_addr *a, const wgam_addr *b) {
  return a->family == b->family && memcmp(a->ip, b->ip, 16) == 0;
}
static int addr_valid(const wgam_addr *a) {
  return a->family != WGAM_AF_NONE;
}

static inline int has_lan(const struct peer *p) {
  return p->lan && addr_valid(&p->lan->addr);
}

/* Where each endpoint of @p's store came from (after the endpoints). */
static inline uint8_t *known_src(const struct peer *p) {
  return p->known ? (uint8_t *)(p->known + p->nknown) : NULL;
}

/* Replaces @p's store with @n endpoints and their sources, reallocating
 * only when the count changes. On failure the store is left as it was. */
static int store_set(wgam_mesh *m, struct peer *p, const wgam_endpoint *eps,
                     const uint8_t *srcs, size_t n) {
  if (n != p->nknown) {
    wgam_endpoint *k = NULL;

    if (n) {
      k = xcalloc(m, 1, n * (sizeof(*k) + 1));
      if (!k)
        return WGAM_ERR_NOMEM;
    }
    xfree(m, p->known);
    p->known = k;
    p->nknown = (uint8_t)n;
  }
  if (n) {
    memcpy(p->known, eps, n * sizeof(*eps));
    memcpy(known_src(p), srcs, n);
  }
  return 0;
}

/* Multiply-xorshift mixing of the address words: cheap, and good enough
 * for tables whose keys (public keys aside) come from configuration. */
static uint64_t mix64(uint64_t x) {
  x ^= x >> 32;
  x *= 0xd6e8feb86659fd93ull;
  x ^= x >> 32;
  return x;
}

static uint64_t ip_hash(const wgam_addr *a) {
  uint64_t w0, w1;
  memcpy(&w0, a->ip, 8);
  memcpy(&w1, a->ip + 8, 8);
  return mix64(w0 * 0x9e3779b97f4a7c15ull ^ mix64(w1 ^ a->family));
}

static uint32_t addr_hash32(const wgam_addr *a) {
  return (uint32_t)mix64(ip_hash(a) ^ a->port);
}

static uint64_t key_hash(const uint8_t *key) {
  uint64_t h;
  memcpy(&h, key, sizeof(h)); /* public keys are uniformly distributed */
  return h;
}

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

static uint64_t unix_at(const wgam_mesh *m, wgam_tstamp ts) {
  if (!m->dev_seen || ts < m->unix_base_ts)
    return m->unix_base;
  return m->unix_base + (ts - m->unix_base_ts) / WGAM_SECONDS;
}

/* ------------------------------------------------------------------------ */
/* Tables                                                                   */
/* ------------------------------------------------------------------------ */

static size_t tab_cap_for(size_t n) {
  size_t cap = 16;
  while (cap < n * 2)
    cap <<= 1;
  return cap;
}

/*
 * A slot holds a peer's index + 1 in its low bits (below @cap, which is at
 * least twice the number of peers) and the top bits of the peer's hash
 * above them. A probe that meets another peer's entry tells it by that tag
 * without reading the peer, which in a large mesh is a cache miss; most
 * lookups on the receive path (is this endpoint a mesh address?) miss.
 */
static uint32_t tab_tag(uint64_t h, size_t cap) {
  return (uint32_t)(h >> 32) & ~(uint32_t)(cap - 1);
}

static uint32_t tab_entry(uint64_t h, size_t cap, size_t idx) {
  return tab_tag(h, cap) | (uint32_t)(idx + 1);
}

/* The peer index in a slot, or NO_IDX for an empty one. */
static uint32_t tab_index(uint32_t e, size_t cap) {
  return e ? (e & (uint32_t)(cap - 1)) - 1 : NO_IDX;
}

/* Finds @key in @tab; returns the slot (empty or matching). */
static size_t keytab_slot(const struct peer *peers, const uint32_t *tab,
                          size_t cap, const uint8_t *key) {
  uint64_t h = key_hash(key);
  uint32_t tag = tab_tag(h, cap), mask = (uint32_t)(cap - 1);
  size_t i = (size_t)h & (cap - 1);

  while (tab[i] &&
         ((tab[i] & ~mask) != tag ||
          memcmp(peers[(tab[i] & mask) - 1].pubkey, key, WGAM_KEY_LEN) != 0))
    i = (i + 1) & (cap - 1);
  return i;
}
static size_t addrtab_slot(const struct peer *peers, const uint32_t *tab,
                           size_t cap, const wgam_addr *a) {
  uint64_t h = ip_hash(a);
  uint32_t tag = tab_tag(h, cap), mask = (uint32_t)(cap - 1);
  size_t i = (size_t)h & (cap - 1);

  while (tab[i] && ((tab[i] & ~mask) != tag ||
                    !addr_ip_equal(&peers[(tab[i] & mask) - 1].address, a)))
    i = (i + 1) & (cap - 1);
  return i;
}

static uint32_t find_peer(const wgam_mesh *m, const uint8_t *key) {
  size_t slot;
  if (!m->npeers)
    return NO_IDX;
  slot = keytab_slot(m->peers, m->keytab, m->tabcap, key);
  return tab_index(m->keytab[slot], m->tabcap);
}
static uint32_t find_addr(const wgam_mesh *m, const wgam_addr *a) {
  size_t slot;
  if (!m->npeers || !addr_valid(a))
    return NO_IDX;
  slot = addrtab_slot(m->peers, m->addrtab, m->tabcap, a);
  return tab_index(m->addrtab[slot], m->tabcap);
}

/* An endpoint we are willing to configure: a valid unicast endpoint that is
 * not one of the mesh's own addresses (that would route the tunnel into
 * itself). */
static int endpoint_acceptable(const wgam_mesh *m, const wgam_addr *a) {
  return wgam_addr_is_valid_endpoint(a) && find_addr(m, a) == NO_IDX;
}

/* ------------------------------------------------------------------------ */
/* Peer deadline heap                                                       */
/* ------------------------------------------------------------------------ */

static void heap_swap(wgam_mesh *m, size_t i, size_t j) {
  uint32_t t = m->heap[i];
  m->heap[i] = m->heap[j];
  m->heap[j] = t;
  m->peers[m->heap[i]].heap_idx = (uint32_t)i;
  m->peers[m->heap[j]].heap_idx = (uint32_t)j;
}
static void heap_up(wgam_mesh *m, size_t i) {
  while (i > 0) {
    size_t parent = (i - 1) / 2;
    if (m->peers[m->heap[parent]].next <= m->peers[m->heap[i]].next)
      break;
    heap_swap(m, i, parent);
    i = parent;
  }
}
static void heap_down(wgam_mesh *m, size_t i) {
  for (;;) {
    size_t l = 2 * i + 1, r = l + 1, min = i;
    if (l < m->heaplen &&
        m->peers[m->heap[l]].next < m->peers[m->heap[min]].next)
      min = l;
    if (r < m->heaplen &&
        m->peers[m->heap[r]].next < m->peers[m->heap[min]].next)
      min = r;
    if (min == i)
      return;
    heap_swap(m, i, min);
    i = min;
  }
}
static void heap_set(wgam_mesh *m, uint32_t idx, wgam_tstamp next) {
  struct peer *p = &m->peers[idx];
  size_t i;

  p->next = next;
  if (p->heap_idx == NO_IDX) {
    if (next == NONE)
      return;
    i = m->heaplen++;
    m->heap[i] = idx;
    p->heap_idx = (uint32_t)i;
    heap_up(m, i);
    return;
  }
  i = p->heap_idx;
  if (next == NONE) {
    size_t last = --m->heaplen;
    if (i != last) {
      heap_swap(m, i, last);
      m->peers[idx].heap_idx = NO_IDX;
      heap_down(m, i);
      heap_up(m, i);
    } else {
      p->heap_idx = NO_IDX;
    }
    return;
  }
  heap_up(m, i);
  heap_down(m, p->heap_idx);
}

/* ------------------------------------------------------------------------ */
/* Output queues                                                            */
/* ------------------------------------------------------------------------ */

/* Datagram queue slots kept when it empties (more are freed). */
#define QUEUE_KEEP 256

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
    nq = xcalloc(m, ncap, sizeof(*nq));
    if (!nq)
      return WGAM_ERR_NOMEM;
    for (i = 0; i < m->qlen; i++)
      nq[i] = m->q[(m->qhead + i) % m->qcap];
    xfree(m, m->q);
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

static int queue_to_peer(wgam_mesh *m, uint8_t type, uint32_t subject,
                         const struct peer *p) {
  wgam_addr dest = p->address;
  dest.port = m->s.gossip_port;
  return queue_pkt(m, type, subject, &dest);
}

static void mark_upd(wgam_mesh *m, struct peer *p, uint8_t flags) {
  p->upd |= flags;
  if (!p->queued) {
    m->updq[(m->updq_head + m->updq_len) % m->npeers] =
        (uint32_t)(p - m->peers);
    m->updq_len++;
    p->queued = 1;
  }
}

static void set_keepalive(wgam_mesh *m, struct peer *p, uint16_t ka) {
  p->want_keepalive = ka;
  if (p->dev_keepalive != ka || !p->on_device)
    mark_upd(m, p, UPD_KEEPALIVE);
}

static void state_changed(wgam_mesh *m, wgam_tstamp ts) {
  m->state_dirty = 1;
  if ((m->s.flags & WGAM_SETTINGS_PERSIST) && m->s.policy == WGAM_POLICY_FAST &&
      m->t_persist == NONE)
    m->t_persist = tadd(ts, m->s.persist_interval);
}

/* ------------------------------------------------------------------------ */
/* Gossip store                                                             */
/* ------------------------------------------------------------------------ */

static void set_state(wgam_mesh *m, struct peer *p, int state) {
  if (p->state == WGAM_PEER_CONNECTED && state != WGAM_PEER_CONNECTED)
    m->nconnected--;
  else if (p->state != WGAM_PEER_CONNECTED && state == WGAM_PEER_CONNECTED)
    m->nconnected++;
  p->state = (uint8_t)state;
}

static int peer_connected(const wgam_mesh *m, const struct peer *p,
                          wgam_tstamp ts) {
  if (p->hs_at == NONE || ts >= tadd(p->hs_at, m->s.timeout))
    return 0;
  if (p->broken_at != NONE &&
      tmax3(p->rx_at, p->hs_at, p->pong_at) <= p->broken_at)
    return 0;
  return 1;
}

/* Sends the store of @subject to at most WGAM_GOSSIP_FANOUT connected peers,
 * in the fixed order of their per-pair priority. */
/* Sends an Announce of @subject to up to WGAM_GOSSIP_FANOUT connected
 * peers, in our gossip order; returns how many. */
static size_t propagate(wgam_mesh *m, uint32_t subject, wgam_tstamp ts) {
  size_t i, sent = 0, seen = 0;

  for (i = 0;
       i < m->npeers && sent < WGAM_GOSSIP_FANOUT && seen < m->nconnected;
       i++) {
    uint32_t idx = m->order[i];
    const struct peer *p = &m->peers[idx];

    if (p->state != WGAM_PEER_CONNECTED || idx == m->self_idx)
      continue;
    seen++;
    if (idx == subject || !addr_valid(&p->dev_ep) || !peer_connected(m, p, ts))
      continue;
    if (queue_to_peer(m, WGAM_MSG_ANNOUNCE, subject, p) != 0)
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
    return ip_hash(a) << 24 | (uint64_t)a->port << 8 | WGAM_AF_INET6;
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
static int merge_endpoints(const wgam_endpoint *known, const uint8_t *ksrc,
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

static void peer_step(wgam_mesh *m, uint32_t idx, wgam_tstamp ts);

/*
 * Fast policy: a subject whose store keeps changing is propagated at most
 * once per hold time, which doubles while the changes go on (like route flap
 * damping); one quiet hold time resets it. Endpoints seen per destination
 * behind a symmetric NAT would otherwise flood the mesh for ever.
 */
#define PROP_HOLD_MIN (2 * WGAM_SECONDS)
#define PROP_HOLD_MAX (300 * WGAM_SECONDS)

static void propagate_damped(wgam_mesh *m, uint32_t subject, wgam_tstamp ts) {
  struct peer *p = &m->peers[subject];
  wgam_tstamp hold = (wgam_tstamp)p->prop_hold_s * WGAM_SECONDS;

  if (p->prop_next != NONE && ts < p->prop_next) {
    p->prop_pending = 1; /* sent when the hold time ends */
    return;
  }
  if (p->prop_next != NONE && ts < tadd(p->prop_next, hold))
    hold = hold * 2 < PROP_HOLD_MAX ? hold * 2 : PROP_HOLD_MAX;
  else
    hold = PROP_HOLD_MIN;
  p->prop_hold_s = (uint16_t)(hold / WGAM_SECONDS);
  p->prop_next = tadd(ts, hold);
  /* With no one else connected yet (a node's first peer told it), the news
   * would reach no one: it is sent again when the hold time ends. */
  p->prop_pending = propagate(m, subject, ts) == 0;
}

/* Whether every address the store holds for @p is in the static
 * configuration that all nodes share (a literal endpoint: a hostname may
 * resolve differently elsewhere), so that flooding it tells no one
 * anything. */
static int store_is_configured(const struct peer *p) {
  size_t i, j;

  if (!p->cfg_literal)
    return 0;
  for (i = 0; i < p->nknown; i++) {
    for (j = 0; j < p->ncfg; j++)
      if (wgam_addr_equal(&p->known[i].addr, &p->cfg[j]))
        break;
    if (j == p->ncfg)
      return 0;
  }
  return 1;
}

/* Handles an announce about @subject (a peer index or SUBJECT_SELF). */
/* What handle_announce() does with a change (fast policy). */
enum {
  ANN_FLOOD,    /* news: propagate it and try it */
  ANN_KEEP,     /* our own observation announced before: store it only */
  ANN_NO_FLOOD, /* an answer to our Request: old news elsewhere, try it */
};

static int handle_announce(wgam_mesh *m, uint32_t subject,
                           const wgam_endpoint *eps, size_t neps, uint8_t src,
                           int mode, wgam_tstamp ts) {
  wgam_endpoint out[WGAM_MAX_ENDPOINTS];
  uint8_t out_src[WGAM_MAX_ENDPOINTS];
  size_t n;
  int changed;

  if (subject == SUBJECT_SELF) {
    static const uint8_t no_src[WGAM_MAX_ENDPOINTS];

    changed = merge_endpoints(m->self_known, no_src, m->nself_known, eps, neps,
                              src, out, out_src, &n);
    if (changed) {
      memcpy(m->self_known, out, n * sizeof(out[0]));
      m->nself_known = (uint8_t)n;
    }
  } else {
    struct peer *p = &m->peers[subject];

    changed = merge_endpoints(p->known, known_src(p), p->nknown, eps, neps, src,
                              out, out_src, &n);
    if (changed && store_set(m, p, out, out_src, n) != 0)
      return WGAM_ERR_NOMEM; /* the store is as if it was never heard */
  }
  if (!changed)
    return 0;
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
  if (changed != 2 || mode == ANN_KEEP ||
      store_is_configured(&m->peers[subject]))
    return 0;
  m->peers[subject].learned_at = ts;
  /* An answer is what the answering node already spread when it learned
   * it: flooding it again from every node that asks starts a wave through
   * the mesh each time (with endpoints behind symmetric NATs, a different
   * one each time). */
  if (mode == ANN_FLOOD)
    propagate_damped(m, subject, ts);
  if (m->dev_seen)
    peer_step(m, subject, ts); /* a new candidate */
  return 0;
}

/* ------------------------------------------------------------------------ */
/* Candidates and the per-peer state machine                                */
/* ------------------------------------------------------------------------ */

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

/* Private, shared-NAT, link-local and ULA addresses: reachable only from
 * the network they belong to, which we cannot tell from here. */
static int addr_is_private(const wgam_addr *a) {
  const uint8_t *ip = a->ip;
  if (a->family == WGAM_AF_INET)
    return ip[0] == 10 || (ip[0] == 172 && (ip[1] & 0xf0) == 16) ||
           (ip[0] == 192 && ip[1] == 168) ||
           (ip[0] == 100 && (ip[1] & 0xc0) == 64) ||
           (ip[0] == 169 && ip[1] == 254);
  return (ip[0] & 0xfe) == 0xfc || (ip[0] == 0xfe && (ip[1] & 0xc0) == 0x80);
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
    n = add_cand(c, n, &p->lan->addr, WGAM_SOURCE_LAN);
  for (private_pass = 0; private_pass < 2; private_pass++) {
    for (i = 0; i < p->nknown; i++)
      if (addr_is_private(&p->known[i].addr) == private_pass &&
          endpoint_acceptable(m, &p->known[i].addr))
        n = add_cand(c, n, &p->known[i].addr, known_src(p)[i]);
    for (i = 0; i < p->ncfg; i++)
      if (addr_is_private(&p->cfg[i]) == private_pass)
        n = add_cand(c, n, &p->cfg[i], WGAM_SOURCE_CONFIG);
  }
  return n;
}

static int was_tried(const struct peer *p, const wgam_addr *a) {
  uint32_t h = addr_hash32(a);
  size_t i;
  for (i = 0; i < p->ntried; i++)
    if (p->tried[i] == h)
      return 1;
  return 0;
}

static void send_ping(wgam_mesh *m, struct peer *p) {
  queue_to_peer(m, WGAM_MSG_PING, NO_IDX, p);
}

/*
 * Writing the same endpoint again is not a no-op: it makes WireGuard forget
 * the source address it cached for the peer (wireguard-go keeps sending from
 * an address we no longer have). That is what we need when we moved, and
 * what we must not do when the peer moved: our write could undo the roaming
 * its first packets from its new address just caused. Several paths going
 * silent together, or our only one, says we moved.
 */
static int we_moved(const wgam_mesh *m, const struct peer *p) {
  (void)p;
  return m->nsilent >= 2 || m->npeers - (m->self_idx != NO_IDX) <= 1;
}

static void path_silent(wgam_mesh *m, struct peer *p, wgam_tstamp ts) {
  size_t i;

  p->broken_at = ts;
  if (m->silent_since == NONE ||
      ts > tadd(m->silent_since, m->s.probe_timeout + m->s.device_interval)) {
    m->silent_since = ts;
    m->nsilent = 0;
  }
  if (++m->nsilent != 2)
    return;
  /* The first one of this window was tried without the write: redo it. */
  for (i = 0; i < m->npeers; i++) {
    struct peer *q = &m->peers[i];
    if (q == p || q->broken_at == NONE || q->broken_at < m->silent_since ||
        q->state != WGAM_PEER_TRYING || !addr_valid(&q->want_ep))
      continue;
    mark_upd(m, q, UPD_ENDPOINT);
    q->endpoint_changes++;
    m->stats.endpoint_changes++;
  }
}

/* When a try of @p without a handshake is redone (see EARLY_RETRY). */
static wgam_tstamp early_retry_at(const wgam_mesh *m, const struct peer *p) {
  wgam_tstamp at = tadd(p->try_start, EARLY_RETRY);

  if (!p->rx_bytes)
    return at;
  if (p->rx_at != NONE && tadd(p->rx_at, EARLY_QUIET) > at)
    at = tadd(p->rx_at, EARLY_QUIET);
  if (m->has_pubkey && memcmp(m->pubkey, p->pubkey, WGAM_KEY_LEN) > 0)
    at = tadd(at, EARLY_STAGGER);
  return at;
}

/* Points the device at @ep for this peer and gives it a handshake window. */
static void try_endpoint(wgam_mesh *m, struct peer *p, const wgam_addr *ep,
                         uint8_t src, wgam_tstamp ts) {
  if (p->ntried < MAX_CANDIDATES)
    p->tried[p->ntried++] = addr_hash32(ep);
  p->want_ep = *ep;
  p->want_src = src;
  p->try_start = ts;
  p->deadline = tadd(ts, m->s.try_interval);
  p->retried = 0;
  p->tries++;
  if (m->s.policy == WGAM_POLICY_FAST && !p->dev_hs)
    m->t_early = tmin(m->t_early, early_retry_at(m, p));
  set_state(m, p, WGAM_PEER_TRYING);
  if (!p->lan_switch)
    set_keepalive(m, p, m->s.keepalive_trying);
  if (!wgam_addr_equal(&p->dev_ep, ep) ||
      (p->broken_at != NONE && we_moved(m, p))) {
    mark_upd(m, p, UPD_ENDPOINT);
    p->endpoint_changes++;
    m->stats.endpoint_changes++;
  }
  logf_(m, WGAM_LOG_INFO, "peer %s: trying %s endpoint %s",
        keyshort(p->pubkey).s, wgam_source_name(src), addrs(ep).s);
  /* Traffic for the peer makes WireGuard start a handshake right away. */
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

  /* A path just found silent is tried last, unless we are the one who moved
   * (then it is still right and needs only rewriting): the peer more likely
   * moved, and what gossip learned meanwhile says where to. */
  if (p->broken_at != NONE && !we_moved(m, p)) {
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
      try_endpoint(m, p, &c[i].addr, c[i].src, ts);
      return;
    }
  set_keepalive(m, p, m->s.keepalive_trying);
  if (p->ntried == 0) {
    set_state(m, p, WGAM_PEER_IDLE);
    p->deadline = NONE;
    return;
  }
  set_state(m, p, WGAM_PEER_BACKOFF);
  p->deadline = tadd(ts, backoff_delay(m, p->backoff_level));
  if (p->backoff_level < 16)
    p->backoff_level++;
  logf_(m, WGAM_LOG_DEBUG, "peer %s: %u candidates failed, next round in %llus",
        keyshort(p->pubkey).s, (unsigned)p->ntried,
        (unsigned long long)((p->deadline - ts) / WGAM_SECONDS));
}

/* An untried candidate worth cutting the current try for: not a private
 * address while a public one is being tried (see candidates()). */
static int has_preempting(const wgam_mesh *m, const struct peer *p) {
  struct cand c[MAX_CANDIDATES];
  size_t n = candidates(m, p, c), i;
  int now_private = addr_is_private(&p->want_ep);

  /* A private address from gossip is usually another network's LAN; one
   * from a broadcast is ours. */
  for (i = 0; i < n; i++)
    if (!was_tried(p, &c[i].addr) &&
        (now_private || !addr_is_private(&c[i].addr) ||
         c[i].src == WGAM_SOURCE_LAN))
      return 1;
  return 0;
}

/* A LAN endpoint heard by broadcast and not tried in this round: it ranks
 * first and is on our own network, so it cuts a try at once. */
static int lan_untried(const struct peer *p) {
  return has_lan(p) && !was_tried(p, &p->lan->addr);
}

static int has_untried(const wgam_mesh *m, const struct peer *p) {
  struct cand c[MAX_CANDIDATES];
  size_t n = candidates(m, p, c), i;
  for (i = 0; i < n; i++)
    if (!was_tried(p, &c[i].addr))
      return 1;
  return 0;
}

static wgam_tstamp probe_idle(const wgam_mesh *m) {
  /* Small meshes probe quickly; large ones stay within PROBE_RATE probes a
   * second and otherwise rely on WireGuard's own rekeying: with keepalives
   * flowing, a healthy session is renewed every two minutes, so a handshake
   * older than the fast policy's timeout means a broken path. */
  wgam_tstamp idle = m->s.probe_idle;
  wgam_tstamp budget = (wgam_tstamp)m->npeers * WGAM_SECONDS / PROBE_RATE;
  return budget > idle ? budget : idle;
}

/* Announces from a peer this long after we asked it for its store are
 * taken as its answer (see ANN_NO_FLOOD). */
#define ANSWER_WINDOW (3 * WGAM_SECONDS)

static void ask_peer(wgam_mesh *m, struct peer *p, wgam_tstamp ts) {
  if (queue_to_peer(m, WGAM_MSG_REQUEST, NO_IDX, p) != 0)
    return;
  p->req_at = ts;
  m->answers_until = tadd(ts, ANSWER_WINDOW);
}

static int is_answer(const wgam_mesh *m, const wgam_addr *src, wgam_tstamp ts) {
  uint32_t idx;

  if (m->s.policy != WGAM_POLICY_FAST || ts >= m->answers_until)
    return 0; /* nothing asked lately: no lookup on this hot path */
  idx = find_addr(m, src);
  return idx != NO_IDX && idx != m->self_idx && m->peers[idx].req_at != NONE &&
         ts < tadd(m->peers[idx].req_at, ANSWER_WINDOW);
}

static void became_connected(wgam_mesh *m, struct peer *p, wgam_tstamp ts) {
  int was_up = p->state == WGAM_PEER_CONNECTED;

  set_keepalive(m, p, m->s.keepalive_connected);
  if (was_up)
    return;
  set_state(m, p, WGAM_PEER_CONNECTED);
  p->backoff_level = 0;
  p->ntried = 0;
  p->tries = 0;
  p->deadline = NONE;
  p->broken_at = NONE;
  p->probe_at = NONE;
  logf_(m, WGAM_LOG_INFO, "peer %s: connected via %s", keyshort(p->pubkey).s,
        addrs(&p->dev_ep).s);
  /* What we know of ourselves (the UPnP endpoint) may have been learned
   * while nobody was connected to hear it: tell each peer as it comes. */
  if (m->nself_known && m->has_pubkey)
    queue_to_peer(m, WGAM_MSG_ANNOUNCE, SUBJECT_SELF, p);
  /* A newly connected peer knows the mesh: ask it, now and then. */
  if (m->s.policy == WGAM_POLICY_FAST &&
      (m->last_request == NONE ||
       ts >= tadd(m->last_request, REQUEST_INTERVAL))) {
    m->last_request = ts;
    m->last_request_peer = (uint32_t)(p - m->peers);
    ask_peer(m, p, ts);
  }
}

/* A LAN try keeps its whole window: nothing learned can rank above it, and
 * the peer may just not have configured us yet when our first handshake
 * initiation arrived (WireGuard retries after 5 s). */
static int preemptible(const struct peer *p) {
  return p->want_src != WGAM_SOURCE_LAN;
}

static int new_since_try(const struct peer *p) {
  return p->learned_at != NONE && p->try_start != NONE &&
         p->learned_at > p->try_start;
}

static int early_retry_due(const wgam_mesh *m, const struct peer *p) {
  /* Never a completed handshake with the peer (bytes received alone may be
   * an initiation we answered in vain: see EARLY_RETRY). */
  return m->s.policy == WGAM_POLICY_FAST && p->state == WGAM_PEER_TRYING &&
         !p->retried && !p->dev_hs && p->hs_at == NONE;
}

static wgam_tstamp peer_next(const wgam_mesh *m, const struct peer *p) {
  wgam_tstamp next = p->deadline;

  if (p->state == WGAM_PEER_TRYING && !p->lan_switch && preemptible(p) &&
      new_since_try(p) && has_preempting(m, p))
    next = tmin(next, tadd(p->try_start, MIN_TRY));
  if (p->prop_pending)
    next = tmin(next, p->prop_next);
  if (has_lan(p))
    next = tmin(next, tadd(p->lan->seen, m->s.lan_timeout));
  if (p->state == WGAM_PEER_CONNECTED) {
    next = tmin(next, tadd(p->hs_at, m->s.timeout));
    if (m->s.probe_idle) {
      if (p->probe_at != NONE)
        next = tmin(next, tadd(p->probe_at, m->s.probe_timeout));
      else
        next = tmin(next,
                    tadd(tmax3(p->rx_at, p->hs_at, p->pong_at), probe_idle(m)));
    }
  }
  return next;
}

/* The fast policy's decision for one peer at @ts. */
static void peer_step(wgam_mesh *m, uint32_t idx, wgam_tstamp ts) {
  struct peer *p = &m->peers[idx];
  int conn;

  if (idx == m->self_idx) {
    heap_set(m, idx, NONE);
    return;
  }
  if (!m->dev_seen)
    return;
  if (p->prop_pending && ts >= p->prop_next)
    propagate_damped(m, idx, ts);
  if (has_lan(p) && ts >= tadd(p->lan->seen, m->s.lan_timeout)) {
    logf_(m, WGAM_LOG_INFO, "peer %s: LAN endpoint %s is stale",
          keyshort(p->pubkey).s, addrs(&p->lan->addr).s);
    memset(&p->lan->addr, 0, sizeof(p->lan->addr));
  }
  if (m->s.policy == WGAM_POLICY_CLASSIC) {
    /* Classic peers move only in the 30 s cycle; keep the view current. */
    set_state(m, p,
              peer_connected(m, p, ts)          ? WGAM_PEER_CONNECTED
              : p->state == WGAM_PEER_CONNECTED ? WGAM_PEER_IDLE
                                                : p->state);
    heap_set(m, idx, NONE);
    return;
  }

  conn = peer_connected(m, p, ts);
  if (conn && m->s.probe_idle && p->state == WGAM_PEER_CONNECTED) {
    wgam_tstamp last = tmax3(p->rx_at, p->hs_at, p->pong_at);
    /* A pong can carry the probe's own time (a clock that did not move
     * between the two): anything since the probe, inclusive, answers it. */
    if (p->probe_at != NONE && last >= p->probe_at) {
      p->probe_at = NONE;
    } else if (p->probe_at != NONE &&
               ts >= tadd(p->probe_at, m->s.probe_timeout)) {
      logf_(m, WGAM_LOG_INFO, "peer %s: path via %s is silent",
            keyshort(p->pubkey).s, addrs(&p->dev_ep).s);
      path_silent(m, p, ts);
      p->probe_at = NONE;
      conn = 0;
    } else if (p->probe_at == NONE && ts >= tadd(last, probe_idle(m))) {
      logf_(m, WGAM_LOG_TRACE, "peer %s: probing a silent path",
            keyshort(p->pubkey).s);
      p->probe_at = ts;
      send_ping(m, p);
    }
  }

  if (conn) {
    if (p->lan_switch) {
      if (p->pong_at != NONE && p->pong_at >= p->try_start &&
          wgam_addr_equal(&p->dev_ep, &p->lan->addr)) {
        p->lan_switch = 0;
        became_connected(m, p, ts);
        logf_(m, WGAM_LOG_INFO, "peer %s: now on LAN endpoint %s",
              keyshort(p->pubkey).s, addrs(&p->lan->addr).s);
      } else if (ts >= p->deadline) {
        logf_(m, WGAM_LOG_INFO,
              "peer %s: LAN endpoint %s does not answer, back to %s",
              keyshort(p->pubkey).s, addrs(&p->lan->addr).s,
              addrs(&p->lan->prev_ep).s);
        p->lan_switch = 0;
        /* Forget it until a broadcast tells us again (a host renumbered
         * by DHCP must not be chased at its old address). */
        p->lan->failed = addr_hash32(&p->lan->addr);
        memset(&p->lan->addr, 0, sizeof(p->lan->addr));
        p->lan->fail_until = tadd(ts, m->s.backoff_max);
        p->want_ep = p->lan->prev_ep;
        p->want_src = p->src;
        mark_upd(m, p, UPD_ENDPOINT);
        m->stats.endpoint_changes++;
        p->endpoint_changes++;
        became_connected(m, p, ts);
      }
    } else {
      became_connected(m, p, ts);
      if (has_lan(p) && !wgam_addr_equal(&p->dev_ep, &p->lan->addr) &&
          (p->lan->fail_until == NONE || ts >= p->lan->fail_until)) {
        p->lan->prev_ep = p->dev_ep;
        p->lan_switch = 1;
        try_endpoint(m, p, &p->lan->addr, WGAM_SOURCE_LAN, ts);
      }
    }
  } else {
    if (p->lan_switch)
      p->lan_switch = 0;
    switch (p->state) {
    case WGAM_PEER_CONNECTED:
      logf_(m, WGAM_LOG_INFO, "peer %s: disconnected", keyshort(p->pubkey).s);
      p->ntried = 0;
      p->backoff_level = 0;
      try_next(m, p, ts);
      break;
    case WGAM_PEER_TRYING:
      /* Something learned during the window (the peer moved, and another
       * node saw where to) is worth more than the rest of the window. */
      if (ts >= p->deadline && !m->observing && m->dev_at < p->deadline &&
          ts < tadd(p->deadline, m->s.device_interval)) {
        /* A handshake may have completed since the last read (WireGuard's
         * retry lands near the end of the window): judge the window on a
         * read taken after it closed, or a working session is pointed at
         * the next candidate. */
        m->wants |= WGAM_WANT_DEVICE;
      } else if (ts >= p->deadline ||
                 (preemptible(p) && new_since_try(p) &&
                  (lan_untried(p) || (ts >= tadd(p->try_start, MIN_TRY) &&
                                      has_preempting(m, p))))) {
        try_next(m, p, ts);
      } else if (m->observing && early_retry_due(m, p) &&
                 ts >= early_retry_at(m, p)) {
        p->retried = 1;
        mark_upd(m, p, UPD_ENDPOINT | UPD_RECREATE);
        send_ping(m, p);
      }
      break;
    case WGAM_PEER_BACKOFF:
      if (ts >= p->deadline) {
        p->ntried = 0;
        try_next(m, p, ts);
      } else if (has_untried(m, p)) {
        try_next(m, p, ts);
      }
      break;
    default:
      try_next(m, p, ts);
      break;
    }
  }
  heap_set(m, idx, peer_next(m, p));
}

/* The original's loop body for one peer (classic policy). */
static void classic_peer(wgam_mesh *m, struct peer *p, wgam_tstamp ts) {
  wgam_endpoint list[MAX_CANDIDATES];
  size_t n = 0, i, j;
  int bad;

  if (has_lan(p) && ts >= tadd(p->lan->seen, m->s.lan_timeout))
    memset(&p->lan->addr, 0, sizeof(p->lan->addr));
  bad = has_lan(p) && addr_valid(&p->dev_ep) &&
        !wgam_addr_equal(&p->lan->addr, &p->dev_ep);
  if (!bad && peer_connected(m, p, ts)) {
    set_state(m, p, WGAM_PEER_CONNECTED);
    p->tries = 0;
    set_keepalive(m, p, m->s.keepalive_connected);
    return;
  }
  if (has_lan(p)) {
    list[n].addr = p->lan->addr;
    list[n++].time = 0;
  } else {
    for (i = 0; i < p->nknown; i++)
      if (endpoint_acceptable(m, &p->known[i].addr))
        list[n++] = p->known[i];
    for (i = 0; i < p->ncfg; i++) {
      list[n].addr = p->cfg[i];
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
    set_state(m, p, WGAM_PEER_IDLE);
    return;
  }
  {
    const wgam_addr *ep = &list[m->cycle % n].addr;
    uint8_t src = has_lan(p) ? WGAM_SOURCE_LAN : WGAM_SOURCE_GOSSIP;

    for (i = 0; i < p->ncfg; i++)
      if (wgam_addr_equal(ep, &p->cfg[i]))
        src = WGAM_SOURCE_CONFIG;
    for (i = 0; i < p->nknown; i++)
      if (wgam_addr_equal(ep, &p->known[i].addr))
        src = known_src(p)[i];
    set_state(m, p, WGAM_PEER_TRYING);
    if (wgam_addr_equal(&p->dev_ep, ep))
      return; /* already using it */
    p->ntried = 0;
    try_endpoint(m, p, ep, src, ts);
  }
}

static void classic_cycle(wgam_mesh *m, wgam_tstamp ts) {
  size_t i;
  for (i = 0; i < m->npeers; i++)
    if (i != m->self_idx)
      classic_peer(m, &m->peers[i], ts);
  m->cycle++;
}

/* ------------------------------------------------------------------------ */
/* Object life cycle                                                        */
/* ------------------------------------------------------------------------ */

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
  m->ask_interval = ASK_MIN;
  m->silent_since = NONE;
  if (m->s.policy == WGAM_POLICY_CLASSIC &&
      (m->s.flags & WGAM_SETTINGS_PERSIST))
    m->t_persist = ts; /* the original writes at start, then every 600 s */
  *pmesh = m;
  logf_(m, WGAM_LOG_DEBUG, "engine created (%s policy)",
        m->s.policy == WGAM_POLICY_FAST ? "fast" : "classic");
  return 0;
}

static void free_peers(wgam_mesh *m, struct peer *peers, size_t n) {
  size_t i;
  for (i = 0; i < n; i++) {
    xfree(m, peers[i].cfg);
    xfree(m, peers[i].known);
    xfree(m, peers[i].lan);
  }
  xfree(m, peers);
}

void wgam_mesh_del(wgam_mesh *m) {
  if (!m)
    return;
  free_peers(m, m->peers, m->npeers);
  xfree(m, m->keytab);
  xfree(m, m->addrtab);
  xfree(m, m->order);
  xfree(m, m->heap);
  xfree(m, m->updq);
  xfree(m, m->removed);
  xfree(m, m->q);
  sodium_memzero(m->key, sizeof(m->key));
  m->mem->free(m, m->mem->user_data);
}

/* ------------------------------------------------------------------------ */
/* Peer list                                                                */
/* ------------------------------------------------------------------------ */

static void peer_init(struct peer *p) {
  memset(p, 0, sizeof(*p));
  p->hs_at = NONE;
  p->rx_at = NONE;
  p->pong_at = NONE;
  p->deadline = NONE;
  p->try_start = NONE;
  p->learned_at = NONE;
  p->probe_at = NONE;
  p->broken_at = NONE;
  p->answered_at = NONE;
  p->req_at = NONE;
  p->prop_next = NONE;
  p->heap_idx = NO_IDX;
  p->next = NONE;
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
static void update_identity(wgam_mesh *m) {
  uint8_t buf[2 * WGAM_KEY_B64_LEN + 1];
  struct prio_idx *v;
  size_t i;

  m->self_idx = m->has_pubkey ? find_peer(m, m->pubkey) : NO_IDX;
  if (m->self_idx != NO_IDX && m->peers[m->self_idx].nknown) {
    /* What a state file said of us before we knew who we are. */
    static const uint8_t no_src[WGAM_MAX_ENDPOINTS];
    struct peer *me = &m->peers[m->self_idx];
    wgam_endpoint out[WGAM_MAX_ENDPOINTS];
    uint8_t out_src[WGAM_MAX_ENDPOINTS];
    size_t n;

    if (merge_endpoints(m->self_known, no_src, m->nself_known, me->known,
                        me->nknown, WGAM_SOURCE_STATE, out, out_src, &n)) {
      memcpy(m->self_known, out, n * sizeof(out[0]));
      m->nself_known = (uint8_t)n;
    }
    store_set(m, me, NULL, NULL, 0);
  }
  m->nconnected = 0;
  for (i = 0; i < m->npeers; i++)
    if (i != m->self_idx && m->peers[i].state == WGAM_PEER_CONNECTED)
      m->nconnected++;
  if (m->has_pubkey) {
    char b64[WGAM_KEY_B64_LEN + 1];

    wgam_key_to_base64(b64, m->pubkey);
    memcpy(buf, b64, WGAM_KEY_B64_LEN);
    buf[WGAM_KEY_B64_LEN] = '-';
  }
  for (i = 0; i < m->npeers; i++)
    m->order[i] = (uint32_t)i;
  v = xcalloc(m, m->npeers, sizeof(*v));
  if (!v)
    return;
  for (i = 0; i < m->npeers; i++) {
    v[i].prio = m->has_pubkey ? pair_prio(buf, m->peers[i].pubkey) : 0;
    v[i].idx = (uint32_t)i;
  }
  qsort(v, m->npeers, sizeof(*v), cmp_prio_idx);
  for (i = 0; i < m->npeers; i++)
    m->order[i] = v[i].idx;
  xfree(m, v);
}

int wgam_mesh_set_peers(wgam_mesh *m, const wgam_peer_config *cfg, size_t n,
                        wgam_tstamp ts) {
  struct peer *np = NULL;
  uint32_t *keytab = NULL, *addrtab = NULL, *order = NULL, *heap = NULL,
           *updq = NULL, *remap = NULL;
  uint8_t(*removed)[WGAM_KEY_LEN] = NULL;
  size_t cap, i, nremoved = 0, added = 0, gone = 0;
  int rv = WGAM_ERR_NOMEM;

  if (!m || (n && !cfg))
    return WGAM_ERR_INVALID_ARGUMENT;
  if (n > m->s.max_peers)
    return WGAM_ERR_LIMIT;
  for (i = 0; i < n; i++) {
    if ((cfg[i].address.family != WGAM_AF_INET &&
         cfg[i].address.family != WGAM_AF_INET6) ||
        (addr_valid(&cfg[i].endpoint) &&
         !wgam_addr_is_valid_endpoint(&cfg[i].endpoint)))
      return WGAM_ERR_INVALID_ARGUMENT;
  }

  cap = tab_cap_for(n);
  np = xcalloc(m, n, sizeof(*np));
  keytab = xcalloc(m, cap, sizeof(*keytab));
  addrtab = xcalloc(m, cap, sizeof(*addrtab));
  order = xcalloc(m, n, sizeof(*order));
  heap = xcalloc(m, n, sizeof(*heap));
  updq = xcalloc(m, n, sizeof(*updq));
  remap = xcalloc(m, m->npeers, sizeof(*remap));
  removed = xcalloc(m, m->nremoved + m->npeers, sizeof(*removed));
  if (!np || !keytab || !addrtab || !order || !heap || !updq || !remap ||
      !removed)
    goto out;

  for (i = 0; i < n; i++) {
    size_t ks = keytab_slot(np, keytab, cap, cfg[i].pubkey);
    size_t as = addrtab_slot(np, addrtab, cap, &cfg[i].address);
    uint32_t old = find_peer(m, cfg[i].pubkey);
    struct peer *p = &np[i];

    if (keytab[ks] || addrtab[as]) {
      rv = WGAM_ERR_DUPLICATE_PEER;
      goto out;
    }
    if (old != NO_IDX) {
      *p = m->peers[old];
      p->cfg = NULL;
      p->queued = 0;
      p->heap_idx = NO_IDX;
      if (!addr_ip_equal(&p->address, &cfg[i].address))
        p->upd |= UPD_ALLOWED;
    } else {
      peer_init(p);
      added++;
      memcpy(p->pubkey, cfg[i].pubkey, WGAM_KEY_LEN);
      p->upd = UPD_ALLOWED | UPD_KEEPALIVE;
      p->want_keepalive = m->s.keepalive_trying;
    }
    p->address = cfg[i].address;
    p->address.port = 0;
    p->ncfg = 0;
    p->cfg_literal = 0;
    if (addr_valid(&cfg[i].endpoint)) {
      p->cfg = xcalloc(m, 1, sizeof(*p->cfg));
      if (!p->cfg)
        goto out;
      p->cfg[0] = cfg[i].endpoint;
      p->ncfg = 1;
      p->cfg_literal = 1;
    } else if (old != NO_IDX && m->peers[old].ncfg &&
               !addr_valid(&cfg[i].endpoint)) {
      /* Keep endpoints resolved from a hostname across a reload; the caller
       * replaces them with wgam_mesh_set_peer_endpoints(). */
      p->cfg = xcalloc(m, m->peers[old].ncfg, sizeof(*p->cfg));
      if (p->cfg) {
        memcpy(p->cfg, m->peers[old].cfg, m->peers[old].ncfg * sizeof(*p->cfg));
        p->ncfg = m->peers[old].ncfg;
      }
    }
    keytab[ks] = tab_entry(key_hash(cfg[i].pubkey), cap, i);
    addrtab[as] = tab_entry(ip_hash(&cfg[i].address), cap, i);
  }

  /* Old index -> new index, and the peers that went away. */
  for (i = 0; i < m->npeers; i++) {
    size_t ks = keytab_slot(np, keytab, cap, m->peers[i].pubkey);
    remap[i] = tab_index(keytab[ks], cap);
    if (remap[i] == NO_IDX && i != m->self_idx) {
      memcpy(removed[nremoved++], m->peers[i].pubkey, WGAM_KEY_LEN);
      gone++;
      logf_(m, WGAM_LOG_INFO, "peer %s: removed from the configuration",
            keyshort(m->peers[i].pubkey).s);
    }
  }
  /* Removals not yet emitted stay pending, unless the peer is back. */
  for (i = 0; i < m->nremoved; i++)
    if (!keytab[keytab_slot(np, keytab, cap, m->removed[i])])
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
        oldp[i].lan = NULL;
      }
    m->peers = np;
    m->npeers = n;
    free_peers(m, oldp, oldn);
  }
  xfree(m, m->keytab);
  xfree(m, m->addrtab);
  xfree(m, m->order);
  xfree(m, m->heap);
  xfree(m, m->updq);
  xfree(m, m->removed);
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
  update_identity(m);

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
      mark_upd(m, p, upd);
    /* The original asks every peer for its store at start; on a reload only
     * new peers are asked. The fast policy asks a few after the first device
     * read instead, since a peer without an endpoint cannot be reached. */
    if (is_new && m->s.policy == WGAM_POLICY_CLASSIC)
      ask_peer(m, p, ts);
    if (m->dev_seen)
      peer_step(m, (uint32_t)i, ts);
  }
  m->ask_interval = ASK_MIN; /* new peers: ask again soon */
  logf_(m, WGAM_LOG_INFO, "%zu peers configured", n);
  logf_(m, WGAM_LOG_DEBUG, "peers: %zu added, %zu kept, %zu removed", added,
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
      np[i].lan = NULL;
    }
    free_peers(m, np, n);
  }
  xfree(m, keytab);
  xfree(m, addrtab);
  xfree(m, order);
  xfree(m, heap);
  xfree(m, updq);
  xfree(m, remap);
  xfree(m, removed);
  return rv;
}

int wgam_mesh_set_peer_endpoints(wgam_mesh *m,
                                 const uint8_t pubkey[WGAM_KEY_LEN],
                                 const wgam_addr *addrs_, size_t naddrs,
                                 wgam_tstamp ts) {
  uint32_t idx;
  struct peer *p;
  wgam_addr *cfg = NULL;
  size_t i;

  if (!m || !pubkey || naddrs > MAX_CFG_ENDPOINTS || (naddrs && !addrs_))
    return WGAM_ERR_INVALID_ARGUMENT;
  idx = find_peer(m, pubkey);
  if (idx == NO_IDX)
    return WGAM_ERR_INVALID_ARGUMENT;
  for (i = 0; i < naddrs; i++)
    if (!wgam_addr_is_valid_endpoint(&addrs_[i]))
      return WGAM_ERR_INVALID_ARGUMENT;
  if (naddrs) {
    cfg = xcalloc(m, naddrs, sizeof(*cfg));
    if (!cfg)
      return WGAM_ERR_NOMEM;
    memcpy(cfg, addrs_, naddrs * sizeof(*cfg));
  }
  p = &m->peers[idx];
  xfree(m, p->cfg);
  p->cfg = cfg;
  p->ncfg = (uint8_t)naddrs;
  p->cfg_literal = 0;
  if (m->s.policy == WGAM_POLICY_FAST)
    peer_step(m, idx, ts);
  return 0;
}

/* ------------------------------------------------------------------------ */
/* Device                                                                   */
/* ------------------------------------------------------------------------ */

static int allowed_ok(const struct peer *p, const wgam_device_peer *dp) {
  uint8_t plen = p->address.family == WGAM_AF_INET ? 32 : 128;
  return dp->nallowedips == 1 && dp->allowedips &&
         dp->allowedips[0].prefixlen == plen &&
         addr_ip_equal(&dp->allowedips[0].addr, &p->address);
}

static uint8_t guess_source(const struct peer *p, const wgam_addr *ep) {
  size_t i;
  if (has_lan(p) && wgam_addr_equal(&p->lan->addr, ep))
    return WGAM_SOURCE_LAN;
  for (i = 0; i < p->nknown; i++)
    if (wgam_addr_equal(&p->known[i].addr, ep))
      return known_src(p)[i];
  for (i = 0; i < p->ncfg; i++)
    if (wgam_addr_equal(&p->cfg[i], ep))
      return WGAM_SOURCE_CONFIG;
  return WGAM_SOURCE_ROAMING;
}

static void observe_peer(wgam_mesh *m, struct peer *p,
                         const wgam_device_peer *dp, wgam_tstamp ts,
                         uint64_t unix_now) {
  int first = !p->on_device;

  if (!wgam_addr_equal(&p->dev_ep, &dp->endpoint) || first) {
    if (addr_valid(&p->want_ep) && wgam_addr_equal(&dp->endpoint, &p->want_ep))
      p->src = p->want_src;
    else if (addr_valid(&dp->endpoint))
      p->src = guess_source(p, &dp->endpoint);
    else
      p->src = WGAM_SOURCE_NONE;
    if (!first && addr_valid(&p->dev_ep) && addr_valid(&dp->endpoint))
      logf_(m, WGAM_LOG_DEBUG, "peer %s: device endpoint now %s (%s)",
            keyshort(p->pubkey).s, addrs(&dp->endpoint).s,
            wgam_source_name(p->src));
  }
  p->dev_ep = dp->endpoint;
  p->on_device = 1;
  p->dev_keepalive = dp->persistent_keepalive;
  p->allowed_ok = (uint8_t)allowed_ok(p, dp);
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
  if (dp->rx_bytes != p->rx_bytes) {
    if (!first)
      p->rx_at = ts;
    p->rx_bytes = dp->rx_bytes;
  }
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
    update_identity(m);
    if (m->has_pubkey)
      logf_(m, WGAM_LOG_INFO, "device key %s, listen port %u",
            keyshort(m->pubkey).s, (unsigned)m->listen_port);
  }

  /* on_device is 0 or 1 here; 3 marks the peers seen in this read. */
  for (i = 0; i < dev->npeers; i++) {
    const wgam_device_peer *dp = &dev->peers[i];
    uint32_t idx;
    /* A device usually lists its peers in our order: try the one after the
     * last match before hashing the key (keys are unique, so a match is
     * what find_peer() would return). */
    if (hint == m->self_idx)
      hint++;
    if (hint < m->npeers &&
        memcmp(m->peers[hint].pubkey, dp->pubkey, WGAM_KEY_LEN) == 0)
      idx = hint;
    else
      idx = find_peer(m, dp->pubkey);
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

    if (i == m->self_idx)
      continue;
    if (p->on_device != 3) {
      /* Gone from the device (or never there): configure it again. */
      p->on_device = 0;
      p->allowed_ok = 0;
      memset(&p->dev_ep, 0, sizeof(p->dev_ep));
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
      mark_upd(m, p, UPD_ALLOWED);
    if (p->want_keepalive && p->dev_keepalive != p->want_keepalive)
      mark_upd(m, p, UPD_KEEPALIVE);
    /* A handshake came after all: keep it. */
    if (p->dev_hs || !p->on_device)
      p->upd &= (uint8_t)~UPD_RECREATE;
    m->observing = 1;
    peer_step(m, (uint32_t)i, ts);
    m->observing = 0;
    if (early_retry_due(m, p))
      m->t_early = tmin(m->t_early, early_retry_at(m, p));
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
      for (k = 0; k < p->nknown; k++)
        if (wgam_addr_equal(&p->known[k].addr, &p->dev_ep) &&
            p->dev_hs <= p->known[k].time + gi)
          fresh = 1;
      /* Once per gossip interval per endpoint, even if the store dropped it
       * meanwhile (five entries cannot hold what every observer of a
       * symmetric NAT sees). */
      if (wgam_addr_equal(&p->obs_ep, &p->dev_ep) &&
          p->dev_hs <= p->obs_time + gi)
        fresh = 1;
      /* Checked last: it looks the endpoint up in the address table, and
       * nearly every observation is fresh. */
      if (!fresh && endpoint_acceptable(m, &p->dev_ep)) {
        wgam_endpoint e;
        /* An observation announced before is only refreshed in our store
         * (Request answers carry it): flooding it again would start a wave
         * for every observer of a symmetric NAT, each gossip interval. */
        int mode = m->s.policy == WGAM_POLICY_FAST &&
                           wgam_addr_equal(&p->obs_ep, &p->dev_ep)
                       ? ANN_KEEP
                       : ANN_FLOOD;
        e.addr = p->dev_ep;
        e.time = p->dev_hs;
        /* Without memory to store it, it is news again next time. */
        if (handle_announce(m, (uint32_t)i, &e, 1,
                            p->src ? p->src : WGAM_SOURCE_ROAMING, mode,
                            ts) == 0) {
          p->obs_ep = p->dev_ep;
          p->obs_time = p->dev_hs;
        }
      }
    }
  }

  if (m->s.policy == WGAM_POLICY_CLASSIC && (first || m->cycle_due)) {
    classic_cycle(m, ts);
    m->cycle_due = 0;
  }
  if (first) {
    if (m->s.flags & (WGAM_SETTINGS_LAN_DISCOVERY))
      m->t_lan = ts;
    if (m->s.flags & WGAM_SETTINGS_IGD)
      m->t_igd = ts;
    if (m->s.policy == WGAM_POLICY_FAST) {
      size_t asked = 0;
      for (i = 0; i < m->npeers && asked < INITIAL_REQUESTS; i++) {
        struct peer *p = &m->peers[m->order[i]];
        if (m->order[i] == m->self_idx || !peer_connected(m, p, ts))
          continue;
        /* became_connected() may just have asked this one. */
        if (m->last_request != ts || m->last_request_peer != m->order[i])
          ask_peer(m, p, ts);
        asked++;
      }
      if (asked)
        m->last_request = ts;
      m->t_ask = tadd(ts, ASK_MIN);
    }
  }
  m->wants &= ~WGAM_WANT_DEVICE;
  m->t_device = tadd(ts, m->s.device_interval);
  return 0;
}

/* ------------------------------------------------------------------------ */
/* Datagrams in                                                             */
/* ------------------------------------------------------------------------ */

/* Maps an announced key string to a peer index or SUBJECT_SELF. */
static uint32_t subject_of(const wgam_mesh *m, const uint8_t *s, size_t len) {
  uint8_t key[WGAM_KEY_LEN];
  uint32_t idx;

  if (len != WGAM_KEY_B64_LEN ||
      wgam_key_from_base64(key, (const char *)s, len) != 0)
    return NO_IDX; /* decoded, but never configured */
  if (m->has_pubkey && memcmp(key, m->pubkey, WGAM_KEY_LEN) == 0)
    return SUBJECT_SELF;
  idx = find_peer(m, key);
  return idx == m->self_idx ? SUBJECT_SELF : idx;
}

static int answer_request(wgam_mesh *m, const wgam_addr *src, wgam_tstamp ts) {
  uint32_t from = find_addr(m, src);
  wgam_tstamp *last =
      from != NO_IDX ? &m->peers[from].answered_at : &m->foreign_answered_at;
  size_t i;

  if (*last != NONE && ts < tadd(*last, ANSWER_INTERVAL))
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
  idx = subject_of(m, msg->pubkey, msg->pubkeylen);
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
  if (!endpoint_acceptable(m, &lan)) {
    m->stats.rejected[WGAM_REJECT_BAD_ENDPOINT]++;
    return WGAM_ERR_PKT_IGNORED;
  }
  p = &m->peers[idx];
  if (!p->lan) {
    p->lan = xcalloc(m, 1, sizeof(*p->lan));
    if (!p->lan)
      return WGAM_ERR_NOMEM;
    p->lan->seen = NONE;
    p->lan->fail_until = NONE;
  }
  if (!wgam_addr_equal(&p->lan->addr, &lan)) {
    logf_(m, WGAM_LOG_INFO, "peer %s: LAN endpoint %s", keyshort(p->pubkey).s,
          addrs(&lan).s);
    p->lan->addr = lan;
    p->learned_at = ts;
    if (addr_hash32(&lan) != p->lan->failed)
      p->lan->fail_until = NONE; /* a new address deserves a try at once */
    p->lan->seen = ts;
    if (m->s.policy == WGAM_POLICY_FAST)
      peer_step(m, idx, ts);
  }
  p->lan->seen = ts;
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

  switch (msg.type) {
  case WGAM_MSG_PING:
    queue_pkt(m, WGAM_MSG_PONG, NO_IDX, src);
    return 0;
  case WGAM_MSG_PONG:
    idx = find_addr(m, src);
    if (idx != NO_IDX && idx != m->self_idx) {
      m->peers[idx].pong_at = ts;
      if (m->dev_seen)
        peer_step(m, idx, ts);
    }
    return 0;
  case WGAM_MSG_REQUEST:
    return answer_request(m, src, ts);
  case WGAM_MSG_LAN_BROADCAST:
    return handle_lan_broadcast(m, src, &msg, ts);
  case WGAM_MSG_ANNOUNCE: {
    size_t i, k = 0;

    idx = subject_of(m, msg.pubkey, msg.pubkeylen);
    if (idx == NO_IDX) {
      m->stats.rejected[WGAM_REJECT_UNKNOWN_KEY]++;
      return WGAM_ERR_PKT_IGNORED;
    }
    /* Unacceptable endpoints are dropped in place: no copy when there are
     * none. */
    for (i = 0; i < msg.nendpoints; i++)
      if (endpoint_acceptable(m, &msg.endpoints[i].addr) && k++ != i)
        msg.endpoints[k - 1] = msg.endpoints[i];
    if (k < msg.nendpoints)
      m->stats.rejected[WGAM_REJECT_BAD_ENDPOINT]++;
    if (handle_announce(m, idx, msg.endpoints, k, WGAM_SOURCE_GOSSIP,
                        is_answer(m, src, ts) ? ANN_NO_FLOOD : ANN_FLOOD,
                        ts) != 0)
      return WGAM_ERR_NOMEM;
    return k < msg.nendpoints && k == 0 ? WGAM_ERR_PKT_IGNORED : 0;
  }
  default:
    return WGAM_ERR_PKT_DECODE;
  }
}

/* ------------------------------------------------------------------------ */
/* State file, external endpoint                                            */
/* ------------------------------------------------------------------------ */

struct load_ctx {
  wgam_mesh *m;
  wgam_tstamp ts;
  size_t loaded, skipped;
};

static int load_entry(const uint8_t *pubkey, size_t pubkeylen,
                      const wgam_endpoint *eps, size_t neps, void *user_data) {
  struct load_ctx *c = user_data;
  wgam_endpoint ok[WGAM_STATE_MAX_ENDPOINTS];
  uint32_t idx = subject_of(c->m, pubkey, pubkeylen);
  size_t i, k = 0;

  if (idx == NO_IDX) {
    c->skipped++;
    return 0;
  }
  for (i = 0; i < neps; i++)
    if (endpoint_acceptable(c->m, &eps[i].addr))
      ok[k++] = eps[i];
  if (handle_announce(c->m, idx, ok, k, WGAM_SOURCE_STATE, ANN_FLOOD, c->ts))
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
  logf_(m, WGAM_LOG_INFO, "state: %zu keys loaded, %zu unknown skipped",
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
static void announce_external(wgam_mesh *m, const wgam_addr *addr,
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
  handle_announce(m, SUBJECT_SELF, &e, 1, WGAM_SOURCE_UPNP, ANN_FLOOD, ts);
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
      logf_(m, WGAM_LOG_INFO, "external endpoint %s", addrs(&eps[i]).s);
  }
  m->nexternal = naddrs;
  if (naddrs)
    memcpy(m->external, eps, naddrs * sizeof(*eps));
  for (i = 0; i < m->nexternal; i++)
    announce_external(m, &m->external[i], ts);
  return 0;
}

/* ------------------------------------------------------------------------ */
/* Timers and output                                                        */
/* ------------------------------------------------------------------------ */

int wgam_mesh_set_log_level(wgam_mesh *m, int level) {
  if (level < WGAM_LOG_ERROR || level > WGAM_LOG_TRACE)
    return WGAM_ERR_INVALID_ARGUMENT;
  m->s.log_level = level;
  return 0;
}

wgam_tstamp wgam_mesh_get_expiry(const wgam_mesh *m) {
  wgam_tstamp t;

  if (!m)
    return NONE;
  t = tmin(tmin(m->t_device, m->t_lan), tmin(m->t_persist, m->t_igd));
  t = tmin(tmin(t, m->t_ask), m->t_early);
  if (m->heaplen)
    t = tmin(t, m->peers[m->heap[0]].next);
  return t;
}

static void queue_lan_broadcast(wgam_mesh *m) {
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

/* Peers that stay without any endpoint may be missing an announce
 * that spread before we connected to anyone: ask the connected peers, one
 * after the other, for their stores, less often while it does not help. */
static void ask_for_stores(wgam_mesh *m, wgam_tstamp ts) {
  size_t i, unresolved = 0;

  /* Only peers with no candidate at all: one behind a symmetric NAT has
   * candidates that fail, and asking again would not help it. */
  for (i = 0; i < m->npeers; i++)
    if (i != m->self_idx && m->peers[i].state == WGAM_PEER_IDLE)
      unresolved++;
  if (!unresolved || !m->nconnected) {
    m->t_ask = tadd(ts, ASK_MIN);
    return;
  }
  for (i = 0; i < m->npeers; i++) {
    uint32_t idx = m->order[(m->ask_pos + i) % m->npeers];
    struct peer *p = &m->peers[idx];
    if (idx == m->self_idx || p->state != WGAM_PEER_CONNECTED)
      continue;
    m->ask_pos = (m->ask_pos + i + 1) % m->npeers;
    ask_peer(m, p, ts);
    m->last_request = ts;
    logf_(m, WGAM_LOG_DEBUG, "%zu peers unresolved: asking %s for its store",
          unresolved, keyshort(p->pubkey).s);
    break;
  }
  m->t_ask = tadd(ts, m->ask_interval);
  m->ask_interval =
      m->ask_interval * 2 < ASK_MAX ? m->ask_interval * 2 : ASK_MAX;
}

int wgam_mesh_handle_expiry(wgam_mesh *m, wgam_tstamp ts) {
  size_t i;

  if (!m)
    return WGAM_ERR_INVALID_ARGUMENT;
  if (ts >= m->t_early) {
    m->wants |= WGAM_WANT_DEVICE;
    m->t_early = NONE; /* observe_device() sets the next one */
  }
  if (ts >= m->t_device) {
    m->wants |= WGAM_WANT_DEVICE;
    m->cycle_due = 1;
    /* Keep waking the caller while the device cannot be read. */
    m->t_device = tadd(ts, m->s.device_interval);
  }
  if (ts >= m->t_lan) {
    if (m->has_pubkey && m->listen_port)
      queue_lan_broadcast(m);
    m->t_lan = tadd(ts, m->s.lan_interval);
  }
  if (ts >= m->t_persist) {
    m->wants |= WGAM_WANT_STATE;
    m->t_persist = m->s.policy == WGAM_POLICY_CLASSIC
                       ? tadd(ts, m->s.persist_interval)
                       : NONE;
  }
  if (ts >= m->t_igd) {
    m->wants |= WGAM_WANT_IGD;
    m->t_igd = tadd(ts, m->s.igd_interval);
  }
  if (ts >= m->t_ask)
    ask_for_stores(m, ts);
  for (i = 0; i < m->nexternal; i++)
    announce_external(m, &m->external[i], ts);
  while (m->heaplen && m->peers[m->heap[0]].next <= ts) {
    uint32_t idx = m->heap[0];
    wgam_tstamp before = m->peers[idx].next;
    peer_step(m, idx, ts);
    /* A step always moves the deadline forward or drops it. */
    if (m->peers[idx].heap_idx != NO_IDX && m->peers[idx].next <= before)
      heap_set(m, idx, tadd(ts, WGAM_SECONDS));
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

wgam_ssize wgam_mesh_write_pkt(wgam_mesh *m, wgam_addr *destaddr, uint8_t *dest,
                               size_t destlen, wgam_tstamp ts) {
  uint8_t plain[WGAM_MAX_PLAINTEXT_LEN];
  uint8_t nonce[WGAM_NONCE_LEN];
  char b64[WGAM_KEY_B64_LEN + 1];
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
    if (m->qlen == 0 && m->qcap > QUEUE_KEEP) {
      /* A burst (a Request's answer: the whole store) is over: give its
       * room back rather than hold it per engine for ever. */
      xfree(m, m->q);
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
    m->stats.pkts_out[e.type]++;
    m->stats.bytes_out += (uint64_t)n;
    return n;
  }
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
    upd->flags |= WGAM_PEER_REPLACE_ALLOWEDIPS;
    upd->nallowedips = 1;
    upd->allowedips[0].addr = p->address;
    upd->allowedips[0].prefixlen = p->address.family == WGAM_AF_INET ? 32 : 128;
    p->allowed_ok = 1;
  }
  if ((flags & UPD_ENDPOINT) && addr_valid(&p->want_ep)) {
    upd->flags |= WGAM_PEER_HAS_ENDPOINT;
    upd->endpoint = p->want_ep;
    p->dev_ep = p->want_ep;
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
}

int wgam_mesh_next_peer_update(wgam_mesh *m, wgam_peer_update *upd) {
  if (!m || !upd || !m->dev_seen)
    return 0; /* nothing is decided before the device was read */
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
    fill_update(m, p, flags, upd);
    return 1;
  }
  return 0;
}

/* ------------------------------------------------------------------------ */
/* Status                                                                   */
/* ------------------------------------------------------------------------ */

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
  info->state = p->state;
  info->connected = p->state == WGAM_PEER_CONNECTED ||
                    (p->lan_switch && p->state == WGAM_PEER_TRYING);
  info->last_handshake = p->dev_hs;
  info->tries = p->tries;
  info->endpoint_changes = p->endpoint_changes;
  info->nknown = p->nknown;
  if (p->nknown)
    memcpy(info->known, p->known, p->nknown * sizeof(wgam_endpoint));
  if (p->lan)
    info->lan_endpoint = p->lan->addr;
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
    if (i != m->self_idx && m->peers[i].state == WGAM_PEER_CONNECTED)
      stats->npeers_connected++;
  stats->mem_bytes = sizeof(*m) + m->npeers * (sizeof(struct peer) + 4 * 4) +
                     2 * m->tabcap * sizeof(uint32_t) +
                     m->qcap * sizeof(struct pending) +
                     m->nremoved * WGAM_KEY_LEN;
  for (i = 0; i < m->npeers; i++) {
    const struct peer *p = &m->peers[i];

    stats->mem_bytes += p->ncfg * sizeof(wgam_addr) +
                        p->nknown * (sizeof(wgam_endpoint) + 1) +
                        (p->lan ? sizeof(*p->lan) : 0);
  }
}
