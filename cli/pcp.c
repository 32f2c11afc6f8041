/* SPDX-License-Identifier: MIT */
/*
 * PCP (RFC 6887) MAP and ANNOUNCE messages. Layouts (network byte order):
 *
 *   request header (24):  version | R=0,opcode | reserved(2) | lifetime(4)
 *                         | client IP (16)
 *   response header (24): version | R=1,opcode | reserved | result
 *                         | lifetime(4) | epoch(4) | reserved(12)
 *   MAP data (36):        nonce(12) | protocol | reserved(3)
 *                         | internal port(2) | external port(2)
 *                         | external IP (16)
 *   option (4 + n):       code | reserved | length(2) | data, padded to 4
 */
#include <errno.h>
#include <string.h>

#include "be.h"
#include "pcp.h"

static const uint8_t v4mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

ssize_t pcp_encode_map(uint8_t *dest, size_t destlen,
                       const uint8_t client_ip[16], uint32_t lifetime,
                       const struct pcp_map *map) {
  uint8_t *d = dest + PCP_HEADER_LEN;

  if (destlen < PCP_MAP_REQUEST_LEN)
    return -ENOBUFS;
  memset(dest, 0, PCP_MAP_REQUEST_LEN);
  dest[0] = PCP_VERSION;
  dest[1] = PCP_OP_MAP;
  be_put32(dest + 4, lifetime);
  memcpy(dest + 8, client_ip, 16);
  memcpy(d, map->nonce, PCP_NONCE_LEN);
  d[12] = map->protocol;
  be_put16(d + 16, map->internal_port);
  be_put16(d + 18, map->external_port);
  memcpy(d + 20, map->external_ip, 16);
  return PCP_MAP_REQUEST_LEN;
}

/* Checks that @len bytes at @p are whole options. */
static int check_options(const uint8_t *p, size_t len) {
  while (len) {
    size_t olen;

    if (len < 4)
      return -EBADMSG;
    olen = be_get16(p + 2);
    /* The data is padded to a multiple of 4 bytes. */
    olen = (olen + 3u) & ~(size_t)3u;
    if (olen > len - 4)
      return -EBADMSG;
    p += 4 + olen;
    len -= 4 + olen;
  }
  return 0;
}

int pcp_decode(const uint8_t *pkt, size_t pktlen, struct pcp_response *resp) {
  size_t off = PCP_HEADER_LEN;

  memset(resp, 0, sizeof(*resp));
  if (pktlen < 2)
    return -EBADMSG;
  if (pkt[0] != PCP_VERSION)
    return -EPROTONOSUPPORT;
  if (pktlen < PCP_HEADER_LEN || pktlen > PCP_MAX_LEN || pktlen % 4 != 0 ||
      !(pkt[1] & PCP_R_BIT))
    return -EBADMSG;
  resp->opcode = pkt[1] & (uint8_t)~PCP_R_BIT;
  resp->result = pkt[3];
  resp->lifetime = be_get32(pkt + 4);
  resp->epoch = be_get32(pkt + 8);
  if (resp->opcode == PCP_OP_MAP) {
    const uint8_t *d = pkt + PCP_HEADER_LEN;

    /* An error response may echo the request's data or carry none. */
    if (pktlen < PCP_MAP_REQUEST_LEN)
      return resp->result == PCP_SUCCESS ? -EBADMSG : 0;
    memcpy(resp->map.nonce, d, PCP_NONCE_LEN);
    resp->map.protocol = d[12];
    resp->map.internal_port = be_get16(d + 16);
    resp->map.external_port = be_get16(d + 18);
    memcpy(resp->map.external_ip, d + 20, 16);
    resp->has_map = 1;
    off += PCP_MAP_LEN;
  } else if (resp->opcode != PCP_OP_ANNOUNCE) {
    /* Data of an opcode we never send: nothing to check in it. */
    return 0;
  }
  return check_options(pkt + off, pktlen - off);
}

void pcp_addr_from_v4(uint8_t out[16], const uint8_t v4[4]) {
  memcpy(out, v4mapped, sizeof(v4mapped));
  memcpy(out + 12, v4, 4);
}

int pcp_addr_to_v4(uint8_t v4[4], const uint8_t in[16]) {
  if (memcmp(in, v4mapped, sizeof(v4mapped)) != 0)
    return 0;
  memcpy(v4, in + 12, 4);
  return 1;
}

int pcp_epoch_lost(uint32_t prev_epoch, uint64_t prev_client_s, uint32_t epoch,
                   uint64_t client_s) {
  uint64_t cdelta, sdelta;

  /* Time does not go backwards (one second of rounding allowed). */
  if ((uint64_t)epoch + 1 < prev_epoch)
    return 1;
  if (epoch < prev_epoch)
    return 0;
  cdelta = client_s >= prev_client_s ? client_s - prev_client_s : 0;
  sdelta = (uint64_t)epoch - prev_epoch;
  return cdelta + 2 < sdelta - sdelta / 16 || sdelta + 2 < cdelta - cdelta / 16;
}

const char *pcp_result_name(unsigned result) {
  static const char *const names[] = {
      "SUCCESS",           "UNSUPP_VERSION",         "NOT_AUTHORIZED",
      "MALFORMED_REQUEST", "UNSUPP_OPCODE",          "UNSUPP_OPTION",
      "MALFORMED_OPTION",  "NETWORK_FAILURE",        "NO_RESOURCES",
      "UNSUPP_PROTOCOL",   "USER_EX_QUOTA",          "CANNOT_PROVIDE_EXTERNAL",
      "ADDRESS_MISMATCH",  "EXCESSIVE_REMOTE_PEERS",
  };

  return result < sizeof(names) / sizeof(names[0]) ? names[result] : "unknown";
}
