"""In-process tasks: the registry, the builtins (sleep, echo, http), plugins,
the thread executor's cooperative cancel and abandonment of a task that
ignores it, tasks under the process executor, and a stress test of shared
state updated under a lock by many threads.

Plugins are taken from JOBD_PLUGIN_DIR (CTest sets it), else from the
`plugins` directory next to the jobd binary.
"""

import http.server
import json
import os
import re
import socketserver
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import jobdtest  # noqa: E402
from jobdtest import FINAL_STATES, JobdTestCase, parse_time  # noqa: E402

# curl in jobd honours these: keep the loopback requests direct.
NO_PROXY_ENV = {k: None for k in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "all_proxy", "ALL_PROXY")}
BUILTINS = ("echo", "http", "sleep")
TEST_TASKS = ("counter", "counter_total", "crash", "spin")


def plugin_dir():
    d = os.environ.get("JOBD_PLUGIN_DIR")
    if not d:
        d = os.path.join(os.path.dirname(jobdtest.jobd_bin()), "plugins")
    return d


def plugin(name):
    """Path of plugins/jobd_NAME.so; the test is skipped when it was not built."""
    p = os.path.join(plugin_dir(), "jobd_%s.so" % name)
    if not os.path.isfile(p):
        raise unittest.SkipTest("plugin %s not built (looked in %s)" % (p, plugin_dir()))
    return p


def healthz(j):
    r = j.request("GET", "/healthz", auth=False)
    assert r.status == 200, r
    return r.json


def metric(j, name):
    """The value of an unlabelled metric line of /metrics."""
    r = j.request("GET", "/metrics")
    assert r.status == 200, r
    m = re.search(r"^%s (\S+)$" % re.escape(name), r.body.decode(), re.M)
    assert m, "no %s in /metrics:\n%s" % (name, r.body.decode())
    return float(m.group(1))


def run_secs(job):
    return parse_time(job["finished_at"]) - parse_time(job["started_at"])


# ---------------------------------------------------------------------------
# A small HTTP server on 127.0.0.1 for the http task


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    def _send(self, status, body, ctype="text/plain", extra=None):
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _route(self):
        srv = self.server
        u = urllib.parse.urlsplit(self.path)
        q = dict(urllib.parse.parse_qsl(u.query))
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(n) if n else b""
        srv.seen.append((self.command, u.path))
        if u.path == "/ok":
            self._send(200, b"hello from the test server\n", extra={"X-Test": "yes"})
        elif u.path.startswith("/status/"):
            self._send(int(u.path.rsplit("/", 1)[1]), b"status body\n")
        elif u.path == "/echo":
            doc = {"method": self.command, "body": body.decode("utf-8", "replace"),
                   "headers": {k.lower(): v for k, v in self.headers.items()}}
            self._send(200, json.dumps(doc).encode(), "application/json")
        elif u.path == "/slow":
            # Answer after s seconds (or at once when the server is closing).
            srv.closing.wait(float(q.get("s", "10")))
            try:
                self._send(200, b"late\n")
            except OSError:
                pass
        elif u.path == "/drip":
            # Headers now, then one line every 0.1 s for s seconds; notes when the client goes away.
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", "100000000")
            self.end_headers()
            end = time.monotonic() + float(q.get("s", "30"))
            try:
                while time.monotonic() < end and not srv.closing.is_set():
                    self.wfile.write(b"drip\n")
                    self.wfile.flush()
                    time.sleep(0.1)
            except OSError:
                srv.aborted.set()
            self.close_connection = True
        else:
            self._send(404, b"no such path\n")

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _route


class TestServer(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self):
        super().__init__(("127.0.0.1", 0), _Handler)
        self.seen = []
        self.closing = threading.Event()
        self.aborted = threading.Event()
        self.thread = threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
        self.thread.start()

    def url(self, path):
        return "http://127.0.0.1:%d%s" % (self.server_address[1], path)

    def close(self):
        self.closing.set()
        self.shutdown()
        self.server_close()
        self.thread.join(5)


# ---------------------------------------------------------------------------


