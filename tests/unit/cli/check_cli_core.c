/* SPDX-License-Identifier: MIT */
/*
 * The daemon core modules without a daemon: the JSON writer, the state file
 * on disk, sd_notify, the control socket (server and client in one
 * process), status rendering, and the resolver thread.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "control.h"
#include "config.h"
#include "decode.h"
#include "forward.h"
#include "jsonw.h"
#include "log.h"
#include "notify.h"
#include "resolve.h"
#include "state_io.h"
#include "status.h"

static char tmpdir[] = "/tmp/wgam-check-core-XXXXXX";

static void setup(void) {
  ck_assert_ptr_nonnull(mkdtemp(tmpdir));
}

static void teardown(void) {
  char cmd[600];

  snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
  ck_assert_int_eq(system(cmd), 0);
  strcpy(tmpdir, "/tmp/wgam-check-core-XXXXXX");
}

static uint64_t mono(void) {
  struct timespec ts;

  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

START_TEST(test_jsonw) {
  struct sbuf b;
  wgam_addr a = {.family = WGAM_AF_INET6, .port = 51820};

  sb_init(&b);
  jw_strn(&b, "a\"b\\c\n\x01\x7f\0z\xc3\xa9", 12);
  ck_assert_str_eq(sb_cstr(&b),
                   "\"a\\\"b\\\\c\\n\\u0001\\u007f\\u0000z\xc3\xa9\"");
  sb_free(&b);

  sb_init(&b);
  jw_u64(&b, UINT64_MAX);
  sb_putc(&b, ' ');
  a.ip[0] = 0x20;
  a.ip[1] = 0x01;
  a.ip[15] = 1;
  jw_addr(&b, &a, 1);
  sb_putc(&b, ' ');
  a.family = WGAM_AF_NONE;
  jw_addr(&b, &a, 1);
  ck_assert_str_eq(sb_cstr(&b),
                   "18446744073709551615 \"[2001::1]:51820\" null");
  ck_assert_int_eq(b.oom, 0);
  sb_free(&b);
}
END_TEST

START_TEST(test_state_io) {
  static const uint8_t data[] = {0, 0, 0, 0, 0, 0, 0, 0};
  char path[512], aside[600];
  uint8_t *got;
  size_t len;
  struct stat st;
  int fd;

  snprintf(path, sizeof(path), "%s/state", tmpdir);
  ck_assert_int_eq(state_read(path, &got, &len), -ENOENT);

  ck_assert_int_eq(state_write(path, data, sizeof(data)), 0);
  ck_assert_int_eq(stat(path, &st), 0);
  ck_assert_int_eq(st.st_mode & 0777, 0600);
  ck_assert_int_eq(state_read(path, &got, &len), 0);
  ck_assert_uint_eq(len, sizeof(data));
  ck_assert_mem_eq(got, data, len);
  free(got);

  /* Overwrite leaves no temporary file behind. */
  ck_assert_int_eq(state_write(path, (const uint8_t *)"xy", 2), 0);
  ck_assert_int_eq(state_read(path, &got, &len), 0);
  ck_assert_uint_eq(len, 2);
  free(got);
  {
    char cmd[700];

    snprintf(cmd, sizeof(cmd), "test $(ls -A '%s' | wc -l) = 1", tmpdir);
    ck_assert_int_eq(system(cmd), 0);
  }

  /* Too large is refused before reading it. */
  fd = open(path, O_WRONLY | O_TRUNC);
  ck_assert_int_ge(fd, 0);
  ck_assert_int_eq(ftruncate(fd, STATE_MAX_FILE + 1), 0);
  close(fd);
  ck_assert_int_eq(state_read(path, &got, &len), -EFBIG);

  ck_assert_int_eq(state_set_aside(path), 0);
  snprintf(aside, sizeof(aside), "%s.corrupt", path);
  ck_assert_int_eq(access(aside, F_OK), 0);
  ck_assert_int_eq(access(path, F_OK), -1);

  /* Leftovers of writes killed midway are removed, and nothing else. */
  {
    static const char *const names[] = {"state.tmp.a1B2c3", "state.tmp.zzzzzz",
                                        "state.tmp.short", "other.tmp.a1B2c3",
                                        "state.corrupt"};
    char f[600];
    size_t k;

    snprintf(path, sizeof(path), "%s/state", tmpdir);
    for (k = 0; k < sizeof(names) / sizeof(names[0]); k++) {
      snprintf(f, sizeof(f), "%s/%s", tmpdir, names[k]);
      fd = open(f, O_WRONLY | O_CREAT | O_TRUNC, 0600);
      ck_assert_int_ge(fd, 0);
      close(fd);
    }
    ck_assert_int_eq(state_clean_tmp(path), 2);
    snprintf(f, sizeof(f), "%s/state.tmp.short", tmpdir);
    ck_assert_int_eq(access(f, F_OK), 0);
    snprintf(f, sizeof(f), "%s/other.tmp.a1B2c3", tmpdir);
    ck_assert_int_eq(access(f, F_OK), 0);
    snprintf(f, sizeof(f), "%s/state.tmp.a1B2c3", tmpdir);
    ck_assert_int_eq(access(f, F_OK), -1);
  }

  /* A directory that does not exist: an error, not a crash. */
  snprintf(path, sizeof(path), "%s/no/such/dir/state", tmpdir);
  ck_assert_int_eq(state_write(path, data, sizeof(data)), -ENOENT);
}
END_TEST

