// N real client processes for the exit-detection bench (src/bench/exit-latency.ts): each one
// connects to the server, reports B buffers (144-byte ALLOC frames under its own PID, at its own
// addresses) and waits; on "go" (a line on stdin) they exit at staggered times, one every
// STAGGER_US microseconds, in three ways in turn: close(socket) then _exit, _exit with the socket
// open (the kernel closes it), and SIGKILL. The parent waits for each with waitpid() and prints
//   exit PID MODE WAITPID_NS CHILD_NS
// (CLOCK_MONOTONIC ns: when waitpid returned, and the child's last instant before it exited).
//
//   cc -O2 -o exit-clients exit-clients.c
//   exit-clients SOCKET N B STAGGER_US
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static int64_t mono_ns(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (int64_t)t.tv_sec * 1000000000 + t.tv_nsec;
}

struct shared {
  volatile int64_t go_ns;
  volatile int64_t child_ns[];
};

static void send_all(int s, const char *p, size_t n) {
  while (n) {
    ssize_t w = send(s, p, n, 0);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) _exit(3);
    p += w;
    n -= (size_t)w;
  }
}

static void child(const char *path, int i, int b, long stagger_us, int ready_w, int go_r,
                  struct shared *sh) {
  struct sockaddr_un a;
  memset(&a, 0, sizeof a);
  a.sun_family = AF_UNIX;
  strncpy(a.sun_path, path, sizeof a.sun_path - 1);
  int s = socket(AF_UNIX, SOCK_STREAM, 0);
  if (s < 0 || connect(s, (struct sockaddr *)&a, sizeof a)) _exit(2);
  int32_t pid = (int32_t)getpid();
  size_t len = (size_t)b * 144;
  char *buf = calloc(1, len);
  for (int j = 0; j < b; j++) {
    char *f = buf + (size_t)j * 144;
    uint64_t size = 4096, id = ((uint64_t)pid << 24) + (uint64_t)j * 4096;
    f[0] = 1; /* ALLOC */
    memcpy(f + 8, &size, 8);
    f[16] = 0; /* DRAM */
    memcpy(f + 20, &pid, 4);
    memcpy(f + 24, &id, 8);
  }
  send_all(s, buf, len);
  char c = 'r';
  if (write(ready_w, &c, 1) != 1) _exit(4);
  close(ready_w);
  while (read(go_r, &c, 1) > 0) {
  } /* EOF: the parent has set the start time */
  struct timespec due;
  int64_t at = sh->go_ns + (int64_t)i * stagger_us * 1000;
  due.tv_sec = at / 1000000000;
  due.tv_nsec = at % 1000000000;
  while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &due, NULL) == EINTR) {
  }
  switch (i % 3) {
  case 0:
    close(s);
    sh->child_ns[i] = mono_ns();
    _exit(0);
  case 1:
    sh->child_ns[i] = mono_ns();
    _exit(0);
  default:
    sh->child_ns[i] = mono_ns();
    kill(getpid(), SIGKILL);
    pause();
  }
}

int main(int argc, char **argv) {
  if (argc < 5) {
    fprintf(stderr, "usage: exit-clients SOCKET N B STAGGER_US\n");
    return 1;
  }
  const char *path = argv[1];
  int n = atoi(argv[2]), b = atoi(argv[3]);
  long stagger_us = atol(argv[4]);
  struct shared *sh = mmap(NULL, sizeof(struct shared) + (size_t)n * 8, PROT_READ | PROT_WRITE,
                           MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (sh == MAP_FAILED) return 1;
  int ready[2], go[2];
  if (pipe(ready) || pipe(go)) return 1;
  pid_t *pids = calloc((size_t)n, sizeof *pids);
  int *modes = calloc((size_t)n, sizeof *modes);
  for (int i = 0; i < n; i++) {
    pid_t p = fork();
    if (p < 0) {
      perror("fork");
      return 1;
    }
    if (p == 0) {
      close(ready[0]);
      close(go[1]);
      child(path, i, b, stagger_us, ready[1], go[0], sh);
    }
    pids[i] = p;
    modes[i] = i % 3;
  }
  close(ready[1]);
  close(go[0]);
  char c;
  int got = 0;
  while (got < n) {
    ssize_t r = read(ready[0], &c, 1);
    if (r == 1) got++;
    else if (r == 0) break;
    else if (errno != EINTR) break;
  }
  printf("ready %d\n", got);
  fflush(stdout);
  char line[64];
  if (!fgets(line, sizeof line, stdin)) return 1;
  sh->go_ns = mono_ns() + 100 * 1000000LL; /* the first exit 100 ms after "go" */
  close(go[1]);
  const char *names[] = {"close+exit", "exit", "SIGKILL"};
  for (int k = 0; k < n; k++) {
    int st;
    pid_t p = waitpid(-1, &st, 0);
    int64_t t = mono_ns();
    if (p < 0) break;
    int i = 0;
    while (i < n && pids[i] != p) i++;
    printf("exit %d %s %lld %lld\n", (int)p, i < n ? names[modes[i]] : "?", (long long)t,
           (long long)(i < n ? sh->child_ns[i] : 0));
  }
  fflush(stdout);
  return 0;
}