class TasksTest(JobdTestCase):
    """Builtins and plugins on one jobd with the test plugins loaded."""

    @classmethod
    def setUpClass(cls):
        cls.j = cls.start_shared("--threads", "4", "--plugin", plugin("testtasks"), "--plugin", plugin("wordcount"),
                                 env=NO_PROXY_ENV)
        cls.srv = TestServer()
        cls.addClassCleanup(cls.srv.close)

    def run_task(self, spec, timeout=20):
        job = self.j.submit(spec)
        return self.j.wait_job(job["id"], timeout=timeout)

    def assertEndsWithin(self, job_id, states, seconds):
        t0 = time.monotonic()
        job = self.j.wait_job(job_id, timeout=seconds + 10)
        took = time.monotonic() - t0
        self.assertIn(job["state"], states, job)
        self.assertLess(took, seconds, "job %s took %.2fs to end: %s" % (job_id, took, job))
        return job

    # -- registry

    def test_tasks_list_has_builtins_and_plugins(self):
        r = self.j.request("GET", "/v1/tasks")
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.ctype, "application/json")
        tasks = r.json["tasks"]
        names = [t["name"] for t in tasks]
        for n in BUILTINS + TEST_TASKS + ("wordcount",):
            self.assertIn(n, names)
        self.assertEqual(names, sorted(names), "tasks are listed in name order")
        self.assertEqual(len(names), len(set(names)))
        for t in tasks:
            self.assertEqual(set(t), {"name", "description"}, t)
            self.assertIsInstance(t["description"], str)
            self.assertTrue(t["description"].strip(), t)

    def test_tasks_list_without_plugins(self):
        j = self.start_jobd()
        r = j.request("GET", "/v1/tasks")
        self.assertEqual(r.status, 200, r)
        names = sorted(t["name"] for t in r.json["tasks"])
        self.assertEqual(names, sorted(BUILTINS))
        # A plugin task is unknown there: 400 naming `task`.
        r = j.request("POST", "/v1/jobs", {"task": "wordcount", "args": {"text": "x"}})
        self.assertProblem(r, 400, "task")

    # -- echo

    def test_echo_result_is_args_and_stdout_is_json(self):
        args = {"a": [1, 2.5, None, True], "b": "x\u00e9\n\"", "c": {"d": {}}}
        job = self.run_task({"task": "echo", "args": args})
        self.assertEqual(job["state"], "succeeded", job)
        self.assertEqual(job["executor"], "thread", "tasks run on threads by default")
        self.assertEqual(job["exit_code"], 0, job)
        self.assertEqual(job["result"], args)
        self.assertIsNone(job["error"], job)
        out = self.j.output(job["id"])
        self.assertTrue(out.endswith(b"\n"), out)
        self.assertEqual(json.loads(out), args)
        self.assertEqual(out.count(b"\n"), 1, "compact JSON on one line: %r" % out)
        self.assertEqual(job["stdout_bytes"], len(out))

    def test_echo_any_json(self):
        for args in ([1, "two", [3]], "text", 42, None):
            spec = {"task": "echo"} if args is None else {"task": "echo", "args": args}
            job = self.run_task(spec)
            self.assertEqual(job["state"], "succeeded", job)
            self.assertEqual(job["result"], args, job)
            self.assertEqual(json.loads(self.j.output(job["id"])), args)

    # -- sleep

    def test_sleep_succeeds(self):
        job = self.run_task({"task": "sleep", "args": {"seconds": 0.3}})
        self.assertEqual(job["state"], "succeeded", job)
        self.assertGreaterEqual(run_secs(job), 0.28, job)
        self.assertLess(run_secs(job), 5, job)

    def test_sleep_cancel_is_prompt(self):
        # kill_grace is 5 s by default: a cooperative task ends long before that.
        job = self.j.submit({"task": "sleep", "args": {"seconds": 60}})
        self._wait_running(job["id"])
        t0 = time.monotonic()
        r = self.j.request("POST", "/v1/jobs/%s/cancel" % job["id"])
        self.assertEqual(r.status, 202, r)
        job = self.assertEndsWithin(job["id"], ("cancelled",), 1.5)
        self.assertEqual(job["state"], "cancelled")
        self.assertLess(time.monotonic() - t0, 1.5)
        self.assertEqual(healthz(self.j)["threads_stuck"], 0, "a cooperative task leaves no stuck thread")

    def _wait_running(self, job_id, timeout=10):
        """Poll until a thread job is running (thread jobs have no pid)."""
        end = time.monotonic() + timeout
        last = None
        while time.monotonic() < end:
            last = self.j.job(job_id)
            if last["state"] == "running":
                return last
            self.assertNotIn(last["state"], FINAL_STATES, last)
            time.sleep(0.03)
        self.fail("job %s not running within %ss: %s" % (job_id, timeout, last))

    def test_sleep_timeout_is_prompt(self):
        t0 = time.monotonic()
        job = self.run_task({"task": "sleep", "args": {"seconds": 30}, "timeout": 0.5})
        took = time.monotonic() - t0
        self.assertEqual(job["state"], "timed_out", job)
        self.assertLess(took, 3, "a 0.5 s timeout took %.1fs" % took)
        self.assertGreaterEqual(run_secs(job), 0.45, job)
        self.assertEqual(healthz(self.j)["threads_stuck"], 0)

    def test_health_and_metrics_count_threads(self):
        h = healthz(self.j)
        self.assertEqual(h["threads"], 4, h)
        job = self.j.submit({"task": "sleep", "args": {"seconds": 30}})
        try:
            self._wait_running(job["id"])
            self.assertGreaterEqual(healthz(self.j)["threads_busy"], 1)
            r = self.j.request("GET", "/metrics")
            self.assertEqual(r.status, 200, r)
            text = r.body.decode()
            self.assertRegex(text, r'(?m)^jobd_jobs_running\{executor="thread"\} [1-9]')
            self.assertRegex(text, r"(?m)^jobd_task_threads 4$")
            self.assertRegex(text, r"(?m)^jobd_task_threads_stuck 0$")
        finally:
            self.j.request("POST", "/v1/jobs/%s/cancel" % job["id"])
        self.assertEqual(self.j.wait_job(job["id"], 5)["state"], "cancelled")

    def test_task_output_cap(self):
        big = "x" * 50000
        job = self.run_task({"task": "echo", "args": big, "limits": {"output_bytes": 2048}})
        self.assertEqual(job["state"], "succeeded", job)
        self.assertEqual(job["result"], big)
        self.assertTrue(job["stdout_truncated"], job)
        self.assertEqual(job["stdout_bytes"], len(big) + 3, "stdout_bytes counts everything written")
        out = self.j.output(job["id"])
        self.assertLessEqual(len(out), 2200)
        self.assertTrue(out.endswith(b'xx"\n'), "the tail is kept: %r" % out[-20:])

    def test_task_retries(self):
        before = sum(1 for m, pth in self.srv.seen if pth == "/status/502")
        job = self.run_task({"task": "http", "args": {"url": self.srv.url("/status/502")}, "retries": 2,
                             "retry_delay": 0.1})
        self.assertEqual(job["state"], "failed", job)
        self.assertEqual(job["attempts"], 3, job)
        self.assertEqual(sum(1 for m, pth in self.srv.seen if pth == "/status/502") - before, 3)

    def test_cancel_a_queued_task(self):
        # 4 threads busy with sleep: the 5th is queued and is cancelled at once.
        busy = [self.j.submit({"task": "sleep", "args": {"seconds": 30}}) for _ in range(4)]
        try:
            for b in busy:
                self._wait_running(b["id"])
            q = self.j.submit({"task": "sleep", "args": {"seconds": 30}})
            self.assertEqual(self.j.job(q["id"])["state"], "queued")
            r = self.j.request("POST", "/v1/jobs/%s/cancel" % q["id"])
            self.assertEqual(r.status, 202, r)
            self.assertEndsWithin(q["id"], ("cancelled",), 1.0)
        finally:
            for b in busy:
                self.j.request("POST", "/v1/jobs/%s/cancel" % b["id"])
            for b in busy:
                self.assertEqual(self.j.wait_job(b["id"], 10)["state"], "cancelled")

    # -- args checked at submit

    def test_bad_args_are_400_naming_the_field(self):
        cases = [
            ({"task": "sleep", "args": {"seconds": "x"}}, "args.seconds"),
            ({"task": "sleep", "args": {"seconds": -1}}, "args.seconds"),
            ({"task": "sleep", "args": {}}, "args.seconds"),
            ({"task": "sleep"}, "args"),
            ({"task": "sleep", "args": [1]}, "args"),
            ({"task": "sleep", "args": {"seconds": 1, "secs": 1}}, "args.secs"),
            ({"task": "http", "args": {}}, "args.url"),
            ({"task": "http", "args": {"url": "ftp://127.0.0.1/"}}, "args.url"),
            ({"task": "http", "args": {"url": 5}}, "args.url"),
            ({"task": "http", "args": {"url": self.srv.url("/ok"), "timeout": 0}}, "args.timeout"),
            ({"task": "http", "args": {"url": self.srv.url("/ok"), "expect": "2xx"}}, "args.expect"),
            ({"task": "http", "args": {"url": self.srv.url("/ok"), "expect": [200, 99]}}, "args.expect[1]"),
            ({"task": "http", "args": {"url": self.srv.url("/ok"), "method": "get"}}, "args.method"),
            ({"task": "http", "args": {"url": self.srv.url("/ok"), "headers": {"X-A": 1}}}, "args.headers.X-A"),
            ({"task": "http", "args": {"url": self.srv.url("/ok"), "bogus": 1}}, "args.bogus"),
            ({"task": "counter", "args": {"n": -1}}, "args.n"),
            ({"task": "spin", "args": {}}, "args.seconds"),
            ({"task": "wordcount", "args": {}}, "args.text"),
            ({"task": "wordcount", "args": {"text": 3}}, "args.text"),
            ({"task": "nosuchtask", "args": {}}, "task"),
            ({"task": ""}, "task"),
        ]
        before = self.j.list(limit=1000)
        for spec, field in cases:
            r = self.j.request("POST", "/v1/jobs", spec)
            p = self.assertProblem(r, 400, field, msg=json.dumps(spec))
            self.assertIn(field, p["detail"], "detail names the field: %s" % p)
        # Nothing was stored.
        after = self.j.list(limit=1000)
        self.assertEqual([x["id"] for x in after["jobs"]], [x["id"] for x in before["jobs"]])

    def test_thread_executor_runs_tasks_only(self):
        r = self.j.request("POST", "/v1/jobs", {"command": ["true"], "executor": "thread"})
        self.assertProblem(r, 400, "executor")

    # -- http

    def test_http_get_ok(self):
        job = self.run_task({"task": "http", "args": {"url": self.srv.url("/ok")}})
        self.assertEqual(job["state"], "succeeded", job)
        self.assertEqual(self.j.output(job["id"]), b"hello from the test server\n")
        res = job["result"]
        self.assertEqual(set(res), {"status", "headers", "elapsed_ms"}, res)
        self.assertEqual(res["status"], 200)
        self.assertIsInstance(res["elapsed_ms"], int)
        self.assertGreaterEqual(res["elapsed_ms"], 0)
        self.assertLess(res["elapsed_ms"], 10000)
        self.assertIsInstance(res["headers"], dict)
        hdrs = {k.lower(): v for k, v in res["headers"].items()}
        self.assertEqual(hdrs.get("x-test"), "yes", res)
        self.assertEqual(hdrs.get("content-length"), "27", res)

    def test_http_post_with_headers_and_body(self):
        args = {"url": self.srv.url("/echo"), "method": "POST", "body": "{\"k\": 1}",
                "headers": {"X-Custom": "v1", "Content-Type": "application/json"}}
        job = self.run_task({"task": "http", "args": args})
        self.assertEqual(job["state"], "succeeded", job)
        seen = json.loads(self.j.output(job["id"]))
        self.assertEqual(seen["method"], "POST")
        self.assertEqual(seen["body"], "{\"k\": 1}")
        self.assertEqual(seen["headers"].get("x-custom"), "v1")
        self.assertEqual(seen["headers"].get("content-type"), "application/json")
        # Another method with no body.
        job = self.run_task({"task": "http", "args": {"url": self.srv.url("/echo"), "method": "DELETE"}})
        self.assertEqual(job["state"], "succeeded", job)
        self.assertEqual(json.loads(self.j.output(job["id"]))["method"], "DELETE")

    def test_http_unexpected_status_fails(self):
        job = self.run_task({"task": "http", "args": {"url": self.srv.url("/status/404")}})
        self.assertEqual(job["state"], "failed", job)
        self.assertIn("404", job["error"])
        self.assertIn("200-299", job["error"], "the error says what was expected: %s" % job["error"])
        self.assertEqual(job["result"]["status"], 404, "the result is kept: %s" % job)
        self.assertEqual(self.j.output(job["id"]), b"status body\n")
        job = self.run_task({"task": "http", "args": {"url": self.srv.url("/status/503"), "expect": [200, 204]}})
        self.assertEqual(job["state"], "failed", job)
        self.assertIn("503", job["error"])
        # Statuses in `expect`, as a list, a range or one status, succeed.
        for expect in ([404], "400-499", "404"):
            job = self.run_task({"task": "http", "args": {"url": self.srv.url("/status/404"), "expect": expect}})
            self.assertEqual(job["state"], "succeeded", (expect, job))
            self.assertEqual(job["result"]["status"], 404)
        job = self.run_task({"task": "http", "args": {"url": self.srv.url("/status/200"), "expect": "404"}})
        self.assertEqual(job["state"], "failed", job)

    def test_http_timeout_arg_fails_the_job(self):
        t0 = time.monotonic()
        job = self.run_task({"task": "http", "args": {"url": self.srv.url("/slow?s=20"), "timeout": 1}})
        took = time.monotonic() - t0
        self.assertEqual(job["state"], "failed", job)
        self.assertRegex(job["error"], re.compile(r"time(d)?[ -]?out", re.I))
        self.assertLess(took, 6, "a 1 s timeout took %.1fs" % took)
        self.assertGreaterEqual(run_secs(job), 0.9, job)

    def test_http_connection_refused_fails(self):
        # A port nothing listens on (bind, note it, close).
        import socket

        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()
        job = self.run_task({"task": "http", "args": {"url": "http://127.0.0.1:%d/" % port, "timeout": 5}})
        self.assertEqual(job["state"], "failed", job)
        self.assertTrue(job["error"], job)

    def test_http_cancel_aborts_the_transfer(self):
        self.srv.aborted.clear()
        job = self.j.submit({"task": "http", "args": {"url": self.srv.url("/drip?s=30"), "timeout": 60}})
        self.j.wait_output(job["id"], b"drip\n", timeout=10)
        t0 = time.monotonic()
        r = self.j.request("POST", "/v1/jobs/%s/cancel" % job["id"])
        self.assertEqual(r.status, 202, r)
        job = self.assertEndsWithin(job["id"], ("cancelled",), 1.5)
        self.assertTrue(self.srv.aborted.wait(5), "the server saw no disconnect within 5s of the cancel")
        self.assertLess(time.monotonic() - t0, 5.5)
        self.assertEqual(healthz(self.j)["threads_stuck"], 0)

    # -- plugins

    def test_wordcount_plugin(self):
        job = self.run_task({"task": "wordcount", "args": {"text": "one two\nthree\n"}})
        self.assertEqual(job["state"], "succeeded", job)
        self.assertEqual(job["result"], {"lines": 2, "words": 3, "bytes": 14})
        self.assertEqual(self.j.output(job["id"]), b"2 lines, 3 words, 14 bytes\n")
        job = self.run_task({"task": "wordcount", "args": {"text": ""}})
        self.assertEqual(job["result"], {"lines": 0, "words": 0, "bytes": 0})

    def test_crash_under_process_executor(self):
        job = self.run_task({"task": "crash", "executor": "process"})
        self.assertEqual(job["state"], "failed", job)
        self.assertEqual(job["signal"], "SIGSEGV", job)
        self.assertIsNone(job["exit_code"], job)
        self.assertIn("SIGSEGV", job["error"] or "", job)
        self.assertEqual(job["executor"], "process")
        # jobd carries on.
        h = healthz(self.j)
        self.assertEqual(h["status"], "ok")
        job = self.run_task({"task": "echo", "args": {"after": "crash"}})
        self.assertEqual(job["state"], "succeeded", job)
        job = self.run_task({"task": "echo", "args": {"after": "crash"}, "executor": "process"})
        self.assertEqual(job["state"], "succeeded", job)

    def test_echo_thread_and_process_executors_agree(self):
        args = {"list": [1, 2, 3], "s": "sp\u00e4ce", "n": None}
        jobs = {}
        for ex in ("thread", "process"):
            job = self.run_task({"task": "echo", "args": args, "executor": ex})
            self.assertEqual(job["state"], "succeeded", job)
            self.assertEqual(job["executor"], ex)
            self.assertEqual(job["result"], args, "the result travels back from the %s executor" % ex)
            jobs[ex] = job
        self.assertIsNotNone(jobs["process"]["pid"], "a process task has a pid")
        self.assertEqual(self.j.output(jobs["thread"]["id"]), self.j.output(jobs["process"]["id"]))
        # A plugin task in a child, too.
        job = self.run_task({"task": "wordcount", "args": {"text": "a b c"}, "executor": "process"})
        self.assertEqual(job["state"], "succeeded", job)
        self.assertEqual(job["result"], {"lines": 0, "words": 3, "bytes": 5})
        # And a failure: the error travels back too.
        job = self.run_task({"task": "http", "args": {"url": self.srv.url("/status/500")}, "executor": "process"})
        self.assertEqual(job["state"], "failed", job)
        self.assertIn("500", job["error"] or "", job)
        self.assertEqual((job["result"] or {}).get("status"), 500, job)

    def test_sleep_cancel_under_process_executor(self):
        job = self.j.submit({"task": "sleep", "args": {"seconds": 60}, "executor": "process"})
        self.j.wait_state(job["id"], "running")
        r = self.j.request("POST", "/v1/jobs/%s/cancel" % job["id"])
        self.assertEqual(r.status, 202, r)
        self.assertEndsWithin(job["id"], ("cancelled",), 3)


