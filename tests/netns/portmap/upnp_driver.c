/* SPDX-License-Identifier: MIT */
/*
 * Drives cli/portmap.c the way the daemon does (poll on portmap_fd,
 * portmap_renew, portmap_results, portmap_stop) so the netns scripts can
 * check its effect on a real miniupnpd.
 *
 *   upnp_driver map EXT INT
 *     waits for the mapping, prints "EXTERNAL ip:port" (the IPv4 one) and
 *     "ENDPOINT proto addr lifetime" for each, runs $HOOK_MAPPED, renews,
 *     runs $HOOK_RENEWED, stops (prints "STOP_MS n"), runs $HOOK_STOPPED;
 *     every hook must exit 0.
 *   upnp_driver fail EXT INT SECONDS
 *     runs SECONDS asking for a renewal every 500 ms; expects a "not mapped"
 *     result and never a mapping; prints "RESULTS not_mapped mapped".
 *   upnp_driver watch EXT INT SECONDS
 *     runs SECONDS, printing "RESULT ms n [proto addr lifetime]..." at each
 *     change of the endpoints (ms since start), then stops as map does.
 *
 * $PORTMAP_PROTO limits the protocols ("pcp", "natpmp", "upnp", comma
 * separated; default all); $UPNP_IPV6 asks for the IPv6 pinhole too;
 * $WAIT_MS bounds map's wait for the first mapping (default 20000).
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <arpa/inet.h>

#include "log.h"
#include "portmap.h"

static long long now_ms(void) {
  struct timespec ts;

  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static unsigned protocols(void) {
  const char *s = getenv("PORTMAP_PROTO");
  unsigned m = 0;

  if (!s || !*s)
    return PORTMAP_ALL;
  if (strstr(s, "pcp"))
    m |= PORTMAP_MASK(PORTMAP_PCP);
  if (strstr(s, "natpmp"))
    m |= PORTMAP_MASK(PORTMAP_NATPMP);
  if (strstr(s, "upnp"))
    m |= PORTMAP_MASK(PORTMAP_UPNP) | PORTMAP_MASK(PORTMAP_UPNP_PINHOLE);
  return m;
}

static void print_endpoints(const char *tag, long long ms,
                            const struct portmap_endpoint *eps, int n) {
  char ip[INET6_ADDRSTRLEN];

  printf("%s", tag);
  if (ms >= 0)
    printf(" %lld %d", ms, n);
  for (int i = 0; i < n; i++) {
    inet_ntop(eps[i].addr.family == WGAM_AF_INET ? AF_INET : AF_INET6,
              eps[i].addr.ip, ip, sizeof(ip));
    printf(eps[i].addr.family == WGAM_AF_INET ? " %s %s:%u %u"
                                              : " %s [%s]:%u %u",
           portmap_proto_name(eps[i].proto), ip, eps[i].addr.port,
           eps[i].lifetime);
  }
  printf("\n");
  fflush(stdout);
}

/* Waits up to @ms for a result with an IPv4 endpoint (and an IPv6 one with
 * @want6); returns 1 with *@ext the IPv4 one, or -ETIMEDOUT. */
static int wait_result(portmap *u, int ms, wgam_addr *ext, int want6) {
  long long end = now_ms() + ms;
  struct pollfd pfd = {.fd = portmap_fd(u), .events = POLLIN};
  struct portmap_endpoint eps[PORTMAP_MAX];
  int n, i, has4, has6;

  for (;;) {
    long long left = end - now_ms();

    if (left <= 0)
      return -ETIMEDOUT;
    if (poll(&pfd, 1, (int)left) <= 0)
      continue;
    n = portmap_results(u, eps, PORTMAP_MAX);
    if (n == -EAGAIN)
      continue;
    /* "None yet": the worker retries; wait on. */
    if (n == 0)
      continue;
    has4 = has6 = 0;
    for (i = 0; i < n; i++) {
      if (eps[i].addr.family == WGAM_AF_INET) {
        *ext = eps[i].addr;
        has4 = 1;
      } else {
        has6 = 1;
      }
    }
    if (has4 && (has6 || !want6)) {
      print_endpoints("ENDPOINTS", -1, eps, n);
      return 1;
    }
  }
}

static int hook(const char *name) {
  const char *cmd = getenv(name);
  int r;

  if (!cmd || !*cmd)
    return 0;
  r = system(cmd);
  if (r != 0) {
    fprintf(stderr, "driver: %s failed (%d)\n", name, r);
    return -1;
  }
  return 0;
}

