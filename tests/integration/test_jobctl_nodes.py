#!/usr/bin/env python3
"""Integration tests of jobctl's worker-node commands (nodes, node, drain,
nodes rm) and of remote jobs from jobctl (--executor remote,
--node-selector), against a real jobd that is a coordinator: it has a
cluster token (JOBD_CLUSTER_TOKEN) and a long --node-timeout.

No node process is needed: the tests register nodes directly with
POST /v1/nodes and the cluster token, as a jobd started with --join would.
A registered node whose URL answers nothing is never polled successfully,
so it would go down after --node-timeout; 600 s keeps it ready for the
whole run. Where a job must really run on a node, the node's URL is that of
a second, plain jobd: any jobd can serve as a node.

Run alone with:
    JOBD_BIN=build/jobd JOBCTL_BIN=build/jobctl python3 tests/integration/test_jobctl_nodes.py
"""

import itertools
import json
import os
import re
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import jobdtest  # noqa: E402
from test_jobctl import JobctlCase, closed_port, jobctl_bin  # noqa: E402

USERS_TOKEN = "users-s3cret"
CLUSTER_TOKEN = "cluster-s3cret"
_ids = itertools.count(1)


class CoordinatorCase(JobctlCase):
    """A shared jobd with a users' token and a cluster token."""

    token = USERS_TOKEN

    @classmethod
    def setUpClass(cls):
        cls.bin = jobctl_bin()
        cls.j = cls.start_shared(
            "--node-timeout", "600", token=cls.token, env={"JOBD_CLUSTER_TOKEN": CLUSTER_TOKEN}
        )

    def register(self, node_id=None, url=None, labels=None, capacity=3, expect=(200, 201)):
        """POST /v1/nodes with the cluster token, as a node does; returns the answer's document."""
        body = {
            "id": node_id or "it-node-%d" % next(_ids),
            "url": url or "http://127.0.0.1:%d" % closed_port(),
            "labels": labels if labels is not None else {"gpu": "yes", "zone": "a"},
            "capacity": capacity,
            "version": "0.1.0",
        }
        r = self.j.request("POST", "/v1/nodes", body, auth=False,
                           headers={"Authorization": "Bearer " + CLUSTER_TOKEN})
        statuses = expect if isinstance(expect, tuple) else (expect,)
        self.assertIn(r.status, statuses, r)
        return r.json

    def node_doc(self, node_id):
        r = self.j.request("GET", "/v1/nodes/" + node_id)
        self.assertEqual(r.status, 200, r)
        return r.json


