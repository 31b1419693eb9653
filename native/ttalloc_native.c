// ttalloc_native: the things ttalloc's server needs from the kernel that Node does not offer
// on an accepted Unix socket. Plain N-API (no C++ runtime):
//
//   peerCred(fd: number): { pid: number, uid: number, gid: number }   // throws on failure
//     the credentials the kernel recorded for the other end (getsockopt SO_PEERCRED). The PID is
//     the peer's as seen from the server's PID namespace (0 when the peer's is not visible from
//     here); the UID and GID are as seen from the server's user namespace.
//
//   readInto(fd: number, bytes: Uint8Array): number
//     one read(2) on the (non-blocking) descriptor, for reading busy connections without epoll
//     (src/server/socket-reader.ts says why).
//
//   liveness(pids: Int32Array, alive: Uint8Array): void
//     alive[i] = 1 unless pids[i] is gone (kill(pid, 0) says ESRCH) or a zombie ("Z" in
//     /proc/<pid>/stat); PIDs <= 0 and other users' processes (EPERM) count as alive. The same
//     answer as src/platform/processes.ts gives, for a whole sweep in one call (~8 us per live PID
//     here against ~27 us in JS, most of it the kernel formatting /proc/<pid>/stat).
//
//   returnFreedMemory(): boolean
//     glibc: blocks of 128 KiB and more are always mapped on their own (mallopt M_MMAP_THRESHOLD),
//     so the table pages, index shards and left-behind records the server frees go back to the
//     kernel at once. By default glibc raises that threshold after each such free, and freed pages
//     then stay in the process's RSS. False where malloc is not glibc's.
//
//   trimFreedMemory(): boolean
//     glibc: malloc_trim(0), which gives the kernel back every free page of the heap (the small
//     blocks an index rehash frees lie scattered in it). False where malloc is not glibc's.
//
//   sdNotify(path: string, text: string, fds: number[]): void   // throws on failure
//     one datagram to the service manager's notification socket (sd_notify(3): $NOTIFY_SOCKET, a
//     path, or "@name" in the abstract namespace), with `fds` attached (SCM_RIGHTS) for
//     "FDSTORE=1". Non-blocking: a manager that does not read fails with EAGAIN rather than
//     stalling the server (src/server/systemd.ts).
//   sendFds(fd: number, fds: Int32Array, bytes: Uint8Array): number
//     sends all of `bytes` on the Unix stream socket `fd`, the descriptors `fds` (at most 250)
//     riding on the first sendmsg as SCM_RIGHTS; waits (poll) while the socket is full. Throws on
//     an error. For the restart takeover (src/server/takeover-channel.ts).
//
//   recvFds(fd: number, bytes: Uint8Array, timeoutMs: number): { n: number, fds: number[] }
//     waits up to timeoutMs for the socket to be readable, then one recvmsg: n bytes (0 at end of
//     stream, -EAGAIN after the timeout) and the descriptors that came with them (close-on-exec).
//
//   dup2(from: number, to: number): void
//     the new server of a restart takes over the old one's stdout and stderr.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/un.h>
#include <stddef.h>
#include <stdlib.h>
#include <unistd.h>
#include <node_api.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif

static napi_value throw_errno(napi_env env, const char *what, int err) {
  char msg[160];
  char code[16];
  snprintf(msg, sizeof msg, "%s: %s", what, strerror(err));
  snprintf(code, sizeof code, "E%d", err);
  napi_throw_error(env, code, msg);
  return NULL;
}

static napi_value set_int(napi_env env, napi_value obj, const char *name, double v) {
  napi_value n;
  if (napi_create_double(env, v, &n) != napi_ok) return NULL;
  if (napi_set_named_property(env, obj, name, n) != napi_ok) return NULL;
  return obj;
}

static napi_value peer_cred(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok) return NULL;
  int32_t fd = -1;
  if (argc < 1 || napi_get_value_int32(env, argv[0], &fd) != napi_ok || fd < 0) {
    napi_throw_type_error(env, NULL, "peerCred(fd): fd must be a non-negative integer");
    return NULL;
  }
#ifdef SO_PEERCRED
  struct ucred cred;
  socklen_t len = sizeof cred;
  memset(&cred, 0, sizeof cred);
  if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) return throw_errno(env, "getsockopt(SO_PEERCRED)", errno);
  if (len != sizeof cred) return throw_errno(env, "getsockopt(SO_PEERCRED): short answer", EPROTO);
  napi_value obj;
  if (napi_create_object(env, &obj) != napi_ok) return NULL;
  if (!set_int(env, obj, "pid", (double)cred.pid)) return NULL;
  if (!set_int(env, obj, "uid", (double)cred.uid)) return NULL;
  if (!set_int(env, obj, "gid", (double)cred.gid)) return NULL;
  return obj;
