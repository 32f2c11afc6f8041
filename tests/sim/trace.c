/* SPDX-License-Identifier: MIT */
/*
 * Where the time to full mesh goes (--trace-last K, --trace-pair A:B).
 *
 * --trace-last keeps, per directed pair, when the device first got an
 * endpoint for the peer (written by the engine, or taken from a packet),
 * the handshake initiations sent and what became of those of the other
 * end, the re-creations of the entry and the first session. At the end it
 * prints when the pairs connected (100 ms bins), the K last pairs with all
 * of that, and a count of what the pairs connected in the last quarter
 * before full mesh had in common.
 *
 * --trace-pair prints every device event of one pair as it happens (the
 * engine's own log of one node: --log-node).
 *
 * Tracing only observes: the run, its digest included, is the same with
 * and without it.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sim.h"

/* Per directed pair i -> j (stamps: ms + 1, 0 = never). */
struct ptr {
  uint32_t ep;      /* device i first got an endpoint for j from the engine */
  uint32_t roam;    /* ... or from a packet of j, before that */
  uint32_t init1;   /* first initiation sent to an endpoint */
  uint32_t ever;    /* first session */
  uint16_t ninit;   /* initiations sent to an endpoint, before the session */
  uint16_t noep;    /* initiations due without an endpoint, before it */
  uint8_t nremove;  /* the entry removed (re-created), before it */
  uint8_t drop_nat; /* j's initiations dropped at i's NAT, before it */
  uint8_t drop_nopeer; /* j's initiations with no entry for j on i */
  uint8_t resp_stale;  /* responses from j that found no initiation */
  uint8_t crossed;     /* j's initiation came while ours was under way */
  uint32_t sent;       /* last initiation sent to an endpoint */
};

struct trace {
  struct ptr *p; /* n * n, NULL without --trace-last */
  uint32_t *start;
  uint32_t last;
  const char *csv;
  int64_t a, b; /* --trace-pair, -1: none */
};

static struct ptr *PT(struct sim *s, uint32_t i, uint32_t j) {
  return &s->tr->p[(size_t)i * s->n + j];
}

static int traced(const struct sim *s, uint32_t i, uint32_t j) {
  return ((int64_t)i == s->tr->a && (int64_t)j == s->tr->b) ||
         ((int64_t)i == s->tr->b && (int64_t)j == s->tr->a);
}

static double ts_s(uint32_t stamp) {
  return stamp ? (double)(stamp - 1) / 1000 : -1;
}

static void say(struct sim *s, uint32_t i, uint32_t j, const char *what,
                uint32_t ip, uint16_t port) {
  const struct dpeer *dp = DP(s, i, j);

  fprintf(stderr,
          "  trace %.3f %" PRIu32 "->%" PRIu32 " %s %u.%u.%u.%u:%u"
          " (entry: ep %u.%u.%u.%u:%u flags %#x ka %u)\n",
          (double)s->now / 1e9, i, j, what, ip >> 24, (ip >> 16) & 0xff,
          (ip >> 8) & 0xff, ip & 0xff, port, dp->ep_ip >> 24,
          (dp->ep_ip >> 16) & 0xff, (dp->ep_ip >> 8) & 0xff, dp->ep_ip & 0xff,
          dp->ep_port, dp->flags, dp->ka);
}

int trace_init(struct sim *s, uint32_t last, const char *csv, int64_t a,
               int64_t b) {
  if (!last && !csv && a < 0)
    return 0;
  s->tr = calloc(1, sizeof(*s->tr));
  if (!s->tr)
    return -1;
  s->tr->last = last;
  s->tr->csv = csv;
  s->tr->a = a;
  s->tr->b = b;
  if (last || csv) {
    s->tr->p = calloc((size_t)s->n * s->n, sizeof(*s->tr->p));
    s->tr->start = calloc(s->n, sizeof(*s->tr->start));
    if (!s->tr->p || !s->tr->start)
      return -1;
  }
  return 0;
}

void trace_free(struct sim *s) {
  if (!s->tr)
    return;
  free(s->tr->p);
  free(s->tr->start);
  free(s->tr);
  s->tr = NULL;
}

void trace_start(struct sim *s, uint32_t i) {
  if (s->tr->start)
    s->tr->start[i] = s->stamp;
  if ((int64_t)i == s->tr->a || (int64_t)i == s->tr->b)
    fprintf(stderr, "  trace %.3f node %" PRIu32 " starts\n",
            (double)s->now / 1e9, i);
}

