/* SPDX-License-Identifier: MIT */
/*
 * wgautomesh-sim: N wgautomesh engines in one process, driven by a
 * discrete-event loop. See sim.h for the model and wgdev.c for the network.
 *
 *   wgautomesh-sim --nodes 1000 --nat 0.3 --seed 1 --policy fast|classic|both
 *       [--lan-groups K] [--loss 0.01] [--latency-ms 20] [--roam T]
 *       [--duration S] [--relays K] [--skew-node I --skew-s S] ...
 *
 * (--help lists them all).
 *
 * The last line of the output is key=value figures for scripts.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <malloc.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sim.h"

#define NEVER UINT64_MAX
#define SEC 1000000000ULL

static const char secret[] = "wgautomesh-sim shared secret";

void fatal_nomem(void) {
  fprintf(stderr, "wgautomesh-sim: out of memory\n");
  exit(2);
}

static void *xcalloc(size_t n, size_t size) {
  void *p = calloc(n ? n : 1, size);

  if (!p)
    fatal_nomem();
  return p;
}

static double wall_now(void) {
  struct timespec ts;

  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void addr_v4(wgam_addr *a, uint32_t ip, uint16_t port) {
  memset(a, 0, sizeof(*a));
  a->family = WGAM_AF_INET;
  a->port = port;
  a->ip[0] = (uint8_t)(ip >> 24);
  a->ip[1] = (uint8_t)(ip >> 16);
  a->ip[2] = (uint8_t)(ip >> 8);
  a->ip[3] = (uint8_t)ip;
}

static int next_event(struct sim *s, struct sim_ev *ev) {
  int rc = evq_pop(&s->q, ev);

  if (rc < 0)
    fatal_nomem();
  return rc;
}

static void set_now(struct sim *s, uint64_t t) {
  s->now = t;
  s->stamp = (uint32_t)(t / 1000000) + 1;
}

/* ---------------------------------------------------------------------- */
/* Engines                                                                */
/* ---------------------------------------------------------------------- */

static int cb_rand(void *user_data, uint8_t *dest, size_t len) {
  struct node *n = user_data;

  rng_bytes(&n->rng, dest, len);
  return 0;
}

static void cb_log(void *user_data, int level, const char *msg) {
  struct node *n = user_data;

  fprintf(stderr, "[%10.3f] node %" PRIu32 " <%d> %s\n",
          (double)n->sim->now / 1e9, n->id, level, msg);
}

static void node_service(struct sim *s, uint32_t i);
static void node_schedule(struct sim *s, uint32_t i);

/* --log-node: the device writes of that node, next to its engine's log. */
static void log_update(struct sim *s, uint32_t i, uint32_t j,
                       const wgam_peer_update *u) {
  char buf[WGAM_ADDR_STRLEN];

  fprintf(stderr, "[%10.3f] node %" PRIu32 " device: peer %" PRIu32 "%s%s",
          (double)s->now / 1e9, i, j,
          u->flags & WGAM_PEER_REMOVE_ME ? " remove" : "",
          u->flags & WGAM_PEER_REPLACE_ALLOWEDIPS ? " replace-allowed-ips"
                                                  : "");
  if (u->flags & WGAM_PEER_HAS_ENDPOINT) {
    wgam_addr_format(buf, sizeof(buf), &u->endpoint, 1);
    fprintf(stderr, " endpoint %s", buf);
  }
  if (u->flags & WGAM_PEER_HAS_KEEPALIVE)
    fprintf(stderr, " keepalive %u", u->persistent_keepalive);
  for (size_t a = 0; a < u->nallowedips && a < WGAM_MAX_ALLOWEDIPS; a++) {
    wgam_addr c = u->allowedips[a].addr;

    c.port = 0;
    wgam_addr_format(buf, sizeof(buf), &c, 0);
    fprintf(stderr, " allowed-ip %s/%u", buf, u->allowedips[a].prefixlen);
  }
  fprintf(stderr, "\n");
}

/* --oracle-relay: device @i routes k's address through the first relay
 * (the first one still running). */
static int oracle_wants(const struct sim *s, uint32_t i, uint32_t k) {
  return k != i && !reachable(s, i, k) && !s->nodes[i].relay &&
         !s->nodes[k].relay;
}

static void oracle_add(struct sim *s, uint32_t i, uint32_t k) {
  wgam_peer_update add;

  memset(&add, 0, sizeof(add));
  memcpy(add.pubkey, s->keys[s->relay0], WGAM_KEY_LEN);
  add.nallowedips = 1;
  add.allowedips[0] = s->cidr[k];
  if (s->pfx) {
    add.nallowedips = 2;
    add.allowedips[1] = s->cfg[k].prefixes[0];
  }
  wg_update(s, i, s->relay0, &add);
}

/*
 * --oracle-relay: whatever the engine writes, every pair the model says
 * cannot connect directly is routed through the first relay, on both
 * devices (a reference for the engine's relaying, and a test of the
 * simulated routing and forwarding). Runs after each update of entry @j.
 */
static void oracle_relay(struct sim *s, uint32_t i, uint32_t j,
                         const wgam_peer_update *u) {
  if (!(DP(s, i, s->relay0)->flags & DP_PRESENT))
    return;
  if (j == s->relay0) {
    for (uint32_t k = 0; k < s->n; k++)
      if (oracle_wants(s, i, k) && dev_route(s, i, k) != s->relay0)
        oracle_add(s, i, k);
    return;
  }
  for (size_t a = 0; a < u->nallowedips; a++) {
    const wgam_cidr *c = &u->allowedips[a];
    uint32_t k = addr_ip(&c->addr) - MESH_BASE - 1;

    if (c->addr.family == WGAM_AF_INET && c->prefixlen == 32 && k < s->n &&
        oracle_wants(s, i, k))
      oracle_add(s, i, k);
  }
}

static void apply_update(struct sim *s, uint32_t i, const wgam_peer_update *u) {
  uint32_t j = (uint32_t)u->pubkey[0] | (uint32_t)u->pubkey[1] << 8 |
               (uint32_t)u->pubkey[2] << 16 | (uint32_t)u->pubkey[3] << 24;

  if (j >= s->n || j == i || memcmp(u->pubkey, s->keys[j], WGAM_KEY_LEN)) {
    s->st.bad_update++;
    return;
  }
  s->st.device_writes++;
  if ((int64_t)i == s->p.log_node)
    log_update(s, i, j, u);
  wg_update(s, i, j, u);
  if (s->p.oracle_relay && s->nrelays)
    oracle_relay(s, i, j, u);
}

static void gossip_out(struct sim *s, uint32_t i, const wgam_addr *dst,
                       const uint8_t *buf, size_t len) {
  uint32_t ip, j;

  s->st.gossip_bytes += len;
  s->st.gossip_pkts++;
  digest_mix(s, ((uint64_t)i << 32) ^ len ^ ((uint64_t)buf[len - 1] << 20));
  if (dst->family != WGAM_AF_INET) {
    s->st.bad_dest++;
    return;
  }
  ip = addr_ip(dst);
  if (ip == BCAST_IP) {
    net_broadcast(s, i, buf, len);
    return;
  }
  j = ip - MESH_BASE - 1;
  if (ip <= MESH_BASE || j >= s->n || j == i || dst->port != s->gossip_port) {
    s->st.bad_dest++;
    return;
  }
  wg_send_inner(s, i, j, buf, len);
}

static void node_service(struct sim *s, uint32_t i) {
  struct node *n = &s->nodes[i];
  uint8_t buf[WGAM_MAX_DATAGRAM_LEN];
  wgam_peer_update u;
  wgam_addr dst;
  wgam_ssize len;
  uint32_t wants;

  /* The daemon applies the updates first (flush() in cli/daemon.c). */
  while (s->p.wg_strict && wgam_mesh_next_peer_update(n->mesh, &u) == 1)
    apply_update(s, i, &u);
  while ((len = wgam_mesh_write_pkt(n->mesh, &dst, buf, sizeof(buf), s->now)) >
         0)
    gossip_out(s, i, &dst, buf, (size_t)len);
  if (len < 0) {
    fprintf(stderr, "node %" PRIu32 ": write_pkt: %s\n", i,
            wgam_strerror((int)len));
    s->failed = 1;
  }
  while (wgam_mesh_next_peer_update(n->mesh, &u) == 1)
    apply_update(s, i, &u);
  wants = wgam_mesh_get_wants(n->mesh);
  if ((wants & WGAM_WANT_DEVICE) && !n->dev_pending) {
    n->dev_pending = 1;
    if (evq_push(&s->q, s->now, EV_DEVICE, i, 0, 0))
      fatal_nomem();
  }
  if (wants & WGAM_WANT_STATE) {
    uint8_t *st;

    len = wgam_mesh_write_state(n->mesh, NULL, 0);
    st = malloc(len > 0 ? (size_t)len : 1);
    if (!st)
      fatal_nomem();
    wgam_mesh_write_state(n->mesh, st, (size_t)(len > 0 ? len : 0));
    free(st);
  }
  if (wants & WGAM_WANT_IGD)
    wgam_mesh_ack_igd(n->mesh);
  node_schedule(s, i);
}

/* A timer event at the engine's next expiry, unless one comes sooner. */
static void node_schedule(struct sim *s, uint32_t i) {
  struct node *n = &s->nodes[i];
  wgam_tstamp e = wgam_mesh_get_expiry(n->mesh);

  if (e != WGAM_TSTAMP_NONE && e < n->sched) {
    if (e <= s->now)
      e = s->now;
    n->sched = e;
    if (evq_push(&s->q, e, EV_TIMER, i, 0, 0))
      fatal_nomem();
  }
}

void node_roam_hint(struct sim *s, uint32_t h) {
  struct node *n = &s->nodes[h];

  if (!s->p.roam_hints || !n->started)
    return;
  wgam_mesh_roam_hint(n->mesh, s->now);
  node_schedule(s, h);
}

void node_deliver(struct sim *s, uint32_t h, uint32_t sip, uint16_t sport,
                  const uint8_t *data, size_t len) {
  struct node *n = &s->nodes[h];
  wgam_addr src;
  int rc;

  if (!n->started)
    return;
  addr_v4(&src, sip, sport);
  rc = wgam_mesh_read_pkt(n->mesh, &src, data, len, s->now);
  if (rc < 0) {
    s->st.rejected++;
    if (wgam_err_is_fatal(rc)) {
      fprintf(stderr, "node %" PRIu32 ": read_pkt: %s\n", h, wgam_strerror(rc));
      s->failed = 1;
    }
  } else {
    s->st.delivered++;
  }
  node_service(s, h);
}

