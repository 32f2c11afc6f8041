/* SPDX-License-Identifier: MIT */
/*
 * Benchmark (not a test): applying 1,000 peers to a wireguard-go device
 * through our UAPI backend (one set=1 transaction) versus 1,000 runs of
 * `wg set IF peer ...`, which is what the original wgautomesh did every
 * cycle; the same for moving every peer's endpoint (the peers exist); and
 * reading the device with wg_get() versus one `wg show IF dump` process.
 *
 *   tests/netns/wg/netns_wg.sh build/tests/bench/bench_uapi_vs_wgset [ROUNDS]
 */
#include <errno.h>
#include <fcntl.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>

#include <sodium.h>

#include "wg.h"
#include "wg_netns_common.h"

#define NPEERS 1000

extern char **environ;

static double now_ms(void) {
  struct timespec ts;

  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* Runs argv with stdout to /dev/null, as a daemon would. */
static int run(char *const argv[]) {
  posix_spawn_file_actions_t fa;
  pid_t pid;
  int st, ret;

  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
  ret = posix_spawnp(&pid, argv[0], &fa, NULL, argv, environ);
  posix_spawn_file_actions_destroy(&fa);
  if (ret != 0)
    return -1;
  if (waitpid(pid, &st, 0) < 0 || !WIFEXITED(st) || WEXITSTATUS(st))
    return -1;
  return 0;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;

  return x < y ? -1 : x > y;
}

static double median(double *v, int n) {
  qsort(v, (size_t)n, sizeof(*v), cmp_double);
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static int count_peers(wg_backend *b, struct wg_dev *dev) {
  return wg_get(b, dev) == 0 ? (int)dev->dev.npeers : -1;
}

/* 1,000 `wg set IF peer K endpoint E [persistent-keepalive N allowed-ips A]`
 * processes; with @full, the keepalive and allowed IP too. */
static int wg_set_each(const char *ifname, const wgam_peer_update *u,
                       int full) {
  int i;

  for (i = 0; i < NPEERS; i++) {
    char key[WGAM_KEY_B64_LEN + 1], ep[80], ka[8], aip[64];
    char *args[] = {"wg", "set", (char *)ifname, "peer", key,  "endpoint",
                    ep,   NULL,  NULL,           NULL,   NULL, NULL};

    sodium_bin2base64(key, sizeof(key), u[i].pubkey, WGAM_KEY_LEN,
                      sodium_base64_VARIANT_ORIGINAL);
    fmt_endpoint(ep, sizeof(ep), &u[i].endpoint);
    if (full) {
      snprintf(ka, sizeof(ka), "%u", u[i].persistent_keepalive);
      fmt_cidr(aip, sizeof(aip), &u[i].allowedips[0]);
      args[7] = "persistent-keepalive";
      args[8] = ka;
      args[9] = "allowed-ips";
      args[10] = aip;
    }
    if (run(args) < 0)
      return -1;
  }
  return 0;
}

/* New endpoints for every peer (a new port), as a cycle of roaming would. */
static void move_endpoints(wgam_peer_update *u, int full) {
  int i;

  for (i = 0; i < NPEERS; i++) {
    u[i].endpoint.port = (uint16_t)(u[i].endpoint.port + 1);
    u[i].flags = full ? WGAM_PEER_REPLACE_ALLOWEDIPS | WGAM_PEER_HAS_ENDPOINT |
                            WGAM_PEER_HAS_KEEPALIVE
                      : WGAM_PEER_HAS_ENDPOINT;
  }
}

static int remove_all(wg_backend *b, wgam_peer_update *u, struct wg_dev *dev) {
  int i;

  for (i = 0; i < NPEERS; i++)
    u[i].flags = WGAM_PEER_REMOVE_ME;
  if (wg_set(b, u, NPEERS) < 0 || count_peers(b, dev) != 0)
    return -1;
  return 0;
}

/* Every peer of @u is on the device with its endpoint. */
static int endpoints_applied(const struct wg_dev *dev,
                             const wgam_peer_update *u) {
  size_t i, j;

  if (dev->dev.npeers != NPEERS)
    return 0;
  for (i = 0; i < NPEERS; i++) {
    for (j = 0; j < dev->dev.npeers; j++)
      if (!memcmp(dev->dev.peers[j].pubkey, u[i].pubkey, WGAM_KEY_LEN))
        break;
    if (j == dev->dev.npeers ||
        dev->dev.peers[j].endpoint.port != u[i].endpoint.port ||
        memcmp(dev->dev.peers[j].endpoint.ip, u[i].endpoint.ip, 16))
      return 0;
  }
  return 1;
}

enum { T_ADD_UAPI, T_ADD_WG, T_UPD_UAPI, T_UPD_WG, T_GET, T_DUMP, T_N };

int main(int argc, char **argv) {
  static const char *names[T_N] = {"add, uapi backend (1 transaction)",
                                   "add, 1000 x `wg set`",
                                   "endpoint update, uapi backend",
                                   "endpoint update, 1000 x `wg set`",
                                   "read, wg_get()",
                                   "read, `wg show dump` process"};
  wgam_peer_update *u = calloc(NPEERS, sizeof(*u));
  int rounds = argc > 2 ? atoi(argv[2]) : 3, r, i, k, ret;
  double *t[T_N], med[T_N];
  const char *ifname;
  struct wg_dev dev;
  wg_backend *b;

  if (argc < 2 || rounds < 1 || !u) {
    fprintf(stderr, "usage: %s IFNAME [ROUNDS]\n", argv[0]);
    return 2;
  }
  ifname = argv[1];
  if (sodium_init() < 0)
    return 1;
  for (k = 0; k < T_N; k++)
    t[k] = calloc((size_t)rounds, sizeof(double));
  wg_dev_init(&dev);
  ret = wg_open(&b, ifname);
  if (ret < 0) {
    fprintf(stderr, "wg_open(%s): %s\n", ifname, strerror(-ret));
    return 1;
  }
  for (r = 0; r < rounds; r++) {
    char cmdbuf[32];
    char *dump_argv[] = {"wg", "show", cmdbuf, "dump", NULL};
    double t0;

    snprintf(cmdbuf, sizeof(cmdbuf), "%s", ifname);

    /* Ours: add all peers in one transaction, then move every endpoint. */
    for (i = 0; i < NPEERS; i++)
      big_update(&u[i], (unsigned)i);
    t0 = now_ms();
    ret = wg_set(b, u, NPEERS);
    t[T_ADD_UAPI][r] = now_ms() - t0;
    if (ret < 0 || count_peers(b, &dev) != NPEERS)
      goto fail;
    move_endpoints(u, 0);
    t0 = now_ms();
    ret = wg_set(b, u, NPEERS);
    t[T_UPD_UAPI][r] = now_ms() - t0;
    if (ret < 0)
      goto fail;

    /* Reads of the full device. */
    t0 = now_ms();
    ret = wg_get(b, &dev);
    t[T_GET][r] = now_ms() - t0;
    if (ret < 0 || !endpoints_applied(&dev, u))
      goto fail;
    t0 = now_ms();
    if (run(dump_argv) < 0)
      goto fail;
    t[T_DUMP][r] = now_ms() - t0;
    if (remove_all(b, u, &dev) < 0)
      goto fail;

    /* The original: one `wg set` process per peer. */
    for (i = 0; i < NPEERS; i++)
      big_update(&u[i], (unsigned)i);
    t0 = now_ms();
    if (wg_set_each(ifname, u, 1) < 0)
      goto fail;
    t[T_ADD_WG][r] = now_ms() - t0;
    if (count_peers(b, &dev) != NPEERS)
      goto fail;
    move_endpoints(u, 0);
    t0 = now_ms();
    if (wg_set_each(ifname, u, 0) < 0)
      goto fail;
    t[T_UPD_WG][r] = now_ms() - t0;
    if (count_peers(b, &dev) != NPEERS || !endpoints_applied(&dev, u))
      goto fail;
    if (remove_all(b, u, &dev) < 0)
      goto fail;

    printf("round %d:", r + 1);
    for (k = 0; k < T_N; k++)
      printf(" %.1f", t[k][r]);
    printf(" ms\n");
    fflush(stdout);
  }
  for (k = 0; k < T_N; k++)
    med[k] = median(t[k], rounds);
  printf("%d peers on wireguard-go, median of %d rounds:\n", NPEERS, rounds);
  for (k = 0; k < T_N; k++)
    printf("  %-36s %9.2f ms\n", names[k], med[k]);
  printf("ratio add:             %.1fx faster\n",
         med[T_ADD_WG] / med[T_ADD_UAPI]);
  printf("ratio endpoint update: %.1fx faster\n",
         med[T_UPD_WG] / med[T_UPD_UAPI]);
  printf("ratio read:            %.1fx faster\n", med[T_DUMP] / med[T_GET]);
  wg_close(b);
  wg_dev_free(&dev);
  for (k = 0; k < T_N; k++)
    free(t[k]);
  free(u);
  return 0;
fail:
  fprintf(stderr, "benchmark step failed in round %d (ret %d)\n", r + 1, ret);
  return 1;
}
