/* SPDX-License-Identifier: MIT */
/*
 * Netlink message building and dump parsing, without a kernel: built
 * messages are parsed back with libnl and every attribute is checked.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <check.h>
#include <netlink/attr.h>
#include <netlink/errno.h>
#include <netlink/genl/genl.h>
#include <netlink/msg.h>

#include "wg_internal.h"
#include "wg_netlink.h"

#define FAMILY 0x1d
#define IFNAME "wgutest0"
#define NPEERS 1000

static void make_key(uint8_t key[WGAM_KEY_LEN], unsigned i) {
  unsigned j;

  for (j = 0; j < WGAM_KEY_LEN; j++)
    key[j] = (uint8_t)(i * 7 + j * 13 + 1);
  key[0] = (uint8_t)i;
  key[1] = (uint8_t)(i >> 8);
}

/* Peer i of the big update: endpoints and allowed IPs alternate v4/v6. */
static void make_update(wgam_peer_update *u, unsigned i) {
  memset(u, 0, sizeof(*u));
  make_key(u->pubkey, i);
  u->flags = WGAM_PEER_REPLACE_ALLOWEDIPS | WGAM_PEER_HAS_ENDPOINT |
             WGAM_PEER_HAS_KEEPALIVE;
  u->persistent_keepalive = (uint16_t)(10 + i % 50);
  if (i % 2 == 0) {
    u->endpoint.family = WGAM_AF_INET;
    u->endpoint.ip[0] = 198;
    u->endpoint.ip[1] = 51;
    u->endpoint.ip[2] = 100;
    u->endpoint.ip[3] = (uint8_t)(i % 250 + 1);
    u->allowedips[0].addr.family = WGAM_AF_INET;
    u->allowedips[0].addr.ip[0] = 100;
    u->allowedips[0].addr.ip[1] = 64;
    u->allowedips[0].addr.ip[2] = (uint8_t)(i >> 8);
    u->allowedips[0].addr.ip[3] = (uint8_t)i;
    u->allowedips[0].prefixlen = 32;
    u->nallowedips = 1;
  } else {
    u->endpoint.family = WGAM_AF_INET6;
    u->endpoint.ip[0] = 0x20;
    u->endpoint.ip[1] = 0x01;
    u->endpoint.ip[2] = 0x0d;
    u->endpoint.ip[3] = 0xb8;
    u->endpoint.ip[14] = (uint8_t)(i >> 8);
    u->endpoint.ip[15] = (uint8_t)i;
    u->allowedips[0].addr.family = WGAM_AF_INET6;
    u->allowedips[0].addr.ip[0] = 0xfd;
    u->allowedips[0].addr.ip[14] = (uint8_t)(i >> 8);
    u->allowedips[0].addr.ip[15] = (uint8_t)i;
    u->allowedips[0].prefixlen = 128;
    u->nallowedips = 1;
  }
  u->endpoint.port = (uint16_t)(40000 + i);
}

/* The exact bytes the kernel expects for an endpoint. */
static size_t expected_sockaddr(uint8_t *dst, const wgam_addr *a) {
  if (a->family == WGAM_AF_INET) {
    struct sockaddr_in sin;

    memset(&sin, 0, sizeof(sin));
    sin.sin_family = AF_INET;
    sin.sin_port = htons(a->port);
    memcpy(&sin.sin_addr, a->ip, 4);
    memcpy(dst, &sin, sizeof(sin));
    return sizeof(sin);
  } else {
    struct sockaddr_in6 sin6;

    memset(&sin6, 0, sizeof(sin6));
    sin6.sin6_family = AF_INET6;
    sin6.sin6_port = htons(a->port);
    memcpy(&sin6.sin6_addr, a->ip, 16);
    memcpy(dst, &sin6, sizeof(sin6));
    return sizeof(sin6);
  }
}

static int test_addr(wgam_addr *a, int fam, const char *ip, uint16_t port) {
  memset(a, 0, sizeof(*a));
  a->family = (uint8_t)fam;
  a->port = port;
  return inet_pton(fam == WGAM_AF_INET ? AF_INET : AF_INET6, ip, a->ip) == 1
             ? 0
             : -1;
}

