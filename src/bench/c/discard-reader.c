/* The socket limit for `npm run bench`: accepts NCONN connections on a Unix socket and reads
 * every byte into one buffer that nobody looks at. Whatever rate the load generators reach
 * against this reader is the most any server could see from them. */
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

static char buf[1 << 18];

int main(int argc, char **argv) {
  if (argc < 3) { fprintf(stderr, "usage: discard-reader SOCKET NCONN\n"); return 2; }
  int nconn = atoi(argv[2]);
  int ls = socket(AF_UNIX, SOCK_STREAM, 0);
  struct sockaddr_un a; memset(&a, 0, sizeof a); a.sun_family = AF_UNIX;
  strncpy(a.sun_path, argv[1], sizeof a.sun_path - 1);
  unlink(argv[1]);
  if (bind(ls, (struct sockaddr *)&a, sizeof a) || listen(ls, 128)) { perror("bind/listen"); return 1; }
  printf("listening\n"); fflush(stdout);
  struct pollfd *p = calloc((size_t)nconn + 1, sizeof *p);
  int accepted = 0, open = 0;
  unsigned long long total = 0;
  p[0].fd = ls; p[0].events = POLLIN;
  for (int i = 1; i <= nconn; i++) { p[i].fd = -1; p[i].events = POLLIN; }
  while (accepted < nconn || open > 0) {
    if (poll(p, (nfds_t)nconn + 1, -1) < 0) continue;
    if (p[0].revents & POLLIN) {
      int c = accept(ls, NULL, NULL);
      if (c >= 0) { p[++accepted].fd = c; open++; if (accepted == nconn) p[0].fd = -1; }
    }
    for (int i = 1; i <= accepted; i++) {
      if (p[i].fd < 0 || !p[i].revents) continue;
      ssize_t n = read(p[i].fd, buf, sizeof buf);
      if (n > 0) total += (unsigned long long)n;
      else { close(p[i].fd); p[i].fd = -1; open--; }
    }
  }
  printf("bytes %llu\n", total); fflush(stdout);
  unlink(argv[1]);
  return 0;
}
