// A client written from the protocol description alone (docs/protocol.md), reporting
// allocations the way the TT-Metal runtime's AllocationClient does: one packed struct per
// message, written whole with a blocking send(), host byte order. Compiled by the tests with
// the machine's cc, so the wire layout is checked by a real compiler, not only by our own
// TypeScript encoder.
//
//   cc -std=c11 [-DFRAME_SIZE=72|112|144] -o runtime_client runtime_client.c
//   runtime_client [SOCKET] [report|dump]
// SOCKET defaults to $TT_ALLOC_SERVER_SOCKET, then /tmp/tt_allocation_server.sock.
// "report" (default): allocations, a free, a CB and a kernel, then QUERY / DEVICE_INFO_QUERY; it
// prints the replies and stays alive (owning its buffers) until stdin closes.
// "dump": one DUMP_REMAINING, then close at once, like dump_remaining_buffers.py.
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
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

#ifndef FRAME_SIZE
#define FRAME_SIZE 144
#endif

enum { ALLOC = 1, FREE = 2, QUERY = 3, RESPONSE = 4, DUMP_REMAINING = 5, DEVICE_INFO_QUERY = 6,
       DEVICE_INFO_RESPONSE = 7, CB_ALLOC = 8, CB_FREE = 9, KERNEL_LOAD = 10, KERNEL_UNLOAD = 11, DUMP_KERNELS = 12 };
enum { DRAM = 0, L1 = 1, SYSTEM_MEMORY = 2, L1_SMALL = 3, TRACE = 4 };
enum { KERNEL_APPLICATION = 0, KERNEL_FABRIC = 1, KERNEL_DISPATCH = 2 };

#pragma pack(push, 1)
struct AllocMessage {
    TT_FRAME_HEAD;
    uint64_t dram_allocated;
    uint64_t l1_allocated;
    uint64_t l1_small_allocated;
    uint64_t trace_allocated;
#if FRAME_SIZE == 112
    uint64_t total_dram_size;
    uint64_t total_l1_size;
    uint32_t arch_type;
    uint32_t num_dram_channels;
    uint32_t dram_size_per_channel;
    uint32_t l1_size_per_core;
    uint32_t is_available;
    uint32_t num_devices;
#elif FRAME_SIZE == 144
    uint64_t cb_allocated;
    uint64_t kernel_allocated;
    uint64_t total_dram_size;
    uint64_t total_l1_size;
    uint32_t arch_type;
    uint32_t num_dram_channels;
    uint32_t dram_size_per_channel;
    uint32_t l1_size_per_core;
    uint32_t is_available;
    uint32_t num_devices;
    uint32_t ringbuffer_total_size;
    uint32_t ringbuffer_used_bytes;
    uint32_t ringbuffer_num_programs;
    uint32_t pad3;
#elif FRAME_SIZE != 72
#error FRAME_SIZE must be 72, 112 or 144
#endif
};
#pragma pack(pop)

_Static_assert(sizeof(struct AllocMessage) == FRAME_SIZE, "struct size must equal the frame size");
_Static_assert(offsetof(struct AllocMessage, device_id) == 4, "device_id at 4");
_Static_assert(offsetof(struct AllocMessage, size) == 8, "size at 8");
_Static_assert(offsetof(struct AllocMessage, buffer_type) == 16, "buffer_type at 16");
_Static_assert(offsetof(struct AllocMessage, process_id) == 20, "process_id at 20");
_Static_assert(offsetof(struct AllocMessage, buffer_id) == 24, "buffer_id at 24");
_Static_assert(offsetof(struct AllocMessage, timestamp) == 32, "timestamp at 32");
_Static_assert(offsetof(struct AllocMessage, dram_allocated) == 40, "dram_allocated at 40");
_Static_assert(offsetof(struct AllocMessage, trace_allocated) == 64, "trace_allocated at 64");
#if FRAME_SIZE == 112
_Static_assert(offsetof(struct AllocMessage, total_dram_size) == 72, "total_dram_size at 72");
_Static_assert(offsetof(struct AllocMessage, arch_type) == 88, "arch_type at 88");
_Static_assert(offsetof(struct AllocMessage, num_devices) == 108, "num_devices at 108");
#elif FRAME_SIZE == 144
_Static_assert(offsetof(struct AllocMessage, cb_allocated) == 72, "cb_allocated at 72");
_Static_assert(offsetof(struct AllocMessage, kernel_allocated) == 80, "kernel_allocated at 80");
_Static_assert(offsetof(struct AllocMessage, total_dram_size) == 88, "total_dram_size at 88");
_Static_assert(offsetof(struct AllocMessage, arch_type) == 104, "arch_type at 104");
_Static_assert(offsetof(struct AllocMessage, is_available) == 120, "is_available at 120");
_Static_assert(offsetof(struct AllocMessage, num_devices) == 124, "num_devices at 124");
_Static_assert(offsetof(struct AllocMessage, ringbuffer_total_size) == 128, "ringbuffer_total_size at 128");
_Static_assert(offsetof(struct AllocMessage, pad3) == 140, "pad at 140");
#endif

static int sock = -1;