/* Parses a SET_DEVICE message's device attributes into @tb. */
static void parse_set_msg(struct nl_msg *msg, size_t msgsize,
                          struct nlattr **tb) {
  struct nlmsghdr *nlh = nlmsg_hdr(msg);
  struct genlmsghdr *gh = nlmsg_data(nlh);

  ck_assert_uint_le(nlh->nlmsg_len, msgsize);
  ck_assert(nlh->nlmsg_flags & NLM_F_REQUEST);
  ck_assert(nlh->nlmsg_flags & NLM_F_ACK);
  ck_assert_int_eq(nlh->nlmsg_type, FAMILY);
  ck_assert_int_eq(gh->cmd, WG_CMD_SET_DEVICE);
  ck_assert_int_eq(gh->version, WG_GENL_VERSION);
  ck_assert_int_eq(genlmsg_parse(nlh, 0, tb, WGDEVICE_A_MAX, NULL), 0);
  ck_assert_ptr_nonnull(tb[WGDEVICE_A_IFNAME]);
  ck_assert_str_eq(nla_get_string(tb[WGDEVICE_A_IFNAME]), IFNAME);
  /* Never WGDEVICE_F_REPLACE_PEERS, nor any other device change. */
  ck_assert_ptr_null(tb[WGDEVICE_A_FLAGS]);
  ck_assert_ptr_null(tb[WGDEVICE_A_PRIVATE_KEY]);
  ck_assert_ptr_null(tb[WGDEVICE_A_LISTEN_PORT]);
  ck_assert_ptr_nonnull(tb[WGDEVICE_A_PEERS]);
  ck_assert(tb[WGDEVICE_A_PEERS]->nla_type & NLA_F_NESTED);
}

/* Checks one parsed peer nest against update @u. */
static void check_peer(struct nlattr *peer, const wgam_peer_update *u) {
  struct nlattr *tb[WGPEER_A_MAX + 1], *a, *atb[WGALLOWEDIP_A_MAX + 1];
  uint8_t sa[sizeof(struct sockaddr_in6)];
  int rem, naips = 0;
  uint32_t want_flags;

  ck_assert(peer->nla_type & NLA_F_NESTED);
  ck_assert_int_eq(nla_parse_nested(tb, WGPEER_A_MAX, peer, NULL), 0);
  ck_assert_ptr_nonnull(tb[WGPEER_A_PUBLIC_KEY]);
  ck_assert_int_eq(nla_len(tb[WGPEER_A_PUBLIC_KEY]), WGAM_KEY_LEN);
  ck_assert_mem_eq(nla_data(tb[WGPEER_A_PUBLIC_KEY]), u->pubkey, WGAM_KEY_LEN);
  ck_assert_ptr_null(tb[WGPEER_A_PRESHARED_KEY]);
  ck_assert_ptr_nonnull(tb[WGPEER_A_FLAGS]);
  ck_assert_int_eq(nla_len(tb[WGPEER_A_FLAGS]), 4);
  if (u->flags & WGAM_PEER_REMOVE_ME)
    want_flags = WGPEER_F_REMOVE_ME;
  else if (u->flags & WGAM_PEER_REPLACE_ALLOWEDIPS)
    want_flags = WGPEER_F_REPLACE_ALLOWEDIPS;
  else
    want_flags = WGPEER_F_UPDATE_ONLY;
  ck_assert_uint_eq(nla_get_u32(tb[WGPEER_A_FLAGS]), want_flags);
  if (u->flags & WGAM_PEER_REMOVE_ME) {
    ck_assert_ptr_null(tb[WGPEER_A_ENDPOINT]);
    ck_assert_ptr_null(tb[WGPEER_A_PERSISTENT_KEEPALIVE_INTERVAL]);
    ck_assert_ptr_null(tb[WGPEER_A_ALLOWEDIPS]);
    return;
  }
  if (u->flags & WGAM_PEER_HAS_ENDPOINT) {
    size_t len = expected_sockaddr(sa, &u->endpoint);

    ck_assert_ptr_nonnull(tb[WGPEER_A_ENDPOINT]);
    ck_assert_uint_eq((size_t)nla_len(tb[WGPEER_A_ENDPOINT]), len);
    ck_assert_mem_eq(nla_data(tb[WGPEER_A_ENDPOINT]), sa, len);
  } else {
    ck_assert_ptr_null(tb[WGPEER_A_ENDPOINT]);
  }
  if (u->flags & WGAM_PEER_HAS_KEEPALIVE) {
    ck_assert_ptr_nonnull(tb[WGPEER_A_PERSISTENT_KEEPALIVE_INTERVAL]);
    ck_assert_int_eq(nla_len(tb[WGPEER_A_PERSISTENT_KEEPALIVE_INTERVAL]), 2);
    ck_assert_uint_eq(nla_get_u16(tb[WGPEER_A_PERSISTENT_KEEPALIVE_INTERVAL]),
                      u->persistent_keepalive);
  } else {
    ck_assert_ptr_null(tb[WGPEER_A_PERSISTENT_KEEPALIVE_INTERVAL]);
  }
  if (!u->nallowedips) {
    ck_assert_ptr_null(tb[WGPEER_A_ALLOWEDIPS]);
    return;
  }
  ck_assert_ptr_nonnull(tb[WGPEER_A_ALLOWEDIPS]);
  ck_assert(tb[WGPEER_A_ALLOWEDIPS]->nla_type & NLA_F_NESTED);
  nla_for_each_nested(a, tb[WGPEER_A_ALLOWEDIPS], rem) {
    int v6 = u->allowedips[0].addr.family == WGAM_AF_INET6;

    naips++;
    ck_assert_int_eq(nla_parse_nested(atb, WGALLOWEDIP_A_MAX, a, NULL), 0);
    ck_assert_ptr_nonnull(atb[WGALLOWEDIP_A_FAMILY]);
    ck_assert_int_eq(nla_len(atb[WGALLOWEDIP_A_FAMILY]), 2);
    ck_assert_uint_eq(nla_get_u16(atb[WGALLOWEDIP_A_FAMILY]),
                      v6 ? AF_INET6 : AF_INET);
    ck_assert_ptr_nonnull(atb[WGALLOWEDIP_A_IPADDR]);
    ck_assert_int_eq(nla_len(atb[WGALLOWEDIP_A_IPADDR]), v6 ? 16 : 4);
    ck_assert_mem_eq(nla_data(atb[WGALLOWEDIP_A_IPADDR]),
                     u->allowedips[0].addr.ip, v6 ? 16 : 4);
    ck_assert_ptr_nonnull(atb[WGALLOWEDIP_A_CIDR_MASK]);
    ck_assert_int_eq(nla_len(atb[WGALLOWEDIP_A_CIDR_MASK]), 1);
    ck_assert_uint_eq(nla_get_u8(atb[WGALLOWEDIP_A_CIDR_MASK]),
                      u->allowedips[0].prefixlen);
  }
  ck_assert_int_eq(naips, 1);
}

