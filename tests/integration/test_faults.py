"""Fault tests (issue 6, "Faults"): what jobd does when the world misbehaves.

- the data disk fills up (a 4 MiB tmpfs mounted by the test: needs root);
- another process holds SQLite's write lock (shorter and longer than
  jobd's 5 s busy_timeout);
- a running job's output file is deleted under it;
- a job forks a daemon and exits (or is cancelled, or times out);
- a job closes its stdout (and stderr) early;
- a job prints 1 GiB (capped; jobd's memory stays flat);
- 10,000 queued jobs survive a kill -9 and run in priority order.

Run alone with:
    JOBD_BIN=build/jobd python3 tests/integration/test_faults.py
    python3 tests/integration/test_faults.py --jobd-bin build/jobd DiskFullTest

Figures (latencies, RSS, durations) are printed to stderr as "[faults] ...".
Python 3 standard library only; only 127.0.0.1; every wait is bounded; mounts
and processes are removed even when a test fails.
"""

import atexit
import errno
import os
import random
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import jobdtest  # noqa: E402
from jobdtest import JobdTestCase, alive, idnum, live_group_members, parse_time, proc_stat  # noqa: E402


def note(fmt, *args):
    sys.stderr.write("[faults] " + (fmt % args if args else fmt) + "\n")
    sys.stderr.flush()


# ---------------------------------------------------------------------------
# tmpfs mounts (unmounted by the test's cleanup, and at exit as a last resort)

_mounts = set()


def _umount(path):
    """Unmount path (lazily if it stays busy) and remove the directory."""
    if path not in _mounts:
        return
    ok = False
    for _ in range(20):
        r = subprocess.run(["umount", path], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=30)
        if r.returncode == 0:
            ok = True
            break
        time.sleep(0.25)
    if not ok:
        subprocess.run(["umount", "-l", path], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=30)
    _mounts.discard(path)
    try:
        os.rmdir(path)
    except OSError:
        pass


@atexit.register
def _umount_all():
    for p in list(_mounts):
        _umount(p)


def fill_disk(path):
    """Write zeros to `path` until the filesystem answers ENOSPC; return the bytes written."""
    total = 0
    with open(path, "wb", buffering=0) as f:
        for size in (1 << 20, 1 << 16, 4096, 512, 64, 1):
            buf = b"\0" * size
            while True:
                try:
                    n = f.write(buf)
                except OSError as e:
                    if e.errno == errno.ENOSPC:
                        break
                    raise
                total += n or 0
                if not n:
                    break
    return total


def vm_rss(pid):
    """VmRSS of pid in bytes (None if it is gone)."""
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def seq_slice(start, length):
    """Bytes [start, start + length) of the output of `seq 1 N` (N large enough)."""
    off, d, first = 0, 1, 1
    while True:
        size = 9 * first * (d + 1)  # the d-digit numbers: 9 * 10^(d-1) lines of d+1 bytes
        if off + size > start:
            break
        off += size
        d += 1
        first *= 10
    k = (start - off) // (d + 1)
    n = first + k
    skip = start - off - k * (d + 1)
    need = skip + length
    parts, got = [], 0
    while got < need:
        chunk = [b"%d\n" % m for m in range(n, n + 4096)]
        n += 4096
        b = b"".join(chunk)
        parts.append(b)
        got += len(b)
    return b"".join(parts)[skip:need]


def gated_spec(ctl, name, tag, tail=""):
    """A job that prints TAG-started, waits (at most 60 s) for the file ctl/name, runs
    `tail` (shell text), prints TAG-finished. Returns (spec, gate path)."""
    gate = os.path.join(ctl, name)
    return {"command": ["sh", "-c",
                        "echo %s-started; i=0; while [ ! -e %s ] && [ $i -lt 1200 ]; do sleep 0.05; "
                        "i=$((i+1)); done; %secho %s-finished" % (tag, gate, tail, tag)],
            "name": "running-at-full"}, gate


class FaultCase(JobdTestCase):
    def mount_tmpfs(self, size="4m"):
        """A fresh tmpfs of `size`, unmounted when the test ends (register before start_jobd)."""
        if os.geteuid() != 0:
            self.fail("this test mounts a tmpfs and must run as root (CI runs the integration "
                      "tests as root); euid is %d" % os.geteuid())
        d = tempfile.mkdtemp(prefix="jobd-faults-mnt-")
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=%s,mode=0700" % size, "tmpfs", d],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=30)
        if r.returncode != 0:
            os.rmdir(d)
            self.fail("mount -t tmpfs failed (%d): %s" % (r.returncode, r.stdout.decode(errors="replace")))
        _mounts.add(d)
        self.addCleanup(_umount, d)
        return d

    def healthy(self, j, within=1.0):
        t0 = time.monotonic()
        r = j.request("GET", "/healthz", timeout=10)
        dt = time.monotonic() - t0
        self.assertEqual(r.status, 200, r)
        self.assertLess(dt, within, "/healthz took %.2fs" % dt)
        self.assertTrue(j.running(), "jobd exited")

    def post(self, j, spec, timeout=30.0):
        """POST /v1/jobs; returns (Response, seconds)."""
        t0 = time.monotonic()
        r = j.request("POST", "/v1/jobs", spec, timeout=timeout)
        return r, time.monotonic() - t0

    def duration(self, doc):
        return parse_time(doc["finished_at"]) - parse_time(doc["started_at"])