START_TEST(test_notify) {
  struct sockaddr_un sun = {.sun_family = AF_UNIX};
  char buf[64], abstract[64];
  int fd;
  ssize_t n;

  unsetenv("NOTIFY_SOCKET");
  ck_assert_int_eq(notify_send("READY=1"), 0);

  /* A path socket. */
  snprintf(sun.sun_path, sizeof(sun.sun_path), "%s/notify", tmpdir);
  fd = socket(AF_UNIX, SOCK_DGRAM, 0);
  ck_assert_int_eq(bind(fd, (struct sockaddr *)&sun, sizeof(sun)), 0);
  setenv("NOTIFY_SOCKET", sun.sun_path, 1);
  ck_assert_int_eq(notify_send("READY=1"), 1);
  n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
  ck_assert_int_eq(n, 7);
  ck_assert_mem_eq(buf, "READY=1", 7);
  close(fd);

  /* An abstract socket ('@' prefix). */
  snprintf(abstract, sizeof(abstract), "@wgam-notify-%d", getpid());
  memset(&sun, 0, sizeof(sun));
  sun.sun_family = AF_UNIX;
  memcpy(sun.sun_path + 1, abstract + 1, strlen(abstract) - 1);
  fd = socket(AF_UNIX, SOCK_DGRAM, 0);
  ck_assert_int_eq(bind(fd, (struct sockaddr *)&sun,
                        (socklen_t)(offsetof(struct sockaddr_un, sun_path) +
                                    strlen(abstract))),
                   0);
  setenv("NOTIFY_SOCKET", abstract, 1);
  ck_assert_int_eq(notify_send("STOPPING=1"), 1);
  n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
  ck_assert_int_eq(n, 10);
  ck_assert_mem_eq(buf, "STOPPING=1", 10);
  close(fd);

  setenv("NOTIFY_SOCKET", "relative", 1);
  ck_assert_int_eq(notify_send("READY=1"), -EINVAL);
  unsetenv("NOTIFY_SOCKET");
}
END_TEST

/* A status model as the daemon would collect it: our node and two peers,
 * one connected over IPv4, one never seen (IPv6 mesh address). */