void trace_update(struct sim *s, uint32_t i, uint32_t j,
                  const wgam_peer_update *u) {
  if (s->tr->p) {
    struct ptr *t = PT(s, i, j);

    if ((u->flags & WGAM_PEER_REMOVE_ME) && !t->ever && t->nremove < 255)
      t->nremove++;
    if ((u->flags & WGAM_PEER_HAS_ENDPOINT) && !t->ep)
      t->ep = s->stamp;
  }
  if (traced(s, i, j)) {
    char what[96];

    snprintf(what, sizeof(what), "update%s%s ka %d to",
             u->flags & WGAM_PEER_REMOVE_ME ? " remove" : "",
             u->flags & WGAM_PEER_HAS_ENDPOINT ? " endpoint" : "",
             u->flags & WGAM_PEER_HAS_KEEPALIVE ? u->persistent_keepalive : -1);
    say(s, i, j, what,
        u->flags & WGAM_PEER_HAS_ENDPOINT ? addr_ip(&u->endpoint) : 0,
        u->flags & WGAM_PEER_HAS_ENDPOINT ? u->endpoint.port : 0);
  }
}

void trace_send_init(struct sim *s, uint32_t i, uint32_t j) {
  const struct dpeer *dp = DP(s, i, j);

  if (s->tr->p) {
    struct ptr *t = PT(s, i, j);

    if (!t->ever && dp->ep_ip && t->ninit < UINT16_MAX)
      t->ninit++;
    else if (!t->ever && !dp->ep_ip && t->noep < UINT16_MAX)
      t->noep++;
    if (dp->ep_ip && !t->init1)
      t->init1 = s->stamp;
    if (dp->ep_ip)
      t->sent = s->stamp;
  }
  if (traced(s, i, j))
    say(s, i, j, dp->ep_ip ? "initiation to" : "initiation, no endpoint",
        dp->ep_ip, dp->ep_port);
}

/* A packet of @from for @to went nowhere: @why. */
void trace_drop(struct sim *s, uint32_t from, uint32_t to, uint8_t type,
                const char *why) {
  if (s->tr->p && type == PKT_INIT && to < s->n) {
    struct ptr *t = PT(s, to, from);

    if (!t->ever) {
      if (!strcmp(why, "nat") && t->drop_nat < 255)
        t->drop_nat++;
      else if (!strcmp(why, "no peer") && t->drop_nopeer < 255)
        t->drop_nopeer++;
    }
  }
  if (s->tr->p && type == PKT_RESP && !strcmp(why, "stale") &&
      !PT(s, to, from)->ever && PT(s, to, from)->resp_stale < 255)
    PT(s, to, from)->resp_stale++;
  if (to < s->n && traced(s, from, to)) {
    static const char *names[] = {"init", "resp", "data", "lan"};
    char what[64];

    snprintf(what, sizeof(what), "%s from %" PRIu32 " dropped: %s",
             names[type & 3], from, why);
    say(s, to, from, what, 0, 0);
  }
}

void trace_arrive(struct sim *s, uint32_t h, uint32_t from, uint8_t type,
                  size_t len) {
  static const char *names[] = {"init", "resp", "data", "lan"};
  char what[64];

  if (!traced(s, h, from) || (type == PKT_DATA && len > 0))
    return;
  snprintf(what, sizeof(what), "%s%s arrives from", names[type & 3],
           type == PKT_DATA ? " (keepalive)" : "");
  say(s, h, from, what, 0, 0);
}

/* An initiation of @from arrives at @h: crossing, if h's own is under way
 * (sent to an endpoint, unanswered, within WireGuard's retry time). */
void trace_init_in(struct sim *s, uint32_t h, uint32_t from) {
  const struct dpeer *dp = DP(s, h, from);
  struct ptr *t;

  if (!s->tr->p)
    return;
  t = PT(s, h, from);
  if ((dp->flags & DP_PENDING) && t->sent && t->sent >= dp->init &&
      age(s, t->sent) < WG_REKEY_TIMEOUT && !t->ever && t->crossed < 255)
    t->crossed++;
}

void trace_roam(struct sim *s, uint32_t h, uint32_t from) {
  if (s->tr->p && !PT(s, h, from)->ep && !PT(s, h, from)->roam)
    PT(s, h, from)->roam = s->stamp;
}

