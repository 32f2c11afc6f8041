/* SPDX-License-Identifier: MIT */
/*
 * Datagrams: wgam_pkt_open, wgam_msg_decode (with an encode round trip as
 * oracle), the `decode` command's JSON, and wgam_mesh_read_pkt on an engine
 * inside a six-node mesh.
 *
 * Input: the first byte picks a mode.
 *   mode 0: the rest is a datagram as received (mostly fails to open: that
 *           path must be cheap and exact);
 *   mode 1: the rest is a plaintext; it is decoded, then sealed with the
 *           mesh key and fed to the engine, so fuzzing reaches the merge,
 *           LAN and request logic;
 *   mode 2: the rest is a script of records [op][len][bytes] run against
 *           one engine: feed sealed or raw datagrams from chosen sources,
 *           advance time, re-read the device, drain the outputs.
 */
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "decode.h"
#include "fuzz_common.h"
#include "jsonw.h"

static void check_decode(const uint8_t *plain, size_t len) {
  uint8_t re[WGAM_MAX_DATAGRAM_LEN * 2];
  wgam_msg *msg = malloc(sizeof(*msg)), *msg2 = malloc(sizeof(*msg2));
  wgam_ssize n, e;

  FZ_ASSERT(msg && msg2);
  n = wgam_msg_decode(msg, plain, len);
  FZ_ASSERT(n == WGAM_ERR_PKT_DECODE || (n > 0 && (size_t)n <= len));
  if (n > 0) {
    FZ_ASSERT(msg->type < WGAM_MSG_TYPE_COUNT);
    FZ_ASSERT(msg->nendpoints <= WGAM_MSG_MAX_ENDPOINTS);
    if (msg->pubkeylen)
      FZ_ASSERT(msg->pubkey >= plain &&
                msg->pubkey + msg->pubkeylen <= plain + len);
    /* bincode is canonical: what decodes re-encodes to the same bytes. */
    e = wgam_msg_encode(re, sizeof(re), msg);
    if (e == WGAM_ERR_INVALID_ARGUMENT && n > WGAM_MAX_PLAINTEXT_LEN) {
      /* Longer than any datagram's plaintext (only reachable when the
       * decoder is called directly): the encoder refuses to make it. */
      free(msg);
      free(msg2);
      return;
    }
    FZ_ASSERT(e == n);
    FZ_ASSERT(memcmp(re, plain, (size_t)n) == 0);
    FZ_ASSERT(wgam_msg_decode(msg2, re, (size_t)e) == e);
    /* Too small a buffer is refused, never overrun. */
    FZ_ASSERT(wgam_msg_encode(re, (size_t)n - 1, msg) == WGAM_ERR_NOBUF);
  }
  free(msg);
  free(msg2);
}

static void check_json(const uint8_t *pkt, size_t len) {
  struct sbuf b;
  cJSON *j;

  sb_init(&b);
  decode_pkt_json(&b, fz_key, pkt, len);
  FZ_ASSERT(!b.oom && b.len > 2 && sb_cstr(&b)[0] == '{');
  /* The output is one valid JSON object. */
  j = cJSON_ParseWithLength(b.p, b.len);
  FZ_ASSERT(j && cJSON_IsObject(j));
  cJSON_Delete(j);
  sb_free(&b);
}

static size_t seal(uint8_t *out, const uint8_t *plain, size_t len,
                   uint8_t noncebyte) {
  uint8_t nonce[WGAM_NONCE_LEN];
  wgam_ssize n;

  memset(nonce, noncebyte, sizeof(nonce));
  if (len > WGAM_MAX_PLAINTEXT_LEN)
    len = WGAM_MAX_PLAINTEXT_LEN;
  n = wgam_pkt_seal(out, WGAM_MAX_DATAGRAM_LEN, fz_key, nonce, plain, len);
  FZ_ASSERT(n == (wgam_ssize)(len + WGAM_NONCE_LEN + WGAM_TAG_LEN));
  return (size_t)n;
}

static void feed(wgam_mesh *m, unsigned srcidx, const uint8_t *pkt, size_t len,
                 wgam_tstamp ts) {
  wgam_stats before, after;
  int rc;
  uint64_t rej0 = 0, rej1 = 0, in0 = 0, in1 = 0;

  wgam_mesh_get_stats(m, &before);
  rc = wgam_mesh_read_pkt(m, &fz_src[srcidx % FZ_NSRC], pkt, len, ts);
  FZ_ASSERT(rc == 0 || rc == WGAM_ERR_PKT_LENGTH || rc == WGAM_ERR_PKT_AUTH ||
            rc == WGAM_ERR_PKT_DECODE || rc == WGAM_ERR_PKT_IGNORED);
  wgam_mesh_get_stats(m, &after);
  for (int i = 0; i < WGAM_REJECT_COUNT; i++) {
    rej0 += before.rejected[i];
    rej1 += after.rejected[i];
  }
  for (int i = 0; i < WGAM_MSG_TYPE_COUNT; i++) {
    in0 += before.pkts_in[i];
    in1 += after.pkts_in[i];
  }
  /* Every datagram is accounted for: rejected, or counted in. */
  if (rc == WGAM_ERR_PKT_LENGTH || rc == WGAM_ERR_PKT_AUTH ||
      rc == WGAM_ERR_PKT_DECODE)
    FZ_ASSERT(rej1 > rej0 && in1 == in0);
  else
    FZ_ASSERT(in1 == in0 + 1);
}

