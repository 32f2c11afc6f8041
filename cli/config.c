/* SPDX-License-Identifier: MIT */
/*
 * JSON configuration loader. Every problem becomes one line naming the
 * field ("config.json: peers[3].pubkey: not a 32-byte base64 key"); all of
 * them are reported, not just the first, so `wgautomesh check` shows the
 * whole list at once.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <sodium.h>

#include "config.h"
#include "log.h"

struct ctx {
  const char *name;
  unsigned flags;
  struct config_diag *diag;
  int oom;
};

static int push_line(struct ctx *c, char ***list, size_t *n, const char *field,
                     const char *fmt, va_list ap) {
  char msg[512], *line, **grown;
  int len;

  vsnprintf(msg, sizeof(msg), fmt, ap);
  if (field && *field)
    len = asprintf(&line, "%s: %s: %s", c->name, field, msg);
  else
    len = asprintf(&line, "%s: %s", c->name, msg);
  if (len < 0)
    goto oom;
  grown = realloc(*list, (*n + 1) * sizeof(**list));
  if (!grown) {
    free(line);
    goto oom;
  }
  grown[(*n)++] = line;
  *list = grown;
  return 0;
oom:
  c->oom = 1;
  return -ENOMEM;
}

__attribute__((format(printf, 3, 4))) static void
err(struct ctx *c, const char *field, const char *fmt, ...) {
  va_list ap;

  va_start(ap, fmt);
  push_line(c, &c->diag->errors, &c->diag->nerrors, field, fmt, ap);
  va_end(ap);
}

__attribute__((format(printf, 3, 4))) static void
warn(struct ctx *c, const char *field, const char *fmt, ...) {
  va_list ap;

  va_start(ap, fmt);
  push_line(c, &c->diag->warnings, &c->diag->nwarnings, field, fmt, ap);
  va_end(ap);
}

void config_diag_free(struct config_diag *diag) {
  for (size_t i = 0; i < diag->nerrors; i++)
    free(diag->errors[i]);
  for (size_t i = 0; i < diag->nwarnings; i++)
    free(diag->warnings[i]);
  free(diag->errors);
  free(diag->warnings);
  memset(diag, 0, sizeof(*diag));
}

void config_diag_print(const struct config_diag *diag, int to_log) {
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

void config_free(struct config *cfg) {
  if (!cfg)
    return;
  free(cfg->interface);
  if (cfg->secret) {
    sodium_memzero(cfg->secret, cfg->secretlen);
    free(cfg->secret);
  }
  free(cfg->secret_file);
  free(cfg->persist_file);
  free(cfg->control_socket);
  for (size_t i = 0; i < cfg->npeers; i++)
    free(cfg->peers[i].host);
  free(cfg->peers);
  memset(cfg, 0, sizeof(*cfg));
  cfg->log_level = -1;
}

const char *config_policy_name(int policy) {
  return policy == WGAM_POLICY_CLASSIC ? "classic" : "fast";
}

/* ---- field helpers ---------------------------------------------------- */

static char *dup_or_oom(struct ctx *c, const char *s) {
  char *d = strdup(s);

  if (!d)
    c->oom = 1;
  return d;
}

/* Returns the string value of @item, or NULL after reporting "not a string". */
static const char *get_string(struct ctx *c, const cJSON *item,
                              const char *field) {
  if (!cJSON_IsString(item) || !item->valuestring) {
    err(c, field, "not a string");
    return NULL;
  }
  return item->valuestring;
}

/* Returns 0 and *@out, or -1 after reporting. */
static int get_port(struct ctx *c, const cJSON *item, const char *field,
                    uint16_t *out) {
  double v;

  if (!cJSON_IsNumber(item) || !isfinite(item->valuedouble) ||
      item->valuedouble != floor(item->valuedouble)) {
    err(c, field, "not an integer");
    return -1;
  }
  v = item->valuedouble;
  if (v < 1 || v > 65535) {
    err(c, field, "out of range (1..65535)");
    return -1;
  }
  *out = (uint16_t)v;
  return 0;
}

