/* SPDX-License-Identifier: MIT */
/*
 * wgautomesh-sim: a discrete-event simulator running N wgautomesh engines
 * against simulated WireGuard devices and a simulated Internet with NATs.
 *
 * Everything the engines see comes from here: datagrams, device state, time.
 * The simulator keeps a few dozen bytes per directed pair of nodes; the rest
 * (packets in flight, NAT mappings) exists only while there is activity.
 */
#ifndef SIM_H
#define SIM_H

#include <stddef.h>
#include <stdint.h>

#include "wgautomesh.h"

#include "queue.h"
#include "rng.h"

enum nat_type {
  NAT_NONE = 0,
  NAT_FULL_CONE = 1,
  NAT_PORT_RESTRICTED = 2,
  NAT_SYMMETRIC = 3,
};

enum ev_kind {
  EV_START,    /* a: node: create its engine */
  EV_TIMER,    /* a: node: engine deadline */
  EV_DEVICE,   /* a: node: the engine wants the device read */
  EV_TICK,     /* a: node: WireGuard timers (keepalive, handshake retry) */
  EV_PKT,      /* a: sender, b: receiver hint, arg: packet record */
  EV_ROAM,     /* a: node whose public address changes */
  EV_PROGRESS, /* periodic report and stop check */
  EV_MARK,     /* a: 0 steady window starts, 1 it ends */
  EV_KILL,     /* a: node that stops for good (a daemon killed) */
  EV_NAT_CONE, /* the symmetric NATs become port-restricted cone NATs */
  EV_RELOAD,   /* a: node whose peer list changes; b: 0 drop, 1 add back */
};

enum pkt_type {
  PKT_INIT, /* WireGuard handshake initiation */
  PKT_RESP, /* handshake response */
  PKT_DATA, /* transport data: gossip datagram, or keepalive when len 0 */
  PKT_LAN,  /* gossip broadcast on the LAN, outside the tunnel */
};

/* Simulated addresses (IPv4, host byte order). */
#define PUB_BASE 0xC6120000u /* 198.18.0.0/15: public hosts and routers */
#define PUB_MAX 131000u
#define MESH_BASE 0x64400000u /* 100.64.0.0/10: mesh addresses */
/* With --prefixes, node i routes 100.96.0.0/11's i-th /28 (a network
 * behind it): room for 131072 nodes. */
#define PFX_BASE 0x64600000u
#define PFX_LEN 28
#define LAN_BASE 0x0A000000u /* 10.R.R.h: host h behind router R */
#define WG_PORT 51820
#define BCAST_IP 0xFFFFFFFFu
/* Unix time of simulated time 0: handshakes are reported in wall clock. */
#define SIM_EPOCH 1700000000ULL

/* WireGuard constants (ms). */
#define WG_REKEY_TIMEOUT 5000
#define WG_REKEY_AFTER_TIME 120000
#define WG_REJECT_AFTER_TIME 180000
#define WG_REKEY_ATTEMPT_TIME 90000
#define WG_KEEPALIVE_TIMEOUT 10000
#define WG_INIT_LEN 148
#define WG_RESP_LEN 92
#define WG_DATA_OVERHEAD 32

/* dpeer.flags */
#define DP_PRESENT 0x01 /* the peer is configured on the device */
#define DP_ALLOWED 0x02 /* its allowed IP is set (to its mesh address) */
#define DP_PENDING 0x04 /* we sent an initiation and wait for a response */
#define DP_RESP 0x08    /* we answered an initiation, keys unconfirmed */
#define DP_EVER 0x10    /* a session existed once (convergence metric) */
#define DP_DATA_RX 0x20 /* data received and nothing sent since */
/* With --wg-strict: we answered the other end's initiation while ours
 * was under way, which replaced our initiation's state: the response to
 * ours will be refused (crossing initiations). */
#define DP_INIT_LOST 0x40

/* No peer entry (allowed-IP holder, NAT slot key). */
#define NO_PEER UINT32_MAX

/*
 * Device i's view of peer j. Times are "stamps": simulated ms + 1, 0 = never
 * (49 days of simulated time fit).
 *
 * It also says which entry of device i holds j's mesh address as an allowed
 * IP (WireGuard keeps an allowed IP on one entry at most): entry j itself
 * when DP_ALLOWED is set, else the entry in @via (index + 1, 24 bits, 0 =
 * none), e.g. a relay's.
 */
