/* SPDX-License-Identifier: MIT */
/*
 * The v1 gossip message codec: the bincode 1.x encoding (fixed-width little
 * endian integers, u32 enum variant index, u64 lengths) of the original's
 *
 *   enum Gossip {
 *     Ping, Pong,
 *     Announce { pubkey: String, endpoints: Vec<(SocketAddr, u64)> },
 *     Request,
 *     LanBroadcast { pubkey: String, listen_port: u16 },
 *   }
 *
 * Decoding reads only authenticated plaintext, but a peer holding the secret
 * may still be buggy or hostile: every length is checked against the bytes
 * left before anything is read, and nothing is allocated.
 */
#include <string.h>

#include "internal.h"

/* bincode variant indices of std::net::SocketAddr. */
#define SOCKADDR_V4 0
#define SOCKADDR_V6 1

/* The encoded size of a SocketAddr + u64 tuple, per family. */
#define ENDPOINT_V4_LEN (4 + 4 + 2 + 8)
#define ENDPOINT_V6_LEN (4 + 16 + 2 + 8)

static void put_u16(uint8_t *p, uint16_t v) {
  p[0] = (uint8_t)v;
  p[1] = (uint8_t)(v >> 8);
}

static void put_u32(uint8_t *p, uint32_t v) {
  int i;

  for (i = 0; i < 4; i++)
    p[i] = (uint8_t)(v >> (8 * i));
}

static void put_u64(uint8_t *p, uint64_t v) {
  int i;

  for (i = 0; i < 8; i++)
    p[i] = (uint8_t)(v >> (8 * i));
}

static inline uint16_t get_u16(const uint8_t *p) {
  return (uint16_t)(p[0] | p[1] << 8);
}

static inline uint32_t get_u32(const uint8_t *p) {
  return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
         (uint32_t)p[3] << 24;
}

static inline uint64_t get_u64(const uint8_t *p) {
  return (uint64_t)get_u32(p) | (uint64_t)get_u32(p + 4) << 32;
}

int wgam_utf8_valid(const uint8_t *s, size_t len) {
  size_t i = 0;

  /* Keys are ASCII: all of it is checked eight bytes at a time first (the
   * last word overlaps the one before), byte by byte only if that fails. */
  if (len >= 8) {
    uint64_t w, any = 0;

    for (i = 0; i + 8 <= len; i += 8) {
      memcpy(&w, s + i, sizeof(w));
      any |= w;
    }
    memcpy(&w, s + len - 8, sizeof(w));
    if (!((any | w) & 0x8080808080808080ull))
      return 1;
    i = 0;
  }
  while (i < len) {
    uint8_t c;
    size_t n, k;
    uint8_t lo = 0x80, hi = 0xbf; /* range of the first continuation byte */

    /* Keys are ASCII: skip it eight bytes at a time. */
    while (len - i >= 8) {
      uint64_t w;
      memcpy(&w, s + i, sizeof(w));
      if (w & 0x8080808080808080ull)
        break;
      i += 8;
    }
    if (i == len)
      break;
    c = s[i];

    if (c < 0x80) {
      i++;
      continue;
    }
    if (c >= 0xc2 && c <= 0xdf) {
      n = 1;
    } else if (c >= 0xe0 && c <= 0xef) {
      n = 2;
      if (c == 0xe0)
        lo = 0xa0; /* overlong */
      else if (c == 0xed)
        hi = 0x9f; /* UTF-16 surrogates */
    } else if (c >= 0xf0 && c <= 0xf4) {
      n = 3;
      if (c == 0xf0)
        lo = 0x90; /* overlong */
      else if (c == 0xf4)
        hi = 0x8f; /* above U+10FFFF */
    } else {
      /* 0x80..0xc1: continuation or overlong lead; 0xf5..: out of range */
      return 0;
    }
    if (len - i - 1 < n)
      return 0;
    if (s[i + 1] < lo || s[i + 1] > hi)
      return 0;
    for (k = 2; k <= n; k++)
      if ((s[i + k] & 0xc0) != 0x80)
        return 0;
    i += n + 1;
  }
  return 1;
}