#else
  return throw_errno(env, "SO_PEERCRED is not supported on this system", ENOSYS);
#endif
}

// readInto(fd, bytes: Uint8Array): number — one non-blocking read(2) into `bytes`: the count read,
// 0 at end of stream, or -errno (-EAGAIN when nothing is waiting).
static napi_value read_into(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok) return NULL;
  int32_t fd = -1;
  napi_typedarray_type type;
  size_t length = 0;
  void *data = NULL;
  if (argc < 2 || napi_get_value_int32(env, argv[0], &fd) != napi_ok || fd < 0 ||
      napi_get_typedarray_info(env, argv[1], &type, &length, &data, NULL, NULL) != napi_ok || type != napi_uint8_array) {
    napi_throw_type_error(env, NULL, "readInto(fd, bytes): fd must be a non-negative integer and bytes a Uint8Array");
    return NULL;
  }
  ssize_t n;
  do n = read(fd, data, length); while (n < 0 && errno == EINTR);
  napi_value out;
  if (napi_create_int32(env, n >= 0 ? (int32_t)n : -errno, &out) != napi_ok) return NULL;
  return out;
}

static int zombie(int32_t pid) {
  char path[48], buf[512];
  snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return 0;
  ssize_t n;
  do n = read(fd, buf, sizeof buf); while (n < 0 && errno == EINTR);
  close(fd);
  if (n <= 0) return 0;
  // The command name may itself contain ')' or spaces: the state follows the last ')'.
  for (ssize_t i = n - 1; i >= 0; i--) if (buf[i] == ')') return i + 2 < n && buf[i + 2] == 'Z';
  return 0;
}

static napi_value liveness(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok) return NULL;
  napi_typedarray_type pt, at;
  size_t np = 0, na = 0;
  void *pd = NULL, *ad = NULL;
  if (argc < 2 || napi_get_typedarray_info(env, argv[0], &pt, &np, &pd, NULL, NULL) != napi_ok || pt != napi_int32_array ||
      napi_get_typedarray_info(env, argv[1], &at, &na, &ad, NULL, NULL) != napi_ok || at != napi_uint8_array || na < np) {
    napi_throw_type_error(env, NULL, "liveness(pids, alive): pids must be an Int32Array and alive a Uint8Array at least as long");
    return NULL;
  }
  const int32_t *pids = pd;
  uint8_t *alive = ad;
  for (size_t i = 0; i < np; i++) {
    int32_t pid = pids[i];
    if (pid <= 0) { alive[i] = 1; continue; }
    if (kill(pid, 0) != 0) { alive[i] = errno == EPERM; continue; }
    alive[i] = !zombie(pid);
  }
  return NULL;
}

static napi_value return_freed_memory(napi_env env, napi_callback_info info) {
  (void)info;
  int ok = 0;
#ifdef __GLIBC__
  ok = mallopt(M_MMAP_THRESHOLD, 128 * 1024) == 1;
#endif
  napi_value v;
  napi_get_boolean(env, ok, &v);
  return v;
}

static napi_value trim_freed_memory(napi_env env, napi_callback_info info) {
  (void)info;
  int ok = 0;
#ifdef __GLIBC__
  malloc_trim(0);
  ok = 1;
#endif
  napi_value v;
  napi_get_boolean(env, ok, &v);
  return v;
}

