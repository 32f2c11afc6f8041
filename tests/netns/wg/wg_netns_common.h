/* SPDX-License-Identifier: MIT */
/* Helpers shared by the netns test and the benchmark (header-only). */
#ifndef WGAM_TESTS_WG_NETNS_COMMON_H
#define WGAM_TESTS_WG_NETNS_COMMON_H

#include <arpa/inet.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <sodium.h>

#include "wgautomesh.h"

/* A fresh Curve25519 public key (the private half is thrown away). */
static inline void random_pubkey(uint8_t pub[WGAM_KEY_LEN]) {
  uint8_t priv[WGAM_KEY_LEN];

  randombytes_buf(priv, sizeof(priv));
  crypto_scalarmult_curve25519_base(pub, priv);
  sodium_memzero(priv, sizeof(priv));
}

/* Peer i of a large test set: endpoints and allowed IPs alternate v4/v6. */
static inline void big_update(wgam_peer_update *u, unsigned i) {
  memset(u, 0, sizeof(*u));
  random_pubkey(u->pubkey);
  u->flags = WGAM_PEER_REPLACE_ALLOWEDIPS | WGAM_PEER_HAS_ENDPOINT |
             WGAM_PEER_HAS_KEEPALIVE;
  u->persistent_keepalive = (uint16_t)(10 + i % 20);
  u->endpoint.port = (uint16_t)(20000 + i);
  if (i % 2 == 0) {
    u->endpoint.family = WGAM_AF_INET;
    u->endpoint.ip[0] = 198;
    u->endpoint.ip[1] = 51;
    u->endpoint.ip[2] = 100;
    u->endpoint.ip[3] = (uint8_t)(1 + i % 250);
    u->allowedips[0].addr.family = WGAM_AF_INET;
    u->allowedips[0].addr.ip[0] = 100;
    u->allowedips[0].addr.ip[1] = 64;
    u->allowedips[0].addr.ip[2] = (uint8_t)(i >> 8);
    u->allowedips[0].addr.ip[3] = (uint8_t)i;
    u->allowedips[0].prefixlen = 32;
    u->nallowedips = 1;
  } else {
    static const uint8_t pfx[4] = {0x20, 0x01, 0x0d, 0xb8};

    u->endpoint.family = WGAM_AF_INET6;
    memcpy(u->endpoint.ip, pfx, 4);
    u->endpoint.ip[14] = (uint8_t)(i >> 8);
    u->endpoint.ip[15] = (uint8_t)i;
    u->allowedips[0].addr.family = WGAM_AF_INET6;
    u->allowedips[0].addr.ip[0] = 0xfd;
    u->allowedips[0].addr.ip[14] = (uint8_t)(i >> 8);
    u->allowedips[0].addr.ip[15] = (uint8_t)i;
    u->allowedips[0].prefixlen = 128;
    u->nallowedips = 1;
  }
}

/* As wg(8) prints them: "198.51.100.1:5", "[2001:db8::1]:5". */
static inline void fmt_endpoint(char *dst, size_t len, const wgam_addr *a) {
  char ip[INET6_ADDRSTRLEN];

  if (a->family == WGAM_AF_INET) {
    inet_ntop(AF_INET, a->ip, ip, sizeof(ip));
    snprintf(dst, len, "%s:%u", ip, a->port);
  } else if (a->family == WGAM_AF_INET6) {
    inet_ntop(AF_INET6, a->ip, ip, sizeof(ip));
    snprintf(dst, len, "[%s]:%u", ip, a->port);
  } else {
    snprintf(dst, len, "(none)");
  }
}

static inline void fmt_cidr(char *dst, size_t len, const wgam_cidr *c) {
  char ip[INET6_ADDRSTRLEN];

  inet_ntop(c->addr.family == WGAM_AF_INET ? AF_INET : AF_INET6, c->addr.ip, ip,
            sizeof(ip));
  snprintf(dst, len, "%s/%u", ip, c->prefixlen);
}

#endif