static int get_bool(struct ctx *c, const cJSON *item, const char *field,
                    int *out) {
  if (!cJSON_IsBool(item)) {
    err(c, field, "not a boolean");
    return -1;
  }
  *out = cJSON_IsTrue(item);
  return 0;
}

static int valid_ifname(const char *s) {
  size_t n = strlen(s);

  if (n == 0 || n > 15 || !strcmp(s, ".") || !strcmp(s, ".."))
    return 0;
  for (; *s; s++)
    if (*s == '/' || *s == ':' || isspace((unsigned char)*s) ||
        (unsigned char)*s < 0x20)
      return 0;
  return 1;
}

static int valid_hostname(const char *s, size_t n) {
  size_t label = 0;

  if (n == 0 || n > CONFIG_HOST_MAX)
    return 0;
  for (size_t i = 0; i < n; i++) {
    unsigned char ch = (unsigned char)s[i];

    if (ch == '.') {
      if (label == 0)
        return 0;
      label = 0;
      continue;
    }
    if (!isalnum(ch) && ch != '-' && ch != '_')
      return 0;
    if (++label > 63)
      return 0;
  }
  return 1;
}

int config_parse_endpoint(const char *s, wgam_addr *addr, char **host,
                          uint16_t *port, const char **why) {
  const char *colon;
  char *end;
  unsigned long p;

  memset(addr, 0, sizeof(*addr));
  *host = NULL;
  *port = 0;
  if (wgam_addr_parse(addr, s, 0) == 0) {
    if (!wgam_addr_is_valid_endpoint(addr)) {
      *why = "not a usable endpoint (unspecified, loopback, multicast, "
             "broadcast or port 0)";
      return -EINVAL;
    }
    return 0;
  }
  memset(addr, 0, sizeof(*addr));
  colon = strrchr(s, ':');
  if (!colon || s[0] == '[' || !valid_hostname(s, (size_t)(colon - s)) ||
      !isdigit((unsigned char)colon[1])) {
    *why = "not ip:port, [v6]:port or hostname:port";
    return -EINVAL;
  }
  errno = 0;
  p = strtoul(colon + 1, &end, 10);
  if (*end || errno || p < 1 || p > 65535) {
    *why = "port out of range (1..65535)";
    return -EINVAL;
  }
  /* A dotted all-numeric "host" is a malformed IPv4 address, not a name. */
  {
    int alldigits = 1;

    for (const char *q = s; q < colon; q++)
      if (!isdigit((unsigned char)*q) && *q != '.')
        alldigits = 0;
    if (alldigits) {
      *why = "not ip:port, [v6]:port or hostname:port";
      return -EINVAL;
    }
  }
  *host = strndup(s, (size_t)(colon - s));
  if (!*host)
    return -ENOMEM;
  *port = (uint16_t)p;
  return 0;
}

/* A mesh address: a bare IPv4 or IPv6 address. */
static int parse_mesh_address(const char *s, wgam_addr *a) {
  memset(a, 0, sizeof(*a));
  if (inet_pton(AF_INET, s, a->ip) == 1) {
    a->family = WGAM_AF_INET;
  } else if (inet_pton(AF_INET6, s, a->ip) == 1) {
    a->family = WGAM_AF_INET6;
  } else {
    return -EINVAL;
  }
  return 0;
}

static int mesh_address_usable(const wgam_addr *a) {
  static const uint8_t zero[16];

  if (a->family == WGAM_AF_INET)
    return memcmp(a->ip, zero, 4) != 0 && a->ip[0] < 224;
  return memcmp(a->ip, zero, 16) != 0 && a->ip[0] != 0xff;
}