struct dpeer {
  uint32_t ep_ip;   /* endpoint, 0 = none */
  uint32_t hs;      /* last completed handshake */
  uint32_t tx;      /* last packet sent */
  uint32_t rx;      /* last authenticated packet received */
  uint32_t init;    /* last initiation sent */
  uint32_t attempt; /* start of the current handshake attempt */
  uint32_t rx_bytes, tx_bytes;
  uint16_t ep_port;
  uint16_t ka; /* persistent keepalive, s */
  uint8_t flags;
  uint8_t via[3];
};

/*
 * NAT state of a NAT-ed node i towards peer j: the last destination it sent
 * to for that peer (the port-restricted filter, the symmetric mapping's
 * destination) and the symmetric mapping's external port.
 */
struct natslot {
  uint32_t filt_ip;
  uint16_t filt_port;
  uint16_t sym_port;
  uint32_t filt; /* stamp */
};

struct pkt {
  uint32_t sip, dip;
  uint16_t sport, dport;
  uint16_t len;
  uint8_t type;
  uint32_t sent; /* stamp */
  /* Inside the tunnel (PKT_DATA with a payload): the nodes whose mesh
   * addresses are the inner source and destination. They differ from the
   * two ends of the hop when a relay forwards. */
  uint32_t isrc, idst;
  uint8_t *data;
};

struct router {
  uint32_t ip;
  uint8_t nat;
  uint16_t next_port;
  uint16_t nhosts;
  uint32_t *hosts;
};

struct sim;

struct node {
  struct sim *sim;
  uint32_t id;
  wgam_mesh *mesh;
  struct rng rng;  /* the engine's randomness */
  uint32_t pub_ip; /* public node: its address */
  int32_t router;  /* -1: public */
  uint8_t nat;
  uint8_t host; /* index behind the router */
  uint8_t dev_pending;
  uint8_t started;
  uint8_t relay;     /* "relay" in the config: forwards between its peers */
  uint8_t dead;      /* stopped by --kill-at */
  uint16_t map_port; /* cone mapping */
  uint32_t map;      /* stamp: last use of the cone mapping */
  uint64_t acc_ns;   /* access latency */
  wgam_tstamp sched; /* a timer event is queued for this time */
  int64_t skew_s;    /* its wall clock minus the true one */
  struct natslot *ns;
};

/* (router ip, port) -> (node, peer or UINT32_MAX for a cone mapping). A key
 * and its value side by side: one cache miss per lookup, not two. */
struct mapent {
  uint64_t key;
  uint64_t val;
};

struct maptab {
  struct mapent *e;
  size_t cap, n;
};

/* Packet payloads by size class of PAY_CLASS bytes, carved from slabs and
 * kept on free lists: malloc and free per packet took ~7 % of a 1,000-node
 * run. */
#define PAY_CLASS 16
#define PAY_NCLASS ((WGAM_MAX_DATAGRAM_LEN + PAY_CLASS - 1) / PAY_CLASS)
#define PAY_SLAB (256 * 1024)

struct paypool {
  void *free[PAY_NCLASS + 1];
  uint8_t *slab; /* the current slab's unused part */
  size_t left;
  void *slabs; /* every slab, linked through its first bytes */
};

struct params {
  uint32_t nodes;
  double nat;
  double mix[3]; /* full cone, port-restricted, symmetric */
  uint32_t lan_groups;
  uint32_t lan_size;
  double loss;
  double latency_ms;
  double roam_s; /* < 0: none */
  int64_t roam_node;
  double duration_s;
  double settle_s;
  double window_s;
  double progress_s;
  double spread_s;
  double nat_timeout_s;
  uint64_t seed;
  int policy; /* WGAM_POLICY_* */
  int quiet;
  int check;
  int expect_unreachable;
  int check_relay;
  int oracle_relay;
  uint32_t relays;   /* public nodes marked "relay" in the config */
  int prefixes;      /* every node routes one extra prefix */
  int64_t skew_node; /* -1: none */
  double skew_s;
  int64_t kill_node;   /* -1: the first relay */
  double kill_s;       /* < 0: none */
  double cone_s;       /* < 0: none */
  int64_t reload_node; /* -1: the first node behind a symmetric NAT */
  double reload_s;     /* < 0: none */
  double reload_gap_s;
  int64_t log_node;
  double mem_limit_gib;
  int wg_strict;            /* crossing initiations fail, an initiation without
                               endpoint is spent, updates go before datagrams */
  int roam_hints;           /* the engines get roam hints (hints.c) */
  uint32_t trace_last;      /* --trace-last K */
  const char *trace_csv;    /* --trace-csv FILE */
  int64_t trace_a, trace_b; /* --trace-pair A:B, -1: none */
};

