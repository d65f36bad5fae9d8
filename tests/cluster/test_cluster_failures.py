#!/usr/bin/env python3
"""Cluster tests (issue 4): failures.

- a node killed with SIGKILL mid-job: it goes down within --node-timeout,
  the job is retried on another node and succeeds (retries: 1); with no
  retries it fails with error "node lost"; the node comes back after a
  restart and is used again;
- a node killed with SIGKILL and restarted at once: it fails the interrupted
  attempt locally and the coordinator learns it by polling (retried, or failed);
- the coordinator killed with SIGKILL and restarted mid-job: the job completes
  with its output intact and ran once (counted in a file), whether it ends
  while the coordinator is away or after it is back.

Run alone with:
    JOBD_BIN=build/jobd python3 tests/cluster/test_cluster_failures.py
"""

import json
import os
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import clustertest  # noqa: E402
from clustertest import (  # noqa: E402
    StartError,
    ClusterTestCase,
    count_lines,
    counted_shell,
    gated_shell,
    kill_orphans,
    open_gate,
)


class NodeLostTest(ClusterTestCase):
    def test_node_killed_job_retried_elsewhere(self):
        c = self.cluster()
        a = c.add_node({"pool": "x"}, name="A")
        counter = os.path.join(self.tmp, "runs")
        job = c.submit({"shell": counted_shell(counter, "echo first-attempt; sleep 60"), "retries": 1,
                        "retry_delay": 0.1, "node_selector": {"pool": "x"}})
        run = c.wait_running(job["id"])
        self.assertEqual(run["node"], a.node_id)
        c.coord.wait_output(job["id"], b"first-attempt\n")
        b = c.add_node({"pool": "x"}, name="B")
        t0 = time.monotonic()
        a.kill9()
        kill_orphans(a)
        down = c.wait_node(a, "down", timeout=c.node_timeout + 5)
        t_down = time.monotonic() - t0
        self.assertGreaterEqual(t_down, c.node_timeout - 1.0, "down before --node-timeout (%.1fs)" % t_down)
        done = c.wait_job(job["id"], c.node_timeout + 20)
        self.assertEqual(done["state"], "succeeded", done)
        self.assertEqual(done["node"], b.node_id, "retried on the other node: %s" % json.dumps(done))
        self.assertEqual(done["attempts"], 2, done)
        self.assertIsNone(done["error"], done)
        self.assertEqual(c.coord.output(job["id"]), b"done2\n", "the output is the latest attempt's")
        self.assertEqual(count_lines(counter), 2)
        copies = b.remote_copies(job["id"])
        self.assertEqual([x["labels"].get("jobd.attempt") for x in copies], ["2"], copies)
        self.assertEqual(c.node_doc(a)["running"], 0, "a down node holds no jobs")
        # A stays down (listed) until it comes back; then it is ready and used again.
        self.assertEqual(c.node_doc(a)["state"], "down")
        a.restart()
        c.wait_node(a, "ready", timeout=15)
        # Two jobs held running at once: least running first puts one on each node.
        gate = os.path.join(self.tmp, "gate")
        j2 = c.submit({"shell": gated_shell(gate), "node_selector": {"pool": "x"}})
        j3 = c.submit({"shell": gated_shell(gate), "node_selector": {"pool": "x"}})
        try:
            nodes = {c.wait_running(j["id"])["node"] for j in (j2, j3)}
        finally:
            open_gate(gate)
        self.assertEqual(nodes, {a.node_id, b.node_id}, "the node that came back is used again")
        for j in (j2, j3):
            self.assertEqual(c.wait_job(j["id"])["state"], "succeeded")
        # What A says about the attempt it lost (failed there as interrupted) changes nothing.
        again = c.coord.job(job["id"])
        self.assertEqual((again["state"], again["node"], again["attempts"]), ("succeeded", b.node_id, 2), again)
        self.assertEqual(c.coord.output(job["id"]), b"done2\n")

    def test_node_killed_no_retries_node_lost(self):
        c = self.cluster()
        a = c.add_node(name="A")
        b = c.add_node({"other": "yes"}, name="B")
        job = c.submit({"shell": "echo up; exec sleep 60"})
        run = c.wait_running(job["id"])
        victim = c.by_id(run["node"])
        c.coord.wait_output(job["id"], b"up\n")
        victim.kill9()
        kill_orphans(victim)
        done = c.wait_job(job["id"], c.node_timeout + 20)
        self.assertEqual(done["state"], "failed", done)
        self.assertEqual(done["error"], "node lost", done)
        self.assertEqual(done["node"], victim.node_id, done)
        self.assertEqual(done["attempts"], 1, done)
        self.assertIsNone(done["exit_code"], done)
        self.assertIsNotNone(done["finished_at"], done)
        self.assertEqual(c.coord.output(job["id"]), b"up\n", "output copied before the loss is kept")
        self.assertEqual(c.node_doc(victim)["state"], "down")
        survivor = b if victim is a else a
        self.assertEqual(c.node_doc(survivor)["state"], "ready")

    def test_node_killed_and_restarted_at_once(self):
        # The node comes back before the coordinator counts it down: it fails the
        # interrupted attempt itself ("interrupted"), which the coordinator learns
        # by polling, and retries (retries: 1) or fails (no retries).
        c = self.cluster(node_timeout=3)
        a = c.add_node(name="A")
        counter = os.path.join(self.tmp, "runs")
        retried = c.submit({"shell": counted_shell(counter, "echo first; sleep 60"), "retries": 1,
                            "retry_delay": 0.1})
        plain = c.submit({"shell": "echo plain; exec sleep 60"})
        c.wait_running(retried["id"])
        c.wait_running(plain["id"])
        c.coord.wait_output(retried["id"], b"first\n")
        port = a.port
        a.kill9()
        a.listen = "127.0.0.1:%d" % port  # back on its address, as a restarted service would be
        a.restart()
        d = c.wait_job(retried["id"], 30)
        self.assertEqual(d["state"], "succeeded", d)
        self.assertEqual(d["attempts"], 2, d)
        self.assertEqual(c.coord.output(retried["id"]), b"done2\n")
        p = c.wait_job(plain["id"], 30)
        self.assertEqual(p["state"], "failed", p)
        self.assertTrue(p["error"] and ("interrupted" in p["error"] or "node lost" in p["error"]), p)
        c.wait_node(a, "ready", timeout=10)

    def test_node_killed_under_load(self):
        # 30 jobs (retries: 1) over two nodes; one node is killed while they run:
        # every job still succeeds, none ran more than twice, the lost ones ran again.
        c = self.cluster()
        a = c.add_node(capacity=4, name="A")
        b = c.add_node(capacity=4, name="B")
        runs = os.path.join(self.tmp, "runs")
        ids = [c.submit({"command": ["sh", "-c", "echo $0 >> %s; sleep 0.5" % runs, "tag-%d" % i],
                         "retries": 1, "retry_delay": 0.1})["id"] for i in range(30)]
        end = time.monotonic() + 10
        while time.monotonic() < end and c.node_doc(a)["running"] < 2:
            time.sleep(0.02)
        a.kill9()
        kill_orphans(a)
        counts = {}
        for i, jid in enumerate(ids):
            d = c.wait_job(jid, c.node_timeout + 40)
            self.assertEqual(d["state"], "succeeded", d)
            if d["attempts"] == 2:
                self.assertEqual(d["node"], b.node_id, d)
            counts[d["attempts"]] = counts.get(d["attempts"], 0) + 1
        with open(runs) as f:
            lines = f.read().splitlines()
        for i in range(30):
            n = lines.count("tag-%d" % i)
            self.assertIn(n, (1, 2), "job tag-%d ran %d times" % (i, n))
        self.assertGreaterEqual(counts.get(2, 0), 1, "some jobs were on the killed node: %s" % counts)
        clustertest.note("jobs by attempts after a node loss: %s", counts)

    def test_frozen_node_is_fenced(self):
        # A node that stops answering (SIGSTOP) is down; its job runs again elsewhere.
        # Its first attempt ends while it is frozen; when it thaws, that late answer is
        # ignored (the job keeps running its second attempt), and the node is ready again.
        c = self.cluster()
        a = c.add_node({"pool": "x"}, name="A")
        counter = os.path.join(self.tmp, "runs")
        gate = os.path.join(self.tmp, "gate")
        shell = ("echo run >> %s; n=$(wc -l < %s); if [ $n -eq 1 ]; then echo first; sleep 1; echo late-first; "
                 "exit 0; fi; %s" % (counter, counter, gated_shell(gate, "second", "done")))
        job = c.submit({"shell": shell, "retries": 1, "retry_delay": 0.1})
        self.assertEqual(c.wait_running(job["id"])["node"], a.node_id)
        c.coord.wait_output(job["id"], b"first\n")
        b = c.add_node({"pool": "x"}, name="B")
        os.kill(a.pid, signal.SIGSTOP)
        try:
            c.wait_node(a, "down", timeout=c.node_timeout + 5)
            run2 = c.wait_running(job["id"], timeout=10)
            self.assertEqual(run2["node"], b.node_id, run2)
            c.coord.wait_output(job["id"], b"second\n")
        finally:
            os.kill(a.pid, signal.SIGCONT)
        try:
            c.wait_node(a, "ready", timeout=15)
            # A now reports attempt 1 as succeeded: too late, ignored.
            end = time.monotonic() + 5
            while time.monotonic() < end:
                copies = a.remote_copies(job["id"])
                if copies and copies[0]["state"] in clustertest.FINAL_STATES:
                    break
                time.sleep(0.05)
            # (succeeded, or cancelled when the coordinator's cancel reached the node first)
            self.assertEqual(len(copies), 1, copies)
            self.assertEqual(copies[0]["labels"].get("jobd.attempt"), "1", copies)
            self.assertIn(copies[0]["state"], ("succeeded", "cancelled"), copies)
            time.sleep(1.0)
            now = c.coord.job(job["id"])
            self.assertEqual((now["state"], now["node"], now["attempts"]), ("running", b.node_id, 2),
                             "a late answer about an abandoned attempt changed the job: %s" % json.dumps(now))
            self.assertEqual(c.coord.output(job["id"]), b"second\n")
        finally:
            open_gate(gate)
        done = c.wait_job(job["id"])
        self.assertEqual((done["state"], done["node"], done["attempts"]), ("succeeded", b.node_id, 2), done)
        self.assertEqual(c.coord.output(job["id"]), b"second\ndone\n")
        self.assertEqual(count_lines(counter), 2)

    def test_frozen_node_attempt_cancelled_when_it_thaws(self):
        # The abandoned attempt is still running on the node when it comes back: the node
        # is told to cancel it.
        c = self.cluster()
        a = c.add_node({"pool": "x"}, name="A")
        counter = os.path.join(self.tmp, "runs")
        job = c.submit({"shell": counted_shell(counter, "echo first; exec sleep 60"), "retries": 1,
                        "retry_delay": 0.1, "kill_grace": 1})
        self.assertEqual(c.wait_running(job["id"])["node"], a.node_id)
        c.coord.wait_output(job["id"], b"first\n")
        b = c.add_node({"pool": "x"}, name="B")
        os.kill(a.pid, signal.SIGSTOP)
        try:
            c.wait_node(a, "down", timeout=c.node_timeout + 5)
            done = c.wait_job(job["id"], 20)
        finally:
            os.kill(a.pid, signal.SIGCONT)
        self.assertEqual((done["state"], done["node"], done["attempts"]), ("succeeded", b.node_id, 2), done)
        c.wait_node(a, "ready", timeout=15)
        end = time.monotonic() + 15
        copies = []
        while time.monotonic() < end:
            copies = a.remote_copies(job["id"])
            if copies and copies[0]["state"] in clustertest.FINAL_STATES:
                break
            time.sleep(0.1)
        self.assertEqual([(x["labels"].get("jobd.attempt"), x["state"]) for x in copies], [("1", "cancelled")],
                         "the node is told to cancel the abandoned attempt: %s" % json.dumps(copies)[:500])
        self.assertEqual(c.coord.job(job["id"])["state"], "succeeded")

    def test_cancel_right_after_submit(self):
        # A cancel racing the dispatch: the job ends cancelled and nothing keeps running on the node.
        c = self.cluster()
        a = c.add_node(name="A")
        ids = []
        for i in range(10):
            j = c.submit({"shell": "exec sleep 60", "kill_grace": 1})
            r = c.coord.request("POST", "/v1/jobs/%s/cancel" % j["id"])
            self.assertEqual(r.status, 202, r)
            ids.append(j["id"])
        for jid in ids:
            d = c.wait_job(jid, 15)
            self.assertEqual(d["state"], "cancelled", d)
        end = time.monotonic() + 10
        active = None
        while time.monotonic() < end:
            r = a.request("GET", "/v1/jobs?state=queued,running", headers=a.ctoken_headers())
            self.assertEqual(r.status, 200, r)
            active = r.json["jobs"]
            if not active:
                break
            time.sleep(0.1)
        self.assertEqual(active, [], "jobs left running on the node after their cancel")
        self.assertEqual(c.node_doc(a)["running"], 0)


