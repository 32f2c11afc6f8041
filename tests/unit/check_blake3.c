/* SPDX-License-Identifier: MIT */
/*
 * BLAKE3 and the gossip key derivation.
 *
 * The expected digests of the official test-vector inputs (byte i is
 * i % 251) were computed with b3sum 1.2.0 (Debian package b3sum, the
 * reference Rust implementation), independently of lib/blake3.c.
 */
#include <stdlib.h>
#include <string.h>

#include <check.h>

#include "internal.h"
#include "testutil.h"

static const struct {
  size_t len;
  const char *hex;
} DIGESTS[] = {
    {0, "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262"},
    {1, "2d3adedff11b61f14c886e35afa036736dcd87a74d27b5c1510225d0f592e213"},
    {1023, "10108970eeda3eb932baac1428c7a2163b0e924c9a9e25b35bba72b28f70bd11"},
    {1024, "42214739f095a406f3fc83deb889744ac00df831c10daa55189b5d121c855af7"},
    {1025, "d00278ae47eb27b34faecf67b4fe263f82d5412916c1ffd97c8cb7fb814b8444"},
    {2048, "e776b6028c7cd22a4d0ba182a8bf62205d2ef576467e838ed6f2529b85fba24a"},
    {2049, "5f4d72f40d7a5f82b15ca2b2e44b1de3c2ef86c426c95c1af0b6879522563030"},
    {3072, "b98cb0ff3623be03326b373de6b9095218513e64f1ee2edd2525c7ad1e5cffd2"},
    {3073, "7124b49501012f81cc7f11ca069ec9226cecb8a2c850cfe644e327d22d3e1cd3"},
    {4096, "015094013f57a5277b59d8475c0501042c0b642e531b0a1c8f58d2163229e969"},
    {4097, "9b4052b38f1c5fc8b1f9ff7ac7b27cd242487b3d890d15c96a1c25b8aa0fb995"},
    {5120, "9cadc15fed8b5d854562b26a9536d9707cadeda9b143978f319ab34230535833"},
    {5121, "628bd2cb2004694adaab7bbd778a25df25c47b9d4155a55f8fbd79f2fe154cff"},
    {6144, "3e2e5b74e048f3add6d21faab3f83aa44d3b2278afb83b80b3c35164ebeca205"},
    {6145, "f1323a8631446cc50536a9f705ee5cb619424d46887f3c376c695b70e0f0507f"},
    {7168, "61da957ec2499a95d6b8023e2b0e604ec7f6b50e80a9678b89d2628e99ada77a"},
    {7169, "a003fc7a51754a9b3c7fae0367ab3d782dccf28855a03d435f8cfe74605e7817"},
    {8192, "aae792484c8efe4f19e2ca7d371d8c467ffb10748d8a5a1ae579948f718a2a63"},
    {8193, "bab6c09cb8ce8cf459261398d2e7aef35700bf488116ceb94a36d0f5f1b7bc3b"},
    {16384, "f875d6646de28985646f34ee13be9a576fd515f76b5b0a26bb324735041ddde4"},
    {31744, "62b6960e1a44bcc1eb1a611a8d6235b6b4b78f32e7abc4fb4c6cdcce94895c47"},
    {102400,
     "bc3e3d41a1146b069abffad3c0d44860cf664390afce4d9661f7902e7943e085"},
};
#define NDIGESTS ((int)(sizeof(DIGESTS) / sizeof(DIGESTS[0])))

static uint8_t *pattern(size_t len) {
  uint8_t *buf = malloc(len + 1);
  size_t i;

  ck_assert_ptr_nonnull(buf);
  for (i = 0; i < len; i++)
    buf[i] = (uint8_t)(i % 251);
  return buf;
}

static void check_digest(const uint8_t out[32], const char *hex) {
  char *got = tu_hex_encode(out, 32);

  ck_assert_str_eq(got, hex);
  free(got);
}

