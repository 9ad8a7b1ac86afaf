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

# ---------------------------------------------------------------- host facts
valid_host() { case "$1" in h2|h3) return 0 ;; *) return 1 ;; esac; }
host_num() { echo "${1#h}"; }                          # h2 -> 2
netns_of() { echo "l$1"; }                             # h2 -> lh2
main_ip() { echo "10.213.$(host_num "$1").1"; }
ns_ip() { echo "10.213.$(host_num "$1").2"; }
veth_main() { echo "l$1-main"; }
veth_ns() { echo "l$1-ns"; }
run_dir() { echo "/run/launcher-$1"; }
data_root() { echo "/var/lib/launcher-$1"; }
sock_path() { echo "/run/launcher-$1/docker.sock"; }
sock_url() { echo "unix://$(sock_path "$1")"; }
pid_file() { echo "/run/launcher-$1/docker.pid"; }
engine_log() { echo "/run/launcher-$1/dockerd.log"; }
H3_UNKNOWN_IP=10.213.3.3
SSHD_PID=/run/launcher-h3/sshd.pid
SSHD_LOG=/run/launcher-h3/sshd.log

need_root() { [ "$(id -u)" = 0 ] || die "must run as root"; }

# ------------------------------------------------------------------ packages
ensure_packages() {
    local pkgs=()
    command -v openssl >/dev/null 2>&1 || pkgs+=(openssl)
    command -v ip >/dev/null 2>&1 || pkgs+=(iproute2)
    { command -v nsenter && command -v unshare && command -v flock && command -v setsid; } \
        >/dev/null 2>&1 || pkgs+=(util-linux)
    [ -x /usr/sbin/sshd ] || pkgs+=(openssh-server)
    { command -v ssh && command -v ssh-keygen; } >/dev/null 2>&1 || pkgs+=(openssh-client)
    command -v iptables >/dev/null 2>&1 || pkgs+=(iptables)
    if [ "${#pkgs[@]}" -gt 0 ]; then
        log "installing missing packages: ${pkgs[*]}"
        # Never let a package's maintainer script start a service (e.g. an sshd
        # on 0.0.0.0:22 in the main namespace).
        local made_policy=0
        if [ ! -e /usr/sbin/policy-rc.d ]; then
            printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
            chmod 755 /usr/sbin/policy-rc.d
            made_policy=1
        fi
        local rc=0
        { timeout 300 apt-get update -qq &&
            DEBIAN_FRONTEND=noninteractive timeout 600 apt-get install -y -qq \
                --no-install-recommends "${pkgs[@]}"; } >&2 || rc=$?
        [ "$made_policy" = 1 ] && rm -f /usr/sbin/policy-rc.d
        [ "$rc" = 0 ] || die "apt-get install ${pkgs[*]} failed (rc=$rc)"
    fi
    command -v dockerd >/dev/null 2>&1 ||
        die "dockerd not found: run scripts/ensure-docker.sh first (installs docker.io)"
    command -v docker >/dev/null 2>&1 ||
        die "docker CLI not found: run scripts/ensure-docker.sh first"
}

# ------------------------------------------------------- certificates (once)
PKI_FILES=(ca/ca.pem ca/ca-key.pem
    h2-server/ca.pem h2-server/cert.pem h2-server/key.pem
    h2-client/ca.pem h2-client/cert.pem h2-client/key.pem
    wrong-ca/ca.pem wrong-ca/ca-key.pem
    wrong-ca-client/ca.pem wrong-ca-client/cert.pem wrong-ca-client/key.pem)
PKI_CHANGED=0

pki_complete() {
    local f
    [ -e "$STATE/.pki-ok" ] || return 1
    for f in "${PKI_FILES[@]}"; do [ -s "$STATE/$f" ] || return 1; done
}

# make_ca DIR CN
make_ca() {
    mkdir -p "$1"
    cat >"$1/ca.cnf" <<'EOF'
[req]
distinguished_name = dn
[dn]
[v3_ca]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
EOF
    openssl req -x509 -new -newkey rsa:2048 -nodes -sha256 -days 3650 \
        -keyout "$1/ca-key.pem" -out "$1/ca.pem" -subj "/CN=$2" \
        -config "$1/ca.cnf" -extensions v3_ca 2>/dev/null
    rm -f "$1/ca.cnf"
}

# make_leaf CA_DIR OUT_DIR CN server|client [SAN]
make_leaf() {
    local ca=$1 out=$2 cn=$3 kind=$4 san=${5:-}
    mkdir -p "$out"
    {
        echo "basicConstraints = CA:FALSE"
        echo "subjectKeyIdentifier = hash"
        echo "authorityKeyIdentifier = keyid"
        if [ "$kind" = server ]; then
            echo "keyUsage = critical, digitalSignature, keyEncipherment"
            echo "extendedKeyUsage = serverAuth"
            echo "subjectAltName = $san"
        else
            echo "keyUsage = critical, digitalSignature"
            echo "extendedKeyUsage = clientAuth"
        fi
    } >"$out/ext.cnf"
    openssl req -new -newkey rsa:2048 -nodes -sha256 -keyout "$out/key.pem" \
        -out "$out/req.csr" -subj "/CN=$cn" 2>/dev/null
    openssl x509 -req -sha256 -days 3650 -in "$out/req.csr" \
        -CA "$ca/ca.pem" -CAkey "$ca/ca-key.pem" \
        -set_serial "0x$(openssl rand -hex 12)" \
        -extfile "$out/ext.cnf" -out "$out/cert.pem" 2>/dev/null
    cp "$ca/ca.pem" "$out/ca.pem"
    rm -f "$out/ext.cnf" "$out/req.csr"
    chmod 600 "$out/key.pem"
}

