// A writer of tt-metal's shared-memory tracking regions for the tests, written from
// SHM-LAYOUT.md §1 the way the runtime's writer behaves: the region laid out as packed-by-
// nature C structs (the offsets are checked below by the compiler, independently of the
// reader's table), counters updated in place with atomics and no lock, a slot claimed with a
// CAS on the first allocation (v1, v2, v3) or at attach (v4), v4's init_state sequence and its
// reaping of dead slots, v1b's split id, file mode 0666 before v3 and 0600 from v3.
//
//   shm-writer [--hold-init] [--comm NAME] <path/tt_device_<id>_memory> <v1a|v1b|v2|v3|v4>
//              <chip id>...        (the first chip is the gateway, the others remote)
//
// Prints "ready pid=<pid>" once attached, then reads commands on stdin, one per line, and
// answers each with a line starting "ok" (or "full" when no slot is free):
//   alloc <kind> <bytes> [chip]   kind: dram l1 l1_small trace cb kernel (kernel: v1a only)
//   free <kind> <bytes> [chip]
//   claim <pid> <ts_ns|now> <name> a slot for another PID, as that process would claim it
//   hammer <n> [burst]            n rounds (0: until killed) of storing the round number into
//                                 the totals, the gateway chip and our slot, in address order;
//                                 with a burst, a 1 ms sleep after every burst rounds
//   reap                          v4: release the slots of dead processes
//   ready                         --hold-init: finish initialising (init_state = REDY)
//   exit                          detach as the runtime's destructor does, then exit
// End of input detaches and exits too; SIGKILL leaves everything behind, as a crash does.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define MAX_CHIPS 16
#define MAX_PROCS 64
#define READY 0x52454459u

struct header {
  uint32_t version;
  uint32_t num_active_processes;
  uint64_t last_update_timestamp;
  uint32_t reference_count;
  uint32_t pad0;
  uint64_t board_serial;
  uint64_t asic_id;
  uint32_t device_id;
  uint32_t pad1;
};

struct chip5 {
  uint32_t chip_id;
  uint32_t is_remote;
  uint64_t c[5];
};
struct proc5 {
  int32_t pid;
  uint32_t pad;
  uint64_t c[5];
  uint64_t last_update_timestamp;
  char process_name[64];
};
struct region5 { /* v1b, v2, v3, v4 */
  struct header h;
  uint64_t totals[5];
  struct chip5 chips[MAX_CHIPS];
  struct proc5 procs[MAX_PROCS];
  uint32_t init_state; /* v4 */
  uint8_t pad[36];
};

struct chip6 {
  uint32_t chip_id;
  uint32_t is_remote;
  uint64_t c[6];
};
struct proc6 {
  int32_t pid;
  uint32_t pad;
  uint64_t c[6];
  uint64_t last_update_timestamp;
  char process_name[64];
};
struct region6 { /* v1a */
  struct header h;
  uint64_t totals[6];
  struct chip6 chips[MAX_CHIPS];
  struct proc6 procs[MAX_PROCS];
  uint8_t pad[96];
};

_Static_assert(sizeof(struct header) == 48, "header");
_Static_assert(offsetof(struct region5, totals) == 48, "v2 totals");
_Static_assert(offsetof(struct region5, chips) == 88, "v2 chips");
_Static_assert(sizeof(struct chip5) == 48, "v2 chip");
_Static_assert(offsetof(struct region5, procs) == 856, "v2 procs");
_Static_assert(sizeof(struct proc5) == 120, "v2 proc");
_Static_assert(offsetof(struct proc5, last_update_timestamp) == 48, "v2 proc ts");
_Static_assert(offsetof(struct proc5, process_name) == 56, "v2 proc name");
_Static_assert(offsetof(struct region5, init_state) == 8536, "v4 init_state");
_Static_assert(sizeof(struct region5) == 8576, "v2 size");
_Static_assert(offsetof(struct region6, chips) == 96, "v1a chips");
_Static_assert(sizeof(struct chip6) == 56, "v1a chip");
_Static_assert(offsetof(struct region6, procs) == 992, "v1a procs");
_Static_assert(sizeof(struct proc6) == 128, "v1a proc");
_Static_assert(offsetof(struct proc6, last_update_timestamp) == 56, "v1a proc ts");
_Static_assert(offsetof(struct proc6, process_name) == 64, "v1a proc name");
_Static_assert(sizeof(struct region6) == 9280, "v1a size");

enum layout { V1A, V1B, V2, V3, V4 };
static enum layout L;
static void *base;
static int kinds; /* counters per entry: 6 in v1a */
static int per_pid;
static int my_slot = -1;
static uint32_t chip_unused;

#define R5 ((struct region5 *)base)
#define R6 ((struct region6 *)base)
#define H ((struct header *)base)

