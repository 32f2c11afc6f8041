/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "status.h"

static const char *const msg_type_names[WGAM_MSG_TYPE_COUNT] = {
    "ping", "pong", "announce", "request", "lan_broadcast"};

int status_collect(struct status *st, const wgam_mesh *mesh,
                   const struct config *cfg, const char *backend,
                   uint64_t unix_now) {
  size_t n = wgam_mesh_get_npeers(mesh);

  memset(st, 0, sizeof(*st));
  st->interface = cfg->interface;
  st->backend = backend;
  st->policy = config_policy_name(cfg->policy);
  wgam_mesh_get_stats(mesh, &st->stats);
  st->peers = calloc(n ? n : 1, sizeof(*st->peers));
  if (!st->peers)
    return -ENOMEM;
  for (size_t i = 0; i < n; i++) {
    struct status_peer *p = &st->peers[st->npeers];
    const struct config_peer *cp;

    if (wgam_mesh_get_peer_info(mesh, i, &p->info))
      continue;
    if (p->info.last_handshake) {
      p->has_age = 1;
      p->handshake_age = unix_now > p->info.last_handshake
                             ? unix_now - p->info.last_handshake
                             : 0;
    }
    p->relay = p->info.relay;
    cp = config_find_peer(cfg, p->info.pubkey);
    if (cp) {
      p->relay |= cp->relay;
      p->nprefixes = cp->nprefixes;
      memcpy(p->prefixes, cp->prefixes, cp->nprefixes * sizeof(p->prefixes[0]));
    }
    if (p->info.route != WGAM_ROUTE_DIRECT &&
        (cp = config_find_peer(cfg, p->info.via)))
      p->via_address = cp->address;
    st->npeers++;
  }
  return 0;
}

void status_free(struct status *st) {
  free(st->peers);
  memset(st, 0, sizeof(*st));
}

/* ---- JSON ------------------------------------------------------------- */

static void cidr_str(char *dst, size_t n, const wgam_cidr *c) {
  char a[WGAM_ADDR_STRLEN];

  if (wgam_addr_format(a, sizeof(a), &c->addr, 0) < 0)
    snprintf(a, sizeof(a), "?");
  snprintf(dst, n, "%s/%u", a, c->prefixlen);
}

static void json_peer(struct sbuf *b, const struct status_peer *p) {
  const wgam_peer_info *pi = &p->info;

  sb_puts(b, "{\"pubkey\":");
  jw_key(b, pi->pubkey);
  sb_puts(b, ",\"address\":");
  jw_addr(b, &pi->address, 0);
  sb_puts(b, ",\"endpoint\":");
  jw_addr(b, &pi->endpoint, 1);
  sb_puts(b, ",\"source\":");
  jw_str(b, wgam_source_name(pi->source));
  sb_puts(b, ",\"state\":");
  jw_str(b, wgam_peer_state_name(pi->state));
  sb_puts(b, ",\"connected\":");
  jw_bool(b, pi->connected);
  sb_puts(b, ",\"last_handshake\":");
  jw_u64(b, pi->last_handshake);
  sb_puts(b, ",\"handshake_age\":");
  if (p->has_age)
    jw_u64(b, p->handshake_age);
  else
    sb_puts(b, "null");
  sb_puts(b, ",\"tries\":");
  jw_u64(b, pi->tries);
  sb_puts(b, ",\"endpoint_changes\":");
  jw_u64(b, pi->endpoint_changes);
  sb_puts(b, ",\"known\":[");
  for (size_t k = 0; k < pi->nknown && k < WGAM_MAX_ENDPOINTS; k++) {
    if (k)
      sb_putc(b, ',');
    sb_puts(b, "{\"addr\":");
    jw_addr(b, &pi->known[k].addr, 1);
    sb_puts(b, ",\"time\":");
    jw_u64(b, pi->known[k].time);
    sb_putc(b, '}');
  }
  sb_puts(b, "],\"lan_endpoint\":");
  jw_addr(b, &pi->lan_endpoint, 1);
  sb_puts(b, ",\"relay\":");
  jw_bool(b, p->relay);
  sb_puts(b, ",\"route\":");
  jw_str(b, wgam_route_name(pi->route));
  sb_puts(b, ",\"via\":");
  if (pi->route != WGAM_ROUTE_DIRECT)
    jw_key(b, pi->via);
  else
    sb_puts(b, "null");
  sb_puts(b, ",\"via_address\":");
  jw_addr(b, pi->route != WGAM_ROUTE_DIRECT ? &p->via_address : NULL, 0);
  sb_puts(b, ",\"route_changes\":");
  jw_u64(b, pi->route_changes);
  sb_puts(b, ",\"allowed_ips\":[");
  for (size_t k = 0; k < p->nprefixes; k++) {
    char c[WGAM_ADDR_STRLEN + 8];

    cidr_str(c, sizeof(c), &p->prefixes[k]);
    if (k)
      sb_putc(b, ',');
    jw_str(b, c);
  }
  sb_puts(b, "]}");
}