static void fake_status(struct status *st, struct status_peer peers[2]) {
  static const char *const keys[3] = {
      "lEFx+aA1pzIMPOhRAwFvmTJ1GL6enLup7Tt6y0PDd1k=",
      "NpGxDw7K3av+GCqvk91iGMzXatjSG08RDFN/gHLAnFM=",
      "CR5wxWBfBHY0SI1vHZ99TMxICWIZ6Ez6u9AnBAV4WUk="};

  memset(st, 0, sizeof(*st));
  memset(peers, 0, 2 * sizeof(*peers));
  st->interface = "wg0";
  st->backend = "uapi";
  st->policy = "fast";
  ck_assert_int_eq(wgam_key_from_base64(st->stats.pubkey, keys[0], 44), 0);
  st->stats.has_pubkey = 1;
  st->stats.listen_port = 51820;
  st->roam_watch = 1;
  st->stats.nexternal = 1;
  ck_assert_int_eq(
      wgam_addr_parse(&st->stats.external[0], "203.0.113.5:40000", 0), 0);
  for (int t = 0; t < WGAM_MSG_TYPE_COUNT; t++) {
    st->stats.pkts_in[t] = (uint64_t)t + 1;
    st->stats.pkts_out[t] = (uint64_t)t + 6;
  }
  st->stats.bytes_in = 100;
  st->stats.bytes_out = 200;
  st->stats.rejected[WGAM_REJECT_LENGTH] = 1;
  st->stats.rejected[WGAM_REJECT_AUTH] = 2;
  st->stats.endpoint_changes = 1;
  st->stats.peer_updates = 3;
  st->stats.state_writes = 4;
  st->stats.npeers_connected = 1;

  ck_assert_int_eq(wgam_key_from_base64(peers[0].info.pubkey, keys[1], 44), 0);
  ck_assert_int_eq(wgam_addr_parse(&peers[0].info.address, "100.64.0.2", 1), 0);
  ck_assert_int_eq(
      wgam_addr_parse(&peers[0].info.endpoint, "198.51.100.2:51820", 0), 0);
  peers[0].info.source = WGAM_SOURCE_GOSSIP;
  peers[0].info.state = WGAM_PEER_CONNECTED;
  peers[0].info.connected = 1;
  peers[0].info.last_handshake = 1700000000;
  peers[0].info.endpoint_changes = 1;
  peers[0].has_age = 1;
  peers[0].handshake_age = 12;

  ck_assert_int_eq(wgam_key_from_base64(peers[1].info.pubkey, keys[2], 44), 0);
  ck_assert_int_eq(wgam_addr_parse(&peers[1].info.address, "fd00::3", 1), 0);
  peers[1].info.source = WGAM_SOURCE_NONE;
  peers[1].info.state = WGAM_PEER_IDLE;

  st->peers = peers;
  st->npeers = 2;
}

START_TEST(test_render_table) {
  struct status_peer peers[2];
  struct status st;
  struct sbuf out;

  fake_status(&st, peers);
  sb_init(&out);
  status_render_table(&out, &st);
  ck_assert(!out.oom);
  ck_assert_str_eq(
      sb_cstr(&out),
      "interface: wg0  public key: lEFx+aA1pzIMPOhRAwFvmTJ1GL6enLup7Tt6y0PDd1k="
      "  listen port: 51820  external endpoint: 203.0.113.5:40000  policy: "
      "fast  roam watch: on\n"
      "PEER       ADDRESS     ENDPOINT            SOURCE  STATE      "
      "HANDSHAKE\n"
      "NpGxDw7K\u2026  100.64.0.2  198.51.100.2:51820  gossip  connected  12s "
      "ago\n"
      "CR5wxWBf\u2026  fd00::3     (none)              none    idle       "
      "never\n");
  sb_free(&out);
}
END_TEST

/* The JSON document: every field of the model, parsed back by a JSON
 * parser as a client would. */
