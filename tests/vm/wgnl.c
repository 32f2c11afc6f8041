/* SPDX-License-Identifier: MIT */
/*
 * wgnl: drives the daemon's kernel WireGuard backend (cli/wg_netlink.c) from
 * the command line, for the micro-VM test. "set" applies a list of peer
 * updates in one wg_set() call, so a long list goes to the kernel as several
 * netlink messages; "get" prints the device as wg_get() read it (a dump of
 * several messages) in the layout of the peer lines of `wg show IFNAME dump`
 * restricted to public key, endpoint, allowed IPs and keepalive, so that the
 * guest compares our reading with wireguard-tools' own, byte for byte.
 *
 *   wgnl IFNAME set <UPDATES  lines "PUBKEY ENDPOINT|- CIDR|- KEEPALIVE|-"
 *                             or "PUBKEY remove"
 *   wgnl IFNAME get
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "wg.h"

static int parse_cidr(wgam_cidr *c, const char *s) {
  char buf[64];
  char *slash, *end;
  unsigned long plen;

  if (strlen(s) >= sizeof(buf))
    return -EINVAL;
  strcpy(buf, s);
  slash = strchr(buf, '/');
  if (!slash)
    return -EINVAL;
  *slash = '\0';
  memset(c, 0, sizeof(*c));
  if (wgam_addr_parse(&c->addr, buf, 1) != 0 || c->addr.port != 0)
    return -EINVAL;
  plen = strtoul(slash + 1, &end, 10);
  if (*end || plen > (c->addr.family == WGAM_AF_INET ? 32u : 128u))
    return -EINVAL;
  c->prefixlen = (uint8_t)plen;
  return 0;
}

static int parse_update(wgam_peer_update *u, const char *line) {
  char key[64], ep[80], cidr[64], ka[16];
  int n;

  memset(u, 0, sizeof(*u));
  n = sscanf(line, "%63s %79s %63s %15s", key, ep, cidr, ka);
  if (n < 2 || wgam_key_from_base64(u->pubkey, key, strlen(key)) != 0)
    return -EINVAL;
  if (n == 2 && strcmp(ep, "remove") == 0) {
    u->flags = WGAM_PEER_REMOVE_ME;
    return 0;
  }
  if (n != 4)
    return -EINVAL;
  if (strcmp(ep, "-") != 0) {
    if (wgam_addr_parse(&u->endpoint, ep, 0) != 0)
      return -EINVAL;
    u->flags |= WGAM_PEER_HAS_ENDPOINT;
  }
  if (strcmp(cidr, "-") != 0) {
    if (parse_cidr(&u->allowedips[0], cidr) != 0)
      return -EINVAL;
    u->nallowedips = 1;
    u->flags |= WGAM_PEER_REPLACE_ALLOWEDIPS;
  }
  if (strcmp(ka, "-") != 0) {
    u->persistent_keepalive = (uint16_t)atoi(ka);
    u->flags |= WGAM_PEER_HAS_KEEPALIVE;
  }
  return 0;
}

static int cmd_set(wg_backend *b) {
  wgam_peer_update *upds = NULL, *nu;
  size_t n = 0, cap = 0, lineno = 0;
  char line[512];
  int ret;

  while (fgets(line, sizeof(line), stdin)) {
    lineno++;
    if (n == cap) {
      cap = cap ? 2 * cap : 256;
      nu = realloc(upds, cap * sizeof(*upds));
      if (!nu) {
        ret = -ENOMEM;
        goto out;
      }
      upds = nu;
    }
    ret = parse_update(&upds[n], line);
    if (ret < 0) {
      fprintf(stderr, "wgnl: stdin:%zu: bad update\n", lineno);
      goto out;
    }
    n++;
  }
  ret = wg_set(b, upds, n);
  if (ret < 0)
    fprintf(stderr, "wgnl: wg_set of %zu updates: %s\n", n, strerror(-ret));
  else
    fprintf(stderr, "wgnl: applied %zu updates\n", n);
out:
  free(upds);
  return ret;
}

static void print_peer(const wgam_device_peer *p) {
  char key[WGAM_KEY_B64_LEN + 1], addr[64];

  wgam_key_to_base64(key, p->pubkey);
  printf("%s\t", key);
  if (p->endpoint.family == WGAM_AF_NONE) {
    printf("(none)");
  } else {
    wgam_addr_format(addr, sizeof(addr), &p->endpoint, 1);
    printf("%s", addr);
  }
  putchar('\t');
  if (!p->nallowedips)
    printf("(none)");
  for (size_t i = 0; i < p->nallowedips; i++) {
    wgam_addr_format(addr, sizeof(addr), &p->allowedips[i].addr, 0);
    printf("%s%s/%u", i ? "," : "", addr, p->allowedips[i].prefixlen);
  }
  if (p->persistent_keepalive)
    printf("\t%u\n", p->persistent_keepalive);
  else
    printf("\toff\n");
}

static int cmd_get(wg_backend *b) {
  struct wg_dev d;
  int ret;

  wg_dev_init(&d);
  ret = wg_get(b, &d);
  if (ret < 0) {
    fprintf(stderr, "wgnl: wg_get: %s\n", strerror(-ret));
    goto out;
  }
  for (size_t i = 0; i < d.dev.npeers; i++)
    print_peer(&d.dev.peers[i]);
  fprintf(stderr, "wgnl: read %zu peers, listen port %u\n", d.dev.npeers,
          d.dev.listen_port);
out:
  wg_dev_free(&d);
  return ret;
}

int main(int argc, char **argv) {
  wg_backend *b = NULL;
  int ret;

  if (argc != 3 || (strcmp(argv[2], "set") && strcmp(argv[2], "get"))) {
    fprintf(stderr, "usage: wgnl IFNAME set|get\n");
    return 2;
  }
  log_level = WGAM_LOG_DEBUG;
  /* The netlink backend itself, not wg_open()'s choice: this tool exists
   * to exercise it. */
  ret = wg_netlink_open(&b, argv[1]);
  if (ret < 0) {
    fprintf(stderr, "wgnl: %s: %s\n", argv[1], strerror(-ret));
    return 1;
  }
  ret = strcmp(argv[2], "set") == 0 ? cmd_set(b) : cmd_get(b);
  wg_close(b);
  return ret < 0 ? 1 : 0;
}
