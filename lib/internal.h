/* SPDX-License-Identifier: MIT */
/*
 * Internal helpers shared by the library's modules. Nothing here is
 * exported (hidden visibility and the version script).
 */
#ifndef WGAM_INTERNAL_H
#define WGAM_INTERNAL_H

#include <string.h>

#include "wgautomesh.h"

/* addr.c: private, shared-NAT, link-local and ULA addresses. */
int wgam_addr_private(const wgam_addr *a);

/* addr.c: wgam_addr_equal(), inline for the receive path, which compares
 * every announced endpoint with a peer's store (a call per pair was most of
 * the cost of merging an announce). */
static inline int wgam_addr_eq(const wgam_addr *a, const wgam_addr *b) {
  if (a->family != b->family)
    return 0;
  if (a->family == WGAM_AF_INET)
    return a->port == b->port && memcmp(a->ip, b->ip, 4) == 0;
  if (a->family == WGAM_AF_INET6)
    return a->port == b->port && memcmp(a->ip, b->ip, 16) == 0;
  /* "No address" equals "no address", whatever the other bytes hold. */
  return 1;
}

/* blake3.c: BLAKE3 with the default 32-byte output. */
#define WGAM_BLAKE3_OUT_LEN 32
void wgam_blake3(uint8_t out[WGAM_BLAKE3_OUT_LEN], const uint8_t *in,
                 size_t inlen);

/* persist.c: state file encoder. The file is the u64 entry count followed by
 * the entries; each returns the bytes written or WGAM_ERR_NOBUF, and with
 * dest NULL the bytes needed. */
wgam_ssize wgam_state_encode_header(uint8_t *dest, size_t destlen,
                                    uint64_t count);
wgam_ssize wgam_state_encode_entry(uint8_t *dest, size_t destlen,
                                   const uint8_t *pubkey, size_t pubkeylen,
                                   const wgam_endpoint *endpoints,
                                   size_t nendpoints);

/* wire.c: validates UTF-8 (strict: no overlongs, no surrogates, <= U+10FFFF).
 * Returns nonzero if valid. */
int wgam_utf8_valid(const uint8_t *s, size_t len);

/* blake3.c: incremental hashing, for inputs that are not contiguous (the key
 * derivation hashes a prefix and the caller's secret). The struct is plain
 * data: wipe it after hashing secrets. */
typedef struct wgam_blake3_hasher {
  uint32_t cv[8];         /* chaining value of the current chunk */
  uint64_t chunk_counter; /* index of the current chunk */
  uint8_t block[64];      /* bytes of the current block not yet compressed */
  uint8_t blocklen;
  uint8_t blocks_compressed; /* in the current chunk */
  uint8_t cv_stack_len;
  uint32_t cv_stack[54][8]; /* subtree chaining values; 54 levels = 2^64 B */
} wgam_blake3_hasher;
void wgam_blake3_init(wgam_blake3_hasher *h);
void wgam_blake3_update(wgam_blake3_hasher *h, const uint8_t *in, size_t inlen);
void wgam_blake3_final(const wgam_blake3_hasher *h,
                       uint8_t out[WGAM_BLAKE3_OUT_LEN]);

/* wire.c: bincode encoding of one (SocketAddr, u64) endpoint, shared by the
 * message and state file codecs. wgam_bincode_endpoint_len returns the
 * encoded size, or 0 for a family other than INET/INET6. _put writes that
 * many bytes and returns the count. _get decodes one endpoint from at most
 * @len bytes and returns the bytes consumed, or 0 if truncated or the
 * SocketAddr tag is unknown. */
#define WGAM_BINCODE_ENDPOINT_MAX_LEN (4 + 16 + 2 + 8)
size_t wgam_bincode_endpoint_len(const wgam_endpoint *ep);
size_t wgam_bincode_put_endpoint(uint8_t *dest, const wgam_endpoint *ep);
size_t wgam_bincode_get_endpoint(wgam_endpoint *ep, const uint8_t *src,
                                 size_t len);

/* settings.c: the engine's fixed timers and limits, the ones an embedder
 * does not tune (wgam_settings holds those). Each is documented where it is
 * defined; the man page's table lists them all and a test compares. */
struct wgam_fixed {
  wgam_tstamp request_interval; /* Requests on new connections, at most */
  wgam_tstamp answer_interval;  /* one answer per source per interval */
  wgam_tstamp answer_window;    /* an Announce this soon after our Request */
  wgam_tstamp answer_burst;     /* ... and this soon after the answer began */
  wgam_tstamp min_try;          /* a try is not cut before this */
  wgam_tstamp early_retry;      /* re-create a peer with no handshake */
  wgam_tstamp early_first;      /* the same, first endpoint of its entry */
  wgam_tstamp early_quiet;      /* bytes without a handshake: wait this */
  wgam_tstamp early_stagger;    /* the greater key waits this longer */
  wgam_tstamp ask_min;          /* Requests while peers lack an endpoint */
  wgam_tstamp ask_max;
  wgam_tstamp prop_hold_min; /* propagation damping */
  wgam_tstamp prop_hold_max;
  unsigned probe_rate;       /* probes per second, whole engine */
  unsigned initial_requests; /* peers asked after the first device read */
  size_t queue_keep;         /* datagram ring slots kept after a burst */
  wgam_tstamp relay_after;   /* no direct path this long: use a relay */
  wgam_tstamp relay_confirm; /* a relayed Ping unanswered: next relay */
  wgam_tstamp relay_probe;   /* a relayed route is asked again this often */
  wgam_tstamp relay_dwell;   /* a search goes round one relay per dwell */
  wgam_tstamp relay_scan;    /* a search unanswered this long slows down */
  wgam_tstamp clock_slack;   /* announced times further ahead are ours */
  wgam_tstamp
      relay_direct_retry;       /* relayed: direct tried at least this often */
  wgam_tstamp read_soon;        /* a handshake likely: read the device then */
  wgam_tstamp session_read_gap; /* a new session's gossip: reads this apart */
  wgam_tstamp probe_news;       /* a probe unanswered after news: it moved */
  wgam_tstamp probe_news_min;   /* the same, floor of its round-trip scale */
  wgam_tstamp ping_read_gap;    /* a Ping has the device read, this far apart */
  wgam_tstamp round_stagger;    /* a probe round's first Ping goes alone */
  wgam_tstamp hint_settle;      /* a roam hint: the device read this later */
  wgam_tstamp hint_read_gap;    /* roam hints have the device read, apart */
  wgam_tstamp rest_read;        /* with hints, every path settled: reads */
  wgam_tstamp heartbeat;        /* with hints: keepalive towards observers */
};
extern const struct wgam_fixed wgam_fixed;

#endif /* WGAM_INTERNAL_H */