/*
 * Node @n's wall clock (Unix seconds) at @t seconds of simulated time: its
 * skew applies to the handshake times its device reports too (the kernel
 * stamps them with the same clock). Never 0, which would mean "never".
 */
static uint64_t wall_clock(const struct node *n, uint64_t t) {
  int64_t w = (int64_t)(SIM_EPOCH + t) + n->skew_s;

  return w > 0 ? (uint64_t)w : 1;
}

/*
 * The allowed IPs of every entry of device @i, in s->aip from
 * s->aipoff[j], s->aipn[j] of them: its own address and prefix when it
 * holds them, then those of other nodes it holds (a relay's entry).
 */
static void list_allowedips(struct sim *s, uint32_t i) {
  const uint32_t *pfx = s->pfx ? &s->pfx[(size_t)i * s->n] : NULL;
  uint32_t off = 0;

  memset(s->aipn, 0, s->n * sizeof(*s->aipn));
  for (uint32_t k = 0; k < s->n; k++) {
    uint32_t x = dev_route(s, i, k);

    if (x != NO_PEER)
      s->aipn[x]++;
    if (pfx && pfx[k])
      s->aipn[pfx[k] - 1]++;
  }
  for (uint32_t j = 0; j < s->n; j++) {
    s->aipoff[j] = off;
    off += s->aipn[j];
    s->aipn[j] = 0;
  }
  for (int pass = 0; pass < 2; pass++)
    for (uint32_t k = 0; k < s->n; k++) {
      uint32_t x = dev_route(s, i, k);
      uint32_t y = pfx && pfx[k] ? pfx[k] - 1 : NO_PEER;

      if (x != NO_PEER && (x == k) == !pass)
        s->aip[s->aipoff[x] + s->aipn[x]++] = s->cidr[k];
      if (y != NO_PEER && (y == k) == !pass)
        s->aip[s->aipoff[y] + s->aipn[y]++] = s->cfg[k].prefixes[0];
    }
}

static void node_read_device(struct sim *s, uint32_t i) {
  struct node *n = &s->nodes[i];
  struct dpeer *row = DP(s, i, 0);
  /* One address per entry, on its own entry: no list to build. */
  int lists = s->nforeign[i] || s->pfx;
  wgam_device dev;
  size_t k = 0;
  int rc;

  if (s->tr)
    trace_read(s, i);
  if (lists)
    list_allowedips(s, i);
  for (uint32_t j = 0; j < s->n; j++) {
    struct dpeer *dp = &row[j];
    wgam_device_peer *d;

    if (!(dp->flags & DP_PRESENT))
      continue;
    d = &s->devbuf[k++];
    memcpy(d->pubkey, s->keys[j], WGAM_KEY_LEN);
    if (dp->ep_ip)
      addr_v4(&d->endpoint, dp->ep_ip, dp->ep_port);
    else
      memset(&d->endpoint, 0, sizeof(d->endpoint));
    d->last_handshake = dp->hs ? wall_clock(n, (dp->hs - 1) / 1000) : 0;
    d->rx_bytes = dp->rx_bytes;
    d->tx_bytes = dp->tx_bytes;
    d->persistent_keepalive = dp->ka;
    if (lists) {
      d->allowedips = s->aipn[j] ? &s->aip[s->aipoff[j]] : NULL;
      d->nallowedips = s->aipn[j];
    } else {
      d->allowedips = (dp->flags & DP_ALLOWED) ? &s->cidr[j] : NULL;
      d->nallowedips = (dp->flags & DP_ALLOWED) ? 1 : 0;
    }
  }
  memset(&dev, 0, sizeof(dev));
  memcpy(dev.pubkey, s->keys[i], WGAM_KEY_LEN);
  dev.has_pubkey = 1;
  dev.listen_port = WG_PORT;
  dev.peers = s->devbuf;
  dev.npeers = k;
  rc = wgam_mesh_observe_device(n->mesh, &dev, s->now,
                                wall_clock(n, s->now / SEC));
  if (rc < 0) {
    fprintf(stderr, "node %" PRIu32 ": observe_device: %s\n", i,
            wgam_strerror(rc));
    s->failed = 1;
  }
  node_service(s, i);
}

/*
 * The engines' memory as the heap sees it: each block's usable size plus
 * the allocator's 8-byte chunk header (glibc), so that the many small
 * blocks (one gossip store per peer) count what they cost, not what was
 * asked for.
 */
#define CHUNK_HEADER 8

static size_t block_cost(void *p) {
  return p ? malloc_usable_size(p) + CHUNK_HEADER : 0;
}

static void *mem_malloc(size_t size, void *user_data) {
  struct sim *s = user_data;
  void *p = malloc(size);

  s->heap += block_cost(p);
  return p;
}

static void mem_free(void *p, void *user_data) {
  struct sim *s = user_data;

  s->heap -= block_cost(p);
  free(p);
}

static void *mem_calloc(size_t nmemb, size_t size, void *user_data) {
  struct sim *s = user_data;
  void *p = calloc(nmemb, size);

  s->heap += block_cost(p);
  return p;
}

static void *mem_realloc(void *old, size_t size, void *user_data) {
  struct sim *s = user_data;
  size_t was = block_cost(old);
  void *p = realloc(old, size);

  if (p || size == 0)
    s->heap = s->heap - was + block_cost(p);
  return p;
}

static int engine_settings(struct sim *s, wgam_settings *st) {
  int rc = s->p.policy == WGAM_POLICY_CLASSIC ? wgam_settings_classic(st)
                                              : wgam_settings_default(st);

  if (rc < 0)
    return rc;
  st->secret = (const uint8_t *)secret;
  st->secretlen = sizeof(secret) - 1;
  st->flags |= WGAM_SETTINGS_LAN_DISCOVERY;
  st->flags &= ~(uint32_t)(WGAM_SETTINGS_PERSIST | WGAM_SETTINGS_IGD);
  st->rand = cb_rand;
  st->log = NULL;
  s->mem.user_data = s;
  s->mem.malloc = mem_malloc;
  s->mem.free = mem_free;
  s->mem.calloc = mem_calloc;
  s->mem.realloc = mem_realloc;
  st->mem = &s->mem;
  if (st->max_peers < s->n)
    st->max_peers = s->n;
  return 0;
}

static void node_start(struct sim *s, uint32_t i) {
  struct node *n = &s->nodes[i];
  wgam_settings st;
  int rc;

  rc = engine_settings(s, &st);
  if (rc == 0) {
    st.user_data = n;
    if ((int64_t)i == s->p.log_node) {
      st.log = cb_log;
      st.log_level = WGAM_LOG_TRACE;
    }
    rc = wgam_mesh_new(&n->mesh, &st, s->now);
  }
  if (rc == 0 && s->p.roam_hints)
    rc = wgam_mesh_set_roam_hints(n->mesh, 1, s->now);
  if (rc == 0)
    rc = wgam_mesh_set_peers(n->mesh, s->cfg, s->n, s->now);
  if (rc < 0) {
    fprintf(stderr, "node %" PRIu32 ": start: %s\n", i, wgam_strerror(rc));
    exit(2);
  }
  n->started = 1;
  if (s->tr)
    trace_start(s, i);
  node_service(s, i);
  if (evq_push(&s->q, s->now + SEC, EV_TICK, i, 0, 0))
    fatal_nomem();
}

/* ---------------------------------------------------------------------- */
/* Metrics                                                                */
/* ---------------------------------------------------------------------- */

static const char *nat_name(int nat) {
  static const char *names[] = {"public", "full-cone", "port-restricted",
                                "symmetric"};

  return names[nat & 3];
}

/* Can a datagram from @a to b's mesh address get there and be accepted:
 * directly, or through a relay holding a session with each end? */
static int dir_reach(struct sim *s, uint32_t a, uint32_t b) {
  uint32_t x = dev_route(s, a, b);

  if (x == NO_PEER)
    return 0;
  if (x == b)
    return wg_live(s, a, b) && dev_route(s, b, a) == a;
  return s->nodes[x].relay && wg_live(s, a, x) && wg_live(s, x, b) &&
         dev_route(s, x, a) == a && dev_route(s, x, b) == b &&
         dev_route(s, b, a) == x;
}

static int pair_reach(struct sim *s, uint32_t a, uint32_t b) {
  return dir_reach(s, a, b) && dir_reach(s, b, a);
}

/* The model: a pair can connect directly, or there is a relay besides the
 * two (relays are public: they connect to everyone). */
static int reach_model(const struct sim *s, uint32_t a, uint32_t b) {
  if (s->nodes[a].dead || s->nodes[b].dead)
    return 0;
  if (s->reach_direct)
    return reachable(s, a, b);
  return reachable(s, a, b) ||
         s->nrelays > (uint32_t)s->nodes[a].relay + s->nodes[b].relay;
}

/* Direct both ways, and each end heard the other since @stamp (a session
 * that outlived a NAT change proves nothing until a packet gets through). */
static int pair_direct_since(struct sim *s, uint32_t a, uint32_t b,
                             uint32_t stamp) {
  return dev_route(s, a, b) == b && dev_route(s, b, a) == a &&
         DP(s, a, b)->rx >= stamp && DP(s, b, a)->rx >= stamp;
}

static void reach_check(struct sim *s, uint32_t a, uint32_t b) {
  size_t bit;

  if (a == b)
    return;
  bit = a < b ? (size_t)a * s->n + b : (size_t)b * s->n + a;
  if ((s->reached[bit >> 3] >> (bit & 7)) & 1 || !pair_reach(s, a, b) ||
      (s->reach_direct && !pair_direct_since(s, a, b, s->cone_stamp)))
    return;
  s->reached[bit >> 3] |= (uint8_t)(1 << (bit & 7));
  if (reach_model(s, a, b) && ++s->reach_ever == s->reach_model_pairs) {
    s->reach_ns = s->now;
    if (!s->p.quiet)
      fprintf(stderr,
              "  [every pair reached at %.3f s, the last %" PRIu32
              " (%s) - %" PRIu32 " (%s): %s]\n",
              (double)s->now / 1e9, a, nat_name(s->nodes[a].nat), b,
              nat_name(s->nodes[b].nat),
              dev_route(s, a, b) == b && dev_route(s, b, a) == a ? "direct"
                                                                 : "relayed");
  }
}

/* A session between @i and @j may complete the pair, or any path that has
 * it as a hop through a relay. */