/* Size of peer @u's nest alone, measured by building it into a big msg. */
static size_t peer_nest_size(const wgam_peer_update *u) {
  struct wg_nl_msgs m = {0};
  struct nlattr *tb[WGDEVICE_A_MAX + 1];
  size_t len;

  ck_assert_int_eq(wg_netlink_build_set(FAMILY, IFNAME, u, 1, 65536, &m), 0);
  ck_assert_uint_eq(m.n, 1);
  parse_set_msg(m.v[0], 65536, tb);
  len = (size_t)nla_len(tb[WGDEVICE_A_PEERS]);
  wg_nl_msgs_free(&m);
  return len;
}

START_TEST(build_1000_peers_split_per_page) {
  size_t page = (size_t)sysconf(_SC_PAGESIZE), i, m;
  wgam_peer_update *u = calloc(NPEERS, sizeof(*u));
  unsigned *seen = calloc(NPEERS, sizeof(*seen));
  struct wg_nl_msgs msgs = {0};
  size_t next = 0;

  ck_assert_ptr_nonnull(u);
  for (i = 0; i < NPEERS; i++)
    make_update(&u[i], (unsigned)i);
  ck_assert_int_eq(wg_netlink_build_set(FAMILY, IFNAME, u, NPEERS, 0, &msgs),
                   0);
  ck_assert_uint_gt(msgs.n, 1);
  for (m = 0; m < msgs.n; m++) {
    struct nlattr *tb[WGDEVICE_A_MAX + 1], *peer;
    size_t npeers = 0;
    int rem;

    parse_set_msg(msgs.v[m], page, tb);
    nla_for_each_nested(peer, tb[WGDEVICE_A_PEERS], rem) {
      struct nlattr *ptb[WGPEER_A_MAX + 1];
      unsigned idx;

      ck_assert_int_eq(nla_parse_nested(ptb, WGPEER_A_MAX, peer, NULL), 0);
      ck_assert_ptr_nonnull(ptb[WGPEER_A_PUBLIC_KEY]);
      idx = ((const uint8_t *)nla_data(ptb[WGPEER_A_PUBLIC_KEY]))[0] |
            (unsigned)((const uint8_t *)nla_data(ptb[WGPEER_A_PUBLIC_KEY]))[1]
                << 8;
      ck_assert_uint_lt(idx, NPEERS);
      /* Order is kept, so updates of one peer apply in sequence. */
      ck_assert_uint_eq(idx, next);
      next++;
      seen[idx]++;
      check_peer(peer, &u[idx]);
      npeers++;
    }
    ck_assert_int_eq(rem, 0);
    ck_assert_uint_gt(npeers, 0);
    /* A message is closed only when the next peer would not fit. */
    if (m + 1 < msgs.n)
      ck_assert_uint_gt(
          nlmsg_hdr(msgs.v[m])->nlmsg_len + peer_nest_size(&u[next]), page);
  }
  for (i = 0; i < NPEERS; i++)
    ck_assert_uint_eq(seen[i], 1);
  wg_nl_msgs_free(&msgs);
  ck_assert_uint_eq(msgs.n, 0);
  free(seen);
  free(u);
}
END_TEST

