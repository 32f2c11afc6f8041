/* SPDX-License-Identifier: MIT */
/*
 * The engine's private header: the structs its files share, the small
 * helpers they all use, and the functions one file offers the others.
 */
#ifndef WGAM_ENGINE_H
#define WGAM_ENGINE_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "internal.h"

#define NONE WGAM_TSTAMP_NONE
/* No peer index; a queued Announce about ourselves. */
#define NO_IDX UINT32_MAX
#define SUBJECT_SELF (UINT32_MAX - 1)
/* WireGuard's REKEY_TIMEOUT: a peer's handshake initiations are at least
 * this far apart, counting those it could not send. */
#define WG_REKEY_TIMEOUT (5 * WGAM_SECONDS)
/* Configured endpoints of one peer (a hostname may resolve to several). */
#define MAX_CFG_ENDPOINTS WGAM_MAX_ENDPOINTS
/* Candidates of one round: LAN + our own last observation + gossip +
 * configured. */
#define MAX_CANDIDATES (2 + WGAM_MAX_ENDPOINTS + MAX_CFG_ENDPOINTS)
/* With roam hints, the peers with an endpoint configured a node behind a
 * NAT sends its heartbeat to (hints.c). */
#define HEARTBEAT_PEERS 3

/*
 * The per-peer state machine (try.c has the diagram). The first four are
 * the public wgam_peer_state; the two others are reported as TRYING.
 */
enum peer_state {
  PEER_IDLE = WGAM_PEER_IDLE,
  PEER_TRYING = WGAM_PEER_TRYING,
  PEER_BACKOFF = WGAM_PEER_BACKOFF,
  PEER_CONNECTED = WGAM_PEER_CONNECTED,
  PEER_RETRIED,   /* trying, and the early re-creation was done */
  PEER_SWITCHING, /* connected, trying the LAN endpoint heard by broadcast */
};

/* A candidate's try is under way (the device points at want_ep). */
static inline int peer_trying(int state) {
  return state == PEER_TRYING || state == PEER_RETRIED ||
         state == PEER_SWITCHING;
}

enum {
  UPD_ALLOWED = 0x1,
  UPD_ENDPOINT = 0x2,
  UPD_KEEPALIVE = 0x4,
  UPD_RECREATE = 0x8, /* remove the peer, then add it whole */
  UPD_ROUTE = 0x10,   /* put its allowed IPs on the entry its route names */
};

/* What a peer heard on the LAN by broadcast has: rare, so held apart. */
struct peer_lan {
  wgam_addr addr;    /* the LAN endpoint, or no address */
  wgam_addr prev_ep; /* where to go back to if it does not answer */
  wgam_tstamp seen;
  wgam_tstamp fail_until;
  uint32_t failed; /* hash of the last LAN endpoint that did not answer */
};

/*
 * What a peer needs only now and then, held out of line (NULL when every
 * field has its default): a try under way or backing off, a probe in
 * flight, a recent Request or answer, propagation damping, a relayed
 * route, a LAN endpoint, extra prefixes. A connected peer usually has
 * none: wgam_cold_trim() frees the block once nothing in it matters, or
 * keeps only its first fields (COLD_SMALL bytes, without PEER_COLD_FULL)
 * for configured endpoints, a want_ep the device left or propagation
 * damping. Readers use cold(), which gives the defaults without a full
 * block, or cold_pre() for those first fields; writers get the block from
 * wgam_cold_get() (wgam_cold_small() for the first fields) and skip what
 * they meant to do when there is no memory for it (the next step does it
 * again).
 */
