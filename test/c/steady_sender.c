// A client that sends like the TT-Metal runtime's AllocationClient: one packed 144-byte struct per
// message, written whole with a blocking send() — no MSG_NOSIGNAL, SIGPIPE left at its default, so
// a server that closes the connection kills it (exit status 141), exactly as it kills the runtime.
// The test drives it through stdin: each line "N" sends the next N frames of its sequence, then
// prints "sent TOTAL"; stdin closing ends it (exit 0). Until then it stays alive, owning what it
// allocated. Frame k of the sequence (k = 0, 1, …):
//   alloc mode: ALLOC of buffer id(k) = 0x100000000 + k * 0x40, size 4096 + (k % 7) * 64, DRAM, on
//               device k % DEVICES;
//   mix mode:   the same ALLOCs, and after every third one (k % 3 == 2) a FREE of id(k - 1): the
//               state then holds ref counts of 1 and frees, still known from k alone (the test's
//               model, test/helpers/steady.ts).
//
//   cc -std=c11 -o steady_sender steady_sender.c
//   steady_sender SOCKET [alloc|mix] [DEVICES] [BASE]
// BASE (default 0) shifts the ids (id(k) uses k + BASE), so that several senders hold their own.
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>
#include "frame_head.h"

#pragma pack(push, 1)
struct Frame {
    TT_FRAME_HEAD;
    uint8_t rest[104]; /* the 144-byte frame's counters: zero in requests */
};
#pragma pack(pop)
_Static_assert(sizeof(struct Frame) == 144, "the runtime's 144-byte frame");

static int sock = -1;
static int devices = 1;
static uint64_t base = 0;

static void send_frame(uint8_t type, uint64_t k) {
    struct Frame m;
    memset(&m, 0, sizeof m);
    m.type = type;
    m.device_id = (int32_t)(k % (uint64_t)devices);
    m.size = type == 1 ? 4096 + (k % 7) * 64 : 0;
    m.process_id = (int32_t)getpid();
    m.buffer_id = 0x100000000ull + (k + base) * 0x40;
    if (type == 1) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        m.timestamp = (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
    }
    size_t off = 0;
    while (off < sizeof m) {
        ssize_t n = send(sock, (const char *)&m + off, sizeof m - off, 0); /* as the runtime: flags 0 */
        if (n < 0) {
            if (errno == EINTR) continue;
            fprintf(stderr, "steady_sender: send: %s\n", strerror(errno));
            exit(1);
        }
        off += (size_t)n;
    }
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: steady_sender SOCKET [alloc|mix] [DEVICES]\n");
        return 2;
    }
    int mix = argc > 2 && strcmp(argv[2], "mix") == 0;
    if (argc > 3) devices = atoi(argv[3]) > 0 ? atoi(argv[3]) : 1;
    if (argc > 4) base = strtoull(argv[4], NULL, 10);
    struct sockaddr_un addr;
    memset(&addr, 0, sizeof addr);
    addr.sun_family = AF_UNIX;
    if (strlen(argv[1]) >= sizeof addr.sun_path) return 2;
    strcpy(addr.sun_path, argv[1]);
    sock = socket(AF_UNIX, SOCK_STREAM, 0);
    if (sock < 0 || connect(sock, (struct sockaddr *)&addr, sizeof addr) < 0) {
        fprintf(stderr, "steady_sender: connect: %s\n", strerror(errno));
        return 1;
    }
    printf("connected pid=%d\n", (int)getpid());
    fflush(stdout);
    uint64_t k = 0, frames = 0;
    char line[64];
    while (fgets(line, sizeof line, stdin)) {
        uint64_t n = strtoull(line, NULL, 10);
        for (uint64_t i = 0; i < n; i++, k++) {
            send_frame(1, k);
            frames++;
            if (mix && k % 3 == 2) {
                send_frame(2, k - 1);
                frames++;
            }
        }
        printf("sent %llu frames %llu\n", (unsigned long long)k, (unsigned long long)frames);
        fflush(stdout);
    }
    return 0;
}
