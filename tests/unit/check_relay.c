/* SPDX-License-Identifier: MIT */
/*
 * Relaying (lib/relay.c), one engine against a fake WireGuard device with a
 * fake clock. Node A (the engine) has two relays R1 and R2 and a peer B it
 * cannot reach directly. The device moves allowed IPs as WireGuard does
 * (an allowed IP is on exactly one entry); relays that are "up" handshake
 * and answer Pings; B answers a Ping only when the test says so.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wgautomesh.h"

enum { A, R1, R2, B, NNODES };
#define MAXIPS 16
#define SECRET "relay test"

struct entry {
  int present;
  uint8_t key[WGAM_KEY_LEN];
  wgam_addr endpoint;
  uint16_t keepalive;
  wgam_cidr ips[MAXIPS];
  size_t nips;
  uint64_t rx;
};

static struct {
  wgam_mesh *m;
  wgam_tstamp now;
  uint8_t keys[NNODES][WGAM_KEY_LEN];
  wgam_addr addr[NNODES];
  struct entry dev[NNODES]; /* dev[i]: A's entry for node i */
  int up[NNODES];           /* handshakes with i succeed */
  int answers[NNODES];      /* i answers a Ping with a Pong */
  int halted[NNODES];       /* relay i stopped forwarding (WireGuard up) */
  int lose_pings;           /* this many Pings to B are lost */
  uint64_t hs[NNODES];      /* last handshake, Unix seconds */
  uint8_t gkey[WGAM_KEY_LEN];
  int pings_to_b;
  int moves; /* allowed IPs seen on a relay's entry, changes counted */
} t;

static int rand_cb(void *u, uint8_t *d, size_t n) {
  (void)u;
  memset(d, 0x5a, n);
  return 0;
}

static uint64_t unix_now(void) {
  return 1700000000u + t.now / WGAM_SECONDS;
}

static int node_of(const uint8_t *key) {
  for (int i = 0; i < NNODES; i++)
    if (!memcmp(t.keys[i], key, WGAM_KEY_LEN))
      return i;
  return -1;
}

static int ip_node(const wgam_cidr *c) {
  for (int i = 0; i < NNODES; i++)
    if (c->addr.family == t.addr[i].family &&
        !memcmp(c->addr.ip, t.addr[i].ip, 16))
      return i;
  return -1;
}

static int same_cidr(const wgam_cidr *a, const wgam_cidr *b) {
  return a->addr.family == b->addr.family && a->prefixlen == b->prefixlen &&
         !memcmp(a->addr.ip, b->addr.ip, 16);
}

/* Allowed IP @c onto entry @to of the fake device @dev (@n entries), off
 * whichever entry held it, as WireGuard moves it. */
static void take_ip(struct entry *dev, int n, const wgam_cidr *c, int to) {
  for (int i = 0; i < n; i++) {
    struct entry *e = &dev[i];
    for (size_t k = 0; k < e->nips; k++)
      if (same_cidr(&e->ips[k], c) && i != to) {
        e->ips[k] = e->ips[--e->nips];
        break;
      }
  }
  struct entry *e = &dev[to];
  for (size_t k = 0; k < e->nips; k++)
    if (same_cidr(&e->ips[k], c))
      return;
  ck_assert_uint_lt(e->nips, MAXIPS);
  e->ips[e->nips++] = *c;
}

/* Peer update @u's entry and allowed IPs onto entry @i of the fake device
 * @dev (@n entries); the entry, or NULL when removed. */
static struct entry *dev_apply(struct entry *dev, int n, int i,
                               const wgam_peer_update *u) {
  struct entry *e;

  ck_assert_int_ge(i, 0);
  e = &dev[i];
  if (u->flags & WGAM_PEER_REMOVE_ME) {
    memset(e, 0, sizeof(*e));
    return NULL;
  }
  if (!e->present) {
    memset(e, 0, sizeof(*e));
    e->present = 1;
    memcpy(e->key, u->pubkey, WGAM_KEY_LEN);
  }
  if (u->flags & WGAM_PEER_REPLACE_ALLOWEDIPS)
    e->nips = 0;
  for (size_t k = 0; k < u->nallowedips; k++)
    take_ip(dev, n, &u->allowedips[k], i);
  return e;
}

/* Engine A's device also keeps endpoints and keepalives (the two-engine
 * world's devices keep neither: its paths are given). */
static void apply(const wgam_peer_update *u) {
  struct entry *e;

  if (getenv("RELAY_DEBUG"))
    fprintf(stderr, "t=%.2f upd node %d flags %x nips %zu\n", t.now / 1e9,
            node_of(u->pubkey), u->flags, u->nallowedips);
  e = dev_apply(t.dev, NNODES, node_of(u->pubkey), u);
  if (e && (u->flags & WGAM_PEER_HAS_ENDPOINT))
    e->endpoint = u->endpoint;
  if (e && (u->flags & WGAM_PEER_HAS_KEEPALIVE))
    e->keepalive = u->persistent_keepalive;
}