static int run_map(uint16_t ext_port, uint16_t int_port) {
  const char *wait = getenv("WAIT_MS");
  struct portmap_endpoint eps[PORTMAP_MAX];
  int want6 = getenv("UPNP_IPV6") != NULL;
  char ip[INET_ADDRSTRLEN];
  wgam_addr ext;
  long long t0;
  portmap *u;
  int r, ret = 1;

  if (portmap_start_protocols(&u, ext_port, int_port, want6, protocols()) < 0)
    return 1;
  t0 = now_ms();
  r = wait_result(u, wait ? atoi(wait) : 20000, &ext, want6);
  if (r != 1) {
    fprintf(stderr, "driver: no mapping (%d)\n", r);
    goto out;
  }
  printf("MAPPED_MS %lld\n", now_ms() - t0);
  if (ext.family != WGAM_AF_INET || ext.port != ext_port ||
      !inet_ntop(AF_INET, ext.ip, ip, sizeof(ip))) {
    fprintf(stderr, "driver: bad external endpoint\n");
    goto out;
  }
  printf("EXTERNAL %s:%u\n", ip, ext.port);
  fflush(stdout);
  if (hook("HOOK_MAPPED") < 0)
    goto out;
  portmap_renew(u, int_port);
  if (hook("HOOK_RENEWED") < 0)
    goto out;
  /* A renewal of an unchanged mapping posts nothing new. */
  r = portmap_results(u, eps, PORTMAP_MAX);
  if (r != -EAGAIN) {
    fprintf(stderr, "driver: unexpected result after renewal (%d)\n", r);
    goto out;
  }
  ret = 0;
out:
  t0 = now_ms();
  portmap_stop(u);
  printf("STOP_MS %lld\n", now_ms() - t0);
  fflush(stdout);
  if (ret == 0 && hook("HOOK_STOPPED") < 0)
    ret = 1;
  return ret;
}

static int run_watch(uint16_t ext_port, uint16_t int_port, int seconds) {
  struct portmap_endpoint eps[PORTMAP_MAX];
  long long t0 = now_ms(), end = t0 + seconds * 1000LL;
  struct pollfd pfd;
  portmap *u;
  int n;

  if (portmap_start_protocols(&u, ext_port, int_port,
                              getenv("UPNP_IPV6") != NULL, protocols()) < 0)
    return 1;
  pfd.fd = portmap_fd(u);
  pfd.events = POLLIN;
  while (now_ms() < end) {
    long long left = end - now_ms();

    if (poll(&pfd, 1, left > 0 ? (int)left : 0) <= 0)
      continue;
    n = portmap_results(u, eps, PORTMAP_MAX);
    if (n >= 0)
      print_endpoints("RESULT", now_ms() - t0, eps, n);
  }
  t0 = now_ms();
  portmap_stop(u);
  printf("STOP_MS %lld\n", now_ms() - t0);
  fflush(stdout);
  return hook("HOOK_STOPPED") < 0 ? 1 : 0;
}

static int run_fail(uint16_t ext_port, uint16_t int_port, int seconds) {
  struct pollfd pfd;
  long long end, next_renew;
  struct portmap_endpoint eps[PORTMAP_MAX];
  int n0 = 0, n1 = 0, r;
  long long t0;
  portmap *u;

  if (portmap_start_protocols(&u, ext_port, int_port, 0, protocols()) < 0)
    return 1;
  pfd.fd = portmap_fd(u);
  pfd.events = POLLIN;
  end = now_ms() + seconds * 1000LL;
  next_renew = now_ms() + 500;
  while (now_ms() < end) {
    long long t = next_renew < end ? next_renew : end;
    long long left = t - now_ms();

    if (poll(&pfd, 1, left > 0 ? (int)left : 0) > 0) {
      r = portmap_results(u, eps, PORTMAP_MAX);
      if (r == 0)
        n0++;
      else if (r > 0)
        n1++;
    }
    if (now_ms() >= next_renew) {
      portmap_renew(u, int_port);
      next_renew += 500;
    }
  }
  t0 = now_ms();
  portmap_stop(u);
  printf("STOP_MS %lld\n", now_ms() - t0);
  printf("RESULTS %d %d\n", n0, n1);
  fflush(stdout);
  return n0 >= 1 && n1 == 0 ? 0 : 1;
}

int main(int argc, char **argv) {
  const char *lvl = getenv("WGAM_LOG_LEVEL");

  if (lvl && log_level_parse(lvl) >= 0)
    log_level = log_level_parse(lvl);
  if (argc >= 4 && strcmp(argv[1], "map") == 0)
    return run_map((uint16_t)atoi(argv[2]), (uint16_t)atoi(argv[3]));
  if (argc >= 5 && strcmp(argv[1], "fail") == 0)
    return run_fail((uint16_t)atoi(argv[2]), (uint16_t)atoi(argv[3]),
                    atoi(argv[4]));
  if (argc >= 5 && strcmp(argv[1], "watch") == 0)
    return run_watch((uint16_t)atoi(argv[2]), (uint16_t)atoi(argv[3]),
                     atoi(argv[4]));
  fprintf(stderr,
          "usage: %s map EXT INT | fail EXT INT SECONDS | watch EXT INT "
          "SECONDS\n",
          argv[0]);
  return 2;
}
