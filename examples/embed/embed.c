/* SPDX-License-Identifier: MIT */
/*
 * embed: two libwgautomesh engines in one process, each with its own UDP
 * socket, its own event loop duties and a fake WireGuard device, exchanging
 * real datagrams.
 *
 * The "tunnel" is the loopback interface: node A's mesh address is
 * 127.0.0.1 and node B's is 127.0.0.2, so the gossip the engines address to
 * a peer's mesh address (as they would through wg0) reaches the other
 * engine's socket. A third peer, C (127.0.0.3), runs nowhere: it is a node
 * behind NAT at 203.0.113.3:41000 with which only A has a WireGuard session.
 *
 * What must happen, and is checked before exiting 0:
 *   - B asks A for its gossip store (Request), A answers (Announce);
 *   - A propagates the endpoint its device sees for C to B (Announce);
 *   - B's engine configures C on B's device with that endpoint, the fake
 *     device "handshakes", and B's engine reports C connected via gossip;
 *   - B's engine writes a state file that holds C's endpoint.
 *
 * Build against an installed libwgautomesh (pkg-config only):
 *   cc $(pkg-config --cflags libwgautomesh) embed.c \
 *      $(pkg-config --libs libwgautomesh) -o embed
 */
#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <wgautomesh.h>

#define NNODES 2
#define MAX_DEV_PEERS 8
#define RUN_LIMIT (10 * WGAM_SECONDS)
/* WireGuard re-handshakes a live session every two minutes. */
#define REKEY_SECONDS 120

static const char *const type_names[WGAM_MSG_TYPE_COUNT] = {
    "Ping", "Pong", "Announce", "Request", "LanBroadcast"};

/* The mesh: every node has the same list (its own entry is ignored). */
static const struct {
  const char *name, *pubkey, *mesh_addr, *real_endpoint;
} mesh_cfg[] = {
    {"A", "lEFx+aA1pzIMPOhRAwFvmTJ1GL6enLup7Tt6y0PDd1k=", "127.0.0.1",
     "198.51.100.1:51820"},
    {"B", "NpGxDw7K3av+GCqvk91iGMzXatjSG08RDFN/gHLAnFM=", "127.0.0.2",
     "198.51.100.2:51820"},
    {"C", "CR5wxWBfBHY0SI1vHZ99TMxICWIZ6Ez6u9AnBAV4WUk=", "127.0.0.3",
     "203.0.113.3:41000"},
};
#define NCFG (sizeof(mesh_cfg) / sizeof(mesh_cfg[0]))

/* ---- a fake WireGuard device ------------------------------------------ */

struct fake_peer {
  uint8_t pubkey[WGAM_KEY_LEN];
  wgam_addr endpoint;
  uint64_t last_handshake; /* Unix seconds, 0 = never */
  uint64_t rx_bytes;
  uint16_t keepalive;
  wgam_cidr allowedip;
  size_t nallowedips;
};

struct fake_wg {
  uint8_t pubkey[WGAM_KEY_LEN];
  uint16_t listen_port;
  struct fake_peer peers[MAX_DEV_PEERS];
  size_t npeers;
};

struct node {
  const char *name;
  wgam_mesh *mesh;
  int fd;
  wgam_addr mesh_addr;
  struct fake_wg wg;
  uint8_t state[4096];
  wgam_ssize statelen; /* 0: never saved */
};

static struct node nodes[NNODES];

static wgam_tstamp now_mono(void) {
  struct timespec ts;

  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (wgam_tstamp)ts.tv_sec * WGAM_SECONDS + (wgam_tstamp)ts.tv_nsec;
}

static uint64_t now_unix(void) {
  return (uint64_t)time(NULL);
}

static void key_of(uint8_t key[WGAM_KEY_LEN], size_t i) {
  if (wgam_key_from_base64(key, mesh_cfg[i].pubkey,
                           strlen(mesh_cfg[i].pubkey)) != 0)
    abort(); /* the table above is wrong */
}

static void addr_of(wgam_addr *a, const char *s, int port_optional) {
  if (wgam_addr_parse(a, s, port_optional) != 0)
    abort();
}

