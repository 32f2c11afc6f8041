/* SPDX-License-Identifier: MIT */
/*
 * The config loader through the same path as `wgautomesh check`: every bad
 * config is a file in a temporary directory and must produce exactly the
 * expected lines.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"
#include "log.h"

#define K1 "lEFx+aA1pzIMPOhRAwFvmTJ1GL6enLup7Tt6y0PDd1k="
#define K2 "NpGxDw7K3av+GCqvk91iGMzXatjSG08RDFN/gHLAnFM="
#define K3 "CR5wxWBfBHY0SI1vHZ99TMxICWIZ6Ez6u9AnBAV4WUk="

/* Pieces of a valid config, to vary one thing at a time. */
#define HEAD "\"interface\":\"wg0\",\"gossip_port\":1666,"
#define SECRET "\"gossip_secret\":\"s3cret\","
#define PEER1 "{\"pubkey\":\"" K1 "\",\"address\":\"100.64.0.1\"}"
#define PEER2 "{\"pubkey\":\"" K2 "\",\"address\":\"100.64.0.2\"}"
#define PEERS "\"peers\":[" PEER1 "," PEER2 "]"
#define WITH_PEER(p) "{" HEAD SECRET "\"peers\":[" PEER1 "," p "]}"
/* The second peer with extra keys @k ("\"relay\":true"). */
#define WITH_PEER2(k)                                                          \
  WITH_PEER("{\"pubkey\":\"" K2 "\",\"address\":\"100.64.0.2\"," k "}")
#define WITH_ENDPOINT(e)                                                       \
  WITH_PEER("{\"pubkey\":\"" K2 "\",\"address\":\"100.64.0.2\","               \
            "\"endpoint\":\"" e "\"}")

static char tmpdir[] = "/tmp/wgam-check-config-XXXXXX";

static void write_file(const char *path, const char *data, size_t len,
                       mode_t mode) {
  int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, mode);

  ck_assert_int_ge(fd, 0);
  ck_assert_int_eq(write(fd, data, len), (ssize_t)len);
  ck_assert_int_eq(fchmod(fd, mode), 0);
  close(fd);
}

/* Replaces every "@D" in @s with the temporary directory. */
static char *subst(const char *s) {
  static char out[8192];
  size_t o = 0;

  for (; *s; s++) {
    if (s[0] == '@' && s[1] == 'D') {
      o += (size_t)snprintf(out + o, sizeof(out) - o, "%s", tmpdir);
      s++;
    } else {
      out[o++] = *s;
    }
    ck_assert_uint_lt(o, sizeof(out) - 1);
  }
  out[o] = '\0';
  return out;
}

struct bad_case {
  const char *json;
  /* Expected lines after "PATH: ", separated by '\n'. */
  const char *errors;
};