static void die(const char* what) {
    fprintf(stderr, "runtime_client: %s: %s\n", what, strerror(errno));
    exit(1);
}

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* Blocking send() of the whole struct, as the runtime does. */
static void send_msg(const struct AllocMessage* m) {
    size_t off = 0;
    while (off < sizeof *m) {
        ssize_t n = send(sock, (const char*)m + off, sizeof *m - off, 0);
        if (n < 0) { if (errno == EINTR) continue; die("send"); }
        off += (size_t)n;
    }
}

static void recv_msg(struct AllocMessage* m) {
    size_t off = 0;
    while (off < sizeof *m) {
        ssize_t n = recv(sock, (char*)m + off, sizeof *m - off, 0);
        if (n == 0) { fprintf(stderr, "runtime_client: server closed the connection\n"); exit(1); }
        if (n < 0) { if (errno == EINTR) continue; die("recv"); }
        off += (size_t)n;
    }
}

static void report(uint8_t type, int32_t device, uint64_t size, uint8_t buffer_type, uint64_t id) {
    struct AllocMessage m;
    memset(&m, 0, sizeof m); /* requests zero every byte they do not use */
    m.type = type;
    m.device_id = device;
    m.size = size;
    m.buffer_type = buffer_type;
    m.process_id = (int32_t)getpid();
    m.buffer_id = id;
    m.timestamp = (type == ALLOC || type == CB_ALLOC || type == KERNEL_LOAD) ? now_ns() : 0;
    send_msg(&m);
}

static void query(int32_t device) {
    struct AllocMessage m;
    report(QUERY, device, 0, 0, 0);
    recv_msg(&m);
    printf("RESPONSE type=%u device=%d dram=%llu l1=%llu l1_small=%llu trace=%llu", m.type, m.device_id,
           (unsigned long long)m.dram_allocated, (unsigned long long)m.l1_allocated,
           (unsigned long long)m.l1_small_allocated, (unsigned long long)m.trace_allocated);
#if FRAME_SIZE == 144
    printf(" cb=%llu kernel=%llu", (unsigned long long)m.cb_allocated, (unsigned long long)m.kernel_allocated);
#endif
    printf("\n");
}

static void device_info(int32_t device) {
    struct AllocMessage m;
    report(DEVICE_INFO_QUERY, device, 0, 0, 0);
    recv_msg(&m);
    printf("DEVICE_INFO type=%u device=%d", m.type, m.device_id);
#if FRAME_SIZE != 72
    printf(" available=%u num_devices=%u arch=%u channels=%u l1_per_core=%u total_dram=%llu total_l1=%llu",
           m.is_available, m.num_devices, m.arch_type, m.num_dram_channels, m.l1_size_per_core,
           (unsigned long long)m.total_dram_size, (unsigned long long)m.total_l1_size);
#endif
    printf("\n");
}

int main(int argc, char** argv) {
    const char* path = argc > 1 ? argv[1] : getenv("TT_ALLOC_SERVER_SOCKET");
    const char* mode = argc > 2 ? argv[2] : "report";
    if (!path || !*path) path = "/tmp/tt_allocation_server.sock";

    struct sockaddr_un addr;
    memset(&addr, 0, sizeof addr);
    addr.sun_family = AF_UNIX;
    if (strlen(path) >= sizeof addr.sun_path) { fprintf(stderr, "runtime_client: socket path too long\n"); return 1; }
    strcpy(addr.sun_path, path);
    sock = socket(AF_UNIX, SOCK_STREAM, 0);
    if (sock < 0) die("socket");
    if (connect(sock, (struct sockaddr*)&addr, sizeof addr) < 0) die("connect");

    if (strcmp(mode, "dump") == 0) {
        report(DUMP_REMAINING, 0, 0, 0, 0);
        close(sock);
        return 0;
    }

    report(ALLOC, 0, 12288, DRAM, 0x40000000ull);
    report(ALLOC, 0, 24576, DRAM, 0x40003000ull);
    report(ALLOC, 0, 1048576, L1, 0x10000ull);
    report(ALLOC, 0, 2048, SYSTEM_MEMORY, 0x7000ull);
    report(ALLOC, 1, 12288, DRAM, 0x40000000ull);          /* same address, other device */
    report(ALLOC, 1, 2097152, L1, 0x20000ull);
    report(ALLOC, 1, 4096, TRACE, 0xfedcba9876543210ull);  /* a full 64-bit address */
    report(ALLOC, 1, 4096, TRACE, 0xfedcba9876543210ull);  /* program cache: second reference */
    report(FREE, 0, 0, 0, 0x40000000ull);
    report(CB_ALLOC, 0, 65536, 0, 0x1000ull);
    report(CB_ALLOC, 0, 65536, 0, 0x1000ull);              /* repeated while it lives */
    report(KERNEL_LOAD, 0, 8192, KERNEL_DISPATCH, 0x1234567890ull);
    report(KERNEL_LOAD, 0, 8192, KERNEL_DISPATCH, 0x1234567890ull); /* every dispatch */
    query(0);
    query(1);
    device_info(-1);
    device_info(1);
    printf("ready pid=%d\n", (int)getpid());
    fflush(stdout);

    char c;
    while (read(0, &c, 1) > 0) {} /* alive, owning its buffers, until stdin closes */
    return 0;
}
