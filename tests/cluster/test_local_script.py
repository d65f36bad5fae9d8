#!/usr/bin/env python3
"""tests/cluster/local_cluster.sh for real: start a coordinator and two nodes as
local processes, run a remote job through them, check `status`, `stop`, and that
nothing is left running. Keeps the script (the no-Docker twin of
docker/compose.yaml) working, not just well-formed (cluster.docker_files)."""

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
SCRIPT = os.path.join(HERE, "local_cluster.sh")
NODES = 2


def free_port_run(n):
    """A port P with P..P+n-1 all free on 127.0.0.1 (bounded tries)."""
    for _ in range(200):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        base = s.getsockname()[1]
        s.close()
        if base + n > 65535:
            continue
        ok = True
        for p in range(base, base + n):
            t = socket.socket()
            try:
                t.bind(("127.0.0.1", p))
            except OSError:
                ok = False
            finally:
                t.close()
        if ok:
            return base
    raise RuntimeError("no run of %d free ports" % n)


def env_file_tokens(path):
    out = {}
    with open(path) as f:
        for line in f:
            k, _, v = line.strip().partition("=")
            if k:
                out[k] = v
    return out


class LocalScriptTest(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="jobd-local-cluster-")
        self.port = free_port_run(NODES + 1)
        self.env = dict(os.environ, JOBD=os.environ["JOBD_BIN"], PORT=str(self.port),
                        NODES=str(NODES), CLUSTER_DIR=self.dir)
        for k in ("JOBD_TOKEN", "JOBD_CLUSTER_TOKEN", "ENV_FILE"):
            self.env.pop(k, None)
        self.addCleanup(shutil.rmtree, self.dir, True)
        self.addCleanup(self.script, "stop")

    def script(self, *args):
        return subprocess.run([SCRIPT] + list(args), env=self.env, stdin=subprocess.DEVNULL,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=60)

    def pids(self):
        out = []
        for name in os.listdir(self.dir):
            if name.endswith(".pid"):
                with open(os.path.join(self.dir, name)) as f:
                    out.append(int(f.read().strip()))
        return out

    def call(self, method, path, token, body=None):
        req = urllib.request.Request("http://127.0.0.1:%d%s" % (self.port, path), method=method,
                                     data=json.dumps(body).encode() if body is not None else None,
                                     headers={"Authorization": "Bearer " + token,
                                              "Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=40) as r:
            return r.status, json.loads(r.read())

    def test_start_run_status_stop(self):
        p = self.script("start")
        self.assertEqual(p.returncode, 0, p.stdout.decode())
        pids = self.pids()
        self.assertEqual(len(pids), NODES + 1, os.listdir(self.dir))
        tokens = env_file_tokens(os.path.join(self.dir, "cluster.env"))
        self.assertNotEqual(tokens["JOBD_TOKEN"], tokens["JOBD_CLUSTER_TOKEN"])
        # Only the coordinator holds the users' token; nothing puts a token on a command line.
        for pid in pids:
            with open("/proc/%d/cmdline" % pid, "rb") as f:
                argv = f.read()
            self.assertNotIn(tokens["JOBD_TOKEN"].encode(), argv)
            self.assertNotIn(tokens["JOBD_CLUSTER_TOKEN"].encode(), argv)
        user = tokens["JOBD_TOKEN"]
        deadline = time.monotonic() + 15
        nodes = []
        while time.monotonic() < deadline:
            nodes = self.call("GET", "/v1/nodes", user)[1]["nodes"]
            if len([n for n in nodes if n["state"] == "ready"]) == NODES:
                break
            time.sleep(0.1)
        self.assertEqual(sorted(n["state"] for n in nodes), ["ready"] * NODES, nodes)
        self.assertTrue(all(n["labels"].get("pool") == "workers" for n in nodes), nodes)
        seen = set()
        for i in range(4):
            status, job = self.call("POST", "/v1/jobs?wait=30", user,
                                    {"command": ["echo", "via-script-%d" % i], "executor": "remote"})
            self.assertEqual((status, job["state"]), (201, "succeeded"), job)
            seen.add(job["node"])
        self.assertEqual(seen, {n["id"] for n in nodes}, "equal loads take turns")
        p = self.script("status")
        self.assertEqual(p.returncode, 0, p.stdout.decode())
        p = self.script("stop")
        self.assertEqual(p.returncode, 0, p.stdout.decode())
        for pid in pids:
            self.assertFalse(os.path.exists("/proc/%d" % pid) and
                             b"jobd" in open("/proc/%d/cmdline" % pid, "rb").read(),
                             "jobd pid %d still runs after stop" % pid)
        p = self.script("status")
        self.assertNotEqual(p.returncode, 0, "status after stop must fail: " + p.stdout.decode())


if __name__ == "__main__":
    if not os.environ.get("JOBD_BIN"):
        sys.exit("JOBD_BIN must name the jobd binary")
    unittest.main(verbosity=2)