int config_parse_prefix(const char *s, wgam_cidr *c, const char **why) {
  char addr[64];
  const char *slash = strchr(s, '/'), *q;
  unsigned len = 0, max;
  size_t alen;

  memset(c, 0, sizeof(*c));
  *why = "is not a prefix (ADDRESS/LENGTH)";
  if (!slash || !slash[1] || strlen(slash + 1) > 3)
    return -EINVAL;
  alen = (size_t)(slash - s);
  if (alen >= sizeof(addr))
    return -EINVAL;
  memcpy(addr, s, alen);
  addr[alen] = '\0';
  if (parse_mesh_address(addr, &c->addr))
    return -EINVAL;
  for (q = slash + 1; *q; q++) {
    if (!isdigit((unsigned char)*q))
      return -EINVAL;
    len = len * 10 + (unsigned)(*q - '0');
  }
  max = c->addr.family == WGAM_AF_INET ? 32 : 128;
  if (len > max) {
    *why = max == 32 ? "has a prefix length out of range (0..32)"
                     : "has a prefix length out of range (0..128)";
    return -EINVAL;
  }
  c->prefixlen = (uint8_t)len;
  for (unsigned bit = len; bit < max; bit++)
    if (c->addr.ip[bit / 8] & (0x80u >> (bit % 8))) {
      *why = "has host bits set";
      return -EINVAL;
    }
  return 0;
}

/* Whether @net (a prefix) holds the address @a. */
static int prefix_holds(const wgam_cidr *net, const wgam_addr *a) {
  unsigned full = net->prefixlen / 8, rest = net->prefixlen % 8;

  if (net->addr.family != a->family)
    return 0;
  if (memcmp(net->addr.ip, a->ip, full))
    return 0;
  return !rest ||
         !((net->addr.ip[full] ^ a->ip[full]) & (0xffu << (8 - rest)) & 0xff);
}

/* Two prefixes overlap when the shorter one holds the other's network. */
static int prefixes_overlap(const wgam_cidr *x, const wgam_cidr *y) {
  return x->prefixlen <= y->prefixlen ? prefix_holds(x, &y->addr)
                                      : prefix_holds(y, &x->addr);
}

static void cidr_str(char *dst, size_t n, const wgam_cidr *c) {
  char a[WGAM_ADDR_STRLEN];

  if (wgam_addr_format(a, sizeof(a), &c->addr, 0) < 0)
    snprintf(a, sizeof(a), "?");
  snprintf(dst, n, "%s/%u", a, c->prefixlen);
}

/* ---- the secret file -------------------------------------------------- */

static void read_secret_file(struct ctx *c, struct config *cfg,
                             const char *file) {
  const char *field = "gossip_secret_file";
  uint8_t *buf = NULL;
  size_t len = 0;
  struct stat st;
  ssize_t r;
  int fd;

  /* O_NONBLOCK: opening a FIFO must not hang us; it is refused below. */
  fd = open(file, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
  if (fd < 0) {
    err(c, field, "cannot read %s: %s", file, strerror(errno));
    return;
  }
  if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
    err(c, field, "%s is not a regular file", file);
    goto out;
  }
  buf = malloc(CONFIG_MAX_SECRET + 1);
  if (!buf) {
    c->oom = 1;
    goto out;
  }
  while (len <= CONFIG_MAX_SECRET) {
    r = read(fd, buf + len, CONFIG_MAX_SECRET + 1 - len);
    if (r < 0 && errno == EINTR)
      continue;
    if (r < 0) {
      err(c, field, "cannot read %s: %s", file, strerror(errno));
      goto out;
    }
    if (r == 0)
      break;
    len += (size_t)r;
  }
  if (len > CONFIG_MAX_SECRET) {
    err(c, field, "%s is longer than %u bytes", file, CONFIG_MAX_SECRET);
    goto out;
  }
  if (len == 0) {
    err(c, field, "%s is empty", file);
    goto out;
  }
  if (st.st_mode & (S_IRGRP | S_IROTH))
    warn(c, field, "%s is readable by group or others (chmod 600 it)", file);
  cfg->secret = buf;
  cfg->secretlen = len;
  cfg->has_secret = 1;
  buf = NULL;
out:
  if (buf) {
    sodium_memzero(buf, CONFIG_MAX_SECRET + 1);
    free(buf);
  }
  close(fd);
}

