"""Batches: POST /v1/batches (all or none), GET /v1/batches/{id}?wait=,
POST /v1/batches/{id}/cancel, GET /v1/jobs?batch=, a concurrency limit that
really bounds how many jobs run at once (also across a kill -9 and restart),
and a batch of 10,000 echo tasks in one request.
"""

import json
import os
import re
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import jobdtest  # noqa: E402
from jobdtest import FINAL_STATES, JobdTestCase, parse_time  # noqa: E402

BATCH_ID_RE = re.compile(r"^b[0-9a-z]+$")
STATES = ("queued", "running", "succeeded", "failed", "cancelled", "timed_out")


def max_overlap(jobs):
    """Most jobs running at one instant, from started_at/finished_at ([start, end) intervals)."""
    events = []
    for j in jobs:
        if j["started_at"] is None:
            continue
        s = parse_time(j["started_at"])
        e = parse_time(j["finished_at"]) if j["finished_at"] else float("inf")
        events += [(s, 1), (e, -1)]
    events.sort()  # at equal times an end (-1) sorts before a start (+1)
    cur = best = 0
    for _, d in events:
        cur += d
        best = max(best, cur)
    return best


class Watcher:
    """Polls GET /v1/jobs?batch=ID every `interval` s in a thread and records the most jobs running at once."""

    def __init__(self, j, bid, interval=0.05):
        self.j, self.bid, self.interval = j, bid, interval
        self.max_running = 0
        self.samples = 0
        self.errors = []
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()

    def _run(self):
        while not self._stop.is_set():
            try:
                ans = self.j.list(batch=self.bid, state="running", limit=1000)
                self.max_running = max(self.max_running, len(ans["jobs"]))
                self.samples += 1
            except Exception as e:  # jobd down during a restart: note and go on
                self.errors.append(repr(e))
            self._stop.wait(self.interval)

    def stop(self):
        self._stop.set()
        self._t.join(10)
        return self.max_running


class BatchTestCase(JobdTestCase):
    def post_batch(self, j, body, expect=201, timeout=60):
        r = j.request("POST", "/v1/batches", body, timeout=timeout)
        self.assertEqual(r.status, expect, r)
        return r

    def get_batch(self, j, bid, wait=None, timeout=None):
        path = "/v1/batches/%s" % bid + ("?wait=%s" % wait if wait is not None else "")
        r = j.request("GET", path, timeout=timeout or 30 + float(wait or 0))
        self.assertEqual(r.status, 200, r)
        return r.json

    def wait_batch(self, j, bid, timeout=30):
        """Long-poll until the batch is done (bounded by `timeout`)."""
        end = time.monotonic() + timeout
        doc = None
        while time.monotonic() < end:
            w = max(1, min(30, int(end - time.monotonic())))
            doc = self.get_batch(j, bid, wait=w)
            if doc["done"]:
                return doc
        self.fail("batch %s not done within %ss: %s" % (bid, timeout, json.dumps(doc)[:500]))

    def assertBatchShape(self, doc):
        for k in ("id", "total", "counts", "done", "jobs", "concurrency", "created_at"):
            self.assertIn(k, doc, doc)
        self.assertRegex(doc["id"], BATCH_ID_RE)
        self.assertIsInstance(doc["done"], bool)
        self.assertEqual(len(doc["jobs"]), doc["total"])
        self.assertEqual(sum(doc["counts"].values()), doc["total"], doc["counts"])
        for s in doc["counts"]:
            self.assertIn(s, STATES)


