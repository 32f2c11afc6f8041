/* SPDX-License-Identifier: MIT */
/*
 * What the port-mapping worker reads from the network and from /proc: PCP
 * and NAT-PMP responses (from the gateway and from anyone on the LAN, on
 * 224.0.0.1:5350) and the routing table text. Every input goes through
 * every parser; what they accept must hold what they claim.
 */
#include <errno.h>
#include <string.h>

#include "fuzz_common.h"
#include "gateway.h"
#include "natpmp.h"
#include "pcp.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  struct natpmp_response nr;
  struct pcp_response pr;
  uint8_t v4[4], gw[16];
  char ifname[16];
  int rc;

  rc = pcp_decode(data, size, &pr);
  FZ_ASSERT(rc == 0 || rc == -EBADMSG || rc == -EPROTONOSUPPORT);
  if (rc == 0) {
    FZ_ASSERT(size >= PCP_HEADER_LEN && size <= PCP_MAX_LEN && size % 4 == 0);
    FZ_ASSERT(data[0] == PCP_VERSION && (data[1] & PCP_R_BIT));
    FZ_ASSERT(pr.opcode < PCP_R_BIT && pr.result == data[3]);
    FZ_ASSERT(!pr.has_map ||
              (pr.opcode == PCP_OP_MAP && size >= PCP_MAP_REQUEST_LEN));
    FZ_ASSERT(pr.has_map || pr.opcode != PCP_OP_MAP ||
              pr.result != PCP_SUCCESS);
    if (pr.has_map) {
      uint8_t req[PCP_MAP_REQUEST_LEN], client[16] = {0};

      /* The MAP data re-encoded is the bytes it was decoded from. */
      FZ_ASSERT(pcp_encode_map(req, sizeof(req), client, pr.lifetime,
                               &pr.map) == PCP_MAP_REQUEST_LEN);
      FZ_ASSERT(memcmp(req + PCP_HEADER_LEN, data + PCP_HEADER_LEN, 13) == 0);
      FZ_ASSERT(memcmp(req + PCP_HEADER_LEN + 16, data + PCP_HEADER_LEN + 16,
                       20) == 0);
      if (pcp_addr_to_v4(v4, pr.map.external_ip))
        FZ_ASSERT(memcmp(v4, data + PCP_MAP_REQUEST_LEN - 4, 4) == 0);
    }
    FZ_ASSERT(pcp_result_name(pr.result) != NULL);
  }

  rc = natpmp_decode(data, size, &nr);
  FZ_ASSERT(rc == 0 || rc == -EBADMSG || rc == -EPROTONOSUPPORT);
  if (rc == 0) {
    FZ_ASSERT(size >= NATPMP_HEADER_LEN && data[0] == NATPMP_VERSION);
    FZ_ASSERT(data[1] == NATPMP_OP_RESPONSE + nr.opcode);
    FZ_ASSERT(!nr.has_external || (nr.opcode == NATPMP_OP_EXTERNAL &&
                                   size >= NATPMP_EXTERNAL_RESPONSE_LEN));
    FZ_ASSERT(!nr.has_map || size >= NATPMP_MAP_RESPONSE_LEN);
    FZ_ASSERT(nr.result != NATPMP_SUCCESS || nr.has_map || nr.has_external);
    FZ_ASSERT(natpmp_result_name(nr.result) != NULL);
  }

  /* The same bytes as the routing tables' text. */
  rc = gateway_parse_ipv4((const char *)data, size, gw, ifname, sizeof(ifname));
  FZ_ASSERT(rc == 0 || rc == -ENOENT);
  if (rc == 0)
    FZ_ASSERT(strlen(ifname) < sizeof(ifname));
  rc = gateway_parse_ipv6((const char *)data, size, gw, ifname, sizeof(ifname));
  FZ_ASSERT(rc == 0 || rc == -ENOENT);
  if (rc == 0)
    FZ_ASSERT(strlen(ifname) < sizeof(ifname));
  return 0;
}
