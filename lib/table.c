/* SPDX-License-Identifier: MIT */
/*
 * Containers: the peer tables (by key, by mesh address) and the deadline heap.
 */
#include <stdlib.h>
#include <string.h>

#include "engine.h"

/* Multiply-xorshift mixing of the address words: cheap, and good enough
 * for tables whose keys (public keys aside) come from configuration. */
static uint64_t mix64(uint64_t x) {
  x ^= x >> 32;
  x *= 0xd6e8feb86659fd93ull;
  x ^= x >> 32;
  return x;
}

uint64_t wgam_ip_hash(const wgam_addr *a) {
  uint64_t w0, w1;
  memcpy(&w0, a->ip, 8);
  memcpy(&w1, a->ip + 8, 8);
  return mix64(w0 * 0x9e3779b97f4a7c15ull ^ mix64(w1 ^ a->family));
}

uint32_t wgam_addr_hash32(const wgam_addr *a) {
  return (uint32_t)mix64(wgam_ip_hash(a) ^ a->port);
}

uint64_t wgam_key_hash(const uint8_t *key) {
  uint64_t h;
  memcpy(&h, key, sizeof(h)); /* public keys are uniformly distributed */
  return h;
}

size_t wgam_table_cap(size_t n) {
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

uint32_t wgam_table_entry(uint64_t h, size_t cap, size_t idx) {
  return tab_tag(h, cap) | (uint32_t)(idx + 1);
}

/* The peer index in a slot, or NO_IDX for an empty one. */
uint32_t wgam_table_index(uint32_t e, size_t cap) {
  return e ? (e & (uint32_t)(cap - 1)) - 1 : NO_IDX;
}

/* Finds @key in @tab; returns the slot (empty or matching). */
size_t wgam_keytab_slot(const struct peer *peers, const uint32_t *tab,
                        size_t cap, const uint8_t *key) {
  uint64_t h = wgam_key_hash(key);
  uint32_t tag = tab_tag(h, cap), mask = (uint32_t)(cap - 1);
  size_t i = (size_t)h & (cap - 1);

  while (tab[i] &&
         ((tab[i] & ~mask) != tag ||
          memcmp(peers[(tab[i] & mask) - 1].pubkey, key, WGAM_KEY_LEN) != 0))
    i = (i + 1) & (cap - 1);
  return i;
}

size_t wgam_addrtab_slot(const struct peer *peers, const uint32_t *tab,
                         size_t cap, const wgam_addr *a) {
  uint64_t h = wgam_ip_hash(a);
  uint32_t tag = tab_tag(h, cap), mask = (uint32_t)(cap - 1);
  size_t i = (size_t)h & (cap - 1);

  while (tab[i] && ((tab[i] & ~mask) != tag ||
                    !addr_ip_equal(&peers[(tab[i] & mask) - 1].address, a)))
    i = (i + 1) & (cap - 1);
  return i;
}

uint32_t wgam_find_peer(const wgam_mesh *m, const uint8_t *key) {
  size_t slot;
  if (!m->npeers)
    return NO_IDX;
  slot = wgam_keytab_slot(m->peers, m->keytab, m->tabcap, key);
  return wgam_table_index(m->keytab[slot], m->tabcap);
}

uint32_t wgam_find_addr(const wgam_mesh *m, const wgam_addr *a) {
  size_t slot;
  if (!m->npeers || !addr_valid(a))
    return NO_IDX;
  slot = wgam_addrtab_slot(m->peers, m->addrtab, m->tabcap, a);
  return wgam_table_index(m->addrtab[slot], m->tabcap);
}

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

void wgam_heap_set(wgam_mesh *m, uint32_t idx, wgam_tstamp next) {
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
