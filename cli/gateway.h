/* SPDX-License-Identifier: MIT */
/*
 * The default gateway, from the kernel's routing table as /proc shows it:
 * where PCP and NAT-PMP requests go. The parsers take the file's text so
 * they are unit-tested without /proc.
 */
#ifndef WGAM_CLI_GATEWAY_H
#define WGAM_CLI_GATEWAY_H

#include <stddef.h>
#include <stdint.h>

/*
 * Finds the IPv4 default route with the lowest metric in @text, the
 * contents of /proc/net/route. Fills @gw (network order) and, if @ifname is
 * not NULL, its interface (@ifnamelen bytes, NUL-terminated).
 *
 * Returns 0, or -ENOENT (no default route through a gateway).
 */
int gateway_parse_ipv4(const char *text, size_t textlen, uint8_t gw[4],
                       char *ifname, size_t ifnamelen);

/* The same for IPv6 from the contents of /proc/net/ipv6_route. */
int gateway_parse_ipv6(const char *text, size_t textlen, uint8_t gw[16],
                       char *ifname, size_t ifnamelen);

/*
 * Reads /proc/net/route (or /proc/net/ipv6_route when @ipv6) of the current
 * network namespace and parses it as above.
 *
 * Returns 0, -ENOENT, or -errno from reading the file.
 */
int gateway_find(int ipv6, uint8_t *gw, char *ifname, size_t ifnamelen);

#endif
