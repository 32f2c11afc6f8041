/* SPDX-License-Identifier: MIT */
/*
 * Addresses (parse, format in Rust's Display syntax, validity as an
 * endpoint) and base64 keys.
 */
#include <stdlib.h>
#include <string.h>

#include <check.h>

#include "internal.h"
#include "testutil.h"

/* Inputs that parse, and how Rust's SocketAddr Display prints them back. */
static const struct {
  const char *in;
  int port_optional;
  int family;
  const char *out;
} GOOD[] = {
    {"198.51.100.7:51820", 0, WGAM_AF_INET, "198.51.100.7:51820"},
    {"0.0.0.0:0", 0, WGAM_AF_INET, "0.0.0.0:0"},
    {"255.255.255.255:65535", 0, WGAM_AF_INET, "255.255.255.255:65535"},
    {"1.2.3.4:0080", 0, WGAM_AF_INET, "1.2.3.4:80"},
    {"10.0.0.254:443", 0, WGAM_AF_INET, "10.0.0.254:443"},
    {"[2001:db8::1]:51820", 0, WGAM_AF_INET6, "[2001:db8::1]:51820"},
    {"[2001:0db8:0000:0000:0000:0000:0000:0001]:1", 0, WGAM_AF_INET6,
     "[2001:db8::1]:1"},
    {"[2001:DB8::ABCD]:80", 0, WGAM_AF_INET6, "[2001:db8::abcd]:80"},
    /* equal runs: the first is compressed */
    {"[2001:db8:0:0:1:0:0:1]:1", 0, WGAM_AF_INET6, "[2001:db8::1:0:0:1]:1"},
    /* the longest run wins over an earlier shorter one */
    {"[1:0:0:2:0:0:0:3]:9", 0, WGAM_AF_INET6, "[1:0:0:2::3]:9"},
    {"[2001:db8:0:1:0:0:0:1]:1", 0, WGAM_AF_INET6, "[2001:db8:0:1::1]:1"},
    /* a single zero group is not compressed */
    {"[2001:db8:0:1:1:1:1:1]:1", 0, WGAM_AF_INET6, "[2001:db8:0:1:1:1:1:1]:1"},
    {"[0:0:1:0:0:0:0:0]:9", 0, WGAM_AF_INET6, "[0:0:1::]:9"},
    {"[::]:1", 0, WGAM_AF_INET6, "[::]:1"},
    {"[::1]:1", 0, WGAM_AF_INET6, "[::1]:1"},
    {"[1::]:1", 0, WGAM_AF_INET6, "[1::]:1"},
    {"[1:2:3:4:5:6:7::]:1", 0, WGAM_AF_INET6, "[1:2:3:4:5:6:7:0]:1"},
    {"[::2:3:4:5:6:7:8]:1", 0, WGAM_AF_INET6, "[0:2:3:4:5:6:7:8]:1"},
    {"[1:2:3:4:5:6:7:8]:9", 0, WGAM_AF_INET6, "[1:2:3:4:5:6:7:8]:9"},
    {"[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:65535", 0, WGAM_AF_INET6,
     "[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:65535"},
    /* an IPv4 tail */
    {"[1:2:3:4:5:6:1.2.3.4]:9", 0, WGAM_AF_INET6, "[1:2:3:4:5:6:102:304]:9"},
    /* IPv4-mapped: printed in the mixed form, as Rust does */
    {"[::ffff:192.0.2.1]:51820", 0, WGAM_AF_INET6, "[::ffff:192.0.2.1]:51820"},
    {"[::ffff:c000:201]:51820", 0, WGAM_AF_INET6, "[::ffff:192.0.2.1]:51820"},
    {"[0:0:0:0:0:ffff:192.0.2.1]:7", 0, WGAM_AF_INET6, "[::ffff:192.0.2.1]:7"},
    /* IPv4-compatible (deprecated): Rust prints it in hex */
    {"[::192.0.2.1]:5", 0, WGAM_AF_INET6, "[::c000:201]:5"},
    /* scope ids are dropped */
    {"[fe80::1%3]:51820", 0, WGAM_AF_INET6, "[fe80::1]:51820"},
    {"[fe80::1%eth0]:51820", 0, WGAM_AF_INET6, "[fe80::1]:51820"},
    /* optional port */
    {"198.51.100.7", 1, WGAM_AF_INET, "198.51.100.7:0"},
    {"198.51.100.7:9", 1, WGAM_AF_INET, "198.51.100.7:9"},
    {"2001:db8::1", 1, WGAM_AF_INET6, "[2001:db8::1]:0"},
    {"::1:80", 1, WGAM_AF_INET6, "[::1:80]:0"},
    {"[2001:db8::1]", 1, WGAM_AF_INET6, "[2001:db8::1]:0"},
    {"[2001:db8::1]:7", 1, WGAM_AF_INET6, "[2001:db8::1]:7"},
    {"fe80::1%2", 1, WGAM_AF_INET6, "[fe80::1]:0"},
};
#define NGOOD ((int)(sizeof(GOOD) / sizeof(GOOD[0])))

