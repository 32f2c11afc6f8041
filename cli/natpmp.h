/* SPDX-License-Identifier: MIT */
/*
 * NAT Port Mapping Protocol (RFC 6886) messages, encoded and decoded as pure
 * functions (no sockets) so they are unit-tested and fuzzed on their own.
 * Written here rather than taken from libnatpmp so that PCP and NAT-PMP
 * share one socket, one retry schedule and one announcement listener, and
 * the parser is ours to fuzz.
 */
#ifndef WGAM_CLI_NATPMP_H
#define WGAM_CLI_NATPMP_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Same ports as PCP: requests to 5351, announcements to 224.0.0.1:5350. */
#define NATPMP_VERSION 0
#define NATPMP_OP_EXTERNAL 0
#define NATPMP_OP_MAP_UDP 1
#define NATPMP_OP_RESPONSE 128
#define NATPMP_EXTERNAL_REQUEST_LEN 2
#define NATPMP_MAP_REQUEST_LEN 12
#define NATPMP_EXTERNAL_RESPONSE_LEN 12
#define NATPMP_MAP_RESPONSE_LEN 16
/* Every response starts with version, opcode, result and epoch. */
#define NATPMP_HEADER_LEN 8

enum natpmp_result {
  NATPMP_SUCCESS = 0,
  NATPMP_UNSUPP_VERSION = 1,
  NATPMP_REFUSED = 2,
  NATPMP_NETWORK_FAILURE = 3,
  NATPMP_NO_RESOURCES = 4,
  NATPMP_UNSUPP_OPCODE = 5,
};

struct natpmp_response {
  uint8_t opcode; /* of the request answered (without the 128) */
  uint16_t result;
  uint32_t epoch;
  /* NATPMP_OP_EXTERNAL, success: the gateway's external address. */
  int has_external;
  uint8_t external_ip[4];
  /* NATPMP_OP_MAP_UDP, success: the mapping (ports in host order). */
  int has_map;
  uint16_t internal_port;
  uint16_t external_port;
  uint32_t lifetime;
};

/* Writes the external address request. Returns its length or -ENOBUFS. */
ssize_t natpmp_encode_external(uint8_t *dest, size_t destlen);

/*
 * Writes a UDP mapping request: @internal_port to the suggested
 * @external_port for @lifetime seconds (0 with @external_port 0 deletes
 * the mapping). Returns its length or -ENOBUFS.
 */
ssize_t natpmp_encode_map(uint8_t *dest, size_t destlen, uint16_t internal_port,
                          uint16_t external_port, uint32_t lifetime);

/*
 * Decodes a response. An error response may stop after the epoch.
 *
 * Returns 0, -EBADMSG (too short for its opcode, a request, an unknown
 * opcode), or -EPROTONOSUPPORT (not version 0: a PCP answer).
 */
int natpmp_decode(const uint8_t *pkt, size_t pktlen,
                  struct natpmp_response *resp);

/*
 * RFC 6886 section 3.6: whether the gateway's epoch (seconds since start of
 * epoch) shows that it lost its mappings, given the epoch and our clock
 * (seconds) at the previous response. Returns 1 if so.
 */
int natpmp_epoch_lost(uint32_t prev_epoch, uint64_t prev_client_s,
                      uint32_t epoch, uint64_t client_s);

/* A short name of a result code, e.g. "REFUSED". */
const char *natpmp_result_name(unsigned result);

#endif
