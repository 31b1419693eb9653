"""ttalloc_pytest: a pytest plugin that fails every test leaving device buffers behind.

Load it with ``pytest -p ttalloc_pytest`` (this folder on the path) or from a conftest.py with
``pytest_plugins = ["ttalloc_pytest"]``. Standard library only: it speaks HTTP/JSON to the
allocation server's control socket itself, over one kept-alive connection, so a test costs a few
round trips on a Unix socket and no process.

Per test: a mark scoped to the test and to this process (``pytest-<pid>-<nodeid>``, ``pid`` =
this worker, so pytest-xdist workers never see each other's buffers) is set after the fixtures'
setup; when the test function returns, ``GET /v1/check?since=<mark>`` says what was born since
and is still held; a leak turns the test FAILED with the buffers in its report; the mark is then
deleted. With no server on the socket, or with ``TT_ALLOC_TRACKING_ENABLED`` unset (the runtime
then reports nothing), the checks are skipped with one warning for the session.

Environment:
  TT_ALLOC_SERVER_SOCKET  the server's data socket (default /tmp/tt_allocation_server.sock); the
                          control socket is that path plus ``.ctl``, as for the ttalloc CLI
  TT_ALLOC_TRACKING_ENABLED  must be 1 (as for the runtime) for the checks to run
  TTALLOC_SUPPRESSIONS    a rules file, as ``ttalloc check --ignore FILE`` takes
  TTALLOC_MAX_BYTES       bytes a test may leave behind (default 0), as ``--max-bytes``
  TTALLOC_PYTEST=0        turns the plugin off
"""

from __future__ import annotations

import fcntl
import gc
import hashlib
import http.client
import json
import os
import re
import socket
import struct
import termios
import time
import urllib.parse
import warnings

import pytest

DEFAULT_SOCKET = "/tmp/tt_allocation_server.sock"
#: A mark name as the server accepts it (src/state/marks.ts): these characters, 1 to 200 of them.
_BAD_CHAR = re.compile(r"[^A-Za-z0-9_.:/@+-]")
_MAX_NAME = 200
_TIMEOUT_S = 10.0
#: The rules travel in every check's query string; Node answers 431 past 16 KiB of headers.
_MAX_QUERY = 12 * 1024


class TtallocWarning(UserWarning):
    """The leak checks are skipped (no server, tracking off) or stopped part-way."""


class NoServer(Exception):
    """Nothing answers on the control socket."""


