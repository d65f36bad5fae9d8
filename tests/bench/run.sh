#!/usr/bin/env bash
# run.sh: measure jobd against baselines taken in the same run, and print ratios.
#
#   (a) spawn_baseline: raw posix_spawn of /bin/true at concurrency C
#   (b) jobd --max-procs C, loaded by jobd_load with the same N and C:
#       jobs/s and the ratio jobd / raw
#   (c) wrk on GET /v1/jobs/{id} of an ended job, against jobd and against
#       bare_mhd (a bare libmicrohttpd server): requests/s and the ratio; and,
#       for information, against bare_mhd --static-body (libmicrohttpd's ceiling)
#   (d) in-process `echo` tasks (issue 3), each on a fresh jobd: N tasks as ONE
#       batch (batch_load: POST /v1/batches, then GET ?wait= until done), the
#       same N as single POSTs from 16 clients (jobd_load --spec), and the same
#       batch under the process executor. There is no baseline for these: the
#       rates are printed next to the aims (50,000/s through a batch, 20,000/s
#       as single POSTs) as ratios jobd / aim
#   (e) worker nodes (issue 4), cluster_load.py: a coordinator and two nodes
#       as local processes; N `true` jobs with "executor":"remote" as one batch
#       and as single POSTs from K clients, against the same jobs run locally
#       on the coordinator (ratio remote / local); then the latency of one
#       remote job against one local job, sequential (median, p99, added)
#
# Nothing here asserts a speed: the exit status is 0 when every program ran
# and printed its numbers, 1 otherwise, 77 when all ran but wrk is not
# installed (so the GET part was skipped). See README.md for how to read them.
#
# Environment:
#   BENCH_N=20000            jobs per spawn_baseline and per jobd_load run
#   BENCH_CONCURRENCY="2 4"  values of C (jobd --max-procs); the first one is
#                            also the jobd that (c) measures
#   BENCH_INFLIGHT=          jobd_load requests in flight (default 2 x C)
#   BENCH_HTTP_THREADS=2     libmicrohttpd threads, for jobd and bare_mhd alike
#   BENCH_WRK_SECONDS=10     duration of each wrk run
#   BENCH_WRK_THREADS=2 BENCH_WRK_CONNECTIONS=32
#   BENCH_REPEAT=1           run each baseline/jobd pair this many times, taking
#                            turns, and keep the best rate of each (for a busy box)
#   BENCH_TOKEN=             run jobd with this bearer token, and send it
#   BENCH_TASKS=1            run (d); 0 skips it
#   BENCH_TASK_N=10000       echo tasks per (d) run (quick: 300)
#   BENCH_TASK_CLIENTS=16    requests in flight for the single POSTs of (d)
#   BENCH_THREADS=           jobd --threads for (d) (default: jobd's, the cores)
#   BENCH_TASK_MAX_PROCS=    jobd --max-procs for (d) (default: jobd's, 4 x cores)
#   BENCH_CLUSTER=1          run (e); 0 skips it
#   BENCH_CLUSTER_N=2000     jobs per (e) throughput run (quick: 100)
#   BENCH_CLUSTER_LATENCY_N=200  sequential local/remote pairs for (e) latency (quick: 20)
#   BENCH_CLUSTER_CAPACITY=8 --capacity of each node (the coordinator's --max-procs is twice it)
#   BENCH_CLUSTER_CLIENTS=32 concurrent clients for the single POSTs of (e) (quick: 8)
#   BENCH_QUICK=1            smoke mode: N=300, C=2, 2 s of wrk, (d) with 300 tasks,
#                            (e) with 100 jobs and 20 pairs (for CI)
#   BENCH_BUILD_DIR=         build dir (default <repo>/build-bench)
#   BENCH_NO_BUILD=1         use the binaries already in BENCH_BUILD_DIR
set -uo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
build=${BENCH_BUILD_DIR:-$root/build-bench}
quick=${BENCH_QUICK:-0}
if [[ $quick == 1 ]]; then
    n=${BENCH_N:-300}
    concs=${BENCH_CONCURRENCY:-2}
    wrk_s=${BENCH_WRK_SECONDS:-2}
    task_n=${BENCH_TASK_N:-300}
    cluster_args=(--quick)
else
    n=${BENCH_N:-20000}
    concs=${BENCH_CONCURRENCY:-2 4}
    wrk_s=${BENCH_WRK_SECONDS:-10}
    task_n=${BENCH_TASK_N:-10000}
    cluster_args=()
