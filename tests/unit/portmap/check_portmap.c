/* SPDX-License-Identifier: MIT */
/*
 * PCP (RFC 6887) and NAT-PMP (RFC 6886) messages byte for byte as the RFCs
 * lay them out, the decoders' refusals, the epoch rules, and the default
 * gateway parsers on /proc/net/route and /proc/net/ipv6_route text.
 */
#include <check.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "gateway.h"
#include "natpmp.h"
#include "pcp.h"

/* ---- PCP ---------------------------------------------------------------- */

static const uint8_t nonce[12] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12};

/* RFC 6887 figures 2 and 9: MAP request for UDP 51820, suggested external
 * 40000 on any IPv4 address, from 192.168.1.2, lifetime 300. */
static const uint8_t pcp_map_req[60] = {
    2,   1,   0, 0, 0,    0,    0x01, 0x2c, /* hdr */
    0,   0,   0, 0, 0,    0,    0,    0,    0, 0,  0xff, 0xff,
    192, 168, 1, 2,                                          /* client */
    1,   2,   3, 4, 5,    6,    7,    8,    9, 10, 11,   12, /* nonce */
    17,  0,   0, 0, 0xca, 0x6c, 0x9c, 0x40,                  /* ports */
    0,   0,   0, 0, 0,    0,    0,    0,    0, 0,  0xff, 0xff,
    0,   0,   0, 0, /* ext */
};

/* Figures 3 and 10: its success response, external 198.51.100.11:40001,
 * lifetime 120, epoch 7298, then a THIRD_PARTY-like option of 4 bytes. */
static const uint8_t pcp_map_resp[64] = {
    2,   0x81, 0,   0,  0,    0,    0,    120,  0, 0,  0x1c, 0x82,
    0,   0,    0,   0,  0,    0,    0,    0,    0, 0,  0,    0,  /* rsvd */
    1,   2,    3,   4,  5,    6,    7,    8,    9, 10, 11,   12, /* nonce */
    17,  0,    0,   0,  0xca, 0x6c, 0x9c, 0x41,                  /* ports */
    0,   0,    0,   0,  0,    0,    0,    0,    0, 0,  0xff, 0xff,
    198, 51,   100, 11, /* ext */
    1,   0,    0,   0,  /* opt */
};

START_TEST(pcp_encode_map_layout) {
  uint8_t client[16], buf[64];
  static const uint8_t any[4], me[4] = {192, 168, 1, 2};
  struct pcp_map m;

  memset(&m, 0, sizeof(m));
  memcpy(m.nonce, nonce, sizeof(nonce));
  m.protocol = PCP_PROTO_UDP;
  m.internal_port = 51820;
  m.external_port = 40000;
  pcp_addr_from_v4(m.external_ip, any);
  pcp_addr_from_v4(client, me);
  ck_assert_int_eq(pcp_encode_map(buf, sizeof(buf), client, 300, &m), 60);
  ck_assert_mem_eq(buf, pcp_map_req, 60);
  ck_assert_int_eq(pcp_encode_map(buf, 59, client, 300, &m), -ENOBUFS);
}
END_TEST

START_TEST(pcp_decode_map_response) {
  struct pcp_response r;
  uint8_t v4[4];

  ck_assert_int_eq(pcp_decode(pcp_map_resp, sizeof(pcp_map_resp), &r), 0);
  ck_assert_int_eq(r.opcode, PCP_OP_MAP);
  ck_assert_int_eq(r.result, PCP_SUCCESS);
  ck_assert_uint_eq(r.lifetime, 120);
  ck_assert_uint_eq(r.epoch, 7298);
  ck_assert(r.has_map);
  ck_assert_mem_eq(r.map.nonce, nonce, 12);
  ck_assert_int_eq(r.map.protocol, 17);
  ck_assert_uint_eq(r.map.internal_port, 51820);
  ck_assert_uint_eq(r.map.external_port, 40001);
  ck_assert(pcp_addr_to_v4(v4, r.map.external_ip));
  ck_assert_mem_eq(v4, ((uint8_t[]){198, 51, 100, 11}), 4);
  /* Without the option too. */
  ck_assert_int_eq(pcp_decode(pcp_map_resp, 60, &r), 0);
}
END_TEST

