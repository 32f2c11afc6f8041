/* SPDX-License-Identifier: MIT */
/*
 * A main() for the fuzz targets when libFuzzer is not available (gcc, or a
 * build without -Dfuzzing=true): feeds every file given (or every file of a
 * directory given), then mutated copies of them and random inputs, to the
 * same LLVMFuzzerTestOneInput. A crash or a failed invariant aborts, and the
 * input is written to $WGAM_FUZZ_CRASH_DIR (default: the current directory)
 * first so it can be replayed.
 *
 * Usage: replay [FILE|DIR]...
 * Environment: WGAM_FUZZ_RUNS (mutated inputs, default 5000),
 * WGAM_FUZZ_SECONDS (time budget for them, default 60), WGAM_FUZZ_SEED,
 * WGAM_FUZZ_MAXLEN (default 4096).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "fuzz_common.h"

struct input {
  uint8_t *p;
  size_t n;
};

static struct input *seeds;
static size_t nseeds, capseeds;
static const uint8_t *cur;
static size_t curlen;

static unsigned long env_ul(const char *name, unsigned long def) {
  const char *v = getenv(name);

  return v && *v ? strtoul(v, NULL, 10) : def;
}

/* Saves the input being run when it crashes, then dies as it would. */
static void on_crash(int sig) {
  const char *dir = getenv("WGAM_FUZZ_CRASH_DIR");
  char path[4096];
  int fd;

  snprintf(path, sizeof(path), "%s/crash-replay-%d", dir ? dir : ".",
           (int)getpid());
  fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd >= 0) {
    if (write(fd, cur, curlen) < 0)
      (void)0;
    close(fd);
  }
  signal(sig, SIG_DFL);
  raise(sig);
}

static void add_seed(uint8_t *p, size_t n) {
  if (nseeds == capseeds) {
    capseeds = capseeds ? capseeds * 2 : 64;
    seeds = realloc(seeds, capseeds * sizeof(*seeds));
    if (!seeds) {
      perror("realloc");
      exit(1);
    }
  }
  seeds[nseeds].p = p;
  seeds[nseeds].n = n;
  nseeds++;
}

static int load_file(const char *path) {
  struct stat st;
  uint8_t *p;
  FILE *f = fopen(path, "rb");
  size_t n;

  if (!f || fstat(fileno(f), &st) < 0) {
    fprintf(stderr, "%s: %s\n", path, strerror(errno));
    if (f)
      fclose(f);
    return -1;
  }
  p = malloc((size_t)st.st_size + 1);
  if (!p) {
    fclose(f);
    return -1;
  }
  n = fread(p, 1, (size_t)st.st_size, f);
  fclose(f);
  add_seed(p, n);
  return 0;
}

static int load_path(const char *path) {
  struct stat st;
  DIR *dir;
  struct dirent *e;
  char sub[4096];

  if (stat(path, &st) < 0) {
    fprintf(stderr, "%s: %s\n", path, strerror(errno));
    return -1;
  }
  if (!S_ISDIR(st.st_mode))
    return load_file(path);
  dir = opendir(path);
  if (!dir)
    return -1;
  while ((e = readdir(dir))) {
    if (e->d_name[0] == '.')
      continue;
    snprintf(sub, sizeof(sub), "%s/%s", path, e->d_name);
    if (stat(sub, &st) == 0 && S_ISREG(st.st_mode) && load_file(sub) < 0) {
      closedir(dir);
      return -1;
    }
  }
  closedir(dir);
  return 0;
}

static uint64_t rng;

