/* SPDX-License-Identifier: MIT */
/*
 * Shared by the fuzz targets: an engine with a fixed mesh around it, so that
 * fuzzed datagrams, state files and device reads reach the engine's logic
 * rather than stopping at "unknown key".
 */
#ifndef WGAM_FUZZ_COMMON_H
#define WGAM_FUZZ_COMMON_H

#include <stddef.h>
#include <stdint.h>

#include "wgautomesh.h"

/* libFuzzer's entry point; the replay driver (replay.c) calls it too. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The gossip secret of the fuzzed mesh (the vectors' "hunter2"). */
#define FZ_SECRET "hunter2"
#define FZ_GOSSIP_PORT 1666
/* Peers of the mesh, ourselves included (index 0). */
#define FZ_NPEERS 6

/* Public keys in base64: [0] is ours; [1..4] are the keys the vectors
 * announce, so vector plaintexts name configured peers. */
extern const char *const fz_keys_b64[FZ_NPEERS];

/* The gossip key derived from FZ_SECRET. */
extern uint8_t fz_key[WGAM_KEY_LEN];

/* Source addresses a fuzzed datagram may come from: the peers' mesh
 * addresses, LAN, public, IPv6, loopback, broadcast. */
#define FZ_NSRC 16
extern wgam_addr fz_src[FZ_NSRC];

/* Sets up the tables above (idempotent). */
void fz_init(void);

/*
 * Creates an engine with the fixed mesh: peers configured, LAN discovery
 * and persistence on, the device observed once (every peer with a recent
 * handshake when @connected is nonzero). Aborts on failure: it is set-up,
 * not fuzzed input.
 */
wgam_mesh *fz_mesh_new(wgam_tstamp ts, int connected);

/*
 * Pulls every output of @m (datagrams, device updates, the state file) and
 * checks what it can: datagram lengths, that every datagram opens with the
 * key and decodes, that the state file the engine writes parses. Aborts on
 * a violated invariant.
 */
void fz_drain(wgam_mesh *m, wgam_tstamp ts);

/* Unix time the fuzzed engines pretend it is. */
#define FZ_UNIX_NOW 1700000000ULL

/* Aborts with a message: an invariant the code under test broke. */
#define FZ_ASSERT(c)                                                           \
  do {                                                                         \
    if (!(c))                                                                  \
      fz_fail(__FILE__, __LINE__, #c);                                         \
  } while (0)
void fz_fail(const char *file, int line, const char *what)
    __attribute__((noreturn));

#endif
