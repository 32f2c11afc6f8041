/* SPDX-License-Identifier: MIT */
/*
 * Port Control Protocol (RFC 6887) messages: the MAP and ANNOUNCE opcodes,
 * encoded and decoded as pure functions (no sockets) so they are unit-tested
 * and fuzzed on their own. IPv4 addresses travel as IPv4-mapped IPv6
 * addresses (::ffff:a.b.c.d), as the RFC says.
 */
#ifndef WGAM_CLI_PCP_H
#define WGAM_CLI_PCP_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Servers listen on 5351; they multicast ANNOUNCE to 224.0.0.1:5350. */
#define PCP_SERVER_PORT 5351
#define PCP_CLIENT_PORT 5350
#define PCP_VERSION 2
#define PCP_OP_ANNOUNCE 0
#define PCP_OP_MAP 1
/* The R bit of the opcode byte: set in responses. */
#define PCP_R_BIT 0x80
#define PCP_HEADER_LEN 24
#define PCP_MAP_LEN 36
#define PCP_MAP_REQUEST_LEN (PCP_HEADER_LEN + PCP_MAP_LEN)
/* No PCP message is longer (RFC 6887, section 7). */
#define PCP_MAX_LEN 1100
#define PCP_NONCE_LEN 12
#define PCP_PROTO_UDP 17

enum pcp_result {
  PCP_SUCCESS = 0,
  PCP_UNSUPP_VERSION = 1,
  PCP_NOT_AUTHORIZED = 2,
  PCP_MALFORMED_REQUEST = 3,
  PCP_UNSUPP_OPCODE = 4,
  PCP_UNSUPP_OPTION = 5,
  PCP_MALFORMED_OPTION = 6,
  PCP_NETWORK_FAILURE = 7,
  PCP_NO_RESOURCES = 8,
  PCP_UNSUPP_PROTOCOL = 9,
  PCP_USER_EX_QUOTA = 10,
  PCP_CANNOT_PROVIDE_EXTERNAL = 11,
  PCP_ADDRESS_MISMATCH = 12,
  PCP_EXCESSIVE_REMOTE_PEERS = 13,
};

/* The MAP opcode's fields, in a request and in its response. Ports in host
 * order; addresses as 16 bytes (IPv4-mapped for IPv4). */
struct pcp_map {
  uint8_t nonce[PCP_NONCE_LEN];
  uint8_t protocol;
  uint16_t internal_port;
  /* Suggested in a request, assigned in a response. */
  uint16_t external_port;
  uint8_t external_ip[16];
};

struct pcp_response {
  uint8_t opcode; /* without the R bit */
  uint8_t result;
  uint32_t lifetime;
  uint32_t epoch;
  /* Set for a MAP response: its fields. */
  int has_map;
  struct pcp_map map;
};

/*
 * Writes a MAP request for @map into @dest: @client_ip is our address as the
 * server sees it (the source of the request), @lifetime the lease asked for
 * in seconds (0 deletes the mapping of that nonce).
 *
 * Returns the length (PCP_MAP_REQUEST_LEN) or -ENOBUFS.
 */
ssize_t pcp_encode_map(uint8_t *dest, size_t destlen,
                       const uint8_t client_ip[16], uint32_t lifetime,
                       const struct pcp_map *map);

/*
 * Decodes a PCP response (version 2, R bit set). Options after a MAP
 * response are skipped (their lengths are checked).
 *
 * Returns 0, -EBADMSG (too short, too long, not a multiple of 4 bytes, a
 * request, truncated opcode data or option), or -EPROTONOSUPPORT (another
 * version: a NAT-PMP server answers a PCP request with version 0).
 */
int pcp_decode(const uint8_t *pkt, size_t pktlen, struct pcp_response *resp);

/* Stores IPv4 address @v4 as an IPv4-mapped address in @out. */
void pcp_addr_from_v4(uint8_t out[16], const uint8_t v4[4]);

/* Returns 1 and copies the IPv4 address of IPv4-mapped @in, 0 if @in is not
 * IPv4-mapped. */
int pcp_addr_to_v4(uint8_t v4[4], const uint8_t in[16]);

/*
 * RFC 6887 section 8.5: whether a response's epoch shows that the server
 * lost its state (restarted, or its external address changed), given the
 * epoch and our clock (seconds) at the previous response. Returns 1 if so.
 */
int pcp_epoch_lost(uint32_t prev_epoch, uint64_t prev_client_s, uint32_t epoch,
                   uint64_t client_s);

/* A short name of a result code, e.g. "NOT_AUTHORIZED". */
const char *pcp_result_name(unsigned result);

#endif
