/* SPDX-License-Identifier: MIT */
/*
 * UAPI text protocol: the get-reply parser on good and malformed input, the
 * set transaction text, and the backend's socket I/O against a fake
 * wireguard-go in a thread.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <check.h>

#include "wg_internal.h"
#include "wg_uapi.h"

/* RFC 7748 section 6.1: Alice's private and public keys. */
#define PRIV_HEX                                                               \
  "77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a"
static const uint8_t alice_pub[32] = {
    0x85, 0x20, 0xf0, 0x09, 0x89, 0x30, 0xa7, 0x54, 0x74, 0x8b, 0x7d,
    0xdc, 0xb4, 0x3e, 0xf7, 0x5a, 0x0d, 0xbf, 0x3a, 0x0d, 0x26, 0x38,
    0x1a, 0xf4, 0xeb, 0xa4, 0xa9, 0x8e, 0xaa, 0x9b, 0x4e, 0x6a};

#define K1 "e4ac1d7ee4f5eec7e7da2fc5b2c7e26e7ddc2d8ed1094007bba7996492d0a401"
#define K2 "0101010101010101010101010101010101010101010101010101010101010101"
#define K3 "FFEEDDCCBBAA99887766554433221100ffeeddccbbaa99887766554433221100"
#define K4 "0000000000000000000000000000000000000000000000000000000000000004"

/* As wireguard-go 0.0.20220316 writes it, plus a scoped and a v4 peer. */
static const char good_reply[] =
    "private_key=" PRIV_HEX "\n"
    "listen_port=51820\n"
    "fwmark=0\n"
    "public_key=" K1 "\n"
    "preshared_key="
    "0000000000000000000000000000000000000000000000000000000000000000\n"
    "protocol_version=1\n"
    "endpoint=[2001:db8::1]:51820\n"
    "last_handshake_time_sec=1700000000\n"
    "last_handshake_time_nsec=42\n"
    "tx_bytes=18446744073709551615\n"
    "rx_bytes=456\n"
    "persistent_keepalive_interval=25\n"
    "allowed_ip=100.64.0.2/32\n"
    "allowed_ip=fd00::2/128\n"
    "public_key=" K2 "\n"
    "endpoint=198.51.100.7:4500\n"
    "persistent_keepalive_interval=0\n"
    "allowed_ip=0.0.0.0/0\n"
    "public_key=" K3 "\n"
    "endpoint=[fe80::1%eth0]:1\n"
    "some_future_key=whatever=it is\n"
    "public_key=" K4 "\n"
    "errno=0\n"
    "\n";

static void hex2key(uint8_t *key, const char *hex) {
  unsigned i, v;

  for (i = 0; i < 32; i++) {
    ck_assert_int_eq(sscanf(hex + 2 * i, "%2x", &v), 1);
    key[i] = (uint8_t)v;
  }
}

static void ip_is(const wgam_addr *a, const char *s) {
  char buf[INET6_ADDRSTRLEN];

  ck_assert_ptr_nonnull(inet_ntop(
      a->family == WGAM_AF_INET ? AF_INET : AF_INET6, a->ip, buf, sizeof(buf)));
  ck_assert_str_eq(buf, s);
}

