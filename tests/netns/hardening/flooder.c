/* SPDX-License-Identifier: MIT */
/*
 * Sends a flood of bad gossip datagrams at one address for the flood test:
 * random bytes (0 to 2,000 of them: a quarter are over the 1,500-byte
 * limit), truncated valid datagrams, valid datagrams with one tag bit
 * flipped, valid messages sealed with a wrong key, and replays of captured
 * valid datagrams (a Ping, an Announce, a Request), paced to a rate with
 * sendmmsg. Prints what it sent as one JSON line.
 *
 * Usage: flooder DST_IP:PORT SRC_IP SECRET_FILE PUBKEY_B64 RATE SECONDS
 * PUBKEY_B64 is a configured peer's key, so the replayed Announce is an
 * authentic one about a real peer.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include "wgautomesh.h"

#define BATCH 64

enum kind { RANDOM, TRUNCATED, BADTAG, WRONGKEY, REPLAY, NKINDS };
static const char *const kind_names[NKINDS] = {"random", "truncated", "badtag",
                                               "wrongkey", "replay"};
/* Out of 20: 5 random, 4 truncated, 4 bad tag, 4 wrong key, 3 replays. */
static const enum kind mix[20] = {
    RANDOM,    RANDOM,    RANDOM,   RANDOM, RANDOM, TRUNCATED, TRUNCATED,
    TRUNCATED, TRUNCATED, BADTAG,   BADTAG, BADTAG, BADTAG,    WRONGKEY,
    WRONGKEY,  WRONGKEY,  WRONGKEY, REPLAY, REPLAY, REPLAY};

#define RANDOM_MAX 2000

struct pkt {
  uint8_t b[RANDOM_MAX];
  size_t n;
};