ensure_pki() {
    pki_complete && return 0
    log "generating certificates in $STATE"
    local tmp d
    tmp=$(mktemp -d "$STATE/.pki-new.XXXXXX")
    make_ca "$tmp/ca" "launcher test-hosts CA"
    make_leaf "$tmp/ca" "$tmp/h2-server" "$(ns_ip h2)" server \
        "IP:$(ns_ip h2), DNS:h2, DNS:launcher-h2"
    make_leaf "$tmp/ca" "$tmp/h2-client" "launcher test client" client
    # A complete foreign PKI: its ca.pem cannot verify h2's server certificate
    # (and h2 would not accept its client certificate either).
    make_ca "$tmp/wrong-ca" "launcher test-hosts WRONG CA"
    make_leaf "$tmp/wrong-ca" "$tmp/wrong-ca-client" "launcher wrong-ca client" client
    chmod 600 "$tmp/ca/ca-key.pem" "$tmp/wrong-ca/ca-key.pem"
    for d in ca h2-server h2-client wrong-ca wrong-ca-client; do
        rm -rf "${STATE:?}/$d"
        mv "$tmp/$d" "$STATE/$d"
    done
    rmdir "$tmp"
    touch "$STATE/.pki-ok"
    PKI_CHANGED=1
}

# ----------------------------------------------------------- ssh keys (once)
SSH_CHANGED=0
ensure_ssh_keys() {
    local d="$STATE/ssh"
    mkdir -p "$d"
    chmod 700 "$d"
    if [ ! -s "$d/ssh_host_ed25519_key" ] || [ ! -s "$d/ssh_host_ed25519_key.pub" ]; then
        rm -f "$d/ssh_host_ed25519_key" "$d/ssh_host_ed25519_key.pub"
        ssh-keygen -q -t ed25519 -N '' -C "launcher-h3 host key" -f "$d/ssh_host_ed25519_key"
        SSH_CHANGED=1
    fi
    if [ ! -s "$d/id_ed25519" ] || [ ! -s "$d/id_ed25519.pub" ]; then
        rm -f "$d/id_ed25519" "$d/id_ed25519.pub"
        ssh-keygen -q -t ed25519 -N '' -C "launcher test-hosts client" -f "$d/id_ed25519"
    fi
    install -m 600 "$d/id_ed25519.pub" "$d/authorized_keys"
    # Our own known_hosts (for tests that do not want to rely on ~/.ssh).
    echo "$(ns_ip h3) $(cut -d' ' -f1,2 "$d/ssh_host_ed25519_key.pub")" >"$d/known_hosts"

    local cfg_new
    cfg_new=$(mktemp "$d/.sshd_config.XXXXXX")
    cat >"$cfg_new" <<EOF
# Generated by scripts/test-hosts.sh: sshd of test host h3 (netns lh3).
Port 22
ListenAddress $(ns_ip h3)
ListenAddress $H3_UNKNOWN_IP
HostKey $d/ssh_host_ed25519_key
PidFile $SSHD_PID
PermitRootLogin prohibit-password
AllowUsers root
PubkeyAuthentication yes
AuthorizedKeysFile $d/authorized_keys
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes yes
X11Forwarding no
AllowAgentForwarding no
AllowTcpForwarding no
PrintMotd no
# docker-py opens one session channel per pooled connection, the docker CLI one
# ssh connection per command: allow plenty of both.
MaxSessions 64
MaxStartups 64:30:128
# 'docker system dial-stdio' run over SSH must reach h3's engine, not the main one.
SetEnv DOCKER_HOST=$(sock_url h3)
EOF
    if ! cmp -s "$cfg_new" "$d/sshd_config"; then
        mv "$cfg_new" "$d/sshd_config"
        SSH_CHANGED=1
    else
        rm -f "$cfg_new"
    fi
}

# ------------------------------------------- ~/.ssh/config and known_hosts
# strip_block FILE: print FILE without our marker block (an unterminated block
# is kept as it is, so a damaged file never loses the user's own lines).
strip_block() {
    [ -f "$1" ] || return 0
    awk -v b="$MARK_BEGIN" -v e="$MARK_END" '
        $0 == b { inblk = 1; buf = $0 "\n"; next }
        inblk && $0 == e { inblk = 0; buf = ""; next }
        inblk { buf = buf $0 "\n"; next }
        { print }
        END { if (inblk) printf "%s", buf }' "$1"
}