struct peer_cold {
  /* Configured (or resolved) endpoints (ncfg). */
  wgam_addr *cfg;
  /* Propagation damping (fast policy). */
  wgam_tstamp prop_next;
  /* want_ep and obs_ep when they differ from dev_ep (see want_ep()). */
  wgam_addr want_ep;
  uint16_t prop_hold_s;
  uint8_t prop_pending;
  /* The small block ends here (COLD_SMALL). */
  wgam_addr obs_ep;
  /* Where the device had the peer when it lost the entry. */
  wgam_addr lost_ep;
  /* The try (try.c). */
  uint32_t tried[MAX_CANDIDATES];
  uint32_t tries;
  uint8_t ntried;
  uint8_t backoff_level;
  uint8_t relay_rank;   /* 0: the pair's first relay; else search slots */
  uint8_t first_ep;     /* no initiation of ours on its way (try.c) */
  uint8_t stale_ep;     /* it rewrote a path found silent that we kept */
  uint8_t nretried;     /* early re-creations in this try */
  uint8_t recrossed;    /* of them after crossed initiations */
  wgam_tstamp deadline; /* end of the try window or of the backoff */
  wgam_tstamp try_start;
  wgam_tstamp retried_at; /* the last early re-creation */
  wgam_tstamp probe_at;   /* Ping sent to check a silent path */
  wgam_tstamp along_at;   /* our probe round's Ping to it is due then */
  wgam_tstamp broken_at;  /* that Ping went unanswered */
  wgam_tstamp heard_at;   /* then: the last sign of the path working */
  wgam_tstamp answered_at;
  wgam_tstamp req_at;     /* we sent it a Request */
  wgam_tstamp answer_end; /* what it sends before this is the answer */
  /* Relaying (relay.c). */
  uint32_t via;           /* the relay's index while routed through one */
  uint32_t avoid_via;     /* the relay that failed us, passed over a while */
  wgam_tstamp down_since; /* no working direct path since */
  wgam_tstamp relay_at;   /* (re)consider the route then */
  wgam_tstamp route_at;   /* route moved, or relayed Ping sent */
  wgam_tstamp hold_end;   /* a search holds the relay until then */
  uint64_t route_changes;
  /* LAN endpoint and switch, NULL until a broadcast was heard. */
  struct peer_lan *lan;
  wgam_cidr *prefixes; /* extra allowed IPs, NULL if none */
};

#define COLD_SMALL offsetof(struct peer_cold, obs_ep)

/* struct peer bits: want_ep, obs_ep are dev_ep (held nowhere else); the
 * cold part is whole; what the byte counters are to tell between two
 * device reads (see observe_traffic() in device.c); the reads in a row
 * (0-3) that saw traffic from the peer. */
enum {
  PEER_WANT_DEV = 0x1,
  PEER_OBS_DEV = 0x2,
  PEER_COLD_FULL = 0x4,
  SIG_CHECK = 0x8,       /* traffic went unanswered, or stopped: probe */
  SIG_GOSSIP_OUT = 0x10, /* we sent it gossip: our bytes, not traffic */
  SIG_GOSSIP_IN = 0x20,  /* it sent us gossip */
  SIG_ALL = SIG_CHECK | SIG_GOSSIP_OUT | SIG_GOSSIP_IN,
  RX_STREAK_SHIFT = 6, /* two bits */
};

/*
 * One per configured peer, in one array: 10,000 peers are 10,000 of these,
 * so only what a connected peer uses all the time is here (the rest is in
 * struct peer_cold), ordered without padding.
 */
struct peer {
  uint8_t pubkey[WGAM_KEY_LEN];
  wgam_addr address;
  /* The device's view, as last observed (and as we last wrote it). */
  wgam_addr dev_ep;
  /* Gossip store, newest first: nknown endpoints, then where each came
   * from (known_src()), held out of line and sized to use (NULL when
   * empty): most peers have one endpoint and a full mesh of n nodes keeps
   * n^2 stores. */
  wgam_endpoint *known;
  struct peer_cold *cold;
  uint64_t dev_hs;   /* Unix seconds, 0 = never */
  wgam_tstamp hs_at; /* dev_hs on our monotonic clock */
  uint64_t rx_bytes;
  wgam_tstamp rx_at;      /* last time rx_bytes grew */
  wgam_tstamp pong_at;    /* last Pong from the peer */
  wgam_tstamp learned_at; /* a new address was learned for this peer */
  /* The time of the last observation we announced (its endpoint is
   * obs_ep()). */
  uint64_t obs_time;
  wgam_tstamp next;
  uint32_t heap_idx;
  uint32_t endpoint_changes;
  uint32_t relayed_ips; /* allowed IPs of peers routed through us */
  uint16_t dev_keepalive;
  uint16_t want_keepalive;
  uint8_t on_device;
  uint8_t allowed_ok;
  uint8_t ncfg;        /* configured endpoints: peer_cfg() */
  uint8_t cfg_literal; /* cfg came from the peer list, not from a resolver */
  uint8_t nknown;

  /* Control. */
  uint8_t state;
  uint8_t src;      /* source of dev_ep */
  uint8_t want_src; /* source of want_ep */
  uint8_t upd;      /* pending UPD_* */
  uint8_t queued;   /* in the update queue */
  uint8_t bits;     /* PEER_*, SIG_*, the rx streak */

