/* Load generator for `npm run bench`: one client process, like the runtime's AllocationClient,
 * writing 144-byte frames (docs/protocol.md) with blocking send(). Prints "ready" once connected,
 * waits for a line on stdin, sends, then prints "done FRAMES SECONDS".
 *
 *   loadgen SOCKET MODE FRAMES DURATION_MS PID_BASE NPIDS ADDR_BASE BATCH
 * MODE  pairs  ALLOC addr i / FREE addr i-LAG over 8 devices, BATCH frames per send()
 *       single the same frames, one send() per frame (what the runtime does)
 *       allocs FRAMES ALLOCs of distinct addresses (filling the table), PIDs PID_BASE + i % NPIDS
 *       query  one QUERY every 1 ms (blocking for each 144-byte reply); prints latency percentiles
 * FRAMES 0 = run for DURATION_MS instead. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define FS 144
#define DEVICES 8
#define LAG 1024

static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + t.tv_nsec * 1e-9; }

static void frame(uint8_t *f, int type, int dev, uint64_t size, int bt, int pid, uint64_t addr) {
  memset(f, 0, FS);
  f[0] = (uint8_t)type;
  memcpy(f + 4, &dev, 4); memcpy(f + 8, &size, 8); f[16] = (uint8_t)bt;
  memcpy(f + 20, &pid, 4); memcpy(f + 24, &addr, 8);
}

static int send_all(int s, const uint8_t *p, size_t n) {
  while (n) { ssize_t w = send(s, p, n, 0); if (w <= 0) return -1; p += w; n -= (size_t)w; }
  return 0;
}

static int cmp(const void *a, const void *b) { double x = *(const double *)a, y = *(const double *)b; return x < y ? -1 : x > y; }

int main(int argc, char **argv) {
  if (argc < 9) { fprintf(stderr, "usage: loadgen SOCKET MODE FRAMES DURATION_MS PID_BASE NPIDS ADDR_BASE BATCH\n"); return 2; }
  const char *mode = argv[2];
  long long frames = atoll(argv[3]);
  double duration = atof(argv[4]) / 1000.0;
  int pidBase = atoi(argv[5]), npids = atoi(argv[6]);
  uint64_t base = strtoull(argv[7], NULL, 0);
  int batch = atoi(argv[8]);
  int s = socket(AF_UNIX, SOCK_STREAM, 0);
  struct sockaddr_un a; memset(&a, 0, sizeof a); a.sun_family = AF_UNIX;
  strncpy(a.sun_path, argv[1], sizeof a.sun_path - 1);
  if (connect(s, (struct sockaddr *)&a, sizeof a)) { perror("connect"); return 1; }
  printf("ready\n"); fflush(stdout);
  char line[64];
  if (!fgets(line, sizeof line, stdin)) return 0;
  uint8_t *buf = malloc((size_t)FS * (size_t)batch);
  long long sent = 0;
  double t0 = now();
  if (!strcmp(mode, "pairs") || !strcmp(mode, "single")) {
    /* One pre-packed batch, sent again and again: it is self-consistent because the addresses
     * cycle modulo the batch (the first LAG frees of the first batch are unknown frees). */
    int pairs = batch / 2;
    for (int i = 0; i < pairs; i++) {
      int dev = i % DEVICES;
      frame(buf + (size_t)(2 * i) * FS, 1, dev, 4096u * (1 + i % 64), i % 2, pidBase, base + (uint64_t)i * 4096);
      int j = (i + pairs - LAG % pairs) % pairs;
      frame(buf + (size_t)(2 * i + 1) * FS, 2, j % DEVICES, 0, 0, pidBase, base + (uint64_t)j * 4096);
    }
    int single = !strcmp(mode, "single");
    for (;;) {
      if (single) { for (int i = 0; i < 2 * pairs; i++) if (send_all(s, buf + (size_t)i * FS, FS)) goto out; }
      else if (send_all(s, buf, (size_t)FS * 2 * pairs)) goto out;
      sent += 2 * pairs;
      if (frames ? sent >= frames : now() - t0 >= duration) break;
    }
  } else if (!strcmp(mode, "allocs")) {
    static const int types[] = {0, 1, 3, 4, 0, 1, 0, 2};
    for (long long i = 0; i < frames;) {
      int n = 0;
      for (; n < batch && i < frames; n++, i++) {
        frame(buf + (size_t)n * FS, 1, (int)(i % DEVICES), 2048u * (1 + (uint64_t)(i * 2654435761u % 1000)),
              types[i % 8], pidBase + (int)(i % npids), base + (uint64_t)(i / DEVICES) * 4096);
      }
      if (send_all(s, buf, (size_t)n * FS)) goto out;
      sent += n;
    }
  } else if (!strcmp(mode, "query")) {
    int cap = 1 << 20;
    double *lat = malloc(sizeof(double) * (size_t)cap);
    uint8_t q[FS], r[FS];
    frame(q, 3, 0, 0, 0, pidBase, 0);
    while ((frames ? sent < frames : now() - t0 < duration) && sent < cap) {
      double t = now();
      if (send_all(s, q, FS)) goto out;
      size_t got = 0;
      while (got < FS) { ssize_t n = recv(s, r + got, FS - got, 0); if (n <= 0) goto out; got += (size_t)n; }
      lat[sent++] = (now() - t) * 1e3;
      struct timespec ts = {0, 1000000}; nanosleep(&ts, NULL);
    }
    qsort(lat, (size_t)sent, sizeof *lat, cmp);
    if (sent) printf("latency_ms p50 %.3f p99 %.3f max %.3f n %lld\n", lat[sent / 2], lat[(size_t)(sent * 0.99)], lat[sent - 1], sent);
  }
out:
  printf("done %lld %.6f\n", sent, now() - t0); fflush(stdout);
  close(s);
  return 0;
}
