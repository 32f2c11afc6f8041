/* SPDX-License-Identifier: MIT */
/*
 * The state file codec against the original's vectors, and its behaviour on
 * damaged files: nothing is reported unless the whole file is sound.
 */
#include <stdlib.h>
#include <string.h>

#include <check.h>

#include "internal.h"
#include "testutil.h"

#define BUFSZ 8192
#define MAX_ENTRIES 128

/* What the parser reported, copied out of the callback. */
typedef struct entry {
  char key[256];
  size_t keylen;
  size_t nendpoints;
  wgam_endpoint endpoints[WGAM_STATE_MAX_ENDPOINTS];
} entry;

typedef struct collected {
  size_t n;
  entry e[MAX_ENTRIES];
  int stop_after; /* return 7 after this many calls, 0 = never */
} collected;

static int collect_cb(const uint8_t *pubkey, size_t pubkeylen,
                      const wgam_endpoint *endpoints, size_t nendpoints,
                      void *user_data) {
  collected *c = user_data;
  entry *e;

  ck_assert_uint_lt(c->n, MAX_ENTRIES);
  ck_assert_uint_lt(pubkeylen, sizeof(e->key));
  ck_assert_uint_le(nendpoints, WGAM_STATE_MAX_ENDPOINTS);
  e = &c->e[c->n++];
  memcpy(e->key, pubkey, pubkeylen);
  e->key[pubkeylen] = '\0';
  e->keylen = pubkeylen;
  e->nendpoints = nendpoints;
  memcpy(e->endpoints, endpoints, nendpoints * sizeof(*endpoints));
  if (c->stop_after > 0 && (int)c->n >= c->stop_after)
    return 7;
  return 0;
}

static uint8_t *exact_copy(const uint8_t *src, size_t len) {
  uint8_t *p = malloc(len > 0 ? len : 1);

  ck_assert_ptr_nonnull(p);
  if (len > 0)
    memcpy(p, src, len);
  return p;
}

/* Parses @len bytes (from an exactly-sized copy) into @c. */
static int parse(collected *c, const uint8_t *data, size_t len) {
  uint8_t *p = exact_copy(data, len);
  int rv;

  c->n = 0;
  rv = wgam_state_parse(p, len, collect_cb, c);
  free(p);
  return rv;
}

/* Checks that @c holds exactly the map @value ({key: [endpoint...]}), in
 * any order. */
static void assert_same_map(const collected *c, const cJSON *value) {
  const cJSON *kv;
  size_t count = 0;

  cJSON_ArrayForEach(kv, value) {
    size_t i, j, nep = (size_t)cJSON_GetArraySize(kv);
    const entry *e = NULL;

    for (i = 0; i < c->n; i++)
      if (strcmp(c->e[i].key, kv->string) == 0)
        e = &c->e[i];
    ck_assert_msg(e != NULL, "entry %s missing", kv->string);
    ck_assert_uint_eq(e->nendpoints, nep);
    for (j = 0; j < nep; j++) {
      wgam_endpoint want;

      tu_json_endpoint(cJSON_GetArrayItem(kv, (int)j), &want);
      ck_assert(wgam_addr_equal(&e->endpoints[j].addr, &want.addr));
      ck_assert_uint_eq(e->endpoints[j].time, want.time);
    }
    count++;
  }
  ck_assert_uint_eq(c->n, count);
}

/* Encodes the map @value with entries in the order of @order (an array of
 * keys), or reversed. Returns the length. */
static size_t encode_map(uint8_t *buf, size_t bufsz, const cJSON *value,
                         const cJSON *order, int reversed) {
  int n = cJSON_GetArraySize(order), k;
  wgam_ssize rv;
  size_t pos;

  ck_assert_int_eq(n, cJSON_GetArraySize(value));
  ck_assert_int_eq(wgam_state_encode_header(NULL, 0, (uint64_t)n), 8);
  ck_assert_int_eq(wgam_state_encode_header(buf, 7, (uint64_t)n),
                   WGAM_ERR_NOBUF);
  rv = wgam_state_encode_header(buf, bufsz, (uint64_t)n);
  ck_assert_int_eq(rv, 8);
  pos = 8;
  for (k = 0; k < n; k++) {
    const char *key =
        cJSON_GetArrayItem(order, reversed ? n - 1 - k : k)->valuestring;
    const cJSON *eps = cJSON_GetObjectItemCaseSensitive(value, key);
    wgam_endpoint endpoints[WGAM_STATE_MAX_ENDPOINTS];
    size_t nep = 0;
    const cJSON *ep;
    wgam_ssize need;

    cJSON_ArrayForEach(ep, eps) tu_json_endpoint(ep, &endpoints[nep++]);
    need = wgam_state_encode_entry(NULL, 0, (const uint8_t *)key, strlen(key),
                                   endpoints, nep);
    ck_assert_int_gt(need, 0);
    ck_assert_int_eq(wgam_state_encode_entry(buf + pos, (size_t)need - 1,
                                             (const uint8_t *)key, strlen(key),
                                             endpoints, nep),
                     WGAM_ERR_NOBUF);
    rv = wgam_state_encode_entry(buf + pos, bufsz - pos, (const uint8_t *)key,
                                 strlen(key), endpoints, nep);
    ck_assert_int_eq(rv, need);
    pos += (size_t)rv;
  }
  return pos;
}

