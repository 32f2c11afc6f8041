/* SPDX-License-Identifier: MIT */
/*
 * UPnP IGD port mapping and IPv6 pinhole with miniupnpc, called by the
 * port-mapping worker (portmap.c) only: every call here blocks.
 *
 * IPv4 mapping and IPv6 pinhole use separate IGD sessions: a router in
 * secure mode only opens a pinhole to the address that asks for it, so the
 * pinhole is asked for over IPv6.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <miniupnpc/miniupnpc.h>
#include <miniupnpc/upnpcommands.h>
#include <miniupnpc/upnperrors.h>

#include "log.h"
#include "upnp.h"

/* SSDP discovery waits this long for each search target in turn (miniupnpc
 * rounds it up to 1 s): two targets bound a discovery to 2 s, where
 * upnpDiscover()'s four would take 8 s on a LAN without an IGD. */
#define DISCOVER_DELAY_MS 1000

/* UPnP error codes of WANIPConnection we act upon. */
#define UPNP_ERR_CONFLICT 718
#define UPNP_ERR_ONLY_PERMANENT 725

#define MAPPING_DESC "wgautomesh"

/* One IGD control session. */
struct igd {
  int valid;
  struct UPNPUrls urls;
  struct IGDdatas data;
  /* Our address on the path to the IGD: the mapping's internal client. */
  char lanaddr[64];
};

struct upnp_session {
  struct igd igd;
  /* The mapping in place, ours to delete: its external port. */
  uint16_t mapped_port;
  struct igd igd6;
  int pinhole;
  char pinhole_id[16];
};

