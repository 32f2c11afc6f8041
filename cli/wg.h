/* SPDX-License-Identifier: MIT */
/*
 * WireGuard device access: kernel (generic netlink) or userspace (UAPI
 * socket). The daemon only reads the device into a wgam_device and applies
 * wgam_peer_update lists; it never creates or deletes the interface.
 */
#ifndef WGAM_CLI_WG_H
#define WGAM_CLI_WG_H

#include <stddef.h>

#include "wgautomesh.h"

/* A device read: wgam_device plus the storage its pointers refer to. */
struct wg_dev {
  wgam_device dev;         /* dev.peers points into peers */
  wgam_device_peer *peers; /* npeers = dev.npeers */
  wgam_cidr *cidrs;        /* storage for every peer's allowed IPs */
  size_t npeers_cap, ncidrs, ncidrs_cap;
};

void wg_dev_init(struct wg_dev *d);
void wg_dev_free(struct wg_dev *d);

typedef struct wg_backend wg_backend;

/*
 * Opens the device @ifname: the UAPI socket /var/run/wireguard/IFNAME.sock
 * when it exists (wireguard-go, boringtun), else generic netlink.
 * Returns 0, -ENODEV if no such WireGuard interface, or another -errno.
 */
int wg_open(wg_backend **pb, const char *ifname);

/* "uapi" or "netlink". */
const char *wg_backend_name(const wg_backend *b);

/* Reads the device into @out (reset first). Returns 0 or -errno
 * (-ENODEV when the interface disappeared). */
int wg_get(wg_backend *b, struct wg_dev *out);

/* Applies @n updates in as few operations as possible. Never replaces the
 * whole peer list. Returns 0 or -errno. */
int wg_set(wg_backend *b, const wgam_peer_update *upds, size_t n);

void wg_close(wg_backend *b);

/* Backends (wg.c dispatches; each is usable on its own for tests). */
int wg_uapi_open(wg_backend **pb, const char *ifname, const char *sockpath);
int wg_netlink_open(wg_backend **pb, const char *ifname);

#endif