static void run_script(const uint8_t *d, size_t n) {
  wgam_tstamp ts = 1000 * WGAM_SECONDS;
  wgam_mesh *m = fz_mesh_new(ts, n && (d[0] & 1));
  uint8_t pkt[WGAM_MAX_DATAGRAM_LEN + 64];
  size_t i = n ? 1 : 0;

  while (i + 2 <= n) {
    uint8_t op = d[i], len = d[i + 1];
    const uint8_t *arg = d + i + 2;
    size_t alen = n - i - 2 < len ? n - i - 2 : len;

    i += 2 + alen;
    switch (op & 7) {
    case 0: /* sealed plaintext from source op>>3 */
    case 1:
      feed(m, op >> 3, pkt, seal(pkt, arg, alen, op), ts);
      break;
    case 2: /* raw datagram */
      feed(m, op >> 3, arg, alen, ts);
      break;
    case 3: { /* time passes: arg[0] seconds, then the timers */
      ts += (wgam_tstamp)(alen ? arg[0] : 1) * WGAM_SECONDS +
            (alen > 1 ? arg[1] : 0) * WGAM_MILLISECONDS;
      if (ts >= wgam_mesh_get_expiry(m))
        FZ_ASSERT(wgam_mesh_handle_expiry(m, ts) == 0);
      break;
    }
    case 4: { /* device read: arg bytes set handshakes and endpoints */
      wgam_device_peer dp[FZ_NPEERS - 1];
      wgam_device dev;

      memset(&dev, 0, sizeof(dev));
      memset(dp, 0, sizeof(dp));
      wgam_key_from_base64(dev.pubkey, fz_keys_b64[0], WGAM_KEY_B64_LEN);
      dev.has_pubkey = !(op & 8);
      dev.listen_port = 51820;
      for (size_t k = 0; k < FZ_NPEERS - 1; k++) {
        uint8_t b = k < alen ? arg[k] : 0;

        wgam_key_from_base64(dp[k].pubkey, fz_keys_b64[k + 1],
                             WGAM_KEY_B64_LEN);
        dp[k].last_handshake =
            b & 0x80 ? 0 : FZ_UNIX_NOW + ts / WGAM_SECONDS - (b & 0x7f) * 5;
        dp[k].endpoint = fz_src[(b >> 3) % FZ_NSRC];
        if (!wgam_addr_is_valid_endpoint(&dp[k].endpoint))
          memset(&dp[k].endpoint, 0, sizeof(dp[k].endpoint));
        dp[k].rx_bytes = ts / WGAM_MILLISECONDS * (b & 1);
      }
      dev.peers = dp;
      dev.npeers = (op >> 4) % FZ_NPEERS;
      FZ_ASSERT(wgam_mesh_observe_device(m, &dev, ts,
                                         FZ_UNIX_NOW + ts / WGAM_SECONDS) == 0);
      break;
    }
    case 5: /* outputs */
      fz_drain(m, ts);
      break;
    case 6: { /* an external endpoint appears or goes */
      wgam_addr a = fz_src[(op >> 3) % FZ_NSRC];
      int rc = wgam_mesh_set_external_endpoints(m, &a, alen ? 1 : 0, ts);

      FZ_ASSERT(rc == 0 || rc == WGAM_ERR_INVALID_ARGUMENT);
      break;
    }
    default: { /* state file fragment */
      int rc = wgam_mesh_load_state(m, arg, alen, ts);

      FZ_ASSERT(rc == 0 || rc == WGAM_ERR_STATE_DECODE);
      break;
    }
    }
  }
  fz_drain(m, ts);
  wgam_mesh_del(m);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  uint8_t plain[WGAM_MAX_DATAGRAM_LEN], pkt[WGAM_MAX_DATAGRAM_LEN];
  wgam_mesh *m;
  wgam_ssize n;

  fz_init();
  if (size < 1)
    return 0;
  switch (data[0] % 3) {
  case 0:
    n = wgam_pkt_open(plain, sizeof(plain), fz_key, data + 1, size - 1);
    FZ_ASSERT(n >= 0 || n == WGAM_ERR_PKT_LENGTH || n == WGAM_ERR_PKT_AUTH);
    if (n >= 0)
      check_decode(plain, (size_t)n);
    check_json(data + 1, size - 1);
    if (n < 0) {
      /* A rejected datagram changes nothing but counters: one long-lived
       * engine shows that (and keeps this common path fast). */
      static wgam_mesh *spare;
      uint8_t out[WGAM_MAX_DATAGRAM_LEN];
      wgam_addr dst;

      if (!spare)
        spare = fz_mesh_new(WGAM_SECONDS, 1);
      while (wgam_mesh_write_pkt(spare, &dst, out, sizeof(out), WGAM_SECONDS) >
             0)
        ;
      feed(spare, data[0] >> 2, data + 1, size - 1, 2 * WGAM_SECONDS);
      FZ_ASSERT(wgam_mesh_write_pkt(spare, &dst, out, sizeof(out),
                                    WGAM_SECONDS) == 0);
      break;
    }
    m = fz_mesh_new(WGAM_SECONDS, 1);
    feed(m, data[0] >> 2, data + 1, size - 1, 2 * WGAM_SECONDS);
    fz_drain(m, 2 * WGAM_SECONDS);
    wgam_mesh_del(m);
    break;
  case 1:
    check_decode(data + 1, size - 1);
    m = fz_mesh_new(WGAM_SECONDS, data[0] & 4);
    n = (wgam_ssize)seal(pkt, data + 1, size - 1, data[0]);
    feed(m, data[0] >> 3, pkt, (size_t)n, 2 * WGAM_SECONDS);
    check_json(pkt, (size_t)n);
    fz_drain(m, 2 * WGAM_SECONDS);
    wgam_mesh_del(m);
    break;
  default:
    run_script(data + 1, size - 1);
    break;
  }
  return 0;
}
