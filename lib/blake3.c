/* SPDX-License-Identifier: MIT */
/*
 * BLAKE3 in hash mode with the default 32-byte output, written from the
 * BLAKE3 specification (Aumasson, Neves, O'Connor, Wilcox-O'Hearn, 2020).
 *
 * The protocol only needs it to derive the gossip key from a short secret,
 * so this is the plain portable form: no SIMD, no multi-threading, no
 * extended output. It still implements the whole tree so that any input
 * length gives the standard digest.
 *
 * Input is split into 1024-byte chunks of 64-byte blocks. Each chunk is
 * compressed block by block into a chaining value (CV); CVs are combined
 * pairwise into parent nodes, left subtrees being complete and as large as
 * possible. The last node compressed gets the ROOT flag.
 */
#include <string.h>

#include "internal.h"

#define BLOCK_LEN 64
#define CHUNK_LEN 1024

enum {
  CHUNK_START = 1u << 0,
  CHUNK_END = 1u << 1,
  PARENT = 1u << 2,
  ROOT = 1u << 3,
};

/* The SHA-256 initial hash value, as the specification prescribes. */
static const uint32_t IV[8] = {
    0x6A09E667u, 0xBB67AE85u, 0x3C6EF372u, 0xA54FF53Au,
    0x510E527Fu, 0x9B05688Cu, 0x1F83D9ABu, 0x5BE0CD19u,
};

/* Message word order of each of the 7 rounds: round r uses the
 * specification's permutation applied r times, precomputed. */
static const uint8_t SCHEDULE[7][16] = {
    {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15},
    {2, 6, 3, 10, 7, 0, 4, 13, 1, 11, 12, 5, 9, 14, 15, 8},
    {3, 4, 10, 12, 13, 2, 7, 14, 6, 5, 9, 0, 11, 15, 8, 1},
    {10, 7, 12, 9, 14, 3, 13, 15, 4, 0, 11, 2, 5, 8, 1, 6},
    {12, 13, 9, 11, 15, 10, 14, 8, 7, 2, 5, 3, 0, 1, 6, 4},
    {9, 14, 11, 5, 8, 12, 15, 1, 13, 3, 0, 10, 2, 6, 4, 7},
    {11, 15, 5, 0, 1, 9, 8, 6, 14, 10, 2, 12, 3, 4, 7, 13},
};

static uint32_t rotr32(uint32_t x, unsigned n) {
  return (x >> n) | (x << (32 - n));
}

static uint32_t load32_le(const uint8_t *p) {
  return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
         (uint32_t)p[3] << 24;
}

static void store32_le(uint8_t *p, uint32_t v) {
  p[0] = (uint8_t)v;
  p[1] = (uint8_t)(v >> 8);
  p[2] = (uint8_t)(v >> 16);
  p[3] = (uint8_t)(v >> 24);
}

static void g(uint32_t s[16], int a, int b, int c, int d, uint32_t mx,
              uint32_t my) {
  s[a] = s[a] + s[b] + mx;
  s[d] = rotr32(s[d] ^ s[a], 16);
  s[c] = s[c] + s[d];
  s[b] = rotr32(s[b] ^ s[c], 12);
  s[a] = s[a] + s[b] + my;
  s[d] = rotr32(s[d] ^ s[a], 8);
  s[c] = s[c] + s[d];
  s[b] = rotr32(s[b] ^ s[c], 7);
}

/* The compression function, truncated to the 8 words that hash mode with a
 * 32-byte output ever uses (the CV, or the first output block). */
static void compress(uint32_t out[8], const uint32_t cv[8],
                     const uint32_t m[16], uint64_t counter, uint32_t blocklen,
                     uint32_t flags) {
  uint32_t s[16];
  int r, i;

  for (i = 0; i < 8; i++)
    s[i] = cv[i];
  for (i = 0; i < 4; i++)
    s[8 + i] = IV[i];
  s[12] = (uint32_t)counter;
  s[13] = (uint32_t)(counter >> 32);
  s[14] = blocklen;
  s[15] = flags;

  for (r = 0; r < 7; r++) {
    const uint8_t *o = SCHEDULE[r];

    /* columns */
    g(s, 0, 4, 8, 12, m[o[0]], m[o[1]]);
    g(s, 1, 5, 9, 13, m[o[2]], m[o[3]]);
    g(s, 2, 6, 10, 14, m[o[4]], m[o[5]]);
    g(s, 3, 7, 11, 15, m[o[6]], m[o[7]]);
    /* diagonals */
    g(s, 0, 5, 10, 15, m[o[8]], m[o[9]]);
    g(s, 1, 6, 11, 12, m[o[10]], m[o[11]]);
    g(s, 2, 7, 8, 13, m[o[12]], m[o[13]]);
    g(s, 3, 4, 9, 14, m[o[14]], m[o[15]]);
  }

  for (i = 0; i < 8; i++)
    out[i] = s[i] ^ s[i + 8];
}

static void block_words(uint32_t m[16], const uint8_t block[BLOCK_LEN]) {
  int i;

  for (i = 0; i < 16; i++)
    m[i] = load32_le(block + 4 * i);
}