START_TEST(pcp_decode_error_and_announce) {
  /* An error response with no opcode data (NOT_AUTHORIZED). */
  static const uint8_t err[24] = {2, 0x81, 0, 2, 0, 0, 0, 30, 0, 0, 0, 9};
  /* ANNOUNCE (opcode 0) as a server multicasts it after a restart. */
  static const uint8_t ann[24] = {2, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 3};
  struct pcp_response r;

  ck_assert_int_eq(pcp_decode(err, sizeof(err), &r), 0);
  ck_assert_int_eq(r.result, PCP_NOT_AUTHORIZED);
  ck_assert(!r.has_map);
  ck_assert_str_eq(pcp_result_name(r.result), "NOT_AUTHORIZED");
  ck_assert_int_eq(pcp_decode(ann, sizeof(ann), &r), 0);
  ck_assert_int_eq(r.opcode, PCP_OP_ANNOUNCE);
  ck_assert_uint_eq(r.epoch, 3);
  ck_assert_str_eq(pcp_result_name(200), "unknown");
}
END_TEST

/* Responses the decoder must refuse, each a mutation of pcp_map_resp. */
static const struct {
  const char *what;
  size_t len;
  int at, value; /* byte @at set to @value, unless @at < 0 */
  int want;
} pcp_bad[] = {
    {"empty", 0, -1, 0, -EBADMSG},
    {"one byte", 1, -1, 0, -EBADMSG},
    {"NAT-PMP version", 64, 0, 0, -EPROTONOSUPPORT},
    {"version 1", 64, 0, 1, -EPROTONOSUPPORT},
    {"header cut", 20, -1, 0, -EBADMSG},
    {"not a multiple of 4", 62, -1, 0, -EBADMSG},
    {"a request (R bit clear)", 64, 1, 1, -EBADMSG},
    {"success without MAP data", 24, -1, 0, -EBADMSG},
    {"option longer than the message", 64, 63, 8, -EBADMSG},
    {"option cut", 60 + 4, 62, 1, -EBADMSG},
};

START_TEST(pcp_decode_refuses) {
  uint8_t buf[PCP_MAX_LEN + 4];
  struct pcp_response r;

  memset(buf, 0, sizeof(buf));
  memcpy(buf, pcp_map_resp, sizeof(pcp_map_resp));
  if (pcp_bad[_i].at >= 0)
    buf[pcp_bad[_i].at] = (uint8_t)pcp_bad[_i].value;
  ck_assert_msg(pcp_decode(buf, pcp_bad[_i].len, &r) == pcp_bad[_i].want, "%s",
                pcp_bad[_i].what);
}
END_TEST

START_TEST(pcp_decode_length_bounds) {
  uint8_t buf[PCP_MAX_LEN + 4];
  struct pcp_response r;

  /* The longest message: MAP data then one option filling the rest. */
  memset(buf, 0, sizeof(buf));
  memcpy(buf, pcp_map_resp, 60);
  buf[62] = (uint8_t)((PCP_MAX_LEN - 64) >> 8);
  buf[63] = (uint8_t)(PCP_MAX_LEN - 64);
  ck_assert_int_eq(pcp_decode(buf, PCP_MAX_LEN, &r), 0);
  ck_assert_int_eq(pcp_decode(buf, PCP_MAX_LEN + 4, &r), -EBADMSG);
}
END_TEST

START_TEST(pcp_epoch) {
  /* 100 s later by both clocks: fine; a small drift: fine. */
  ck_assert(!pcp_epoch_lost(1000, 50, 1100, 150));
  ck_assert(!pcp_epoch_lost(1000, 50, 1097, 150));
  /* The server went back: restarted. */
  ck_assert(pcp_epoch_lost(1000, 50, 10, 150));
  /* One second back is rounding. */
  ck_assert(!pcp_epoch_lost(1000, 50, 999, 50));
  /* The server's clock ran far less (restart 100 s ago) or far more. */
  ck_assert(pcp_epoch_lost(1000, 50, 1100, 1050));
  ck_assert(pcp_epoch_lost(1000, 50, 5000, 60));
}
END_TEST

/* ---- NAT-PMP ------------------------------------------------------------ */

