/* SPDX-License-Identifier: MIT */
/*
 * The daemon: start-up, the event loop, reload (SIGHUP) and the signals
 * that end it. Everything here moves bytes between the engine
 * (libwgautomesh) and the OS; every decision about peers and endpoints is
 * the engine's.
 */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <net/if.h>
#include <netdb.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include "config.h"
#include "control.h"
#include "daemon.h"
#include "forward.h"
#include "gossip_sock.h"
#include "log.h"
#include "notify.h"
#include "resolve.h"
#include "roam_watch.h"
#include "sockaddr.h"
#include "state_io.h"
#include "status.h"
#include "subcommands.h"
#include "portmap.h"
#include "wg.h"

/* Hostname endpoints are looked up again this often. */
#define RESOLVE_INTERVAL (60 * WGAM_SECONDS)
/* An interface read while it was going away is read again this soon. */
#define GONE_RECHECK (100 * WGAM_MILLISECONDS)
/* Datagrams read per socket per wakeup, so one busy socket cannot starve
 * the others (or the timers) during a flood. */
#define RECV_BURST 64
/* pollfd slots while control clients are connected: the epoll set, the
 * control socket and its clients. */
#define NPOLL (2 + CONTROL_MAX_CLIENTS)

/* What an epoll event is about (its data.u32). */
enum ev_tag {
  EV_SIGNAL,
  EV_GOSSIP4,
  EV_GOSSIP6,
  EV_PORTMAP,
  EV_RESOLVER,
  EV_CONTROL,
  EV_LINKS,
  EV_WATCH,
  EV_NTAGS
};

struct daemon {
  const char *config_path;
  struct config cfg;
  int cli_log_level; /* -1: from the config */

  wgam_mesh *mesh;
  wgam_tstamp device_interval;

  wg_backend *wg;
  struct wg_dev dev;
  int dev_failing;
  unsigned ifindex;         /* of the interface last read (0: unknown) */
  wgam_tstamp dev_retry_at; /* 0: no retry pending */
  wgam_tstamp lan6_at;      /* join the IPv6 LAN group at a read after */
  uint16_t listen_port;

  struct gossip_socks gossip;
  struct forward fwd;
  int sigfd;
  struct control *ctl;
  portmap *pm;
  struct resolver *res;
  wgam_tstamp resolve_at; /* WGAM_TSTAMP_NONE: no hostnames */
  /* The roam watch; listened to from one device read to the first hint
   * after it (the hint asks for the next read). */
  struct roam_watch *watch;
  int watch_armed;
  int watch_full; /* too many peers for it: hints off */

