#!/usr/bin/env bash
# A jobd cluster as local processes: one coordinator and NODES worker nodes
# on loopback ports, the topology of docker/compose.yaml without Docker.
# Keep the two in step (flags, labels, node timeout, which token goes where).
#
#   tests/cluster/local_cluster.sh start     # coordinator on 127.0.0.1:$PORT, nodes on the next ports
#   tests/cluster/local_cluster.sh status    # exit 0 when every process is up and healthy
#   tests/cluster/local_cluster.sh stop      # SIGTERM, then SIGKILL after a bounded wait
#
# Environment:
#   JOBD         the jobd binary (default: build/jobd of this repository)
#   PORT         the coordinator's port (default 8080); node i listens on PORT+i
#   NODES        how many nodes `start` runs (default 3)
#   CLUSTER_DIR  data directories, logs and pid files (default /tmp/jobd-cluster)
#   ENV_FILE     JOBD_TOKEN and JOBD_CLUSTER_TOKEN, as in docker/cluster.env
#                (default $CLUSTER_DIR/cluster.env, made with random tokens
#                when missing)
#
# In CLUSTER_DIR: coordinator/ and nodeN/ (data directories), *.log, *.pid.
# `stop` keeps them; remove CLUSTER_DIR to start afresh.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
JOBD=${JOBD:-$repo/build/jobd}
PORT=${PORT:-8080}
NODES=${NODES:-3}
CLUSTER_DIR=${CLUSTER_DIR:-/tmp/jobd-cluster}
ENV_FILE=${ENV_FILE:-$CLUSTER_DIR/cluster.env}

# As in docker/compose.yaml.
NODE_TIMEOUT=15
NODE_LABEL=pool=workers

# Bounded waits, in tenths of a second.
HEALTH_WAIT=100 # a process's /healthz
NODES_WAIT=100  # the nodes' registration with the coordinator
STOP_WAIT=150   # SIGTERM to exit; jobd's --shutdown-grace is 10 s

die() {
    echo "local_cluster: $*" >&2
    exit 1
}

usage() {
    echo "usage: $0 start|stop|status (see the top of this file for its environment)" >&2
    exit 2
}

is_uint() {
    [[ $1 =~ ^[0-9]+$ ]]
}

# GET http://127.0.0.1:PORT/PATH with an optional bearer token; the body on
# stdout. Fails on an HTTP error or after 2 s. curl if there is one, else
# python3 (which the Makefile installs).
http_get() {
    local port=$1 path=$2 token=${3:-}
    if command -v curl >/dev/null; then
        if [[ -n $token ]]; then
            # The token goes through a config on stdin, not the command line.
            printf 'header = "Authorization: Bearer %s"\n' "$token" |
                curl -fsS --max-time 2 -K - "http://127.0.0.1:$port$path"
        else
            curl -fsS --max-time 2 "http://127.0.0.1:$port$path"
        fi
    else
        TOKEN=$token python3 - "http://127.0.0.1:$port$path" <<'EOF'
import os, sys, urllib.request
req = urllib.request.Request(sys.argv[1])
if os.environ.get("TOKEN"):
    req.add_header("Authorization", "Bearer " + os.environ["TOKEN"])
with urllib.request.urlopen(req, timeout=2) as r:
    sys.stdout.write(r.read().decode())
EOF
    fi
}

healthy() {
    http_get "$1" /healthz >/dev/null 2>&1
}

# The pid in FILE if that process is still a jobd, else nothing.
live_pid() {
    local file=$1 pid
    [[ -f $file ]] || return 1
    pid=$(<"$file")
    is_uint "$pid" || return 1
    kill -0 "$pid" 2>/dev/null || return 1
    # A pid can be reused after a crash: it must still be jobd.
    tr '\0' ' ' 2>/dev/null <"/proc/$pid/cmdline" | grep -q 'jobd' || return 1
    echo "$pid"
}

# Read JOBD_TOKEN and JOBD_CLUSTER_TOKEN from ENV_FILE into users_token and
# cluster_token: KEY=VALUE lines, as compose reads them (the file is not run
# as shell). Return 1 with a message on stderr if one is missing.
read_tokens() {
    local key value
    users_token="" cluster_token=""
    [[ -r $ENV_FILE ]] || {
        echo "local_cluster: cannot read $ENV_FILE" >&2
        return 1
    }
    while IFS='=' read -r key value; do
        case $key in
        JOBD_TOKEN) users_token=$value ;;
        JOBD_CLUSTER_TOKEN) cluster_token=$value ;;
        esac
    done <"$ENV_FILE"
    if [[ -z $users_token || -z $cluster_token ]]; then
        echo "local_cluster: $ENV_FILE needs JOBD_TOKEN and JOBD_CLUSTER_TOKEN" >&2
        return 1
    fi
}