fi
run_cluster=${BENCH_CLUSTER:-1}
[[ -n ${BENCH_CLUSTER_N:-} ]] && cluster_args+=(-n "$BENCH_CLUSTER_N")
[[ -n ${BENCH_CLUSTER_LATENCY_N:-} ]] && cluster_args+=(--latency-n "$BENCH_CLUSTER_LATENCY_N")
[[ -n ${BENCH_CLUSTER_CAPACITY:-} ]] && cluster_args+=(--capacity "$BENCH_CLUSTER_CAPACITY")
[[ -n ${BENCH_CLUSTER_CLIENTS:-} ]] && cluster_args+=(--clients "$BENCH_CLUSTER_CLIENTS")
run_tasks=${BENCH_TASKS:-1}
task_clients=${BENCH_TASK_CLIENTS:-16}
task_jobd_args=()
[[ -n ${BENCH_THREADS:-} ]] && task_jobd_args+=(--threads "$BENCH_THREADS")
[[ -n ${BENCH_TASK_MAX_PROCS:-} ]] && task_jobd_args+=(--max-procs "$BENCH_TASK_MAX_PROCS")
http_threads=${BENCH_HTTP_THREADS:-2}
repeat=${BENCH_REPEAT:-1}
if ! [[ $repeat =~ ^[1-9][0-9]*$ && $n =~ ^[1-9][0-9]*$ && $wrk_s =~ ^[1-9][0-9]*$ &&
    $task_n =~ ^[1-9][0-9]*$ && $task_clients =~ ^[1-9][0-9]*$ ]]; then
    printf 'bench: BENCH_REPEAT, BENCH_N, BENCH_WRK_SECONDS, BENCH_TASK_N and BENCH_TASK_CLIENTS %s\n' \
        'must be positive integers' >&2
    exit 2
fi
wrk_t=${BENCH_WRK_THREADS:-2}
wrk_c=${BENCH_WRK_CONNECTIONS:-32}
token=${BENCH_TOKEN:-}

log() { printf 'bench: %s\n' "$*" >&2; }

# Every process this script starts in the background, and the temp dir.
pids=()
tmp=$(mktemp -d "${TMPDIR:-/tmp}/jobd-bench.XXXXXX") || exit 1

