"""jobdtest: the harness of jobd's integration tests.

A test starts the real jobd binary on an ephemeral loopback port with a
temporary data directory (class Jobd), talks HTTP to it on 127.0.0.1 only,
and always cleans up: the process, the process groups of its jobs, and the
temporary directory are removed when the test ends, passes or fails (through
unittest cleanups, and an atexit hook as a last resort).

The jobd binary is the one named by the environment variable JOBD_BIN (CTest
sets it), or by `--jobd-bin PATH` on the command line, or build*/jobd at the
top of the repository.

Only the Python 3 standard library is used: CI has Debian's python3 and
nothing else. Every wait is bounded by a deadline.
"""

import atexit
import datetime
import glob
import http.client
import io
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import urllib.parse

FINAL_STATES = frozenset(["succeeded", "failed", "cancelled", "timed_out"])
ACTIVE_STATES = frozenset(["queued", "running"])

# Every field of the job resource (tests/API_NOTES.md).
JOB_FIELDS = frozenset(
    """id state command shell task args executor stdin env cwd timeout kill_signal
    kill_grace retries retry_delay retry_exit_codes priority name labels node_selector
    limits exit_code signal error result pid node attempts batch created_at started_at
    finished_at stdout_bytes stderr_bytes stdout_truncated stderr_truncated seq""".split()
)

# Seconds for jobd to print its listening line (JOBD_START_DEADLINE: more under valgrind).
START_DEADLINE = float(os.environ.get("JOBD_START_DEADLINE") or 10.0)
LISTEN_RE = re.compile(r"^jobd: listening on http://(\S+):(\d+)\s*$")
TIME_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
ID_RE = re.compile(r"^j[0-9a-z]+$")

_REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
_bin_from_argv = None


def _take_bin_from_argv():
    """Remove `--jobd-bin PATH` (or `--jobd-bin=PATH`) from sys.argv and return PATH."""
    global _bin_from_argv
    argv = sys.argv
    i = 1
    while i < len(argv):
        a = argv[i]
        if a == "--jobd-bin" and i + 1 < len(argv):
            _bin_from_argv = argv[i + 1]
            del argv[i : i + 2]
            continue
        if a.startswith("--jobd-bin="):
            _bin_from_argv = a.split("=", 1)[1]
            del argv[i]
            continue
        i += 1
    return _bin_from_argv


def jobd_bin():
    """Path of the jobd binary under test."""
    cands = [_bin_from_argv, os.environ.get("JOBD_BIN")]
    # build/jobd (where CMake puts it), then the newest of any other build*/jobd.
    others = glob.glob(os.path.join(_REPO, "build*", "jobd"))
    cands += [os.path.join(_REPO, "build", "jobd")] + sorted(others, key=os.path.getmtime, reverse=True)
    for c in cands:
        if c and os.path.isfile(c) and os.access(c, os.X_OK):
            return os.path.abspath(c)
    raise StartError("no jobd binary: set JOBD_BIN or pass --jobd-bin PATH")


def main():
    """Entry point of each test file: python3 test_x.py [--jobd-bin PATH] [unittest args]."""
    _take_bin_from_argv()
    unittest.main(verbosity=2)


# ---------------------------------------------------------------------------
# /proc helpers


def proc_stat(pid):
    """Fields of /proc/PID/stat as a dict (state, ppid, pgid, start), or None if it is gone."""
    try:
        with open("/proc/%d/stat" % pid, "rb") as f:
            data = f.read().decode("ascii", "replace")
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    rest = data[data.rfind(")") + 2 :].split()
    # rest[0] is field 3 (state); field N is rest[N - 3].
    return {"state": rest[0], "ppid": int(rest[1]), "pgid": int(rest[2]), "start": int(rest[19])}


def all_pids():
    out = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            out.append(int(name))
    return out


def children_of(pid):
    """[(child pid, stat)] of every process whose parent is pid."""
    out = []
    for p in all_pids():
        st = proc_stat(p)
        if st and st["ppid"] == pid:
            out.append((p, st))
    return out


def descendants_of(pid):
    """[(pid, stat)] of every descendant of pid."""
    by_parent = {}
    for p in all_pids():
        st = proc_stat(p)
        if st:
            by_parent.setdefault(st["ppid"], []).append((p, st))
    out, todo = [], [pid]
    while todo:
        for c in by_parent.get(todo.pop(), []):
            out.append(c)
            todo.append(c[0])
    return out


