#!/usr/bin/env python3
"""exercise.py: drive a real jobd through every endpoint, record each HTTP
exchange, and check the recording against openapi/openapi.yaml.

    JOBD_BIN=build/jobd python3 tests/contract/exercise.py [--out FILE] [--no-validate]

It starts four jobd instances on ephemeral loopback ports, each with its own
temporary data directory:

  open     no token: every endpoint, success and error cases (no cluster
           token: POST /v1/nodes is 403, remote jobs are 400);
  secured  JOBD_TOKEN set: 401 on every /v1 path, 200 with the token;
  cluster  JOBD_TOKEN and JOBD_CLUSTER_TOKEN set, --node-timeout 60: a
           coordinator. The /v1/nodes routes, with the open jobd registered
           as its node (any jobd can serve as one), remote jobs that wait
           (`waiting`), run there (`node`), and keep a node from being deleted;
  small    --max-queued 1 --max-procs 1 --max-body 4096: 429, 413, then
           SIGTERM and 503 while it shuts down.

Each exchange is one JSON line of the format that validate.mjs documents,
written to --out (default: a temporary file, kept and named when something
fails). Every request states the status it expects, so a wrong status is
reported even when the spec documents it. Then it runs
`node validate.mjs FILE` (the node binary from $NODE, else PATH).

Python 3 standard library only. Everything it starts is stopped on the way out.
"""

import argparse
import atexit
import http.client
import json
import os
import re
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
LISTEN_RE = re.compile(r"^jobd: listening on http://([^:\s]+):(\d+)\s*$")
TOKEN = "contract-s3cret"
CLUSTER_TOKEN = "contract-cluster-s3cret"
FINAL = {"succeeded", "failed", "cancelled", "timed_out"}

_procs = []
_tmpdirs = []


def _cleanup():
    for p in _procs:
        if p.poll() is None:
            p.kill()
            try:
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
    for d in _tmpdirs:
        shutil.rmtree(d, ignore_errors=True)


atexit.register(_cleanup)


class Jobd:
    """One jobd process on 127.0.0.1:0 with its own data directory."""

    def __init__(self, binary, name, args=(), env=None):
        self.name = name
        self.data = tempfile.mkdtemp(prefix="jobd-contract-%s-" % name)
        _tmpdirs.append(self.data)
        penv = dict(os.environ)
        penv.pop("JOBD_TOKEN", None)
        penv.pop("JOBD_CLUSTER_TOKEN", None)
        penv.update(env or {})
        cmd = [binary, "--listen", "127.0.0.1:0", "--data-dir", self.data] + list(args)
        self.proc = subprocess.Popen(
            cmd,
            stdout=subprocess.PIPE,
            stderr=open(os.path.join(self.data, "stderr.log"), "wb"),
            env=penv,
            start_new_session=True,
        )
        _procs.append(self.proc)
        self.port = self._read_port(10.0)

    def _read_port(self, timeout):
        deadline = time.monotonic() + timeout
        buf = b""
        fd = self.proc.stdout.fileno()
        while time.monotonic() < deadline:
            r, _, _ = select.select([fd], [], [], 0.2)
            if r:
                chunk = os.read(fd, 4096)
                if not chunk:
                    break
                buf += chunk
                for line in buf.decode("utf-8", "replace").splitlines():
                    m = LISTEN_RE.match(line)
                    if m:
                        return int(m.group(2))
            elif self.proc.poll() is not None:
                break
        raise SystemExit(
            "exercise.py: jobd (%s) did not print its listening line; stdout so far: %r" % (self.name, buf)
        )

    def stop(self, sig=signal.SIGTERM, timeout=15.0):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        return self.proc.returncode


class Recorder:
    def __init__(self, path):
        self.path = path
        self.f = open(path, "w", encoding="utf-8")
        self.count = 0
        self.failures = []

    def close(self):
        self.f.close()

    def write(self, method, path, status, headers, body, note):
        ctype = None
        hdrs = {}
        for k, v in headers:
            hdrs[k] = hdrs[k] + ", " + v if k in hdrs else v
            if k.lower() == "content-type":
                ctype = v
        if not body:
            rec_body = None
        elif ctype and "json" in ctype.lower():
            try:
                rec_body = json.loads(body)
            except ValueError:
                rec_body = body.decode("utf-8", "replace")  # validate.mjs reports it
        else:
            rec_body = body.decode("utf-8", "replace")
        rec = {
            "method": method,
            "path": path,
            "status": status,
            "content_type": ctype,
            "headers": hdrs,
            "body": rec_body,
            "note": note,
        }
        self.f.write(json.dumps(rec, ensure_ascii=False) + "\n")
        self.f.flush()
        self.count += 1
        return rec


