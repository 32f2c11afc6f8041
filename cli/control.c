/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "control.h"
#include "log.h"

/* A client gets this long to send its line and read the reply. */
#define CLIENT_TIMEOUT_NS (5ULL * 1000000000ULL)

struct client {
  int fd;
  char in[CONTROL_MAX_CMD];
  size_t inlen;
  struct sbuf out;
  size_t outoff;
  int writing;
  uint64_t deadline;
  int pfd; /* index in the last control_pollfds() output, or -1 */
};

struct control {
  int fd;
  int listen_pfd;
  char *path;
  control_handler handler;
  void *user_data;
  struct client clients[CONTROL_MAX_CLIENTS];
  size_t nclients;
};

static int mkdir_parents(const char *path) {
  char *copy = strdup(path), *dir;
  int rc = 0;

  if (!copy)
    return -ENOMEM;
  dir = dirname(copy);
  if (strcmp(dir, "/") && strcmp(dir, ".")) {
    rc = mkdir_parents(dir);
    if (!rc && mkdir(dir, 0755) < 0 && errno != EEXIST)
      rc = -errno;
  }
  free(copy);
  return rc;
}

static int fill_sun(struct sockaddr_un *sun, const char *path) {
  memset(sun, 0, sizeof(*sun));
  sun->sun_family = AF_UNIX;
  if (strlen(path) >= sizeof(sun->sun_path))
    return -ENAMETOOLONG;
  strcpy(sun->sun_path, path);
  return 0;
}

int control_open(struct control **pc, const char *path, control_handler h,
                 void *user_data) {
  struct sockaddr_un sun;
  struct control *c = NULL;
  mode_t old;
  int fd = -1, probe, rc;

  *pc = NULL;
  rc = fill_sun(&sun, path);
  if (rc)
    return rc;
  rc = mkdir_parents(path);
  if (rc)
    return rc;

  /* Tell a live daemon's socket from a stale one left by a crash. */
  probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (probe >= 0) {
    int live = connect(probe, (struct sockaddr *)&sun, sizeof(sun)) == 0;

    close(probe);
    if (live)
      return -EADDRINUSE;
  }
  if (unlink(path) < 0 && errno != ENOENT)
    return -errno;

  fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0)
    return -errno;
  /* Created 0600 from the start: no window where others could connect. */
  old = umask(0177);
  rc = bind(fd, (struct sockaddr *)&sun, sizeof(sun));
  umask(old);
  if (rc < 0 || listen(fd, CONTROL_MAX_CLIENTS) < 0) {
    rc = -errno;
    goto fail;
  }
  c = calloc(1, sizeof(*c));
  if (!c || !(c->path = strdup(path))) {
    rc = -ENOMEM;
    goto fail;
  }
  c->fd = fd;
  c->handler = h;
  c->user_data = user_data;
  c->listen_pfd = -1;
  *pc = c;
  return 0;
fail:
  if (c)
    free(c->path);
  free(c);
  close(fd);
  unlink(path);
  return rc;
}

static void client_drop(struct control *c, size_t i) {
  close(c->clients[i].fd);
  sb_free(&c->clients[i].out);
  c->clients[i] = c->clients[--c->nclients];
}

int control_fd(const struct control *c) {
  return c->fd;
}

size_t control_pollfds(struct control *c, struct pollfd *pfds, size_t max) {
  size_t n = 0;

  c->listen_pfd = -1;
  if (c->nclients < CONTROL_MAX_CLIENTS && n < max) {
    pfds[n] = (struct pollfd){.fd = c->fd, .events = POLLIN};
    c->listen_pfd = (int)n++;
  }
  for (size_t i = 0; i < c->nclients; i++) {
    struct client *cl = &c->clients[i];

    cl->pfd = -1;
    if (n == max)
      continue;
    pfds[n] =
        (struct pollfd){.fd = cl->fd, .events = cl->writing ? POLLOUT : POLLIN};
    cl->pfd = (int)n++;
  }
  return n;
}