static void reach_session(struct sim *s, uint32_t i, uint32_t j) {
  if (s->reach_ever == s->reach_model_pairs)
    return;
  reach_check(s, i, j);
  for (uint32_t b = 0; s->nodes[j].relay && b < s->n; b++)
    reach_check(s, i, b);
  for (uint32_t b = 0; s->nodes[i].relay && b < s->n; b++)
    reach_check(s, j, b);
}

/* Node @h heard from @j (--nat-to-cone: the proof a direct path works). */
void metric_rx(struct sim *s, uint32_t h, uint32_t j) {
  if (s->reach_direct && s->reach_ever < s->reach_model_pairs)
    reach_check(s, h, j);
}

/* Device @i moved k's mesh address to another entry. */
void metric_route(struct sim *s, uint32_t i, uint32_t k) {
  if (s->reach_ever == s->reach_model_pairs)
    return;
  reach_check(s, i, k);
  for (uint32_t a = 0; s->nodes[i].relay && a < s->n; a++)
    reach_check(s, a, k);
}

void metric_session(struct sim *s, uint32_t i, uint32_t j) {
  struct dpeer *dp = DP(s, i, j);

  if (s->tr)
    trace_session(s, i, j);
  reach_session(s, i, j);
  if (dp->flags & DP_EVER)
    return;
  dp->flags |= DP_EVER;
  if (!(DP(s, j, i)->flags & DP_EVER))
    return;
  if (!reachable(s, i, j)) {
    s->unreachable_connected++;
    return;
  }
  if (++s->connected_pairs == s->reachable_pairs && s->converged_ns == NEVER) {
    s->converged_ns = s->now;
    s->st.conv_bytes = s->st.gossip_bytes;
    s->st.conv_pkts = s->st.gossip_pkts;
    s->steady_start_ns = s->now + (uint64_t)(s->p.settle_s * 1e9);
    s->steady_end_ns = s->steady_start_ns + (uint64_t)(s->p.window_s * 1e9);
    if (evq_push(&s->q, s->steady_start_ns, EV_MARK, 0, 0, 0) ||
        evq_push(&s->q, s->steady_end_ns, EV_MARK, 1, 0, 0))
      fatal_nomem();
  }
}

/*
 * --kill-at: node @x stops for good (its engine and device fall silent).
 * From then on the reach figures count the pairs of the other nodes, through
 * the remaining relays; heal_s is the time until they all reached each
 * other again.
 */
static void reach_reset(struct sim *s);

static void node_kill(struct sim *s, uint32_t x) {
  struct node *nd = &s->nodes[x];

  nd->dead = 1;
  nd->started = 0;
  if (nd->relay) {
    nd->relay = 0;
    s->nrelays--;
    /* --oracle-relay moves on to the next relay. */
    for (uint32_t r = 0; r < s->n && s->relay0 == x; r++)
      if (s->nodes[r].relay)
        s->relay0 = r;
    for (uint32_t i = 0; s->p.oracle_relay && s->nrelays && i < s->n; i++)
      for (uint32_t k = 0; !s->nodes[i].dead && k < s->n; k++)
        if (oracle_wants(s, i, k) && dev_route(s, i, k) != s->relay0 &&
            (DP(s, i, s->relay0)->flags & DP_PRESENT))
          oracle_add(s, i, k);
  }
  reach_reset(s);
}

/*
 * --reload-at: node @x's peer list is set without the peers it routes
 * through a relay (a reload of its configuration), and @b = 1 with them
 * again --reload-gap later: that end starts afresh for them while the
 * other ends keep their history. heal_s is the time from the re-add until
 * the node reached every other node again.
 */
static void node_reload(struct sim *s, uint32_t x, uint32_t b) {
  struct node *nd = &s->nodes[x];
  wgam_peer_config *cfg = s->cfg;
  size_t n = s->n;
  int rc;

  if (nd->dead || !nd->started)
    return;
  if (!b) {
    cfg = xcalloc(s->n, sizeof(*cfg));
    n = 0;
    for (uint32_t j = 0; j < s->n; j++)
      if (j == x || dev_route(s, x, j) == j)
        cfg[n++] = s->cfg[j];
    fprintf(stderr,
            "wgautomesh-sim: node %" PRIu32 " drops its %zu relayed peers "
            "at %.3f s\n",
            x, (size_t)s->n - n, (double)s->now / 1e9);
  }
  rc = wgam_mesh_set_peers(nd->mesh, cfg, n, s->now);
  if (cfg != s->cfg)
    free(cfg);
  if (rc < 0) {
    fprintf(stderr, "node %" PRIu32 ": reload: %s\n", x, wgam_strerror(rc));
    exit(2);
  }
  node_service(s, x);
  if (b) {
    s->reload_ns = s->now;
    reach_reset(s);
    /* Only the pairs of the reloaded node are to reach each other again. */
    for (uint32_t i = 0; i < s->n; i++)
      for (uint32_t j = i + 1; j < s->n; j++) {
        size_t bit = (size_t)i * s->n + j;

        if (i == x || j == x || !reach_model(s, i, j) ||
            ((s->reached[bit >> 3] >> (bit & 7)) & 1))
          continue;
        s->reached[bit >> 3] |= (uint8_t)(1 << (bit & 7));
        if (++s->reach_ever == s->reach_model_pairs)
          s->reach_ns = s->now;
      }
  }
}

/*
 * Counts the pairs the model can reach from now on, and those that already
 * reach each other. reach_ns is when they all did.
 */
static void reach_reset(struct sim *s) {
  if (s->reach_first_ns == NEVER)
    s->reach_first_ns = s->reach_ns;
  s->reach_ns = NEVER;
  s->reach_ever = s->reach_model_pairs = 0;
  memset(s->reached, 0, ((size_t)s->n * s->n + 7) / 8);
  for (uint32_t a = 0; a < s->n; a++)
    for (uint32_t b = a + 1; b < s->n; b++)
      if (reach_model(s, a, b))
        s->reach_model_pairs++;
  if (s->reach_model_pairs == 0)
    s->reach_ns = s->now;
  for (uint32_t a = 0; a < s->n; a++)
    for (uint32_t b = a + 1; b < s->n; b++)
      reach_check(s, a, b);
}

static int done(const struct sim *s) {
  if (s->converged_ns == NEVER || s->now < s->steady_end_ns)
    return 0;
  if (s->nrelays && s->reach_ns == NEVER)
    return 0;
  if (s->kill_node >= 0 && (s->now < s->kill_ns || s->reach_ns == NEVER))
    return 0;
  if (s->cone_ns != NEVER && (s->now < s->cone_ns || s->reach_ns == NEVER))
    return 0;
  /* After a reload, routes are judged --settle after every pair met. */
  if (s->reload_node >= 0 &&
      (s->reload_ns == NEVER || s->reach_ns == NEVER ||
       s->now < s->reach_ns + (uint64_t)(s->p.settle_s * 1e9)))
    return 0;
  if (s->roam_node >= 0 && (s->now < s->roam_ns || s->recovered_ns == NEVER))
    return 0;
  /* Routes are judged at the end: with relays, not in the middle of the
   * moves a roam starts (peers of the moved node go through a relay while
   * its new address spreads), but once they had --settle to come back. */
  if (s->nrelays && s->roam_node >= 0 &&
      s->now < s->recovered_ns + (uint64_t)(s->p.settle_s * 1e9))
    return 0;
  return 1;
}

static void progress(struct sim *s, double wall0) {
  double t = (double)s->now / 1e9;

  if (s->p.quiet)
    return;
  printf("t=%.0fs connected=%" PRIu64 "/%" PRIu64 " (%.1f%%) "
         "gossip_bytes=%" PRIu64 " handshakes=%" PRIu64 "\n",
         t, s->connected_pairs, s->reachable_pairs,
         s->reachable_pairs
             ? 100.0 * (double)s->connected_pairs / (double)s->reachable_pairs
             : 100.0,
         s->st.gossip_bytes, s->st.handshakes);
  {
    uint64_t out[WGAM_MSG_TYPE_COUNT] = {0};

    for (uint32_t i = 0; i < s->n; i++) {
      wgam_stats st;

      if (!s->nodes[i].mesh)
        continue;
      wgam_mesh_get_stats(s->nodes[i].mesh, &st);
      for (int k = 0; k < WGAM_MSG_TYPE_COUNT; k++)
        out[k] += st.pkts_out[k];
    }
    fprintf(stderr,
            "  [wall %.1fs, events queued %zu; sent ping %" PRIu64
            " pong %" PRIu64 " announce %" PRIu64 " request %" PRIu64
            " lan %" PRIu64 "]\n",
            wall_now() - wall0, s->q.n, out[0], out[1], out[2], out[3], out[4]);
  }
  fflush(stdout);
}

/* ---------------------------------------------------------------------- */
/* Scenario                                                               */
/* ---------------------------------------------------------------------- */

static void shuffle(struct rng *r, uint32_t *v, uint32_t n) {
  for (uint32_t k = n; k > 1; k--) {
    uint32_t m = (uint32_t)rng_below(r, k), t = v[k - 1];

    v[k - 1] = v[m];
    v[m] = t;
  }
}

static int can_connect(const struct sim *s, uint32_t i, uint32_t j,
                       uint32_t npublic) {
  const struct node *a = &s->nodes[i], *b = &s->nodes[j];

  if (a->router >= 0 && a->router == b->router)
    return 1; /* same LAN: broadcast discovery */
  if (a->router < 0 || b->router < 0)
    return 1;
  if (npublic == 0)
    return 0; /* nobody can tell either its peer's mapped address */
  if (a->nat == NAT_SYMMETRIC && b->nat != NAT_FULL_CONE)
    return 0;
  if (b->nat == NAT_SYMMETRIC && a->nat != NAT_FULL_CONE)
    return 0;
  return 1;
}

static struct router *new_router(struct sim *s, uint8_t nat, uint32_t cap,
                                 struct rng *r) {
  struct router *rt = &s->routers[s->nrouters];

  rt->ip = net_alloc_ip(s, -(int32_t)(s->nrouters + 1));
  rt->nat = nat;
  rt->next_port = (uint16_t)(1024 + rng_below(r, 60000));
  rt->hosts = xcalloc(cap, sizeof(*rt->hosts));
  s->nrouters++;
  return rt;
}

static void add_host(struct sim *s, struct router *rt, uint32_t i) {
  struct node *n = &s->nodes[i];

  n->router = (int32_t)(rt - s->routers);
  n->nat = rt->nat;
  n->host = (uint8_t)rt->nhosts;
  rt->hosts[rt->nhosts++] = i;
  n->ns = xcalloc(s->n, sizeof(*n->ns));
}

