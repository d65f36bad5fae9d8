#!/usr/bin/env python3
"""Integration tests of jobd's privilege drop and TLS (SECURITY.md).

--run-as USER (these need root, and are skipped otherwise): commands, shell
jobs and process tasks run with that user's uid, gid and groups and nothing
of root's; a job's cwd is checked with the job's rights; jobs cannot write
into jobd's data directory; jobd's own threads stay root; without --run-as
jobs run as jobd's user; jobd refuses --run-as when it is not root, for an
unknown user, and for a data directory open to others.

TLS (--tls-cert/--tls-key): a self-signed certificate for 127.0.0.1 made
with the openssl CLI; Python's ssl module verifies it and talks to jobd;
jobctl --cacert (and JOBD_CACERT) submits, runs and reads logs; plain HTTP
to the TLS port gets no answer; a wrong CA is exit 69 with a clear message.

Also: JOBD_TOKEN is wiped from jobd's environment after start.

Run alone with:
  JOBD_BIN=build/jobd JOBCTL_BIN=build/jobctl python3 tests/integration/test_security.py
"""

import glob
import grp
import http.client
import json
import os
import pwd
import re
import secrets
import shutil
import ssl
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import jobdtest  # noqa: E402
from jobdtest import Jobd, JobdTestCase  # noqa: E402

# jobd says https:// when it serves TLS; the harness's pattern takes both here.
jobdtest.LISTEN_RE = re.compile(r"^jobd: listening on https?://(\S+):(\d+)\s*$")

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
RUN_AS = "nobody"
IS_ROOT = os.geteuid() == 0
CMD_TIMEOUT = 60  # seconds any one jobctl or openssl may take


def jobctl_bin():
    cands = [os.environ.get("JOBCTL_BIN")] + sorted(glob.glob(os.path.join(REPO, "build*", "jobctl")))
    for c in cands:
        if c and os.path.isfile(c) and os.access(c, os.X_OK):
            return os.path.abspath(c)
    raise RuntimeError("no jobctl binary: set JOBCTL_BIN")


def user_ids(name):
    """(uid, gid, set of groups, home) of a user, as jobd should resolve them."""
    pw = pwd.getpwnam(name)
    groups = set(os.getgrouplist(name, pw.pw_gid))
    home = pw.pw_dir if os.path.isdir(pw.pw_dir) else "/"
    return pw.pw_uid, pw.pw_gid, groups, home


def proc_ids(pid):
    """{'Uid': [r, e, s, fs], 'Gid': [...], 'Groups': [...]} of a process or thread."""
    out = {}
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            k, _, v = line.partition(":")
            if k in ("Uid", "Gid", "Groups"):
                out[k] = [int(x) for x in v.split()]
    return out


def start_private(case, *args, **kw):
    """Start a jobd whose data directory is 0700, as --run-as demands; closed when the test ends."""
    j = case.track(Jobd(*args, start=False, **kw))
    os.chmod(j.data_dir, 0o700)
    j.start()
    return j


def spawn_until_exit(j, timeout=15):
    """Start j (which must refuse to run) and return (exit status, log)."""
    j.spawn()
    rc = j.wait_exit(timeout)
    if rc is None:
        raise AssertionError("jobd did not exit: " + j.log()[-2000:])
    return rc, j.log()


