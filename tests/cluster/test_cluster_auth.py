#!/usr/bin/env python3
"""Cluster tests (issue 4): who may join, and what a registration must say.

- POST /v1/nodes needs the cluster token: a wrong one, the users' token, or
  none -> 401 problem+json; a jobd without a cluster token -> 403 (and it
  refuses executor "remote" with 400);
- a jobd started with --join and a wrong cluster token never shows up in
  GET /v1/nodes; --join without any cluster token exits 2 with a message;
- the other /v1/nodes routes need the users' token (the cluster token is not
  enough); a node's /v1/jobs accepts the cluster token, a coordinator's does not;
- a registration by hand: 201, then 200 for heartbeats (labels, capacity, url
  updated), node_timeout and heartbeat_interval in the answer, down after
  --node-timeout without heartbeats, ready again on the next one, draining
  kept across heartbeats, 201 again after DELETE;
- bad registrations -> 400 problem+json naming the field (bad id, bad url,
  capacity out of range, labels that are not strings, ...).

Run alone with:
    JOBD_BIN=build/jobd python3 tests/cluster/test_cluster_auth.py
"""

import json
import os
import shutil
import ssl
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import clustertest  # noqa: E402
from clustertest import CLUSTER_TOKEN, USER_TOKEN, Cluster, ClusterTestCase, Member  # noqa: E402
from jobdtest import parse_time  # noqa: E402


def bearer(tok):
    return {"Authorization": "Bearer " + tok} if tok is not None else {"Authorization": None}


def reg(node_id="manual-1", url="http://127.0.0.1:9", labels=None, capacity=2, version="test-1"):
    body = {"id": node_id, "url": url, "labels": labels if labels is not None else {"k": "v"},
            "capacity": capacity}
    if version is not None:
        body["version"] = version
    return body