static void check_good_dev(const struct wg_dev *d) {
  const wgam_device_peer *p;
  uint8_t key[32];

  ck_assert(d->dev.has_pubkey);
  ck_assert_mem_eq(d->dev.pubkey, alice_pub, 32);
  ck_assert_uint_eq(d->dev.listen_port, 51820);
  ck_assert_uint_eq(d->dev.npeers, 4);
  ck_assert_ptr_eq(d->dev.peers, d->peers);

  p = &d->dev.peers[0];
  hex2key(key, K1);
  ck_assert_mem_eq(p->pubkey, key, 32);
  ck_assert_uint_eq(p->endpoint.family, WGAM_AF_INET6);
  ck_assert_uint_eq(p->endpoint.port, 51820);
  ip_is(&p->endpoint, "2001:db8::1");
  ck_assert_uint_eq(p->last_handshake, 1700000000);
  ck_assert_uint_eq(p->tx_bytes, UINT64_MAX);
  ck_assert_uint_eq(p->rx_bytes, 456);
  ck_assert_uint_eq(p->persistent_keepalive, 25);
  ck_assert_uint_eq(p->nallowedips, 2);
  ck_assert_uint_eq(p->allowedips[0].addr.family, WGAM_AF_INET);
  ip_is(&p->allowedips[0].addr, "100.64.0.2");
  ck_assert_uint_eq(p->allowedips[0].prefixlen, 32);
  ck_assert_uint_eq(p->allowedips[0].addr.port, 0);
  ip_is(&p->allowedips[1].addr, "fd00::2");
  ck_assert_uint_eq(p->allowedips[1].prefixlen, 128);

  p = &d->dev.peers[1];
  hex2key(key, K2);
  ck_assert_mem_eq(p->pubkey, key, 32);
  ck_assert_uint_eq(p->endpoint.family, WGAM_AF_INET);
  ip_is(&p->endpoint, "198.51.100.7");
  ck_assert_uint_eq(p->endpoint.port, 4500);
  ck_assert_uint_eq(p->last_handshake, 0);
  ck_assert_uint_eq(p->persistent_keepalive, 0);
  ck_assert_uint_eq(p->nallowedips, 1);
  ip_is(&p->allowedips[0].addr, "0.0.0.0");
  ck_assert_uint_eq(p->allowedips[0].prefixlen, 0);

  p = &d->dev.peers[2];
  hex2key(key, K3);
  ck_assert_mem_eq(p->pubkey, key, 32);
  ip_is(&p->endpoint, "fe80::1"); /* scope dropped */
  ck_assert_uint_eq(p->endpoint.port, 1);
  ck_assert_uint_eq(p->nallowedips, 0);

  p = &d->dev.peers[3];
  hex2key(key, K4);
  ck_assert_mem_eq(p->pubkey, key, 32);
  ck_assert_uint_eq(p->endpoint.family, WGAM_AF_NONE);
  ck_assert_uint_eq(p->nallowedips, 0);
}

START_TEST(parse_good) {
  struct wg_dev d;

  wg_dev_init(&d);
  ck_assert_int_eq(wg_uapi_parse_get(good_reply, strlen(good_reply), &d), 0);
  check_good_dev(&d);
  /* Parsing again into the same storage starts afresh. */
  ck_assert_int_eq(wg_uapi_parse_get(good_reply, strlen(good_reply), &d), 0);
  check_good_dev(&d);
  wg_dev_free(&d);
}
END_TEST

START_TEST(parse_no_private_key) {
  static const char r1[] = "listen_port=0\nerrno=0\n\n";
  static const char r2[] =
      "private_key="
      "0000000000000000000000000000000000000000000000000000000000000000\n"
      "errno=0\n";
  struct wg_dev d;

  wg_dev_init(&d);
  ck_assert_int_eq(wg_uapi_parse_get(r1, strlen(r1), &d), 0);
  ck_assert(!d.dev.has_pubkey);
  ck_assert_uint_eq(d.dev.npeers, 0);
  ck_assert_ptr_null(d.dev.peers);
  ck_assert_int_eq(wg_uapi_parse_get(r2, strlen(r2), &d), 0);
  ck_assert(!d.dev.has_pubkey);
  wg_dev_free(&d);
}
END_TEST

/* boringtun 0.6: own_public_key, handshake *ages*, no private key. */
static const char boringtun_reply[] =
    "own_public_key="
    "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b"
    "4e6a\n"
    "listen_port=51820\n"
    "public_key=" K1 "\n"
    "persistent_keepalive_interval=25\n"
    "endpoint=198.51.100.7:51820\n"
    "allowed_ip=100.64.0.2/32\n"
    "last_handshake_time_sec=30\n"
    "last_handshake_time_nsec=5\n"
    "rx_bytes=1\n"
    "tx_bytes=2\n"
    "public_key=" K2 "\n"
    "rx_bytes=0\n"
    "tx_bytes=0\n"
    "public_key=" K3 "\n"
    "last_handshake_time_sec=0\n"
    "public_key=" K4 "\n"
    "last_handshake_time_sec=1700000000\n"
    "errno=0\n"
    "\n";