static const char *errstr(int r) {
  const char *s = strupnperror(r);

  return s ? s : "";
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

static int add_mapping(struct igd *g, uint16_t external_port,
                       uint16_t internal_port, uint32_t lease) {
  char ext[8], in[8], ls[16];

  snprintf(ext, sizeof(ext), "%u", external_port);
  snprintf(in, sizeof(in), "%u", internal_port);
  snprintf(ls, sizeof(ls), "%u", lease);
  return UPNP_AddPortMapping(g->urls.controlURL, g->data.first.servicetype, ext,
                             in, g->lanaddr, MAPPING_DESC, "UDP", NULL, ls);
}

/* IGD:2's AddAnyPortMapping: the IGD picks a free port near the one asked
 * for. Returns the UPnP code; *@port is the port reserved. */
static int add_any_mapping(struct igd *g, uint16_t external_port,
                           uint16_t internal_port, uint32_t lease,
                           uint16_t *port) {
  char ext[8], in[8], ls[16], reserved[8] = "";
  int r;

  if (!strstr(g->data.first.servicetype, ":2"))
    return UPNP_ERR_CONFLICT;
  snprintf(ext, sizeof(ext), "%u", external_port);
  snprintf(in, sizeof(in), "%u", internal_port);
  snprintf(ls, sizeof(ls), "%u", lease);
  r = UPNP_AddAnyPortMapping(g->urls.controlURL, g->data.first.servicetype, ext,
                             in, g->lanaddr, MAPPING_DESC, "UDP", NULL, ls,
                             reserved);
  if (r == UPNPCOMMAND_SUCCESS) {
    int p = atoi(reserved);

    if (p <= 0 || p > 65535)
      return UPNPCOMMAND_INVALID_RESPONSE;
    *port = (uint16_t)p;
  }
  return r;
}

struct upnp_session *upnp_session_new(void) {
  return calloc(1, sizeof(struct upnp_session));
}

void upnp_forget(struct upnp_session *s) {
  drop_igd(&s->igd);
  s->mapped_port = 0;
}

int upnp_map(struct upnp_session *s, uint16_t external_port,
             uint16_t internal_port, uint32_t *lease, wgam_addr *ext, char *msg,
             size_t msglen) {
  struct igd *g = &s->igd;
  char extip[64] = "";
  uint16_t port = s->mapped_port ? s->mapped_port : external_port;
  int r;

  if (!g->valid && discover(g, 0) < 0) {
    snprintf(msg, msglen, "upnp: no UPnP IGD found on the LAN");
    return UPNP_NO_IGD;
  }
  r = add_mapping(g, port, internal_port, *lease);
  if (r == UPNP_ERR_ONLY_PERMANENT && *lease != 0) {
    /* Such routers keep the mapping until deleted: we delete it at exit. */
    log_info("upnp: the IGD only supports permanent leases; mapping UDP "
             "port %u permanently until exit",
             port);
    *lease = 0;
    r = add_mapping(g, port, internal_port, *lease);
  }
  if (r == UPNP_ERR_CONFLICT) {
    uint16_t got = 0;

    /* Not ours: never delete it (a router without secure_mode would
     * remove the other host's mapping). */
    s->mapped_port = 0;
    r = add_any_mapping(g, external_port, internal_port, *lease, &got);
    if (r == UPNPCOMMAND_SUCCESS) {
      log_info("upnp: external UDP port %u is mapped to another host; the "
               "IGD gave us port %u",
               external_port, got);
      port = got;
    } else {
      snprintf(msg, msglen,
               "upnp: external UDP port %u is already mapped to another host "
               "on the router (718 ConflictInMappingEntry); choose another "
               "upnp_forward_external_port",
               external_port);
      return UPNP_CONFLICT;
    }
  }
  if (r != UPNPCOMMAND_SUCCESS) {
    snprintf(msg, msglen,
             "upnp: mapping external UDP port %u to %s:%u failed: %d %s", port,
             g->lanaddr, internal_port, r, errstr(r));
    /* A negative code is a transport failure: the IGD may have gone (or
     * changed address), so discover it again next time. */
    if (r < 0)
      upnp_forget(s);
    return UPNP_MAP_ERROR;
  }
  s->mapped_port = port;

  r = UPNP_GetExternalIPAddress(g->urls.controlURL, g->data.first.servicetype,
                                extip);
  memset(ext, 0, sizeof(*ext));
  if (r != UPNPCOMMAND_SUCCESS || inet_pton(AF_INET, extip, ext->ip) != 1 ||
      (ext->ip[0] | ext->ip[1] | ext->ip[2] | ext->ip[3]) == 0) {
    snprintf(msg, msglen,
             "upnp: UDP port %u is mapped but the IGD gives no external "
             "address (%d, \"%s\"); not announcing it",
             port, r, extip);
    return UPNP_NO_EXTIP;
  }
  ext->family = WGAM_AF_INET;
  ext->port = port;
  snprintf(msg, msglen, "%s:%u -> %s:%u/udp", extip, port, g->lanaddr,
           internal_port);
  return UPNP_OK;
}

int upnp_pinhole(struct upnp_session *s, uint16_t internal_port, uint32_t lease,
                 wgam_addr *ext, char *msg, size_t msglen) {
  struct igd *g = &s->igd6;
  char in[8], ls[16];
  int r;

  if (!g->valid && discover(g, 1) < 0) {
    snprintf(msg, msglen, "upnp: no IGD answers over IPv6; no IPv6 pinhole");
    return -1;
  }
  if (!g->urls.controlURL_6FC || !g->urls.controlURL_6FC[0] ||
      !g->data.IPv6FC.servicetype[0]) {
    drop_igd(g);
    snprintf(msg, msglen,
             "upnp: the IGD has no WANIPv6FirewallControl "
             "service; no IPv6 pinhole");
    return -1;
  }
  memset(ext, 0, sizeof(*ext));
  if (inet_pton(AF_INET6, g->lanaddr, ext->ip) != 1 ||
      (ext->ip[0] == 0xfe && (ext->ip[1] & 0xc0) == 0x80)) {
    snprintf(msg, msglen,
             "upnp: our address towards the IGD (%s) is not a routable "
             "IPv6 address; no IPv6 pinhole",
             g->lanaddr);
    drop_igd(g);
    return -1;
  }
  ext->family = WGAM_AF_INET6;
  ext->port = internal_port;
  snprintf(ls, sizeof(ls), "%u", lease);
  if (s->pinhole) {
    r = UPNP_UpdatePinhole(g->urls.controlURL_6FC, g->data.IPv6FC.servicetype,
                           s->pinhole_id, ls);
    if (r == UPNPCOMMAND_SUCCESS) {
      log_debug("upnp: renewed IPv6 pinhole %s", s->pinhole_id);
      snprintf(msg, msglen, "renewed");
      return 0;
    }
    log_debug("upnp: UpdatePinhole %s: %d %s", s->pinhole_id, r, errstr(r));
    s->pinhole = 0;
  }
  snprintf(in, sizeof(in), "%u", internal_port);
  /* "empty" is miniupnpc's spelling of the wildcard remote host. */
  r = UPNP_AddPinhole(g->urls.controlURL_6FC, g->data.IPv6FC.servicetype,
                      "empty", "0", g->lanaddr, in, "17", ls, s->pinhole_id);
  if (r != UPNPCOMMAND_SUCCESS) {
    snprintf(msg, msglen, "upnp: IPv6 pinhole to [%s]:%u refused: %d %s",
             g->lanaddr, internal_port, r, errstr(r));
    if (r < 0)
      drop_igd(g);
    return -1;
  }
  log_info("upnp: IPv6 pinhole open to [%s]:%u/udp (id %s, lease %u s)",
           g->lanaddr, internal_port, s->pinhole_id, lease);
  s->pinhole = 1;
  snprintf(msg, msglen, "opened");
  return 0;
}

void upnp_session_free(struct upnp_session *s) {
  char ext[8];
  int r;

  if (!s)
    return;
  if (s->igd.valid && s->mapped_port) {
    snprintf(ext, sizeof(ext), "%u", s->mapped_port);
    r = UPNP_DeletePortMapping(s->igd.urls.controlURL,
                               s->igd.data.first.servicetype, ext, "UDP", NULL);
    if (r == UPNPCOMMAND_SUCCESS)
      log_info("upnp: removed the mapping of UDP port %u", s->mapped_port);
    else
      log_warn("upnp: removing the mapping of UDP port %u failed: %d %s",
               s->mapped_port, r, errstr(r));
  }
  if (s->igd6.valid && s->pinhole) {
    r = UPNP_DeletePinhole(s->igd6.urls.controlURL_6FC,
                           s->igd6.data.IPv6FC.servicetype, s->pinhole_id);
    if (r == UPNPCOMMAND_SUCCESS)
      log_info("upnp: removed IPv6 pinhole %s", s->pinhole_id);
    else
      log_warn("upnp: removing IPv6 pinhole %s failed: %d %s", s->pinhole_id, r,
               errstr(r));
  }
  drop_igd(&s->igd);
  drop_igd(&s->igd6);
  free(s);
}