  wgam_peer_update *upds;
  size_t capupds;
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

/* ---- relaying --------------------------------------------------------- */

static int mesh_has_ipv6(const struct config *cfg) {
  for (size_t i = 0; i < cfg->npeers; i++) {
    if (cfg->peers[i].address.family == WGAM_AF_INET6)
      return 1;
    for (size_t k = 0; k < cfg->peers[i].nprefixes; k++)
      if (cfg->peers[i].prefixes[k].addr.family == WGAM_AF_INET6)
        return 1;
  }
  return 0;
}

/* We are a relay when our own entry of the configuration says so; which
 * entry is ours is known once the device has a key. Forwarding follows. */
static void update_relay(struct daemon *d) {
  const struct config_peer *self = NULL;

  if (d->dev.dev.has_pubkey)
    self = config_find_peer(&d->cfg, d->dev.dev.pubkey);
  forward_set(&d->fwd, d->cfg.interface, self && self->relay,
              mesh_has_ipv6(&d->cfg));
}

/* ---- the device ------------------------------------------------------- */

/* LAN discovery over IPv6: the gossip socket joins ff05::1 on each link. */
static int lan6_wanted(const struct daemon *d) {
  return d->gossip.fd6 >= 0 && d->cfg.lan_discovery && d->cfg.ipv6;
}

/* Joins the IPv6 LAN group on the interfaces that lack it (listing them is
 * a netlink dump): again when links or IPv6 addresses change, and at the
 * next device reads while one could not join; at every read when links
 * cannot be watched. */
static void join_lan6(struct daemon *d, wgam_tstamp now) {
  int failed = gossip_join_lan6(&d->gossip, d->cfg.interface);

  d->lan6_at = failed || d->gossip.linkfd < 0 ? now : WGAM_TSTAMP_NONE;
}

/*
 * After a device read: the watch learns the endpoints the device has now,
 * and listens again. A source reported before the read and still unknown
 * has the device read once more (WireGuard may not have handled its packet
 * yet); one that is still unknown then is left out as a stranger.
 */
static void watch_update(struct daemon *d, wgam_tstamp now) {
  int rc;

  if (!d->watch)
    return;
  rc = roam_watch_set(d->watch, &d->dev.dev, d->ifindex);
  if (rc == -E2BIG) {
    if (!d->watch_full)
      log_info("roam watch off: %zu peers on the interface, more than %d; "
               "probing instead",
               d->dev.dev.npeers, ROAM_WATCH_MAX);
    d->watch_full = 1;
    wgam_mesh_set_roam_hints(d->mesh, 0, now);
    return;
  }
  if (rc < 0) {
    log_warn("roam watch off: %s; probing instead", strerror(-rc));
    roam_watch_close(d->watch);
    d->watch = NULL;
    d->watch_armed = 0;
    wgam_mesh_set_roam_hints(d->mesh, 0, now);
    return;
  }
  if (d->watch_full)
    log_info("roam watch on again: %zu peers", d->dev.dev.npeers);
  d->watch_full = 0;
  wgam_mesh_set_roam_hints(d->mesh, 1, now);
  if (rc == 1)
    wgam_mesh_roam_hint(d->mesh, now);
  d->watch_armed = 1;
}

/* Opens the watch at start (roam_watch in the configuration). */
static void watch_start(struct daemon *d, wgam_tstamp now) {
  int rc;

  if (!d->cfg.roam_watch || d->cfg.policy != WGAM_POLICY_FAST)
    return;
  rc = roam_watch_open(&d->watch);
  if (rc) {
    log_info("no roam watch (%s); probing instead",
             rc == -EPERM ? "no CAP_NET_RAW" : strerror(-rc));
    return;
  }
  watch_update(d, now);
  if (d->watch)
    log_info("roam watch on (UDP port %u)", d->listen_port);
}

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
  if (lan6_wanted(d) && (d->dev_failing || now >= d->lan6_at))
    join_lan6(d, now);
  if (d->dev_failing)
    log_info("interface %s is back", d->cfg.interface);
  /* Not before it has a key: the key comes a moment after the interface,
   * and the link changes that follow have it read again. */
  if (d->dev_failing || !d->ifindex)
    d->ifindex = d->dev.dev.has_pubkey ? if_nametoindex(d->cfg.interface) : 0;
  d->dev_failing = 0;
  /* A userspace WireGuard shutting down still answers for a moment after
   * its interface went: read again soon, not at the engine's next read
   * (half a minute away in a mesh at rest with the roam watch). */
  d->dev_retry_at =
      d->dev.dev.has_pubkey && !d->ifindex ? now + GONE_RECHECK : 0;
  d->listen_port = d->dev.dev.listen_port;
  update_relay(d);
  watch_update(d, now);
  return 0;
fail:
  if (rc == -ENODEV && d->wg) {
    /* The interface went away: reopen it from scratch when it returns,
     * possibly with the other backend. */
    wg_close(d->wg);
    d->wg = NULL;
    forward_forget(&d->fwd);
  }
  if (!d->dev_failing)
    log_err("interface %s: %s; retrying every %" PRIu64 " ms", d->cfg.interface,
            rc == -ENODEV ? "no such WireGuard interface" : strerror(-rc),
            d->device_interval / WGAM_MILLISECONDS);
  d->dev_failing = 1;
  d->dev_retry_at = now + d->device_interval;
  return 0;
}

/* Stores @upd as d->upds[@i], growing the array. Returns 0 or
 * WGAM_ERR_NOMEM. */
