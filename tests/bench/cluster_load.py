#!/usr/bin/env python3
"""cluster_load.py: remote jobs on worker nodes against the same jobs run locally.

Starts one coordinator and two worker nodes as local processes (jobd on
127.0.0.1:0 each, temp data dirs, a random cluster token), waits until both
nodes are `ready`, then measures, with a baseline from the same run:

  1. Throughput: N trivial jobs {"command":["true"],"executor":"remote"} over
     the two nodes (--capacity C each), submitted
       (a) as one batch: POST /v1/batches, then GET /v1/batches/{id}?wait=60
           until done;
       (b) as single POSTs /v1/jobs?wait=60 from K concurrent clients (one
           thread and one keep-alive connection each).
     jobs/s from the first submit to the last job ended. Baseline: the same N
     jobs without "executor" (the process executor) on the coordinator, whose
     --max-procs is the nodes' capacity together (2 x C), the same way; the
     ratio is remote / local. For information, the same local jobs on one node
     directly (its --max-procs is C: half the slots). Every job must succeed
     and each node must have run some of the remote ones.
  2. Latency: L sequential POST /v1/jobs?wait=30 of {"command":["true"]} and
     of the same job with "executor":"remote" on the coordinator, taking turns
     on one keep-alive connection; median and p99 of each, and of the
     difference remote - local within each pair (the added latency).

Runs take turns (local, remote, ...) so both see the same machine. With
--repeat R each throughput pair runs R times and the best rate of each is kept.

Output: progress on stderr; on stdout a table and one line
  cluster_load: key=value ...
Exit status 0 when every job succeeded and both nodes ran remote jobs, 1 when
not (or a jobd did not start), 2 on bad usage. It never judges speed.
Every process it starts is stopped (SIGTERM, then SIGKILL) and its temp dir
removed on exit, Ctrl-C and SIGTERM included; the jobds also get SIGKILL if
this script dies (PR_SET_PDEATHSIG).
"""

import argparse
import ctypes
import http.client
import json
import os
import re
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse

REMOTE = {"command": ["true"], "executor": "remote"}
LOCAL = {"command": ["true"]}
STARTUP_WAIT_S = 15  # a jobd's listening line, and the nodes' registration
STOP_WAIT_S = 15  # SIGTERM to exit (jobd's --shutdown-grace is 10 s)
MAX_REPORTED = 5  # failures described one by one; the rest are counted


def log(msg):
    print(f"cluster_load: {msg}", file=sys.stderr, flush=True)


class Failure(Exception):
    pass


# ------------------------------------------------------------------ HTTP


class Client:
    """One keep-alive connection to a jobd; reconnects on the next request after an error."""

    def __init__(self, base, token=None, timeout=90):
        u = urllib.parse.urlsplit(base)
        self.host, self.port, self.timeout = u.hostname, u.port, timeout
        self.headers = {"Content-Type": "application/json"}
        if token:
            self.headers["Authorization"] = f"Bearer {token}"
        self.conn = None

    def request(self, method, path, body=None):
        """(status, decoded JSON or raw text). Raises OSError/HTTPException on transport errors."""
        if self.conn is None:
            self.conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
        data = body
        if body is not None and not isinstance(body, bytes):
            data = json.dumps(body).encode()
        try:
            self.conn.request(method, path, body=data, headers=self.headers)
            resp = self.conn.getresponse()
            raw = resp.read()
        except (OSError, http.client.HTTPException):
            self.close()
            raise
        if resp.getheader("Connection", "").lower() == "close":
            self.close()
        try:
            return resp.status, json.loads(raw) if raw else None
        except ValueError:
            return resp.status, raw.decode(errors="replace")

    def close(self):
        if self.conn is not None:
            self.conn.close()
            self.conn = None


FINAL = {"succeeded", "failed", "cancelled", "timed_out"}


class Tally:
    """Failures and which node ran each job, shared by the client threads."""

    def __init__(self):
        self.lock = threading.Lock()
        self.failures = 0
        self.reported = 0
        self.by_node = {}
        self.ok = 0

    def fail(self, what):
        with self.lock:
            self.failures += 1
            self.reported += 1
            if self.reported <= MAX_REPORTED:
                log(f"failure: {what}")

    def job(self, doc):
        """Count an ended job document: a failure unless it succeeded."""
        if not isinstance(doc, dict):
            self.fail(f"not a job document: {str(doc)[:200]}")
            return
        if doc.get("state") != "succeeded":
            self.fail(f"job {doc.get('id')} ended {doc.get('state')} (error {doc.get('error')!r})")
            return
        with self.lock:
            self.ok += 1
            node = doc.get("node") or "-"
            self.by_node[node] = self.by_node.get(node, 0) + 1


