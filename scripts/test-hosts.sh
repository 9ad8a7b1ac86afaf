#!/usr/bin/env bash
# Extra Docker engines that act as "remote" hosts for tests, CI and developers.
#
# Each host is a dockerd in its own network namespace, reached over a veth pair
# with private addresses that only exist on this machine:
#
#   h2  netns lh2, 10.213.2.1 (main side) <-> 10.213.2.2 (inside)
#       dockerd on unix:///run/launcher-h2/docker.sock and tcp://10.213.2.2:2376
#       (TLS, client certificate required; client certs in <state>/h2-client)
#   h3  netns lh3, 10.213.3.1 (main side) <-> 10.213.3.2 and 10.213.3.3 (inside)
#       dockerd on unix:///run/launcher-h3/docker.sock (no TCP), plus an sshd on
#       10.213.3.2:22 and 10.213.3.3:22 whose sessions get
#       DOCKER_HOST=unix:///run/launcher-h3/docker.sock, so ssh://root@10.213.3.2
#       talks to h3's engine. 10.213.3.3 is the same sshd but its host key is
#       deliberately NOT in ~/.ssh/known_hosts (the "unknown host key" case).
#
# Usage (as root):
#   scripts/test-hosts.sh up                 start everything (idempotent, fast when up)
#   scripts/test-hosts.sh down [--purge]     stop everything, remove namespaces/veths
#                                            (--purge also removes data roots, state
#                                            dir, and the ~/.ssh config/known_hosts blocks)
#   scripts/test-hosts.sh status             show what runs; exit 0 if all up, 3 if not
#   scripts/test-hosts.sh stop-engine NAME   SIGKILL NAME's dockerd only (simulated crash)
#   scripts/test-hosts.sh start-engine NAME  bring NAME's dockerd back and wait for it
#   scripts/test-hosts.sh env                print shell exports for tests
#
# State lives in /run/launcher-test-hosts (certificates and keys are generated
# once and reused): ca/, h2-server/, h2-client/, wrong-ca/, wrong-ca-client/,
# ssh/, hosts.yaml, hosts.env.
set -euo pipefail

STATE=/run/launcher-test-hosts
LOCK=/run/launcher-test-hosts.lock
HOSTS=(h2 h3)
H2_TCP_PORT=2376
ENGINE_WAIT_S=60          # how long to wait for a dockerd to answer
MARK_BEGIN="# >>> launcher test-hosts (scripts/test-hosts.sh) >>>"
MARK_END="# <<< launcher test-hosts (scripts/test-hosts.sh) <<<"
SSH_HOME="${HOME:-/root}/.ssh"

# Whatever the caller's environment says, this script talks to exact endpoints.
unset DOCKER_HOST DOCKER_CONTEXT DOCKER_TLS_VERIFY DOCKER_CERT_PATH DOCKER_TLS || true

log() { printf 'test-hosts: %s\n' "$*" >&2; }
die() { printf 'test-hosts: ERROR: %s\n' "$*" >&2; exit 1; }

LIB="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/lib"
# shellcheck source=scripts/lib/test-hosts-common.sh
source "$LIB/test-hosts-common.sh"
# shellcheck source=scripts/lib/test-hosts-pki.sh
source "$LIB/test-hosts-pki.sh"
# shellcheck source=scripts/lib/test-hosts-ssh.sh
source "$LIB/test-hosts-ssh.sh"
# shellcheck source=scripts/lib/test-hosts-engines.sh
source "$LIB/test-hosts-engines.sh"

# ---------------------------------------------------------- outputs for tests
env_lines() {
    cat <<EOF
LAUNCHER_TEST_HOSTS_DIR=$STATE
LAUNCHER_TEST_HOSTS_YAML=$STATE/hosts.yaml
H2_SOCK=$(sock_url h2)
H3_SOCK=$(sock_url h3)
H2_URL=tcp://$(ns_ip h2):$H2_TCP_PORT
H2_CERT_PATH=$STATE/h2-client
H2_WRONG_CA_CERT_PATH=$STATE/wrong-ca-client
H2_REFUSED_URL=tcp://$(ns_ip h2):2399
H3_URL=ssh://root@$(ns_ip h3)
H3_UNKNOWN_KEY_URL=ssh://root@$H3_UNKNOWN_IP
H3_SSH_KEY=$STATE/ssh/id_ed25519
H3_SSH_KNOWN_HOSTS=$STATE/ssh/known_hosts
EOF
}

