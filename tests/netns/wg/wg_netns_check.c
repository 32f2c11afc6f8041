/* SPDX-License-Identifier: MIT */
/*
 * Runs under netns_wg.sh against a real wireguard-go: every change made
 * through our backend is read back through it and cross-checked with
 * `wg show IFNAME dump`.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sodium.h>

#include "wg.h"
#include "wg_netns_common.h"

#define NBIG 1000

static const char *ifname;
static int failures;

#define CHECK(cond, ...)                                                       \
  do {                                                                         \
    if (!(cond)) {                                                             \
      fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond);          \
      fprintf(stderr, __VA_ARGS__);                                            \
      fputc('\n', stderr);                                                     \
      failures++;                                                              \
      return -1;                                                               \
    }                                                                          \
  } while (0)

/* One peer line of `wg show IF dump`. */
struct dump_peer {
  uint8_t key[WGAM_KEY_LEN];
  char endpoint[80];
  char allowed[256];
  char keepalive[16];
};

struct dump {
  uint8_t pubkey[WGAM_KEY_LEN];
  unsigned listen_port;
  struct dump_peer *peers;
  size_t npeers;
};

static int b64key(uint8_t key[WGAM_KEY_LEN], const char *s) {
  size_t len;

  return sodium_base642bin(key, WGAM_KEY_LEN, s, strlen(s), NULL, &len, NULL,
                           sodium_base64_VARIANT_ORIGINAL) == 0 &&
                 len == WGAM_KEY_LEN
             ? 0
             : -1;
}

static int read_dump(struct dump *d) {
  char cmd[64], line[1024];
  FILE *f;
  int first = 1;

  memset(d, 0, sizeof(*d));
  d->peers = calloc(NBIG + 16, sizeof(*d->peers));
  snprintf(cmd, sizeof(cmd), "wg show %s dump", ifname);
  f = popen(cmd, "r");
  CHECK(f, "popen");
  while (fgets(line, sizeof(line), f)) {
    char *fld[9], *save = NULL, *tok;
    int n = 0;

    line[strcspn(line, "\n")] = '\0';
    for (tok = strtok_r(line, "\t", &save); tok && n < 9;
         tok = strtok_r(NULL, "\t", &save))
      fld[n++] = tok;
    if (first) {
      /* private-key public-key listen-port fwmark */
      CHECK(n == 4, "interface line has %d fields", n);
      CHECK(b64key(d->pubkey, fld[1]) == 0, "bad key %s", fld[1]);
      d->listen_port = (unsigned)atoi(fld[2]);
      first = 0;
      continue;
    }
    /* public-key psk endpoint allowed-ips handshake rx tx keepalive */
    CHECK(n == 8, "peer line has %d fields", n);
    CHECK(d->npeers < NBIG + 16, "too many peers");
    CHECK(b64key(d->peers[d->npeers].key, fld[0]) == 0, "bad key %s", fld[0]);
    snprintf(d->peers[d->npeers].endpoint, 80, "%s", fld[2]);
    snprintf(d->peers[d->npeers].allowed, 256, "%s", fld[3]);
    snprintf(d->peers[d->npeers].keepalive, 16, "%s", fld[7]);
    d->npeers++;
  }
  CHECK(pclose(f) == 0, "wg show failed");
  CHECK(!first, "no interface line");
  return 0;
}

static const wgam_device_peer *find_peer(const struct wg_dev *dev,
                                         const uint8_t *key) {
  size_t i;

  for (i = 0; i < dev->dev.npeers; i++)
    if (!memcmp(dev->dev.peers[i].pubkey, key, WGAM_KEY_LEN))
      return &dev->dev.peers[i];
  return NULL;
}