# ---------------------------------------------------------------------------
# The data disk fills up


class DiskFullTest(FaultCase):
    def test_disk_full_then_recovers(self):
        mnt = self.mount_tmpfs("4m")
        data = os.path.join(mnt, "data")
        j = self.start_jobd(data_dir=data)
        ctl = os.path.join(j.tmp, "ctl")  # control files live off the tmpfs
        os.makedirs(ctl)

        # Jobs stored before the disk fills: small (inline) output and a file (> 16 KiB).
        pre = []
        for i in range(4):
            pre.append(j.submit({"command": ["sh", "-c", "echo pre-%d" % i], "name": "pre"}, wait=10))
        pre.append(j.submit({"command": ["sh", "-c", "head -c 20000 /dev/zero | tr '\\0' x"], "name": "pre"},
                            wait=10))
        for d in pre:
            self.assertEqual(d["state"], "succeeded", d)
        pre_out = {d["id"]: j.output(d["id"]) for d in pre}
        self.assertEqual(len(pre_out[pre[4]["id"]]), 20000)

        # Jobs running when it fills: A ends while it is full, B after space returns,
        # C is cancelled while it is full.
        def gated(name, tag):
            return gated_spec(ctl, name, tag)

        spec_a, gate_a = gated("a", "A")
        spec_b, gate_b = gated("b", "B")
        spec_c, _ = gated("c", "C")
        a = j.submit(spec_a)
        b = j.submit(spec_b)
        c = j.submit(spec_c)
        for x in (a, b, c):
            j.wait_state(x["id"], "running")

        filler = os.path.join(mnt, "filler")
        t0 = time.monotonic()
        filled = fill_disk(filler)
        st = os.statvfs(mnt)
        note("disk full: filler %d bytes in %.2fs, %d blocks free", filled, time.monotonic() - t0, st.f_bfree)

        # Submissions: a 503 with a clear detail soon (not 500, not a hang). A few may
        # still fit in space SQLite holds already; each of those is a real 201.
        accepted, refused, lat = [], [], []
        for i in range(60):
            r, dt = self.post(j, {"command": ["echo", "full-%d" % i], "env": {"PAD": "p" * 3000}}, timeout=30)
            lat.append(dt)
            self.assertIn(r.status, (201, 503), "submission %d on a full disk: %r" % (i, r))
            self.assertLess(dt, 10.0, "submission %d on a full disk took %.1fs" % (i, dt))
            if r.status == 201:
                accepted.append(r.json)
            else:
                refused.append(r)
                if len(refused) >= 3:
                    break
        self.assertTrue(refused, "60 submissions on a full disk were all accepted")
        p = self.assertProblem(refused[0], 503)
        note("full disk: %d accepted before the first 503; 503 detail %r; Retry-After %r; latencies %s",
             len(accepted), p["detail"], refused[0].headers.get("Retry-After"),
             ", ".join("%.2f" % x for x in lat))
        for r in refused:
            self.assertProblem(r, 503)
        self.assertRegex(p["detail"].lower(), r"space|full|disk",
                         "the 503 does not say the disk is full: %r" % p["detail"])

        # While full: stored jobs read back intact, jobd answers.
        self.healthy(j)
        for d in pre:
            got = j.job(d["id"])
            for k in ("state", "exit_code", "stdout_bytes", "finished_at", "command"):
                self.assertEqual(got[k], d[k], "%s.%s changed while the disk is full" % (d["id"], k))
            self.assertEqual(j.output(d["id"]), pre_out[d["id"]])
        self.assertGreaterEqual(len(j.list_all(name="pre")), len(pre))

        # A ends while the disk is full; C is cancelled while it is full.
        open(gate_a, "w").close()
        cancel_ans = {}

        def cancel_c():
            t = time.monotonic()
            try:
                cancel_ans["r"] = j.request("POST", "/v1/jobs/%s/cancel" % c["id"], timeout=60)
            except Exception as e:  # noqa: BLE001 - reported below
                cancel_ans["err"] = e
            cancel_ans["dt"] = time.monotonic() - t

        ct = threading.Thread(target=cancel_c, daemon=True)
        ct.start()
        time.sleep(2.0)
        self.healthy(j)
        a_during = j.job(a["id"])
        cancel_blocked = ct.is_alive()
        note("while full: A (its job ended) reads %s; cancel of C %s", a_during["state"],
             "still unanswered after 2 s" if cancel_blocked else "answered %r in %.2fs"
             % (cancel_ans.get("r"), cancel_ans.get("dt", 0)))

        # Space returns.
        os.unlink(filler)
        t0 = time.monotonic()
        ok = None
        tries = 0
        while time.monotonic() - t0 < 20 and ok is None:
            tries += 1
            r, dt = self.post(j, {"command": ["echo", "after"]}, timeout=30)
            self.assertIn(r.status, (201, 503), r)
            if r.status == 201:
                ok = r.json
            else:
                time.sleep(0.2)
        self.assertIsNotNone(ok, "no submission accepted within 20 s of freeing the disk")
        note("space freed: first 201 after %.2fs (%d tries)", time.monotonic() - t0, tries)
        self.assertEqual(j.wait_job(ok["id"], 20)["state"], "succeeded")
        self.assertEqual(j.output(ok["id"]), b"after\n")

        ct.join(30)
        self.assertFalse(ct.is_alive(), "the cancel sent while the disk was full never got an answer")
        self.assertNotIn("err", cancel_ans, cancel_ans)
        self.assertEqual(cancel_ans["r"].status, 202, cancel_ans["r"])
        note("cancel of C answered %d after %.2fs", cancel_ans["r"].status, cancel_ans["dt"])

        done_a = j.wait_job(a["id"], 20)
        self.assertEqual((done_a["state"], done_a["exit_code"]), ("succeeded", 0), done_a)
        self.assertEqual(j.output(a["id"]), b"A-started\nA-finished\n")
        done_c = j.wait_job(c["id"], 20)
        self.assertEqual(done_c["state"], "cancelled", done_c)
        open(gate_b, "w").close()
        done_b = j.wait_job(b["id"], 20)
        self.assertEqual((done_b["state"], done_b["exit_code"]), ("succeeded", 0), done_b)
        self.assertEqual(j.output(b["id"]), b"B-started\nB-finished\n")
        for d in accepted:
            self.assertEqual(j.wait_job(d["id"], 20)["state"], "succeeded", d["id"])

        # Everything is on disk: restart and read it all back; the database is sound.
        self.assertEqual(j.stop(), 0)
        con = sqlite3.connect("file:%s?mode=ro" % os.path.join(data, "jobd.db"), uri=True, timeout=10)
        try:
            self.assertEqual(con.execute("PRAGMA integrity_check").fetchall(), [("ok",)])
        finally:
            con.close()
        j.restart()
        for d in pre:
            got = j.job(d["id"])
            self.assertEqual((got["state"], got["exit_code"]), (d["state"], d["exit_code"]))
            self.assertEqual(j.output(d["id"]), pre_out[d["id"]])
        for d, out in ((done_a, b"A-started\nA-finished\n"), (done_b, b"B-started\nB-finished\n")):
            got = j.job(d["id"])
            self.assertEqual((got["state"], got["exit_code"]), ("succeeded", 0), got)
            self.assertEqual(j.output(d["id"]), out)
        self.assertEqual(j.job(c["id"])["state"], "cancelled")
        for d in accepted + [ok]:
            self.assertEqual(j.job(d["id"])["state"], "succeeded")
        self.assertEqual(j.submit({"command": ["echo", "again"]}, wait=10)["state"], "succeeded")


    def test_output_written_to_full_disk(self):
        # A running job writes 40000 bytes (more than the 16 KiB kept in memory, so
        # jobd spills to a file) while the disk is full: the bytes are lost, but the
        # job ends with its exit status, stdout_truncated says output was dropped and
        # stdout_bytes still counts every byte the job wrote.
        mnt = self.mount_tmpfs("4m")
        j = self.start_jobd(data_dir=os.path.join(mnt, "data"))
        ctl = os.path.join(j.tmp, "ctl")
        os.makedirs(ctl)
        spec, gate = gated_spec(ctl, "d", "D", "head -c 40000 /dev/zero | tr '\\0' d; ")
        d = j.submit(spec)
        j.wait_state(d["id"], "running")
        j.wait_output(d["id"], b"D-started\n")
        filler = os.path.join(mnt, "filler")
        fill_disk(filler)
        open(gate, "w").close()
        time.sleep(1.0)  # it ends while the disk is full; its end cannot be stored yet
        self.healthy(j)
        os.unlink(filler)
        done = j.wait_job(d["id"], 20)
        out = j.output(d["id"])
        note("job writing 40000 bytes to a full disk: state %s exit %s error %r stdout_bytes %s truncated %s; "
             "GET stdout gives %d bytes", done["state"], done["exit_code"], done["error"],
             done["stdout_bytes"], done["stdout_truncated"], len(out))
        self.assertEqual((done["state"], done["exit_code"]), ("succeeded", 0), done)
        self.assertTrue(done["stdout_truncated"], "output lost to ENOSPC must show as truncated: %s" % done)
        self.assertEqual(done["stdout_bytes"], len(b"D-started\n") + 40000 + len(b"D-finished\n"),
                         "stdout_bytes must count every byte the job wrote")
        self.assertTrue(j.running())


