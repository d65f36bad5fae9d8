#!/usr/bin/env python3
"""Integration tests of GET /v1/events (server-sent events of job changes)
and of the metrics that count what happened."""

import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import jobdtest  # noqa: E402
from jobdtest import JobdTestCase  # noqa: E402


def read_events(resp, want, deadline):
    """Read SSE events from resp until want(events) is true or the deadline passes."""
    events, cur = [], {}
    while time.monotonic() < deadline and not want(events):
        line = resp.fp.readline()
        if not line:
            break
        line = line.decode().rstrip("\n")
        if line == "":
            if cur:
                events.append(cur)
            cur = {}
        elif line.startswith(":"):
            cur.setdefault("comments", []).append(line)
        else:
            k, _, v = line.partition(": ")
            cur[k] = v
    return events


class EventsTest(JobdTestCase):
    @classmethod
    def setUpClass(cls):
        cls.j = cls.start_shared()

    def test_live_stream_shows_each_change(self):
        j = self.j
        conn, resp = j.stream("GET", "/v1/events", timeout=15)
        try:
            self.assertEqual(resp.status, 200)
            self.assertTrue(resp.getheader("Content-Type").startswith("text/event-stream"))
            job = j.submit({"shell": "echo hi"}, wait=10)
            self.assertEqual(job["state"], "succeeded")
            evs = read_events(resp, lambda e: any('"state":"succeeded"' in x.get("data", "")
                                                  for x in e), time.monotonic() + 10)
            mine = [e for e in evs if ('"id":"%s"' % job["id"]) in e.get("data", "")]
            self.assertTrue(mine, evs)
            self.assertTrue(all(e["event"] == "job" for e in mine))
            ids = [int(e["id"]) for e in evs]
            self.assertEqual(ids, sorted(ids), "events come in change order")
            self.assertIn('"state":"succeeded"', mine[-1]["data"])
            self.assertEqual(int(mine[-1]["id"]), job["seq"])
        finally:
            conn.close()

    def test_resume_with_last_event_id(self):
        j = self.j
        a = j.submit({"command": ["true"]}, wait=10)
        b = j.submit({"command": ["false"]}, wait=10)
        # Resuming after a's last change shows b (and not a again).
        conn, resp = j.stream("GET", "/v1/events?since=%d" % a["seq"], timeout=10)
        try:
            evs = read_events(resp, lambda e: any(('"id":"%s"' % b["id"]) in x.get("data", "")
                                                  for x in e), time.monotonic() + 10)
            datas = [e.get("data", "") for e in evs]
            self.assertTrue(any(('"id":"%s"' % b["id"]) in d and '"state":"failed"' in d
                                for d in datas), datas)
            self.assertFalse(any(('"id":"%s"' % a["id"]) in d for d in datas), datas)
        finally:
            conn.close()
        # The header form, which wins over ?since.
        conn, resp = j.stream("GET", "/v1/events?since=0", timeout=10,
                              headers={"Last-Event-ID": str(a["seq"])})
        try:
            self.assertEqual(resp.status, 200)
            evs = read_events(resp, lambda e: any(('"id":"%s"' % b["id"]) in x.get("data", "")
                                                  for x in e), time.monotonic() + 10)
            datas = [e.get("data", "") for e in evs]
            self.assertFalse(any(('"id":"%s"' % a["id"]) in d for d in datas), datas)
            self.assertTrue(any(('"id":"%s"' % b["id"]) in d for d in datas), datas)
        finally:
            conn.close()

    def test_bad_resume_points_are_400(self):
        j = self.j
        for path, hdr, field in (("/v1/events?since=x", None, "since"),
                                 ("/v1/events?since=-1", None, "since"),
                                 ("/v1/events", {"Last-Event-ID": "abc"}, "Last-Event-ID")):
            r = j.request("GET", path, headers=hdr)
            self.assertProblem(r, 400, msg=path)
            self.assertEqual(r.json["field"], field)

    def test_metrics_count_jobs_and_requests(self):
        j = self.j
        j.submit({"command": ["sh", "-c", "exit 3"]}, wait=10)
        r = j.request("GET", "/metrics")
        self.assertEqual(r.status, 200)
        text = r.body.decode()
        self.assertIn('jobd_jobs_ended_total{executor="process",state="failed"}', text)
        failed = [l for l in text.splitlines()
                  if l.startswith('jobd_jobs_ended_total{executor="process",state="failed"}')]
        self.assertGreaterEqual(int(failed[0].split()[-1]), 1)
        self.assertRegex(text, r'jobd_http_requests_total\{method="POST",route="/v1/jobs",'
                               r'status="201"\} [1-9]')
        self.assertIn("jobd_http_request_duration_seconds_count", text)
        self.assertIn("jobd_store_commit_seconds_count", text)
        self.assertIn("jobd_job_duration_seconds_bucket", text)
        self.assertIsNotNone(r.headers.get("X-Request-Id"))


