/* SPDX-License-Identifier: MIT */
/*
 * bench_wake: what one wake-up of an idle process costs on this machine,
 * the floor under the daemon's idle CPU. The process sleeps in epoll_wait()
 * on an empty set and wakes at each timeout, doing nothing else; the
 * scheduler's own account (/proc/self/schedstat: nanoseconds on a CPU, and
 * how many times the thread was put on one) gives the cost per wake-up, and
 * from it how many wake-ups a minute an idle budget allows.
 *
 *   bench_wake [wake-ups per interval, default 50]
 *
 * Linux only (schedstat); prints one line per sleep interval.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <unistd.h>

/* The idle budget the figures are set against, CPU seconds per hour. */
#define BUDGET_S_PER_H 0.15

static int schedstat(uint64_t *ns, uint64_t *runs) {
  unsigned long long a, b, c;
  FILE *f = fopen("/proc/self/schedstat", "r");
  int ok;

  if (!f)
    return -1;
  ok = fscanf(f, "%llu %llu %llu", &a, &b, &c) == 3;
  fclose(f);
  if (!ok)
    return -1;
  *ns = a;
  *runs = c;
  return 0;
}

int main(int argc, char **argv) {
  static const int intervals_ms[] = {10, 200, 1000};
  long n = argc > 1 ? strtol(argv[1], NULL, 10) : 50;
  struct epoll_event ev;
  size_t k;
  int ep;

  if (n <= 0) {
    fprintf(stderr, "usage: bench_wake [wake-ups per interval]\n");
    return 2;
  }
  ep = epoll_create1(0);
  if (ep < 0) {
    perror("epoll_create1");
    return 1;
  }
  for (k = 0; k < sizeof(intervals_ms) / sizeof(intervals_ms[0]); k++) {
    uint64_t ns0, runs0, ns1, runs1;
    double us;
    long i;

    if (schedstat(&ns0, &runs0) != 0) {
      fprintf(stderr, "bench_wake: /proc/self/schedstat unreadable\n");
      return 77;
    }
    for (i = 0; i < n; i++)
      if (epoll_wait(ep, &ev, 1, intervals_ms[k]) < 0) {
        perror("epoll_wait");
        return 1;
      }
    if (schedstat(&ns1, &runs1) != 0 || runs1 == runs0)
      return 1;
    us = (double)(ns1 - ns0) / 1e3 / (double)(runs1 - runs0);
    printf("sleeping %4d ms: %" PRIu64 " wake-ups, %.1f us of CPU each; "
           "%.2f CPU-s/h allows %.0f wake-ups a minute\n",
           intervals_ms[k], runs1 - runs0, us, BUDGET_S_PER_H,
           BUDGET_S_PER_H * 1e6 / 60.0 / us);
  }
  close(ep);
  return 0;
}