# ---------------------------------------------------------------------------
# Another process holds SQLite's write lock


class SqliteBusyTest(FaultCase):
    def hold_lock(self, db, seconds, started):
        """BEGIN IMMEDIATE on db in this (other) process, hold it `seconds`, roll back."""
        con = sqlite3.connect(db, timeout=10, isolation_level=None)
        try:
            con.execute("BEGIN IMMEDIATE")
            started.set()
            time.sleep(seconds)
            con.execute("ROLLBACK")
        finally:
            con.close()

    def submit_many(self, j, n, tag, start_evt=None):
        """n submissions from threads; returns [(Response or exception, seconds)]."""
        out = [None] * n

        def one(i):
            if start_evt:
                start_evt.wait(10)
            t = time.monotonic()
            try:
                r = j.request("POST", "/v1/jobs", {"command": ["echo", "%s-%d" % (tag, i)], "name": tag}, timeout=60)
            except Exception as e:  # noqa: BLE001
                r = e
            out[i] = (r, time.monotonic() - t)

        ts = [threading.Thread(target=one, args=(i,), daemon=True) for i in range(n)]
        for t in ts:
            t.start()
        return ts, out

    def test_lock_shorter_than_busy_timeout(self):
        j = self.start_jobd()
        db = os.path.join(j.data_dir, "jobd.db")
        first = j.submit({"command": ["echo", "first"]}, wait=10)
        # A job that ends while the lock is held: its update waits, then commits.
        ending = j.submit({"command": ["sh", "-c", "sleep 0.7; echo ending"]})
        j.wait_state(ending["id"], "running")

        locked = threading.Event()
        holder = threading.Thread(target=self.hold_lock, args=(db, 2.0, locked), daemon=True)
        holder.start()
        self.assertTrue(locked.wait(10), "could not take the write lock")
        t_lock = time.monotonic()
        time.sleep(0.1)
        ts, out = self.submit_many(j, 6, "busy")
        # Reads do not wait for the writer (WAL).
        t = time.monotonic()
        self.assertEqual(j.job(first["id"])["state"], "succeeded")
        read_dt = time.monotonic() - t
        self.healthy(j)
        holder.join(15)
        self.assertFalse(holder.is_alive())
        for t in ts:
            t.join(30)
        lats = []
        for i, (r, dt) in enumerate(out):
            self.assertNotIsInstance(r, Exception, "submission %d: %r" % (i, r))
            self.assertEqual(r.status, 201, "submission %d during a 2 s lock: %r" % (i, r))
            lats.append(dt)
        note("2 s lock: a read took %.3fs; submissions answered 201 after %s s (lock released %.2fs after it was taken)",
             read_dt, ", ".join("%.2f" % x for x in sorted(lats)), 2.0)
        self.assertLess(read_dt, 1.0, "a GET waited for the write lock")
        self.assertGreater(max(lats), 1.0, "the submissions were not delayed: was the lock held?")
        self.assertLess(max(lats), 5.0)
        self.assertLess(time.monotonic() - t_lock, 15)
        ids = [r.json["id"] for r, _ in out]
        for i, jid in enumerate(ids):
            d = j.wait_job(jid, 20)
            self.assertEqual(d["state"], "succeeded", d)
            self.assertEqual(j.output(jid), b"busy-%d\n" % i)
        self.assertEqual(j.wait_job(ending["id"], 20)["state"], "succeeded")
        self.assertEqual(sorted(x["id"] for x in j.list_all(name="busy")), sorted(ids))
        # And all of it is on disk.
        self.assertEqual(j.stop(), 0)
        j.restart()
        for jid in ids + [ending["id"], first["id"]]:
            self.assertEqual(j.job(jid)["state"], "succeeded")

    def test_lock_longer_than_busy_timeout(self):
        j = self.start_jobd()
        db = os.path.join(j.data_dir, "jobd.db")
        j.submit({"command": ["echo", "first"]}, wait=10)
        ending = j.submit({"command": ["sh", "-c", "sleep 0.5; echo ending"]})
        j.wait_state(ending["id"], "running")

        hold = 8.0
        locked = threading.Event()
        holder = threading.Thread(target=self.hold_lock, args=(db, hold, locked), daemon=True)
        holder.start()
        self.assertTrue(locked.wait(10), "could not take the write lock")
        t_lock = time.monotonic()
        time.sleep(0.2)
        ts1, early = self.submit_many(j, 3, "early")
        time.sleep(5.5)  # past jobd's busy_timeout, lock still held
        self.healthy(j)
        ts2, late = self.submit_many(j, 3, "late")
        holder.join(hold + 10)
        self.assertFalse(holder.is_alive())
        t_free = time.monotonic() - t_lock
        for t in ts1 + ts2:
            t.join(40)
            self.assertFalse(t.is_alive(), "a submission hung")
        self.assertTrue(j.running(), "jobd died:\n" + j.log()[-2000:])
        acked = []
        report = []
        for tag, res in (("early", early), ("late", late)):
            for i, (r, dt) in enumerate(res):
                self.assertNotIsInstance(r, Exception, "%s submission %d: %r" % (tag, i, r))
                self.assertIn(r.status, (201, 503), "%s submission %d: %r" % (tag, i, r))
                if r.status == 503:
                    p = self.assertProblem(r, 503)
                    report.append("%s-%d: 503 after %.2fs (%s)" % (tag, i, dt, p["detail"]))
                else:
                    acked.append((r.json["id"], b"%s-%d\n" % (tag.encode(), i)))
                    report.append("%s-%d: 201 after %.2fs" % (tag, i, dt))
        note("%.0f s lock (released after %.2fs): %s", hold, t_free, "; ".join(report))
        # Afterwards everything works; every 201 is kept and runs; the job that ended
        # under the lock is recorded.
        after = j.submit({"command": ["echo", "after"]}, wait=10)
        self.assertEqual(after["state"], "succeeded")
        for jid, out in acked:
            self.assertEqual(j.wait_job(jid, 20)["state"], "succeeded")
            self.assertEqual(j.output(jid), out)
        self.assertEqual(j.wait_job(ending["id"], 20)["state"], "succeeded")
        self.assertEqual(j.output(ending["id"]), b"ending\n")
        listed = {x["id"] for x in j.list_all(limit=1000)}
        for jid, _ in acked:
            self.assertIn(jid, listed)
        self.assertEqual(j.stop(), 0)
        j.restart()
        for jid, _ in acked:
            self.assertEqual(j.job(jid)["state"], "succeeded")
        self.assertEqual(j.job(ending["id"])["state"], "succeeded")