/* A node whose compression is deferred until we know whether it is the
 * root (the ROOT flag changes its output). */
typedef struct node {
  uint32_t cv[8];
  uint32_t m[16];
  uint64_t counter;
  uint32_t blocklen;
  uint32_t flags;
} node;

static void node_cv(uint32_t out[8], const node *n, uint32_t extra_flags) {
  /* Root output starts at output block 0: the counter of a root node is 0
   * by construction except for a single-chunk input, whose counter is 0 as
   * well, so the stored counter is always right here. */
  compress(out, n->cv, n->m, n->counter, n->blocklen, n->flags | extra_flags);
}

static void parent_node(node *n, const uint32_t left[8],
                        const uint32_t right[8]) {
  int i;

  for (i = 0; i < 8; i++) {
    n->cv[i] = IV[i];
    n->m[i] = left[i];
    n->m[8 + i] = right[i];
  }
  n->counter = 0;
  n->blocklen = BLOCK_LEN;
  n->flags = PARENT;
}

/* The final block of the current chunk, not yet compressed. */
static void chunk_node(node *n, const wgam_blake3_hasher *h) {
  uint8_t block[BLOCK_LEN];

  memset(block, 0, sizeof(block));
  memcpy(block, h->block, h->blocklen);
  memcpy(n->cv, h->cv, sizeof(n->cv));
  block_words(n->m, block);
  n->counter = h->chunk_counter;
  n->blocklen = h->blocklen;
  n->flags = CHUNK_END | (h->blocks_compressed == 0 ? CHUNK_START : 0);
}

static size_t chunk_len(const wgam_blake3_hasher *h) {
  return (size_t)h->blocks_compressed * BLOCK_LEN + h->blocklen;
}

/* Adds the CV of a completed chunk, @total_chunks being the number of chunks
 * completed so far. Each trailing zero bit of that count is a subtree that
 * just became complete: merge it with its left sibling from the stack. */
static void push_chunk_cv(wgam_blake3_hasher *h, uint32_t cv[8],
                          uint64_t total_chunks) {
  node n;

  while ((total_chunks & 1) == 0) {
    h->cv_stack_len--;
    parent_node(&n, h->cv_stack[h->cv_stack_len], cv);
    node_cv(cv, &n, 0);
    total_chunks >>= 1;
  }
  memcpy(h->cv_stack[h->cv_stack_len], cv, 8 * sizeof(uint32_t));
  h->cv_stack_len++;
}

void wgam_blake3_init(wgam_blake3_hasher *h) {
  memset(h, 0, sizeof(*h));
  memcpy(h->cv, IV, sizeof(h->cv));
}

void wgam_blake3_update(wgam_blake3_hasher *h, const uint8_t *in,
                        size_t inlen) {
  while (inlen > 0) {
    size_t take;

    /* A full chunk is finished only once more input shows it is not the
     * last one, since the last chunk may be the root. */
    if (chunk_len(h) == CHUNK_LEN) {
      node n;
      uint32_t cv[8];

      chunk_node(&n, h);
      node_cv(cv, &n, 0);
      push_chunk_cv(h, cv, h->chunk_counter + 1);
      memcpy(h->cv, IV, sizeof(h->cv));
      h->chunk_counter++;
      h->blocklen = 0;
      h->blocks_compressed = 0;
    }
    /* Likewise a full block is compressed only when it is not the chunk's
     * last (which carries CHUNK_END). */
    if (h->blocklen == BLOCK_LEN) {
      uint32_t m[16];

      block_words(m, h->block);
      compress(h->cv, h->cv, m, h->chunk_counter, BLOCK_LEN,
               h->blocks_compressed == 0 ? CHUNK_START : 0);
      h->blocks_compressed++;
      h->blocklen = 0;
    }
    take = BLOCK_LEN - h->blocklen;
    if (take > inlen)
      take = inlen;
    memcpy(h->block + h->blocklen, in, take);
    h->blocklen = (uint8_t)(h->blocklen + take);
    in += take;
    inlen -= take;
  }
}

void wgam_blake3_final(const wgam_blake3_hasher *h,
                       uint8_t out[WGAM_BLAKE3_OUT_LEN]) {
  node n;
  uint32_t cv[8];
  size_t i;

  chunk_node(&n, h);
  /* Fold the stack right to left: the current chunk is the rightmost
   * subtree, each stacked CV a complete left sibling. */
  for (i = h->cv_stack_len; i > 0; i--) {
    node_cv(cv, &n, 0);
    parent_node(&n, h->cv_stack[i - 1], cv);
  }
  node_cv(cv, &n, ROOT);
  for (i = 0; i < 8; i++)
    store32_le(out + 4 * i, cv[i]);
}

void wgam_blake3(uint8_t out[WGAM_BLAKE3_OUT_LEN], const uint8_t *in,
                 size_t inlen) {
  wgam_blake3_hasher h;

  wgam_blake3_init(&h);
  wgam_blake3_update(&h, in, inlen);
  wgam_blake3_final(&h, out);
}
