// A client of the abandoned 648-byte generation, written from docs/protocol.md: the 72-byte
// message, then char buffer_name[64] and char stack_trace[512] (NUL-terminated, zero-filled; only
// Python allocations filled them). One packed struct per message, written whole with a blocking
// send(), host byte order. Compiled by test/frames648.test.ts with the machine's cc.
//
//   cc -std=c11 -o client648 client648.c
//   client648 SOCKET report     named and traced ALLOCs on two devices, one freed again; prints
//                               "ready" and keeps its buffers until stdin closes
//   client648 SOCKET many N     N ALLOCs, each with its own stack trace; prints "ready"; a line
//                               "free" on stdin frees them all (prints "freed"); EOF exits
#define _POSIX_C_SOURCE 200809L
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>
#include "frame_head.h"

enum { ALLOC = 1, FREE = 2 };
enum { DRAM = 0, L1 = 1 };

#pragma pack(push, 1)
struct AllocMessage648 {
    TT_FRAME_HEAD;
    uint64_t dram_allocated;
    uint64_t l1_allocated;
    uint64_t l1_small_allocated;
    uint64_t trace_allocated;
    char buffer_name[64];
    char stack_trace[512];
};
#pragma pack(pop)

_Static_assert(sizeof(struct AllocMessage648) == 648, "the 648-byte layout");
_Static_assert(offsetof(struct AllocMessage648, buffer_name) == 72, "name at 72");
_Static_assert(offsetof(struct AllocMessage648, stack_trace) == 136, "trace at 136");

static int fd = -1;

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void send_msg(const struct AllocMessage648 *m) {
    if (send(fd, m, sizeof *m, 0) != (ssize_t)sizeof *m) {
        perror("send");
        exit(1);
    }
}

static void alloc(int device, uint64_t id, uint64_t size, int type, const char *name,
                  const char *trace) {
    struct AllocMessage648 m;
    memset(&m, 0, sizeof m);
    m.type = ALLOC;
    m.device_id = device;
    m.size = size;
    m.buffer_type = (uint8_t)type;
    m.process_id = (int32_t)getpid();
    m.buffer_id = id;
    m.timestamp = now_ns();
    // strncpy zero-fills the rest of each field, as the Python client's ctypes buffers were
    strncpy(m.buffer_name, name, sizeof m.buffer_name - 1);
    strncpy(m.stack_trace, trace, sizeof m.stack_trace - 1);
    send_msg(&m);
}

static void release(int device, uint64_t id) {
    struct AllocMessage648 m;
    memset(&m, 0, sizeof m);
    m.type = FREE;
    m.device_id = device;
    m.process_id = (int32_t)getpid();
    m.buffer_id = id;
    send_msg(&m);
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: client648 SOCKET report|many N\n");
        return 2;
    }
    struct sockaddr_un a;
    memset(&a, 0, sizeof a);
    a.sun_family = AF_UNIX;
    strncpy(a.sun_path, argv[1], sizeof a.sun_path - 1);
    fd = socket(AF_UNIX, SOCK_STREAM, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        perror("connect");
        return 1;
    }
    char line[64];
    if (strcmp(argv[2], "report") == 0) {
        // A FREE first (no name: zeros at 72, 112 and 144, as in a 144-byte stream), then names.
        release(0, 0x999000);
        alloc(0, 0x10000, 4096, DRAM, "layer0.weight",
              "model.py:12:forward -> ttnn/tensor.py:88:to_device");
        alloc(1, 0x20000, 8192, L1, "", "model.py:40:attention -> ttnn/ops.py:3:matmul");
        alloc(0, 0x30000, 2048, DRAM, "kv_cache", "");
        alloc(0, 0x40000, 1024, DRAM, "scratch", "model.py:50:tmp -> ttnn/ops.py:9:alloc");
        release(0, 0x40000);
        printf("ready\n");
        fflush(stdout);
        while (fgets(line, sizeof line, stdin) != NULL) {
        }
        return 0;
    }
    if (strcmp(argv[2], "many") == 0 && argc > 3) {
        int n = atoi(argv[3]);
        char trace[512];
        for (int i = 0; i < n; i++) {
            snprintf(trace, sizeof trace, "gen.py:%d:step -> ttnn/alloc.py:%d:device_buffer", i,
                     1000 + i);
            alloc(0, 0x100000 + (uint64_t)i * 0x1000, 4096, DRAM, "gen", trace);
        }
        printf("ready\n");
        fflush(stdout);
        while (fgets(line, sizeof line, stdin) != NULL) {
            if (strncmp(line, "free", 4) != 0) continue;
            for (int i = 0; i < n; i++) release(0, 0x100000 + (uint64_t)i * 0x1000);
            printf("freed\n");
            fflush(stdout);
        }
        return 0;
    }
    fprintf(stderr, "unknown mode %s\n", argv[2]);
    return 2;
}
