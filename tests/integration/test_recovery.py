#!/usr/bin/env python3
"""Integration tests of persistence and recovery: kill -9 with queued and
running jobs, ids that never repeat, SIGTERM shutdown with --shutdown-grace,
and --retention."""

import os
import signal
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import jobdtest  # noqa: E402
from jobdtest import JobdTestCase, idnum, parse_time  # noqa: E402


def wait_group_gone(pgid, timeout):
    """True once no live (non-zombie) process is left in process group pgid."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if not jobdtest.live_group_members(pgid):
            return True
        time.sleep(0.1)
    return False


class RecoveryTest(JobdTestCase):
    def test_kill9_then_restart(self):
        j = self.start_jobd("--max-procs", "2")
        flag = os.path.join(j.tmp, "second-attempt")
        plain = j.submit({"command": ["sleep", "30"], "name": "plain"})
        retried = j.submit({
            "shell": "if [ -e %s ]; then echo second; exit 0; fi; touch %s; echo first; sleep 30" % (flag, flag),
            "retries": 1, "retry_delay": 0.1, "name": "retried"})
        run_plain = j.wait_state(plain["id"], "running")
        run_retried = j.wait_state(retried["id"], "running")
        j.wait_output(retried["id"], b"first\n")
        q1 = j.submit({"shell": "echo q1"})
        q2 = j.submit({"command": ["echo", "q2"], "env": {"X": "y"}})
        self.assertEqual(q1["state"], "queued")
        self.assertEqual(q2["state"], "queued")
        groups = {}
        for run in (run_plain, run_retried):
            pid = run["pid"]
            st = jobdtest.proc_stat(pid)
            self.assertIsNotNone(st, "the job's process is not there")
            groups[pid] = st["start"]
        before_ids = [plain["id"], retried["id"], q1["id"], q2["id"]]

        j.kill9()
        j.restart()

        # Every acknowledged job is there.
        for jid in before_ids:
            self.assertEqual(j.job(jid)["id"], jid)
        # The interrupted one failed, the one with retries left ran again.
        p = j.wait_job(plain["id"], 15)
        self.assertEqual(p["state"], "failed", p)
        self.assertIn("interrupted", p["error"] or "", p)
        r = j.wait_job(retried["id"], 15)
        self.assertEqual(r["state"], "succeeded", r)
        self.assertEqual(r["attempts"], 2, r)
        self.assertEqual(j.output(retried["id"]), b"second\n")
        # Queued ones ran.
        self.assertEqual(j.wait_job(q1["id"], 15)["state"], "succeeded")
        self.assertEqual(j.wait_job(q2["id"], 15)["state"], "succeeded")
        self.assertEqual(j.output(q1["id"]), b"q1\n")
        self.assertEqual(j.output(q2["id"]), b"q2\n")
        # The leftover processes of the previous run are gone.
        for pgid in groups:
            self.assertTrue(wait_group_gone(pgid, 5), "process group %d survived the restart" % pgid)

        # New ids are larger, and never repeat, also after deleting the newest job.
        top = max(idnum(i) for i in before_ids)
        new = j.submit({"command": ["true"]}, wait=10)
        self.assertGreater(idnum(new["id"]), top)
        self.assertEqual(j.request("DELETE", "/v1/jobs/" + new["id"]).status, 204)
        self.assertEqual(j.stop(signal.SIGTERM, 20), 0)
        j.restart()
        newer = j.submit({"command": ["true"]}, wait=10)
        self.assertGreater(idnum(newer["id"]), idnum(new["id"]), "an id was reused after delete + restart")
        self.assertEqual(j.request("GET", "/v1/jobs/" + new["id"]).status, 404)
        # Same after a crash right after the delete.
        self.assertEqual(j.request("DELETE", "/v1/jobs/" + newer["id"]).status, 204)
        j.kill9()
        j.restart()
        newest = j.submit({"command": ["true"]})
        self.assertGreater(idnum(newest["id"]), idnum(newer["id"]))
        # seq keeps growing across restarts too.
        self.assertGreater(j.wait_job(newest["id"])["seq"], r["seq"])

    def test_acknowledged_jobs_survive_kill9_under_load(self):
        """Every 201 is on disk: submissions racing a kill -9 are all there after restart."""
        j = self.start_jobd("--max-procs", "1")
        blocker = j.submit({"command": ["sleep", "30"]})
        acked, lock, stop = [], threading.Lock(), threading.Event()

        def submitter():
            while not stop.is_set() and len(acked) < 400:
                try:
                    r = j.request("POST", "/v1/jobs", {"command": ["true"]}, timeout=5)
                except OSError:
                    return
                if r.status == 201:
                    with lock:
                        acked.append(r.json["id"])

        ts = [threading.Thread(target=submitter, daemon=True) for _ in range(4)]
        for t in ts:
            t.start()
        time.sleep(1.0)
        j.kill9()
        stop.set()
        for t in ts:
            t.join(10)
        self.assertGreater(len(acked), 0)
        j.restart()
        missing = [i for i in acked + [blocker["id"]] if j.request("GET", "/v1/jobs/" + i).status != 200]
        self.assertEqual(missing, [], "acknowledged jobs lost by kill -9")
        j.request("POST", "/v1/jobs/%s/cancel" % blocker["id"])

    def test_sigterm_shutdown(self):
        j = self.start_jobd("--max-procs", "3", "--shutdown-grace", "2")
        flag = os.path.join(j.tmp, "again")
        short = j.submit({"shell": "sleep 1; echo short-done"})
        long = j.submit({"command": ["sleep", "30"]})
        retry = j.submit({"shell": "if [ -e %s ]; then echo again; exit 0; fi; touch %s; sleep 30" % (flag, flag),
                          "retries": 1, "retry_delay": 0.1})
        queued = j.submit({"command": ["echo", "queued-ran"]})
        j.wait_state(short["id"], "running")
        j.wait_state(retry["id"], "running")
        long_pid = j.wait_state(long["id"], "running")["pid"]
        self.assertEqual(j.job(queued["id"])["state"], "queued")

        t_term = time.time()
        j.proc.send_signal(signal.SIGTERM)
        time.sleep(0.2)
        try:
            r = j.request("POST", "/v1/jobs", {"command": ["true"]}, timeout=5)
            status = r.status
            if status == 503:
                self.assertProblem(r, 503)
        except OSError as e:
            status = "connection error: %s" % e
        self.assertEqual(status, 503, "a request during shutdown")
        rc = j.wait_exit(20)
        self.assertIsNotNone(rc, "jobd did not exit within 20 s of SIGTERM")
        self.assertEqual(rc, 0)
        took = time.time() - t_term
        self.assertLess(took, 2 + 5 + 3, "shutdown took too long")
        self.assertTrue(wait_group_gone(long_pid, 5), "the long job's process survived shutdown")

        t_restart = time.time()
        j.restart()
        s = j.job(short["id"])
        self.assertEqual(s["state"], "succeeded", "a job ending within --shutdown-grace succeeds: %s" % s)
        self.assertEqual(j.output(short["id"]), b"short-done\n")
        lj = j.job(long["id"])
        self.assertEqual(lj["state"], "failed", lj)
        self.assertIn("interrupted", lj["error"] or "", lj)
        rj = j.wait_job(retry["id"], 15)
        self.assertEqual((rj["state"], rj["attempts"]), ("succeeded", 2), "requeued when retries remain: %s" % rj)
        self.assertEqual(j.output(retry["id"]), b"again\n")
        q = j.wait_job(queued["id"], 15)
        self.assertEqual(q["state"], "succeeded", q)
        self.assertGreaterEqual(parse_time(q["started_at"]), t_restart - 0.5,
                                "the queued job started during shutdown instead of after the restart")
        self.assertEqual(j.output(queued["id"]), b"queued-ran\n")
        self.assertEqual(j.stop(signal.SIGINT, 20), 0, "SIGINT is a clean stop too")

    def test_second_jobd_on_the_same_data_dir_is_refused(self):
        """Two jobd on one data dir would hand out the same ids and overwrite each
        other's jobs: the second must refuse to start."""
        a = self.start_jobd()
        first = a.submit({"command": ["echo", "from-a"]}, wait=10)
        b = self.track(jobdtest.Jobd(data_dir=a.data_dir, start=False))
        try:
            b.start()
        except jobdtest.StartError:
            pass
        if b.port is not None:
            # It started: show the damage it can do.
            other = b.submit({"command": ["echo", "from-b"]}, wait=10)
            self.fail("a second jobd started on the same data dir (ids %s and %s; job %s now says %r)" % (
                first["id"], other["id"], first["id"], a.output(first["id"])))
        rc = b.wait_exit(10)
        self.assertIsNotNone(rc)
        self.assertNotEqual(rc, 0)
        self.assertTrue(b.log().strip(), "refused without a message")
        # The first one is unharmed.
        self.assertEqual(a.output(first["id"]), b"from-a\n")
        self.assertEqual(a.submit({"command": ["true"]}, wait=10)["state"], "succeeded")

    def test_sigterm_with_clients_waiting(self):
        """Parked requests (waits, follows) do not hold up a shutdown."""
        j = self.start_jobd("--shutdown-grace", "1")
        job = j.submit({"shell": "echo x; exec sleep 30"})
        j.wait_output(job["id"], b"x\n")
        answers = []

        def waiter(i):
            try:
                if i % 2:
                    conn, resp = j.stream("GET", "/v1/jobs/%s/stdout?follow=true" % job["id"], timeout=30)
                    try:
                        resp.read()
                        answers.append(resp.status)
                    finally:
                        conn.close()
                else:
                    answers.append(j.request("GET", "/v1/jobs/%s?wait=60" % job["id"], timeout=30).status)
            except (OSError, Exception) as e:  # a closed connection is an acceptable answer
                answers.append(type(e).__name__)

        ts = [threading.Thread(target=waiter, args=(i,), daemon=True) for i in range(10)]
        for t in ts:
            t.start()
        time.sleep(0.5)
        t0 = time.monotonic()
        rc = j.stop(signal.SIGTERM, 20)
        took = time.monotonic() - t0
        self.assertEqual(rc, 0)
        self.assertLess(took, 1 + 5 + 3, "shutdown waited for parked requests")
        for t in ts:
            t.join(10)
        self.assertEqual(len(answers), 10, "clients still hanging after jobd exited")
        j.restart()
        self.assertEqual(j.job(job["id"])["error"], "interrupted")

    def test_retention(self):
        j = self.start_jobd("--retention", "1")
        running = j.submit({"command": ["sleep", "20"]})
        done = j.submit({"shell": "echo keep-me-for-a-second; echo e >&2"}, wait=10)
        self.assertEqual(done["state"], "succeeded")
        self.assertEqual(j.output(done["id"]), b"keep-me-for-a-second\n")
        files = j.output_files(done["id"])
        end = time.monotonic() + 12
        status = 200
        while time.monotonic() < end:
            status = j.request("GET", "/v1/jobs/" + done["id"]).status
            if status == 404:
                break
            time.sleep(0.25)
        self.assertEqual(status, 404, "the ended job was not removed after --retention 1")
        self.assertProblem(j.request("GET", "/v1/jobs/%s/stdout" % done["id"]), 404)
        self.assertEqual(j.output_files(done["id"]), [])
        for f in files:
            self.assertFalse(os.path.exists(f))
        # An active job is never removed by retention.
        self.assertIn(j.job(running["id"])["state"], ("queued", "running"))
        j.request("POST", "/v1/jobs/%s/cancel" % running["id"])


if __name__ == "__main__":
    jobdtest.main()
