"""clustertest: the harness of jobd's cluster tests (issue 4, worker nodes).

A test starts one coordinator and N worker nodes, each the real jobd binary
on an ephemeral loopback port with its own temporary data directory (class
Cluster, built on tests/integration/jobdtest.py), waits until GET /v1/nodes
on the coordinator lists the nodes ready, and talks HTTP to them. Every
process (and every job process they started) is killed and every temporary
directory removed when the test ends, passes or fails: each jobd is tracked
by the test case's cleanups (and jobdtest's atexit hook as a last resort).

The coordinator gets the users' token (JOBD_TOKEN) and the cluster token
(JOBD_CLUSTER_TOKEN, or --cluster-token-file), and `--node-timeout 2`; a node
gets `--join http://127.0.0.1:<coordinator port> --label ... --capacity N`
and the cluster token (no users' token: the coordinator reaches it with the
cluster token).

Exchanges are recorded for the contract check (JOBD_RECORD, as in jobdtest)
only for paths that openapi/openapi.yaml documents; CTest does not set
JOBD_RECORD for the cluster.* tests.

The jobd binary: JOBD_BIN, or `--jobd-bin PATH`, or build*/jobd (jobdtest).
Python 3 standard library only; only 127.0.0.0/8 is used (the netns test adds
its own namespace and veth pair); every wait is bounded.
"""

import http.client
import json
import os
import re
import secrets
import shutil
import signal
import sys
import tempfile
import time
import urllib.parse

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "integration"))
import jobdtest  # noqa: E402
from jobdtest import FINAL_STATES, TIME_RE, Jobd, JobdTestCase, StartError  # noqa: E402,F401

# jobd says https:// when it serves TLS (--tls-cert): let the harness find the port either way.
jobdtest.LISTEN_RE = re.compile(r"^jobd: listening on https?://(\S+):(\d+)\s*$")

# Exit status that CTest reports as "skipped" (SKIP_RETURN_CODE in cluster.cmake).
SKIP = 77

NODE_TIMEOUT = 2  # --node-timeout of the coordinators (seconds)
USER_TOKEN = "users-" + secrets.token_hex(16)
CLUSTER_TOKEN = "cluster-" + secrets.token_hex(16)

NODE_FIELDS = frozenset("id url state labels capacity running last_seen registered_at version".split())
NODE_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
INSTANCE_ID_RE = re.compile(r"^n[0-9a-f]{16}$")


def main():
    jobdtest.main()


def note(fmt, *args):
    sys.stderr.write("[cluster] " + (fmt % args if args else fmt) + "\n")
    sys.stderr.flush()


# ---------------------------------------------------------------------------
# Recording: only answers to paths the openapi documents


_documented = None


def _documented_paths():
    global _documented
    if _documented is None:
        pats = []
        try:
            with open(os.path.join(REPO, "openapi", "openapi.yaml")) as f:
                for line in f:
                    m = re.match(r"^  (/\S*):\s*$", line)
                    if m:
                        rx = re.sub(r"\\\{[^}]*\\\}", "[^/]+", re.escape(m.group(1)))
                        pats.append(re.compile("^" + rx + "$"))
        except OSError:
            pass
        _documented = pats
    return _documented


def documented(path):
    p = path.split("?", 1)[0]
    return any(rx.match(p) for rx in _documented_paths())


# ---------------------------------------------------------------------------
# One jobd of a cluster


