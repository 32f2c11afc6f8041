/* SPDX-License-Identifier: MIT */
/*
 * Datagram protection of the v1 protocol: XSalsa20-Poly1305
 * (crypto_secretbox_easy) with a random 24-byte nonce sent in front, and the
 * key derived from the shared secret with BLAKE3.
 */
#include <stdatomic.h>
#include <string.h>

#include <sodium.h>

#include "internal.h"

static const char KDF_PREFIX[] = "wgautomesh: ";

void wgam_key_derive(uint8_t key[WGAM_KEY_LEN], const uint8_t *secret,
                     size_t secretlen) {
  wgam_blake3_hasher h;

  wgam_blake3_init(&h);
  wgam_blake3_update(&h, (const uint8_t *)KDF_PREFIX, sizeof(KDF_PREFIX) - 1);
  if (secret != NULL)
    wgam_blake3_update(&h, secret, secretlen);
  wgam_blake3_final(&h, key);
  /* The hasher's buffer holds the tail of the secret. */
  sodium_memzero(&h, sizeof(h));
}

/* sodium_init() is idempotent and thread-safe; it only fails if the
 * platform has no usable randomness, which secretbox does not use. It takes
 * a mutex on every call, though, a cost on every datagram: once it has
 * succeeded, a flag says so (acquire/release: its choice of implementations
 * is then visible to this thread). */
static atomic_int sodium_ready;

static void ensure_sodium(void) {
  if (atomic_load_explicit(&sodium_ready, memory_order_acquire))
    return;
  if (sodium_init() < 0)
    return; /* nothing to do about it here; secretbox still works */
  atomic_store_explicit(&sodium_ready, 1, memory_order_release);
}

wgam_ssize wgam_pkt_seal(uint8_t *dest, size_t destlen,
                         const uint8_t key[WGAM_KEY_LEN],
                         const uint8_t nonce[WGAM_NONCE_LEN],
                         const uint8_t *plaintext, size_t plaintextlen) {
  size_t pktlen;

  if (plaintextlen > WGAM_MAX_PLAINTEXT_LEN ||
      (plaintext == NULL && plaintextlen > 0))
    return WGAM_ERR_INVALID_ARGUMENT;
  pktlen = WGAM_NONCE_LEN + WGAM_TAG_LEN + plaintextlen;
  if (dest == NULL || destlen < pktlen)
    return WGAM_ERR_NOBUF;

  ensure_sodium();
  memmove(dest, nonce, WGAM_NONCE_LEN);
  /* crypto_secretbox_easy allows the message to overlap the output, which
   * permits sealing in place at dest + 40 if a caller wants to. */
  if (crypto_secretbox_easy(dest + WGAM_NONCE_LEN,
                            plaintext != NULL ? plaintext : dest, plaintextlen,
                            dest, key) != 0)
    return WGAM_ERR_INVALID_ARGUMENT;
  return (wgam_ssize)pktlen;
}

wgam_ssize wgam_pkt_open(uint8_t *dest, size_t destlen,
                         const uint8_t key[WGAM_KEY_LEN], const uint8_t *pkt,
                         size_t pktlen) {
  size_t ptlen;

  if (pkt == NULL || pktlen < WGAM_NONCE_LEN || pktlen > WGAM_MAX_DATAGRAM_LEN)
    return WGAM_ERR_PKT_LENGTH;
  /* A box shorter than its tag can't be authentic; the original reports it
   * as a decryption error, not as a length error. */
  if (pktlen < WGAM_NONCE_LEN + WGAM_TAG_LEN)
    return WGAM_ERR_PKT_AUTH;
  ptlen = pktlen - WGAM_NONCE_LEN - WGAM_TAG_LEN;
  if (destlen < ptlen || (dest == NULL && ptlen > 0))
    return WGAM_ERR_NOBUF;

  ensure_sodium();
  if (ptlen == 0) {
    /* @dest may be NULL when there is no plaintext: still verify the tag. */
    uint8_t scratch[1];

    if (crypto_secretbox_open_easy(scratch, pkt + WGAM_NONCE_LEN, WGAM_TAG_LEN,
                                   pkt, key) != 0)
      return WGAM_ERR_PKT_AUTH;
    return 0;
  }
  if (crypto_secretbox_open_easy(dest, pkt + WGAM_NONCE_LEN,
                                 pktlen - WGAM_NONCE_LEN, pkt, key) != 0)
    return WGAM_ERR_PKT_AUTH;
  return (wgam_ssize)ptlen;
}