@unittest.skipUnless(IS_ROOT, "--run-as needs jobd to run as root")
class RunAsTest(JobdTestCase):
    @classmethod
    def setUpClass(cls):
        cls.uid, cls.gid, cls.groups, cls.home = user_ids(RUN_AS)
        j = Jobd("--run-as", RUN_AS, start=False)
        cls.addClassCleanup(jobdtest.check_sanitizers, j)
        cls.addClassCleanup(j.close)
        cls._shared_jobds = [j]
        os.chmod(j.data_dir, 0o700)
        j.start()
        cls.j = j

    def run_job(self, spec, ok=True):
        job = self.j.submit(spec, wait=20)
        if ok:
            self.assertEqual(job["state"], "succeeded", job)
        return job, self.j.output(job["id"]).decode(), self.j.output(job["id"], "stderr").decode()

    def test_command_runs_as_the_user(self):
        _, out, _ = self.run_job({"command": ["id", "-u"]})
        self.assertEqual(int(out), self.uid)
        _, out, _ = self.run_job({"command": ["id", "-g"]})
        self.assertEqual(int(out), self.gid)
        _, out, _ = self.run_job({"command": ["id", "-G"]})
        got = set(int(g) for g in out.split())
        self.assertEqual(got, self.groups)
        self.assertNotIn(0, got, "a root group is left: " + out)

    def test_every_id_is_dropped(self):
        """Real, effective, saved and filesystem ids, from the kernel's view: no way back to root."""
        _, out, _ = self.run_job({"shell": "grep -E '^(Uid|Gid|Groups):' /proc/self/status"})
        ids = {}
        for line in out.splitlines():
            k, _, v = line.partition(":")
            ids[k] = [int(x) for x in v.split()]
        self.assertEqual(ids["Uid"], [self.uid] * 4, out)
        self.assertEqual(ids["Gid"], [self.gid] * 4, out)
        self.assertEqual(set(ids["Groups"]), self.groups, out)

    def test_home_and_default_cwd(self):
        """A job without cwd starts in the user's home ("/" when it has none); HOME is its cwd."""
        _, out, _ = self.run_job({"shell": 'pwd; echo "$HOME"'})
        self.assertEqual(out.split("\n")[:2], [self.home, self.home])
        d = tempfile.mkdtemp(prefix="jobd-sec-cwd-")
        self.addCleanup(shutil.rmtree, d, True)
        os.chmod(d, 0o755)
        _, out, _ = self.run_job({"shell": 'pwd; echo "$HOME"', "cwd": d})
        self.assertEqual(out.split("\n")[:2], [d, d])

    def test_cwd_is_checked_with_the_users_rights(self):
        d = tempfile.mkdtemp(prefix="jobd-sec-private-")  # 0700 root
        self.addCleanup(shutil.rmtree, d, True)
        job, _, _ = self.run_job({"command": ["true"], "cwd": d}, ok=False)
        self.assertEqual(job["state"], "failed", job)
        self.assertIn("cannot change directory", job["error"])
        self.assertIn("ermission denied", job["error"])

    def test_jobs_cannot_touch_the_data_dir(self):
        data = self.j.data_dir
        self.assertEqual(os.stat(data).st_mode & 0o777, 0o700)
        victim = os.path.join(data, "planted-by-job")
        job, _, err = self.run_job({"shell": "touch %s; ls %s" % (victim, data)}, ok=False)
        self.assertEqual(job["state"], "failed", job)
        self.assertIn("ermission denied", err)
        self.assertFalse(os.path.exists(victim))
        job, _, _ = self.run_job({"command": ["true"], "cwd": data}, ok=False)
        self.assertEqual(job["state"], "failed", job)
        self.assertIn("ermission denied", job["error"])

    def test_limits_still_apply(self):
        """Limits are set before the switch, and bind the user afterwards."""
        _, out, _ = self.run_job({"shell": "ulimit -n; ulimit -Hn", "limits": {"open_files": 64}})
        self.assertEqual(out.split(), ["64", "64"])
        job, _, _ = self.run_job({"shell": "ulimit -n 65", "limits": {"open_files": 64}}, ok=False)
        self.assertEqual(job["state"], "failed", job)

    def test_process_task_runs_as_the_user(self):
        """A task forked from jobd (the fork path, not vfork) switches too."""
        job = self.j.submit({"task": "sleep", "args": {"seconds": 30}, "executor": "process"})
        running = self.j.wait_state(job["id"], "running")
        ids = proc_ids(running["pid"])
        self.assertEqual(ids["Uid"], [self.uid] * 4, ids)
        self.assertEqual(ids["Gid"], [self.gid] * 4, ids)
        self.assertEqual(set(ids["Groups"]), self.groups, ids)
        # It holds a copy of jobd's memory: non-dumpable, so its /proc/PID files stay root's, and
        # other processes of the user cannot ptrace it or read its memory.
        self.assertEqual(os.stat("/proc/%d/mem" % running["pid"]).st_uid, 0)
        r = self.j.request("POST", "/v1/jobs/%s/cancel" % job["id"])
        self.assertEqual(r.status, 202, r)
        self.assertEqual(self.j.wait_job(job["id"])["state"], "cancelled")

    def test_jobd_itself_stays_root(self):
        """The switch happens in the children only: every thread of jobd keeps root's ids.

        (glibc's setuid in a vfork child would have changed them all.)"""
        self.run_job({"command": ["true"]})
        self.run_job({"task": "echo", "args": {"x": 1}, "executor": "process"})
        tasks = os.listdir("/proc/%d/task" % self.j.pid)
        self.assertGreater(len(tasks), 1)
        for tid in tasks:
            ids = proc_ids(int(tid))
            self.assertEqual(ids["Uid"], [0, 0, 0, 0], "thread %s: %s" % (tid, ids))
            self.assertEqual(ids["Gid"][0], 0, "thread %s: %s" % (tid, ids))


