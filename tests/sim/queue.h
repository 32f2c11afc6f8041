/* SPDX-License-Identifier: MIT */
/*
 * The simulator's event queue: a binary min-heap ordered by (time, sequence
 * number). The sequence number makes events of the same instant run in the
 * order they were scheduled, so a run does not depend on heap internals.
 */
#ifndef SIM_QUEUE_H
#define SIM_QUEUE_H

#include <stddef.h>
#include <stdint.h>

struct sim_ev {
  uint64_t t; /* nanoseconds of simulated time */
  uint64_t seq;
  uint32_t kind;
  uint32_t a, b;
  uint32_t arg;
};

struct evq {
  struct sim_ev *v;
  size_t n, cap;
  uint64_t seq;
  size_t peak;
};

/* Returns 0 or -ENOMEM. */
int evq_push(struct evq *q, uint64_t t, uint32_t kind, uint32_t a, uint32_t b,
             uint32_t arg);
/* Returns 1 and fills *ev with the earliest event, 0 if the queue is empty. */
int evq_pop(struct evq *q, struct sim_ev *ev);
void evq_free(struct evq *q);

#endif /* SIM_QUEUE_H */