class ServerError(Exception):
    """The control API answered with an error status."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


def socket_path() -> str:
    """The data socket, as the CLI resolves it (src/protocol/transport.ts resolveSocket)."""
    return os.environ.get("TT_ALLOC_SERVER_SOCKET") or DEFAULT_SOCKET


def control_path(data_socket: str) -> str:
    """The control socket beside the data socket (transport.ts controlPathFor)."""
    return data_socket + ".ctl"


def mark_name(pid: int, nodeid: str) -> str:
    """``pytest-<pid>-<nodeid>`` in the characters a mark name may have, at most 200 of them."""
    name = _BAD_CHAR.sub("_", f"pytest-{pid}-{nodeid}")
    if len(name) > _MAX_NAME:
        digest = hashlib.sha1(name.encode()).hexdigest()[:10]
        name = name[: _MAX_NAME - 11] + "-" + digest
    return name


class _UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float):
        super().__init__("localhost", timeout=timeout)
        self._unix_path = path

    def connect(self) -> None:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(self.timeout)
        try:
            s.connect(self._unix_path)
        except BaseException:
            s.close()
            raise
        self.sock = s


class Control:
    """The control API over one kept-alive connection (made again after a fork or a drop)."""

    def __init__(self, data_socket: str):
        self.data_socket = data_socket
        self.path = control_path(data_socket)
        self._conn: _UnixHTTPConnection | None = None
        self._pid = 0

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def request(self, method: str, path: str, body: object = None) -> dict:
        payload = None if body is None else json.dumps(body).encode()
        headers = {"content-type": "application/json"} if payload is not None else {}
        for attempt in (1, 2):
            if self._conn is None or self._pid != os.getpid():
                self._conn = _UnixHTTPConnection(self.path, _TIMEOUT_S)
                self._pid = os.getpid()
            fresh = self._conn.sock is None
            try:
                self._conn.request(method, path, body=payload, headers=headers)
                res = self._conn.getresponse()
                data = res.read()
                status = res.status
                break
            except (FileNotFoundError, ConnectionRefusedError) as e:
                self.close()
                raise NoServer(f"no allocation server on {self.data_socket} ({e.strerror})") from e
            except PermissionError as e:
                self.close()
                why = f"permission denied on {self.path}: the server is another user's"
                raise NoServer(why) from e
            except (http.client.HTTPException, ConnectionError, socket.timeout, OSError) as e:
                # A kept-alive connection the server closed while a test ran: try once afresh.
                self.close()
                if attempt == 2 or fresh:
                    why = f"the allocation server on {self.data_socket} stopped answering ({e!r})"
                    raise NoServer(why) from e
        try:
            value = json.loads(data or b"{}")
        except ValueError:
            value = {"error": data.decode(errors="replace")}
        if status != 200:
            err = value.get("error") if isinstance(value, dict) else None
            raise ServerError(status, str(err or f"HTTP {status}"))
        return value


#: A data connection's first bytes may be held while the server tells the frame size (a lone first
#: frame: its detection wait, 5 ms by default); a connection seen for the first time waits this.
_DETECT_WAIT_S = 0.02
_READ_WAIT_S = 5.0


class DataConnections:
    """This process's connections to the server (the runtime's data connection among them).

    The data socket has no acknowledgements, but the kernel knows: on a Unix stream socket,
    TIOCOUTQ (SIOCOUTQ) is what the receiver has not read yet, and the server applies each read
    before its next callback. Once it is 0 on every connection, a control request sent after sees
    every frame this process sent: no frame of a fixture's setup is taken as the test's, none of
    the test's last frames is missed. A connection is the server's when its peer credentials name
    the server's PID (the server listens on a private name linked to the socket path, so the peer
    name does not say it).
    """

    def __init__(self, data_socket: str):
        self.names = {data_socket, os.path.abspath(data_socket), os.path.realpath(data_socket)}
        self.server_pid = 0
        self.known: dict[str, bool] = {}  # "socket:[inode]" -> a connection to the server
        self.available = os.path.isdir("/proc/self/fd") and hasattr(socket, "SO_PEERCRED")

    def _to_server(self, fd: int) -> bool:
        try:
            s = socket.socket(fileno=fd)
        except (OSError, ValueError):  # closed meanwhile, or a family Python does not know
            return False
        try:
            if s.family != socket.AF_UNIX or s.type != socket.SOCK_STREAM:
                return False
            cred = s.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, 12)
            if struct.unpack("3i", cred)[0] == self.server_pid:
                return True
            return s.getpeername() in self.names
        except OSError:
            return False
        finally:
            s.detach()

    def scan(self) -> tuple[list[int], bool]:
        """The descriptors connected to the server, and whether one of them is new."""
        fds: list[int] = []
        new = False
        seen: dict[str, bool] = {}
        for entry in os.listdir("/proc/self/fd"):
            try:
                link = os.readlink("/proc/self/fd/" + entry)
            except OSError:
                continue
            if not link.startswith("socket:"):
                continue
            fd = int(entry)
            is_data = self.known.get(link)
            if is_data is None:
                is_data = self._to_server(fd)
                new = new or is_data
            seen[link] = is_data
            if is_data:
                fds.append(fd)
        self.known = seen
        return fds, new

    def wait_read(self) -> None:
        """Returns once the server has read everything this process sent it."""
        fds, new = self.scan()
        deadline = time.monotonic() + _READ_WAIT_S
        buf = b"\0\0\0\0"
        for fd in fds:
            while True:
                try:
                    unread = struct.unpack("i", fcntl.ioctl(fd, termios.TIOCOUTQ, buf))[0]
                except OSError:
                    break  # closed meanwhile
                if unread <= 0 or time.monotonic() > deadline:
                    break
                time.sleep(0.0002)
        if new:
            time.sleep(_DETECT_WAIT_S)


def _fmt_time(ms: object) -> str:
    if not isinstance(ms, (int, float)):
        return str(ms)
    return time.strftime("%H:%M:%S", time.localtime(ms / 1000)) + f".{int(ms) % 1000:03d}"


#: How the usual fields of a buffer row (report/types.ts BufferRow) are shown; other fields a newer
#: server adds are shown as key=value after them.
_HIDDEN = {"epoch"}


def _buffer_line(b: dict) -> str:
    parts = []
    if "device" in b:
        parts.append(f"device {b['device']}")
    if "type" in b:
        parts.append(str(b["type"]))
    if "size" in b:
        parts.append(f"{b['size']} B")
    if "address" in b:
        parts.append(f"at {b['address']}")
    if "pid" in b:
        parts.append(f"pid {b['pid']}")
    if b.get("ref_count", 1) != 1:
        parts.append(f"ref_count {b['ref_count']}")
    if "allocated_at_ms" in b:
        parts.append(f"allocated {_fmt_time(b['allocated_at_ms'])}")
    shown = {"device", "type", "size", "address", "pid", "ref_count", "allocated_at_ms"}
    for k, v in b.items():
        if k in shown or k in _HIDDEN or v is None or v is False:
            continue
        parts.append(f"{k}={v}")
    return "    " + ", ".join(parts)


def render_leak(r: dict, mark: str) -> str:
    """The check's verdict as text: the counts, then every buffer list the response carries."""
    sup = f" ({r['suppressed_buffers']} suppressed)" if r.get("suppressed_buffers") else ""
    lines = [
        "ttalloc: device memory left behind by this test: "
        f"{r.get('leaked_buffers', '?')} buffer(s), {r.get('leaked_bytes', '?')} byte(s) "
        f"(budget {r.get('max_bytes', 0)}){sup}"
    ]
    listed = 0
    for key, value in r.items():
        if not (isinstance(value, list) and value and all(isinstance(b, dict) for b in value)):
            continue
        if key != "buffers":
            lines.append(f"  {key}:")
        lines.extend(_buffer_line(b) for b in value)
        listed += len(value)
    more = r.get("leaked_buffers")
    if isinstance(more, int) and more > listed:
        lines.append(f"    ... and {more - listed} more")
    for key in ("summary", "text"):
        if isinstance(r.get(key), str):
            lines.append(r[key].rstrip("\n"))
    lines.append(f"(born since mark '{mark}', set when the test started, and still held)")
    return "\n".join(lines)