write_host_files() {
    cat <<EOF | replace_file "$STATE/hosts.yaml"
# Written by scripts/test-hosts.sh up: the test hosts in the launcher's host syntax.
- {name: h2, url: "tcp://$(ns_ip h2):$H2_TCP_PORT", cert_path: $STATE/h2-client}
- {name: h3, url: "ssh://root@$(ns_ip h3)"}
EOF
    env_lines | replace_file "$STATE/hosts.env"
    chmod 644 "$STATE/hosts.yaml" "$STATE/hosts.env"
}

# ------------------------------------------------------------------- checks
tls_h2() {
    timeout 15 docker --tlsverify --tlscacert "$STATE/h2-client/ca.pem" \
        --tlscert "$STATE/h2-client/cert.pem" --tlskey "$STATE/h2-client/key.pem" \
        -H "tcp://$(ns_ip h2):$H2_TCP_PORT" "$@"
}

ssh_h3() {
    DOCKER_HOST="ssh://root@$(ns_ip h3)" timeout 30 docker "$@"
}

check_remote_paths() {
    local id_unix id_remote
    id_unix=$(timeout 10 docker -H "$(sock_url h2)" info --format '{{.ID}}' 2>/dev/null || true)
    id_remote=$(tls_h2 info --format '{{.ID}}' 2>&1) ||
        die "h2: docker over TCP+TLS ($(ns_ip h2):$H2_TCP_PORT) failed: $id_remote"
    [ "$id_unix" = "$id_remote" ] ||
        die "h2: engine over TLS ($id_remote) is not the one on its socket ($id_unix)"
    id_unix=$(timeout 10 docker -H "$(sock_url h3)" info --format '{{.ID}}' 2>/dev/null || true)
    id_remote=$(ssh_h3 info --format '{{.ID}}' 2>&1) ||
        die "h3: docker over ssh://root@$(ns_ip h3) failed: $id_remote (sshd log: $SSHD_LOG)"
    [ "$id_unix" = "$id_remote" ] ||
        die "h3: engine over SSH ($id_remote) is not h3's ($id_unix): sshd SetEnv DOCKER_HOST not in effect?"
}

# ----------------------------------------------------------------- commands
take_lock() {
    exec 9>"$LOCK"
    # Daemons started below get this fd closed (9>&-), so only a running
    # test-hosts.sh holds the lock.
    flock -w 180 9 || die "another test-hosts.sh has held $LOCK for more than 180s"
}

