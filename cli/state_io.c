/* SPDX-License-Identifier: MIT */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "state_io.h"

int state_read(const char *path, uint8_t **data, size_t *len) {
  uint8_t *buf = NULL;
  struct stat st;
  size_t n = 0, cap;
  ssize_t r;
  int fd, rc;

  *data = NULL;
  *len = 0;
  /* O_NONBLOCK: opening a FIFO must not hang us; it is refused below. */
  fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
  if (fd < 0)
    return -errno;
  if (fstat(fd, &st) < 0) {
    rc = -errno;
    goto out;
  }
  if (!S_ISREG(st.st_mode)) {
    rc = -EINVAL;
    goto out;
  }
  if (st.st_size > (off_t)STATE_MAX_FILE) {
    rc = -EFBIG;
    goto out;
  }
  /* Read up to one byte past the limit: the size may change under us. */
  cap = (size_t)st.st_size + 1;
  buf = malloc(cap);
  if (!buf) {
    rc = -ENOMEM;
    goto out;
  }
  for (;;) {
    if (n == cap) {
      uint8_t *g;

      if (cap > STATE_MAX_FILE) {
        rc = -EFBIG;
        goto out;
      }
      cap = cap * 2 > STATE_MAX_FILE + 1 ? STATE_MAX_FILE + 1 : cap * 2;
      g = realloc(buf, cap);
      if (!g) {
        rc = -ENOMEM;
        goto out;
      }
      buf = g;
    }
    r = read(fd, buf + n, cap - n);
    if (r < 0 && errno == EINTR)
      continue;
    if (r < 0) {
      rc = -errno;
      goto out;
    }
    if (r == 0)
      break;
    n += (size_t)r;
  }
  if (n > STATE_MAX_FILE) {
    rc = -EFBIG;
    goto out;
  }
  *data = buf;
  *len = n;
  buf = NULL;
  rc = 0;
out:
  free(buf);
  close(fd);
  return rc;
}

static int write_all(int fd, const uint8_t *p, size_t n) {
  while (n) {
    ssize_t w = write(fd, p, n);

    if (w < 0 && errno == EINTR)
      continue;
    if (w < 0)
      return -errno;
    p += w;
    n -= (size_t)w;
  }
  return 0;
}

int state_write(const char *path, const uint8_t *data, size_t len) {
  char *tmp = NULL, *dircopy = NULL;
  int fd = -1, dfd = -1, rc;

  if (asprintf(&tmp, "%s.tmp.XXXXXX", path) < 0) {
    tmp = NULL;
    rc = -ENOMEM;
    goto out;
  }
  fd = mkostemp(tmp, O_CLOEXEC);
  if (fd < 0) {
    rc = -errno;
    free(tmp);
    tmp = NULL;
    goto out;
  }
  /* It holds peers' addresses: keep it private like the original's. */
  if (fchmod(fd, 0600) < 0) {
    rc = -errno;
    goto out;
  }
  rc = write_all(fd, data, len);
  if (rc)
    goto out;
  if (fsync(fd) < 0) {
    rc = -errno;
    goto out;
  }
  if (close(fd) < 0) {
    fd = -1;
    rc = -errno;
    goto out;
  }
  fd = -1;
  if (rename(tmp, path) < 0) {
    rc = -errno;
    goto out;
  }
  free(tmp);
  tmp = NULL;

  /* Make the rename itself durable. */
  dircopy = strdup(path);
  if (!dircopy) {
    rc = -ENOMEM;
    goto out;
  }
  dfd = open(dirname(dircopy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0 && fsync(dfd) < 0 && errno != EINVAL) {
    rc = -errno;
    goto out;
  }
  rc = 0;
out:
  if (fd >= 0)
    close(fd);
  if (dfd >= 0)
    close(dfd);
  if (tmp) {
    unlink(tmp);
    free(tmp);
  }
  free(dircopy);
  return rc;
}

int state_set_aside(const char *path) {
  char *aside;
  int rc = 0;

  if (asprintf(&aside, "%s.corrupt", path) < 0)
    return -ENOMEM;
  if (rename(path, aside) < 0)
    rc = -errno;
  free(aside);
  return rc;
}

int state_clean_tmp(const char *path) {
  char *dircopy = NULL, *basecopy = NULL, *dir, *base;
  size_t blen;
  struct dirent *e;
  DIR *dp = NULL;
  int rc = 0, dfd;

  dircopy = strdup(path);
  basecopy = strdup(path);
  if (!dircopy || !basecopy) {
    rc = -ENOMEM;
    goto out;
  }
  dir = dirname(dircopy);
  base = basename(basecopy);
  blen = strlen(base);
  dp = opendir(dir);
  if (!dp) {
    rc = -errno;
    goto out;
  }
  dfd = dirfd(dp);
  while ((e = readdir(dp))) {
    /* Exactly what state_write() creates: BASE.tmp. and six characters. */
    if (strncmp(e->d_name, base, blen) != 0 ||
        strncmp(e->d_name + blen, ".tmp.", 5) != 0 ||
        strlen(e->d_name + blen + 5) != 6)
      continue;
    if (unlinkat(dfd, e->d_name, 0) == 0)
      rc++;
  }
out:
  if (dp)
    closedir(dp);
  free(dircopy);
  free(basecopy);
  return rc;
}
