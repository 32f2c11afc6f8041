/* SPDX-License-Identifier: MIT */
/*
 * Userspace WireGuard (wireguard-go, boringtun) over the UAPI socket: the
 * text protocol pieces, exposed so unit tests and fuzz targets reach them
 * without a socket.
 */
#ifndef WGAM_CLI_WG_UAPI_H
#define WGAM_CLI_WG_UAPI_H

#include <stddef.h>
#include <stdint.h>

#include "wg.h"

/* Longest line of a reply we accept (keys are 64 hex digits). */
#define WG_UAPI_MAX_LINE 1024
/* Largest reply we read: about 4,000 bytes per peer with many IPs. */
#define WG_UAPI_MAX_REPLY (64u << 20)

/* Dialects of the UAPI text protocol. */
enum wg_uapi_dialect {
  /* wireguard-go and the spec: private_key, handshake as Unix time,
   * update_only understood. */
  WG_UAPI_WIREGUARD_GO = 0,
  /* boringtun (0.6): own_public_key instead of private_key,
   * last_handshake_time_sec holds the seconds *since* the handshake, and an
   * unknown key such as update_only fails the whole set with EINVAL. */
  WG_UAPI_BORINGTUN = 1,
};

/*
 * Parses the reply to "get=1": key=value lines up to and including
 * "errno=N". @buf need not be NUL-terminated; bytes after the errno line are
 * ignored. Our public key is derived from private_key, or taken from
 * own_public_key (boringtun). @out is reset first and finished (its pointers
 * set) on success. Uses the wall clock to turn boringtun's handshake ages
 * into Unix times (see wg_uapi_parse_get_at).
 *
 * Returns 0; -N when the reply carries errno=N != 0; -EPROTO for a malformed
 * reply (a line without '=' or newline, bad hex, a number out of range, an
 * unparsable address, a peer attribute before any public_key, no errno
 * line); -E2BIG beyond WG_MAX_PEERS / WG_MAX_ALLOWEDIPS; -ENOMEM.
 */
int wg_uapi_parse_get(const char *buf, size_t len, struct wg_dev *out);

/*
 * wg_uapi_parse_get() with the wall clock given: in the boringtun dialect a
 * last_handshake_time_sec below 10^9 is an age and becomes @unix_now - age
 * (a larger one is taken as a Unix time, should boringtun be fixed). Stores
 * the dialect in *@dialect when @dialect is not NULL.
 */
int wg_uapi_parse_get_at(const char *buf, size_t len, uint64_t unix_now,
                         struct wg_dev *out, int *dialect);

/*
 * Parses a reply made only of "errno=N" (the reply to "set=1").
 * Returns 0, -N, or -EPROTO.
 */
int wg_uapi_parse_errno(const char *buf, size_t len);

/*
 * Builds one "set=1" transaction for @n updates, terminated by the blank
 * line, into a malloc'ed *@pbuf of *@plen bytes (also NUL-terminated).
 * With @update_only, updates without REPLACE_ALLOWEDIPS carry
 * update_only=true, so that a change of endpoint or keepalive never creates
 * a peer that has no allowed IP (wireguard-go; boringtun rejects the key).
 *
 * Returns 0, -EINVAL (an endpoint or allowed IP of unknown family, a prefix
 * too long), or -ENOMEM.
 */
int wg_uapi_build_set(const wgam_peer_update *upds, size_t n, int update_only,
                      char **pbuf, size_t *plen);

#endif