static const struct {
  const char *in;
  int port_optional;
} BAD[] = {
    {"", 0},
    {"", 1},
    {"198.51.100.7", 0}, /* missing port */
    {"[2001:db8::1]", 0},
    {"2001:db8::1", 0},
    {"2001:db8::1:80", 0},
    {"1.2.3.4:", 0},
    {"1.2.3.4:", 1},
    {"1.2.3.4:65536", 0},
    {"1.2.3.4:99999999999999999999", 0},
    {"1.2.3.4:-1", 0},
    {"1.2.3.4:+1", 0},
    {"1.2.3.4:80x", 0},
    {"1.2.3.4:80 ", 0},
    {" 1.2.3.4:80", 0},
    {"256.1.1.1:1", 0},
    {"1.2.3:1", 0},
    {"1.2.3.4.5:1", 0},
    {"01.2.3.4:1", 0}, /* leading zero, octal-looking */
    {"1.2.3.004:1", 0},
    {"1..2.3:1", 0},
    {"1.2.3.4/24", 1},
    {"example.com:80", 0},
    {"[::1", 0},
    {"[::1", 1},
    {"::1]:1", 0},
    {"[::1]:", 0},
    {"[::1]1", 0},
    {"[::1]:1:2", 0},
    {"[[::1]]:1", 0},
    {"[]:1", 0},
    {"[:]:1", 0},
    {"[:1]:1", 0},
    {"[1:]:1", 0},
    {"[:::1]:1", 0},
    {"[1::2::3]:1", 0},
    {"[1:2:3:4:5:6:7:8:9]:1", 0},
    {"[1:2:3:4:5:6:7]:1", 0},
    {"[1:2:3:4:5:6:7::8]:1", 0}, /* "::" must stand for a group */
    {"[::1:2:3:4:5:6:7:8]:1", 0},
    {"[12345::1]:1", 0},
    {"[g::1]:1", 0},
    {"[1.2.3.4::]:1", 0},
    {"[::ffff:1.2.3]:1", 0},
    {"[::ffff:1.2.3.256]:1", 0},
    {"[1:2:3:4:5:6:7:1.2.3.4]:1", 0},
    {"[::1%]:1", 0},
    {"[::1%a b]:1", 0},
    {"[1.2.3.4]:1", 0},
};
#define NBAD ((int)(sizeof(BAD) / sizeof(BAD[0])))