/* The entry that holds node @n's mesh address; asserts there is one. */
static int holder(int n) {
  int found = -1, count = 0;

  for (int i = 0; i < NNODES; i++)
    for (size_t k = 0; k < t.dev[i].nips; k++)
      if (ip_node(&t.dev[i].ips[k]) == n) {
        found = i;
        count++;
      }
  ck_assert_msg(count == 1, "node %d's IP is on %d entries", n, count);
  return found;
}

static void deliver(int from, uint32_t type) {
  uint8_t plain[64], pkt[128], nonce[WGAM_NONCE_LEN] = {1};
  wgam_msg msg;
  wgam_ssize n;

  memset(&msg, 0, sizeof(msg));
  msg.type = type;
  n = wgam_msg_encode(plain, sizeof(plain), &msg);
  ck_assert_int_gt(n, 0);
  n = wgam_pkt_seal(pkt, sizeof(pkt), t.gkey, nonce, plain, (size_t)n);
  ck_assert_int_gt(n, 0);
  wgam_addr src = t.addr[from];
  src.port = 1666;
  wgam_mesh_read_pkt(t.m, &src, pkt, (size_t)n, t.now);
}

static void observe(void) {
  wgam_device_peer dp[NNODES];
  wgam_device d;
  size_t n = 0;

  memset(&d, 0, sizeof(d));
  memcpy(d.pubkey, t.keys[A], WGAM_KEY_LEN);
  d.has_pubkey = 1;
  d.listen_port = 51820;
  for (int i = 0; i < NNODES; i++) {
    struct entry *e = &t.dev[i];
    if (!e->present)
      continue;
    if (t.up[i])
      t.hs[i] = unix_now();
    memset(&dp[n], 0, sizeof(dp[n]));
    memcpy(dp[n].pubkey, e->key, WGAM_KEY_LEN);
    dp[n].endpoint = e->endpoint;
    dp[n].last_handshake = t.hs[i];
    dp[n].rx_bytes = t.up[i] ? (e->rx += 100) : e->rx;
    dp[n].persistent_keepalive = e->keepalive;
    dp[n].allowedips = e->ips;
    dp[n].nallowedips = e->nips;
    n++;
  }
  d.peers = dp;
  d.npeers = n;
  ck_assert_int_eq(wgam_mesh_observe_device(t.m, &d, t.now, unix_now()), 0);
}

/* Drains the engine's output: updates onto the device, Pings answered. */
static void drain(void) {
  wgam_peer_update u;
  uint8_t buf[WGAM_MAX_DATAGRAM_LEN], plain[WGAM_MAX_PLAINTEXT_LEN];
  wgam_addr dest;
  wgam_ssize n;

  while (wgam_mesh_next_peer_update(t.m, &u) == 1)
    apply(&u);
  while ((n = wgam_mesh_write_pkt(t.m, &dest, buf, sizeof(buf), t.now)) > 0) {
    wgam_msg msg;
    int to = -1;
    wgam_ssize pl = wgam_pkt_open(plain, sizeof(plain), t.gkey, buf, (size_t)n);

    ck_assert_int_gt(pl, 0);
    ck_assert_int_ge(wgam_msg_decode(&msg, plain, (size_t)pl), 0);
    for (int i = 0; i < NNODES; i++)
      if (!memcmp(dest.ip, t.addr[i].ip, 16) && dest.family == t.addr[i].family)
        to = i;
    if (to == B && msg.type == WGAM_MSG_PING)
      t.pings_to_b++;
    if (to == B && msg.type == WGAM_MSG_PING &&
        (t.halted[holder(B)] || (t.lose_pings > 0 && t.lose_pings--)))
      continue;
    if (to >= 0 && msg.type == WGAM_MSG_PING && t.answers[to])
      deliver(to, WGAM_MSG_PONG);
  }
  while (wgam_mesh_next_peer_update(t.m, &u) == 1)
    apply(&u);
  for (int i = R1; i < NNODES; i++)
    if (t.dev[i].present)
      (void)holder(i);
}

/* Runs the engine for @ns of fake time in 50 ms steps. */
static void run(wgam_tstamp ns) {
  wgam_tstamp end = t.now + ns;

  while (t.now < end) {
    t.now += 50 * WGAM_MILLISECONDS;
    if (wgam_mesh_get_expiry(t.m) <= t.now)
      ck_assert_int_eq(wgam_mesh_handle_expiry(t.m, t.now), 0);
    drain();
    if (wgam_mesh_get_wants(t.m) & WGAM_WANT_DEVICE)
      observe();
    drain();
  }
}

static void info(int n, wgam_peer_info *pi) {
  ck_assert_int_eq(wgam_mesh_get_peer_info(t.m, (size_t)n - 1, pi), 0);
}

