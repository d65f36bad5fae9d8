#!/usr/bin/env python3
"""Integration tests of jobd's security defaults: bearer tokens on /v1, an
open /healthz, refusing a non-loopback address without a token, --insecure,
and tokens that never reach the logs or a job's environment."""

import os
import secrets
import signal
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import jobdtest  # noqa: E402
from jobdtest import Jobd, JobdTestCase  # noqa: E402


class TokenTest(JobdTestCase):
    @classmethod
    def setUpClass(cls):
        cls.token = "tok-" + secrets.token_hex(16)
        cls.j = cls.start_shared(token=cls.token)

    def assert401(self, r, msg=""):
        self.assertProblem(r, 401, msg=msg)
        wa = r.headers.get("WWW-Authenticate")
        self.assertIsNotNone(wa, "401 without WWW-Authenticate: " + msg)
        self.assertTrue(wa.lower().startswith("bearer"), wa)
        self.assertNotIn(self.token, r.body.decode("utf-8", "replace"))

    def test_v1_needs_the_token(self):
        j = self.j
        before = len(j.list(limit=500)["jobs"])
        wrong = [
            None,
            "Bearer wrong",
            "Bearer " + self.token[:-1],
            "Bearer " + self.token + "x",
            "Bearer " + self.token[:-1] + ("0" if self.token[-1] != "0" else "1"),
            "Bearer ",
            "Basic " + self.token,
            self.token,
            "Bearer" + self.token,
        ]
        for auth in wrong:
            for method, path in (("GET", "/v1/jobs"), ("GET", "/v1/jobs/j1"), ("GET", "/v1/jobs/j1/stdout"),
                                 ("POST", "/v1/jobs/j1/cancel"), ("DELETE", "/v1/jobs/j1")):
                r = j.request(method, path, headers={"Authorization": auth}, auth=False)
                self.assert401(r, "%s %s with %r" % (method, path, auth))
            r = j.request("POST", "/v1/jobs", {"command": ["true"]}, headers={"Authorization": auth}, auth=False)
            self.assert401(r, "POST with %r" % auth)
        # Nothing was created by the refused submissions.
        self.assertEqual(len(j.list(limit=500)["jobs"]), before)
        # The right token works.
        r = j.request("GET", "/v1/jobs")
        self.assertEqual(r.status, 200, r)
        job = j.submit({"command": ["true"]}, wait=10)
        self.assertEqual(job["state"], "succeeded")

    def test_unknown_v1_path_needs_the_token(self):
        """Every /v1 path needs the token: an anonymous client learns nothing, not even 404s."""
        for path in ("/v1/nope", "/v1/jobs/jzzzzzz", "/v1/jobs/j1/nope"):
            self.assert401(self.j.request("GET", path, auth=False), path)

    def test_healthz_is_open(self):
        r = self.j.request("GET", "/healthz", auth=False)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json["status"], "ok")
        r = self.j.request("GET", "/healthz", headers={"Authorization": "Bearer wrong"}, auth=False)
        self.assertEqual(r.status, 200, r)

    def test_token_not_in_job_env(self):
        job = self.j.submit({"shell": "env; echo ${JOBD_TOKEN:-unset}"}, wait=10)
        self.assertEqual(job["state"], "succeeded")
        out = self.j.output(job["id"]).decode()
        self.assertNotIn(self.token, out)
        self.assertNotIn("JOBD_TOKEN", out)
        self.assertTrue(out.endswith("unset\n"), out)


class TokenFileTest(JobdTestCase):
    def test_token_file(self):
        token = "file-" + secrets.token_hex(16)
        j = self.track(Jobd(start=False))
        path = os.path.join(j.tmp, "token")
        with open(path, "w") as f:
            f.write(token + "\n")
        os.chmod(path, 0o600)
        j.args = ["--token-file", path]
        j.start()
        self.assertProblem(j.request("GET", "/v1/jobs"), 401)
        r = j.request("GET", "/v1/jobs", headers={"Authorization": "Bearer " + token})
        self.assertEqual(r.status, 200, r)
        r = j.request("GET", "/v1/jobs", headers={"Authorization": "Bearer " + token + "0"})
        self.assertEqual(r.status, 401)
        self.assertEqual(j.request("GET", "/healthz").status, 200)
        j.stop()
        self.assertNotIn(token, j.log())


class ListenAddressTest(JobdTestCase):
    def test_refuses_non_loopback_without_token(self):
        j = self.track(Jobd(listen="0.0.0.0:0", start=False))
        j.spawn()
        rc = j.wait_exit(10)
        if rc is None:
            j.close()
            self.fail("jobd kept running on 0.0.0.0 without a token: " + j.log()[-500:])
        self.assertNotEqual(rc, 0)
        log = j.log()
        self.assertNotIn("listening on", log)
        self.assertTrue(log.strip(), "refused without a message")
        self.assertRegex(log.lower(), "token|insecure", log)

    def test_starts_on_non_loopback_with_insecure(self):
        j = self.track(Jobd("--insecure", listen="0.0.0.0:0", start=False))
        j.start()
        self.assertEqual(j.request("GET", "/healthz").status, 200)
        r = j.request("GET", "/v1/jobs")
        self.assertEqual(r.status, 200, r)

    def test_starts_on_non_loopback_with_token(self):
        token = "tok-" + secrets.token_hex(16)
        j = self.track(Jobd(listen="0.0.0.0:0", token=token, start=False))
        j.start()
        self.assertProblem(j.request("GET", "/v1/jobs", auth=False), 401)
        self.assertEqual(j.request("GET", "/v1/jobs").status, 200)


class TokenNotLoggedTest(JobdTestCase):
    def test_token_never_logged(self):
        token = "tok-" + secrets.token_hex(16)
        for fmt in ("plain", "json"):
            j = self.track(Jobd("--log-format", fmt, token=token, start=False))
            j.start()
            # Traffic that a careless logger would echo: right and wrong tokens,
            # a failing job, errors.
            j.request("GET", "/v1/jobs", headers={"Authorization": "Bearer " + token + "-wrong"}, auth=False)
            j.request("GET", "/v1/jobs", auth=False)
            j.request("POST", "/v1/jobs", b"{", headers={"Content-Type": "application/json"})
            j.submit({"command": ["false"]}, wait=10)
            j.submit({"command": ["nosuchcmd-xyz"]}, wait=10)
            j.request("GET", "/v1/nope")
            self.assertEqual(j.stop(signal.SIGTERM, 20), 0)
            log = j.log()
            self.assertIn("listening on", log)
            self.assertNotIn(token, log, "the token appears in the %s log" % fmt)
            self.assertNotIn(token[4:], log)


if __name__ == "__main__":
    jobdtest.main()
