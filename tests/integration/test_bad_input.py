#!/usr/bin/env python3
"""Bad input, end to end: hostile and broken requests thrown at a running jobd.

Truncated and invalid JSON, invalid UTF-8, 10,000-deep nesting, 100,000 keys,
duplicate keys, numbers out of range, argv/env/stdin just over each documented
bound and the body cap, NUL bytes, path traversal and odd bytes in ids, absurd
query parameters, a very long URL (414), a huge header (431), a slowloris
client, 2,000 idle connections, and clients that hang up in the middle of a
follow stream or a long poll.

Throughout the file a thread asks GET /healthz of every jobd every 200 ms and
the test that was running fails if an answer is not a 200 within a second;
jobs accepted before the barrage must be untouched at the end (the last test).

Two jobds: `main` with the default flags (1 MiB body cap, 60 s idle timeout),
and `edge` with --connection-timeout 3 and a body cap above the 64 MiB stdin
bound (for the slowloris client and the stdin bound).

Answers that libmicrohttpd gives on its own (414, 431) are not jobd's to
shape; what they look like is printed as a finding at the end, not failed on.
"""

import http.client
import json
import os
import re
import resource
import socket
import struct
import subprocess
import sys
import threading
import time
import unittest
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import jobdtest  # noqa: E402
from jobdtest import FINAL_STATES, JobdTestCase  # noqa: E402

# Documents nested ~2,000 deep are legal here: let Python's json module read them.
sys.setrecursionlimit(max(sys.getrecursionlimit(), 20000))

MiB = 1024 * 1024
MAIN_MAX_BODY = MiB  # jobd's default --max-body
SPEC_MAX_STDIN = 64 * MiB  # lib/spec.c
EDGE_MAX_BODY = 66 * MiB
EDGE_CONN_TIMEOUT = 3

HEALTH_EVERY = 0.2  # seconds between two /healthz polls
HEALTH_MAX = 1.0  # the slowest acceptable /healthz answer
EDGE_HEALTH_MAX = 3.0  # the same on `edge`, which is parsing 64 MiB bodies at times
FD_MARGIN = 8  # descriptors jobd may hold above its baseline after a storm

# Documented bounds (lib/include/jobd/spec.h, lib/spec.c, openapi/openapi.yaml).
MAX_ARGV = 4096
MAX_ARG_BYTES = 128 * 1024
MAX_ENV = 1024
MAX_ENV_KEY = 256
MAX_ENV_BYTES = 32 * 1024
MAX_NAME = 256
MAX_LABELS = 64
MAX_LABEL_KEY = 128
MAX_LABEL_VAL = 256
MAX_EXIT_CODES = 256

INVALID_JSON = "urn:jobd:problem:invalid-json"
INVALID_SPEC = "urn:jobd:problem:invalid-spec"

# What libmicrohttpd (or jobd) did where the test records rather than fails.
FINDINGS = []


def finding(text):
    if text not in FINDINGS:
        FINDINGS.append(text)


def tearDownModule():
    if FINDINGS:
        sys.stderr.write("\n--- test_bad_input findings (recorded, not failed):\n")
        for f in FINDINGS:
            sys.stderr.write("  * %s\n" % f)


def raise_nofile(want=8192):
    """Raise this process's soft RLIMIT_NOFILE (jobd, started later, inherits it)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = want if hard == resource.RLIM_INFINITY else min(want, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def fd_count(pid):
    return len(os.listdir("/proc/%d/fd" % pid))


def wait_fds(pid, limit, timeout=10.0):
    """Poll jobd's descriptor count until it is <= limit; return the last count."""
    end = time.monotonic() + timeout
    n = fd_count(pid)
    while n > limit and time.monotonic() < end:
        time.sleep(0.1)
        n = fd_count(pid)
    return n


def plain_request(port, method, path, body=None, headers=None, timeout=30.0):
    """One request, not recorded for the contract test, body left unparsed.
    Returns (status, headers, bytes)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        r = conn.getresponse()
        return r.status, r.headers, r.read()
    finally:
        conn.close()


def health_once(port, timeout=5.0):
    """(ok, seconds, what) of one GET /healthz."""
    t0 = time.monotonic()
    try:
        status, _, body = plain_request(port, "GET", "/healthz", timeout=timeout)
    except Exception as e:  # noqa: BLE001 - any failure is reported
        return False, time.monotonic() - t0, "error %r" % e
    dt = time.monotonic() - t0
    ok = status == 200 and b'"ok"' in body and dt <= HEALTH_MAX
    return ok, dt, "status %d in %.3fs: %r" % (status, dt, body[:100])


# The poller runs in a process of its own, so that what this process does (building
# a 64 MiB body holds the GIL) cannot slow its requests down: a slow answer is jobd's.
POLLER_SRC = r"""
import http.client, json, sys, time
every, ports = float(sys.argv[1]), [(a.split("=")[0], int(a.split("=")[1])) for a in sys.argv[2:]]
while True:
    for name, port in ports:
        t0 = time.monotonic()
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            c.request("GET", "/healthz")
            r = c.getresponse()
            body = r.read()
            c.close()
            what, ok = "status %d: %r" % (r.status, body[:80]), r.status == 200 and b'"ok"' in body
        except Exception as e:
            what, ok = "error %r" % e, False
        dt = time.monotonic() - t0
        print(json.dumps({"name": name, "ok": ok, "dt": dt, "what": what}), flush=True)
    time.sleep(every)
