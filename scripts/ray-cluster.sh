#!/usr/bin/env bash
# A multi-node Ray cluster on this machine, each node bound to its own Docker engine,
# for tests, CI and developers trying `--backend ray --ray-address ...`.
#
#   main  the head node; its tasks use the main engine (the default socket)
#   h2    a worker node with DOCKER_HOST=$H2_SOCK (scripts/test-hosts.sh's engine h2)
#   h3    a worker node with DOCKER_HOST=$H3_SOCK (engine h3)
#
# Every node listens on 127.0.0.1 only and carries the node label launcher-host=NAME
# (the launcher's `host` column) and the custom resource node_NAME=100 (to pin work
# to one node). Each node is one `ray start --block` in its own session, so `down` and
# `kill-node` stop exactly the processes this script started (never `ray stop`, which
# would stop every Ray on the machine).
#
# Usage (as root; the test engines must be up: scripts/test-hosts.sh up):
#   scripts/ray-cluster.sh up             start the nodes that are not running (idempotent)
#   scripts/ray-cluster.sh down           stop every node this script started
#   scripts/ray-cluster.sh status         which nodes run; exit 0 if all do, 3 if not
#   scripts/ray-cluster.sh address        print the cluster address (HOST:PORT)
#   scripts/ray-cluster.sh kill-node NAME SIGKILL one node's processes (simulated node loss)
#
# Environment:
#   LAUNCHER_RAY_STATE   state folder (default /run/launcher-ray-cluster): pids, logs, address
#   LAUNCHER_RAY_PORT    the head's GCS port (default 6390)
#   LAUNCHER_RAY_NODES   nodes to start (default "main h2 h3")
#   LAUNCHER_RAY_CPUS    CPUs each node offers (default 1)
#   RAY                  the ray executable (default: .venv/bin/ray, else ray on PATH)
#   RAY_CLUSTER_WAIT     seconds to wait for one node to come up (default 90)
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
STATE="${LAUNCHER_RAY_STATE:-/run/launcher-ray-cluster}"
PORT="${LAUNCHER_RAY_PORT:-6390}"
read -ra NODES <<<"${LAUNCHER_RAY_NODES:-main h2 h3}"
CPUS="${LAUNCHER_RAY_CPUS:-1}"
WAIT_S="${RAY_CLUSTER_WAIT:-90}"
HOSTS_ENV=/run/launcher-test-hosts/hosts.env
if [ -z "${RAY:-}" ]; then
    if [ -x "$ROOT/.venv/bin/ray" ]; then RAY="$ROOT/.venv/bin/ray"; else RAY="$(command -v ray || true)"; fi
fi

log() { printf 'ray-cluster: %s\n' "$*" >&2; }
die() { printf 'ray-cluster: ERROR: %s\n' "$*" >&2; exit 1; }

address() { echo "127.0.0.1:$PORT"; }
pid_of() { cat "$STATE/$1.pid" 2>/dev/null || true; }

# A node runs while the session leader we started is alive and still a `ray start`.
node_up() {
    local pid
    pid="$(pid_of "$1")"
    [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null &&
        tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q "ray start"
}

docker_host_of() {
    case "$1" in
        main) echo "${MAIN_DOCKER_HOST:-unix:///var/run/docker.sock}" ;;
        h2|h3)
            [ -r "$HOSTS_ENV" ] || die "$HOSTS_ENV is missing: run scripts/test-hosts.sh up first"
            local key
            key="$(echo "$1" | tr '[:lower:]' '[:upper:]')_SOCK"
            sed -n "s/^$key=//p" "$HOSTS_ENV" ;;
        *) die "unknown node $1 (known: main h2 h3)" ;;
    esac
}

# start_node NAME: one `ray start --block` in its own session; its pid (= pgid) saved.
start_node() {
    local name=$1 docker_host args
    docker_host="$(docker_host_of "$name")"
    [ -n "$docker_host" ] || die "no Docker socket known for node $name"
    args=(--block --node-ip-address 127.0.0.1 --num-cpus "$CPUS" --num-gpus 0
          --resources "{\"node_$name\": 100}" --labels "launcher-host=$name"
          --disable-usage-stats)
    if [ "$name" = main ]; then
        args+=(--head --port "$PORT" --include-dashboard false)
    else
        args+=(--address "$(address)")
    fi
    : >"$STATE/$name.log"
    # setsid: the node's processes get their own session and process group, so that
    # `down` and `kill-node` reach exactly them. fd 9 (our lock) is not inherited.
    # shellcheck disable=SC2016
    DOCKER_HOST="$docker_host" RAY_AUTH_MODE=token RAY_USAGE_STATS_ENABLED=0 \
        setsid bash -c 'echo $$ >"$1"; shift; exec "$@"' _ "$STATE/$name.pid" \
        "$RAY" start "${args[@]}" >>"$STATE/$name.log" 2>&1 </dev/null 9>&- &
    wait_node "$name"
}