# replace_file FILE: atomically replace FILE with stdin (mode 600), if it differs.
replace_file() {
    local tmp
    tmp=$(mktemp "$(dirname "$1")/.$(basename "$1").XXXXXX")
    cat >"$tmp"
    chmod 600 "$tmp"
    if cmp -s "$tmp" "$1"; then rm -f "$tmp"; else mv "$tmp" "$1"; fi
}

ensure_ssh_client_config() {
    mkdir -p "$SSH_HOME"
    chmod 700 "$SSH_HOME"
    local cfg="$SSH_HOME/config" kh="$SSH_HOME/known_hosts" body ip
    # Host-specific settings go first: ssh uses the first value it finds.
    body=$(strip_block "$cfg")
    {
        echo "$MARK_BEGIN"
        echo "Host $(ns_ip h3) $H3_UNKNOWN_IP"
        echo "    User root"
        echo "    IdentityFile $STATE/ssh/id_ed25519"
        echo "    IdentitiesOnly yes"
        echo "    BatchMode yes"
        echo "    StrictHostKeyChecking yes"
        echo "    ConnectTimeout 10"
        echo "$MARK_END"
        if [ -n "$body" ]; then printf '%s\n' "$body"; fi
    } | replace_file "$cfg"

    touch "$kh"
    chmod 600 "$kh"
    # Stale entries of earlier runs (also hashed ones, or one accepted by hand for
    # the "unknown" address) go; then exactly h3's current key for 10.213.3.2.
    local had_old=0
    [ -e "$kh.old" ] && had_old=1
    for ip in "$(ns_ip h3)" "$H3_UNKNOWN_IP"; do
        if ssh-keygen -F "$ip" -f "$kh" >/dev/null 2>&1; then
            ssh-keygen -R "$ip" -f "$kh" >/dev/null 2>&1 || true
        fi
    done
    [ "$had_old" = 1 ] || rm -f "$kh.old"   # ssh-keygen -R's backup
    body=$(strip_block "$kh")
    {
        if [ -n "$body" ]; then printf '%s\n' "$body"; fi
        echo "$MARK_BEGIN"
        cat "$STATE/ssh/known_hosts"
        echo "$MARK_END"
    } | replace_file "$kh"
}

remove_ssh_client_config() {
    local f body
    for f in "$SSH_HOME/config" "$SSH_HOME/known_hosts"; do
        [ -f "$f" ] || continue
        body=$(strip_block "$f")
        if [ -n "$body" ]; then printf '%s\n' "$body"; fi | replace_file "$f"
    done
}

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

# ---------------------------------------------------------------------- sshd
sshd_pid() {
    local p
    p=$(cat "$SSHD_PID" 2>/dev/null || true)
    if pid_matches "$p" "$STATE/ssh/sshd_config"; then echo "$p"; fi
}

sshd_port_open() {
    timeout 2 bash -c "exec 3<>/dev/tcp/$1/22" 2>/dev/null
}

stop_sshd() {
    local pid
    pid=$(sshd_pid || true)
    [ -n "$pid" ] || return 0
    kill -TERM "$pid" 2>/dev/null || true
    wait_gone "$pid" 10 || kill -KILL "$pid" 2>/dev/null || true
    rm -f "$SSHD_PID"
}

ensure_sshd() {
    local pid i
    mkdir -p /run/sshd "$(run_dir h3)"
    chmod 755 /run/sshd
    pid=$(sshd_pid || true)
    if [ -n "$pid" ] && [ "$SSH_CHANGED" = 0 ] &&
        ! { sshd_port_open "$(ns_ip h3)" && sshd_port_open "$H3_UNKNOWN_IP"; }; then
        SSH_CHANGED=1   # runs, but not reachable (e.g. namespace was recreated)
    fi
    if [ -n "$pid" ] && [ "$SSH_CHANGED" = 1 ]; then
        log "h3: sshd configuration, host key or namespace changed, restarting sshd"
        stop_sshd
        pid=""
    fi
    if [ -z "$pid" ]; then
        /usr/sbin/sshd -t -f "$STATE/ssh/sshd_config" ||
            die "h3: sshd rejects $STATE/ssh/sshd_config"
        rm -f "$SSHD_PID"
        # sshd daemonizes itself once it listens.
        nsenter --net="/run/netns/$(netns_of h3)" /usr/sbin/sshd \
            -f "$STATE/ssh/sshd_config" -E "$SSHD_LOG" </dev/null >/dev/null 2>&1 9>&- ||
            die "h3: sshd failed to start; see $SSHD_LOG"
        log "h3: started sshd on $(ns_ip h3):22 and $H3_UNKNOWN_IP:22, log $SSHD_LOG"
    fi
    for ((i = 0; i < 50; i++)); do
        sshd_port_open "$(ns_ip h3)" && sshd_port_open "$H3_UNKNOWN_IP" && return 0
        sleep 0.2
    done
    tail -n 15 "$SSHD_LOG" >&2 || true
    die "h3: sshd does not listen on $(ns_ip h3):22 / $H3_UNKNOWN_IP:22; see $SSHD_LOG"
}

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