static void json_stats(struct sbuf *b, const wgam_stats *s) {
  sb_puts(b, "{\"pkts_in\":{");
  for (int t = 0; t < WGAM_MSG_TYPE_COUNT; t++) {
    sb_printf(b, "%s\"%s\":", t ? "," : "", msg_type_names[t]);
    jw_u64(b, s->pkts_in[t]);
  }
  sb_puts(b, "},\"pkts_out\":{");
  for (int t = 0; t < WGAM_MSG_TYPE_COUNT; t++) {
    sb_printf(b, "%s\"%s\":", t ? "," : "", msg_type_names[t]);
    jw_u64(b, s->pkts_out[t]);
  }
  sb_puts(b, "},\"bytes_in\":");
  jw_u64(b, s->bytes_in);
  sb_puts(b, ",\"bytes_out\":");
  jw_u64(b, s->bytes_out);
  sb_puts(b, ",\"rejected\":{");
  for (int r = 0; r < WGAM_REJECT_COUNT; r++) {
    if (r)
      sb_putc(b, ',');
    jw_name(b, wgam_reject_name(r));
    jw_u64(b, s->rejected[r]);
  }
  sb_puts(b, "},\"endpoint_changes\":");
  jw_u64(b, s->endpoint_changes);
  sb_puts(b, ",\"peer_updates\":");
  jw_u64(b, s->peer_updates);
  sb_puts(b, ",\"state_writes\":");
  jw_u64(b, s->state_writes);
  sb_puts(b, ",\"peers_connected\":");
  jw_u64(b, s->npeers_connected);
  sb_puts(b, ",\"mem_bytes\":");
  jw_u64(b, s->mem_bytes);
  sb_puts(b, ",\"relay_switches\":");
  jw_u64(b, s->relay_switches);
  sb_putc(b, '}');
}

void status_render_json(struct sbuf *b, const struct status *st) {
  sb_puts(b, "{\"interface\":");
  jw_str(b, st->interface);
  sb_puts(b, ",\"backend\":");
  jw_str_or_null(b, st->backend);
  sb_puts(b, ",\"version\":\"" WGAM_VERSION "\",\"pubkey\":");
  if (st->stats.has_pubkey)
    jw_key(b, st->stats.pubkey);
  else
    sb_puts(b, "null");
  sb_puts(b, ",\"listen_port\":");
  jw_u64(b, st->stats.listen_port);
  sb_puts(b, ",\"external_endpoint\":");
  jw_addr(b, st->stats.nexternal ? &st->stats.external[0] : NULL, 1);
  sb_puts(b, ",\"external_endpoints\":[");
  for (size_t i = 0; i < st->nexternal; i++) {
    const struct status_external *e = &st->external[i];

    sb_puts(b, i ? ",{\"endpoint\":" : "{\"endpoint\":");
    jw_addr(b, &e->addr, 1);
    sb_puts(b, ",\"protocol\":");
    jw_str(b, e->protocol);
    sb_puts(b, ",\"lease\":");
    jw_u64(b, e->lease);
    sb_puts(b, ",\"expires_in\":");
    if (e->expires_in < 0)
      sb_puts(b, "null");
    else
      jw_u64(b, (uint64_t)e->expires_in);
    sb_putc(b, '}');
  }
  sb_putc(b, ']');
  sb_puts(b, ",\"policy\":");
  jw_str(b, st->policy);
  sb_puts(b, ",\"relay\":");
  jw_bool(b, st->relay);
  sb_puts(b, ",\"roam_watch\":");
  jw_bool(b, st->roam_watch);
  sb_puts(b, ",\"peers\":[");
  for (size_t i = 0; i < st->npeers; i++) {
    if (i)
      sb_putc(b, ',');
    json_peer(b, &st->peers[i]);
  }
  sb_puts(b, "],\"stats\":");
  json_stats(b, &st->stats);
  sb_puts(b, "}\n");
}

/* ---- table ------------------------------------------------------------ */

