/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "forward.h"
#include "log.h"

const char *forward_procdir = "/proc/sys/net";

void forward_init(struct forward *f) {
  memset(f, 0, sizeof(*f));
}

/* Reads the first byte of a sysctl file: '0', '1', ... Returns 0 or
 * -errno. */
static int sysctl_read(const char *path, char *value) {
  char buf[8];
  ssize_t n;
  int fd = open(path, O_RDONLY | O_CLOEXEC), rc = 0;

  if (fd < 0)
    return -errno;
  n = read(fd, buf, sizeof(buf));
  if (n < 0)
    rc = -errno;
  else if (n == 0 || buf[0] < '0' || buf[0] > '9')
    rc = -EPROTO;
  else
    *value = buf[0];
  close(fd);
  return rc;
}

static int sysctl_write(const char *path, char value) {
  char buf[2] = {value, '\n'};
  int fd = open(path, O_WRONLY | O_CLOEXEC), rc = 0;

  if (fd < 0)
    return -errno;
  if (write(fd, buf, sizeof(buf)) != (ssize_t)sizeof(buf))
    rc = errno ? -errno : -EIO;
  close(fd);
  return rc;
}

static void v4_path(char *dst, size_t n, const char *ifname) {
  snprintf(dst, n, "%s/ipv4/conf/%s/forwarding", forward_procdir, ifname);
}

static int enable_v4(struct forward *f, const char *ifname) {
  char path[256], found;
  int rc;

  v4_path(path, sizeof(path), ifname);
  rc = sysctl_read(path, &found);
  if (!rc && found != '0') {
    log_info("relay: IPv4 forwarding is already on for %s", ifname);
    return 0;
  }
  if (!rc)
    rc = sysctl_write(path, '1');
  if (rc) {
    log_err("relay: cannot turn on net.ipv4.conf.%s.forwarding (%s): %s; "
            "this node does not forward mesh traffic",
            ifname, path, strerror(-rc));
    return rc;
  }
  snprintf(f->ifname, sizeof(f->ifname), "%s", ifname);
  f->saved = found;
  log_info("relay: net.ipv4.conf.%s.forwarding set to 1 (was %c; restored "
           "at exit)",
           ifname, found);
  return 0;
}

static void check_v6(void) {
  char path[256], v;
  int rc;

  snprintf(path, sizeof(path), "%s/ipv6/conf/all/forwarding", forward_procdir);
  rc = sysctl_read(path, &v);
  if (rc)
    log_err("relay: cannot read net.ipv6.conf.all.forwarding (%s): %s; "
            "IPv6 mesh traffic may not be forwarded",
            path, strerror(-rc));
  else if (v == '0')
    log_err("relay: net.ipv6.conf.all.forwarding is 0, so this relay does "
            "not forward IPv6 mesh traffic; set it to 1 (sysctl -w "
            "net.ipv6.conf.all.forwarding=1) if the host may route IPv6 "
            "(wgautomesh does not change a host-wide setting)");
}

int forward_set(struct forward *f, const char *ifname, int relay, int ipv6) {
  int rc = 0;

  relay = relay != 0;
  if (relay && f->relay) {
    char path[256], v;

    /* An interface deleted and created again between two device reads
     * comes back with forwarding off: enable it again (what we found on
     * the old one is what we restore). */
    v4_path(path, sizeof(path), ifname);
    if (sysctl_read(path, &v) == 0 && v == '0') {
      char saved = f->saved;

      forward_forget(f);
      f->relay = 0;
      rc = forward_set(f, ifname, relay, ipv6);
      if (saved)
        f->saved = saved;
      return rc;
    }
    return 0;
  }
  if (relay == f->relay)
    return 0;
  f->relay = relay;
  if (!relay) {
    log_info("no longer a relay");
    forward_restore(f);
    return 0;
  }
  rc = enable_v4(f, ifname);
  if (ipv6)
    check_v6();
  return rc;
}

void forward_restore(struct forward *f) {
  char path[256];
  int rc;

  if (!f->saved)
    return;
  v4_path(path, sizeof(path), f->ifname);
  rc = sysctl_write(path, f->saved);
  if (rc)
    log_warn("relay: cannot restore net.ipv4.conf.%s.forwarding to %c: %s",
             f->ifname, f->saved, strerror(-rc));
  else
    log_info("relay: net.ipv4.conf.%s.forwarding restored to %c", f->ifname,
             f->saved);
  f->saved = '\0';
}

void forward_forget(struct forward *f) {
  f->saved = '\0';
  f->relay = 0;
}