START_TEST(test_render_json) {
  struct status_peer peers[2];
  struct status st;
  struct sbuf out;
  cJSON *root, *p, *stats;

  fake_status(&st, peers);
  sb_init(&out);
  status_render_json(&out, &st);
  ck_assert(!out.oom);
  root = cJSON_Parse(sb_cstr(&out));
  ck_assert_ptr_nonnull(root);
  ck_assert_str_eq(cJSON_GetObjectItem(root, "pubkey")->valuestring,
                   "lEFx+aA1pzIMPOhRAwFvmTJ1GL6enLup7Tt6y0PDd1k=");
  ck_assert_str_eq(cJSON_GetObjectItem(root, "backend")->valuestring, "uapi");
  ck_assert_str_eq(cJSON_GetObjectItem(root, "external_endpoint")->valuestring,
                   "203.0.113.5:40000");
  ck_assert_int_eq(cJSON_GetObjectItem(root, "listen_port")->valueint, 51820);
  ck_assert(cJSON_IsTrue(cJSON_GetObjectItem(root, "roam_watch")));
  ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItem(root, "peers")), 2);
  p = cJSON_GetArrayItem(cJSON_GetObjectItem(root, "peers"), 0);
  ck_assert_str_eq(cJSON_GetObjectItem(p, "address")->valuestring,
                   "100.64.0.2");
  ck_assert_str_eq(cJSON_GetObjectItem(p, "source")->valuestring, "gossip");
  ck_assert_int_eq(cJSON_GetObjectItem(p, "handshake_age")->valueint, 12);
  ck_assert(cJSON_IsTrue(cJSON_GetObjectItem(p, "connected")));
  p = cJSON_GetArrayItem(cJSON_GetObjectItem(root, "peers"), 1);
  ck_assert(cJSON_IsNull(cJSON_GetObjectItem(p, "endpoint")));
  ck_assert(cJSON_IsNull(cJSON_GetObjectItem(p, "handshake_age")));
  stats = cJSON_GetObjectItem(root, "stats");
  ck_assert_int_eq(
      cJSON_GetObjectItem(cJSON_GetObjectItem(stats, "pkts_out"), "request")
          ->valueint,
      9);
  ck_assert_int_eq(
      cJSON_GetObjectItem(cJSON_GetObjectItem(stats, "rejected"), "auth")
          ->valueint,
      2);
  ck_assert_int_eq(cJSON_GetObjectItem(stats, "peers_connected")->valueint, 1);
  cJSON_Delete(root);
  sb_free(&out);

  /* Without a device: no key, no backend, no external endpoint. */
  st.stats.has_pubkey = 0;
  st.stats.nexternal = 0;
  st.backend = NULL;
  sb_init(&out);
  status_render_json(&out, &st);
  root = cJSON_Parse(sb_cstr(&out));
  ck_assert_ptr_nonnull(root);
  ck_assert(cJSON_IsNull(cJSON_GetObjectItem(root, "pubkey")));
  ck_assert(cJSON_IsNull(cJSON_GetObjectItem(root, "backend")));
  ck_assert(cJSON_IsNull(cJSON_GetObjectItem(root, "external_endpoint")));
  cJSON_Delete(root);
  sb_free(&out);
}
END_TEST

START_TEST(test_render_prometheus) {
  static const char *const want[] = {
      "wgautomesh_peers_configured 2\n",
      "wgautomesh_peers_connected 1\n",
      "wgautomesh_peer_handshake_age_seconds{peer=\"NpGxDw7K3av+"
      "GCqvk91iGMzXatjSG08RDFN/gHLAnFM=\"} 12\n",
      "wgautomesh_gossip_packets_total{direction=\"in\",type=\"announce\"} "
      "3\n",
      "wgautomesh_gossip_packets_total{direction=\"out\",type=\"lan_"
      "broadcast\"} 10\n",
      "wgautomesh_gossip_bytes_total{direction=\"out\"} 200\n",
      "wgautomesh_gossip_rejected_total{reason=\"auth\"} 2\n",
      "wgautomesh_endpoint_changes_total 1\n",
      "wgautomesh_upnp_mapped 1\n",
      "# TYPE wgautomesh_gossip_packets_total counter\n",
  };
  struct status_peer peers[2];
  struct status st;
  struct sbuf out;

  fake_status(&st, peers);
  sb_init(&out);
  status_render_prometheus(&out, &st);
  ck_assert(!out.oom);
  for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++)
    ck_assert_msg(strstr(sb_cstr(&out), want[i]), "missing %s", want[i]);
  /* A peer that never had a handshake has no age sample. */
  ck_assert_ptr_null(strstr(sb_cstr(&out),
                            "CR5wxWBf"
                            "BHY0SI1vHZ99TMxICWIZ6Ez6u9AnBAV4WU"
                            "k=\"} 0\nwgautomesh_peer_handshake"));
  sb_free(&out);
}
END_TEST

/* The fake model with relaying: the first peer is a relay, the second is
 * routed through it (with a prefix behind it), and we are a relay too. */
