/* SPDX-License-Identifier: MIT */
/*
 * State files: wgam_state_parse (all-or-nothing: a malformed file gives no
 * callback), wgam_mesh_load_state into an engine of a six-node mesh, the
 * state file that engine writes back (it must parse), and the JSON of
 * `wgautomesh decode --state`.
 */
#include <string.h>

#include <cjson/cJSON.h>

#include "decode.h"
#include "fuzz_common.h"
#include "jsonw.h"

struct count {
  size_t entries, endpoints;
};

static int on_entry(const uint8_t *pubkey, size_t pubkeylen,
                    const wgam_endpoint *eps, size_t neps, void *user_data) {
  struct count *c = user_data;

  FZ_ASSERT(pubkey || pubkeylen == 0);
  FZ_ASSERT(neps <= WGAM_STATE_MAX_ENDPOINTS);
  for (size_t i = 0; i < neps; i++)
    FZ_ASSERT(eps[i].addr.family == WGAM_AF_INET ||
              eps[i].addr.family == WGAM_AF_INET6);
  c->entries++;
  c->endpoints += neps;
  return 0;
}

static int stop_at_first(const uint8_t *pubkey, size_t pubkeylen,
                         const wgam_endpoint *eps, size_t neps,
                         void *user_data) {
  (void)pubkey;
  (void)pubkeylen;
  (void)eps;
  (void)neps;
  (void)user_data;
  return 7;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  struct count c = {0, 0};
  wgam_tstamp ts = 10 * WGAM_SECONDS;
  struct sbuf b;
  wgam_mesh *m;
  cJSON *j;
  int rc, rc2;

  fz_init();
  rc = wgam_state_parse(data, size, on_entry, &c);
  FZ_ASSERT(rc == 0 || rc == WGAM_ERR_STATE_DECODE);
  if (rc)
    FZ_ASSERT(c.entries == 0); /* validated before the first callback */
  rc2 = wgam_state_parse(data, size, stop_at_first, NULL);
  FZ_ASSERT(rc2 == (rc ? rc : c.entries ? 7 : 0));

  /* A malformed file loads nothing: one long-lived engine checks that
   * cheaply; a valid one goes into a fresh engine. */
  if (rc) {
    static wgam_mesh *spare;

    if (!spare)
      spare = fz_mesh_new(ts, 1);
    FZ_ASSERT(wgam_mesh_load_state(spare, data, size, ts) ==
              WGAM_ERR_STATE_DECODE);
    FZ_ASSERT(wgam_mesh_get_wants(spare) == 0 ||
              wgam_mesh_get_wants(spare) == WGAM_WANT_DEVICE);
  } else {
    m = fz_mesh_new(ts, size && (data[0] & 1));
    FZ_ASSERT(wgam_mesh_load_state(m, data, size, ts) == 0);
    fz_drain(m, ts);
    ts += 20 * WGAM_SECONDS;
    FZ_ASSERT(wgam_mesh_handle_expiry(m, ts) == 0);
    fz_drain(m, ts);
    wgam_mesh_del(m);
  }

  sb_init(&b);
  rc2 = decode_state_json(&b, data, size);
  FZ_ASSERT((rc2 == 0) == (rc == 0));
  FZ_ASSERT(!b.oom && b.len >= 2 && sb_cstr(&b)[0] == '{');
  j = cJSON_ParseWithLength(b.p, b.len);
  FZ_ASSERT(j && cJSON_IsObject(j));
  if (!rc)
    FZ_ASSERT((size_t)cJSON_GetArraySize(j) <= c.entries);
  cJSON_Delete(j);
  sb_free(&b);
  return 0;
}
