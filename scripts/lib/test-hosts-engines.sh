# shellcheck shell=bash
# Part of scripts/test-hosts.sh (sourced by it): network namespaces and the engines inside them.

# ------------------------------------------------------------------ network
ensure_netns() {
    local h=$1 ns vm vn
    ns=$(netns_of "$h") vm=$(veth_main "$h") vn=$(veth_ns "$h")
    [ -e "/run/netns/$ns" ] || ip netns add "$ns"
    ip -n "$ns" link set lo up
    if ! ip link show "$vm" >/dev/null 2>&1 || ! ip -n "$ns" link show "$vn" >/dev/null 2>&1; then
        ip link del "$vm" >/dev/null 2>&1 || true
        ip -n "$ns" link del "$vn" >/dev/null 2>&1 || true
        ip link add "$vm" type veth peer name "$vn" netns "$ns"
    fi
    ip addr replace "$(main_ip "$h")/24" dev "$vm"
    ip link set "$vm" up
    ip -n "$ns" addr replace "$(ns_ip "$h")/24" dev "$vn"
    if [ "$h" = h3 ]; then
        ip -n "$ns" addr replace "$H3_UNKNOWN_IP/24" dev "$vn"
    fi
    ip -n "$ns" link set "$vn" up
}

remove_netns() {
    local h=$1 ns
    ns=$(netns_of "$h")
    ip link del "$(veth_main "$h")" >/dev/null 2>&1 || true
    if [ -e "/run/netns/$ns" ]; then
        ip netns del "$ns" 2>/dev/null || true
    fi
}

# ------------------------------------------------------------------ engines
# pid_matches PID PATTERN: PID is alive and its command line contains PATTERN.
pid_matches() {
    [ -n "$1" ] && [ -r "/proc/$1/cmdline" ] &&
        tr '\0' ' ' <"/proc/$1/cmdline" 2>/dev/null | grep -qF -- "$2"
}

# engine_pid NAME: print the pid of NAME's dockerd if it runs.
engine_pid() {
    local p
    p=$(cat "$(pid_file "$1")" 2>/dev/null || true)
    if pid_matches "$p" "--pidfile $(pid_file "$1")"; then echo "$p"; return 0; fi
    # No (valid) pidfile yet: look for the process itself.
    p=$(pgrep -f -- "dockerd .*--pidfile $(pid_file "$1")" 2>/dev/null | head -n1 || true)
    [ -n "$p" ] && echo "$p"
}

engine_answers() {
    timeout 10 docker -H "$(sock_url "$1")" version --format '{{.Server.Version}}' \
        >/dev/null 2>&1
}

engine_args() {
    local h=$1 rd
    rd=$(run_dir "$h")
    ENGINE_ARGS=(dockerd
        --config-file "$rd/daemon.json"
        -H "$(sock_url "$h")")
    if [ "$h" = h2 ]; then
        ENGINE_ARGS+=(-H "tcp://$(ns_ip h2):$H2_TCP_PORT" --tlsverify
            --tlscacert "$STATE/h2-server/ca.pem"
            --tlscert "$STATE/h2-server/cert.pem"
            --tlskey "$STATE/h2-server/key.pem")
    fi
    ENGINE_ARGS+=(
        --data-root "$(data_root "$h")"
        --exec-root "$rd/exec"
        --pidfile "$(pid_file "$h")"
        # Own containerd namespaces and cgroup parent: nothing is shared with the
        # main engine even if a system containerd is running.
        --containerd-namespace "launcher-$h"
        --containerd-plugins-namespace "launcher-$h-plugins"
        --exec-opt native.cgroupdriver=cgroupfs
        --cgroup-parent "/launcher-$h")
    # Own engine identity (docker info .ID): the default /etc/docker/key.json is
    # the main engine's, so every engine would report the same ID. dockerd 20.10
    # has no flag for it, only this (deprecated) daemon.json key.
    ENGINE_CONFIG="{\"deprecated-key-path\": \"$(data_root "$h")/engine-key.json\"}"
}