static size_t probe_engine_mem(struct sim *s) {
  struct node probe = {0};
  wgam_settings st;
  wgam_mesh *m = NULL;
  size_t before = s->heap, used;
  int rc;

  probe.sim = s;
  rng_seed(&probe.rng, s->p.seed, 999);
  rc = engine_settings(s, &st);
  st.user_data = &probe;
  if (rc == 0)
    rc = wgam_mesh_new(&m, &st, 0);
  if (rc == 0)
    rc = wgam_mesh_set_peers(m, s->cfg, s->n, 0);
  if (rc < 0) {
    fprintf(stderr, "engine: %s\n", wgam_strerror(rc));
    exit(2);
  }
  used = s->heap - before;
  wgam_mesh_del(m);
  return used;
}

/*
 * --nat-to-cone: the symmetric NATs become cone NATs. The pairs that can
 * now connect directly must go direct; direct_s is the time until they all
 * did (both routes on the peers' own entries, a session each way).
 */
static void nat_to_cone(struct sim *s) {
  net_nat_to_cone(s);
  for (uint32_t i = 0; i < s->n; i++)
    for (uint32_t j = i + 1; j < s->n; j++)
      if (can_connect(s, i, j, s->npublic)) {
        size_t b1 = (size_t)i * s->n + j, b2 = (size_t)j * s->n + i;

        s->reach[b1 >> 3] |= (uint8_t)(1 << (b1 & 7));
        s->reach[b2 >> 3] |= (uint8_t)(1 << (b2 & 7));
      }
  s->reach_direct = 1;
  s->cone_stamp = s->stamp;
  reach_reset(s);
}

static int setup(struct sim *s, const struct params *p) {
  struct rng r;
  uint32_t n = p->nodes, nnat, nfc, nprc, *perm, *types, npublic, k;
  uint32_t ngroups, gsize;
  double msum;
  size_t emem;
  double need;

  memset(s, 0, sizeof(*s));
  s->p = *p;
  s->n = n;
  s->converged_ns = NEVER;
  s->steady_start_ns = s->steady_end_ns = NEVER;
  s->recovered_ns = NEVER;
  s->reach_ns = NEVER;
  s->reach_first_ns = NEVER;
  s->kill_node = -1;
  s->cone_ns = NEVER;
  s->reload_node = -1;
  s->reload_ns = NEVER;
  s->roam_node = -1;
  s->digest = 0xcbf29ce484222325ULL;
  rng_seed(&r, p->seed, 1);
  rng_seed(&s->net, p->seed, 2);

  s->nodes = xcalloc(n, sizeof(*s->nodes));
  s->routers = xcalloc(n, sizeof(*s->routers));
  s->ip_owner = xcalloc(PUB_MAX, sizeof(*s->ip_owner));
  s->keys = xcalloc(n, sizeof(*s->keys));
  s->cfg = xcalloc(n, sizeof(*s->cfg));
  s->cidr = xcalloc(n, sizeof(*s->cidr));
  s->devbuf = xcalloc(n, sizeof(*s->devbuf));
  if (maptab_init(&s->map))
    fatal_nomem();
  {
    wgam_settings st;

    wgam_settings_default(&st);
    s->gossip_port = st.gossip_port;
  }

  /* Who is behind which NAT. */
  perm = xcalloc(n, sizeof(*perm));
  for (k = 0; k < n; k++)
    perm[k] = k;
  shuffle(&r, perm, n);
  nnat = (uint32_t)llround(p->nat * n);
  if (nnat > n)
    nnat = n;
  msum = p->mix[0] + p->mix[1] + p->mix[2];
  nfc = (uint32_t)llround(nnat * p->mix[0] / msum);
  nprc = (uint32_t)llround(nnat * p->mix[1] / msum);
  if (nfc + nprc > nnat)
    nprc = nnat - nfc;
  types = xcalloc(nnat, sizeof(*types));
  for (k = 0; k < nnat; k++)
    types[k] = k < nfc          ? NAT_FULL_CONE
               : k < nfc + nprc ? NAT_PORT_RESTRICTED
                                : NAT_SYMMETRIC;
  shuffle(&r, types, nnat);
  gsize = p->lan_size < 2 ? 2 : p->lan_size > 250 ? 250 : p->lan_size;
  ngroups = p->lan_groups;
  if ((uint64_t)ngroups * gsize > nnat)
    ngroups = nnat / gsize;
  for (k = 0; k < nnat;) {
    uint32_t take = k < ngroups * gsize ? gsize : 1;
    struct router *rt = new_router(s, (uint8_t)types[k], take, &r);

    for (uint32_t m = 0; m < take; m++)
      add_host(s, rt, perm[k + m]);
    k += take;
  }
  npublic = n - nnat;
  s->npublic = npublic;
  for (uint32_t i = 0; i < n; i++) {
    struct node *nd = &s->nodes[i];

    nd->sim = s;
    nd->id = i;
    nd->sched = WGAM_TSTAMP_NONE;
    rng_seed(&nd->rng, p->seed, 1000 + (uint64_t)i);
    nd->acc_ns =
        (uint64_t)(p->latency_ms * 1e6 * (0.25 + 0.5 * rng_double(&r)));
    if (nd->ns == NULL) {
      nd->router = -1;
      nd->nat = NAT_NONE;
      nd->pub_ip = net_alloc_ip(s, (int32_t)i);
    }
    rng_bytes(&r, s->keys[i], WGAM_KEY_LEN);
    s->keys[i][0] = (uint8_t)i;
    s->keys[i][1] = (uint8_t)(i >> 8);
    s->keys[i][2] = (uint8_t)(i >> 16);
    s->keys[i][3] = (uint8_t)(i >> 24);
    memcpy(s->cfg[i].pubkey, s->keys[i], WGAM_KEY_LEN);
    addr_v4(&s->cfg[i].address, MESH_BASE + i + 1, 0);
    if (nd->router < 0)
      addr_v4(&s->cfg[i].endpoint, nd->pub_ip, WG_PORT);
    s->cidr[i].addr = s->cfg[i].address;
    s->cidr[i].prefixlen = 32;
    if (p->prefixes) {
      s->cfg[i].nprefixes = 1;
      addr_v4(&s->cfg[i].prefixes[0].addr, PFX_BASE + (i << (32 - PFX_LEN)), 0);
      s->cfg[i].prefixes[0].prefixlen = PFX_LEN;
    }
    if ((int64_t)i == p->skew_node)
      nd->skew_s = (int64_t)llround(p->skew_s);
    /* The first public nodes (by index, which is random) are relays. */
    if (nd->router < 0 && s->nrelays < p->relays) {
      if (!s->nrelays)
        s->relay0 = i;
      nd->relay = 1;
      s->cfg[i].relay = 1;
      s->nrelays++;
    }
  }
  free(perm);
  free(types);
  for (uint32_t i = 0; n <= 16 && !p->quiet && i < n; i++)
    fprintf(stderr, "  node %" PRIu32 ": %s%s, router %" PRId32 "\n", i,
            nat_name(s->nodes[i].nat), s->nodes[i].relay ? " relay" : "",
            s->nodes[i].router);
  if (s->nrelays < p->relays)
    fprintf(stderr,
            "wgautomesh-sim: only %" PRIu32 " public nodes to be relays\n",
            s->nrelays);
  if (p->skew_node >= 0)
    fprintf(stderr,
            "wgautomesh-sim: node %" PRId64 " (%s) has its clock %+.0f s off\n",
            p->skew_node,
            s->nodes[p->skew_node].router < 0 ? "public" : "behind NAT",
            p->skew_s);
  s->nforeign = xcalloc(n, sizeof(*s->nforeign));
  s->aip = xcalloc(2 * (size_t)n, sizeof(*s->aip));
  s->aipn = xcalloc(n, sizeof(*s->aipn));
  s->aipoff = xcalloc(n, sizeof(*s->aipoff));
  if (p->prefixes)
    s->pfx = xcalloc((size_t)n * n, sizeof(*s->pfx));

  /* Which pairs can connect directly at all. */
  s->reach = xcalloc(((size_t)n * n + 7) / 8, 1);
  for (uint32_t i = 0; i < n; i++)
    for (uint32_t j = i + 1; j < n; j++) {
      size_t b1 = (size_t)i * n + j, b2 = (size_t)j * n + i;

      if (can_connect(s, i, j, npublic)) {
        s->reach[b1 >> 3] |= (uint8_t)(1 << (b1 & 7));
        s->reach[b2 >> 3] |= (uint8_t)(1 << (b2 & 7));
        s->reachable_pairs++;
      } else {
        s->unreachable_pairs++;
      }
      if (reach_model(s, i, j))
        s->reach_model_pairs++;
    }
  s->reached = xcalloc(((size_t)n * n + 7) / 8, 1);
  if (s->reach_model_pairs == 0)
    s->reach_ns = 0;

  /* Will it fit? A fresh engine, plus the gossip store each peer gets
   * (held out of line; most hold one endpoint). */
  emem = probe_engine_mem(s);
  {
    void *store = malloc(sizeof(wgam_endpoint) + 1);

    emem += (size_t)(n - 1) * block_cost(store);
    free(store);
  }
  need = (double)emem * n + (double)n * n * sizeof(struct dpeer) +
         (double)nnat * n * sizeof(struct natslot) + (double)n * n / 4 +
         (p->prefixes ? (double)n * n * sizeof(*s->pfx) : 0);
  fprintf(stderr,
          "wgautomesh-sim: %" PRIu32 " nodes (%" PRIu32 " public, %" PRIu32
          " NAT: %" PRIu32 " full cone, %" PRIu32 " port-restricted, %" PRIu32
          " symmetric; %" PRIu32 " LANs of %" PRIu32 "), engine %zu B "
          "(%.0f B/peer), simulator %zu B/pair, need ~%.2f GiB\n",
          n, npublic, nnat, nfc, nprc, nnat - nfc - nprc, ngroups, gsize, emem,
          n > 1 ? (double)emem / (n - 1) : 0.0, sizeof(struct dpeer),
          need / 1073741824.0);
  if (need > p->mem_limit_gib * 1073741824.0) {
    double per = n > 1 ? (double)emem / (n - 1) + sizeof(struct dpeer) : 1;

    fprintf(stderr,
            "wgautomesh-sim: %.1f GiB needed, limit %.1f GiB "
            "(--mem-limit-gib); at %.0f B per peer the largest mesh that "
            "fits is about %.0f nodes\n",
            need / 1073741824.0, p->mem_limit_gib, per,
            floor(sqrt(p->mem_limit_gib * 1073741824.0 / per)));
    return -ENOMEM;
  }
  s->dp = calloc((size_t)n * n, sizeof(*s->dp));
  if (!s->dp)
    fatal_nomem();

  /* Roaming node: a NAT-ed cone node alone behind its router, else a
   * public one. */
  if (p->roam_s >= 0) {
    int64_t x = p->roam_node;

    for (uint32_t i = 0; x < 0 && i < n; i++) {
      struct node *nd = &s->nodes[i];

      if (nd->router >= 0 && s->routers[nd->router].nhosts == 1 &&
          nd->nat != NAT_SYMMETRIC)
        x = i;
    }
    if (x < 0)
      x = 0;
    s->roam_node = x;
    s->roam_ns = (uint64_t)(p->roam_s * 1e9);
    fprintf(stderr, "wgautomesh-sim: node %" PRId64 " (%s) roams at %.3f s\n",
            x, nat_name(s->nodes[x].nat), p->roam_s);
    s->rec_in = xcalloc(n, sizeof(*s->rec_in));
    s->rec_out = xcalloc(n, sizeof(*s->rec_out));
    for (uint32_t j = 0; j < n; j++)
      if (j != (uint32_t)x && reachable(s, (uint32_t)x, j))
        s->roam_reach++;
    if (evq_push(&s->q, s->roam_ns, EV_ROAM, (uint32_t)x, 0, 0))
      fatal_nomem();
  }

  if (p->cone_s >= 0) {
    s->cone_ns = (uint64_t)(p->cone_s * 1e9);
    if (evq_push(&s->q, s->cone_ns, EV_NAT_CONE, 0, 0, 0))
      fatal_nomem();
  }
  if (p->kill_s >= 0) {
    s->kill_node = p->kill_node >= 0 ? p->kill_node
                   : s->nrelays      ? (int64_t)s->relay0
                                     : 0;
    s->kill_ns = (uint64_t)(p->kill_s * 1e9);
    fprintf(stderr, "wgautomesh-sim: node %" PRId64 "%s stops at %.3f s\n",
            s->kill_node, s->nodes[s->kill_node].relay ? " (a relay)" : "",
            p->kill_s);
    if (evq_push(&s->q, s->kill_ns, EV_KILL, (uint32_t)s->kill_node, 0, 0))
      fatal_nomem();
  }
  if (p->reload_s >= 0) {
    s->reload_node = p->reload_node;
    for (uint32_t i = 0; s->reload_node < 0 && i < n; i++)
      if (s->nodes[i].nat == 3)
        s->reload_node = i;
    if (s->reload_node < 0)
      s->reload_node = 0;
    fprintf(stderr,
            "wgautomesh-sim: node %" PRId64 " (%s) reloads at %.3f s, peers "
            "back %.3f s later\n",
            s->reload_node, nat_name(s->nodes[s->reload_node].nat), p->reload_s,
            p->reload_gap_s);
    if (evq_push(&s->q, (uint64_t)(p->reload_s * 1e9), EV_RELOAD,
                 (uint32_t)s->reload_node, 0, 0) ||
        evq_push(&s->q, (uint64_t)((p->reload_s + p->reload_gap_s) * 1e9),
                 EV_RELOAD, (uint32_t)s->reload_node, 1, 0))
      fatal_nomem();
  }
  for (uint32_t i = 0; i < n; i++)
    if (evq_push(&s->q, (uint64_t)(p->spread_s * 1e9 * rng_double(&r)),
                 EV_START, i, 0, 0))
      fatal_nomem();
  if (evq_push(&s->q, (uint64_t)(p->progress_s * 1e9), EV_PROGRESS, 0, 0, 0))
    fatal_nomem();
  s->end_ns = (uint64_t)(p->duration_s * 1e9);
  return 0;
}

