#!/usr/bin/env python3
"""Cluster test (issue 4): a network partition.

One node runs in its own network namespace, joined to the host by a veth
pair (10.77.0.1/24 on the host side, 10.77.0.2 in the namespace); the
coordinator listens on 10.77.0.1 (with the users' token, as off loopback it
must), a second node on 127.0.0.1. Mid-job the test cuts the link (the namespace's
end goes down): the coordinator marks the node down and runs the job again on
the other node (retries: 1). Then it heals the link: the node rejoins
(ready), the first attempt left on it is cancelled (fencing), and it gets
jobs again.

Needs root, `ip`, and `ip netns add` to work; otherwise it exits 77, which
CTest reports as skipped, saying why. It touches only 127.0.0.0/8, its own
namespace (jobdct<pid>) and its own veth pair (jct<pid>h / jct<pid>n), and
removes them when it ends, passes or fails (and at exit as a last resort).
It refuses to run (skips) when 10.77.0.0/24 is already in use on this host.

Run alone with (as root):
    JOBD_BIN=build/jobd python3 tests/cluster/test_cluster_netns.py
"""

import atexit
import json
import os
import shutil
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import clustertest  # noqa: E402
from clustertest import SKIP, ClusterTestCase, count_lines, counted_shell, note  # noqa: E402

HOST_IP, NS_IP, PREFIX = "10.77.0.1", "10.77.0.2", "24"
SUBNET = "10.77.0.0/" + PREFIX
NODE_PORT = 18081  # any port is free in a new namespace


def ip(*args, check=True):
    r = subprocess.run(["ip"] + list(args), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=30)
    if check and r.returncode != 0:
        raise RuntimeError("ip %s: exit %d: %s" % (" ".join(args), r.returncode, r.stdout.decode(errors="replace")))
    return r


class Netns:
    """Our namespace and veth pair; down() removes them (idempotent)."""

    def __init__(self, tag):
        self.name = "jobdct%d%s" % (os.getpid(), tag)
        self.host = "jct%d%sh" % (os.getpid() % 1000000, tag)
        self.peer = "jct%d%sn" % (os.getpid() % 1000000, tag)
        self.made = False
        atexit.register(self.down)

    def up(self):
        self.made = True
        # A safety net first: should the veth route ever go, packets for the test
        # network are dropped here rather than sent to the default gateway.
        ip("route", "add", "blackhole", SUBNET, "metric", "4000", check=False)
        ip("netns", "add", self.name)
        ip("link", "add", self.host, "type", "veth", "peer", "name", self.peer)
        ip("link", "set", self.peer, "netns", self.name)
        ip("addr", "add", "%s/%s" % (HOST_IP, PREFIX), "dev", self.host)
        ip("link", "set", self.host, "up")
        ip("-n", self.name, "addr", "add", "%s/%s" % (NS_IP, PREFIX), "dev", self.peer)
        ip("-n", self.name, "link", "set", self.peer, "up")
        ip("-n", self.name, "link", "set", "lo", "up")

    def cut(self):
        # The namespace's end goes down: the host end loses its carrier but keeps its
        # address and route, so packets for 10.77.0.2 are dropped there (taking the
        # host end down instead would remove the route and send them to the default
        # gateway, off this machine).
        ip("-n", self.name, "link", "set", self.peer, "down")

    def heal(self):
        ip("-n", self.name, "link", "set", self.peer, "up")

    def down(self):
        if not self.made:
            return
        self.made = False
        ip("link", "del", self.host, check=False)
        ip("netns", "del", self.name, check=False)
        ip("route", "del", "blackhole", SUBNET, "metric", "4000", check=False)

    def wrapper(self):
        return ["ip", "netns", "exec", self.name]


def why_skip():
    """None when the test can run, else why not."""
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        return "needs root to make a network namespace (euid %d)" % os.geteuid()
    if not shutil.which("ip"):
        return "no `ip` command (iproute2)"
    try:
        used = ip("-o", "addr", "show", check=False).stdout + ip("route", "show", check=False).stdout
    except (OSError, subprocess.SubprocessError) as e:
        return "`ip` does not run: %s" % e
    if b"10.77.0." in used:
        return "10.77.0.0/24 is already in use on this host; this test only touches its own addresses"
    probe = Netns("p")
    try:
        probe.made = True
        r = ip("netns", "add", probe.name, check=False)
        if r.returncode != 0:
            return "`ip netns add` does not work here: %s" % r.stdout.decode(errors="replace").strip()
        r = ip("link", "add", probe.host, "type", "veth", "peer", "name", probe.peer, check=False)
        if r.returncode != 0:
            return "cannot make a veth pair: %s" % r.stdout.decode(errors="replace").strip()
        r = ip("netns", "exec", probe.name, "true", check=False)
        if r.returncode != 0:
            return "`ip netns exec` does not work here: %s" % r.stdout.decode(errors="replace").strip()
    except (OSError, subprocess.SubprocessError) as e:
        return "`ip` failed: %s" % e
    finally:
        probe.down()
    return None


