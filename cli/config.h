/* SPDX-License-Identifier: MIT */
/*
 * The JSON configuration: parsed into one struct shared by `check`, `run`
 * and the SIGHUP reload, with one precise line per problem.
 */
#ifndef WGAM_CLI_CONFIG_H
#define WGAM_CLI_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#include "wgautomesh.h"

#define CONFIG_DEFAULT_PATH "/etc/wgautomesh.json"
#define CONFIG_SOCKET_DIR "/run/wgautomesh"
/* Longest hostname in an endpoint (RFC 1035 presentation form). */
#define CONFIG_HOST_MAX 253
/* A config file larger than this is refused (it is a short list). */
#define CONFIG_MAX_FILE (16u << 20)
/* Longest secret file accepted. */
#define CONFIG_MAX_SECRET 4096

struct config_peer {
  uint8_t pubkey[WGAM_KEY_LEN];
  wgam_addr address;
  /* A literal endpoint, or family NONE. */
  wgam_addr endpoint;
  /* A hostname endpoint (resolved by resolve.c), or NULL. */
  char *host;
  uint16_t port;
  /* "relay": this node forwards mesh traffic for the others. */
  int relay;
  /* "allowed_ips": extra prefixes routed to this peer (host bits zero, no
   * overlap with another peer's prefixes or any mesh address). */
  size_t nprefixes;
  wgam_cidr prefixes[WGAM_MAX_PREFIXES];
};

struct config {
  char *interface;
  uint16_t gossip_port;
  /* Verbatim secret; has_secret is 0 when neither key is given (the
   * original then uses the empty secret). */
  uint8_t *secret;
  size_t secretlen;
  int has_secret;
  char *secret_file;  /* as configured, or NULL */
  char *persist_file; /* or NULL */
  int ipv6;
  int lan_discovery;
  int roam_watch;     /* see roam_watch.h; default on */
  uint16_t upnp_port; /* 0: no UPnP */
  int log_level;      /* -1: not set */
  char *control_socket;
  int policy; /* WGAM_POLICY_* */
  struct config_peer *peers;
  size_t npeers;
};

/* Problems found while loading: every error and warning as a full line
 * ("PATH: field: message"). */
struct config_diag {
  char **errors;
  size_t nerrors;
  char **warnings;
  size_t nwarnings;
};

/* Do not read the secret file (the `status` client only needs the socket
 * path and may lack the permission). */
#define CONFIG_SKIP_SECRET 0x1u

/*
 * Loads @path into @cfg. Returns 0 if the config is valid; -EINVAL when
 * @diag holds at least one error (then @cfg is freed and zeroed), -ENOMEM.
 * Warnings may be present either way.
 */
int config_load(struct config *cfg, const char *path, unsigned flags,
                struct config_diag *diag);
/* The same from a string; @name prefixes the lines. */
int config_parse(struct config *cfg, const char *name, const char *json,
                 size_t len, unsigned flags, struct config_diag *diag);

void config_free(struct config *cfg);
void config_diag_free(struct config_diag *diag);

/* Prints every warning and error of @diag: to stderr ("warning: " before
 * warnings), or to the log when @to_log is nonzero. */
void config_diag_print(const struct config_diag *diag, int to_log);

/* Returns the peer of @cfg with @pubkey, or NULL. */
const struct config_peer *config_find_peer(const struct config *cfg,
                                           const uint8_t pubkey[WGAM_KEY_LEN]);

/* Fills engine peers from @cfg (hostname endpoints are left NONE).
 * @out must hold cfg->npeers entries. */
void config_to_peers(const struct config *cfg, wgam_peer_config *out);

/* "fast" or "classic". */
const char *config_policy_name(int policy);

/* Parses "ADDRESS/LENGTH" (IPv4 or IPv6) into *@c. Returns 0, or -EINVAL
 * with a static message in *@why (host bits set is an error). */
int config_parse_prefix(const char *s, wgam_cidr *c, const char **why);

/* Parses an endpoint string: a literal address (into *@addr) or a
 * hostname:port (*@host malloc'd, *@port). Returns 0, -EINVAL with a static
 * message in *@why, or -ENOMEM. */
int config_parse_endpoint(const char *s, wgam_addr *addr, char **host,
                          uint16_t *port, const char **why);

#endif