class Client:
    """HTTP to one jobd; every exchange goes into the recording."""

    def __init__(self, jobd, rec, token=None):
        self.jobd = jobd
        self.rec = rec
        self.token = token

    def raw(self, method, path, body=None, headers=None, expect=None, note="", chunked=False, timeout=30):
        hdrs = dict(headers or {})
        if self.token and "Authorization" not in hdrs:
            hdrs["Authorization"] = "Bearer " + self.token
        if isinstance(body, (dict, list)):
            body = json.dumps(body).encode()
            hdrs.setdefault("Content-Type", "application/json")
        elif isinstance(body, str):
            body = body.encode()
        conn = http.client.HTTPConnection("127.0.0.1", self.jobd.port, timeout=timeout)
        try:
            if chunked:
                conn.request(method, path, body=iter([body]), headers=hdrs, encode_chunked=True)
            else:
                conn.request(method, path, body=body, headers=hdrs)
            resp = conn.getresponse()
            data = resp.read()
            status, rheaders = resp.status, resp.getheaders()
        finally:
            conn.close()
        label = "%s: %s" % (self.jobd.name, note) if note else self.jobd.name
        rec = self.rec.write(method, path, status, rheaders, data, label)
        if expect is not None and status not in (expect if isinstance(expect, (tuple, list)) else (expect,)):
            self.rec.failures.append(
                "%s %s [%s]: expected %s, got %s %s" % (method, path, label, expect, status, data[:300])
            )
        rec["raw"] = data
        return rec

    def job(self, rec):
        b = rec.get("body")
        return b if isinstance(b, dict) else {}

    def wait_final(self, job_id, timeout=20.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            r = self.raw("GET", "/v1/jobs/%s?wait=5" % job_id, expect=200, note="wait for the end")
            if self.job(r).get("state") in FINAL:
                return self.job(r)
        raise SystemExit("exercise.py: job %s did not end within %ss" % (job_id, timeout))

    def wait_state(self, job_id, state, timeout=10.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            c = http.client.HTTPConnection("127.0.0.1", self.jobd.port, timeout=5)
            h = {"Authorization": "Bearer " + self.token} if self.token else {}
            c.request("GET", "/v1/jobs/" + job_id, headers=h)
            doc = json.loads(c.getresponse().read())
            c.close()
            if doc.get("state") == state:
                return doc
            time.sleep(0.02)
        raise SystemExit("exercise.py: job %s never reached %s" % (job_id, state))


def exercise_open(c):
    """Every endpoint of a jobd without a token."""
    # ---- system ----
    c.raw("GET", "/healthz", expect=200)
    c.raw("GET", "/metrics", expect=200)
    c.raw("POST", "/metrics", expect=405, note="wrong method")
    c.raw("GET", "/v1/tasks", expect=200)
    c.raw("DELETE", "/v1/tasks", expect=405, note="wrong method")
    c.raw("POST", "/healthz", expect=405, note="wrong method")
    c.raw("HEAD", "/healthz", expect=405, note="HEAD is not served")
    r = c.raw("GET", "/v1/openapi.yaml", expect=200)
    with open(os.path.join(REPO, "openapi", "openapi.yaml"), "rb") as f:
        if r["raw"] != f.read():
            c.rec.failures.append("GET /v1/openapi.yaml: the served contract differs from openapi/openapi.yaml")
    c.raw("DELETE", "/v1/openapi.yaml", expect=405, note="wrong method")
    for p in ("/", "/nope", "/v1", "/v1/nope", "/v1/jobs/", "/v1/jobs//x", "/v1/jobs/j1/stdout/x", "/healthz/"):
        c.raw("GET", p, expect=404, note="unknown path")

    # ---- POST /v1/jobs ----
    r = c.raw("POST", "/v1/jobs", {"command": ["sh", "-c", "echo hi; echo oops >&2; exit 3"]}, expect=201)
    j1 = c.job(r)["id"]
    full = {
        "shell": "tr a-z A-Z",
        "stdin": "hello\n",
        "env": {"MODE": "test"},
        "cwd": "/tmp",
        "timeout": 10,
        "kill_signal": "SIGTERM",
        "kill_grace": 2,
        "retries": 3,
        "retry_delay": 1,
        "retry_exit_codes": [75],
        "priority": 10,
        "name": "upper",
        "labels": {"team": "data"},
        "limits": {"cpu_seconds": 60, "memory_bytes": 1073741824, "open_files": 256, "output_bytes": 1048576},
    }
    r = c.raw("POST", "/v1/jobs?wait=10", full, expect=201, note="every field, wait for the end")
    j_full = c.job(r)["id"]
    c.raw("POST", "/v1/jobs?wait=10", {"command": ["sh", "-c", "kill -9 $$"]}, expect=201, note="killed by a signal")
    c.raw("POST", "/v1/jobs?wait=10", {"command": ["nosuchcmd-contract"]}, expect=201, note="cannot start")
    c.raw(
        "POST",
        "/v1/jobs?wait=10",
        {"shell": "sleep 5", "timeout": 0.2, "kill_signal": "INT", "kill_grace": 0.5},
        expect=201,
        note="timed out",
    )
    c.raw(
        "POST",
        "/v1/jobs?wait=10",
        {"command": ["sh", "-c", "head -c 5000 /dev/zero | tr '\\0' x"], "limits": {"output_bytes": 1024}},
        expect=201,
        note="output cap",
    )
    c.raw("POST", "/v1/jobs?wait=10", {"shell": "exit 7", "kill_signal": 34}, expect=201, note="numeric kill_signal")
    c.raw("POST", "/v1/jobs?wait=10", {"task": "echo", "args": {"a": [1, "x", None]}}, expect=201, note="task")
    c.raw("POST", "/v1/jobs?wait=10", {"task": "sleep", "args": {"seconds": 0.01}, "executor": "process"},
          expect=201, note="task in a child process")
    c.raw("POST", "/v1/jobs?wait=10", {"task": "http", "args": {"url": "http://127.0.0.1:%d/healthz" % c.jobd.port}},
          expect=201, note="http task")
    c.raw("POST", "/v1/jobs?wait=10", {"task": "sleep", "args": {"seconds": 5}, "timeout": 0.1, "kill_grace": 1},
          expect=201, note="task timed out")
    c.raw(
        "POST",
        "/v1/jobs",
        {"command": ["true"], "shell": None, "task": None, "env": None, "name": None},
        expect=201,
        note="null fields are absent",
    )
    c.raw(
        "POST",
        "/v1/jobs",
        '{"command":["true"]}',
        headers={"Content-Type": "application/x-www-form-urlencoded"},
        expect=201,
        note="curl -d content type",
    )
    c.raw("POST", "/v1/jobs", '{"command":["true"]}', headers={"Content-Type": "application/merge-patch+json"},
          expect=201, note="+json content type")

    # Idempotency-Key
    key = {"Idempotency-Key": "contract-key-1"}
    r = c.raw("POST", "/v1/jobs", {"command": ["echo", "idem"]}, headers=key, expect=201, note="first with a key")
    r2 = c.raw("POST", "/v1/jobs", {"command": ["echo", "idem"]}, headers=key, expect=200, note="same key, same spec")
    if c.job(r).get("id") != c.job(r2).get("id"):
        c.rec.failures.append("Idempotency-Key: the replay answered another job")
    c.raw("POST", "/v1/jobs", {"command": ["echo", "other"]}, headers=key, expect=409, note="same key, other spec")
    c.raw("POST", "/v1/jobs", {"command": ["true"]}, headers={"Idempotency-Key": "k" * 256}, expect=400,
          note="key too long")

    # 400s
    bad = [
        ('{"command": ["ls"', "malformed JSON"),
        ("", "empty body"),
        ("[1, 2]", "not an object"),
        ({"comand": ["ls"]}, "unknown field"),
        ({"command": ["ls", 1]}, "command[1] not a string"),
        ({"command": []}, "empty command"),
        ({"command": [""]}, "empty command[0]"),
        ({"command": ["ls"], "shell": "ls"}, "command and shell"),
        ({}, "none of command, shell, task"),
        ({"task": "nosuchtask"}, "unknown task"),
        ({"task": "sleep", "args": {"seconds": "x"}}, "args the task refuses"),
        ({"task": "bad name!"}, "bad task name"),
        ({"command": ["ls"], "args": {}}, "args without task"),
        ({"command": ["ls"], "executor": "thread"}, "thread runs tasks only"),
        ({"command": ["ls"], "executor": "remote"}, "remote not available"),
        ({"command": ["ls"], "executor": "gpu"}, "unknown executor"),
        ({"command": ["ls"], "env": {"A=B": "x"}}, "env name with ="),
        ({"command": ["ls"], "env": {"A": 1}}, "env value not a string"),
        ({"command": ["ls"], "cwd": "tmp"}, "relative cwd"),
        ({"command": ["ls"], "timeout": 0}, "timeout 0"),
        ({"command": ["ls"], "kill_signal": "NOPE"}, "unknown signal"),
        ({"command": ["ls"], "kill_grace": 3601}, "kill_grace too long"),
        ({"command": ["ls"], "retries": 101}, "too many retries"),
        ({"command": ["ls"], "retries": 1.5}, "retries not an integer"),
        ({"command": ["ls"], "retry_exit_codes": []}, "empty retry_exit_codes"),
        ({"command": ["ls"], "retry_exit_codes": [0]}, "exit code 0"),
        ({"command": ["ls"], "priority": 101}, "priority too high"),
        ({"command": ["ls"], "name": ""}, "empty name"),
        ({"command": ["ls"], "labels": {"bad key": "v"}}, "bad label key"),
        ({"command": ["ls"], "node_selector": {"k": 1}}, "node_selector value not a string"),
        ({"command": ["ls"], "limits": {"open_files": 1}}, "open_files too low"),
        ({"command": ["ls"], "limits": {"disk": 1}}, "unknown limit"),
    ]
    for body, note in bad:
        c.raw("POST", "/v1/jobs", body, expect=400, note=note)
    c.raw("POST", "/v1/jobs?wait=301", {"command": ["true"]}, expect=400, note="wait too long")
    c.raw("POST", "/v1/jobs?wait=soon", {"command": ["true"]}, expect=400, note="wait not a number")
    c.raw("POST", "/v1/jobs", '{"command":["true"]}', headers={"Content-Type": "text/plain"}, expect=415,
          note="not JSON")
    for m in ("PUT", "PATCH", "DELETE"):
        c.raw(m, "/v1/jobs", expect=405, note="wrong method")

    # ---- GET /v1/jobs/{id} ----
    c.wait_final(j1)
    c.raw("GET", "/v1/jobs/" + j1, expect=200)
    c.raw("GET", "/v1/jobs/%s?wait=0.1" % j1, expect=200, note="wait on an ended job")
    c.raw("GET", "/v1/jobs/%s?wait=-1" % j1, expect=400, note="negative wait")
    c.raw("GET", "/v1/jobs/%s?wait=x" % j1, expect=400, note="wait not a number")
    for bad_id in ("jzzzzzz", "nope", "j0", "J1", "j1%00x"):
        c.raw("GET", "/v1/jobs/" + bad_id, expect=404, note="unknown or malformed id")
    c.raw("PUT", "/v1/jobs/" + j1, expect=405, note="wrong method")
    c.raw("POST", "/v1/jobs/" + j1, expect=405, note="wrong method")

    # ---- cancel ----
    r = c.raw("POST", "/v1/jobs", {"command": ["sleep", "30"], "kill_grace": 1}, expect=201, note="to cancel")
    jrun = c.job(r)["id"]
    c.wait_state(jrun, "running")
    c.raw("GET", "/v1/jobs/%s?wait=0.3" % jrun, expect=200, note="wait passes while running")
    c.raw("DELETE", "/v1/jobs/" + jrun, expect=409, note="delete while running")
    c.raw("POST", "/v1/jobs/%s/cancel" % jrun, expect=202, note="cancel a running job")
    c.wait_final(jrun)
    c.raw("POST", "/v1/jobs/%s/cancel" % jrun, expect=409, note="cancel an ended job")
    c.raw("POST", "/v1/jobs/jzzzzzz/cancel", expect=404, note="cancel an unknown job")
    c.raw("POST", "/v1/jobs/nope/cancel", expect=404, note="cancel a malformed id")
    c.raw("GET", "/v1/jobs/%s/cancel" % jrun, expect=405, note="wrong method")

    # ---- stdout / stderr ----
    for stream in ("stdout", "stderr"):
        base = "/v1/jobs/%s/%s" % (j1, stream)
        c.raw("GET", base, expect=200)
        c.raw("GET", base + "?offset=1", expect=200, note="from an offset")
        c.raw("GET", base + "?offset=100000", expect=200, note="past the end")
        c.raw("GET", base + "?follow=true", expect=200, note="follow an ended job")
        c.raw("GET", base + "?follow=1&offset=2", expect=200, note="follow from an offset")
        c.raw("GET", base + "?follow=false", expect=200, note="follow off")
        c.raw("GET", base + "?offset=-1", expect=400, note="negative offset")
        c.raw("GET", base + "?offset=x", expect=400, note="offset not a number")
        c.raw("GET", base + "?follow=maybe", expect=400, note="follow not a boolean")
        c.raw("GET", "/v1/jobs/jzzzzzz/" + stream, expect=404, note="unknown job")
        c.raw("POST", base, expect=405, note="wrong method")
    c.raw("GET", "/v1/jobs/%s/stdout" % j_full, expect=200, note="upper-cased stdin")
    r = c.raw("POST", "/v1/jobs", {"shell": "echo a; sleep 0.3; echo b"}, expect=201, note="to follow live")
    c.raw("GET", "/v1/jobs/%s/stdout?follow=true" % c.job(r)["id"], expect=200, note="follow a live job")

    # ---- batches ----
    r = c.raw(
        "POST",
        "/v1/batches?wait=10",
        {"name": "pool", "concurrency": 2, "jobs": [{"command": ["true"]}, {"shell": "exit 2"}, {"task": "echo"}]},
        expect=201,
        note="wait for a batch",
    )
    b1 = c.job(r).get("id", "b1")
    r = c.raw("POST", "/v1/batches", {"jobs": [{"command": ["sleep", "30"]}, {"command": ["sleep", "30"]}],
                                      "concurrency": 1}, expect=201)
    b2 = c.job(r).get("id", "b2")
    c.raw("GET", "/v1/batches/" + b1, expect=200)
    c.raw("GET", "/v1/batches/%s?wait=0.2" % b2, expect=200, note="wait passes")
    c.raw("GET", "/v1/jobs?batch=" + b1, expect=200, note="jobs of a batch")
    c.raw("POST", "/v1/batches/%s/cancel" % b2, expect=202, note="cancel a running batch")
    c.raw("GET", "/v1/batches/%s?wait=10" % b2, expect=200, note="wait for the cancel")
    c.raw("POST", "/v1/batches/%s/cancel" % b1, expect=202, note="cancel an ended batch")
    for body, note in (
        ('{"jobs": [', "malformed JSON"),
        ("", "empty body"),
        ("[]", "not an object"),
        ({"jobs": []}, "no jobs"),
        ({"jobs": [{"command": ["true"]}], "extra": 1}, "unknown field"),
        ({"jobs": [{"command": ["true"]}, {"command": [1]}]}, "a bad spec"),
        ({"jobs": [{"task": "nosuchtask"}]}, "an unknown task"),
        ({"jobs": [{"command": ["true"]}], "concurrency": 0}, "concurrency 0"),
        ({"jobs": [{"command": ["true"]}], "name": ""}, "empty name"),
    ):
        c.raw("POST", "/v1/batches", body, expect=400, note=note)
    c.raw("POST", "/v1/batches?wait=301", {"jobs": [{"command": ["true"]}]}, expect=400, note="wait too long")
    c.raw("POST", "/v1/batches", "{}", headers={"Content-Type": "text/csv"}, expect=415, note="not JSON")
    c.raw("GET", "/v1/batches/%s?wait=x" % b1, expect=400, note="wait not a number")
    for bad_id in ("bzzzzzz", "j1", "nope"):
        c.raw("GET", "/v1/batches/" + bad_id, expect=404, note="unknown or malformed id")
        c.raw("POST", "/v1/batches/%s/cancel" % bad_id, expect=404, note="unknown or malformed id")
    c.raw("GET", "/v1/batches", expect=405, note="no listing of batches")
    c.raw("DELETE", "/v1/batches/" + b1, expect=405, note="wrong method")
    c.raw("GET", "/v1/batches/%s/cancel" % b1, expect=405, note="wrong method")

    # ---- GET /v1/jobs ----
    c.raw("GET", "/v1/jobs", expect=200)
    r = c.raw("GET", "/v1/jobs?limit=2", expect=200, note="first page")
    cur = c.job(r).get("next_cursor")
    if not cur:
        c.rec.failures.append("GET /v1/jobs?limit=2: no next_cursor with more than 2 jobs")
    else:
        c.raw("GET", "/v1/jobs?limit=2&cursor=" + cur, expect=200, note="next page")
    c.raw("GET", "/v1/jobs?state=failed,timed_out", expect=200, note="state filter")
    c.raw("GET", "/v1/jobs?state=queued", expect=200, note="state filter")
    c.raw("GET", "/v1/jobs?name=upper", expect=200, note="name filter")
    c.raw("GET", "/v1/jobs?label=team=data", expect=200, note="label filter")
    c.raw("GET", "/v1/jobs?batch=b1", expect=200, note="batch filter")
    c.raw("GET", "/v1/jobs?limit=1000", expect=200, note="largest page")
    r = c.raw("GET", "/v1/jobs?since=0", expect=200, note="every change")
    seq = c.job(r).get("seq", 0)
    c.raw("GET", "/v1/jobs?since=%d&wait=0.2" % seq, expect=200, note="blocking query, no change comes")
    c.raw("GET", "/v1/jobs?since=%d&limit=3&state=failed" % max(seq - 5, 0), expect=200, note="since + filters")
    for q, note in (
        ("state=bogus", "unknown state"),
        ("state=", "empty state"),
        ("label=nokey", "label without ="),
        ("label==v", "label without a key"),
        ("limit=0", "limit too small"),
        ("limit=1001", "limit too large"),
        ("limit=ten", "limit not a number"),
        ("cursor=garbage", "bad cursor"),
        ("since=-1", "negative since"),
        ("since=1&cursor=j1", "since with cursor"),
        ("wait=1", "wait without since"),
        ("since=0&wait=301", "wait too long"),
    ):
        c.raw("GET", "/v1/jobs?" + q, expect=400, note=note)

    # ---- DELETE ----
    c.raw("DELETE", "/v1/jobs/" + j1, expect=204)
    c.raw("DELETE", "/v1/jobs/" + j1, expect=404, note="deleted twice")
    c.raw("GET", "/v1/jobs/" + j1, expect=404, note="get a deleted job")
    c.raw("GET", "/v1/jobs/%s/stdout" % j1, expect=404, note="output of a deleted job")
    c.raw("DELETE", "/v1/jobs/nope", expect=404, note="malformed id")

    # ---- nodes, on a jobd without a cluster token ----
    c.raw("GET", "/v1/nodes", expect=200, note="no nodes")
    node = {"id": "n-contract", "url": "http://127.0.0.1:1", "capacity": 1}
    c.raw("POST", "/v1/nodes", node, expect=403, note="no cluster token: takes no nodes")
    c.raw("POST", "/v1/nodes", node, headers={"Authorization": "Bearer " + CLUSTER_TOKEN}, expect=403,
          note="no cluster token, whatever is sent")
    for bad_id in ("n-contract", "-bad", "x" * 65):
        c.raw("GET", "/v1/nodes/" + bad_id, expect=404, note="unknown or malformed node")
        c.raw("POST", "/v1/nodes/%s/drain" % bad_id, expect=404, note="drain an unknown node")
        c.raw("DELETE", "/v1/nodes/" + bad_id, expect=404, note="delete an unknown node")
    for m, path in (("PUT", "/v1/nodes"), ("DELETE", "/v1/nodes"), ("POST", "/v1/nodes/n1"),
                    ("PUT", "/v1/nodes/n1"), ("GET", "/v1/nodes/n1/drain"), ("DELETE", "/v1/nodes/n1/drain")):
        c.raw(m, path, expect=405, note="wrong method")


def exercise_cluster(c, cc, anon, node_port):
    """A coordinator (users' token c, cluster token cc) with the open jobd as its node."""
    n1 = "n-contract-1"
    url = "http://127.0.0.1:%d" % node_port
    reg = {"id": n1, "url": url, "labels": {"pool": "contract"}, "capacity": 1, "version": "0.1.0"}
    r = cc.raw("POST", "/v1/nodes", reg, expect=201, note="a node joins")
    b = c.job(r)
    if b.get("heartbeat_interval", 0) <= 0 or b.get("node_timeout") != 60:
        c.rec.failures.append("POST /v1/nodes: node_timeout %r (want 60), heartbeat_interval %r"
                              % (b.get("node_timeout"), b.get("heartbeat_interval")))
    cc.raw("POST", "/v1/nodes", reg, expect=200, note="a heartbeat")
    cc.raw("POST", "/v1/nodes", {"id": "n-contract-2", "url": "http://127.0.0.1:1", "capacity": 1}, expect=201,
           note="only id, url and capacity")
    anon.raw("POST", "/v1/nodes", reg, expect=401, note="no token")
    c.raw("POST", "/v1/nodes", reg, expect=401, note="the users' token is not the cluster token")
    for body, note in (
        ('{"id": ', "malformed JSON"),
        ("[]", "not an object"),
        ({"url": url}, "no id"),
        ({"id": n1}, "no url"),
        ({"id": n1, "url": url}, "no capacity"),
        ({"id": n1, "url": url + "/", "capacity": 1}, "url with a trailing slash"),
        ({"id": n1, "url": url, "capacity": 1, "version": "v" * 65}, "version too long"),
        ({"id": "-n", "url": url, "capacity": 1}, "id starts with a dash"),
        ({"id": "n" * 65, "url": url, "capacity": 1}, "id too long"),
        ({"id": "n x", "url": url, "capacity": 1}, "id with a space"),
        ({"id": n1, "url": "ftp://h:1", "capacity": 1}, "url not http"),
        ({"id": n1, "url": "http://h/" + "x" * 1024, "capacity": 1}, "url too long"),
        ({"id": n1, "url": url, "capacity": 0}, "capacity 0"),
        ({"id": n1, "url": url, "capacity": 100001}, "capacity too large"),
        ({"id": n1, "url": url, "capacity": 1, "labels": {"bad key": "v"}}, "bad label key"),
        ({"id": n1, "url": url, "capacity": 1, "color": "red"}, "unknown field"),
    ):
        cc.raw("POST", "/v1/nodes", body, expect=400, note=note)
    c.raw("GET", "/v1/nodes", expect=200, note="two nodes")
    c.raw("GET", "/v1/nodes/" + n1, expect=200)
    c.raw("GET", "/v1/nodes/n-nope", expect=404, note="unknown node")
    anon.raw("GET", "/v1/nodes", expect=401, note="no token")
    cc.raw("GET", "/v1/nodes", expect=401, note="the cluster token is not the users' token")

    # A remote job that no node matches waits, and says why.
    r = c.raw("POST", "/v1/jobs", {"command": ["true"], "executor": "remote", "node_selector": {"gpu": "yes"}},
              expect=201, note="remote, no node matches")
    jw = c.job(r).get("id", "j1")
    deadline = time.monotonic() + 5
    while True:
        r = c.raw("GET", "/v1/jobs/" + jw, expect=200, note="a waiting remote job")
        if c.job(r).get("waiting") or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    if c.job(r).get("state") != "queued" or not c.job(r).get("waiting"):
        c.rec.failures.append("remote job with an unmatched node_selector: state %r, waiting %r"
                              % (c.job(r).get("state"), c.job(r).get("waiting")))
    c.raw("POST", "/v1/jobs/%s/cancel" % jw, expect=202, note="cancel a waiting remote job")

    # A remote job that runs on the node, to its end.
    r = c.raw("POST", "/v1/jobs?wait=20", {"command": ["echo", "remote"], "executor": "remote",
                                            "node_selector": {"pool": "contract"}},
              expect=201, note="remote, to its end")
    if c.job(r).get("node") != n1 or c.job(r).get("state") != "succeeded":
        c.rec.failures.append("remote job: state %r on node %r, expected succeeded on %s"
                              % (c.job(r).get("state"), c.job(r).get("node"), n1))
    c.raw("GET", "/v1/jobs/%s/stdout" % c.job(r).get("id", "j1"), expect=200, note="output of a remote job")

    # A node that runs a job is not deleted; drained, it keeps it.
    r = c.raw("POST", "/v1/jobs", {"command": ["sleep", "30"], "executor": "remote", "kill_grace": 1,
                                    "node_selector": {"pool": "contract"}},
              expect=201, note="remote, to cancel")
    jr = c.job(r).get("id", "j1")
    c.wait_state(jr, "running", timeout=20)
    c.raw("DELETE", "/v1/nodes/" + n1, expect=409, note="delete a node that runs a job")
    c.raw("POST", "/v1/nodes/%s/drain" % n1, expect=202, note="drain a busy node")
    c.raw("POST", "/v1/nodes/%s/drain" % n1, expect=202, note="drain a draining node")
    cc.raw("POST", "/v1/nodes", reg, expect=200, note="a heartbeat of a draining node")
    c.raw("POST", "/v1/jobs/%s/cancel" % jr, expect=202, note="cancel a remote job")
    c.wait_final(jr)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        r = c.raw("GET", "/v1/nodes/" + n1, expect=200, note="until the node runs nothing")
        if c.job(r).get("running") == 0:
            break
        time.sleep(0.1)
    c.raw("DELETE", "/v1/nodes/" + n1, expect=204)
    c.raw("DELETE", "/v1/nodes/" + n1, expect=404, note="deleted twice")
    c.raw("GET", "/v1/nodes/" + n1, expect=404, note="a deleted node")
    cc.raw("POST", "/v1/nodes", reg, expect=201, note="joins again after a delete")
    c.raw("POST", "/v1/nodes/n-contract-2/drain", expect=202, note="drain an idle node")
    c.raw("DELETE", "/v1/nodes/n-contract-2", expect=204, note="delete an idle node")


def exercise_secured(c, anon, wrong):
    """A jobd with a token: 401 everywhere under /v1, never on /healthz."""
    anon.raw("GET", "/healthz", expect=200, note="no token needed")
    r = c.raw("POST", "/v1/jobs?wait=10", {"command": ["echo", "authorized"]}, expect=201, note="with the token")
    jid = c.job(r)["id"]
    c.raw("GET", "/v1/jobs", expect=200, note="with the token")
    for cl, why in ((anon, "no token"), (wrong, "wrong token")):
        cl.raw("GET", "/v1/jobs", expect=401, note=why)
        cl.raw("POST", "/v1/jobs", {"command": ["true"]}, expect=401, note=why)
        cl.raw("GET", "/v1/jobs/" + jid, expect=401, note=why)
        cl.raw("DELETE", "/v1/jobs/" + jid, expect=401, note=why)
        cl.raw("POST", "/v1/jobs/%s/cancel" % jid, expect=401, note=why)
        cl.raw("GET", "/v1/jobs/%s/stdout" % jid, expect=401, note=why)
        cl.raw("GET", "/v1/jobs/%s/stderr" % jid, expect=401, note=why)
        cl.raw("GET", "/v1/openapi.yaml", expect=401, note=why)
        cl.raw("GET", "/v1/tasks", expect=401, note=why)
        cl.raw("POST", "/v1/batches", {"jobs": [{"command": ["true"]}]}, expect=401, note=why)
        cl.raw("GET", "/v1/batches/b1", expect=401, note=why)
        cl.raw("POST", "/v1/batches/b1/cancel", expect=401, note=why)
        cl.raw("GET", "/metrics", expect=401, note=why)
        cl.raw("GET", "/v1/nodes", expect=401, note=why)
        cl.raw("GET", "/v1/nodes/n1", expect=401, note=why)
        cl.raw("POST", "/v1/nodes/n1/drain", expect=401, note=why)
        cl.raw("DELETE", "/v1/nodes/n1", expect=401, note=why)
        cl.raw("GET", "/v1/nope", expect=401, note=why + ", unknown /v1 path")
        cl.raw("PUT", "/v1/jobs", expect=401, note=why + ", wrong method")
    anon.raw("GET", "/nope", expect=404, note="unknown path outside /v1")


def exercise_small(c, jobd):
    """429 (queue full), 413 (body too large), then 503 while shutting down."""
    r = c.raw("POST", "/v1/jobs", {"command": ["sleep", "30"]}, expect=201, note="fills the one process slot")
    running = c.job(r)["id"]
    c.wait_state(running, "running")
    r = c.raw("POST", "/v1/jobs", {"command": ["sleep", "30"]}, expect=201, note="fills the queue")
    queued = c.job(r)["id"]
    c.raw("POST", "/v1/jobs", {"command": ["true"]}, expect=429, note="queue full")
    c.raw("POST", "/v1/batches", {"jobs": [{"command": ["true"]}]}, expect=429, note="queue full")
    c.raw("POST", "/v1/jobs/%s/cancel" % queued, expect=202, note="cancel a queued job")
    big = {"command": ["echo", "x" * 8192]}
    c.raw("POST", "/v1/jobs", big, expect=413, note="declared body over --max-body")
    c.raw("POST", "/v1/jobs", big, expect=413, note="chunked body over --max-body", chunked=True)
    c.raw("POST", "/v1/jobs", {"command": ["echo", "y" * 3000]}, expect=201, note="body under --max-body")
    c.raw("POST", "/v1/batches", {"jobs": [{"command": ["echo", "x" * 9000]}]}, expect=413,
          note="body over --max-batch-body")

    jobd.proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            r = c.raw("GET", "/healthz", expect=(200, 503), note="until shutdown begins")
        except OSError:
            break
        if r["status"] == 503:
            break
        time.sleep(0.05)
    else:
        c.rec.failures.append("after SIGTERM, /healthz never answered 503")
        return
    c.raw("POST", "/v1/jobs", {"command": ["true"]}, expect=503, note="shutting down")
    c.raw("GET", "/v1/jobs/" + running, expect=503, note="shutting down")
    c.raw("GET", "/v1/jobs", expect=503, note="shutting down")
    c.raw("DELETE", "/v1/jobs/" + queued, expect=503, note="shutting down")
    c.raw("POST", "/v1/jobs/%s/cancel" % running, expect=503, note="shutting down")
    c.raw("GET", "/v1/jobs/%s/stdout" % running, expect=503, note="shutting down")
    c.raw("GET", "/v1/jobs/%s/stderr" % running, expect=503, note="shutting down")
    c.raw("GET", "/v1/openapi.yaml", expect=503, note="shutting down")
    c.raw("GET", "/v1/tasks", expect=503, note="shutting down")
    c.raw("POST", "/v1/batches", {"jobs": [{"command": ["true"]}]}, expect=503, note="shutting down")
    c.raw("GET", "/v1/batches/b1", expect=503, note="shutting down")
    c.raw("POST", "/v1/batches/b1/cancel", expect=503, note="shutting down")
    c.raw("GET", "/metrics", expect=503, note="shutting down")
    c.raw("PUT", "/v1/jobs", expect=503, note="shutting down, wrong method")
    c.raw("GET", "/nope", expect=503, note="shutting down, unknown path")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--jobd-bin", default=os.environ.get("JOBD_BIN"))
    ap.add_argument("--out", default=os.environ.get("CONTRACT_RECORDING"), help="the JSONL recording to write")
    ap.add_argument("--no-validate", action="store_true", help="record only")
    args = ap.parse_args()

    binary = args.jobd_bin
    if not binary or not os.access(binary, os.X_OK):
        sys.exit("exercise.py: set JOBD_BIN (or --jobd-bin) to the jobd binary; got %r" % binary)
    out = args.out
    if not out:
        d = tempfile.mkdtemp(prefix="jobd-contract-rec-")
        out = os.path.join(d, "recorded.jsonl")
    rec = Recorder(out)
    t0 = time.monotonic()

    open_ = Jobd(binary, "open")
    secured = Jobd(binary, "secured", env={"JOBD_TOKEN": TOKEN})
    cluster = Jobd(binary, "cluster", ["--node-timeout", "60"],
                   env={"JOBD_TOKEN": TOKEN, "JOBD_CLUSTER_TOKEN": CLUSTER_TOKEN})
    small = Jobd(
        binary,
        "small",
        [
            "--max-queued", "1", "--max-procs", "1", "--max-body", "4096", "--max-batch-body", "8192",
            "--shutdown-grace", "5",
        ],
    )
    try:
        exercise_open(Client(open_, rec))
        exercise_cluster(Client(cluster, rec, TOKEN), Client(cluster, rec, CLUSTER_TOKEN), Client(cluster, rec),
                         open_.port)
        exercise_secured(
            Client(secured, rec, TOKEN), Client(secured, rec), Client(secured, rec, "not-the-token")
        )
        exercise_small(Client(small, rec), small)
    finally:
        rec.close()
        # The coordinator first: it polls the open jobd, its node.
        for j in (cluster, open_, secured, small):
            rc = j.stop()
            if rc != 0:
                rec.failures.append("jobd (%s) exited with status %s on SIGTERM" % (j.name, rc))

    print("exercise.py: recorded %d exchanges in %s (%.1f s)" % (rec.count, out, time.monotonic() - t0))
    for f in rec.failures:
        print("UNEXPECTED %s" % f)
    rc = 1 if rec.failures else 0
    if not args.no_validate:
        node = os.environ.get("NODE") or shutil.which("node")
        if not node:
            sys.exit("exercise.py: node not found: install nodejs and npm (Debian packages nodejs npm)")
        vrc = subprocess.call([node, os.path.join(HERE, "validate.mjs"), out])
        rc = rc or vrc
    if rc:
        print("exercise.py: FAILED; the recording is kept in %s" % out)
    elif not args.out:
        shutil.rmtree(os.path.dirname(out), ignore_errors=True)
    sys.exit(rc)


if __name__ == "__main__":
    main()
