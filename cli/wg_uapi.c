/* SPDX-License-Identifier: MIT */
/*
 * Userspace WireGuard over the UAPI socket (/var/run/wireguard/IFNAME.sock),
 * the text protocol of wireguard-go and boringtun:
 *   "get=1\n\n"  -> key=value lines, then "errno=N\n\n";
 *   "set=1\n" key=value lines "\n" -> "errno=N\n\n".
 * wireguard-go serves operations on one connection until it is closed, so
 * the connection is kept between operations (a device read every few
 * seconds then costs one send and one receive, not a socket, a connect and
 * a close). An operation that finds the kept connection closed (a
 * restarted wireguard-go, or boringtun, which serves one operation per
 * connection) is sent again on a new one.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include "log.h"
#include "wg_internal.h"
#include "wg_uapi.h"

/* A peer process that stops answering must not hang the daemon's event
 * loop; a large set is given more time, as wireguard-go needs about 0.5 ms to
 * create a peer (it replies only once all are applied). */
#define UAPI_TIMEOUT_SEC 10
#define UAPI_SET_PEERS_PER_SEC 200

/* The public key derived from the last private key seen: a device read
 * does not redo the scalar multiplication while the key is unchanged. */
struct wg_uapi_keycache {
  uint8_t priv[WGAM_KEY_LEN];
  uint8_t pub[WGAM_KEY_LEN];
  int has_pub;
  int valid;
};

struct wg_uapi {
  struct wg_backend b; /* first */
  char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
  /* The peer process rejects update_only (boringtun): learned from a get
   * reply's dialect or from a set failing with EINVAL. */
  int no_update_only;
  int fd;              /* the kept connection, or -1 */
  time_t fd_timeout;   /* its SO_RCVTIMEO/SO_SNDTIMEO in seconds */
  int one_shot;        /* the peer serves one operation per connection */
  unsigned reuse_lost; /* kept connections found closed in a row */
  char *buf;           /* reply buffer, kept between operations */
  size_t cap;
  struct wg_uapi_keycache keys;
};

/* A kept connection found closed this many times in a row, each time
 * replaced by a new one that worked: the peer closes after every
 * operation, stop keeping it. */
#define UAPI_REUSE_LOST_MAX 2

/* Below this, a boringtun handshake "time" is an age in seconds. */
#define BORINGTUN_AGE_MAX 1000000000u

/* ---------------------------------------------------------------------- */
/* Reply parsing                                                          */
/* ---------------------------------------------------------------------- */

static int hexval(char c) {
  if (c >= '0' && c <= '9')
    return c - '0';
  if (c >= 'a' && c <= 'f')
    return c - 'a' + 10;
  if (c >= 'A' && c <= 'F')
    return c - 'A' + 10;
  return -1;
}

static int parse_key(uint8_t key[WGAM_KEY_LEN], const char *v, size_t vlen) {
  size_t i;

  if (vlen != 2 * WGAM_KEY_LEN)
    return -EPROTO;
  for (i = 0; i < WGAM_KEY_LEN; i++) {
    int hi = hexval(v[2 * i]), lo = hexval(v[2 * i + 1]);

    if (hi < 0 || lo < 0)
      return -EPROTO;
    key[i] = (uint8_t)(hi << 4 | lo);
  }
  return 0;
}

/* Strict unsigned decimal: digits only, no sign, no overflow, <= @max. */
static int parse_u64(uint64_t *out, const char *v, size_t vlen, uint64_t max) {
  uint64_t n = 0;
  size_t i;

  if (!vlen || vlen > 20)
    return -EPROTO;
  for (i = 0; i < vlen; i++) {
    unsigned d;

    if (v[i] < '0' || v[i] > '9')
      return -EPROTO;
    d = (unsigned)(v[i] - '0');
    if (n > (UINT64_MAX - d) / 10)
      return -EPROTO;
    n = n * 10 + d;
  }
  if (n > max)
    return -EPROTO;
  *out = n;
  return 0;
}

/* Copies v[0..vlen) into @dst as a C string; fails if it does not fit or
 * holds a NUL (which inet_pton would silently stop at). */