cmd_up() {
    local t0=$SECONDS h entry pid
    ensure_packages
    mkdir -p "$STATE"
    chmod 755 "$STATE"
    ensure_pki
    ensure_ssh_keys
    for h in "${HOSTS[@]}"; do ensure_netns "$h"; done
    STARTED_PIDS=()
    for h in "${HOSTS[@]}"; do start_engine "$h"; done
    for h in "${HOSTS[@]}"; do
        pid=""
        for entry in "${STARTED_PIDS[@]+"${STARTED_PIDS[@]}"}"; do
            [ "${entry%%:*}" = "$h" ] && pid=${entry#*:}
        done
        wait_engine "$h" "$pid"
    done
    ensure_sshd
    ensure_ssh_client_config
    write_host_files
    check_remote_paths
    log "up: h2 (tcp://$(ns_ip h2):$H2_TCP_PORT, TLS) and h3 (ssh://root@$(ns_ip h3)) ready in $((SECONDS - t0))s; hosts: $STATE/hosts.yaml"
}

cmd_down() {
    local purge=0 h
    [ "${1:-}" = "--purge" ] && purge=1
    stop_sshd
    # Both engines at once: each may wait for its containers to stop.
    local pids=()
    for h in "${HOSTS[@]}"; do stop_engine_graceful "$h" & pids+=("$!"); done
    for h in "${pids[@]}"; do wait "$h" || true; done
    for h in "${HOSTS[@]}"; do
        kill_leftovers "$h"
        unmount_under "$(run_dir "$h")"
        unmount_under "$(data_root "$h")"
        remove_netns "$h"
        rm -f "$(sock_path "$h")" "$(pid_file "$h")" "$(run_dir "$h")/dockerd.args"
        rm -rf "$(run_dir "$h")/exec"
    done
    rm -f "$SSHD_PID"
    if [ "$purge" = 1 ]; then
        for h in "${HOSTS[@]}"; do
            rm -rf "$(run_dir "$h")" "$(data_root "$h")"
        done
        remove_ssh_client_config
        rm -rf "$STATE"
        log "down --purge: stopped; removed namespaces, data roots, $STATE and ~/.ssh blocks"
    else
        log "down: stopped; removed namespaces and veths (kept certificates, keys and images)"
    fi
}

cmd_status() {
    local h all=0 pid id name ns main_id
    main_id=$(timeout 5 docker -H unix:///var/run/docker.sock info --format '{{.ID}}' 2>/dev/null || true)
    for h in "${HOSTS[@]}"; do
        ns=$(netns_of "$h")
        if [ -e "/run/netns/$ns" ]; then ns="$ns:ok"; else ns="$ns:MISSING"; all=3; fi
        pid=$(engine_pid "$h" || true)
        id="" name=""
        if [ -n "$pid" ] && engine_answers "$h"; then
            id=$(timeout 10 docker -H "$(sock_url "$h")" info --format '{{.ID}}' 2>/dev/null || true)
            name=$(timeout 10 docker -H "$(sock_url "$h")" info --format '{{.Name}}' 2>/dev/null || true)
            echo "$h netns=$ns dockerd=up pid=$pid name=$name id=$id sock=$(sock_url "$h")"
            if [ -n "$main_id" ] && [ "$id" = "$main_id" ]; then
                echo "$h WARNING: same engine ID as the main engine"
            fi
        else
            echo "$h netns=$ns dockerd=DOWN${pid:+ (pid $pid not answering)} log=$(engine_log "$h")"
            all=3
        fi
        if [ "$h" = h2 ] && [ -n "$id" ]; then
            if tls_h2 version --format '{{.Server.Version}}' >/dev/null 2>&1; then
                echo "h2 tcp://$(ns_ip h2):$H2_TCP_PORT tls=ok"
            else
                echo "h2 tcp://$(ns_ip h2):$H2_TCP_PORT tls=FAILING"; all=3
            fi
        fi
        if [ "$h" = h3 ]; then
            pid=$(sshd_pid || true)
            if [ -n "$pid" ] && sshd_port_open "$(ns_ip h3)"; then
                echo "h3 sshd=up pid=$pid ssh://root@$(ns_ip h3) (unknown-key: ssh://root@$H3_UNKNOWN_IP)"
            else
                echo "h3 sshd=DOWN log=$SSHD_LOG"; all=3
            fi
        fi
    done
    [ -n "$main_id" ] && echo "main engine id=$main_id"
    return "$all"
}

cmd_stop_engine() {
    local h=$1 pid
    pid=$(engine_pid "$h" || true)
    if [ -z "$pid" ]; then
        log "$h: dockerd is not running"
        return 0
    fi
    # SIGKILL: a crash, as when a host dies. Its containerd and containers are
    # left as they are; start-engine brings dockerd back and it re-attaches.
    kill -KILL "$pid" 2>/dev/null || true
    wait_gone "$pid" 10 || die "$h: dockerd pid $pid survived SIGKILL"
    log "$h: dockerd (pid $pid) killed"
}

cmd_start_engine() {
    local h=$1 entry pid=""
    ensure_packages
    mkdir -p "$STATE"
    ensure_pki
    ensure_netns "$h"
    STARTED_PIDS=()
    start_engine "$h"
    for entry in "${STARTED_PIDS[@]+"${STARTED_PIDS[@]}"}"; do pid=${entry#*:}; done
    wait_engine "$h" "$pid"
    log "$h: engine answers on $(sock_url "$h")"
}

usage() {
    sed -n '/^# Usage/,/^# State/p' "$0" | sed 's/^# \{0,1\}//' >&2
    exit 2
}

main() {
    local cmd=${1:-}
    [ -n "$cmd" ] || usage
    shift
    case "$cmd" in
        up) need_root; take_lock; cmd_up ;;
        down) need_root; take_lock; cmd_down "$@" ;;
        status) need_root; cmd_status ;;
        env) env_lines | while IFS='=' read -r k v; do printf 'export %s=%q\n' "$k" "$v"; done ;;
        stop-engine|start-engine)
            if [ $# -ne 1 ] || ! valid_host "$1"; then die "usage: $0 $cmd h2|h3"; fi
            need_root; take_lock
            if [ "$cmd" = stop-engine ]; then cmd_stop_engine "$1"; else cmd_start_engine "$1"; fi ;;
        -h|--help|help) usage ;;
        *) log "unknown command: $cmd"; usage ;;
    esac
}

main "$@"