def wait_job(client, doc, deadline):
    """Follow a job answered before its end with GET ?wait= until it ends; its final document."""
    while isinstance(doc, dict) and doc.get("state") not in FINAL and time.monotonic() < deadline:
        status, doc = client.request("GET", f"/v1/jobs/{doc['id']}?wait=30")
        if status != 200:
            raise Failure(f"GET /v1/jobs/{{id}}: status {status}: {str(doc)[:200]}")
    return doc


# ------------------------------------------------------------ processes


def _die_with_parent():
    # PR_SET_PDEATHSIG = 1: SIGKILL the jobd if this script dies without cleaning up.
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):
        pass


class Cluster:
    def __init__(self, args):
        self.args = args
        self.tmp = tempfile.mkdtemp(prefix="jobd-cluster-bench.")
        self.procs = []  # (name, Popen, dir)
        self.cluster_token = secrets.token_hex(16)
        self.user_token = args.token
        self.coord_url = None
        self.nodes = []  # (id, url)

    def start_jobd(self, name, extra):
        d = os.path.join(self.tmp, name)
        os.makedirs(d)
        env = dict(os.environ, JOBD_CLUSTER_TOKEN=self.cluster_token)
        env.pop("JOBD_TOKEN", None)
        cmd = [self.args.jobd, "--listen", "127.0.0.1:0", "--data-dir", os.path.join(d, "data")]
        if self.args.http_threads:
            cmd += ["--http-threads", str(self.args.http_threads)]
        cmd += extra
        with open(os.path.join(d, "stdout"), "wb") as out, \
                open(os.path.join(d, "stderr"), "wb") as err:
            p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=err, env=env,
                                 preexec_fn=_die_with_parent)
        self.procs.append((name, p, d))
        pat = re.compile(rb"^jobd: listening on (http://127\.0\.0\.1:[0-9]+)$", re.M)
        deadline = time.monotonic() + STARTUP_WAIT_S
        while time.monotonic() < deadline:
            with open(os.path.join(d, "stdout"), "rb") as f:
                m = pat.search(f.read())
            if m:
                return m.group(1).decode()
            if p.poll() is not None:
                break
            time.sleep(0.05)
        raise Failure(f"{name} did not print its listening line; stderr ends with:\n"
                      + self.tail(d))

    @staticmethod
    def tail(d, n=15):
        try:
            with open(os.path.join(d, "stderr"), errors="replace") as f:
                return "".join(f.readlines()[-n:])
        except OSError:
            return ""

    def start(self):
        a = self.args
        extra = ["--node-timeout", str(a.node_timeout), "--max-procs", str(2 * a.capacity)]
        if self.user_token:
            tf = os.path.join(self.tmp, "token")
            with open(os.open(tf, os.O_WRONLY | os.O_CREAT, 0o600), "w") as f:
                f.write(self.user_token + "\n")
            extra += ["--token-file", tf]
        self.coord_url = self.start_jobd("coordinator", extra)
        for i in (1, 2):
            self.start_jobd(f"node{i}", ["--join", self.coord_url, "--capacity", str(a.capacity),
                                         "--max-procs", str(a.capacity)])
        c = Client(self.coord_url, self.user_token, timeout=10)
        deadline = time.monotonic() + STARTUP_WAIT_S
        nodes = []
        while time.monotonic() < deadline:
            try:
                status, doc = c.request("GET", "/v1/nodes")
            except (OSError, http.client.HTTPException):
                status, doc = 0, None
            if status == 200:
                nodes = [n for n in doc["nodes"] if n.get("state") == "ready"]
                if len(nodes) == 2:
                    break
            for name, p, d in self.procs:
                if p.poll() is not None:
                    raise Failure(f"{name} exited with status {p.returncode}:\n" + self.tail(d))
            time.sleep(0.1)
        c.close()
        if len(nodes) != 2:
            raise Failure(f"{len(nodes)} of 2 nodes ready after {STARTUP_WAIT_S} s")
        self.nodes = [(n["id"], n["url"]) for n in nodes]
        log(f"coordinator {self.coord_url}, nodes "
            + ", ".join(f"{i} at {u}" for i, u in self.nodes))

    def check_alive(self):
        for name, p, d in self.procs:
            if p.poll() is not None:
                raise Failure(f"{name} exited with status {p.returncode}:\n" + self.tail(d))

    def stop(self):
        for _, p, _ in self.procs:
            if p.poll() is None:
                p.terminate()
        deadline = time.monotonic() + STOP_WAIT_S
        for name, p, _ in self.procs:
            try:
                p.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log(f"{name} ignored SIGTERM for {STOP_WAIT_S} s: SIGKILL")
                p.kill()
                p.wait()

    def log_report(self):
        """(name, lines of warn/error level) per process, read after stop()."""
        out = []
        for name, _, d in self.procs:
            try:
                with open(os.path.join(d, "stderr"), errors="replace") as f:
                    bad = [ln.rstrip() for ln in f
                           if re.search(r" (warn|warning|error|fatal) ", ln)]
            except OSError:
                bad = []
            out.append((name, bad))
        return out

    def cleanup(self):
        if self.args.keep:
            log(f"kept {self.tmp}")
        else:
            shutil.rmtree(self.tmp, ignore_errors=True)


