/* SPDX-License-Identifier: MIT */
/*
 * Default gateway from /proc/net/route and /proc/net/ipv6_route.
 *
 * /proc/net/route: a header line, then "Iface Destination Gateway Flags
 * RefCnt Use Metric Mask MTU Window IRTT" with addresses as the hex of the
 * 32-bit value in host byte order. /proc/net/ipv6_route: "dest plen src
 * plen nexthop metric refcnt use flags iface", addresses as 32 hex digits
 * in network order.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gateway.h"

/* RTF_UP | RTF_GATEWAY, as in <linux/route.h>. */
#define RTF_UP_ 0x1u
#define RTF_GATEWAY_ 0x2u
#define LINE_MAX_ 512
#define ROUTE_FILE_MAX 65536

/* Copies the next line of @text (from *@off) into @line; returns 0 at the
 * end. Over-long lines are cut (they are never default routes). */
static int next_line(const char *text, size_t textlen, size_t *off,
                     char line[LINE_MAX_]) {
  size_t n = 0;

  if (*off >= textlen)
    return 0;
  while (*off < textlen && text[*off] != '\n') {
    if (n < LINE_MAX_ - 1)
      line[n++] = text[*off];
    (*off)++;
  }
  if (*off < textlen)
    (*off)++;
  line[n] = '\0';
  return 1;
}

static void set_ifname(char *ifname, size_t ifnamelen, const char *s) {
  if (ifname && ifnamelen) {
    strncpy(ifname, s, ifnamelen - 1);
    ifname[ifnamelen - 1] = '\0';
  }
}

int gateway_parse_ipv4(const char *text, size_t textlen, uint8_t gw[4],
                       char *ifname, size_t ifnamelen) {
  char line[LINE_MAX_], iface[32];
  uint32_t dst, via, flags, mask, metric, best = UINT32_MAX;
  unsigned refcnt, use;
  size_t off = 0;
  int found = 0;

  /* The header line. */
  if (!next_line(text, textlen, &off, line))
    return -ENOENT;
  while (next_line(text, textlen, &off, line)) {
    if (sscanf(line,
               "%31s %" SCNx32 " %" SCNx32 " %" SCNx32 " %u %u %" SCNu32
               " %" SCNx32,
               iface, &dst, &via, &flags, &refcnt, &use, &metric, &mask) != 8)
      continue;
    if (dst != 0 || mask != 0 || via == 0 ||
        (flags & (RTF_UP_ | RTF_GATEWAY_)) != (RTF_UP_ | RTF_GATEWAY_))
      continue;
    if (found && metric >= best)
      continue;
    /* The value's bytes in memory are the address in network order. */
    memcpy(gw, &via, 4);
    set_ifname(ifname, ifnamelen, iface);
    best = metric;
    found = 1;
  }
  return found ? 0 : -ENOENT;
}

static int hex16(uint8_t out[16], const char *s) {
  unsigned v;
  int i;

  if (strlen(s) != 32)
    return -1;
  for (i = 0; i < 16; i++) {
    if (sscanf(s + 2 * i, "%2x", &v) != 1)
      return -1;
    out[i] = (uint8_t)v;
  }
  return 0;
}

int gateway_parse_ipv6(const char *text, size_t textlen, uint8_t gw[16],
                       char *ifname, size_t ifnamelen) {
  static const uint8_t zero[16];
  char line[LINE_MAX_], dsts[40], srcs[40], vias[40], iface[32];
  uint8_t dst[16], via[16];
  uint32_t metric, flags, best = UINT32_MAX;
  unsigned dplen, splen, refcnt, use;
  size_t off = 0;
  int found = 0;

  while (next_line(text, textlen, &off, line)) {
    if (sscanf(line, "%39s %x %39s %x %39s %" SCNx32 " %x %x %" SCNx32 " %31s",
               dsts, &dplen, srcs, &splen, vias, &metric, &refcnt, &use, &flags,
               iface) != 10)
      continue;
    if (hex16(dst, dsts) < 0 || hex16(via, vias) < 0)
      continue;
    if (dplen != 0 || memcmp(dst, zero, 16) != 0 ||
        memcmp(via, zero, 16) == 0 ||
        (flags & (RTF_UP_ | RTF_GATEWAY_)) != (RTF_UP_ | RTF_GATEWAY_))
      continue;
    if (found && metric >= best)
      continue;
    memcpy(gw, via, 16);
    set_ifname(ifname, ifnamelen, iface);
    best = metric;
    found = 1;
  }
  return found ? 0 : -ENOENT;
}

int gateway_find(int ipv6, uint8_t *gw, char *ifname, size_t ifnamelen) {
  size_t len = 0;
  char *buf;
  ssize_t n;
  int fd, ret;

  fd = open(ipv6 ? "/proc/net/ipv6_route" : "/proc/net/route",
            O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return -errno;
  buf = malloc(ROUTE_FILE_MAX);
  if (!buf) {
    close(fd);
    return -ENOMEM;
  }
  /* A routing table larger than the buffer is cut: its default routes
   * come first in practice. */
  while (len < ROUTE_FILE_MAX &&
         (n = read(fd, buf + len, ROUTE_FILE_MAX - len)) != 0) {
    if (n < 0) {
      if (errno == EINTR)
        continue;
      ret = -errno;
      goto out;
    }
    len += (size_t)n;
  }
  ret = ipv6 ? gateway_parse_ipv6(buf, len, gw, ifname, ifnamelen)
             : gateway_parse_ipv4(buf, len, gw, ifname, ifnamelen);
out:
  close(fd);
  free(buf);
  return ret;
}
