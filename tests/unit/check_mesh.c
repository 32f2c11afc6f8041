/* SPDX-License-Identifier: MIT */
/*
 * The engine driven by a fake clock, nodes wired in memory: one node's
 * datagrams are another's input, through a small model of WireGuard
 * (handshakes, retries every 5 s, keepalives, roaming) and of NAT
 * (none, port-restricted cone, symmetric) and LANs.
 */
#include <check.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "testutil.h"
#include "wgautomesh.h"

#define MAXN 16
#define UNIX0 1700000000ull
#define GOSSIP_PORT 1666
#define WG_PORT 51820

enum { NAT_NONE, NAT_CONE, NAT_SYM };

struct dpeer {
  int present;
  wgam_addr ep;
  uint16_t ka;
  wgam_cidr allowed;
  size_t nallowed;
  uint64_t hs; /* unix */
  uint64_t rx, tx;
  wgam_tstamp last_try, last_ka;
};

struct node {
  wgam_mesh *m;
  uint64_t rnd;
  uint8_t pub[WGAM_KEY_LEN];
  wgam_addr mesh;
  wgam_addr ext;   /* as seen from the internet (NAT: the mapped address) */
  wgam_addr lanip; /* address on its LAN, when lan_id */
  int nat, lan_id, down, no_broadcast;
  struct dpeer dev[MAXN];
  wgam_addr perm[64]; /* destinations this node has sent to (NAT state) */
  int nperm;
  uint64_t endpoint_writes[MAXN];
  wgam_tstamp read_at, read_gap; /* the last device read; the least gap */
  unsigned reads, sent;          /* device reads, datagrams sent */
};

struct net {
  struct node n[MAXN];
  int count;
  wgam_tstamp now;
  int classic;
  uint32_t flags;
  int hints; /* the engines get roam hints (wgam_mesh_roam_hint()) */
};

static struct net net;

static uint64_t unix_now(void) {
  return UNIX0 + net.now / WGAM_SECONDS;
}

static int same(const wgam_addr *a, const wgam_addr *b) {
  return wgam_addr_equal(a, b);
}

/* The source address node @a's packet to @to shows at the receiver. */
static wgam_addr src_of(const struct node *a, const wgam_addr *to) {
  int i;
  for (i = 0; i < net.count; i++)
    if (net.n[i].lan_id && net.n[i].lan_id == a->lan_id &&
        same(&net.n[i].lanip, to))
      return a->lanip;
  if (a->nat == NAT_SYM) {
    wgam_addr s = a->ext;
    s.port = (uint16_t)(20000 + (to->ip[3] * 7 + to->port) % 20000);
    return s;
  }
  return a->ext;
}

static int has_perm(const struct node *n, const wgam_addr *from) {
  int i;
  for (i = 0; i < n->nperm; i++)
    if (same(&n->perm[i], from))
      return 1;
  return 0;
}

static void add_perm(struct node *n, const wgam_addr *to) {
  if (has_perm(n, to))
    return;
  if (n->nperm < 64)
    n->perm[n->nperm++] = *to;
}

/* Sends a UDP packet from @a to @to; returns the receiving node or -1, and
 * the source it sees in *@src. */
static int deliver_(struct node *a, const wgam_addr *to, wgam_addr *src,
                    int dry) {
  int i;

  if (a->down)
    return -1;
  if (!dry)
    add_perm(a, to);
  *src = src_of(a, to);
  for (i = 0; i < net.count; i++) {
    struct node *b = &net.n[i];
    if (b == a || b->down)
      continue;
    if (b->lan_id && b->lan_id == a->lan_id && same(&b->lanip, to))
      return i;
    if (b->nat == NAT_SYM) {
      /* A symmetric NAT accepts only the remote its mapping was made for. */
      if (!memcmp(to->ip, b->ext.ip, 4) && has_perm(b, src)) {
        wgam_addr m = src_of(b, src);
        if (same(&m, to))
          return i;
      }
      continue;
    }
    if (same(&b->ext, to)) {
      if (b->nat == NAT_CONE && !has_perm(b, src))
        return -1;
      return i;
    }
  }
  return -1;
}

static int deliver(struct node *a, const wgam_addr *to, wgam_addr *src) {
  return deliver_(a, to, src, 0);
}

/* Whether a packet from @a to its endpoint for @b would arrive now. */
static int path_ok(int a, int b) {
  wgam_addr src;
  const struct dpeer *d = &net.n[a].dev[b];
  return d->present && d->ep.family &&
         deliver_(&net.n[a], &d->ep, &src, 1) == b;
}

static int idx_of(const uint8_t *key) {
  int i;
  for (i = 0; i < net.count; i++)
    if (!memcmp(net.n[i].pub, key, WGAM_KEY_LEN))
      return i;
  return -1;
}

static int session_ok(const struct dpeer *d) {
  return d->hs && unix_now() - d->hs < 180;
}

/* Node @bi's WireGuard moves its entry of @ai to @src, where an
 * authenticated packet came from; with roam hints, an address its engine
 * did not see at the last read is hinted. */
static void roam(int bi, int ai, const wgam_addr *src) {
  struct dpeer *d = &net.n[bi].dev[ai];

  if (net.hints && !same(&d->ep, src))
    ck_assert_int_eq(wgam_mesh_roam_hint(net.n[bi].m, net.now), 0);
  d->ep = *src;
}

/* WireGuard handshake from a to b (b's index in a's device). */
static int handshake(int ai, int bi) {
  struct node *a = &net.n[ai], *b = &net.n[bi];
  struct dpeer *d = &a->dev[bi];
  wgam_addr s1, s2;
  int r;

  if (!d->present || !d->ep.family)
    return 0;
  d->last_try = net.now;
  r = deliver(a, &d->ep, &s1);
  if (r != bi || !b->dev[ai].present)
    return 0;
  r = deliver(b, &s1, &s2);
  if (r != ai)
    return 0;
  d->hs = b->dev[ai].hs = unix_now();
  roam(bi, ai, &s1); /* the responder roams to the initiator */
  d->last_ka = b->dev[ai].last_ka = net.now;
  return 1;
}

/* Data from a to b through the tunnel; returns nonzero if it arrived. */
static int tunnel(int ai, int bi, size_t len) {
  struct node *a = &net.n[ai], *b = &net.n[bi];
  struct dpeer *d = &a->dev[bi];
  wgam_addr src;

  if (!d->present || !d->ep.family)
    return 0;
  if (!session_ok(d)) {
    if (d->last_try != WGAM_TSTAMP_NONE &&
        net.now < d->last_try + 5 * WGAM_SECONDS && d->last_try)
      return 0;
    if (!handshake(ai, bi))
      return 0;
  }
  d->tx += len;
  if (deliver(a, &d->ep, &src) != bi || !session_ok(&b->dev[ai]))
    return 0;
  b->dev[ai].rx += len;
  roam(bi, ai, &src);
  return 1;
}

static void log_cb(void *u, int level, const char *msg) {
  (void)level;
  /* user_data is the node's rnd counter, the first member we can find. */
  if (getenv("WGAM_TEST_LOG"))
    fprintf(
        stderr, "[%llu.%03llu] node %d: %s\n",
        (unsigned long long)(net.now / WGAM_SECONDS),
        (unsigned long long)(net.now / WGAM_MILLISECONDS % 1000),
        (int)((struct node *)((char *)u - offsetof(struct node, rnd)) - net.n),
        msg);
}

static void make_engine(int i) {
  wgam_settings s;
  struct node *n = &net.n[i];

  if (net.classic)
    wgam_settings_classic(&s);
  else
    wgam_settings_default(&s);
  s.secret = (const uint8_t *)"test secret";
  s.secretlen = 11;
  s.gossip_port = GOSSIP_PORT;
  s.flags = net.flags;
  s.rand = tu_rand_fixed;
  s.user_data = &n->rnd;
  s.log = log_cb;
  s.log_level = WGAM_LOG_TRACE;
  ck_assert_int_eq(wgam_mesh_new(&n->m, &s, net.now), 0);
  if (net.hints)
    ck_assert_int_eq(wgam_mesh_set_roam_hints(n->m, 1, net.now), 0);
}

static void net_init(int classic, uint32_t flags) {
  int i;
  for (i = 0; i < net.count; i++)
    wgam_mesh_del(net.n[i].m);
  memset(&net, 0, sizeof(net));
  net.now = 1000 * WGAM_SECONDS;
  net.classic = classic;
  net.flags = flags;
}

static int add_node(int nat, wgam_addr ext, int lan_id, wgam_addr lanip) {
  int i = net.count++;
  struct node *n = &net.n[i];

  n->rnd = 0x1000 + (uint64_t)i;
  memset(n->pub, 0, sizeof(n->pub));
  n->pub[0] = (uint8_t)(0x40 + i * 7);
  n->pub[1] = (uint8_t)i;
  n->pub[31] = 0x11;
  n->mesh = tu_v4(100, 64, 0, i + 1, 0);
  n->ext = ext;
  n->nat = nat;
  n->lan_id = lan_id;
  n->lanip = lanip;
  make_engine(i);
  return i;
}

/* Every node gets every other node as a peer; @endpoints[i] nonzero makes
 * node i's ext address its configured endpoint. */
static void configure(const int *with_endpoint) {
  wgam_peer_config cfg[MAXN];
  int i, j;

  for (i = 0; i < net.count; i++) {
    memset(&cfg[i], 0, sizeof(cfg[i]));
    memcpy(cfg[i].pubkey, net.n[i].pub, WGAM_KEY_LEN);
    cfg[i].address = net.n[i].mesh;
    if (with_endpoint && with_endpoint[i])
      cfg[i].endpoint = net.n[i].ext;
  }
  for (j = 0; j < net.count; j++)
    ck_assert_int_eq(
        wgam_mesh_set_peers(net.n[j].m, cfg, (size_t)net.count, net.now), 0);
}

static void apply_update(int i, const wgam_peer_update *u) {
  int j = idx_of(u->pubkey);
  struct dpeer *d;

  ck_assert_int_ge(j, 0);
  ck_assert_int_ne(j, i);
  d = &net.n[i].dev[j];
  if (u->flags & WGAM_PEER_REMOVE_ME) {
    memset(d, 0, sizeof(*d));
    return;
  }
  if (!d->present) {
    memset(d, 0, sizeof(*d));
    d->present = 1;
  }
  if (u->flags & WGAM_PEER_REPLACE_ALLOWEDIPS) {
    d->allowed = u->allowedips[0];
    d->nallowed = 1;
  }
  if (u->flags & WGAM_PEER_HAS_ENDPOINT) {
    d->ep = u->endpoint;
    net.n[i].endpoint_writes[j]++;
  }
  if (u->flags & WGAM_PEER_HAS_KEEPALIVE)
    d->ka = u->persistent_keepalive;
}

static void read_device(int i) {
  wgam_device_peer dp[MAXN];
  wgam_device dev;
  struct node *n = &net.n[i];
  int j, k = 0;

  memset(&dev, 0, sizeof(dev));
  memcpy(dev.pubkey, n->pub, WGAM_KEY_LEN);
  dev.has_pubkey = 1;
  dev.listen_port = WG_PORT;
  for (j = 0; j < net.count; j++) {
    const struct dpeer *d = &n->dev[j];
    if (!d->present)
      continue;
    memset(&dp[k], 0, sizeof(dp[k]));
    memcpy(dp[k].pubkey, net.n[j].pub, WGAM_KEY_LEN);
    dp[k].endpoint = d->ep;
    dp[k].last_handshake = d->hs;
    dp[k].rx_bytes = d->rx;
    dp[k].tx_bytes = d->tx;
    dp[k].persistent_keepalive = d->ka;
    dp[k].allowedips = &d->allowed;
    dp[k].nallowedips = d->nallowed;
    k++;
  }
  dev.peers = dp;
  dev.npeers = (size_t)k;
  ck_assert_int_eq(wgam_mesh_observe_device(n->m, &dev, net.now, unix_now()),
                   0);
  if (n->read_at && (!n->read_gap || net.now - n->read_at < n->read_gap))
    n->read_gap = net.now - n->read_at;
  n->read_at = net.now;
  n->reads++;
}

static int by_mesh(const wgam_addr *a) {
  int i;
  for (i = 0; i < net.count; i++)
    if (!memcmp(net.n[i].mesh.ip, a->ip, 4))
      return i;
  return -1;
}

static void send_out(int i) {
  uint8_t buf[WGAM_MAX_DATAGRAM_LEN];
  wgam_addr dest;
  wgam_ssize len;
  struct node *n = &net.n[i];

  while ((len = wgam_mesh_write_pkt(n->m, &dest, buf, sizeof(buf), net.now)) >
         0) {
    int j;
    if (n->down)
      continue;
    n->sent++;
    if (dest.ip[0] == 255) { /* LAN broadcast, outside the tunnel */
      for (j = 0; j < net.count; j++) {
        wgam_addr src = n->lanip;
        if (!n->lan_id || n->no_broadcast || net.n[j].lan_id != n->lan_id ||
            net.n[j].down)
          continue;
        src.port = GOSSIP_PORT;
        wgam_mesh_read_pkt(net.n[j].m, &src, buf, (size_t)len, net.now);
      }
      continue;
    }
    j = by_mesh(&dest);
    if (j < 0 || j == i)
      continue;
    if (tunnel(i, j, (size_t)len)) {
      wgam_addr src = n->mesh;
      src.port = GOSSIP_PORT;
      wgam_mesh_read_pkt(net.n[j].m, &src, buf, (size_t)len, net.now);
    }
  }
  ck_assert_int_eq(len, 0);
}

static void pump(int i) {
  wgam_peer_update u;
  struct node *n = &net.n[i];

  if (wgam_mesh_get_wants(n->m) & WGAM_WANT_DEVICE)
    read_device(i);
  while (wgam_mesh_next_peer_update(n->m, &u))
    apply_update(i, &u);
  send_out(i);
}

/* WireGuard's own timers, once a second: retries and keepalives. */
static void wg_tick(void) {
  int i, j;
  for (i = 0; i < net.count; i++)
    for (j = 0; j < net.count; j++) {
      struct dpeer *d = &net.n[i].dev[j];
      if (i == j || !d->present || !d->ep.family || !d->ka || net.n[i].down)
        continue;
      if (!session_ok(d) || unix_now() - d->hs >= 120) {
        if (net.now >= d->last_try + 5 * WGAM_SECONDS)
          handshake(i, j);
      } else if (net.now >= d->last_ka + d->ka * WGAM_SECONDS) {
        d->last_ka = net.now;
        tunnel(i, j, 32);
      }
    }
}

static void run_for(wgam_tstamp dur) {
  wgam_tstamp end = net.now + dur;
  int i;

  while (net.now < end) {
    net.now += 100 * WGAM_MILLISECONDS;
    for (i = 0; i < net.count; i++) {
      if (net.n[i].down)
        continue;
      if (wgam_mesh_get_expiry(net.n[i].m) <= net.now)
        ck_assert_int_eq(wgam_mesh_handle_expiry(net.n[i].m, net.now), 0);
      pump(i);
    }
    if (net.now % WGAM_SECONDS == 0)
      wg_tick();
  }
}

/* Expiry handled at the current time: whether the engine asks for a
 * device read now (node 0). */
static int read_wanted_now(void) {
  if (wgam_mesh_get_expiry(net.n[0].m) <= net.now)
    wgam_mesh_handle_expiry(net.n[0].m, net.now);
  return (wgam_mesh_get_wants(net.n[0].m) & WGAM_WANT_DEVICE) != 0;
}

static int linked(int a, int b) {
  return session_ok(&net.n[a].dev[b]) && session_ok(&net.n[b].dev[a]) &&
         path_ok(a, b) && path_ok(b, a);
}

static int full_mesh(void) {
  int a, b;
  for (a = 0; a < net.count; a++)
    for (b = a + 1; b < net.count; b++)
      if (!linked(a, b))
        return 0;
  return 1;
}

/* Runs until every pair is linked; returns the seconds it took. */
static double until_full_mesh(double max_s) {
  wgam_tstamp start = net.now;
  while (!full_mesh()) {
    if (net.now - start > (wgam_tstamp)(max_s * WGAM_SECONDS))
      return -1;
    run_for(WGAM_SECONDS);
  }
  return (double)(net.now - start) / WGAM_SECONDS;
}

static void peer_info(int i, int j, wgam_peer_info *info) {
  size_t k, n = wgam_mesh_get_npeers(net.n[i].m);
  for (k = 0; k < n; k++) {
    ck_assert_int_eq(wgam_mesh_get_peer_info(net.n[i].m, k, info), 0);
    if (!memcmp(info->pubkey, net.n[j].pub, WGAM_KEY_LEN))
      return;
  }
  ck_abort_msg("peer %d not found at node %d", j, i);
}

/* One step of node 0 running alone at net.now: its timers, its device,
 * its updates (the endpoint writes recorded in @seen/@at, at most @max),
 * its datagrams. */
static void step_alone(wgam_addr *seen, wgam_tstamp *at, int *n, int max) {
  wgam_peer_update u;
  wgam_addr before = {0};

  if (wgam_mesh_get_expiry(net.n[0].m) <= net.now)
    wgam_mesh_handle_expiry(net.n[0].m, net.now);
  if (wgam_mesh_get_wants(net.n[0].m) & WGAM_WANT_DEVICE)
    read_device(0);
  while (wgam_mesh_next_peer_update(net.n[0].m, &u)) {
    int j = idx_of(u.pubkey);

    /* A peer removed and added back at the same endpoint (a first
     * handshake redone early) is not a new candidate. */
    if (u.flags & WGAM_PEER_REMOVE_ME) {
      before = net.n[0].dev[j].ep;
      apply_update(0, &u);
      continue;
    }
    apply_update(0, &u);
    if ((u.flags & WGAM_PEER_HAS_ENDPOINT) && same(&u.endpoint, &before)) {
      memset(&before, 0, sizeof(before));
      continue;
    }
    memset(&before, 0, sizeof(before));
    if ((u.flags & WGAM_PEER_HAS_ENDPOINT) && *n < max) {
      seen[*n] = u.endpoint;
      at[(*n)++] = net.now;
    }
  }
  send_out(0);
}

static void announce_to(int i, int subject, const wgam_endpoint *eps, size_t n,
                        uint8_t nonce);

/* Drives node 0 alone for 7 s, announcing @ep about peer 1 @at into it;
 * returns when its next endpoint write came, in seconds (-1: none), and
 * what it wrote in *@seen. */
static double next_write_after(const wgam_endpoint *ep, wgam_tstamp at,
                               wgam_addr *seen) {
  wgam_tstamp start = net.now, when[1];
  int n = 0;

  while (net.now < start + 7 * WGAM_SECONDS) {
    net.now += 100 * WGAM_MILLISECONDS;
    if (net.now == start + at)
      announce_to(0, 1, ep, 1, 2);
    step_alone(seen, when, &n, 1);
  }
  return n ? (double)(when[0] - start) / WGAM_SECONDS : -1;
}

static void teardown(void) {
  net_init(0, 0);
}

/* A public, B and C behind two different cone NATs; only A's endpoint is
 * configured. B and C must learn each other's NAT-ed endpoint through A. */