START_TEST(parse_boringtun_dialect) {
  struct wg_dev d;
  int dialect = -1;

  wg_dev_init(&d);
  ck_assert_int_eq(wg_uapi_parse_get_at(boringtun_reply,
                                        strlen(boringtun_reply), 1800000000, &d,
                                        &dialect),
                   0);
  ck_assert_int_eq(dialect, WG_UAPI_BORINGTUN);
  ck_assert(d.dev.has_pubkey);
  ck_assert_mem_eq(d.dev.pubkey, alice_pub, 32);
  ck_assert_uint_eq(d.dev.listen_port, 51820);
  ck_assert_uint_eq(d.dev.npeers, 4);
  ck_assert_uint_eq(d.dev.peers[0].last_handshake, 1800000000 - 30);
  ck_assert_uint_eq(d.dev.peers[0].persistent_keepalive, 25);
  ck_assert_uint_eq(d.dev.peers[0].nallowedips, 1);
  ck_assert_uint_eq(d.dev.peers[1].last_handshake, 0);          /* never */
  ck_assert_uint_eq(d.dev.peers[2].last_handshake, 1800000000); /* age 0 */
  ck_assert_uint_eq(d.dev.peers[3].last_handshake, 1700000000); /* absolute */
  /* wireguard-go's replies are not touched. */
  ck_assert_int_eq(wg_uapi_parse_get_at(good_reply, strlen(good_reply),
                                        1800000000, &d, &dialect),
                   0);
  ck_assert_int_eq(dialect, WG_UAPI_WIREGUARD_GO);
  check_good_dev(&d);
  wg_dev_free(&d);
}
END_TEST

START_TEST(parse_truncated_everywhere) {
  size_t len = strlen(good_reply), cut;
  const char *errno_line = strstr(good_reply, "errno=0\n");
  struct wg_dev d;

  wg_dev_init(&d);
  for (cut = 0; cut < len; cut++) {
    int ret = wg_uapi_parse_get(good_reply, cut, &d);

    /* Complete once the errno line is whole; never a partial device. */
    if (good_reply + cut >= errno_line + 8) {
      ck_assert_int_eq(ret, 0);
    } else {
      ck_assert_msg(ret == -EPROTO, "cut %zu: %d", cut, ret);
      ck_assert_uint_eq(d.dev.npeers, 0);
    }
  }
  wg_dev_free(&d);
}
END_TEST

/* One malformed reply per loop iteration and the error it must give. */
static const struct {
  const char *reply;
  int ret;
} bad[] = {
    {"", -EPROTO},
    {"\n", -EPROTO},
    {"listen_port=1\n\n", -EPROTO},      /* no errno */
    {"listen_port=1\n", -EPROTO},        /* no errno, no blank line */
    {"listen_port=1\nerrno=0", -EPROTO}, /* errno line cut */
    {"errno=22\n\n", -22},               /* errors pass through */
    {"errno=-22\n\n", -22},              /* wireguard-go's sign */
    {"errno=\n\n", -EPROTO},
    {"errno=4096\n\n", -EPROTO},
    {"errno=99999999999999999999999\n\n", -EPROTO},
    {"listen_port\nerrno=0\n\n", -EPROTO}, /* no '=' */
    {"listen_port=65536\nerrno=0\n\n", -EPROTO},
    {"listen_port=-1\nerrno=0\n\n", -EPROTO},
    {"listen_port=+1\nerrno=0\n\n", -EPROTO},
    {"listen_port= 1\nerrno=0\n\n", -EPROTO},
    {"listen_port=1x\nerrno=0\n\n", -EPROTO},
    {"private_key=" PRIV_HEX "0\nerrno=0\n\n", -EPROTO}, /* 65 digits */
    {"private_key=7707\nerrno=0\n\n", -EPROTO},
    {"public_key=" K1 "\nrx_bytes=18446744073709551616\nerrno=0\n\n", -EPROTO},
    {"public_key=" K1 "\ntx_bytes=184467440737095516150\nerrno=0\n\n", -EPROTO},
    {"public_key=" K1 "\nlast_handshake_time_sec=99999999999999999999\n"
     "errno=0\n\n",
     -EPROTO},
    {"public_key=" K1 "\npersistent_keepalive_interval=65536\nerrno=0\n\n",
     -EPROTO},
    {"public_key=zzac1d7ee4f5eec7e7da2fc5b2c7e26e7ddc2d8ed1094007bba7996492d0a4"
     "01\nerrno=0\n\n",
     -EPROTO},
    {"public_key=e4ac1d7ee4f5eec7e7da2fc5b2c7e26e7ddc2d8ed1094007bba7996492d0a4"
     "0\nerrno=0\n\n",
     -EPROTO},
    {"public_key=\nerrno=0\n\n", -EPROTO},
    {"rx_bytes=1\nerrno=0\n\n", -EPROTO}, /* peer field before any peer */
    {"endpoint=1.2.3.4:5\nerrno=0\n\n", -EPROTO},
    {"allowed_ip=10.0.0.0/8\nerrno=0\n\n", -EPROTO},
    {"public_key=" K1 "\nendpoint=[2001:db8::1:51820\nerrno=0\n\n", -EPROTO},
    {"public_key=" K1 "\nendpoint=2001:db8::1:51820\nerrno=0\n\n", -EPROTO},
    {"public_key=" K1 "\nendpoint=[2001:db8::1]51820\nerrno=0\n\n", -EPROTO},
    {"public_key=" K1 "\nendpoint=[2001:db8::1]:\nerrno=0\n\n", -EPROTO},
    {"public_key=" K1 "\nendpoint=[2001:db8::1]:65536\nerrno=0\n\n", -EPROTO},
    {"public_key=" K1 "\nendpoint=[198.51.100.1]:5\nerrno=0\n\n", -EPROTO},
    {"public_key=" K1 "\nendpoint=[]:5\nerrno=0\n\n", -EPROTO},
    {"public_key=" K1 "\nendpoint=[%eth0]:5\nerrno=0\n\n", -EPROTO},
    {"public_key=" K1 "\nendpoint=198.51.100.1\nerrno=0\n\n", -EPROTO},
    {"public_key=" K1 "\nendpoint=198.51.100.256:1\nerrno=0\n\n", -EPROTO},
    {"public_key=" K1 "\nendpoint=host.example:1\nerrno=0\n\n", -EPROTO},
    {"public_key=" K1 "\nallowed_ip=10.0.0.1/33\nerrno=0\n\n", -EPROTO},
    {"public_key=" K1 "\nallowed_ip=fd00::/129\nerrno=0\n\n", -EPROTO},
    {"public_key=" K1 "\nallowed_ip=10.0.0.1\nerrno=0\n\n", -EPROTO},
    {"public_key=" K1 "\nallowed_ip=10.0.0.1/\nerrno=0\n\n", -EPROTO},
    {"public_key=" K1 "\nallowed_ip=[fd00::1]/128\nerrno=0\n\n", -EPROTO},
};