def live_group_members(pgid):
    """Pids of processes (zombies excluded) in process group pgid."""
    out = []
    for p in all_pids():
        st = proc_stat(p)
        if st and st["pgid"] == pgid and st["state"] != "Z":
            out.append(p)
    return out


def alive(pid, start=None):
    """True when pid exists, is not a zombie, and (if given) started at `start`."""
    st = proc_stat(pid)
    if not st or st["state"] == "Z":
        return False
    return start is None or st["start"] == start


def parse_time(s):
    """Seconds since the epoch of an RFC 3339 UTC time with milliseconds."""
    dt = datetime.datetime.strptime(s, "%Y-%m-%dT%H:%M:%S.%fZ")
    return dt.replace(tzinfo=datetime.timezone.utc).timestamp()


def idnum(job_id):
    """The number of an id like "j2s" (j + base36)."""
    return int(job_id[1:], 36)


# ---------------------------------------------------------------------------
# HTTP



def record_exchange(method, path, status, headers, data):
    """Append one exchange to $JOBD_RECORD (JSON Lines, the format of
    tests/contract/validate.mjs), so the contract test can check every real
    answer the integration suite got against openapi/openapi.yaml."""
    out = os.environ.get("JOBD_RECORD")
    if not out:
        return
    ctype = headers.get("Content-Type")
    body = None
    if data:
        if ctype and "json" in ctype:
            try:
                body = json.loads(data)
            except ValueError:
                body = data.decode("utf-8", "replace")
        else:
            body = None
    hdrs = {}
    for k in headers.keys():
        hdrs[k] = ", ".join(headers.get_all(k))
    line = json.dumps({"method": method, "path": path, "status": status, "content_type": ctype,
                       "headers": hdrs, "body": body})
    os.makedirs(os.path.dirname(out) or ".", exist_ok=True)
    with open(out, "a") as f:
        f.write(line + "\n")