static void topo_two_nats(int classic) {
  static const int ep[3] = {1, 0, 0};
  net_init(classic, 0);
  add_node(NAT_NONE, tu_v4(198, 51, 100, 1, WG_PORT), 0, (wgam_addr){0});
  add_node(NAT_CONE, tu_v4(203, 0, 113, 1, 40001), 0, (wgam_addr){0});
  add_node(NAT_CONE, tu_v4(203, 0, 113, 2, 40002), 0, (wgam_addr){0});
  configure(ep);
}

START_TEST(test_nat_pair_learns_via_public) {
  double t;
  wgam_peer_info info;

  topo_two_nats(0);
  t = until_full_mesh(120);
  ck_assert_msg(t >= 0, "no full mesh in 120 s");
  /* Directly connected: each has the other's NAT-ed address. */
  ck_assert(same(&net.n[1].dev[2].ep, &net.n[2].ext));
  ck_assert(same(&net.n[2].dev[1].ep, &net.n[1].ext));
  run_for(3 * WGAM_SECONDS); /* the engine sees it at its next device read */
  peer_info(1, 2, &info);
  ck_assert_int_eq(info.connected, 1);
  ck_assert_int_ge(info.nknown, 1);
  printf("fast: 3-node NAT mesh in %.1f s\n", t);
}
END_TEST

START_TEST(test_classic_is_slower) {
  double fast, classic;

  topo_two_nats(0);
  fast = until_full_mesh(120);
  topo_two_nats(1);
  classic = until_full_mesh(900);
  ck_assert_msg(fast >= 0 && classic >= 0, "fast %.1f classic %.1f", fast,
                classic);
  ck_assert(same(&net.n[1].dev[2].ep, &net.n[2].ext));
  printf("classic: %.1f s, fast: %.1f s\n", classic, fast);
  ck_assert(fast < classic);
}
END_TEST

/* The classic preset moves a disconnected peer to the next candidate of its
 * sorted list every 30 s, as the original does. */
START_TEST(test_classic_cycles_every_30s) {
  wgam_peer_config cfg[2];
  wgam_endpoint eps[3];
  wgam_addr seen[8];
  wgam_tstamp at[8];
  int n = 0, k;

  net_init(1, 0);
  add_node(NAT_NONE, tu_v4(198, 51, 100, 1, WG_PORT), 0, (wgam_addr){0});
  add_node(NAT_NONE, tu_v4(198, 51, 100, 2, WG_PORT), 0, (wgam_addr){0});
  net.n[1].down = 1; /* never answers */
  memset(cfg, 0, sizeof(cfg));
  memcpy(cfg[0].pubkey, net.n[0].pub, 32);
  cfg[0].address = net.n[0].mesh;
  memcpy(cfg[1].pubkey, net.n[1].pub, 32);
  cfg[1].address = net.n[1].mesh;
  cfg[1].endpoint = tu_v4(198, 51, 100, 9, 3);
  ck_assert_int_eq(wgam_mesh_set_peers(net.n[0].m, cfg, 2, net.now), 0);
  /* Two more candidates from a state file. */
  {
    uint8_t file[512];
    char b64[45];
    size_t off = 0;
    wgam_key_to_base64(b64, net.n[1].pub);
    eps[0].addr = tu_v4(198, 51, 100, 7, 1);
    eps[0].time = UNIX0 - 10;
    eps[1].addr = tu_v4(10, 1, 1, 1, 2);
    eps[1].time = UNIX0 - 20;
    /* state file: count 1, key, 2 endpoints (layout checked elsewhere) */
    memset(file, 0, sizeof(file));
    file[0] = 1;
    off = 8;
    file[off] = 44;
    off += 8;
    memcpy(file + off, b64, 44);
    off += 44;
    file[off] = 2;
    off += 8;
    for (k = 0; k < 2; k++) {
      file[off] = 0; /* V4 */
      off += 4;
      memcpy(file + off, eps[k].addr.ip, 4);
      off += 4;
      file[off++] = (uint8_t)(eps[k].addr.port & 0xff);
      file[off++] = (uint8_t)(eps[k].addr.port >> 8);
      memcpy(file + off, &eps[k].time, 8); /* little endian host */
      off += 8;
    }
    ck_assert_int_eq(wgam_mesh_load_state(net.n[0].m, file, off, net.now), 0);
  }
  while (net.now < 1000 * WGAM_SECONDS + 125 * WGAM_SECONDS) {
    net.now += 500 * WGAM_MILLISECONDS;
    step_alone(seen, at, &n, 8);
  }
  /* Sorted (address, time): 10.1.1.1:2, 198.51.100.7:1, 198.51.100.9:3 */
  ck_assert_int_ge(n, 4);
  ck_assert(same(&seen[0], &eps[1].addr));
  ck_assert(same(&seen[1], &eps[0].addr));
  ck_assert(same(&seen[2], &cfg[1].endpoint));
  ck_assert(same(&seen[3], &eps[1].addr));
  for (k = 1; k < 4; k++)
    ck_assert_uint_eq(at[k] - at[k - 1], 30 * WGAM_SECONDS);
}
END_TEST

/* B and C on one LAN behind a NAT, A public: with LAN discovery, B and C
 * use each other's LAN addresses; when broadcasts stop, the LAN endpoint
 * goes stale and is dropped. */
START_TEST(test_lan_preferred_then_stale) {
  static const int ep[3] = {1, 0, 0};
  wgam_peer_info info;

  net_init(0, WGAM_SETTINGS_LAN_DISCOVERY);
  add_node(NAT_NONE, tu_v4(198, 51, 100, 1, WG_PORT), 0, (wgam_addr){0});
  add_node(NAT_CONE, tu_v4(203, 0, 113, 5, 40001), 1,
           tu_v4(192, 168, 1, 2, WG_PORT));
  add_node(NAT_CONE, tu_v4(203, 0, 113, 5, 40002), 1,
           tu_v4(192, 168, 1, 3, WG_PORT));
  configure(ep);
  ck_assert_msg(until_full_mesh(120) >= 0, "no full mesh");
  run_for(20 * WGAM_SECONDS);
  ck_assert(same(&net.n[1].dev[2].ep, &net.n[2].lanip));
  ck_assert(same(&net.n[2].dev[1].ep, &net.n[1].lanip));
  peer_info(1, 2, &info);
  ck_assert_int_eq(info.source, WGAM_SOURCE_LAN);
  ck_assert_int_eq(info.lan_endpoint.family, WGAM_AF_INET);

  net.n[1].no_broadcast = net.n[2].no_broadcast = 1;
  run_for(310 * WGAM_SECONDS);
  peer_info(1, 2, &info);
  ck_assert_int_eq(info.lan_endpoint.family, WGAM_AF_NONE);
  ck_assert(linked(1, 2));
}
END_TEST

/* Endpoints from a state file are tried at start and re-announced. */
START_TEST(test_persisted_endpoints_used) {
  static const int ep[3] = {1, 0, 0};
  uint8_t buf[4096];
  wgam_ssize len;
  wgam_peer_info info;

  topo_two_nats(0);
  ck_assert(until_full_mesh(120) >= 0);
  len = wgam_mesh_write_state(net.n[1].m, buf, sizeof(buf));
  ck_assert_int_gt(len, 8);
  ck_assert_int_eq(wgam_mesh_get_wants(net.n[1].m) & WGAM_WANT_STATE, 0);

  /* Node 1 restarts with an empty device and only its state file; the
   * public node is down, so the state file is its only way to C. */
  wgam_mesh_del(net.n[1].m);
  memset(net.n[1].dev, 0, sizeof(net.n[1].dev));
  net.n[1].nperm = 0;
  make_engine(1);
  net.n[0].down = 1;
  {
    wgam_peer_config cfg[3];
    int i;
    for (i = 0; i < 3; i++) {
      memset(&cfg[i], 0, sizeof(cfg[i]));
      memcpy(cfg[i].pubkey, net.n[i].pub, 32);
      cfg[i].address = net.n[i].mesh;
      if (ep[i])
        cfg[i].endpoint = tu_v4(198, 51, 100, 99, 9); /* stale config */
    }
    ck_assert_int_eq(wgam_mesh_set_peers(net.n[1].m, cfg, 3, net.now), 0);
  }
  ck_assert_int_eq(wgam_mesh_load_state(net.n[1].m, buf, (size_t)len, net.now),
                   0);
  run_for(40 * WGAM_SECONDS);
  ck_assert(linked(1, 2));
  peer_info(1, 2, &info);
  ck_assert_int_eq(info.connected, 1);
}
END_TEST

/* Candidates are tried in order, the next one after the handshake window,
 * then backoff; a newly learned endpoint is tried at once. */
START_TEST(test_fallback_order) {
  wgam_peer_config cfg[2];
  wgam_addr seen[16];
  wgam_tstamp at[16];
  int n = 0;
  uint8_t plain[512], pkt[600];
  wgam_msg msg;
  char b64[45];
  wgam_ssize len;
  uint8_t key[32], nonce[24] = {1};
  wgam_addr src = tu_v4(100, 64, 0, 2, GOSSIP_PORT);

  net_init(0, 0);
  add_node(NAT_NONE, tu_v4(198, 51, 100, 1, WG_PORT), 0, (wgam_addr){0});
  add_node(NAT_NONE, tu_v4(198, 51, 100, 2, WG_PORT), 0, (wgam_addr){0});
  add_node(NAT_NONE, tu_v4(198, 51, 100, 3, WG_PORT), 0, (wgam_addr){0});
  net.n[1].down = 1;
  memset(cfg, 0, sizeof(cfg));
  memcpy(cfg[0].pubkey, net.n[0].pub, 32);
  cfg[0].address = net.n[0].mesh;
  memcpy(cfg[1].pubkey, net.n[1].pub, 32);
  cfg[1].address = net.n[1].mesh;
  cfg[1].endpoint = tu_v4(198, 51, 100, 50, 1);
  ck_assert_int_eq(wgam_mesh_set_peers(net.n[0].m, cfg, 2, net.now), 0);

  /* Gossip: two endpoints, the newer first. */
  wgam_key_to_base64(b64, net.n[1].pub);
  memset(&msg, 0, sizeof(msg));
  msg.type = WGAM_MSG_ANNOUNCE;
  msg.pubkey = (const uint8_t *)b64;
  msg.pubkeylen = 44;
  msg.nendpoints = 2;
  msg.endpoints[0].addr = tu_v4(198, 51, 100, 40, 1);
  msg.endpoints[0].time = UNIX0 - 100;
  msg.endpoints[1].addr = tu_v4(198, 51, 100, 41, 1);
  msg.endpoints[1].time = UNIX0 - 50;
  len = wgam_msg_encode(plain, sizeof(plain), &msg);
  wgam_key_derive(key, (const uint8_t *)"test secret", 11);
  len = wgam_pkt_seal(pkt, sizeof(pkt), key, nonce, plain, (size_t)len);
  ck_assert_int_eq(
      wgam_mesh_read_pkt(net.n[0].m, &src, pkt, (size_t)len, net.now), 0);

  while (net.now < 1000 * WGAM_SECONDS + 60 * WGAM_SECONDS) {
    net.now += 100 * WGAM_MILLISECONDS;
    if (net.now == 1000 * WGAM_SECONDS + 25 * WGAM_SECONDS) {
      /* A new endpoint arrives during the backoff: tried at once. */
      msg.nendpoints = 1;
      msg.endpoints[0].addr = tu_v4(198, 51, 100, 2, WG_PORT);
      msg.endpoints[0].time = UNIX0 + 20;
      nonce[0]++;
      len = wgam_msg_encode(plain, sizeof(plain), &msg);
      len = wgam_pkt_seal(pkt, sizeof(pkt), key, nonce, plain, (size_t)len);
      ck_assert_int_eq(
          wgam_mesh_read_pkt(net.n[0].m, &src, pkt, (size_t)len, net.now), 0);
    }
    step_alone(seen, at, &n, 16);
  }
  ck_assert_int_ge(n, 4);
  {
    wgam_addr e41 = tu_v4(198, 51, 100, 41, 1),
              e40 = tu_v4(198, 51, 100, 40, 1);
    ck_assert(same(&seen[0], &e41));
    ck_assert(same(&seen[1], &e40));
  }
  ck_assert(same(&seen[2], &cfg[1].endpoint));
  ck_assert_uint_eq(at[1] - at[0], 6 * WGAM_SECONDS);
  ck_assert_uint_eq(at[2] - at[1], 6 * WGAM_SECONDS);
  /* Then backoff (10 s after the third window), interrupted by the news. */
  {
    wgam_addr news = tu_v4(198, 51, 100, 2, WG_PORT);
    ck_assert(same(&seen[3], &news));
  }
  ck_assert_uint_eq(at[3], 1000 * WGAM_SECONDS + 25 * WGAM_SECONDS);
}
END_TEST

static void peers_cfg(wgam_peer_config *cfg, const int *which, int n) {
  int k;
  for (k = 0; k < n; k++) {
    memset(&cfg[k], 0, sizeof(cfg[k]));
    memcpy(cfg[k].pubkey, net.n[which[k]].pub, 32);
    cfg[k].address = net.n[which[k]].mesh;
    cfg[k].endpoint = net.n[which[k]].ext;
  }
}

/* Set by a test: node 0 has no configured endpoint of its own; node 1
 * keeps its configured one. */
static int alone_self_unconfigured, alone_peer_configured;

/* Node 0 with one peer, node 1, which is down and has no configured
 * endpoint; node 0 has read its device. */
static void pair_alone_keys(int classic, uint32_t flags, int swap_keys) {
  wgam_peer_config cfg[2];

  net_init(classic, flags);
  add_node(NAT_NONE, tu_v4(198, 51, 100, 1, WG_PORT), 0, (wgam_addr){0});
  add_node(NAT_NONE, tu_v4(198, 51, 100, 2, WG_PORT), 0, (wgam_addr){0});
  if (swap_keys) { /* node 0 gets the greater key */
    uint8_t t[32];

    memcpy(t, net.n[0].pub, 32);
    memcpy(net.n[0].pub, net.n[1].pub, 32);
    memcpy(net.n[1].pub, t, 32);
  }
  net.n[1].down = 1;
  peers_cfg(cfg, (const int[]){0, 1}, 2);
  if (!alone_peer_configured)
    memset(&cfg[1].endpoint, 0, sizeof(cfg[1].endpoint));
  if (alone_self_unconfigured)
    memset(&cfg[0].endpoint, 0, sizeof(cfg[0].endpoint));
  ck_assert_int_eq(wgam_mesh_set_peers(net.n[0].m, cfg, 2, net.now), 0);
  read_device(0);
}

static void pair_alone(int classic, uint32_t flags) {
  pair_alone_keys(classic, flags, 0);
}

/* Reload: removed peers leave the device, new ones are configured,
 * unchanged ones keep their session and get no update. */
START_TEST(test_reload) {
  static const int first[3] = {0, 1, 2}, second[3] = {0, 1, 3};
  wgam_peer_config cfg[4];
  wgam_peer_update u;
  int i, removed = 0, added = 0, touched_1 = 0;

  net_init(0, 0);
  for (i = 0; i < 4; i++)
    add_node(NAT_NONE, tu_v4(198, 51, 100, i + 1, WG_PORT), 0, (wgam_addr){0});
  peers_cfg(cfg, first, 3);
  for (i = 0; i < 3; i++)
    ck_assert_int_eq(wgam_mesh_set_peers(net.n[i].m, cfg, 3, net.now), 0);
  peers_cfg(cfg, second, 3);
  ck_assert_int_eq(wgam_mesh_set_peers(net.n[3].m, cfg, 3, net.now), 0);
  net.count = 4;
  run_for(20 * WGAM_SECONDS);
  ck_assert(linked(0, 1));
  ck_assert(linked(0, 2));

  /* Duplicate key or address: refused, nothing changes. */
  peers_cfg(cfg, second, 3);
  cfg[2] = cfg[1];
  ck_assert_int_eq(wgam_mesh_set_peers(net.n[0].m, cfg, 3, net.now),
                   WGAM_ERR_DUPLICATE_PEER);
  peers_cfg(cfg, second, 3);
  cfg[2].address = cfg[1].address;
  ck_assert_int_eq(wgam_mesh_set_peers(net.n[0].m, cfg, 3, net.now),
                   WGAM_ERR_DUPLICATE_PEER);
  ck_assert_uint_eq(wgam_mesh_get_npeers(net.n[0].m), 2);

  peers_cfg(cfg, second, 3);
  ck_assert_int_eq(wgam_mesh_set_peers(net.n[0].m, cfg, 3, net.now), 0);
  while (wgam_mesh_next_peer_update(net.n[0].m, &u)) {
    int j = idx_of(u.pubkey);
    if (j == 2 && (u.flags & WGAM_PEER_REMOVE_ME))
      removed++;
    if (j == 3 && (u.flags & WGAM_PEER_REPLACE_ALLOWEDIPS))
      added++;
    if (j == 1)
      touched_1++;
    apply_update(0, &u);
  }
  ck_assert_int_eq(removed, 1);
  ck_assert_int_eq(added, 1);
  ck_assert_int_eq(touched_1, 0);
  ck_assert(!net.n[0].dev[2].present);
  ck_assert(linked(0, 1));
  run_for(20 * WGAM_SECONDS);
  ck_assert(linked(0, 3));
  ck_assert_uint_eq(wgam_mesh_get_npeers(net.n[0].m), 2);
}
END_TEST

/* Symmetric NAT on both sides: the pair never links, the rest does, and
 * the endpoint writes for the pair stay within the backoff. */
START_TEST(test_symmetric_no_flap) {
  static const int ep[3] = {1, 0, 0};
  uint64_t before;
  wgam_peer_info info;

  net_init(0, 0);
  add_node(NAT_NONE, tu_v4(198, 51, 100, 1, WG_PORT), 0, (wgam_addr){0});
  add_node(NAT_SYM, tu_v4(203, 0, 113, 1, 0), 0, (wgam_addr){0});
  add_node(NAT_SYM, tu_v4(203, 0, 113, 2, 0), 0, (wgam_addr){0});
  configure(ep);
  run_for(120 * WGAM_SECONDS);
  ck_assert(linked(0, 1));
  ck_assert(linked(0, 2));
  ck_assert(!linked(1, 2));
  peer_info(1, 2, &info);
  ck_assert_int_eq(info.connected, 0);
  before = net.n[1].endpoint_writes[2];
  run_for(600 * WGAM_SECONDS);
  /* At most one round of candidates (<= 6) per backoff_max (120 s). */
  ck_assert_uint_le(net.n[1].endpoint_writes[2] - before, 6 * 6);
  ck_assert(linked(0, 1));
  ck_assert(linked(0, 2));
}
END_TEST