static int put_upd(struct daemon *d, size_t i, const wgam_peer_update *upd) {
  if (i == d->capupds) {
    size_t cap = d->capupds ? d->capupds * 2 : 16;
    wgam_peer_update *g = realloc(d->upds, cap * sizeof(*g));

    if (!g)
      return WGAM_ERR_NOMEM;
    d->upds = g;
    d->capupds = cap;
  }
  d->upds[i] = *upd;
  return 0;
}

/*
 * An address left one of the host's interfaces (a DHCP lease renumbered,
 * a link went). WireGuard may still send from it: wireguard-go keeps the
 * source address it last used towards a peer until that peer's endpoint is
 * set again, and its every packet fails meanwhile, so no peer's roam watch
 * sees the node's new address until a handshake retry, some 15 s later.
 * Setting every endpoint again, as read just now, clears that source (the
 * kernel module clears it too; for it this costs one netlink message).
 */
static void repoint(struct daemon *d, wgam_tstamp now) {
  wgam_peer_update upd = {.flags = WGAM_PEER_HAS_ENDPOINT};
  size_t i, n = 0;
  int rc;

  read_device(d, now);
  if (!d->wg || d->dev_failing)
    return;
  for (i = 0; i < d->dev.dev.npeers; i++) {
    const wgam_device_peer *p = &d->dev.dev.peers[i];

    if (p->endpoint.family == WGAM_AF_NONE)
      continue;
    memcpy(upd.pubkey, p->pubkey, WGAM_KEY_LEN);
    upd.endpoint = p->endpoint;
    if (put_upd(d, n++, &upd)) {
      log_err("setting endpoints again: %s", strerror(ENOMEM));
      return;
    }
  }
  if (!n)
    return;
  rc = wg_set(d->wg, d->upds, n);
  if (rc)
    log_warn("interface %s: setting %zu endpoints again: %s", d->cfg.interface,
             n, strerror(-rc));
  else
    log_debug("an address went: %zu endpoints set again", n);
}