START_TEST(parse_malformed) {
  struct wg_dev d;
  int ret;

  wg_dev_init(&d);
  ret = wg_uapi_parse_get(bad[_i].reply, strlen(bad[_i].reply), &d);
  ck_assert_msg(ret == bad[_i].ret, "case %d (%s): got %d, want %d", _i,
                bad[_i].reply, ret, bad[_i].ret);
  ck_assert_uint_eq(d.dev.npeers, 0);
  wg_dev_free(&d);
}
END_TEST

START_TEST(parse_embedded_nul_and_long_lines) {
  static const char nul[] = "public_key=" K1 "\nendpoint=1.2.3.4\0:5\n"
                            "errno=0\n\n";
  char *big;
  size_t n = WG_UAPI_MAX_LINE + 100;
  struct wg_dev d;

  wg_dev_init(&d);
  ck_assert_int_eq(wg_uapi_parse_get(nul, sizeof(nul) - 1, &d), -EPROTO);
  /* An unknown key with a value longer than any line we accept. */
  big = malloc(n + 32);
  memcpy(big, "x=", 2);
  memset(big + 2, 'a', n);
  memcpy(big + 2 + n, "\nerrno=0\n\n", 10);
  ck_assert_int_eq(wg_uapi_parse_get(big, n + 12, &d), -EPROTO);
  /* The longest accepted line passes. */
  memcpy(big + WG_UAPI_MAX_LINE, "\nerrno=0\n\n", 10);
  ck_assert_int_eq(wg_uapi_parse_get(big, WG_UAPI_MAX_LINE + 10, &d), 0);
  free(big);
  wg_dev_free(&d);
}
END_TEST

START_TEST(parse_random_garbage) {
  /* Mutations of a good reply: any result, no crash (ASan in CI). */
  size_t len = strlen(good_reply);
  char *buf = malloc(len);
  uint32_t rnd = 99;
  struct wg_dev d;
  int i, k;

  wg_dev_init(&d);
  for (i = 0; i < 20000; i++) {
    memcpy(buf, good_reply, len);
    for (k = 0; k < 3; k++) {
      rnd = rnd * 1103515245u + 12345u;
      buf[(rnd >> 8) % len] = "0123456789abcdef=:[]/%\n\0x-"[(rnd >> 24) % 27];
    }
    if (wg_uapi_parse_get(buf, len, &d) == 0)
      ck_assert_uint_le(d.dev.npeers, 4);
  }
  free(buf);
  wg_dev_free(&d);
}
END_TEST

