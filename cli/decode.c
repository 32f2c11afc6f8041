/* SPDX-License-Identifier: MIT */
/*
 * Debugging aid for packet captures and state files. The JSON follows the
 * Rust SocketAddr display syntax and prints every u64 exactly.
 */
#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "decode.h"

static const char *const msg_names[WGAM_MSG_TYPE_COUNT] = {
    "Ping", "Pong", "Announce", "Request", "LanBroadcast"};

static void endpoints_json(struct sbuf *b, const wgam_endpoint *eps, size_t n) {
  sb_putc(b, '[');
  for (size_t i = 0; i < n; i++) {
    if (i)
      sb_putc(b, ',');
    sb_puts(b, "{\"addr\":");
    jw_addr(b, &eps[i].addr, 1);
    sb_puts(b, ",\"time\":");
    jw_u64(b, eps[i].time);
    sb_putc(b, '}');
  }
  sb_putc(b, ']');
}

void decode_msg_json(struct sbuf *b, const wgam_msg *msg) {
  sb_puts(b, "{\"type\":");
  if (msg->type < WGAM_MSG_TYPE_COUNT)
    jw_str(b, msg_names[msg->type]);
  else
    jw_u64(b, msg->type);
  if (msg->type == WGAM_MSG_ANNOUNCE || msg->type == WGAM_MSG_LAN_BROADCAST) {
    sb_puts(b, ",\"pubkey\":");
    jw_strn(b, (const char *)msg->pubkey, msg->pubkeylen);
  }
  if (msg->type == WGAM_MSG_ANNOUNCE) {
    sb_puts(b, ",\"endpoints\":");
    endpoints_json(b, msg->endpoints, msg->nendpoints);
  }
  if (msg->type == WGAM_MSG_LAN_BROADCAST) {
    sb_puts(b, ",\"listen_port\":");
    jw_u64(b, msg->listen_port);
  }
  sb_putc(b, '}');
}

static void error_json(struct sbuf *b, const char *what) {
  sb_puts(b, "{\"error\":");
  jw_str(b, what);
  sb_putc(b, '}');
}

void decode_pkt_json(struct sbuf *b, const uint8_t key[WGAM_KEY_LEN],
                     const uint8_t *pkt, size_t pktlen) {
  uint8_t plain[WGAM_MAX_PLAINTEXT_LEN];
  wgam_msg *msg;
  wgam_ssize n;

  n = wgam_pkt_open(plain, sizeof(plain), key, pkt, pktlen);
  if (n < 0) {
    error_json(b, wgam_strerror((int)n));
    return;
  }
  /* wgam_msg is large (80 endpoints): keep it off the stack. */
  msg = calloc(1, sizeof(*msg));
  if (!msg) {
    error_json(b, strerror(ENOMEM));
    return;
  }
  n = wgam_msg_decode(msg, plain, (size_t)n);
  if (n < 0)
    error_json(b, wgam_strerror((int)n));
  else
    decode_msg_json(b, msg);
  free(msg);
}

static int hexval(int c) {
  if (c >= '0' && c <= '9')
    return c - '0';
  c = tolower(c);
  if (c >= 'a' && c <= 'f')
    return c - 'a' + 10;
  return -1;
}

/* Decodes hex in place; returns the byte count or -1. */
static ssize_t unhex(char *line, uint8_t *out) {
  size_t n = 0;
  int hi = -1;

  for (char *p = line; *p; p++) {
    int v;

    if (isspace((unsigned char)*p) || *p == ':')
      continue;
    v = hexval((unsigned char)*p);
    if (v < 0)
      return -1;
    if (hi < 0) {
      hi = v;
    } else {
      out[n++] = (uint8_t)(hi << 4 | v);
      hi = -1;
    }
  }
  return hi < 0 ? (ssize_t)n : -1;
}

int decode_stream(FILE *in, FILE *out, const uint8_t *secret,
                  size_t secretlen) {
  uint8_t key[WGAM_KEY_LEN];
  char *line = NULL;
  size_t cap = 0;
  ssize_t len;
  int rc = 0;

  wgam_key_derive(key, secret, secretlen);
  while ((len = getline(&line, &cap, in)) >= 0) {
    struct sbuf b;
    char *p = line;
    ssize_t n;

    while (isspace((unsigned char)*p))
      p++;
    if (!*p || *p == '#')
      continue;
    sb_init(&b);
    /* The hex is never longer than the line: decode into the line. */
    n = unhex(p, (uint8_t *)line);
    if (n < 0)
      error_json(&b, "invalid hex");
    else
      decode_pkt_json(&b, key, (const uint8_t *)line, (size_t)n);
    if (b.oom)
      rc = -ENOMEM;
    else
      fprintf(out, "%s\n", sb_cstr(&b));
    sb_free(&b);
    if (rc)
      break;
  }
  if (!rc && ferror(in))
    rc = -EIO;
  if (fflush(out) != 0 && !rc)
    rc = -errno;
  free(line);
  sodium_memzero(key, sizeof(key));
  return rc;
}

struct state_ctx {
  struct sbuf *b;
  size_t n;
};

static int state_entry(const uint8_t *pubkey, size_t pubkeylen,
                       const wgam_endpoint *endpoints, size_t nendpoints,
                       void *user_data) {
  struct state_ctx *c = user_data;

  if (c->n++)
    sb_putc(c->b, ',');
  jw_strn(c->b, (const char *)pubkey, pubkeylen);
  sb_putc(c->b, ':');
  endpoints_json(c->b, endpoints, nendpoints);
  return 0;
}

int decode_state_json(struct sbuf *b, const uint8_t *data, size_t datalen) {
  struct sbuf tmp;
  struct state_ctx c = {.b = &tmp};
  int rc;

  sb_init(&tmp);
  sb_putc(&tmp, '{');
  rc = wgam_state_parse(data, datalen, state_entry, &c);
  sb_putc(&tmp, '}');
  if (rc < 0)
    error_json(b, wgam_strerror(rc));
  else
    sb_putn(b, tmp.p, tmp.len);
  sb_free(&tmp);
  return rc;
}