static const char *fmt_addr(char buf[WGAM_ADDR_STRLEN], const wgam_addr *a) {
  wgam_addr_format(buf, WGAM_ADDR_STRLEN, a, 1);
  return buf;
}

static const char *name_of_key(const uint8_t key[WGAM_KEY_LEN]) {
  uint8_t k[WGAM_KEY_LEN];

  for (size_t i = 0; i < NCFG; i++) {
    key_of(k, i);
    if (!memcmp(k, key, WGAM_KEY_LEN))
      return mesh_cfg[i].name;
  }
  return "?";
}

static struct fake_peer *wg_find(struct fake_wg *wg,
                                 const uint8_t key[WGAM_KEY_LEN]) {
  for (size_t i = 0; i < wg->npeers; i++)
    if (!memcmp(wg->peers[i].pubkey, key, WGAM_KEY_LEN))
      return &wg->peers[i];
  return NULL;
}

static void wg_add(struct fake_wg *wg, size_t cfg_idx, uint64_t handshake) {
  struct fake_peer *p = &wg->peers[wg->npeers++];

  memset(p, 0, sizeof(*p));
  key_of(p->pubkey, cfg_idx);
  addr_of(&p->endpoint, mesh_cfg[cfg_idx].real_endpoint, 0);
  p->last_handshake = handshake;
  addr_of(&p->allowedip.addr, mesh_cfg[cfg_idx].mesh_addr, 1);
  p->allowedip.prefixlen = 32;
  p->nallowedips = 1;
}

/*
 * What a real device would show by itself: a peer whose endpoint is its
 * real address completes a handshake, and receives some bytes. Any other
 * endpoint leads nowhere.
 */
static void wg_simulate(struct fake_wg *wg, uint64_t unix_now) {
  for (size_t i = 0; i < wg->npeers; i++) {
    struct fake_peer *p = &wg->peers[i];
    wgam_addr real;

    for (size_t c = 0; c < NCFG; c++) {
      uint8_t k[WGAM_KEY_LEN];

      key_of(k, c);
      if (memcmp(k, p->pubkey, WGAM_KEY_LEN))
        continue;
      addr_of(&real, mesh_cfg[c].real_endpoint, 0);
      if (!wgam_addr_equal(&real, &p->endpoint))
        break;
      if (unix_now - p->last_handshake > REKEY_SECONDS)
        p->last_handshake = unix_now;
      p->rx_bytes += 92;
    }
  }
}

/* Hands the device state to the engine, as the daemon does after reading
 * the kernel (netlink) or wireguard-go (UAPI). */
static int wg_observe(struct node *n, wgam_tstamp ts) {
  wgam_device_peer dp[MAX_DEV_PEERS];
  uint64_t unix_now = now_unix();
  wgam_device dev;

  wg_simulate(&n->wg, unix_now);
  memset(&dev, 0, sizeof(dev));
  memcpy(dev.pubkey, n->wg.pubkey, WGAM_KEY_LEN);
  dev.has_pubkey = 1;
  dev.listen_port = n->wg.listen_port;
  for (size_t i = 0; i < n->wg.npeers; i++) {
    const struct fake_peer *p = &n->wg.peers[i];

    memset(&dp[i], 0, sizeof(dp[i]));
    memcpy(dp[i].pubkey, p->pubkey, WGAM_KEY_LEN);
    dp[i].endpoint = p->endpoint;
    dp[i].last_handshake = p->last_handshake;
    dp[i].rx_bytes = p->rx_bytes;
    dp[i].persistent_keepalive = p->keepalive;
    dp[i].allowedips = p->nallowedips ? &p->allowedip : NULL;
    dp[i].nallowedips = p->nallowedips;
  }
  dev.peers = dp;
  dev.npeers = n->wg.npeers;
  return wgam_mesh_observe_device(n->mesh, &dev, ts, unix_now);
}