/* A with relays R1, R2 (or only the relays listed in @relays) and B. */
static void setup_mesh(int self_relay) {
  wgam_peer_config cfg[NNODES];
  wgam_settings s;
  static const uint8_t secret[] = SECRET;

  memset(&t, 0, sizeof(t));
  for (int i = 0; i < NNODES; i++) {
    memset(t.keys[i], 0x10 * (i + 1), WGAM_KEY_LEN);
    t.addr[i].family = WGAM_AF_INET;
    t.addr[i].ip[0] = 100;
    t.addr[i].ip[1] = 64;
    t.addr[i].ip[3] = (uint8_t)(i + 1);
    memset(&cfg[i], 0, sizeof(cfg[i]));
    memcpy(cfg[i].pubkey, t.keys[i], WGAM_KEY_LEN);
    cfg[i].address = t.addr[i];
    cfg[i].endpoint.family = WGAM_AF_INET;
    cfg[i].endpoint.ip[0] = 198;
    cfg[i].endpoint.ip[1] = 51;
    cfg[i].endpoint.ip[2] = 100;
    cfg[i].endpoint.ip[3] = (uint8_t)(i + 1);
    cfg[i].endpoint.port = 51820;
  }
  cfg[R1].relay = cfg[R2].relay = 1;
  cfg[A].relay = self_relay;
  /* B routes a network behind it too. */
  cfg[B].nprefixes = 1;
  cfg[B].prefixes[0].addr.family = WGAM_AF_INET;
  cfg[B].prefixes[0].addr.ip[0] = 192;
  cfg[B].prefixes[0].addr.ip[1] = 168;
  cfg[B].prefixes[0].addr.ip[2] = 5;
  cfg[B].prefixes[0].prefixlen = 24;
  wgam_key_derive(t.gkey, secret, sizeof(secret) - 1);
  wgam_settings_default(&s);
  s.rand = rand_cb;
  s.secret = secret;
  s.secretlen = sizeof(secret) - 1;
  t.now = WGAM_SECONDS;
  ck_assert_int_eq(wgam_mesh_new(&t.m, &s, t.now), 0);
  ck_assert_int_eq(wgam_mesh_set_peers(t.m, cfg, NNODES, t.now), 0);
  t.up[R1] = t.up[R2] = 1;
  t.answers[R1] = t.answers[R2] = 1;
}

static void teardown_mesh(void) {
  wgam_mesh_del(t.m);
  t.m = NULL;
}

START_TEST(test_relay_chosen_within_bound) {
  wgam_peer_info pi;
  wgam_stats st;

  setup_mesh(0);
  run(500 * WGAM_MILLISECONDS);
  info(B, &pi);
  ck_assert_int_eq(pi.route, WGAM_ROUTE_DIRECT); /* not before relay_after */
  run(1500 * WGAM_MILLISECONDS);
  info(B, &pi);
  ck_assert_int_eq(pi.route, WGAM_ROUTE_RELAY_PENDING);
  ck_assert(pi.relay == 0);
  int via = node_of(pi.via);
  ck_assert(via == R1 || via == R2);
  /* B's address and its prefix on the relay's entry; its own keeps its
   * endpoint and keepalive, so direct tries go on. */
  ck_assert_int_eq(holder(B), via);
  ck_assert_uint_eq(t.dev[B].nips, 0);
  ck_assert_uint_eq(t.dev[via].nips, 3);
  ck_assert_int_eq(t.dev[B].endpoint.family, WGAM_AF_INET);
  ck_assert_uint_gt(t.dev[B].keepalive, 0);
  ck_assert_int_gt(t.pings_to_b, 0);
  wgam_mesh_get_stats(t.m, &st);
  ck_assert_uint_eq(st.relay_switches, 1);
  teardown_mesh();
}
END_TEST

START_TEST(test_only_connected_relays) {
  wgam_peer_info pi;

  setup_mesh(0);
  t.up[R1] = t.answers[R1] = 0;
  run(3 * WGAM_SECONDS);
  info(B, &pi);
  ck_assert_int_ne(pi.route, WGAM_ROUTE_DIRECT);
  ck_assert_int_eq(node_of(pi.via), R2);
  teardown_mesh();

  setup_mesh(0);
  t.up[R1] = t.answers[R1] = t.up[R2] = t.answers[R2] = 0;
  run(10 * WGAM_SECONDS);
  info(B, &pi);
  ck_assert_int_eq(pi.route, WGAM_ROUTE_DIRECT);
  ck_assert_int_eq(holder(B), B);
  /* A relay that comes up is used at once. */
  t.up[R2] = t.answers[R2] = 1;
  run(2 * WGAM_SECONDS);
  info(B, &pi);
  ck_assert_int_ne(pi.route, WGAM_ROUTE_DIRECT);
  ck_assert_int_eq(node_of(pi.via), R2);
  teardown_mesh();
}
END_TEST