class BatchesTest(BatchTestCase):
    @classmethod
    def setUpClass(cls):
        cls.j = cls.start_shared("--threads", "6")

    def test_create_and_list(self):
        specs = [{"task": "echo", "args": {"i": i}} for i in range(3)] + [{"command": ["echo", "hi"]}]
        r = self.post_batch(self.j, {"jobs": specs, "concurrency": 2, "name": "first"})
        doc = r.json
        self.assertBatchShape(doc)
        self.assertEqual(doc["total"], 4)
        self.assertEqual(doc["concurrency"], 2)
        self.assertEqual(doc["name"], "first")
        self.assertEqual(r.headers.get("Location"), "/v1/batches/%s" % doc["id"])
        self.assertEqual(len(set(doc["jobs"])), 4)
        for jid in doc["jobs"]:
            self.assertRegex(jid, jobdtest.ID_RE)
        done = self.wait_batch(self.j, doc["id"], 20)
        self.assertEqual(done["counts"].get("succeeded"), 4, done)
        self.assertEqual(done["jobs"], doc["jobs"])
        # GET /v1/jobs?batch=ID lists exactly its jobs, each naming its batch, in spec order of ids.
        listed = self.j.list_all(batch=doc["id"])
        self.assertEqual(sorted(x["id"] for x in listed), sorted(doc["jobs"]))
        by_id = {x["id"]: x for x in listed}
        for i, jid in enumerate(doc["jobs"]):
            self.assertEqual(by_id[jid]["batch"], doc["id"])
            if i < 3:
                self.assertEqual(by_id[jid]["result"], {"i": i}, "jobs are in spec order")
        self.assertEqual(self.j.output(doc["jobs"][3]), b"hi\n")
        # A job outside the batch is not listed; an unknown batch lists nothing.
        other = self.j.submit({"task": "echo", "args": 1}, wait=5)
        self.assertIsNone(other["batch"])
        self.assertNotIn(other["id"], [x["id"] for x in self.j.list_all(batch=doc["id"])])
        self.assertEqual(self.j.list(batch="b999999")["jobs"], [])

    def test_concurrency_defaults_to_all(self):
        r = self.post_batch(self.j, {"jobs": [{"task": "echo"}] * 5})
        self.assertEqual(r.json["concurrency"], 5)
        self.assertIsNone(r.json.get("name"))
        self.assertTrue(self.wait_batch(self.j, r.json["id"], 20)["done"])

    def count_jobs(self):
        return len(self.j.list_all(limit=1000))

    def test_bad_spec_stores_nothing(self):
        before = self.count_jobs()
        seq = self.j.list(limit=1)["seq"]
        ok = {"task": "echo", "name": "reject-probe"}
        cases = [  # (jobs, index of the bad spec, field or None when only the index is certain)
            ([ok, ok, {"command": ["true"], "bogus": 1, "name": "reject-probe"}], 2, "jobs[2].bogus"),
            ([ok, {"task": "sleep", "args": {"seconds": "x"}, "name": "reject-probe"}], 1, "jobs[1].args.seconds"),
            ([{"task": "nosuch", "name": "reject-probe"}, ok], 0, "jobs[0].task"),
            ([ok, {"command": [], "name": "reject-probe"}], 1, None),
            ([ok, {"command": ["true"], "shell": "true", "name": "reject-probe"}], 1, None),
            ([ok, {"command": ["true"], "timeout": -1, "name": "reject-probe"}], 1, "jobs[1].timeout"),
            ([ok, "not a spec"], 1, None),
        ]
        for jobs, index, field in cases:
            r = self.j.request("POST", "/v1/batches", {"jobs": jobs})
            p = self.assertProblem(r, 400, field, msg=json.dumps(jobs)[:200])
            self.assertRegex(p.get("field") or "", r"^jobs\[%d\]" % index, p)
            self.assertIn(p["field"], p["detail"])
        self.assertEqual(self.j.list(name="reject-probe")["jobs"], [])
        self.assertEqual(self.count_jobs(), before)
        self.assertEqual(self.j.list(limit=1)["seq"], seq, "nothing changed")

    def test_bad_batch_bodies(self):
        spec = {"task": "echo"}
        cases = [
            ({"jobs": [spec], "bogus": 1}, "bogus"),
            ({"jobs": [spec], "Concurrency": 1}, "Concurrency"),
            ({"jobs": []}, "jobs"),
            ({}, "jobs"),
            ({"jobs": spec}, "jobs"),
            ({"jobs": [spec], "concurrency": 0}, "concurrency"),
            ({"jobs": [spec], "concurrency": "2"}, "concurrency"),
            ({"jobs": [spec], "concurrency": 1.5}, "concurrency"),
            ({"jobs": [spec], "name": 3}, "name"),
            ({"jobs": [spec], "name": ""}, "name"),
        ]
        before = self.count_jobs()
        for body, field in cases:
            r = self.j.request("POST", "/v1/batches", body)
            self.assertProblem(r, 400, field, msg=json.dumps(body))
        r = self.j.request("POST", "/v1/batches", [spec])
        self.assertProblem(r, 400)
        r = self.j.request("POST", "/v1/batches", b'{"jobs": [', headers={"Content-Type": "application/json"})
        self.assertProblem(r, 400)
        r = self.j.request("POST", "/v1/batches", b'{"jobs":[]}', headers={"Content-Type": "text/plain"})
        self.assertProblem(r, 415)
        self.assertEqual(self.count_jobs(), before)

    def test_unknown_batch_is_404(self):
        for bid in ("b999999", "bzzzzzz", "nonsense", "j1", "b", "b-1"):
            r = self.j.request("GET", "/v1/batches/%s" % bid)
            self.assertProblem(r, 404, msg=bid)
            r = self.j.request("GET", "/v1/batches/%s?wait=1" % bid)
            self.assertProblem(r, 404, msg=bid)
            r = self.j.request("POST", "/v1/batches/%s/cancel" % bid)
            self.assertProblem(r, 404, msg=bid)

    def test_bad_wait(self):
        r = self.post_batch(self.j, {"jobs": [{"task": "echo"}]})
        for w in ("-1", "abc", "301"):
            rr = self.j.request("GET", "/v1/batches/%s?wait=%s" % (r.json["id"], w))
            self.assertProblem(rr, 400, "wait", msg=w)

    def check_bounded(self, specs, concurrency, expect_secs):
        r = self.post_batch(self.j, {"jobs": specs, "concurrency": concurrency})
        bid = r.json["id"]
        w = Watcher(self.j, bid)
        try:
            doc = self.wait_batch(self.j, bid, timeout=expect_secs + 20)
        finally:
            seen = w.stop()
        self.assertEqual(doc["counts"].get("succeeded"), len(specs), doc["counts"])
        jobs = self.j.list_all(batch=bid)
        overlap = max_overlap(jobs)
        sys.stderr.write("\n[batch] %d jobs, concurrency %d: polled max running %d over %d samples; "
                         "max overlap by timestamps %d\n" % (len(specs), concurrency, seen, w.samples, overlap))
        self.assertLessEqual(seen, concurrency, "more than %d running at once" % concurrency)
        self.assertEqual(seen, concurrency, "the limit was never reached")
        self.assertLessEqual(overlap, concurrency, "timestamps show %d at once" % overlap)
        self.assertFalse(w.errors, w.errors[:3])

    def test_concurrency_is_bounded_processes(self):
        self.check_bounded([{"shell": "sleep 0.3"} for _ in range(12)], 3, 1.2)

    def test_concurrency_is_bounded_tasks(self):
        # 6 threads, at most 3 of them for this batch.
        self.check_bounded([{"task": "sleep", "args": {"seconds": 0.3}} for _ in range(12)], 3, 1.2)

    def test_two_batches_have_their_own_limits(self):
        a = self.post_batch(self.j, {"jobs": [{"shell": "sleep 0.3"}] * 6, "concurrency": 1}).json["id"]
        b = self.post_batch(self.j, {"jobs": [{"shell": "sleep 0.3"}] * 6, "concurrency": 2}).json["id"]
        wa, wb = Watcher(self.j, a), Watcher(self.j, b)
        try:
            self.wait_batch(self.j, a, 20)
            self.wait_batch(self.j, b, 20)
        finally:
            ma, mb = wa.stop(), wb.stop()
        self.assertEqual(ma, 1)
        self.assertEqual(mb, 2)
        self.assertLessEqual(max_overlap(self.j.list_all(batch=a)), 1)
        self.assertLessEqual(max_overlap(self.j.list_all(batch=b)), 2)

    def test_wait_returns_when_done(self):
        r = self.post_batch(self.j, {"jobs": [{"task": "sleep", "args": {"seconds": 0.3}}] * 3 + [{"shell": "exit 0"}],
                                     "concurrency": 4})
        bid = r.json["id"]
        t0 = time.monotonic()
        doc = self.get_batch(self.j, bid, wait=20)
        took = time.monotonic() - t0
        self.assertBatchShape(doc)
        self.assertTrue(doc["done"], doc)
        self.assertEqual(doc["counts"].get("succeeded"), 4, doc)
        self.assertEqual(doc["counts"].get("running", 0) + doc["counts"].get("queued", 0), 0)
        self.assertLess(took, 5, "wait returned %.1fs after the start, not when done" % took)
        self.assertGreater(took, 0.2)
        # An ended batch answers a wait at once.
        t0 = time.monotonic()
        self.assertTrue(self.get_batch(self.j, bid, wait=20)["done"])
        self.assertLess(time.monotonic() - t0, 2)
        # POST ?wait= waits too.
        t0 = time.monotonic()
        r = self.j.request("POST", "/v1/batches?wait=20", {"jobs": [{"task": "sleep", "args": {"seconds": 0.2}}]},
                           timeout=40)
        self.assertEqual(r.status, 201, r)
        self.assertTrue(r.json["done"], r.json)
        self.assertEqual(r.json["counts"].get("succeeded"), 1)
        self.assertLess(time.monotonic() - t0, 5)

    def test_wait_times_out(self):
        r = self.post_batch(self.j, {"jobs": [{"task": "sleep", "args": {"seconds": 30}}] * 2, "concurrency": 1})
        bid = r.json["id"]
        try:
            t0 = time.monotonic()
            doc = self.get_batch(self.j, bid, wait=1)
            took = time.monotonic() - t0
            self.assertFalse(doc["done"], doc)
            self.assertEqual(doc["counts"].get("running"), 1, doc)
            self.assertEqual(doc["counts"].get("queued"), 1, doc)
            self.assertGreaterEqual(took, 0.9)
            self.assertLess(took, 3.5)
            t0 = time.monotonic()
            doc = self.get_batch(self.j, bid, wait=0.5)
            self.assertFalse(doc["done"])
            self.assertLess(time.monotonic() - t0, 3)
        finally:
            self.j.request("POST", "/v1/batches/%s/cancel" % bid)
        self.assertTrue(self.wait_batch(self.j, bid, 10)["done"])

    def test_cancel(self):
        specs = [{"shell": "sleep 30"} for _ in range(5)]
        r = self.post_batch(self.j, {"jobs": specs, "concurrency": 1})
        bid, ids = r.json["id"], r.json["jobs"]
        self.j.wait_state(ids[0], "running")
        # A waiter already parked on the batch is woken by the cancel.
        waited = {}

        def waiter():
            t = time.monotonic()
            waited["doc"] = self.get_batch(self.j, bid, wait=20)
            waited["took"] = time.monotonic() - t

        th = threading.Thread(target=waiter, daemon=True)
        th.start()
        time.sleep(0.2)
        t0 = time.monotonic()
        r = self.j.request("POST", "/v1/batches/%s/cancel" % bid)
        self.assertEqual(r.status, 202, r)
        self.assertEqual(r.json["id"], bid)
        doc = self.wait_batch(self.j, bid, 15)
        took = time.monotonic() - t0
        th.join(25)
        self.assertEqual(doc["counts"].get("cancelled"), 5, doc)
        self.assertEqual(doc["total"], 5)
        for jid in ids:
            job = self.j.job(jid)
            self.assertEqual(job["state"], "cancelled", job)
        self.assertIsNone(self.j.job(ids[1])["started_at"], "queued ones never started")
        self.assertLess(took, 7, "cancelling the batch took %.1fs" % took)
        self.assertIn("doc", waited, "the waiter did not answer")
        self.assertTrue(waited["doc"]["done"], waited)
        self.assertLess(waited["took"], 10)
        # Cancelling an ended batch changes nothing.
        r = self.j.request("POST", "/v1/batches/%s/cancel" % bid)
        self.assertEqual(r.status, 202, r)
        self.assertEqual(r.json["counts"].get("cancelled"), 5)

    def test_cancel_keeps_ended_jobs(self):
        specs = [{"shell": "exit 0"}, {"shell": "exit 3"}] + [{"shell": "sleep 30"}] * 3
        r = self.post_batch(self.j, {"jobs": specs, "concurrency": 2})
        bid, ids = r.json["id"], r.json["jobs"]
        self.j.wait_job(ids[0], 10)
        self.j.wait_job(ids[1], 10)
        self.j.wait_state(ids[2], "running")
        r = self.j.request("POST", "/v1/batches/%s/cancel" % bid)
        self.assertEqual(r.status, 202, r)
        doc = self.wait_batch(self.j, bid, 15)
        self.assertEqual(doc["counts"].get("succeeded"), 1, doc)
        self.assertEqual(doc["counts"].get("failed"), 1, doc)
        self.assertEqual(doc["counts"].get("cancelled"), 3, doc)


