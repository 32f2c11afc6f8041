/* SPDX-License-Identifier: MIT */
/*
 * lib/table.c: the peer tables (by public key, by mesh address) and the
 * deadline heap, driven through an engine whose peer list the test sets.
 */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "engine.h"

#define NPEERS 300

static int rand_cb(void *u, uint8_t *d, size_t n) {
  (void)u;
  memset(d, 7, n);
  return 0;
}

/* Keys that share their first 8 bytes (the hashed ones) in pairs, so that
 * probes meet entries of other peers with the same tag. */
static void make_key(uint8_t key[WGAM_KEY_LEN], int i) {
  memset(key, 0, WGAM_KEY_LEN);
  key[0] = (uint8_t)(i / 2);
  key[1] = (uint8_t)(i / 2 >> 8);
  key[31] = (uint8_t)i;
  key[30] = (uint8_t)(i >> 8);
}

static void make_addr(wgam_addr *a, int i) {
  memset(a, 0, sizeof(*a));
  a->family = WGAM_AF_INET;
  a->ip[0] = 100;
  a->ip[1] = 64;
  a->ip[2] = (uint8_t)(i >> 8);
  a->ip[3] = (uint8_t)i;
}

static wgam_mesh *mesh_with_peers(int n) {
  static wgam_peer_config cfg[NPEERS];
  wgam_settings s;
  wgam_mesh *m;

  wgam_settings_default(&s);
  s.rand = rand_cb;
  ck_assert_int_eq(wgam_mesh_new(&m, &s, 0), 0);
  for (int i = 0; i < n; i++) {
    memset(&cfg[i], 0, sizeof(cfg[i]));
    make_key(cfg[i].pubkey, i);
    make_addr(&cfg[i].address, i);
  }
  ck_assert_int_eq(wgam_mesh_set_peers(m, cfg, (size_t)n, 0), 0);
  return m;
}

START_TEST(test_find_every_key_and_address) {
  wgam_mesh *m = mesh_with_peers(NPEERS);
  uint8_t key[WGAM_KEY_LEN];
  wgam_addr a;

  ck_assert_uint_ge(m->tabcap, 2 * NPEERS);
  ck_assert_uint_eq(m->tabcap & (m->tabcap - 1), 0);
  for (int i = 0; i < NPEERS; i++) {
    make_key(key, i);
    ck_assert_uint_eq(wgam_find_peer(m, key), (uint32_t)i);
    make_addr(&a, i);
    a.port = 51820; /* the port does not matter */
    ck_assert_uint_eq(wgam_find_addr(m, &a), (uint32_t)i);
  }
  /* Misses: a key sharing the hashed bytes of a known one, an address
   * outside the list, another family, no address. */
  make_key(key, 4);
  key[29] = 0x55;
  ck_assert_uint_eq(wgam_find_peer(m, key), NO_IDX);
  make_addr(&a, NPEERS + 1);
  ck_assert_uint_eq(wgam_find_addr(m, &a), NO_IDX);
  make_addr(&a, 3);
  a.family = WGAM_AF_INET6;
  ck_assert_uint_eq(wgam_find_addr(m, &a), NO_IDX);
  memset(&a, 0, sizeof(a));
  ck_assert_uint_eq(wgam_find_addr(m, &a), NO_IDX);
  wgam_mesh_del(m);
}
END_TEST

START_TEST(test_table_entry_roundtrip) {
  for (size_t cap = 16; cap <= 1u << 16; cap <<= 1)
    for (size_t idx = 0; idx < cap / 2; idx += 1 + idx / 3) {
      uint64_t h = 0x9e3779b97f4a7c15ull * (idx + 1);
      uint32_t e = wgam_table_entry(h, cap, idx);

      ck_assert_uint_ne(e, 0); /* 0 is an empty slot */
      ck_assert_uint_eq(wgam_table_index(e, cap), (uint32_t)idx);
    }
  ck_assert_uint_eq(wgam_table_index(0, 64), NO_IDX);
  ck_assert_uint_ge(wgam_table_cap(0), 16);
  ck_assert_uint_ge(wgam_table_cap(1000), 2000);
}
END_TEST

/* The heap's top is always the earliest deadline; peers leave it with
 * NONE and come back; every peer's heap_idx points at its slot. */
START_TEST(test_heap_orders_deadlines) {
  wgam_mesh *m = mesh_with_peers(NPEERS);
  unsigned r = 12345;

  m->heaplen = 0;
  for (int i = 0; i < NPEERS; i++) {
    m->peers[i].heap_idx = NO_IDX;
    m->peers[i].next = NONE;
  }
  for (int round = 0; round < 5000; round++) {
    uint32_t idx;
    wgam_tstamp next;

    r = r * 1103515245u + 12345u;
    idx = (r >> 8) % NPEERS;
    r = r * 1103515245u + 12345u;
    next = (r >> 4) % 7 == 0 ? NONE : (wgam_tstamp)(r >> 8) % 100000;
    wgam_heap_set(m, idx, next);
    for (size_t k = 0; k < m->heaplen; k++) {
      ck_assert_uint_eq(m->peers[m->heap[k]].heap_idx, k);
      if (k)
        ck_assert_uint_le(m->peers[m->heap[(k - 1) / 2]].next,
                          m->peers[m->heap[k]].next);
    }
    for (int i = 0; i < NPEERS; i++)
      ck_assert((m->peers[i].heap_idx == NO_IDX) == (m->peers[i].next == NONE));
  }
  wgam_mesh_del(m);
}
END_TEST

static Suite *table_suite(void) {
  Suite *s = suite_create("table");
  TCase *tc = tcase_create("table");

  tcase_add_test(tc, test_find_every_key_and_address);
  tcase_add_test(tc, test_table_entry_roundtrip);
  tcase_add_test(tc, test_heap_orders_deadlines);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) {
  SRunner *sr = srunner_create(table_suite());
  int failed;

  srunner_run_all(sr, CK_NORMAL);
  failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