START_TEST(parse_many_peers_bounded) {
  /* More peers than WG_MAX_PEERS: refused, not allocated without end. */
  size_t n = WG_MAX_PEERS + 1, i, off = 0;
  size_t cap = n * 80 + 32;
  char *buf = malloc(cap);
  struct wg_dev d;

  for (i = 0; i < n; i++)
    off += (size_t)snprintf(buf + off, cap - off, "public_key=%064zx\n", i);
  off += (size_t)snprintf(buf + off, cap - off, "errno=0\n\n");
  wg_dev_init(&d);
  ck_assert_int_eq(wg_uapi_parse_get(buf, off, &d), -E2BIG);
  ck_assert_uint_eq(d.dev.npeers, 0);
  free(buf);
  wg_dev_free(&d);
}
END_TEST

START_TEST(parse_errno_reply) {
  ck_assert_int_eq(wg_uapi_parse_errno("errno=0\n\n", 9), 0);
  ck_assert_int_eq(wg_uapi_parse_errno("errno=-22\n\n", 11), -22);
  ck_assert_int_eq(wg_uapi_parse_errno("errno=5\n\n", 9), -5);
  ck_assert_int_eq(wg_uapi_parse_errno("errno=x\n\n", 9), -EPROTO);
  ck_assert_int_eq(wg_uapi_parse_errno("", 0), -EPROTO);
  ck_assert_int_eq(wg_uapi_parse_errno("errno=0", 7), -EPROTO);
  ck_assert_int_eq(wg_uapi_parse_errno("listen_port=1\nerrno=0\n\n", 23),
                   -EPROTO);
}
END_TEST

static void set_addr(wgam_addr *a, int fam, const char *s, uint16_t port) {
  memset(a, 0, sizeof(*a));
  a->family = (uint8_t)fam;
  a->port = port;
  ck_assert_int_eq(
      inet_pton(fam == WGAM_AF_INET ? AF_INET : AF_INET6, s, a->ip), 1);
}

static void updates4(wgam_peer_update u[4]) {
  memset(u, 0, 4 * sizeof(*u));
  hex2key(u[0].pubkey, K1);
  u[0].flags = WGAM_PEER_REMOVE_ME | WGAM_PEER_HAS_ENDPOINT;
  hex2key(u[1].pubkey, K2);
  u[1].flags = WGAM_PEER_REPLACE_ALLOWEDIPS | WGAM_PEER_HAS_ENDPOINT |
               WGAM_PEER_HAS_KEEPALIVE;
  set_addr(&u[1].endpoint, WGAM_AF_INET, "198.51.100.7", 51820);
  u[1].persistent_keepalive = 25;
  set_addr(&u[1].allowedips[0].addr, WGAM_AF_INET, "100.64.0.2", 0);
  u[1].allowedips[0].prefixlen = 32;
  u[1].nallowedips = 1;
  hex2key(u[2].pubkey, K3);
  u[2].flags = WGAM_PEER_HAS_ENDPOINT | WGAM_PEER_HAS_KEEPALIVE;
  set_addr(&u[2].endpoint, WGAM_AF_INET6, "2001:db8::1", 4500);
  u[2].persistent_keepalive = 0;
  hex2key(u[3].pubkey, K4);
  u[3].flags = WGAM_PEER_REPLACE_ALLOWEDIPS;
  set_addr(&u[3].allowedips[0].addr, WGAM_AF_INET6, "fd00::4", 0);
  u[3].allowedips[0].prefixlen = 128;
  u[3].nallowedips = 1;
}

static const char set4_text[] =
    "set=1\n"
    "public_key=" K1 "\n"
    "remove=true\n"
    "public_key=" K2 "\n"
    "endpoint=198.51.100.7:51820\n"
    "persistent_keepalive_interval=25\n"
    "replace_allowed_ips=true\n"
    "allowed_ip=100.64.0.2/32\n"
    "public_key="
    "ffeeddccbbaa99887766554433221100ffeeddccbbaa99887766554433221100\n"
    "update_only=true\n"
    "endpoint=[2001:db8::1]:4500\n"
    "persistent_keepalive_interval=0\n"
    "public_key=" K4 "\n"
    "replace_allowed_ips=true\n"
    "allowed_ip=fd00::4/128\n"
    "\n";

