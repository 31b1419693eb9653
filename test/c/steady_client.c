/* A client that behaves like the TT-Metal runtime's AllocationClient for the restart tests and
 * bench: blocking send() of one whole frame per call, no MSG_NOSIGNAL, SIGPIPE left at its
 * default (a closed connection kills it with status 141), sending without pause until told to
 * stop. It allocates ADDR_BASE + i * 64 and frees the address allocated LIVE frames earlier, so it
 * holds exactly the last LIVE addresses (fewer while i < LIVE).
 *
 *   steady_client SOCKET FRAME_SIZE LIVE PACE_US [ADDR_BASE]
 * Prints "ready" once connected. A line "stop" on stdin (checked between sends) ends the sending:
 * it prints "held N first 0xA last 0xB frames F maxgap_us G" (G: the longest time between two
 * consecutive sends returning, what a restart's pause costs it) and waits for stdin to close
 * before it closes its connection and exits 0. */
#define _DEFAULT_SOURCE
#include <fcntl.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

static double now_us(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec * 1e6 + t.tv_nsec / 1e3;
}

static void frame(uint8_t *f, int fs, int type, uint64_t addr) {
  memset(f, 0, (size_t)fs);
  int pid = getpid(), dev = 0, bt = 0;
  uint64_t size = 4096, ts = (uint64_t)(now_us() * 1000);
  f[0] = (uint8_t)type;
  memcpy(f + 4, &dev, 4);
  memcpy(f + 8, &size, 8);
  f[16] = (uint8_t)bt;
  memcpy(f + 20, &pid, 4);
  memcpy(f + 24, &addr, 8);
  memcpy(f + 32, &ts, 8);
}

static void send_frame(int s, const uint8_t *f, int fs) {
  /* flags 0: a closed connection raises SIGPIPE, which kills this process, as it kills the runtime */
  for (int off = 0; off < fs;) {
    ssize_t w = send(s, f + off, (size_t)(fs - off), 0);
    if (w < 0) { perror("send"); exit(3); }
    off += (int)w;
  }
}

int main(int argc, char **argv) {
  if (argc < 5) { fprintf(stderr, "usage: steady_client SOCKET FRAME_SIZE LIVE PACE_US [BASE]\n"); return 2; }
  int fs = atoi(argv[2]);
  uint64_t live = strtoull(argv[3], NULL, 10);
  int pace = atoi(argv[4]);
  uint64_t base = argc > 5 ? strtoull(argv[5], NULL, 0) : 0x10000000ull;
  int s = socket(AF_UNIX, SOCK_STREAM, 0);
  struct sockaddr_un a;
  memset(&a, 0, sizeof a);
  a.sun_family = AF_UNIX;
  strncpy(a.sun_path, argv[1], sizeof a.sun_path - 1);
  if (connect(s, (struct sockaddr *)&a, sizeof a) != 0) { perror("connect"); return 2; }
  printf("ready\n");
  fflush(stdout);
  fcntl(0, F_SETFL, fcntl(0, F_GETFL) | O_NONBLOCK);
  uint8_t f[144];
  uint64_t i = 0, frames = 0;
  double last = now_us(), maxgap = 0;
  char line[64];
  size_t got = 0;
  for (;;) {
    if ((i & 127) == 0) {
      ssize_t r = read(0, line + got, sizeof line - 1 - got);
      if (r > 0) { got += (size_t)r; line[got] = 0; if (strstr(line, "stop")) break; }
    }
    frame(f, fs, 1, base + i * 64);
    send_frame(s, f, fs);
    frames++;
    if (i >= live) {
      frame(f, fs, 2, base + (i - live) * 64);
      send_frame(s, f, fs);
      frames++;
    }
    i++;
    double t = now_us();
    if (t - last > maxgap) maxgap = t - last;
    last = t;
    if (pace > 0) usleep((useconds_t)pace);
    if (pace > 0) last = now_us();
  }
  uint64_t held = i < live ? i : live;
  printf("held %llu first 0x%llx last 0x%llx frames %llu maxgap_us %.0f\n", (unsigned long long)held,
         (unsigned long long)(base + (i - held) * 64), (unsigned long long)(base + (i - 1) * 64),
         (unsigned long long)frames, maxgap);
  fflush(stdout);
  fcntl(0, F_SETFL, fcntl(0, F_GETFL) & ~O_NONBLOCK);
  while (read(0, line, sizeof line) > 0) {}
  close(s);
  return 0;
}