static void fake_relay_status(struct status *st, struct status_peer peers[2]) {
  const char *why;

  fake_status(st, peers);
  st->relay = 1;
  st->stats.relay_switches = 5;
  peers[0].relay = 1;
  peers[0].info.relay = 1;
  peers[1].info.route = WGAM_ROUTE_RELAYED;
  memcpy(peers[1].info.via, peers[0].info.pubkey, WGAM_KEY_LEN);
  peers[1].via_address = peers[0].info.address;
  peers[1].info.route_changes = 3;
  peers[1].nprefixes = 1;
  ck_assert_int_eq(
      config_parse_prefix("192.168.5.0/24", &peers[1].prefixes[0], &why), 0);
}

START_TEST(test_render_relay) {
  struct status_peer peers[2];
  struct status st;
  struct sbuf out;
  cJSON *root, *p;

  fake_relay_status(&st, peers);
  sb_init(&out);
  status_render_table(&out, &st);
  ck_assert(!out.oom);
  ck_assert_str_eq(
      sb_cstr(&out),
      "interface: wg0  public key: lEFx+aA1pzIMPOhRAwFvmTJ1GL6enLup7Tt6y0PDd1k="
      "  listen port: 51820  external endpoint: 203.0.113.5:40000  policy: "
      "fast  relay: yes  roam watch: on\n"
      "PEER       ADDRESS     ENDPOINT            SOURCE  STATE      "
      "HANDSHAKE  RELAY  ROUTE\n"
      "NpGxDw7K\u2026  100.64.0.2  198.51.100.2:51820  gossip  connected  12s "
      "ago    yes    direct\n"
      "CR5wxWBf\u2026  fd00::3     (none)              none    idle       "
      "never      -      relayed via 100.64.0.2\n");
  sb_free(&out);

  /* Pending, and a relay whose address is not known: its key. */
  peers[1].info.route = WGAM_ROUTE_RELAY_PENDING;
  peers[1].via_address.family = WGAM_AF_NONE;
  sb_init(&out);
  status_render_table(&out, &st);
  ck_assert_ptr_nonnull(
      strstr(sb_cstr(&out), "  relay-pending via NpGxDw7K\u2026\n"));
  sb_free(&out);
  peers[1].info.route = WGAM_ROUTE_RELAYED;
  peers[1].via_address = peers[0].info.address;

  sb_init(&out);
  status_render_json(&out, &st);
  root = cJSON_Parse(sb_cstr(&out));
  ck_assert_ptr_nonnull(root);
  ck_assert(cJSON_IsTrue(cJSON_GetObjectItem(root, "relay")));
  ck_assert_int_eq(
      cJSON_GetObjectItem(cJSON_GetObjectItem(root, "stats"), "relay_switches")
          ->valueint,
      5);
  p = cJSON_GetArrayItem(cJSON_GetObjectItem(root, "peers"), 0);
  ck_assert(cJSON_IsTrue(cJSON_GetObjectItem(p, "relay")));
  ck_assert_str_eq(cJSON_GetObjectItem(p, "route")->valuestring, "direct");
  ck_assert(cJSON_IsNull(cJSON_GetObjectItem(p, "via")));
  ck_assert(cJSON_IsNull(cJSON_GetObjectItem(p, "via_address")));
  ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItem(p, "allowed_ips")),
                   0);
  p = cJSON_GetArrayItem(cJSON_GetObjectItem(root, "peers"), 1);
  ck_assert(cJSON_IsFalse(cJSON_GetObjectItem(p, "relay")));
  ck_assert_str_eq(cJSON_GetObjectItem(p, "route")->valuestring, "relayed");
  ck_assert_str_eq(cJSON_GetObjectItem(p, "via")->valuestring,
                   "NpGxDw7K3av+GCqvk91iGMzXatjSG08RDFN/gHLAnFM=");
  ck_assert_str_eq(cJSON_GetObjectItem(p, "via_address")->valuestring,
                   "100.64.0.2");
  ck_assert_int_eq(cJSON_GetObjectItem(p, "route_changes")->valueint, 3);
  ck_assert_str_eq(
      cJSON_GetArrayItem(cJSON_GetObjectItem(p, "allowed_ips"), 0)->valuestring,
      "192.168.5.0/24");
  cJSON_Delete(root);
  sb_free(&out);

  sb_init(&out);
  status_render_prometheus(&out, &st);
  {
    static const char *const want[] = {
        "wgautomesh_relay 1\n",
        "wgautomesh_roam_watch 1\n",
        "wgautomesh_relay_switches_total 5\n",
        "wgautomesh_peer_relay{peer=\"NpGxDw7K3av+GCqvk91iGMzXatjSG08RDFN/"
        "gHLAnFM=\"} 1\n",
        "wgautomesh_peer_relay{peer=\"CR5wxWBfBHY0SI1vHZ99TMxICWIZ6Ez6u9AnBAV4"
        "WUk=\"} 0\n",
        "wgautomesh_peer_route{peer=\"NpGxDw7K3av+GCqvk91iGMzXatjSG08RDFN/"
        "gHLAnFM=\",route=\"direct\",via=\"\"} 1\n",
        "wgautomesh_peer_route{peer=\"CR5wxWBfBHY0SI1vHZ99TMxICWIZ6Ez6u9AnBAV4"
        "WUk=\",route=\"relayed\",via=\"NpGxDw7K3av+GCqvk91iGMzXatjSG08RDFN/"
        "gHLAnFM=\"} 1\n",
        "wgautomesh_peer_route_changes_total{peer="
        "\"CR5wxWBfBHY0SI1vHZ99TMxICWIZ6"
        "Ez6u9AnBAV4WUk=\"} 3\n",
        "# TYPE wgautomesh_relay_switches_total counter\n",
    };

    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++)
      ck_assert_msg(strstr(sb_cstr(&out), want[i]), "missing %s", want[i]);
  }
  sb_free(&out);
}
END_TEST