class BigBatchTest(BatchTestCase):
    def test_10000_echo_tasks(self):
        n = 10000
        j = self.start_jobd()
        body = {"jobs": [{"task": "echo", "args": {"i": i}} for i in range(n)], "concurrency": 10000,
                "name": "big"}
        raw = json.dumps(body).encode()
        t0 = time.monotonic()
        r = j.request("POST", "/v1/batches", raw, headers={"Content-Type": "application/json"}, timeout=120)
        t_post = time.monotonic() - t0
        self.assertEqual(r.status, 201, r)
        bid = r.json["id"]
        self.assertEqual(r.json["total"], n)
        self.assertEqual(len(r.json["jobs"]), n)
        self.assertEqual(len(set(r.json["jobs"])), n)
        doc = self.wait_batch(j, bid, timeout=120)
        took = time.monotonic() - t0
        self.assertEqual(doc["counts"].get("succeeded"), n, doc["counts"])
        self.assertEqual(doc["jobs"], r.json["jobs"])
        sys.stderr.write("\n[big batch] %d echo tasks (%d bytes): POST answered in %.2fs, all ended in %.2fs "
                         "(%.0f jobs/s)\n" % (n, len(raw), t_post, took, n / took))
        # Spot checks: the first and last jobs hold their own args.
        for i in (0, n - 1):
            job = j.job(r.json["jobs"][i])
            self.assertEqual(job["result"], {"i": i})
            self.assertEqual(job["batch"], bid)
        self.assertEqual(len(j.list(batch=bid, limit=1000)["jobs"]), 1000)

    def test_max_batch_body(self):
        # Batches may be bigger than --max-body, up to --max-batch-body; then 413 and nothing stored.
        j = self.start_jobd("--max-body", "4096", "--max-batch-body", "65536")
        mid = {"jobs": [{"task": "echo", "args": {"i": i}} for i in range(500)]}  # about 15 KB
        self.assertGreater(len(json.dumps(mid)), 4096)
        r = j.request("POST", "/v1/batches", mid, timeout=30)
        self.assertEqual(r.status, 201, r)
        self.assertTrue(self.wait_batch(j, r.json["id"], 30)["done"])
        count = len(j.list_all(limit=1000))
        big = {"jobs": [{"task": "echo", "args": {"i": i}} for i in range(3000)]}  # about 90 KB
        self.assertGreater(len(json.dumps(big)), 65536)
        r = j.request("POST", "/v1/batches", big, timeout=30)
        self.assertProblem(r, 413)
        self.assertEqual(len(j.list_all(limit=1000)), count)
        # The ordinary cap still holds for single jobs.
        r = j.request("POST", "/v1/jobs", {"task": "echo", "args": {"pad": "x" * 5000}})
        self.assertProblem(r, 413)