START_TEST(test_persist_decode) {
  const cJSON *c = cJSON_GetArrayItem(tu_vectors_array("persist_cases"), _i);
  static collected col;
  uint8_t file[BUFSZ];
  size_t len = tu_hex_decode(file, sizeof(file), tu_json_str(c, "file_hex"));

  ck_assert_int_eq(parse(&col, file, len), 0);
  assert_same_map(&col, cJSON_GetObjectItemCaseSensitive(c, "value"));
}
END_TEST

START_TEST(test_persist_encode) {
  const cJSON *c = cJSON_GetArrayItem(tu_vectors_array("persist_cases"), _i);
  const cJSON *value = cJSON_GetObjectItemCaseSensitive(c, "value");
  const cJSON *order = cJSON_GetObjectItemCaseSensitive(c, "entry_order");
  const cJSON *exact =
      cJSON_GetObjectItemCaseSensitive(c, "byte_exact_for_writers");
  static collected col;
  uint8_t buf[BUFSZ], file[BUFSZ];
  size_t len, filelen;
  char *hex;

  filelen = tu_hex_decode(file, sizeof(file), tu_json_str(c, "file_hex"));
  /* In entry_order the bytes are those of the vector: required when the
   * vector says writers must be byte-exact, true for all of them. */
  len = encode_map(buf, sizeof(buf), value, order, 0);
  hex = tu_hex_encode(buf, len);
  ck_assert_str_eq(hex, tu_json_str(c, "file_hex"));
  free(hex);
  ck_assert(cJSON_IsBool(exact));
  ck_assert_uint_eq(len, filelen);

  /* Another order is another file with the same meaning. */
  len = encode_map(buf, sizeof(buf), value, order, 1);
  ck_assert_uint_eq(len, filelen);
  ck_assert_int_eq(parse(&col, buf, len), 0);
  assert_same_map(&col, value);
}
END_TEST

START_TEST(test_persist_decode_case) {
  const cJSON *c =
      cJSON_GetArrayItem(tu_vectors_array("persist_decode_cases"), _i);
  static collected col;
  uint8_t file[BUFSZ];
  size_t len = tu_hex_decode(file, sizeof(file), tu_json_str(c, "file_hex"));
  int rv = parse(&col, file, len);

  if (strcmp(tu_json_str(c, "expected"), "accept") == 0) {
    ck_assert_int_eq(rv, 0);
    assert_same_map(&col, cJSON_GetObjectItemCaseSensitive(c, "decoded_value"));
  } else {
    ck_assert_str_eq(tu_json_str(c, "expected"), "reject");
    ck_assert_int_eq(rv, WGAM_ERR_STATE_DECODE);
    ck_assert_uint_eq(col.n, 0);
  }
}
END_TEST

/* Every proper prefix of a vector file is rejected without a callback. */
START_TEST(test_persist_truncation) {
  const cJSON *c = cJSON_GetArrayItem(tu_vectors_array("persist_cases"), _i);
  static collected col;
  uint8_t file[BUFSZ];
  size_t len = tu_hex_decode(file, sizeof(file), tu_json_str(c, "file_hex"));
  size_t l;

  for (l = 0; l < len; l++) {
    ck_assert_int_eq(parse(&col, file, l), WGAM_ERR_STATE_DECODE);
    ck_assert_uint_eq(col.n, 0);
  }
  ck_assert_int_eq(wgam_state_parse(NULL, 0, collect_cb, &col),
                   WGAM_ERR_STATE_DECODE);
}
END_TEST

