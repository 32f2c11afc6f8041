/* SPDX-License-Identifier: MIT */
/*
 * Shared between wg.c and the two backends: the backend object, the bounds
 * every device read obeys, and helpers that fill a struct wg_dev.
 */
#ifndef WGAM_CLI_WG_INTERNAL_H
#define WGAM_CLI_WG_INTERNAL_H

#include <stdint.h>
#include <net/if.h>

#include "wg.h"

/*
 * Bounds of a device read. A device with more is refused (-E2BIG) rather
 * than letting a misbehaving peer process make us allocate without limit.
 */
#define WG_MAX_PEERS 65536u
#define WG_MAX_ALLOWEDIPS (1u << 20) /* all peers together */

struct wg_backend_ops {
  const char *name;
  int (*get)(wg_backend *b, struct wg_dev *out);
  int (*set)(wg_backend *b, const wgam_peer_update *upds, size_t n);
  void (*close)(wg_backend *b);
};

/* Each backend embeds this as its first member. */
struct wg_backend {
  const struct wg_backend_ops *ops;
  char ifname[IFNAMSIZ];
};

/* Returns 1 if @ifname can name an interface (1..15 chars, no '/'). */
int wg_ifname_valid(const char *ifname);

/* Empties @d (keeps its storage). */
void wg_dev_reset(struct wg_dev *d);

/*
 * Appends a zeroed peer to @d and points *@pp at it. Allowed IPs added
 * afterwards with wg_dev_add_allowedip() belong to the last peer, which is
 * why a device is filled peer after peer. Returns 0, -ENOMEM or -E2BIG.
 */
int wg_dev_add_peer(struct wg_dev *d, wgam_device_peer **pp);

/* Appends @c to the last peer's allowed IPs. Returns 0, -EPROTO (no peer
 * yet), -ENOMEM or -E2BIG. */
int wg_dev_add_allowedip(struct wg_dev *d, const wgam_cidr *c);

/*
 * Sets the pointers of d->dev (peers, each peer's allowedips) once filling
 * is over: they cannot be set while the arrays may still move.
 */
void wg_dev_finish(struct wg_dev *d);

#endif
