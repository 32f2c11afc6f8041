/* SPDX-License-Identifier: MIT */
/*
 * Drives cli/upnp.c the way the daemon does (poll on upnp_fd, upnp_renew,
 * upnp_result, upnp_stop) so the netns scripts can check its effect on a real
 * miniupnpd.
 *
 *   upnp_driver map EXT INT
 *     waits for the mapping, prints "EXTERNAL ip:port", runs $HOOK_MAPPED,
 *     renews, runs $HOOK_RENEWED, stops (prints "STOP_MS n"), runs
 *     $HOOK_STOPPED; every hook must exit 0.
 *   upnp_driver fail EXT INT SECONDS
 *     runs SECONDS asking for a renewal every 500 ms; expects a "not mapped"
 *     result and never a mapping; prints "RESULTS not_mapped mapped".
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <arpa/inet.h>

#include "log.h"
#include "upnp.h"

static long long now_ms(void) {
  struct timespec ts;

  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Waits up to @ms for a result; returns it, or -ETIMEDOUT. */
static int wait_result(upnp *u, int ms, wgam_addr *ext) {
  long long end = now_ms() + ms;
  struct pollfd pfd = {.fd = upnp_fd(u), .events = POLLIN};
  int r;

  for (;;) {
    long long left = end - now_ms();

    if (left <= 0)
      return -ETIMEDOUT;
    if (poll(&pfd, 1, (int)left) > 0) {
      r = upnp_result(u, ext);
      if (r != -EAGAIN)
        return r;
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
  char ip[INET_ADDRSTRLEN];
  wgam_addr ext;
  long long t0;
  upnp *u;
  int r, ret = 1;

  if (upnp_start(&u, ext_port, int_port, getenv("UPNP_IPV6") != NULL) < 0)
    return 1;
  r = wait_result(u, 20000, &ext);
  if (r != 1) {
    fprintf(stderr, "driver: no mapping (%d)\n", r);
    goto out;
  }
  if (ext.family != WGAM_AF_INET || ext.port != ext_port ||
      !inet_ntop(AF_INET, ext.ip, ip, sizeof(ip))) {
    fprintf(stderr, "driver: bad external endpoint\n");
    goto out;
  }
  printf("EXTERNAL %s:%u\n", ip, ext.port);
  fflush(stdout);
  if (hook("HOOK_MAPPED") < 0)
    goto out;
  upnp_renew(u, int_port);
  if (hook("HOOK_RENEWED") < 0)
    goto out;
  /* A renewal of an unchanged mapping posts nothing new. */
  r = upnp_result(u, &ext);
  if (r != -EAGAIN) {
    fprintf(stderr, "driver: unexpected result after renewal (%d)\n", r);
    goto out;
  }
  ret = 0;
out:
  t0 = now_ms();
  upnp_stop(u);
  printf("STOP_MS %lld\n", now_ms() - t0);
  fflush(stdout);
  if (ret == 0 && hook("HOOK_STOPPED") < 0)
    ret = 1;
  return ret;
}

static int run_fail(uint16_t ext_port, uint16_t int_port, int seconds) {
  struct pollfd pfd;
  long long end, next_renew;
  int n0 = 0, n1 = 0, r;
  wgam_addr ext;
  upnp *u;

  if (upnp_start(&u, ext_port, int_port, 0) < 0)
    return 1;
  pfd.fd = upnp_fd(u);
  pfd.events = POLLIN;
  end = now_ms() + seconds * 1000LL;
  next_renew = now_ms() + 500;
  while (now_ms() < end) {
    long long t = next_renew < end ? next_renew : end;
    long long left = t - now_ms();

    if (poll(&pfd, 1, left > 0 ? (int)left : 0) > 0) {
      r = upnp_result(u, &ext);
      if (r == 0)
        n0++;
      else if (r == 1)
        n1++;
    }
    if (now_ms() >= next_renew) {
      upnp_renew(u, int_port);
      next_renew += 500;
    }
  }
  upnp_stop(u);
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
  fprintf(stderr, "usage: %s map EXT INT | fail EXT INT SECONDS\n", argv[0]);
  return 2;
}