/* Our read and wg(8)'s must agree on every peer and field. */
static int cross_check(const struct wg_dev *dev) {
  struct dump d;
  size_t i, j;
  int ret = -1;

  if (read_dump(&d) < 0)
    goto out;
  if (!dev->dev.has_pubkey || memcmp(dev->dev.pubkey, d.pubkey, WGAM_KEY_LEN)) {
    fprintf(stderr, "FAIL: own public key differs from wg show\n");
    goto fail;
  }
  if (dev->dev.listen_port != d.listen_port) {
    fprintf(stderr, "FAIL: listen port %u vs %u\n", dev->dev.listen_port,
            d.listen_port);
    goto fail;
  }
  if (dev->dev.npeers != d.npeers) {
    fprintf(stderr, "FAIL: %zu peers vs %zu in wg show\n", dev->dev.npeers,
            d.npeers);
    goto fail;
  }
  for (i = 0; i < d.npeers; i++) {
    const wgam_device_peer *p = find_peer(dev, d.peers[i].key);
    char ep[80], ka[16], aips[256] = "", c[64];

    if (!p) {
      fprintf(stderr, "FAIL: peer %zu of wg show missing from our read\n", i);
      goto fail;
    }
    fmt_endpoint(ep, sizeof(ep), &p->endpoint);
    if (p->persistent_keepalive)
      snprintf(ka, sizeof(ka), "%u", p->persistent_keepalive);
    else
      snprintf(ka, sizeof(ka), "off");
    for (j = 0; j < p->nallowedips; j++) {
      fmt_cidr(c, sizeof(c), &p->allowedips[j]);
      if (j)
        strcat(aips, ",");
      strcat(aips, c);
    }
    if (!p->nallowedips)
      strcpy(aips, "(none)");
    if (strcmp(ep, d.peers[i].endpoint) || strcmp(ka, d.peers[i].keepalive) ||
        strcmp(aips, d.peers[i].allowed)) {
      fprintf(stderr, "FAIL: peer %zu: ours %s %s %s, wg show %s %s %s\n", i,
              ep, aips, ka, d.peers[i].endpoint, d.peers[i].allowed,
              d.peers[i].keepalive);
      goto fail;
    }
  }
  ret = 0;
  goto out;
fail:
  failures++;
out:
  free(d.peers);
  return ret;
}

/* wgam_addr_equal() lives in the library; this test links only cli/wg*.c. */
static int wgam_addr_equal_ck(const wgam_addr *a, const wgam_addr *b) {
  size_t n = a->family == WGAM_AF_INET ? 4 : 16;

  return a->family == b->family && a->port == b->port &&
         !memcmp(a->ip, b->ip, n);
}

static int addr_set(wgam_addr *a, int fam, const char *s, uint16_t port) {
  memset(a, 0, sizeof(*a));
  a->family = (uint8_t)fam;
  a->port = port;
  return inet_pton(fam == WGAM_AF_INET ? AF_INET : AF_INET6, s, a->ip) == 1
             ? 0
             : -1;
}