/* IP forwarding of a relay, against a fake /proc/sys/net. */
START_TEST(test_forward) {
  char dir[] = "/tmp/wgam-forward-XXXXXX", path[256], buf[8];
  struct forward f;
  FILE *fp;

  ck_assert_ptr_nonnull(mkdtemp(dir));
  snprintf(path, sizeof(path),
           "mkdir -p %s/ipv4/conf/wgt0 %s/ipv6/conf/all && "
           "echo 0 > %s/ipv4/conf/wgt0/forwarding && "
           "echo 0 > %s/ipv6/conf/all/forwarding",
           dir, dir, dir, dir);
  ck_assert_int_eq(system(path), 0);
  forward_procdir = dir;
  snprintf(path, sizeof(path), "%s/ipv4/conf/wgt0/forwarding", dir);

  forward_init(&f);
  ck_assert_int_eq(forward_set(&f, "wgt0", 0, 1), 0);
  fp = fopen(path, "r");
  ck_assert_ptr_nonnull(fgets(buf, sizeof(buf), fp));
  fclose(fp);
  ck_assert_str_eq(buf, "0\n");

  ck_assert_int_eq(forward_set(&f, "wgt0", 1, 1), 0);
  fp = fopen(path, "r");
  ck_assert_ptr_nonnull(fgets(buf, sizeof(buf), fp));
  fclose(fp);
  ck_assert_str_eq(buf, "1\n");

  forward_restore(&f);
  fp = fopen(path, "r");
  ck_assert_ptr_nonnull(fgets(buf, sizeof(buf), fp));
  fclose(fp);
  ck_assert_str_eq(buf, "0\n");

  /* Already on: left as found, nothing to restore. */
  fp = fopen(path, "w");
  fputs("1\n", fp);
  fclose(fp);
  forward_init(&f);
  ck_assert_int_eq(forward_set(&f, "wgt0", 1, 0), 0);
  ck_assert_int_eq(forward_set(&f, "wgt0", 0, 0), 0);
  fp = fopen(path, "r");
  ck_assert_ptr_nonnull(fgets(buf, sizeof(buf), fp));
  fclose(fp);
  ck_assert_str_eq(buf, "1\n");

  /* No such interface: an error, nothing written. */
  forward_init(&f);
  ck_assert_int_eq(forward_set(&f, "wgt9", 1, 0), -ENOENT);

  forward_procdir = "/proc/sys/net";
  snprintf(path, sizeof(path), "rm -rf '%s'", dir);
  ck_assert_int_eq(system(path), 0);
}
END_TEST

