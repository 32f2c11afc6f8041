/* SPDX-License-Identifier: MIT */
/*
 * Socket addresses and base64 keys: parsing and formatting without the C
 * library's networking functions (the library must not depend on the OS).
 *
 * Parsing follows Rust's std::net grammar, which the original daemon used
 * for its configuration and logs: IPv4 octets are decimal without leading
 * zeros, IPv6 groups are 1..4 hex digits with at most one "::" standing for
 * at least one zero group, and an IPv4 tail may end an IPv6 address.
 * Formatting matches Rust's Display: RFC 5952 compression (longest run of
 * two or more zero groups, the first one on a tie, lowercase) and the
 * IPv4-mapped form "::ffff:a.b.c.d".
 */
#include <string.h>

#include "internal.h"

/* A cursor over the input string, which is not NUL-terminated inside. */
typedef struct cursor {
  const char *s;
  size_t len;
  size_t pos;
} cursor;

static int peek(const cursor *c) {
  return c->pos < c->len ? (unsigned char)c->s[c->pos] : -1;
}

static int eat(cursor *c, char ch) {
  if (peek(c) != (unsigned char)ch)
    return 0;
  c->pos++;
  return 1;
}

static int hexval(int ch) {
  if (ch >= '0' && ch <= '9')
    return ch - '0';
  if (ch >= 'a' && ch <= 'f')
    return ch - 'a' + 10;
  if (ch >= 'A' && ch <= 'F')
    return ch - 'A' + 10;
  return -1;
}

/* One decimal octet: 1..3 digits, no leading zero, at most 255. */
static int read_octet(cursor *c, uint8_t *out) {
  unsigned v = 0;
  int ndigits = 0;
  size_t start = c->pos;

  while (ndigits < 3 && peek(c) >= '0' && peek(c) <= '9') {
    v = v * 10 + (unsigned)(peek(c) - '0');
    c->pos++;
    ndigits++;
  }
  if (ndigits == 0 || v > 255 || (ndigits > 1 && c->s[start] == '0')) {
    c->pos = start;
    return 0;
  }
  *out = (uint8_t)v;
  return 1;
}

/* a.b.c.d; on failure the cursor is left where it was. */
static int read_ipv4(cursor *c, uint8_t out[4]) {
  size_t start = c->pos;
  int i;

  for (i = 0; i < 4; i++) {
    if ((i > 0 && !eat(c, '.')) || !read_octet(c, &out[i])) {
      c->pos = start;
      return 0;
    }
  }
  return 1;
}

static int read_hex_group(cursor *c, uint16_t *out) {
  unsigned v = 0;
  int ndigits = 0;

  while (ndigits < 4 && hexval(peek(c)) >= 0) {
    v = v << 4 | (unsigned)hexval(peek(c));
    c->pos++;
    ndigits++;
  }
  if (ndigits == 0)
    return 0;
  *out = (uint16_t)v;
  return 1;
}

/* Reads up to @limit ':'-separated groups into @groups. An IPv4 address may
 * take the place of the last two groups, which ends the sequence (*@v4 set).
 * A separator not followed by a group is not consumed, so that "1::" stops
 * before the "::". Returns the number of groups read. */
static int read_groups(cursor *c, uint16_t *groups, int limit, int *v4) {
  int i;

  *v4 = 0;
  for (i = 0; i < limit; i++) {
    size_t start = c->pos;
    uint8_t o[4];

    if (i > 0 && !eat(c, ':'))
      return i;
    if (i < limit - 1 && read_ipv4(c, o)) {
      groups[i] = (uint16_t)(o[0] << 8 | o[1]);
      groups[i + 1] = (uint16_t)(o[2] << 8 | o[3]);
      *v4 = 1;
      return i + 2;
    }
    if (!read_hex_group(c, &groups[i])) {
      c->pos = start;
      return i;
    }
  }
  return i;
}

static int read_ipv6(cursor *c, uint8_t out[16]) {
  uint16_t groups[8] = {0}, tail[8];
  int nhead, ntail, v4, i;

  nhead = read_groups(c, groups, 8, &v4);
  if (nhead < 8) {
    if (v4)
      return 0;
    if (!eat(c, ':') || !eat(c, ':'))
      return 0;
    /* "::" stands for at least one zero group. */
    ntail = read_groups(c, tail, 7 - nhead, &v4);
    for (i = 0; i < ntail; i++)
      groups[8 - ntail + i] = tail[i];
  }
  for (i = 0; i < 8; i++) {
    out[2 * i] = (uint8_t)(groups[i] >> 8);
    out[2 * i + 1] = (uint8_t)groups[i];
  }
  return 1;
}