# Stop one of our background processes: SIGTERM, then SIGKILL after 10 s.
stop_pid() {
    local pid=$1 i
    if ! kill -0 "$pid" 2>/dev/null; then
        wait "$pid" 2>/dev/null
        forget_pid "$pid"
        return 0
    fi
    kill -TERM "$pid" 2>/dev/null
    for ((i = 0; i < 100; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
        log "pid $pid did not stop on SIGTERM, killing it"
        kill -KILL "$pid" 2>/dev/null
    fi
    wait "$pid" 2>/dev/null
    forget_pid "$pid"
    return 0
}

# Drop $1 from pids, so a stopped process's id (which may be reused) is never signalled again.
forget_pid() {
    local p keep=()
    for p in "${pids[@]}"; do
        [[ $p == "$1" ]] || keep+=("$p")
    done
    pids=("${keep[@]}")
}

# shellcheck disable=SC2317 # run by the EXIT trap
cleanup() {
    local pid
    for pid in "${pids[@]}"; do
        stop_pid "$pid"
    done
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Wait up to 15 s for file $1 to hold a line matching the sed pattern $2 while
# process $3 lives; print the first capture group.
wait_for_line() {
    local file=$1 pattern=$2 pid=$3 i v
    for ((i = 0; i < 150; i++)); do
        v=$(sed -n "s#$pattern#\\1#p" "$file" 2>/dev/null | head -n 1)
        if [[ -n $v ]]; then
            printf '%s\n' "$v"
            return 0
        fi
        kill -0 "$pid" 2>/dev/null || return 1
        sleep 0.1
    done
    return 1
}

# Print the value of key $1 from a `prog: k=v k=v` result line in $2.
field() { sed -n "s/.* $1=\\([^ ]*\\).*/\\1/p" <<<"$2" | head -n 1; }

# ratio A B: A / B with two decimals, or n/a.
ratio() {
    awk -v a="$1" -v b="$2" 'BEGIN {
        if (a == "" || b == "" || a == "n/a" || b == "n/a" || b + 0 == 0) print "n/a";
        else printf "%.2f\n", a / b }'
}

# verdict RATIO TARGET: how the ratio compares with the target.
verdict() {
    awk -v r="$1" -v t="$2" 'BEGIN {
        if (r == "n/a") print "-"; else if (r + 0 >= t + 0) print "meets"; else print "below" }'
}

failed=0
bad() {
    log "$*"
    failed=1
}

# ---------------------------------------------------------------- build
jobd_built=1
if [[ ${BENCH_NO_BUILD:-0} != 1 ]]; then
    log "building (Release) in $build"
    if ! cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release >"$tmp/cmake.log" 2>&1 ||
        ! cmake --build "$build" -j2 --target spawn_baseline jobd_load batch_load bare_mhd \
            >>"$tmp/cmake.log" 2>&1; then
        tail -n 40 "$tmp/cmake.log" >&2
        log "build of the bench programs failed"
        exit 1
    fi
    # The baselines are still worth measuring while jobd itself does not build.
    if ! cmake --build "$build" -j2 --target jobd-bin >"$tmp/cmake-jobd.log" 2>&1; then
        tail -n 20 "$tmp/cmake-jobd.log" >&2
        jobd_built=0
    fi
fi
jobd=$build/jobd
bin=$build/bench
for p in "$bin/spawn_baseline" "$bin/jobd_load" "$bin/batch_load" "$bin/bare_mhd"; do
    if [[ ! -x $p ]]; then
        log "missing $p (build it, or unset BENCH_NO_BUILD)"
        exit 1
    fi
done
[[ -x $jobd ]] || jobd_built=0
[[ $jobd_built == 1 ]] || bad "jobd did not build: only the baselines are measured"
have_wrk=1
command -v wrk >/dev/null || have_wrk=0
have_curl=1
command -v curl >/dev/null || have_curl=0
auth_args=()
load_auth=()
if [[ -n $token ]]; then
    umask 077
    printf '%s\n' "$token" >"$tmp/token"
    auth_args=(--token-file "$tmp/token")
    load_auth=(--token-file "$tmp/token")
fi

# Start jobd with --max-procs $1 (jobd's default if empty) and data dir $2, more
# jobd options after them; set jobd_pid and jobd_port.
start_jobd() {
    local c=$1 dir=$2 procs=()
    shift 2
    [[ -n $c ]] && procs=(--max-procs "$c")
    mkdir -p "$dir"
    "$jobd" --listen 127.0.0.1:0 --data-dir "$dir/data" "${procs[@]}" \
        --http-threads "$http_threads" "${auth_args[@]}" "$@" \
        >"$dir/stdout" 2>"$dir/stderr" &
    jobd_pid=$!
    pids+=("$jobd_pid")
    if ! jobd_port=$(wait_for_line "$dir/stdout" '^jobd: listening on http://127\.0\.0\.1:\([0-9]*\)$' \
        "$jobd_pid"); then
        log "jobd did not print its listening line; its stderr ends with:"
        tail -n 20 "$dir/stderr" >&2
        return 1
    fi
    if [[ $have_curl == 1 ]] &&
        ! curl -sf --max-time 5 "http://127.0.0.1:$jobd_port/healthz" >/dev/null; then
        log "jobd does not answer GET /healthz on port $jobd_port"
        return 1
    fi
    return 0
}

# Run wrk on URL $1 (extra args after it); print requests/s, or nothing if the
# run failed or saw errors (non-2xx answers make the number meaningless).
run_wrk() {
    local url=$1 out
    shift
    out=$(wrk -t"$wrk_t" -c"$wrk_c" -d"${wrk_s}s" "$@" "$url" 2>&1) || {
        log "wrk failed on $url: $out"
        return 1
    }
    printf '%s\n' "$out" >&2
    if grep -q 'Non-2xx or 3xx responses' <<<"$out"; then
        log "wrk saw error answers from $url"
        return 1
    fi
    awk '/^Requests\/sec:/ { printf "%.1f\n", $2 }' <<<"$out"
}

# best A B: the larger of two rates, either of which may be n/a.
best() {
    awk -v a="${1:-n/a}" -v b="${2:-n/a}" 'BEGIN {
        if (a == "n/a") print b; else if (b == "n/a" || a + 0 >= b + 0) print a; else print b }'
}

declare -A raw_rate jobd_rate jobd_fail
read -r -a conc_list <<<"$concs"
first_c=${conc_list[0]}
ended_id=
get_port=
inflight=()
[[ -n ${BENCH_INFLIGHT:-} ]] && inflight=(-k "$BENCH_INFLIGHT")