START_TEST(test_parse_good) {
  wgam_addr a, b;
  char buf[WGAM_ADDR_STRLEN];
  wgam_ssize n;

  memset(&a, 0xa5, sizeof(a));
  ck_assert_msg(wgam_addr_parse(&a, GOOD[_i].in, GOOD[_i].port_optional) == 0,
                "%s does not parse", GOOD[_i].in);
  ck_assert_int_eq(a.family, GOOD[_i].family);
  ck_assert_int_eq(a.reserved, 0);
  if (a.family == WGAM_AF_INET) {
    static const uint8_t zero[12];

    ck_assert_mem_eq(a.ip + 4, zero, 12);
  }
  n = wgam_addr_format(buf, sizeof(buf), &a, 1);
  ck_assert_int_eq(n, (wgam_ssize)strlen(GOOD[_i].out));
  ck_assert_str_eq(buf, GOOD[_i].out);

  /* What we print parses back to the same address. */
  ck_assert_int_eq(wgam_addr_parse(&b, buf, 0), 0);
  ck_assert(wgam_addr_equal(&a, &b));
  ck_assert_mem_eq(&a, &b, sizeof(a));
}
END_TEST

START_TEST(test_parse_bad) {
  wgam_addr a;

  memset(&a, 0x5a, sizeof(a));
  ck_assert_msg(
      wgam_addr_parse(&a, BAD[_i].in, BAD[_i].port_optional) == WGAM_ERR_PARSE,
      "\"%s\" (port_optional %d) parsed", BAD[_i].in, BAD[_i].port_optional);
  /* A failed parse leaves the output alone. */
  ck_assert_int_eq(a.family, 0x5a);
}
END_TEST

START_TEST(test_parse_null) {
  wgam_addr a;

  ck_assert_int_eq(wgam_addr_parse(&a, NULL, 1), WGAM_ERR_PARSE);
  ck_assert_int_eq(wgam_addr_parse(NULL, "1.2.3.4:5", 1), WGAM_ERR_PARSE);
}
END_TEST

static wgam_addr addr_of(const char *s) {
  wgam_addr a;

  ck_assert_msg(wgam_addr_parse(&a, s, 1) == 0, "%s does not parse", s);
  return a;
}

START_TEST(test_format) {
  wgam_addr a = addr_of("[2001:db8::7]:51820"), none;
  char buf[WGAM_ADDR_STRLEN];
  const char *full = "[2001:db8::7]:51820";
  size_t len = strlen(full);

  ck_assert_int_eq(wgam_addr_format(buf, sizeof(buf), &a, 0), 11);
  ck_assert_str_eq(buf, "2001:db8::7");
  a = addr_of("198.51.100.7:1");
  ck_assert_int_eq(wgam_addr_format(buf, sizeof(buf), &a, 0), 12);
  ck_assert_str_eq(buf, "198.51.100.7");

  memset(&none, 0, sizeof(none));
  ck_assert_int_eq(wgam_addr_format(buf, sizeof(buf), &none, 1), 1);
  ck_assert_str_eq(buf, "-");
  none.family = 99;
  ck_assert_int_eq(wgam_addr_format(buf, sizeof(buf), &none, 1), 1);
  ck_assert_str_eq(buf, "-");

  /* Exactly enough room, one byte short, none at all. */
  a = addr_of(full);
  ck_assert_int_eq(wgam_addr_format(buf, len + 1, &a, 1), (wgam_ssize)len);
  ck_assert_str_eq(buf, full);
  memset(buf, 'x', sizeof(buf));
  ck_assert_int_eq(wgam_addr_format(buf, len, &a, 1), WGAM_ERR_NOBUF);
  ck_assert_int_eq(buf[0], '\0');
  ck_assert_int_eq(buf[len], 'x');
  ck_assert_int_eq(wgam_addr_format(buf, 0, &a, 1), WGAM_ERR_NOBUF);
  ck_assert_int_eq(wgam_addr_format(NULL, 0, &a, 1), WGAM_ERR_NOBUF);
}
END_TEST