/* Builds a file of @nentries entries "k0", "k1"... each with @nep IPv4
 * endpoints. */
static size_t build_file(uint8_t *buf, size_t bufsz, uint64_t count,
                         size_t nentries, size_t nep) {
  wgam_endpoint eps[WGAM_STATE_MAX_ENDPOINTS];
  size_t pos, i;

  pos = (size_t)wgam_state_encode_header(buf, bufsz, count);
  memset(eps, 0, sizeof(eps));
  for (i = 0; i < WGAM_STATE_MAX_ENDPOINTS; i++) {
    eps[i].addr.family = WGAM_AF_INET;
    eps[i].addr.ip[0] = 203;
    eps[i].addr.ip[3] = (uint8_t)i;
    eps[i].addr.port = 51820;
    eps[i].time = 1000 + i;
  }
  for (i = 0; i < nentries; i++) {
    char key[8] = {'k', (char)('0' + i % 10), 0};
    wgam_ssize rv = wgam_state_encode_entry(buf + pos, bufsz - pos,
                                            (const uint8_t *)key, 2, eps, nep);

    ck_assert_int_gt(rv, 0);
    pos += (size_t)rv;
  }
  return pos;
}

START_TEST(test_persist_whole_file_first) {
  static collected col;
  uint8_t buf[BUFSZ];
  size_t len;

  /* Three entries announced, two present: the two are not reported. */
  len = build_file(buf, sizeof(buf), 3, 2, 1);
  ck_assert_int_eq(parse(&col, buf, len), WGAM_ERR_STATE_DECODE);
  ck_assert_uint_eq(col.n, 0);
  /* The last entry broken (bad SocketAddr tag): nothing reported. */
  len = build_file(buf, sizeof(buf), 2, 2, 1);
  ck_assert_int_eq(parse(&col, buf, len), 0);
  ck_assert_uint_eq(col.n, 2);
  buf[len - 18] = 2;
  ck_assert_int_eq(parse(&col, buf, len), WGAM_ERR_STATE_DECODE);
  ck_assert_uint_eq(col.n, 0);
  /* The last key not UTF-8. */
  len = build_file(buf, sizeof(buf), 2, 2, 0);
  buf[len - 9] = 0xff;
  ck_assert_int_eq(parse(&col, buf, len), WGAM_ERR_STATE_DECODE);
  ck_assert_uint_eq(col.n, 0);
}
END_TEST

START_TEST(test_persist_limits) {
  static collected col;
  static uint8_t buf[BUFSZ];
  wgam_endpoint eps[WGAM_STATE_MAX_ENDPOINTS + 1];
  size_t len;
  uint64_t i;

  len = build_file(buf, sizeof(buf), 1, 1, WGAM_STATE_MAX_ENDPOINTS);
  ck_assert_int_eq(parse(&col, buf, len), 0);
  ck_assert_uint_eq(col.e[0].nendpoints, WGAM_STATE_MAX_ENDPOINTS);
  ck_assert_uint_eq(col.e[0].endpoints[63].time, 1063);

  /* 65 endpoints: written by hand since the encoder refuses them. */
  len = build_file(buf, sizeof(buf), 1, 1, WGAM_STATE_MAX_ENDPOINTS);
  buf[8 + 8 + 2] = WGAM_STATE_MAX_ENDPOINTS + 1;
  {
    wgam_endpoint ep = col.e[0].endpoints[0];

    len += wgam_bincode_put_endpoint(buf + len, &ep);
  }
  ck_assert_int_eq(parse(&col, buf, len), WGAM_ERR_STATE_DECODE);
  ck_assert_uint_eq(col.n, 0);

  /* Counts no file of this size can hold, huge or just one too many. */
  len = build_file(buf, sizeof(buf), UINT64_MAX, 0, 0);
  ck_assert_int_eq(parse(&col, buf, len), WGAM_ERR_STATE_DECODE);
  len = build_file(buf, sizeof(buf), 1ULL << 60, 0, 0);
  ck_assert_int_eq(parse(&col, buf, len), WGAM_ERR_STATE_DECODE);
  for (i = 0; i < 5; i++)
    memset(buf + 8 + 16 * i, 0, 16); /* five empty entries */
  wgam_state_encode_header(buf, 8, 6);
  ck_assert_int_eq(parse(&col, buf, 8 + 16 * 5), WGAM_ERR_STATE_DECODE);
  wgam_state_encode_header(buf, 8, 5);
  ck_assert_int_eq(parse(&col, buf, 8 + 16 * 5), 0);
  ck_assert_uint_eq(col.n, 5);
  ck_assert_uint_eq(col.e[4].keylen, 0);

  /* A vector count beyond the remaining bytes. */
  len = build_file(buf, sizeof(buf), 1, 1, 0);
  memset(buf + len - 8, 0xff, 8);
  ck_assert_int_eq(parse(&col, buf, len), WGAM_ERR_STATE_DECODE);

  /* The encoder refuses what the parser would refuse. */
  memset(eps, 0, sizeof(eps));
  for (i = 0; i <= WGAM_STATE_MAX_ENDPOINTS; i++)
    eps[i].addr.family = WGAM_AF_INET6;
  ck_assert_int_eq(wgam_state_encode_entry(NULL, 0, (const uint8_t *)"k", 1,
                                           eps, WGAM_STATE_MAX_ENDPOINTS + 1),
                   WGAM_ERR_INVALID_ARGUMENT);
  ck_assert_int_eq(wgam_state_encode_entry(NULL, 0, (const uint8_t *)"k", 1,
                                           eps, WGAM_STATE_MAX_ENDPOINTS),
                   8 + 1 + 8 + 64 * 30);
  eps[3].addr.family = WGAM_AF_NONE;
  ck_assert_int_eq(
      wgam_state_encode_entry(NULL, 0, (const uint8_t *)"k", 1, eps, 4),
      WGAM_ERR_INVALID_ARGUMENT);
  ck_assert_int_eq(
      wgam_state_encode_entry(NULL, 0, (const uint8_t *)"\xc0\x80", 2, eps, 0),
      WGAM_ERR_INVALID_ARGUMENT);
}
END_TEST

