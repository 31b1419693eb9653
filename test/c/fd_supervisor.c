// A small service manager for tests, speaking systemd's protocols for one service exactly as
// packaging/systemd/ttalloc.{socket,service} configure them (there is no systemd as PID 1 here):
//   - socket activation (sd_listen_fds(3)): it creates and binds the listening sockets itself and
//     passes them to the service as fd 3, 4, … with LISTEN_PID, LISTEN_FDS and LISTEN_FDNAMES
//     (named "ttalloc.socket", as systemd names a socket unit's descriptors by default);
//   - sd_notify(3) on a datagram socket ($NOTIFY_SOCKET; "@name" is the abstract namespace) with
//     SO_PASSCRED, accepting only the main PID's messages (NotifyAccess=main): READY=1,
//     STOPPING=1, FDSTORE=1 + FDNAME= with the descriptors attached (SCM_RIGHTS),
//     FDSTOREREMOVE=1 + FDNAME= (every stored descriptor of that name);
//   - the file-descriptor store: a descriptor is kept once (the same socket twice is one entry),
//     at most FDSTORE_MAX of them (FileDescriptorStoreMax=), dropped when it reports POLLHUP or
//     POLLERR (systemd's default FDPOLL=1), and passed back after the listening sockets, with
//     their names, when the service starts again;
//   - Restart=always: whenever the service exits (kill -9 included) it is started again after
//     RESTART_MS (default 100, systemd's RestartSec=), with the listening sockets and the store.
// A line on stdin "restart" sends SIGTERM and starts the service again once it exited, the store
// kept (`systemctl restart`, FileDescriptorStorePreserve=restart, systemd's default); "stop" (or
// stdin closing) sends SIGTERM, waits for the exit, and quits (a stop: the store is flushed).
//
//   cc -std=c11 -o fd_supervisor fd_supervisor.c
//   NOTIFY=@name fd_supervisor SOCKET [SOCKET…] -- COMMAND [ARGS…]
// It prints one line per event on stdout: "started pid=P fds=N stored=K", "ready pid=P",
// "stopping pid=P", "stored name=X n=K", "removed name=X n=K", "hup name=X n=K",
// "exited pid=P code=C" / "exited pid=P signal=S", "refused pid=P: …", "stopped".
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_LISTEN 8
#define MAX_STORE 16384
#define MAX_MSG_FDS 253

struct stored {
    int fd;
    char name[256];
    dev_t dev;
    ino_t ino;
};

static int listen_fds[MAX_LISTEN];
static int n_listen = 0;
static struct stored store[MAX_STORE];
static int n_store = 0;
static int store_max = 4096;
static pid_t child = 0;

static void die(const char *what) {
    fprintf(stderr, "fd_supervisor: %s: %s\n", what, strerror(errno));
    exit(2);
}

static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void say(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    putchar('\n');
    fflush(stdout);
}

static int64_t now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static socklen_t unix_addr(struct sockaddr_un *a, const char *path) {
    memset(a, 0, sizeof *a);
    a->sun_family = AF_UNIX;
    size_t n = strlen(path);
    if (n >= sizeof a->sun_path) { errno = ENAMETOOLONG; die(path); }
    memcpy(a->sun_path, path, n);
    if (path[0] == '@') {
        a->sun_path[0] = 0;
        return (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n);
    }
    return (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n + 1);
}

static void drop(int i, const char *why) {
    char name[256];
    snprintf(name, sizeof name, "%s", store[i].name);
    close(store[i].fd);
    store[i] = store[--n_store];
    say("%s name=%s n=%d", why, name, n_store);
}

static void keep(int fd, const char *name) {
    struct stat st;
    if (fstat(fd, &st) != 0) { close(fd); return; }
    for (int i = 0; i < n_store; i++)
        if (store[i].dev == st.st_dev && store[i].ino == st.st_ino) { close(fd); return; }
    if (n_store >= store_max || n_store >= MAX_STORE) {
        close(fd);
        say("full name=%s n=%d", name, n_store);
        return;
    }
    store[n_store].fd = fd;
    snprintf(store[n_store].name, sizeof store[n_store].name, "%s", name);
    store[n_store].dev = st.st_dev;
    store[n_store].ino = st.st_ino;
    n_store++;
    say("stored name=%s n=%d", name, n_store);
}

static void remove_named(const char *name) {
    for (int i = n_store - 1; i >= 0; i--)
        if (strcmp(store[i].name, name) == 0) drop(i, "removed");
}

