#!/usr/bin/env python3
"""soak.py: a bounded load and soak test of jobd (issue 6, "Load and soak").

Starts jobd (JOBD_BIN, else build*/jobd as the integration harness finds it)
on an ephemeral 127.0.0.1 port with a temporary data dir, then:

  warm-up   SOAK_WARMUP seconds of the load below, then everything is let
            to end and the "start" figures are taken (descriptors, RSS);
  soak      SOAK_SECONDS (default 600) of:
              - wrk in bursts on GET /v1/jobs/{id} (an ended job),
                GET /v1/jobs?limit=50 and GET /healthz (one wrk per path,
                so every status is known per path);
              - a steady stream of submissions from SOAK_SUBMITTERS threads:
                jobs that exit 0, fail (exit 3), time out (timeout 0.2 on
                sleep 5), get cancelled (sleep 5, then POST cancel), print
                output (small, and more than 16 KiB), tasks (echo, sleep,
                sleep cancelled, sleep timed out), small batches, and
                submissions that wait (POST ?wait=30);
              - waiters (GET /v1/jobs/{id}?wait=20 on recent jobs, GET
                /v1/batches/{id}?wait=20), followers (GET
                /v1/jobs/{id}/stdout?follow=true, content checked) and a
                watcher (GET /v1/jobs?since=SEQ&wait=5);
  end       everything is let to end, then the checks below.

Every submission that jobd accepted is tracked with the final state it must
reach (and its exit code, result or output). The test fails (exit 1) when:
  - an accepted job is missing, did not end, or ended otherwise than expected;
  - jobd has a zombie child at the end, or one that stays a zombie for
    SOAK_ZOMBIE_SECONDS (default 3) at any time during the run;
  - jobd's open descriptors (/proc/PID/fd) at the end exceed the start
    figure by more than SOAK_FD_MARGIN (default 2);
  - its VmRSS at the end exceeds the start figure by more than
    SOAK_RSS_MARGIN_KB (default 8192) plus SOAK_RSS_MARGIN_PCT (default 10)
    percent of it (not checked when jobd is a sanitizer build, whose
    allocator holds on to freed memory);
  - any answer was not 2xx, except 429 (backpressure), or a request failed
    at the socket level (each is listed with method, path and status);
  - jobd does not answer /healthz and run a job at the end, or does not exit
    0 on SIGTERM.
Exit 77 (skipped) when the wrk binary is missing.

Only the Python 3 standard library and wrk are used. Every wait is bounded.
Run:  JOBD_BIN=build/jobd SOAK_SECONDS=600 python3 tests/soak/soak.py
"""

import collections
import http.client
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "integration"))
import jobdtest  # noqa: E402  (the integration harness: starts and cleans up jobd)


def env_num(name, default, conv=float):
    v = os.environ.get(name)
    return conv(v) if v not in (None, "") else default


SOAK_SECONDS = env_num("SOAK_SECONDS", 600.0)
WARMUP = env_num("SOAK_WARMUP", min(60.0, max(5.0, SOAK_SECONDS / 5)))
SUBMITTERS = env_num("SOAK_SUBMITTERS", 3, int)
WRK_BURST = env_num("SOAK_WRK_BURST", 10.0)
WRK_PAUSE = env_num("SOAK_WRK_PAUSE", 5.0)
WRK_CONNECTIONS = env_num("SOAK_WRK_CONNECTIONS", 8, int)  # per path
FD_MARGIN = env_num("SOAK_FD_MARGIN", 2, int)
RSS_MARGIN_KB = env_num("SOAK_RSS_MARGIN_KB", 8192, int)
RSS_MARGIN_PCT = env_num("SOAK_RSS_MARGIN_PCT", 10.0)
ZOMBIE_SECONDS = env_num("SOAK_ZOMBIE_SECONDS", 3.0)
MAX_PROCS = env_num("SOAK_MAX_PROCS", 16, int)
MAX_QUEUED = env_num("SOAK_MAX_QUEUED", 2000, int)
END_DEADLINE = env_num("SOAK_END_DEADLINE", 120.0)  # for every job to end after a phase

BIG_LINE = b"0123456789abcdef\n"
FINAL = jobdtest.FINAL_STATES

