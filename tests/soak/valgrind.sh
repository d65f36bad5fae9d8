#!/usr/bin/env bash
# valgrind memcheck on part of the integration suite (issue 6, "Resource
# hygiene"): no leaks or invalid accesses in jobd.
#
#   tests/soak/valgrind.sh                       # build build-valgrind (RelWithDebInfo), run, check
#   VALGRIND_BUILD_DIR=build VALGRIND_NO_BUILD=1 tests/soak/valgrind.sh
#   VALGRIND_TESTS="api_jobs http_errors" tests/soak/valgrind.sh
#
# Every jobd the tests start is, through JOBD_BIN, a wrapper that execs
#   LD_PRELOAD=pidfd_shim.so valgrind --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=none
#            --track-fds=no --suppressions=tests/soak/valgrind.supp <build>/jobd ARGS
# with one log per process (--log-file=.../vg.%p.log; children jobd forks get
# their own: a task under the process executor runs in one until it exits, a
# command's child only until its execve).
#
# Leaks are found in the logs, not through the exit status: a task child is a
# fork of the multi-threaded jobd, and blocks that only another thread's stack
# pointed to at the fork are "definitely lost" in the child when it exits
# (e.g. a change being committed, scheduler.c make_change). With
# --errors-for-leak-kinds=definite those made every process-executor task exit
# 99. So leaks count in jobd's own logs (its exit after SIGTERM), and a forked
# child's log counts only for invalid accesses and errors, not for leaks or for
# the signal that ended it (tests kill and crash task children on purpose). The harness gives jobd
# JOBD_START_DEADLINE seconds to start and, when a test ends, SIGTERMs it and
# waits up to JOBD_STOP_GRACE seconds before SIGKILL, so valgrind sees a clean
# exit and checks for leaks (a jobd killed with SIGKILL, as the recovery tests
# do on purpose, gets no leak check; its invalid accesses are still logged).
#
# Under valgrind 3.19 two things differ from a native run, both valgrind's
# doing: pidfd_open fails with ENOSYS (tests/soak/pidfd_shim.c, preloaded,
# emulates it, else jobd could start no child), and vfork is run as fork, so
# a child that fails before execve (a bad cwd, a limit, --run-as) cannot
# report why through shared memory: such a job fails with exit code 127
# instead of its error message, and the tests of those errors fail.
#
# Fails (exit 1) when a jobd log has "definitely lost" > 0 bytes or a fatal
# signal, or any log (jobd's or a forked child's) has an invalid
# read/write/free, a use of uninitialised memory, or an ERROR SUMMARY other
# than 0; prints each such report once. The tests' own
# results are printed too but do not decide the outcome: under valgrind jobd
# is 10 to 50 times slower and the suite's timing assertions (an answer within
# a second, a timeout within 3 s) are expected to fail.
set -uo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD

BUILD=${VALGRIND_BUILD_DIR:-build-valgrind}
TESTS=${VALGRIND_TESTS:-"http_errors api_jobs tasks batches"}
PAR=${VALGRIND_JOBS:-2}                  # test files run at once
export JOBD_START_DEADLINE=${JOBD_START_DEADLINE:-60}
export JOBD_STOP_GRACE=${JOBD_STOP_GRACE:-60}
PER_FILE_TIMEOUT=${VALGRIND_FILE_TIMEOUT:-900}

command -v valgrind >/dev/null || { echo "valgrind.sh: valgrind not found (apt-get install valgrind)" >&2; exit 77; }

if [ -z "${VALGRIND_NO_BUILD:-}" ]; then
  cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null || exit 1
  cmake --build "$BUILD" -j "$(nproc)" --target jobd-bin jobd_testtasks jobd_badplugin jobd_noinit jobd_wordcount \
    >/dev/null || cmake --build "$BUILD" -j "$(nproc)" >/dev/null || exit 1
fi
JOBD=$ROOT/$BUILD/jobd
[ -x "$JOBD" ] || { echo "valgrind.sh: no $JOBD" >&2; exit 1; }

