/* SPDX-License-Identifier: MIT */
/*
 * What a peer needs only now and then is held out of line (struct
 * peer_cold, lib/engine.h): made when first needed, freed once nothing in
 * it matters. One engine, a fake device that applies its peer updates, and
 * an allocator that fails on demand: without memory a try or a probe waits
 * for the next step instead of failing the engine, and a connected peer
 * holds no out-of-line part.
 */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "engine.h"
#include "testutil.h"

#define NP 3 /* peers besides us */
#define UNIX0 1700000000ull
#define TICK (100 * WGAM_MILLISECONDS)

static int failing;          /* every allocation fails while set */
static long fail_after = -1; /* or: allocations left before they fail */
static long live;            /* blocks allocated and not freed */

static int fail_now(void) {
  if (failing)
    return 1;
  if (fail_after < 0)
    return 0;
  return fail_after-- == 0 ? (fail_after = 0, 1) : 0;
}

static void *t_malloc(size_t n, void *u) {
  void *p = fail_now() ? NULL : malloc(n);

  (void)u;
  live += p != NULL;
  return p;
}

static void *t_calloc(size_t a, size_t b, void *u) {
  void *p = fail_now() ? NULL : calloc(a, b);

  (void)u;
  live += p != NULL;
  return p;
}

static void *t_realloc(void *p, size_t n, void *u) {
  void *q = fail_now() ? NULL : realloc(p, n);

  (void)u;
  live += q && !p;
  return q;
}

static void t_free(void *p, void *u) {
  (void)u;
  live -= p != NULL;
  free(p);
}

static const wgam_mem mem = {NULL, t_malloc, t_free, t_calloc, t_realloc};

struct bed {
  wgam_mesh *m;
  wgam_tstamp now;
  uint8_t key[NP + 1][WGAM_KEY_LEN]; /* 0 is us */
  wgam_peer_config cfg[NP + 1];
  wgam_device_peer dp[NP];
  wgam_cidr aips[NP];
  int present[NP];
  int rx_flows; /* every peer's received bytes grow at each read */
  wgam_tstamp next_read;
  uint64_t rnd;
};

static struct bed b;

static void bed_init(void) {
  wgam_settings s;
  int i;

  memset(&b, 0, sizeof(b));
  failing = 0;
  fail_after = -1;
  live = 0;
  for (i = 0; i <= NP; i++) {
    memset(b.key[i], 0x11 * (i + 1), WGAM_KEY_LEN);
    b.key[i][31] = (uint8_t)i;
    memcpy(b.cfg[i].pubkey, b.key[i], WGAM_KEY_LEN);
    b.cfg[i].address = tu_v4(100, 64, 0, i + 1, 0);
    b.cfg[i].endpoint = tu_v4(198, 51, 100, i + 1, 51820);
  }
  for (i = 0; i < NP; i++)
    memcpy(b.dp[i].pubkey, b.key[i + 1], WGAM_KEY_LEN);
  ck_assert_int_eq(wgam_settings_default(&s), 0);
  s.secret = (const uint8_t *)"test secret";
  s.secretlen = 11;
  s.rand = tu_rand_fixed;
  s.user_data = &b.rnd;
  s.mem = &mem;
  ck_assert_int_eq(wgam_mesh_new(&b.m, &s, 0), 0);
  ck_assert_int_eq(wgam_mesh_set_peers(b.m, b.cfg, NP + 1, 0), 0);
  b.now = WGAM_SECONDS;
}

static void bed_free(void) {
  wgam_mesh_del(b.m);
  b.m = NULL;
  ck_assert_int_eq(live, 0);
}

static int dev_index(const uint8_t *key) {
  int i;

  for (i = 0; i < NP; i++)
    if (memcmp(b.dp[i].pubkey, key, WGAM_KEY_LEN) == 0)
      return i;
  return -1;
}

/* Applies the engine's peer updates to the fake device, sends its
 * datagrams nowhere. */
