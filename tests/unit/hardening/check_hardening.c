/* SPDX-License-Identifier: MIT */
/*
 * Bad input through the library API, each with its exact expectation:
 * announces that cannot fit a datagram (10,000 endpoints, a 1 MB pubkey),
 * peer lists with duplicate keys or addresses, every bounded table at its
 * bound, rejected datagrams that must change nothing, and a LanBroadcast
 * replayed from another address.
 */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "wgautomesh.h"

#define SECRET "hardening-secret"
#define PORT 1666

static const char *const keys[] = {
    "Z5DddUq5GewAeS9Lndx0e6eLuENG9SOvANK2GBzGUxg=", /* A, ourselves */
    "lEFx+aA1pzIMPOhRAwFvmTJ1GL6enLup7Tt6y0PDd1k=", /* B */
    "NpGxDw7K3av+GCqvk91iGMzXatjSG08RDFN/gHLAnFM=", /* C */
};
#define NKEYS 3

static uint8_t gkey[WGAM_KEY_LEN];

static int rand_cb(void *user_data, uint8_t *dest, size_t destlen) {
  uint64_t *s = user_data;

  for (size_t i = 0; i < destlen; i++) {
    *s = *s * 6364136223846793005ULL + 1442695040888963407ULL;
    dest[i] = (uint8_t)(*s >> 56);
  }
  return 0;
}

static uint64_t rstate = 1;

static wgam_addr A(const char *s) {
  wgam_addr a;

  ck_assert_int_eq(wgam_addr_parse(&a, s, 1), 0);
  return a;
}

static int addr_is(const wgam_addr *a, const char *s) {
  wgam_addr b = A(s);

  return wgam_addr_equal(a, &b);
}

static void peer_cfg(wgam_peer_config *p, int k, const char *addr) {
  memset(p, 0, sizeof(*p));
  ck_assert_int_eq(wgam_key_from_base64(p->pubkey, keys[k], WGAM_KEY_B64_LEN),
                   0);
  p->address = A(addr);
}

/* Fast-policy settings with this file's secret, port and random source. */
static void settings_init(wgam_settings *s) {
  wgam_settings_default(s);
  s->secret = (const uint8_t *)SECRET;
  s->secretlen = strlen(SECRET);
  s->gossip_port = PORT;
  s->rand = rand_cb;
  s->user_data = &rstate;
}

/* Engine A of the mesh {A 100.64.0.1, B 100.64.0.2, C 100.64.0.3}, fast
 * policy, LAN discovery on, the device read once with B and C connected
 * (B at 198.51.100.2:51820, C at 198.51.100.3:51820). */
static wgam_mesh *mesh_new(wgam_tstamp ts, uint64_t unix_now,
                           size_t max_pending) {
  wgam_peer_config pc[NKEYS];
  wgam_device_peer dp[2];
  wgam_cidr cidr[2];
  wgam_device dev;
  wgam_settings s;
  wgam_mesh *m;

  wgam_key_derive(gkey, (const uint8_t *)SECRET, strlen(SECRET));
  settings_init(&s);
  s.flags = WGAM_SETTINGS_LAN_DISCOVERY | WGAM_SETTINGS_PERSIST;
  if (max_pending)
    s.max_pending = max_pending;
  ck_assert_int_eq(wgam_mesh_new(&m, &s, ts), 0);
  peer_cfg(&pc[0], 0, "100.64.0.1");
  peer_cfg(&pc[1], 1, "100.64.0.2");
  peer_cfg(&pc[2], 2, "100.64.0.3");
  ck_assert_int_eq(wgam_mesh_set_peers(m, pc, NKEYS, ts), 0);

  memset(&dev, 0, sizeof(dev));
  memset(dp, 0, sizeof(dp));
  memcpy(dev.pubkey, pc[0].pubkey, WGAM_KEY_LEN);
  dev.has_pubkey = 1;
  dev.listen_port = 51820;
  for (int i = 0; i < 2; i++) {
    memcpy(dp[i].pubkey, pc[i + 1].pubkey, WGAM_KEY_LEN);
    dp[i].endpoint = A(i ? "198.51.100.3:51820" : "198.51.100.2:51820");
    dp[i].last_handshake = unix_now - 1;
    dp[i].rx_bytes = 100;
    dp[i].persistent_keepalive = 30;
    cidr[i].addr = pc[i + 1].address;
    cidr[i].prefixlen = 32;
    dp[i].allowedips = &cidr[i];
    dp[i].nallowedips = 1;
  }
  dev.peers = dp;
  dev.npeers = 2;
  ck_assert_int_eq(wgam_mesh_observe_device(m, &dev, ts, unix_now), 0);
  return m;
}

