/* SPDX-License-Identifier: MIT */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jsonw.h"

void sb_init(struct sbuf *b) {
  memset(b, 0, sizeof(*b));
}

void sb_free(struct sbuf *b) {
  free(b->p);
  sb_init(b);
}

static int sb_reserve(struct sbuf *b, size_t extra) {
  size_t need, cap;
  char *p;

  if (b->oom)
    return -1;
  if (extra > SIZE_MAX / 2 - b->len)
    goto fail;
  need = b->len + extra + 1;
  if (need <= b->cap)
    return 0;
  cap = b->cap ? b->cap : 256;
  while (cap < need)
    cap *= 2;
  p = realloc(b->p, cap);
  if (!p)
    goto fail;
  b->p = p;
  b->cap = cap;
  return 0;
fail:
  b->oom = 1;
  return -1;
}

void sb_putn(struct sbuf *b, const char *s, size_t n) {
  if (sb_reserve(b, n) < 0)
    return;
  memcpy(b->p + b->len, s, n);
  b->len += n;
  b->p[b->len] = '\0';
}

void sb_puts(struct sbuf *b, const char *s) {
  sb_putn(b, s, strlen(s));
}

void sb_putc(struct sbuf *b, char c) {
  sb_putn(b, &c, 1);
}

void sb_printf(struct sbuf *b, const char *fmt, ...) {
  va_list ap;
  int n;

  va_start(ap, fmt);
  n = vsnprintf(NULL, 0, fmt, ap);
  va_end(ap);
  if (n < 0 || sb_reserve(b, (size_t)n) < 0)
    return;
  va_start(ap, fmt);
  vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
  va_end(ap);
  b->len += (size_t)n;
}

const char *sb_cstr(struct sbuf *b) {
  return b->p ? b->p : "";
}

void jw_strn(struct sbuf *b, const char *s, size_t n) {
  static const char hex[] = "0123456789abcdef";

  sb_putc(b, '"');
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];

    switch (c) {
    case '"':
      sb_puts(b, "\\\"");
      break;
    case '\\':
      sb_puts(b, "\\\\");
      break;
    case '\n':
      sb_puts(b, "\\n");
      break;
    case '\r':
      sb_puts(b, "\\r");
      break;
    case '\t':
      sb_puts(b, "\\t");
      break;
    default:
      if (c < 0x20 || c == 0x7f) {
        char esc[7] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15], 0};
        sb_puts(b, esc);
      } else {
        sb_putc(b, (char)c);
      }
    }
  }
  sb_putc(b, '"');
}

void jw_str(struct sbuf *b, const char *s) {
  jw_strn(b, s, strlen(s));
}

void jw_str_or_null(struct sbuf *b, const char *s) {
  if (s)
    jw_str(b, s);
  else
    sb_puts(b, "null");
}

void jw_u64(struct sbuf *b, uint64_t v) {
  sb_printf(b, "%" PRIu64, v);
}

void jw_bool(struct sbuf *b, int v) {
  sb_puts(b, v ? "true" : "false");
}

void jw_addr(struct sbuf *b, const wgam_addr *a, int with_port) {
  char s[WGAM_ADDR_STRLEN];

  if (!a || a->family == WGAM_AF_NONE ||
      wgam_addr_format(s, sizeof(s), a, with_port) < 0) {
    sb_puts(b, "null");
    return;
  }
  jw_str(b, s);
}

void jw_key(struct sbuf *b, const uint8_t key[WGAM_KEY_LEN]) {
  char s[WGAM_KEY_B64_LEN + 1];

  wgam_key_to_base64(s, key);
  jw_str(b, s);
}

void jw_name(struct sbuf *b, const char *name) {
  jw_str(b, name);
  sb_putc(b, ':');
}