PORT = None
PID = None
SANITIZER = None  # "AddressSanitizer" etc. when jobd is a sanitizer build
STOP = threading.Event()  # stops the load of the current phase


def log(msg):
    sys.stdout.write("[%7.1fs] %s\n" % (time.monotonic() - T0, msg))
    sys.stdout.flush()


T0 = time.monotonic()

# ---------------------------------------------------------------------------
# What happened: requests by route and status, errors, violations, jobs


def route_of(path):
    p = path.split("?", 1)[0]
    p = re.sub(r"^/v1/jobs/j[0-9a-z]+", "/v1/jobs/{id}", p)
    p = re.sub(r"^/v1/batches/b[0-9a-z]+", "/v1/batches/{id}", p)
    q = path.split("?", 1)[1] if "?" in path else ""
    keys = sorted(k.split("=", 1)[0] for k in q.split("&") if k)
    return p + ("?" + "&".join(keys) if keys else "")


class Record:
    def __init__(self):
        self.lock = threading.Lock()
        self.requests = collections.Counter()  # (method, route, status) -> n
        self.errors = []  # (method, path, status, detail) of every non-2xx but 429, and socket errors
        self.n_errors = 0
        self.n_429 = 0
        self.violations = []
        self.n_violations = 0
        self.expect = {}  # job id -> expectation dict
        self.checked_early = collections.Counter()  # by how: wait, follow, submit-wait
        self.recent = collections.deque(maxlen=400)  # ids for waiters
        self.recent_batches = collections.deque(maxlen=50)
        self.follow = collections.deque(maxlen=200)  # output jobs for followers
        self.submitted = collections.Counter()  # by kind
        self.rejected = collections.Counter()  # kind -> 429s

    def count(self, method, path, status, n=1):
        with self.lock:
            self.requests[(method, route_of(path), status)] += n
            if status == 429:
                self.n_429 += n

    def error(self, method, path, status, detail):
        with self.lock:
            self.n_errors += 1
            if len(self.errors) < 200:
                self.errors.append((method, path, status, detail[:300]))

    def violation(self, msg):
        with self.lock:
            self.n_violations += 1
            if len(self.violations) < 200:
                self.violations.append(msg)
        log("VIOLATION: " + msg)

    def accept(self, job_id, exp):
        with self.lock:
            self.expect[job_id] = exp
            self.recent.append(job_id)
            if exp.get("stdout") is not None:
                self.follow.append(job_id)


REC = Record()


def http_request(method, path, body=None, timeout=30.0, stream=False):
    """One request on a new connection. Returns (status, parsed JSON or bytes), or
    (None, None) after a socket error. Every non-2xx but 429 is recorded as an error."""
    data, headers = None, {}
    if body is not None:
        data = json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    conn = http.client.HTTPConnection("127.0.0.1", PORT, timeout=timeout)
    try:
        conn.request(method, path, body=data, headers=headers)
        r = conn.getresponse()
        raw = r.read()
        status, ctype = r.status, r.getheader("Content-Type") or ""
    except (OSError, http.client.HTTPException) as e:
        REC.count(method, path, "socket-error")
        REC.error(method, path, "socket-error", repr(e))
        return None, None
    finally:
        conn.close()
    REC.count(method, path, status)
    if not 200 <= status < 300 and status != 429:
        REC.error(method, path, status, raw.decode("utf-8", "replace"))
    if "json" in ctype and raw:
        try:
            return status, json.loads(raw)
        except ValueError:
            REC.error(method, path, status, "invalid JSON: %r" % raw[:200])
            return status, None
    return status, raw


# ---------------------------------------------------------------------------
# The kinds of submission, with the final state each must reach