START_TEST(build_small_msgsize_still_complete) {
  /* A tiny message size forces one or two peers per message. */
  wgam_peer_update u[20];
  struct wg_nl_msgs msgs = {0};
  size_t i, m, total = 0;

  for (i = 0; i < 20; i++)
    make_update(&u[i], (unsigned)i);
  ck_assert_int_eq(wg_netlink_build_set(FAMILY, IFNAME, u, 20, 256, &msgs), 0);
  ck_assert_uint_ge(msgs.n, 10);
  for (m = 0; m < msgs.n; m++) {
    struct nlattr *tb[WGDEVICE_A_MAX + 1], *peer;
    int rem;

    parse_set_msg(msgs.v[m], 256, tb);
    nla_for_each_nested(peer, tb[WGDEVICE_A_PEERS], rem) {
      ck_assert_uint_lt(total, 20);
      check_peer(peer, &u[total]);
      total++;
    }
  }
  ck_assert_uint_eq(total, 20);
  wg_nl_msgs_free(&msgs);
}
END_TEST

START_TEST(build_flags) {
  wgam_peer_update u[4];
  struct wg_nl_msgs msgs = {0};
  struct nlattr *tb[WGDEVICE_A_MAX + 1], *peer;
  int rem, i = 0;

  make_update(&u[0], 1);
  u[0].flags |= WGAM_PEER_REMOVE_ME; /* the rest must be ignored */
  make_update(&u[1], 2);
  u[1].flags = WGAM_PEER_HAS_ENDPOINT; /* endpoint only: never creates */
  make_update(&u[2], 3);
  u[2].flags = WGAM_PEER_HAS_KEEPALIVE;
  make_update(&u[3], 4);
  u[3].flags = WGAM_PEER_REPLACE_ALLOWEDIPS; /* with no IP: drop them all */
  u[3].nallowedips = 0;
  ck_assert_int_eq(wg_netlink_build_set(FAMILY, IFNAME, u, 4, 0, &msgs), 0);
  ck_assert_uint_eq(msgs.n, 1);
  parse_set_msg(msgs.v[0], 65536, tb);
  nla_for_each_nested(peer, tb[WGDEVICE_A_PEERS], rem) {
    ck_assert_int_lt(i, 4);
    check_peer(peer, &u[i]);
    i++;
  }
  ck_assert_int_eq(i, 4);
  wg_nl_msgs_free(&msgs);
}
END_TEST