/* ---- objects ---------------------------------------------------------- */

/* Reports duplicate and unknown keys of @obj. @prefix names the object
 * ("" or "peers[3]."). */
static void check_keys(struct ctx *c, const cJSON *obj, const char *prefix,
                       const char *const *known) {
  char field[256];

  for (const cJSON *it = obj->child; it; it = it->next) {
    int ok = 0;

    snprintf(field, sizeof(field), "%s%s", prefix,
             it->string ? it->string : "");
    for (const cJSON *p = obj->child; p != it; p = p->next)
      if (p->string && it->string && !strcmp(p->string, it->string)) {
        err(c, field, "duplicate key");
        ok = -1;
        break;
      }
    if (ok < 0)
      continue;
    for (size_t k = 0; known[k]; k++)
      if (it->string && !strcmp(it->string, known[k]))
        ok = 1;
    if (!ok)
      err(c, field, "unknown key");
  }
}

/* "allowed_ips": an array of prefixes. Every entry keeps its position; an
 * invalid one is left of family NONE (the load fails anyway). */
static void parse_prefixes(struct ctx *c, const cJSON *arr, const char *field,
                           struct config_peer *p) {
  const cJSON *it;
  char f[128];
  size_t k = 0;

  if (!cJSON_IsArray(arr)) {
    err(c, field, "not an array");
    return;
  }
  if (cJSON_GetArraySize(arr) > WGAM_MAX_PREFIXES) {
    err(c, field, "%d prefixes, at most %d", cJSON_GetArraySize(arr),
        WGAM_MAX_PREFIXES);
    return;
  }
  cJSON_ArrayForEach(it, arr) {
    const char *s, *why;

    snprintf(f, sizeof(f), "%s[%zu]", field, k);
    if ((s = get_string(c, it, f)) &&
        config_parse_prefix(s, &p->prefixes[k], &why) < 0) {
      if (!strcmp(why, "has host bits set")) {
        char net[WGAM_ADDR_STRLEN + 8];

        for (unsigned b = p->prefixes[k].prefixlen; b < 128; b++)
          p->prefixes[k].addr.ip[b / 8] &= (uint8_t) ~(0x80u >> (b % 8));
        cidr_str(net, sizeof(net), &p->prefixes[k]);
        err(c, f, "\"%s\" has host bits set (the network is %s)", s, net);
      } else {
        err(c, f, "\"%s\" %s", s, why);
      }
      memset(&p->prefixes[k], 0, sizeof(p->prefixes[k]));
    }
    k++;
  }
  p->nprefixes = k;
}

/* A prefix routed to two peers, or holding a mesh address, would make
 * WireGuard's routing depend on the order of updates: refused. Quadratic
 * in the number of prefixes, which is small; linear in the peers. */
static void check_prefixes(struct ctx *c, const struct config *cfg,
                           const int *vaddr) {
  char field[96], a[WGAM_ADDR_STRLEN + 8], b[WGAM_ADDR_STRLEN + 8];

  for (size_t i = 0; i < cfg->npeers; i++) {
    const struct config_peer *p = &cfg->peers[i];

    for (size_t k = 0; k < p->nprefixes; k++) {
      const wgam_cidr *x = &p->prefixes[k];
      int bad = 0;

      if (x->addr.family == WGAM_AF_NONE)
        continue;
      snprintf(field, sizeof(field), "peers[%zu].allowed_ips[%zu]", i, k);
      cidr_str(a, sizeof(a), x);
      for (size_t j = 0; j <= i && !bad; j++) {
        const struct config_peer *q = &cfg->peers[j];

        for (size_t l = 0; l < q->nprefixes && !bad; l++) {
          if (j == i && l == k)
            break;
          if (q->prefixes[l].addr.family == WGAM_AF_NONE ||
              !prefixes_overlap(x, &q->prefixes[l]))
            continue;
          cidr_str(b, sizeof(b), &q->prefixes[l]);
          err(c, field, "%s overlaps peers[%zu].allowed_ips[%zu] (%s)", a, j, l,
              b);
          bad = 1;
        }
      }
      for (size_t j = 0; j < cfg->npeers && !bad; j++) {
        if (!vaddr[j] || !prefix_holds(x, &cfg->peers[j].address))
          continue;
        if (wgam_addr_format(b, sizeof(b), &cfg->peers[j].address, 0) < 0)
          snprintf(b, sizeof(b), "?");
        err(c, field, "%s holds the mesh address of peers[%zu] (%s)", a, j, b);
        bad = 1;
      }
    }
  }
}