START_TEST(test_persist_callback_stops) {
  static collected col;
  uint8_t buf[BUFSZ];
  size_t len = build_file(buf, sizeof(buf), 4, 4, 2);

  col.stop_after = 2;
  ck_assert_int_eq(parse(&col, buf, len), 7);
  ck_assert_uint_eq(col.n, 2);
  col.stop_after = 0;
  /* No callback: validation only. */
  ck_assert_int_eq(wgam_state_parse(buf, len, NULL, NULL), 0);
  ck_assert_int_eq(wgam_state_parse(buf, len - 1, NULL, NULL),
                   WGAM_ERR_STATE_DECODE);
}
END_TEST

START_TEST(test_persist_random) {
  static collected col;
  uint64_t counter = 5;
  uint8_t buf[512];
  int i;

  for (i = 0; i < 50000; i++) {
    uint8_t r[4];
    size_t len;
    int rv;

    tu_rand_fixed(&counter, r, sizeof(r));
    len = (size_t)(r[0] | r[1] << 8) % sizeof(buf);
    tu_rand_fixed(&counter, buf, len);
    /* Plausible small counts and lengths to get past the first checks. */
    if (len >= 8 && r[2] < 200) {
      memset(buf, 0, 8);
      buf[0] = r[3] % 4;
    }
    if (len >= 16 && r[2] < 150) {
      memset(buf + 8, 0, 8);
      buf[8] = r[3] % 8;
    }
    rv = parse(&col, buf, len);
    ck_assert(rv == 0 || rv == WGAM_ERR_STATE_DECODE);
    if (rv != 0)
      ck_assert_uint_eq(col.n, 0);
  }
}
END_TEST

static Suite *persist_suite(void) {
  Suite *s = suite_create("persist");
  int n = tu_vectors_count("persist_cases");
  TCase *tc = tcase_create("vectors");

  tcase_add_loop_test(tc, test_persist_decode, 0, n);
  tcase_add_loop_test(tc, test_persist_encode, 0, n);
  tcase_add_loop_test(tc, test_persist_decode_case, 0,
                      tu_vectors_count("persist_decode_cases"));
  suite_add_tcase(s, tc);

  tc = tcase_create("robustness");
  tcase_add_loop_test(tc, test_persist_truncation, 0, n);
  tcase_add_test(tc, test_persist_whole_file_first);
  tcase_add_test(tc, test_persist_limits);
  tcase_add_test(tc, test_persist_callback_stops);
  tcase_add_test(tc, test_persist_random);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) {
  SRunner *sr = srunner_create(persist_suite());
  int nfailed;

  srunner_run_all(sr, CK_NORMAL);
  nfailed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return nfailed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