class Response(tuple):
    """(status, headers, data): data is the parsed JSON when the body is JSON, else bytes.

    Also has .status, .headers, .body (raw bytes), .json (parsed or None).
    """

    def __new__(cls, status, headers, body):
        parsed = None
        ctype = (headers.get("Content-Type") or "") if headers is not None else ""
        if "json" in ctype and body:
            try:
                parsed = json.loads(body)
            except ValueError:
                parsed = None
        self = tuple.__new__(cls, (status, headers, parsed if parsed is not None else body))
        self.status, self.headers, self.body, self.json = status, headers, body, parsed
        return self

    @property
    def ctype(self):
        return (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()

    def __repr__(self):
        return "<HTTP %s %s %r>" % (self.status, self.ctype, self.body[:300])


class _BytesSock:
    def __init__(self, data):
        self._data = data

    def makefile(self, *a, **k):
        return io.BytesIO(self._data)


def parse_raw_response(data):
    """Parse the bytes of one HTTP response into a Response (or None if there are none)."""
    if not data:
        return None
    r = http.client.HTTPResponse(_BytesSock(data))
    r.begin()
    try:
        body = r.read()
    except http.client.IncompleteRead as e:
        body = e.partial
    return Response(r.status, r.headers, body)


def _response_complete(buf):
    """True when buf holds one whole HTTP response (by Content-Length or a last chunk)."""
    end = buf.find(b"\r\n\r\n")
    if end < 0:
        return False
    head = bytes(buf[:end]).decode("latin-1").lower()
    body = len(buf) - end - 4
    m = re.search(r"^content-length:\s*(\d+)\s*$", head, re.M)
    if m:
        return body >= int(m.group(1))
    if re.search(r"^transfer-encoding:.*chunked", head, re.M):
        return buf.endswith(b"0\r\n\r\n")
    return False


def raw_exchange(port, head, body=b"", chunks=None, timeout=10.0):
    """Send head + body (or the iterable `chunks`) on a raw socket while a
    thread reads the answer, so a server that answers early (413) and closes is
    still heard. Returns (Response or None, bytes sent, send error or None)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    got = bytearray()

    def reader():
        try:
            while not _response_complete(got):
                b = s.recv(65536)
                if not b:
                    return
                got.extend(b)
        except OSError:
            return

    t = threading.Thread(target=reader, daemon=True)
    t.start()
    sent, err = 0, None
    try:
        s.sendall(head)
        for piece in chunks if chunks is not None else [body[i : i + 65536] for i in range(0, len(body), 65536)]:
            s.sendall(piece)
            sent += len(piece)
    except OSError as e:
        err = e
    try:
        s.shutdown(socket.SHUT_WR)
    except OSError:
        pass
    t.join(timeout)
    s.close()
    return parse_raw_response(bytes(got)), sent, err


# ---------------------------------------------------------------------------
# The jobd process

_live = set()


def _cleanup_all():
    for j in list(_live):
        j.close()


atexit.register(_cleanup_all)


class StartError(Exception):
    pass


class Jobd:
    """A jobd process on 127.0.0.1:<ephemeral port> with its own temporary data dir.

    Jobd(*extra_args, env={...}, token="...") starts it at once (start=False
    to delay). `token` is put in JOBD_TOKEN and sent as a bearer token by
    request() unless auth=False. close() kills everything and removes the
    temporary directory; it is safe to call twice.
    """

    def __init__(self, *args, env=None, token=None, listen="127.0.0.1:0", start=True, data_dir=None):
        self.bin = jobd_bin()
        self.tmp = tempfile.mkdtemp(prefix="jobd-it-")
        self.data_dir = data_dir or os.path.join(self.tmp, "data")
        os.makedirs(self.data_dir, exist_ok=True)
        self.args = [str(a) for a in args]
        self.env_extra = dict(env or {})
        self.token = token
        self.listen = listen
        self.proc = None
        self.port = None
        self.host = None
        self._orphans = []  # (pid, start) of job processes left by kill9()
        self._logs = []  # text of earlier runs
        self._closed = False
        _live.add(self)
        if start:
            self.start()

    # -- process control

    def _env(self):
        env = dict(os.environ)
        env.pop("JOBD_TOKEN", None)
        if self.token is not None:
            env["JOBD_TOKEN"] = self.token
        for k, v in self.env_extra.items():
            if v is None:
                env.pop(k, None)
            else:
                env[k] = v
        return env

    def spawn(self):
        """Start the process and its output readers; do not wait for the listening line."""
        assert self.proc is None or self.proc.poll() is not None, "jobd already running"
        if self.proc is not None:
            self._join_readers()
            self._logs.append(self._run_log())
            for f in (self.proc.stdout, self.proc.stderr):
                try:
                    f.close()
                except Exception:
                    pass
        cmd = [self.bin, "--listen", self.listen, "--data-dir", self.data_dir] + self.args
        self.cmd = cmd
        self.port = None
        self._out_lines = []
        self._err = bytearray()
        self._lock = threading.Lock()
        self._listening = threading.Event()
        self._out_eof = threading.Event()
        self.proc = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=self._env(),
            cwd=self.tmp,
            start_new_session=True,
        )
        self.pid = self.proc.pid
        proc = self.proc

        def read_out():
            for raw in iter(proc.stdout.readline, b""):
                line = raw.decode("utf-8", "replace")
                with self._lock:
                    self._out_lines.append(line)
                m = LISTEN_RE.match(line.strip())
                if m and self.port is None:
                    self.host, self.port = m.group(1), int(m.group(2))
                    self._listening.set()
            self._out_eof.set()
            self._listening.set()

        def read_err():
            while True:
                b = proc.stderr.read1(65536) if hasattr(proc.stderr, "read1") else proc.stderr.read(4096)
                if not b:
                    return
                with self._lock:
                    self._err.extend(b)

        self._readers = [
            threading.Thread(target=read_out, daemon=True),
            threading.Thread(target=read_err, daemon=True),
        ]
        for t in self._readers:
            t.start()
        return proc

    def start(self, deadline=START_DEADLINE):
        """Start jobd and wait (at most `deadline` s) for its listening line."""
        self.spawn()
        end = time.monotonic() + deadline
        while time.monotonic() < end:
            if self._listening.wait(0.05):
                break
        if self.port is None:
            rc = self.proc.poll()
            if rc is None:
                self._kill_all()
            raise StartError(
                "jobd did not report its port within %.0fs (exit status %s): %s\n--- log:\n%s"
                % (deadline, rc, " ".join(self.cmd), self.log()[-4000:])
            )
        return self

    def restart(self, *args):
        """Start again on the same data dir (new args if given); the process must have ended."""
        assert self.proc is not None and self.proc.poll() is not None, "stop or kill9 first"
        if args:
            self.args = [str(a) for a in args]
        return self.start()

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def wait_exit(self, timeout):
        """Exit status, or None if the process is still running after `timeout` s."""
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None
        self._join_readers()  # so log() has everything it wrote
        return rc

    def _join_readers(self):
        for t in self._readers:
            t.join(5)

    def stop(self, sig=signal.SIGTERM, timeout=30.0):
        """Send sig and wait for the exit; return the exit status (negative: killed by a signal).

        If jobd is still running after `timeout` s it is killed and AssertionError raised.
        """
        if not self.running():
            return self.proc.returncode
        self.proc.send_signal(sig)
        rc = self.wait_exit(timeout)
        if rc is None:
            self._kill_all()
            raise AssertionError("jobd did not exit within %.0fs of signal %d" % (timeout, sig))
        self._join_readers()
        return rc

    def kill9(self):
        """SIGKILL jobd only (its jobs' processes are left behind, as after a crash)."""
        for pid, st in descendants_of(self.pid):
            self._orphans.append((pid, st["start"]))
        self.proc.kill()
        self.wait_exit(10)
        self._join_readers()

    def _kill_all(self):
        """SIGKILL jobd and every job process it started (best effort)."""
        if self.proc is None:
            return
        desc = descendants_of(self.pid) if self.running() else []
        grace = float(os.environ.get("JOBD_STOP_GRACE") or 0)
        if grace > 0 and self.running():
            # SIGTERM first, so valgrind (tests/soak/valgrind.sh) sees a clean exit and checks leaks.
            self.proc.terminate()
            self.wait_exit(grace)
        try:
            self.proc.kill()
        except OSError:
            pass
        self.wait_exit(10)
        victims = [(p, st["start"]) for p, st in desc] + self._orphans
        for pid, start in victims:
            if alive(pid, start):
                st = proc_stat(pid)
                try:
                    if st and st["pgid"] == pid:
                        os.killpg(pid, signal.SIGKILL)
                    else:
                        os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass

    def close(self):
        """Kill everything and remove the temporary directory (idempotent)."""
        if self._closed:
            return
        self._closed = True
        try:
            self._kill_all()
            if self.proc is not None:
                for f in (self.proc.stdout, self.proc.stderr):
                    try:
                        f.close()
                    except Exception:
                        pass
        finally:
            shutil.rmtree(self.tmp, ignore_errors=True)
            _live.discard(self)

    def _run_log(self):
        """What the current (or last) run wrote to stdout and stderr."""
        if self.proc is None:
            return ""
        with self._lock:
            return "".join(self._out_lines) + self._err.decode("utf-8", "replace")

    def log(self):
        """Everything jobd wrote to stdout and stderr (this run and earlier ones)."""
        return "".join(self._logs) + self._run_log()

    # -- HTTP

    def url(self, path):
        return "http://127.0.0.1:%d%s" % (self.port, path)

    def _headers(self, body, headers, auth):
        h = {}
        if auth and self.token is not None:
            h["Authorization"] = "Bearer " + self.token
        if body is not None and not isinstance(body, (bytes, bytearray, str)):
            body = json.dumps(body).encode()
            h["Content-Type"] = "application/json"
        elif isinstance(body, str):
            body = body.encode()
        for k, v in (headers or {}).items():
            if v is None:
                h.pop(k, None)
            else:
                h[k] = v
        return body, h

    def request(self, method, path, body=None, headers=None, timeout=30.0, auth=True):
        """One request on a new connection to 127.0.0.1. A dict/list body is sent as JSON.

        Returns a Response: (status, headers, parsed JSON or bytes).
        A header given as None is not sent.
        """
        body, h = self._headers(body, headers, auth)
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            conn.request(method, path, body=body, headers=h)
            r = conn.getresponse()
            data = r.read()
            record_exchange(method, path, r.status, r.headers, data)
            return Response(r.status, r.headers, data)
        finally:
            conn.close()

    def stream(self, method, path, timeout=10.0, auth=True, headers=None):
        """Open a request and return (conn, response) with the body unread; close conn after."""
        _, h = self._headers(None, headers, auth)
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        conn.request(method, path, headers=h)
        return conn, conn.getresponse()

    def raw(self, head, body=b"", chunks=None, timeout=10.0):
        """raw_exchange on this jobd's port."""
        return raw_exchange(self.port, head, body, chunks, timeout)

    # -- job helpers

    def submit(self, spec, wait=None, headers=None, expect=201, timeout=None):
        """POST /v1/jobs and return the job; AssertionError unless the status is `expect`."""
        path = "/v1/jobs" + ("?wait=%s" % wait if wait is not None else "")
        if timeout is None:
            timeout = 30.0 + (float(wait) if wait is not None else 0.0)
        r = self.request("POST", path, spec, headers=headers, timeout=timeout)
        statuses = expect if isinstance(expect, (tuple, list, set)) else (expect,)
        if r.status not in statuses:
            raise AssertionError("POST %s %s: expected %s, got %r" % (path, json.dumps(spec)[:200], expect, r))
        return r.json

    def job(self, job_id, wait=None, timeout=None):
        """GET /v1/jobs/ID (optionally ?wait=) and return the job; AssertionError unless 200."""
        path = "/v1/jobs/%s" % job_id + ("?wait=%s" % wait if wait is not None else "")
        r = self.request("GET", path, timeout=timeout or (30.0 + (wait or 0)))
        if r.status != 200:
            raise AssertionError("GET %s: expected 200, got %r" % (path, r))
        return r.json

    def wait_job(self, job_id, timeout=30.0):
        """Long-poll until the job is in a final state; AssertionError after `timeout` s."""
        end = time.monotonic() + timeout
        last = None
        while True:
            left = end - time.monotonic()
            if left <= 0:
                break
            w = max(1, min(300, int(left)))
            last = self.job(job_id, wait=w, timeout=w + 15)
            if last["state"] in FINAL_STATES:
                return last
            if w == 1 and left < 1:
                break
        raise AssertionError("job %s did not end within %.0fs; last: %s" % (job_id, timeout, json.dumps(last)[:500]))

    def wait_state(self, job_id, states, timeout=10.0, interval=0.05):
        """Poll until the job's state is one of `states` (a job with a pid when running)."""
        if isinstance(states, str):
            states = (states,)
        end = time.monotonic() + timeout
        last = None
        while time.monotonic() < end:
            last = self.job(job_id)
            if last["state"] in states and (last["state"] != "running" or last.get("pid")):
                return last
            if last["state"] in FINAL_STATES and not set(states) & FINAL_STATES:
                break
            time.sleep(interval)
        raise AssertionError(
            "job %s not in %s within %.0fs; last: %s" % (job_id, states, timeout, json.dumps(last)[:500]))

    def output(self, job_id, stream="stdout", offset=None, timeout=60.0):
        """GET /v1/jobs/ID/stdout (or stderr) bytes; AssertionError unless 200."""
        path = "/v1/jobs/%s/%s" % (job_id, stream) + ("?offset=%d" % offset if offset is not None else "")
        r = self.request("GET", path, timeout=timeout)
        if r.status != 200:
            raise AssertionError("GET %s: expected 200, got %r" % (path, r))
        return r.body

    def wait_output(self, job_id, needle, stream="stdout", timeout=10.0):
        """Poll a stream until it contains `needle` (bytes)."""
        end = time.monotonic() + timeout
        out = b""
        while time.monotonic() < end:
            out = self.output(job_id, stream)
            if needle in out:
                return out
            time.sleep(0.05)
        raise AssertionError("%s of %s lacks %r after %.0fs: %r" % (stream, job_id, needle, timeout, out[:300]))

    def list(self, **params):
        """GET /v1/jobs with query params; returns the JSON answer (asserts 200)."""
        q = urllib.parse.urlencode(params)
        path = "/v1/jobs" + ("?" + q if q else "")
        w = float(params.get("wait", 0) or 0)
        r = self.request("GET", path, timeout=30 + w)
        if r.status != 200:
            raise AssertionError("GET %s: expected 200, got %r" % (path, r))
        return r.json

    def list_all(self, **params):
        """Every job of a listing, following cursors (at most 50 pages)."""
        jobs, cursor = [], None
        for _ in range(50):
            p = dict(params)
            if cursor:
                p["cursor"] = cursor
            ans = self.list(**p)
            jobs += ans["jobs"]
            cursor = ans.get("next_cursor")
            if not cursor:
                return jobs
        raise AssertionError("more than 50 pages")

    def output_files(self, job_id):
        """Files under the data dir whose name starts with `<id>.` (its output)."""
        out = []
        for root, _, files in os.walk(self.data_dir):
            for f in files:
                if f.startswith(job_id + "."):
                    out.append(os.path.join(root, f))
        return out


# ---------------------------------------------------------------------------
# Test case base


SANITIZER_RE = re.compile(r"ERROR: (AddressSanitizer|LeakSanitizer|ThreadSanitizer)|WARNING: ThreadSanitizer|"
                          r"runtime error: |SUMMARY: (Address|Undefined|Thread)")


def check_sanitizers(j):
    """Raise AssertionError if a sanitizer reported anything in jobd's log."""
    log = j.log()
    m = SANITIZER_RE.search(log)
    if m:
        start = max(0, m.start() - 200)
        raise AssertionError("sanitizer report in jobd's log:\n" + log[start : start + 3000])


class JobdTestCase(unittest.TestCase):
    """Helpers for tests: start_jobd() registers cleanup; assertProblem checks RFC 9457."""

    maxDiff = 4000

    def start_jobd(self, *args, **kw):
        """Start a jobd for this test; it is closed (and its log checked) when the test ends."""
        j = self.track(Jobd(*args, start=False, **kw))
        j.start()
        return j

    def track(self, j):
        """Close j when the test ends, print its log if the test failed, check it for sanitizer reports."""
        self.addCleanup(check_sanitizers, j)
        self.addCleanup(j.close)
        self.addCleanup(self._dump_log_on_failure, j)
        return j

    @classmethod
    def start_shared(cls, *args, **kw):
        """Start a jobd for the whole class (closed and checked after its last test)."""
        j = Jobd(*args, start=False, **kw)
        cls.addClassCleanup(check_sanitizers, j)
        cls.addClassCleanup(j.close)
        if "_shared_jobds" not in cls.__dict__:
            cls._shared_jobds = []
        cls._shared_jobds.append(j)
        j.start()
        return j

    def setUp(self):
        # A failing test prints the log of the class's shared jobd too.
        for j in type(self).__dict__.get("_shared_jobds", []):
            self.addCleanup(self._dump_log_on_failure, j)

    def _dump_log_on_failure(self, j):
        outcome = getattr(self, "_outcome", None)
        failed = False
        if outcome is not None:
            # Python <= 3.10 collects errors in outcome.errors; 3.11+ reports them
            # to the result at once.
            errs = getattr(outcome, "errors", None)
            if errs:
                failed = any(e[1] is not None for e in errs)
            res = getattr(outcome, "result", None)
            if res is not None:
                failed = failed or any(t is self for t, _ in list(res.failures) + list(res.errors))
        if failed or os.environ.get("JOBD_IT_VERBOSE"):
            sys.stderr.write("\n--- jobd log (%s):\n%s\n" % (self.id(), j.log()[-3000:]))

    def assertProblem(self, r, status, field=None, msg=None):
        """r is an RFC 9457 problem with this status (and `field`, when given)."""
        ctx = "%s: %r" % (msg or "", r)
        self.assertEqual(r.status, status, ctx)
        self.assertEqual(r.ctype, "application/problem+json", ctx)
        p = r.json
        self.assertIsInstance(p, dict, ctx)
        for k in ("type", "title", "detail"):
            self.assertIsInstance(p.get(k), str, "%s lacks %s" % (ctx, k))
            self.assertTrue(p[k], "%s has an empty %s" % (ctx, k))
        self.assertEqual(p.get("status"), status, ctx)
        if field is not None:
            self.assertEqual(p.get("field"), field, ctx)
        return p

    def assertJobShape(self, job):
        """A job resource has every documented field, a well-formed id and times."""
        self.assertIsInstance(job, dict)
        missing = JOB_FIELDS - set(job)
        self.assertFalse(missing, "job lacks fields %s: %s" % (sorted(missing), job))
        self.assertRegex(job["id"], ID_RE)
        self.assertRegex(job["created_at"], TIME_RE)
        for k in ("started_at", "finished_at"):
            if job[k] is not None:
                self.assertRegex(job[k], TIME_RE)
        self.assertIsInstance(job["seq"], int)