static const struct bad_case bad[] = {
    /* 0 */ {"not json", "invalid JSON at line 1, column 1"},
    {"{\"interface\":\"wg0\",\n  \"gossip_port\": }",
     "invalid JSON at line 2, column 18"},
    {"[1,2]", "not a JSON object"},
    {"{" HEAD SECRET PEERS "} trailing",
     "invalid JSON at line 1, column 237: trailing data"},
    {"{}", "interface: missing (required)\n"
           "gossip_port: missing (required)\n"
           "peers: missing (required)"},
    /* 5 */
    {"{\"interface\":5,\"gossip_port\":1666," SECRET PEERS "}",
     "interface: not a string"},
    {"{\"interface\":\"\",\"gossip_port\":1666," SECRET PEERS "}",
     "interface: not a valid interface name (1 to 15 characters, no '/', "
     "':' or spaces)"},
    {"{\"interface\":\"averyverylongname\",\"gossip_port\":1666," SECRET PEERS
     "}",
     "interface: not a valid interface name (1 to 15 characters, no '/', "
     "':' or spaces)"},
    {"{\"interface\":\"wg/0\",\"gossip_port\":1666," SECRET PEERS "}",
     "interface: not a valid interface name (1 to 15 characters, no '/', "
     "':' or spaces)"},
    {"{\"interface\":\"wg0\"," SECRET PEERS "}",
     "gossip_port: missing (required)"},
    /* 10 */
    {"{\"interface\":\"wg0\",\"gossip_port\":\"1666\"," SECRET PEERS "}",
     "gossip_port: not an integer"},
    {"{\"interface\":\"wg0\",\"gossip_port\":0," SECRET PEERS "}",
     "gossip_port: out of range (1..65535)"},
    {"{\"interface\":\"wg0\",\"gossip_port\":65536," SECRET PEERS "}",
     "gossip_port: out of range (1..65535)"},
    {"{\"interface\":\"wg0\",\"gossip_port\":1666.5," SECRET PEERS "}",
     "gossip_port: not an integer"},
    {"{" HEAD SECRET "\"gossip_secret_file\":\"@D/secret\"," PEERS "}",
     "gossip_secret_file: conflicts with gossip_secret (give one)"},
    /* 15 */
    {"{" HEAD "\"gossip_secret\":42," PEERS "}", "gossip_secret: not a string"},
    {"{" HEAD "\"gossip_secret_file\":\"@D/nope\"," PEERS "}",
     "gossip_secret_file: cannot read @D/nope: No such file or directory"},
    {"{" HEAD "\"gossip_secret_file\":\"@D/empty\"," PEERS "}",
     "gossip_secret_file: @D/empty is empty"},
    {"{" HEAD "\"gossip_secret_file\":\"@D\"," PEERS "}",
     "gossip_secret_file: @D is not a regular file"},
    {"{" HEAD SECRET "\"foo\":1," PEERS "}", "foo: unknown key"},
    /* 20 */
    {"{" HEAD SECRET "\"interface\":\"wg1\"," PEERS "}",
     "interface: duplicate key"},
    {"{" HEAD SECRET "\"ipv6\":\"yes\"," PEERS "}", "ipv6: not a boolean"},
    {"{" HEAD SECRET "\"lan_discovery\":1," PEERS "}",
     "lan_discovery: not a boolean"},
    {"{" HEAD SECRET "\"upnp_forward_external_port\":70000," PEERS "}",
     "upnp_forward_external_port: out of range (1..65535)"},
    {"{" HEAD SECRET "\"log_level\":\"loud\"," PEERS "}",
     "log_level: not one of error, warn, info, debug, trace"},
    /* 25 */
    {"{" HEAD SECRET "\"control_socket\":\"wg0.sock\"," PEERS "}",
     "control_socket: not an absolute path"},
    {"{" HEAD SECRET "\"control_socket\":\"/"
     "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
     "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.sock\"," PEERS "}",
     "control_socket: longer than 107 bytes"},
    {"{" HEAD SECRET "\"policy\":\"slow\"," PEERS "}",
     "policy: not one of fast, classic"},
    {"{" HEAD SECRET "\"peers\":{}}", "peers: not an array"},
    {WITH_PEER("\"x\""), "peers[1]: not an object"},
    /* 30 */
    {WITH_PEER("{\"address\":\"100.64.0.2\"}"),
     "peers[1].pubkey: missing (required)"},
    {WITH_PEER("{\"pubkey\":\"abc\",\"address\":\"100.64.0.2\"}"),
     "peers[1].pubkey: not a 32-byte base64 key"},
    {WITH_PEER("{\"pubkey\":7,\"address\":\"100.64.0.2\"}"),
     "peers[1].pubkey: not a string"},
    {WITH_PEER("{\"pubkey\":\"" K2 "\"}"),
     "peers[1].address: missing (required)"},
    {WITH_PEER("{\"pubkey\":\"" K2 "\",\"address\":\"100.64.0.300\"}"),
     "peers[1].address: not an IPv4 or IPv6 address"},
    /* 35 */
    {WITH_PEER("{\"pubkey\":\"" K2 "\",\"address\":\"100.64.0.2:51820\"}"),
     "peers[1].address: not an IPv4 or IPv6 address"},
    {WITH_PEER("{\"pubkey\":\"" K2 "\",\"address\":\"224.0.0.1\"}"),
     "peers[1].address: not a unicast address"},
    {WITH_ENDPOINT("198.51.100.2"),
     "peers[1].endpoint: not ip:port, [v6]:port or hostname:port"},
    {WITH_ENDPOINT("fd00::2:51820"),
     "peers[1].endpoint: not ip:port, [v6]:port or hostname:port"},
    {WITH_ENDPOINT("node.example:0"),
     "peers[1].endpoint: port out of range (1..65535)"},
    /* 40 */
    {WITH_ENDPOINT("node.example:65536"),
     "peers[1].endpoint: port out of range (1..65535)"},
    {WITH_ENDPOINT("0.0.0.0:51820"),
     "peers[1].endpoint: not a usable endpoint (unspecified, loopback, "
     "multicast, broadcast or port 0)"},
    {WITH_ENDPOINT("bad_host!:51820"),
     "peers[1].endpoint: not ip:port, [v6]:port or hostname:port"},
    {WITH_ENDPOINT("198.51.100.256:51820"),
     "peers[1].endpoint: not ip:port, [v6]:port or hostname:port"},
    {WITH_PEER("{\"pubkey\":\"" K1 "\",\"address\":\"100.64.0.2\"}"),
     "peers[1].pubkey: duplicate of peers[0].pubkey"},
    /* 45 */
    {WITH_PEER("{\"pubkey\":\"" K2 "\",\"address\":\"100.64.0.1\"}"),
     "peers[1].address: duplicate of peers[0].address"},
    {WITH_PEER("{\"pubkey\":\"" K2 "\",\"address\":\"100.64.0.2\","
               "\"relays\":true}"),
     "peers[1].relays: unknown key"},
    {"{" HEAD SECRET "\"peers\":[" PEER1 "," PEER2 ",{\"pubkey\":\"" K1
     "\",\"address\":\"fd00::1\"},"
     "{\"pubkey\":\"" K3 "\",\"address\":\"100.64.0.2\"}]}",
     "peers[2].pubkey: duplicate of peers[0].pubkey\n"
     "peers[3].address: duplicate of peers[1].address"},
    {"{\"interface\":\"wg0 x\",\"gossip_port\":-1,\"ipv6\":null," PEERS "}",
     "interface: not a valid interface name (1 to 15 characters, no '/', "
     "':' or spaces)\n"
     "gossip_port: out of range (1..65535)\n"
     "ipv6: not a boolean"},
    /* 49: relay and allowed_ips */
    {WITH_PEER2("\"relay\":\"yes\""), "peers[1].relay: not a boolean"},
    {WITH_PEER2("\"relay\":1"), "peers[1].relay: not a boolean"},
    {WITH_PEER2("\"allowed_ips\":\"192.168.5.0/24\""),
     "peers[1].allowed_ips: not an array"},
    {WITH_PEER2("\"allowed_ips\":[5]"),
     "peers[1].allowed_ips[0]: not a string"},
    /* 53 */
    {WITH_PEER2("\"allowed_ips\":[\"192.168.5.0\"]"),
     "peers[1].allowed_ips[0]: \"192.168.5.0\" is not a prefix "
     "(ADDRESS/LENGTH)"},
    {WITH_PEER2("\"allowed_ips\":[\"192.168.5.0/24x\",\"/24\","
                "\"192.168.5.0/-1\",\"host.example/24\",\"192.168.5.0/\","
                "\"192.168.5.0/0024\"]"),
     "peers[1].allowed_ips[0]: \"192.168.5.0/24x\" is not a prefix "
     "(ADDRESS/LENGTH)\n"
     "peers[1].allowed_ips[1]: \"/24\" is not a prefix (ADDRESS/LENGTH)\n"
     "peers[1].allowed_ips[2]: \"192.168.5.0/-1\" is not a prefix "
     "(ADDRESS/LENGTH)\n"
     "peers[1].allowed_ips[3]: \"host.example/24\" is not a prefix "
     "(ADDRESS/LENGTH)\n"
     "peers[1].allowed_ips[4]: \"192.168.5.0/\" is not a prefix "
     "(ADDRESS/LENGTH)\n"
     "peers[1].allowed_ips[5]: \"192.168.5.0/0024\" is not a prefix "
     "(ADDRESS/LENGTH)"},
    {WITH_PEER2("\"allowed_ips\":[\"192.168.5.0/33\",\"fd01::/129\"]"),
     "peers[1].allowed_ips[0]: \"192.168.5.0/33\" has a prefix length out "
     "of range (0..32)\n"
     "peers[1].allowed_ips[1]: \"fd01::/129\" has a prefix length out of "
     "range (0..128)"},
    {WITH_PEER2("\"allowed_ips\":[\"192.168.0.0/24\",\"10.0.0.1/8\","
                "\"fd01::1/64\"]"),
     "peers[1].allowed_ips[1]: \"10.0.0.1/8\" has host bits set (the "
     "network is 10.0.0.0/8)\n"
     "peers[1].allowed_ips[2]: \"fd01::1/64\" has host bits set (the "
     "network is fd01::/64)"},
    {WITH_PEER2("\"allowed_ips\":[\"10.0.1.0/24\",\"10.0.2.0/24\","
                "\"10.0.3.0/24\",\"10.0.4.0/24\",\"10.0.5.0/24\","
                "\"10.0.6.0/24\",\"10.0.7.0/24\",\"10.0.8.0/24\","
                "\"10.0.9.0/24\"]"),
     "peers[1].allowed_ips: 9 prefixes, at most 8"},
    /* 58: overlaps */
    {"{" HEAD SECRET "\"peers\":["
     "{\"pubkey\":\"" K1 "\",\"address\":\"100.64.0.1\","
     "\"allowed_ips\":[\"192.168.0.0/16\"]},"
     "{\"pubkey\":\"" K2 "\",\"address\":\"100.64.0.2\","
     "\"allowed_ips\":[\"10.0.0.0/8\",\"192.168.5.0/24\"]}]}",
     "peers[1].allowed_ips[1]: 192.168.5.0/24 overlaps "
     "peers[0].allowed_ips[0] (192.168.0.0/16)"},
    {WITH_PEER2("\"allowed_ips\":[\"10.1.0.0/16\",\"10.0.0.0/8\","
                "\"fd01::/64\",\"fd01::/64\"]"),
     "peers[1].allowed_ips[1]: 10.0.0.0/8 overlaps peers[1].allowed_ips[0] "
     "(10.1.0.0/16)\n"
     "peers[1].allowed_ips[3]: fd01::/64 overlaps peers[1].allowed_ips[2] "
     "(fd01::/64)"},
    {WITH_PEER2("\"allowed_ips\":[\"100.64.0.0/10\"]"),
     "peers[1].allowed_ips[0]: 100.64.0.0/10 holds the mesh address of "
     "peers[0] (100.64.0.1)"},
    {WITH_PEER2("\"allowed_ips\":[\"100.64.0.2/32\"]"),
     "peers[1].allowed_ips[0]: 100.64.0.2/32 holds the mesh address of "
     "peers[1] (100.64.0.2)"},
    {WITH_PEER2("\"allowed_ips\":[\"0.0.0.0/0\"]"),
     "peers[1].allowed_ips[0]: 0.0.0.0/0 holds the mesh address of peers[0] "
     "(100.64.0.1)"},
    /* 63 */
    {"{" HEAD SECRET "\"peers\":[" PEER1 ","
     "{\"pubkey\":\"" K2 "\",\"address\":\"100.64.0.2\","
     "\"allowed_ips\":[\"fd00::/64\"]},"
     "{\"pubkey\":\"" K3 "\",\"address\":\"fd00::3\"}]}",
     "peers[1].allowed_ips[0]: fd00::/64 holds the mesh address of peers[2] "
     "(fd00::3)"},
};