static int cstr(char *dst, size_t dstlen, const char *v, size_t vlen) {
  if (vlen >= dstlen || memchr(v, '\0', vlen))
    return -EPROTO;
  memcpy(dst, v, vlen);
  dst[vlen] = '\0';
  return 0;
}

/* "a.b.c.d" or "v6" (no brackets, no scope) into @a (port untouched). */
static int parse_ip(wgam_addr *a, const char *v, size_t vlen) {
  char s[INET6_ADDRSTRLEN];

  if (cstr(s, sizeof(s), v, vlen) < 0)
    return -EPROTO;
  memset(a->ip, 0, sizeof(a->ip));
  if (memchr(v, ':', vlen)) {
    if (inet_pton(AF_INET6, s, a->ip) != 1)
      return -EPROTO;
    a->family = WGAM_AF_INET6;
  } else {
    if (inet_pton(AF_INET, s, a->ip) != 1)
      return -EPROTO;
    a->family = WGAM_AF_INET;
  }
  return 0;
}

/* "198.51.100.1:51820" or "[2001:db8::1%eth0]:51820". */
static int parse_endpoint(wgam_addr *a, const char *v, size_t vlen) {
  const char *colon, *host = v;
  size_t hostlen;
  uint64_t port;

  memset(a, 0, sizeof(*a));
  if (vlen && v[0] == '[') {
    const char *close = memchr(v, ']', vlen), *pct;

    if (!close || close + 1 >= v + vlen || close[1] != ':')
      return -EPROTO;
    host = v + 1;
    hostlen = (size_t)(close - host);
    /* The scope of a link-local address is not part of wgam_addr. */
    pct = memchr(host, '%', hostlen);
    if (pct)
      hostlen = (size_t)(pct - host);
    if (!memchr(host, ':', hostlen))
      return -EPROTO;
    colon = close + 1;
  } else {
    colon = memchr(v, ':', vlen);
    if (!colon || memchr(colon + 1, ':', vlen - (size_t)(colon + 1 - v)))
      return -EPROTO;
    hostlen = (size_t)(colon - v);
  }
  if (parse_ip(a, host, hostlen) < 0)
    return -EPROTO;
  if (parse_u64(&port, colon + 1, vlen - (size_t)(colon + 1 - v), 65535) < 0)
    return -EPROTO;
  a->port = (uint16_t)port;
  return 0;
}

/* "10.0.0.1/32" or "fd00::1/128". */
static int parse_cidr(wgam_cidr *c, const char *v, size_t vlen) {
  const char *slash = memchr(v, '/', vlen);
  uint64_t plen;

  memset(c, 0, sizeof(*c));
  if (!slash || parse_ip(&c->addr, v, (size_t)(slash - v)) < 0)
    return -EPROTO;
  if (parse_u64(&plen, slash + 1, vlen - (size_t)(slash + 1 - v),
                c->addr.family == WGAM_AF_INET ? 32 : 128) < 0)
    return -EPROTO;
  c->prefixlen = (uint8_t)plen;
  return 0;
}

/* "errno=N": wireguard-go writes a positive N, tolerate a negative one. */
static int parse_errno_value(const char *v, size_t vlen) {
  uint64_t n;

  if (vlen && v[0] == '-') {
    v++;
    vlen--;
  }
  if (parse_u64(&n, v, vlen, 4095) < 0)
    return -EPROTO;
  return -(int)n;
}

static int keyis(const char *k, size_t klen, const char *name) {
  return klen == strlen(name) && !memcmp(k, name, klen);
}

/*
 * Calls @fn for each "key=value" line of @buf until it returns nonzero
 * (returned) or the lines run out (-EPROTO: a complete reply always ends
 * with errno=, which the callbacks stop at).
 */
typedef int (*line_fn)(const char *k, size_t klen, const char *v, size_t vlen,
                       void *arg);