// sdNotify(path, text, fds): see the top of the file. At most SDN_MAX_FDS descriptors (SCM_MAX_FD
// is 253 in the kernel); the server sends one per message.
#define SDN_MAX_FDS 253
static napi_value sd_notify(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok) return NULL;
  char path[sizeof ((struct sockaddr_un *)0)->sun_path + 2]; // one more than fits: too long is seen
  size_t plen = 0, tlen = 0;
  uint32_t nfds = 0;
  bool is_array = false;
  if (argc < 3 || napi_get_value_string_utf8(env, argv[0], path, sizeof path, &plen) != napi_ok ||
      napi_get_value_string_utf8(env, argv[1], NULL, 0, &tlen) != napi_ok ||
      napi_is_array(env, argv[2], &is_array) != napi_ok || !is_array ||
      napi_get_array_length(env, argv[2], &nfds) != napi_ok) {
    napi_throw_type_error(env, NULL, "sdNotify(path, text, fds): a path, a string and an array of descriptors");
    return NULL;
  }
  struct sockaddr_un addr;
  memset(&addr, 0, sizeof addr);
  addr.sun_family = AF_UNIX;
  if (plen < 2 || (path[0] != '/' && path[0] != '@') || plen > sizeof addr.sun_path ||
      (path[0] == '/' && plen == sizeof addr.sun_path))
    return throw_errno(env, "sdNotify: NOTIFY_SOCKET must be an absolute path or @name", EINVAL);
  if (nfds > SDN_MAX_FDS) return throw_errno(env, "sdNotify: too many descriptors", EINVAL);
  memcpy(addr.sun_path, path, plen);
  if (path[0] == '@') addr.sun_path[0] = 0; // the abstract namespace: no trailing NUL counts
  socklen_t alen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + plen + (path[0] == '/'));
  char *text = malloc(tlen + 1);
  if (!text) return throw_errno(env, "sdNotify", ENOMEM);
  if (napi_get_value_string_utf8(env, argv[1], text, tlen + 1, &tlen) != napi_ok) {
    free(text);
    return NULL;
  }
  int fds[SDN_MAX_FDS];
  for (uint32_t i = 0; i < nfds; i++) {
    napi_value v;
    int32_t fd = -1;
    if (napi_get_element(env, argv[2], i, &v) != napi_ok || napi_get_value_int32(env, v, &fd) != napi_ok || fd < 0) {
      free(text);
      napi_throw_type_error(env, NULL, "sdNotify: descriptors must be non-negative integers");
      return NULL;
    }
    fds[i] = fd;
  }
  union { struct cmsghdr h; char space[CMSG_SPACE(sizeof(int) * SDN_MAX_FDS)]; } ctl;
  memset(&ctl, 0, sizeof ctl);
  struct iovec iov = { .iov_base = text, .iov_len = tlen };
  struct msghdr msg;
  memset(&msg, 0, sizeof msg);
  msg.msg_name = &addr;
  msg.msg_namelen = alen;
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  if (nfds > 0) {
    msg.msg_control = ctl.space;
    msg.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
    struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
    memcpy(CMSG_DATA(c), fds, sizeof(int) * nfds);
  }
  int s = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (s < 0) {
    int e = errno;
    free(text);
    return throw_errno(env, "sdNotify: socket", e);
  }
  ssize_t n;
  do n = sendmsg(s, &msg, MSG_NOSIGNAL); while (n < 0 && errno == EINTR);
  int e = errno;
  close(s);
  free(text);
  if (n < 0) return throw_errno(env, "sdNotify: sendmsg", e);
  return NULL;
}

#define MAX_PASSED_FDS 250

static int wait_fd(int fd, short events, int timeout_ms) {
  struct pollfd p = { .fd = fd, .events = events, .revents = 0 };
  int r;
  do r = poll(&p, 1, timeout_ms); while (r < 0 && errno == EINTR);
  return r;
}

static napi_value send_fds(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok) return NULL;
  int32_t fd = -1;
  napi_typedarray_type ft, bt;
  size_t nf = 0, nb = 0;
  void *fdata = NULL, *bdata = NULL;
  if (argc < 3 || napi_get_value_int32(env, argv[0], &fd) != napi_ok || fd < 0 ||
      napi_get_typedarray_info(env, argv[1], &ft, &nf, &fdata, NULL, NULL) != napi_ok || ft != napi_int32_array ||
      napi_get_typedarray_info(env, argv[2], &bt, &nb, &bdata, NULL, NULL) != napi_ok || bt != napi_uint8_array ||
      nf > MAX_PASSED_FDS || nb == 0) {
    napi_throw_type_error(env, NULL, "sendFds(fd, fds: Int32Array (<= 250), bytes: non-empty Uint8Array)");
    return NULL;
  }
  size_t sent = 0;
  int with_fds = nf > 0;
  while (sent < nb) {
    struct iovec iov = { .iov_base = (char *)bdata + sent, .iov_len = nb - sent };
    struct msghdr msg;
    memset(&msg, 0, sizeof msg);
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    char cbuf[CMSG_SPACE(sizeof(int) * MAX_PASSED_FDS)];
    if (with_fds) {
      memset(cbuf, 0, sizeof cbuf);
      msg.msg_control = cbuf;
      msg.msg_controllen = CMSG_SPACE(sizeof(int) * nf);
      struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
      c->cmsg_level = SOL_SOCKET;
      c->cmsg_type = SCM_RIGHTS;
      c->cmsg_len = CMSG_LEN(sizeof(int) * nf);
      memcpy(CMSG_DATA(c), fdata, sizeof(int) * nf);
    }
    ssize_t n = sendmsg(fd, &msg, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) {
        if (wait_fd(fd, POLLOUT, 10000) <= 0) return throw_errno(env, "sendFds: peer does not read", ETIMEDOUT);
        continue;
      }
      return throw_errno(env, "sendmsg", errno);
    }
    with_fds = 0;
    sent += (size_t)n;
  }
  napi_value out;
  if (napi_create_double(env, (double)sent, &out) != napi_ok) return NULL;
  return out;
}