class TokenTest(ClusterTestCase):
    @classmethod
    def setUpClass(cls):
        cls.c = Cluster(None, token_via="file")
        cls.addClassCleanup(cls.c.close)
        cls._shared_jobds = [cls.c.coord]

    def post_node(self, body, token=CLUSTER_TOKEN, raw=None):
        c = self.c.coord
        if raw is not None:
            h = dict(bearer(token))
            h["Content-Type"] = "application/json"
            return c.request("POST", "/v1/nodes", raw, headers=h)
        return c.request("POST", "/v1/nodes", body, headers=bearer(token))

    def test_post_nodes_needs_the_cluster_token(self):
        body = reg("tok-test")
        for tok, why in (("wrong-" + CLUSTER_TOKEN, "a wrong cluster token"),
                         (USER_TOKEN, "the users' token"),
                         (None, "no Authorization header"),
                         ("", "an empty bearer"),
                         (CLUSTER_TOKEN + "x", "the cluster token with one more byte"),
                         (CLUSTER_TOKEN[:-1], "the cluster token less its last byte")):
            r = self.post_node(body, token=tok)
            self.assertProblem(r, 401, msg="POST /v1/nodes with %s" % why)
        r2 = self.c.coord.request("POST", "/v1/nodes", body, headers={"Authorization": "Basic " + CLUSTER_TOKEN})
        self.assertProblem(r2, 401, msg="a Basic header holding the token")
        self.assertNotIn("tok-test", [d["id"] for d in self.c.list_nodes()])

    def test_other_node_routes_need_the_users_token(self):
        c = self.c.coord
        r = self.post_node(reg("routes-1"))
        self.assertIn(r.status, (200, 201), r)
        for method, path in (("GET", "/v1/nodes"), ("GET", "/v1/nodes/routes-1"),
                             ("POST", "/v1/nodes/routes-1/drain"), ("DELETE", "/v1/nodes/routes-1")):
            for tok, why in ((None, "no token"), (CLUSTER_TOKEN, "the cluster token"), ("nope", "a wrong token")):
                r = c.request(method, path, headers=bearer(tok))
                self.assertProblem(r, 401, msg="%s %s with %s" % (method, path, why))
        self.assertEqual(self.c.node_doc("routes-1")["state"], "ready")
        r = c.request("DELETE", "/v1/nodes/routes-1")
        self.assertEqual(r.status, 204, r)

    def test_coordinator_jobs_refuse_the_cluster_token(self):
        # Only a node (a jobd started with --join) takes the cluster token on /v1/jobs.
        r = self.c.coord.request("GET", "/v1/jobs", headers=bearer(CLUSTER_TOKEN))
        self.assertProblem(r, 401, msg="GET /v1/jobs on the coordinator with the cluster token")
        r = self.c.coord.request("POST", "/v1/jobs", {"command": ["true"]}, headers=bearer(CLUSTER_TOKEN))
        self.assertProblem(r, 401, msg="POST /v1/jobs on the coordinator with the cluster token")

    def test_registration_by_hand(self):
        c = self.c
        nid = "manual-life.1_x"
        r = self.post_node(reg(nid, labels={"a": "1"}, capacity=2))
        self.assertEqual(r.status, 201, r)
        d = r.json
        self.assertNodeShape(d)
        self.assertEqual((d["id"], d["url"], d["labels"], d["capacity"], d["state"], d["running"], d["version"]),
                         (nid, "http://127.0.0.1:9", {"a": "1"}, 2, "ready", 0, "test-1"), d)
        self.assertEqual(d["node_timeout"], c.node_timeout, d)
        self.assertIsInstance(d["heartbeat_interval"], (int, float), d)
        self.assertGreater(d["heartbeat_interval"], 0, d)
        self.assertLessEqual(d["heartbeat_interval"], c.node_timeout / 3 + 0.01, d)
        registered = d["registered_at"]
        # A heartbeat: 200, and it updates url, labels, capacity.
        r = self.post_node(reg(nid, url="http://127.0.0.1:10", labels={"a": "2", "b": "x"}, capacity=5,
                               version=None))
        self.assertEqual(r.status, 200, r)
        self.assertEqual((r.json["url"], r.json["labels"], r.json["capacity"]),
                         ("http://127.0.0.1:10", {"a": "2", "b": "x"}, 5), r.json)
        self.assertEqual(r.json["registered_at"], registered, "a heartbeat is not a new registration")
        self.assertIn("node_timeout", r.json)
        g = c.node_doc(nid)
        self.assertEqual(g["labels"], {"a": "2", "b": "x"})
        # No heartbeat (and its url answers nothing): down after --node-timeout.
        t0 = time.monotonic()
        c.wait_node(nid, "down", timeout=c.node_timeout + 5)
        self.assertGreaterEqual(time.monotonic() - t0, c.node_timeout - 1.0)
        # A heartbeat brings it back.
        r = self.post_node(reg(nid, labels={"a": "2"}))
        self.assertEqual((r.status, r.json["state"]), (200, "ready"), r)
        # Draining survives heartbeats.
        r = c.coord.request("POST", "/v1/nodes/%s/drain" % nid)
        self.assertEqual((r.status, r.json["state"]), (202, "draining"), r)
        r = self.post_node(reg(nid))
        self.assertEqual((r.status, r.json["state"]), (200, "draining"), r)
        # A draining node that goes quiet is down; a heartbeat then...
        # DELETE, then the next registration is a first one again: 201, ready.
        r = c.coord.request("DELETE", "/v1/nodes/%s" % nid)
        self.assertEqual(r.status, 204, r)
        r = self.post_node(reg(nid))
        self.assertEqual((r.status, r.json["state"]), (201, "ready"), r)
        self.assertGreaterEqual(parse_time(r.json["registered_at"]), parse_time(registered))
        r = c.coord.request("DELETE", "/v1/nodes/%s" % nid)
        self.assertEqual(r.status, 204, r)

    def test_nodes_listed_in_id_order(self):
        ids = ["order-c", "order-a", "order-B", "order-b9", "order-b10"]
        for i in ids:
            self.assertIn(self.post_node(reg(i)).status, (200, 201))
        try:
            got = [d["id"] for d in self.c.list_nodes() if d["id"].startswith("order-")]
            self.assertEqual(sorted(got), sorted(ids))
            self.assertEqual(got, sorted(ids), "GET /v1/nodes lists nodes in id order")
        finally:
            for i in ids:
                self.c.coord.request("DELETE", "/v1/nodes/" + i)

    # -- bad registrations

    BAD = [
        (reg(""), "id"),
        (reg("-abc"), "id"),
        (reg(".abc"), "id"),
        (reg("a/b"), "id"),
        (reg("a b"), "id"),
        (reg("caf\u00e9"), "id"),
        (reg("a" * 65), "id"),
        (reg(5), "id"),
        (reg(None), "id"),
        ({"url": "http://127.0.0.1:9", "capacity": 1}, "id"),
        (reg(url="ftp://127.0.0.1:9"), "url"),
        (reg(url="not a url"), "url"),
        (reg(url="127.0.0.1:9"), "url"),
        (reg(url=""), "url"),
        (reg(url="http://" + "a" * 1100 + ":9"), "url"),
        (reg(url=7), "url"),
        ({"id": "no-url", "capacity": 1}, "url"),
        (reg(capacity=0), "capacity"),
        (reg(capacity=-1), "capacity"),
        (reg(capacity=100001), "capacity"),
        (reg(capacity="2"), "capacity"),
        (reg(capacity=1.5), "capacity"),
        (reg(capacity=True), "capacity"),
        (reg(labels={"k": 1}), ("labels", "labels.k")),
        (reg(labels={"k": ["x"]}), ("labels", "labels.k")),
        (reg(labels={"k": None}), ("labels", "labels.k")),
        (reg(labels={"k": {"x": "y"}}), ("labels", "labels.k")),
        (reg(labels=["k"]), "labels"),
        (reg(labels="k=v"), "labels"),
        (reg(labels={"a b": "x"}), ("labels", "labels.a b")),
        (reg(version=5), "version"),
    ]

    def test_bad_registrations(self):
        for body, field in self.BAD:
            r = self.post_node(body)
            ctx = "POST /v1/nodes %s" % json.dumps(body)[:150]
            p = self.assertProblem(r, 400, msg=ctx)
            fields = field if isinstance(field, tuple) else (field,)
            self.assertIn(p.get("field"), fields, ctx + ": %r" % (r,))
        for raw in (b"{", b"[]", b"\"node\"", b"null", b"{\"id\": \"x\", \"id\": }"):
            r = self.post_node(None, raw=raw)
            self.assertProblem(r, 400, msg="POST /v1/nodes %r" % raw)
        ids = [d["id"] for d in self.c.list_nodes()]
        for body, _ in self.BAD:
            if isinstance(body.get("id"), str):
                self.assertNotIn(body["id"], ids, "a refused registration is not listed")

    def test_good_edge_registrations(self):
        ok = [reg("a" * 64), reg("0abc"), reg("Z.z-_9"), reg("edge-cap", capacity=100000),
              reg("edge-cap1", capacity=1), reg("edge-https", url="https://127.0.0.1:9"),
              reg("edge-nolabels", labels={}), reg("edge-url", url="http://" + "h" * 1000 + ":9")]
        try:
            for body in ok:
                r = self.post_node(body)
                self.assertEqual(r.status, 201, "POST /v1/nodes %s: %r" % (json.dumps(body)[:100], r))
        finally:
            for body in ok:
                self.c.coord.request("DELETE", "/v1/nodes/" + body["id"])