static int for_each_line(const char *buf, size_t len, line_fn fn, void *arg) {
  size_t off = 0;

  while (off < len) {
    const char *line = buf + off, *nl, *eq;
    size_t linelen, max = len - off;
    int ret;

    if (max > WG_UAPI_MAX_LINE + 1)
      max = WG_UAPI_MAX_LINE + 1;
    nl = memchr(line, '\n', max);
    if (!nl)
      return -EPROTO; /* truncated, or a line too long */
    linelen = (size_t)(nl - line);
    off += linelen + 1;
    eq = memchr(line, '=', linelen);
    if (!eq)
      return -EPROTO; /* includes the blank line ending a reply early */
    ret = fn(line, (size_t)(eq - line), eq + 1,
             linelen - (size_t)(eq - line) - 1, arg);
    if (ret)
      return ret;
  }
  return -EPROTO;
}

struct get_ctx {
  struct wg_dev *out;
  wgam_device_peer *peer; /* current peer, NULL before the first */
  int dialect;
  uint64_t unix_now;
  struct wg_uapi_keycache *keys; /* NULL: derive every time */
};

/* The public key of @priv into @out (has_pubkey 0 for a zero or invalid
 * key), from @keys when it holds the same private key. */
static void derive_pubkey(struct wg_dev *out, const uint8_t priv[WGAM_KEY_LEN],
                          struct wg_uapi_keycache *keys) {
  static const uint8_t zero[WGAM_KEY_LEN];

  if (keys && keys->valid && !sodium_memcmp(keys->priv, priv, WGAM_KEY_LEN)) {
    out->dev.has_pubkey = keys->has_pub;
    memcpy(out->dev.pubkey, keys->pub, WGAM_KEY_LEN);
    return;
  }
  out->dev.has_pubkey =
      sodium_memcmp(priv, zero, WGAM_KEY_LEN) != 0 && sodium_init() >= 0 &&
      crypto_scalarmult_curve25519_base(out->dev.pubkey, priv) == 0;
  if (!out->dev.has_pubkey)
    memset(out->dev.pubkey, 0, WGAM_KEY_LEN);
  if (keys) {
    memcpy(keys->priv, priv, WGAM_KEY_LEN);
    memcpy(keys->pub, out->dev.pubkey, WGAM_KEY_LEN);
    keys->has_pub = out->dev.has_pubkey;
    keys->valid = 1;
  }
}

/* Returns 1 at errno=0 (done), 0 to go on, or a negative error. */
static int get_line(const char *k, size_t klen, const char *v, size_t vlen,
                    void *arg) {
  struct get_ctx *ctx = arg;
  wgam_device_peer *p = ctx->peer;
  uint64_t n;
  int ret;

  if (keyis(k, klen, "errno")) {
    ret = parse_errno_value(v, vlen);
    return ret < 0 ? ret : 1;
  }
  if (keyis(k, klen, "private_key")) {
    uint8_t priv[WGAM_KEY_LEN];

    ret = parse_key(priv, v, vlen);
    if (ret == 0)
      derive_pubkey(ctx->out, priv, ctx->keys);
    sodium_memzero(priv, sizeof(priv));
    return ret;
  }
  if (keyis(k, klen, "own_public_key")) {
    static const uint8_t zero[WGAM_KEY_LEN];

    ret = parse_key(ctx->out->dev.pubkey, v, vlen);
    if (ret < 0)
      return ret;
    ctx->out->dev.has_pubkey =
        memcmp(ctx->out->dev.pubkey, zero, WGAM_KEY_LEN) != 0;
    ctx->dialect = WG_UAPI_BORINGTUN;
    return 0;
  }
  if (keyis(k, klen, "listen_port")) {
    ret = parse_u64(&n, v, vlen, 65535);
    if (ret == 0)
      ctx->out->dev.listen_port = (uint16_t)n;
    return ret;
  }
  if (keyis(k, klen, "public_key")) {
    uint8_t key[WGAM_KEY_LEN];

    ret = parse_key(key, v, vlen);
    if (ret < 0)
      return ret;
    ret = wg_dev_add_peer(ctx->out, &ctx->peer);
    if (ret < 0)
      return ret;
    memcpy(ctx->peer->pubkey, key, WGAM_KEY_LEN);
    return 0;
  }
  if (keyis(k, klen, "endpoint")) {
    if (!p)
      return -EPROTO;
    return parse_endpoint(&p->endpoint, v, vlen);
  }
  if (keyis(k, klen, "last_handshake_time_sec")) {
    if (!p)
      return -EPROTO;
    ret = parse_u64(&n, v, vlen, UINT64_MAX);
    if (ret < 0)
      return ret;
    /* boringtun writes own_public_key before any peer, and then the age of
     * the handshake; the line is absent when there was none. */
    if (ctx->dialect == WG_UAPI_BORINGTUN && n < BORINGTUN_AGE_MAX)
      n = ctx->unix_now > n ? ctx->unix_now - n : 1;
    p->last_handshake = n;
    return 0;
  }
  if (keyis(k, klen, "rx_bytes")) {
    if (!p)
      return -EPROTO;
    return parse_u64(&p->rx_bytes, v, vlen, UINT64_MAX);
  }
  if (keyis(k, klen, "tx_bytes")) {
    if (!p)
      return -EPROTO;
    return parse_u64(&p->tx_bytes, v, vlen, UINT64_MAX);
  }
  if (keyis(k, klen, "persistent_keepalive_interval")) {
    if (!p)
      return -EPROTO;
    ret = parse_u64(&n, v, vlen, 65535);
    if (ret == 0)
      p->persistent_keepalive = (uint16_t)n;
    return ret;
  }
  if (keyis(k, klen, "allowed_ip")) {
    wgam_cidr c;

    if (!p)
      return -EPROTO;
    ret = parse_cidr(&c, v, vlen);
    if (ret < 0)
      return ret;
    return wg_dev_add_allowedip(ctx->out, &c);
  }
  /* fwmark, preshared_key, last_handshake_time_nsec, protocol_version and
   * keys of later versions: not needed. */
  return 0;
}