/* Sends queued datagrams and applies pending device changes in one call. */
static int flush(struct daemon *d, wgam_tstamp now) {
  uint8_t pkt[WGAM_MAX_DATAGRAM_LEN];
  wgam_peer_update upd;
  wgam_addr dst;
  wgam_ssize n;
  size_t nupds = 0;

  while (wgam_mesh_next_peer_update(d->mesh, &upd) == 1) {
    if (put_upd(d, nupds++, &upd))
      return WGAM_ERR_NOMEM;
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
  while ((n = wgam_mesh_write_pkt(d->mesh, &dst, pkt, sizeof(pkt), now)) > 0)
    gossip_send(&d->gossip, &dst, pkt, (size_t)n);
  if (n < 0) {
    log_err("engine: %s", wgam_strerror((int)n));
    if (wgam_err_is_fatal((int)n))
      return (int)n;
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

/* The control socket's commands: "status" (JSON), "table", "metrics"
 * (Prometheus text), each rendered from one status model. */
static void control_cb(void *user_data, const char *cmd, struct sbuf *reply) {
  struct daemon *d = user_data;
  struct status st;
  int json = !strcmp(cmd, "status"), table = !strcmp(cmd, "table");
  int prom = !strcmp(cmd, "metrics");

  if (!json && !table && !prom) {
    sb_puts(reply, "{\"error\":\"unknown command\"}\n");
    return;
  }
  if (status_collect(&st, d->mesh, &d->cfg,
                     d->wg ? wg_backend_name(d->wg) : NULL,
                     (uint64_t)time(NULL))) {
    sb_puts(reply, prom ? "# error: out of memory\n"
                        : "{\"error\":\"out of memory\"}\n");
    return;
  }
  st.relay = d->fwd.relay;
  st.roam_watch = d->watch && !d->watch_full;
  if (d->pm) {
    struct portmap_endpoint eps[PORTMAP_MAX];
    uint64_t now_ms = now_mono() / WGAM_MILLISECONDS;
    int n = portmap_endpoints(d->pm, eps, PORTMAP_MAX);

    for (int i = 0; i < n && st.nexternal < STATUS_MAX_EXTERNAL; i++) {
      struct status_external *e = &st.external[st.nexternal++];

      e->protocol = portmap_proto_name(eps[i].proto);
      e->addr = eps[i].addr;
      e->lease = eps[i].lifetime;
      e->expires_in = eps[i].expiry_ms == UINT64_MAX ? -1
                      : eps[i].expiry_ms > now_ms
                          ? (int64_t)((eps[i].expiry_ms - now_ms) / 1000u)
                          : 0;
    }
  }
  if (json)
    status_render_json(reply, &st);
  else if (table)
    status_render_table(reply, &st);
  else
    status_render_prometheus(reply, &st);
  status_free(&st);
}

/* ---- reload ----------------------------------------------------------- */

static int str_differs(const char *a, const char *b) {
  if (!a || !b)
    return a != b;
  return strcmp(a, b) != 0;
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
  config_diag_print(&diag, 1);
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
  RESTART_IF(nc.roam_watch != c->roam_watch, "roam_watch");
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
  update_relay(d);
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
    sockaddr_to_wgam(&src, (struct sockaddr *)&ss, sl);
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

/* The port-mapping worker's endpoints (IPv4 mapping, IPv6 pinhole) are
 * announced as ours; an empty list withdraws them. */
static void handle_portmap(struct daemon *d, wgam_tstamp now) {
  struct portmap_endpoint eps[PORTMAP_MAX];
  wgam_addr addrs[PORTMAP_MAX];
  size_t n;
  int rc;

  while ((rc = portmap_results(d->pm, eps, PORTMAP_MAX)) >= 0) {
    n = 0;
    for (int i = 0; i < rc; i++) {
      char s[WGAM_ADDR_STRLEN];

      addr_str(s, sizeof(s), &eps[i].addr);
      if (!wgam_addr_is_valid_endpoint(&eps[i].addr) ||
          n >= WGAM_MAX_EXTERNAL) {
        log_warn("%s external endpoint %s is not usable",
                 portmap_proto_name(eps[i].proto), s);
        continue;
      }
      log_info("%s external endpoint %s", portmap_proto_name(eps[i].proto), s);
      addrs[n++] = eps[i].addr;
    }
    wgam_mesh_set_external_endpoints(d->mesh, n ? addrs : NULL, n, now);
  }
}

static void handle_wants(struct daemon *d, wgam_tstamp now) {
  uint32_t wants = wgam_mesh_get_wants(d->mesh);

  /* A missing interface is retried whether or not the engine asks. */
  if (((wants & WGAM_WANT_DEVICE) || d->dev_failing || d->dev_retry_at) &&
      (d->dev_retry_at == 0 || now >= d->dev_retry_at))
    read_device(d, now);
  if (wants & WGAM_WANT_STATE)
    save_state(d);
  if (wants & WGAM_WANT_IGD) {
    if (d->cfg.upnp_port && d->listen_port) {
      if (!d->pm) {
        int rc = portmap_start(&d->pm, d->cfg.upnp_port, d->listen_port,
                               d->cfg.ipv6);

        if (rc)
          log_warn("cannot start port mapping: %s", strerror(-rc));
      }
      if (d->pm)
        portmap_renew(d->pm, d->listen_port);
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

static int ep_set(int epfd, int op, int fd, enum ev_tag tag) {
  struct epoll_event ev = {.events = EPOLLIN, .data.u32 = tag};

  if (epoll_ctl(epfd, op, fd, &ev) < 0) {
    log_err("epoll_ctl: %s", strerror(errno));
    return -errno;
  }
  return 0;
}

/* Links or addresses came or went (the rtnetlink watch). */
static void links_changed(struct daemon *d, wgam_tstamp now) {
  int seen = gossip_links_changed(&d->gossip, d->ifindex);

  if (!seen)
    return;
  if (lan6_wanted(d))
    join_lan6(d, now);
  if (d->dev_failing) {
    d->dev_retry_at = now;
  } else if (if_nametoindex(d->cfg.interface) != d->ifindex) {
    /* Deleted, or deleted and created again, since the last read: the
     * engine learns it now, not at its next periodic read (a public
     * node's comes seconds apart when every peer is quiet). */
    log_debug("interface %s: link replaced or gone; reading it now",
              d->cfg.interface);
    d->ifindex = 0;
    read_device(d, now);
  } else if (seen & LINKS_ADDR_GONE) {
    repoint(d, now);
  }
}

/*
 * The long-lived descriptors stay in one epoll set, so a wakeup costs one
 * epoll_wait rather than a poll that checks every descriptor again. While
 * control clients are connected (a status query, rarely), they are polled
 * beside the epoll set, and the control socket moves out of the set (its
 * module takes no new client when full).
 */
static int run_loop(struct daemon *d) {
  struct epoll_event evs[EV_NTAGS];
  struct pollfd pfds[NPOLL];
  int epfd, ctl_fd = control_fd(d->ctl), ctl_in_set = 0, pm_in_set = 0;
  int res_in_set = 0, watch_in_set = 0, rc = 0;
  wgam_tstamp now = now_mono();

  epfd = epoll_create1(EPOLL_CLOEXEC);
  if (epfd < 0) {
    log_err("epoll_create1: %s", strerror(errno));
    return -errno;
  }
  if ((rc = ep_set(epfd, EPOLL_CTL_ADD, d->sigfd, EV_SIGNAL)) ||
      (d->gossip.fd4 >= 0 &&
       (rc = ep_set(epfd, EPOLL_CTL_ADD, d->gossip.fd4, EV_GOSSIP4))) ||
      (d->gossip.fd6 >= 0 &&
       (rc = ep_set(epfd, EPOLL_CTL_ADD, d->gossip.fd6, EV_GOSSIP6))) ||
      (d->gossip.linkfd >= 0 &&
       (rc = ep_set(epfd, EPOLL_CTL_ADD, d->gossip.linkfd, EV_LINKS))))
    goto out;

  while (!d->quit) {
    struct pollfd *cpfds = pfds + 1;
    size_t nctl;
    unsigned ready = 0;
    int timeout, nev, idle;
    wgam_addr unknown;

    if (now >= wgam_mesh_get_expiry(d->mesh)) {
      rc = wgam_mesh_handle_expiry(d->mesh, now);
      if (rc) {
        log_err("engine: %s", wgam_strerror(rc));
        goto out;
      }
    }
    if (d->resolve_at != WGAM_TSTAMP_NONE && now >= d->resolve_at)
      resolve_submit(d, now);
    handle_wants(d, now);
    rc = flush(d, now);
    if (rc)
      goto out;

    timeout = poll_timeout(d, now);
    if (d->pm && !pm_in_set) {
      if ((rc = ep_set(epfd, EPOLL_CTL_ADD, portmap_fd(d->pm), EV_PORTMAP)))
        goto out;
      pm_in_set = 1;
    }
    if (d->res && !res_in_set) {
      if ((rc = ep_set(epfd, EPOLL_CTL_ADD, resolver_fd(d->res), EV_RESOLVER)))
        goto out;
      res_in_set = 1;
    }
    if ((d->watch && d->watch_armed) != watch_in_set) {
      watch_in_set = !watch_in_set;
      /* A watch closed after a failure left the set with its descriptor. */
      if (d->watch &&
          (rc = ep_set(epfd, watch_in_set ? EPOLL_CTL_ADD : EPOLL_CTL_DEL,
                       roam_watch_fd(d->watch), EV_WATCH)))
        goto out;
    }
    nctl = control_pollfds(d->ctl, cpfds, NPOLL - 1);
    idle = nctl == 1 && cpfds[0].fd == ctl_fd;
    if (idle != ctl_in_set) {
      if ((rc = ep_set(epfd, idle ? EPOLL_CTL_ADD : EPOLL_CTL_DEL, ctl_fd,
                       EV_CONTROL)))
        goto out;
      ctl_in_set = idle;
    }

    if (idle) {
      nev = epoll_wait(epfd, evs, EV_NTAGS, timeout);
      cpfds[0].revents = 0;
    } else {
      pfds[0] = (struct pollfd){.fd = epfd, .events = POLLIN};
      nev = poll(pfds, nctl + 1, timeout);
      if (nev > 0)
        nev =
            (pfds[0].revents & POLLIN) ? epoll_wait(epfd, evs, EV_NTAGS, 0) : 0;
    }
    if (nev < 0 && errno != EINTR) {
      rc = -errno;
      log_err("%s: %s", idle ? "epoll_wait" : "poll", strerror(errno));
      goto out;
    }
    now = now_mono();
    for (int i = 0; i < nev; i++)
      ready |= 1u << evs[i].data.u32;
    if (ready & (1u << EV_SIGNAL))
      handle_signals(d, now);
    if ((ready & (1u << EV_GOSSIP4)) &&
        (rc = recv_gossip(d, d->gossip.fd4, now)))
      goto out;
    if ((ready & (1u << EV_GOSSIP6)) &&
        (rc = recv_gossip(d, d->gossip.fd6, now)))
      goto out;
    if ((ready & (1u << EV_WATCH)) && d->watch &&
        roam_watch_read(d->watch, &unknown)) {
      if (log_level >= WGAM_LOG_DEBUG) {
        char a[WGAM_ADDR_STRLEN];

        addr_str(a, sizeof(a), &unknown);
        log_debug("roam watch: a packet from %s, unknown at the last read", a);
      }
      wgam_mesh_roam_hint(d->mesh, now);
      d->watch_armed = 0; /* until the read the hint asks for */
    }
    if (ready & (1u << EV_PORTMAP))
      handle_portmap(d, now);
    if (ready & (1u << EV_RESOLVER))
      resolve_results(d, now);
    if (ready & (1u << EV_LINKS))
      links_changed(d, now);
    if (ready & (1u << EV_CONTROL))
      cpfds[0].revents = POLLIN;
    /* Also when nothing is ready: clients past their deadline go. */
    control_handle(d->ctl, cpfds, nctl, now);
  }
out:
  close(epfd);
  return rc;
}

int daemon_run(const char *path, int cli_level) {
  struct daemon dd = {.config_path = path,
                      .cli_log_level = cli_level,
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
  gossip_init(&d->gossip);
  forward_init(&d->fwd);
  rc = config_load(&d->cfg, path, 0, &diag);
  config_diag_print(&diag, 0);
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

  d->gossip.fd4 = gossip_socket(AF_INET, d->cfg.gossip_port);
  if (d->gossip.fd4 < 0) {
    log_err("gossip socket 0.0.0.0:%u: %s", d->cfg.gossip_port,
            strerror(-d->gossip.fd4));
    goto out;
  }
  d->gossip.fd6 = gossip_socket(AF_INET6, d->cfg.gossip_port);
  if (d->gossip.fd6 < 0) {
    /* IPv6 may be disabled on this host: IPv4 alone is fine. */
    log_warn("no IPv6 gossip socket [::]:%u: %s", d->cfg.gossip_port,
             strerror(-d->gossip.fd6));
  }
  /* Link changes: the interface deleted, or back after it was, is read at
   * once rather than at the next read or retry, and the IPv6 LAN group is
   * joined again on the links that came up. */
  rc = gossip_watch_links(&d->gossip);
  if (rc)
    log_debug("cannot watch links (%s): a deleted interface is looked for "
              "every device interval, and the IPv6 LAN group joined again "
              "at every device read",
              strerror(-rc));
  if (lan6_wanted(d))
    join_lan6(d, now);

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
  update_relay(d);
  d->ifindex = d->dev.dev.has_pubkey ? if_nametoindex(d->cfg.interface) : 0;
  watch_start(d, now);

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
  portmap_stop(d->pm);
  forward_restore(&d->fwd);
  control_close(d->ctl);
  resolver_free(d->res);
  roam_watch_close(d->watch);
  if (d->sigfd >= 0)
    close(d->sigfd);
  gossip_close(&d->gossip);
  wg_close(d->wg);
  wg_dev_free(&d->dev);
  wgam_mesh_del(d->mesh);
  free(d->upds);
  config_free(&d->cfg);
  return ret;
}