class TtallocPlugin:
    """The session's state: on or off (and why), the connection, the rules."""

    def __init__(self, config: pytest.Config):
        self.config = config
        self.control = Control(socket_path())
        self.data = DataConnections(socket_path())
        self.off_reason: str | None = None
        self.server_pid: int | None = None
        self.query_base = ""
        self.checked = 0
        self.spent_s = 0.0  # in the checks, for the summary line
        self.stopped_reason: str | None = None

    # ---- session start: decide once whether the checks run
    def start(self) -> None:
        tracking = os.environ.get("TT_ALLOC_TRACKING_ENABLED", "")
        if tracking.strip().lower() in ("", "0", "false", "no", "off"):
            self.off_reason = (
                "TT_ALLOC_TRACKING_ENABLED is not set to 1, so the runtime reports no buffers"
            )
            return
        try:
            health = self.control.request("GET", "/v1/health")
        except NoServer as e:
            self.off_reason = str(e)
            return
        except ServerError as e:
            self.off_reason = f"the server on {self.control.data_socket} answered: {e}"
            return
        self.server_pid = health.get("pid")
        self.data.server_pid = int(self.server_pid or 0)
        q = {"max_bytes": os.environ.get("TTALLOC_MAX_BYTES", "0")}
        rules_file = os.environ.get("TTALLOC_SUPPRESSIONS")
        if rules_file:
            try:
                with open(rules_file, encoding="utf-8") as f:
                    q["rules_text"] = f.read()
            except OSError as e:
                raise pytest.UsageError(
                    f"ttalloc: cannot read TTALLOC_SUPPRESSIONS={rules_file}: {e.strerror}"
                ) from e
            q["rules_source"] = rules_file
        self.query_base = "&" + urllib.parse.urlencode(q)
        if rules_file or q["max_bytes"] != "0":
            self._validate()

    def _validate(self) -> None:
        """A bad rules file or budget is a usage error at start, not a failure in every test."""
        if len(self.query_base) > _MAX_QUERY:
            raise pytest.UsageError(
                f"ttalloc: the rules file is too long for a query ({len(self.query_base)} bytes "
                f"encoded, at most {_MAX_QUERY}): merge its rules"
            )
        name = mark_name(os.getpid(), "session-start")
        try:
            self.control.request("POST", "/v1/marks", {"name": name, "pid": os.getpid()})
            try:
                self._check(name)
            finally:
                self._unmark(name)
        except (NoServer, ServerError) as e:
            raise pytest.UsageError(f"ttalloc: the server refused the check: {e}") from e

    @property
    def on(self) -> bool:
        return self.off_reason is None and self.stopped_reason is None

    def _check(self, name: str) -> dict:
        q = "since=" + urllib.parse.quote(name, safe="") + self.query_base
        return self.control.request("GET", "/v1/check?" + q)

    def _unmark(self, name: str) -> None:
        try:
            self.control.request("DELETE", "/v1/marks/" + urllib.parse.quote(name, safe=""))
        except ServerError as e:
            if e.status != 404:  # already gone (a reset): nothing to delete
                raise

    def _settle(self) -> None:
        """What this process sent on the data socket is applied before the next request."""
        if self.data.available:
            self.data.wait_read()
        else:
            # Elsewhere: two control round trips after a write to a data socket and the server has
            # read it (test/helpers/wire.ts roundTrip); this is the first, the next request the
            # second.
            self.control.request("GET", "/v1/health")

    def _stop(self, why: str) -> None:
        self.stopped_reason = why
        warnings.warn(TtallocWarning(f"ttalloc: device-memory leak checks stopped: {why}"))

    # ---- per test
    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_call(self, item: pytest.Item):
        if not self.on:
            yield
            return
        t0 = time.perf_counter()
        name = mark_name(os.getpid(), item.nodeid)
        try:
            # What setup allocated is read before the mark: it is not the test's.
            self._settle()
            self.control.request("POST", "/v1/marks", {"name": name, "pid": os.getpid()})
        except (NoServer, ServerError) as e:
            self._stop(str(e))
            yield
            return
        self.spent_s += time.perf_counter() - t0
        yield
        t0 = time.perf_counter()
        try:
            self._settle()  # the test's last ALLOCs and FREEs are read before the check
            r = self._check(name)
            if not r.get("ok", True):
                # Reference cycles may still hold buffers: collect, settle again, then judge.
                gc.collect()
                self._settle()
                r = self._check(name)
            self._unmark(name)
        except (NoServer, ServerError) as e:
            self._stop(str(e))
            return
        self.checked += 1
        self.spent_s += time.perf_counter() - t0
        if not r.get("ok", True):
            item.stash[_LEAK] = render_leak(r, name)

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_makereport(self, item: pytest.Item, call: pytest.CallInfo):
        outcome = yield
        if call.when != "call":
            return
        text = item.stash.get(_LEAK, None)
        if text is None:
            return
        rep = outcome.get_result()
        if rep.passed:
            # FAILED in the call phase, reported as pytest.fail(text, pytrace=False) would be.
            try:
                pytest.fail(text, pytrace=False)
            except pytest.fail.Exception:
                excinfo = pytest.ExceptionInfo.from_current()
            rep.outcome = "failed"
            rep.longrepr = item.repr_failure(excinfo)
        else:  # failed (or xfailed) on its own: the leak is said beside the test's own error
            rep.sections.append(("ttalloc: device memory left behind", text))

    def pytest_report_header(self) -> str:
        if self.off_reason:
            return f"ttalloc: leak checks skipped: {self.off_reason}"
        return (
            f"ttalloc: leak checks on (server pid {self.server_pid} on {self.control.data_socket})"
        )

    def pytest_terminal_summary(self, terminalreporter) -> None:
        if self.checked:
            per_test = self.spent_s / self.checked * 1000
            terminalreporter.write_line(
                f"ttalloc: {self.checked} test(s) checked for device memory left behind "
                f"({per_test:.2f} ms per test in the checks)"
            )

    def pytest_unconfigure(self) -> None:
        self.control.close()


_LEAK = pytest.StashKey[str]()


def pytest_configure(config: pytest.Config) -> None:
    if os.environ.get("TTALLOC_PYTEST", "1") == "0":
        return
    plugin = TtallocPlugin(config)
    plugin.start()
    config.pluginmanager.register(plugin, "ttalloc-session")
    # One warning for the session; under pytest-xdist the controller gives it, not every worker.
    if plugin.off_reason and not hasattr(config, "workerinput"):
        config.issue_config_time_warning(
            TtallocWarning(f"ttalloc: device-memory leak checks skipped: {plugin.off_reason}"),
            stacklevel=2,
        )
