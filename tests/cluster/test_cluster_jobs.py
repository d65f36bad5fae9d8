#!/usr/bin/env python3
"""Cluster tests (issue 4): remote jobs on one coordinator with two nodes.

Remote commands and tasks end with the right state, exit code, signal,
output and result on the coordinator, naming their node; what the node got
(labels jobd.*, no executor "remote", no retries); node_selector routing;
least-running-first spread; output followed live from the coordinator; a
cancel relayed to the node; a timeout applied.

Run alone with:
    JOBD_BIN=build/jobd python3 tests/cluster/test_cluster_jobs.py
"""

import json
import os
import sys
import tempfile
import shutil
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import clustertest  # noqa: E402
from clustertest import (  # noqa: E402
    FINAL_STATES,
    INSTANCE_ID_RE,
    ClusterTestCase,
    Cluster,
    gated_shell,
    open_gate,
)
from jobdtest import parse_time  # noqa: E402


class RemoteJobsTest(ClusterTestCase):
    """One coordinator, node A (zone=a, pool=x) and node B (zone=b, pool=x),
    capacity 4 each, shared by the tests of the class (each test ends its jobs)."""

    @classmethod
    def setUpClass(cls):
        cls.c = Cluster(None)
        cls.addClassCleanup(cls.c.close)
        cls.a = cls.c.add_node({"zone": "a", "pool": "x"}, capacity=4, name="A")
        cls.b = cls.c.add_node({"zone": "b", "pool": "x"}, capacity=4, name="B", token_via="file")
        cls._shared_jobds = [cls.c.coord, cls.a, cls.b]
        cls.ctmp = tempfile.mkdtemp(prefix="jobd-ct-jobs-")
        cls.addClassCleanup(shutil.rmtree, cls.ctmp, True)

    def setUp(self):
        super().setUp()
        # No job of an earlier test still holds a slot.
        end = time.monotonic() + 10
        while time.monotonic() < end:
            if all(d["running"] == 0 for d in self.c.list_nodes()):
                break
            time.sleep(0.05)

    def run_remote(self, spec, timeout=20):
        job = self.c.submit(spec)
        self.assertEqual(job["executor"], "remote", job)
        self.assertIn(job["state"], ("queued", "running"), job)
        return self.c.wait_job(job["id"], timeout)

    def assertRanOnANode(self, job):
        self.assertIn(job["node"], self.c.node_ids(), "`node` names one of the nodes: %s" % json.dumps(job))

    # -- nodes

    def test_nodes_listed_ready(self):
        r = self.c.coord.request("GET", "/v1/nodes")
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.ctype, "application/json", r)
        docs = r.json["nodes"]
        ids = [d["id"] for d in docs]
        self.assertEqual(ids, sorted(ids), "GET /v1/nodes lists nodes in id order")
        self.assertEqual(sorted(ids), sorted(self.c.node_ids()))
        for n, labels in ((self.a, {"zone": "a", "pool": "x"}), (self.b, {"zone": "b", "pool": "x"})):
            self.assertRegex(n.node_id, INSTANCE_ID_RE, "a node registers under its instance id")
            d = [x for x in docs if x["id"] == n.node_id][0]
            self.assertNodeShape(d)
            self.assertEqual(d["state"], "ready", d)
            self.assertEqual(d["labels"], labels, d)
            self.assertEqual(d["capacity"], 4, d)
            self.assertEqual(d["running"], 0, d)
            self.assertEqual(d["url"], "http://127.0.0.1:%d" % n.port, "default --advertise on loopback: %s" % d)
            one = self.c.node_doc(n)
            self.assertEqual(one["id"], n.node_id)
            self.assertEqual(one["labels"], labels)
        # last_seen moves: the nodes heartbeat well within the node timeout.
        before = {d["id"]: parse_time(d["last_seen"]) for d in docs}
        time.sleep(self.c.node_timeout * 0.75)
        for d in self.c.list_nodes():
            self.assertGreater(parse_time(d["last_seen"]), before[d["id"]], "no heartbeat from %s" % d)
            self.assertEqual(d["state"], "ready", d)

    def test_idle_nodes_never_seem_down(self):
        # Idle nodes (nothing to poll but the blocking query, which waits) stay ready over
        # several node timeouts, and last_seen never lags by more than a node timeout.
        end = time.monotonic() + 2.5 * self.c.node_timeout
        worst = 0.0
        while time.monotonic() < end:
            t_now = time.time()
            for d in self.c.list_nodes():
                self.assertEqual(d["state"], "ready", d)
                worst = max(worst, t_now - parse_time(d["last_seen"]))
            time.sleep(0.1)
        self.assertLess(worst, self.c.node_timeout, "last_seen lagged %.2fs" % worst)
        clustertest.note("largest last_seen lag of idle nodes: %.2fs", worst)

    def test_unknown_node_404(self):
        c = self.c.coord
        for method, path in (("GET", "/v1/nodes/nope"), ("POST", "/v1/nodes/nope/drain"),
                             ("DELETE", "/v1/nodes/nope")):
            r = c.request(method, path)
            self.assertProblem(r, 404, msg="%s %s" % (method, path))

    # -- commands

    def test_remote_command_succeeds(self):
        job = self.run_remote({"command": ["sh", "-c", "echo out-line; echo err-line >&2"],
                               "name": "remote-ok", "labels": {"team": "t1"}, "node_selector": {"pool": "x"},
                               "retries": 2, "retry_delay": 3, "retry_exit_codes": [9]})
        self.assertJobShape(job)
        self.assertEqual(job["state"], "succeeded", job)
        self.assertEqual(job["exit_code"], 0, job)
        self.assertIsNone(job["signal"], job)
        self.assertIsNone(job["error"], job)
        self.assertEqual(job["executor"], "remote", job)
        self.assertEqual(job["attempts"], 1, job)
        self.assertEqual(job["labels"], {"team": "t1"}, "the coordinator's job keeps its own labels")
        self.assertRanOnANode(job)
        self.assertIsNone(job.get("waiting"), job)
        self.assertIsNotNone(job["started_at"], job)
        self.assertIsNotNone(job["finished_at"], job)
        self.assertLessEqual(parse_time(job["started_at"]), parse_time(job["finished_at"]))
        self.assertEqual(self.c.coord.output(job["id"]), b"out-line\n")
        self.assertEqual(self.c.coord.output(job["id"], "stderr"), b"err-line\n")
        self.assertEqual(job["stdout_bytes"], 9, job)
        self.assertEqual(job["stderr_bytes"], 9, job)

        # What the node got: the spec with the coordinator's labels added, run locally.
        node = self.c.by_id(job["node"])
        copies = node.remote_copies(job["id"])
        self.assertEqual(len(copies), 1, copies)
        rj = copies[0]
        coord_id = self.c.coord.instance_id()
        self.assertRegex(coord_id, INSTANCE_ID_RE)
        self.assertEqual(rj["labels"].get("jobd.coordinator"), coord_id, rj)
        self.assertEqual(rj["labels"].get("jobd.job"), job["id"], rj)
        self.assertEqual(rj["labels"].get("jobd.attempt"), "1", rj)
        self.assertEqual(rj["labels"].get("team"), "t1", rj)
        self.assertEqual(rj["executor"], "process", "executor remote is dropped: %s" % rj)
        self.assertEqual(rj["command"], ["sh", "-c", "echo out-line; echo err-line >&2"], rj)
        self.assertEqual(rj["state"], "succeeded", rj)
        self.assertEqual(rj["retries"], 0, "retries are the coordinator's: %s" % rj)
        self.assertNotEqual(rj["retry_exit_codes"], [9], rj)
        self.assertNotEqual(rj["retry_delay"], 3, rj)
        self.assertFalse(rj["node_selector"], "node_selector is dropped: %s" % rj)
        self.assertEqual(rj["name"], "remote-ok", rj)
        self.assertIsNone(rj.get("node"), "the node runs it itself: %s" % rj)
        r = node.request("GET", "/v1/jobs/%s/stdout" % rj["id"], headers=node.ctoken_headers())
        self.assertEqual((r.status, r.body), (200, b"out-line\n"), "the node's own copy of the output")
        # The other node knows nothing of it.
        other = self.a if node is self.b else self.b
        self.assertEqual(other.remote_copies(job["id"]), [])

    def test_reserved_labels_are_the_coordinators(self):
        # A spec that sets jobd.* labels itself cannot pass for another job or attempt on the node.
        job = self.run_remote({"command": ["echo", "spoof"], "labels": {"jobd.job": "j999999", "jobd.attempt": "7",
                                                                        "jobd.coordinator": "n0000000000000000"}})
        self.assertEqual(job["state"], "succeeded", job)
        node = self.c.by_id(job["node"])
        copies = node.remote_copies(job["id"])
        self.assertEqual(len(copies), 1, copies)
        labels = copies[0]["labels"]
        self.assertEqual((labels["jobd.job"], labels["jobd.attempt"], labels["jobd.coordinator"]),
                         (job["id"], "1", self.c.coord.instance_id()), labels)

    def test_remote_command_exit_code(self):
        job = self.run_remote({"shell": "echo partial; echo oops >&2; exit 3"})
        self.assertEqual(job["state"], "failed", job)
        self.assertEqual(job["exit_code"], 3, job)
        self.assertIsNone(job["signal"], job)
        self.assertRanOnANode(job)
        self.assertEqual(self.c.coord.output(job["id"]), b"partial\n")
        self.assertEqual(self.c.coord.output(job["id"], "stderr"), b"oops\n")

    def test_remote_command_killed_by_signal(self):
        job = self.run_remote({"shell": "echo before; kill -KILL $$"})
        self.assertEqual(job["state"], "failed", job)
        self.assertIsNone(job["exit_code"], job)
        self.assertEqual(job["signal"], "SIGKILL", job)
        self.assertEqual(self.c.coord.output(job["id"]), b"before\n")

    def test_remote_command_not_found(self):
        job = self.run_remote({"command": ["/nonexistent/jobd-cluster-test"]})
        self.assertEqual(job["state"], "failed", job)
        self.assertIsNone(job["exit_code"], job)
        self.assertIsInstance(job["error"], str, job)
        self.assertTrue(job["error"], job)

    def test_remote_env_stdin_cwd(self):
        job = self.run_remote({"command": ["sh", "-c", "cat; echo \"$FOO\"; pwd"], "stdin": "in-put\n",
                               "env": {"FOO": "b a r"}, "cwd": self.ctmp})
        self.assertEqual(job["state"], "succeeded", job)
        self.assertEqual(self.c.coord.output(job["id"]),
                         ("in-put\nb a r\n%s\n" % os.path.realpath(self.ctmp)).encode())

    def test_remote_timeout(self):
        t0 = time.monotonic()
        job = self.run_remote({"command": ["sleep", "30"], "timeout": 0.5, "kill_grace": 1})
        self.assertEqual(job["state"], "timed_out", job)
        self.assertLess(time.monotonic() - t0, 10, "the timeout was not applied on the node")

    def test_remote_binary_output_intact(self):
        # 300 KiB of every byte value, copied from the node byte for byte.
        job = self.run_remote({"shell": "i=0; while [ $i -lt 1200 ]; do printf '%s'; i=$((i+1)); done"
                               % "".join("\\%03o" % b for b in range(256))})
        self.assertEqual(job["state"], "succeeded", job)
        out = self.c.coord.output(job["id"])
        self.assertEqual(len(out), 256 * 1200)
        self.assertEqual(out, bytes(range(256)) * 1200)
        self.assertEqual(job["stdout_bytes"], 256 * 1200, job)

    def test_retries_each_attempt_numbered(self):
        # The coordinator retries (the node gets no retries): attempts 1, 2, 3, each its own job on a node.
        counter = os.path.join(self.ctmp, "retry-runs")
        job = self.run_remote({"shell": "echo run >> %s; n=$(wc -l < %s); echo try$n; [ $n -ge 3 ] || exit 7"
                               % (counter, counter), "retries": 2, "retry_delay": 0.1})
        self.assertEqual(job["state"], "succeeded", job)
        self.assertEqual(job["attempts"], 3, job)
        self.assertEqual(self.c.coord.output(job["id"]), b"try3\n", "the output is the last attempt's")
        with open(counter) as f:
            self.assertEqual(len(f.read().splitlines()), 3)
        ran = [(n, x) for n in (self.a, self.b) for x in n.remote_copies(job["id"])]
        got = sorted((x["labels"]["jobd.attempt"], x["state"], x["exit_code"]) for _, x in ran)
        self.assertEqual(got, [("1", "failed", 7), ("2", "failed", 7), ("3", "succeeded", 0)], ran)
        last = [n for n, x in ran if x["labels"]["jobd.attempt"] == "3"][0]
        self.assertEqual(job["node"], last.node_id, "`node` names the node of the last attempt")

    def test_retry_exit_codes_honored(self):
        job = self.run_remote({"shell": "exit 6", "retries": 3, "retry_delay": 0.1, "retry_exit_codes": [5]})
        self.assertEqual(job["state"], "failed", job)
        self.assertEqual(job["exit_code"], 6, job)
        self.assertEqual(job["attempts"], 1, "exit 6 is not in retry_exit_codes [5]: %s" % json.dumps(job))
        job = self.run_remote({"shell": "exit 5", "retries": 1, "retry_delay": 0.1, "retry_exit_codes": [5]})
        self.assertEqual((job["state"], job["exit_code"], job["attempts"]), ("failed", 5, 2), job)

    def test_output_cap_carried_from_the_node(self):
        job = self.run_remote({"shell": "i=0; while [ $i -lt 1000 ]; do echo line-$i-0123456789; i=$((i+1)); done",
                               "limits": {"output_bytes": 1024}})
        self.assertEqual(job["state"], "succeeded", job)
        full = sum(len("line-%d-0123456789\n" % i) for i in range(1000))
        self.assertTrue(job["stdout_truncated"], job)
        self.assertEqual(job["stdout_bytes"], full, "stdout_bytes counts everything the job wrote: %s" % job)
        out = self.c.coord.output(job["id"])
        node = self.c.by_id(job["node"])
        rj = node.remote_copies(job["id"])[0]
        r = node.request("GET", "/v1/jobs/%s/stdout" % rj["id"], headers=node.ctoken_headers())
        self.assertEqual(out, r.body, "the coordinator holds what the node kept")
        self.assertLessEqual(len(out), 1024 + 200, len(out))
        self.assertTrue(out.startswith(b"line-0-0123456789\n"), out[:40])
        self.assertTrue(out.endswith(b"line-999-0123456789\n"), out[-40:])

    def test_node_version_is_its_jobd_version(self):
        for n in (self.a, self.b):
            r = n.request("GET", "/healthz", auth=False)
            self.assertEqual(r.status, 200, r)
            self.assertEqual(self.c.node_doc(n)["version"], r.json["version"])

    # -- tasks

    def test_tasks_listed(self):
        r = self.c.coord.request("GET", "/v1/tasks")
        self.assertEqual(r.status, 200, r)
        names = [t["name"] for t in r.json["tasks"]]
        for t in ("echo", "sleep"):
            self.assertIn(t, names)

    def test_remote_task_echo(self):
        args = {"a": [1, 2.5, None, True], "b": "x\u00e9\n\"", "c": {"d": {}}}
        job = self.run_remote({"task": "echo", "args": args})
        self.assertEqual(job["state"], "succeeded", job)
        self.assertEqual(job["exit_code"], 0, job)
        self.assertEqual(job["result"], args, job)
        self.assertIsNone(job["error"], job)
        self.assertRanOnANode(job)
        out = self.c.coord.output(job["id"])
        self.assertEqual(json.loads(out), args)
        copies = self.c.by_id(job["node"]).remote_copies(job["id"])
        self.assertEqual(len(copies), 1, copies)
        self.assertEqual(copies[0]["executor"], "thread", "a task runs on the node's default executor")
        self.assertEqual(copies[0]["result"], args)

    def test_remote_task_sleep(self):
        job = self.run_remote({"task": "sleep", "args": {"seconds": 0.3}})
        self.assertEqual(job["state"], "succeeded", job)
        self.assertRanOnANode(job)
        took = parse_time(job["finished_at"]) - parse_time(job["started_at"])
        self.assertGreaterEqual(took, 0.28, job)
        self.assertLess(took, 5, job)

    def test_remote_task_refused_args(self):
        # Bad args of a builtin task: refused by the coordinator (400 naming args.seconds),
        # or by the node, and then the job fails saying so.
        r = self.c.coord.request("POST", "/v1/jobs", {"task": "sleep", "args": {"seconds": "x"},
                                                      "executor": "remote"})
        if r.status == 400:
            self.assertProblem(r, 400, "args.seconds")
            return
        self.assertEqual(r.status, 201, r)
        done = self.c.wait_job(r.json["id"])
        self.assertEqual(done["state"], "failed", done)
        self.assertIn("seconds", done["error"] or "", done)

    # -- routing

    def test_node_selector_routing(self):
        jobs = []
        for zone, node in (("a", self.a), ("b", self.b)):
            for i in range(3):
                j = self.c.submit({"command": ["echo", zone, str(i)], "node_selector": {"zone": zone}})
                self.assertEqual(j["node_selector"], {"zone": zone}, j)
                jobs.append((j["id"], node, zone, i))
        anyx = [self.c.submit({"command": ["true"], "node_selector": {"pool": "x"}})["id"] for _ in range(2)]
        both = self.c.submit({"command": ["true"], "node_selector": {"pool": "x", "zone": "b"}})
        for jid, node, zone, i in jobs:
            done = self.c.wait_job(jid)
            self.assertEqual(done["state"], "succeeded", done)
            self.assertEqual(done["node"], node.node_id, "node_selector zone=%s: %s" % (zone, json.dumps(done)))
            self.assertEqual(self.c.coord.output(jid), ("%s %d\n" % (zone, i)).encode())
        for jid in anyx:
            done = self.c.wait_job(jid)
            self.assertEqual(done["state"], "succeeded", done)
            self.assertRanOnANode(done)
        done = self.c.wait_job(both["id"])
        self.assertEqual(done["node"], self.b.node_id, done)

    def test_least_running_first(self):
        gate = os.path.join(self.ctmp, "spread-gate")
        ids = [self.c.submit({"shell": gated_shell(gate)})["id"] for _ in range(2)]
        try:
            runs = [self.c.wait_running(i) for i in ids]
            self.assertNotEqual(runs[0]["node"], runs[1]["node"],
                                "two jobs on two idle nodes go to different nodes: %s" % [r["node"] for r in runs])
            docs = {d["id"]: d for d in self.c.list_nodes()}
            self.assertEqual(docs[self.a.node_id]["running"], 1, docs)
            self.assertEqual(docs[self.b.node_id]["running"], 1, docs)
            # Two more: one each again.
            ids2 = [self.c.submit({"shell": gated_shell(gate)})["id"] for _ in range(2)]
            ids += ids2
            runs2 = [self.c.wait_running(i) for i in ids2]
            self.assertNotEqual(runs2[0]["node"], runs2[1]["node"], [r["node"] for r in runs2])
        finally:
            open_gate(gate)
        for i in ids:
            self.assertEqual(self.c.wait_job(i)["state"], "succeeded")
        docs = self.c.list_nodes()
        end = time.monotonic() + 5
        while any(d["running"] for d in docs) and time.monotonic() < end:
            time.sleep(0.05)
            docs = self.c.list_nodes()
        self.assertEqual([d["running"] for d in docs], [0, 0], "running counts go back to 0: %s" % docs)

    # -- output

    def test_output_followed_live(self):
        gate = os.path.join(self.ctmp, "follow-gate")
        job = self.c.submit({"shell": gated_shell(gate, "first-line", "last-line")})
        t0 = time.monotonic()
        conn, resp = self.c.coord.stream("GET", "/v1/jobs/%s/stdout?follow=true" % job["id"], timeout=20)
        try:
            self.assertEqual(resp.status, 200)
            got = b""
            while b"first-line\n" not in got and time.monotonic() - t0 < 10:
                chunk = resp.read1(65536)
                if not chunk:
                    break
                got += chunk
            self.assertEqual(got, b"first-line\n", "the remote job's first line, followed on the coordinator")
            state = self.c.coord.job(job["id"])["state"]
            self.assertEqual(state, "running", "the first line came while the remote job ran")
            open_gate(gate)
            rest = b""
            while time.monotonic() - t0 < 20:
                chunk = resp.read1(65536)
                if not chunk:
                    break
                rest += chunk
            self.assertEqual(got + rest, b"first-line\nlast-line\n")
        finally:
            conn.close()
            open_gate(gate)
        done = self.c.wait_job(job["id"])
        self.assertEqual(done["state"], "succeeded", done)
        # A follow from an offset of a finished remote job.
        conn, resp = self.c.coord.stream("GET", "/v1/jobs/%s/stdout?follow=true&offset=11" % job["id"])
        try:
            self.assertEqual(resp.status, 200)
            self.assertEqual(resp.read(), b"last-line\n")
        finally:
            conn.close()

    def test_output_grows_while_running(self):
        # Plain GETs (no follow) see a remote job's output grow before it ends.
        gate = os.path.join(self.ctmp, "grow-gate")
        job = self.c.submit({"shell": "echo one; sleep 0.3; echo two; " + gated_shell(gate, "three", "four")})
        try:
            out = self.c.coord.wait_output(job["id"], b"one\ntwo\nthree\n", timeout=10)
            self.assertEqual(out, b"one\ntwo\nthree\n")
            self.assertEqual(self.c.coord.job(job["id"])["state"], "running")
        finally:
            open_gate(gate)
        self.assertEqual(self.c.wait_job(job["id"])["state"], "succeeded")
        self.assertEqual(self.c.coord.output(job["id"]), b"one\ntwo\nthree\nfour\n")

    # -- cancel

    def _cancel_relayed(self, spec):
        job = self.c.submit(spec)
        run = self.c.wait_running(job["id"])
        node = self.c.by_id(run["node"])
        copies = node.remote_copies(job["id"])
        self.assertEqual(len(copies), 1, copies)
        self.assertIn(copies[0]["state"], ("queued", "running"), copies)
        t0 = time.monotonic()
        r = self.c.coord.request("POST", "/v1/jobs/%s/cancel" % job["id"])
        self.assertEqual(r.status, 202, r)
        done = self.c.wait_job(job["id"], 15)
        self.assertEqual(done["state"], "cancelled", done)
        self.assertEqual(done["node"], node.node_id, done)
        # And on the node.
        end = time.monotonic() + 10
        rj = None
        while time.monotonic() < end:
            rj = node.remote_copies(job["id"])[0]
            if rj["state"] in FINAL_STATES:
                break
            time.sleep(0.05)
        self.assertEqual(rj["state"], "cancelled", "the cancel was relayed to the node: %s" % json.dumps(rj))
        self.assertLess(time.monotonic() - t0, 8)
        r = self.c.coord.request("POST", "/v1/jobs/%s/cancel" % job["id"])
        self.assertProblem(r, 409)
        return done

    def test_cancel_relayed_command(self):
        self._cancel_relayed({"shell": "echo up; exec sleep 60", "kill_grace": 1})

    def test_cancel_relayed_task(self):
        self._cancel_relayed({"task": "sleep", "args": {"seconds": 60}})

    def test_cancel_queued_remote_job(self):
        # A remote job no node matches is cancelled at once, no node involved.
        job = self.c.submit({"command": ["true"], "node_selector": {"zone": "nowhere"}})
        r = self.c.coord.request("POST", "/v1/jobs/%s/cancel" % job["id"])
        self.assertEqual(r.status, 202, r)
        self.assertEqual(r.json["state"], "cancelled", r)
        self.assertIsNone(r.json["node"], r)

    # -- many at once

    def test_many_small_jobs(self):
        ids = [self.c.submit({"command": ["echo", str(i)]})["id"] for i in range(40)]
        seen = set()
        for i, jid in enumerate(ids):
            done = self.c.wait_job(jid, 30)
            self.assertEqual(done["state"], "succeeded", done)
            self.assertEqual(self.c.coord.output(jid), ("%d\n" % i).encode())
            seen.add(done["node"])
        self.assertEqual(seen, set(self.c.node_ids()), "40 jobs over two nodes use both")


if __name__ == "__main__":
    clustertest.main()