/* Applies one change, as `wg set` would. */
static void wg_apply(struct node *n, const wgam_peer_update *u) {
  struct fake_peer *p = wg_find(&n->wg, u->pubkey);
  char a[WGAM_ADDR_STRLEN], b[WGAM_ADDR_STRLEN];

  if (u->flags & WGAM_PEER_REMOVE_ME) {
    if (p)
      *p = n->wg.peers[--n->wg.npeers];
    printf("%s: device: remove peer %s\n", n->name, name_of_key(u->pubkey));
    return;
  }
  if (!p) {
    if (n->wg.npeers == MAX_DEV_PEERS)
      return;
    p = &n->wg.peers[n->wg.npeers++];
    memset(p, 0, sizeof(*p));
    memcpy(p->pubkey, u->pubkey, WGAM_KEY_LEN);
  }
  if (u->flags & WGAM_PEER_REPLACE_ALLOWEDIPS) {
    p->allowedip = u->allowedips[0];
    p->nallowedips = 1;
  }
  if (u->flags & WGAM_PEER_HAS_ENDPOINT)
    p->endpoint = u->endpoint;
  if (u->flags & WGAM_PEER_HAS_KEEPALIVE)
    p->keepalive = u->persistent_keepalive;
  wgam_addr_format(a, sizeof(a), &p->allowedip.addr, 0);
  printf("%s: device: peer %s allowed-ips %s/%u endpoint %s keepalive %u%s\n",
         n->name, name_of_key(u->pubkey), a, (unsigned)p->allowedip.prefixlen,
         fmt_addr(b, &p->endpoint), (unsigned)p->keepalive,
         u->flags & WGAM_PEER_HAS_ENDPOINT ? " (new endpoint)" : "");
}

/* ---- callbacks -------------------------------------------------------- */

static int rand_cb(void *user_data, uint8_t *dest, size_t destlen) {
  (void)user_data;
  while (destlen) {
    ssize_t r = getrandom(dest, destlen, 0);

    if (r < 0 && errno == EINTR)
      continue;
    if (r < 0)
      return -1;
    dest += r;
    destlen -= (size_t)r;
  }
  return 0;
}

static void log_cb(void *user_data, int level, const char *msg) {
  const struct node *n = user_data;

  (void)level;
  printf("%s: engine: %s\n", n->name, msg);
}

/* ---- datagrams -------------------------------------------------------- */

/* The message type behind the last change of a per-type counter. */
static const char *type_diff(const uint64_t before[WGAM_MSG_TYPE_COUNT],
                             const uint64_t after[WGAM_MSG_TYPE_COUNT]) {
  for (int t = 0; t < WGAM_MSG_TYPE_COUNT; t++)
    if (after[t] != before[t])
      return type_names[t];
  return "?";
}

static struct node *node_at(const wgam_addr *a) {
  for (size_t i = 0; i < NNODES; i++)
    if (a->family == WGAM_AF_INET && !memcmp(a->ip, nodes[i].mesh_addr.ip, 4))
      return &nodes[i];
  return NULL;
}

static void send_all(struct node *n, wgam_tstamp ts) {
  uint8_t pkt[WGAM_MAX_DATAGRAM_LEN];
  char d[WGAM_ADDR_STRLEN];
  wgam_stats before, after;
  wgam_addr dest;
  wgam_ssize len;

  for (;;) {
    wgam_mesh_get_stats(n->mesh, &before);
    len = wgam_mesh_write_pkt(n->mesh, &dest, pkt, sizeof(pkt), ts);
    if (len <= 0)
      break;
    wgam_mesh_get_stats(n->mesh, &after);
    /* The loopback "tunnel" reaches running nodes only; nothing leaves
     * this host. */
    struct node *to = node_at(&dest);
    if (!to) {
      printf("%s -> %s: %s, %zd bytes (nobody runs there: dropped)\n", n->name,
             fmt_addr(d, &dest), type_diff(before.pkts_out, after.pkts_out),
             len);
      continue;
    }
    struct sockaddr_in sin = {.sin_family = AF_INET,
                              .sin_port = htons(dest.port)};
    memcpy(&sin.sin_addr, dest.ip, 4);
    if (sendto(n->fd, pkt, (size_t)len, 0, (struct sockaddr *)&sin,
               sizeof(sin)) < 0) {
      printf("%s: sendto %s: %s\n", n->name, fmt_addr(d, &dest),
             strerror(errno));
      continue;
    }
    printf("%s -> %s: %s, %zd bytes\n", n->name, to->name,
           type_diff(before.pkts_out, after.pkts_out), len);
  }
  if (len < 0)
    printf("%s: write_pkt: %s\n", n->name, wgam_strerror((int)len));
}

