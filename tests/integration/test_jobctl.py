#!/usr/bin/env python3
"""Integration tests of jobctl (and through it the client library) against
the real jobd: run's exit-code passthrough, live streaming, stdin, Ctrl-C
cancel, every subcommand in human and --json form (tasks and batches too,
with batch --wait's progress line on a pseudo-terminal), and every error
path with its exit code.

jobctl is the binary named by JOBCTL_BIN (CTest sets it), else build*/jobctl.
The server-error path (exit 70) is not covered: jobd has no way to be made to
answer 500 on purpose.
"""

import errno
import glob
import json
import os
import pty
import re
import select
import signal
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import jobdtest  # noqa: E402
from jobdtest import JobdTestCase  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
RUN_TIMEOUT = 60  # seconds any one jobctl may take


def jobctl_bin():
    cands = [os.environ.get("JOBCTL_BIN")] + sorted(glob.glob(os.path.join(REPO, "build*", "jobctl")))
    for c in cands:
        if c and os.path.isfile(c) and os.access(c, os.X_OK):
            return os.path.abspath(c)
    raise RuntimeError("no jobctl binary: set JOBCTL_BIN")


def closed_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class JobctlCase(JobdTestCase):
    token = None

    @classmethod
    def setUpClass(cls):
        cls.bin = jobctl_bin()
        cls.j = cls.start_shared(token=cls.token)

    def env(self, **extra):
        env = dict(os.environ)
        env.pop("JOBD_TOKEN", None)
        env["JOBD_URL"] = "http://127.0.0.1:%d" % self.j.port
        if self.token:
            env["JOBD_TOKEN"] = self.token
        for k, v in extra.items():
            if v is None:
                env.pop(k, None)
            else:
                env[k] = v
        return env

    def jobctl(self, *args, input=b"", env=None, timeout=RUN_TIMEOUT):
        """Run jobctl to its end; returns CompletedProcess (stdout/stderr as text)."""
        p = subprocess.run(
            [self.bin] + [str(a) for a in args],
            input=input,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env or self.env(),
            timeout=timeout,
        )
        p.out = p.stdout.decode("utf-8", "replace")
        p.err = p.stderr.decode("utf-8", "replace")
        return p

    def popen(self, *args, **kw):
        p = subprocess.Popen(
            [self.bin] + [str(a) for a in args],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=self.env(),
            **kw
        )
        self.addCleanup(self._reap, p)
        return p

    @staticmethod
    def _reap(p):
        if p.poll() is None:
            p.kill()
        p.wait(10)
        for f in (p.stdout, p.stderr):
            if f:
                f.close()

    def assertExit(self, p, code, msg=""):
        self.assertEqual(p.returncode, code, "%s\nstdout: %s\nstderr: %s" % (msg, p.out[-2000:], p.err[-2000:]))

    def submit_id(self, *args):
        p = self.jobctl("submit", *args)
        self.assertExit(p, 0)
        jid = p.out.strip()
        self.assertRegex(jid, jobdtest.ID_RE)
        return jid

    def latest_job(self):
        return self.j.list(limit=1)["jobs"][0]

    def wait_running_job(self, name, timeout=10):
        """The newest job named `name` once it runs (with a pid)."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            jobs = self.j.list(limit=1, name=name)["jobs"]
            if jobs and jobs[0]["state"] == "running" and jobs[0]["pid"]:
                return jobs[0]
            time.sleep(0.05)
        self.fail("no running job within %ss" % timeout)


class RunTest(JobctlCase):
    def test_exit_code_passthrough(self):
        cases = [
            (["--", "true"], 0),
            (["--shell", "exit 3"], 3),
            (["--", "sh", "-c", "exit 255"], 255),
            (["--", "sh", "-c", "kill -9 $$"], 128 + 9),
            (["--", "sh", "-c", "kill -TERM $$"], 128 + 15),
            (["--timeout", "0.5", "--", "sleep", "10"], 124),
        ]
        for args, code in cases:
            p = self.jobctl("run", *args)
            self.assertExit(p, code, "run %s" % args)
        p = self.jobctl("run", "--timeout", "0.5", "--", "sleep", "10")
        self.assertIn("timed out", p.err)

    def test_could_not_start_is_127_with_the_error(self):
        p = self.jobctl("run", "--", "no-such-command-xyz")
        self.assertExit(p, 127)
        self.assertIn("could not run", p.err)
        self.assertIn("command not found: no-such-command-xyz", p.err)
        p = self.jobctl("run", "--cwd", "/no/such/dir", "--", "true")
        self.assertExit(p, 127)
        self.assertIn("/no/such/dir", p.err)

    def test_stdout_and_stderr_go_to_their_own_streams(self):
        p = self.jobctl("run", "--shell", "echo out1; echo err1 >&2; echo out2; printf 'no newline'")
        self.assertExit(p, 0)
        self.assertEqual(p.out, "out1\nout2\nno newline")
        self.assertEqual(p.err, "err1\n")

    def test_output_appears_before_the_job_ends(self):
        p = self.popen("run", "--", "sh", "-c", "echo first; sleep 3; echo second")
        start = time.monotonic()
        ready, _, _ = select.select([p.stdout], [], [], 2.5)
        self.assertTrue(ready, "no output within 2.5 s")
        line = p.stdout.readline()
        self.assertEqual(line, b"first\n")
        self.assertLess(time.monotonic() - start, 2.5)
        self.assertIsNone(p.poll(), "jobctl ended before the job did")
        rest = p.stdout.read()
        self.assertEqual(rest, b"second\n")
        self.assertEqual(p.wait(15), 0)
        self.assertGreater(time.monotonic() - start, 2.5)

    def test_large_output_on_both_streams(self):
        # 300 KiB on each stream at once: both follows must be drained together.
        p = self.jobctl("run", "--shell", "head -c 307200 /dev/zero | tr '\\0' a; "
                        "head -c 307200 /dev/zero | tr '\\0' b >&2")
        self.assertExit(p, 0)
        self.assertEqual(p.stdout, b"a" * 307200)
        self.assertEqual(p.stderr, b"b" * 307200)

    def test_stdin_from_a_pipe(self):
        p = self.jobctl("run", "--", "tr", "a-z", "A-Z", input=b"hello\nworld\n")
        self.assertExit(p, 0)
        self.assertEqual(p.out, "HELLO\nWORLD\n")
        self.assertEqual(self.latest_job()["stdin"], "hello\nworld\n")

    def test_stdin_from_a_file(self):
        with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as f:
            f.write("from file\n")
        self.addCleanup(os.unlink, f.name)
        p = self.jobctl("run", "--stdin", f.name, "--", "cat", input=b"ignored")
        self.assertExit(p, 0)
        self.assertEqual(p.out, "from file\n")
        p = self.jobctl("run", "--stdin", "/no/such/file", "--", "cat")
        self.assertExit(p, 66)
        self.assertIn("jobctl: --stdin /no/such/file", p.err)

    def test_stdin_that_is_not_utf8_is_an_invalid_spec(self):
        p = self.jobctl("run", "--", "cat", input=b"\xff\xfe")
        self.assertExit(p, 65)
        self.assertIn("field: stdin", p.err)

    def test_env_labels_name_and_limits_reach_the_job(self):
        p = self.jobctl("run", "-e", "GREETING=hi there", "-l", "team=data", "--name", "envtest",
                        "--output-bytes", "1M", "--priority", "5", "--", "sh", "-c", 'echo "$GREETING"')
        self.assertExit(p, 0)
        self.assertEqual(p.out, "hi there\n")
        job = self.latest_job()
        self.assertEqual(job["name"], "envtest")
        self.assertEqual(job["labels"], {"team": "data"})
        self.assertEqual(job["env"], {"GREETING": "hi there"})
        self.assertEqual(job["limits"]["output_bytes"], 1048576)
        self.assertEqual(job["priority"], 5)

    def test_ctrl_c_cancels_the_job(self):
        p = self.popen("run", "--name", "ctrl-c", "--", "sleep", "30")
        job = self.wait_running_job("ctrl-c")
        p.send_signal(signal.SIGINT)
        rc = p.wait(20)
        err = p.stderr.read().decode()
        self.assertEqual(rc, 130, err)
        self.assertIn("cancelling job %s" % job["id"], err)
        self.assertEqual(self.j.job(job["id"])["state"], "cancelled")

    def test_sigterm_cancels_the_job(self):
        p = self.popen("run", "--name", "sigterm", "--", "sleep", "30")
        job = self.wait_running_job("sigterm")
        p.send_signal(signal.SIGTERM)
        self.assertEqual(p.wait(20), 143)
        self.assertEqual(self.j.job(job["id"])["state"], "cancelled")

    def test_second_ctrl_c_leaves_at_once(self):
        # The job ignores SIGTERM, so the cancel takes kill_grace (20 s): the second
        # interrupt must not wait for it.
        p = self.popen("run", "--name", "twice", "--kill-grace", "20", "--", "sh", "-c",
                       "trap '' TERM; sleep 30")
        job = self.wait_running_job("twice")
        p.send_signal(signal.SIGINT)
        time.sleep(0.5)
        self.assertIsNone(p.poll())
        start = time.monotonic()
        p.send_signal(signal.SIGINT)
        self.assertEqual(p.wait(5), 130)
        self.assertLess(time.monotonic() - start, 2)
        self.assertEqual(self.j.job(job["id"])["state"], "running")
        # Clean up: the cancel is under way; SIGKILL comes after the grace.
        self.j.request("POST", "/v1/jobs/%s/cancel" % job["id"])

    def test_run_json_prints_the_final_job(self):
        p = self.jobctl("--json", "run", "--shell", "echo hidden; exit 4")
        self.assertExit(p, 4)
        job = json.loads(p.out)
        self.assertJobShape(job)
        self.assertEqual(job["state"], "failed")
        self.assertEqual(job["exit_code"], 4)
        self.assertEqual(self.j.output(job["id"]), b"hidden\n")

    def test_idempotency_key(self):
        a = self.submit_id("--idempotency-key", "key-1", "--", "true")
        b = self.submit_id("--idempotency-key", "key-1", "--", "true")
        self.assertEqual(a, b)
        p = self.jobctl("submit", "--idempotency-key", "key-1", "--", "false")
        self.assertExit(p, 1)
        self.assertIn("Idempotency-Key", p.err)


class CommandsTest(JobctlCase):
    def test_submit_status_wait_logs_rm(self):
        jid = self.submit_id("--name", "cmds", "--shell", "echo hello; echo oops >&2; exit 2")
        p = self.jobctl("wait", jid)
        self.assertExit(p, 2)
        self.assertRegex(p.out, r"^%s failed \(exit 2, .*\): exited with code 2\n$" % jid)
        p = self.jobctl("--json", "wait", jid)
        self.assertExit(p, 2)
        self.assertEqual(json.loads(p.out)["exit_code"], 2)

        p = self.jobctl("status", jid)
        self.assertExit(p, 0)
        self.assertRegex(p.out, r"(?m)^ID:\s+%s$" % jid)
        self.assertRegex(p.out, r"(?m)^Name:\s+cmds$")
        self.assertRegex(p.out, r"(?m)^State:\s+failed$")
        self.assertRegex(p.out, r"(?m)^Exit:\s+2$")
        self.assertRegex(p.out, r"(?m)^Shell:\s+echo hello")
        p = self.jobctl("get", jid, "--json")
        self.assertExit(p, 0)
        job = json.loads(p.out)
        self.assertJobShape(job)
        self.assertEqual(job["id"], jid)

        p = self.jobctl("logs", jid)
        self.assertExit(p, 0)
        self.assertEqual(p.out, "hello\n")
        p = self.jobctl("logs", "--stderr", jid)
        self.assertEqual(p.out, "oops\n")
        p = self.jobctl("logs", "--json", jid)
        self.assertExit(p, 0)
        self.assertEqual(json.loads(p.out), {"id": jid, "stream": "stdout", "bytes": 6, "data": "hello\n"})
        p = self.jobctl("logs", "-f", jid)
        self.assertExit(p, 0)
        self.assertEqual(p.out, "hello\n")

        p = self.jobctl("rm", jid)
        self.assertExit(p, 0)
        self.assertEqual(p.out, "%s removed\n" % jid)
        p = self.jobctl("status", jid)
        self.assertExit(p, 66)
        jid2 = self.submit_id("--", "true")
        self.jobctl("wait", jid2)
        p = self.jobctl("rm", "--json", jid2)
        self.assertExit(p, 0)
        self.assertEqual(json.loads(p.out), {"id": jid2, "deleted": True})

    def test_submit_json(self):
        p = self.jobctl("submit", "--json", "--timeout", "90s", "--retries", "1", "--", "echo", "x y")
        self.assertExit(p, 0)
        job = json.loads(p.out)
        self.assertJobShape(job)
        self.assertEqual(job["command"], ["echo", "x y"])
        self.assertEqual(job["timeout"], 90)
        self.assertEqual(job["retries"], 1)

    def test_logs_follow_streams_live(self):
        jid = self.submit_id("--shell", "echo one; echo err >&2; sleep 2; echo two")
        p = self.popen("logs", "-f", jid)
        ready, _, _ = select.select([p.stdout], [], [], 2)
        self.assertTrue(ready)
        self.assertEqual(p.stdout.readline(), b"one\n")
        self.assertEqual(p.stdout.read(), b"two\n")
        self.assertEqual(p.wait(10), 0)
        p = self.jobctl("logs", "-f", "--json", "--stderr", jid)
        self.assertExit(p, 0)
        self.assertEqual([json.loads(line) for line in p.out.splitlines()], [{"stream": "stderr", "data": "err\n"}])

    def test_wait_timeout(self):
        jid = self.submit_id("--", "sleep", "30")
        start = time.monotonic()
        p = self.jobctl("wait", "--timeout", "1", jid)
        self.assertExit(p, 75)
        self.assertLess(time.monotonic() - start, 10)
        self.assertIn("is still running", p.err)
        p = self.jobctl("cancel", jid)
        self.assertExit(p, 0)
        self.assertRegex(p.out, r"^%s: cancel requested \(state: (running|cancelled)\)\n$" % jid)
        p = self.jobctl("wait", jid)
        self.assertExit(p, 128 + 15)  # stopped by the default kill signal, SIGTERM
        self.assertIn("cancelled", p.out)

    def test_cancel_json_and_conflicts(self):
        jid = self.submit_id("--", "sleep", "30")
        p = self.jobctl("rm", jid)
        self.assertExit(p, 1)
        self.assertIn("still queued or running", p.err)
        p = self.jobctl("cancel", "--json", jid)
        self.assertExit(p, 0)
        self.assertEqual(json.loads(p.out)["id"], jid)
        self.j.wait_job(jid)
        p = self.jobctl("cancel", jid)
        self.assertExit(p, 1)
        self.assertIn("already ended", p.err)

    def test_list_table_filters_and_paging(self):
        ids = [self.submit_id("--name", "pager", "-l", "grp=pg", "--", "true") for _ in range(5)]
        for jid in ids:
            self.j.wait_job(jid)
        p = self.jobctl("list", "--name", "pager")
        self.assertExit(p, 0)
        lines = p.out.splitlines()
        self.assertEqual(lines[0].split(), ["ID", "NAME", "STATE", "EXIT", "EXECUTOR", "NODE", "AGE", "DURATION"])
        self.assertEqual([ln.split()[0] for ln in lines[1:]], ids[::-1])
        # Aligned: every column starts at the same offset on every line.
        starts = [m.start() for m in re.finditer(r"\S+", lines[0])]
        for ln in lines[1:]:
            self.assertEqual([m.start() for m in re.finditer(r"\S+", ln)], starts, p.out)
        for ln in lines[1:]:
            self.assertEqual(ln.split()[1:6], ["pager", "succeeded", "0", "process", "-"])
        # Several pages of 2, as one listing.
        p = self.jobctl("list", "--json", "--label", "grp=pg", "--page-size", "2")
        self.assertExit(p, 0)
        self.assertEqual([j["id"] for j in json.loads(p.out)], ids[::-1])
        p = self.jobctl("list", "--json", "--name", "pager", "--page-size", "2", "--limit", "3")
        self.assertEqual([j["id"] for j in json.loads(p.out)], ids[::-1][:3])
        p = self.jobctl("ls", "--json", "--name", "pager", "--state", "failed,cancelled")
        self.assertExit(p, 0)
        self.assertEqual(json.loads(p.out), [])
        p = self.jobctl("list", "--all", "--json")
        self.assertExit(p, 0)
        self.assertGreaterEqual(len(json.loads(p.out)), 5)

    def test_list_bad_state_is_the_servers_400(self):
        p = self.jobctl("list", "--state", "bogus")
        self.assertExit(p, 65)
        self.assertIn("field: state", p.err)

    def test_health(self):
        p = self.jobctl("health")
        self.assertExit(p, 0)
        self.assertRegex(p.out, r"^ok: jobd \S+ at http://127\.0\.0\.1:\d+\n$")
        p = self.jobctl("health", "--json")
        self.assertEqual(json.loads(p.out)["status"], "ok")

    def test_server_option_beats_the_environment(self):
        p = self.jobctl("--server", "127.0.0.1:%d" % self.j.port, "health",
                        env=self.env(JOBD_URL="http://127.0.0.1:%d" % closed_port()))
        self.assertExit(p, 0)

    def test_help_version_and_man(self):
        p = self.jobctl("--help")
        self.assertExit(p, 0)
        for word in ("run", "submit", "status", "wait", "logs", "cancel", "rm", "list", "tasks",
                     "batch", "batch status", "batch cancel", "Exit status"):
            self.assertIn(word, p.out)
        # One line per command in the overview.
        cmds = re.search(r"(?s)\nCommands:\n(.*?)\n\n", p.out).group(1).splitlines()
        self.assertEqual([ln.split("  ")[1].strip() for ln in cmds],
                         ["run", "submit", "status, get", "wait", "logs", "cancel", "rm", "list, ls", "tasks",
                          "batch", "batch status", "batch cancel", "nodes", "node", "drain", "nodes rm",
                          "health", "help"])
        for cmd in ("run", "submit", "status", "get", "wait", "logs", "cancel", "rm", "list", "health",
                    "tasks", "batch", "batch status", "batch cancel", "nodes", "node", "drain", "nodes rm"):
            a = self.jobctl("help", *cmd.split())
            b = self.jobctl(*cmd.split(), "--help")
            self.assertExit(a, 0)
            self.assertEqual(a.out, b.out)
            self.assertIn("usage: jobctl %s " % {"get": "status"}.get(cmd, cmd), a.out)
        p = self.jobctl("--version")
        self.assertRegex(p.out, r"^jobctl \d+\.\d+\.\d+\n$")
        p = self.jobctl("--help-man")
        self.assertTrue(p.out.startswith(".TH JOBCTL 1"))
        self.assertIn('.SS "batch status"', p.out)

    def test_usage_errors_are_2(self):
        for args in (["frob"], ["run"], ["status"], ["list", "--limit", "x"], []):
            p = self.jobctl(*args)
            self.assertExit(p, 2, args)
            self.assertTrue(p.err.startswith("jobctl: "), p.err)


class ErrorsTest(JobctlCase):
    def test_cannot_connect_is_69(self):
        env = self.env(JOBD_URL="http://127.0.0.1:%d" % closed_port())
        with tempfile.NamedTemporaryFile("w", suffix=".jsonl", delete=False) as f:
            f.write('{"command": ["true"]}\n')
        self.addCleanup(os.unlink, f.name)
        for args in (["list"], ["status", "j1"], ["run", "--", "true"], ["health"], ["logs", "-f", "j1"],
                     ["tasks"], ["batch", f.name], ["batch", "status", "b1"], ["batch", "cancel", "b1"]):
            p = self.jobctl(*args, env=env)
            self.assertExit(p, 69, args)
            self.assertIn("jobctl: cannot connect to", p.err)

    def test_not_found_is_66(self):
        for args in (["status", "jzzzz"], ["wait", "jzzzz"], ["logs", "jzzzz"], ["logs", "-f", "jzzzz"],
                     ["cancel", "jzzzz"], ["rm", "jzzzz"], ["status", "not-an-id"]):
            p = self.jobctl(*args)
            self.assertExit(p, 66, args)
            self.assertIn("jobctl: not found", p.err)

    def test_invalid_spec_is_65_with_the_field(self):
        for args, field in ((["--timeout", "-1"], "timeout"), (["--priority", "1000"], "priority"),
                            (["--cwd", "rel/dir"], "cwd"), (["--kill-signal", "SIGNOPE"], "kill_signal")):
            for cmd in ("run", "submit"):
                p = self.jobctl(cmd, *args, "--", "true")
                self.assertExit(p, 65, args)
                self.assertIn("field: %s" % field, p.err)
        self.assertEqual(self.j.list(limit=10)["jobs"], [])  # nothing reached the server


class TokenTest(JobctlCase):
    token = "tok-jobctl-secret"

    def test_unauthorized_is_77(self):
        for args in (["list"], ["status", "j1"], ["run", "--", "true"], ["submit", "--", "true"],
                     ["tasks"], ["batch", "-"], ["batch", "status", "b1"], ["batch", "cancel", "b1"]):
            p = self.jobctl("--token", "wrong", *args, input=b'{"command": ["true"]}\n')
            self.assertExit(p, 77, args)
            self.assertIn("jobctl: unauthorized", p.err)
            self.assertNotIn(self.token, p.err)
        p = self.jobctl("list", env=self.env(JOBD_TOKEN=None))
        self.assertExit(p, 77)

    def test_the_right_token_works(self):
        p = self.jobctl("run", "--", "echo", "authorized")
        self.assertExit(p, 0)
        self.assertEqual(p.out, "authorized\n")
        p = self.jobctl("--token", self.token, "list", env=self.env(JOBD_TOKEN=None))
        self.assertExit(p, 0)


class TasksTest(JobctlCase):
    def test_tasks_table_and_json(self):
        p = self.jobctl("tasks")
        self.assertExit(p, 0)
        lines = p.out.splitlines()
        self.assertEqual(lines[0].split(), ["NAME", "DESCRIPTION"])
        self.assertEqual([ln.split()[0] for ln in lines[1:]], ["echo", "http", "sleep"])
        # Aligned: every description starts where the header's does.
        col = lines[0].index("DESCRIPTION")
        for ln in lines[1:]:
            self.assertEqual(ln[col - 2:col], "  ", p.out)
            self.assertNotEqual(ln[col], " ", p.out)
        self.assertIn("cancellable", p.out)
        p = self.jobctl("tasks", "--json")
        self.assertExit(p, 0)
        tasks = json.loads(p.out)
        self.assertEqual(tasks, self.j.request("GET", "/v1/tasks").json["tasks"])
        self.assertEqual([t["name"] for t in tasks], ["echo", "http", "sleep"])

    def test_run_task_prints_its_output_and_exits_0(self):
        args = {"a": [1, "x\u00e9"], "b": None}
        p = self.jobctl("run", "--task", "echo", "--args", json.dumps(args))
        self.assertExit(p, 0)
        self.assertEqual(json.loads(p.out), args)
        self.assertEqual(p.out.count("\n"), 1)
        job = self.latest_job()
        self.assertEqual((job["task"], job["executor"], job["args"]), ("echo", "thread", args))
        self.assertIsNone(job["stdin"], "a task reads no stdin: jobctl sends none")
        p = self.jobctl("run", "--task", "echo", "--args", "[3]", "--executor", "process")
        self.assertExit(p, 0)
        self.assertEqual(p.out, "[3]\n")
        self.assertEqual(self.latest_job()["executor"], "process")

    def test_submit_task_then_status_and_json(self):
        jid = self.submit_id("--task", "echo", "--args", '{"n": 5}', "--name", "t-echo")
        self.assertExit(self.jobctl("wait", jid), 0)
        p = self.jobctl("status", jid)
        self.assertExit(p, 0)
        self.assertRegex(p.out, r"(?m)^Task:\s+echo$")
        self.assertRegex(p.out, r'(?m)^Args:\s+\{"n":5\}$')
        self.assertRegex(p.out, r"(?m)^Executor:\s+thread$")
        p = self.jobctl("submit", "--json", "--task", "sleep", "--args", '{"seconds": 0.1}')
        self.assertExit(p, 0)
        job = json.loads(p.out)
        self.assertJobShape(job)
        self.assertEqual((job["task"], job["args"]), ("sleep", {"seconds": 0.1}))
        self.assertExit(self.jobctl("wait", job["id"]), 0)

    def test_task_timeout_is_124(self):
        p = self.jobctl("run", "--task", "sleep", "--args", '{"seconds": 30}', "--timeout", "0.5")
        self.assertExit(p, 124)

    def test_task_errors_are_65_with_the_field(self):
        n = len(self.j.list(limit=1000)["jobs"])
        for args, field in ((["--task", "no-such-task"], "task"),
                            (["--task", "sleep", "--args", '{"seconds": "x"}'], "args.seconds"),
                            (["--task", "echo", "--args", "{bad"], "args"),
                            (["--executor", "thread", "--", "true"], "executor")):
            for cmd in ("run", "submit"):
                p = self.jobctl(cmd, *args)
                self.assertExit(p, 65, args)
                self.assertIn("field: %s)" % field, p.err)
        self.assertEqual(len(self.j.list(limit=1000)["jobs"]), n, "nothing was accepted")
        # remote is the server's to refuse: this jobd has no cluster token.
        p = self.jobctl("run", "--executor", "remote", "--task", "echo")
        self.assertExit(p, 65)
        self.assertIn("field: executor)", p.err)


BATCH_ID_RE = re.compile(r"^b[0-9a-z]+$")


class BatchTest(JobctlCase):
    def spec_file(self, text, suffix=".json"):
        with tempfile.NamedTemporaryFile("w", suffix=suffix, delete=False) as f:
            f.write(text)
        self.addCleanup(os.unlink, f.name)
        return f.name

    def batch_doc(self, bid):
        r = self.j.request("GET", "/v1/batches/%s" % bid)
        self.assertEqual(r.status, 200, r)
        return r.json

    def test_batch_from_a_json_array_file(self):
        specs = [{"command": ["true"]}, {"shell": "echo hi"}, {"task": "echo", "args": {"k": 1}}]
        path = self.spec_file(json.dumps(specs, indent=2))
        p = self.jobctl("batch", "--name", "arr", "-c", "2", path)
        self.assertExit(p, 0)
        bid = p.out.strip()
        self.assertRegex(bid, BATCH_ID_RE)
        self.assertEqual(p.out, bid + "\n")
        doc = self.batch_doc(bid)
        self.assertEqual((doc["name"], doc["concurrency"], doc["total"]), ("arr", 2, 3))
        p = self.jobctl("batch", "status", "--wait", bid)
        self.assertExit(p, 0)
        self.assertEqual(p.out, "%s: 3/3 done (succeeded 3)\n" % bid)
        p = self.jobctl("batch", "status", bid)
        self.assertExit(p, 0)
        self.assertRegex(p.out, r"(?m)^ID:\s+%s$" % bid)
        self.assertRegex(p.out, r"(?m)^Name:\s+arr$")
        self.assertRegex(p.out, r"(?m)^Done:\s+yes$")
        self.assertRegex(p.out, r"(?m)^Succeeded:\s+3$")
        p = self.jobctl("batch", "status", "--json", bid)
        self.assertExit(p, 0)
        self.assertEqual(json.loads(p.out), self.batch_doc(bid))
        # Its jobs, in the order of the file (newest first in a listing).
        p = self.jobctl("list", "--json", "--batch", bid)
        self.assertExit(p, 0)
        jobs = json.loads(p.out)[::-1]
        self.assertEqual([j["id"] for j in jobs], doc["jobs"])
        self.assertEqual([j["batch"] for j in jobs], [bid] * 3)
        self.assertEqual(jobs[1]["shell"], "echo hi")
        self.assertEqual(jobs[2]["task"], "echo")

    def test_batch_from_json_lines_on_stdin(self):
        text = b'{"command": ["true"]}\n\n   \r\n{"task": "echo", "args": [1]}\r\n{"shell": "exit 0"}'
        p = self.jobctl("batch", "--json", "-", input=text)
        self.assertExit(p, 0)
        doc = json.loads(p.out)
        self.assertRegex(doc["id"], BATCH_ID_RE)
        self.assertEqual(doc["total"], 3)
        self.assertIsNone(doc["name"])
        self.assertEqual(doc["concurrency"], 3, "the server's default: all at once")
        jobs = [self.j.wait_job(jid) for jid in doc["jobs"]]
        self.assertEqual([j["command"] or j["task"] or j["shell"] for j in jobs], [["true"], "echo", "exit 0"])
        self.assertEqual([j["state"] for j in jobs], ["succeeded"] * 3)

    def test_wait_summary_and_exit_status(self):
        ok = b'{"command": ["true"]}\n{"task": "echo"}\n'
        p = self.jobctl("batch", "--wait", "-", input=ok)
        self.assertExit(p, 0)
        self.assertRegex(p.out, r"^b[0-9a-z]+: 2/2 done \(succeeded 2\)\n$")
        self.assertNotIn("\r", p.out, "no progress line when stdout is not a terminal")
        self.assertEqual(p.err, "")
        bad = ok + b'{"shell": "exit 3"}\n{"command": ["sleep", "10"], "timeout": 0.2}\n'
        p = self.jobctl("batch", "--wait", "-", input=bad)
        self.assertExit(p, 1)
        bid = p.out.split(":")[0]
        self.assertEqual(p.out, "%s: 4/4 done (succeeded 2, failed 1, timed out 1)\n" % bid)
        self.assertIn("did not succeed", p.err)
        self.assertIn("jobctl list --batch %s" % bid, p.err)
        p = self.jobctl("batch", "--wait", "--json", "-", input=bad)
        self.assertExit(p, 1)
        doc = json.loads(p.out)
        self.assertTrue(doc["done"])
        self.assertEqual((doc["counts"]["succeeded"], doc["counts"]["failed"], doc["counts"]["timed_out"]), (2, 1, 1))

    def test_wait_timeout_is_75(self):
        start = time.monotonic()
        p = self.jobctl("batch", "--wait", "--timeout", "1", "-", input=b'{"command": ["sleep", "30"]}\n')
        self.assertExit(p, 75)
        self.assertLess(time.monotonic() - start, 15)
        bid = p.out.split(":")[0]
        self.assertIn("batch %s is not done after 1 s" % bid, p.err)
        self.assertExit(self.jobctl("batch", "cancel", bid), 0)

    def test_batch_cancel(self):
        p = self.jobctl("batch", "-c", "1", "-", input=b'{"command": ["sleep", "30"]}\n' * 3)
        self.assertExit(p, 0)
        bid = p.out.strip()
        p = self.jobctl("batch", "cancel", bid)
        self.assertExit(p, 0)
        self.assertRegex(p.out, r"^%s: cancel requested( \(1 jobs still running\))?\n$" % bid)
        p = self.jobctl("batch", "status", "--wait", bid)
        self.assertExit(p, 1)
        self.assertEqual(p.out, "%s: 3/3 done (succeeded 0, cancelled 3)\n" % bid)
        # Cancelling a done batch is fine; --json gives the batch.
        p = self.jobctl("batch", "cancel", "--json", bid)
        self.assertExit(p, 0)
        doc = json.loads(p.out)
        self.assertEqual((doc["id"], doc["done"], doc["counts"]["cancelled"]), (bid, True, 3))
        for args in (["batch", "cancel", "bzzzz"], ["batch", "status", "bzzzz"], ["batch", "status", "--wait", "j1"]):
            p = self.jobctl(*args)
            self.assertExit(p, 66, args)
            self.assertIn("jobctl: not found", p.err)

    def test_live_progress_line_on_a_terminal(self):
        master, slave = pty.openpty()
        self.addCleanup(os.close, master)
        p = subprocess.Popen([self.bin, "batch", "--wait", "-c", "1", "-"], stdin=subprocess.PIPE,
                             stdout=slave, stderr=subprocess.PIPE, env=self.env())
        os.close(slave)
        self.addCleanup(self._reap, p)
        p.stdin.write(b'{"shell": "sleep 0.4"}\n' * 4)
        p.stdin.close()
        out = b""
        end = time.monotonic() + RUN_TIMEOUT
        while time.monotonic() < end:
            ready, _, _ = select.select([master], [], [], 1)
            if not ready:
                if p.poll() is not None:
                    break
                continue
            try:
                chunk = os.read(master, 4096)
            except OSError as e:  # EIO: the terminal's last writer has gone
                if e.errno != errno.EIO:
                    raise
                break
            if not chunk:
                break
            out += chunk
        self.assertEqual(p.wait(10), 0, out)
        text = out.decode()
        bid = text.strip("\r\n").split(":")[0]
        redraws = [s for s in re.split(r"\r\n?|\n", text) if s]
        self.assertGreaterEqual(len(redraws), 3, text)  # at least the first, one in between, the last
        self.assertIn("%s: 0/4 done" % bid.strip(), redraws[0])
        self.assertTrue(any(re.search(r"[123]/4 done .*, 1 running", s) for s in redraws), text)
        self.assertIn("%s: 4/4 done (succeeded 4)" % bid.strip(), redraws[-1])
        self.assertTrue(text.endswith("\n"), repr(text))

    def test_bad_files_are_65_naming_the_line(self):
        n = len(self.j.list(limit=1000)["jobs"])
        cases = [
            (b'{"command": ["true"]}\n{"command": ["true"],\n', "line 2: not JSON", None),
            (b'[{"command": ["true"]},\n {"command": ]', "line 2, column", None),
            (b'{"shell": "a"}\n\n{"shell": "b", "timeout": -1}\n', "line 3: timeout:", "jobs[1].timeout"),
            (b'{"shell": "a"}\n["not", "an", "object"]\n', "line 2: a job spec must be a JSON object", "jobs[1]"),
            (b"\n\n", "no job specs found", "jobs"),
        ]
        for text, msg, field in cases:
            path = self.spec_file(text.decode())
            for args, inp, name in ((["batch", path], b"", path), (["batch", "-"], text, "stdin")):
                p = self.jobctl(*args, input=inp)
                self.assertExit(p, 65, text)
                self.assertIn("jobctl: invalid batch in %s: " % name, p.err)
                self.assertIn(msg, p.err)
                if field:
                    self.assertIn("(field: %s)" % field, p.err)
        # The server's check: an unknown task, named with its field and its line.
        p = self.jobctl("batch", "-", input=b'{"command": ["true"]}\n\n{"task": "no-such-task"}\n')
        self.assertExit(p, 65)
        self.assertIn("field: jobs[1].task", p.err)
        self.assertIn("line 3 of stdin", p.err)
        p = self.jobctl("batch", "/no/such/file.jsonl")
        self.assertExit(p, 66)
        self.assertIn("jobctl: /no/such/file.jsonl: No such file or directory", p.err)
        self.assertEqual(len(self.j.list(limit=1000)["jobs"]), n, "nothing was accepted")

    def test_usage_errors(self):
        for args in (["batch"], ["batch", "-c", "0", "-"], ["batch", "--timeout", "3", "-"],
                     ["batch", "status"], ["batch", "cancel", "--wait", "b1"]):
            p = self.jobctl(*args)
            self.assertExit(p, 2, args)


if __name__ == "__main__":
    jobdtest.main()