# ---------------------------------------------------------------------------
# Output files deleted under a running job


class DeletedOutputTest(FaultCase):
    @classmethod
    def setUpClass(cls):
        cls.j = cls.start_shared()

    def run_and_delete(self, limits=None):
        """A job prints 40000 'a', waits for a gate, prints 30000 'b' and 'err' on stderr;
        its stdout file is deleted between the two. Returns (final doc, stdout as read)."""
        j = self.j
        gate = os.path.join(j.tmp, "gate-%d" % time.monotonic_ns())
        spec = {"command": ["sh", "-c",
                            "head -c 40000 /dev/zero | tr '\\0' a; i=0; while [ ! -e %s ] && [ $i -lt 400 ]; do "
                            "sleep 0.05; i=$((i+1)); done; head -c 30000 /dev/zero | tr '\\0' b; echo err >&2"
                            % gate]}
        if limits:
            spec["limits"] = limits
        d = j.submit(spec)
        path = os.path.join(j.data_dir, "out", d["id"] + ".stdout")
        end = time.monotonic() + 10
        while time.monotonic() < end:
            if os.path.exists(path) and os.path.getsize(path) >= 16384:
                break
            time.sleep(0.02)
        else:
            self.fail("no stdout file %s with the first 40000 bytes within 10 s" % path)
        self.assertEqual(j.job(d["id"])["state"], "running")
        os.unlink(path)
        during = j.output(d["id"])
        self.healthy(j)
        open(gate, "w").close()
        done = j.wait_job(d["id"], 20)
        self.healthy(j)
        out = j.output(d["id"])
        note("stdout deleted (limits %s): during the run GET gave %d bytes; after: state %s, stdout_bytes %s, "
             "truncated %s, GET gives %d bytes, file %s", limits, len(during), done["state"], done["stdout_bytes"],
             done["stdout_truncated"], len(out), "exists (%d bytes)" % os.path.getsize(path)
             if os.path.exists(path) else "absent")
        self.assertEqual((done["state"], done["exit_code"]), ("succeeded", 0), done)
        self.assertEqual(done["stdout_bytes"], 70000)
        self.assertEqual(j.output(d["id"], "stderr"), b"err\n")
        return done, out, path, during

    def test_deleted_uncapped(self):
        # 70000 bytes < the 64 MiB default cap: the file is never rewritten, so it stays
        # gone and reading gives an empty body (stdout_bytes still counts all 70000).
        done, out, path, during = self.run_and_delete()
        self.assertEqual(during, b"", "the file is gone: a GET during the run answers nothing")
        self.assertFalse(done["stdout_truncated"])
        self.assertEqual(out, b"")
        self.assertFalse(os.path.exists(path))
        # The job can still be deleted.
        r = self.j.request("DELETE", "/v1/jobs/%s" % done["id"])
        self.assertEqual(r.status, 204, r)

    def test_deleted_capped(self):
        # With a 32 KiB cap the ring is rotated into a new file at the end, from the
        # descriptor jobd still holds: the file comes back with head + tail.
        done, out, path, during = self.run_and_delete(limits={"output_bytes": 32768})
        # During the run only the head (16 KiB) is readable; when the first 16 KiB were
        # held in memory exactly at the spill, jobd still answers them from memory.
        self.assertIn(during, (b"", b"a" * 16384))
        self.assertTrue(done["stdout_truncated"])
        self.assertEqual(out, b"a" * 16384 + b"b" * 16384)
        self.assertEqual(os.path.getsize(path), 32768)


