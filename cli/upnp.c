/* SPDX-License-Identifier: MIT */
/*
 * UPnP IGD port mapping with miniupnpc, in a worker thread.
 *
 * Every miniupnpc call blocks (SSDP discovery waits its whole delay, SOAP
 * calls wait on TCP with socket timeouts of a few seconds), so the event loop
 * never calls them: it posts requests (renew, stop) under a mutex and is told
 * about results through an eventfd. The worker owns all miniupnpc state.
 *
 * Failures are retried with a backoff (60 s doubling up to 15 min); each
 * failure kind is logged once when it starts, repeats only at debug level,
 * so a LAN without an IGD costs one warning line, not one per minute.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include <miniupnpc/miniupnpc.h>
#include <miniupnpc/upnpcommands.h>
#include <miniupnpc/upnperrors.h>

#include "log.h"
#include "upnp.h"

/* SSDP discovery waits this long for each search target in turn (miniupnpc
 * rounds it up to 1 s): two targets bound a discovery to 2 s, where
 * upnpDiscover()'s four would take 8 s on a LAN without an IGD. */
#define DISCOVER_DELAY_MS 1000
/* Lease asked from the router; renewed long before it runs out. */
#define LEASE_S 300u
/* IPv6 pinhole lease (the standard allows 1..86400 s). */
#define PINHOLE_LEASE_S 300u
/* Retry delay after a failure: doubles from BACKOFF_MIN_MS (tests shorten it
 * with WGAM_UPNP_BACKOFF_MS) up to BACKOFF_MAX_FACTOR times that. */
#define BACKOFF_MIN_MS 60000ull
#define BACKOFF_MAX_FACTOR 15ull

/* UPnP error codes of WANIPConnection we act upon. */
#define UPNP_ERR_CONFLICT 718
#define UPNP_ERR_ONLY_PERMANENT 725

#define MAPPING_DESC "wgautomesh"

/* What the last attempt ended with; logs are emitted on changes only. */
enum upnp_state {
  ST_NONE,
  ST_MAPPED,
  ST_NO_IGD,
  ST_CONFLICT,
  ST_MAP_ERROR,
  ST_NO_EXTIP,
};

/* One IGD control session: over IPv4 for the port mapping, and over IPv6
 * for the pinhole, since a router in secure mode only opens a pinhole to the
 * address that asks for it. */
struct igd {
  int valid;
  struct UPNPUrls urls;
  struct IGDdatas data;
  /* Our address on the path to the IGD: the mapping's internal client. */
  char lanaddr[64];
};

struct upnp {
  pthread_t thread;
  pthread_mutex_t lock;
  pthread_cond_t cond;
  int efd;

  /* Shared with the event loop, under @lock. */
  int stop;
  int kick;
  uint16_t internal_port;
  uint16_t tried_port;
  int in_backoff;
  int pending;
  int result_ok;
  wgam_addr result;

  /* Worker only. */
  uint16_t external_port;
  int ipv6;
  uint64_t backoff_min_ms;
  uint64_t backoff_ms;
  uint64_t next_ms;
  enum upnp_state state;
  struct igd igd;
  int mapped;
  unsigned lease;
  struct igd igd6;
  uint64_t next6_ms;
  int pinhole;
  int pinhole_failed;
  char pinhole_id[16];
  int posted;
  int posted_ok;
  wgam_addr posted_addr;
};