static int parse_get(const char *buf, size_t len, uint64_t unix_now,
                     struct wg_dev *out, int *dialect,
                     struct wg_uapi_keycache *keys) {
  struct get_ctx ctx = {out, NULL, WG_UAPI_WIREGUARD_GO, unix_now, keys};
  int ret;

  wg_dev_reset(out);
  ret = for_each_line(buf, len, get_line, &ctx);
  if (ret < 0) {
    wg_dev_reset(out);
    return ret;
  }
  if (dialect)
    *dialect = ctx.dialect;
  wg_dev_finish(out);
  return 0;
}

int wg_uapi_parse_get_at(const char *buf, size_t len, uint64_t unix_now,
                         struct wg_dev *out, int *dialect) {
  return parse_get(buf, len, unix_now, out, dialect, NULL);
}

int wg_uapi_parse_get(const char *buf, size_t len, struct wg_dev *out) {
  time_t now = time(NULL);

  return wg_uapi_parse_get_at(buf, len, now > 0 ? (uint64_t)now : 0, out, NULL);
}

static int errno_line(const char *k, size_t klen, const char *v, size_t vlen,
                      void *arg) {
  int ret;

  (void)arg;
  if (!keyis(k, klen, "errno"))
    return -EPROTO;
  ret = parse_errno_value(v, vlen);
  return ret < 0 ? ret : 1;
}

int wg_uapi_parse_errno(const char *buf, size_t len) {
  int ret = for_each_line(buf, len, errno_line, NULL);

  return ret < 0 ? ret : 0;
}

/* ---------------------------------------------------------------------- */
/* Set transaction                                                        */
/* ---------------------------------------------------------------------- */

struct sbuf {
  char *p;
  size_t len, cap;
  int err;
};