static uint64_t next(void) {
  /* splitmix64: reproducible from WGAM_FUZZ_SEED */
  uint64_t z = (rng += 0x9e3779b97f4a7c15ULL);

  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

static size_t below(size_t n) {
  return n ? (size_t)(next() % n) : 0;
}

/* One libFuzzer-like mutation of @p (length *@n, capacity @cap). */
static void mutate(uint8_t *p, size_t *n, size_t cap) {
  static const uint8_t interesting[] = {0,    1,    2,    0x7f, 0x80,
                                        0xff, 0xfe, 0x40, 0x2c, 0x10};
  size_t i, k;

  switch (next() % 9) {
  case 0: /* flip a bit */
    if (*n)
      p[below(*n)] ^= (uint8_t)(1u << below(8));
    break;
  case 1: /* random byte */
    if (*n)
      p[below(*n)] = (uint8_t)next();
    break;
  case 2: /* interesting byte (lengths, tags, limits) */
    if (*n)
      p[below(*n)] = interesting[below(sizeof(interesting))];
    break;
  case 3: /* insert bytes */
    k = 1 + below(8);
    if (*n + k <= cap) {
      i = below(*n + 1);
      memmove(p + i + k, p + i, *n - i);
      for (size_t j = 0; j < k; j++)
        p[i + j] = (uint8_t)next();
      *n += k;
    }
    break;
  case 4: /* delete a range */
    if (*n) {
      i = below(*n);
      k = 1 + below(*n - i);
      memmove(p + i, p + i + k, *n - i - k);
      *n -= k;
    }
    break;
  case 5: /* truncate */
    *n = below(*n + 1);
    break;
  case 6: /* duplicate a range at the end */
    if (*n) {
      i = below(*n);
      k = 1 + below(*n - i);
      if (*n + k <= cap) {
        memcpy(p + *n, p + i, k);
        *n += k;
      }
    }
    break;
  case 7: /* splice another seed in */
    if (nseeds) {
      const struct input *s = &seeds[below(nseeds)];

      i = below(*n + 1);
      k = s->n < cap - i ? s->n : cap - i;
      memcpy(p + i, s->p, k);
      if (i + k > *n)
        *n = i + k;
    }
    break;
  default: { /* a little-endian u32/u64 length or tag set to an extreme */
    static const uint64_t v[] = {
        0,          1,     44,  0xffffffffULL, 0x7fffffffffffffffULL,
        UINT64_MAX, 10000, 1500};
    uint64_t x = v[below(sizeof(v) / sizeof(v[0]))];

    k = next() & 1 ? 8 : 4;
    if (*n >= k) {
      i = below(*n - k + 1);
      for (size_t j = 0; j < k; j++)
        p[i + j] = (uint8_t)(x >> (8 * j));
    }
    break;
  }
  }
}

int main(int argc, char **argv) {
  unsigned long runs = env_ul("WGAM_FUZZ_RUNS", 5000);
  unsigned long seconds = env_ul("WGAM_FUZZ_SECONDS", 60);
  size_t maxlen = env_ul("WGAM_FUZZ_MAXLEN", 4096), n;
  time_t start = time(NULL);
  unsigned long done = 0;
  uint8_t *buf;

  rng = env_ul("WGAM_FUZZ_SEED", 1);
  signal(SIGABRT, on_crash);
  signal(SIGSEGV, on_crash);
  signal(SIGBUS, on_crash);
  signal(SIGFPE, on_crash);
  for (int i = 1; i < argc; i++)
    if (load_path(argv[i]) < 0)
      return 1;
  for (size_t i = 0; i < nseeds; i++)
    if (seeds[i].n > maxlen)
      maxlen = seeds[i].n;
  buf = malloc(maxlen + 1);
  if (!buf)
    return 1;

  for (size_t i = 0; i < nseeds; i++) {
    cur = seeds[i].p;
    curlen = seeds[i].n;
    LLVMFuzzerTestOneInput(seeds[i].p, seeds[i].n);
  }
  /* The empty input and a few fixed edge cases. */
  cur = buf;
  curlen = 0;
  LLVMFuzzerTestOneInput(buf, 0);

  for (; done < runs; done++) {
    if ((done & 63) == 0 && seconds &&
        (unsigned long)(time(NULL) - start) >= seconds)
      break;
    if (nseeds && next() % 10) {
      const struct input *s = &seeds[below(nseeds)];

      n = s->n < maxlen ? s->n : maxlen;
      memcpy(buf, s->p, n);
      for (size_t m = 1 + below(8); m; m--)
        mutate(buf, &n, maxlen);
    } else {
      n = below(next() & 1 ? 64 : maxlen + 1);
      for (size_t i = 0; i < n; i++)
        buf[i] = (uint8_t)next();
    }
    cur = buf;
    curlen = n;
    LLVMFuzzerTestOneInput(buf, n);
  }
  printf("replay: %zu seed inputs and %lu mutated/random inputs in %lds, "
         "no failure\n",
         nseeds, done, (long)(time(NULL) - start));
  for (size_t i = 0; i < nseeds; i++)
    free(seeds[i].p);
  free(seeds);
  free(buf);
  return 0;
}