/* The longest text fits WGAM_ADDR_STRLEN. */
START_TEST(test_format_longest) {
  wgam_addr a;
  char buf[WGAM_ADDR_STRLEN];

  memset(&a, 0, sizeof(a));
  a.family = WGAM_AF_INET6;
  a.port = 65535;
  memset(a.ip, 0xff, 16);
  ck_assert_int_eq(wgam_addr_format(buf, sizeof(buf), &a, 1), 47);
  a.family = WGAM_AF_INET6;
  memcpy(a.ip, "\0\0\0\0\0\0\0\0\0\0\xff\xff\xff\xff\xff\xff", 16);
  ck_assert_int_eq(wgam_addr_format(buf, sizeof(buf), &a, 1), 30);
  ck_assert_str_eq(buf, "[::ffff:255.255.255.255]:65535");
}
END_TEST

/* Every 16-bit pattern of zero/non-zero groups formats to text that parses
 * back to the same address, and never contains ":::". */
START_TEST(test_format_all_zero_patterns) {
  unsigned mask;

  for (mask = 0; mask < 256; mask++) {
    wgam_addr a, b;
    char buf[WGAM_ADDR_STRLEN];
    int i;

    memset(&a, 0, sizeof(a));
    a.family = WGAM_AF_INET6;
    a.port = 1;
    for (i = 0; i < 8; i++)
      if (mask & (1u << i))
        a.ip[2 * i + 1] = (uint8_t)(i + 1);
    ck_assert_int_gt(wgam_addr_format(buf, sizeof(buf), &a, 1), 0);
    ck_assert_ptr_null(strstr(buf, ":::"));
    ck_assert_int_eq(wgam_addr_parse(&b, buf, 0), 0);
    ck_assert_msg(wgam_addr_equal(&a, &b), "%s", buf);
  }
}
END_TEST

START_TEST(test_equal) {
  wgam_addr a = addr_of("198.51.100.7:51820");
  wgam_addr b = addr_of("198.51.100.7:51821");
  wgam_addr c = addr_of("[::ffff:198.51.100.7]:51820");
  wgam_addr n1, n2;

  ck_assert(wgam_addr_equal(&a, &a));
  ck_assert(!wgam_addr_equal(&a, &b));
  /* Different families are different endpoints, as in Rust. */
  ck_assert(!wgam_addr_equal(&a, &c));
  b = addr_of("198.51.100.8:51820");
  ck_assert(!wgam_addr_equal(&a, &b));
  /* Garbage past an IPv4 address does not matter. */
  b = a;
  b.ip[10] = 7;
  ck_assert(wgam_addr_equal(&a, &b));
  memset(&n1, 0, sizeof(n1));
  memset(&n2, 0xff, sizeof(n2));
  n2.family = WGAM_AF_NONE;
  ck_assert(wgam_addr_equal(&n1, &n2));
  ck_assert(!wgam_addr_equal(&n1, &a));
}
END_TEST

static const struct {
  const char *addr;
  int valid;
} ENDPOINTS[] = {
    {"198.51.100.7:51820", 1},
    {"203.0.113.9:1", 1},
    {"10.0.0.1:51820", 1},
    {"192.168.1.255:51820", 1}, /* may be a host on a wider subnet */
    {"198.51.100.7:0", 0},
    {"0.0.0.0:51820", 0},
    {"0.1.2.3:51820", 0},
    {"127.0.0.1:51820", 0},
    {"127.255.0.1:51820", 0},
    {"224.0.0.1:51820", 0},
    {"239.255.255.250:1900", 0},
    {"255.255.255.255:51820", 0},
    {"[2001:db8::1]:51820", 1},
    {"[fe80::1]:51820", 1},
    {"[2001:db8::1]:0", 0},
    {"[::]:51820", 0},
    {"[::1]:51820", 0},
    {"[ff02::1]:51820", 0},
    {"[ff05::1]:51820", 0},
    {"[::ffff:198.51.100.7]:51820", 1},
    {"[::ffff:127.0.0.1]:51820", 0},
    {"[::ffff:0.0.0.0]:51820", 0},
    {"[::ffff:224.0.0.1]:51820", 0},
    {"[::ffff:255.255.255.255]:51820", 0},
};
#define NENDPOINTS ((int)(sizeof(ENDPOINTS) / sizeof(ENDPOINTS[0])))