/* A public node moves; everyone reconnects by itself. */
START_TEST(test_roaming_public) {
  static const int ep[4] = {1, 1, 0, 0};
  double t;

  net_init(0, 0);
  add_node(NAT_NONE, tu_v4(198, 51, 100, 1, WG_PORT), 0, (wgam_addr){0});
  add_node(NAT_NONE, tu_v4(198, 51, 100, 2, WG_PORT), 0, (wgam_addr){0});
  add_node(NAT_CONE, tu_v4(203, 0, 113, 1, 40001), 0, (wgam_addr){0});
  add_node(NAT_CONE, tu_v4(203, 0, 113, 2, 40002), 0, (wgam_addr){0});
  configure(ep);
  ck_assert(until_full_mesh(120) >= 0);
  run_for(30 * WGAM_SECONDS);
  net.n[1].ext = tu_v4(198, 51, 100, 77, WG_PORT);
  run_for(WGAM_SECONDS);
  t = until_full_mesh(120);
  ck_assert_msg(t >= 0, "no reconnection after roaming");
  printf("roaming: reconnected in %.1f s\n", t);
}
END_TEST

/* A public node and three behind port-restricted cone NATs, only the public
 * one's endpoint configured, in full mesh; roam hints when @hints. */
static void four_nodes(int hints) {
  static const int ep[4] = {1, 0, 0, 0};

  net_init(0, 0);
  net.hints = hints;
  add_node(NAT_NONE, tu_v4(198, 51, 100, 1, WG_PORT), 0, (wgam_addr){0});
  add_node(NAT_CONE, tu_v4(203, 0, 113, 1, 40001), 0, (wgam_addr){0});
  add_node(NAT_CONE, tu_v4(203, 0, 113, 2, 40002), 0, (wgam_addr){0});
  add_node(NAT_CONE, tu_v4(203, 0, 113, 3, 40003), 0, (wgam_addr){0});
  configure(ep);
  ck_assert(until_full_mesh(120) >= 0);
}

/* four_nodes(); after @quiet, the NAT in front of
 * node @moved changes its address to @ext (a new WAN address, or a reboot:
 * a new external port), its mappings lost, while every other node pings
 * it every 300 ms (as the netns benchmark does). Returns the seconds until
 * every pair works again. */
static double nat_moves(int moved, wgam_addr ext, wgam_tstamp quiet,
                        int hints) {
  wgam_tstamp start;
  int i;

  four_nodes(hints);
  run_for(quiet);
  ck_assert(full_mesh());
  net.n[moved].ext = ext;
  net.n[moved].nperm = 0;
  start = net.now;
  while (!full_mesh()) {
    if (net.now - start > 60 * WGAM_SECONDS)
      return -1;
    for (i = 0; i < net.count; i++)
      if (i != moved && tunnel(i, moved, 128))
        tunnel(moved, i, 128);
    run_for(300 * WGAM_MILLISECONDS);
  }
  return (double)(net.now - start) / WGAM_SECONDS;
}

/* The node behind a NAT that moved is heard from at its next probe (the
 * probes of a small mesh go out together, and open its NAT towards every
 * peer); the public node, whose pings to it went unanswered, reads its
 * interface as soon as that probe comes, and announces where the node is
 * now; the others, whose pings went unanswered too, try it at once. */
START_TEST(test_nat_moved) {
  static const struct {
    const char *what;
    int node, host, port;
  } cases[2] = {
      {"NAT WAN address changed", 3, 33, 40003}, /* was 203.0.113.3 */
      {"NAT rebooted (new port)", 2, 2, 31002},  /* was port 40002 */
  };
  int c, k, hints = _i;

  for (c = 0; c < 2; c++) {
    double sum = 0, max = 0;

    /* At eight points of the probe cycle. */
    for (k = 0; k < 8; k++) {
      double t = nat_moves(
          cases[c].node, tu_v4(203, 0, 113, cases[c].host, cases[c].port),
          60 * WGAM_SECONDS + k * 500 * WGAM_MILLISECONDS, hints);

      ck_assert_msg(t >= 0, "%s: no full mesh", cases[c].what);
      sum += t;
      max = t > max ? t : max;
    }
    printf("%s%s: full mesh again in %.1f s on average, %.1f s at most\n",
           cases[c].what, hints ? ", roam hints" : "", sum / 8, max);
    ck_assert_msg(max <= 8, "%s: %.1f s", cases[c].what, max);
  }
}
END_TEST

/*
 * A mesh at rest. Without roam hints, a node behind a NAT probes every
 * peer each probe_idle and everyone reads the device every
 * device_interval. With them, nobody probes, the device is read every
 * rest_read, and a node behind a NAT has WireGuard send the heartbeat:
 * a persistent keepalive of heartbeat towards the public node, the
 * usual one towards the others. A hint has the device read hint_settle
 * later, and another within hint_read_gap of that read waits for the gap.
 */
START_TEST(test_hints_rest) {
  unsigned reads[4], sent[4];
  int i, hints = _i;
  wgam_tstamp t0;

  four_nodes(hints);
  run_for(60 * WGAM_SECONDS);
  for (i = 0; i < 4; i++) {
    reads[i] = net.n[i].reads;
    sent[i] = net.n[i].sent;
  }
  run_for(60 * WGAM_SECONDS);
  ck_assert(full_mesh());
  for (i = 0; i < 4; i++) {
    unsigned r = net.n[i].reads - reads[i], n = net.n[i].sent - sent[i];

    if (hints) {
      ck_assert_msg(r <= 3, "node %d: %u reads a minute", i, r);
      ck_assert_msg(n == 0, "node %d: %u datagrams a minute", i, n);
    } else {
      ck_assert_msg(r >= 20, "node %d: %u reads a minute", i, r);
      if (i)
        ck_assert_msg(n >= 10, "node %d: %u datagrams a minute", i, n);
    }
  }
  ck_assert_uint_eq(net.n[1].dev[0].ka, hints ? 2 : 30);
  ck_assert_uint_eq(net.n[1].dev[2].ka, 30);
  ck_assert_uint_eq(net.n[0].dev[1].ka, 30);
  if (!hints)
    return;
  ck_assert(!(wgam_mesh_get_wants(net.n[0].m) & WGAM_WANT_DEVICE));
  ck_assert_int_eq(wgam_mesh_roam_hint(net.n[0].m, net.now), 0);
  ck_assert(!read_wanted_now());
  net.now += 10 * WGAM_MILLISECONDS;
  ck_assert(read_wanted_now());
  pump(0);
  t0 = net.now;
  net.now += 10 * WGAM_MILLISECONDS;
  ck_assert_int_eq(wgam_mesh_roam_hint(net.n[0].m, net.now), 0);
  ck_assert(!(wgam_mesh_get_wants(net.n[0].m) & WGAM_WANT_DEVICE));
  ck_assert_uint_le(wgam_mesh_get_expiry(net.n[0].m),
                    t0 + 250 * WGAM_MILLISECONDS);
  /* Turned off: the periodic read is back within device_interval. */
  ck_assert_int_eq(wgam_mesh_set_roam_hints(net.n[0].m, 0, net.now), 0);
  ck_assert_uint_le(wgam_mesh_get_expiry(net.n[0].m),
                    net.now + 2 * WGAM_SECONDS);
}
END_TEST

static wgam_ssize seal_msg(uint8_t *pkt, size_t cap, const wgam_msg *msg,
                           uint8_t n) {
  uint8_t plain[WGAM_MAX_PLAINTEXT_LEN], key[32], nonce[24];
  wgam_ssize len = wgam_msg_encode(plain, sizeof(plain), msg);
  ck_assert_int_gt(len, 0);
  memset(nonce, n, sizeof(nonce));
  wgam_key_derive(key, (const uint8_t *)"test secret", 11);
  return wgam_pkt_seal(pkt, cap, key, nonce, plain, (size_t)len);
}

/* Feeds node @i an Announce about @subject from @src; returns read_pkt's
 * result. */
static int announce_src(int i, wgam_addr src, int subject,
                        const wgam_endpoint *eps, size_t n, uint8_t nonce) {
  uint8_t pkt[WGAM_MAX_DATAGRAM_LEN];
  char b64[45];
  wgam_msg msg;
  wgam_ssize len;

  wgam_key_to_base64(b64, net.n[subject].pub);
  memset(&msg, 0, sizeof(msg));
  msg.type = WGAM_MSG_ANNOUNCE;
  msg.pubkey = (const uint8_t *)b64;
  msg.pubkeylen = 44;
  msg.nendpoints = n;
  memcpy(msg.endpoints, eps, n * sizeof(*eps));
  len = seal_msg(pkt, sizeof(pkt), &msg, nonce);
  return wgam_mesh_read_pkt(net.n[i].m, &src, pkt, (size_t)len, net.now);
}

static void announce_to(int i, int subject, const wgam_endpoint *eps, size_t n,
                        uint8_t nonce) {
  announce_src(i, tu_v4(100, 64, 0, 3, GOSSIP_PORT), subject, eps, n, nonce);
}

/* announce_to(), from node @from's mesh address. */
static void announce_from(int i, int from, int subject,
                          const wgam_endpoint *eps, size_t n, uint8_t nonce) {
  wgam_addr src = net.n[from].mesh;

  src.port = GOSSIP_PORT;
  ck_assert_int_eq(announce_src(i, src, subject, eps, n, nonce), 0);
}

/* Node 0 with peer 1 down and no endpoint configured for it, told @eps
 * about peer 1: the endpoint of node 0's first write for it (no address
 * if none came). */
static wgam_addr first_try_of(const wgam_endpoint *eps, size_t n) {
  wgam_peer_config cfg[2];
  wgam_peer_update u;
  wgam_addr first = {0};

  net_init(0, 0);
  add_node(NAT_NONE, tu_v4(198, 51, 100, 1, WG_PORT), 0, (wgam_addr){0});
  add_node(NAT_NONE, tu_v4(198, 51, 100, 2, WG_PORT), 0, (wgam_addr){0});
  add_node(NAT_NONE, tu_v4(198, 51, 100, 3, WG_PORT), 0, (wgam_addr){0});
  net.n[1].down = 1;
  peers_cfg(cfg, (const int[]){0, 1}, 2);
  memset(&cfg[1].endpoint, 0, sizeof(cfg[1].endpoint));
  ck_assert_int_eq(wgam_mesh_set_peers(net.n[0].m, cfg, 2, net.now), 0);
  announce_to(0, 1, eps, n, 1);
  read_device(0);
  while (wgam_mesh_next_peer_update(net.n[0].m, &u)) {
    apply_update(0, &u);
    if (first.family == WGAM_AF_NONE && (u.flags & WGAM_PEER_HAS_ENDPOINT))
      first = u.endpoint;
  }
  return first;
}

/* A private address learned by gossip (usually another network's LAN) is
 * tried after the public ones, even when it is newer. */
START_TEST(test_private_after_public) {
  wgam_endpoint eps[2];
  wgam_addr first;

  eps[0].addr = tu_v4(192, 168, 9, 9, 51820);
  eps[0].time = UNIX0 + 10;
  eps[1].addr = tu_v4(203, 0, 113, 9, 40000);
  eps[1].time = UNIX0 - 10;
  first = first_try_of(eps, 2);
  ck_assert(first.family != WGAM_AF_NONE);
  ck_assert(same(&first, &eps[1].addr));

  /* A private address learned during the try of a public one does not cut
   * it short (it is most likely another network's LAN): the public try
   * keeps its whole window. */
  {
    wgam_endpoint priv;
    wgam_addr seen;
    double after;

    priv.addr = tu_v4(10, 9, 9, 9, 51820);
    priv.time = UNIX0 + 20;
    after = next_write_after(&priv, 500 * WGAM_MILLISECONDS, &seen);
    ck_assert_msg(after >= 6.0,
                  "public try cut after %.1f s for a private address", after);
    ck_assert(same(&seen, &eps[0].addr) || same(&seen, &priv.addr));
  }
}
END_TEST

/* A private address learned by gossip and tried for want of any other
 * (what the peer's LAN neighbours see of it, spread first when it starts)
 * gives way at once to a public one learned during the try, not after
 * min_try: the candidates would have ranked the public one first. */
START_TEST(test_private_guess_cut) {
  wgam_endpoint priv, pub;
  wgam_addr first, seen;
  double after;

  priv.addr = tu_v4(192, 168, 9, 9, 51820);
  priv.time = UNIX0 + 10;
  first = first_try_of(&priv, 1);
  ck_assert(same(&first, &priv.addr));
  pub.addr = tu_v4(203, 0, 113, 9, 40000);
  pub.time = UNIX0 + 11;
  after = next_write_after(&pub, 500 * WGAM_MILLISECONDS, &seen);
  ck_assert_msg(after >= 0.5 && after < 1.0,
                "private guess cut after %.1f s for a public address", after);
  ck_assert(same(&seen, &pub.addr));
}
END_TEST

/* A LAN broadcast heard while a public endpoint is being tried (a restart
 * from a state file that knows only the NAT's address) cuts that try at
 * once instead of waiting out the window: the peer is on our LAN. */
START_TEST(test_lan_broadcast_preempts) {
  wgam_endpoint ep;
  wgam_addr seen[4], lan = tu_v4(192, 168, 1, 3, WG_PORT);
  wgam_tstamp at[4], start;
  uint8_t pkt[WGAM_MAX_DATAGRAM_LEN];
  char b64[45];
  wgam_msg msg;
  wgam_ssize len;
  int n = 0;

  pair_alone(0, WGAM_SETTINGS_LAN_DISCOVERY);
  start = net.now;
  ep.addr = tu_v4(203, 0, 113, 50, 40000);
  ep.time = unix_now();
  announce_to(0, 1, &ep, 1, 1);
  wgam_key_to_base64(b64, net.n[1].pub);
  memset(&msg, 0, sizeof(msg));
  msg.type = WGAM_MSG_LAN_BROADCAST;
  msg.pubkey = (const uint8_t *)b64;
  msg.pubkeylen = 44;
  msg.listen_port = WG_PORT;
  len = seal_msg(pkt, sizeof(pkt), &msg, 2);
  while (net.now < start + 5 * WGAM_SECONDS) {
    net.now += 100 * WGAM_MILLISECONDS;
    if (net.now == start + 500 * WGAM_MILLISECONDS) {
      wgam_addr src = lan;

      src.port = GOSSIP_PORT;
      ck_assert_int_eq(
          wgam_mesh_read_pkt(net.n[0].m, &src, pkt, (size_t)len, net.now), 0);
    }
    step_alone(seen, at, &n, 4);
  }
  ck_assert_int_eq(n, 2);
  ck_assert(same(&seen[0], &ep.addr));
  ck_assert(same(&seen[1], &lan));
  /* At once: the broadcast came 0.5 s after the start. */
  ck_assert_msg(at[1] - start <= 600 * WGAM_MILLISECONDS,
                "LAN endpoint tried after %.1f s",
                (double)(at[1] - start) / WGAM_SECONDS);
}
END_TEST

/* A LAN try keeps its whole handshake window even when a gossip endpoint
 * arrives meanwhile (the peer may not have configured us yet: WireGuard's
 * retry comes after 5 s); another try is cut short by such news. */
START_TEST(test_lan_try_not_preempted) {
  wgam_peer_update u;
  wgam_endpoint ep;
  uint8_t pkt[WGAM_MAX_DATAGRAM_LEN];
  char b64[45];
  wgam_msg msg;
  wgam_addr lansrc = tu_v4(192, 168, 1, 3, GOSSIP_PORT);
  wgam_addr seen;
  double after;
  wgam_ssize len;

  pair_alone(0, WGAM_SETTINGS_LAN_DISCOVERY);
  wgam_key_to_base64(b64, net.n[1].pub);
  memset(&msg, 0, sizeof(msg));
  msg.type = WGAM_MSG_LAN_BROADCAST;
  msg.pubkey = (const uint8_t *)b64;
  msg.pubkeylen = 44;
  msg.listen_port = WG_PORT;
  len = seal_msg(pkt, sizeof(pkt), &msg, 1);
  ck_assert_int_eq(
      wgam_mesh_read_pkt(net.n[0].m, &lansrc, pkt, (size_t)len, net.now), 0);
  while (wgam_mesh_next_peer_update(net.n[0].m, &u))
    apply_update(0, &u);
  ck_assert(net.n[0].dev[1].ep.ip[0] == 192);

  ep.addr = tu_v4(203, 0, 113, 50, 40000);
  ep.time = UNIX0 + 10;
  after = next_write_after(&ep, 2500 * WGAM_MILLISECONDS, &seen);
  ck_assert_msg(after >= 6.0, "LAN try cut after %.1f s", after);
  ck_assert(same(&net.n[0].dev[1].ep, &ep.addr));
}
END_TEST

/* When the last REMOVE_ME seen by removals_alone() came, relative to its
 * @start. */
static double last_removal;

/* Drives node 0 alone for @dur, counting its REMOVE_ME updates for peer 1
 * and the times they came at, relative to @start. */
static int removals_alone(wgam_tstamp dur, wgam_tstamp start, double *first) {
  wgam_peer_update u;
  wgam_tstamp end = net.now + dur;
  int n = 0;

  while (net.now < end) {
    net.now += 100 * WGAM_MILLISECONDS;
    if (wgam_mesh_get_expiry(net.n[0].m) <= net.now)
      wgam_mesh_handle_expiry(net.n[0].m, net.now);
    if (wgam_mesh_get_wants(net.n[0].m) & WGAM_WANT_DEVICE)
      read_device(0);
    while (wgam_mesh_next_peer_update(net.n[0].m, &u)) {
      if (u.flags & WGAM_PEER_REMOVE_ME) {
        ck_assert_int_eq(idx_of(u.pubkey), 1);
        if (!n++)
          *first = (double)(net.now - start) / WGAM_SECONDS;
        last_removal = (double)(net.now - start) / WGAM_SECONDS;
        apply_update(0, &u);
        /* The same peer comes back whole, right after. */
        ck_assert_int_eq(wgam_mesh_next_peer_update(net.n[0].m, &u), 1);
        ck_assert_int_eq(idx_of(u.pubkey), 1);
        ck_assert_uint_eq(u.flags, WGAM_PEER_HAS_ENDPOINT |
                                       WGAM_PEER_HAS_KEEPALIVE |
                                       WGAM_PEER_REPLACE_ALLOWEDIPS);
      }
      apply_update(0, &u);
    }
    send_out(0);
  }
  return n;
}

/* Node 0 alone with peer 1 (pair_alone_keys(); its own endpoint out of
 * the peer list if @unconfigured), its first second over, then told of a
 * new endpoint of peer 1, returned in *@ep. Returns when it was told. */
static wgam_tstamp alone_told(int classic, int unconfigured, int greater_key,
                              wgam_endpoint *ep) {
  double first;

  alone_self_unconfigured = unconfigured;
  pair_alone_keys(classic, 0, greater_key);
  alone_self_unconfigured = 0;
  removals_alone(WGAM_SECONDS, net.now, &first);
  ep->addr = tu_v4(203, 0, 113, 50, 40000);
  ep->time = unix_now();
  announce_to(0, 1, ep, 1, 1);
  return net.now;
}

/* removals_alone() for 5 s, a handshake with peer 1 coming after @hs_ms
 * (never if negative). */