void trace_session(struct sim *s, uint32_t i, uint32_t j) {
  if (s->tr->p && !PT(s, i, j)->ever)
    PT(s, i, j)->ever = s->stamp;
  if (traced(s, i, j))
    say(s, i, j, "session", 0, 0);
}

void trace_read(struct sim *s, uint32_t i) {
  if ((int64_t)i == s->tr->a || (int64_t)i == s->tr->b) {
    uint32_t j =
        (int64_t)i == s->tr->a ? (uint32_t)s->tr->b : (uint32_t)s->tr->a;
    say(s, i, j, "device read", 0, 0);
  }
}

static const char *nat_short(int nat) {
  static const char *names[] = {"pub", "cone", "prc", "sym"};
  return names[nat & 3];
}

static uint32_t pair_at(struct sim *s, uint32_t i, uint32_t j) {
  uint32_t a = PT(s, i, j)->ever, b = PT(s, j, i)->ever;

  return a && b ? (a > b ? a : b) : 0;
}

/* When a direction could first have sent an initiation that works: both
 * started and it has an endpoint. */
static uint32_t dir_ready(struct sim *s, uint32_t i, uint32_t j) {
  const struct ptr *t = PT(s, i, j);
  uint32_t ep = t->ep && (!t->roam || t->ep < t->roam) ? t->ep : t->roam;
  uint32_t st =
      s->tr->start[i] > s->tr->start[j] ? s->tr->start[i] : s->tr->start[j];

  return ep > st ? ep : st;
}

static void csv_dir(FILE *f, struct sim *s, uint32_t i, uint32_t j) {
  const struct ptr *t = PT(s, i, j);

  fprintf(f, ",%.3f,%.3f,%.3f,%.3f,%u,%u,%u,%u,%u,%u,%u", ts_s(t->ep),
          ts_s(t->roam), ts_s(t->init1), ts_s(t->ever), t->ninit, t->noep,
          t->nremove, t->drop_nat, t->drop_nopeer, t->resp_stale, t->crossed);
}

/* Every connectable pair, one line each. */
static void write_csv(struct sim *s) {
  static const char *dir =
      "ep,roam,init1,session,inits,noep,removed,drop_nat,drop_noentry,"
      "stale,crossed";
  FILE *f = fopen(s->tr->csv, "w");

  if (!f) {
    perror(s->tr->csv);
    return;
  }
  fprintf(f, "i,j,nat_i,nat_j,start_i,start_j,key_i_greater,connected");
  for (int d = 0; d < 2; d++) {
    const char *c = dir;

    fputc(',', f);
    for (; *c; c++) {
      if (c == dir || c[-1] == ',')
        fputs(d ? "ji_" : "ij_", f);
      fputc(*c, f);
    }
  }
  fputc('\n', f);
  for (uint32_t i = 0; i < s->n; i++)
    for (uint32_t j = i + 1; j < s->n; j++) {
      if (!reachable(s, i, j))
        continue;
      fprintf(f, "%" PRIu32 ",%" PRIu32 ",%s,%s,%.3f,%.3f,%d,%.3f", i, j,
              nat_short(s->nodes[i].nat), nat_short(s->nodes[j].nat),
              ts_s(s->tr->start[i]), ts_s(s->tr->start[j]),
              memcmp(s->keys[i], s->keys[j], WGAM_KEY_LEN) > 0,
              ts_s(pair_at(s, i, j)));
      csv_dir(f, s, i, j);
      csv_dir(f, s, j, i);
      fputc('\n', f);
    }
  fclose(f);
}

static void print_dir(struct sim *s, uint32_t i, uint32_t j) {
  const struct ptr *t = PT(s, i, j);

  fprintf(stderr,
          "    %" PRIu32 "->%" PRIu32 ": ep %.3f roam %.3f init1 %.3f "
          "session %.3f; inits %u (no ep %u), removed %u, its inits dropped "
          "at NAT %u / no entry %u, stale responses %u, crossed %u\n",
          i, j, ts_s(t->ep), ts_s(t->roam), ts_s(t->init1), ts_s(t->ever),
          t->ninit, t->noep, t->nremove, t->drop_nat, t->drop_nopeer,
          t->resp_stale, t->crossed);
}