static int recv_all(struct node *n, wgam_tstamp ts) {
  uint8_t pkt[WGAM_MAX_DATAGRAM_LEN + 1];
  wgam_stats before, after;

  for (;;) {
    struct sockaddr_in sin;
    socklen_t sl = sizeof(sin);
    wgam_addr src;
    ssize_t len;
    int rc;

    len = recvfrom(n->fd, pkt, sizeof(pkt), MSG_DONTWAIT,
                   (struct sockaddr *)&sin, &sl);
    if (len < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
      return 0;
    if (len < 0) {
      printf("%s: recvfrom: %s\n", n->name, strerror(errno));
      return -1;
    }
    memset(&src, 0, sizeof(src));
    src.family = WGAM_AF_INET;
    src.port = ntohs(sin.sin_port);
    memcpy(src.ip, &sin.sin_addr, 4);
    wgam_mesh_get_stats(n->mesh, &before);
    rc = wgam_mesh_read_pkt(n->mesh, &src, pkt, (size_t)len, ts);
    wgam_mesh_get_stats(n->mesh, &after);
    if (rc && wgam_err_is_fatal(rc)) {
      printf("%s: read_pkt: %s\n", n->name, wgam_strerror(rc));
      return -1;
    }
    printf("%s <- %s: %s, %zd bytes%s%s\n", n->name,
           node_at(&src) ? node_at(&src)->name : "?",
           type_diff(before.pkts_in, after.pkts_in), len, rc ? ": " : "",
           rc ? wgam_strerror(rc) : "");
  }
}

/* ---- the event loop's duties for one engine --------------------------- */

static int service(struct node *n, wgam_tstamp ts) {
  wgam_peer_update upd;
  uint32_t wants;
  int rc;

  if (ts >= wgam_mesh_get_expiry(n->mesh)) {
    rc = wgam_mesh_handle_expiry(n->mesh, ts);
    if (rc)
      return rc;
  }
  wants = wgam_mesh_get_wants(n->mesh);
  if (wants & WGAM_WANT_DEVICE) {
    rc = wg_observe(n, ts);
    if (rc)
      return rc;
  }
  if (wants & WGAM_WANT_STATE) {
    n->statelen = wgam_mesh_write_state(n->mesh, n->state, sizeof(n->state));
    if (n->statelen < 0)
      return (int)n->statelen;
    printf("%s: state file written (%zd bytes)\n", n->name, n->statelen);
  }
  if (wants & WGAM_WANT_IGD)
    wgam_mesh_ack_igd(n->mesh); /* no UPnP here */
  send_all(n, ts);
  while (wgam_mesh_next_peer_update(n->mesh, &upd) == 1)
    wg_apply(n, &upd);
  return 0;
}

/* ---- set-up ----------------------------------------------------------- */

static int open_socket(const wgam_addr *a, uint16_t *port) {
  struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons(*port)};
  socklen_t sl = sizeof(sin);
  int fd, rc;

  memcpy(&sin.sin_addr, a->ip, 4);
  fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return -errno;
  if (bind(fd, (struct sockaddr *)&sin, sizeof(sin)) < 0 ||
      getsockname(fd, (struct sockaddr *)&sin, &sl) < 0) {
    rc = -errno;
    close(fd);
    return rc;
  }
  *port = ntohs(sin.sin_port);
  return fd;
}

/* One gossip port for all nodes (the protocol requires it): A binds an
 * ephemeral port, B takes the same number on its own address. */
static int open_sockets(uint16_t *port) {
  for (int attempt = 0; attempt < 20; attempt++) {
    uint16_t p = 0;
    int fd0 = open_socket(&nodes[0].mesh_addr, &p), fd1;

    if (fd0 < 0)
      return fd0;
    fd1 = open_socket(&nodes[1].mesh_addr, &p);
    if (fd1 >= 0) {
      nodes[0].fd = fd0;
      nodes[1].fd = fd1;
      *port = p;
      return 0;
    }
    close(fd0);
    if (fd1 != -EADDRINUSE)
      return fd1;
  }
  return -EADDRINUSE;
}