static int removals_until_handshake(int hs_ms, wgam_tstamp start,
                                    double *first) {
  int n;

  if (hs_ms < 0)
    return removals_alone(5 * WGAM_SECONDS, start, first);
  n = removals_alone((wgam_tstamp)hs_ms * WGAM_MILLISECONDS, start, first);
  net.n[0].dev[1].hs = unix_now();
  return n + removals_alone(4 * WGAM_SECONDS, start, first);
}

/* A try of a peer that never had a handshake is redone once after about a
 * second with the peer removed and added back (WireGuard would wait 5 s).
 * Also when an initiation came in without a handshake following (crossing
 * initiations: our answer replaced our own, and neither answer was taken),
 * once those bytes are half a second old, and then by the end with the
 * greater key a quarter of a second later still, so that the two ends do not
 * cross again. Not when the initiator's data follows the answer within that
 * half second (its new session would be thrown away), never in the classic
 * policy. */
START_TEST(test_early_retry_recreates) {
  static const struct {
    int classic, greater_key;
    uint64_t rx;      /* bytes the peer sent at the try's start */
    int handshake_ms; /* when a handshake completes, or -1 */
    double lo, hi;    /* when the peer is re-created, or 0: never */
    int unconfigured; /* our own endpoint is not in the peer list */
  } cases[] = {
      {0, 0, 0, -1, 0, 0.1, 0},     /* nothing came, and the entry had no
                                    endpoint before (its initiation was
                                    spent): at once (early_first) */
      {0, 1, 0, -1, 0.25, 0.35, 1}, /* the same, greater key: staggered */
      {0, 1, 0, -1, 0, 0.1, 0},     /* not when our endpoint is configured:
                                    the peer knew it from its start, the
                                    two did not learn of each other
                                    together */
      {0, 0, 148, -1, 0.9, 1.1, 0}, /* an answered initiation, no handshake:
                                    seen by the read soon after the try
                                    started, half a second old at 1 s */
      {0, 1, 148, -1, 1.2, 1.35,
       0},                       /* the same, greater key: another quarter */
      {0, 0, 148, 400, 0, 0, 0}, /* the initiator's data came within half
                                 a second of the answer: kept */
      {1, 0, 0, -1, 0, 0, 0},    /* classic */
  };
  wgam_endpoint ep;
  wgam_tstamp start;
  double first = -1;
  size_t c;
  int n;

  for (c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
    start = alone_told(cases[c].classic, cases[c].unconfigured,
                       cases[c].greater_key, &ep);
    net.n[0].dev[1].rx = cases[c].rx;
    first = -1;
    n = removals_until_handshake(cases[c].handshake_ms, start, &first);
    if (cases[c].hi == 0) {
      ck_assert_msg(n == 0, "case %zu: re-created after %.1f s", c, first);
      continue;
    }
    ck_assert_msg(n == 1, "case %zu: %d re-creations", c, n);
    ck_assert_msg(first >= cases[c].lo && first <= cases[c].hi,
                  "case %zu: re-created after %.1f s", c, first);
    ck_assert(same(&net.n[0].dev[1].ep, &ep.addr));
  }
}
END_TEST

/* A try that follows another within WireGuard's rekey timeout, on an entry
 * that never handshaked: its initiation went to the first address, and
 * WireGuard would send the next only 5 s after it. The entry is re-created
 * right after the read that shows no handshake, as on a first endpoint, not
 * early_retry later. */
START_TEST(test_second_try_recreated_at_once) {
  wgam_peer_update u;
  wgam_endpoint ep;
  wgam_tstamp start;
  double first = -1;
  int n;

  start = alone_told(0, 0, 0, &ep);
  n = removals_alone(300 * WGAM_MILLISECONDS, start, &first);
  ck_assert_int_eq(n, 1); /* the first endpoint's re-creation */
  while (wgam_mesh_next_peer_update(net.n[0].m, &u))
    apply_update(0, &u);
  /* Another address of the peer is told 0.3 s into the try: it cuts the
   * try at min_try (2 s), and the second try's entry is re-created then. */
  ep.addr = tu_v4(203, 0, 113, 51, 40001);
  ep.time = unix_now() + 1;
  announce_to(0, 1, &ep, 1, 9);
  first = -1;
  n = removals_alone(3 * WGAM_SECONDS, start, &first);
  ck_assert_msg(n >= 1, "no re-creation in the second try");
  ck_assert_msg(first >= 2.0 && first <= 2.2,
                "second try re-created %.1f s after the first began", first);
  ck_assert(same(&net.n[0].dev[1].ep, &ep.addr));
}
END_TEST

/* The peer's initiation came from another address than the one we were
 * told (behind a symmetric NAT its port towards us is its own) and was
 * answered, and no handshake followed (its data lost): the entry is
 * re-created there, where WireGuard had roamed it, not at the address
 * told. The peer holds a session and initiates no more; ours to the old
 * address would go unanswered until its rekey. */
START_TEST(test_early_retry_keeps_roamed) {
  wgam_peer_update u;
  wgam_endpoint ep;
  wgam_addr roamed = tu_v4(203, 0, 113, 50, 40007);
  wgam_tstamp start;
  double first = -1;
  int n;

  start = alone_told(0, 0, 0, &ep);
  while (wgam_mesh_next_peer_update(net.n[0].m, &u))
    apply_update(0, &u); /* the try's write of the address told */
  ck_assert(same(&net.n[0].dev[1].ep, &ep.addr));
  net.n[0].dev[1].ep = roamed;
  net.n[0].dev[1].rx = 148;
  n = removals_alone(2 * WGAM_SECONDS, start, &first);
  ck_assert_msg(n == 1, "%d re-creations", n);
  ck_assert_msg(first >= 0.5 && first <= 0.7, "re-created after %.1f s", first);
  ck_assert(same(&net.n[0].dev[1].ep, &roamed));
}
END_TEST

/* After the early re-creation, the peer's initiation comes on the new
 * entry and no handshake follows: the two initiations crossed (each end's
 * answer replaced its own initiation). The peer is re-created again once
 * those bytes are half a second old, the greater key (of a node whose
 * endpoint is not configured) a quarter of a second later still; not when
 * the handshake comes within that half second. */
START_TEST(test_early_retry_crossed) {
  static const struct {
    int greater_key;
    int cross_ms;     /* the peer's initiation comes then */
    int handshake_ms; /* a handshake completes then, or -1 */
    double lo, hi;    /* the first re-creation */
    double lo2, hi2;  /* the second, or 0: none */
  } cases[] = {
      {0, 200, -1, 0, 0.1, 0.7, 0.9},
      {1, 500, -1, 0.25, 0.35, 1.5, 1.65}, /* seen by the read early_quiet
                                             after our re-creation, 0.8 s */
      {0, 200, 500, 0, 0.1, 0, 0},
  };
  wgam_endpoint ep;
  wgam_tstamp start;
  double first = -1, again = -1;
  size_t c;
  int n;

  for (c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
    start = alone_told(0, cases[c].greater_key, cases[c].greater_key, &ep);
    first = -1;
    n = removals_alone((wgam_tstamp)cases[c].cross_ms * WGAM_MILLISECONDS,
                       start, &first);
    ck_assert_msg(n == 1, "case %zu: %d re-creations before the crossing", c,
                  n);
    ck_assert_msg(first >= cases[c].lo && first <= cases[c].hi,
                  "case %zu: re-created after %.2f s", c, first);
    net.n[0].dev[1].rx = 148; /* on the new entry: an initiation answered */
    n = removals_until_handshake(
        cases[c].handshake_ms < 0 ? -1
                                  : cases[c].handshake_ms - cases[c].cross_ms,
        start, &again);
    if (cases[c].hi2 == 0) {
      ck_assert_msg(n == 0, "case %zu: re-created again after %.2f s", c,
                    again);
      continue;
    }
    ck_assert_msg(n == 1, "case %zu: %d re-creations after the crossing", c, n);
    ck_assert_msg(again >= cases[c].lo2 && again <= cases[c].hi2,
                  "case %zu: re-created again after %.2f s", c, again);
  }
}
END_TEST

/* Both ends configured each other at start: the peer's initiation comes
 * 0.2 s into our first try (ours went out when we configured it), and no
 * handshake follows: the two initiations crossed. The peer is re-created
 * once those bytes are half a second old (the greater key a quarter of a
 * second later), not a whole early_retry after the try started. */
START_TEST(test_early_retry_first_crossing) {
  static const struct {
    int greater_key;
    double lo, hi;
  } cases[] = {{0, 0.7, 0.9}, {1, 0.95, 1.25}};
  wgam_tstamp start;
  double first = -1;
  size_t c;
  int n;

  for (c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
    alone_peer_configured = 1;
    pair_alone_keys(0, 0, cases[c].greater_key);
    alone_peer_configured = 0;
    start = net.now;
    n = removals_alone(200 * WGAM_MILLISECONDS, start, &first);
    ck_assert_msg(n == 0, "case %zu: re-created before the crossing", c);
    net.n[0].dev[1].rx = 148; /* its initiation, answered */
    n = removals_alone(1500 * WGAM_MILLISECONDS, start, &first);
    ck_assert_msg(n >= 1, "case %zu: not re-created", c);
    ck_assert_msg(first >= cases[c].lo && first <= cases[c].hi,
                  "case %zu: re-created after %.2f s", c, first);
  }
}
END_TEST

/* The first try of a peer on the endpoint its entry was created with (its
 * configured one) with nothing received: it may not have been up when our
 * initiation came, so the peer is re-created three times a third of a
 * second apart (it is reached soon after it comes up), then left to
 * WireGuard's retries. */
START_TEST(test_early_retry_repeated) {
  wgam_tstamp start = net.now;
  double first = -1;
  int n;

  alone_peer_configured = 1;
  pair_alone_keys(0, 0, 0);
  alone_peer_configured = 0;
  start = net.now;
  n = removals_alone(1500 * WGAM_MILLISECONDS, start, &first);
  ck_assert_msg(n == 3, "%d re-creations in 1.5 s", n);
  ck_assert_msg(first >= 0.3 && first <= 0.45, "first after %.2f s", first);
  ck_assert_msg(last_removal >= 0.95 && last_removal <= 1.35,
                "last after %.2f s", last_removal);
  n = removals_alone(5 * WGAM_SECONDS, start, &first);
  ck_assert_msg(n == 0, "%d more re-creations", n);
}
END_TEST

/* A handshake that lands between the last device read and the end of the
 * try window (WireGuard's 5 s retry does) keeps the endpoint it came
 * through: the window is judged on a read taken after it closed. Without
 * the handshake, the next candidate comes exactly at the end as before. */
START_TEST(test_late_handshake_kept) {
  wgam_endpoint eps[2];
  wgam_addr seen[8];
  wgam_tstamp at[8], start;
  wgam_peer_info info;
  int n, round;

  for (round = 0; round < 2; round++) {
    pair_alone(0, 0);
    n = 0;
    /* Half-way between two periodic reads (every 2 s from net.now). */
    net.now += 500 * WGAM_MILLISECONDS;
    start = net.now;
    eps[0].addr = tu_v4(198, 51, 100, 40, WG_PORT);
    eps[0].time = unix_now();
    eps[1].addr = tu_v4(198, 51, 100, 41, WG_PORT);
    eps[1].time = unix_now() - 10;
    announce_to(0, 1, eps, 2, 1);
    while (net.now < start + 10 * WGAM_SECONDS) {
      net.now += 100 * WGAM_MILLISECONDS;
      /* Just after the last read inside the window (at 5.5 s). */
      if (round == 0 && net.now == start + 5700 * WGAM_MILLISECONDS) {
        net.n[0].dev[1].hs = unix_now();
        net.n[0].dev[1].rx = net.n[0].dev[1].tx = 92;
      }
      /* From then on the session carries what we send both ways (an
       * unanswered path would be probed, and this peer is down). */
      if (round == 0 && net.now > start + 5700 * WGAM_MILLISECONDS)
        net.n[0].dev[1].rx = net.n[0].dev[1].tx;
      step_alone(seen, at, &n, 8);
    }
    ck_assert_int_ge(n, 1);
    ck_assert(same(&seen[0], &eps[0].addr));
    ck_assert_uint_le(at[0] - start, 100 * WGAM_MILLISECONDS);
    if (round == 0) {
      ck_assert_msg(n == 1, "endpoint moved to %s after a handshake",
                    n > 1 ? "another candidate" : "?");
      peer_info(0, 1, &info);
      ck_assert_int_eq(info.state, WGAM_PEER_CONNECTED);
      ck_assert(same(&info.endpoint, &eps[0].addr));
    } else {
      ck_assert_int_ge(n, 2);
      ck_assert(same(&seen[1], &eps[1].addr));
      ck_assert_uint_eq(at[1] - start, 6 * WGAM_SECONDS);
    }
  }
}
END_TEST

/* A state file loaded before the first device read (the daemon's order)
 * keeps what it says about ourselves: it is written back. */
struct find_key_ctx {
  const uint8_t *key;
  int found;
};
static int find_key_cb(const uint8_t *pk, size_t pklen,
                       const wgam_endpoint *eps, size_t n, void *u) {
  struct find_key_ctx *c = u;
  char b64[45];
  (void)eps;
  wgam_key_to_base64(b64, c->key);
  if (pklen == 44 && !memcmp(pk, b64, 44) && n == 1)
    c->found = 1;
  return 0;
}

START_TEST(test_state_before_identity) {
  wgam_peer_config cfg[2];
  uint8_t file[512], out[1024];
  wgam_endpoint ep;
  char b64[45];
  wgam_ssize n, k;
  struct find_key_ctx c;

  net_init(0, WGAM_SETTINGS_PERSIST);
  add_node(NAT_NONE, tu_v4(198, 51, 100, 1, WG_PORT), 0, (wgam_addr){0});
  add_node(NAT_NONE, tu_v4(198, 51, 100, 2, WG_PORT), 0, (wgam_addr){0});
  peers_cfg(cfg, (const int[]){0, 1}, 2);
  ck_assert_int_eq(wgam_mesh_set_peers(net.n[0].m, cfg, 2, net.now), 0);
  ep.addr = tu_v4(203, 0, 113, 77, 40000);
  ep.time = UNIX0 - 100;
  wgam_key_to_base64(b64, net.n[0].pub);
  n = wgam_state_encode_header(file, sizeof(file), 1);
  k = wgam_state_encode_entry(file + n, sizeof(file) - (size_t)n,
                              (const uint8_t *)b64, 44, &ep, 1);
  ck_assert_int_gt(k, 0);
  ck_assert_int_eq(
      wgam_mesh_load_state(net.n[0].m, file, (size_t)(n + k), net.now), 0);
  read_device(0);
  n = wgam_mesh_write_state(net.n[0].m, out, sizeof(out));
  ck_assert_int_gt(n, 8);
  c.key = net.n[0].pub;
  c.found = 0;
  ck_assert_int_eq(wgam_state_parse(out, (size_t)n, find_key_cb, &c), 0);
  ck_assert_msg(c.found, "our own entry was lost");
}
END_TEST

/* Keys that share the 8 bytes the key table hashes land in one run of
 * slots with one tag: each is still found by its own key (the tag only
 * saves reading other peers), a duplicate is still refused, and every mesh
 * address is still recognised (an announced endpoint equal to one is
 * dropped). */
START_TEST(test_table_collisions) {
  enum { NCOL = 300 };
  static wgam_peer_config cfg[NCOL + 1];
  uint8_t pkt[WGAM_MAX_DATAGRAM_LEN];
  char b64[45];
  wgam_msg msg;
  wgam_ssize len;
  wgam_peer_info info;
  wgam_stats st;
  wgam_addr src = tu_v4(100, 64, 0, 3, GOSSIP_PORT);
  size_t i, k;

  net_init(0, 0);
  add_node(NAT_NONE, tu_v4(198, 51, 100, 1, WG_PORT), 0, (wgam_addr){0});
  memset(cfg, 0, sizeof(cfg));
  memcpy(cfg[0].pubkey, net.n[0].pub, WGAM_KEY_LEN);
  cfg[0].address = net.n[0].mesh;
  for (i = 1; i <= NCOL; i++) {
    memset(cfg[i].pubkey, 0x5a, 8); /* the hashed bytes: all equal */
    cfg[i].pubkey[8] = (uint8_t)(i >> 8);
    cfg[i].pubkey[9] = (uint8_t)i;
    cfg[i].address = tu_v4(100, 65, (int)(i >> 8), (int)(i & 0xff), 0);
  }
  ck_assert_int_eq(wgam_mesh_set_peers(net.n[0].m, cfg, NCOL + 1, net.now), 0);
  for (i = 1; i <= NCOL; i++) {
    wgam_endpoint ep[2];

    ep[0].addr = tu_v4(203, 0, 113, (int)(i % 250) + 1, (uint16_t)(1000 + i));
    ep[0].time = UNIX0 + i;
    ep[1].addr = cfg[(i % NCOL) + 1].address; /* a mesh address */
    ep[1].addr.port = 51820;
    ep[1].time = UNIX0 + i;
    wgam_key_to_base64(b64, cfg[i].pubkey);
    memset(&msg, 0, sizeof(msg));
    msg.type = WGAM_MSG_ANNOUNCE;
    msg.pubkey = (const uint8_t *)b64;
    msg.pubkeylen = 44;
    msg.nendpoints = 2;
    memcpy(msg.endpoints, ep, sizeof(ep));
    len = seal_msg(pkt, sizeof(pkt), &msg, (uint8_t)i);
    ck_assert_int_eq(
        wgam_mesh_read_pkt(net.n[0].m, &src, pkt, (size_t)len, net.now), 0);
  }
  for (k = 0; k < wgam_mesh_get_npeers(net.n[0].m); k++) {
    ck_assert_int_eq(wgam_mesh_get_peer_info(net.n[0].m, k, &info), 0);
    if (!memcmp(info.pubkey, net.n[0].pub, WGAM_KEY_LEN))
      continue;
    i = (size_t)info.pubkey[8] << 8 | info.pubkey[9];
    ck_assert_msg(info.nknown == 1, "peer %zu: %u endpoints", i,
                  (unsigned)info.nknown);
    ck_assert_uint_eq(info.known[0].addr.port, 1000 + i);
  }
  wgam_mesh_get_stats(net.n[0].m, &st);
  ck_assert_uint_eq(st.rejected[WGAM_REJECT_BAD_ENDPOINT], NCOL);

  /* The same key twice, among the colliding ones: refused, nothing
   * applied. */
  memcpy(cfg[NCOL].pubkey, cfg[NCOL / 2].pubkey, WGAM_KEY_LEN);
  ck_assert_int_eq(wgam_mesh_set_peers(net.n[0].m, cfg, NCOL + 1, net.now),
                   WGAM_ERR_DUPLICATE_PEER);
  ck_assert_uint_eq(wgam_mesh_get_npeers(net.n[0].m), NCOL + 1);
}
END_TEST

/* The original's rule, written plainly: an endpoint is taken when no entry
 * has its address with an equal or newer time; the entries of its address
 * go and it is appended; the list is then sorted newest first (stable) and
 * cut to WGAM_MAX_ENDPOINTS. */