static void teardown(struct sim *s) {
  struct sim_ev ev;

  while (next_event(s, &ev))
    if (ev.kind == EV_PKT)
      pkt_free(s, ev.arg);
  evq_free(&s->q);
  for (uint32_t i = 0; i < s->n; i++) {
    wgam_mesh_del(s->nodes[i].mesh);
    free(s->nodes[i].ns);
  }
  for (uint32_t r = 0; r < s->nrouters; r++)
    free(s->routers[r].hosts);
  free(s->nodes);
  free(s->routers);
  free(s->ip_owner);
  free(s->keys);
  free(s->cfg);
  free(s->cidr);
  free(s->devbuf);
  free(s->dp);
  free(s->reach);
  free(s->reached);
  free(s->nforeign);
  free(s->aip);
  free(s->aipn);
  free(s->aipoff);
  free(s->pfx);
  free(s->rec_in);
  free(s->rec_out);
  free(s->pkts);
  free(s->pktfree);
  maptab_free(&s->map);
  pay_release(&s->pay);
  trace_free(s);
}

/* Why did this pair not connect? What each side's device and engine hold. */
static void describe_pair(struct sim *s, uint32_t i, uint32_t j) {
  uint32_t ends[2] = {i, j};

  fprintf(stderr,
          "  never connected: %" PRIu32 " (%s, router %" PRId32 ") - %" PRIu32
          " (%s, router %" PRId32 ")\n",
          i, nat_name(s->nodes[i].nat), s->nodes[i].router, j,
          nat_name(s->nodes[j].nat), s->nodes[j].router);
  for (int k = 0; k < 2; k++) {
    uint32_t a = ends[k], b = ends[1 - k];
    const struct dpeer *dp = DP(s, a, b);
    wgam_peer_info info;
    char ep[WGAM_ADDR_STRLEN], kn[WGAM_ADDR_STRLEN];
    wgam_addr x;

    addr_v4(&x, dp->ep_ip, dp->ep_port);
    wgam_addr_format(ep, sizeof(ep), &x, 1);
    fprintf(stderr,
            "    %" PRIu32 "->%" PRIu32 ": device ep %s ka %u flags %#x", a, b,
            dp->ep_ip ? ep : "-", dp->ka, dp->flags);
    if (s->nodes[a].mesh &&
        wgam_mesh_get_peer_info(s->nodes[a].mesh, b < a ? b : b - 1, &info) ==
            0) {
      fprintf(stderr, "; engine state %s src %s tries %u known",
              wgam_peer_state_name(info.state), wgam_source_name(info.source),
              info.tries);
      for (size_t e = 0; e < info.nknown; e++) {
        wgam_addr_format(kn, sizeof(kn), &info.known[e].addr, 1);
        fprintf(stderr, " %s", kn);
      }
      if (info.lan_endpoint.family) {
        wgam_addr_format(kn, sizeof(kn), &info.lan_endpoint, 1);
        fprintf(stderr, " lan %s", kn);
      }
    }
    fprintf(stderr, "\n");
  }
}

/* Why can @a not reach @b at the end? */
static void describe_route(struct sim *s, uint32_t a, uint32_t b) {
  uint32_t x = dev_route(s, a, b);
  wgam_peer_info info;

  fprintf(stderr, "  at the end %" PRIu32 " (%s) -> %" PRIu32 " (%s): ", a,
          nat_name(s->nodes[a].nat), b, nat_name(s->nodes[b].nat));
  if (x == NO_PEER)
    fprintf(stderr, "no route");
  else if (x == b)
    fprintf(stderr, "direct, session %s, %" PRIu32 " accepts it: %s",
            wg_live(s, a, b) ? "live" : "down", b,
            dev_route(s, b, a) == a ? "yes" : "no");
  else
    fprintf(stderr,
            "via %" PRIu32 "%s, session %s; there to %" PRIu32
            " %s, session %s; %" PRIu32 " accepts it: %s",
            x,
            s->nodes[x].dead    ? " (stopped)"
            : s->nodes[x].relay ? " (relay)"
                                : " (not a relay)",
            wg_live(s, a, x) ? "live" : "down", b,
            dev_route(s, x, b) == b ? "direct" : "not direct",
            wg_live(s, x, b) ? "live" : "down", b,
            dev_route(s, b, a) == x ? "yes" : "no");
  if (s->nodes[a].mesh &&
      wgam_mesh_get_peer_info(s->nodes[a].mesh, b < a ? b : b - 1, &info) == 0)
    fprintf(stderr, "; engine: %s, %s, route changes %" PRIu64,
            wgam_peer_state_name(info.state), wgam_route_name(info.route),
            info.route_changes);
  fprintf(stderr, "\n");
}

