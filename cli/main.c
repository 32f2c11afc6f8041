/* SPDX-License-Identifier: MIT */
/*
 * wgautomesh: the daemon. Everything here moves bytes between the engine
 * (libwgautomesh) and the OS; every decision about peers and endpoints is
 * the engine's.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <net/if.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include "config.h"
#include "control.h"
#include "decode.h"
#include "jsonw.h"
#include "log.h"
#include "notify.h"
#include "resolve.h"
#include "state_io.h"
#include "upnp.h"
#include "wg.h"

#define EXIT_RUNTIME 1
#define EXIT_USAGE 2

/* Hostname endpoints are looked up again this often. */
#define RESOLVE_INTERVAL (60 * WGAM_SECONDS)
/* Datagrams read per socket per wakeup, so one busy socket cannot starve
 * the others (or the timers) during a flood. */
#define RECV_BURST 64
/* pollfd slots: signals, 2 gossip sockets, upnp, resolver, control. */
#define NPOLL (5 + 1 + CONTROL_MAX_CLIENTS)

enum send_kind { SEND_V4, SEND_V4_BCAST, SEND_V6, SEND_V6_MCAST, SEND_KINDS };

#define MAX_JOINED6 64

struct daemon {
  const char *config_path;
  struct config cfg;
  int cli_log_level; /* -1: from the config */

  wgam_mesh *mesh;
  wgam_tstamp device_interval;

  wg_backend *wg;
  struct wg_dev dev;
  int dev_failing;
  wgam_tstamp dev_retry_at; /* 0: no retry pending */
  uint16_t listen_port;

  int sock4, sock6, sigfd;
  /* Interfaces in the IPv6 LAN group ff05::1, by index: rescanned with
   * every device read, since a LAN (Wi-Fi, a dock) can come up later. */
  unsigned joined6[MAX_JOINED6];
  size_t njoined6;
  struct control *ctl;
  upnp *upnp;
  struct resolver *res;
  wgam_tstamp resolve_at; /* WGAM_TSTAMP_NONE: no hostnames */

  wgam_peer_update *upds;
  size_t capupds;
  int send_errno[SEND_KINDS]; /* last send error logged per kind */
  int state_errno;
  unsigned zero_timeouts;
  int quit;
};

static wgam_tstamp now_mono(void) {
  struct timespec ts;

  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (wgam_tstamp)ts.tv_sec * WGAM_SECONDS + (wgam_tstamp)ts.tv_nsec;
}

static int rand_cb(void *user_data, uint8_t *dest, size_t destlen) {
  (void)user_data;
  randombytes_buf(dest, destlen);
  return 0;
}

static void log_cb(void *user_data, int level, const char *msg) {
  (void)user_data;
  log_msg(level, "%s", msg);
}

static void addr_str(char *dst, size_t n, const wgam_addr *a) {
  if (wgam_addr_format(dst, n, a, 1) < 0)
    snprintf(dst, n, "?");
}

static void sockaddr_to_wgam(wgam_addr *a, const struct sockaddr_storage *ss) {
  memset(a, 0, sizeof(*a));
  if (ss->ss_family == AF_INET) {
    const struct sockaddr_in *in = (const struct sockaddr_in *)ss;

    a->family = WGAM_AF_INET;
    a->port = ntohs(in->sin_port);
    memcpy(a->ip, &in->sin_addr, 4);
  } else if (ss->ss_family == AF_INET6) {
    const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)ss;

    a->family = WGAM_AF_INET6;
    a->port = ntohs(in6->sin6_port);
    memcpy(a->ip, &in6->sin6_addr, 16);
  }
}

static socklen_t wgam_to_sockaddr(struct sockaddr_storage *ss,
                                  const wgam_addr *a) {
  memset(ss, 0, sizeof(*ss));
  if (a->family == WGAM_AF_INET) {
    struct sockaddr_in *in = (struct sockaddr_in *)ss;

    in->sin_family = AF_INET;
    in->sin_port = htons(a->port);
    memcpy(&in->sin_addr, a->ip, 4);
    return sizeof(*in);
  }
  if (a->family == WGAM_AF_INET6) {
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;

    in6->sin6_family = AF_INET6;
    in6->sin6_port = htons(a->port);
    memcpy(&in6->sin6_addr, a->ip, 16);
    return sizeof(*in6);
  }
  return 0;
}

/* ---- gossip sockets --------------------------------------------------- */

/* A non-blocking UDP socket on the gossip port of every address of
 * @family: IPv4 may send LAN broadcasts; IPv6 stays IPv6-only so both
 * sockets can share the port. */