/* One notification datagram: its text and descriptors, from the main PID only. */
static void on_notify(int nfd) {
    char text[4097];
    union { struct cmsghdr h; char space[CMSG_SPACE(sizeof(int) * MAX_MSG_FDS) + CMSG_SPACE(sizeof(struct ucred))]; } ctl;
    struct iovec iov = { .iov_base = text, .iov_len = sizeof text - 1 };
    struct msghdr msg;
    memset(&msg, 0, sizeof msg);
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = ctl.space;
    msg.msg_controllen = sizeof ctl.space;
    ssize_t n = recvmsg(nfd, &msg, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
    if (n < 0) return;
    text[n] = 0;
    int fds[MAX_MSG_FDS];
    int nfds = 0;
    pid_t sender = 0;
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
        if (c->cmsg_level != SOL_SOCKET) continue;
        if (c->cmsg_type == SCM_RIGHTS) {
            int k = (int)((c->cmsg_len - CMSG_LEN(0)) / sizeof(int));
            memcpy(fds + nfds, CMSG_DATA(c), sizeof(int) * (size_t)k);
            nfds += k;
        } else if (c->cmsg_type == SCM_CREDENTIALS) {
            struct ucred u;
            memcpy(&u, CMSG_DATA(c), sizeof u);
            sender = u.pid;
        }
    }
    if (sender == 0 || sender != child) {
        for (int i = 0; i < nfds; i++) close(fds[i]);
        say("refused pid=%d: not the main process (NotifyAccess=main)", (int)sender);
        return;
    }
    int fdstore = 0, fdremove = 0;
    char name[256] = "stored";
    for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
        if (strcmp(line, "READY=1") == 0) say("ready pid=%d", (int)sender);
        else if (strcmp(line, "STOPPING=1") == 0) say("stopping pid=%d", (int)sender);
        else if (strcmp(line, "FDSTORE=1") == 0) fdstore = 1;
        else if (strcmp(line, "FDSTOREREMOVE=1") == 0) fdremove = 1;
        else if (strncmp(line, "FDNAME=", 7) == 0) snprintf(name, sizeof name, "%s", line + 7);
    }
    if (fdstore) for (int i = 0; i < nfds; i++) keep(fds[i], name);
    else for (int i = 0; i < nfds; i++) close(fds[i]);
    if (fdremove) remove_named(name);
}

static pid_t start(char **argv, const char *notify) {
    int total = n_listen + n_store;
    pid_t pid = fork();
    if (pid < 0) die("fork");
    if (pid == 0) {
        // Out of the way first (3… may be taken by what is being moved there), then into place.
        int moved[MAX_LISTEN + MAX_STORE];
        for (int i = 0; i < total; i++) {
            int fd = i < n_listen ? listen_fds[i] : store[i - n_listen].fd;
            moved[i] = fcntl(fd, F_DUPFD_CLOEXEC, 3 + total);
            if (moved[i] < 0) die("F_DUPFD");
        }
        size_t names_len = 1;
        for (int i = 0; i < total; i++) names_len += 256 + 1;
        char *names = calloc(1, names_len);
        for (int i = 0; i < total; i++) {
            if (dup2(moved[i], 3 + i) < 0) die("dup2"); // dup2 clears close-on-exec
            if (i) strcat(names, ":");
            strcat(names, i < n_listen ? "ttalloc.socket" : store[i - n_listen].name);
        }
        char buf[32];
        snprintf(buf, sizeof buf, "%d", (int)getpid());
        setenv("LISTEN_PID", buf, 1);
        snprintf(buf, sizeof buf, "%d", total);
        setenv("LISTEN_FDS", buf, 1);
        setenv("LISTEN_FDNAMES", names, 1);
        setenv("NOTIFY_SOCKET", notify, 1);
        snprintf(buf, sizeof buf, "%d", store_max);
        setenv("FDSTORE", buf, 1); /* as systemd ≥ 254 does for FileDescriptorStoreMax= */
        signal(SIGPIPE, SIG_DFL);
        execvp(argv[0], argv);
        die("exec");
    }
    say("started pid=%d fds=%d stored=%d", (int)pid, total, n_store);
    return pid;
}