/* set4_text for an implementation without update_only (boringtun). */
static const char set4_text_plain[] =
    "set=1\n"
    "public_key=" K1 "\n"
    "remove=true\n"
    "public_key=" K2 "\n"
    "endpoint=198.51.100.7:51820\n"
    "persistent_keepalive_interval=25\n"
    "replace_allowed_ips=true\n"
    "allowed_ip=100.64.0.2/32\n"
    "public_key="
    "ffeeddccbbaa99887766554433221100ffeeddccbbaa99887766554433221100\n"
    "endpoint=[2001:db8::1]:4500\n"
    "persistent_keepalive_interval=0\n"
    "public_key=" K4 "\n"
    "replace_allowed_ips=true\n"
    "allowed_ip=fd00::4/128\n"
    "\n";

START_TEST(build_set_text) {
  wgam_peer_update u[4];
  char *buf;
  size_t len;

  updates4(u);
  ck_assert_int_eq(wg_uapi_build_set(u, 4, 1, &buf, &len), 0);
  ck_assert_uint_eq(len, strlen(buf));
  ck_assert_str_eq(buf, set4_text);
  free(buf);
  ck_assert_int_eq(wg_uapi_build_set(u, 4, 0, &buf, &len), 0);
  ck_assert_str_eq(buf, set4_text_plain);
  free(buf);

  /* Replace with no address: the peer's routes are dropped. */
  u[3].nallowedips = 0;
  ck_assert_int_eq(wg_uapi_build_set(&u[3], 1, 1, &buf, &len), 0);
  ck_assert_str_eq(buf,
                   "set=1\npublic_key=" K4 "\nreplace_allowed_ips=true\n\n");
  free(buf);

  updates4(u);
  u[1].endpoint.family = 9;
  ck_assert_int_eq(wg_uapi_build_set(&u[1], 1, 1, &buf, &len), -EINVAL);
  ck_assert_ptr_null(buf);
  updates4(u);
  u[1].allowedips[0].prefixlen = 33;
  ck_assert_int_eq(wg_uapi_build_set(&u[1], 1, 1, &buf, &len), -EINVAL);
  updates4(u);
  u[3].allowedips[0].prefixlen = 129;
  ck_assert_int_eq(wg_uapi_build_set(&u[3], 1, 1, &buf, &len), -EINVAL);
}
END_TEST

/* ---- the backend against a fake wireguard-go ---- */

struct fake {
  int lfd;
  char path[108];
  pthread_t thr;
  /* Replies given to successive non-empty requests. */
  const char *replies[8];
  int nreplies;
  /* Requests received (the connect-only probe of open is skipped). */
  char *reqs[8];
  int nreqs;
};

static void *fake_main(void *arg) {
  struct fake *f = arg;

  while (f->nreqs < f->nreplies) {
    int fd = accept(f->lfd, NULL, NULL);
    size_t len = 0, cap = 1 << 20;
    char *req;

    if (fd < 0)
      break;
    req = calloc(1, cap);
    for (;;) {
      ssize_t r = read(fd, req + len, cap - len - 1);

      if (r <= 0)
        break;
      len += (size_t)r;
      if (len >= 2 && !memcmp(req + len - 2, "\n\n", 2))
        break;
    }
    if (!len) {
      free(req);
      close(fd);
      continue;
    }
    f->reqs[f->nreqs] = req;
    if (f->replies[f->nreqs][0])
      (void)!write(fd, f->replies[f->nreqs], strlen(f->replies[f->nreqs]));
    f->nreqs++;
    close(fd);
  }
  return NULL;
}

static void fake_start(struct fake *f) {
  struct sockaddr_un sun = {.sun_family = AF_UNIX};

  snprintf(f->path, sizeof(f->path), "/tmp/wgu-check-%d.sock", (int)getpid());
  unlink(f->path);
  strcpy(sun.sun_path, f->path);
  f->lfd = socket(AF_UNIX, SOCK_STREAM, 0);
  ck_assert_int_ge(f->lfd, 0);
  ck_assert_int_eq(bind(f->lfd, (struct sockaddr *)&sun, sizeof(sun)), 0);
  ck_assert_int_eq(listen(f->lfd, 4), 0);
  ck_assert_int_eq(pthread_create(&f->thr, NULL, fake_main, f), 0);
}

static void fake_stop(struct fake *f) {
  pthread_join(f->thr, NULL);
  close(f->lfd);
  unlink(f->path);
}

static void fake_free(struct fake *f) {
  int i;

  for (i = 0; i < f->nreqs; i++)
    free(f->reqs[i]);
}