START_TEST(natpmp_encode_layout) {
  /* RFC 6886 sections 3.2 and 3.3. */
  static const uint8_t ext[2] = {0, 0};
  static const uint8_t map[12] = {0,    1,    0, 0, 0xca, 0x6c,
                                  0x9c, 0x40, 0, 0, 0x01, 0x2c};
  static const uint8_t del[12] = {0, 1, 0, 0, 0xca, 0x6c, 0, 0, 0, 0, 0, 0};
  uint8_t buf[16];

  ck_assert_int_eq(natpmp_encode_external(buf, sizeof(buf)), 2);
  ck_assert_mem_eq(buf, ext, 2);
  ck_assert_int_eq(natpmp_encode_map(buf, sizeof(buf), 51820, 40000, 300), 12);
  ck_assert_mem_eq(buf, map, 12);
  ck_assert_int_eq(natpmp_encode_map(buf, sizeof(buf), 51820, 0, 0), 12);
  ck_assert_mem_eq(buf, del, 12);
  ck_assert_int_eq(natpmp_encode_external(buf, 1), -ENOBUFS);
  ck_assert_int_eq(natpmp_encode_map(buf, 11, 1, 1, 1), -ENOBUFS);
}
END_TEST

START_TEST(natpmp_decode_responses) {
  static const uint8_t ext[12] = {0,    128,  0,   0,  0,   0,
                                  0x1c, 0x82, 198, 51, 100, 11};
  static const uint8_t map[16] = {0,    129,  0,    0,    0, 0, 0x1c, 0x83,
                                  0xca, 0x6c, 0x9c, 0x41, 0, 0, 0,    120};
  /* A NAT-PMP-only server's answer to a PCP MAP request (version 2,
   * opcode 1): version 0, opcode 129, UNSUPP_VERSION, epoch. */
  static const uint8_t unsupp[8] = {0, 129, 0, 1, 0, 0, 0, 5};
  struct natpmp_response r;

  ck_assert_int_eq(natpmp_decode(ext, sizeof(ext), &r), 0);
  ck_assert_int_eq(r.opcode, NATPMP_OP_EXTERNAL);
  ck_assert_int_eq(r.result, 0);
  ck_assert_uint_eq(r.epoch, 7298);
  ck_assert(r.has_external);
  ck_assert_mem_eq(r.external_ip, ((uint8_t[]){198, 51, 100, 11}), 4);

  ck_assert_int_eq(natpmp_decode(map, sizeof(map), &r), 0);
  ck_assert_int_eq(r.opcode, NATPMP_OP_MAP_UDP);
  ck_assert(r.has_map);
  ck_assert_uint_eq(r.internal_port, 51820);
  ck_assert_uint_eq(r.external_port, 40001);
  ck_assert_uint_eq(r.lifetime, 120);
  ck_assert_uint_eq(r.epoch, 7299);

  ck_assert_int_eq(natpmp_decode(unsupp, sizeof(unsupp), &r), 0);
  ck_assert_int_eq(r.opcode, NATPMP_OP_MAP_UDP);
  ck_assert_int_eq(r.result, NATPMP_UNSUPP_VERSION);
  ck_assert(!r.has_map);
  ck_assert_str_eq(natpmp_result_name(r.result), "UNSUPP_VERSION");
  ck_assert_str_eq(natpmp_result_name(99), "unknown");
}
END_TEST

static const struct {
  const char *what;
  uint8_t pkt[16];
  size_t len;
  int want;
} natpmp_bad[] = {
    {"empty", {0}, 0, -EBADMSG},
    {"one byte", {0}, 1, -EBADMSG},
    {"PCP version", {2, 128}, 12, -EPROTONOSUPPORT},
    {"a request", {0, 1, 0, 0, 0, 0, 0, 0}, 12, -EBADMSG},
    {"header cut", {0, 128, 0, 0}, 7, -EBADMSG},
    {"external address cut", {0, 128, 0, 0, 0, 0, 0, 1, 1, 2}, 11, -EBADMSG},
    {"mapping cut", {0, 129}, 15, -EBADMSG},
    {"unknown opcode, success", {0, 200}, 16, -EBADMSG},
};

START_TEST(natpmp_decode_refuses) {
  struct natpmp_response r;

  ck_assert_msg(natpmp_decode(natpmp_bad[_i].pkt, natpmp_bad[_i].len, &r) ==
                    natpmp_bad[_i].want,
                "%s", natpmp_bad[_i].what);
}
END_TEST

START_TEST(natpmp_epoch) {
  ck_assert(!natpmp_epoch_lost(1000, 50, 1100, 150));
  /* 7/8 of 100 s is the conservative estimate: 1087 - 2. */
  ck_assert(!natpmp_epoch_lost(1000, 50, 1085, 150));
  ck_assert(natpmp_epoch_lost(1000, 50, 1084, 150));
  /* Restarted. */
  ck_assert(natpmp_epoch_lost(1000, 50, 3, 150));
}
END_TEST