static void drain(void) {
  wgam_peer_update u;
  uint8_t pkt[WGAM_MAX_DATAGRAM_LEN];
  wgam_addr dest;
  wgam_ssize n;

  while (wgam_mesh_next_peer_update(b.m, &u)) {
    int i = dev_index(u.pubkey);

    ck_assert_int_ge(i, 0);
    if (u.flags & WGAM_PEER_REMOVE_ME) {
      b.present[i] = 0;
      memset(&b.dp[i].endpoint, 0, sizeof(b.dp[i].endpoint));
      b.dp[i].last_handshake = 0;
      continue;
    }
    b.present[i] = 1;
    if (u.flags & WGAM_PEER_HAS_ENDPOINT)
      b.dp[i].endpoint = u.endpoint;
    if (u.flags & WGAM_PEER_HAS_KEEPALIVE)
      b.dp[i].persistent_keepalive = u.persistent_keepalive;
    if (u.flags & WGAM_PEER_REPLACE_ALLOWEDIPS) {
      ck_assert_uint_le(u.nallowedips, 1);
      b.dp[i].nallowedips = u.nallowedips;
      if (u.nallowedips)
        b.aips[i] = u.allowedips[0];
      b.dp[i].allowedips = &b.aips[i];
    }
  }
  while ((n = wgam_mesh_write_pkt(b.m, &dest, pkt, sizeof(pkt), b.now)) > 0)
    ;
  ck_assert_int_eq(n, 0);
}

static void read_device(void) {
  wgam_device_peer list[NP];
  wgam_device dev;
  size_t n = 0;
  int i;

  for (i = 0; i < NP; i++) {
    if (!b.present[i])
      continue;
    if (b.rx_flows)
      b.dp[i].rx_bytes += 100;
    list[n++] = b.dp[i];
  }
  memset(&dev, 0, sizeof(dev));
  memcpy(dev.pubkey, b.key[0], WGAM_KEY_LEN);
  dev.has_pubkey = 1;
  dev.listen_port = 51820;
  dev.peers = list;
  dev.npeers = n;
  ck_assert_int_eq(
      wgam_mesh_observe_device(b.m, &dev, b.now, UNIX0 + b.now / WGAM_SECONDS),
      0);
  b.next_read = b.now + 2 * WGAM_SECONDS;
  drain();
}

/* Runs the engine for @d: its timers, and a device read every 2 s or when
 * it asks for one. */
static void run(wgam_tstamp d) {
  wgam_tstamp end = b.now + d;

  while (b.now < end) {
    b.now += TICK;
    if (wgam_mesh_get_expiry(b.m) <= b.now) {
      ck_assert_int_eq(wgam_mesh_handle_expiry(b.m, b.now), 0);
      drain();
    }
    if (b.now >= b.next_read || (wgam_mesh_get_wants(b.m) & WGAM_WANT_DEVICE))
      read_device();
  }
}

/* Every peer's handshake completes now, at the endpoint the device has. */
static void handshakes(void) {
  int i;

  for (i = 0; i < NP; i++)
    if (b.present[i] && addr_valid(&b.dp[i].endpoint)) {
      b.dp[i].last_handshake = UNIX0 + b.now / WGAM_SECONDS;
      b.dp[i].rx_bytes += 148;
    }
}

static struct peer *peer(int i) {
  uint32_t idx = wgam_find_peer(b.m, b.key[i + 1]);

  ck_assert_uint_ne(idx, NO_IDX);
  return &b.m->peers[idx];
}

static int state(int i) {
  wgam_peer_info info;
  uint32_t idx = wgam_find_peer(b.m, b.key[i + 1]);

  /* get_peer_info() counts without ourselves (index 0 here). */
  ck_assert_int_eq(wgam_mesh_get_peer_info(b.m, idx - 1, &info), 0);
  ck_assert_int_eq(memcmp(info.pubkey, b.key[i + 1], WGAM_KEY_LEN), 0);
  return info.state;
}

static void connect_all(void) {
  int i;

  read_device(); /* the tries start: each peer's configured endpoint */
  for (i = 0; i < NP; i++) {
    ck_assert(b.present[i]);
    ck_assert(wgam_addr_equal(&b.dp[i].endpoint, &b.cfg[i + 1].endpoint));
    ck_assert_int_eq(state(i), WGAM_PEER_TRYING);
    ck_assert_ptr_nonnull(cold_full(peer(i)));
  }
  b.now += TICK;
  handshakes();
  b.rx_flows = 1;
  read_device();
  for (i = 0; i < NP; i++)
    ck_assert_int_eq(state(i), WGAM_PEER_CONNECTED);
}