START_TEST(test_confirmed_by_pong_else_next_relay) {
  wgam_peer_info pi;
  int first;

  setup_mesh(0);
  run(2 * WGAM_SECONDS);
  info(B, &pi);
  first = node_of(pi.via);
  ck_assert_int_eq(pi.route, WGAM_ROUTE_RELAY_PENDING);
  /* No Pong through it: a draw per time slot (the same on both ends of
   * the pair), so within a few slots the other relay is tried. */
  int seen_other = 0;
  for (int k = 0; k < 10; k++) {
    run(2 * WGAM_SECONDS);
    info(B, &pi);
    ck_assert_int_eq(pi.route, WGAM_ROUTE_RELAY_PENDING);
    ck_assert_int_eq(holder(B), node_of(pi.via));
    seen_other |= node_of(pi.via) != first;
  }
  ck_assert(seen_other);
  /* B answers: confirmed, and it stays there. */
  t.answers[B] = 1;
  run(3 * WGAM_SECONDS);
  info(B, &pi);
  ck_assert_int_eq(pi.route, WGAM_ROUTE_RELAYED);
  uint64_t changes = pi.route_changes;
  run(60 * WGAM_SECONDS);
  info(B, &pi);
  ck_assert_int_eq(pi.route, WGAM_ROUTE_RELAYED);
  ck_assert_uint_eq(pi.route_changes, changes);
  teardown_mesh();
}
END_TEST

START_TEST(test_direct_handshake_moves_back) {
  wgam_peer_info pi;
  wgam_stats st;

  setup_mesh(0);
  t.answers[B] = 1;
  run(3 * WGAM_SECONDS);
  info(B, &pi);
  ck_assert_int_eq(pi.route, WGAM_ROUTE_RELAYED);
  t.up[B] = 1; /* the direct punch worked */
  run(3 * WGAM_SECONDS);
  info(B, &pi);
  ck_assert_int_eq(pi.route, WGAM_ROUTE_DIRECT);
  ck_assert_int_eq(holder(B), B);
  ck_assert_uint_eq(t.dev[B].nips, 2);
  ck_assert_uint_eq(t.dev[R1].nips + t.dev[R2].nips, 2);
  /* And stays direct. */
  run(60 * WGAM_SECONDS);
  info(B, &pi);
  ck_assert_int_eq(pi.route, WGAM_ROUTE_DIRECT);
  wgam_mesh_get_stats(t.m, &st);
  ck_assert_uint_eq(st.relay_switches, 2);
  teardown_mesh();
}
END_TEST

START_TEST(test_relay_loss) {
  wgam_peer_info pi;
  int first;

  setup_mesh(0);
  t.answers[B] = 1;
  run(3 * WGAM_SECONDS);
  info(B, &pi);
  ck_assert_int_eq(pi.route, WGAM_ROUTE_RELAYED);
  first = node_of(pi.via);
  t.up[first] = t.answers[first] = 0; /* the relay goes away */
  run(15 * WGAM_SECONDS);
  info(B, &pi);
  ck_assert_int_ne(pi.route, WGAM_ROUTE_DIRECT);
  ck_assert_int_eq(node_of(pi.via), first == R1 ? R2 : R1);
  /* Both gone: direct, the only thing left to try. */
  t.up[R1] = t.answers[R1] = t.up[R2] = t.answers[R2] = 0;
  run(15 * WGAM_SECONDS);
  info(B, &pi);
  ck_assert_int_eq(pi.route, WGAM_ROUTE_DIRECT);
  ck_assert_int_eq(holder(B), B);
  teardown_mesh();
}
END_TEST

/* The relay in use stops forwarding while its WireGuard stays up (its
 * daemon stopped): the pair moves to the other relay within 5 s (relay_probe
 * + relay_confirm) and does not go back to the one that failed. One lost
 * Ping alone does not move it. */
START_TEST(test_relay_stops_forwarding) {
  wgam_peer_info pi;
  int first;

  setup_mesh(0);
  t.answers[B] = 1;
  run(3 * WGAM_SECONDS);
  info(B, &pi);
  ck_assert_int_eq(pi.route, WGAM_ROUTE_RELAYED);
  first = node_of(pi.via);
  uint64_t changes = pi.route_changes;
  for (int k = 0; k < 3; k++) {
    t.lose_pings = 1;
    run(5 * WGAM_SECONDS);
  }
  info(B, &pi);
  ck_assert_int_eq(pi.route, WGAM_ROUTE_RELAYED);
  ck_assert_int_eq(node_of(pi.via), first);
  ck_assert_uint_eq(pi.route_changes, changes);

  t.halted[first] = 1;
  run(5 * WGAM_SECONDS); /* the goal: a fault healed within 5 s */
  info(B, &pi);
  ck_assert_int_eq(pi.route, WGAM_ROUTE_RELAYED);
  ck_assert_int_eq(node_of(pi.via), first == R1 ? R2 : R1);
  ck_assert_int_eq(holder(B), node_of(pi.via));
  changes = pi.route_changes;
  run(60 * WGAM_SECONDS);
  info(B, &pi);
  ck_assert_int_eq(node_of(pi.via), first == R1 ? R2 : R1);
  ck_assert_uint_eq(pi.route_changes, changes);
  teardown_mesh();
}
END_TEST

