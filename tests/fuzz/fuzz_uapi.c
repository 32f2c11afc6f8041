/* SPDX-License-Identifier: MIT */
/*
 * The UAPI reply parser (the answer of wireguard-go or boringtun to "get=1"
 * and "set=1"), then the device it produced fed to an engine, as the daemon
 * does with every read.
 */
#include <errno.h>
#include <string.h>

#include "fuzz_common.h"
#include "log.h"
#include "wg.h"
#include "wg_uapi.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  struct wg_dev d;
  int rc;

  log_level = -1;
  rc = wg_uapi_parse_errno((const char *)data, size);
  FZ_ASSERT(rc <= 0);

  wg_dev_init(&d);
  rc = wg_uapi_parse_get((const char *)data, size, &d);
  FZ_ASSERT(rc <= 0);
  if (rc == 0) {
    wgam_mesh *m;

    FZ_ASSERT(d.dev.npeers == 0 || d.dev.peers);
    for (size_t i = 0; i < d.dev.npeers; i++) {
      const wgam_device_peer *p = &d.dev.peers[i];

      FZ_ASSERT(p->nallowedips == 0 || p->allowedips);
      for (size_t k = 0; k < p->nallowedips; k++)
        FZ_ASSERT(p->allowedips[k].prefixlen <=
                  (p->allowedips[k].addr.family == WGAM_AF_INET ? 32 : 128));
      FZ_ASSERT(p->endpoint.family == WGAM_AF_NONE ||
                p->endpoint.family == WGAM_AF_INET ||
                p->endpoint.family == WGAM_AF_INET6);
    }
    m = fz_mesh_new(WGAM_SECONDS, 0);
    rc = wgam_mesh_observe_device(m, &d.dev, 2 * WGAM_SECONDS, FZ_UNIX_NOW);
    FZ_ASSERT(rc == 0 || rc == WGAM_ERR_INVALID_ARGUMENT);
    fz_drain(m, 2 * WGAM_SECONDS);
    FZ_ASSERT(wgam_mesh_handle_expiry(m, 40 * WGAM_SECONDS) == 0);
    fz_drain(m, 40 * WGAM_SECONDS);
    wgam_mesh_del(m);
  }
  wg_dev_free(&d);
  return 0;
}
