/* SPDX-License-Identifier: MIT */
/*
 * A growable text buffer and a minimal JSON writer. Output JSON is written
 * by hand rather than through cJSON because u64 values (gossip timestamps,
 * counters) must be printed exactly, and strings from the wire may hold any
 * UTF-8, NUL included.
 */
#ifndef WGAM_CLI_JSONW_H
#define WGAM_CLI_JSONW_H

#include <stddef.h>
#include <stdint.h>

#include "wgautomesh.h"

struct sbuf {
  char *p; /* NUL-terminated when len > 0 or after sb_cstr() */
  size_t len;
  size_t cap;
  int oom; /* an allocation failed: contents are incomplete */
};

void sb_init(struct sbuf *b);
void sb_free(struct sbuf *b);
void sb_putn(struct sbuf *b, const char *s, size_t n);
void sb_puts(struct sbuf *b, const char *s);
void sb_putc(struct sbuf *b, char c);
void sb_printf(struct sbuf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Returns the NUL-terminated contents ("" when empty). */
const char *sb_cstr(struct sbuf *b);

/* A JSON string literal of @n bytes of @s. */
void jw_strn(struct sbuf *b, const char *s, size_t n);
void jw_str(struct sbuf *b, const char *s);
/* A JSON string, or null when @s is NULL. */
void jw_str_or_null(struct sbuf *b, const char *s);
void jw_u64(struct sbuf *b, uint64_t v);
void jw_bool(struct sbuf *b, int v);
/* "ip:port" (Rust SocketAddr syntax), or null for WGAM_AF_NONE. */
void jw_addr(struct sbuf *b, const wgam_addr *a, int with_port);
/* A base64 key string. */
void jw_key(struct sbuf *b, const uint8_t key[WGAM_KEY_LEN]);
/* "key": (the key is escaped; callers add the comma). */
void jw_name(struct sbuf *b, const char *name);

#endif