/* "%scope": the protocol has no room for a scope id, so it is checked for
 * sanity (a number or an interface name) and dropped. */
static int skip_scope(cursor *c) {
  size_t n = 0;

  if (!eat(c, '%'))
    return 1;
  for (;;) {
    int ch = peek(c);

    if (!((ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'z') ||
          (ch >= 'A' && ch <= 'Z') || ch == '-' || ch == '_' || ch == '.'))
      break;
    c->pos++;
    n++;
  }
  return n > 0 && n <= 32;
}

/* Decimal port; leading zeros are accepted as Rust's parser does. */
static int read_port(cursor *c, uint16_t *port) {
  unsigned long v = 0;
  int ndigits = 0;

  while (peek(c) >= '0' && peek(c) <= '9') {
    v = v * 10 + (unsigned long)(peek(c) - '0');
    if (v > 65535)
      return 0;
    c->pos++;
    ndigits++;
  }
  if (ndigits == 0)
    return 0;
  *port = (uint16_t)v;
  return 1;
}

/* After the address: ":port", or the end if the port is optional. */
static int read_port_suffix(cursor *c, uint16_t *port, int port_optional) {
  if (c->pos == c->len && port_optional) {
    *port = 0;
    return 1;
  }
  return eat(c, ':') && read_port(c, port) && c->pos == c->len;
}

int wgam_addr_parse(wgam_addr *addr, const char *s, int port_optional) {
  wgam_addr a;
  cursor c;

  if (addr == NULL || s == NULL)
    return WGAM_ERR_PARSE;
  memset(&a, 0, sizeof(a));
  c.s = s;
  c.len = strlen(s);
  c.pos = 0;

  if (eat(&c, '[')) {
    if (!read_ipv6(&c, a.ip) || !skip_scope(&c) || !eat(&c, ']') ||
        !read_port_suffix(&c, &a.port, port_optional))
      return WGAM_ERR_PARSE;
    a.family = WGAM_AF_INET6;
  } else if (read_ipv4(&c, a.ip)) {
    if (!read_port_suffix(&c, &a.port, port_optional))
      return WGAM_ERR_PARSE;
    a.family = WGAM_AF_INET;
  } else {
    /* A bare IPv6 address can't carry a port: "::1:80" is an address. */
    if (!port_optional || !read_ipv6(&c, a.ip) || !skip_scope(&c) ||
        c.pos != c.len)
      return WGAM_ERR_PARSE;
    a.family = WGAM_AF_INET6;
  }
  *addr = a;
  return 0;
}

/* A small bounded string builder. */
typedef struct strbuf {
  char buf[WGAM_ADDR_STRLEN];
  size_t len;
} strbuf;

static void put_char(strbuf *b, char ch) {
  if (b->len < sizeof(b->buf) - 1)
    b->buf[b->len++] = ch;
}

static void put_str(strbuf *b, const char *s) {
  while (*s)
    put_char(b, *s++);
}

static void put_dec(strbuf *b, unsigned v) {
  char tmp[10];
  int n = 0;

  do {
    tmp[n++] = (char)('0' + v % 10);
    v /= 10;
  } while (v > 0);
  while (n > 0)
    put_char(b, tmp[--n]);
}

static void put_hex(strbuf *b, unsigned v) {
  static const char digits[] = "0123456789abcdef";
  char tmp[4];
  int n = 0;

  do {
    tmp[n++] = digits[v & 0xf];
    v >>= 4;
  } while (v > 0);
  while (n > 0)
    put_char(b, tmp[--n]);
}

static void put_ipv4(strbuf *b, const uint8_t ip[4]) {
  int i;

  for (i = 0; i < 4; i++) {
    if (i > 0)
      put_char(b, '.');
    put_dec(b, ip[i]);
  }
}

static const uint8_t V4MAPPED_PREFIX[12] = {0, 0, 0, 0, 0,    0,
                                            0, 0, 0, 0, 0xff, 0xff};

static void put_ipv6(strbuf *b, const uint8_t ip[16]) {
  uint16_t g[8];
  int i, best_start = -1, best_len = 0, cur_start = 0, cur_len = 0;

  if (memcmp(ip, V4MAPPED_PREFIX, sizeof(V4MAPPED_PREFIX)) == 0) {
    put_str(b, "::ffff:");
    put_ipv4(b, ip + 12);
    return;
  }
  for (i = 0; i < 8; i++) {
    g[i] = (uint16_t)(ip[2 * i] << 8 | ip[2 * i + 1]);
    if (g[i] == 0) {
      if (cur_len == 0)
        cur_start = i;
      cur_len++;
      if (cur_len > best_len) {
        best_start = cur_start;
        best_len = cur_len;
      }
    } else {
      cur_len = 0;
    }
  }
  /* RFC 5952 4.2.2: a single zero group is not shortened. */
  if (best_len < 2)
    best_start = -1;
  for (i = 0; i < 8; i++) {
    if (i == best_start) {
      put_str(b, "::");
      i += best_len - 1;
      continue;
    }
    if (i > 0 && i != best_start + best_len)
      put_char(b, ':');
    put_hex(b, g[i]);
  }
}