static void setup(void) {
  char path[512];

  ck_assert_ptr_nonnull(mkdtemp(tmpdir));
  snprintf(path, sizeof(path), "%s/empty", tmpdir);
  write_file(path, "", 0, 0600);
  snprintf(path, sizeof(path), "%s/secret", tmpdir);
  write_file(path, "hunter2\n", 8, 0600);
  snprintf(path, sizeof(path), "%s/secret-644", tmpdir);
  write_file(path, "hunter2", 7, 0644);
}

static void teardown(void) {
  char cmd[600];

  snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
  ck_assert_int_eq(system(cmd), 0);
  strcpy(tmpdir, "/tmp/wgam-check-config-XXXXXX");
}

/* Writes @json to a file and loads it. */
static int load(struct config *cfg, struct config_diag *diag, const char *json,
                char *path, size_t pathlen) {
  const char *text = subst(json);

  snprintf(path, pathlen, "%s/config.json", tmpdir);
  write_file(path, text, strlen(text), 0600);
  memset(diag, 0, sizeof(*diag));
  return config_load(cfg, path, 0, diag);
}

START_TEST(test_bad) {
  const struct bad_case *c = &bad[_i];
  struct config_diag diag;
  struct config cfg;
  char path[512], *expected, *line, *save = NULL;
  size_t n = 0;
  int rc;

  rc = load(&cfg, &diag, c->json, path, sizeof(path));
  ck_assert_int_eq(rc, -EINVAL);
  expected = strdup(subst(c->errors));
  for (line = strtok_r(expected, "\n", &save); line;
       line = strtok_r(NULL, "\n", &save), n++) {
    char want[1024];

    snprintf(want, sizeof(want), "%s: %s", path, line);
    ck_assert_msg(n < diag.nerrors, "case %d: missing error line '%s'", _i,
                  want);
    ck_assert_msg(!strcmp(diag.errors[n], want),
                  "case %d:\n got '%s'\nwant '%s'", _i, diag.errors[n], want);
  }
  ck_assert_msg(n == diag.nerrors, "case %d: %zu extra error lines, first '%s'",
                _i, diag.nerrors - n, diag.errors[n]);
  /* A failed load leaves nothing behind. */
  ck_assert_ptr_null(cfg.interface);
  ck_assert_ptr_null(cfg.peers);
  free(expected);
  config_diag_free(&diag);
}
END_TEST

