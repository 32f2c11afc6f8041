/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

#ifndef WGAM_VECTORS
#define WGAM_VECTORS ""
#endif

__attribute__((format(printf, 1, 2), noreturn)) static void die(const char *fmt,
                                                                ...) {
  va_list ap;

  fprintf(stderr, "testutil: ");
  va_start(ap, fmt);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fprintf(stderr, "\n");
  abort();
}

static int hexdigit(int c) {
  if (c >= '0' && c <= '9')
    return c - '0';
  if (c >= 'a' && c <= 'f')
    return c - 'a' + 10;
  if (c >= 'A' && c <= 'F')
    return c - 'A' + 10;
  return -1;
}

size_t tu_hex_decode(uint8_t *out, size_t outcap, const char *hex) {
  size_t len, i;

  if (hex == NULL)
    die("%s", "hex string is NULL");
  len = strlen(hex);
  if (len % 2 != 0)
    die("odd-length hex string: %s", hex);
  if (len / 2 > outcap)
    die("hex string longer than its buffer: %.80s", hex);
  for (i = 0; i < len / 2; i++) {
    int hi = hexdigit((unsigned char)hex[2 * i]);
    int lo = hexdigit((unsigned char)hex[2 * i + 1]);

    if (hi < 0 || lo < 0)
      die("bad hex digit in: %.80s", hex);
    out[i] = (uint8_t)(hi << 4 | lo);
  }
  return len / 2;
}

char *tu_hex_encode(const uint8_t *in, size_t len) {
  static const char digits[] = "0123456789abcdef";
  char *s = malloc(2 * len + 1);
  size_t i;

  if (s == NULL)
    die("%s", "out of memory");
  for (i = 0; i < len; i++) {
    s[2 * i] = digits[in[i] >> 4];
    s[2 * i + 1] = digits[in[i] & 0xf];
  }
  s[2 * len] = '\0';
  return s;
}

cJSON *tu_load_vectors(void) {
  const char *path = getenv("WGAM_VECTORS");
  FILE *f;
  char *buf;
  long size;
  cJSON *json;

  if (path == NULL || path[0] == '\0')
    path = WGAM_VECTORS;
  if (path[0] == '\0')
    die("%s", "no vectors file: set WGAM_VECTORS to "
              "tests/vectors/wgautomesh-v1.json");
  f = fopen(path, "rb");
  if (f == NULL) {
    fprintf(stderr, "testutil: cannot open vectors file %s: %s\n", path,
            strerror(errno));
    abort();
  }
  if (fseek(f, 0, SEEK_END) != 0 || (size = ftell(f)) < 0 ||
      fseek(f, 0, SEEK_SET) != 0)
    die("cannot size vectors file %s", path);
  buf = malloc((size_t)size + 1);
  if (buf == NULL)
    die("%s", "out of memory");
  if (fread(buf, 1, (size_t)size, f) != (size_t)size)
    die("cannot read vectors file %s", path);
  buf[size] = '\0';
  fclose(f);
  json = cJSON_Parse(buf);
  free(buf);
  if (json == NULL)
    die("vectors file %s is not valid JSON", path);
  return json;
}