static void handler(void *user_data, const char *cmd, struct sbuf *reply) {
  int *calls = user_data;

  (*calls)++;
  if (!strcmp(cmd, "status")) {
    /* Large enough to need several writes. */
    for (int i = 0; i < 20000; i++)
      sb_puts(reply, "0123456789");
    sb_putc(reply, '\n');
  } else {
    sb_printf(reply, "unknown:%s\n", cmd);
  }
}

struct query {
  const char *path, *cmd;
  struct sbuf reply;
  int rc;
};

static void *query_thread(void *arg) {
  struct query *q = arg;

  sb_init(&q->reply);
  q->rc = control_query(q->path, q->cmd, &q->reply);
  return NULL;
}

/* Runs the server side until the client threads are done. */
static void serve(struct control *c, struct query *qs, size_t nq) {
  pthread_t th[8];
  struct pollfd pfds[CONTROL_MAX_CLIENTS + 1];
  uint64_t end = mono() + 5000000000ULL;
  size_t done = 0;

  for (size_t i = 0; i < nq; i++)
    pthread_create(&th[i], NULL, query_thread, &qs[i]);
  while (mono() < end) {
    size_t n = control_pollfds(c, pfds, CONTROL_MAX_CLIENTS + 1);

    ck_assert_int_ge(poll(pfds, n, 50), 0);
    control_handle(c, pfds, n, mono());
    done = 0;
    for (size_t i = 0; i < nq; i++)
      done += pthread_tryjoin_np(th[i], NULL) == 0 || qs[i].rc != 1;
    if (done == nq)
      break;
  }
  for (size_t i = 0; i < nq; i++)
    pthread_join(th[i], NULL);
}

START_TEST(test_control) {
  struct control *c, *c2;
  struct query q[3];
  char path[512];
  struct stat st;
  int calls = 0, fd;

  snprintf(path, sizeof(path), "%s/run/sub/wg0.sock", tmpdir);
  ck_assert_int_eq(control_open(&c, path, handler, &calls), 0);
  ck_assert_int_eq(stat(path, &st), 0);
  ck_assert(S_ISSOCK(st.st_mode));
  ck_assert_int_eq(st.st_mode & 0777, 0600);
  /* A second daemon on the same socket is refused. */
  ck_assert_int_eq(control_open(&c2, path, handler, &calls), -EADDRINUSE);

  for (int i = 0; i < 3; i++)
    q[i] = (struct query){
        .path = path, .cmd = i == 1 ? "bogus" : "status", .rc = 1};
  serve(c, q, 3);
  ck_assert_int_eq(calls, 3);
  for (int i = 0; i < 3; i++) {
    ck_assert_int_eq(q[i].rc, 0);
    if (i == 1) {
      ck_assert_str_eq(sb_cstr(&q[i].reply), "unknown:bogus\n");
    } else {
      ck_assert_uint_eq(q[i].reply.len, 200001);
      ck_assert_int_eq(q[i].reply.p[200000], '\n');
    }
    sb_free(&q[i].reply);
  }

  /* A client that never sends a line is dropped at its deadline. */
  fd = socket(AF_UNIX, SOCK_STREAM, 0);
  {
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    struct pollfd pfds[CONTROL_MAX_CLIENTS + 1];
    size_t n;
    char b;

    strcpy(sun.sun_path, path);
    ck_assert_int_eq(connect(fd, (struct sockaddr *)&sun, sizeof(sun)), 0);
    n = control_pollfds(c, pfds, CONTROL_MAX_CLIENTS + 1);
    ck_assert_int_eq(poll(pfds, n, 1000), 1);
    control_handle(c, pfds, n, mono());
    ck_assert_uint_ne(control_expiry(c), UINT64_MAX);
    n = control_pollfds(c, pfds, CONTROL_MAX_CLIENTS + 1);
    control_handle(c, pfds, n, control_expiry(c));
    ck_assert_uint_eq(control_expiry(c), UINT64_MAX);
    ck_assert_int_eq(recv(fd, &b, 1, 0), 0); /* closed by the server */
    close(fd);
  }

  control_close(c);
  ck_assert_int_eq(access(path, F_OK), -1);

  /* A stale socket file (no listener) is replaced. */
  fd = socket(AF_UNIX, SOCK_STREAM, 0);
  {
    struct sockaddr_un sun = {.sun_family = AF_UNIX};

    strcpy(sun.sun_path, path);
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&sun, sizeof(sun)), 0);
  }
  close(fd);
  ck_assert_int_eq(control_open(&c, path, handler, &calls), 0);
  control_close(c);

  {
    struct sbuf r;

    sb_init(&r);
    ck_assert_int_eq(control_query(path, "status", &r), -ENOENT);
    sb_free(&r);
  }
}
END_TEST