# ------------------------------------------------- (a) and (b), for each C
for c in "${conc_list[@]}"; do
    raw_rate[$c]=n/a
    jobd_rate[$c]=n/a
    jobd_fail[$c]=0
    jobd_pid=
    if [[ $jobd_built == 1 ]] && ! start_jobd "$c" "$tmp/jobd-c$c"; then
        bad "jobd did not start at C=$c"
        stop_pid "$jobd_pid"
        jobd_pid=
    fi
    for ((rep = 1; rep <= repeat; rep++)); do
        log "(a) spawn_baseline: N=$n C=$c (run $rep/$repeat)"
        if line=$("$bin/spawn_baseline" -n "$n" -c "$c") && [[ -n $(field jobs_per_s "$line") ]]
        then
            printf '%s\n' "$line"
            raw_rate[$c]=$(best "${raw_rate[$c]}" "$(field jobs_per_s "$line")")
        else
            bad "spawn_baseline failed at C=$c"
        fi

        [[ -n $jobd_pid ]] || continue
        log "(b) jobd --max-procs $c + jobd_load: N=$n C=$c (run $rep/$repeat)"
        line=$("$bin/jobd_load" --url "http://127.0.0.1:$jobd_port" -n "$n" -c "$c" \
            "${inflight[@]}" "${load_auth[@]}")
        st=$?
        if [[ -n $(field jobs_per_s "$line") ]]; then
            printf '%s\n' "$line"
            jobd_rate[$c]=$(best "${jobd_rate[$c]}" "$(field jobs_per_s "$line")")
            jobd_fail[$c]=$((jobd_fail[$c] + $(field failures "$line")))
            [[ $st == 0 ]] || bad "jobd_load saw $(field failures "$line") failed jobs at C=$c"
            id=$(field last_id "$line")
            [[ $id == - ]] || ended_id=${ended_id:-$id}
        else
            bad "jobd_load printed no result at C=$c"
        fi
    done
    [[ $jobd_built == 1 ]] || jobd_fail[$c]=n/a
    printf 'jobd/raw at C=%s: %s / %s = %s\n' "$c" "${jobd_rate[$c]}" "${raw_rate[$c]}" \
        "$(ratio "${jobd_rate[$c]}" "${raw_rate[$c]}")"
    if [[ -n $jobd_pid && $c == "$first_c" && -n $ended_id ]]; then
        # Keep this jobd, with its ended jobs, for the GET measurement.
        get_port=$jobd_port
    elif [[ -n $jobd_pid ]]; then
        stop_pid "$jobd_pid"
    fi
done

# ------------------------------------------------------ (c) GET /v1/jobs/{id}
# jobd and bare_mhd take turns, so that both see the same machine.
get_jobd=n/a
get_bare=n/a
get_static=n/a
wrk_auth=()
[[ -n $token ]] && wrk_auth=(-H "Authorization: Bearer $token")

# Start bare_mhd with extra flags $3... writing to $tmp/$2.*; set the variable
# named $1 to its URL for the job (left empty if it did not start).
start_bare() {
    local -n url_var=$1
    local name=$2 pid port
    # shellcheck disable=SC2034 # url_var is a nameref to the caller's variable
    url_var=
    shift 2
    "$bin/bare_mhd" --port 0 --threads "$http_threads" "$@" >"$tmp/$name.out" 2>"$tmp/$name.err" &
    pid=$!
    pids+=("$pid")
    if ! port=$(wait_for_line "$tmp/$name.out" '^listening on http://127\.0\.0\.1:\([0-9]*\)$' \
        "$pid"); then
        bad "bare_mhd $* did not start: $(cat "$tmp/$name.err")"
        return 1
    fi
    # shellcheck disable=SC2034 # url_var is a nameref to the caller's variable
    url_var="http://127.0.0.1:$port/v1/jobs/${ended_id:-j1}"
}

# One wrk run on URL $3 (label $2, more wrk args after): raise the variable
# named $1 to the rate measured if it is better.
wrk_turn() {
    local -n best_var=$1
    local label=$2 url=$3 rate
    shift 3
    log "(c) wrk -t$wrk_t -c$wrk_c -d${wrk_s}s GET $url ($label, run $rep/$repeat)"
    if rate=$(run_wrk "$url" "$@") && [[ -n $rate ]]; then
        best_var=$(best "$best_var" "$rate")
    else
        bad "no GET throughput for $label"
    fi
}