static void collect(struct sim *s, struct result *res, double wall) {
  double conv, steady;
  uint64_t peers = 0;
  unsigned ndescribed = 0;

  memset(res, 0, sizeof(*res));
  res->policy = s->p.policy;
  res->nodes = s->n;
  res->end_s = (double)s->now / 1e9;
  res->converged_s =
      s->converged_ns == NEVER ? -1 : (double)s->converged_ns / 1e9;
  if (s->roam_node < 0)
    res->recovered_s = NAN;
  else if (s->recovered_ns == NEVER)
    res->recovered_s = -1;
  else
    res->recovered_s = (double)(s->recovered_ns - s->roam_ns) / 1e9;
  conv = s->converged_ns == NEVER ? (double)s->now / 1e9 : res->converged_s;
  if (conv > 0) {
    uint64_t b =
        s->converged_ns == NEVER ? s->st.gossip_bytes : s->st.conv_bytes;
    uint64_t pk =
        s->converged_ns == NEVER ? s->st.gossip_pkts : s->st.conv_pkts;

    res->gossip_bytes_per_node_s = (double)b / s->n / conv;
    res->gossip_pkts_per_node_s = (double)pk / s->n / conv;
  }
  res->steady_bytes_per_node_s = res->steady_pkts_per_node_s = NAN;
  if (s->steady_end_ns != NEVER && s->now >= s->steady_end_ns) {
    steady = s->p.window_s;
    res->steady_bytes_per_node_s =
        (double)(s->st.steady_bytes0) / s->n / steady;
    res->steady_pkts_per_node_s = (double)(s->st.steady_pkts0) / s->n / steady;
  }
  for (uint32_t i = 0; i < s->n; i++)
    if (s->nodes[i].mesh)
      peers += wgam_mesh_get_npeers(s->nodes[i].mesh);
  res->mem_per_peer_bytes = peers ? (double)s->heap / (double)peers : 0;
  res->device_writes = s->st.device_writes;
  for (uint32_t i = 0; i < s->n; i++)
    if (s->nodes[i].mesh) {
      wgam_stats st;

      wgam_mesh_get_stats(s->nodes[i].mesh, &st);
      res->relay_switches += st.relay_switches;
    }
  res->reachable_pairs = s->reachable_pairs;
  res->unreachable_pairs = s->unreachable_pairs;
  res->unreachable_connected = s->unreachable_connected;
  /* Sessions alive now, and what the engines think of the pairs that
   * cannot connect. */
  for (uint32_t i = 0; i < s->n; i++)
    for (uint32_t j = i + 1; j < s->n; j++) {
      const struct dpeer *a = DP(s, i, j), *b = DP(s, j, i);

      if (reachable(s, i, j)) {
        if (s->converged_ns == NEVER && !s->p.quiet &&
            !((a->flags & DP_EVER) && (b->flags & DP_EVER)))
          describe_pair(s, i, j);
        if (a->hs && b->hs && age(s, a->hs) < WG_REJECT_AFTER_TIME &&
            age(s, b->hs) < WG_REJECT_AFTER_TIME)
          res->connected_end++;
      } else if (s->p.check && s->nodes[i].mesh) {
        wgam_peer_info info;

        /* A relayed peer may count as connected. */
        if (wgam_mesh_get_peer_info(s->nodes[i].mesh, j - 1, &info) == 0 &&
            (info.connected || info.state == WGAM_PEER_CONNECTED) &&
            info.route == WGAM_ROUTE_DIRECT)
          res->engine_connected_unreachable++;
      }
    }
  res->reach_s = s->reach_ns == NEVER ? -1 : (double)s->reach_ns / 1e9;
  res->heal_s = res->direct_s = NAN;
  if (s->cone_ns != NEVER && s->now >= s->cone_ns) {
    res->reach_s =
        s->reach_first_ns == NEVER ? -1 : (double)s->reach_first_ns / 1e9;
    res->direct_s =
        s->reach_ns == NEVER ? -1 : (double)(s->reach_ns - s->cone_ns) / 1e9;
  }
  res->live_pairs = (uint64_t)s->n * (s->n - 1) / 2;
  if (s->kill_node >= 0 && s->now >= s->kill_ns) {
    res->reach_s =
        s->reach_first_ns == NEVER ? -1 : (double)s->reach_first_ns / 1e9;
    res->heal_s =
        s->reach_ns == NEVER ? -1 : (double)(s->reach_ns - s->kill_ns) / 1e9;
    res->live_pairs -= s->n - 1;
  }
  if (s->reload_ns != NEVER) {
    res->reach_s =
        s->reach_first_ns == NEVER ? -1 : (double)s->reach_first_ns / 1e9;
    res->heal_s =
        s->reach_ns == NEVER ? -1 : (double)(s->reach_ns - s->reload_ns) / 1e9;
  }
  res->reach_model_pairs = s->reach_model_pairs;
  for (uint32_t i = 0; i < s->n; i++)
    for (uint32_t j = i + 1; j < s->n; j++) {
      int reach = pair_reach(s, i, j);
      int relayed = dev_route(s, i, j) != j || dev_route(s, j, i) != i;

      res->reach_end += reach;
      res->relayed_end += reach && relayed;
      /* Not reached, or relayed where it must be direct. */
      if ((!reach || (s->reach_direct && relayed)) && s->nrelays &&
          !s->p.quiet && reach_model(s, i, j) && ndescribed++ < 10) {
        describe_route(s, i, j);
        describe_route(s, j, i);
      }
    }
  /* A network behind a peer goes where the peer's address goes. */
  for (uint32_t i = 0; s->pfx && i < s->n; i++)
    for (uint32_t k = 0; k < s->n; k++)
      if (k != i && (s->pfx[(size_t)i * s->n + k] == 0 ||
                     s->pfx[(size_t)i * s->n + k] - 1 != dev_route(s, i, k)))
        res->prefix_misrouted++;
  res->digest = s->digest;
  res->wall_s = wall;
  res->events = s->q.seq;
  res->ok = !s->failed;
}

static int run(const struct params *p, struct result *res) {
  struct sim *s = xcalloc(1, sizeof(*s));
  const struct sim_ev *pe;
  struct sim_ev ev;
  double wall0 = wall_now();
  int rc;

  rc = setup(s, p);
  if (rc == 0 &&
      trace_init(s, p->trace_last, p->trace_csv, p->trace_a, p->trace_b) < 0)
    fatal_nomem();
  if (rc < 0) {
    teardown(s);
    free(s);
    return rc;
  }
  while (!s->failed && next_event(s, &ev)) {
    if (ev.t > s->end_ns) {
      if (ev.kind == EV_PKT)
        pkt_free(s, ev.arg);
      break;
    }
    set_now(s, ev.t);
    /* Packets arrive in an order unrelated to where their records and
     * their receivers' device state lie in memory, and cache misses on them
     * were the largest part of the simulator's own time (net_arrive() was
     * 8 % of a 1,000-node run, three quarters of it on these two loads).
     * The queue knows the next events: fetch the record of the one after
     * next, and what the next one will touch. (Written out here: in a
     * function of its own, GCC deems the prefetches side-effect free and
     * drops the call.) */
    if ((pe = evq_ahead(&s->q, 1)) && pe->kind == EV_PKT)
      __builtin_prefetch(&s->pkts[pe->arg]);
    if ((pe = evq_ahead(&s->q, 0)) && pe->kind == EV_PKT) {
      const struct pkt *pp = &s->pkts[pe->arg];
      const struct dpeer *dp = DP(s, pe->b, pe->a);

      if (pp->data)
        __builtin_prefetch(pp->data);
      __builtin_prefetch(dp);
      __builtin_prefetch(&dp->flags);
    }
    switch (ev.kind) {
    case EV_START:
      if (!s->nodes[ev.a].dead)
        node_start(s, ev.a);
      break;
    case EV_TIMER: {
      struct node *n = &s->nodes[ev.a];

      if (ev.t != n->sched || n->dead)
        break; /* superseded by an earlier deadline */
      n->sched = WGAM_TSTAMP_NONE;
      if (wgam_mesh_get_expiry(n->mesh) <= s->now) {
        rc = wgam_mesh_handle_expiry(n->mesh, s->now);
        if (rc < 0) {
          fprintf(stderr, "node %" PRIu32 ": handle_expiry: %s\n", ev.a,
                  wgam_strerror(rc));
          s->failed = 1;
        }
        if (wgam_mesh_get_expiry(n->mesh) <= s->now)
          s->st.expiry_loops++;
      }
      node_service(s, ev.a);
      /* An engine whose deadline stays in the past would spin: push it
       * one millisecond on. */
      if (n->sched == s->now) {
        n->sched = s->now + 1000000;
        if (evq_push(&s->q, n->sched, EV_TIMER, ev.a, 0, 0))
          fatal_nomem();
      }
      break;
    }
    case EV_DEVICE:
      s->nodes[ev.a].dev_pending = 0;
      if (!s->nodes[ev.a].dead)
        node_read_device(s, ev.a);
      break;
    case EV_KILL:
      node_kill(s, ev.a);
      break;
    case EV_RELOAD:
      node_reload(s, ev.a, ev.b);
      break;
    case EV_NAT_CONE:
      nat_to_cone(s);
      break;
    case EV_TICK:
      if (s->nodes[ev.a].dead)
        break;
      wg_tick(s, ev.a);
      if (evq_push(&s->q, s->now + SEC, EV_TICK, ev.a, 0, 0))
        fatal_nomem();
      break;
    case EV_PKT:
      net_arrive(s, ev.a, ev.b, ev.arg);
      break;
    case EV_ROAM:
      s->roam_stamp = s->stamp;
      net_roam(s, ev.a);
      if (s->roam_reach == 0)
        s->recovered_ns = s->now;
      break;
    case EV_PROGRESS:
      progress(s, wall0);
      if (evq_push(&s->q, s->now + (uint64_t)(p->progress_s * 1e9), EV_PROGRESS,
                   0, 0, 0))
        fatal_nomem();
      break;
    case EV_MARK:
      if (ev.a == 0) {
        s->st.steady_bytes0 = s->st.gossip_bytes;
        s->st.steady_pkts0 = s->st.gossip_pkts;
      } else {
        s->st.steady_bytes0 = s->st.gossip_bytes - s->st.steady_bytes0;
        s->st.steady_pkts0 = s->st.gossip_pkts - s->st.steady_pkts0;
      }
      break;
    }
    if (done(s))
      break;
  }
  if (!p->quiet)
    fprintf(stderr,
            "  [drops: no session %" PRIu64 ", no endpoint %" PRIu64
            ", source %" PRIu64 ", destination/NAT %" PRIu64 ", loss %" PRIu64
            ", no peer %" PRIu64 "; rejected by engines %" PRIu64
            "; bad dest %" PRIu64 ", bad updates %" PRIu64
            ", expiry loops %" PRIu64 "; heap peak %zu]\n"
            "  [routing: no route %" PRIu64 ", source not allowed %" PRIu64
            ", not forwarded %" PRIu64 "; relayed %" PRIu64 "]\n",
            s->st.drop_nosession, s->st.drop_noep, s->st.drop_src,
            s->st.drop_dst, s->st.drop_loss, s->st.drop_nopeer, s->st.rejected,
            s->st.bad_dest, s->st.bad_update, s->st.expiry_loops, s->q.peak,
            s->st.drop_noroute, s->st.drop_allowedip, s->st.drop_forward,
            s->st.relayed);
  trace_report(s);
  collect(s, res, wall_now() - wall0);
  teardown(s);
  free(s);
  return 0;
}

/* ---------------------------------------------------------------------- */
/* Command line                                                           */
/* ---------------------------------------------------------------------- */

static const char *policy_name(int policy) {
  return policy == WGAM_POLICY_CLASSIC ? "classic" : "fast";
}

static void fmt_s(char *buf, size_t len, double v) {
  if (isnan(v))
    snprintf(buf, len, "none");
  else if (v < 0)
    snprintf(buf, len, "never");
  else
    snprintf(buf, len, "%.3f", v);
}

/* Pairs that can reach each other at the end, directly or relayed. */
static double reach_share(const struct result *r) {
  return r->live_pairs ? (double)r->reach_end / (double)r->live_pairs : 1.0;
}

/* " heal_s=..." after a --kill-at or --reload-at, " direct_s=..." after a
 * --nat-to-cone, else "". */
static const char *heal_kv(const struct params *p, const struct result *r,
                           char *buf, size_t len) {
  char v[32];

  buf[0] = 0;
  if (p->kill_s >= 0 || p->reload_s >= 0) {
    fmt_s(v, sizeof(v), r->heal_s);
    snprintf(buf, len, " heal_s=%s", v);
  } else if (p->cone_s >= 0) {
    fmt_s(v, sizeof(v), r->direct_s);
    snprintf(buf, len, " direct_s=%s", v);
  }
  return buf;
}

