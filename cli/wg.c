/* SPDX-License-Identifier: MIT */
/*
 * WireGuard device access: picks the backend and owns struct wg_dev.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "log.h"
#include "wg.h"
#include "wg_internal.h"

#define WG_UAPI_DIR "/var/run/wireguard"

void wg_dev_init(struct wg_dev *d) {
  memset(d, 0, sizeof(*d));
}

void wg_dev_free(struct wg_dev *d) {
  if (!d)
    return;
  free(d->peers);
  free(d->cidrs);
  memset(d, 0, sizeof(*d));
}

void wg_dev_reset(struct wg_dev *d) {
  memset(&d->dev, 0, sizeof(d->dev));
  d->ncidrs = 0;
}

int wg_dev_add_peer(struct wg_dev *d, wgam_device_peer **pp) {
  if (d->dev.npeers >= WG_MAX_PEERS)
    return -E2BIG;
  if (d->dev.npeers == d->npeers_cap) {
    size_t cap = d->npeers_cap ? d->npeers_cap * 2 : 16;
    wgam_device_peer *p;

    if (cap > WG_MAX_PEERS)
      cap = WG_MAX_PEERS;
    p = realloc(d->peers, cap * sizeof(*p));
    if (!p)
      return -ENOMEM;
    d->peers = p;
    d->npeers_cap = cap;
  }
  *pp = &d->peers[d->dev.npeers++];
  memset(*pp, 0, sizeof(**pp));
  /* dev.peers must not point at storage a later realloc may free. */
  d->dev.peers = NULL;
  return 0;
}

int wg_dev_add_allowedip(struct wg_dev *d, const wgam_cidr *c) {
  if (!d->dev.npeers)
    return -EPROTO;
  if (d->ncidrs >= WG_MAX_ALLOWEDIPS)
    return -E2BIG;
  if (d->ncidrs == d->ncidrs_cap) {
    size_t cap = d->ncidrs_cap ? d->ncidrs_cap * 2 : 16;
    wgam_cidr *p;

    if (cap > WG_MAX_ALLOWEDIPS)
      cap = WG_MAX_ALLOWEDIPS;
    p = realloc(d->cidrs, cap * sizeof(*p));
    if (!p)
      return -ENOMEM;
    d->cidrs = p;
    d->ncidrs_cap = cap;
  }
  d->cidrs[d->ncidrs++] = *c;
  d->peers[d->dev.npeers - 1].nallowedips++;
  d->peers[d->dev.npeers - 1].allowedips = NULL;
  return 0;
}

void wg_dev_finish(struct wg_dev *d) {
  size_t i, off = 0;

  /* Allowed IPs were appended peer after peer, so each peer's are a
   * contiguous run of d->cidrs in peer order. */
  d->dev.peers = d->dev.npeers ? d->peers : NULL;
  for (i = 0; i < d->dev.npeers; i++) {
    d->peers[i].allowedips = d->peers[i].nallowedips ? d->cidrs + off : NULL;
    off += d->peers[i].nallowedips;
  }
}

int wg_ifname_valid(const char *ifname) {
  size_t len = ifname ? strnlen(ifname, IFNAMSIZ) : 0;

  /* The name becomes a path component of the UAPI socket. */
  return len > 0 && len < IFNAMSIZ && !strchr(ifname, '/') &&
         strcmp(ifname, ".") && strcmp(ifname, "..");
}

int wg_open(wg_backend **pb, const char *ifname) {
  char path[sizeof(WG_UAPI_DIR) + IFNAMSIZ + 8];
  struct stat st;

  *pb = NULL;
  if (!wg_ifname_valid(ifname))
    return -EINVAL;
  snprintf(path, sizeof(path), "%s/%s.sock", WG_UAPI_DIR, ifname);
  if (stat(path, &st) == 0 && S_ISSOCK(st.st_mode))
    return wg_uapi_open(pb, ifname, path);
  return wg_netlink_open(pb, ifname);
}

const char *wg_backend_name(const wg_backend *b) {
  return b->ops->name;
}

int wg_get(wg_backend *b, struct wg_dev *out) {
  int ret;

  wg_dev_reset(out);
  ret = b->ops->get(b, out);
  if (ret < 0) {
    /* Never hand out a half-read device. */
    wg_dev_reset(out);
    return ret;
  }
  wg_dev_finish(out);
  return 0;
}

int wg_set(wg_backend *b, const wgam_peer_update *upds, size_t n) {
  if (!n)
    return 0;
  return b->ops->set(b, upds, n);
}

void wg_close(wg_backend *b) {
  if (b)
    b->ops->close(b);
}