if [[ $have_wrk == 0 ]]; then
    log "wrk is not installed (apt-get install wrk): GET throughput not measured"
else
    jobd_url=
    [[ -n $get_port ]] && jobd_url="http://127.0.0.1:$get_port/v1/jobs/$ended_id"
    [[ -n $get_port ]] || bad "no jobd with an ended job to read: its GET throughput not measured"
    start_bare bare_url bare
    start_bare static_url static --static-body
    if [[ $have_curl == 1 ]]; then
        [[ -n $jobd_url ]] &&
            log "jobd job document: $(curl -s "${wrk_auth[@]}" "$jobd_url" | wc -c) bytes"
        [[ -n $bare_url ]] && log "bare_mhd job document: $(curl -s "$bare_url" | wc -c) bytes"
    fi
    # The three servers take turns, so that all see the same machine.
    for ((rep = 1; rep <= repeat; rep++)); do
        [[ -z $jobd_url ]] || wrk_turn get_jobd jobd "$jobd_url" "${wrk_auth[@]}"
        [[ -z $bare_url ]] || wrk_turn get_bare bare_mhd "$bare_url"
        [[ -z $static_url ]] || wrk_turn get_static "bare_mhd --static-body" "$static_url"
    done
fi
for pid in "${pids[@]}"; do
    stop_pid "$pid"
done

# ------------------------------------------------ (d) echo tasks (issue 3)
# Three ways to run the same N echo tasks, each on a fresh jobd (an empty
# store, as for (b)), taking turns when BENCH_REPEAT > 1. No baseline is
# measured: the summary sets the rates against the aims.
declare -A task_rate task_fail task_ran
task_kinds=(batch single process)
for k in "${task_kinds[@]}"; do
    task_rate[$k]=n/a
    task_fail[$k]=0
    task_ran[$k]=0
done

# One (d) run of kind $1 on a fresh jobd.
task_turn() {
    local kind=$1 dir=$tmp/jobd-task-$1-$rep line st
    jobd_pid=
    if ! start_jobd "" "$dir" "${task_jobd_args[@]}"; then
        bad "jobd did not start for (d) $kind"
        stop_pid "$jobd_pid"
        return
    fi
    local url=http://127.0.0.1:$jobd_port
    case $kind in
    batch)
        log "(d) batch_load: $task_n echo tasks in one batch (run $rep/$repeat)"
        line=$("$bin/batch_load" --url "$url" -n "$task_n" "${load_auth[@]}")
        ;;
    single)
        log "(d) jobd_load: $task_n echo tasks as single POSTs, $task_clients in flight" \
            "(run $rep/$repeat)"
        line=$("$bin/jobd_load" --url "$url" -n "$task_n" -k "$task_clients" \
            --spec '{"task":"echo","args":{"i":0}}' "${load_auth[@]}")
        ;;
    process)
        log "(d) batch_load: $task_n echo tasks in one batch, executor process (run $rep/$repeat)"
        line=$("$bin/batch_load" --url "$url" -n "$task_n" --executor process "${load_auth[@]}")
        ;;
    esac
    st=$?
    if [[ -n $(field jobs_per_s "$line") ]]; then
        printf '%s\n' "$line"
        task_ran[$kind]=1
        task_rate[$kind]=$(best "${task_rate[$kind]}" "$(field jobs_per_s "$line")")
        task_fail[$kind]=$((task_fail[$kind] + $(field failures "$line")))
        [[ $st == 0 ]] || bad "(d) $kind: $(field failures "$line") jobs did not succeed"
    else
        bad "(d) $kind printed no result"
    fi
    stop_pid "$jobd_pid"
}

if [[ $run_tasks != 0 && $jobd_built == 1 ]]; then
    for ((rep = 1; rep <= repeat; rep++)); do
        for k in "${task_kinds[@]}"; do
            task_turn "$k"
        done
    done
fi
for k in "${task_kinds[@]}"; do
    [[ ${task_ran[$k]} == 1 ]] || task_fail[$k]=n/a
done

