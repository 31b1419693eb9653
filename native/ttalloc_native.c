// ttalloc_native: the two things ttalloc's server needs from the kernel that Node does not offer
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
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <unistd.h>
#include <node_api.h>

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

NAPI_MODULE_INIT() {
  napi_value fn;
  if (napi_create_function(env, "readInto", NAPI_AUTO_LENGTH, read_into, NULL, &fn) != napi_ok) return NULL;
  if (napi_set_named_property(env, exports, "readInto", fn) != napi_ok) return NULL;
  if (napi_create_function(env, "peerCred", NAPI_AUTO_LENGTH, peer_cred, NULL, &fn) != napi_ok) return NULL;
  if (napi_set_named_property(env, exports, "peerCred", fn) != napi_ok) return NULL;
  return exports;
}