wgam_ssize wgam_addr_format(char *dest, size_t destlen, const wgam_addr *addr,
                            int with_port) {
  strbuf b;

  b.len = 0;
  if (addr == NULL ||
      (addr->family != WGAM_AF_INET && addr->family != WGAM_AF_INET6)) {
    put_char(&b, '-');
  } else if (addr->family == WGAM_AF_INET) {
    put_ipv4(&b, addr->ip);
    if (with_port) {
      put_char(&b, ':');
      put_dec(&b, addr->port);
    }
  } else if (with_port) {
    put_char(&b, '[');
    put_ipv6(&b, addr->ip);
    put_char(&b, ']');
    put_char(&b, ':');
    put_dec(&b, addr->port);
  } else {
    put_ipv6(&b, addr->ip);
  }

  if (dest == NULL || destlen < b.len + 1) {
    /* A truncated address would be misleading: leave an empty string. */
    if (dest != NULL && destlen > 0)
      dest[0] = '\0';
    return WGAM_ERR_NOBUF;
  }
  memcpy(dest, b.buf, b.len);
  dest[b.len] = '\0';
  return (wgam_ssize)b.len;
}

int wgam_addr_equal(const wgam_addr *a, const wgam_addr *b) {
  return wgam_addr_eq(a, b);
}

static int ipv4_is_valid_unicast(const uint8_t ip[4]) {
  /* 0.0.0.0/8 is "this network", only valid as a source (RFC 1122). */
  if (ip[0] == 0)
    return 0;
  if (ip[0] == 127) /* loopback */
    return 0;
  if ((ip[0] & 0xf0) == 0xe0) /* multicast 224.0.0.0/4 */
    return 0;
  if (ip[0] == 255 && ip[1] == 255 && ip[2] == 255 && ip[3] == 255)
    return 0;
  return 1;
}

int wgam_addr_is_valid_endpoint(const wgam_addr *addr) {
  static const uint8_t zero[16];
  static const uint8_t loopback[16] = {0, 0, 0, 0, 0, 0, 0, 0,
                                       0, 0, 0, 0, 0, 0, 0, 1};

  if (addr == NULL || addr->port == 0)
    return 0;
  switch (addr->family) {
  case WGAM_AF_INET:
    return ipv4_is_valid_unicast(addr->ip);
  case WGAM_AF_INET6:
    if (memcmp(addr->ip, zero, 16) == 0 || memcmp(addr->ip, loopback, 16) == 0)
      return 0;
    if (addr->ip[0] == 0xff) /* multicast ff00::/8 */
      return 0;
    /* An IPv4-mapped address reaches the IPv4 address it holds. */
    if (memcmp(addr->ip, V4MAPPED_PREFIX, sizeof(V4MAPPED_PREFIX)) == 0)
      return ipv4_is_valid_unicast(addr->ip + 12);
    return 1;
  default:
    return 0;
  }
}

