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

#include "control.h"
#include "decode.h"
#include "jsonw.h"
#include "log.h"
#include "notify.h"
#include "resolve.h"
#include "state_io.h"

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

static const char status_doc[] =
    "{\"interface\":\"wg0\",\"backend\":\"uapi\",\"pubkey\":"
    "\"lEFx+aA1pzIMPOhRAwFvmTJ1GL6enLup7Tt6y0PDd1k=\",\"listen_port\":51820,"
    "\"external_endpoint\":\"203.0.113.5:40000\",\"policy\":\"fast\","
    "\"peers\":[{\"pubkey\":\"NpGxDw7K3av+GCqvk91iGMzXatjSG08RDFN/gHLAnFM=\","
    "\"address\":\"100.64.0.2\",\"endpoint\":\"198.51.100.2:51820\","
    "\"source\":\"gossip\",\"state\":\"connected\",\"connected\":true,"
    "\"last_handshake\":1700000000,\"handshake_age\":12,\"tries\":0,"
    "\"endpoint_changes\":1,\"known\":[],\"lan_endpoint\":null},"
    "{\"pubkey\":\"CR5wxWBfBHY0SI1vHZ99TMxICWIZ6Ez6u9AnBAV4WUk=\","
    "\"address\":\"fd00::3\",\"endpoint\":null,\"source\":\"none\","
    "\"state\":\"idle\",\"connected\":false,\"last_handshake\":0,"
    "\"handshake_age\":null,\"tries\":0,\"endpoint_changes\":0,\"known\":[],"
    "\"lan_endpoint\":null}],"
    "\"stats\":{\"pkts_in\":{\"ping\":1,\"pong\":2,\"announce\":3,"
    "\"request\":4,\"lan_broadcast\":5},\"pkts_out\":{\"ping\":6,\"pong\":7,"
    "\"announce\":8,\"request\":9,\"lan_broadcast\":10},\"bytes_in\":100,"
    "\"bytes_out\":200,\"rejected\":{\"length\":1,\"auth\":2},"
    "\"endpoint_changes\":1,\"peer_updates\":3,\"state_writes\":4,"
    "\"peers_connected\":1}}";

START_TEST(test_render_table) {
  struct sbuf out;

  sb_init(&out);
  ck_assert_int_eq(status_render(&out, status_doc, STATUS_TABLE), 0);
  ck_assert_str_eq(
      sb_cstr(&out),
      "interface: wg0  public key: lEFx+aA1pzIMPOhRAwFvmTJ1GL6enLup7Tt6y0PDd1k="
      "  listen port: 51820  external endpoint: 203.0.113.5:40000  policy: "
      "fast\n"
      "PEER       ADDRESS     ENDPOINT            SOURCE  STATE      "
      "HANDSHAKE\n"
      "NpGxDw7K\u2026  100.64.0.2  198.51.100.2:51820  gossip  connected  12s "
      "ago\n"
      "CR5wxWBf\u2026  fd00::3     (none)              none    idle       "
      "never\n");
  sb_free(&out);

  sb_init(&out);
  ck_assert_int_eq(status_render(&out, "{\"error\":1}", STATUS_TABLE), -EINVAL);
  ck_assert_int_eq(status_render(&out, "not json", STATUS_TABLE), -EINVAL);
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
  struct sbuf out;

  sb_init(&out);
  ck_assert_int_eq(status_render(&out, status_doc, STATUS_PROMETHEUS), 0);
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