static void parse_peer(struct ctx *c, const cJSON *obj, size_t idx,
                       struct config_peer *p, int *valid_key, int *valid_addr) {
  static const char *const known[] = {"pubkey", "address",     "endpoint",
                                      "relay",  "allowed_ips", NULL};
  char prefix[64], field[96];
  const cJSON *it;
  const char *s, *why;

  snprintf(prefix, sizeof(prefix), "peers[%zu]", idx);
  if (!cJSON_IsObject(obj)) {
    err(c, prefix, "not an object");
    return;
  }
  snprintf(prefix, sizeof(prefix), "peers[%zu].", idx);
  check_keys(c, obj, prefix, known);

  snprintf(field, sizeof(field), "%spubkey", prefix);
  it = cJSON_GetObjectItemCaseSensitive(obj, "pubkey");
  if (!it) {
    err(c, field, "missing (required)");
  } else if ((s = get_string(c, it, field))) {
    if (wgam_key_from_base64(p->pubkey, s, strlen(s)) != 0)
      err(c, field, "not a 32-byte base64 key");
    else
      *valid_key = 1;
  }

  snprintf(field, sizeof(field), "%saddress", prefix);
  it = cJSON_GetObjectItemCaseSensitive(obj, "address");
  if (!it) {
    err(c, field, "missing (required)");
  } else if ((s = get_string(c, it, field))) {
    if (parse_mesh_address(s, &p->address) != 0)
      err(c, field, "not an IPv4 or IPv6 address");
    else if (!mesh_address_usable(&p->address))
      err(c, field, "not a unicast address");
    else
      *valid_addr = 1;
  }

  snprintf(field, sizeof(field), "%sendpoint", prefix);
  it = cJSON_GetObjectItemCaseSensitive(obj, "endpoint");
  if (it && !cJSON_IsNull(it) && (s = get_string(c, it, field))) {
    int rc = config_parse_endpoint(s, &p->endpoint, &p->host, &p->port, &why);

    if (rc == -ENOMEM)
      c->oom = 1;
    else if (rc < 0)
      err(c, field, "%s", why);
  }

  snprintf(field, sizeof(field), "%srelay", prefix);
  it = cJSON_GetObjectItemCaseSensitive(obj, "relay");
  if (it)
    get_bool(c, it, field, &p->relay);

  snprintf(field, sizeof(field), "%sallowed_ips", prefix);
  it = cJSON_GetObjectItemCaseSensitive(obj, "allowed_ips");
  if (it)
    parse_prefixes(c, it, field, p);
}