static void sb_printf(struct sbuf *sb, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void sb_printf(struct sbuf *sb, const char *fmt, ...) {
  va_list ap;
  int n;

  if (sb->err)
    return;
  for (;;) {
    va_start(ap, fmt);
    n = vsnprintf(sb->p + sb->len, sb->cap - sb->len, fmt, ap);
    va_end(ap);
    if (n < 0) {
      sb->err = -EINVAL;
      return;
    }
    if ((size_t)n < sb->cap - sb->len) {
      sb->len += (size_t)n;
      return;
    }
    {
      size_t cap = sb->cap * 2 + (size_t)n + 1;
      char *p = realloc(sb->p, cap);

      if (!p) {
        sb->err = -ENOMEM;
        return;
      }
      sb->p = p;
      sb->cap = cap;
    }
  }
}

static int format_ip(char *dst, size_t dstlen, const wgam_addr *a) {
  int af = a->family == WGAM_AF_INET    ? AF_INET
           : a->family == WGAM_AF_INET6 ? AF_INET6
                                        : -1;

  if (af < 0 || !inet_ntop(af, a->ip, dst, (socklen_t)dstlen))
    return -EINVAL;
  return 0;
}

int wg_uapi_build_set(const wgam_peer_update *upds, size_t n, int update_only,
                      char **pbuf, size_t *plen) {
  struct sbuf sb = {NULL, 0, 0, 0};
  char ip[INET6_ADDRSTRLEN];
  size_t i, j;
  int ret;

  *pbuf = NULL;
  *plen = 0;
  sb.cap = 64 + n * 256;
  sb.p = malloc(sb.cap);
  if (!sb.p)
    return -ENOMEM;
  sb_printf(&sb, "set=1\n");
  for (i = 0; i < n; i++) {
    const wgam_peer_update *u = &upds[i];

    sb_printf(&sb, "public_key=");
    for (j = 0; j < WGAM_KEY_LEN; j++)
      sb_printf(&sb, "%02x", u->pubkey[j]);
    sb_printf(&sb, "\n");
    if (u->flags & WGAM_PEER_REMOVE_ME) {
      sb_printf(&sb, "remove=true\n");
      continue;
    }
    if (update_only && !(u->flags & WGAM_PEER_REPLACE_ALLOWEDIPS))
      sb_printf(&sb, "update_only=true\n");
    if (u->flags & WGAM_PEER_HAS_ENDPOINT) {
      ret = format_ip(ip, sizeof(ip), &u->endpoint);
      if (ret < 0)
        goto out;
      if (u->endpoint.family == WGAM_AF_INET6)
        sb_printf(&sb, "endpoint=[%s]:%u\n", ip, u->endpoint.port);
      else
        sb_printf(&sb, "endpoint=%s:%u\n", ip, u->endpoint.port);
    }
    if (u->flags & WGAM_PEER_HAS_KEEPALIVE)
      sb_printf(&sb, "persistent_keepalive_interval=%u\n",
                u->persistent_keepalive);
    /* Without REPLACE, the allowed IPs are added (moved from whichever
     * peer held them); with it and an empty list, the peer routes nothing. */
    if (u->flags & WGAM_PEER_REPLACE_ALLOWEDIPS)
      sb_printf(&sb, "replace_allowed_ips=true\n");
    if (u->nallowedips > WGAM_MAX_ALLOWEDIPS) {
      ret = -EINVAL;
      goto out;
    }
    for (size_t k = 0; k < u->nallowedips; k++) {
      const wgam_cidr *c = &u->allowedips[k];
      unsigned max = c->addr.family == WGAM_AF_INET ? 32 : 128;

      ret = format_ip(ip, sizeof(ip), &c->addr);
      if (ret < 0 || c->prefixlen > max) {
        ret = -EINVAL;
        goto out;
      }
      sb_printf(&sb, "allowed_ip=%s/%u\n", ip, c->prefixlen);
    }
  }
  sb_printf(&sb, "\n");
  ret = sb.err;
  if (ret < 0)
    goto out;
  *pbuf = sb.p;
  *plen = sb.len;
  sb.p = NULL;
out:
  free(sb.p);
  return ret;
}

/* ---------------------------------------------------------------------- */
/* Socket I/O                                                             */
/* ---------------------------------------------------------------------- */

static int set_timeout(int fd, time_t timeout) {
  struct timeval tv = {.tv_sec = timeout};

  if (setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) < 0 ||
      setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) < 0)
    return -errno;
  return 0;
}

static int uapi_connect(const char *path, time_t timeout) {
  struct sockaddr_un sun = {.sun_family = AF_UNIX};
  int fd, ret;

  if (strlen(path) >= sizeof(sun.sun_path))
    return -ENAMETOOLONG;
  strcpy(sun.sun_path, path);
  fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return -errno;
  ret = set_timeout(fd, timeout);
  if (ret < 0)
    goto err;
  if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
    ret = -errno;
    /* No socket file, or no process behind it: the device is gone. */
    if (ret == -ENOENT || ret == -ECONNREFUSED)
      ret = -ENODEV;
    goto err;
  }
  return fd;