static void client_read(struct control *c, struct client *cl) {
  ssize_t r;
  char *nl;

  r = recv(cl->fd, cl->in + cl->inlen, sizeof(cl->in) - 1 - cl->inlen, 0);
  if (r < 0 && (errno == EAGAIN || errno == EINTR))
    return;
  if (r <= 0) {
    cl->deadline = 0; /* closed before a full line: drop */
    return;
  }
  cl->inlen += (size_t)r;
  cl->in[cl->inlen] = '\0';
  nl = strchr(cl->in, '\n');
  if (!nl) {
    if (cl->inlen == sizeof(cl->in) - 1)
      cl->deadline = 0; /* no newline within the limit */
    return;
  }
  *nl = '\0';
  if (nl > cl->in && nl[-1] == '\r')
    nl[-1] = '\0';
  c->handler(c->user_data, cl->in, &cl->out);
  cl->writing = 1;
  cl->outoff = 0;
  /* The reply is complete: stop reading, the client reads until EOF. */
  shutdown(cl->fd, SHUT_RD);
}

static void client_write(struct client *cl) {
  ssize_t w;

  if (cl->out.oom) {
    cl->deadline = 0;
    return;
  }
  while (cl->outoff < cl->out.len) {
    w = send(cl->fd, cl->out.p + cl->outoff, cl->out.len - cl->outoff,
             MSG_NOSIGNAL);
    if (w < 0 && errno == EINTR)
      continue;
    if (w < 0 && errno == EAGAIN)
      return;
    if (w < 0) {
      cl->deadline = 0;
      return;
    }
    cl->outoff += (size_t)w;
  }
  cl->deadline = 0; /* all written: close, the client sees EOF */
}

void control_handle(struct control *c, const struct pollfd *pfds, size_t n,
                    uint64_t now) {
  for (size_t i = 0; i < c->nclients; i++) {
    struct client *cl = &c->clients[i];
    short ev;

    if (cl->pfd < 0 || (size_t)cl->pfd >= n)
      continue;
    ev = pfds[cl->pfd].revents;
    if (!cl->writing && (ev & (POLLIN | POLLHUP | POLLERR)))
      client_read(c, cl);
    else if (cl->writing && (ev & (POLLOUT | POLLHUP | POLLERR)))
      client_write(cl);
    if (cl->writing && cl->deadline)
      client_write(cl); /* a short reply usually goes out at once */
  }
  for (size_t i = 0; i < c->nclients;) {
    if (c->clients[i].deadline <= now)
      client_drop(c, i);
    else
      i++;
  }
  if (c->listen_pfd >= 0 && (size_t)c->listen_pfd < n &&
      (pfds[c->listen_pfd].revents & POLLIN)) {
    while (c->nclients < CONTROL_MAX_CLIENTS) {
      int fd = accept4(c->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
      struct client *cl;

      if (fd < 0) {
        if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED)
          log_debug("control socket: accept: %s", strerror(errno));
        break;
      }
      cl = &c->clients[c->nclients++];
      memset(cl, 0, sizeof(*cl));
      cl->fd = fd;
      cl->pfd = -1;
      cl->deadline = now + CLIENT_TIMEOUT_NS;
    }
  }
}

uint64_t control_expiry(const struct control *c) {
  uint64_t e = UINT64_MAX;

  for (size_t i = 0; i < c->nclients; i++)
    if (c->clients[i].deadline < e)
      e = c->clients[i].deadline;
  return e;
}

void control_close(struct control *c) {
  if (!c)
    return;
  while (c->nclients)
    client_drop(c, 0);
  close(c->fd);
  unlink(c->path);
  free(c->path);
  free(c);
}

int control_query(const char *path, const char *cmd, struct sbuf *reply) {
  struct timeval tv = {.tv_sec = 10};
  struct sockaddr_un sun;
  char buf[4096];
  size_t len = strlen(cmd), off = 0;
  int fd, rc;

  rc = fill_sun(&sun, path);
  if (rc)
    return rc;
  fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return -errno;
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
  if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
    rc = -errno;
    goto out;
  }
  while (off < len + 1) {
    /* cmd followed by its newline */
    const char *p = off < len ? cmd + off : "\n";
    size_t n = off < len ? len - off : 1;
    ssize_t w = send(fd, p, n, MSG_NOSIGNAL);

    if (w < 0 && errno == EINTR)
      continue;
    if (w < 0) {
      rc = -errno;
      goto out;
    }
    off += (size_t)w;
  }
  for (;;) {
    ssize_t r = recv(fd, buf, sizeof(buf), 0);

    if (r < 0 && errno == EINTR)
      continue;
    if (r < 0) {
      rc = errno == EAGAIN ? -ETIMEDOUT : -errno;
      goto out;
    }
    if (r == 0)
      break;
    sb_putn(reply, buf, (size_t)r);
  }
  rc = reply->oom ? -ENOMEM : 0;
out:
  close(fd);
  return rc;
}