/* Display width of a UTF-8 string (counts code points). */
static size_t width(const char *s) {
  size_t w = 0;

  for (; *s; s++)
    if (((unsigned char)*s & 0xc0) != 0x80)
      w++;
  return w;
}

static void pad(struct sbuf *out, const char *s, size_t w, int last) {
  sb_puts(out, s);
  if (last)
    return;
  for (size_t i = width(s); i < w + 2; i++)
    sb_putc(out, ' ');
}

static void age_str(char *dst, size_t n, const struct status_peer *p) {
  double age = (double)p->handshake_age;

  if (!p->has_age)
    snprintf(dst, n, "never");
  else if (age < 120)
    snprintf(dst, n, "%.0fs ago", age);
  else if (age < 2 * 3600)
    snprintf(dst, n, "%.0fm ago", age / 60);
  else if (age < 2 * 86400)
    snprintf(dst, n, "%.0fh ago", age / 3600);
  else
    snprintf(dst, n, "%.0fd ago", age / 86400);
}

static void addr_cell(char *dst, size_t n, const wgam_addr *a, int with_port,
                      const char *none) {
  if (a->family == WGAM_AF_NONE || wgam_addr_format(dst, n, a, with_port) < 0)
    snprintf(dst, n, "%s", none);
}

/* "direct", or "relayed via ADDRESS" ("relay-pending via ..." until a Pong
 * came back through the relay). */
static void route_cell(char *dst, size_t n, const struct status_peer *p) {
  char via[WGAM_ADDR_STRLEN];

  if (p->info.route == WGAM_ROUTE_DIRECT) {
    snprintf(dst, n, "direct");
    return;
  }
  if (p->via_address.family == WGAM_AF_NONE ||
      wgam_addr_format(via, sizeof(via), &p->via_address, 0) < 0) {
    char key[WGAM_KEY_B64_LEN + 1];

    wgam_key_to_base64(key, p->info.via);
    snprintf(via, sizeof(via), "%.8s\u2026", key);
  }
  snprintf(dst, n, "%s via %.45s", wgam_route_name(p->info.route), via);
}

/* The last two columns (RELAY, ROUTE) appear when a peer is a relay or is
 * routed through one. */
#define NCOLS 8

void status_render_table(struct sbuf *out, const struct status *st) {
  static const char *const head[NCOLS] = {"PEER",   "ADDRESS", "ENDPOINT",
                                          "SOURCE", "STATE",   "HANDSHAKE",
                                          "RELAY",  "ROUTE"};
  char key[WGAM_KEY_B64_LEN + 1], ext[WGAM_ADDR_STRLEN];
  char exts[STATUS_MAX_EXTERNAL * (WGAM_ADDR_STRLEN + 40)] = "";
  char(*cells)[NCOLS][64];
  size_t w[NCOLS], r, ncols = NCOLS - 2;

  if (st->stats.has_pubkey)
    wgam_key_to_base64(key, st->stats.pubkey);
  else
    snprintf(key, sizeof(key), "(none)");
  /* With the port mapping's view: each endpoint, its protocol and lease. */
  for (size_t i = 0; i < st->nexternal; i++) {
    const struct status_external *e = &st->external[i];
    size_t len = strlen(exts);

    addr_cell(ext, sizeof(ext), &e->addr, 1, "?");
    if (e->expires_in < 0)
      snprintf(exts + len, sizeof(exts) - len, "%s%s (%s, permanent)",
               i ? ", " : "", ext, e->protocol);
    else
      snprintf(exts + len, sizeof(exts) - len, "%s%s (%s, %llds left)",
               i ? ", " : "", ext, e->protocol, (long long)e->expires_in);
  }
  if (!st->nexternal && st->stats.nexternal)
    addr_cell(exts, sizeof(exts), &st->stats.external[0], 1, "none");
  else if (!st->nexternal)
    snprintf(exts, sizeof(exts), "none");
  sb_printf(out,
            "interface: %s  public key: %s  listen port: %u  "
            "external endpoint: %s  policy: %s%s%s\n",
            st->interface, key, st->stats.listen_port, exts, st->policy,
            st->relay ? "  relay: yes" : "",
            st->roam_watch ? "  roam watch: on" : "");
  for (size_t i = 0; i < st->npeers; i++)
    if (st->peers[i].relay || st->peers[i].info.route != WGAM_ROUTE_DIRECT)
      ncols = NCOLS;
  cells = calloc(st->npeers + 1, sizeof(*cells));
  if (!cells) {
    out->oom = 1;
    return;
  }
  for (size_t c = 0; c < NCOLS; c++)
    snprintf(cells[0][c], sizeof(cells[0][c]), "%s", head[c]);
  for (r = 1; r <= st->npeers; r++) {
    const struct status_peer *p = &st->peers[r - 1];

    wgam_key_to_base64(key, p->info.pubkey);
    snprintf(cells[r][0], sizeof(cells[r][0]), "%.8s\u2026", key);
    addr_cell(cells[r][1], sizeof(cells[r][1]), &p->info.address, 0, "?");
    addr_cell(cells[r][2], sizeof(cells[r][2]), &p->info.endpoint, 1, "(none)");
    snprintf(cells[r][3], sizeof(cells[r][3]), "%s",
             wgam_source_name(p->info.source));
    snprintf(cells[r][4], sizeof(cells[r][4]), "%s",
             wgam_peer_state_name(p->info.state));
    age_str(cells[r][5], sizeof(cells[r][5]), p);
    snprintf(cells[r][6], sizeof(cells[r][6]), "%s", p->relay ? "yes" : "-");
    route_cell(cells[r][7], sizeof(cells[r][7]), p);
  }
  for (size_t c = 0; c < ncols; c++) {
    w[c] = 0;
    for (size_t i = 0; i <= st->npeers; i++)
      if (width(cells[i][c]) > w[c])
        w[c] = width(cells[i][c]);
  }
  for (size_t i = 0; i <= st->npeers; i++) {
    for (size_t c = 0; c < ncols; c++)
      pad(out, cells[i][c], w[c], c == ncols - 1);
    sb_putc(out, '\n');
  }
  free(cells);
}

