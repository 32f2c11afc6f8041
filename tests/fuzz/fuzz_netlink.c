/* SPDX-License-Identifier: MIT */
/*
 * The WG_CMD_GET_DEVICE dump parser. The first input byte picks how the
 * rest is cut: mode 0 hands it to the parser as one message of that length
 * (the header's nlmsg_len may disagree); mode 1 walks it as a receive buffer
 * of several messages, each of its declared, aligned length, as one dump of
 * a split device.
 */
#include <errno.h>
#include <string.h>

#include <linux/netlink.h>

#include "fuzz_common.h"
#include "log.h"
#include "wg.h"
#include "wg_netlink.h"

static void check_dev(const struct wg_dev *d) {
  FZ_ASSERT(d->dev.npeers == 0 || d->dev.peers);
  for (size_t i = 0; i < d->dev.npeers; i++) {
    const wgam_device_peer *p = &d->dev.peers[i];

    FZ_ASSERT(p->nallowedips == 0 || p->allowedips);
    for (size_t k = 0; k < p->nallowedips; k++)
      FZ_ASSERT(p->allowedips[k].prefixlen <=
                (p->allowedips[k].addr.family == WGAM_AF_INET ? 32 : 128));
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  /* The daemon receives into an aligned buffer; so do we. */
  static _Alignas(8) uint8_t buf[1 << 16];
  struct wg_dev d;
  size_t len, off = 0;
  int rc = 0;

  log_level = -1;
  if (size < 1)
    return 0;
  len = size - 1 > sizeof(buf) ? sizeof(buf) : size - 1;
  memcpy(buf, data + 1, len);
  wg_dev_init(&d);
  if (!(data[0] & 1)) {
    rc = wg_netlink_parse_dump_msg(buf, len, &d);
    FZ_ASSERT(rc <= 0);
  } else {
    while (rc == 0 && off < len && len - off >= sizeof(struct nlmsghdr)) {
      struct nlmsghdr hdr;
      size_t mlen;

      memcpy(&hdr, buf + off, sizeof(hdr));
      if (hdr.nlmsg_len < sizeof(hdr) || hdr.nlmsg_len > len - off)
        break;
      mlen = hdr.nlmsg_len;
      rc = wg_netlink_parse_dump_msg(buf + off, mlen, &d);
      FZ_ASSERT(rc <= 0);
      off += NLMSG_ALIGN(mlen);
    }
  }
  if (rc == 0) {
    wg_netlink_finish_dump(&d);
    check_dev(&d);
  }
  wg_dev_free(&d);
  return 0;
}