class Member(Jobd):
    """A jobd of the cluster: `role` is "coordinator" or "node"; `connect_host`
    is the address the test uses to reach it (127.0.0.1 unless it listens
    elsewhere); `cluster_token` is what it was given."""

    role = "node"
    connect_host = "127.0.0.1"
    cluster_token = None
    name = "?"
    wrapper = None  # a command prefix (e.g. ip netns exec NS)
    tls_ctx = None  # an ssl.SSLContext when it serves HTTPS

    def spawn(self):
        if self.wrapper:
            # jobdtest runs [self.bin, --listen, ...]: a small script puts the prefix in front.
            path = os.path.join(self.tmp, "wrapped-jobd")
            with open(path, "w") as f:
                f.write("#!/bin/sh\nexec %s %s \"$@\"\n" % (" ".join(self.wrapper), jobdtest.jobd_bin()))
            os.chmod(path, 0o755)
            self.bin = path
        return super().spawn()

    def scheme(self):
        return "https" if self.tls_ctx is not None else "http"

    def url(self, path):
        return "%s://%s:%d%s" % (self.scheme(), self.connect_host, self.port, path)

    def base_url(self):
        return "%s://%s:%d" % (self.scheme(), self.connect_host, self.port)

    def _conn(self, timeout):
        if self.tls_ctx is not None:
            return http.client.HTTPSConnection(self.connect_host, self.port, timeout=timeout, context=self.tls_ctx)
        return http.client.HTTPConnection(self.connect_host, self.port, timeout=timeout)

    def request(self, method, path, body=None, headers=None, timeout=30.0, auth=True):
        body, h = self._headers(body, headers, auth)
        conn = self._conn(timeout)
        try:
            conn.request(method, path, body=body, headers=h)
            r = conn.getresponse()
            data = r.read()
            if documented(path):
                jobdtest.record_exchange(method, path, r.status, r.headers, data)
            return jobdtest.Response(r.status, r.headers, data)
        finally:
            conn.close()

    def stream(self, method, path, timeout=10.0, auth=True, headers=None):
        _, h = self._headers(None, headers, auth)
        conn = self._conn(timeout)
        conn.request(method, path, headers=h)
        return conn, conn.getresponse()

    def instance_id(self, timeout=5.0):
        """The persistent id in <data-dir>/instance-id (a node registers under it)."""
        path = os.path.join(self.data_dir, "instance-id")
        end = time.monotonic() + timeout
        while True:
            try:
                with open(path) as f:
                    s = f.read().strip()
                if s:
                    return s
            except OSError:
                pass
            if time.monotonic() > end:
                raise AssertionError("%s has no %s after %.0fs" % (self.name, path, timeout))
            time.sleep(0.05)

    def ctoken_headers(self, token=None):
        return {"Authorization": "Bearer " + (token or self.cluster_token or CLUSTER_TOKEN)}

    def remote_copies(self, job_id, token=None):
        """The node's own jobs labelled jobd.job=<job_id> (asked with the cluster token)."""
        q = urllib.parse.urlencode({"label": "jobd.job=" + job_id, "limit": 1000})
        r = self.request("GET", "/v1/jobs?" + q, headers=self.ctoken_headers(token))
        if r.status != 200:
            raise AssertionError("GET %s/v1/jobs?%s with the cluster token: expected 200, got %r"
                                 % (self.name, q, r))
        return r.json["jobs"]

    def __repr__(self):
        return "<%s %s port %s>" % (self.role, self.name, self.port)


# ---------------------------------------------------------------------------
# The cluster