  /* Relaying (relay.c). */
  uint8_t relay; /* configured as a relay */
  uint8_t route; /* wgam_route */
  uint8_t nprefixes;
  uint16_t tx_low; /* low bits of the device's tx_bytes */
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
  uint32_t *keytab; /* open addressing, see wgam_table_entry(); 0 = empty */
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
  wgam_tstamp t_early; /* a device read soon: an early retry, a handshake */
  uint32_t wants;
  int cycle_due;
  uint64_t cycle;
  int state_dirty;
  size_t nconnected; /* peers in state CONNECTED */
  /* Paths found silent together: when several go silent at once, it is
   * more likely we moved than they all did. */
  wgam_tstamp silent_since;
  size_t nsilent;
  /* News that an observer saw us at an address we were not known at (our
   * NAT rebooted or our address changed): a path silent since moved with
   * us (fast policy). */
  wgam_tstamp self_moved_at;
  wgam_tstamp last_request;
  wgam_tstamp answers_until; /* Announces from asked peers are answers */
  uint32_t last_request_peer;
  /* Fast policy: while peers stay without a working endpoint, ask one
   * connected peer after another for its store, with a growing interval. */
  wgam_tstamp t_ask;
  /* The last idle probe of all peers together (probe_along() in try.c). */
  wgam_tstamp probe_round;
  /* Probe round trips (Ping to Pong): the largest, decaying slowly towards
   * later ones; NONE before the first (news_wait() in try.c). */
  wgam_tstamp rtt_slow;
  wgam_tstamp ask_interval;
  size_t ask_pos;
  wgam_tstamp foreign_answered_at;

  size_t nrelays; /* configured relays other than us; 0 if we are one */

  /* Roam hints (hints.c): the caller tells us when WireGuard hears from
   * an address no peer had at the last read. */
  int roam_hints;
  /* The peers with an endpoint configured that our heartbeat goes to,
   * the first ones in our gossip order. */
  uint32_t beat_to[HEARTBEAT_PEERS];
  size_t nbeat_to;
  size_t nbusy; /* paths tried or probed at the last read */

  wgam_stats stats;
};

static inline wgam_tstamp ts_add(wgam_tstamp a, wgam_tstamp b) {
  return a > NONE - b ? NONE : a + b;
}

static inline wgam_tstamp ts_min(wgam_tstamp a, wgam_tstamp b) {
  return a < b ? a : b;
}