static void parse_peers(struct ctx *c, struct config *cfg, const cJSON *arr) {
  size_t n = (size_t)cJSON_GetArraySize(arr), i = 0;
  int *vkey = NULL, *vaddr = NULL;
  const cJSON *it;
  wgam_settings s;

  /* The engine's bound, so that `check` refuses what `run` would. */
  wgam_settings_default(&s);
  if (n > s.max_peers) {
    err(c, "peers", "%zu peers, at most %zu", n, s.max_peers);
    return;
  }
  cfg->peers = calloc(n ? n : 1, sizeof(*cfg->peers));
  vkey = calloc(n ? n : 1, sizeof(*vkey));
  vaddr = calloc(n ? n : 1, sizeof(*vaddr));
  if (!cfg->peers || !vkey || !vaddr) {
    c->oom = 1;
    goto out;
  }
  cfg->npeers = n;
  cJSON_ArrayForEach(it, arr) {
    parse_peer(c, it, i, &cfg->peers[i], &vkey[i], &vaddr[i]);
    i++;
  }
  /* Quadratic, but a mesh config is short and this runs at load only. */
  for (i = 0; i < n; i++) {
    char field[64];

    for (size_t j = 0; j < i; j++) {
      if (vkey[i] && vkey[j] &&
          !memcmp(cfg->peers[i].pubkey, cfg->peers[j].pubkey, WGAM_KEY_LEN)) {
        snprintf(field, sizeof(field), "peers[%zu].pubkey", i);
        err(c, field, "duplicate of peers[%zu].pubkey", j);
        break;
      }
    }
    for (size_t j = 0; j < i; j++) {
      if (vaddr[i] && vaddr[j] &&
          wgam_addr_equal(&cfg->peers[i].address, &cfg->peers[j].address)) {
        snprintf(field, sizeof(field), "peers[%zu].address", i);
        err(c, field, "duplicate of peers[%zu].address", j);
        break;
      }
    }
  }
  check_prefixes(c, cfg, vaddr);
out:
  free(vkey);
  free(vaddr);
}

static void json_error_position(const char *json, const char *at, int *line,
                                int *col) {
  *line = 1;
  *col = 1;
  for (const char *p = json; p < at && *p; p++) {
    if (*p == '\n') {
      (*line)++;
      *col = 1;
    } else {
      (*col)++;
    }
  }
}