START_TEST(backend_get_set) {
  struct fake f = {.replies = {good_reply, "errno=0\n\n", "errno=-22\n\n",
                               "errno=0\n\n", "errno=-22\n\n", ""},
                   .nreplies = 6};
  wgam_peer_update u[4];
  wg_backend *b;
  struct wg_dev d;

  fake_start(&f);
  ck_assert_int_eq(wg_uapi_open(&b, "wgutest0", f.path), 0);
  ck_assert_str_eq(wg_backend_name(b), "uapi");
  wg_dev_init(&d);
  ck_assert_int_eq(wg_get(b, &d), 0);
  check_good_dev(&d);
  updates4(u);
  ck_assert_int_eq(wg_set(b, u, 4), 0);
  /* EINVAL to a set with update_only: retried once without it... */
  ck_assert_int_eq(wg_set(b, u, 4), 0);
  /* ...which is then never sent again, and a failure is final. */
  ck_assert_int_eq(wg_set(b, u, 4), -EINVAL);
  /* Connection closed without a reply. */
  ck_assert_int_eq(wg_get(b, &d), -EPROTO);
  ck_assert_uint_eq(d.dev.npeers, 0);
  /* Nothing to do is not an operation at all. */
  ck_assert_int_eq(wg_set(b, u, 0), 0);
  fake_stop(&f);
  ck_assert_int_eq(f.nreqs, 6);
  ck_assert_str_eq(f.reqs[0], "get=1\n\n");
  ck_assert_str_eq(f.reqs[1], set4_text);
  ck_assert_str_eq(f.reqs[2], set4_text);
  ck_assert_str_eq(f.reqs[3], set4_text_plain);
  ck_assert_str_eq(f.reqs[4], set4_text_plain);
  ck_assert_str_eq(f.reqs[5], "get=1\n\n");
  fake_free(&f);
  /* The device went away. */
  ck_assert_int_eq(wg_get(b, &d), -ENODEV);
  wg_close(b);
  wg_dev_free(&d);
}
END_TEST

START_TEST(backend_boringtun) {
  struct fake f = {.replies = {boringtun_reply, "errno=0\n\n"}, .nreplies = 2};
  wgam_peer_update u[4];
  wg_backend *b;
  struct wg_dev d;
  time_t now = time(NULL);

  fake_start(&f);
  ck_assert_int_eq(wg_uapi_open(&b, "wgutest0", f.path), 0);
  wg_dev_init(&d);
  ck_assert_int_eq(wg_get(b, &d), 0);
  ck_assert_uint_eq(d.dev.npeers, 4);
  ck_assert_uint_ge(d.dev.peers[0].last_handshake, (uint64_t)now - 30);
  ck_assert_uint_le(d.dev.peers[0].last_handshake, (uint64_t)now - 29 + 5);
  /* The dialect seen in the get decides the set: no update_only. */
  updates4(u);
  ck_assert_int_eq(wg_set(b, u, 4), 0);
  fake_stop(&f);
  ck_assert_int_eq(f.nreqs, 2);
  ck_assert_str_eq(f.reqs[1], set4_text_plain);
  fake_free(&f);
  wg_close(b);
  wg_dev_free(&d);
}
END_TEST

/* Like wireguard-go: several operations per connection, until the peer
 * closes it (@per_conn operations here, a restart in real life). */
struct fake_kept {
  int lfd;
  char path[108];
  pthread_t thr;
  const char *replies[8];
  int nreplies, per_conn;
  int nreqs, naccepts;
};

static void *fake_kept_main(void *arg) {
  struct fake_kept *f = arg;

  while (f->nreqs < f->nreplies) {
    int fd = accept(f->lfd, NULL, NULL), served = 0;

    if (fd < 0)
      break;
    f->naccepts++;
    while (served < f->per_conn && f->nreqs < f->nreplies) {
      char req[4096];
      size_t len = 0;

      for (;;) {
        ssize_t r = read(fd, req + len, sizeof(req) - len);

        if (r <= 0)
          break;
        len += (size_t)r;
        if (len >= 2 && !memcmp(req + len - 2, "\n\n", 2))
          break;
      }
      if (len < 2)
        break;
      (void)!write(fd, f->replies[f->nreqs], strlen(f->replies[f->nreqs]));
      f->nreqs++;
      served++;
    }
    close(fd);
  }
  return NULL;
}