START_TEST(test_relay_never_relays) {
  wgam_peer_info pi;

  setup_mesh(1); /* we are a relay: no chains */
  run(20 * WGAM_SECONDS);
  info(B, &pi);
  ck_assert_int_eq(pi.route, WGAM_ROUTE_DIRECT);
  ck_assert_uint_eq(pi.route_changes, 0);
  ck_assert_int_eq(holder(B), B);
  teardown_mesh();
}
END_TEST

START_TEST(test_no_flapping_alternating) {
  wgam_peer_info pi;

  setup_mesh(0);
  t.answers[B] = 1;
  /* The direct path comes and goes every 20 s: each change is followed,
   * none more (two moves per cycle at most). */
  for (int k = 0; k < 4; k++) {
    t.up[B] = k % 2;
    run(20 * WGAM_SECONDS);
  }
  info(B, &pi);
  ck_assert_uint_le(pi.route_changes, 2 * 4);
  /* Steady again without direct path: one route, no more moves. */
  t.up[B] = 0;
  t.hs[B] = 0;
  run(30 * WGAM_SECONDS);
  info(B, &pi);
  uint64_t c = pi.route_changes;
  run(120 * WGAM_SECONDS);
  info(B, &pi);
  ck_assert_uint_eq(pi.route_changes, c);
  teardown_mesh();
}
END_TEST

/*
 * Two engines, A and B, each behind a symmetric NAT (no direct path), and
 * three public relays R1-R3 faked as above. Each engine has its own device;
 * a datagram from one engine to the other goes through the relay whose
 * entry holds the destination on the sender's device, and WireGuard at the
 * other end accepts it only when its own entry for that relay holds the
 * sender's address: the two ends must route the pair through the same
 * relay.
 */
enum { WA, WB, W1, W2, W3, WN };

static struct {
  wgam_mesh *m[2];
  wgam_tstamp now;
  uint8_t keys[WN][WGAM_KEY_LEN];
  wgam_addr addr[WN];
  wgam_peer_config cfg[WN];
  struct entry dev[2][WN]; /* dev[e][i]: engine e's entry for node i */
  int halted[WN];          /* relay i does not forward */
  int away[2];             /* engine e neither runs nor receives */
  wgam_tstamp ahead[2];    /* engine e's wall clock is this far ahead */
  uint8_t gkey[WGAM_KEY_LEN];
} w;

static int w_node_of(const uint8_t *key) {
  for (int i = 0; i < WN; i++)
    if (!memcmp(w.keys[i], key, WGAM_KEY_LEN))
      return i;
  return -1;
}

static int w_node_at(const wgam_addr *a) {
  for (int i = 0; i < WN; i++)
    if (a->family == w.addr[i].family && !memcmp(a->ip, w.addr[i].ip, 16))
      return i;
  return -1;
}

/* The entry of engine @e's device that holds node @n's address, or -1. */
static int w_holder(int e, int n) {
  int found = -1;

  for (int i = 0; i < WN; i++)
    for (size_t k = 0; k < w.dev[e][i].nips; k++)
      if (w_node_at(&w.dev[e][i].ips[k].addr) == n &&
          w.dev[e][i].ips[k].prefixlen == 32) {
        ck_assert_msg(found < 0, "engine %d: node %d on two entries", e, n);
        found = i;
      }
  return found;
}

static void w_apply(int e, const wgam_peer_update *u) {
  dev_apply(w.dev[e], WN, w_node_of(u->pubkey), u);
}

static void w_deliver(int to, int from, const uint8_t *pkt, size_t n) {
  wgam_addr src = w.addr[from];

  src.port = 1666;
  wgam_mesh_read_pkt(w.m[to - WA], &src, pkt, n, w.now);
}

static void w_pong(int e, int relay) {
  uint8_t plain[64], pkt[128], nonce[WGAM_NONCE_LEN] = {2};
  wgam_msg msg;
  wgam_ssize n;

  memset(&msg, 0, sizeof(msg));
  msg.type = WGAM_MSG_PONG;
  n = wgam_msg_encode(plain, sizeof(plain), &msg);
  ck_assert_int_gt(n, 0);
  n = wgam_pkt_seal(pkt, sizeof(pkt), w.gkey, nonce, plain, (size_t)n);
  ck_assert_int_gt(n, 0);
  w_deliver(e, relay, pkt, (size_t)n);
}