size_t wgam_bincode_endpoint_len(const wgam_endpoint *ep) {
  switch (ep->addr.family) {
  case WGAM_AF_INET:
    return ENDPOINT_V4_LEN;
  case WGAM_AF_INET6:
    return ENDPOINT_V6_LEN;
  default:
    return 0;
  }
}

size_t wgam_bincode_put_endpoint(uint8_t *dest, const wgam_endpoint *ep) {
  size_t iplen;

  if (ep->addr.family == WGAM_AF_INET) {
    put_u32(dest, SOCKADDR_V4);
    iplen = 4;
  } else if (ep->addr.family == WGAM_AF_INET6) {
    put_u32(dest, SOCKADDR_V6);
    iplen = 16;
  } else {
    return 0;
  }
  memcpy(dest + 4, ep->addr.ip, iplen);
  put_u16(dest + 4 + iplen, ep->addr.port);
  put_u64(dest + 4 + iplen + 2, ep->time);
  return 4 + iplen + 2 + 8;
}

size_t wgam_bincode_get_endpoint(wgam_endpoint *ep, const uint8_t *src,
                                 size_t len) {
  uint32_t tag;

  if (len < 4)
    return 0;
  tag = get_u32(src);
  /* One path per family, so that every copy has a known size: this runs
   * for each endpoint of each announce received. */
  if (tag == SOCKADDR_V4) {
    if (len < ENDPOINT_V4_LEN)
      return 0;
    memset(ep, 0, sizeof(*ep));
    ep->addr.family = WGAM_AF_INET;
    memcpy(ep->addr.ip, src + 4, 4);
    ep->addr.port = get_u16(src + 4 + 4);
    ep->time = get_u64(src + 4 + 4 + 2);
    return ENDPOINT_V4_LEN;
  }
  if (tag == SOCKADDR_V6) {
    if (len < ENDPOINT_V6_LEN)
      return 0;
    memset(ep, 0, sizeof(*ep));
    ep->addr.family = WGAM_AF_INET6;
    memcpy(ep->addr.ip, src + 4, 16);
    ep->addr.port = get_u16(src + 4 + 16);
    ep->time = get_u64(src + 4 + 16 + 2);
    return ENDPOINT_V6_LEN;
  }
  return 0;
}

/* The size of @msg once encoded, or 0 if it can't be encoded. */
static size_t encoded_len(const wgam_msg *msg) {
  size_t len, i;

  switch (msg->type) {
  case WGAM_MSG_PING:
  case WGAM_MSG_PONG:
  case WGAM_MSG_REQUEST:
    return 4;
  case WGAM_MSG_ANNOUNCE:
  case WGAM_MSG_LAN_BROADCAST:
    break;
  default:
    return 0;
  }
  /* A Rust String is UTF-8 by construction; the original could not decode
   * anything else, so refuse to produce it. */
  if ((msg->pubkey == NULL && msg->pubkeylen > 0) ||
      msg->pubkeylen > WGAM_MAX_PLAINTEXT_LEN ||
      !wgam_utf8_valid(msg->pubkey, msg->pubkeylen))
    return 0;
  len = 4 + 8 + msg->pubkeylen;
  if (msg->type == WGAM_MSG_LAN_BROADCAST)
    return len + 2;

  if (msg->nendpoints > WGAM_MSG_MAX_ENDPOINTS)
    return 0;
  len += 8;
  for (i = 0; i < msg->nendpoints; i++) {
    size_t eplen = wgam_bincode_endpoint_len(&msg->endpoints[i]);

    if (eplen == 0)
      return 0;
    len += eplen;
  }
  return len;
}