/* Reads the device again: B and C with a fresh handshake, B at @b_ep. */
static void observe(wgam_mesh *m, const char *b_ep, wgam_tstamp ts,
                    uint64_t unix_now) {
  wgam_device_peer dp[2];
  wgam_cidr cidr[2];
  wgam_device dev;

  memset(&dev, 0, sizeof(dev));
  memset(dp, 0, sizeof(dp));
  wgam_key_from_base64(dev.pubkey, keys[0], WGAM_KEY_B64_LEN);
  dev.has_pubkey = 1;
  dev.listen_port = 51820;
  for (int i = 0; i < 2; i++) {
    wgam_key_from_base64(dp[i].pubkey, keys[i + 1], WGAM_KEY_B64_LEN);
    dp[i].endpoint = A(i ? "198.51.100.3:51820" : b_ep);
    dp[i].last_handshake = unix_now - 1;
    dp[i].rx_bytes = 100 + unix_now;
    cidr[i].addr = A(i ? "100.64.0.3" : "100.64.0.2");
    cidr[i].prefixlen = 32;
    dp[i].allowedips = &cidr[i];
    dp[i].nallowedips = 1;
  }
  dev.peers = dp;
  dev.npeers = 2;
  ck_assert_int_eq(wgam_mesh_observe_device(m, &dev, ts, unix_now), 0);
}

static void drain_pkts(wgam_mesh *m, wgam_tstamp ts) {
  uint8_t pkt[WGAM_MAX_DATAGRAM_LEN];
  wgam_addr dst;

  while (wgam_mesh_write_pkt(m, &dst, pkt, sizeof(pkt), ts) > 0)
    ;
}

/* Pops every pending update; returns how many set B's endpoint, and the
 * last such endpoint in *@ep. */
static int b_endpoint_updates(wgam_mesh *m, wgam_addr *ep) {
  uint8_t kb[WGAM_KEY_LEN];
  wgam_peer_update u;
  int n = 0;

  wgam_key_from_base64(kb, keys[1], WGAM_KEY_B64_LEN);
  while (wgam_mesh_next_peer_update(m, &u) == 1)
    if (!memcmp(u.pubkey, kb, WGAM_KEY_LEN) &&
        (u.flags & WGAM_PEER_HAS_ENDPOINT)) {
      *ep = u.endpoint;
      n++;
    }
  return n;
}

static size_t seal(uint8_t *pkt, size_t cap, const uint8_t *plain, size_t len) {
  uint8_t nonce[WGAM_NONCE_LEN];
  wgam_ssize n;

  rand_cb(&rstate, nonce, sizeof(nonce));
  n = wgam_pkt_seal(pkt, cap, gkey, nonce, plain, len);
  ck_assert_int_gt(n, 0);
  return (size_t)n;
}

static void put_u32(uint8_t *p, uint32_t v) {
  for (int i = 0; i < 4; i++)
    p[i] = (uint8_t)(v >> (8 * i));
}