# ---------------------------------------------------------------------------
# Daemons and closed streams


class ProcessFaultsTest(FaultCase):
    @classmethod
    def setUpClass(cls):
        cls.j = cls.start_shared()

    def assert_gone(self, pid, start, what, pgid=None, timeout=5.0):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if not alive(pid, start):
                break
            time.sleep(0.05)
        else:
            st = proc_stat(pid)
            os.kill(pid, signal.SIGKILL)
            self.fail("%s (pid %d, %s) still alive %.0f s after the job ended" % (what, pid, st, timeout))
        if pgid:
            left = live_group_members(pgid)
            self.assertEqual(left, [], "processes left in the job's group %d" % pgid)

    def daemon_exits(self, script):
        j = self.j
        t0 = time.monotonic()
        d = j.submit({"command": ["sh", "-c", script]})
        done = j.wait_job(d["id"], 20)
        took = time.monotonic() - t0
        self.assertEqual((done["state"], done["exit_code"]), ("succeeded", 0), done)
        self.assertLess(took, 10, "the job waited for its daemon")
        pid = int(j.output(d["id"]).split()[0])
        st = proc_stat(pid)
        if st and st["state"] != "Z" and st["pgid"] == done["pid"]:
            self.assert_gone(pid, st["start"], "the daemon", done["pid"])
        self.assertEqual(live_group_members(done["pid"]), [])
        note("daemon job %r ended in %.2fs; daemon pid %d gone", script, took, pid)

    def test_daemon_killed_when_job_exits(self):
        self.daemon_exits("sleep 300 & echo $!; exit 0")

    def test_detached_daemon_killed_when_job_exits(self):
        # Its own stdio redirected, so it holds none of the job's pipes.
        self.daemon_exits("sleep 300 </dev/null >/dev/null 2>&1 & echo $!; exit 0")

    def test_double_forked_daemon_killed_when_job_exits(self):
        self.daemon_exits("( sleep 300 </dev/null >/dev/null 2>&1 & echo $! ); exit 0")

    def running_with_daemon(self, spec):
        j = self.j
        d = j.submit(spec)
        run = j.wait_state(d["id"], "running")
        out = j.wait_output(d["id"], b"\n")
        pid = int(out.split()[0])
        st = proc_stat(pid)
        self.assertIsNotNone(st, "the daemon %d is not running" % pid)
        self.assertEqual(st["pgid"], run["pid"])
        return d, run, pid, st["start"]

    def test_daemon_killed_on_cancel(self):
        j = self.j
        d, run, pid, start = self.running_with_daemon(
            {"command": ["sh", "-c", "sleep 300 & echo $!; sleep 300"], "kill_grace": 2})
        r = j.request("POST", "/v1/jobs/%s/cancel" % d["id"])
        self.assertEqual(r.status, 202, r)
        done = j.wait_job(d["id"], 15)
        self.assertEqual(done["state"], "cancelled", done)
        self.assert_gone(pid, start, "the daemon of a cancelled job", run["pid"])
        self.assertFalse(alive(run["pid"]))

    def test_daemon_killed_on_timeout(self):
        # The daemon ignores SIGTERM (inherited), so it takes the SIGKILL after kill_grace.
        j = self.j
        d, run, pid, start = self.running_with_daemon(
            {"command": ["sh", "-c", "trap '' TERM; sleep 300 & echo $!; sleep 300"], "timeout": 1.5,
             "kill_grace": 1})
        done = j.wait_job(d["id"], 15)
        self.assertEqual(done["state"], "timed_out", done)
        self.assert_gone(pid, start, "the daemon of a timed-out job", run["pid"])
        note("timed-out job with a TERM-ignoring daemon ran %.2fs", self.duration(done))

    def test_stdout_closed_early(self):
        j = self.j
        done = j.submit({"command": ["sh", "-c", "exec 1>&-; sleep 1; echo err >&2"]}, wait=20)
        self.assertEqual((done["state"], done["exit_code"]), ("succeeded", 0), done)
        self.assertEqual(j.output(done["id"], "stderr"), b"err\n")
        self.assertEqual(j.output(done["id"]), b"")
        self.assertEqual((done["stdout_bytes"], done["stderr_bytes"]), (0, 4))
        self.assertGreaterEqual(self.duration(done), 0.9, "the job was taken as ended when it closed stdout")

    def test_stdout_closed_after_output(self):
        j = self.j
        done = j.submit({"command": ["sh", "-c", "echo out; exec 1>&-; sleep 1; echo err >&2; exit 4"]}, wait=20)
        self.assertEqual((done["state"], done["exit_code"]), ("failed", 4), done)
        self.assertEqual(j.output(done["id"]), b"out\n")
        self.assertEqual(j.output(done["id"], "stderr"), b"err\n")
        self.assertGreaterEqual(self.duration(done), 0.9)

    def test_both_streams_closed_early(self):
        j = self.j
        done = j.submit({"command": ["sh", "-c", "exec 1>&- 2>&-; sleep 1; exit 3"]}, wait=20)
        self.assertEqual((done["state"], done["exit_code"]), ("failed", 3), done)
        self.assertEqual((done["stdout_bytes"], done["stderr_bytes"]), (0, 0))
        self.assertGreaterEqual(self.duration(done), 0.9, "the job was taken as ended when it closed its streams")


