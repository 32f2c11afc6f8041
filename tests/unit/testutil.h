/* SPDX-License-Identifier: MIT */
/*
 * Helpers shared by the Check suites: hex, the v1 test vectors, and
 * deterministic randomness for the engine.
 */
#ifndef WGAM_TESTUTIL_H
#define WGAM_TESTUTIL_H

#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "wgautomesh.h"

/* Decodes @hex (even length, any case) into @out. Aborts with a message on
 * a bad digit, an odd length, or more than @outcap bytes. Returns the byte
 * count. */
size_t tu_hex_decode(uint8_t *out, size_t outcap, const char *hex);

/* Returns a malloc'd lowercase hex string of @in (free() it). Aborts if
 * out of memory. */
char *tu_hex_encode(const uint8_t *in, size_t len);

/* Loads and parses the v1 vectors: the file named by the WGAM_VECTORS
 * environment variable, else the path compiled in as WGAM_VECTORS. Aborts
 * with a clear message if the file is missing or not JSON. Each call parses
 * anew: the caller owns the tree (cJSON_Delete). */
cJSON *tu_load_vectors(void);

/* wgam_rand_cb for tests: @user_data points to a uint64_t counter (or to a
 * struct whose first member is one). Each call fills @dest from a
 * splitmix64 stream seeded by the counter and advances the counter, so runs
 * are reproducible and successive nonces differ. Returns 0, or -1 if
 * @user_data is NULL. */
int tu_rand_fixed(void *user_data, uint8_t *dest, size_t destlen);

/* The IPv4 address a.b.c.d with @port. */
wgam_addr tu_v4(int a, int b, int c, int d, uint16_t port);

/* --- vector helpers ---------------------------------------------------- */

/* Returns the array @name of the vectors (aborts if absent), and its size.
 * These use one tree loaded on first use and kept for the process. */
cJSON *tu_vectors_array(const char *name);
int tu_vectors_count(const char *name);

/* Returns the string member @name of @obj; aborts if absent. */
const char *tu_json_str(const cJSON *obj, const char *name);

/* Parses {"addr": "...", "last_seen": "decimal u64"}; aborts if malformed. */
void tu_json_endpoint(const cJSON *obj, wgam_endpoint *ep);

/* Fills @msg from a vector value {"variant": ..., "fields": {...}}. The
 * pubkey points into @value. Aborts on an unknown variant. */
void tu_json_msg(const cJSON *value, wgam_msg *msg);

/* Nonzero if two decoded messages are equal (pubkey bytes compared). */
int tu_msg_equal(const wgam_msg *a, const wgam_msg *b);

#endif /* WGAM_TESTUTIL_H */