# ----------------------------------------------------------- measurements


def run_batch(url, token, n, spec, deadline_s):
    """(jobs/s, seconds, post seconds, Tally): N copies of spec as one batch, timed to its end."""
    c = Client(url, token, timeout=120)
    body = json.dumps({"jobs": [spec] * n}).encode()
    tally = Tally()
    t0 = time.perf_counter()
    status, doc = c.request("POST", "/v1/batches", body)
    post_s = time.perf_counter() - t0
    if status != 201:
        raise Failure(f"POST /v1/batches: status {status}: {str(doc)[:300]}")
    bid = doc["id"]
    deadline = time.monotonic() + deadline_s
    while not doc.get("done"):
        if time.monotonic() > deadline:
            raise Failure(f"batch {bid} not done after {deadline_s} s: {doc.get('counts')}")
        status, doc = c.request("GET", f"/v1/batches/{bid}?wait=60")
        if status != 200:
            raise Failure(f"GET /v1/batches/{bid}: status {status}: {str(doc)[:300]}")
    secs = time.perf_counter() - t0
    counts = doc.get("counts", {})
    if counts.get("succeeded") != n:
        tally.fail(f"batch {bid}: counts {counts}")
    # Outside the clock: every job's document, for its state and node.
    cursor, seen = None, 0
    while True:
        q = f"/v1/jobs?batch={bid}&limit=1000" + (f"&cursor={cursor}" if cursor else "")
        status, page = c.request("GET", q)
        if status != 200:
            raise Failure(f"GET {q}: status {status}: {str(page)[:300]}")
        for j in page["jobs"]:
            tally.job(j)
            seen += 1
        cursor = page.get("next_cursor")
        if not cursor:
            break
    if seen != n:
        tally.fail(f"batch {bid}: {seen} jobs listed, not {n}")
    c.close()
    return n / secs, secs, post_s, tally


def run_single(url, token, n, spec, clients, deadline_s):
    """(jobs/s, seconds, Tally): N POST /v1/jobs?wait=60 from `clients` threads."""
    tally = Tally()
    body = json.dumps(spec).encode()
    lock = threading.Lock()
    left = [n]
    deadline = time.monotonic() + deadline_s
    start = threading.Barrier(clients + 1)

    def worker():
        c = Client(url, token, timeout=90)
        start.wait()
        while True:
            with lock:
                if left[0] == 0:
                    break
                left[0] -= 1
            if time.monotonic() > deadline:
                tally.fail("deadline passed before the job was submitted")
                continue
            try:
                status, doc = c.request("POST", "/v1/jobs?wait=60", body)
                if status != 201:
                    tally.fail(f"POST /v1/jobs: status {status}: {str(doc)[:200]}")
                    continue
                tally.job(wait_job(c, doc, deadline))
            except (OSError, http.client.HTTPException, Failure) as e:
                tally.fail(f"POST /v1/jobs: {e}")
        c.close()

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(clients)]
    for t in threads:
        t.start()
    start.wait()
    t0 = time.perf_counter()
    for t in threads:
        t.join(max(0.1, deadline - time.monotonic() + 100))
    secs = time.perf_counter() - t0
    if any(t.is_alive() for t in threads):
        raise Failure("client threads still running after the deadline")
    return n / secs, secs, tally