@unittest.skipUnless(IS_ROOT, "needs root to see that jobs keep jobd's user")
class WithoutRunAsTest(JobdTestCase):
    def test_jobs_run_as_jobds_user(self):
        j = self.start_jobd()
        job = j.submit({"shell": "id -u; id -g"}, wait=20)
        self.assertEqual(job["state"], "succeeded", job)
        self.assertEqual(j.output(job["id"]).decode().split(), ["0", "0"])


class RunAsRefusalTest(JobdTestCase):
    def assertRefused(self, j, *needles):
        rc, log = spawn_until_exit(j)
        self.assertEqual(rc, 2, log)
        self.assertNotIn("listening on", log)
        for n in needles:
            self.assertIn(n, log)
        return log

    @unittest.skipUnless(IS_ROOT, "the check of the user comes after the check for root")
    def test_unknown_user(self):
        j = self.track(Jobd("--run-as", "no-such-user-jobd", start=False))
        os.chmod(j.data_dir, 0o700)
        self.assertRefused(j, "no-such-user-jobd", "no such user")

    @unittest.skipUnless(IS_ROOT, "the data directory check comes after the check for root")
    def test_data_dir_open_to_others(self):
        j = self.track(Jobd("--run-as", RUN_AS, start=False))
        os.chmod(j.data_dir, 0o755)
        self.assertRefused(j, "chmod 700", j.data_dir)

    @unittest.skipUnless(IS_ROOT and shutil.which("setpriv"), "needs root and setpriv to become nobody")
    def test_not_root(self):
        """A jobd that is not root cannot switch users: it says so and does not start."""
        tmp = tempfile.mkdtemp(prefix="jobd-sec-nonroot-")
        self.addCleanup(shutil.rmtree, tmp, True)
        os.chmod(tmp, 0o755)
        binary = os.path.join(tmp, "jobd")
        shutil.copy2(jobdtest.jobd_bin(), binary)
        os.chmod(binary, 0o755)
        data = os.path.join(tmp, "data")
        os.mkdir(data, 0o700)
        os.chown(data, pwd.getpwnam(RUN_AS).pw_uid, grp.getgrnam("nogroup").gr_gid)
        p = subprocess.run(
            ["setpriv", "--reuid=" + RUN_AS, "--regid=nogroup", "--clear-groups", binary,
             "--listen", "127.0.0.1:0", "--data-dir", data, "--run-as", RUN_AS],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=tmp,
            timeout=CMD_TIMEOUT)
        err = p.stderr.decode()
        self.assertEqual(p.returncode, 2, err)
        self.assertNotIn(b"listening on", p.stdout)
        self.assertIn("--run-as", err)
        self.assertIn("must run as root", err)
        # The same binary and user start fine without --run-as: the refusal is about --run-as.
        p = subprocess.Popen(
            ["setpriv", "--reuid=" + RUN_AS, "--regid=nogroup", "--clear-groups", binary,
             "--listen", "127.0.0.1:0", "--data-dir", data],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=tmp)
        try:
            line = p.stdout.readline().decode()
            self.assertRegex(line, jobdtest.LISTEN_RE)
        finally:
            p.terminate()
            p.communicate(timeout=30)


class TokenScrubTest(JobdTestCase):
    def test_token_is_wiped_from_jobds_environment(self):
        """jobd reads JOBD_TOKEN, then removes it and overwrites its text, so neither getenv in
        a task nor /proc/PID/environ shows it."""
        token = "scrub-" + secrets.token_hex(16)
        j = self.start_jobd(token=token)
        with open("/proc/%d/environ" % j.pid, "rb") as f:
            env = f.read()
        self.assertNotIn(token.encode(), env)
        r = j.request("GET", "/v1/jobs")
        self.assertEqual(r.status, 200, r)  # the token still works
        self.assertEqual(j.request("GET", "/v1/jobs", auth=False).status, 401)