class StuckTaskTest(JobdTestCase):
    """A task that ignores cancel and timeout is abandoned after kill_grace; the pool serves on."""

    def setUp(self):
        self.j = self.start_jobd("--threads", "2", "--plugin", plugin("testtasks"), env=NO_PROXY_ENV)

    def quick_echo(self, tag):
        job = self.j.submit({"task": "echo", "args": {"tag": tag}}, wait=5)
        if job["state"] not in FINAL_STATES:
            job = self.j.wait_job(job["id"], 5)
        self.assertEqual(job["state"], "succeeded", "%s: %s" % (tag, job))

    def test_timeout_on_a_spinning_task(self):
        self.assertEqual(healthz(self.j)["threads_stuck"], 0)
        t0 = time.monotonic()
        spin = self.j.submit({"task": "spin", "args": {"seconds": 6}, "timeout": 1, "kill_grace": 1})
        # Other tasks run meanwhile on the other thread.
        time.sleep(0.3)
        self.assertEqual(self.j.job(spin["id"])["state"], "running")
        self.quick_echo("while spinning")
        job = self.j.wait_job(spin["id"], 10)
        took = time.monotonic() - t0
        self.assertEqual(job["state"], "timed_out", job)
        self.assertGreater(took, 1.8, "ended before timeout + grace: %.2fs" % took)
        self.assertLess(took, 4.0, "timeout 1 + grace 1 took %.2fs" % took)
        self.assertGreaterEqual(run_secs(job), 1.8, job)
        # Abandoned, its thread is reported stuck.
        h = healthz(self.j)
        self.assertEqual(h["status"], "ok")
        self.assertGreaterEqual(h["threads_stuck"], 1, h)
        self.assertGreaterEqual(metric(self.j, "jobd_task_threads_stuck"), 1)
        # The pool serves on with the other thread.
        for i in range(3):
            self.quick_echo("while stuck %d" % i)
        # When the spin returns (6 s after it started), its thread serves again.
        end = time.monotonic() + 10
        while time.monotonic() < end and healthz(self.j)["threads_stuck"] != 0:
            time.sleep(0.1)
        self.assertEqual(healthz(self.j)["threads_stuck"], 0, "the thread came back")
        self.assertEqual(metric(self.j, "jobd_task_threads_stuck"), 0)
        # Its late output never reaches the job that was already reported.
        self.assertEqual(self.j.job(spin["id"])["state"], "timed_out")
        self.assertNotIn(b"spun", self.j.output(spin["id"]))
        self.quick_echo("after")

    def test_spin_that_returns_within_its_grace(self):
        # Timeout at 1 s, the task returns at 1.5 s, within its 3 s grace: timed_out, no stuck thread.
        t0 = time.monotonic()
        job = self.j.submit({"task": "spin", "args": {"seconds": 1.5}, "timeout": 1, "kill_grace": 3})
        job = self.j.wait_job(job["id"], 10)
        took = time.monotonic() - t0
        self.assertEqual(job["state"], "timed_out", job)
        self.assertLess(took, 2.8, "it ended when the task returned, not after the grace: %.2fs" % took)
        self.assertEqual(healthz(self.j)["threads_stuck"], 0)

    def test_spin_under_process_executor_is_killed(self):
        # In a child, a task that ignores cancel is stopped with a signal: no stuck thread.
        t0 = time.monotonic()
        job = self.j.submit({"task": "spin", "args": {"seconds": 30}, "timeout": 1, "kill_grace": 1,
                             "executor": "process"})
        job = self.j.wait_job(job["id"], 10)
        took = time.monotonic() - t0
        self.assertEqual(job["state"], "timed_out", job)
        self.assertLess(took, 4, "took %.2fs" % took)
        self.assertEqual(healthz(self.j)["threads_stuck"], 0)
        self.assertFalse(jobdtest.alive(job["pid"]) if job["pid"] else False, "the child is gone")

    def test_cancel_of_a_spinning_task(self):
        spin = self.j.submit({"task": "spin", "args": {"seconds": 4}, "kill_grace": 1})
        end = time.monotonic() + 5
        while self.j.job(spin["id"])["state"] != "running" and time.monotonic() < end:
            time.sleep(0.03)
        t0 = time.monotonic()
        r = self.j.request("POST", "/v1/jobs/%s/cancel" % spin["id"])
        self.assertEqual(r.status, 202, r)
        job = self.j.wait_job(spin["id"], 8)
        took = time.monotonic() - t0
        self.assertEqual(job["state"], "cancelled", job)
        self.assertGreater(took, 0.8, "ended before its grace: %.2fs" % took)
        self.assertLess(took, 3.0, "kill_grace 1 took %.2fs" % took)
        self.assertGreaterEqual(healthz(self.j)["threads_stuck"], 1)
        self.quick_echo("while stuck")