static int start_node(struct node *n, size_t self, uint16_t port,
                      wgam_tstamp ts) {
  static const char secret[] = "embed example secret";
  wgam_peer_config peers[NCFG];
  wgam_settings s;
  int rc;

  wgam_settings_default(&s);
  s.secret = (const uint8_t *)secret;
  s.secretlen = sizeof(secret) - 1;
  s.gossip_port = port;
  s.flags = WGAM_SETTINGS_PERSIST; /* no LAN broadcast off this host */
  s.device_interval = 500 * WGAM_MILLISECONDS;
  s.persist_interval = 200 * WGAM_MILLISECONDS;
  s.rand = rand_cb;
  s.log = log_cb;
  s.log_level = WGAM_LOG_INFO;
  s.user_data = n;
  rc = wgam_mesh_new(&n->mesh, &s, ts);
  if (rc)
    return rc;

  memset(peers, 0, sizeof(peers));
  for (size_t i = 0; i < NCFG; i++) {
    key_of(peers[i].pubkey, i);
    addr_of(&peers[i].address, mesh_cfg[i].mesh_addr, 1);
  }
  rc = wgam_mesh_set_peers(n->mesh, peers, NCFG, ts);
  if (rc)
    return rc;

  key_of(n->wg.pubkey, self);
  n->wg.listen_port = 51820;
  return 0;
}

/* ---- checks ----------------------------------------------------------- */

static int peer_info(const struct node *n, size_t cfg_idx,
                     wgam_peer_info *info) {
  uint8_t key[WGAM_KEY_LEN];

  key_of(key, cfg_idx);
  for (size_t i = 0; i < wgam_mesh_get_npeers(n->mesh); i++)
    if (!wgam_mesh_get_peer_info(n->mesh, i, info) &&
        !memcmp(info->pubkey, key, WGAM_KEY_LEN))
      return 0;
  return -1;
}

struct state_check {
  wgam_addr want;
  int found;
  int verbose;
};

static int state_entry(const uint8_t *pubkey, size_t pubkeylen,
                       const wgam_endpoint *eps, size_t neps, void *user_data) {
  struct state_check *c = user_data;
  char a[WGAM_ADDR_STRLEN];

  if (c->verbose)
    printf("  %.*s:", (int)pubkeylen, (const char *)pubkey);
  for (size_t i = 0; i < neps; i++) {
    if (c->verbose)
      printf(" %s@%" PRIu64, fmt_addr(a, &eps[i].addr), eps[i].time);
    if (wgam_addr_equal(&eps[i].addr, &c->want))
      c->found = 1;
  }
  if (c->verbose)
    printf("\n");
  return 0;
}

static int done(int verbose) {
  struct node *a = &nodes[0], *b = &nodes[1];
  wgam_stats sa, sb;
  wgam_peer_info c;
  struct state_check sc = {.found = 0, .verbose = verbose};
  int ok = 1;

  wgam_mesh_get_stats(a->mesh, &sa);
  wgam_mesh_get_stats(b->mesh, &sb);
  addr_of(&sc.want, mesh_cfg[2].real_endpoint, 0);
  if (peer_info(b, 2, &c) || c.state != WGAM_PEER_CONNECTED ||
      c.source != WGAM_SOURCE_GOSSIP || !wgam_addr_equal(&c.endpoint, &sc.want))
    ok = 0;
  if (sa.pkts_in[WGAM_MSG_REQUEST] == 0 || sb.pkts_in[WGAM_MSG_ANNOUNCE] == 0)
    ok = 0;
  if (b->statelen > 0 &&
      wgam_state_parse(b->state, (size_t)b->statelen, state_entry, &sc) != 0)
    return -1;
  if (!sc.found)
    ok = 0;
  if (verbose) {
    char e[WGAM_ADDR_STRLEN];

    printf("B sees C: state %s, endpoint %s from %s\n",
           wgam_peer_state_name(c.state), fmt_addr(e, &c.endpoint),
           wgam_source_name(c.source));
    printf("A: in %" PRIu64 " Request, out %" PRIu64 " Announce; "
           "B: in %" PRIu64 " Announce, %" PRIu64 " bytes\n",
           sa.pkts_in[WGAM_MSG_REQUEST], sa.pkts_out[WGAM_MSG_ANNOUNCE],
           sb.pkts_in[WGAM_MSG_ANNOUNCE], sb.bytes_in);
  }
  return ok;
}

