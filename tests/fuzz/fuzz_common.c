/* SPDX-License-Identifier: MIT */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_common.h"

const char *const fz_keys_b64[FZ_NPEERS] = {
    "Z5DddUq5GewAeS9Lndx0e6eLuENG9SOvANK2GBzGUxg=", /* ours */
    "lEFx+aA1pzIMPOhRAwFvmTJ1GL6enLup7Tt6y0PDd1k=",
    "NpGxDw7K3av+GCqvk91iGMzXatjSG08RDFN/gHLAnFM=",
    "CR5wxWBfBHY0SI1vHZ99TMxICWIZ6Ez6u9AnBAV4WUk=",
    "zqm6sutNRM2Bx6lsym+gigCbKbn28MXLLkDekDMXw50=",
    "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=",
};

uint8_t fz_key[WGAM_KEY_LEN];
wgam_addr fz_src[FZ_NSRC];

static const char *const src_str[FZ_NSRC] = {
    "100.64.0.1:1666",   "100.64.0.2:1666",      "100.64.0.3:1666",
    "[fd00::4]:1666",    "100.64.0.5:1666",      "100.64.0.6:1666",
    "192.168.1.20:1666", "192.168.1.21:999",     "198.51.100.7:1666",
    "203.0.113.9:40000", "[2001:db8::1]:1666",   "[fe80::1]:1666",
    "127.0.0.1:1666",    "255.255.255.255:1666", "0.0.0.0:0",
    "100.64.0.2:51820",
};

static int ready;

void fz_fail(const char *file, int line, const char *what) {
  fprintf(stderr, "%s:%d: invariant violated: %s\n", file, line, what);
  abort();
}

void fz_init(void) {
  if (ready)
    return;
  wgam_key_derive(fz_key, (const uint8_t *)FZ_SECRET, strlen(FZ_SECRET));
  for (size_t i = 0; i < FZ_NSRC; i++)
    if (wgam_addr_parse(&fz_src[i], src_str[i], 0) != 0)
      fz_fail(__FILE__, __LINE__, src_str[i]);
  ready = 1;
}

/* Deterministic: a fuzz input must replay the same way. */
static int fz_rand(void *user_data, uint8_t *dest, size_t destlen) {
  uint64_t *s = user_data;

  for (size_t i = 0; i < destlen; i++) {
    *s = *s * 6364136223846793005ULL + 1442695040888963407ULL;
    dest[i] = (uint8_t)(*s >> 56);
  }
  return 0;
}

/* Formats every message, as the daemon does at its most verbose. */
static void fz_log(void *user_data, int level, const char *msg) {
  (void)user_data;
  FZ_ASSERT(level >= WGAM_LOG_ERROR && level <= WGAM_LOG_TRACE);
  FZ_ASSERT(msg && strlen(msg) < 4096);
}

static uint64_t rand_state;

wgam_mesh *fz_mesh_new(wgam_tstamp ts, int connected) {
  wgam_peer_config peers[FZ_NPEERS];
  wgam_device_peer dp[FZ_NPEERS];
  wgam_cidr cidr[FZ_NPEERS];
  wgam_device dev;
  wgam_settings s;
  wgam_mesh *m;

  fz_init();
  wgam_settings_default(&s);
  s.secret = (const uint8_t *)FZ_SECRET;
  s.secretlen = strlen(FZ_SECRET);
  s.gossip_port = FZ_GOSSIP_PORT;
  s.flags = WGAM_SETTINGS_LAN_DISCOVERY | WGAM_SETTINGS_LAN_DISCOVERY_V6 |
            WGAM_SETTINGS_PERSIST;
  s.rand = fz_rand;
  s.log = fz_log;
  s.log_level = WGAM_LOG_TRACE;
  rand_state = 42;
  s.user_data = &rand_state;
  /* Small bounds, so that fuzzing reaches "full" paths. */
  s.max_pending = 128;
  if (wgam_mesh_new(&m, &s, ts) != 0)
    fz_fail(__FILE__, __LINE__, "wgam_mesh_new");

  memset(peers, 0, sizeof(peers));
  memset(dp, 0, sizeof(dp));
  for (size_t i = 0; i < FZ_NPEERS; i++) {
    wgam_key_from_base64(peers[i].pubkey, fz_keys_b64[i], WGAM_KEY_B64_LEN);
    peers[i].address = fz_src[i];
    peers[i].address.port = 0;
    memcpy(dp[i].pubkey, peers[i].pubkey, WGAM_KEY_LEN);
    cidr[i].addr = peers[i].address;
    cidr[i].prefixlen = peers[i].address.family == WGAM_AF_INET ? 32 : 128;
    dp[i].allowedips = &cidr[i];
    dp[i].nallowedips = 1;
    dp[i].persistent_keepalive = 30;
    if (connected) {
      dp[i].last_handshake = FZ_UNIX_NOW - 10 * i;
      dp[i].rx_bytes = 1000 * i;
    }
  }
  /* One configured endpoint, one public and one LAN endpoint on the
   * device. */
  wgam_addr_parse(&peers[2].endpoint, "198.51.100.2:51820", 0);
  wgam_addr_parse(&dp[1].endpoint, "203.0.113.1:51820", 0);
  wgam_addr_parse(&dp[3].endpoint, "192.168.1.23:51820", 0);
  if (wgam_mesh_set_peers(m, peers, FZ_NPEERS, ts) != 0)
    fz_fail(__FILE__, __LINE__, "wgam_mesh_set_peers");

  memset(&dev, 0, sizeof(dev));
  memcpy(dev.pubkey, peers[0].pubkey, WGAM_KEY_LEN);
  dev.has_pubkey = 1;
  dev.listen_port = 51820;
  dev.peers = dp + 1;
  dev.npeers = FZ_NPEERS - 1;
  if (wgam_mesh_observe_device(m, &dev, ts, FZ_UNIX_NOW) != 0)
    fz_fail(__FILE__, __LINE__, "wgam_mesh_observe_device");
  return m;
}