void trace_report(struct sim *s) {
  uint32_t bins[64] = {0}, top = 0, conv = 0, cut;
  uint64_t npairs = 0, c_removed = 0, c_nopeer = 0, c_nat = 0, c_stale = 0,
           c_late = 0, c_noep = 0, c_multi = 0, c_public = 0, c_cross = 0,
           all_cross = 0;
  uint32_t *last;
  size_t nlast = 0;

  if (!s->tr || !s->tr->p)
    return;
  if (s->tr->csv)
    write_csv(s);
  if (!s->tr->last)
    return;
  last = calloc(s->tr->last, 2 * sizeof(*last));
  if (!last)
    return;
  for (uint32_t i = 0; i < s->n; i++)
    for (uint32_t j = i + 1; j < s->n; j++) {
      uint32_t at = pair_at(s, i, j);

      if (!reachable(s, i, j) || !at)
        continue;
      bins[(at - 1) / 100 < 63 ? (at - 1) / 100 : 63]++;
      if ((at - 1) / 100 + 1 > top)
        top = (at - 1) / 100 + 1;
      if (at > conv)
        conv = at;
    }
  fprintf(stderr, "  [pairs connected per 100 ms:");
  for (uint32_t b = 0; b < top && b < 64; b++)
    fprintf(stderr, " %.1f:%" PRIu32, b / 10.0, bins[b]);
  fprintf(stderr, "]\n");
  /* The last quarter of the time to full mesh. */
  cut = conv - conv / 4;
  for (uint32_t i = 0; i < s->n; i++)
    for (uint32_t j = i + 1; j < s->n; j++) {
      uint32_t at = pair_at(s, i, j), ready;
      const struct ptr *a = PT(s, i, j), *b = PT(s, j, i);

      if (!reachable(s, i, j))
        continue;
      all_cross += a->crossed && b->crossed;
      if (at < cut)
        continue;
      npairs++;
      c_cross += a->crossed && b->crossed;
      ready = dir_ready(s, i, j) < dir_ready(s, j, i) ? dir_ready(s, i, j)
                                                      : dir_ready(s, j, i);
      c_public += s->nodes[i].nat == NAT_NONE && s->nodes[j].nat == NAT_NONE;
      c_removed += a->nremove || b->nremove;
      c_nopeer += a->drop_nopeer || b->drop_nopeer;
      c_nat += a->drop_nat || b->drop_nat;
      c_stale += a->resp_stale || b->resp_stale;
      c_noep += a->noep || b->noep;
      c_multi += a->ninit > 1 || b->ninit > 1;
      c_late += at - ready < 300 && ready > 0;
      if (nlast < s->tr->last) {
        last[2 * nlast] = i;
        last[2 * nlast + 1] = j;
        nlast++;
      } else {
        /* Keep the latest: replace the earliest held. */
        size_t e = 0;
        for (size_t k = 1; k < nlast; k++)
          if (pair_at(s, last[2 * k], last[2 * k + 1]) <
              pair_at(s, last[2 * e], last[2 * e + 1]))
            e = k;
        if (pair_at(s, last[2 * e], last[2 * e + 1]) < at) {
          last[2 * e] = i;
          last[2 * e + 1] = j;
        }
      }
    }
  fprintf(
      stderr,
      "  [%" PRIu64 " pairs connected at or after %.3f s: both public %" PRIu64
      "; an entry re-created %" PRIu64 "; an initiation found no entry %" PRIu64
      ", dropped at a NAT %" PRIu64 "; a stale response %" PRIu64
      "; an initiation without endpoint %" PRIu64 "; more than one "
      "initiation %" PRIu64 "; within 0.3 s of the first end ready %" PRIu64
      "; crossed %" PRIu64 " (of all pairs: %" PRIu64 ")]\n",
      npairs, ts_s(cut), c_public, c_removed, c_nopeer, c_nat, c_stale, c_noep,
      c_multi, c_late, c_cross, all_cross);
  for (size_t k = 0; k < nlast; k++) {
    uint32_t i = last[2 * k], j = last[2 * k + 1];

    fprintf(stderr,
            "  late pair %" PRIu32 " (%s, start %.3f) - %" PRIu32
            " (%s, start %.3f): connected %.3f\n",
            i, nat_short(s->nodes[i].nat), ts_s(s->tr->start[i]), j,
            nat_short(s->nodes[j].nat), ts_s(s->tr->start[j]),
            ts_s(pair_at(s, i, j)));
    print_dir(s, i, j);
    print_dir(s, j, i);
  }
  free(last);
}