START_TEST(test_valid_endpoint) {
  wgam_addr a = addr_of(ENDPOINTS[_i].addr);

  ck_assert_msg(wgam_addr_is_valid_endpoint(&a) == ENDPOINTS[_i].valid,
                "%s: expected %d", ENDPOINTS[_i].addr, ENDPOINTS[_i].valid);
}
END_TEST

START_TEST(test_valid_endpoint_none) {
  wgam_addr a;

  memset(&a, 0, sizeof(a));
  a.port = 51820;
  a.ip[0] = 198;
  ck_assert(!wgam_addr_is_valid_endpoint(&a));
  a.family = 5;
  ck_assert(!wgam_addr_is_valid_endpoint(&a));
  ck_assert(!wgam_addr_is_valid_endpoint(NULL));
}
END_TEST

static const struct {
  const char *hex;
  const char *b64;
} KEYS[] = {
    {"944171f9a035a7320c3ce85103016f99327518be9e9cbba9ed3b7acb43c37759",
     "lEFx+aA1pzIMPOhRAwFvmTJ1GL6enLup7Tt6y0PDd1k="},
    {"000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f",
     "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="},
    {"ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
     "//////////////////////////////////////////8="},
    {"fbfbfbfbfbfbfbfbfbfbfbfbfbfbfbfbfbfbfbfbfbfbfbfbfbfbfbfbfbfbfbfb",
     "+/v7+/v7+/v7+/v7+/v7+/v7+/v7+/v7+/v7+/v7+/s="},
    {"0000000000000000000000000000000000000000000000000000000000000000",
     "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="},
};
#define NKEYS ((int)(sizeof(KEYS) / sizeof(KEYS[0])))

START_TEST(test_key_known) {
  uint8_t want[32], key[32];
  char b64[WGAM_KEY_B64_LEN + 1];

  tu_hex_decode(want, sizeof(want), KEYS[_i].hex);
  ck_assert_int_eq(wgam_key_from_base64(key, KEYS[_i].b64, 44), 0);
  ck_assert_mem_eq(key, want, 32);
  memset(b64, 'x', sizeof(b64));
  wgam_key_to_base64(b64, want);
  ck_assert_str_eq(b64, KEYS[_i].b64);
}
END_TEST

static const char *const BAD_KEYS[] = {
    "",
    "lEFx+aA1pzIMPOhRAwFvmTJ1GL6enLup7Tt6y0PDd1k",    /* no padding, 43 */
    "lEFx+aA1pzIMPOhRAwFvmTJ1GL6enLup7Tt6y0PDd1k==",  /* 45 */
    "lEFx+aA1pzIMPOhRAwFvmTJ1GL6enLup7Tt6y0PDd1kA",   /* 44, no '=' */
    "lEFx+aA1pzIMPOhRAwFvmTJ1GL6enLup7Tt6y0PDd1=k",   /* '=' inside */
    "lEFx-aA1pzIMPOhRAwFvmTJ1GL6enLup7Tt6y0PDd1k=",   /* url-safe '-' */
    "lEFx+aA1pzIMPOhRAwFvmTJ1GL6enLup7Tt6y0PD_1k=",   /* url-safe '_' */
    "lEFx+aA1pzIMPOhRAwFvmTJ1GL6enLup7Tt6y0PDd1!=",   /* bad char */
    "lEFx aA1pzIMPOhRAwFvmTJ1GL6enLup7Tt6y0PDd1k=",   /* space */
    "lEFx+aA1pzIMPOhRAwFvmTJ1GL6enLup7Tt6y0PDd1l=",   /* non-canonical */
    "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAB=",   /* non-canonical */
    "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAD=",   /* non-canonical */
    "//////////////////////////////////////////9=",   /* non-canonical */
    "lEFx+aA1pzIMPOhRAwFvmTJ1GL6enLup7Tt6y0PDd1k=\n", /* 45 */
};
#define NBAD_KEYS ((int)(sizeof(BAD_KEYS) / sizeof(BAD_KEYS[0])))