START_TEST(build_endpoint_bytes_exact) {
  /* Hand-written wire bytes, independent of the code under test. */
  static const uint8_t v4_tail[14] = {0xca, 0x6c, 198, 51, 100, 7};
  static const uint8_t v6_tail[26] = {
      0xca, 0x6d, 0,    0,    0, 0, /* port 51821, flowinfo */
      0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, /* addr */
      0,    0,    0,    0 /* scope id */};
  wgam_peer_update u[2];
  struct wg_nl_msgs msgs = {0};
  struct nlattr *tb[WGDEVICE_A_MAX + 1], *peer;
  int rem, i = 0;

  memset(u, 0, sizeof(u));
  make_key(u[0].pubkey, 0);
  u[0].flags = WGAM_PEER_HAS_ENDPOINT;
  ck_assert_int_eq(
      test_addr(&u[0].endpoint, WGAM_AF_INET, "198.51.100.7", 51820), 0);
  make_key(u[1].pubkey, 1);
  u[1].flags = WGAM_PEER_HAS_ENDPOINT;
  ck_assert_int_eq(
      test_addr(&u[1].endpoint, WGAM_AF_INET6, "2001:db8::1", 51821), 0);
  ck_assert_int_eq(wg_netlink_build_set(FAMILY, IFNAME, u, 2, 0, &msgs), 0);
  parse_set_msg(msgs.v[0], 65536, tb);
  nla_for_each_nested(peer, tb[WGDEVICE_A_PEERS], rem) {
    struct nlattr *ptb[WGPEER_A_MAX + 1];
    const uint8_t *d;
    uint16_t fam;

    ck_assert_int_eq(nla_parse_nested(ptb, WGPEER_A_MAX, peer, NULL), 0);
    d = nla_data(ptb[WGPEER_A_ENDPOINT]);
    memcpy(&fam, d, 2); /* sa_family is host order */
    if (i == 0) {
      ck_assert_int_eq(nla_len(ptb[WGPEER_A_ENDPOINT]), 16);
      ck_assert_uint_eq(fam, AF_INET);
      ck_assert_mem_eq(d + 2, v4_tail, sizeof(v4_tail));
    } else {
      ck_assert_int_eq(nla_len(ptb[WGPEER_A_ENDPOINT]), 28);
      ck_assert_uint_eq(fam, AF_INET6);
      ck_assert_mem_eq(d + 2, v6_tail, sizeof(v6_tail));
    }
    i++;
  }
  ck_assert_int_eq(i, 2);
  wg_nl_msgs_free(&msgs);
}
END_TEST

START_TEST(build_rejects_bad_updates) {
  wgam_peer_update u;
  struct wg_nl_msgs msgs = {0};

  make_update(&u, 5);
  u.endpoint.family = WGAM_AF_NONE;
  ck_assert_int_eq(wg_netlink_build_set(FAMILY, IFNAME, &u, 1, 0, &msgs),
                   -EINVAL);
  make_update(&u, 6);
  u.allowedips[0].prefixlen = 33;
  ck_assert_int_eq(wg_netlink_build_set(FAMILY, IFNAME, &u, 1, 0, &msgs),
                   -EINVAL);
  make_update(&u, 7);
  u.allowedips[0].addr.family = 9;
  ck_assert_int_eq(wg_netlink_build_set(FAMILY, IFNAME, &u, 1, 0, &msgs),
                   -EINVAL);
  make_update(&u, 8);
  ck_assert_int_eq(wg_netlink_build_set(FAMILY, "bad/name", &u, 1, 0, &msgs),
                   -EINVAL);
  ck_assert_int_eq(wg_netlink_build_set(FAMILY, IFNAME, &u, 1, 64, &msgs),
                   -EMSGSIZE);
  ck_assert_uint_eq(msgs.n, 0);
  ck_assert_ptr_null(msgs.v);
  ck_assert_int_eq(wg_netlink_build_set(FAMILY, IFNAME, &u, 0, 0, &msgs), 0);
  ck_assert_uint_eq(msgs.n, 0);
}
END_TEST

/* ---- dump parsing ---- */

static struct nl_msg *dump_msg(void) {
  struct nl_msg *msg = nlmsg_alloc_size(16384);

  ck_assert_ptr_nonnull(msg);
  ck_assert_ptr_nonnull(genlmsg_put(msg, 0, 1, FAMILY, 0, NLM_F_MULTI,
                                    WG_CMD_GET_DEVICE, WG_GENL_VERSION));
  return msg;
}

static void put_aip(struct nl_msg *msg, int af, const char *ip, uint8_t cidr) {
  struct nlattr *n = nla_nest_start(msg, 0);
  uint8_t buf[16];

  ck_assert_int_eq(inet_pton(af, ip, buf), 1);
  nla_put_u16(msg, WGALLOWEDIP_A_FAMILY, (uint16_t)af);
  nla_put(msg, WGALLOWEDIP_A_IPADDR, af == AF_INET ? 4 : 16, buf);
  nla_put_u8(msg, WGALLOWEDIP_A_CIDR_MASK, cidr);
  nla_nest_end(msg, n);
}