# read_tokens, making ENV_FILE first with random tokens if it does not exist.
load_tokens() {
    if [[ ! -f $ENV_FILE ]]; then
        (
            umask 077
            printf 'JOBD_TOKEN=%s\nJOBD_CLUSTER_TOKEN=%s\n' \
                "$(od -An -tx1 -N32 /dev/urandom | tr -d ' \n')" \
                "$(od -An -tx1 -N32 /dev/urandom | tr -d ' \n')" >"$ENV_FILE"
        )
        echo "local_cluster: made $ENV_FILE with new tokens"
    fi
    read_tokens || exit 1
    [[ $users_token != "$cluster_token" ]] || die "$ENV_FILE: the two tokens must differ"
}

# start_jobd NAME PORT USERS_TOKEN CLUSTER_TOKEN ARGS...: start jobd with
# ARGS in a session of its own, with JOBD_TOKEN and JOBD_CLUSTER_TOKEN set to
# the two tokens (unset when empty; in the environment, never on a command
# line that ps shows), log to NAME.log, pid in NAME.pid, URL in NAME.url;
# wait until its /healthz answers.
start_jobd() {
    local name=$1 port=$2 utok=$3 ctok=$4 pid i
    shift 4
    if healthy "$port"; then
        die "something already answers on 127.0.0.1:$port (set PORT to move the cluster)"
    fi
    # setsid: the process outlives this script and a closed terminal. It
    # execs jobd without a fork here (a background job is no group leader),
    # so $! is jobd's pid.
    (
        unset JOBD_TOKEN JOBD_CLUSTER_TOKEN
        [[ -z $utok ]] || export JOBD_TOKEN=$utok
        [[ -z $ctok ]] || export JOBD_CLUSTER_TOKEN=$ctok
        exec setsid "$JOBD" "$@" </dev/null >>"$CLUSTER_DIR/$name.log" 2>&1
    ) &
    pid=$!
    echo "$pid" >"$CLUSTER_DIR/$name.pid"
    echo "http://127.0.0.1:$port" >"$CLUSTER_DIR/$name.url"
    for ((i = 0; i < HEALTH_WAIT; i++)); do
        if healthy "$port"; then
            echo "local_cluster: $name up on http://127.0.0.1:$port (pid $pid)"
            return 0
        fi
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    echo "local_cluster: $name did not become healthy; the end of $CLUSTER_DIR/$name.log:" >&2
    tail -n 20 "$CLUSTER_DIR/$name.log" >&2 || true
    return 1
}

# How many nodes the coordinator lists as ready (0 if it cannot tell).
ready_nodes() {
    local body
    body=$(http_get "$PORT" /v1/nodes "$users_token" 2>/dev/null) || {
        echo 0
        return
    }
    { grep -o '"state" *: *"ready"' <<<"$body" || true; } | wc -l
}