START_TEST(test_missing_file) {
  struct config_diag diag = {0};
  struct config cfg;
  char path[512], want[600];

  snprintf(path, sizeof(path), "%s/absent.json", tmpdir);
  ck_assert_int_eq(config_load(&cfg, path, 0, &diag), -EINVAL);
  ck_assert_uint_eq(diag.nerrors, 1);
  snprintf(want, sizeof(want), "%s: cannot read: No such file or directory",
           path);
  ck_assert_str_eq(diag.errors[0], want);
  config_diag_free(&diag);
}
END_TEST

START_TEST(test_good_full) {
  static const char json[] =
      "{\"interface\":\"wg-mesh\",\"gossip_port\":1666,"
      "\"gossip_secret_file\":\"@D/secret\",\"persist_file\":\"@D/state\","
      "\"ipv6\":true,\"lan_discovery\":true,"
      "\"upnp_forward_external_port\":33723,\"log_level\":\"debug\","
      "\"policy\":\"classic\",\"peers\":["
      "{\"pubkey\":\"" K1 "\",\"address\":\"100.64.0.1\","
      "\"endpoint\":\"198.51.100.1:51820\"},"
      "{\"pubkey\":\"" K2 "\",\"address\":\"fd00::2\","
      "\"endpoint\":\"[2001:db8::2]:51821\"},"
      "{\"pubkey\":\"" K3 "\",\"address\":\"100.64.0.3\","
      "\"endpoint\":\"node-3.example.net:51822\"}]}";
  struct config_diag diag;
  struct config cfg;
  char path[512], want[600];
  wgam_peer_config peers[3];
  uint8_t key[WGAM_KEY_LEN];

  ck_assert_int_eq(load(&cfg, &diag, json, path, sizeof(path)), 0);
  ck_assert_uint_eq(diag.nerrors, 0);
  ck_assert_uint_eq(diag.nwarnings, 0);
  ck_assert_str_eq(cfg.interface, "wg-mesh");
  ck_assert_uint_eq(cfg.gossip_port, 1666);
  /* The secret file's trailing newline is part of the secret. */
  ck_assert_int_eq(cfg.has_secret, 1);
  ck_assert_uint_eq(cfg.secretlen, 8);
  ck_assert_mem_eq(cfg.secret, "hunter2\n", 8);
  snprintf(want, sizeof(want), "%s/state", tmpdir);
  ck_assert_str_eq(cfg.persist_file, want);
  ck_assert_int_eq(cfg.ipv6, 1);
  ck_assert_int_eq(cfg.lan_discovery, 1);
  ck_assert_uint_eq(cfg.upnp_port, 33723);
  ck_assert_int_eq(cfg.log_level, WGAM_LOG_DEBUG);
  ck_assert_int_eq(cfg.policy, WGAM_POLICY_CLASSIC);
  ck_assert_str_eq(cfg.control_socket, "/run/wgautomesh/wg-mesh.sock");
  ck_assert_uint_eq(cfg.npeers, 3);

  ck_assert_int_eq(wgam_key_from_base64(key, K1, strlen(K1)), 0);
  ck_assert_mem_eq(cfg.peers[0].pubkey, key, WGAM_KEY_LEN);
  ck_assert_int_eq(cfg.peers[0].address.family, WGAM_AF_INET);
  ck_assert_int_eq(cfg.peers[0].endpoint.family, WGAM_AF_INET);
  ck_assert_uint_eq(cfg.peers[0].endpoint.port, 51820);
  ck_assert_ptr_null(cfg.peers[0].host);

  ck_assert_int_eq(cfg.peers[1].address.family, WGAM_AF_INET6);
  ck_assert_int_eq(cfg.peers[1].endpoint.family, WGAM_AF_INET6);
  ck_assert_uint_eq(cfg.peers[1].endpoint.port, 51821);

  ck_assert_int_eq(cfg.peers[2].endpoint.family, WGAM_AF_NONE);
  ck_assert_str_eq(cfg.peers[2].host, "node-3.example.net");
  ck_assert_uint_eq(cfg.peers[2].port, 51822);

  config_to_peers(&cfg, peers);
  ck_assert_mem_eq(peers[0].pubkey, key, WGAM_KEY_LEN);
  ck_assert_int_eq(peers[2].endpoint.family, WGAM_AF_NONE);
  ck_assert(wgam_addr_equal(&peers[1].address, &cfg.peers[1].address));

  config_free(&cfg);
  config_diag_free(&diag);
}
END_TEST