/* ---- Prometheus ------------------------------------------------------- */

static void prom_head(struct sbuf *out, const char *name, const char *type,
                      const char *help) {
  sb_printf(out, "# HELP wgautomesh_%s %s\n# TYPE wgautomesh_%s %s\n", name,
            help, name, type);
}

/* Label values here are base64 keys and fixed names: escape anyway. */
static void prom_label(struct sbuf *out, const char *v) {
  for (; *v; v++) {
    if (*v == '"' || *v == '\\')
      sb_putc(out, '\\');
    if (*v == '\n')
      sb_puts(out, "\\n");
    else
      sb_putc(out, *v);
  }
}

/* name{peer="KEY"} */
static void prom_peer(struct sbuf *out, const char *name,
                      const struct status_peer *p) {
  char key[WGAM_KEY_B64_LEN + 1];

  wgam_key_to_base64(key, p->info.pubkey);
  sb_printf(out, "wgautomesh_%s{peer=\"", name);
  prom_label(out, key);
  sb_puts(out, "\"} ");
}

void status_render_prometheus(struct sbuf *out, const struct status *st) {
  static const char *const dirs[2] = {"in", "out"};
  const wgam_stats *s = &st->stats;

  prom_head(out, "info", "gauge", "Daemon information.");
  sb_puts(out, "wgautomesh_info{interface=\"");
  prom_label(out, st->interface);
  sb_puts(out, "\",backend=\"");
  prom_label(out, st->backend ? st->backend : "");
  sb_puts(out, "\",policy=\"");
  prom_label(out, st->policy);
  sb_puts(out, "\",version=\"" WGAM_VERSION "\"} 1\n");

  prom_head(out, "peers_configured", "gauge", "Peers in the configuration.");
  sb_printf(out, "wgautomesh_peers_configured %zu\n", st->npeers);
  prom_head(out, "peers_connected", "gauge", "Peers with a recent handshake.");
  sb_printf(out, "wgautomesh_peers_connected %zu\n", s->npeers_connected);

  prom_head(out, "peer_connected", "gauge", "1 if the peer is connected.");
  for (size_t i = 0; i < st->npeers; i++) {
    prom_peer(out, "peer_connected", &st->peers[i]);
    sb_printf(out, "%d\n", st->peers[i].info.connected != 0);
  }
  prom_head(out, "peer_handshake_age_seconds", "gauge",
            "Seconds since the peer's last handshake (absent: never).");
  for (size_t i = 0; i < st->npeers; i++) {
    if (!st->peers[i].has_age)
      continue;
    prom_peer(out, "peer_handshake_age_seconds", &st->peers[i]);
    sb_printf(out, "%" PRIu64 "\n", st->peers[i].handshake_age);
  }
  prom_head(out, "peer_endpoint_changes_total", "counter",
            "Endpoints written for the peer.");
  for (size_t i = 0; i < st->npeers; i++) {
    prom_peer(out, "peer_endpoint_changes_total", &st->peers[i]);
    sb_printf(out, "%" PRIu64 "\n", st->peers[i].info.endpoint_changes);
  }
  prom_head(out, "peer_relay", "gauge",
            "1 if the peer forwards mesh traffic for the others.");
  for (size_t i = 0; i < st->npeers; i++) {
    prom_peer(out, "peer_relay", &st->peers[i]);
    sb_printf(out, "%d\n", st->peers[i].relay != 0);
  }
  prom_head(out, "peer_route", "gauge",
            "1 for the peer's route: direct, relay-pending or relayed "
            "through the relay via.");
  for (size_t i = 0; i < st->npeers; i++) {
    const struct status_peer *p = &st->peers[i];
    char key[WGAM_KEY_B64_LEN + 1], via[WGAM_KEY_B64_LEN + 1] = "";

    wgam_key_to_base64(key, p->info.pubkey);
    if (p->info.route != WGAM_ROUTE_DIRECT)
      wgam_key_to_base64(via, p->info.via);
    sb_puts(out, "wgautomesh_peer_route{peer=\"");
    prom_label(out, key);
    sb_printf(out, "\",route=\"%s\",via=\"", wgam_route_name(p->info.route));
    prom_label(out, via);
    sb_puts(out, "\"} 1\n");
  }
  prom_head(out, "peer_route_changes_total", "counter",
            "Moves of the peer's route to a relay or back.");
  for (size_t i = 0; i < st->npeers; i++) {
    prom_peer(out, "peer_route_changes_total", &st->peers[i]);
    sb_printf(out, "%" PRIu64 "\n", st->peers[i].info.route_changes);
  }

  prom_head(out, "gossip_packets_total", "counter",
            "Gossip datagrams by direction and message type.");
  for (int d = 0; d < 2; d++)
    for (int t = 0; t < WGAM_MSG_TYPE_COUNT; t++)
      sb_printf(out,
                "wgautomesh_gossip_packets_total{direction=\"%s\",type=\"%s\"}"
                " %" PRIu64 "\n",
                dirs[d], msg_type_names[t], d ? s->pkts_out[t] : s->pkts_in[t]);
  prom_head(out, "gossip_bytes_total", "counter", "Gossip bytes by direction.");
  sb_printf(out,
            "wgautomesh_gossip_bytes_total{direction=\"in\"} %" PRIu64 "\n",
            s->bytes_in);
  sb_printf(out,
            "wgautomesh_gossip_bytes_total{direction=\"out\"} %" PRIu64 "\n",
            s->bytes_out);
  prom_head(out, "gossip_rejected_total", "counter",
            "Rejected gossip datagrams by reason.");
  for (int r = 0; r < WGAM_REJECT_COUNT; r++) {
    sb_puts(out, "wgautomesh_gossip_rejected_total{reason=\"");
    prom_label(out, wgam_reject_name(r));
    sb_printf(out, "\"} %" PRIu64 "\n", s->rejected[r]);
  }
  prom_head(out, "endpoint_changes_total", "counter",
            "Endpoints written to the device.");
  sb_printf(out, "wgautomesh_endpoint_changes_total %" PRIu64 "\n",
            s->endpoint_changes);
  prom_head(out, "peer_updates_total", "counter",
            "Peer changes applied to the device.");
  sb_printf(out, "wgautomesh_peer_updates_total %" PRIu64 "\n",
            s->peer_updates);
  prom_head(out, "relay", "gauge",
            "1 if this node forwards mesh traffic (its entry says relay).");
  sb_printf(out, "wgautomesh_relay %d\n", st->relay != 0);
  prom_head(out, "roam_watch", "gauge",
            "1 while the roam watch tells the engine of moved peers.");
  sb_printf(out, "wgautomesh_roam_watch %d\n", st->roam_watch != 0);
  prom_head(out, "relay_switches_total", "counter",
            "Moves of a peer's route to a relay or back, all peers.");
  sb_printf(out, "wgautomesh_relay_switches_total %" PRIu64 "\n",
            s->relay_switches);
  prom_head(out, "state_writes_total", "counter", "State file writes.");
  sb_printf(out, "wgautomesh_state_writes_total %" PRIu64 "\n",
            s->state_writes);
  prom_head(out, "upnp_mapped", "gauge",
            "1 if a port mapping (PCP, NAT-PMP or UPnP IGD) gives an external "
            "endpoint.");
  sb_printf(out, "wgautomesh_upnp_mapped %d\n", s->nexternal > 0);
}
