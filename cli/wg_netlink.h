/* SPDX-License-Identifier: MIT */
/*
 * Kernel WireGuard over generic netlink: message building and dump parsing,
 * separate from the socket so that unit tests and fuzz targets reach them
 * without a kernel.
 */
#ifndef WGAM_CLI_WG_NETLINK_H
#define WGAM_CLI_WG_NETLINK_H

#include <stddef.h>

#include <netlink/msg.h>

#include "wg.h"

#if defined(__has_include)
#if __has_include(<linux/wireguard.h>)
#include <linux/wireguard.h>
#define WG_HAVE_UAPI_HEADER 1
#endif
#endif

#ifndef WG_HAVE_UAPI_HEADER
/* The kernel's include/uapi/linux/wireguard.h, a stable ABI. */
#define WG_GENL_NAME "wireguard"
#define WG_GENL_VERSION 1
#define WG_KEY_LEN 32
enum wg_cmd { WG_CMD_GET_DEVICE, WG_CMD_SET_DEVICE };
enum wgdevice_flag { WGDEVICE_F_REPLACE_PEERS = 1U << 0 };
enum wgdevice_attribute {
  WGDEVICE_A_UNSPEC,
  WGDEVICE_A_IFINDEX,
  WGDEVICE_A_IFNAME,
  WGDEVICE_A_PRIVATE_KEY,
  WGDEVICE_A_PUBLIC_KEY,
  WGDEVICE_A_FLAGS,
  WGDEVICE_A_LISTEN_PORT,
  WGDEVICE_A_FWMARK,
  WGDEVICE_A_PEERS,
  __WGDEVICE_A_LAST
};
#define WGDEVICE_A_MAX (__WGDEVICE_A_LAST - 1)
enum wgpeer_flag {
  WGPEER_F_REMOVE_ME = 1U << 0,
  WGPEER_F_REPLACE_ALLOWEDIPS = 1U << 1,
  WGPEER_F_UPDATE_ONLY = 1U << 2,
};
enum wgpeer_attribute {
  WGPEER_A_UNSPEC,
  WGPEER_A_PUBLIC_KEY,
  WGPEER_A_PRESHARED_KEY,
  WGPEER_A_FLAGS,
  WGPEER_A_ENDPOINT,
  WGPEER_A_PERSISTENT_KEEPALIVE_INTERVAL,
  WGPEER_A_LAST_HANDSHAKE_TIME,
  WGPEER_A_RX_BYTES,
  WGPEER_A_TX_BYTES,
  WGPEER_A_ALLOWEDIPS,
  WGPEER_A_PROTOCOL_VERSION,
  __WGPEER_A_LAST
};
#define WGPEER_A_MAX (__WGPEER_A_LAST - 1)
enum wgallowedip_attribute {
  WGALLOWEDIP_A_UNSPEC,
  WGALLOWEDIP_A_FAMILY,
  WGALLOWEDIP_A_IPADDR,
  WGALLOWEDIP_A_CIDR_MASK,
  __WGALLOWEDIP_A_LAST
};
#define WGALLOWEDIP_A_MAX (__WGALLOWEDIP_A_LAST - 1)
#endif

/* A list of built messages, owned by the list. */
struct wg_nl_msgs {
  struct nl_msg **v;
  size_t n, cap;
};

/* Frees every message and the list's storage; the list is left empty. */
void wg_nl_msgs_free(struct wg_nl_msgs *m);

/*
 * Builds the WG_CMD_SET_DEVICE requests applying @n updates to @ifname, for
 * the generic netlink family id @family. Each message is at most @msgsize
 * bytes (0 = a page); a peer that does not fit is moved whole to the next
 * message. Each update gives one peer with, for a removal, only
 * WGPEER_F_REMOVE_ME; otherwise WGPEER_F_REPLACE_ALLOWEDIPS (or
 * WGPEER_F_UPDATE_ONLY without it, so an endpoint change never creates a
 * peer without allowed IPs), the endpoint as a zeroed sockaddr_in/_in6, the
 * keepalive and the allowed IP. WGDEVICE_F_REPLACE_PEERS is never set.
 * @out must be empty ({0}); it holds at least one message when @n > 0.
 *
 * Returns 0, -EINVAL (bad family or prefix length in an update, bad name),
 * -EMSGSIZE (one peer exceeds @msgsize), or -ENOMEM. On error @out is freed.
 */
int wg_netlink_build_set(int family, const char *ifname,
                         const wgam_peer_update *upds, size_t n, size_t msgsize,
                         struct wg_nl_msgs *out);

/*
 * Parses one message of a WG_CMD_GET_DEVICE dump (netlink header, generic
 * netlink header, attributes) held in @buf of @len bytes, adding to @out: the
 * device attributes present, then the peers. A peer whose public key equals
 * the last peer of @out continues it (the kernel splits a peer with many
 * allowed IPs across messages). Call wg_dev_reset() before the first message
 * of a dump; the caller finishes @out with wg_get() semantics (see
 * wg_netlink_finish_dump).
 *
 * Returns 0, -EPROTO (truncated or malformed: a length, a family, a prefix
 * length, a peer without public key), -E2BIG, or -ENOMEM.
 */
int wg_netlink_parse_dump_msg(const void *buf, size_t len, struct wg_dev *out);

/* Sets the pointers of @out after the last message (wg_dev_finish). */
void wg_netlink_finish_dump(struct wg_dev *out);

/* Maps a libnl error (-NLE_*) to a negative errno. */
int wg_nlerr_to_errno(int nlerr);

#endif
