/* SPDX-License-Identifier: MIT */
/*
 * NAT-PMP (RFC 6886) messages. Layouts (network byte order):
 *
 *   external address request (2):  version=0 | opcode=0
 *   map request (12):    version | opcode=1 (UDP) | reserved(2)
 *                        | internal port(2) | external port(2) | lifetime(4)
 *   response header (8): version | 128 + opcode | result(2) | epoch(4)
 *   external address response (12): header | external IPv4 (4)
 *   map response (16):   header | internal port(2) | external port(2)
 *                        | lifetime(4)
 */
#include <errno.h>
#include <string.h>

#include "be.h"
#include "natpmp.h"

ssize_t natpmp_encode_external(uint8_t *dest, size_t destlen) {
  if (destlen < NATPMP_EXTERNAL_REQUEST_LEN)
    return -ENOBUFS;
  dest[0] = NATPMP_VERSION;
  dest[1] = NATPMP_OP_EXTERNAL;
  return NATPMP_EXTERNAL_REQUEST_LEN;
}

ssize_t natpmp_encode_map(uint8_t *dest, size_t destlen, uint16_t internal_port,
                          uint16_t external_port, uint32_t lifetime) {
  if (destlen < NATPMP_MAP_REQUEST_LEN)
    return -ENOBUFS;
  dest[0] = NATPMP_VERSION;
  dest[1] = NATPMP_OP_MAP_UDP;
  dest[2] = 0;
  dest[3] = 0;
  be_put16(dest + 4, internal_port);
  be_put16(dest + 6, external_port);
  be_put32(dest + 8, lifetime);
  return NATPMP_MAP_REQUEST_LEN;
}

int natpmp_decode(const uint8_t *pkt, size_t pktlen,
                  struct natpmp_response *resp) {
  memset(resp, 0, sizeof(*resp));
  if (pktlen < 2)
    return -EBADMSG;
  if (pkt[0] != NATPMP_VERSION)
    return -EPROTONOSUPPORT;
  if (pktlen < NATPMP_HEADER_LEN || pkt[1] < NATPMP_OP_RESPONSE)
    return -EBADMSG;
  resp->opcode = (uint8_t)(pkt[1] - NATPMP_OP_RESPONSE);
  resp->result = be_get16(pkt + 2);
  resp->epoch = be_get32(pkt + 4);
  switch (resp->opcode) {
  case NATPMP_OP_EXTERNAL:
    if (pktlen < NATPMP_EXTERNAL_RESPONSE_LEN)
      return resp->result == NATPMP_SUCCESS ? -EBADMSG : 0;
    memcpy(resp->external_ip, pkt + 8, 4);
    resp->has_external = 1;
    return 0;
  case NATPMP_OP_MAP_UDP:
  case NATPMP_OP_MAP_UDP + 1: /* TCP: same layout */
    if (pktlen < NATPMP_MAP_RESPONSE_LEN)
      return resp->result == NATPMP_SUCCESS ? -EBADMSG : 0;
    resp->internal_port = be_get16(pkt + 8);
    resp->external_port = be_get16(pkt + 10);
    resp->lifetime = be_get32(pkt + 12);
    resp->has_map = 1;
    return 0;
  default:
    /* An "unsupported" answer to a request we never send, or a PCP
     * request's opcode echoed by a NAT-PMP-only server (result 1). */
    return resp->result != NATPMP_SUCCESS ? 0 : -EBADMSG;
  }
}

int natpmp_epoch_lost(uint32_t prev_epoch, uint64_t prev_client_s,
                      uint32_t epoch, uint64_t client_s) {
  uint64_t elapsed = client_s >= prev_client_s ? client_s - prev_client_s : 0;
  /* Our conservative estimate: 7/8 of our elapsed time. */
  uint64_t expected = (uint64_t)prev_epoch + elapsed * 7 / 8;

  return (uint64_t)epoch + 2 < expected;
}

const char *natpmp_result_name(unsigned result) {
  static const char *const names[] = {
      "SUCCESS",         "UNSUPP_VERSION", "REFUSED",
      "NETWORK_FAILURE", "NO_RESOURCES",   "UNSUPP_OPCODE",
  };

  return result < sizeof(names) / sizeof(names[0]) ? names[result] : "unknown";
}