class PartitionTest(ClusterTestCase):
    def test_partition_reschedules_and_rejoins(self):
        ns = Netns("")
        self.addCleanup(ns.down)  # after every process is gone (cleanups run last-in first-out)
        ns.up()
        c = self.cluster(listen="%s:0" % HOST_IP, connect_host=HOST_IP)
        self.assertEqual(c.coord.host, HOST_IP, "the coordinator listens on the host end of the veth")
        a = c.add_node({"where": "ns"}, name="A-ns", listen="%s:%d" % (NS_IP, NODE_PORT), connect_host=NS_IP,
                       args=["--advertise", "http://%s:%d" % (NS_IP, NODE_PORT)], wrapper=ns.wrapper(),
                       timeout=15)
        self.assertEqual(c.node_doc(a)["url"], "http://%s:%d" % (NS_IP, NODE_PORT))
        counter = os.path.join(self.tmp, "runs")
        job = c.submit({"shell": counted_shell(counter, "echo first-attempt; sleep 60"), "retries": 1,
                        "retry_delay": 0.1, "kill_grace": 1})
        run = c.wait_running(job["id"])
        self.assertEqual(run["node"], a.node_id)
        c.coord.wait_output(job["id"], b"first-attempt\n")
        b = c.add_node({"where": "lo"}, name="B-lo")

        # Cut the link mid-job.
        t0 = time.monotonic()
        ns.cut()
        down = c.wait_node(a, "down", timeout=c.node_timeout + 10)
        t_down = time.monotonic() - t0
        note("partitioned node down after %.1fs (node timeout %ds)", t_down, c.node_timeout)
        self.assertGreaterEqual(t_down, c.node_timeout - 1.0, down)
        self.assertEqual(c.node_doc(b)["state"], "ready")
        done = c.wait_job(job["id"], 30)
        self.assertEqual(done["state"], "succeeded", done)
        self.assertEqual(done["node"], b.node_id, "rescheduled on the reachable node: %s" % json.dumps(done))
        self.assertEqual(done["attempts"], 2, done)
        self.assertEqual(c.coord.output(job["id"]), b"done2\n")

        # Heal it: the node rejoins.
        t1 = time.monotonic()
        ns.heal()
        c.wait_node(a, "ready", timeout=30)
        note("healed node ready again after %.1fs", time.monotonic() - t1)
        # The attempt left on it is given up on: the node is told to cancel it.
        end = time.monotonic() + 20
        copies = []
        while time.monotonic() < end:
            copies = a.remote_copies(job["id"])
            if copies and all(x["state"] in clustertest.FINAL_STATES for x in copies):
                break
            time.sleep(0.1)
        self.assertEqual([(x["labels"].get("jobd.attempt"), x["state"]) for x in copies], [("1", "cancelled")],
                         "the abandoned attempt on the healed node is cancelled (fencing): %s" % json.dumps(copies)[:600])
        # The late answer changed nothing on the coordinator.
        again = c.coord.job(job["id"])
        self.assertEqual((again["state"], again["node"], again["attempts"]), ("succeeded", b.node_id, 2), again)
        self.assertEqual(c.coord.output(job["id"]), b"done2\n")
        self.assertEqual(count_lines(counter), 2)
        # It gets jobs again.
        j2 = c.submit({"command": ["echo", "from-ns"], "node_selector": {"where": "ns"}})
        d2 = c.wait_job(j2["id"], 20)
        self.assertEqual((d2["state"], d2["node"]), ("succeeded", a.node_id), d2)
        self.assertEqual(c.coord.output(j2["id"]), b"from-ns\n")


if __name__ == "__main__":
    reason = why_skip()
    if reason:
        print("SKIP: network partition test: " + reason)
        sys.stdout.flush()
        sys.exit(SKIP)
    clustertest.main()