def big_output(n):
    return (BIG_LINE * (n // len(BIG_LINE) + 1))[:n]


def make_spec(kind, n):
    """(spec, expectation) of one job of this kind; n makes it unique."""
    if kind == "ok":
        return {"command": ["true"], "name": "ok"}, {"state": "succeeded", "exit_code": 0}
    if kind == "fail":
        return {"command": ["sh", "-c", "exit 3"]}, {"state": "failed", "exit_code": 3}
    if kind == "timeout":
        return {"command": ["sleep", "5"], "timeout": 0.2}, {"state": "timed_out"}
    if kind == "cancel":
        return {"command": ["sleep", "5"]}, {"state": "cancelled", "cancel": True}
    if kind == "out_small":
        return ({"command": ["echo", "soak %d" % n]},
                {"state": "succeeded", "exit_code": 0, "stdout": ("soak %d\n" % n).encode()})
    if kind == "out_big":
        size = random.randint(16 * 1024 + 1, 64 * 1024)
        return ({"command": ["sh", "-c", "yes 0123456789abcdef | head -c %d" % size]},
                {"state": "succeeded", "exit_code": 0, "stdout": big_output(size)})
    if kind == "task_echo":
        args = {"n": n, "s": "x" * (n % 50)}
        return {"task": "echo", "args": args}, {"state": "succeeded", "exit_code": 0, "result": args}
    if kind == "task_sleep":
        return {"task": "sleep", "args": {"seconds": 0.1}}, {"state": "succeeded", "exit_code": 0}
    if kind == "task_cancel":
        return {"task": "sleep", "args": {"seconds": 5}}, {"state": "cancelled", "cancel": True}
    if kind == "task_timeout":
        return {"task": "sleep", "args": {"seconds": 5}, "timeout": 0.2}, {"state": "timed_out"}
    if kind == "ok_wait":
        return ({"command": ["sh", "-c", "echo waited %d" % n]},
                {"state": "succeeded", "exit_code": 0, "stdout": ("waited %d\n" % n).encode()})
    raise ValueError(kind)


KINDS = [("ok", 12), ("fail", 10), ("timeout", 6), ("cancel", 6), ("out_small", 10), ("out_big", 8),
         ("task_echo", 12), ("task_sleep", 6), ("task_cancel", 4), ("task_timeout", 4), ("batch", 6),
         ("ok_wait", 8)]
BATCH_KINDS = ["ok", "fail", "out_small", "task_echo", "task_sleep"]


def check_job(job, exp, how):
    """Compare a final job document with its expectation; record violations. True if it matches."""
    jid = job.get("id")
    bad = []
    if job.get("state") != exp["state"]:
        bad.append("state %s, expected %s (error %r, exit_code %r)" % (
            job.get("state"), exp["state"], job.get("error"), job.get("exit_code")))
    elif "exit_code" in exp and job.get("exit_code") != exp["exit_code"]:
        bad.append("exit_code %r, expected %r" % (job.get("exit_code"), exp["exit_code"]))
    if "result" in exp and job.get("state") == "succeeded" and job.get("result") != exp["result"]:
        bad.append("result %r, expected %r" % (job.get("result"), exp["result"]))
    if exp.get("stdout") is not None and job.get("state") == "succeeded":
        if job.get("stdout_bytes") != len(exp["stdout"]) or job.get("stdout_truncated"):
            bad.append("stdout_bytes %r truncated %r, expected %d" % (
                job.get("stdout_bytes"), job.get("stdout_truncated"), len(exp["stdout"])))
    if bad:
        REC.violation("job %s (%s, checked by %s): %s" % (jid, exp["kind"], how, "; ".join(bad)))
        return False
    return True


# ---------------------------------------------------------------------------
# Load threads


def submitter(seed):
    rnd = random.Random(seed)
    kinds, weights = zip(*KINDS)
    n = seed * 10_000_000
    while not STOP.is_set():
        n += 1
        kind = rnd.choices(kinds, weights)[0]
        if kind == "batch":
            submit_batch(rnd, n)
        else:
            submit_one(kind, n)
        STOP.wait(rnd.uniform(0.01, 0.06))


def submit_one(kind, n):
    spec, exp = make_spec(kind, n)
    exp["kind"] = kind
    path = "/v1/jobs?wait=30" if kind == "ok_wait" else "/v1/jobs"
    status, job = http_request("POST", path, spec, timeout=60)
    with REC.lock:
        REC.submitted[kind] += 1
    if status == 429:
        with REC.lock:
            REC.rejected[kind] += 1
        return
    if status != 201 or not isinstance(job, dict):
        return  # recorded as an error by http_request
    REC.accept(job["id"], exp)
    if kind == "ok_wait":
        if job.get("state") not in FINAL:
            REC.violation("POST ?wait=30 of %s answered with state %s" % (job["id"], job.get("state")))
        else:
            check_job(job, exp, "submit-wait")
            with REC.lock:
                REC.checked_early["submit-wait"] += 1
    if exp.get("cancel"):
        cpath = "/v1/jobs/%s/cancel" % job["id"]
        st, _ = http_request("POST", cpath, timeout=30)
        if st not in (202, None):
            REC.violation("cancel of %s answered %s" % (job["id"], st))


def submit_batch(rnd, n):
    jobs, exps = [], []
    for i in range(rnd.randint(2, 5)):
        k = rnd.choice(BATCH_KINDS)
        spec, exp = make_spec(k, n * 10 + i)
        exp["kind"] = "batch/" + k
        jobs.append(spec)
        exps.append(exp)
    body = {"jobs": jobs, "name": "soak"}
    if rnd.random() < 0.5:
        body["concurrency"] = 2
    status, b = http_request("POST", "/v1/batches", body, timeout=60)
    with REC.lock:
        REC.submitted["batch"] += 1
        REC.submitted["batch jobs"] += len(jobs)
    if status == 429:
        with REC.lock:
            REC.rejected["batch"] += 1
        return
    if status != 201 or not isinstance(b, dict):
        return
    ids = b.get("jobs") or []
    if len(ids) != len(jobs):
        REC.violation("batch %s lists %d jobs, %d submitted" % (b.get("id"), len(ids), len(jobs)))
        return
    for jid, exp in zip(ids, exps):
        REC.accept(jid, exp)
    with REC.lock:
        REC.recent_batches.append((b["id"], len(ids)))


def waiter(seed):
    rnd = random.Random(seed)
    while not STOP.is_set():
        with REC.lock:
            jid = rnd.choice(REC.recent) if REC.recent else None
            batch = rnd.choice(REC.recent_batches) if REC.recent_batches and rnd.random() < 0.15 else None
            exp = REC.expect.get(jid)
        if batch:
            st, b = http_request("GET", "/v1/batches/%s?wait=20" % batch[0], timeout=60)
            if st == 200 and isinstance(b, dict) and b.get("total") != batch[1]:
                REC.violation("batch %s: total %r, expected %d" % (batch[0], b.get("total"), batch[1]))
            continue
        if jid is None:
            STOP.wait(0.1)
            continue
        st, job = http_request("GET", "/v1/jobs/%s?wait=20" % jid, timeout=60)
        if st == 200 and isinstance(job, dict) and job.get("state") in FINAL:
            check_job(job, exp, "wait")
            with REC.lock:
                REC.checked_early["wait"] += 1
        STOP.wait(0.02)


def follower(seed):
    rnd = random.Random(seed)
    while not STOP.is_set():
        with REC.lock:
            jid = REC.follow.popleft() if REC.follow else None
            exp = REC.expect.get(jid)
        if jid is None:
            STOP.wait(0.1)
            continue
        if rnd.random() < 0.5:
            continue  # follow about half of the output jobs
        st, body = http_request("GET", "/v1/jobs/%s/stdout?follow=true" % jid, timeout=60)
        if st == 200:
            if body != exp["stdout"]:
                REC.violation("follow of %s (%s): %d bytes, expected %d (starts %r)" % (
                    jid, exp["kind"], len(body), len(exp["stdout"]), body[:40]))
            with REC.lock:
                REC.checked_early["follow"] += 1


def watcher():
    seq = 0
    while not STOP.is_set():
        st, ans = http_request("GET", "/v1/jobs?since=%d&wait=5&limit=200" % seq, timeout=40)
        if st == 200 and isinstance(ans, dict):
            seq = max(seq, ans.get("seq") or 0)
        else:
            STOP.wait(0.5)


# ---------------------------------------------------------------------------
# wrk in bursts

WRK_LUA = os.path.join(HERE, "wrk_status.lua")


class Wrk:
    def __init__(self):
        self.lock = threading.Lock()
        self.by_path = collections.defaultdict(lambda: {"requests": 0, "seconds": 0.0, "statuses": collections.Counter(),
                                                        "socket_errors": 0, "bursts": 0})
        self.paths = []

    def burst(self, seconds):
        procs = []
        for path in self.paths:
            cmd = ["wrk", "-t1", "-c%d" % WRK_CONNECTIONS, "-d%ds" % max(1, int(seconds)), "--timeout", "5s",
                   "-s", WRK_LUA, "http://127.0.0.1:%d%s" % (PORT, path)]
            procs.append((path, subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                                 stdin=subprocess.DEVNULL)))
        for path, p in procs:
            try:
                out, _ = p.communicate(timeout=seconds + 30)
            except subprocess.TimeoutExpired:
                p.kill()
                out, _ = p.communicate()
                REC.error("GET", path, "wrk", "wrk did not end in time")
            self.parse(path, out.decode("utf-8", "replace"), seconds)

    def parse(self, path, out, seconds):
        m = re.search(r"(\d+) requests in ([\d.]+)(\w+)", out)
        if not m:
            REC.error("GET", path, "wrk", "unreadable wrk output: " + out[-300:])
            return
        dur = float(m.group(2)) * {"s": 1, "ms": 0.001, "us": 1e-6, "m": 60}.get(m.group(3), 1)
        statuses = collections.Counter({int(c): int(k) for c, k in re.findall(r"^status (\d+) (\d+)$", out, re.M)})
        serr = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
        nserr = sum(int(x) for x in serr.groups()) if serr else 0
        with self.lock:
            d = self.by_path[path]
            d["requests"] += int(m.group(1))
            d["seconds"] += dur
            d["statuses"].update(statuses)
            d["socket_errors"] += nserr
            d["bursts"] += 1
        for code, k in statuses.items():
            REC.count("GET", path + " (wrk)", code, k)
            if not 200 <= code < 300 and code != 429:
                REC.error("GET", path + " (wrk)", code, "%d answers in one burst" % k)
        if nserr:
            REC.error("GET", path + " (wrk)", "socket-error", serr.group(0))

    def run(self, until):
        while not STOP.is_set():
            left = until - time.monotonic()
            if left < 2:
                return
            self.burst(min(WRK_BURST, left - 1))
            STOP.wait(WRK_PAUSE)


WRK = Wrk()

# ---------------------------------------------------------------------------
# jobd's process: descriptors, memory, zombies


def fd_count(pid):
    try:
        return len(os.listdir("/proc/%d/fd" % pid))
    except OSError:
        return None


def status_kb(pid, key):
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def sanitizer_of(pid):
    """'AddressSanitizer' etc. when jobd is a sanitizer build (from its mappings), else None."""
    try:
        with open("/proc/%d/maps" % pid) as f:
            maps = f.read()
    except OSError:
        maps = ""
    for lib, name in (("libasan", "AddressSanitizer"), ("libtsan", "ThreadSanitizer"), ("libmsan", "MemorySanitizer")):
        if lib in maps:
            return name
    try:  # statically linked runtimes (clang) show no library: look for the symbol names
        with open("/proc/%d/exe" % pid, "rb") as f:
            data = f.read()
        for tag, name in ((b"__asan_init", "AddressSanitizer"), (b"__tsan_init", "ThreadSanitizer")):
            if tag in data:
                return name
    except OSError:
        pass
    return None


def zombies(pid):
    return sorted(p for p, st in jobdtest.children_of(pid) if st["state"] == "Z")


class Sampler(threading.Thread):
    """Samples jobd's fds, RSS, threads and zombie children every second."""

    def __init__(self):
        super().__init__(daemon=True)
        self.done = threading.Event()
        self.peak_fd = 0
        self.peak_rss = 0
        self.peak_threads = 0
        self.peak_children = 0
        self.zombie_seen = {}  # pid -> first time seen
        self.lock = threading.Lock()

    def run(self):
        while not self.done.wait(1.0):
            fds, rss, thr = fd_count(PID), status_kb(PID, "VmRSS"), status_kb(PID, "Threads")
            kids = jobdtest.children_of(PID)
            now = time.monotonic()
            z = set(p for p, st in kids if st["state"] == "Z")
            with self.lock:
                self.peak_fd = max(self.peak_fd, fds or 0)
                self.peak_rss = max(self.peak_rss, rss or 0)
                self.peak_threads = max(self.peak_threads, thr or 0)
                self.peak_children = max(self.peak_children, len(kids))
                for p in list(self.zombie_seen):
                    if p not in z:
                        del self.zombie_seen[p]
                for p in z:
                    first = self.zombie_seen.setdefault(p, now)
                    if now - first >= ZOMBIE_SECONDS and first > 0:
                        REC.violation("zombie child %d of jobd for %.0f s" % (p, now - first))
                        self.zombie_seen[p] = -1.0  # reported once


# ---------------------------------------------------------------------------
# Phases


def run_phase(name, seconds):
    log("%s: %.0f s of load" % (name, seconds))
    STOP.clear()
    until = time.monotonic() + seconds
    threads = [threading.Thread(target=submitter, args=(i + 1,), daemon=True) for i in range(SUBMITTERS)]
    threads += [threading.Thread(target=waiter, args=(100 + i,), daemon=True) for i in range(2)]
    threads += [threading.Thread(target=follower, args=(200 + i,), daemon=True) for i in range(2)]
    threads += [threading.Thread(target=watcher, daemon=True)]
    wrk_t = threading.Thread(target=WRK.run, args=(until,), daemon=True)
    for t in threads + [wrk_t]:
        t.start()
    last = time.monotonic()
    while time.monotonic() < until:
        time.sleep(min(1.0, max(0.0, until - time.monotonic())))
        if time.monotonic() - last >= 30:
            last = time.monotonic()
            with REC.lock:
                n = len(REC.expect)
            log("  %d jobs accepted, fds %s, RSS %s kB, errors %d, violations %d" % (
                n, fd_count(PID), status_kb(PID, "VmRSS"), REC.n_errors, REC.n_violations))
    STOP.set()
    for t in threads + [wrk_t]:
        t.join(90)
        if t.is_alive():
            REC.violation("a load thread (%s) did not stop within 90 s" % t.name)
    settle_jobs(name)


def settle_jobs(name):
    """Wait (bounded) until no job is queued or running."""
    end = time.monotonic() + END_DEADLINE
    while time.monotonic() < end:
        st, ans = http_request("GET", "/v1/jobs?state=queued,running&limit=10", timeout=30)
        if st == 200 and isinstance(ans, dict) and not ans.get("jobs"):
            log("%s: every job has ended" % name)
            return True
        time.sleep(0.5)
    REC.violation("%s: jobs still active %.0f s after the load stopped: %s" % (
        name, END_DEADLINE, [j.get("id") for j in (ans or {}).get("jobs", [])] if isinstance(ans, dict) else ans))
    return False


def figures():
    return fd_count(PID), status_kb(PID, "VmRSS"), status_kb(PID, "Threads"), len(jobdtest.children_of(PID))


def settled_figures(target_fd=None, timeout=20.0):
    """Figures once descriptors stop moving (or fall to target_fd): connections just closed by
    clients take a moment to be closed by jobd."""
    end = time.monotonic() + timeout
    prev = None
    while True:
        time.sleep(1.0)
        cur = figures()
        if target_fd is not None and cur[0] is not None and cur[0] <= target_fd:
            return cur
        if target_fd is None and prev is not None and cur[0] == prev[0]:
            return cur
        if time.monotonic() >= end:
            return cur
        prev = cur


def final_check():
    """Every accepted job: present, ended, in the state it should be; a sample of outputs read."""
    log("final check of %d accepted jobs" % len(REC.expect))
    seen = {}
    cursor = None
    for _ in range(10000):
        path = "/v1/jobs?limit=1000" + ("&cursor=%s" % cursor if cursor else "")
        st, ans = http_request("GET", path, timeout=60)
        if st != 200 or not isinstance(ans, dict):
            REC.violation("listing the jobs failed (%s)" % st)
            return collections.Counter()
        for job in ans["jobs"]:
            seen[job["id"]] = job
        cursor = ans.get("next_cursor")
        if not cursor:
            break
    by_state = collections.Counter()
    output_jobs = []
    for jid, exp in REC.expect.items():
        job = seen.get(jid)
        if job is None:
            REC.violation("job %s (%s) was accepted but is not listed" % (jid, exp["kind"]))
            continue
        by_state[job["state"]] += 1
        if job["state"] not in FINAL:
            REC.violation("job %s (%s) has not ended: %s" % (jid, exp["kind"], job["state"]))
            continue
        if check_job(job, exp, "final listing") and exp.get("stdout") is not None:
            output_jobs.append(jid)
    extra = set(seen) - set(REC.expect)
    if extra:
        REC.violation("%d listed jobs were never accepted: %s" % (len(extra), sorted(extra)[:10]))
    sample = random.sample(output_jobs, min(300, len(output_jobs)))
    for jid in sample:
        st, body = http_request("GET", "/v1/jobs/%s/stdout" % jid, timeout=30)
        if st == 200 and body != REC.expect[jid]["stdout"]:
            REC.violation("stdout of %s: %d bytes, expected %d" % (jid, len(body), len(REC.expect[jid]["stdout"])))
    log("read back the stdout of %d of %d output jobs" % (len(sample), len(output_jobs)))
    return by_state


def main():
    global PORT, PID, SANITIZER
    if not shutil.which("wrk"):
        print("soak: wrk not found (apt-get install wrk): skipped")
        return 77
    j = jobdtest.Jobd("--max-procs", MAX_PROCS, "--max-queued", MAX_QUEUED, start=False)
    try:
        j.start()
        PORT, PID = j.port, j.pid
        SANITIZER = sanitizer_of(PID)
        log("jobd %s pid %d on 127.0.0.1:%d, data in %s" % (j.bin, PID, PORT, j.data_dir))
        log("soak %.0f s after a warm-up of %.0f s; %d submitters; wrk bursts %.0f s every %.0f s, %d conns per path"
            % (SOAK_SECONDS, WARMUP, SUBMITTERS, WRK_BURST, WRK_BURST + WRK_PAUSE, WRK_CONNECTIONS))
        fig0 = figures()
        # The ended job that wrk reads.
        spec, exp = make_spec("out_small", 0)
        exp["kind"] = "wrk-target"
        st, target = http_request("POST", "/v1/jobs?wait=30", spec, timeout=60)
        if st != 201 or target.get("state") != "succeeded":
            REC.violation("the wrk target job did not succeed: %s %r" % (st, target))
            return report(j, None, None, None, fig0)
        REC.expect[target["id"]] = exp
        WRK.paths = ["/v1/jobs/%s" % target["id"], "/v1/jobs?limit=50", "/healthz"]

        sampler = Sampler()
        sampler.start()
        run_phase("warm-up", WARMUP)
        start = settled_figures()
        with sampler.lock:  # peaks count from the start figures on
            sampler.peak_fd, sampler.peak_rss, sampler.peak_threads = start[:3]
        log("start figures: fds %s, RSS %s kB, threads %s, children %s" % start)
        t_soak = time.monotonic()
        run_phase("soak", SOAK_SECONDS)
        soak_wall = time.monotonic() - t_soak
        end = settled_figures(target_fd=start[0])
        sampler.done.set()
        sampler.join(5)
        log("end figures: fds %s, RSS %s kB, threads %s, children %s" % end)
        by_state = final_check()
        z = zombies(PID)
        if z:
            REC.violation("zombie children of jobd at the end: %s" % z)
        # Still answering, and still running jobs.
        st, h = http_request("GET", "/healthz", timeout=10)
        if st != 200:
            REC.violation("/healthz answered %s at the end" % st)
        st, job = http_request("POST", "/v1/jobs?wait=30", {"command": ["echo", "still here"]}, timeout=60)
        if st != 201 or not isinstance(job, dict) or job.get("state") != "succeeded":
            REC.violation("a job at the end: %s %r" % (st, job))
        rc = j.stop(timeout=60)
        if rc != 0:
            REC.violation("jobd exited %s on SIGTERM" % rc)
        return report(j, sampler, start, end, fig0, by_state, soak_wall)
    except Exception as e:  # report what we have, then fail
        import traceback
        traceback.print_exc()
        REC.violation("soak aborted: %r" % e)
        return report(j, None, None, None, None)
    finally:
        STOP.set()
        j.close()


def report(j, sampler, start, end, fig0, by_state=None, soak_wall=None):
    print()
    print("=" * 78)
    print("jobd soak: %.0f s (warm-up %.0f s), jobd %s" % (SOAK_SECONDS, WARMUP, j.bin))
    print("-" * 78)
    print("%-40s %10s %10s %10s" % ("wrk (all bursts)", "requests", "seconds", "req/s"))
    for path, d in WRK.by_path.items():
        rps = d["requests"] / d["seconds"] if d["seconds"] else 0.0
        route = route_of(path)
        print("%-40s %10d %10.1f %10.0f   statuses %s%s" % (
            route, d["requests"], d["seconds"], rps, dict(sorted(d["statuses"].items())),
            ", socket errors %d" % d["socket_errors"] if d["socket_errors"] else ""))
    print("-" * 78)
    sub = dict(REC.submitted)
    print("submissions by kind (429s): %s" % ", ".join(
        "%s %d%s" % (k, v, " (%d)" % REC.rejected[k] if REC.rejected[k] else "") for k, v in sorted(sub.items())))
    print("jobs accepted: %d; ended by state: %s" % (len(REC.expect), dict(sorted((by_state or {}).items()))))
    if soak_wall:
        print("jobs ended per second (warm-up + soak): %.1f" % (sum((by_state or {}).values()) / (WARMUP + soak_wall)))
    print("checked before the end: %s" % dict(REC.checked_early))
    print("-" * 78)
    if start and end and sampler:
        print("%-22s %12s %12s %12s %12s" % ("jobd", "at launch", "start", "peak", "end"))
        print("%-22s %12s %12s %12s %12s" % ("open fds", fig0[0], start[0], sampler.peak_fd, end[0]))
        print("%-22s %12s %12s %12s %12s" % ("VmRSS kB", fig0[1], start[1], sampler.peak_rss, end[1]))
        print("%-22s %12s %12s %12s %12s" % ("threads", fig0[2], start[2], sampler.peak_threads, end[2]))
        print("%-22s %12s %12s %12s %12s" % ("children", fig0[3], start[3], sampler.peak_children, end[3]))
        if end[0] is None or end[0] > start[0] + FD_MARGIN:
            REC.violation("open fds %s at the end, %s at the start (margin %d)" % (end[0], start[0], FD_MARGIN))
        allowed = start[1] + RSS_MARGIN_KB + start[1] * RSS_MARGIN_PCT / 100.0
        san = SANITIZER
        if san:
            print("RSS not checked: jobd runs under %s (its allocator keeps freed memory)" % san)
        elif end[1] is None or end[1] > allowed:
            REC.violation("VmRSS %s kB at the end, %s kB at the start (allowed up to %.0f kB)" % (
                end[1], start[1], allowed))
        print("margins: fds +%d, RSS +%d kB +%.0f%%" % (FD_MARGIN, RSS_MARGIN_KB, RSS_MARGIN_PCT))
    print("-" * 78)
    print("requests by route and status:")
    for (m, route, st), k in sorted(REC.requests.items(), key=lambda x: (x[0][1], x[0][0], str(x[0][2]))):
        print("  %-6s %-50s %-12s %d" % (m, route, st, k))
    print("429 answers: %d" % REC.n_429)
    print("error answers (non-2xx other than 429, socket errors): %d" % REC.n_errors)
    for e in REC.errors[:50]:
        print("  %s %s -> %s: %s" % e)
    if REC.n_errors:
        REC.violation("%d error answers or socket errors" % REC.n_errors)
    print("-" * 78)
    if REC.violations:
        print("FAILED: %d violations" % REC.n_violations)
        for v in REC.violations[:100]:
            print("  " + v)
        log_tail = j.log()[-3000:] if j else ""
        if log_tail:
            print("--- jobd log (tail):\n" + log_tail)
        return 1
    print("PASSED")
    return 0


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, lambda *a: sys.exit(143))
    sys.exit(main())