struct result {
  int policy;
  uint32_t nodes;
  double converged_s; /* < 0: never */
  double recovered_s; /* < 0: never, NAN: no roam */
  double gossip_bytes_per_node_s, gossip_pkts_per_node_s;
  double steady_bytes_per_node_s, steady_pkts_per_node_s;
  double mem_per_peer_bytes;
  uint64_t device_writes;
  uint64_t reachable_pairs, unreachable_pairs, unreachable_connected;
  uint64_t connected_end;
  uint64_t engine_connected_unreachable;
  /* Reachability through the device routes, directly or through a relay. */
  double reach_s;  /* every pair the model can reach had been reached */
  double heal_s;   /* the same from a node's kill on: < 0 never, NAN none */
  double direct_s; /* from --nat-to-cone until every pair that can is direct */
  uint64_t reach_model_pairs, reach_end, relayed_end, prefix_misrouted;
  uint64_t live_pairs;     /* pairs of nodes not killed */
  uint64_t relay_switches; /* the engines' moves to a relay or back */
  uint64_t digest;
  double wall_s;
  double end_s;
  uint64_t events;
  int ok;
};

struct stats {
  uint64_t gossip_bytes, gossip_pkts;
  uint64_t conv_bytes, conv_pkts;
  uint64_t steady_bytes0, steady_pkts0;
  uint64_t device_writes;
  uint64_t drop_nosession, drop_noep, drop_src, drop_dst, drop_loss;
  uint64_t drop_nopeer, bad_dest, bad_update, handshakes;
  uint64_t delivered, rejected;
  uint64_t drop_noroute, drop_allowedip, drop_forward, relayed;
  uint64_t expiry_loops;
};

struct sim {
  struct params p;
  wgam_mem mem; /* the engines' allocator, counting into heap */
  size_t heap;  /* bytes the engines hold, allocator overhead included */
  uint32_t n;
  struct node *nodes;
  struct router *routers;
  uint32_t nrouters;
  int32_t *ip_owner; /* by ip - PUB_BASE - 1: node, or -(router + 1) */
  uint32_t nips;
  struct dpeer *dp; /* n * n */
  uint8_t (*keys)[WGAM_KEY_LEN];
  wgam_peer_config *cfg;
  wgam_cidr *cidr;
  wgam_device_peer *devbuf;
  struct maptab map;
  struct paypool pay;
  struct evq q;
  struct pkt *pkts;
  uint32_t npkts, pktcap;
  uint32_t *pktfree;
  uint32_t npktfree;
  struct rng net; /* loss, jitter */
  uint64_t now;   /* ns */
  uint32_t stamp; /* now in ms + 1 */
  uint64_t end_ns;
  uint16_t gossip_port;
  uint8_t *reach; /* n * n bits: directly connectable */
  uint64_t reachable_pairs, unreachable_pairs;
  uint64_t connected_pairs, unreachable_connected;
  uint64_t converged_ns; /* UINT64_MAX: not yet */
  uint64_t steady_start_ns, steady_end_ns;
  /* Roaming. */
  int64_t roam_node;
  uint64_t roam_ns;
  uint32_t roam_stamp;
  uint32_t *rec_in, *rec_out; /* first packet after the roam, per peer */
  uint64_t roam_reach, roam_recovered;
  uint64_t recovered_ns;
  /* Reachability (directly or relayed): pairs the model can reach, pairs
   * reached at least once (n * n bits), when the last was reached. */
  uint32_t nrelays;
  uint32_t relay0;    /* the first relay */
  uint32_t *nforeign; /* per device: addresses held by another entry */
  uint32_t *pfx;      /* --prefixes: [i * n + k] k's prefix on entry x + 1 */
  wgam_cidr *aip;     /* a device read: every entry's allowed IPs */
  uint32_t *aipn, *aipoff;
  uint8_t *reached;
  uint64_t reach_model_pairs, reach_ever;
  uint64_t reach_ns;
  uint64_t reach_first_ns; /* reach_ns before a kill or NAT change */
  int64_t kill_node;
  uint64_t kill_ns;
  uint64_t cone_ns; /* NEVER: no --nat-to-cone */
  int64_t reload_node;
  uint64_t reload_ns;  /* peers added back then; NEVER: no --reload-at */
  int reach_direct;    /* reach counts direct paths only */
  uint32_t cone_stamp; /* when the NATs changed */
  uint32_t npublic;
  struct stats st;
  uint64_t digest;
  struct trace *tr; /* --trace-last, --trace-pair (trace.c); NULL: none */
  int failed;
};

static inline struct dpeer *DP(struct sim *s, uint32_t i, uint32_t j) {
  return &s->dp[(size_t)i * s->n + j];
}