static int open_gossip(int family, uint16_t port) {
  struct sockaddr_storage ss = {0};
  struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
  struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;
  int one = 1, fd, rc, level, opt;
  socklen_t sl;

  if (family == AF_INET) {
    sin->sin_family = AF_INET;
    sin->sin_port = htons(port);
    sl = sizeof(*sin);
    level = SOL_SOCKET;
    opt = SO_BROADCAST;
  } else {
    sin6->sin6_family = AF_INET6;
    sin6->sin6_port = htons(port);
    sin6->sin6_addr = in6addr_any;
    sl = sizeof(*sin6);
    level = IPPROTO_IPV6;
    opt = IPV6_V6ONLY;
  }
  fd = socket(family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return -errno;
  if (setsockopt(fd, level, opt, &one, sizeof(one)) < 0 ||
      bind(fd, (struct sockaddr *)&ss, sl) < 0) {
    rc = -errno;
    close(fd);
    return rc;
  }
  return fd;
}

/* Joins ff05::1 on every interface but loopback and the mesh interface
 * that has not joined yet, so IPv6 LAN broadcasts from other nodes reach
 * us. Interfaces that went away are forgotten (the kernel drops their
 * membership); a new index is a new interface. */
static void join_lan_group6(struct daemon *d) {
  struct if_nameindex *ifs = if_nameindex();
  unsigned keep[MAX_JOINED6];
  size_t nkeep = 0;
  struct ipv6_mreq mr;

  if (!ifs)
    return;
  inet_pton(AF_INET6, "ff05::1", &mr.ipv6mr_multiaddr);
  for (struct if_nameindex *i = ifs; i->if_index && nkeep < MAX_JOINED6; i++) {
    size_t k;

    if (!strcmp(i->if_name, "lo") || !strcmp(i->if_name, d->cfg.interface))
      continue;
    for (k = 0; k < d->njoined6 && d->joined6[k] != i->if_index; k++)
      ;
    if (k == d->njoined6) {
      int rc;

      mr.ipv6mr_interface = i->if_index;
      rc = setsockopt(d->sock6, IPPROTO_IPV6, IPV6_JOIN_GROUP, &mr, sizeof(mr));
      if (rc < 0 && errno != EADDRINUSE) {
        /* No IPv6 on it (yet): tried again at the next read. */
        log_msg(WGAM_LOG_TRACE, "cannot join ff05::1 on %s: %s", i->if_name,
                strerror(errno));
        continue;
      }
      log_debug("joined ff05::1 on %s", i->if_name);
    }
    keep[nkeep++] = i->if_index;
  }
  if_freenameindex(ifs);
  memcpy(d->joined6, keep, nkeep * sizeof(*keep));
  d->njoined6 = nkeep;
}

static void send_pkt(struct daemon *d, const wgam_addr *dst, const uint8_t *pkt,
                     size_t len) {
  struct sockaddr_storage ss;
  socklen_t sl = wgam_to_sockaddr(&ss, dst);
  enum send_kind kind;
  int fd;

  if (dst->family == WGAM_AF_INET) {
    static const uint8_t bcast[4] = {255, 255, 255, 255};

    kind = memcmp(dst->ip, bcast, 4) ? SEND_V4 : SEND_V4_BCAST;
    fd = d->sock4;
  } else {
    kind = dst->ip[0] == 0xff ? SEND_V6_MCAST : SEND_V6;
    fd = d->sock6;
  }
  if (fd < 0 || !sl) {
    if (d->send_errno[kind] != EAFNOSUPPORT) {
      log_warn("cannot send gossip over IPv%d: no socket",
               dst->family == WGAM_AF_INET ? 4 : 6);
      d->send_errno[kind] = EAFNOSUPPORT;
    }
    return;
  }
  if (sendto(fd, pkt, len, 0, (struct sockaddr *)&ss, sl) >= 0) {
    if (d->send_errno[kind]) {
      log_info("sending gossip %s works again",
               kind == SEND_V4_BCAST || kind == SEND_V6_MCAST ? "broadcasts"
                                                              : "datagrams");
      d->send_errno[kind] = 0;
    }
    return;
  }
  if (errno == EAGAIN || errno == EINTR) {
    log_debug("gossip socket full: datagram dropped");
    return;
  }
  /* Kernel WireGuard refuses traffic to a peer without a session (ENOKEY)
   * or without an endpoint (EDESTADDRREQ): normal before a handshake, and
   * the engine retries; wireguard-go drops such packets silently. */
  if (errno == ENOKEY || errno == EDESTADDRREQ) {
    char s[WGAM_ADDR_STRLEN];

    addr_str(s, sizeof(s), dst);
    log_debug("gossip to %s not sent yet: %s", s, strerror(errno));
    return;
  }
  /* Once per kind and error, not once per tick: ENETUNREACH on the LAN
   * broadcast repeats every minute on a host without a default route. */
  if (d->send_errno[kind] != errno) {
    char s[WGAM_ADDR_STRLEN];

    addr_str(s, sizeof(s), dst);
    log_warn("cannot send gossip to %s: %s (logged once)", s, strerror(errno));
    d->send_errno[kind] = errno;
  }
}

/* ---- the device ------------------------------------------------------- */

static int read_device(struct daemon *d, wgam_tstamp now) {
  int rc;

  if (!d->wg) {
    rc = wg_open(&d->wg, d->cfg.interface);
    if (rc)
      goto fail;
  }
  rc = wg_get(d->wg, &d->dev);
  if (rc)
    goto fail;
  rc =
      wgam_mesh_observe_device(d->mesh, &d->dev.dev, now, (uint64_t)time(NULL));
  if (rc) {
    log_err("device state rejected by the engine: %s", wgam_strerror(rc));
    return wgam_err_is_fatal(rc) ? rc : 0;
  }
  if (d->sock6 >= 0 && d->cfg.lan_discovery && d->cfg.ipv6)
    join_lan_group6(d);
  if (d->dev_failing)
    log_info("interface %s is back", d->cfg.interface);
  d->dev_failing = 0;
  d->dev_retry_at = 0;
  d->listen_port = d->dev.dev.listen_port;
  return 0;
fail:
  if (rc == -ENODEV && d->wg) {
    /* The interface went away: reopen it from scratch when it returns,
     * possibly with the other backend. */
    wg_close(d->wg);
    d->wg = NULL;
  }
  if (!d->dev_failing)
    log_err("interface %s: %s; retrying every %" PRIu64 " ms", d->cfg.interface,
            rc == -ENODEV ? "no such WireGuard interface" : strerror(-rc),
            d->device_interval / WGAM_MILLISECONDS);
  d->dev_failing = 1;
  d->dev_retry_at = now + d->device_interval;
  return 0;
}

/* Sends queued datagrams and applies pending device changes in one call. */
static int flush(struct daemon *d, wgam_tstamp now) {
  uint8_t pkt[WGAM_MAX_DATAGRAM_LEN];
  wgam_peer_update upd;
  wgam_addr dst;
  wgam_ssize n;
  size_t nupds = 0;

  while ((n = wgam_mesh_write_pkt(d->mesh, &dst, pkt, sizeof(pkt), now)) > 0)
    send_pkt(d, &dst, pkt, (size_t)n);
  if (n < 0) {
    log_err("engine: %s", wgam_strerror((int)n));
    if (wgam_err_is_fatal((int)n))
      return (int)n;
  }
  while (wgam_mesh_next_peer_update(d->mesh, &upd) == 1) {
    if (nupds == d->capupds) {
      size_t cap = d->capupds ? d->capupds * 2 : 16;
      wgam_peer_update *g = realloc(d->upds, cap * sizeof(*g));

      if (!g)
        return WGAM_ERR_NOMEM;
      d->upds = g;
      d->capupds = cap;
    }
    d->upds[nupds++] = upd;
  }
  if (nupds && d->wg) {
    int rc = wg_set(d->wg, d->upds, nupds);

    /* The engine re-reads the device and reconciles what did not apply. */
    if (rc)
      log_warn("interface %s: applying %zu peer changes: %s", d->cfg.interface,
               nupds, strerror(-rc));
    else
      log_debug("applied %zu peer changes", nupds);
  }
  return 0;
}

static void save_state(struct daemon *d) {
  uint8_t *buf;
  wgam_ssize n;
  int rc;

  n = wgam_mesh_write_state(d->mesh, NULL, 0);
  if (n < 0)
    return;
  buf = malloc((size_t)n ? (size_t)n : 1);
  if (!buf) {
    log_err("state file: %s", strerror(ENOMEM));
    return;
  }
  n = wgam_mesh_write_state(d->mesh, buf, (size_t)n);
  if (n < 0) {
    log_err("state file: %s", wgam_strerror((int)n));
    goto out;
  }
  /* Without a persist_file the engine should not ask; if it does, the
   * write above clears the want and the bytes are dropped. */
  if (!d->cfg.persist_file)
    goto out;
  rc = state_write(d->cfg.persist_file, buf, (size_t)n);
  if (rc) {
    if (d->state_errno != -rc)
      log_err("cannot write state file %s: %s", d->cfg.persist_file,
              strerror(-rc));
    d->state_errno = -rc;
  } else {
    if (d->state_errno)
      log_info("state file %s written again", d->cfg.persist_file);
    d->state_errno = 0;
    log_debug("state file %s written (%zd bytes)", d->cfg.persist_file, n);
  }
out:
  free(buf);
}

static void load_state(struct daemon *d, wgam_tstamp now) {
  uint8_t *data;
  size_t len;
  int rc;

  rc = state_clean_tmp(d->cfg.persist_file);
  if (rc > 0)
    log_info("removed %d temporary state file(s) left by an interrupted write",
             rc);
  rc = state_read(d->cfg.persist_file, &data, &len);
  if (rc == -ENOENT) {
    log_info("no state file %s yet", d->cfg.persist_file);
    return;
  }
  if (rc && rc != -EFBIG) {
    log_warn("cannot read state file %s: %s", d->cfg.persist_file,
             strerror(-rc));
    return;
  }
  if (!rc) {
    rc = wgam_mesh_load_state(d->mesh, data, len, now);
    free(data);
    if (rc == 0) {
      log_info("loaded state file %s", d->cfg.persist_file);
      return;
    }
    if (rc != WGAM_ERR_STATE_DECODE) {
      log_warn("state file %s: %s", d->cfg.persist_file, wgam_strerror(rc));
      return;
    }
  }
  rc = state_set_aside(d->cfg.persist_file);
  log_warn("state file %s is corrupt; %s %s.corrupt", d->cfg.persist_file,
           rc ? "could not move it to" : "moved it to", d->cfg.persist_file);
}

/* ---- hostnames -------------------------------------------------------- */

static size_t nhostnames(const struct config *cfg) {
  size_t n = 0;

  for (size_t i = 0; i < cfg->npeers; i++)
    n += cfg->peers[i].host != NULL;
  return n;
}

static void resolve_submit(struct daemon *d, wgam_tstamp now) {
  size_t n = nhostnames(&d->cfg), k = 0;
  struct resolve_req *reqs;
  int rc;

  if (!n) {
    d->resolve_at = WGAM_TSTAMP_NONE;
    return;
  }
  if (!d->res) {
    rc = resolver_new(&d->res);
    if (rc) {
      log_err("cannot start the resolver: %s", strerror(-rc));
      d->resolve_at = now + RESOLVE_INTERVAL;
      return;
    }
  }
  reqs = calloc(n, sizeof(*reqs));
  if (!reqs)
    goto retry;
  for (size_t i = 0; i < d->cfg.npeers; i++) {
    const struct config_peer *p = &d->cfg.peers[i];

    if (!p->host)
      continue;
    memcpy(reqs[k].pubkey, p->pubkey, WGAM_KEY_LEN);
    snprintf(reqs[k].host, sizeof(reqs[k].host), "%s", p->host);
    reqs[k].port = p->port;
    k++;
  }
  if (resolver_submit(d->res, reqs, k))
    log_warn("resolver: %s", strerror(ENOMEM));
  free(reqs);
retry:
  d->resolve_at = now + RESOLVE_INTERVAL;
}

static void resolve_results(struct daemon *d, wgam_tstamp now) {
  struct resolve_result r;

  while (resolver_next(d->res, &r) == 1) {
    const struct config_peer *p = NULL;
    int rc;

    /* Drop results for a peer whose endpoint changed by a reload. */
    for (size_t i = 0; i < d->cfg.npeers; i++)
      if (!memcmp(d->cfg.peers[i].pubkey, r.pubkey, WGAM_KEY_LEN))
        p = &d->cfg.peers[i];
    if (!p || !p->host || strcmp(p->host, r.host) || p->port != r.port)
      continue;
    if (r.error) {
      /* Keep the previous addresses: DNS hiccups should not cost a peer. */
      log_warn("cannot resolve %s: %s", r.host, gai_strerror(r.error));
      continue;
    }
    if (!r.naddrs)
      log_warn("%s resolves to no usable endpoint", r.host);
    rc =
        wgam_mesh_set_peer_endpoints(d->mesh, r.pubkey, r.addrs, r.naddrs, now);
    if (rc)
      log_warn("endpoints of %s: %s", r.host, wgam_strerror(rc));
    else
      log_debug("%s resolved to %zu endpoint(s)", r.host, r.naddrs);
  }
}

/* ---- status ----------------------------------------------------------- */

static void status_json(struct daemon *d, struct sbuf *b) {
  static const char *const type_names[WGAM_MSG_TYPE_COUNT] = {
      "ping", "pong", "announce", "request", "lan_broadcast"};
  uint64_t unix_now = (uint64_t)time(NULL);
  wgam_stats st;
  size_t n = wgam_mesh_get_npeers(d->mesh);

  wgam_mesh_get_stats(d->mesh, &st);
  sb_puts(b, "{\"interface\":");
  jw_str(b, d->cfg.interface);
  sb_puts(b, ",\"backend\":");
  jw_str_or_null(b, d->wg ? wg_backend_name(d->wg) : NULL);
  sb_puts(b, ",\"version\":\"" WGAM_VERSION "\",\"pubkey\":");
  if (st.has_pubkey)
    jw_key(b, st.pubkey);
  else
    sb_puts(b, "null");
  sb_puts(b, ",\"listen_port\":");
  jw_u64(b, st.listen_port);
  sb_puts(b, ",\"external_endpoint\":");
  jw_addr(b, st.nexternal ? &st.external[0] : &st.external[1], 1);
  sb_puts(b, ",\"policy\":");
  jw_str(b, config_policy_name(d->cfg.policy));
  sb_puts(b, ",\"peers\":[");
  for (size_t i = 0; i < n; i++) {
    wgam_peer_info pi;

    if (wgam_mesh_get_peer_info(d->mesh, i, &pi))
      continue;
    if (i)
      sb_putc(b, ',');
    sb_puts(b, "{\"pubkey\":");
    jw_key(b, pi.pubkey);
    sb_puts(b, ",\"address\":");
    jw_addr(b, &pi.address, 0);
    sb_puts(b, ",\"endpoint\":");
    jw_addr(b, &pi.endpoint, 1);
    sb_puts(b, ",\"source\":");
    jw_str(b, wgam_source_name(pi.source));
    sb_puts(b, ",\"state\":");
    jw_str(b, wgam_peer_state_name(pi.state));
    sb_puts(b, ",\"connected\":");
    jw_bool(b, pi.connected);
    sb_puts(b, ",\"last_handshake\":");
    jw_u64(b, pi.last_handshake);
    sb_puts(b, ",\"handshake_age\":");
    if (pi.last_handshake)
      jw_u64(b,
             unix_now > pi.last_handshake ? unix_now - pi.last_handshake : 0);
    else
      sb_puts(b, "null");
    sb_puts(b, ",\"tries\":");
    jw_u64(b, pi.tries);
    sb_puts(b, ",\"endpoint_changes\":");
    jw_u64(b, pi.endpoint_changes);
    sb_puts(b, ",\"known\":[");
    for (size_t k = 0; k < pi.nknown && k < WGAM_MAX_ENDPOINTS; k++) {
      if (k)
        sb_putc(b, ',');
      sb_puts(b, "{\"addr\":");
      jw_addr(b, &pi.known[k].addr, 1);
      sb_puts(b, ",\"time\":");
      jw_u64(b, pi.known[k].time);
      sb_putc(b, '}');
    }
    sb_puts(b, "],\"lan_endpoint\":");
    jw_addr(b, &pi.lan_endpoint, 1);
    sb_putc(b, '}');
  }
  sb_puts(b, "],\"stats\":{\"pkts_in\":{");
  for (int t = 0; t < WGAM_MSG_TYPE_COUNT; t++) {
    sb_printf(b, "%s\"%s\":", t ? "," : "", type_names[t]);
    jw_u64(b, st.pkts_in[t]);
  }
  sb_puts(b, "},\"pkts_out\":{");
  for (int t = 0; t < WGAM_MSG_TYPE_COUNT; t++) {
    sb_printf(b, "%s\"%s\":", t ? "," : "", type_names[t]);
    jw_u64(b, st.pkts_out[t]);
  }
  sb_puts(b, "},\"bytes_in\":");
  jw_u64(b, st.bytes_in);
  sb_puts(b, ",\"bytes_out\":");
  jw_u64(b, st.bytes_out);
  sb_puts(b, ",\"rejected\":{");
  for (int r = 0; r < WGAM_REJECT_COUNT; r++) {
    if (r)
      sb_putc(b, ',');
    jw_name(b, wgam_reject_name(r));
    jw_u64(b, st.rejected[r]);
  }
  sb_puts(b, "},\"endpoint_changes\":");
  jw_u64(b, st.endpoint_changes);
  sb_puts(b, ",\"peer_updates\":");
  jw_u64(b, st.peer_updates);
  sb_puts(b, ",\"state_writes\":");
  jw_u64(b, st.state_writes);
  sb_puts(b, ",\"peers_connected\":");
  jw_u64(b, st.npeers_connected);
  sb_puts(b, ",\"mem_bytes\":");
  jw_u64(b, st.mem_bytes);
  sb_puts(b, "}}\n");
}

static void control_cb(void *user_data, const char *cmd, struct sbuf *reply) {
  struct daemon *d = user_data;

  if (!strcmp(cmd, "status")) {
    status_json(d, reply);
  } else if (!strcmp(cmd, "metrics")) {
    struct sbuf js;

    sb_init(&js);
    status_json(d, &js);
    if (js.oom || status_render(reply, sb_cstr(&js), STATUS_PROMETHEUS))
      sb_puts(reply, "# error: out of memory\n");
    sb_free(&js);
  } else {
    sb_puts(reply, "{\"error\":\"unknown command\"}\n");
  }
}

/* ---- reload ----------------------------------------------------------- */

static int str_differs(const char *a, const char *b) {
  if (!a || !b)
    return a != b;
  return strcmp(a, b) != 0;
}

static void print_diag(const struct config_diag *diag, int to_log) {
  for (size_t i = 0; i < diag->nwarnings; i++)
    if (to_log)
      log_warn("%s", diag->warnings[i]);
    else
      fprintf(stderr, "warning: %s\n", diag->warnings[i]);
  for (size_t i = 0; i < diag->nerrors; i++)
    if (to_log)
      log_err("%s", diag->errors[i]);
    else
      fprintf(stderr, "%s\n", diag->errors[i]);
}

static void reload(struct daemon *d, wgam_tstamp now) {
  struct config_diag diag = {0};
  struct config nc, *c = &d->cfg;
  wgam_peer_config *peers = NULL;
  char msg[64];
  int rc;

  snprintf(msg, sizeof(msg), "RELOADING=1\nMONOTONIC_USEC=%" PRIu64,
           now / WGAM_MICROSECONDS);
  notify_send(msg);
  log_info("reloading %s", d->config_path);
  rc = config_load(&nc, d->config_path, 0, &diag);
  print_diag(&diag, 1);
  if (rc) {
    log_err("reload failed: keeping the running configuration");
    goto out;
  }
#define RESTART_IF(cond, key)                                                  \
  do {                                                                         \
    if (cond)                                                                  \
      log_warn("%s changed: needs restart (running value kept)", key);         \
  } while (0)
  RESTART_IF(strcmp(nc.interface, c->interface), "interface");
  RESTART_IF(nc.gossip_port != c->gossip_port, "gossip_port");
  RESTART_IF(
      nc.secretlen != c->secretlen || nc.has_secret != c->has_secret ||
          (nc.secretlen && sodium_memcmp(nc.secret, c->secret, nc.secretlen)),
      "gossip secret");
  RESTART_IF(str_differs(nc.persist_file, c->persist_file), "persist_file");
  RESTART_IF(nc.ipv6 != c->ipv6, "ipv6");
  RESTART_IF(nc.lan_discovery != c->lan_discovery, "lan_discovery");
  RESTART_IF(nc.upnp_port != c->upnp_port, "upnp_forward_external_port");
  RESTART_IF(str_differs(nc.control_socket, c->control_socket),
             "control_socket");
  RESTART_IF(nc.policy != c->policy, "policy");
#undef RESTART_IF

  peers = calloc(nc.npeers ? nc.npeers : 1, sizeof(*peers));
  if (!peers) {
    log_err("reload failed: %s", strerror(ENOMEM));
    config_free(&nc);
    goto out;
  }
  config_to_peers(&nc, peers);
  rc = wgam_mesh_set_peers(d->mesh, peers, nc.npeers, now);
  free(peers);
  if (rc) {
    log_err("reload failed: peers: %s; keeping the running configuration",
            wgam_strerror(rc));
    config_free(&nc);
    goto out;
  }
  for (size_t i = 0; i < c->npeers; i++)
    free(c->peers[i].host);
  free(c->peers);
  c->peers = nc.peers;
  c->npeers = nc.npeers;
  nc.peers = NULL;
  nc.npeers = 0;
  if (d->cli_log_level < 0 && nc.log_level >= 0 &&
      nc.log_level != c->log_level) {
    log_level = nc.log_level;
    wgam_mesh_set_log_level(d->mesh, log_level);
    log_info("log_level is now %d", log_level);
  }
  c->log_level = nc.log_level;
  config_free(&nc);
  resolve_submit(d, now);
  log_info("reloaded: %zu peers", c->npeers);
out:
  config_diag_free(&diag);
  notify_send("READY=1");
}

/* ---- run -------------------------------------------------------------- */

static int handle_signals(struct daemon *d, wgam_tstamp now) {
  struct signalfd_siginfo si;

  while (read(d->sigfd, &si, sizeof(si)) == sizeof(si)) {
    if (si.ssi_signo == SIGHUP) {
      reload(d, now);
    } else {
      log_info("signal %u: shutting down", si.ssi_signo);
      d->quit = 1;
    }
  }
  return 0;
}

static int recv_gossip(struct daemon *d, int fd, wgam_tstamp now) {
  uint8_t pkt[WGAM_MAX_DATAGRAM_LEN + 1];

  for (int i = 0; i < RECV_BURST; i++) {
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    wgam_addr src;
    ssize_t n;
    int rc;

    /* One byte more than the limit: an oversized datagram arrives
     * truncated to 1501 bytes and the engine rejects it by length. */
    n = recvfrom(fd, pkt, sizeof(pkt), 0, (struct sockaddr *)&ss, &sl);
    if (n < 0) {
      if (errno != EAGAIN && errno != EINTR)
        log_debug("gossip recvfrom: %s", strerror(errno));
      break;
    }
    sockaddr_to_wgam(&src, &ss);
    rc = wgam_mesh_read_pkt(d->mesh, &src, pkt, (size_t)n, now);
    if (rc && wgam_err_is_fatal(rc)) {
      log_err("engine: %s", wgam_strerror(rc));
      return rc;
    }
    if (rc && log_level >= WGAM_LOG_TRACE) {
      char s[WGAM_ADDR_STRLEN];

      addr_str(s, sizeof(s), &src);
      log_msg(WGAM_LOG_TRACE, "datagram from %s: %s", s, wgam_strerror(rc));
    }
  }
  return 0;
}

static void handle_upnp(struct daemon *d, wgam_tstamp now) {
  wgam_addr ext;
  int rc;

  while ((rc = upnp_result(d->upnp, &ext)) != -EAGAIN) {
    if (rc == 1) {
      char s[WGAM_ADDR_STRLEN];

      addr_str(s, sizeof(s), &ext);
      if (wgam_mesh_set_external_endpoints(d->mesh, &ext, 1, now))
        log_warn("UPnP external endpoint %s is not usable", s);
      else
        log_info("UPnP external endpoint %s", s);
    } else if (rc == 0) {
      wgam_mesh_set_external_endpoints(d->mesh, NULL, 0, now);
    } else {
      break;
    }
  }
}

static void handle_wants(struct daemon *d, wgam_tstamp now) {
  uint32_t wants = wgam_mesh_get_wants(d->mesh);

  if ((wants & WGAM_WANT_DEVICE) &&
      (d->dev_retry_at == 0 || now >= d->dev_retry_at))
    read_device(d, now);
  if (wants & WGAM_WANT_STATE)
    save_state(d);
  if (wants & WGAM_WANT_IGD) {
    if (d->cfg.upnp_port && d->listen_port) {
      if (!d->upnp) {
        int rc =
            upnp_start(&d->upnp, d->cfg.upnp_port, d->listen_port, d->cfg.ipv6);

        if (rc)
          log_warn("cannot start UPnP: %s", strerror(-rc));
      }
      if (d->upnp)
        upnp_renew(d->upnp, d->listen_port);
    }
    wgam_mesh_ack_igd(d->mesh);
  }
}

static int poll_timeout(struct daemon *d, wgam_tstamp now) {
  wgam_tstamp dl = wgam_mesh_get_expiry(d->mesh), e, ms;

  if (d->dev_retry_at && d->dev_retry_at < dl)
    dl = d->dev_retry_at;
  if (d->resolve_at < dl)
    dl = d->resolve_at;
  if (d->ctl && (e = control_expiry(d->ctl)) < dl)
    dl = e;
  if (dl == WGAM_TSTAMP_NONE)
    return -1;
  if (dl <= now) {
    /* A deadline that does not move would spin: after many zero waits in
     * a row, sleep a little and say so once. */
    if (++d->zero_timeouts == 10000)
      log_warn("timers keep expiring at once; throttling to 10 ms");
    return d->zero_timeouts >= 10000 ? 10 : 0;
  }
  d->zero_timeouts = 0;
  ms = (dl - now + WGAM_MILLISECONDS - 1) / WGAM_MILLISECONDS;
  return ms > INT_MAX ? INT_MAX : (int)ms;
}

static int run_loop(struct daemon *d) {
  struct pollfd pfds[NPOLL];

  while (!d->quit) {
    wgam_tstamp now = now_mono();
    size_t n = 0, nctl_first;
    int i_sig, i4 = -1, i6 = -1, iup = -1, ires = -1, rc, timeout;

    if (now >= wgam_mesh_get_expiry(d->mesh)) {
      rc = wgam_mesh_handle_expiry(d->mesh, now);
      if (rc) {
        log_err("engine: %s", wgam_strerror(rc));
        return rc;
      }
    }
    if (d->resolve_at != WGAM_TSTAMP_NONE && now >= d->resolve_at)
      resolve_submit(d, now);
    handle_wants(d, now);
    rc = flush(d, now);
    if (rc)
      return rc;

    timeout = poll_timeout(d, now);
    i_sig = (int)n;
    pfds[n++] = (struct pollfd){.fd = d->sigfd, .events = POLLIN};
    if (d->sock4 >= 0) {
      i4 = (int)n;
      pfds[n++] = (struct pollfd){.fd = d->sock4, .events = POLLIN};
    }
    if (d->sock6 >= 0) {
      i6 = (int)n;
      pfds[n++] = (struct pollfd){.fd = d->sock6, .events = POLLIN};
    }
    if (d->upnp) {
      iup = (int)n;
      pfds[n++] = (struct pollfd){.fd = upnp_fd(d->upnp), .events = POLLIN};
    }
    if (d->res) {
      ires = (int)n;
      pfds[n++] = (struct pollfd){.fd = resolver_fd(d->res), .events = POLLIN};
    }
    nctl_first = n;
    n += control_pollfds(d->ctl, pfds + n, NPOLL - n);

    rc = poll(pfds, n, timeout);
    if (rc < 0 && errno != EINTR) {
      log_err("poll: %s", strerror(errno));
      return -errno;
    }
    now = now_mono();
    if (rc <= 0)
      continue;
    if (pfds[i_sig].revents & POLLIN)
      handle_signals(d, now);
    if (i4 >= 0 && (pfds[i4].revents & POLLIN) &&
        (rc = recv_gossip(d, d->sock4, now)))
      return rc;
    if (i6 >= 0 && (pfds[i6].revents & POLLIN) &&
        (rc = recv_gossip(d, d->sock6, now)))
      return rc;
    if (iup >= 0 && (pfds[iup].revents & POLLIN))
      handle_upnp(d, now);
    if (ires >= 0 && (pfds[ires].revents & POLLIN))
      resolve_results(d, now);
    control_handle(d->ctl, pfds + nctl_first, n - nctl_first, now);
  }
  return 0;
}

static int run(const char *path, int cli_level) {
  struct daemon dd = {.config_path = path,
                      .cli_log_level = cli_level,
                      .sock4 = -1,
                      .sock6 = -1,
                      .sigfd = -1,
                      .resolve_at = WGAM_TSTAMP_NONE};
  struct daemon *d = &dd;
  struct config_diag diag = {0};
  wgam_peer_config *peers = NULL;
  wgam_settings s;
  sigset_t mask;
  int rc, ret = EXIT_RUNTIME;
  wgam_tstamp now;

  wg_dev_init(&d->dev);
  rc = config_load(&d->cfg, path, 0, &diag);
  print_diag(&diag, 0);
  config_diag_free(&diag);
  if (rc == -ENOMEM) {
    fprintf(stderr, "%s: %s\n", path, strerror(ENOMEM));
    return EXIT_RUNTIME;
  }
  if (rc)
    return EXIT_USAGE;
  if (cli_level < 0 && d->cfg.log_level >= 0)
    log_level = d->cfg.log_level;

  /* Signals are taken from here on, so a SIGTERM during start-up still
   * ends with the normal clean-up. */
  sigemptyset(&mask);
  sigaddset(&mask, SIGTERM);
  sigaddset(&mask, SIGINT);
  sigaddset(&mask, SIGHUP);
  if (sigprocmask(SIG_BLOCK, &mask, NULL) < 0 ||
      (d->sigfd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC)) < 0) {
    log_err("signalfd: %s", strerror(errno));
    goto out;
  }

  if (sodium_init() < 0) {
    log_err("libsodium initialisation failed");
    goto out;
  }
  signal(SIGPIPE, SIG_IGN);

  if (d->cfg.policy == WGAM_POLICY_CLASSIC)
    wgam_settings_classic(&s);
  else
    wgam_settings_default(&s);
  s.secret = d->cfg.secret;
  s.secretlen = d->cfg.secretlen;
  s.gossip_port = d->cfg.gossip_port;
  s.flags = 0;
  if (d->cfg.lan_discovery) {
    s.flags |= WGAM_SETTINGS_LAN_DISCOVERY;
    if (d->cfg.ipv6)
      s.flags |= WGAM_SETTINGS_LAN_DISCOVERY_V6;
  }
  if (d->cfg.persist_file)
    s.flags |= WGAM_SETTINGS_PERSIST;
  if (d->cfg.upnp_port)
    s.flags |= WGAM_SETTINGS_IGD;
  s.rand = rand_cb;
  s.log = log_cb;
  s.log_level = log_level;
  s.user_data = d;
  d->device_interval = s.device_interval ? s.device_interval : WGAM_SECONDS;

  now = now_mono();
  rc = wgam_mesh_new(&d->mesh, &s, now);
  if (rc) {
    log_err("engine: %s", wgam_strerror(rc));
    goto out;
  }

  rc = wg_open(&d->wg, d->cfg.interface);
  if (rc) {
    log_err("interface %s: %s (wgautomesh configures an existing WireGuard "
            "interface; it does not create one)",
            d->cfg.interface,
            rc == -ENODEV ? "no such WireGuard interface" : strerror(-rc));
    goto out;
  }
  rc = wg_get(d->wg, &d->dev);
  if (rc) {
    log_err("interface %s: cannot read it: %s", d->cfg.interface,
            strerror(-rc));
    goto out;
  }
  d->listen_port = d->dev.dev.listen_port;
  log_info("interface %s (%s backend), listen port %u, %zu peers, %s policy",
           d->cfg.interface, wg_backend_name(d->wg), d->listen_port,
           d->cfg.npeers, config_policy_name(d->cfg.policy));

  peers = calloc(d->cfg.npeers ? d->cfg.npeers : 1, sizeof(*peers));
  if (!peers) {
    log_err("%s", strerror(ENOMEM));
    goto out;
  }
  config_to_peers(&d->cfg, peers);
  rc = wgam_mesh_set_peers(d->mesh, peers, d->cfg.npeers, now);
  free(peers);
  if (rc) {
    log_err("%s: peers: %s", path, wgam_strerror(rc));
    ret = EXIT_USAGE;
    goto out;
  }

  d->sock4 = open_gossip(AF_INET, d->cfg.gossip_port);
  if (d->sock4 < 0) {
    log_err("gossip socket 0.0.0.0:%u: %s", d->cfg.gossip_port,
            strerror(-d->sock4));
    goto out;
  }
  d->sock6 = open_gossip(AF_INET6, d->cfg.gossip_port);
  if (d->sock6 < 0) {
    /* IPv6 may be disabled on this host: IPv4 alone is fine. */
    log_warn("no IPv6 gossip socket [::]:%u: %s", d->cfg.gossip_port,
             strerror(-d->sock6));
  } else if (d->cfg.lan_discovery && d->cfg.ipv6) {
    join_lan_group6(d);
  }

  if (d->cfg.persist_file)
    load_state(d, now);

  /* The engine decides on the first device read: the peers and what the
   * state file knows of them must be in before it, or the first try of
   * every peer would ignore the saved endpoints. */
  rc =
      wgam_mesh_observe_device(d->mesh, &d->dev.dev, now, (uint64_t)time(NULL));
  if (rc) {
    log_err("interface %s: %s", d->cfg.interface, wgam_strerror(rc));
    goto out;
  }

  rc = control_open(&d->ctl, d->cfg.control_socket, control_cb, d);
  if (rc) {
    log_err("control socket %s: %s", d->cfg.control_socket,
            rc == -EADDRINUSE ? "another wgautomesh answers there"
                              : strerror(-rc));
    goto out;
  }

  resolve_submit(d, now);

  notify_send("READY=1");
  log_info("running; gossip on port %u", d->cfg.gossip_port);
  rc = run_loop(d);
  notify_send("STOPPING=1");
  if (d->cfg.persist_file)
    save_state(d);
  ret = rc ? EXIT_RUNTIME : 0;
out:
  upnp_stop(d->upnp);
  control_close(d->ctl);
  resolver_free(d->res);
  if (d->sigfd >= 0)
    close(d->sigfd);
  if (d->sock4 >= 0)
    close(d->sock4);
  if (d->sock6 >= 0)
    close(d->sock6);
  wg_close(d->wg);
  wg_dev_free(&d->dev);
  wgam_mesh_del(d->mesh);
  free(d->upds);
  config_free(&d->cfg);
  return ret;
}