class NodesTest(CoordinatorCase):
    def test_nodes_table_and_json(self):
        a = self.register(labels={"gpu": "yes", "zone": "a"}, capacity=3)
        b = self.register(labels={}, capacity=1)
        p = self.jobctl("nodes")
        self.assertExit(p, 0)
        lines = p.out.splitlines()
        self.assertRegex(lines[0], r"^ID +STATE +URL +RUNNING/CAPACITY +LABELS +LAST SEEN$")
        rows = {ln.split()[0]: ln.split() for ln in lines[1:]}
        self.assertEqual(rows[a["id"]][:5], [a["id"], "ready", a["url"], "0/3", "gpu=yes,zone=a"])
        self.assertEqual(rows[b["id"]][3:5], ["0/1", "-"])
        self.assertRegex(" ".join(rows[a["id"]][5:]), r"^\d+s ago$")
        p = self.jobctl("nodes", "--json")
        self.assertExit(p, 0)
        nodes = json.loads(p.out)
        self.assertIsInstance(nodes, list)
        ids = [n["id"] for n in nodes]
        self.assertEqual(ids, sorted(ids), "id order")
        mine = {n["id"]: n for n in nodes}
        self.assertEqual(mine[a["id"]]["capacity"], 3)
        self.assertEqual(mine[a["id"]]["running"], 0)
        self.assertEqual(mine[a["id"]]["labels"], {"gpu": "yes", "zone": "a"})
        self.assertEqual(mine[b["id"]]["state"], "ready")

    def test_node_shows_one_and_follows_heartbeats(self):
        n = self.register(labels={"gpu": "yes"}, capacity=2)
        self.assertEqual(n["state"], "ready")
        p = self.jobctl("node", n["id"])
        self.assertExit(p, 0)
        self.assertIn("ID:        %s\n" % n["id"], p.out)
        self.assertIn("State:     ready\n", p.out)
        self.assertIn("URL:       %s\n" % n["url"], p.out)
        self.assertIn("Labels:    gpu=yes\n", p.out)
        self.assertIn("Running:   0 of 2\n", p.out)
        self.assertIn("Version:   0.1.0\n", p.out)
        self.assertRegex(p.out, r"Last seen: \S+Z \(\d+s ago\)\n")
        # A heartbeat changes labels and capacity.
        self.register(n["id"], n["url"], labels={"gpu": "no"}, capacity=5, expect=200)
        p = self.jobctl("--json", "node", n["id"])
        self.assertExit(p, 0)
        doc = json.loads(p.out)
        self.assertEqual((doc["id"], doc["capacity"], doc["labels"]), (n["id"], 5, {"gpu": "no"}))

    def test_drain_and_heartbeat_keeps_draining(self):
        n = self.register()
        p = self.jobctl("drain", n["id"])
        self.assertExit(p, 0)
        self.assertEqual(p.out, "%s: draining\n" % n["id"])
        self.assertEqual(self.node_doc(n["id"])["state"], "draining")
        self.register(n["id"], n["url"], expect=200)
        p = self.jobctl("node", n["id"])
        self.assertIn("State:     draining\n", p.out)
        p = self.jobctl("drain", n["id"], "--json")
        self.assertExit(p, 0, "draining twice is accepted")
        self.assertEqual(json.loads(p.out)["state"], "draining")

    def test_nodes_rm(self):
        n = self.register()
        p = self.jobctl("nodes", "rm", n["id"])
        self.assertExit(p, 0)
        self.assertEqual(p.out, "%s removed\n" % n["id"])
        self.assertNotIn(n["id"], self.jobctl("nodes").out)
        for args in (["nodes", "rm", n["id"]], ["node", n["id"]], ["drain", n["id"]]):
            p = self.jobctl(*args)
            self.assertExit(p, 66, args)
            self.assertTrue(p.err.startswith("jobctl: not found: "), p.err)
        # It registers again as a new node.
        self.register(n["id"], n["url"], expect=201)
        p = self.jobctl("--json", "nodes", "rm", n["id"])
        self.assertExit(p, 0)
        self.assertEqual(json.loads(p.out), {"id": n["id"], "deleted": True})

    def test_unknown_node_is_66(self):
        for args in (["node", "no-such-node"], ["drain", "no-such-node"], ["nodes", "rm", "no-such-node"]):
            p = self.jobctl(*args)
            self.assertExit(p, 66, args)

    def test_wrong_token_is_77(self):
        for args in (["nodes"], ["node", "x"], ["drain", "x"], ["nodes", "rm", "x"]):
            p = self.jobctl(*args, env=self.env(JOBD_TOKEN="wrong"))
            self.assertExit(p, 77, args)
        # The cluster token is not the users' token.
        p = self.jobctl("nodes", env=self.env(JOBD_TOKEN=CLUSTER_TOKEN))
        self.assertExit(p, 77)

    def test_waiting_remote_job_says_why(self):
        jid = self.submit_id("--executor", "remote", "--node-selector", "gpu=none-such",
                             "--node-selector", "pool=x", "--", "true")
        self.addCleanup(self.jobctl, "cancel", jid)
        end = time.monotonic() + 10
        while True:
            p = self.jobctl("status", jid)
            self.assertExit(p, 0)
            if "Waiting:" in p.out or time.monotonic() > end:
                break
            time.sleep(0.1)
        self.assertIn("State:     queued\n", p.out)
        self.assertRegex(p.out, r"Waiting:   no ready node matches node_selector .*none-such")
        self.assertIn("Selector:  gpu=none-such pool=x\n", p.out)
        self.assertIn("Executor:  remote\n", p.out)
        doc = json.loads(self.jobctl("--json", "status", jid).out)
        self.assertEqual(doc["node_selector"], {"gpu": "none-such", "pool": "x"})
        self.assertIsNone(doc["node"])
        self.assertIsInstance(doc["waiting"], str)
        p = self.jobctl("cancel", jid)
        self.assertExit(p, 0)


