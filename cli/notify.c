/* SPDX-License-Identifier: MIT */
/*
 * sd_notify: one datagram to the AF_UNIX socket named by $NOTIFY_SOCKET; a
 * leading '@' names an abstract socket.
 */
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "notify.h"

int notify_send(const char *state) {
  const char *path = getenv("NOTIFY_SOCKET");
  struct sockaddr_un sun = {.sun_family = AF_UNIX};
  size_t plen;
  socklen_t slen;
  int fd, rc;

  if (!path || !*path)
    return 0;
  plen = strlen(path);
  if ((path[0] != '/' && path[0] != '@') || plen >= sizeof(sun.sun_path))
    return -EINVAL;
  memcpy(sun.sun_path, path, plen);
  if (path[0] == '@')
    sun.sun_path[0] = '\0';
  slen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + plen +
                     (path[0] == '@' ? 0 : 1));

  fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return -errno;
  rc = sendto(fd, state, strlen(state), MSG_NOSIGNAL, (struct sockaddr *)&sun,
              slen) < 0
           ? -errno
           : 1;
  close(fd);
  return rc;
}