class NodeEventsTest(JobdTestCase):
    """On a coordinator, node changes are events too (numbered with job changes), and
    /metrics and /healthz count nodes by state."""

    def test_node_changes_are_events_in_seq_order(self):
        j = self.start_jobd("--node-timeout", "1", env={"JOBD_CLUSTER_TOKEN": "cluster-secret"})
        conn, resp = j.stream("GET", "/v1/events?since=0", timeout=15)
        try:
            job = j.submit({"command": ["true"]}, wait=10)
            r = j.request("POST", "/v1/nodes",
                          {"id": "ev-node", "url": "http://127.0.0.1:9", "capacity": 1},
                          headers={"Authorization": "Bearer cluster-secret"})
            self.assertEqual(r.status, 201, r)
            r = j.request("POST", "/v1/nodes/ev-node/drain")
            self.assertEqual(r.status, 202, r)
            # Nothing answers on port 9: the node goes down after --node-timeout.
            evs = read_events(resp, lambda e: any('"state":"down"' in x.get("data", "") for x in e),
                              time.monotonic() + 10)
            r = j.request("DELETE", "/v1/nodes/ev-node")
            self.assertEqual(r.status, 204, r)
            evs += read_events(resp, lambda e: any(x.get("event") == "node_deleted" for x in e),
                               time.monotonic() + 10)
        finally:
            conn.close()
        nodes = [e for e in evs if e.get("event", "").startswith("node")]
        states = [json.loads(e["data"]).get("state") for e in nodes]
        self.assertEqual(states, ["ready", "draining", "down", None], nodes)
        self.assertEqual(nodes[-1]["event"], "node_deleted")
        self.assertEqual(json.loads(nodes[-1]["data"]), {"id": "ev-node"})
        ids = [int(e["id"]) for e in evs if "id" in e]
        self.assertEqual(ids, sorted(set(ids)), "one sequence, in order, for jobs and nodes")
        self.assertIn(job["seq"], ids)
        # Resuming after the first node event gives the rest, and nothing before it.
        conn, resp = j.stream("GET", "/v1/events", headers={"Last-Event-ID": nodes[0]["id"]},
                              timeout=15)
        try:
            again = read_events(resp, lambda e: any(x.get("event") == "node_deleted" for x in e),
                                time.monotonic() + 10)
        finally:
            conn.close()
        self.assertEqual([e["id"] for e in again if e.get("event", "").startswith("node")],
                         [e["id"] for e in nodes[1:]])
        self.assertTrue(all(int(e["id"]) > int(nodes[0]["id"]) for e in again if "id" in e))

    def test_node_gauges(self):
        j = self.start_jobd("--node-timeout", "60", env={"JOBD_CLUSTER_TOKEN": "cluster-secret"})
        for i in range(2):
            r = j.request("POST", "/v1/nodes",
                          {"id": "g%d" % i, "url": "http://127.0.0.1:9", "capacity": 1},
                          headers={"Authorization": "Bearer cluster-secret"})
            self.assertEqual(r.status, 201, r)
        self.assertEqual(j.request("POST", "/v1/nodes/g1/drain").status, 202)
        text = j.request("GET", "/metrics").body.decode()
        self.assertIn('jobd_nodes{state="ready"} 1', text)
        self.assertIn('jobd_nodes{state="draining"} 1', text)
        self.assertIn('jobd_nodes{state="down"} 0', text)
        self.assertIn('jobd_jobs_running{executor="remote"} 0', text)
        h = j.request("GET", "/healthz", auth=False).json
        self.assertEqual(h["nodes"], {"ready": 1, "draining": 1, "down": 0})


class AccessLogTest(JobdTestCase):
    """--access-log with --log-format json: one JSON object per line, request ids, no token."""

    def test_json_lines_with_request_ids_and_no_token(self):
        token = "tok-%d-secret" % os.getpid()
        j = self.start_jobd("--access-log", "--log-format", "json", token=token)
        r = j.request("GET", "/v1/jobs/j999999")
        self.assertEqual(r.status, 404)
        rid = r.headers.get("X-Request-Id")
        self.assertIsNotNone(rid)
        j.submit({"command": ["true"]}, wait=10)
        j.request("GET", "/v1/jobs", auth=False)  # a 401
        time.sleep(0.3)
        log = j.log()
        self.assertNotIn(token, log)
        import json as _json
        lines = [l for l in log.splitlines() if l.startswith("{")]
        self.assertTrue(lines, log)
        objs = [_json.loads(l) for l in lines]
        for o in objs:
            self.assertIn("time", o)
            self.assertIn("level", o)
            self.assertIn("msg", o)
        reqs = [o for o in objs if o["msg"] == "request"]
        mine = [o for o in reqs if str(o["request_id"]) == rid]
        self.assertEqual(len(mine), 1, reqs)
        self.assertEqual(mine[0]["path"], "/v1/jobs/j999999")
        self.assertEqual(mine[0]["status"], 404)
        self.assertTrue(any(o["status"] == 401 for o in reqs), reqs)
        self.assertTrue(any(o["method"] == "POST" and o["status"] == 201 for o in reqs), reqs)


if __name__ == "__main__":
    jobdtest.main()