class PluginStartTest(unittest.TestCase):
    """jobd refuses to start with a plugin that is missing or does not register."""

    def start_fails(self, plugin_path, needle):
        tmp = tempfile.mkdtemp(prefix="jobd-it-")
        self.addCleanup(lambda: __import__("shutil").rmtree(tmp, ignore_errors=True))
        cmd = [jobdtest.jobd_bin(), "--listen", "127.0.0.1:0", "--data-dir", os.path.join(tmp, "data"),
               "--plugin", plugin_path]
        p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             cwd=tmp, start_new_session=True)
        try:
            out, err = p.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            p.kill()
            p.communicate()
            self.fail("jobd with --plugin %s did not exit within 10s" % plugin_path)
        self.assertNotEqual(p.returncode, 0, err)
        self.assertNotIn(b"listening", out)
        self.assertIn(needle.encode(), err, "stderr lacks %r: %r" % (needle, err[-2000:]))
        self.assertIn(plugin_path.encode(), err, "stderr names the plugin: %r" % err[-2000:])
        return err

    def test_missing_plugin(self):
        self.start_fails("/nonexistent/jobd_nothing.so", "cannot load plugin")

    def test_plugin_whose_init_fails(self):
        self.start_fails(plugin("badplugin"), "failed to register")

    def test_library_without_init(self):
        self.start_fails(plugin("noinit"), "jobd_plugin_init")

    def test_not_a_shared_library(self):
        with tempfile.NamedTemporaryFile(suffix=".so", delete=False) as f:
            f.write(b"not an ELF file\n")
        self.addCleanup(os.unlink, f.name)
        self.start_fails(f.name, "cannot load plugin")