static void w_drain(int e) {
  wgam_peer_update u;
  uint8_t buf[WGAM_MAX_DATAGRAM_LEN], plain[WGAM_MAX_PLAINTEXT_LEN];
  wgam_addr dest;
  wgam_ssize n;
  int other = e == WA ? WB : WA;

  while (wgam_mesh_next_peer_update(w.m[e], &u) == 1)
    w_apply(e, &u);
  while ((n = wgam_mesh_write_pkt(w.m[e], &dest, buf, sizeof(buf), w.now)) >
         0) {
    wgam_msg msg;
    int to = w_node_at(&dest), via;
    wgam_ssize pl = wgam_pkt_open(plain, sizeof(plain), w.gkey, buf, (size_t)n);

    ck_assert_int_gt(pl, 0);
    ck_assert_int_ge(wgam_msg_decode(&msg, plain, (size_t)pl), 0);
    if (to >= W1) {
      if (msg.type == WGAM_MSG_PING)
        w_pong(e, to);
      continue;
    }
    if (to != other)
      continue;
    via = w_holder(e, other);
    if (via >= W1 && !w.halted[via] && w_holder(other, e) == via &&
        !w.away[other])
      w_deliver(other, e, buf, (size_t)n);
  }
  while (wgam_mesh_next_peer_update(w.m[e], &u) == 1)
    w_apply(e, &u);
}

static void w_observe(int e) {
  wgam_device_peer dp[WN];
  wgam_device d;
  size_t n = 0;
  uint64_t unix_now = 1700000000u + (w.now + w.ahead[e]) / WGAM_SECONDS;

  memset(&d, 0, sizeof(d));
  memcpy(d.pubkey, w.keys[e], WGAM_KEY_LEN);
  d.has_pubkey = 1;
  d.listen_port = 51820;
  for (int i = 0; i < WN; i++) {
    struct entry *x = &w.dev[e][i];
    int up = i >= W1;

    if (!x->present)
      continue;
    memset(&dp[n], 0, sizeof(dp[n]));
    memcpy(dp[n].pubkey, x->key, WGAM_KEY_LEN);
    dp[n].endpoint = x->endpoint;
    dp[n].last_handshake = up ? unix_now : 0;
    dp[n].rx_bytes = up ? (x->rx += 100) : x->rx;
    dp[n].allowedips = x->ips;
    dp[n].nallowedips = x->nips;
    n++;
  }
  d.peers = dp;
  d.npeers = n;
  ck_assert_int_eq(wgam_mesh_observe_device(w.m[e], &d, w.now, unix_now), 0);
}

static void w_run(wgam_tstamp ns) {
  wgam_tstamp end = w.now + ns;

  while (w.now < end) {
    w.now += 50 * WGAM_MILLISECONDS;
    for (int e = WA; e <= WB; e++) {
      if (w.away[e])
        continue;
      if (wgam_mesh_get_expiry(w.m[e]) <= w.now)
        ck_assert_int_eq(wgam_mesh_handle_expiry(w.m[e], w.now), 0);
      w_drain(e);
      if (wgam_mesh_get_wants(w.m[e]) & WGAM_WANT_DEVICE)
        w_observe(e);
      w_drain(e);
    }
  }
}

/* Engine @e's view of node @n. */
static void w_info(int e, int n, wgam_peer_info *pi) {
  for (size_t i = 0; wgam_mesh_get_peer_info(w.m[e], i, pi) == 0; i++)
    if (!memcmp(pi->pubkey, w.keys[n], WGAM_KEY_LEN))
      return;
  ck_abort_msg("engine %d has no peer %d", e, n);
}

/* The relay both ends confirmed for the pair, or -1. */
static int w_agreed(void) {
  wgam_peer_info a, b;

  w_info(WA, WB, &a);
  w_info(WB, WA, &b);
  if (a.route != WGAM_ROUTE_RELAYED || b.route != WGAM_ROUTE_RELAYED ||
      memcmp(a.via, b.via, WGAM_KEY_LEN))
    return -1;
  return w_node_of(a.via);
}

/* Engine time until the pair is relayed through one relay on both ends
 * (and both devices route it so), at most @max. */
static double w_heal(wgam_tstamp max) {
  wgam_tstamp start = w.now;

  while (w.now - start < max) {
    int r = w_agreed();
    if (r >= 0 && !w.halted[r] && w_holder(WA, WB) == r &&
        w_holder(WB, WA) == r)
      return (double)(w.now - start) / WGAM_SECONDS;
    w_run(50 * WGAM_MILLISECONDS);
  }
  return (double)max / WGAM_SECONDS;
}

/* Both engines up at @start (engine time); peers of engine @e set to all
 * but @drop (-1: all). */
static void w_set(int e, int drop) {
  wgam_peer_config cfg[WN];
  size_t n = 0;

  for (int i = 0; i < WN; i++)
    if (i != drop)
      cfg[n++] = w.cfg[i];
  ck_assert_int_eq(wgam_mesh_set_peers(w.m[e], cfg, n, w.now), 0);
}

static void w_log(void *u, int level, const char *msg) {
  (void)level;
  if (strstr(msg, "relay") || strstr(msg, "direct"))
    fprintf(stderr, "t=%.2f %c: %s\n", (double)w.now / WGAM_SECONDS,
            u == &w.m[WA] ? 'A' : 'B', msg);
}