static napi_value recv_fds(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok) return NULL;
  int32_t fd = -1, timeout_ms = 0;
  napi_typedarray_type bt;
  size_t nb = 0;
  void *bdata = NULL;
  if (argc < 3 || napi_get_value_int32(env, argv[0], &fd) != napi_ok || fd < 0 ||
      napi_get_typedarray_info(env, argv[1], &bt, &nb, &bdata, NULL, NULL) != napi_ok || bt != napi_uint8_array ||
      napi_get_value_int32(env, argv[2], &timeout_ms) != napi_ok) {
    napi_throw_type_error(env, NULL, "recvFds(fd, bytes: Uint8Array, timeoutMs)");
    return NULL;
  }
  napi_value obj, arr, v;
  if (napi_create_object(env, &obj) != napi_ok || napi_create_array(env, &arr) != napi_ok) return NULL;
  ssize_t n = -EAGAIN;
  int r = wait_fd(fd, POLLIN, timeout_ms);
  if (r < 0) return throw_errno(env, "poll", errno);
  if (r > 0) {
    struct iovec iov = { .iov_base = bdata, .iov_len = nb };
    char cbuf[CMSG_SPACE(sizeof(int) * MAX_PASSED_FDS)];
    struct msghdr msg;
    memset(&msg, 0, sizeof msg);
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = cbuf;
    msg.msg_controllen = sizeof cbuf;
    do n = recvmsg(fd, &msg, MSG_CMSG_CLOEXEC); while (n < 0 && errno == EINTR);
    if (n < 0) n = -errno;
    uint32_t k = 0;
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); n >= 0 && c; c = CMSG_NXTHDR(&msg, c)) {
      if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
      size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
      int *got = (int *)CMSG_DATA(c);
      for (size_t i = 0; i < count; i++) {
        if (napi_create_int32(env, got[i], &v) != napi_ok || napi_set_element(env, arr, k++, v) != napi_ok)
          return NULL;
      }
    }
  }
  if (!set_int(env, obj, "n", (double)n)) return NULL;
  if (napi_set_named_property(env, obj, "fds", arr) != napi_ok) return NULL;
  return obj;
}

static napi_value dup_to(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok) return NULL;
  int32_t from = -1, to = -1;
  if (argc < 2 || napi_get_value_int32(env, argv[0], &from) != napi_ok ||
      napi_get_value_int32(env, argv[1], &to) != napi_ok || from < 0 || to < 0) {
    napi_throw_type_error(env, NULL, "dup2(from, to): descriptors");
    return NULL;
  }
  if (dup2(from, to) < 0) return throw_errno(env, "dup2", errno);
  return NULL;
}

NAPI_MODULE_INIT() {
  napi_value fn;
  if (napi_create_function(env, "liveness", NAPI_AUTO_LENGTH, liveness, NULL, &fn) != napi_ok) return NULL;
  if (napi_set_named_property(env, exports, "liveness", fn) != napi_ok) return NULL;
  if (napi_create_function(env, "readInto", NAPI_AUTO_LENGTH, read_into, NULL, &fn) != napi_ok) return NULL;
  if (napi_set_named_property(env, exports, "readInto", fn) != napi_ok) return NULL;
  if (napi_create_function(env, "peerCred", NAPI_AUTO_LENGTH, peer_cred, NULL, &fn) != napi_ok) return NULL;
  if (napi_set_named_property(env, exports, "peerCred", fn) != napi_ok) return NULL;
  if (napi_create_function(env, "returnFreedMemory", NAPI_AUTO_LENGTH, return_freed_memory, NULL, &fn) != napi_ok)
    return NULL;
  if (napi_set_named_property(env, exports, "returnFreedMemory", fn) != napi_ok) return NULL;
  if (napi_create_function(env, "trimFreedMemory", NAPI_AUTO_LENGTH, trim_freed_memory, NULL, &fn) != napi_ok)
    return NULL;
  if (napi_set_named_property(env, exports, "trimFreedMemory", fn) != napi_ok) return NULL;
  if (napi_create_function(env, "sdNotify", NAPI_AUTO_LENGTH, sd_notify, NULL, &fn) != napi_ok) return NULL;
  if (napi_set_named_property(env, exports, "sdNotify", fn) != napi_ok) return NULL;
  if (napi_create_function(env, "sendFds", NAPI_AUTO_LENGTH, send_fds, NULL, &fn) != napi_ok) return NULL;
  if (napi_set_named_property(env, exports, "sendFds", fn) != napi_ok) return NULL;
  if (napi_create_function(env, "recvFds", NAPI_AUTO_LENGTH, recv_fds, NULL, &fn) != napi_ok) return NULL;
  if (napi_set_named_property(env, exports, "recvFds", fn) != napi_ok) return NULL;
  if (napi_create_function(env, "dup2", NAPI_AUTO_LENGTH, dup_to, NULL, &fn) != napi_ok) return NULL;
  if (napi_set_named_property(env, exports, "dup2", fn) != napi_ok) return NULL;
  return exports;
}