static uint64_t now_ns(void) {
  struct timespec ts;

  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

static void seal(struct pkt *p, const uint8_t key[WGAM_KEY_LEN],
                 const wgam_msg *msg) {
  uint8_t plain[WGAM_MAX_PLAINTEXT_LEN], nonce[WGAM_NONCE_LEN];
  wgam_ssize n = wgam_msg_encode(plain, sizeof(plain), msg);

  if (n < 0) {
    fprintf(stderr, "encode: %s\n", wgam_strerror((int)n));
    exit(1);
  }
  randombytes_buf(nonce, sizeof(nonce));
  n = wgam_pkt_seal(p->b, sizeof(p->b), key, nonce, plain, (size_t)n);
  if (n < 0) {
    fprintf(stderr, "seal: %s\n", wgam_strerror((int)n));
    exit(1);
  }
  p->n = (size_t)n;
}

int main(int argc, char **argv) {
  uint8_t secret[4096], key[WGAM_KEY_LEN], wrong[WGAM_KEY_LEN];
  struct pkt valid[3], *bufs;
  struct mmsghdr msgs[BATCH];
  struct iovec iov[BATCH];
  struct sockaddr_in dst = {.sin_family = AF_INET},
                     src = {.sin_family = AF_INET};
  uint64_t counts[NKINDS] = {0}, sent = 0, failed = 0, start, total;
  unsigned long rate, seconds;
  wgam_msg *msg = calloc(1, sizeof(*msg));
  ssize_t secretlen;
  char *colon;
  int fd, sfd;

  if (argc != 7) {
    fprintf(stderr, "usage: flooder DST_IP:PORT SRC_IP SECRET_FILE "
                    "PUBKEY_B64 RATE SECONDS\n");
    return 2;
  }
  if (sodium_init() < 0 || !msg)
    return 1;
  colon = strrchr(argv[1], ':');
  if (!colon)
    return 2;
  *colon = '\0';
  if (inet_pton(AF_INET, argv[1], &dst.sin_addr) != 1 ||
      inet_pton(AF_INET, argv[2], &src.sin_addr) != 1)
    return 2;
  dst.sin_port = htons((uint16_t)atoi(colon + 1));
  rate = strtoul(argv[5], NULL, 10);
  seconds = strtoul(argv[6], NULL, 10);
  total = (uint64_t)rate * seconds;

  sfd = open(argv[3], O_RDONLY);
  if (sfd < 0 || (secretlen = read(sfd, secret, sizeof(secret))) < 0) {
    perror(argv[3]);
    return 1;
  }
  close(sfd);
  wgam_key_derive(key, secret, (size_t)secretlen);
  wgam_key_derive(wrong, (const uint8_t *)"not the secret", 14);

  /* The captured valid datagrams that are replayed. */
  msg->type = WGAM_MSG_PING;
  seal(&valid[0], key, msg);
  msg->type = WGAM_MSG_ANNOUNCE;
  msg->pubkey = (const uint8_t *)argv[4];
  msg->pubkeylen = strlen(argv[4]);
  msg->nendpoints = 1;
  wgam_addr_parse(&msg->endpoints[0].addr, "198.51.100.2:51820", 0);
  msg->endpoints[0].time = 1000000000; /* old: changes nothing */
  seal(&valid[1], key, msg);
  msg->type = WGAM_MSG_REQUEST;
  msg->pubkeylen = 0;
  msg->nendpoints = 0;
  seal(&valid[2], key, msg);

  fd = socket(AF_INET, SOCK_DGRAM, 0);
  if (fd < 0 || bind(fd, (struct sockaddr *)&src, sizeof(src)) < 0) {
    perror("socket");
    return 1;
  }
  bufs = calloc(BATCH, sizeof(*bufs));
  if (!bufs)
    return 1;

  start = now_ns();
  while (sent < total) {
    uint64_t due = (uint64_t)((double)(now_ns() - start) * (double)rate / 1e9);
    int n, k;

    if (due <= sent) {
      struct timespec ts = {0, 200000}; /* 0.2 ms */

      nanosleep(&ts, NULL);
      continue;
    }
    n = (int)(due - sent < BATCH ? due - sent : BATCH);
    if ((uint64_t)n > total - sent)
      n = (int)(total - sent);
    for (int i = 0; i < n; i++) {
      uint64_t seq = sent + (uint64_t)i;
      enum kind kd = mix[seq % 20];
      struct pkt *p = &bufs[i];

      switch (kd) {
      case RANDOM:
        p->n = randombytes_uniform(RANDOM_MAX + 1);
        randombytes_buf(p->b, p->n);
        break;
      case TRUNCATED:
        *p = valid[seq % 3];
        p->n = randombytes_uniform((uint32_t)p->n);
        break;
      case BADTAG:
        *p = valid[seq % 3];
        p->b[WGAM_NONCE_LEN + randombytes_uniform(WGAM_TAG_LEN)] ^=
            (uint8_t)(1u << randombytes_uniform(8));
        break;
      case WRONGKEY:
        msg->type = WGAM_MSG_PING;
        seal(p, wrong, msg);
        break;
      default:
        *p = valid[seq % 3];
        break;
      }
      counts[kd]++;
      iov[i].iov_base = p->b;
      iov[i].iov_len = p->n;
      memset(&msgs[i], 0, sizeof(msgs[i]));
      msgs[i].msg_hdr.msg_name = &dst;
      msgs[i].msg_hdr.msg_namelen = sizeof(dst);
      msgs[i].msg_hdr.msg_iov = &iov[i];
      msgs[i].msg_hdr.msg_iovlen = 1;
    }
    k = sendmmsg(fd, msgs, (unsigned)n, 0);
    if (k < 0) {
      if (errno != EAGAIN && errno != ENOBUFS && errno != EINTR) {
        perror("sendmmsg");
        return 1;
      }
      k = 0;
    }
    /* Whatever did not go is counted as failed, not retried: the counts
     * below are of datagrams handed to the kernel. */
    for (int i = k; i < n; i++) {
      counts[mix[(sent + (uint64_t)i) % 20]]--;
      failed++;
    }
    sent += (uint64_t)n;
  }
  {
    double secs = (double)(now_ns() - start) / 1e9;
    uint64_t ok = sent - failed;

    printf("{\"sent\":%llu,\"failed\":%llu,\"seconds\":%.2f,\"rate\":%.0f",
           (unsigned long long)ok, (unsigned long long)failed, secs,
           (double)ok / secs);
    for (int i = 0; i < NKINDS; i++)
      printf(",\"%s\":%llu", kind_names[i], (unsigned long long)counts[i]);
    printf("}\n");
  }
  free(bufs);
  free(msg);
  close(fd);
  return 0;
}