/* A connected peer that hears from its peers holds nothing out of line but
 * its configured endpoint (in a small block) once its Request, answer and
 * propagation times are over. */
START_TEST(test_connected_peer_has_no_cold_part) {
  int i;

  bed_init();
  connect_all();
  run(30 * WGAM_SECONDS);
  for (i = 0; i < NP; i++) {
    ck_assert_int_eq(state(i), WGAM_PEER_CONNECTED);
    ck_assert_ptr_nonnull(peer(i)->cold);
    ck_assert_ptr_null(cold_full(peer(i)));
    ck_assert(wgam_addr_equal(&peer_cfg(peer(i))[0], &b.cfg[i + 1].endpoint));
    /* what we pointed the device at, and what we announced, is dev_ep */
    ck_assert_uint_eq(peer(i)->bits &
                          (PEER_WANT_DEV | PEER_OBS_DEV | PEER_COLD_FULL),
                      PEER_WANT_DEV | PEER_OBS_DEV);
  }
  bed_free();
}
END_TEST

/* Without memory for the try, the peer stays idle and nothing is written
 * for its endpoint; with memory again, the next device read tries it. */
START_TEST(test_try_waits_for_memory) {
  int i;

  bed_init();
  failing = 1;
  read_device();
  run(4 * WGAM_SECONDS);
  for (i = 0; i < NP; i++) {
    ck_assert_int_eq(state(i), WGAM_PEER_IDLE);
    ck_assert_ptr_null(cold_full(peer(i)));
    ck_assert(!addr_valid(&b.dp[i].endpoint));
  }
  failing = 0;
  b.now += TICK;
  connect_all();
  bed_free();
}
END_TEST

/* A silent path is probed only with memory for the probe's time; until
 * then the peer stays connected, and the probe goes out when memory is
 * back. */
START_TEST(test_probe_waits_for_memory) {
  wgam_stats st;
  uint64_t pings;
  int i;

  bed_init();
  connect_all();
  run(30 * WGAM_SECONDS);
  wgam_mesh_get_stats(b.m, &st);
  pings = st.pkts_out[WGAM_MSG_PING];
  failing = 1;
  b.rx_flows = 0; /* silent: due for a probe after probe_idle */
  run(10 * WGAM_SECONDS);
  wgam_mesh_get_stats(b.m, &st);
  ck_assert_uint_eq(st.pkts_out[WGAM_MSG_PING], pings);
  for (i = 0; i < NP; i++) {
    ck_assert_int_eq(state(i), WGAM_PEER_CONNECTED);
    ck_assert_ptr_null(cold_full(peer(i)));
  }
  failing = 0;
  run(4 * WGAM_SECONDS);
  wgam_mesh_get_stats(b.m, &st);
  ck_assert_uint_ge(st.pkts_out[WGAM_MSG_PING], pings + NP);
  bed_free();
}
END_TEST

/* A peer that roams keeps where we pointed the device in its small block,
 * and what we announced in a whole one until the move is announced;
 * without memory for that it is forgotten, and the engine goes on. */