err:
  close(fd);
  return ret;
}

static void uapi_disconnect(struct wg_uapi *u) {
  if (u->fd >= 0)
    close(u->fd);
  u->fd = -1;
}

/*
 * Sends @req on @fd and reads the reply up to its terminating blank line
 * into u->buf (NUL-terminated, the terminator included in *@plen).
 * *@got is how many reply bytes came: none, on a kept connection, means
 * the peer had closed it.
 */
static int uapi_xfer_fd(struct wg_uapi *u, int fd, const char *req,
                        size_t reqlen, size_t *plen, size_t *got) {
  size_t off = 0, len = 0, scan = 0;

  *plen = 0;
  *got = 0;
  while (off < reqlen) {
    ssize_t w = send(fd, req + off, reqlen - off, MSG_NOSIGNAL);

    if (w < 0) {
      if (errno == EINTR)
        continue;
      return errno == EAGAIN ? -ETIMEDOUT : -errno;
    }
    off += (size_t)w;
  }
  for (;;) {
    ssize_t r;
    char *end;

    if (u->cap - len < 2) {
      size_t cap = u->cap ? u->cap * 2 : 4096;
      char *p;

      if (u->cap >= WG_UAPI_MAX_REPLY)
        return -E2BIG;
      p = realloc(u->buf, cap);
      if (!p)
        return -ENOMEM;
      u->buf = p;
      u->cap = cap;
    }
    r = recv(fd, u->buf + len, u->cap - len - 1, 0);
    if (r < 0) {
      if (errno == EINTR)
        continue;
      return errno == EAGAIN ? -ETIMEDOUT : -errno;
    }
    if (r == 0) {
      /* The parser reports a reply cut short; the connection is done. */
      u->buf[len] = '\0';
      *plen = len;
      *got = len;
      return len ? -ESHUTDOWN : -ENOTCONN;
    }
    len += (size_t)r;
    *got = len;
    u->buf[len] = '\0';
    /* Lines are never empty, so the first "\n\n" ends the reply. Nothing
     * follows it: the peer answers one request at a time. */
    end = memmem(u->buf + scan, len - scan, "\n\n", 2);
    if (end) {
      len = (size_t)(end - u->buf) + 2;
      break;
    }
    scan = len > 0 ? len - 1 : 0;
  }
  u->buf[len] = '\0';
  *plen = len;
  return 0;
}

/*
 * One operation: @req sent, its reply in u->buf[0..*plen). A reply cut
 * short is returned as it is (the parser rejects it); only a kept
 * connection that gives no reply at all is replaced and the request sent
 * again (every set line is idempotent).
 */
static int uapi_xfer(struct wg_uapi *u, time_t timeout, const char *req,
                     size_t reqlen, size_t *plen) {
  int ret;

  *plen = 0;
  for (;;) {
    int kept = u->fd >= 0;
    size_t got;

    if (!kept) {
      u->fd = uapi_connect(u->path, timeout);
      if (u->fd < 0) {
        ret = u->fd;
        u->fd = -1;
        return ret;
      }
      u->fd_timeout = timeout;
    } else if (u->fd_timeout != timeout) {
      ret = set_timeout(u->fd, timeout);
      if (ret < 0) {
        uapi_disconnect(u);
        return ret;
      }
      u->fd_timeout = timeout;
    }
    ret = uapi_xfer_fd(u, u->fd, req, reqlen, plen, &got);
    if (ret == 0) {
      if (kept)
        u->reuse_lost = 0;
      if (u->one_shot)
        uapi_disconnect(u);
      return 0;
    }
    uapi_disconnect(u);
    if (ret == -ESHUTDOWN || ret == -ENOTCONN)
      ret = 0; /* the parser says what is missing */
    if (!kept || got || ret == -ETIMEDOUT || ret == -ENOMEM || ret == -E2BIG)
      return ret;
    if (++u->reuse_lost >= UAPI_REUSE_LOST_MAX && !u->one_shot) {
      log_debug("%s: UAPI peer closes after each operation", u->b.ifname);
      u->one_shot = 1;
    }
  }
}