class TlsTest(JobdTestCase):
    """jobd serving HTTPS with a self-signed certificate for 127.0.0.1."""

    @classmethod
    def openssl_selfsigned(cls, name):
        cert = os.path.join(cls.pki, name + ".pem")
        key = os.path.join(cls.pki, name + ".key")
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
             "-nodes", "-keyout", key, "-out", cert, "-days", "2", "-subj", "/CN=127.0.0.1",
             "-addext", "subjectAltName=IP:127.0.0.1"],
            check=True, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            timeout=CMD_TIMEOUT)
        os.chmod(key, 0o600)
        return cert, key

    @classmethod
    def setUpClass(cls):
        if not shutil.which("openssl"):
            raise unittest.SkipTest("needs the openssl command (Debian package openssl)")
        cls.pki = tempfile.mkdtemp(prefix="jobd-sec-pki-")
        cls.addClassCleanup(shutil.rmtree, cls.pki, True)
        cls.cert, cls.key = cls.openssl_selfsigned("server")
        cls.other_cert, cls.other_key = cls.openssl_selfsigned("other")
        cls.token = "tls-" + secrets.token_hex(16)
        cls.bin = jobctl_bin()
        cls.j = cls.start_shared("--tls-cert", cls.cert, "--tls-key", cls.key, token=cls.token)
        cls.base = "https://127.0.0.1:%d" % cls.j.port

    def https(self, method, path, body=None, cafile=None, timeout=30):
        ctx = ssl.create_default_context(cafile=cafile or self.cert)
        conn = http.client.HTTPSConnection("127.0.0.1", self.j.port, context=ctx, timeout=timeout)
        headers = {"Authorization": "Bearer " + self.token}
        if body is not None:
            body = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        try:
            conn.request(method, path, body=body, headers=headers)
            r = conn.getresponse()
            return r.status, r.read(), conn.sock.version()
        finally:
            conn.close()

    def jobctl(self, *args, cacert=True, env=None, input=b""):
        e = dict(os.environ)
        for k in ("JOBD_URL", "JOBD_TOKEN", "JOBD_CACERT"):
            e.pop(k, None)
        e["JOBD_TOKEN"] = self.token
        e.update(env or {})
        argv = [self.bin, "--server", self.base] + (["--cacert", self.cert] if cacert is True else [])
        p = subprocess.run(argv + [str(a) for a in args], input=input, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, env=e, timeout=CMD_TIMEOUT)
        p.out, p.err = p.stdout.decode(), p.stderr.decode()
        return p

    def test_cluster_over_tls(self):
        """A coordinator and a node both serving HTTPS: the node joins over TLS, the
        coordinator dispatches and follows over TLS (--cacert on both), and a node that
        does not trust the coordinator's certificate never joins."""
        env = {"JOBD_CLUSTER_TOKEN": "tls-cluster-" + secrets.token_hex(8)}
        coord = self.start_jobd("--tls-cert", self.cert, "--tls-key", self.key, "--cacert", self.cert,
                                "--node-timeout", "5", token=self.token, env=env)
        node = self.start_jobd("--tls-cert", self.cert, "--tls-key", self.key, "--cacert", self.cert,
                               "--join", "https://127.0.0.1:%d" % coord.port, "--label", "tls=yes",
                               env=env)
        wrong = self.start_jobd("--cacert", self.other_cert,
                                "--join", "https://127.0.0.1:%d" % coord.port, env=env)

        def call(method, path, body=None):
            ctx = ssl.create_default_context(cafile=self.cert)
            conn = http.client.HTTPSConnection("127.0.0.1", coord.port, context=ctx, timeout=30)
            headers = {"Authorization": "Bearer " + self.token}
            if body is not None:
                body = json.dumps(body).encode()
                headers["Content-Type"] = "application/json"
            try:
                conn.request(method, path, body=body, headers=headers)
                r = conn.getresponse()
                return r.status, json.loads(r.read() or b"null")
            finally:
                conn.close()

        deadline = time.monotonic() + 10
        nodes = []
        while time.monotonic() < deadline:
            nodes = call("GET", "/v1/nodes")[1]["nodes"]
            if any(n["state"] == "ready" for n in nodes):
                break
            time.sleep(0.1)
        self.assertEqual([n["url"] for n in nodes], ["https://127.0.0.1:%d" % node.port], nodes)
        status, job = call("POST", "/v1/jobs?wait=20", {"shell": "echo remote-over-tls",
                                                        "executor": "remote",
                                                        "node_selector": {"tls": "yes"}})
        self.assertEqual((status, job["state"], job["exit_code"]), (201, "succeeded", 0), job)
        ctx = ssl.create_default_context(cafile=self.cert)
        conn = http.client.HTTPSConnection("127.0.0.1", coord.port, context=ctx, timeout=30)
        try:
            conn.request("GET", "/v1/jobs/%s/stdout" % job["id"],
                         headers={"Authorization": "Bearer " + self.token})
            self.assertEqual(conn.getresponse().read(), b"remote-over-tls\n")
        finally:
            conn.close()
        # The node that trusts another CA is not in the list, and says why in its log.
        self.assertEqual(len(call("GET", "/v1/nodes")[1]["nodes"]), 1)
        self.assertRegex(wrong.log(), r"coordinator https://127.0.0.1:\d+: .*(SSL|certificate)")

    def test_startup_line_says_https(self):
        self.assertIn("jobd: listening on https://127.0.0.1:%d" % self.j.port, self.j.log())

    def test_python_ssl_verifies_and_talks(self):
        status, body, version = self.https("GET", "/healthz")
        self.assertEqual(status, 200, body)
        self.assertEqual(json.loads(body)["status"], "ok")
        self.assertIn(version, ("TLSv1.2", "TLSv1.3"))
        status, body, _ = self.https("POST", "/v1/jobs?wait=20", {"shell": "echo over-tls"})
        self.assertEqual(status, 201, body)
        job = json.loads(body)
        self.assertEqual(job["state"], "succeeded", job)
        status, body, _ = self.https("GET", "/v1/jobs/%s/stdout" % job["id"])
        self.assertEqual((status, body), (200, b"over-tls\n"))

    def test_python_ssl_refuses_another_ca(self):
        with self.assertRaises(ssl.SSLCertVerificationError):
            self.https("GET", "/healthz", cafile=self.other_cert)

    def test_the_token_is_still_required(self):
        ctx = ssl.create_default_context(cafile=self.cert)
        conn = http.client.HTTPSConnection("127.0.0.1", self.j.port, context=ctx, timeout=30)
        try:
            conn.request("GET", "/v1/jobs")
            r = conn.getresponse()
            r.read()
            self.assertEqual(r.status, 401)
        finally:
            conn.close()

    def test_plain_http_to_the_tls_port_fails(self):
        conn = http.client.HTTPConnection("127.0.0.1", self.j.port, timeout=10)
        try:
            with self.assertRaises((http.client.HTTPException, OSError)):
                conn.request("GET", "/healthz")
                conn.getresponse().read()
        finally:
            conn.close()
        # jobd is unharmed.
        self.assertEqual(self.https("GET", "/healthz")[0], 200)

    def test_jobctl_submit_run_logs(self):
        p = self.jobctl("submit", "--", "sh", "-c", "echo from-submit; echo to-err >&2")
        self.assertEqual(p.returncode, 0, p.err)
        jid = p.out.strip()
        self.assertRegex(jid, jobdtest.ID_RE)
        p = self.jobctl("wait", jid)
        self.assertEqual(p.returncode, 0, p.err)
        p = self.jobctl("logs", jid)
        self.assertEqual((p.returncode, p.out), (0, "from-submit\n"), p.err)
        p = self.jobctl("logs", "--stderr", jid)
        self.assertEqual((p.returncode, p.out), (0, "to-err\n"), p.err)
        p = self.jobctl("run", "--", "sh", "-c", "echo ran; exit 3")
        self.assertEqual((p.returncode, p.out), (3, "ran\n"), p.err)
        p = self.jobctl("run", "--", "tr", "a-z", "A-Z", input=b"stdin over tls\n")
        self.assertEqual((p.returncode, p.out), (0, "STDIN OVER TLS\n"), p.err)
        p = self.jobctl("logs", "-f", jid)
        self.assertEqual((p.returncode, p.out), (0, "from-submit\n"), p.err)

    def test_jobctl_cacert_from_the_environment(self):
        p = self.jobctl("run", "--", "echo", "env-ca", cacert=False, env={"JOBD_CACERT": self.cert})
        self.assertEqual((p.returncode, p.out), (0, "env-ca\n"), p.err)

    def test_jobctl_wrong_ca(self):
        for args, env in ((["--cacert", self.other_cert], None), ([], {"JOBD_CACERT": self.other_cert}),
                          ([], None)):
            p = self.jobctl(*(args + ["run", "--", "echo", "nope"]), cacert=False, env=env)
            self.assertEqual(p.returncode, 69, "%s %s: %s" % (args, env, p.err))
            self.assertEqual(p.out, "")
            self.assertIn("certificate", p.err)
            self.assertIn("--cacert", p.err)
            self.assertEqual(len(p.err.strip().splitlines()), 1, p.err)

    def test_jobctl_missing_ca_file(self):
        p = self.jobctl("--cacert", os.path.join(self.pki, "missing.pem"), "health", cacert=False)
        self.assertEqual(p.returncode, 69, p.err)
        self.assertIn("--cacert", p.err)