/* splitmix64 (Steele, Lea, Flood 2014): a tiny, well-mixed generator. */
static uint64_t splitmix64(uint64_t *state) {
  uint64_t z = (*state += 0x9e3779b97f4a7c15ULL);

  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

int tu_rand_fixed(void *user_data, uint8_t *dest, size_t destlen) {
  uint64_t *counter = user_data;
  uint64_t state, v = 0;
  size_t i;

  if (counter == NULL)
    return -1;
  state = *counter;
  for (i = 0; i < destlen; i++) {
    if (i % 8 == 0)
      v = splitmix64(&state);
    dest[i] = (uint8_t)(v >> (8 * (i % 8)));
  }
  (*counter)++;
  return 0;
}

static cJSON *vectors;

cJSON *tu_vectors_array(const char *name) {
  cJSON *arr;

  if (vectors == NULL)
    vectors = tu_load_vectors();
  arr = cJSON_GetObjectItemCaseSensitive(vectors, name);
  if (!cJSON_IsArray(arr))
    die("vectors have no array %s", name);
  return arr;
}

int tu_vectors_count(const char *name) {
  return cJSON_GetArraySize(tu_vectors_array(name));
}

const char *tu_json_str(const cJSON *obj, const char *name) {
  const cJSON *item = cJSON_GetObjectItemCaseSensitive(obj, name);

  if (!cJSON_IsString(item))
    die("missing string member %s", name);
  return item->valuestring;
}

static uint64_t parse_u64(const char *s) {
  uint64_t v = 0;

  if (*s == '\0')
    die("%s", "empty u64 string");
  for (; *s; s++) {
    uint64_t d = (uint64_t)(*s - '0');

    if (*s < '0' || *s > '9' || v > (UINT64_MAX - d) / 10)
      die("bad u64 string: %s", s);
    v = v * 10 + d;
  }
  return v;
}

void tu_json_endpoint(const cJSON *obj, wgam_endpoint *ep) {
  const char *addr = tu_json_str(obj, "addr");

  memset(ep, 0, sizeof(*ep));
  if (wgam_addr_parse(&ep->addr, addr, 0) != 0)
    die("cannot parse vector address %s", addr);
  ep->time = parse_u64(tu_json_str(obj, "last_seen"));
}

void tu_json_msg(const cJSON *value, wgam_msg *msg) {
  const char *variant = tu_json_str(value, "variant");
  const cJSON *fields = cJSON_GetObjectItemCaseSensitive(value, "fields");

  memset(msg, 0, sizeof(*msg));
  if (strcmp(variant, "Ping") == 0) {
    msg->type = WGAM_MSG_PING;
  } else if (strcmp(variant, "Pong") == 0) {
    msg->type = WGAM_MSG_PONG;
  } else if (strcmp(variant, "Request") == 0) {
    msg->type = WGAM_MSG_REQUEST;
  } else if (strcmp(variant, "Announce") == 0 ||
             strcmp(variant, "LanBroadcast") == 0) {
    const char *pubkey = tu_json_str(fields, "pubkey");

    msg->pubkey = (const uint8_t *)pubkey;
    msg->pubkeylen = strlen(pubkey);
    if (variant[0] == 'A') {
      const cJSON *eps = cJSON_GetObjectItemCaseSensitive(fields, "endpoints");
      const cJSON *ep;

      msg->type = WGAM_MSG_ANNOUNCE;
      if (!cJSON_IsArray(eps))
        die("%s", "Announce without endpoints");
      cJSON_ArrayForEach(ep, eps) {
        if (msg->nendpoints >= WGAM_MSG_MAX_ENDPOINTS)
          die("%s", "too many endpoints in a vector");
        tu_json_endpoint(ep, &msg->endpoints[msg->nendpoints++]);
      }
    } else {
      const cJSON *port =
          cJSON_GetObjectItemCaseSensitive(fields, "listen_port");

      msg->type = WGAM_MSG_LAN_BROADCAST;
      if (!cJSON_IsNumber(port) || port->valuedouble < 0 ||
          port->valuedouble > 65535)
        die("%s", "bad listen_port");
      msg->listen_port = (uint16_t)port->valuedouble;
    }
  } else {
    die("unknown variant %s", variant);
  }
}

int tu_msg_equal(const wgam_msg *a, const wgam_msg *b) {
  size_t i;

  if (a->type != b->type || a->pubkeylen != b->pubkeylen ||
      a->nendpoints != b->nendpoints || a->listen_port != b->listen_port)
    return 0;
  if (a->pubkeylen > 0 && memcmp(a->pubkey, b->pubkey, a->pubkeylen) != 0)
    return 0;
  for (i = 0; i < a->nendpoints; i++)
    if (!wgam_addr_equal(&a->endpoints[i].addr, &b->endpoints[i].addr) ||
        a->endpoints[i].time != b->endpoints[i].time)
      return 0;
  return 1;
}

wgam_addr tu_v4(int a, int b, int c, int d, uint16_t port) {
  wgam_addr x;

  memset(&x, 0, sizeof(x));
  x.family = WGAM_AF_INET;
  x.ip[0] = (uint8_t)a;
  x.ip[1] = (uint8_t)b;
  x.ip[2] = (uint8_t)c;
  x.ip[3] = (uint8_t)d;
  x.port = port;
  return x;
}