class Cluster:
    """One coordinator and its nodes, all tracked by `case` (a JobdTestCase) or,
    with case None, closed by close() (for a class-wide cluster)."""

    def __init__(self, case=None, node_timeout=NODE_TIMEOUT, user_token=USER_TOKEN,
                 cluster_token=CLUSTER_TOKEN, listen="127.0.0.1:0", connect_host="127.0.0.1",
                 args=(), token_via="env", start=True, tls_ctx=None):
        self.case = case
        self.user_token = user_token
        self.cluster_token = cluster_token
        self.node_timeout = node_timeout
        self.nodes = []
        self._count = 0
        self._owned = []
        env = {"JOBD_CLUSTER_TOKEN": None}
        cargs = ["--node-timeout", str(node_timeout)] + [str(a) for a in args]
        c = Member(*cargs, env=env, token=user_token, listen=listen, start=False)
        c.role, c.name, c.connect_host, c.cluster_token = "coordinator", "coordinator", connect_host, cluster_token
        c.tls_ctx = tls_ctx
        self._set_token(c, cluster_token, token_via)
        self.coord = self._track(c)
        if start:
            c.start()

    # -- process bookkeeping

    def _track(self, j):
        if self.case is not None:
            self.case.track(j)
        else:
            self._owned.append(j)
        return j

    def close(self):
        for j in reversed(self._owned):
            try:
                if self.case is None and j.proc is not None:
                    jobdtest.check_sanitizers(j)
            finally:
                j.close()
        self._owned = []

    @staticmethod
    def _set_token(j, token, via):
        if token is None:
            j.env_extra["JOBD_CLUSTER_TOKEN"] = None
        elif via == "env":
            j.env_extra["JOBD_CLUSTER_TOKEN"] = token
        else:
            path = os.path.join(j.tmp, "cluster-token")
            with open(path, "w") as f:
                f.write(token + "\n")
            os.chmod(path, 0o600)
            j.args += ["--cluster-token-file", path]

    def join_url(self):
        return self.coord.base_url()

    # -- nodes

    def add_node(self, labels=None, capacity=None, token="default", token_via="env", wait=True,
                 join=None, listen="127.0.0.1:0", connect_host="127.0.0.1", args=(), wrapper=None,
                 name=None, user_token=None, timeout=10.0, tls_ctx=None):
        """Start a node; with wait, return once the coordinator lists it ready."""
        self._count += 1
        name = name or "node%d" % self._count
        nargs = ["--join", join or self.join_url()]
        for k, v in sorted((labels or {}).items()):
            nargs += ["--label", "%s=%s" % (k, v)]
        if capacity is not None:
            nargs += ["--capacity", str(capacity)]
        nargs += [str(a) for a in args]
        n = Member(*nargs, env={"JOBD_CLUSTER_TOKEN": None}, token=user_token, listen=listen, start=False)
        n.role, n.name, n.connect_host = "node", name, connect_host
        n.wrapper = wrapper
        n.tls_ctx = tls_ctx
        tok = self.cluster_token if token == "default" else token
        n.cluster_token = tok
        self._set_token(n, tok, token_via)
        self._track(n)
        n.start()
        n.node_id = n.instance_id()
        self.nodes.append(n)
        if wait:
            self.wait_node(n, "ready", timeout=timeout)
        return n

    def node_ids(self):
        return [n.node_id for n in self.nodes]

    def by_id(self, node_id):
        for n in self.nodes:
            if n.node_id == node_id:
                return n
        return None

    def list_nodes(self):
        r = self.coord.request("GET", "/v1/nodes")
        if r.status != 200:
            raise AssertionError("GET /v1/nodes: expected 200, got %r" % (r,))
        return r.json["nodes"]

    def node_doc(self, node):
        """GET /v1/nodes/{id} (node: a Member or an id); None on 404."""
        nid = node if isinstance(node, str) else node.node_id
        r = self.coord.request("GET", "/v1/nodes/" + nid)
        if r.status == 404:
            return None
        if r.status != 200:
            raise AssertionError("GET /v1/nodes/%s: expected 200, got %r" % (nid, r))
        return r.json

    def wait_node(self, node, state="ready", timeout=10.0, interval=0.05):
        """Poll GET /v1/nodes until the node is listed in `state`; return its document."""
        nid = node if isinstance(node, str) else node.node_id
        end = time.monotonic() + timeout
        last = None
        while time.monotonic() < end:
            for d in self.list_nodes():
                if d.get("id") == nid:
                    last = d
                    if d.get("state") == state:
                        return d
            time.sleep(interval)
        who = node if isinstance(node, str) else node
        log = "" if isinstance(node, str) else "\n--- its log:\n" + node.log()[-2000:]
        raise AssertionError("node %s (%r) not listed %s by GET /v1/nodes within %.0fs; last: %s%s"
                             % (nid, who, state, timeout, json.dumps(last), log))

    # -- jobs on the coordinator

    def submit(self, spec, **kw):
        spec = dict(spec)
        spec.setdefault("executor", "remote")
        return self.coord.submit(spec, **kw)

    def wait_running(self, job_id, timeout=10.0, interval=0.05):
        """Poll until the job runs on a node (state running, node set); return it."""
        end = time.monotonic() + timeout
        last = None
        while time.monotonic() < end:
            last = self.coord.job(job_id)
            if last["state"] == "running" and last.get("node"):
                return last
            if last["state"] in FINAL_STATES:
                break
            time.sleep(interval)
        raise AssertionError("job %s not running on a node within %.0fs; last: %s"
                             % (job_id, timeout, json.dumps(last)[:800]))

    def wait_job(self, job_id, timeout=20.0):
        return self.coord.wait_job(job_id, timeout)