static size_t ref_merge(wgam_endpoint *list, size_t n, const wgam_endpoint *eps,
                        size_t neps) {
  wgam_endpoint tmp[WGAM_MAX_ENDPOINTS + 16];
  size_t i, j, k;

  memcpy(tmp, list, n * sizeof(*list));
  for (i = 0; i < neps; i++) {
    int skip = 0;
    for (j = 0; j < n; j++)
      if (wgam_addr_equal(&tmp[j].addr, &eps[i].addr) &&
          tmp[j].time >= eps[i].time)
        skip = 1;
    if (skip)
      continue;
    for (j = k = 0; j < n; j++)
      if (!wgam_addr_equal(&tmp[j].addr, &eps[i].addr))
        tmp[k++] = tmp[j];
    n = k;
    tmp[n++] = eps[i];
  }
  for (i = 1; i < n; i++) { /* stable insertion sort, newest first */
    wgam_endpoint e = tmp[i];
    for (j = i; j > 0 && tmp[j - 1].time < e.time; j--)
      tmp[j] = tmp[j - 1];
    tmp[j] = e;
  }
  if (n > WGAM_MAX_ENDPOINTS)
    n = WGAM_MAX_ENDPOINTS;
  memcpy(list, tmp, n * sizeof(*list));
  return n;
}

/* The engine's merge (compared words, entries replaced in place, an order
 * kept on the side) gives the store the plain rule gives, over random
 * announces: few addresses (so that they repeat), IPv4 and IPv6, few times
 * (so that they tie), duplicates within an announce. */
START_TEST(test_merge_matches_reference) {
  wgam_endpoint ref[WGAM_MAX_ENDPOINTS], eps[12];
  wgam_peer_info info;
  size_t nref = 0, neps, i;
  uint64_t x = 0x9e3779b97f4a7c15ull;
  int round;

  net_init(0, 0);
  add_node(NAT_NONE, tu_v4(198, 51, 100, 1, WG_PORT), 0, (wgam_addr){0});
  add_node(NAT_NONE, tu_v4(198, 51, 100, 2, WG_PORT), 0, (wgam_addr){0});
  configure(NULL);
  for (round = 0; round < 20000; round++) {
    if (round % 500 == 0) { /* start over now and then: small stores too */
      net_init(0, 0);
      add_node(NAT_NONE, tu_v4(198, 51, 100, 1, WG_PORT), 0, (wgam_addr){0});
      add_node(NAT_NONE, tu_v4(198, 51, 100, 2, WG_PORT), 0, (wgam_addr){0});
      configure(NULL);
      nref = 0;
    }
    x = x * 6364136223846793005ull + 1442695040888963407ull;
    neps = (size_t)(x >> 60) % 9 + 1;
    for (i = 0; i < neps; i++) {
      unsigned r;

      x = x * 6364136223846793005ull + 1442695040888963407ull;
      r = (unsigned)(x >> 33);
      memset(&eps[i].addr, 0, sizeof(eps[i].addr));
      if (r & 1) {
        eps[i].addr = tu_v4(203, 0, 113, 1 + (int)(r >> 1) % 6, 4000);
        eps[i].addr.port = (uint16_t)(4000 + (r >> 4) % 2);
      } else {
        eps[i].addr.family = WGAM_AF_INET6;
        eps[i].addr.port = 4000;
        eps[i].addr.ip[0] = 0x20;
        eps[i].addr.ip[1] = 0x01;
        eps[i].addr.ip[2] = 0x0d;
        eps[i].addr.ip[3] = 0xb8;
        eps[i].addr.ip[15] = (uint8_t)(1 + (r >> 1) % 4);
      }
      eps[i].time = UNIX0 + (r >> 8) % 6 + (uint64_t)round / 8;
    }
    announce_to(0, 1, eps, neps, (uint8_t)round);
    nref = ref_merge(ref, nref, eps, neps);
    peer_info(0, 1, &info);
    ck_assert_uint_eq(info.nknown, nref);
    for (i = 0; i < nref; i++) {
      ck_assert_msg(same(&info.known[i].addr, &ref[i].addr) &&
                        info.known[i].time == ref[i].time,
                    "round %d: entry %zu differs", round, i);
    }
  }
}
END_TEST

/* Merge rule: at most 5 per key, newest first, replace only if newer; bad
 * endpoints (loopback, multicast, unspecified, mesh addresses) ignored. */
START_TEST(test_merge_rule) {
  wgam_endpoint eps[8];
  wgam_peer_info info;
  int k;

  net_init(0, 0);
  for (k = 0; k < 3; k++)
    add_node(NAT_NONE, tu_v4(198, 51, 100, k + 1, WG_PORT), 0, (wgam_addr){0});
  configure(NULL);
  for (k = 0; k < 7; k++) {
    eps[k].addr = tu_v4(198, 51, 100, 10 + k, 1000);
    eps[k].time = UNIX0 + (uint64_t)k;
  }
  announce_to(0, 1, eps, 7, 1);
  peer_info(0, 1, &info);
  ck_assert_uint_eq(info.nknown, 5);
  for (k = 0; k < 5; k++) {
    ck_assert(same(&info.known[k].addr, &eps[6 - k].addr));
    ck_assert_uint_eq(info.known[k].time, UNIX0 + 6 - (uint64_t)k);
  }
  /* An older time for a known address changes nothing. */
  eps[0] = eps[6];
  eps[0].time = UNIX0 - 1;
  announce_to(0, 1, eps, 1, 2);
  peer_info(0, 1, &info);
  ck_assert_uint_eq(info.known[0].time, UNIX0 + 6);
  /* A newer one replaces it and moves it to the front. */
  eps[0] = info.known[4];
  eps[0].time = UNIX0 + 100;
  announce_to(0, 1, eps, 1, 3);
  peer_info(0, 1, &info);
  ck_assert(same(&info.known[0].addr, &eps[0].addr));
  ck_assert_uint_eq(info.nknown, 5);

  /* Bad endpoints are dropped and counted. */
  {
    wgam_stats st;
    wgam_endpoint bad[4];
    memset(bad, 0, sizeof(bad));
    bad[0].addr = tu_v4(127, 0, 0, 1, 5);
    bad[1].addr = tu_v4(224, 0, 0, 1, 5);
    bad[2].addr = tu_v4(0, 0, 0, 0, 5);
    bad[3].addr = tu_v4(100, 64, 0, 2, 5); /* a mesh address */
    for (k = 0; k < 4; k++)
      bad[k].time = UNIX0 + 1000;
    announce_to(0, 2, bad, 4, 4);
    peer_info(0, 2, &info);
    ck_assert_uint_eq(info.nknown, 0);
    wgam_mesh_get_stats(net.n[0].m, &st);
    ck_assert_uint_eq(st.rejected[WGAM_REJECT_BAD_ENDPOINT], 1);
  }
}
END_TEST

/* Node 0 with 13 connected peers (configured in reverse order if @reversed),
 * its first device read done and drained;
 * star_touch() reads the device again with traffic from every peer. */
static wgam_device_peer star_dp[14];
static wgam_device star_dev;

/* A star peer that sends nothing now (0: none). */
static int star_quiet;
/* A star peer whose endpoint the peer list gives (0: none; star_config()
 * uses it once). */
static int star_cfg_ep;
/* Node 0's own endpoint is in the peer list (star_config() uses it once). */
static int star_self_ep;

static void star_touch(void) {
  int k;
  for (k = 1; k < 14; k++)
    if (k != star_quiet)
      star_dp[k].rx_bytes += 32;
  ck_assert_int_eq(
      wgam_mesh_observe_device(net.n[0].m, &star_dev, net.now, unix_now()), 0);
}

/* The peers node 0 sent a Request to on its first device read. */
static int star_asked[14], star_nasked;

/* Node 0 configured with 13 public peers, its device holding all of them
 * with a handshake 5 s ago; not read yet. */
static void star_config(int reversed) {
  static wgam_peer_config cfg[14];
  static wgam_cidr cidr[14];
  wgam_device_peer *dp = star_dp;
  wgam_device dev;
  int k;

  star_quiet = 0;
  net_init(0, 0);
  for (k = 0; k < 14; k++)
    add_node(NAT_NONE, tu_v4(198, 51, 100, k + 1, WG_PORT), 0, (wgam_addr){0});
  for (k = 0; k < 14; k++) {
    int j = reversed ? 13 - k : k; /* same peers, another config order */
    memset(&cfg[k], 0, sizeof(cfg[k]));
    memcpy(cfg[k].pubkey, net.n[j].pub, 32);
    cfg[k].address = net.n[j].mesh;
    if ((j == star_cfg_ep && j) || (j == 0 && star_self_ep))
      cfg[k].endpoint = net.n[j].ext;
  }
  star_cfg_ep = 0;
  star_self_ep = 0;
  ck_assert_int_eq(wgam_mesh_set_peers(net.n[0].m, cfg, 14, net.now), 0);
  memset(&dev, 0, sizeof(dev));
  memcpy(dev.pubkey, net.n[0].pub, 32);
  dev.has_pubkey = 1;
  dev.listen_port = WG_PORT;
  for (k = 1; k < 14; k++) {
    memset(&dp[k], 0, sizeof(dp[k]));
    memcpy(dp[k].pubkey, net.n[k].pub, 32);
    dp[k].endpoint = net.n[k].ext;
    dp[k].last_handshake = unix_now() - 5;
    cidr[k].addr = net.n[k].mesh;
    cidr[k].prefixlen = 32;
    dp[k].allowedips = &cidr[k];
    dp[k].nallowedips = 1;
    dp[k].persistent_keepalive = 30;
  }
  dev.peers = dp + 1;
  dev.npeers = 13;
  star_dev = dev;
}

/* Node 0's first device read, and the Requests it sends. */
static void star_first_read(void) {
  uint8_t buf[WGAM_MAX_DATAGRAM_LEN];
  wgam_addr dest;
  wgam_ssize len;

  ck_assert_int_eq(
      wgam_mesh_observe_device(net.n[0].m, &star_dev, net.now, unix_now()), 0);
  star_nasked = 0;
  while ((len = wgam_mesh_write_pkt(net.n[0].m, &dest, buf, sizeof(buf),
                                    net.now)) > 0) {
    uint8_t plain[WGAM_MAX_PLAINTEXT_LEN], key[32];
    wgam_msg msg;

    wgam_key_derive(key, (const uint8_t *)"test secret", 11);
    len = wgam_pkt_open(plain, sizeof(plain), key, buf, (size_t)len);
    ck_assert_int_gt(wgam_msg_decode(&msg, plain, (size_t)len), 0);
    if (msg.type == WGAM_MSG_REQUEST && star_nasked < 14)
      star_asked[star_nasked++] = by_mesh(&dest);
  }
}

static void star_of_14(int reversed) {
  star_config(reversed);
  star_first_read();
}

/* Datagrams of @type node @i sends now to node @to (-1: to anyone), and,
 * when @first is not NULL, only Announces whose first endpoint is @first;
 * the first endpoint of the last such Announce in @ep when not NULL. The
 * rest of the queue is drained too. */
static int sent_matching(int i, uint8_t type, int to, const wgam_addr *first,
                         wgam_endpoint *ep) {
  uint8_t buf[WGAM_MAX_DATAGRAM_LEN], plain[WGAM_MAX_PLAINTEXT_LEN], key[32];
  wgam_addr dest;
  wgam_ssize len;
  wgam_msg msg;
  int n = 0;

  wgam_key_derive(key, (const uint8_t *)"test secret", 11);
  while ((len = wgam_mesh_write_pkt(net.n[i].m, &dest, buf, sizeof(buf),
                                    net.now)) > 0) {
    len = wgam_pkt_open(plain, sizeof(plain), key, buf, (size_t)len);
    ck_assert_int_gt(len, 0);
    ck_assert_int_gt(wgam_msg_decode(&msg, plain, (size_t)len), 0);
    if (msg.type != type || (to >= 0 && by_mesh(&dest) != to))
      continue;
    if (first && (type != WGAM_MSG_ANNOUNCE || !msg.nendpoints ||
                  !same(&msg.endpoints[0].addr, first)))
      continue;
    n++;
    if (ep && type == WGAM_MSG_ANNOUNCE && msg.nendpoints)
      *ep = msg.endpoints[0];
  }
  return n;
}

static int sent_of(int i, uint8_t type, int to, wgam_endpoint *ep) {
  return sent_matching(i, type, to, NULL, ep);
}

/* Announces node @i sends now (probes and the rest are drained too). */
static int count_out(int i) {
  return sent_of(i, WGAM_MSG_ANNOUNCE, -1, NULL);
}

/* Lets @ns pass with every star peer sending (its received bytes grow each
 * half second): no path goes silent, so none comes back to be caught up. */
static void star_live(wgam_tstamp ns) {
  wgam_tstamp end = net.now + ns;

  while (net.now < end) {
    net.now += WGAM_SECONDS / 2;
    star_touch();
    if (wgam_mesh_get_expiry(net.n[0].m) <= net.now)
      wgam_mesh_handle_expiry(net.n[0].m, net.now);
    count_out(0);
  }
}

/* Propagation goes to at most 10 connected peers, in a fixed per-pair
 * order; Request is answered with every known announce; Ping with Pong. */
START_TEST(test_propagation_request_ping) {
  wgam_endpoint ep;
  wgam_addr dest, targets1[20];
  uint8_t buf[WGAM_MAX_DATAGRAM_LEN];
  wgam_ssize len;
  int k, n1 = 0, round;
  wgam_msg msg;

  for (round = 0; round < 2; round++) {
    int n = 0;
    star_of_14(round);
    /* Past the hold time of the first read's own announces. */
    net.now += 3 * WGAM_SECONDS;
    ep.addr = tu_v4(198, 51, 100, 200, 7);
    ep.time = UNIX0 + 5000;
    announce_to(0, 5, &ep, 1, 9);
    while ((len = wgam_mesh_write_pkt(net.n[0].m, &dest, buf, sizeof(buf),
                                      net.now)) > 0) {
      uint8_t plain[WGAM_MAX_PLAINTEXT_LEN], key[32];
      wgam_key_derive(key, (const uint8_t *)"test secret", 11);
      len = wgam_pkt_open(plain, sizeof(plain), key, buf, (size_t)len);
      ck_assert_int_eq(wgam_msg_decode(&msg, plain, (size_t)len) > 0, 1);
      if (msg.type != WGAM_MSG_ANNOUNCE)
        continue; /* a liveness probe */
      ck_assert_int_eq(dest.port, GOSSIP_PORT);
      ck_assert(!same(&dest, &net.n[5].mesh)); /* not to the subject */
      if (round == 0)
        targets1[n1++] = dest;
      else {
        int found = 0;
        for (k = 0; k < n1; k++)
          found |= same(&targets1[k], &dest);
        ck_assert_msg(found, "propagation set depends on config order");
      }
      n++;
    }
    ck_assert_int_eq(n, 10);
  }

  /* Request: one Announce per known key (13 peers observed). */
  {
    wgam_addr src = net.n[3].mesh;
    int announces = 0;
    src.port = GOSSIP_PORT;
    memset(&msg, 0, sizeof(msg));
    msg.type = WGAM_MSG_REQUEST;
    len = seal_msg(buf, sizeof(buf), &msg, 11);
    ck_assert_int_eq(
        wgam_mesh_read_pkt(net.n[0].m, &src, buf, (size_t)len, net.now), 0);
    while ((len = wgam_mesh_write_pkt(net.n[0].m, &dest, buf, sizeof(buf),
                                      net.now)) > 0) {
      ck_assert(same(&dest, &src));
      announces++;
    }
    ck_assert_int_eq(announces, 13);
    /* A source that is no address is refused: answers go back to it. */
    {
      wgam_addr none;
      memset(&none, 0, sizeof(none));
      memset(&msg, 0, sizeof(msg));
      msg.type = WGAM_MSG_PING;
      len = seal_msg(buf, sizeof(buf), &msg, 13);
      ck_assert_int_eq(
          wgam_mesh_read_pkt(net.n[0].m, &none, buf, (size_t)len, net.now),
          WGAM_ERR_INVALID_ARGUMENT);
    }
    /* A replayed Request right after is not answered again. */
    memset(&msg, 0, sizeof(msg));
    msg.type = WGAM_MSG_REQUEST;
    len = seal_msg(buf, sizeof(buf), &msg, 11);
    ck_assert_int_eq(
        wgam_mesh_read_pkt(net.n[0].m, &src, buf, (size_t)len, net.now),
        WGAM_ERR_PKT_IGNORED);
    ck_assert_int_eq(
        wgam_mesh_write_pkt(net.n[0].m, &dest, buf, sizeof(buf), net.now), 0);

    memset(&msg, 0, sizeof(msg));
    msg.type = WGAM_MSG_PING;
    len = seal_msg(buf, sizeof(buf), &msg, 12);
    ck_assert_int_eq(
        wgam_mesh_read_pkt(net.n[0].m, &src, buf, (size_t)len, net.now), 0);
    len = wgam_mesh_write_pkt(net.n[0].m, &dest, buf, sizeof(buf), net.now);
    ck_assert_int_eq(len, 44);
    ck_assert(same(&dest, &src));
    {
      uint8_t plain[64], key[32];
      wgam_key_derive(key, (const uint8_t *)"test secret", 11);
      ck_assert_int_eq(wgam_pkt_open(plain, sizeof(plain), key, buf, 44), 4);
      ck_assert_int_eq(wgam_msg_decode(&msg, plain, 4), 4);
      ck_assert_int_eq(msg.type, WGAM_MSG_PONG);
    }
  }
}
END_TEST

/* Fresher times alone are not flooded; a subject whose endpoints keep
 * changing is propagated with a doubling hold time, and what changed
 * during a hold is sent when it ends. */
START_TEST(test_propagation_damping) {
  uint64_t base;
  wgam_endpoint ep;
  int k, sent = 0, bursts = 0;

  star_of_14(0);
  star_live(3 * WGAM_SECONDS);
  ep.addr = tu_v4(198, 51, 100, 200, 7);
  base = unix_now(); /* times within a minute ahead are taken as they are */
  ep.time = base + 8;
  announce_to(0, 5, &ep, 1, 1);
  ck_assert_int_eq(count_out(0), 10);
  ep.time++;
  announce_to(0, 5, &ep, 1, 2); /* same address, newer time */
  ck_assert_int_eq(count_out(0), 0);

  for (k = 0; k < 40; k++) { /* a new address every 0.5 s for 20 s */
    int n;
    net.now += WGAM_SECONDS / 2;
    star_touch();
    if (wgam_mesh_get_expiry(net.n[0].m) <= net.now)
      wgam_mesh_handle_expiry(net.n[0].m, net.now);
    ep.addr = tu_v4(198, 51, 100, 201, (uint16_t)(1000 + k));
    ep.time = base + 20 + (uint64_t)k;
    announce_to(0, 5, &ep, 1, (uint8_t)(10 + k));
    n = count_out(0);
    sent += n;
    bursts += n > 0;
  }
  /* Undamped, that would be 40 bursts of 10. The hold doubles from 4 s (the
   * first read's announces started it): bursts at +4 and +12 s. */
  ck_assert_int_ge(bursts, 2);
  ck_assert_int_le(bursts, 5);
  ck_assert_int_le(sent, 10 * bursts);
  /* The last change is not lost: it goes out when the hold ends. */
  {
    wgam_peer_info info;
    int later = 0;
    peer_info(0, 5, &info);
    ck_assert(same(&info.known[0].addr, &ep.addr));
    for (k = 0; k < 80; k++) {
      net.now += WGAM_SECONDS / 2;
      star_touch();
      if (wgam_mesh_get_expiry(net.n[0].m) <= net.now)
        wgam_mesh_handle_expiry(net.n[0].m, net.now);
      later += count_out(0);
    }
    ck_assert_int_ge(later, 10);
  }
}
END_TEST