class JoinTest(ClusterTestCase):
    def test_node_with_wrong_token_never_listed(self):
        c = self.cluster()
        bad = c.add_node(token="wrong-" + CLUSTER_TOKEN, wait=False, name="wrong")
        users = c.add_node(token=USER_TOKEN, wait=False, name="users-token")
        good = c.add_node(name="good")
        # Several heartbeat intervals and more than a node timeout.
        end = time.monotonic() + c.node_timeout * 1.5
        while time.monotonic() < end:
            ids = [d["id"] for d in c.list_nodes()]
            self.assertNotIn(bad.node_id, ids, "a node with a wrong cluster token was listed")
            self.assertNotIn(users.node_id, ids, "a node holding the users' token was listed")
            time.sleep(0.1)
        self.assertEqual([d["id"] for d in c.list_nodes()], [good.node_id])
        # No remote job goes there.
        jobs = [c.submit({"command": ["true"]}) for _ in range(4)]
        for j in jobs:
            self.assertEqual(c.wait_job(j["id"])["node"], good.node_id)
        self.assertEqual(bad.remote_copies(jobs[0]["id"]), [])

    def test_join_without_cluster_token_exits_2(self):
        c = self.cluster()
        j = self.track(Member("--join", c.join_url(), env={"JOBD_CLUSTER_TOKEN": None}, start=False))
        j.spawn()
        rc = j.wait_exit(10)
        self.assertEqual(rc, 2, "jobd --join without a cluster token: exit status %r; log:\n%s" % (rc, j.log()))
        self.assertIn("cluster", j.log().lower(), "the message says what is missing: %r" % j.log())
        self.assertEqual(c.list_nodes(), [])

    def test_bad_node_flags_exit_2(self):
        c = self.cluster()
        for flags in (["--capacity", "0"], ["--capacity", "x"], ["--capacity", "100001"],
                      ["--label", "novalue"], ["--label", "a b=c"], ["--label", "=v"],
                      ["--join", "ftp://127.0.0.1:1"], ["--join", "not-a-url"],
                      ["--advertise", "ftp://127.0.0.1:1"], ["--node-timeout", "0"], ["--node-timeout", "x"],
                      # What POST /v1/nodes would refuse is refused at start.
                      ["--advertise", "http://127.0.0.1:1/"], ["--advertise", "http://127.0.0.1:1/?x=1"],
                      ["--label", "k=" + "v" * 257], ["--label", "k" * 129 + "=v"]):
            args = flags if flags[0] == "--join" else ["--join", c.join_url()] + flags
            j = self.track(Member(*args, env={"JOBD_CLUSTER_TOKEN": CLUSTER_TOKEN}, start=False))
            j.spawn()
            rc = j.wait_exit(10)
            self.assertEqual(rc, 2, "jobd %s: exit status %r; log:\n%s" % (" ".join(args), rc, j.log()[-1000:]))
            self.assertTrue(j.log().strip(), "jobd %s exits with a message" % " ".join(args))
            j.close()
        self.assertEqual(c.list_nodes(), [])

    def test_refused_configurations_exit_2(self):
        cases = [
            # node options without --join
            (["--label", "a=b"], {"JOBD_CLUSTER_TOKEN": CLUSTER_TOKEN}, None),
            (["--capacity", "2"], {"JOBD_CLUSTER_TOKEN": CLUSTER_TOKEN}, None),
            (["--advertise", "http://127.0.0.1:1"], {"JOBD_CLUSTER_TOKEN": CLUSTER_TOKEN}, None),
            # the cluster token must not be the users' token
            ([], {"JOBD_CLUSTER_TOKEN": USER_TOKEN}, USER_TOKEN),
        ]
        for args, env, token in cases:
            j = self.track(Member(*args, env=env, token=token, start=False))
            j.spawn()
            rc = j.wait_exit(10)
            self.assertEqual(rc, 2, "jobd %s %s: exit status %r; log:\n%s" % (
                " ".join(args), "(same tokens)" if token else "", rc, j.log()[-1000:]))
            self.assertTrue(j.log().strip())
            self.assertNotIn(USER_TOKEN, j.log(), "a token in jobd's message")
            j.close()

    def test_coordinator_without_cluster_token(self):
        j = self.track(Member(env={"JOBD_CLUSTER_TOKEN": None}, token=USER_TOKEN, start=False))
        j.start()
        for tok, why in ((CLUSTER_TOKEN, "some cluster token"), (USER_TOKEN, "the users' token")):
            r = j.request("POST", "/v1/nodes", reg("x1"), headers=bearer(tok))
            self.assertProblem(r, 403, msg="POST /v1/nodes on a jobd without a cluster token, with %s" % why)
        r = j.request("POST", "/v1/jobs", {"command": ["true"], "executor": "remote"})
        self.assertProblem(r, 400, "executor")

    def test_node_takes_the_cluster_token_and_its_users_token(self):
        c = self.cluster()
        n = c.add_node(name="tokened", user_token="node-users-" + USER_TOKEN)
        for tok, want in ((CLUSTER_TOKEN, 200), ("node-users-" + USER_TOKEN, 200), (USER_TOKEN, 401),
                          ("nope", 401), (None, 401)):
            r = n.request("GET", "/v1/jobs", headers=bearer(tok))
            self.assertEqual(r.status, want, "GET /v1/jobs on a node with token %r: %r" % (tok and tok[:12], r))
        job = c.submit({"command": ["echo", "hi"]})
        done = c.wait_job(job["id"])
        self.assertEqual(done["state"], "succeeded", done)
        self.assertEqual(c.coord.output(job["id"]), b"hi\n")

    def test_node_auth_by_address(self):
        # Without a users' token, a node on loopback is as open as any jobd there, while a
        # node on a wildcard address takes only the cluster token.
        c = self.cluster()
        lo = c.add_node(name="loopback")
        wild = c.add_node(name="wildcard", listen="0.0.0.0:0",
                          args=["--advertise", "http://127.0.0.1:0"], wait=False)
        for tok, want in ((None, 200), (CLUSTER_TOKEN, 200), ("nope", 200)):
            r = lo.request("GET", "/v1/jobs", headers=bearer(tok))
            self.assertEqual(r.status, want, "loopback node, bearer %r: %r" % (tok and tok[:8], r))
        for tok, want in ((None, 401), ("nope", 401), (USER_TOKEN, 401), (CLUSTER_TOKEN, 200)):
            r = wild.request("GET", "/v1/jobs", headers=bearer(tok))
            self.assertEqual(r.status, want, "0.0.0.0 node, bearer %r: %r" % (tok and tok[:8], r))
        self.assertEqual(wild.request("GET", "/healthz", auth=False).status, 200)

    def test_open_coordinator_still_guards_registration(self):
        # A coordinator without a users' token (loopback, open API) still wants the
        # cluster token to register a node.
        c = self.cluster(user_token=None)
        n = c.add_node(name="A")
        r = c.coord.request("GET", "/v1/nodes")
        self.assertEqual(r.status, 200, r)
        self.assertEqual([d["id"] for d in r.json["nodes"]], [n.node_id])
        for tok in (None, "nope", USER_TOKEN):
            r = c.coord.request("POST", "/v1/nodes", reg("open-1"), headers=bearer(tok))
            self.assertProblem(r, 401, msg="POST /v1/nodes on an open coordinator with bearer %r" % (tok and tok[:8]))
        job = c.submit({"command": ["echo", "open"]})
        self.assertEqual(c.wait_job(job["id"])["node"], n.node_id)

    def test_token_from_file_and_env(self):
        c = self.cluster(token_via="file")
        a = c.add_node(token_via="file", name="file")
        b = c.add_node(token_via="env", name="env")
        ids = [d["id"] for d in c.list_nodes()]
        self.assertEqual(sorted(ids), sorted([a.node_id, b.node_id]))