/* ---- other commands --------------------------------------------------- */

static int cmd_check(const char *path) {
  struct config_diag diag = {0};
  struct config cfg;
  int rc;

  rc = config_load(&cfg, path, 0, &diag);
  print_diag(&diag, 0);
  config_diag_free(&diag);
  if (rc == -ENOMEM) {
    fprintf(stderr, "%s: %s\n", path, strerror(ENOMEM));
    return EXIT_RUNTIME;
  }
  if (rc)
    return EXIT_USAGE;
  printf("%s: ok (interface %s, %zu peers)\n", path, cfg.interface, cfg.npeers);
  config_free(&cfg);
  return 0;
}

static int cmd_status(const char *path, const char *sock, int json, int prom) {
  struct config_diag diag = {0};
  struct config cfg;
  struct sbuf reply, out;
  int rc, ret = EXIT_RUNTIME;

  memset(&cfg, 0, sizeof(cfg));
  if (!sock) {
    rc = config_load(&cfg, path, CONFIG_SKIP_SECRET, &diag);
    for (size_t i = 0; i < diag.nerrors; i++)
      fprintf(stderr, "%s\n", diag.errors[i]);
    config_diag_free(&diag);
    if (rc)
      return rc == -ENOMEM ? EXIT_RUNTIME : EXIT_USAGE;
    sock = cfg.control_socket;
  }
  sb_init(&reply);
  sb_init(&out);
  rc = control_query(sock, "status", &reply);
  if (rc) {
    fprintf(stderr, "cannot query %s: %s%s\n", sock, strerror(-rc),
            rc == -ENOENT || rc == -ECONNREFUSED ? " (is wgautomesh running?)"
                                                 : "");
    goto out;
  }
  if (json) {
    fputs(sb_cstr(&reply), stdout);
    if (reply.len && reply.p[reply.len - 1] != '\n')
      putchar('\n');
    ret = 0;
    goto out;
  }
  rc = status_render(&out, sb_cstr(&reply),
                     prom ? STATUS_PROMETHEUS : STATUS_TABLE);
  if (rc) {
    fprintf(stderr, "unexpected reply from %s\n", sock);
    goto out;
  }
  fputs(sb_cstr(&out), stdout);
  ret = 0;
out:
  sb_free(&reply);
  sb_free(&out);
  config_free(&cfg);
  return ret;
}