cmd_start() {
    local i port coordinator_args node_args
    if ! is_uint "$NODES" || ((NODES < 1 || NODES > 100)); then
        die "NODES must be 1..100, not $NODES"
    fi
    if ! is_uint "$PORT" || ((PORT < 1 || PORT + NODES > 65535)); then
        die "bad PORT: $PORT"
    fi
    [[ -x $JOBD ]] || die "no jobd binary at $JOBD (build it with make, or set JOBD)"
    JOBD=$(cd "$(dirname "$JOBD")" && pwd)/$(basename "$JOBD")
    mkdir -p "$CLUSTER_DIR"
    chmod 0700 "$CLUSTER_DIR"
    for f in "$CLUSTER_DIR"/*.pid; do
        [[ -e $f ]] || continue
        if live_pid "$f" >/dev/null; then
            die "a cluster is already running in $CLUSTER_DIR: run '$0 stop' first"
        fi
        rm -f "$f" "${f%.pid}.url"
    done
    load_tokens

    # The coordinator: the users' token and the cluster token.
    coordinator_args=(--listen "127.0.0.1:$PORT" --data-dir "$CLUSTER_DIR/coordinator"
        --node-timeout "$NODE_TIMEOUT")
    start_jobd coordinator "$PORT" "$users_token" "$cluster_token" "${coordinator_args[@]}" || {
        cmd_stop >/dev/null
        exit 1
    }

    # The nodes: the cluster token only, as in compose. On loopback a node
    # would advertise http://127.0.0.1:PORT by itself; --advertise says so
    # explicitly, as a node on another machine must.
    for ((i = 1; i <= NODES; i++)); do
        port=$((PORT + i))
        node_args=(--listen "127.0.0.1:$port" --data-dir "$CLUSTER_DIR/node$i"
            --join "http://127.0.0.1:$PORT" --advertise "http://127.0.0.1:$port"
            --label "$NODE_LABEL")
        start_jobd "node$i" "$port" "" "$cluster_token" "${node_args[@]}" || {
            cmd_stop >/dev/null
            exit 1
        }
    done

    for ((i = 0; i < NODES_WAIT; i++)); do
        (($(ready_nodes) >= NODES)) && break
        sleep 0.1
    done
    if (($(ready_nodes) < NODES)); then
        echo "local_cluster: warning: the coordinator lists $(ready_nodes) of $NODES nodes as ready" >&2
    fi
    echo "local_cluster: export JOBD_URL=http://127.0.0.1:$PORT and JOBD_TOKEN from $ENV_FILE"
}

cmd_stop() {
    local f pid pids=() names=() i alive
    [[ -d $CLUSTER_DIR ]] || return 0
    # Nodes first, so the coordinator does not see them go down one by one
    # while it still dispatches.
    for f in "$CLUSTER_DIR"/node*.pid "$CLUSTER_DIR"/coordinator.pid; do
        [[ -e $f ]] || continue
        if pid=$(live_pid "$f"); then
            kill -TERM "$pid" 2>/dev/null || true
            pids+=("$pid")
            names+=("$(basename "$f" .pid)")
        fi
        rm -f "$f" "${f%.pid}.url"
    done
    for ((i = 0; i < STOP_WAIT; i++)); do
        alive=0
        for pid in "${pids[@]}"; do
            kill -0 "$pid" 2>/dev/null && alive=1
        done
        ((alive)) || break
        sleep 0.1
    done
    for i in "${!pids[@]}"; do
        if kill -0 "${pids[$i]}" 2>/dev/null; then
            echo "local_cluster: ${names[$i]} (pid ${pids[$i]}) ignored SIGTERM: SIGKILL" >&2
            kill -KILL "${pids[$i]}" 2>/dev/null || true
        fi
    done
    echo "local_cluster: stopped ${#pids[@]} process(es); data and logs stay in $CLUSTER_DIR"
}

cmd_status() {
    local f name pid url rc=0 found=0
    for f in "$CLUSTER_DIR"/coordinator.pid "$CLUSTER_DIR"/node*.pid; do
        [[ -e $f ]] || continue
        found=1
        name=$(basename "$f" .pid)
        url=$(cat "$CLUSTER_DIR/$name.url" 2>/dev/null || true)
        if ! pid=$(live_pid "$f"); then
            echo "$name: not running (log: $CLUSTER_DIR/$name.log)"
            rc=1
        elif [[ $url =~ ^http://127\.0\.0\.1:([0-9]+)$ ]] && healthy "${BASH_REMATCH[1]}"; then
            echo "$name: running, pid $pid, $url healthy"
        else
            echo "$name: running, pid $pid, ${url:-(no url)} not answering /healthz"
            rc=1
        fi
    done
    if ((!found)); then
        echo "no cluster running in $CLUSTER_DIR"
        return 1
    fi
    url=$(cat "$CLUSTER_DIR/coordinator.url" 2>/dev/null || true)
    if [[ $url =~ ^http://127\.0\.0\.1:([0-9]+)$ ]] && read_tokens 2>/dev/null; then
        echo "GET $url/v1/nodes:"
        http_get "${BASH_REMATCH[1]}" /v1/nodes "$users_token" 2>/dev/null || echo "(failed)"
        echo
    fi
    return "$rc"
}

case ${1:-} in
start) cmd_start ;;
stop) cmd_stop ;;
status) cmd_status ;;
*) usage ;;
esac
