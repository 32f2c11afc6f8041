/* SPDX-License-Identifier: MIT */
#include "traffic.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

void traffic_init(struct traffic *t) {
  t->fd = -1;
  t->tx = 0;
  t->moving = 0;
  t->next = 0;
}

void traffic_close(struct traffic *t) {
  if (t->fd >= 0)
    close(t->fd);
  traffic_init(t);
}

static int read_counter(struct traffic *t, const char *ifname, uint64_t *v) {
  char buf[32];
  ssize_t n;

  if (t->fd < 0) {
    char path[96];

    snprintf(path, sizeof(path), "/sys/class/net/%s/statistics/tx_packets",
             ifname);
    t->fd = open(path, O_RDONLY | O_CLOEXEC);
    if (t->fd < 0)
      return -errno;
  }
  n = pread(t->fd, buf, sizeof(buf) - 1, 0);
  if (n <= 0) {
    /* The interface went away (its sysfs file with it): reopen later. */
    close(t->fd);
    t->fd = -1;
    return n < 0 ? -errno : -ENODEV;
  }
  buf[n] = '\0';
  *v = strtoull(buf, NULL, 10);
  return 0;
}

int traffic_started(struct traffic *t, const char *ifname, wgam_tstamp now) {
  uint64_t tx = 0;
  int moved, started;

  if (now < t->next)
    return 0;
  t->next = now + TRAFFIC_POLL;
  if (read_counter(t, ifname, &tx) != 0) {
    /* Readable at the last poll, not now: the interface went away. */
    int gone = t->tx != 0;

    t->tx = 0;
    t->moving = 0;
    return gone;
  }
  moved = tx != t->tx;
  started = moved && !t->moving && t->tx != 0;
  t->tx = tx;
  t->moving = moved;
  return started;
}
