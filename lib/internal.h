/* SPDX-License-Identifier: MIT */
/*
 * Internal helpers shared by the library's modules. Nothing here is
 * exported (hidden visibility and the version script).
 */
#ifndef WGAM_INTERNAL_H
#define WGAM_INTERNAL_H

#include "wgautomesh.h"

/* blake3.c: BLAKE3 with the default 32-byte output. */
#define WGAM_BLAKE3_OUT_LEN 32
void wgam_blake3(uint8_t out[WGAM_BLAKE3_OUT_LEN], const uint8_t *in,
                 size_t inlen);


/* persist.c: state file encoder. The file is the u64 entry count followed by
 * the entries; each returns the bytes written or WGAM_ERR_NOBUF, and with
 * dest NULL the bytes needed. */
wgam_ssize wgam_state_encode_header(uint8_t *dest, size_t destlen,
                                    uint64_t count);
wgam_ssize wgam_state_encode_entry(uint8_t *dest, size_t destlen,
                                   const uint8_t *pubkey, size_t pubkeylen,
                                   const wgam_endpoint *endpoints,
                                   size_t nendpoints);

/* wire.c: validates UTF-8 (strict: no overlongs, no surrogates, <= U+10FFFF).
 * Returns nonzero if valid. */
int wgam_utf8_valid(const uint8_t *s, size_t len);

#endif /* WGAM_INTERNAL_H */