START_TEST(test_roaming_keeps_want_in_small_block) {
  wgam_addr moved = tu_v4(203, 0, 113, 9, 40000), old;
  struct peer *p;

  bed_init();
  connect_all();
  run(30 * WGAM_SECONDS);
  old = b.dp[0].endpoint;
  b.dp[0].endpoint = moved; /* WireGuard roamed it */
  run(10 * WGAM_SECONDS);
  p = peer(0);
  ck_assert_int_eq(state(0), WGAM_PEER_CONNECTED);
  ck_assert_ptr_nonnull(p->cold);
  ck_assert_ptr_null(cold_full(p));
  ck_assert(wgam_addr_equal(want_ep(p), &old));
  ck_assert(wgam_addr_equal(obs_ep(p), &p->dev_ep)); /* announced again */

  failing = 1;
  old = b.dp[1].endpoint;
  b.dp[1].endpoint = moved;
  b.dp[1].endpoint.port++;
  run(10 * WGAM_SECONDS);
  ck_assert_int_eq(state(1), WGAM_PEER_CONNECTED);
  ck_assert_ptr_null(cold_full(peer(1)));
  ck_assert(wgam_addr_equal(want_ep(peer(1)), &old)); /* its block was there */
  ck_assert(!addr_valid(obs_ep(peer(1))) ||
            wgam_addr_equal(obs_ep(peer(1)), &b.dp[1].endpoint));
  failing = 0;

  /* Without a configured endpoint, a peer holds nothing out of line; one
   * that roams while memory is short forgets where we pointed it. */
  ck_assert_int_eq(wgam_mesh_set_peer_endpoints(b.m, b.key[3], NULL, 0, b.now),
                   0);
  run(4 * WGAM_SECONDS);
  ck_assert_ptr_null(peer(2)->cold);
  failing = 1;
  b.dp[2].endpoint = moved;
  b.dp[2].endpoint.port += 2;
  run(10 * WGAM_SECONDS);
  ck_assert_int_eq(state(2), WGAM_PEER_CONNECTED);
  ck_assert_ptr_null(peer(2)->cold);
  ck_assert(!addr_valid(want_ep(peer(2))));
  failing = 0;
  run(4 * WGAM_SECONDS);
  bed_free();
}
END_TEST

/* A reload that fails part way leaves every peer's cold part as it was; one
 * that succeeds carries it over. Leaks and double frees show in the block
 * count (and under valgrind / ASan). */
START_TEST(test_reload_with_cold_parts) {
  wgam_peer_config rev[NP + 1];
  int limit, i, ok = 0, failed = 0;

  for (limit = 0; limit < 24; limit++) {
    uint32_t tries[NP];

    bed_init();
    read_device(); /* every peer trying: a full cold part each */
    for (i = 0; i < NP; i++) {
      tries[i] = cold(peer(i))->tries;
      ck_assert_uint_gt(tries[i], 0);
    }
    /* Peer 2 goes, the others change places; peer 0 gets a prefix (its
     * cold part holds it). */
    rev[0] = b.cfg[0];
    rev[1] = b.cfg[2];
    rev[2] = b.cfg[1];
    rev[2].nprefixes = 1;
    rev[2].prefixes[0].addr = tu_v4(10, 9, 0, 0, 0);
    rev[2].prefixes[0].prefixlen = 16;
    fail_after = limit;
    if (wgam_mesh_set_peers(b.m, rev, NP, b.now) == 0) {
      ok++;
      ck_assert_uint_eq(wgam_mesh_get_npeers(b.m), NP - 1);
      ck_assert_uint_eq(cold(peer(0))->tries, tries[0]);
      ck_assert_uint_eq(cold(peer(1))->tries, tries[1]);
      ck_assert_ptr_nonnull(cold(peer(0))->prefixes);
      ck_assert_ptr_null(cold(peer(1))->prefixes);
    } else {
      failed++;
      ck_assert_uint_eq(wgam_mesh_get_npeers(b.m), NP);
      for (i = 0; i < NP; i++)
        ck_assert_uint_eq(cold(peer(i))->tries, tries[i]);
      ck_assert_ptr_null(cold(peer(0))->prefixes);
    }
    fail_after = -1;
    bed_free();
  }
  ck_assert_int_gt(ok, 0);
  ck_assert_int_gt(failed, 0);
}
END_TEST

static Suite *memory_suite(void) {
  Suite *s = suite_create("memory");
  TCase *tc = tcase_create("cold");

  tcase_add_test(tc, test_connected_peer_has_no_cold_part);
  tcase_add_test(tc, test_try_waits_for_memory);
  tcase_add_test(tc, test_probe_waits_for_memory);
  tcase_add_test(tc, test_roaming_keeps_want_in_small_block);
  tcase_add_test(tc, test_reload_with_cold_parts);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) {
  SRunner *sr = srunner_create(memory_suite());
  int failed;

  srunner_run_all(sr, CK_NORMAL);
  failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