/* The kernel's layout: device attributes, then peers; peer B is split. */
static void build_dump(struct nl_msg **m1, struct nl_msg **m2) {
  uint8_t key[WGAM_KEY_LEN], pub[WGAM_KEY_LEN];
  struct nlattr *peers, *peer, *aips;
  struct sockaddr_in sin;
  struct sockaddr_in6 sin6;
  int64_t ts[2] = {1700000000, 123};

  *m1 = dump_msg();
  nla_put_u32(*m1, WGDEVICE_A_IFINDEX, 7);
  nla_put_string(*m1, WGDEVICE_A_IFNAME, IFNAME);
  memset(pub, 0xab, sizeof(pub));
  nla_put(*m1, WGDEVICE_A_PUBLIC_KEY, WGAM_KEY_LEN, pub);
  nla_put_u16(*m1, WGDEVICE_A_LISTEN_PORT, 51820);
  nla_put_u32(*m1, WGDEVICE_A_FWMARK, 0);
  peers = nla_nest_start(*m1, WGDEVICE_A_PEERS);
  /* peer A: everything */
  peer = nla_nest_start(*m1, 0);
  make_key(key, 100);
  nla_put(*m1, WGPEER_A_PUBLIC_KEY, WGAM_KEY_LEN, key);
  memset(&sin, 0, sizeof(sin));
  sin.sin_family = AF_INET;
  sin.sin_port = htons(51820);
  inet_pton(AF_INET, "198.51.100.9", &sin.sin_addr);
  nla_put(*m1, WGPEER_A_ENDPOINT, sizeof(sin), &sin);
  nla_put(*m1, WGPEER_A_LAST_HANDSHAKE_TIME, sizeof(ts), ts);
  nla_put_u64(*m1, WGPEER_A_RX_BYTES, 1000);
  nla_put_u64(*m1, WGPEER_A_TX_BYTES, UINT64_MAX);
  nla_put_u16(*m1, WGPEER_A_PERSISTENT_KEEPALIVE_INTERVAL, 25);
  nla_put_u32(*m1, WGPEER_A_PROTOCOL_VERSION, 1);
  aips = nla_nest_start(*m1, WGPEER_A_ALLOWEDIPS);
  put_aip(*m1, AF_INET, "100.64.0.1", 32);
  put_aip(*m1, AF_INET6, "fd00::1", 128);
  nla_nest_end(*m1, aips);
  nla_nest_end(*m1, peer);
  /* peer B, first part */
  peer = nla_nest_start(*m1, 0);
  make_key(key, 101);
  nla_put(*m1, WGPEER_A_PUBLIC_KEY, WGAM_KEY_LEN, key);
  memset(&sin6, 0, sizeof(sin6));
  sin6.sin6_family = AF_INET6;
  sin6.sin6_port = htons(4500);
  inet_pton(AF_INET6, "2001:db8::9", &sin6.sin6_addr);
  nla_put(*m1, WGPEER_A_ENDPOINT, sizeof(sin6), &sin6);
  nla_put_u16(*m1, WGPEER_A_PERSISTENT_KEEPALIVE_INTERVAL, 10);
  aips = nla_nest_start(*m1, WGPEER_A_ALLOWEDIPS);
  put_aip(*m1, AF_INET, "100.64.1.0", 24);
  nla_nest_end(*m1, aips);
  nla_nest_end(*m1, peer);
  nla_nest_end(*m1, peers);

  *m2 = dump_msg();
  peers = nla_nest_start(*m2, WGDEVICE_A_PEERS);
  /* peer B, continued: key and the rest of its allowed IPs only */
  peer = nla_nest_start(*m2, 0);
  make_key(key, 101);
  nla_put(*m2, WGPEER_A_PUBLIC_KEY, WGAM_KEY_LEN, key);
  aips = nla_nest_start(*m2, WGPEER_A_ALLOWEDIPS);
  put_aip(*m2, AF_INET, "100.64.2.0", 24);
  put_aip(*m2, AF_INET6, "fd00:1::", 64);
  nla_nest_end(*m2, aips);
  nla_nest_end(*m2, peer);
  /* peer C: key only */
  peer = nla_nest_start(*m2, 0);
  make_key(key, 102);
  nla_put(*m2, WGPEER_A_PUBLIC_KEY, WGAM_KEY_LEN, key);
  nla_nest_end(*m2, peer);
  nla_nest_end(*m2, peers);
}

static int parse_msg(struct nl_msg *msg, struct wg_dev *d) {
  struct nlmsghdr *nlh = nlmsg_hdr(msg);

  return wg_netlink_parse_dump_msg(nlh, nlh->nlmsg_len, d);
}