# start_engine NAME: start NAME's dockerd in the background if it does not run
# (restart it if its arguments or certificates changed). Does not wait.
STARTED_PIDS=()
start_engine() {
    local h=$1 rd pid want
    rd=$(run_dir "$h")
    mkdir -p "$rd/exec" "$(data_root "$h")"
    chmod 700 "$(data_root "$h")"
    engine_args "$h"
    want="${ENGINE_ARGS[*]} $ENGINE_CONFIG"
    pid=$(engine_pid "$h" || true)
    if [ -n "$pid" ]; then
        if [ "$(cat "$rd/dockerd.args" 2>/dev/null || true)" = "$want" ] &&
            ! { [ "$h" = h2 ] && [ "$PKI_CHANGED" = 1 ]; }; then
            return 0
        fi
        log "$h: configuration changed, restarting dockerd (pid $pid)"
        stop_engine_graceful "$h"
    fi
    rm -f "$(pid_file "$h")" "$(sock_path "$h")"
    # dockerd 20.10 re-uses the containerd named in this pidfile if that pid is
    # alive: a stale file whose pid was re-used makes it wait 60s and fail.
    pid=$(cat "$rd/exec/containerd/containerd.pid" 2>/dev/null || true)
    if [ -n "$pid" ] && ! pid_matches "$pid" "$rd/exec/containerd/containerd.toml"; then
        rm -f "$rd/exec/containerd/containerd.pid"
    fi
    printf '%s\n' "$ENGINE_CONFIG" >"$rd/daemon.json"
    printf '%s\n' "$want" >"$rd/dockerd.args"
    printf '\n===== %s test-hosts.sh starting dockerd for %s =====\n' "$(date -Is)" "$h" \
        >>"$(engine_log "$h")"
    # setsid: own session, so ^C in the caller's terminal does not reach it.
    # unshare --uts: own hostname, so `docker info` .Name tells the engines apart.
    # All of these exec, so $! is dockerd's pid.
    # shellcheck disable=SC2016  # $0/$@ are for the inner sh
    setsid nsenter --net="/run/netns/$(netns_of "$h")" \
        unshare --uts sh -c 'hostname "$0" && exec "$@"' "launcher-$h" "${ENGINE_ARGS[@]}" \
        </dev/null >>"$(engine_log "$h")" 2>&1 9>&- &
    STARTED_PIDS+=("$h:$!")
    log "$h: started dockerd (pid $!), log $(engine_log "$h")"
}

# wait_engine NAME [PID]: wait (bounded) until NAME's engine answers.
wait_engine() {
    local h=$1 pid=${2:-} i max
    max=$((ENGINE_WAIT_S * 5))
    for ((i = 0; i < max; i++)); do
        engine_answers "$h" && return 0
        if [ -n "$pid" ] && ! alive "$pid"; then
            tail -n 15 "$(engine_log "$h")" >&2 || true
            die "$h: dockerd exited during start-up; see $(engine_log "$h")"
        fi
        sleep 0.2
    done
    tail -n 15 "$(engine_log "$h")" >&2 || true
    die "$h: dockerd did not answer on $(sock_url "$h") within ${ENGINE_WAIT_S}s; see $(engine_log "$h")"
}

# alive PID: PID exists and is not a zombie waiting for its (new) parent to reap it.
alive() {
    local st
    st=$(awk '{ print $3 }' "/proc/$1/stat" 2>/dev/null || true)
    [ -n "$st" ] && [ "$st" != Z ] && [ "$st" != X ]
}

# wait_gone PID SECONDS: wait until PID has exited; 1 if it still runs.
wait_gone() {
    local i
    for ((i = 0; i < $2 * 10; i++)); do
        alive "$1" || return 0
        sleep 0.1
    done
    ! alive "$1"
}

kill_engine_containers() {
    local h=$1 ids
    engine_answers "$h" || return 0
    ids=$(timeout 20 docker -H "$(sock_url "$h")" ps -q 2>/dev/null || true)
    if [ -n "$ids" ]; then
        # shellcheck disable=SC2086
        timeout 60 docker -H "$(sock_url "$h")" kill $ids >/dev/null 2>&1 || true
    fi
}

stop_engine_graceful() {
    local h=$1 pid
    pid=$(engine_pid "$h" || true)
    [ -n "$pid" ] || return 0
    kill_engine_containers "$h"
    kill -TERM "$pid" 2>/dev/null || true
    if ! wait_gone "$pid" 30; then
        log "$h: dockerd (pid $pid) ignored SIGTERM for 30s, sending SIGKILL"
        kill -KILL "$pid" 2>/dev/null || true
        wait_gone "$pid" 10 || die "$h: could not kill dockerd pid $pid"
    fi
}

# Everything still running in the namespace (containerd, shims, sshd and its
# sessions) and in the engine's cgroups (container processes) is ours: end it.
kill_leftovers() {
    local h=$1 ns pids sig round f
    ns=$(netns_of "$h")
    for round in 1 2 3; do
        pids=""
        if [ -e "/run/netns/$ns" ]; then
            pids=$(ip netns pids "$ns" 2>/dev/null || true)
        fi
        for f in /sys/fs/cgroup/*/"launcher-$h" /sys/fs/cgroup/"launcher-$h"; do
            [ -d "$f" ] || continue
            pids="$pids $(find "$f" -name cgroup.procs -exec cat {} + 2>/dev/null || true)"
        done
        # shellcheck disable=SC2086  # split into one pid a line
        pids=$(printf '%s\n' $pids | sort -un | tr '\n' ' ')
        [ -n "${pids// /}" ] || break
        if [ "$round" = 1 ]; then sig=TERM; else sig=KILL; fi
        # shellcheck disable=SC2086
        kill -"$sig" $pids 2>/dev/null || true
        sleep 1
    done
    # Empty cgroups of the engine's containers.
    for f in /sys/fs/cgroup/*/"launcher-$h" /sys/fs/cgroup/"launcher-$h"; do
        [ -d "$f" ] || continue
        find "$f" -depth -type d -exec rmdir {} \; 2>/dev/null || true
    done
}

unmount_under() {
    local dir=$1 m
    # Deepest first.
    awk -v d="$dir" '$2 == d || index($2, d "/") == 1 { print $2 }' /proc/self/mounts |
        sort -r | while read -r m; do umount -l "$m" 2>/dev/null || true; done
}