wait_node() {
    local name=$1 deadline=$((SECONDS + WAIT_S))
    while [ "$SECONDS" -lt "$deadline" ]; do
        if grep -q "Ray runtime started" "$STATE/$1.log" 2>/dev/null; then
            log "node $name up (DOCKER_HOST=$(docker_host_of "$name"), pid $(pid_of "$name"))"
            return 0
        fi
        if [ -s "$STATE/$name.pid" ] && ! node_up "$name"; then
            tail -n 20 "$STATE/$name.log" >&2 || true
            die "node $name exited while starting (log: $STATE/$name.log)"
        fi
        sleep 0.5
    done
    tail -n 20 "$STATE/$name.log" >&2 || true
    die "node $name did not come up within ${WAIT_S}s (log: $STATE/$name.log)"
}

# group_alive PGID: a process of the group still runs (zombies do not count).
group_alive() {
    ps -eo pgid=,stat= | awk -v g="$1" '$1 == g && $2 !~ /^Z/ { found = 1 } END { exit !found }'
}

# stop_nodes SIGNAL NAME...: signal each node's process group, wait (bounded), SIGKILL
# what is left. SIGTERM lets `ray start --block` stop its processes; KILL is node loss.
stop_nodes() {
    local sig=$1 name pid pids=() deadline
    shift
    for name in "$@"; do
        pid="$(pid_of "$name")"
        if node_up "$name"; then
            kill "-$sig" -- "-$pid" 2>/dev/null || true
            pids+=("$pid")
        fi
        rm -f "$STATE/$name.pid"
    done
    deadline=$((SECONDS + 10))
    for pid in "${pids[@]}"; do
        while group_alive "$pid" && [ "$SECONDS" -lt "$deadline" ]; do sleep 0.2; done
        kill -KILL -- "-$pid" 2>/dev/null || true
    done
    [ "${#pids[@]}" -eq 0 ] || log "stopped: $*"
}

# ray start fails with InvalidAuthToken when the head made no token yet: make it once.
ensure_token() {
    [ -s "${HOME:-/root}/.ray/auth_token" ] && return 0
    RAY_AUTH_MODE=token "$RAY" get-auth-token --generate >/dev/null 2>&1 ||
        die "could not generate a Ray auth token (ray get-auth-token --generate)"
}

cmd_up() {
    if [ -z "$RAY" ] || [ ! -x "$RAY" ]; then
        die "ray is not installed: pip install -e '.[ray]'"
    fi
    mkdir -p "$STATE"
    exec 9>"$STATE/.lock"
    flock -w 300 9 || die "another ray-cluster.sh holds $STATE/.lock"
    ensure_token
    local name
    # Workers of a head that is gone cannot rejoin it: start them again with the new head.
    node_up main || stop_nodes KILL "${NODES[@]}"
    for name in "${NODES[@]}"; do
        node_up "$name" || start_node "$name"
    done
    address >"$STATE/address"
    address
}

cmd_down() {
    [ -d "$STATE" ] || return 0
    exec 9>"$STATE/.lock"
    flock -w 300 9 || die "another ray-cluster.sh holds $STATE/.lock"
    stop_nodes TERM "${NODES[@]}"
    rm -f "$STATE/address"
}

cmd_status() {
    local name rc=0
    for name in "${NODES[@]}"; do
        if node_up "$name"; then echo "$name: up (pid $(pid_of "$name"))"
        else echo "$name: down"; rc=3; fi
    done
    return "$rc"
}

case "${1:-}" in
    up) cmd_up ;;
    down) cmd_down ;;
    status) cmd_status ;;
    address) address ;;
    kill-node) [ -n "${2:-}" ] || die "usage: $0 kill-node NAME"; stop_nodes KILL "$2" ;;
    *) sed -n '2,30p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
esac