wgam_ssize wgam_msg_encode(uint8_t *dest, size_t destlen, const wgam_msg *msg) {
  size_t len, pos, i;

  if (msg == NULL)
    return WGAM_ERR_INVALID_ARGUMENT;
  len = encoded_len(msg);
  if (len == 0)
    return WGAM_ERR_INVALID_ARGUMENT;
  if (dest == NULL || destlen < len)
    return WGAM_ERR_NOBUF;

  put_u32(dest, msg->type);
  pos = 4;
  if (msg->type == WGAM_MSG_ANNOUNCE || msg->type == WGAM_MSG_LAN_BROADCAST) {
    put_u64(dest + pos, msg->pubkeylen);
    pos += 8;
    if (msg->pubkeylen > 0)
      memcpy(dest + pos, msg->pubkey, msg->pubkeylen);
    pos += msg->pubkeylen;
  }
  if (msg->type == WGAM_MSG_ANNOUNCE) {
    put_u64(dest + pos, msg->nendpoints);
    pos += 8;
    for (i = 0; i < msg->nendpoints; i++)
      pos += wgam_bincode_put_endpoint(dest + pos, &msg->endpoints[i]);
  } else if (msg->type == WGAM_MSG_LAN_BROADCAST) {
    put_u16(dest + pos, msg->listen_port);
    pos += 2;
  }
  return (wgam_ssize)pos;
}

/* Reads a bincode String: u64 byte length, then UTF-8 bytes. The result
 * points into the input. Returns the bytes consumed, 0 on error. */
static size_t get_string(const uint8_t **str, size_t *strlen_out,
                         const uint8_t *p, size_t len) {
  uint64_t n;

  if (len < 8)
    return 0;
  n = get_u64(p);
  /* Compare in 64 bits before narrowing: n may exceed SIZE_MAX. */
  if (n > (uint64_t)(len - 8))
    return 0;
  if (!wgam_utf8_valid(p + 8, (size_t)n))
    return 0;
  *str = p + 8;
  *strlen_out = (size_t)n;
  return 8 + (size_t)n;
}

wgam_ssize wgam_msg_decode(wgam_msg *msg, const uint8_t *plaintext,
                           size_t plaintextlen) {
  const uint8_t *p = plaintext;
  size_t left = plaintextlen, used, i;
  uint64_t n;

  if (msg == NULL || (plaintext == NULL && plaintextlen > 0))
    return WGAM_ERR_PKT_DECODE;
  msg->type = 0;
  msg->pubkey = NULL;
  msg->pubkeylen = 0;
  msg->nendpoints = 0;
  msg->listen_port = 0;

  if (left < 4)
    return WGAM_ERR_PKT_DECODE;
  msg->type = get_u32(p);
  p += 4;
  left -= 4;

  switch (msg->type) {
  case WGAM_MSG_PING:
  case WGAM_MSG_PONG:
  case WGAM_MSG_REQUEST:
    break;

  case WGAM_MSG_ANNOUNCE:
    used = get_string(&msg->pubkey, &msg->pubkeylen, p, left);
    if (used == 0)
      return WGAM_ERR_PKT_DECODE;
    p += used;
    left -= used;
    if (left < 8)
      return WGAM_ERR_PKT_DECODE;
    n = get_u64(p);
    p += 8;
    left -= 8;
    /* Bounded table: more than fits a datagram is not a message we sent. */
    if (n > WGAM_MSG_MAX_ENDPOINTS)
      return WGAM_ERR_PKT_DECODE;
    for (i = 0; i < (size_t)n; i++) {
      used = wgam_bincode_get_endpoint(&msg->endpoints[i], p, left);
      if (used == 0)
        return WGAM_ERR_PKT_DECODE;
      p += used;
      left -= used;
    }
    msg->nendpoints = (size_t)n;
    break;

  case WGAM_MSG_LAN_BROADCAST:
    used = get_string(&msg->pubkey, &msg->pubkeylen, p, left);
    if (used == 0)
      return WGAM_ERR_PKT_DECODE;
    p += used;
    left -= used;
    if (left < 2)
      return WGAM_ERR_PKT_DECODE;
    msg->listen_port = get_u16(p);
    p += 2;
    left -= 2;
    break;

  default:
    return WGAM_ERR_PKT_DECODE;
  }
  /* Trailing bytes are ignored: bincode 1.3's deserialize() allows them. */
  return (wgam_ssize)(plaintextlen - left);
}