/* The star with peer @k on the device but never handshaked nor given an
 * endpoint, read and past the first read's hold times. */
static void star_without(int k) {
  star_config(0);
  star_dp[k].last_handshake = 0;
  memset(&star_dp[k].endpoint, 0, sizeof(star_dp[k].endpoint));
  star_first_read();
  star_live(3 * WGAM_SECONDS);
}

/* The first public address of a peer known so far only at a private one
 * (its LAN neighbours spread what they see of it first) is flooded at
 * once, not held back by the hold that first news started; later changes
 * are damped as before. */
START_TEST(test_first_public_not_held) {
  wgam_endpoint ep;

  star_without(7);
  count_out(0);
  ep.addr = tu_v4(192, 168, 7, 7, 51820);
  ep.time = unix_now();
  announce_to(0, 7, &ep, 1, 1);
  ck_assert_int_eq(count_out(0), 10);
  net.now += WGAM_SECONDS / 2;
  ep.addr = tu_v4(203, 0, 113, 7, 40000);
  ep.time = unix_now();
  announce_to(0, 7, &ep, 1, 2);
  ck_assert_int_eq(count_out(0), 10);
  net.now += WGAM_SECONDS / 2;
  ep.addr = tu_v4(203, 0, 113, 7, 40001);
  ep.time = unix_now();
  announce_to(0, 7, &ep, 1, 3);
  ck_assert_int_eq(count_out(0), 0);
}
END_TEST

/* An observation is flooded when it is new. Announced again after the
 * gossip interval (same endpoint, newer handshake) it only refreshes the
 * store, even where newer entries had pushed it out: every observer of a
 * symmetric NAT would otherwise start a wave each, every interval. */
START_TEST(test_observation_not_reflooded) {
  wgam_endpoint ep[WGAM_MAX_ENDPOINTS];
  wgam_peer_info info;
  int k, found, later = 0;

  star_of_14(0);
  star_live(3 * WGAM_SECONDS);
  /* What other observers see of node 5, as behind a symmetric NAT. */
  for (k = 0; k < WGAM_MAX_ENDPOINTS; k++) {
    ep[k].addr = tu_v4(198, 51, 100, 6, (uint16_t)(2000 + k));
    ep[k].time = unix_now() - 1;
  }
  announce_to(0, 5, ep, WGAM_MAX_ENDPOINTS, 1);
  ck_assert_int_eq(count_out(0), 10);
  peer_info(0, 5, &info);
  for (k = 0, found = 0; k < (int)info.nknown; k++)
    found |= same(&info.known[k].addr, &net.n[5].ext);
  ck_assert(!found);

  /* Rekeys on unchanged paths, past the gossip interval (300 s). */
  for (k = 1; k <= 400; k++) {
    net.now += WGAM_SECONDS;
    if (k % 120 == 0)
      for (int j = 1; j < 14; j++)
        star_dp[j].last_handshake = unix_now();
    star_touch();
    if (wgam_mesh_get_expiry(net.n[0].m) <= net.now)
      wgam_mesh_handle_expiry(net.n[0].m, net.now);
    later += count_out(0);
  }
  ck_assert_int_eq(later, 0);
  /* The store has it again, with the newer time. */
  peer_info(0, 5, &info);
  ck_assert(same(&info.known[0].addr, &net.n[5].ext));
  ck_assert_uint_eq(info.known[0].time, star_dp[5].last_handshake);

  /* A new endpoint seen by the device is news: flooded, and node 5 is
   * told where it is seen now. */
  star_dp[5].endpoint = tu_v4(198, 51, 100, 7, 3000);
  star_dp[5].last_handshake = unix_now();
  net.now += WGAM_SECONDS;
  star_touch();
  ck_assert_int_eq(count_out(0), 11);
}
END_TEST

/* A store that holds only a subject's configured endpoint (literal, so
 * the same in every node's configuration) is no news; what a hostname
 * resolved to, or any other address, is. */
START_TEST(test_configured_endpoint_not_flooded) {
  static wgam_peer_config cfg[16];
  wgam_endpoint ep;
  int k;

  star_of_14(0);
  add_node(NAT_NONE, tu_v4(203, 0, 113, 15, WG_PORT), 0, (wgam_addr){0});
  add_node(NAT_NONE, tu_v4(203, 0, 113, 16, WG_PORT), 0, (wgam_addr){0});
  for (k = 0; k < 16; k++) {
    memset(&cfg[k], 0, sizeof(cfg[k]));
    memcpy(cfg[k].pubkey, net.n[k].pub, 32);
    cfg[k].address = net.n[k].mesh;
  }
  cfg[14].endpoint = net.n[14].ext;
  ck_assert_int_eq(wgam_mesh_set_peers(net.n[0].m, cfg, 16, net.now), 0);
  ck_assert_int_eq(wgam_mesh_set_peer_endpoints(net.n[0].m, net.n[15].pub,
                                                &net.n[15].ext, 1, net.now),
                   0);
  net.now += 3 * WGAM_SECONDS;
  star_touch();
  count_out(0);

  ep.addr = net.n[14].ext;
  ep.time = unix_now();
  announce_to(0, 14, &ep, 1, 1);
  ck_assert_int_eq(count_out(0), 0);
  ep.addr = net.n[15].ext; /* the same, but resolved from a hostname */
  announce_to(0, 15, &ep, 1, 2);
  ck_assert_int_eq(count_out(0), 10);
  ep.addr = tu_v4(198, 51, 100, 99, 4000); /* node 14 elsewhere: news */
  ep.time++;
  announce_to(0, 14, &ep, 1, 3);
  ck_assert_int_eq(count_out(0), 10);
}
END_TEST

/* What a node we asked for its store sends back is taken, tried, and not
 * flooded again (it spread it when it learned it); the same from a node we
 * did not ask, after the answer's burst, or after the answer window, is
 * news. */
START_TEST(test_answers_not_reflooded) {
  wgam_endpoint ep;
  wgam_peer_info info;
  int asked, other = -1, k;

  star_config(0);
  /* With roam hints the answer ends answer_burst after it began. */
  ck_assert_int_eq(wgam_mesh_set_roam_hints(net.n[0].m, 1, net.now), 0);
  star_first_read();
  ck_assert_int_ge(star_nasked, 1);
  asked = star_asked[0];
  for (k = 1; k < 14 && other < 0; k++) {
    int j, was = 0;
    for (j = 0; j < star_nasked; j++)
      was |= star_asked[j] == k;
    if (!was && k != 5 && k != 7)
      other = k;
  }
  ck_assert_int_ne(asked, 5);
  ck_assert_int_ne(asked, 6);
  ck_assert_int_ne(other, 7);
  /* Past the hold time of the first read's own announces (2 s), within
   * the answer window (3 s). */
  net.now += 2100 * WGAM_MILLISECONDS;
  ep.addr = tu_v4(203, 0, 113, 77, 7000);
  ep.time = unix_now();
  announce_from(0, asked, 5, &ep, 1, 1);
  ck_assert_int_eq(count_out(0), 0);
  peer_info(0, 5, &info);
  ck_assert(same(&info.known[0].addr, &ep.addr));
  /* The rest of the answer comes with it (within answer_burst) ... */
  net.now += 300 * WGAM_MILLISECONDS;
  ep.addr = tu_v4(203, 0, 113, 80, 7000);
  announce_from(0, asked, 8, &ep, 1, 4);
  ck_assert_int_eq(count_out(0), 0);
  /* ... and what the asked node sends after it is news, though within
   * the answer window (a peer that moved right after we asked). */
  net.now += 300 * WGAM_MILLISECONDS;
  ep.addr = tu_v4(203, 0, 113, 81, 7000);
  announce_from(0, asked, 9, &ep, 1, 5);
  ck_assert_int_eq(count_out(0), 10);

  ep.addr = tu_v4(203, 0, 113, 78, 7000);
  announce_from(0, other, 7, &ep, 1, 2);
  ck_assert_int_eq(count_out(0), 10);

  net.now += 4 * WGAM_SECONDS; /* past the answer window */
  star_touch();
  count_out(0);
  ep.addr = tu_v4(203, 0, 113, 79, 7000);
  ep.time = unix_now();
  announce_from(0, asked, 6, &ep, 1, 3);
  ck_assert_int_eq(count_out(0), 10);
}
END_TEST

/* Announces node @i sends now to node @to whose first endpoint is @addr
 * (the rest is drained). */
static int announces_of(int i, int to, const wgam_addr *addr) {
  return sent_matching(i, WGAM_MSG_ANNOUNCE, to, addr, NULL);
}

/* A connected peer that WireGuard finds at another address (its NAT lost
 * its mappings) missed what we sent to where it was since we last heard
 * it there: that news is sent to it again, and only that. */
START_TEST(test_moved_peer_caught_up) {
  wgam_addr moved5 = tu_v4(203, 0, 113, 55, 7005);
  int k;

  star_of_14(0);
  star_live(3 * WGAM_SECONDS); /* past the first read's hold times */
  /* Peer 5 moves: announced to the others (and to itself). */
  star_dp[5].endpoint = moved5;
  star_touch();
  ck_assert_int_eq(announces_of(0, 9, &moved5), 1);
  /* Peer 9 moved too, before that announce could reach it. */
  net.now += WGAM_SECONDS / 2;
  star_dp[9].endpoint = tu_v4(203, 0, 113, 59, 7009);
  star_touch();
  ck_assert_int_eq(announces_of(0, 9, &moved5), 1);
  /* Heard since at its new address: nothing is sent to it again, nor to a
   * peer that moves after it was heard where it was. */
  star_live(3 * WGAM_SECONDS);
  star_dp[11].endpoint = tu_v4(203, 0, 113, 61, 7011);
  star_touch();
  ck_assert_int_eq(announces_of(0, 11, &moved5), 0);
  for (k = 1; k < 14; k++)
    ck_assert_int_eq(announces_of(0, k, &moved5), 0);
}
END_TEST

/* A peer found at another address than the one we had put it at is told
 * so (its NAT moved: until it sends to each peer from there, their packets
 * do not get through), also when its address came to our store from
 * others, so that we never announced it ourselves. */
START_TEST(test_moved_peer_told) {
  wgam_addr moved5 = tu_v4(203, 0, 113, 55, 7005);
  wgam_peer_update upd;
  wgam_peer_info info;
  wgam_endpoint ep;

  star_without(5);
  /* Told by a peer where 5 is, node 0 puts it there and a handshake
   * follows. */
  ep.addr = net.n[5].ext;
  ep.time = unix_now();
  announce_from(0, 3, 5, &ep, 1, 1);
  net.now += 100 * WGAM_MILLISECONDS;
  star_dp[5].endpoint = net.n[5].ext;
  star_dp[5].last_handshake = unix_now();
  star_live(3 * WGAM_SECONDS);
  peer_info(0, 5, &info);
  ck_assert_int_eq(info.state, WGAM_PEER_CONNECTED);
  while (wgam_mesh_next_peer_update(net.n[0].m, &upd) == 1)
    ; /* applied (the star's device already has them) */
  /* Its NAT moves. */
  star_dp[5].endpoint = moved5;
  star_touch();
  ck_assert_int_eq(announces_of(0, 5, &moved5), 1);
}
END_TEST

/* Lets @ms pass in device reads of 100 ms (every star peer sending);
 * returns the Pings node 0 sent to node @to meanwhile. */
static int star_pings(int ms, int to) {
  int pings = 0, t;

  for (t = 0; t < ms; t += 100) {
    net.now += 100 * WGAM_MILLISECONDS;
    star_touch();
    if (wgam_mesh_get_expiry(net.n[0].m) <= net.now)
      wgam_mesh_handle_expiry(net.n[0].m, net.now);
    pings += sent_of(0, WGAM_MSG_PING, to, NULL);
  }
  return pings;
}

/* A Request answer is what the mesh knew before, not news that the peer
 * moved: another address for a working peer in an answer leaves its path
 * alone (at a thousand nodes, answers full of the ports symmetric NATs show
 * each observer had working paths probed and declared silent, and a peer
 * back from silence caught up on all of it and flooded the mesh). The same
 * address as news is checked at once. */
START_TEST(test_answer_not_news) {
  wgam_endpoint ep;
  wgam_peer_info info;
  int asked, k, subject = -1, other = -1;

  star_of_14(0);
  ck_assert_int_ge(star_nasked, 1);
  asked = star_asked[0];
  for (k = 1; k < 14 && (subject < 0 || other < 0); k++) {
    int j, was = 0;
    for (j = 0; j < star_nasked; j++)
      was |= star_asked[j] == k;
    if (was)
      continue;
    if (subject < 0)
      subject = k;
    else
      other = k;
  }
  ck_assert_int_gt(subject, 0);
  ck_assert_int_gt(other, 0);
  star_pings(1000, -1);
  star_quiet = subject; /* an idle path, as most are */
  ck_assert_int_eq(star_pings(300, subject), 0);
  /* Within the answer window (3 s after the first read's Requests). */
  ep.addr = tu_v4(203, 0, 113, 90, 7000);
  ep.time = unix_now();
  announce_from(0, asked, subject, &ep, 1, 1);
  peer_info(0, subject, &info);
  ck_assert(same(&info.known[0].addr, &ep.addr)); /* stored, */
  ck_assert_int_eq(star_pings(1000, subject), 0); /* the path left alone */
  peer_info(0, subject, &info);
  ck_assert_int_eq(info.state, WGAM_PEER_CONNECTED);

  star_quiet = 0;
  star_pings(2000, -1); /* past the answer window */
  star_quiet = subject;
  ck_assert_int_eq(star_pings(300, subject), 0);
  ep.addr = tu_v4(203, 0, 113, 91, 7000);
  ep.time = unix_now();
  announce_from(0, other, subject, &ep, 1, 2);
  ck_assert_int_ge(star_pings(500, subject), 1);
  star_quiet = 0;
}
END_TEST

/* An endpoint WireGuard roamed to without a new handshake is announced
 * with the time of the bytes that moved it, not the old handshake's: else
 * it ranks below the address the peer left, in every store it reaches. Here
 * node 0 never announced its own view of peer 5 (the store had it from
 * gossip already), so the move is plain news to it. */
START_TEST(test_roamed_endpoint_time) {
  wgam_endpoint ep, out;
  uint64_t hs;

  star_config(0);
  ep.addr = star_dp[5].endpoint;
  ep.time = unix_now() - 1;
  announce_to(0, 5, &ep, 1, 1);
  star_first_read();
  sent_of(0, WGAM_MSG_ANNOUNCE, -1, NULL);
  hs = star_dp[5].last_handshake;
  star_pings(20000, -1); /* WireGuard keeps the session: no handshake */
  star_dp[5].endpoint = tu_v4(203, 0, 113, 92, 7000);
  net.now += 100 * WGAM_MILLISECONDS;
  star_touch();
  memset(&out, 0, sizeof(out));
  ck_assert_int_ge(sent_of(0, WGAM_MSG_ANNOUNCE, -1, &out), 1);
  ck_assert(same(&out.addr, &star_dp[5].endpoint));
  ck_assert_uint_ge(out.time, unix_now() - 1);
  ck_assert_uint_gt(out.time, hs + 10);
}
END_TEST

/* A connected, quiet node wakes only for its device reads and its probes
 * (a probe round is two wake-ups: its first Ping, the others
 * round_stagger later): no timer of the store Requests while every peer
 * has a candidate (it woke every ask_min for nothing). Wake-ups a minute,
 * the daemon's way: sleep until the expiry, handle it, read the device
 * when asked. */
START_TEST(test_idle_wakeups) {
  wgam_tstamp end;
  int wakes = 0, reads = 0;

  star_of_14(0);
  star_live(10 * WGAM_SECONDS);
  end = net.now + 60 * WGAM_SECONDS;
  while (net.now < end) {
    wgam_tstamp t = wgam_mesh_get_expiry(net.n[0].m);

    ck_assert_uint_gt(t, net.now);
    net.now = t;
    wakes++;
    ck_assert_int_eq(wgam_mesh_handle_expiry(net.n[0].m, net.now), 0);
    if (wgam_mesh_get_wants(net.n[0].m) & WGAM_WANT_DEVICE) {
      star_touch();
      reads++;
    }
    count_out(0);
  }
  ck_assert_int_ge(reads, 25); /* device_interval 2 s */
  ck_assert_int_le(wakes, reads + 32);
}
END_TEST

/* A node behind a NAT keeps its own probe cadence in a small mesh; the
 * public node it probes answers and probes it no more (it probed it back
 * every probe_idle, twice the Pings and Pongs for what one end's tell).
 * A device read that falls due just before an early one waits for it (two
 * reads within a few ms each time a probed peer's gossip came). */
START_TEST(test_probed_peer_not_probed_back) {
  wgam_stats a0, b0, a1, b1;
  int i;

  topo_two_nats(0);
  ck_assert(until_full_mesh(120) >= 0);
  run_for(20 * WGAM_SECONDS);
  for (i = 0; i < net.count; i++)
    net.n[i].read_gap = 0;
  wgam_mesh_get_stats(net.n[0].m, &a0);
  wgam_mesh_get_stats(net.n[1].m, &b0);
  run_for(60 * WGAM_SECONDS);
  ck_assert(full_mesh());
  wgam_mesh_get_stats(net.n[0].m, &a1);
  wgam_mesh_get_stats(net.n[1].m, &b1);
  /* B probes A and C every probe_idle (4 s): 15 rounds. */
  ck_assert_uint_ge(b1.pkts_out[WGAM_MSG_PING] - b0.pkts_out[WGAM_MSG_PING],
                    20);
  ck_assert_uint_le(a1.pkts_out[WGAM_MSG_PING] - a0.pkts_out[WGAM_MSG_PING], 2);
  for (i = 0; i < net.count; i++)
    ck_assert_msg(net.n[i].read_gap >= 500 * WGAM_MILLISECONDS,
                  "node %d read its device twice within %.1f s", i,
                  (double)net.n[i].read_gap / WGAM_SECONDS);
}
END_TEST

/* Node 0 gets a datagram of @type (no body) from connected peer @k
 * through its tunnel. */
static void bare_from(int k, uint8_t type, uint8_t nonce) {
  uint8_t pkt[WGAM_MAX_DATAGRAM_LEN];
  wgam_addr src = net.n[k].mesh;
  wgam_ssize len;
  wgam_msg msg;

  memset(&msg, 0, sizeof(msg));
  msg.type = type;
  len = seal_msg(pkt, sizeof(pkt), &msg, nonce);
  src.port = GOSSIP_PORT;
  ck_assert_int_eq(
      wgam_mesh_read_pkt(net.n[0].m, &src, pkt, (size_t)len, net.now), 0);
}