START_TEST(test_known_digest) {
  uint8_t *in = pattern(DIGESTS[_i].len);
  uint8_t out[32];

  wgam_blake3(out, in, DIGESTS[_i].len);
  check_digest(out, DIGESTS[_i].hex);
  free(in);
}
END_TEST

/* The incremental interface must give the same digest however the input is
 * split: a split at every block and chunk boundary shape is exercised. */
START_TEST(test_incremental_splits) {
  static const size_t steps[] = {1, 7, 63, 64, 65, 1023, 1024, 1025, 4096};
  size_t len = DIGESTS[_i].len, s;
  uint8_t *in = pattern(len);

  for (s = 0; s < sizeof(steps) / sizeof(steps[0]); s++) {
    wgam_blake3_hasher h;
    uint8_t out[32];
    size_t off;

    wgam_blake3_init(&h);
    for (off = 0; off < len; off += steps[s]) {
      size_t n = len - off < steps[s] ? len - off : steps[s];

      wgam_blake3_update(&h, in + off, n);
    }
    /* Empty updates in between change nothing. */
    wgam_blake3_update(&h, in, 0);
    wgam_blake3_final(&h, out);
    check_digest(out, DIGESTS[_i].hex);
  }
  free(in);
}
END_TEST

START_TEST(test_abc) {
  uint8_t out[32];

  wgam_blake3(out, (const uint8_t *)"abc", 3);
  check_digest(
      out, "6437b3ac38465133ffb63b75273a8db548c558465d79db03fd359c6cd5bd9d85");
  wgam_blake3(out, NULL, 0);
  check_digest(
      out, "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262");
}
END_TEST

/* Finalising does not consume the hasher: more input can follow. */
START_TEST(test_final_is_idempotent) {
  wgam_blake3_hasher h;
  uint8_t a[32], b[32];

  wgam_blake3_init(&h);
  wgam_blake3_update(&h, (const uint8_t *)"ab", 2);
  wgam_blake3_final(&h, a);
  wgam_blake3_final(&h, b);
  ck_assert_mem_eq(a, b, 32);
  wgam_blake3_update(&h, (const uint8_t *)"c", 1);
  wgam_blake3_final(&h, a);
  check_digest(
      a, "6437b3ac38465133ffb63b75273a8db548c558465d79db03fd359c6cd5bd9d85");
}
END_TEST

START_TEST(test_kdf_vector) {
  cJSON *c = cJSON_GetArrayItem(tu_vectors_array("kdf_cases"), _i);
  uint8_t secret[256], input[300], key[32], direct[32];
  size_t secretlen, inputlen;

  secretlen =
      tu_hex_decode(secret, sizeof(secret), tu_json_str(c, "secret_utf8_hex"));
  inputlen =
      tu_hex_decode(input, sizeof(input), tu_json_str(c, "kdf_input_hex"));

  wgam_key_derive(key, secret, secretlen);
  check_digest(key, tu_json_str(c, "key_hex"));
  /* The KDF is BLAKE3 of the concatenation, checked the direct way too. */
  wgam_blake3(direct, input, inputlen);
  check_digest(direct, tu_json_str(c, "key_hex"));
  if (secretlen == 0) {
    wgam_key_derive(key, NULL, 0);
    check_digest(key, tu_json_str(c, "key_hex"));
  }
}
END_TEST

static Suite *blake3_suite(void) {
  Suite *s = suite_create("blake3");
  TCase *tc = tcase_create("digest");

  tcase_add_loop_test(tc, test_known_digest, 0, NDIGESTS);
  tcase_add_loop_test(tc, test_incremental_splits, 0, NDIGESTS);
  tcase_add_test(tc, test_abc);
  tcase_add_test(tc, test_final_is_idempotent);
  suite_add_tcase(s, tc);

  tc = tcase_create("kdf");
  tcase_add_loop_test(tc, test_kdf_vector, 0, tu_vectors_count("kdf_cases"));
  suite_add_tcase(s, tc);
  return s;
}

int main(void) {
  SRunner *sr = srunner_create(blake3_suite());
  int nfailed;

  srunner_run_all(sr, CK_NORMAL);
  nfailed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return nfailed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
