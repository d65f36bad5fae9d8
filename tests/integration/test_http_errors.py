#!/usr/bin/env python3
"""Integration tests of jobd's HTTP edge: unknown paths, wrong methods, body
limits, content types, malformed JSON, spec validation with the offending
field named, bad ids, bad query parameters, and the problem+json format of
every error."""

import http.client
import json
import os
import socket
import sys
import threading
import time
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import jobdtest  # noqa: E402
from jobdtest import JobdTestCase  # noqa: E402

MiB = 1024 * 1024

# (spec, expected field) for specs that must be refused with 400.
BAD_SPECS = [
    ({"command": ["echo", "a", 5]}, "command[2]"),
    ({"command": ["echo", None]}, "command[1]"),
    ({"command": "echo hi"}, "command"),
    ({"command": []}, "command"),
    ({"shell": 5}, "shell"),
    ({"command": ["true"], "bogus": 1}, "bogus"),
    ({"command": ["true"], "comand": ["x"]}, "comand"),
    ({"command": ["true"], "timeout": "10"}, "timeout"),
    ({"command": ["true"], "timeout": -1}, "timeout"),
    ({"command": ["true"], "priority": 101}, "priority"),
    ({"command": ["true"], "priority": -101}, "priority"),
    ({"command": ["true"], "priority": "high"}, "priority"),
    ({"command": ["true"], "env": {"A": 1}}, "env.A"),
    ({"command": ["true"], "env": ["A=1"]}, "env"),
    ({"command": ["true"], "labels": {"team": 7}}, "labels.team"),
    ({"command": ["true"], "labels": {"a b": "x"}}, "labels.a b"),
    ({"command": ["true"], "limits": {"memory_bytes": "1G"}}, "limits.memory_bytes"),
    ({"command": ["true"], "limits": {"output_byte": 10}}, "limits.output_byte"),
    ({"command": ["true"], "kill_signal": "SIGNOPE"}, "kill_signal"),
    ({"command": ["true"], "kill_grace": -1}, "kill_grace"),
    ({"command": ["true"], "retries": -1}, "retries"),
    ({"command": ["true"], "retries": 1.5}, "retries"),
    ({"command": ["true"], "retry_exit_codes": ["a"]}, "retry_exit_codes[0]"),
    ({"command": ["true"], "retry_exit_codes": [1, "b"]}, "retry_exit_codes[1]"),
    ({"command": ["true"], "stdin": 5}, "stdin"),
    ({"command": ["true"], "cwd": 5}, "cwd"),
    ({"command": ["true"], "name": 5}, "name"),
    ({"command": ["true"], "executor": "bogus"}, "executor"),
    # Size bounds.
    ({"command": ["true"] * 5000}, "command"),
    ({"command": ["true"], "name": "n" * 300}, "name"),
    ({"command": ["true"], "labels": {"k%d" % i: "v" for i in range(65)}}, "labels"),
    ({"command": ["true"], "retries": 101}, "retries"),
    ({"command": ["true"], "kill_grace": 3601}, "kill_grace"),
]

# Specs refused with 400, without a promise about which field is named.
BAD_SPECS_ANY_FIELD = [
    {},
    {"command": ["true"], "executor": "thread"},
    {"command": ["true"], "env": {"": "x"}},
    {"command": ["true"], "env": {"A=B": "x"}},
    {"command": ["true\u0000x"]},
    {"command": ["true"], "shell": "true"},
    {"name": "no command"},
]