static void print_result(const struct params *p, const struct result *r,
                         const char *prefix) {
  char conv[32], rec[32], reach[32], pfx[48] = "", kill[96];

  fmt_s(conv, sizeof(conv), r->converged_s);
  fmt_s(rec, sizeof(rec), r->recovered_s);
  fmt_s(reach, sizeof(reach), r->reach_s);
  if (p->prefixes)
    snprintf(pfx, sizeof(pfx), " prefix_misrouted=%" PRIu64,
             r->prefix_misrouted);
  heal_kv(p, r, kill, sizeof(kill));
  if (p->relays)
    snprintf(kill + strlen(kill), sizeof(kill) - strlen(kill),
             " relay_switches=%" PRIu64, r->relay_switches);
  printf("%spolicy=%s nodes=%" PRIu32 " converged_s=%s recovered_s=%s "
         "gossip_bytes_per_node_s=%.1f gossip_pkts_per_node_s=%.2f "
         "steady_bytes_per_node_s=%.1f steady_pkts_per_node_s=%.2f "
         "mem_per_peer_bytes=%.0f device_writes=%" PRIu64
         " unreachable_pairs=%" PRIu64 " reachable_pairs=%" PRIu64
         " connected_at_end=%" PRIu64 " unreachable_connected=%" PRIu64
         " reach_s=%s reachable_share=%.4f relayed_at_end=%" PRIu64
         "%s%s sim_end_s=%.3f digest=%016" PRIx64 "\n",
         prefix, policy_name(r->policy), r->nodes, conv, rec,
         r->gossip_bytes_per_node_s, r->gossip_pkts_per_node_s,
         r->steady_bytes_per_node_s, r->steady_pkts_per_node_s,
         r->mem_per_peer_bytes, r->device_writes, r->unreachable_pairs,
         r->reachable_pairs, r->connected_end, r->unreachable_connected, reach,
         reach_share(r), r->relayed_end, kill, pfx, r->end_s, r->digest);
  fprintf(stderr, "  [%s: %.1f s of wall time, %" PRIu64 " events]\n",
          policy_name(r->policy), r->wall_s, r->events);
}

static int check_result(const struct params *p, const struct result *r) {
  int ok = r->ok;

  if (r->converged_s < 0) {
    fprintf(stderr, "CHECK FAILED: %s did not converge\n",
            policy_name(r->policy));
    ok = 0;
  }
  if (r->unreachable_connected || r->engine_connected_unreachable) {
    fprintf(stderr,
            "CHECK FAILED: %" PRIu64 " pairs the model says cannot connect "
            "had a session, %" PRIu64 " are connected for their engine\n",
            r->unreachable_connected, r->engine_connected_unreachable);
    ok = 0;
  }
  if (r->recovered_s < 0) {
    fprintf(stderr,
            "CHECK FAILED: %s: the roaming node was not reached again\n",
            policy_name(r->policy));
    ok = 0;
  }
  if (p->expect_unreachable && r->unreachable_pairs == 0) {
    fprintf(stderr, "CHECK FAILED: no pair is unreachable\n");
    ok = 0;
  }
  return ok;
}

static int check_relay(const struct params *p, const struct result *r) {
  uint64_t pairs = r->live_pairs;
  int ok = r->ok;

  if (r->reach_s < 0) {
    fprintf(stderr,
            "CHECK FAILED: %s: not every pair the model can reach (%" PRIu64
            " of %" PRIu64 ") was reached, directly or relayed\n",
            policy_name(r->policy), r->reach_model_pairs, pairs);
    ok = 0;
  }
  if (r->reach_end != pairs) {
    fprintf(stderr,
            "CHECK FAILED: %s: %" PRIu64 " of %" PRIu64
            " pairs reach each other at the end (%" PRIu64 " relayed)\n",
            policy_name(r->policy), r->reach_end, pairs, r->relayed_end);
    ok = 0;
  }
  if (p->cone_s >= 0 && !(r->direct_s >= 0)) {
    fprintf(stderr,
            "CHECK FAILED: %s: the pairs that could connect directly once "
            "the NATs were cone NATs did not all go direct\n",
            policy_name(r->policy));
    ok = 0;
  }
  if (p->kill_s >= 0 && !(r->heal_s >= 0)) {
    fprintf(stderr,
            "CHECK FAILED: %s: the pairs did not all reach each other "
            "again after a node stopped\n",
            policy_name(r->policy));
    ok = 0;
  }
  if (p->reload_s >= 0 && !(r->heal_s >= 0)) {
    fprintf(stderr,
            "CHECK FAILED: %s: the pairs did not all reach each other "
            "again after a node's peers were removed and added back\n",
            policy_name(r->policy));
    ok = 0;
  }
  if (p->prefixes && r->prefix_misrouted) {
    fprintf(stderr,
            "CHECK FAILED: %s: %" PRIu64 " prefixes not routed where their "
            "peer's address is\n",
            policy_name(r->policy), r->prefix_misrouted);
    ok = 0;
  }
  return ok;
}

static void usage(FILE *f) {
  fprintf(f,
          "usage: wgautomesh-sim [options]\n"
          "  --nodes N          mesh size (default 100)\n"
          "  --nat F            fraction of nodes behind NAT (default 0.3)\n"
          "  --nat-mix A:B:C    full cone : port-restricted : symmetric "
          "(default 40:40:20)\n"
          "  --nat-timeout S    NAT mapping timeout (default 60)\n"
          "  --lan-groups K     K LANs of --lan-size NAT-ed hosts sharing a "
          "router (default 0)\n"
          "  --lan-size M       hosts per LAN (default 4)\n"
          "  --loss P           packet loss probability (default 0)\n"
          "  --latency-ms L     mean one-way latency (default 20)\n"
          "  --roam T           a node's public address changes at T s\n"
          "  --roam-node I      which node roams (default: a NAT-ed cone one)\n"
          "  --duration S       simulated time limit (default 900)\n"
          "  --settle S         wait after convergence before the steady "
          "window (default 30)\n"
          "  --window S         steady-state measurement window (default 60)\n"
          "  --spread S         nodes start within S seconds (default 1)\n"
          "  --policy P         fast (ours), classic, or both (default fast)\n"
          "  --seed N           (default 1)\n"
          "  --progress S       progress line every S s (default 5)\n"
          "  --mem-limit-gib G  refuse to run above this (default 20)\n"
          "  --log-node I       engine log of node I on stderr\n"
          "  --quiet            only the result lines\n"
          "  --check            exit 1 unless every connectable pair "
          "connected and no other did,\n"
          "                     and a roaming node was reached again\n"
          "  --expect-unreachable  with --check: some pairs must be "
          "unreachable\n"
          "  --relays K         the first K public nodes are relays in "
          "everyone's config\n"
          "  --prefixes         every node routes a /%d of 100.96.0.0/11 "
          "besides its address\n"
          "  --check-relay      exit 1 unless every pair reaches every other "
          "at the end (directly or relayed)\n"
          "  --oracle-relay     the simulator itself routes every pair that "
          "cannot connect\n"
          "                     directly through the first relay, whatever "
          "the engines write\n"
          "  --skew-node I      node I's wall clock is off ...\n"
          "  --skew-s S         ... by S seconds (may be negative)\n"
          "  --kill-at T        a node stops for good at T s (heal_s: until "
          "the others all\n"
          "                     reach each other again)\n"
          "  --kill-node I      which node stops (default: the first "
          "relay)\n"
          "  --nat-to-cone T    the symmetric NATs become port-restricted "
          "cone NATs at T s\n"
          "                     (direct_s: until every pair that can is "
          "direct); not with --kill-at\n"
          "  --reload-at T      a node's peer list drops the peers it relays "
          "at T s and has\n"
          "                     them back --reload-gap S later (default 2; "
          "heal_s: from then\n"
          "                     until the node reached every other again)\n"
          "  --reload-node I    which node (default: the first behind a "
          "symmetric NAT)\n"
          "  --trace-last K     at the end: pairs connected per 100 ms, what "
          "the pairs of the last\n"
          "                     quarter had in common, and the K last pairs' "
          "handshake history\n"
          "  --roam-hints       the engines get roam hints: a device that "
          "moves an entry to a\n"
          "                     new source tells its engine, as the "
          "daemon's roam watch does\n"
          "  --wg-strict        WireGuard details the default model leaves "
          "out: answering an\n"
          "                     initiation while ours is under way makes the "
          "response to ours\n"
          "                     refused (crossing); a handshake due without "
          "endpoint spends\n"
          "                     the initiation (none before the retry, 5 s); "
          "peer updates are\n"
          "                     applied before the datagrams, as the daemon "
          "does\n"
          "  --trace-csv FILE   at the end: every connectable pair's "
          "handshake history, one line each\n"
          "  --trace-pair A:B   every device event of the pair A, B on "
          "stderr\n",
          PFX_LEN);
}