static void ping_from(int k, uint8_t nonce) {
  bare_from(k, WGAM_MSG_PING, nonce);
}

/* WireGuard moves a peer's entry to where its packets come from, a Ping
 * as well: at a node with an endpoint of its own configured (the first to
 * hear a node whose NAT moved, at its next probe) a Ping has the device
 * read at once, and the new address announced then, not a device_interval
 * later; at most once per ping_read_gap. */
START_TEST(test_ping_reads_device) {
  wgam_endpoint out;
  wgam_tstamp t0;

  star_self_ep = 1;
  star_of_14(0);
  star_live(10 * WGAM_SECONDS);
  star_touch();
  count_out(0);
  t0 = net.now;
  net.now += 1200 * WGAM_MILLISECONDS;
  if (wgam_mesh_get_expiry(net.n[0].m) <= net.now)
    wgam_mesh_handle_expiry(net.n[0].m, net.now);
  count_out(0);
  ck_assert(!(wgam_mesh_get_wants(net.n[0].m) & WGAM_WANT_DEVICE));
  star_dp[4].endpoint = tu_v4(203, 0, 113, 94, 7000);
  star_dp[4].rx_bytes += 64;
  ping_from(4, 41);
  ck_assert(wgam_mesh_get_wants(net.n[0].m) & WGAM_WANT_DEVICE);
  star_touch();
  memset(&out, 0, sizeof(out));
  ck_assert_int_ge(sent_of(0, WGAM_MSG_ANNOUNCE, -1, &out), 1);
  ck_assert(same(&out.addr, &star_dp[4].endpoint));
  /* The next Ping within ping_read_gap waits for it. */
  t0 = net.now;
  net.now += 300 * WGAM_MILLISECONDS;
  ping_from(5, 42);
  ck_assert(!(wgam_mesh_get_wants(net.n[0].m) & WGAM_WANT_DEVICE));
  ck_assert_uint_le(wgam_mesh_get_expiry(net.n[0].m), t0 + WGAM_SECONDS);
}
END_TEST

/* Gossip through the tunnel from a peer not seen connected proves a
 * session made: the device is read at once (the node learns who is
 * connected, and a public node where to announce the peer), not read_soon
 * later; more such gossip within session_read_gap of that read waits for
 * the gap, and gossip from a connected peer asks for no read. */
START_TEST(test_new_session_read_at_once) {
  star_config(0);
  star_dp[7].last_handshake = 0;
  star_dp[8].last_handshake = 0;
  star_first_read();
  star_live(3 * WGAM_SECONDS);
  count_out(0);
  net.now += 100 * WGAM_MILLISECONDS;
  ck_assert(!read_wanted_now());
  ping_from(3, 40);
  ck_assert(!read_wanted_now());
  star_dp[7].last_handshake = unix_now();
  ping_from(7, 41);
  ck_assert(read_wanted_now());
  star_touch();
  count_out(0);
  net.now += 10 * WGAM_MILLISECONDS;
  star_dp[8].last_handshake = unix_now();
  ping_from(8, 42);
  ck_assert(!read_wanted_now());
  net.now += 40 * WGAM_MILLISECONDS;
  ck_assert(read_wanted_now());
}
END_TEST

/* A periodic device read that falls due just before an early one (gossip
 * from a peer whose path is probed: a handshake likely within a round trip)
 * waits for it: one read, not two a few milliseconds apart. */
START_TEST(test_reads_coalesced) {
  wgam_endpoint ep;
  wgam_tstamp t0;
  int reads = 0;

  star_of_14(0);
  star_live(10 * WGAM_SECONDS);
  star_touch(); /* the next periodic read is due 2 s later */
  count_out(0);
  t0 = net.now;
  net.now = t0 + 1900 * WGAM_MILLISECONDS;
  if (wgam_mesh_get_expiry(net.n[0].m) <= net.now)
    wgam_mesh_handle_expiry(net.n[0].m, net.now);
  if (wgam_mesh_get_wants(net.n[0].m) & WGAM_WANT_DEVICE)
    star_touch();
  count_out(0);
  /* News of another address of peer 4: it is probed at once... */
  ep.addr = tu_v4(203, 0, 113, 84, 7000);
  ep.time = unix_now();
  announce_from(0, 5, 4, &ep, 1, 51);
  wgam_mesh_handle_expiry(net.n[0].m, net.now);
  ck_assert_int_ge(sent_of(0, WGAM_MSG_PING, 4, NULL), 1);
  /* ... and gossip from it, not the answer, asks for a read soon. */
  ep.addr = star_dp[5].endpoint;
  announce_from(0, 4, 5, &ep, 1, 52);
  while (net.now < t0 + 2150 * WGAM_MILLISECONDS) {
    net.now += 10 * WGAM_MILLISECONDS;
    if (wgam_mesh_get_expiry(net.n[0].m) <= net.now)
      wgam_mesh_handle_expiry(net.n[0].m, net.now);
    if (wgam_mesh_get_wants(net.n[0].m) & WGAM_WANT_DEVICE) {
      star_touch();
      reads++;
    }
    count_out(0);
  }
  ck_assert_int_eq(reads, 1);
}
END_TEST

/* Node 0 is behind a NAT (no endpoint of its own configured): when it
 * probes one peer, traffic to it gone unanswered, it probes them all. Its
 * first packet through a NAT that rebooted has that peer announce the new
 * address, and the others, told at once, must find the new mapping open
 * to them (else a port-restricted NAT maps our packets to them to another
 * port). */
START_TEST(test_nat_probes_all_together) {
  int k, to = 0;

  star_of_14(0);
  star_live(10 * WGAM_SECONDS);
  star_quiet = 6;
  star_dp[6].tx_bytes += 400;
  net.now += 100 * WGAM_MILLISECONDS;
  star_touch();
  for (k = 0; k < 5; k++) {
    uint8_t buf[WGAM_MAX_DATAGRAM_LEN];
    wgam_addr dest;

    if (wgam_mesh_get_expiry(net.n[0].m) <= net.now)
      wgam_mesh_handle_expiry(net.n[0].m, net.now);
    while (wgam_mesh_write_pkt(net.n[0].m, &dest, buf, sizeof(buf), net.now) >
           0)
      to |= 1 << by_mesh(&dest);
    net.now += 100 * WGAM_MILLISECONDS;
  }
  star_quiet = 0;
  ck_assert_int_eq(to, 0x3ffe); /* peers 1 to 13 */
}
END_TEST

/* Peer updates node 0 has queued that remove node @j's entry (the rest
 * are drained too). */
static int removals_of(int j) {
  wgam_peer_update u;
  int n = 0;

  while (wgam_mesh_next_peer_update(net.n[0].m, &u) > 0)
    n += (u.flags & WGAM_PEER_REMOVE_ME) && !memcmp(u.pubkey, net.n[j].pub, 32);
  return n;
}

/* A peer at its configured endpoint that goes silent (it restarted, or
 * removed us and added us back: its side of the session is gone) is
 * re-created, so that WireGuard handshakes at once rather than after its
 * own timeouts; a peer whose endpoint came by gossip, which may have
 * moved, keeps its session (its packets from where it went roam it). */
START_TEST(test_silent_configured_peer_recreated) {
  int k, removed[2] = {0, 0};

  for (k = 0; k < 2; k++) {
    int t;

    star_cfg_ep = k == 0 ? 5 : 0;
    star_of_14(0);
    star_live(3 * WGAM_SECONDS);
    removals_of(5);
    star_quiet = 5;
    for (t = 0; t < 100; t++) { /* 10 s */
      net.now += 100 * WGAM_MILLISECONDS;
      star_touch();
      if (wgam_mesh_get_expiry(net.n[0].m) <= net.now)
        wgam_mesh_handle_expiry(net.n[0].m, net.now);
      count_out(0);
      removed[k] += removals_of(5);
    }
  }
  ck_assert_int_ge(removed[0], 1);
  ck_assert_int_eq(removed[1], 0);
}
END_TEST

/* News learned while no other peer is connected (a node's first peer told
 * it) is not lost: it goes out when the hold time ends, to the peers
 * connected by then. */
START_TEST(test_news_kept_until_someone_listens) {
  wgam_endpoint ep;
  int k;

  star_of_14(0);
  net.now += 4 * WGAM_SECONDS; /* past the answer window and hold times */
  for (k = 1; k < 14; k++)
    if (k != 5)
      star_dp[k].last_handshake = 0;
  star_touch(); /* only peer 5 is connected now */
  count_out(0);
  ep.addr = tu_v4(203, 0, 113, 77, 7000);
  ep.time = unix_now();
  announce_from(0, 5, 5, &ep, 1, 1);
  ck_assert_int_eq(count_out(0), 0); /* no one to tell */

  for (k = 1; k < 14; k++)
    star_dp[k].last_handshake = unix_now();
  star_touch();
  count_out(0);
  net.now += 2500 * WGAM_MILLISECONDS;
  ck_assert_int_eq(wgam_mesh_handle_expiry(net.n[0].m, net.now), 0);
  ck_assert_int_eq(count_out(0), 10);
}
END_TEST

/* Node 0 of the star for @ms, the daemon's way: its device read only when
 * it asks (every peer but star_quiet sending); the endpoints it writes for
 * peer @k are counted in star_writes, the last one in star_written. */
static int star_writes;
static wgam_addr star_written;
static wgam_tstamp star_read_at;

static void star_run(int ms, int k) {
  wgam_tstamp end = net.now + (wgam_tstamp)ms * WGAM_MILLISECONDS;

  while (net.now < end) {
    wgam_peer_update u;

    net.now += 10 * WGAM_MILLISECONDS;
    if (wgam_mesh_get_expiry(net.n[0].m) <= net.now)
      ck_assert_int_eq(wgam_mesh_handle_expiry(net.n[0].m, net.now), 0);
    if (wgam_mesh_get_wants(net.n[0].m) & WGAM_WANT_DEVICE) {
      star_touch();
      star_read_at = net.now;
    }
    while (wgam_mesh_next_peer_update(net.n[0].m, &u) > 0)
      if ((u.flags & WGAM_PEER_HAS_ENDPOINT) &&
          !memcmp(u.pubkey, net.n[k].pub, WGAM_KEY_LEN)) {
        star_writes++;
        star_written = u.endpoint;
      }
    count_out(0);
  }
}

/* Peer 6 tells node 0 that peer 5 is at @ep; the star runs until node 0
 * writes an endpoint for peer 5 (8 s at most), which must be that one,
 * once. Returns when the news came. */
static wgam_tstamp star_news_tried(const wgam_endpoint *ep) {
  wgam_tstamp news;

  announce_from(0, 6, 5, ep, 1, 1);
  news = net.now;
  star_writes = 0;
  while (!star_writes && net.now < news + 8 * WGAM_SECONDS)
    star_run(10, 5);
  ck_assert_int_eq(star_writes, 1);
  ck_assert(same(&star_written, &ep->addr));
  return news;
}

/* Node 0's interface is back, empty, @gap after the last step: node 0
 * reads it and runs for 100 ms, its endpoint writes for peer 5 counted
 * from zero; then the device holds its peers again. */
static void star_back_empty(wgam_tstamp gap) {
  size_t npeers = star_dev.npeers;

  star_dev.npeers = 0;
  net.now += gap;
  star_writes = 0;
  star_touch();
  star_run(100, 5);
  star_dev.npeers = npeers;
}

/* Bytes from a peer that came before a probe went out do not answer it,
 * even when the first device read after the probe is what sees them: a
 * NAT that rebooted under the peer lets nothing through since. Here news
 * of another address of peer 5 has it probed 1.7 s after a read; the next
 * read sees its last bytes from before; the new address is tried within
 * probe_news of the probe, not after the next idle probe round. */
START_TEST(test_old_bytes_no_answer) {
  wgam_endpoint ep;
  wgam_tstamp news;

  star_of_14(0);
  star_live(10 * WGAM_SECONDS);
  star_run(3000, 5);
  star_run((int)((star_read_at + 1700 * WGAM_MILLISECONDS - net.now) /
                 WGAM_MILLISECONDS),
           5);
  star_quiet = 5;
  star_dp[5].rx_bytes += 200; /* came in, not read yet */
  ep.addr = tu_v4(203, 0, 113, 90, 7000);
  ep.time = unix_now();
  news = star_news_tried(&ep);
  ck_assert_uint_le(net.now - news, 1000 * WGAM_MILLISECONDS);
  star_quiet = 0;
}
END_TEST

/* A probe that news of another address started is given four round
 * trips of the slowest recent probe (at least probe_news_min), not the
 * whole probe_news: with Pongs 20 ms after the Ping, the moved peer is
 * tried about 0.1 s after the news. */
START_TEST(test_news_wait_scales_with_rtt) {
  wgam_endpoint ep;
  wgam_tstamp news;
  int k, pinged = 0;

  star_of_14(0);
  star_live(10 * WGAM_SECONDS);
  /* Peer 5 falls quiet: its idle probe is answered 20 ms later. */
  star_quiet = 5;
  for (k = 0; k < 800 && !pinged; k++) {
    net.now += 10 * WGAM_MILLISECONDS;
    if (wgam_mesh_get_expiry(net.n[0].m) <= net.now)
      wgam_mesh_handle_expiry(net.n[0].m, net.now);
    if (wgam_mesh_get_wants(net.n[0].m) & WGAM_WANT_DEVICE)
      star_touch();
    pinged = sent_of(0, WGAM_MSG_PING, 5, NULL);
  }
  ck_assert(pinged);
  net.now += 20 * WGAM_MILLISECONDS;
  bare_from(5, WGAM_MSG_PONG, 2);
  star_run(100, 5);
  /* News of peer 5 elsewhere, and no Pong. */
  ep.addr = tu_v4(203, 0, 113, 92, 7000);
  ep.time = unix_now();
  news = star_news_tried(&ep);
  ck_assert_msg(net.now - news <= 250 * WGAM_MILLISECONDS,
                "moved peer tried %.2f s after the news",
                (double)(net.now - news) / WGAM_SECONDS);
  star_quiet = 0;
}
END_TEST

/* News that an observer saw us at a new address (our NAT rebooted) says
 * that a path found silent since went with us: the peer is still where it
 * was and its endpoint is written again (WireGuard sends from our new
 * mapping), not replaced by an older address of it from the store. */
START_TEST(test_self_news_we_moved) {
  wgam_endpoint ep, old;
  wgam_tstamp quiet;

  star_config(0);
  old.addr = tu_v4(203, 0, 113, 50, 9000); /* where peer 5 was before */
  old.time = unix_now() - 100;
  announce_to(0, 5, &old, 1, 1);
  star_first_read();
  star_live(10 * WGAM_SECONDS);
  star_run(1000, 5);
  ep.addr = tu_v4(203, 0, 113, 77, 4000); /* node 0, as peer 6 sees it */
  ep.time = unix_now();
  announce_from(0, 6, 0, &ep, 1, 2);
  star_run(100, 5);
  star_quiet = 5;
  quiet = net.now;
  star_writes = 0;
  while (!star_writes && net.now < quiet + 10 * WGAM_SECONDS)
    star_run(10, 5);
  ck_assert_int_eq(star_writes, 1);
  ck_assert(same(&star_written, &star_dp[5].endpoint));
  star_quiet = 0;
}
END_TEST

/* An interface deleted and created again lost every entry: each peer is
 * pointed first at where we last saw it ourselves, not at the newest
 * address in the store, which is most likely what another node saw (behind
 * a symmetric NAT every observer sees another port). */
START_TEST(test_recreated_device_own_view) {
  wgam_endpoint other;

  star_of_14(0);
  star_live(10 * WGAM_SECONDS);
  other.addr = tu_v4(198, 51, 100, 106, 23456); /* peer 5 as others see it */
  other.time = unix_now();
  announce_from(0, 6, 5, &other, 1, 1);
  star_live(3 * WGAM_SECONDS);
  star_back_empty(WGAM_SECONDS);
  ck_assert_int_ge(star_writes, 1);
  ck_assert(same(&star_written, &star_dp[5].endpoint));
}
END_TEST

/* The same when we had moved the entry ourselves: news of another address
 * of peer 5 (its NAT rebooted) had it probed and tried there, and the
 * handshake came. That is no news to announce (the store has it), so what
 * we last announced is still its old address; the device's last endpoint
 * is the newer view, and comes first when the entry is lost. */
START_TEST(test_recreated_device_tried_there) {
  wgam_endpoint ep;

  star_of_14(0);
  star_live(10 * WGAM_SECONDS);
  star_run(1700, 5);
  star_quiet = 5;
  ep.addr = tu_v4(203, 0, 113, 90, 7000);
  ep.time = unix_now();
  star_news_tried(&ep);
  star_dp[5].endpoint = ep.addr; /* the handshake came there */
  star_dp[5].last_handshake = unix_now();
  star_quiet = 0;
  star_run(3000, 5);
  star_back_empty(0);
  ck_assert_int_eq(star_writes, 1);
  ck_assert(same(&star_written, &ep.addr));
}
END_TEST

/* While the interface is gone (deleted, not yet created again: reads fail)
 * no probe is judged: its Ping never left. Judged on the read that finds
 * the interface back and empty, the peer is pointed at where we last saw
 * it, not at another address from the store (what a try during the outage
 * chose, and what the re-created entry kept). */
START_TEST(test_no_verdict_without_device) {
  wgam_endpoint other;
  wgam_tstamp end;
  int others = 0;

  star_of_14(0);
  star_live(10 * WGAM_SECONDS);
  other.addr = tu_v4(198, 51, 100, 106, 23456);
  other.time = unix_now();
  announce_from(0, 6, 5, &other, 1, 1);
  star_live(3 * WGAM_SECONDS);
  star_quiet = 5;
  end = net.now + 8 * WGAM_SECONDS;
  while (net.now < end) { /* no read succeeds */
    wgam_peer_update u;

    net.now += 10 * WGAM_MILLISECONDS;
    if (wgam_mesh_get_expiry(net.n[0].m) <= net.now)
      ck_assert_int_eq(wgam_mesh_handle_expiry(net.n[0].m, net.now), 0);
    while (wgam_mesh_next_peer_update(net.n[0].m, &u) > 0)
      if ((u.flags & WGAM_PEER_HAS_ENDPOINT) &&
          !memcmp(u.pubkey, net.n[5].pub, WGAM_KEY_LEN))
        others += same(&u.endpoint, &other.addr);
    count_out(0);
  }
  ck_assert_int_eq(others, 0);
  star_back_empty(0);
  ck_assert_int_ge(star_writes, 1);
  ck_assert(same(&star_written, &star_dp[5].endpoint));
  star_quiet = 0;
}
END_TEST

/* A peer seen at a new address without a new handshake (its NAT moved) is
 * told so itself (propagation passes over the subject); told that it was
 * seen at a new address, a node probes all its connected peers at once:
 * until it sends to each of them, their packets do not get through its
 * NAT's new mappings. */