/* Relays and extra prefixes reach the engine's peer list; a relay that is
 * this node itself, IPv6 prefixes beside IPv4 mesh addresses, and prefixes
 * that only touch are fine. */
START_TEST(test_good_relay) {
  static const char json[] =
      "{" HEAD SECRET "\"peers\":["
      "{\"pubkey\":\"" K1 "\",\"address\":\"100.64.0.1\",\"relay\":true,"
      "\"endpoint\":\"198.51.100.1:51820\"},"
      "{\"pubkey\":\"" K2 "\",\"address\":\"100.64.0.2\",\"relay\":false,"
      "\"allowed_ips\":[\"192.168.5.0/24\",\"fd01::/64\",\"10.9.0.7/32\"]},"
      "{\"pubkey\":\"" K3 "\",\"address\":\"100.64.0.3\","
      "\"allowed_ips\":[\"192.168.4.0/24\",\"fd02::/48\"]}]}";
  struct config_diag diag;
  struct config cfg;
  char path[512];
  wgam_peer_config peers[3];
  wgam_cidr c;
  const char *why;

  ck_assert_int_eq(load(&cfg, &diag, json, path, sizeof(path)), 0);
  ck_assert_uint_eq(diag.nerrors, 0);
  ck_assert_uint_eq(cfg.npeers, 3);
  ck_assert_int_eq(cfg.peers[0].relay, 1);
  ck_assert_int_eq(cfg.peers[1].relay, 0);
  ck_assert_int_eq(cfg.peers[2].relay, 0);
  ck_assert_uint_eq(cfg.peers[0].nprefixes, 0);
  ck_assert_uint_eq(cfg.peers[1].nprefixes, 3);
  ck_assert_uint_eq(cfg.peers[2].nprefixes, 2);

  config_to_peers(&cfg, peers);
  ck_assert_int_eq(peers[0].relay, 1);
  ck_assert_int_eq(peers[1].relay, 0);
  ck_assert_uint_eq(peers[1].nprefixes, 3);
  ck_assert_int_eq(config_parse_prefix("192.168.5.0/24", &c, &why), 0);
  ck_assert_mem_eq(&peers[1].prefixes[0], &c, sizeof(c));
  ck_assert_int_eq(config_parse_prefix("fd01::/64", &c, &why), 0);
  ck_assert_mem_eq(&peers[1].prefixes[1], &c, sizeof(c));
  ck_assert_int_eq(peers[1].prefixes[2].prefixlen, 32);
  ck_assert_uint_eq(peers[2].nprefixes, 2);
  ck_assert_int_eq(peers[2].prefixes[1].addr.family, WGAM_AF_INET6);
  ck_assert_int_eq(peers[2].prefixes[1].prefixlen, 48);
  ck_assert_ptr_eq(config_find_peer(&cfg, peers[2].pubkey), &cfg.peers[2]);

  config_free(&cfg);
  config_diag_free(&diag);
}
END_TEST