# ---------------------------------------- (e) worker nodes (issue 4)
# cluster_load.py starts its own coordinator and two nodes (under $tmp, so a
# kill -9 of it leaves nothing behind that cleanup misses), measures, prints a
# table and a `cluster_load:` line (kept for the summary), and stops them. It
# runs in the background so that the TERM/INT traps can stop it at once.
cluster_ran=0
if [[ $run_cluster != 0 && $jobd_built == 1 ]]; then
    if ! command -v python3 >/dev/null; then
        bad "(e) needs python3"
    else
        log "(e) cluster_load.py: a coordinator and 2 worker nodes (each pair $repeat x)"
        TMPDIR=$tmp python3 "$root/tests/bench/cluster_load.py" --jobd "$jobd" \
            --http-threads "$http_threads" --repeat "$repeat" "${cluster_args[@]}" \
            >"$tmp/cluster.out" &
        cluster_pid=$!
        pids+=("$cluster_pid")
        wait "$cluster_pid"
        st=$?
        forget_pid "$cluster_pid"
        if grep -q '^cluster_load: ' "$tmp/cluster.out"; then
            cluster_ran=1
            grep '^cluster_load: ' "$tmp/cluster.out"
            [[ $st == 0 ]] || bad "(e) cluster_load.py: a job failed or a node ran none (status $st)"
        else
            bad "(e) cluster_load.py printed no result (status $st)"
        fi
    fi
fi

# ------------------------------------------------------------------ summary
printf '\n== jobd bench: N=%s, wrk -t%s -c%s -d%ss, %s HTTP threads, best of %s%s ==\n' "$n" \
    "$wrk_t" "$wrk_c" "$wrk_s" "$http_threads" "$repeat" \
    "$([[ $quick == 1 ]] && echo ', QUICK: smoke only')"
fmt='%-36s %12s %12s %7s %8s  %s\n'
# shellcheck disable=SC2059
printf "$fmt" "what" "jobd" "baseline" "ratio" "target" "verdict"
for c in "${conc_list[@]}"; do
    r=$(ratio "${jobd_rate[$c]}" "${raw_rate[$c]}")
    # shellcheck disable=SC2059
    printf "$fmt" "jobs/s, C=$c (fail ${jobd_fail[$c]})" "${jobd_rate[$c]}" "${raw_rate[$c]}" \
        "$r" ">= 0.75" "$(verdict "$r" 0.75)"
done
r=$(ratio "$get_jobd" "$get_bare")
# shellcheck disable=SC2059
printf "$fmt" "GET /v1/jobs/{id} req/s" "$get_jobd" "$get_bare" "$r" ">= 0.70" "$(verdict "$r" 0.70)"
r=$(ratio "$get_jobd" "$get_static")
# shellcheck disable=SC2059
printf "$fmt" "  same, vs --static-body" "$get_jobd" "$get_static" "$r" "(info)" ""
if [[ $run_tasks != 0 ]]; then
    printf '\n== (d) %s echo tasks, durable; no baseline measured: ratio = jobd / aim ==\n' "$task_n"
    # shellcheck disable=SC2059
    printf "$fmt" "what" "jobd" "aim" "ratio" "target" "verdict"
    r=$(ratio "${task_rate[batch]}" 50000)
    # shellcheck disable=SC2059
    printf "$fmt" "echo, one batch (fail ${task_fail[batch]})" "${task_rate[batch]}" 50000 "$r" \
        ">= 1.00" "$(verdict "$r" 1)"
    r=$(ratio "${task_rate[single]}" 20000)
    # shellcheck disable=SC2059
    printf "$fmt" "echo, single POSTs, K=$task_clients (fail ${task_fail[single]})" \
        "${task_rate[single]}" 20000 "$r" ">= 1.00" "$(verdict "$r" 1)"
    r=$(ratio "${task_rate[process]}" "${task_rate[batch]}")
    # shellcheck disable=SC2059
    printf "$fmt" "echo, batch, process (fail ${task_fail[process]})" "${task_rate[process]}" \
        "${task_rate[batch]}" "$r" "(info)" "vs the thread batch"
    printf '%s\n' "references, not measured here: in-memory beanstalkd ~16,600 no-op jobs/s," \
        "gearmand ~9,000 on this 2-core machine"
fi
if [[ $cluster_ran == 1 ]]; then
    # The table (without the result line, printed above) of (e).
    grep -v '^cluster_load: ' "$tmp/cluster.out"
fi
if [[ $quick == 1 ]]; then
    printf '(quick mode: too short for the numbers to mean anything; run without BENCH_QUICK)\n'
fi
# 77: CTest's "skipped" (SKIP_RETURN_CODE), when all ran but wrk was missing.
[[ $failed == 0 && $have_wrk == 0 ]] && exit 77
exit "$failed"