START_TEST(test_moved_peer_told_and_probes_all) {
  wgam_endpoint ep, me;
  int n;

  star_of_14(0);
  star_live(10 * WGAM_SECONDS);
  star_dp[5].endpoint = tu_v4(203, 0, 113, 92, 7000);
  net.now += 100 * WGAM_MILLISECONDS;
  star_touch();
  memset(&ep, 0, sizeof(ep));
  ck_assert_int_eq(sent_of(0, WGAM_MSG_ANNOUNCE, 5, &ep), 1);
  ck_assert(same(&ep.addr, &star_dp[5].endpoint));

  star_run(1000, 5);
  me.addr = tu_v4(203, 0, 113, 77, 4000); /* node 0, as peer 6 sees it */
  me.time = unix_now();
  announce_from(0, 6, 0, &me, 1, 2);
  /* The first Ping alone, the other twelve round_stagger later: a NAT
   * that lost its mappings sets up the first flow, then maps the others
   * to the same port (set up together, each could get its own). */
  n = sent_of(0, WGAM_MSG_PING, -1, NULL);
  ck_assert_int_ge(n, 1);
  ck_assert_int_le(n, 2);
  net.now += 20 * WGAM_MILLISECONDS;
  ck_assert_uint_le(wgam_mesh_get_expiry(net.n[0].m), net.now);
  ck_assert_int_eq(wgam_mesh_handle_expiry(net.n[0].m, net.now), 0);
  ck_assert_int_ge(sent_of(0, WGAM_MSG_PING, -1, NULL), 12);
}
END_TEST

static int debug_lines;

static void count_debug(void *u, int level, const char *msg) {
  (void)u;
  ck_assert_int_le(level, WGAM_LOG_DEBUG);
  debug_lines += level == WGAM_LOG_DEBUG && strstr(msg, "peers: ") != NULL;
}

/* The log level can change while the engine runs (a daemon's reload). */
START_TEST(test_log_level_changes) {
  wgam_peer_config cfg[2];
  wgam_settings s;
  wgam_mesh *m;

  wgam_settings_default(&s);
  s.secret = (const uint8_t *)"test secret";
  s.secretlen = 11;
  s.gossip_port = GOSSIP_PORT;
  s.rand = tu_rand_fixed;
  s.log = count_debug;
  s.log_level = WGAM_LOG_INFO;
  ck_assert_int_eq(wgam_mesh_new(&m, &s, WGAM_SECONDS), 0);
  memset(cfg, 0, sizeof(cfg));
  cfg[0].pubkey[0] = 1;
  cfg[0].address = tu_v4(100, 64, 0, 1, 0);
  cfg[1].pubkey[0] = 2;
  cfg[1].address = tu_v4(100, 64, 0, 2, 0);
  debug_lines = 0;
  ck_assert_int_eq(wgam_mesh_set_peers(m, cfg, 1, WGAM_SECONDS), 0);
  ck_assert_int_eq(debug_lines, 0);
  ck_assert_int_eq(wgam_mesh_set_log_level(m, WGAM_LOG_DEBUG), 0);
  ck_assert_int_eq(wgam_mesh_set_peers(m, cfg, 2, WGAM_SECONDS), 0);
  ck_assert_int_eq(debug_lines, 1);
  ck_assert_int_eq(wgam_mesh_set_log_level(m, WGAM_LOG_TRACE + 1),
                   WGAM_ERR_INVALID_ARGUMENT);
  ck_assert_int_eq(wgam_mesh_set_log_level(m, WGAM_LOG_ERROR - 1),
                   WGAM_ERR_INVALID_ARGUMENT);
  ck_assert_int_eq(wgam_mesh_set_log_level(m, WGAM_LOG_INFO), 0);
  ck_assert_int_eq(wgam_mesh_set_peers(m, cfg, 1, WGAM_SECONDS), 0);
  ck_assert_int_eq(debug_lines, 1);
  wgam_mesh_del(m);
}
END_TEST

/* Every malformed datagram of the vectors leaves the state unchanged and is
 * counted. */
START_TEST(test_bad_input_counted) {
  cJSON *cases = tu_vectors_array("invalid_packet_cases");
  const cJSON *c;
  uint8_t before[4096], after[4096], pkt[2048];
  wgam_ssize lb, la;
  wgam_stats st;
  uint64_t rejected = 0;
  wgam_addr src = tu_v4(100, 64, 0, 2, GOSSIP_PORT);
  int expected_rejects = 0, k;
  wgam_settings s;
  wgam_mesh *m;
  uint64_t rnd = 1;

  topo_two_nats(0);
  ck_assert(until_full_mesh(120) >= 0);
  /* An engine with the vectors' receiver secret, holding real state. */
  wgam_settings_default(&s);
  s.secret = (const uint8_t *)"hunter2";
  s.secretlen = 7;
  s.rand = tu_rand_fixed;
  s.user_data = &rnd;
  ck_assert_int_eq(wgam_mesh_new(&m, &s, net.now), 0);
  {
    wgam_peer_config cfg[3];
    for (k = 0; k < 3; k++) {
      memset(&cfg[k], 0, sizeof(cfg[k]));
      memcpy(cfg[k].pubkey, net.n[k].pub, 32);
      cfg[k].address = net.n[k].mesh;
    }
    ck_assert_int_eq(wgam_mesh_set_peers(m, cfg, 3, net.now), 0);
    lb = wgam_mesh_write_state(net.n[1].m, before, sizeof(before));
    ck_assert_int_eq(wgam_mesh_load_state(m, before, (size_t)lb, net.now), 0);
  }
  lb = wgam_mesh_write_state(m, before, sizeof(before));
  ck_assert_int_gt(lb, 8);
  cJSON_ArrayForEach(c, cases) {
    const char *secret = tu_json_str(c, "receiver_secret");
    const char *expected = tu_json_str(c, "expected");
    size_t n;
    if (strcmp(secret, "hunter2") != 0 || strcmp(expected, "reject") != 0)
      continue;
    n = tu_hex_decode(pkt, sizeof(pkt), tu_json_str(c, "packet_hex"));
    ck_assert_int_lt(wgam_mesh_read_pkt(m, &src, pkt, n, net.now), 0);
    expected_rejects++;
  }
  ck_assert_int_gt(expected_rejects, 3);
  /* Garbage of every length. */
  for (k = 0; k < 1600; k += 7) {
    memset(pkt, k & 0xff, sizeof(pkt));
    ck_assert_int_lt(wgam_mesh_read_pkt(m, &src, pkt, (size_t)k, net.now), 0);
    expected_rejects++;
  }
  la = wgam_mesh_write_state(m, after, sizeof(after));
  ck_assert_int_eq(la, lb);
  ck_assert(memcmp(before, after, (size_t)la) == 0);
  wgam_mesh_get_stats(m, &st);
  for (k = 0; k < WGAM_REJECT_COUNT; k++)
    rejected += st.rejected[k];
  ck_assert_uint_eq(rejected, (uint64_t)expected_rejects);
  wgam_mesh_del(m);
}
END_TEST

/* A UPnP endpoint set before any peer is connected still reaches each peer
 * as it connects, and shows in the stats. */
START_TEST(test_external_endpoint_announced) {
  static const int ep[2] = {1, 0};
  wgam_addr ext = tu_v4(203, 0, 113, 77, 40000);
  wgam_peer_info info;
  wgam_stats st;
  size_t k;
  int found = 0;

  net_init(0, 0);
  add_node(NAT_NONE, tu_v4(198, 51, 100, 1, WG_PORT), 0, (wgam_addr){0});
  add_node(NAT_CONE, tu_v4(203, 0, 113, 5, 40001), 0, (wgam_addr){0});
  /* Node 0 runs the classic policy, which never asks a peer for its store
   * when it connects: only node 1's own announce can tell it. */
  wgam_mesh_del(net.n[0].m);
  net.classic = 1;
  make_engine(0);
  net.classic = 0;
  configure(ep);
  run_for(WGAM_SECONDS / 2); /* first device read: our key is known */
  ck_assert_int_eq(
      wgam_mesh_set_external_endpoints(net.n[1].m, &ext, 1, net.now), 0);
  wgam_mesh_get_stats(net.n[1].m, &st);
  ck_assert(st.nexternal == 1 && same(&st.external[0], &ext));
  ck_assert_msg(until_full_mesh(60) >= 0, "no mesh");
  run_for(3 * WGAM_SECONDS);
  peer_info(0, 1, &info);
  for (k = 0; k < info.nknown; k++)
    found |= same(&info.known[k].addr, &ext);
  ck_assert_msg(found, "the UPnP endpoint did not reach the peer");
  {
    wgam_addr bad = tu_v4(127, 0, 0, 1, 1);
    ck_assert_int_eq(wgam_mesh_set_external_endpoints(net.n[1].m, &bad, 1, 0),
                     WGAM_ERR_INVALID_ARGUMENT);
  }
}
END_TEST

/* Failing allocations never leave a half-built object behind. */
static int fail_after;
static void *fail_malloc(size_t n, void *u) {
  (void)u;
  return fail_after-- > 0 ? malloc(n) : NULL;
}
static void *fail_calloc(size_t a, size_t b, void *u) {
  (void)u;
  return fail_after-- > 0 ? calloc(a, b) : NULL;
}
static void *fail_realloc(void *p, size_t n, void *u) {
  (void)u;
  return fail_after-- > 0 ? realloc(p, n) : NULL;
}
static void fail_free(void *p, void *u) {
  (void)u;
  free(p);
}

/* Default settings with the allocator that fails after fail_after calls. */
static void failing_settings(wgam_settings *s, uint64_t *rnd) {
  static const wgam_mem mem = {NULL, fail_malloc, fail_free, fail_calloc,
                               fail_realloc};

  wgam_settings_default(s);
  s->rand = tu_rand_fixed;
  s->user_data = rnd;
  s->mem = &mem;
}

/* @n public nodes and their peer list, for engines built outside the
 * harness's network. */
static void public_nodes(wgam_peer_config *cfg, int n, int with_endpoints) {
  int k;

  net_init(0, 0);
  for (k = 0; k < n; k++)
    add_node(NAT_NONE, tu_v4(198, 51, 100, (uint8_t)(k + 1), WG_PORT), 0,
             (wgam_addr){0});
  for (k = 0; k < n; k++) {
    memset(&cfg[k], 0, sizeof(cfg[k]));
    memcpy(cfg[k].pubkey, net.n[k].pub, 32);
    cfg[k].address = net.n[k].mesh;
    if (with_endpoints)
      cfg[k].endpoint = net.n[k].ext;
  }
}

START_TEST(test_alloc_failures) {
  wgam_peer_config cfg[3];
  wgam_settings s;
  wgam_mesh *m;
  uint64_t rnd = 1;
  int limit, ok = 0;

  public_nodes(cfg, 3, 1);
  for (limit = 0; limit < 40; limit++) {
    int rv;

    failing_settings(&s, &rnd);
    fail_after = limit;
    rv = wgam_mesh_new(&m, &s, 0);
    if (rv != 0) {
      ck_assert_int_eq(rv, WGAM_ERR_NOMEM);
      continue;
    }
    rv = wgam_mesh_set_peers(m, cfg, 3, 0);
    ck_assert(rv == 0 || rv == WGAM_ERR_NOMEM);
    if (rv == WGAM_ERR_NOMEM)
      ck_assert_uint_eq(wgam_mesh_get_npeers(m), 0);
    else
      ok++;
    wgam_mesh_del(m);
  }
  ck_assert_int_gt(ok, 0);
}
END_TEST

/* The store of a peer's index in @m, found by key (-1: no such peer). */
static int stored_count(const wgam_mesh *m, const uint8_t *key) {
  wgam_peer_info info;
  size_t i;

  for (i = 0; i < wgam_mesh_get_npeers(m); i++) {
    ck_assert_int_eq(wgam_mesh_get_peer_info(m, i, &info), 0);
    if (memcmp(info.pubkey, key, WGAM_KEY_LEN) == 0)
      return (int)info.nknown;
  }
  return -1;
}

/* Gossip stores are held out of line, one block per peer. A store that
 * cannot grow keeps what it had; a reload that fails part way leaves every
 * store as it was (the old and the new list share them until the commit),
 * and one that succeeds keeps them for the peers that stay. ASan and
 * valgrind (CI) see the double free or leak a wrong ownership would make. */
START_TEST(test_alloc_failures_with_stores) {
  wgam_peer_config cfg[4], rev[3];
  uint8_t file[2048];
  wgam_ssize off, k;
  wgam_settings s;
  wgam_mesh *m;
  uint64_t rnd = 1;
  int limit, i, j, before[4], reload_failed = 0, reload_ok = 0, short_load = 0;

  public_nodes(cfg, 4, 0);
  for (i = 0; i < 3; i++)
    rev[i] = cfg[2 - i]; /* peer 3 goes, the others change places */
  /* Peer i has i endpoints in the state file. */
  off = wgam_state_encode_header(file, sizeof(file), 3);
  ck_assert_int_gt(off, 0);
  for (i = 1; i < 4; i++) {
    wgam_endpoint eps[3];
    char b64[WGAM_KEY_B64_LEN + 1];

    for (j = 0; j < i; j++) {
      eps[j].addr = tu_v4(203, 0, 113, (uint8_t)(10 * i + j), 40000);
      eps[j].time = UNIX0 - (uint64_t)j;
    }
    wgam_key_to_base64(b64, net.n[i].pub);
    k = wgam_state_encode_entry(file + off, sizeof(file) - (size_t)off,
                                (const uint8_t *)b64, WGAM_KEY_B64_LEN, eps,
                                (size_t)i);
    ck_assert_int_gt(k, 0);
    off += k;
  }

  for (limit = 0; limit < 24; limit++) {
    int rv;

    failing_settings(&s, &rnd);
    fail_after = 1000;
    ck_assert_int_eq(wgam_mesh_new(&m, &s, 0), 0);
    ck_assert_int_eq(wgam_mesh_set_peers(m, cfg, 4, 0), 0);

    /* Each store is there whole, or not at all. */
    fail_after = limit;
    rv = wgam_mesh_load_state(m, file, (size_t)off, 0);
    ck_assert(rv == 0 || rv == WGAM_ERR_NOMEM);
    short_load += rv == WGAM_ERR_NOMEM;
    for (i = 0; i < 4; i++) {
      before[i] = stored_count(m, net.n[i].pub);
      ck_assert(before[i] == 0 || before[i] == i);
      if (rv == 0)
        ck_assert_int_eq(before[i], i);
    }

    fail_after = limit;
    rv = wgam_mesh_set_peers(m, rev, 3, 0);
    ck_assert(rv == 0 || rv == WGAM_ERR_NOMEM);
    if (rv == 0) {
      reload_ok++;
      ck_assert_uint_eq(wgam_mesh_get_npeers(m), 3);
      ck_assert_int_eq(stored_count(m, net.n[3].pub), -1);
    } else {
      reload_failed++;
      ck_assert_uint_eq(wgam_mesh_get_npeers(m), 4);
      ck_assert_int_eq(stored_count(m, net.n[3].pub), before[3]);
    }
    for (i = 0; i < 3; i++)
      ck_assert_int_eq(stored_count(m, net.n[i].pub), before[i]);
    wgam_mesh_del(m);
  }
  /* The limits cover each outcome. */
  ck_assert_int_gt(short_load, 0);
  ck_assert_int_gt(reload_failed, 0);
  ck_assert_int_gt(reload_ok, 0);
}
END_TEST

static Suite *mesh_suite(void) {
  Suite *s = suite_create("mesh");
  TCase *tc = tcase_create("scenarios");

  tcase_set_timeout(tc, 120);
  tcase_add_checked_fixture(tc, NULL, teardown);
  tcase_add_test(tc, test_nat_pair_learns_via_public);
  tcase_add_test(tc, test_classic_is_slower);
  tcase_add_test(tc, test_classic_cycles_every_30s);
  tcase_add_test(tc, test_lan_preferred_then_stale);
  tcase_add_test(tc, test_persisted_endpoints_used);
  tcase_add_test(tc, test_fallback_order);
  tcase_add_test(tc, test_private_after_public);
  tcase_add_test(tc, test_private_guess_cut);
  tcase_add_test(tc, test_second_try_recreated_at_once);
  tcase_add_test(tc, test_lan_try_not_preempted);
  tcase_add_test(tc, test_state_before_identity);
  tcase_add_test(tc, test_reload);
  tcase_add_test(tc, test_symmetric_no_flap);
  tcase_add_test(tc, test_roaming_public);
  tcase_add_loop_test(tc, test_nat_moved, 0, 2);
  tcase_add_loop_test(tc, test_hints_rest, 0, 2);
  tcase_add_test(tc, test_merge_rule);
  tcase_add_test(tc, test_merge_matches_reference);
  tcase_add_test(tc, test_table_collisions);
  tcase_add_test(tc, test_propagation_request_ping);
  tcase_add_test(tc, test_propagation_damping);
  tcase_add_test(tc, test_first_public_not_held);
  tcase_add_test(tc, test_observation_not_reflooded);
  tcase_add_test(tc, test_log_level_changes);
  tcase_add_test(tc, test_configured_endpoint_not_flooded);
  tcase_add_test(tc, test_early_retry_recreates);
  tcase_add_test(tc, test_early_retry_repeated);
  tcase_add_test(tc, test_early_retry_crossed);
  tcase_add_test(tc, test_early_retry_keeps_roamed);
  tcase_add_test(tc, test_early_retry_first_crossing);
  tcase_add_test(tc, test_late_handshake_kept);
  tcase_add_test(tc, test_lan_broadcast_preempts);
  tcase_add_test(tc, test_answers_not_reflooded);
  tcase_add_test(tc, test_moved_peer_caught_up);
  tcase_add_test(tc, test_moved_peer_told);
  tcase_add_test(tc, test_answer_not_news);
  tcase_add_test(tc, test_roamed_endpoint_time);
  tcase_add_test(tc, test_idle_wakeups);
  tcase_add_test(tc, test_silent_configured_peer_recreated);
  tcase_add_test(tc, test_probed_peer_not_probed_back);
  tcase_add_test(tc, test_ping_reads_device);
  tcase_add_test(tc, test_reads_coalesced);
  tcase_add_test(tc, test_new_session_read_at_once);
  tcase_add_test(tc, test_nat_probes_all_together);
  tcase_add_test(tc, test_news_kept_until_someone_listens);
  tcase_add_test(tc, test_old_bytes_no_answer);
  tcase_add_test(tc, test_news_wait_scales_with_rtt);
  tcase_add_test(tc, test_self_news_we_moved);
  tcase_add_test(tc, test_recreated_device_own_view);
  tcase_add_test(tc, test_recreated_device_tried_there);
  tcase_add_test(tc, test_no_verdict_without_device);
  tcase_add_test(tc, test_moved_peer_told_and_probes_all);
  tcase_add_test(tc, test_bad_input_counted);
  tcase_add_test(tc, test_external_endpoint_announced);
  tcase_add_test(tc, test_alloc_failures);
  tcase_add_test(tc, test_alloc_failures_with_stores);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) {
  SRunner *sr = srunner_create(mesh_suite());
  int failed;

  srunner_run_all(sr, CK_NORMAL);
  failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