static uint64_t *totals(void) { return L == V1A ? R6->totals : R5->totals; }
static uint32_t *chip_id(int i) { return L == V1A ? &R6->chips[i].chip_id : &R5->chips[i].chip_id; }
static uint32_t *chip_remote(int i) {
  return L == V1A ? &R6->chips[i].is_remote : &R5->chips[i].is_remote;
}
static uint64_t *chip_c(int i) { return L == V1A ? R6->chips[i].c : R5->chips[i].c; }
static int32_t *slot_pid(int j) { return L == V1A ? &R6->procs[j].pid : &R5->procs[j].pid; }
static uint64_t *slot_c(int j) { return L == V1A ? R6->procs[j].c : R5->procs[j].c; }
static uint64_t *slot_ts(int j) {
  return L == V1A ? &R6->procs[j].last_update_timestamp : &R5->procs[j].last_update_timestamp;
}
static char *slot_name(int j) {
  return L == V1A ? R6->procs[j].process_name : R5->procs[j].process_name;
}

static uint64_t now_ns(void) {
  struct timespec t;
  clock_gettime(CLOCK_REALTIME, &t);
  return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

static void store32(uint32_t *p, uint32_t v) { __atomic_store_n(p, v, __ATOMIC_RELAXED); }
static void store64(uint64_t *p, uint64_t v) { __atomic_store_n(p, v, __ATOMIC_RELAXED); }

/* Subtraction that stops at 0, as the runtime's CAS loop does. */
static void safe_sub(uint64_t *p, uint64_t v) {
  uint64_t cur = __atomic_load_n(p, __ATOMIC_RELAXED), next;
  do {
    next = cur >= v ? cur - v : 0;
  } while (!__atomic_compare_exchange_n(p, &cur, next, 1, __ATOMIC_RELAXED, __ATOMIC_RELAXED));
}

static int find_or_create_chip(uint32_t id) {
  for (int i = 0; i < MAX_CHIPS; i++)
    if (__atomic_load_n(chip_id(i), __ATOMIC_RELAXED) == id) return i;
  for (int i = 0; i < MAX_CHIPS; i++) {
    uint32_t expected = chip_unused;
    if (__atomic_compare_exchange_n(chip_id(i), &expected, id, 0, __ATOMIC_ACQ_REL,
                                    __ATOMIC_RELAXED)) {
      store32(chip_remote(i), 0);
      for (int k = 0; k < kinds; k++) store64(&chip_c(i)[k], 0);
      return i;
    }
    if (expected == id) return i;
  }
  return -1;
}

static void comm_of(pid_t pid, char *out, size_t n) {
  char path[64];
  snprintf(path, sizeof path, "/proc/%d/comm", (int)pid);
  FILE *f = fopen(path, "r");
  if (!f || !fgets(out, (int)n, f)) snprintf(out, n, "unknown");
  if (f) fclose(f);
  out[strcspn(out, "\n")] = 0;
}

/* CAS 0 -> pid on the first free slot: the slot index, or -1 when all 64 are taken. */
static int claim(pid_t pid, uint64_t ts, const char *name) {
  for (int j = 0; j < MAX_PROCS; j++)
    if (__atomic_load_n(slot_pid(j), __ATOMIC_RELAXED) == pid) return j;
  for (int j = 0; j < MAX_PROCS; j++) {
    int32_t expected = 0;
    if (__atomic_compare_exchange_n(slot_pid(j), &expected, pid, 0, __ATOMIC_ACQ_REL,
                                    __ATOMIC_RELAXED)) {
      for (int k = 0; k < kinds; k++) store64(&slot_c(j)[k], 0);
      store64(slot_ts(j), ts);
      strncpy(slot_name(j), name, 63);
      slot_name(j)[63] = 0;
      __atomic_fetch_add(&H->num_active_processes, 1, __ATOMIC_RELAXED);
      return j;
    }
  }
  return -1;
}

static int claim_mine(void) {
  if (my_slot < 0) {
    char name[64];
    comm_of(getpid(), name, sizeof name);
    my_slot = claim(getpid(), now_ns(), name);
  }
  return my_slot;
}

static void initialise(uint32_t gateway) {
  size_t size = L == V1A ? sizeof(struct region6) : sizeof(struct region5);
  /* v4: in progress first, so a reader never takes a half-made region as ready */
  if (L == V4) __atomic_store_n(&R5->init_state, 1u, __ATOMIC_RELEASE);
  memset((char *)base + sizeof(struct header), 0,
         (L == V4 ? offsetof(struct region5, init_state) : size) - sizeof(struct header));
  H->version = L == V1A || L == V1B ? 1 : L == V2 ? 2 : L == V3 ? 3 : 4;
  H->num_active_processes = 0;
  store64(&H->last_update_timestamp, now_ns());
  store32(&H->reference_count, 0);
  for (int i = 0; i < MAX_CHIPS; i++) store32(chip_id(i), chip_unused);
  store32(chip_id(0), gateway);
}

static int kind_of(const char *s) {
  static const char *names[] = {"dram", "l1", "l1_small", "trace", "cb", "kernel"};
  for (int k = 0; k < kinds; k++)
    if (strcmp(s, names[k]) == 0) return k;
  return -1;
}

static void account(int k, uint64_t v, uint32_t chip, int sub) {
  int c = find_or_create_chip(chip);
  if (sub) {
    safe_sub(&totals()[k], v);
    if (c >= 0) safe_sub(&chip_c(c)[k], v);
  } else {
    __atomic_fetch_add(&totals()[k], v, __ATOMIC_RELAXED);
    if (c >= 0) __atomic_fetch_add(&chip_c(c)[k], v, __ATOMIC_RELAXED);
  }
  store64(&H->last_update_timestamp, now_ns());
  if (!per_pid) return;
  int j = claim_mine();
  if (j < 0) return; /* table full: this process reports nothing per process */
  if (sub)
    safe_sub(&slot_c(j)[k], v);
  else
    __atomic_fetch_add(&slot_c(j)[k], v, __ATOMIC_RELAXED);
  store64(slot_ts(j), now_ns());
}

/* Takes slot j's bytes out of the totals and frees it (v4 marks it -1 meanwhile). */
static void release(int j, int32_t pid) {
  if (L == V4 && !__atomic_compare_exchange_n(slot_pid(j), &pid, -1, 0, __ATOMIC_ACQ_REL,
                                              __ATOMIC_RELAXED))
    return;
  for (int k = 0; k < kinds; k++) {
    safe_sub(&totals()[k], __atomic_load_n(&slot_c(j)[k], __ATOMIC_RELAXED));
    store64(&slot_c(j)[k], 0);
  }
  __atomic_store_n(slot_pid(j), 0, __ATOMIC_RELEASE);
  __atomic_fetch_sub(&H->num_active_processes, 1, __ATOMIC_RELAXED);
}

static int reap(void) {
  int n = 0;
  for (int j = 0; j < MAX_PROCS; j++) {
    int32_t pid = __atomic_load_n(slot_pid(j), __ATOMIC_ACQUIRE);
    if (pid > 0 && pid != getpid() && kill(pid, 0) == -1 && errno == ESRCH) {
      release(j, pid);
      n++;
    }
  }
  return n;
}

static void detach(void) {
  if (my_slot >= 0) release(my_slot, getpid());
  if (__atomic_fetch_sub(&H->reference_count, 1, __ATOMIC_ACQ_REL) == 1) {
    /* the last process out clears the figures, as the runtime's destructor does */
    for (int k = 0; k < kinds; k++) store64(&totals()[k], 0);
    for (int i = 0; i < MAX_CHIPS; i++)
      if (__atomic_load_n(chip_id(i), __ATOMIC_RELAXED) != chip_unused)
        for (int k = 0; k < kinds; k++) store64(&chip_c(i)[k], 0);
  }
}

static void hammer(uint64_t n, uint64_t burst) {
  int j = claim_mine();
  for (uint64_t r = 1; n == 0 || r <= n; r++) {
    if (burst && r % burst == 0) usleep(1000);
    for (int k = 0; k < 5; k++) store64(&totals()[k], r);
    for (int k = 0; k < 5; k++) store64(&chip_c(0)[k], r);
    if (j >= 0)
      for (int k = 0; k < 5; k++) store64(&slot_c(j)[k], r);
  }
}

static int parse_layout(const char *s) {
  static const char *names[] = {"v1a", "v1b", "v2", "v3", "v4"};
  for (int i = 0; i < 5; i++)
    if (strcmp(s, names[i]) == 0) return i;
  return -1;
}

static uint64_t id_from_path(const char *path) {
  const char *b = strrchr(path, '/');
  b = b ? b + 1 : path;
  unsigned long long id = 0;
  return sscanf(b, "tt_device_%llu_memory", &id) == 1 ? (uint64_t)id : 0;
}

static int wait_line(char *line, size_t n) {
  if (!fgets(line, (int)n, stdin)) return 0;
  line[strcspn(line, "\n")] = 0;
  return 1;
}

int main(int argc, char **argv) {
  int hold_init = 0, a = 1;
  for (; a < argc && strncmp(argv[a], "--", 2) == 0; a++) {
    if (strcmp(argv[a], "--hold-init") == 0)
      hold_init = 1;
    else if (strcmp(argv[a], "--comm") == 0 && a + 1 < argc)
      prctl(PR_SET_NAME, argv[++a], 0, 0, 0);
  }
  if (argc - a < 3 || parse_layout(argv[a + 1]) < 0) {
    fprintf(stderr, "usage: shm-writer [--hold-init] [--comm NAME] <path> <layout> <chip>...\n");
    return 2;
  }
  const char *path = argv[a];
  L = (enum layout)parse_layout(argv[a + 1]);
  kinds = L == V1A ? 6 : 5;
  chip_unused = L == V1A || L == V1B ? 0 : 0xFFFFFFFFu;
  const char *disabled = getenv("TT_METAL_SHM_TRACKING_DISABLED");
  const char *v1pid = getenv("TT_METAL_SHM_STATS_PER_PID");
  per_pid = L == V1A ? v1pid && strcmp(v1pid, "1") == 0 : !(disabled && strcmp(disabled, "1") == 0);
  uint32_t chips[MAX_CHIPS];
  int nchips = 0;
  for (int i = a + 2; i < argc && nchips < MAX_CHIPS; i++) chips[nchips++] = (uint32_t)atoi(argv[i]);
  uint64_t id = id_from_path(path);
  size_t size = L == V1A ? sizeof(struct region6) : sizeof(struct region5);

  mode_t mode = L == V3 || L == V4 ? 0600 : 0666;
  int creator = 1;
  int fd = open(path, O_CREAT | O_EXCL | O_RDWR, mode);
  if (fd < 0 && errno == EEXIST) {
    creator = 0;
    fd = open(path, O_RDWR);
  }
  if (fd < 0 || ftruncate(fd, (off_t)size) != 0) {
    perror(path);
    return 1;
  }
  base = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (base == MAP_FAILED) {
    perror("mmap");
    return 1;
  }
  char line[256];
  if (creator) {
    initialise(chips[0]);
    if (L == V4 && hold_init) {
      printf("initialising pid=%d\n", (int)getpid());
      fflush(stdout);
      while (wait_line(line, sizeof line) && strcmp(line, "ready") != 0) {
      }
    }
    if (L == V4) __atomic_store_n(&R5->init_state, READY, __ATOMIC_RELEASE);
  } else if (L == V4) {
    for (int i = 0; i < 5000 && __atomic_load_n(&R5->init_state, __ATOMIC_ACQUIRE) != READY; i++)
      usleep(1000);
  }
  __atomic_fetch_add(&H->reference_count, 1, __ATOMIC_RELAXED);
  if (L == V1B) {
    H->board_serial = id >> 8;
    H->asic_id = id & 0xFF;
  } else {
    H->board_serial = 0;
    H->asic_id = id;
  }
  H->device_id = chips[0];
  for (int i = 0; i < nchips; i++) {
    int c = find_or_create_chip(chips[i]);
    if (c >= 0) store32(chip_remote(c), i > 0);
  }
  if (L == V4) {
    reap();
    if (per_pid) claim_mine();
  }
  printf("ready pid=%d slot=%d\n", (int)getpid(), my_slot);
  fflush(stdout);

  while (wait_line(line, sizeof line)) {
    char cmd[32] = "", s1[64] = "", s2[64] = "", s3[64] = "";
    int n = sscanf(line, "%31s %63s %63s %63s", cmd, s1, s2, s3);
    if (n < 1) continue;
    if (strcmp(cmd, "alloc") == 0 || strcmp(cmd, "free") == 0) {
      int k = kind_of(s1);
      if (k < 0 || n < 3) {
        printf("error bad command: %s\n", line);
      } else {
        uint32_t chip = n >= 4 ? (uint32_t)atoi(s3) : chips[0];
        account(k, strtoull(s2, NULL, 10), chip, cmd[0] == 'f');
        printf("ok slot=%d\n", my_slot);
      }
    } else if (strcmp(cmd, "claim") == 0 && n >= 4) {
      uint64_t ts = strcmp(s2, "now") == 0 ? now_ns() : strtoull(s2, NULL, 10);
      int j = claim(atoi(s1), ts, s3);
      printf(j < 0 ? "full\n" : "ok slot=%d\n", j);
    } else if (strcmp(cmd, "hammer") == 0) {
      hammer(strtoull(s1, NULL, 10), n >= 3 ? strtoull(s2, NULL, 10) : 0);
      printf("ok\n");
    } else if (strcmp(cmd, "reap") == 0) {
      printf("ok reaped=%d\n", reap());
    } else if (strcmp(cmd, "exit") == 0) {
      break;
    } else {
      printf("error bad command: %s\n", line);
    }
    fflush(stdout);
  }
  detach();
  printf("ok detached\n");
  fflush(stdout);
  return 0;
}