def pct(xs, p):
    """Nearest-rank percentile of a non-empty list."""
    s = sorted(xs)
    k = max(0, min(len(s) - 1, int(-(-p * len(s) // 100)) - 1))
    return s[k]


def run_latency(url, token, n, warmup, deadline_s):
    """(local ms list, remote ms list, Tally local, Tally remote): sequential, taking turns."""
    c = Client(url, token, timeout=60)
    local, remote = [], []
    tl, tr = Tally(), Tally()
    deadline = time.monotonic() + deadline_s
    bodies = {"local": json.dumps(LOCAL).encode(), "remote": json.dumps(REMOTE).encode()}

    def one(kind):
        t0 = time.perf_counter()
        status, doc = c.request("POST", "/v1/jobs?wait=30", bodies[kind])
        ms = (time.perf_counter() - t0) * 1000
        if status != 201:
            raise Failure(f"POST /v1/jobs ({kind}): status {status}: {str(doc)[:200]}")
        if doc.get("state") not in FINAL:
            doc = wait_job(c, doc, deadline)
            ms = None  # did not end within the wait: no latency to speak of
        return ms, doc

    for i in range(warmup + n):
        if time.monotonic() > deadline:
            raise Failure(f"latency: deadline of {deadline_s} s passed after {i} pairs")
        order = ("local", "remote") if i % 2 == 0 else ("remote", "local")
        got = {}
        for kind in order:
            got[kind] = one(kind)
        if i < warmup:
            continue
        for kind, t in (("local", tl), ("remote", tr)):
            ms, doc = got[kind]
            t.job(doc)
            if ms is None:
                t.fail(f"{kind} job {doc.get('id')} not ended within ?wait=30")
        if got["local"][0] is not None and got["remote"][0] is not None:
            local.append(got["local"][0])
            remote.append(got["remote"][0])
    c.close()
    return local, remote, tl, tr


# ------------------------------------------------------------------- main


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--jobd", default=os.environ.get("JOBD_BIN", "build/jobd"), help="jobd binary")
    ap.add_argument("-n", "--count", type=int, help="jobs per throughput run (2000; quick 100)")
    ap.add_argument("--capacity", type=int, default=8, help="--capacity of each node (8)")
    ap.add_argument("--clients", type=int,
                    help="concurrent clients for the single POSTs (32 = 2 x the slots; quick 8)")
    ap.add_argument("--latency-n", type=int, help="sequential pairs for latency (200; quick 20)")
    ap.add_argument("--warmup", type=int, help="latency pairs not counted (5; quick 2)")
    ap.add_argument("--repeat", type=int, default=1, help="throughput runs per pair, best kept (1)")
    ap.add_argument("--no-node-direct", action="store_true",
                    help="skip the information runs on one node directly")
    ap.add_argument("--node-timeout", type=int, default=10, help="coordinator --node-timeout (10)")
    ap.add_argument("--http-threads", type=int, default=0, help="--http-threads of every jobd")
    ap.add_argument("--token", default=os.environ.get("BENCH_TOKEN") or None,
                    help="users' token for the coordinator (default $BENCH_TOKEN)")
    ap.add_argument("--deadline", type=int, default=300, help="give up on a run after S seconds")
    ap.add_argument("--quick", action="store_true",
                    help="smoke defaults: -n 100, --latency-n 20, --clients 8, --warmup 2, "
                    "no node-direct runs")
    ap.add_argument("--keep", action="store_true", help="keep the temp dir (data, logs)")
    a = ap.parse_args()
    for name, full, quick in (("count", 2000, 100), ("latency_n", 200, 20), ("clients", 32, 8),
                              ("warmup", 5, 2)):
        if getattr(a, name) is None:
            setattr(a, name, quick if a.quick else full)
    if a.quick:
        a.no_node_direct = True
    if min(a.count, a.capacity, a.clients, a.latency_n, a.repeat) < 1 or a.warmup < 0:
        ap.error("counts must be positive")
    if not os.access(a.jobd, os.X_OK):
        ap.error(f"{a.jobd}: not an executable")

    # SIGTERM (ctest timeout, run.sh's trap) ends the run through the finally below.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    cl = Cluster(a)
    failed = False
    try:
        cl.start()
        res = measure(cl, a)
        failed = res["failed"]
        cl.check_alive()
    except Failure as e:
        log(str(e))
        failed = True
        res = None
    except KeyboardInterrupt:
        log("interrupted")
        failed = True
        res = None
    finally:
        cl.stop()
        logs = cl.log_report()
        if failed:
            for name, _, d in cl.procs:
                log(f"{name} stderr ends with:\n{cl.tail(d)}")
        cl.cleanup()
    if res is not None:
        report(a, res, logs)
    return 1 if failed else 0


def measure(cl, a):
    url, tok = cl.coord_url, cl.user_token
    node_ids = [i for i, _ in cl.nodes]
    node1_url = cl.nodes[0][1]
    res = {"failed": False, "rate": {}, "secs": {}, "post": {}, "by_node": {}, "fail": {}}
    kinds = ["local", "remote"] + ([] if a.no_node_direct else ["node"])

    def target(kind):
        # A node accepts the cluster token on /v1/jobs*: the coordinator is its client.
        if kind == "node":
            return node1_url, cl.cluster_token, LOCAL
        return url, tok, (REMOTE if kind == "remote" else LOCAL)

    def keep(key, rate, secs, tally, post=None):
        if rate > res["rate"].get(key, 0):
            res["rate"][key], res["secs"][key] = rate, secs
            if post is not None:
                res["post"][key] = post
        res["fail"][key] = res["fail"].get(key, 0) + tally.failures
        bn = res["by_node"].setdefault(key, {})
        for k, v in tally.by_node.items():
            bn[k] = bn.get(k, 0) + v
        if tally.failures:
            res["failed"] = True

    for rep in range(1, a.repeat + 1):
        for mode in ("batch", "single"):
            for kind in kinds:
                u, t, spec = target(kind)
                log(f"{mode} {kind}: {a.count} jobs"
                    + (f", {a.clients} clients" if mode == "single" else "")
                    + f" (run {rep}/{a.repeat})")
                if mode == "batch":
                    rate, secs, post, tally = run_batch(u, t, a.count, spec, a.deadline)
                    log(f"  {rate:.1f} jobs/s ({secs:.2f} s, POST {post:.3f} s), "
                        f"failures {tally.failures}, by node {tally.by_node}")
                    keep(f"{mode}_{kind}", rate, secs, tally, post)
                else:
                    rate, secs, tally = run_single(u, t, a.count, spec, a.clients, a.deadline)
                    log(f"  {rate:.1f} jobs/s ({secs:.2f} s), failures {tally.failures}, "
                        f"by node {tally.by_node}")
                    keep(f"{mode}_{kind}", rate, secs, tally)
                cl.check_alive()
    for mode in ("batch", "single"):
        bn = res["by_node"].get(f"{mode}_remote", {})
        unused = [i for i in node_ids if not bn.get(i)]
        strays = {k: v for k, v in bn.items() if k not in node_ids}
        if unused or strays:
            log(f"{mode} remote: nodes unused {unused}, jobs on unknown nodes {strays}")
            res["failed"] = True
            res["fail"][f"{mode}_remote"] += sum(strays.values())
        res.setdefault("nodes_used", {})[mode] = sum(1 for i in node_ids if bn.get(i))

    log(f"latency: {a.latency_n} pairs (+{a.warmup} warm-up), local and remote taking turns")
    local, remote, tl, tr = run_latency(url, tok, a.latency_n, a.warmup, a.deadline)
    res["lat"] = {"local": local, "remote": remote,
                  "added": [r - l for l, r in zip(local, remote)]}
    res["fail"]["lat_local"], res["fail"]["lat_remote"] = tl.failures, tr.failures
    res["lat_nodes"] = tr.by_node
    if tl.failures or tr.failures:
        res["failed"] = True
    return res


def report(a, res, logs):
    rate, fail = res["rate"], res["fail"]

    def ratio(x, y):
        return f"{x / y:.2f}" if x and y else "n/a"

    def by_node(key):
        bn = res["by_node"].get(key, {})
        return "/".join(str(v) for _, v in sorted(bn.items()))

    print(f"\n== remote jobs on 2 worker nodes (capacity {a.capacity} each) vs local "
          f"(coordinator --max-procs {2 * a.capacity}): {a.count} x `true`, best of {a.repeat}"
          + (", QUICK: smoke only" if a.quick else "") + " ==")
    fmt = "{:<40} {:>10} {:>10} {:>7}  {}"
    print(fmt.format("throughput", "remote", "local", "ratio", "notes"))
    notes = {}
    for mode, label in (("batch", "jobs/s, one batch"),
                        ("single", f"jobs/s, single POSTs, K={a.clients}")):
        r, l = rate.get(f"{mode}_remote"), rate.get(f"{mode}_local")
        extra = f"jobs per node {by_node(mode + '_remote')}"
        if mode == "batch":
            extra += (f"; POST {res['post'].get('batch_remote', 0):.3f} s remote,"
                      f" {res['post'].get('batch_local', 0):.3f} s local")
        notes[mode] = extra
        f = fail.get(f"{mode}_remote", 0) + fail.get(f"{mode}_local", 0)
        print(fmt.format(f"{label} (fail {f})", f"{r:.1f}" if r else "n/a",
                         f"{l:.1f}" if l else "n/a", ratio(r, l), extra))
    if not a.no_node_direct:
        for mode in ("batch", "single"):
            nd, l = rate.get(f"{mode}_node"), rate.get(f"{mode}_local")
            nf = fail.get(mode + "_node", 0)
            print(fmt.format(f"  info: local on one node, {mode} (fail {nf})",
                             f"{nd:.1f}" if nd else "n/a", f"{l:.1f}" if l else "n/a", ratio(nd, l),
                             f"node --max-procs {a.capacity} vs coordinator {2 * a.capacity}"))
    lat = res["lat"]
    if not lat["local"]:
        lat = {k: [float("nan")] for k in lat}
    print(f"\n{'latency, ms (' + str(a.latency_n) + ' sequential pairs)':<40} {'median':>10} "
          f"{'p99':>10} {'mean':>7}")
    for k, label in (("local", "local  {command:[true]}"),
                     ("remote", "remote {..., executor: remote}"),
                     ("added", "added  (remote - local, per pair)")):
        xs = lat[k]
        print(f"{label:<40} {statistics.median(xs):>10.2f} {pct(xs, 99):>10.2f} "
              f"{statistics.fmean(xs):>7.2f}")
    per_node = "/".join(str(v) for _, v in sorted(res["lat_nodes"].items()))
    print(f"remote latency jobs per node: {per_node}")
    for name, bad in logs:
        if bad:
            print(f"{name}: {len(bad)} warn/error log lines, first: {bad[0][:200]}")
    med = {k: statistics.median(v) for k, v in lat.items()}
    p99 = {k: pct(v, 99) for k, v in lat.items()}
    total_fail = sum(fail.values())

    def num(x):
        return f"{x:.1f}" if x else "n/a"

    line = (f"cluster_load: n={a.count} capacity={a.capacity} clients={a.clients} repeat={a.repeat}"
            f" batch_remote_jobs_per_s={num(rate.get('batch_remote'))}"
            f" batch_local_jobs_per_s={num(rate.get('batch_local'))}"
            f" batch_ratio={ratio(rate.get('batch_remote'), rate.get('batch_local'))}"
            f" single_remote_jobs_per_s={num(rate.get('single_remote'))}"
            f" single_local_jobs_per_s={num(rate.get('single_local'))}"
            f" single_ratio={ratio(rate.get('single_remote'), rate.get('single_local'))}")
    if not a.no_node_direct:
        line += (f" batch_node_jobs_per_s={num(rate.get('batch_node'))}"
                 f" single_node_jobs_per_s={num(rate.get('single_node'))}")
    line += (f" lat_n={a.latency_n}"
             f" lat_local_p50_ms={med['local']:.2f} lat_local_p99_ms={p99['local']:.2f}"
             f" lat_remote_p50_ms={med['remote']:.2f} lat_remote_p99_ms={p99['remote']:.2f}"
             f" lat_added_p50_ms={med['added']:.2f} lat_added_p99_ms={p99['added']:.2f}"
             f" nodes_used={min(res['nodes_used'].values())} failures={total_fail}")
    print(line, flush=True)


if __name__ == "__main__":
    sys.exit(main())