/* The prefix parser on its own: what WireGuard's allowed IPs take. */
START_TEST(test_prefix_parser) {
  static const struct {
    const char *s;
    int ok;
    unsigned len;
  } cases[] = {
      {"10.0.0.0/8", 1, 8},
      {"0.0.0.0/0", 1, 0},
      {"192.168.5.7/32", 1, 32},
      {"fd00::/8", 1, 8},
      {"::/0", 1, 0},
      {"2001:db8::1/128", 1, 128},
      {"11.0.0.0/7", 0, 0},
      {"10.0.0.0", 0, 0},
      {"10.0.0.0/33", 0, 0},
      {"fd00::1/127", 0, 0},
      {"fd00::/1000", 0, 0},
      {"10.0.0.0/8/8", 0, 0},
      {"[fd00::]/8", 0, 0},
      {"", 0, 0},
      {"10.0.0.0/ 8", 0, 0},
      {"10.0.0.0/+8", 0, 0},
  };
  wgam_cidr c;
  const char *why;

  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    int rc = config_parse_prefix(cases[i].s, &c, &why);

    ck_assert_msg((rc == 0) == cases[i].ok, "%s: %d", cases[i].s, rc);
    if (cases[i].ok)
      ck_assert_uint_eq(c.prefixlen, cases[i].len);
  }
}
END_TEST

