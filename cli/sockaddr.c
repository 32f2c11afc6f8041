/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <netinet/in.h>
#include <string.h>

#include "sockaddr.h"

int sockaddr_to_wgam(wgam_addr *a, const struct sockaddr *sa, socklen_t salen) {
  memset(a, 0, sizeof(*a));
  if (salen >= sizeof(struct sockaddr_in) && sa->sa_family == AF_INET) {
    struct sockaddr_in in;

    memcpy(&in, sa, sizeof(in));
    a->family = WGAM_AF_INET;
    a->port = ntohs(in.sin_port);
    memcpy(a->ip, &in.sin_addr, 4);
    return 0;
  }
  if (salen >= sizeof(struct sockaddr_in6) && sa->sa_family == AF_INET6) {
    struct sockaddr_in6 in6;

    memcpy(&in6, sa, sizeof(in6));
    a->family = WGAM_AF_INET6;
    a->port = ntohs(in6.sin6_port);
    memcpy(a->ip, &in6.sin6_addr, 16);
    return 0;
  }
  return -EAFNOSUPPORT;
}

socklen_t wgam_to_sockaddr(struct sockaddr_storage *ss, const wgam_addr *a) {
  memset(ss, 0, sizeof(*ss));
  if (a->family == WGAM_AF_INET) {
    struct sockaddr_in *in = (struct sockaddr_in *)ss;

    in->sin_family = AF_INET;
    in->sin_port = htons(a->port);
    memcpy(&in->sin_addr, a->ip, 4);
    return sizeof(*in);
  }
  if (a->family == WGAM_AF_INET6) {
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;

    in6->sin6_family = AF_INET6;
    in6->sin6_port = htons(a->port);
    memcpy(&in6->sin6_addr, a->ip, 16);
    return sizeof(*in6);
  }
  return 0;
}