class CoordinatorRestartTest(ClusterTestCase):
    def restart_coordinator(self, c, while_away=None):
        """kill -9 the coordinator, call while_away(), start it again on the same port and data dir."""
        port = c.coord.port
        c.coord.kill9()
        if while_away:
            while_away()
        c.coord.listen = "127.0.0.1:%d" % port
        end = time.monotonic() + 10
        while True:
            try:
                c.coord.restart()
                return
            except StartError:
                if time.monotonic() > end:
                    raise
                time.sleep(0.2)

    def test_coordinator_kill9_mid_job(self):
        c = self.cluster()
        n = c.add_node(capacity=4, name="A")
        counter1 = os.path.join(self.tmp, "runs1")
        counter2 = os.path.join(self.tmp, "runs2")
        gate1 = os.path.join(self.tmp, "gate1")  # opened while the coordinator is away
        gate2 = os.path.join(self.tmp, "gate2")  # opened after it is back
        big = "i=0; while [ $i -lt 2000 ]; do echo line-$i-xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx; i=$((i+1)); done"
        j1 = c.submit({"shell": "echo run >> %s; %s; %s" % (counter1, big, gated_shell(gate1, "one-a", "one-b"))})
        j2 = c.submit({"shell": "echo run >> %s; %s" % (counter2, gated_shell(gate2, "two-a", "two-b")),
                       "retries": 2, "retry_delay": 0.1})
        queued = c.submit({"command": ["echo", "queued"], "node_selector": {"nowhere": "x"}})
        c.wait_running(j1["id"])
        c.wait_running(j2["id"])
        c.coord.wait_output(j1["id"], b"one-a\n", timeout=10)
        c.coord.wait_output(j2["id"], b"two-a\n")

        def while_away():
            # The node keeps running its jobs; one of them ends meanwhile.
            open_gate(gate1)
            rj = None
            end = time.monotonic() + 10
            while time.monotonic() < end:
                rj = n.remote_copies(j1["id"])[0]
                if rj["state"] == "succeeded":
                    break
                time.sleep(0.05)
            self.assertEqual(rj["state"], "succeeded", "the node kept running the job: %s" % rj)

        try:
            self.restart_coordinator(c, while_away)
            d1 = c.wait_job(j1["id"], 20)
            self.assertEqual(d1["state"], "succeeded", d1)
            self.assertEqual(d1["node"], n.node_id, d1)
            # j2 is followed again: still running, and ends when let go.
            time.sleep(0.5)
            self.assertEqual(c.coord.job(j2["id"])["state"], "running")
        finally:
            open_gate(gate1)
            open_gate(gate2)
        d2 = c.wait_job(j2["id"], 20)
        self.assertEqual(d2["state"], "succeeded", d2)
        self.assertEqual(d2["attempts"], 1, "not run again: %s" % json.dumps(d2))
        # Output intact (not doubled by the copy resumed after the restart).
        expected1 = b"".join(b"line-%d-%s\n" % (i, b"x" * 40) for i in range(2000))
        self.assertEqual(c.coord.output(j1["id"]), expected1 + b"one-a\none-b\n")
        self.assertEqual(d1["stdout_bytes"], len(expected1) + 12, d1)
        self.assertEqual(c.coord.output(j2["id"]), b"two-a\ntwo-b\n")
        # Each ran once.
        self.assertEqual(count_lines(counter1), 1)
        self.assertEqual(count_lines(counter2), 1)
        self.assertEqual(len(n.remote_copies(j1["id"])), 1)
        self.assertEqual(len(n.remote_copies(j2["id"])), 1)
        # The queued remote job is still queued, waiting, and the node is ready again.
        q = c.coord.job(queued["id"])
        self.assertEqual(q["state"], "queued", q)
        self.assertIsInstance(q.get("waiting"), str, q)
        c.wait_node(n, "ready", timeout=10)
        # The restarted coordinator dispatches new jobs.
        j3 = c.submit({"command": ["echo", "after"]})
        self.assertEqual(c.wait_job(j3["id"])["node"], n.node_id)

    def test_coordinator_sigterm_leaves_remote_jobs_running(self):
        # A clean stop neither waits for nor stops remote jobs: the node runs on, and the
        # coordinator follows the job again when it is back.
        c = self.cluster()
        n = c.add_node(name="A")
        runs = os.path.join(self.tmp, "runs")
        gate = os.path.join(self.tmp, "gate")
        job = c.submit({"shell": "echo run >> %s; %s" % (runs, gated_shell(gate, "before", "after"))})
        c.wait_running(job["id"])
        c.coord.wait_output(job["id"], b"before\n", timeout=10)
        port = c.coord.port
        t0 = time.monotonic()
        self.assertEqual(c.coord.stop(), 0)
        self.assertLess(time.monotonic() - t0, 5, "a stop does not wait for remote jobs")
        self.assertEqual(n.remote_copies(job["id"])[0]["state"], "running")
        c.coord.listen = "127.0.0.1:%d" % port
        c.coord.restart()
        try:
            self.assertEqual(c.coord.job(job["id"])["state"], "running")
        finally:
            open_gate(gate)
        d = c.wait_job(job["id"], 20)
        self.assertEqual((d["state"], d["attempts"], d["node"]), ("succeeded", 1, n.node_id), d)
        self.assertEqual(c.coord.output(job["id"]), b"before\nafter\n")
        with open(runs) as f:
            self.assertEqual(f.read(), "run\n", "ran once")

    def test_coordinator_kill9_during_dispatch(self):
        # kill -9 while a burst of remote jobs is being dispatched: after the restart
        # every acknowledged job runs, and none runs twice (README: "never started twice
        # ... by a restart of the coordinator").
        c = self.cluster()
        nodes = [c.add_node(capacity=8, name="A"), c.add_node(capacity=8, name="B")]
        runs = os.path.join(self.tmp, "runs")
        ids = []
        for rnd, delay in enumerate((0.0, 0.15)):
            batch = [c.submit({"command": ["sh", "-c", "echo $0 >> %s; sleep 0.3" % runs, "tag-%d-%d" % (rnd, i)]})["id"]
                     for i in range(20)]
            ids += batch
            time.sleep(delay)
            self.restart_coordinator(c)
        states = {}
        for jid in ids:
            d = c.wait_job(jid, 40)
            states[d["state"]] = states.get(d["state"], 0) + 1
            self.assertEqual(d["state"], "succeeded", d)
            self.assertIn(d["node"], [n.node_id for n in nodes], d)
        with open(runs) as f:
            lines = f.read().splitlines()
        want = sorted("tag-%d-%d" % (r, i) for r in range(2) for i in range(20))
        self.assertEqual(sorted(lines), want, "each job ran exactly once across coordinator kills")
        copies = sum(len(n.remote_copies(jid)) for n in nodes for jid in ids)
        self.assertEqual(copies, len(ids), "one job on the nodes per job on the coordinator")

    def test_coordinator_restart_with_a_dead_node(self):
        # The coordinator and a node die together; the coordinator comes back, the node
        # does not: it goes down after --node-timeout and its jobs are retried or lost.
        c = self.cluster()
        a = c.add_node({"pool": "x"}, name="A")
        counter = os.path.join(self.tmp, "runs")
        retried = c.submit({"shell": counted_shell(counter, "echo first; exec sleep 60"), "retries": 1,
                            "retry_delay": 0.1})
        lost = c.submit({"shell": "echo up; exec sleep 60"})
        c.wait_running(retried["id"])
        c.wait_running(lost["id"])
        b = c.add_node({"pool": "x"}, name="B")
        a.kill9()
        kill_orphans(a)
        self.restart_coordinator(c)
        c.wait_node(a, "down", timeout=c.node_timeout + 8)
        d = c.wait_job(retried["id"], 20)
        self.assertEqual((d["state"], d["node"], d["attempts"]), ("succeeded", b.node_id, 2), d)
        self.assertEqual(c.coord.output(retried["id"]), b"done2\n")
        d = c.wait_job(lost["id"], 20)
        self.assertEqual((d["state"], d["error"]), ("failed", "node lost"), d)

    def test_coordinator_kill9_nodes_stay_listed(self):
        c = self.cluster()
        a = c.add_node({"k": "v"}, capacity=3, name="A")
        before = c.node_doc(a)
        # Away for a while (the node retries with backoff meanwhile), then back.
        self.restart_coordinator(c, lambda: time.sleep(3))
        # Nodes are rows: listed after the restart (and ready again once they heartbeat).
        d = c.wait_node(a, "ready", timeout=10)
        self.assertEqual(d["labels"], {"k": "v"})
        self.assertEqual(d["capacity"], 3)
        self.assertEqual(d["registered_at"], before["registered_at"], "a heartbeat is not a new registration")


if __name__ == "__main__":
    clustertest.main()