static int read_file(const char *path, uint8_t **data, size_t *len) {
  return state_read(path, data, len);
}

static int cmd_decode(const char *secret_file, const char *state_file) {
  uint8_t *data = NULL;
  size_t len = 0;
  int rc;

  if (state_file) {
    struct sbuf b;

    rc = read_file(state_file, &data, &len);
    if (rc) {
      fprintf(stderr, "%s: %s\n", state_file, strerror(-rc));
      return EXIT_RUNTIME;
    }
    sb_init(&b);
    rc = decode_state_json(&b, data, len);
    printf("%s\n", sb_cstr(&b));
    sb_free(&b);
    free(data);
    return rc ? EXIT_RUNTIME : 0;
  }
  if (secret_file) {
    rc = read_file(secret_file, &data, &len);
    if (rc) {
      fprintf(stderr, "%s: %s\n", secret_file, strerror(-rc));
      return EXIT_RUNTIME;
    }
  }
  rc = decode_stream(stdin, stdout, data, len);
  if (data) {
    sodium_memzero(data, len);
    free(data);
  }
  if (rc) {
    fprintf(stderr, "decode: %s\n", strerror(-rc));
    return EXIT_RUNTIME;
  }
  return 0;
}

static void usage(FILE *f) {
  fprintf(
      f, "Usage: wgautomesh [-v|-q] [run] [CONFIG]\n"
         "       wgautomesh check [CONFIG]\n"
         "       wgautomesh status [--json|--prometheus] [--socket PATH] "
         "[CONFIG]\n"
         "       wgautomesh decode [--secret-file FILE]  < hex datagrams\n"
         "       wgautomesh decode --state FILE\n"
         "       wgautomesh --help | --version\n"
         "\n"
         "Keeps the peers of an existing WireGuard interface connected as a\n"
         "full mesh through NAT. CONFIG defaults to " CONFIG_DEFAULT_PATH ".\n"
         "\n"
         "  run      run the daemon in the foreground (the default)\n"
         "  check    validate CONFIG; one line per problem\n"
         "  status   ask the running daemon (its control socket)\n"
         "  decode   print gossip datagrams (hex, one per line on stdin) or a\n"
         "           state file as JSON; without --secret-file the empty\n"
         "           secret is used, as the daemon does without one\n"
         "  -v, -q   more or less logging (repeatable)\n"
         "\n"
         "Exit status: 0 success, 1 runtime error, 2 configuration or usage "
         "error.\n");
}