class BatchLimitsTest(BatchTestCase):
    def test_queue_full_is_429_and_stores_nothing(self):
        j = self.start_jobd("--max-queued", "5")
        r = j.request("POST", "/v1/batches", {"jobs": [{"shell": "sleep 5"}] * 10, "concurrency": 1})
        self.assertProblem(r, 429)
        self.assertTrue(r.headers.get("Retry-After"), r)
        self.assertEqual(j.list()["jobs"], [])
        r = j.request("POST", "/v1/batches?wait=10", {"jobs": [{"task": "echo"}] * 5})
        self.assertEqual(r.status, 201, r)
        self.assertTrue(r.json["done"], r.json)

    def test_done_after_a_member_is_deleted(self):
        # An ended job of an ended batch may be deleted (or removed by --retention):
        # the batch still has no active job, so it stays done and ?wait answers at once.
        j = self.start_jobd()
        r = j.request("POST", "/v1/batches?wait=10", {"jobs": [{"task": "echo"}] * 2})
        self.assertEqual(r.status, 201, r)
        self.assertTrue(r.json["done"], r.json)
        bid, ids = r.json["id"], r.json["jobs"]
        self.assertEqual(j.request("DELETE", "/v1/jobs/%s" % ids[0]).status, 204)
        doc = self.get_batch(j, bid, wait=2)
        self.assertEqual(doc["jobs"], ids[1:])
        self.assertEqual(doc["counts"]["queued"] + doc["counts"]["running"], 0, doc)
        self.assertTrue(doc["done"], "a batch with no queued or running job is done: %s" % doc)


