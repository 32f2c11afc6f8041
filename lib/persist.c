/* SPDX-License-Identifier: MIT */
/*
 * The state file of the original daemon: the bincode 1.x encoding of a
 * HashMap<String, Vec<(SocketAddr, u64)>> (public key -> known endpoints):
 *
 *   u64 count, then count times: u64 keylen, key bytes (UTF-8),
 *                                u64 n, n times (SocketAddr, u64 time)
 *
 * The file lives on disk and may be truncated or corrupted, so parsing
 * validates everything first and reports entries only for a sound file.
 */
#include <string.h>

#include "internal.h"

/* The smallest entry: an empty key and an empty endpoint list. */
#define MIN_ENTRY_LEN 16

static void put_u64(uint8_t *p, uint64_t v) {
  int i;

  for (i = 0; i < 8; i++)
    p[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t get_u64(const uint8_t *p) {
  uint64_t v = 0;
  int i;

  for (i = 7; i >= 0; i--)
    v = v << 8 | p[i];
  return v;
}

/* Decodes one entry from @p. Returns the bytes consumed or 0 if malformed.
 * With @endpoints NULL the endpoints are checked but not stored. */
static size_t parse_entry(const uint8_t *p, size_t left, const uint8_t **key,
                          size_t *keylen, wgam_endpoint *endpoints,
                          size_t *nendpoints) {
  size_t start = left, i;
  uint64_t n;

  if (left < 8)
    return 0;
  n = get_u64(p);
  p += 8;
  left -= 8;
  if (n > (uint64_t)left || !wgam_utf8_valid(p, (size_t)n))
    return 0;
  *key = p;
  *keylen = (size_t)n;
  p += n;
  left -= (size_t)n;

  if (left < 8)
    return 0;
  n = get_u64(p);
  p += 8;
  left -= 8;
  if (n > WGAM_STATE_MAX_ENDPOINTS)
    return 0;
  for (i = 0; i < (size_t)n; i++) {
    wgam_endpoint tmp;
    size_t used = wgam_bincode_get_endpoint(
        endpoints != NULL ? &endpoints[i] : &tmp, p, left);

    if (used == 0)
      return 0;
    p += used;
    left -= used;
  }
  *nendpoints = (size_t)n;
  return start - left;
}

int wgam_state_parse(const uint8_t *data, size_t datalen,
                     wgam_state_entry_cb cb, void *user_data) {
  wgam_endpoint endpoints[WGAM_STATE_MAX_ENDPOINTS];
  const uint8_t *p, *key;
  size_t left, keylen, nendpoints, used;
  uint64_t count, i;
  int pass, rv;

  if (data == NULL || datalen < 8)
    return WGAM_ERR_STATE_DECODE;
  count = get_u64(data);
  /* Reject an impossible count up front rather than walking it. */
  if (count > (datalen - 8) / MIN_ENTRY_LEN)
    return WGAM_ERR_STATE_DECODE;

  /* Pass 0 validates the whole file, pass 1 reports the entries: a broken
   * file must not half-load. */
  for (pass = 0; pass < 2; pass++) {
    p = data + 8;
    left = datalen - 8;
    for (i = 0; i < count; i++) {
      used = parse_entry(p, left, &key, &keylen, pass ? endpoints : NULL,
                         &nendpoints);
      if (used == 0)
        return WGAM_ERR_STATE_DECODE;
      p += used;
      left -= used;
      if (pass == 1 && cb != NULL) {
        rv = cb(key, keylen, endpoints, nendpoints, user_data);
        if (rv != 0)
          return rv;
      }
    }
    /* Trailing bytes are ignored, as bincode 1.3's deserialize() does. */
  }
  return 0;
}

wgam_ssize wgam_state_encode_header(uint8_t *dest, size_t destlen,
                                    uint64_t count) {
  if (dest == NULL)
    return 8;
  if (destlen < 8)
    return WGAM_ERR_NOBUF;
  put_u64(dest, count);
  return 8;
}

wgam_ssize wgam_state_encode_entry(uint8_t *dest, size_t destlen,
                                   const uint8_t *pubkey, size_t pubkeylen,
                                   const wgam_endpoint *endpoints,
                                   size_t nendpoints) {
  size_t len, pos, i;

  /* Refuse to write what wgam_state_parse() (or the original) would reject:
   * a non-UTF-8 key, too many endpoints, an endpoint without a family. */
  if ((pubkey == NULL && pubkeylen > 0) ||
      !wgam_utf8_valid(pubkey, pubkeylen) ||
      nendpoints > WGAM_STATE_MAX_ENDPOINTS ||
      (endpoints == NULL && nendpoints > 0))
    return WGAM_ERR_INVALID_ARGUMENT;
  len = 8 + pubkeylen + 8;
  for (i = 0; i < nendpoints; i++) {
    size_t eplen = wgam_bincode_endpoint_len(&endpoints[i]);

    if (eplen == 0)
      return WGAM_ERR_INVALID_ARGUMENT;
    len += eplen;
  }
  if (dest == NULL)
    return (wgam_ssize)len;
  if (destlen < len)
    return WGAM_ERR_NOBUF;

  put_u64(dest, pubkeylen);
  pos = 8;
  if (pubkeylen > 0)
    memcpy(dest + pos, pubkey, pubkeylen);
  pos += pubkeylen;
  put_u64(dest + pos, nendpoints);
  pos += 8;
  for (i = 0; i < nendpoints; i++)
    pos += wgam_bincode_put_endpoint(dest + pos, &endpoints[i]);
  return (wgam_ssize)pos;
}