class TlsStartupTest(JobdTestCase):
    @classmethod
    def setUpClass(cls):
        if not shutil.which("openssl"):
            raise unittest.SkipTest("needs the openssl command (Debian package openssl)")
        cls.pki = tempfile.mkdtemp(prefix="jobd-sec-pki-")
        cls.addClassCleanup(shutil.rmtree, cls.pki, True)
        TlsTest.pki = cls.pki
        cls.cert, cls.key = TlsTest.openssl_selfsigned("a")
        cls.cert2, cls.key2 = TlsTest.openssl_selfsigned("b")

    def refused(self, *args, listen="127.0.0.1:0", status=2):
        """Start a jobd that must not start; return its log."""
        j = self.track(Jobd(*args, start=False, listen=listen))
        rc, log = spawn_until_exit(j)
        self.assertEqual(rc, status, log)
        self.assertNotIn("listening on", log)
        return log

    def test_cert_and_key_go_together(self):
        log = self.refused("--tls-cert", self.cert)
        self.assertIn("--tls-cert and --tls-key go together", log)
        log = self.refused("--tls-key", self.key)
        self.assertIn("--tls-cert and --tls-key go together", log)

    def test_not_pem(self):
        log = self.refused("--tls-cert", self.key, "--tls-key", self.key)
        self.assertIn("--tls-cert", log)
        self.assertIn("CERTIFICATE", log)
        log = self.refused("--tls-cert", self.cert, "--tls-key", self.cert)
        self.assertIn("--tls-key", log)
        self.assertIn("PRIVATE KEY", log)
        log = self.refused("--tls-cert", self.cert, "--tls-key", os.path.join(self.pki, "nope"))
        self.assertIn("cannot open", log)

    def test_key_of_another_certificate(self):
        """A key that does not match the certificate: jobd stops at start (exit 1), saying why."""
        log = self.refused("--tls-cert", self.cert, "--tls-key", self.key2, status=1)
        self.assertIn("cannot serve HTTPS", log)

    def test_non_loopback_still_needs_a_token(self):
        log = self.refused("--tls-cert", self.cert, "--tls-key", self.key, listen="0.0.0.0:0")
        self.assertIn("without a token", log)

    def test_key_readable_by_others_is_warned_about(self):
        loose = os.path.join(self.pki, "loose.key")
        shutil.copy(self.key, loose)
        os.chmod(loose, 0o644)
        j = self.start_jobd("--tls-cert", self.cert, "--tls-key", loose)
        self.assertIn("can be read by other users", j.log())
        ctx = ssl.create_default_context(cafile=self.cert)
        conn = http.client.HTTPSConnection("127.0.0.1", j.port, context=ctx, timeout=30)
        try:
            conn.request("GET", "/healthz")
            self.assertEqual(conn.getresponse().status, 200)
        finally:
            conn.close()


if __name__ == "__main__":
    jobdtest.main()