static inline uint32_t age(const struct sim *s, uint32_t stamp) {
  return s->stamp - stamp;
}

static inline int reachable(const struct sim *s, uint32_t i, uint32_t j) {
  size_t b = (size_t)i * s->n + j;
  return (s->reach[b >> 3] >> (b & 7)) & 1;
}

static inline uint32_t addr_ip(const wgam_addr *a) {
  return (uint32_t)a->ip[0] << 24 | (uint32_t)a->ip[1] << 16 |
         (uint32_t)a->ip[2] << 8 | a->ip[3];
}

static inline uint32_t dp_via(const struct dpeer *dp) {
  uint32_t v = (uint32_t)dp->via[0] | (uint32_t)dp->via[1] << 8 |
               (uint32_t)dp->via[2] << 16;

  return v ? v - 1 : NO_PEER;
}

static inline void dp_set_via(struct dpeer *dp, uint32_t x) {
  uint32_t v = x == NO_PEER ? 0 : x + 1;

  dp->via[0] = (uint8_t)v;
  dp->via[1] = (uint8_t)(v >> 8);
  dp->via[2] = (uint8_t)(v >> 16);
}

/* The entry of device i that holds k's mesh address, or NO_PEER. */
static inline uint32_t dev_route(struct sim *s, uint32_t i, uint32_t k) {
  const struct dpeer *dp = DP(s, i, k);

  return (dp->flags & DP_ALLOWED) ? k : dp_via(dp);
}

static inline void digest_mix(struct sim *s, uint64_t v) {
  s->digest = (s->digest ^ v) * 0x100000001b3ULL;
}

/* wgdev.c: the network and the WireGuard devices. */
void wg_send_data(struct sim *s, uint32_t i, uint32_t j, const uint8_t *data,
                  size_t len, uint32_t isrc, uint32_t idst);
void wg_send_inner(struct sim *s, uint32_t i, uint32_t dst, const uint8_t *data,
                   size_t len);
void wg_update(struct sim *s, uint32_t i, uint32_t j,
               const wgam_peer_update *u);
int wg_live(struct sim *s, uint32_t i, uint32_t j);
void wg_set_keepalive(struct sim *s, uint32_t i, uint32_t j, uint16_t ka);
void wg_tick(struct sim *s, uint32_t i);
void net_arrive(struct sim *s, uint32_t from, uint32_t hint, uint32_t pktidx);
void net_broadcast(struct sim *s, uint32_t i, const uint8_t *data, size_t len);
void net_roam(struct sim *s, uint32_t x);
void net_nat_to_cone(struct sim *s);
uint32_t net_alloc_ip(struct sim *s, int32_t owner);
uint32_t lan_ip(uint32_t router, uint32_t host);
int maptab_init(struct maptab *t);
void maptab_free(struct maptab *t);
void pkt_free(struct sim *s, uint32_t idx);
void pay_release(struct paypool *pp);

/* sim.c: the engines. */
/* Device @h moved its entry of a peer to a new source: with --roam-hints
 * the engine hears of it as the daemon's watch would tell it. */
void node_roam_hint(struct sim *s, uint32_t h);
void node_deliver(struct sim *s, uint32_t h, uint32_t sip, uint16_t sport,
                  const uint8_t *data, size_t len);
void metric_session(struct sim *s, uint32_t i, uint32_t j);
void metric_route(struct sim *s, uint32_t i, uint32_t k);
void metric_rx(struct sim *s, uint32_t h, uint32_t j);
void fatal_nomem(void);

/* trace.c: where the time to full mesh goes. Called only when s->tr. */
int trace_init(struct sim *s, uint32_t last, const char *csv, int64_t a,
               int64_t b);
void trace_free(struct sim *s);
void trace_report(struct sim *s);
void trace_start(struct sim *s, uint32_t i);
void trace_read(struct sim *s, uint32_t i);
void trace_update(struct sim *s, uint32_t i, uint32_t j,
                  const wgam_peer_update *u);
void trace_send_init(struct sim *s, uint32_t i, uint32_t j);
void trace_drop(struct sim *s, uint32_t from, uint32_t to, uint8_t type,
                const char *why);
void trace_arrive(struct sim *s, uint32_t h, uint32_t from, uint8_t type,
                  size_t len);
void trace_roam(struct sim *s, uint32_t h, uint32_t from);
void trace_init_in(struct sim *s, uint32_t h, uint32_t from);
void trace_session(struct sim *s, uint32_t i, uint32_t j);

#endif /* SIM_H */
