#!/usr/bin/env bash
# Throw-away Docker engines that a test may kill, restart and freeze.
#
# The shared engines (the main dockerd and h2/h3 of scripts/test-hosts.sh) must never
# be stopped or frozen: fault-injection tests start their own with this script. Each
# engine NAME is a dockerd in its own network namespace (loopback only: no bridge is
# touched in the main namespace), with its own data root, exec root, pidfile,
# containerd namespaces and cgroup parent, reached only on its unix socket
# /run/launcher-NAME/docker.sock.
#
# Usage (as root):
#   scripts/scratch-engine.sh up NAME      start NAME's engine and wait for it (idempotent)
#   scripts/scratch-engine.sh down NAME    stop it, remove its namespace, data and state
#   scripts/scratch-engine.sh kill NAME    SIGKILL its dockerd (a crash; containers stay)
#   scripts/scratch-engine.sh start NAME   start its dockerd again after a kill and wait
#   scripts/scratch-engine.sh freeze NAME  SIGSTOP its dockerd (it accepts, never answers)
#   scripts/scratch-engine.sh thaw NAME    SIGCONT its dockerd
#   scripts/scratch-engine.sh sock NAME    print its socket URL
#
# NAME: 2 to 11 lowercase letters and digits, starting with a letter; never h2 or h3.
set -euo pipefail

ENGINE_WAIT_S=60          # how long to wait for a dockerd to answer
STATE=/run/launcher-scratch-engines  # only read by lib functions for h2's certificates
PKI_CHANGED=0

unset DOCKER_HOST DOCKER_CONTEXT DOCKER_TLS_VERIFY DOCKER_CERT_PATH DOCKER_TLS || true

log() { printf 'scratch-engine: %s\n' "$*" >&2; }
die() { printf 'scratch-engine: ERROR: %s\n' "$*" >&2; exit 1; }

LIB="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/lib"
# shellcheck source=scripts/lib/test-hosts-common.sh
source "$LIB/test-hosts-common.sh"
# shellcheck source=scripts/lib/test-hosts-engines.sh
source "$LIB/test-hosts-engines.sh"

valid_name() {
    [[ "$1" =~ ^[a-z][a-z0-9]{1,10}$ ]] && ! valid_host "$1"
}

ensure_netns_lo() {
    local ns
    ns=$(netns_of "$1")
    [ -e "/run/netns/$ns" ] || ip netns add "$ns"
    ip -n "$ns" link set lo up
}

cmd_up() {
    local h=$1 entry pid=""
    command -v dockerd >/dev/null 2>&1 || die "dockerd not found: run scripts/ensure-docker.sh"
    command -v nsenter >/dev/null 2>&1 || die "nsenter not found (util-linux)"
    ensure_netns_lo "$h"
    STARTED_PIDS=()
    start_engine "$h"
    for entry in "${STARTED_PIDS[@]+"${STARTED_PIDS[@]}"}"; do pid=${entry#*:}; done
    wait_engine "$h" "$pid"
    sock_url "$h"
}

cmd_down() {
    local h=$1 pid
    pid=$(engine_pid "$h" || true)
    if [ -n "$pid" ]; then kill -CONT "$pid" 2>/dev/null || true; fi
    stop_engine_graceful "$h"
    kill_leftovers "$h"
    unmount_under "$(run_dir "$h")"
    unmount_under "$(data_root "$h")"
    remove_netns "$h"
    rm -rf "$(run_dir "$h")" "$(data_root "$h")"
    log "$h: removed"
}

signal_engine() {
    local h=$1 sig=$2 pid
    pid=$(engine_pid "$h" || true)
    [ -n "$pid" ] || die "$h: dockerd is not running"
    kill -"$sig" "$pid"
    if [ "$sig" = KILL ]; then
        wait_gone "$pid" 10 || die "$h: dockerd pid $pid survived SIGKILL"
    fi
    log "$h: dockerd (pid $pid) got SIG$sig"
}

main() {
    local cmd=${1:-} h=${2:-}
    [ $# -eq 2 ] || die "usage: $0 up|down|kill|start|freeze|thaw|sock NAME"
    valid_name "$h" || die "bad engine name $h (2-11 of [a-z0-9], not h2/h3)"
    case "$cmd" in
        sock) sock_url "$h"; return ;;
    esac
    need_root
    case "$cmd" in
        up|start) cmd_up "$h" ;;
        down) cmd_down "$h" ;;
        kill) signal_engine "$h" KILL ;;
        freeze) signal_engine "$h" STOP ;;
        thaw) signal_engine "$h" CONT ;;
        *) die "unknown command $cmd" ;;
    esac
}

main "$@"
