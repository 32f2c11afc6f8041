/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "resolve.h"
#include "sockaddr.h"

struct resolver {
  pthread_t thread;
  pthread_mutex_t lock;
  pthread_cond_t cond;
  int pipefd[2];
  int stop;
  /* Pending job (owned), NULL when none. */
  struct resolve_req *job;
  size_t njob;
  /* Results not yet popped. */
  struct resolve_result *res;
  size_t nres, capres;
};

static void resolve_one(const struct resolve_req *req,
                        struct resolve_result *res) {
  struct addrinfo hints = {.ai_family = AF_UNSPEC,
                           .ai_socktype = SOCK_DGRAM,
                           .ai_flags = AI_ADDRCONFIG};
  struct addrinfo *ai = NULL;
  char port[8];

  memset(res, 0, sizeof(*res));
  memcpy(res->pubkey, req->pubkey, WGAM_KEY_LEN);
  memcpy(res->host, req->host, sizeof(res->host));
  res->port = req->port;
  snprintf(port, sizeof(port), "%u", req->port);
  res->error = getaddrinfo(req->host, port, &hints, &ai);
  if (res->error)
    return;
  for (struct addrinfo *p = ai; p && res->naddrs < WGAM_MAX_ENDPOINTS;
       p = p->ai_next) {
    wgam_addr a;
    int dup = 0;

    if (sockaddr_to_wgam(&a, p->ai_addr, p->ai_addrlen) ||
        !wgam_addr_is_valid_endpoint(&a))
      continue;
    for (size_t i = 0; i < res->naddrs; i++)
      dup |= wgam_addr_equal(&a, &res->addrs[i]);
    if (!dup)
      res->addrs[res->naddrs++] = a;
  }
  freeaddrinfo(ai);
}

static void *worker(void *arg) {
  struct resolver *r = arg;

  pthread_mutex_lock(&r->lock);
  for (;;) {
    struct resolve_req *job;
    size_t njob;

    while (!r->stop && !r->job)
      pthread_cond_wait(&r->cond, &r->lock);
    if (r->stop)
      break;
    job = r->job;
    njob = r->njob;
    r->job = NULL;
    r->njob = 0;
    pthread_mutex_unlock(&r->lock);

    for (size_t i = 0; i < njob; i++) {
      struct resolve_result res;
      char one = 1;

      resolve_one(&job[i], &res);
      pthread_mutex_lock(&r->lock);
      if (r->nres == r->capres) {
        size_t cap = r->capres ? r->capres * 2 : 8;
        struct resolve_result *g = realloc(r->res, cap * sizeof(*g));

        if (!g) {
          pthread_mutex_unlock(&r->lock);
          continue; /* dropped; the next periodic job retries */
        }
        r->res = g;
        r->capres = cap;
      }
      r->res[r->nres++] = res;
      pthread_mutex_unlock(&r->lock);
      /* The pipe is non-blocking: a full pipe already signals readability. */
      if (write(r->pipefd[1], &one, 1) < 0 && errno != EAGAIN)
        break;
    }
    free(job);
    pthread_mutex_lock(&r->lock);
  }
  pthread_mutex_unlock(&r->lock);
  return NULL;
}

int resolver_new(struct resolver **pr) {
  struct resolver *r;
  int rc;

  *pr = NULL;
  r = calloc(1, sizeof(*r));
  if (!r)
    return -ENOMEM;
  pthread_mutex_init(&r->lock, NULL);
  pthread_cond_init(&r->cond, NULL);
  if (pipe2(r->pipefd, O_CLOEXEC | O_NONBLOCK) < 0) {
    rc = -errno;
    goto fail;
  }
  rc = pthread_create(&r->thread, NULL, worker, r);
  if (rc) {
    rc = -rc;
    close(r->pipefd[0]);
    close(r->pipefd[1]);
    goto fail;
  }
  *pr = r;
  return 0;
fail:
  pthread_cond_destroy(&r->cond);
  pthread_mutex_destroy(&r->lock);
  free(r);
  return rc;
}

int resolver_fd(const struct resolver *r) {
  return r->pipefd[0];
}

int resolver_submit(struct resolver *r, const struct resolve_req *reqs,
                    size_t n) {
  struct resolve_req *copy = NULL;

  if (n) {
    copy = malloc(n * sizeof(*copy));
    if (!copy)
      return -ENOMEM;
    memcpy(copy, reqs, n * sizeof(*copy));
  }
  pthread_mutex_lock(&r->lock);
  free(r->job);
  r->job = copy;
  r->njob = n;
  pthread_cond_signal(&r->cond);
  pthread_mutex_unlock(&r->lock);
  return 0;
}

int resolver_next(struct resolver *r, struct resolve_result *res) {
  char drain[64];
  int got = 0;

  while (read(r->pipefd[0], drain, sizeof(drain)) > 0)
    ;
  pthread_mutex_lock(&r->lock);
  if (r->nres) {
    *res = r->res[0];
    memmove(r->res, r->res + 1, (r->nres - 1) * sizeof(*r->res));
    r->nres--;
    got = 1;
  }
  pthread_mutex_unlock(&r->lock);
  return got;
}

void resolver_free(struct resolver *r) {
  struct timespec deadline;

  if (!r)
    return;
  pthread_mutex_lock(&r->lock);
  r->stop = 1;
  pthread_cond_signal(&r->cond);
  pthread_mutex_unlock(&r->lock);

  /* getaddrinfo() cannot be interrupted: if a lookup hangs, leave the
   * worker (and the object it uses) behind rather than block shutdown. */
  clock_gettime(CLOCK_REALTIME, &deadline);
  deadline.tv_sec += 2;
  if (pthread_timedjoin_np(r->thread, NULL, &deadline) != 0) {
    pthread_detach(r->thread);
    return;
  }
  close(r->pipefd[0]);
  close(r->pipefd[1]);
  free(r->job);
  free(r->res);
  pthread_cond_destroy(&r->cond);
  pthread_mutex_destroy(&r->lock);
  free(r);
}
