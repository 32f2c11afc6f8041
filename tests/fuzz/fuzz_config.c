/* SPDX-License-Identifier: MIT */
/*
 * The JSON config loader (config_parse, as `check`, `run` and SIGHUP use
 * it) and the endpoint parser. The secret file is not read
 * (CONFIG_SKIP_SECRET): a fuzzed path could name a FIFO and block.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "fuzz_common.h"
#include "log.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  struct config_diag diag = {0};
  struct config cfg;
  wgam_addr addr;
  const char *why = NULL;
  char *s, *host = NULL;
  uint16_t port = 0;
  int rc;

  log_level = -1; /* silent */
  rc = config_parse(&cfg, "fuzz.json", (const char *)data, size,
                    CONFIG_SKIP_SECRET, &diag);
  FZ_ASSERT(rc == 0 || rc == -EINVAL || rc == -ENOMEM);
  FZ_ASSERT((rc == -EINVAL) == (diag.nerrors > 0));
  for (size_t i = 0; i < diag.nerrors; i++)
    FZ_ASSERT(!strncmp(diag.errors[i], "fuzz.json: ", 11));
  for (size_t i = 0; i < diag.nwarnings; i++)
    FZ_ASSERT(!strncmp(diag.warnings[i], "fuzz.json: ", 11));
  if (rc == 0) {
    wgam_peer_config *peers = calloc(cfg.npeers + 1, sizeof(*peers));

    FZ_ASSERT(peers);
    FZ_ASSERT(cfg.interface && cfg.interface[0]);
    FZ_ASSERT(cfg.gossip_port != 0);
    FZ_ASSERT(cfg.control_socket);
    config_to_peers(&cfg, peers);
    for (size_t i = 0; i < cfg.npeers; i++) {
      FZ_ASSERT(peers[i].address.family == WGAM_AF_INET ||
                peers[i].address.family == WGAM_AF_INET6);
      FZ_ASSERT(!cfg.peers[i].host ||
                strlen(cfg.peers[i].host) <= CONFIG_HOST_MAX);
      for (size_t j = 0; j < i; j++)
        FZ_ASSERT(memcmp(peers[i].pubkey, peers[j].pubkey, WGAM_KEY_LEN));
    }
    free(peers);
    config_free(&cfg);
  }
  config_diag_free(&diag);

  /* The same bytes as one endpoint string. */
  s = malloc(size + 1);
  FZ_ASSERT(s);
  memcpy(s, data, size);
  s[size] = '\0';
  rc = config_parse_endpoint(s, &addr, &host, &port, &why);
  FZ_ASSERT(rc == 0 || rc == -EINVAL || rc == -ENOMEM);
  if (rc == -EINVAL)
    FZ_ASSERT(why && !host);
  if (rc == 0 && host)
    FZ_ASSERT(strlen(host) <= CONFIG_HOST_MAX && port != 0);
  free(host);
  free(s);
  return 0;
}