/* ---- default gateway ---------------------------------------------------- */

static const char route_v4[] =
    "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU"
    "\tWindow\tIRTT\n"
    "eth1\t00000000\t0101A8C0\t0003\t0\t0\t600\t00000000\t0\t0\t0\n"
    "eth0\t000200C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n"
    "eth0\t00000000\t010200C0\t0003\t0\t0\t100\t00000000\t0\t0\t0\n"
    "eth2\t00000000\t00000000\t0001\t0\t0\t0\t00000000\t0\t0\t0\n";

START_TEST(gateway_ipv4) {
  uint8_t gw[4];
  char ifname[16];
  uint32_t host = 1;

  ck_assert_int_eq(gateway_parse_ipv4(route_v4, strlen(route_v4), gw, ifname,
                                      sizeof(ifname)),
                   0);
  /* The lowest metric wins: 192.0.2.1 on eth0 (on a little-endian host
   * the file's hex is the address's bytes reversed). */
  if (*(uint8_t *)&host == 1) {
    ck_assert_mem_eq(gw, ((uint8_t[]){192, 0, 2, 1}), 4);
    ck_assert_str_eq(ifname, "eth0");
  }
  /* Only the header, or no route through a gateway. */
  ck_assert_int_eq(
      gateway_parse_ipv4(route_v4,
                         (size_t)(strchr(route_v4, '\n') - route_v4 + 1), gw,
                         NULL, 0),
      -ENOENT);
  ck_assert_int_eq(gateway_parse_ipv4("", 0, gw, NULL, 0), -ENOENT);
}
END_TEST

static const char route_v6[] =
    "fd000001000000000000000000000000 40 00000000000000000000000000000000 00 "
    "00000000000000000000000000000000 00000100 00000001 00000000 00000001 "
    "eth0\n"
    "00000000000000000000000000000000 00 00000000000000000000000000000000 00 "
    "fd000001000000000000000000000001 00000400 00000001 00000000 00000003 "
    "eth0\n"
    "00000000000000000000000000000000 00 00000000000000000000000000000000 00 "
    "00000000000000000000000000000000 ffffffff 00000001 00000000 00200200 "
    "lo\n";

START_TEST(gateway_ipv6) {
  static const uint8_t want[16] = {0xfd, 0, 0, 1, 0, 0, 0, 0,
                                   0,    0, 0, 0, 0, 0, 0, 1};
  uint8_t gw[16];
  char ifname[16];

  ck_assert_int_eq(gateway_parse_ipv6(route_v6, strlen(route_v6), gw, ifname,
                                      sizeof(ifname)),
                   0);
  ck_assert_mem_eq(gw, want, 16);
  ck_assert_str_eq(ifname, "eth0");
  ck_assert_int_eq(
      gateway_parse_ipv6(route_v6,
                         (size_t)(strchr(route_v6, '\n') - route_v6 + 1), gw,
                         NULL, 0),
      -ENOENT);
}
END_TEST

static Suite *suite(void) {
  Suite *s = suite_create("portmap");
  TCase *tc = tcase_create("pcp");

  tcase_add_test(tc, pcp_encode_map_layout);
  tcase_add_test(tc, pcp_decode_map_response);
  tcase_add_test(tc, pcp_decode_error_and_announce);
  tcase_add_loop_test(tc, pcp_decode_refuses, 0,
                      sizeof(pcp_bad) / sizeof(pcp_bad[0]));
  tcase_add_test(tc, pcp_decode_length_bounds);
  tcase_add_test(tc, pcp_epoch);
  suite_add_tcase(s, tc);
  tc = tcase_create("natpmp");
  tcase_add_test(tc, natpmp_encode_layout);
  tcase_add_test(tc, natpmp_decode_responses);
  tcase_add_loop_test(tc, natpmp_decode_refuses, 0,
                      sizeof(natpmp_bad) / sizeof(natpmp_bad[0]));
  tcase_add_test(tc, natpmp_epoch);
  suite_add_tcase(s, tc);
  tc = tcase_create("gateway");
  tcase_add_test(tc, gateway_ipv4);
  tcase_add_test(tc, gateway_ipv6);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) {
  SRunner *sr = srunner_create(suite());
  int failed;

  srunner_run_all(sr, CK_NORMAL);
  failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