static int count_entry(const uint8_t *pubkey, size_t pubkeylen,
                       const wgam_endpoint *eps, size_t neps, void *user_data) {
  size_t *n = user_data;

  FZ_ASSERT(pubkey && pubkeylen == WGAM_KEY_B64_LEN);
  FZ_ASSERT(neps <= WGAM_MAX_ENDPOINTS);
  for (size_t i = 0; i < neps; i++)
    FZ_ASSERT(wgam_addr_is_valid_endpoint(&eps[i].addr));
  (*n)++;
  return 0;
}

void fz_drain(wgam_mesh *m, wgam_tstamp ts) {
  uint8_t pkt[WGAM_MAX_DATAGRAM_LEN], plain[WGAM_MAX_PLAINTEXT_LEN];
  wgam_peer_update upd;
  wgam_stats st;
  wgam_addr dst;
  wgam_ssize n, len;
  size_t count = 0, npeers;
  uint8_t *state;

  /* A buffer below a datagram is refused without dequeuing. */
  n = wgam_mesh_write_pkt(m, &dst, pkt, 100, ts);
  FZ_ASSERT(n == WGAM_ERR_NOBUF || n == 0);
  while ((n = wgam_mesh_write_pkt(m, &dst, pkt, sizeof(pkt), ts)) > 0) {
    wgam_msg msg;

    FZ_ASSERT(n <= WGAM_MAX_DATAGRAM_LEN);
    FZ_ASSERT(dst.family == WGAM_AF_INET || dst.family == WGAM_AF_INET6);
    len = wgam_pkt_open(plain, sizeof(plain), fz_key, pkt, (size_t)n);
    FZ_ASSERT(len >= 0);
    FZ_ASSERT(wgam_msg_decode(&msg, plain, (size_t)len) == len);
  }
  FZ_ASSERT(n == 0);
  while (wgam_mesh_next_peer_update(m, &upd) == 1) {
    if (upd.flags & WGAM_PEER_HAS_ENDPOINT)
      FZ_ASSERT(wgam_addr_is_valid_endpoint(&upd.endpoint));
    if (upd.flags & WGAM_PEER_REPLACE_ALLOWEDIPS)
      FZ_ASSERT(upd.nallowedips == 0 || upd.allowedips[0].prefixlen == 32 ||
                upd.allowedips[0].prefixlen == 128);
  }

  len = wgam_mesh_write_state(m, NULL, 0);
  FZ_ASSERT(len >= 8);
  state = malloc((size_t)len);
  FZ_ASSERT(state);
  FZ_ASSERT(wgam_mesh_write_state(m, state, (size_t)len - 1) == WGAM_ERR_NOBUF);
  FZ_ASSERT(wgam_mesh_write_state(m, state, (size_t)len) == len);
  /* What the engine writes, it (and the original) must read back. */
  FZ_ASSERT(wgam_state_parse(state, (size_t)len, count_entry, &count) == 0);
  free(state);

  npeers = wgam_mesh_get_npeers(m);
  FZ_ASSERT(npeers <= FZ_NPEERS);
  for (size_t i = 0; i < npeers; i++) {
    wgam_peer_info pi;

    FZ_ASSERT(wgam_mesh_get_peer_info(m, i, &pi) == 0);
    FZ_ASSERT(pi.nknown <= WGAM_MAX_ENDPOINTS);
    FZ_ASSERT(pi.state >= WGAM_PEER_IDLE && pi.state <= WGAM_PEER_CONNECTED);
  }
  FZ_ASSERT(wgam_mesh_get_peer_info(m, npeers, &(wgam_peer_info){0}) ==
            WGAM_ERR_INVALID_ARGUMENT);
  wgam_mesh_get_stats(m, &st);
  FZ_ASSERT(st.npeers_connected <= npeers);
}