/* Keys drawn by @seed; R3 a relay when @nrelays is 3 (else a plain
 * public peer). */
static void w_setup(wgam_tstamp start, unsigned seed, int nrelays) {
  wgam_settings s;
  static const uint8_t secret[] = SECRET;

  memset(&w, 0, sizeof(w));
  for (int i = 0; i < WN; i++) {
    memset(w.keys[i], 0x21 * (i + 1), WGAM_KEY_LEN);
    for (int k = 0; k < 8; k++)
      w.keys[i][k] ^= (uint8_t)((seed * 0x9e3779b9u + (unsigned)i) >> k);
    w.addr[i].family = WGAM_AF_INET;
    w.addr[i].ip[0] = 100;
    w.addr[i].ip[1] = 64;
    w.addr[i].ip[3] = (uint8_t)(i + 1);
    memcpy(w.cfg[i].pubkey, w.keys[i], WGAM_KEY_LEN);
    w.cfg[i].address = w.addr[i];
    w.cfg[i].endpoint.family = WGAM_AF_INET;
    w.cfg[i].endpoint.ip[0] = 198;
    w.cfg[i].endpoint.ip[1] = 51;
    w.cfg[i].endpoint.ip[2] = 100;
    w.cfg[i].endpoint.ip[3] = (uint8_t)(i + 1);
    w.cfg[i].endpoint.port = 51820;
    w.cfg[i].relay = i >= W1 && i < W1 + nrelays;
  }
  wgam_key_derive(w.gkey, secret, sizeof(secret) - 1);
  wgam_settings_default(&s);
  s.rand = rand_cb;
  s.secret = secret;
  s.secretlen = sizeof(secret) - 1;
  w.now = start;
  for (int e = WA; e <= WB; e++) {
    if (getenv("RELAY_LOG")) {
      s.log = w_log;
      s.log_level = WGAM_LOG_INFO;
      s.user_data = &w.m[e];
    }
    ck_assert_int_eq(wgam_mesh_new(&w.m[e], &s, w.now), 0);
    w_set(e, -1);
  }
}

static void w_teardown(void) {
  for (int e = WA; e <= WB; e++)
    wgam_mesh_del(w.m[e]);
}

/* Both ends fresh at once take the pair's first choice at once: relayed
 * within relay_after and a round trip, one route change each. */
/*
 * One end away for 2.6 s (its interface deleted and created again, its
 * daemon stopped): the other's Ping through the pair's relay goes
 * unanswered meanwhile. When the end back pings through the same relay
 * before the other gives the route up, that Ping answers it and the pair
 * stays on its relay (else the other left the relay just as this end,
 * back, took it, and the pair was split until the next probe). Ten moments
 * of the probe cycle, either end away.
 */
START_TEST(test_pair_end_away) {
  int moved = 0, runs = 0;

  for (int e = WA; e <= WB; e++)
    for (int k = 0; k < 10; k++) {
      wgam_peer_info pi;
      uint64_t before;

      w_setup(WGAM_SECONDS, (unsigned)k, 3);
      ck_assert(w_heal(10 * WGAM_SECONDS) < 10);
      w_run(20 * WGAM_SECONDS + k * 250 * WGAM_MILLISECONDS);
      w_info(e == WA ? WB : WA, e, &pi);
      before = pi.route_changes;
      w.away[e] = 1;
      w_run(2600 * WGAM_MILLISECONDS);
      w.away[e] = 0;
      w_run(10 * WGAM_SECONDS);
      w_info(e == WA ? WB : WA, e, &pi);
      moved += pi.route_changes != before;
      runs++;
      ck_assert_int_ge(w_agreed(), W1);
      w_teardown();
    }
  if (getenv("RELAY_DEBUG"))
    printf("end away: the other end changed route in %d of %d runs\n", moved,
           runs);
  /* It moves only when the end came back after its Ping's time was up
   * (every run did, before the other end's Ping counted). */
  ck_assert_int_le(moved * 4, runs);
}
END_TEST

START_TEST(test_pair_first_choice) {
  wgam_peer_info a, b;

  w_setup(WGAM_SECONDS, 0, 3);
  double heal = w_heal(10 * WGAM_SECONDS);
  ck_assert_msg(heal <= 1.6, "first relay agreed after %.2f s", heal);
  w_run(30 * WGAM_SECONDS);
  w_info(WA, WB, &a);
  w_info(WB, WA, &b);
  ck_assert_int_ge(w_agreed(), W1);
  ck_assert_uint_eq(a.route_changes, 1);
  ck_assert_uint_eq(b.route_changes, 1);
  w_teardown();
}
END_TEST

/* The pair on a relay other than its first choice (the first one did not
 * forward when they met); then the configuration of one end (@fresh: the
 * lower key or the higher, which take different parts in the search)
 * drops the other and
 * adds it back after @window: that end starts afresh for the peer (its
 * first choice, no relay passed over) while the other still has its
 * history. B's wall clock is @ahead of A's. Returns the time from the
 * re-add until both ends agree. */