int main(void) {
  wgam_tstamp start, now;
  uint16_t port;
  int rc, ret = 1;

  setvbuf(stdout, NULL, _IOLBF, 0);
  printf("libwgautomesh %s\n", WGAM_VERSION);
  for (size_t i = 0; i < NNODES; i++) {
    nodes[i].name = mesh_cfg[i].name;
    nodes[i].fd = -1;
    addr_of(&nodes[i].mesh_addr, mesh_cfg[i].mesh_addr, 1);
  }
  rc = open_sockets(&port);
  if (rc) {
    fprintf(stderr, "embed: gossip sockets on 127.0.0.1/2: %s\n",
            strerror(-rc));
    return 1;
  }
  printf("gossip port %u on 127.0.0.1 (A) and 127.0.0.2 (B)\n", port);

  start = now_mono();
  for (size_t i = 0; i < NNODES; i++) {
    rc = start_node(&nodes[i], i, port, start);
    if (rc) {
      fprintf(stderr, "embed: engine %s: %s\n", nodes[i].name,
              wgam_strerror(rc));
      goto out;
    }
  }
  /* A has sessions with B and with C (behind NAT); B only with A. */
  wg_add(&nodes[0].wg, 1, now_unix() - 10);
  wg_add(&nodes[0].wg, 2, now_unix() - 20);
  wg_add(&nodes[1].wg, 0, now_unix() - 10);

  for (;;) {
    struct pollfd pfd[NNODES];
    wgam_tstamp next = start + RUN_LIMIT;
    int timeout;

    now = now_mono();
    for (size_t i = 0; i < NNODES; i++) {
      rc = service(&nodes[i], now);
      if (rc) {
        fprintf(stderr, "embed: engine %s: %s\n", nodes[i].name,
                wgam_strerror(rc));
        goto out;
      }
    }
    rc = done(0);
    if (rc < 0) {
      fprintf(stderr, "embed: B wrote a state file it cannot parse\n");
      goto out;
    }
    if (rc)
      break;
    if (now >= start + RUN_LIMIT) {
      fprintf(stderr, "embed: FAILED: B did not learn C's endpoint in %u s\n",
              (unsigned)(RUN_LIMIT / WGAM_SECONDS));
      done(1);
      goto out;
    }
    for (size_t i = 0; i < NNODES; i++) {
      wgam_tstamp e = wgam_mesh_get_expiry(nodes[i].mesh);

      if (e < next)
        next = e;
      pfd[i] = (struct pollfd){.fd = nodes[i].fd, .events = POLLIN};
    }
    timeout =
        next <= now
            ? 0
            : (int)((next - now + WGAM_MILLISECONDS - 1) / WGAM_MILLISECONDS);
    rc = poll(pfd, NNODES, timeout);
    if (rc < 0 && errno != EINTR) {
      perror("embed: poll");
      goto out;
    }
    now = now_mono();
    for (size_t i = 0; rc > 0 && i < NNODES; i++) {
      if (!(pfd[i].revents & POLLIN))
        continue;
      if (recv_all(&nodes[i], now))
        goto out;
    }
  }
  printf("B's state file:\n");
  done(1);
  printf("ok: B learned C's endpoint from A's gossip in %" PRIu64 " ms\n",
         (now_mono() - start) / WGAM_MILLISECONDS);
  ret = 0;
out:
  for (size_t i = 0; i < NNODES; i++) {
    wgam_mesh_del(nodes[i].mesh);
    if (nodes[i].fd >= 0)
      close(nodes[i].fd);
  }
  return ret;
}
