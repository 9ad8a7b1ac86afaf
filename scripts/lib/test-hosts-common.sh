# shellcheck shell=bash
# Part of scripts/test-hosts.sh (sourced by it): host facts and packages.

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