# ---------------------------------------------------------------------------
# 1 GiB of output


class HugeOutputTest(FaultCase):
    CAP = 8388608

    def test_one_gib_capped_memory_flat(self):
        j = self.start_jobd("--max-output", str(self.CAP))
        j.submit({"command": ["true"]}, wait=10)  # warm up
        base = vm_rss(j.pid)
        total = 1 << 30
        t0 = time.monotonic()
        d = j.submit({"command": ["sh", "-c", "seq 1 200000000 | head -c %d" % total], "timeout": 240})
        peak, samples = base, 0
        end = time.monotonic() + 240
        state = "queued"
        while time.monotonic() < end:
            rss = vm_rss(j.pid)
            self.assertIsNotNone(rss, "jobd died:\n" + j.log()[-2000:])
            peak = max(peak, rss)
            samples += 1
            if samples % 10 == 0:
                state = j.job(d["id"])["state"]
                if state in jobdtest.FINAL_STATES:
                    break
            time.sleep(0.05)
        took = time.monotonic() - t0
        done = j.wait_job(d["id"], 30)
        note("1 GiB job: %.1fs; jobd VmRSS %.1f MB at start, peak %.1f MB (+%.1f MB) over %d samples",
             took, base / 1e6, peak / 1e6, (peak - base) / 1e6, samples)
        self.assertEqual((done["state"], done["exit_code"]), ("succeeded", 0), done)
        self.assertEqual(done["stdout_bytes"], total)
        self.assertTrue(done["stdout_truncated"])
        self.assertFalse(done["stderr_truncated"])
        self.assertLess(peak - base, 100 * 1000 * 1000, "jobd's RSS grew by %d bytes" % (peak - base))

        path = os.path.join(j.data_dir, "out", d["id"] + ".stdout")
        self.assertEqual(os.path.getsize(path), self.CAP)
        with open(path, "rb") as f:
            stored = f.read()
        half = self.CAP // 2
        self.assertTrue(stored[:half] == seq_slice(0, half), "the head is not the stream's first 4 MiB")
        self.assertTrue(stored[half:] == seq_slice(total - half, half), "the tail is not the stream's last 4 MiB")
        got = j.output(d["id"])
        self.assertEqual(len(got), self.CAP)
        self.assertTrue(got == stored)
        self.assertEqual(j.output(d["id"], offset=self.CAP - 10), stored[-10:])
        self.assertLess(vm_rss(j.pid) - base, 100 * 1000 * 1000)