static uint64_t now_ms(void) {
  struct timespec ts;

  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* Hands a result to the event loop if it differs from the last one. */
static void post_result(upnp *u, int ok, const wgam_addr *addr) {
  uint64_t one = 1;
  wgam_addr a;

  memset(&a, 0, sizeof(a));
  if (ok)
    a = *addr;
  if (u->posted && u->posted_ok == ok &&
      memcmp(&u->posted_addr, &a, sizeof(a)) == 0)
    return;
  u->posted = 1;
  u->posted_ok = ok;
  u->posted_addr = a;

  pthread_mutex_lock(&u->lock);
  u->pending = 1;
  u->result_ok = ok;
  u->result = a;
  pthread_mutex_unlock(&u->lock);
  /* Cannot fail short of a counter overflow: the loop drains it. */
  if (write(u->efd, &one, sizeof(one)) < 0)
    log_debug("upnp: eventfd write: %s", strerror(errno));
}

/* Enters a failure state: logged at warning level when the state changes,
 * at debug level while it repeats; the next attempt waits for the backoff. */
static void fail(upnp *u, enum upnp_state st, const char *msg) {
  if (u->state != st)
    log_warn("%s", msg);
  else
    log_debug("%s (retrying in %llu s)", msg,
              (unsigned long long)(u->backoff_ms / 1000u));
  u->state = st;
  u->next_ms = now_ms() + u->backoff_ms;
  u->backoff_ms *= 2;
  if (u->backoff_ms > u->backoff_min_ms * BACKOFF_MAX_FACTOR)
    u->backoff_ms = u->backoff_min_ms * BACKOFF_MAX_FACTOR;
  post_result(u, 0, NULL);

  pthread_mutex_lock(&u->lock);
  u->in_backoff = 1;
  pthread_mutex_unlock(&u->lock);
}

static void drop_igd(struct igd *g) {
  if (!g->valid)
    return;
  FreeUPNPUrls(&g->urls);
  memset(g, 0, sizeof(*g));
}

/* Finds an IGD over IPv4 or IPv6. Returns 0 when one was selected, -1
 * otherwise. */
static int discover(struct igd *g, int ipv6) {
  /* An IGD:2 answers searches for IGD:1 too; "upnp:rootdevice" catches
   * devices that answer nothing else. */
  static const char *const targets[] = {
      "urn:schemas-upnp-org:device:InternetGatewayDevice:1",
      "upnp:rootdevice",
      NULL,
  };
  struct UPNPDev *devlist;
  int err = 0, r;

  memset(g, 0, sizeof(*g));
  devlist = upnpDiscoverDevices(targets, DISCOVER_DELAY_MS, NULL, NULL,
                                UPNP_LOCAL_PORT_ANY, ipv6, 2, &err, 0);
  if (!devlist)
    return -1;
#if MINIUPNPC_API_VERSION >= 18
  {
    char wanaddr[64] = "";

    r = UPNP_GetValidIGD(devlist, &g->urls, &g->data, g->lanaddr,
                         sizeof(g->lanaddr), wanaddr, sizeof(wanaddr));
  }
#else
  r = UPNP_GetValidIGD(devlist, &g->urls, &g->data, g->lanaddr,
                       sizeof(g->lanaddr));
#endif
  freeUPNPDevlist(devlist);

  switch (r) {
  case 1:
    break;
  case 2:
    /* API 17 returns 2 for a connected IGD whose external address is
     * reserved or private (API 18 states it so): typical of double NAT.
     * The mapping may still help (or the IGD learns its address by STUN). */
    if (!ipv6)
      log_info("upnp: the IGD reports a private or reserved external "
               "address (double NAT?); trying the mapping anyway");
    break;
  default:
    if (r != 0)
      FreeUPNPUrls(&g->urls);
    memset(g, 0, sizeof(*g));
    log_debug("upnp: no usable IGD over IPv%d (UPNP_GetValidIGD returned %d)",
              ipv6 ? 6 : 4, r);
    return -1;
  }
  g->valid = 1;
  log_debug("upnp: IGD at %s, our LAN address %s", g->urls.controlURL,
            g->lanaddr);
  return 0;
}

static int add_mapping(upnp *u, uint16_t internal_port) {
  char ext[8], in[8], lease[16];

  snprintf(ext, sizeof(ext), "%u", u->external_port);
  snprintf(in, sizeof(in), "%u", internal_port);
  snprintf(lease, sizeof(lease), "%u", u->lease);
  return UPNP_AddPortMapping(u->igd.urls.controlURL,
                             u->igd.data.first.servicetype, ext, in,
                             u->igd.lanaddr, MAPPING_DESC, "UDP", NULL, lease);
}

/* Logs a pinhole problem once (until a pinhole opens again). */
static void pinhole_failed(upnp *u, const char *msg) {
  if (!u->pinhole_failed)
    log_info("%s", msg);
  else
    log_debug("%s", msg);
  u->pinhole_failed = 1;
}

/* Opens or renews the IPv6 pinhole. Best effort: failures are logged once
 * and the IPv4 mapping stands on its own. */
static void do_pinhole(upnp *u, uint16_t internal_port) {
  struct igd *g = &u->igd6;
  char in[8], lease[16], msg[256];
  int r;

  if (!g->valid) {
    /* IPv6 discovery costs 2 s of SSDP: not at every renewal. */
    if (now_ms() < u->next6_ms)
      return;
    if (discover(g, 1) < 0) {
      u->next6_ms = now_ms() + u->backoff_min_ms * BACKOFF_MAX_FACTOR;
      pinhole_failed(u, "upnp: no IGD answers over IPv6; no IPv6 pinhole");
      return;
    }
  }
  if (!g->urls.controlURL_6FC || !g->urls.controlURL_6FC[0] ||
      !g->data.IPv6FC.servicetype[0]) {
    u->next6_ms = now_ms() + u->backoff_min_ms * BACKOFF_MAX_FACTOR;
    drop_igd(g);
    pinhole_failed(u, "upnp: the IGD has no WANIPv6FirewallControl service; "
                      "no IPv6 pinhole");
    return;
  }
  snprintf(lease, sizeof(lease), "%u", PINHOLE_LEASE_S);
  if (u->pinhole) {
    r = UPNP_UpdatePinhole(g->urls.controlURL_6FC, g->data.IPv6FC.servicetype,
                           u->pinhole_id, lease);
    if (r == UPNPCOMMAND_SUCCESS) {
      log_debug("upnp: renewed IPv6 pinhole %s", u->pinhole_id);
      return;
    }
    log_debug("upnp: UpdatePinhole %s: %d %s", u->pinhole_id, r,
              strupnperror(r) ? strupnperror(r) : "");
    u->pinhole = 0;
  }
  snprintf(in, sizeof(in), "%u", internal_port);
  /* "empty" is miniupnpc's spelling of the wildcard remote host. */
  r = UPNP_AddPinhole(g->urls.controlURL_6FC, g->data.IPv6FC.servicetype,
                      "empty", "0", g->lanaddr, in, "17", lease, u->pinhole_id);
  if (r != UPNPCOMMAND_SUCCESS) {
    snprintf(msg, sizeof(msg), "upnp: IPv6 pinhole to [%s]:%u refused: %d %s",
             g->lanaddr, internal_port, r,
             strupnperror(r) ? strupnperror(r) : "");
    if (r < 0)
      drop_igd(g);
    pinhole_failed(u, msg);
    return;
  }
  log_info("upnp: IPv6 pinhole open to [%s]:%u/udp (id %s, lease %u s)",
           g->lanaddr, internal_port, u->pinhole_id, PINHOLE_LEASE_S);
  u->pinhole = 1;
  u->pinhole_failed = 0;
}

/* A stop asked for during an attempt skips its remaining blocking calls, so
 * upnp_stop() waits for one call at most before the cleanup. */
static int stopping(upnp *u) {
  int stop;

  pthread_mutex_lock(&u->lock);
  stop = u->stop;
  pthread_mutex_unlock(&u->lock);
  return stop;
}

static void attempt(upnp *u, uint16_t internal_port) {
  char extip[64] = "", msg[256];
  wgam_addr ext;
  int r;

  /* The pinhole does not depend on the IPv4 mapping: an IPv6 path to this
   * host may exist whatever the IPv4 NAT answers. */
  if (u->ipv6)
    do_pinhole(u, internal_port);
  if (stopping(u))
    return;

  if (!u->igd.valid && discover(&u->igd, 0) < 0) {
    fail(u, ST_NO_IGD,
         "upnp: no UPnP IGD found on the LAN; will retry with backoff");
    return;
  }

  r = add_mapping(u, internal_port);
  if (r == UPNP_ERR_ONLY_PERMANENT && u->lease != 0) {
    /* Such routers keep the mapping until deleted: we delete it at exit. */
    log_info("upnp: the IGD only supports permanent leases; mapping UDP "
             "port %u permanently until exit",
             u->external_port);
    u->lease = 0;
    r = add_mapping(u, internal_port);
  }
  if (r == UPNP_ERR_CONFLICT) {
    snprintf(msg, sizeof(msg),
             "upnp: external UDP port %u is already mapped to another host "
             "on the router (718 ConflictInMappingEntry); choose another "
             "upnp_forward_external_port",
             u->external_port);
    /* Not ours: never delete it at exit (a router without secure_mode
     * would remove the other host's mapping). */
    u->mapped = 0;
    fail(u, ST_CONFLICT, msg);
    return;
  }
  if (r != UPNPCOMMAND_SUCCESS) {
    snprintf(msg, sizeof(msg),
             "upnp: mapping external UDP port %u to %s:%u failed: %d %s",
             u->external_port, u->igd.lanaddr, internal_port, r,
             strupnperror(r) ? strupnperror(r) : "");
    /* A negative code is a transport failure: the IGD may have gone (or
     * changed address), so discover it again next time. */
    if (r < 0) {
      drop_igd(&u->igd);
      u->mapped = 0;
    }
    fail(u, ST_MAP_ERROR, msg);
    return;
  }
  u->mapped = 1;
  /* A renewal asked for before this mapping call returned (the daemon asks
   * right after upnp_start) is served by it; one asked for later, once the
   * result is out, is not. */
  pthread_mutex_lock(&u->lock);
  if (u->internal_port == internal_port)
    u->kick = 0;
  pthread_mutex_unlock(&u->lock);

  r = UPNP_GetExternalIPAddress(u->igd.urls.controlURL,
                                u->igd.data.first.servicetype, extip);
  memset(&ext, 0, sizeof(ext));
  if (r != UPNPCOMMAND_SUCCESS || inet_pton(AF_INET, extip, ext.ip) != 1 ||
      (ext.ip[0] | ext.ip[1] | ext.ip[2] | ext.ip[3]) == 0) {
    snprintf(msg, sizeof(msg),
             "upnp: UDP port %u is mapped but the IGD gives no external "
             "address (%d, \"%s\"); not announcing it",
             u->external_port, r, extip);
    fail(u, ST_NO_EXTIP, msg);
    return;
  }
  ext.family = WGAM_AF_INET;
  ext.port = u->external_port;

  if (u->state != ST_MAPPED || !u->posted_ok ||
      memcmp(u->posted_addr.ip, ext.ip, sizeof(ext.ip)) != 0) {
    if (u->lease)
      snprintf(msg, sizeof(msg), "lease %u s", u->lease);
    else
      snprintf(msg, sizeof(msg), "permanent");
    log_info("upnp: mapped external %s:%u -> %s:%u/udp (%s)", extip,
             u->external_port, u->igd.lanaddr, internal_port, msg);
  } else
    log_debug("upnp: renewed mapping %s:%u -> %s:%u/udp", extip,
              u->external_port, u->igd.lanaddr, internal_port);
  u->state = ST_MAPPED;
  u->backoff_ms = u->backoff_min_ms;
  /* Renew on our own too, in case the event loop stops asking. */
  u->next_ms = now_ms() + (uint64_t)LEASE_S * 1000u / 2u;
  post_result(u, 1, &ext);

  pthread_mutex_lock(&u->lock);
  u->in_backoff = 0;
  pthread_mutex_unlock(&u->lock);
}

static void cleanup(upnp *u) {
  char ext[8];
  int r;

  if (u->igd.valid && u->mapped) {
    snprintf(ext, sizeof(ext), "%u", u->external_port);
    r = UPNP_DeletePortMapping(u->igd.urls.controlURL,
                               u->igd.data.first.servicetype, ext, "UDP", NULL);
    if (r == UPNPCOMMAND_SUCCESS)
      log_info("upnp: removed the mapping of UDP port %u", u->external_port);
    else
      log_warn("upnp: removing the mapping of UDP port %u failed: %d %s",
               u->external_port, r, strupnperror(r) ? strupnperror(r) : "");
  }
  if (u->igd6.valid && u->pinhole) {
    r = UPNP_DeletePinhole(u->igd6.urls.controlURL_6FC,
                           u->igd6.data.IPv6FC.servicetype, u->pinhole_id);
    if (r == UPNPCOMMAND_SUCCESS)
      log_info("upnp: removed IPv6 pinhole %s", u->pinhole_id);
    else
      log_warn("upnp: removing IPv6 pinhole %s failed: %d %s", u->pinhole_id, r,
               strupnperror(r) ? strupnperror(r) : "");
  }
  drop_igd(&u->igd);
  drop_igd(&u->igd6);
}

static void *worker(void *arg) {
  upnp *u = arg;
  struct timespec ts;
  uint16_t port;
  uint64_t now;

  pthread_mutex_lock(&u->lock);
  for (;;) {
    for (;;) {
      now = now_ms();
      if (u->stop || now >= u->next_ms)
        break;
      /* In backoff a renewal request must not defeat the backoff, unless
       * the port to map changed. */
      if (u->kick && (!u->in_backoff || u->internal_port != u->tried_port))
        break;
      ts.tv_sec = (time_t)(u->next_ms / 1000u);
      ts.tv_nsec = (long)(u->next_ms % 1000u) * 1000000L;
      pthread_cond_timedwait(&u->cond, &u->lock, &ts);
    }
    if (u->stop)
      break;
    u->kick = 0;
    port = u->internal_port;
    u->tried_port = port;
    pthread_mutex_unlock(&u->lock);
    attempt(u, port);
    pthread_mutex_lock(&u->lock);
  }
  pthread_mutex_unlock(&u->lock);
  cleanup(u);
  return NULL;
}

int upnp_start(upnp **pu, uint16_t external_port, uint16_t internal_port,
               int ipv6) {
  pthread_condattr_t ca;
  sigset_t all, old;
  const char *env;
  upnp *u;
  int ret;

  *pu = NULL;
  if (external_port == 0)
    return -EINVAL;
  u = calloc(1, sizeof(*u));
  if (!u)
    return -ENOMEM;
  u->external_port = external_port;
  u->internal_port = internal_port;
  u->ipv6 = ipv6;
  u->lease = LEASE_S;
  u->backoff_min_ms = BACKOFF_MIN_MS;
  /* Tests shorten the backoff to observe retries in seconds. */
  env = getenv("WGAM_UPNP_BACKOFF_MS");
  if (env && atoi(env) > 0)
    u->backoff_min_ms = (uint64_t)atoi(env);
  u->backoff_ms = u->backoff_min_ms;
  u->next_ms = 0;

  u->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (u->efd < 0) {
    ret = -errno;
    free(u);
    return ret;
  }
  pthread_mutex_init(&u->lock, NULL);
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_cond_init(&u->cond, &ca);
  pthread_condattr_destroy(&ca);

  /* The worker takes no signals: they stay with the event loop (signalfd),
   * and a SIGPIPE from miniupnpc's send() on a reset connection becomes
   * EPIPE instead of killing the daemon. */
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  ret = -pthread_create(&u->thread, NULL, worker, u);
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  if (ret < 0)
    goto out;
  *pu = u;
  return 0;

out:
  pthread_cond_destroy(&u->cond);
  pthread_mutex_destroy(&u->lock);
  close(u->efd);
  free(u);
  return ret;
}

int upnp_fd(const upnp *u) {
  return u->efd;
}

void upnp_renew(upnp *u, uint16_t internal_port) {
  if (!u)
    return;
  pthread_mutex_lock(&u->lock);
  u->kick = 1;
  u->internal_port = internal_port;
  pthread_cond_signal(&u->cond);
  pthread_mutex_unlock(&u->lock);
}

int upnp_result(upnp *u, wgam_addr *external) {
  uint64_t v;
  int ret = -EAGAIN;

  /* Drain first so a result posted after the check re-arms the fd. */
  if (read(u->efd, &v, sizeof(v)) < 0 && errno != EAGAIN)
    log_debug("upnp: eventfd read: %s", strerror(errno));
  pthread_mutex_lock(&u->lock);
  if (u->pending) {
    u->pending = 0;
    ret = u->result_ok;
    if (external)
      *external = u->result;
  }
  pthread_mutex_unlock(&u->lock);
  return ret;
}

void upnp_stop(upnp *u) {
  if (!u)
    return;
  pthread_mutex_lock(&u->lock);
  u->stop = 1;
  pthread_cond_signal(&u->cond);
  pthread_mutex_unlock(&u->lock);
  pthread_join(u->thread, NULL);
  pthread_cond_destroy(&u->cond);
  pthread_mutex_destroy(&u->lock);
  close(u->efd);
  free(u);
}