int main(int argc, char **argv) {
    const char *notify = getenv("NOTIFY");
    if (!notify || !*notify) notify = "@ttalloc-test-notify";
    const char *rs = getenv("RESTART_MS");
    int restart_ms = rs ? atoi(rs) : 100;
    const char *fm = getenv("FDSTORE_MAX");
    if (fm) store_max = atoi(fm);
    int dash = 1;
    while (dash < argc && strcmp(argv[dash], "--") != 0) dash++;
    if (dash >= argc - 1 || dash == 1) {
        fprintf(stderr, "usage: NOTIFY=@name fd_supervisor SOCKET [SOCKET…] -- COMMAND [ARGS…]\n");
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    for (int i = 1; i < dash && n_listen < MAX_LISTEN; i++) {
        struct sockaddr_un a;
        socklen_t len = unix_addr(&a, argv[i]);
        unlink(argv[i]);
        int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (s < 0) die("socket");
        if (bind(s, (struct sockaddr *)&a, len) < 0) die(argv[i]);
        chmod(argv[i], 0600); // SocketMode=0600
        if (listen(s, SOMAXCONN) < 0) die("listen");
        listen_fds[n_listen++] = s;
    }
    struct sockaddr_un na;
    socklen_t nlen = unix_addr(&na, notify);
    int nfd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (nfd < 0) die("socket");
    int one = 1;
    if (setsockopt(nfd, SOL_SOCKET, SO_PASSCRED, &one, sizeof one) < 0) die("SO_PASSCRED");
    int rcv = 8 << 20; // systemd raises its notification socket's buffer too
    setsockopt(nfd, SOL_SOCKET, SO_RCVBUFFORCE, &rcv, sizeof rcv);
    if (notify[0] != '@') unlink(notify);
    if (bind(nfd, (struct sockaddr *)&na, nlen) < 0) die(notify);

    char **cmd = argv + dash + 1;
    child = start(cmd, notify);
    int stopping = 0;
    int64_t restart_at = -1;
    static struct pollfd pfds[2 + MAX_STORE];
    for (;;) {
        pfds[0] = (struct pollfd){ .fd = nfd, .events = POLLIN };
        pfds[1] = (struct pollfd){ .fd = stopping ? -1 : 0, .events = POLLIN };
        for (int i = 0; i < n_store; i++) pfds[2 + i] = (struct pollfd){ .fd = store[i].fd, .events = 0 };
        int np = 2 + n_store;
        int r = poll(pfds, (nfds_t)np, 10);
        if (r < 0 && errno != EINTR) die("poll");
        if (r > 0) {
            if (pfds[0].revents & POLLIN) {
                for (int k = 0; k < 4096; k++) {
                    struct pollfd p = { .fd = nfd, .events = POLLIN };
                    if (poll(&p, 1, 0) <= 0) break;
                    on_notify(nfd);
                }
            }
            if (pfds[1].revents & (POLLIN | POLLHUP)) {
                char line[64];
                ssize_t n = read(0, line, sizeof line - 1);
                if (n <= 0 || strncmp(line, "stop", 4) == 0) {
                    stopping = 1;
                    if (child > 0) kill(child, SIGTERM);
                } else if (strncmp(line, "restart", 7) == 0 && child > 0) {
                    kill(child, SIGTERM); // `systemctl restart`: the store is kept, passed on
                }
            }
            // A stored descriptor that hung up is dropped (FDPOLL=1); from the end, as drop() moves.
            for (int i = np - 1; i >= 2; i--)
                if (i - 2 < n_store && (pfds[i].revents & (POLLHUP | POLLERR)) &&
                    store[i - 2].fd == pfds[i].fd)
                    drop(i - 2, "hup");
        }
        if (child > 0) {
            int st;
            pid_t w = waitpid(child, &st, WNOHANG);
            if (w == child) {
                // Messages it sent before it died are still queued: they count (systemd reads them).
                for (int k = 0; k < 4096; k++) {
                    struct pollfd p = { .fd = nfd, .events = POLLIN };
                    if (poll(&p, 1, 0) <= 0) break;
                    on_notify(nfd);
                }
                if (WIFSIGNALED(st)) say("exited pid=%d signal=%d", (int)w, WTERMSIG(st));
                else say("exited pid=%d code=%d", (int)w, WEXITSTATUS(st));
                child = 0;
                if (stopping) break;
                restart_at = now_ms() + restart_ms;
            }
        } else if (stopping) {
            break;
        } else if (restart_at >= 0 && now_ms() >= restart_at) {
            restart_at = -1;
            child = start(cmd, notify);
        }
    }
    while (n_store > 0) drop(n_store - 1, "flushed");
    for (int i = 0; i < n_listen; i++) close(listen_fds[i]);
    for (int i = 1; i < dash; i++) if (argv[i][0] != '@') unlink(argv[i]);
    say("stopped");
    return 0;
}
