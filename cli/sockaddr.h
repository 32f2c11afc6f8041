/* SPDX-License-Identifier: MIT */
/*
 * struct sockaddr <-> wgam_addr, in one place: the gossip sockets, the
 * resolver and the netlink backend all convert through these.
 */
#ifndef WGAM_CLI_SOCKADDR_H
#define WGAM_CLI_SOCKADDR_H

#include <sys/socket.h>

#include "wgautomesh.h"

/* Converts an AF_INET or AF_INET6 address of @salen bytes into *@a (port
 * in host order). Returns 0, or -EAFNOSUPPORT (another family, or @salen
 * too short for its family) with *@a of family WGAM_AF_NONE. */
int sockaddr_to_wgam(wgam_addr *a, const struct sockaddr *sa, socklen_t salen);

/* Writes @a as a zeroed sockaddr_in or sockaddr_in6 (port in network
 * order) into *@ss. Returns its exact size, or 0 for WGAM_AF_NONE. */
socklen_t wgam_to_sockaddr(struct sockaddr_storage *ss, const wgam_addr *a);

#endif