START_TEST(test_good_minimal) {
  static const char json[] = "{\"interface\":\"wg0\",\"gossip_port\":1,"
                             "\"gossip_secret\":\"x\",\"peers\":[]}";
  struct config_diag diag;
  struct config cfg;
  char path[512];

  ck_assert_int_eq(load(&cfg, &diag, json, path, sizeof(path)), 0);
  ck_assert_uint_eq(diag.nwarnings, 0);
  ck_assert_uint_eq(cfg.npeers, 0);
  ck_assert_int_eq(cfg.policy, WGAM_POLICY_FAST);
  ck_assert_int_eq(cfg.log_level, -1);
  ck_assert_ptr_null(cfg.persist_file);
  ck_assert_uint_eq(cfg.upnp_port, 0);
  ck_assert_uint_eq(cfg.secretlen, 1);
  config_free(&cfg);
  config_diag_free(&diag);
}
END_TEST

/*
 * A load and two reloads (SIGHUP), as the daemon does them: the buffers are
 * sized from the file, so the heap and the mapped memory stay small. A
 * buffer sized from the limit (16 MiB) raises glibc's mmap threshold at the
 * first load and leaves 16 MiB or more of heap behind the next ones.
 */
START_TEST(test_reload_footprint) {
  static const char json[] = "{" HEAD SECRET PEERS "}";
  struct config_diag diag;
  struct config cfg;
  char path[512];

  for (int i = 0; i < 3; i++) {
    ck_assert_int_eq(load(&cfg, &diag, json, path, sizeof(path)), 0);
    ck_assert_uint_eq(cfg.npeers, 2);
    config_free(&cfg);
    config_diag_free(&diag);
  }
#ifdef __GLIBC__
  {
    struct mallinfo2 mi = mallinfo2();

    ck_assert_msg(mi.arena + mi.hblkhd < (4u << 20),
                  "after three loads: heap %zu bytes, mapped %zu bytes",
                  mi.arena, mi.hblkhd);
  }
#endif
}
END_TEST

/* A file of exactly CONFIG_MAX_FILE bytes loads; one byte more is refused. */
START_TEST(test_max_size) {
  static const char json[] = "{" HEAD SECRET PEERS "}";
  struct config_diag diag = {0};
  struct config cfg;
  char path[512], want[600], *big;
  size_t n = strlen(json);

  big = malloc(CONFIG_MAX_FILE + 1);
  ck_assert_ptr_nonnull(big);
  memcpy(big, json, n);
  memset(big + n, ' ', CONFIG_MAX_FILE + 1 - n);
  snprintf(path, sizeof(path), "%s/big.json", tmpdir);
  write_file(path, big, CONFIG_MAX_FILE, 0600);
  ck_assert_int_eq(config_load(&cfg, path, 0, &diag), 0);
  ck_assert_uint_eq(cfg.npeers, 2);
  config_free(&cfg);
  config_diag_free(&diag);

  write_file(path, big, CONFIG_MAX_FILE + 1, 0600);
  memset(&diag, 0, sizeof(diag));
  ck_assert_int_eq(config_load(&cfg, path, 0, &diag), -EINVAL);
  ck_assert_uint_eq(diag.nerrors, 1);
  snprintf(want, sizeof(want), "%s: larger than %u bytes", path,
           CONFIG_MAX_FILE);
  ck_assert_str_eq(diag.errors[0], want);
  config_diag_free(&diag);
  free(big);
}
END_TEST