static double now_ms(void) {
  struct timespec ts;

  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static int single_peer(wg_backend *b, struct wg_dev *dev) {
  wgam_peer_update u;
  const wgam_device_peer *p;
  wgam_addr want;
  int ret;

  /* add: endpoint, keepalive, allowed IP */
  memset(&u, 0, sizeof(u));
  random_pubkey(u.pubkey);
  u.flags = WGAM_PEER_REPLACE_ALLOWEDIPS | WGAM_PEER_HAS_ENDPOINT |
            WGAM_PEER_HAS_KEEPALIVE;
  addr_set(&u.endpoint, WGAM_AF_INET, "198.51.100.7", 51820);
  u.persistent_keepalive = 25;
  addr_set(&u.allowedips[0].addr, WGAM_AF_INET, "100.64.0.2", 0);
  u.allowedips[0].prefixlen = 32;
  u.nallowedips = 1;
  CHECK((ret = wg_set(b, &u, 1)) == 0, "add: %s", strerror(-ret));
  CHECK((ret = wg_get(b, dev)) == 0, "get: %s", strerror(-ret));
  CHECK(dev->dev.npeers == 1, "%zu peers", dev->dev.npeers);
  p = &dev->dev.peers[0];
  CHECK(!memcmp(p->pubkey, u.pubkey, WGAM_KEY_LEN), "key");
  CHECK(wgam_addr_equal_ck(&p->endpoint, &u.endpoint), "endpoint");
  CHECK(p->persistent_keepalive == 25, "keepalive %u", p->persistent_keepalive);
  CHECK(p->nallowedips == 1 && p->allowedips[0].prefixlen == 32 &&
            !memcmp(p->allowedips[0].addr.ip, u.allowedips[0].addr.ip, 4),
        "allowed ips");
  CHECK(p->last_handshake == 0, "handshake");
  if (cross_check(dev) < 0)
    return -1;

  /* change the endpoint (v6) only: keepalive and allowed IP stay */
  u.flags = WGAM_PEER_HAS_ENDPOINT;
  addr_set(&u.endpoint, WGAM_AF_INET6, "2001:db8::7", 4500);
  CHECK((ret = wg_set(b, &u, 1)) == 0, "endpoint: %s", strerror(-ret));
  CHECK((ret = wg_get(b, dev)) == 0, "get: %s", strerror(-ret));
  CHECK(dev->dev.npeers == 1, "%zu peers", dev->dev.npeers);
  p = &dev->dev.peers[0];
  addr_set(&want, WGAM_AF_INET6, "2001:db8::7", 4500);
  CHECK(wgam_addr_equal_ck(&p->endpoint, &want), "v6 endpoint");
  CHECK(p->persistent_keepalive == 25, "keepalive kept");
  CHECK(p->nallowedips == 1, "allowed ip kept");
  if (cross_check(dev) < 0)
    return -1;

  /* keepalive off, allowed IPs replaced by a v6 one */
  u.flags = WGAM_PEER_HAS_KEEPALIVE | WGAM_PEER_REPLACE_ALLOWEDIPS;
  u.persistent_keepalive = 0;
  addr_set(&u.allowedips[0].addr, WGAM_AF_INET6, "fd00::2", 0);
  u.allowedips[0].prefixlen = 128;
  u.nallowedips = 1;
  CHECK((ret = wg_set(b, &u, 1)) == 0, "replace: %s", strerror(-ret));
  CHECK((ret = wg_get(b, dev)) == 0, "get: %s", strerror(-ret));
  p = &dev->dev.peers[0];
  CHECK(p->persistent_keepalive == 0, "keepalive off");
  CHECK(p->nallowedips == 1 && p->allowedips[0].addr.family == WGAM_AF_INET6 &&
            p->allowedips[0].prefixlen == 128 &&
            !memcmp(p->allowedips[0].addr.ip, u.allowedips[0].addr.ip, 16),
        "replaced allowed ips");
  CHECK(wgam_addr_equal_ck(&p->endpoint, &want), "endpoint kept");
  if (cross_check(dev) < 0)
    return -1;

  /* remove */
  u.flags = WGAM_PEER_REMOVE_ME;
  CHECK((ret = wg_set(b, &u, 1)) == 0, "remove: %s", strerror(-ret));
  CHECK((ret = wg_get(b, dev)) == 0, "get: %s", strerror(-ret));
  CHECK(dev->dev.npeers == 0, "%zu peers after remove", dev->dev.npeers);
  if (cross_check(dev) < 0)
    return -1;

  /* an endpoint change for an absent peer does not create it */
  u.flags = WGAM_PEER_HAS_ENDPOINT | WGAM_PEER_HAS_KEEPALIVE;
  u.persistent_keepalive = 10;
  CHECK((ret = wg_set(b, &u, 1)) == 0, "update-only: %s", strerror(-ret));
  CHECK((ret = wg_get(b, dev)) == 0, "get: %s", strerror(-ret));
  CHECK(dev->dev.npeers == 0, "update-only created a peer");
  return cross_check(dev);
}

static int many_peers(wg_backend *b, struct wg_dev *dev) {
  wgam_peer_update *u = calloc(NBIG, sizeof(*u));
  double t0, t1, t2;
  size_t i;
  int ret;

  CHECK(u, "calloc");
  for (i = 0; i < NBIG; i++)
    big_update(&u[i], (unsigned)i);
  t0 = now_ms();
  ret = wg_set(b, u, NBIG);
  t1 = now_ms();
  CHECK(ret == 0, "set %d peers: %s", NBIG, strerror(-ret));
  CHECK((ret = wg_get(b, dev)) == 0, "get: %s", strerror(-ret));
  t2 = now_ms();
  printf("%d peers: set %.1f ms, get %.1f ms\n", NBIG, t1 - t0, t2 - t1);
  CHECK(dev->dev.npeers == NBIG, "%zu peers read back", dev->dev.npeers);
  for (i = 0; i < NBIG; i++) {
    const wgam_device_peer *p = find_peer(dev, u[i].pubkey);
    size_t alen = u[i].allowedips[0].addr.family == WGAM_AF_INET ? 4 : 16;

    CHECK(p, "peer %zu missing", i);
    CHECK(wgam_addr_equal_ck(&p->endpoint, &u[i].endpoint), "endpoint %zu", i);
    CHECK(p->persistent_keepalive == u[i].persistent_keepalive, "keepalive %zu",
          i);
    CHECK(
        p->nallowedips == 1 &&
            p->allowedips[0].addr.family == u[i].allowedips[0].addr.family &&
            p->allowedips[0].prefixlen == u[i].allowedips[0].prefixlen &&
            !memcmp(p->allowedips[0].addr.ip, u[i].allowedips[0].addr.ip, alen),
        "allowed ip %zu", i);
  }
  if (cross_check(dev) < 0)
    return -1;
  for (i = 0; i < NBIG; i++)
    u[i].flags = WGAM_PEER_REMOVE_ME;
  CHECK((ret = wg_set(b, u, NBIG)) == 0, "remove all: %s", strerror(-ret));
  CHECK((ret = wg_get(b, dev)) == 0, "get: %s", strerror(-ret));
  CHECK(dev->dev.npeers == 0, "%zu peers left", dev->dev.npeers);
  free(u);
  return cross_check(dev);
}

int main(int argc, char **argv) {
  struct wg_dev dev;
  wg_backend *b, *nl;
  int ret;

  if (argc != 2) {
    fprintf(stderr, "usage: %s IFNAME\n", argv[0]);
    return 2;
  }
  ifname = argv[1];
  if (sodium_init() < 0)
    return 1;
  wg_dev_init(&dev);
  ret = wg_open(&b, ifname);
  if (ret < 0) {
    fprintf(stderr, "FAIL: wg_open(%s): %s\n", ifname, strerror(-ret));
    return 1;
  }
  if (strcmp(wg_backend_name(b), "uapi")) {
    fprintf(stderr, "FAIL: backend %s\n", wg_backend_name(b));
    return 1;
  }
  /* The tun device lives in another namespace and is no kernel WireGuard
   * one anyway: the netlink backend must say so. */
  ret = wg_netlink_open(&nl, ifname);
  if (ret != -ENODEV) {
    fprintf(stderr, "FAIL: wg_netlink_open: %d\n", ret);
    failures++;
  }
  ret = wg_get(b, &dev);
  if (ret < 0 || dev.dev.npeers != 0 || dev.dev.listen_port != 51820) {
    fprintf(stderr, "FAIL: initial read: %d\n", ret);
    return 1;
  }
  if (cross_check(&dev) == 0)
    printf("ok - initial read matches wg show\n");
  if (single_peer(b, &dev) == 0)
    printf("ok - add, change endpoint, replace allowed IPs, remove\n");
  if (many_peers(b, &dev) == 0)
    printf("ok - %d peers in one call, read back, removed\n", NBIG);
  wg_close(b);
  wg_dev_free(&dev);
  if (failures)
    printf("%d failure(s)\n", failures);
  return failures ? 1 : 0;
}