START_TEST(dump_coalesces_split_peer) {
  struct nl_msg *m1, *m2;
  struct wg_dev d;
  const wgam_device_peer *p;
  uint8_t key[WGAM_KEY_LEN], pub[WGAM_KEY_LEN];
  char s[INET6_ADDRSTRLEN];

  build_dump(&m1, &m2);
  wg_dev_init(&d);
  ck_assert_int_eq(parse_msg(m1, &d), 0);
  ck_assert_int_eq(parse_msg(m2, &d), 0);
  wg_netlink_finish_dump(&d);
  memset(pub, 0xab, sizeof(pub));
  ck_assert(d.dev.has_pubkey);
  ck_assert_mem_eq(d.dev.pubkey, pub, WGAM_KEY_LEN);
  ck_assert_uint_eq(d.dev.listen_port, 51820);
  ck_assert_uint_eq(d.dev.npeers, 3);
  ck_assert_ptr_eq(d.dev.peers, d.peers);

  p = &d.dev.peers[0];
  make_key(key, 100);
  ck_assert_mem_eq(p->pubkey, key, WGAM_KEY_LEN);
  ck_assert_uint_eq(p->endpoint.family, WGAM_AF_INET);
  ck_assert_uint_eq(p->endpoint.port, 51820);
  inet_ntop(AF_INET, p->endpoint.ip, s, sizeof(s));
  ck_assert_str_eq(s, "198.51.100.9");
  ck_assert_uint_eq(p->last_handshake, 1700000000);
  ck_assert_uint_eq(p->rx_bytes, 1000);
  ck_assert_uint_eq(p->tx_bytes, UINT64_MAX);
  ck_assert_uint_eq(p->persistent_keepalive, 25);
  ck_assert_uint_eq(p->nallowedips, 2);
  ck_assert_uint_eq(p->allowedips[0].addr.family, WGAM_AF_INET);
  ck_assert_uint_eq(p->allowedips[0].prefixlen, 32);
  ck_assert_uint_eq(p->allowedips[1].addr.family, WGAM_AF_INET6);
  ck_assert_uint_eq(p->allowedips[1].prefixlen, 128);

  p = &d.dev.peers[1];
  make_key(key, 101);
  ck_assert_mem_eq(p->pubkey, key, WGAM_KEY_LEN);
  ck_assert_uint_eq(p->endpoint.family, WGAM_AF_INET6);
  ck_assert_uint_eq(p->endpoint.port, 4500);
  inet_ntop(AF_INET6, p->endpoint.ip, s, sizeof(s));
  ck_assert_str_eq(s, "2001:db8::9");
  ck_assert_uint_eq(p->last_handshake, 0);
  ck_assert_uint_eq(p->persistent_keepalive, 10);
  ck_assert_uint_eq(p->nallowedips, 3);
  inet_ntop(AF_INET, p->allowedips[0].addr.ip, s, sizeof(s));
  ck_assert_str_eq(s, "100.64.1.0");
  inet_ntop(AF_INET, p->allowedips[1].addr.ip, s, sizeof(s));
  ck_assert_str_eq(s, "100.64.2.0");
  inet_ntop(AF_INET6, p->allowedips[2].addr.ip, s, sizeof(s));
  ck_assert_str_eq(s, "fd00:1::");
  ck_assert_uint_eq(p->allowedips[2].prefixlen, 64);

  p = &d.dev.peers[2];
  make_key(key, 102);
  ck_assert_mem_eq(p->pubkey, key, WGAM_KEY_LEN);
  ck_assert_uint_eq(p->endpoint.family, WGAM_AF_NONE);
  ck_assert_uint_eq(p->nallowedips, 0);

  nlmsg_free(m1);
  nlmsg_free(m2);
  wg_dev_free(&d);
}
END_TEST