int config_parse(struct config *cfg, const char *name, const char *json,
                 size_t len, unsigned flags, struct config_diag *diag) {
  static const char *const known[] = {"interface",
                                      "gossip_port",
                                      "gossip_secret",
                                      "gossip_secret_file",
                                      "persist_file",
                                      "ipv6",
                                      "lan_discovery",
                                      "roam_watch",
                                      "upnp_forward_external_port",
                                      "log_level",
                                      "control_socket",
                                      "policy",
                                      "peers",
                                      NULL};
  struct ctx c = {.name = name, .flags = flags, .diag = diag};
  const char *end = NULL, *s;
  cJSON *root = NULL;
  const cJSON *it, *secret, *secret_file;
  int rc;

  memset(cfg, 0, sizeof(*cfg));
  cfg->log_level = -1;
  cfg->policy = WGAM_POLICY_FAST;
  cfg->roam_watch = 1;

  if (memchr(json, '\0', len)) {
    err(&c, NULL, "invalid JSON: contains a NUL byte");
    goto out;
  }
  root = cJSON_ParseWithLengthOpts(json, len, &end, 0);
  if (!root) {
    int line, col;

    end = cJSON_GetErrorPtr();
    json_error_position(json, end ? end : json + len, &line, &col);
    err(&c, NULL, "invalid JSON at line %d, column %d", line, col);
    goto out;
  }
  /* Only whitespace may follow the document. */
  for (const char *p = end; p && p < json + len; p++)
    if (!isspace((unsigned char)*p)) {
      int line, col;

      json_error_position(json, p, &line, &col);
      err(&c, NULL, "invalid JSON at line %d, column %d: trailing data", line,
          col);
      goto out;
    }
  if (!cJSON_IsObject(root)) {
    err(&c, NULL, "not a JSON object");
    goto out;
  }
  check_keys(&c, root, "", known);

  it = cJSON_GetObjectItemCaseSensitive(root, "interface");
  if (!it) {
    err(&c, "interface", "missing (required)");
  } else if ((s = get_string(&c, it, "interface"))) {
    if (!valid_ifname(s))
      err(&c, "interface",
          "not a valid interface name (1 to 15 characters, no '/', ':' or "
          "spaces)");
    else
      cfg->interface = dup_or_oom(&c, s);
  }

  it = cJSON_GetObjectItemCaseSensitive(root, "gossip_port");
  if (!it)
    err(&c, "gossip_port", "missing (required)");
  else
    get_port(&c, it, "gossip_port", &cfg->gossip_port);

  secret = cJSON_GetObjectItemCaseSensitive(root, "gossip_secret");
  secret_file = cJSON_GetObjectItemCaseSensitive(root, "gossip_secret_file");
  if (secret && secret_file) {
    err(&c, "gossip_secret_file", "conflicts with gossip_secret (give one)");
  } else if (secret) {
    if ((s = get_string(&c, secret, "gossip_secret"))) {
      size_t n = strlen(s);

      cfg->secret = malloc(n ? n : 1);
      if (!cfg->secret) {
        c.oom = 1;
      } else {
        memcpy(cfg->secret, s, n);
        cfg->secretlen = n;
        cfg->has_secret = 1;
      }
      if (n == 0)
        warn(&c, "gossip_secret",
             "empty: anyone can read and forge the gossip");
    }
  } else if (secret_file) {
    if ((s = get_string(&c, secret_file, "gossip_secret_file"))) {
      if (!*s)
        err(&c, "gossip_secret_file", "empty path");
      else if ((cfg->secret_file = dup_or_oom(&c, s)) &&
               !(flags & CONFIG_SKIP_SECRET))
        read_secret_file(&c, cfg, s);
    }
  } else {
    warn(&c, NULL,
         "no gossip_secret or gossip_secret_file: the gossip uses the empty "
         "secret (anyone can read and forge it)");
  }

  it = cJSON_GetObjectItemCaseSensitive(root, "persist_file");
  if (it && (s = get_string(&c, it, "persist_file"))) {
    if (!*s)
      err(&c, "persist_file", "empty path");
    else
      cfg->persist_file = dup_or_oom(&c, s);
  }

  it = cJSON_GetObjectItemCaseSensitive(root, "ipv6");
  if (it)
    get_bool(&c, it, "ipv6", &cfg->ipv6);
  it = cJSON_GetObjectItemCaseSensitive(root, "lan_discovery");
  if (it)
    get_bool(&c, it, "lan_discovery", &cfg->lan_discovery);
  it = cJSON_GetObjectItemCaseSensitive(root, "roam_watch");
  if (it)
    get_bool(&c, it, "roam_watch", &cfg->roam_watch);

  it = cJSON_GetObjectItemCaseSensitive(root, "upnp_forward_external_port");
  if (it && !cJSON_IsNull(it))
    get_port(&c, it, "upnp_forward_external_port", &cfg->upnp_port);

  it = cJSON_GetObjectItemCaseSensitive(root, "log_level");
  if (it && (s = get_string(&c, it, "log_level"))) {
    cfg->log_level = log_level_parse(s);
    if (cfg->log_level < 0)
      err(&c, "log_level", "not one of error, warn, info, debug, trace");
  }

  it = cJSON_GetObjectItemCaseSensitive(root, "control_socket");
  if (it && (s = get_string(&c, it, "control_socket"))) {
    if (s[0] != '/')
      err(&c, "control_socket", "not an absolute path");
    else if (strlen(s) >= sizeof(((struct sockaddr_un *)0)->sun_path))
      err(&c, "control_socket", "longer than %zu bytes",
          sizeof(((struct sockaddr_un *)0)->sun_path) - 1);
    else
      cfg->control_socket = dup_or_oom(&c, s);
  } else if (!it && cfg->interface) {
    if (asprintf(&cfg->control_socket, CONFIG_SOCKET_DIR "/%s.sock",
                 cfg->interface) < 0) {
      cfg->control_socket = NULL;
      c.oom = 1;
    }
  }

  it = cJSON_GetObjectItemCaseSensitive(root, "policy");
  if (it && (s = get_string(&c, it, "policy"))) {
    if (!strcmp(s, "fast"))
      cfg->policy = WGAM_POLICY_FAST;
    else if (!strcmp(s, "classic"))
      cfg->policy = WGAM_POLICY_CLASSIC;
    else
      err(&c, "policy", "not one of fast, classic");
  }

  it = cJSON_GetObjectItemCaseSensitive(root, "peers");
  if (!it)
    err(&c, "peers", "missing (required)");
  else if (!cJSON_IsArray(it))
    err(&c, "peers", "not an array");
  else
    parse_peers(&c, cfg, it);

out:
  cJSON_Delete(root);
  if (c.oom) {
    config_free(cfg);
    return -ENOMEM;
  }
  rc = diag->nerrors ? -EINVAL : 0;
  if (rc)
    config_free(cfg);
  return rc;
}