# ---------------------------------------------------------------------------
# 10,000 queued jobs and a kill -9


class ManyQueuedRestartTest(FaultCase):
    N = 10000
    PRIORITIES = (-10, 0, 5, 50)

    def start_blocked(self):
        """jobd with --max-procs 1, busy with a sleep 300 (the blocker)."""
        j = self.start_jobd("--max-procs", "1")
        blocker = j.submit({"command": ["sleep", "300"], "priority": 100})
        j.wait_state(blocker["id"], "running")
        return j, blocker

    def crash_and_restart(self, j, blocker, tag):
        j.kill9()
        t0 = time.monotonic()
        j.restart()
        t_restart = time.monotonic() - t0
        first_read = j.job(blocker["id"])["state"]
        # Recovery records the interruption asynchronously: a read right after the
        # restart may still see "running" for a moment.
        b = j.wait_job(blocker["id"], 15)
        self.assertEqual((b["state"], b["error"]), ("failed", "interrupted"), b)
        if first_read != "failed":
            note("%s: right after the restart the interrupted blocker still read %r", tag, first_read)
        return t_restart

    def check_start_order(self, jobs, tag):
        """Every job started in priority order (higher first), FIFO (by id) within one.

        For any two jobs where one started strictly earlier (by the millisecond of
        started_at), it has a higher priority, or the same and a smaller id. Sorting by
        started_at with ties broken the favourable way and checking that the result is
        sorted by (-priority, id) checks exactly that."""
        def key_start(x):
            return (parse_time(x["started_at"]), -x["priority"], idnum(x["id"]))

        order = sorted(jobs, key=key_start)
        bad = []
        for prev, cur in zip(order, order[1:]):
            if (-prev["priority"], idnum(prev["id"])) > (-cur["priority"], idnum(cur["id"])):
                bad.append((prev["id"], prev["priority"], prev["started_at"], cur["id"], cur["priority"],
                            cur["started_at"]))
        distinct = len({x["started_at"] for x in jobs})
        note("%s: %d distinct started_at; %d out-of-order pairs; first priorities %s", tag, distinct, len(bad),
             [x["priority"] for x in order[:12]])
        # Ties (the same millisecond) order nothing: enough distinct times keep the check meaningful.
        self.assertGreater(distinct, min(100, len(jobs) // 4), "too few distinct started_at values to check the order")
        self.assertEqual(bad[:10], [], "%d jobs started out of priority/FIFO order" % len(bad))

    def check_all_ran(self, jobs, ids, prio_of):
        self.assertEqual(len(jobs), len(ids))
        self.assertEqual(sorted(x["id"] for x in jobs), sorted(ids))
        for x in jobs:
            self.assertEqual(x["state"], "succeeded", x)
            self.assertEqual(x["priority"], prio_of[x["id"]])
            self.assertEqual(x["attempts"], 1, x)

    def test_ten_thousand_queued_survive_kill9_in_priority_order(self):
        t_case = time.monotonic()
        j, blocker = self.start_blocked()
        rnd = random.Random(6)
        prios = [rnd.choice(self.PRIORITIES) for _ in range(self.N)]
        specs = [{"command": ["true"], "priority": p} for p in prios]
        t0 = time.monotonic()
        r = j.request("POST", "/v1/batches", {"jobs": specs, "concurrency": self.N, "name": "tenk"}, timeout=120)
        self.assertEqual(r.status, 201, r)
        t_submit = time.monotonic() - t0
        bid = r.json["id"]
        ids = r.json["jobs"]
        self.assertEqual(len(ids), self.N)
        self.assertEqual(j.job(blocker["id"])["state"], "running")
        self.assertEqual(j.request("GET", "/v1/batches/%s" % bid).json["counts"].get("queued"), self.N)

        t_restart = self.crash_and_restart(j, blocker, "10k")
        t0 = time.monotonic()
        deadline = t0 + 150
        doc = None
        while time.monotonic() < deadline:
            left = int(deadline - time.monotonic())
            rr = j.request("GET", "/v1/batches/%s?wait=%d" % (bid, max(1, min(30, left))), timeout=60)
            self.assertEqual(rr.status, 200, rr)
            doc = rr.json
            if doc.get("done"):
                break
        t_run = time.monotonic() - t0
        self.assertTrue(doc and doc.get("done"), "the batch did not finish within 150 s: %s"
                        % (doc and doc.get("counts")))
        self.assertEqual(doc["counts"].get("succeeded"), self.N, doc["counts"])
        jobs = j.list_all(batch=bid, limit=1000)
        self.check_all_ran(jobs, ids, dict(zip(ids, prios)))
        note("10k: batch POST %.2fs, restart %.2fs, all ran in %.1fs", t_submit, t_restart, t_run)
        self.check_start_order(jobs, "10k")
        note("10k: whole case %.1fs", time.monotonic() - t_case)
        self.assertLess(time.monotonic() - t_case, 200)

    def test_single_posts_survive_kill9_in_priority_order(self):
        # The same with jobs that are not in a batch: 2,000 POST /v1/jobs from 8 threads.
        t_case = time.monotonic()
        n, nthreads = 2000, 8
        j, blocker = self.start_blocked()
        rnd = random.Random(7)
        prios = [rnd.choice(self.PRIORITIES) for _ in range(n)]
        got = [None] * n
        errors = []

        def worker(k):
            try:
                for i in range(k, n, nthreads):
                    r = j.request("POST", "/v1/jobs", {"command": ["true"], "priority": prios[i], "name": "single"},
                                  timeout=30)
                    if r.status != 201:
                        errors.append(r)
                        return
                    got[i] = r.json["id"]
            except Exception as e:  # noqa: BLE001
                errors.append(e)

        t0 = time.monotonic()
        ts = [threading.Thread(target=worker, args=(k,), daemon=True) for k in range(nthreads)]
        for t in ts:
            t.start()
        for t in ts:
            t.join(120)
            self.assertFalse(t.is_alive(), "submissions still running after 120 s")
        t_submit = time.monotonic() - t0
        self.assertEqual(errors, [])
        prio_of = dict(zip(got, prios))

        t_restart = self.crash_and_restart(j, blocker, "2k")
        t0 = time.monotonic()
        deadline = t0 + 90
        jobs = []
        while time.monotonic() < deadline:
            jobs = j.list_all(name="single", limit=1000)
            if all(x["state"] in jobdtest.FINAL_STATES for x in jobs):
                break
            time.sleep(0.5)
        t_run = time.monotonic() - t0
        self.check_all_ran(jobs, got, prio_of)
        note("2k single POSTs: submitted in %.2fs, restart %.2fs, all ran in %.1fs", t_submit, t_restart, t_run)
        self.check_start_order(jobs, "2k")
        note("2k: whole case %.1fs", time.monotonic() - t_case)


if __name__ == "__main__":
    jobdtest.main()