int main(int argc, char **argv) {
  static const struct option opts[] = {
      {"nodes", required_argument, NULL, 'n'},
      {"nat", required_argument, NULL, 'N'},
      {"nat-mix", required_argument, NULL, 'x'},
      {"nat-timeout", required_argument, NULL, 'T'},
      {"lan-groups", required_argument, NULL, 'g'},
      {"lan-size", required_argument, NULL, 'G'},
      {"loss", required_argument, NULL, 'l'},
      {"latency-ms", required_argument, NULL, 'L'},
      {"roam", required_argument, NULL, 'r'},
      {"roam-node", required_argument, NULL, 'R'},
      {"duration", required_argument, NULL, 'd'},
      {"settle", required_argument, NULL, 'S'},
      {"window", required_argument, NULL, 'w'},
      {"spread", required_argument, NULL, 'a'},
      {"policy", required_argument, NULL, 'p'},
      {"seed", required_argument, NULL, 's'},
      {"progress", required_argument, NULL, 'P'},
      {"mem-limit-gib", required_argument, NULL, 'M'},
      {"log-node", required_argument, NULL, 'o'},
      {"quiet", no_argument, NULL, 'q'},
      {"check", no_argument, NULL, 'c'},
      {"expect-unreachable", no_argument, NULL, 'u'},
      {"relays", required_argument, NULL, 'K'},
      {"prefixes", no_argument, NULL, 'X'},
      {"check-relay", no_argument, NULL, 'C'},
      {"oracle-relay", no_argument, NULL, 'O'},
      {"skew-node", required_argument, NULL, 'k'},
      {"skew-s", required_argument, NULL, 'W'},
      {"kill-at", required_argument, NULL, 'Z'},
      {"kill-node", required_argument, NULL, 'z'},
      {"nat-to-cone", required_argument, NULL, 'y'},
      {"reload-at", required_argument, NULL, 'A'},
      {"reload-node", required_argument, NULL, 'B'},
      {"reload-gap", required_argument, NULL, 'j'},
      {"trace-last", required_argument, NULL, 'F'},
      {"trace-pair", required_argument, NULL, 'f'},
      {"trace-csv", required_argument, NULL, 'V'},
      {"wg-strict", no_argument, NULL, 'Q'},
      {"roam-hints", no_argument, NULL, 'H'},
      {"help", no_argument, NULL, 'h'},
      {NULL, 0, NULL, 0},
  };
  struct params p = {
      .nodes = 100,
      .nat = 0.3,
      .mix = {40, 40, 20},
      .lan_size = 4,
      .latency_ms = 20,
      .roam_s = -1,
      .roam_node = -1,
      .duration_s = 900,
      .settle_s = 30,
      .window_s = 60,
      .progress_s = 5,
      .spread_s = 1,
      .nat_timeout_s = 60,
      .seed = 1,
      .policy = WGAM_POLICY_FAST,
      .log_node = -1,
      .mem_limit_gib = 20,
      .skew_node = -1,
      .kill_node = -1,
      .kill_s = -1,
      .cone_s = -1,
      .reload_node = -1,
      .reload_s = -1,
      .reload_gap_s = 2,
      .trace_a = -1,
      .trace_b = -1,
  };
  struct result res[2];
  int both = 0, c, ok = 1;

  while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
    switch (c) {
    case 'n':
      p.nodes = (uint32_t)strtoul(optarg, NULL, 10);
      break;
    case 'N':
      p.nat = strtod(optarg, NULL);
      break;
    case 'x':
      if (sscanf(optarg, "%lf:%lf:%lf", &p.mix[0], &p.mix[1], &p.mix[2]) != 3 ||
          p.mix[0] < 0 || p.mix[1] < 0 || p.mix[2] < 0 ||
          p.mix[0] + p.mix[1] + p.mix[2] <= 0) {
        fprintf(stderr, "bad --nat-mix\n");
        return 2;
      }
      break;
    case 'T':
      p.nat_timeout_s = strtod(optarg, NULL);
      break;
    case 'g':
      p.lan_groups = (uint32_t)strtoul(optarg, NULL, 10);
      break;
    case 'G':
      p.lan_size = (uint32_t)strtoul(optarg, NULL, 10);
      break;
    case 'l':
      p.loss = strtod(optarg, NULL);
      break;
    case 'L':
      p.latency_ms = strtod(optarg, NULL);
      break;
    case 'r':
      p.roam_s = strtod(optarg, NULL);
      break;
    case 'R':
      p.roam_node = strtoll(optarg, NULL, 10);
      break;
    case 'd':
      p.duration_s = strtod(optarg, NULL);
      break;
    case 'S':
      p.settle_s = strtod(optarg, NULL);
      break;
    case 'w':
      p.window_s = strtod(optarg, NULL);
      break;
    case 'a':
      p.spread_s = strtod(optarg, NULL);
      break;
    case 'p':
      if (!strcmp(optarg, "fast") || !strcmp(optarg, "ours"))
        p.policy = WGAM_POLICY_FAST;
      else if (!strcmp(optarg, "classic"))
        p.policy = WGAM_POLICY_CLASSIC;
      else if (!strcmp(optarg, "both"))
        both = 1;
      else {
        fprintf(stderr, "bad --policy %s\n", optarg);
        return 2;
      }
      break;
    case 's':
      p.seed = strtoull(optarg, NULL, 10);
      break;
    case 'P':
      p.progress_s = strtod(optarg, NULL);
      break;
    case 'M':
      p.mem_limit_gib = strtod(optarg, NULL);
      break;
    case 'o':
      p.log_node = strtoll(optarg, NULL, 10);
      break;
    case 'q':
      p.quiet = 1;
      break;
    case 'c':
      p.check = 1;
      break;
    case 'u':
      p.expect_unreachable = 1;
      break;
    case 'K':
      p.relays = (uint32_t)strtoul(optarg, NULL, 10);
      break;
    case 'X':
      p.prefixes = 1;
      break;
    case 'C':
      p.check_relay = 1;
      break;
    case 'O':
      p.oracle_relay = 1;
      break;
    case 'k':
      p.skew_node = strtoll(optarg, NULL, 10);
      break;
    case 'W':
      p.skew_s = strtod(optarg, NULL);
      break;
    case 'Z':
      p.kill_s = strtod(optarg, NULL);
      break;
    case 'z':
      p.kill_node = strtoll(optarg, NULL, 10);
      break;
    case 'y':
      p.cone_s = strtod(optarg, NULL);
      break;
    case 'A':
      p.reload_s = strtod(optarg, NULL);
      break;
    case 'B':
      p.reload_node = strtoll(optarg, NULL, 10);
      break;
    case 'j':
      p.reload_gap_s = strtod(optarg, NULL);
      break;
    case 'F':
      p.trace_last = (uint32_t)strtoul(optarg, NULL, 10);
      break;
    case 'Q':
      p.wg_strict = 1;
      break;
    case 'H':
      p.roam_hints = 1;
      break;
    case 'V':
      p.trace_csv = optarg;
      break;
    case 'f':
      if (sscanf(optarg, "%" SCNd64 ":%" SCNd64, &p.trace_a, &p.trace_b) != 2 ||
          p.trace_a < 0 || p.trace_b < 0 || p.trace_a == p.trace_b) {
        fprintf(stderr, "bad --trace-pair\n");
        return 2;
      }
      break;
    case 'h':
      usage(stdout);
      return 0;
    default:
      usage(stderr);
      return 2;
    }
  }
  if (optind < argc || p.nodes < 2 || p.nodes > 100000 || p.nat < 0 ||
      p.nat > 1 || p.loss < 0 || p.loss >= 1 || p.latency_ms < 0 ||
      p.progress_s <= 0 || p.duration_s <= 0 || p.nat_timeout_s <= 0 ||
      p.window_s <= 0 || p.settle_s < 0 || p.spread_s < 0 ||
      (p.roam_node >= (int64_t)p.nodes) || p.skew_node >= (int64_t)p.nodes ||
      p.kill_node >= (int64_t)p.nodes || !(p.kill_s >= 0 || p.kill_s == -1) ||
      !(p.cone_s >= 0 || p.cone_s == -1) || (p.cone_s >= 0 && p.kill_s >= 0) ||
      !(p.reload_s >= 0 || p.reload_s == -1) || !(p.reload_gap_s >= 0) ||
      p.reload_node >= (int64_t)p.nodes || p.trace_a >= (int64_t)p.nodes ||
      p.trace_b >= (int64_t)p.nodes ||
      (p.reload_s >= 0 && (p.kill_s >= 0 || p.cone_s >= 0)) ||
      !isfinite(p.skew_s) || fabs(p.skew_s) > 1e11 ||
      (p.prefixes && p.nodes > 1u << (32 - 11 - (32 - PFX_LEN)))) {
    usage(stderr);
    return 2;
  }
  if (both)
    p.policy = WGAM_POLICY_FAST;
  if (run(&p, &res[0]) < 0)
    return 2;
  if (!p.quiet || both)
    print_result(&p, &res[0], "");
  if (p.check)
    ok &= check_result(&p, &res[0]);
  if (p.check_relay)
    ok &= check_relay(&p, &res[0]);
  if (both) {
    char conv[32], conv2[32], rec[32], reach[32], heal[48];
    double ratio;

    p.policy = WGAM_POLICY_CLASSIC;
    if (run(&p, &res[1]) < 0)
      return 2;
    print_result(&p, &res[1], "");
    if (p.check)
      ok &= check_result(&p, &res[1]);
    if (p.check_relay)
      ok &= check_relay(&p, &res[1]);
    fmt_s(conv, sizeof(conv), res[0].converged_s);
    fmt_s(conv2, sizeof(conv2), res[1].converged_s);
    fmt_s(rec, sizeof(rec), res[0].recovered_s);
    /* If classic never converged, ours/classic is at most ours/duration. */
    ratio = res[0].converged_s < 0   ? NAN
            : res[1].converged_s > 0 ? res[0].converged_s / res[1].converged_s
                                     : res[0].converged_s / p.duration_s;
    fmt_s(reach, sizeof(reach), res[0].reach_s);
    printf("converged_s=%s recovered_s=%s gossip_bytes_per_node_s=%.1f "
           "steady_bytes_per_node_s=%.1f mem_per_peer_bytes=%.0f "
           "device_writes=%" PRIu64 " unreachable_pairs=%" PRIu64
           " reach_s=%s reachable_share=%.4f"
           " classic_converged_s=%s ratio_converged=%s%.4f "
           "classic_steady_bytes_per_node_s=%.1f "
           "classic_device_writes=%" PRIu64 "%s\n",
           conv, rec, res[0].gossip_bytes_per_node_s,
           res[0].steady_bytes_per_node_s, res[0].mem_per_peer_bytes,
           res[0].device_writes, res[0].unreachable_pairs, reach,
           reach_share(&res[0]), conv2, res[1].converged_s < 0 ? "<" : "",
           ratio, res[1].steady_bytes_per_node_s, res[1].device_writes,
           heal_kv(&p, &res[0], heal, sizeof(heal)));
  } else {
    char conv[32], rec[32], reach[32], heal[48];

    fmt_s(conv, sizeof(conv), res[0].converged_s);
    fmt_s(rec, sizeof(rec), res[0].recovered_s);
    fmt_s(reach, sizeof(reach), res[0].reach_s);
    printf("converged_s=%s recovered_s=%s gossip_bytes_per_node_s=%.1f "
           "steady_bytes_per_node_s=%.1f mem_per_peer_bytes=%.0f "
           "device_writes=%" PRIu64 " unreachable_pairs=%" PRIu64
           " reach_s=%s reachable_share=%.4f%s\n",
           conv, rec, res[0].gossip_bytes_per_node_s,
           res[0].steady_bytes_per_node_s, res[0].mem_per_peer_bytes,
           res[0].device_writes, res[0].unreachable_pairs, reach,
           reach_share(&res[0]), heal_kv(&p, &res[0], heal, sizeof(heal)));
  }
  return ok ? 0 : 1;
}