static inline wgam_tstamp ts_latest(wgam_tstamp a, wgam_tstamp b,
                                    wgam_tstamp c) {
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

/* Short printable key ("AbCdEfGh") for log lines. */
struct wgam_keybuf {
  char s[WGAM_KEY_B64_LEN + 1];
};

struct wgam_addrbuf {
  char s[WGAM_ADDR_STRLEN];
};

static inline int addr_ip_equal(const wgam_addr *a, const wgam_addr *b) {
  return a->family == b->family && memcmp(a->ip, b->ip, 16) == 0;
}

static inline int addr_valid(const wgam_addr *a) {
  return a->family != WGAM_AF_NONE;
}

/* The peer's out-of-line part, or the defaults when it has none. */
extern const struct peer_cold wgam_cold_none;

/* The whole cold part, or NULL. */
static inline struct peer_cold *cold_full(const struct peer *p) {
  return (p->bits & PEER_COLD_FULL) ? p->cold : NULL;
}

static inline const struct peer_cold *cold(const struct peer *p) {
  return (p->bits & PEER_COLD_FULL) ? p->cold : &wgam_cold_none;
}

/* The same for the fields of a small block (before COLD_SMALL). */
static inline const struct peer_cold *cold_pre(const struct peer *p) {
  return p->cold ? p->cold : &wgam_cold_none;
}

static inline struct peer_lan *peer_lan(const struct peer *p) {
  return cold(p)->lan;
}

static inline int has_lan(const struct peer *p) {
  return peer_lan(p) && addr_valid(&peer_lan(p)->addr);
}

/* The endpoint we last pointed the device at for @p (or no address). */
static inline const wgam_addr *want_ep(const struct peer *p) {
  return (p->bits & PEER_WANT_DEV) ? &p->dev_ep : &cold_pre(p)->want_ep;
}

/* The endpoint of the last observation we announced (or no address). */
static inline const wgam_addr *obs_ep(const struct peer *p) {
  return (p->bits & PEER_OBS_DEV) ? &p->dev_ep : &cold(p)->obs_ep;
}

/* The ncfg configured endpoints. */
static inline wgam_addr *peer_cfg(const struct peer *p) {
  return cold_pre(p)->cfg;
}

/* Whether @ep is one of @p's endpoints from the peer list itself (not from
 * a resolver, whose answer may differ elsewhere or change). */
static inline int cfg_literal_has(const struct peer *p, const wgam_addr *ep) {
  size_t i;

  if (!p->cfg_literal)
    return 0;
  for (i = 0; i < p->ncfg; i++)
    if (wgam_addr_equal(&peer_cfg(p)[i], ep))
      return 1;
  return 0;
}

/* No endpoint of our own is configured: we are behind a NAT, and only our
 * own packets open the way to us. */
static inline int self_behind_nat(const wgam_mesh *m) {
  return m->self_idx != NO_IDX && !m->peers[m->self_idx].ncfg;
}

/* Our endpoint is in every node's peer list: each knew it from its start. */
static inline int self_configured(const wgam_mesh *m) {
  return m->self_idx != NO_IDX && m->peers[m->self_idx].ncfg;
}

/* Where each endpoint of @p's store came from (after the endpoints). */
static inline uint8_t *known_src(const struct peer *p) {
  return p->known ? (uint8_t *)(p->known + p->nknown) : NULL;
}

static inline uint64_t unix_at(const wgam_mesh *m, wgam_tstamp ts) {
  if (!m->dev_seen || ts < m->unix_base_ts)
    return m->unix_base;
  return m->unix_base + (ts - m->unix_base_ts) / WGAM_SECONDS;
}

/*
 * Fast policy: a subject whose store keeps changing is propagated at most
 * once per hold time, which doubles while the changes go on (like route flap
 * damping); one quiet hold time resets it. Endpoints seen per destination
 * behind a symmetric NAT would otherwise flood the mesh for ever.
 */

/* What wgam_handle_announce() does with a change (fast policy). */
enum {
  ANN_FLOOD,    /* news: propagate it and try it */
  ANN_KEEP,     /* our own observation announced before: store it only */
  ANN_NO_FLOOD, /* an answer to our Request: old news elsewhere, try it */
  ANN_MOVED,    /* a peer roamed: news even if only its time changed */
};

/* Whether a message of @level reaches the log: callers on hot paths check
 * before formatting its arguments. */
static inline int wgam_log_on(const wgam_mesh *m, int level) {
  return m->s.log && level <= m->s.log_level;
}

/* mesh.c */
void wgam_log(const wgam_mesh *m, int level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void *wgam_calloc(const wgam_mesh *m, size_t n, size_t size);
void wgam_free(const wgam_mesh *m, void *p);
struct wgam_keybuf wgam_key_short(const uint8_t *key);
struct wgam_addrbuf wgam_addr_str(const wgam_addr *a);

/* table.c */
uint64_t wgam_ip_hash(const wgam_addr *a);
uint32_t wgam_addr_hash32(const wgam_addr *a);
uint64_t wgam_key_hash(const uint8_t *key);
size_t wgam_table_cap(size_t n);
uint32_t wgam_table_entry(uint64_t h, size_t cap, size_t idx);
uint32_t wgam_table_index(uint32_t e, size_t cap);
size_t wgam_keytab_slot(const struct peer *peers, const uint32_t *tab,
                        size_t cap, const uint8_t *key);
size_t wgam_addrtab_slot(const struct peer *peers, const uint32_t *tab,
                         size_t cap, const wgam_addr *a);
uint32_t wgam_find_peer(const wgam_mesh *m, const uint8_t *key);
uint32_t wgam_find_addr(const wgam_mesh *m, const wgam_addr *a);
void wgam_heap_set(wgam_mesh *m, uint32_t idx, wgam_tstamp next);

/* store.c */
int wgam_store_set(wgam_mesh *m, struct peer *p, const wgam_endpoint *eps,
                   const uint8_t *srcs, size_t n);
void wgam_bound_times(const wgam_mesh *m, wgam_endpoint *eps, size_t n,
                      wgam_tstamp ts);
int wgam_endpoint_acceptable(const wgam_mesh *m, const wgam_addr *a);
int wgam_store_merge(const wgam_endpoint *known, const uint8_t *ksrc,
                     size_t nknown, const wgam_endpoint *eps, size_t neps,
                     uint8_t src, wgam_endpoint *out, uint8_t *out_src,
                     size_t *nout);
void wgam_propagate_damped(wgam_mesh *m, uint32_t subject, wgam_tstamp ts);
int wgam_handle_announce(wgam_mesh *m, uint32_t subject,
                         const wgam_endpoint *eps, size_t neps, uint8_t src,
                         int mode, wgam_tstamp ts);
void wgam_announce_external(wgam_mesh *m, const wgam_addr *addr,
                            wgam_tstamp ts);

/* try.c */
void wgam_peer_set_state(wgam_mesh *m, struct peer *p, int state,
                         wgam_tstamp ts);
void wgam_ask_soon(wgam_mesh *m, wgam_tstamp ts);
int wgam_peer_connected(const wgam_mesh *m, const struct peer *p,
                        wgam_tstamp ts);
wgam_tstamp wgam_early_retry_at(const wgam_mesh *m, const struct peer *p);
void wgam_try_endpoint(wgam_mesh *m, struct peer *p, const wgam_addr *ep,
                       uint8_t src, wgam_tstamp ts);
void wgam_ask_peer(wgam_mesh *m, struct peer *p, wgam_tstamp ts);
int wgam_is_answer(wgam_mesh *m, const wgam_addr *src, wgam_tstamp ts);
void wgam_became_connected(wgam_mesh *m, struct peer *p, wgam_tstamp ts);
void wgam_catch_up(wgam_mesh *m, struct peer *p, wgam_tstamp since);
int wgam_early_retry_due(const wgam_mesh *m, const struct peer *p);
wgam_tstamp wgam_cross_watch_at(const wgam_mesh *m, const struct peer *p);
void wgam_peer_step(wgam_mesh *m, uint32_t idx, wgam_tstamp ts);
void wgam_try_again(wgam_mesh *m, uint32_t idx, wgam_tstamp ts);
void wgam_read_soon(wgam_mesh *m, wgam_tstamp ts);
void wgam_read_prompt(wgam_mesh *m, wgam_tstamp ts);
void wgam_pinged(wgam_mesh *m, uint32_t idx, wgam_tstamp ts);
void wgam_probe_all(wgam_mesh *m, wgam_tstamp ts);
wgam_tstamp wgam_probe_idle(const wgam_mesh *m);

/* hints.c */
int wgam_heartbeat_in_wg(const wgam_mesh *m);
uint16_t wgam_connected_keepalive(const wgam_mesh *m, const struct peer *p);
void wgam_hints_observed(wgam_mesh *m);
void wgam_hints_recount(wgam_mesh *m);
void wgam_hints_busy(wgam_mesh *m, wgam_tstamp ts);
wgam_tstamp wgam_read_interval(const wgam_mesh *m);

/* classic.c */
void wgam_classic_cycle(wgam_mesh *m, wgam_tstamp ts);

/* device.c */
void wgam_mark_update(wgam_mesh *m, struct peer *p, uint8_t flags);
void wgam_set_keepalive(wgam_mesh *m, struct peer *p, uint16_t ka);
void wgam_set_want(wgam_mesh *m, struct peer *p, const wgam_addr *ep);
void wgam_set_dev_ep(wgam_mesh *m, struct peer *p, const wgam_addr *ep);

/* peers.c */
struct peer_cold *wgam_cold_get(wgam_mesh *m, struct peer *p);
struct peer_cold *wgam_cold_small(wgam_mesh *m, struct peer *p);
void wgam_cold_trim(wgam_mesh *m, struct peer *p, wgam_tstamp ts);
void wgam_free_peers(wgam_mesh *m, struct peer *peers, size_t n);
void wgam_update_identity(wgam_mesh *m);

/* relay.c */
size_t wgam_own_allowedips(const struct peer *p, wgam_cidr *out);
int wgam_allowedips_match(const wgam_mesh *m, const struct peer *p,
                          const wgam_device_peer *dp);
void wgam_relay_recount(wgam_mesh *m);
void wgam_relay_step(wgam_mesh *m, struct peer *p, wgam_tstamp ts);
void wgam_relay_up(wgam_mesh *m, struct peer *r, wgam_tstamp ts);
void wgam_relay_pinged(wgam_mesh *m, uint32_t idx, wgam_tstamp ts);
int wgam_route_update(wgam_mesh *m, struct peer *p, wgam_peer_update *upd);

/* gossip.c */
int wgam_queue_to_peer(wgam_mesh *m, uint8_t type, uint32_t subject,
                       const struct peer *p);
uint32_t wgam_subject_of(const wgam_mesh *m, const uint8_t *s, size_t len);
void wgam_queue_lan_broadcast(wgam_mesh *m);
void wgam_ask_for_stores(wgam_mesh *m, wgam_tstamp ts);

#endif /* WGAM_ENGINE_H */
