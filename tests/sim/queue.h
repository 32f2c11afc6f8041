/* SPDX-License-Identifier: MIT */
/*
 * The simulator's event queue, ordered by (time, sequence number). The
 * sequence number makes events of the same instant run in the order they
 * were scheduled, so a run does not depend on the queue's internals.
 *
 * Almost every event is a packet arriving a few milliseconds after it was
 * sent, and a large mesh keeps millions of them in flight: a binary heap
 * spent most of its time in cache misses, log2(n) per pop. This is a bucket
 * (calendar) queue instead: time is cut into buckets of EVQ_SHIFT bits of
 * nanoseconds; the next EVQ_NBUCKETS buckets hold their events unsorted
 * (in chunks from a shared pool), later events wait in a small heap. The
 * bucket being consumed is sorted once when it is reached; events scheduled
 * into it meanwhile (a timer due now) go to a second small heap.
 */
#ifndef SIM_QUEUE_H
#define SIM_QUEUE_H

#include <stddef.h>
#include <stdint.h>

/* 65.5 us buckets, 4096 of them: a 268 ms horizon, beyond any packet's
 * latency at the default settings. */
#define EVQ_SHIFT 16
#define EVQ_NBUCKETS 4096
#define EVQ_CHUNK 31

struct sim_ev {
  uint64_t t; /* nanoseconds of simulated time */
  uint64_t seq;
  uint32_t kind;
  uint32_t a, b;
  uint32_t arg;
};

struct evchunk {
  struct evchunk *next;
  uint32_t n;
  struct sim_ev ev[EVQ_CHUNK];
};

struct evbucket {
  struct evchunk *head, *tail;
};

/* A binary min-heap on (t, seq). */
struct evheap {
  struct sim_ev *v;
  size_t n, cap;
};

struct evq {
  size_t n; /* events queued */
  uint64_t seq;
  size_t peak;
  uint64_t cur; /* the bucket being consumed (time >> EVQ_SHIFT) */
  /* Its events, sorted; run[pos] is the next. */
  struct sim_ev *run, *tmp;
  size_t nrun, pos, runcap;
  struct evheap late; /* scheduled into bucket cur after it was sorted */
  struct evheap far;  /* beyond the horizon: bucket >= cur + EVQ_NBUCKETS */
  struct evbucket *b; /* EVQ_NBUCKETS, by bucket % EVQ_NBUCKETS */
  uint64_t *nonempty; /* bitmap of b */
  size_t nbucketed;
  struct evchunk *free;
};

/* Returns 0 or -ENOMEM. A zeroed struct evq is an empty queue. */
int evq_push(struct evq *q, uint64_t t, uint32_t kind, uint32_t a, uint32_t b,
             uint32_t arg);
/* Returns 1 and fills *ev with the earliest event, 0 if the queue is empty,
 * -ENOMEM. */
int evq_pop(struct evq *q, struct sim_ev *ev);
/*
 * The event @k places after the next one in the sorted part of the current
 * bucket, or NULL: a hint for prefetching, not necessarily what
 * evq_pop() will return (an event scheduled meanwhile may come first).
 */
static inline const struct sim_ev *evq_ahead(const struct evq *q, size_t k) {
  return q->pos + k < q->nrun ? &q->run[q->pos + k] : NULL;
}
void evq_free(struct evq *q);

#endif /* SIM_QUEUE_H */