class RemoteRunTest(CoordinatorCase):
    """Jobs that really run on a node: a second, plain jobd serves as one."""

    def test_run_remote_and_refuse_rm_of_a_busy_node(self):
        node_jobd = self.start_jobd()
        n = self.register(url="http://127.0.0.1:%d" % node_jobd.port, labels={"it": "busy"}, capacity=1)
        # run: the output comes back from the node, the exit code passes through.
        p = self.jobctl("run", "--executor", "remote", "--node-selector", "it=busy", "--",
                        "sh", "-c", "echo from-node; echo err >&2; exit 3")
        self.assertExit(p, 3)
        self.assertEqual(p.out, "from-node\n")
        self.assertEqual(p.err, "err\n")
        job = self.latest_job()
        self.assertEqual((job["executor"], job["node"]), ("remote", n["id"]))
        p = self.jobctl("status", job["id"])
        self.assertIn("Node:      %s\n" % n["id"], p.out)
        # A node that runs a job cannot be removed (409: status 1).
        jid = self.submit_id("--executor", "remote", "--node-selector", "it=busy", "--kill-grace", "1",
                             "--", "sleep", "30")
        end = time.monotonic() + 20
        while self.j.job(jid)["state"] != "running":
            self.assertLess(time.monotonic(), end, "the remote job never ran")
            time.sleep(0.1)
        p = self.jobctl("nodes")
        self.assertRegex(p.out, r"(?m)^%s +ready +\S+ +1/1 +it=busy " % re.escape(n["id"]))
        p = self.jobctl("nodes", "rm", n["id"])
        self.assertExit(p, 1)
        self.assertTrue(p.err.startswith("jobctl: "), p.err)
        # Drained, it keeps its job; cancelled, the job ends; then it can go.
        p = self.jobctl("drain", n["id"])
        self.assertExit(p, 0)
        self.assertEqual(p.out, "%s: draining (1 jobs still running)\n" % n["id"])
        self.assertEqual(self.j.job(jid)["state"], "running")
        self.assertExit(self.jobctl("cancel", jid), 0)
        self.assertEqual(self.j.job(jid, wait=20)["state"], "cancelled")
        end = time.monotonic() + 10
        while self.node_doc(n["id"])["running"] != 0:
            self.assertLess(time.monotonic(), end, "the node still counts the cancelled job")
            time.sleep(0.1)
        self.assertExit(self.jobctl("nodes", "rm", n["id"]), 0)


class NoClusterTest(JobctlCase):
    """A jobd without a cluster token: no nodes, and remote jobs are refused."""

    def test_no_nodes(self):
        p = self.jobctl("nodes")
        self.assertExit(p, 0)
        self.assertEqual(p.out.splitlines(), ["ID  STATE  URL  RUNNING/CAPACITY  LABELS  LAST SEEN"])
        p = self.jobctl("--json", "nodes")
        self.assertExit(p, 0)
        self.assertEqual(json.loads(p.out), [])

    def test_remote_job_is_65_naming_the_executor(self):
        for cmd in ("run", "submit"):
            p = self.jobctl(cmd, "--executor", "remote", "--", "true")
            self.assertExit(p, 65)
            self.assertIn("field: executor)", p.err)


class NodeUsageTest(JobctlCase):
    """Command-line errors: no server traffic, exit 2."""

    def test_usage_errors_are_2(self):
        for args in (["nodes", "extra"], ["node"], ["node", "a", "b"], ["drain"], ["nodes", "rm"],
                     ["nodes", "rm", "a", "b"], ["submit", "--node-selector", "novalue", "--", "true"],
                     ["run", "--executor", "gpu", "--", "true"], ["list", "--node-selector", "a=b"]):
            p = self.jobctl(*args)
            self.assertExit(p, 2, args)
            self.assertTrue(p.err.startswith("jobctl: "), p.err)

    def test_help_of_the_node_commands(self):
        for cmd in ("nodes", "node", "drain", "nodes rm"):
            a = self.jobctl("help", *cmd.split())
            b = self.jobctl(*cmd.split(), "--help")
            self.assertExit(a, 0)
            self.assertEqual(a.out, b.out)
            self.assertIn("usage: jobctl %s " % cmd, a.out)
        p = self.jobctl("help", "run")
        self.assertIn("--node-selector K=V", p.out)
        self.assertIn("remote", p.out)
        p = self.jobctl("--help-man")
        for cmd in ("nodes", "node", "drain", "nodes rm"):
            self.assertIn('.SS "%s"' % cmd, p.out)


if __name__ == "__main__":
    jobdtest.main()
