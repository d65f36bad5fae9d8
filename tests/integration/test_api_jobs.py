#!/usr/bin/env python3
"""Integration tests of the jobs API: submit, get, list, wait, cancel, delete,
output, and how jobs run (exit codes, signals, timeouts, retries, priority,
environment, descriptors, output caps). Runs the real jobd on 127.0.0.1."""

import os
import sys
import threading
import time
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import jobdtest  # noqa: E402
from jobdtest import FINAL_STATES, JobdTestCase, idnum, parse_time  # noqa: E402

SECRET = "s3cret-value-that-must-not-leak"
MiB = 1024 * 1024


class JobsApiTest(JobdTestCase):
    @classmethod
    def setUpClass(cls):
        cls.j = cls.start_shared(env={"SECRET_TEST_VAR": SECRET})
        cls.scratch = cls.j.tmp  # a directory jobs may write into

    def uniq(self, tag=""):
        """A name no other test uses."""
        return "%s-%s-%d" % (self.id().rsplit(".", 1)[-1], tag, time.monotonic_ns())

    # -- submit and get

    def test_submit_get_and_shape(self):
        j = self.j
        name = self.uniq()
        r = j.request("POST", "/v1/jobs", {"command": ["true"], "name": name, "labels": {"team": "a"}})
        self.assertEqual(r.status, 201, r)
        job = r.json
        self.assertJobShape(job)
        self.assertEqual(r.headers.get("Location"), "/v1/jobs/" + job["id"])
        self.assertIn(job["state"], ("queued", "running", "succeeded"))
        self.assertEqual(job["command"], ["true"])
        self.assertEqual(job["name"], name)
        self.assertEqual(job["labels"], {"team": "a"})
        self.assertIsNone(job["shell"])
        self.assertEqual(job["executor"], "process")
        self.assertEqual(job["kill_signal"], "SIGTERM")
        self.assertEqual(job["kill_grace"], 5)
        self.assertEqual(job["priority"], 0)

        got = j.job(job["id"])
        self.assertJobShape(got)
        self.assertEqual(got["id"], job["id"])
        self.assertEqual(got["created_at"], job["created_at"])

        done = j.wait_job(job["id"], timeout=15)
        self.assertJobShape(done)
        self.assertEqual(done["state"], "succeeded")
        self.assertEqual(done["exit_code"], 0)
        self.assertIsNone(done["signal"])
        self.assertIsNone(done["error"])
        self.assertEqual(done["attempts"], 1)
        self.assertIsNotNone(done["started_at"])
        self.assertIsNotNone(done["finished_at"])
        self.assertLessEqual(parse_time(done["created_at"]), parse_time(done["started_at"]))
        self.assertLessEqual(parse_time(done["started_at"]), parse_time(done["finished_at"]))
        self.assertGreater(done["seq"], job["seq"])
        # Times are close to now (UTC, milliseconds).
        self.assertLess(abs(parse_time(done["finished_at"]) - time.time()), 60)

    def test_spec_round_trip(self):
        """The job resource holds the spec as submitted, every field."""
        spec = {
            "command": ["printf", "%s|", "", "a b", "\u00e9\u2603"],
            "stdin": "in",
            "env": {"A": "1", "B": "\u00fc"},
            "cwd": "/tmp",
            "timeout": 12.5,
            "kill_signal": "SIGINT",
            "kill_grace": 0.5,
            "retries": 2,
            "retry_delay": 0.25,
            "retry_exit_codes": [1, 2],
            "priority": -7,
            "name": "r\u00f8und-trip",
            "labels": {"k": "v", "team.io/x-y_z": "\u2603"},
            "limits": {"cpu_seconds": 100, "memory_bytes": 1073741824, "open_files": 256,
                       "output_bytes": 1048576},
        }
        job = self.j.submit(spec, wait=15)
        self.assertJobShape(job)
        for k, v in spec.items():
            self.assertEqual(job[k], v, k)
        self.assertEqual(job["executor"], "process")
        self.assertEqual(job["state"], "succeeded", job)
        self.assertEqual(self.j.output(job["id"]), "|a b|\u00e9\u2603|".encode())
        # "TERM" is accepted for "SIGTERM" and shown by its full name.
        job = self.j.submit({"command": ["true"], "kill_signal": "TERM"})
        self.assertEqual(job["kill_signal"], "SIGTERM")

    def test_big_argv(self):
        args = ["a%d" % i for i in range(2000)] + ["x" * 100000]
        job = self.j.submit({"command": ["printf", "%s\n"] + args}, wait=15)
        self.assertEqual(job["state"], "succeeded", job)
        self.assertTrue(self.j.output(job["id"]) == ("\n".join(args) + "\n").encode())

    def test_binary_output_and_nul_in_stdin(self):
        job = self.j.submit({"shell": "printf 'a\\000b\\377\\001'"}, wait=15)
        self.assertEqual(job["state"], "succeeded", job)
        self.assertEqual(self.j.output(job["id"]), b"a\x00b\xff\x01")
        self.assertEqual(job["stdout_bytes"], 5)
        # stdin may contain NUL bytes (\u0000 in JSON).
        job = self.j.submit({"command": ["od", "-An", "-c"], "stdin": "a\u0000b"}, wait=15)
        self.assertEqual(job["state"], "succeeded", job)
        self.assertEqual(self.j.output(job["id"]).split(), [b"a", b"\\0", b"b"])

    def test_ids_increase(self):
        a = self.j.submit({"command": ["true"]})
        b = self.j.submit({"command": ["true"]})
        self.assertNotEqual(a["id"], b["id"])
        self.assertGreater(idnum(b["id"]), idnum(a["id"]))
        self.j.wait_job(a["id"])
        self.j.wait_job(b["id"])

    def test_wait_on_post(self):
        t0 = time.monotonic()
        job = self.j.submit({"shell": "sleep 0.4; echo done"}, wait=20)
        dt = time.monotonic() - t0
        self.assertEqual(job["state"], "succeeded", job)
        self.assertGreaterEqual(dt, 0.35)
        self.assertLess(dt, 15)
        self.assertEqual(self.j.output(job["id"]), b"done\n")
        # A job that outlasts wait= is answered as it is then, still with 201.
        t0 = time.monotonic()
        r = self.j.request("POST", "/v1/jobs?wait=1", {"command": ["sleep", "30"], "kill_grace": 1})
        dt = time.monotonic() - t0
        self.assertEqual(r.status, 201, r)
        self.assertEqual(r.json["state"], "running", r)
        self.assertGreaterEqual(dt, 0.9)
        self.assertLess(dt, 5)
        self.assertEqual(self.j.request("POST", "/v1/jobs/%s/cancel" % r.json["id"]).status, 202)
        self.assertEqual(self.j.wait_job(r.json["id"], 10)["state"], "cancelled")

    def test_wait_on_get(self):
        j = self.j
        short = j.submit({"shell": "sleep 0.5"})
        long = j.submit({"command": ["sleep", "30"], "kill_grace": 1})
        try:
            t0 = time.monotonic()
            got = j.job(short["id"], wait=20)
            dt = time.monotonic() - t0
            self.assertEqual(got["state"], "succeeded", got)
            self.assertLess(dt, 15)

            t0 = time.monotonic()
            got = j.job(long["id"], wait=1)
            dt = time.monotonic() - t0
            self.assertIn(got["state"], ("queued", "running"), got)
            self.assertGreaterEqual(dt, 0.9, "wait=1 answered too early")
            self.assertLess(dt, 5, "wait=1 answered too late")

            # wait=0 answers at once.
            t0 = time.monotonic()
            got = j.job(long["id"], wait=0)
            self.assertLess(time.monotonic() - t0, 1.0)
        finally:
            j.request("POST", "/v1/jobs/%s/cancel" % long["id"])
        self.assertEqual(j.wait_job(long["id"], 10)["state"], "cancelled")

    # -- listing

    def test_list_filters(self):
        j = self.j
        name = self.uniq()
        ok1 = j.submit({"command": ["true"], "name": name, "labels": {"color": "red"}})
        bad = j.submit({"command": ["false"], "name": name, "labels": {"color": "blue"}})
        ok2 = j.submit({"command": ["true"], "name": name, "labels": {"color": "red", "size": "xl"}})
        other = j.submit({"command": ["true"], "name": name + "-other", "labels": {"color": "red"}})
        for x in (ok1, bad, ok2, other):
            j.wait_job(x["id"], 15)

        ans = j.list(name=name)
        self.assertIsInstance(ans["seq"], int)
        self.assertIn("next_cursor", ans)
        self.assertIsNone(ans["next_cursor"])
        ids = [x["id"] for x in ans["jobs"]]
        self.assertEqual(ids, [ok2["id"], bad["id"], ok1["id"]], "name filter, newest first")
        for x in ans["jobs"]:
            self.assertJobShape(x)

        ids = [x["id"] for x in j.list(name=name, label="color=red")["jobs"]]
        self.assertEqual(ids, [ok2["id"], ok1["id"]])
        ids = [x["id"] for x in j.list(name=name, label="size=xl")["jobs"]]
        self.assertEqual(ids, [ok2["id"]])
        ids = [x["id"] for x in j.list(name=name, state="failed")["jobs"]]
        self.assertEqual(ids, [bad["id"]])
        ids = [x["id"] for x in j.list(name=name, state="failed,succeeded")["jobs"]]
        self.assertEqual(ids, [ok2["id"], bad["id"], ok1["id"]])
        ids = [x["id"] for x in j.list(name=name, state="queued,running")["jobs"]]
        self.assertEqual(ids, [])
        self.assertEqual(j.list(name="no-such-name-" + name)["jobs"], [])
        # Without a name filter, the label filter sees the other job too.
        ids = {x["id"] for x in j.list(label="color=red", limit=500)["jobs"]}
        self.assertTrue({ok1["id"], ok2["id"], other["id"]} <= ids)
        self.assertNotIn(bad["id"], ids)

    def test_paging_with_cursor(self):
        j = self.j
        name = self.uniq()
        n = 23
        submitted = [j.submit({"command": ["true"], "name": name})["id"] for _ in range(n)]
        expect = list(reversed(submitted))  # newest first
        for limit in (7, 1, 23, 100):
            seen, cursor, pages = [], None, 0
            while pages < 60:
                params = {"name": name, "limit": limit}
                if cursor:
                    params["cursor"] = cursor
                ans = j.list(**params)
                pages += 1
                self.assertLessEqual(len(ans["jobs"]), limit)
                seen += [x["id"] for x in ans["jobs"]]
                cursor = ans["next_cursor"]
                if not cursor:
                    break
                self.assertEqual(len(ans["jobs"]), limit, "a page before the last one is full")
            self.assertIsNone(cursor, "paging did not end")
            self.assertEqual(len(seen), len(set(seen)), "duplicates with limit %d" % limit)
            self.assertEqual(seen, expect, "gaps or wrong order with limit %d" % limit)
            self.assertLessEqual(pages, -(-n // limit) + 1)
        # A cursor stays valid while new jobs arrive: they do not shift the pages.
        first = j.list(name=name, limit=10)
        newer = j.submit({"command": ["true"], "name": name})
        rest = j.list_all(name=name, limit=10, cursor=first["next_cursor"])
        self.assertEqual([x["id"] for x in first["jobs"]] + [x["id"] for x in rest], expect)
        for i in submitted + [newer["id"]]:
            j.wait_job(i, 15)

    def test_limit_bounds(self):
        j = self.j
        for bad in ("0", "1001", "-1", "abc", "1.5"):
            r = j.request("GET", "/v1/jobs?limit=" + urllib.parse.quote(bad))
            self.assertProblem(r, 400, field="limit", msg="limit=%r" % bad)
        a = j.submit({"command": ["true"]}, wait=10)
        b = j.submit({"command": ["true"]}, wait=10)
        ans = j.list(limit=1)
        self.assertEqual(len(ans["jobs"]), 1)
        self.assertEqual(ans["jobs"][0]["id"], b["id"])
        self.assertIsNotNone(ans["next_cursor"])
        # The default limit is 100.
        total = len(j.list(limit=500)["jobs"])
        self.assertEqual(len(j.list()["jobs"]), min(total, 100))
        # 1000 is the largest limit allowed.
        ans = j.list(limit=1000)
        self.assertLessEqual(len(ans["jobs"]), 1000)
        self.assertIn(a["id"], [x["id"] for x in ans["jobs"]])

    def test_blocking_query(self):
        j = self.start_jobd()  # a quiet jobd: nothing else changes
        s0 = j.list()["seq"]
        self.assertIsInstance(s0, int)

        # Nothing changes: the query waits about wait= seconds and answers empty.
        t0 = time.monotonic()
        ans = j.list(since=s0, wait=1)
        dt = time.monotonic() - t0
        self.assertEqual(ans["jobs"], [])
        self.assertGreaterEqual(dt, 0.9)
        self.assertLess(dt, 5)
        self.assertGreaterEqual(ans["seq"], s0)

        # A change during the wait answers it early.
        holder = {}

        def later():
            time.sleep(0.5)
            holder["job"] = j.submit({"shell": "sleep 0.3; echo hi"})

        th = threading.Thread(target=later)
        th.start()
        try:
            t0 = time.monotonic()
            ans = j.list(since=s0, wait=20)
            dt = time.monotonic() - t0
        finally:
            th.join(30)
        self.assertGreaterEqual(dt, 0.4, "answered before anything changed")
        self.assertLess(dt, 10, "not woken by the change")
        jid = holder["job"]["id"]
        self.assertIn(jid, [x["id"] for x in ans["jobs"]])
        seqs = [x["seq"] for x in ans["jobs"]]
        self.assertEqual(seqs, sorted(seqs), "change order")
        self.assertTrue(all(s > s0 for s in seqs))
        self.assertGreaterEqual(ans["seq"], max(seqs))

        # Follow the changes until the job ends.
        since, states, end = ans["seq"], [x["state"] for x in ans["jobs"] if x["id"] == jid], time.monotonic() + 15
        while "succeeded" not in states and time.monotonic() < end:
            ans = j.list(since=since, wait=5)
            for x in ans["jobs"]:
                self.assertGreater(x["seq"], since)
                if x["id"] == jid:
                    states.append(x["state"])
            self.assertGreaterEqual(ans["seq"], since)
            since = ans["seq"]
        self.assertIn("succeeded", states, "the end of the job was never reported")

        # Caught up: wait=0 answers at once and empty.
        t0 = time.monotonic()
        ans = j.list(since=since, wait=0)
        self.assertEqual(ans["jobs"], [])
        self.assertLess(time.monotonic() - t0, 1.0)
        # since=0 shows the job once, at its latest state.
        ans = j.list(since=0, wait=0)
        mine = [x for x in ans["jobs"] if x["id"] == jid]
        self.assertEqual(len(mine), 1)
        self.assertEqual(mine[0]["state"], "succeeded")

    # -- idempotency

    def test_idempotency_key(self):
        j = self.j
        key = "idem-" + self.uniq()
        spec = {"command": ["echo", "once"], "name": "idem"}
        r1 = j.request("POST", "/v1/jobs", spec, headers={"Idempotency-Key": key})
        self.assertEqual(r1.status, 201, r1)
        r2 = j.request("POST", "/v1/jobs", spec, headers={"Idempotency-Key": key})
        self.assertEqual(r2.status, 200, r2)
        self.assertEqual(r2.json["id"], r1.json["id"])
        r3 = j.request("POST", "/v1/jobs", {"command": ["echo", "twice"]}, headers={"Idempotency-Key": key})
        self.assertProblem(r3, 409)
        r4 = j.request("POST", "/v1/jobs", spec, headers={"Idempotency-Key": key + "-other"})
        self.assertEqual(r4.status, 201, r4)
        self.assertNotEqual(r4.json["id"], r1.json["id"])
        # The job ran once.
        j.wait_job(r1.json["id"])
        self.assertEqual(j.output(r1.json["id"]), b"once\n")
        ids = [x["id"] for x in j.list(name="idem", limit=500)["jobs"]]
        self.assertEqual(ids.count(r1.json["id"]), 1)
        j.wait_job(r4.json["id"])
        # Still 200 after the job ended.
        r5 = j.request("POST", "/v1/jobs", spec, headers={"Idempotency-Key": key})
        self.assertEqual(r5.status, 200, r5)
        self.assertEqual(r5.json["id"], r1.json["id"])
        self.assertEqual(r5.json["state"], "succeeded")

    # -- cancel and delete

    def test_cancel_queued_and_running(self):
        j = self.start_jobd("--max-procs", "1")
        blocker = j.submit({"command": ["sleep", "30"], "kill_grace": 2})
        blocker_pid = j.wait_state(blocker["id"], "running")["pid"]
        queued = j.submit({"command": ["echo", "never"]})
        time.sleep(0.2)
        self.assertEqual(j.job(queued["id"])["state"], "queued")

        r = j.request("POST", "/v1/jobs/%s/cancel" % queued["id"])
        self.assertEqual(r.status, 202, r)
        self.assertEqual(r.json["id"], queued["id"])
        self.assertEqual(r.json["state"], "cancelled", "a queued job is cancelled at once")
        got = j.job(queued["id"])
        self.assertEqual(got["state"], "cancelled")
        self.assertIsNone(got["started_at"])
        self.assertIsNone(got["pid"])
        self.assertIsNotNone(got["finished_at"])

        t0 = time.monotonic()
        r = j.request("POST", "/v1/jobs/%s/cancel" % blocker["id"])
        self.assertEqual(r.status, 202, r)
        self.assertIn(r.json["state"], ("running", "cancelled"))
        got = j.wait_job(blocker["id"], 10)
        dt = time.monotonic() - t0
        self.assertEqual(got["state"], "cancelled", got)
        self.assertLess(dt, 2 + 1.5, "sleep dies on SIGTERM: ended within kill_grace")
        self.assertFalse(jobdtest.alive(blocker_pid), "the process is gone")

        for x in (queued, blocker):
            r = j.request("POST", "/v1/jobs/%s/cancel" % x["id"])
            self.assertProblem(r, 409)
        # The cancelled queued job never ran.
        time.sleep(0.3)
        self.assertEqual(j.job(queued["id"])["state"], "cancelled")
        self.assertEqual(j.output(queued["id"]), b"")

    def test_cancel_unknown_is_404(self):
        self.assertProblem(self.j.request("POST", "/v1/jobs/jzzzzzzz/cancel"), 404)

    def test_delete(self):
        j = self.j
        done = j.submit({"shell": "echo out; echo err >&2"}, wait=15)
        self.assertEqual(done["state"], "succeeded")
        self.assertEqual(j.output(done["id"]), b"out\n")
        files = j.output_files(done["id"])
        running = j.submit({"command": ["sleep", "30"], "kill_grace": 1})
        try:
            j.wait_state(running["id"], "running")
            self.assertProblem(j.request("DELETE", "/v1/jobs/" + running["id"]), 409)
            self.assertEqual(j.job(running["id"])["state"], "running")
        finally:
            j.request("POST", "/v1/jobs/%s/cancel" % running["id"])

        r = j.request("DELETE", "/v1/jobs/" + done["id"])
        self.assertEqual(r.status, 204, r)
        self.assertEqual(r.body, b"")
        self.assertProblem(j.request("GET", "/v1/jobs/" + done["id"]), 404)
        self.assertProblem(j.request("GET", "/v1/jobs/%s/stdout" % done["id"]), 404)
        self.assertProblem(j.request("GET", "/v1/jobs/%s/stderr" % done["id"]), 404)
        self.assertProblem(j.request("DELETE", "/v1/jobs/" + done["id"]), 404)
        self.assertNotIn(done["id"], [x["id"] for x in j.list(limit=500)["jobs"]])
        for f in files:
            self.assertFalse(os.path.exists(f), "output file %s is still there" % f)
        self.assertEqual(j.output_files(done["id"]), [])
        self.assertProblem(j.request("DELETE", "/v1/jobs/jzzzzzzz"), 404)
        # The cancelled job can be deleted once it has ended.
        j.wait_job(running["id"], 10)
        self.assertEqual(j.request("DELETE", "/v1/jobs/" + running["id"]).status, 204)

    # -- output

    def test_stdout_stderr_offset(self):
        j = self.j
        job = j.submit({"shell": "printf hello-out; printf hello-err >&2"}, wait=15)
        self.assertEqual(job["state"], "succeeded")
        self.assertEqual(job["stdout_bytes"], 9)
        self.assertEqual(job["stderr_bytes"], 9)
        self.assertFalse(job["stdout_truncated"])
        self.assertFalse(job["stderr_truncated"])
        r = j.request("GET", "/v1/jobs/%s/stdout" % job["id"])
        self.assertEqual(r.status, 200)
        self.assertIn(r.ctype, ("application/octet-stream", "text/plain"))
        self.assertEqual(r.body, b"hello-out")
        self.assertEqual(j.output(job["id"], "stderr"), b"hello-err")
        self.assertEqual(j.output(job["id"], "stdout", offset=6), b"out")
        self.assertEqual(j.output(job["id"], "stderr", offset=0), b"hello-err")
        self.assertEqual(j.output(job["id"], "stdout", offset=9), b"")
        self.assertEqual(j.output(job["id"], "stdout", offset=1000), b"")
        self.assertProblem(j.request("GET", "/v1/jobs/%s/stdout?offset=-1" % job["id"]), 400, field="offset")
        # A job that printed nothing has empty output.
        quiet = j.submit({"command": ["true"]}, wait=15)
        self.assertEqual(j.output(quiet["id"]), b"")
        self.assertEqual(quiet["stdout_bytes"], 0)

    def test_follow_streams_live_output(self):
        j = self.j
        job = j.submit({"shell": "echo a; sleep 2; echo b"})
        t0 = time.monotonic()
        conn, resp = j.stream("GET", "/v1/jobs/%s/stdout?follow=true" % job["id"], timeout=15)
        try:
            self.assertEqual(resp.status, 200)
            first = b""
            while b"a\n" not in first and time.monotonic() - t0 < 10:
                chunk = resp.read1(65536)
                if not chunk:
                    break
                first += chunk
            t_first = time.monotonic() - t0
            state_then = j.job(job["id"])["state"]
            self.assertEqual(first, b"a\n", "the first chunk is the first line only")
            self.assertLess(t_first, 1.7, "the first line came only at the end")
            self.assertNotIn(state_then, FINAL_STATES, "the first chunk came while the job ran")
            rest = b""
            while time.monotonic() - t0 < 12:
                chunk = resp.read1(65536)
                if not chunk:
                    break
                rest += chunk
            self.assertEqual(first + rest, b"a\nb\n")
            self.assertGreaterEqual(time.monotonic() - t0, 1.5, "the stream ends when the job ends")
        finally:
            conn.close()
        self.assertEqual(j.wait_job(job["id"], 10)["state"], "succeeded")
        # follow on an ended job, from an offset, answers what is left and ends.
        conn, resp = j.stream("GET", "/v1/jobs/%s/stdout?follow=true&offset=2" % job["id"], timeout=10)
        try:
            self.assertEqual(resp.status, 200)
            self.assertEqual(resp.read(), b"b\n")
        finally:
            conn.close()

    def test_follow_ends_when_the_job_is_cancelled(self):
        j = self.j
        job = j.submit({"shell": "echo started; exec sleep 30", "kill_grace": 1})
        j.wait_output(job["id"], b"started\n")
        conn, resp = j.stream("GET", "/v1/jobs/%s/stderr?follow=true" % job["id"], timeout=15)
        try:
            self.assertEqual(resp.status, 200)
            timer = threading.Timer(0.5, lambda: j.request("POST", "/v1/jobs/%s/cancel" % job["id"]))
            timer.start()
            t0 = time.monotonic()
            body = resp.read()
            dt = time.monotonic() - t0
            timer.join(5)
        finally:
            conn.close()
        self.assertEqual(body, b"")
        self.assertGreaterEqual(dt, 0.4, "the stream ended before the job did")
        self.assertLess(dt, 5, "the stream did not end with the job")
        self.assertEqual(j.job(job["id"])["state"], "cancelled")

    def test_follow_a_queued_job(self):
        """follow on a job that has not started waits for it, then streams it."""
        j = self.start_jobd("--max-procs", "1")
        gate = os.path.join(j.tmp, "gate")
        blocker = j.submit({"shell": "while [ ! -e %s ]; do sleep 0.05; done" % gate, "timeout": 30})
        j.wait_state(blocker["id"], "running")
        job = j.submit({"shell": "echo one; sleep 0.3; echo two"})
        self.assertEqual(job["state"], "queued")
        threading.Timer(0.5, lambda: open(gate, "w").close()).start()
        conn, resp = j.stream("GET", "/v1/jobs/%s/stdout?follow=true" % job["id"], timeout=15)
        try:
            self.assertEqual(resp.status, 200)
            self.assertEqual(resp.read(), b"one\ntwo\n")
        finally:
            conn.close()
        self.assertEqual(j.job(job["id"])["state"], "succeeded")

    def test_ten_mib_on_stdout_and_stderr_at_once(self):
        j = self.j
        size = 10 * MiB
        # Both writers run at once, and the stderr writer also holds stdout
        # open: a reader that drains one pipe after the other deadlocks here.
        shell = (
            "(yes out-0123456789a | head -c %d) & "
            "(yes ERR-0123456789a | head -c %d >&2) & wait" % (size, size)
        )
        job = j.submit({"shell": shell})
        done = j.wait_job(job["id"], 60)
        self.assertEqual(done["state"], "succeeded", done)
        self.assertEqual(done["stdout_bytes"], size)
        self.assertEqual(done["stderr_bytes"], size)
        self.assertFalse(done["stdout_truncated"])
        self.assertFalse(done["stderr_truncated"])
        out = j.output(job["id"], "stdout")
        err = j.output(job["id"], "stderr")
        self.assertEqual(len(out), size)
        self.assertEqual(len(err), size)
        self.assertTrue(out == b"out-0123456789a\n" * (size // 16), "stdout content differs")
        self.assertTrue(err == b"ERR-0123456789a\n" * (size // 16), "stderr content differs")
        tail = j.output(job["id"], "stdout", offset=size - 20)
        self.assertEqual(tail, (b"out-0123456789a\n" * 2)[-20:])

    def test_stdin_round_trip(self):
        j = self.j
        text = "h\u00e9llo w\u00f6rld \u2713 \u65e5\u672c\u8a9e \U0001F600\nline 2\ttab\x01\x7f\n"
        job = j.submit({"command": ["cat"], "stdin": text}, wait=15)
        self.assertEqual(job["state"], "succeeded", job)
        self.assertEqual(j.output(job["id"]), text.encode("utf-8"))
        # Larger than a pipe buffer: stdin is written while output is drained.
        big = ("\u00e9\u00e8 %06d \u2603\n" * 20000) % tuple(range(20000))
        job = j.submit({"command": ["cat"], "stdin": big}, wait=30)
        self.assertEqual(job["state"], "succeeded", job)
        out = j.output(job["id"])
        self.assertEqual(len(out), len(big.encode()))
        self.assertTrue(out == big.encode(), "cat echoed different bytes")
        # No stdin: the job reads end-of-file at once.
        job = j.submit({"command": ["cat"], "timeout": 10}, wait=15)
        self.assertEqual(job["state"], "succeeded", job)
        self.assertEqual(j.output(job["id"]), b"")

    # -- how jobs end

    def test_timeout(self):
        t0 = time.monotonic()
        job = self.j.submit({"command": ["sleep", "30"], "timeout": 0.5, "kill_grace": 2}, wait=20)
        dt = time.monotonic() - t0
        self.assertEqual(job["state"], "timed_out", job)
        self.assertGreaterEqual(dt, 0.45)
        self.assertLess(dt, 4)
        self.assertFalse(jobdtest.alive(job["pid"]) if job["pid"] else False)

    def test_kill_signal_and_grace_on_cancel(self):
        """A job that traps its kill_signal is killed with SIGKILL after kill_grace."""
        j = self.j
        shell = "trap 'echo got-usr1' USR1; echo ready; while :; do sleep 0.1; done"
        job = j.submit({"shell": shell, "kill_signal": "SIGUSR1", "kill_grace": 1.5})
        self.assertEqual(job["kill_signal"], "SIGUSR1")
        j.wait_output(job["id"], b"ready\n")
        t0 = time.monotonic()
        self.assertEqual(j.request("POST", "/v1/jobs/%s/cancel" % job["id"]).status, 202)
        time.sleep(0.8)
        self.assertEqual(j.job(job["id"])["state"], "running", "SIGKILL came before kill_grace")
        done = j.wait_job(job["id"], 10)
        dt = time.monotonic() - t0
        self.assertEqual(done["state"], "cancelled", done)
        self.assertGreaterEqual(dt, 1.3, "SIGKILL came before kill_grace")
        self.assertLess(dt, 4.5)
        self.assertIn(b"got-usr1", j.output(job["id"]), "kill_signal was not sent first")

    def test_timeout_with_trapped_term(self):
        j = self.j
        shell = "trap 'echo got-term' TERM; echo ready; while :; do sleep 0.1; done"
        job = j.submit({"shell": shell, "timeout": 1, "kill_grace": 1})
        done = j.wait_job(job["id"], 15)
        self.assertEqual(done["state"], "timed_out", done)
        ran = parse_time(done["finished_at"]) - parse_time(done["started_at"])
        self.assertGreaterEqual(ran, 1.8, "ended before timeout + kill_grace")
        self.assertLess(ran, 4)
        out = j.output(job["id"])
        self.assertTrue(out.startswith(b"ready\n"))
        self.assertIn(b"got-term", out)

    def test_exit_code(self):
        job = self.j.submit({"shell": "echo before; exit 3"}, wait=15)
        self.assertEqual(job["state"], "failed")
        self.assertEqual(job["exit_code"], 3)
        self.assertIsNone(job["signal"])
        self.assertIsInstance(job["error"], str)
        self.assertTrue(job["error"], "error says why in words")
        self.assertEqual(job["attempts"], 1)
        self.assertEqual(self.j.output(job["id"]), b"before\n")

    def test_killed_by_signal(self):
        for sig in ("KILL", "SEGV", "TERM"):
            job = self.j.submit({"shell": "ulimit -c 0; kill -%s $$" % sig}, wait=15)
            self.assertEqual(job["state"], "failed", job)
            self.assertEqual(job["signal"], "SIG" + sig, job)
            self.assertIsNone(job["exit_code"], job)
            self.assertTrue(job["error"], job)

    def test_command_not_found(self):
        job = self.j.submit({"command": ["nosuchcmd-xyz", "arg"]}, wait=15)
        self.assertEqual(job["state"], "failed", job)
        self.assertIsNone(job["exit_code"])
        self.assertIsInstance(job["error"], str)
        self.assertIn("nosuchcmd-xyz", job["error"])
        self.assertIn("not found", job["error"])
        # An absolute path that does not exist, and one that is not executable.
        job = self.j.submit({"command": ["/nonexistent/bin/x"]}, wait=15)
        self.assertEqual(job["state"], "failed", job)
        self.assertIn("/nonexistent/bin/x", job["error"] or "")
        job = self.j.submit({"command": ["/etc/hostname"]}, wait=15)
        self.assertEqual(job["state"], "failed", job)
        self.assertIsNone(job["exit_code"])
        self.assertTrue(job["error"])

    def test_bad_cwd(self):
        job = self.j.submit({"command": ["true"], "cwd": "/nonexistent-dir-xyz"}, wait=15)
        self.assertEqual(job["state"], "failed", job)
        self.assertIsNone(job["exit_code"])
        self.assertIn("/nonexistent-dir-xyz", job["error"] or "")
        job = self.j.submit({"command": ["pwd"], "cwd": "/tmp"}, wait=15)
        self.assertEqual(job["state"], "succeeded", job)
        self.assertEqual(self.j.output(job["id"]), b"/tmp\n")

    def test_env_is_clean(self):
        job = self.j.submit({"command": ["env"], "env": {"FOO": "bar baz", "EMPTY": ""}}, wait=15)
        self.assertEqual(job["state"], "succeeded", job)
        self.assertEqual(job["env"], {"FOO": "bar baz", "EMPTY": ""})
        out = self.j.output(job["id"]).decode()
        lines = out.splitlines()
        self.assertIn("FOO=bar baz", lines)
        self.assertIn("EMPTY=", lines)
        self.assertNotIn("SECRET_TEST_VAR", out)
        self.assertNotIn(SECRET, out)
        for var in ("PATH", "HOME", "LANG"):
            self.assertTrue(any(l.startswith(var + "=") for l in lines), "%s missing: %s" % (var, out))
        self.assertFalse([l for l in lines if l.startswith("JOBD_")], out)
        # A small environment: PATH, HOME, LANG, and what the spec adds.
        self.assertLessEqual(len(lines), 12, out)

    def test_rlimits(self):
        j = self.j
        job = j.submit({"shell": "ulimit -n; ulimit -t; ulimit -v",
                        "limits": {"open_files": 32, "cpu_seconds": 7, "memory_bytes": 512 * MiB}}, wait=15)
        self.assertEqual(job["state"], "succeeded", job)
        self.assertEqual(job["limits"], {"open_files": 32, "cpu_seconds": 7, "memory_bytes": 512 * MiB,
                                         "output_bytes": None})
        self.assertEqual(j.output(job["id"]).split(), [b"32", b"7", b"%d" % (512 * 1024)])
        # A CPU-bound job is stopped by its cpu_seconds limit.
        t0 = time.monotonic()
        job = j.submit({"shell": "while :; do :; done", "limits": {"cpu_seconds": 1}, "timeout": 20}, wait=25)
        self.assertEqual(job["state"], "failed", job)
        self.assertIn(job["signal"], ("SIGXCPU", "SIGKILL"), job)
        self.assertLess(time.monotonic() - t0, 15)

    def test_children_see_only_fds_0_to_2(self):
        j = self.j
        job = j.submit({"command": ["sleep", "30"], "kill_grace": 1})
        try:
            run = j.wait_state(job["id"], "running")
            pid = run["pid"]
            self.assertIsInstance(pid, int)
            fds = sorted(int(x) for x in os.listdir("/proc/%d/fd" % pid))
            self.assertEqual(fds, [0, 1, 2], "descriptors leaked into the job: %s" % {
                fd: os.readlink("/proc/%d/fd/%d" % (pid, fd)) for fd in fds if fd > 2})
            st = jobdtest.proc_stat(pid)
            self.assertEqual(st["pgid"], pid, "the job leads its own process group")
            self.assertIn(pid, [p for p, _ in jobdtest.children_of(j.pid)], "the job is a child of jobd")
            self.assertNotEqual(st["pgid"], jobdtest.proc_stat(j.pid)["pgid"])
        finally:
            j.request("POST", "/v1/jobs/%s/cancel" % job["id"])
        j.wait_job(job["id"], 10)
        # The same for a grandchild, looked at once it has exec'd.
        job = j.submit({"shell": "sleep 10 & p=$!; n=0; "
                                 "until grep -q sleep /proc/$p/cmdline 2>/dev/null || [ $n -ge 200 ]; "
                                 "do sleep 0.05; n=$((n+1)); done; ls /proc/$p/fd; kill $p; wait"},
                       wait=25)
        self.assertEqual(job["state"], "succeeded", job)
        self.assertEqual(sorted(j.output(job["id"]).split()), [b"0", b"1", b"2"])

    def test_retries(self):
        j = self.j
        # Every attempt fails with a retryable code: 1 + retries attempts.
        a = j.submit({"shell": "echo attempt; exit 3", "retries": 2, "retry_delay": 0.1,
                      "retry_exit_codes": [3, 4]})
        # A code not listed is final at once.
        b = j.submit({"shell": "exit 5", "retries": 2, "retry_delay": 0.1, "retry_exit_codes": [3]})
        # Succeeds at the second attempt.
        flag = os.path.join(self.scratch, "retry-flag-%d" % time.monotonic_ns())
        c = j.submit({"shell": "if [ -e %s ]; then echo second; exit 0; fi; touch %s; echo first; exit 3"
                      % (flag, flag), "retries": 3, "retry_delay": 0.1})
        # No retry_exit_codes: any failure is retried.
        d = j.submit({"command": ["false"], "retries": 1, "retry_delay": 0.1})
        a, b, c, d = (j.wait_job(x["id"], 30) for x in (a, b, c, d))
        self.assertEqual((a["state"], a["exit_code"], a["attempts"]), ("failed", 3, 3), a)
        self.assertEqual(j.output(a["id"]), b"attempt\n", "the output holds the latest attempt")
        self.assertEqual(a["stdout_bytes"], 8)
        self.assertEqual((b["state"], b["exit_code"], b["attempts"]), ("failed", 5, 1), b)
        self.assertEqual((c["state"], c["exit_code"], c["attempts"]), ("succeeded", 0, 2), c)
        self.assertEqual(j.output(c["id"]), b"second\n")
        self.assertEqual((d["state"], d["attempts"]), ("failed", 2), d)

    def test_cancel_during_retry_backoff(self):
        j = self.j
        job = j.submit({"command": ["false"], "retries": 5, "retry_delay": 30})
        end = time.monotonic() + 10
        cur = j.job(job["id"])
        while cur["attempts"] < 1 or cur["state"] == "running":
            self.assertLess(time.monotonic(), end, "first attempt did not end: %s" % cur)
            time.sleep(0.05)
            cur = j.job(job["id"])
        self.assertEqual(cur["state"], "queued", "waiting for its retry: %s" % cur)
        t0 = time.monotonic()
        r = j.request("POST", "/v1/jobs/%s/cancel" % job["id"])
        self.assertEqual(r.status, 202, r)
        done = j.wait_job(job["id"], 10)
        self.assertEqual(done["state"], "cancelled", done)
        self.assertLess(time.monotonic() - t0, 3)
        self.assertEqual(done["attempts"], 1)

    def test_max_procs_bounds_running_jobs(self):
        j = self.start_jobd("--max-procs", "2")
        ids = [j.submit({"shell": "sleep 0.4"})["id"] for _ in range(6)]
        jobs = [j.wait_job(i, 20) for i in ids]
        spans = [(parse_time(x["started_at"]), parse_time(x["finished_at"])) for x in jobs]
        self.assertEqual({x["state"] for x in jobs}, {"succeeded"})
        for t, _ in spans:
            overlap = sum(1 for a, b in spans if a <= t < b)
            self.assertLessEqual(overlap, 2, "more than --max-procs jobs ran at once: %s" % spans)
        self.assertGreaterEqual(max(b for _, b in spans) - min(a for a, _ in spans), 1.1)

    def test_follow_big_output(self):
        """follow delivers every byte of a job that writes in bursts, in order."""
        j = self.j
        shell = "for i in 1 2 3 4; do yes line-$i-0123456 | head -c 500000; sleep 0.2; done"
        job = j.submit({"shell": shell})
        conn, resp = j.stream("GET", "/v1/jobs/%s/stdout?follow=true" % job["id"], timeout=30)
        try:
            self.assertEqual(resp.status, 200)
            got = resp.read()
        finally:
            conn.close()
        expect = b"".join((b"line-%d-0123456\n" % i * 40000)[:500000] for i in (1, 2, 3, 4))
        self.assertEqual(len(got), len(expect))
        self.assertTrue(got == expect, "follow delivered different bytes")
        self.assertEqual(j.wait_job(job["id"], 10)["stdout_bytes"], 2000000)

    def test_blocking_query_with_label_filter(self):
        """What a coordinator polls: since+wait restricted to its own jobs."""
        j = self.start_jobd()
        s0 = j.list()["seq"]
        holder = {}

        def later():
            time.sleep(0.3)
            j.submit({"command": ["true"], "labels": {"node": "other"}}, wait=10)
            time.sleep(0.3)
            holder["mine"] = j.submit({"command": ["true"], "labels": {"node": "me"}})

        th = threading.Thread(target=later)
        th.start()
        try:
            t0 = time.monotonic()
            ans = j.list(since=s0, wait=20, label="node=me")
            dt = time.monotonic() - t0
        finally:
            th.join(30)
        self.assertGreaterEqual(dt, 0.5, "woken by a change to a job that does not match")
        self.assertTrue(ans["jobs"])
        self.assertEqual({x["labels"]["node"] for x in ans["jobs"]}, {"me"})
        self.assertIn(holder["mine"]["id"], [x["id"] for x in ans["jobs"]])

    def test_retry_delay_is_respected(self):
        t0 = time.monotonic()
        job = self.j.submit({"command": ["false"], "retries": 1, "retry_delay": 1.0}, wait=20)
        dt = time.monotonic() - t0
        self.assertEqual((job["state"], job["attempts"]), ("failed", 2), job)
        self.assertGreaterEqual(dt, 0.9, "retried before retry_delay")
        self.assertLess(dt, 8)

    def test_priority_order(self):
        j = self.start_jobd("--max-procs", "1")
        gate = os.path.join(j.tmp, "gate")
        order = os.path.join(j.tmp, "order")
        blocker = j.submit({"shell": "while [ ! -e %s ]; do sleep 0.05; done" % gate, "timeout": 30})
        j.wait_state(blocker["id"], "running")
        plan = [("low", -5), ("mid1", 0), ("high1", 10), ("mid2", 0), ("high2", 10), ("top", 100),
                ("bottom", -100)]
        ids = []
        for name, prio in plan:
            job = j.submit({"shell": "echo %s >> %s" % (name, order), "priority": prio, "name": name})
            self.assertEqual(job["priority"], prio)
            self.assertEqual(job["state"], "queued")
            ids.append(job["id"])
        open(gate, "w").close()
        for i in [blocker["id"]] + ids:
            self.assertEqual(j.wait_job(i, 20)["state"], "succeeded")
        with open(order) as f:
            ran = f.read().split()
        self.assertEqual(ran, ["top", "high1", "high2", "mid1", "mid2", "low", "bottom"])

    def test_queue_full_429(self):
        j = self.start_jobd("--max-procs", "1", "--max-queued", "2")
        blocker = j.submit({"command": ["sleep", "30"], "kill_grace": 1})
        j.wait_state(blocker["id"], "running")
        q1 = j.submit({"command": ["true"]})
        q2 = j.submit({"command": ["true"]})
        r = j.request("POST", "/v1/jobs", {"command": ["true"]})
        self.assertProblem(r, 429)
        ra = r.headers.get("Retry-After")
        self.assertIsNotNone(ra, "429 without Retry-After")
        self.assertTrue(ra.strip().isdigit(), "Retry-After is delay-seconds: %r" % ra)
        # The refused job does not exist.
        self.assertEqual(len(j.list()["jobs"]), 3)
        # Room again after a cancel.
        self.assertEqual(j.request("POST", "/v1/jobs/%s/cancel" % q2["id"]).status, 202)
        q3 = j.submit({"command": ["true"]})
        j.request("POST", "/v1/jobs/%s/cancel" % blocker["id"])
        self.assertEqual(j.wait_job(q1["id"], 15)["state"], "succeeded")
        self.assertEqual(j.wait_job(q3["id"], 15)["state"], "succeeded")

    def test_output_cap_keeps_head_and_tail(self):
        j = self.j
        shell = ("i=0; while [ $i -lt 2000 ]; do printf 'line%05d\\n' $i; i=$((i+1)); done; "
                 "echo small >&2")
        job = j.submit({"shell": shell, "limits": {"output_bytes": 4096}}, wait=30)
        self.assertEqual(job["state"], "succeeded", job)
        self.assertEqual(job["limits"]["output_bytes"], 4096)
        expect = b"".join(b"line%05d\n" % i for i in range(2000))
        self.assertEqual(len(expect), 20000)
        self.assertEqual(job["stdout_bytes"], 20000, "stdout_bytes counts everything written")
        self.assertTrue(job["stdout_truncated"])
        self.assertFalse(job["stderr_truncated"])
        self.assertEqual(job["stderr_bytes"], 6)
        out = j.output(job["id"])
        self.assertEqual(len(out), 4096)
        self.assertTrue(out == expect[:2048] + expect[-2048:], "head 2048 + tail 2048 bytes: %r" % out[2000:2100])
        self.assertEqual(j.output(job["id"], "stderr"), b"small\n")
        # Reading from an offset inside the tail.
        self.assertEqual(j.output(job["id"], offset=4096 - 10), expect[-10:])

    def test_max_output_flag_is_the_default_cap(self):
        j = self.start_jobd("--max-output", "2048")
        job = j.submit({"shell": "yes 0123456789abcde | head -c 100000"}, wait=30)
        self.assertEqual(job["state"], "succeeded", job)
        self.assertEqual(job["stdout_bytes"], 100000)
        self.assertTrue(job["stdout_truncated"])
        self.assertEqual(len(j.output(job["id"])), 2048)
        # A spec's limit overrides it.
        job = j.submit({"shell": "yes 0123456789abcde | head -c 100000", "limits": {"output_bytes": 200000}},
                       wait=30)
        self.assertFalse(job["stdout_truncated"])
        self.assertEqual(len(j.output(job["id"])), 100000)


if __name__ == "__main__":
    jobdtest.main()
