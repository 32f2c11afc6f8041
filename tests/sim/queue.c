/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "queue.h"

#define MASK (EVQ_NBUCKETS - 1)
#define WORDS (EVQ_NBUCKETS / 64)

static int ev_less(const struct sim_ev *x, const struct sim_ev *y) {
  return x->t < y->t || (x->t == y->t && x->seq < y->seq);
}

/* ---------------------------------------------------------------------- */
/* Small heaps                                                            */
/* ---------------------------------------------------------------------- */

static int heap_push(struct evheap *h, const struct sim_ev *ev) {
  size_t i;

  if (h->n == h->cap) {
    size_t cap = h->cap ? h->cap * 2 : 256;
    struct sim_ev *v = realloc(h->v, cap * sizeof(*v));

    if (!v)
      return -ENOMEM;
    h->v = v;
    h->cap = cap;
  }
  i = h->n++;
  while (i > 0) {
    size_t parent = (i - 1) / 2;

    if (!ev_less(ev, &h->v[parent]))
      break;
    h->v[i] = h->v[parent];
    i = parent;
  }
  h->v[i] = *ev;
  return 0;
}

static void heap_pop(struct evheap *h, struct sim_ev *ev) {
  struct sim_ev last;
  size_t i = 0;

  *ev = h->v[0];
  last = h->v[--h->n];
  for (;;) {
    size_t c = 2 * i + 1;

    if (c >= h->n)
      break;
    if (c + 1 < h->n && ev_less(&h->v[c + 1], &h->v[c]))
      c++;
    if (!ev_less(&h->v[c], &last))
      break;
    h->v[i] = h->v[c];
    i = c;
  }
  if (h->n > 0)
    h->v[i] = last;
}

/* ---------------------------------------------------------------------- */
/* Buckets                                                                */
/* ---------------------------------------------------------------------- */

static int bucket_add(struct evq *q, uint64_t bk, const struct sim_ev *ev) {
  struct evbucket *b = &q->b[bk & MASK];
  struct evchunk *c = b->tail;

  if (!c || c->n == EVQ_CHUNK) {
    struct evchunk *nc = q->free;

    if (nc)
      q->free = nc->next;
    else if (!(nc = malloc(sizeof(*nc))))
      return -ENOMEM;
    nc->next = NULL;
    nc->n = 0;
    if (c)
      c->next = nc;
    else
      b->head = nc;
    b->tail = c = nc;
    q->nonempty[(bk & MASK) / 64] |= 1ULL << (bk & 63);
  }
  c->ev[c->n++] = *ev;
  q->nbucketed++;
  return 0;
}

/* Bucket @bk, the next one in the window that holds events, becomes the
 * run. Its events are in sequence order (everything scheduled into it came
 * after what the far heap handed over), so a stable sort on the time
 * within the bucket puts them in (t, seq) order. */
static int load_bucket(struct evq *q, uint64_t bk) {
  struct evbucket *b = &q->b[bk & MASK];
  struct evchunk *c, *next;
  size_t n = 0;

  for (c = b->head; c; c = c->next)
    n += c->n;
  if (n > q->runcap) {
    size_t cap = q->runcap ? q->runcap : 256;
    struct sim_ev *run, *tmp;

    while (cap < n)
      cap *= 2;
    run = realloc(q->run, cap * sizeof(*run));
    if (!run)
      return -ENOMEM;
    q->run = run;
    tmp = realloc(q->tmp, cap * sizeof(*tmp));
    if (!tmp)
      return -ENOMEM;
    q->tmp = tmp;
    q->runcap = cap;
  }
  n = 0;
  for (c = b->head; c; c = next) {
    next = c->next;
    memcpy(&q->run[n], c->ev, c->n * sizeof(c->ev[0]));
    n += c->n;
    c->next = q->free;
    q->free = c;
  }
  b->head = b->tail = NULL;
  q->nonempty[(bk & MASK) / 64] &= ~(1ULL << (bk & 63));
  q->nbucketed -= n;
  q->nrun = n;
  q->pos = 0;

  if (n <= 32) {
    /* Insertion sort, stable. */
    for (size_t i = 1; i < n; i++) {
      struct sim_ev e = q->run[i];
      size_t j = i;

      while (j > 0 && e.t < q->run[j - 1].t) {
        q->run[j] = q->run[j - 1];
        j--;
      }
      q->run[j] = e;
    }
  } else {
    /* Two stable counting passes on the EVQ_SHIFT low bits of the time. */
    struct sim_ev *src = q->run, *dst = q->tmp;

    for (int shift = 0; shift < EVQ_SHIFT; shift += 8) {
      size_t cnt[256] = {0}, sum = 0;

      for (size_t i = 0; i < n; i++)
        cnt[(src[i].t >> shift) & 0xff]++;
      for (size_t k = 0; k < 256; k++) {
        size_t c0 = cnt[k];

        cnt[k] = sum;
        sum += c0;
      }
      for (size_t i = 0; i < n; i++)
        dst[cnt[(src[i].t >> shift) & 0xff]++] = src[i];
      src = dst;
      dst = src == q->run ? q->tmp : q->run;
    }
    if (src != q->run) {
      q->tmp = q->run;
      q->run = src;
    }
  }
  return 0;
}

