#!/usr/bin/env python3
"""Cluster tests (issue 4): scheduling over nodes.

- a node_selector nobody matches: the job waits queued with a `waiting`
  reason, and runs once a matching node joins;
- --capacity 1: never more than one job at once on that node (GET /v1/nodes
  `running`, the jobs' documents, and the node's own start/finish times);
- node drain: 202, state draining, no new jobs, running ones finish;
  DELETE /v1/nodes/{id}: 409 while it runs a job, 204 after, then 404.

Run alone with:
    JOBD_BIN=build/jobd python3 tests/cluster/test_cluster_sched.py
"""

import json
import os
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import clustertest  # noqa: E402
from clustertest import ClusterTestCase, gated_shell, open_gate  # noqa: E402
from jobdtest import parse_time  # noqa: E402


def free_port():
    """A loopback port that was free a moment ago."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class SelectorTest(ClusterTestCase):
    def test_unmatched_selector_waits_then_runs_on_a_new_node(self):
        c = self.cluster()
        a = c.add_node({"zone": "a"}, capacity=2, name="A")
        job = c.submit({"command": ["echo", "gpu-job"], "node_selector": {"gpu": "yes"}})
        other = c.submit({"command": ["echo", "plain"]})
        # The one without a selector runs at once; the gpu one waits, saying why.
        self.assertEqual(c.wait_job(other["id"])["node"], a.node_id)
        time.sleep(0.3)
        q = c.coord.job(job["id"])
        self.assertEqual(q["state"], "queued", q)
        self.assertIsNone(q["node"], q)
        self.assertIsInstance(q.get("waiting"), str, "a queued remote job says why it waits: %s" % json.dumps(q))
        self.assertIn("node_selector", q["waiting"], q)
        self.assertIn("gpu", q["waiting"], q)
        # Still there after a node timeout or two (and not failed).
        time.sleep(c.node_timeout + 0.5)
        q = c.coord.job(job["id"])
        self.assertEqual(q["state"], "queued", q)
        # A node with gpu=yes joins: the job runs there.
        g = c.add_node({"gpu": "yes", "zone": "b"}, capacity=1, name="G")
        done = c.wait_job(job["id"], 20)
        self.assertEqual(done["state"], "succeeded", done)
        self.assertEqual(done["node"], g.node_id, done)
        self.assertIsNone(done.get("waiting"), "`waiting` is null once dispatched: %s" % json.dumps(done))
        self.assertEqual(c.coord.output(job["id"]), b"gpu-job\n")

    def test_waiting_listed_in_job_list(self):
        c = self.cluster()
        c.add_node({"zone": "a"}, name="A")
        job = c.submit({"command": ["true"], "node_selector": {"zone": "z"}, "name": "waits"})
        time.sleep(0.3)
        ans = c.coord.list(name="waits")
        self.assertEqual([j["id"] for j in ans["jobs"]], [job["id"]])
        self.assertIn("node_selector", ans["jobs"][0].get("waiting") or "", ans)
        r = c.coord.request("POST", "/v1/jobs/%s/cancel" % job["id"])
        self.assertEqual(r.status, 202, r)

    def test_unplaceable_jobs_do_not_hold_up_others(self):
        # Many high-priority jobs no node can take (one batch) and a few lower-priority ones
        # that can run: the latter run, and every waiting one says why.
        c = self.cluster()
        c.add_node({"zone": "a"}, capacity=4, name="A")
        r = c.coord.request("POST", "/v1/batches", {"jobs": [
            {"command": ["true"], "executor": "remote", "priority": 100,
             "node_selector": {"zone": "mars"}} for _ in range(1000)]})
        self.assertEqual(r.status, 201, r)
        runnable = [c.submit({"command": ["echo", "run-%d" % i], "node_selector": {"zone": "a"}})
                    for i in range(40)]
        for job in runnable:
            self.assertEqual(c.wait_job(job["id"], 30)["state"], "succeeded")
        r = c.coord.request("GET", "/v1/jobs?state=queued&limit=1000")
        self.assertEqual(r.status, 200, r)
        queued = r.json["jobs"]
        self.assertEqual(len(queued), 1000)
        reasons = {q["waiting"] for q in queued}
        self.assertEqual(reasons, {'no ready node matches node_selector {"zone":"mars"}'}, reasons)

    def test_no_nodes_at_all(self):
        c = self.cluster()
        job = c.submit({"command": ["echo", "late"]})
        time.sleep(0.3)
        q = c.coord.job(job["id"])
        self.assertEqual(q["state"], "queued", q)
        self.assertIsInstance(q.get("waiting"), str, q)
        self.assertTrue(q["waiting"], q)
        n = c.add_node(name="late")
        done = c.wait_job(job["id"], 20)
        self.assertEqual(done["state"], "succeeded", done)
        self.assertEqual(done["node"], n.node_id)
        self.assertEqual(c.coord.output(job["id"]), b"late\n")

    def test_local_jobs_unaffected(self):
        # A coordinator still runs its own (non-remote) jobs itself.
        c = self.cluster()
        c.add_node(name="A")
        job = c.coord.submit({"command": ["echo", "local"]})
        done = c.wait_job(job["id"])
        self.assertEqual(done["state"], "succeeded", done)
        self.assertEqual(done["executor"], "process", done)
        self.assertIsNone(done["node"], done)
        self.assertIn("waiting", done, "every job document has `waiting`")
        self.assertIsNone(done["waiting"], done)
        self.assertEqual(c.coord.output(job["id"]), b"local\n")


class CapacityTest(ClusterTestCase):
    def test_capacity_one_never_exceeded(self):
        c = self.cluster()
        n = c.add_node({"small": "yes"}, capacity=1, name="small")
        self.assertEqual(c.node_doc(n)["capacity"], 1)
        ids = [c.submit({"shell": "echo s$$; sleep 0.4; echo e", "node_selector": {"small": "yes"},
                         "name": "cap1"})["id"] for _ in range(4)]
        samples, over, full_reason = 0, [], None
        end = time.monotonic() + 30
        while time.monotonic() < end:
            d = c.node_doc(n)
            # One listing: one consistent view of the four jobs.
            jobs = c.coord.list(name="cap1")["jobs"]
            self.assertEqual(len(jobs), 4)
            running = [j for j in jobs if j["state"] == "running"]
            samples += 1
            if d["running"] > 1 or len(running) > 1:
                over.append((d["running"], [j["id"] for j in running]))
            for j in jobs:
                if j["state"] == "queued" and j.get("waiting") and running:
                    full_reason = j["waiting"]
            if all(j["state"] in clustertest.FINAL_STATES for j in jobs):
                break
            time.sleep(0.02)
        self.assertFalse(over, "more than one job at once on a node of capacity 1: %s" % over[:5])
        self.assertGreater(samples, 10)
        done = [c.wait_job(i) for i in ids]
        for d in done:
            self.assertEqual(d["state"], "succeeded", d)
            self.assertEqual(d["node"], n.node_id, d)
        # The node's own times: the four runs do not overlap.
        spans = sorted((parse_time(d["started_at"]), parse_time(d["finished_at"])) for d in done)
        for (s0, e0), (s1, e1) in zip(spans, spans[1:]):
            self.assertLessEqual(e0, s1 + 0.002, "runs overlap on a capacity-1 node: %s" % spans)
        self.assertIsNotNone(full_reason, "a queued job behind a full node says why it waits")
        self.assertTrue(full_reason, full_reason)

    def test_capacity_spreads_to_other_node(self):
        # Two nodes of capacity 1 and three long jobs: two run (one each), one waits.
        c = self.cluster()
        a = c.add_node(capacity=1, name="A")
        b = c.add_node(capacity=1, name="B")
        gate = os.path.join(self.tmp, "gate")
        ids = [c.submit({"shell": gated_shell(gate)})["id"] for _ in range(3)]
        try:
            end = time.monotonic() + 10
            while time.monotonic() < end:
                jobs = [c.coord.job(i) for i in ids]
                if sum(j["state"] == "running" and j["node"] is not None for j in jobs) == 2:
                    break
                time.sleep(0.05)
            time.sleep(0.3)
            jobs = [c.coord.job(i) for i in ids]
            running = [j for j in jobs if j["state"] == "running"]
            queued = [j for j in jobs if j["state"] == "queued"]
            self.assertEqual(len(running), 2, jobs)
            self.assertEqual(sorted(j["node"] for j in running), sorted([a.node_id, b.node_id]), running)
            self.assertEqual(len(queued), 1, jobs)
            self.assertIsInstance(queued[0].get("waiting"), str, queued[0])
            self.assertIn("full", queued[0]["waiting"], "e.g. \"every matching node is full\": %s" % queued[0])
            docs = {d["id"]: d for d in c.list_nodes()}
            self.assertEqual(docs[a.node_id]["running"], 1, docs)
            self.assertEqual(docs[b.node_id]["running"], 1, docs)
        finally:
            open_gate(gate)
        for i in ids:
            self.assertEqual(c.wait_job(i)["state"], "succeeded")


class OrderTest(ClusterTestCase):
    def test_priority_order_on_a_full_node(self):
        # One node of capacity 1, busy: queued remote jobs go to it in priority order
        # (then first come first served), as local jobs do.
        c = self.cluster()
        c.add_node(capacity=1, name="A")
        gate = os.path.join(self.tmp, "gate")
        order = os.path.join(self.tmp, "order")
        blocker = c.submit({"shell": gated_shell(gate)})
        c.wait_running(blocker["id"])
        plan = [("low", -5), ("mid1", 0), ("high1", 10), ("mid2", 0), ("high2", 10), ("top", 100),
                ("bottom", -100)]
        ids = []
        for name, prio in plan:
            job = c.submit({"shell": "echo %s >> %s" % (name, order), "priority": prio, "name": name})
            self.assertEqual(job["state"], "queued", job)
            ids.append(job["id"])
        time.sleep(0.2)
        open_gate(gate)
        for i in [blocker["id"]] + ids:
            self.assertEqual(c.wait_job(i, 20)["state"], "succeeded")
        with open(order) as f:
            ran = f.read().split()
        self.assertEqual(ran, ["top", "high1", "high2", "mid1", "mid2", "low", "bottom"])

    def test_selector_values_any_text(self):
        # Label values with quotes, backslashes, newlines and non-ASCII: matched exactly,
        # and the `waiting` text that quotes them is still valid JSON.
        val = "va\"l\\ue \u2603 {x}"
        c = self.cluster()
        job = c.submit({"command": ["echo", "odd"], "node_selector": {"k": val}})
        time.sleep(0.3)
        r = c.coord.request("GET", "/v1/jobs/%s" % job["id"])
        self.assertEqual(r.status, 200, r)
        self.assertIsNotNone(r.json, "the job document is JSON: %r" % r.body[:300])
        self.assertIsInstance(r.json.get("waiting"), str, r.json)
        self.assertEqual(r.json["node_selector"], {"k": val})
        c.add_node({"k": val + "x"}, name="near-miss")
        n = c.add_node({"k": val}, name="exact")
        done = c.wait_job(job["id"])
        self.assertEqual((done["state"], done["node"]), ("succeeded", n.node_id), done)

    def test_remote_batch(self):
        c = self.cluster()
        a = c.add_node(name="A")
        r = c.coord.request("POST", "/v1/batches", {"jobs": [
            {"command": ["echo", "b%d" % i], "executor": "remote"} for i in range(3)]})
        self.assertEqual(r.status, 201, r)
        ids = r.json["jobs"]
        for i, jid in enumerate(ids):
            d = c.wait_job(jid)
            self.assertEqual((d["state"], d["node"], d["batch"]), ("succeeded", a.node_id, r.json["id"]), d)
            self.assertEqual(c.coord.output(jid), b"b%d\n" % i)


class NodeOptionsTest(ClusterTestCase):
    def test_explicit_advertise(self):
        c = self.cluster()
        port = free_port()
        n = c.add_node(listen="127.0.0.1:%d" % port, args=["--advertise", "http://localhost:%d" % port])
        self.assertEqual(c.node_doc(n)["url"], "http://localhost:%d" % port)
        job = c.submit({"command": ["echo", "via-localhost"]})
        done = c.wait_job(job["id"])
        self.assertEqual((done["state"], done["node"]), ("succeeded", n.node_id), done)
        self.assertEqual(c.coord.output(job["id"]), b"via-localhost\n")

    def test_coordinator_caps_copied_output(self):
        # The node caps at its own (larger) --max-output; the coordinator keeps at most its own
        # cap of what it copies, head and tail, and says the stream was truncated.
        c = self.cluster(args=["--max-output", "4096"])
        c.add_node()
        job = c.submit({"shell": "echo first; head -c 100000 /dev/zero | tr '\\0' x; echo; echo last"})
        done = c.wait_job(job["id"])
        self.assertEqual(done["state"], "succeeded", done)
        self.assertEqual(done["stdout_bytes"], 100000 + len("first\n") + 1 + len("last\n"), done)
        self.assertTrue(done["stdout_truncated"], done)
        out = c.coord.output(job["id"])
        self.assertLessEqual(len(out), 4096)
        self.assertTrue(out.startswith(b"first\n"), out[:20])
        self.assertTrue(out.endswith(b"\nlast\n"), out[-20:])

    def test_labels_updated_on_restart(self):
        c = self.cluster()
        a = c.add_node({"color": "red"}, capacity=2, name="A")
        rc = a.stop()
        self.assertEqual(rc, 0)
        a.args = ["--join", c.join_url(), "--label", "color=blue", "--capacity", "3"]
        a.restart()
        end = time.monotonic() + 10
        d = None
        while time.monotonic() < end:
            d = c.node_doc(a)
            if d and d["labels"] == {"color": "blue"} and d["state"] == "ready":
                break
            time.sleep(0.05)
        self.assertEqual((d["labels"], d["capacity"], d["state"]), ({"color": "blue"}, 3, "ready"), d)
        self.assertEqual([x["id"] for x in c.list_nodes()], [a.node_id], "the same node id after a restart")
        blue = c.submit({"command": ["true"], "node_selector": {"color": "blue"}})
        self.assertEqual(c.wait_job(blue["id"])["node"], a.node_id)
        red = c.submit({"command": ["true"], "node_selector": {"color": "red"}})
        time.sleep(0.3)
        self.assertEqual(c.coord.job(red["id"])["state"], "queued")

    def test_capacity_defaults_to_max_procs(self):
        c = self.cluster()
        n = c.add_node(args=["--max-procs", "3"])
        self.assertEqual(c.node_doc(n)["capacity"], 3)

    def test_node_refuses_a_job(self):
        # The node's --max-body is smaller than the spec: it answers 413, a refusal: the job fails.
        c = self.cluster()
        c.add_node(args=["--max-body", "4096"])
        job = c.submit({"command": ["true"], "env": {"BIG": "x" * 8000}})
        done = c.wait_job(job["id"], 20)
        self.assertEqual(done["state"], "failed", done)
        self.assertIsInstance(done["error"], str, done)
        self.assertIn("413", done["error"], done)
        # The node is fine and takes the next one.
        ok = c.submit({"command": ["true"]})
        self.assertEqual(c.wait_job(ok["id"])["state"], "succeeded")


class ManyJobsTest(ClusterTestCase):
    def test_each_job_runs_once_within_capacity(self):
        c = self.cluster()
        nodes = [c.add_node(capacity=2, name="A"), c.add_node(capacity=2, name="B")]
        runs = os.path.join(self.tmp, "runs")
        ids = [c.submit({"command": ["sh", "-c", "echo $0 >> %s; sleep 0.02" % runs, "tag-%d" % i]})["id"]
               for i in range(150)]
        over = []
        end = time.monotonic() + 90
        while time.monotonic() < end:
            docs = c.list_nodes()
            for d in docs:
                if d["running"] > d["capacity"]:
                    over.append(d)
            ans = c.coord.list(state="queued,running", limit=1)
            if not ans["jobs"]:
                break
            time.sleep(0.05)
        self.assertFalse(over, "a node ran more than its capacity: %s" % over[:3])
        per_node = {}
        for i, jid in enumerate(ids):
            d = c.wait_job(jid, 30)
            self.assertEqual(d["state"], "succeeded", d)
            self.assertEqual(d["attempts"], 1, d)
            per_node[d["node"]] = per_node.get(d["node"], 0) + 1
        with open(runs) as f:
            lines = f.read().splitlines()
        self.assertEqual(sorted(lines), sorted("tag-%d" % i for i in range(150)), "each job ran exactly once")
        self.assertEqual(set(per_node), {n.node_id for n in nodes}, per_node)
        clustertest.note("150 jobs: %s", per_node)


class DrainDeleteTest(ClusterTestCase):
    def test_drain_then_delete(self):
        c = self.cluster()
        a = c.add_node({"name": "a", "pool": "x"}, capacity=4, name="A")
        b = c.add_node({"name": "b", "pool": "x"}, capacity=4, name="B")
        gate = os.path.join(self.tmp, "gate")
        j1 = c.submit({"shell": gated_shell(gate, "j1-started", "j1-finished"), "node_selector": {"name": "a"}})
        run = c.wait_running(j1["id"])
        self.assertEqual(run["node"], a.node_id)
        try:
            r = c.coord.request("POST", "/v1/nodes/%s/drain" % a.node_id)
            self.assertEqual(r.status, 202, r)
            self.assertNodeShape(r.json)
            self.assertEqual(r.json["state"], "draining", r)
            self.assertEqual(r.json["id"], a.node_id, r)
            # Draining twice is fine and changes nothing.
            r = c.coord.request("POST", "/v1/nodes/%s/drain" % a.node_id)
            self.assertEqual((r.status, r.json["state"]), (202, "draining"), r)
            # It stays draining across heartbeats.
            time.sleep(c.node_timeout * 0.75)
            self.assertEqual(c.node_doc(a)["state"], "draining")
            self.assertEqual(c.node_doc(a)["running"], 1)
            # New jobs go elsewhere, or wait when only it matches.
            j2 = c.submit({"command": ["echo", "j2"], "node_selector": {"name": "a"}})
            j3s = [c.submit({"command": ["echo", "j3"], "node_selector": {"pool": "x"}}) for _ in range(3)]
            for j3 in j3s:
                d3 = c.wait_job(j3["id"])
                self.assertEqual(d3["state"], "succeeded", d3)
                self.assertEqual(d3["node"], b.node_id, "a draining node gets no new jobs: %s" % d3)
            q2 = c.coord.job(j2["id"])
            self.assertEqual(q2["state"], "queued", q2)
            self.assertIsInstance(q2.get("waiting"), str, q2)
            # DELETE while it runs j1: 409.
            r = c.coord.request("DELETE", "/v1/nodes/%s" % a.node_id)
            self.assertProblem(r, 409)
            self.assertIsNotNone(c.node_doc(a), "a refused DELETE leaves the node")
        finally:
            open_gate(gate)
        # It finishes what it has.
        d1 = c.wait_job(j1["id"])
        self.assertEqual(d1["state"], "succeeded", d1)
        self.assertEqual(d1["node"], a.node_id)
        self.assertEqual(c.coord.output(j1["id"]), b"j1-started\nj1-finished\n")
        end = time.monotonic() + 5
        while c.node_doc(a)["running"] != 0 and time.monotonic() < end:
            time.sleep(0.05)
        self.assertEqual(c.node_doc(a)["state"], "draining")
        # j2 still waits (its only match is draining).
        self.assertEqual(c.coord.job(j2["id"])["state"], "queued")
        # Kill the node (no goodbye) and delete it at once: 204, then 404.
        a.kill9()
        r = c.coord.request("DELETE", "/v1/nodes/%s" % a.node_id)
        self.assertEqual(r.status, 204, r)
        self.assertEqual(r.body, b"", r)
        self.assertIsNone(c.node_doc(a), "GET /v1/nodes/{id} after DELETE: 404")
        self.assertNotIn(a.node_id, [d["id"] for d in c.list_nodes()])
        r = c.coord.request("DELETE", "/v1/nodes/%s" % a.node_id)
        self.assertProblem(r, 404)
        # The node comes back: it registers anew (ready, not draining) and j2 runs there.
        a.restart()
        d = c.wait_node(a, "ready", timeout=15)
        self.assertEqual(d["labels"], {"name": "a", "pool": "x"})
        d2 = c.wait_job(j2["id"], 20)
        self.assertEqual(d2["state"], "succeeded", d2)
        self.assertEqual(d2["node"], a.node_id, d2)

    def test_delete_idle_live_node_and_reregistration(self):
        c = self.cluster()
        a = c.add_node(name="A")
        first = c.node_doc(a)
        r = c.coord.request("DELETE", "/v1/nodes/%s" % a.node_id)
        self.assertEqual(r.status, 204, r)
        # The node still heartbeats: it registers again (a fresh registration).
        d = c.wait_node(a, "ready", timeout=10)
        self.assertGreaterEqual(parse_time(d["registered_at"]), parse_time(first["registered_at"]), d)
        job = c.submit({"command": ["echo", "back"]})
        done = c.wait_job(job["id"])
        self.assertEqual(done["node"], a.node_id, done)

    def test_drained_node_of_a_waiting_job(self):
        # Draining the only node: queued remote jobs wait with a reason, then run once it is back.
        c = self.cluster()
        a = c.add_node(name="A")
        r = c.coord.request("POST", "/v1/nodes/%s/drain" % a.node_id)
        self.assertEqual(r.status, 202, r)
        job = c.submit({"command": ["echo", "x"]})
        time.sleep(0.5)
        q = c.coord.job(job["id"])
        self.assertEqual(q["state"], "queued", q)
        self.assertIsInstance(q.get("waiting"), str, q)
        # DELETE (idle) then the node's next heartbeat registers it anew as ready.
        r = c.coord.request("DELETE", "/v1/nodes/%s" % a.node_id)
        self.assertEqual(r.status, 204, r)
        c.wait_node(a, "ready", timeout=10)
        done = c.wait_job(job["id"], 20)
        self.assertEqual(done["state"], "succeeded", done)


if __name__ == "__main__":
    clustertest.main()
