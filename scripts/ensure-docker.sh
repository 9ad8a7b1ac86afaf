#!/usr/bin/env bash
# Make sure a Docker engine answers on the default socket (idempotent).
#
# - If `docker info` already works: print one line and exit 0 (no install, no start).
# - Else, as root: install Debian's docker.io only if `dockerd` is missing, start
#   dockerd detached (it survives this script) with its log in /var/log/dockerd.log,
#   and wait (bounded) until `docker info` answers.
#
# Environment:
#   ENSURE_DOCKER_TIMEOUT   seconds to wait for the engine (default 60)
#   DOCKERD_LOG             daemon log file (default /var/log/dockerd.log)
#   DOCKERD_PIDFILE         pidfile dockerd writes (default /var/run/docker.pid)
#   ENSURE_DOCKER_LOCK      lock file serializing concurrent runs
#
# Never starts a daemon with `--bridge none`: in the main network namespace that
# deletes docker0 and breaks every bridged container (see docs of extra test hosts).
set -euo pipefail

TIMEOUT="${ENSURE_DOCKER_TIMEOUT:-60}"
LOG="${DOCKERD_LOG:-/var/log/dockerd.log}"
PIDFILE="${DOCKERD_PIDFILE:-/var/run/docker.pid}"
LOCK="${ENSURE_DOCKER_LOCK:-/run/launcher-ensure-docker.lock}"

say() { echo "ensure-docker: $*" >&2; }
die() { say "ERROR: $*"; exit 1; }

engine_answers() { docker info >/dev/null 2>&1; }

report_ok() {
    local version
    version="$(docker version --format '{{.Server.Version}}' 2>/dev/null || echo '?')"
    echo "ensure-docker: Docker engine ${version} answers (${DOCKER_HOST:-default socket})"
}

# Fast path: nothing to do. Needs the CLI; a fresh machine without it falls through.
if command -v docker >/dev/null 2>&1 && engine_answers; then
    report_ok
    exit 0
fi

if [[ -n "${DOCKER_HOST:-}" && "${DOCKER_HOST}" != "unix:///var/run/docker.sock" \
      && "${DOCKER_HOST}" != "unix:///run/docker.sock" ]]; then
    die "DOCKER_HOST=${DOCKER_HOST} does not answer; this script only starts the local engine on the default socket (unset DOCKER_HOST to use it)"
fi

[[ "$(id -u)" -eq 0 ]] || die "no Docker engine answers and starting one needs root (run: sudo $0)"

# Serialize concurrent callers (e.g. parallel CI steps) so only one dockerd starts.
exec 9>"$LOCK"
flock -w "$((TIMEOUT + 120))" 9 || die "timed out waiting for another ensure-docker run (lock $LOCK)"

if command -v docker >/dev/null 2>&1 && engine_answers; then
    report_ok
    exit 0
fi

if ! command -v dockerd >/dev/null 2>&1 || ! command -v docker >/dev/null 2>&1; then
    say "dockerd not found: installing Debian's docker.io (about 30 s)"
    apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker.io >&2
    command -v dockerd >/dev/null 2>&1 || die "apt-get installed docker.io but dockerd is still not on PATH"
fi

daemon_alive() {
    [[ -s "$PIDFILE" ]] && kill -0 "$(cat "$PIDFILE" 2>/dev/null)" 2>/dev/null
}

started_pid=""
if daemon_alive; then
    # A daemon exists (maybe still starting, or started by a package's init script): wait for it.
    say "dockerd already running (pid $(cat "$PIDFILE")), waiting for it to answer"
else
    mkdir -p "$(dirname "$LOG")"
    say "starting dockerd (log: $LOG)"
    {
        echo "---- ensure-docker: starting dockerd at $(date -u +%Y-%m-%dT%H:%M:%SZ)"
    } >>"$LOG"
    # setsid + nohup: own session, immune to the caller's SIGHUP/Ctrl-C; stdin detached.
    # 9>&-: the daemon must not inherit (and hold forever) the lock of this script.
    setsid nohup dockerd >>"$LOG" 2>&1 </dev/null 9>&- &
    started_pid=$!
fi

deadline=$((SECONDS + TIMEOUT))
until engine_answers; do
    if [[ -n "$started_pid" ]] && ! kill -0 "$started_pid" 2>/dev/null && ! daemon_alive; then
        tail -n 20 "$LOG" >&2 || true
        die "dockerd exited during start-up; see $LOG (last lines above)"
    fi
    if (( SECONDS >= deadline )); then
        tail -n 20 "$LOG" >&2 || true
        die "Docker engine did not answer within ${TIMEOUT}s; see $LOG (last lines above)"
    fi
    sleep 0.5
done

report_ok