static int uapi_get(wg_backend *b, struct wg_dev *out) {
  struct wg_uapi *u = (struct wg_uapi *)b;
  time_t now = time(NULL);
  int ret, dialect;
  size_t len;

  ret = uapi_xfer(u, UAPI_TIMEOUT_SEC, "get=1\n\n", 7, &len);
  if (ret < 0)
    return ret;
  ret = parse_get(u->buf, len, now > 0 ? (uint64_t)now : 0, out, &dialect,
                  &u->keys);
  if (ret == -EPROTO)
    log_warn("%s: malformed UAPI reply to get", b->ifname);
  if (ret == 0 && dialect == WG_UAPI_BORINGTUN && !u->no_update_only) {
    log_debug("%s: boringtun UAPI dialect", b->ifname);
    u->no_update_only = 1;
    /* boringtun serves one operation per connection. */
    u->one_shot = 1;
    uapi_disconnect(u);
  }
  return ret;
}

/* Sends one set transaction; returns 0 or -errno (errno=N as -N). */
static int uapi_set_once(struct wg_uapi *u, const wgam_peer_update *upds,
                         size_t n, int *used_update_only) {
  char *req = NULL;
  size_t reqlen, len;
  int ret;

  ret = wg_uapi_build_set(upds, n, !u->no_update_only, &req, &reqlen);
  if (ret < 0)
    goto out;
  *used_update_only = strstr(req, "\nupdate_only=") != NULL;
  ret = uapi_xfer(u, UAPI_TIMEOUT_SEC + (time_t)(n / UAPI_SET_PEERS_PER_SEC),
                  req, reqlen, &len);
  if (ret < 0)
    goto out;
  ret = wg_uapi_parse_errno(u->buf, len);
out:
  free(req);
  return ret;
}

static int uapi_set(wg_backend *b, const wgam_peer_update *upds, size_t n) {
  struct wg_uapi *u = (struct wg_uapi *)b;
  int ret, used = 0;

  ret = uapi_set_once(u, upds, n, &used);
  if (ret == -EINVAL && used) {
    /* An implementation without update_only (boringtun) rejects the key.
     * Every line of a set is idempotent, so the peers it applied before
     * stopping are simply applied again. */
    log_info("%s: UAPI set refused update_only, retrying without it",
             b->ifname);
    u->no_update_only = 1;
    ret = uapi_set_once(u, upds, n, &used);
  }
  if (ret < 0)
    log_warn("%s: UAPI set of %zu peer(s) failed: %s", b->ifname, n,
             strerror(-ret));
  return ret;
}

static void uapi_close(wg_backend *b) {
  struct wg_uapi *u = (struct wg_uapi *)b;

  uapi_disconnect(u);
  free(u->buf);
  sodium_memzero(&u->keys, sizeof(u->keys));
  free(u);
}

static const struct wg_backend_ops uapi_ops = {
    .name = "uapi",
    .get = uapi_get,
    .set = uapi_set,
    .close = uapi_close,
};

int wg_uapi_open(wg_backend **pb, const char *ifname, const char *sockpath) {
  char def[sizeof(((struct sockaddr_un *)0)->sun_path)];
  struct wg_uapi *u;
  int fd;

  *pb = NULL;
  if (!wg_ifname_valid(ifname))
    return -EINVAL;
  if (!sockpath) {
    snprintf(def, sizeof(def), "/var/run/wireguard/%s.sock", ifname);
    sockpath = def;
  }
  if (strlen(sockpath) >= sizeof(u->path))
    return -ENAMETOOLONG;
  /* Fail at open, not at the first read, when nobody listens; the
   * connection is the one the first operation uses. */
  fd = uapi_connect(sockpath, UAPI_TIMEOUT_SEC);
  if (fd < 0)
    return fd;
  u = calloc(1, sizeof(*u));
  if (!u) {
    close(fd);
    return -ENOMEM;
  }
  u->fd = fd;
  u->fd_timeout = UAPI_TIMEOUT_SEC;
  u->b.ops = &uapi_ops;
  strcpy(u->b.ifname, ifname);
  strcpy(u->path, sockpath);
  *pb = &u->b;
  return 0;
}