"""


class HealthPoller(threading.Thread):
    """Reads the poller process: every answer over HEALTH_MAX or not a 200 is kept with the test running."""

    def __init__(self, targets):
        super().__init__(daemon=True)
        self.failures = []
        self.polls = 0
        self.slowest = 0.0
        self.slowest_at = ""
        self.current = "setUpClass"
        self._lock = threading.Lock()
        args = ["%s=%d" % (name, port) for name, port in targets.items()]
        self.proc = subprocess.Popen([sys.executable, "-c", POLLER_SRC, str(HEALTH_EVERY)] + args,
                                     stdout=subprocess.PIPE, stdin=subprocess.DEVNULL)

    def run(self):
        for line in self.proc.stdout:
            try:
                rec = json.loads(line)
            except ValueError:
                continue
            with self._lock:
                self.polls += 1
                if rec["dt"] > self.slowest:
                    self.slowest, self.slowest_at = rec["dt"], "%s during %s" % (rec["name"], self.current)
                # `edge` parses 64 MiB bodies: an HTTP thread is busy with one for about a
                # second, and a poll that lands on that thread waits (jobd has 2 of them).
                limit = EDGE_HEALTH_MAX if rec["name"] == "edge" else HEALTH_MAX
                if not rec["ok"] or rec["dt"] > limit:
                    self.failures.append("%s (during %s): %s in %.3fs" % (rec["name"], self.current, rec["what"], rec["dt"]))

    def sync(self):
        """Let the answers of polls already under way arrive (a poll lasts at most 5 s)."""
        with self._lock:
            n = self.polls
        end = time.monotonic() + 6
        while time.monotonic() < end and self.proc.poll() is None:
            time.sleep(0.05)
            with self._lock:
                if self.polls >= n + 2:
                    return

    def stop(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(10)
        self.join(10)
        self.proc.stdout.close()


def deep_array(depth, inner="1"):
    return "[" * depth + inner + "]" * depth


def b36(n):
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    s = ""
    while True:
        n, r = divmod(n, 36)
        s = digits[r] + s
        if n == 0:
            return s


def many_keys(n, value="0"):
    """A JSON object text with n distinct short keys."""
    return "{" + ",".join('"%s":%s' % (b36(i), value) for i in range(n)) + "}"


class BadInputTest(JobdTestCase):
    @classmethod
    def setUpClass(cls):
        cls.nofile = raise_nofile()
        cls.j = cls.start_shared()
        cls.edge = cls.start_shared("--connection-timeout", str(EDGE_CONN_TIMEOUT),
                                    "--max-body", str(EDGE_MAX_BODY))
        cls.poller = HealthPoller({"main": cls.j.port, "edge": cls.edge.port})
        cls.poller.start()
        cls.addClassCleanup(cls.poller.stop)
        cls._submit_before()

    @classmethod
    def _submit_before(cls):
        """Jobs accepted before the barrage: three that end, one left running."""
        j = cls.j
        specs = [
            {"command": ["sh", "-c", "printf 'out\\000x\\n'; echo err >&2; exit 3"], "name": "pre-a",
             "labels": {"phase": "before"}},
            {"shell": "cat; echo done", "stdin": "a\u0000b\nc\u00e9\n", "env": {"K": "v \u00e9"},
             "name": "pre-b", "priority": 5, "timeout": 30, "retries": 1, "retry_exit_codes": [75],
             "limits": {"output_bytes": 4096}},
            {"task": "echo", "args": {"n": 1, "s": "\u00e9\u0000", "deep": [[[{"k": None}]]]},
             "name": "pre-c"},
            {"command": ["sleep", "600"], "name": "pre-d", "kill_grace": 1},
        ]
        cls.before = [j.submit(s)["id"] for s in specs]
        for jid in cls.before[:3]:
            j.wait_job(jid, timeout=20)
        j.wait_state(cls.before[3], "running", timeout=10)
        cls.before_docs = {jid: j.job(jid) for jid in cls.before}
        cls.before_out = {jid: (j.output(jid, "stdout"), j.output(jid, "stderr")) for jid in cls.before}
        cls.before_pid = cls.before_docs[cls.before[3]]["pid"]
        cls.before_pid_start = jobdtest.proc_stat(cls.before_pid)["start"]

    def setUp(self):
        super().setUp()
        self.poller.current = self.id().rsplit(".", 1)[-1]
        with self.poller._lock:
            self._health_seen = len(self.poller.failures)

    def tearDown(self):
        self.poller.sync()
        with self.poller._lock:
            new = self.poller.failures[self._health_seen:]
        self.assertFalse(new, "/healthz was slow or failed while this test ran:\n  " + "\n  ".join(new[:10]))

    # ---- helpers

    def post(self, body, path="/v1/jobs", ctype="application/json", j=None, timeout=30.0, headers=None):
        h = {"Content-Type": ctype}
        h.update(headers or {})
        if isinstance(body, str):
            body = body.encode("utf-8")
        return (j or self.j).request("POST", path, body, headers=h, timeout=timeout)

    def newest(self, j=None):
        jobs = (j or self.j).list(limit=1)["jobs"]
        return jobs[0]["id"] if jobs else None

    def assertJsonError(self, r, msg=""):
        """400 invalid-json without a field."""
        p = self.assertProblem(r, 400, msg=msg)
        self.assertEqual(p["type"], INVALID_JSON, "%s: %r" % (msg, r))
        self.assertNotIn("field", p, "%s: %r" % (msg, r))
        return p

    def assertRefused(self, r, field=None, field_prefix=None, msg=""):
        """400 invalid-spec, naming `field` (or a field starting with field_prefix)."""
        p = self.assertProblem(r, 400, field=field, msg=msg)
        self.assertEqual(p["type"], INVALID_SPEC, "%s: %r" % (msg, r))
        if field_prefix is not None:
            self.assertTrue(str(p.get("field", "")).startswith(field_prefix), "%s: %r" % (msg, r))
        return p

    def assertNoNewJob(self, before, j=None):
        now = self.newest(j)
        if now != before:
            jobs = (j or self.j).list(limit=5)["jobs"]
            self.fail("a refused request created a job: newest %s, was %s: %s" % (
                now, before, [(x["id"], x.get("command"), x.get("task"), x.get("name"),
                               x.get("created_at")) for x in jobs]))

    def wait_all(self, ids, j=None, timeout=30.0):
        j = j or self.j
        return {jid: j.wait_job(jid, timeout=timeout) for jid in ids}

    # ---- JSON

    def test_01_truncated_and_invalid_json(self):
        before = self.newest()
        full = '{"command":["echo","hi"],"env":{"A":"b"},"name":"t","priority":1,"labels":{"k":"v"}}'
        for n in range(len(full)):
            self.assertJsonError(self.post(full[:n]), msg="prefix %d: %r" % (n, full[:n]))
        bodies = [
            b"{", b"}", b"[", b"{]", b'{"command":["true"],}', b'{"command":["true"]]',
            b"{'command':['true']}", b'{command:["true"]}', b'{"command":["true"] /* c */}',
            b'{"command":["true"]} {"x":1}', b'{"command":["true"]}x', b'{"command":["true"]}\x00',
            b'{"command":["true"],"priority":01}', b'{"command":["true"],"priority":+1}',
            b'{"command":["true"],"priority":.5}', b'{"command":["true"],"priority":1.}',
            b'{"command":["true"],"timeout":NaN}', b'{"command":["true"],"timeout":Infinity}',
            b'{"command":["true"],"timeout":-Infinity}', b'{"command":["tr\nue"]}',
            b'{"command":["true\\x41"]}', b'{"command":["true\\u00"]}', b'{"command":["true\\"]}',
            b'{"command":["true"],"name":"\t"}', b"\x00", b"\x00" * 64, b"   ", b"\r\n",
            b'{"command":[tru]}', b'{"command":[True]}', b'{"command":["true"],"args":undefined}',
        ]
        for b in bodies:
            self.assertJsonError(self.post(b), msg=repr(b))
        # Valid JSON that is not an object: refused, without a field.
        for b in (b"[]", b"null", b'"x"', b"1", b"true", b'[{"command":["true"]}]'):
            r = self.post(b)
            p = self.assertProblem(r, 400, msg=repr(b))
            self.assertIn(p["type"], (INVALID_JSON, INVALID_SPEC), "%r: %r" % (b, r))
            self.assertNotIn("field", p)
        # The body ends before its declared Content-Length: no job, no answer but an error.
        body = b'{"command":["true"],"name":"short-body"}'
        head = ("POST /v1/jobs HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                "Content-Length: %d\r\n\r\n" % (len(body) + 50)).encode()
        r, _, _ = self.j.raw(head, body, timeout=5)
        self.assertTrue(r is None or r.status >= 400, "a short body was answered %r" % (r,))
        # Batches go through the same parser.
        for b in (b'{"jobs":[{"command":["true"]}', b'{"jobs":[]]', b"\xff"):
            self.assertJsonError(self.post(b, path="/v1/batches"), msg="batch %r" % b)
        self.assertNoNewJob(before)

    def test_02_invalid_utf8(self):
        before = self.newest()
        raw = [
            b'{"command":["echo","\xff"]}',  # never valid
            b'{"command":["echo","\xc3"]}',  # a sequence cut short
            b'{"command":["echo","\xc3("]}',  # a bad continuation byte
            b'{"command":["echo","\xc0\xaf"]}',  # overlong '/'
            b'{"command":["echo","\xe0\x80\xaf"]}',  # overlong, 3 bytes
            b'{"command":["echo","\xed\xa0\x80"]}',  # a UTF-16 surrogate in UTF-8
            b'{"command":["echo","\xf4\x90\x80\x80"]}',  # above U+10FFFF
            b'{"command":["echo","\xf8\x88\x80\x80\x80"]}',  # 5-byte form
            b'{"command":["true"],"name":"\x80"}',
            b'{"command":["true"],"env":{"K\xff":"v"}}',  # in a key
            b'{"command":["true"],"env":{"K":"\xfe"}}',
            b'{"command":["true"],"labels":{"k":"\xc3\x28"}}',
            b'{"command":["true"],"stdin":"\xff\xfe"}',  # stdin is a JSON string, so UTF-8 too
            b'{"\xff":1}',
            b'\xff{"command":["true"]}',  # raw, outside any string
            b'{"command":["true"]\xff}',
            b'\xef\xbb\xbf{"command":["true"]}',  # a UTF-8 byte order mark
            b'\xff\xfe{\x00}\x00',  # UTF-16LE
            json.dumps({"command": ["true"]}).encode("utf-16"),
            json.dumps({"command": ["true"]}).encode("utf-32"),
            # Escapes that are not characters.
            b'{"command":["echo","\\ud800"]}', b'{"command":["echo","\\udc00"]}',
            b'{"command":["echo","\\udc00\\ud800"]}', b'{"command":["true"],"name":"\\ud83d"}',
        ]
        for b in raw:
            self.assertJsonError(self.post(b), msg=repr(b))
        # In the body of a declared charset that is not UTF-8: still refused.
        r = self.post('{"command":["echo","\u00e9"]}'.encode("latin-1"), ctype="application/json; charset=latin-1")
        self.assertJsonError(r, msg="latin-1 body")
        # A valid pair of surrogate escapes is a character, and is accepted.
        r = self.post(b'{"command":["echo","\\ud83d\\udca5"],"name":"pair"}')
        self.assertEqual(r.status, 201, r)
        self.assertEqual(r.json["command"][1], "\U0001f4a5")
        jid = r.json["id"]
        self.assertEqual(self.j.wait_job(jid)["state"], "succeeded")
        self.assertEqual(self.j.output(jid), "\U0001f4a5\n".encode())
        # Invalid UTF-8 in query values and headers: a clean problem document.
        for path, field in (("/v1/jobs?state=%ff", "state"), ("/v1/jobs?cursor=%c3", "cursor"),
                            ("/v1/jobs?limit=%ed%a0%80", "limit"), ("/v1/jobs?label=%ff", "label")):
            self.assertProblem(self.j.request("GET", path), 400, field=field, msg=path)
        for path in ("/v1/jobs?name=%ff", "/v1/jobs?label=k=%ff%fe"):
            r = self.j.request("GET", path)
            self.assertEqual(r.status, 200, r)
            self.assertEqual(r.json["jobs"], [], path)
        head = (b"POST /v1/jobs HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                b"Idempotency-Key: k\xff\xfe\r\nContent-Length: 20\r\nConnection: close\r\n\r\n")
        r, _, _ = self.j.raw(head, b'{"command":["true"]}')
        self.assertProblem(r, 400, field="Idempotency-Key", msg="invalid UTF-8 Idempotency-Key")
        self.assertEqual(self.newest(), jid)
        self.assertGreater(jobdtest.idnum(jid), jobdtest.idnum(before))

    def test_03_deep_nesting(self):
        before = self.newest()
        cases = {
            "array 10,000 deep": deep_array(10000),
            "object 10,000 deep": '{"a":' * 10000 + "1" + "}" * 10000,
            "args 10,000 deep": '{"task":"echo","args":%s}' % deep_array(10000),
            "labels 10,000 deep": '{"command":["true"],"labels":%s}' % ('{"a":' * 10000 + '"x"' + "}" * 10000),
            "unclosed 10,000 deep": "[" * 10000,
            "array 100,000 deep": deep_array(100000),
            "mixed 10,000 deep": '{"command":["true"],"args":' + '[{"a":' * 5000 + "1" + "}]" * 5000 + "}",
            "batch jobs 10,000 deep": '{"jobs":%s}' % deep_array(10000),
        }
        for what, text in cases.items():
            path = "/v1/batches" if what.startswith("batch") else "/v1/jobs"
            t0 = time.monotonic()
            r = self.post(text, path=path, timeout=10)
            self.assertLess(time.monotonic() - t0, 5, what)
            self.assertJsonError(r, msg=what)
        self.assertNoNewJob(before)
        # Just under the parser's depth limit, a spec must be accepted or refused
        # cleanly, and an accepted one must stay readable (its document, the listing).
        for depth in (1000, 2040):
            text = '{"task":"echo","name":"deep-%d","args":%s}' % (depth, deep_array(depth))
            status, _, body = plain_request(self.j.port, "POST", "/v1/jobs", text.encode(),
                                            {"Content-Type": "application/json"})
            self.assertIn(status, (201, 400), "depth %d: %d %r" % (depth, status, body[:300]))
            if status == 400:
                finding("a task spec whose args are %d deep is refused: %r" % (depth, body[:200]))
                continue
            jid = re.search(rb'"id":"(j[0-9a-z]+)"', body).group(1).decode()
            self.addCleanup(self.delete_quietly, jid)
            end = time.monotonic() + 20
            while True:
                status, _, doc = plain_request(self.j.port, "GET", "/v1/jobs/%s?wait=5" % jid, timeout=20)
                self.assertEqual(status, 200, "depth %d: %r" % (depth, doc[:300]))
                state = re.search(rb'"state":"([a-z_]+)"', doc).group(1).decode()
                if state in FINAL_STATES or time.monotonic() > end:
                    break
            self.assertEqual(state, "succeeded", "depth %d: %r" % (depth, doc[:400]))
            self.assertIn(b"[" * depth + b"1" + b"]" * depth, doc)
            status, _, out = plain_request(self.j.port, "GET", "/v1/jobs/%s/stdout" % jid)
            self.assertEqual((status, out), (200, ("[" * depth + "1" + "]" * depth + "\n").encode()))
            status, _, lst = plain_request(self.j.port, "GET", "/v1/jobs?limit=2")
            self.assertEqual(status, 200, lst[:300])
            self.assertIn(jid.encode(), lst)
            self.assertEqual(self.j.request("DELETE", "/v1/jobs/" + jid).status, 204)

    def test_03b_deep_document_does_not_break_listings(self):
        """A job whose args are nested as deep as the parser allows must not break others' listings."""
        depth = 2040
        text = '{"task":"echo","name":"deep-listing","args":%s}' % deep_array(depth)
        status, _, body = plain_request(self.j.port, "POST", "/v1/jobs?wait=10", text.encode(),
                                        {"Content-Type": "application/json"})
        if status == 400:
            return  # refused: nothing stored that could break anything
        self.assertEqual(status, 201, body[:300])
        jid = re.search(rb'"id":"(j[0-9a-z]+)"', body).group(1).decode()
        self.addCleanup(self.delete_quietly, jid)
        broken = []
        for path in ("/v1/jobs?label=phase=before", "/v1/jobs?name=pre-a", "/v1/jobs?state=failed",
                     "/v1/jobs?limit=1000", "/v1/jobs?since=0&wait=0"):
            status, _, lst = plain_request(self.j.port, "GET", path)
            if status != 200 or (b'"pre-a"' not in lst and "state=" not in path):
                broken.append("GET %s: %d %r" % (path, status, lst[:160]))
        self.assertFalse(broken, "with job %s's args %d deep stored: %s" % (jid, depth, "; ".join(broken)))

    def delete_quietly(self, jid):
        try:
            self.j.request("DELETE", "/v1/jobs/" + jid, timeout=10)
        except OSError:
            pass

    def test_04_many_keys(self):
        before = self.newest()
        keys = many_keys(100000)
        self.assertLess(len(keys), MAIN_MAX_BODY - 200)
        cases = [
            ("top level", keys[:-1] + ',"command":["true"]}', None),
            ("env", '{"command":["true"],"env":%s}' % keys, "env"),
            ("labels", '{"command":["true"],"labels":%s}' % keys, "labels"),
            ("node_selector", '{"command":["true"],"node_selector":%s}' % keys, "node_selector"),
            ("limits", '{"command":["true"],"limits":%s}' % keys, None),
            ("command of 100,000 entries", '{"command":["true"%s]}' % (',"x"' * 100000), "command"),
            ("retry_exit_codes of 100,000",
             '{"command":["true"],"retry_exit_codes":[%s]}' % ",".join(["1"] * 100000), "retry_exit_codes"),
        ]
        for what, text, field in cases:
            self.assertLess(len(text), MAIN_MAX_BODY, what)
            t0 = time.monotonic()
            r = self.post(text, timeout=15)
            self.assertLess(time.monotonic() - t0, 5, what)
            self.assertRefused(r, field=field, msg=what)
        r = self.post('{"jobs":%s}' % keys, path="/v1/batches", timeout=15)
        self.assertProblem(r, 400, msg="a batch with 100,000 keys")
        self.assertNoNewJob(before)
        # Task args may be any JSON: 100,000 keys are accepted, kept and echoed whole.
        text = '{"task":"echo","name":"many-keys","args":%s}' % keys
        t0 = time.monotonic()
        status, _, body = plain_request(self.j.port, "POST", "/v1/jobs?wait=20", text.encode(),
                                        {"Content-Type": "application/json"}, timeout=40)
        self.assertLess(time.monotonic() - t0, 15)
        self.assertEqual(status, 201, body[:300])
        doc = json.loads(body)
        self.assertEqual(doc["state"], "succeeded", str(doc)[:300])
        self.assertEqual(len(doc["args"]), 100000)
        self.assertEqual(doc["result"], doc["args"])

    def test_05_duplicate_keys(self):
        before = self.newest()
        bodies = [
            '{"command":["true"],"command":["false"]}',
            '{"command":["true"],"name":"a","name":"a"}',
            '{"command":["true"],"name":"a","n\\u0061me":"b"}',  # the same key, spelt two ways
            '{"command":["true"],"env":{"A":"1","A":"2"}}',
            '{"command":["true"],"labels":{"k":"1","k":"2"}}',
            '{"command":["true"],"node_selector":{"k":"1","k":"1"}}',
            '{"command":["true"],"limits":{"cpu_seconds":1,"cpu_seconds":2}}',
            '{"task":"echo","args":{"a":1,"a":2}}',
            '{"task":"echo","args":[[{"x":{"y":1,"y":1}}]]}',
            '{"command":["true"],"timeout":1,"timeout":2}',
            '{"command":["true"],"env":{"A\\u0000":"1","A\\u0000":"2"}}',
        ]
        for b in bodies:
            self.assertJsonError(self.post(b), msg=b)
        r = self.post(b'{"jobs":[{"command":["true"]}],"jobs":[]}', path="/v1/batches")
        self.assertJsonError(r, msg="batch with two jobs keys")
        self.assertNoNewJob(before)
        # Keys that differ only in case are different keys: "Command" is unknown.
        self.assertRefused(self.post('{"command":["true"],"Command":["false"]}'), field="Command")
        self.assertNoNewJob(before)

    # ---- numbers

    def test_06_numbers_out_of_range(self):
        int_fields = {  # field: (lo, hi)
            "retries": (0, 100), "priority": (-100, 100), "retry_exit_codes[0]": (1, 255),
            "kill_signal": (1, 64), "limits.cpu_seconds": (1, 1 << 31),
            "limits.memory_bytes": (MiB, (1 << 63) - 1), "limits.open_files": (16, 1048576),
            "limits.output_bytes": (1024, 1 << 40),
        }
        sec_fields = {  # field: (lo, lo excluded, hi)
            "timeout": (0, True, 366 * 86400), "kill_grace": (0, False, 3600),
            "retry_delay": (0, False, 366 * 86400),
        }
        values = ["1e400", "-1e400", "1e308", "-1e308", "1e-400", "9223372036854775807",
                  "9223372036854775808", "-9223372036854775808", "-9223372036854775809",
                  "18446744073709551616", "1" + "0" * 400, "-" + "9" * 400, "-0", "-0.0", "0.5", "1.0",
                  "2147483648", "4294967296", "4294967297", "1099511627777", "65", "256", "-101", "101"]

        def jansson(text):
            """('int'|'real', value) as jansson reads it, or None when it refuses the text."""
            if re.fullmatch(r"-?\d+", text):
                v = int(text)
                return ("int", v) if -(1 << 63) <= v < (1 << 63) else None
            v = float(text)
            return None if v in (float("inf"), float("-inf")) else ("real", v)

        def spec_text(field, text):
            if field.startswith("limits."):
                return '{"command":["true"],"limits":{"%s":%s}}' % (field[7:], text)
            if field == "retry_exit_codes[0]":
                return '{"command":["true"],"retry_exit_codes":[%s]}' % text
            return '{"command":["true"],"%s":%s}' % (field, text)

        accepted = []
        for field in list(int_fields) + list(sec_fields):
            for text in values:
                v = jansson(text)
                if v is None:
                    want = "json"
                elif field in int_fields:
                    lo, hi = int_fields[field]
                    want = 201 if v[0] == "int" and lo <= v[1] <= hi else 400
                else:
                    lo, lo_open, hi = sec_fields[field]
                    want = 201 if (v[1] > lo if lo_open else v[1] >= lo) and v[1] <= hi else 400
                body = spec_text(field, text)
                r = self.post(body)
                if want == "json":
                    self.assertJsonError(r, msg=body[:120])
                elif want == 400:
                    self.assertRefused(r, field=field, msg=body[:120])
                else:
                    self.assertEqual(r.status, 201, "%s: %r" % (body[:120], r))
                    got = r.json
                    for part in field.replace("[0]", "").split("."):
                        got = got[part]
                    if field == "retry_exit_codes[0]":
                        got = got[0]
                    if field == "kill_signal":
                        continue  # rendered as a name
                    self.assertEqual(got, v[1], body[:120])
                    self.assertFalse(isinstance(got, float) and str(got) == "-0.0", body)
                    accepted.append(r.json["id"])
        for jid, doc in self.wait_all(accepted).items():
            self.assertIn(doc["state"], ("succeeded", "failed"), doc)
        # Query numbers: absurd values are refused with the parameter named.
        jid = self.before[0]
        cases = [
            ("/v1/jobs?limit=1e9", "limit"), ("/v1/jobs?limit=1000000000", "limit"),
            ("/v1/jobs?limit=99999999999999999999", "limit"), ("/v1/jobs?limit=-1", "limit"),
            ("/v1/jobs?limit=", "limit"), ("/v1/jobs?limit=0x10", "limit"), ("/v1/jobs?limit=1%00", "limit"),
            ("/v1/jobs?limit=1.0", "limit"),
            ("/v1/jobs?since=99999999999999999999&wait=0", "since"), ("/v1/jobs?since=-1&wait=0", "since"),
            ("/v1/jobs?since=1e3&wait=0", "since"),
            ("/v1/jobs/%s/stdout?offset=-5" % jid, "offset"),
            ("/v1/jobs/%s/stdout?offset=99999999999999999999" % jid, "offset"),
            ("/v1/jobs/%s/stdout?offset=1e3" % jid, "offset"),
            ("/v1/jobs/%s/stdout?offset=-0x1" % jid, "offset"),
        ]
        for w in ("-1", "NaN", "nan", "-nan", "inf", "-inf", "Infinity", "1e400", "301", "1e9", "",
                  "300.0000001", "0x1p100", "1,5"):
            cases.append(("/v1/jobs/%s?wait=%s" % (jid, urllib.parse.quote(w)), "wait"))
            cases.append(("/v1/jobs?since=0&wait=%s" % urllib.parse.quote(w), "wait"))
        for path, field in cases:
            self.assertProblem(self.j.request("GET", path, timeout=10), 400, field=field, msg=path)
        before = self.newest()
        for w in ("NaN", "-1", "1e400", "inf"):
            r = self.post('{"command":["true"]}', path="/v1/jobs?wait=" + w)
            self.assertProblem(r, 400, field="wait", msg="POST wait=" + w)
        self.assertNoNewJob(before)
        # strtoll skips leading blanks and takes a sign: record what such values get.
        for path in ("/v1/jobs?limit=%201", "/v1/jobs?limit=+1", "/v1/jobs/%s/stdout?offset=%%20%%2B0" % jid):
            r = self.j.request("GET", path)
            if r.status != 400:
                finding("%s is accepted (%d): integer parameters take leading blanks and a '+'" % (path, r.status))
        # The largest offset is past the end: an empty body, not an error.
        r = self.j.request("GET", "/v1/jobs/%s/stdout?offset=9223372036854775807" % jid)
        self.assertEqual((r.status, r.body), (200, b""), r)
        r = self.j.request("GET", "/v1/jobs?since=9223372036854775807&wait=0")
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json["jobs"], [])

    def test_06b_tiny_timeout_still_times_out(self):
        """A timeout > 0 is accepted, so even a tiny one must end the job (or be refused)."""
        ids = {}
        t0 = time.monotonic()
        for t in ("0.0004", "1e-300", "5e-324"):
            r = self.post('{"command":["sleep","3"],"timeout":%s}' % t)
            if r.status == 400:
                self.assertRefused(r, field="timeout")
                continue
            self.assertEqual(r.status, 201, r)
            ids[t] = r.json["id"]
        bad = []
        for t, jid in ids.items():
            doc = self.j.wait_job(jid, timeout=15)
            if doc["state"] != "timed_out":
                bad.append("timeout %s: accepted, and the job ran to its end (%s, exit %s, %.1fs)"
                           % (t, doc["state"], doc["exit_code"], time.monotonic() - t0))
        self.assertFalse(bad, "; ".join(bad))

    # ---- sizes

    def test_07_size_bounds(self):
        before = self.newest()
        over = [
            ({"command": ["true"] + ["x"] * MAX_ARGV}, "command"),
            ({"command": ["echo", "a" * (MAX_ARG_BYTES + 1)]}, "command[1]"),
            ({"shell": "a" * (MAX_ARG_BYTES + 1)}, "shell"),
            ({"command": ["true"], "cwd": "/" + "a" * MAX_ARG_BYTES}, "cwd"),
            ({"command": ["true"], "env": {"K%d" % i: "v" for i in range(MAX_ENV + 1)}}, "env"),
            ({"command": ["true"], "env": {"K": "v" * (MAX_ENV_BYTES + 1)}}, "env.K"),
            ({"command": ["true"], "env": {"K" * (MAX_ENV_KEY + 1): "v"}}, "env.KKKK"),
            ({"command": ["true"], "name": "n" * (MAX_NAME + 1)}, "name"),
            ({"command": ["true"], "name": "\u00e9" * (MAX_NAME // 2) + "x"}, "name"),  # bytes, not characters
            ({"command": ["true"], "labels": {"k%d" % i: "v" for i in range(MAX_LABELS + 1)}}, "labels"),
            ({"command": ["true"], "labels": {"k" * (MAX_LABEL_KEY + 1): "v"}}, "labels.kkkk"),
            ({"command": ["true"], "labels": {"k": "v" * (MAX_LABEL_VAL + 1)}}, "labels.k"),
            ({"command": ["true"], "node_selector": {"k%d" % i: "v" for i in range(MAX_LABELS + 1)}},
             "node_selector"),
            ({"command": ["true"], "retry_exit_codes": [1] * (MAX_EXIT_CODES + 1)}, "retry_exit_codes"),
            ({"task": "t" * (MAX_NAME + 1)}, "task"),
        ]
        for spec, field in over:
            body = json.dumps(spec)
            self.assertLess(len(body), MAIN_MAX_BODY)
            if field.endswith("KKKK") or field.endswith("kkkk"):
                # A key longer than the error's field buffer: the field names a prefix of it.
                p = self.assertRefused(self.post(body), field_prefix=field, msg=body[:100])
                if len(p["field"]) < len(field) - 4 + MAX_ENV_KEY:
                    finding("a %d-byte key is named by a field cut to %d bytes: %s..."
                            % (len(next(iter(spec.get("env") or spec["labels"]))), len(p["field"]), p["field"][:12]))
                continue
            self.assertRefused(self.post(body), field=field, msg=body[:100])
        self.assertNoNewJob(before)
        # At each bound: accepted, and the job runs (or fails to start with a reason).
        at = [
            {"command": ["true"] + ["x"] * (MAX_ARGV - 1)},
            {"command": ["true"], "env": {"K%d" % i: "v" for i in range(MAX_ENV)}},
            {"shell": 'printf %s "$K" | wc -c', "env": {"K": "v" * MAX_ENV_BYTES}},
            {"command": ["true"], "env": {"K" * MAX_ENV_KEY: "v"}},
            {"command": ["true"], "name": "n" * MAX_NAME,
             "labels": dict([("k" * MAX_LABEL_KEY, "v" * MAX_LABEL_VAL)] +
                            [("k%d" % i, "v") for i in range(MAX_LABELS - 1)])},
            {"command": ["true"], "retry_exit_codes": [1 + i % 255 for i in range(MAX_EXIT_CODES)]},
            {"command": ["echo", "a" * MAX_ARG_BYTES]},  # one byte over the kernel's MAX_ARG_STRLEN with its NUL
        ]
        ids = []
        for spec in at:
            r = self.post(json.dumps(spec))
            self.assertEqual(r.status, 201, "%s: %r" % (json.dumps(spec)[:100], r))
            ids.append(r.json["id"])
        docs = self.wait_all(ids)
        for jid in ids[:-1]:
            self.assertEqual(docs[jid]["state"], "succeeded", docs[jid])
        self.assertEqual(self.j.output(ids[2]).strip(), str(MAX_ENV_BYTES).encode())
        last = docs[ids[-1]]
        if last["state"] != "succeeded":
            self.assertEqual(last["state"], "failed", last)
            self.assertTrue(last["error"], last)
            finding("an argv entry of exactly %d bytes is accepted but cannot be exec'd: %s, error %r"
                    % (MAX_ARG_BYTES, last["state"], last["error"]))

    def test_08_body_cap(self):
        before = self.newest()
        spec = b'{"command":["true"],"name":"body-cap"}'
        at_cap = spec + b" " * (MAIN_MAX_BODY - len(spec))
        r = self.post(at_cap)
        self.assertEqual(r.status, 201, r)
        done = self.j.wait_job(r.json["id"])
        self.assertEqual(done["state"], "succeeded")
        before = done["id"]
        over = at_cap + b" "
        head = ("POST /v1/jobs HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                "Content-Length: %d\r\n\r\n" % len(over)).encode()
        r, _, _ = self.j.raw(head, over, timeout=15)
        self.assertProblem(r, 413, msg="Content-Length one over the cap")
        # The same, chunked (no Content-Length): refused when the cap is crossed.
        conn = http.client.HTTPConnection("127.0.0.1", self.j.port, timeout=15)
        try:
            conn.request("POST", "/v1/jobs", body=iter([over[i:i + 65536] for i in range(0, len(over), 65536)]),
                         headers={"Content-Type": "application/json"}, encode_chunked=True)
            resp = conn.getresponse()
            self.assertProblem(jobdtest.Response(resp.status, resp.headers, resp.read()), 413, msg="chunked")
        finally:
            conn.close()
        # Declared sizes far over the cap are refused before any of the body is sent.
        for cl in ("1099511627776", "18446744073709551615", "99999999999999999999999"):
            head = ("POST /v1/jobs HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                    "Content-Length: %s\r\n\r\n" % cl).encode()
            r, _, _ = self.j.raw(head, b"", timeout=10)
            self.assertIsNotNone(r, "no answer to Content-Length: %s" % cl)
            if r.status == 413 and r.ctype != "application/problem+json":
                # libmicrohttpd refuses a Content-Length it cannot hold before jobd sees the request.
                finding("Content-Length: %s is answered 413 by libmicrohttpd itself (%s, body %r)"
                        % (cl, r.headers.get("Content-Type") or "no Content-Type", r.body[:120]))
            elif r.status == 413:
                self.assertProblem(r, 413, msg="Content-Length: " + cl)
            else:
                self.assertEqual(r.status, 400, "Content-Length: %s: %r" % (cl, r))
                if r.ctype != "application/problem+json":
                    finding("Content-Length: %s is answered %d by libmicrohttpd (%s %r)"
                            % (cl, r.status, r.ctype or "no Content-Type", r.body[:80]))
        head = (b"POST /v1/jobs HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                b"Content-Length: -1\r\nConnection: close\r\n\r\n")
        r, _, _ = self.j.raw(head, b"", timeout=10)
        self.assertTrue(r is None or r.status == 400, "Content-Length: -1 answered %r" % (r,))
        if r is not None and r.ctype != "application/problem+json":
            finding("Content-Length: -1 is answered %d by libmicrohttpd (%s)" % (r.status, r.ctype or "no Content-Type"))
        # stdin over the body cap: 413 whatever the stdin bound is.
        body = json.dumps({"command": ["true"], "stdin": "x" * MAIN_MAX_BODY}).encode()
        head = ("POST /v1/jobs HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                "Content-Length: %d\r\n\r\n" % len(body)).encode()
        r, _, _ = self.j.raw(head, body, timeout=15)
        self.assertProblem(r, 413, msg="1 MiB of stdin")
        self.assertNoNewJob(before)
        # Under the cap, stdin may hold anything, NUL bytes included, and comes out whole.
        data = "".join(chr(i % 128) for i in range(300000))
        r = self.post(json.dumps({"command": ["cat"], "stdin": data, "name": "stdin-bytes"}))
        self.assertEqual(r.status, 201, r)
        self.assertEqual(self.j.wait_job(r.json["id"])["state"], "succeeded")
        self.assertEqual(self.j.output(r.json["id"]), data.encode())

    def test_09_huge_stdin_argv_env(self):
        """On a jobd whose body cap is above the 64 MiB stdin bound."""
        e = self.edge
        hdr = {"Content-Type": "application/json"}
        before = self.newest(e)
        body = b'{"command":["true"],"stdin":"' + b"a" * (SPEC_MAX_STDIN + 1) + b'"}'
        status, _, ans = plain_request(e.port, "POST", "/v1/jobs", body, hdr, timeout=60)
        self.assertRefused(jobdtest.Response(status, {"Content-Type": "application/problem+json"}, ans),
                           field="stdin", msg="stdin of 64 MiB + 1")
        # Over the edge's own cap: 413, declared or chunked.
        body = b'{"command":["true"],"stdin":"' + b"a" * EDGE_MAX_BODY + b'"}'
        head = ("POST /v1/jobs HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                "Content-Length: %d\r\n\r\n" % len(body)).encode()
        r, _, _ = e.raw(head, body, timeout=30)
        self.assertProblem(r, 413, msg="body over --max-body")
        self.assertNoNewJob(before, e)
        # stdin at the bound: accepted and delivered whole.
        body = b'{"command":["wc","-c"],"stdin":"' + b"a" * SPEC_MAX_STDIN + b'"}'
        status, _, ans = plain_request(e.port, "POST", "/v1/jobs", body, hdr, timeout=60)
        self.assertEqual(status, 201, ans[:300])
        jid = re.search(rb'"id":"(j[0-9a-z]+)"', ans[:200] + ans[-20000:]).group(1).decode()
        ids = [jid]
        # Huge argv and env within the body cap: 32 MiB of either, far over what execve takes.
        for spec in ({"command": ["true"] + ["a" * 16000] * 2000},
                     {"command": ["true"], "env": {"K%d" % i: "v" * MAX_ENV_BYTES for i in range(MAX_ENV)}}):
            status, _, ans = plain_request(e.port, "POST", "/v1/jobs", json.dumps(spec).encode(), hdr, timeout=60)
            self.assertIn(status, (201, 400), ans[:300])
            if status == 201:
                ids.append(re.search(rb'"id":"(j[0-9a-z]+)"', ans[:200]).group(1).decode())
        for n, jid in enumerate(ids):
            end = time.monotonic() + 30
            while True:
                status, _, doc = plain_request(e.port, "GET", "/v1/jobs/%s?wait=5" % jid, timeout=20)
                self.assertEqual(status, 200)
                state = re.search(rb'"state":"([a-z_]+)"', doc).group(1).decode()
                if state in FINAL_STATES or time.monotonic() > end:
                    break
            self.assertIn(state, FINAL_STATES, "job %s stuck %s" % (jid, state))
            if n == 0:
                self.assertEqual(state, "succeeded")
                self.assertEqual(e.output(jid).strip(), str(SPEC_MAX_STDIN).encode())
            elif state == "failed":
                err = json.loads(re.search(rb'"error":("(?:[^"\\]|\\.)*"|null)', doc).group(1))
                self.assertTrue(err, "job %s failed without a reason" % jid)
                finding("a %s of 32 MiB is accepted (201) and the job fails: %r"
                        % ("argv" if n == 1 else "env", err))

    # ---- NUL bytes

    def test_10_nul_bytes(self):
        before = self.newest()
        refused = [
            ({"command": ["ec\u0000ho", "x"]}, "command[0]"),
            ({"command": ["echo", "a\u0000b"]}, "command[1]"),
            ({"shell": "echo hi\u0000; rm -rf /"}, "shell"),
            ({"command": ["true"], "env": {"K": "v\u0000x"}}, "env.K"),

            ({"command": ["true"], "name": "n\u0000"}, "name"),
            ({"command": ["true"], "name": "\u0000"}, "name"),
            ({"command": ["true"], "labels": {"k": "v\u0000"}}, "labels.k"),

            ({"command": ["true"], "node_selector": {"k": "\u0000"}}, "node_selector.k"),
            ({"command": ["true"], "cwd": "/tmp\u0000/x"}, "cwd"),
            ({"command": ["true"], "executor": "process\u0000"}, "executor"),
            ({"command": ["true"], "kill_signal": "TERM\u0000"}, "kill_signal"),
            ({"task": "echo\u0000"}, "task"),
        ]
        for spec, field in refused:
            body = json.dumps(spec)
            self.assertRefused(self.post(body), field=field, msg=body)
        # A NUL in a key: refused by the parser (invalid-json) or the spec (invalid-spec).
        for spec in ({"command": ["true"], "env": {"K\u0000X": "v"}}, {"command": ["true"], "env": {"\u0000": "v"}},
                     {"command": ["true"], "labels": {"k\u0000": "v"}}, {"command": ["true"], "name\u0000": "x"},
                     {"command": ["true"], "limits": {"cpu_seconds\u0000": 1}}, {"task": "echo", "args": {"k\u0000": 1}}):
            body = json.dumps(spec)
            r = self.post(body)
            p = self.assertProblem(r, 400, msg=body)
            self.assertIn(p["type"], (INVALID_JSON, INVALID_SPEC), "%s: %r" % (body, r))
        self.assertNoNewJob(before)
        # stdin may contain NUL by design; task args may too. Both come back byte for byte.
        r = self.post(json.dumps({"command": ["cat"], "stdin": "\u0000a\u0000\u0000b\u0000"}))
        self.assertEqual(r.status, 201, r)
        self.assertEqual(r.json["stdin"], "\u0000a\u0000\u0000b\u0000")
        jid = r.json["id"]
        self.assertEqual(self.j.wait_job(jid)["state"], "succeeded")
        self.assertEqual(self.j.output(jid), b"\x00a\x00\x00b\x00")
        args = {"s": "a\u0000b", "\u00e9": [None, "\u0000", {"x": "\u0000\u0000"}]}
        r = self.post(json.dumps({"task": "echo", "args": args}))
        self.assertEqual(r.status, 201, r)
        self.assertEqual(r.json["args"], args)
        done = self.j.wait_job(r.json["id"])
        self.assertEqual(done["state"], "succeeded", done)
        self.assertEqual(done["result"], args)
        self.assertEqual(json.loads(self.j.output(r.json["id"])), args)
        # An Idempotency-Key with a NUL (libmicrohttpd may refuse the header itself).
        head = (b"POST /v1/jobs HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                b"Idempotency-Key: a\x00b\r\nContent-Length: 20\r\nConnection: close\r\n\r\n")
        before = self.newest()
        r, _, _ = self.j.raw(head, b'{"command":["true"]}')
        if r is not None and r.status in (200, 201):
            # libmicrohttpd hands jobd the value cut at the NUL ("a"), a valid key: recorded.
            finding("Idempotency-Key: a<NUL>b is accepted (%d) as the key 'a': libmicrohttpd cuts header "
                    "values at a NUL" % r.status)
        else:
            self.assertTrue(r is None or r.status == 400, "Idempotency-Key with a NUL: %r" % (r,))
            if r is not None and r.ctype != "application/problem+json":
                finding("a header with a NUL byte is answered %d by libmicrohttpd (%s, %r)"
                        % (r.status, r.ctype or "no Content-Type", r.body[:80]))
            if self.newest() != before:
                # libmicrohttpd cut the value at the NUL and passed the request on
                # ("a" is a valid key), then its own answer to the malformed line won the
                # race with jobd's 201: jobd cannot see the NUL (value sizes are cut too).
                finding("Idempotency-Key: a<NUL>b reached jobd as the key 'a' while libmicrohttpd "
                        "answered %r" % (r.status if r is not None else None,))

    # ---- ids and paths

    def test_11_odd_ids(self):
        pre = self.before[0]
        ids = ["..%2F..%2Fetc", "..%2F..%2Fetc%2Fpasswd", "..", "%2E%2E", ".", "%2e", "...",
               "%00", "j1%00", pre + "%00", "%00" + pre, "%ff", "%ff%fe", "%c3", "j%C3%A9", "%F0%9F%92%A5",
               "%E2%80%AE1j", "j%EF%BC%91", "%", "%zz", "%2", "j1%0d%0aX-Injected:%201", "%0a", "%20",
               "j" + "1" * 5000, "a" * 20000, "j" + "z" * 13, "j" + "z" * 14, "j-1", "J1", "j1.json",
               "j1%3Fx=1", "j1%23x", "%2Fetc%2Fpasswd", "~root", "%5C..%5C..%5Cetc"]
        for jid in ids:
            for method, suffix in (("GET", ""), ("GET", "?wait=1"), ("GET", "/stdout"), ("GET", "/stderr?follow=true"),
                                   ("POST", "/cancel"), ("DELETE", "")):
                path = "/v1/jobs/" + jid + suffix
                t0 = time.monotonic()
                r = self.j.request(method, path, timeout=10)
                self.assertLess(time.monotonic() - t0, 3, path[:100])
                self.assertProblem(r, 404, msg="%s %s" % (method, path[:100]))
        # Traversal around the id and raw bytes in the request target.
        for target in (b"/v1/jobs/../../etc/passwd", b"/v1/../healthz", b"/v1/jobs/" + pre.encode() + b"/../" +
                       pre.encode(), b"/v1/jobs/\xc3\xa9", b"/v1/jobs/\xff\xfe", b"/v1/jobs/j1\x7f",
                       b"/v1/jobs/%2e%2e/%2e%2e/healthz", b"/v1/jobs//" + pre.encode(), b"//v1/jobs/" + pre.encode()):
            head = b"GET " + target + b" HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
            r, _, _ = self.j.raw(head, timeout=10)
            self.assertIsNotNone(r, target)
            if r.status == 400 and r.ctype != "application/problem+json":
                finding("request target %r is refused %d by libmicrohttpd (%s)" % (target, r.status, r.ctype))
                continue
            self.assertProblem(r, 404, msg=repr(target))
        for target in (b"/v1/jobs/j1 x", b"/v1/jobs/j1\x01", b"/v1/jobs/" + pre.encode() + b"\x00x"):
            head = b"GET " + target + b" HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
            r, _, _ = self.j.raw(head, timeout=10)
            if r is not None and r.status == 200:
                # libmicrohttpd hands jobd the target cut at the raw NUL: recorded, jobd cannot see it.
                finding("request target %r (a raw NUL byte) is answered %d with job %s: libmicrohttpd cuts "
                        "the target at the NUL" % (target, r.status, r.json and r.json.get("id")))
                continue
            self.assertTrue(r is None or r.status in (400, 404, 505), "%r: %r" % (target, r))
            if r is not None and r.ctype != "application/problem+json":
                finding("request target %r is answered %d by libmicrohttpd (%s, %r)"
                        % (target, r.status, r.ctype or "no Content-Type", r.body[:60]))

    def test_11b_encoded_slash_is_not_a_separator(self):
        """%2F inside an id is part of the id (RFC 3986 2.2), so it is an unknown id, not a route."""
        pre = self.before[1]
        for path in ("/v1/jobs/%s%%2Fstdout" % pre, "/v1/jobs/%s%%2fstderr" % pre):
            r = self.j.request("GET", path)
            self.assertProblem(r, 404, msg="GET %s answered %r" % (path, r))

    # ---- query strings

    def test_12_absurd_query_parameters(self):
        jid = self.before[0]
        bad = [
            ("/v1/jobs?state=bogus", "state"), ("/v1/jobs?state=", "state"), ("/v1/jobs?state=,,,", "state"),
            ("/v1/jobs?state=QUEUED", "state"), ("/v1/jobs?state=queued%00", "state"),
            ("/v1/jobs?state=" + ",".join(["queued"] * 2000), "state"),
            ("/v1/jobs?state=" + "q" * 10000, "state"),
            ("/v1/jobs?cursor=garbage", "cursor"), ("/v1/jobs?cursor=j0", "cursor"), ("/v1/jobs?cursor=", "cursor"),
            ("/v1/jobs?cursor=j" + "z" * 100, "cursor"), ("/v1/jobs?cursor=-1", "cursor"),
            ("/v1/jobs?cursor=%00", "cursor"), ("/v1/jobs?cursor=" + "A" * 10000, "cursor"),
            ("/v1/jobs?cursor=j1&since=0", "cursor"),
            ("/v1/jobs?wait=5", "wait"), ("/v1/jobs?label=" + "k" * 10000, "label"),
            ("/v1/jobs?label=" + "k" * 10000 + "=v", "label"), ("/v1/jobs?label==v", "label"),
            ("/v1/jobs/%s/stdout?follow=maybe" % jid, "follow"), ("/v1/jobs/%s/stdout?follow=%%00" % jid, "follow"),
        ]
        for path, field in bad:
            t0 = time.monotonic()
            r = self.j.request("GET", path, timeout=10)
            self.assertLess(time.monotonic() - t0, 3, path[:100])
            self.assertProblem(r, 400, field=field, msg=path[:120])
        # 10 KB query strings that are well-formed: answered, matching nothing.
        fine = ["/v1/jobs?name=" + "n" * 10000, "/v1/jobs?label=k=" + "v" * 10000,
                "/v1/jobs?batch=" + "b" * 10000, "/v1/jobs?name=" + "%ff" * 3000,
                "/v1/jobs?name=" + "x" * 10000 + "&" + "y" * 10000 + "=1",
                "/v1/jobs?" + "&".join("x%d=%d" % (i, i) for i in range(20))]
        for path in fine:
            self.assertLess(len(path), 24000)
            r = self.j.request("GET", path, timeout=10)
            self.assertEqual(r.status, 200, "%s: %r" % (path[:80], r))
            if "name=" in path or "label=" in path or "batch=" in path:
                self.assertEqual(r.json["jobs"], [], path[:80])
        # Repeated parameters: one of the values is used, consistently, or the request is refused.
        for path, ok_counts in (("/v1/jobs?limit=1&limit=1000", (1,)), ("/v1/jobs?limit=1000&limit=1", (None,)),
                                ("/v1/jobs?state=bogus&state=queued", ()), ("/v1/jobs?limit=1&limit=abc", (1,))):
            r = self.j.request("GET", path, timeout=10)
            if r.status == 400:
                self.assertProblem(r, 400, msg=path)
            else:
                self.assertEqual(r.status, 200, "%s: %r" % (path, r))
                if ok_counts and ok_counts[0] is not None:
                    self.assertLessEqual(len(r.json["jobs"]), ok_counts[0], path)
            finding("%s is answered %d%s" % (path, r.status, " with %d jobs" % len(r.json["jobs"])
                                            if r.status == 200 else " (%s)" % r.json.get("detail")))
        r = self.j.request("GET", "/v1/jobs/%s?wait=0&wait=-1" % jid)
        self.assertIn(r.status, (200, 400), r)
        # A long-poll with an absurd since and a small wait ends on time.
        t0 = time.monotonic()
        r = self.j.request("GET", "/v1/jobs?since=9223372036854775806&wait=1", timeout=10)
        self.assertEqual(r.status, 200, r)
        self.assertLess(time.monotonic() - t0, 3)

    def test_12b_many_query_parameters(self):
        """A 4-10 KB query string of many short parameters gets an answer: 200, or 414/431."""
        silent = []
        for what, query in (("500 parameters", "&".join("x%d=%d" % (i, i) for i in range(500))),
                            ("1,200 parameters", "&".join("x%d=%d" % (i, i) for i in range(1200))),
                            ("10,000 empty parameters", "&" * 10000),
                            ("1,000 repeated limit=1", "&".join(["limit=1"] * 1000))):
            head = ("GET /v1/jobs?%s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n" % query).encode()
            t0 = time.monotonic()
            r, _, err = self.j.raw(head, timeout=10)
            dt = time.monotonic() - t0
            if r is None:
                silent.append("%s (%d bytes): no answer, the connection was closed after %.1fs (%r)"
                              % (what, len(query), dt, err))
                continue
            self.assertIn(r.status, (200, 414, 431), "%s: %r" % (what, r))
            if r.status != 200 and r.ctype != "application/problem+json":
                finding("%s: libmicrohttpd answers %d itself (%s)" % (what, r.status, r.body[:60]))
        self.assertFalse(silent, "; ".join(silent))

    # ---- what libmicrohttpd answers on its own

    def test_13_long_url_414_and_huge_header_431(self):
        pre = self.before[0]
        cases = [
            ("very long URL (path)", 414, b"GET /v1/jobs/" + b"a" * 100000 + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"),
            ("very long URL (query)", 414,
             b"GET /v1/jobs?name=" + b"n" * 100000 + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"),
            ("huge header", 431, b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: " + b"a" * 100000 + b"\r\n\r\n"),
            ("huge Authorization header", 431, b"GET /v1/jobs/" + pre.encode() + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n"
             b"Authorization: Bearer " + b"t" * 100000 + b"\r\n\r\n"),
            ("2,000 headers", 431, b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n" +
             b"".join(b"X-H%d: %s\r\n" % (i, b"v" * 40) for i in range(2000)) + b"\r\n"),
        ]
        for what, status, head in cases:
            r, _, err = self.j.raw(head, timeout=10)
            self.assertIsNotNone(r, "%s: no answer (%r)" % (what, err))
            self.assertEqual(r.status, status, "%s: %r" % (what, r))
            self.assertEqual((r.headers.get("Connection") or "").lower(), "close", "%s: %r" % (what, r))
            if r.ctype != "application/problem+json":
                finding("%s: libmicrohttpd answers %d itself, Content-Type %s, body %r" % (
                    what, r.status, r.headers.get("Content-Type") or "absent", r.body[:150]))
        # Just under libmicrohttpd's limits, jobd answers itself.
        r = self.j.request("GET", "/v1/jobs/" + "a" * 16000, timeout=10)
        self.assertProblem(r, 404, msg="16 KB id")
        r = self.j.request("GET", "/healthz", headers={"X-Big": "a" * 16000}, timeout=10)
        self.assertEqual(r.status, 200, r)

    # ---- slow and many clients

    def test_14_slowloris(self):
        """A client that sends one byte a second is cut off by --connection-timeout (408 or a close)."""
        e = self.edge
        deadline = EDGE_CONN_TIMEOUT + 4  # seconds of trickling before giving up on a close
        idle = socket.create_connection(("127.0.0.1", e.port), timeout=10)
        half = socket.create_connection(("127.0.0.1", e.port), timeout=10)
        slow = socket.create_connection(("127.0.0.1", e.port), timeout=10)
        socks = {"idle": idle, "half": half, "slow": slow}
        ended = {}
        msg = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: " + b"a" * 1000
        try:
            half.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")
            for s in socks.values():
                s.setblocking(False)
            t0 = time.monotonic()
            i = 0
            while time.monotonic() - t0 < deadline and len(ended) < len(socks):
                if "slow" not in ended:
                    try:
                        slow.send(msg[i:i + 1])
                        i += 1
                    except OSError as ex:
                        ended["slow"] = (time.monotonic() - t0, "send failed: %r" % ex)
                step_end = time.monotonic() + 1.0
                while time.monotonic() < step_end:
                    for name, s in socks.items():
                        if name in ended:
                            continue
                        try:
                            data = s.recv(4096)
                            ended[name] = (time.monotonic() - t0, data)
                        except BlockingIOError:
                            pass
                        except OSError as ex:
                            ended[name] = (time.monotonic() - t0, "recv failed: %r" % ex)
                    time.sleep(0.05)
            for name in ("idle", "half"):
                self.assertIn(name, ended, "the %s connection was not closed by --connection-timeout %d"
                              % (name, EDGE_CONN_TIMEOUT))
                at, data = ended[name]
                self.assertLess(at, EDGE_CONN_TIMEOUT + 2.5, "%s closed after %.1fs" % (name, at))
                self.assertTrue(data == b"" or isinstance(data, str) or data.startswith(b"HTTP/1.1 408"),
                                "%s got %r" % (name, data[:200]))
                finding("an %s connection on --connection-timeout %d is ended after %.1fs with %s" % (
                    name, EDGE_CONN_TIMEOUT, at, "a close" if data == b"" else repr(data[:40])))
            self.assertIn("slow", ended, "a client sending one byte a second for %ds (%d bytes) is still "
                          "connected: --connection-timeout %d is an idle timeout that every byte resets"
                          % (deadline, i, EDGE_CONN_TIMEOUT))
            at, data = ended["slow"]
            self.assertTrue(data == b"" or isinstance(data, str) or data.startswith(b"HTTP/1.1 408"),
                            "the slow client got %r" % (data[:200],))
        finally:
            for s in socks.values():
                s.close()
        ok, dt, what = health_once(e.port)
        self.assertTrue(ok, what)

    def test_15_two_thousand_idle_connections(self):
        j = self.j
        n = 2000
        self.assertGreater(self.nofile, n + 200, "cannot raise RLIMIT_NOFILE for %d sockets" % n)
        base = wait_fds(j.pid, fd_count(j.pid))
        time.sleep(0.3)
        base = fd_count(j.pid)
        socks = []
        try:
            for i in range(n):
                s = socket.create_connection(("127.0.0.1", j.port), timeout=10)
                if i % 2:
                    s.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")  # never finished
                socks.append(s)
            # jobd has accepted them all (they are not waiting in the backlog) ...
            end = time.monotonic() + 10
            while fd_count(j.pid) < base + n - 10 and time.monotonic() < end:
                time.sleep(0.1)
            held = fd_count(j.pid)
            self.assertGreaterEqual(held, base + n - 10, "jobd holds %d descriptors, %d before: it did not "
                                    "accept %d connections" % (held, base, n))
            # ... and still answers at once.
            for _ in range(5):
                ok, dt, what = health_once(j.port)
                self.assertTrue(ok, "with %d idle connections: %s" % (n, what))
            t0 = time.monotonic()
            job = j.submit({"command": ["echo", "busy"]}, wait=10)
            self.assertEqual(job["state"], "succeeded")
            self.assertLess(time.monotonic() - t0, 5)
            self.assertEqual(j.output(job["id"]), b"busy\n")
            self.assertEqual(j.request("GET", "/v1/jobs?limit=1").status, 200)
            # The half-sent requests were not answered.
            for s in socks[1:40:2]:
                s.setblocking(False)
                try:
                    data = s.recv(100)
                except BlockingIOError:
                    data = None
                self.assertIsNone(data, "a half-sent request got %r" % (data,))
        finally:
            for s in socks:
                s.close()
        after = wait_fds(j.pid, base + FD_MARGIN, timeout=15)
        self.assertLessEqual(after, base + FD_MARGIN, "jobd holds %d descriptors after %d connections were "
                             "closed (%d before)" % (after, n, base))
        finding("jobd's descriptors: %d before, %d with %d idle connections, %d after (RLIMIT_NOFILE %d)"
                % (base, held, n, after, self.nofile))

    def test_16_disconnect_mid_stream_and_long_poll(self):
        j = self.j
        time.sleep(0.3)
        base = fd_count(j.pid)
        job = j.submit({"shell": "i=0; while [ $i -lt 40 ]; do echo line $i; i=$((i+1)); sleep 0.1; done",
                        "name": "talker"})
        jid = job["id"]
        j.wait_output(jid, b"line 1\n", timeout=10)
        seq = j.list(limit=1)["seq"]

        def rst(s):
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            s.close()

        def open_req(target, body=None):
            s = socket.create_connection(("127.0.0.1", j.port), timeout=10)
            if body is None:
                s.sendall(b"GET " + target.encode() + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            else:
                s.sendall(b"POST " + target.encode() + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                          b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
            return s

        # Followers that read a little and hang up (half of them with a reset).
        for i in range(20):
            s = open_req("/v1/jobs/%s/stdout?follow=true" % jid)
            got = s.recv(4096)
            self.assertTrue(got.startswith(b"HTTP/1.1 200"), got[:200])
            (rst if i % 2 else socket.socket.close)(s)
        # Long polls (a job, a blocking listing, a submission that waits) that hang up.
        posted = []
        for i in range(30):
            kind = i % 3
            if kind == 0:
                s = open_req("/v1/jobs/%s?wait=30" % jid)
            elif kind == 1:
                s = open_req("/v1/jobs?since=%d&wait=30" % (seq + 1000))
            else:
                name = "hangup-%d" % i
                posted.append(name)
                s = open_req("/v1/jobs?wait=30", json.dumps({"command": ["sleep", "1"], "name": name}).encode())
            time.sleep(0.05)
            (rst if i % 2 else socket.socket.close)(s)
        ok, dt, what = health_once(j.port)
        self.assertTrue(ok, what)
        # The job goes on undisturbed, and its whole output is there.
        done = j.wait_job(jid, timeout=20)
        self.assertEqual(done["state"], "succeeded", done)
        want = "".join("line %d\n" % i for i in range(40)).encode()
        self.assertEqual(j.output(jid), want)
        conn, resp = j.stream("GET", "/v1/jobs/%s/stdout?follow=true" % jid, timeout=10)
        try:
            self.assertEqual(resp.read(), want)
        finally:
            conn.close()
        # The submissions whose clients hung up were accepted and ran.
        for name in posted:
            jobs = j.list(name=name)["jobs"]
            self.assertLessEqual(len(jobs), 1, name)
            if jobs:
                self.assertEqual(j.wait_job(jobs[0]["id"], timeout=20)["state"], "succeeded")
        # Nothing is left open: the blocking listings were woken by the changes above.
        after = wait_fds(j.pid, base + FD_MARGIN, timeout=15)
        self.assertLessEqual(after, base + FD_MARGIN, "jobd holds %d descriptors, %d before the hang-ups"
                             % (after, base))
        # Long polls on a job that does not end: their descriptors come back at the latest
        # when the job ends (a parked connection is not watched for a hang-up).
        sleeper = j.submit({"command": ["sleep", "60"], "name": "sleeper", "kill_grace": 1})
        j.wait_state(sleeper["id"], "running")
        time.sleep(0.3)
        base2 = fd_count(j.pid)
        for i in range(40):
            s = open_req("/v1/jobs/%s?wait=300" % sleeper["id"])
            time.sleep(0.02)
            (rst if i % 2 else socket.socket.close)(s)
        time.sleep(1.5)
        parked = fd_count(j.pid)
        if parked > base2 + FD_MARGIN:
            finding("40 long polls (wait=300) whose clients hung up still hold %d descriptors 1.5 s later "
                    "(%d before): a parked connection keeps its socket until its wait ends" % (parked - base2, base2))
        r = j.request("POST", "/v1/jobs/%s/cancel" % sleeper["id"])
        self.assertEqual(r.status, 202, r)
        self.assertEqual(j.wait_job(sleeper["id"], timeout=15)["state"], "cancelled")
        after = wait_fds(j.pid, base2 + FD_MARGIN, timeout=15)
        self.assertLessEqual(after, base2 + FD_MARGIN, "after the cancel jobd still holds %d descriptors (%d before)"
                             % (after, base2))

    # ---- last: nothing accepted before was touched

    def test_99_jobs_accepted_before_are_untouched(self):
        j = self.j
        for jid in self.before:
            self.assertEqual(j.job(jid), self.before_docs[jid], jid)
            self.assertEqual((j.output(jid, "stdout"), j.output(jid, "stderr")), self.before_out[jid], jid)
        self.assertTrue(jobdtest.alive(self.before_pid, self.before_pid_start), "the running job's process is gone")
        by_name = {d["name"]: d["id"] for d in j.list_all() if d["name"] and d["name"].startswith("pre-")}
        self.assertEqual(sorted(by_name.values(), key=jobdtest.idnum), self.before)
        self.assertEqual(self.before_out[self.before[0]], (b"out\x00x\n", b"err\n"))
        self.assertEqual(self.before_out[self.before[1]][0], "a\u0000b\nc\u00e9\ndone\n".encode())
        with self.poller._lock:
            polls, slowest, failures = self.poller.polls, self.poller.slowest, list(self.poller.failures)
            slowest_at = self.poller.slowest_at
        self.assertGreater(polls, 20, "the /healthz poller hardly ran")
        self.assertFalse(failures, failures[:10])
        finding("/healthz: %d polls during the file, slowest %.3fs (%s)" % (polls, slowest, slowest_at))


if __name__ == "__main__":
    jobdtest.main()
