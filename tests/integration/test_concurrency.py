#!/usr/bin/env python3
"""Integration tests of jobd under concurrent load: many simultaneous
submissions, many clients long-polling at once (waits must not pin HTTP
threads), and bursts of short jobs that must leave no zombie behind."""

import os
import socket
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import jobdtest  # noqa: E402
from jobdtest import JobdTestCase  # noqa: E402


def run_threads(n, fn, timeout):
    """Run fn(i) in n threads released together; return [(result or None, exception or None)]."""
    barrier = threading.Barrier(n, timeout=timeout)
    out = [(None, None)] * n

    def body(i):
        try:
            barrier.wait()
            out[i] = (fn(i), None)
        except BaseException as e:  # noqa: B902 - reported to the test
            out[i] = (None, e)

    ts = [threading.Thread(target=body, args=(i,), daemon=True) for i in range(n)]
    for t in ts:
        t.start()
    end = time.monotonic() + timeout
    for t in ts:
        t.join(max(0.0, end - time.monotonic()))
    stuck = sum(t.is_alive() for t in ts)
    if stuck:
        raise AssertionError("%d of %d threads still running after %.0fs" % (stuck, n, timeout))
    return out


class ConcurrencyTest(JobdTestCase):
    def wait_all_ended(self, j, name, n, timeout):
        """Poll the listing of `name` until n jobs have ended; return them."""
        end = time.monotonic() + timeout
        jobs = []
        while time.monotonic() < end:
            jobs = j.list_all(name=name, limit=500)
            if len(jobs) >= n and all(x["state"] in jobdtest.FINAL_STATES for x in jobs):
                return jobs
            time.sleep(0.2)
        states = {}
        for x in jobs:
            states[x["state"]] = states.get(x["state"], 0) + 1
        raise AssertionError("%s: %d jobs listed, states %s after %.0fs" % (name, len(jobs), states, timeout))

    def test_200_concurrent_submissions(self):
        j = self.start_jobd()
        name = "burst200"

        def submit(i):
            r = j.request("POST", "/v1/jobs", {"command": ["echo", "n%d" % i], "name": name}, timeout=60)
            return (r.status, r.json["id"] if r.json else None, r)

        res = run_threads(200, submit, 90)
        errors = [e for _, e in res if e is not None]
        self.assertEqual(errors, [], "requests failed: %s" % errors[:3])
        statuses = [r[0] for r, _ in res]
        self.assertEqual(statuses, [201] * 200, [r[2] for r, _ in res if r[0] != 201][:3])
        ids = [r[1] for r, _ in res]
        self.assertEqual(len(set(ids)), 200, "ids are not distinct")

        jobs = self.wait_all_ended(j, name, 200, 60)
        self.assertEqual({x["id"] for x in jobs}, set(ids), "the listing shows exactly them")
        self.assertEqual(len(jobs), 200, "no duplicates in the listing")
        self.assertEqual([x["state"] for x in jobs], ["succeeded"] * 200)
        nums = [jobdtest.idnum(x["id"]) for x in jobs]
        self.assertEqual(nums, sorted(nums, reverse=True), "newest first")
        # Each job ran its own command.
        for i in (0, 99, 199):
            self.assertEqual(j.output(ids[i]), b"n%d\n" % i)

    def test_100_waiters_do_not_pin_threads(self):
        # Few HTTP threads, many connections: a wait that held a thread would
        # starve everyone else.
        j = self.start_jobd("--http-threads", "4", "--max-connections", "1000", "--max-procs", "16")
        gate = os.path.join(j.tmp, "gate")
        jobs = [j.submit({"shell": "while [ ! -e %s ]; do sleep 0.05; done; echo done" % gate,
                          "timeout": 60})["id"] for _ in range(10)]
        for jid in jobs:
            j.wait_state(jid, "running", timeout=15)
        released = {}
        answered = [None] * 100

        def waiter(i):
            r = j.request("GET", "/v1/jobs/%s?wait=30" % jobs[i % 10], timeout=60)
            answered[i] = time.monotonic()
            return r

        results = {}

        def run():
            results["res"] = run_threads(100, waiter, 60)

        t = threading.Thread(target=run, daemon=True)
        t.start()
        time.sleep(1.5)  # let all 100 connect and block
        try:
            early = [a for a in answered if a is not None]
            self.assertEqual(early, [], "%d waits answered before the jobs ended" % len(early))
            # While 100 clients wait, jobd still answers others promptly.
            for path in ("/healthz", "/v1/jobs?limit=5", "/v1/jobs/" + jobs[0]):
                t0 = time.monotonic()
                r = j.request("GET", path, timeout=10)
                self.assertEqual(r.status, 200, r)
                self.assertLess(time.monotonic() - t0, 2.0, "%s was slow while clients waited" % path)
            quick = j.submit({"command": ["echo", "hi"]}, wait=10)
            self.assertEqual(quick["state"], "succeeded")
        finally:
            released["t"] = time.monotonic()
            open(gate, "w").close()
            t.join(65)
        self.assertFalse(t.is_alive(), "waiters still blocked")
        res = results["res"]
        errors = [e for _, e in res if e is not None]
        self.assertEqual(errors, [], "waits failed: %s" % errors[:3])
        for r, _ in res:
            self.assertEqual(r.status, 200, r)
            self.assertEqual(r.json["state"], "succeeded", r)
        last = max(answered) - released["t"]
        self.assertLess(last, 10, "the waits were not woken by the end of the jobs")
        self.assertTrue(all(a >= released["t"] - 0.05 for a in answered))

    def test_many_followers_and_blocking_lists(self):
        """Streams and blocking queries are parked, not threads: with 4 HTTP threads,
        30 followers and 30 blocking list queries, jobd still answers at once."""
        j = self.start_jobd("--http-threads", "4", "--max-connections", "1000")
        gate = os.path.join(j.tmp, "gate")
        shell = "echo first; while [ ! -e %s ]; do sleep 0.05; done; echo last" % gate
        job = j.submit({"shell": shell, "timeout": 60})
        j.wait_output(job["id"], b"first\n")
        seq = j.list()["seq"]
        holder = {}

        def client(i):
            if i % 2:
                conn, resp = j.stream("GET", "/v1/jobs/%s/stdout?follow=true" % job["id"], timeout=40)
                try:
                    return resp.status, resp.read()
                finally:
                    conn.close()
            return j.request("GET", "/v1/jobs?since=%d&wait=30" % seq, timeout=40)

        t = threading.Thread(target=lambda: holder.update(res=run_threads(60, client, 50)), daemon=True)
        t.start()
        time.sleep(1.5)
        try:
            for path in ("/healthz", "/v1/jobs/" + job["id"], "/v1/jobs/%s/stdout" % job["id"]):
                t0 = time.monotonic()
                r = j.request("GET", path, timeout=10)
                self.assertEqual(r.status, 200, r)
                self.assertLess(time.monotonic() - t0, 2.0, "%s was slow" % path)
        finally:
            t_release = time.monotonic()
            open(gate, "w").close()
            t.join(55)
        self.assertFalse(t.is_alive())
        self.assertLess(time.monotonic() - t_release, 15)
        res = holder["res"]
        self.assertEqual([e for _, e in res if e is not None], [])
        for i, (r, _) in enumerate(res):
            if i % 2:
                self.assertEqual(r, (200, b"first\nlast\n"))
            else:
                self.assertEqual(r.status, 200, r)
                self.assertIn(job["id"], [x["id"] for x in r.json["jobs"]])

    def test_same_idempotency_key_at_once(self):
        """20 clients race with one key: one job, one 201, nineteen 200s."""
        j = self.start_jobd()
        spec = {"command": ["echo", "one"], "name": "idem-race"}

        def post(i):
            return j.request("POST", "/v1/jobs", spec, headers={"Idempotency-Key": "race-key"}, timeout=30)

        res = run_threads(20, post, 60)
        self.assertEqual([e for _, e in res if e is not None], [])
        # First what matters most: one job, and every success names it.
        self.assertEqual(len(j.list(name="idem-race")["jobs"]), 1)
        self.assertEqual(len({r.json["id"] for r, _ in res if r.status in (200, 201)}), 1)
        # Then the contract (API_NOTES): same key + same spec -> 200 with the first job,
        # also while the first request is still being stored.
        statuses = sorted(r.status for r, _ in res)
        self.assertEqual(statuses, [200] * 19 + [201], [r for r, _ in res if r.status not in (200, 201)][:1])

    def test_waiters_that_hang_up(self):
        """Clients that disconnect while waiting leave jobd healthy (no SIGPIPE, no stuck
        answers) when the job ends and their answers go nowhere."""
        j = self.start_jobd()
        gate = os.path.join(j.tmp, "gate")
        job = j.submit({"shell": "while [ ! -e %s ]; do sleep 0.05; done" % gate, "timeout": 60})
        socks = []
        try:
            for _ in range(150):
                s = socket.create_connection(("127.0.0.1", j.port), timeout=5)
                s.sendall(b"GET /v1/jobs/%s?wait=30 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n" % job["id"].encode())
                socks.append(s)
            time.sleep(0.5)
            for s in socks:
                s.close()
            socks = []
            t0 = time.monotonic()
            self.assertEqual(j.request("GET", "/healthz", timeout=10).status, 200)
            self.assertLess(time.monotonic() - t0, 3)
            holder = {}

            def waiters():
                holder["res"] = run_threads(
                    20, lambda i: j.request("GET", "/v1/jobs/%s?wait=30" % job["id"], timeout=40), 45)

            t = threading.Thread(target=waiters, daemon=True)
            t.start()
            time.sleep(0.5)
        finally:
            for s in socks:
                s.close()
            open(gate, "w").close()
        t.join(50)
        self.assertFalse(t.is_alive())
        res = holder["res"]
        self.assertEqual([e for _, e in res if e is not None], [])
        self.assertEqual([r.json["state"] for r, _ in res], ["succeeded"] * 20)
        time.sleep(0.2)
        self.assertTrue(j.running(), "jobd died answering clients that had gone: " + j.log()[-500:])
        self.assertEqual(j.request("GET", "/healthz").status, 200)

    def test_burst_of_300_jobs_leaves_no_zombies(self):
        j = self.start_jobd()
        name = "burst300"

        def submit(i):
            for k in range(10):
                spec = {"command": ["true"], "name": name} if k % 2 else {"shell": "exit 0", "name": name}
                r = j.request("POST", "/v1/jobs", spec, timeout=60)
                if r.status != 201:
                    raise AssertionError(repr(r))

        res = run_threads(30, submit, 90)
        self.assertEqual([e for _, e in res if e is not None], [])
        jobs = self.wait_all_ended(j, name, 300, 90)
        self.assertEqual(len(jobs), 300)
        self.assertEqual({x["state"] for x in jobs}, {"succeeded"})
        # Every child is reaped once its job has ended (allow a moment).
        end = time.monotonic() + 3
        kids = jobdtest.children_of(j.pid)
        while kids and time.monotonic() < end:
            time.sleep(0.1)
            kids = jobdtest.children_of(j.pid)
        zombies = [p for p, st in kids if st["state"] == "Z"]
        self.assertEqual(zombies, [], "zombie children of jobd")
        self.assertEqual(kids, [], "children of jobd left after every job ended")
        # Also with jobs that leave a background grandchild behind: the group is killed.
        job = j.submit({"shell": "sleep 30 & echo started; sleep 0.5"})
        pid = j.wait_state(job["id"], "running")["pid"]
        self.assertEqual(j.wait_job(job["id"], 15)["state"], "succeeded")
        end = time.monotonic() + 5
        while jobdtest.live_group_members(pid) and time.monotonic() < end:
            time.sleep(0.1)
        self.assertEqual(jobdtest.live_group_members(pid), [], "an orphan of the job survived")


if __name__ == "__main__":
    jobdtest.main()