START_TEST(test_resolver) {
  struct resolver *r;
  struct resolve_req req[2] = {0};
  struct resolve_result res;
  struct pollfd pfd;
  int got = 0, seen_ok = 0, seen_err = 0;

  ck_assert_int_eq(resolver_new(&r), 0);
  /* Numeric hosts resolve without a network; a name under .invalid never
   * resolves (RFC 2606). */
  memset(req[0].pubkey, 1, WGAM_KEY_LEN);
  strcpy(req[0].host, "192.0.2.7");
  req[0].port = 51820;
  memset(req[1].pubkey, 2, WGAM_KEY_LEN);
  strcpy(req[1].host, "no-such-host.invalid");
  req[1].port = 1;
  ck_assert_int_eq(resolver_submit(r, req, 2), 0);

  pfd.fd = resolver_fd(r);
  pfd.events = POLLIN;
  while (got < 2 && poll(&pfd, 1, 20000) == 1) {
    while (resolver_next(r, &res) == 1) {
      got++;
      if (res.pubkey[0] == 1) {
        ck_assert_int_eq(res.error, 0);
        ck_assert_uint_eq(res.naddrs, 1);
        ck_assert_int_eq(res.addrs[0].family, WGAM_AF_INET);
        ck_assert_uint_eq(res.addrs[0].port, 51820);
        ck_assert_int_eq(res.addrs[0].ip[3], 7);
        ck_assert_str_eq(res.host, "192.0.2.7");
        seen_ok = 1;
      } else {
        ck_assert_int_ne(res.error, 0);
        ck_assert_uint_eq(res.naddrs, 0);
        seen_err = 1;
      }
    }
  }
  ck_assert_int_eq(got, 2);
  ck_assert(seen_ok && seen_err);
  ck_assert_int_eq(resolver_next(r, &res), 0);
  resolver_free(r);
}
END_TEST

START_TEST(test_decode_state_bad) {
  static const uint8_t bad[] = {1, 0, 0, 0, 0, 0, 0, 0, 0xff};
  struct sbuf b;

  sb_init(&b);
  ck_assert_int_lt(decode_state_json(&b, bad, sizeof(bad)), 0);
  ck_assert(!strncmp(sb_cstr(&b), "{\"error\":", 9));
  sb_free(&b);
}
END_TEST

int main(void) {
  Suite *s = suite_create("cli-core");
  TCase *tc = tcase_create("core");
  SRunner *sr;
  int failed;

  log_level = WGAM_LOG_ERROR;
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_set_timeout(tc, 30);
  tcase_add_test(tc, test_jsonw);
  tcase_add_test(tc, test_state_io);
  tcase_add_test(tc, test_notify);
  tcase_add_test(tc, test_render_table);
  tcase_add_test(tc, test_render_json);
  tcase_add_test(tc, test_render_relay);
  tcase_add_test(tc, test_forward);
  tcase_add_test(tc, test_render_prometheus);
  tcase_add_test(tc, test_control);
  tcase_add_test(tc, test_resolver);
  tcase_add_test(tc, test_decode_state_bad);
  suite_add_tcase(s, tc);
  sr = srunner_create(s);
  srunner_run_all(sr, CK_NORMAL);
  failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
