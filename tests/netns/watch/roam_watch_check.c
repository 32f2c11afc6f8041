/* SPDX-License-Identifier: MIT */
/*
 * The roam watch (cli/roam_watch.c) against the kernel: in a network
 * namespace of its own (its loopback only), UDP packets to a "listen port"
 * from known and unknown sources, IPv4 and IPv6, and what the filter lets
 * through. Needs root (CAP_SYS_ADMIN for the namespace, CAP_NET_RAW for
 * the packet socket); exits 77 without it.
 */
#include <errno.h>
#include <net/if.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "roam_watch.h"

#define PORT 51999

static int failures;

#define CHECK(cond, ...)                                                       \
  do {                                                                         \
    if (!(cond)) {                                                             \
      failures++;                                                              \
      fprintf(stderr, "FAIL line %d: ", __LINE__);                             \
      fprintf(stderr, __VA_ARGS__);                                            \
      fputc('\n', stderr);                                                     \
    }                                                                          \
  } while (0)

static wgam_addr v4(uint16_t port) {
  wgam_addr a = {.family = WGAM_AF_INET, .port = port};

  a.ip[0] = 127;
  a.ip[3] = 1;
  return a;
}

static wgam_addr v6(uint16_t port) {
  wgam_addr a = {.family = WGAM_AF_INET6, .port = port};

  a.ip[15] = 1;
  return a;
}

static void lo_up(void) {
  struct ifreq ifr = {0};
  int fd = socket(AF_INET, SOCK_DGRAM, 0);

  strcpy(ifr.ifr_name, "lo");
  if (fd < 0 || ioctl(fd, SIOCGIFFLAGS, &ifr) < 0)
    exit(1);
  ifr.ifr_flags |= IFF_UP;
  if (ioctl(fd, SIOCSIFFLAGS, &ifr) < 0)
    exit(1);
  close(fd);
}

/* One datagram from @from to @to_port on the same loopback address. */
static void send_from(const wgam_addr *from, uint16_t to_port) {
  struct sockaddr_storage ss = {0};
  socklen_t sl;
  int fd, one = 1;

  if (from->family == WGAM_AF_INET) {
    struct sockaddr_in *s = (struct sockaddr_in *)&ss;

    s->sin_family = AF_INET;
    s->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    sl = sizeof(*s);
  } else {
    struct sockaddr_in6 *s = (struct sockaddr_in6 *)&ss;

    s->sin6_family = AF_INET6;
    s->sin6_addr = in6addr_loopback;
    sl = sizeof(*s);
  }
  fd = socket(ss.ss_family, SOCK_DGRAM, 0);
  if (fd < 0)
    exit(1);
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  ((struct sockaddr_in *)&ss)->sin_port = htons(from->port);
  if (bind(fd, (struct sockaddr *)&ss, sl) < 0) {
    perror("bind");
    exit(1);
  }
  ((struct sockaddr_in *)&ss)->sin_port = htons(to_port);
  if (sendto(fd, "x", 1, 0, (struct sockaddr *)&ss, sl) != 1) {
    perror("sendto");
    exit(1);
  }
  close(fd);
}

/* What the watch reports of what came (loopback delivers at once; the
 * wait covers a slow machine). */
static int reported(struct roam_watch *w, int expect) {
  struct pollfd pfd = {.fd = roam_watch_fd(w), .events = POLLIN};
  wgam_addr first;

  poll(&pfd, 1, expect ? 1000 : 100);
  return roam_watch_read(w, &first);
}

int main(void) {
  wgam_device_peer dp[ROAM_WATCH_MAX + 1];
  wgam_device dev = {.listen_port = PORT, .peers = dp, .npeers = 3};
  struct roam_watch *w;
  wgam_addr unknown4 = v4(40003), unknown6 = v6(40004), other = v4(40005);
  wgam_addr late = v4(40006);
  int rc;

  if (geteuid() != 0) {
    puts("SKIP: needs root");
    return 77;
  }
  if (unshare(CLONE_NEWNET) < 0) {
    printf("SKIP: no network namespace: %s\n", strerror(errno));
    return 77;
  }
  lo_up();
  rc = roam_watch_open(&w);
  if (rc) {
    printf("SKIP: no packet socket: %s\n", strerror(-rc));
    return 77;
  }
  memset(dp, 0, sizeof(dp));
  dp[0].endpoint = v4(40001);
  dp[1].endpoint = v6(40002);
  /* dp[2]: a peer without an endpoint */

  /* Nothing passes before the first set. */
  send_from(&unknown4, PORT);
  CHECK(reported(w, 0) == 0, "a packet passed before the filter was set");

  CHECK(roam_watch_set(w, &dev, 0) == 0, "set");
  send_from(&dp[0].endpoint, PORT);
  CHECK(reported(w, 0) == 0, "known IPv4 source reported");
  send_from(&dp[1].endpoint, PORT);
  CHECK(reported(w, 0) == 0, "known IPv6 source reported");
  send_from(&unknown4, PORT + 1);
  CHECK(reported(w, 0) == 0, "a packet to another port reported");
  send_from(&unknown4, PORT);
  CHECK(reported(w, 1) == 1, "unknown IPv4 source not reported");
  send_from(&unknown6, PORT);
  CHECK(reported(w, 1) == 1, "unknown IPv6 source not reported");

  /* A source that became a peer's endpoint is known at the next read; one
   * still unknown is reported once more. */
  dp[2].endpoint = unknown6;
  CHECK(roam_watch_set(w, &dev, 0) == 1, "no second read asked for");
  send_from(&unknown6, PORT);
  CHECK(reported(w, 0) == 0, "a source now known reported");
  send_from(&unknown4, PORT);
  CHECK(reported(w, 1) == 1, "unknown IPv4 source not reported again");
  /* Unknown at two reads in a row: a stranger, filtered from then on. */
  CHECK(roam_watch_set(w, &dev, 0) == 0, "a stranger asked for a read");
  send_from(&unknown4, PORT);
  CHECK(reported(w, 0) == 0, "a stranger reported");
  send_from(&other, PORT);
  CHECK(reported(w, 1) == 1, "a new source after a stranger not reported");

  /* Loopback carries both directions: leaving out its index leaves out
   * every packet. */
  CHECK(roam_watch_set(w, &dev, if_nametoindex("lo")) == 1, "set, skip lo");
  send_from(&other, PORT);
  CHECK(reported(w, 0) == 0, "a packet of the skipped interface reported");

  /* Too many endpoints: nothing passes. */
  for (size_t i = 0; i <= ROAM_WATCH_MAX; i++)
    dp[i].endpoint = v4((uint16_t)(20000 + i));
  dev.npeers = ROAM_WATCH_MAX + 1;
  CHECK(roam_watch_set(w, &dev, 0) == -E2BIG, "no -E2BIG past the limit");
  send_from(&other, PORT);
  CHECK(reported(w, 0) == 0, "a packet passed a full watch");
  /* The most it holds: the last endpoint is still matched. */
  dev.npeers = ROAM_WATCH_MAX;
  CHECK(roam_watch_set(w, &dev, 0) >= 0, "set at the limit");
  send_from(&dp[ROAM_WATCH_MAX - 1].endpoint, PORT);
  CHECK(reported(w, 0) == 0, "the last known endpoint reported");
  send_from(&late, PORT);
  CHECK(reported(w, 1) == 1, "an unknown source not reported at the limit");

  roam_watch_close(w);
  printf("%s\n", failures ? "FAILED" : "roam watch: all checks passed");
  return failures ? 1 : 0;
}