OUT=$(mktemp -d /tmp/jobd-valgrind.XXXXXX)
KEEP=${VALGRIND_KEEP:-}
cleanup() { [ -n "$KEEP" ] || rm -rf "$OUT"; }
# Interrupted: stop the test runs (timeout puts each in a group of its own) and
# every jobd still under valgrind (found by this run's unique log directory).
interrupted() {
  for f in "$OUT"/*.pid; do [ -f "$f" ] && kill -TERM -- "-$(cat "$f")" 2>/dev/null; done
  sleep 1
  pkill -KILL -f -- "--log-file=$OUT/logs/" 2>/dev/null
  exit 130
}
trap cleanup EXIT
trap interrupted INT TERM
mkdir -p "$OUT/logs"

# valgrind 3.19 (Debian 12) lacks pidfd_open: tests/soak/pidfd_shim.c stands in for it.
cc -shared -fPIC -O2 -g -pthread -o "$OUT/pidfd_shim.so" tests/soak/pidfd_shim.c -ldl || exit 1

cat >"$OUT/jobd" <<EOF
#!/bin/sh
LD_PRELOAD="$OUT/pidfd_shim.so" exec valgrind --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=none \\
  --track-fds=no --num-callers=30 --suppressions="$ROOT/tests/soak/valgrind.supp" \\
  --log-file="$OUT/logs/vg.%p.log" "$JOBD" "\$@"
EOF
chmod +x "$OUT/jobd"

echo "valgrind.sh: jobd $JOBD; tests: $TESTS; logs in $OUT/logs"
t0=$(date +%s)
run_one() {
  local t=$1
  local s=$(date +%s)
  JOBD_BIN="$OUT/jobd" JOBD_PLUGIN_DIR="$ROOT/$BUILD/plugins" PYTHONDONTWRITEBYTECODE=1 \
    timeout -k 10 "$PER_FILE_TIMEOUT" python3 "tests/integration/test_$t.py" >"$OUT/$t.out" 2>&1 &
  echo $! >"$OUT/$t.pid"
  wait $!
  local rc=$?
  echo "$t rc=$rc $(( $(date +%s) - s ))s" >"$OUT/$t.rc"
}
running=0
for t in $TESTS; do
  run_one "$t" &
  running=$((running + 1))
  if [ "$running" -ge "$PAR" ]; then wait -n; running=$((running - 1)); fi
done
wait
echo "valgrind.sh: tests done in $(( $(date +%s) - t0 )) s"

echo
echo "== test results under valgrind (for information; timing assertions are expected to fail) =="
for t in $TESTS; do
  read -r _ rc secs <"$OUT/$t.rc"
  summary=$(grep -E '^(Ran [0-9]+ tests|OK|FAILED)' "$OUT/$t.out" | tr '\n' ' ')
  printf '  %-12s %-8s %-6s %s\n' "$t" "$rc" "$secs" "$summary"
  grep -E '^(FAIL|ERROR): ' "$OUT/$t.out" | sed 's/^/      /' | head -40
done

echo
echo "== valgrind logs =="
python3 - "$OUT/logs" <<'PY'
import glob, os, re, sys
logdir = sys.argv[1]
logs = sorted(glob.glob(os.path.join(logdir, "vg.*.log")))
bad = 0
n_main = n_child = n_main_summary = 0
total_def = total_ind = total_poss = 0
no_summary = []
seen = set()
ERR_RE = r"Invalid (read|write|free)|Mismatched free|[Uu]ninitialised|Source and destination overlap|" \
         r"Syscall param .* points to unaddressable|Argument .* of function .* has a fishy"
for path in logs:
    text = open(path, errors="replace").read()
    parent = re.search(r"^==\d+== Parent PID: (\d+)", text, re.M)
    # A child that jobd forked names jobd's pid as its parent, and jobd has a log here.
    is_child = bool(parent and os.path.exists(os.path.join(logdir, "vg.%s.log" % parent.group(1))))
    def num(label):
        m = re.search(r"==\d+==\s+%s: ([\d,]+) bytes" % label, text)
        return int(m.group(1).replace(",", "")) if m else 0
    es = re.search(r"ERROR SUMMARY: (\d+) errors", text)
    problems = []
    if is_child:
        n_child += 1
    else:
        n_main += 1
        n_main_summary += bool(es)
        if not es:
            no_summary.append(os.path.basename(path))
        d, i, p = num("definitely lost"), num("indirectly lost"), num("possibly lost")
        total_def += d; total_ind += i; total_poss += p
        if d > 0:
            problems.append("definitely lost: %d bytes" % d)
        if re.search(r"Process terminating with default action of signal", text):
            problems.append("jobd killed by a signal")
    if es and int(es.group(1)) != 0:
        problems.append("ERROR SUMMARY: %s errors" % es.group(1))
    if re.search(ERR_RE, text):
        problems.append("invalid access or use of uninitialised memory")
    if not problems:
        continue
    bad += 1
    # Print each distinct report (a block between blank "==PID== " lines) once.
    want = ERR_RE + (r"|Process terminating" if not is_child else "") + \
        (r"|definitely lost in" if not is_child else "")
    out = []
    for b in re.split(r"\n==\d+== \n", text):
        if re.search(want, b):
            key = re.sub(r"==\d+==|0x[0-9A-F]+|[\d,]+ \([\d,]+ direct, [\d,]+ indirect\)|[\d,]+ bytes in [\d,]+ blocks"
                         r"|loss record [\d,]+ of [\d,]+", "", b)
            if key in seen:
                continue
            seen.add(key)
            out.append(b.strip())
    print("--- %s (%s): %s" % (os.path.basename(path), "forked child" if is_child else "jobd", "; ".join(problems)))
    cmd = re.search(r"^==\d+== Command: (.*)$", text, re.M)
    if cmd:
        print("    command: %s" % cmd.group(1)[:200])
    for b in out:
        print(b)
        print()
print("valgrind logs: %d jobd processes (%d exited with a leak check; the rest were killed with SIGKILL "
      "by their test: %s), %d forked children" % (n_main, n_main_summary, " ".join(no_summary) or "none", n_child))
print("in jobd: definitely lost %d B, indirectly %d B, possibly %d B in all; %d logs with findings"
      % (total_def, total_ind, total_poss, bad))
if not logs or n_main_summary == 0:
    print("no jobd log with a leak check: did jobd run under the wrapper and exit on SIGTERM?")
    sys.exit(1)
sys.exit(1 if bad else 0)
PY
rc=$?
echo "valgrind.sh: total $(( $(date +%s) - t0 )) s"
if [ "$rc" -ne 0 ]; then
  echo "valgrind.sh: FAILED (logs kept in $OUT/logs)"
  KEEP=1
  exit 1
fi
echo "valgrind.sh: PASSED"