static void put_u64(uint8_t *p, uint64_t v) {
  for (int i = 0; i < 8; i++)
    p[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t total_rejected(const wgam_mesh *m) {
  wgam_stats st;
  uint64_t n = 0;

  wgam_mesh_get_stats(m, &st);
  for (int i = 0; i < WGAM_REJECT_COUNT; i++)
    n += st.rejected[i];
  return n;
}

static uint64_t rejected(const wgam_mesh *m, int why) {
  wgam_stats st;

  wgam_mesh_get_stats(m, &st);
  return st.rejected[why];
}

/* Announce{pubkey, endpoints} in bincode, @neps IPv4 endpoints
 * 198.51.100.x:51820 (x cycling 1..200); returns the malloc'd plaintext. */
static uint8_t *announce_bytes(const uint8_t *pubkey, size_t pubkeylen,
                               size_t neps, size_t *len) {
  size_t n = 4 + 8 + pubkeylen + 8 + neps * (4 + 4 + 2 + 8), o = 0;
  uint8_t *p = malloc(n);

  ck_assert_ptr_nonnull(p);
  put_u32(p, WGAM_MSG_ANNOUNCE);
  o = 4;
  put_u64(p + o, pubkeylen);
  o += 8;
  memcpy(p + o, pubkey, pubkeylen);
  o += pubkeylen;
  put_u64(p + o, neps);
  o += 8;
  for (size_t i = 0; i < neps; i++) {
    put_u32(p + o, 0); /* SocketAddr::V4 */
    p[o + 4] = 198;
    p[o + 5] = 51;
    p[o + 6] = 100;
    p[o + 7] = (uint8_t)(1 + i % 200);
    p[o + 8] = 0x6c; /* 51820 LE */
    p[o + 9] = 0xca;
    put_u64(p + o + 10, 1700000000 + i);
    o += 18;
  }
  ck_assert_uint_eq(o, n);
  *len = n;
  return p;
}

/* The same announce at every stage: encoder, sealer, datagram length,
 * decoder (whole and cut to a datagram), and the engine's counters. */
static void check_oversized_announce(const uint8_t *plain, size_t len) {
  uint8_t *pkt = malloc(len + 64), nonce[WGAM_NONCE_LEN] = {0};
  uint8_t small[WGAM_MAX_DATAGRAM_LEN];
  wgam_tstamp ts = 100 * WGAM_SECONDS;
  wgam_mesh *m = mesh_new(ts, 1700000000, 0);
  wgam_msg msg;
  wgam_addr src = A("100.64.0.2:1666");
  size_t n;
  uint64_t before;

  ck_assert_ptr_nonnull(pkt);
  /* It cannot be sealed into a datagram at all. */
  ck_assert_int_eq(wgam_pkt_seal(pkt, len + 64, gkey, nonce, plain, len),
                   WGAM_ERR_INVALID_ARGUMENT);

  /* A sender that ignores the limit: the datagram is refused by length
   * before any decryption or allocation, and counted. */
  ck_assert_int_eq(wgam_pkt_open(small, sizeof(small), gkey, pkt, len + 40),
                   WGAM_ERR_PKT_LENGTH);
  before = rejected(m, WGAM_REJECT_LENGTH);
  memset(pkt, 0x42, len + 40);
  ck_assert_int_eq(wgam_mesh_read_pkt(m, &src, pkt, len + 40, ts),
                   WGAM_ERR_PKT_LENGTH);
  ck_assert_uint_eq(rejected(m, WGAM_REJECT_LENGTH), before + 1);

  /* What fits of it (the first bytes, sealed properly): the declared
   * lengths run past the end, so it does not decode. */
  n = seal(pkt, len + 64, plain, WGAM_MAX_PLAINTEXT_LEN);
  ck_assert_uint_eq(n, WGAM_MAX_DATAGRAM_LEN);
  before = rejected(m, WGAM_REJECT_DECODE);
  ck_assert_int_eq(wgam_mesh_read_pkt(m, &src, pkt, n, ts),
                   WGAM_ERR_PKT_DECODE);
  ck_assert_uint_eq(rejected(m, WGAM_REJECT_DECODE), before + 1);
  ck_assert_int_eq(wgam_msg_decode(&msg, plain, WGAM_MAX_PLAINTEXT_LEN),
                   WGAM_ERR_PKT_DECODE);

  free(pkt);
  wgam_mesh_del(m);
}

START_TEST(announce_10000_endpoints) {
  size_t len;
  uint8_t *p =
      announce_bytes((const uint8_t *)keys[1], WGAM_KEY_B64_LEN, 10000, &len);
  wgam_msg *msg = calloc(1, sizeof(*msg));

  ck_assert_uint_eq(len, 4 + 8 + 44 + 8 + 10000 * 18);
  check_oversized_announce(p, len);
  /* Even given the whole plaintext, the decoder refuses more endpoints
   * than a datagram can carry (80) instead of walking 10,000. */
  ck_assert_int_eq(wgam_msg_decode(msg, p, len), WGAM_ERR_PKT_DECODE);
  /* The boundary: 80 decode, 81 do not. */
  put_u64(p + 4 + 8 + 44, WGAM_MSG_MAX_ENDPOINTS);
  ck_assert_int_eq(wgam_msg_decode(msg, p, len),
                   4 + 8 + 44 + 8 + WGAM_MSG_MAX_ENDPOINTS * 18);
  ck_assert_uint_eq(msg->nendpoints, WGAM_MSG_MAX_ENDPOINTS);
  put_u64(p + 4 + 8 + 44, WGAM_MSG_MAX_ENDPOINTS + 1);
  ck_assert_int_eq(wgam_msg_decode(msg, p, len), WGAM_ERR_PKT_DECODE);
  /* And the encoder will not produce one. */
  msg->nendpoints = WGAM_MSG_MAX_ENDPOINTS + 1;
  ck_assert_int_eq(wgam_msg_encode(p, len, msg), WGAM_ERR_INVALID_ARGUMENT);
  free(msg);
  free(p);
}
END_TEST

START_TEST(announce_1mb_pubkey) {
  size_t klen = 1u << 20, len;
  uint8_t *key = malloc(klen), *p;
  wgam_tstamp ts = 100 * WGAM_SECONDS;
  wgam_mesh *m;
  wgam_msg msg;

  ck_assert_ptr_nonnull(key);
  memset(key, 'A', klen); /* valid UTF-8: only the length is wrong */
  p = announce_bytes(key, klen, 1, &len);
  check_oversized_announce(p, len);

  /* Given the whole plaintext the codec decodes it (it is a well-formed
   * bincode value), but the engine never gets such a plaintext: the only
   * way in is a datagram, refused above by length. */
  ck_assert_int_eq(wgam_msg_decode(&msg, p, len), (wgam_ssize)len);
  ck_assert_uint_eq(msg.pubkeylen, klen);
  /* The encoder refuses a pubkey longer than a datagram's plaintext. */
  ck_assert_int_eq(wgam_msg_encode(p, len, &msg), WGAM_ERR_INVALID_ARGUMENT);

  /* The longest pubkey that fits a datagram is an unknown key. */
  free(p);
  p = announce_bytes(key, WGAM_MAX_PLAINTEXT_LEN - 4 - 8 - 8, 0, &len);
  ck_assert_uint_eq(len, WGAM_MAX_PLAINTEXT_LEN);
  {
    uint8_t pkt[WGAM_MAX_DATAGRAM_LEN];
    wgam_addr src = A("100.64.0.2:1666");
    size_t n;

    m = mesh_new(ts, 1700000000, 0);
    n = seal(pkt, sizeof(pkt), p, len);
    ck_assert_int_eq(wgam_mesh_read_pkt(m, &src, pkt, n, ts),
                     WGAM_ERR_PKT_IGNORED);
    ck_assert_uint_eq(rejected(m, WGAM_REJECT_UNKNOWN_KEY), 1);
    wgam_mesh_del(m);
  }
  free(p);
  free(key);
}
END_TEST

/* A state file entry with 10,000 endpoints or a 1 MB key: the first is
 * refused whole (more than WGAM_STATE_MAX_ENDPOINTS), the second parses but
 * names no configured peer and is skipped. */
START_TEST(state_file_oversized_entries) {
  size_t klen = 1u << 20, len, n;
  uint8_t *key = malloc(klen), *ann, *file;
  wgam_tstamp ts = 100 * WGAM_SECONDS;
  wgam_mesh *m = mesh_new(ts, 1700000000, 0);
  wgam_peer_info pi;
  size_t known[NKEYS];

  /* What the engine knows from the device read (the connected endpoints). */
  for (size_t i = 0; i < wgam_mesh_get_npeers(m); i++) {
    ck_assert_int_eq(wgam_mesh_get_peer_info(m, i, &pi), 0);
    known[i] = pi.nknown;
  }
  ck_assert_ptr_nonnull(key);
  memset(key, 'A', klen);
  /* A state file entry is an announce without the u32 tag. */
  ann = announce_bytes((const uint8_t *)keys[1], WGAM_KEY_B64_LEN, 10000, &len);
  n = 8 + len - 4;
  file = malloc(n);
  put_u64(file, 1);
  memcpy(file + 8, ann + 4, len - 4);
  ck_assert_int_eq(wgam_state_parse(file, n, NULL, NULL),
                   WGAM_ERR_STATE_DECODE);
  ck_assert_int_eq(wgam_mesh_load_state(m, file, n, ts), WGAM_ERR_STATE_DECODE);
  ck_assert_int_eq(wgam_mesh_get_peer_info(m, 0, &pi), 0);
  ck_assert_uint_eq(pi.nknown, known[0]);
  free(ann);
  free(file);

  ann = announce_bytes(key, klen, 3, &len);
  n = 8 + len - 4;
  file = malloc(n);
  put_u64(file, 1);
  memcpy(file + 8, ann + 4, len - 4);
  ck_assert_int_eq(wgam_state_parse(file, n, NULL, NULL), 0);
  ck_assert_int_eq(wgam_mesh_load_state(m, file, n, ts), 0);
  for (size_t i = 0; i < wgam_mesh_get_npeers(m); i++) {
    ck_assert_int_eq(wgam_mesh_get_peer_info(m, i, &pi), 0);
    ck_assert_uint_eq(pi.nknown, known[i]);
  }
  free(ann);
  free(file);
  free(key);
  wgam_mesh_del(m);
}
END_TEST

START_TEST(duplicate_peers) {
  wgam_tstamp ts = 100 * WGAM_SECONDS;
  wgam_mesh *m = mesh_new(ts, 1700000000, 0);
  wgam_peer_config pc[4];
  wgam_peer_info pi;

  /* Duplicate key, different addresses. */
  peer_cfg(&pc[0], 0, "100.64.0.1");
  peer_cfg(&pc[1], 1, "100.64.0.2");
  peer_cfg(&pc[2], 1, "100.64.0.9");
  ck_assert_int_eq(wgam_mesh_set_peers(m, pc, 3, ts), WGAM_ERR_DUPLICATE_PEER);
  /* Duplicate address, different keys. */
  peer_cfg(&pc[2], 2, "100.64.0.2");
  ck_assert_int_eq(wgam_mesh_set_peers(m, pc, 3, ts), WGAM_ERR_DUPLICATE_PEER);
  /* The same IPv6 address written two ways. */
  peer_cfg(&pc[1], 1, "fd00::2");
  peer_cfg(&pc[2], 2, "fd00:0:0::0:2");
  ck_assert_int_eq(wgam_mesh_set_peers(m, pc, 3, ts), WGAM_ERR_DUPLICATE_PEER);
  /* Our own key twice. */
  peer_cfg(&pc[1], 0, "100.64.0.7");
  ck_assert_int_eq(wgam_mesh_set_peers(m, pc, 2, ts), WGAM_ERR_DUPLICATE_PEER);

  /* All or nothing: the list of mesh_new() is still in force. */
  ck_assert_uint_eq(wgam_mesh_get_npeers(m), 2);
  ck_assert_int_eq(wgam_mesh_get_peer_info(m, 0, &pi), 0);
  ck_assert(wgam_addr_equal(&pi.address, &(wgam_addr){0}) == 0);
  ck_assert_int_eq(pi.connected, 1);
  wgam_mesh_del(m);
}
END_TEST

START_TEST(max_peers_bound) {
  wgam_settings s;
  wgam_mesh *m;
  wgam_peer_config *pc = calloc(65, sizeof(*pc));

  wgam_settings_default(&s);
  s.rand = rand_cb;
  s.user_data = &rstate;
  s.max_peers = 64;
  ck_assert_int_eq(wgam_mesh_new(&m, &s, 0), 0);
  for (unsigned i = 0; i < 65; i++) {
    pc[i].pubkey[0] = (uint8_t)i;
    pc[i].pubkey[1] = 1;
    pc[i].address.family = WGAM_AF_INET;
    pc[i].address.ip[0] = 100;
    pc[i].address.ip[1] = 64;
    pc[i].address.ip[3] = (uint8_t)(i + 1);
  }
  ck_assert_int_eq(wgam_mesh_set_peers(m, pc, 65, 0), WGAM_ERR_LIMIT);
  ck_assert_uint_eq(wgam_mesh_get_npeers(m), 0);
  ck_assert_int_eq(wgam_mesh_set_peers(m, pc, 64, 0), 0);
  ck_assert_uint_eq(wgam_mesh_get_npeers(m), 64);
  wgam_mesh_del(m);
  free(pc);
}
END_TEST

/* Pings each queue a Pong: at max_pending the queue stops growing, the
 * excess is counted as queue_full, and the memory the engine reports stays
 * bounded. */
START_TEST(max_pending_bound) {
  wgam_tstamp ts = 100 * WGAM_SECONDS;
  wgam_mesh *m = mesh_new(ts, 1700000000, 256);
  uint8_t plain[4] = {0}, pkt[64];
  wgam_addr src = A("203.0.113.9:40000");
  wgam_stats st;
  size_t n, mem_at_bound = 0;

  drain_pkts(m, ts);
  n = seal(pkt, sizeof(pkt), plain, sizeof(plain));
  for (int i = 0; i < 1000; i++) {
    ck_assert_int_eq(wgam_mesh_read_pkt(m, &src, pkt, n, ts), 0);
    if (i == 300) {
      wgam_mesh_get_stats(m, &st);
      mem_at_bound = st.mem_bytes;
    }
  }
  wgam_mesh_get_stats(m, &st);
  ck_assert_uint_eq(st.pkts_in[WGAM_MSG_PING], 1000);
  ck_assert_uint_eq(st.rejected[WGAM_REJECT_QUEUE_FULL], 1000 - 256);
  ck_assert_uint_eq(st.mem_bytes, mem_at_bound);
  {
    uint8_t out[WGAM_MAX_DATAGRAM_LEN];
    wgam_addr dst;
    size_t sent = 0;

    while (wgam_mesh_write_pkt(m, &dst, out, sizeof(out), ts) > 0)
      sent++;
    ck_assert_uint_eq(sent, 256);
  }
  wgam_mesh_del(m);
}
END_TEST

/* The datagram queue gives back the room a burst took (1,000 Pongs) once it
 * is written out: an engine does not keep its largest burst for ever. */
START_TEST(queue_shrinks_after_burst) {
  wgam_tstamp ts = 100 * WGAM_SECONDS;
  wgam_mesh *m = mesh_new(ts, 1700000000, 0);
  uint8_t plain[4] = {0}, pkt[64], out[WGAM_MAX_DATAGRAM_LEN];
  wgam_addr src = A("203.0.113.9:40000"), dst;
  wgam_stats st;
  size_t n, before, during, sent = 0;

  drain_pkts(m, ts);
  wgam_mesh_get_stats(m, &st);
  before = st.mem_bytes;
  n = seal(pkt, sizeof(pkt), plain, sizeof(plain));
  for (int i = 0; i < 1000; i++)
    ck_assert_int_eq(wgam_mesh_read_pkt(m, &src, pkt, n, ts), 0);
  wgam_mesh_get_stats(m, &st);
  during = st.mem_bytes;
  ck_assert_uint_ge(during, before + 1000 * 20);
  while (wgam_mesh_write_pkt(m, &dst, out, sizeof(out), ts) > 0)
    sent++;
  ck_assert_uint_eq(sent, 1000);
  wgam_mesh_get_stats(m, &st);
  ck_assert_uint_le(st.mem_bytes, before);
  wgam_mesh_del(m);
}
END_TEST

/* Garbage of every kind changes no state: only the counters. */
START_TEST(rejected_datagrams_change_nothing) {
  wgam_tstamp ts = 100 * WGAM_SECONDS;
  wgam_mesh *m = mesh_new(ts, 1700000000, 0);
  uint8_t pkt[WGAM_MAX_DATAGRAM_LEN + 1], plain[200], wrong[WGAM_KEY_LEN];
  uint8_t nonce[WGAM_NONCE_LEN] = {1};
  wgam_addr src = A("198.51.100.66:1666");
  wgam_peer_update u;
  wgam_ssize n;
  uint64_t before;
  size_t len, known[NKEYS];
  uint8_t *ann;
  wgam_peer_info pi;

  drain_pkts(m, ts);
  while (wgam_mesh_next_peer_update(m, &u) == 1)
    ;
  for (size_t i = 0; i < wgam_mesh_get_npeers(m); i++) {
    ck_assert_int_eq(wgam_mesh_get_peer_info(m, i, &pi), 0);
    known[i] = pi.nknown;
  }
  before = total_rejected(m);
  /* random, short, long */
  memset(pkt, 0xa5, sizeof(pkt));
  ck_assert_int_eq(wgam_mesh_read_pkt(m, &src, pkt, 23, ts),
                   WGAM_ERR_PKT_LENGTH);
  ck_assert_int_eq(
      wgam_mesh_read_pkt(m, &src, pkt, WGAM_MAX_DATAGRAM_LEN + 1, ts),
      WGAM_ERR_PKT_LENGTH);
  ck_assert_int_eq(wgam_mesh_read_pkt(m, &src, pkt, 100, ts),
                   WGAM_ERR_PKT_AUTH);
  /* a valid announce with a wrong key, and with one bit of its tag flipped */
  ann = announce_bytes((const uint8_t *)keys[1], WGAM_KEY_B64_LEN, 3, &len);
  wgam_key_derive(wrong, (const uint8_t *)"other", 5);
  n = wgam_pkt_seal(pkt, sizeof(pkt), wrong, nonce, ann, len);
  ck_assert_int_gt(n, 0);
  ck_assert_int_eq(wgam_mesh_read_pkt(m, &src, pkt, (size_t)n, ts),
                   WGAM_ERR_PKT_AUTH);
  n = wgam_pkt_seal(pkt, sizeof(pkt), gkey, nonce, ann, len);
  pkt[WGAM_NONCE_LEN] ^= 1;
  ck_assert_int_eq(wgam_mesh_read_pkt(m, &src, pkt, (size_t)n, ts),
                   WGAM_ERR_PKT_AUTH);
  /* authentic but not a message: unknown tag, truncated */
  memset(plain, 0, sizeof(plain));
  plain[0] = 9;
  n = (wgam_ssize)seal(pkt, sizeof(pkt), plain, 4);
  ck_assert_int_eq(wgam_mesh_read_pkt(m, &src, pkt, (size_t)n, ts),
                   WGAM_ERR_PKT_DECODE);
  n = (wgam_ssize)seal(pkt, sizeof(pkt), ann, len - 1);
  ck_assert_int_eq(wgam_mesh_read_pkt(m, &src, pkt, (size_t)n, ts),
                   WGAM_ERR_PKT_DECODE);
  ck_assert_uint_eq(total_rejected(m), before + 7);
  /* Nothing to send, nothing to change, nothing learned. */
  ck_assert_int_eq(wgam_mesh_write_pkt(m, &src, pkt, sizeof(pkt), ts), 0);
  ck_assert_int_eq(wgam_mesh_next_peer_update(m, &u), 0);
  for (size_t i = 0; i < wgam_mesh_get_npeers(m); i++) {
    ck_assert_int_eq(wgam_mesh_get_peer_info(m, i, &pi), 0);
    ck_assert_uint_eq(pi.nknown, known[i]);
  }
  free(ann);
  wgam_mesh_del(m);
}
END_TEST

/* Announces C at @ep with @time to @m from B; returns read_pkt's result. */
static int announce_c(wgam_mesh *m, const char *ep, uint64_t time,
                      wgam_tstamp ts) {
  uint8_t plain[256], pkt[WGAM_MAX_DATAGRAM_LEN];
  wgam_addr src = A("100.64.0.2:1666");
  wgam_msg msg;
  wgam_ssize n;

  memset(&msg, 0, sizeof(msg));
  msg.type = WGAM_MSG_ANNOUNCE;
  msg.pubkey = (const uint8_t *)keys[2];
  msg.pubkeylen = WGAM_KEY_B64_LEN;
  msg.nendpoints = 1;
  msg.endpoints[0].addr = A(ep);
  msg.endpoints[0].time = time;
  n = wgam_msg_encode(plain, sizeof(plain), &msg);
  ck_assert_int_gt(n, 0);
  return wgam_mesh_read_pkt(m, &src, pkt,
                            seal(pkt, sizeof(pkt), plain, (size_t)n), ts);
}

/* The time C's store holds for port @port, or 0. */
static uint64_t time_of(wgam_mesh *m, uint16_t port) {
  wgam_peer_info pi;

  ck_assert_int_eq(wgam_mesh_get_peer_info(m, 1, &pi), 0);
  for (size_t i = 0; i < pi.nknown; i++)
    if (pi.known[i].addr.port == port)
      return pi.known[i].time;
  return 0;
}

/* A member whose clock runs ahead must not pin its endpoints at the top of
 * every store: a time more than a minute ahead of ours is taken as one
 * gossip interval old, one within the minute is kept; a fresher endpoint
 * wins however often the other comes again. */
START_TEST(future_times_bounded) {
  uint64_t now = 1700000000;
  wgam_tstamp ts = 100 * WGAM_SECONDS;
  wgam_mesh *m = mesh_new(ts, now, 0);
  wgam_peer_info pi;

  ck_assert_int_eq(announce_c(m, "203.0.113.9:4000", now + 365 * 86400, ts), 0);
  ck_assert_uint_eq(time_of(m, 4000), now - 300);
  ck_assert_int_eq(announce_c(m, "203.0.113.9:4001", now + 30, ts), 0);
  ck_assert_int_eq(wgam_mesh_get_peer_info(m, 1, &pi), 0);
  ck_assert_uint_eq(pi.known[0].time, now + 30);
  ck_assert_uint_eq(pi.known[0].addr.port, 4001);
  /* Ten minutes on, the year-ahead node announces its old endpoint again:
   * an endpoint seen a second ago beats it. */
  ts += 600 * WGAM_SECONDS;
  ck_assert_int_eq(announce_c(m, "203.0.113.9:4002", now + 599, ts), 0);
  ck_assert_int_eq(announce_c(m, "203.0.113.9:4000", now + 365 * 86400, ts), 0);
  ck_assert_int_eq(wgam_mesh_get_peer_info(m, 1, &pi), 0);
  ck_assert_uint_eq(pi.known[0].time, now + 599);
  ck_assert_uint_eq(pi.known[0].addr.port, 4002);
  ck_assert_uint_eq(pi.known[1].time, now + 300);
  ck_assert_uint_eq(pi.known[1].addr.port, 4000);
  wgam_mesh_del(m);
}
END_TEST

/* An announce carrying as many distinct endpoints as fit a datagram (77
 * IPv4 ones with a 44-byte key; WGAM_MSG_MAX_ENDPOINTS = 80 is the decode
 * bound, reached only with a shorter key): the store keeps five per key,
 * the newest. */
#define FIT_ENDPOINTS ((WGAM_MAX_PLAINTEXT_LEN - 4 - 8 - 44 - 8) / 18)
START_TEST(gossip_store_bound) {
  wgam_tstamp ts = 100 * WGAM_SECONDS;
  /* Our clock within a minute of every announced time (a time further
   * ahead is taken as ours, see clock_slack). */
  wgam_mesh *m = mesh_new(ts, 1700000016, 0);
  uint8_t pkt[WGAM_MAX_DATAGRAM_LEN];
  wgam_addr src = A("100.64.0.3:1666");
  wgam_peer_info pi;
  size_t len, n;
  uint8_t *ann = announce_bytes((const uint8_t *)keys[1], WGAM_KEY_B64_LEN,
                                FIT_ENDPOINTS, &len);

  ck_assert_int_eq(FIT_ENDPOINTS, 77);
  n = seal(pkt, sizeof(pkt), ann, len);
  ck_assert_int_eq(wgam_mesh_read_pkt(m, &src, pkt, n, ts), 0);
  ck_assert_int_eq(wgam_mesh_get_peer_info(m, 0, &pi), 0);
  ck_assert_uint_eq(pi.nknown, WGAM_MAX_ENDPOINTS);
  /* newest first: times 1700000000 + 76, 75, ... */
  ck_assert_uint_eq(pi.known[0].time, 1700000000 + FIT_ENDPOINTS - 1);
  ck_assert_uint_eq(pi.known[4].time, 1700000000 + FIT_ENDPOINTS - 5);
  {
    wgam_addr eps[WGAM_MAX_ENDPOINTS + 1];
    uint8_t kb[WGAM_KEY_LEN];

    for (int i = 0; i <= WGAM_MAX_ENDPOINTS; i++)
      eps[i] = A("198.51.100.77:1");
    wgam_key_from_base64(kb, keys[1], WGAM_KEY_B64_LEN);
    ck_assert_int_eq(
        wgam_mesh_set_peer_endpoints(m, kb, eps, WGAM_MAX_ENDPOINTS + 1, ts),
        WGAM_ERR_INVALID_ARGUMENT);
  }
  free(ann);
  wgam_mesh_del(m);
}
END_TEST

/*
 * B's LanBroadcast, captured and replayed from another address X. The
 * protocol cannot tell (it has no notion of the sender's address), so the
 * engine takes X as B's LAN endpoint and tries it; what must hold: B's
 * working endpoint comes back within one handshake window, the LAN endpoint
 * is not tried again for backoff_max (120 s) however often the replay
 * comes, and B is never reported disconnected.
 */
START_TEST(lanbroadcast_replayed_from_another_address) {
  uint64_t unix0 = 1700000000;
  wgam_tstamp ts = 100 * WGAM_SECONDS;
  wgam_mesh *m = mesh_new(ts, unix0, 0);
  uint8_t plain[4 + 8 + 44 + 2], pkt[WGAM_MAX_DATAGRAM_LEN];
  wgam_addr x = A("192.168.1.66:1666"), ep;
  wgam_peer_info pi;
  size_t n;
  int switches = 0;

  drain_pkts(m, ts);
  b_endpoint_updates(m, &ep);
  ck_assert_int_eq(wgam_mesh_get_peer_info(m, 0, &pi), 0);
  ck_assert_int_eq(pi.connected, 1);

  put_u32(plain, WGAM_MSG_LAN_BROADCAST);
  put_u64(plain + 4, 44);
  memcpy(plain + 12, keys[1], 44);
  plain[56] = 0x6c; /* 51820 */
  plain[57] = 0xca;
  n = seal(pkt, sizeof(pkt), plain, sizeof(plain));
  ck_assert_int_eq(wgam_mesh_read_pkt(m, &x, pkt, n, ts), 0);
  ck_assert_int_eq(wgam_mesh_get_peer_info(m, 0, &pi), 0);
  ck_assert(addr_is(&pi.lan_endpoint, "192.168.1.66:51820"));
  ck_assert_int_eq(b_endpoint_updates(m, &ep), 1);
  ck_assert(addr_is(&ep, "192.168.1.66:51820"));

  /* Every second for 5 minutes: the replay again (same bytes, same
   * address), the device read (WireGuard roams B back to its real
   * endpoint as B's packets keep coming from there), the timers. */
  for (int s = 1; s <= 300; s++) {
    wgam_tstamp t = ts + (wgam_tstamp)s * WGAM_SECONDS;

    ck_assert_int_eq(wgam_mesh_read_pkt(m, &x, pkt, n, t), 0);
    observe(m, "198.51.100.2:51820", t, unix0 + (uint64_t)s);
    if (t >= wgam_mesh_get_expiry(m))
      ck_assert_int_eq(wgam_mesh_handle_expiry(m, t), 0);
    drain_pkts(m, t);
    if (b_endpoint_updates(m, &ep)) {
      if (addr_is(&ep, "192.168.1.66:51820"))
        switches++;
      else
        ck_assert(addr_is(&ep, "198.51.100.2:51820"));
    }
    ck_assert_int_eq(wgam_mesh_get_peer_info(m, 0, &pi), 0);
    ck_assert_int_eq(pi.connected, 1);
    if (s == 8) /* one try window (6 s) and a device read later */
      ck_assert(addr_is(&ep, "198.51.100.2:51820"));
  }
  /* At most one more LAN try per backoff_max (120 s) in 300 s. */
  ck_assert_int_le(switches, 2);
  wgam_mesh_del(m);
}
END_TEST

/* A device read before its private key was set (wireguard-go and kernel
 * interfaces are created first, keyed a moment later) gets no peer changes:
 * which entry is ours is unknown, and adding it would put ourselves on the
 * device. Once the key is there, the two others are added, not us. */
START_TEST(device_without_key_left_alone) {
  wgam_peer_config pc[NKEYS];
  wgam_peer_update upd;
  wgam_device dev;
  wgam_settings s;
  wgam_mesh *m;
  int added[NKEYS] = {0};

  settings_init(&s);
  ck_assert_int_eq(wgam_mesh_new(&m, &s, 0), 0);
  peer_cfg(&pc[0], 0, "100.64.0.1");
  peer_cfg(&pc[1], 1, "100.64.0.2");
  peer_cfg(&pc[2], 2, "100.64.0.3");
  pc[1].endpoint = A("198.51.100.2:51820");
  ck_assert_int_eq(wgam_mesh_set_peers(m, pc, NKEYS, 0), 0);

  memset(&dev, 0, sizeof(dev));
  dev.listen_port = 40249;
  for (int k = 0; k < 3; k++) {
    wgam_tstamp ts = (wgam_tstamp)k * WGAM_SECONDS;

    ck_assert_int_eq(wgam_mesh_observe_device(m, &dev, ts, 1700000000 + k), 0);
    drain_pkts(m, ts);
    ck_assert_int_eq(wgam_mesh_next_peer_update(m, &upd), 0);
  }

  memcpy(dev.pubkey, pc[0].pubkey, WGAM_KEY_LEN);
  dev.has_pubkey = 1;
  dev.listen_port = 51820;
  ck_assert_int_eq(
      wgam_mesh_observe_device(m, &dev, 3 * WGAM_SECONDS, 1700000003), 0);
  while (wgam_mesh_next_peer_update(m, &upd) == 1) {
    int k;

    for (k = 0; k < NKEYS; k++)
      if (memcmp(upd.pubkey, pc[k].pubkey, WGAM_KEY_LEN) == 0)
        break;
    ck_assert_int_lt(k, NKEYS);
    ck_assert_int_ne(k, 0); /* never ourselves */
    if (!(upd.flags & WGAM_PEER_REMOVE_ME))
      added[k]++;
  }
  ck_assert_int_ge(added[1], 1);
  ck_assert_int_ge(added[2], 1);
  wgam_mesh_del(m);
}
END_TEST

static Suite *suite(void) {
  Suite *s = suite_create("hardening");
  TCase *tc = tcase_create("bad-input");

  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, announce_10000_endpoints);
  tcase_add_test(tc, announce_1mb_pubkey);
  tcase_add_test(tc, state_file_oversized_entries);
  tcase_add_test(tc, duplicate_peers);
  tcase_add_test(tc, max_peers_bound);
  tcase_add_test(tc, max_pending_bound);
  tcase_add_test(tc, queue_shrinks_after_burst);
  tcase_add_test(tc, rejected_datagrams_change_nothing);
  tcase_add_test(tc, gossip_store_bound);
  tcase_add_test(tc, future_times_bounded);
  tcase_add_test(tc, lanbroadcast_replayed_from_another_address);
  tcase_add_test(tc, device_without_key_left_alone);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) {
  SRunner *sr = srunner_create(suite());
  int failed;

  srunner_run_all(sr, CK_NORMAL);
  failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed ? 1 : 0;
}