class CounterStressTest(JobdTestCase):
    """200 jobs x 10,000 locked increments on 4 threads: the shared total is exact."""

    JOBS = 200
    N = 10000
    SINGLE = 25  # per client, 4 clients

    def test_counter_totals_are_exact(self):
        j = self.start_jobd("--threads", "4", "--plugin", plugin("testtasks"), env=NO_PROXY_ENV)
        first = j.submit({"task": "counter_total"}, wait=10)
        self.assertEqual(first["state"], "succeeded", first)
        self.assertEqual(first["result"], {"total": 0})
        t0 = time.monotonic()
        r = j.request("POST", "/v1/batches",
                      {"jobs": [{"task": "counter", "args": {"n": self.N}} for _ in range(self.JOBS)]})
        self.assertEqual(r.status, 201, r)
        bid = r.json["id"]
        # Meanwhile 4 clients submit SINGLE more counter jobs each, one POST at a time.
        singles, errors = [], []

        def client():
            try:
                for _ in range(self.SINGLE):
                    singles.append(j.submit({"task": "counter", "args": {"n": self.N}})["id"])
            except Exception as e:
                errors.append(repr(e))

        clients = [threading.Thread(target=client, daemon=True) for _ in range(4)]
        for c in clients:
            c.start()
        for c in clients:
            c.join(60)
        self.assertFalse(errors, errors[:3])
        self.assertEqual(len(singles), 4 * self.SINGLE)
        r = j.request("GET", "/v1/batches/%s?wait=60" % bid, timeout=75)
        self.assertEqual(r.status, 200, r)
        took = time.monotonic() - t0
        self.assertTrue(r.json["done"], r.json)
        self.assertEqual(r.json["counts"]["succeeded"], self.JOBS, r.json["counts"])
        jobs = j.list_all(batch=bid, limit=1000)
        self.assertEqual(len(jobs), self.JOBS)
        for job in jobs:
            self.assertEqual(job["state"], "succeeded", job)
            self.assertEqual(job["result"], {"increments": self.N}, job)
        # Several threads really ran counters at the same time.
        spans = sorted((parse_time(x["started_at"]), parse_time(x["finished_at"])) for x in jobs)
        overlap = max(sum(1 for s, e in spans if s <= t < e) for t, _ in spans)
        for jid in singles:
            job = j.wait_job(jid, 30)
            self.assertEqual(job["state"], "succeeded", job)
            self.assertEqual(job["result"], {"increments": self.N}, job)
        last = j.submit({"task": "counter_total"}, wait=10)
        self.assertEqual(last["state"], "succeeded", last)
        self.assertEqual(last["result"], {"total": (self.JOBS + 4 * self.SINGLE) * self.N})
        self.assertGreaterEqual(overlap, 2, "counters ran on several threads at once")
        sys.stderr.write("\n[stress] %d counter jobs (batch) + %d single POSTs x %d increments on 4 threads: "
                         "batch done in %.2fs, max overlap %d\n" % (self.JOBS, 4 * self.SINGLE, self.N, took, overlap))
        self.assertEqual(healthz(j)["threads_stuck"], 0)


if __name__ == "__main__":
    jobdtest.main()