START_TEST(test_key_bad) {
  uint8_t key[32];

  memset(key, 0x77, sizeof(key));
  ck_assert_msg(wgam_key_from_base64(key, BAD_KEYS[_i], strlen(BAD_KEYS[_i])) ==
                    WGAM_ERR_PARSE,
                "accepted %s", BAD_KEYS[_i]);
  ck_assert_int_eq(key[0], 0x77);
}
END_TEST

START_TEST(test_key_length_argument) {
  uint8_t key[32];
  const char *good = "lEFx+aA1pzIMPOhRAwFvmTJ1GL6enLup7Tt6y0PDd1k=";
  char embedded[45];

  /* The length is the caller's: a shorter length is a shorter string. */
  ck_assert_int_eq(wgam_key_from_base64(key, good, 43), WGAM_ERR_PARSE);
  ck_assert_int_eq(wgam_key_from_base64(key, NULL, 44), WGAM_ERR_PARSE);
  memcpy(embedded, good, 45);
  embedded[10] = '\0';
  ck_assert_int_eq(wgam_key_from_base64(key, embedded, 44), WGAM_ERR_PARSE);
}
END_TEST

/* Random keys survive a round trip, and every accepted string is the one
 * we would print (canonical). */
START_TEST(test_key_roundtrip_random) {
  uint64_t counter = 42;
  int i;

  for (i = 0; i < 2000; i++) {
    uint8_t key[32], back[32];
    char b64[WGAM_KEY_B64_LEN + 1], again[WGAM_KEY_B64_LEN + 1];
    int j;

    ck_assert_int_eq(tu_rand_fixed(&counter, key, sizeof(key)), 0);
    wgam_key_to_base64(b64, key);
    ck_assert_int_eq(strlen(b64), 44);
    ck_assert_int_eq(wgam_key_from_base64(back, b64, 44), 0);
    ck_assert_mem_eq(key, back, 32);
    /* Try every character at the last data position. */
    for (j = 0; j < 64; j++) {
      static const char alphabet[] =
          "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

      b64[42] = alphabet[j];
      if (wgam_key_from_base64(back, b64, 44) == 0) {
        wgam_key_to_base64(again, back);
        ck_assert_str_eq(again, b64);
      } else {
        ck_assert_int_ne(j % 4, 0);
      }
    }
  }
}
END_TEST

static Suite *addr_suite(void) {
  Suite *s = suite_create("addr");
  TCase *tc = tcase_create("parse");

  tcase_add_loop_test(tc, test_parse_good, 0, NGOOD);
  tcase_add_loop_test(tc, test_parse_bad, 0, NBAD);
  tcase_add_test(tc, test_parse_null);
  suite_add_tcase(s, tc);

  tc = tcase_create("format");
  tcase_add_test(tc, test_format);
  tcase_add_test(tc, test_format_longest);
  tcase_add_test(tc, test_format_all_zero_patterns);
  tcase_add_test(tc, test_equal);
  suite_add_tcase(s, tc);

  tc = tcase_create("endpoint");
  tcase_add_loop_test(tc, test_valid_endpoint, 0, NENDPOINTS);
  tcase_add_test(tc, test_valid_endpoint_none);
  suite_add_tcase(s, tc);

  tc = tcase_create("key");
  tcase_add_loop_test(tc, test_key_known, 0, NKEYS);
  tcase_add_loop_test(tc, test_key_bad, 0, NBAD_KEYS);
  tcase_add_test(tc, test_key_length_argument);
  tcase_add_test(tc, test_key_roundtrip_random);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) {
  SRunner *sr = srunner_create(addr_suite());
  int nfailed;

  srunner_run_all(sr, CK_NORMAL);
  nfailed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return nfailed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