int main(int argc, char **argv) {
  const char *args[64], *cmd = "run", *path = CONFIG_DEFAULT_PATH;
  const char *secret_file = NULL, *state_file = NULL, *sock = NULL;
  int nargs = 0, verbosity = 0, have_verbosity = 0, json = 0, prom = 0;
  int npos = 0, i;

  for (i = 1; i < argc; i++) {
    const char *a = argv[i];

    if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
      usage(stdout);
      return 0;
    }
    if (!strcmp(a, "-V") || !strcmp(a, "--version")) {
      printf("wgautomesh %s\n", WGAM_VERSION);
      return 0;
    }
    if (a[0] == '-' && (a[1] == 'v' || a[1] == 'q') &&
        strspn(a + 1, "vq") == strlen(a + 1)) {
      for (const char *p = a + 1; *p; p++)
        verbosity += *p == 'v' ? 1 : -1;
      have_verbosity = 1;
      continue;
    }
    if (nargs == (int)(sizeof(args) / sizeof(args[0]))) {
      usage(stderr);
      return EXIT_USAGE;
    }
    args[nargs++] = a;
  }
  if (have_verbosity) {
    log_level = WGAM_LOG_INFO + verbosity;
    if (log_level < WGAM_LOG_ERROR)
      log_level = WGAM_LOG_ERROR;
    if (log_level > WGAM_LOG_TRACE)
      log_level = WGAM_LOG_TRACE;
  }

  i = 0;
  if (nargs && (!strcmp(args[0], "run") || !strcmp(args[0], "check") ||
                !strcmp(args[0], "status") || !strcmp(args[0], "decode")))
    cmd = args[i++];
  for (; i < nargs; i++) {
    const char *a = args[i];

    if (!strcmp(cmd, "status") && !strcmp(a, "--json")) {
      json = 1;
    } else if (!strcmp(cmd, "status") && !strcmp(a, "--prometheus")) {
      prom = 1;
    } else if (!strcmp(cmd, "status") && !strcmp(a, "--socket") &&
               i + 1 < nargs) {
      sock = args[++i];
    } else if (!strcmp(cmd, "decode") && !strcmp(a, "--secret-file") &&
               i + 1 < nargs) {
      secret_file = args[++i];
    } else if (!strcmp(cmd, "decode") && !strcmp(a, "--state") &&
               i + 1 < nargs) {
      state_file = args[++i];
    } else if (a[0] == '-' && a[1]) {
      fprintf(stderr, "wgautomesh: unknown option %s\n", a);
      usage(stderr);
      return EXIT_USAGE;
    } else if (!strcmp(cmd, "decode") || npos++) {
      fprintf(stderr, "wgautomesh: unexpected argument %s\n", a);
      usage(stderr);
      return EXIT_USAGE;
    } else {
      path = a;
    }
  }
  if (json && prom) {
    fprintf(stderr, "wgautomesh: --json and --prometheus exclude each "
                    "other\n");
    return EXIT_USAGE;
  }
  if (secret_file && state_file) {
    fprintf(stderr, "wgautomesh: --secret-file and --state exclude each "
                    "other\n");
    return EXIT_USAGE;
  }

  if (!strcmp(cmd, "check"))
    return cmd_check(path);
  if (!strcmp(cmd, "status"))
    return cmd_status(path, sock, json, prom);
  if (!strcmp(cmd, "decode"))
    return cmd_decode(secret_file, state_file);
  return run(path, have_verbosity ? log_level : -1);
}