int config_load(struct config *cfg, const char *path, unsigned flags,
                struct config_diag *diag) {
  struct ctx c = {.name = path, .flags = flags, .diag = diag};
  char *buf = NULL;
  size_t len = 0, cap;
  struct stat st;
  ssize_t r;
  int fd, rc;

  memset(cfg, 0, sizeof(*cfg));
  cfg->log_level = -1;
  /* O_NONBLOCK: opening a FIFO must not hang us; it is refused below. */
  fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
  if (fd < 0) {
    err(&c, NULL, "cannot read: %s", strerror(errno));
    return c.oom ? -ENOMEM : -EINVAL;
  }
  if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
    err(&c, NULL, "not a regular file");
    rc = c.oom ? -ENOMEM : -EINVAL;
    goto out;
  }
  if (st.st_size > (off_t)CONFIG_MAX_FILE) {
    err(&c, NULL, "larger than %u bytes", CONFIG_MAX_FILE);
    rc = c.oom ? -ENOMEM : -EINVAL;
    goto out;
  }
  /* Sized from the file, not from the limit: a 16 MiB buffer per load
   * would raise glibc's mmap threshold, and the buffers of later loads
   * (SIGHUP) would stay on the heap, tens of MiB kept after a reload. One
   * byte more than the file, to see it grow while read (up to the limit). */
  cap = (size_t)st.st_size + 1;
  buf = malloc(cap);
  if (!buf) {
    rc = -ENOMEM;
    goto out;
  }
  for (;;) {
    if (len == cap) {
      char *g;

      if (cap > CONFIG_MAX_FILE)
        break;
      cap = cap > (CONFIG_MAX_FILE + 1) / 2 ? CONFIG_MAX_FILE + 1 : cap * 2;
      g = realloc(buf, cap);
      if (!g) {
        rc = -ENOMEM;
        goto out;
      }
      buf = g;
    }
    r = read(fd, buf + len, cap - len);
    if (r < 0 && errno == EINTR)
      continue;
    if (r < 0) {
      err(&c, NULL, "cannot read: %s", strerror(errno));
      rc = c.oom ? -ENOMEM : -EINVAL;
      goto out;
    }
    if (r == 0)
      break;
    len += (size_t)r;
  }
  if (len > CONFIG_MAX_FILE) {
    err(&c, NULL, "larger than %u bytes", CONFIG_MAX_FILE);
    rc = c.oom ? -ENOMEM : -EINVAL;
    goto out;
  }
  rc = config_parse(cfg, path, buf, len, flags, diag);
out:
  free(buf);
  close(fd);
  return rc;
}

const struct config_peer *config_find_peer(const struct config *cfg,
                                           const uint8_t pubkey[WGAM_KEY_LEN]) {
  for (size_t i = 0; i < cfg->npeers; i++)
    if (!memcmp(cfg->peers[i].pubkey, pubkey, WGAM_KEY_LEN))
      return &cfg->peers[i];
  return NULL;
}

void config_to_peers(const struct config *cfg, wgam_peer_config *out) {
  for (size_t i = 0; i < cfg->npeers; i++) {
    const struct config_peer *p = &cfg->peers[i];

    memset(&out[i], 0, sizeof(out[i]));
    memcpy(out[i].pubkey, p->pubkey, WGAM_KEY_LEN);
    out[i].address = p->address;
    out[i].endpoint = p->endpoint;
    out[i].relay = p->relay;
    out[i].nprefixes = p->nprefixes;
    memcpy(out[i].prefixes, p->prefixes,
           p->nprefixes * sizeof(out[i].prefixes[0]));
  }
}