class HttpErrorsTest(JobdTestCase):
    @classmethod
    def setUpClass(cls):
        cls.j = cls.start_shared()
        cls.job = cls.j.submit({"command": ["echo", "x"]}, wait=15)

    def test_healthz(self):
        r = self.j.request("GET", "/healthz")
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.ctype, "application/json")
        self.assertEqual(r.json.get("status"), "ok")
        self.assertIsInstance(r.json.get("version"), str)
        self.assertTrue(r.json["version"])

    def test_unknown_paths_404(self):
        for path in ("/", "/nope", "/v1", "/v1/", "/v1/nope", "/v2/jobs", "/v1/jobsx",
                     "/v1/jobs/%s/nope" % self.job["id"], "/v1/jobs/%s/stdout/x" % self.job["id"],
                     "/healthz/x"):
            self.assertProblem(self.j.request("GET", path), 404, msg=path)

    def test_wrong_method_405_with_allow(self):
        jid = self.job["id"]
        cases = [
            ("DELETE", "/v1/jobs", {"GET", "POST"}),
            ("PUT", "/v1/jobs", {"GET", "POST"}),
            ("PUT", "/v1/jobs/" + jid, {"GET", "DELETE"}),
            ("POST", "/v1/jobs/" + jid, {"GET", "DELETE"}),
            ("PATCH", "/v1/jobs/" + jid, {"GET", "DELETE"}),
            ("GET", "/v1/jobs/%s/cancel" % jid, {"POST"}),
            ("DELETE", "/v1/jobs/%s/stdout" % jid, {"GET"}),
            ("POST", "/v1/jobs/%s/stderr" % jid, {"GET"}),
            ("POST", "/healthz", {"GET"}),
        ]
        for method, path, allow in cases:
            r = self.j.request(method, path, b"{}" if method in ("POST", "PUT", "PATCH") else None)
            self.assertProblem(r, 405, msg="%s %s" % (method, path))
            got = r.headers.get("Allow")
            self.assertIsNotNone(got, "%s %s: 405 without Allow" % (method, path))
            methods = {m.strip().upper() for m in got.split(",") if m.strip()}
            self.assertTrue(allow <= methods, "%s %s: Allow %r lacks %s" % (method, path, got, allow))
            self.assertNotIn(method, methods, "%s %s: Allow %r" % (method, path, got))
        # Nothing was deleted or changed.
        self.assertEqual(self.j.job(jid)["state"], "succeeded")

    def test_body_too_large_413(self):
        j = self.j
        body = b'{"command":["echo","' + b"x" * (2 * MiB) + b'"]}'
        head = ("POST /v1/jobs HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                "Content-Length: %d\r\n\r\n" % len(body)).encode()
        r, _, _ = j.raw(head, body)
        self.assertIsNotNone(r, "no answer to a 2 MiB body")
        self.assertProblem(r, 413)
        # The same without a Content-Length (chunked): the cap applies while reading.
        head = (b"POST /v1/jobs HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                b"Transfer-Encoding: chunked\r\n\r\n")
        piece = b"x" * 65536
        chunks = [b"%x\r\n%s\r\n" % (len(piece), piece)] * 32 + [b"0\r\n\r\n"]
        r, _, _ = j.raw(head, chunks=chunks)
        self.assertIsNotNone(r, "no answer to a 2 MiB chunked body")
        self.assertProblem(r, 413)
        # jobd is still fine.
        self.assertEqual(j.request("GET", "/healthz").status, 200)

    def test_max_body_flag(self):
        j = self.start_jobd("--max-body", "2048")
        ok = {"command": ["echo", "y" * 1500]}
        self.assertLess(len(json.dumps(ok)), 2048)
        self.assertEqual(j.request("POST", "/v1/jobs", ok).status, 201)
        r = j.request("POST", "/v1/jobs", {"command": ["echo", "y" * 3000]})
        self.assertProblem(r, 413)
        self.assertEqual(len(j.list()["jobs"]), 1)
        # The cap is inclusive: exactly --max-body bytes is fine, one more is not.
        base = json.dumps({"command": ["echo", ""]}).encode()
        exact = base.replace(b'""', b'"' + b"z" * (2048 - len(base)) + b'"')
        self.assertEqual(len(exact), 2048)
        r = j.request("POST", "/v1/jobs", exact, headers={"Content-Type": "application/json"})
        self.assertEqual(r.status, 201, r)
        over = exact.replace(b'"z', b'"zz', 1)
        self.assertEqual(len(over), 2049)
        r = j.request("POST", "/v1/jobs", over, headers={"Content-Type": "application/json"})
        self.assertProblem(r, 413)

    def test_wrong_content_type_415(self):
        spec = json.dumps({"command": ["true"]}).encode()
        for ctype in ("text/plain", "application/xml", "multipart/form-data; boundary=x", "image/png"):
            r = self.j.request("POST", "/v1/jobs", spec, headers={"Content-Type": ctype})
            self.assertProblem(r, 415, msg=ctype)
        # Accepted: JSON with parameters, no type, and what `curl -d` sends.
        for ctype in ("application/json; charset=utf-8", None, "application/x-www-form-urlencoded"):
            r = self.j.request("POST", "/v1/jobs", spec, headers={"Content-Type": ctype} if ctype else None)
            self.assertEqual(r.status, 201, "%s: %r" % (ctype, r))

    def test_malformed_json_400(self):
        for body in (b'{"command": [', b"{command: 1}", b"not json", b'{"command":["true"]} x',
                     b"", b"\xff\xfe{}", b'{"command":["\xff"]}'):
            r = self.j.request("POST", "/v1/jobs", body, headers={"Content-Type": "application/json"})
            self.assertProblem(r, 400, msg=repr(body))
        # Valid JSON that is not an object.
        for body in (b"[1,2]", b'"str"', b"null", b"42"):
            r = self.j.request("POST", "/v1/jobs", body, headers={"Content-Type": "application/json"})
            self.assertProblem(r, 400, msg=repr(body))
        # Duplicate keys are refused, so no one wonders which one counted.
        r = self.j.request("POST", "/v1/jobs", b'{"command":["true"],"command":["false"]}',
                           headers={"Content-Type": "application/json"})
        self.assertProblem(r, 400, msg="duplicate key")

    def test_invalid_specs_name_the_field(self):
        newest = self.j.list(limit=1)["jobs"][0]["id"]
        for spec, field in BAD_SPECS:
            r = self.j.request("POST", "/v1/jobs", spec)
            p = self.assertProblem(r, 400, field=field, msg=json.dumps(spec))
            # The detail names the field and the rule.
            root = field.split(".")[0].split("[")[0]
            self.assertIn(root, p["detail"], "%s: %r" % (json.dumps(spec), p))
        for spec in BAD_SPECS_ANY_FIELD:
            self.assertProblem(self.j.request("POST", "/v1/jobs", spec), 400, msg=json.dumps(spec))
        # No job was created by any of them.
        self.assertEqual(self.j.list(limit=1)["jobs"][0]["id"], newest)

    def test_bad_ids_404(self):
        bad = ["nope", "j", "J1", "j-1", "jZZ", "j1x!", "1", "jzzzzzzz",
               "j" + "z" * 40, "j" + "1" * 300, "j1%20x", "%2E%2E", "j1;x", "j1/", "j01"]
        for jid in bad:
            for method, suffix in (("GET", ""), ("GET", "/stdout"), ("GET", "/stderr"),
                                   ("POST", "/cancel"), ("DELETE", "")):
                r = self.j.request(method, "/v1/jobs/" + jid + suffix)
                self.assertProblem(r, 404, msg="%s %s" % (method, jid + suffix))

    def test_nul_in_id_is_404(self):
        """A NUL (%00) in the id must not truncate it to another job's id."""
        jid = self.job["id"]
        for method, suffix in (("GET", ""), ("GET", "/stdout"), ("POST", "/cancel")):
            r = self.j.request(method, "/v1/jobs/" + jid + "%00x" + suffix)
            self.assertProblem(r, 404, msg="%s %s%%00x%s" % (method, jid, suffix))

    def test_bad_query_params_400(self):
        jid = self.job["id"]
        cases = [
            ("GET", "/v1/jobs?limit=0", "limit"),
            ("GET", "/v1/jobs?limit=1001", "limit"),
            ("GET", "/v1/jobs?limit=ten", "limit"),
            ("GET", "/v1/jobs?state=bogus", "state"),
            ("GET", "/v1/jobs?state=queued,bogus", "state"),
            ("GET", "/v1/jobs?cursor=garbage", "cursor"),
            ("GET", "/v1/jobs?cursor=%00%01", "cursor"),
            ("GET", "/v1/jobs?since=abc&wait=1", "since"),
            ("GET", "/v1/jobs?since=0&wait=abc", "wait"),
            ("GET", "/v1/jobs?since=0&wait=-1", "wait"),
            ("GET", "/v1/jobs/%s?wait=abc" % jid, "wait"),
            ("GET", "/v1/jobs/%s?wait=-1" % jid, "wait"),
            ("GET", "/v1/jobs/%s?wait=301" % jid, "wait"),
            ("GET", "/v1/jobs/%s/stdout?offset=-1" % jid, "offset"),
            ("GET", "/v1/jobs/%s/stdout?offset=abc" % jid, "offset"),
            ("GET", "/v1/jobs/%s/stderr?offset=1x" % jid, "offset"),
            ("POST", "/v1/jobs?wait=abc", "wait"),
            ("POST", "/v1/jobs?wait=301", "wait"),
        ]
        for method, path, field in cases:
            body = {"command": ["true"]} if method == "POST" else None
            r = self.j.request(method, path, body, timeout=10)
            self.assertProblem(r, 400, field=field, msg="%s %s" % (method, path))
        # wait=300 is the upper bound, and fine on an ended job.
        self.assertEqual(self.j.request("GET", "/v1/jobs/%s?wait=300" % jid).status, 200)
        # The label filter needs k=v.
        r = self.j.request("GET", "/v1/jobs?label=" + urllib.parse.quote("novalue"))
        self.assertProblem(r, 400, field="label")

    def test_chunked_and_expect_continue_bodies(self):
        """What curl sends: a chunked body, and Expect: 100-continue before a large one."""
        body = json.dumps({"command": ["echo", "chunked"]}).encode()
        conn = http.client.HTTPConnection("127.0.0.1", self.j.port, timeout=10)
        try:
            conn.request("POST", "/v1/jobs", body=iter([body[:10], body[10:]]),
                         headers={"Content-Type": "application/json"}, encode_chunked=True)
            r = conn.getresponse()
            data = r.read()
            self.assertEqual(r.status, 201, data)
        finally:
            conn.close()
        body = json.dumps({"command": ["echo", "x" * 5000]}).encode()
        head = ("POST /v1/jobs HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                "Content-Length: %d\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n" % len(body)).encode()
        s = socket.create_connection(("127.0.0.1", self.j.port), timeout=10)
        try:
            s.sendall(head)
            first = s.recv(4096)
            self.assertTrue(first.startswith(b"HTTP/1.1 100"), first[:200])
            s.sendall(body)
            got = bytearray(first[first.find(b"\r\n\r\n") + 4:])
            while True:
                b = s.recv(65536)
                if not b:
                    break
                got.extend(b)
        finally:
            s.close()
        r = jobdtest.parse_raw_response(bytes(got))
        self.assertEqual(r.status, 201, r)

    def test_connection_timeout(self):
        """Idle connections are closed after --connection-timeout; waits and follows are not."""
        j = self.start_jobd("--connection-timeout", "1")
        idle = socket.create_connection(("127.0.0.1", j.port), timeout=10)
        half = socket.create_connection(("127.0.0.1", j.port), timeout=10)
        try:
            half.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")  # never finished
            t0 = time.monotonic()
            self.assertEqual(idle.recv(100), b"", "an idle connection was not closed")
            self.assertLess(time.monotonic() - t0, 5)
            try:
                data = half.recv(100)
            except ConnectionResetError:
                data = b""
            self.assertNotIn(b"200", data)
            self.assertLess(time.monotonic() - t0, 5)
        finally:
            idle.close()
            half.close()
        # A long-poll and a quiet follow outlive the idle timeout.
        job = j.submit({"shell": "echo a; sleep 2.5; echo b"})
        holder = {}

        def follow():
            conn, resp = j.stream("GET", "/v1/jobs/%s/stdout?follow=true" % job["id"], timeout=15)
            try:
                holder["follow"] = resp.read()
            finally:
                conn.close()

        t = threading.Thread(target=follow, daemon=True)
        t.start()
        got = j.job(job["id"], wait=10)
        self.assertEqual(got["state"], "succeeded", "the wait was cut by the idle timeout: %s" % got)
        t.join(15)
        self.assertEqual(holder.get("follow"), b"a\nb\n")

    def test_keep_alive(self):
        """Answers keep the connection open (GETs included), errors too."""
        conn = http.client.HTTPConnection("127.0.0.1", self.j.port, timeout=10)
        try:
            socks = set()
            for method, path, body in (("GET", "/healthz", None), ("GET", "/v1/jobs?limit=1", None),
                                       ("GET", "/v1/jobs/" + self.job["id"], None),
                                       ("POST", "/v1/jobs", json.dumps({"command": ["true"]})),
                                       ("GET", "/v1/jobs/jzzzzzzz", None), ("GET", "/healthz", None)):
                hdrs = {"Content-Type": "application/json"} if body else {}
                conn.request(method, path, body=body, headers=hdrs)
                r = conn.getresponse()
                r.read()
                socks.add(id(conn.sock))
                self.assertFalse(r.will_close, "%s %s closed the connection (%s)" % (
                    method, path, r.getheader("Connection")))
            self.assertEqual(len(socks), 1)
        finally:
            conn.close()

    def test_every_error_is_problem_json(self):
        """One of each status class, all RFC 9457 documents with a type URI."""
        rs = [
            self.j.request("GET", "/v1/nope"),
            self.j.request("DELETE", "/v1/jobs"),
            self.j.request("POST", "/v1/jobs", b"{", headers={"Content-Type": "application/json"}),
            self.j.request("POST", "/v1/jobs", b"{}", headers={"Content-Type": "text/csv"}),
            self.j.request("GET", "/v1/jobs/jzzzzzzz"),
        ]
        for r in rs:
            p = self.assertProblem(r, r.status)
            self.assertGreaterEqual(r.status, 400)
            self.assertRegex(p["type"], r"^(about:blank|[a-z][a-z0-9+.-]*:\S+|/\S*)$")


if __name__ == "__main__":
    jobdtest.main()