START_TEST(dump_truncated_and_garbage) {
  struct nl_msg *m1, *m2;
  struct nlmsghdr *nlh;
  struct wg_dev d;
  uint8_t *buf;
  size_t len, cut;
  uint32_t rnd = 12345;
  int i;

  build_dump(&m1, &m2);
  nlh = nlmsg_hdr(m1);
  len = nlh->nlmsg_len;
  buf = malloc(len + 1);
  wg_dev_init(&d);
  /* A buffer shorter than the header's length is refused. */
  for (cut = 0; cut < len; cut++) {
    memcpy(buf, nlh, cut);
    wg_dev_reset(&d);
    ck_assert_int_eq(wg_netlink_parse_dump_msg(buf, cut, &d), -EPROTO);
  }
  /* A shortened nlmsg_len cuts attributes short: an error or fewer peers,
   * never a crash (run under ASan in CI). Unaligned on purpose. */
  for (cut = NLMSG_HDRLEN + GENL_HDRLEN; cut <= len; cut++) {
    struct nlmsghdr h;

    memcpy(buf + 1, nlh, len);
    memcpy(&h, buf + 1, sizeof(h));
    h.nlmsg_len = (uint32_t)cut;
    memcpy(buf + 1, &h, sizeof(h));
    wg_dev_reset(&d);
    (void)wg_netlink_parse_dump_msg(buf + 1, len, &d);
    wg_dev_finish(&d);
    ck_assert_uint_le(d.dev.npeers, 2);
  }
  /* Random byte flips. */
  for (i = 0; i < 20000; i++) {
    size_t k;

    memcpy(buf, nlh, len);
    for (k = 0; k < 4; k++) {
      rnd = rnd * 1103515245u + 12345u;
      buf[NLMSG_HDRLEN + GENL_HDRLEN +
          (rnd >> 8) % (len - NLMSG_HDRLEN - GENL_HDRLEN)] =
          (uint8_t)(rnd >> 24);
    }
    wg_dev_reset(&d);
    (void)wg_netlink_parse_dump_msg(buf, len, &d);
    wg_dev_finish(&d);
  }
  free(buf);
  nlmsg_free(m1);
  nlmsg_free(m2);
  wg_dev_free(&d);
}
END_TEST

START_TEST(dump_rejects_malformed_peer) {
  struct nl_msg *msg;
  struct nlattr *peers, *peer, *aips;
  struct wg_dev d;
  uint8_t key[WGAM_KEY_LEN] = {1};
  int c;

  wg_dev_init(&d);
  for (c = 0; c < 6; c++) {
    msg = dump_msg();
    peers = nla_nest_start(msg, WGDEVICE_A_PEERS);
    peer = nla_nest_start(msg, 0);
    if (c != 0)
      nla_put(msg, WGPEER_A_PUBLIC_KEY, c == 1 ? 31 : WGAM_KEY_LEN, key);
    else /* no key; libnl would drop an empty nest */
      nla_put_u32(msg, WGPEER_A_PROTOCOL_VERSION, 1);
    if (c == 2)
      nla_put(msg, WGPEER_A_ENDPOINT, 15, key); /* not a sockaddr */
    if (c == 3)
      nla_put_u32(msg, WGPEER_A_RX_BYTES, 1); /* wrong size */
    if (c == 4 || c == 5) {
      aips = nla_nest_start(msg, WGPEER_A_ALLOWEDIPS);
      if (c == 4)
        put_aip(msg, AF_INET, "10.0.0.0", 33);
      else
        put_aip(msg, AF_INET6, "fd00::", 129);
      nla_nest_end(msg, aips);
    }
    nla_nest_end(msg, peer);
    nla_nest_end(msg, peers);
    wg_dev_reset(&d);
    ck_assert_msg(parse_msg(msg, &d) == -EPROTO, "case %d", c);
    nlmsg_free(msg);
  }
  wg_dev_free(&d);
}
END_TEST

START_TEST(nlerr_mapping) {
  ck_assert_int_eq(wg_nlerr_to_errno(0), 0);
  ck_assert_int_eq(wg_nlerr_to_errno(-NLE_NODEV), -ENODEV);
  ck_assert_int_eq(wg_nlerr_to_errno(-NLE_PERM), -EPERM);
  ck_assert_int_eq(wg_nlerr_to_errno(-NLE_NOMEM), -ENOMEM);
  ck_assert_int_eq(wg_nlerr_to_errno(-NLE_OPNOTSUPP), -EOPNOTSUPP);
  ck_assert_int_eq(wg_nlerr_to_errno(-NLE_DUMP_INTR), -EAGAIN);
  ck_assert_int_eq(wg_nlerr_to_errno(-NLE_OBJ_NOTFOUND), -ENOENT);
  ck_assert_int_eq(wg_nlerr_to_errno(-9999), -EIO);
}
END_TEST

static Suite *suite(void) {
  Suite *s = suite_create("wg_netlink");
  TCase *tc = tcase_create("core");

  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, build_1000_peers_split_per_page);
  tcase_add_test(tc, build_small_msgsize_still_complete);
  tcase_add_test(tc, build_flags);
  tcase_add_test(tc, build_endpoint_bytes_exact);
  tcase_add_test(tc, build_rejects_bad_updates);
  tcase_add_test(tc, dump_coalesces_split_peer);
  tcase_add_test(tc, dump_truncated_and_garbage);
  tcase_add_test(tc, dump_rejects_malformed_peer);
  tcase_add_test(tc, nlerr_mapping);
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