START_TEST(backend_keeps_connection) {
  /* K2 as a private key: another public key than Alice's. */
  static const char other_key[] = "private_key=" K2 "\nerrno=0\n\n";
  struct fake_kept f = {
      .replies = {good_reply, good_reply, "errno=0\n\n", other_key, good_reply},
      .nreplies = 5,
      .per_conn = 3};
  struct sockaddr_un sun = {.sun_family = AF_UNIX};
  wgam_peer_update u[4];
  wg_backend *b;
  struct wg_dev d;

  snprintf(f.path, sizeof(f.path), "/tmp/wgu-kept-%d.sock", (int)getpid());
  unlink(f.path);
  strcpy(sun.sun_path, f.path);
  f.lfd = socket(AF_UNIX, SOCK_STREAM, 0);
  ck_assert_int_ge(f.lfd, 0);
  ck_assert_int_eq(bind(f.lfd, (struct sockaddr *)&sun, sizeof(sun)), 0);
  ck_assert_int_eq(listen(f.lfd, 4), 0);
  ck_assert_int_eq(pthread_create(&f.thr, NULL, fake_kept_main, &f), 0);

  ck_assert_int_eq(wg_uapi_open(&b, "wgutest0", f.path), 0);
  wg_dev_init(&d);
  ck_assert_int_eq(wg_get(b, &d), 0);
  check_good_dev(&d);
  /* The public key comes from the cache this time, the same. */
  ck_assert_int_eq(wg_get(b, &d), 0);
  check_good_dev(&d);
  updates4(u);
  ck_assert_int_eq(wg_set(b, u, 4), 0);
  /* The peer closed the connection after three operations: the fourth
   * goes over a new one, and a new private key gives a new public key. */
  ck_assert_int_eq(wg_get(b, &d), 0);
  ck_assert(d.dev.has_pubkey);
  ck_assert(memcmp(d.dev.pubkey, alice_pub, 32) != 0);
  ck_assert_int_eq(wg_get(b, &d), 0);
  check_good_dev(&d);
  pthread_join(f.thr, NULL);
  ck_assert_int_eq(f.nreqs, 5);
  ck_assert_int_eq(f.naccepts, 2);
  /* The device went away: the kept connection is closed, and so is the
   * socket. */
  close(f.lfd);
  unlink(f.path);
  ck_assert_int_eq(wg_get(b, &d), -ENODEV);
  wg_close(b);
  wg_dev_free(&d);
}
END_TEST

START_TEST(backend_open_errors) {
  wg_backend *b = (wg_backend *)1;

  ck_assert_int_eq(wg_uapi_open(&b, "wgutest0", "/nonexistent/wgu.sock"),
                   -ENODEV);
  ck_assert_ptr_null(b);
  ck_assert_int_eq(wg_uapi_open(&b, "a/b", NULL), -EINVAL);
  ck_assert_int_eq(wg_uapi_open(&b, "", NULL), -EINVAL);
  ck_assert_int_eq(wg_uapi_open(&b, "0123456789abcdef", NULL), -EINVAL);
  ck_assert_int_eq(wg_open(&b, ".."), -EINVAL);
  /* No socket and no such interface: netlink says no device. */
  ck_assert_int_eq(wg_open(&b, "wgunosuch0"), -ENODEV);
}
END_TEST

static Suite *suite(void) {
  Suite *s = suite_create("wg_uapi");
  TCase *tc = tcase_create("parse");
  TCase *io = tcase_create("io");

  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, parse_good);
  tcase_add_test(tc, parse_no_private_key);
  tcase_add_test(tc, parse_boringtun_dialect);
  tcase_add_test(tc, parse_truncated_everywhere);
  tcase_add_loop_test(tc, parse_malformed, 0, sizeof(bad) / sizeof(bad[0]));
  tcase_add_test(tc, parse_embedded_nul_and_long_lines);
  tcase_add_test(tc, parse_random_garbage);
  tcase_add_test(tc, parse_many_peers_bounded);
  tcase_add_test(tc, parse_errno_reply);
  tcase_add_test(tc, build_set_text);
  suite_add_tcase(s, tc);
  tcase_set_timeout(io, 30);
  tcase_add_test(io, backend_get_set);
  tcase_add_test(io, backend_boringtun);
  tcase_add_test(io, backend_keeps_connection);
  tcase_add_test(io, backend_open_errors);
  suite_add_tcase(s, io);
  return s;
}

int main(void) {
  SRunner *sr = srunner_create(suite());
  int failed;

  srunner_run_all(sr, CK_NORMAL);
  failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
