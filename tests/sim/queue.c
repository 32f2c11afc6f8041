/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <stdlib.h>

#include "queue.h"

static int ev_less(const struct sim_ev *x, const struct sim_ev *y) {
  return x->t < y->t || (x->t == y->t && x->seq < y->seq);
}

int evq_push(struct evq *q, uint64_t t, uint32_t kind, uint32_t a, uint32_t b,
             uint32_t arg) {
  struct sim_ev ev = {t, q->seq++, kind, a, b, arg};
  size_t i;

  if (q->n == q->cap) {
    size_t cap = q->cap ? q->cap * 2 : 4096;
    struct sim_ev *v = realloc(q->v, cap * sizeof(*v));

    if (!v)
      return -ENOMEM;
    q->v = v;
    q->cap = cap;
  }
  i = q->n++;
  while (i > 0) {
    size_t parent = (i - 1) / 2;

    if (!ev_less(&ev, &q->v[parent]))
      break;
    q->v[i] = q->v[parent];
    i = parent;
  }
  q->v[i] = ev;
  if (q->n > q->peak)
    q->peak = q->n;
  return 0;
}

int evq_pop(struct evq *q, struct sim_ev *ev) {
  struct sim_ev last;
  size_t i = 0;

  if (q->n == 0)
    return 0;
  *ev = q->v[0];
  last = q->v[--q->n];
  for (;;) {
    size_t c = 2 * i + 1;

    if (c >= q->n)
      break;
    if (c + 1 < q->n && ev_less(&q->v[c + 1], &q->v[c]))
      c++;
    if (!ev_less(&q->v[c], &last))
      break;
    q->v[i] = q->v[c];
    i = c;
  }
  if (q->n > 0)
    q->v[i] = last;
  return 1;
}

void evq_free(struct evq *q) {
  free(q->v);
  q->v = NULL;
  q->n = q->cap = 0;
}