START_TEST(test_warnings) {
  struct config_diag diag;
  struct config cfg;
  char path[512], want[700];

  /* A group/world-readable secret file works but is warned about. */
  ck_assert_int_eq(load(&cfg, &diag,
                        "{" HEAD "\"gossip_secret_file\":\"@D/secret-644\","
                        "\"control_socket\":\"/tmp/x.sock\"," PEERS "}",
                        path, sizeof(path)),
                   0);
  ck_assert_uint_eq(diag.nwarnings, 1);
  snprintf(want, sizeof(want),
           "%s: gossip_secret_file: %s/secret-644 is readable by group or "
           "others (chmod 600 it)",
           path, tmpdir);
  ck_assert_str_eq(diag.warnings[0], want);
  ck_assert_uint_eq(cfg.secretlen, 7);
  ck_assert_str_eq(cfg.control_socket, "/tmp/x.sock");
  config_free(&cfg);
  config_diag_free(&diag);

  /* No secret at all: the original's empty secret, with a warning. */
  ck_assert_int_eq(load(&cfg, &diag, "{" HEAD PEERS "}", path, sizeof(path)),
                   0);
  ck_assert_uint_eq(diag.nwarnings, 1);
  snprintf(want, sizeof(want),
           "%s: no gossip_secret or gossip_secret_file: the gossip uses the "
           "empty secret (anyone can read and forge it)",
           path);
  ck_assert_str_eq(diag.warnings[0], want);
  ck_assert_int_eq(cfg.has_secret, 0);
  ck_assert_uint_eq(cfg.secretlen, 0);
  config_free(&cfg);
  config_diag_free(&diag);
}
END_TEST

START_TEST(test_skip_secret) {
  struct config_diag diag;
  struct config cfg;
  char path[512];

  /* `status` must work without reading the secret. */
  snprintf(path, sizeof(path), "%s/config.json", tmpdir);
  {
    const char *text =
        subst("{" HEAD "\"gossip_secret_file\":\"@D/nope\"," PEERS "}");

    write_file(path, text, strlen(text), 0600);
  }
  memset(&diag, 0, sizeof(diag));
  ck_assert_int_eq(config_load(&cfg, path, CONFIG_SKIP_SECRET, &diag), 0);
  ck_assert_uint_eq(diag.nerrors, 0);
  ck_assert_str_eq(cfg.control_socket, "/run/wgautomesh/wg0.sock");
  config_free(&cfg);
  config_diag_free(&diag);
}
END_TEST

START_TEST(test_endpoint_parser) {
  wgam_addr a;
  char *host;
  uint16_t port;
  const char *why;

  ck_assert_int_eq(
      config_parse_endpoint("[2001:db8::7]:1", &a, &host, &port, &why), 0);
  ck_assert_int_eq(a.family, WGAM_AF_INET6);
  ck_assert_ptr_null(host);
  ck_assert_int_eq(
      config_parse_endpoint("localhost:51820", &a, &host, &port, &why), 0);
  ck_assert_str_eq(host, "localhost");
  ck_assert_uint_eq(port, 51820);
  ck_assert_int_eq(a.family, WGAM_AF_NONE);
  free(host);
  ck_assert_int_eq(
      config_parse_endpoint("127.0.0.1:51820", &a, &host, &port, &why),
      -EINVAL);
  ck_assert_int_eq(config_parse_endpoint(":51820", &a, &host, &port, &why),
                   -EINVAL);
  ck_assert_int_eq(config_parse_endpoint("a..b:1", &a, &host, &port, &why),
                   -EINVAL);
}
END_TEST

int main(void) {
  Suite *s = suite_create("config");
  TCase *tc = tcase_create("config");
  SRunner *sr;
  int failed;

  log_level = WGAM_LOG_ERROR;
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_add_loop_test(tc, test_bad, 0, (int)(sizeof(bad) / sizeof(bad[0])));
  tcase_add_test(tc, test_missing_file);
  tcase_add_test(tc, test_good_full);
  tcase_add_test(tc, test_good_relay);
  tcase_add_test(tc, test_prefix_parser);
  tcase_add_test(tc, test_good_minimal);
  tcase_add_test(tc, test_reload_footprint);
  tcase_add_test(tc, test_max_size);
  tcase_add_test(tc, test_warnings);
  tcase_add_test(tc, test_skip_secret);
  tcase_add_test(tc, test_endpoint_parser);
  suite_add_tcase(s, tc);
  sr = srunner_create(s);
  srunner_run_all(sr, CK_NORMAL);
  failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