class TlsClusterTest(ClusterTestCase):
    """A coordinator and a node both serving HTTPS (--tls-cert), each trusting the
    other's certificate through --cacert; a node without --cacert cannot join."""

    @classmethod
    def setUpClass(cls):
        if not shutil.which("openssl"):
            raise unittest.SkipTest("needs the openssl command (Debian package openssl)")
        cls.pki = tempfile.mkdtemp(prefix="jobd-ct-pki-")
        cls.addClassCleanup(shutil.rmtree, cls.pki, True)
        cls.cert = os.path.join(cls.pki, "c.pem")
        cls.key = os.path.join(cls.pki, "c.key")
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
             "-nodes", "-keyout", cls.key, "-out", cls.cert, "-days", "2", "-subj", "/CN=127.0.0.1",
             "-addext", "subjectAltName=IP:127.0.0.1"],
            check=True, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=60)
        os.chmod(cls.key, 0o600)
        cls.ctx = ssl.create_default_context(cafile=cls.cert)

    def test_https_coordinator_and_node(self):
        tls = ["--tls-cert", self.cert, "--tls-key", self.key, "--cacert", self.cert]
        c = self.cluster(args=tls, tls_ctx=self.ctx)
        self.assertTrue(c.join_url().startswith("https://"), c.join_url())
        n = c.add_node({"tls": "yes"}, args=tls, tls_ctx=self.ctx, name="tls")
        self.assertEqual(c.node_doc(n)["url"], "https://127.0.0.1:%d" % n.port,
                         "the default --advertise is https with --tls-cert")
        gate = os.path.join(self.tmp, "gate")
        job = c.submit({"shell": "echo over-tls; while [ ! -e %s ]; do sleep 0.05; done; echo done" % gate,
                        "timeout": 60})
        try:
            c.coord.wait_output(job["id"], b"over-tls\n")
        finally:
            with open(gate, "w"):
                pass
        done = c.wait_job(job["id"])
        self.assertEqual((done["state"], done["node"]), ("succeeded", n.node_id), done)
        self.assertEqual(c.coord.output(job["id"]), b"over-tls\ndone\n")
        # A node that does not trust the coordinator's certificate never joins.
        untrusting = c.add_node(args=["--tls-cert", self.cert, "--tls-key", self.key], tls_ctx=self.ctx,
                                wait=False, name="no-cacert")
        end = time.monotonic() + c.node_timeout * 1.5
        while time.monotonic() < end:
            self.assertNotIn(untrusting.node_id, [d["id"] for d in c.list_nodes()],
                             "a node joined over an unverified TLS connection")
            time.sleep(0.1)


if __name__ == "__main__":
    clustertest.main()