# ---------------------------------------------------------------------------
# Job specs


def gate_path(case_tmp, name):
    return os.path.join(case_tmp, "gate-" + name)


def gated_shell(gate, before="started", after="finished", tail=""):
    """Shell text: print `before`, wait (at most 60 s) for the file `gate`, run
    `tail`, print `after`."""
    return ("echo %s; i=0; while [ ! -e %s ] && [ $i -lt 1200 ]; do sleep 0.05; i=$((i+1)); done; "
            "%secho %s" % (before, gate, tail, after))


def open_gate(gate):
    with open(gate, "w") as f:
        f.write("go\n")


def counted_shell(counter, first="sleep 60", out="done"):
    """Shell text: add a line to `counter`; on the first run do `first`; print `out`N (N = run number)."""
    return ("echo run >> %s; n=$(wc -l < %s); if [ $n -eq 1 ]; then %s; fi; echo %s$n"
            % (counter, counter, first, out))


def count_lines(path):
    try:
        with open(path) as f:
            return len(f.read().splitlines())
    except FileNotFoundError:
        return 0


def kill_orphans(member):
    """SIGKILL the job processes a kill9()'d jobd left behind (they would be killed at close)."""
    for pid, start in list(member._orphans):
        if jobdtest.alive(pid, start):
            try:
                st = jobdtest.proc_stat(pid)
                if st and st["pgid"] == pid:
                    os.killpg(pid, signal.SIGKILL)
                else:
                    os.kill(pid, signal.SIGKILL)
            except OSError:
                pass


class ClusterTestCase(JobdTestCase):
    """JobdTestCase plus a per-test temporary directory (self.tmp) and cluster()."""

    def setUp(self):
        super().setUp()
        self.tmp = tempfile.mkdtemp(prefix="jobd-ct-")
        self.addCleanup(shutil.rmtree, self.tmp, True)

    def cluster(self, **kw):
        return Cluster(self, **kw)

    def assertNodeShape(self, d, msg=None):
        ctx = "%s: %s" % (msg or "node document", json.dumps(d))
        self.assertIsInstance(d, dict, ctx)
        missing = NODE_FIELDS - set(d)
        self.assertFalse(missing, "%s lacks %s" % (ctx, sorted(missing)))
        self.assertRegex(d["id"], NODE_ID_RE, ctx)
        self.assertIn(d["state"], ("ready", "draining", "down"), ctx)
        self.assertIsInstance(d["labels"], dict, ctx)
        self.assertIsInstance(d["capacity"], int, ctx)
        self.assertIsInstance(d["running"], int, ctx)
        self.assertRegex(d["last_seen"], TIME_RE, ctx)
        self.assertRegex(d["registered_at"], TIME_RE, ctx)
        self.assertTrue(d["version"] is None or isinstance(d["version"], str), ctx)
        self.assertTrue(d["url"].startswith("http://") or d["url"].startswith("https://"), ctx)