class BatchRestartTest(BatchTestCase):
    def test_kill9_mid_batch_resumes_with_the_limit(self):
        j = self.start_jobd()
        n, conc = 10, 2
        r = self.post_batch(j, {"jobs": [{"shell": "sleep 0.4"}] * n, "concurrency": conc})
        bid, ids = r.json["id"], r.json["jobs"]
        # Let a few run, then crash jobd while two are running.
        end = time.monotonic() + 15
        while time.monotonic() < end:
            doc = self.get_batch(j, bid)
            if doc["counts"].get("succeeded", 0) >= 2 and doc["counts"].get("running", 0) == conc:
                break
            time.sleep(0.05)
        self.assertEqual(doc["counts"].get("running"), conc, doc)
        j.kill9()
        t_kill = time.time()
        j.restart()
        w = Watcher(j, bid)
        try:
            doc = self.wait_batch(j, bid, timeout=30)
        finally:
            seen = w.stop()
        self.assertBatchShape(doc)
        self.assertEqual(doc["total"], n)
        self.assertEqual(doc["jobs"], ids)
        self.assertEqual(doc["concurrency"], conc)
        jobs = j.list_all(batch=bid)
        self.assertEqual(sorted(x["id"] for x in jobs), sorted(ids))
        for job in jobs:
            self.assertIn(job["state"], FINAL_STATES, job)
            if job["state"] != "succeeded":
                self.assertEqual(job["state"], "failed", job)
                self.assertIn("interrupted", job["error"] or "", job)
        interrupted = [x for x in jobs if x["state"] == "failed"]
        self.assertLessEqual(len(interrupted), conc)
        # After the restart the limit still holds: observed by polling, and by the
        # timestamps of the jobs that started after the crash.
        after = [x for x in jobs if x["started_at"] and parse_time(x["started_at"]) >= t_kill - 0.01
                 and x not in interrupted]
        sys.stderr.write("\n[restart] %d interrupted, %d ran after the restart; polled max running %d\n"
                         % (len(interrupted), len(after), seen))
        self.assertGreaterEqual(len(after), 2, "jobs ran after the restart")
        self.assertLessEqual(seen, conc)
        self.assertLessEqual(max_overlap(after), conc)
        self.assertEqual(doc["counts"].get("succeeded", 0) + len(interrupted), n, doc)


if __name__ == "__main__":
    jobdtest.main()