static const char B64[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* The alphabet as X(character, value, shift) entries. */
#define B64_ALPHABET(X, sh)                                                    \
  X('A', 0, sh), X('B', 1, sh), X('C', 2, sh), X('D', 3, sh), X('E', 4, sh),   \
      X('F', 5, sh), X('G', 6, sh), X('H', 7, sh), X('I', 8, sh),              \
      X('J', 9, sh), X('K', 10, sh), X('L', 11, sh), X('M', 12, sh),           \
      X('N', 13, sh), X('O', 14, sh), X('P', 15, sh), X('Q', 16, sh),          \
      X('R', 17, sh), X('S', 18, sh), X('T', 19, sh), X('U', 20, sh),          \
      X('V', 21, sh), X('W', 22, sh), X('X', 23, sh), X('Y', 24, sh),          \
      X('Z', 25, sh), X('a', 26, sh), X('b', 27, sh), X('c', 28, sh),          \
      X('d', 29, sh), X('e', 30, sh), X('f', 31, sh), X('g', 32, sh),          \
      X('h', 33, sh), X('i', 34, sh), X('j', 35, sh), X('k', 36, sh),          \
      X('l', 37, sh), X('m', 38, sh), X('n', 39, sh), X('o', 40, sh),          \
      X('p', 41, sh), X('q', 42, sh), X('r', 43, sh), X('s', 44, sh),          \
      X('t', 45, sh), X('u', 46, sh), X('v', 47, sh), X('w', 48, sh),          \
      X('x', 49, sh), X('y', 50, sh), X('z', 51, sh), X('0', 52, sh),          \
      X('1', 53, sh), X('2', 54, sh), X('3', 55, sh), X('4', 56, sh),          \
      X('5', 57, sh), X('6', 58, sh), X('7', 59, sh), X('8', 60, sh),          \
      X('9', 61, sh), X('+', 62, sh), X('/', 63, sh)
#define B64_ENTRY(c, v, sh) [c] = (uint32_t)(v) << (sh) | 1u << 24

/*
 * Base64 values already shifted to their place in a group of 4 characters,
 * plus 1 << 24; 0 for every byte outside the alphabet. A group is then the
 * sum of 4 entries, and the bits from 24 up count its valid characters. The
 * key lookup of each received announce goes through here.
 */
static const uint32_t B64VAL[4][256] = {
    {B64_ALPHABET(B64_ENTRY, 18)},
    {B64_ALPHABET(B64_ENTRY, 12)},
    {B64_ALPHABET(B64_ENTRY, 6)},
    {B64_ALPHABET(B64_ENTRY, 0)},
};
#undef B64_ENTRY
#undef B64_ALPHABET

int wgam_key_from_base64(uint8_t key[WGAM_KEY_LEN], const char *b64,
                         size_t b64len) {
  const unsigned char *s = (const unsigned char *)b64;
  uint8_t out[WGAM_KEY_LEN];
  uint32_t g, nvalid = 0;
  size_t i, o = 0;

  if (b64 == NULL || b64len != WGAM_KEY_B64_LEN ||
      b64[WGAM_KEY_B64_LEN - 1] != '=')
    return WGAM_ERR_PARSE;
  /* 10 groups of 4 characters make 30 bytes; the last 3 characters carry
   * 18 bits: 2 bytes and 2 bits that must be zero, otherwise two different
   * strings would name the same key. */
  for (i = 0; i < 40; i += 4) {
    g = B64VAL[0][s[i]] + B64VAL[1][s[i + 1]] + B64VAL[2][s[i + 2]] +
        B64VAL[3][s[i + 3]];
    nvalid += g >> 24;
    out[o++] = (uint8_t)(g >> 16);
    out[o++] = (uint8_t)(g >> 8);
    out[o++] = (uint8_t)g;
  }
  g = B64VAL[1][s[40]] + B64VAL[2][s[41]] + B64VAL[3][s[42]];
  nvalid += g >> 24;
  if (nvalid != WGAM_KEY_B64_LEN - 1 || (g & 3))
    return WGAM_ERR_PARSE;
  out[o++] = (uint8_t)(g >> 10);
  out[o] = (uint8_t)(g >> 2);
  memcpy(key, out, WGAM_KEY_LEN);
  return 0;
}

void wgam_key_to_base64(char dest[WGAM_KEY_B64_LEN + 1],
                        const uint8_t key[WGAM_KEY_LEN]) {
  size_t i, o = 0;

  /* 10 full 3-byte groups, then 2 bytes as 3 characters and a '='. */
  for (i = 0; i + 3 <= WGAM_KEY_LEN; i += 3) {
    uint32_t v =
        (uint32_t)key[i] << 16 | (uint32_t)key[i + 1] << 8 | key[i + 2];

    dest[o++] = B64[v >> 18];
    dest[o++] = B64[(v >> 12) & 63];
    dest[o++] = B64[(v >> 6) & 63];
    dest[o++] = B64[v & 63];
  }
  {
    uint32_t v = (uint32_t)key[30] << 16 | (uint32_t)key[31] << 8;

    dest[o++] = B64[v >> 18];
    dest[o++] = B64[(v >> 12) & 63];
    dest[o++] = B64[(v >> 6) & 63];
    dest[o++] = '=';
  }
  dest[o] = '\0';
}

/* Private, shared-NAT, link-local and ULA addresses: reachable only from
 * the network they belong to, which we cannot tell from here. */
int wgam_addr_private(const wgam_addr *a) {
  const uint8_t *ip = a->ip;
  if (a->family == WGAM_AF_INET)
    return ip[0] == 10 || (ip[0] == 172 && (ip[1] & 0xf0) == 16) ||
           (ip[0] == 192 && ip[1] == 168) ||
           (ip[0] == 100 && (ip[1] & 0xc0) == 64) ||
           (ip[0] == 169 && ip[1] == 254);
  return (ip[0] & 0xfe) == 0xfc || (ip[0] == 0xfe && (ip[1] & 0xc0) == 0x80);
}