static double w_reload_case(wgam_tstamp offset, wgam_tstamp window,
                            unsigned seed, int nrelays, wgam_tstamp ahead,
                            int fresh) {
  wgam_tstamp max = 60 * WGAM_SECONDS;
  int r, first;

  w_setup(WGAM_SECONDS + offset, seed, nrelays);
  w.ahead[WB] = ahead;
  w_heal(max);
  first = w_agreed();
  ck_assert_int_ge(first, W1);
  w_teardown();
  w_setup(WGAM_SECONDS + offset, seed, nrelays);
  w.ahead[WB] = ahead;
  w.halted[first] = nrelays > 1; /* so that they meet elsewhere */
  w_heal(max);
  r = w_agreed();
  ck_assert_int_ge(r, W1);
  ck_assert(nrelays == 1 || r != first);
  w.halted[first] = 0;
  w_run(20 * WGAM_SECONDS);
  ck_assert_int_eq(w_agreed(), r); /* a confirmed route stays */
  w_set(fresh, fresh == WA ? WB : WA);
  w_run(window);
  w_set(fresh, -1);
  return w_heal(max);
}

/* Over key sets, one to three relays, windows of 0 to 6 s, moments of the
 * wall clock's slots, and clocks up to 450 ms apart (the ends read the wall
 * clock in whole seconds at different moments). */
START_TEST(test_pair_reload_one_end) {
  double worst = 0, sum = 0;
  int n = 0;

  for (unsigned seed = 0; seed < 8; seed++)
    for (int nr = 1; nr <= 3; nr++)
      for (int win = 0; win <= 6; win += 2)
        for (int off = 0; off < 8; off++) {
          wgam_tstamp ahead = seed % 4 * 300 * WGAM_MILLISECONDS;
          int fresh = off % 2 ? WB : WA;
          double h = w_reload_case(off * 500 * WGAM_MILLISECONDS,
                                   (wgam_tstamp)win * WGAM_SECONDS, seed, nr,
                                   ahead, fresh);
          if (getenv("RELAY_DEBUG"))
            fprintf(stderr,
                    "seed %u relays %d window %d s offset %.1f s ahead %.2f "
                    "s fresh %c leader %d: healed in %.2f s\n",
                    seed, nr, win, off * 0.5, (double)ahead / WGAM_SECONDS,
                    fresh == WA ? 'A' : 'B',
                    memcmp(w.keys[fresh], w.keys[fresh ^ 1], 8) < 0, h);
          worst = h > worst ? h : worst;
          sum += h;
          n++;
          w_teardown();
        }
  fprintf(stderr, "peer re-added by reload: heal mean %.2f s, worst %.2f s\n",
          sum / n, worst);
  ck_assert_msg(worst <= 5.0, "healed only after %.2f s", worst);
}
END_TEST

/* The relay carrying the pair stops forwarding: both ends find another
 * together. */
START_TEST(test_pair_relay_halts) {
  double worst = 0;

  for (int off = 0; off < 8; off++) {
    w_setup(WGAM_SECONDS + off * 500 * WGAM_MILLISECONDS, off / 2, 2 + off % 2);
    w_heal(10 * WGAM_SECONDS);
    int r = w_agreed();
    ck_assert_int_ge(r, W1);
    w_run(7 * WGAM_SECONDS);
    w.halted[r] = 1;
    w_run(WGAM_SECONDS); /* still agreed on the halted relay */
    double h = 1 + w_heal(60 * WGAM_SECONDS);
    ck_assert_int_ne(w_agreed(), r);
    worst = h > worst ? h : worst;
    w_teardown();
  }
  fprintf(stderr, "relay halted: healed within %.2f s\n", worst);
  ck_assert_msg(worst <= 5.0, "healed only after %.2f s", worst);
}
END_TEST

static Suite *relay_suite(void) {
  Suite *s = suite_create("relay");
  TCase *tc = tcase_create("relay");

  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, test_relay_chosen_within_bound);
  tcase_add_test(tc, test_only_connected_relays);
  tcase_add_test(tc, test_confirmed_by_pong_else_next_relay);
  tcase_add_test(tc, test_direct_handshake_moves_back);
  tcase_add_test(tc, test_relay_loss);
  tcase_add_test(tc, test_relay_stops_forwarding);
  tcase_add_test(tc, test_relay_never_relays);
  tcase_add_test(tc, test_no_flapping_alternating);
  tcase_add_test(tc, test_pair_first_choice);
  tcase_add_test(tc, test_pair_reload_one_end);
  tcase_add_test(tc, test_pair_relay_halts);
  tcase_add_test(tc, test_pair_end_away);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) {
  SRunner *sr = srunner_create(relay_suite());
  int failed;

  srunner_run_all(sr, CK_NORMAL);
  failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