/* The first bucket after cur holding events, in the window or the far heap;
 * UINT64_MAX if the queue is empty. */
static uint64_t next_bucket(const struct evq *q) {
  uint64_t best = UINT64_MAX;

  if (q->nbucketed) {
    size_t start = (size_t)((q->cur + 1) & MASK);

    for (size_t k = 0; k <= WORDS; k++) {
      size_t w = (start / 64 + k) % WORDS;
      uint64_t bits = q->nonempty[w];

      if (k == 0)
        bits &= ~0ULL << (start & 63);
      else if (k == WORDS)
        bits &= (start & 63) ? ~(~0ULL << (start & 63)) : 0;
      if (bits) {
        size_t slot = w * 64 + (size_t)__builtin_ctzll(bits);

        best = q->cur + 1 + ((slot - start) & MASK);
        break;
      }
    }
  }
  if (q->far.n && (q->far.v[0].t >> EVQ_SHIFT) < best)
    best = q->far.v[0].t >> EVQ_SHIFT;
  return best;
}

static int advance(struct evq *q) {
  uint64_t bk = next_bucket(q);

  if (bk == UINT64_MAX)
    return 0;
  q->cur = bk;
  /* The window now reaches further: take in what the far heap holds for
   * it, in (t, seq) order. */
  while (q->far.n && (q->far.v[0].t >> EVQ_SHIFT) < bk + EVQ_NBUCKETS) {
    struct sim_ev ev;

    heap_pop(&q->far, &ev);
    if (bucket_add(q, ev.t >> EVQ_SHIFT, &ev))
      return -ENOMEM;
  }
  if (load_bucket(q, bk))
    return -ENOMEM;
  return 1;
}

/* ---------------------------------------------------------------------- */
/* Interface                                                              */
/* ---------------------------------------------------------------------- */

int evq_push(struct evq *q, uint64_t t, uint32_t kind, uint32_t a, uint32_t b,
             uint32_t arg) {
  struct sim_ev ev = {t, q->seq, kind, a, b, arg};
  uint64_t bk = t >> EVQ_SHIFT;
  int rc;

  if (!q->b) {
    q->b = calloc(EVQ_NBUCKETS, sizeof(*q->b));
    q->nonempty = calloc(WORDS, sizeof(*q->nonempty));
    if (!q->b || !q->nonempty)
      return -ENOMEM;
  }
  if (bk <= q->cur)
    rc = heap_push(&q->late, &ev);
  else if (bk < q->cur + EVQ_NBUCKETS)
    rc = bucket_add(q, bk, &ev);
  else
    rc = heap_push(&q->far, &ev);
  if (rc)
    return rc;
  q->seq++;
  if (++q->n > q->peak)
    q->peak = q->n;
  return 0;
}

int evq_pop(struct evq *q, struct sim_ev *ev) {
  if (q->n == 0)
    return 0;
  if (q->pos == q->nrun && q->late.n == 0) {
    int rc = advance(q);

    if (rc <= 0)
      return rc < 0 ? rc : 0;
  }
  if (q->late.n &&
      (q->pos == q->nrun || ev_less(&q->late.v[0], &q->run[q->pos])))
    heap_pop(&q->late, ev);
  else
    *ev = q->run[q->pos++];
  q->n--;
  return 1;
}

void evq_free(struct evq *q) {
  struct evchunk *c, *next;

  if (q->b)
    for (size_t i = 0; i < EVQ_NBUCKETS; i++)
      for (c = q->b[i].head; c; c = next) {
        next = c->next;
        free(c);
      }
  for (c = q->free; c; c = next) {
    next = c->next;
    free(c);
  }
  free(q->b);
  free(q->nonempty);
  free(q->run);
  free(q->tmp);
  free(q->late.v);
  free(q->far.v);
  memset(q, 0, sizeof(*q));
}
